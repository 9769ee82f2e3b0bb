// The peak memory of loading a GPT-2 checkpoint ("Loading memory" in docs/benchmarks.md): writes a
// random GPT-2 checkpoint (GPT-2 small's shape by default, 124M parameters), then loads it in a
// fresh child process and reports the child's peak resident memory before and after
// glassbox::models::gpt2::load, against the parameters' bytes.
//
//   build/release/bench/gpt2_load_memory                     GPT-2 small shape, checkpoint in /tmp
//   build/release/bench/gpt2_load_memory --config bundled    the bundled model's shape
//   build/release/bench/gpt2_load_memory --load FILE         only the measurement, of an existing file
#include <fmt/format.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "glassbox/models/gpt2.hpp"

namespace {

// The peak resident set of this process so far, in bytes (Linux reports kilobytes).
double peak_rss_bytes() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) * 1024.0;
}

int measure(const std::string& file) {
  const double before = peak_rss_bytes();
  const auto model = glassbox::models::gpt2::load(file);
  const double after = peak_rss_bytes();
  const double parameters = static_cast<double>(model.parameter_count()) * sizeof(float);
  std::printf("%zu %.0f %.0f %.0f\n", model.parameter_count(), parameters, before, after);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string config_name = "small", load;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (a == "--config" && i + 1 < argc) {
      config_name = argv[++i];
    } else if (a == "--load" && i + 1 < argc) {
      load = argv[++i];
    } else {
      std::fprintf(stderr, "usage: gpt2_load_memory [--config small|bundled] [--load FILE]\n");
      return 2;
    }
  }
  if (!load.empty()) return measure(load);

  glassbox::models::gpt2_config config = glassbox::models::gpt2_config::gpt2_small();
  if (config_name == "bundled") {
    config.n_layer = 4;
    config.n_head = 4;
    config.n_embd = 64;
    config.vocab_size = 224;
    config.n_positions = 64;
  } else if (config_name != "small") {
    std::fprintf(stderr, "--config must be small or bundled, got %s\n", config_name.c_str());
    return 2;
  }
  const auto file = std::filesystem::temp_directory_path() / fmt::format("glassbox_load_memory_{}.safetensors", getpid());
  glassbox::models::gpt2::random(config, 1).save(file);

  // The measurement runs in a child of its own, so that writing the checkpoint is not in its peak.
  const std::string self = std::filesystem::read_symlink("/proc/self/exe").string();
  const std::string command = fmt::format("'{}' --load '{}'", self, file.string());
  FILE* pipe = popen(command.c_str(), "r");
  std::size_t count = 0;
  double parameters = 0, before = 0, after = 0;
  const int fields = pipe != nullptr ? std::fscanf(pipe, "%zu %lf %lf %lf", &count, &parameters, &before, &after) : 0;
  const int status = pipe != nullptr ? pclose(pipe) : -1;
  std::filesystem::remove(file);
  if (fields != 4 || status != 0) {
    std::fprintf(stderr, "gpt2_load_memory: the measuring child failed\n");
    return 1;
  }
  const double mib = 1024.0 * 1024.0;
  fmt::print("GPT-2 {} shape: {} parameters, {:.1f} MiB as float32\n", config_name, count, parameters / mib);
  fmt::print("peak resident memory of the loading process: {:.1f} MiB before load, {:.1f} MiB after\n",
             before / mib, after / mib);
  fmt::print("load added {:.1f} MiB = {:.3f} x the parameter bytes (fixed overhead before load: {:.1f} MiB)\n",
             (after - before) / mib, (after - before) / parameters, before / mib);
  return 0;
}

// The time and memory of each attribution method on a model of GPT-2 small's shape (124M parameters,
// 12 layers, d = 768, V = 50257) with random weights: time and memory do not depend on the weights'
// values, so these are the costs on the public gpt2 checkpoint (docs/real-models.md). Each method runs
// once with its default options, in a fresh child process, on one input of --tokens tokens, explaining
// the log-probability of one next token; the model has no pad token, as the public checkpoints, so every
// default baseline is exercised as it is there.
//
//   build/release/bench/real_model_costs [--tokens 8] [--methods saliency,integrated_gradients,...]
//
// Prints per method: wall seconds, model evaluations, the child's peak resident memory, and that peak
// minus the peak after building the model (what the method adds).
#include <fmt/format.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "glassbox/attribution.hpp"
#include "glassbox/models/gpt2.hpp"

namespace {

/// The peak resident memory of this process so far (VmHWM), in bytes.
double peak_resident_bytes() {
  std::ifstream in("/proc/self/status");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("VmHWM:", 0) == 0) return std::stod(line.substr(6)) * 1024.0;
  return 0.0;
}

using method = std::function<glassbox::attribution_result(const glassbox::models::gpt2&, glassbox::token_span,
                                                          const glassbox::target&)>;

std::vector<std::pair<std::string, method>> methods() {
  using namespace glassbox;
  return {
      {"saliency", [](const auto& m, auto t, const auto& y) { return saliency(m, t, y); }},
      {"input_x_gradient", [](const auto& m, auto t, const auto& y) { return input_x_gradient(m, t, y); }},
      {"integrated_gradients", [](const auto& m, auto t, const auto& y) { return integrated_gradients(m, t, y); }},
      {"smoothgrad", [](const auto& m, auto t, const auto& y) { return smoothgrad(m, t, y); }},
      {"gradient_shap", [](const auto& m, auto t, const auto& y) { return gradient_shap(m, t, y); }},
      {"occlusion", [](const auto& m, auto t, const auto& y) { return occlusion(m, t, y); }},
      {"feature_ablation", [](const auto& m, auto t, const auto& y) { return feature_ablation(m, t, y); }},
      {"lime", [](const auto& m, auto t, const auto& y) { return lime(m, t, y); }},
      {"kernel_shap", [](const auto& m, auto t, const auto& y) { return kernel_shap(m, t, y); }},
      {"shapley_sampling", [](const auto& m, auto t, const auto& y) { return shapley_sampling(m, t, y); }},
  };
}

}  // namespace

int main(int argc, char** argv) {
  std::size_t length = 8;
  std::string only;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string_view a = argv[i];
    if (a == "--tokens") length = std::strtoul(argv[i + 1], nullptr, 10);
    else if (a == "--methods") only = argv[i + 1];
  }
  std::printf("GPT-2 small shape, random weights, %zu input tokens, one run per method in a fresh process\n", length);
  std::printf("%-22s %10s %12s %14s %14s\n", "method", "seconds", "evaluations", "peak MiB", "added MiB");
  for (const auto& [name, run] : methods()) {
    if (!only.empty() && ("," + only + ",").find("," + name + ",") == std::string::npos) continue;
    std::fflush(stdout);
    const pid_t child = fork();
    if (child == 0) {
      const auto model = glassbox::models::gpt2::random(glassbox::models::gpt2_config::gpt2_small(), 1);
      glassbox::token_sequence tokens(length);
      for (std::size_t i = 0; i < length; ++i) tokens[i] = static_cast<glassbox::token_id>((i * 7919 + 464) % 50257);
      const auto why = glassbox::target::log_probability(6342);
      const double before = peak_resident_bytes();
      const auto start = std::chrono::steady_clock::now();
      try {
        const auto r = run(model, tokens, why);
        const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        const double peak = peak_resident_bytes();
        std::printf("%-22s %10.2f %12zu %14.0f %14.0f\n", name.c_str(), seconds, r.model_evaluations,
                    peak / 1048576.0, (peak - before) / 1048576.0);
      } catch (const std::exception& e) {
        std::printf("%-22s failed: %s\n", name.c_str(), e.what());
        std::fflush(stdout);
        std::_Exit(1);
      }
      std::fflush(stdout);
      std::_Exit(0);
    }
    int status = 0;
    waitpid(child, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return 1;
  }
  return 0;
}

// Resource bounds (docs/robustness.md, "Resource bounds"): the peak memory of attention rollout and
// attention flow on one input of T = 1024 tokens with GPT-2 small's 12 layers and 12 heads, and of
// fitting EK-FAC factors on a GPT-2 small-shaped model with random weights, each against the bound
// its formula gives. Every case runs in a fresh child process (this program run with --case), which
// builds its input, resets its peak resident set to the current one (writing 5 to
// /proc/self/clear_refs), runs the call and reports how far the peak rose above the resident set
// before the call. Prints a table.
//
//   build/release/bench/resource_bounds                       every case (EK-FAC takes minutes)
//   build/release/bench/resource_bounds rollout flow          the attention cases only
//   build/release/bench/resource_bounds --tokens 512 rollout  another T
#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include "glassbox/attention/flow.hpp"
#include "glassbox/attention/rollout.hpp"
#include "glassbox/core/random.hpp"
#include "glassbox/influence/kfac_factors.hpp"
#include "glassbox/models/gpt2.hpp"

namespace {

constexpr double mib = 1024.0 * 1024.0;
constexpr std::size_t layers = 12, heads = 12;

// A field of /proc/self/status ("VmRSS", "VmHWM") in bytes.
double status_bytes(std::string_view field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.starts_with(field) && line.size() > field.size() && line[field.size()] == ':')
      return std::strtod(line.c_str() + field.size() + 1, nullptr) * 1024.0;
  return -1;
}

// Resets the peak resident set (VmHWM) to the current resident set; false where the kernel refuses.
bool reset_peak() {
  std::ofstream out("/proc/self/clear_refs");
  out << "5";
  out.flush();
  return static_cast<bool>(out);
}

// A causal attention tensor [L, H, T, T] whose rows are random distributions over the keys 0..q.
glassbox::tensor4 causal_attentions(std::size_t t) {
  glassbox::tensor4 a = xt::zeros<float>({layers, heads, t, t});
  glassbox::rng g(7);
  for (std::size_t l = 0; l < layers; ++l)
    for (std::size_t h = 0; h < heads; ++h)
      for (std::size_t q = 0; q < t; ++q) {
        float* row = &a(l, h, q, 0);
        double sum = 0;
        for (std::size_t k = 0; k <= q; ++k) sum += row[k] = static_cast<float>(0.05 + g.uniform());
        for (std::size_t k = 0; k <= q; ++k) row[k] = static_cast<float>(row[k] / sum);
      }
  return a;
}

// The child: runs one case and prints "bound_bytes resident_before peak_above seconds".
int run_case(std::string_view name, std::size_t t) {
  double bound = 0;
  double before = 0, peak = 0, seconds = 0;
  auto measure = [&](auto&& call) {
    if (!reset_peak()) {
      std::fprintf(stderr, "resource_bounds: cannot reset the peak resident set (/proc/self/clear_refs)\n");
      std::exit(1);
    }
    before = status_bytes("VmRSS");
    const auto start = std::chrono::steady_clock::now();
    call();
    seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    peak = status_bytes("VmHWM") - before;
  };
  const double tt = static_cast<double>(t) * static_cast<double>(t), L = layers;
  if (name == "rollout") {
    const auto a = causal_attentions(t);
    // The graph (L doubles [T, T]), its float copy in the result (layer_maps), the running product
    // and its temporary (2 doubles [T, T]) and the result matrix (float [T, T]).
    bound = L * tt * 8 + L * tt * 4 + 2 * tt * 8 + tt * 4;
    measure([&] {
      const auto r = glassbox::attention_rollout(a);
      if (r.scores.size() != t) std::exit(1);
    });
  } else if (name == "flow") {
    const auto a = causal_attentions(t);
    // The graph (L doubles [T, T]), the network's capacities (L doubles [T, T]), layer_maps (L
    // floats [T, T]), one workspace's flow blocks (at most L doubles [T, T]); the rows of one source.
    bound = L * tt * 8 + L * tt * 8 + L * tt * 4 + L * tt * 8;
    glassbox::flow_options o;
    o.sources = {t - 1};
    o.execution.threads = 1;
    measure([&] {
      const auto r = glassbox::attention_flow(a, o);
      if (r.scores.size() != t) std::exit(1);
    });
  } else if (name == "ekfac") {
    const auto config = glassbox::models::gpt2_config::gpt2_small();
    const auto model = glassbox::models::gpt2::random(config, 1);
    std::vector<glassbox::training_example> train;
    glassbox::rng g(3);
    for (int i = 0; i < 4; ++i) {
      glassbox::token_sequence s(16);
      for (auto& x : s) x = static_cast<glassbox::token_id>(g.below(config.vocab_size));
      train.push_back(glassbox::training_example::next_token(s));
    }
    const std::size_t d = config.n_embd, f = config.inner();
    const std::size_t floats = glassbox::kfac_layer_floats(glassbox::factor_method::ekfac, d, 3 * d) +
                               glassbox::kfac_layer_floats(glassbox::factor_method::ekfac, d, d) +
                               glassbox::kfac_layer_floats(glassbox::factor_method::ekfac, d, f) +
                               glassbox::kfac_layer_floats(glassbox::factor_method::ekfac, f, d);
    bound = static_cast<double>(config.n_layer * floats) * 4;  // the factors alone; fitting adds its sums
    measure([&] {
      const auto fitted = glassbox::fit_kfac_factors(model, train, {.execution = {.batch_size = 4, .threads = 1}});
      std::size_t stored = 0;
      for (const auto& l : fitted.layers) stored += l.stored_floats();
      if (stored != config.n_layer * floats) std::exit(1);
    });
  } else {
    std::fprintf(stderr, "resource_bounds: unknown case %.*s\n", static_cast<int>(name.size()), name.data());
    return 2;
  }
  std::printf("%.0f %.0f %.0f %.3f\n", bound, before, peak, seconds);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::size_t tokens = 1024;
  std::vector<std::string> cases;
  std::string child;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (a == "--case" && i + 1 < argc) {
      child = argv[++i];
    } else if (a == "--tokens" && i + 1 < argc) {
      tokens = std::strtoul(argv[++i], nullptr, 10);
    } else if (a == "rollout" || a == "flow" || a == "ekfac") {
      cases.emplace_back(a);
    } else {
      std::fprintf(stderr, "usage: resource_bounds [--tokens T] [rollout] [flow] [ekfac]\n");
      return 2;
    }
  }
  if (tokens < 2) {
    std::fprintf(stderr, "resource_bounds: --tokens must be >= 2\n");
    return 2;
  }
  if (!child.empty()) return run_case(child, tokens);
  if (cases.empty()) cases = {"rollout", "flow", "ekfac"};

  const std::string self = std::filesystem::read_symlink("/proc/self/exe").string();
  fmt::print("| case | input | formula bound (MiB) | measured peak above the input (MiB) | resident before (MiB) "
             "| seconds |\n");
  fmt::print("|---|---|---|---|---|---|\n");
  for (const auto& c : cases) {
    const std::string command = fmt::format("'{}' --case {} --tokens {}", self, c, tokens);
    FILE* pipe = popen(command.c_str(), "r");
    double bound = 0, before = 0, peak = 0, seconds = 0;
    const int fields = pipe != nullptr ? std::fscanf(pipe, "%lf %lf %lf %lf", &bound, &before, &peak, &seconds) : 0;
    const int status = pipe != nullptr ? pclose(pipe) : -1;
    if (fields != 4 || status != 0) {
      std::fprintf(stderr, "resource_bounds: case %s failed\n", c.c_str());
      return 1;
    }
    const std::string input = c == "ekfac" ? std::string("GPT-2 small, 4 examples of 16 tokens")
                                           : fmt::format("L {} x H {}, T {}", layers, heads, tokens);
    fmt::print("| {} | {} | {:.1f} | {:.1f} | {:.1f} | {:.1f} |\n", c, input, bound / mib, peak / mib, before / mib,
               seconds);
  }
  return 0;
}

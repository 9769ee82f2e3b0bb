// The completeness gap of integrated gradients per quadrature rule and step count: the mean
// |convergence_delta| = |sum of the scores - (f(x) - f(x'))| of log p(token) at the last position,
// zero baseline, over random inputs, on random reference GPT-2s at GPT-2's initialisation
// (gpt2::random). The gap is the quadrature error of the path integral (plus float rounding), so
// the table shows how many steps each rule needs. docs/attribution.md ("Integrated gradients")
// prints its output.
//
//   integration_rules_bench [--inputs 6] [--seed 3]
//
// Models (T tokens per input, uniform random ids, the target token the input's first id; 16
// positions; the small one is the model of the test "integrated gradients: the completeness gap
// falls with steps", with the same inputs):
//   small   2 layers, 2 heads, width 32,  vocabulary 64,  T = 8
//   larger  4 layers, 4 heads, width 128, vocabulary 512, T = 16
#include <fmt/core.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "glassbox/attribution/integrated_gradients.hpp"
#include "glassbox/core/random.hpp"
#include "glassbox/models/gpt2.hpp"

namespace {

using namespace glassbox;

struct model_case {
  std::string name;
  std::size_t layers, heads, width, vocab, tokens;
};

int usage() {
  std::fprintf(stderr, "usage: integration_rules_bench [--inputs N] [--seed S]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::size_t n_inputs = 6;
  std::uint64_t seed = 3;
  for (int k = 1; k < argc; ++k) {
    const std::string_view arg = argv[k];
    if (arg == "--inputs" && k + 1 < argc) {
      n_inputs = std::strtoull(argv[++k], nullptr, 10);
    } else if (arg == "--seed" && k + 1 < argc) {
      seed = std::strtoull(argv[++k], nullptr, 10);
    } else {
      return usage();
    }
  }
  if (n_inputs == 0) return usage();
  const std::vector<model_case> cases = {{"small: 2 layers, 2 heads, width 32, vocabulary 64", 2, 2, 32, 64, 8},
                                         {"larger: 4 layers, 4 heads, width 128, vocabulary 512", 4, 4, 128, 512, 16}};
  const std::vector<std::size_t> steps = {2, 4, 8, 16, 32, 64, 128};
  const std::vector<integration_rule> rules = {integration_rule::riemann_left, integration_rule::riemann_right,
                                               integration_rule::riemann_middle, integration_rule::riemann_trapezoid,
                                               integration_rule::gauss_legendre};
  try {
    for (const auto& c : cases) {
      models::gpt2_config config;
      config.n_layer = c.layers;
      config.n_head = c.heads;
      config.n_embd = c.width;
      config.vocab_size = c.vocab;
      config.n_positions = 16;  // as the test suite's small GPT-2, so that the small model is the same
      const auto model = models::gpt2::random(config, 1);
      rng g(seed);
      std::vector<token_sequence> inputs(n_inputs, token_sequence(c.tokens));
      for (auto& in : inputs)
        for (auto& x : in) x = static_cast<token_id>(g.below(c.vocab));
      fmt::print("{}; mean |delta| of log p(token) over {} random {}-token inputs (seed {})\n\n", c.name, n_inputs,
                 c.tokens, seed);
      fmt::print("| rule \\ steps |");
      for (std::size_t s : steps) fmt::print(" {} |", s);
      fmt::print("\n|---|");
      for (std::size_t k = 0; k < steps.size(); ++k) fmt::print("---|");
      fmt::print("\n");
      for (integration_rule rule : rules) {
        fmt::print("| {} |", to_string(rule));
        for (std::size_t s : steps) {
          double gap = 0;
          for (const auto& in : inputs) {
            integrated_gradients_options o;
            o.steps = s;
            o.rule = rule;
            o.execution.threads = 1;
            const auto r = integrated_gradients(model, in, target::log_probability(in[0]), o);
            gap += std::abs(*r.convergence_delta) / static_cast<double>(inputs.size());
          }
          fmt::print(" {:.1e} |", gap);
        }
        fmt::print("\n");
      }
      fmt::print("\n");
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "integration_rules_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}

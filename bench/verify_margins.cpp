// How far below its tolerance each finite-difference check of the adapter conformance kit stays
// on correct models: glassbox::verify_adapter over 40 seeds on the bundled model (models/reviews)
// and on a small random GPT-2 with large weights, in float and in double. Prints, per check, the
// median and the largest measured error and the tolerance (docs/concepts.md, "The checks").
//
//   verify_margins [model directory]
#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "glassbox/datasets/reviews.hpp"
#include "glassbox/models/gpt2.hpp"
#include "glassbox/verify.hpp"

#ifndef GLASSBOX_SOURCE_DIR
#define GLASSBOX_SOURCE_DIR "."
#endif

namespace {

constexpr std::size_t seeds = 40;

// A 2-block GPT-2 with weights N(0, 0.4) and LayerNorm weights 1 + N(0, 0.2): every nonlinearity
// away from its linear regime (as the unit tests use).
template <class S>
glassbox::models::basic_gpt2<S> random_gpt2() {
  glassbox::models::gpt2_config c;
  c.n_layer = 2;
  c.n_head = 2;
  c.n_embd = 8;
  c.n_positions = 10;
  c.vocab_size = 13;
  const auto table = glassbox::models::gpt2_parameter_table(c);
  std::vector<S> p(table.back().offset + table.back().size);
  glassbox::rng g(7);
  for (const auto& t : table) {
    const bool ln_weight = t.name.find("ln_") != std::string::npos && t.name.ends_with(".weight");
    for (std::size_t i = 0; i < t.size; ++i)
      p[t.offset + i] = static_cast<S>(ln_weight ? 1.0 + g.normal(0, 0.2) : g.normal(0, 0.4));
  }
  return glassbox::models::basic_gpt2<S>(c, p);
}

template <class M>
void sweep(const std::string& name, const M& model, const glassbox::token_sequence& tokens) {
  std::map<std::string, std::vector<double>> errors;
  std::map<std::string, double> tolerance;
  std::vector<std::string> order;
  std::size_t failed = 0;
  for (std::size_t seed = 0; seed < seeds; ++seed) {
    glassbox::verify_options o;
    o.seed = seed;
    const auto report = glassbox::verify_adapter(model, tokens, o);
    failed += !report.passed();
    for (const auto& c : report.checks) {
      if (c.name.find("finite differences") == std::string::npos || c.status == glassbox::check_status::skipped)
        continue;
      if (!errors.contains(c.name)) order.push_back(c.name);
      errors[c.name].push_back(c.measured);
      tolerance[c.name] = c.tolerance;
    }
  }
  fmt::print("{} ({} seeds, {} reports with a failure)\n", name, seeds, failed);
  fmt::print("  {:<48} {:>10} {:>10} {:>10} {:>8}\n", "check", "median", "largest", "tolerance", "margin");
  for (const auto& check : order) {
    auto v = errors[check];
    std::sort(v.begin(), v.end());
    fmt::print("  {:<48} {:>10.1e} {:>10.1e} {:>10.0e} {:>7.0f}x\n", check, v[v.size() / 2], v.back(), tolerance[check],
               tolerance[check] / v.back());
  }
  fmt::print("\n");
}

}  // namespace

int main(int argc, char** argv) {
  const std::string dir = argc > 1 ? argv[1] : GLASSBOX_SOURCE_DIR "/models/reviews";
  const auto review = glassbox::datasets::encode_review("the food was not good but the service was excellent . =>");
  const glassbox::token_sequence small = {3, 11, 0, 7, 7, 12};
  sweep("bundled model (models/reviews), float", glassbox::models::gpt2::load(dir), review);
  sweep("bundled model (models/reviews), double", glassbox::models::basic_gpt2<double>::load(dir), review);
  sweep("random GPT-2 with large weights, float", random_gpt2<float>(), small);
  sweep("random GPT-2 with large weights, double", random_gpt2<double>(), small);
  return 0;
}

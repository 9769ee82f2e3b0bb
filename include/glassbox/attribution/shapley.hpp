// glassbox: Shapley values of features, by permutation sampling (Strumbelj & Kononenko 2010;
// Captum's ShapleyValueSampling) and exactly by enumerating every coalition (the reference for
// the sampling methods). docs/attribution.md has the formulas and defaults.
#pragma once

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <span>
#include <vector>

#include "glassbox/attribution/baseline.hpp"
#include "glassbox/attribution/detail/perturbation_coalitions.hpp"
#include "glassbox/attribution/detail/perturbation_inputs.hpp"
#include "glassbox/core/error.hpp"
#include "glassbox/core/execution.hpp"
#include "glassbox/core/model.hpp"
#include "glassbox/core/random.hpp"
#include "glassbox/core/result.hpp"
#include "glassbox/core/target.hpp"
#include "glassbox/core/types.hpp"

namespace glassbox {

/// Options of Shapley value sampling.
struct shapley_sampling_options {
  std::size_t n_samples = 25;  ///< random permutations (Captum's default)
  bool antithetic = false;     ///< draw permutations in pairs: a permutation and its reverse (n_samples even)
  std::optional<glassbox::baseline> baseline{};  ///< what an absent token becomes; empty = per model (baseline.hpp)
  std::vector<int> feature_map{};                ///< one group id per token (-1 = held fixed); empty = one per token
  std::uint64_t seed = 0;                        ///< the permutations' seed
  execution_options execution{};                 ///< batch size, threads, progress, cancellation
};

/// Options of exact Shapley values.
struct shapley_exact_options {
  static constexpr std::size_t max_features = 20;  ///< 2^20 evaluations; more features are refused
  std::optional<glassbox::baseline> baseline{};    ///< what an absent token becomes; empty = per model (baseline.hpp)
  std::vector<int> feature_map{};                  ///< one group id per token (-1 = held fixed); empty = one per token
  execution_options execution{};                   ///< batch size, threads, progress, cancellation
};

/// Shapley value sampling: for each of `n_samples` random permutations of the features, the features
/// are added one by one to the all-absent input in permutation order, and each feature's marginal
/// contribution f(prefix + feature) - f(prefix) is recorded; its score is the mean over permutations,
/// and its standard error the sample standard deviation of the contributions over sqrt(n_samples)
/// (with `antithetic`, over the n_samples/2 means of a permutation and its reverse, which are the
/// independent units; NaN with fewer than two units). Every permutation's contributions sum to
/// f(x) - f(baseline), so efficiency holds for any n_samples. Costs n_samples (n - 1) + 2 evaluations.
///
/// Example: `auto r = glassbox::shapley_sampling(model, tokens, t, {.n_samples = 100, .antithetic = true});`
template <class M>
attribution_result shapley_sampling(const M& model, token_span tokens, const target& t,
                                    const shapley_sampling_options& options = {}) {
  static_assert(check_model<M>());
  detail::require(options.n_samples >= 1, "glassbox::shapley_sampling: n_samples must be >= 1, got {}",
                  options.n_samples);
  detail::require(!options.antithetic || options.n_samples % 2 == 0,
                  "glassbox::shapley_sampling: n_samples must be even when antithetic is true, got {}",
                  options.n_samples);
  const glassbox::baseline used = detail::resolve_baseline(model, options.baseline, "shapley_sampling");
  detail::coalition_evaluator<M> eval(model, tokens, t, used, options.feature_map, "shapley_sampling");
  const std::size_t n = eval.features(), permutations = options.n_samples;

  // Every random draw happens here, before any model call.
  rng gen(options.seed);
  std::vector<std::vector<std::size_t>> order(permutations);
  for (std::size_t p = 0; p < permutations; ++p) {
    if (options.antithetic && p % 2 == 1)
      order[p].assign(order[p - 1].rbegin(), order[p - 1].rend());
    else
      order[p] = detail::random_permutation(n, gen);
  }

  // Coalition 0: everything present; 1: everything absent; 2 + p (n - 1) + (j - 1): the first j
  // features of permutation p present (1 <= j <= n - 1).
  const std::vector<double> values = eval.evaluate(
      permutations * (n - 1) + 2,
      [&](std::size_t i, std::span<std::uint8_t> present) {
        if (i < 2) {
          std::fill(present.begin(), present.end(), static_cast<std::uint8_t>(i == 0));
          return;
        }
        const std::size_t p = (i - 2) / (n - 1), j = (i - 2) % (n - 1) + 1;
        std::fill(present.begin(), present.end(), std::uint8_t{0});
        for (std::size_t k = 0; k < j; ++k) present[order[p][k]] = 1;
      },
      options.execution);
  auto prefix_value = [&](std::size_t p, std::size_t j) {
    if (j == 0) return values[1];
    if (j == n) return values[0];
    return values[2 + p * (n - 1) + (j - 1)];
  };
  // contributions[u * n + f]: feature f's contribution in unit u (a permutation, or an antithetic pair's mean).
  const std::size_t units = options.antithetic ? permutations / 2 : permutations;
  std::vector<double> contributions(units * n, 0.0);
  for (std::size_t p = 0; p < permutations; ++p) {
    const std::size_t u = options.antithetic ? p / 2 : p;
    const double share = options.antithetic ? 0.5 : 1.0;
    for (std::size_t j = 1; j <= n; ++j)
      contributions[u * n + order[p][j - 1]] += share * (prefix_value(p, j) - prefix_value(p, j - 1));
  }
  std::vector<double> mean(n, 0.0), standard_error(n, std::numeric_limits<double>::quiet_NaN());
  for (std::size_t f = 0; f < n; ++f) {
    for (std::size_t u = 0; u < units; ++u) mean[f] += contributions[u * n + f];
    mean[f] /= static_cast<double>(units);
    if (units >= 2) {
      double squares = 0;
      for (std::size_t u = 0; u < units; ++u) {
        const double d = contributions[u * n + f] - mean[f];
        squares += d * d;
      }
      standard_error[f] = std::sqrt(squares / static_cast<double>(units - 1) / static_cast<double>(units));
    }
  }

  attribution_result r;
  r.method = "shapley_sampling";
  r.token_ids.assign(tokens.begin(), tokens.end());
  r.scores = detail::token_scores(eval.groups(), mean);
  r.standard_errors = detail::token_scores(eval.groups(), standard_error);
  r.target = t;
  r.target_value = values[0];
  r.baseline_value = values[1];
  double sum = 0;
  for (double m : mean) sum += m;
  r.convergence_delta = sum - (values[0] - values[1]);
  r.model_evaluations = eval.evaluations();
  r.options = {{"n_samples", static_cast<std::int64_t>(options.n_samples)},
               {"antithetic", options.antithetic},
               {"seed", static_cast<std::int64_t>(options.seed)}};
  detail::record_common_options(r.options, used, options.feature_map, options.execution);
  return r;
}

/// Exact Shapley values by enumerating all 2^n coalitions of the n features (n <= 20):
///   phi_i = sum over S not containing i of |S|! (n - |S| - 1)! / n! (f(S + i) - f(S)),
/// accumulated in double; the 2^n evaluations go through evaluate_target in batches. The reference
/// for kernel_shap and shapley_sampling. Costs 2^n evaluations (f(x) and f(baseline) among them).
///
/// Example: `auto r = glassbox::shapley_exact(model, tokens, t, {.feature_map = {0, 0, 1, 2, 3, 3}});`
template <class M>
attribution_result shapley_exact(const M& model, token_span tokens, const target& t,
                                 const shapley_exact_options& options = {}) {
  static_assert(check_model<M>());
  const glassbox::baseline used = detail::resolve_baseline(model, options.baseline, "shapley_exact");
  detail::coalition_evaluator<M> eval(model, tokens, t, used, options.feature_map, "shapley_exact");
  const std::size_t n = eval.features();
  detail::require(n <= shapley_exact_options::max_features,
                  "glassbox::shapley_exact: the number of features must be <= {} (2^n evaluations), got {}; group "
                  "tokens with feature_map, or use kernel_shap or shapley_sampling",
                  shapley_exact_options::max_features, n);
  const std::size_t coalitions = std::size_t{1} << n;  // bit i of a coalition's index: feature i present
  const std::vector<double> values = eval.evaluate(
      coalitions,
      [&](std::size_t i, std::span<std::uint8_t> present) {
        for (std::size_t f = 0; f < n; ++f) present[f] = static_cast<std::uint8_t>((i >> f) & 1U);
      },
      options.execution);
  std::vector<double> weight(n);
  for (std::size_t s = 0; s < n; ++s) weight[s] = detail::shapley_weight(n, s);
  std::vector<double> phi(n, 0.0);
  for (std::size_t f = 0; f < n; ++f) {
    const std::size_t bit = std::size_t{1} << f;
    double sum = 0;
    for (std::size_t s = 0; s < coalitions; ++s) {
      if ((s & bit) != 0) continue;
      sum += weight[static_cast<std::size_t>(std::popcount(s))] * (values[s | bit] - values[s]);
    }
    phi[f] = sum;
  }

  attribution_result r;
  r.method = "shapley_exact";
  r.token_ids.assign(tokens.begin(), tokens.end());
  r.scores = detail::token_scores(eval.groups(), phi);
  r.target = t;
  r.target_value = values[coalitions - 1];
  r.baseline_value = values[0];
  double sum = 0;
  for (double p : phi) sum += p;
  r.convergence_delta = sum - (values[coalitions - 1] - values[0]);
  r.model_evaluations = eval.evaluations();
  detail::record_common_options(r.options, used, options.feature_map, options.execution);
  return r;
}

}  // namespace glassbox

// glassbox: KernelSHAP (Lundberg & Lee 2017) with the shap library's KernelExplainer strategy:
// paired coalitions, sizes enumerated from the extremes inward while they fit the budget, the
// rest sampled without replacement, and the efficiency constraint solved exactly.
// docs/attribution.md has the formulas, defaults and the differences.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "glassbox/attribution/baseline.hpp"
#include "glassbox/attribution/detail/perturbation_coalitions.hpp"
#include "glassbox/attribution/detail/perturbation_inputs.hpp"
#include "glassbox/attribution/detail/perturbation_regression.hpp"
#include "glassbox/core/error.hpp"
#include "glassbox/core/execution.hpp"
#include "glassbox/core/model.hpp"
#include "glassbox/core/random.hpp"
#include "glassbox/core/result.hpp"
#include "glassbox/core/target.hpp"
#include "glassbox/core/types.hpp"
#include "glassbox/detail/eigen.hpp"

namespace glassbox {

/// Options of KernelSHAP.
struct kernel_shap_options {
  std::size_t n_samples = 0;  ///< coalitions evaluated besides x and the baseline; 0 = 2n + 2048 (shap's "auto"),
                              ///< at most 2^n - 2 (then the values are exact)
  bool paired = true;         ///< draw each coalition with its complement (antithetic sampling)
  std::optional<glassbox::baseline> baseline{};  ///< what an absent token becomes; empty = per model (baseline.hpp)
  std::vector<int> feature_map{};                ///< one group id per token (-1 = held fixed); empty = one per token
  std::uint64_t seed = 0;                        ///< the coalitions' seed
  execution_options execution{};                 ///< batch size, threads, progress, cancellation
};

namespace detail {

/// The KernelSHAP estimate from a coalition design, f(x) and f(baseline) and the design's values:
/// the Shapley-kernel weighted least squares fit of f(z) - f(baseline) = z . phi under
/// sum(phi) = f(x) - f(baseline), solved exactly (detail::constrained_least_squares). A template on
/// the regression's scalar only so that the solver is compiled where it is called (docs/building.md).
template <class Real = double>
std::vector<double> kernel_shap_solve(const coalition_design& design, std::span<const double> values, double full,
                                      double empty) {
  const std::size_t n = design.features, m = design.size();
  row_matrix<Real> z(static_cast<Eigen::Index>(m), static_cast<Eigen::Index>(n));
  std::vector<double> y(m);
  for (std::size_t j = 0; j < m; ++j) {
    for (std::size_t i = 0; i < n; ++i)
      z(static_cast<Eigen::Index>(j), static_cast<Eigen::Index>(i)) = design.masks[j * n + i];
    y[j] = values[j] - empty;
  }
  return constrained_least_squares(z, y, design.weights, full - empty);
}

/// The number of coalitions KernelSHAP evaluates for n features and a requested n_samples (0 = auto).
template <class = void>
inline std::size_t kernel_shap_budget(std::size_t n, std::size_t requested) {
  std::size_t budget = requested == 0 ? 2 * n + 2048 : requested;
  if (n < 63) budget = std::min<std::size_t>(budget, (std::size_t{1} << n) - 2);
  return budget;
}

}  // namespace detail

/// KernelSHAP: Shapley values as the solution of the Shapley-kernel weighted linear regression
/// f(z) - f(baseline) ~ z . phi over coalitions z, under the efficiency constraint
/// sum(phi) = f(x) - f(baseline), which is solved exactly (not by a large weight). Coalitions come
/// from detail::kernel_shap_design: sizes enumerated in full from the extremes inward while they fit
/// the budget, the rest drawn without replacement, stratified by size in proportion to the kernel's
/// size distribution, in complementary pairs. With n_samples >= 2^n - 2 every coalition is
/// evaluated and the values are the exact Shapley values. Costs min(n_samples, 2^n - 2) + 2
/// evaluations. convergence_delta is the (rounding-level) efficiency gap over features.
///
/// Example: `auto r = glassbox::kernel_shap(model, tokens, t, {.n_samples = 512, .seed = 1});`
template <class M>
attribution_result kernel_shap(const M& model, token_span tokens, const target& t,
                               const kernel_shap_options& options = {}) {
  static_assert(check_model<M>());
  detail::require(options.n_samples == 0 || options.n_samples >= 2,
                  "glassbox::kernel_shap: n_samples must be 0 (auto) or >= 2, got {}", options.n_samples);
  const glassbox::baseline used = detail::resolve_baseline(model, options.baseline, "kernel_shap");
  detail::coalition_evaluator<M> eval(model, tokens, t, used, options.feature_map, "kernel_shap");
  const std::size_t n = eval.features();
  const std::size_t budget = detail::kernel_shap_budget(n, options.n_samples);

  // Every random draw happens here, before any model call.
  rng gen(options.seed);
  const detail::coalition_design design = detail::kernel_shap_design(n, budget, options.paired, gen);

  // Coalition 0: everything present; 1: everything absent; 2 + j: design coalition j.
  const std::vector<double> values = eval.evaluate(
      design.size() + 2,
      [&](std::size_t i, std::span<std::uint8_t> present) {
        if (i < 2)
          std::fill(present.begin(), present.end(), static_cast<std::uint8_t>(i == 0));
        else
          std::copy_n(design.masks.data() + (i - 2) * n, n, present.data());
      },
      options.execution);
  const std::vector<double> phi =
      detail::kernel_shap_solve(design, std::span<const double>(values).subspan(2), values[0], values[1]);

  attribution_result r;
  r.method = "kernel_shap";
  r.token_ids.assign(tokens.begin(), tokens.end());
  r.scores = detail::token_scores(eval.groups(), phi);
  r.target = t;
  r.target_value = values[0];
  r.baseline_value = values[1];
  double sum = 0;
  for (double p : phi) sum += p;
  r.convergence_delta = sum - (values[0] - values[1]);
  r.model_evaluations = eval.evaluations();
  r.options = {{"n_samples", static_cast<std::int64_t>(options.n_samples)},
               {"coalitions", static_cast<std::int64_t>(design.size())},
               {"exact", design.exact},
               {"paired", options.paired},
               {"seed", static_cast<std::int64_t>(options.seed)}};
  detail::record_common_options(r.options, used, options.feature_map, options.execution);
  return r;
}

}  // namespace glassbox

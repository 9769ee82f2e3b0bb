// glassbox: LIME, local interpretable model-agnostic explanations (Ribeiro, Singh & Guestrin 2016;
// Captum's Lime). docs/attribution.md has the formulas, defaults and the differences.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "glassbox/attribution/baseline.hpp"
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

/// The interpretable model LIME fits to the perturbed samples.
enum class lime_surrogate {
  ridge,  ///< weighted ridge regression, closed form (the lime library's default surrogate)
  lasso,  ///< weighted lasso by coordinate descent (Captum's default surrogate)
};

/// The stable name of a surrogate ("ridge", "lasso").
constexpr std::string_view to_string(lime_surrogate s) { return s == lime_surrogate::ridge ? "ridge" : "lasso"; }

/// Options of LIME.
struct lime_options {
  std::size_t n_samples = 25;  ///< perturbed samples the surrogate is fit to (Captum's Lime.attribute default)
  double kernel_width = 1.0;   ///< w in exp(-d^2 / (2 w^2)), d the cosine distance to the unperturbed input (Captum)
  lime_surrogate surrogate = lime_surrogate::ridge;  ///< the interpretable model
  std::optional<double> alpha{};  ///< regularisation; default 1.0 (ridge, as lime), 0.01 (lasso, as Captum)
  std::optional<glassbox::baseline> baseline{};  ///< what an absent token becomes; empty = per model (baseline.hpp)
  std::vector<int> feature_map{};                ///< one group id per token (-1 = held fixed); empty = one per token
  std::uint64_t seed = 0;                        ///< the samples' seed
  execution_options execution{};                 ///< batch size, threads, progress, cancellation
};

/// LIME: `n_samples` binary masks z over the features, each feature present with probability 1/2
/// (Captum's default sampling), weighted by the exponential kernel exp(-d(z)^2 / (2 w^2)) on the
/// cosine distance d(z) = 1 - cos(z, 1) between the mask and the all-present mask (1 for the empty
/// mask). A surrogate g(z) = b + z . beta is fit to f(z) by weighted ridge (default) or lasso, both
/// with an unpenalised intercept; a feature's score is its coefficient, carried by each of its tokens.
/// The result records the surrogate's weighted R^2 on its samples and its intercept as the options
/// "surrogate_r2" and "surrogate_intercept". Costs n_samples + 2 evaluations (f(x), f(baseline)).
///
/// Example: `auto r = glassbox::lime(model, tokens, t, {.n_samples = 500, .seed = 7});`
template <class M>
attribution_result lime(const M& model, token_span tokens, const target& t, const lime_options& options = {}) {
  static_assert(check_model<M>());
  detail::require(options.n_samples >= 1, "glassbox::lime: n_samples must be >= 1, got {}", options.n_samples);
  detail::require(options.kernel_width > 0 && std::isfinite(options.kernel_width),
                  "glassbox::lime: kernel_width must be > 0 and finite, got {}", options.kernel_width);
  const double alpha = options.alpha.value_or(options.surrogate == lime_surrogate::ridge ? 1.0 : 0.01);
  detail::require(alpha >= 0 && std::isfinite(alpha), "glassbox::lime: alpha must be >= 0 and finite, got {}", alpha);
  const glassbox::baseline used = detail::resolve_baseline(model, options.baseline, "lime");
  detail::coalition_evaluator<M> eval(model, tokens, t, used, options.feature_map, "lime");
  const std::size_t n = eval.features(), samples = options.n_samples;

  // Every random draw happens here, before any model call.
  rng gen(options.seed);
  std::vector<std::uint8_t> masks(samples * n);
  for (auto& m : masks) m = gen.bernoulli(0.5) ? 1 : 0;

  // Coalition 0: everything present; 1: everything absent; 2 + i: sample i.
  const std::vector<double> values = eval.evaluate(
      samples + 2,
      [&](std::size_t i, std::span<std::uint8_t> present) {
        if (i < 2)
          std::fill(present.begin(), present.end(), static_cast<std::uint8_t>(i == 0));
        else
          std::copy_n(masks.data() + (i - 2) * n, n, present.data());
      },
      options.execution);

  detail::row_matrix<double> z(static_cast<Eigen::Index>(samples), static_cast<Eigen::Index>(n));
  std::vector<double> y(samples), w(samples);
  for (std::size_t i = 0; i < samples; ++i) {
    std::size_t on = 0;
    for (std::size_t f = 0; f < n; ++f) {
      z(static_cast<Eigen::Index>(i), static_cast<Eigen::Index>(f)) = masks[i * n + f];
      on += masks[i * n + f];
    }
    // cos(z, 1) = |z| / sqrt(|z| n); an empty mask has cosine similarity 0 (as torch's CosineSimilarity).
    const double distance = on == 0 ? 1.0 : 1.0 - std::sqrt(static_cast<double>(on) / static_cast<double>(n));
    w[i] = std::exp(-distance * distance / (2 * options.kernel_width * options.kernel_width));
    y[i] = values[2 + i];
  }
  const detail::linear_fit fit = options.surrogate == lime_surrogate::ridge
                                     ? detail::weighted_ridge(z, y, w, alpha)
                                     : detail::weighted_lasso(z, y, w, alpha, "lime");

  attribution_result r;
  r.method = "lime";
  r.token_ids.assign(tokens.begin(), tokens.end());
  r.scores = detail::token_scores(eval.groups(), fit.coefficients);
  r.target = t;
  r.target_value = values[0];
  r.baseline_value = values[1];
  r.model_evaluations = eval.evaluations();
  r.options = {{"n_samples", static_cast<std::int64_t>(options.n_samples)},
               {"kernel_width", options.kernel_width},
               {"surrogate", std::string(to_string(options.surrogate))},
               {"alpha", alpha},
               {"seed", static_cast<std::int64_t>(options.seed)}};
  detail::record_common_options(r.options, used, options.feature_map, options.execution);
  r.options.push_back({"surrogate_r2", fit.r2});
  r.options.push_back({"surrogate_intercept", fit.intercept});
  return r;
}

}  // namespace glassbox

// glassbox: occlusion with sliding windows and feature ablation (Zeiler & Fergus 2014; Captum's
// Occlusion and FeatureAblation). docs/attribution.md has the formulas and defaults.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "glassbox/attribution/baseline.hpp"
#include "glassbox/attribution/detail/perturbation_inputs.hpp"
#include "glassbox/core/error.hpp"
#include "glassbox/core/execution.hpp"
#include "glassbox/core/model.hpp"
#include "glassbox/core/result.hpp"
#include "glassbox/core/target.hpp"
#include "glassbox/core/types.hpp"

namespace glassbox {

/// Options of occlusion. A window covers `window` consecutive features (tokens by default).
struct occlusion_options {
  std::size_t window = 1;                        ///< sliding window width in features (Captum: sliding_window_shapes)
  std::size_t stride = 1;                        ///< step between window starts (Captum's default strides = 1)
  std::optional<glassbox::baseline> baseline{};  ///< what an occluded token becomes; empty = per model (baseline.hpp)
  std::vector<int> feature_map{};                ///< one group id per token (-1 = held fixed); empty = one per token
  execution_options execution{};                 ///< batch size (Captum's perturbations_per_eval), threads, progress
};

/// Options of feature ablation.
struct feature_ablation_options {
  std::optional<glassbox::baseline> baseline{};  ///< what an ablated token becomes; empty = per model (baseline.hpp)
  std::vector<int> feature_map{};                ///< one group id per token (-1 = held fixed); empty = one per token
  execution_options execution{};                 ///< batch size (Captum's perturbations_per_eval), threads, progress
};

/// Occlusion (Captum's Occlusion, on the sequence of features): windows of `window` features start at
/// 0, stride, 2 stride, ... (ceil((n - window) / stride) + 1 windows, the last cut at the end); each is
/// occluded alone, and a feature's score is the mean of f(x) - f(x with the window occluded) over the
/// windows that cover it. Every token carries its feature's score. Costs windows + 2 evaluations
/// (f(x) and f(baseline) included).
///
/// Example: `auto r = glassbox::occlusion(model, tokens, glassbox::target::log_probability(label), {.window = 3});`
template <class M>
attribution_result occlusion(const M& model, token_span tokens, const target& t,
                             const occlusion_options& options = {}) {
  static_assert(check_model<M>());
  constexpr std::string_view caller = "occlusion";
  detail::require(options.window >= 1, "glassbox::occlusion: window must be >= 1, got {}", options.window);
  detail::require(options.stride >= 1, "glassbox::occlusion: stride must be >= 1, got {}", options.stride);
  const glassbox::baseline used = detail::resolve_baseline(model, options.baseline, caller);
  detail::coalition_evaluator<M> eval(model, tokens, t, used, options.feature_map, caller);
  const std::size_t n = eval.features();
  detail::require(options.window <= n, "glassbox::occlusion: window must be <= the number of features ({}), got {}", n,
                  options.window);
  detail::require(options.stride <= options.window || options.window == n,
                  "glassbox::occlusion: stride must be <= window ({}) unless the window covers every feature, got {}",
                  options.window, options.stride);
  const std::size_t windows = (n - options.window + options.stride - 1) / options.stride + 1;
  // Coalition 0: everything present; 1: everything absent; 2 + j: window j occluded.
  const std::vector<double> values = eval.evaluate(
      windows + 2,
      [&](std::size_t i, std::span<std::uint8_t> present) {
        std::fill(present.begin(), present.end(), static_cast<std::uint8_t>(i != 1));
        if (i >= 2) {
          const std::size_t begin = (i - 2) * options.stride;
          for (std::size_t f = begin; f < std::min(n, begin + options.window); ++f) present[f] = 0;
        }
      },
      options.execution);
  std::vector<double> total(n, 0.0), covered(n, 0.0);
  for (std::size_t j = 0; j < windows; ++j) {
    const std::size_t begin = j * options.stride;
    for (std::size_t f = begin; f < std::min(n, begin + options.window); ++f) {
      total[f] += values[0] - values[2 + j];
      covered[f] += 1;
    }
  }
  for (std::size_t f = 0; f < n; ++f) total[f] /= covered[f];

  attribution_result r;
  r.method = "occlusion";
  r.token_ids.assign(tokens.begin(), tokens.end());
  r.scores = detail::token_scores(eval.groups(), total);
  r.target = t;
  r.target_value = values[0];
  r.baseline_value = values[1];
  r.model_evaluations = eval.evaluations();
  r.options = {{"window", static_cast<std::int64_t>(options.window)},
               {"stride", static_cast<std::int64_t>(options.stride)}};
  detail::record_common_options(r.options, used, options.feature_map, options.execution);
  return r;
}

/// Feature ablation (Captum's FeatureAblation): each feature is made absent alone, and its score is
/// f(x) - f(x without the feature); every token carries its feature's score. Costs n + 2 evaluations
/// (f(x) and f(baseline) included).
///
/// Example: `auto r = glassbox::feature_ablation(model, tokens, t, {.feature_map = {0, 0, 1, 2, 2, -1}});`
template <class M>
attribution_result feature_ablation(const M& model, token_span tokens, const target& t,
                                    const feature_ablation_options& options = {}) {
  static_assert(check_model<M>());
  const glassbox::baseline used = detail::resolve_baseline(model, options.baseline, "feature_ablation");
  detail::coalition_evaluator<M> eval(model, tokens, t, used, options.feature_map, "feature_ablation");
  const std::size_t n = eval.features();
  // Coalition 0: everything present; 1: everything absent; 2 + f: feature f absent.
  const std::vector<double> values = eval.evaluate(
      n + 2,
      [&](std::size_t i, std::span<std::uint8_t> present) {
        std::fill(present.begin(), present.end(), static_cast<std::uint8_t>(i != 1));
        if (i >= 2) present[i - 2] = 0;
      },
      options.execution);
  std::vector<double> scores(n);
  for (std::size_t f = 0; f < n; ++f) scores[f] = values[0] - values[2 + f];

  attribution_result r;
  r.method = "feature_ablation";
  r.token_ids.assign(tokens.begin(), tokens.end());
  r.scores = detail::token_scores(eval.groups(), scores);
  r.target = t;
  r.target_value = values[0];
  r.baseline_value = values[1];
  r.model_evaluations = eval.evaluations();
  detail::record_common_options(r.options, used, options.feature_map, options.execution);
  return r;
}

}  // namespace glassbox

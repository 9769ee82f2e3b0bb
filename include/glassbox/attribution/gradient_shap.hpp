// glassbox: GradientSHAP (Lundberg & Lee 2017; Captum's GradientShap), a Monte Carlo estimate of
// expected gradients: for k = 1 .. samples, draw a baseline x'_k uniformly from a list of
// baselines, a point alpha_k ~ U(0, 1) on the path, and optional Gaussian noise on the input
// x_k = x + N(0, stdev^2); the attribution per dimension is
//   phi = mean_k (x_k - x'_k) * grad f(x'_k + alpha_k (x_k - x'_k)).
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "glassbox/attribution/baseline.hpp"
#include "glassbox/attribution/detail/gradient_common.hpp"
#include "glassbox/attribution/saliency.hpp"
#include "glassbox/core/error.hpp"
#include "glassbox/core/execution.hpp"
#include "glassbox/core/model.hpp"
#include "glassbox/core/random.hpp"
#include "glassbox/core/result.hpp"
#include "glassbox/core/target.hpp"
#include "glassbox/core/types.hpp"

namespace glassbox {

/// Options of GradientSHAP; defaults as Captum's GradientShap.attribute.
struct gradient_shap_options {
  std::size_t samples = 5;  ///< random (baseline, alpha, noise) draws (Captum's n_samples)
  double stdev = 0.0;       ///< Gaussian noise on the input embeddings (Captum's stdevs)
  /// The distribution of baselines, drawn uniformly (Captum requires one; glassbox defaults to the zero embedding).
  std::vector<glassbox::baseline> baselines = {glassbox::baseline::zero()};
  std::uint64_t seed = 0;  ///< all draws come from glassbox::rng(seed) on the calling thread
  token_aggregation aggregation = token_aggregation::sum;  ///< per-token reduction; signed sum by default
  execution_options execution{};                           ///< batching, threads, progress, cancellation
};

/// GradientSHAP: phi = mean_k (x_k - x'_k) * grad f(x'_k + alpha_k (x_k - x'_k)) per dimension, with
/// baselines x'_k drawn uniformly from options.baselines, alpha_k ~ U(0, 1) and x_k = x + N(0, stdev^2).
/// Completeness holds in expectation only: convergence_delta = sum(scores) - (f(x) - mean_k f(x'_k))
/// is a Monte Carlo error (exactly 0 for a model linear in its embeddings and stdev 0). Per-token
/// standard errors of the mean are reported when the aggregation is the (linear) sum.
/// Cost: samples forward + backward passes (one batched dispatch) and 1 + (distinct baselines drawn)
/// forward passes.
///
/// Example: `auto r = glassbox::gradient_shap(model, tokens, t, {.samples = 64, .baselines = {b::zero(), b::pad()}});`
template <class M>
attribution_result gradient_shap(const M& model, token_span tokens, const target& t,
                                 const gradient_shap_options& options = {}) {
  static_assert(check_differentiable_model<M>());
  constexpr std::string_view caller = "gradient_shap";
  detail::require(options.samples >= 1, "glassbox::gradient_shap: samples must be >= 1, got {}", options.samples);
  detail::require(std::isfinite(options.stdev) && options.stdev >= 0,
                  "glassbox::gradient_shap: stdev must be finite and >= 0, got {}", options.stdev);
  detail::require(!options.baselines.empty(), "glassbox::gradient_shap: baselines must not be empty");
  detail::require_tokens(tokens, caller);
  const tensor2 x = detail::model_embeddings(model, tokens, "gradient_shap");
  const std::vector<tensor2> bases = detail::baseline_embedding_list(
      model, tokens, std::span<const glassbox::baseline>(options.baselines), caller, "baselines");
  for (const auto& b : bases)
    detail::require<shape_error>(b.shape() == x.shape(),
                                 "glassbox::gradient_shap: baseline must be [{}, {}] embeddings, got [{}, {}]",
                                 x.shape(0), x.shape(1), b.shape(0), b.shape(1));

  // Every random number is drawn here, sample by sample: baseline index, alpha, then the noise.
  const std::size_t n = options.samples, width = x.size();
  rng g(options.seed);
  std::vector<std::size_t> which(n);
  std::vector<double> alpha(n);
  std::vector<tensor2> noisy(n, x), points(n, x);
  for (std::size_t k = 0; k < n; ++k) {
    which[k] = static_cast<std::size_t>(g.below(bases.size()));
    alpha[k] = g.uniform();
    if (options.stdev > 0)
      for (auto& v : noisy[k]) v = static_cast<float>(static_cast<double>(v) + options.stdev * g.normal());
    const tensor2& b = bases[which[k]];
    for (std::size_t i = 0; i < width; ++i) {
      const float bi = b.data()[i];  // x' + alpha (x - x') in float, as Captum
      points[k].data()[i] = bi + static_cast<float>(alpha[k]) * (noisy[k].data()[i] - bi);
    }
  }

  // f(x) and f at every distinct baseline drawn, then the gradients at the sampled points.
  std::map<std::size_t, std::size_t> distinct;  // baseline index -> position in `ends`
  std::vector<tensor2> ends{x};
  for (std::size_t k = 0; k < n; ++k)
    if (distinct.emplace(which[k], ends.size()).second) ends.push_back(bases[which[k]]);
  const std::size_t total = ends.size() + n;
  const std::vector<double> end_values = evaluate_target_on_embeddings(
      model, std::span<const tensor2>(ends), t, detail::progress_slice(options.execution, 0, total), caller);
  const auto grads = embedding_gradients(model, std::span<const tensor2>(points), t,
                                         detail::progress_slice(options.execution, ends.size(), total), caller);

  attribution_matrix phi(x.shape(), 0.0);
  std::vector<std::vector<double>> sample_tokens(n);  // per-sample per-token sums, for standard errors
  double baseline_mean = 0;
  for (std::size_t k = 0; k < n; ++k) {
    const float* xs = noisy[k].data();
    const float* b = bases[which[k]].data();
    const float* gk = grads[k].gradient.data();
    std::vector<double>& per_token = sample_tokens[k];
    per_token.assign(x.shape(0), 0.0);
    for (std::size_t i = 0; i < width; ++i) {
      const double v = (static_cast<double>(xs[i]) - static_cast<double>(b[i])) * static_cast<double>(gk[i]);
      phi.data()[i] += v;
      per_token[i / x.shape(1)] += v;
    }
    baseline_mean += end_values[distinct.at(which[k])];
  }
  for (auto& v : phi) v /= static_cast<double>(n);
  baseline_mean /= static_cast<double>(n);
  detail::require_finite_scores(phi, caller);

  attribution_result r;
  r.method = "gradient_shap";
  r.token_ids.assign(tokens.begin(), tokens.end());
  r.scores = aggregate_tokens(phi, options.aggregation);
  r.embedding_scores = detail::to_float(phi);
  if (options.aggregation == token_aggregation::sum && n >= 2) {
    r.standard_errors.assign(x.shape(0), 0.0);
    for (std::size_t i = 0; i < x.shape(0); ++i) {
      double ss = 0;
      for (std::size_t k = 0; k < n; ++k)
        ss += (sample_tokens[k][i] - r.scores[i]) * (sample_tokens[k][i] - r.scores[i]);
      r.standard_errors[i] = std::sqrt(ss / static_cast<double>(n - 1) / static_cast<double>(n));
    }
  }
  r.target = t;
  r.target_value = end_values[0];
  r.baseline_value = baseline_mean;
  r.convergence_delta = r.total() - (end_values[0] - baseline_mean);
  r.model_evaluations = total;
  r.options = {detail::option("samples", options.samples), detail::option("stdev", options.stdev),
               detail::option("baselines", detail::describe_baselines(options.baselines)),
               detail::seed_option(options.seed), detail::option("aggregation", to_string(options.aggregation))};
  detail::record_execution(r.options, options.execution);
  return r;
}

}  // namespace glassbox

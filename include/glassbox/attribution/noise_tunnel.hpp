// glassbox: the noise tunnel (Captum's NoiseTunnel): SmoothGrad (Smilkov et al. 2017),
// SmoothGrad-squared and VarGrad (Adebayo et al. 2018) over any gradient method.
//
// The input embeddings get Gaussian noise, x_s = x + N(0, stdev^2) per dimension, s = 1 .. samples;
// the inner method attributes every noisy copy (all of them in one batched dispatch), and per
// dimension the noise tunnel returns
//   smoothgrad          mean_s a_s
//   smoothgrad_squared  mean_s a_s^2
//   vargrad             mean_s (a_s - mean a)^2   (the population variance, as Captum)
// then reduces to one score per token as the inner method does. Baselines of the inner method
// (integrated gradients) stay noise-free, as in Captum.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

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

/// How the noise tunnel combines the attributions of the noisy inputs.
enum class noise_tunnel_type {
  smoothgrad,          ///< the mean (Captum's "smoothgrad")
  smoothgrad_squared,  ///< the mean of the squares (Captum's "smoothgrad_sq")
  vargrad,             ///< the variance (Captum's "vargrad")
};

/// The stable name of a noise tunnel type ("smoothgrad", "smoothgrad_squared", "vargrad"), also the result's method.
constexpr std::string_view to_string(noise_tunnel_type type) {
  switch (type) {
    case noise_tunnel_type::smoothgrad:
      return "smoothgrad";
    case noise_tunnel_type::smoothgrad_squared:
      return "smoothgrad_squared";
    case noise_tunnel_type::vargrad:
      return "vargrad";
  }
  return "unknown";
}

/// Options of the noise tunnel; defaults as Captum's NoiseTunnel.attribute.
struct noise_tunnel_options {
  noise_tunnel_type type = noise_tunnel_type::smoothgrad;  ///< Captum's nt_type
  std::size_t samples = 5;                                 ///< noisy copies of the input (Captum's nt_samples)
  double stdev = 1.0;             ///< standard deviation of the noise, in embedding units (Captum's stdevs)
  std::uint64_t seed = 0;         ///< the noise is drawn from glassbox::rng(seed) on the calling thread
  execution_options execution{};  ///< governs every pass; the inner options' execution is not used
};

namespace detail {

template <class = void>
inline void validate_noise_tunnel(const noise_tunnel_options& o) {
  require(o.samples >= 1, "glassbox::noise_tunnel: samples must be >= 1, got {}", o.samples);
  require(o.type != noise_tunnel_type::vargrad || o.samples >= 2,
          "glassbox::noise_tunnel: samples must be >= 2 for vargrad (a variance needs two samples), got {}", o.samples);
  require(std::isfinite(o.stdev) && o.stdev >= 0, "glassbox::noise_tunnel: stdev must be finite and >= 0, got {}",
          o.stdev);
}

}  // namespace detail

/// The noise tunnel over the gradient method `inner` (saliency_options, input_x_gradient_options,
/// integrated_gradients_options, or any GradientMethod): SmoothGrad, SmoothGrad-squared or VarGrad
/// of its per-dimension attributions over `samples` noisy copies of the input embeddings, reduced per
/// token as `inner` reduces. For SmoothGrad of a method with a completeness gap, convergence_delta
/// is the mean of the per-sample gaps and baseline_value f(baseline). Cost: the inner method's cost
/// times samples, plus one forward pass for target_value = f(x) on the noise-free input.
///
/// Example: `auto r = glassbox::noise_tunnel(model, tokens, t, glassbox::integrated_gradients_options{.steps = 16},
///                                           {.type = glassbox::noise_tunnel_type::vargrad, .stdev = 0.1});`
template <class M, class Inner>
attribution_result noise_tunnel(const M& model, token_span tokens, const target& t, const Inner& inner,
                                const noise_tunnel_options& options = {}) {
  static_assert(check_differentiable_model<M>());
  static_assert(GradientMethod<Inner, M>,
                "glassbox::noise_tunnel: the inner method must be saliency_options, input_x_gradient_options, "
                "integrated_gradients_options, or a type with method_name, attribute_embeddings, aggregate_tokens "
                "and recorded_options (see glassbox/attribution/saliency.hpp)");
  detail::validate_noise_tunnel(options);
  detail::require_tokens(tokens, "noise_tunnel");
  const tensor2 x = detail::model_embeddings(model, tokens, "noise_tunnel");

  // All noise is drawn here, sample by sample, before any model call.
  rng g(options.seed);
  std::vector<tensor2> noisy(options.samples, x);
  for (auto& xs : noisy)
    for (auto& v : xs) v = static_cast<float>(static_cast<double>(v) + options.stdev * g.normal());

  execution_options quiet = options.execution;  // the one clean forward pass reports no progress of its own
  quiet.on_progress = nullptr;
  const double clean_value =
      evaluate_target_on_embeddings(model, std::span<const tensor2>(&x, 1), t, quiet, "noise_tunnel")[0];

  const embedding_attributions a =
      attribute_embeddings(model, tokens, std::span<const tensor2>(noisy), t, inner, options.execution);

  const double n = static_cast<double>(options.samples);
  attribution_matrix mean(a.scores[0].shape(), 0.0);
  for (const auto& s : a.scores)
    for (std::size_t i = 0; i < mean.size(); ++i) mean.data()[i] += s.data()[i];
  for (auto& v : mean) v /= n;
  attribution_matrix combined(mean.shape(), 0.0);
  switch (options.type) {
    case noise_tunnel_type::smoothgrad:
      combined = mean;
      break;
    case noise_tunnel_type::smoothgrad_squared:
      for (const auto& s : a.scores)
        for (std::size_t i = 0; i < combined.size(); ++i) combined.data()[i] += s.data()[i] * s.data()[i];
      for (auto& v : combined) v /= n;
      break;
    case noise_tunnel_type::vargrad:  // two passes: never negative
      for (const auto& s : a.scores)
        for (std::size_t i = 0; i < combined.size(); ++i) {
          const double d = s.data()[i] - mean.data()[i];
          combined.data()[i] += d * d;
        }
      for (auto& v : combined) v /= n;
      break;
  }

  attribution_result r;
  r.method = "noise_tunnel";  // the combination is recorded as the option "type"
  r.token_ids.assign(tokens.begin(), tokens.end());
  r.scores = aggregate_tokens(combined, inner);
  r.embedding_scores = detail::to_float(combined);
  r.target = t;
  r.target_value = clean_value;
  if (options.type == noise_tunnel_type::smoothgrad && !a.convergence_deltas.empty()) {
    double delta = 0, base = 0;
    for (double d : a.convergence_deltas) delta += d;
    for (double b : a.baseline_values) base += b;
    r.convergence_delta = delta / n;
    if (!a.baseline_values.empty()) r.baseline_value = base / static_cast<double>(a.baseline_values.size());
  }
  r.model_evaluations = a.model_evaluations + 1;
  r.options = {detail::option("type", to_string(options.type)), detail::option("samples", options.samples),
               detail::option("stdev", options.stdev), detail::seed_option(options.seed),
               detail::option("inner_method", std::string_view(method_name(inner)))};
  for (const named_option& o : recorded_options(inner)) {
    if (o.name == "batch_size" || o.name == "threads") continue;  // the noise tunnel's execution governs
    r.options.push_back({"inner." + o.name, o.value});
  }
  for (const named_option& f : a.facts) r.options.push_back({"inner." + f.name, f.value});
  detail::record_execution(r.options, options.execution);
  return r;
}

/// SmoothGrad as Captum's NoiseTunnel(Saliency): the noise tunnel over saliency (absolute gradients,
/// L2 per token) with `options` (type smoothgrad by default; 5 samples, stdev 1.0).
template <class M>
attribution_result smoothgrad(const M& model, token_span tokens, const target& t,
                              const noise_tunnel_options& options = {}) {
  static_assert(check_differentiable_model<M>());
  return noise_tunnel(model, tokens, t, saliency_options{}, options);
}

}  // namespace glassbox

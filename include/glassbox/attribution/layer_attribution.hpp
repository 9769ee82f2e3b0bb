// glassbox: attribution to a hidden layer's residual stream (InterventionModel): which positions
// at layer k matter for the target.
//
//   layer integrated gradients (Captum's LayerIntegratedGradients): integrated gradients along the
//     straight path from a baseline hidden state h' to the actual hidden state h at index k,
//     phi = (h - h') * integral_0^1 d f(h' + a (h - h')) / d h da, running the model on from layer k;
//   layer gradient x activation (Captum's LayerGradientXActivation): h * d f / d h.
//
// Hidden index k counts as hidden_states does: 0 is the embeddings output, L the last block's output.
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "glassbox/attribution/baseline.hpp"
#include "glassbox/attribution/detail/gradient_common.hpp"
#include "glassbox/attribution/integrated_gradients.hpp"
#include "glassbox/attribution/saliency.hpp"
#include "glassbox/core/error.hpp"
#include "glassbox/core/execution.hpp"
#include "glassbox/core/model.hpp"
#include "glassbox/core/result.hpp"
#include "glassbox/core/target.hpp"
#include "glassbox/core/types.hpp"

namespace glassbox {

/// Options of layer integrated gradients; integration defaults as Captum's LayerIntegratedGradients.
struct layer_integrated_gradients_options {
  std::size_t layer = 0;   ///< hidden index k in [0, L]: 0 = embeddings output, L = last block output
  std::size_t steps = 50;  ///< quadrature points (Captum's n_steps)
  integration_rule rule = integration_rule::gauss_legendre;  ///< Captum's method="gausslegendre"
  /// The baseline hidden state h': zero = zeros; pad / token(id) = the hidden state at layer k of the
  /// sequence made of that token (as Captum, which runs the baseline input through the model);
  /// embedding(v) = v itself ([1, d] or [T, d]) as the hidden state.
  glassbox::baseline baseline = glassbox::baseline::zero();
  std::size_t internal_batch_size = 0;  ///< path points materialised per dispatch call; 0 = all
  bool adaptive = false;                ///< double the steps until |delta| <= tolerance (or max_steps)
  double tolerance = 1e-3;              ///< adaptive: largest accepted |convergence delta|
  std::size_t max_steps = 1024;         ///< adaptive: the steps are never doubled beyond this
  token_aggregation aggregation = token_aggregation::sum;  ///< per-position reduction
  execution_options execution{};                           ///< batching, threads, progress, cancellation
};

/// Options of layer gradient x activation.
struct layer_gradient_x_activation_options {
  std::size_t layer = 0;                                   ///< hidden index k in [0, L]
  token_aggregation aggregation = token_aggregation::sum;  ///< per-position reduction
  execution_options execution{};                           ///< progress and cancellation
};

namespace detail {

/// The hidden state [T, d] at index `layer` for `tokens`, checked (one forward pass).
template <InterventionModel M>
tensor2 hidden_state_at(const M& model, token_span tokens, std::size_t layer, std::string_view caller) {
  const tensor3 all = model_hidden_states(model, tokens, caller);
  require<model_error>(all.dimension() == 3 && all.shape(0) >= 1 && all.shape(1) == tokens.size(),
                       "glassbox::{}: hidden_states returned [{}, {}, {}] for {} tokens", caller, all.shape(0),
                       all.shape(1), all.shape(2), tokens.size());
  require<shape_error>(layer < all.shape(0), "glassbox::{}: layer must be in [0, {}], got {}", caller, all.shape(0) - 1,
                       layer);
  tensor2 h({all.shape(1), all.shape(2)});
  std::copy_n(all.data() + layer * h.size(), h.size(), h.data());
  check_finite(h.data(), h.size(), std::max<std::size_t>(1, h.shape(1)), caller, 0, "hidden states");
  return h;
}

/// The baseline hidden state h' of layer integrated gradients; adds the passes it made to `evaluations`.
template <InterventionModel M>
tensor2 hidden_baseline(const M& model, std::size_t layer, const baseline& b, const tensor2& h, std::string_view caller,
                        std::size_t& evaluations) {
  const std::size_t t = h.shape(0), d = h.shape(1);
  switch (b.kind()) {
    case baseline_kind::zero:
      return xt::zeros<float>({t, d});
    case baseline_kind::embedding: {
      const tensor2& v = b.embedding_value();
      require<shape_error>(v.dimension() == 2 && v.shape(1) == d && (v.shape(0) == 1 || v.shape(0) == t),
                           "glassbox::{}: baseline embedding must be [1, {}] or [{}, {}] hidden states, got [{}, {}]",
                           caller, d, t, d, v.shape(0), v.shape(1));
      tensor2 out({t, d});
      for (std::size_t i = 0; i < t; ++i) std::copy_n(v.data() + (v.shape(0) == 1 ? 0 : i * d), d, out.data() + i * d);
      return out;
    }
    case baseline_kind::pad_token:
    case baseline_kind::token: {
      const token_sequence replaced(t, baseline_token(model, b, caller));
      ++evaluations;
      return hidden_state_at(model, replaced, layer, caller);
    }
    case baseline_kind::removal:
      fail(
          "glassbox::{}: baseline must be pad, token, zero or embedding, got removal (the path needs a hidden "
          "state of the same length)",
          caller);
  }
  fail("glassbox::{}: unknown baseline", caller);
}

}  // namespace detail

/// Layer integrated gradients on the residual stream at hidden index options.layer (Captum's
/// LayerIntegratedGradients on a block's output): per position and dimension of layer k,
/// phi = (h - h') * integral_0^1 grad_h f(h' + a (h - h')) da, summed per position. The result's
/// token_ids are the input tokens (one score per position at layer k), embedding_scores the
/// per-dimension scores [T, d], target_value f(h) and baseline_value f(h') (the model run on from
/// layer k), and convergence_delta = sum(scores) - (f(h) - f(h')). With layer 0 this is integrated
/// gradients w.r.t. the embeddings output. Cost: steps forward + backward passes from layer k, two
/// forward passes from layer k, and one (two with a token baseline) full forward passes.
///
/// Example: `auto r = glassbox::layer_integrated_gradients(model, tokens, t, {.layer = 6});`
template <class M>
attribution_result layer_integrated_gradients(const M& model, token_span tokens, const target& t,
                                              const layer_integrated_gradients_options& options = {}) {
  static_assert(check_intervention_model<M>());
  constexpr std::string_view caller = "layer_integrated_gradients";
  const detail::path_settings settings{
      options.rule,      options.steps, options.internal_batch_size, options.adaptive, options.tolerance,
      options.max_steps, caller};
  detail::validate_path_settings(settings);
  detail::require_tokens(tokens, caller);
  std::size_t evaluations = 1;
  const tensor2 h = detail::hidden_state_at(model, tokens, options.layer, caller);
  const tensor2 base = detail::hidden_baseline(model, options.layer, options.baseline, h, caller, evaluations);
  const std::size_t layer = options.layer;
  const detail::path_integral p = detail::integrate_paths(
      std::span<const tensor2>(&h, 1), std::span<const tensor2>(&base, 1), settings, options.execution,
      [&](std::span<const tensor2> points, const execution_options& e) {
        return hidden_gradients(model, tokens, layer, points, t, e, caller);
      },
      [&](std::span<const tensor2> points, const execution_options& e) {
        return evaluate_target_on_hidden(model, tokens, layer, points, t, e, caller);
      });

  attribution_result r;
  r.method = "layer_integrated_gradients";
  r.token_ids.assign(tokens.begin(), tokens.end());
  r.scores = aggregate_tokens(p.attributions[0], options.aggregation);
  r.embedding_scores = detail::to_float(p.attributions[0]);
  r.target = t;
  r.target_value = p.input_values[0];
  r.baseline_value = p.baseline_value;
  r.convergence_delta = p.deltas[0];
  r.model_evaluations = evaluations + p.evaluations;
  r.options = {detail::option("layer", options.layer),
               detail::option("steps", options.steps),
               detail::option("rule", to_string(options.rule)),
               detail::option("baseline", options.baseline.describe()),
               detail::option("internal_batch_size", options.internal_batch_size),
               detail::option("adaptive", options.adaptive),
               detail::option("tolerance", options.tolerance),
               detail::option("max_steps", options.max_steps),
               detail::option("aggregation", to_string(options.aggregation))};
  detail::record_execution(r.options, options.execution);
  r.options.push_back(detail::option("steps_used", p.steps));
  return r;
}

/// Layer gradient x activation on the residual stream at hidden index options.layer (Captum's
/// LayerGradientXActivation): h * d f / d h per position and dimension, summed per position. No
/// baseline and no completeness. Cost: one forward pass and one forward + backward pass from layer k.
///
/// Example: `auto r = glassbox::layer_gradient_x_activation(model, tokens, t, {.layer = 3});`
template <class M>
attribution_result layer_gradient_x_activation(const M& model, token_span tokens, const target& t,
                                               const layer_gradient_x_activation_options& options = {}) {
  static_assert(check_intervention_model<M>());
  constexpr std::string_view caller = "layer_gradient_x_activation";
  detail::require_tokens(tokens, caller);
  const tensor2 h = detail::hidden_state_at(model, tokens, options.layer, caller);
  const auto g =
      hidden_gradients(model, tokens, options.layer, std::span<const tensor2>(&h, 1), t, options.execution, caller);
  attribution_matrix phi(h.shape());
  for (std::size_t i = 0; i < phi.size(); ++i)
    phi.data()[i] = static_cast<double>(h.data()[i]) * static_cast<double>(g[0].gradient.data()[i]);
  attribution_result r;
  r.method = "layer_gradient_x_activation";
  r.token_ids.assign(tokens.begin(), tokens.end());
  r.scores = aggregate_tokens(phi, options.aggregation);
  r.embedding_scores = detail::to_float(phi);
  r.target = t;
  r.target_value = g[0].value;
  r.model_evaluations = 2;
  r.options = {detail::option("layer", options.layer), detail::option("aggregation", to_string(options.aggregation))};
  detail::record_execution(r.options, options.execution);
  return r;
}

}  // namespace glassbox

// glassbox: gradient-weighted attention. Needs an AttentionGradientModel, whose
// attention_gradient(tokens, seed) returns the attentions A [L, H, T, T] of one forward pass and
// the gradient of the explained scalar f with respect to them, dF = d f / d A.
//
// Attention x gradient (AttGrad):
//   head map     G[l, h] = A[l, h] * dF[l, h]                 (elementwise; first-order effect of each edge)
//   layer map    M_l = mean_h G[l, h]   (or mean_h G[l, h]^+ with positive_only)
//   matrix       S = sum_l M_l                                 [query, key]
//   scores[j]    = S[p, j], p the explained position: the head-averaged first-order effect of the
//                  edges p -> j over all layers (the explained query's row, as Chefer et al.'s rule
//                  below and the attention Grad-CAM baseline of their code report the row of the
//                  explained token; docs/attention.md)
//
// Chefer et al. 2021, "Generic Attention-model Explainability for Interpreting Bi-Modal and
// Encoder-Decoder Transformers" (ICCV), rule for self-attention:
//   Ā_l = mean_h (dF[l, h] * A[l, h])^+ ,   R = I,   R <- R + Ā_l R   for l = 0 .. L-1
//   scores = row of R at the explained position (its diagonal entry includes the 1 of I).
//
// Head-weighted ("head-masked") rollout: rollout (rollout.hpp) with head_aggregation::weighted,
//   W_l = sum_h w[l, h] A[l, h] / sum_h w[l, h]  (W_l = 0 when the layer's weights sum to 0, so Â_l = I),
// with w a 0/1 head mask (pruned heads removed), Michel importance (head_importance.hpp), or,
// here, per-input gradient norms w[l, h] = ||dF[l, h]||_1 or _2 over the entries the model can
// attend to (as GMAR, "Gradient-Driven Multi-Head Attention Rollout", 2025); only ratios within a
// layer matter. An entry (i, j) counts when some head of some layer gives it a nonzero
// probability: a causal mask (or a padding mask) makes A[l, h, i, j] exactly 0 in every head, and
// there dF = dO_i . v_j is nonzero but no edge exists, so it must not weigh the head.
//
// Cost: one forward + backward pass; then O(L H T^2) (AttGrad) or O(L T^3) (Chefer, rollout).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "glassbox/attention/raw.hpp"
#include "glassbox/attention/result.hpp"
#include "glassbox/attention/rollout.hpp"
#include "glassbox/core/error.hpp"
#include "glassbox/core/execution.hpp"
#include "glassbox/core/model.hpp"
#include "glassbox/core/target.hpp"

namespace glassbox {

/// Options of attention x gradient.
struct attgrad_options {
  bool positive_only = false;           ///< average G^+ = max(G, 0) over heads instead of G
  std::optional<std::size_t> position;  ///< the explained query position, whose row of S is `scores`;
                                        ///< default the target's last row
};

/// Options of Chefer et al.'s relevance propagation.
struct chefer_options {
  std::optional<std::size_t> position;  ///< the row reported as `scores`; default the target's last row
};

/// The per-head norm gradient-weighted rollout uses as head weights (sums over the attendable entries).
enum class gradient_head_norm {
  l1,  ///< w[l, h] = sum_ij |dF[l, h, i, j]|
  l2,  ///< w[l, h] = sqrt(sum_ij dF[l, h, i, j]^2)
};

namespace detail {

/// Checks an attention tensor and its gradient: same shape, attentions >= 0, all finite.
template <class = void>
inline attention_dims check_attention_gradient(const tensor4& a, const tensor4& g, std::string_view caller) {
  const auto d = check_attentions(a, caller);
  require<shape_error>(
      g.shape() == a.shape(),
      "glassbox::{}: gradient must have the shape of attentions [{}, {}, {}, {}], got [{}, {}, {}, {}]", caller,
      a.shape(0), a.shape(1), a.shape(2), a.shape(3), g.shape(0), g.shape(1), g.shape(2), g.shape(3));
  for (std::size_t k = 0; k < g.size(); ++k)
    require(std::isfinite(g.data()[k]), "glassbox::{}: gradient must be finite, got {} at flat index {}", caller,
            g.data()[k], k);
  return d;
}

/// The elementwise product A * dF, [L, H, T, T].
template <class = void>
inline tensor4 attention_times_gradient(const tensor4& a, const tensor4& g) {
  tensor4 out(a.shape());
  for (std::size_t k = 0; k < a.size(); ++k) out.data()[k] = a.data()[k] * g.data()[k];
  return out;
}

/// mean_h of x[l, h] (positive parts only when `positive`), in double.
template <class T = void>
inline dmatrix head_mean(const tensor4& x, std::size_t l, bool positive) {
  const std::size_t h_count = x.shape(1), t = x.shape(2);
  using matrix = dependent_t<T, dmatrix>;  // Eigen expressions compiled where this is called (see dependent_t)
  matrix m = matrix::Zero(static_cast<Eigen::Index>(t), static_cast<Eigen::Index>(t));
  for (std::size_t h = 0; h < h_count; ++h) {
    const float* p = head_map(x, l, h);
    for (std::size_t k = 0; k < t * t; ++k) {
      const double v = p[k];
      m.data()[k] += positive ? std::max(v, 0.0) : v;
    }
  }
  return m / static_cast<double>(h_count);
}

/// The explained query position: `requested`, or the last output row the target reads when the
/// model has one output row per position.
template <class M>
std::size_t target_position(const M& model, std::size_t tokens, const target& t, std::optional<std::size_t> requested,
                            std::string_view caller) {
  if (requested) {
    require<shape_error>(*requested < tokens, "glassbox::{}: position must be < {}, got {}", caller, tokens,
                         *requested);
    return *requested;
  }
  std::size_t rows = tokens;
  if constexpr (concepts::has_output_rows<M>) rows = model.output_rows(tokens);
  require<shape_error>(rows == tokens,
                       "glassbox::{}: the model has {} output rows for {} tokens, so the explained position is not "
                       "the target's row; set options.position",
                       caller, rows, tokens);
  return t.rows(rows).back();
}

/// One attention_gradient call, checked: shapes match the input, value and gradient finite.
template <class M>
attention_gradient_result checked_attention_gradient(const M& model, token_span tokens, const output_seed& seed,
                                                     std::string_view caller) {
  require<shape_error>(!tokens.empty(), "glassbox::{}: tokens must not be empty", caller);
  attention_gradient_result r = model.attention_gradient(tokens, seed);
  require<model_error>(r.attentions.shape(2) == tokens.size() && r.attentions.shape(3) == tokens.size() &&
                           r.gradient.shape() == r.attentions.shape(),
                       "glassbox::{}: attention_gradient returned attentions [{}, {}, {}, {}] and a gradient of {} "
                       "entries for {} tokens",
                       caller, r.attentions.shape(0), r.attentions.shape(1), r.attentions.shape(2),
                       r.attentions.shape(3), r.gradient.size(), tokens.size());
  require<model_error>(std::isfinite(r.value), "glassbox::{}: the model returned a target value of {}", caller,
                       r.value);
  check_finite(r.attentions.data(), r.attentions.size(), tokens.size(), caller, 0, "attentions");
  check_finite(r.gradient.data(), r.gradient.size(), tokens.size(), caller, 0, "attention gradient");
  return r;
}

/// The entries (i, j), [T * T] row-major, that some head of some layer attends to with a nonzero
/// probability: the ones the model can attend to (a causal mask zeroes the rest in every head).
template <class = void>
inline std::vector<std::uint8_t> attendable_entries(const tensor4& a) {
  const std::size_t t = a.shape(2), maps = a.shape(0) * a.shape(1);
  std::vector<std::uint8_t> out(t * t, 0);
  for (std::size_t m = 0; m < maps; ++m) {
    const float* p = a.data() + m * t * t;
    for (std::size_t k = 0; k < t * t; ++k) out[k] = out[k] | static_cast<std::uint8_t>(p[k] > 0.0f);
  }
  return out;
}

/// Records the input of a relevance computed from one attention_gradient pass of the model.
template <class = void>
inline void attach_input(attention_relevance_result& out, token_span tokens, const target& t, double value) {
  out.token_ids.assign(tokens.begin(), tokens.end());
  out.target = t;
  out.target_value = value;
  out.model_evaluations = 1;
}

}  // namespace detail

/// Attention x gradient of bare tensors: attentions A and dF = d f / d A, both [L, H, T, T];
/// `scores` is the row of S = sum_l mean_h A * dF at `options.position` (default T - 1).
template <class T = void>
inline attention_relevance_result attgrad(const tensor4& attentions, const tensor4& gradient,
                                          const attgrad_options& options = {}) {
  const auto d = detail::check_attention_gradient(attentions, gradient, "attgrad");
  const std::size_t t = d.tokens;
  const std::size_t position = options.position.value_or(t - 1);
  detail::require<shape_error>(position < t, "glassbox::attgrad: position must be < {}, got {}", t, position);
  attention_relevance_result out;
  out.method = "attgrad";
  out.first_layer = 0;
  out.last_layer = d.layers;
  out.head_maps = detail::attention_times_gradient(attentions, gradient);
  std::vector<detail::dmatrix> layers;
  using matrix = detail::dependent_t<T, detail::dmatrix>;  // compiled where this is called (see dependent_t)
  matrix sum = matrix::Zero(static_cast<Eigen::Index>(t), static_cast<Eigen::Index>(t));
  for (std::size_t l = 0; l < d.layers; ++l) {
    layers.push_back(detail::head_mean(out.head_maps, l, options.positive_only));
    sum += layers.back();
  }
  out.layer_maps = detail::stack_matrices(layers, t);
  detail::set_square_matrix(out, sum);
  out.position = position;
  out.scores.resize(t);
  for (std::size_t j = 0; j < t; ++j)
    out.scores[j] = sum(static_cast<Eigen::Index>(position), static_cast<Eigen::Index>(j));
  out.options.push_back({"positive_only", options.positive_only});
  out.options.push_back({"position", static_cast<std::int64_t>(position)});
  return out;
}

/// Attention x gradient of one input for target `t`: one forward + backward pass.
///
/// Example: `auto r = glassbox::attgrad(model, tokens, glassbox::target::log_probability(positive));`
template <class M>
attention_relevance_result attgrad(const M& model, token_span tokens, const target& t,
                                   const attgrad_options& options = {}) {
  static_assert(check_attention_gradient_model<M>());
  const auto g = detail::checked_attention_gradient(model, tokens, t, "attgrad");
  attgrad_options o = options;
  o.position = detail::target_position(model, tokens.size(), t, options.position, "attgrad");
  auto out = attgrad(g.attentions, g.gradient, o);
  detail::attach_input(out, tokens, t, g.value);
  return out;
}

/// Chefer et al. (2021) relevance of bare tensors: attentions A and dF = d f / d A. (`Real` is the
/// precision of the products, a template parameter only so that they are compiled where the function
/// is called: docs/building.md.)
template <class Real = double>
attention_relevance_result chefer_relevance(const tensor4& attentions, const tensor4& gradient,
                                            const chefer_options& options = {}) {
  const auto d = detail::check_attention_gradient(attentions, gradient, "chefer_relevance");
  const std::size_t t = d.tokens;
  const std::size_t position = options.position.value_or(t - 1);
  detail::require<shape_error>(position < t, "glassbox::chefer_relevance: position must be < {}, got {}", t, position);
  attention_relevance_result out;
  out.method = "chefer_relevance";
  out.first_layer = 0;
  out.last_layer = d.layers;
  out.head_maps = detail::attention_times_gradient(attentions, gradient);
  using matrix = detail::row_matrix<Real>;
  std::vector<detail::dmatrix> layers;
  matrix r = matrix::Identity(static_cast<Eigen::Index>(t), static_cast<Eigen::Index>(t));
  for (std::size_t l = 0; l < d.layers; ++l) {
    layers.push_back(detail::head_mean(out.head_maps, l, true));
    r += (layers.back() * r).eval();
  }
  out.layer_maps = detail::stack_matrices(layers, t);
  detail::set_square_matrix(out, r);
  out.position = position;
  out.scores.resize(t);
  for (std::size_t j = 0; j < t; ++j)
    out.scores[j] = r(static_cast<Eigen::Index>(position), static_cast<Eigen::Index>(j));
  out.options.push_back({"position", static_cast<std::int64_t>(position)});
  return out;
}

/// Chefer et al. (2021) relevance of one input for target `t`: one forward + backward pass.
template <class M>
attention_relevance_result chefer_relevance(const M& model, token_span tokens, const target& t,
                                            const chefer_options& options = {}) {
  static_assert(check_attention_gradient_model<M>());
  const auto g = detail::checked_attention_gradient(model, tokens, t, "chefer_relevance");
  chefer_options o = options;
  o.position = detail::target_position(model, tokens.size(), t, options.position, "chefer_relevance");
  auto out = chefer_relevance(g.attentions, g.gradient, o);
  detail::attach_input(out, tokens, t, g.value);
  return out;
}

/// Per-head weights from attentions A and their gradient dF, both [L, H, T, T]: the L1 or L2 norm
/// of each head's gradient over the entries the model can attend to (A > 0 in some head of some
/// layer; under a causal mask, at or below the diagonal), [L, H]; feed them to rollout with
/// head_aggregation::weighted.
template <class = void>
inline tensor2 gradient_head_weights(const tensor4& attentions, const tensor4& gradient,
                                     gradient_head_norm norm = gradient_head_norm::l1) {
  const auto d = detail::check_attention_gradient(attentions, gradient, "gradient_head_weights");
  const std::size_t l_count = d.layers, h_count = d.heads, t = d.tokens;
  const std::vector<std::uint8_t> attendable = detail::attendable_entries(attentions);
  tensor2 w({l_count, h_count});
  for (std::size_t l = 0; l < l_count; ++l)
    for (std::size_t h = 0; h < h_count; ++h) {
      const float* p = detail::head_map(gradient, l, h);
      double s = 0;
      for (std::size_t k = 0; k < t * t; ++k) {
        if (!attendable[k]) continue;
        const double v = p[k];
        s += norm == gradient_head_norm::l1 ? std::abs(v) : v * v;
      }
      w(l, h) = static_cast<float>(norm == gradient_head_norm::l1 ? s : std::sqrt(s));
    }
  return w;
}

/// Gradient-weighted rollout of one input: rollout whose heads are weighted per layer by the
/// norm of the target's gradient w.r.t. their attention over the attendable entries
/// (gradient_head_weights; one forward + backward pass). The aggregation and head_weights of
/// `options` are replaced by the gradient weights.
template <class M>
attention_relevance_result gradient_weighted_rollout(const M& model, token_span tokens, const target& t,
                                                     rollout_options options = {},
                                                     gradient_head_norm norm = gradient_head_norm::l1) {
  static_assert(check_attention_gradient_model<M>());
  const auto g = detail::checked_attention_gradient(model, tokens, t, "gradient_weighted_rollout");
  options.graph.aggregation = head_aggregation::weighted;
  options.graph.head_weights = gradient_head_weights(g.attentions, g.gradient, norm);
  options.position = detail::target_position(model, tokens.size(), t, options.position, "gradient_weighted_rollout");
  auto out = attention_rollout(g.attentions, options);
  out.method = "gradient_weighted_rollout";
  detail::attach_input(out, tokens, t, g.value);
  out.options.push_back({"head_norm", std::string(norm == gradient_head_norm::l1 ? "l1" : "l2")});
  return out;
}

}  // namespace glassbox

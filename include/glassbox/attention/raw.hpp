// glassbox: raw attention, head aggregation, and the residual-corrected attention graph that
// rollout and flow are built on.
//
//   aggregation   W_l = mean_h A[l, h]   (or max_h, min_h, or sum_h w_lh A[l, h] / sum_h w_lh)
//   residual      Â_l = rownorm((1 - r) W_l + r I),  r = 0.5 by default (Abnar & Zuidema 2020)
//
// The reference code (samiraabnar/attention_flow) averages the heads first, then adds I and
// divides each row by its sum: for softmax rows that is exactly 0.5 W + 0.5 I, and with max/min
// aggregation, whose rows do not sum to one, the renormalisation is what keeps Â stochastic.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "glassbox/attention/result.hpp"
#include "glassbox/core/error.hpp"
#include "glassbox/core/execution.hpp"
#include "glassbox/core/model.hpp"
#include "glassbox/core/result.hpp"
#include "glassbox/core/types.hpp"
#include "glassbox/detail/eigen.hpp"

namespace glassbox {

/// How per-head attention becomes the weighted graph of rollout and flow.
struct attention_graph_options {
  head_aggregation aggregation = head_aggregation::mean;  ///< how heads are combined per layer
  tensor2 head_weights;                   ///< [L, H] weights >= 0, used by head_aggregation::weighted only
  double residual = 0.5;                  ///< r in Â = rownorm((1 - r) W + r I); 0 disables the residual term
  bool renormalize = true;                ///< divide each row of Â by its sum (rows that sum to 0 stay 0)
  std::size_t first_layer = 0;            ///< bottom level: 0 = the input tokens
  std::optional<std::size_t> last_layer;  ///< top level (exclusive layer bound); default L, the output
};

namespace detail {

/// The sizes of an attention tensor [L, H, T, T].
struct attention_dims {
  std::size_t layers = 0;  ///< L
  std::size_t heads = 0;   ///< H
  std::size_t tokens = 0;  ///< T
};

/// A dense row-major matrix of doubles.
using dmatrix = row_matrix<double>;

/// Checks that `a` is [L, H, T, T] with L, H, T >= 1 and every entry finite and >= 0.
template <class = void>
inline attention_dims check_attentions(const tensor4& a, std::string_view caller,
                                       std::string_view name = "attentions") {
  require<shape_error>(a.shape(0) >= 1 && a.shape(1) >= 1 && a.shape(2) >= 1 && a.shape(2) == a.shape(3),
                       "glassbox::{}: {} must be [L, H, T, T] with L, H, T >= 1, got [{}, {}, {}, {}]", caller, name,
                       a.shape(0), a.shape(1), a.shape(2), a.shape(3));
  const attention_dims d{a.shape(0), a.shape(1), a.shape(2)};
  const float* p = a.data();
  for (std::size_t k = 0; k < a.size(); ++k) {
    if (!(std::isfinite(p[k]) && p[k] >= 0.0f)) {
      const std::size_t j = k % d.tokens, i = (k / d.tokens) % d.tokens, h = (k / (d.tokens * d.tokens)) % d.heads,
                        l = k / (d.tokens * d.tokens * d.heads);
      fail("glassbox::{}: {} must be finite and >= 0, got {} at [{}, {}, {}, {}]", caller, name, p[k], l, h, i, j);
    }
  }
  return d;
}

/// Pointer to the [T, T] map of head h in layer l.
template <class = void>
inline const float* head_map(const tensor4& a, std::size_t l, std::size_t h) {
  const std::size_t t = a.shape(2);
  return a.data() + (l * a.shape(1) + h) * t * t;
}

/// Checks aggregation weights against the tensor: required, [L, H], finite and >= 0 for
/// head_aggregation::weighted, absent otherwise.
template <class = void>
inline void check_head_weights(head_aggregation aggregation, const tensor2& w, const attention_dims& d,
                               std::string_view caller) {
  if (aggregation != head_aggregation::weighted) {
    require(w.size() == 0, "glassbox::{}: head_weights must be empty unless aggregation is weighted, got {} x {}",
            caller, w.shape(0), w.shape(1));
    return;
  }
  require<shape_error>(w.shape(0) == d.layers && w.shape(1) == d.heads,
                       "glassbox::{}: head_weights must be [{}, {}] for weighted aggregation, got [{}, {}]", caller,
                       d.layers, d.heads, w.shape(0), w.shape(1));
  for (std::size_t k = 0; k < w.size(); ++k)
    require(std::isfinite(w.data()[k]) && w.data()[k] >= 0.0f,
            "glassbox::{}: head_weights must be finite and >= 0, got {} at [{}, {}]", caller, w.data()[k], k / d.heads,
            k % d.heads);
}

/// The heads of layer l combined into one [T, T] matrix, in double. A layer whose weights sum
/// to 0 under weighted aggregation gives the zero matrix.
template <class = void>
inline dmatrix aggregate_layer(const tensor4& a, std::size_t l, head_aggregation aggregation, const tensor2& weights) {
  const std::size_t h_count = a.shape(1), t = a.shape(2), n = t * t;
  dmatrix m(static_cast<Eigen::Index>(t), static_cast<Eigen::Index>(t));
  double* out = m.data();
  switch (aggregation) {
    case head_aggregation::mean:
    case head_aggregation::weighted: {
      std::fill(out, out + n, 0.0);
      double total = 0;
      for (std::size_t h = 0; h < h_count; ++h) {
        const double w = aggregation == head_aggregation::mean ? 1.0 : static_cast<double>(weights(l, h));
        if (w == 0.0) continue;
        total += w;
        const float* p = head_map(a, l, h);
        for (std::size_t k = 0; k < n; ++k) out[k] += w * static_cast<double>(p[k]);
      }
      if (total > 0)
        for (std::size_t k = 0; k < n; ++k) out[k] /= total;
      break;
    }
    case head_aggregation::max:
    case head_aggregation::min: {
      const float* p0 = head_map(a, l, 0);
      for (std::size_t k = 0; k < n; ++k) out[k] = p0[k];
      for (std::size_t h = 1; h < h_count; ++h) {
        const float* p = head_map(a, l, h);
        for (std::size_t k = 0; k < n; ++k)
          out[k] = aggregation == head_aggregation::max ? std::max(out[k], static_cast<double>(p[k]))
                                                        : std::min(out[k], static_cast<double>(p[k]));
      }
      break;
    }
  }
  return m;
}

/// Â = rownorm((1 - r) W + r I), in place; rows summing to 0 stay 0.
template <class T = void>
inline void add_residual(dmatrix& matrix, double residual, bool renormalize) {
  auto& m = depend<T>(matrix);  // Eigen expressions compiled where this is called (see dependent_t)
  m *= (1.0 - residual);
  m.diagonal().array() += residual;
  if (!renormalize) return;
  for (Eigen::Index i = 0; i < m.rows(); ++i) {
    const double s = m.row(i).sum();
    if (s > 0) m.row(i) /= s;
  }
}

/// Validated layer range [first, last) of a graph over an L-layer tensor.
struct layer_range {
  std::size_t first = 0;  ///< bottom level
  std::size_t last = 0;   ///< top level
};

/// Checks the options of an attention graph against the tensor; returns the layer range.
template <class = void>
inline layer_range check_graph_options(const attention_graph_options& o, const attention_dims& d,
                                       std::string_view caller) {
  require(std::isfinite(o.residual) && o.residual >= 0.0 && o.residual <= 1.0,
          "glassbox::{}: residual must be in [0, 1], got {}", caller, o.residual);
  check_head_weights(o.aggregation, o.head_weights, d, caller);
  const std::size_t last = o.last_layer.value_or(d.layers);
  require<shape_error>(last >= 1 && last <= d.layers, "glassbox::{}: last_layer must be in [1, {}], got {}", caller,
                       d.layers, last);
  require<shape_error>(o.first_layer < last, "glassbox::{}: first_layer must be < last_layer = {}, got {}", caller,
                       last, o.first_layer);
  return {o.first_layer, last};
}

/// The residual-corrected, head-aggregated matrices Â_l for l in [first, last).
template <class = void>
inline std::vector<dmatrix> attention_graph(const tensor4& a, const attention_graph_options& o, layer_range r) {
  std::vector<dmatrix> out;
  out.reserve(r.last - r.first);
  for (std::size_t l = r.first; l < r.last; ++l) {
    out.push_back(aggregate_layer(a, l, o.aggregation, o.head_weights));
    add_residual(out.back(), o.residual, o.renormalize);
  }
  return out;
}

/// The options of an attention graph, for a result's provenance.
template <class = void>
inline void record_graph_options(std::vector<named_option>& out, const attention_graph_options& o, layer_range r) {
  out.push_back({"aggregation", std::string(to_string(o.aggregation))});
  out.push_back({"residual", o.residual});
  out.push_back({"renormalize", o.renormalize});
  out.push_back({"first_layer", static_cast<std::int64_t>(r.first)});
  out.push_back({"last_layer", static_cast<std::int64_t>(r.last)});
}

/// Copies a list of double matrices into a [n, T, T] float tensor.
template <class = void>
inline tensor3 stack_matrices(const std::vector<dmatrix>& ms, std::size_t t) {
  tensor3 out({ms.size(), t, t});
  for (std::size_t k = 0; k < ms.size(); ++k)
    for (std::size_t e = 0; e < t * t; ++e) out.data()[k * t * t + e] = static_cast<float>(ms[k].data()[e]);
  return out;
}

/// Makes `m` [T, T] the result's matrix, one row per position (row_positions 0 .. T - 1).
template <class = void>
inline void set_square_matrix(attention_relevance_result& out, const dmatrix& m) {
  const auto t = static_cast<std::size_t>(m.rows());
  out.row_positions.resize(t);
  for (std::size_t i = 0; i < t; ++i) out.row_positions[i] = i;
  out.matrix = tensor2({t, t});
  for (std::size_t k = 0; k < t * t; ++k) out.matrix.data()[k] = static_cast<float>(m.data()[k]);
}

/// The attentions of `tokens`, checked: shape [L, H, T, T] with T = tokens.size(), finite, >= 0.
template <AttentionModel M>
tensor4 model_attentions(const M& model, token_span tokens, std::string_view caller) {
  require<shape_error>(!tokens.empty(), "glassbox::{}: tokens must not be empty", caller);
  tensor4 a = model.attentions(tokens);
  require<model_error>(a.shape(0) >= 1 && a.shape(1) >= 1 && a.shape(2) == tokens.size() && a.shape(3) == tokens.size(),
                       "glassbox::{}: attentions() returned [{}, {}, {}, {}] for {} tokens, expected [L, H, T, T] = "
                       "[L, H, {}, {}] with L, H >= 1",
                       caller, a.shape(0), a.shape(1), a.shape(2), a.shape(3), tokens.size(), tokens.size(),
                       tokens.size());
  check_finite(a.data(), a.size(), tokens.size(), caller, 0, "attentions");
  return a;
}

}  // namespace detail

/// The heads of every layer combined: [L, T, T] from attentions [L, H, T, T].
///
/// Example: `auto w = glassbox::aggregate_heads(model.attentions(tokens), head_aggregation::max);`
template <class = void>
inline tensor3 aggregate_heads(const tensor4& attentions, head_aggregation aggregation = head_aggregation::mean,
                               const tensor2& head_weights = {}) {
  const auto d = detail::check_attentions(attentions, "aggregate_heads");
  detail::check_head_weights(aggregation, head_weights, d, "aggregate_heads");
  std::vector<detail::dmatrix> ms;
  for (std::size_t l = 0; l < d.layers; ++l)
    ms.push_back(detail::aggregate_layer(attentions, l, aggregation, head_weights));
  return detail::stack_matrices(ms, d.tokens);
}

/// The residual-corrected graph matrices Â_l = rownorm((1 - r) W_l + r I) for the levels of
/// `options`: [last - first, T, T]. These are the capacities of attention flow and the factors
/// of attention rollout.
template <class = void>
inline tensor3 residual_attention(const tensor4& attentions, const attention_graph_options& options = {}) {
  const auto d = detail::check_attentions(attentions, "residual_attention");
  const auto r = detail::check_graph_options(options, d, "residual_attention");
  return detail::stack_matrices(detail::attention_graph(attentions, options, r), d.tokens);
}

/// Raw attention of a bare tensor: every head as given and the heads combined per layer.
template <class = void>
inline attention_maps_result raw_attention(const tensor4& attentions,
                                           head_aggregation aggregation = head_aggregation::mean,
                                           const tensor2& head_weights = {}) {
  attention_maps_result r;
  r.aggregated = aggregate_heads(attentions, aggregation, head_weights);
  r.attentions = attentions;
  r.aggregation = aggregation;
  r.options.push_back({"aggregation", std::string(to_string(aggregation))});
  return r;
}

/// Raw attention of one input: one forward pass, every layer and head, and the heads combined.
///
/// Example: `auto maps = glassbox::raw_attention(model, tokens); maps.aggregated(l, i, j);`
template <class M>
attention_maps_result raw_attention(const M& model, token_span tokens,
                                    head_aggregation aggregation = head_aggregation::mean,
                                    const tensor2& head_weights = {}) {
  static_assert(check_attention_model<M>());
  attention_maps_result r =
      raw_attention(detail::model_attentions(model, tokens, "raw_attention"), aggregation, head_weights);
  r.token_ids.assign(tokens.begin(), tokens.end());
  r.model_evaluations = 1;
  return r;
}

}  // namespace glassbox

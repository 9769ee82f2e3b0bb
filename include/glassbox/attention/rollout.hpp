// glassbox: attention rollout (Abnar & Zuidema 2020, "Quantifying Attention Flow in
// Transformers", ACL).
//
//   Â_l = rownorm((1 - r) W_l + r I)            W_l = heads of layer l combined (mean by default)
//   left product (the paper, default):  R = Â_{last-1} ... Â_{first+1} Â_first
//   right product:                      R = Â_first Â_{first+1} ... Â_{last-1}
//
// The reference code (compute_joint_attention) starts from Â of the first layer and multiplies
// joint_l = Â_l @ joint_{l-1}: rows are query positions at the top level, columns the input
// tokens, and R[i, j] is the share of position i's top-level state that comes from token j
// when every layer mixes its input by Â. Some implementations accumulate R <- R @ Â_l instead,
// which is the product in the other order; it equals the transpose of the left rollout of the
// transposed maps, (Â_{L-1}^T ... Â_0^T)^T, and is offered for comparison.
//
// Cost: (last - first) dense T x T products, O(L T^3), in double.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "glassbox/attention/raw.hpp"
#include "glassbox/attention/result.hpp"
#include "glassbox/core/error.hpp"
#include "glassbox/core/model.hpp"

namespace glassbox {

/// The order in which rollout multiplies the per-layer matrices.
enum class rollout_product {
  left,   ///< R <- Â_l R going up: rows = top-level queries, columns = inputs (the paper's reference code)
  right,  ///< R <- R Â_l going up: the opposite order, as some implementations compute it
};

/// The stable name of a rollout product ("left", "right").
constexpr std::string_view to_string(rollout_product p) { return p == rollout_product::left ? "left" : "right"; }

/// Options of attention rollout: the graph (aggregation, residual, layers) and the product order.
/// Example: `glassbox::attention_rollout(model, tokens, {.graph = {.residual = 0.3}, .product = ...})`.
struct rollout_options {
  attention_graph_options graph{};                  ///< how heads and layers become the graph
  rollout_product product = rollout_product::left;  ///< multiplication order; left is the paper's
  std::optional<std::size_t> position;              ///< the row reported as `scores`; default the last position
};

/// Attention rollout of a bare attention tensor [L, H, T, T].
///
/// Example: `auto r = glassbox::attention_rollout(attn); r.scores` is how much the last
/// position draws on each input token after every layer. (`Real` is the precision of the products,
/// a template parameter only so that they are compiled where rollout is called: docs/building.md.)
template <class Real = double>
attention_relevance_result attention_rollout(const tensor4& attentions, const rollout_options& options = {}) {
  const auto d = detail::check_attentions(attentions, "attention_rollout");
  const auto range = detail::check_graph_options(options.graph, d, "attention_rollout");
  const std::size_t t = d.tokens;
  const std::size_t position = options.position.value_or(t - 1);
  detail::require<shape_error>(position < t, "glassbox::attention_rollout: position must be < {}, got {}", t, position);
  const auto graph = detail::attention_graph(attentions, options.graph, range);
  using matrix = detail::row_matrix<Real>;
  matrix r = matrix::Identity(static_cast<Eigen::Index>(t), static_cast<Eigen::Index>(t));
  for (const auto& a : graph) {
    if (options.product == rollout_product::left) {
      r = (a * r).eval();
    } else {
      r = (r * a).eval();
    }
  }
  attention_relevance_result out;
  out.method = "attention_rollout";
  out.first_layer = range.first;
  out.last_layer = range.last;
  detail::set_square_matrix(out, r);
  out.position = position;
  out.scores.resize(t);
  for (std::size_t j = 0; j < t; ++j)
    out.scores[j] = r(static_cast<Eigen::Index>(position), static_cast<Eigen::Index>(j));
  out.layer_maps = detail::stack_matrices(graph, t);
  detail::record_graph_options(out.options, options.graph, range);
  out.options.push_back({"product", std::string(to_string(options.product))});
  out.options.push_back({"position", static_cast<std::int64_t>(position)});
  return out;
}

/// Attention rollout of one input: one forward pass for the attentions, then the product.
template <class M>
attention_relevance_result attention_rollout(const M& model, token_span tokens, const rollout_options& options = {}) {
  static_assert(check_attention_model<M>());
  auto out = attention_rollout(detail::model_attentions(model, tokens, "attention_rollout"), options);
  out.token_ids.assign(tokens.begin(), tokens.end());
  out.model_evaluations = 1;
  return out;
}

}  // namespace glassbox

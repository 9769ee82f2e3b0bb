// glassbox: the value types the attention module returns. Each carries its data, the input it
// was computed for and the options it ran with, so that report/ can render it (heatmaps with
// token labels, head grids, SVG curves) and serialise it to JSON without recomputing anything.
//
// Layer and position conventions, shared by every type here:
//   - attention tensors are [L, H, T, T] = [layer, head, query, key] (docs/attention.md, "Conventions");
//   - "level" k of the layered attention graph is the residual stream at the input of layer k,
//     so level 0 holds the input tokens and level L the output of the last layer;
//   - a token-to-token matrix has one row per position at its top level (row_positions) and one
//     column per position at its bottom level (the input tokens when first_layer = 0).
#pragma once

#include <algorithm>
#include <cstddef>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "glassbox/core/result.hpp"
#include "glassbox/core/target.hpp"
#include "glassbox/core/types.hpp"

namespace glassbox {

/// How the heads of one layer are combined into one attention matrix.
enum class head_aggregation {
  mean,      ///< mean over heads (the paper's default for rollout and flow)
  max,       ///< elementwise maximum over heads
  min,       ///< elementwise minimum over heads
  weighted,  ///< sum_h w[l, h] A[l, h] / sum_h w[l, h] with given weights w >= 0 (head-masked rollout)
};

/// The stable name of a head aggregation ("mean", "max", "min", "weighted").
constexpr std::string_view to_string(head_aggregation a) {
  switch (a) {
    case head_aggregation::mean:
      return "mean";
    case head_aggregation::max:
      return "max";
    case head_aggregation::min:
      return "min";
    case head_aggregation::weighted:
      return "weighted";
  }
  return "unknown";
}

/// Raw attention of one input: every layer and head, and the heads combined per layer.
struct attention_maps_result {
  std::string method = "raw_attention";                   ///< the method name
  token_sequence token_ids;                               ///< the input (empty when computed from a bare tensor)
  tensor4 attentions;                                     ///< [L, H, T, T] as the model returned them
  tensor3 aggregated;                                     ///< [L, T, T] heads combined per `aggregation`
  head_aggregation aggregation = head_aggregation::mean;  ///< how `aggregated` was made
  std::size_t model_evaluations = 0;                      ///< forward passes made (1, or 0 for a bare tensor)
  std::vector<named_option> options;                      ///< the options it ran with
};

/// A token-to-token explanation: rollout, flow, attention x gradient or Chefer relevance.
///
/// `matrix[r, j]` is how much position row_positions[r] at the top level draws on position j
/// at the bottom level; `scores` is the row of `position`, the one a reader usually wants
/// (e.g. the last position, whose output is the prediction).
struct attention_relevance_result {
  std::string method;  ///< attention_rollout, attention_flow, attgrad, chefer_relevance, gradient_weighted_rollout
  token_sequence token_ids;                ///< the input (empty when computed from bare tensors)
  std::size_t first_layer = 0;             ///< bottom level of the product / graph (0 = input tokens)
  std::size_t last_layer = 0;              ///< top level (L = output of the last layer)
  std::vector<std::size_t> row_positions;  ///< the top-level position of each matrix row
  tensor2 matrix;                          ///< [rows, T], the method's matrix (flow: rows normalised as the reference)
  tensor2 unnormalized;        ///< [rows, T] before row normalisation, where the method normalises (flow); else empty
  std::size_t position = 0;    ///< the explained top-level position (whose row is `scores`)
  std::vector<double> scores;  ///< one per bottom-level position: matrix row of `position`
  tensor3 layer_maps;          ///< [last - first, T, T] the per-layer matrices the method combined
  tensor4 head_maps;           ///< [L, H, T, T] per-head maps where the method has them (A x grad); else empty
  std::optional<glassbox::target> target;                          ///< what was explained, for gradient methods
  double target_value = std::numeric_limits<double>::quiet_NaN();  ///< f(input), for gradient methods
  std::size_t model_evaluations = 0;      ///< model passes made (forward, or forward + backward)
  std::vector<named_option> options;      ///< the options it ran with
  std::vector<named_option> diagnostics;  ///< method-specific figures, e.g. max-flow problems solved
};

/// One merge of an agglomerative clustering, in SciPy's linkage layout: clusters 0..n-1 are
/// the items, merge k creates cluster n + k.
struct linkage_step {
  std::size_t left = 0;   ///< first merged cluster
  std::size_t right = 0;  ///< second merged cluster
  double distance = 0;    ///< the linkage distance at which they merge
  std::size_t size = 0;   ///< items in the new cluster
};

/// Statistics of every head over a set of inputs ([L, H] each; head (l, h) is item l * H + h of
/// the pairwise matrices).
struct head_statistics_result {
  std::string method = "head_statistics";  ///< the method name
  std::size_t layers = 0;                  ///< L
  std::size_t heads = 0;                   ///< H
  std::size_t inputs = 0;                  ///< how many inputs were pooled
  std::size_t queries = 0;                 ///< how many query rows were pooled (sum of T over inputs)
  bool causal = true;                      ///< whether the support of query i was keys 0..i (else all keys)
  tensor2 entropy;                         ///< [L, H] mean over queries of -sum_j a_ij ln a_ij (nats)
  tensor2 normalized_entropy;  ///< [L, H] mean over queries of entropy / ln(support size) (queries with support > 1)
  tensor2 mean_distance;       ///< [L, H] mean over queries of sum_j a_ij |i - j|
  tensor2 first_token;         ///< [L, H] mean over queries of a_i0 (attention sink)
  tensor2 previous_token;      ///< [L, H] mean over queries i >= 1 of a_i,i-1
  tensor2 self_token;          ///< [L, H] mean over queries of a_ii
  tensor2 js_divergence;       ///< [LH, LH] mean over queries of JS(a_i^(x), a_i^(y)) in nats, in [0, ln 2]
  tensor2 cosine_distance;     ///< [LH, LH] mean over queries of 1 - cos(a_i^(x), a_i^(y))
  std::vector<std::size_t> cluster_order;  ///< leaf order of the average-linkage clustering of js_divergence
  std::vector<linkage_step> linkage;       ///< the merges of that clustering (LH - 1 of them)
  std::size_t model_evaluations = 0;       ///< forward passes made
  std::vector<named_option> options;       ///< the options it ran with
};

/// Head importance (Michel et al. 2019): the expected absolute gradient of the target with
/// respect to a per-head mask, over a data set.
struct head_importance_result {
  std::string method = "head_importance";  ///< the method name
  std::size_t layers = 0;                  ///< L
  std::size_t heads = 0;                   ///< H
  std::size_t examples = 0;                ///< data set size
  tensor2 importance;                      ///< [L, H] after the normalisations in `options`
  tensor2 raw_importance;                  ///< [L, H] mean over examples of |d f / d mask[l, h]|
  tensor2 mean_gradient;                   ///< [L, H] mean over examples of d f / d mask[l, h] (signed)
  tensor2 mask;                            ///< [L, H] the mask the gradients were taken at (all ones by default)
  double mean_target = std::numeric_limits<double>::quiet_NaN();  ///< mean of f over the data set at `mask`
  std::size_t model_evaluations = 0;                              ///< forward + backward passes made
  std::vector<named_option> options;                              ///< the options it ran with
};

/// The ablation check: each head masked alone, and the change it makes over the data set.
struct head_ablation_result {
  std::string method = "head_ablation";                                ///< the method name
  std::size_t layers = 0;                                              ///< L
  std::size_t heads = 0;                                               ///< H
  std::size_t examples = 0;                                            ///< data set size
  double base_mean_target = std::numeric_limits<double>::quiet_NaN();  ///< mean f with every head on
  double base_accuracy = std::numeric_limits<double>::quiet_NaN();     ///< accuracy with every head on
  tensor2 target_change;              ///< [L, H] mean f with head (l, h) masked minus base_mean_target
  tensor2 accuracy_change;            ///< [L, H] accuracy with head (l, h) masked minus base_accuracy
  std::size_t model_evaluations = 0;  ///< forward passes made
  std::vector<named_option> options;  ///< the options it ran with
};

/// A (layer, head) pair.
struct head_index {
  std::size_t layer = 0;  ///< layer
  std::size_t head = 0;   ///< head within the layer
  friend bool operator==(const head_index&, const head_index&) = default;
};

/// Iterative pruning (Michel et al. 2019, section 4): accuracy and mean target as the least
/// important heads are masked step by step.
struct pruning_curve_result {
  std::string method = "head_pruning";    ///< the method name
  std::size_t layers = 0;                 ///< L
  std::size_t heads = 0;                  ///< H
  std::size_t examples = 0;               ///< data set size
  std::vector<std::size_t> heads_masked;  ///< per step: how many heads are masked (0 first)
  std::vector<double> accuracy;           ///< per step: accuracy over the data set
  std::vector<double> mean_target;        ///< per step: mean f over the data set
  std::vector<head_index> pruning_order;  ///< the heads in the order they were masked
  bool recompute_importance = false;      ///< whether importance was recomputed after each step
  std::size_t model_evaluations = 0;      ///< passes made (forward, and forward + backward for importance)
  std::vector<named_option> options;      ///< the options it ran with

  /// How many heads the model needs under this pruning order: the heads left at the last step
  /// before accuracy first falls below fraction * (accuracy with every head on).
  template <class = void>
  std::size_t heads_needed(double fraction = 0.99) const {
    const std::size_t total = layers * heads;
    if (accuracy.empty()) return total;
    const double bar = fraction * accuracy.front();
    std::size_t masked = 0;
    for (std::size_t s = 0; s < accuracy.size() && accuracy[s] >= bar; ++s) masked = heads_masked[s];
    return total - masked;
  }
};

}  // namespace glassbox

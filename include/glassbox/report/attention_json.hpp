// glassbox: JSON documents of the attention module (docs/json-schema.md):
//   "glassbox.attention" (version 1)  raw attention of one input, or a token-to-token relevance
//                                     matrix (rollout, flow, AttGrad, Chefer, gradient-weighted rollout);
//   "glassbox.heads" (version 1)      head statistics, head importance, the ablation check and the
//                                     pruning curve over a data set (any of the four may be absent).
//
// Its functions are templates on the JSON type (`template <class Json = json>`, or a defaulted
// parameter where no JSON is built), so that the JSON and formatting code they instantiate is
// compiled only where they are called (docs/building.md, "Include cost").
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "glassbox/attention/result.hpp"
#include "glassbox/core/error.hpp"
#include "glassbox/report/json.hpp"

namespace glassbox::report {

/// The version of the "glassbox.attention" schema: 2 since AttGrad's `scores` became the explained
/// position's row (docs/json-schema.md).
inline constexpr int attention_json_version = 2;

namespace detail {

/// A [rows, cols] tensor as an array of rows (non-finite entries as null).
template <class Json = json>
inline Json matrix_json(const tensor2& m) {
  Json rows = Json::array();
  for (std::size_t i = 0; i < m.shape(0); ++i) {
    Json row = Json::array();
    for (std::size_t j = 0; j < m.shape(1); ++j) row.push_back(number<Json>(m(i, j)));
    rows.push_back(std::move(row));
  }
  return rows;
}

/// Matrix k of a [K, rows, cols] tensor as an array of rows.
template <class Json = json>
inline Json slice_json(const tensor3& m, std::size_t k) {
  Json rows = Json::array();
  for (std::size_t i = 0; i < m.shape(1); ++i) {
    Json row = Json::array();
    for (std::size_t j = 0; j < m.shape(2); ++j) row.push_back(number<Json>(m(k, i, j)));
    rows.push_back(std::move(row));
  }
  return rows;
}

/// Map (l, h) of a [L, H, T, T] tensor as an array of rows.
template <class Json = json>
inline Json head_json(const tensor4& a, std::size_t l, std::size_t h) {
  Json rows = Json::array();
  for (std::size_t i = 0; i < a.shape(2); ++i) {
    Json row = Json::array();
    for (std::size_t j = 0; j < a.shape(3); ++j) row.push_back(number<Json>(a(l, h, i, j)));
    rows.push_back(std::move(row));
  }
  return rows;
}

template <class Json = json>
inline Json options_json(const std::vector<named_option>& options) {
  Json o = Json::object();
  for (const auto& x : options) o[x.name] = option_json<Json>(x.value);
  return o;
}

template <class Json = json>
inline Json doubles_json(const std::vector<double>& v) {
  Json a = Json::array();
  for (double x : v) a.push_back(number<Json>(x));
  return a;
}

}  // namespace detail

/// Which map of a raw attention result a document or view singles out.
struct attention_selection {
  std::optional<std::size_t> layer;  ///< the layer (default: the last)
  std::optional<std::size_t> head;   ///< the head (default: the heads combined as the result's aggregation)
};

/// Checks `s` against a raw attention result's [L, H] and returns the layer it selects.
template <class = void>
inline std::size_t selected_layer(const attention_maps_result& r, const attention_selection& s) {
  const std::size_t layers = r.attentions.shape(0), heads = r.attentions.shape(1);
  glassbox::detail::require<shape_error>(!s.layer || *s.layer < layers, "glassbox::report: layer must be < {}, got {}",
                                         layers, s.layer.value_or(0));
  glassbox::detail::require<shape_error>(!s.head || *s.head < heads, "glassbox::report: head must be < {}, got {}",
                                         heads, s.head.value_or(0));
  return s.layer.value_or(layers - 1);
}

/// The selected [T, T] map of a raw attention result: head `s.head` of layer `s.layer`, or that
/// layer's combined heads.
template <class = void>
inline tensor2 selected_map(const attention_maps_result& r, const attention_selection& s) {
  const std::size_t l = selected_layer(r, s), t = r.attentions.shape(2);
  tensor2 m({t, t});
  for (std::size_t i = 0; i < t; ++i)
    for (std::size_t j = 0; j < t; ++j) m(i, j) = s.head ? r.attentions(l, *s.head, i, j) : r.aggregated(l, i, j);
  return m;
}

/// Raw attention as a "glassbox.attention" document: the selected map as `matrix` and its last
/// row as `scores`, every head ([L][H][T][T] `attentions`) and the combined heads ([L][T][T]
/// `aggregated`).
template <class Json = json>
inline Json to_json(const attention_maps_result& r, const std::vector<std::string>& tokens = {},
                    const attention_selection& selection = {}) {
  const std::size_t l = selected_layer(r, selection);
  const std::size_t layers = r.attentions.shape(0), heads = r.attentions.shape(1), t = r.attentions.shape(2);
  const tensor2 m = selected_map(r, selection);
  std::vector<std::size_t> rows(t);
  std::vector<double> scores(t);
  for (std::size_t i = 0; i < t; ++i) rows[i] = i;
  for (std::size_t j = 0; j < t; ++j) scores[j] = m(t - 1, j);
  Json all = Json::array(), aggregated = Json::array();
  for (std::size_t a = 0; a < layers; ++a) {
    Json layer = Json::array();
    for (std::size_t h = 0; h < heads; ++h) layer.push_back(detail::head_json<Json>(r.attentions, a, h));
    all.push_back(std::move(layer));
    aggregated.push_back(detail::slice_json<Json>(r.aggregated, a));
  }
  return {{"schema", "glassbox.attention"},
          {"version", attention_json_version},
          {"method", r.method},
          {"tokens", detail::token_strings(r.token_ids, tokens)},
          {"token_ids", r.token_ids},
          {"layers", layers},
          {"heads", heads},
          {"layer", l},
          {"head", selection.head ? Json(*selection.head) : Json(nullptr)},
          {"aggregation", std::string(to_string(r.aggregation))},
          {"position", t - 1},
          {"row_positions", rows},
          {"matrix", detail::matrix_json<Json>(m)},
          {"scores", detail::doubles_json<Json>(scores)},
          {"attentions", std::move(all)},
          {"aggregated", std::move(aggregated)},
          {"model_evaluations", r.model_evaluations},
          {"options", detail::options_json<Json>(r.options)}};
}

/// A token-to-token relevance (rollout, flow, AttGrad, Chefer, gradient-weighted rollout) as a
/// "glassbox.attention" document.
template <class Json = json>
inline Json to_json(const attention_relevance_result& r, const std::vector<std::string>& tokens = {}) {
  Json j{{"schema", "glassbox.attention"},
         {"version", attention_json_version},
         {"method", r.method},
         {"tokens", detail::token_strings(r.token_ids, tokens)},
         {"token_ids", r.token_ids},
         {"first_layer", r.first_layer},
         {"last_layer", r.last_layer},
         {"position", r.position},
         {"row_positions", r.row_positions},
         {"matrix", detail::matrix_json<Json>(r.matrix)},
         {"scores", detail::doubles_json<Json>(r.scores)},
         {"target", r.target ? to_json<Json>(*r.target) : Json(nullptr)},
         {"target_value", detail::number<Json>(r.target_value)},
         {"model_evaluations", r.model_evaluations},
         {"options", detail::options_json<Json>(r.options)},
         {"diagnostics", detail::options_json<Json>(r.diagnostics)}};
  if (r.unnormalized.size() > 0) j["unnormalized"] = detail::matrix_json<Json>(r.unnormalized);
  return j;
}

/// Head statistics as the "statistics" object of a "glassbox.heads" document.
template <class Json = json>
inline Json to_json(const head_statistics_result& s) {
  Json j{{"inputs", s.inputs},
         {"queries", s.queries},
         {"causal", s.causal},
         {"entropy", detail::matrix_json<Json>(s.entropy)},
         {"normalized_entropy", detail::matrix_json<Json>(s.normalized_entropy)},
         {"mean_distance", detail::matrix_json<Json>(s.mean_distance)},
         {"first_token", detail::matrix_json<Json>(s.first_token)},
         {"previous_token", detail::matrix_json<Json>(s.previous_token)},
         {"self_token", detail::matrix_json<Json>(s.self_token)}};
  if (s.js_divergence.size() > 0) {
    j["js_divergence"] = detail::matrix_json<Json>(s.js_divergence);
    j["cosine_distance"] = detail::matrix_json<Json>(s.cosine_distance);
    j["cluster_order"] = s.cluster_order;
    Json linkage = Json::array();
    for (const auto& m : s.linkage) linkage.push_back({m.left, m.right, detail::number<Json>(m.distance), m.size});
    j["linkage"] = std::move(linkage);
  }
  j["options"] = detail::options_json<Json>(s.options);
  return j;
}

/// Head importance as the "importance" object of a "glassbox.heads" document.
template <class Json = json>
inline Json to_json(const head_importance_result& r) {
  return {{"importance", detail::matrix_json<Json>(r.importance)},
          {"raw_importance", detail::matrix_json<Json>(r.raw_importance)},
          {"mean_gradient", detail::matrix_json<Json>(r.mean_gradient)},
          {"mean_target", detail::number<Json>(r.mean_target)},
          {"options", detail::options_json<Json>(r.options)}};
}

/// The ablation check as the "ablation" object of a "glassbox.heads" document.
template <class Json = json>
inline Json to_json(const head_ablation_result& r) {
  return {{"base_mean_target", detail::number<Json>(r.base_mean_target)},
          {"base_accuracy", detail::number<Json>(r.base_accuracy)},
          {"target_change", detail::matrix_json<Json>(r.target_change)},
          {"accuracy_change", detail::matrix_json<Json>(r.accuracy_change)},
          {"options", detail::options_json<Json>(r.options)}};
}

/// The pruning curve as the "pruning" object of a "glassbox.heads" document.
template <class Json = json>
inline Json to_json(const pruning_curve_result& r) {
  Json order = Json::array();
  for (const auto& h : r.pruning_order) order.push_back({h.layer, h.head});
  return {{"heads_masked", r.heads_masked},
          {"accuracy", detail::doubles_json<Json>(r.accuracy)},
          {"mean_target", detail::doubles_json<Json>(r.mean_target)},
          {"pruning_order", std::move(order)},
          {"recompute_importance", r.recompute_importance},
          {"heads_needed_99", r.heads_needed(0.99)},
          {"options", detail::options_json<Json>(r.options)}};
}

/// The analyses of `glassbox heads`, any of which may be absent.
struct head_report {
  std::optional<head_statistics_result> statistics;  ///< what each head does
  std::optional<head_importance_result> importance;  ///< Michel et al. importance
  std::optional<head_ablation_result> ablation;      ///< single-head ablation
  std::optional<pruning_curve_result> pruning;       ///< the pruning curve
  std::string data;                                  ///< where the examples came from, for the reader
};

/// The layers and heads of a head report (from whichever analysis is present); shape_error if
/// none is present or they disagree.
template <class = void>
inline std::pair<std::size_t, std::size_t> head_report_shape(const head_report& r) {
  std::optional<std::pair<std::size_t, std::size_t>> shape;
  auto take = [&](std::size_t l, std::size_t h) {
    glassbox::detail::require<shape_error>(!shape || (shape->first == l && shape->second == h),
                                           "glassbox::report: head analyses of [{}, {}] and [{}, {}] heads disagree",
                                           shape ? shape->first : 0, shape ? shape->second : 0, l, h);
    shape = std::pair{l, h};
  };
  if (r.statistics) take(r.statistics->layers, r.statistics->heads);
  if (r.importance) take(r.importance->layers, r.importance->heads);
  if (r.ablation) take(r.ablation->layers, r.ablation->heads);
  if (r.pruning) take(r.pruning->layers, r.pruning->heads);
  glassbox::detail::require<shape_error>(shape.has_value(), "glassbox::report: a head report must hold an analysis");
  return *shape;
}

/// A head report as a "glassbox.heads" document.
template <class Json = json>
inline Json to_json(const head_report& r) {
  const auto [layers, heads] = head_report_shape(r);
  std::size_t examples = 0;
  if (r.statistics) examples = r.statistics->inputs;
  if (r.importance) examples = r.importance->examples;
  Json j{{"schema", "glassbox.heads"}, {"version", json_version}, {"layers", layers}, {"heads", heads},
         {"examples", examples},       {"data", r.data}};
  j["statistics"] = r.statistics ? to_json<Json>(*r.statistics) : Json(nullptr);
  j["importance"] = r.importance ? to_json<Json>(*r.importance) : Json(nullptr);
  j["ablation"] = r.ablation ? to_json<Json>(*r.ablation) : Json(nullptr);
  j["pruning"] = r.pruning ? to_json<Json>(*r.pruning) : Json(nullptr);
  return j;
}

}  // namespace glassbox::report

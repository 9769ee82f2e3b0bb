// glassbox: JSON serialisation of results, with a documented, versioned schema (docs/json-schema.md).
//
// Every document carries "schema" (e.g. "glassbox.attribution") and "version". Readers accept
// the versions they know and fail clearly on others. Non-finite numbers are written as null.
//
// Its functions are templates with a defaulted parameter (`template <class = void>`), so that the JSON
// and formatting code they instantiate is compiled only where they are called (docs/building.md,
// "Include cost").
#pragma once

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>
#include <vector>

#include "glassbox/core/error.hpp"
#include "glassbox/core/result.hpp"
#include "glassbox/core/target.hpp"

namespace glassbox::report {

/// The JSON type of glassbox documents: keys keep the order in which they were written.
using json = nlohmann::ordered_json;

/// The version of the JSON schemas this header writes.
inline constexpr int json_version = 1;

namespace detail {

template <class Json = json>
inline Json number(double x) { return std::isfinite(x) ? Json(x) : Json(nullptr); }

template <class Json = json>
inline double number_from(const std::type_identity_t<Json>& j) {
  return j.is_null() ? std::numeric_limits<double>::quiet_NaN() : j.template get<double>();
}

template <class Json = json>
inline Json option_json(const option_value& v) {
  return std::visit([](const auto& x) -> Json { return x; }, v);
}

template <class Json = json>
inline option_value option_from(const std::type_identity_t<Json>& j) {
  if (j.is_boolean()) return j.template get<bool>();
  if (j.is_number_integer()) return j.template get<std::int64_t>();
  if (j.is_number()) return j.template get<double>();
  if (j.is_string()) return j.template get<std::string>();
  glassbox::detail::fail<io_error>("glassbox::report: an option value must be a bool, number or string, got {}",
                                   j.dump());
}

template <class Json = json>
inline void check_schema(const std::type_identity_t<Json>& j, std::string_view schema) {
  glassbox::detail::require<io_error>(j.is_object() && j.contains("schema") && j["schema"] == schema,
                                      "glassbox::report: expected a {} document", schema);
  const int version = j.value("version", 0);
  glassbox::detail::require<io_error>(version == json_version,
                                      "glassbox::report: {} version must be {}, got {}", schema, json_version, version);
}

template <class Json = json>
inline std::vector<std::string> token_strings(const token_sequence& ids, const std::vector<std::string>& tokens) {
  if (!tokens.empty()) {
    glassbox::detail::require<shape_error>(tokens.size() == ids.size(),
                                           "glassbox::report: {} token strings for {} token ids", tokens.size(),
                                           ids.size());
    return tokens;
  }
  std::vector<std::string> out;
  out.reserve(ids.size());
  for (auto id : ids) out.push_back(std::to_string(id));
  return out;
}

}  // namespace detail

/// A target as JSON: {"kind", "token", "foil", "position", "continuation", "of", "description"}.
template <class Json = json>
inline Json to_json(const target& t) {
  Json j{{"kind", std::string(to_string(t.kind()))}, {"description", t.describe()}};
  if (t.kind() == target_kind::sequence_log_probability) {
    j["continuation"] = t.continuation();
  } else {
    j["token"] = t.token();
    j["position"] = t.position();
  }
  if (t.kind() == target_kind::contrast) {
    j["foil"] = t.foil();
    j["of"] = std::string(to_string(t.contrast_of()));
  }
  return j;
}

/// The target a to_json(target) document describes.
template <class Json = json>
inline target target_from_json(const std::type_identity_t<Json>& j) {
  const std::string kind = j.at("kind").template get<std::string>();
  auto kind_from = [](const std::string& s) {
    for (auto k : {target_kind::logit, target_kind::probability, target_kind::log_probability,
                   target_kind::sequence_log_probability, target_kind::contrast})
      if (to_string(k) == s) return k;
    glassbox::detail::fail<io_error>("glassbox::report: unknown target kind \"{}\"", s);
  };
  switch (kind_from(kind)) {
    case target_kind::logit: return target::logit(j.at("token").template get<token_id>(), j.at("position").template get<std::ptrdiff_t>());
    case target_kind::probability:
      return target::probability(j.at("token").template get<token_id>(), j.at("position").template get<std::ptrdiff_t>());
    case target_kind::log_probability:
      return target::log_probability(j.at("token").template get<token_id>(), j.at("position").template get<std::ptrdiff_t>());
    case target_kind::sequence_log_probability:
      return target::sequence_log_probability(j.at("continuation").template get<token_sequence>());
    case target_kind::contrast:
      return target::contrast(j.at("token").template get<token_id>(), j.at("foil").template get<token_id>(),
                              kind_from(j.at("of").template get<std::string>()), j.at("position").template get<std::ptrdiff_t>());
  }
  glassbox::detail::fail<io_error>("glassbox::report: unknown target kind \"{}\"", kind);
}

/// An attribution as a "glassbox.attribution" document; `tokens` are the token strings (ids are used if empty).
template <class Json = json>
inline Json to_json(const attribution_result& r, const std::vector<std::string>& tokens = {}) {
  Json options = Json::object();
  for (const auto& o : r.options) options[o.name] = detail::option_json<Json>(o.value);
  Json j{{"schema", "glassbox.attribution"},
                   {"version", json_version},
                   {"method", r.method},
                   {"tokens", detail::token_strings(r.token_ids, tokens)},
                   {"token_ids", r.token_ids},
                   {"scores", Json::array()},
                   {"target", to_json<Json>(r.target)},
                   {"target_value", detail::number<Json>(r.target_value)},
                   {"baseline_value", detail::number<Json>(r.baseline_value)},
                   {"convergence_delta", r.convergence_delta ? detail::number<Json>(*r.convergence_delta) : nullptr},
                   {"model_evaluations", r.model_evaluations},
                   {"options", options}};
  for (double s : r.scores) j["scores"].push_back(detail::number<Json>(s));
  if (!r.standard_errors.empty()) {
    j["standard_errors"] = Json::array();
    for (double s : r.standard_errors) j["standard_errors"].push_back(detail::number<Json>(s));
  }
  if (r.embedding_scores.size() > 0) {
    Json rows = Json::array();
    for (std::size_t i = 0; i < r.embedding_scores.shape(0); ++i) {
      Json row = Json::array();
      for (std::size_t k = 0; k < r.embedding_scores.shape(1); ++k)
        row.push_back(detail::number<Json>(r.embedding_scores(i, k)));
      rows.push_back(std::move(row));
    }
    j["embedding_scores"] = std::move(rows);
  }
  return j;
}

/// The attribution a "glassbox.attribution" document describes (inverse of to_json).
template <class Json = json>
inline attribution_result attribution_from_json(const std::type_identity_t<Json>& j) {
  detail::check_schema(j, "glassbox.attribution");
  attribution_result r;
  r.method = j.at("method").template get<std::string>();
  r.token_ids = j.at("token_ids").template get<token_sequence>();
  for (const auto& s : j.at("scores")) r.scores.push_back(detail::number_from(s));
  glassbox::detail::require<io_error>(r.scores.size() == r.token_ids.size(),
                                      "glassbox::report: {} scores for {} tokens", r.scores.size(), r.token_ids.size());
  if (j.contains("standard_errors"))
    for (const auto& s : j["standard_errors"]) r.standard_errors.push_back(detail::number_from(s));
  if (j.contains("embedding_scores") && !j["embedding_scores"].empty()) {
    const auto& rows = j["embedding_scores"];
    r.embedding_scores = tensor2({rows.size(), rows[0].size()});
    for (std::size_t i = 0; i < rows.size(); ++i)
      for (std::size_t k = 0; k < rows[i].size(); ++k)
        r.embedding_scores(i, k) = static_cast<float>(detail::number_from(rows[i][k]));
  }
  r.target = target_from_json(j.at("target"));
  r.target_value = detail::number_from(j.at("target_value"));
  r.baseline_value = detail::number_from(j.at("baseline_value"));
  if (!j.at("convergence_delta").is_null()) r.convergence_delta = j["convergence_delta"].template get<double>();
  r.model_evaluations = j.at("model_evaluations").template get<std::size_t>();
  for (const auto& [name, value] : j.at("options").items()) r.options.push_back({name, detail::option_from(value)});
  return r;
}

/// A generation attribution as a "glassbox.sequence_attribution" document.
template <class Json = json>
inline Json to_json(const sequence_attribution_result& r, const std::vector<std::string>& tokens = {}) {
  Json options = Json::object();
  for (const auto& o : r.options) options[o.name] = detail::option_json<Json>(o.value);
  Json scores = Json::array();
  for (std::size_t g = 0; g < r.scores.shape(0); ++g) {
    Json row = Json::array();
    for (std::size_t s = 0; s < r.scores.shape(1); ++s) row.push_back(detail::number<Json>(r.scores(g, s)));
    scores.push_back(std::move(row));
  }
  Json values = Json::array(), deltas = Json::array();
  for (double v : r.target_values) values.push_back(detail::number<Json>(v));
  for (double v : r.convergence_deltas) deltas.push_back(detail::number<Json>(v));
  return {{"schema", "glassbox.sequence_attribution"},
          {"version", json_version},
          {"method", r.method},
          {"tokens", detail::token_strings(r.token_ids, tokens)},
          {"token_ids", r.token_ids},
          {"prompt_length", r.prompt_length},
          {"scores", std::move(scores)},
          {"target_values", std::move(values)},
          {"convergence_deltas", std::move(deltas)},
          {"model_evaluations", r.model_evaluations},
          {"options", options}};
}

}  // namespace glassbox::report

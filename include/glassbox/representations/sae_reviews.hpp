// glassbox: the known per-token properties of the synthetic review language
// (datasets/reviews.hpp) as the binary row properties that sae_match_properties scores SAE
// features against: what no SAE library can measure, because real text has no such truth.
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <vector>

#include "glassbox/datasets/reviews.hpp"
#include "glassbox/representations/sae.hpp"

namespace glassbox {

/// The binary properties of every token of `inputs` (rows in order: sequence, then position, as
/// collect_activations' token pooling with every token labelled gives them): for each
/// review_property and each of its values, "name=value" true where the token has that value. A
/// yes / no property gives one indicator "name" (value 1); a signed one (polarities) one per sign;
/// strengths one per nonzero level; part of speech one per tag. Indicators true on no row are left out.
///
/// Example:
///   auto props = glassbox::review_row_properties(inputs);
///   auto scores = glassbox::sae_match_properties(sae, activations, props);
template <class = void>
std::vector<sae_row_property> review_row_properties(std::span<const token_sequence> inputs) {
  using datasets::review_property;
  std::vector<datasets::review_analysis> truth;
  truth.reserve(inputs.size());
  std::size_t rows = 0;
  for (const auto& s : inputs) {
    truth.push_back(datasets::label_of(s));
    rows += s.size();
  }
  const auto value_name = [](review_property p, int v) -> std::string {
    const std::string name(datasets::to_string(p));
    switch (p) {
      case review_property::pos:
        return name + "=" + std::string(datasets::to_string(static_cast<datasets::part_of_speech>(v)));
      case review_property::written_polarity:
      case review_property::effective_polarity:
        return name + (v > 0 ? "=positive" : "=negative");
      case review_property::strength:
      case review_property::effective_strength:
        return name + "=" + std::to_string(v);
      default:
        return name;
    }
  };
  std::vector<sae_row_property> out;
  for (const review_property p : datasets::all_review_properties) {
    std::vector<int> values;
    if (p == review_property::pos) {
      for (std::size_t v = 0; v < datasets::part_of_speech_count; ++v) values.push_back(static_cast<int>(v));
    } else if (p == review_property::written_polarity || p == review_property::effective_polarity) {
      values = {1, -1};
    } else if (p == review_property::strength) {
      values = {1, 2, 3};
    } else if (p == review_property::effective_strength) {
      values = {1, 2, 3, 4};
    } else {
      values = {1};
    }
    for (const int v : values) {
      sae_row_property q{value_name(p, v), {}};
      q.truth.reserve(rows);
      std::size_t count = 0;
      for (const auto& a : truth)
        for (const auto& t : a.properties) {
          const bool on = datasets::property_value(t, p) == v;
          q.truth.push_back(on ? 1 : 0);
          count += on ? 1 : 0;
        }
      if (count > 0) out.push_back(std::move(q));
    }
  }
  return out;
}

}  // namespace glassbox

// glassbox: segments of a prompt (demonstrations, sentences) as features, and attribution over
// them with any perturbation method of the attribution module. docs/prompting.md has the
// definitions and defaults.
//
// A segment is a run of consecutive token positions [begin, end). Segments are given by their
// boundaries or found at a separator token; positions outside every segment (an instruction
// before the demonstrations, the query after them) are held fixed: feature_map entry -1.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <type_traits>
#include <variant>
#include <vector>

#include "glassbox/attribution/kernel_shap.hpp"
#include "glassbox/attribution/lime.hpp"
#include "glassbox/attribution/occlusion.hpp"
#include "glassbox/attribution/shapley.hpp"
#include "glassbox/core/error.hpp"
#include "glassbox/core/model.hpp"
#include "glassbox/core/result.hpp"
#include "glassbox/core/target.hpp"
#include "glassbox/core/types.hpp"

namespace glassbox {

/// A segment of a prompt: the token positions [begin, end), e.g. one demonstration or sentence.
struct segment {
  std::size_t begin = 0;  ///< first position
  std::size_t end = 0;    ///< one past the last position

  /// Number of positions.
  std::size_t size() const { return end - begin; }
  /// Equal segments.
  friend bool operator==(const segment&, const segment&) = default;
};

/// Where segments_at_separator looks, and what it does with the separators and the rest.
struct separator_options {
  std::size_t begin = 0;             ///< first position searched
  std::optional<std::size_t> end{};  ///< one past the last position searched; empty = the end of the tokens
  /// Whether a separator belongs to the segment it closes (true, the default: "Q: .. A: .. \n" is one
  /// demonstration, its "\n" included) or is held fixed between segments (false).
  bool include_separator = true;
  /// Whether the tokens after the last separator form a segment (false, the default: they are the
  /// query and stay fixed; true: e.g. a last sentence without its full stop).
  bool trailing_segment = false;
};

namespace detail {

/// Checks that `segments` are non-empty, inside an input of `n_tokens` tokens, ascending and disjoint.
template <class = void>
void check_segments(std::size_t n_tokens, std::span<const segment> segments, std::string_view caller) {
  require<shape_error>(!segments.empty(), "glassbox::{}: segments must not be empty", caller);
  for (std::size_t i = 0; i < segments.size(); ++i) {
    const segment& s = segments[i];
    require<shape_error>(s.begin < s.end, "glassbox::{}: segments must not be empty: segment {} is [{}, {})", caller, i,
                         s.begin, s.end);
    require<shape_error>(s.end <= n_tokens,
                         "glassbox::{}: segments must lie inside the {} tokens: segment {} is [{}, {})", caller,
                         n_tokens, i, s.begin, s.end);
    if (i > 0)
      require<shape_error>(s.begin >= segments[i - 1].end,
                           "glassbox::{}: segments must be in ascending order and must not overlap: segment {} [{}, "
                           "{}) starts before segment {} [{}, {}) ends",
                           caller, i, s.begin, s.end, i - 1, segments[i - 1].begin, segments[i - 1].end);
  }
}

/// The feature map of checked segments: segment i's positions get group i, the others -1.
template <class = void>
std::vector<int> segment_map(std::size_t n_tokens, std::span<const segment> segments, std::string_view caller) {
  check_segments(n_tokens, segments, caller);
  std::vector<int> map(n_tokens, -1);
  for (std::size_t i = 0; i < segments.size(); ++i)
    for (std::size_t p = segments[i].begin; p < segments[i].end; ++p) map[p] = static_cast<int>(i);
  return map;
}

}  // namespace detail

/// The segments of `tokens[begin, end)` split at every occurrence of `separator`: a segment runs from
/// just after the previous separator (or `begin`) to its separator, which it includes by default
/// (options.include_separator); empty pieces are skipped. The piece after the last separator is a
/// segment only with options.trailing_segment (by default it is the query, held fixed).
///
/// Example: for "a b \n c \n q" (\n = 9) `segments_at_separator(tokens, 9)` is {[0, 3), [3, 5)}.
template <class = void>
std::vector<segment> segments_at_separator(token_span tokens, token_id separator,
                                           const separator_options& options = {}) {
  const std::size_t end = options.end.value_or(tokens.size());
  detail::require<shape_error>(end <= tokens.size(),
                               "glassbox::segments_at_separator: end must be <= the number of tokens ({}), got {}",
                               tokens.size(), end);
  detail::require<shape_error>(options.begin < end, "glassbox::segments_at_separator: begin must be < end ({}), got {}",
                               end, options.begin);
  std::vector<segment> out;
  std::size_t start = options.begin;
  for (std::size_t i = options.begin; i < end; ++i) {
    if (tokens[i] != separator) continue;
    const std::size_t stop = options.include_separator ? i + 1 : i;
    if (stop > start) out.push_back({start, stop});
    start = i + 1;
  }
  if (options.trailing_segment && start < end) out.push_back({start, end});
  detail::require<shape_error>(!out.empty(),
                               "glassbox::segments_at_separator: no segment in tokens [{}, {}): separator {} does not "
                               "occur there{}",
                               options.begin, end, separator,
                               options.trailing_segment ? "" : " (set trailing_segment to make the rest one segment)");
  return out;
}

/// The feature map of `segments` over an input of `n_tokens` tokens: segment i's positions get
/// group i, every other position -1 (held fixed). Segments must be non-empty, ascending and disjoint.
template <class = void>
std::vector<int> segment_feature_map(std::size_t n_tokens, std::span<const segment> segments) {
  return detail::segment_map(n_tokens, segments, "segment_feature_map");
}

/// The perturbation method of a segment attribution and its options (their feature_map must stay
/// empty: the segments define it). Default: feature ablation, i.e. leave one segment out.
using segment_method_options = std::variant<feature_ablation_options, occlusion_options, lime_options,
                                            kernel_shap_options, shapley_sampling_options, shapley_exact_options>;

/// Scores of whole segments, with the per-token result they come from.
struct segment_attribution_result {
  std::vector<segment> segments;        ///< the segments, in input order
  std::vector<double> scores;           ///< one per segment
  std::vector<double> standard_errors;  ///< one per segment for shapley_sampling; else empty
  attribution_result attribution;       ///< the method's per-token result (every token of a segment carries its score)
};

/// Attributes target `t` to whole segments of `tokens`: runs the perturbation method of `method`
/// (feature_ablation by default; occlusion, lime, kernel_shap, shapley_sampling, shapley_exact) with
/// the feature map of segment_feature_map, so that each segment is made absent as one feature and
/// the tokens outside every segment are held fixed. Score i is the method's score of segment i. The
/// cost is the method's, with n = the number of segments.
///
/// Example: `auto r = glassbox::attribute_segments(model, tokens, glassbox::segments_at_separator(tokens, nl), t,
/// glassbox::shapley_exact_options{});`
template <class M>
segment_attribution_result attribute_segments(const M& model, token_span tokens, std::span<const segment> segments,
                                              const target& t, const segment_method_options& method = {}) {
  static_assert(check_model<M>());
  const std::vector<int> map = detail::segment_map(tokens.size(), segments, "attribute_segments");
  attribution_result r = std::visit(
      [&](auto options) -> attribution_result {
        using O = decltype(options);
        detail::require(options.feature_map.empty(),
                        "glassbox::attribute_segments: the method's feature_map must be empty (the segments define "
                        "it), got {} entries",
                        options.feature_map.size());
        options.feature_map = map;
        if constexpr (std::is_same_v<O, feature_ablation_options>) {
          return feature_ablation(model, tokens, t, options);
        } else if constexpr (std::is_same_v<O, occlusion_options>) {
          return occlusion(model, tokens, t, options);
        } else if constexpr (std::is_same_v<O, lime_options>) {
          return lime(model, tokens, t, options);
        } else if constexpr (std::is_same_v<O, kernel_shap_options>) {
          return kernel_shap(model, tokens, t, options);
        } else if constexpr (std::is_same_v<O, shapley_sampling_options>) {
          return shapley_sampling(model, tokens, t, options);
        } else {
          static_assert(std::is_same_v<O, shapley_exact_options>);
          return shapley_exact(model, tokens, t, options);
        }
      },
      method);
  segment_attribution_result out;
  out.segments.assign(segments.begin(), segments.end());
  out.scores.resize(segments.size());
  for (std::size_t i = 0; i < segments.size(); ++i) out.scores[i] = r.scores[segments[i].begin];
  if (!r.standard_errors.empty()) {
    out.standard_errors.resize(segments.size());
    for (std::size_t i = 0; i < segments.size(); ++i) out.standard_errors[i] = r.standard_errors[segments[i].begin];
  }
  out.attribution = std::move(r);
  return out;
}

}  // namespace glassbox

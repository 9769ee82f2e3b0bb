// glassbox: plausibility of token scores against a known rationale (DeYoung et al. 2020, ERASER):
// precision, recall and F1 of the top-k tokens, AUPRC of the soft scores (average precision, as
// scikit-learn), the rank of the deciding word, and the spans IOU-F1 needs; iou_f1 pools many
// instances as ERASER's partial_match_score does. docs/evaluation.md, "Plausibility".
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "glassbox/core/error.hpp"
#include "glassbox/evaluation/detail/ranking.hpp"

namespace glassbox {

/// A run of consecutive token positions [begin, end).
struct token_range {
  std::size_t begin = 0;  ///< first position
  std::size_t end = 0;    ///< one past the last position

  /// Number of positions.
  std::size_t size() const { return end - begin; }
  /// Equal ranges.
  friend bool operator==(const token_range&, const token_range&) = default;
};

/// Options of plausibility.
struct plausibility_options {
  std::size_t k = 0;                    ///< tokens predicted as rationale: the top k; 0 = |rationale|
  bool absolute = false;                ///< rank tokens by |score| (and score AUPRC on |score|)
  std::vector<std::size_t> deciding{};  ///< positions of the deciding word(s); empty = no rank reported
  std::size_t length = 0;               ///< only positions [0, length) compete; 0 = every score
};

/// How well token scores recover a known rationale.
struct plausibility_result {
  std::size_t k = 0;         ///< the top-k size used
  double precision = 0;      ///< |top-k ∩ rationale| / k
  double recall = 0;         ///< |top-k ∩ rationale| / |rationale|
  double f1 = 0;             ///< 2 P R / (P + R), 0 when both are 0 (ERASER's token F1 for this hard prediction)
  double auprc = 0;          ///< average precision of the scores against rationale membership (sklearn)
  /// Best (smallest) rank among the deciding positions, 1 = highest score; tied tokens share the mean
  /// of their ranks. NaN when options.deciding is empty.
  double deciding_rank = std::numeric_limits<double>::quiet_NaN();
  std::vector<token_range> predicted_spans;  ///< maximal runs of consecutive top-k positions
  std::vector<token_range> gold_spans;       ///< maximal runs of consecutive rationale positions
  std::vector<double> span_ious;             ///< per predicted span, its best IOU with a gold span
  std::size_t span_matches = 0;              ///< predicted spans with best IOU >= 0.5 (ERASER's threshold)
};

/// IOU-F1 over many instances (ERASER's partial_match_score at one threshold).
struct iou_f1_result {
  double threshold = 0.5;      ///< a predicted span matches when its best IOU is >= this
  double micro_precision = 0;  ///< matches / predicted spans, pooled over instances
  double micro_recall = 0;     ///< matches / gold spans, pooled over instances
  double micro_f1 = 0;         ///< F1 of the micro precision and recall
  double macro_precision = 0;  ///< mean over instances with predicted spans of matches / predicted spans
  double macro_recall = 0;     ///< mean over instances with gold spans of matches / gold spans
  double macro_f1 = 0;         ///< F1 of the macro precision and recall (as ERASER)
};

namespace detail {

/// F1 of a precision and a recall; 0 when either is 0 (ERASER's _f1).
template <class = void>
inline double f1_of(double precision, double recall) {
  if (precision == 0 || recall == 0) return 0;
  return 2 * precision * recall / (precision + recall);
}

/// The maximal runs of consecutive positions of a sorted set of positions.
template <class = void>
std::vector<token_range> runs_of(std::vector<std::size_t> positions) {
  std::sort(positions.begin(), positions.end());
  std::vector<token_range> out;
  for (std::size_t p : positions) {
    if (!out.empty() && out.back().end == p)
      ++out.back().end;
    else
      out.push_back({p, p + 1});
  }
  return out;
}

/// The intersection over union of two ranges.
template <class = void>
inline double iou_of(const token_range& a, const token_range& b) {
  const std::size_t lo = std::max(a.begin, b.begin), hi = std::min(a.end, b.end);
  const double inter = hi > lo ? static_cast<double>(hi - lo) : 0.0;
  const double uni = static_cast<double>(a.size() + b.size()) - inter;
  return uni == 0 ? 0.0 : inter / uni;
}

/// Validates a rationale of positions in [0, length): non-empty, in range, no repeats.
template <class = void>
void require_rationale(std::span<const std::size_t> rationale, std::size_t length, std::string_view caller) {
  require<shape_error>(!rationale.empty(), "glassbox::{}: rationale must not be empty", caller);
  std::vector<std::size_t> sorted(rationale.begin(), rationale.end());
  std::sort(sorted.begin(), sorted.end());
  for (std::size_t i = 0; i < sorted.size(); ++i) {
    require<shape_error>(sorted[i] < length, "glassbox::{}: rationale positions must be < {}, got {}", caller, length,
                         sorted[i]);
    require<shape_error>(i == 0 || sorted[i] != sorted[i - 1],
                         "glassbox::{}: rationale positions must be distinct, got {} twice", caller, sorted[i]);
  }
}

}  // namespace detail

/// Average precision of `scores` against binary `relevant` (scikit-learn's average_precision_score):
/// AP = sum_n (R_n - R_{n-1}) P_n over the distinct score values from the highest down, tied scores
/// forming one threshold. Needs at least one relevant position.
template <class = void>
double average_precision(std::span<const double> scores, std::span<const bool> relevant) {
  detail::require<shape_error>(!scores.empty(), "glassbox::average_precision: scores must not be empty");
  detail::require<shape_error>(relevant.size() == scores.size(),
                               "glassbox::average_precision: relevant must have one entry per score ({}), got {}",
                               scores.size(), relevant.size());
  detail::require_finite_values(scores, "average_precision", "scores");
  const auto positives = static_cast<double>(std::count(relevant.begin(), relevant.end(), true));
  detail::require(positives > 0, "glassbox::average_precision: relevant must hold at least one true entry, got none");
  std::vector<std::size_t> order(scores.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return scores[a] > scores[b]; });
  double tp = 0, fp = 0, previous_recall = 0, ap = 0;
  for (std::size_t i = 0; i < order.size();) {
    std::size_t j = i;
    for (; j < order.size() && scores[order[j]] == scores[order[i]]; ++j) (relevant[order[j]] ? tp : fp) += 1;
    const double recall = tp / positives, precision = tp / (tp + fp);
    ap += (recall - previous_recall) * precision;
    previous_recall = recall;
    i = j;
  }
  return ap;
}

/// Plausibility of token `scores` against a known `rationale` (positions): precision, recall and F1
/// of the top-k tokens, AUPRC of the soft scores, the rank of the deciding word and the spans for
/// IOU-F1. Only positions [0, options.length) compete (0 = all). Ties in the ranking are broken by
/// position (earlier first).
///
/// Example: `auto p = glassbox::plausibility(r.scores, truth.rationale, {.deciding = truth.deciding_words});`
template <class = void>
plausibility_result plausibility(std::span<const double> scores, std::span<const std::size_t> rationale,
                                 const plausibility_options& options = {}) {
  constexpr std::string_view caller = "plausibility";
  detail::require<shape_error>(!scores.empty(), "glassbox::plausibility: scores must not be empty");
  const std::size_t n = options.length == 0 ? scores.size() : options.length;
  detail::require<shape_error>(n <= scores.size(), "glassbox::plausibility: length must be <= {} (the scores), got {}",
                               scores.size(), options.length);
  const std::span<const double> used = scores.first(n);
  detail::require_finite_values(used, caller, "scores");
  detail::require_rationale(rationale, n, caller);
  const std::size_t k = options.k == 0 ? rationale.size() : options.k;
  detail::require(k <= n, "glassbox::plausibility: k must be <= {} (the competing tokens), got {}", n, k);
  for (std::size_t d : options.deciding)
    detail::require<shape_error>(d < n, "glassbox::plausibility: deciding positions must be < {}, got {}", n, d);

  std::vector<double> key(n);
  for (std::size_t i = 0; i < n; ++i) key[i] = options.absolute ? std::abs(used[i]) : used[i];
  std::vector<bool> in_rationale(n, false);
  for (std::size_t r : rationale) in_rationale[r] = true;

  plausibility_result out;
  out.k = k;
  std::vector<std::size_t> all(n);
  for (std::size_t i = 0; i < n; ++i) all[i] = i;
  std::vector<std::size_t> top = detail::rank_by_score(key, all, false);
  top.resize(k);
  double hits = 0;
  for (std::size_t p : top) hits += in_rationale[p] ? 1 : 0;
  out.precision = k == 0 ? 0.0 : hits / static_cast<double>(k);
  out.recall = hits / static_cast<double>(rationale.size());
  out.f1 = detail::f1_of(out.precision, out.recall);
  const std::unique_ptr<bool[]> flags(new bool[n]);
  for (std::size_t i = 0; i < n; ++i) flags[i] = in_rationale[i];
  out.auprc = average_precision(key, std::span<const bool>(flags.get(), n));

  for (std::size_t d : options.deciding) {
    // Counted over every token, d included (it ties with itself once).
    std::size_t greater = 0, equal = 0;
    const double own = key[d];
    for (const double other : key) {
      greater += other > own ? 1 : 0;
      equal += other == own ? 1 : 0;
    }
    const double rank = 1 + static_cast<double>(greater) + static_cast<double>(equal - 1) / 2;
    if (std::isnan(out.deciding_rank) || rank < out.deciding_rank) out.deciding_rank = rank;
  }

  out.predicted_spans = detail::runs_of(top);
  out.gold_spans = detail::runs_of(std::vector<std::size_t>(rationale.begin(), rationale.end()));
  for (const auto& p : out.predicted_spans) {
    double best = 0;
    for (const auto& g : out.gold_spans) best = std::max(best, detail::iou_of(p, g));
    out.span_ious.push_back(best);
    if (best >= 0.5) ++out.span_matches;
  }
  return out;
}

/// IOU-F1 over many instances, as ERASER's partial_match_score: a predicted span is a true positive
/// when its best IOU with a gold span of its instance is >= threshold; micro scores pool the counts,
/// macro scores average per-instance precision and recall and take the F1 of those averages.
template <class = void>
iou_f1_result iou_f1(std::span<const plausibility_result> instances, double threshold = 0.5) {
  detail::require<shape_error>(!instances.empty(), "glassbox::iou_f1: instances must not be empty");
  detail::require(threshold > 0 && threshold <= 1, "glassbox::iou_f1: threshold must be in (0, 1], got {}", threshold);
  iou_f1_result out;
  out.threshold = threshold;
  double tp = 0, predicted = 0, gold = 0, precision_sum = 0, recall_sum = 0, with_predicted = 0, with_gold = 0;
  for (const auto& x : instances) {
    double hits = 0;
    for (double iou : x.span_ious) hits += iou >= threshold ? 1 : 0;
    tp += hits;
    predicted += static_cast<double>(x.span_ious.size());
    gold += static_cast<double>(x.gold_spans.size());
    if (!x.span_ious.empty()) {
      precision_sum += hits / static_cast<double>(x.span_ious.size());
      with_predicted += 1;
    }
    if (!x.gold_spans.empty()) {
      recall_sum += hits / static_cast<double>(x.gold_spans.size());
      with_gold += 1;
    }
  }
  out.micro_precision = predicted > 0 ? tp / predicted : 0;
  out.micro_recall = gold > 0 ? tp / gold : 0;
  out.micro_f1 = detail::f1_of(out.micro_precision, out.micro_recall);
  out.macro_precision = with_predicted > 0 ? precision_sum / with_predicted : 0;
  out.macro_recall = with_gold > 0 ? recall_sum / with_gold : 0;
  out.macro_f1 = detail::f1_of(out.macro_precision, out.macro_recall);
  return out;
}

}  // namespace glassbox

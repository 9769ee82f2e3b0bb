// glassbox: faithfulness of token scores by removal. ERASER's comprehensiveness and sufficiency
// of a hard rationale and their AOPC over top-k bins for soft scores (DeYoung et al. 2020), and
// deletion / insertion curves with their areas (Samek et al. 2017; Petsiuk et al. 2018). Every
// model call goes through detail::coalition_evaluator (attribution/detail/perturbation_inputs.hpp):
// batching, threads, progress, cancellation and causal prefix reuse as in the attribution methods.
// docs/evaluation.md has the formulas and defaults.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <map>
#include <span>
#include <string_view>
#include <vector>

#include "glassbox/attribution/baseline.hpp"
#include "glassbox/attribution/detail/perturbation_inputs.hpp"
#include "glassbox/core/error.hpp"
#include "glassbox/core/execution.hpp"
#include "glassbox/core/model.hpp"
#include "glassbox/core/target.hpp"
#include "glassbox/core/types.hpp"
#include "glassbox/evaluation/detail/ranking.hpp"

namespace glassbox {

/// Options of the removal-based faithfulness metrics (rationale_faithfulness, eraser_aopc,
/// deletion_curve, insertion_curve).
struct faithfulness_options {
  /// How a removed token is made: deleted outright (ERASER's choice, the default), or replaced by
  /// baseline::pad(), baseline::token(unk), baseline::zero() (EmbeddingModel) ...
  glassbox::baseline removal = glassbox::baseline::removal();
  bool absolute = false;  ///< rank tokens by |score| instead of score
  /// ERASER's AOPC bins: fractions of the removable tokens; bin b removes the top ceil(n b) tokens.
  std::vector<double> aopc_bins = {0.01, 0.05, 0.10, 0.20, 0.50};
  /// Deletion / insertion curves: points at fractions 0, 1/steps, ..., 1 of the removable tokens;
  /// 0 = one token per step (steps = the number of removable tokens).
  std::size_t steps = 0;
  /// One entry per token: -1 = never removed (e.g. a marker, and anything at or after the target's
  /// row), any other value = removable (group ids are not used: each token is ranked and removed on
  /// its own). Empty = every token removable, except, on a model with one output row per token,
  /// the tokens at and after the first row the target reads.
  std::vector<int> feature_map{};
  execution_options execution{};  ///< batch size, threads, progress, cancellation
};

/// ERASER's comprehensiveness and sufficiency of a hard rationale.
struct rationale_faithfulness_result {
  double full_value = 0;         ///< f(x)
  double without_rationale = 0;  ///< f(x \ r): the rationale removed
  double rationale_only = 0;     ///< f(r): every removable token outside the rationale removed
  double comprehensiveness = 0;  ///< f(x) - f(x \ r); higher = the rationale was needed
  double sufficiency = 0;        ///< f(x) - f(r); lower (about 0) = the rationale suffices
  std::size_t model_evaluations = 0;  ///< 3
};

/// ERASER's AOPC of soft scores: comprehensiveness and sufficiency of the top-k tokens for k from
/// each bin, averaged over the bins.
struct aopc_result {
  double full_value = 0;                          ///< f(x)
  double comprehensiveness = 0;                   ///< mean over bins of f(x) - f(x \ top_k)
  double sufficiency = 0;                         ///< mean over bins of f(x) - f(top_k)
  std::vector<double> bins;                       ///< the bins (fractions of the removable tokens)
  std::vector<std::size_t> bin_tokens;            ///< k per bin: ceil(removable x bin)
  std::vector<double> comprehensiveness_points;   ///< per bin, f(x) - f(x \ top_k)
  std::vector<double> sufficiency_points;         ///< per bin, f(x) - f(top_k)
  std::size_t model_evaluations = 0;              ///< 1 + 2 x bins
};

/// A deletion or insertion curve: the target as the top tokens are removed (inserted), and its area.
struct curve_result {
  std::vector<double> fractions;       ///< x: 0, 1/steps, ..., 1 (fraction of the removable tokens)
  std::vector<std::size_t> tokens;     ///< tokens removed (deletion) or present (insertion) at each point
  std::vector<double> values;          ///< the target at each point
  double area = 0;                     ///< trapezoid area under values over fractions (x spans [0, 1])
  std::size_t model_evaluations = 0;   ///< distinct token counts evaluated
};

namespace detail {

/// The removal machinery shared by the faithfulness metrics: the removable tokens of an input (one
/// feature each, for coalition_evaluator) and evaluation of "these tokens present" masks.
template <Model M>
class removal_evaluator {
 public:
  /// Prepares the removals of `tokens`; with `ranked`, validates `scores` and ranks the removable tokens by them.
  removal_evaluator(const M& model, token_span tokens, const target& t, std::span<const double> scores, bool ranked,
                    const faithfulness_options& options, std::string_view caller)
      : map_(removable_map(model, tokens, t, options.feature_map, caller)),
        eval_(model, tokens, t, options.removal, map_, caller),
        caller_(caller) {
    for (std::size_t i = 0; i < map_.size(); ++i)
      if (map_[i] >= 0) removable_.push_back(i);
    if (ranked) {
      require<shape_error>(scores.size() == tokens.size(),
                           "glassbox::{}: scores must have one entry per token ({}), got {}", caller, tokens.size(),
                           scores.size());
      require_finite_values(scores, caller, "scores");
      ranked_ = rank_by_score(scores, removable_, options.absolute);
    }
  }

  /// Number of removable tokens.
  std::size_t removable() const { return removable_.size(); }
  /// Removable positions from the highest score down.
  const std::vector<std::size_t>& ranked() const { return ranked_; }
  /// Whether token `position` is removable.
  bool is_removable(std::size_t position) const { return map_[position] >= 0; }
  /// Model evaluations so far.
  std::size_t evaluations() const { return eval_.evaluations(); }

  /// The target with exactly the removable tokens in each `present[i]` (token positions) present.
  std::vector<double> values(const std::vector<std::vector<std::size_t>>& present, const execution_options& exec) {
    return eval_.evaluate(
        present.size(),
        [&](std::size_t i, std::span<std::uint8_t> mask) {
          std::fill(mask.begin(), mask.end(), std::uint8_t{0});
          for (std::size_t p : present[i]) mask[static_cast<std::size_t>(map_[p])] = 1;
        },
        exec);
  }

  /// Every removable position except those of `removed`.
  std::vector<std::size_t> all_but(std::span<const std::size_t> removed) const {
    std::vector<std::uint8_t> gone(map_.size(), 0);
    for (std::size_t p : removed) gone[p] = 1;
    std::vector<std::size_t> out;
    for (std::size_t p : removable_)
      if (gone[p] == 0) out.push_back(p);
    return out;
  }

 private:
  // -1 for held tokens, consecutive feature ids for the removable ones.
  static std::vector<int> removable_map(const M& model, token_span tokens, const target& t,
                                        std::span<const int> feature_map, std::string_view caller) {
    const std::size_t n = tokens.size();
    require<shape_error>(n >= 1, "glassbox::{}: tokens must not be empty", caller);
    std::vector<int> map(n, 0);
    if (feature_map.empty()) {
      if (output_rows_of(model, n) == n) {
        const std::vector<std::size_t> rows = t.rows(n);
        for (std::size_t i = rows.front(); i < n; ++i) map[i] = -1;
      }
    } else {
      require<shape_error>(feature_map.size() == n,
                           "glassbox::{}: feature_map must have one entry per token ({}), got {}", caller, n,
                           feature_map.size());
      for (std::size_t i = 0; i < n; ++i) {
        require<shape_error>(feature_map[i] >= -1,
                             "glassbox::{}: feature_map entries must be -1 (never removed) or >= 0, got {} at token {}",
                             caller, feature_map[i], i);
        map[i] = feature_map[i] < 0 ? -1 : 0;
      }
    }
    int next = 0;
    for (auto& m : map)
      if (m >= 0) m = next++;
    require<shape_error>(next >= 1,
                         "glassbox::{}: tokens must include at least one removable token, got none (every token is "
                         "held fixed or at/after the target's row)",
                         caller);
    return map;
  }

  std::vector<int> map_;
  coalition_evaluator<M> eval_;
  std::string_view caller_;
  std::vector<std::size_t> removable_;
  std::vector<std::size_t> ranked_;
};

/// Validates a hard rationale against the removable tokens.
template <class R>
void require_removable_rationale(const R& eval, std::span<const std::size_t> rationale, std::size_t n,
                                 std::string_view caller) {
  require<shape_error>(!rationale.empty(), "glassbox::{}: rationale must not be empty", caller);
  std::vector<std::uint8_t> seen(n, 0);
  for (std::size_t p : rationale) {
    require<shape_error>(p < n, "glassbox::{}: rationale positions must be < {} (the tokens), got {}", caller, n, p);
    require<shape_error>(seen[p] == 0, "glassbox::{}: rationale positions must be distinct, got {} twice", caller, p);
    seen[p] = 1;
    require(eval.is_removable(p),
            "glassbox::{}: rationale positions must be removable tokens, got {} (held fixed by the feature map or at/"
            "after the target's row)",
            caller, p);
  }
}

/// The token counts of a curve with `steps` steps over n removable tokens: round(j n / steps), half up.
template <class = void>
inline std::vector<std::size_t> curve_counts(std::size_t n, std::size_t steps) {
  const std::size_t s = steps == 0 ? n : steps;
  std::vector<std::size_t> k(s + 1);
  for (std::size_t j = 0; j <= s; ++j) k[j] = (2 * j * n + s) / (2 * s);
  return k;
}

/// A deletion (present = all but the top k) or insertion (present = the top k) curve.
template <Model M>
curve_result removal_curve(const M& model, token_span tokens, const target& t, std::span<const double> scores,
                           const faithfulness_options& options, bool deletion, std::string_view caller) {
  removal_evaluator<M> eval(model, tokens, t, scores, true, options, caller);
  const std::size_t n = eval.removable();
  const std::vector<std::size_t> counts = curve_counts(n, options.steps);
  std::vector<std::size_t> distinct = counts;
  distinct.erase(std::unique(distinct.begin(), distinct.end()), distinct.end());  // counts ascend
  std::vector<std::vector<std::size_t>> present;
  for (std::size_t k : distinct) {
    const std::span<const std::size_t> top(eval.ranked().data(), k);
    present.push_back(deletion ? eval.all_but(top) : std::vector<std::size_t>(top.begin(), top.end()));
  }
  const std::vector<double> v = eval.values(present, options.execution);
  std::map<std::size_t, double> value_of;
  for (std::size_t i = 0; i < distinct.size(); ++i) value_of[distinct[i]] = v[i];
  curve_result r;
  const std::size_t s = counts.size() - 1;
  for (std::size_t j = 0; j <= s; ++j) {
    r.fractions.push_back(static_cast<double>(j) / static_cast<double>(s));
    r.tokens.push_back(counts[j]);
    r.values.push_back(value_of[counts[j]]);
  }
  for (std::size_t j = 0; j < s; ++j)
    r.area += (r.fractions[j + 1] - r.fractions[j]) * (r.values[j] + r.values[j + 1]) / 2;
  r.model_evaluations = eval.evaluations();
  return r;
}

}  // namespace detail

/// ERASER's comprehensiveness and sufficiency of a hard rationale (DeYoung et al. 2020):
/// comprehensiveness = f(x) - f(x \ r), sufficiency = f(x) - f(r), where f(x \ r) removes the rationale
/// tokens and f(r) removes every removable token outside it (tokens held fixed stay). ERASER's f is
/// the probability of the predicted class: pass target::probability(label) at the scored row.
/// Costs 3 evaluations.
///
/// Example: `auto q = glassbox::rationale_faithfulness(model, tokens, glassbox::target::probability(label), rationale);`
template <class M>
rationale_faithfulness_result rationale_faithfulness(const M& model, token_span tokens, const target& t,
                                                     std::span<const std::size_t> rationale,
                                                     const faithfulness_options& options = {}) {
  static_assert(check_model<M>());
  constexpr std::string_view caller = "rationale_faithfulness";
  detail::removal_evaluator<M> eval(model, tokens, t, {}, false, options, caller);
  detail::require_removable_rationale(eval, rationale, tokens.size(), caller);
  std::vector<std::vector<std::size_t>> present{eval.all_but({}), eval.all_but(rationale),
                                                std::vector<std::size_t>(rationale.begin(), rationale.end())};
  const std::vector<double> v = eval.values(present, options.execution);
  rationale_faithfulness_result r;
  r.full_value = v[0];
  r.without_rationale = v[1];
  r.rationale_only = v[2];
  r.comprehensiveness = v[0] - v[1];
  r.sufficiency = v[0] - v[2];
  r.model_evaluations = eval.evaluations();
  return r;
}

/// ERASER's AOPC comprehensiveness and sufficiency of soft scores: for each bin b, the top
/// k_b = ceil(n b) removable tokens by score (n removable tokens; ties broken by position) are removed
/// (comprehensiveness, f(x) - f(x \ top_k)) or kept alone (sufficiency, f(x) - f(top_k)); each AOPC is
/// the mean over the bins, as the released scorer averages its thresholded scores. Costs 1 + 2 bins
/// evaluations.
///
/// Example: `auto a = glassbox::eraser_aopc(model, tokens, glassbox::target::probability(label), ig.scores);`
template <class M>
aopc_result eraser_aopc(const M& model, token_span tokens, const target& t, std::span<const double> scores,
                        const faithfulness_options& options = {}) {
  static_assert(check_model<M>());
  constexpr std::string_view caller = "eraser_aopc";
  detail::require(!options.aopc_bins.empty(), "glassbox::eraser_aopc: aopc_bins must not be empty");
  for (double b : options.aopc_bins)
    detail::require(b > 0 && b <= 1, "glassbox::eraser_aopc: aopc_bins must be in (0, 1], got {}", b);
  detail::removal_evaluator<M> eval(model, tokens, t, scores, true, options, caller);
  const std::size_t n = eval.removable();
  aopc_result r;
  r.bins = options.aopc_bins;
  std::vector<std::vector<std::size_t>> present{eval.all_but({})};
  for (double b : options.aopc_bins) {
    const auto k = std::min(n, static_cast<std::size_t>(std::ceil(static_cast<double>(n) * b)));
    r.bin_tokens.push_back(k);
    const std::span<const std::size_t> top(eval.ranked().data(), k);
    present.push_back(eval.all_but(top));
    present.emplace_back(top.begin(), top.end());
  }
  const std::vector<double> v = eval.values(present, options.execution);
  r.full_value = v[0];
  double comprehensiveness = 0, sufficiency = 0;
  for (std::size_t b = 0; b < r.bins.size(); ++b) {
    r.comprehensiveness_points.push_back(v[0] - v[1 + 2 * b]);
    r.sufficiency_points.push_back(v[0] - v[2 + 2 * b]);
    comprehensiveness += r.comprehensiveness_points.back();
    sufficiency += r.sufficiency_points.back();
  }
  r.comprehensiveness = comprehensiveness / static_cast<double>(r.bins.size());
  r.sufficiency = sufficiency / static_cast<double>(r.bins.size());
  r.model_evaluations = eval.evaluations();
  return r;
}

/// The deletion curve (Samek et al. 2017; Petsiuk et al. 2018): the target after removing the top
/// round(j n / steps) removable tokens by score, j = 0 .. steps (n removable tokens; steps = 0: one token
/// per step), and the trapezoid area under it over fractions j / steps in [0, 1]. A faithful ranking
/// makes the curve fall fast: a small area. Costs one evaluation per distinct token count.
template <class M>
curve_result deletion_curve(const M& model, token_span tokens, const target& t, std::span<const double> scores,
                            const faithfulness_options& options = {}) {
  static_assert(check_model<M>());
  return detail::removal_curve(model, tokens, t, scores, options, true, "deletion_curve");
}

/// The insertion curve (Petsiuk et al. 2018): from the input with every removable token removed,
/// the target after inserting the top round(j n / steps) tokens by score back at their places,
/// j = 0 .. steps, and the trapezoid area over fractions j / steps in [0, 1]. A faithful ranking
/// makes it rise fast: a large area. Costs one evaluation per distinct token count.
template <class M>
curve_result insertion_curve(const M& model, token_span tokens, const target& t, std::span<const double> scores,
                             const faithfulness_options& options = {}) {
  static_assert(check_model<M>());
  return detail::removal_curve(model, tokens, t, scores, options, false, "insertion_curve");
}

}  // namespace glassbox

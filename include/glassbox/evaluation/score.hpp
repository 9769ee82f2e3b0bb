// glassbox: one call that scores an explanation of a model against a rationale with every metric
// that applies: ERASER comprehensiveness and sufficiency of the rationale and AOPC of the scores,
// deletion and insertion curves, token-level infidelity, and plausibility. docs/evaluation.md.
#pragma once

#include <cstddef>
#include <optional>
#include <span>

#include "glassbox/core/model.hpp"
#include "glassbox/core/result.hpp"
#include "glassbox/core/target.hpp"
#include "glassbox/core/types.hpp"
#include "glassbox/evaluation/faithfulness.hpp"
#include "glassbox/evaluation/plausibility.hpp"
#include "glassbox/evaluation/sensitivity.hpp"

namespace glassbox {

/// Options of score_explanation: the options of each metric, and which optional ones to run.
struct score_options {
  faithfulness_options faithfulness{};  ///< removal, ranking, AOPC bins, curve steps, feature map, execution
  plausibility_options plausibility{};  ///< k, absolute, deciding word, length
  infidelity_options infidelity{};      ///< token-level infidelity (baseline, samples, seed)
  bool curves = true;                   ///< compute the deletion and insertion curves
  bool run_infidelity = true;           ///< compute token-level infidelity
};

/// Every metric score_explanation computed.
struct explanation_scores {
  std::optional<rationale_faithfulness_result> rationale;  ///< ERASER on the rationale (when one is given)
  aopc_result aopc;                                        ///< ERASER AOPC of the scores
  std::optional<curve_result> deletion;                    ///< deletion curve (options.curves)
  std::optional<curve_result> insertion;                   ///< insertion curve (options.curves)
  std::optional<infidelity_result> infidelity;             ///< token-level infidelity (options.run_infidelity)
  std::optional<plausibility_result> plausibility;         ///< against the rationale (when one is given)
  std::size_t model_evaluations = 0;                       ///< over every metric
};

/// Scores token `scores` explaining target `t` of `model` on `tokens` against a known `rationale`
/// (token positions; empty = faithfulness metrics only): rationale_faithfulness, eraser_aopc,
/// deletion_curve, insertion_curve, infidelity and plausibility, each with its options from
/// `options`. For ERASER's numbers pass target::probability(label).
///
/// Example: `auto s = glassbox::score_explanation(model, tokens, glassbox::target::probability(label), ig.scores, rationale);`
template <class M>
explanation_scores score_explanation(const M& model, token_span tokens, const target& t, std::span<const double> scores,
                                     std::span<const std::size_t> rationale, const score_options& options = {}) {
  static_assert(check_model<M>());
  explanation_scores out;
  if (!rationale.empty()) {
    out.rationale = rationale_faithfulness(model, tokens, t, rationale, options.faithfulness);
    out.model_evaluations += out.rationale->model_evaluations;
  }
  out.aopc = eraser_aopc(model, tokens, t, scores, options.faithfulness);
  out.model_evaluations += out.aopc.model_evaluations;
  if (options.curves) {
    out.deletion = deletion_curve(model, tokens, t, scores, options.faithfulness);
    out.insertion = insertion_curve(model, tokens, t, scores, options.faithfulness);
    out.model_evaluations += out.deletion->model_evaluations + out.insertion->model_evaluations;
  }
  if (options.run_infidelity) {
    out.infidelity = infidelity(model, tokens, t, scores, options.infidelity);
    out.model_evaluations += out.infidelity->model_evaluations;
  }
  if (!rationale.empty()) out.plausibility = plausibility(scores, rationale, options.plausibility);
  return out;
}

/// score_explanation of an attribution result: its tokens, target and scores.
template <class M>
explanation_scores score_explanation(const M& model, const attribution_result& result,
                                     std::span<const std::size_t> rationale, const score_options& options = {}) {
  return score_explanation(model, result.token_ids, result.target, result.scores, rationale, options);
}

}  // namespace glassbox

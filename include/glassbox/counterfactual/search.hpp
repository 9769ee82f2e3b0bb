// glassbox: counterfactual explanations by token edits (Wachter et al. 2017, on tokens): the smallest
// set of edits (deletion = replacement by the baseline token, or substitution by a candidate) that
// meets a counterfactual_goal, by attribution-guided greedy search or beam search, with a
// minimality check; and minimal sufficient / necessary token sets (in the sense of ERASER's
// sufficiency and comprehensiveness, DeYoung et al. 2020). docs/counterfactual.md.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <numeric>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "glassbox/attribution/baseline.hpp"
#include "glassbox/core/error.hpp"
#include "glassbox/core/execution.hpp"
#include "glassbox/core/model.hpp"
#include "glassbox/core/result.hpp"
#include "glassbox/core/target.hpp"
#include "glassbox/core/types.hpp"
#include "glassbox/counterfactual/goal.hpp"

namespace glassbox {

/// How a counterfactual search looks for edits.
enum class counterfactual_search {
  greedy,  ///< positions in attribution order; at each, the best edit is kept if it lowers the margin
  beam,    ///< all single edits of the beam's states per step; the beam_width lowest margins survive
};

/// Which attribution orders the positions for a greedy search and the token-set searches.
enum class counterfactual_guidance {
  occlusion,         ///< margin(x) - margin(x with the token replaced by the baseline token); n passes
  input_x_gradient,  ///< sum_k e_ik d margin / d e_ik (DifferentiableModel); one forward + backward
};

/// The stable name of a search ("greedy", "beam").
constexpr std::string_view to_string(counterfactual_search s) {
  return s == counterfactual_search::greedy ? "greedy" : "beam";
}

/// The stable name of a guidance ("occlusion", "input_x_gradient").
constexpr std::string_view to_string(counterfactual_guidance g) {
  return g == counterfactual_guidance::occlusion ? "occlusion" : "input_x_gradient";
}

/// Options of a counterfactual search.
struct counterfactual_options {
  counterfactual_search search = counterfactual_search::beam;  ///< greedy or beam
  std::size_t max_edits = 3;                                   ///< most edits a counterfactual may have (>= 1)
  std::size_t beam_width = 4;                                  ///< beam: states kept per step (>= 1)
  bool deletion = true;                                        ///< an edit may replace a token by the baseline token
  bool substitution = true;                                    ///< an edit may replace a token by a candidate
  std::vector<token_id> candidates{};                          ///< substitution candidates; empty = every vocabulary id
  std::optional<glassbox::baseline> baseline{};  ///< the deletion token: pad or token; empty = the model's pad token
  std::vector<std::size_t> fixed_positions{};    ///< positions never edited (e.g. the prompt marker)
  counterfactual_guidance guidance = counterfactual_guidance::occlusion;  ///< greedy: the position order
  std::vector<double> attribution{};  ///< greedy: one score per token (higher = edited first); overrides guidance
  execution_options execution{};      ///< batch size, threads, progress, cancellation
};

/// Options of the sufficient and necessary token-set searches.
struct token_set_options {
  std::optional<glassbox::baseline> baseline{};  ///< what a removed token becomes: pad or token; empty = pad
  std::vector<std::size_t> fixed_positions{};    ///< positions always kept, never in a set (e.g. the marker)
  counterfactual_guidance guidance = counterfactual_guidance::occlusion;  ///< the order positions are tried in
  std::vector<double> attribution{};  ///< one score per token (higher = tried first); overrides guidance
  execution_options execution{};      ///< batch size, threads, progress, cancellation
};

namespace detail {

/// The deletion token of a search: a pad or token baseline (removal and embedding baselines change
/// the length or leave token space, so they are refused).
template <Model M>
token_id deletion_token(const M& model, const std::optional<baseline>& requested, std::string_view caller) {
  if (requested) {
    require(requested->kind() == baseline_kind::pad_token || requested->kind() == baseline_kind::token,
            "glassbox::{}: baseline must be pad or token (an edit replaces one token), got {}", caller,
            to_string(requested->kind()));
    return baseline_token(model, *requested, caller);
  }
  return baseline_token(model, baseline::pad(), caller);
}

/// One score per token ordering the positions: given scores, or computed by `guidance` on the margin.
template <Model M>
std::vector<double> guidance_scores(goal_evaluator<M>& eval, token_span tokens, const std::vector<bool>& editable,
                                    token_id deletion, counterfactual_guidance guidance, std::span<const double> given,
                                    std::string_view caller) {
  const std::size_t n = tokens.size();
  if (!given.empty()) {
    require<shape_error>(given.size() == n, "glassbox::{}: attribution must have one score per token ({}), got {}",
                         caller, n, given.size());
    return {given.begin(), given.end()};
  }
  std::vector<double> scores(n, 0.0);
  if (guidance == counterfactual_guidance::input_x_gradient) {
    if constexpr (DifferentiableModel<M>) {
      const tensor2 e = model_embeddings(eval.model(), tokens, caller);
      const auto g = eval.margin_gradients(std::span<const tensor2>(&e, 1));
      const std::size_t d = e.shape(1);
      for (std::size_t i = 0; i < n; ++i)
        for (std::size_t k = 0; k < d; ++k)
          scores[i] += static_cast<double>(e.data()[i * d + k]) * static_cast<double>(g[0].gradient.data()[i * d + k]);
      return scores;
    } else {
      fail("glassbox::{}: guidance input_x_gradient needs a DifferentiableModel; use occlusion or pass attribution",
           caller);
    }
  }
  std::vector<token_sequence> inputs;
  std::vector<std::size_t> where;
  for (std::size_t i = 0; i < n; ++i) {
    if (!editable[i] || tokens[i] == deletion) continue;
    token_sequence t(tokens.begin(), tokens.end());
    t[i] = deletion;
    inputs.push_back(std::move(t));
    where.push_back(i);
  }
  const auto r = eval.evaluate(inputs);
  for (std::size_t k = 0; k < where.size(); ++k) scores[where[k]] = eval.original().margin - r[k].margin;
  return scores;
}

/// Positions ordered by descending score, ties by position; only editable ones.
template <class = void>
inline std::vector<std::size_t> ranked_positions(std::span<const double> scores, const std::vector<bool>& editable) {
  std::vector<std::size_t> order;
  for (std::size_t i = 0; i < scores.size(); ++i)
    if (editable[i]) order.push_back(i);
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return scores[a] > scores[b]; });
  return order;
}

/// The replacements tried at one position: the deletion token first (when deletion is on), then the
/// candidates in order, without the original token and without repeats.
template <class = void>
inline std::vector<token_id> replacements_at(token_id original, bool deletion, token_id deletion_id, bool substitution,
                                             std::span<const token_id> candidates) {
  std::vector<token_id> out;
  if (deletion && deletion_id != original) out.push_back(deletion_id);
  if (substitution)
    for (token_id c : candidates)
      if (c != original && std::find(out.begin(), out.end(), c) == out.end()) out.push_back(c);
  return out;
}

/// The options every counterfactual and token-set search records.
template <class = void>
void record_search(std::vector<named_option>& out, const counterfactual_goal& goal, token_id deletion,
                   std::span<const std::size_t> fixed, const execution_options& exec) {
  record_goal(out, goal);
  out.push_back({"deletion_token", static_cast<std::int64_t>(deletion)});
  std::string f;
  for (std::size_t i = 0; i < fixed.size(); ++i) {
    if (i != 0) f += ',';
    f += std::to_string(fixed[i]);
  }
  out.push_back({"fixed_positions", f});
  out.push_back({"batch_size", static_cast<std::int64_t>(exec.batch_size)});
  out.push_back({"threads", static_cast<std::int64_t>(exec.threads)});
}

}  // namespace detail

/// A counterfactual explanation: the fewest token edits found that meet `goal` (a changed prediction,
/// or a target value past a threshold), by greedy or beam search (options.search), with at most
/// options.max_edits edits. An edit replaces the token at one position (not in fixed_positions) by
/// the deletion token (the baseline, default the model's pad token) or by a candidate (default every
/// vocabulary id).
///  - greedy: positions in descending attribution order (options.attribution, or options.guidance
///    computed on the margin); at each, every replacement is tried on the current input and the one
///    with the lowest margin is kept if it meets the goal or lowers the margin; stops at the goal.
///  - beam: step k expands every state of the beam (k - 1 edits) by every single edit at an unedited
///    position; the first step with a state that meets the goal returns the one with the lowest
///    margin; otherwise the beam_width states with the lowest margins survive (ties: generation order).
/// A found counterfactual is then minimised: while some edit can be dropped with the goal still met,
/// it is dropped; `minimal` then says that no single edit can be dropped. Deterministic; every model
/// pass is counted in model_evaluations.
///
/// Example: `auto cf = glassbox::counterfactual(model, tokens, glassbox::counterfactual_goal::label_flip(
///     {pos, neg}), {.max_edits = 2, .fixed_positions = {tokens.size() - 1}});`
template <class M>
counterfactual_result counterfactual(const M& model, token_span tokens, const counterfactual_goal& goal,
                                     const counterfactual_options& options = {}) {
  static_assert(check_model<M>());
  const bool greedy = options.search == counterfactual_search::greedy;
  const std::string_view caller = greedy ? "counterfactual_greedy" : "counterfactual_beam";
  const std::size_t n = tokens.size();
  detail::require<shape_error>(n >= 1, "glassbox::{}: tokens must not be empty", caller);
  detail::require(options.max_edits >= 1, "glassbox::{}: max_edits must be >= 1, got 0", caller);
  detail::require(options.beam_width >= 1, "glassbox::{}: beam_width must be >= 1, got 0", caller);
  detail::require(options.deletion || options.substitution,
                  "glassbox::{}: deletion and substitution must not both be off (no edit would be possible)", caller);
  detail::require_positions(options.fixed_positions, n, caller, "fixed_positions");
  detail::require_vocabulary_ids(options.candidates, model.vocab_size(), caller, "candidates");
  const bool occlusion_guided =
      greedy && options.attribution.empty() && options.guidance == counterfactual_guidance::occlusion;
  const token_id deletion =
      options.deletion || occlusion_guided ? detail::deletion_token(model, options.baseline, caller) : token_id{-1};
  std::vector<token_id> candidates = options.candidates;
  if (options.substitution && candidates.empty()) {
    candidates.resize(model.vocab_size());
    std::iota(candidates.begin(), candidates.end(), token_id{0});
  }
  const std::vector<bool> editable = detail::editable_positions(n, options.fixed_positions);
  std::vector<std::vector<token_id>> replacements(n);
  for (std::size_t i = 0; i < n; ++i)
    if (editable[i])
      replacements[i] =
          detail::replacements_at(tokens[i], options.deletion, deletion, options.substitution, candidates);

  detail::goal_evaluator<M> eval(model, tokens, goal, options.execution, caller);
  counterfactual_result r;
  r.method = std::string(caller);
  r.original.assign(tokens.begin(), tokens.end());
  r.edited = r.original;
  r.original_prediction = eval.original_prediction();
  r.new_prediction = eval.original().prediction;
  r.original_value = r.new_value = eval.original().value;

  std::vector<token_edit> edits;
  std::optional<detail::goal_reading> reached;
  auto better = [](const detail::goal_reading& a, const detail::goal_reading& b) {
    if (a.met != b.met) return a.met;
    return a.margin < b.margin;
  };
  if (greedy) {
    const std::vector<double> scores =
        detail::guidance_scores(eval, tokens, editable, deletion, options.guidance, options.attribution, caller);
    token_sequence current = r.original;
    detail::goal_reading now = eval.original();
    for (std::size_t pos : detail::ranked_positions(scores, editable)) {
      if (edits.size() >= options.max_edits) break;
      const auto& reps = replacements[pos];
      if (reps.empty()) continue;
      std::vector<token_sequence> inputs(reps.size(), current);
      for (std::size_t k = 0; k < reps.size(); ++k) inputs[k][pos] = reps[k];
      const auto readings = eval.evaluate(inputs);
      std::size_t best = 0;
      for (std::size_t k = 1; k < readings.size(); ++k)
        if (better(readings[k], readings[best])) best = k;
      if (!readings[best].met && !(readings[best].margin < now.margin)) continue;
      edits.push_back({pos, tokens[pos], reps[best]});
      current[pos] = reps[best];
      now = readings[best];
      if (now.met) {
        reached = now;
        break;
      }
    }
    std::sort(edits.begin(), edits.end(),
              [](const token_edit& a, const token_edit& b) { return a.position < b.position; });
  } else {
    struct state {
      std::vector<token_edit> edits;  // ascending by position
      detail::goal_reading reading;
    };
    std::vector<state> beam{state{{}, eval.original()}};
    std::set<std::vector<std::pair<std::size_t, token_id>>> seen;
    for (std::size_t step = 1; step <= options.max_edits && !reached; ++step) {
      std::vector<state> next;
      std::vector<token_sequence> inputs;
      for (const state& s : beam) {
        for (std::size_t pos = 0; pos < n; ++pos) {
          if (std::any_of(s.edits.begin(), s.edits.end(), [&](const token_edit& e) { return e.position == pos; }))
            continue;
          for (token_id rep : replacements[pos]) {
            std::vector<token_edit> e = s.edits;
            e.insert(std::upper_bound(e.begin(), e.end(), pos,
                                      [](std::size_t p, const token_edit& x) { return p < x.position; }),
                     token_edit{pos, tokens[pos], rep});
            std::vector<std::pair<std::size_t, token_id>> key;
            for (const auto& x : e) key.emplace_back(x.position, x.to);
            if (!seen.insert(std::move(key)).second) continue;
            inputs.push_back(detail::apply_edits(tokens, e));
            next.push_back(state{std::move(e), {}});
          }
        }
      }
      if (next.empty()) break;
      const auto readings = eval.evaluate(inputs);
      std::optional<std::size_t> winner;
      for (std::size_t k = 0; k < next.size(); ++k) {
        next[k].reading = readings[k];
        if (readings[k].met && (!winner || readings[k].margin < readings[*winner].margin)) winner = k;
      }
      if (winner) {
        edits = next[*winner].edits;
        reached = next[*winner].reading;
        break;
      }
      std::stable_sort(next.begin(), next.end(),
                       [](const state& a, const state& b) { return a.reading.margin < b.reading.margin; });
      if (next.size() > options.beam_width) next.resize(options.beam_width);
      beam = std::move(next);
    }
  }

  if (reached) {
    auto [kept, last] = detail::minimize_set(
        std::move(edits),
        [&](const std::vector<std::vector<token_edit>>& sets) {
          std::vector<token_sequence> inputs;
          for (const auto& s : sets) inputs.push_back(detail::apply_edits(tokens, s));
          return eval.evaluate(inputs);
        },
        [](const detail::goal_reading& x) { return x.met; });
    if (last) reached = last;
    r.edits = std::move(kept);
    r.edited = detail::apply_edits(tokens, r.edits);
    r.found = true;
    r.minimal = true;
    r.new_prediction = reached->prediction;
    r.new_value = reached->value;
  }
  r.model_evaluations = eval.evaluations();
  r.options = {{"search", std::string(to_string(options.search))},
               {"max_edits", static_cast<std::int64_t>(options.max_edits)},
               {"beam_width", static_cast<std::int64_t>(options.beam_width)},
               {"deletion", options.deletion},
               {"substitution", options.substitution},
               {"candidates", static_cast<std::int64_t>(options.substitution ? candidates.size() : 0)},
               {"guidance", options.attribution.empty() ? std::string(to_string(options.guidance)) : "given"}};
  detail::record_search(r.options, goal, deletion, options.fixed_positions, options.execution);
  return r;
}

namespace detail {

/// The shared part of sufficient_tokens and necessary_tokens: validation, evaluator, position order.
template <Model M>
struct token_set_search {
  /// Validates the arguments, reads the original input and ranks the editable positions.
  token_set_search(const M& model, token_span tokens_, const counterfactual_goal& goal, const token_set_options& o,
                   std::string_view caller)
      : tokens(tokens_.begin(), tokens_.end()),
        deletion((require<shape_error>(!tokens_.empty(), "glassbox::{}: tokens must not be empty", caller),
                  require_positions(o.fixed_positions, tokens_.size(), caller, "fixed_positions"),
                  deletion_token(model, o.baseline, caller))),
        editable(editable_positions(tokens_.size(), o.fixed_positions)),
        eval(model, tokens_, goal, o.execution, caller) {
    order = ranked_positions(guidance_scores(eval, tokens, editable, deletion, o.guidance, o.attribution, caller),
                             editable);
  }

  /// The input with the editable positions outside `set` removed (keep = true), or with `set` removed.
  token_sequence with(std::span<const std::size_t> set, bool keep) const {
    token_sequence t = tokens;
    if (keep) {
      for (std::size_t i = 0; i < t.size(); ++i)
        if (editable[i] && std::find(set.begin(), set.end(), i) == set.end()) t[i] = deletion;
    } else {
      for (std::size_t i : set) t[i] = deletion;
    }
    return t;
  }
  /// The goal's reading of with(set, keep): one model pass.
  goal_reading read(std::span<const std::size_t> set, bool keep) {
    const token_sequence t = with(set, keep);
    return eval.evaluate(std::span<const token_sequence>(&t, 1))[0];
  }

  token_sequence tokens;
  token_id deletion;
  std::vector<bool> editable;
  goal_evaluator<M> eval;
  std::vector<std::size_t> order;
};

/// Minimises a token set and fills a token_set_result.
template <Model M>
token_set_result finish_token_set(token_set_search<M>& s, std::vector<std::size_t> set, goal_reading reading, bool keep,
                                  bool found, const counterfactual_goal& goal, const token_set_options& o,
                                  std::string_view caller) {
  token_set_result r;
  r.method = std::string(caller);
  r.token_ids = s.tokens;
  r.original_prediction = s.eval.original_prediction();
  r.original_value = s.eval.original().value;
  if (found) {
    auto [kept, last] = minimize_set(
        std::move(set),
        [&](const std::vector<std::vector<std::size_t>>& sets) {
          std::vector<token_sequence> inputs;
          for (const auto& x : sets) inputs.push_back(s.with(x, keep));
          return s.eval.evaluate(inputs);
        },
        [keep](const goal_reading& x) { return keep ? !x.met : x.met; });
    if (last) reading = *last;
    set = std::move(kept);
    std::sort(set.begin(), set.end());
    r.positions = std::move(set);
    r.minimal = true;
  }
  r.found = found;
  r.prediction = reading.prediction;
  r.value = reading.value;
  r.model_evaluations = s.eval.evaluations();
  r.options = {{"guidance", o.attribution.empty() ? std::string(to_string(o.guidance)) : "given"}};
  record_search(r.options, goal, s.deletion, o.fixed_positions, o.execution);
  return r;
}

}  // namespace detail

/// A minimal sufficient token set: positions such that keeping only them (every other editable
/// token replaced by the baseline token) keeps the original prediction (the goal is not met). Grown
/// in descending attribution order until the prediction holds, then minimised: no single position
/// can be dropped with the prediction still holding. Deterministic; passes counted.
///
/// Example: `auto s = glassbox::sufficient_tokens(model, tokens, goal, {.fixed_positions = {marker}});`
template <class M>
token_set_result sufficient_tokens(const M& model, token_span tokens, const counterfactual_goal& goal,
                                   const token_set_options& options = {}) {
  static_assert(check_model<M>());
  detail::token_set_search<M> s(model, tokens, goal, options, "sufficient_tokens");
  std::vector<std::size_t> kept;
  detail::goal_reading r = s.read(kept, true);
  while (r.met && kept.size() < s.order.size()) {
    kept.push_back(s.order[kept.size()]);
    r = s.read(kept, true);
  }
  return detail::finish_token_set(s, std::move(kept), r, true, !r.met, goal, options, "sufficient_tokens");
}

/// A minimal necessary token set: positions such that removing them (replacing them by the baseline
/// token) meets the goal (flips the prediction). Grown in descending attribution order until the
/// goal is met, then minimised: no single position can be dropped with the goal still met. `found`
/// is false when removing every editable token does not meet the goal. Deterministic; passes counted.
///
/// Example: `auto s = glassbox::necessary_tokens(model, tokens, goal, {.fixed_positions = {marker}});`
template <class M>
token_set_result necessary_tokens(const M& model, token_span tokens, const counterfactual_goal& goal,
                                  const token_set_options& options = {}) {
  static_assert(check_model<M>());
  detail::token_set_search<M> s(model, tokens, goal, options, "necessary_tokens");
  std::vector<std::size_t> removed;
  detail::goal_reading r = s.eval.original();
  while (!r.met && removed.size() < s.order.size()) {
    removed.push_back(s.order[removed.size()]);
    r = s.read(removed, false);
  }
  return detail::finish_token_set(s, std::move(removed), r, false, r.met, goal, options, "necessary_tokens");
}

}  // namespace glassbox

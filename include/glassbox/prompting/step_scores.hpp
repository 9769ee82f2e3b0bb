// glassbox: step scores of generated text, as inseq's step functions (Sarti et al. 2023): for each
// generated token, its probability, log-probability and surprisal, the entropy of the next-token
// distribution, and the contrastive probability difference with a foil; and a summary of the
// answer's uncertainty. docs/prompting.md has the formulas.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "glassbox/attribution/generation.hpp"
#include "glassbox/core/error.hpp"
#include "glassbox/core/execution.hpp"
#include "glassbox/core/model.hpp"
#include "glassbox/core/types.hpp"

namespace glassbox {

/// Options of step scores.
struct step_scores_options {
  /// Contrastive step scores: empty = none; one foil = the same for every step; else one per
  /// generated token. Step g reports p(token_g) - p(foil_g).
  std::vector<token_id> foils{};
  /// Teacher forcing: one forward pass over prompt + continuation when the model returns one output
  /// row per token (a causal LM; only the rows scored, through logits_at when it has it); false, or a
  /// model with fewer rows: one pass per step on the growing prefix. Greedy generation always makes
  /// one pass per step (it needs each token before the next).
  bool one_pass = true;
};

/// The scores of one generated token c_g, from the next-token distribution p after its prefix.
struct step_score {
  token_id token = -1;                                         ///< c_g
  double probability = 0;                                      ///< p(c_g)
  double log_probability = 0;                                  ///< log p(c_g)
  double surprisal = 0;                                        ///< -log p(c_g), nats
  double entropy = 0;                                          ///< -sum_v p(v) log p(v), nats
  token_id foil = -1;                                          ///< the foil of a contrastive run; -1 otherwise
  double contrast = std::numeric_limits<double>::quiet_NaN();  ///< p(c_g) - p(foil); NaN without a foil
  token_id top_token = -1;                                     ///< argmax_v p(v) (the lowest id on ties)
  double top_probability = 0;                                  ///< p(top_token)
};

/// How sure the model was of a whole answer.
struct uncertainty_summary {
  double mean_entropy = 0;               ///< mean over steps of the entropy, nats
  double max_entropy = 0;                ///< largest entropy of a step
  double mean_surprisal = 0;             ///< mean over steps of -log p(c_g), nats
  double sequence_log_probability = 0;   ///< sum over steps of log p(c_g)
  double perplexity = 0;                 ///< exp(mean_surprisal)
  std::size_t least_confident_step = 0;  ///< the step with the lowest p(c_g) (the first on ties)
};

/// Step scores of a continuation (teacher-forced or generated) of a prompt.
struct step_scores_result {
  token_sequence token_ids;           ///< prompt followed by the continuation
  std::size_t prompt_length = 0;      ///< how many of token_ids are the prompt
  std::vector<step_score> steps;      ///< one per continuation token
  uncertainty_summary summary;        ///< over the steps
  bool generated = false;             ///< whether the continuation was generated greedily
  bool one_pass = false;              ///< whether one forward pass served every step
  std::size_t model_evaluations = 0;  ///< forward passes made
};

namespace detail {

/// The step score of `token` from one logits row z[0 .. v), in double: log p = z - logsumexp(z).
template <class = void>
inline step_score score_logits_row(const float* z, std::size_t v, token_id token, token_id foil) {
  double top = -INFINITY;
  std::size_t best = 0;
  for (std::size_t j = 0; j < v; ++j)
    if (static_cast<double>(z[j]) > top) {
      top = z[j];
      best = j;
    }
  double sum = 0;
  for (std::size_t j = 0; j < v; ++j) sum += std::exp(static_cast<double>(z[j]) - top);
  const double lse = top + std::log(sum);
  double entropy = 0;
  for (std::size_t j = 0; j < v; ++j) {
    const double log_p = static_cast<double>(z[j]) - lse;
    entropy -= std::exp(log_p) * log_p;
  }
  step_score s;
  s.token = token;
  s.log_probability = static_cast<double>(z[token]) - lse;
  s.probability = std::exp(s.log_probability);
  s.surprisal = -s.log_probability;
  s.entropy = entropy;
  s.top_token = static_cast<token_id>(best);
  s.top_probability = std::exp(top - lse);
  if (foil >= 0) {
    s.foil = foil;
    s.contrast = s.probability - std::exp(static_cast<double>(z[foil]) - lse);
  }
  return s;
}

/// The id of the largest logit (the lowest id on ties), as generate_greedy chooses.
template <class = void>
inline token_id argmax_logits(const std::vector<float>& z) {
  return static_cast<token_id>(std::max_element(z.begin(), z.end()) - z.begin());
}

/// The uncertainty summary of non-empty steps.
template <class = void>
inline uncertainty_summary summarize_steps(std::span<const step_score> steps) {
  uncertainty_summary u;
  for (std::size_t g = 0; g < steps.size(); ++g) {
    u.mean_entropy += steps[g].entropy;
    u.max_entropy = g == 0 ? steps[g].entropy : std::max(u.max_entropy, steps[g].entropy);
    u.mean_surprisal += steps[g].surprisal;
    u.sequence_log_probability += steps[g].log_probability;
    if (steps[g].log_probability < steps[u.least_confident_step].log_probability) u.least_confident_step = g;
  }
  const auto n = static_cast<double>(steps.size());
  u.mean_entropy /= n;
  u.mean_surprisal /= n;
  u.perplexity = std::exp(u.mean_surprisal);
  return u;
}

/// The foil of step g: none (-1), the one foil, or foils[g]; checks the count and the ids.
template <class = void>
std::vector<token_id> step_foils(std::span<const token_id> foils, std::size_t steps, std::size_t vocab) {
  require<shape_error>(foils.size() <= 1 || foils.size() == steps,
                       "glassbox::step_scores: foils must be empty, one foil, or one per generated token ({}), got {}",
                       steps, foils.size());
  for (token_id f : foils) require_vocab(f, vocab, "step_scores", "foil");
  if (foils.empty()) return std::vector<token_id>(steps, -1);
  if (foils.size() == 1) return std::vector<token_id>(steps, foils[0]);
  return {foils.begin(), foils.end()};
}

}  // namespace detail

/// Step scores of `continuation` after `prompt`, teacher-forced: step g scores c_g under the
/// next-token distribution after p_0 .. p_{P-1} c_0 .. c_{g-1}. With options.one_pass and a model
/// with one output row per token, one forward pass over the whole sequence gives every step's row
/// (rows P - 1 .. P + G - 2, only those through logits_at); otherwise one pass per step. The two
/// paths agree to float rounding.
///
/// Example: `auto r = glassbox::step_scores(model, prompt, answer, {.foils = {other_id}});`
template <class M>
step_scores_result step_scores(const M& model, token_span prompt, token_span continuation,
                               const step_scores_options& options = {}) {
  static_assert(check_model<M>());
  constexpr std::string_view caller = "step_scores";
  detail::require<shape_error>(!prompt.empty(), "glassbox::step_scores: prompt must not be empty");
  detail::require<shape_error>(!continuation.empty(), "glassbox::step_scores: continuation must not be empty");
  const std::size_t vocab = model.vocab_size();
  for (token_id id : continuation) detail::require_vocab(id, vocab, caller, "continuation token");
  const std::vector<token_id> foils = detail::step_foils(options.foils, continuation.size(), vocab);

  step_scores_result r;
  r.token_ids.assign(prompt.begin(), prompt.end());
  r.token_ids.insert(r.token_ids.end(), continuation.begin(), continuation.end());
  r.prompt_length = prompt.size();
  const std::size_t p = prompt.size(), g_count = continuation.size(), total = r.token_ids.size();
  r.one_pass = options.one_pass && detail::output_rows_of(model, total) == total;
  if (r.one_pass) {
    tensor2 rows;
    if constexpr (concepts::has_logits_at<M>) {
      std::vector<std::size_t> wanted(g_count);
      for (std::size_t g = 0; g < g_count; ++g) wanted[g] = p - 1 + g;
      rows = model.logits_at(token_span(r.token_ids), wanted);
      detail::require<model_error>(rows.shape(0) == g_count,
                                   "glassbox::step_scores: logits_at returned {} rows, expected {}", rows.shape(0),
                                   g_count);
    } else {
      const tensor2 all = model.logits(token_span(r.token_ids));
      detail::require<model_error>(all.shape(0) == total,
                                   "glassbox::step_scores: the model returned {} rows for {} tokens", all.shape(0),
                                   total);
      rows = tensor2({g_count, all.shape(1)});
      std::copy_n(all.data() + (p - 1) * all.shape(1), g_count * all.shape(1), rows.data());
    }
    const std::size_t v = rows.shape(1);
    detail::check_finite(rows.data(), rows.size(), std::max<std::size_t>(1, v), caller, 0);
    detail::require<model_error>(
        v == vocab, "glassbox::step_scores: the model returned rows of {} logits, vocab_size is {}", v, vocab);
    for (std::size_t g = 0; g < g_count; ++g)
      r.steps.push_back(detail::score_logits_row(rows.data() + g * v, v, continuation[g], foils[g]));
    r.model_evaluations = 1;
  } else {
    for (std::size_t g = 0; g < g_count; ++g) {
      const std::vector<float> z = detail::last_logits(model, token_span(r.token_ids.data(), p + g), caller, g);
      detail::require<model_error>(z.size() == vocab,
                                   "glassbox::step_scores: the model returned rows of {} logits, vocab_size is {}",
                                   z.size(), vocab);
      r.steps.push_back(detail::score_logits_row(z.data(), z.size(), continuation[g], foils[g]));
    }
    r.model_evaluations = g_count;
  }
  r.summary = detail::summarize_steps(r.steps);
  return r;
}

/// Step scores of a greedy generation: `new_tokens` tokens are generated from `prompt` as
/// generate_greedy does (argmax, the lowest id on ties, stopping after `stop`), each scored from the
/// same pass that chose it, so that probability == top_probability at every step. Foils: none, one,
/// or one per requested token. Costs one forward pass per generated token.
template <class M>
step_scores_result step_scores(const M& model, token_span prompt, std::size_t new_tokens,
                               const step_scores_options& options = {}, std::optional<token_id> stop = std::nullopt) {
  static_assert(check_model<M>());
  constexpr std::string_view caller = "step_scores";
  detail::require<shape_error>(!prompt.empty(), "glassbox::step_scores: prompt must not be empty");
  detail::require(new_tokens >= 1, "glassbox::step_scores: new_tokens must be >= 1, got {}", new_tokens);
  const std::size_t vocab = model.vocab_size();
  const std::vector<token_id> foils = detail::step_foils(options.foils, new_tokens, vocab);

  step_scores_result r;
  r.token_ids.assign(prompt.begin(), prompt.end());
  r.prompt_length = prompt.size();
  r.generated = true;
  for (std::size_t g = 0; g < new_tokens; ++g) {
    const std::vector<float> z = detail::last_logits(model, token_span(r.token_ids), caller, g);
    detail::require<model_error>(z.size() == vocab,
                                 "glassbox::step_scores: the model returned rows of {} logits, vocab_size is {}",
                                 z.size(), vocab);
    const token_id best = detail::argmax_logits(z);
    r.steps.push_back(detail::score_logits_row(z.data(), z.size(), best, foils[g]));
    r.token_ids.push_back(best);
    ++r.model_evaluations;
    if (stop && best == *stop) break;
  }
  r.summary = detail::summarize_steps(r.steps);
  return r;
}

}  // namespace glassbox

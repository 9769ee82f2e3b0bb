// glassbox: attribution of generated text, as inseq: each generated token of a continuation is
// attributed to the prompt and to the tokens generated before it, with any attribution method.
//
// For a prompt p_0 .. p_{P-1} and a continuation c_0 .. c_{G-1}, step g explains the prediction of
// c_g from its prefix s = p_0 .. p_{P-1} c_0 .. c_{g-1} (teacher forcing): the method runs on s with
// the target f(c_g) at the last position (f = log-probability by default, or logit / probability),
// or, contrastively, f(c_g) - f(foil_g). Row g of the [G, P + G] matrix holds the scores of s; the
// sources at or after c_g are 0.
#pragma once

#include <algorithm>
#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "glassbox/core/error.hpp"
#include "glassbox/core/execution.hpp"
#include "glassbox/core/model.hpp"
#include "glassbox/core/result.hpp"
#include "glassbox/core/target.hpp"
#include "glassbox/core/types.hpp"

namespace glassbox {

/// Options of generation attribution.
struct generation_options {
  /// The score of the generated token at each step: log_probability (default), probability or logit.
  target_kind kind = target_kind::log_probability;
  /// Contrastive attribution: one foil per generated token; step g explains f(c_g) - f(foil_g). Empty = off.
  std::vector<token_id> foils{};
};

namespace detail {

/// The logits row of the last output position of `tokens`, checked.
template <Model M>
std::vector<float> last_logits(const M& model, token_span tokens, std::string_view caller, std::size_t evaluation) {
  tensor2 row;
  if constexpr (concepts::has_logits_at<M>) {
    const std::size_t rows = model.output_rows(tokens.size());
    require<model_error>(rows >= 1, "glassbox::{}: the model reports no output rows for {} tokens", caller,
                         tokens.size());
    const std::size_t last = rows - 1;
    row = model.logits_at(tokens, std::span<const std::size_t>(&last, 1));
    require<model_error>(row.shape(0) == 1 && row.shape(1) >= 1,
                         "glassbox::{}: logits_at() returned [{}, {}] for 1 requested row, expected [1, V] with V >= 1",
                         caller, row.shape(0), row.shape(1));
  } else {
    const tensor2 all = model.logits(tokens);
    check_logits_shape(model, all, tokens.size(), caller, "logits()");
    row = tensor2({1, all.shape(1)});
    std::copy_n(all.data() + (all.shape(0) - 1) * all.shape(1), all.shape(1), row.data());
  }
  check_finite(row.data(), row.size(), std::max<std::size_t>(1, row.shape(1)), caller, evaluation);
  return {row.begin(), row.end()};
}

template <class = void>
inline void require_vocab(token_id id, std::size_t vocab, std::string_view caller, std::string_view argument) {
  require<shape_error>(id >= 0 && static_cast<std::size_t>(id) < vocab, "glassbox::{}: {} must be in [0, {}), got {}",
                       caller, argument, vocab, id);
}

}  // namespace detail

/// Greedy decoding: appends argmax_v logits[last, v] (the lowest id on ties) `new_tokens` times,
/// stopping after `stop` when it is generated. Returns the generated tokens only. Cost: one forward
/// pass per generated token (only the last row's logits when the model has logits_at).
template <class M>
token_sequence generate_greedy(const M& model, token_span prompt, std::size_t new_tokens,
                               std::optional<token_id> stop = std::nullopt) {
  static_assert(check_model<M>());
  detail::require<shape_error>(!prompt.empty(), "glassbox::generate_greedy: prompt must not be empty");
  token_sequence sequence(prompt.begin(), prompt.end());
  token_sequence generated;
  for (std::size_t step = 0; step < new_tokens; ++step) {
    const std::vector<float> z = detail::last_logits(model, sequence, "generate_greedy", step);
    detail::require<model_error>(!z.empty(), "glassbox::generate_greedy: the model returned an empty logits row");
    const auto best = static_cast<token_id>(std::max_element(z.begin(), z.end()) - z.begin());
    sequence.push_back(best);
    generated.push_back(best);
    if (stop && best == *stop) break;
  }
  return generated;
}

/// Attributes each token of `continuation` to `prompt` and the earlier continuation tokens, as
/// inseq: `method(prefix, target)` is called once per generated token with the teacher-forced
/// prefix and the target of generation_options (log-probability of the token at the last position
/// by default, or a contrast with a foil), and its per-token scores fill one row of the
/// [generated, prompt + generated] matrix. Any attribution method works, e.g.
///
///   auto m = [&](glassbox::token_span s, const glassbox::target& t) { return glassbox::integrated_gradients(model, s,
///   t); }; auto r = glassbox::attribute_generation(model, prompt, continuation, m);
///
/// Cost: the method's cost once per generated token, on prefixes of growing length.
template <class M, class Method>
sequence_attribution_result attribute_generation(const M& model, token_span prompt, token_span continuation,
                                                 Method&& method, const generation_options& options = {}) {
  static_assert(check_model<M>());
  static_assert(std::is_invocable_r_v<attribution_result, Method&, token_span, const target&>,
                "glassbox::attribute_generation: method must be callable as attribution_result(token_span, const "
                "target&), e.g. [&](glassbox::token_span s, const glassbox::target& t) { return "
                "glassbox::integrated_gradients(model, s, t); }");
  constexpr std::string_view caller = "attribute_generation";
  detail::require<shape_error>(!prompt.empty(), "glassbox::attribute_generation: prompt must not be empty");
  detail::require<shape_error>(!continuation.empty(), "glassbox::attribute_generation: continuation must not be empty");
  detail::require(options.kind == target_kind::logit || options.kind == target_kind::probability ||
                      options.kind == target_kind::log_probability,
                  "glassbox::attribute_generation: kind must be logit, probability or log-probability, got {}",
                  to_string(options.kind));
  detail::require<shape_error>(options.foils.empty() || options.foils.size() == continuation.size(),
                               "glassbox::attribute_generation: foils must be empty or one per generated token ({}), "
                               "got {}",
                               continuation.size(), options.foils.size());
  const std::size_t vocab = model.vocab_size();
  for (token_id id : continuation) detail::require_vocab(id, vocab, caller, "continuation token");
  for (token_id id : options.foils) detail::require_vocab(id, vocab, caller, "foil");

  const std::size_t p = prompt.size(), g_count = continuation.size(), sources = p + g_count;
  sequence_attribution_result out;
  out.token_ids.assign(prompt.begin(), prompt.end());
  out.token_ids.insert(out.token_ids.end(), continuation.begin(), continuation.end());
  out.prompt_length = p;
  out.scores = xt::zeros<float>({g_count, sources});
  out.target_values.resize(g_count);
  std::vector<double> deltas;
  for (std::size_t g = 0; g < g_count; ++g) {
    const token_span prefix(out.token_ids.data(), p + g);
    const token_id token = continuation[g];
    target t = target::log_probability(token);
    if (!options.foils.empty()) {
      t = target::contrast(token, options.foils[g], options.kind);
    } else if (options.kind == target_kind::logit) {
      t = target::logit(token);
    } else if (options.kind == target_kind::probability) {
      t = target::probability(token);
    }
    const attribution_result r = method(prefix, t);
    detail::require<shape_error>(r.scores.size() == prefix.size(),
                                 "glassbox::attribute_generation: the method returned {} scores for a prefix of {} "
                                 "tokens at step {}",
                                 r.scores.size(), prefix.size(), g);
    for (std::size_t s = 0; s < prefix.size(); ++s) out.scores(g, s) = static_cast<float>(r.scores[s]);
    out.target_values[g] = r.target_value;
    if (r.convergence_delta) deltas.push_back(*r.convergence_delta);
    out.model_evaluations += r.model_evaluations;
    if (g == 0) {
      out.method = r.method;
      out.options = r.options;
    }
  }
  if (deltas.size() == g_count) out.convergence_deltas = std::move(deltas);
  out.options.push_back({"kind", std::string(to_string(options.kind))});
  out.options.push_back({"contrastive", !options.foils.empty()});
  return out;
}

/// Generates `new_tokens` tokens greedily from `prompt` (generate_greedy, stopping after `stop`),
/// then attributes them as attribute_generation does. model_evaluations includes the generation passes.
template <class M, class Method>
sequence_attribution_result attribute_generation(const M& model, token_span prompt, std::size_t new_tokens,
                                                 Method&& method, const generation_options& options = {},
                                                 std::optional<token_id> stop = std::nullopt) {
  static_assert(check_model<M>());
  detail::require(new_tokens >= 1, "glassbox::attribute_generation: new_tokens must be >= 1, got {}", new_tokens);
  const token_sequence continuation = generate_greedy(model, prompt, new_tokens, stop);
  sequence_attribution_result r =
      attribute_generation(model, prompt, token_span(continuation), std::forward<Method>(method), options);
  r.model_evaluations += continuation.size();
  r.options.push_back({"generated_greedily", true});
  r.options.push_back({"new_tokens", static_cast<std::int64_t>(new_tokens)});
  return r;
}

}  // namespace glassbox

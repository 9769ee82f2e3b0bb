// glassbox: adversarial examples in embedding space: FGSM (Goodfellow et al. 2015) and PGD (Madry et
// al. 2018) on the input token embeddings within an L2 or L-inf ball, and a discrete attack in the
// spirit of SemAttack (Wang et al. 2022): PGD steps in embedding space, then each perturbed embedding
// projected to its nearest vocabulary token, iterated. Every attack drives the margin of a
// counterfactual_goal down (goal.hpp). docs/counterfactual.md.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "glassbox/core/error.hpp"
#include "glassbox/core/execution.hpp"
#include "glassbox/core/model.hpp"
#include "glassbox/core/random.hpp"
#include "glassbox/core/result.hpp"
#include "glassbox/core/types.hpp"
#include "glassbox/counterfactual/goal.hpp"

namespace glassbox {

/// The norm of a perturbation ball.
enum class perturbation_norm {
  l2,    ///< ||delta||_2 <= epsilon over the whole [T, d] perturbation (Frobenius)
  linf,  ///< |delta_ik| <= epsilon for every entry
};

/// The stable name of a norm ("l2", "linf").
constexpr std::string_view to_string(perturbation_norm n) { return n == perturbation_norm::l2 ? "l2" : "linf"; }

/// Options of FGSM.
struct fgsm_options {
  double epsilon = 0.1;                              ///< the ball's radius (> 0)
  perturbation_norm norm = perturbation_norm::linf;  ///< linf: epsilon sign(g); l2: epsilon g / ||g||
  std::vector<std::size_t> fixed_positions{};        ///< positions whose embeddings are not perturbed
  execution_options execution{};                     ///< batch size, threads, progress, cancellation
};

/// Options of PGD.
struct pgd_options {
  double epsilon = 0.1;                              ///< the ball's radius (> 0)
  double step_size = 0;                              ///< alpha (> 0); 0 = 2.5 epsilon / iterations (Madry et al.)
  std::size_t iterations = 10;                       ///< gradient steps (>= 1)
  perturbation_norm norm = perturbation_norm::linf;  ///< the ball and the step's normalisation
  bool random_start = true;                          ///< start from a uniform point of the ball (under seed)
  std::uint64_t seed = 0;                            ///< the random start's seed
  std::vector<std::size_t> fixed_positions{};        ///< positions whose embeddings are not perturbed
  execution_options execution{};                     ///< batch size, threads, progress, cancellation
};

/// Options of the projected token attack (PGD in embedding space, then nearest vocabulary tokens).
struct projected_token_attack_options {
  double epsilon = 1.0;                            ///< the ball's radius (> 0)
  double step_size = 0;                            ///< alpha (> 0); 0 = 2.5 epsilon / steps_per_round
  std::size_t steps_per_round = 5;                 ///< PGD steps between projections (>= 1)
  std::size_t rounds = 10;                         ///< projections tried (>= 1); stops at the first success
  perturbation_norm norm = perturbation_norm::l2;  ///< the ball and the step's normalisation
  bool random_start = false;                       ///< start from a uniform point of the ball (under seed)
  std::uint64_t seed = 0;                          ///< the random start's seed
  std::vector<token_id> candidates{};              ///< tokens a position may become; empty = every vocabulary id
  std::vector<std::size_t> fixed_positions{};      ///< positions never perturbed nor changed
  bool minimize = true;                            ///< after success, revert every changed token that is not needed
  execution_options execution{};                   ///< batch size, threads, progress, cancellation
};

/// An adversarial example: the perturbation, whether it met the goal, and what it cost.
struct adversarial_result {
  std::string method;                 ///< "fgsm", "pgd" or "projected_token_attack"
  token_sequence token_ids;           ///< the input
  tensor2 perturbation;               ///< delta [T, d] added to the input embeddings (the final continuous one)
  token_sequence adversarial_tokens;  ///< projected_token_attack: the edited tokens; else empty
  std::vector<token_edit> edits;      ///< projected_token_attack: the changed tokens, ascending; else empty
  bool success = false;               ///< whether the perturbed input (or the edited tokens) meets the goal
  token_id original_prediction = -1;  ///< label_flip: the original argmax; threshold goals: -1
  token_id new_prediction = -1;       ///< label_flip: the argmax on the adversarial input; threshold goals: -1
  double original_value = std::numeric_limits<double>::quiet_NaN();  ///< margin (label_flip) or target value
  double new_value = std::numeric_limits<double>::quiet_NaN();       ///< the same on the adversarial input
  double perturbation_l2 = 0;                                        ///< ||delta||_2
  double perturbation_linf = 0;                                      ///< max |delta_ik|
  std::size_t steps = 0;                                             ///< gradient steps made
  std::size_t model_evaluations = 0;                                 ///< forward and forward + backward passes
  std::vector<named_option> options;                                 ///< the options it ran with
};

namespace detail {

/// Validates an attack's common arguments.
template <Model M>
void require_attack(const M& model, token_span tokens, double epsilon, std::span<const std::size_t> fixed,
                    std::string_view caller) {
  require<shape_error>(!tokens.empty(), "glassbox::{}: tokens must not be empty", caller);
  require(std::isfinite(epsilon) && epsilon > 0, "glassbox::{}: epsilon must be > 0, got {}", caller, epsilon);
  require_positions(fixed, tokens.size(), caller, "fixed_positions");
  (void)model;
}

/// A step direction from a gradient: -sign(g) (linf) or -g / ||g|| (l2), zero on fixed rows.
template <class = void>
tensor2 descent_direction(const tensor2& g, perturbation_norm norm, const std::vector<bool>& editable) {
  tensor2 dir = xt::zeros<float>(g.shape());
  const std::size_t d = g.shape(1);
  double norm2 = 0;
  for (std::size_t i = 0; i < g.shape(0); ++i)
    if (editable[i])
      for (std::size_t k = 0; k < d; ++k) norm2 += static_cast<double>(g(i, k)) * g(i, k);
  const double length = std::sqrt(norm2);
  for (std::size_t i = 0; i < g.shape(0); ++i) {
    if (!editable[i]) continue;
    for (std::size_t k = 0; k < d; ++k) {
      const float x = g(i, k);
      if (norm == perturbation_norm::linf)
        dir(i, k) = x > 0 ? -1.0f : (x < 0 ? 1.0f : 0.0f);
      else
        dir(i, k) = length > 0 ? static_cast<float>(-x / length) : 0.0f;
    }
  }
  return dir;
}

/// Projects delta onto the ball of radius epsilon (clip for linf, rescale for l2).
template <class = void>
void project_to_ball(tensor2& delta, double epsilon, perturbation_norm norm) {
  if (norm == perturbation_norm::linf) {
    const auto e = static_cast<float>(epsilon);
    for (auto& x : delta) x = std::clamp(x, -e, e);
    return;
  }
  double norm2 = 0;
  for (float x : delta) norm2 += static_cast<double>(x) * x;
  const double length = std::sqrt(norm2);
  if (length > epsilon) {
    const auto scale = static_cast<float>(epsilon / length);
    for (auto& x : delta) x *= scale;
  }
}

/// A uniform point of the ball on the editable rows: uniform entries (linf), or a uniform direction
/// at radius epsilon u^(1/D) (l2, D the number of perturbed entries).
template <class = void>
tensor2 random_start_point(std::size_t t, std::size_t d, double epsilon, perturbation_norm norm,
                           const std::vector<bool>& editable, std::uint64_t seed) {
  rng g(seed);
  tensor2 delta = xt::zeros<float>({t, d});
  std::size_t dims = 0;
  for (std::size_t i = 0; i < t; ++i) {
    if (!editable[i]) continue;
    for (std::size_t k = 0; k < d; ++k)
      delta(i, k) = static_cast<float>(norm == perturbation_norm::linf ? g.uniform(-epsilon, epsilon) : g.normal());
    dims += d;
  }
  if (norm == perturbation_norm::l2 && dims > 0) {
    double norm2 = 0;
    for (float x : delta) norm2 += static_cast<double>(x) * x;
    const double radius = epsilon * std::pow(g.uniform(), 1.0 / static_cast<double>(dims));
    const double length = std::sqrt(norm2);
    if (length > 0)
      for (auto& x : delta) x = static_cast<float>(x * radius / length);
  }
  return delta;
}

/// Fills the perturbation, its norms and the final reading of an attack's result.
template <class = void>
void finish_attack(adversarial_result& r, tensor2 delta, const goal_reading& reading) {
  double norm2 = 0, linf = 0;
  for (float x : delta) {
    norm2 += static_cast<double>(x) * x;
    linf = std::max(linf, static_cast<double>(std::abs(x)));
  }
  r.perturbation = std::move(delta);
  r.perturbation_l2 = std::sqrt(norm2);
  r.perturbation_linf = linf;
  r.success = reading.met;
  r.new_prediction = reading.prediction;
  r.new_value = reading.value;
}

/// PGD iterations from `delta` on embeddings `e`: each takes one forward + backward.
template <DifferentiableModel M>
void pgd_steps(goal_evaluator<M>& eval, const tensor2& e, tensor2& delta, std::size_t steps, double alpha,
               double epsilon, perturbation_norm norm, const std::vector<bool>& editable) {
  for (std::size_t s = 0; s < steps; ++s) {
    const tensor2 x = e + delta;
    const auto g = eval.margin_gradients(std::span<const tensor2>(&x, 1));
    const tensor2 dir = descent_direction(g[0].gradient, norm, editable);
    delta += static_cast<float>(alpha) * dir;
    project_to_ball(delta, epsilon, norm);
  }
}

/// The embedding table of `ids`, [ids.size(), d]: the model's embedding_matrix() rows when it has
/// that member, else embed() of each id, once (a lookup, not a model pass: not counted).
template <EmbeddingModel M>
tensor2 vocabulary_embeddings(const M& model, std::span<const token_id> ids) {
  if constexpr (requires {
                  { model.embedding_matrix() } -> std::convertible_to<const tensor2&>;
                }) {
    const tensor2& table = model.embedding_matrix();
    const std::size_t d = table.shape(1);
    tensor2 out({ids.size(), d});
    for (std::size_t j = 0; j < ids.size(); ++j)
      std::copy_n(table.data() + static_cast<std::size_t>(ids[j]) * d, d, out.data() + j * d);
    return out;
  } else {
    // One id per call: a model may bound the length of a sequence (GPT-2: n_positions).
    tensor2 out;
    for (std::size_t j = 0; j < ids.size(); ++j) {
      const tensor2 row = model_embeddings(model, ids.subspan(j, 1), "projected_token_attack");
      if (j == 0) out = tensor2({ids.size(), row.shape(1)});
      std::copy_n(row.data(), row.shape(1), out.data() + j * row.shape(1));
    }
    return out;
  }
}

}  // namespace detail

/// FGSM (Goodfellow et al. 2015) on the input embeddings: one step of size epsilon against the
/// gradient of the goal's margin, delta = -epsilon sign(g) (linf) or -epsilon g / ||g||_2 (l2; g over
/// every unfixed row), then one forward pass to read the goal. Two model passes.
///
/// Example: `auto a = glassbox::fgsm(model, tokens, glassbox::counterfactual_goal::label_flip(), {.epsilon = 0.05});`
template <class M>
adversarial_result fgsm(const M& model, token_span tokens, const counterfactual_goal& goal,
                        const fgsm_options& options = {}) {
  static_assert(check_differentiable_model<M>());
  detail::require_attack(model, tokens, options.epsilon, options.fixed_positions, "fgsm");
  detail::goal_evaluator<M> eval(model, tokens, goal, options.execution, "fgsm");
  const std::vector<bool> editable = detail::editable_positions(tokens.size(), options.fixed_positions);
  const tensor2 e = detail::model_embeddings(model, tokens, "fgsm");
  const auto g = eval.margin_gradients(std::span<const tensor2>(&e, 1));
  tensor2 delta =
      static_cast<float>(options.epsilon) * detail::descent_direction(g[0].gradient, options.norm, editable);
  const tensor2 x = e + delta;
  const auto reading = eval.evaluate_embeddings(std::span<const tensor2>(&x, 1))[0];
  adversarial_result r;
  r.method = "fgsm";
  r.token_ids.assign(tokens.begin(), tokens.end());
  r.original_prediction = eval.original_prediction();
  r.original_value = eval.original().value;
  r.steps = 1;
  detail::finish_attack(r, std::move(delta), reading);
  r.model_evaluations = eval.evaluations();
  r.options = {{"epsilon", options.epsilon}, {"norm", std::string(to_string(options.norm))}};
  detail::record_goal(r.options, goal);
  return r;
}

/// PGD (Madry et al. 2018) on the input embeddings: from delta_0 (0, or a uniform point of the ball
/// under `seed`), `iterations` steps delta <- Proj_ball(delta - alpha dir(g)) with dir = sign (linf)
/// or g / ||g||_2 (l2), g the gradient of the goal's margin at e + delta; then one forward pass reads
/// the goal. iterations + 2 model passes (the original's included).
///
/// Example: `auto a = glassbox::pgd(model, tokens, goal, {.epsilon = 0.5, .norm = glassbox::perturbation_norm::l2});`
template <class M>
adversarial_result pgd(const M& model, token_span tokens, const counterfactual_goal& goal,
                       const pgd_options& options = {}) {
  static_assert(check_differentiable_model<M>());
  detail::require_attack(model, tokens, options.epsilon, options.fixed_positions, "pgd");
  detail::require(options.iterations >= 1, "glassbox::pgd: iterations must be >= 1, got 0");
  detail::require(std::isfinite(options.step_size) && options.step_size >= 0,
                  "glassbox::pgd: step_size must be > 0 (or 0 for the default), got {}", options.step_size);
  detail::goal_evaluator<M> eval(model, tokens, goal, options.execution, "pgd");
  const std::vector<bool> editable = detail::editable_positions(tokens.size(), options.fixed_positions);
  const tensor2 e = detail::model_embeddings(model, tokens, "pgd");
  const double alpha =
      options.step_size > 0 ? options.step_size : 2.5 * options.epsilon / static_cast<double>(options.iterations);
  tensor2 delta = options.random_start ? detail::random_start_point(e.shape(0), e.shape(1), options.epsilon,
                                                                    options.norm, editable, options.seed)
                                       : tensor2(xt::zeros<float>(e.shape()));
  detail::pgd_steps(eval, e, delta, options.iterations, alpha, options.epsilon, options.norm, editable);
  const tensor2 x = e + delta;
  const auto reading = eval.evaluate_embeddings(std::span<const tensor2>(&x, 1))[0];
  adversarial_result r;
  r.method = "pgd";
  r.token_ids.assign(tokens.begin(), tokens.end());
  r.original_prediction = eval.original_prediction();
  r.original_value = eval.original().value;
  r.steps = options.iterations;
  detail::finish_attack(r, std::move(delta), reading);
  r.model_evaluations = eval.evaluations();
  r.options = {{"epsilon", options.epsilon},
               {"step_size", alpha},
               {"iterations", static_cast<std::int64_t>(options.iterations)},
               {"norm", std::string(to_string(options.norm))},
               {"random_start", options.random_start},
               {"seed", static_cast<std::int64_t>(options.seed)}};
  detail::record_goal(r.options, goal);
  return r;
}

/// A discrete attack in the spirit of SemAttack (Wang et al. 2022): rounds of `steps_per_round` PGD
/// steps on the input embeddings (as pgd, within the ball around the original embeddings), each
/// followed by the projection of every unfixed row e_i + delta_i to its nearest candidate token
/// (Euclidean, ties to the earlier candidate; the embedding table comes from the model's
/// embedding_matrix() when it has one, else from embed() of each candidate, once) and one forward
/// pass on the projected tokens; stops at the first round whose tokens meet the goal. With
/// `minimize`, changed tokens that are not needed are then reverted (as the counterfactual
/// minimality pass). Reports the changed tokens as edits.
///
/// Example: `auto a = glassbox::projected_token_attack(model, tokens, goal, {.epsilon = 2.0});`
template <class M>
adversarial_result projected_token_attack(const M& model, token_span tokens, const counterfactual_goal& goal,
                                          const projected_token_attack_options& options = {}) {
  static_assert(check_differentiable_model<M>());
  constexpr std::string_view caller = "projected_token_attack";
  detail::require_attack(model, tokens, options.epsilon, options.fixed_positions, caller);
  detail::require(options.steps_per_round >= 1, "glassbox::{}: steps_per_round must be >= 1, got 0", caller);
  detail::require(options.rounds >= 1, "glassbox::{}: rounds must be >= 1, got 0", caller);
  detail::require(std::isfinite(options.step_size) && options.step_size >= 0,
                  "glassbox::{}: step_size must be > 0 (or 0 for the default), got {}", caller, options.step_size);
  detail::require_vocabulary_ids(options.candidates, model.vocab_size(), caller, "candidates");
  detail::goal_evaluator<M> eval(model, tokens, goal, options.execution, caller);
  const std::size_t n = tokens.size();
  const std::vector<bool> editable = detail::editable_positions(n, options.fixed_positions);
  std::vector<token_id> candidates = options.candidates;
  if (candidates.empty()) {
    candidates.resize(model.vocab_size());
    for (std::size_t j = 0; j < candidates.size(); ++j) candidates[j] = static_cast<token_id>(j);
  }
  const tensor2 table = detail::vocabulary_embeddings(model, candidates);
  const tensor2 e = detail::model_embeddings(model, tokens, caller);
  const std::size_t d = e.shape(1);
  const double alpha =
      options.step_size > 0 ? options.step_size : 2.5 * options.epsilon / static_cast<double>(options.steps_per_round);
  tensor2 delta = options.random_start
                      ? detail::random_start_point(n, d, options.epsilon, options.norm, editable, options.seed)
                      : tensor2(xt::zeros<float>(e.shape()));

  adversarial_result r;
  r.method = std::string(caller);
  r.token_ids.assign(tokens.begin(), tokens.end());
  r.original_prediction = eval.original_prediction();
  r.original_value = eval.original().value;
  token_sequence projected(tokens.begin(), tokens.end());
  detail::goal_reading reading = eval.original();
  for (std::size_t round = 0; round < options.rounds; ++round) {
    detail::pgd_steps(eval, e, delta, options.steps_per_round, alpha, options.epsilon, options.norm, editable);
    r.steps += options.steps_per_round;
    for (std::size_t i = 0; i < n; ++i) {
      if (!editable[i]) continue;
      double best = std::numeric_limits<double>::infinity();
      token_id choice = tokens[i];
      for (std::size_t j = 0; j < candidates.size(); ++j) {
        double dist = 0;
        for (std::size_t k = 0; k < d; ++k) {
          const double diff = static_cast<double>(e(i, k)) + delta(i, k) - table(j, k);
          dist += diff * diff;
        }
        if (dist < best) {
          best = dist;
          choice = candidates[j];
        }
      }
      projected[i] = choice;
    }
    reading = eval.evaluate(std::span<const token_sequence>(&projected, 1))[0];
    if (reading.met) break;
  }
  std::vector<token_edit> edits;
  for (std::size_t i = 0; i < n; ++i)
    if (projected[i] != tokens[i]) edits.push_back({i, tokens[i], projected[i]});
  if (reading.met && options.minimize) {
    auto [kept, last] = detail::minimize_set(
        std::move(edits),
        [&](const std::vector<std::vector<token_edit>>& sets) {
          std::vector<token_sequence> inputs;
          for (const auto& s : sets) inputs.push_back(detail::apply_edits(tokens, s));
          return eval.evaluate(inputs);
        },
        [](const detail::goal_reading& x) { return x.met; });
    if (last) reading = *last;
    edits = std::move(kept);
  }
  r.edits = std::move(edits);
  r.adversarial_tokens.assign(tokens.begin(), tokens.end());
  for (const auto& x : r.edits) r.adversarial_tokens[x.position] = x.to;
  detail::finish_attack(r, std::move(delta), reading);
  r.model_evaluations = eval.evaluations();
  r.options = {{"epsilon", options.epsilon},
               {"step_size", alpha},
               {"steps_per_round", static_cast<std::int64_t>(options.steps_per_round)},
               {"rounds", static_cast<std::int64_t>(options.rounds)},
               {"norm", std::string(to_string(options.norm))},
               {"random_start", options.random_start},
               {"seed", static_cast<std::int64_t>(options.seed)},
               {"candidates", static_cast<std::int64_t>(candidates.size())},
               {"minimize", options.minimize}};
  detail::record_goal(r.options, goal);
  return r;
}

}  // namespace glassbox

// glassbox: influence functions by iterative inverse-curvature products, for models too large to
// form H: conjugate gradient and LiSSA (Agarwal, Bullins & Hazan 2017, as Koh & Liang 2017 use it).
//
// Both solve (H + lambda I) x_q = grad f_q with curvature products over the training set, then
// score s(q, n) = x_q^T grad L_n.
//
// Conjugate gradient (Hestenes & Stiefel 1952): stops when ||r|| <= tolerance ||grad f_q||, or
// after max_iterations. It needs H + lambda I positive definite: a direction with
// p^T (H + lambda I) p <= 0 (negative curvature) throws divergence_error; use the Gauss-Newton
// curvature or more damping.
//
// LiSSA: the recursion h_0 = v, h_{k+1} = v + (1 - lambda / scale) h_k - H h_k / scale, and
// x = h / scale. Its fixed point is scale (H + lambda I)^{-1} v, so the recursion
// "h <- v + (1 - damping) h - H h / scale" has damping = lambda / scale here, and exact, cg and
// lissa all estimate the same (H + lambda I)^{-1}. It converges when every eigenvalue mu of H has
// 0 < mu + lambda < 2 scale. Each step is Richardson iteration, h_{k+1} = h_k - r_k with
// r_k = (H + lambda I) h_k / scale - v the residual of h_k / scale, which the recursion tracks for
// free. Divergence (a non-finite residual, ||r_k|| > divergence_threshold ||v||, or a final
// residual no better than x = 0) throws divergence_error: it is never returned as a score.
// With sample_size > 0 each step uses the curvature of a fresh random sample of training examples
// (seeded), and `repeats` independent recursions are averaged.
#pragma once

#include <Eigen/Core>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "glassbox/core/error.hpp"
#include "glassbox/core/execution.hpp"
#include "glassbox/core/model.hpp"
#include "glassbox/core/progress.hpp"
#include "glassbox/core/random.hpp"
#include "glassbox/core/result.hpp"
#include "glassbox/core/types.hpp"
#include "glassbox/influence/curvature.hpp"
#include "glassbox/influence/exact.hpp"
#include "glassbox/influence/measurement.hpp"
#include "glassbox/influence/result.hpp"

namespace glassbox {

/// Options of conjugate-gradient influence.
struct cg_influence_options {
  influence_options common{};                         ///< damping (default 0.01), top_k, execution
  hessian_kind hessian = hessian_kind::gauss_newton;  ///< the curvature H (`--hessian exact|gauss-newton`)
  std::vector<parameter_range> parameters{};          ///< parameters H covers (chosen layers); empty = all
  double tolerance = 1e-6;                            ///< stop at ||r|| <= tolerance ||grad f_q||
  std::size_t max_iterations = 1000;                  ///< curvature products per query at most
};

/// Options of LiSSA influence.
struct lissa_influence_options {
  influence_options common{};                         ///< damping lambda (default 0.01), top_k, execution
  hessian_kind hessian = hessian_kind::gauss_newton;  ///< the curvature H (`--hessian exact|gauss-newton`)
  std::vector<parameter_range> parameters{};          ///< parameters H covers (chosen layers); empty = all
  std::size_t depth = 5000;           ///< recursion steps per repeat (pytorch-influence-functions' default)
  std::size_t repeats = 1;            ///< independent recursions averaged (one when sample_size = 0: they agree)
  double scale = 25;                  ///< must exceed (largest eigenvalue of H + lambda) / 2
  std::size_t sample_size = 0;        ///< training examples per step's curvature product; 0 = all (deterministic)
  double tolerance = 1e-6;            ///< stop early at ||r|| <= tolerance ||v|| (sample_size = 0 only)
  double divergence_threshold = 1e3;  ///< ||r_k|| > this x ||v|| means the recursion diverged
  std::uint64_t seed = 0;             ///< the samples' seed
};

namespace detail {

/// Conjugate gradient on (H + lambda I) x = g; throws divergence_error on negative curvature. (g is a
/// VectorXd, named so that it depends on M: compiled where this is instantiated, see dependent_t.)
template <TrainableModel M>
Eigen::VectorXd conjugate_gradient(const curvature_operator<M>& op, const vector<dependent_t<M, double>>& g,
                                   const cg_influence_options& o, std::size_t threads, std::string_view caller,
                                   std::string_view what, std::size_t index, influence_solve_report& report) {
  using vec_d = vector<dependent_t<M, double>>;
  vec_d x = vec_d::Zero(g.size());
  const double g_norm = g.norm();
  report = {0, 0.0, true};
  if (g_norm == 0) return x;
  vec_d r = g, p = g;
  double rr = r.squaredNorm();
  bool converged = false;
  std::size_t it = 0;
  while (it < o.max_iterations) {
    const vec_d ap = op.apply(p, threads);
    ++it;
    const double pap = p.dot(ap);
    if (!(pap > 0))
      fail<divergence_error>(
          "glassbox::{}: negative curvature p^T (H + lambda I) p = {} at iteration {} for {} {}: H + lambda I must "
          "be positive definite for conjugate gradient; use hessian gauss-newton or a larger damping (got {})",
          caller, pap, it, what, index, op.damping());
    const double alpha = rr / pap;
    x += alpha * p;
    r -= alpha * ap;
    const double rr_new = r.squaredNorm();
    if (std::sqrt(rr_new) <= o.tolerance * g_norm) {
      converged = true;
      break;
    }
    p = r + (rr_new / rr) * p;
    rr = rr_new;
  }
  const double residual = (op.apply(x, threads) - g).norm() / g_norm;  // the true residual, not the recurrence's
  require<divergence_error>(std::isfinite(residual),
                            "glassbox::{}: conjugate gradient produced a residual of {} for {} {}", caller, residual,
                            what, index);
  report = {it, residual, converged};
  return x;
}

/// LiSSA estimate of (H + lambda I)^{-1} v; throws divergence_error when the recursion diverges. (v is a
/// VectorXd, named so that it depends on M: compiled where this is instantiated, see dependent_t.)
template <TrainableModel M>
Eigen::VectorXd lissa(const M& model, std::span<const training_example> training, const parameter_subset& subset,
                      const curvature_operator<M>& full, const vector<dependent_t<M, double>>& v,
                      const lissa_influence_options& o, std::size_t threads, std::string_view caller,
                      std::string_view what, std::size_t index, influence_solve_report& report) {
  using vec_d = vector<dependent_t<M, double>>;
  const double s = o.scale, lambda = full.damping(), v_norm = v.norm();
  report = {0, 0.0, true};
  if (v_norm == 0) return vec_d::Zero(v.size());
  const bool sampled = o.sample_size > 0;
  const std::size_t runs = sampled ? o.repeats : 1;
  vec_d estimate = vec_d::Zero(v.size());
  std::vector<training_example> sample;
  std::size_t steps = 0;
  for (std::size_t run = 0; run < runs; ++run) {
    glassbox::rng draw = glassbox::rng(o.seed).fork(static_cast<std::uint64_t>(index) * runs + run);
    vec_d h = v;
    for (std::size_t k = 0; k < o.depth; ++k) {
      vec_d ah;
      if (sampled) {
        sample.clear();
        for (std::size_t i = 0; i < o.sample_size; ++i) sample.push_back(training[draw.below(training.size())]);
        const curvature_operator<M> op(model, sample, full.kind(), subset, lambda, full.execution(), caller);
        ah = op.apply(h, threads);
        full.add_evaluations(op.evaluations());
      } else {
        ah = full.apply(h, threads);
      }
      ++steps;
      const vec_d r = ah / s - v;
      const double rel = r.norm() / v_norm;
      if (!std::isfinite(rel) || rel > o.divergence_threshold)
        fail<divergence_error>(
            "glassbox::{}: the LiSSA recursion diverged for {} {} at step {} (relative residual {}); scale must "
            "exceed (the largest eigenvalue of H + damping) / 2 and H + damping I must be positive definite: "
            "increase scale (got {}) or damping (got {}), or use hessian gauss-newton",
            caller, what, index, k + 1, rel, s, lambda);
      if (!sampled && rel <= o.tolerance) break;
      h -= r;
    }
    estimate += h / s;
  }
  estimate /= static_cast<double>(runs);
  const double residual = (full.apply(estimate, threads) - v).norm() / v_norm;
  if (!std::isfinite(residual) || residual >= 1.0)
    fail<divergence_error>(
        "glassbox::{}: the LiSSA estimate for {} {} has relative residual {} after {} steps, no better than 0: the "
        "recursion diverged or H + damping I is not positive definite; increase scale (got {}) or damping (got {}), "
        "or use hessian gauss-newton",
        caller, what, index, residual, steps, s, lambda);
  report = {sampled ? o.depth : steps, residual, residual <= o.tolerance};
  return estimate;
}

template <class = void>
inline void check_cg_options(const cg_influence_options& o, std::string_view caller) {
  require(o.max_iterations >= 1, "glassbox::{}: max_iterations must be >= 1, got 0", caller);
  require(std::isfinite(o.tolerance) && o.tolerance >= 0, "glassbox::{}: tolerance must be finite and >= 0, got {}",
          caller, o.tolerance);
}

template <class = void>
inline void check_lissa_options(const lissa_influence_options& o, std::string_view caller) {
  require(o.depth >= 1, "glassbox::{}: depth must be >= 1, got 0", caller);
  require(o.repeats >= 1, "glassbox::{}: repeats must be >= 1, got 0", caller);
  require(std::isfinite(o.scale) && o.scale > 0, "glassbox::{}: scale must be finite and > 0, got {}", caller, o.scale);
  require(std::isfinite(o.tolerance) && o.tolerance >= 0, "glassbox::{}: tolerance must be finite and >= 0, got {}",
          caller, o.tolerance);
  require(o.divergence_threshold > 1, "glassbox::{}: divergence_threshold must be > 1, got {}", caller,
          o.divergence_threshold);
}

template <class = void>
inline std::vector<named_option> cg_options_record(const cg_influence_options& o, double damping,
                                                   std::size_t parameters) {
  return {{"damping", damping},
          {"hessian", std::string(to_string(o.hessian))},
          {"parameters", static_cast<std::int64_t>(parameters)},
          {"tolerance", o.tolerance},
          {"max_iterations", static_cast<std::int64_t>(o.max_iterations)},
          {"top_k", static_cast<std::int64_t>(o.common.top_k)}};
}

template <class = void>
inline std::vector<named_option> lissa_options_record(const lissa_influence_options& o, double damping,
                                                      std::size_t parameters) {
  return {{"damping", damping},
          {"hessian", std::string(to_string(o.hessian))},
          {"parameters", static_cast<std::int64_t>(parameters)},
          {"depth", static_cast<std::int64_t>(o.depth)},
          {"repeats", static_cast<std::int64_t>(o.repeats)},
          {"scale", o.scale},
          {"sample_size", static_cast<std::int64_t>(o.sample_size)},
          {"tolerance", o.tolerance},
          {"divergence_threshold", o.divergence_threshold},
          {"seed", static_cast<std::int64_t>(o.seed)},
          {"top_k", static_cast<std::int64_t>(o.common.top_k)}};
}

/// Pairwise influence through a per-query solver solve(g, index, report) -> (H + lambda I)^{-1} g.
template <TrainableModel M, class Solve>
influence_result solved_influence(const M& model, std::span<const measurement> queries,
                                  std::span<const training_example> training, const parameter_subset& subset,
                                  const execution_options& exec, std::string_view caller, Solve&& solve) {
  // Eigen types that depend on M: compiled where this is instantiated (see dependent_t).
  using mat_d = Eigen::Matrix<dependent_t<M, double>, Eigen::Dynamic, Eigen::Dynamic>;
  influence_result result;
  result.training_size = training.size();
  std::vector<Eigen::VectorXd> gradients;
  query_gradients(model, queries, subset, exec, std::string(caller) + ": queries", result.query_values, gradients);
  result.model_evaluations += queries.size();
  mat_d preconditioned(static_cast<Eigen::Index>(subset.size()), static_cast<Eigen::Index>(queries.size()));
  result.solves.resize(queries.size());
  const std::string stage = std::string(caller) + ": solves";
  progress_reporter reporter(exec.on_progress, exec.stop, queries.size(), stage);
  reporter.check();
  for (std::size_t q = 0; q < queries.size(); ++q) {
    preconditioned.col(static_cast<Eigen::Index>(q)) = solve(gradients[q], q, result.solves[q]);
    reporter.advance();
  }
  score_training_examples(model, training, subset, preconditioned, exec, caller, result);
  return result;
}

/// Self-influence through a per-example solver.
template <TrainableModel M, class Solve>
self_influence_result solved_self_influence(const M& model, std::span<const training_example> training,
                                            const parameter_subset& subset, const execution_options& exec,
                                            std::string_view caller, Solve&& solve) {
  // One gradient at a time (never N of them in memory); the solves parallelise inside.
  self_influence_result result;
  result.scores.assign(training.size(), 0.0);
  result.solves.resize(training.size());
  const std::string stage = std::string(caller) + ": solves";
  progress_reporter reporter(exec.on_progress, exec.stop, training.size(), stage);
  reporter.check();
  for (std::size_t n = 0; n < training.size(); ++n) {
    const auto g = checked_loss_gradient(model, training[n], caller, "training example", n);
    const Eigen::VectorXd gn = subset.gather(std::span<const float>(g.gradient.data(), g.gradient.size()));
    result.scores[n] = gn.dot(solve(gn, n, result.solves[n]));
    reporter.advance();
  }
  result.model_evaluations += training.size();
  return result;
}

}  // namespace detail

/// Influence by conjugate gradient: s(q, n) = x_q^T grad L_n with (H + lambda I) x_q = grad f_q
/// solved by CG on curvature products over the training set. Throws divergence_error on negative curvature.
template <TrainableModel M>
influence_result cg_influence(const M& model, std::span<const measurement> queries,
                              std::span<const training_example> training, const cg_influence_options& options = {}) {
  static_assert(check_trainable_model<M>() && detail::check_curvature_model<M>());
  constexpr std::string_view caller = "cg_influence";
  detail::check_influence_inputs(queries.size(), training.size(), caller);
  detail::check_cg_options(options, caller);
  const double lambda = detail::resolve_damping(options.common, default_flat_damping, caller);
  const detail::parameter_subset subset(options.parameters, model.parameter_count(), caller);
  const auto& exec = options.common.execution;
  const detail::curvature_operator<M> op(model, training, options.hessian, subset, lambda, exec, caller);
  const std::size_t threads = resolve_threads(exec.threads);
  auto result =
      detail::solved_influence(model, queries, training, subset, exec, caller,
                               [&](const Eigen::VectorXd& g, std::size_t q, influence_solve_report& report) {
                                 return detail::conjugate_gradient(op, g, options, threads, caller, "query", q, report);
                               });
  result.method = "cg";
  result.damping = lambda;
  result.model_evaluations += op.evaluations();
  result.options = detail::cg_options_record(options, lambda, subset.size());
  rank_influence(result, options.common.top_k);
  return result;
}

/// Self-influence by conjugate gradient: one solve per training example.
template <TrainableModel M>
self_influence_result cg_self_influence(const M& model, std::span<const training_example> training,
                                        const cg_influence_options& options = {}) {
  static_assert(check_trainable_model<M>() && detail::check_curvature_model<M>());
  constexpr std::string_view caller = "cg_self_influence";
  detail::check_influence_inputs(1, training.size(), caller);
  detail::check_cg_options(options, caller);
  const double lambda = detail::resolve_damping(options.common, default_flat_damping, caller);
  const detail::parameter_subset subset(options.parameters, model.parameter_count(), caller);
  const auto& exec = options.common.execution;
  const detail::curvature_operator<M> op(model, training, options.hessian, subset, lambda, exec, caller);
  const std::size_t threads = resolve_threads(exec.threads);
  auto result = detail::solved_self_influence(
      model, training, subset, exec, caller, [&](const Eigen::VectorXd& g, std::size_t n, influence_solve_report& r) {
        return detail::conjugate_gradient(op, g, options, threads, caller, "training example", n, r);
      });
  result.method = "cg";
  result.damping = lambda;
  result.model_evaluations += op.evaluations();
  result.options = detail::cg_options_record(options, lambda, subset.size());
  return result;
}

/// Influence by LiSSA: s(q, n) = x_q^T grad L_n with x_q the LiSSA estimate of (H + lambda I)^{-1}
/// grad f_q. Throws divergence_error when the recursion diverges.
template <TrainableModel M>
influence_result lissa_influence(const M& model, std::span<const measurement> queries,
                                 std::span<const training_example> training,
                                 const lissa_influence_options& options = {}) {
  static_assert(check_trainable_model<M>() && detail::check_curvature_model<M>());
  constexpr std::string_view caller = "lissa_influence";
  detail::check_influence_inputs(queries.size(), training.size(), caller);
  detail::check_lissa_options(options, caller);
  const double lambda = detail::resolve_damping(options.common, default_flat_damping, caller);
  const detail::parameter_subset subset(options.parameters, model.parameter_count(), caller);
  const auto& exec = options.common.execution;
  const detail::curvature_operator<M> op(model, training, options.hessian, subset, lambda, exec, caller);
  const std::size_t threads = resolve_threads(exec.threads);
  auto result = detail::solved_influence(model, queries, training, subset, exec, caller,
                                         [&](const Eigen::VectorXd& g, std::size_t q, influence_solve_report& report) {
                                           return detail::lissa(model, training, subset, op, g, options, threads,
                                                                caller, "query", q, report);
                                         });
  result.method = "lissa";
  result.damping = lambda;
  result.model_evaluations += op.evaluations();
  result.options = detail::lissa_options_record(options, lambda, subset.size());
  rank_influence(result, options.common.top_k);
  return result;
}

/// Self-influence by LiSSA: one recursion per training example.
template <TrainableModel M>
self_influence_result lissa_self_influence(const M& model, std::span<const training_example> training,
                                           const lissa_influence_options& options = {}) {
  static_assert(check_trainable_model<M>() && detail::check_curvature_model<M>());
  constexpr std::string_view caller = "lissa_self_influence";
  detail::check_influence_inputs(1, training.size(), caller);
  detail::check_lissa_options(options, caller);
  const double lambda = detail::resolve_damping(options.common, default_flat_damping, caller);
  const detail::parameter_subset subset(options.parameters, model.parameter_count(), caller);
  const auto& exec = options.common.execution;
  const detail::curvature_operator<M> op(model, training, options.hessian, subset, lambda, exec, caller);
  const std::size_t threads = resolve_threads(exec.threads);
  auto result = detail::solved_self_influence(
      model, training, subset, exec, caller, [&](const Eigen::VectorXd& g, std::size_t n, influence_solve_report& r) {
        return detail::lissa(model, training, subset, op, g, options, threads, caller, "training example", n, r);
      });
  result.method = "lissa";
  result.damping = lambda;
  result.model_evaluations += op.evaluations();
  result.options = detail::lissa_options_record(options, lambda, subset.size());
  return result;
}

}  // namespace glassbox

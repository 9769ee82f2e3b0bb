// glassbox: exact influence functions (Koh & Liang 2017): form the curvature H explicitly and solve.
//
//   H_ij = e_i^T H e_j          one curvature product per parameter (column), symmetrised (H + H^T) / 2
//   H = Q diag(mu) Q^T          eigendecomposition in double (no positive definiteness assumed)
//   (H + lambda I)^{-1} g = Q diag(1 / (mu + lambda)) Q^T g
//   s(q, n) = grad f_q^T (H + lambda I)^{-1} grad L_n
//
// The true Hessian may be indefinite: the lowest eigenvalue and the number of negative ones are
// reported, and the solve refuses only a singular H + lambda I (|mu_i + lambda| <= 1e-6 max|mu|, the
// precision of eigenvalues computed from float curvature products).
// H costs one curvature product over the training set per parameter and p^2 doubles of memory;
// the documented limit is about 5,000 parameters (max_parameters), or chosen parameter ranges
// (layers), which restrict H to its block H_SS and the gradients to S.
#pragma once

#include <Eigen/Core>
#include <Eigen/Eigenvalues>
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <string_view>
#include <vector>

#include "glassbox/core/error.hpp"
#include "glassbox/core/execution.hpp"
#include "glassbox/core/model.hpp"
#include "glassbox/core/progress.hpp"
#include "glassbox/core/result.hpp"
#include "glassbox/core/types.hpp"
#include "glassbox/detail/eigen.hpp"
#include "glassbox/influence/curvature.hpp"
#include "glassbox/influence/measurement.hpp"
#include "glassbox/influence/result.hpp"

namespace glassbox {

/// Options of exact influence.
struct exact_influence_options {
  influence_options common{};                         ///< damping (default 0.01), top_k, execution
  hessian_kind hessian = hessian_kind::gauss_newton;  ///< the curvature H (`--hessian exact|gauss-newton`)
  std::vector<parameter_range> parameters{};          ///< parameters H covers (chosen layers); empty = all
  std::size_t max_parameters = 5000;                  ///< refuse a larger H (p^2 doubles, p curvature products)
};

/// The default damping of exact, cg and lissa influence.
inline constexpr double default_flat_damping = 0.01;

namespace detail {

/// H + lambda I, eigendecomposed. (A class template on the scalar, double in every caller, so that its
/// products are compiled only where it is used: docs/building.md, "Include cost".)
template <class Real = double>
struct basic_eigen_inverse {
  Eigen::Matrix<Real, Eigen::Dynamic, Eigen::Dynamic> vectors;  ///< Q
  Eigen::Matrix<Real, Eigen::Dynamic, 1> values;                ///< mu, ascending
  double damping = 0;                                           ///< lambda

  /// (H + lambda I)^{-1} g.
  template <class Vector>
  Eigen::Matrix<Real, Eigen::Dynamic, 1> solve(const Vector& g) const {
    const Eigen::Matrix<Real, Eigen::Dynamic, 1> c = vectors.transpose() * g;
    return vectors * (c.array() / (values.array() + damping)).matrix();
  }
};

/// H + lambda I in double, eigendecomposed.
using eigen_inverse = basic_eigen_inverse<double>;

/// |mu + lambda| at or below this times max |mu| counts as singular: curvature products are float, so
/// eigenvalues are known to ~1e-7 max |mu| only.
inline constexpr double singular_tolerance = 1e-6;

/// Eigendecomposes a symmetric matrix and checks that H + lambda I is not singular. (A template on the
/// scalar, double in every caller, so that the eigensolver is compiled only where it is called.)
template <class Real = double>
basic_eigen_inverse<Real> decompose_curvature(const Eigen::Matrix<Real, Eigen::Dynamic, Eigen::Dynamic>& h,
                                              double damping, std::string_view caller) {
  Eigen::SelfAdjointEigenSolver<Eigen::Matrix<Real, Eigen::Dynamic, Eigen::Dynamic>> solver(h);
  require(solver.info() == Eigen::Success, "glassbox::{}: the eigendecomposition of H did not converge", caller);
  basic_eigen_inverse<Real> out{solver.eigenvectors(), solver.eigenvalues(), damping};
  const double largest = out.values.size() == 0 ? 0.0 : out.values.cwiseAbs().maxCoeff();
  const double threshold = singular_tolerance * std::max(largest, 1e-300);
  for (Eigen::Index i = 0; i < out.values.size(); ++i) {
    const double shifted = out.values[i] + damping;
    require(std::abs(shifted) > threshold,
            "glassbox::{}: H + lambda I is singular (eigenvalue {} + damping {} = {}, largest |eigenvalue| {}); "
            "damping must be larger",
            caller, out.values[i], damping, shifted, largest);
  }
  return out;
}

/// Eigenvalues below -singular_tolerance x max |mu|: the numerically negative ones.
template <class Vector>
std::size_t negative_count(const Vector& values) {
  if (values.size() == 0) return 0;
  const double bound = -singular_tolerance * values.cwiseAbs().maxCoeff();
  return static_cast<std::size_t>((values.array() < bound).count());
}

/// Records the options of an exact run.
template <class = void>
inline std::vector<named_option> exact_options_record(const exact_influence_options& o, double damping,
                                                      std::size_t parameters) {
  return {{"damping", damping},
          {"hessian", std::string(to_string(o.hessian))},
          {"parameters", static_cast<std::int64_t>(parameters)},
          {"top_k", static_cast<std::int64_t>(o.common.top_k)}};
}

/// The explicit curvature (undamped, symmetrised) on `subset`, one column per parameter.
template <TrainableModel M>
Eigen::MatrixXd explicit_curvature(const M& model, std::span<const training_example> training, hessian_kind kind,
                                   const parameter_subset& subset, const execution_options& exec,
                                   std::string_view caller, std::size_t* evaluations) {
  // Eigen types that depend on M: compiled where this is instantiated (see dependent_t).
  using mat_d = Eigen::Matrix<detail::dependent_t<M, double>, Eigen::Dynamic, Eigen::Dynamic>;
  using vec_d = detail::vector<detail::dependent_t<M, double>>;
  const curvature_operator<M> op(model, training, kind, subset, 0.0, exec, caller);
  const std::size_t p = subset.size();
  mat_d h(static_cast<Eigen::Index>(p), static_cast<Eigen::Index>(p));
  execution_options columns = exec;
  columns.batch_size = 1;
  const std::string stage = std::string(caller) + ": curvature";
  // One column per work item; the thread budget is shared between the column workers.
  const std::size_t budget = resolve_threads(exec.threads);
  const std::size_t workers = std::max<std::size_t>(1, std::min({worker_count(exec, is_thread_safe<M>()), p, budget}));
  const std::size_t per_column = std::max<std::size_t>(1, budget / workers);
  run_batches(p, columns, workers, stage, [&](std::size_t begin, std::size_t end) {
    for (std::size_t j = begin; j < end; ++j) {
      vec_d e = vec_d::Zero(static_cast<Eigen::Index>(p));
      e[static_cast<Eigen::Index>(j)] = 1.0;
      h.col(static_cast<Eigen::Index>(j)) = op.curvature(e, per_column);
    }
  });
  if (evaluations != nullptr) *evaluations += op.evaluations();
  const mat_d sym = 0.5 * (h + h.transpose());
  return sym;
}

/// The checked subset and damping of an exact run.
template <TrainableModel M>
parameter_subset exact_subset(const M& model, const exact_influence_options& o, std::string_view caller) {
  parameter_subset subset(o.parameters, model.parameter_count(), caller);
  require(subset.size() <= o.max_parameters,
          "glassbox::{}: the curvature covers {} parameters; it must be <= max_parameters ({}): choose parameter "
          "ranges (layers) or use cg / lissa",
          caller, subset.size(), o.max_parameters);
  return subset;
}

}  // namespace detail

/// The explicit curvature matrix of J = (1/N) sum_n L_n over `training` (true Hessian or
/// Gauss-Newton), restricted to `parameters` (empty = all), symmetrised, in double [p, p]: column j
/// is the curvature product with the j-th basis vector.
template <TrainableModel M>
Eigen::MatrixXd curvature_matrix(const M& model, std::span<const training_example> training, hessian_kind kind,
                                 std::span<const parameter_range> parameters = {}, const execution_options& exec = {}) {
  static_assert(check_trainable_model<M>() && detail::check_curvature_model<M>());
  const detail::parameter_subset subset(parameters, model.parameter_count(), "curvature_matrix");
  return detail::explicit_curvature(model, training, kind, subset, exec, "curvature_matrix", nullptr);
}

/// Exact influence of every training example on every query: s(q, n) = grad f_q^T (H + lambda I)^{-1}
/// grad L_n with H formed explicitly and eigendecomposed in double (Koh & Liang 2017).
///
/// Example:
///   auto r = glassbox::exact_influence(model, queries, training, {.common = {.damping = 1e-3}});
///   r.top[0][0].index;   // the most helpful training example of query 0
template <TrainableModel M>
influence_result exact_influence(const M& model, std::span<const measurement> queries,
                                 std::span<const training_example> training,
                                 const exact_influence_options& options = {}) {
  // Eigen types that depend on M: compiled where this is instantiated (see dependent_t).
  using mat_d = Eigen::Matrix<detail::dependent_t<M, double>, Eigen::Dynamic, Eigen::Dynamic>;
  using vec_d = detail::vector<detail::dependent_t<M, double>>;
  static_assert(check_trainable_model<M>() && detail::check_curvature_model<M>());
  constexpr std::string_view caller = "exact_influence";
  detail::check_influence_inputs(queries.size(), training.size(), caller);
  const double lambda = detail::resolve_damping(options.common, default_flat_damping, caller);
  const auto subset = detail::exact_subset(model, options, caller);
  const auto& exec = options.common.execution;

  influence_result result;
  result.method = "exact";
  result.training_size = training.size();
  result.damping = lambda;
  const mat_d h =
      detail::explicit_curvature(model, training, options.hessian, subset, exec, caller, &result.model_evaluations);
  const auto inverse = detail::decompose_curvature(h, lambda, caller);
  result.lowest_eigenvalue = inverse.values.size() > 0 ? inverse.values[0] : 0.0;
  result.highest_eigenvalue = inverse.values.size() > 0 ? inverse.values[inverse.values.size() - 1] : 0.0;
  result.negative_eigenvalues = detail::negative_count(inverse.values);

  std::vector<vec_d> gradients;
  detail::query_gradients(model, queries, subset, exec, std::string(caller) + ": queries", result.query_values,
                          gradients);
  result.model_evaluations += queries.size();
  const auto Q = static_cast<Eigen::Index>(queries.size()), P = static_cast<Eigen::Index>(subset.size());
  mat_d preconditioned(P, Q);  // (H + lambda I)^{-1} grad f_q, one column per query
  result.solves.resize(queries.size());
  for (Eigen::Index q = 0; q < Q; ++q) {
    const auto& g = gradients[static_cast<std::size_t>(q)];
    preconditioned.col(q) = inverse.solve(g);
    const double gn = g.norm();
    const double r = (h * preconditioned.col(q) + lambda * preconditioned.col(q) - g).norm();
    result.solves[static_cast<std::size_t>(q)] = {0, gn > 0 ? r / gn : 0.0, true};
  }

  detail::score_training_examples(model, training, subset, preconditioned, exec, caller, result);
  result.options = detail::exact_options_record(options, lambda, subset.size());
  rank_influence(result, options.common.top_k);
  return result;
}

/// Exact self-influence s(n, n) = grad L_n^T (H + lambda I)^{-1} grad L_n of every training example.
template <TrainableModel M>
self_influence_result exact_self_influence(const M& model, std::span<const training_example> training,
                                           const exact_influence_options& options = {}) {
  // Eigen types that depend on M: compiled where this is instantiated (see dependent_t).
  using mat_d = Eigen::Matrix<detail::dependent_t<M, double>, Eigen::Dynamic, Eigen::Dynamic>;
  using vec_d = detail::vector<detail::dependent_t<M, double>>;
  static_assert(check_trainable_model<M>() && detail::check_curvature_model<M>());
  constexpr std::string_view caller = "exact_self_influence";
  detail::check_influence_inputs(1, training.size(), caller);
  const double lambda = detail::resolve_damping(options.common, default_flat_damping, caller);
  const auto subset = detail::exact_subset(model, options, caller);
  const auto& exec = options.common.execution;

  self_influence_result result;
  result.method = "exact";
  result.damping = lambda;
  const mat_d h =
      detail::explicit_curvature(model, training, options.hessian, subset, exec, caller, &result.model_evaluations);
  const auto inverse = detail::decompose_curvature(h, lambda, caller);
  result.lowest_eigenvalue = inverse.values.size() > 0 ? inverse.values[0] : 0.0;
  result.highest_eigenvalue = inverse.values.size() > 0 ? inverse.values[inverse.values.size() - 1] : 0.0;
  result.negative_eigenvalues = detail::negative_count(inverse.values);
  result.scores.assign(training.size(), 0.0);
  detail::for_each_training_gradient(
      model, training, subset, exec, caller, std::string(caller) + ": scores",
      [&](std::size_t n, double, const vec_d& g) { result.scores[n] = g.dot(inverse.solve(g)); });
  result.model_evaluations += training.size();
  result.options = detail::exact_options_record(options, lambda, subset.size());
  return result;
}

}  // namespace glassbox

// glassbox: curvature access for the influence methods that work on flat parameter vectors
// (exact, conjugate gradient, LiSSA).
//
// H is the curvature of J = (1/N) sum_n L_n, through the model's optional members
// (core/model.hpp, docs/concepts.md):
//   hessian_kind::exact          hessian_vector_product: the true Hessian (may be indefinite)
//   hessian_kind::gauss_newton   gauss_newton_vector_product: (1/N) sum_n (1/R_n) sum_r
//                                J_r^T (diag(p_r) - p_r p_r^T) J_r, positive semi-definite
//                                (Martens 2010; Schraudolph 2002)
// A model without the member asked for is refused: at compile time when it has neither, at run
// time naming the member when it lacks the one chosen. There is no finite-difference fallback:
// an approximate product would bias every score without saying so.
//
// A parameter subset (chosen layers as flat ranges) restricts H to its block H_SS and the
// gradients to their entries in S; all products are accumulated in double.
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "glassbox/core/error.hpp"
#include "glassbox/core/execution.hpp"
#include "glassbox/core/model.hpp"
#include "glassbox/core/types.hpp"
#include "glassbox/detail/eigen.hpp"
#include "glassbox/influence/measurement.hpp"
#include "glassbox/influence/result.hpp"

namespace glassbox {

/// Which curvature H stands for.
enum class hessian_kind {
  exact,         ///< the true Hessian of J, by exact Hessian-vector products
  gauss_newton,  ///< the Gauss-Newton matrix of J (positive semi-definite), by Gauss-Newton-vector products
};

/// The stable name of a curvature ("exact", "gauss-newton"), as `--hessian` spells it.
constexpr std::string_view to_string(hessian_kind kind) {
  switch (kind) {
    case hessian_kind::exact:
      return "exact";
    case hessian_kind::gauss_newton:
      return "gauss-newton";
  }
  return "unknown";
}

/// The curvature named `name` ("exact", "gauss-newton"; "gauss_newton" is accepted too), or nullopt.
constexpr std::optional<hessian_kind> hessian_kind_from_string(std::string_view name) {
  if (name == "exact") return hessian_kind::exact;
  if (name == "gauss-newton" || name == "gauss_newton") return hessian_kind::gauss_newton;
  return std::nullopt;
}

/// Whether the model has a curvature product the flat influence methods can use.
template <class M>
constexpr bool has_curvature_product() {
  return concepts::has_hessian_vector_product<M> || concepts::has_gauss_newton_vector_product<M>;
}

namespace detail {

/// A compile-time check that M has at least one curvature product, with a sentence naming both.
template <class M>
consteval bool check_curvature_model() {
  static_assert(
      has_curvature_product<M>(),
      "glassbox influence (exact, cg, lissa): the model needs `tensor1 hessian_vector_product(std::span<const "
      "training_example>, std::span<const float>) const` or `tensor1 gauss_newton_vector_product(std::span<"
      "const training_example>, std::span<const float>) const` - see docs/concepts.md");
  return true;
}

/// Throws unless M has the member `kind` needs, naming it.
template <class M>
void require_curvature_member(hessian_kind kind, std::string_view caller) {
  if (kind == hessian_kind::exact && !concepts::has_hessian_vector_product<M>)
    fail(
        "glassbox::{}: hessian exact needs the model member `tensor1 hessian_vector_product(std::span<const "
        "training_example>, std::span<const float>) const` (see docs/concepts.md); use hessian gauss-newton",
        caller);
  if (kind == hessian_kind::gauss_newton && !concepts::has_gauss_newton_vector_product<M>)
    fail(
        "glassbox::{}: hessian gauss-newton needs the model member `tensor1 gauss_newton_vector_product(std::span<"
        "const training_example>, std::span<const float>) const` (see docs/concepts.md); use hessian exact",
        caller);
}

/// The parameters an influence computation works on: all of them, or chosen ranges gathered in order.
/// (A class template, T void always, so that its Eigen code depends on T: compiled where it is used, see dependent_t.)
template <class T = void>
class basic_parameter_subset {
 public:
  /// The subset of `ranges` (empty = all) of a model with `parameters` parameters; throws on bad ranges.
  basic_parameter_subset(std::span<const parameter_range> ranges, std::size_t parameters, std::string_view caller)
      : ranges_(ranges.begin(), ranges.end()), full_(parameters) {
    size_ = check_parameter_ranges(ranges, parameters, caller);
  }

  /// Entries in the subset.
  std::size_t size() const { return size_; }
  /// Parameters of the model.
  std::size_t full_size() const { return full_; }
  /// Whether the subset is every parameter.
  bool all() const { return ranges_.empty(); }

  /// The subset's entries of a full-length vector, in double.
  Eigen::VectorXd gather(std::span<const float> full) const {
    vector<dependent_t<T, double>> out(static_cast<Eigen::Index>(size_));
    if (all()) {
      for (std::size_t i = 0; i < full_; ++i) out[static_cast<Eigen::Index>(i)] = full[i];
      return out;
    }
    Eigen::Index k = 0;
    for (const auto& r : ranges_)
      for (std::size_t i = 0; i < r.size; ++i) out[k++] = full[r.offset + i];
    return out;
  }

  /// A full-length float vector holding x on the subset and 0 elsewhere.
  std::vector<float> scatter(const vector<dependent_t<T, double>>& x) const {
    std::vector<float> full(full_, 0.0f);
    if (all()) {
      for (std::size_t i = 0; i < full_; ++i) full[i] = static_cast<float>(x[static_cast<Eigen::Index>(i)]);
      return full;
    }
    Eigen::Index k = 0;
    for (const auto& r : ranges_)
      for (std::size_t i = 0; i < r.size; ++i) full[r.offset + i] = static_cast<float>(x[k++]);
    return full;
  }

 private:
  std::vector<parameter_range> ranges_;
  std::size_t full_ = 0;
  std::size_t size_ = 0;
};

/// The parameter subset (basic_parameter_subset's only instantiation).
using parameter_subset = basic_parameter_subset<>;

/// v -> H_SS v (+ damping v) over the training set, through the model's curvature products on
/// batches of exec.batch_size examples, combined in double in batch order (identical for any
/// thread count). Counts the example passes it makes.
template <TrainableModel M>
class curvature_operator {
  // Eigen types that depend on M: compiled where this is instantiated (see dependent_t).
  using vec_d = vector<dependent_t<M, double>>;

 public:
  /// An operator over `training` (non-empty) with curvature `kind` restricted to `subset`.
  curvature_operator(const M& model, std::span<const training_example> training, hessian_kind kind,
                     const parameter_subset& subset, double damping, const execution_options& exec,
                     std::string_view caller)
      : model_(model),
        training_(training),
        kind_(kind),
        subset_(subset),
        damping_(damping),
        exec_(exec),
        caller_(caller) {
    static_assert(check_curvature_model<M>());
    require_curvature_member<M>(kind, caller);
    require<shape_error>(!training.empty(), "glassbox::{}: training examples must not be empty", caller);
    require(exec.batch_size >= 1, "glassbox::{}: batch_size must be >= 1, got 0", caller);
    exec_.on_progress = nullptr;  // the caller reports progress; the stop token still cancels
  }

  /// (H_SS + damping I) x, keeping at most `threads` cores busy (1: the calling thread only).
  Eigen::VectorXd apply(const Eigen::VectorXd& x, std::size_t threads) const {
    vec_d out = curvature(x, threads);
    out += damping_ * depend<M>(x);
    return out;
  }

  /// H_SS x without damping, keeping at most `threads` cores busy (workers x threads inside passes).
  Eigen::VectorXd curvature(const Eigen::VectorXd& x, std::size_t threads) const {
    const std::vector<float> v = subset_.scatter(x);
    const std::span<const float> vs(v);
    const std::size_t n = training_.size(), b = exec_.batch_size, batches = (n + b - 1) / b;
    std::vector<vec_d> parts(batches);
    execution_options budget = exec_;
    budget.threads = std::max<std::size_t>(1, threads);
    const std::size_t workers = worker_count(budget, is_thread_safe<M>());
    run_batches(n, budget, workers, caller_, [&](std::size_t begin, std::size_t end) {
      const auto chunk = training_.subspan(begin, end - begin);
      tensor1 product;
      if (kind_ == hessian_kind::exact) {
        if constexpr (concepts::has_hessian_vector_product<M>) product = model_.hessian_vector_product(chunk, vs);
      } else {
        if constexpr (concepts::has_gauss_newton_vector_product<M>)
          product = model_.gauss_newton_vector_product(chunk, vs);
      }
      require<model_error>(product.size() == subset_.full_size(),
                           "glassbox::{}: the model's {} curvature product returned {} values for {} parameters",
                           caller_, to_string(kind_), product.size(), subset_.full_size());
      for (std::size_t i = 0; i < product.size(); ++i)
        if (!std::isfinite(product[i]))
          fail<model_error>(
              "glassbox::{}: the model returned {} in a {} curvature product over training examples [{}, {}) "
              "(parameter {})",
              caller_, product[i], to_string(kind_), begin, end, i);
      parts[begin / b] = depend<M>(subset_).gather(std::span<const float>(product.data(), product.size())) *
                         (static_cast<double>(end - begin) / static_cast<double>(n));
    });
    evaluations_ += n;
    vec_d out = vec_d::Zero(static_cast<Eigen::Index>(subset_.size()));
    for (const auto& p : parts) out += p;
    return out;
  }

  /// The damping lambda.
  double damping() const { return damping_; }
  /// The curvature.
  hessian_kind kind() const { return kind_; }
  /// Counts `n` example passes made through another operator on the same model (a LiSSA sample).
  void add_evaluations(std::size_t n) const { evaluations_ += n; }
  /// Training-example passes made so far (one per example per curvature product).
  std::size_t evaluations() const { return evaluations_.load(); }
  /// The execution options (without the progress callback).
  const execution_options& execution() const { return exec_; }

 private:
  const M& model_;
  std::span<const training_example> training_;
  hessian_kind kind_;
  const parameter_subset& subset_;
  double damping_;
  execution_options exec_;
  std::string_view caller_;
  mutable std::atomic<std::size_t> evaluations_{0};
};

/// Calls fn(n, loss, g_n) for every training example, g_n its gradient on `subset` in double, on
/// several threads when the model is thread-safe (fn writes its results by index). Reports
/// progress in examples under `stage`; errors name `caller`.
template <TrainableModel M, class Fn>
void for_each_training_gradient(const M& model, std::span<const training_example> training,
                                const parameter_subset& subset, const execution_options& exec, std::string_view caller,
                                std::string_view stage, Fn&& fn) {
  run_batches(training.size(), exec, worker_count(exec, is_thread_safe<M>()), stage,
              [&](std::size_t begin, std::size_t end) {
                for (std::size_t n = begin; n < end; ++n) {
                  const auto g = checked_loss_gradient(model, training[n], caller, "training example", n);
                  fn(n, g.value, subset.gather(std::span<const float>(g.gradient.data(), g.gradient.size())));
                }
              });
}

/// f_q and grad f_q on `subset` (double) for every query, in parallel when the model is thread-safe.
template <TrainableModel M>
void query_gradients(const M& model, std::span<const measurement> queries, const parameter_subset& subset,
                     const execution_options& exec, std::string_view stage, std::vector<double>& values,
                     std::vector<Eigen::VectorXd>& gradients) {
  // Eigen types that depend on M: compiled where this is instantiated (see dependent_t).
  using vec_d = detail::vector<detail::dependent_t<M, double>>;
  values.assign(queries.size(), 0.0);
  gradients.assign(queries.size(), vec_d());
  execution_options one = exec;
  one.batch_size = 1;
  run_batches(queries.size(), one, worker_count(exec, is_thread_safe<M>()), stage,
              [&](std::size_t begin, std::size_t end) {
                for (std::size_t q = begin; q < end; ++q) {
                  const auto g = measurement_gradient(model, queries[q]);
                  values[q] = g.value;
                  gradients[q] = depend<M>(subset).gather(std::span<const float>(g.gradient.data(), g.gradient.size()));
                }
              });
}

/// Fills result.scores [Q, N] with preconditioned^T grad L_n (preconditioned: [P, Q], one column
/// per query) and counts the N gradient passes.
template <TrainableModel M>
void score_training_examples(const M& model, std::span<const training_example> training, const parameter_subset& subset,
                             const Eigen::MatrixXd& preconditioned, const execution_options& exec,
                             std::string_view caller, influence_result& result) {
  // Eigen types that depend on M: compiled where this is instantiated (see dependent_t).
  using vec_d = detail::vector<detail::dependent_t<M, double>>;
  const auto& p = depend<M>(preconditioned);
  const auto Q = p.cols();
  result.scores = tensor2::from_shape({static_cast<std::size_t>(Q), training.size()});
  for_each_training_gradient(model, training, subset, exec, caller, std::string(caller) + ": scores",
                             [&](std::size_t n, double, const vec_d& g) {
                               const vec_d s = p.transpose() * g;
                               for (Eigen::Index q = 0; q < Q; ++q)
                                 result.scores(static_cast<std::size_t>(q), n) = static_cast<float>(s[q]);
                             });
  result.model_evaluations += training.size();
}

/// Common argument checks of the flat influence methods.
template <class = void>
inline void check_influence_inputs(std::size_t queries, std::size_t training, std::string_view caller) {
  require<shape_error>(queries >= 1, "glassbox::{}: queries must not be empty", caller);
  require<shape_error>(training >= 1, "glassbox::{}: training examples must not be empty", caller);
}

}  // namespace detail
}  // namespace glassbox

// glassbox: TracIn (Pruthi, Liu, Kale & Sundararajan 2020), in its checkpoint form TracInCP.
//
//   s(q, n) = sum_k eta_k grad f_q(theta_k) . grad L_n(theta_k)
//
// over checkpoints theta_k saved during training, each with the learning rate eta_k in effect
// there (`glassbox train --save-checkpoints K` writes them). Positive = helpful, as every other
// method: a gradient step on z_n at theta_k lowers f_q by eta_k grad f_q . grad L_n to first order.
// Self-influence is sum_k eta_k ||grad L_n(theta_k)||^2.
//
// Optionally on chosen parameter ranges (layers), and optionally through a seeded random
// projection to `projection_dimension` dimensions: a CountSketch (Charikar, Chen & Farach-Colton
// 2002), parameter i added with sign s_i to bucket b_i, both drawn from glassbox::rng(seed). It is
// linear, costs O(p) per gradient, and keeps inner products unbiased: E[<S a, S b>] = <a, b>.
#pragma once

#include <fmt/format.h>

#include <Eigen/Core>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "glassbox/core/error.hpp"
#include "glassbox/core/execution.hpp"
#include "glassbox/core/model.hpp"
#include "glassbox/core/random.hpp"
#include "glassbox/core/result.hpp"
#include "glassbox/core/types.hpp"
#include "glassbox/influence/curvature.hpp"
#include "glassbox/influence/measurement.hpp"
#include "glassbox/influence/result.hpp"

namespace glassbox {

/// One TracIn checkpoint: the flat parameters saved during training and the learning rate in effect.
struct tracin_checkpoint {
  tensor1 parameters;        ///< theta_k, layout of TrainableModel::parameters()
  double learning_rate = 0;  ///< eta_k (>= 0)
};

/// Options of TracIn.
struct tracin_options {
  influence_options common{};                 ///< top_k and execution; damping must stay unset (no curvature)
  std::vector<parameter_range> parameters{};  ///< parameters whose gradients are compared (chosen layers); empty = all
  std::size_t projection_dimension = 0;       ///< 0 = exact dot products; else a CountSketch to this many dimensions
  std::uint64_t seed = 0;                     ///< the projection's seed
};

/// A seeded CountSketch R^p -> R^k: (S g)_j = sum over i with b_i = j of s_i g_i, with E[<S a, S b>] = <a, b>.
class count_sketch {
 public:
  /// A sketch of p-vectors into k dimensions, drawn from glassbox::rng(seed).
  template <class = void>
  count_sketch(std::size_t p, std::size_t k, std::uint64_t seed) : k_(k), bucket_(p), sign_(p) {
    detail::require(k >= 1, "glassbox::count_sketch: k must be >= 1, got 0");
    glassbox::rng g(seed);
    for (std::size_t i = 0; i < p; ++i) {
      bucket_[i] = static_cast<std::uint32_t>(g.below(k));
      sign_[i] = (g.next() >> 63) != 0 ? -1 : 1;
    }
  }
  /// Input dimension p.
  std::size_t input_size() const { return bucket_.size(); }
  /// Output dimension k.
  std::size_t output_size() const { return k_; }
  /// S g.
  template <class T = void>
  Eigen::VectorXd operator()(const Eigen::VectorXd& g) const {
    // Eigen types that depend on T: compiled where this is instantiated (see dependent_t).
    using vec_d = detail::vector<detail::dependent_t<T, double>>;
    const auto& in = detail::depend<T>(g);
    detail::require<shape_error>(static_cast<std::size_t>(in.size()) == bucket_.size(),
                                 "glassbox::count_sketch: the vector must have {} entries, got {}", bucket_.size(),
                                 in.size());
    vec_d out = vec_d::Zero(static_cast<Eigen::Index>(k_));
    for (std::size_t i = 0; i < bucket_.size(); ++i)
      out[static_cast<Eigen::Index>(bucket_[i])] += sign_[i] * in[static_cast<Eigen::Index>(i)];
    return out;
  }

 private:
  std::size_t k_;
  std::vector<std::uint32_t> bucket_;
  std::vector<std::int8_t> sign_;
};

namespace detail {

/// Restores a model's parameters when it goes out of scope.
template <TrainableModel M>
class parameter_restorer {
 public:
  explicit parameter_restorer(M& model) : model_(model), saved_(model.parameters().begin(), model.parameters().end()) {}
  parameter_restorer(const parameter_restorer&) = delete;
  parameter_restorer& operator=(const parameter_restorer&) = delete;
  ~parameter_restorer() { model_.set_parameters(std::span<const float>(saved_)); }

 private:
  M& model_;
  std::vector<float> saved_;
};

template <class = void>
inline void check_tracin_inputs(std::span<const tracin_checkpoint> checkpoints, std::size_t parameters,
                                const tracin_options& o, std::string_view caller) {
  require<shape_error>(!checkpoints.empty(), "glassbox::{}: checkpoints must not be empty", caller);
  for (std::size_t k = 0; k < checkpoints.size(); ++k) {
    require<shape_error>(checkpoints[k].parameters.size() == parameters,
                         "glassbox::{}: checkpoint {} must hold {} parameters, got {}", caller, k, parameters,
                         checkpoints[k].parameters.size());
    require(std::isfinite(checkpoints[k].learning_rate) && checkpoints[k].learning_rate >= 0,
            "glassbox::{}: the learning rate of checkpoint {} must be finite and >= 0, got {}", caller, k,
            checkpoints[k].learning_rate);
  }
  require(!o.common.damping.has_value(), "glassbox::{}: damping must be unset (TracIn has no curvature), got {}",
          caller, o.common.damping.value_or(0.0));
}

template <class = void>
inline std::vector<named_option> tracin_options_record(const tracin_options& o, std::size_t checkpoints,
                                                       std::size_t parameters) {
  return {{"checkpoints", static_cast<std::int64_t>(checkpoints)},
          {"parameters", static_cast<std::int64_t>(parameters)},
          {"projection_dimension", static_cast<std::int64_t>(o.projection_dimension)},
          {"seed", static_cast<std::int64_t>(o.seed)},
          {"top_k", static_cast<std::int64_t>(o.common.top_k)}};
}

/// Calls fn(k, eta_k, features(g)) style passes: sets each checkpoint and runs `pass(k)`.
template <TrainableModel M, class Pass>
void over_checkpoints(M& model, std::span<const tracin_checkpoint> checkpoints, Pass&& pass) {
  for (std::size_t k = 0; k < checkpoints.size(); ++k) {
    const auto& p = checkpoints[k].parameters;
    model.set_parameters(std::span<const float>(p.data(), p.size()));
    pass(k);
  }
}

}  // namespace detail

/// TracInCP scores of every training example on every query: s(q, n) = sum_k eta_k grad f_q(theta_k)
/// . grad L_n(theta_k), optionally on chosen parameters and through a seeded CountSketch. Sets the
/// model to each checkpoint in turn and restores its parameters before returning (also on error).
///
/// Example:
///   auto r = glassbox::tracin_influence(model, checkpoints, queries, training, {.projection_dimension = 4096});
template <TrainableModel M>
influence_result tracin_influence(M& model, std::span<const tracin_checkpoint> checkpoints,
                                  std::span<const measurement> queries, std::span<const training_example> training,
                                  const tracin_options& options = {}) {
  // Eigen types that depend on M: compiled where this is instantiated (see dependent_t).
  using mat_d = Eigen::Matrix<detail::dependent_t<M, double>, Eigen::Dynamic, Eigen::Dynamic>;
  using vec_d = detail::vector<detail::dependent_t<M, double>>;
  static_assert(check_trainable_model<M>());
  constexpr std::string_view caller = "tracin_influence";
  detail::check_influence_inputs(queries.size(), training.size(), caller);
  detail::check_tracin_inputs(checkpoints, model.parameter_count(), options, caller);
  const detail::parameter_subset subset(options.parameters, model.parameter_count(), caller);
  std::optional<count_sketch> sketch;
  if (options.projection_dimension > 0) sketch.emplace(subset.size(), options.projection_dimension, options.seed);
  const auto features = [&](const vec_d& g) { return sketch ? (*sketch)(g) : g; };
  const auto& exec = options.common.execution;
  const std::size_t Q = queries.size(), N = training.size();

  influence_result result;
  result.method = "tracin";
  result.training_size = N;
  {
    const detail::parameter_restorer<M> restore(model);
    std::vector<double> scores(Q * N, 0.0);
    detail::over_checkpoints(model, checkpoints, [&](std::size_t k) {
      const double eta = checkpoints[k].learning_rate;
      std::vector<double> values;
      std::vector<vec_d> gradients;
      const std::string stage = fmt::format("{}: checkpoint {}", caller, k);
      detail::query_gradients(model, queries, subset, exec, stage, values, gradients);
      mat_d gq(static_cast<Eigen::Index>(sketch ? sketch->output_size() : subset.size()), static_cast<Eigen::Index>(Q));
      for (std::size_t q = 0; q < Q; ++q) gq.col(static_cast<Eigen::Index>(q)) = features(gradients[q]);
      gradients.clear();
      detail::for_each_training_gradient(model, training, subset, exec, caller, stage,
                                         [&](std::size_t n, double, const vec_d& g) {
                                           const vec_d s = gq.transpose() * features(g);
                                           for (std::size_t q = 0; q < Q; ++q)
                                             scores[q * N + n] += eta * s[static_cast<Eigen::Index>(q)];
                                         });
      result.model_evaluations += Q + N;
    });
    result.scores = tensor2::from_shape({Q, N});
    for (std::size_t i = 0; i < Q * N; ++i) result.scores.data()[i] = static_cast<float>(scores[i]);
  }
  result.query_values.resize(Q);
  for (std::size_t q = 0; q < Q; ++q) result.query_values[q] = measurement_value(model, queries[q]);
  result.options = detail::tracin_options_record(options, checkpoints.size(), subset.size());
  rank_influence(result, options.common.top_k);
  return result;
}

/// TracInCP self-influence sum_k eta_k ||grad L_n(theta_k)||^2 (on chosen parameters, optionally
/// sketched) of every training example; restores the model's parameters before returning.
template <TrainableModel M>
self_influence_result tracin_self_influence(M& model, std::span<const tracin_checkpoint> checkpoints,
                                            std::span<const training_example> training,
                                            const tracin_options& options = {}) {
  using vec_d = detail::vector<detail::dependent_t<M, double>>;  // see dependent_t
  static_assert(check_trainable_model<M>());
  constexpr std::string_view caller = "tracin_self_influence";
  detail::check_influence_inputs(1, training.size(), caller);
  detail::check_tracin_inputs(checkpoints, model.parameter_count(), options, caller);
  const detail::parameter_subset subset(options.parameters, model.parameter_count(), caller);
  std::optional<count_sketch> sketch;
  if (options.projection_dimension > 0) sketch.emplace(subset.size(), options.projection_dimension, options.seed);
  const auto& exec = options.common.execution;

  self_influence_result result;
  result.method = "tracin";
  result.scores.assign(training.size(), 0.0);
  {
    const detail::parameter_restorer<M> restore(model);
    detail::over_checkpoints(model, checkpoints, [&](std::size_t k) {
      const double eta = checkpoints[k].learning_rate;
      const std::string stage = fmt::format("{}: checkpoint {}", caller, k);
      detail::for_each_training_gradient(
          model, training, subset, exec, caller, stage, [&](std::size_t n, double, const vec_d& g) {
            result.scores[n] += eta * (sketch ? (*sketch)(g).squaredNorm() : g.squaredNorm());
          });
      result.model_evaluations += training.size();
    });
  }
  result.options = detail::tracin_options_record(options, checkpoints.size(), subset.size());
  return result;
}

}  // namespace glassbox

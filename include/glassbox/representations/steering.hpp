// glassbox: reading and steering vectors (Zou et al. 2023, "Representation Engineering"), and
// iterative nullspace projection (INLP; Ravfogel et al. 2020) for amnesic removal (Elazar et al. 2021).
//
// A reading vector for a concept is read off contrast pairs (an input with the concept and one
// without): the first principal direction of the differences of their hidden states at a layer,
// taken without centring, which is the principal component of the pairs in both orders (RepE
// shuffles the order of each pair for the same reason), with its sign fixed so that the positive
// members project higher on average. A reading is the projection of a hidden state on it.
// Steering adds alpha times the vector to the residual stream at a layer (at every position or at
// chosen ones) and runs the rest of the model; projecting out removes the component along it.
// INLP removes a property linearly: it trains a linear classifier, projects the rows onto the
// classifier's nullspace, and repeats until no linear classifier does better than chance.
#pragma once

#include <Eigen/Core>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <numeric>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

#include "glassbox/core/error.hpp"
#include "glassbox/core/execution.hpp"
#include "glassbox/core/model.hpp"
#include "glassbox/core/progress.hpp"
#include "glassbox/core/random.hpp"
#include "glassbox/core/target.hpp"
#include "glassbox/core/types.hpp"
#include "glassbox/detail/eigen.hpp"
#include "glassbox/representations/types.hpp"
#include "glassbox/probing/activations.hpp"
#include "glassbox/probing/logistic_regression.hpp"

namespace glassbox {

/// Two inputs that differ in a concept: `positive` shows it, `negative` shows its opposite.
struct contrast_pair {
  token_sequence positive;  ///< e.g. a review with "good"
  token_sequence negative;  ///< the same review with "bad"
};

/// Options of reading vectors.
struct reading_vector_options {
  std::vector<std::size_t> layers{};                      ///< hidden-state indices (default: all 0..L)
  activation_pooling pooling = activation_pooling::last;  ///< the state compared: last position, or mean
  execution_options execution{};                          ///< threads, progress (one item per input), cancellation
};

/// Where and how a steering edit applies.
struct steering_options {
  double alpha = 0.0;                    ///< h += alpha * direction (add mode)
  std::vector<std::size_t> positions{};  ///< positions edited (default: all)
  bool last_position = false;            ///< edit only each input's last position (instead of `positions`)
  bool project_out = false;              ///< instead of adding: h -= (h . u) u, u = direction / |direction|
};

/// Options of INLP.
struct inlp_options {
  std::size_t iterations = 100;            ///< at most this many classifiers removed (and at most d directions)
  double tolerance = 0.01;                 ///< stop when dev accuracy <= majority-class rate + tolerance
  logistic_regression_options logistic{};  ///< the linear classifier of each iteration
};

/// The result of INLP: the removed subspace and each iteration's dev accuracy before its removal.
struct inlp_result {
  tensor2 basis;                      ///< [r, d] orthonormal rows spanning the removed directions
  std::vector<double> dev_accuracy;   ///< per iteration, the classifier's dev accuracy on the projected rows
  double majority = 0.0;              ///< the majority-class rate on dev (chance)
};

/// One point of a steering curve.
struct steering_point {
  double alpha = 0.0;          ///< the edit's strength
  double mean_target = 0.0;    ///< the target's mean over the inputs, steered
  double flip_rate = 0.0;      ///< among inputs whose unsteered target has the sign opposite to alpha's, the
                               ///< fraction whose sign the edit changes (alpha's way)
  double wrong_way_rate = 0.0; ///< among inputs already on alpha's side, the fraction pushed to the other sign
};

namespace detail {

/// The pooled hidden state [L + 1, d] of one input (last position or mean).
template <class M>
tensor2 pooled_states(const M& model, token_span tokens, activation_pooling pooling, std::string_view who) {
  require<shape_error>(!tokens.empty(), "glassbox::{}: every input must have tokens", who);
  const tensor3 hs = model_hidden_states(model, tokens, who);
  const std::size_t L1 = hs.shape(0), T = hs.shape(1), d = hs.shape(2);
  require<shape_error>(T == tokens.size(), "glassbox::{}: hidden_states has {} positions for {} tokens", who, T,
                       tokens.size());
  tensor2 out = tensor2::from_shape({L1, d});
  for (std::size_t k = 0; k < L1; ++k)
    for (std::size_t j = 0; j < d; ++j) {
      if (pooling == activation_pooling::last) {
        out(k, j) = hs(k, T - 1, j);
      } else {
        double s = 0.0;
        for (std::size_t t = 0; t < T; ++t) s += hs(k, t, j);
        out(k, j) = static_cast<float>(s / static_cast<double>(T));
      }
    }
  return out;
}

/// The unit top right-singular vector of D [n, d] (power iteration on D^T D in double, started at
/// the mean row), and the fraction of ||D||_F^2 along it; the zero vector when D is zero.
template <class Real = double>
std::pair<detail::vector<Real>, double> top_direction(const Eigen::Matrix<Real, Eigen::Dynamic, Eigen::Dynamic>& D) {
  using vec = detail::vector<Real>;
  using mat = Eigen::Matrix<Real, Eigen::Dynamic, Eigen::Dynamic>;
  const mat C = D.transpose() * D;
  if (!(C.trace() > 0)) return {vec::Zero(D.cols()), 0.0};  // no difference: no direction
  vec v = D.colwise().mean().transpose();
  if (v.norm() == 0.0) v = vec::Unit(D.cols(), 0);
  v.normalize();
  for (int it = 0; it < 10000; ++it) {
    vec w = C * v;
    const double n = w.norm();
    if (n == 0.0) break;
    w /= n;
    const double change = (w - v).norm();
    v = w;
    if (change < 1e-13) break;
  }
  const double total = C.trace();
  return {v, total > 0 ? v.dot(C * v) / total : 0.0};
}

/// Applies a steering edit to rows [T, d] of a hidden state, in place.
template <class = void>
void steer_rows(tensor2& h, const tensor1& direction, const steering_options& o, std::string_view who) {
  const std::size_t T = h.shape(0), d = h.shape(1);
  require<shape_error>(direction.size() == d, "glassbox::{}: direction must have {} entries, got {}", who, d,
                       direction.size());
  std::vector<std::size_t> positions = o.positions;
  if (o.last_position) {
    positions.assign(1, T - 1);
  } else if (positions.empty()) {
    positions.resize(T);
    std::iota(positions.begin(), positions.end(), std::size_t{0});
  }
  double norm2 = 0.0;
  for (std::size_t j = 0; j < d; ++j) norm2 += static_cast<double>(direction[j]) * direction[j];
  if (o.project_out) require<error>(norm2 > 0, "glassbox::{}: cannot project out a zero direction", who);
  for (auto t : positions) {
    require<shape_error>(t < T, "glassbox::{}: positions must be < {} (tokens), got {}", who, T, t);
    float* row = h.data() + t * d;
    if (o.project_out) {
      double dot = 0.0;
      for (std::size_t j = 0; j < d; ++j) dot += static_cast<double>(row[j]) * direction[j];
      const double c = dot / norm2;
      for (std::size_t j = 0; j < d; ++j) row[j] = static_cast<float>(row[j] - c * direction[j]);
    } else {
      for (std::size_t j = 0; j < d; ++j) row[j] = static_cast<float>(row[j] + o.alpha * direction[j]);
    }
  }
}

/// The hidden state [T, d] at index `layer` of one input.
template <class M>
tensor2 layer_state(const M& model, token_span tokens, std::size_t layer, std::string_view who) {
  const tensor3 hs = model_hidden_states(model, tokens, who);
  require<shape_error>(layer < hs.shape(0), "glassbox::{}: layer must be < {} (hidden states), got {}", who,
                       hs.shape(0), layer);
  const std::size_t T = hs.shape(1), d = hs.shape(2);
  tensor2 h = tensor2::from_shape({T, d});
  std::copy_n(hs.data() + layer * T * d, T * d, h.data());
  return h;
}

}  // namespace detail

/// Reading vectors from contrast pairs, one per layer: the unit first principal direction of the
/// pairs' hidden-state differences (pooled per options.pooling), positive members projecting higher.
///
/// Example:
///   std::vector<glassbox::contrast_pair> pairs = {{good_review, bad_review}, ...};
///   auto vectors = glassbox::reading_vectors(model, pairs, {.layers = {2}});
template <ActivationModel M>
std::vector<reading_vector> reading_vectors(const M& model, std::span<const contrast_pair> pairs,
                                            const reading_vector_options& options = {}) {
  constexpr std::string_view who = "reading_vectors";
  detail::require<error>(!pairs.empty(), "glassbox::{}: pairs must not be empty", who);
  detail::require<error>(options.pooling != activation_pooling::token,
                         "glassbox::{}: options.pooling must be last or mean (one state per input), got token", who);
  pass_threads_scope scope(options.execution.threads);
  detail::progress_reporter reporter(options.execution.on_progress, options.execution.stop, 2 * pairs.size(), who);
  std::vector<tensor2> diffs;
  std::size_t L1 = 0, d = 0;
  for (std::size_t i = 0; i < pairs.size(); ++i) {
    const tensor2 a = detail::pooled_states(model, token_span(pairs[i].positive), options.pooling, who);
    reporter.advance(1);
    const tensor2 b = detail::pooled_states(model, token_span(pairs[i].negative), options.pooling, who);
    reporter.advance(1);
    if (i == 0) {
      L1 = a.shape(0);
      d = a.shape(1);
    }
    detail::require<shape_error>(a.shape(0) == L1 && b.shape(0) == L1 && a.shape(1) == d && b.shape(1) == d,
                                 "glassbox::{}: pair {} gives hidden states of another shape", who, i);
    tensor2 diff = tensor2::from_shape({L1, d});
    for (std::size_t j = 0; j < L1 * d; ++j)
      diff.data()[j] = static_cast<float>(static_cast<double>(a.data()[j]) - b.data()[j]);
    diffs.push_back(std::move(diff));
  }
  std::vector<std::size_t> layers = options.layers;
  if (layers.empty()) {
    layers.resize(L1);
    std::iota(layers.begin(), layers.end(), std::size_t{0});
  }
  std::vector<reading_vector> out;
  using mat = Eigen::Matrix<detail::dependent_t<M, double>, Eigen::Dynamic, Eigen::Dynamic>;  // see dependent_t
  using vec = detail::vector<detail::dependent_t<M, double>>;
  const auto n = static_cast<Eigen::Index>(pairs.size()), dd = static_cast<Eigen::Index>(d);
  for (auto k : layers) {
    detail::require<shape_error>(k < L1, "glassbox::{}: layers must be hidden-state indices < {}, got {}", who, L1, k);
    mat D(n, dd);
    for (Eigen::Index i = 0; i < n; ++i)
      for (Eigen::Index j = 0; j < dd; ++j)
        D(i, j) = diffs[static_cast<std::size_t>(i)].data()[k * d + static_cast<std::size_t>(j)];
    auto [v, explained] = detail::top_direction(D);
    vec proj = D * v;
    if (proj.mean() < 0) {
      v = -v;
      proj = -proj;
    }
    reading_vector r;
    r.layer = k;
    r.direction = tensor1::from_shape({d});
    for (std::size_t j = 0; j < d; ++j) r.direction[j] = static_cast<float>(v[static_cast<Eigen::Index>(j)]);
    r.explained = explained;
    r.pair_accuracy = static_cast<double>((proj.array() > 0).count()) / static_cast<double>(n);
    r.mean_separation = proj.mean();
    out.push_back(std::move(r));
  }
  return out;
}

/// The reading of a vector on one input: the projection h_t . direction at each position t of the
/// vector's layer.
template <ActivationModel M>
std::vector<double> read_vector(const M& model, token_span tokens, const reading_vector& vector) {
  const tensor2 h = detail::layer_state(model, tokens, vector.layer, "read_vector");
  const std::size_t T = h.shape(0), d = h.shape(1);
  detail::require<shape_error>(vector.direction.size() == d,
                               "glassbox::read_vector: the direction must have {} entries, got {}", d,
                               vector.direction.size());
  std::vector<double> r(T, 0.0);
  for (std::size_t t = 0; t < T; ++t)
    for (std::size_t j = 0; j < d; ++j) r[t] += static_cast<double>(h(t, j)) * vector.direction[j];
  return r;
}

/// The logits [rows, V] of `tokens` with the residual stream at hidden-state index `layer` edited:
/// alpha * direction added at options.positions, or the direction projected out there.
template <InterventionModel M>
tensor2 steered_logits(const M& model, token_span tokens, std::size_t layer, const tensor1& direction,
                       const steering_options& options = {}) {
  tensor2 h = detail::layer_state(model, tokens, layer, "steered_logits");
  detail::steer_rows(h, direction, options, "steered_logits");
  return detail::model_logits_from_hidden(model, tokens, layer, h, "steered_logits");
}

/// The logits [rows, V] of `tokens` with the rows of the residual stream at `layer` projected onto
/// the orthogonal complement of basis [r, d] (orthonormal rows, e.g. inlp_result::basis).
template <InterventionModel M>
tensor2 projected_logits(const M& model, token_span tokens, std::size_t layer, const tensor2& basis) {
  tensor2 h = detail::layer_state(model, tokens, layer, "projected_logits");
  const std::size_t T = h.shape(0), d = h.shape(1);
  detail::require<shape_error>(basis.dimension() == 2 && (basis.shape(0) == 0 || basis.shape(1) == d),
                               "glassbox::projected_logits: basis must be [r, {}], got [{}, {}]", d, basis.shape(0),
                               basis.shape(1));
  using real = detail::dependent_t<M, double>;  // see dependent_t
  using real_f = detail::dependent_t<M, float>;
  using rows = Eigen::Map<detail::row_matrix<real_f>>;
  using crows = Eigen::Map<const detail::row_matrix<real_f>>;
  rows H(h.data(), static_cast<Eigen::Index>(T), static_cast<Eigen::Index>(d));
  const crows B(basis.data(), static_cast<Eigen::Index>(basis.shape(0)), static_cast<Eigen::Index>(d));
  const Eigen::Matrix<real, Eigen::Dynamic, Eigen::Dynamic> Hd = H.template cast<real>();
  const Eigen::Matrix<real, Eigen::Dynamic, Eigen::Dynamic> Bd = B.template cast<real>();
  H = (Hd - (Hd * Bd.transpose()) * Bd).template cast<real_f>();
  return detail::model_logits_from_hidden(model, tokens, layer, h, "projected_logits");
}

/// Steering over a data set: for each alpha, the target's mean and how often its sign flips the
/// way alpha pushes (e.g. target::contrast(positive, negative) flips the predicted label).
template <InterventionModel M>
std::vector<steering_point> steering_curve(const M& model, std::span<const token_sequence> inputs, const target& t,
                                           std::size_t layer, const tensor1& direction, std::span<const double> alphas,
                                           const steering_options& base = {}, const execution_options& exec = {}) {
  constexpr std::string_view who = "steering_curve";
  detail::require<error>(!inputs.empty(), "glassbox::{}: inputs must not be empty", who);
  pass_threads_scope scope(exec.threads);
  detail::progress_reporter reporter(exec.on_progress, exec.stop, inputs.size() * (alphas.size() + 1), who);
  std::vector<double> plain(inputs.size());
  std::vector<tensor2> states;
  states.reserve(inputs.size());
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    const token_span tokens(inputs[i]);
    states.push_back(detail::layer_state(model, tokens, layer, who));
    plain[i] = t.value_of(detail::model_logits_from_hidden(model, tokens, layer, states.back(), who, i));
    reporter.advance(1);
  }
  std::vector<steering_point> out;
  for (double alpha : alphas) {
    steering_options o = base;
    o.alpha = alpha;
    steering_point p{alpha, 0.0, 0.0, 0.0};
    std::size_t against = 0, flipped = 0, along = 0, wrong = 0;
    for (std::size_t i = 0; i < inputs.size(); ++i) {
      tensor2 h = states[i];
      detail::steer_rows(h, direction, o, who);
      const double v = t.value_of(detail::model_logits_from_hidden(model, token_span(inputs[i]), layer, h, who, i));
      p.mean_target += v / static_cast<double>(inputs.size());
      const double sign = alpha > 0 ? 1.0 : (alpha < 0 ? -1.0 : 0.0);
      if (sign != 0.0) {
        if (plain[i] * sign < 0) {
          ++against;
          if (v * sign > 0) ++flipped;
        } else {
          ++along;
          if (v * sign < 0) ++wrong;
        }
      }
      reporter.advance(1);
    }
    p.flip_rate = against > 0 ? static_cast<double>(flipped) / static_cast<double>(against) : 0.0;
    p.wrong_way_rate = along > 0 ? static_cast<double>(wrong) / static_cast<double>(along) : 0.0;
    out.push_back(p);
  }
  return out;
}

/// Iterative nullspace projection: repeatedly fits a linear classifier of y on the rows projected
/// so far and removes its weight directions, until its dev accuracy falls to the majority-class
/// rate (+ tolerance) or options.iterations classifiers were removed. Rows [N, d] float, y classes.
template <class T = void>
inlp_result inlp(const tensor2& x_train, std::span<const std::int32_t> y_train, const tensor2& x_dev,
                 std::span<const std::int32_t> y_dev, std::size_t classes, const inlp_options& options = {}) {
  constexpr std::string_view who = "inlp";
  detail::require<shape_error>(x_train.dimension() == 2 && x_dev.dimension() == 2 && x_train.shape(1) == x_dev.shape(1),
                               "glassbox::{}: x_train and x_dev must be [N, d] of one width", who);
  detail::require<shape_error>(x_train.shape(0) == y_train.size() && x_dev.shape(0) == y_dev.size(),
                               "glassbox::{}: one label per row expected", who);
  detail::require<error>(classes >= 2, "glassbox::{}: classes must be >= 2, got {}", who, classes);
  const std::size_t d = x_train.shape(1);
  std::vector<std::size_t> counts(classes, 0);
  for (auto c : y_dev) {
    detail::require<error>(c >= 0 && static_cast<std::size_t>(c) < classes,
                           "glassbox::{}: labels must be in [0, {}), got {}", who, classes, c);
    ++counts[static_cast<std::size_t>(c)];
  }
  inlp_result out;
  out.majority = y_dev.empty() ? 0.0
                               : static_cast<double>(*std::max_element(counts.begin(), counts.end())) /
                                     static_cast<double>(y_dev.size());
  using real = detail::dependent_t<T, double>;  // see dependent_t
  using real_f = detail::dependent_t<T, float>;
  using vec = detail::vector<real>;
  std::vector<vec> basis;
  auto project = [&](const tensor2& x) {
    tensor2 p = x;
    const auto N = static_cast<Eigen::Index>(x.shape(0)), D = static_cast<Eigen::Index>(d);
    Eigen::Map<detail::row_matrix<real_f>> P(p.data(), N, D);
    Eigen::Matrix<real, Eigen::Dynamic, Eigen::Dynamic> Pd = P.template cast<real>();
    for (const auto& b : basis) Pd -= (Pd * b) * b.transpose();
    P = Pd.template cast<real_f>();
    return p;
  };
  for (std::size_t it = 0; it < options.iterations; ++it) {
    const tensor2 xt = project(x_train), xd = project(x_dev);
    const auto fit = detail::fit_logistic(detail::rows_of(xt), y_train, classes, options.logistic);
    const auto predicted = detail::predict_rows(fit.model, detail::rows_of(xd));
    std::size_t right = 0;
    for (std::size_t i = 0; i < predicted.size(); ++i) right += predicted[i] == y_dev[i] ? 1 : 0;
    const double acc = y_dev.empty() ? 0.0 : static_cast<double>(right) / static_cast<double>(y_dev.size());
    out.dev_accuracy.push_back(acc);
    if (acc <= out.majority + options.tolerance) break;
    // Gram-Schmidt the classifier's weight rows against the basis so far (twice, for stability).
    const auto& w = fit.model;
    for (std::size_t r = 0; r < w.outputs; ++r) {
      vec v(static_cast<Eigen::Index>(d));
      for (std::size_t j = 0; j < d; ++j) v[static_cast<Eigen::Index>(j)] = w.weight[r * w.features + j];
      for (int pass = 0; pass < 2; ++pass)
        for (const auto& b : basis) v -= b.dot(v) * b;
      const double n = v.norm();
      if (n > 1e-10) basis.push_back(v / n);
    }
    if (basis.size() >= d) break;
  }
  out.basis = tensor2::from_shape({basis.size(), d});
  for (std::size_t r = 0; r < basis.size(); ++r)
    for (std::size_t j = 0; j < d; ++j) out.basis(r, j) = static_cast<float>(basis[r][static_cast<Eigen::Index>(j)]);
  return out;
}

}  // namespace glassbox

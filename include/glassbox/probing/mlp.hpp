// glassbox: the MLP probe, a one-hidden-layer ReLU network trained with Adam on the cross-entropy.
// Hewitt & Liang (2019) warn that such probes reach high accuracy by memorising: read their
// accuracy together with the selectivity of their control task (docs/probing.md).
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
#include <vector>

#include "glassbox/core/error.hpp"
#include "glassbox/core/random.hpp"
#include "glassbox/core/types.hpp"
#include "glassbox/detail/eigen.hpp"
#include "glassbox/probing/logistic_regression.hpp"

namespace glassbox {

/// The warning Hewitt & Liang (2019) give about expressive probes, attached to every MLP probe result.
inline constexpr std::string_view mlp_probe_warning =
    "MLP probes can reach high accuracy by memorising word types rather than reading a property from the "
    "representation (Hewitt & Liang 2019): read their accuracy together with the selectivity of the control task, "
    "and prefer the linear probe when the two disagree";

/// Options of the MLP probe.
struct mlp_probe_options {
  std::size_t hidden = 256;     ///< hidden ReLU units
  std::size_t epochs = 20;      ///< passes over the training rows (the best epoch on the dev rows is kept)
  std::size_t batch_size = 64;  ///< rows per Adam step
  double learning_rate = 1e-3;  ///< Adam's step size (beta1 0.9, beta2 0.999, eps 1e-8)
  double weight_decay = 0.0;    ///< L2 coefficient added to the weight gradients (not the biases)
  std::uint64_t seed = 0;       ///< initialisation and batch order
};

/// A trained MLP probe: softmax(W2 relu(W1 x + b1) + b2).
struct mlp_probe {
  std::size_t features = 0, hidden = 0, classes = 0;  ///< d, h, K
  std::vector<float> w1;                              ///< [h, d]
  std::vector<float> b1;                              ///< [h]
  std::vector<float> w2;                              ///< [K, h]
  std::vector<float> b2;                              ///< [K]
  std::size_t epochs = 0;                             ///< epochs run
  std::size_t best_epoch = 0;  ///< the epoch whose parameters were kept (1-based; the last without dev rows)
};

namespace detail {

/// Scores [n, K] of an MLP probe, computed in float (Real).
template <class Real = float>
inline row_matrix<Real> mlp_scores(const mlp_probe& m, float_rows x) {
  const auto d = static_cast<Eigen::Index>(m.features), h = static_cast<Eigen::Index>(m.hidden),
             k = static_cast<Eigen::Index>(m.classes);
  const Eigen::Map<const row_matrix<Real>> w1(m.w1.data(), h, d), w2(m.w2.data(), k, h);
  const Eigen::Map<const Eigen::Matrix<Real, 1, Eigen::Dynamic>> b1(m.b1.data(), h), b2(m.b2.data(), k);
  row_matrix<Real> hid = (x * w1.transpose()).rowwise() + b1;
  hid = hid.cwiseMax(0.0f);
  row_matrix<Real> z = (hid * w2.transpose()).rowwise() + b2;
  return z;
}

/// Mean cross-entropy (nats) and accuracy of an MLP probe on rows.
template <class T = void>
inline std::pair<double, double> mlp_loss_accuracy(const mlp_probe& m, float_rows x, std::span<const std::int32_t> y) {
  if (depend<T>(x).rows() == 0) return {0.0, 0.0};
  // Eigen types that depend on T: compiled where this is instantiated (see dependent_t).
  const row_matrix<dependent_t<T, float>> z = mlp_scores<dependent_t<T, float>>(m, x);
  double loss = 0;
  std::size_t right = 0;
  for (Eigen::Index i = 0; i < z.rows(); ++i) {
    Eigen::Index best = 0;
    const double mx = z.row(i).maxCoeff();
    double sum = 0;
    for (Eigen::Index c = 0; c < z.cols(); ++c) {
      sum += std::exp(z(i, c) - mx);
      if (z(i, c) > z(i, best)) best = c;
    }
    const auto yi = static_cast<Eigen::Index>(y[static_cast<std::size_t>(i)]);
    loss += mx + std::log(sum) - z(i, yi);
    right += best == yi;
  }
  return {loss / static_cast<double>(z.rows()), static_cast<double>(right) / static_cast<double>(z.rows())};
}

/// Trains an MLP probe on row views, in float (Real); dev rows (may be empty) choose the epoch kept.
template <class Real = float>
mlp_probe fit_mlp(float_rows rows, std::span<const std::int32_t> y, std::size_t classes, const mlp_probe_options& o,
                  float_rows dev_rows, std::span<const std::int32_t> dev_y) {
  // Views whose types depend on Real: compiled where this is instantiated (see dependent_t).
  const auto& x = depend<Real>(rows);
  const auto& dev_x = depend<Real>(dev_rows);
  const Eigen::Index n = x.rows(), d = x.cols(), h = static_cast<Eigen::Index>(o.hidden),
                     k = static_cast<Eigen::Index>(classes);
  mlp_probe m;
  m.features = static_cast<std::size_t>(d);
  m.hidden = o.hidden;
  m.classes = classes;
  rng gen(o.seed);
  // PyTorch's nn.Linear initialisation: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and biases.
  const auto init = [&](std::vector<float>& v, std::size_t count, double fan_in) {
    const double bound = 1.0 / std::sqrt(fan_in);
    v.resize(count);
    for (auto& e : v) e = static_cast<float>(gen.uniform(-bound, bound));
  };
  init(m.w1, static_cast<std::size_t>(h * d), static_cast<double>(d));
  init(m.b1, static_cast<std::size_t>(h), static_cast<double>(d));
  init(m.w2, static_cast<std::size_t>(k * h), static_cast<double>(h));
  init(m.b2, static_cast<std::size_t>(k), static_cast<double>(h));

  // Adam state, one flat buffer per tensor.
  std::vector<std::vector<float>*> params{&m.w1, &m.b1, &m.w2, &m.b2};
  std::vector<std::vector<float>> first(4), second(4), grads(4);
  for (std::size_t p = 0; p < 4; ++p) {
    first[p].assign(params[p]->size(), 0.0f);
    second[p].assign(params[p]->size(), 0.0f);
    grads[p].assign(params[p]->size(), 0.0f);
  }
  std::vector<std::size_t> order(static_cast<std::size_t>(n));
  std::iota(order.begin(), order.end(), std::size_t{0});
  const auto batch = static_cast<Eigen::Index>(std::max<std::size_t>(o.batch_size, 1));
  row_matrix<Real> xb(batch, d), hid(batch, h), z(batch, k), dh(batch, h);
  std::size_t step = 0;
  mlp_probe best = m;
  double best_loss = std::numeric_limits<double>::infinity();
  for (std::size_t epoch = 1; epoch <= o.epochs; ++epoch) {
    gen.shuffle(order.begin(), order.end());
    for (Eigen::Index start = 0; start < n; start += batch) {
      const Eigen::Index b = std::min(batch, n - start);
      for (Eigen::Index i = 0; i < b; ++i)
        xb.row(i) = x.row(static_cast<Eigen::Index>(order[static_cast<std::size_t>(start + i)]));
      const Eigen::Map<row_matrix<Real>> w1(m.w1.data(), h, d), w2(m.w2.data(), k, h);
      const Eigen::Map<Eigen::Matrix<Real, 1, Eigen::Dynamic>> b1(m.b1.data(), h), b2(m.b2.data(), k);
      auto xs = xb.topRows(b);
      auto hs = hid.topRows(b);
      auto zs = z.topRows(b);
      auto dhs = dh.topRows(b);
      hs.noalias() = xs * w1.transpose();
      hs.rowwise() += b1;
      hs = hs.cwiseMax(0.0f);
      zs.noalias() = hs * w2.transpose();
      zs.rowwise() += b2;
      for (Eigen::Index i = 0; i < b; ++i) {  // softmax - one-hot, over the batch mean
        const float mx = zs.row(i).maxCoeff();
        zs.row(i) = (zs.row(i).array() - mx).exp();
        zs.row(i) /= zs.row(i).sum();
        zs(i, static_cast<Eigen::Index>(y[order[static_cast<std::size_t>(start + i)]])) -= 1.0f;
      }
      zs /= static_cast<float>(b);
      Eigen::Map<row_matrix<Real>> gw1(grads[0].data(), h, d), gw2(grads[2].data(), k, h);
      Eigen::Map<Eigen::Matrix<Real, 1, Eigen::Dynamic>> gb1(grads[1].data(), h), gb2(grads[3].data(), k);
      gw2.noalias() = zs.transpose() * hs;
      gb2 = zs.colwise().sum();
      dhs.noalias() = zs * w2;
      dhs = dhs.cwiseProduct((hs.array() > 0.0f).template cast<Real>().matrix());
      gw1.noalias() = dhs.transpose() * xs;
      gb1 = dhs.colwise().sum();
      if (o.weight_decay > 0) {
        gw1 += static_cast<float>(o.weight_decay) * w1;
        gw2 += static_cast<float>(o.weight_decay) * w2;
      }
      ++step;
      const double c1 = 1.0 - std::pow(0.9, static_cast<double>(step));
      const double c2 = 1.0 - std::pow(0.999, static_cast<double>(step));
      for (std::size_t p = 0; p < 4; ++p) {
        auto& v = *params[p];
        for (std::size_t i = 0; i < v.size(); ++i) {
          const float g = grads[p][i];
          first[p][i] = 0.9f * first[p][i] + 0.1f * g;
          second[p][i] = 0.999f * second[p][i] + 0.001f * g * g;
          const double mhat = first[p][i] / c1, vhat = second[p][i] / c2;
          v[i] -= static_cast<float>(o.learning_rate * mhat / (std::sqrt(vhat) + 1e-8));
        }
      }
    }
    m.epochs = epoch;
    if (dev_x.rows() > 0) {
      const double loss = mlp_loss_accuracy(m, dev_x, dev_y).first;
      if (loss < best_loss) {
        best_loss = loss;
        best = m;
        best.best_epoch = epoch;
      }
    }
  }
  if (dev_x.rows() > 0 && best.best_epoch > 0) {
    best.epochs = m.epochs;
    return best;
  }
  m.best_epoch = m.epochs;
  return m;
}

/// Predicted classes of an MLP probe (the first largest score).
template <class T = void>
inline std::vector<std::int32_t> mlp_predict_rows(const mlp_probe& m, float_rows x) {
  const row_matrix<dependent_t<T, float>> z = mlp_scores<dependent_t<T, float>>(m, x);  // see dependent_t
  std::vector<std::int32_t> out(static_cast<std::size_t>(z.rows()));
  for (Eigen::Index i = 0; i < z.rows(); ++i) {
    Eigen::Index best = 0;
    for (Eigen::Index c = 1; c < z.cols(); ++c)
      if (z(i, c) > z(i, best)) best = c;
    out[static_cast<std::size_t>(i)] = static_cast<std::int32_t>(best);
  }
  return out;
}

template <class = void>
inline void check_mlp_options(const mlp_probe_options& o, std::string_view who) {
  require(o.hidden >= 1, "glassbox::{}: hidden must be >= 1, got {}", who, o.hidden);
  require(o.epochs >= 1, "glassbox::{}: epochs must be >= 1, got {}", who, o.epochs);
  require(o.batch_size >= 1, "glassbox::{}: batch_size must be >= 1, got {}", who, o.batch_size);
  require(o.learning_rate > 0 && std::isfinite(o.learning_rate),
          "glassbox::{}: learning_rate must be > 0 and finite, got {}", who, o.learning_rate);
  require(o.weight_decay >= 0 && std::isfinite(o.weight_decay),
          "glassbox::{}: weight_decay must be >= 0 and finite, got {}", who, o.weight_decay);
}

}  // namespace detail

/// Trains an MLP probe softmax(W2 relu(W1 x + b1) + b2) on rows x [N, d] with classes y, by Adam
/// on the mean cross-entropy in float; with dev rows, the epoch of lowest dev loss is kept. The
/// same seed gives the same probe. See mlp_probe_warning before reading its accuracy.
template <class = void>
inline mlp_probe fit_mlp_probe(const tensor2& x, std::span<const std::int32_t> y, std::size_t classes,
                               const mlp_probe_options& options = {}, const tensor2* dev_x = nullptr,
                               std::span<const std::int32_t> dev_y = {}) {
  constexpr std::string_view who = "fit_mlp_probe";
  detail::check_mlp_options(options, who);
  detail::require<shape_error>(x.shape(0) >= 1 && x.shape(1) >= 1,
                               "glassbox::{}: x must have at least one row and one column, got [{}, {}]", who,
                               x.shape(0), x.shape(1));
  detail::check_class_labels(y, x.shape(0), classes, who);
  detail::require_finite_rows(detail::rows_of(x), who, "x");
  if (dev_x != nullptr) {
    detail::require<shape_error>(dev_x->shape(1) == x.shape(1), "glassbox::{}: dev_x must have {} columns, got {}", who,
                                 x.shape(1), dev_x->shape(1));
    if (dev_x->shape(0) > 0) detail::check_class_labels(dev_y, dev_x->shape(0), classes, who);
  }
  static const float none = 0.0f;
  const detail::float_rows dev =
      dev_x != nullptr ? detail::rows_of(*dev_x) : detail::float_rows(&none, 0, static_cast<Eigen::Index>(x.shape(1)));
  return detail::fit_mlp(detail::rows_of(x), y, classes, options, dev, dev_y);
}

/// The predicted class of every row of x [N, d] under an MLP probe.
template <class = void>
inline std::vector<std::int32_t> predict_classes(const mlp_probe& probe, const tensor2& x) {
  detail::require<shape_error>(x.shape(1) == probe.features,
                               "glassbox::predict_classes: x must have {} columns, got {}", probe.features, x.shape(1));
  return detail::mlp_predict_rows(probe, detail::rows_of(x));
}

}  // namespace glassbox

// With GLASSBOX_EXTERN_PROBING defined, the MLP probe's training compiles in one other translation
// unit of the program (src/probing.cpp, CMake's object library glassbox_probing); docs/building.md,
// "Compile-time advice".
#ifdef GLASSBOX_EXTERN_PROBING
namespace glassbox::detail {
extern template mlp_probe fit_mlp<float>(float_rows, std::span<const std::int32_t>, std::size_t,
                                         const mlp_probe_options&, float_rows, std::span<const std::int32_t>);
}  // namespace glassbox::detail
#endif

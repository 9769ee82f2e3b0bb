// glassbox: the regressions of perturbation attribution, in double: weighted ridge and lasso with an
// intercept (LIME's surrogates, with scikit-learn's objectives), the weighted R^2 of a fit, and
// weighted least squares under the efficiency constraint sum(phi) = total (KernelSHAP).
//
// The solvers are templates on the scalar of the design matrix (double in every caller), so that their
// decompositions are compiled only in translation units that solve a regression, not in every one
// that includes an attribution header (docs/building.md, "Include cost").
#pragma once

#include <Eigen/QR>
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <span>
#include <string_view>
#include <vector>

#include "glassbox/core/error.hpp"
#include "glassbox/detail/eigen.hpp"

namespace glassbox::detail {

/// A linear surrogate y ~ intercept + x . coefficients and its weighted R^2 on the data it was fit to.
struct linear_fit {
  std::vector<double> coefficients;  ///< one per column of x
  double intercept = 0;              ///< the unpenalised intercept
  double r2 = 0;                     ///< weighted coefficient of determination
};

namespace regression {

/// Weighted column means (x) and mean (y), with weights w.
template <class Real = double>
inline void weighted_means(const row_matrix<Real>& x, std::span<const double> y, std::span<const double> w,
                           vector<dependent_t<Real, double>>& x_mean, double& y_mean) {
  const auto n = x.rows();
  double total = 0;
  x_mean = vector<dependent_t<Real, double>>::Zero(x.cols());
  y_mean = 0;
  for (Eigen::Index i = 0; i < n; ++i) {
    const double wi = w[static_cast<std::size_t>(i)];
    total += wi;
    x_mean += wi * x.row(i).transpose();
    y_mean += wi * y[static_cast<std::size_t>(i)];
  }
  x_mean /= total;
  y_mean /= total;
}

/// The weighted R^2, 1 - sum w (y - yhat)^2 / sum w (y - mean_w y)^2, as scikit-learn's score with
/// sample_weight; a constant y gives 1 for a perfect fit and 0 otherwise (scikit-learn's convention).
template <class Real = double>
inline double weighted_r2(const row_matrix<Real>& x, std::span<const double> y, std::span<const double> w,
                          const linear_fit& fit) {
  double total = 0, y_mean = 0;
  for (std::size_t i = 0; i < y.size(); ++i) {
    total += w[i];
    y_mean += w[i] * y[i];
  }
  y_mean /= total;
  double residual = 0, spread = 0;
  for (Eigen::Index i = 0; i < x.rows(); ++i) {
    double predicted = fit.intercept;
    for (Eigen::Index j = 0; j < x.cols(); ++j) predicted += x(i, j) * fit.coefficients[static_cast<std::size_t>(j)];
    const auto k = static_cast<std::size_t>(i);
    residual += w[k] * (y[k] - predicted) * (y[k] - predicted);
    spread += w[k] * (y[k] - y_mean) * (y[k] - y_mean);
  }
  if (spread == 0) return residual == 0 ? 1.0 : 0.0;
  return 1.0 - residual / spread;
}

}  // namespace regression

/// Weighted ridge regression with an unpenalised intercept (scikit-learn's Ridge with sample_weight):
/// minimises sum_i w_i (y_i - b - x_i . beta)^2 + alpha |beta|^2. Solved in closed form as the least
/// squares problem [sqrt(W) Xc; sqrt(alpha) I] beta = [sqrt(W) yc; 0] on weighted-centred data, by
/// a complete orthogonal decomposition, so alpha = 0 with a rank-deficient design gives the
/// minimum-norm least-squares solution.
template <class Real>
linear_fit weighted_ridge(const row_matrix<Real>& x, std::span<const double> y, std::span<const double> w,
                          double alpha) {
  const Eigen::Index n = x.rows(), k = x.cols();
  vector<dependent_t<Real, double>> x_mean;  // in double; dependent, so compiled where this is instantiated
  double y_mean = 0;
  regression::weighted_means(x, y, w, x_mean, y_mean);
  row_matrix<Real> a(n + k, k);
  vector<Real> rhs(n + k);
  for (Eigen::Index i = 0; i < n; ++i) {
    const double s = std::sqrt(w[static_cast<std::size_t>(i)]);
    a.row(i) = s * (x.row(i) - x_mean.transpose());
    rhs(i) = s * (y[static_cast<std::size_t>(i)] - y_mean);
  }
  a.bottomRows(k) = std::sqrt(alpha) * row_matrix<Real>::Identity(k, k);
  rhs.tail(k).setZero();
  const vector<Real> beta = a.completeOrthogonalDecomposition().solve(rhs);
  linear_fit fit;
  fit.coefficients.assign(beta.data(), beta.data() + k);
  fit.intercept = y_mean - x_mean.dot(beta);
  fit.r2 = regression::weighted_r2(x, y, w, fit);
  return fit;
}

/// Weighted lasso with an unpenalised intercept, with scikit-learn's objective (Lasso with
/// sample_weight, whose weights are rescaled to sum to the sample count):
///   (1 / (2 sum w)) sum_i w_i (y_i - b - x_i . beta)^2 + alpha |beta|_1,
/// solved by cyclic coordinate descent to a relative coefficient change below `tolerance`.
template <class Real>
linear_fit weighted_lasso(const row_matrix<Real>& x, std::span<const double> y, std::span<const double> w, double alpha,
                          std::string_view caller, std::size_t max_sweeps = 100000, double tolerance = 1e-12) {
  const Eigen::Index n = x.rows(), k = x.cols();
  vector<dependent_t<Real, double>> x_mean;  // in double; dependent, so compiled where this is instantiated
  double y_mean = 0;
  regression::weighted_means(x, y, w, x_mean, y_mean);
  double total = 0;
  for (double wi : w) total += wi;
  row_matrix<Real> xc(n, k);
  vector<Real> weight(n), residual(n);
  for (Eigen::Index i = 0; i < n; ++i) {
    xc.row(i) = x.row(i) - x_mean.transpose();
    weight(i) = w[static_cast<std::size_t>(i)] / total;
    residual(i) = y[static_cast<std::size_t>(i)] - y_mean;
  }
  vector<Real> curvature(k);  // (1 / sum w) sum_i w_i xc_ij^2
  for (Eigen::Index j = 0; j < k; ++j) curvature(j) = (weight.array() * xc.col(j).array().square()).sum();
  vector<Real> beta = vector<Real>::Zero(k);
  bool converged = false;
  for (std::size_t sweep = 0; sweep < max_sweeps && !converged; ++sweep) {
    double largest_change = 0, largest = 0;
    for (Eigen::Index j = 0; j < k; ++j) {
      if (curvature(j) <= 0) continue;  // a constant column: its coefficient stays 0
      const double rho = (weight.array() * xc.col(j).array() * residual.array()).sum() + curvature(j) * beta(j);
      const double shrunk = std::copysign(std::max(std::abs(rho) - alpha, 0.0), rho) / curvature(j);
      const double change = shrunk - beta(j);
      if (change != 0) {
        residual -= change * xc.col(j);
        beta(j) = shrunk;
      }
      largest_change = std::max(largest_change, std::abs(change));
      largest = std::max(largest, std::abs(shrunk));
    }
    converged = largest_change <= tolerance * std::max(1.0, largest);
  }
  require(converged, "glassbox::{}: the lasso surrogate did not converge in {} coordinate-descent sweeps", caller,
          max_sweeps);
  linear_fit fit;
  fit.coefficients.assign(beta.data(), beta.data() + k);
  fit.intercept = y_mean - x_mean.dot(beta);
  fit.r2 = regression::weighted_r2(x, y, w, fit);
  return fit;
}

/// Weighted least squares under the efficiency constraint:
///   minimise sum_j w_j (y_j - z_j . phi)^2 subject to sum_i phi_i = total,
/// solved exactly by eliminating the last coefficient (phi_n = total - sum_{i<n} phi_i, as the shap
/// library's KernelExplainer does) and a complete orthogonal decomposition of the reduced weighted
/// design (the minimum-norm solution when the samples do not determine every coefficient).
template <class Real>
std::vector<double> constrained_least_squares(const row_matrix<Real>& z, std::span<const double> y,
                                              std::span<const double> w, double total) {
  const Eigen::Index n = z.rows(), k = z.cols();
  std::vector<double> phi(static_cast<std::size_t>(k), 0.0);
  if (k == 1) {
    phi[0] = total;
    return phi;
  }
  row_matrix<Real> a(n, k - 1);
  vector<Real> rhs(n);
  for (Eigen::Index j = 0; j < n; ++j) {
    const double s = std::sqrt(w[static_cast<std::size_t>(j)]);
    const double last = z(j, k - 1);
    a.row(j) = s * (z.row(j).head(k - 1).array() - last).matrix();
    rhs(j) = s * (y[static_cast<std::size_t>(j)] - last * total);
  }
  vector<Real> reduced = vector<Real>::Zero(k - 1);
  if (n > 0) reduced = a.completeOrthogonalDecomposition().solve(rhs);
  double sum = 0;
  for (Eigen::Index i = 0; i < k - 1; ++i) {
    phi[static_cast<std::size_t>(i)] = reduced(i);
    sum += reduced(i);
  }
  phi[static_cast<std::size_t>(k - 1)] = total - sum;
  return phi;
}

}  // namespace glassbox::detail

// glassbox: the linear probes. L2-regularised logistic regression with exactly the objective of
// scikit-learn's LogisticRegression(penalty="l2", C=C, fit_intercept=True, solver="lbfgs"), binary
// (one weight vector) for two classes and multinomial for more, solved by a preconditioned L-BFGS
// in double; and ridge regression with exactly the objective of scikit-learn's Ridge(alpha), in
// closed form. docs/probing.md has the formulas and the defaults.
#pragma once

#include <Eigen/Cholesky>
#include <Eigen/Core>
#include <Eigen/QR>
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "glassbox/core/error.hpp"
#include "glassbox/core/types.hpp"
#include "glassbox/detail/eigen.hpp"
#include "glassbox/probing/linear_weights.hpp"

namespace glassbox {

/// Options of L2-regularised logistic regression. The defaults are scikit-learn's (1.2, lbfgs).
struct logistic_regression_options {
  double C = 1.0;  ///< inverse regularisation strength: minimises C * sum_i loss_i + ||W||^2 / 2 (> 0)
  double tol =
      1e-4;  ///< converged when max |gradient| of sum_i loss_i + ||W||^2 / (2 C) is <= tol (scikit-learn's tol)
  double ftol = 2.220446049250313e-09;  ///< converged when the relative decrease of the objective is <= ftol (scipy's)
  std::size_t max_iterations = 100;     ///< L-BFGS iterations (scikit-learn's max_iter)
  std::size_t history = 10;             ///< L-BFGS correction pairs (scipy's maxcor)
  std::size_t max_line_search = 20;     ///< objective evaluations per line search (scipy's maxls)
  bool fit_intercept = true;            ///< an unpenalised intercept per output
  bool precondition = true;             ///< precondition with c X^T X + I / C (the same optimum in fewer iterations)
};

/// A fitted logistic regression and how the solver ended.
struct logistic_regression_result {
  std::size_t classes = 0;      ///< K >= 2; classes are 0 .. K - 1 (binary: weight scores class 1)
  linear_weights model;         ///< coef_ and intercept_
  std::size_t iterations = 0;   ///< L-BFGS iterations (scikit-learn's n_iter_)
  std::size_t evaluations = 0;  ///< objective and gradient evaluations
  bool converged = false;       ///< stopped by tol or ftol (not by max_iterations or a failed line search)
  std::string stop_reason;      ///< "gradient", "objective", "max_iterations" or "line_search"
  double objective = 0;         ///< C * sum_i loss_i + ||W||^2 / 2 at the solution
  double gradient_max = 0;      ///< max |gradient| of sum_i loss_i + ||W||^2 / (2 C) at the solution
};

/// Options of ridge regression (scikit-learn's Ridge).
struct ridge_options {
  double alpha = 1.0;         ///< minimises ||y - X w - b||^2 + alpha ||w||^2 (>= 0; scikit-learn's default 1)
  bool fit_intercept = true;  ///< an unpenalised intercept b
};

namespace detail {

/// A read-only row-major float matrix view: the rows a probe is fit to.
using float_rows = Eigen::Map<const row_matrix<float>>;
/// A strided view of the weight rows of a parameter vector laid out [outputs, stride].
template <class Real = double>
using weight_view = Eigen::Map<row_matrix<Real>, 0, Eigen::OuterStride<>>;
/// A read-only strided view of the weight rows of a parameter vector.
template <class Real = double>
using const_weight_view = Eigen::Map<const row_matrix<Real>, 0, Eigen::OuterStride<>>;

/// A float_rows view of a whole [N, d] tensor.
template <class = void>
inline float_rows rows_of(const tensor2& x) {
  return {x.data(), static_cast<Eigen::Index>(x.shape(0)), static_cast<Eigen::Index>(x.shape(1))};
}

/// Rows per block of the fused passes: a block converted to double stays in a core's L2 cache.
template <class = void>
inline Eigen::Index block_rows(Eigen::Index d) {
  return std::clamp<Eigen::Index>(Eigen::Index{65536} / std::max<Eigen::Index>(d, 1), 64, 4096);
}

/// Throws naming `who` and `what` if x holds a NaN or Inf.
template <class T = void>
inline void require_finite_rows(float_rows rows, std::string_view who, std::string_view what) {
  const auto& x = depend<T>(rows);  // compiled where this is instantiated (see dependent_t)
  for (Eigen::Index i = 0; i < x.rows(); ++i)
    for (Eigen::Index j = 0; j < x.cols(); ++j)
      if (!std::isfinite(x(i, j)))
        fail("glassbox::{}: {} must be finite, got {} at row {}, column {}", who, what, x(i, j), i, j);
}

/// log(1 + exp(z)) without overflow.
template <class = void>
inline double softplus(double z) { return z > 0 ? z + std::log1p(std::exp(-z)) : std::log1p(std::exp(z)); }

/// 1 / (1 + exp(-z)) without overflow.
template <class = void>
inline double sigmoid(double z) {
  if (z >= 0) return 1.0 / (1.0 + std::exp(-z));
  const double e = std::exp(z);
  return e / (1.0 + e);
}

/// The scikit-learn logistic objective of one data set, f(theta) = sum_i loss_i + ||W||^2 / (2C),
/// with theta = [W | b] laid out [outputs, d + intercept] row-major. One fused pass over the rows
/// per evaluation: each block of rows is converted to double once, then scored and back-propagated
/// while it is in cache (the products run in double). A class template (Real = double, the only
/// type used) so that its products and Cholesky factorisations are compiled only where it is used
/// and not in every translation unit that includes this header; write logistic_objective.
template <class Real = double>
class basic_logistic_objective {
 public:
  using real_type = Real;  ///< the type of the parameters and of the products

  basic_logistic_objective(dependent_t<Real, float_rows> x, std::span<const std::int32_t> y, std::size_t classes,
                           double C, bool intercept)
      : x_(x),
        y_(y),
        classes_(static_cast<Eigen::Index>(classes)),
        outputs_(classes == 2 ? 1 : static_cast<Eigen::Index>(classes)),
        d_(x.cols()),
        stride_(x.cols() + (intercept ? 1 : 0)),
        inv_c_(1.0 / C),
        intercept_(intercept) {
    const Eigen::Index b = std::min(block_rows(d_), std::max<Eigen::Index>(x_.rows(), 1));
    block_.resize(b, d_);
    scores_.resize(b, outputs_);
  }

  /// Parameters: outputs * (d + intercept).
  Eigen::Index size() const { return outputs_ * stride_; }
  /// Rows of W (1 for binary, K for multinomial).
  Eigen::Index outputs() const { return outputs_; }
  /// Parameters per output row: d + intercept.
  Eigen::Index stride() const { return stride_; }
  /// Features d.
  Eigen::Index features() const { return d_; }
  /// Whether the last parameter of each row is an intercept.
  bool intercept() const { return intercept_; }
  /// 1 / C.
  double inverse_c() const { return inv_c_; }

  /// f(theta), writing its gradient to `grad` (resized).
  double operator()(const vector<Real>& theta, vector<Real>& grad) {
    grad.setZero(size());
    const const_weight_view<Real> w(theta.data(), outputs_, d_, Eigen::OuterStride<>(stride_));
    weight_view<Real> gw(grad.data(), outputs_, d_, Eigen::OuterStride<>(stride_));
    double loss = 0;
    const Eigen::Index n = x_.rows();
    for (Eigen::Index start = 0; start < n; start += block_.rows()) {
      const Eigen::Index b = std::min<Eigen::Index>(block_.rows(), n - start);
      auto xb = block_.topRows(b);
      xb = x_.middleRows(start, b).template cast<Real>();
      auto z = scores_.topRows(b);
      z.noalias() = xb * w.transpose();
      if (intercept_)
        for (Eigen::Index k = 0; k < outputs_; ++k) z.col(k).array() += theta[k * stride_ + d_];
      // Loss, and z becomes the residual dLoss / dz.
      if (outputs_ == 1) {
        for (Eigen::Index i = 0; i < b; ++i) {
          const double s = z(i, 0);
          const double yi = y_[static_cast<std::size_t>(start + i)] == 1 ? 1.0 : 0.0;
          loss += softplus(s) - yi * s;
          z(i, 0) = sigmoid(s) - yi;
        }
      } else {
        for (Eigen::Index i = 0; i < b; ++i) {
          auto row = z.row(i);
          const double m = row.maxCoeff();
          double sum = 0;
          for (Eigen::Index k = 0; k < outputs_; ++k) sum += std::exp(row(k) - m);
          const double lse = m + std::log(sum);
          const auto yi = static_cast<Eigen::Index>(y_[static_cast<std::size_t>(start + i)]);
          loss += lse - row(yi);
          for (Eigen::Index k = 0; k < outputs_; ++k) row(k) = std::exp(row(k) - lse);
          row(yi) -= 1.0;
        }
      }
      gw.noalias() += z.transpose() * xb;
      if (intercept_)
        for (Eigen::Index k = 0; k < outputs_; ++k) grad[k * stride_ + d_] += z.col(k).sum();
    }
    double penalty = 0;
    for (Eigen::Index k = 0; k < outputs_; ++k) {
      penalty += w.row(k).squaredNorm();
      gw.row(k) += inv_c_ * w.row(k);
    }
    return loss + 0.5 * inv_c_ * penalty;
  }

  /// Rows the preconditioner reads: every row, or for large sets max(8 d, 4e9 / d^2) evenly spaced ones.
  Eigen::Index preconditioner_rows() const {
    const double budget = 4e9 / std::max(1.0, static_cast<double>(d_) * static_cast<double>(d_));
    return std::min<Eigen::Index>(x_.rows(), std::max<Eigen::Index>(8 * d_, static_cast<Eigen::Index>(budget)));
  }

  /// The preconditioner of each output row k: the diagonal block of the Hessian of the objective,
  /// Xa^T diag(p_k (1 - p_k)) Xa + diag(1/C, ..., 1/C, 0) with Xa = [X, 1], at theta (binary: the
  /// whole Hessian); without theta, at theta = 0, where every block is the same and one is returned.
  /// Large sets use preconditioner_rows() evenly spaced rows scaled to the whole set. Returns false
  /// if a block is not positive definite.
  bool preconditioner(std::vector<Eigen::LLT<row_matrix<Real>>>& llt, const vector<Real>* theta = nullptr) const {
    const Eigen::Index n = x_.rows(), m = preconditioner_rows();
    const Eigen::Index blocks = theta == nullptr ? 1 : outputs_;
    std::vector<row_matrix<Real>> gram(static_cast<std::size_t>(blocks), row_matrix<Real>::Zero(stride_, stride_));
    std::vector<double> weight_sum(static_cast<std::size_t>(blocks), 0.0);
    row_matrix<Real> block(std::min<Eigen::Index>(block_.rows(), m), d_), scaled(block.rows(), d_);
    row_matrix<Real> w(block.rows(), blocks);
    row_matrix<Real> z(block.rows(), outputs_);
    Eigen::Index filled = 0;
    const auto flush = [&] {
      if (filled == 0) return;
      auto xb = block.topRows(filled);
      auto wb = w.topRows(filled);
      if (theta != nullptr) {
        const const_weight_view<Real> wv(theta->data(), outputs_, d_, Eigen::OuterStride<>(stride_));
        auto zb = z.topRows(filled);
        zb.noalias() = xb * wv.transpose();
        if (intercept_)
          for (Eigen::Index k = 0; k < outputs_; ++k) zb.col(k).array() += (*theta)[k * stride_ + d_];
        for (Eigen::Index i = 0; i < filled; ++i) {
          if (outputs_ == 1) {
            const double p = sigmoid(zb(i, 0));
            wb(i, 0) = p * (1 - p);
          } else {
            const double mx = zb.row(i).maxCoeff();
            double sum = 0;
            for (Eigen::Index k = 0; k < outputs_; ++k) sum += std::exp(zb(i, k) - mx);
            for (Eigen::Index k = 0; k < outputs_; ++k) {
              const double p = std::exp(zb(i, k) - mx) / sum;
              wb(i, k) = p * (1 - p);
            }
          }
        }
      } else {
        const double k = static_cast<double>(classes_);
        wb.setConstant(outputs_ == 1 ? 0.25 : (k - 1) / (k * k));
      }
      for (Eigen::Index b = 0; b < blocks; ++b) {
        auto& g = gram[static_cast<std::size_t>(b)];
        weight_sum[static_cast<std::size_t>(b)] += wb.col(b).sum();
        if (intercept_) g.row(d_).head(d_) += wb.col(b).transpose() * xb;
        auto sb = scaled.topRows(filled);
        sb = wb.col(b).cwiseSqrt().asDiagonal() * xb;
        g.topLeftCorner(d_, d_).template selfadjointView<Eigen::Lower>().rankUpdate(sb.transpose());
      }
      filled = 0;
    };
    for (Eigen::Index r = 0; r < m; ++r) {
      // Row floor(r * n / m): evenly spaced, and every row when m = n.
      const auto i =
          static_cast<Eigen::Index>((static_cast<double>(r) * static_cast<double>(n)) / static_cast<double>(m));
      block.row(filled++) = x_.row(std::min(i, n - 1)).template cast<Real>();
      if (filled == block.rows()) flush();
    }
    flush();
    llt.resize(static_cast<std::size_t>(blocks));
    for (Eigen::Index b = 0; b < blocks; ++b) {
      auto& g = gram[static_cast<std::size_t>(b)];
      if (intercept_) g(d_, d_) = weight_sum[static_cast<std::size_t>(b)];
      g.template triangularView<Eigen::StrictlyUpper>() = g.transpose();
      g *= static_cast<double>(n) / static_cast<double>(std::max<Eigen::Index>(m, 1));
      g.diagonal().head(d_).array() += inv_c_;
      if (intercept_) g(d_, d_) += 1e-12 * (1.0 + g(d_, d_));  // keeps a saturated intercept invertible
      llt[static_cast<std::size_t>(b)].compute(g);
      if (llt[static_cast<std::size_t>(b)].info() != Eigen::Success) return false;
    }
    return true;
  }

  /// Multiply-adds of one objective evaluation (2 products of the rows with the weights).
  double evaluation_cost() const {
    return 4.0 * static_cast<double>(x_.rows()) * static_cast<double>(d_) * static_cast<double>(outputs_);
  }
  /// Multiply-adds of one preconditioner refresh at a nonzero theta.
  double refresh_cost() const {
    return static_cast<double>(preconditioner_rows()) * static_cast<double>(d_) *
           (static_cast<double>(d_) * static_cast<double>(outputs_) + 2.0 * static_cast<double>(outputs_));
  }

 private:
  dependent_t<Real, float_rows> x_;  // a type that depends on Real: compiled where this is instantiated
  std::span<const std::int32_t> y_;
  Eigen::Index classes_, outputs_, d_, stride_;
  double inv_c_;
  bool intercept_;
  row_matrix<Real> block_, scores_;
};

/// The logistic objective (basic_logistic_objective's only instantiation).
using logistic_objective = basic_logistic_objective<>;

/// The result of a line search: the accepted step and the objective there.
struct line_search_step {
  bool ok = false;
  double step = 0, value = 0;
};

/// L-BFGS (Nocedal 1980) with H0 = gamma M^-1 per output row (M the preconditioner, identity if
/// none) and a strong-Wolfe line search (c1 = 1e-4, c2 = 0.9; bracketing and cubic zoom, Nocedal &
/// Wright 2006, algorithms 3.5-3.6). Stops like scipy's L-BFGS-B: max |g| <= tol, or relative
/// decrease <= ftol, or max_iterations. A class template on the objective only so that it is
/// compiled where it is used; write lbfgs_solver.
template <class Objective = logistic_objective>
class basic_lbfgs_solver {
  using matrix = row_matrix<typename Objective::real_type>;
  using vec = vector<typename Objective::real_type>;

 public:
  basic_lbfgs_solver(Objective& f, const logistic_regression_options& o) : f_(f), o_(o) {
    if (o.precondition) has_m_ = f.preconditioner(m_);
  }

  /// Minimises from theta (updated in place).
  logistic_regression_result run(vec& theta) {
    logistic_regression_result r;
    vec g, g_new, d, theta_new;
    double value = eval(theta, g);
    r.stop_reason = "max_iterations";
    std::size_t iterations = 0;
    bool first = true;
    while (true) {
      if (g.cwiseAbs().maxCoeff() <= o_.tol) {
        r.converged = true;
        r.stop_reason = "gradient";
        break;
      }
      if (iterations >= o_.max_iterations) break;
      direction(g, d);
      double dg = g.dot(d);
      if (!(dg < 0)) {  // not a descent direction: forget the history
        s_.clear();
        y_.clear();
        rho_.clear();
        direction(g, d);
        dg = g.dot(d);
      }
      double step0 = 1.0;
      if (first && !has_m_) step0 = 1.0 / std::max(d.norm(), 1e-300);  // scipy's first step
      line_search_step ls = line_search(theta, value, g, d, dg, step0, theta_new, g_new);
      if (!ls.ok && !s_.empty()) {  // retry once along the (preconditioned) steepest descent
        s_.clear();
        y_.clear();
        rho_.clear();
        direction(g, d);
        dg = g.dot(d);
        ls = line_search(theta, value, g, d, dg, has_m_ ? 1.0 : 1.0 / std::max(d.norm(), 1e-300), theta_new, g_new);
      }
      if (!ls.ok) {
        r.stop_reason = "line_search";
        break;
      }
      first = false;
      ++iterations;
      // Refresh the preconditioner at the current iterate at iterations 4, 8, 16, ... when the
      // evaluations since the last refresh cost at least as much as a refresh: the curvature of
      // the log-loss falls as predictions saturate, and the metric is then again close to the Hessian.
      if (o_.precondition && iterations >= 4 && (iterations & (iterations - 1)) == 0 &&
          static_cast<double>(evaluations_ - refreshed_at_) * f_.evaluation_cost() >= f_.refresh_cost()) {
        std::vector<Eigen::LLT<matrix>> refreshed;
        if (f_.preconditioner(refreshed, &theta_new)) {
          m_ = std::move(refreshed);
          has_m_ = true;
          refreshed_at_ = evaluations_;
        }
      }
      vec s = theta_new - theta;
      vec yv = g_new - g;
      const double sy = s.dot(yv);
      if (sy > 1e-12 * yv.squaredNorm()) {
        if (s_.size() == std::max<std::size_t>(o_.history, 1)) {
          s_.pop_front();
          y_.pop_front();
          rho_.pop_front();
        }
        s_.push_back(std::move(s));
        y_.push_back(std::move(yv));
        rho_.push_back(1.0 / sy);
      }
      const double previous = value;
      theta.swap(theta_new);
      g.swap(g_new);
      value = ls.value;
      if ((previous - value) / std::max({std::abs(previous), std::abs(value), 1.0}) <= o_.ftol) {
        r.converged = true;  // as scipy: a relative decrease below ftol is convergence
        r.stop_reason = g.cwiseAbs().maxCoeff() <= o_.tol ? "gradient" : "objective";
        break;
      }
    }
    r.iterations = iterations;
    r.evaluations = evaluations_;
    r.objective = value / f_.inverse_c();
    r.gradient_max = g.size() == 0 ? 0.0 : g.cwiseAbs().maxCoeff();
    return r;
  }

 private:
  double eval(const vec& theta, vec& g) {
    ++evaluations_;
    return f_(theta, g);
  }

  // q <- M^-1 q, row by row.
  void apply_m_inverse(vec& q) const {
    if (!has_m_) return;
    for (Eigen::Index k = 0; k < f_.outputs(); ++k) {
      Eigen::Map<vec> seg(q.data() + k * f_.stride(), f_.stride());
      m_[m_.size() == 1 ? 0 : static_cast<std::size_t>(k)].solveInPlace(seg);
    }
  }

  // d = -H g by the two-loop recursion.
  void direction(const vec& g, vec& d) {
    d = -g;
    const std::size_t k = s_.size();
    std::vector<double> alpha(k);
    for (std::size_t i = k; i-- > 0;) {
      alpha[i] = rho_[i] * s_[i].dot(d);
      d -= alpha[i] * y_[i];
    }
    apply_m_inverse(d);
    if (k > 0) {
      vec my = y_.back();
      apply_m_inverse(my);
      const double gamma = s_.back().dot(y_.back()) / std::max(y_.back().dot(my), 1e-300);
      d *= gamma;
    }
    for (std::size_t i = 0; i < k; ++i) {
      const double beta = rho_[i] * y_[i].dot(d);
      d += (alpha[i] - beta) * s_[i];
    }
  }

  // Near the optimum the objective's rounding (about 1e-12 of its value for sums of many losses)
  // hides the decrease Armijo asks for, while the directional derivative is still exact enough:
  // accept a step whose value did not rise beyond rounding and whose derivative satisfies the
  // approximate Wolfe conditions of Hager & Zhang (2005), 0.9 dg0 <= dg <= -0.8 dg0.
  static bool approximately_wolfe(double f0, double dg0, double fa, double da) {
    return fa <= f0 + 1e-10 * std::max(std::abs(f0), 1.0) && da >= 0.9 * dg0 && da <= -0.8 * dg0;
  }

  // The minimiser of the cubic through (a, fa, da) and (b, fb, db), or the midpoint if it has none.
  static double cubic_minimiser(double a, double fa, double da, double b, double fb, double db) {
    const double d1 = da + db - 3 * (fa - fb) / (a - b);
    const double disc = d1 * d1 - da * db;
    if (disc < 0) return 0.5 * (a + b);
    const double d2 = std::copysign(std::sqrt(disc), b - a);
    const double t = b - (b - a) * (db + d2 - d1) / (db - da + 2 * d2);
    return std::isfinite(t) ? t : 0.5 * (a + b);
  }

  line_search_step line_search(const vec& theta, double f0, const vec& g0, const vec& d, double dg0, double step,
                               vec& theta_new, vec& g_new) {
    constexpr double c1 = 1e-4, c2 = 0.9;
    std::size_t budget = std::max<std::size_t>(o_.max_line_search, 1);
    (void)g0;
    const auto try_step = [&](double a, double& fa, double& da) {
      theta_new = theta + a * d;
      fa = eval(theta_new, g_new);
      da = g_new.dot(d);
      --budget;
    };
    // Best point with sufficient decrease, kept in case the budget runs out.
    double best_step = 0, best_value = f0;
    vec best_theta, best_g;
    const auto remember = [&](double a, double fa) {
      if (std::isfinite(fa) && fa <= f0 + c1 * a * dg0 && fa < best_value) {
        best_step = a;
        best_value = fa;
        best_theta = theta_new;
        best_g = g_new;
      }
    };
    const auto give_best = [&]() -> line_search_step {
      if (best_step > 0) {
        theta_new = best_theta;
        g_new = best_g;
        return {true, best_step, best_value};
      }
      return {};
    };

    double a_prev = 0, f_prev = f0, d_prev = dg0;
    double a = step;
    for (std::size_t i = 0; budget > 0; ++i) {
      double fa = 0, da = 0;
      try_step(a, fa, da);
      if (!std::isfinite(fa)) {  // overflow: step back
        a = 0.5 * (a_prev + a);
        continue;
      }
      remember(a, fa);
      if (approximately_wolfe(f0, dg0, fa, da)) return {true, a, fa};
      if (fa > f0 + c1 * a * dg0 || (i > 0 && fa >= f_prev))
        return zoom(theta, f0, dg0, d, a_prev, f_prev, d_prev, a, fa, da, budget, try_step, remember, give_best);
      if (std::abs(da) <= -c2 * dg0) return {true, a, fa};
      if (da >= 0)
        return zoom(theta, f0, dg0, d, a, fa, da, a_prev, f_prev, d_prev, budget, try_step, remember, give_best);
      const double next = std::min(std::max(cubic_minimiser(a_prev, f_prev, d_prev, a, fa, da), 1.1 * a), 4.0 * a);
      a_prev = a;
      f_prev = fa;
      d_prev = da;
      a = next;
    }
    return give_best();
  }

  template <class Try, class Remember, class GiveBest>
  line_search_step zoom(const vec& /*theta*/, double f0, double dg0, const vec& /*d*/, double lo, double f_lo,
                        double d_lo, double hi, double f_hi, double d_hi, std::size_t& budget, Try& try_step,
                        Remember& remember, GiveBest& give_best) {
    constexpr double c1 = 1e-4, c2 = 0.9;
    while (budget > 0) {
      const double width = hi - lo;
      if (std::abs(width) <= 1e-14 * std::max(std::abs(lo), std::abs(hi))) break;
      double a = cubic_minimiser(lo, f_lo, d_lo, hi, f_hi, d_hi);
      const double low = std::min(lo, hi), high = std::max(lo, hi), margin = 0.1 * (high - low);
      if (!(a > low + margin && a < high - margin)) a = 0.5 * (lo + hi);
      double fa = 0, da = 0;
      try_step(a, fa, da);
      remember(a, fa);
      if (std::isfinite(fa) && approximately_wolfe(f0, dg0, fa, da)) return {true, a, fa};
      if (!std::isfinite(fa) || fa > f0 + c1 * a * dg0 || fa >= f_lo) {
        hi = a;
        f_hi = std::isfinite(fa) ? fa : std::numeric_limits<double>::max();
        d_hi = std::isfinite(da) ? da : 0.0;
      } else {
        if (std::abs(da) <= -c2 * dg0) return {true, a, fa};
        if (da * (hi - lo) >= 0) {
          hi = lo;
          f_hi = f_lo;
          d_hi = d_lo;
        }
        lo = a;
        f_lo = fa;
        d_lo = da;
      }
    }
    return give_best();
  }

  Objective& f_;
  const logistic_regression_options& o_;
  std::vector<Eigen::LLT<matrix>> m_;
  bool has_m_ = false;
  std::size_t refreshed_at_ = 0;
  std::deque<vec> s_, y_;
  std::deque<double> rho_;
  std::size_t evaluations_ = 0;
};

/// The L-BFGS solver of the logistic objective.
using lbfgs_solver = basic_lbfgs_solver<>;

/// Checks the options of a logistic regression; `who` names the caller.
template <class = void>
inline void check_logistic_options(const logistic_regression_options& o, std::string_view who) {
  require(o.C > 0 && std::isfinite(o.C), "glassbox::{}: C must be > 0 and finite, got {}", who, o.C);
  require(o.tol >= 0 && std::isfinite(o.tol), "glassbox::{}: tol must be >= 0 and finite, got {}", who, o.tol);
  require(o.ftol >= 0 && std::isfinite(o.ftol), "glassbox::{}: ftol must be >= 0 and finite, got {}", who, o.ftol);
  require(o.max_iterations >= 1, "glassbox::{}: max_iterations must be >= 1, got {}", who, o.max_iterations);
  require(o.history >= 1, "glassbox::{}: history must be >= 1, got {}", who, o.history);
  require(o.max_line_search >= 1, "glassbox::{}: max_line_search must be >= 1, got {}", who, o.max_line_search);
}

/// Checks labels against a class count; `who` names the caller.
template <class = void>
inline void check_class_labels(std::span<const std::int32_t> y, std::size_t rows, std::size_t classes,
                               std::string_view who) {
  require<shape_error>(y.size() == rows, "glassbox::{}: y must hold one label per row ({}), got {}", who, rows,
                       y.size());
  require(classes >= 2, "glassbox::{}: classes must be >= 2, got {}", who, classes);
  for (std::size_t i = 0; i < y.size(); ++i)
    require(y[i] >= 0 && static_cast<std::size_t>(y[i]) < classes,
            "glassbox::{}: labels must be in [0, {}), got {} at row {}", who, classes, y[i], i);
}

/// Fits logistic regression to a row view; `start` (optional) warm-starts from earlier weights.
template <class T = void>
logistic_regression_result fit_logistic(float_rows x, std::span<const std::int32_t> y, std::size_t classes,
                                        const logistic_regression_options& o, const linear_weights* start = nullptr) {
  using real = dependent_t<T, double>;  // so that the solver compiles where this is instantiated
  basic_logistic_objective<real> f(x, y, classes, o.C, o.fit_intercept);
  vector<real> theta = vector<real>::Zero(f.size());
  if (start != nullptr && start->features == static_cast<std::size_t>(f.features()) &&
      start->outputs == static_cast<std::size_t>(f.outputs())) {
    for (Eigen::Index k = 0; k < f.outputs(); ++k) {
      for (Eigen::Index j = 0; j < f.features(); ++j)
        theta[k * f.stride() + j] = start->weight[static_cast<std::size_t>(k * f.features() + j)];
      if (f.intercept()) theta[k * f.stride() + f.features()] = start->bias[static_cast<std::size_t>(k)];
    }
  }
  basic_lbfgs_solver<basic_logistic_objective<real>> solver(f, o);
  logistic_regression_result r = solver.run(theta);
  r.classes = classes;
  r.model.outputs = static_cast<std::size_t>(f.outputs());
  r.model.features = static_cast<std::size_t>(f.features());
  r.model.weight.resize(r.model.outputs * r.model.features);
  r.model.bias.assign(r.model.outputs, 0.0);
  for (Eigen::Index k = 0; k < f.outputs(); ++k) {
    for (Eigen::Index j = 0; j < f.features(); ++j)
      r.model.weight[static_cast<std::size_t>(k * f.features() + j)] = theta[k * f.stride() + j];
    if (f.intercept()) r.model.bias[static_cast<std::size_t>(k)] = theta[k * f.stride() + f.features()];
  }
  // The multinomial intercepts are identified up to a common shift; report them centred, which is
  // where L-BFGS from zero stays (every gradient's intercepts sum to zero).
  if (f.outputs() > 1 && f.intercept()) {
    double mean = 0;
    for (const double b : r.model.bias) mean += b;
    mean /= static_cast<double>(r.model.bias.size());
    for (double& b : r.model.bias) b -= mean;
  }
  return r;
}

/// Scores x W^T + b, [N, outputs] in double (Real), computed block by block.
template <class Real = double>
inline row_matrix<Real> decision_scores(const linear_weights& m, float_rows rows) {
  const auto& x = depend<Real>(rows);  // compiled where this is instantiated (see dependent_t)
  const auto d = static_cast<Eigen::Index>(m.features), k = static_cast<Eigen::Index>(m.outputs);
  const Eigen::Map<const row_matrix<Real>> w(m.weight.data(), k, d);
  row_matrix<Real> out(x.rows(), k);
  row_matrix<Real> block(std::min(block_rows(d), std::max<Eigen::Index>(x.rows(), 1)), d);
  for (Eigen::Index start = 0; start < x.rows(); start += block.rows()) {
    const Eigen::Index b = std::min<Eigen::Index>(block.rows(), x.rows() - start);
    block.topRows(b) = x.middleRows(start, b).template cast<Real>();
    out.middleRows(start, b).noalias() = block.topRows(b) * w.transpose();
  }
  for (Eigen::Index j = 0; j < k; ++j) out.col(j).array() += m.bias[static_cast<std::size_t>(j)];
  return out;
}

/// Checks that a linear model fits rows of width d; `who` names the caller.
template <class = void>
inline void check_weights(const linear_weights& m, std::size_t d, std::string_view who) {
  require<shape_error>(m.features == d, "glassbox::{}: x must have {} columns (the model's features), got {}", who,
                       m.features, d);
  require<shape_error>(m.weight.size() == m.outputs * m.features && m.bias.size() == m.outputs && m.outputs >= 1,
                       "glassbox::{}: the model must hold outputs x features weights and outputs biases, got {} and {} "
                       "for {} x {}",
                       who, m.weight.size(), m.bias.size(), m.outputs, m.features);
}

/// The predicted class of each row: score > 0 (binary, class 1) or the first largest score.
template <class T = void>
inline std::vector<std::int32_t> predict_rows(const linear_weights& m, float_rows x) {
  const row_matrix<dependent_t<T, double>> s = decision_scores<dependent_t<T, double>>(m, x);
  std::vector<std::int32_t> out(static_cast<std::size_t>(s.rows()));
  for (Eigen::Index i = 0; i < s.rows(); ++i) {
    if (s.cols() == 1) {
      out[static_cast<std::size_t>(i)] = s(i, 0) > 0 ? 1 : 0;
    } else {
      Eigen::Index best = 0;
      for (Eigen::Index k = 1; k < s.cols(); ++k)
        if (s(i, k) > s(i, best)) best = k;
      out[static_cast<std::size_t>(i)] = static_cast<std::int32_t>(best);
    }
  }
  return out;
}

/// The natural-log probability of each row's class y[i] under a logistic model.
template <class T = void>
inline std::vector<double> log_probability_rows(const linear_weights& m, float_rows x,
                                                std::span<const std::int32_t> y) {
  const row_matrix<dependent_t<T, double>> s = decision_scores<dependent_t<T, double>>(m, x);
  std::vector<double> out(static_cast<std::size_t>(s.rows()));
  for (Eigen::Index i = 0; i < s.rows(); ++i) {
    const auto yi = static_cast<Eigen::Index>(y[static_cast<std::size_t>(i)]);
    if (s.cols() == 1) {
      out[static_cast<std::size_t>(i)] = -softplus(yi == 1 ? -s(i, 0) : s(i, 0));
    } else {
      const double mx = s.row(i).maxCoeff();
      double sum = 0;
      for (Eigen::Index k = 0; k < s.cols(); ++k) sum += std::exp(s(i, k) - mx);
      out[static_cast<std::size_t>(i)] = s(i, yi) - mx - std::log(sum);
    }
  }
  return out;
}

/// Ridge regression on a row view (closed form in double (Real), centred data).
template <class Real = double>
linear_weights fit_ridge(float_rows rows, std::span<const double> y, const ridge_options& o) {
  const auto& x = depend<Real>(rows);  // compiled where this is instantiated (see dependent_t)
  const Eigen::Index n = x.rows(), d = x.cols();
  vector<Real> mean_x = vector<Real>::Zero(d);
  double mean_y = 0;
  if (o.fit_intercept) {
    for (Eigen::Index i = 0; i < n; ++i) mean_x += x.row(i).template cast<Real>().transpose();
    mean_x /= static_cast<double>(n);
    for (const double v : y) mean_y += v;
    mean_y /= static_cast<double>(n);
  }
  row_matrix<Real> gram = row_matrix<Real>::Zero(d, d);
  vector<Real> xty = vector<Real>::Zero(d);
  row_matrix<Real> block(std::min(block_rows(d), std::max<Eigen::Index>(n, 1)), d);
  vector<Real> yb(block.rows());
  for (Eigen::Index start = 0; start < n; start += block.rows()) {
    const Eigen::Index b = std::min<Eigen::Index>(block.rows(), n - start);
    auto xb = block.topRows(b);
    xb = x.middleRows(start, b).template cast<Real>();
    xb.rowwise() -= mean_x.transpose();
    for (Eigen::Index i = 0; i < b; ++i) yb[i] = y[static_cast<std::size_t>(start + i)] - mean_y;
    gram.template selfadjointView<Eigen::Lower>().rankUpdate(xb.transpose());
    xty.noalias() += xb.transpose() * yb.head(b);
  }
  gram.template triangularView<Eigen::StrictlyUpper>() = gram.transpose();
  gram.diagonal().array() += o.alpha;
  vector<Real> w;
  Eigen::LLT<row_matrix<Real>> llt(gram);
  if (o.alpha > 0 && llt.info() == Eigen::Success) {
    w = llt.solve(xty);
  } else {
    w = gram.completeOrthogonalDecomposition().solve(xty);  // alpha = 0: the least-norm solution
  }
  linear_weights m;
  m.outputs = 1;
  m.features = static_cast<std::size_t>(d);
  m.weight.assign(w.data(), w.data() + d);
  m.bias = {o.fit_intercept ? mean_y - mean_x.dot(w) : 0.0};
  return m;
}

}  // namespace detail

/// L2-regularised logistic regression with scikit-learn's objective: minimises
/// C * sum_i loss_i + ||W||^2 / 2 over W and an unpenalised intercept b, where loss_i is the
/// binary log-loss of sigmoid(x_i . w + b) for two classes (one weight vector, scoring class 1) and
/// the multinomial log-loss of softmax(W x_i + b) for K > 2 classes (K weight vectors; intercepts
/// reported centred). x is [N, d] float (products in double), y holds classes 0 .. classes - 1.
/// The solver is L-BFGS with scikit-learn's stopping rules (tol on the gradient, scipy's ftol,
/// max_iterations), preconditioned by c X^T X + I / C; `converged` and `stop_reason` say how it ended.
///
/// Example: `auto fit = glassbox::fit_logistic_regression(x, y, 2, {.C = 0.5});`
template <class = void>
inline logistic_regression_result fit_logistic_regression(const tensor2& x, std::span<const std::int32_t> y,
                                                          std::size_t classes,
                                                          const logistic_regression_options& options = {}) {
  constexpr std::string_view who = "fit_logistic_regression";
  detail::check_logistic_options(options, who);
  detail::require<shape_error>(x.shape(0) >= 1 && x.shape(1) >= 1,
                               "glassbox::{}: x must have at least one row and one column, got [{}, {}]", who,
                               x.shape(0), x.shape(1));
  detail::check_class_labels(y, x.shape(0), classes, who);
  const auto rows = detail::rows_of(x);
  detail::require_finite_rows(rows, who, "x");
  return detail::fit_logistic(rows, y, classes, options);
}

/// The predicted class of every row of x [N, d]: class 1 where the score is > 0 (binary), else
/// the class of the largest score (the first on ties), as scikit-learn's predict.
template <class = void>
inline std::vector<std::int32_t> predict_classes(const linear_weights& model, const tensor2& x) {
  detail::check_weights(model, x.shape(1), "predict_classes");
  return detail::predict_rows(model, detail::rows_of(x));
}

/// Class probabilities [N, K] of a logistic model (K = 2 for a binary model), in double.
template <class T = void>
inline detail::row_matrix<double> predict_probabilities(const linear_weights& model, const tensor2& x) {
  detail::check_weights(model, x.shape(1), "predict_probabilities");
  const auto s = detail::decision_scores<detail::dependent_t<T, double>>(model, detail::rows_of(x));
  const Eigen::Index k = s.cols() == 1 ? 2 : s.cols();
  detail::row_matrix<detail::dependent_t<T, double>> p(s.rows(), k);
  for (Eigen::Index i = 0; i < s.rows(); ++i) {
    if (s.cols() == 1) {
      p(i, 1) = detail::sigmoid(s(i, 0));
      p(i, 0) = detail::sigmoid(-s(i, 0));
    } else {
      const double m = s.row(i).maxCoeff();
      double sum = 0;
      for (Eigen::Index j = 0; j < k; ++j) sum += (p(i, j) = std::exp(s(i, j) - m));
      p.row(i) /= sum;
    }
  }
  return p;
}

/// Ridge regression with scikit-learn's objective ||y - X w - b||^2 + alpha ||w||^2 (intercept
/// unpenalised), solved in closed form in double on centred data; x is [N, d], y one value per row.
///
/// Example: `auto m = glassbox::fit_ridge_regression(x, y, {.alpha = 10});`
template <class = void>
inline linear_weights fit_ridge_regression(const tensor2& x, std::span<const double> y,
                                           const ridge_options& options = {}) {
  constexpr std::string_view who = "fit_ridge_regression";
  detail::require(options.alpha >= 0 && std::isfinite(options.alpha),
                  "glassbox::{}: alpha must be >= 0 and finite, got {}", who, options.alpha);
  detail::require<shape_error>(x.shape(0) >= 1 && x.shape(1) >= 1,
                               "glassbox::{}: x must have at least one row and one column, got [{}, {}]", who,
                               x.shape(0), x.shape(1));
  detail::require<shape_error>(y.size() == x.shape(0), "glassbox::{}: y must hold one value per row ({}), got {}", who,
                               x.shape(0), y.size());
  for (std::size_t i = 0; i < y.size(); ++i)
    detail::require(std::isfinite(y[i]), "glassbox::{}: y must be finite, got {} at row {}", who, y[i], i);
  const auto rows = detail::rows_of(x);
  detail::require_finite_rows(rows, who, "x");
  return detail::fit_ridge(rows, y, options);
}

/// The value x_i . w + b of a ridge (or any single-output linear) model for every row of x [N, d].
template <class T = void>
inline std::vector<double> predict_values(const linear_weights& model, const tensor2& x) {
  detail::check_weights(model, x.shape(1), "predict_values");
  detail::require<shape_error>(model.outputs == 1, "glassbox::predict_values: the model must have 1 output, got {}",
                               model.outputs);
  const auto s = detail::decision_scores<detail::dependent_t<T, double>>(model, detail::rows_of(x));
  return {s.data(), s.data() + s.rows()};
}

}  // namespace glassbox

// With GLASSBOX_EXTERN_PROBING defined, the logistic and ridge solvers compile in one other
// translation unit of the program (src/probing.cpp, CMake's object library glassbox_probing);
// docs/building.md, "Compile-time advice".
#ifdef GLASSBOX_EXTERN_PROBING
namespace glassbox::detail {
extern template logistic_regression_result fit_logistic<void>(float_rows, std::span<const std::int32_t>, std::size_t,
                                                              const logistic_regression_options&,
                                                              const linear_weights*);
extern template linear_weights fit_ridge<double>(float_rows, std::span<const double>, const ridge_options&);
}  // namespace glassbox::detail
#endif

// glassbox: quadrature rules on [0, 1] for the path integrals of integrated gradients.
//
// Every rule returns nodes a_k in [0, 1] and weights w_k with sum_k w_k g(a_k) ~ integral_0^1 g(a) da.
// Nodes and weights are computed in double. Gauss-Legendre uses Newton's method on the Legendre
// polynomial P_n (three-term recurrence), symmetrised as numpy.polynomial.legendre.leggauss does,
// then mapped from [-1, 1] to [0, 1]: a = (1 + x) / 2, w = w_x / 2.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <numbers>
#include <utility>
#include <vector>

namespace glassbox::detail {

/// Nodes and weights of a quadrature rule on [0, 1].
struct quadrature_rule {
  std::vector<double> nodes;    ///< a_k, ascending
  std::vector<double> weights;  ///< w_k
};

/// P_n(x) and P_{n-1}(x) by the three-term recurrence (k + 1) P_{k+1} = (2k + 1) x P_k - k P_{k-1}.
template <class = void>
inline std::pair<double, double> legendre_pair(std::size_t n, double x) {
  double p_prev = 1.0, p = x;
  if (n == 0) return {1.0, 0.0};
  for (std::size_t k = 1; k < n; ++k) {
    const auto kd = static_cast<double>(k);
    const double next = ((2.0 * kd + 1.0) * x * p - kd * p_prev) / (kd + 1.0);
    p_prev = p;
    p = next;
  }
  return {p, p_prev};
}

/// The n-point Gauss-Legendre rule on [0, 1]; exact for polynomials of degree <= 2n - 1. n >= 1.
template <class = void>
inline quadrature_rule gauss_legendre(std::size_t n) {
  std::vector<double> x(n), w(n);
  const auto nd = static_cast<double>(n);
  // Roots come in pairs +-x; compute the non-negative half (descending from near 1) and mirror.
  for (std::size_t i = 0; i < (n + 1) / 2; ++i) {
    double r = std::cos(std::numbers::pi * (static_cast<double>(i) + 0.75) / (nd + 0.5));  // Tricomi's guess
    double derivative = 0;
    for (int iteration = 0; iteration < 100; ++iteration) {
      const auto [p, p_prev] = legendre_pair(n, r);
      derivative = nd * (r * p - p_prev) / (r * r - 1.0);
      const double step = p / derivative;
      r -= step;
      if (std::abs(step) <= 1e-16 * std::max(1.0, std::abs(r))) break;
    }
    const auto [p, p_prev] = legendre_pair(n, r);
    derivative = nd * (r * p - p_prev) / (r * r - 1.0);
    const double weight = 2.0 / ((1.0 - r * r) * derivative * derivative);
    x[i] = r;
    w[i] = weight;
    x[n - 1 - i] = -r;
    w[n - 1 - i] = weight;
  }
  if (n % 2 == 1) x[n / 2] = 0.0;  // the middle root of an odd rule is exactly 0
  quadrature_rule q;
  q.nodes.resize(n);
  q.weights.resize(n);
  double total = 0;
  for (double v : w) total += v;
  // x is descending; map to ascending nodes on [0, 1]. Normalise the weights to sum to exactly 1
  // (they do to about 1e-15 before), as numpy's leggauss normalises to 2.
  for (std::size_t k = 0; k < n; ++k) {
    q.nodes[k] = 0.5 * (1.0 + x[n - 1 - k]);
    q.weights[k] = w[n - 1 - k] / total;
  }
  return q;
}

/// The left Riemann rule: a_k = k / n, w_k = 1 / n, k = 0 .. n - 1.
template <class = void>
inline quadrature_rule riemann_left(std::size_t n) {
  quadrature_rule q{std::vector<double>(n), std::vector<double>(n, 1.0 / static_cast<double>(n))};
  for (std::size_t k = 0; k < n; ++k) q.nodes[k] = static_cast<double>(k) / static_cast<double>(n);
  return q;
}

/// The right Riemann rule: a_k = (k + 1) / n, w_k = 1 / n.
template <class = void>
inline quadrature_rule riemann_right(std::size_t n) {
  quadrature_rule q{std::vector<double>(n), std::vector<double>(n, 1.0 / static_cast<double>(n))};
  for (std::size_t k = 0; k < n; ++k) q.nodes[k] = static_cast<double>(k + 1) / static_cast<double>(n);
  return q;
}

/// The midpoint rule: a_k = (k + 1/2) / n, w_k = 1 / n.
template <class = void>
inline quadrature_rule riemann_middle(std::size_t n) {
  quadrature_rule q{std::vector<double>(n), std::vector<double>(n, 1.0 / static_cast<double>(n))};
  for (std::size_t k = 0; k < n; ++k) q.nodes[k] = (static_cast<double>(k) + 0.5) / static_cast<double>(n);
  return q;
}

/// The trapezoid rule on n >= 2 equally spaced points a_k = k / (n - 1): w = h (1/2, 1, ..., 1, 1/2), h = 1 / (n - 1).
template <class = void>
inline quadrature_rule riemann_trapezoid(std::size_t n) {
  const double h = 1.0 / static_cast<double>(n - 1);
  quadrature_rule q{std::vector<double>(n), std::vector<double>(n, h)};
  for (std::size_t k = 0; k < n; ++k) q.nodes[k] = static_cast<double>(k) * h;
  q.nodes[n - 1] = 1.0;
  q.weights.front() = q.weights.back() = h / 2;
  return q;
}

/// The nodes a nested rule adds when its m intervals are halved: the midpoints (2i + 1) / (2m),
/// each with weight 1 / (2m). The refined sum is S_2m = S_m / 2 + (this rule's sum); this holds for
/// the left and right Riemann rules (m = n) and for the trapezoid rule (m = n - 1).
template <class = void>
inline quadrature_rule interval_midpoints(std::size_t m) {
  quadrature_rule q{std::vector<double>(m), std::vector<double>(m, 1.0 / (2.0 * static_cast<double>(m)))};
  for (std::size_t i = 0; i < m; ++i)
    q.nodes[i] = (2.0 * static_cast<double>(i) + 1.0) / (2.0 * static_cast<double>(m));
  return q;
}

}  // namespace glassbox::detail

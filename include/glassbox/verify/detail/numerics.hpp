// glassbox: the numerical pieces of the adapter conformance kit: tolerances fitted to a scalar
// type, the random linear readouts the gradient checks differentiate, central finite differences
// along random directions, and the comparisons the checks measure.
#pragma once

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <memory>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "glassbox/core/error.hpp"
#include "glassbox/core/random.hpp"
#include "glassbox/core/types.hpp"

namespace glassbox::detail::verify {

/// The tolerances of the kit for an adapter whose scalar type is S (before options.tolerance_scale).
///
/// - consistency: max |a - b| / max(1, max |b|) between two ways of computing the same output
///   (batched and single passes, logits_from_embeddings(embed(t)) and logits(t)). Float rounding
///   through a few layers gives 1e-7 to 1e-6; an error in the adapter gives 1e-2 or more.
/// - identity: relative error of exact gradient identities (K-FAC blocks, attention gradient
///   against the head-mask gradient), both sides computed by a backward pass in S.
/// - gradient: relative error of an analytic directional derivative against central finite
///   differences with one Richardson step, (4 D(h/2) - D(h)) / 3, at relative step `step`
///   (truncation O(h^4), rounding O(eps / h)), beyond the finite differences' own uncertainty
///   (directional_derivative). bench/verify_margins prints the errors on correct models; a
///   gradient scaled by 0.5 gives up to 0.5, a flipped sign up to 2.
struct tolerances {
  double consistency = 0;  ///< same output by two paths
  double value = 0;        ///< a gradient member's value against the seed of the logits
  double identity = 0;     ///< exact gradient identities
  double gradient = 0;     ///< analytic against finite differences
  double step = 0;         ///< relative finite-difference step h (not scaled)
  double epsilon = 0;      ///< machine epsilon of S
};

/// The kit's tolerances for scalar type S, each multiplied by `scale`; `step` replaces the fitted
/// finite-difference step when it is not 0.
template <class S>
tolerances tolerances_for(double scale, double step = 0) {
  static_assert(std::is_same_v<S, float> || std::is_same_v<S, double>,
                "glassbox::verify_adapter: the adapter's scalar type must be float or double");
  tolerances t;
  if constexpr (std::is_same_v<S, float>) {
    t = {1e-4, 1e-4, 1e-3, 1e-2, 2e-2, std::numeric_limits<float>::epsilon()};
  } else {
    t = {1e-10, 1e-10, 1e-8, 1e-6, 1e-3, std::numeric_limits<double>::epsilon()};
  }
  t.consistency *= scale;
  t.value *= scale;
  t.identity *= scale;
  t.gradient *= scale;
  if (step != 0) t.step = step;
  return t;
}

/// "[a, b, c]".
template <class = void>
inline std::string shape_text(const std::vector<std::size_t>& shape) { return fmt::format("[{}]", fmt::join(shape, ", ")); }

/// The shape of an xtensor as a vector.
template <class X>
std::vector<std::size_t> shape_of(const X& x) {
  return std::vector<std::size_t>(x.shape().begin(), x.shape().end());
}

/// The number of NaN / Inf entries.
template <class X>
std::size_t count_nonfinite(const X& x) {
  std::size_t n = 0;
  for (const auto v : x) n += !std::isfinite(static_cast<double>(v));
  return n;
}

/// max |x|, in double.
template <class X>
double max_abs(const X& x) {
  double m = 0;
  for (const auto v : x) m = std::max(m, std::abs(static_cast<double>(v)));
  return m;
}

/// max |a - b| / max(1, max |b|) over equal-sized a and b (infinity when the sizes differ, NaN
/// when an entry is NaN).
template <class A, class B>
double relative_difference(const A& a, const B& b) {
  if (a.size() != b.size()) return std::numeric_limits<double>::infinity();
  double d = 0, scale = 1;
  auto ia = a.begin();
  for (auto ib = b.begin(); ib != b.end(); ++ib, ++ia) {
    const double x = static_cast<double>(*ia), y = static_cast<double>(*ib);
    if (std::isnan(x) || std::isnan(y)) return std::numeric_limits<double>::quiet_NaN();
    d = std::max(d, std::abs(x - y));
    scale = std::max(scale, std::abs(y));
  }
  return d / scale;
}

/// The scalar sum_k sum_v w[k, v] z[rows[k], v]: a random linear readout of chosen output rows.
/// Its derivative w.r.t. the logits is w, exact in float, so a gradient check measures the
/// adapter's backward pass and nothing else.
struct readout {
  std::size_t n_rows = 0;          ///< rows of the whole output
  std::size_t columns = 0;         ///< columns of the output
  std::vector<std::size_t> rows;   ///< the rows read, ascending
  std::vector<float> weights;      ///< [rows.size(), columns]

  /// Reads the last row and, when there are several, one other random row, with N(0, 1) weights.
  template <class = void>
  static readout random(std::size_t n_rows, std::size_t columns, rng& g) {
    readout r;
    r.n_rows = n_rows;
    r.columns = columns;
    if (n_rows > 1) r.rows.push_back(static_cast<std::size_t>(g.below(n_rows - 1)));
    r.rows.push_back(n_rows - 1);
    r.weights.resize(r.rows.size() * columns);
    for (auto& w : r.weights) w = static_cast<float>(g.normal());
    return r;
  }

  /// The scalar from the rows' logits [rows.size(), columns].
  template <class Z>
  double value(const Z& row_logits) const {
    double s = 0;
    for (std::size_t i = 0; i < weights.size(); ++i) s += double{weights[i]} * static_cast<double>(row_logits.data()[i]);
    return s;
  }

  /// The scalar from a whole output [n_rows, columns]; model_error when the shape is not that.
  template <class Z>
  double value_of(const Z& logits) const {
    detail::require<model_error>(logits.shape(0) == n_rows && logits.shape(1) == columns,
                                 "glassbox::verify_adapter: logits of shape [{}, {}], expected [{}, {}]",
                                 logits.shape(0), logits.shape(1), n_rows, columns);
    double s = 0;
    for (std::size_t k = 0; k < rows.size(); ++k)
      for (std::size_t v = 0; v < columns; ++v)
        s += double{weights[k * columns + v]} * static_cast<double>(logits.data()[rows[k] * columns + v]);
    return s;
  }

  /// sqrt(sum_k sum_v (w[k, v] z[rows[k], v])^2): the size of the terms, which sets the rounding
  /// noise of the scalar (independent rounding errors of the logits add in quadrature).
  template <class Z>
  double magnitude_of(const Z& logits) const {
    if (logits.shape(0) != n_rows || logits.shape(1) != columns) return 1;
    double s = 0;
    for (std::size_t k = 0; k < rows.size(); ++k)
      for (std::size_t v = 0; v < columns; ++v) {
        const double t = double{weights[k * columns + v]} * static_cast<double>(logits.data()[rows[k] * columns + v]);
        s += t * t;
      }
    return std::sqrt(s);
  }
};

/// A seed of type Seed (glassbox::output_seed, or a model's own seed type in its precision) for
/// the readout `r`. It checks that the adapter follows the seed contract: seed.rows() with the
/// number of output rows, then the seed called on exactly those rows' logits.
template <class Seed>
Seed make_seed(std::shared_ptr<const readout> r) {
  return Seed(
      [r](std::size_t n) {
        detail::require<model_error>(n == r->n_rows,
                                     "glassbox::verify_adapter: the adapter called seed.rows({}), but its logits have "
                                     "{} rows",
                                     n, r->n_rows);
        return r->rows;
      },
      [r](const auto& z, auto& dz) -> double {
        detail::require<model_error>(z.shape(0) == r->rows.size() && z.shape(1) == r->columns,
                                     "glassbox::verify_adapter: the adapter handed the seed logits of shape [{}, {}], "
                                     "expected [{}, {}] (the rows seed.rows() returned)",
                                     z.shape(0), z.shape(1), r->rows.size(), r->columns);
        using out_type = std::remove_cvref_t<decltype(dz)>;
        using value_type = typename out_type::value_type;
        dz = out_type::from_shape({r->rows.size(), r->columns});
        for (std::size_t i = 0; i < r->weights.size(); ++i) dz.data()[i] = static_cast<value_type>(r->weights[i]);
        return r->value(z);
      });
}

/// A random direction for a finite difference at x: entry i is N(0, 1) times max(|x_i|, 0.1 rms(x))
/// (1 when x is zero), so that every entry moves in proportion to its own size.
template <class X>
X random_direction(const X& x, rng& g) {
  double ss = 0;
  for (const auto v : x) ss += static_cast<double>(v) * static_cast<double>(v);
  const double rms = x.size() == 0 ? 0 : std::sqrt(ss / static_cast<double>(x.size()));
  X d = X::from_shape(x.shape());
  auto it = x.begin();
  for (auto& v : d) {
    const double scale = rms > 0 ? std::max(std::abs(static_cast<double>(*it)), 0.1 * rms) : 1.0;
    v = static_cast<typename X::value_type>(g.normal() * scale);
    ++it;
  }
  return d;
}

/// One directional derivative: the adapter's (analytic) and the finite-difference (numeric) one,
/// how far the finite differences are from their own refinement, and the scales that set what a
/// difference means.
struct directional_sample {
  double analytic = 0;     ///< gradient . step, over the same rounded steps as the numeric one
  double numeric = 0;      ///< R(h) = (4 D(h/2) - D(h)) / 3, D(s) = (f(x + s v) - f(x - s v)) / 2s
  double uncertainty = 0;  ///< |(R(h) - analytic) - (R(h/2) - analytic at h/2)|: how much the finite
                           ///< differences themselves move when the steps are halved
  double typical = 0;      ///< sqrt(sum_i (gradient_i step_i)^2): the spread of gradient . step over random
                           ///< directions, so that a direction nearly orthogonal to the gradient does not make
                           ///< a small difference look large
  double noise = 0;        ///< an estimate of the rounding noise of `numeric`
  std::string where;       ///< what was perturbed (e.g. "layer 2"), for the report

  /// max(0, |analytic - numeric| - uncertainty) / max(|analytic|, |numeric|, typical, noise): the
  /// disagreement beyond what the finite differences can resolve; NaN if a side is not finite.
  template <class = void>
  double error() const {
    if (!std::isfinite(analytic) || !std::isfinite(numeric) || !std::isfinite(uncertainty))
      return std::numeric_limits<double>::quiet_NaN();
    const double scale = std::max({std::abs(analytic), std::abs(numeric), typical, noise, 1e-300});
    return std::max(0.0, std::abs(analytic - numeric) - uncertainty) / scale;
  }
};

/// The analytic and numeric derivatives of f at x along v, with relative step h: central
/// differences at steps h, h/2 and h/4, combined by Richardson extrapolation into R(h) and R(h/2).
/// The perturbed inputs are rounded to X's scalar type and the analytic side uses the rounded
/// steps, so the rounding of the input does not count as an error. An analytic gradient that is
/// wrong is off from R(h) and R(h/2) alike; a right one is off only by the finite differences'
/// truncation and rounding, which change between the two (halving the steps divides the first by
/// 16 and doubles the second), and `uncertainty` measures that change. `magnitude` is the size of
/// f's terms, for the rounding-noise estimate.
template <class X, class G, class F>
directional_sample directional_derivative(const X& x, const G& gradient, const X& v, double h, double magnitude,
                                          double epsilon, F&& f) {
  using S = typename X::value_type;
  double numeric[3] = {0, 0, 0}, analytic[3] = {0, 0, 0}, typical = 0;
  for (int k = 0; k < 3; ++k) {
    const double s = h / static_cast<double>(1 << k);
    X plus = x, minus = x;
    for (std::size_t i = 0; i < x.size(); ++i) {
      plus.data()[i] = static_cast<S>(static_cast<double>(x.data()[i]) + s * static_cast<double>(v.data()[i]));
      minus.data()[i] = static_cast<S>(static_cast<double>(x.data()[i]) - s * static_cast<double>(v.data()[i]));
    }
    double a = 0, squares = 0;
    for (std::size_t i = 0; i < x.size(); ++i) {
      const double term = static_cast<double>(gradient.data()[i]) *
                          (static_cast<double>(plus.data()[i]) - static_cast<double>(minus.data()[i]));
      a += term;
      squares += term * term;
    }
    analytic[k] = a / (2 * s);
    if (k == 0) typical = std::sqrt(squares) / (2 * s);
    numeric[k] = (f(plus) - f(minus)) / (2 * s);
  }
  const auto richardson = [](const double (&d)[3], int k) { return (4 * d[k + 1] - d[k]) / 3; };
  directional_sample out;
  out.analytic = richardson(analytic, 0);
  out.numeric = richardson(numeric, 0);
  out.uncertainty = std::abs((richardson(numeric, 0) - richardson(analytic, 0)) -
                             (richardson(numeric, 1) - richardson(analytic, 1)));
  out.typical = typical;
  // Each f carries a rounding error of a few hundred eps times its terms' size.
  out.noise = 256 * epsilon * magnitude / h;
  return out;
}

/// The directional derivatives of one gradient check and what they say.
template <class = void>
struct basic_directional_summary {
  std::vector<directional_sample> samples;  ///< one per direction

  /// The largest error() of the samples (NaN if any is NaN).
  double error() const {
    double worst = 0;
    for (const auto& s : samples) {
      const double e = s.error();
      if (std::isnan(e)) return e;
      worst = std::max(worst, e);
    }
    return worst;
  }

  /// A sentence that names the fault: a flipped sign, a constant factor, or a disagreement.
  std::string diagnosis() const {
    double an = 0, nn = 0, aa = 0, worst = -1;
    std::string where;
    bool all_noise = true;
    for (const auto& s : samples) {
      an += s.analytic * s.numeric;
      nn += s.numeric * s.numeric;
      aa += s.analytic * s.analytic;
      all_noise = all_noise && std::abs(s.numeric) < s.noise;
      const double e = s.error();
      if (e > worst) {
        worst = e;
        where = s.where;
      }
    }
    for (const auto& s : samples) {
      if (std::isfinite(s.analytic) && std::isfinite(s.numeric) && std::isfinite(s.uncertainty)) continue;
      const char* side = !std::isfinite(s.analytic) ? "analytic" : "finite-difference";
      return fmt::format("the {} directional derivative is not finite{}: analytic {}, numeric {}, uncertainty {}", side,
                         s.where.empty() ? "" : fmt::format(" at {}", s.where), s.analytic, s.numeric, s.uncertainty);
    }
    const std::string at = where.empty() ? "" : fmt::format(" (worst at {})", where);
    if (all_noise)
      return "the finite differences are at the rounding noise: the scalar hardly changes along the directions";
    if (nn == 0 || aa == 0)
      return fmt::format("the {} directional derivatives are all zero{}", aa == 0 ? "analytic" : "numeric", at);
    const double ratio = an / nn, cosine = an / std::sqrt(aa * nn);
    if (cosine < -0.99)
      return fmt::format("the gradient has the wrong sign: analytic / numeric = {:.3g} over {} directions{}", ratio,
                         samples.size(), at);
    if (cosine > 0.99)
      return fmt::format("the gradient is off by a constant factor: analytic / numeric = {:.3g} over {} directions{}",
                         ratio, samples.size(), at);
    return fmt::format(
        "analytic and numeric directional derivatives disagree: cosine {:.3f}, analytic / numeric = {:.3g} over {} "
        "directions{}",
        cosine, ratio, samples.size(), at);
  }
};

/// The directional summary (basic_directional_summary's only instantiation).
using directional_summary = basic_directional_summary<>;

}  // namespace glassbox::detail::verify

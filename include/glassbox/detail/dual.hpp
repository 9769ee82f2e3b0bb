// glassbox: forward-mode dual numbers a + b eps (eps^2 = 0), for exact directional derivatives.
//
// Running a computation with dual numbers whose tangents are a direction v gives, in the tangent
// parts of its outputs, the exact derivative of the computation along v (to rounding). The
// reference GPT-2 runs its own forward and backward passes on dual<double> for exact
// Hessian-vector products (forward-over-reverse, Pearlmutter 1994). Comparisons look at the value
// only; the functions a model needs (exp, log, sqrt, tanh, abs) are found by argument-dependent
// lookup, so generic code calls them unqualified (`using std::sqrt; sqrt(x)`).
#pragma once

#include <Eigen/Core>
#include <cmath>
#include <limits>
#include <type_traits>

namespace glassbox::detail {

/// A dual number value + tangent eps, with eps^2 = 0.
template <class T>
struct dual {
  using value_type = T;  ///< the type of the value and the tangent

  T value{};    ///< the value a
  T tangent{};  ///< the directional derivative b

  constexpr dual() = default;
  /// A constant (tangent 0) from any arithmetic value.
  template <class U, std::enable_if_t<std::is_arithmetic_v<U>, int> = 0>
  constexpr dual(U v) : value(static_cast<T>(v)) {}  // NOLINT(google-explicit-constructor): constants mix freely
  /// A value with its tangent.
  constexpr dual(T v, T t) : value(v), tangent(t) {}

  /// The value, explicitly.
  template <class U, std::enable_if_t<std::is_arithmetic_v<U>, int> = 0>
  explicit constexpr operator U() const {
    return static_cast<U>(value);
  }

  constexpr dual& operator+=(const dual& o) {
    value += o.value;
    tangent += o.tangent;
    return *this;
  }
  constexpr dual& operator-=(const dual& o) {
    value -= o.value;
    tangent -= o.tangent;
    return *this;
  }
  constexpr dual& operator*=(const dual& o) {
    tangent = tangent * o.value + value * o.tangent;
    value *= o.value;
    return *this;
  }
  constexpr dual& operator/=(const dual& o) {
    const T inv = T(1) / o.value;
    value *= inv;
    tangent = (tangent - value * o.tangent) * inv;
    return *this;
  }
  constexpr dual operator-() const { return {-value, -tangent}; }
  constexpr dual operator+() const { return *this; }

  friend constexpr dual operator+(dual a, const dual& b) { return a += b; }
  friend constexpr dual operator-(dual a, const dual& b) { return a -= b; }
  friend constexpr dual operator*(dual a, const dual& b) { return a *= b; }
  friend constexpr dual operator/(dual a, const dual& b) { return a /= b; }

  friend constexpr bool operator==(const dual& a, const dual& b) { return a.value == b.value; }
  friend constexpr bool operator!=(const dual& a, const dual& b) { return a.value != b.value; }
  friend constexpr bool operator<(const dual& a, const dual& b) { return a.value < b.value; }
  friend constexpr bool operator>(const dual& a, const dual& b) { return a.value > b.value; }
  friend constexpr bool operator<=(const dual& a, const dual& b) { return a.value <= b.value; }
  friend constexpr bool operator>=(const dual& a, const dual& b) { return a.value >= b.value; }

  friend dual exp(const dual& x) {
    const T e = std::exp(x.value);
    return {e, e * x.tangent};
  }
  friend dual log(const dual& x) { return {std::log(x.value), x.tangent / x.value}; }
  friend dual sqrt(const dual& x) {
    const T s = std::sqrt(x.value);
    return {s, x.tangent / (T(2) * s)};
  }
  friend dual tanh(const dual& x) {
    const T t = std::tanh(x.value);
    return {t, (T(1) - t * t) * x.tangent};
  }
  friend dual abs(const dual& x) { return x.value < T(0) ? -x : x; }
  friend bool isfinite(const dual& x) { return std::isfinite(x.value) && std::isfinite(x.tangent); }
};

/// Whether T is a dual number.
template <class T>
inline constexpr bool is_dual_v = false;
template <class T>
inline constexpr bool is_dual_v<dual<T>> = true;

}  // namespace glassbox::detail

/// Eigen's description of glassbox::detail::dual: a real, non-vectorised scalar.
template <class T>
struct Eigen::NumTraits<glassbox::detail::dual<T>> : Eigen::NumTraits<T> {
  using Real = glassbox::detail::dual<T>;
  using NonInteger = glassbox::detail::dual<T>;
  using Nested = glassbox::detail::dual<T>;
  using Literal = glassbox::detail::dual<T>;
  enum {
    IsComplex = 0,
    IsInteger = 0,
    IsSigned = 1,
    RequireInitialization = 1,
    ReadCost = 2,
    AddCost = 2,
    MulCost = 3,
  };
  static constexpr int digits10() { return Eigen::NumTraits<T>::digits10(); }
  static Real epsilon() { return Real(Eigen::NumTraits<T>::epsilon()); }
  static Real dummy_precision() { return Real(Eigen::NumTraits<T>::dummy_precision()); }
  static Real highest() { return Real(Eigen::NumTraits<T>::highest()); }
  static Real lowest() { return Real(Eigen::NumTraits<T>::lowest()); }
  static Real infinity() { return Real(std::numeric_limits<T>::infinity()); }
  static Real quiet_NaN() { return Real(std::numeric_limits<T>::quiet_NaN()); }
};

// glassbox: the floating-point encodings of the io layer (IEEE binary16, bfloat16, binary32,
// binary64) and little-endian byte access. Not public API.
//
// Decoding (half or bfloat16 -> float) is exact: every value of the narrow format is a float.
// Encoding rounds to nearest, ties to even, straight from the source value (a double is never
// rounded to float first, which would round twice). Overflow gives infinity with the sign of
// the value, values below half the smallest subnormal give a signed zero, and a NaN becomes the
// format's quiet NaN with the sign kept. The arithmetic is exact (scaling by powers of two,
// floor), so the result does not depend on the floating-point rounding mode.
#pragma once

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>

namespace glassbox::detail {

static_assert(std::endian::native == std::endian::little || std::endian::native == std::endian::big,
              "glassbox::io: mixed-endian machines are not supported");
static_assert(std::numeric_limits<float>::is_iec559 && std::numeric_limits<double>::is_iec559,
              "glassbox::io: float and double must be IEEE 754 binary32 and binary64");

/// The unsigned integer `bytes` little-endian bytes at `p` hold (bytes = sizeof(U)).
template <class U>
inline U load_le(const unsigned char* p) {
  U value = 0;
  if constexpr (std::endian::native == std::endian::little) {
    std::memcpy(&value, p, sizeof(U));
  } else {
    for (std::size_t i = 0; i < sizeof(U); ++i) value |= static_cast<U>(static_cast<U>(p[i]) << (8 * i));
  }
  return value;
}

/// Stores `value` as sizeof(U) little-endian bytes at `p`.
template <class U>
inline void store_le(U value, unsigned char* p) {
  if constexpr (std::endian::native == std::endian::little) {
    std::memcpy(p, &value, sizeof(U));
  } else {
    for (std::size_t i = 0; i < sizeof(U); ++i) p[i] = static_cast<unsigned char>(value >> (8 * i));
  }
}

/// Reverses the bytes of every element of `data` in place (used on big-endian machines only).
template <class T>
inline void reverse_element_bytes(T* data, std::size_t count) {
  auto* bytes = reinterpret_cast<unsigned char*>(data);
  for (std::size_t i = 0; i < count; ++i) std::reverse(bytes + i * sizeof(T), bytes + (i + 1) * sizeof(T));
}

/// The float an IEEE binary16 bit pattern holds (exact; NaN payloads are kept).
template <class = void>
inline float half_to_float(std::uint16_t h) {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  const std::uint32_t exponent = (h >> 10) & 0x1Fu;
  const std::uint32_t mantissa = h & 0x3FFu;
  if (exponent == 0) {  // zero or subnormal: mantissa * 2^-24, a normal float
    const float magnitude = static_cast<float>(mantissa) * 0x1p-24f;
    return sign != 0 ? -magnitude : magnitude;
  }
  if (exponent == 31) return std::bit_cast<float>(sign | 0x7F800000u | (mantissa << 13));  // inf or NaN
  return std::bit_cast<float>(sign | ((exponent + (127 - 15)) << 23) | (mantissa << 13));
}

/// The float a bfloat16 bit pattern holds (exact: bfloat16 is the upper half of a float).
template <class = void>
inline float bfloat16_to_float(std::uint16_t b) { return std::bit_cast<float>(static_cast<std::uint32_t>(b) << 16); }

/// The exponent and mantissa fields of a finite |x| >= 0 rounded to nearest-even in a binary format
/// with `mantissa_bits` stored mantissa bits and normal exponents [min_exponent, max_exponent].
/// Overflow gives the infinity pattern (all exponent bits set, mantissa 0).
template <class = void>
inline std::uint64_t round_magnitude(double magnitude, int mantissa_bits, int min_exponent, int max_exponent) {
  const std::uint64_t infinity = static_cast<std::uint64_t>(max_exponent - min_exponent + 2) << mantissa_bits;
  if (magnitude == 0) return 0;
  // Quantum of the target format at this magnitude: 2^(e - mantissa_bits), e clamped to the subnormal range.
  const int e = std::max(std::ilogb(magnitude), min_exponent);
  if (e > max_exponent) return infinity;
  const double scaled = std::ldexp(magnitude, mantissa_bits - e);  // < 2^(mantissa_bits + 1), exact
  double whole = std::floor(scaled);
  const double fraction = scaled - whole;  // exact
  if (fraction > 0.5 || (fraction == 0.5 && std::fmod(whole, 2.0) != 0)) whole += 1;
  // For subnormals (e == min_exponent, whole < 2^m) the pattern is `whole`; for normals the exponent field
  // is e - min_exponent + 1 and the mantissa whole - 2^m, which sums to the same expression. A carry out of
  // the mantissa moves to the next exponent (and from the largest finite value to infinity) by itself.
  return (static_cast<std::uint64_t>(e - min_exponent) << mantissa_bits) + static_cast<std::uint64_t>(whole);
}

/// The IEEE binary16 bit pattern nearest to x (ties to even).
template <class = void>
inline std::uint16_t double_to_half_bits(double x) {
  const std::uint16_t sign = std::signbit(x) ? 0x8000u : 0u;
  if (std::isnan(x)) return static_cast<std::uint16_t>(sign | 0x7E00u);
  if (std::isinf(x)) return static_cast<std::uint16_t>(sign | 0x7C00u);
  return static_cast<std::uint16_t>(sign | round_magnitude(std::fabs(x), 10, -14, 15));
}

/// The bfloat16 bit pattern nearest to x (ties to even).
template <class = void>
inline std::uint16_t double_to_bfloat16_bits(double x) {
  const std::uint16_t sign = std::signbit(x) ? 0x8000u : 0u;
  if (std::isnan(x)) return static_cast<std::uint16_t>(sign | 0x7FC0u);
  if (std::isinf(x)) return static_cast<std::uint16_t>(sign | 0x7F80u);
  return static_cast<std::uint16_t>(sign | round_magnitude(std::fabs(x), 7, -126, 127));
}

/// The bfloat16 bit pattern nearest to a float (ties to even), by integer rounding of the float's bits.
template <class = void>
inline std::uint16_t float_to_bfloat16_bits(float x) {
  const auto bits = std::bit_cast<std::uint32_t>(x);
  if (std::isnan(x)) return static_cast<std::uint16_t>(((bits >> 16) & 0x8000u) | 0x7FC0u);
  // Adding 0x7FFF (+1 when the kept part is odd) carries into bit 16 exactly when the dropped half is
  // above one half ulp, or equal to it with an odd kept part; a carry out of the largest finite value
  // gives the infinity pattern, as it should.
  return static_cast<std::uint16_t>((bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16);
}

/// The float nearest to x (ties to even), independent of the rounding mode; overflow gives infinity.
template <class = void>
inline float double_to_float(double x) {
  const std::uint32_t sign = std::signbit(x) ? 0x80000000u : 0u;
  if (std::isnan(x)) return std::bit_cast<float>(sign | 0x7FC00000u);
  if (std::isinf(x)) return std::bit_cast<float>(sign | 0x7F800000u);
  return std::bit_cast<float>(static_cast<std::uint32_t>(sign | round_magnitude(std::fabs(x), 23, -126, 127)));
}

}  // namespace glassbox::detail

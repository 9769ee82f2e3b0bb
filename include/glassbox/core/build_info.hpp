// glassbox: what a program was compiled with (instruction set, OpenMP, a BLAS behind Eigen) next to
// what the CPU it runs on supports, so that a program can tell its user when it was built slower than
// the machine allows (`glassbox info` does; docs/building.md has the measured cost of each setting).
// The compile-time half describes the translation unit that calls it, i.e. the program's own flags.
#pragma once

#include <Eigen/Core>
#include <cstddef>
#include <string_view>

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace glassbox {

/// SIMD instruction-set levels that matter for Eigen's kernels on x86-64, in increasing order.
enum class simd_level {
  baseline,  ///< SSE2 only (x86-64 without -march), or a CPU that is not x86-64
  avx2,      ///< AVX2 with FMA
  avx512,    ///< AVX-512 F
};

/// The stable name of a level ("SSE2", "AVX2+FMA", "AVX-512").
constexpr std::string_view to_string(simd_level level) {
  switch (level) {
    case simd_level::baseline: return "SSE2";
    case simd_level::avx2: return "AVX2+FMA";
    case simd_level::avx512: return "AVX-512";
  }
  return "unknown";
}

/// How the calling program was compiled: what decides the speed of every model pass.
struct build_configuration {
  simd_level simd = simd_level::baseline;  ///< instruction set the compiler was allowed to use
  bool openmp = false;                     ///< compiled with OpenMP (threads inside a model pass)
  bool blas = false;                       ///< Eigen's products go to a BLAS (EIGEN_USE_BLAS)
  std::string_view eigen_simd;             ///< Eigen's own description of the instruction sets in use
};

/// The configuration the calling translation unit was compiled with.
template <class = void>
inline build_configuration compiled_configuration() {
  build_configuration c;
#if defined(__AVX512F__)
  c.simd = simd_level::avx512;
#elif defined(__AVX2__) && defined(__FMA__)
  c.simd = simd_level::avx2;
#endif
#if defined(_OPENMP)
  c.openmp = true;
#endif
#if defined(EIGEN_USE_BLAS)
  c.blas = true;
#endif
  c.eigen_simd = Eigen::SimdInstructionSetsInUse();
  return c;
}

/// The highest level the CPU running the program supports (baseline off x86-64 or without GCC/Clang).
template <class = void>
inline simd_level cpu_simd_level() {
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) return simd_level::avx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return simd_level::avx2;
#endif
  return simd_level::baseline;
}

}  // namespace glassbox

// glassbox: the one rule for a BLAS behind Eigen. A program compiled with EIGEN_USE_BLAS (glassbox's
// own programs link OpenBLAS, docs/building.md) routes Eigen's matrix products to the BLAS. glassbox
// spends its thread budget itself (workers, and OpenMP threads inside a model pass that split the
// products), so the BLAS must run each product on the thread that calls it: otherwise every worker's
// product would start the BLAS's own threads and the process would keep more cores busy than the
// budget allows. OpenBLAS is told so once, through its openblas_set_num_threads, found at link time
// as a weak symbol (absent from other BLAS libraries, which do not thread on their own by default).
#pragma once

#if defined(EIGEN_USE_BLAS) && defined(__GNUC__) && defined(__ELF__)
#define GLASSBOX_DETAIL_OPENBLAS_THREADS 1
extern "C" void openblas_set_num_threads(int) __attribute__((weak));
#endif

namespace glassbox::detail {

/// Makes OpenBLAS, when the program uses it behind Eigen, run every product on its calling thread
/// (once per process; cheap after the first call). Does nothing in other builds.
template <class = void>
inline void blas_on_calling_thread() {
#if defined(GLASSBOX_DETAIL_OPENBLAS_THREADS)
  static const bool done = [] {
    if (&openblas_set_num_threads != nullptr) openblas_set_num_threads(1);
    return true;
  }();
  (void)done;
#endif
}

}  // namespace glassbox::detail

// glassbox: the numerical kernels of the reference GPT-2 (layer norm, tanh GELU, causal softmax)
// and the reusable workspaces its passes run in. Internal to models/gpt2.hpp.
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <memory>
#include <mutex>
#include <numbers>
#include <type_traits>
#include <utility>
#include <vector>

#include "glassbox/detail/blas.hpp"
#include "glassbox/detail/dual.hpp"
#include "glassbox/detail/memory.hpp"

// OpenMP is used only when the including program is compiled with it (-fopenmp); then row loops
// run in parallel and Eigen parallelises its matrix products. Without it the pragmas vanish.
#if defined(_OPENMP)
#define GLASSBOX_DETAIL_PRAGMA(x) _Pragma(#x)
#define GLASSBOX_DETAIL_PARALLEL_FOR(condition) GLASSBOX_DETAIL_PRAGMA(omp parallel for schedule(static) if (condition))
#include <omp.h>
#else
#define GLASSBOX_DETAIL_PARALLEL_FOR(condition)
#endif

namespace glassbox::detail {

/// A dynamic row-major Eigen matrix of the GPT-2 kernels.
template <class S>
using gpt2_matrix = Eigen::Matrix<S, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
/// A writable view of a contiguous row-major block.
template <class S>
using gpt2_map = Eigen::Map<gpt2_matrix<S>>;
/// A read-only view of a contiguous row-major block.
template <class S>
using gpt2_cmap = Eigen::Map<const gpt2_matrix<S>>;
/// A writable view of a row-major block with a row stride (one head's columns of a wider matrix).
template <class S>
using gpt2_strided = Eigen::Map<gpt2_matrix<S>, 0, Eigen::OuterStride<>>;
/// A read-only view of a row-major block with a row stride.
template <class S>
using gpt2_cstrided = Eigen::Map<const gpt2_matrix<S>, 0, Eigen::OuterStride<>>;
/// A writable row vector view.
template <class S>
using gpt2_row = Eigen::Map<Eigen::Matrix<S, 1, Eigen::Dynamic>>;
/// A read-only row vector view.
template <class S>
using gpt2_crow = Eigen::Map<const Eigen::Matrix<S, 1, Eigen::Dynamic>>;

/// The sum of x's coefficients in an order that depends on its size alone. Eigen's own sum() of a
/// mapped block starts its vector loop at the first aligned address, so its rounding would follow
/// wherever the allocator placed the buffer and two identical runs could differ in the last bit;
/// multiplying by one (exact) makes an expression without direct access, which Eigen sums from
/// index 0 with unaligned loads.
template <class Derived>
typename Derived::Scalar fixed_order_sum(const Eigen::ArrayBase<Derived>& x) {
  return (x.derived() * typename Derived::Scalar(1)).sum();
}

/// The number of OpenMP threads a parallel region would use (1 without OpenMP).
template <class = void>
inline int gpt2_thread_count() {
#if defined(_OPENMP)
  return omp_in_parallel() ? 1 : omp_get_max_threads();
#else
  return 1;
#endif
}

/// The index of the calling thread in its OpenMP team (0 outside one, or without OpenMP).
template <class = void>
inline int gpt2_thread_index() {
#if defined(_OPENMP)
  return omp_get_thread_num();
#else
  return 0;
#endif
}

/// Copies one head's keys (or values) into a contiguous [prefix + rows, dh] block: `prefix` rows of a
/// cache (rows `cache_stride` apart), then `rows` rows of the pass (rows `own_stride` apart).
template <class S>
void gpt2_gather_head(S* out, std::ptrdiff_t dh, const S* cache, std::ptrdiff_t prefix, std::ptrdiff_t cache_stride,
                      const S* own, std::ptrdiff_t rows, std::ptrdiff_t own_stride) {
  for (std::ptrdiff_t r = 0; r < prefix; ++r) std::copy_n(cache + r * cache_stride, dh, out + r * dh);
  for (std::ptrdiff_t r = 0; r < rows; ++r) std::copy_n(own + r * own_stride, dh, out + (prefix + r) * dh);
}

/// Runs fn(begin, end) over [0, n) split in `parts` contiguous chunks, one per OpenMP thread.
template <class Fn>
void gpt2_split(std::ptrdiff_t n, int parts, Fn&& fn) {
  if (parts <= 1) {
    fn(std::ptrdiff_t{0}, n, 0);
    return;
  }
  GLASSBOX_DETAIL_PARALLEL_FOR(true)
  for (int part = 0; part < parts; ++part) {
    const std::ptrdiff_t begin = n * part / parts, end = n * (part + 1) / parts;
    fn(begin, end, part);
  }
}

/// A read-only row-major matrix in memory (`rows` x `cols`, rows `stride` apart), used as written or transposed.
template <class S>
struct gpt2_operand {
  const S* data;
  std::ptrdiff_t rows, cols, stride;
  bool transposed = false;

  /// The same matrix, transposed.
  gpt2_operand t() const {
    gpt2_operand r = *this;
    r.transposed = !transposed;
    return r;
  }
};

/// An operand over contiguous rows (stride = cols) or strided rows.
template <class S>
gpt2_operand<S> gpt2_op(const S* data, std::ptrdiff_t rows, std::ptrdiff_t cols, std::ptrdiff_t stride = 0) {
  return {data, rows, cols, stride == 0 ? cols : stride, false};
}

/// c (rows ldc apart) = alpha op(a) op(b), or += with `accumulate`, on the calling thread.
template <class S>
void gpt2_gemm_serial(S* c, std::ptrdiff_t ldc, const gpt2_operand<S>& a, const gpt2_operand<S>& b, S alpha,
                      bool accumulate) {
  const std::ptrdiff_t m = a.transposed ? a.cols : a.rows, n = b.transposed ? b.rows : b.cols;
  if constexpr (is_dual_v<S>) {
    // Dual numbers (curvature products): (Av + e At)(Bv + e Bt) = Av Bv + e (Av Bt + At Bv), three
    // real products in the vectorised (or BLAS) kernels instead of one on a non-vectorised type.
    using T = typename S::value_type;
    using real = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
    auto split = [](const gpt2_operand<S>& x, real& v, real& t) {  // op(x) as value and tangent matrices
      const std::ptrdiff_t r = x.transposed ? x.cols : x.rows, k = x.transposed ? x.rows : x.cols;
      v.resize(r, k);
      t.resize(r, k);
      for (std::ptrdiff_t i = 0; i < r; ++i)
        for (std::ptrdiff_t j = 0; j < k; ++j) {
          const S& e = x.transposed ? x.data[j * x.stride + i] : x.data[i * x.stride + j];
          v(i, j) = e.value;
          t(i, j) = e.tangent;
        }
    };
    real av, at, bv, bt;
    split(a, av, at);
    split(b, bv, bt);
    const real value = av * bv;
    const real tangent = av * bt + at * bv;
    for (std::ptrdiff_t i = 0; i < m; ++i)
      for (std::ptrdiff_t j = 0; j < n; ++j) {
        const S product = alpha * S(value(i, j), tangent(i, j));
        S& out = c[i * ldc + j];
        out = accumulate ? out + product : product;
      }
  } else {
    gpt2_strided<S> out(c, m, n, Eigen::OuterStride<>(ldc));
    if (!accumulate) out.setZero();  // what Eigen does itself before a product is assigned
    const gpt2_cstrided<S> am(a.data, a.rows, a.cols, Eigen::OuterStride<>(a.stride));
    const gpt2_cstrided<S> bm(b.data, b.rows, b.cols, Eigen::OuterStride<>(b.stride));
    // Straight to Eigen's blocked product (or the BLAS behind it), at every size. `out += alpha * a * b`
    // would send small products (k + m + n < 20) to Eigen's coefficient-wise product instead, which
    // computes the entries before the first 64-byte boundary of each output row in another order (and
    // with other fused multiply-adds) than the rest: the rounding would then follow where the caller's
    // buffer happens to lie, and two identical runs could differ in the last bit.
    auto product = [&](const auto& lhs, const auto& rhs) {
      using lhs_type = std::decay_t<decltype(lhs)>;
      using rhs_type = std::decay_t<decltype(rhs)>;
      Eigen::internal::generic_product_impl<lhs_type, rhs_type, Eigen::DenseShape, Eigen::DenseShape,
                                            Eigen::GemmProduct>::scaleAndAddTo(out, lhs, rhs, alpha);
    };
    if (!a.transposed && !b.transposed) {
      product(am, bm);
    } else if (!a.transposed) {
      product(am, bm.transpose());
    } else if (!b.transposed) {
      product(am.transpose(), bm);
    } else {
      product(am.transpose(), bm.transpose());
    }
  }
}

/// The first `count` rows (or columns, `columns`) of an operand as written, starting at `begin`.
template <class S>
gpt2_operand<S> gpt2_slice(const gpt2_operand<S>& x, std::ptrdiff_t begin, std::ptrdiff_t count, bool columns) {
  gpt2_operand<S> r = x;
  // Rows of op(x) are rows of x, or columns of x when x is transposed; likewise for columns.
  const bool along_stored_rows = columns == x.transposed;
  if (along_stored_rows) {
    r.data = x.data + begin * x.stride;
    r.rows = count;
  } else {
    r.data = x.data + begin;
    r.cols = count;
  }
  return r;
}

/// Products with less work than this run on one thread.
inline constexpr std::ptrdiff_t gpt2_parallel_flops = std::ptrdiff_t{1} << 20;

/// c (rows ldc apart) = alpha op(a) op(b), or += with `accumulate`. Every matrix product of the model
/// goes through here, so that Eigen's product code is compiled for four shapes only. Under OpenMP,
/// outside a parallel region, the larger output dimension is split into one product per thread:
/// one fork per product, which scales better than Eigen's own parallel product for the few rows
/// (tokens) of a single sequence.
template <class S>
void gpt2_gemm(S* c, std::ptrdiff_t ldc, const gpt2_operand<S>& a, const gpt2_operand<S>& b, S alpha = S(1),
               bool accumulate = false) {
  const std::ptrdiff_t m = a.transposed ? a.cols : a.rows, n = b.transposed ? b.rows : b.cols;
  const std::ptrdiff_t k = a.transposed ? a.rows : a.cols;
  const int threads = gpt2_thread_count();
  if (threads <= 1 || m * n * k < gpt2_parallel_flops) {
    gpt2_gemm_serial(c, ldc, a, b, alpha, accumulate);
    return;
  }
  if (n >= m) {
    gpt2_split(n, threads, [&](std::ptrdiff_t begin, std::ptrdiff_t end, int) {
      gpt2_gemm_serial(c + begin, ldc, a, gpt2_slice(b, begin, end - begin, true), alpha, accumulate);
    });
  } else {
    gpt2_split(m, threads, [&](std::ptrdiff_t begin, std::ptrdiff_t end, int) {
      gpt2_gemm_serial(c + begin * ldc, ldc, gpt2_slice(a, begin, end - begin, false), b, alpha, accumulate);
    });
  }
}

/// The attention scale 1 / sqrt(d_head) in precision S (for a dual number, a constant computed in double).
template <class S>
S gpt2_attention_scale(std::size_t head_width) {
  if constexpr (std::is_arithmetic_v<S>) {
    return S(1) / std::sqrt(static_cast<S>(head_width));
  } else {
    return S(1.0 / std::sqrt(static_cast<double>(head_width)));
  }
}

/// Rows below which a row loop is not worth a thread team.
inline constexpr std::ptrdiff_t gpt2_parallel_rows = 64;

/// LayerNorm of every row of x [n, d] into y: y = (x - mean) / sqrt(var + eps) * w + b, with the
/// biased variance (as torch.nn.LayerNorm); stores each row's mean and 1 / sqrt(var + eps).
template <class S>
void gpt2_layer_norm(const S* x, std::ptrdiff_t n, std::ptrdiff_t d, const S* w, const S* b, S eps, S* y, S* mean,
                     S* rstd) {
  const gpt2_crow<S> wv(w, d), bv(b, d);
  GLASSBOX_DETAIL_PARALLEL_FOR(n >= gpt2_parallel_rows)
  for (std::ptrdiff_t r = 0; r < n; ++r) {
    const gpt2_crow<S> xr(x + r * d, d);
    gpt2_row<S> yr(y + r * d, d);
    const S mu = fixed_order_sum(xr.array()) / S(d);
    const S var = (xr.array() - mu).square().mean();
    using std::sqrt;  // ADL: S may be a dual number (exact curvature products)
    const S rs = S(1) / sqrt(var + eps);
    yr = ((xr.array() - mu) * rs * wv.array() + bv.array()).matrix();
    mean[r] = mu;
    rstd[r] = rs;
  }
}

/// Backward of gpt2_layer_norm: adds d loss / d x to dx for every row, given dy = d loss / d y.
/// With dw / db non-null, also adds the weight and bias gradients (rows then run in order).
template <class S>
void gpt2_layer_norm_backward(const S* x, std::ptrdiff_t n, std::ptrdiff_t d, const S* w, const S* mean,
                              const S* rstd, const S* dy, S* dx, S* dw, S* db) {
  const gpt2_crow<S> wv(w, d);
  auto row = [&](std::ptrdiff_t r) {
    const gpt2_crow<S> xr(x + r * d, d), dyr(dy + r * d, d);
    gpt2_row<S> dxr(dx + r * d, d);
    const auto xhat = (xr.array() - mean[r]) * rstd[r];
    const auto dxhat = dyr.array() * wv.array();
    const S m1 = dxhat.mean();
    const S m2 = (dxhat * xhat).mean();
    dxr.array() += rstd[r] * (dxhat - m1 - xhat * m2);
  };
  if (dw == nullptr) {
    GLASSBOX_DETAIL_PARALLEL_FOR(n >= gpt2_parallel_rows)
    for (std::ptrdiff_t r = 0; r < n; ++r) row(r);
    return;
  }
  gpt2_row<S> dwv(dw, d), dbv(db, d);
  // Each row's weight term is formed in aligned memory and then added: dw is the caller's buffer, and
  // Eigen computes its entries before the first aligned address one by one, where the compiler may
  // fuse the multiply and the add that the vectorised loop rounds separately.
  Eigen::Array<S, 1, Eigen::Dynamic> term(d);
  for (std::ptrdiff_t r = 0; r < n; ++r) {
    row(r);
    const gpt2_crow<S> xr(x + r * d, d), dyr(dy + r * d, d);
    term = dyr.array() * (xr.array() - mean[r]) * rstd[r];
    dwv.array() += term;
    dbv += dyr;
  }
}

/// The constants of the tanh GELU 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
template <class S>
struct gpt2_gelu_constants {
  static constexpr S c = static_cast<S>(0.79788456080286535588);  // sqrt(2 / pi)
  static constexpr S k = static_cast<S>(0.044715);
};

/// g = gelu(u) elementwise over n rows of width f (g may alias u).
template <class S>
void gpt2_gelu(const S* u, std::ptrdiff_t n, std::ptrdiff_t f, S* g) {
  constexpr S c = gpt2_gelu_constants<S>::c, k = gpt2_gelu_constants<S>::k;
  GLASSBOX_DETAIL_PARALLEL_FOR(n >= gpt2_parallel_rows / 4)
  for (std::ptrdiff_t r = 0; r < n; ++r) {
    const auto x = gpt2_crow<S>(u + r * f, f).array();
    gpt2_row<S>(g + r * f, f).array() = S(0.5) * x * (S(1) + (c * (x + k * x * x * x)).tanh());
  }
}

/// dg *= gelu'(u) elementwise over n rows of width f: turns d loss / d g into d loss / d u.
template <class S>
void gpt2_gelu_backward(const S* u, std::ptrdiff_t n, std::ptrdiff_t f, S* dg) {
  constexpr S c = gpt2_gelu_constants<S>::c, k = gpt2_gelu_constants<S>::k;
  GLASSBOX_DETAIL_PARALLEL_FOR(n >= gpt2_parallel_rows / 4)
  for (std::ptrdiff_t r = 0; r < n; ++r) {
    const auto x = gpt2_crow<S>(u + r * f, f).array();
    const auto x2 = x * x;
    const auto t = (c * (x + k * x2 * x)).tanh().eval();
    gpt2_row<S>(dg + r * f, f).array() *=
        S(0.5) * (S(1) + t) + S(0.5) * x * (S(1) - t * t) * c * (S(1) + S(3) * k * x2);
  }
}

/// Causal softmax in place over a [t, t] block of scores: row i keeps keys 0..i, later keys get 0.
template <class S>
void gpt2_causal_softmax(S* p, std::ptrdiff_t t) {
  for (std::ptrdiff_t i = 0; i < t; ++i) {
    S* row = p + i * t;
    auto valid = gpt2_row<S>(row, i + 1).array();
    const S mx = valid.maxCoeff();
    valid = (valid - mx).exp();
    valid *= S(1) / fixed_order_sum(valid);
    std::fill(row + i + 1, row + t, S(0));
  }
}

/// Causal softmax in place over `rows` rows of scores [rows, t]: row k keeps keys 0..last[k].
template <class S>
void gpt2_causal_softmax_rows(S* p, std::ptrdiff_t rows, std::ptrdiff_t t, const std::size_t* last) {
  for (std::ptrdiff_t k = 0; k < rows; ++k) {
    S* row = p + k * t;
    const auto keys = static_cast<std::ptrdiff_t>(last[k]) + 1;
    auto valid = gpt2_row<S>(row, keys).array();
    const S mx = valid.maxCoeff();
    valid = (valid - mx).exp();
    valid *= S(1) / fixed_order_sum(valid);
    std::fill(row + keys, row + t, S(0));
  }
}

/// Backward of gpt2_causal_softmax_rows in place: dp [rows, t] becomes d loss / d scores.
template <class S>
void gpt2_causal_softmax_rows_backward(const S* p, std::ptrdiff_t rows, std::ptrdiff_t t, const std::size_t* last,
                                       S* dp) {
  for (std::ptrdiff_t k = 0; k < rows; ++k) {
    const auto keys = static_cast<std::ptrdiff_t>(last[k]) + 1;
    const auto pr = gpt2_crow<S>(p + k * t, keys).array();
    auto dr = gpt2_row<S>(dp + k * t, keys).array();
    const S dot = (pr * dr).sum();
    dr = pr * (dr - dot);
    std::fill(dp + k * t + keys, dp + (k + 1) * t, S(0));
  }
}

/// Softmax backward in place: dp [t, t] (d loss / d probabilities) becomes d loss / d scores,
/// dS = P * (dP - rowsum(dP * P)); entries of masked keys become 0.
template <class S>
void gpt2_causal_softmax_backward(const S* p, std::ptrdiff_t t, S* dp) {
  for (std::ptrdiff_t i = 0; i < t; ++i) {
    const auto pr = gpt2_crow<S>(p + i * t, i + 1).array();
    auto dr = gpt2_row<S>(dp + i * t, i + 1).array();
    const S dot = (pr * dr).sum();
    dr = pr * (dr - dot);
    std::fill(dp + i * t + i + 1, dp + (i + 1) * t, S(0));
  }
}

/// logits [p, v] = a [p, d] head [v, d]^T, the vocabulary split across threads (with few rows this
/// is a matrix-vector product, which Eigen does not parallelise itself).
template <class S>
void gpt2_unembed(const S* a, std::ptrdiff_t p, std::ptrdiff_t d, const S* head, std::ptrdiff_t v, S* logits) {
  gpt2_split(v, gpt2_thread_count(), [&](std::ptrdiff_t begin, std::ptrdiff_t end, int) {
    gpt2_gemm_serial(logits + begin, v, gpt2_op(a, p, d), gpt2_op(head + begin * d, end - begin, d).t(), S(1), false);
  });
}

/// Backward of gpt2_unembed: da [p, d] = dlogits head (a sum over the vocabulary, one partial sum per
/// thread in `scratch` [threads, p, d]); with d_head non-null also d_head [v, d] += dlogits^T a.
template <class S>
void gpt2_unembed_backward(const S* a, std::ptrdiff_t p, std::ptrdiff_t d, const S* head, std::ptrdiff_t v,
                           const S* dlogits, S* da, S* d_head, S* scratch, int threads) {
  gpt2_split(v, threads, [&](std::ptrdiff_t begin, std::ptrdiff_t end, int part) {
    const auto dz = gpt2_op(dlogits + begin, p, end - begin, v);
    gpt2_gemm_serial(scratch + part * p * d, d, dz, gpt2_op(head + begin * d, end - begin, d), S(1), false);
    if (d_head != nullptr) gpt2_gemm_serial(d_head + begin * d, d, dz.t(), gpt2_op(a, p, d), S(1), true);
  });
  gpt2_map<S> out(da, p, d);
  out = gpt2_cmap<S>(scratch, p, d);
  for (int part = 1; part < threads; ++part) out += gpt2_cmap<S>(scratch + part * p * d, p, d);
}

/// Eigen's aligned allocator whose resize leaves new scalars default-initialised (for float: not
/// written), so that growing an arena does not write every page once before the pass does.
template <class S>
struct gpt2_uninitialized_allocator : Eigen::aligned_allocator<S> {
  using value_type = S;
  template <class U>
  struct rebind {
    using other = gpt2_uninitialized_allocator<U>;
  };
  gpt2_uninitialized_allocator() = default;
  template <class U>
  gpt2_uninitialized_allocator(const gpt2_uninitialized_allocator<U>&) noexcept {}
  /// Default-initialises (no value: a float stays unwritten).
  template <class U>
  void construct(U* p) noexcept(std::is_nothrow_default_constructible_v<U>) {
    ::new (static_cast<void*>(p)) U;
  }
  /// Constructs from arguments, as std::allocator does.
  template <class U, class... A>
  void construct(U* p, A&&... args) {
    ::new (static_cast<void*>(p)) U(std::forward<A>(args)...);
  }
};

/// One reusable memory arena: it only grows, so a pass of a size seen before allocates nothing.
/// Every pass writes what it reads, so new memory is not zeroed; its pages are mapped in one call
/// (detail::prefault_for_writing) instead of a fault per page during the pass.
template <class S>
class gpt2_arena {
 public:
  /// Makes room for n scalars (keeping nothing) and returns the start of the arena.
  S* reserve(std::size_t n) {
    if (buffer_.size() < n) {
      buffer_.clear();
      buffer_.shrink_to_fit();
      buffer_.resize(n);
      prefault_for_writing(buffer_.data(), n * sizeof(S));
    }
    return buffer_.data();
  }
  /// Scalars currently held.
  std::size_t capacity() const { return buffer_.size(); }

 private:
  std::vector<S, gpt2_uninitialized_allocator<S>> buffer_;
};

/// Hands out pieces of an arena, each aligned to 64 bytes, after they were counted with the same calls.
template <class S>
class gpt2_carver {
 public:
  static constexpr std::size_t alignment = 64 / sizeof(S);  ///< scalars per 64 bytes

  /// Starts counting (base == nullptr) or carving from base.
  explicit gpt2_carver(S* base = nullptr) : base_(base) {}
  /// The next piece of n scalars (nullptr while counting).
  S* take(std::size_t n) {
    S* p = base_ != nullptr ? base_ + used_ : nullptr;
    used_ += (n + alignment - 1) / alignment * alignment;
    return p;
  }
  /// Scalars handed out so far.
  std::size_t used() const { return used_; }

 private:
  S* base_;
  std::size_t used_ = 0;
};

/// The memory of one pass: an activation arena (what the backward pass reads) and a scratch arena.
template <class S>
struct gpt2_workspace {
  gpt2_arena<S> activations;  ///< per-layer activations, or one reused set when nothing is kept
  gpt2_arena<S> gradients;    ///< backward buffers
  std::vector<std::size_t> rows;  ///< scratch row indices
};

/// A mutex-protected pool of workspaces, so that concurrent calls on one model never share memory.
template <class S>
class gpt2_workspace_pool {
 public:
  /// A workspace borrowed from the pool and given back when the handle goes out of scope.
  class handle {
   public:
    handle(gpt2_workspace_pool* pool, std::unique_ptr<gpt2_workspace<S>> ws) : pool_(pool), ws_(std::move(ws)) {}
    handle(const handle&) = delete;
    handle& operator=(const handle&) = delete;
    ~handle() {
      if (ws_) pool_->give_back(std::move(ws_));
    }
    /// The borrowed workspace.
    gpt2_workspace<S>& operator*() const { return *ws_; }
    /// The borrowed workspace.
    gpt2_workspace<S>* operator->() const { return ws_.get(); }

   private:
    gpt2_workspace_pool* pool_;
    std::unique_ptr<gpt2_workspace<S>> ws_;
  };

  /// An empty pool; makes a BLAS behind Eigen run single-threaded (the model splits its products itself).
  gpt2_workspace_pool() { blas_on_calling_thread(); }

  /// Borrows a free workspace, or makes a new one.
  handle acquire() {
    std::unique_ptr<gpt2_workspace<S>> ws;
    {
      std::lock_guard lock(mutex_);
      if (!free_.empty()) {
        ws = std::move(free_.back());
        free_.pop_back();
      }
    }
    if (!ws) ws = std::make_unique<gpt2_workspace<S>>();
    return handle(this, std::move(ws));
  }

  /// Frees every idle workspace.
  void clear() {
    std::lock_guard lock(mutex_);
    free_.clear();
  }

 private:
  void give_back(std::unique_ptr<gpt2_workspace<S>> ws) {
    std::lock_guard lock(mutex_);
    free_.push_back(std::move(ws));
  }

  std::mutex mutex_;
  std::vector<std::unique_ptr<gpt2_workspace<S>>> free_;
};

}  // namespace glassbox::detail

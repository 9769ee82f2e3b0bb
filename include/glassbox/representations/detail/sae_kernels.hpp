// glassbox: the numerical kernels of sparse autoencoder training (representations/sae.hpp): the
// loss and its exact gradient over a minibatch, by dense matrix products or, once the features are
// sparse, by products over the active entries only; the Adam update with the decoder-norm
// constraint; resampling of dead features. Internal to representations/sae.hpp.
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "glassbox/detail/blas.hpp"

// OpenMP is used only when the including program is compiled with it (-fopenmp); without it the
// pragmas vanish and everything runs on the calling thread.
#if defined(_OPENMP)
#include <omp.h>
#define GLASSBOX_DETAIL_SAE_PRAGMA(x) _Pragma(#x)
#define GLASSBOX_DETAIL_SAE_PARALLEL_FOR(condition) \
  GLASSBOX_DETAIL_SAE_PRAGMA(omp parallel for schedule(static) if (condition))
#else
#define GLASSBOX_DETAIL_SAE_PARALLEL_FOR(condition)
#endif

namespace glassbox::detail {

/// A dynamic row-major matrix of the SAE kernels.
template <class S>
using sae_matrix = Eigen::Matrix<S, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
/// A dynamic row vector of the SAE kernels.
template <class S>
using sae_row = Eigen::Matrix<S, 1, Eigen::Dynamic>;

/// The number of OpenMP threads a parallel region would use here (1 without OpenMP or inside one).
template <class = void>
inline int sae_thread_count() {
#if defined(_OPENMP)
  return omp_in_parallel() ? 1 : omp_get_max_threads();
#else
  return 1;
#endif
}

/// The parameters of an SAE during training, with the encoder stored as W_e [n, d] (row j = the
/// encoder vector of feature j; SAELens' W_enc is its transpose) and the decoder as W_dec [n, d]
/// (row j = the unit-norm dictionary direction of feature j).
template <class S>
struct sae_parameters {
  sae_matrix<S> W_e;    ///< [n, d]
  sae_row<S> b_e;       ///< [n]
  sae_matrix<S> W_dec;  ///< [n, d]
  sae_row<S> b_d;       ///< [d]

  /// Resizes every member to d inputs and n features, filled with zeros.
  void zeros(Eigen::Index d, Eigen::Index n) {
    W_e = sae_matrix<S>::Zero(n, d);
    b_e = sae_row<S>::Zero(n);
    W_dec = sae_matrix<S>::Zero(n, d);
    b_d = sae_row<S>::Zero(d);
  }
};

/// The active entries of the features of a minibatch, by row (CSR) and by feature (CSC).
template <class S>
struct sae_active_entries {
  std::vector<Eigen::Index> row_start, row_feature;  ///< CSR: features of row b at [row_start[b], row_start[b+1])
  std::vector<S> row_value;                          ///< f of each CSR entry
  std::vector<S> row_grad;                           ///< d loss / d pre-activation of each CSR entry
  std::vector<Eigen::Index> col_start, col_entry;    ///< CSC: the CSR entries of feature j, rows ascending
  std::vector<Eigen::Index> col_row;                 ///< the row of each CSC entry
};

/// The workspace of one minibatch: reused between steps (no allocation after the first step).
template <class S>
struct sae_workspace {
  sae_matrix<S> centred, pre, features, recon, d_recon, d_pre;  // [B, d], [B, n], [B, n], [B, d], [B, d], [B, n]
  sae_active_entries<S> active;
  std::vector<std::uint32_t> fired;  ///< per feature: rows of the batch where it fired
};

/// What one loss evaluation measured over its minibatch (sums in double).
struct sae_batch_loss {
  double loss = 0;           ///< reconstruction + l1 * sparsity, per row
  double reconstruction = 0; ///< mean over rows of ||x - x_hat||^2
  double sparsity = 0;       ///< mean over rows of ||f||_1
  double l0 = 0;             ///< mean over rows of the number of active features
};

/// c = a * b with a [m, k], b given as written or transposed; the larger of m and the output's
/// columns is split over the OpenMP threads (one product per thread, so a BLAS behind Eigen that
/// runs on its calling thread still uses the whole budget). Each output entry is computed by one
/// product whatever the split.
template <class S, class A, class B>
void sae_product(sae_matrix<S>& c, const A& a, const B& b) {
  const Eigen::Index m = a.rows(), n = b.cols(), k = a.cols();
  c.resize(m, n);
  const int threads = sae_thread_count();
  if (threads <= 1 || m * n * k < (Eigen::Index{1} << 20)) {
#if defined(_OPENMP)
    // Eigen's own products (without a BLAS) would start a thread team even for a small product;
    // one thread is faster there, and on a busy machine much faster.
    const int previous = omp_get_max_threads();
    if (previous > 1) omp_set_num_threads(1);
    c.noalias() = a * b;
    if (previous > 1) omp_set_num_threads(previous);
#else
    c.noalias() = a * b;
#endif
    return;
  }
  const bool split_rows = m >= n;
  const Eigen::Index total = split_rows ? m : n;
  GLASSBOX_DETAIL_SAE_PARALLEL_FOR(true)
  for (int part = 0; part < threads; ++part) {
    const Eigen::Index begin = total * part / threads, end = total * (part + 1) / threads;
    if (end <= begin) continue;
    if (split_rows) {
      c.middleRows(begin, end - begin).noalias() = a.middleRows(begin, end - begin) * b;
    } else {
      c.middleCols(begin, end - begin).noalias() = a * b.middleCols(begin, end - begin);
    }
  }
}

/// Column sums of x [B, c] accumulated in double, in row order (the same on every thread count).
template <class S, class M>
void sae_column_sums(const M& x, std::vector<double>& out) {
  out.assign(static_cast<std::size_t>(x.cols()), 0.0);
  for (Eigen::Index r = 0; r < x.rows(); ++r)
    for (Eigen::Index c = 0; c < x.cols(); ++c) out[static_cast<std::size_t>(c)] += static_cast<double>(x(r, c));
}

/// The loss of the SAE on the minibatch x [B, d], and (with `grad` non-null) its gradient:
///   loss = (1/B) sum_b ( ||x_b - x_hat_b||^2 + l1 ||f_b||_1 ),
///   f = ReLU((x - b_d) W_e^T + b_e), x_hat = f W_dec + b_d.
/// `sparse` computes every product that involves f or d loss / d pre over the active entries only
/// (the same gradient; the float rounding of sums differs). `ws.fired` counts, per feature, the rows
/// where it is active.
template <class S>
sae_batch_loss sae_loss_gradient(const sae_parameters<S>& p, const sae_matrix<S>& x, S l1, sae_workspace<S>& ws,
                                 sae_parameters<S>* grad, bool sparse) {
  const Eigen::Index batch = x.rows(), d = x.cols(), n = p.W_e.rows();
  const S inv_batch = S(1) / static_cast<S>(batch);
  ws.centred = x.rowwise() - p.b_d;
  sae_product<S>(ws.pre, ws.centred, p.W_e.transpose());
  ws.pre.rowwise() += p.b_e;
  ws.fired.assign(static_cast<std::size_t>(n), 0);

  // The active entries, by row.
  auto& a = ws.active;
  a.row_start.assign(static_cast<std::size_t>(batch) + 1, 0);
  a.row_feature.clear();
  a.row_value.clear();
  double sparsity = 0;
  for (Eigen::Index b = 0; b < batch; ++b) {
    const S* pre = ws.pre.data() + b * n;
    double row_l1 = 0;
    for (Eigen::Index j = 0; j < n; ++j)
      if (pre[j] > S(0)) {
        a.row_feature.push_back(j);
        a.row_value.push_back(pre[j]);
        row_l1 += static_cast<double>(pre[j]);
        ++ws.fired[static_cast<std::size_t>(j)];
      }
    a.row_start[static_cast<std::size_t>(b) + 1] = static_cast<Eigen::Index>(a.row_feature.size());
    sparsity += row_l1;
  }
  const std::size_t nnz = a.row_feature.size();

  // The reconstruction x_hat = f W_dec + b_d.
  if (sparse) {
    ws.recon.resize(batch, d);
    GLASSBOX_DETAIL_SAE_PARALLEL_FOR(nnz * static_cast<std::size_t>(d) >= (std::size_t{1} << 17))
    for (Eigen::Index b = 0; b < batch; ++b) {
      auto out = ws.recon.row(b);
      out = p.b_d;
      for (Eigen::Index e = a.row_start[static_cast<std::size_t>(b)]; e < a.row_start[static_cast<std::size_t>(b) + 1];
           ++e)
        out += a.row_value[static_cast<std::size_t>(e)] * p.W_dec.row(a.row_feature[static_cast<std::size_t>(e)]);
    }
  } else {
    ws.features = ws.pre.cwiseMax(S(0));
    sae_product<S>(ws.recon, ws.features, p.W_dec);
    ws.recon.rowwise() += p.b_d;
  }
  ws.d_recon = ws.recon - x;  // the error x_hat - x; scaled to the gradient below
  double reconstruction = 0;
  for (Eigen::Index b = 0; b < batch; ++b) reconstruction += static_cast<double>(ws.d_recon.row(b).squaredNorm());

  sae_batch_loss out;
  out.reconstruction = reconstruction / static_cast<double>(batch);
  out.sparsity = sparsity / static_cast<double>(batch);
  out.loss = out.reconstruction + static_cast<double>(l1) * out.sparsity;
  out.l0 = static_cast<double>(nnz) / static_cast<double>(batch);
  if (grad == nullptr) return out;

  ws.d_recon *= S(2) * inv_batch;  // d loss / d x_hat
  const S l1_grad = l1 * inv_batch;
  grad->b_e.resize(n);
  grad->b_d.resize(d);
  grad->W_e.resize(n, d);
  grad->W_dec.resize(n, d);
  std::vector<double> db_e, db_d;
  if (sparse) {
    // d loss / d pre at the active entries: (d_recon_b . W_dec[j]) + l1 / B.
    a.row_grad.resize(nnz);
    GLASSBOX_DETAIL_SAE_PARALLEL_FOR(nnz * static_cast<std::size_t>(d) >= (std::size_t{1} << 17))
    for (Eigen::Index b = 0; b < batch; ++b)
      for (Eigen::Index e = a.row_start[static_cast<std::size_t>(b)]; e < a.row_start[static_cast<std::size_t>(b) + 1];
           ++e)
        a.row_grad[static_cast<std::size_t>(e)] =
            ws.d_recon.row(b).dot(p.W_dec.row(a.row_feature[static_cast<std::size_t>(e)])) + l1_grad;
    // The entries by feature (a counting sort keeps rows ascending).
    a.col_start.assign(static_cast<std::size_t>(n) + 1, 0);
    for (std::size_t e = 0; e < nnz; ++e) ++a.col_start[static_cast<std::size_t>(a.row_feature[e]) + 1];
    for (Eigen::Index j = 0; j < n; ++j)
      a.col_start[static_cast<std::size_t>(j) + 1] += a.col_start[static_cast<std::size_t>(j)];
    a.col_entry.resize(nnz);
    a.col_row.resize(nnz);
    {
      std::vector<Eigen::Index> next(a.col_start.begin(), a.col_start.end() - 1);
      for (Eigen::Index b = 0; b < batch; ++b)
        for (Eigen::Index e = a.row_start[static_cast<std::size_t>(b)];
             e < a.row_start[static_cast<std::size_t>(b) + 1]; ++e) {
          const auto slot = static_cast<std::size_t>(next[static_cast<std::size_t>(a.row_feature[static_cast<std::size_t>(e)])]++);
          a.col_entry[slot] = e;
          a.col_row[slot] = b;
        }
    }
    db_e.assign(static_cast<std::size_t>(n), 0.0);
    GLASSBOX_DETAIL_SAE_PARALLEL_FOR(nnz * static_cast<std::size_t>(d) >= (std::size_t{1} << 17))
    for (Eigen::Index j = 0; j < n; ++j) {
      auto gw = grad->W_e.row(j);
      auto gd = grad->W_dec.row(j);
      gw.setZero();
      gd.setZero();
      double bias = 0;
      for (Eigen::Index s = a.col_start[static_cast<std::size_t>(j)]; s < a.col_start[static_cast<std::size_t>(j) + 1];
           ++s) {
        const auto e = static_cast<std::size_t>(a.col_entry[static_cast<std::size_t>(s)]);
        const Eigen::Index b = a.col_row[static_cast<std::size_t>(s)];
        gd += a.row_value[e] * ws.d_recon.row(b);
        gw += a.row_grad[e] * ws.centred.row(b);
        bias += static_cast<double>(a.row_grad[e]);
      }
      db_e[static_cast<std::size_t>(j)] = bias;
    }
  } else {
    // d loss / d pre = (d_recon W_dec^T + l1 / B) where pre > 0, else 0.
    sae_product<S>(ws.d_pre, ws.d_recon, p.W_dec.transpose());
    ws.d_pre = ((ws.pre.array() > S(0)).select(ws.d_pre.array() + l1_grad, S(0))).matrix();
    sae_product<S>(grad->W_dec, ws.features.transpose(), ws.d_recon);
    sae_product<S>(grad->W_e, ws.d_pre.transpose(), ws.centred);
    sae_column_sums<S>(ws.d_pre, db_e);
  }
  sae_column_sums<S>(ws.d_recon, db_d);
  // b_d enters twice: x_hat = ... + b_d, and pre = (x - b_d) W_e^T + b_e: d/d b_d = sum_b d_recon_b - db_e W_e.
  for (Eigen::Index j = 0; j < n; ++j) grad->b_e[j] = static_cast<S>(db_e[static_cast<std::size_t>(j)]);
  std::vector<double> through_encoder(static_cast<std::size_t>(d), 0.0);
  for (Eigen::Index j = 0; j < n; ++j) {
    const double g = db_e[static_cast<std::size_t>(j)];
    if (g == 0) continue;
    for (Eigen::Index c = 0; c < d; ++c) through_encoder[static_cast<std::size_t>(c)] += g * static_cast<double>(p.W_e(j, c));
  }
  for (Eigen::Index c = 0; c < d; ++c)
    grad->b_d[c] = static_cast<S>(db_d[static_cast<std::size_t>(c)] - through_encoder[static_cast<std::size_t>(c)]);
  return out;
}

/// Removes from each decoder row's gradient its component along the row (the rows have unit
/// norm, so this is the gradient's projection onto the tangent space of the unit sphere).
template <class S>
void sae_remove_parallel_gradient(const sae_matrix<S>& W_dec, sae_matrix<S>& g) {
  GLASSBOX_DETAIL_SAE_PARALLEL_FOR(W_dec.size() >= (Eigen::Index{1} << 17))
  for (Eigen::Index j = 0; j < W_dec.rows(); ++j) {
    const S along = g.row(j).dot(W_dec.row(j));
    g.row(j) -= along * W_dec.row(j);
  }
}

/// Scales each row of w to unit Euclidean norm (a zero row stays zero).
template <class S>
void sae_normalise_rows(sae_matrix<S>& w) {
  GLASSBOX_DETAIL_SAE_PARALLEL_FOR(w.size() >= (Eigen::Index{1} << 17))
  for (Eigen::Index j = 0; j < w.rows(); ++j) {
    const S norm = w.row(j).norm();
    if (norm > S(0)) w.row(j) /= norm;
  }
}

/// One Adam update of `x` with gradient `g` and moments m, v (Kingma & Ba 2015, with bias correction
/// at step t >= 1): x -= lr * m_hat / (sqrt(v_hat) + eps).
template <class S, class X>
void sae_adam_update(X& x, const X& g, X& m, X& v, S lr, S beta1, S beta2, S eps, std::size_t t) {
  const S c1 = S(1) - static_cast<S>(std::pow(static_cast<double>(beta1), static_cast<double>(t)));
  const S c2 = S(1) - static_cast<S>(std::pow(static_cast<double>(beta2), static_cast<double>(t)));
  const S step = lr / c1, root_c2 = std::sqrt(c2);
  auto xa = x.array();
  auto ga = g.array();
  auto ma = m.array();
  auto va = v.array();
  ma = beta1 * ma + (S(1) - beta1) * ga;
  va = beta2 * va + (S(1) - beta2) * ga.square();
  xa -= step * ma / (va.sqrt() / root_c2 + eps);
}

}  // namespace glassbox::detail

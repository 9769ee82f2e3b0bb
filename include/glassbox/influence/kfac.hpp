// glassbox: K-FAC / EK-FAC influence scores (Grosse et al. 2023; Kronfluence): pairwise scores of
// a batch of queries against a training set in one sweep, self-influence, per-token influence.
//
//   s(q, n) = sum_layers <P(G_q), G_n> = sum_layers sum_t g_t^T P(G_q) a_t
// with G_q = grad f_q per layer (measurement.hpp: sum_k w_k of its terms' layer gradients), P the
// preconditioner of the fitted factors (kfac_factors.hpp) and g_t, a_t the per-token statistics of
// training example n under its own labels: per-example training gradients are never stored.
// Query batching: each preconditioned query gradient may be replaced per layer by its best rank-k
// approximation (SVD), P(G_q) ~ U_k S_k V_k^T, scored as sum_t (g_t^T U_k S_k)(V_k^T a_t).
// Scores are computed shard by shard (kfac_score_options::shard_size training examples); a
// kfac_shard_store (io/influence_factors.hpp writes one to disk) keeps finished shards so that an
// interrupted run resumes without redoing them.
#pragma once

#include <Eigen/SVD>
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "glassbox/core/error.hpp"
#include "glassbox/core/execution.hpp"
#include "glassbox/core/model.hpp"
#include "glassbox/core/progress.hpp"
#include "glassbox/core/result.hpp"
#include "glassbox/core/types.hpp"
#include "glassbox/detail/eigen.hpp"
#include "glassbox/influence/kfac_factors.hpp"
#include "glassbox/influence/measurement.hpp"
#include "glassbox/influence/result.hpp"

namespace glassbox {

/// Preconditioned query gradients, ready to be scored against training examples.
struct kfac_query_batch {
  /// One layer's preconditioned query gradients: stacked exactly or as rank-k factors.
  struct layer {
    std::size_t rank = 0;           ///< 0: `full` holds them; else k: `left` and `right` do
    detail::row_matrix<float> full;   ///< [queries, d_out (d_in + 1)]: row q = P(G_q) flattened row-major
    detail::row_matrix<float> left;   ///< [d_out, queries k]: U_k S_k of each query, side by side
    detail::row_matrix<float> right;  ///< [d_in + 1, queries k]: V_k of each query, side by side
  };
  std::size_t queries = 0;           ///< Q
  std::vector<double> values;        ///< f_q at the model's parameters
  std::vector<layer> layers;         ///< per tracked layer
  std::size_t model_evaluations = 0; ///< kfac_statistics and loss calls it took
};

namespace detail {

/// Throws unless `model` is the model `factors` were fitted on.
template <class M>
void kfac_check_model(const M& model, const kfac_factors& factors, std::string_view caller) {
  require(model.parameter_count() == factors.model_parameters,
          "glassbox::{}: the model must be the one the factors were fitted on ({} parameters), got {} parameters",
          caller, factors.model_parameters, model.parameter_count());
  const std::string fp = parameter_fingerprint(model.parameters());
  require(fp == factors.model_fingerprint,
          "glassbox::{}: the model must be the one the factors were fitted on (fingerprint {}), got fingerprint {}",
          caller, factors.model_fingerprint, fp);
}

/// Per tracked layer, the gradient G = sum_t g_t a_t^T [d_out, d_in + 1] of one statistics call.
/// (A template, float always, so that its products are compiled only where it is called:
/// docs/building.md, "Include cost".)
template <class Real = float>
std::vector<row_matrix<Real>> kfac_layer_gradients(std::vector<linear_layer_statistics>& stats,
                                                     std::span<const kfac_layer_factors> layers,
                                                     std::string_view caller, std::string_view what,
                                                     std::size_t index) {
  std::vector<row_matrix<Real>> out(layers.size());
  for (std::size_t l = 0; l < layers.size(); ++l) {
    const std::size_t pos = kfac_find_layer(stats, layers[l], l, caller, index, what);
    const row_matrix<Real> a = kfac_augmented(stats[pos].inputs, layers[l].has_bias);
    const dependent_t<Real, kfac_cmap> g = kfac_view(stats[pos].output_gradients);  // see dependent_t
    out[l] = g.transpose() * a;
  }
  return out;
}

/// The per-example statistics of the tracked layers, in order: inputs made [x, 1] and output gradients.
struct kfac_token_statistics {
  std::vector<kfac_matrix> inputs;     ///< per layer [n, d_in + 1]
  std::vector<kfac_matrix> gradients;  ///< per layer [n, d_out]
};

template <class T = void>
inline kfac_token_statistics kfac_token_stats(std::vector<linear_layer_statistics>& stats,
                                              std::span<const kfac_layer_factors> layers, std::string_view caller,
                                              std::size_t index) {
  kfac_token_statistics out;
  out.inputs.resize(layers.size());
  out.gradients.resize(layers.size());
  for (std::size_t l = 0; l < layers.size(); ++l) {
    const std::size_t pos = kfac_find_layer(stats, layers[l], l, caller, index);
    // Assignments that depend on T: compiled where this is instantiated (see dependent_t).
    depend<T>(out.inputs[l]) = kfac_augmented(stats[pos].inputs, layers[l].has_bias);
    depend<T>(out.gradients[l]) = kfac_view(stats[pos].output_gradients);
  }
  return out;
}

/// Checks a training example's shape before a model call.
template <class = void>
inline void kfac_check_example(const training_example& e, std::size_t index, std::string_view caller) {
  require<shape_error>(!e.tokens.empty() && e.labels.size() == e.tokens.size(),
                       "glassbox::{}: training example {} must have tokens and one label per token, got {} tokens and "
                       "{} labels",
                       caller, index, e.tokens.size(), e.labels.size());
}

/// Per-query score contributions of one layer of one example, token by token: [Q, n] (rows: queries).
/// (A template, float always, so that its products are compiled only where it is called.)
template <class Real = float>
detail::row_matrix<double> kfac_layer_token_scores(const kfac_query_batch::layer& q, std::size_t queries,
                                                   const row_matrix<Real>& a, const row_matrix<Real>& g) {
  using kfac_matrix = row_matrix<Real>;
  const Eigen::Index n = a.rows();
  row_matrix<dependent_t<Real, double>> out(kfac_ix(queries), n);  // see dependent_t
  if (q.rank == 0) {
    const Eigen::Index o = g.cols(), d = a.cols();
    const auto& full = depend<Real>(q.full);
    for (std::size_t k = 0; k < queries; ++k) {
      const kfac_cmap p(full.data() + static_cast<Eigen::Index>(k) * o * d, o, d);
      const kfac_matrix gp = g * p;  // [n, d]
      out.row(kfac_ix(k)) = (gp.array() * a.array()).template cast<double>().rowwise().sum().transpose();
    }
  } else {
    const kfac_matrix x = g * q.left;   // [n, Qk]
    const kfac_matrix y = a * q.right;  // [n, Qk]
    const auto k = kfac_ix(q.rank);
    for (std::size_t j = 0; j < queries; ++j)
      out.row(kfac_ix(j)) = (x.middleCols(kfac_ix(j) * k, k).array() * y.middleCols(kfac_ix(j) * k, k).array())
                                .template cast<double>()
                                .rowwise()
                                .sum()
                                .transpose();
  }
  return out;
}

/// Columns [j, j + k) of `out.left` and `out.right`: the best rank-k factors U_k S_k and V_k of `g`
/// (SVD in double). A template on the scalar so that the SVD compiles only where it is called
/// (docs/building.md, "Include cost").
template <class Real = double>
void kfac_low_rank(const kfac_matrix& g, Eigen::Index k, Eigen::Index j, kfac_query_batch::layer& out) {
  using matrix = Eigen::Matrix<Real, Eigen::Dynamic, Eigen::Dynamic>;
  const matrix m = g.template cast<Real>();
  Eigen::BDCSVD<matrix> svd(m, Eigen::ComputeThinU | Eigen::ComputeThinV);
  depend<Real>(out.left).middleCols(j, k) =
      (svd.matrixU().leftCols(k) * svd.singularValues().head(k).asDiagonal()).template cast<float>();
  depend<Real>(out.right).middleCols(j, k) = svd.matrixV().leftCols(k).template cast<float>();
}

}  // namespace detail

/// Preconditions the gradients of `queries` (one kfac_statistics call per measurement term, summed
/// with the terms' weights in double): P(G_q) per tracked layer, stacked for a sweep over the
/// training set; with `rank` > 0, each is replaced by its best rank-`rank` approximation (SVD in double).
template <class M>
kfac_query_batch kfac_prepare_queries(const M& model, const kfac_factors& factors,
                                      const kfac_preconditioner& preconditioner, std::span<const measurement> queries,
                                      std::size_t rank = 0, const execution_options& exec = {}) {
  // Eigen types that depend on M: compiled where this is instantiated (see dependent_t).
  using real = detail::dependent_t<M, double>;
  using real_f = detail::dependent_t<M, float>;
  static_assert(check_kfac_model<M>());
  detail::require(!queries.empty(), "glassbox::kfac_prepare_queries: queries must not be empty");
  const auto& layers = factors.layers;
  const std::size_t nq = queries.size();
  std::vector<std::vector<detail::row_matrix<real_f>>> pre(nq);
  kfac_query_batch batch;
  batch.queries = nq;
  batch.values.assign(nq, 0.0);
  std::vector<std::size_t> evaluations(nq, 0);
  detail::kfac_parallel_for(nq, detail::worker_count(exec, is_thread_safe<M>()), exec, "kfac_prepare_queries",
                            [&](std::size_t q) {
                              std::vector<detail::row_matrix<real>> sum(layers.size());
                              for (std::size_t l = 0; l < layers.size(); ++l)
                                sum[l].setZero(detail::kfac_ix(layers[l].output_dim),
                                               detail::kfac_ix(layers[l].augmented_input_dim()));
                              for (const auto& term : queries[q].terms()) {
                                std::vector<linear_layer_statistics> stats = model.kfac_statistics(term.example);
                                const auto g = detail::kfac_layer_gradients(stats, layers, "kfac_prepare_queries",
                                                                            "query", q);
                                for (std::size_t l = 0; l < layers.size(); ++l)
                                  sum[l] += term.weight * g[l].template cast<real>();
                              }
                              batch.values[q] = measurement_value(model, queries[q]);
                              evaluations[q] = 2 * queries[q].terms().size();
                              pre[q].resize(layers.size());
                              for (std::size_t l = 0; l < layers.size(); ++l) {
                                pre[q][l] = sum[l].template cast<float>();
                                preconditioner.apply(l, pre[q][l]);
                              }
                            });
  for (auto e : evaluations) batch.model_evaluations += e;
  batch.layers.resize(layers.size());
  for (std::size_t l = 0; l < layers.size(); ++l) {
    const auto o = detail::kfac_ix(layers[l].output_dim), a = detail::kfac_ix(layers[l].augmented_input_dim());
    auto& out = detail::depend<M>(batch.layers[l]);
    if (rank == 0 || static_cast<Eigen::Index>(rank) >= std::min(o, a)) {
      out.rank = 0;
      out.full.resize(static_cast<Eigen::Index>(nq), o * a);
      for (std::size_t q = 0; q < nq; ++q)
        out.full.row(static_cast<Eigen::Index>(q)) =
            Eigen::Map<const Eigen::Matrix<real_f, 1, Eigen::Dynamic>>(pre[q][l].data(), o * a);
    } else {
      const auto k = static_cast<Eigen::Index>(rank);
      out.rank = rank;
      out.left.resize(o, static_cast<Eigen::Index>(nq) * k);
      out.right.resize(a, static_cast<Eigen::Index>(nq) * k);
      for (std::size_t q = 0; q < nq; ++q)
        detail::kfac_low_rank(pre[q][l], k, static_cast<Eigen::Index>(q) * k, out);
    }
  }
  return batch;
}

namespace detail {

/// Rows of every score product (see kfac_score_block).
inline constexpr std::size_t kfac_gemm_rows = 16;

/// Scores of the prepared queries on training examples [begin, end) of `train` into `out` ([Q, end -
/// begin], row-major), in steps of exec.batch_size; `done(k)` is called after each step of k examples.
template <class M>
void kfac_score_block(const M& model, const kfac_factors& factors, const kfac_query_batch& batch,
                      std::span<const training_example> train, std::size_t begin, std::size_t end,
                      std::span<float> out, const execution_options& exec, const std::function<void(std::size_t)>& done) {
  // Eigen types that depend on M: compiled where this is instantiated (see dependent_t).
  using matrix = detail::row_matrix<dependent_t<M, float>>;
  const auto& layers = factors.layers;
  const std::size_t nq = batch.queries, width = end - begin;
  const std::size_t model_workers = worker_count(exec, is_thread_safe<M>()), workers = worker_count(exec, true);
  // Per layer: stacked example gradients (exact layers) or finished scores (rank-k layers), reused
  // from step to step. Exact layers are scored by products of a fixed shape (kfac_gemm_rows
  // examples, zero-padded), so that the scoring itself adds no dependence on the batch size, thread
  // count or MPI rank count (the model's statistics may still differ in the last bits from call to call).
  const std::size_t capacity = (std::min(width, exec.batch_size) + kfac_gemm_rows - 1) / kfac_gemm_rows * kfac_gemm_rows;
  std::vector<matrix> grads(layers.size());
  std::vector<detail::row_matrix<dependent_t<M, double>>> partial(layers.size());
  for (std::size_t l = 0; l < layers.size(); ++l)
    if (batch.layers[l].rank == 0) grads[l].resize(kfac_ix(capacity), kfac_ix(layers[l].parameter_count()));
  for (std::size_t b0 = begin; b0 < end; b0 += exec.batch_size) {
    const std::size_t b1 = std::min(end, b0 + exec.batch_size), nb = b1 - b0;
    const std::size_t padded = (nb + kfac_gemm_rows - 1) / kfac_gemm_rows * kfac_gemm_rows;
    for (std::size_t l = 0; l < layers.size(); ++l) {
      if (batch.layers[l].rank == 0)
        grads[l].middleRows(kfac_ix(nb), kfac_ix(padded - nb)).setZero();
      else
        partial[l].setZero(kfac_ix(nb), kfac_ix(nq));
    }
    kfac_parallel_for(nb, model_workers, exec, "kfac_influence", [&](std::size_t i) {
      const std::size_t n = b0 + i;
      kfac_check_example(train[n], n, "kfac_influence");
      std::vector<linear_layer_statistics> stats = model.kfac_statistics(train[n]);
      const auto s = kfac_token_stats(stats, layers, "kfac_influence", n);
      for (std::size_t l = 0; l < layers.size(); ++l) {
        const auto o = kfac_ix(layers[l].output_dim), a = kfac_ix(layers[l].augmented_input_dim());
        const matrix& inputs = s.inputs[l];
        const matrix& gradients = s.gradients[l];
        if (batch.layers[l].rank == 0) {
          Eigen::Map<matrix>(grads[l].row(kfac_ix(i)).data(), o, a).noalias() = gradients.transpose() * inputs;
        } else {
          partial[l].row(kfac_ix(i)) =
              kfac_layer_token_scores(batch.layers[l], nq, inputs, gradients).rowwise().sum().transpose();
        }
      }
    });
    kfac_parallel_for(layers.size(), workers, exec, "kfac_influence", [&](std::size_t l) {
      if (batch.layers[l].rank != 0) return;
      partial[l].resize(kfac_ix(nb), kfac_ix(nq));
      const auto rows = kfac_ix(kfac_gemm_rows);
      for (std::size_t r0 = 0; r0 < nb; r0 += kfac_gemm_rows) {
        const matrix s = grads[l].middleRows(kfac_ix(r0), rows) * depend<M>(batch.layers[l].full).transpose();
        const auto keep = kfac_ix(std::min(kfac_gemm_rows, nb - r0));
        partial[l].middleRows(kfac_ix(r0), keep) = s.topRows(keep).template cast<double>();
      }
    });
    for (std::size_t i = 0; i < nb; ++i)
      for (std::size_t q = 0; q < nq; ++q) {
        double total = 0;
        for (std::size_t l = 0; l < layers.size(); ++l) total += partial[l](kfac_ix(i), kfac_ix(q));
        out[q * width + (b0 - begin) + i] = static_cast<float>(total);
      }
    if (done) done(nb);
  }
}

/// Runs `compute(begin, end, block)` over the shards of [begin, end) (shard boundaries are multiples
/// of shard_size from 0), taking finished shards from `store` and handing new ones to it; `rows` rows per shard.
template <class = void>
inline void kfac_sharded(std::size_t begin, std::size_t end, std::size_t rows, std::size_t shard_size,
                         const kfac_shard_store& store, std::span<float> out, progress_reporter& reporter,
                         const std::function<void(std::size_t, std::size_t, std::span<float>)>& compute) {
  const std::size_t width = end - begin;
  std::vector<float> block;
  for (std::size_t s0 = begin; s0 < end;) {
    const std::size_t s1 = std::min(end, (s0 / shard_size + 1) * shard_size), w = s1 - s0;
    block.assign(rows * w, 0.0f);
    const bool whole = s0 % shard_size == 0 && (s1 % shard_size == 0 || s1 == end);
    bool loaded = false;
    if (whole && store.load) loaded = store.load(s0, s1, block);
    if (!loaded) {
      compute(s0, s1, block);
      if (whole && store.save) store.save(s0, s1, block);
    } else {
      reporter.advance(w);
    }
    for (std::size_t r = 0; r < rows; ++r)
      std::copy_n(block.data() + r * w, w, out.data() + r * width + (s0 - begin));
    s0 = s1;
  }
}

template <class = void>
inline void kfac_check_score_options(const kfac_score_options& o, std::string_view caller) {
  require(o.shard_size >= 1, "glassbox::{}: shard_size must be >= 1, got 0", caller);
  require(o.common.execution.batch_size >= 1, "glassbox::{}: batch_size must be >= 1, got 0", caller);
}

/// The options a K-FAC result records.
template <class = void>
inline std::vector<named_option> kfac_recorded_options(const kfac_factors& f, const kfac_score_options& o) {
  const std::optional<double> d = o.common.damping ? o.common.damping : f.damping;
  std::vector<named_option> out{{"method", std::string(to_string(f.method))},
                                {"fisher", std::string(to_string(f.fisher))},
                                {"layers", static_cast<std::int64_t>(f.layers.size())},
                                {"tracked_parameters", static_cast<std::int64_t>(f.tracked_parameters())},
                                {"query_rank", static_cast<std::int64_t>(o.query_rank)},
                                {"shard_size", static_cast<std::int64_t>(o.shard_size)},
                                {"top_k", static_cast<std::int64_t>(o.common.top_k)},
                                {"seed", static_cast<std::int64_t>(f.seed)},
                                {"batch_size", static_cast<std::int64_t>(o.common.execution.batch_size)}};
  if (d)
    out.push_back({"damping", *d});
  else
    out.push_back({"damping", std::string("0.1 x mean(Lambda) per layer")});
  return out;
}

}  // namespace detail

/// Scores of prepared queries on training examples [begin, end) of `train`, [Q, end - begin]: the
/// building block of kfac_influence and of its MPI version. Shards come from and go to options.shards.
template <class M>
tensor2 kfac_influence_scores(const M& model, const kfac_factors& factors, const kfac_query_batch& batch,
                              std::span<const training_example> train, std::size_t begin, std::size_t end,
                              const kfac_score_options& options = {}) {
  static_assert(check_kfac_model<M>());
  detail::kfac_check_score_options(options, "kfac_influence");
  detail::require<shape_error>(begin <= end && end <= train.size(),
                               "glassbox::kfac_influence: the range must lie in [0, {}], got [{}, {})", train.size(),
                               begin, end);
  detail::require(batch.layers.size() == factors.layers.size(),
                  "glassbox::kfac_influence: the query batch must have {} layers, got {}", factors.layers.size(),
                  batch.layers.size());
  const auto& exec = options.common.execution;
  tensor2 out({batch.queries, end - begin});
  detail::progress_reporter reporter(exec.on_progress, exec.stop, end - begin, "kfac_influence");
  reporter.check();
  detail::kfac_sharded(begin, end, batch.queries, options.shard_size, options.shards,
                       std::span<float>(out.data(), out.size()), reporter,
                       [&](std::size_t s0, std::size_t s1, std::span<float> block) {
                         detail::kfac_score_block(model, factors, batch, train, s0, s1, block, exec,
                                                  [&](std::size_t k) { reporter.advance(k); });
                       });
  return out;
}

/// K-FAC / EK-FAC pairwise influence s(q, n) of every query on every training example, in one
/// sweep over the training set (Kronfluence's compute_pairwise_scores): the score matrix
/// [queries, N], the top-k most helpful and harmful examples per query, and f_q. The model must be
/// the one the factors were fitted on. Costs one kfac_statistics call per training example and two
/// calls per query term.
///
/// Example:
///   auto factors = glassbox::fit_kfac_factors(model, train);
///   std::vector<glassbox::measurement> q{glassbox::measurement::loss(query)};
///   auto r = glassbox::kfac_influence(model, factors, q, train, {.common = {.top_k = 5}});
template <class M>
influence_result kfac_influence(const M& model, const kfac_factors& factors, std::span<const measurement> queries,
                                std::span<const training_example> train, const kfac_score_options& options = {}) {
  static_assert(check_kfac_model<M>());
  detail::kfac_check_score_options(options, "kfac_influence");
  detail::require(!queries.empty(), "glassbox::kfac_influence: queries must not be empty");
  detail::require(!train.empty(), "glassbox::kfac_influence: training examples must not be empty");
  detail::kfac_check_model(model, factors, "kfac_influence");
  const kfac_preconditioner p = make_kfac_preconditioner(factors, options.common.damping);
  const kfac_query_batch batch =
      kfac_prepare_queries(model, factors, p, queries, options.query_rank, options.common.execution);
  influence_result r;
  r.method = std::string(to_string(factors.method));
  r.training_size = train.size();
  r.scores = kfac_influence_scores(model, factors, batch, train, 0, train.size(), options);
  r.query_values = batch.values;
  const std::optional<double> d = options.common.damping ? options.common.damping : factors.damping;
  r.damping = d ? *d : std::numeric_limits<double>::quiet_NaN();
  r.model_evaluations = batch.model_evaluations + train.size();
  r.options = detail::kfac_recorded_options(factors, options);
  rank_influence(r, options.common.top_k);
  return r;
}

/// Self-influence s(n, n) = <G_n, P(G_n)> of training examples [begin, end), computed in the
/// factors' eigenbasis (sum (Q_S^T G Q_A)^2 / (Lambda + damping)); shards from and to options.shards.
template <class M>
std::vector<double> kfac_self_influence_scores(const M& model, const kfac_factors& factors,
                                               const kfac_preconditioner& p, std::span<const training_example> train,
                                               std::size_t begin, std::size_t end,
                                               const kfac_score_options& options = {}) {
  // Eigen types that depend on M: compiled where this is instantiated (see dependent_t).
  using matrix = detail::row_matrix<detail::dependent_t<M, float>>;
  static_assert(check_kfac_model<M>());
  detail::kfac_check_score_options(options, "kfac_self_influence");
  detail::require<shape_error>(begin <= end && end <= train.size(),
                               "glassbox::kfac_self_influence: the range must lie in [0, {}], got [{}, {})",
                               train.size(), begin, end);
  const auto& exec = options.common.execution;
  const auto& layers = factors.layers;
  const bool rotate = factors.method == factor_method::ekfac || factors.method == factor_method::kfac;
  std::vector<float> out(end - begin);
  detail::progress_reporter reporter(exec.on_progress, exec.stop, end - begin, "kfac_self_influence");
  reporter.check();
  const std::size_t workers = detail::worker_count(exec, is_thread_safe<M>());
  detail::kfac_sharded(
      begin, end, 1, options.shard_size, options.shards, out, reporter,
      [&](std::size_t s0, std::size_t s1, std::span<float> block) {
        for (std::size_t b0 = s0; b0 < s1; b0 += exec.batch_size) {
          const std::size_t b1 = std::min(s1, b0 + exec.batch_size);
          detail::kfac_parallel_for(b1 - b0, workers, exec, "kfac_self_influence", [&](std::size_t i) {
            const std::size_t n = b0 + i;
            detail::kfac_check_example(train[n], n, "kfac_self_influence");
            std::vector<linear_layer_statistics> stats = model.kfac_statistics(train[n]);
            const auto s = detail::kfac_token_stats(stats, layers, "kfac_self_influence", n);
            double total = 0;
            for (std::size_t l = 0; l < layers.size(); ++l) {
              const matrix& inputs = s.inputs[l];
              const matrix& gradients = s.gradients[l];
              const Eigen::Map<const matrix> g(gradients.data(), gradients.rows(), gradients.cols());
              const matrix rotated =
                  rotate ? detail::kfac_rotated(g, inputs, detail::kfac_view(layers[l].gradient_eigenvectors),
                                                detail::kfac_view(layers[l].activation_eigenvectors))
                         : matrix(g.transpose() * inputs);
              total += p.quadratic(l, rotated);
            }
            block[n - s0] = static_cast<float>(total);
          });
          reporter.advance(b1 - b0);
        }
      });
  return std::vector<double>(out.begin(), out.end());
}

/// K-FAC / EK-FAC self-influence s(n, n) of every training example (Kronfluence's compute_self_scores),
/// rankable: high self-influence flags unusual or mislabelled examples.
///
/// Example: `auto ranked = glassbox::kfac_self_influence(model, factors, train).ranked();`
template <class M>
self_influence_result kfac_self_influence(const M& model, const kfac_factors& factors,
                                          std::span<const training_example> train,
                                          const kfac_score_options& options = {}) {
  static_assert(check_kfac_model<M>());
  detail::kfac_check_score_options(options, "kfac_self_influence");
  detail::require(!train.empty(), "glassbox::kfac_self_influence: training examples must not be empty");
  detail::kfac_check_model(model, factors, "kfac_self_influence");
  const kfac_preconditioner p = make_kfac_preconditioner(factors, options.common.damping);
  self_influence_result r;
  r.method = std::string(to_string(factors.method));
  r.scores = kfac_self_influence_scores(model, factors, p, train, 0, train.size(), options);
  const std::optional<double> d = options.common.damping ? options.common.damping : factors.damping;
  r.damping = d ? *d : std::numeric_limits<double>::quiet_NaN();
  r.model_evaluations = train.size();
  r.options = detail::kfac_recorded_options(factors, options);
  return r;
}

/// Per-token influence of training example `example` (index `index` in the training set) on each
/// query: row q holds, per token t, sum_layers g_t^T P(G_q) a_t; the row sums to s(q, n)
/// (Kronfluence's per_token_score). The model must report one statistics row per token.
template <class M>
token_influence_result kfac_token_influence(const M& model, const kfac_factors& factors,
                                            std::span<const measurement> queries, const training_example& example,
                                            std::size_t index = 0, const kfac_score_options& options = {}) {
  // Eigen types that depend on M: compiled where this is instantiated (see dependent_t).
  using matrix = detail::row_matrix<detail::dependent_t<M, float>>;
  using mat_d = detail::row_matrix<detail::dependent_t<M, double>>;
  static_assert(check_kfac_model<M>());
  detail::require(!queries.empty(), "glassbox::kfac_token_influence: queries must not be empty");
  detail::kfac_check_model(model, factors, "kfac_token_influence");
  detail::kfac_check_example(example, index, "kfac_token_influence");
  const kfac_preconditioner p = make_kfac_preconditioner(factors, options.common.damping);
  const kfac_query_batch batch =
      kfac_prepare_queries(model, factors, p, queries, options.query_rank, options.common.execution);
  std::vector<linear_layer_statistics> stats = model.kfac_statistics(example);
  const auto s = detail::kfac_token_stats(stats, factors.layers, "kfac_token_influence", index);
  const std::size_t t = example.tokens.size();
  mat_d total = mat_d::Zero(detail::kfac_ix(batch.queries), detail::kfac_ix(t));
  for (std::size_t l = 0; l < factors.layers.size(); ++l) {
    const matrix& inputs = s.inputs[l];
    const matrix& gradients = s.gradients[l];
    detail::require<shape_error>(static_cast<std::size_t>(inputs.rows()) == t,
                                 "glassbox::kfac_token_influence: layer {} must have one statistics row per token ({}), "
                                 "got {}",
                                 factors.layers[l].name, t, inputs.rows());
    total += detail::kfac_layer_token_scores(batch.layers[l], batch.queries, inputs, gradients);
  }
  token_influence_result r;
  r.method = std::string(to_string(factors.method));
  r.example = index;
  r.token_ids = example.tokens;
  r.scores = tensor2({batch.queries, t});
  for (std::size_t q = 0; q < batch.queries; ++q) {
    r.totals.push_back(total.row(detail::kfac_ix(q)).sum());
    for (std::size_t i = 0; i < t; ++i)
      r.scores(q, i) = static_cast<float>(total(detail::kfac_ix(q), detail::kfac_ix(i)));
  }
  r.options = detail::kfac_recorded_options(factors, options);
  return r;
}

}  // namespace glassbox

// With GLASSBOX_EXTERN_GPT2_KFAC defined, a translation unit calls K-FAC / EK-FAC on the reference
// GPT-2 in float without compiling it: one other translation unit of the program must instantiate
// these functions for glassbox::models::gpt2 (src/gpt2_float_kfac.cpp does), which takes most of the
// compile time off every other one that fits factors or scores on the model (docs/building.md,
// "Compile-time advice"). Other model types, and the detail functions, compile where they are used.
#ifdef GLASSBOX_EXTERN_GPT2_KFAC
namespace glassbox {
namespace models {
template <class Scalar>
class basic_gpt2;
}  // namespace models
extern template kfac_factors fit_kfac_factors(const models::basic_gpt2<float>&, std::span<const training_example>,
                                              const kfac_fit_options&);
extern template kfac_covariance_sums kfac_covariance_pass(const models::basic_gpt2<float>&,
                                                          std::span<const training_example>, std::size_t,
                                                          std::span<const kfac_layer_factors>, const kfac_fit_options&);
extern template kfac_lambda_sums kfac_lambda_pass(const models::basic_gpt2<float>&, std::span<const training_example>,
                                                  std::size_t, const kfac_factors&, const kfac_fit_options&);
extern template kfac_query_batch kfac_prepare_queries(const models::basic_gpt2<float>&, const kfac_factors&,
                                                      const kfac_preconditioner&, std::span<const measurement>,
                                                      std::size_t, const execution_options&);
extern template tensor2 kfac_influence_scores(const models::basic_gpt2<float>&, const kfac_factors&,
                                              const kfac_query_batch&, std::span<const training_example>, std::size_t,
                                              std::size_t, const kfac_score_options&);
extern template influence_result kfac_influence(const models::basic_gpt2<float>&, const kfac_factors&,
                                                std::span<const measurement>, std::span<const training_example>,
                                                const kfac_score_options&);
extern template std::vector<double> kfac_self_influence_scores(const models::basic_gpt2<float>&, const kfac_factors&,
                                                               const kfac_preconditioner&,
                                                               std::span<const training_example>, std::size_t,
                                                               std::size_t, const kfac_score_options&);
extern template self_influence_result kfac_self_influence(const models::basic_gpt2<float>&, const kfac_factors&,
                                                          std::span<const training_example>, const kfac_score_options&);
extern template token_influence_result kfac_token_influence(const models::basic_gpt2<float>&, const kfac_factors&,
                                                            std::span<const measurement>, const training_example&,
                                                            std::size_t, const kfac_score_options&);
}  // namespace glassbox
#endif

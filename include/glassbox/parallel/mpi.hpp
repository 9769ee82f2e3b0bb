// glassbox: K-FAC / EK-FAC influence over MPI (optional; include it explicitly and link MPI, e.g.
// CMake's MPI::MPI_CXX). Every rank holds the model and the whole training set (read from the same
// file) and works on its own contiguous share of it:
//
//   fitting   the covariance and eigenvalue-correction passes run on each rank's share; their sums
//             are all-reduced (MPI_Allreduce) and every rank normalises and eigendecomposes the same
//             totals, so every rank ends with the same factors
//   scoring   the training set is split into whole shards (kfac_score_options::shard_size), each rank
//             scores its shards (through options.shards when set, so that a resumed run on any number
//             of ranks reuses them), and rank 0 gathers the score matrix and ranks the top-k
//
// Results equal the single-process run to float rounding (only the order of the fitting sums
// differs; scores are computed by the same products). A failure on one rank (NaN statistics,
// cancellation, a bad file) stops every rank: the failing rank rethrows its exception, the others
// throw the same kind of glassbox exception naming the rank and its message.
//
// Memory per rank: the model, the training set, the factors (float) and, while fitting, the sums
// in double; docs/influence.md, "MPI", gives the figures for the GPT-2 small shape.
#pragma once

// Open MPI's mpi.h also declares its deprecated C++ bindings, whose casts GCC and Clang warn about;
// glassbox uses the C API only, and keeps those warnings out of the including program.
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wcast-function-type"
#endif
#include <mpi.h>
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

#include <cstddef>
#include <cstdint>
#include <exception>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "glassbox/core/error.hpp"
#include "glassbox/core/model.hpp"
#include "glassbox/influence/kfac.hpp"
#include "glassbox/influence/kfac_factors.hpp"
#include "glassbox/influence/measurement.hpp"
#include "glassbox/influence/result.hpp"

namespace glassbox::parallel {

/// This process's rank in `comm`.
inline int mpi_rank(MPI_Comm comm) {
  int r = 0;
  MPI_Comm_rank(comm, &r);
  return r;
}

/// The number of ranks of `comm`.
inline int mpi_size(MPI_Comm comm) {
  int s = 1;
  MPI_Comm_size(comm, &s);
  return s;
}

/// The contiguous share [begin, end) of n items that rank `rank` of `size` works on.
inline std::pair<std::size_t, std::size_t> mpi_share(std::size_t n, int rank, int size) {
  const auto r = static_cast<std::size_t>(rank), s = static_cast<std::size_t>(size);
  return {n * r / s, n * (r + 1) / s};
}

namespace detail {

/// Throws glassbox::error if an MPI call failed.
inline void mpi_check(int code, std::string_view what) {
  if (code == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(code, text, &length);
  glassbox::detail::fail("glassbox::parallel: {} failed: {}", what, std::string(text, static_cast<std::size_t>(length)));
}

/// The kind of a glassbox exception, to rethrow the same kind on other ranks.
enum class mpi_failure : int { none = 0, error, shape, model, io, cancelled, other };

inline mpi_failure mpi_classify(const std::exception_ptr& e, std::string& message) {
  try {
    std::rethrow_exception(e);
  } catch (const cancelled& x) {
    message = x.what();
    return mpi_failure::cancelled;
  } catch (const shape_error& x) {
    message = x.what();
    return mpi_failure::shape;
  } catch (const model_error& x) {
    message = x.what();
    return mpi_failure::model;
  } catch (const io_error& x) {
    message = x.what();
    return mpi_failure::io;
  } catch (const error& x) {
    message = x.what();
    return mpi_failure::error;
  } catch (const std::exception& x) {
    message = x.what();
    return mpi_failure::other;
  } catch (...) {
    message = "an unknown exception";
    return mpi_failure::other;
  }
}

/// Collective: if any rank failed (`failure` set), every rank throws: the lowest failing rank its own
/// exception, the others the same kind of exception naming that rank and its message.
inline void mpi_agree(MPI_Comm comm, const std::exception_ptr& failure, std::string_view caller) {
  const int rank = mpi_rank(comm), size = mpi_size(comm);
  int mine = failure ? rank : size, first = size;
  mpi_check(MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, comm), "MPI_Allreduce");
  if (first == size) return;
  std::string message;
  int kind = 0;
  if (rank == first) kind = static_cast<int>(mpi_classify(failure, message));
  unsigned long long length = message.size();
  mpi_check(MPI_Bcast(&kind, 1, MPI_INT, first, comm), "MPI_Bcast");
  mpi_check(MPI_Bcast(&length, 1, MPI_UNSIGNED_LONG_LONG, first, comm), "MPI_Bcast");
  message.resize(static_cast<std::size_t>(length));
  mpi_check(MPI_Bcast(message.data(), static_cast<int>(length), MPI_CHAR, first, comm), "MPI_Bcast");
  if (rank == first) std::rethrow_exception(failure);
  const std::string text = fmt::format("glassbox::{}: rank {} failed: {}", caller, first, message);
  switch (static_cast<mpi_failure>(kind)) {
    case mpi_failure::cancelled: throw cancelled(text);
    case mpi_failure::shape: throw shape_error(text);
    case mpi_failure::model: throw model_error(text);
    case mpi_failure::io: throw io_error(text);
    default: throw error(text);
  }
}

/// Runs fn() on every rank and agrees on failure (see mpi_agree).
template <class Fn>
void mpi_run(MPI_Comm comm, std::string_view caller, Fn&& fn) {
  std::exception_ptr failure;
  try {
    fn();
  } catch (...) {
    failure = std::current_exception();
  }
  mpi_agree(comm, failure, caller);
}

/// Sums `values` element-wise over the ranks, in place, in chunks that fit MPI's int counts.
inline void mpi_sum(MPI_Comm comm, std::span<double> values) {
  constexpr std::size_t chunk = std::size_t{1} << 28;
  for (std::size_t i = 0; i < values.size(); i += chunk) {
    const auto n = static_cast<int>(std::min(chunk, values.size() - i));
    mpi_check(MPI_Allreduce(MPI_IN_PLACE, values.data() + i, n, MPI_DOUBLE, MPI_SUM, comm), "MPI_Allreduce");
  }
}

inline void mpi_sum(MPI_Comm comm, std::span<std::uint64_t> values) {
  if (values.empty()) return;
  mpi_check(MPI_Allreduce(MPI_IN_PLACE, values.data(), static_cast<int>(values.size()), MPI_UINT64_T, MPI_SUM, comm),
            "MPI_Allreduce");
}

/// Gathers each rank's float block (sizes may differ) on rank 0, in rank order; empty elsewhere.
inline std::vector<float> mpi_gather(MPI_Comm comm, std::span<const float> mine) {
  const int rank = mpi_rank(comm), size = mpi_size(comm);
  glassbox::detail::require(mine.size() <= static_cast<std::size_t>(std::numeric_limits<int>::max()),
                            "glassbox::parallel: a rank's block of {} scores exceeds MPI's int count", mine.size());
  int count = static_cast<int>(mine.size());
  std::vector<int> counts(static_cast<std::size_t>(size)), displacements(static_cast<std::size_t>(size));
  mpi_check(MPI_Gather(&count, 1, MPI_INT, counts.data(), 1, MPI_INT, 0, comm), "MPI_Gather");
  std::vector<float> out;
  if (rank == 0) {
    std::size_t total = 0;
    for (int r = 0; r < size; ++r) {
      displacements[static_cast<std::size_t>(r)] = static_cast<int>(total);
      total += static_cast<std::size_t>(counts[static_cast<std::size_t>(r)]);
    }
    out.resize(total);
  }
  mpi_check(MPI_Gatherv(mine.data(), count, MPI_FLOAT, out.data(), counts.data(), displacements.data(), MPI_FLOAT, 0,
                        comm),
            "MPI_Gatherv");
  return out;
}

/// The contiguous range of whole shards rank `rank` of `size` scores, as example indices.
inline std::pair<std::size_t, std::size_t> mpi_shard_share(std::size_t n, std::size_t shard_size, int rank, int size) {
  const std::size_t shards = (n + shard_size - 1) / shard_size;
  const auto [s0, s1] = mpi_share(shards, rank, size);
  return {std::min(n, s0 * shard_size), std::min(n, s1 * shard_size)};
}

}  // namespace detail

/// fit_kfac_factors with the training set split across the ranks of `comm`: each rank runs the
/// passes on its share, the sums are all-reduced, and every rank returns the same factors. Every
/// rank passes the same model, examples and options (progress callbacks report each rank's share).
///
/// Example:
///   MPI_Init(&argc, &argv);
///   auto factors = glassbox::parallel::mpi_fit_kfac_factors(MPI_COMM_WORLD, model, train);
///   if (glassbox::parallel::mpi_rank(MPI_COMM_WORLD) == 0) glassbox::io::save_kfac_factors("f.safetensors", factors);
template <class M>
kfac_factors mpi_fit_kfac_factors(MPI_Comm comm, const M& model, std::span<const training_example> examples,
                                  const kfac_fit_options& options = {}) {
  static_assert(check_kfac_model<M>());
  constexpr std::string_view caller = "parallel::mpi_fit_kfac_factors";
  const int rank = mpi_rank(comm), size = mpi_size(comm);
  kfac_factors factors;
  detail::mpi_run(comm, caller, [&] {
    glassbox::detail::kfac_check_options(options, caller);
    glassbox::detail::require(!examples.empty(), "glassbox::{}: examples must not be empty", caller);
    glassbox::detail::kfac_check_example(examples[0], 0, caller);
    factors = kfac_empty_factors(model,
                                 glassbox::detail::kfac_select_layers(model.kfac_statistics(examples[0]), options.layers,
                                                                      options.layer_names, caller),
                                 options);
  });
  const bool covariances = options.method == factor_method::ekfac || options.method == factor_method::kfac;
  const bool lambda = options.method == factor_method::ekfac || options.method == factor_method::diagonal;
  if (covariances) {
    const std::size_t n = std::min(examples.size(), options.covariance_max_examples);
    const auto share_1 = mpi_share(n, rank, size);  // no binding: lambdas capture b, e
    const std::size_t b = share_1.first, e = share_1.second;
    kfac_covariance_sums sums;
    detail::mpi_run(comm, caller, [&] {
      sums = kfac_covariance_pass(model, examples.subspan(b, e - b), b, factors.layers, options);
    });
    for (auto& v : sums.activation) detail::mpi_sum(comm, v);
    for (auto& v : sums.gradient) detail::mpi_sum(comm, v);
    detail::mpi_sum(comm, sums.tokens);
    std::uint64_t count = sums.examples;
    detail::mpi_sum(comm, std::span<std::uint64_t>(&count, 1));
    sums.examples = count;
    detail::mpi_run(comm, caller, [&] { kfac_finish_covariances(factors, sums); });
  }
  if (lambda) {
    const std::size_t n = std::min(examples.size(), options.lambda_max_examples);
    const auto share_2 = mpi_share(n, rank, size);  // no binding: lambdas capture b, e
    const std::size_t b = share_2.first, e = share_2.second;
    kfac_lambda_sums sums;
    detail::mpi_run(comm, caller,
                    [&] { sums = kfac_lambda_pass(model, examples.subspan(b, e - b), b, factors, options); });
    for (auto& v : sums.lambda) detail::mpi_sum(comm, v);
    std::uint64_t count = sums.examples;
    detail::mpi_sum(comm, std::span<std::uint64_t>(&count, 1));
    sums.examples = count;
    detail::mpi_run(comm, caller, [&] { kfac_finish_lambda(factors, sums); });
  }
  return factors;
}

/// kfac_influence with the training set split across the ranks of `comm` in whole shards: rank 0
/// returns the full result (score matrix, top-k); the other ranks return it without scores and
/// rankings. Every rank passes the same model, factors, queries, examples and options.
template <class M>
influence_result mpi_kfac_influence(MPI_Comm comm, const M& model, const kfac_factors& factors,
                                    std::span<const measurement> queries, std::span<const training_example> train,
                                    const kfac_score_options& options = {}) {
  static_assert(check_kfac_model<M>());
  constexpr std::string_view caller = "parallel::mpi_kfac_influence";
  const int rank = mpi_rank(comm), size = mpi_size(comm);
  std::optional<kfac_preconditioner> p;
  kfac_query_batch batch;
  tensor2 mine;
  std::pair<std::size_t, std::size_t> share;
  detail::mpi_run(comm, caller, [&] {
    glassbox::detail::kfac_check_score_options(options, caller);
    glassbox::detail::require(!queries.empty(), "glassbox::{}: queries must not be empty", caller);
    glassbox::detail::require(!train.empty(), "glassbox::{}: training examples must not be empty", caller);
    glassbox::detail::kfac_check_model(model, factors, caller);
    p = make_kfac_preconditioner(factors, options.common.damping);
    batch = kfac_prepare_queries(model, factors, *p, queries, options.query_rank, options.common.execution);
    share = detail::mpi_shard_share(train.size(), options.shard_size, rank, size);
    mine = kfac_influence_scores(model, factors, batch, train, share.first, share.second, options);
  });
  const std::vector<float> all = detail::mpi_gather(comm, std::span<const float>(mine.data(), mine.size()));
  influence_result r;
  r.method = std::string(to_string(factors.method));
  r.training_size = train.size();
  r.query_values = batch.values;
  const std::optional<double> d = options.common.damping ? options.common.damping : factors.damping;
  r.damping = d ? *d : std::numeric_limits<double>::quiet_NaN();
  r.model_evaluations = batch.model_evaluations + train.size();
  r.options = glassbox::detail::kfac_recorded_options(factors, options);
  r.options.push_back({"ranks", static_cast<std::int64_t>(size)});
  if (rank == 0) {
    const std::size_t nq = batch.queries, n = train.size();
    r.scores = tensor2({nq, n});
    std::size_t offset = 0;
    for (int k = 0; k < size; ++k) {
      const auto share_3 = detail::mpi_shard_share(n, options.shard_size, k, size);  // no binding: lambdas capture b, e
      const std::size_t b = share_3.first, e = share_3.second;
      for (std::size_t q = 0; q < nq; ++q)
        std::copy_n(all.data() + offset + q * (e - b), e - b, r.scores.data() + q * n + b);
      offset += nq * (e - b);
    }
    rank_influence(r, options.common.top_k);
  }
  return r;
}

/// kfac_self_influence with the training set split across the ranks of `comm` in whole shards:
/// rank 0 returns every score, the other ranks an empty score list.
template <class M>
self_influence_result mpi_kfac_self_influence(MPI_Comm comm, const M& model, const kfac_factors& factors,
                                              std::span<const training_example> train,
                                              const kfac_score_options& options = {}) {
  static_assert(check_kfac_model<M>());
  constexpr std::string_view caller = "parallel::mpi_kfac_self_influence";
  const int rank = mpi_rank(comm), size = mpi_size(comm);
  std::vector<float> mine;
  detail::mpi_run(comm, caller, [&] {
    glassbox::detail::kfac_check_score_options(options, caller);
    glassbox::detail::require(!train.empty(), "glassbox::{}: training examples must not be empty", caller);
    glassbox::detail::kfac_check_model(model, factors, caller);
    const kfac_preconditioner p = make_kfac_preconditioner(factors, options.common.damping);
    const auto share_4 = detail::mpi_shard_share(train.size(), options.shard_size, rank, size);  // no binding: lambdas capture b, e
    const std::size_t b = share_4.first, e = share_4.second;
    const auto s = kfac_self_influence_scores(model, factors, p, train, b, e, options);
    mine.assign(s.begin(), s.end());
  });
  const std::vector<float> all = detail::mpi_gather(comm, mine);
  self_influence_result r;
  r.method = std::string(to_string(factors.method));
  const std::optional<double> d = options.common.damping ? options.common.damping : factors.damping;
  r.damping = d ? *d : std::numeric_limits<double>::quiet_NaN();
  r.model_evaluations = train.size();
  r.options = glassbox::detail::kfac_recorded_options(factors, options);
  r.options.push_back({"ranks", static_cast<std::int64_t>(size)});
  if (rank == 0) r.scores.assign(all.begin(), all.end());
  return r;
}

}  // namespace glassbox::parallel

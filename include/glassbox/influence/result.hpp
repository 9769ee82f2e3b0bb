// glassbox: what influence methods return, and the options every influence method shares.
//
//   influence_result        the score matrix s(q, n) [queries, N] (float storage, double
//                           accumulation), per query the top-k most helpful and most harmful
//                           examples, and how the curvature solve went
//   self_influence_result   s(n, n) for every training example, rankable
//   token_influence_result  one score per token of a training example, per query
//
// Conventions (docs/influence.md): s(q, n) = grad f_q^T (H + lambda I)^{-1} grad L_n, positive =
// helpful (up-weighting z_n lowers f_q), as Kronfluence signs it.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "glassbox/core/error.hpp"
#include "glassbox/core/execution.hpp"
#include "glassbox/core/result.hpp"
#include "glassbox/core/types.hpp"

namespace glassbox {

/// The options every influence method shares; each method's options struct holds one as `common`.
///
/// Example: `glassbox::cg_influence_options{.common = {.damping = 1e-3, .top_k = 5}, .tolerance = 1e-8}`.
struct influence_options {
  /// lambda in (H + lambda I)^{-1}, >= 0; nullopt = the method's default (docs/influence.md: 0.01 for
  /// exact, cg and lissa; 0.1 x the mean eigenvalue per layer for K-FAC / EK-FAC, as Kronfluence).
  std::optional<double> damping{};
  std::size_t top_k = 10;         ///< most helpful and most harmful examples kept per query (0 = none)
  execution_options execution{};  ///< examples per model call, threads, progress, cancellation
};

/// A solver that diverged or broke down (LiSSA blow-up, negative curvature in CG): never returned as a score.
class divergence_error : public error {
 public:
  using error::error;
};

/// One training example and its score.
struct influence_entry {
  std::size_t index = 0;  ///< n, the position of the example in the training set
  double score = 0;       ///< s(q, n) (or s(n, n) for self-influence)

  friend bool operator==(const influence_entry&, const influence_entry&) = default;
};

/// How one inverse-curvature product (H + lambda I)^{-1} g went.
struct influence_solve_report {
  std::size_t iterations = 0;  ///< CG iterations, or LiSSA recursion steps (of one repeat); 0 for a direct solve
  double relative_residual = std::numeric_limits<double>::quiet_NaN();  ///< ||(H + lambda I) x - g|| / ||g||
  bool converged = true;  ///< the residual reached the tolerance (a direct solve always converges)
};

/// Pairwise influence scores of a set of queries on a training set.
struct influence_result {
  std::string method;                                ///< "exact", "cg", "lissa", "tracin", "ekfac", ...
  std::size_t training_size = 0;                     ///< N
  tensor2 scores;                                    ///< [queries, N]: s(q, n)
  std::vector<double> query_values;                  ///< f_q at the model's parameters when called
  std::vector<std::vector<influence_entry>> top;     ///< per query, the most helpful examples, highest score first
  std::vector<std::vector<influence_entry>> bottom;  ///< per query, the most harmful examples, lowest score first
  double damping = 0;                                ///< the lambda used (0 where the method has none)
  std::optional<double> lowest_eigenvalue;           ///< of the undamped curvature H, where the method has it
  std::optional<double> highest_eigenvalue;          ///< of the undamped curvature H, where the method has it
  std::size_t negative_eigenvalues = 0;              ///< eigenvalues of H below -1e-6 max|eigenvalue| (exact only)
  std::vector<influence_solve_report> solves;        ///< per query (cg, lissa, exact); empty for other methods
  std::size_t model_evaluations = 0;                 ///< per-example gradient and curvature-product passes
  std::vector<named_option> options;                 ///< the options it ran with

  /// Number of queries (rows of scores).
  template <class = void>
  std::size_t queries() const { return scores.dimension() == 2 ? scores.shape(0) : 0; }
  /// s(q, n).
  template <class = void>
  double score(std::size_t q, std::size_t n) const { return scores(q, n); }
};

/// Self-influence s(n, n) of every training example.
struct self_influence_result {
  std::string method;                          ///< as influence_result::method
  std::vector<double> scores;                  ///< s(n, n), one per training example
  double damping = 0;                          ///< the lambda used
  std::optional<double> lowest_eigenvalue;     ///< of the undamped curvature H, where the method has it
  std::optional<double> highest_eigenvalue;    ///< of the undamped curvature H, where the method has it
  std::size_t negative_eigenvalues = 0;        ///< eigenvalues of H below -1e-6 max|eigenvalue| (exact only)
  std::vector<influence_solve_report> solves;  ///< per training example (cg, lissa); empty otherwise
  std::size_t model_evaluations = 0;           ///< per-example gradient and curvature-product passes
  std::vector<named_option> options;           ///< the options it ran with

  /// Every training example ranked by self-influence, highest first (ties: lower index first).
  template <class = void>
  std::vector<influence_entry> ranked() const {
    std::vector<influence_entry> out(scores.size());
    for (std::size_t n = 0; n < scores.size(); ++n) out[n] = {n, scores[n]};
    std::stable_sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.score > b.score; });
    return out;
  }
};

/// Per-token influence of one training example: which of its tokens' rows carry s(q, n).
struct token_influence_result {
  std::string method;                 ///< as influence_result::method
  std::size_t example = 0;            ///< n, the training example explained
  token_sequence token_ids;           ///< its tokens
  tensor2 scores;                     ///< [queries, T]: per query, one score per token (its row's share of s(q, n))
  std::vector<double> totals;         ///< per query, s(q, n) = the sum of its row of scores
  std::vector<named_option> options;  ///< the options it ran with
};

/// The k highest scores of a row (most helpful first; ties: lower index first).
template <class = void>
inline std::vector<influence_entry> most_helpful(std::span<const float> scores, std::size_t k) {
  std::vector<influence_entry> all(scores.size());
  for (std::size_t n = 0; n < scores.size(); ++n) all[n] = {n, static_cast<double>(scores[n])};
  k = std::min(k, all.size());
  std::partial_sort(
      all.begin(), all.begin() + static_cast<std::ptrdiff_t>(k), all.end(),
      [](const auto& a, const auto& b) { return a.score > b.score || (a.score == b.score && a.index < b.index); });
  all.resize(k);
  return all;
}

/// The k lowest scores of a row (most harmful first; ties: lower index first).
template <class = void>
inline std::vector<influence_entry> most_harmful(std::span<const float> scores, std::size_t k) {
  std::vector<influence_entry> all(scores.size());
  for (std::size_t n = 0; n < scores.size(); ++n) all[n] = {n, static_cast<double>(scores[n])};
  k = std::min(k, all.size());
  std::partial_sort(
      all.begin(), all.begin() + static_cast<std::ptrdiff_t>(k), all.end(),
      [](const auto& a, const auto& b) { return a.score < b.score || (a.score == b.score && a.index < b.index); });
  all.resize(k);
  return all;
}

/// Fills result.top and result.bottom with the k most helpful and most harmful examples of every query.
template <class = void>
inline void rank_influence(influence_result& result, std::size_t k) {
  const std::size_t q = result.queries(), n = result.queries() == 0 ? 0 : result.scores.shape(1);
  result.top.assign(q, {});
  result.bottom.assign(q, {});
  for (std::size_t i = 0; i < q; ++i) {
    const std::span<const float> row(result.scores.data() + i * n, n);
    result.top[i] = most_helpful(row, k);
    result.bottom[i] = most_harmful(row, k);
  }
}

namespace detail {

/// The damping of options, or `fallback` when unset; throws unless it is finite and >= 0.
template <class = void>
inline double resolve_damping(const influence_options& options, double fallback, std::string_view caller) {
  const double lambda = options.damping.value_or(fallback);
  require(std::isfinite(lambda) && lambda >= 0, "glassbox::{}: damping must be finite and >= 0, got {}", caller,
          lambda);
  return lambda;
}

}  // namespace detail
}  // namespace glassbox

// glassbox: agreement between two explanations of the same input: rank correlations (Spearman's
// rho with average ranks for ties, Kendall's tau-b) and the overlap of their top-k tokens.
// docs/evaluation.md, "Agreement", has the formulas.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <numeric>
#include <span>
#include <string_view>
#include <vector>

#include "glassbox/core/error.hpp"
#include "glassbox/evaluation/detail/ranking.hpp"

namespace glassbox {

namespace detail {

/// Checks two paired score vectors: non-empty, equal lengths, finite.
template <class = void>
inline void require_paired(std::span<const double> a, std::span<const double> b, std::string_view caller) {
  require<shape_error>(!a.empty(), "glassbox::{}: a must not be empty", caller);
  require<shape_error>(a.size() == b.size(), "glassbox::{}: b must have as many values as a ({}), got {}", caller,
                       a.size(), b.size());
  require_finite_values(a, caller, "a");
  require_finite_values(b, caller, "b");
}

}  // namespace detail

/// Spearman's rank correlation: the Pearson correlation of the average ranks of `a` and `b` (ties
/// share the mean of their ranks, as scipy.stats.spearmanr). NaN when either is constant.
///
/// Example: `double rho = glassbox::spearman(ig.scores, occlusion.scores);`
template <class = void>
double spearman(std::span<const double> a, std::span<const double> b) {
  detail::require_paired(a, b, "spearman");
  const std::vector<double> ra = detail::average_ranks(a), rb = detail::average_ranks(b);
  const double n = static_cast<double>(a.size());
  const double mean = (n + 1.0) / 2.0;  // the mean of any average ranks
  double sab = 0, saa = 0, sbb = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    sab += (ra[i] - mean) * (rb[i] - mean);
    saa += (ra[i] - mean) * (ra[i] - mean);
    sbb += (rb[i] - mean) * (rb[i] - mean);
  }
  if (saa == 0 || sbb == 0) return std::numeric_limits<double>::quiet_NaN();
  return sab / std::sqrt(saa * sbb);
}

/// Kendall's tau-b: (P - Q) / sqrt((P + Q + T_a)(P + Q + T_b)) over all pairs, with P concordant and
/// Q discordant pairs and T_a (T_b) the pairs tied in `a` only (`b` only), as scipy.stats.kendalltau's
/// default. NaN when either is constant. O(n^2).
template <class = void>
double kendall_tau(std::span<const double> a, std::span<const double> b) {
  detail::require_paired(a, b, "kendall_tau");
  double concordant = 0, discordant = 0, tied_a = 0, tied_b = 0;
  for (std::size_t i = 0; i < a.size(); ++i)
    for (std::size_t j = i + 1; j < a.size(); ++j) {
      const double da = a[i] - a[j], db = b[i] - b[j];
      if (da == 0 && db == 0) continue;
      if (da == 0)
        tied_a += 1;
      else if (db == 0)
        tied_b += 1;
      else if ((da > 0) == (db > 0))
        concordant += 1;
      else
        discordant += 1;
    }
  const double denominator = std::sqrt((concordant + discordant + tied_a) * (concordant + discordant + tied_b));
  if (denominator == 0) return std::numeric_limits<double>::quiet_NaN();
  return (concordant - discordant) / denominator;
}

/// The fraction of the top `k` tokens of `a` that are also among the top `k` of `b`: |top_k(a) ∩
/// top_k(b)| / k, tokens ranked by score (|score| when `absolute`), ties broken by position.
template <class = void>
double top_k_overlap(std::span<const double> a, std::span<const double> b, std::size_t k,
                            bool absolute = false) {
  detail::require_paired(a, b, "top_k_overlap");
  detail::require(k >= 1 && k <= a.size(), "glassbox::top_k_overlap: k must be in [1, {}], got {}", a.size(), k);
  std::vector<std::size_t> all(a.size());
  std::iota(all.begin(), all.end(), std::size_t{0});
  std::vector<std::size_t> ta = detail::rank_by_score(a, all, absolute), tb = detail::rank_by_score(b, all, absolute);
  ta.resize(k);
  tb.resize(k);
  std::sort(ta.begin(), ta.end());
  std::sort(tb.begin(), tb.end());
  std::vector<std::size_t> common;
  std::set_intersection(ta.begin(), ta.end(), tb.begin(), tb.end(), std::back_inserter(common));
  return static_cast<double>(common.size()) / static_cast<double>(k);
}

}  // namespace glassbox

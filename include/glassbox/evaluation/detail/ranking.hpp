// glassbox: evaluation internals. Ranking tokens by score and the removable tokens of an input.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <numeric>
#include <span>
#include <string_view>
#include <vector>

#include "glassbox/core/error.hpp"

namespace glassbox::detail {

/// Checks that every value of `values` is finite; `what` names the argument in the message.
template <class = void>
inline void require_finite_values(std::span<const double> values, std::string_view caller, std::string_view what) {
  for (std::size_t i = 0; i < values.size(); ++i)
    require(std::isfinite(values[i]), "glassbox::{}: {} must be finite, got {} at position {}", caller, what,
            values[i], i);
}

/// The positions `candidates` ordered from the highest score to the lowest (|score| when
/// `absolute`); ties keep the order of `candidates` (earlier position first).
template <class = void>
std::vector<std::size_t> rank_by_score(std::span<const double> scores, std::span<const std::size_t> candidates,
                                              bool absolute) {
  std::vector<std::size_t> order(candidates.begin(), candidates.end());
  auto key = [&](std::size_t i) { return absolute ? std::abs(scores[i]) : scores[i]; };
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return key(a) > key(b); });
  return order;
}

/// Average ranks (1 = smallest value; tied values share the mean of their ranks), as
/// scipy.stats.rankdata(method="average").
template <class = void>
std::vector<double> average_ranks(std::span<const double> values) {
  const std::size_t n = values.size();
  std::vector<std::size_t> order(n);
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return values[a] < values[b]; });
  std::vector<double> ranks(n);
  for (std::size_t i = 0; i < n;) {
    std::size_t j = i;
    while (j + 1 < n && values[order[j + 1]] == values[order[i]]) ++j;
    const double rank = 0.5 * static_cast<double>(i + j) + 1.0;  // mean of ranks i+1 .. j+1
    for (std::size_t k = i; k <= j; ++k) ranks[order[k]] = rank;
    i = j + 1;
  }
  return ranks;
}

}  // namespace glassbox::detail

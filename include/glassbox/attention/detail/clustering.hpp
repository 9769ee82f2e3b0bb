// glassbox: average-linkage (UPGMA) agglomerative clustering and its dendrogram leaf order.
//
// Start with every item as a cluster; repeatedly merge the two clusters at the smallest
// average distance d(A, B) = mean over a in A, b in B of d(a, b) (updated by the Lance-Williams
// rule d(A u B, C) = (|A| d(A, C) + |B| d(B, C)) / (|A| + |B|)); ties go to the pair created
// first. The leaf order lists the items as a dendrogram draws them, left subtree first, with
// the older cluster on the left: neighbours in the order are similar heads. O(n^3), for the
// n = L * H heads of a model (144 for GPT-2 small).
#pragma once

#include <cstddef>
#include <limits>
#include <utility>
#include <vector>

#include "glassbox/attention/result.hpp"
#include "glassbox/detail/eigen.hpp"

namespace glassbox::detail {

/// The merges of average-linkage clustering of a symmetric distance matrix [n, n].
template <class = void>
inline std::vector<linkage_step> average_linkage(const row_matrix<double>& distance) {
  const auto n = static_cast<std::size_t>(distance.rows());
  std::vector<linkage_step> steps;
  if (n < 2) return steps;
  // Cluster slots: slot k holds cluster id[k] (items first, merged clusters appended).
  row_matrix<double> d = distance;
  std::vector<std::size_t> id(n), size(n, 1);
  std::vector<bool> active(n, true);
  for (std::size_t k = 0; k < n; ++k) id[k] = k;
  for (std::size_t step = 0; step + 1 < n; ++step) {
    double best = std::numeric_limits<double>::infinity();
    std::size_t a = n, b = n;
    for (std::size_t i = 0; i < n; ++i) {
      if (!active[i]) continue;
      for (std::size_t j = i + 1; j < n; ++j) {
        if (!active[j]) continue;
        const double v = d(static_cast<Eigen::Index>(i), static_cast<Eigen::Index>(j));
        // Smallest distance; ties to the pair of oldest cluster ids.
        if (a == n || v < best || (v == best && std::minmax(id[i], id[j]) < std::minmax(id[a], id[b]))) {
          best = v;
          a = i;
          b = j;
        }
      }
    }
    if (id[a] > id[b]) std::swap(a, b);
    steps.push_back({id[a], id[b], best, size[a] + size[b]});
    // The merged cluster lives in slot a.
    for (std::size_t c = 0; c < n; ++c) {
      if (!active[c] || c == a || c == b) continue;
      const auto ia = static_cast<Eigen::Index>(a), ib = static_cast<Eigen::Index>(b),
                 ic = static_cast<Eigen::Index>(c);
      const double v = (static_cast<double>(size[a]) * d(ia, ic) + static_cast<double>(size[b]) * d(ib, ic)) /
                       static_cast<double>(size[a] + size[b]);
      d(ia, ic) = v;
      d(ic, ia) = v;
    }
    size[a] += size[b];
    id[a] = n + step;
    active[b] = false;
  }
  return steps;
}

/// The dendrogram's leaf order: items left to right, each merge's `left` cluster first.
template <class = void>
inline std::vector<std::size_t> leaf_order(const std::vector<linkage_step>& steps, std::size_t n) {
  std::vector<std::size_t> order;
  if (n == 0) return order;
  if (steps.empty()) {
    for (std::size_t k = 0; k < n; ++k) order.push_back(k);
    return order;
  }
  std::vector<std::size_t> stack{n + steps.size() - 1};
  while (!stack.empty()) {
    const std::size_t c = stack.back();
    stack.pop_back();
    if (c < n) {
      order.push_back(c);
    } else {
      stack.push_back(steps[c - n].right);
      stack.push_back(steps[c - n].left);
    }
  }
  return order;
}

}  // namespace glassbox::detail

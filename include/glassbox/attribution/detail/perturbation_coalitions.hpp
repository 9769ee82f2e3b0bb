// glassbox: coalitions for the Shapley methods. Binomials and Shapley weights, distinct random
// subsets, random permutations, and the KernelSHAP sample design: coalition sizes enumerated in
// full from the extremes inward while their enumeration fits the budget (as the shap library's
// KernelExplainer), the rest sampled without replacement, stratified by size with the Shapley
// kernel's size distribution, each stratum reweighted to its exact kernel mass.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <numeric>
#include <set>
#include <vector>

#include "glassbox/core/random.hpp"

namespace glassbox::detail {

/// C(n, k) in double: exact while the result is below 2^53.
template <class = void>
inline double binomial(std::size_t n, std::size_t k) {
  if (k > n) return 0;
  k = std::min(k, n - k);
  double c = 1;
  for (std::size_t i = 1; i <= k; ++i) c = c * static_cast<double>(n - k + i) / static_cast<double>(i);
  return std::round(c) < 9007199254740992.0 ? std::round(c) : c;
}

/// The Shapley weight of a coalition of `s` of the other n - 1 players: s! (n - s - 1)! / n! = 1 / (n C(n-1, s)).
template <class = void>
inline double shapley_weight(std::size_t n, std::size_t s) {
  return 1.0 / (static_cast<double>(n) * binomial(n - 1, s));
}

/// The Shapley kernel's total mass on coalitions of size s (1 <= s <= n-1): (n - 1) / (s (n - s)).
/// Each such coalition has kernel weight (n - 1) / (C(n, s) s (n - s)) (Lundberg & Lee 2017, Theorem 2).
template <class = void>
inline double shapley_kernel_size_mass(std::size_t n, std::size_t s) {
  return static_cast<double>(n - 1) / (static_cast<double>(s) * static_cast<double>(n - s));
}

/// A uniformly random permutation of 0 .. n-1.
template <class = void>
inline std::vector<std::size_t> random_permutation(std::size_t n, rng& gen) {
  std::vector<std::size_t> p(n);
  std::iota(p.begin(), p.end(), std::size_t{0});
  gen.shuffle(p.begin(), p.end());
  return p;
}

/// A uniformly random r-subset of 0 .. g-1, ascending (partial Fisher-Yates).
template <class = void>
inline std::vector<std::uint32_t> random_subset(std::size_t g, std::size_t r, rng& gen) {
  std::vector<std::uint32_t> pool(g);
  std::iota(pool.begin(), pool.end(), std::uint32_t{0});
  for (std::size_t i = 0; i < r; ++i) {
    const auto j = i + static_cast<std::size_t>(gen.below(g - i));
    std::swap(pool[i], pool[j]);
  }
  pool.resize(r);
  std::sort(pool.begin(), pool.end());
  return pool;
}

/// Every r-subset of 0 .. g-1, in lexicographic order.
template <class = void>
inline std::vector<std::vector<std::uint32_t>> all_subsets(std::size_t g, std::size_t r) {
  std::vector<std::vector<std::uint32_t>> out;
  std::vector<std::uint32_t> c(r);
  std::iota(c.begin(), c.end(), std::uint32_t{0});
  while (true) {
    out.push_back(c);
    std::size_t i = r;
    while (i > 0 && c[i - 1] == g - r + i - 1) --i;
    if (i == 0) break;
    ++c[i - 1];
    for (std::size_t j = i; j < r; ++j) c[j] = c[j - 1] + 1;
  }
  return out;
}

/// `k` distinct r-subsets of 0 .. g-1, drawn uniformly without replacement (k <= C(g, r)).
/// Small classes are enumerated and partially shuffled; large ones are drawn with rejection of repeats.
template <class = void>
inline std::vector<std::vector<std::uint32_t>> distinct_random_subsets(std::size_t g, std::size_t r, std::size_t k,
                                                                       rng& gen) {
  const double available = binomial(g, r);
  if (available <= 4.0 * static_cast<double>(k)) {
    auto all = all_subsets(g, r);
    for (std::size_t i = 0; i < k; ++i) {
      const auto j = i + static_cast<std::size_t>(gen.below(all.size() - i));
      std::swap(all[i], all[j]);
    }
    all.resize(k);
    return all;
  }
  std::set<std::vector<std::uint32_t>> seen;
  std::vector<std::vector<std::uint32_t>> out;
  out.reserve(k);
  while (out.size() < k) {
    auto s = random_subset(g, r, gen);
    if (seen.insert(s).second) out.push_back(std::move(s));
  }
  return out;
}

/// Weighted coalitions of n features: masks [size x n] (1 = present) and one regression weight each.
struct coalition_design {
  std::size_t features = 0;           ///< n
  std::vector<std::uint8_t> masks;    ///< row-major, one row of n bytes per coalition
  std::vector<double> weights;        ///< one per coalition
  bool exact = false;                 ///< every coalition but the empty and the full one is present
  std::size_t enumerated_strata = 0;  ///< size strata enumerated in full

  /// Number of coalitions.
  std::size_t size() const { return weights.size(); }

  /// Appends the coalition `present` (ascending feature indices) with weight w, and its
  /// complement with the same weight when `with_complement`.
  template <class = void>
  void add(const std::vector<std::uint32_t>& present, double w, bool with_complement) {
    const std::size_t begin = masks.size();
    masks.resize(begin + features, 0);
    for (auto i : present) masks[begin + i] = 1;
    weights.push_back(w);
    if (with_complement) {
      masks.resize(begin + 2 * features, 0);
      for (std::size_t i = 0; i < features; ++i) masks[begin + features + i] = masks[begin + i] ? 0 : 1;
      weights.push_back(w);
    }
  }
};

/// The KernelSHAP sample design for n features and a budget of `budget` coalitions (the empty and
/// full coalitions are not part of it: the constraint handles them).
///
/// Strata: with `paired`, stratum s (1 <= s <= n/2) holds the coalitions of sizes s and n - s, drawn
/// as pairs (a coalition and its complement; for s = n/2 the pair {S, complement}); without, each
/// size is a stratum, ordered from the extremes inward (1, n-1, 2, n-2, ...). A stratum's mass is
/// the Shapley kernel's mass on its sizes. Walking from the extremes inward, a stratum is
/// enumerated in full while its share of the remaining budget (in proportion to its mass among the
/// remaining strata) covers it, as the shap library does. The remaining budget is split over the
/// remaining strata in proportion to their mass (largest remainders), the units of each stratum are
/// drawn uniformly without replacement, and each stratum's coalitions share its exact mass. With a
/// budget of at least 2^n - 2 every coalition is enumerated and the regression gives the exact
/// Shapley values. When `paired` and the sampled budget is odd, its last evaluation is not used.
template <class = void>
inline coalition_design kernel_shap_design(std::size_t n, std::size_t budget, bool paired, rng& gen) {
  coalition_design design;
  design.features = n;
  if (n < 2) {
    design.exact = true;
    return design;
  }
  struct stratum {
    std::size_t size;  // the smaller size s of the stratum (paired) or the size itself
    bool pair;         // units are a coalition and its complement
    bool middle;       // paired with s = n/2: a unit is the unordered pair {S, complement}
    double mass;       // Shapley kernel mass of the stratum's coalitions
    double units;      // units in the stratum
  };
  std::vector<stratum> strata;
  if (paired) {
    for (std::size_t s = 1; 2 * s <= n; ++s) {
      const bool middle = 2 * s == n;
      const double mass = middle ? shapley_kernel_size_mass(n, s) : 2 * shapley_kernel_size_mass(n, s);
      const double units = middle ? binomial(n, s) / 2 : binomial(n, s);
      strata.push_back({s, true, middle, mass, units});
    }
  } else {
    for (std::size_t a = 1, b = n - 1; a <= b; ++a, --b) {
      strata.push_back({a, false, false, shapley_kernel_size_mass(n, a), binomial(n, a)});
      if (a != b) strata.push_back({b, false, false, shapley_kernel_size_mass(n, b), binomial(n, b)});
    }
  }
  const double per_unit = paired ? 2.0 : 1.0;

  // Draws (or enumerates, k = all) k units of stratum st and adds them with equal shares of its mass.
  auto add_units = [&](const stratum& st, std::size_t k, bool everything) {
    const double w = st.mass / (static_cast<double>(k) * per_unit);
    std::vector<std::vector<std::uint32_t>> chosen;
    if (st.middle) {  // pairs {S, complement}: S contains feature 0 plus s-1 of features 1 .. n-1
      chosen = everything ? all_subsets(n - 1, st.size - 1) : distinct_random_subsets(n - 1, st.size - 1, k, gen);
      for (auto& c : chosen) {
        for (auto& i : c) ++i;
        c.insert(c.begin(), 0);
      }
    } else {
      chosen = everything ? all_subsets(n, st.size) : distinct_random_subsets(n, st.size, k, gen);
    }
    for (const auto& c : chosen) design.add(c, w, st.pair);
  };

  double remaining_budget = static_cast<double>(budget);
  double remaining_mass = 0;
  for (const auto& st : strata) remaining_mass += st.mass;
  std::size_t next = 0;
  const double total_coalitions = std::pow(2.0, static_cast<double>(n)) - 2;
  const bool everything = static_cast<double>(budget) >= total_coalitions;
  for (; next < strata.size(); ++next) {
    const stratum& st = strata[next];
    const double cost = st.units * per_unit;
    if (!everything && remaining_budget * st.mass / remaining_mass < cost * (1 - 1e-8)) break;
    add_units(st, static_cast<std::size_t>(st.units), true);
    remaining_budget -= cost;
    remaining_mass -= st.mass;
    ++design.enumerated_strata;
  }
  design.exact = next == strata.size();
  if (design.exact) return design;

  // Sampled strata: proportional allocation of the remaining units, largest remainders first.
  const auto units_left = static_cast<std::size_t>(remaining_budget / per_unit);
  const std::size_t m = strata.size() - next;
  std::vector<std::size_t> k(m, 0);
  std::vector<double> share(m);
  std::size_t given = 0;
  for (std::size_t j = 0; j < m; ++j) {
    share[j] = static_cast<double>(units_left) * strata[next + j].mass / remaining_mass;
    k[j] = std::min(static_cast<std::size_t>(share[j]), static_cast<std::size_t>(strata[next + j].units));
    given += k[j];
  }
  std::vector<std::size_t> order(m);
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    return share[a] - static_cast<double>(k[a]) > share[b] - static_cast<double>(k[b]);
  });
  while (given < units_left) {
    bool placed = false;
    for (std::size_t j : order) {
      if (given == units_left) break;
      if (static_cast<double>(k[j]) < strata[next + j].units) {
        ++k[j];
        ++given;
        placed = true;
      }
    }
    if (!placed) break;  // every stratum full (cannot happen below 2^n - 2 coalitions)
  }
  for (std::size_t j = 0; j < m; ++j)
    if (k[j] > 0) add_units(strata[next + j], k[j], false);
  return design;
}

}  // namespace glassbox::detail

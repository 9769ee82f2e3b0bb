// glassbox: minimum description length probing with the online code (Voita & Titov 2020,
// "Information-Theoretic Probing with Minimum Description Length", EMNLP). docs/probing.md has
// the formula and the defaults.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <numbers>
#include <span>
#include <string_view>
#include <vector>

#include "glassbox/core/error.hpp"
#include "glassbox/core/types.hpp"
#include "glassbox/probing/logistic_regression.hpp"

namespace glassbox {

/// The block boundaries of Voita & Titov (2020): 0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.25, 12.5, 25, 50
/// and 100 % of the training data.
template <class = void>
inline const std::vector<double>& mdl_paper_fractions() {
  static const std::vector<double> f{0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.0625, 0.125, 0.25, 0.5, 1.0};
  return f;
}

/// Options of the online code.
struct mdl_options {
  std::vector<double> fractions = mdl_paper_fractions();  ///< block ends as fractions of the data, increasing, last 1
  logistic_regression_options logistic{};                 ///< the probe trained on each prefix
};

/// The online codelength of a labelled data set.
struct mdl_result {
  double codelength_bits = 0;          ///< t_1 log2 K + sum over blocks of -log2 p(y | x) under the probe of the prefix
  double uniform_codelength_bits = 0;  ///< N log2 K: every label sent with the uniform code
  double compression = 0;              ///< uniform_codelength_bits / codelength_bits
  std::vector<std::size_t> block_ends;  ///< t_1 < ... < t_S = N (examples)
  std::vector<double> block_bits;       ///< bits of each block; the first is t_1 log2 K
  std::size_t examples = 0;             ///< N
  std::size_t classes = 0;              ///< K
  std::size_t fits = 0;                 ///< probes trained (S - 1)
  bool converged = true;                ///< every probe's solver converged
};

namespace detail {

/// The block ends t_i = floor(f_i N), at least 1, strictly increasing, the last N.
template <class = void>
inline std::vector<std::size_t> mdl_block_ends(std::span<const double> fractions, std::size_t n) {
  std::vector<std::size_t> ends;
  for (const double f : fractions) {
    auto t = static_cast<std::size_t>(std::floor(f * static_cast<double>(n)));
    t = std::clamp<std::size_t>(t, 1, n);
    if (ends.empty() || t > ends.back()) ends.push_back(t);
  }
  if (ends.back() != n) ends.push_back(n);
  return ends;
}

template <class = void>
inline void check_mdl_options(const mdl_options& o, std::string_view who) {
  require(!o.fractions.empty(), "glassbox::{}: fractions must hold at least one block end, got none", who);
  for (std::size_t i = 0; i < o.fractions.size(); ++i) {
    require(o.fractions[i] > 0 && o.fractions[i] <= 1, "glassbox::{}: fractions must be in (0, 1], got {}", who,
            o.fractions[i]);
    require(i == 0 || o.fractions[i] > o.fractions[i - 1], "glassbox::{}: fractions must increase, got {} after {}",
            who, o.fractions[i], o.fractions[i - 1]);
  }
  require(o.fractions.back() == 1.0, "glassbox::{}: the last fraction must be 1, got {}", who, o.fractions.back());
  check_logistic_options(o.logistic, who);
}

/// The online code over rows in the given order.
template <class T = void>
mdl_result online_code(float_rows rows, std::span<const std::int32_t> y, std::size_t classes, const mdl_options& o) {
  const auto& x = depend<T>(rows);  // compiled where this is instantiated (see dependent_t)
  const auto n = static_cast<std::size_t>(x.rows());
  mdl_result r;
  r.examples = n;
  r.classes = classes;
  r.block_ends = mdl_block_ends(o.fractions, n);
  const double log2k = std::log2(static_cast<double>(classes));
  r.uniform_codelength_bits = static_cast<double>(n) * log2k;
  r.block_bits.push_back(static_cast<double>(r.block_ends.front()) * log2k);
  linear_weights previous;
  for (std::size_t b = 0; b + 1 < r.block_ends.size(); ++b) {
    const std::size_t t = r.block_ends[b], next = r.block_ends[b + 1];
    const auto prefix = x.topRows(static_cast<Eigen::Index>(t));
    const float_rows train(prefix.data(), prefix.rows(), prefix.cols());
    const logistic_regression_result fit =
        fit_logistic(train, y.first(t), classes, o.logistic, previous.features == 0 ? nullptr : &previous);
    r.converged = r.converged && fit.converged;
    ++r.fits;
    const auto block = x.middleRows(static_cast<Eigen::Index>(t), static_cast<Eigen::Index>(next - t));
    const float_rows encoded(block.data(), block.rows(), block.cols());
    const std::vector<double> logp = log_probability_rows(fit.model, encoded, y.subspan(t, next - t));
    double bits = 0;
    for (const double lp : logp) bits -= lp / std::numbers::ln2;
    r.block_bits.push_back(bits);
    previous = fit.model;
  }
  for (const double b : r.block_bits) r.codelength_bits += b;
  r.compression = r.codelength_bits > 0 ? r.uniform_codelength_bits / r.codelength_bits : 0.0;
  return r;
}

}  // namespace detail

/// The online codelength (Voita & Titov 2020) of labels y given rows x [N, d], in the order given
/// (shuffle first; probe_layers uses a seeded shuffle): the first t_1 labels are sent with the
/// uniform code (t_1 log2 K bits), and each later block (t_i, t_{i+1}] with the code of the L2
/// logistic probe trained on rows 1 .. t_i, costing -log2 p(y | x) bits per label. Compression is
/// N log2 K over the codelength: 1 means the representation saves nothing over the uniform code.
/// Each probe is warm-started from the previous one (the same optimum, fewer iterations).
///
/// Example: `auto code = glassbox::online_codelength(x, y, 3);  // code.codelength_bits, code.compression`
template <class = void>
inline mdl_result online_codelength(const tensor2& x, std::span<const std::int32_t> y, std::size_t classes,
                                    const mdl_options& options = {}) {
  constexpr std::string_view who = "online_codelength";
  detail::check_mdl_options(options, who);
  detail::require<shape_error>(x.shape(0) >= 1 && x.shape(1) >= 1,
                               "glassbox::{}: x must have at least one row and one column, got [{}, {}]", who,
                               x.shape(0), x.shape(1));
  detail::check_class_labels(y, x.shape(0), classes, who);
  const auto rows = detail::rows_of(x);
  detail::require_finite_rows(rows, who, "x");
  return detail::online_code(rows, y, classes, options);
}

}  // namespace glassbox

// With GLASSBOX_EXTERN_PROBING defined, the online code compiles in one other translation unit of
// the program (src/probing.cpp, CMake's object library glassbox_probing); docs/building.md,
// "Compile-time advice".
#ifdef GLASSBOX_EXTERN_PROBING
namespace glassbox::detail {
extern template mdl_result online_code<void>(float_rows, std::span<const std::int32_t>, std::size_t,
                                             const mdl_options&);
}  // namespace glassbox::detail
#endif

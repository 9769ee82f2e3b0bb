// glassbox: percentile bootstrap confidence intervals of a mean (Efron & Tibshirani 1993),
// deterministic under a seed (glassbox::rng).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "glassbox/core/error.hpp"
#include "glassbox/core/random.hpp"
#include "glassbox/evaluation/detail/ranking.hpp"

namespace glassbox {

/// Options of bootstrap_interval.
struct bootstrap_options {
  double confidence = 0.95;      ///< coverage of the interval, in (0, 1)
  std::size_t resamples = 1000;  ///< bootstrap resamples (each draws values.size() values with replacement)
  std::uint64_t seed = 0;        ///< the same seed gives the same interval
};

/// A mean with its bootstrap confidence interval.
struct bootstrap_result {
  double mean = 0;  ///< the mean of the values
  double low = 0;   ///< the (1 - confidence) / 2 quantile of the resampled means
  double high = 0;  ///< the (1 + confidence) / 2 quantile of the resampled means
};

/// The mean of `values` and its percentile bootstrap interval: `resamples` means of resamples drawn
/// with replacement, and their (1 - c) / 2 and (1 + c) / 2 quantiles (linear interpolation between
/// order statistics, as numpy.quantile's default). Deterministic under options.seed.
///
/// Example: `auto ci = glassbox::bootstrap_interval(comprehensiveness, {.seed = 7});`
template <class = void>
bootstrap_result bootstrap_interval(std::span<const double> values, const bootstrap_options& options = {}) {
  detail::require<shape_error>(!values.empty(), "glassbox::bootstrap_interval: values must not be empty");
  detail::require(options.confidence > 0 && options.confidence < 1,
                  "glassbox::bootstrap_interval: confidence must be in (0, 1), got {}", options.confidence);
  detail::require(options.resamples >= 1, "glassbox::bootstrap_interval: resamples must be >= 1, got {}",
                  options.resamples);
  detail::require_finite_values(values, "bootstrap_interval", "values");
  const std::size_t n = values.size();
  double total = 0;
  for (double v : values) total += v;
  bootstrap_result r;
  r.mean = total / static_cast<double>(n);
  rng g(options.seed);
  std::vector<double> means(options.resamples);
  for (auto& m : means) {
    double s = 0;
    for (std::size_t i = 0; i < n; ++i) s += values[g.below(n)];
    m = s / static_cast<double>(n);
  }
  std::sort(means.begin(), means.end());
  auto quantile = [&](double q) {
    const double position = q * static_cast<double>(means.size() - 1);
    const auto below = static_cast<std::size_t>(std::floor(position));
    const std::size_t above = std::min(below + 1, means.size() - 1);
    const double w = position - static_cast<double>(below);
    return means[below] + w * (means[above] - means[below]);
  };
  r.low = quantile((1 - options.confidence) / 2);
  r.high = quantile((1 + options.confidence) / 2);
  return r;
}

}  // namespace glassbox

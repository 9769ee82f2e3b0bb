// glassbox: the fitted linear model of the probes (scikit-learn's coef_ / intercept_ layout), a plain
// data type of its own so that io/activation_file.hpp can read and write probe files without the
// solvers of probing/logistic_regression.hpp (docs/building.md, "Include cost").
#pragma once

#include <cstddef>
#include <vector>

namespace glassbox {

/// A fitted linear model in scikit-learn's layout: weight = coef_ [outputs, features], bias = intercept_.
struct linear_weights {
  std::size_t outputs = 0;     ///< rows of weight: 1 (binary logistic regression, ridge) or K (multinomial)
  std::size_t features = 0;    ///< d
  std::vector<double> weight;  ///< [outputs, features], row-major
  std::vector<double> bias;    ///< [outputs]; zeros without an intercept
};

}  // namespace glassbox

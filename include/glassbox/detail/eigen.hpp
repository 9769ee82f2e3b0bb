// glassbox: zero-copy Eigen views over xtensor buffers.
#pragma once

#include <Eigen/Core>
#include <cstddef>

#include "glassbox/detail/dependent.hpp"
#include "glassbox/detail/xtensor.hpp"

namespace glassbox::detail {

/// A dynamic row-major Eigen matrix, the layout of every glassbox tensor.
template <class Scalar>
using row_matrix = Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

/// A dynamic column vector.
template <class Scalar>
using vector = Eigen::Matrix<Scalar, Eigen::Dynamic, 1>;

/// Views a row-major 2-d xtensor as an Eigen matrix, without copying.
template <class Scalar>
Eigen::Map<row_matrix<Scalar>> as_matrix(xt::xtensor<Scalar, 2>& t) {
  return {t.data(), static_cast<Eigen::Index>(t.shape(0)), static_cast<Eigen::Index>(t.shape(1))};
}

/// Views a row-major 2-d xtensor as a read-only Eigen matrix, without copying.
template <class Scalar>
Eigen::Map<const row_matrix<Scalar>> as_matrix(const xt::xtensor<Scalar, 2>& t) {
  return {t.data(), static_cast<Eigen::Index>(t.shape(0)), static_cast<Eigen::Index>(t.shape(1))};
}

/// Views a contiguous xtensor of any rank as an Eigen column vector of all its elements.
template <class Scalar, std::size_t N>
Eigen::Map<vector<Scalar>> as_vector(xt::xtensor<Scalar, N>& t) {
  return {t.data(), static_cast<Eigen::Index>(t.size())};
}

/// Views a contiguous xtensor of any rank as a read-only Eigen column vector of all its elements.
template <class Scalar, std::size_t N>
Eigen::Map<const vector<Scalar>> as_vector(const xt::xtensor<Scalar, N>& t) {
  return {t.data(), static_cast<Eigen::Index>(t.size())};
}

/// Views the matrix at index i of a 3-d xtensor [n, rows, cols] as an Eigen matrix.
template <class Scalar>
Eigen::Map<row_matrix<Scalar>> slice_matrix(xt::xtensor<Scalar, 3>& t, std::size_t i) {
  const auto rows = t.shape(1), cols = t.shape(2);
  return {t.data() + i * rows * cols, static_cast<Eigen::Index>(rows), static_cast<Eigen::Index>(cols)};
}

/// Views the matrix at index i of a read-only 3-d xtensor [n, rows, cols] as an Eigen matrix.
template <class Scalar>
Eigen::Map<const row_matrix<Scalar>> slice_matrix(const xt::xtensor<Scalar, 3>& t, std::size_t i) {
  const auto rows = t.shape(1), cols = t.shape(2);
  return {t.data() + i * rows * cols, static_cast<Eigen::Index>(rows), static_cast<Eigen::Index>(cols)};
}

}  // namespace glassbox::detail

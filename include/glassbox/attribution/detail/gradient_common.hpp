// glassbox: helpers shared by the gradient attribution methods (progress across several dispatch
// calls, recording options, embedding arithmetic in double). Not public API.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "glassbox/attribution/baseline.hpp"
#include "glassbox/core/error.hpp"
#include "glassbox/core/execution.hpp"
#include "glassbox/core/result.hpp"
#include "glassbox/core/types.hpp"

namespace glassbox::detail {

/// A double matrix [rows, cols], the accumulator of per-dimension attributions.
using matrix_d = xt::xtensor<double, 2>;

/// A copy of `exec` whose progress reports count from `offset` within a whole of `total` units, so
/// that a method making several dispatch calls reports one progress from 0 to its total.
template <class = void>
inline execution_options progress_slice(const execution_options& exec, std::size_t offset, std::size_t total) {
  execution_options slice = exec;
  if (exec.on_progress) {
    slice.on_progress = [callback = exec.on_progress, offset, total](const progress& p) {
      return callback(progress{offset + p.done, std::max(total, offset + p.total), p.stage});
    };
  }
  return slice;
}

/// A named option holding an integer (sizes are recorded as 64-bit integers).
template <class = void>
inline named_option option(std::string name, std::size_t value) {
  return {std::move(name), static_cast<std::int64_t>(value)};
}
/// A named option holding a real.
template <class = void>
inline named_option option(std::string name, double value) { return {std::move(name), value}; }
/// A named option holding a flag.
template <class = void>
inline named_option option(std::string name, bool value) { return {std::move(name), value}; }
/// A named option holding a string.
template <class = void>
inline named_option option(std::string name, std::string_view value) { return {std::move(name), std::string(value)}; }
/// A named option holding a seed (recorded as a 64-bit integer with the same bits).
template <class = void>
inline named_option seed_option(std::uint64_t seed) { return {"seed", static_cast<std::int64_t>(seed)}; }

/// The execution options as named options (batch_size, threads).
template <class = void>
inline void record_execution(std::vector<named_option>& out, const execution_options& exec) {
  out.push_back(option("batch_size", exec.batch_size));
  out.push_back(option("threads", exec.threads));
}

/// "pad", "token 3", "zero", "embedding" for one baseline; "a; b; c" for a list.
template <class = void>
inline std::string describe_baselines(std::span<const baseline> list) {
  std::string s;
  for (std::size_t i = 0; i < list.size(); ++i) {
    if (i != 0) s += "; ";
    s += list[i].describe();
  }
  return s;
}

/// Fails unless `tokens` is non-empty.
template <class = void>
inline void require_tokens(token_span tokens, std::string_view caller) {
  require<shape_error>(!tokens.empty(), "glassbox::{}: tokens must not be empty", caller);
}

/// Fails unless `b` can give input embeddings (every kind but removal).
template <class = void>
inline void require_embedding_baseline(const baseline& b, std::string_view caller, std::string_view argument) {
  require(b.kind() != baseline_kind::removal,
          "glassbox::{}: {} must be pad, token, zero or embedding, got removal (gradient methods interpolate "
          "embeddings, so a token cannot be deleted)",
          caller, argument);
}

/// The per-dimension product (a - b) * c of three [T, d] arrays, in double.
template <class = void>
inline matrix_d difference_times(const tensor2& a, const tensor2& b, const matrix_d& c) {
  matrix_d out(c.shape());
  const float* pa = a.data();
  const float* pb = b.data();
  const double* pc = c.data();
  double* po = out.data();
  for (std::size_t i = 0; i < out.size(); ++i)
    po[i] = (static_cast<double>(pa[i]) - static_cast<double>(pb[i])) * pc[i];
  return out;
}

/// A float copy of a double matrix (the embedding_scores of a result).
template <class = void>
inline tensor2 to_float(const matrix_d& m) {
  tensor2 out(m.shape());
  for (std::size_t i = 0; i < m.size(); ++i) out.data()[i] = static_cast<float>(m.data()[i]);
  return out;
}

/// A double copy of a float matrix.
template <class = void>
inline matrix_d to_double(const tensor2& m) {
  matrix_d out(m.shape());
  for (std::size_t i = 0; i < m.size(); ++i) out.data()[i] = static_cast<double>(m.data()[i]);
  return out;
}

/// Fails unless every value of a double matrix is finite (an attribution computed from a model's outputs).
template <class = void>
inline void require_finite_scores(const matrix_d& m, std::string_view caller) {
  for (std::size_t i = 0; i < m.size(); ++i)
    require<model_error>(std::isfinite(m.data()[i]), "glassbox::{}: the attribution of dimension {} of token {} is {}",
                         caller, i % m.shape(1), i / m.shape(1), m.data()[i]);
}

/// The [T, d] embeddings of every baseline of `list` for `tokens`, checked.
template <EmbeddingModel M>
std::vector<tensor2> baseline_embedding_list(const M& model, token_span tokens, std::span<const baseline> list,
                                             std::string_view caller, std::string_view argument) {
  std::vector<tensor2> out;
  out.reserve(list.size());
  for (const baseline& b : list) {
    require_embedding_baseline(b, caller, argument);
    out.push_back(baseline_embeddings(model, tokens, b, caller));
  }
  return out;
}

}  // namespace glassbox::detail

// glassbox: what is explained. A target turns a model's output rows into one scalar and
// gives its derivative with respect to those rows' logits.
//
// Positions count like Python indices: 0 is the first output row, -1 (the default) the last.
// Counting from the end keeps a target on the same prediction when a perturbation removes
// earlier tokens. A causal language model has one output row per input position; a sequence
// classifier has one row, which position -1 addresses.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "glassbox/core/error.hpp"
#include "glassbox/core/types.hpp"

namespace glassbox {

/// The kinds of scalar a target can read from the logits.
enum class target_kind {
  logit,                     ///< z[token] at one position
  probability,               ///< softmax(z)[token] at one position
  log_probability,           ///< log softmax(z)[token] at one position
  sequence_log_probability,  ///< sum of log p(c_j | prefix) over a teacher-forced continuation
  contrast,                  ///< f(token) - f(foil) at one position, f a logit, probability or log-probability
};

/// The stable name of a target kind, as used in JSON and on the command line ("log-probability").
constexpr std::string_view to_string(target_kind kind) {
  switch (kind) {
    case target_kind::logit: return "logit";
    case target_kind::probability: return "probability";
    case target_kind::log_probability: return "log-probability";
    case target_kind::sequence_log_probability: return "sequence-log-probability";
    case target_kind::contrast: return "contrast";
  }
  return "unknown";
}

/// A scalar function of a model's logits and its derivative: the thing an attribution explains.
///
/// Example: `auto t = glassbox::target::log_probability(positive_id);` explains log p(positive) at the
/// last position; `target::contrast(good, bad)` explains why `good` rather than `bad`.
class target {
 public:
  /// The logit of `token` at output row `position` (negative counts from the end).
  template <class = void>
  static target logit(token_id token, std::ptrdiff_t position = -1) {
    return target(target_kind::logit, token, -1, position, {}, target_kind::logit);
  }
  /// The probability softmax(z)[token] at output row `position`.
  template <class = void>
  static target probability(token_id token, std::ptrdiff_t position = -1) {
    return target(target_kind::probability, token, -1, position, {}, target_kind::probability);
  }
  /// The log-probability log softmax(z)[token] at output row `position`.
  template <class = void>
  static target log_probability(token_id token, std::ptrdiff_t position = -1) {
    return target(target_kind::log_probability, token, -1, position, {}, target_kind::log_probability);
  }
  /// The summed log-probability of `continuation`, which must be the last tokens of the input
  /// (teacher forcing): sum_j log p(c_j | tokens before c_j). Attributes a generated answer to its prompt.
  template <class = void>
  static target sequence_log_probability(token_sequence continuation) {
    detail::require<shape_error>(!continuation.empty(), "glassbox::target::sequence_log_probability: continuation must not be empty");
    return target(target_kind::sequence_log_probability, -1, -1, -1, std::move(continuation),
                  target_kind::log_probability);
  }
  /// f(token) - f(foil) at output row `position`, with f the logit, probability or log-probability
  /// (`of`). For logits and log-probabilities the two contrasts are equal: the normaliser cancels.
  template <class = void>
  static target contrast(token_id token, token_id foil, target_kind of = target_kind::log_probability,
                         std::ptrdiff_t position = -1) {
    detail::require(of == target_kind::logit || of == target_kind::probability || of == target_kind::log_probability,
                    "glassbox::target::contrast: of must be logit, probability or log-probability, got {}",
                    to_string(of));
    return target(target_kind::contrast, token, foil, position, {}, of);
  }

  /// The kind of scalar.
  target_kind kind() const { return kind_; }
  /// The token whose score is read (-1 for a sequence target).
  token_id token() const { return token_; }
  /// The contrasting token of a contrast target (-1 otherwise).
  token_id foil() const { return foil_; }
  /// The output row, negative counting from the end (ignored by sequence targets).
  std::ptrdiff_t position() const { return position_; }
  /// The continuation of a sequence target (empty otherwise).
  const token_sequence& continuation() const { return continuation_; }
  /// What a contrast subtracts: logit, probability or log-probability; for other kinds, the kind itself.
  target_kind contrast_of() const { return of_; }

  /// The output rows this target reads, ascending, for a model output of `n_rows` rows.
  template <class = void>
  std::vector<std::size_t> rows(std::size_t n_rows) const {
    if (kind_ == target_kind::sequence_log_probability) {
      const std::size_t k = continuation_.size();
      detail::require<shape_error>(n_rows >= k + 1,
                                   "glassbox::target: a continuation of {} tokens needs at least {} output rows, got {}",
                                   k, k + 1, n_rows);
      std::vector<std::size_t> r(k);
      for (std::size_t j = 0; j < k; ++j) r[j] = n_rows - k - 1 + j;
      return r;
    }
    const auto n = static_cast<std::ptrdiff_t>(n_rows);
    const std::ptrdiff_t p = position_ < 0 ? n + position_ : position_;
    detail::require<shape_error>(p >= 0 && p < n, "glassbox::target: position {} outside an output of {} rows",
                                 position_, n_rows);
    return {static_cast<std::size_t>(p)};
  }

  /// The target's value from the logits of its rows (`row_logits` is [rows(n).size(), V], in that order).
  template <class = void>
  double value(const tensor2& row_logits) const { return evaluate(row_logits, nullptr); }

  /// The value, and its derivative w.r.t. `row_logits` written to `d_row_logits` (resized to match).
  template <class = void>
  double value_and_gradient(const tensor2& row_logits, tensor2& d_row_logits) const {
    d_row_logits = xt::zeros<float>(row_logits.shape());
    return evaluate(row_logits, &d_row_logits);
  }

  /// The value from a model's whole output [n_rows, V].
  template <class = void>
  double value_of(const tensor2& logits) const {
    const auto r = rows(logits.shape(0));
    tensor2 selected({r.size(), logits.shape(1)});
    for (std::size_t i = 0; i < r.size(); ++i)
      std::copy_n(logits.data() + r[i] * logits.shape(1), logits.shape(1), selected.data() + i * logits.shape(1));
    return value(selected);
  }

  /// A short human-readable description, e.g. "log-probability of token 12 at the last position".
  template <class = void>
  std::string describe() const {
    // Negative positions count from the end (-1 = the last row).
    const std::string where = position_ == -1 ? std::string("the last position")
                              : position_ < 0 ? fmt::format("position {} (from the end)", position_)
                                              : fmt::format("position {}", position_);
    switch (kind_) {
      case target_kind::sequence_log_probability:
        return fmt::format("sequence-log-probability of a {}-token continuation", continuation_.size());
      case target_kind::contrast:
        return fmt::format("contrast of {}: token {} minus token {} at {}", to_string(of_), token_, foil_, where);
      default: return fmt::format("{} of token {} at {}", to_string(kind_), token_, where);
    }
  }

  friend bool operator==(const target&, const target&) = default;

 private:
  template <class = void>
  target(target_kind kind, token_id token, token_id foil, std::ptrdiff_t position, token_sequence continuation,
         target_kind of)
      : kind_(kind), token_(token), foil_(foil), position_(position), continuation_(std::move(continuation)), of_(of) {}

  template <class = void>
  static void check_token(token_id t, std::size_t columns) {
    detail::require<shape_error>(t >= 0 && static_cast<std::size_t>(t) < columns,
                                 "glassbox::target: token {} outside an output of {} columns", t, columns);
  }

  // log-sum-exp of one row in double, and (optionally) the softmax written to p.
  template <class = void>
  static double log_sum_exp(const float* z, std::size_t v, std::vector<double>* p) {
    double m = -INFINITY;
    for (std::size_t j = 0; j < v; ++j) m = std::max(m, static_cast<double>(z[j]));
    double s = 0;
    for (std::size_t j = 0; j < v; ++j) s += std::exp(static_cast<double>(z[j]) - m);
    const double lse = m + std::log(s);
    if (p != nullptr) {
      p->resize(v);
      for (std::size_t j = 0; j < v; ++j) (*p)[j] = std::exp(static_cast<double>(z[j]) - lse);
    }
    return lse;
  }

  // f(token) for f in {logit, probability, log-probability} on one row; adds sign * df/dz to d.
  template <class = void>
  static double score(target_kind f, const float* z, std::size_t v, token_id token, double sign, float* d) {
    if (f == target_kind::logit) {
      if (d != nullptr) d[token] += static_cast<float>(sign);
      return z[token];
    }
    std::vector<double> p;
    const double lse = log_sum_exp(z, v, d != nullptr ? &p : nullptr);
    const double log_p = static_cast<double>(z[token]) - lse;
    if (f == target_kind::log_probability) {
      if (d != nullptr) {  // d log p_a / d z = e_a - p
        for (std::size_t j = 0; j < v; ++j) d[j] -= static_cast<float>(sign * p[j]);
        d[token] += static_cast<float>(sign);
      }
      return log_p;
    }
    const double prob = std::exp(log_p);
    if (d != nullptr) {  // d p_a / d z = p_a (e_a - p)
      for (std::size_t j = 0; j < v; ++j) d[j] -= static_cast<float>(sign * prob * p[j]);
      d[token] += static_cast<float>(sign * prob);
    }
    return prob;
  }

  template <class = void>
  double evaluate(const tensor2& row_logits, tensor2* d) const {
    const std::size_t v = row_logits.shape(1);
    const std::size_t expected_rows = kind_ == target_kind::sequence_log_probability ? continuation_.size() : 1;
    detail::require<shape_error>(row_logits.shape(0) == expected_rows,
                                 "glassbox::target: expected logits of {} rows, got {}", expected_rows,
                                 row_logits.shape(0));
    const float* z = row_logits.data();
    float* dz = d != nullptr ? d->data() : nullptr;
    switch (kind_) {
      case target_kind::sequence_log_probability: {
        double total = 0;
        for (std::size_t j = 0; j < continuation_.size(); ++j) {
          check_token(continuation_[j], v);
          total += score(target_kind::log_probability, z + j * v, v, continuation_[j], 1.0,
                         dz != nullptr ? dz + j * v : nullptr);
        }
        return total;
      }
      case target_kind::contrast:
        check_token(token_, v);
        check_token(foil_, v);
        return score(of_, z, v, token_, 1.0, dz) - score(of_, z, v, foil_, -1.0, dz);
      default: check_token(token_, v); return score(kind_, z, v, token_, 1.0, dz);
    }
  }

  target_kind kind_;
  token_id token_;
  token_id foil_;
  std::ptrdiff_t position_;
  token_sequence continuation_;
  target_kind of_;
};

/// What a differentiable model needs to know about the scalar it differentiates: which output
/// rows it reads, and its value and derivative from those rows' logits. Built from a `target`
/// (implicitly) or from any two functions, e.g. a probe's loss.
class output_seed {
 public:
  /// Output rows read, ascending, for an output of n_rows rows.
  using rows_function = std::function<std::vector<std::size_t>(std::size_t n_rows)>;
  /// Value from the rows' logits [P, V]; writes the derivative into d_row_logits (resized by the callee).
  using value_function = std::function<double(const tensor2& row_logits, tensor2& d_row_logits)>;

  /// Seeds the backward pass with a target's derivative.
  template <class = void>
  output_seed(const target& t)  // NOLINT(google-explicit-constructor): a target is a seed
      : rows_([t](std::size_t n) { return t.rows(n); }),
        value_([t](const tensor2& z, tensor2& dz) { return t.value_and_gradient(z, dz); }) {}

  /// Seeds the backward pass with any scalar of the output rows.
  template <class = void>
  output_seed(rows_function rows, value_function value) : rows_(std::move(rows)), value_(std::move(value)) {}

  /// The output rows the scalar reads, for an output of n_rows rows.
  template <class = void>
  std::vector<std::size_t> rows(std::size_t n_rows) const { return rows_(n_rows); }

  /// The scalar's value; writes d value / d row_logits into d_row_logits.
  template <class = void>
  double operator()(const tensor2& row_logits, tensor2& d_row_logits) const {
    const double v = value_(row_logits, d_row_logits);
    detail::require<shape_error>(d_row_logits.shape() == row_logits.shape(),
                                 "glassbox::output_seed: the derivative has {} x {} entries, the logits {} x {}",
                                 d_row_logits.shape(0), d_row_logits.shape(1), row_logits.shape(0),
                                 row_logits.shape(1));
    return v;
  }

 private:
  rows_function rows_;
  value_function value_;
};

/// A scalar of a model's output rows and its derivative, in the model's own precision: the
/// counterpart of output_seed for double models (models::basic_gpt2<double>, adapters::basic_libtorch_model<double>)
/// and for float callers who want it.
template <class Scalar>
class basic_output_seed {
 public:
  /// Output rows read, ascending, for an output of n rows.
  using rows_function = std::function<std::vector<std::size_t>(std::size_t n_rows)>;
  /// Value from the rows' logits [P, V]; writes the derivative into d_row_logits (resized by the callee).
  using value_function =
      std::function<double(const xt::xtensor<Scalar, 2>& row_logits, xt::xtensor<Scalar, 2>& d_row_logits)>;

  /// A seed from its two functions.
  basic_output_seed(rows_function rows, value_function value) : rows_(std::move(rows)), value_(std::move(value)) {}

  /// The rows the scalar reads.
  std::vector<std::size_t> rows(std::size_t n_rows) const { return rows_(n_rows); }

  /// The scalar's value; writes d value / d row_logits into d_row_logits.
  double operator()(const xt::xtensor<Scalar, 2>& row_logits, xt::xtensor<Scalar, 2>& d_row_logits) const {
    const double v = value_(row_logits, d_row_logits);
    detail::require<shape_error>(d_row_logits.shape() == row_logits.shape(),
                                 "glassbox::basic_output_seed: the derivative has {} x {} entries, the logits {} x {}",
                                 d_row_logits.shape(0), d_row_logits.shape(1), row_logits.shape(0),
                                 row_logits.shape(1));
    return v;
  }

 private:
  rows_function rows_;
  value_function value_;
};

}  // namespace glassbox

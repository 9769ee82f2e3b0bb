// glassbox: what an influence query measures, and the gradients every influence method starts from.
//
// Conventions (docs/influence.md):
//   training set {z_n}, n = 0..N-1; L_n = TrainableModel::loss(z_n), the mean cross-entropy over
//   the scored rows of z_n; the training objective is J = (1/N) sum_n L_n.
//   A query q has a measurement f_q; its influence score on training example n is
//     s(q, n) = grad f_q^T (H + lambda I)^{-1} grad L_n,        H the curvature of J,
//   positive when up-weighting z_n lowers f_q (a helpful example), as Kronfluence signs it.
//
// Every measurement is a weighted sum of losses of training_example values,
//   f_q = sum_k w_k L(e_k),
// so it needs nothing beyond the TrainableModel rung (and K-FAC can read kfac_statistics of each
// e_k). "Lower is better" for every kind, so that a positive score always means "helped":
//   loss        f = L(q)                                      (the default)
//   completion  f = -sum_j log p(c_j | prompt, c_<j) = R x L(prompt ++ c labelled with c), R = |c|
//   contrast    f = -(log p(token) - log p(foil)) at one row = L(labelled token) - L(labelled foil)
//
// Gradients are stored as float (tensor1, the model's own precision; 4 bytes per parameter) and
// the terms of a measurement are summed in double before the one rounding to float. Dot products
// of gradients (influence_dot) accumulate in double.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "glassbox/core/error.hpp"
#include "glassbox/core/execution.hpp"
#include "glassbox/core/model.hpp"
#include "glassbox/core/types.hpp"

namespace glassbox {

/// What a query measures.
enum class measurement_kind {
  loss,        ///< f = L(q), the query's own mean cross-entropy (the default)
  completion,  ///< f = -sum_j log p(c_j | prompt, c_<j), the negative log-probability of a completion
  contrast,    ///< f = -(log p(token) - log p(foil)) at one output row
  weighted,    ///< f = sum_k w_k L(e_k), any weighted sum of losses
};

/// The stable name of a measurement kind ("loss", "completion", "contrast", "weighted").
constexpr std::string_view to_string(measurement_kind kind) {
  switch (kind) {
    case measurement_kind::loss:
      return "loss";
    case measurement_kind::completion:
      return "completion";
    case measurement_kind::contrast:
      return "contrast";
    case measurement_kind::weighted:
      return "weighted";
  }
  return "unknown";
}

/// One term w L(e) of a measurement.
struct measurement_term {
  training_example example;  ///< e: tokens and per-row labels
  double weight = 1;         ///< w
};

/// The scalar f_q a query measures, as a weighted sum of training_example losses; lower is better.
///
/// Example: `auto f = glassbox::measurement::completion(prompt, {positive_id});` measures
/// -log p(positive | prompt); a positive influence score means the training example raised it.
///
/// A class template only so that its member functions are compiled where they are used
/// (docs/building.md, "Include cost"); write measurement.
template <class = void>
class basic_measurement {
 public:
  /// f = L(query): the query's mean cross-entropy over its scored rows (the default measurement).
  static basic_measurement loss(training_example query) {
    detail::require<shape_error>(!query.tokens.empty(), "glassbox::measurement::loss: query tokens must not be empty");
    detail::require<shape_error>(query.labels.size() == query.tokens.size(),
                                 "glassbox::measurement::loss: labels must have one entry per token ({}), got {}",
                                 query.tokens.size(), query.labels.size());
    return basic_measurement(measurement_kind::loss, {{std::move(query), 1.0}});
  }

  /// f = -sum_j log p(c_j | prompt, c_<j): the summed negative log-probability of `completion`
  /// after `prompt` (teacher forced), = |completion| x L(prompt ++ completion labelled with it).
  static basic_measurement completion(token_sequence prompt, token_sequence completion) {
    detail::require<shape_error>(!prompt.empty(), "glassbox::measurement::completion: prompt must not be empty");
    detail::require<shape_error>(!completion.empty(),
                                 "glassbox::measurement::completion: completion must not be empty");
    const std::size_t p = prompt.size(), c = completion.size();
    training_example e;
    e.tokens = std::move(prompt);
    e.tokens.insert(e.tokens.end(), completion.begin(), completion.end() - 1);
    e.labels.assign(e.tokens.size(), training_example::ignore_label);
    for (std::size_t j = 0; j < c; ++j) e.labels[p - 1 + j] = completion[j];
    return basic_measurement(measurement_kind::completion, {{std::move(e), static_cast<double>(c)}});
  }

  /// f = -(log p(token) - log p(foil)) at output row `position` of `tokens` (negative counts from
  /// the end; -1 = the last row) = L(tokens labelled `token` there) - L(tokens labelled `foil` there).
  static basic_measurement contrast(token_sequence tokens, token_id token, token_id foil, std::ptrdiff_t position = -1) {
    detail::require<shape_error>(!tokens.empty(), "glassbox::measurement::contrast: tokens must not be empty");
    detail::require(token != foil, "glassbox::measurement::contrast: foil must differ from token ({}), got {}", token,
                    foil);
    detail::require<shape_error>(token >= 0 && foil >= 0,
                                 "glassbox::measurement::contrast: token and foil must be >= 0, got {} and {}", token,
                                 foil);
    const auto n = static_cast<std::ptrdiff_t>(tokens.size());
    const std::ptrdiff_t row = position < 0 ? n + position : position;
    detail::require<shape_error>(row >= 0 && row < n,
                                 "glassbox::measurement::contrast: position must address one of {} rows, got {}", n,
                                 position);
    training_example a{tokens, std::vector<token_id>(tokens.size(), training_example::ignore_label)};
    training_example b = a;
    a.labels[static_cast<std::size_t>(row)] = token;
    b.labels[static_cast<std::size_t>(row)] = foil;
    return basic_measurement(measurement_kind::contrast, {{std::move(a), 1.0}, {std::move(b), -1.0}});
  }

  /// f = sum_k w_k L(e_k) for any terms (e.g. a query set's mean loss).
  static basic_measurement weighted(std::vector<measurement_term> terms) {
    detail::require<shape_error>(!terms.empty(), "glassbox::measurement::weighted: terms must not be empty");
    for (std::size_t k = 0; k < terms.size(); ++k) {
      detail::require(std::isfinite(terms[k].weight),
                      "glassbox::measurement::weighted: weight must be finite, got {} (term {})", terms[k].weight, k);
      detail::require<shape_error>(
          terms[k].example.labels.size() == terms[k].example.tokens.size() && !terms[k].example.tokens.empty(),
          "glassbox::measurement::weighted: term {} must have tokens and one label per token, "
          "got {} tokens and {} labels",
          k, terms[k].example.tokens.size(), terms[k].example.labels.size());
    }
    return basic_measurement(measurement_kind::weighted, std::move(terms));
  }

  /// What the measurement is.
  measurement_kind kind() const { return kind_; }
  /// Its terms w_k L(e_k).
  std::span<const measurement_term> terms() const { return terms_; }
  /// The tokens the query is about (those of its first term).
  const token_sequence& tokens() const { return terms_.front().example.tokens; }

 private:
  basic_measurement(measurement_kind kind, std::vector<measurement_term> terms) : kind_(kind), terms_(std::move(terms)) {}

  measurement_kind kind_;
  std::vector<measurement_term> terms_;
};

/// The measurement type (basic_measurement's only instantiation).
using measurement = basic_measurement<>;

/// A contiguous run of the flat parameters [offset, offset + size): influence on chosen layers.
struct parameter_range {
  std::size_t offset = 0;  ///< first parameter
  std::size_t size = 0;    ///< how many

  friend bool operator==(const parameter_range&, const parameter_range&) = default;
};

namespace detail {

/// Throws model_error if a gradient has the wrong length or holds NaN/Inf, naming what produced it.
template <class = void>
inline void check_gradient(const tensor1& gradient, double value, std::size_t parameters, std::string_view caller,
                           std::string_view what, std::size_t index) {
  require<model_error>(gradient.size() == parameters,
                       "glassbox::{}: loss_gradient returned {} values for {} parameters ({} {})", caller,
                       gradient.size(), parameters, what, index);
  require<model_error>(std::isfinite(value), "glassbox::{}: the model returned a loss of {} for {} {}", caller, value,
                       what, index);
  for (std::size_t i = 0; i < gradient.size(); ++i)
    if (!std::isfinite(gradient[i]))
      fail<model_error>("glassbox::{}: the model returned {} in the loss gradient of {} {} (parameter {})", caller,
                        gradient[i], what, index, i);
}

/// The checked loss and gradient of one example; `what`/`index` name it in errors ("training example", 17).
template <TrainableModel M>
value_and_gradient<tensor1> checked_loss_gradient(const M& model, const training_example& example,
                                                  std::string_view caller, std::string_view what, std::size_t index) {
  value_and_gradient<tensor1> g = model.loss_gradient(example);
  check_gradient(g.gradient, g.value, model.parameter_count(), caller, what, index);
  return g;
}

/// Checks that parameter ranges lie inside `parameters`, are non-empty and do not overlap; returns their total size.
template <class = void>
inline std::size_t check_parameter_ranges(std::span<const parameter_range> ranges, std::size_t parameters,
                                          std::string_view caller) {
  std::vector<std::pair<std::size_t, std::size_t>> sorted;
  std::size_t total = 0;
  for (std::size_t k = 0; k < ranges.size(); ++k) {
    const auto& r = ranges[k];
    require<shape_error>(r.size >= 1, "glassbox::{}: parameter range {} must not be empty", caller, k);
    require<shape_error>(r.offset <= parameters && r.size <= parameters - r.offset,
                         "glassbox::{}: parameter range {} must lie in [0, {}), got [{}, {})", caller, k, parameters,
                         r.offset, r.offset + r.size);
    sorted.emplace_back(r.offset, r.offset + r.size);
    total += r.size;
  }
  std::sort(sorted.begin(), sorted.end());
  for (std::size_t k = 1; k < sorted.size(); ++k)
    require<shape_error>(sorted[k].first >= sorted[k - 1].second,
                         "glassbox::{}: parameter ranges must not overlap, got [{}, {}) and [{}, {})", caller,
                         sorted[k - 1].first, sorted[k - 1].second, sorted[k].first, sorted[k].second);
  return ranges.empty() ? parameters : total;
}

}  // namespace detail

/// f_q at the model's current parameters: sum_k w_k L(e_k), accumulated in double.
template <TrainableModel M>
double measurement_value(const M& model, const measurement& f) {
  static_assert(check_trainable_model<M>());
  double total = 0;
  for (std::size_t k = 0; k < f.terms().size(); ++k) {
    const double l = model.loss(f.terms()[k].example);
    detail::require<model_error>(std::isfinite(l),
                                 "glassbox::measurement_value: the model returned a loss of {} (term {})", l, k);
    total += f.terms()[k].weight * l;
  }
  return total;
}

/// f_q and grad f_q = sum_k w_k grad L(e_k), flat over all parameters (layout of parameters()),
/// summed in double and stored as float.
template <TrainableModel M>
value_and_gradient<tensor1> measurement_gradient(const M& model, const measurement& f) {
  static_assert(check_trainable_model<M>());
  const auto terms = f.terms();
  if (terms.size() == 1 && terms[0].weight == 1.0)
    return detail::checked_loss_gradient(model, terms[0].example, "measurement_gradient", "measurement term", 0);
  std::vector<double> sum(model.parameter_count(), 0.0);
  double value = 0;
  for (std::size_t k = 0; k < terms.size(); ++k) {
    const auto g =
        detail::checked_loss_gradient(model, terms[k].example, "measurement_gradient", "measurement term", k);
    const double w = terms[k].weight;
    value += w * g.value;
    for (std::size_t i = 0; i < sum.size(); ++i) sum[i] += w * static_cast<double>(g.gradient[i]);
  }
  value_and_gradient<tensor1> out{value, tensor1::from_shape({sum.size()})};
  for (std::size_t i = 0; i < sum.size(); ++i) out.gradient[i] = static_cast<float>(sum[i]);
  return out;
}

/// grad f_q for every query, one model call per term (in parallel when the model is thread-safe).
template <TrainableModel M>
std::vector<value_and_gradient<tensor1>> measurement_gradients(const M& model, std::span<const measurement> queries,
                                                               const execution_options& exec = {}) {
  static_assert(check_trainable_model<M>());
  std::vector<value_and_gradient<tensor1>> out(queries.size());
  execution_options one = exec;
  one.batch_size = 1;
  detail::run_batches(queries.size(), one, detail::worker_count(exec, is_thread_safe<M>()), "measurement_gradients",
                      [&](std::size_t begin, std::size_t end) {
                        for (std::size_t q = begin; q < end; ++q) out[q] = measurement_gradient(model, queries[q]);
                      });
  return out;
}

/// L_n and grad L_n of training example `example` (`index` names it in errors), checked for NaN/Inf.
template <TrainableModel M>
value_and_gradient<tensor1> training_gradient(const M& model, const training_example& example, std::size_t index = 0) {
  static_assert(check_trainable_model<M>());
  return detail::checked_loss_gradient(model, example, "training_gradient", "training example", index);
}

/// a . b accumulated in double (gradients are float).
template <class = void>
inline double influence_dot(std::span<const float> a, std::span<const float> b) {
  detail::require<shape_error>(a.size() == b.size(),
                               "glassbox::influence_dot: vectors must have equal length, got {} and {}", a.size(),
                               b.size());
  double s = 0;
  for (std::size_t i = 0; i < a.size(); ++i) s += static_cast<double>(a[i]) * static_cast<double>(b[i]);
  return s;
}

}  // namespace glassbox

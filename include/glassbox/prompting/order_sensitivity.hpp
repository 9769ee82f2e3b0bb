// glassbox: order sensitivity of a few-shot prompt (Lu et al. 2022, "Fantastically ordered prompts
// and where to find them"): the demonstrations are permuted, the rest of the prompt stays where it
// is, and the spread of the target and of the prediction over the orders is reported.
// docs/prompting.md has the definitions and defaults.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <numeric>
#include <set>
#include <span>
#include <string_view>
#include <vector>

#include "glassbox/core/error.hpp"
#include "glassbox/core/execution.hpp"
#include "glassbox/core/model.hpp"
#include "glassbox/core/random.hpp"
#include "glassbox/core/target.hpp"
#include "glassbox/core/types.hpp"
#include "glassbox/prompting/segments.hpp"

namespace glassbox {

/// Options of the order-sensitivity check.
struct order_sensitivity_options {
  /// All k! orders of the k segments when k! <= max_orders (k <= 5 by default), else max_orders
  /// distinct orders drawn uniformly under `seed`.
  std::size_t max_orders = 120;
  std::uint64_t seed = 0;         ///< the seed of the sampled orders
  execution_options execution{};  ///< batch size, threads, progress, cancellation
};

/// The target and the prediction of a prompt under orders of its segments.
struct order_sensitivity_result {
  /// The orders evaluated: orders[o][j] is the (original) index of the segment placed in slot j.
  std::vector<std::vector<std::size_t>> orders;
  std::vector<double> values;         ///< the target per order
  std::vector<token_id> predictions;  ///< the prediction per order: argmax of the first row the target reads
  double original_value = 0;          ///< the target in the original order
  token_id original_prediction = -1;  ///< the prediction in the original order
  double mean = 0;                    ///< mean of values
  double min = 0;                     ///< smallest of values
  double max = 0;                     ///< largest of values
  double standard_deviation = 0;      ///< population standard deviation of values (divides by the number of orders)
  double prediction_change_rate = 0;  ///< fraction of orders whose prediction differs from original_prediction
  bool exhaustive = false;            ///< whether every order was evaluated
  std::size_t model_evaluations = 0;  ///< forward passes made
};

namespace detail {

/// The id of the largest entry of a logits row (the lowest id on ties).
template <class = void>
inline token_id argmax_row(const float* z, std::size_t v) {
  return static_cast<token_id>(std::max_element(z, z + v) - z);
}

/// tokens with its segments placed in `order` (order[j] = the segment in slot j); the tokens
/// between, before and after the segments stay in their slots.
template <class = void>
inline token_sequence reorder_segments(token_span tokens, std::span<const segment> segments,
                                       std::span<const std::size_t> order) {
  token_sequence out;
  out.reserve(tokens.size());
  std::size_t cursor = 0;
  for (std::size_t j = 0; j < segments.size(); ++j) {
    out.insert(out.end(), tokens.begin() + static_cast<std::ptrdiff_t>(cursor),
               tokens.begin() + static_cast<std::ptrdiff_t>(segments[j].begin));
    const segment& s = segments[order[j]];
    out.insert(out.end(), tokens.begin() + static_cast<std::ptrdiff_t>(s.begin),
               tokens.begin() + static_cast<std::ptrdiff_t>(s.end));
    cursor = segments[j].end;
  }
  out.insert(out.end(), tokens.begin() + static_cast<std::ptrdiff_t>(cursor), tokens.end());
  return out;
}

}  // namespace detail

/// The order-sensitivity check: the segments (demonstrations) of `tokens` are permuted among their
/// slots while every other token (an instruction before them, separators between them held fixed,
/// the query after them) stays in place, and target `t` and the prediction (argmax of the first row
/// `t` reads) are measured for each order. Every order is evaluated when k! <= options.max_orders,
/// else options.max_orders distinct orders drawn uniformly under options.seed (the original order
/// then evaluated besides). Reports the mean, min, max and population standard deviation of the
/// target over the evaluated orders and the fraction whose prediction differs from the original
/// order's. Costs one forward pass per order (plus one for the original when sampling).
///
/// Example: `auto r = glassbox::order_sensitivity(model, tokens, glassbox::segments_at_separator(tokens, nl), t);`
template <class M>
order_sensitivity_result order_sensitivity(const M& model, token_span tokens, std::span<const segment> segments,
                                           const target& t, const order_sensitivity_options& options = {}) {
  static_assert(check_model<M>());
  constexpr std::string_view caller = "order_sensitivity";
  detail::check_segments(tokens.size(), segments, caller);
  const std::size_t k = segments.size();
  detail::require<shape_error>(
      k >= 2, "glassbox::order_sensitivity: segments must hold at least 2 segments to permute, got {}", k);
  detail::require(options.max_orders >= 1, "glassbox::order_sensitivity: max_orders must be >= 1, got {}",
                  options.max_orders);
  // k! <= max_orders, without overflow.
  std::size_t factorial = 1;
  bool exhaustive = true;
  for (std::size_t i = 2; i <= k && exhaustive; ++i) {
    if (factorial > options.max_orders / i) exhaustive = false;
    factorial *= i;
  }
  exhaustive = exhaustive && factorial <= options.max_orders;

  order_sensitivity_result r;
  r.exhaustive = exhaustive;
  std::vector<std::size_t> identity(k);
  std::iota(identity.begin(), identity.end(), std::size_t{0});
  if (exhaustive) {
    std::vector<std::size_t> p = identity;
    do r.orders.push_back(p);
    while (std::next_permutation(p.begin(), p.end()));
  } else {
    // Every random draw happens here, before any model call; distinct orders, in the order drawn.
    rng gen(options.seed);
    std::set<std::vector<std::size_t>> seen;
    while (r.orders.size() < options.max_orders) {
      std::vector<std::size_t> p = identity;
      gen.shuffle(p.begin(), p.end());
      if (seen.insert(p).second) r.orders.push_back(std::move(p));
    }
  }
  // Input 0 is the original order when sampling; exhaustively, orders[0] is the identity.
  const std::size_t offset = exhaustive ? 0 : 1;
  std::vector<token_sequence> inputs;
  inputs.reserve(r.orders.size() + offset);
  if (!exhaustive) inputs.emplace_back(tokens.begin(), tokens.end());
  for (const auto& order : r.orders) inputs.push_back(detail::reorder_segments(tokens, segments, order));
  const std::vector<tensor2> rows =
      detail::target_row_logits(model, std::span<const token_sequence>(inputs), t, options.execution, caller);
  r.model_evaluations = inputs.size();
  const std::size_t n = r.orders.size();
  r.values.resize(n);
  r.predictions.resize(n);
  for (std::size_t o = 0; o < n; ++o) {
    const tensor2& z = rows[o + offset];
    r.values[o] = t.value(z);
    r.predictions[o] = detail::argmax_row(z.data(), z.shape(1));
  }
  const tensor2& z0 = rows[0];
  r.original_value = t.value(z0);
  r.original_prediction = detail::argmax_row(z0.data(), z0.shape(1));
  // Moments shifted by the first value, so that equal values give a standard deviation of exactly 0.
  const double shift = r.values[0];
  double sum = 0, squares = 0;
  std::size_t changed = 0;
  r.min = r.max = r.values[0];
  for (std::size_t o = 0; o < n; ++o) {
    const double d = r.values[o] - shift;
    sum += d;
    squares += d * d;
    r.min = std::min(r.min, r.values[o]);
    r.max = std::max(r.max, r.values[o]);
    changed += r.predictions[o] != r.original_prediction ? 1 : 0;
  }
  const auto count = static_cast<double>(n);
  r.mean = shift + sum / count;
  r.standard_deviation = std::sqrt(std::max(0.0, squares / count - (sum / count) * (sum / count)));
  r.prediction_change_rate = static_cast<double>(changed) / count;
  return r;
}

}  // namespace glassbox

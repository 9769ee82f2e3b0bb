// glassbox: saliency and input x gradient, and what every gradient method shares: the reduction
// of per-dimension scores to one score per token, and the customization points through which
// noise_tunnel wraps any gradient method.
//
// A gradient method here is an options struct (saliency_options, input_x_gradient_options,
// integrated_gradients_options, or a user's own) with four functions found by argument-dependent
// lookup:
//   std::string_view method_name(const Options&)
//   embedding_attributions attribute_embeddings(const M&, token_span, std::span<const tensor2> inputs,
//                                               const target&, const Options&, const execution_options&)
//   std::vector<double> aggregate_tokens(const attribution_matrix& per_dimension, const Options&)
//   std::vector<named_option> recorded_options(const Options&)
// attribute_embeddings attributes a batch of input embedding matrices (e.g. noisy copies of the
// input) in one batched dispatch; the public functions (saliency, integrated_gradients, ...) call
// it on model.embed(tokens).
#pragma once

#include <cmath>
#include <concepts>
#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "glassbox/attribution/detail/gradient_common.hpp"
#include "glassbox/core/error.hpp"
#include "glassbox/core/execution.hpp"
#include "glassbox/core/model.hpp"
#include "glassbox/core/result.hpp"
#include "glassbox/core/target.hpp"
#include "glassbox/core/types.hpp"

namespace glassbox {

/// Per-dimension attributions [T, d] in double, before they are stored as float in a result.
using attribution_matrix = detail::matrix_d;

/// How per-dimension scores [T, d] become one score per token.
enum class token_aggregation {
  l2_norm,  ///< sqrt(sum_k s_k^2), unsigned: inseq's reduction for every gradient method
  sum_abs,  ///< sum_k |s_k|, unsigned
  sum,      ///< sum_k s_k, signed: keeps completeness (sum over tokens = sum over all dimensions)
};

/// The stable name of a token aggregation ("l2_norm", "sum_abs", "sum").
constexpr std::string_view to_string(token_aggregation a) {
  switch (a) {
    case token_aggregation::l2_norm:
      return "l2_norm";
    case token_aggregation::sum_abs:
      return "sum_abs";
    case token_aggregation::sum:
      return "sum";
  }
  return "unknown";
}

/// One score per token (row) of per-dimension scores, reduced as `how` says, in double.
template <class = void>
inline std::vector<double> aggregate_tokens(const attribution_matrix& per_dimension, token_aggregation how) {
  const std::size_t t = per_dimension.shape(0), d = per_dimension.shape(1);
  std::vector<double> out(t, 0.0);
  for (std::size_t i = 0; i < t; ++i) {
    const double* row = per_dimension.data() + i * d;
    double s = 0;
    for (std::size_t k = 0; k < d; ++k) {
      switch (how) {
        case token_aggregation::l2_norm:
          s += row[k] * row[k];
          break;
        case token_aggregation::sum_abs:
          s += std::abs(row[k]);
          break;
        case token_aggregation::sum:
          s += row[k];
          break;
      }
    }
    out[i] = how == token_aggregation::l2_norm ? std::sqrt(s) : s;
  }
  return out;
}

/// Per-dimension attributions of a batch of input embedding matrices: what one gradient method
/// computes in one batched dispatch, and what noise_tunnel averages over noisy inputs.
struct embedding_attributions {
  std::vector<attribution_matrix> scores;  ///< per input, [T, d]
  std::vector<double> target_values;       ///< f(input), per input
  std::vector<double> baseline_values;     ///< f(baseline) per input, for methods with a baseline; else empty
  std::vector<double> convergence_deltas;  ///< sum(scores) - (f(input) - f(baseline)) per input; else empty
  std::size_t model_evaluations = 0;       ///< forward or forward + backward passes made
  std::vector<named_option> facts;         ///< what the run decided, e.g. steps_used; recorded with the options
};

/// A gradient attribution method `Method` (an options struct) usable on model `M`: the four
/// functions listed at the top of glassbox/attribution/saliency.hpp, found by argument-dependent lookup.
template <class Method, class M>
concept GradientMethod = requires(const Method& method, const M& model, token_span tokens,
                                  std::span<const tensor2> inputs, const target& t, const execution_options& exec,
                                  const attribution_matrix& per_dimension) {
  { method_name(method) } -> std::convertible_to<std::string_view>;
  { attribute_embeddings(model, tokens, inputs, t, method, exec) } -> std::same_as<embedding_attributions>;
  { aggregate_tokens(per_dimension, method) } -> std::same_as<std::vector<double>>;
  { recorded_options(method) } -> std::same_as<std::vector<named_option>>;
};

namespace detail {

/// Fails unless `inputs` is a non-empty batch of [tokens.size(), d] matrices of one shape.
template <class = void>
inline void require_embedding_batch(token_span tokens, std::span<const tensor2> inputs, std::string_view caller) {
  require_tokens(tokens, caller);
  require<shape_error>(!inputs.empty(), "glassbox::{}: inputs must not be empty", caller);
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    require<shape_error>(inputs[i].dimension() == 2 && inputs[i].shape(0) == tokens.size() &&
                             inputs[i].shape(1) == inputs[0].shape(1) && inputs[i].shape(1) > 0,
                         "glassbox::{}: input {} must be [{}, {}] embeddings, got [{}, {}]", caller, i, tokens.size(),
                         inputs[0].shape(1), inputs[i].shape(0), inputs[i].shape(1));
  }
}

/// The attribution_result of input `index` of a batch attributed by one gradient method.
template <class = void>
inline attribution_result gradient_result(std::string_view method, token_span tokens, const target& t,
                                          const embedding_attributions& a, std::vector<double> scores,
                                          std::vector<named_option> options, std::size_t index = 0) {
  attribution_result r;
  r.method = std::string(method);
  r.token_ids.assign(tokens.begin(), tokens.end());
  r.scores = std::move(scores);
  r.embedding_scores = to_float(a.scores[index]);
  r.target = t;
  r.target_value = a.target_values[index];
  if (!a.baseline_values.empty()) r.baseline_value = a.baseline_values[index];
  if (!a.convergence_deltas.empty()) r.convergence_delta = a.convergence_deltas[index];
  r.model_evaluations = a.model_evaluations;
  r.options = std::move(options);
  r.options.insert(r.options.end(), a.facts.begin(), a.facts.end());
  return r;
}

}  // namespace detail

// ---------------------------------------------------------------------------------------------
// Saliency

/// Options of saliency (Simonyan et al. 2013; Captum's Saliency).
struct saliency_options {
  bool absolute = true;  ///< per-dimension |gradient|, as Captum's abs=True (default); false keeps the sign
  token_aggregation aggregation = token_aggregation::l2_norm;  ///< per-token reduction; L2 as inseq
  execution_options execution{};                               ///< batching, threads, progress, cancellation
};

/// "saliency".
constexpr std::string_view method_name(const saliency_options&) { return "saliency"; }

/// Every option of a saliency run, by name.
template <class = void>
inline std::vector<named_option> recorded_options(const saliency_options& o) {
  std::vector<named_option> out{detail::option("absolute", o.absolute),
                                detail::option("aggregation", to_string(o.aggregation))};
  detail::record_execution(out, o.execution);
  return out;
}

/// Saliency's per-token scores from per-dimension scores.
template <class = void>
inline std::vector<double> aggregate_tokens(const attribution_matrix& per_dimension, const saliency_options& o) {
  return aggregate_tokens(per_dimension, o.aggregation);
}

/// Saliency of a batch of input embeddings: d f / d e per dimension (absolute value by default);
/// one forward + backward per input, batched.
template <DifferentiableModel M>
embedding_attributions attribute_embeddings(const M& model, token_span tokens, std::span<const tensor2> inputs,
                                            const target& t, const saliency_options& options,
                                            const execution_options& exec) {
  detail::require_embedding_batch(tokens, inputs, "saliency");
  const auto grads = embedding_gradients(model, inputs, t, exec, "saliency");
  embedding_attributions out;
  out.model_evaluations = inputs.size();
  for (const auto& g : grads) {
    attribution_matrix s = detail::to_double(g.gradient);
    if (options.absolute)
      for (auto& x : s) x = std::abs(x);
    out.scores.push_back(std::move(s));
    out.target_values.push_back(g.value);
  }
  return out;
}

/// Saliency: the gradient of the target w.r.t. the input embeddings, per dimension (absolute by
/// default, as Captum's Saliency), reduced per token by the L2 norm (as inseq). One forward +
/// backward pass. No baseline, no completeness.
///
/// Example: `auto r = glassbox::saliency(model, tokens, glassbox::target::log_probability(id));`
template <class M>
attribution_result saliency(const M& model, token_span tokens, const target& t, const saliency_options& options = {}) {
  static_assert(check_differentiable_model<M>());
  detail::require_tokens(tokens, "saliency");
  const tensor2 x = detail::model_embeddings(model, tokens, "saliency");
  const embedding_attributions a =
      attribute_embeddings(model, tokens, std::span<const tensor2>(&x, 1), t, options, options.execution);
  return detail::gradient_result("saliency", tokens, t, a, aggregate_tokens(a.scores[0], options),
                                 recorded_options(options));
}

// ---------------------------------------------------------------------------------------------
// Input x gradient

/// Options of input x gradient (Shrikumar et al. 2016; Captum's InputXGradient).
struct input_x_gradient_options {
  token_aggregation aggregation = token_aggregation::sum;  ///< per-token reduction; the signed sum by default
  execution_options execution{};                           ///< batching, threads, progress, cancellation
};

/// "input_x_gradient".
constexpr std::string_view method_name(const input_x_gradient_options&) { return "input_x_gradient"; }

/// Every option of an input x gradient run, by name.
template <class = void>
inline std::vector<named_option> recorded_options(const input_x_gradient_options& o) {
  std::vector<named_option> out{detail::option("aggregation", to_string(o.aggregation))};
  detail::record_execution(out, o.execution);
  return out;
}

/// Input x gradient's per-token scores from per-dimension scores.
template <class = void>
inline std::vector<double> aggregate_tokens(const attribution_matrix& per_dimension,
                                            const input_x_gradient_options& o) {
  return aggregate_tokens(per_dimension, o.aggregation);
}

/// Input x gradient of a batch of input embeddings: e * d f / d e per dimension; one forward +
/// backward per input, batched.
template <DifferentiableModel M>
embedding_attributions attribute_embeddings(const M& model, token_span tokens, std::span<const tensor2> inputs,
                                            const target& t, const input_x_gradient_options&,
                                            const execution_options& exec) {
  detail::require_embedding_batch(tokens, inputs, "input_x_gradient");
  const auto grads = embedding_gradients(model, inputs, t, exec, "input_x_gradient");
  embedding_attributions out;
  out.model_evaluations = inputs.size();
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    attribution_matrix s(inputs[i].shape());
    for (std::size_t k = 0; k < s.size(); ++k)
      s.data()[k] = static_cast<double>(inputs[i].data()[k]) * static_cast<double>(grads[i].gradient.data()[k]);
    out.scores.push_back(std::move(s));
    out.target_values.push_back(grads[i].value);
  }
  return out;
}

/// Input x gradient: e_i * d f / d e_i per dimension, summed per token (signed). Equals integrated
/// gradients with a zero baseline for a model linear in its embeddings. One forward + backward pass.
///
/// Example: `auto r = glassbox::input_x_gradient(model, tokens, glassbox::target::logit(id));`
template <class M>
attribution_result input_x_gradient(const M& model, token_span tokens, const target& t,
                                    const input_x_gradient_options& options = {}) {
  static_assert(check_differentiable_model<M>());
  detail::require_tokens(tokens, "input_x_gradient");
  const tensor2 x = detail::model_embeddings(model, tokens, "input_x_gradient");
  const embedding_attributions a =
      attribute_embeddings(model, tokens, std::span<const tensor2>(&x, 1), t, options, options.execution);
  return detail::gradient_result("input_x_gradient", tokens, t, a, aggregate_tokens(a.scores[0], options),
                                 recorded_options(options));
}

}  // namespace glassbox

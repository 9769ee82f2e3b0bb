// glassbox: integrated gradients (Sundararajan, Taly & Yan 2017), as Captum's IntegratedGradients.
//
//   phi_i = (x_i - x'_i) * integral_0^1 d f(x' + a (x - x')) / d x_i da
//
// per embedding dimension, with the integral approximated by a quadrature rule (Gauss-Legendre by
// default, or the left / right / middle / trapezoid Riemann sums), and the completeness gap
// delta = sum(phi) - (f(x) - f(x')) reported. With several baselines the attribution is the mean of
// the per-baseline attributions (expected gradients with a fixed baseline sample). The path
// integration engine here is shared with layer integrated gradients (layer_attribution.hpp).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "glassbox/attribution/baseline.hpp"
#include "glassbox/attribution/detail/gradient_common.hpp"
#include "glassbox/attribution/detail/gradient_quadrature.hpp"
#include "glassbox/attribution/saliency.hpp"
#include "glassbox/core/error.hpp"
#include "glassbox/core/execution.hpp"
#include "glassbox/core/model.hpp"
#include "glassbox/core/result.hpp"
#include "glassbox/core/target.hpp"
#include "glassbox/core/types.hpp"

namespace glassbox {

/// The quadrature rule of the path integral.
enum class integration_rule {
  riemann_left,       ///< a_k = k / n, w_k = 1 / n
  riemann_right,      ///< a_k = (k + 1) / n, w_k = 1 / n
  riemann_middle,     ///< a_k = (k + 1/2) / n, w_k = 1 / n
  riemann_trapezoid,  ///< a_k = k / (n - 1), trapezoid weights summing to 1 (n >= 2)
  gauss_legendre,     ///< n-point Gauss-Legendre on [0, 1] (Captum's "gausslegendre", the default)
};

/// The stable name of a rule ("riemann_left", ..., "gauss_legendre").
constexpr std::string_view to_string(integration_rule rule) {
  switch (rule) {
    case integration_rule::riemann_left:
      return "riemann_left";
    case integration_rule::riemann_right:
      return "riemann_right";
    case integration_rule::riemann_middle:
      return "riemann_middle";
    case integration_rule::riemann_trapezoid:
      return "riemann_trapezoid";
    case integration_rule::gauss_legendre:
      return "gauss_legendre";
  }
  return "unknown";
}

/// Nodes a_k in [0, 1] (ascending) and weights w_k of a quadrature rule.
using quadrature = detail::quadrature_rule;

/// The nodes and weights of `rule` with `steps` points on [0, 1], computed in double.
template <class = void>
inline quadrature integration_nodes(integration_rule rule, std::size_t steps) {
  detail::require(steps >= 1, "glassbox::integration_nodes: steps must be >= 1, got {}", steps);
  switch (rule) {
    case integration_rule::riemann_left:
      return detail::riemann_left(steps);
    case integration_rule::riemann_right:
      return detail::riemann_right(steps);
    case integration_rule::riemann_middle:
      return detail::riemann_middle(steps);
    case integration_rule::riemann_trapezoid:
      detail::require(steps >= 2, "glassbox::integration_nodes: steps must be >= 2 for riemann_trapezoid, got {}",
                      steps);
      return detail::riemann_trapezoid(steps);
    case integration_rule::gauss_legendre:
      return detail::gauss_legendre(steps);
  }
  detail::fail("glassbox::integration_nodes: unknown rule");
}

namespace detail {

/// How a path integral is approximated (shared by integrated gradients and layer integrated gradients).
struct path_settings {
  integration_rule rule = integration_rule::gauss_legendre;
  std::size_t steps = 50;
  std::size_t internal_batch_size = 0;  ///< path points materialised per dispatch call; 0 = all
  bool adaptive = false;
  double tolerance = 1e-3;
  std::size_t max_steps = 1024;
  std::string_view caller = "integrated_gradients";
};

/// Fails unless the settings make sense.
template <class = void>
inline void validate_path_settings(const path_settings& s) {
  require(s.steps >= 1, "glassbox::{}: steps must be >= 1, got {}", s.caller, s.steps);
  require(s.rule != integration_rule::riemann_trapezoid || s.steps >= 2,
          "glassbox::{}: steps must be >= 2 for riemann_trapezoid, got {}", s.caller, s.steps);
  if (s.adaptive) {
    require(std::isfinite(s.tolerance) && s.tolerance > 0, "glassbox::{}: tolerance must be > 0, got {}", s.caller,
            s.tolerance);
    require(s.max_steps >= s.steps, "glassbox::{}: max_steps must be >= steps ({}), got {}", s.caller, s.steps,
            s.max_steps);
  }
}

/// The result of integrating along the straight paths from every baseline to every input.
struct path_integral {
  std::vector<attribution_matrix> attributions;  ///< per input: mean over baselines of (x - x') * integral
  std::vector<double> input_values;              ///< f(x) per input
  double baseline_value = 0;                     ///< mean over baselines of f(x')
  std::vector<double> deltas;                    ///< completeness gap per input
  std::size_t steps = 0;                         ///< quadrature points per path in the final rule
  std::size_t evaluations = 0;                   ///< forward and forward + backward passes
};

/// Integrated gradients of every input along the straight path from every baseline, with
/// `gradients(points, exec)` returning value_and_gradient per point (batched by the caller's
/// dispatch) and `values(points, exec)` the target at points. The gradients at the quadrature
/// points are accumulated in double, in a fixed order, so the result does not depend on batch
/// size, internal_batch_size or threads. Adaptive refinement doubles the steps (trapezoid: the
/// intervals) until max |delta| <= tolerance or max_steps would be exceeded; the nested rules
/// (left, right, trapezoid) reuse every gradient already computed, middle and Gauss-Legendre start over.
template <class Gradients, class Values>
path_integral integrate_paths(std::span<const tensor2> inputs, std::span<const tensor2> baselines,
                              const path_settings& s, const execution_options& exec, Gradients&& gradients,
                              Values&& values) {
  const std::size_t n_inputs = inputs.size(), n_baselines = baselines.size();
  const std::size_t paths = n_inputs * n_baselines;
  const std::size_t width = inputs[0].size();
  const auto shape = inputs[0].shape();
  path_integral out;

  std::size_t planned = n_inputs + n_baselines + paths * s.steps;  // progress total; grows when refining
  std::size_t done = 0;

  // f at the end points: every input, then every baseline.
  {
    std::vector<tensor2> ends;
    ends.reserve(n_inputs + n_baselines);
    for (const auto& x : inputs) ends.push_back(x);
    for (const auto& b : baselines) ends.push_back(b);
    const std::vector<double> v = values(std::span<const tensor2>(ends), progress_slice(exec, done, planned));
    done += ends.size();
    out.evaluations += ends.size();
    out.input_values.assign(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(n_inputs));
    double mean = 0;
    for (std::size_t j = 0; j < n_baselines; ++j) mean += v[n_inputs + j];
    out.baseline_value = mean / static_cast<double>(n_baselines);
  }

  // acc[p] = sum_k w_k grad f(x'_j + a_k (x_s - x'_j)) for path p = s * n_baselines + j, in double.
  std::vector<std::vector<double>> acc(paths, std::vector<double>(width, 0.0));
  auto add_rule = [&](const quadrature_rule& q) {
    const std::size_t k_count = q.nodes.size();
    const std::size_t total = paths * k_count;
    const std::size_t chunk = s.internal_batch_size == 0 ? total : s.internal_batch_size;
    std::vector<tensor2> points;
    for (std::size_t begin = 0; begin < total; begin += chunk) {
      const std::size_t end = std::min(total, begin + chunk);
      points.clear();
      points.reserve(end - begin);
      for (std::size_t p = begin; p < end; ++p) {
        const std::size_t path = p / k_count, k = p % k_count;
        const tensor2& x = inputs[path / n_baselines];
        const tensor2& b = baselines[path % n_baselines];
        const auto a = static_cast<float>(q.nodes[k]);  // x' + a (x - x') in float, as Captum
        tensor2 point(shape);
        const float* xp = x.data();
        const float* bp = b.data();
        float* pp = point.data();
        for (std::size_t i = 0; i < width; ++i) pp[i] = bp[i] + a * (xp[i] - bp[i]);
        points.push_back(std::move(point));
      }
      const auto g = gradients(std::span<const tensor2>(points), progress_slice(exec, done, planned));
      done += end - begin;
      out.evaluations += end - begin;
      for (std::size_t p = begin; p < end; ++p) {
        const std::size_t path = p / k_count, k = p % k_count;
        const double w = q.weights[k];
        const float* gp = g[p - begin].gradient.data();
        double* ap = acc[path].data();
        for (std::size_t i = 0; i < width; ++i) ap[i] += w * static_cast<double>(gp[i]);
      }
    }
  };

  auto finish = [&] {
    out.attributions.assign(n_inputs, attribution_matrix(shape));
    out.deltas.assign(n_inputs, 0.0);
    for (std::size_t sx = 0; sx < n_inputs; ++sx) {
      attribution_matrix& phi = out.attributions[sx];
      std::fill(phi.begin(), phi.end(), 0.0);
      for (std::size_t j = 0; j < n_baselines; ++j) {
        const float* x = inputs[sx].data();
        const float* b = baselines[j].data();
        const double* ap = acc[sx * n_baselines + j].data();
        for (std::size_t i = 0; i < width; ++i)
          phi.data()[i] += (static_cast<double>(x[i]) - static_cast<double>(b[i])) * ap[i];
      }
      double total = 0;
      for (auto& v : phi) {
        v /= static_cast<double>(n_baselines);
        total += v;
      }
      out.deltas[sx] = total - (out.input_values[sx] - out.baseline_value);
    }
  };
  auto converged = [&] {
    double worst = 0;
    for (double d : out.deltas) worst = std::max(worst, std::abs(d));
    return worst <= s.tolerance;
  };

  std::size_t n = s.steps;
  add_rule(integration_nodes(s.rule, n));
  finish();
  const bool nested = s.rule == integration_rule::riemann_left || s.rule == integration_rule::riemann_right ||
                      s.rule == integration_rule::riemann_trapezoid;
  while (s.adaptive && !converged()) {
    const std::size_t next = s.rule == integration_rule::riemann_trapezoid ? 2 * n - 1 : 2 * n;
    if (next > s.max_steps) break;
    if (nested) {
      const std::size_t intervals = s.rule == integration_rule::riemann_trapezoid ? n - 1 : n;
      for (auto& a : acc)
        for (auto& v : a) v *= 0.5;
      planned += paths * intervals;
      add_rule(interval_midpoints(intervals));
    } else {
      for (auto& a : acc) std::fill(a.begin(), a.end(), 0.0);
      planned += paths * next;
      add_rule(integration_nodes(s.rule, next));
    }
    n = next;
    finish();
  }
  out.steps = n;
  for (const auto& phi : out.attributions) require_finite_scores(phi, s.caller);
  return out;
}

}  // namespace detail

/// Options of integrated gradients; defaults as Captum's IntegratedGradients.attribute.
struct integrated_gradients_options {
  std::size_t steps = 50;                                    ///< quadrature points (Captum's n_steps)
  integration_rule rule = integration_rule::gauss_legendre;  ///< Captum's method="gausslegendre"
  glassbox::baseline baseline = glassbox::baseline::zero();  ///< x': zero embeddings, as Captum
  /// When non-empty, attribute against each of these baselines and average (expected gradients
  /// over a fixed baseline sample); `baseline` is then not used.
  std::vector<glassbox::baseline> baselines{};
  std::size_t internal_batch_size = 0;  ///< path points materialised per dispatch call; 0 = all (Captum's None)
  bool adaptive = false;                ///< double the steps until |delta| <= tolerance (or max_steps)
  double tolerance = 1e-3;              ///< adaptive: largest accepted |convergence delta|, in target units
  std::size_t max_steps = 1024;         ///< adaptive: the steps are never doubled beyond this
  token_aggregation aggregation = token_aggregation::sum;  ///< per-token reduction; signed sum keeps completeness
  execution_options execution{};                           ///< batching, threads, progress, cancellation
};

/// "integrated_gradients".
constexpr std::string_view method_name(const integrated_gradients_options&) { return "integrated_gradients"; }

/// Every option of an integrated gradients run, by name.
template <class = void>
inline std::vector<named_option> recorded_options(const integrated_gradients_options& o) {
  std::vector<named_option> out{
      detail::option("steps", o.steps),
      detail::option("rule", to_string(o.rule)),
      detail::option("baseline", o.baselines.empty() ? o.baseline.describe() : detail::describe_baselines(o.baselines)),
      detail::option("baselines", o.baselines.empty() ? std::size_t{1} : o.baselines.size()),
      detail::option("internal_batch_size", o.internal_batch_size),
      detail::option("adaptive", o.adaptive),
      detail::option("tolerance", o.tolerance),
      detail::option("max_steps", o.max_steps),
      detail::option("aggregation", to_string(o.aggregation))};
  detail::record_execution(out, o.execution);
  return out;
}

/// Integrated gradients' per-token scores from per-dimension scores.
template <class = void>
inline std::vector<double> aggregate_tokens(const attribution_matrix& per_dimension,
                                            const integrated_gradients_options& o) {
  return aggregate_tokens(per_dimension, o.aggregation);
}

/// Integrated gradients of a batch of input embeddings against the options' baseline(s) (built for
/// `tokens`): every path point of every input goes through one batched embedding_gradients dispatch
/// (in chunks of internal_batch_size). Cost: inputs x baselines x steps forward + backward passes,
/// plus inputs + baselines forward passes for the completeness gap.
template <DifferentiableModel M>
embedding_attributions attribute_embeddings(const M& model, token_span tokens, std::span<const tensor2> inputs,
                                            const target& t, const integrated_gradients_options& options,
                                            const execution_options& exec) {
  constexpr std::string_view caller = "integrated_gradients";
  const detail::path_settings settings{
      options.rule,      options.steps, options.internal_batch_size, options.adaptive, options.tolerance,
      options.max_steps, caller};
  detail::validate_path_settings(settings);
  detail::require_embedding_batch(tokens, inputs, caller);
  const std::vector<glassbox::baseline> single{options.baseline};
  const std::span<const glassbox::baseline> list = options.baselines.empty()
                                                       ? std::span<const glassbox::baseline>(single)
                                                       : std::span<const glassbox::baseline>(options.baselines);
  const std::vector<tensor2> bases = detail::baseline_embedding_list(
      model, tokens, list, caller, options.baselines.empty() ? "baseline" : "baselines");
  for (const auto& b : bases)
    detail::require<shape_error>(b.shape() == inputs[0].shape(),
                                 "glassbox::integrated_gradients: baseline must be [{}, {}] embeddings, got [{}, {}]",
                                 inputs[0].shape(0), inputs[0].shape(1), b.shape(0), b.shape(1));
  const detail::path_integral r = detail::integrate_paths(
      inputs, std::span<const tensor2>(bases), settings, exec,
      [&](std::span<const tensor2> points, const execution_options& e) {
        return embedding_gradients(model, points, t, e, caller);
      },
      [&](std::span<const tensor2> points, const execution_options& e) {
        return evaluate_target_on_embeddings(model, points, t, e, caller);
      });
  embedding_attributions out;
  out.scores = r.attributions;
  out.target_values = r.input_values;
  out.baseline_values.assign(inputs.size(), r.baseline_value);
  out.convergence_deltas = r.deltas;
  out.model_evaluations = r.evaluations;
  out.facts.push_back(detail::option("steps_used", r.steps));
  return out;
}

/// Integrated gradients of the target w.r.t. the input embeddings (Sundararajan et al. 2017):
/// phi = (x - x') * integral_0^1 grad f(x' + a (x - x')) da per dimension, summed per token.
/// Defaults as Captum: 50 Gauss-Legendre steps, zero baseline. The result carries
/// convergence_delta = sum(scores) - (f(x) - f(x')) and, under "steps_used", the steps of the final rule.
/// Cost: steps forward + backward passes (batched) and 2 forward passes.
///
/// Example: `auto r = glassbox::integrated_gradients(model, tokens, glassbox::target::log_probability(id), {.steps = 32});`
template <class M>
attribution_result integrated_gradients(const M& model, token_span tokens, const target& t,
                                        const integrated_gradients_options& options = {}) {
  static_assert(check_differentiable_model<M>());
  detail::require_tokens(tokens, "integrated_gradients");
  const tensor2 x = detail::model_embeddings(model, tokens, "integrated_gradients");
  const embedding_attributions a =
      attribute_embeddings(model, tokens, std::span<const tensor2>(&x, 1), t, options, options.execution);
  return detail::gradient_result("integrated_gradients", tokens, t, a, aggregate_tokens(a.scores[0], options),
                                 recorded_options(options));
}

}  // namespace glassbox

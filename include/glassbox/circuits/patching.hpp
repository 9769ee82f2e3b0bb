// glassbox: which components carry a behaviour. Activation patching (Vig et al. 2020, Meng et al.
// 2022), attribution patching (Nanda 2023; Syed et al. 2023), path patching (Wang et al. 2022) and
// component ablation (zero, mean, resample) over any ComponentModel. docs/circuits.md.
//
// Example:
//   const auto metric = glassbox::target::contrast(pos, neg, glassbox::target_kind::logit);  // logit difference
//   auto r = glassbox::activation_patching(model, clean, corrupt, metric, {.level = glassbox::patch_level::head});
//   // r.restored(l, h): the share of clean - corrupt the clean output of head h of block l restores
#pragma once

#include <cmath>
#include <cstddef>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "glassbox/core/components.hpp"
#include "glassbox/core/error.hpp"
#include "glassbox/core/execution.hpp"
#include "glassbox/core/model.hpp"
#include "glassbox/core/random.hpp"
#include "glassbox/core/target.hpp"
#include "glassbox/detail/dependent.hpp"

namespace glassbox {

/// The components a sweep patches, one model call each.
enum class patch_level {
  residual,  ///< the stream entering each block, at each position: rows blocks, columns positions
  head,      ///< each head's output at every position: rows blocks, columns heads
  mlp,       ///< each MLP's output, at each position: rows blocks, columns positions
  neuron,    ///< each MLP neuron at every position: rows blocks, columns neurons
};

/// The stable name of a level ("residual", "head", "mlp", "neuron").
constexpr std::string_view to_string(patch_level level) {
  switch (level) {
    case patch_level::residual: return "residual";
    case patch_level::head: return "head";
    case patch_level::mlp: return "mlp";
    case patch_level::neuron: return "neuron";
  }
  return "?";
}

/// The level named `name` ("resid" or "residual", "head", "mlp", "neuron"); glassbox::error otherwise.
template <class = void>
inline patch_level parse_patch_level(std::string_view name) {
  if (name == "resid" || name == "residual") return patch_level::residual;
  if (name == "head") return patch_level::head;
  if (name == "mlp") return patch_level::mlp;
  if (name == "neuron") return patch_level::neuron;
  detail::fail("glassbox::parse_patch_level: unknown level '{}' (expected resid, head, mlp or neuron)", name);
}

/// Options of activation and attribution patching.
struct patching_options {
  patch_level level = patch_level::residual;  ///< what each patch replaces
  std::optional<std::size_t> layer{};         ///< sweep this block only (default: every block)
  execution_options exec{};                   ///< threads, progress, cancellation
};

/// A sweep of patches: the metric after each, normalised between the corrupted and the clean run.
struct patching_result {
  std::string method;                  ///< "activation_patching", "attribution_patching", "path_patching", or "<kind>_ablation"
  patch_level level = patch_level::residual;  ///< what was patched
  std::string metric;                  ///< the target's description
  double clean_value = 0;              ///< the metric on the clean input
  double corrupt_value = 0;            ///< the metric on the corrupted input (ablations: NaN)
  xt::xtensor<double, 2> values;       ///< the metric after each patch, [rows, columns]
  xt::xtensor<double, 2> restored;     ///< (values - corrupt) / (clean - corrupt); ablations: values - clean
  std::vector<std::size_t> layers;     ///< the block of each row
  std::string column_axis;             ///< "position", "head" or "neuron"
  std::size_t model_calls = 0;         ///< forward and backward passes
};

/// Where a path ends: the stream a head or an MLP reads, or the final residual stream (the logits' direct path).
struct path_receiver {
  component_site site = component_site::residual;  ///< head_input, mlp_input, or residual (with layer = L)
  std::size_t layer = 0;                           ///< the receiver's block (residual: L)
  std::size_t index = 0;                           ///< the head of a head_input receiver
};

/// Options of path patching.
struct path_patching_options {
  std::vector<path_receiver> receivers{};  ///< where the sender's corrupted output is delivered; empty = the logits' direct path
  execution_options exec{};                ///< threads, progress, cancellation
};

/// How an ablation replaces a component.
enum class ablation_kind {
  zero,      ///< by zero
  mean,      ///< by its mean over every token of the reference sequences
  resample,  ///< by its value on a reference sequence drawn at random, the metric averaged over draws
};

/// The stable name of an ablation ("zero", "mean", "resample").
constexpr std::string_view to_string(ablation_kind kind) {
  switch (kind) {
    case ablation_kind::zero: return "zero";
    case ablation_kind::mean: return "mean";
    case ablation_kind::resample: return "resample";
  }
  return "?";
}

/// Options of component ablation.
struct ablation_options {
  patch_level level = patch_level::head;   ///< what each ablation replaces
  ablation_kind kind = ablation_kind::zero;  ///< by what
  std::optional<std::size_t> layer{};       ///< ablate in this block only (default: every block)
  std::span<const token_sequence> reference{};  ///< mean and resample: the sequences the values come from
  std::size_t samples = 8;                  ///< resample: draws per component (the metric is averaged)
  std::uint64_t seed = 0;                   ///< resample: which draws
  execution_options exec{};                 ///< threads, progress, cancellation
};

namespace detail {

/// The blocks a sweep covers.
template <class = void>
inline std::vector<std::size_t> sweep_layers(const component_layout& layout, const std::optional<std::size_t>& layer,
                                             std::string_view who) {
  if (layer) {
    require<shape_error>(*layer < layout.layers, "glassbox::{}: layer must be < {} (the blocks), got {}", who,
                         layout.layers, *layer);
    return {*layer};
  }
  std::vector<std::size_t> all(layout.layers);
  for (std::size_t l = 0; l < all.size(); ++l) all[l] = l;
  return all;
}

/// Columns of a sweep at `level` for T tokens.
template <class = void>
inline std::size_t sweep_columns(const component_layout& layout, patch_level level, std::size_t T) {
  switch (level) {
    case patch_level::head: return layout.heads;
    case patch_level::neuron: return layout.neurons;
    default: return T;
  }
}

/// The column axis name of a level.
template <class = void>
inline std::string sweep_axis(patch_level level) {
  return level == patch_level::head ? "head" : level == patch_level::neuron ? "neuron" : "position";
}

/// The component a sweep entry replaces, read from a cache: [P, width] for the patch's positions.
template <class Cache>
tensor2 component_values(const Cache& c, patch_level level, std::size_t layer, std::size_t column, std::size_t T) {
  const std::size_t d = c.residual.shape(2);
  switch (level) {
    case patch_level::residual: {
      tensor2 v({1, d});
      std::copy_n(c.residual.data() + (layer * T + column) * d, d, v.data());
      return v;
    }
    case patch_level::mlp: {
      tensor2 v({1, d});
      std::copy_n(c.mlps.data() + (layer * T + column) * d, d, v.data());
      return v;
    }
    case patch_level::head: {
      const std::size_t H = c.heads.shape(1);
      tensor2 v({T, d});
      std::copy_n(c.heads.data() + ((layer * H + column) * T) * d, T * d, v.data());
      return v;
    }
    case patch_level::neuron: {
      tensor2 v({T, 1});
      for (std::size_t t = 0; t < T; ++t) v(t, 0) = c.neurons(layer, t, column);
      return v;
    }
  }
  return {};
}

/// The patch of one sweep entry with `values` (from component_values).
template <class = void>
inline component_patch sweep_patch(patch_level level, std::size_t layer, std::size_t column, tensor2 values) {
  component_patch p;
  p.layer = layer;
  p.values = std::move(values);
  switch (level) {
    case patch_level::residual:
      p.site = component_site::residual;
      p.positions = {column};
      break;
    case patch_level::mlp:
      p.site = component_site::mlp;
      p.positions = {column};
      break;
    case patch_level::head:
      p.site = component_site::head;
      p.index = column;
      break;
    case patch_level::neuron:
      p.site = component_site::neuron;
      p.index = column;
      break;
  }
  return p;
}

/// The metric on `tokens` with `patches` applied (the rows the metric reads only).
template <ComponentModel M>
double patched_value(const M& model, token_span tokens, std::span<const component_patch> patches, const target& metric,
                     std::string_view who, std::size_t evaluation) {
  const auto rows = metric.rows(output_rows_of(model, tokens.size()));
  const tensor2 logits = model.logits_with_patches(tokens, patches, rows);
  check_requested_rows(logits, rows.size(), who, "logits_with_patches()");
  check_finite(logits.data(), logits.size(), logits.shape(1), who, evaluation, "logits (logits_with_patches())");
  return metric.value(logits);
}

/// The metric on `tokens` when the residual stream at index `layer` is `h` [T, d]: from that block on only.
template <ComponentModel M>
double residual_value(const M& model, token_span tokens, std::size_t layer, const tensor2& h, const target& metric,
                      std::string_view who, std::size_t evaluation) {
  const auto rows = metric.rows(output_rows_of(model, tokens.size()));
  tensor2 logits;
  if constexpr (requires { model.logits_from_hidden_at(tokens, layer, h, std::span<const std::size_t>(rows)); }) {
    logits = model.logits_from_hidden_at(tokens, layer, h, std::span<const std::size_t>(rows));
    check_requested_rows(logits, rows.size(), who, "logits_from_hidden_at()");
    check_finite(logits.data(), logits.size(), logits.shape(1), who, evaluation, "logits (logits_from_hidden_at())");
  } else {
    const tensor2 all = model_logits_from_hidden(model, tokens, layer, h, who, evaluation);
    logits = tensor2({rows.size(), all.shape(1)});
    for (std::size_t i = 0; i < rows.size(); ++i)
      std::copy_n(all.data() + rows[i] * all.shape(1), all.shape(1), logits.data() + i * all.shape(1));
  }
  return metric.value(logits);
}

/// Runs `value_of(row, column)` over every entry of a sweep, in parallel when the model allows.
template <ComponentModel M, class ValueFn>
xt::xtensor<double, 2> run_sweep(const M& /*model*/, std::size_t rows, std::size_t columns,
                                 const execution_options& exec, std::string_view who, ValueFn&& value_of) {
  xt::xtensor<double, 2> values({rows, columns});
  const std::size_t n = rows * columns;
  execution_options e = exec;
  e.batch_size = std::max<std::size_t>(1, std::min<std::size_t>(exec.batch_size, 8));
  run_batches(n, e, worker_count(e, is_thread_safe<M>()), who, [&](std::size_t begin, std::size_t end) {
    for (std::size_t j = begin; j < end; ++j) values(j / columns, j % columns) = value_of(j / columns, j % columns);
  });
  return values;
}

/// A result's description: method, level, metric, the blocks of its rows and its column axis.
template <class = void>
inline patching_result sweep_result(std::string method, patch_level level, const target& metric,
                                    std::vector<std::size_t> layers) {
  patching_result r;
  r.method = std::move(method);
  r.level = level;
  r.metric = metric.describe();
  r.layers = std::move(layers);
  r.column_axis = sweep_axis(level);
  return r;
}

/// restored = (values - corrupt) / (clean - corrupt); NaN where clean == corrupt.
template <class = void>
inline xt::xtensor<double, 2> restored_fraction(const xt::xtensor<double, 2>& values, double clean, double corrupt) {
  xt::xtensor<double, 2> r(values.shape());
  const double span = clean - corrupt;
  for (std::size_t i = 0; i < values.size(); ++i)
    r.data()[i] = span == 0 ? std::numeric_limits<double>::quiet_NaN() : (values.data()[i] - corrupt) / span;
  return r;
}

/// Checks a clean / corrupted pair: equal, non-zero lengths.
template <class = void>
inline void check_pair(token_span clean, token_span corrupt, std::string_view who) {
  require(!clean.empty(), "glassbox::{}: the clean input is empty", who);
  require(clean.size() == corrupt.size(),
          "glassbox::{}: the clean and corrupted inputs must have the same length (positions are patched one to "
          "one), got {} and {} tokens",
          who, clean.size(), corrupt.size());
}

/// The metric's value on a cache's logits.
template <class Cache>
double cache_value(const Cache& c, const target& metric) {
  return metric.value_of(c.logits);
}

}  // namespace detail

/// Activation patching (denoising): runs the corrupted input with one component at a time replaced
/// by its value on the clean input, and reports the metric after each patch and the restored share
/// (values - corrupt) / (clean - corrupt). Residual patches run from the patched block on only.
/// Model calls: 2 (the clean cache, the corrupted run) plus one per entry of the sweep.
template <ComponentModel M>
patching_result activation_patching(const M& model, token_span clean, token_span corrupt, const target& metric,
                                    const patching_options& options = {}) {
  static_assert(check_component_model<M>());
  constexpr std::string_view who = "activation_patching";
  detail::check_pair(clean, corrupt, who);
  const auto layout = model.layout();
  const std::size_t T = clean.size();
  const auto layers = detail::sweep_layers(layout, options.layer, who);
  const std::size_t columns = detail::sweep_columns(layout, options.level, T);

  const component_cache clean_cache = detail::model_component_cache(model, clean, who);
  patching_result r = detail::sweep_result(std::string(who), options.level, metric, layers);
  r.clean_value = detail::cache_value(clean_cache, metric);
  tensor3 corrupt_residual;
  if (options.level == patch_level::residual) {
    corrupt_residual = detail::model_hidden_states(model, corrupt, who);
    r.corrupt_value = detail::residual_value(
        model, corrupt, layout.layers,
        xt::xtensor<float, 2>(xt::view(detail::depend<M>(corrupt_residual), layout.layers)), metric, who, 0);
  } else {
    r.corrupt_value = detail::patched_value(model, corrupt, {}, metric, who, 0);
  }
  const std::size_t d = layout.width;
  r.values = detail::run_sweep(model, layers.size(), columns, options.exec, who, [&](std::size_t i, std::size_t c) {
    const std::size_t l = layers[i];
    if (options.level == patch_level::residual) {
      tensor2 h = xt::view(detail::depend<M>(corrupt_residual), l);
      std::copy_n(clean_cache.residual.data() + (l * T + c) * d, d, h.data() + c * d);
      return detail::residual_value(model, corrupt, l, h, metric, who, i * columns + c + 1);
    }
    const component_patch p =
        detail::sweep_patch(options.level, l, c, detail::component_values(clean_cache, options.level, l, c, T));
    return detail::patched_value(model, corrupt, std::span<const component_patch>(&p, 1), metric, who,
                                 i * columns + c + 1);
  });
  r.restored = detail::restored_fraction(r.values, r.clean_value, r.corrupt_value);
  r.model_calls = 2 + r.values.size();
  return r;
}

/// Attribution patching: the first-order estimate of activation patching, metric(corrupt) +
/// (clean activation - corrupted activation) . d metric / d activation at the corrupted input,
/// summed over the patched entries. Three passes for any sweep: the clean forward, the corrupted
/// forward and its backward. Exact where the metric is linear in the patched activation.
template <ComponentModel M>
patching_result attribution_patching(const M& model, token_span clean, token_span corrupt, const target& metric,
                                     const patching_options& options = {}) {
  static_assert(check_component_model<M>());
  constexpr std::string_view who = "attribution_patching";
  detail::check_pair(clean, corrupt, who);
  const auto layout = model.layout();
  const std::size_t T = clean.size(), d = layout.width, H = layout.heads, f = layout.neurons;
  const auto layers = detail::sweep_layers(layout, options.layer, who);
  const std::size_t columns = detail::sweep_columns(layout, options.level, T);

  const component_cache c = detail::model_component_cache(model, clean, who);
  const component_gradient_result g = detail::model_component_gradients(model, corrupt, output_seed(metric), who, 1);
  const component_cache& k = g.cache;
  patching_result r = detail::sweep_result(std::string(who), options.level, metric, layers);
  r.clean_value = detail::cache_value(c, metric);
  r.corrupt_value = g.value;
  r.values = xt::xtensor<double, 2>({layers.size(), columns});
  auto dot = [d](const float* a, const float* b, const float* grad) {
    double s = 0;
    for (std::size_t j = 0; j < d; ++j) s += (static_cast<double>(a[j]) - b[j]) * grad[j];
    return s;
  };
  for (std::size_t i = 0; i < layers.size(); ++i) {
    const std::size_t l = layers[i];
    for (std::size_t col = 0; col < columns; ++col) {
      double delta = 0;
      switch (options.level) {
        case patch_level::residual: {
          const std::size_t at = (l * T + col) * d;
          delta = dot(c.residual.data() + at, k.residual.data() + at, g.residual.data() + at);
          break;
        }
        case patch_level::mlp: {
          const std::size_t at = (l * T + col) * d;
          delta = dot(c.mlps.data() + at, k.mlps.data() + at, g.residual.data() + ((l + 1) * T + col) * d);
          break;
        }
        case patch_level::head:
          for (std::size_t t = 0; t < T; ++t) {
            const std::size_t at = ((l * H + col) * T + t) * d;
            delta += dot(c.heads.data() + at, k.heads.data() + at, g.attention.data() + (l * T + t) * d);
          }
          break;
        case patch_level::neuron:
          for (std::size_t t = 0; t < T; ++t) {
            const std::size_t at = (l * T + t) * f + col;
            delta += (static_cast<double>(c.neurons.data()[at]) - k.neurons.data()[at]) * g.neurons.data()[at];
          }
          break;
      }
      r.values(i, col) = r.corrupt_value + delta;
    }
  }
  r.restored = detail::restored_fraction(r.values, r.clean_value, r.corrupt_value);
  r.model_calls = 3;
  return r;
}

/// Path patching: for every head of a block before the receivers, the clean run with that head's
/// output changed to its corrupted value along the paths that end at the receivers only (each
/// receiver reads the clean stream plus the head's change; every other component reads the clean
/// stream), everything after the receivers computed from them. Rows blocks, columns heads;
/// restored = (values - corrupt) / (clean - corrupt), so 1 - restored is the share of the
/// corruption's effect the path carries. Heads not before every receiver are NaN.
template <ComponentModel M>
patching_result path_patching(const M& model, token_span clean, token_span corrupt, const target& metric,
                              const path_patching_options& options = {}) {
  static_assert(check_component_model<M>());
  constexpr std::string_view who = "path_patching";
  detail::check_pair(clean, corrupt, who);
  const auto layout = model.layout();
  const std::size_t T = clean.size(), H = layout.heads, d = layout.width;
  std::vector<path_receiver> receivers = options.receivers;
  if (receivers.empty()) receivers.push_back({component_site::residual, layout.layers, 0});
  std::size_t first_layer = layout.layers;  // senders must be in blocks < first_layer (or <= for MLP inputs)
  bool mlp_first = false;
  for (const auto& rc : receivers) {
    switch (rc.site) {
      case component_site::head_input:
        detail::require<shape_error>(rc.layer < layout.layers && rc.index < H,
                                     "glassbox::{}: head receiver L{}H{} is outside {} blocks of {} heads", who,
                                     rc.layer, rc.index, layout.layers, H);
        break;
      case component_site::mlp_input:
        detail::require<shape_error>(rc.layer < layout.layers, "glassbox::{}: MLP receiver {} is outside {} blocks",
                                     who, rc.layer, layout.layers);
        break;
      case component_site::residual:
        detail::require<shape_error>(rc.layer == layout.layers,
                                     "glassbox::{}: a residual receiver is the final stream (layer {}), got {}", who,
                                     layout.layers, rc.layer);
        break;
      default:
        detail::fail("glassbox::{}: a receiver is a head_input, an mlp_input or the final residual, got {}", who,
                     to_string(rc.site));
    }
    if (rc.layer < first_layer || (rc.layer == first_layer && rc.site == component_site::mlp_input)) {
      mlp_first = rc.site == component_site::mlp_input;
      first_layer = rc.layer;
    }
  }
  const component_cache c = detail::model_component_cache(model, clean, who);
  const component_cache k = detail::model_component_cache(model, corrupt, who, 1);
  patching_result r =
      detail::sweep_result(std::string(who), patch_level::head, metric, detail::sweep_layers(layout, {}, who));
  r.clean_value = detail::cache_value(c, metric);
  r.corrupt_value = detail::cache_value(k, metric);
  std::size_t calls = 0;
  r.values = detail::run_sweep(model, layout.layers, H, options.exec, who, [&](std::size_t l, std::size_t h) {
    const bool upstream = l < first_layer || (l == first_layer && mlp_first);
    if (!upstream) return std::numeric_limits<double>::quiet_NaN();
    tensor2 delta({T, d});
    const std::size_t at = (l * H + h) * T * d;
    for (std::size_t j = 0; j < T * d; ++j) delta.data()[j] = k.heads.data()[at + j] - c.heads.data()[at + j];
    std::vector<component_patch> patches;
    for (const auto& rc : receivers) {
      component_patch p;
      p.site = rc.site;
      p.layer = rc.layer;
      p.index = rc.index;
      p.values = delta;
      p.add = true;
      patches.push_back(std::move(p));
    }
    return detail::patched_value(model, clean, patches, metric, who, l * H + h + 1);
  });
  for (std::size_t i = 0; i < r.values.size(); ++i) calls += std::isnan(r.values.data()[i]) ? 0 : 1;
  r.restored = detail::restored_fraction(r.values, r.clean_value, r.corrupt_value);
  r.model_calls = 2 + calls;
  return r;
}

/// Component ablation: the metric on `tokens` with one component at a time replaced by zero, by its
/// mean over the reference sequences' tokens, or by its value on randomly drawn reference
/// sequences (the metric averaged over `samples` draws). corrupt_value is NaN; restored holds the
/// change values - clean_value. Model calls: 1 + entries x (1, or samples for resample) + the
/// reference sequences' caches.
template <ComponentModel M>
patching_result component_ablation(const M& model, token_span tokens, const target& metric,
                                   const ablation_options& options = {}) {
  static_assert(check_component_model<M>());
  const std::string method = fmt::format("{}_ablation", to_string(options.kind));
  const std::string_view who = method;
  detail::require(!tokens.empty(), "glassbox::{}: the input is empty", who);
  const auto layout = model.layout();
  const std::size_t T = tokens.size(), L = layout.layers, H = layout.heads, d = layout.width, f = layout.neurons;
  const auto layers = detail::sweep_layers(layout, options.layer, who);
  const std::size_t columns = detail::sweep_columns(layout, options.level, T);
  if (options.kind != ablation_kind::zero)
    detail::require(!options.reference.empty(), "glassbox::{}: {} ablation needs reference sequences", who,
                    to_string(options.kind));
  if (options.kind == ablation_kind::resample) {
    detail::require(options.samples >= 1, "glassbox::{}: samples must be >= 1, got 0", who);
    for (std::size_t i = 0; i < options.reference.size(); ++i)
      detail::require(options.reference[i].size() >= T,
                      "glassbox::{}: reference sequence {} has {} tokens; resampling needs at least {} (the input's)",
                      who, i, options.reference[i].size(), T);
  }

  const component_cache own = detail::model_component_cache(model, tokens, who);
  std::size_t calls = 1;
  patching_result r = detail::sweep_result(method, options.level, metric, layers);
  r.clean_value = detail::cache_value(own, metric);
  r.corrupt_value = std::numeric_limits<double>::quiet_NaN();

  // The replacement of an entry: a function of (layer, column) giving the patch values.
  component_cache mean;  // mean ablation: every component's mean over the reference tokens, broadcast to T rows
  std::vector<component_cache> draws;
  std::vector<std::vector<std::size_t>> draw_of;  // resample: per entry, per sample, which cached reference
  if (options.kind == ablation_kind::mean) {
    // Element types that depend on M: the xtensor expressions compile where this is instantiated.
    using real_f = detail::dependent_t<M, float>;
    using real_d = detail::dependent_t<M, double>;
    mean.residual = xt::zeros<real_f>({L + 1, T, d});
    mean.mlps = xt::zeros<real_f>({L, T, d});
    mean.heads = xt::zeros<real_f>({L, H, T, d});
    mean.neurons = xt::zeros<real_f>({L, T, f});
    xt::xtensor<real_d, 2> res = xt::zeros<real_d>({L + 1, d}), mlp = xt::zeros<real_d>({L, d}),
                           neu = xt::zeros<real_d>({L, f});
    xt::xtensor<real_d, 3> head = xt::zeros<real_d>({L, H, d});
    std::size_t count = 0;
    for (const auto& seq : options.reference) {
      const component_cache rc = detail::model_component_cache(model, seq, who);
      ++calls;
      const std::size_t n = seq.size();
      count += n;
      for (std::size_t t = 0; t < n; ++t) {
        for (std::size_t l = 0; l <= L; ++l)
          for (std::size_t j = 0; j < d; ++j) res(l, j) += rc.residual(l, t, j);
        for (std::size_t l = 0; l < L; ++l) {
          for (std::size_t j = 0; j < d; ++j) mlp(l, j) += rc.mlps(l, t, j);
          for (std::size_t h = 0; h < H; ++h)
            for (std::size_t j = 0; j < d; ++j) head(l, h, j) += rc.heads(l, h, t, j);
          for (std::size_t j = 0; j < f; ++j) neu(l, j) += rc.neurons(l, t, j);
        }
      }
    }
    const double inv = 1.0 / static_cast<double>(count);
    for (std::size_t t = 0; t < T; ++t) {
      for (std::size_t l = 0; l <= L; ++l)
        for (std::size_t j = 0; j < d; ++j) mean.residual(l, t, j) = static_cast<float>(res(l, j) * inv);
      for (std::size_t l = 0; l < L; ++l) {
        for (std::size_t j = 0; j < d; ++j) mean.mlps(l, t, j) = static_cast<float>(mlp(l, j) * inv);
        for (std::size_t h = 0; h < H; ++h)
          for (std::size_t j = 0; j < d; ++j) mean.heads(l, h, t, j) = static_cast<float>(head(l, h, j) * inv);
        for (std::size_t j = 0; j < f; ++j) mean.neurons(l, t, j) = static_cast<float>(neu(l, j) * inv);
      }
    }
  } else if (options.kind == ablation_kind::resample) {
    // Draw every entry's reference sequences first (so the result does not depend on threads),
    // then cache each drawn sequence once, trimmed to the input's length.
    rng gen(options.seed);
    const std::size_t entries = layers.size() * columns;
    draw_of.assign(entries, std::vector<std::size_t>(options.samples));
    std::vector<std::size_t> slot(options.reference.size(), static_cast<std::size_t>(-1));
    for (auto& e : draw_of) {
      for (auto& s : e) {
        const auto pick = static_cast<std::size_t>(gen.below(options.reference.size()));
        if (slot[pick] == static_cast<std::size_t>(-1)) {
          slot[pick] = draws.size();
          const auto& seq = options.reference[pick];
          draws.push_back(detail::model_component_cache(model, token_span(seq.data(), T), who));
          ++calls;
        }
        s = slot[pick];
      }
    }
  }

  auto replacement = [&](std::size_t l, std::size_t col, const component_cache* from) -> tensor2 {
    if (from != nullptr) return detail::component_values(*from, options.level, l, col, T);
    tensor2 zeros = detail::component_values(own, options.level, l, col, T);
    std::fill(zeros.begin(), zeros.end(), 0.0f);
    return zeros;
  };
  auto value_with = [&](std::size_t l, std::size_t col, const tensor2& v, std::size_t evaluation) {
    if (options.level == patch_level::residual) {
      tensor2 h = xt::view(detail::depend<M>(own.residual), l);
      std::copy_n(v.data(), d, h.data() + col * d);
      return detail::residual_value(model, tokens, l, h, metric, who, evaluation);
    }
    const component_patch p = detail::sweep_patch(options.level, l, col, v);
    return detail::patched_value(model, tokens, std::span<const component_patch>(&p, 1), metric, who, evaluation);
  };
  r.values = detail::run_sweep(model, layers.size(), columns, options.exec, who, [&](std::size_t i, std::size_t col) {
    const std::size_t l = layers[i], entry = i * columns + col;
    switch (options.kind) {
      case ablation_kind::zero: return value_with(l, col, replacement(l, col, nullptr), entry + 1);
      case ablation_kind::mean: return value_with(l, col, replacement(l, col, &mean), entry + 1);
      case ablation_kind::resample: {
        double sum = 0;
        for (const std::size_t s : draw_of[entry]) sum += value_with(l, col, replacement(l, col, &draws[s]), entry + 1);
        return sum / static_cast<double>(options.samples);
      }
    }
    return 0.0;
  });
  r.restored = detail::depend<M>(r.values) - r.clean_value;
  r.model_calls = calls + r.values.size() * (options.kind == ablation_kind::resample ? options.samples : 1);
  return r;
}

}  // namespace glassbox

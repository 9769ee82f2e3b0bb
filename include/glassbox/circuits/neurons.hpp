// glassbox: neuron analysis over a data set. MLP neurons ranked by their correlation or mutual
// information with a per-token property (Dalvi et al. 2019; Bau et al. 2019), the tokens and
// contexts that activate a neuron most, and the causal check: the metric's change when the neuron
// is zero- or mean-ablated. docs/circuits.md.
//
// Example:
//   auto table = glassbox::neuron_activations(model, reviews);            // every block's neurons
//   auto ranked = glassbox::rank_neurons(table, is_negated);              // per-token labels, NaN = skip
//   auto top = glassbox::top_activations(table, ranked.neurons[0].layer, ranked.neurons[0].neuron, 10);
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "glassbox/circuits/patching.hpp"
#include "glassbox/core/components.hpp"
#include "glassbox/core/error.hpp"
#include "glassbox/core/execution.hpp"
#include "glassbox/core/model.hpp"
#include "glassbox/core/target.hpp"

namespace glassbox {

/// Every token's MLP activations (after the nonlinearity) over a data set, for some blocks.
struct neuron_activation_table {
  std::vector<std::size_t> layers;     ///< the blocks recorded, ascending
  std::size_t neurons = 0;             ///< neurons per block f
  std::vector<std::size_t> sequence;   ///< per row: which input sequence
  std::vector<std::size_t> position;   ///< per row: which position in it
  xt::xtensor<float, 2> values;        ///< [rows, layers.size() * f]; column i * f + n is neuron n of layers[i]

  /// The column of neuron `neuron` of block `layer`; glassbox::error when the block was not recorded.
  template <class = void>
  std::size_t column(std::size_t layer, std::size_t neuron) const {
    const auto it = std::find(layers.begin(), layers.end(), layer);
    detail::require(it != layers.end(), "glassbox::neuron_activation_table: block {} was not recorded", layer);
    detail::require(neuron < neurons, "glassbox::neuron_activation_table: neuron {} out of range (< {})", neuron,
                    neurons);
    return static_cast<std::size_t>(it - layers.begin()) * neurons + neuron;
  }
};

/// Records the neurons of block `layer` (every block when empty) on every token of `data`: one
/// forward pass (run_with_cache) per sequence.
template <ComponentModel M>
neuron_activation_table neuron_activations(const M& model, std::span<const token_sequence> data,
                                           std::optional<std::size_t> layer = std::nullopt,
                                           const execution_options& exec = {}) {
  static_assert(check_component_model<M>());
  constexpr std::string_view who = "neuron_activations";
  detail::require(!data.empty(), "glassbox::{}: the data set is empty", who);
  const auto layout = model.layout();
  neuron_activation_table t;
  t.layers = detail::sweep_layers(layout, layer, who);
  t.neurons = layout.neurons;
  std::vector<std::size_t> first(data.size() + 1, 0);
  for (std::size_t s = 0; s < data.size(); ++s) {
    detail::require(!data[s].empty(), "glassbox::{}: sequence {} is empty", who, s);
    first[s + 1] = first[s] + data[s].size();
  }
  const std::size_t rows = first.back(), f = layout.neurons, cols = t.layers.size() * f;
  t.values = xt::xtensor<float, 2>({rows, cols});
  t.sequence.resize(rows);
  t.position.resize(rows);
  detail::run_batches(data.size(), exec, detail::worker_count(exec, is_thread_safe<M>()), who,
                      [&](std::size_t begin, std::size_t end) {
                        for (std::size_t s = begin; s < end; ++s) {
                          const component_cache c = detail::model_component_cache(model, data[s], who, s);
                          for (std::size_t p = 0; p < data[s].size(); ++p) {
                            const std::size_t row = first[s] + p;
                            t.sequence[row] = s;
                            t.position[row] = p;
                            for (std::size_t i = 0; i < t.layers.size(); ++i)
                              std::copy_n(c.neurons.data() + (t.layers[i] * data[s].size() + p) * f, f,
                                          t.values.data() + row * cols + i * f);
                          }
                        }
                      });
  return t;
}

/// What a ranking orders neurons by.
enum class neuron_measure {
  correlation,         ///< |Pearson r| between activation and property
  mutual_information,  ///< I(activation bin; property class), in bits
};

/// Options of rank_neurons.
struct neuron_ranking_options {
  neuron_measure measure = neuron_measure::correlation;  ///< the order
  std::size_t bins = 10;   ///< mutual information: equal-frequency bins of each neuron's activation
  std::size_t top = 0;     ///< keep the best `top` (0 = every neuron)
};

/// One neuron's association with a property.
struct neuron_score {
  std::size_t layer = 0;           ///< its block
  std::size_t neuron = 0;          ///< its index in the block
  double correlation = 0;          ///< Pearson r between activation and property value (0 when either is constant)
  double mutual_information = 0;   ///< bits, between the activation's bin and the property's class
};

/// Neurons in order of their association with a property.
struct neuron_ranking {
  neuron_measure measure = neuron_measure::correlation;  ///< the order
  std::size_t tokens = 0;                                ///< tokens scored (labels not NaN)
  std::vector<neuron_score> neurons;                     ///< best first
};

/// Ranks the recorded neurons by |correlation| or mutual information with a per-token property:
/// labels[s][p] is the property of token p of sequence s (NaN: not scored). Mutual information
/// treats each distinct label value as a class and bins each activation into `bins` equal-frequency
/// bins (ties kept in one bin).
template <class = void>
inline neuron_ranking rank_neurons(const neuron_activation_table& table, std::span<const std::vector<double>> labels,
                                   const neuron_ranking_options& options = {}) {
  constexpr std::string_view who = "rank_neurons";
  detail::require(options.bins >= 2, "glassbox::{}: bins must be >= 2, got {}", who, options.bins);
  const std::size_t rows = table.values.shape(0), cols = table.values.shape(1);
  std::vector<std::size_t> used;
  std::vector<double> y;
  for (std::size_t r = 0; r < rows; ++r) {
    const std::size_t s = table.sequence[r], p = table.position[r];
    detail::require<shape_error>(s < labels.size() && p < labels[s].size(),
                                 "glassbox::{}: labels must give one value per token (sequence {} position {} missing)",
                                 who, s, p);
    if (std::isnan(labels[s][p])) continue;
    used.push_back(r);
    y.push_back(labels[s][p]);
  }
  const std::size_t n = used.size();
  detail::require(n >= 2, "glassbox::{}: at least two tokens must have a label, got {}", who, n);
  // Classes of the property.
  std::map<double, std::size_t> class_of;
  for (const double v : y) class_of.emplace(v, 0);
  std::size_t k = 0;
  for (auto& [value, id] : class_of) id = k++;
  std::vector<std::size_t> cls(n);
  std::vector<double> p_class(k, 0.0);
  for (std::size_t i = 0; i < n; ++i) {
    cls[i] = class_of[y[i]];
    p_class[cls[i]] += 1.0 / static_cast<double>(n);
  }
  double y_mean = 0;
  for (const double v : y) y_mean += v;
  y_mean /= static_cast<double>(n);
  double y_ss = 0;
  for (const double v : y) y_ss += (v - y_mean) * (v - y_mean);

  neuron_ranking out;
  out.measure = options.measure;
  out.tokens = n;
  out.neurons.resize(cols);
  std::vector<std::pair<float, std::size_t>> order(n);
  std::vector<std::size_t> bin(n);
  for (std::size_t c = 0; c < cols; ++c) {
    double x_mean = 0;
    for (std::size_t i = 0; i < n; ++i) x_mean += table.values(used[i], c);
    x_mean /= static_cast<double>(n);
    double xy = 0, x_ss = 0;
    for (std::size_t i = 0; i < n; ++i) {
      const double dx = table.values(used[i], c) - x_mean;
      xy += dx * (y[i] - y_mean);
      x_ss += dx * dx;
    }
    auto& score = out.neurons[c];
    score.layer = table.layers[c / table.neurons];
    score.neuron = c % table.neurons;
    score.correlation = (x_ss > 0 && y_ss > 0) ? xy / std::sqrt(x_ss * y_ss) : 0.0;
    // Equal-frequency bins: rank order, equal values share the bin of their first occurrence.
    for (std::size_t i = 0; i < n; ++i) order[i] = {table.values(used[i], c), i};
    std::sort(order.begin(), order.end());
    std::size_t current = 0;
    for (std::size_t j = 0; j < n; ++j) {
      if (j == 0 || order[j].first != order[j - 1].first) current = j * options.bins / n;
      bin[order[j].second] = current;
    }
    std::vector<double> joint(options.bins * k, 0.0), p_bin(options.bins, 0.0);
    for (std::size_t i = 0; i < n; ++i) {
      joint[bin[i] * k + cls[i]] += 1.0 / static_cast<double>(n);
      p_bin[bin[i]] += 1.0 / static_cast<double>(n);
    }
    double mi = 0;
    for (std::size_t b = 0; b < options.bins; ++b)
      for (std::size_t j = 0; j < k; ++j) {
        const double pj = joint[b * k + j];
        if (pj > 0) mi += pj * std::log2(pj / (p_bin[b] * p_class[j]));
      }
    score.mutual_information = std::max(0.0, mi);
  }
  const auto key = [&](const neuron_score& s) {
    return options.measure == neuron_measure::correlation ? std::abs(s.correlation) : s.mutual_information;
  };
  std::stable_sort(out.neurons.begin(), out.neurons.end(),
                   [&](const neuron_score& a, const neuron_score& b) { return key(a) > key(b); });
  if (options.top > 0 && options.top < out.neurons.size()) out.neurons.resize(options.top);
  return out;
}

/// One token where a neuron fires.
struct neuron_example {
  std::size_t sequence = 0;  ///< which input sequence
  std::size_t position = 0;  ///< which position in it
  double activation = 0;     ///< the neuron's activation there
};

/// The `k` tokens of the data set where neuron `neuron` of block `layer` is largest, largest first
/// (ties: the earlier token first).
template <class = void>
inline std::vector<neuron_example> top_activations(const neuron_activation_table& table, std::size_t layer,
                                                   std::size_t neuron, std::size_t k) {
  const std::size_t c = table.column(layer, neuron), rows = table.values.shape(0);
  std::vector<std::size_t> idx(rows);
  for (std::size_t r = 0; r < rows; ++r) idx[r] = r;
  const std::size_t keep = std::min(k, rows);
  std::partial_sort(idx.begin(), idx.begin() + static_cast<std::ptrdiff_t>(keep), idx.end(),
                    [&](std::size_t a, std::size_t b) {
                      const float va = table.values(a, c), vb = table.values(b, c);
                      return va != vb ? va > vb : a < b;
                    });
  std::vector<neuron_example> out(keep);
  for (std::size_t i = 0; i < keep; ++i)
    out[i] = {table.sequence[idx[i]], table.position[idx[i]], table.values(idx[i], c)};
  return out;
}

/// What ablating one neuron does to a metric over a data set.
struct neuron_ablation_result {
  std::size_t layer = 0, neuron = 0;      ///< the neuron
  ablation_kind kind = ablation_kind::zero;  ///< zero, or mean (over the table's tokens)
  double replacement = 0;                 ///< the value it was set to at every position
  std::vector<double> original;           ///< the metric on each sequence
  std::vector<double> ablated;            ///< the metric with the neuron ablated
  double mean_change = 0;                 ///< mean of ablated - original
  double mean_abs_change = 0;             ///< mean of |ablated - original|
  std::size_t sign_flips = 0;             ///< sequences where the metric changed sign
};

/// The causal check of a neuron: the metric on every sequence with neuron `neuron` of block `layer`
/// set at every position to zero or to its mean activation over `table`'s tokens. 2 passes per sequence.
template <ComponentModel M>
neuron_ablation_result neuron_ablation(const M& model, std::span<const token_sequence> data, const target& metric,
                                       std::size_t layer, std::size_t neuron, ablation_kind kind = ablation_kind::zero,
                                       const neuron_activation_table* table = nullptr,
                                       const execution_options& exec = {}) {
  static_assert(check_component_model<M>());
  constexpr std::string_view who = "neuron_ablation";
  detail::require(!data.empty(), "glassbox::{}: the data set is empty", who);
  detail::require(kind != ablation_kind::resample, "glassbox::{}: a neuron is zero- or mean-ablated", who);
  const auto layout = model.layout();
  detail::require<shape_error>(layer < layout.layers && neuron < layout.neurons,
                               "glassbox::{}: neuron {} of block {} is outside {} blocks of {} neurons", who, neuron,
                               layer, layout.layers, layout.neurons);
  neuron_ablation_result r;
  r.layer = layer;
  r.neuron = neuron;
  r.kind = kind;
  if (kind == ablation_kind::mean) {
    detail::require(table != nullptr, "glassbox::{}: mean ablation needs the activation table", who);
    const std::size_t c = table->column(layer, neuron);
    double sum = 0;
    for (std::size_t i = 0; i < table->values.shape(0); ++i) sum += table->values(i, c);
    r.replacement = sum / static_cast<double>(table->values.shape(0));
  }
  r.original.resize(data.size());
  r.ablated.resize(data.size());
  detail::run_batches(data.size(), exec, detail::worker_count(exec, is_thread_safe<M>()), who,
                      [&](std::size_t begin, std::size_t end) {
                        for (std::size_t s = begin; s < end; ++s) {
                          const std::size_t T = data[s].size();
                          component_patch p;
                          p.site = component_site::neuron;
                          p.layer = layer;
                          p.index = neuron;
                          p.values = xt::xtensor<float, 2>({T, 1}, static_cast<float>(r.replacement));
                          r.original[s] = detail::patched_value(model, data[s], {}, metric, who, 2 * s);
                          r.ablated[s] = detail::patched_value(model, data[s], std::span<const component_patch>(&p, 1),
                                                               metric, who, 2 * s + 1);
                        }
                      });
  for (std::size_t s = 0; s < data.size(); ++s) {
    const double delta = r.ablated[s] - r.original[s];
    r.mean_change += delta / static_cast<double>(data.size());
    r.mean_abs_change += std::abs(delta) / static_cast<double>(data.size());
    if ((r.original[s] > 0) != (r.ablated[s] > 0)) ++r.sign_flips;
  }
  return r;
}

}  // namespace glassbox

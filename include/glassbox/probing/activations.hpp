// glassbox: collecting a model's hidden states over a data set, with a label per row: the data of
// a probe. Rows are tokens (token pooling) or sequences (last token, mean over tokens); labels are
// classes or real values and come from a callback or from arrays. Above a memory bound, rows
// stream to a sink in chunks (io/activation_file.hpp writes them to a safetensors file).
// docs/probing.md describes the layout and the file format.
#pragma once

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "glassbox/core/error.hpp"
#include "glassbox/core/execution.hpp"
#include "glassbox/core/model.hpp"
#include "glassbox/core/progress.hpp"
#include "glassbox/core/types.hpp"
#include "glassbox/detail/memory.hpp"
#include "glassbox/probing/activation_types.hpp"

namespace glassbox {

/// The label of the row at (sequence, position), or nothing to leave that token out. For last and
/// mean pooling it is called once per sequence with the last position.
using row_label_function = std::function<std::optional<double>(std::size_t sequence, std::size_t position)>;

/// Where the labels of the rows come from, and what they mean.
struct activation_labels {
  label_kind kind = label_kind::classes;   ///< classes (indices 0 .. K - 1) or real values
  row_label_function label{};              ///< the label of each candidate row; required
  std::vector<std::string> class_names{};  ///< names of classes 0 .. K - 1 (empty: "0", "1", ...)
  std::string property{};                  ///< what is labelled, e.g. "is_negated" (file metadata)
};

/// Labels from one value per sequence (last or mean pooling; or every token of a sequence under
/// token pooling). A NaN value leaves the sequence out.
template <class = void>
activation_labels sequence_labels(std::vector<double> values, label_kind kind = label_kind::classes,
                                         std::vector<std::string> class_names = {}, std::string property = {}) {
  auto shared = std::make_shared<std::vector<double>>(std::move(values));
  return {kind,
          [shared](std::size_t sequence, std::size_t) -> std::optional<double> {
            detail::require<shape_error>(sequence < shared->size(),
                                         "glassbox::sequence_labels: no label for sequence {} ({} labels)", sequence,
                                         shared->size());
            const double v = (*shared)[sequence];
            if (std::isnan(v)) return std::nullopt;
            return v;
          },
          std::move(class_names), std::move(property)};
}

/// Labels from one value per token: values[s][t] labels position t of sequence s; a NaN value
/// leaves the token out (token pooling).
template <class = void>
activation_labels token_labels(std::vector<std::vector<double>> values, label_kind kind = label_kind::classes,
                                      std::vector<std::string> class_names = {}, std::string property = {}) {
  auto shared = std::make_shared<std::vector<std::vector<double>>>(std::move(values));
  return {kind,
          [shared](std::size_t sequence, std::size_t position) -> std::optional<double> {
            detail::require<shape_error>(sequence < shared->size() && position < (*shared)[sequence].size(),
                                         "glassbox::token_labels: no label for position {} of sequence {}", position,
                                         sequence);
            const double v = (*shared)[sequence][position];
            if (std::isnan(v)) return std::nullopt;
            return v;
          },
          std::move(class_names), std::move(property)};
}

/// Where collect_activations streams rows when they exceed its memory bound:
/// begin(header) once (the set without activations), append(rows) per chunk in row order (one
/// [n, d] tensor per layer), finish() at the end. io::activation_file_writer is one.
template <class S>
concept ActivationSink = requires(S& s, const activation_set& header, std::span<const tensor2> rows) {
  s.begin(header);
  s.append(rows);
  s.finish();
};

/// Options of activation collection.
struct activation_options {
  std::vector<std::size_t> layers{};                       ///< hidden-state indices 0 .. L to keep; empty = all
  activation_pooling pooling = activation_pooling::token;  ///< rows per token, or per sequence
  std::size_t memory_limit = std::size_t{1} << 30;         ///< bytes of activations held at once (default 1 GiB)
  std::string model_name{};                                ///< recorded in the set (and the file's metadata)
  execution_options execution{};  ///< threads (sequences in parallel on a thread-safe model), progress, cancellation
};

namespace detail {

/// The rows of a collection: per sequence, its labelled positions.
struct activation_plan {
  std::vector<std::size_t> first_row;  ///< per sequence, its first row; then N
  std::vector<std::size_t> positions;  ///< per row, its position (token pooling) or T - 1
  std::vector<double> labels;          ///< per row
};

template <class = void>
activation_plan plan_activation_rows(std::span<const token_sequence> inputs, const activation_labels& labels,
                                            activation_pooling pooling, std::string_view who) {
  require(static_cast<bool>(labels.label), "glassbox::{}: labels.label must be set, got an empty function", who);
  activation_plan plan;
  plan.first_row.reserve(inputs.size() + 1);
  for (std::size_t s = 0; s < inputs.size(); ++s) {
    plan.first_row.push_back(plan.labels.size());
    const std::size_t t = inputs[s].size();
    require<shape_error>(t >= 1, "glassbox::{}: inputs must not be empty, got an empty sequence at {}", who, s);
    const auto add = [&](std::size_t position) {
      const std::optional<double> v = labels.label(s, position);
      if (!v) return;
      require(std::isfinite(*v), "glassbox::{}: labels must be finite, got {} for position {} of sequence {}", who, *v,
              position, s);
      if (labels.kind == label_kind::classes)
        require(*v >= 0 && *v == std::floor(*v) && *v < 2147483647.0,
                "glassbox::{}: class labels must be integers >= 0, got {} for position {} of sequence {}", who, *v,
                position, s);
      plan.positions.push_back(position);
      plan.labels.push_back(*v);
    };
    if (pooling == activation_pooling::token) {
      for (std::size_t p = 0; p < t; ++p) add(p);
    } else {
      add(t - 1);
    }
  }
  plan.first_row.push_back(plan.labels.size());
  require(!plan.labels.empty(), "glassbox::{}: labels must label at least one row, got none of {} sequences", who,
          inputs.size());
  if (labels.kind == label_kind::classes && !labels.class_names.empty())
    for (std::size_t r = 0; r < plan.labels.size(); ++r)
      require(plan.labels[r] < static_cast<double>(labels.class_names.size()),
              "glassbox::{}: class labels must be < {} (the class names), got {} at row {}", who,
              labels.class_names.size(), plan.labels[r], r);
  return plan;
}

/// The set's header from a plan: everything but the activations.
template <class = void>
activation_set activation_header(std::span<const token_sequence> inputs, const activation_plan& plan,
                                        const activation_labels& labels, const activation_options& o,
                                        std::vector<std::size_t> layers, std::size_t width) {
  activation_set h;
  h.property = labels.property;
  h.model = o.model_name;
  h.pooling = o.pooling;
  h.kind = labels.kind;
  h.class_names = labels.class_names;
  h.layers = std::move(layers);
  h.width = width;
  h.labels = plan.labels;
  const std::size_t n = plan.labels.size();
  h.word_ids.resize(n);
  h.sequence_ids.resize(n);
  for (std::size_t s = 0; s + 1 < plan.first_row.size(); ++s)
    for (std::size_t r = plan.first_row[s]; r < plan.first_row[s + 1]; ++r) {
      h.word_ids[r] = inputs[s][plan.positions[r]];
      h.sequence_ids[r] = static_cast<std::int32_t>(s);
    }
  return h;
}

/// Fills rows [first_row[begin], first_row[end]) of `out` (one [rows, d] per layer, starting at
/// row `offset`) from the hidden states of sequences [begin, end).
template <class M>
void fill_activation_rows(const M& model, std::span<const token_sequence> inputs, const activation_plan& plan,
                          std::span<const std::size_t> layers, activation_pooling pooling, std::size_t begin,
                          std::size_t end, std::size_t offset, std::vector<tensor2>& out, std::string_view who) {
  for (std::size_t s = begin; s < end; ++s) {
    const std::size_t r0 = plan.first_row[s], r1 = plan.first_row[s + 1];
    if (r0 == r1) continue;
    const tensor3 h = model_hidden_states(model, token_span(inputs[s]), who, s);
    const std::size_t t = inputs[s].size(), d = out.front().shape(1);
    require<model_error>(h.shape(1) == t && h.shape(2) == d,
                         "glassbox::{}: hidden_states returned [{}, {}, {}] for sequence {} of {} tokens, expected "
                         "[L + 1, {}, {}]",
                         who, h.shape(0), h.shape(1), h.shape(2), s, t, t, d);
    for (std::size_t k = 0; k < layers.size(); ++k) {
      require<model_error>(layers[k] < h.shape(0),
                           "glassbox::{}: hidden_states returned {} layers for sequence {}, layer {} was asked for",
                           who, h.shape(0), s, layers[k]);
      const float* base = h.data() + layers[k] * t * d;
      for (std::size_t r = r0; r < r1; ++r) {
        float* row = out[k].data() + (r - offset) * d;
        if (pooling == activation_pooling::mean) {
          std::vector<double> sum(d, 0.0);
          for (std::size_t p = 0; p < t; ++p)
            for (std::size_t j = 0; j < d; ++j) sum[j] += base[p * d + j];
          for (std::size_t j = 0; j < d; ++j) row[j] = static_cast<float>(sum[j] / static_cast<double>(t));
        } else {
          std::copy_n(base + plan.positions[r] * d, d, row);
        }
        check_finite(row, d, d, who, s, "hidden states");
      }
    }
  }
}

/// The layers to keep, checked against the model's L + 1 hidden states.
template <class = void>
std::vector<std::size_t> resolve_activation_layers(const std::vector<std::size_t>& asked, std::size_t count,
                                                          std::string_view who) {
  if (asked.empty()) {
    std::vector<std::size_t> all(count);
    for (std::size_t i = 0; i < count; ++i) all[i] = i;
    return all;
  }
  for (std::size_t i = 0; i < asked.size(); ++i) {
    require<shape_error>(asked[i] < count,
                         "glassbox::{}: layers must be < {} (the model's L + 1 hidden states), got {}", who, count,
                         asked[i]);
    for (std::size_t j = 0; j < i; ++j)
      require(asked[j] != asked[i], "glassbox::{}: layers must be distinct, got {} twice", who, asked[i]);
  }
  return asked;
}

/// Collects into memory or streams to `sink` (nullptr: in memory, bounded by memory_limit).
template <class M, class Sink>
activation_set collect(const M& model, std::span<const token_sequence> inputs, const activation_labels& labels,
                       const activation_options& o, Sink* sink) {
  constexpr std::string_view who = "collect_activations";
  require(!inputs.empty(), "glassbox::{}: inputs must hold at least one sequence, got none", who);
  require(o.memory_limit >= 1, "glassbox::{}: memory_limit must be >= 1 byte, got 0", who);
  const activation_plan plan = plan_activation_rows(inputs, labels, o.pooling, who);
  // The model's shape, from the first sequence with a row.
  std::size_t probe_seq = 0;
  while (plan.first_row[probe_seq] == plan.first_row[probe_seq + 1]) ++probe_seq;
  const tensor3 first = model_hidden_states(model, token_span(inputs[probe_seq]), who, probe_seq);
  require<model_error>(first.shape(0) >= 1 && first.shape(1) == inputs[probe_seq].size() && first.shape(2) >= 1,
                       "glassbox::{}: hidden_states returned [{}, {}, {}] for {} tokens", who, first.shape(0),
                       first.shape(1), first.shape(2), inputs[probe_seq].size());
  const std::vector<std::size_t> layers = resolve_activation_layers(o.layers, first.shape(0), who);
  const std::size_t d = first.shape(2), n = plan.labels.size();
  activation_set header = activation_header(inputs, plan, labels, o, layers, d);
  const std::size_t row_bytes = layers.size() * d * sizeof(float);
  const std::size_t total_bytes = n * row_bytes;

  // Chunks of whole sequences holding at most memory_limit bytes of rows (at least one sequence).
  std::vector<std::size_t> cuts{0};
  if (sink == nullptr) {
    require(total_bytes <= o.memory_limit,
            "glassbox::{}: the activations need {} bytes, more than memory_limit ({}); stream them to a sink (e.g. "
            "io::activation_file_writer) or raise the limit",
            who, total_bytes, o.memory_limit);
    cuts.push_back(inputs.size());
  } else {
    const std::size_t chunk_rows = std::max<std::size_t>(1, o.memory_limit / std::max<std::size_t>(row_bytes, 1));
    std::size_t start_row = 0;
    for (std::size_t s = 0; s < inputs.size(); ++s) {
      if (plan.first_row[s + 1] - start_row > chunk_rows && s > cuts.back()) {
        cuts.push_back(s);
        start_row = plan.first_row[s];
      }
    }
    cuts.push_back(inputs.size());
    sink->begin(header);
  }

  std::size_t done_before = 0;
  for (std::size_t c = 0; c + 1 < cuts.size(); ++c) {
    const std::size_t s0 = cuts[c], s1 = cuts[c + 1];
    const std::size_t r0 = plan.first_row[s0], r1 = plan.first_row[s1];
    std::vector<tensor2> rows;
    rows.reserve(layers.size());
    for (std::size_t k = 0; k < layers.size(); ++k) {
      rows.push_back(tensor2::from_shape({r1 - r0, d}));
      // Mapped in one call rather than one page fault per 4 KiB as the rows are written.
      detail::prefault_for_writing(rows.back().data(), rows.back().size() * sizeof(float));
    }
    execution_options exec = o.execution;
    if (o.execution.on_progress) {
      const std::size_t offset = done_before, total = inputs.size();
      exec.on_progress = [&o, offset, total](const progress& p) {
        return o.execution.on_progress(progress{offset + p.done, total, p.stage});
      };
    }
    run_batches(s1 - s0, exec, worker_count(exec, is_thread_safe<M>()), who, [&](std::size_t b, std::size_t e) {
      fill_activation_rows(model, inputs, plan, layers, o.pooling, s0 + b, s0 + e, r0, rows, who);
    });
    done_before += s1 - s0;
    if (sink == nullptr) {
      header.activations = std::move(rows);
    } else {
      sink->append(std::span<const tensor2>(rows));
    }
  }
  if (sink != nullptr) sink->finish();
  return header;
}

/// A sink that is never used (the in-memory collection).
struct no_activation_sink {
  void begin(const activation_set&) {}
  void append(std::span<const tensor2>) {}
  void finish() {}
};

}  // namespace detail

/// The hidden states of `options.layers` (default all L + 1) of `model` over `inputs`, one row per
/// labelled token (token pooling) or per sequence (last token, mean over positions), with the
/// labels, token ids and sequence ids of the rows, in memory. Throws if the activations would need
/// more than options.memory_limit bytes (use the overload with a sink then). Sequences run in
/// parallel on a thread-safe model; the result does not depend on the thread count.
///
/// Example:
///   auto set = glassbox::collect_activations(model, reviews,
///       glassbox::token_labels(is_negated, glassbox::label_kind::classes, {"no", "yes"}, "is_negated"));
template <class M>
activation_set collect_activations(const M& model, std::span<const token_sequence> inputs,
                                   const activation_labels& labels, const activation_options& options = {}) {
  static_assert(check_activation_model<M>());
  return detail::collect<M, detail::no_activation_sink>(model, inputs, labels, options, nullptr);
}

/// collect_activations streaming the rows to `sink` in chunks of at most options.memory_limit
/// bytes (sink.begin(header), sink.append(rows) per chunk, sink.finish()); returns the header (the
/// set without activations). With io::activation_file_writer the rows go to a safetensors file.
template <class M, ActivationSink Sink>
activation_set collect_activations(const M& model, std::span<const token_sequence> inputs,
                                   const activation_labels& labels, const activation_options& options, Sink& sink) {
  static_assert(check_activation_model<M>());
  return detail::collect<M, Sink>(model, inputs, labels, options, &sink);
}

}  // namespace glassbox

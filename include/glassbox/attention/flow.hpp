// glassbox: attention flow (Abnar & Zuidema 2020, "Quantifying Attention Flow in Transformers").
//
// The attention graph has one node per (level, position): level 0 holds the input tokens, level
// k the output of layer k - 1. Node (k, p) has an edge to node (k - 1, q) with capacity
// Â_{k-1}[p, q], the residual-corrected, head-aggregated attention (raw.hpp). The flow from a
// top-level position i to input token j is the value of a maximum flow from node (n, i) to node
// (0, j); as the reference code (compute_flows / compute_node_flow), each row is then divided by
// its sum over the input tokens.
//
// The reference runs networkx's Edmonds-Karp once per (source, sink) pair on the whole graph.
// Here each pair is solved exactly by Dinic's algorithm on the subgraph of nodes that lie on a
// source-sink path, with reachability computed once per source and once per sink and shared
// (detail/layered_flow.hpp), the solver's buffers reused, and sources spread over threads.
//
// Cost: T^2 max-flow problems; with a causal mask pair (i, j) touches about L (i - j)^2 / 2
// edges per Dinic phase, L T^4 / 24 over all pairs. docs/benchmarks.md has the measured times.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "glassbox/attention/detail/layered_flow.hpp"
#include "glassbox/attention/raw.hpp"
#include "glassbox/attention/result.hpp"
#include "glassbox/core/error.hpp"
#include "glassbox/core/execution.hpp"
#include "glassbox/core/model.hpp"

namespace glassbox {

/// Options of attention flow: the graph, which top-level positions to solve for, and execution.
struct flow_options {
  attention_graph_options graph{};      ///< how heads and layers become the graph
  std::vector<std::size_t> sources;     ///< top-level positions whose flows are computed; empty = all
  std::optional<std::size_t> position;  ///< the row reported as `scores`; default the last source
  bool normalize_rows = true;           ///< divide each row by its sum over inputs, as the reference
  double epsilon = 1e-12;               ///< residuals (and capacities) <= epsilon count as 0; in (0, 1e-3)
  execution_options execution;          ///< threads (0 = all), progress in sources, cancellation
};

/// Attention flow of a bare attention tensor [L, H, T, T]: the maximum flow from each chosen
/// top-level position to each input token, rows normalised as the reference.
///
/// Example: `glassbox::flow_options o; o.sources = {T - 1}; auto f = glassbox::attention_flow(attn, o);`
/// solves only the T problems of the last position.
template <class = void>
inline attention_relevance_result attention_flow(const tensor4& attentions, const flow_options& options = {}) {
  const auto d = detail::check_attentions(attentions, "attention_flow");
  const auto range = detail::check_graph_options(options.graph, d, "attention_flow");
  // A positive epsilon absorbs the rounding of F + (C - F), so every augmentation saturates an arc.
  detail::require(std::isfinite(options.epsilon) && options.epsilon > 0.0 && options.epsilon < 1e-3,
                  "glassbox::attention_flow: epsilon must be in (0, 1e-3), got {}", options.epsilon);
  const std::size_t t = d.tokens;
  std::vector<std::size_t> sources = options.sources;
  if (sources.empty()) {
    sources.resize(t);
    for (std::size_t i = 0; i < t; ++i) sources[i] = i;
  }
  for (std::size_t s : sources)
    detail::require<shape_error>(s < t, "glassbox::attention_flow: sources must be < {}, got {}", t, s);
  const std::size_t position = options.position.value_or(sources.back());
  detail::require<shape_error>(std::find(sources.begin(), sources.end(), position) != sources.end(),
                               "glassbox::attention_flow: position must be one of the sources, got {}", position);

  const auto graph = detail::attention_graph(attentions, options.graph, range);
  const detail::layered_flow_network network(graph, options.epsilon);
  const std::size_t rows = sources.size();
  std::vector<double> raw(rows * t, 0.0);
  std::vector<std::size_t> problems(rows, 0), phases(rows, 0);
  execution_options exec = options.execution;
  exec.batch_size = 1;  // one source per work item: rows differ a lot in cost under a causal mask
  // Workspaces are pooled, so that each worker thread reuses one across its sources.
  std::mutex pool_mutex;
  std::vector<std::unique_ptr<detail::layered_flow_workspace>> pool;
  detail::run_batches(rows, exec, detail::worker_count(exec, true), "attention_flow",
                      [&](std::size_t begin, std::size_t end) {
                        std::unique_ptr<detail::layered_flow_workspace> ws;
                        {
                          std::lock_guard lock(pool_mutex);
                          if (!pool.empty()) {
                            ws = std::move(pool.back());
                            pool.pop_back();
                          }
                        }
                        if (!ws) ws = std::make_unique<detail::layered_flow_workspace>();
                        for (std::size_t r = begin; r < end; ++r) {
                          const std::size_t p0 = ws->problems, ph0 = ws->phases;
                          network.flows_from(sources[r], std::span<double>(raw.data() + r * t, t), *ws);
                          problems[r] = ws->problems - p0;
                          phases[r] = ws->phases - ph0;
                        }
                        std::lock_guard lock(pool_mutex);
                        pool.push_back(std::move(ws));
                      });

  attention_relevance_result out;
  out.method = "attention_flow";
  out.first_layer = range.first;
  out.last_layer = range.last;
  out.row_positions = sources;
  out.unnormalized = tensor2({rows, t});
  out.matrix = tensor2({rows, t});
  for (std::size_t r = 0; r < rows; ++r) {
    double sum = 0;
    for (std::size_t j = 0; j < t; ++j) sum += raw[r * t + j];
    const double scale = options.normalize_rows && sum > 0 ? 1.0 / sum : 1.0;
    for (std::size_t j = 0; j < t; ++j) {
      out.unnormalized(r, j) = static_cast<float>(raw[r * t + j]);
      out.matrix(r, j) = static_cast<float>(raw[r * t + j] * scale);
    }
    if (sources[r] == position) {
      out.scores.resize(t);
      for (std::size_t j = 0; j < t; ++j) out.scores[j] = raw[r * t + j] * scale;
    }
  }
  out.position = position;
  out.layer_maps = detail::stack_matrices(graph, t);
  detail::record_graph_options(out.options, options.graph, range);
  out.options.push_back({"sources", static_cast<std::int64_t>(rows)});
  out.options.push_back({"position", static_cast<std::int64_t>(position)});
  out.options.push_back({"normalize_rows", options.normalize_rows});
  out.options.push_back({"epsilon", options.epsilon});
  std::size_t total_problems = 0, total_phases = 0;
  for (std::size_t r = 0; r < rows; ++r) {
    total_problems += problems[r];
    total_phases += phases[r];
  }
  out.diagnostics.push_back({"max_flow_problems", static_cast<std::int64_t>(total_problems)});
  out.diagnostics.push_back({"skipped_unreachable_pairs", static_cast<std::int64_t>(rows * t - total_problems)});
  out.diagnostics.push_back({"dinic_phases", static_cast<std::int64_t>(total_phases)});
  return out;
}

/// Attention flow of one input: one forward pass for the attentions, then the flows.
template <class M>
attention_relevance_result attention_flow(const M& model, token_span tokens, const flow_options& options = {}) {
  static_assert(check_attention_model<M>());
  auto out = attention_flow(detail::model_attentions(model, tokens, "attention_flow"), options);
  out.token_ids.assign(tokens.begin(), tokens.end());
  out.model_evaluations = 1;
  return out;
}

}  // namespace glassbox

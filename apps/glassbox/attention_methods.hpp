// glassbox attention: the attention methods of the registry (registry.hpp), one entry each.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "cli.hpp"
#include "glassbox/attention/result.hpp"
#include "glassbox/core/execution.hpp"
#include "glassbox/report/attention_json.hpp"
#include "registry.hpp"

namespace glassbox::cli {

/// What an attention method of `glassbox attention` is called with.
struct attention_call {
  const loaded_model& model;          ///< the model and its vocabulary
  token_span tokens;                  ///< the input
  std::size_t position = 0;           ///< the explained position (its row is the reported scores)
  std::optional<token_id> explained;  ///< gradient methods: the explained next token (default: the top prediction)
  execution_options execution;        ///< thread budget, progress
};

/// What an attention method returns: the model's attention (every view shows it) and, except for
/// raw_attention, the relevance it computes; raw_attention's layer and head selection.
struct attention_outcome {
  attention_maps_result raw;                            ///< the attention probabilities, heads combined
  std::optional<attention_relevance_result> relevance;  ///< the method's token-to-token relevance
  report::attention_selection selection;                ///< raw_attention: the layer and head shown
};

/// An attention method of the registry.
using attention_method = method<attention_call, attention_outcome>;

/// The attention methods, in the order of docs/attention.md.
const std::vector<attention_method>& attention_methods();

/// The explained position's scores of an outcome: its relevance row, or the selected raw map's row.
std::vector<double> outcome_scores(const attention_outcome& o, std::size_t position);

}  // namespace glassbox::cli

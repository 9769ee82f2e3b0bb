// glassbox explain: the attribution methods of the registry (registry.hpp), one entry each.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "cli.hpp"
#include "glassbox/attribution/baseline.hpp"
#include "glassbox/core/execution.hpp"
#include "glassbox/core/result.hpp"
#include "glassbox/core/target.hpp"
#include "registry.hpp"

namespace glassbox::cli {

/// What an attribution method of `glassbox explain` is called with.
struct attribution_call {
  const loaded_model& model;    ///< the model and its vocabulary
  token_span tokens;            ///< the input
  target explained;             ///< what is explained
  execution_options execution;  ///< batch size, thread budget, progress
};

/// An attribution method of the registry.
using attribution_method = method<attribution_call, attribution_result>;

/// The attribution methods, in the order of docs/attribution.md.
const std::vector<attribution_method>& attribution_methods();

/// A baseline named on the command line: pad, unk, zero, removal, token:ID, token:WORD or an id.
baseline parse_baseline(const loaded_model& m, std::string_view value, std::string_view option = "baseline");

}  // namespace glassbox::cli

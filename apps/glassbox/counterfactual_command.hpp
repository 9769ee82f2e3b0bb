// glassbox counterfactual: the fewest token edits that change the model's prediction (the
// counterfactual module, include/glassbox/counterfactual/search.hpp) on the command line
// (docs/cli.md, "Counterfactuals").
#pragma once

#include "cli.hpp"

namespace glassbox::cli {

/// `glassbox counterfactual`: a counterfactual explanation of one input by greedy or beam search over
/// token edits (deletion and substitution), with the edits, both predictions and the model calls.
runner add_counterfactual_command(CLI::App& app);

}  // namespace glassbox::cli

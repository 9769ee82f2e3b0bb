// glassbox scores: step scores of a continuation or a greedy generation (the prompting module,
// include/glassbox/prompting/step_scores.hpp) on the command line (docs/cli.md, "Step scores").
#pragma once

#include "cli.hpp"

namespace glassbox::cli {

/// `glassbox scores`: per generated token probability, log-probability, entropy, surprisal and the
/// contrast with a foil, and the answer's uncertainty summary.
runner add_scores_command(CLI::App& app);

}  // namespace glassbox::cli

// glassbox lens, tuned-lens and steer: the representations module (docs/representations.md) on the
// command line.
#pragma once

#include "cli.hpp"

namespace glassbox::cli {

/// `glassbox lens`: the logit lens (or a tuned lens) of one input, per layer and position.
runner add_lens_command(CLI::App& app);

/// `glassbox tuned-lens`: trains a tuned lens on a data file and reports it beside the logit lens.
runner add_tuned_lens_command(CLI::App& app);

/// `glassbox steer`: a reading vector added to (or projected out of) the residual stream at a layer.
runner add_steer_command(CLI::App& app);

}  // namespace glassbox::cli

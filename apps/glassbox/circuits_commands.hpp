// glassbox patch, dla and neurons: the circuits module (include/glassbox/circuits.hpp) on the command line
// (docs/cli.md, "Circuits").
#pragma once

#include "cli.hpp"

namespace glassbox::cli {

/// `glassbox patch`: activation or attribution patching of a clean / corrupted pair, a layer x position
/// (or layer x head, layer x neuron) sweep of the restored fraction of a metric.
runner add_patch_command(CLI::App& app);

/// `glassbox dla`: direct logit attribution of a logit (difference) to the embeddings, heads, MLPs and neurons.
runner add_dla_command(CLI::App& app);

/// `glassbox neurons`: MLP neurons ranked by correlation or mutual information with a per-token property of
/// a data file, their top-activating tokens, and the causal check by ablation.
runner add_neurons_command(CLI::App& app);

}  // namespace glassbox::cli

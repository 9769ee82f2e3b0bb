// glassbox sae train / sae inspect: sparse autoencoders (docs/representations.md, "Sparse
// autoencoders") on the command line.
#pragma once

#include "cli.hpp"

namespace glassbox::cli {

/// `glassbox sae`: `train` an SAE on one layer's activations (of a data file, or an activation
/// file), `inspect` its feature dashboards, metrics and, on review data, its property matches.
runner add_sae_command(CLI::App& app);

}  // namespace glassbox::cli

// glassbox activations, probe and tcav: the probing module (docs/probing.md) on the command line.
#pragma once

#include "cli.hpp"

namespace glassbox::cli {

/// `glassbox activations`: hidden states of a data file's inputs with a property's labels, to an activation file.
runner add_activations_command(CLI::App& app);

/// `glassbox probe`: linear (or MLP) probes per layer, control tasks, selectivity and MDL, from an
/// activation file or a data file.
runner add_probe_command(CLI::App& app);

/// `glassbox tcav`: TCAV scores of concepts (data files) with their significance.
runner add_tcav_command(CLI::App& app);

}  // namespace glassbox::cli

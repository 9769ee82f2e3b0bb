// glassbox evaluate: the ground-truth benchmark of every explanation method (evaluate.cpp).
#pragma once

#include "cli.hpp"

namespace glassbox::cli {

/// Registers `glassbox evaluate` on `app` and returns the function that runs it.
runner add_evaluate_command(CLI::App& app);

}  // namespace glassbox::cli

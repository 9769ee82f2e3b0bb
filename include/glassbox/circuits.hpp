// glassbox: circuits and components. Activation, attribution and path patching, component
// ablation, direct logit attribution and neuron analysis over any ComponentModel. docs/circuits.md.
//
// Example:
//   #include <glassbox/circuits.hpp>
//   auto r = glassbox::activation_patching(model, clean, corrupt, metric, {.level = glassbox::patch_level::head});
#pragma once

#include "glassbox/circuits/direct_logit_attribution.hpp"
#include "glassbox/circuits/neurons.hpp"
#include "glassbox/circuits/patching.hpp"

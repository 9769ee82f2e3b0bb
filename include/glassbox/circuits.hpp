// glassbox: circuits and components. Activation, attribution and path patching, component
// ablation, direct logit attribution and neuron analysis over any ComponentModel. docs/circuits.md.
#pragma once

#include "glassbox/circuits/direct_logit_attribution.hpp"
#include "glassbox/circuits/neurons.hpp"
#include "glassbox/circuits/patching.hpp"

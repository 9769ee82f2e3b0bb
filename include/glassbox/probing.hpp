// glassbox: the probing module. What the hidden states encode, where, and whether it is more than
// the probe: activation collection over an ActivationModel (probing/activations.hpp), L2 logistic
// and ridge regression with scikit-learn's objectives (logistic_regression.hpp), the MLP probe
// (mlp.hpp), per-layer probes with control tasks and selectivity (probe.hpp), MDL probing with the
// online code (mdl.hpp), and TCAV with significance testing over an InterventionModel (tcav.hpp).
// The activation and probe files are in io/activation_file.hpp. docs/probing.md describes every method.
#pragma once

#include "glassbox/probing/activations.hpp"
#include "glassbox/probing/logistic_regression.hpp"
#include "glassbox/probing/mdl.hpp"
#include "glassbox/probing/mlp.hpp"
#include "glassbox/probing/probe.hpp"
#include "glassbox/probing/tcav.hpp"

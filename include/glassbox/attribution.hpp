// glassbox: the attribution module.
//
// Baselines ("absent" tokens, attribution/baseline.hpp); perturbation methods over any Model:
// occlusion and feature ablation (occlusion.hpp), LIME (lime.hpp), KernelSHAP (kernel_shap.hpp),
// Shapley value sampling and exact Shapley values (shapley.hpp); gradient methods over a
// DifferentiableModel: saliency and input x gradient (saliency.hpp), integrated gradients
// (integrated_gradients.hpp), GradientSHAP (gradient_shap.hpp), SmoothGrad / VarGrad
// (noise_tunnel.hpp); layer attribution over an InterventionModel (layer_attribution.hpp); and
// attribution of generated continuations (generation.hpp). docs/attribution.md describes every method.
#pragma once

#include "glassbox/attribution/baseline.hpp"
#include "glassbox/attribution/generation.hpp"
#include "glassbox/attribution/gradient_shap.hpp"
#include "glassbox/attribution/integrated_gradients.hpp"
#include "glassbox/attribution/kernel_shap.hpp"
#include "glassbox/attribution/layer_attribution.hpp"
#include "glassbox/attribution/lime.hpp"
#include "glassbox/attribution/noise_tunnel.hpp"
#include "glassbox/attribution/occlusion.hpp"
#include "glassbox/attribution/saliency.hpp"
#include "glassbox/attribution/shapley.hpp"

// glassbox: the attribution module.
#pragma once

#include "glassbox/attribution/baseline.hpp"
#include "glassbox/attribution/generation.hpp"
#include "glassbox/attribution/gradient_shap.hpp"
#include "glassbox/attribution/integrated_gradients.hpp"
#include "glassbox/attribution/layer_attribution.hpp"
#include "glassbox/attribution/noise_tunnel.hpp"
#include "glassbox/attribution/saliency.hpp"
#include "glassbox/attribution/kernel_shap.hpp"
#include "glassbox/attribution/lime.hpp"
#include "glassbox/attribution/occlusion.hpp"
#include "glassbox/attribution/shapley.hpp"

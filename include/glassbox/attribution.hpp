// glassbox: the attribution module.
#pragma once

#include "glassbox/attribution/baseline.hpp"
#include "glassbox/attribution/kernel_shap.hpp"
#include "glassbox/attribution/lime.hpp"
#include "glassbox/attribution/occlusion.hpp"
#include "glassbox/attribution/shapley.hpp"

// glassbox: the influence module — which training examples made the model say this.
//
// Conventions, measurements and gradients (influence/measurement.hpp); results and shared options
// (influence/result.hpp); curvature access through the models' optional Hessian-vector and
// Gauss-Newton-vector products (influence/curvature.hpp); exact influence with H formed and
// eigendecomposed (influence/exact.hpp); conjugate gradient and LiSSA (influence/iterative.hpp);
// TracIn over checkpoints (influence/tracin.hpp); K-FAC / EK-FAC / diagonal / identity curvature
// fitted as Kronfluence fits it (influence/kfac_factors.hpp) and scored without per-example
// gradients (influence/kfac.hpp). Factors on disk: glassbox/io/influence_factors.hpp; MPI:
// glassbox/parallel/mpi.hpp (optional). docs/influence.md describes every method.
#pragma once

#include "glassbox/influence/curvature.hpp"
#include "glassbox/influence/exact.hpp"
#include "glassbox/influence/iterative.hpp"
#include "glassbox/influence/kfac.hpp"
#include "glassbox/influence/kfac_factors.hpp"
#include "glassbox/influence/kfac_types.hpp"
#include "glassbox/influence/measurement.hpp"
#include "glassbox/influence/result.hpp"
#include "glassbox/influence/tracin.hpp"

// glassbox: the whole portable library. The optional parts that need other dependencies are not
// included here: MPI sharding of influence (glassbox/parallel/mpi.hpp, needs MPI) and the libtorch
// adapter (planned); docs/building.md, "Optional parts".
#pragma once

#include "glassbox/attention.hpp"
#include "glassbox/attribution.hpp"
#include "glassbox/circuits.hpp"
#include "glassbox/core.hpp"
#include "glassbox/counterfactual.hpp"
#include "glassbox/datasets.hpp"
#include "glassbox/evaluation.hpp"
#include "glassbox/influence.hpp"
#include "glassbox/io.hpp"
#include "glassbox/models.hpp"
#include "glassbox/probing.hpp"
#include "glassbox/prompting.hpp"
#include "glassbox/report.hpp"
#include "glassbox/representations.hpp"
#include "glassbox/verify.hpp"

// glassbox: the whole portable library. The optional parts that will need other dependencies (a
// libtorch adapter, MPI sharding) are planned (docs/building.md, "Optional parts"); they will not be
// included here.
#pragma once

#include "glassbox/attention.hpp"
#include "glassbox/attribution.hpp"
#include "glassbox/core.hpp"
#include "glassbox/datasets.hpp"
#include "glassbox/influence.hpp"
#include "glassbox/io.hpp"
#include "glassbox/models.hpp"
#include "glassbox/probing.hpp"
#include "glassbox/report.hpp"
#include "glassbox/representations.hpp"
#include "glassbox/verify.hpp"

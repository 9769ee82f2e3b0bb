// glassbox: the whole portable library. Optional parts (libtorch adapter, MPI) are included
// explicitly by the user.
#pragma once

#include "glassbox/attention.hpp"
#include "glassbox/attribution.hpp"
#include "glassbox/core.hpp"
#include "glassbox/datasets.hpp"
#include "glassbox/io.hpp"
#include "glassbox/models.hpp"
#include "glassbox/report.hpp"

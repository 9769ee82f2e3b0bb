// glassbox: the whole portable library. Optional parts (libtorch adapter, MPI) are included
// explicitly by the user.
#pragma once

#include "glassbox/core.hpp"

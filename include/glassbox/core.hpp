// glassbox: the core layer (types, errors, model concepts, targets, results, randomness, execution,
// build information).
#pragma once

#include "glassbox/core/build_info.hpp"
#include "glassbox/core/components.hpp"
#include "glassbox/core/error.hpp"
#include "glassbox/core/execution.hpp"
#include "glassbox/core/model.hpp"
#include "glassbox/core/progress.hpp"
#include "glassbox/core/random.hpp"
#include "glassbox/core/result.hpp"
#include "glassbox/core/target.hpp"
#include "glassbox/core/types.hpp"
#include "glassbox/core/version.hpp"

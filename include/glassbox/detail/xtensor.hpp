// glassbox: the one place that includes xtensor, for both header layouts.
//
// Debian 12 ships xtensor 0.24 with flat headers (xtensor/xtensor.hpp); xtensor 0.26 moved
// them into subfolders (xtensor/containers/xtensor.hpp). Everything in glassbox includes
// this header instead of xtensor directly.
#pragma once

#if __has_include(<xtensor/containers/xtensor.hpp>)
#include <xtensor/containers/xadapt.hpp>
#include <xtensor/containers/xtensor.hpp>
#include <xtensor/views/xview.hpp>
#else
#include <xtensor/xadapt.hpp>
#include <xtensor/xtensor.hpp>
#include <xtensor/xview.hpp>
#endif

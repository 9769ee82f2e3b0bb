// glassbox: the data sets with known ground truth (the synthetic review language).
#pragma once

#include "glassbox/datasets/reviews.hpp"

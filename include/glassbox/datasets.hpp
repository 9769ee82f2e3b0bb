// glassbox: the data sets with known ground truth.
//
// The synthetic review language (datasets/reviews.hpp): its vocabulary, the label rule
// (label_of) with rationales and per-token properties, and the seeded generator with label noise.
// docs/ground-truth.md describes the language and the bundled model trained on it.
#pragma once

#include "glassbox/datasets/reviews.hpp"

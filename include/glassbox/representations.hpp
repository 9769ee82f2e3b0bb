// glassbox: representations, part two of probing: the logit and tuned lenses, sparse autoencoders,
// reading and steering vectors, INLP (docs/representations.md).
#pragma once

#include "glassbox/representations/lens.hpp"
#include "glassbox/representations/sae.hpp"
#include "glassbox/representations/steering.hpp"

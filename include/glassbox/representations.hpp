// glassbox: the representations module, part two of probing (docs/representations.md). The logit
// and tuned lenses over a LensModel (representations/lens.hpp), sparse autoencoders trained on
// activations and spliced back through an InterventionModel (sae.hpp), and reading vectors,
// steering and INLP removal (steering.hpp). File formats are in io/representation_files.hpp and
// io/sae_file.hpp; the review-language property matching of SAE features in sae_reviews.hpp.
#pragma once

#include "glassbox/representations/lens.hpp"
#include "glassbox/representations/sae.hpp"
#include "glassbox/representations/steering.hpp"

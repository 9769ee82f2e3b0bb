// glassbox: the reference models (GPT-2, the linear bag-of-embeddings test model) and the Adam
// trainer.
#pragma once

#include "glassbox/models/adam.hpp"
#include "glassbox/models/gpt2.hpp"
#include "glassbox/models/linear_bag.hpp"

// glassbox: the reference models and their trainer.
//
// The reference GPT-2 in pure Eigen, every rung of the model ladder, loading public checkpoints
// (models/gpt2.hpp); the linear bag-of-embeddings model whose attributions have closed forms
// (models/linear_bag.hpp); Adam / AdamW and a trainer for any TrainableModel (models/adam.hpp).
// docs/gpt2.md describes them.
#pragma once

#include "glassbox/models/adam.hpp"
#include "glassbox/models/gpt2.hpp"
#include "glassbox/models/linear_bag.hpp"

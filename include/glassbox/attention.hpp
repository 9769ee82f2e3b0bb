// glassbox: the attention module.
//
// Raw attention and head aggregation (attention/raw.hpp), attention rollout (rollout.hpp),
// attention flow by exact maximum flows (flow.hpp), gradient-weighted attention: AttGrad,
// Chefer et al.'s relevance and gradient-weighted rollout (gradient_weighted.hpp), head
// statistics and redundancy (head_statistics.hpp), and head importance, ablation and pruning
// (head_importance.hpp). docs/attention.md describes every method.
#pragma once

#include "glassbox/attention/flow.hpp"
#include "glassbox/attention/gradient_weighted.hpp"
#include "glassbox/attention/head_importance.hpp"
#include "glassbox/attention/head_statistics.hpp"
#include "glassbox/attention/raw.hpp"
#include "glassbox/attention/result.hpp"
#include "glassbox/attention/rollout.hpp"

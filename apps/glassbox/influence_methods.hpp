// glassbox influence: the influence methods of the registry (registry.hpp), one entry each.
//
//   influence fit    ekfac, kfac, diagonal, identity     the curvature fitted and saved (--out FACTORS)
//   influence score  exact, cg, lissa, tracin           flat-parameter methods (score and self);
//                                                        K-FAC scoring takes --factors instead of --method
#pragma once

#include <optional>
#include <span>
#include <string>
#include <vector>

#include "cli.hpp"
#include "glassbox/core/execution.hpp"
#include "glassbox/influence/kfac_factors.hpp"
#include "glassbox/influence/measurement.hpp"
#include "glassbox/influence/result.hpp"
#include "glassbox/influence/tracin.hpp"
#include "registry.hpp"

namespace glassbox::cli {

/// What a fitting method of `glassbox influence fit` is called with.
struct influence_fit_call {
  const loaded_model& model;                 ///< the model and its vocabulary
  std::span<const training_example> train;   ///< the training set
  execution_options execution;               ///< batch size, thread budget, progress
};

/// A fitting method: its options (kfac_fit_options, method set) and the fit itself, run by the caller
/// (on one process, or over MPI).
using influence_fit_method = method<influence_fit_call, kfac_fit_options>;

/// The fitting methods, in the order of docs/influence.md.
const std::vector<influence_fit_method>& influence_fit_methods();

/// What a flat-parameter method of `glassbox influence score|self` is called with.
struct influence_score_call {
  models::gpt2& model;                            ///< the model (TracIn sets it to each checkpoint, then restores it)
  std::span<const training_example> train;        ///< the training set
  std::span<const measurement> queries;           ///< the queries (empty for self-influence)
  std::span<const tracin_checkpoint> checkpoints; ///< TracIn's checkpoints (--checkpoints)
  std::size_t top_k = 10;                         ///< most helpful / harmful kept per query
  execution_options execution;                    ///< batch size, thread budget, progress
};

/// What a flat-parameter method returns: pairwise scores (score) or self-influence (self).
struct influence_outcome {
  std::optional<influence_result> pairwise;    ///< `influence score`
  std::optional<self_influence_result> self;   ///< `influence self`
};

/// A flat-parameter influence method of the registry.
using influence_score_method = method<influence_score_call, influence_outcome>;

/// The flat-parameter methods (exact, cg, lissa, tracin), in the order of docs/influence.md.
const std::vector<influence_score_method>& influence_score_methods();

}  // namespace glassbox::cli

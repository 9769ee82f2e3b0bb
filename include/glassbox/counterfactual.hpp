// glassbox: the counterfactual module. Goals (a changed prediction or a target past a threshold,
// counterfactual/goal.hpp); counterfactual explanations by token edits with greedy and beam search,
// and minimal sufficient / necessary token sets, over any Model (counterfactual/search.hpp);
// adversarial examples in embedding space, FGSM, PGD and a projected token attack in the spirit of
// SemAttack, over a DifferentiableModel (counterfactual/adversarial.hpp). docs/counterfactual.md.
//
// Example:
//   #include <glassbox/counterfactual.hpp>
//   auto cf = glassbox::counterfactual(model, tokens, glassbox::counterfactual_goal::label_flip({pos, neg}),
//                                      {.max_edits = 2, .fixed_positions = {tokens.size() - 1}});
#pragma once

#include "glassbox/counterfactual/adversarial.hpp"
#include "glassbox/counterfactual/goal.hpp"
#include "glassbox/counterfactual/search.hpp"

// glassbox: prompt-level explanations. Segments of a prompt (demonstrations, sentences) as
// features, attributed with any perturbation method (prompting/segments.hpp); the order
// sensitivity of few-shot prompts (prompting/order_sensitivity.hpp); step scores and the
// uncertainty of generated answers (prompting/step_scores.hpp). docs/prompting.md describes them.
//
// Example:
//   #include <glassbox/prompting.hpp>
//   auto scores = glassbox::step_scores(model, prompt, answer, {.foils = {other_id}});
#pragma once

#include "glassbox/prompting/order_sensitivity.hpp"
#include "glassbox/prompting/segments.hpp"
#include "glassbox/prompting/step_scores.hpp"

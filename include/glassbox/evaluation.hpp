// glassbox: the evaluation module. Faithfulness (ERASER comprehensiveness / sufficiency and AOPC,
// deletion and insertion curves, infidelity, max-sensitivity), plausibility against a known
// rationale, agreement between explanations, and bootstrap intervals. docs/evaluation.md.
#pragma once

#include "glassbox/evaluation/agreement.hpp"
#include "glassbox/evaluation/bootstrap.hpp"
#include "glassbox/evaluation/faithfulness.hpp"
#include "glassbox/evaluation/plausibility.hpp"
#include "glassbox/evaluation/score.hpp"
#include "glassbox/evaluation/sensitivity.hpp"

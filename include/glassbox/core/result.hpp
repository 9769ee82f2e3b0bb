// glassbox: the value types methods return. They carry everything needed to render, compare and
// reproduce an explanation; report/ renders them and serialises them to JSON (docs/json-schema.md).
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "glassbox/core/target.hpp"
#include "glassbox/core/types.hpp"

namespace glassbox {

/// The value of one recorded option: a flag, an integer, a real or a string.
using option_value = std::variant<bool, std::int64_t, double, std::string>;

/// One option a method ran with, by name, as recorded in its result.
struct named_option {
  std::string name;    ///< the option's name in the options struct, e.g. "steps"
  option_value value;  ///< its value
};

/// Per-token attribution scores for one target, with the provenance of the run.
struct attribution_result {
  std::string method;                  ///< e.g. "integrated_gradients"
  token_sequence token_ids;            ///< the explained input
  std::vector<double> scores;          ///< one score per token
  tensor2 embedding_scores;            ///< [T, d] per embedding dimension, where the method has them; else empty
  std::vector<double> standard_errors; ///< one per token for sampling methods; else empty
  glassbox::target target = target::logit(0);  ///< what was explained
  double target_value = std::numeric_limits<double>::quiet_NaN();    ///< f(input)
  double baseline_value = std::numeric_limits<double>::quiet_NaN();  ///< f(baseline), where the method has one
  std::optional<double> convergence_delta;  ///< sum(scores) - (f(input) - f(baseline)), where the method has one
  std::size_t model_evaluations = 0;        ///< forward (or forward + backward) passes the method made
  std::vector<named_option> options;        ///< the options it ran with

  /// The sum of the scores (in double).
  template <class = void>
  double total() const {
    double s = 0;
    for (double x : scores) s += x;
    return s;
  }
};

/// Attributions of each generated token of a continuation to the tokens before it, as inseq:
/// row g holds the scores of source tokens 0 .. (prompt + g - 1) for generated token g.
struct sequence_attribution_result {
  std::string method;                  ///< e.g. "integrated_gradients"
  token_sequence token_ids;            ///< prompt followed by the generated tokens
  std::size_t prompt_length = 0;       ///< how many of token_ids are the prompt
  tensor2 scores;                      ///< [generated, source]; entries for sources at or after the target are 0
  std::vector<double> target_values;   ///< f(input) per generated token
  std::vector<double> convergence_deltas;  ///< per generated token, where the method has one; else empty
  std::size_t model_evaluations = 0;   ///< passes the method made
  std::vector<named_option> options;   ///< the options it ran with
};

}  // namespace glassbox

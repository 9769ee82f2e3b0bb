// glassbox: what a counterfactual or an adversarial example must achieve (a goal), the result types
// of the counterfactual module, and the evaluation of a goal on edited inputs. docs/counterfactual.md.
//
// A goal reads the output rows of one input and says whether the original prediction still holds:
//   label_flip(labels, position)  the prediction is the argmax of row `position` over `labels` (every
//                                 column when empty; ties go to the earlier label); the goal is met
//                                 when it differs from the original input's prediction.
//                                 margin = z[original] - max over the other labels of z
//   threshold(t, c)               the goal is met when t's value crosses c: from >= c to < c, or from
//                                 < c to >= c.  margin = f - c when f(original) >= c, else c - f
// The margin is positive while the original prediction holds; searches and attacks drive it down.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "glassbox/attribution/baseline.hpp"
#include "glassbox/core/error.hpp"
#include "glassbox/core/execution.hpp"
#include "glassbox/core/model.hpp"
#include "glassbox/core/result.hpp"
#include "glassbox/core/target.hpp"
#include "glassbox/core/types.hpp"

namespace glassbox {

/// The two kinds of counterfactual goal.
enum class counterfactual_goal_kind {
  label_flip,  ///< the argmax over a label set changes
  threshold,   ///< a target's value crosses a threshold
};

/// What an edited input must achieve: a changed prediction, or a target value past a threshold.
///
/// Example: `auto g = glassbox::counterfactual_goal::label_flip({positive_id, negative_id});`
class counterfactual_goal {
 public:
  /// The argmax of output row `position` over `labels` (every column when empty) must change.
  template <class = void>
  static counterfactual_goal label_flip(std::vector<token_id> labels = {}, std::ptrdiff_t position = -1) {
    counterfactual_goal g(counterfactual_goal_kind::label_flip, target::logit(0, position));
    g.labels_ = std::move(labels);
    return g;
  }
  /// The value of `t` must cross `threshold` (from >= threshold to < threshold, or from < to >=).
  template <class = void>
  static counterfactual_goal threshold(target t, double threshold) {
    counterfactual_goal g(counterfactual_goal_kind::threshold, std::move(t));
    g.threshold_ = threshold;
    return g;
  }

  /// The kind of goal.
  counterfactual_goal_kind kind() const { return kind_; }
  /// The label set of a label_flip goal (empty = every output column).
  const std::vector<token_id>& labels() const { return labels_; }
  /// The target whose rows are read: the threshold goal's target; for label_flip, a logit target at its position.
  const glassbox::target& target() const { return target_; }
  /// The threshold of a threshold goal.
  double threshold_value() const { return threshold_; }

 private:
  template <class = void>
  counterfactual_goal(counterfactual_goal_kind kind, glassbox::target t) : kind_(kind), target_(std::move(t)) {}

  counterfactual_goal_kind kind_;
  glassbox::target target_;
  std::vector<token_id> labels_;
  double threshold_ = 0;
};

/// One token edit: the token at `position` changed from `from` to `to`.
struct token_edit {
  std::size_t position = 0;  ///< where
  token_id from = -1;        ///< the original token
  token_id to = -1;          ///< its replacement (the baseline token for a deletion)

  /// Member-wise equality.
  bool operator==(const token_edit&) const = default;
};

/// A counterfactual: the edits that change the prediction, and what the search cost.
struct counterfactual_result {
  std::string method;                 ///< "counterfactual_greedy" or "counterfactual_beam"
  token_sequence original;            ///< the input
  token_sequence edited;              ///< the input with the edits applied (the input when none was found)
  std::vector<token_edit> edits;      ///< ascending by position; empty when none was found
  bool found = false;                 ///< whether the edited input meets the goal
  bool minimal = false;               ///< found, and checked: dropping any single edit no longer meets the goal
  token_id original_prediction = -1;  ///< label_flip: the original argmax; threshold goals: -1
  token_id new_prediction = -1;       ///< label_flip: the argmax on the edited input; threshold goals: -1
  double original_value = std::numeric_limits<double>::quiet_NaN();  ///< margin (label_flip) or target value
  double new_value = std::numeric_limits<double>::quiet_NaN();       ///< the same on the edited input
  std::size_t model_evaluations = 0;  ///< model passes (forward, or forward + backward) the search made
  std::vector<named_option> options;  ///< the options it ran with
};

/// A minimal sufficient or necessary set of token positions.
struct token_set_result {
  std::string method;                  ///< "sufficient_tokens" or "necessary_tokens"
  token_sequence token_ids;            ///< the input
  std::vector<std::size_t> positions;  ///< the set, ascending
  bool found = false;                  ///< sufficient: the prediction holds with the set; necessary: removing it flips
  bool minimal = false;                ///< found, and no single position can be dropped from the set
  token_id original_prediction = -1;   ///< label_flip: the original argmax; threshold goals: -1
  token_id prediction = -1;            ///< label_flip: the argmax with the set kept (sufficient) or removed (necessary)
  double original_value = std::numeric_limits<double>::quiet_NaN();  ///< margin (label_flip) or target value
  double value = std::numeric_limits<double>::quiet_NaN();           ///< the same with the set kept / removed
  std::size_t model_evaluations = 0;                                 ///< model passes the search made
  std::vector<named_option> options;                                 ///< the options it ran with
};

namespace detail {

/// What a goal reads from one input.
struct goal_reading {
  double margin = 0;         ///< > 0 while the original prediction holds
  double value = 0;          ///< margin (label_flip) or target value (threshold)
  token_id prediction = -1;  ///< label_flip: the argmax over the labels; else -1
  bool met = false;          ///< whether the goal is met
};

/// The argmax over `labels` of one row (every column when empty); ties go to the earlier label.
template <class = void>
inline token_id goal_argmax(const float* z, std::size_t columns, std::span<const token_id> labels) {
  if (labels.empty()) return static_cast<token_id>(std::max_element(z, z + columns) - z);
  token_id best = labels[0];
  for (token_id l : labels)
    if (z[l] > z[best]) best = l;
  return best;
}

/// Evaluates a goal on edited inputs (token sequences or input embeddings) of one model, counting the passes.
template <Model M>
class goal_evaluator {
 public:
  /// Reads the original input and fixes the original prediction; validates the goal against the output.
  goal_evaluator(const M& model, token_span tokens, counterfactual_goal goal, execution_options exec,
                 std::string_view caller)
      : model_(model), goal_(std::move(goal)), exec_(std::move(exec)), caller_(caller) {
    require<shape_error>(!tokens.empty(), "glassbox::{}: tokens must not be empty", caller_);
    for (std::size_t i = 0; i < tokens.size(); ++i)
      require<shape_error>(tokens[i] >= 0 && static_cast<std::size_t>(tokens[i]) < model.vocab_size(),
                           "glassbox::{}: tokens must be ids in [0, {}), got {} at position {}", caller_,
                           model.vocab_size(), tokens[i], i);
    const std::vector<token_sequence> one{token_sequence(tokens.begin(), tokens.end())};
    const tensor2 rows = row_logits(one)[0];
    const std::size_t columns = rows.shape(1);
    for (token_id l : goal_.labels())
      require<shape_error>(l >= 0 && static_cast<std::size_t>(l) < columns,
                           "glassbox::{}: goal labels must be output columns in [0, {}), got {}", caller_, columns, l);
    if (goal_.kind() == counterfactual_goal_kind::label_flip) {
      require<shape_error>(goal_.labels().empty() || goal_.labels().size() >= 2,
                           "glassbox::{}: goal labels must hold at least 2 labels (or none for every column), got {}",
                           caller_, goal_.labels().size());
      require<shape_error>(!goal_.labels().empty() || columns >= 2,
                           "glassbox::{}: a label_flip goal needs at least 2 output columns, got {}", caller_, columns);
      for (std::size_t i = 0; i < goal_.labels().size(); ++i)
        for (std::size_t j = 0; j < i; ++j)
          require<shape_error>(goal_.labels()[i] != goal_.labels()[j],
                               "glassbox::{}: goal labels must be distinct, got {} twice", caller_, goal_.labels()[i]);
      original_prediction_ = goal_argmax(rows.data(), columns, goal_.labels());
    } else {
      above_ = goal_.target().value(rows) >= goal_.threshold_value();
    }
    original_ = read(rows);
  }

  /// The reading of the original input.
  const goal_reading& original() const { return original_; }
  /// The original prediction (label_flip), else -1.
  token_id original_prediction() const { return original_prediction_; }
  /// Model passes made so far (the original input's included).
  std::size_t evaluations() const { return evaluations_; }
  /// The execution options.
  const execution_options& execution() const { return exec_; }
  /// The goal.
  const counterfactual_goal& goal() const { return goal_; }
  /// The model.
  const M& model() const { return model_; }

  /// The goal's readings of token sequences; one model pass each (batched where the model allows).
  std::vector<goal_reading> evaluate(std::span<const token_sequence> inputs) {
    std::vector<goal_reading> out;
    out.reserve(inputs.size());
    for (const tensor2& r : row_logits(inputs)) out.push_back(read(r));
    return out;
  }

  /// The goal's readings of input embeddings ([T, d] each); one model pass each.
  std::vector<goal_reading> evaluate_embeddings(std::span<const tensor2> inputs) requires EmbeddingModel<M> {
    std::vector<tensor2> rows(inputs.size());
    for_each_target_rows_on_embeddings(model_, inputs, goal_.target(), exec_, caller_,
                                       [&](std::size_t i, tensor2 r) { rows[i] = std::move(r); });
    evaluations_ += inputs.size();
    std::vector<goal_reading> out;
    out.reserve(inputs.size());
    for (const tensor2& r : rows) out.push_back(read(r));
    return out;
  }

  /// The margin and its gradient w.r.t. each of `inputs` (input embeddings); one forward + backward each.
  std::vector<value_and_gradient<tensor2>> margin_gradients(std::span<const tensor2> inputs) requires
      DifferentiableModel<M> {
    const counterfactual_goal goal = goal_;
    const token_id original = original_prediction_;
    const bool above = above_;
    const output_seed seed([goal](std::size_t n) { return goal.target().rows(n); },
                           [goal, original, above](const tensor2& z, tensor2& dz) {
                             if (goal.kind() == counterfactual_goal_kind::threshold) {
                               const double v = goal.target().value_and_gradient(z, dz);
                               if (!above) dz *= -1.0f;
                               return above ? v - goal.threshold_value() : goal.threshold_value() - v;
                             }
                             dz = xt::zeros<float>(z.shape());
                             const token_id other = runner_up(z.data(), z.shape(1), goal.labels(), original);
                             dz(0, static_cast<std::size_t>(original)) = 1.0f;
                             dz(0, static_cast<std::size_t>(other)) = -1.0f;
                             return static_cast<double>(z(0, static_cast<std::size_t>(original))) -
                                    static_cast<double>(z(0, static_cast<std::size_t>(other)));
                           });
    auto out = embedding_gradients(model_, inputs, seed, exec_, caller_);
    evaluations_ += inputs.size();
    return out;
  }

  /// The best label other than `original` of one row (the margin's subtrahend).
  static token_id runner_up(const float* z, std::size_t columns, std::span<const token_id> labels, token_id original) {
    token_id best = -1;
    auto consider = [&](token_id l) {
      if (l != original && (best < 0 || z[l] > z[best])) best = l;
    };
    if (labels.empty())
      for (std::size_t c = 0; c < columns; ++c) consider(static_cast<token_id>(c));
    else
      for (token_id l : labels) consider(l);
    return best;
  }

 private:
  goal_reading read(const tensor2& rows) const {
    goal_reading r;
    if (goal_.kind() == counterfactual_goal_kind::threshold) {
      r.value = goal_.target().value(rows);
      const double c = goal_.threshold_value();
      r.margin = above_ ? r.value - c : c - r.value;
      r.met = above_ ? r.value < c : r.value >= c;
      return r;
    }
    const std::size_t columns = rows.shape(1);
    r.prediction = goal_argmax(rows.data(), columns, goal_.labels());
    if (original_prediction_ >= 0) {
      const token_id other = runner_up(rows.data(), columns, goal_.labels(), original_prediction_);
      r.margin = static_cast<double>(rows.data()[original_prediction_]) - static_cast<double>(rows.data()[other]);
      r.met = r.prediction != original_prediction_;
    }
    r.value = r.margin;
    return r;
  }

  // The rows the goal reads, [P, V] per input, batched through logits_batch where the model has it.
  std::vector<tensor2> row_logits(std::span<const token_sequence> inputs) {
    std::vector<tensor2> out = target_row_logits(model_, inputs, goal_.target(), exec_, caller_);
    evaluations_ += inputs.size();
    return out;
  }

  const M& model_;
  counterfactual_goal goal_;
  execution_options exec_;
  std::string_view caller_;
  token_id original_prediction_ = -1;
  bool above_ = true;
  goal_reading original_;
  std::size_t evaluations_ = 0;
};

/// A copy of `tokens` with `edits` applied.
template <class = void>
inline token_sequence apply_edits(token_span tokens, std::span<const token_edit> edits) {
  token_sequence out(tokens.begin(), tokens.end());
  for (const auto& e : edits) out[e.position] = e.to;
  return out;
}

/// Drops items (edits or positions) while the criterion still holds without them, until no single
/// one can be dropped: each round evaluates every leave-one-out set in one batch (`evaluate(sets)`
/// gives a reading per set, `holds(reading)` says whether the criterion holds) and keeps the first
/// that holds; a round where none holds ends it. Returns the set and, when one was dropped, the
/// reading of the final set.
template <class Item, class Evaluate, class Holds>
std::pair<std::vector<Item>, std::optional<goal_reading>> minimize_set(std::vector<Item> set, Evaluate&& evaluate,
                                                                       Holds&& holds) {
  std::optional<goal_reading> last;
  while (!set.empty()) {
    std::vector<std::vector<Item>> trials;
    for (std::size_t j = 0; j < set.size(); ++j) {
      std::vector<Item> t = set;
      t.erase(t.begin() + static_cast<std::ptrdiff_t>(j));
      trials.push_back(std::move(t));
    }
    const std::vector<goal_reading> r = evaluate(trials);
    std::size_t j = 0;
    while (j < r.size() && !holds(r[j])) ++j;
    if (j == r.size()) break;
    set = std::move(trials[j]);
    last = r[j];
  }
  return {std::move(set), last};
}

/// Fails unless every position of `positions` is below `n`, naming `argument`.
template <class = void>
void require_positions(std::span<const std::size_t> positions, std::size_t n, std::string_view caller,
                       std::string_view argument) {
  for (std::size_t p : positions)
    require<shape_error>(p < n, "glassbox::{}: {} must be positions in [0, {}), got {}", caller, argument, n, p);
}

/// Fails unless every id of `ids` is a vocabulary id of a model with `vocab` ids, naming `argument`.
template <class = void>
void require_vocabulary_ids(std::span<const token_id> ids, std::size_t vocab, std::string_view caller,
                            std::string_view argument) {
  for (token_id id : ids)
    require<shape_error>(id >= 0 && static_cast<std::size_t>(id) < vocab,
                         "glassbox::{}: {} must be token ids in [0, {}), got {}", caller, argument, vocab, id);
}

/// Per token, whether it may be edited: not listed in `fixed`.
template <class = void>
inline std::vector<bool> editable_positions(std::size_t n, std::span<const std::size_t> fixed) {
  std::vector<bool> out(n, true);
  for (std::size_t p : fixed) out[p] = false;
  return out;
}

/// The goal's options as named options (kind, labels or target and threshold).
template <class = void>
void record_goal(std::vector<named_option>& out, const counterfactual_goal& g) {
  if (g.kind() == counterfactual_goal_kind::label_flip) {
    std::string labels;
    for (std::size_t i = 0; i < g.labels().size(); ++i) {
      if (i != 0) labels += ',';
      labels += std::to_string(g.labels()[i]);
    }
    out.push_back({"goal", std::string("label_flip")});
    out.push_back({"labels", labels});
    out.push_back({"position", static_cast<std::int64_t>(g.target().position())});
  } else {
    out.push_back({"goal", std::string("threshold")});
    out.push_back({"target", g.target().describe()});
    out.push_back({"threshold", g.threshold_value()});
  }
}

}  // namespace detail
}  // namespace glassbox

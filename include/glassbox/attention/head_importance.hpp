// glassbox: which heads a model needs for a task (Michel, Levy & Neubig 2019, "Are Sixteen Heads
// Really Better than One?", NeurIPS).
//
// Every head's output is multiplied by a mask variable xi[l, h] (1 = on, 0 = removed).
//   importance      I[l, h] = E_x | d f(x) / d xi[l, h] |  at xi = 1   (f = the target, e.g. log p(label);
//                   |d f| is the same for the loss -f), the first-order estimate of the change when
//                   the head is removed.
//   normalisation   per layer by the L2 norm, I[l, :] / ||I[l, :]||_2 (the paper, section 4.2: "crucial");
//                   optionally then globally to [0, 1] by (I - min) / (max - min), as the HF bertology script.
//   ablation        the actual change: mean f and accuracy with head (l, h) alone masked, minus the values
//                   with every head on.
//   pruning curve   mask the least important heads a few at a time and measure accuracy and mean f at each
//                   step (importance computed once, or recomputed at the current mask after every step).
// Accuracy: an example (tokens, label) is correct when, at the last output row, the label has the largest
// logit among the candidate tokens (e.g. positive / negative), or among the whole vocabulary.
//
// Cost: importance N forward + backward passes; ablation (L H + 1) N forward passes; the pruning curve
// (steps + 1) N forward passes, plus N backward passes per step when importance is recomputed.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "glassbox/attention/raw.hpp"
#include "glassbox/attention/result.hpp"
#include "glassbox/core/error.hpp"
#include "glassbox/core/execution.hpp"
#include "glassbox/core/model.hpp"
#include "glassbox/core/target.hpp"

namespace glassbox {

/// A classification example: the tokens and the label token the last output row should predict.
struct labelled_example {
  token_sequence tokens;  ///< the input, e.g. a review followed by the prompt marker
  token_id label = 0;     ///< the expected next token, e.g. `positive`
};

/// What is measured on a data set of labelled examples.
struct head_task_options {
  std::vector<token_id> candidates;  ///< accuracy compares the label against these (empty = whole vocabulary)
  std::function<glassbox::target(const labelled_example&)>
      make_target;              ///< f per example; default log p(label) at the last row
  execution_options execution;  ///< threads (when the model is thread-safe), progress, cancellation
};

/// Options of head importance.
struct head_importance_options : head_task_options {
  bool normalize_by_layer = true;   ///< divide each layer's scores by their L2 norm (Michel et al.)
  bool normalize_globally = false;  ///< then rescale all scores to [0, 1] by min and max (HF bertology)
  tensor2 mask;                     ///< [L, H] mask at which the gradient is taken; empty = all ones
};

/// Options of the ablation check.
struct head_ablation_options : head_task_options {};

/// Options of the pruning curve.
struct pruning_options : head_importance_options {
  std::size_t heads_per_step = 1;               ///< heads masked per step (Michel et al. used 10% of all heads)
  std::optional<std::size_t> max_heads_masked;  ///< stop after this many; default every head
  bool recompute_importance = false;            ///< recompute importance at the current mask after each step
};

namespace detail {

/// f for one example under the task options.
template <class = void>
inline target example_target(const head_task_options& o, const labelled_example& e) {
  return o.make_target ? o.make_target(e) : target::log_probability(e.label);
}

/// Checks a data set against a vocabulary of V tokens and the candidate list.
template <class = void>
inline void check_examples(std::span<const labelled_example> examples, const head_task_options& o, std::size_t vocab,
                           std::string_view caller) {
  require<shape_error>(!examples.empty(), "glassbox::{}: examples must not be empty", caller);
  for (token_id c : o.candidates)
    require<shape_error>(c >= 0 && static_cast<std::size_t>(c) < vocab,
                         "glassbox::{}: candidates must be token ids < {}, got {}", caller, vocab, c);
  for (std::size_t i = 0; i < examples.size(); ++i) {
    const auto& e = examples[i];
    require<shape_error>(!e.tokens.empty(), "glassbox::{}: example {} has no tokens", caller, i);
    require<shape_error>(e.label >= 0 && static_cast<std::size_t>(e.label) < vocab,
                         "glassbox::{}: example {} has label {}, outside a vocabulary of {}", caller, i, e.label,
                         vocab);
    require<shape_error>(
        o.candidates.empty() || std::find(o.candidates.begin(), o.candidates.end(), e.label) != o.candidates.end(),
        "glassbox::{}: example {} has label {}, which is not among the candidates", caller, i, e.label);
  }
}

/// The mask of `o`, or all ones of the model's [L, H]; `evaluations` counts a probe pass.
template <class M>
tensor2 initial_mask(const M& model, const tensor2& requested, std::span<const labelled_example> examples,
                     std::size_t& evaluations, std::string_view caller) {
  if (requested.size() != 0) {
    for (std::size_t k = 0; k < requested.size(); ++k)
      require(std::isfinite(requested.data()[k]), "glassbox::{}: mask must be finite, got {} at flat index {}", caller,
              requested.data()[k], k);
    return requested;
  }
  const tensor4 a = model_attentions(model, examples.front().tokens, caller);
  ++evaluations;
  tensor2 ones({a.shape(0), a.shape(1)});
  std::fill(ones.begin(), ones.end(), 1.0f);
  return ones;
}

/// Forwards the progress of one stage of a multi-stage computation to the user's callback,
/// offset by the units of the earlier stages.
template <class = void>
inline execution_options stage_execution(const execution_options& user, std::size_t offset, std::size_t total,
                                         std::string_view stage) {
  execution_options e = user;
  if (user.on_progress) {
    e.on_progress = [callback = user.on_progress, offset, total, stage](const progress& p) {
      return callback(progress{offset + p.done, total, stage});
    };
  }
  return e;
}

/// Mean target and accuracy of the data set under `mask`, one forward pass per example.
struct task_evaluation {
  double mean_target = 0;  ///< mean f
  double accuracy = 0;     ///< fraction of examples whose label wins among the candidates
};

template <class M>
task_evaluation evaluate_with_mask(const M& model, std::span<const labelled_example> examples, const tensor2& mask,
                                   const head_task_options& o, const execution_options& exec, std::string_view caller) {
  std::vector<double> values(examples.size());
  std::vector<std::uint8_t> correct(examples.size());
  run_batches(
      examples.size(), exec, worker_count(exec, is_thread_safe<M>()), caller, [&](std::size_t begin, std::size_t end) {
        for (std::size_t i = begin; i < end; ++i) {
          const auto& e = examples[i];
          const tensor2 logits = model.logits_with_head_mask(e.tokens, mask);
          require<model_error>(logits.shape(0) >= 1 && logits.shape(1) == model.vocab_size(),
                               "glassbox::{}: logits_with_head_mask returned [{}, {}] logits, expected [rows, {}]",
                               caller, logits.shape(0), logits.shape(1), model.vocab_size());
          check_finite(logits.data(), logits.size(), logits.shape(1), caller, i);
          values[i] = example_target(o, e).value_of(logits);
          const float* last = logits.data() + (logits.shape(0) - 1) * logits.shape(1);
          token_id best = -1;
          auto consider = [&](token_id c) {
            if (best < 0 || last[c] > last[best]) best = c;
          };
          if (o.candidates.empty()) {
            for (std::size_t c = 0; c < logits.shape(1); ++c) consider(static_cast<token_id>(c));
          } else {
            for (token_id c : o.candidates) consider(c);
          }
          correct[i] = best == e.label ? 1 : 0;
        }
      });
  task_evaluation r;
  for (std::size_t i = 0; i < examples.size(); ++i) {
    r.mean_target += values[i];
    r.accuracy += correct[i];
  }
  r.mean_target /= static_cast<double>(examples.size());
  r.accuracy /= static_cast<double>(examples.size());
  return r;
}

/// Raw importance at `mask`: mean |grad|, mean grad and mean f over the data set.
struct raw_importance {
  std::vector<double> abs_mean, mean, value_mean;  // value_mean has one entry
};

template <class M>
raw_importance gradient_importance(const M& model, std::span<const labelled_example> examples, const tensor2& mask,
                                   const head_task_options& o, const execution_options& exec, std::string_view caller) {
  const std::size_t n = mask.size();
  std::vector<double> grads(examples.size() * n), values(examples.size());
  run_batches(
      examples.size(), exec, worker_count(exec, is_thread_safe<M>()), caller, [&](std::size_t begin, std::size_t end) {
        for (std::size_t i = begin; i < end; ++i) {
          const auto g = model.head_mask_gradient(examples[i].tokens, mask, example_target(o, examples[i]));
          require<model_error>(g.gradient.shape() == mask.shape(),
                               "glassbox::{}: head_mask_gradient returned a [{}, {}] gradient for a [{}, {}] mask",
                               caller, g.gradient.shape(0), g.gradient.shape(1), mask.shape(0), mask.shape(1));
          require<model_error>(std::isfinite(g.value),
                               "glassbox::{}: the model returned a target value of {} at evaluation {}", caller,
                               g.value, i);
          check_finite(g.gradient.data(), g.gradient.size(), mask.shape(1), caller, i, "head-mask gradient");
          values[i] = g.value;
          for (std::size_t k = 0; k < n; ++k) grads[i * n + k] = g.gradient.data()[k];
        }
      });
  raw_importance r{std::vector<double>(n, 0.0), std::vector<double>(n, 0.0), {0.0}};
  for (std::size_t i = 0; i < examples.size(); ++i) {
    r.value_mean[0] += values[i];
    for (std::size_t k = 0; k < n; ++k) {
      r.abs_mean[k] += std::abs(grads[i * n + k]);
      r.mean[k] += grads[i * n + k];
    }
  }
  const auto count = static_cast<double>(examples.size());
  for (std::size_t k = 0; k < n; ++k) {
    r.abs_mean[k] /= count;
    r.mean[k] /= count;
  }
  r.value_mean[0] /= count;
  return r;
}

/// Michel et al.'s normalisations of raw importance [L, H] (flat, row-major).
template <class = void>
inline std::vector<double> normalize_importance(std::vector<double> s, std::size_t layers, std::size_t heads,
                                                bool by_layer, bool globally) {
  if (by_layer) {
    for (std::size_t l = 0; l < layers; ++l) {
      double norm = 0;
      for (std::size_t h = 0; h < heads; ++h) norm += s[l * heads + h] * s[l * heads + h];
      norm = std::sqrt(norm);
      if (norm > 0)
        for (std::size_t h = 0; h < heads; ++h) s[l * heads + h] /= norm;
    }
  }
  if (globally && !s.empty()) {
    const auto [lo, hi] = std::minmax_element(s.begin(), s.end());
    const double a = *lo, b = *hi;
    if (b > a)
      for (double& x : s) x = (x - a) / (b - a);
  }
  return s;
}

template <class = void>
inline tensor2 to_tensor2(const std::vector<double>& v, std::size_t rows, std::size_t cols) {
  tensor2 out({rows, cols});
  for (std::size_t k = 0; k < v.size(); ++k) out.data()[k] = static_cast<float>(v[k]);
  return out;
}

template <class = void>
inline void record_task_options(std::vector<named_option>& out, const head_task_options& o) {
  out.push_back({"target", std::string(o.make_target ? "custom" : "log-probability of the label at the last row")});
  out.push_back({"candidates", static_cast<std::int64_t>(o.candidates.size())});
}

}  // namespace detail

/// Head importance over a data set: E |d f / d mask[l, h]| with Michel et al.'s normalisation.
///
/// Example: `auto imp = glassbox::head_importance(model, examples); imp.importance(l, h);`
template <class M>
head_importance_result head_importance(const M& model, std::span<const labelled_example> examples,
                                       const head_importance_options& options = {}) {
  static_assert(check_attention_gradient_model<M>());
  detail::check_examples(examples, options, model.vocab_size(), "head_importance");
  head_importance_result r;
  const tensor2 mask = detail::initial_mask(model, options.mask, examples, r.model_evaluations, "head_importance");
  const std::size_t layers = mask.shape(0), heads = mask.shape(1);
  const auto raw = detail::gradient_importance(model, examples, mask, options, options.execution, "head_importance");
  r.layers = layers;
  r.heads = heads;
  r.examples = examples.size();
  r.raw_importance = detail::to_tensor2(raw.abs_mean, layers, heads);
  r.mean_gradient = detail::to_tensor2(raw.mean, layers, heads);
  r.importance = detail::to_tensor2(
      detail::normalize_importance(raw.abs_mean, layers, heads, options.normalize_by_layer, options.normalize_globally),
      layers, heads);
  r.mask = mask;
  r.mean_target = raw.value_mean[0];
  r.model_evaluations += examples.size();
  detail::record_task_options(r.options, options);
  r.options.push_back({"normalize_by_layer", options.normalize_by_layer});
  r.options.push_back({"normalize_globally", options.normalize_globally});
  return r;
}

/// The ablation check: mean f and accuracy with each head masked alone, minus their values with
/// every head on ((L H + 1) N forward passes).
template <class M>
head_ablation_result head_ablation(const M& model, std::span<const labelled_example> examples,
                                   const head_ablation_options& options = {}) {
  static_assert(check_attention_gradient_model<M>());
  detail::check_examples(examples, options, model.vocab_size(), "head_ablation");
  head_ablation_result r;
  tensor2 mask = detail::initial_mask(model, tensor2(), examples, r.model_evaluations, "head_ablation");
  const std::size_t layers = mask.shape(0), heads = mask.shape(1), n = layers * heads,
                    total = (n + 1) * examples.size();
  const auto base = detail::evaluate_with_mask(model, examples, mask, options,
                                               detail::stage_execution(options.execution, 0, total, "head_ablation"),
                                               "head_ablation");
  r.layers = layers;
  r.heads = heads;
  r.examples = examples.size();
  r.base_mean_target = base.mean_target;
  r.base_accuracy = base.accuracy;
  r.target_change = tensor2({layers, heads});
  r.accuracy_change = tensor2({layers, heads});
  for (std::size_t x = 0; x < n; ++x) {
    mask.data()[x] = 0.0f;
    const auto e = detail::evaluate_with_mask(
        model, examples, mask, options,
        detail::stage_execution(options.execution, (x + 1) * examples.size(), total, "head_ablation"), "head_ablation");
    mask.data()[x] = 1.0f;
    r.target_change.data()[x] = static_cast<float>(e.mean_target - base.mean_target);
    r.accuracy_change.data()[x] = static_cast<float>(e.accuracy - base.accuracy);
  }
  r.model_evaluations += total;
  detail::record_task_options(r.options, options);
  return r;
}

/// The pruning curve: accuracy and mean f as the least important heads are masked,
/// options.heads_per_step at a time.
template <class M>
pruning_curve_result head_pruning_curve(const M& model, std::span<const labelled_example> examples,
                                        const pruning_options& options = {}) {
  static_assert(check_attention_gradient_model<M>());
  detail::check_examples(examples, options, model.vocab_size(), "head_pruning_curve");
  detail::require(options.heads_per_step >= 1, "glassbox::head_pruning_curve: heads_per_step must be >= 1, got 0");
  detail::require(options.mask.size() == 0,
                  "glassbox::head_pruning_curve: mask must be empty (the curve starts with every head on), got {} x {}",
                  options.mask.shape(0), options.mask.shape(1));
  pruning_curve_result r;
  tensor2 mask = detail::initial_mask(model, tensor2(), examples, r.model_evaluations, "head_pruning_curve");
  const std::size_t layers = mask.shape(0), heads = mask.shape(1), n = layers * heads;
  const std::size_t max_masked = options.max_heads_masked.value_or(n);
  detail::require(max_masked <= n, "glassbox::head_pruning_curve: max_heads_masked must be <= {}, got {}", n,
                  max_masked);
  const std::size_t steps = (max_masked + options.heads_per_step - 1) / options.heads_per_step;
  const std::size_t importance_passes = options.recompute_importance ? std::max<std::size_t>(steps, 1) : 1;
  const std::size_t total = (steps + 1 + importance_passes) * examples.size();
  std::size_t done = 0;
  auto stage = [&](std::string_view name) {
    auto e = detail::stage_execution(options.execution, done, total, name);
    done += examples.size();
    return e;
  };
  r.layers = layers;
  r.heads = heads;
  r.examples = examples.size();
  r.recompute_importance = options.recompute_importance;
  auto record = [&](std::size_t masked) {
    const auto e =
        detail::evaluate_with_mask(model, examples, mask, options, stage("head_pruning_curve"), "head_pruning_curve");
    r.heads_masked.push_back(masked);
    r.accuracy.push_back(e.accuracy);
    r.mean_target.push_back(e.mean_target);
  };
  auto importance = [&] {
    const auto raw =
        detail::gradient_importance(model, examples, mask, options, stage("head_pruning_curve"), "head_pruning_curve");
    return detail::normalize_importance(raw.abs_mean, layers, heads, options.normalize_by_layer,
                                        options.normalize_globally);
  };
  record(0);
  std::vector<double> scores = importance();
  std::vector<bool> masked(n, false);
  std::size_t count = 0;
  while (count < max_masked) {
    if (options.recompute_importance && count > 0) scores = importance();
    const std::size_t k = std::min(options.heads_per_step, max_masked - count);
    // The k least important heads still on; ties go to the lower (layer, head).
    std::vector<std::size_t> on;
    for (std::size_t x = 0; x < n; ++x)
      if (!masked[x]) on.push_back(x);
    std::stable_sort(on.begin(), on.end(), [&](std::size_t a, std::size_t b) { return scores[a] < scores[b]; });
    for (std::size_t q = 0; q < k; ++q) {
      masked[on[q]] = true;
      mask.data()[on[q]] = 0.0f;
      r.pruning_order.push_back({on[q] / heads, on[q] % heads});
    }
    count += k;
    record(count);
  }
  r.model_evaluations += (steps + 1 + importance_passes) * examples.size();
  detail::record_task_options(r.options, options);
  r.options.push_back({"heads_per_step", static_cast<std::int64_t>(options.heads_per_step)});
  r.options.push_back({"max_heads_masked", static_cast<std::int64_t>(max_masked)});
  r.options.push_back({"recompute_importance", options.recompute_importance});
  r.options.push_back({"normalize_by_layer", options.normalize_by_layer});
  r.options.push_back({"normalize_globally", options.normalize_globally});
  return r;
}

}  // namespace glassbox

// glassbox: probing a model's layers for a property. Per layer: a probe trained on the training
// rows (L2 logistic regression for classes, ridge regression for real values, or an MLP), its
// accuracy and macro-F1 (R^2) on train and test, the control task and selectivity of Hewitt &
// Liang (2019), and optionally the online codelength of Voita & Titov (2020) for the task and its
// control. Rows are split by the set's split, or a seeded 80/10/10 split grouped by input sequence.
// docs/probing.md has the method, the formulas and the defaults.
#pragma once

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <numeric>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "glassbox/core/error.hpp"
#include "glassbox/core/execution.hpp"
#include "glassbox/core/random.hpp"
#include "glassbox/core/result.hpp"
#include "glassbox/core/types.hpp"
#include "glassbox/probing/activations.hpp"
#include "glassbox/probing/logistic_regression.hpp"
#include "glassbox/probing/mdl.hpp"
#include "glassbox/probing/mlp.hpp"

namespace glassbox {

/// The probe family.
enum class probe_kind {
  linear,  ///< L2 logistic regression for classes, ridge regression for real values
  mlp,     ///< one-hidden-layer ReLU network (classes only; see mlp_probe_warning)
};

/// The stable name of a probe kind ("linear", "mlp").
constexpr std::string_view to_string(probe_kind k) { return k == probe_kind::linear ? "linear" : "mlp"; }

/// Options of probe_layers. Every field is one option of `glassbox probe`.
struct probe_options {
  std::vector<std::size_t> layers{};       ///< hidden-state indices to probe (from the set); empty = all of the set's
  probe_kind probe = probe_kind::linear;   ///< the probe family
  logistic_regression_options logistic{};  ///< the logistic probe (C, tol, max_iterations, ...)
  ridge_options ridge{};                   ///< the ridge probe (alpha)
  mlp_probe_options mlp{};                 ///< the MLP probe (its seed is derived from `seed`)
  bool control = true;  ///< train on the control task too and report selectivity (not when every row has one word id)
  bool mdl = false;                        ///< online codelength of the task (and of the control task with `control`)
  std::vector<double> mdl_fractions = mdl_paper_fractions();  ///< block ends of the online code
  std::uint64_t seed = 0;         ///< the split, the control labels, the MDL order and the MLP
  double train_fraction = 0.8;    ///< of the sequences, when the set has no split
  double dev_fraction = 0.1;      ///< of the sequences, when the set has no split (test: the rest)
  execution_options execution{};  ///< layers run in parallel on `threads`; progress in layers; cancellation
};

/// The results of one layer. Fields that do not apply (accuracy for real labels, R^2 for classes,
/// control and MDL fields when not asked for) are empty.
struct layer_probe_result {
  std::size_t layer = 0;                 ///< hidden-state index (0 = embeddings output)
  std::optional<double> train_accuracy;  ///< classes: accuracy on the training rows
  std::optional<double> dev_accuracy;    ///< classes: accuracy on the dev rows (if any)
  std::optional<double> test_accuracy;   ///< classes: accuracy on the test rows
  std::optional<double> macro_f1;  ///< classes: macro-F1 on the test rows (scikit-learn's f1_score average="macro")
  std::optional<double> train_r2;  ///< real values: R^2 on the training rows
  std::optional<double> test_r2;   ///< real values: R^2 on the test rows
  std::optional<double> control_accuracy;  ///< classes, with control: test accuracy of the probe on the control task
  std::optional<double> control_r2;        ///< real values, with control: test R^2 on the control task
  std::optional<double> selectivity;       ///< with control: test accuracy (R^2) minus control accuracy (R^2)
  std::optional<double> codelength_bits;   ///< with mdl: online codelength of the task's training labels
  std::optional<double> compression;       ///< with mdl: uniform codelength over online codelength
  std::optional<double> control_codelength_bits;  ///< with mdl and control: the control task's codelength
  std::optional<double> control_compression;      ///< with mdl and control: the control task's compression
  std::optional<mdl_result> mdl;                  ///< with mdl: the task's online code, block by block
  std::optional<mdl_result> control_mdl;          ///< with mdl and control: the control task's online code
  std::size_t iterations = 0;  ///< the task probe's solver iterations (logistic) or epochs (MLP); 0 for ridge
  bool converged = true;       ///< whether the task probe's solver converged (always for ridge and MLP)
  linear_weights weights;      ///< the task probe (linear probes), scikit-learn's coef_ / intercept_ layout
};

/// Probing results over layers.
struct probe_result {
  std::string property;                                     ///< what was probed (from the set)
  label_kind kind = label_kind::classes;                    ///< classes or real values
  std::string probe;                                        ///< "logistic", "ridge" or "mlp"
  std::vector<std::string> class_names;                     ///< names of classes 0 .. K - 1 (may be empty)
  std::size_t classes = 0;                                  ///< K (0 for real values)
  std::size_t train_rows = 0, dev_rows = 0, test_rows = 0;  ///< the split
  bool split_from_set = false;              ///< the set's own split was used (else a grouped seeded split)
  std::optional<double> majority_accuracy;  ///< classes: test accuracy of always answering the commonest training class
  std::vector<layer_probe_result> layers;   ///< one per probed layer, in the order asked
  std::vector<std::string> warnings;        ///< non-converged solvers, the MLP warning; the CLI prints them
  std::vector<named_option> options;        ///< the options it ran with
};

/// The fraction of rows whose prediction equals the truth (0 for no rows).
template <class = void>
inline double accuracy_score(std::span<const std::int32_t> truth, std::span<const std::int32_t> predicted) {
  detail::require<shape_error>(truth.size() == predicted.size(),
                               "glassbox::accuracy_score: predicted must hold {} entries, got {}", truth.size(),
                               predicted.size());
  if (truth.empty()) return 0.0;
  std::size_t right = 0;
  for (std::size_t i = 0; i < truth.size(); ++i) right += truth[i] == predicted[i];
  return static_cast<double>(right) / static_cast<double>(truth.size());
}

/// Macro-averaged F1 as scikit-learn's f1_score(average="macro"): the mean over the classes that
/// occur in the truth or the predictions of 2 TP / (2 TP + FP + FN), 0 where that is 0 / 0.
template <class = void>
inline double macro_f1_score(std::span<const std::int32_t> truth, std::span<const std::int32_t> predicted) {
  detail::require<shape_error>(truth.size() == predicted.size(),
                               "glassbox::macro_f1_score: predicted must hold {} entries, got {}", truth.size(),
                               predicted.size());
  std::map<std::int32_t, std::array<std::size_t, 3>> counts;  // tp, fp, fn
  for (std::size_t i = 0; i < truth.size(); ++i) {
    if (truth[i] == predicted[i]) {
      ++counts[truth[i]][0];
    } else {
      ++counts[predicted[i]][1];
      ++counts[truth[i]][2];
    }
  }
  if (counts.empty()) return 0.0;
  double sum = 0;
  for (const auto& [label, c] : counts) {
    const double denominator = 2.0 * static_cast<double>(c[0]) + static_cast<double>(c[1] + c[2]);
    sum += denominator > 0 ? 2.0 * static_cast<double>(c[0]) / denominator : 0.0;
  }
  return sum / static_cast<double>(counts.size());
}

/// The coefficient of determination as scikit-learn's r2_score: 1 - SS_res / SS_tot; for a
/// constant truth, 1 if the predictions are exact and 0 otherwise.
template <class = void>
inline double r2_score(std::span<const double> truth, std::span<const double> predicted) {
  detail::require<shape_error>(truth.size() == predicted.size(),
                               "glassbox::r2_score: predicted must hold {} entries, got {}", truth.size(),
                               predicted.size());
  if (truth.empty()) return 0.0;
  double mean = 0;
  for (const double v : truth) mean += v;
  mean /= static_cast<double>(truth.size());
  double res = 0, tot = 0;
  for (std::size_t i = 0; i < truth.size(); ++i) {
    res += (truth[i] - predicted[i]) * (truth[i] - predicted[i]);
    tot += (truth[i] - mean) * (truth[i] - mean);
  }
  if (tot == 0) return res == 0 ? 1.0 : 0.0;
  return 1.0 - res / tot;
}

/// A seeded split of rows into train (0), dev (1) and test (2), grouped: rows with one group id
/// (e.g. the tokens of one review) land in the same part. The distinct groups are shuffled with
/// rng(seed) and cut at round(train_fraction G) and round((train_fraction + dev_fraction) G).
/// Empty `groups`: every row is its own group.
template <class = void>
inline std::vector<std::int32_t> grouped_split(std::span<const std::int32_t> groups, std::size_t rows,
                                               std::uint64_t seed, double train_fraction = 0.8,
                                               double dev_fraction = 0.1) {
  constexpr std::string_view who = "grouped_split";
  detail::require(train_fraction > 0 && dev_fraction >= 0 && train_fraction + dev_fraction < 1,
                  "glassbox::{}: fractions must satisfy train > 0, dev >= 0, train + dev < 1, got train {} and dev {}",
                  who, train_fraction, dev_fraction);
  detail::require<shape_error>(groups.empty() || groups.size() == rows,
                               "glassbox::{}: groups must be empty or hold {} entries, got {}", who, rows,
                               groups.size());
  std::vector<std::int32_t> ids;
  if (groups.empty()) {
    ids.resize(rows);
    std::iota(ids.begin(), ids.end(), 0);
  } else {
    ids.assign(groups.begin(), groups.end());
    std::sort(ids.begin(), ids.end());
    ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  }
  rng gen(seed);
  gen.shuffle(ids.begin(), ids.end());
  const auto g = static_cast<double>(ids.size());
  const auto train_end = static_cast<std::size_t>(std::llround(train_fraction * g));
  const auto dev_end = static_cast<std::size_t>(std::llround((train_fraction + dev_fraction) * g));
  std::map<std::int32_t, std::int32_t> part;
  for (std::size_t i = 0; i < ids.size(); ++i) part[ids[i]] = i < train_end ? 0 : i < dev_end ? 1 : 2;
  std::vector<std::int32_t> out(rows);
  for (std::size_t r = 0; r < rows; ++r) out[r] = part[groups.empty() ? static_cast<std::int32_t>(r) : groups[r]];
  return out;
}

/// The control task of Hewitt & Liang (2019): every word type (distinct word id, in ascending
/// order) gets one fixed label drawn with rng(seed) from the empirical distribution of the labels
/// of the training rows (split == 0): the label of a uniformly drawn training row. Each row then
/// carries its word type's label. Works for classes and real values alike.
template <class = void>
inline std::vector<double> control_task_labels(std::span<const token_id> word_ids, std::span<const double> labels,
                                               std::span<const std::int32_t> split, std::uint64_t seed) {
  constexpr std::string_view who = "control_task_labels";
  detail::require<shape_error>(labels.size() == word_ids.size() && split.size() == word_ids.size(),
                               "glassbox::{}: labels and split must hold {} entries (one per row), got {} and {}", who,
                               word_ids.size(), labels.size(), split.size());
  std::vector<double> pool;
  for (std::size_t i = 0; i < labels.size(); ++i)
    if (split[i] == 0) pool.push_back(labels[i]);
  detail::require(!pool.empty(), "glassbox::{}: split must have at least one training row (0), got none", who);
  std::vector<token_id> types(word_ids.begin(), word_ids.end());
  std::sort(types.begin(), types.end());
  types.erase(std::unique(types.begin(), types.end()), types.end());
  rng gen(seed);
  std::map<token_id, double> assigned;
  for (const auto t : types) assigned[t] = pool[gen.below(pool.size())];
  std::vector<double> out(word_ids.size());
  for (std::size_t i = 0; i < word_ids.size(); ++i) out[i] = assigned[word_ids[i]];
  return out;
}

namespace detail {

/// The rows of one part of the split, as index lists.
struct probe_split {
  std::vector<std::size_t> train, dev, test;  ///< train in the (seeded) transmission order of the online code
};

/// Copies rows `index` of x into a new [index.size(), d] tensor.
template <class = void>
inline tensor2 gather_rows(const tensor2& x, std::span<const std::size_t> index) {
  const std::size_t d = x.shape(1);
  tensor2 out = tensor2::from_shape({index.size(), d});
  for (std::size_t i = 0; i < index.size(); ++i) std::copy_n(x.data() + index[i] * d, d, out.data() + i * d);
  return out;
}

template <class T>
std::vector<T> gather_values(std::span<const double> values, std::span<const std::size_t> index) {
  std::vector<T> out(index.size());
  for (std::size_t i = 0; i < index.size(); ++i) out[i] = static_cast<T>(values[index[i]]);
  return out;
}

/// One probe fit and its scores on the parts.
struct probe_fit_scores {
  std::optional<double> train, dev, test, f1;
  std::size_t iterations = 0;
  bool converged = true;
  double gradient_max = 0;
  linear_weights weights;
};

/// Trains the probe family on train and scores it on the parts; labels are `values` per row.
template <class T = void>
probe_fit_scores fit_and_score(const tensor2& xtrain, const tensor2& xdev, const tensor2& xtest,
                               std::span<const double> values, const probe_split& split, label_kind kind,
                               std::size_t classes, const probe_options& o, std::uint64_t mlp_seed) {
  probe_fit_scores s;
  if (kind == label_kind::real) {
    const auto ytrain = gather_values<double>(values, split.train);
    s.weights = fit_ridge(rows_of(xtrain), ytrain, o.ridge);
    const auto score = [&](const tensor2& x, std::span<const std::size_t> index) -> std::optional<double> {
      if (index.empty()) return std::nullopt;
      const auto predicted = decision_scores<dependent_t<T, double>>(s.weights, rows_of(x));  // see dependent_t
      const auto truth = gather_values<double>(values, index);
      return r2_score(truth, std::span<const double>(predicted.data(), static_cast<std::size_t>(predicted.rows())));
    };
    s.train = score(xtrain, split.train);
    s.dev = score(xdev, split.dev);
    s.test = score(xtest, split.test);
    return s;
  }
  const auto ytrain = gather_values<std::int32_t>(values, split.train);
  const auto ydev = gather_values<std::int32_t>(values, split.dev);
  std::function<std::vector<std::int32_t>(const tensor2&)> predict;
  mlp_probe mlp;
  if (o.probe == probe_kind::linear) {
    const logistic_regression_result fit = fit_logistic(rows_of(xtrain), ytrain, classes, o.logistic);
    s.weights = fit.model;
    s.iterations = fit.iterations;
    s.converged = fit.converged;
    s.gradient_max = fit.gradient_max;
    predict = [&](const tensor2& x) { return predict_rows(s.weights, rows_of(x)); };
  } else {
    mlp_probe_options mo = o.mlp;
    mo.seed = mlp_seed;
    mlp = fit_mlp(rows_of(xtrain), ytrain, classes, mo, rows_of(xdev), ydev);
    s.iterations = mlp.epochs;
    predict = [&](const tensor2& x) { return mlp_predict_rows(mlp, rows_of(x)); };
  }
  const auto score = [&](const tensor2& x, std::span<const std::size_t> index, bool f1) -> std::optional<double> {
    if (index.empty()) return std::nullopt;
    const auto predicted = predict(x);
    const auto truth = gather_values<std::int32_t>(values, index);
    if (f1) s.f1 = macro_f1_score(truth, predicted);
    return accuracy_score(truth, predicted);
  };
  s.train = score(xtrain, split.train, false);
  s.dev = score(xdev, split.dev, false);
  s.test = score(xtest, split.test, true);
  return s;
}

}  // namespace detail

/// Probes every layer of options.layers (default all of the set's) for the set's labels, loading
/// each layer's activations [N, d] with load(layer) (e.g. io::activation_file_reader::read_layer),
/// so that no more than one layer per worker thread is in memory. `header` is the set without (or
/// with) activations: labels, word ids, sequence ids, split. Per layer: the probe is trained on
/// the training rows and scored on train, dev and test; with `control`, the same probe family is
/// trained on the control task (control_task_labels) and selectivity = task minus control test
/// accuracy (R^2); with `mdl`, the online codelength of the training labels (classes only) for the
/// task and the control task, with the logistic probe. Layers run in parallel; the result does not
/// depend on the thread count. Non-converged solvers and the MLP caveat are listed in `warnings`.
template <class LoadLayer>
requires std::invocable<LoadLayer&, std::size_t> probe_result probe_layers(const activation_set& header,
                                                                           LoadLayer&& load,
                                                                           const probe_options& options = {}) {
  constexpr std::string_view who = "probe_layers";
  const std::size_t n = header.rows();
  detail::require<shape_error>(n >= 2, "glassbox::{}: the set must have at least 2 rows, got {}", who, n);
  detail::require<shape_error>(header.word_ids.size() == n, "glassbox::{}: word_ids must hold {} entries, got {}", who,
                               n, header.word_ids.size());
  detail::require<shape_error>(header.sequence_ids.empty() || header.sequence_ids.size() == n,
                               "glassbox::{}: sequence_ids must be empty or hold {} entries, got {}", who, n,
                               header.sequence_ids.size());
  detail::require<shape_error>(header.split.empty() || header.split.size() == n,
                               "glassbox::{}: split must be empty or hold {} entries, got {}", who, n,
                               header.split.size());
  const bool classes_kind = header.kind == label_kind::classes;
  detail::require(classes_kind || options.probe == probe_kind::linear,
                  "glassbox::{}: probe must be linear for real-valued labels, got {}", who, to_string(options.probe));
  detail::require(classes_kind || !options.mdl,
                  "glassbox::{}: mdl needs class labels (the online code sends classes), got real-valued labels", who);
  if (options.probe == probe_kind::linear && classes_kind) detail::check_logistic_options(options.logistic, who);
  if (options.probe == probe_kind::mlp) detail::check_mlp_options(options.mlp, who);
  if (options.mdl) detail::check_mdl_options({options.mdl_fractions, options.logistic}, who);
  detail::require(options.ridge.alpha >= 0 && std::isfinite(options.ridge.alpha),
                  "glassbox::{}: ridge.alpha must be >= 0 and finite, got {}", who, options.ridge.alpha);
  std::size_t classes = 0;
  if (classes_kind) {
    for (std::size_t i = 0; i < n; ++i)
      detail::require(header.labels[i] >= 0 && header.labels[i] == std::floor(header.labels[i]),
                      "glassbox::{}: class labels must be integers >= 0, got {} at row {}", who, header.labels[i], i);
    classes = std::max<std::size_t>(header.class_count(), 2);
  } else {
    for (std::size_t i = 0; i < n; ++i)
      detail::require(std::isfinite(header.labels[i]), "glassbox::{}: labels must be finite, got {} at row {}", who,
                      header.labels[i], i);
  }
  std::vector<std::size_t> layers = options.layers.empty() ? header.layers : options.layers;
  detail::require(!layers.empty(), "glassbox::{}: the set must have at least one layer, got none", who);
  for (const auto k : layers)
    detail::require<shape_error>(header.layer_slot(k).has_value(),
                                 "glassbox::{}: layers must be layers of the set ({}), got {}", who,
                                 fmt::join(header.layers, ", "), k);

  // The split.
  probe_result result;
  result.split_from_set = !header.split.empty();
  const std::vector<std::int32_t> parts = result.split_from_set
                                              ? header.split
                                              : grouped_split(header.sequence_ids, n, rng(options.seed).fork(0).next(),
                                                              options.train_fraction, options.dev_fraction);
  detail::probe_split split;
  for (std::size_t i = 0; i < n; ++i) {
    detail::require(parts[i] >= 0 && parts[i] <= 2, "glassbox::{}: split must be 0, 1 or 2, got {} at row {}", who,
                    parts[i], i);
    (parts[i] == 0 ? split.train : parts[i] == 1 ? split.dev : split.test).push_back(i);
  }
  detail::require(!split.train.empty() && !split.test.empty(),
                  "glassbox::{}: the split must have training and test rows, got {} train, {} dev and {} test rows "
                  "(too few sequences?)",
                  who, split.train.size(), split.dev.size(), split.test.size());
  rng(options.seed).fork(2).shuffle(split.train.begin(), split.train.end());  // the online code's order

  // The control task needs several word types: with one (e.g. every row is a fixed marker under
  // last pooling) it is a constant label, and its accuracy says nothing about the probe.
  const bool several_types =
      std::any_of(header.word_ids.begin(), header.word_ids.end(), [&](token_id w) { return w != header.word_ids[0]; });
  const bool control_task = options.control && several_types;
  std::vector<double> control;
  if (control_task)
    control = control_task_labels(header.word_ids, header.labels, parts, rng(options.seed).fork(1).next());

  result.property = header.property;
  result.kind = header.kind;
  result.probe = !classes_kind ? "ridge" : options.probe == probe_kind::linear ? "logistic" : "mlp";
  result.class_names = header.class_names;
  result.classes = classes;
  result.train_rows = split.train.size();
  result.dev_rows = split.dev.size();
  result.test_rows = split.test.size();
  if (classes_kind) {
    std::vector<std::size_t> counts(classes, 0);
    for (const auto i : split.train) ++counts[static_cast<std::size_t>(header.labels[i])];
    const auto top = static_cast<double>(std::max_element(counts.begin(), counts.end()) - counts.begin());
    std::size_t right = 0;
    for (const auto i : split.test) right += header.labels[i] == top;
    result.majority_accuracy = static_cast<double>(right) / static_cast<double>(split.test.size());
  }

  result.layers.resize(layers.size());
  std::vector<std::vector<std::string>> layer_warnings(layers.size());
  execution_options exec = options.execution;
  exec.batch_size = 1;
  const std::uint64_t mlp_seed = rng(options.seed).fork(3).next();
  detail::run_batches(layers.size(), exec, detail::worker_count(exec, true), who, [&](std::size_t b, std::size_t e) {
    for (std::size_t li = b; li < e; ++li) {
      const std::size_t layer = layers[li];
      decltype(auto) x = load(layer);  // a reference when the loader returns one (no copy)
      detail::require<shape_error>(x.shape(0) == n && x.shape(1) >= 1,
                                   "glassbox::{}: layer {} must have {} rows, got [{}, {}]", who, layer, n, x.shape(0),
                                   x.shape(1));
      detail::require_finite_rows(detail::rows_of(x), who, fmt::format("the activations of layer {}", layer));
      const tensor2 xtrain = detail::gather_rows(x, split.train);
      const tensor2 xdev = detail::gather_rows(x, split.dev);
      const tensor2 xtest = detail::gather_rows(x, split.test);
      layer_probe_result& r = result.layers[li];
      r.layer = layer;
      auto& warn = layer_warnings[li];
      const detail::probe_fit_scores task =
          detail::fit_and_score(xtrain, xdev, xtest, header.labels, split, header.kind, classes, options, mlp_seed);
      r.iterations = task.iterations;
      r.converged = task.converged;
      r.weights = task.weights;
      if (!task.converged)
        warn.push_back(
            fmt::format("layer {}: the logistic probe did not converge in {} iterations (max |gradient| {:.3g} "
                        "> tol {:.3g}); raise logistic.max_iterations",
                        layer, task.iterations, task.gradient_max, options.logistic.tol));
      if (classes_kind) {
        r.train_accuracy = task.train;
        r.dev_accuracy = task.dev;
        r.test_accuracy = task.test;
        r.macro_f1 = task.f1;
      } else {
        r.train_r2 = task.train;
        r.test_r2 = task.test;
      }
      if (control_task) {
        const detail::probe_fit_scores c =
            detail::fit_and_score(xtrain, xdev, xtest, control, split, header.kind, classes, options, mlp_seed + 1);
        if (!c.converged)
          warn.push_back(fmt::format("layer {}: the control task's logistic probe did not converge in {} iterations",
                                     layer, c.iterations));
        (classes_kind ? r.control_accuracy : r.control_r2) = c.test;
        r.selectivity = *task.test - *c.test;
      }
      if (options.mdl) {
        const mdl_options mo{options.mdl_fractions, options.logistic};
        const auto train_labels = detail::gather_values<std::int32_t>(header.labels, split.train);
        r.mdl = detail::online_code(detail::rows_of(xtrain), train_labels, classes, mo);
        r.codelength_bits = r.mdl->codelength_bits;
        r.compression = r.mdl->compression;
        if (!r.mdl->converged)
          warn.push_back(fmt::format("layer {}: a probe of the online code did not converge", layer));
        if (control_task) {
          const auto control_labels = detail::gather_values<std::int32_t>(control, split.train);
          r.control_mdl = detail::online_code(detail::rows_of(xtrain), control_labels, classes, mo);
          r.control_codelength_bits = r.control_mdl->codelength_bits;
          r.control_compression = r.control_mdl->compression;
          if (!r.control_mdl->converged)
            warn.push_back(fmt::format("layer {}: a probe of the control task's online code did not converge", layer));
        }
      }
    }
  });
  if (options.control && !several_types)
    result.warnings.push_back(fmt::format(
        "no control task: every row has the same word id ({}), so the control task would be a constant label (e.g. "
        "last pooling at a fixed marker); control accuracy and selectivity are not reported",
        header.word_ids[0]));
  for (auto& w : layer_warnings) result.warnings.insert(result.warnings.end(), w.begin(), w.end());
  if (options.probe == probe_kind::mlp) result.warnings.emplace_back(mlp_probe_warning);

  auto& opt = result.options;
  std::string layer_list;
  for (std::size_t i = 0; i < layers.size(); ++i) {
    if (i != 0) layer_list += ',';
    layer_list += std::to_string(layers[i]);
  }
  opt.push_back({"layers", layer_list});
  opt.push_back({"probe", std::string(to_string(options.probe))});
  if (classes_kind && options.probe == probe_kind::linear) {
    opt.push_back({"C", options.logistic.C});
    opt.push_back({"tol", options.logistic.tol});
    opt.push_back({"max_iterations", static_cast<std::int64_t>(options.logistic.max_iterations)});
  }
  if (!classes_kind) opt.push_back({"alpha", options.ridge.alpha});
  if (options.probe == probe_kind::mlp) {
    opt.push_back({"hidden", static_cast<std::int64_t>(options.mlp.hidden)});
    opt.push_back({"epochs", static_cast<std::int64_t>(options.mlp.epochs)});
    opt.push_back({"learning_rate", options.mlp.learning_rate});
    opt.push_back({"weight_decay", options.mlp.weight_decay});
  }
  opt.push_back({"control", options.control});
  opt.push_back({"mdl", options.mdl});
  opt.push_back({"seed", static_cast<std::int64_t>(options.seed)});
  if (!result.split_from_set) {
    opt.push_back({"train_fraction", options.train_fraction});
    opt.push_back({"dev_fraction", options.dev_fraction});
  }
  return result;
}

/// probe_layers on a set whose activations are in memory.
///
/// Example:
///   auto set = glassbox::collect_activations(model, reviews, labels);
///   auto r = glassbox::probe_layers(set, {.mdl = true, .seed = 1});
///   for (const auto& l : r.layers) fmt::print("{} {} {}\n", l.layer, *l.test_accuracy, *l.selectivity);
template <class = void>
probe_result probe_layers(const activation_set& set, const probe_options& options = {}) {
  detail::require<shape_error>(set.activations.size() == set.layers.size(),
                               "glassbox::probe_layers: the set must hold one activation matrix per layer ({}), got {} "
                               "(read streamed sets with a loader)",
                               set.layers.size(), set.activations.size());
  return probe_layers(
      set, [&set](std::size_t layer) -> const tensor2& { return set.activations[*set.layer_slot(layer)]; }, options);
}

}  // namespace glassbox

// With GLASSBOX_EXTERN_PROBING defined, probe_layers on an in-memory set and one probe fit compile
// in one other translation unit of the program (src/probing.cpp, CMake's object library
// glassbox_probing); docs/building.md, "Compile-time advice".
#ifdef GLASSBOX_EXTERN_PROBING
namespace glassbox {
namespace detail {
extern template probe_fit_scores fit_and_score<void>(const tensor2&, const tensor2&, const tensor2&,
                                                     std::span<const double>, const probe_split&, label_kind,
                                                     std::size_t, const probe_options&, std::uint64_t);
}  // namespace detail
extern template probe_result probe_layers<void>(const activation_set&, const probe_options&);
}  // namespace glassbox
#endif

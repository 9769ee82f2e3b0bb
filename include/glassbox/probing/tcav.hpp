// glassbox: testing with concept activation vectors (TCAV; Kim et al. 2018, "Interpretability
// Beyond Feature Attribution: Quantitative Testing with Concept Activation Vectors", ICML).
// Does the model's output use a concept? A CAV is the normal of a linear classifier separating a
// concept's examples from random examples at a layer; the conceptual sensitivity of an input is
// the directional derivative of a target along the CAV (through InterventionModel::hidden_gradient);
// the TCAV score is the fraction of inputs with positive sensitivity. Significance as in the paper:
// CAVs against many random sets, a two-sided t-test against random-vs-random CAVs, Bonferroni over
// concepts and layers; insignificant concepts are reported as such, without a score.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <numeric>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include "glassbox/core/error.hpp"
#include "glassbox/core/execution.hpp"
#include "glassbox/core/model.hpp"
#include "glassbox/core/random.hpp"
#include "glassbox/core/result.hpp"
#include "glassbox/core/target.hpp"
#include "glassbox/core/types.hpp"
#include "glassbox/probing/activations.hpp"
#include "glassbox/probing/logistic_regression.hpp"

namespace glassbox {

/// A concept: a name and example inputs that show it.
struct tcav_concept {
  std::string name;                      ///< e.g. "negated"
  std::vector<token_sequence> examples;  ///< inputs that show the concept
};

/// Options of TCAV.
struct tcav_options {
  std::vector<std::size_t> layers{};  ///< hidden-state indices to test (at least one; 0 = embeddings output)
  activation_pooling pooling = activation_pooling::last;  ///< the position read: last token, or the mean (not token)
  std::size_t random_runs = 20;     ///< random sets: one concept CAV and one random CAV per set (the paper's repeats)
  std::size_t random_set_size = 0;  ///< examples per random set; 0 = the smallest concept's example count
  double significance = 0.05;       ///< alpha for the Bonferroni-corrected p-value
  logistic_regression_options logistic{};  ///< the CAV classifier (L2 logistic regression)
  std::uint64_t seed = 0;                  ///< the random sets
  execution_options execution{};           ///< threads, progress, cancellation for the model passes
};

/// TCAV of one concept at one layer.
struct tcav_concept_result {
  std::string concept_name;              ///< the concept
  std::size_t layer = 0;                 ///< hidden-state index
  std::vector<double> scores;            ///< the TCAV score of the concept's CAV against each random set
  std::vector<double> random_scores;     ///< the TCAV score of each random-vs-random CAV (the null)
  double mean = 0;                       ///< mean of scores
  double standard_deviation = 0;         ///< sample standard deviation of scores
  double random_mean = 0;                ///< mean of random_scores
  double random_standard_deviation = 0;  ///< sample standard deviation of random_scores
  double t_statistic = 0;                ///< Student's two-sample t (pooled variance), scores vs random_scores
  double p_value = 1;                    ///< two-sided
  double corrected_p_value = 1;          ///< Bonferroni: min(1, p_value x concepts x layers)
  bool significant = false;              ///< corrected_p_value < significance
  std::optional<double> score;           ///< the mean TCAV score, only when significant
  double cav_accuracy = 0;               ///< mean training accuracy of the concept's CAV classifiers
  std::vector<double> direction;         ///< the mean of the concept's unit CAVs, [d]
};

/// TCAV results for every concept and layer (concept-major).
struct tcav_result {
  glassbox::target target = target::logit(0);  ///< what the sensitivities differentiate
  std::size_t inputs = 0;                      ///< inputs scored
  std::size_t tests = 0;                       ///< concepts x layers (the Bonferroni factor)
  std::vector<tcav_concept_result> results;    ///< one per concept and layer, concept-major
  std::size_t model_evaluations = 0;           ///< forward and forward + backward passes
  std::vector<std::string> warnings;           ///< CAV classifiers that did not converge; the CLI prints them
  std::vector<named_option> options;           ///< the options it ran with
};

namespace detail {

/// The regularised incomplete beta function I_x(a, b), by its continued fraction (modified Lentz).
template <class = void>
inline double incomplete_beta(double a, double b, double x) {
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  if (x > (a + 1) / (a + b + 2)) return 1 - incomplete_beta(b, a, 1 - x);
  const double front =
      std::exp(std::lgamma(a + b) - std::lgamma(a) - std::lgamma(b) + a * std::log(x) + b * std::log1p(-x)) / a;
  constexpr double tiny = 1e-300;
  double f = 1, c = 1, d = 0;
  for (int i = 0; i <= 400; ++i) {
    const int m = i / 2;
    double numerator;
    if (i == 0) {
      numerator = 1;
    } else if (i % 2 == 0) {
      numerator = (m * (b - m) * x) / ((a + 2.0 * m - 1) * (a + 2.0 * m));
    } else {
      numerator = -((a + m) * (a + b + m) * x) / ((a + 2.0 * m) * (a + 2.0 * m + 1));
    }
    d = 1 + numerator * d;
    if (std::abs(d) < tiny) d = tiny;
    d = 1 / d;
    c = 1 + numerator / c;
    if (std::abs(c) < tiny) c = tiny;
    const double cd = c * d;
    f *= cd;
    if (std::abs(1 - cd) < 1e-15) break;
  }
  return front * (f - 1);
}

/// Mean and sample standard deviation (ddof 1; 0 for one value).
template <class = void>
inline std::pair<double, double> mean_sd(std::span<const double> v) {
  double m = 0;
  for (const double x : v) m += x;
  m /= static_cast<double>(v.size());
  double ss = 0;
  for (const double x : v) ss += (x - m) * (x - m);
  return {m, v.size() > 1 ? std::sqrt(ss / static_cast<double>(v.size() - 1)) : 0.0};
}

}  // namespace detail

/// Student's two-sample t-test with pooled variance (scipy.stats.ttest_ind's default), two-sided:
/// returns {t, p}. Both samples need >= 2 values. With zero variance in both, p is 1 for equal
/// means and 0 otherwise.
template <class = void>
inline std::pair<double, double> student_t_test(std::span<const double> a, std::span<const double> b) {
  detail::require(a.size() >= 2 && b.size() >= 2,
                  "glassbox::student_t_test: both samples must hold >= 2 values, got {} and {}", a.size(), b.size());
  const auto [ma, sa] = detail::mean_sd(a);
  const auto [mb, sb] = detail::mean_sd(b);
  const double na = static_cast<double>(a.size()), nb = static_cast<double>(b.size());
  const double dof = na + nb - 2;
  const double pooled = ((na - 1) * sa * sa + (nb - 1) * sb * sb) / dof;
  const double se = std::sqrt(pooled * (1 / na + 1 / nb));
  if (se == 0) {
    if (ma == mb) return {0.0, 1.0};
    return {ma > mb ? std::numeric_limits<double>::infinity() : -std::numeric_limits<double>::infinity(), 0.0};
  }
  const double t = (ma - mb) / se;
  const double p = detail::incomplete_beta(dof / 2, 0.5, dof / (dof + t * t));
  return {t, std::clamp(p, 0.0, 1.0)};
}

namespace detail {

/// Pooled activations of `inputs` at `layers`: one [n, d] per layer.
template <class M>
std::vector<tensor2> pooled_activations(const M& model, std::span<const token_sequence> inputs,
                                        std::span<const std::size_t> layers, activation_pooling pooling,
                                        const execution_options& exec) {
  activation_labels none{label_kind::classes, [](std::size_t, std::size_t) -> std::optional<double> { return 0.0; }};
  activation_options o;
  o.layers.assign(layers.begin(), layers.end());
  o.pooling = pooling;
  o.memory_limit = std::numeric_limits<std::size_t>::max();
  o.execution = exec;
  return collect<M, no_activation_sink>(model, inputs, none, o, nullptr).activations;
}

}  // namespace detail

/// Pooled gradients of a target w.r.t. the hidden state at each of `layers`: for every input, the
/// gradient of `t` w.r.t. the hidden state at the last position (last pooling) or summed over
/// positions (mean pooling: moving every position by v moves the mean by v); one [inputs, d] per
/// layer. A CAV v's conceptual sensitivity of input i is row i . v. Costs one hidden_states and, per
/// layer, one hidden_gradient per input (plus one hidden_states to learn the model's shape).
template <class M>
std::vector<tensor2> pooled_hidden_gradients(const M& model, std::span<const token_sequence> inputs,
                                             std::span<const std::size_t> layers, const target& t,
                                             activation_pooling pooling = activation_pooling::last,
                                             const execution_options& exec = {}) {
  static_assert(check_intervention_model<M>());
  constexpr std::string_view who = "pooled_hidden_gradients";
  detail::require(pooling != activation_pooling::token,
                  "glassbox::{}: pooling must be last or mean, got token (a sensitivity needs one direction per input)",
                  who);
  detail::require(!inputs.empty() && !layers.empty(),
                  "glassbox::{}: inputs and layers must not be empty, got {} and {}", who, inputs.size(),
                  layers.size());
  for (std::size_t i = 0; i < inputs.size(); ++i)
    detail::require<shape_error>(!inputs[i].empty(), "glassbox::{}: inputs must not be empty, got an empty input at {}",
                                 who, i);
  const tensor3 first = detail::model_hidden_states(model, token_span(inputs[0]), who);
  const std::size_t width = first.shape(2);
  for (const auto k : layers)
    detail::require<shape_error>(k < first.shape(0),
                                 "glassbox::{}: layers must be < {} (the model's L + 1 hidden states), got {}", who,
                                 first.shape(0), k);
  std::vector<tensor2> out;
  for (std::size_t k = 0; k < layers.size(); ++k) out.push_back(tensor2::from_shape({inputs.size(), width}));
  const output_seed seed(t);
  detail::run_batches(
      inputs.size(), exec, detail::worker_count(exec, is_thread_safe<M>()), who,
      [&](std::size_t begin, std::size_t end) {
        for (std::size_t i = begin; i < end; ++i) {
          const token_span tokens(inputs[i]);
          const tensor3 h = detail::model_hidden_states(model, tokens, who, i);
          const std::size_t tlen = tokens.size();
          detail::require<model_error>(h.shape(1) == tlen && h.shape(2) == width && h.shape(0) == first.shape(0),
                                       "glassbox::{}: hidden_states returned [{}, {}, {}] for input {} "
                                       "of {} tokens",
                                       who, h.shape(0), h.shape(1), h.shape(2), i, tlen);
          tensor2 hl = tensor2::from_shape({tlen, width});
          for (std::size_t k = 0; k < layers.size(); ++k) {
            std::copy_n(h.data() + layers[k] * tlen * width, tlen * width, hl.data());
            const auto g = detail::model_hidden_gradient(model, tokens, layers[k], hl, seed, who, i);
            float* row = out[k].data() + i * width;
            if (pooling == activation_pooling::last) {
              std::copy_n(g.gradient.data() + (tlen - 1) * width, width, row);
            } else {
              for (std::size_t j = 0; j < width; ++j) {
                double sum = 0;
                for (std::size_t p = 0; p < tlen; ++p) sum += g.gradient(p, j);
                row[j] = static_cast<float>(sum);
              }
            }
          }
        }
      });
  return out;
}

/// The TCAV score of a CAV: the fraction of rows of `gradients` [inputs, d] (pooled_hidden_gradients)
/// whose dot product with `cav` [d] is > 0.
template <class = void>
inline double tcav_score(const tensor2& gradients, std::span<const double> cav) {
  detail::require<shape_error>(gradients.shape(1) == cav.size() && gradients.shape(0) >= 1,
                               "glassbox::tcav_score: gradients must be [inputs >= 1, {}], got [{}, {}]", cav.size(),
                               gradients.shape(0), gradients.shape(1));
  std::size_t positive = 0;
  const std::size_t d = cav.size();
  for (std::size_t i = 0; i < gradients.shape(0); ++i) {
    double s = 0;
    for (std::size_t j = 0; j < d; ++j) s += static_cast<double>(gradients.data()[i * d + j]) * cav[j];
    positive += s > 0;
  }
  return static_cast<double>(positive) / static_cast<double>(gradients.shape(0));
}

namespace detail {

/// A concept activation vector and its classifier.
struct fitted_cav {
  std::vector<double> direction;  ///< unit normal, pointing to the positives
  double accuracy = 0;            ///< training accuracy of the classifier
  bool converged = true;          ///< whether its solver converged
};

/// A unit CAV from a logistic classifier of positives (class 1) against negatives (class 0).
template <class = void>
inline fitted_cav fit_cav(const tensor2& positives, std::span<const std::size_t> pos_rows, const tensor2& negatives,
                          std::span<const std::size_t> neg_rows, const logistic_regression_options& o) {
  const std::size_t d = positives.shape(1);
  tensor2 x = tensor2::from_shape({pos_rows.size() + neg_rows.size(), d});
  std::vector<std::int32_t> y;
  std::size_t r = 0;
  for (const auto i : pos_rows) {
    std::copy_n(positives.data() + i * d, d, x.data() + (r++) * d);
    y.push_back(1);
  }
  for (const auto i : neg_rows) {
    std::copy_n(negatives.data() + i * d, d, x.data() + (r++) * d);
    y.push_back(0);
  }
  const auto fit = fit_logistic(rows_of(x), y, 2, o);
  std::vector<double> v = fit.model.weight;
  double norm = 0;
  for (const double e : v) norm += e * e;
  norm = std::sqrt(norm);
  if (norm > 0)
    for (double& e : v) e /= norm;
  const auto predicted = predict_rows(fit.model, rows_of(x));
  std::size_t right = 0;
  for (std::size_t i = 0; i < y.size(); ++i) right += predicted[i] == y[i];
  return {std::move(v), static_cast<double>(right) / static_cast<double>(y.size()), fit.converged};
}

}  // namespace detail

/// TCAV (Kim et al. 2018) of each concept at each layer for target `t` over `inputs`. Random sets
/// A_r and B_r (r < random_runs, disjoint, random_set_size examples each, drawn with the seed from
/// `random_examples`) are shared by all concepts and layers. Per concept and layer: CAV_r = the unit
/// normal of an L2 logistic classifier of the concept's examples (class 1) against A_r, TCAV score
/// S_r = the fraction of inputs whose sensitivity grad_h t . CAV_r is positive (gradients from
/// pooled_hidden_gradients); the null scores come from CAVs of B_r against A_r. A two-sided
/// Student t-test compares S with the null; p is multiplied by concepts x layers (Bonferroni) and
/// a concept is significant when that is < options.significance. Activations are pooled at the last
/// position (default) or averaged, and sensitivities read the same position.
///
/// Example:
///   glassbox::tcav_concept negated{"negated", negated_reviews};
///   auto r = glassbox::tcav(model, std::span(&negated, 1), other_reviews, test_reviews,
///                           glassbox::target::log_probability(positive_id), {.layers = {2, 3, 4}});
template <class M>
tcav_result tcav(const M& model, std::span<const tcav_concept> concepts,
                 std::span<const token_sequence> random_examples, std::span<const token_sequence> inputs,
                 const target& t, const tcav_options& options) {
  static_assert(check_intervention_model<M>());
  constexpr std::string_view who = "tcav";
  detail::require(!concepts.empty(), "glassbox::{}: concepts must hold at least one concept, got none", who);
  detail::require(!options.layers.empty(), "glassbox::{}: layers must hold at least one layer, got none", who);
  detail::require(options.pooling != activation_pooling::token, "glassbox::{}: pooling must be last or mean, got token",
                  who);
  detail::require(options.random_runs >= 2,
                  "glassbox::{}: random_runs must be >= 2 (a t-test needs two scores), got {}", who,
                  options.random_runs);
  detail::require(options.significance > 0 && options.significance < 1,
                  "glassbox::{}: significance must be in (0, 1), got {}", who, options.significance);
  detail::require(!inputs.empty(), "glassbox::{}: inputs must hold at least one input, got none", who);
  detail::check_logistic_options(options.logistic, who);
  std::size_t smallest = std::numeric_limits<std::size_t>::max();
  for (const auto& c : concepts) {
    detail::require(!c.examples.empty(), "glassbox::{}: concept '{}' must have examples, got none", who, c.name);
    smallest = std::min(smallest, c.examples.size());
  }
  const std::size_t set_size = options.random_set_size != 0 ? options.random_set_size : smallest;
  detail::require(random_examples.size() >= 2 * set_size,
                  "glassbox::{}: random_examples must hold at least {} inputs (two disjoint random sets of {}), got {}",
                  who, 2 * set_size, set_size, random_examples.size());
  const std::span<const std::size_t> layers(options.layers);

  // Activations of the concepts and the random pool; gradients of the inputs.
  std::vector<std::vector<tensor2>> concept_acts;
  std::size_t evaluations = 0;
  for (const auto& c : concepts) {
    concept_acts.push_back(detail::pooled_activations(model, c.examples, layers, options.pooling, options.execution));
    evaluations += c.examples.size() + 1;
  }
  const std::vector<tensor2> random_acts =
      detail::pooled_activations(model, random_examples, layers, options.pooling, options.execution);
  evaluations += random_examples.size() + 1;
  const std::vector<tensor2> gradients =
      pooled_hidden_gradients(model, inputs, layers, t, options.pooling, options.execution);
  evaluations += 1 + inputs.size() * (1 + layers.size());

  // The random sets: per run, a shuffled pool cut into A (first set_size) and B (next set_size).
  std::vector<std::vector<std::size_t>> set_a(options.random_runs), set_b(options.random_runs);
  for (std::size_t r = 0; r < options.random_runs; ++r) {
    std::vector<std::size_t> pool(random_examples.size());
    std::iota(pool.begin(), pool.end(), std::size_t{0});
    rng(options.seed).fork(r).shuffle(pool.begin(), pool.end());
    set_a[r].assign(pool.begin(), pool.begin() + static_cast<std::ptrdiff_t>(set_size));
    set_b[r].assign(pool.begin() + static_cast<std::ptrdiff_t>(set_size),
                    pool.begin() + static_cast<std::ptrdiff_t>(2 * set_size));
  }

  // Every CAV: (concept or random) x layer x run, in parallel.
  const std::size_t nc = concepts.size(), nl = layers.size(), nr = options.random_runs;
  const std::size_t jobs = (nc + 1) * nl * nr;
  std::vector<double> scores(jobs), accuracies(jobs);
  std::vector<char> converged(jobs, 1);
  std::vector<std::vector<double>> directions(jobs);
  execution_options exec = options.execution;
  exec.batch_size = 1;
  detail::run_batches(jobs, exec, detail::worker_count(exec, true), "tcav CAVs", [&](std::size_t b, std::size_t e) {
    for (std::size_t job = b; job < e; ++job) {
      const std::size_t r = job % nr, l = (job / nr) % nl, c = job / (nr * nl);  // c == nc: random vs random
      std::vector<std::size_t> all;
      const tensor2& positives = c < nc ? concept_acts[c][l] : random_acts[l];
      if (c < nc) {
        all.resize(positives.shape(0));
        std::iota(all.begin(), all.end(), std::size_t{0});
      }
      auto cav = detail::fit_cav(positives, c < nc ? std::span<const std::size_t>(all) : set_b[r], random_acts[l],
                                 set_a[r], options.logistic);
      scores[job] = tcav_score(gradients[l], cav.direction);
      accuracies[job] = cav.accuracy;
      converged[job] = cav.converged ? 1 : 0;
      directions[job] = std::move(cav.direction);
    }
  });

  tcav_result result;
  result.target = t;
  result.inputs = inputs.size();
  result.tests = nc * nl;
  result.model_evaluations = evaluations;
  for (std::size_t c = 0; c < nc; ++c) {
    for (std::size_t l = 0; l < nl; ++l) {
      tcav_concept_result cr;
      cr.concept_name = concepts[c].name;
      cr.layer = layers[l];
      const std::size_t base = (c * nl + l) * nr, null_base = (nc * nl + l) * nr;
      cr.scores.assign(scores.begin() + static_cast<std::ptrdiff_t>(base),
                       scores.begin() + static_cast<std::ptrdiff_t>(base + nr));
      cr.random_scores.assign(scores.begin() + static_cast<std::ptrdiff_t>(null_base),
                              scores.begin() + static_cast<std::ptrdiff_t>(null_base + nr));
      std::tie(cr.mean, cr.standard_deviation) = detail::mean_sd(cr.scores);
      std::tie(cr.random_mean, cr.random_standard_deviation) = detail::mean_sd(cr.random_scores);
      std::tie(cr.t_statistic, cr.p_value) = student_t_test(cr.scores, cr.random_scores);
      cr.corrected_p_value = std::min(1.0, cr.p_value * static_cast<double>(result.tests));
      cr.significant = cr.corrected_p_value < options.significance;
      if (cr.significant) cr.score = cr.mean;
      double accuracy = 0;
      cr.direction.assign(directions[base].size(), 0.0);
      for (std::size_t r = 0; r < nr; ++r) {
        accuracy += accuracies[base + r];
        for (std::size_t j = 0; j < cr.direction.size(); ++j)
          cr.direction[j] += directions[base + r][j] / static_cast<double>(nr);
      }
      cr.cav_accuracy = accuracy / static_cast<double>(nr);
      std::size_t failed = 0;
      for (std::size_t r = 0; r < nr; ++r) failed += converged[base + r] == 0;
      if (failed > 0)
        result.warnings.push_back(
            fmt::format("concept '{}', layer {}: {} of {} CAV classifiers did not converge; "
                        "raise logistic.max_iterations",
                        cr.concept_name, cr.layer, failed, nr));
      result.results.push_back(std::move(cr));
    }
  }
  for (std::size_t l = 0; l < nl; ++l) {
    std::size_t failed = 0;
    for (std::size_t r = 0; r < nr; ++r) failed += converged[(nc * nl + l) * nr + r] == 0;
    if (failed > 0)
      result.warnings.push_back(
          fmt::format("layer {}: {} of {} random CAV classifiers did not converge; raise "
                      "logistic.max_iterations",
                      layers[l], failed, nr));
  }
  std::string layer_list;
  for (std::size_t i = 0; i < nl; ++i) {
    if (i != 0) layer_list += ',';
    layer_list += std::to_string(layers[i]);
  }
  result.options = {{"layers", layer_list},
                    {"pooling", std::string(to_string(options.pooling))},
                    {"random_runs", static_cast<std::int64_t>(options.random_runs)},
                    {"random_set_size", static_cast<std::int64_t>(set_size)},
                    {"significance", options.significance},
                    {"C", options.logistic.C},
                    {"seed", static_cast<std::int64_t>(options.seed)}};
  return result;
}

}  // namespace glassbox

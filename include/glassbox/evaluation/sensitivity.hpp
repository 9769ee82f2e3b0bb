// glassbox: infidelity and max-sensitivity of explanations (Yeh et al. 2019), following Captum's
// captum.metrics.infidelity and sensitivity_max. docs/evaluation.md, "Infidelity and
// max-sensitivity", states the perturbations and every choice.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <optional>
#include <span>
#include <string_view>
#include <type_traits>
#include <vector>

#include "glassbox/attribution/baseline.hpp"
#include "glassbox/attribution/detail/perturbation_inputs.hpp"
#include "glassbox/core/error.hpp"
#include "glassbox/core/execution.hpp"
#include "glassbox/core/model.hpp"
#include "glassbox/core/random.hpp"
#include "glassbox/core/target.hpp"
#include "glassbox/core/types.hpp"
#include "glassbox/evaluation/detail/ranking.hpp"
#include "glassbox/evaluation/faithfulness.hpp"

namespace glassbox {

/// Options of infidelity.
struct infidelity_options {
  std::size_t samples = 10;  ///< perturbations drawn (Captum's n_perturb_samples = 10)
  bool normalize = false;    ///< scale the scores by the best beta first (Captum's normalize = False)
  /// Token scores: what a perturbed token becomes; empty = per model (its pad token, else the zero
  /// embedding), as the perturbation attribution methods (attribution/baseline.hpp).
  std::optional<glassbox::baseline> baseline{};
  double subset_probability = 0.5;  ///< token scores: each removable token is perturbed with this probability
  /// Embedding scores: the standard deviation of the Gaussian noise, as a fraction of the root mean
  /// square of the input embeddings (our choice: Captum leaves the perturbation to the user).
  double noise = 0.1;
  /// -1 = never perturbed; other values = perturbable; empty = as faithfulness_options::feature_map.
  std::vector<int> feature_map{};
  std::uint64_t seed = 0;         ///< the same seed gives the same perturbations
  execution_options execution{};  ///< batch size, threads, progress, cancellation
};

/// Infidelity of one explanation.
struct infidelity_result {
  double value = 0;                    ///< mean over samples of (beta I . a - (f(x) - f(x - I)))^2
  double beta = 1;                     ///< the score scale (1 unless options.normalize)
  std::vector<double> dot_products;    ///< per sample, I . a
  std::vector<double> differences;     ///< per sample, f(x) - f(x - I)
  std::size_t model_evaluations = 0;   ///< samples + 1
};

/// Options of max_sensitivity; defaults as Captum's sensitivity_max.
struct max_sensitivity_options {
  double radius = 0.02;      ///< perturbations uniform in [-radius, radius] per embedding entry (Captum's perturb_radius)
  std::size_t samples = 10;  ///< perturbations drawn (Captum's n_perturb_samples)
  /// Divide by the Frobenius norm of the unperturbed explanation (1 if it is 0), as Captum's
  /// sensitivity_max does; false = the plain max ||expl(x') - expl(x)||_F of Yeh et al.
  bool normalize = true;
  std::uint64_t seed = 0;  ///< the same seed gives the same perturbations
};

/// Max-sensitivity of one explanation.
struct max_sensitivity_result {
  double value = 0;                 ///< max over samples of the (normalised) sensitivities
  std::vector<double> sensitivities;///< per sample, ||expl(x') - expl(x)||_F (divided by the norm when normalised)
  double explanation_norm = 0;      ///< ||expl(x)||_F
  std::size_t explanations = 0;     ///< calls of explain: samples + 1
};

namespace detail {

/// Infidelity from its samples: `values` are f(x) then f at each perturbed input; mean
/// (beta I.a - diff)^2 with diff = f(x) - f(x - I), beta = E[I.a diff] / E[(I.a)^2] when normalised.
template <class = void>
inline infidelity_result finish_infidelity(std::vector<double> dots, std::span<const double> values, bool normalize,
                                           std::size_t evaluations) {
  std::vector<double> diffs;
  for (std::size_t s = 0; s < dots.size(); ++s) diffs.push_back(values[0] - values[1 + s]);
  infidelity_result r;
  r.model_evaluations = evaluations;
  if (normalize) {
    double num = 0, den = 0;
    for (std::size_t i = 0; i < dots.size(); ++i) {
      num += dots[i] * diffs[i];
      den += dots[i] * dots[i];
    }
    r.beta = den == 0 ? 1.0 : num / den;
  }
  double total = 0;
  for (std::size_t i = 0; i < dots.size(); ++i) {
    const double e = r.beta * dots[i] - diffs[i];
    total += e * e;
  }
  r.value = total / static_cast<double>(dots.size());
  r.dot_products = std::move(dots);
  r.differences = std::move(diffs);
  return r;
}

/// Flattens an explanation to doubles: anything with contiguous data() and size() (std::vector<double>,
/// tensor2, an Eigen matrix such as attribution_matrix), else any range of numbers.
template <class R>
std::vector<double> flatten_explanation(const R& r) {
  std::vector<double> out;
  if constexpr (requires { r.data(); r.size(); }) {
    const auto* p = r.data();
    out.reserve(static_cast<std::size_t>(r.size()));
    for (std::size_t i = 0; i < static_cast<std::size_t>(r.size()); ++i) out.push_back(static_cast<double>(p[i]));
  } else {
    for (const auto& x : r) out.push_back(static_cast<double>(x));
  }
  return out;
}

}  // namespace detail

/// Infidelity of token scores (Yeh et al. 2019; Captum's infidelity with a baseline-subset
/// perturbation): each of `samples` perturbations makes every removable token absent (the baseline)
/// with probability subset_probability; with I the 0/1 indicator of the absent tokens,
/// infidelity = mean (I . a - (f(x) - f(x_I)))^2. 0 for scores that are exactly the effect of removing
/// each token, when the target is additive in the tokens (e.g. occlusion of a linear model).
/// Costs samples + 1 evaluations.
template <class M>
infidelity_result infidelity(const M& model, token_span tokens, const target& t, std::span<const double> scores,
                             const infidelity_options& options = {}) {
  static_assert(check_model<M>());
  constexpr std::string_view caller = "infidelity";
  detail::require(options.samples >= 1, "glassbox::infidelity: samples must be >= 1, got {}", options.samples);
  detail::require(options.subset_probability > 0 && options.subset_probability <= 1,
                  "glassbox::infidelity: subset_probability must be in (0, 1], got {}", options.subset_probability);
  const faithfulness_options settings{.removal = detail::resolve_baseline(model, options.baseline, caller),
                                      .feature_map = options.feature_map,
                                      .execution = options.execution};
  detail::removal_evaluator<M> eval(model, tokens, t, scores, true, settings, caller);
  rng g(options.seed);
  std::vector<std::vector<std::size_t>> present{eval.all_but({})};
  std::vector<double> dots;
  for (std::size_t s = 0; s < options.samples; ++s) {
    std::vector<std::size_t> absent;
    double dot = 0;
    for (std::size_t i = 0; i < tokens.size(); ++i)
      if (eval.is_removable(i) && g.bernoulli(options.subset_probability)) {
        absent.push_back(i);
        dot += scores[i];
      }
    present.push_back(eval.all_but(absent));
    dots.push_back(dot);
  }
  const std::vector<double> v = eval.values(present, options.execution);
  return detail::finish_infidelity(std::move(dots), v, options.normalize, eval.evaluations());
}

/// Infidelity of embedding scores [T, d] (Yeh et al. 2019; Captum's infidelity with Gaussian noise):
/// each of `samples` perturbations draws I ~ N(0, (noise x rms(x))^2) on every entry of the rows not
/// held fixed, and infidelity = mean (I . a - (f(x) - f(x - I)))^2, as Captum (which evaluates f at
/// x - I). 0 for the gradient of a target linear in the embeddings (e.g. a logit of the linear bag
/// model): for Gaussian noise the gradient is the exact answer (Yeh et al.). Costs samples + 1 evaluations.
template <class M>
infidelity_result infidelity(const M& model, token_span tokens, const target& t, const tensor2& embedding_scores,
                             const infidelity_options& options = {}) {
  static_assert(check_embedding_model<M>());
  constexpr std::string_view caller = "infidelity";
  detail::require(options.samples >= 1, "glassbox::infidelity: samples must be >= 1, got {}", options.samples);
  detail::require(options.noise > 0 && std::isfinite(options.noise),
                  "glassbox::infidelity: noise must be > 0 and finite, got {}", options.noise);
  const tensor2 x = detail::model_embeddings(model, tokens, caller);
  detail::require<shape_error>(embedding_scores.dimension() == 2 && embedding_scores.shape(0) == x.shape(0) &&
                                   embedding_scores.shape(1) == x.shape(1),
                               "glassbox::infidelity: embedding_scores must be [{}, {}], got [{}, {}]", x.shape(0),
                               x.shape(1), embedding_scores.shape(0), embedding_scores.shape(1));
  // Rows that are perturbed: as the token-level metrics' removable tokens.
  const std::size_t n = x.shape(0), d = x.shape(1);
  std::vector<bool> perturbed(n, true);
  if (!options.feature_map.empty()) {
    detail::require<shape_error>(options.feature_map.size() == n,
                                 "glassbox::infidelity: feature_map must have one entry per token ({}), got {}", n,
                                 options.feature_map.size());
    for (std::size_t i = 0; i < n; ++i) perturbed[i] = options.feature_map[i] >= 0;
  }
  double squares = 0;
  for (float v : x) squares += static_cast<double>(v) * v;
  const double sigma = options.noise * std::sqrt(squares / static_cast<double>(x.size()));
  rng g(options.seed);
  std::vector<tensor2> inputs{x};
  std::vector<double> dots;
  for (std::size_t s = 0; s < options.samples; ++s) {
    tensor2 xi = x;
    double dot = 0;
    for (std::size_t i = 0; i < n; ++i) {
      if (!perturbed[i]) continue;
      for (std::size_t j = 0; j < d; ++j) {
        const double noise = g.normal(0.0, sigma);
        xi(i, j) = static_cast<float>(x(i, j) - noise);
        dot += noise * static_cast<double>(embedding_scores(i, j));
      }
    }
    inputs.push_back(std::move(xi));
    dots.push_back(dot);
  }
  const std::vector<double> v =
      evaluate_target_on_embeddings(model, std::span<const tensor2>(inputs), t, options.execution, caller);
  return detail::finish_infidelity(std::move(dots), v, options.normalize, inputs.size());
}

/// Max-sensitivity (Yeh et al. 2019) as Captum's sensitivity_max: `explain(embeddings)` is called on
/// `embeddings` [T, d] and on `samples` perturbations of it, each adding noise uniform in
/// [-radius, radius] to every entry; the result is the largest ||explain(x') - explain(x)||_F, divided
/// by ||explain(x)||_F (1 if 0) when options.normalize (Captum's default). `explain` returns any range
/// of numbers of one size (token scores std::vector<double>, embedding scores tensor2 ...).
///
/// Example: `auto s = glassbox::max_sensitivity(model.embed(tokens), [&](const glassbox::tensor2& e) { ... });`
template <class Explain>
max_sensitivity_result max_sensitivity(const tensor2& embeddings, Explain&& explain,
                                       const max_sensitivity_options& options = {}) {
  static_assert(std::is_invocable_v<Explain&, const tensor2&>,
                "glassbox::max_sensitivity: explain must be callable as explain(const tensor2& embeddings)");
  detail::require<shape_error>(embeddings.dimension() == 2 && embeddings.size() >= 1,
                               "glassbox::max_sensitivity: embeddings must not be empty");
  detail::require(options.radius > 0 && std::isfinite(options.radius),
                  "glassbox::max_sensitivity: radius must be > 0 and finite, got {}", options.radius);
  detail::require(options.samples >= 1, "glassbox::max_sensitivity: samples must be >= 1, got {}", options.samples);
  const std::vector<double> base = detail::flatten_explanation(explain(embeddings));
  double norm2 = 0;
  for (double v : base) norm2 += v * v;
  max_sensitivity_result r;
  r.explanation_norm = std::sqrt(norm2);
  const double scale = options.normalize && r.explanation_norm > 0 ? r.explanation_norm : 1.0;
  rng g(options.seed);
  for (std::size_t s = 0; s < options.samples; ++s) {
    tensor2 x = embeddings;
    for (auto& v : x) v = static_cast<float>(v + g.uniform(-options.radius, options.radius));
    const std::vector<double> e = detail::flatten_explanation(explain(static_cast<const tensor2&>(x)));
    detail::require<shape_error>(e.size() == base.size(),
                                 "glassbox::max_sensitivity: explain must return {} values every time, got {}",
                                 base.size(), e.size());
    double diff2 = 0;
    for (std::size_t i = 0; i < e.size(); ++i) diff2 += (e[i] - base[i]) * (e[i] - base[i]);
    r.sensitivities.push_back(std::sqrt(diff2) / scale);
  }
  r.value = *std::max_element(r.sensitivities.begin(), r.sensitivities.end());
  r.explanations = options.samples + 1;
  return r;
}

/// max_sensitivity on the input embeddings of `tokens` for `model` (an EmbeddingModel).
template <class M, class Explain>
max_sensitivity_result max_sensitivity(const M& model, token_span tokens, Explain&& explain,
                                       const max_sensitivity_options& options = {}) {
  static_assert(check_embedding_model<M>());
  return max_sensitivity(detail::model_embeddings(model, tokens, "max_sensitivity"), std::forward<Explain>(explain),
                         options);
}

}  // namespace glassbox

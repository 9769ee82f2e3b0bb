// Tests of the perturbation attribution methods: closed forms on the linear bag-of-embeddings model,
// the Shapley axioms and an independent brute-force reference on a small nonlinear model,
// convergence of the sampling estimators to exact Shapley values, determinism, the surrogate
// regressions against scikit-learn, baselines (token, embedding, removal) and option validation,
// and the methods on a small GPT-2 (a positional transformer, evaluated through its batched members).
#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <cmath>
#include <glassbox/attribution.hpp>
#include <glassbox/core.hpp>
#include <glassbox/models/linear_bag.hpp>
#include <numeric>
#include <set>
#include <string>
#include <vector>

#include "glassbox/models/gpt2.hpp"
#include "test_support.hpp"

using namespace glassbox;
using glassbox::test::what_contains;

namespace {

// A small nonlinear causal model with interactions between tokens, computed in double:
//   h_t = sum over i <= t of E[tok_i], skipping tokens 0 (pad) and 9 (ignored),
//   logits_t = W2^T tanh(W1^T h_t + b1).
// Token 9 is a dummy player under the pad baseline: the model treats it exactly as the pad token.
// Two positions holding the same token are interchangeable players (the bag is order-free).
class toy_mlp {
 public:
  static constexpr bool thread_safe = true;
  static constexpr token_id ignored = 9;
  static constexpr std::size_t vocab = 10, width = 4, hidden = 6, classes = 5;

  explicit toy_mlp(std::uint64_t seed) {
    glassbox::rng g(seed);
    for (auto& x : e_) x = g.normal();
    for (auto& x : w1_) x = g.normal(0.0, 0.8);
    for (auto& x : b1_) x = g.normal(0.0, 0.3);
    for (auto& x : w2_) x = g.normal(0.0, 1.5);
  }

  std::size_t vocab_size() const { return vocab; }
  std::optional<token_id> pad_token() const { return 0; }
  std::size_t output_rows(std::size_t n) const { return n; }

  tensor2 logits(token_span tokens) const {
    passes.fetch_add(1);
    tensor2 out({tokens.size(), classes});
    double h[width] = {};
    for (std::size_t t = 0; t < tokens.size(); ++t) {
      const token_id id = tokens[t];
      if (id < 0 || static_cast<std::size_t>(id) >= vocab) throw glassbox::shape_error("toy_mlp: token out of range");
      if (id != 0 && id != ignored)
        for (std::size_t j = 0; j < width; ++j) h[j] += e_[static_cast<std::size_t>(id) * width + j];
      double a[hidden];
      for (std::size_t k = 0; k < hidden; ++k) {
        double s = b1_[k];
        for (std::size_t j = 0; j < width; ++j) s += h[j] * w1_[j * hidden + k];
        a[k] = std::tanh(s);
      }
      for (std::size_t c = 0; c < classes; ++c) {
        double s = 0;
        for (std::size_t k = 0; k < hidden; ++k) s += a[k] * w2_[k * classes + c];
        out(t, c) = static_cast<float>(s);
      }
    }
    return out;
  }

  // The batched member, so that evaluate_target's batched path is exercised; same arithmetic per row.
  tensor3 logits_batch(const token_matrix& batch, std::span<const std::size_t> rows) const {
    const std::size_t b = batch.shape(0), n = batch.shape(1);
    tensor3 out({b, rows.size(), classes});
    for (std::size_t i = 0; i < b; ++i) {
      const token_sequence seq(batch.data() + i * n, batch.data() + (i + 1) * n);
      const tensor2 all = logits(seq);
      for (std::size_t r = 0; r < rows.size(); ++r)
        for (std::size_t c = 0; c < classes; ++c) out(i, r, c) = all(rows[r], c);
    }
    return out;
  }

  mutable std::atomic<std::size_t> passes{0};  ///< forward passes made, batched rows included

 private:
  double e_[vocab * width] = {};
  double w1_[width * hidden] = {};
  double b1_[hidden] = {};
  double w2_[hidden * classes] = {};
};

// A game with interactions of at most second order, as a one-column causal model computed in double:
//   logit_t = sum over i <= t of a[tok_i] + sum over i < j <= t of B[tok_i][tok_j], with a and B zero for pad.
// The Shapley value of token i for the last row is a[t_i] + 1/2 sum over j != i of B[t_i][t_j].
class pairwise_game {
 public:
  static constexpr std::size_t vocab = 10;
  explicit pairwise_game(std::uint64_t seed) {
    glassbox::rng g(seed);
    for (std::size_t u = 1; u < vocab; ++u) {
      a_[u] = g.normal();
      for (std::size_t v = 1; v <= u; ++v) b_[u][v] = b_[v][u] = g.normal();
    }
  }
  std::size_t vocab_size() const { return vocab; }
  std::optional<token_id> pad_token() const { return 0; }
  tensor2 logits(token_span tokens) const {
    tensor2 out({tokens.size(), 1});
    double z = 0;
    for (std::size_t t = 0; t < tokens.size(); ++t) {
      const auto u = static_cast<std::size_t>(tokens[t]);
      z += a_[u];
      for (std::size_t i = 0; i < t; ++i) z += b_[static_cast<std::size_t>(tokens[i])][u];
      out(t, 0) = static_cast<float>(z);
    }
    return out;
  }
  std::vector<double> shapley(token_span tokens) const {
    std::vector<double> phi(tokens.size());
    for (std::size_t i = 0; i < tokens.size(); ++i) {
      const auto u = static_cast<std::size_t>(tokens[i]);
      phi[i] = a_[u];
      for (std::size_t j = 0; j < tokens.size(); ++j)
        if (j != i) phi[i] += 0.5 * b_[u][static_cast<std::size_t>(tokens[j])];
    }
    return phi;
  }

 private:
  double a_[vocab] = {};
  double b_[vocab][vocab] = {};
};

// The linear bag seen as a plain Model (no embeddings): for the "needs an EmbeddingModel" error.
struct tokens_only {
  const models::linear_bag& m;
  std::size_t vocab_size() const { return m.vocab_size(); }
  std::optional<token_id> pad_token() const { return m.pad_token(); }
  tensor2 logits(token_span t) const { return m.logits(t); }
};

// The linear bag as a plain Model without a pad token: the default baseline has nothing to resolve to.
struct tokens_only_without_pad {
  const models::linear_bag& m;
  std::size_t vocab_size() const { return m.vocab_size(); }
  tensor2 logits(token_span t) const { return m.logits(t); }
};

// The linear bag as a sequence classifier: one output row (the last position's).
struct bag_classifier {
  const models::linear_bag& m;
  std::size_t vocab_size() const { return m.vocab_size(); }
  std::optional<token_id> pad_token() const { return m.pad_token(); }
  std::size_t output_rows(std::size_t) const { return 1; }
  tensor2 logits(token_span t) const {
    const tensor2 all = m.logits(t);
    tensor2 last({1, all.shape(1)});
    std::copy_n(all.data() + (all.shape(0) - 1) * all.shape(1), all.shape(1), last.data());
    return last;
  }
};

// (E[token] - reference) . W[:, c] for every token: the Shapley value, occlusion and ablation score of
// a token of the linear bag under a logit target of class c read at or after the token.
std::vector<double> closed_form(const models::linear_bag& m, token_span tokens, std::size_t c,
                                const std::vector<double>& reference) {
  std::vector<double> out;
  for (token_id id : tokens) {
    double s = 0;
    for (std::size_t j = 0; j < m.width(); ++j)
      s += (double(m.embedding_matrix()(static_cast<std::size_t>(id), j)) - reference[j]) * double(m.weights()(j, c));
    out.push_back(s);
  }
  return out;
}

std::vector<double> embedding_row(const models::linear_bag& m, token_id id) {
  std::vector<double> r(m.width());
  for (std::size_t j = 0; j < m.width(); ++j) r[j] = m.embedding_matrix()(static_cast<std::size_t>(id), j);
  return r;
}

double mean_squared_error(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (std::size_t i = 0; i < a.size(); ++i) s += (a[i] - b[i]) * (a[i] - b[i]);
  return s / static_cast<double>(a.size());
}

// Shapley values by their definition as an average over all n! orders, evaluating the model directly:
// an independent reference for shapley_exact (n <= 7).
template <class M>
std::vector<double> brute_force_shapley(const M& model, const token_sequence& tokens, const target& t, token_id pad) {
  const std::size_t n = tokens.size();
  std::vector<std::size_t> order(n);
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::vector<double> phi(n, 0.0);
  double orders = 0;
  do {
    token_sequence current(n, pad);
    double previous = t.value_of(model.logits(current));
    for (std::size_t k : order) {
      current[k] = tokens[k];
      const double v = t.value_of(model.logits(current));
      phi[k] += v - previous;
      previous = v;
    }
    orders += 1;
  } while (std::next_permutation(order.begin(), order.end()));
  for (auto& p : phi) p /= orders;
  return phi;
}

const token_sequence bag_tokens = {3, 5, 1, 7, 2, 9, 4, 6};

// Execution options with a batch size and thread count (core's struct has members without
// default initialisers, which designated initialisers would warn about).
execution_options execution_with(std::size_t batch_size, std::size_t threads) {
  execution_options e;
  e.batch_size = batch_size;
  e.threads = threads;
  return e;
}

}  // namespace

TEST_CASE("perturbation: every method equals the closed form on the linear bag", "[attribution][perturbation]") {
  const auto model = models::linear_bag::random(12, 5, 4, 21);
  const target t = target::logit(2);
  const auto expected = closed_form(model, bag_tokens, 2, embedding_row(model, 0));
  const std::size_t n = bag_tokens.size();
  // Logits are float sums of about ten terms of size ~3: each value carries ~1e-6 of rounding,
  // which differences and the regressions carry into the scores; 1e-4 leaves a wide margin.
  constexpr double tol = 1e-4;
  auto check = [&](const attribution_result& r, std::size_t evaluations) {
    CAPTURE(r.method);
    REQUIRE(r.scores.size() == n);
    for (std::size_t i = 0; i < n; ++i) CHECK(r.scores[i] == Approx(expected[i]).margin(tol));
    CHECK(r.model_evaluations == evaluations);
    CHECK(r.target_value == Approx(t.value_of(model.logits(bag_tokens))).margin(1e-6));
    CHECK(r.baseline_value == Approx(t.value_of(model.logits(token_sequence(n, 0)))).margin(1e-6));
    CHECK(r.token_ids == bag_tokens);
    CHECK(r.target == t);
  };
  SECTION("occlusion with window 1") { check(occlusion(model, bag_tokens, t), n + 2); }
  SECTION("feature ablation") { check(feature_ablation(model, bag_tokens, t), n + 2); }
  SECTION("exact Shapley") {
    const auto r = shapley_exact(model, bag_tokens, t);
    check(r, std::size_t{1} << n);
    CHECK(std::abs(*r.convergence_delta) < 1e-9);  // efficiency holds to rounding of a double sum
  }
  SECTION("KernelSHAP at full budget") {
    const auto r = kernel_shap(model, bag_tokens, t, {.n_samples = (1u << n) - 2});
    check(r, std::size_t{1} << n);
    CHECK(std::abs(*r.convergence_delta) < 1e-9);  // the constraint is solved exactly
  }
  SECTION("KernelSHAP beyond the full budget is capped at 2^n - 2 coalitions") {
    check(kernel_shap(model, bag_tokens, t, {.n_samples = 5000}), std::size_t{1} << n);
  }
  SECTION("Shapley sampling: on a linear model every marginal contribution is the closed form") {
    const auto r = shapley_sampling(model, bag_tokens, t, {.n_samples = 3, .seed = 4});
    check(r, 3 * (n - 1) + 2);
    // every permutation gives the same contribution, so the standard errors vanish (up to rounding)
    for (double se : r.standard_errors) CHECK(se < 1e-5);
  }
  SECTION("LIME with an unregularised ridge surrogate recovers the linear model exactly") {
    const auto r = lime(model, bag_tokens, t, {.n_samples = 200, .alpha = 0.0, .seed = 3});
    check(r, 202);
    const auto r2 = std::find_if(r.options.begin(), r.options.end(), [](auto& o) { return o.name == "surrogate_r2"; });
    REQUIRE(r2 != r.options.end());
    CHECK(std::get<double>(r2->value) == Approx(1.0).margin(1e-9));
  }
}

TEST_CASE("perturbation: feature groups score the sum of their tokens' closed forms", "[attribution][perturbation]") {
  const auto model = models::linear_bag::random(12, 5, 4, 22);
  const target t = target::logit(1);
  const auto single = closed_form(model, bag_tokens, 1, embedding_row(model, 0));
  const std::vector<int> map = {0, 0, 1, 2, 2, 2, 3, 4};
  std::vector<double> group(5, 0.0);
  for (std::size_t i = 0; i < map.size(); ++i) group[static_cast<std::size_t>(map[i])] += single[i];
  constexpr double tol = 1e-4;  // as above: float logits
  auto check = [&](const attribution_result& r) {
    CAPTURE(r.method);
    for (std::size_t i = 0; i < map.size(); ++i)
      CHECK(r.scores[i] == Approx(group[static_cast<std::size_t>(map[i])]).margin(tol));
  };
  check(occlusion(model, bag_tokens, t, {.feature_map = map}));
  check(feature_ablation(model, bag_tokens, t, {.feature_map = map}));
  check(lime(model, bag_tokens, t, {.n_samples = 100, .alpha = 0.0, .feature_map = map}));
  const auto exact = shapley_exact(model, bag_tokens, t, {.feature_map = map});
  check(exact);
  CHECK(exact.model_evaluations == 32);  // 2^5 coalitions of 5 features
  // efficiency is over features, each counted once (every token carries its feature's whole score)
  CHECK(std::abs(*exact.convergence_delta) < 1e-9);
  const auto ks = kernel_shap(model, bag_tokens, t, {.n_samples = 30, .feature_map = map});
  check(ks);
  CHECK(ks.model_evaluations == 32);
  check(shapley_sampling(model, bag_tokens, t, {.n_samples = 2, .feature_map = map}));
  SECTION("a token held fixed (-1) is never perturbed and scores 0") {
    const std::vector<int> fixed = {0, 1, -1, 2, 3, 4, 5, 6};
    const auto r = shapley_exact(model, bag_tokens, t, {.feature_map = fixed});
    CHECK(r.model_evaluations == 128);
    CHECK(r.scores[2] == 0.0);
    for (std::size_t i : {0u, 1u, 3u, 7u}) CHECK(r.scores[i] == Approx(single[i]).margin(tol));
  }
}

TEST_CASE("perturbation: occlusion averages the windows covering each token", "[attribution][perturbation]") {
  const auto model = models::linear_bag::random(12, 5, 4, 23);
  const target t = target::logit(0);
  const auto single = closed_form(model, bag_tokens, 0, embedding_row(model, 0));
  // Width 3, stride 2 over 8 tokens: ceil(5 / 2) + 1 = 4 windows starting at 0, 2, 4, 6 (the last cut to 2).
  std::vector<double> total(8, 0.0), count(8, 0.0);
  for (std::size_t start : {0u, 2u, 4u, 6u}) {
    double window = 0;
    for (std::size_t i = start; i < std::min<std::size_t>(8, start + 3); ++i) window += single[i];
    for (std::size_t i = start; i < std::min<std::size_t>(8, start + 3); ++i) {
      total[i] += window;
      count[i] += 1;
    }
  }
  const auto r = occlusion(model, bag_tokens, t, {.window = 3, .stride = 2});
  CHECK(r.model_evaluations == 6);
  for (std::size_t i = 0; i < 8; ++i) CHECK(r.scores[i] == Approx(total[i] / count[i]).margin(1e-4));
  SECTION("a window as wide as the input may have any stride") {
    const auto all = occlusion(model, bag_tokens, t, {.window = 8, .stride = 20});
    const double sum = std::accumulate(single.begin(), single.end(), 0.0);
    for (double s : all.scores) CHECK(s == Approx(sum).margin(1e-4));
  }
}

TEST_CASE("perturbation: token and embedding baselines", "[attribution][perturbation]") {
  const auto model = models::linear_bag::random(12, 5, 4, 24);
  const target t = target::logit(3);
  SECTION("another baseline token") {
    const auto expected = closed_form(model, bag_tokens, 3, embedding_row(model, 11));
    const auto r = shapley_exact(model, bag_tokens, t, {.baseline = baseline::token(11)});
    for (std::size_t i = 0; i < 8; ++i) CHECK(r.scores[i] == Approx(expected[i]).margin(1e-4));
  }
  SECTION("zero embeddings") {
    const auto expected = closed_form(model, bag_tokens, 3, std::vector<double>(5, 0.0));
    for (const auto& r : {shapley_exact(model, bag_tokens, t, {.baseline = baseline::zero()}),
                          feature_ablation(model, bag_tokens, t, {.baseline = baseline::zero()}),
                          kernel_shap(model, bag_tokens, t, {.n_samples = 254, .baseline = baseline::zero()})})
      for (std::size_t i = 0; i < 8; ++i) CHECK(r.scores[i] == Approx(expected[i]).margin(1e-4));
  }
  SECTION("a user embedding vector") {
    tensor2 v({1, 5});
    std::vector<double> reference(5);
    for (std::size_t j = 0; j < 5; ++j) reference[j] = v(0, j) = 0.25f * static_cast<float>(j) - 0.5f;
    const auto expected = closed_form(model, bag_tokens, 3, reference);
    const auto r = occlusion(model, bag_tokens, t, {.baseline = baseline::embedding(v)});
    for (std::size_t i = 0; i < 8; ++i) CHECK(r.scores[i] == Approx(expected[i]).margin(1e-4));
    // every position holds v, so the last prefix sum is 8 v
    double v_dot_w = 0;
    for (std::size_t j = 0; j < 5; ++j) v_dot_w += reference[j] * model.weights()(j, 3);
    CHECK(r.baseline_value == Approx(model.bias()(3) + 8 * v_dot_w).margin(1e-4));
  }
  SECTION("embedding baselines need an EmbeddingModel") {
    const tokens_only plain{model};
    REQUIRE_THROWS_MATCHES(occlusion(plain, bag_tokens, t, {.baseline = baseline::zero()}), glassbox::error,
                           what_contains("glassbox::occlusion: baseline zero replaces input embeddings and needs an "
                                         "EmbeddingModel"));
    // token baselines work on a plain Model
    const auto expected = closed_form(model, bag_tokens, 3, embedding_row(model, 0));
    const auto r = feature_ablation(plain, bag_tokens, t);
    for (std::size_t i = 0; i < 8; ++i) CHECK(r.scores[i] == Approx(expected[i]).margin(1e-4));
  }
}

TEST_CASE("perturbation: the removal baseline keeps the target on the same prediction", "[attribution][perturbation]") {
  const auto model = models::linear_bag::random(12, 5, 4, 25);
  // Deleting token i removes e_i from every later prefix sum: the score is e_i . W[:, c].
  const auto expected = closed_form(model, bag_tokens, 2, std::vector<double>(5, 0.0));
  SECTION("target at the last position, last token held fixed") {
    const std::vector<int> map = {0, 1, 2, 3, 4, 5, 6, -1};
    for (const auto& r : {feature_ablation(model, bag_tokens, target::logit(2), {baseline::removal(), map}),
                          shapley_exact(model, bag_tokens, target::logit(2), {baseline::removal(), map}),
                          kernel_shap(model, bag_tokens, target::logit(2),
                                      {.n_samples = 126, .baseline = baseline::removal(), .feature_map = map})}) {
      CAPTURE(r.method);
      for (std::size_t i = 0; i < 7; ++i) CHECK(r.scores[i] == Approx(expected[i]).margin(1e-4));
      CHECK(r.scores[7] == 0.0);
      // the baseline is the last token alone
      CHECK(r.baseline_value == Approx(target::logit(2).value_of(model.logits(token_sequence{6}))).margin(1e-5));
    }
  }
  SECTION("a target in the middle reads the same row whichever earlier tokens are deleted") {
    // Row 5 is the prediction after token 5; tokens 5..7 stay. Written as position 5 or -3, the
    // result is the same, and only tokens 0..4 (inside that prefix) score.
    const std::vector<int> map = {0, 1, 2, 3, 4, -1, -1, -1};
    const auto from_start = shapley_exact(model, bag_tokens, target::logit(2, 5), {baseline::removal(), map});
    const auto from_end = shapley_exact(model, bag_tokens, target::logit(2, -3), {baseline::removal(), map});
    for (std::size_t i = 0; i < 5; ++i) {
      CHECK(from_start.scores[i] == Approx(expected[i]).margin(1e-4));
      CHECK(from_end.scores[i] == from_start.scores[i]);
    }
    CHECK(from_start.target == target::logit(2, 5));  // the result reports the target as given
  }
  SECTION("a removal that would delete or move the target's row is refused") {
    REQUIRE_THROWS_MATCHES(feature_ablation(model, bag_tokens, target::logit(2), {.baseline = baseline::removal()}),
                           glassbox::error,
                           what_contains("glassbox::feature_ablation: baseline removal must not delete token 7: the "
                                         "target reads output row 7 of 8, so tokens 7 to 7 must stay; hold them fixed "
                                         "with feature_map entry -1"));
    REQUIRE_THROWS_MATCHES(
        shapley_exact(model, bag_tokens, target::logit(2, 5), {baseline::removal(), {0, 1, 2, 3, 4, 5, -1, -1}}),
        glassbox::error, what_contains("must not delete token 5: the target reads output row 5 of 8"));
  }
  SECTION("a classifier (one output row) may delete any token but must keep one") {
    const bag_classifier classifier{model};
    const auto r =
        feature_ablation(classifier, bag_tokens, target::logit(2), {baseline::removal(), {0, 1, 2, 3, 4, 5, 6, -1}});
    for (std::size_t i = 0; i < 7; ++i) CHECK(r.scores[i] == Approx(expected[i]).margin(1e-4));
    REQUIRE_THROWS_MATCHES(feature_ablation(classifier, bag_tokens, target::logit(2), {baseline::removal()}),
                           glassbox::error,
                           what_contains("glassbox::feature_ablation: baseline removal would leave an empty input"));
  }
}

TEST_CASE("perturbation: Shapley axioms and a brute-force reference on a nonlinear model",
          "[attribution][perturbation]") {
  const toy_mlp model(5);
  // Tokens 4 at positions 1 and 4 are interchangeable; token 9 is ignored by the model.
  const token_sequence tokens = {2, 4, 7, 9, 4, 3};
  const target t = target::log_probability(1);
  const double full = t.value_of(model.logits(tokens));
  const double empty = t.value_of(model.logits(token_sequence(tokens.size(), 0)));

  const auto exact = shapley_exact(model, tokens, t);
  const auto reference = brute_force_shapley(model, tokens, t, 0);
  // Same float model outputs, different double summation orders: agreement to ~1e-15 relative.
  for (std::size_t i = 0; i < tokens.size(); ++i) CHECK(exact.scores[i] == Approx(reference[i]).margin(1e-12));
  CHECK(exact.target_value == full);
  CHECK(exact.baseline_value == empty);

  const auto ks_full = kernel_shap(model, tokens, t, {.n_samples = 62});
  const auto ks_small = kernel_shap(model, tokens, t, {.n_samples = 10, .seed = 3});
  const auto sampled = shapley_sampling(model, tokens, t, {.n_samples = 6, .seed = 2});
  const auto antithetic = shapley_sampling(model, tokens, t, {.n_samples = 20, .antithetic = true, .seed = 2});
  SECTION("efficiency: scores sum to f(x) - f(baseline)") {
    // exact up to the rounding of a handful of double operations
    for (const auto* r : {&exact, &ks_full, &ks_small, &sampled, &antithetic}) {
      CAPTURE(r->method);
      CHECK(r->total() == Approx(full - empty).margin(1e-10));
      CHECK(std::abs(*r->convergence_delta) < 1e-10);
    }
  }
  SECTION("KernelSHAP at full budget is exact") {
    for (std::size_t i = 0; i < tokens.size(); ++i) CHECK(ks_full.scores[i] == Approx(exact.scores[i]).margin(1e-10));
  }
  SECTION("symmetry: interchangeable tokens get equal values") {
    // The model sums the two embeddings in double in position order; the float logits it returns
    // agree to a float ulp whichever of the two is present, so the values agree to ~1e-6.
    CHECK(exact.scores[1] == Approx(exact.scores[4]).margin(1e-6));
    CHECK(ks_full.scores[1] == Approx(ks_full.scores[4]).margin(1e-6));
    CHECK(std::abs(exact.scores[1]) > 1e-3);  // and not trivially zero
  }
  SECTION("dummy: a token the model ignores gets 0") {
    CHECK(exact.scores[3] == 0.0);  // every marginal contribution is exactly 0
    CHECK(std::abs(ks_full.scores[3]) < 1e-10);
    CHECK(sampled.scores[3] == 0.0);
    CHECK(sampled.standard_errors[3] == 0.0);
  }
  SECTION("standard errors: positive for players that matter, undefined from one permutation") {
    for (std::size_t i : {0u, 1u, 2u, 4u, 5u}) {
      CHECK(std::isfinite(antithetic.standard_errors[i]));
      CHECK(antithetic.standard_errors[i] > 0);
    }
    const auto one = shapley_sampling(model, tokens, t, {.n_samples = 1});
    CHECK(std::isnan(one.standard_errors[0]));  // a single permutation has no spread estimate
  }
}

TEST_CASE("perturbation: Shapley sampling standard errors follow their definition", "[attribution][perturbation]") {
  // With two features the permutations are (0, 1) and (1, 0): feature 0 contributes either
  // a = f({0}) - f({}) or b = f({0, 1}) - f({1}). With n_samples permutations containing k of the
  // first kind, the mean is (k a + (n - k) b) / n and the standard error follows in closed form.
  const toy_mlp model(6);
  const token_sequence tokens = {5, 2};
  const target t = target::log_probability(4);
  auto f = [&](token_sequence s) { return t.value_of(model.logits(s)); };
  const double a = f({5, 0}) - f({0, 0}), b = f({5, 2}) - f({0, 2});
  const std::size_t n = 9;
  const auto r = shapley_sampling(model, tokens, t, {.n_samples = n, .seed = 11});
  // Recover k from the mean, then check the standard error against the two-point formula.
  const double k = std::round((r.scores[0] - b) * n / (a - b));
  REQUIRE(k >= 1);
  REQUIRE(k <= n - 1);
  const double mean = (k * a + (n - k) * b) / n;
  CHECK(r.scores[0] == Approx(mean).epsilon(1e-12));
  const double variance = (k * (a - mean) * (a - mean) + (n - k) * (b - mean) * (b - mean)) / (n - 1);
  CHECK(r.standard_errors[0] == Approx(std::sqrt(variance / n)).epsilon(1e-10));
  SECTION("antithetic pairs are one unit each: every pair averages a and b, so the error vanishes") {
    const auto anti = shapley_sampling(model, tokens, t, {.n_samples = 8, .antithetic = true, .seed = 11});
    CHECK(anti.scores[0] == Approx((a + b) / 2).epsilon(1e-12));
    CHECK(anti.standard_errors[0] == Approx(0.0).margin(1e-12));
  }
}

TEST_CASE("perturbation: KernelSHAP and Shapley sampling converge to exact Shapley values",
          "[attribution][perturbation]") {
  const toy_mlp model(7);
  const token_sequence tokens = {1, 2, 3, 4, 5, 6, 7, 8, 2, 5};  // 10 features, 2^10 coalitions
  const target t = target::log_probability(2);
  const auto exact = shapley_exact(model, tokens, t).scores;
  constexpr std::uint64_t seeds = 8;
  auto error = [&](auto method) {
    double total = 0;
    for (std::uint64_t s = 0; s < seeds; ++s) total += mean_squared_error(method(s).scores, exact);
    return total / seeds;
  };
  SECTION("KernelSHAP: mean squared error at budgets 24, 96, 384 (of 1022 coalitions)") {
    std::vector<double> mse;
    for (std::size_t budget : {24u, 96u, 384u})
      mse.push_back(
          error([&](std::uint64_t s) { return kernel_shap(model, tokens, t, {.n_samples = budget, .seed = s}); }));
    CAPTURE(mse);
    // Each fourfold budget should cut the error at least in half (more: 384 enumerates sizes 1, 2, 8, 9).
    CHECK(mse[1] < 0.5 * mse[0]);
    CHECK(mse[2] < 0.5 * mse[1]);
    CHECK(mse[0] > 0);  // it is an estimate below the full budget
  }
  SECTION("Shapley sampling: mean squared error at 4, 16, 64 permutations") {
    for (bool antithetic : {false, true}) {
      std::vector<double> mse;
      for (std::size_t p : {4u, 16u, 64u})
        mse.push_back(error([&](std::uint64_t s) {
          return shapley_sampling(model, tokens, t, {.n_samples = p, .antithetic = antithetic, .seed = s});
        }));
      CAPTURE(antithetic, mse);
      // The error of a mean of P permutations falls as 1/P: fourfold permutations, about a quarter.
      CHECK(mse[1] < 0.5 * mse[0]);
      CHECK(mse[2] < 0.5 * mse[1]);
    }
  }
}

TEST_CASE("perturbation: paired KernelSHAP is exact for pairwise interactions at any budget",
          "[attribution][perturbation]") {
  // With a coalition and its complement, the regression sees only f(z) - f(1 - z), which is linear
  // in z when f has interactions of at most second order: any full-rank paired design is exact.
  const pairwise_game game(3);
  const token_sequence tokens = {4, 7, 1, 9, 2, 7, 5, 3, 8, 6};  // 10 features, 1022 coalitions
  const target t = target::logit(0);
  const auto expected = game.shapley(tokens);
  // Float logits of size ~10: ~1e-6 rounding per value, amplified a little by the regression.
  for (std::uint64_t seed : {1u, 2u, 3u}) {
    const auto paired = kernel_shap(game, tokens, t, {.n_samples = 40, .seed = seed});
    for (std::size_t i = 0; i < tokens.size(); ++i) CHECK(paired.scores[i] == Approx(expected[i]).margin(1e-4));
    // Without pairs the same budget leaves an error far above rounding.
    const auto unpaired = kernel_shap(game, tokens, t, {.n_samples = 40, .paired = false, .seed = seed});
    CHECK(mean_squared_error(unpaired.scores, expected) > 1e-4);
  }
  const auto exact = shapley_exact(game, tokens, t);
  for (std::size_t i = 0; i < tokens.size(); ++i) CHECK(exact.scores[i] == Approx(expected[i]).margin(1e-4));
}

TEST_CASE("perturbation: the KernelSHAP design", "[attribution][perturbation]") {
  auto kernel_mass = [](std::size_t n, std::size_t s) { return (n - 1.0) / (s * (n - s)); };
  SECTION("enumerates sizes from the extremes inward as the shap library does, and weighs each size by its mass") {
    // n = 14 (the shap rule): 256 coalitions enumerate the 28 of sizes 1 and 13; 1024 also the
    // 182 of sizes 2 and 12.
    for (auto [budget, strata] : {std::pair{64u, 0u}, std::pair{256u, 1u}, std::pair{1024u, 2u}}) {
      glassbox::rng g(1);
      const auto d = detail::kernel_shap_design(14, budget, true, g);
      CAPTURE(budget);
      CHECK(d.enumerated_strata == strata);
      CHECK(d.size() <= budget);
      CHECK(d.size() >= budget - 1);
      CHECK_FALSE(d.exact);
      std::vector<double> mass(14, 0.0);
      std::set<std::string> distinct;  // masks as strings (GCC 12 misreports std::set of byte vectors)
      for (std::size_t j = 0; j < d.size(); ++j) {
        const std::string m(d.masks.begin() + j * 14, d.masks.begin() + (j + 1) * 14);
        const auto size = static_cast<std::size_t>(std::count(m.begin(), m.end(), '\1'));
        REQUIRE(size >= 1);
        REQUIRE(size <= 13);
        mass[size] += d.weights[j];
        distinct.insert(m);
        if (j % 2 == 1) {  // pairs: a coalition then its complement
          for (std::size_t i = 0; i < 14; ++i) CHECK(d.masks[j * 14 + i] == 1 - d.masks[(j - 1) * 14 + i]);
        }
      }
      CHECK(distinct.size() == d.size());  // drawn without replacement
      for (std::size_t s = 1; s <= 13; ++s) {
        const bool sampled = mass[s] > 0;
        if (sampled) CHECK(mass[s] == Approx(kernel_mass(14, s)).epsilon(1e-12));
      }
      CHECK(mass[1] == Approx(kernel_mass(14, 1)).epsilon(1e-12));  // the extremes are always present
    }
  }
  SECTION("the full budget enumerates every coalition with its kernel weight") {
    glassbox::rng g(2);
    const auto d = detail::kernel_shap_design(7, 126, true, g);
    CHECK(d.exact);
    CHECK(d.size() == 126);
    for (std::size_t j = 0; j < d.size(); ++j) {
      const auto s = std::accumulate(d.masks.begin() + j * 7, d.masks.begin() + (j + 1) * 7, std::size_t{0});
      CHECK(d.weights[j] == Approx(kernel_mass(7, s) / detail::binomial(7, s)).epsilon(1e-12));
    }
  }
  SECTION("unpaired designs are stratified by single sizes") {
    glassbox::rng g(3);
    const auto d = detail::kernel_shap_design(9, 100, false, g);
    CHECK(d.size() == 100);
    std::set<std::string> distinct;
    for (std::size_t j = 0; j < d.size(); ++j)
      distinct.insert(std::string(d.masks.begin() + j * 9, d.masks.begin() + (j + 1) * 9));
    CHECK(distinct.size() == 100);
  }
  SECTION("unpaired KernelSHAP keeps efficiency and reaches the exact values at full budget") {
    const toy_mlp model(8);
    const token_sequence tokens = {1, 3, 5, 7, 2};
    const auto exact = shapley_exact(model, tokens, target::log_probability(0));
    const auto r = kernel_shap(model, tokens, target::log_probability(0), {.n_samples = 30, .paired = false});
    for (std::size_t i = 0; i < 5; ++i) CHECK(r.scores[i] == Approx(exact.scores[i]).margin(1e-10));
  }
}

TEST_CASE("perturbation: the surrogate regressions match scikit-learn", "[attribution][perturbation]") {
  // 16 samples of 5 binary features from a fixed LCG, y with an interaction, exponential weights.
  // Reference values: scikit-learn 1.2.1, Ridge(alpha).fit / Lasso(alpha, tol=1e-15).fit with
  // sample_weight, coef_, intercept_ and score(X, y, sample_weight).
  const std::size_t n = 16, k = 5;
  detail::row_matrix<double> x(n, k);
  std::vector<double> y(n), w(n);
  std::uint64_t state = 12345;
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t j = 0; j < k; ++j) {
      state = (state * 1103515245 + 12345) % (std::uint64_t{1} << 31);
      x(static_cast<Eigen::Index>(i), static_cast<Eigen::Index>(j)) = (state >> 16) & 1;
    }
  for (std::size_t i = 0; i < n; ++i) {
    const auto r = static_cast<Eigen::Index>(i);
    y[i] = std::sin(double(i)) + 0.25 * double(i % 3) + x(r, 0) - 0.5 * x(r, 2) * x(r, 3);
    w[i] = std::exp(-0.1 * double(i));
  }
  struct reference {
    bool ridge;
    double alpha;
    std::vector<double> coefficients;
    double intercept, r2;
  };
  const std::vector<reference> cases = {
      {true,
       1.0,
       {0.42970982606859237, 0.49315542855081956, -0.5321489344375343, -0.42696342588719305, 0.10199429024908384},
       0.5058425729814765,
       0.5255894703317964},
      {true,
       0.1,
       {0.4789128142100444, 0.7255967775249684, -0.9341850124389874, -0.7703941171748061, 0.11279342831003407},
       0.6617494221951673,
       0.6143334387374351},
      {false,
       0.01,
       {0.4466479710683294, 0.7444405259767453, -0.9235833175994366, -0.8044402798769118, 0.04052323007687864},
       0.7209196073040952,
       0.6136334839501012},
      {false,
       0.05,
       {0.3930773283949162, 0.5699037170866722, -0.5881528223318543, -0.5152280365600025, 0.0},
       0.6015651371032719,
       0.5462609892394226},
  };
  for (const auto& c : cases) {
    CAPTURE(c.ridge, c.alpha);
    const auto fit =
        c.ridge ? detail::weighted_ridge(x, y, w, c.alpha) : detail::weighted_lasso(x, y, w, c.alpha, "test");
    // Both solve the same convex problem to convergence; 1e-9 covers the solvers' rounding.
    for (std::size_t j = 0; j < k; ++j) CHECK(fit.coefficients[j] == Approx(c.coefficients[j]).margin(1e-9));
    CHECK(fit.intercept == Approx(c.intercept).margin(1e-9));
    CHECK(fit.r2 == Approx(c.r2).margin(1e-9));
  }
  SECTION("the constrained least squares meets its constraint and its optimality condition") {
    const auto phi = detail::constrained_least_squares(x, y, w, 1.5);
    CHECK(std::accumulate(phi.begin(), phi.end(), 0.0) == Approx(1.5).epsilon(1e-14));
    // KKT: the weighted residual's correlation with each column is the same (the multiplier).
    std::vector<double> g(k, 0.0);
    for (std::size_t i = 0; i < n; ++i) {
      double r = y[i];
      for (std::size_t j = 0; j < k; ++j) r -= x(static_cast<Eigen::Index>(i), static_cast<Eigen::Index>(j)) * phi[j];
      for (std::size_t j = 0; j < k; ++j)
        g[j] += w[i] * r * x(static_cast<Eigen::Index>(i), static_cast<Eigen::Index>(j));
    }
    for (std::size_t j = 1; j < k; ++j) CHECK(g[j] == Approx(g[0]).margin(1e-12));
  }
}

TEST_CASE("perturbation: same seed, same bits, whatever the batch size and thread count",
          "[attribution][perturbation]") {
  const toy_mlp model(9);
  const token_sequence tokens = {1, 2, 3, 4, 5, 6, 7, 8, 3, 1, 6};
  const target t = target::log_probability(3);
  auto run_all = [&](std::size_t batch, std::size_t threads, std::uint64_t seed) {
    const execution_options exec = execution_with(batch, threads);
    return std::vector<attribution_result>{
        kernel_shap(model, tokens, t, {.n_samples = 200, .seed = seed, .execution = exec}),
        lime(model, tokens, t, {.n_samples = 60, .seed = seed, .execution = exec}),
        lime(model, tokens, t, {.n_samples = 60, .surrogate = lime_surrogate::lasso, .seed = seed, .execution = exec}),
        shapley_sampling(model, tokens, t, {.n_samples = 10, .antithetic = true, .seed = seed, .execution = exec}),
        occlusion(model, tokens, t, {.window = 2, .execution = exec}),
        shapley_exact(model, tokens, t, {.execution = exec}),
    };
  };
  const auto serial = run_all(1, 1, 42);
  for (auto [batch, threads] : {std::pair{7u, 1u}, std::pair{64u, 1u}, std::pair{5u, 2u}, std::pair{3u, 0u}}) {
    const auto other = run_all(batch, threads, 42);
    for (std::size_t m = 0; m < serial.size(); ++m) {
      CAPTURE(serial[m].method, batch, threads);
      CHECK(other[m].scores == serial[m].scores);  // bit-identical
      CHECK(other[m].standard_errors == serial[m].standard_errors);
      CHECK(other[m].model_evaluations == serial[m].model_evaluations);
    }
  }
  const auto reseeded = run_all(8, 1, 43);
  for (std::size_t m = 0; m < 4; ++m) CHECK(reseeded[m].scores != serial[m].scores);  // the seed matters
}

TEST_CASE("perturbation: model_evaluations counts the passes made", "[attribution][perturbation]") {
  const toy_mlp model(10);
  const token_sequence tokens = {1, 2, 3, 4, 5, 6, 7};
  const target t = target::logit(0);
  auto count = [&](auto&& run) {
    model.passes = 0;
    const attribution_result r = run();
    CAPTURE(r.method);
    CHECK(r.model_evaluations == model.passes.load());
    return r.model_evaluations;
  };
  CHECK(count([&] { return occlusion(model, tokens, t, {.window = 2, .stride = 2}); }) == 4 + 2);
  CHECK(count([&] { return feature_ablation(model, tokens, t); }) == 7 + 2);
  CHECK(count([&] { return lime(model, tokens, t, {.n_samples = 40}); }) == 42);
  CHECK(count([&] { return kernel_shap(model, tokens, t, {.n_samples = 50}); }) == 52);
  CHECK(count([&] { return kernel_shap(model, tokens, t, {.n_samples = 51}); }) == 52);  // an odd remainder is unused
  CHECK(count([&] { return kernel_shap(model, tokens, t); }) == 128);  // auto: 2n + 2048, capped at 2^7 - 2
  CHECK(count([&] { return shapley_sampling(model, tokens, t, {.n_samples = 5}); }) == 5 * 6 + 2);
  CHECK(count([&] { return shapley_exact(model, tokens, t); }) == 128);
}

TEST_CASE("perturbation: progress reports and cancellation", "[attribution][perturbation]") {
  const toy_mlp model(11);
  const token_sequence tokens = {1, 2, 3, 4, 5, 6, 7, 8};
  std::vector<progress> seen;
  execution_options exec = execution_with(16, 1);
  exec.on_progress = [&](const progress& p) {
    seen.push_back(p);
    return true;
  };
  const auto r = shapley_exact(model, tokens, target::logit(1), {.execution = exec});
  REQUIRE(!seen.empty());
  CHECK(seen.back().done == 256);
  for (std::size_t i = 1; i < seen.size(); ++i) CHECK(seen[i].done >= seen[i - 1].done);
  for (const auto& p : seen) CHECK(p.total == 256);
  CHECK(seen.front().stage == "shapley_exact");
  exec.on_progress = [](const progress& p) { return p.done < 100; };
  REQUIRE_THROWS_AS(kernel_shap(model, tokens, target::logit(1), {.n_samples = 200, .execution = exec}),
                    glassbox::cancelled);
}

TEST_CASE("perturbation: a single feature gets the whole difference", "[attribution][perturbation]") {
  const toy_mlp model(12);
  const token_sequence tokens = {3, 5, 2};
  const target t = target::log_probability(1);
  const std::vector<int> one = {0, 0, -1};  // one feature of two tokens, the last token held fixed
  const double delta = t.value_of(model.logits(tokens)) - t.value_of(model.logits(token_sequence{0, 0, 2}));
  for (const auto& r :
       {occlusion(model, tokens, t, {.feature_map = one}), feature_ablation(model, tokens, t, {.feature_map = one}),
        kernel_shap(model, tokens, t, {.feature_map = one}),
        shapley_sampling(model, tokens, t, {.n_samples = 3, .feature_map = one}),
        shapley_exact(model, tokens, t, {.feature_map = one})}) {
    CAPTURE(r.method);
    CHECK(r.scores[0] == Approx(delta).margin(1e-12));
    CHECK(r.scores[1] == r.scores[0]);
    CHECK(r.scores[2] == 0.0);
    CHECK(r.model_evaluations == 2 + (r.method == "occlusion" || r.method == "feature_ablation" ? 1 : 0));
  }
}

TEST_CASE("perturbation: bad options are rejected with a clear message", "[attribution][perturbation]") {
  const auto model = models::linear_bag::random(12, 5, 4, 26);
  const target t = target::logit(0);
  const token_sequence& x = bag_tokens;
  auto rejects = [&](auto&& call, const std::string& message) {
    REQUIRE_THROWS_MATCHES(call(), glassbox::error, what_contains(message));
  };
  rejects([&] { return occlusion(model, x, t, {.window = 0}); }, "glassbox::occlusion: window must be >= 1, got 0");
  rejects([&] { return occlusion(model, x, t, {.stride = 0}); }, "glassbox::occlusion: stride must be >= 1, got 0");
  rejects([&] { return occlusion(model, x, t, {.window = 9}); },
          "glassbox::occlusion: window must be <= the number of features (8), got 9");
  rejects([&] { return occlusion(model, x, t, {.window = 2, .stride = 3}); },
          "glassbox::occlusion: stride must be <= window (2) unless the window covers every feature, got 3");
  rejects([&] { return lime(model, x, t, {.n_samples = 0}); }, "glassbox::lime: n_samples must be >= 1, got 0");
  rejects([&] { return lime(model, x, t, {.kernel_width = 0}); },
          "glassbox::lime: kernel_width must be > 0 and finite, got 0");
  rejects([&] { return lime(model, x, t, {.alpha = -1.0}); }, "glassbox::lime: alpha must be >= 0 and finite, got -1");
  rejects([&] { return kernel_shap(model, x, t, {.n_samples = 1}); },
          "glassbox::kernel_shap: n_samples must be 0 (auto) or >= 2, got 1");
  rejects([&] { return shapley_sampling(model, x, t, {.n_samples = 0}); },
          "glassbox::shapley_sampling: n_samples must be >= 1, got 0");
  rejects([&] { return shapley_sampling(model, x, t, {.n_samples = 5, .antithetic = true}); },
          "glassbox::shapley_sampling: n_samples must be even when antithetic is true, got 5");
  const token_sequence long_input(21, 3);
  rejects([&] { return shapley_exact(model, long_input, t); },
          "glassbox::shapley_exact: the number of features must be <= 20 (2^n evaluations), got 21");
  rejects(
      [&] {
        return feature_ablation(model, x, t, {.feature_map = {0, 1, 2, 3, 4, 5, 6}});
      },
      "glassbox::feature_ablation: feature_map must have one entry per token (8), got 7");
  rejects(
      [&] {
        return kernel_shap(model, x, t, {.feature_map = {0, 1, 2, -2, 3, 4, 5, 6}});
      },
      "glassbox::kernel_shap: feature_map entries must be -1 (held fixed) or a group id >= 0, got -2 at token 3");
  rejects(
      [&] {
        return lime(model, x, t, {.feature_map = {0, 0, 1, 1, 3, 3, 3, 3}});
      },
      "glassbox::lime: feature_map must use every group id from 0 to 3, but 2 is missing");
  rejects([&] { return occlusion(model, x, t, {.feature_map = std::vector<int>(8, -1)}); },
          "glassbox::occlusion: feature_map must put at least one token in a feature");
  rejects([&] { return shapley_sampling(model, token_sequence{}, t); },
          "glassbox::shapley_sampling: tokens must not be empty");
  rejects([&] { return feature_ablation(model, x, t, {.baseline = baseline::token(40)}); },
          "glassbox::feature_ablation: baseline token must be in [0, 12), got 40");
  rejects([&] { return kernel_shap(model, x, t, {.execution = execution_with(0, 1)}); },
          "glassbox::kernel_shap: batch_size must be >= 1, got 0");
  REQUIRE_THROWS_MATCHES(feature_ablation(model, x, t, {.feature_map = {0, 1}}), glassbox::shape_error,
                         what_contains("feature_map must have one entry per token"));
}

TEST_CASE("perturbation: results record their options", "[attribution][perturbation]") {
  const auto model = models::linear_bag::random(12, 5, 4, 27);
  const auto r =
      lime(model, bag_tokens, target::logit(0),
           {.n_samples = 30, .surrogate = lime_surrogate::lasso, .feature_map = {0, 0, 1, 2, 3, 4, 5, 6}, .seed = 9});
  auto find = [&](const std::string& name) {
    const auto it = std::find_if(r.options.begin(), r.options.end(), [&](auto& o) { return o.name == name; });
    REQUIRE(it != r.options.end());
    return it->value;
  };
  CHECK(r.method == "lime");
  CHECK(std::get<std::int64_t>(find("n_samples")) == 30);
  CHECK(std::get<std::string>(find("surrogate")) == "lasso");
  CHECK(std::get<double>(find("alpha")) == 0.01);  // Captum's lasso default
  CHECK(std::get<double>(find("kernel_width")) == 1.0);
  CHECK(std::get<std::string>(find("baseline")) == "pad");
  CHECK(std::get<std::string>(find("feature_map")) == "0,0,1,2,3,4,5,6");
  CHECK(std::get<std::int64_t>(find("seed")) == 9);
  const double r2 = std::get<double>(find("surrogate_r2"));
  CHECK(r2 > 0.5);  // the model is linear in the mask; lasso's shrinkage costs a little fit
  CHECK(r2 <= 1.0);
  CHECK(std::isfinite(std::get<double>(find("surrogate_intercept"))));
  CHECK_FALSE(r.convergence_delta.has_value());  // LIME has no efficiency property
}

TEST_CASE("perturbation: on a small GPT-2", "[attribution][perturbation][gpt2]") {
  models::gpt2_config c;
  c.n_layer = 2;
  c.n_head = 2;
  c.n_embd = 16;
  c.n_positions = 32;
  c.vocab_size = 30;
  c.pad_token_id = 0;
  const auto model = models::gpt2::random(c, 5);
  const target t = target::log_probability(4);
  // The library evaluates through the model's stacked batch pass, the references below through
  // single passes: float rounding differs by ~1e-7 of values of size ~3, hence 1e-5.
  constexpr double tol = 1e-5;
  SECTION("exact Shapley values equal the brute-force average over all orders") {
    const token_sequence tokens = {5, 7, 9, 11, 3, 2};
    const auto exact = shapley_exact(model, tokens, t);
    const auto reference = brute_force_shapley(model, tokens, t, 0);
    for (std::size_t i = 0; i < tokens.size(); ++i) CHECK(exact.scores[i] == Approx(reference[i]).margin(tol));
  }
  const token_sequence tokens = {5, 7, 9, 11, 3, 2, 8, 21};
  const auto exact = shapley_exact(model, tokens, t);
  SECTION("KernelSHAP at full budget is exact; every Shapley method is efficient") {
    const auto ks = kernel_shap(model, tokens, t, {.n_samples = 254});
    for (std::size_t i = 0; i < tokens.size(); ++i) CHECK(ks.scores[i] == Approx(exact.scores[i]).margin(tol));
    const auto ks_small = kernel_shap(model, tokens, t, {.n_samples = 40, .seed = 2});
    const auto sampled = shapley_sampling(model, tokens, t, {.n_samples = 4, .seed = 2});
    for (const auto* r : {&exact, &ks, &ks_small, &sampled}) CHECK(std::abs(*r->convergence_delta) < 1e-9);
  }
  SECTION("removal deletes tokens and keeps reading the prediction after the last token") {
    const std::vector<int> map = {0, 1, 2, 3, 4, 5, 6, -1};
    const auto r = feature_ablation(model, tokens, t, {baseline::removal(), map});
    const double full = t.value_of(model.logits(tokens));
    for (std::size_t i = 0; i < 7; ++i) {
      token_sequence shorter = tokens;
      shorter.erase(shorter.begin() + static_cast<std::ptrdiff_t>(i));
      CHECK(r.scores[i] == Approx(full - t.value_of(model.logits(shorter))).margin(tol));
    }
    CHECK(r.baseline_value == Approx(t.value_of(model.logits(token_sequence{21}))).margin(tol));
  }
  SECTION("zero embeddings go through logits_from_embeddings") {
    const auto r = occlusion(model, tokens, t, {.window = 2, .baseline = baseline::zero()});
    const tensor2 zeros = xt::zeros<float>({tokens.size(), c.n_embd});
    CHECK(r.baseline_value == Approx(t.value_of(model.logits_from_embeddings(zeros))).margin(tol));
    CHECK(r.target_value == Approx(t.value_of(model.logits(tokens))).margin(tol));
  }
}

TEST_CASE("perturbation: the default baseline resolves per model", "[attribution][perturbation][gpt2]") {
  models::gpt2_config c;
  c.n_layer = 2;
  c.n_head = 2;
  c.n_embd = 16;
  c.n_positions = 32;
  c.vocab_size = 30;  // no pad_token_id, as the public GPT-2
  const auto model = models::gpt2::random(c, 6);
  REQUIRE_FALSE(model.pad_token().has_value());
  const target t = target::log_probability(4);
  const token_sequence tokens = {5, 7, 9, 11, 3};
  // Batched library passes against single reference passes: float rounding ~1e-7 of values ~3.
  constexpr double tol = 1e-5;
  auto recorded_baseline = [](const attribution_result& r) {
    const auto it = std::find_if(r.options.begin(), r.options.end(), [](auto& o) { return o.name == "baseline"; });
    REQUIRE(it != r.options.end());
    return std::get<std::string>(it->value);
  };
  SECTION("a GPT-2 without a pad token: every perturbation method runs with default options, on zero embeddings") {
    const tensor2 e = model.embed(tokens);
    const tensor2 zeros = xt::zeros<float>(e.shape());
    const double at_zero = t.value_of(model.logits_from_embeddings(zeros));
    const double at_x = t.value_of(model.logits(tokens));
    for (const auto& r : {occlusion(model, tokens, t), feature_ablation(model, tokens, t), lime(model, tokens, t),
                          kernel_shap(model, tokens, t), shapley_sampling(model, tokens, t),
                          shapley_exact(model, tokens, t)}) {
      INFO(r.method);
      CHECK(recorded_baseline(r) == "zero");
      CHECK(r.baseline_value == Approx(at_zero).margin(tol));
      CHECK(r.target_value == Approx(at_x).margin(tol));
    }
    // Feature ablation, directly: f(x) - f(x with token i's embedding zeroed).
    const auto ablation = feature_ablation(model, tokens, t);
    for (std::size_t i = 0; i < tokens.size(); ++i) {
      tensor2 without = e;
      for (std::size_t k = 0; k < c.n_embd; ++k) without(i, k) = 0.0f;
      CHECK(ablation.scores[i] == Approx(at_x - t.value_of(model.logits_from_embeddings(without))).margin(tol));
    }
  }
  SECTION("a model with a pad token keeps the pad token as its default") {
    models::gpt2_config cp = c;
    cp.pad_token_id = 0;
    const auto padded = models::gpt2::random(cp, 6);
    const auto by_default = occlusion(padded, tokens, t);
    const auto explicit_pad = occlusion(padded, tokens, t, {.baseline = baseline::pad()});
    CHECK(recorded_baseline(by_default) == "pad");
    CHECK(by_default.scores == explicit_pad.scores);
    CHECK(by_default.baseline_value == Approx(t.value_of(padded.logits(token_sequence(5, 0)))).margin(tol));
  }
  SECTION("a Model with neither a pad token nor embeddings: a clear error that names the baselines to pass") {
    const auto bag = models::linear_bag::random(12, 5, 4, 26);
    const tokens_only_without_pad plain{bag};
    const token_sequence x = {1, 2, 3, 4};
    const target logit = target::logit(0);
    const std::string rest =
        ": the model has no pad token and is not an EmbeddingModel, so it has no default baseline; set "
        "options.baseline to baseline::token(id) or baseline::removal()";
    REQUIRE_THROWS_MATCHES(occlusion(plain, x, logit), glassbox::error, what_contains("glassbox::occlusion" + rest));
    REQUIRE_THROWS_MATCHES(feature_ablation(plain, x, logit), glassbox::error,
                           what_contains("glassbox::feature_ablation" + rest));
    REQUIRE_THROWS_MATCHES(lime(plain, x, logit), glassbox::error, what_contains("glassbox::lime" + rest));
    REQUIRE_THROWS_MATCHES(kernel_shap(plain, x, logit), glassbox::error, what_contains("glassbox::kernel_shap" + rest));
    REQUIRE_THROWS_MATCHES(shapley_sampling(plain, x, logit), glassbox::error,
                           what_contains("glassbox::shapley_sampling" + rest));
    REQUIRE_THROWS_MATCHES(shapley_exact(plain, x, logit), glassbox::error,
                           what_contains("glassbox::shapley_exact" + rest));
    // An explicit token baseline works on it.
    const auto r = occlusion(plain, x, logit, {.baseline = baseline::token(0)});
    CHECK(recorded_baseline(r) == "token 0");
  }
}

// A Model with GPT-2's prefix members that counts the positions each pass computes.
struct counting_prefix_model {
  const models::gpt2& m;
  mutable std::size_t scratch_positions = 0, resumed_positions = 0, caches = 0;
  std::size_t vocab_size() const { return m.vocab_size(); }
  std::size_t output_rows(std::size_t n) const { return n; }
  tensor2 logits(token_span t) const {
    scratch_positions += t.size();
    return m.logits(t);
  }
  auto prefix_cache(token_span t) const {
    ++caches;
    scratch_positions += t.size();
    return m.prefix_cache(t);
  }
  tensor3 logits_batch_from_prefix(const models::gpt2::prefix_cache_type& cache, const token_matrix& batch,
                                   std::span<const std::size_t> starts, std::span<const std::size_t> rows) const {
    for (auto s : starts) resumed_positions += batch.shape(1) - s;
    return m.logits_batch_from_prefix(cache, batch, starts, rows);
  }
};

TEST_CASE("perturbation: causal prefix reuse gives the values of evaluating every input from the start",
          "[attribution][perturbation][gpt2][prefix]") {
  // Parameters far from GPT-2's initialisation so that every position matters.
  models::gpt2_config c;
  c.n_layer = 2;
  c.n_head = 2;
  c.n_embd = 16;
  c.vocab_size = 30;
  c.n_positions = 16;
  const auto table = models::gpt2_parameter_table(c);
  std::vector<float> p(table.back().offset + table.back().size);
  glassbox::rng g(11);
  for (auto& x : p) x = static_cast<float>(g.normal(0.0, 0.3));
  const models::gpt2 model(c, p);
  const token_sequence tokens = {3, 5, 7, 9, 11, 13, 2, 4, 6, 8};

  // A target at the last row, and one at row 6 (tokens after it cannot change it), and a sequence target.
  const std::vector<target> targets = {target::log_probability(3), target::logit(4, 6),
                                       target::sequence_log_probability(token_sequence{4, 6, 8})};
  for (const auto& base : {baseline::token(1), baseline::zero()}) {
    for (const auto& t : targets) {
      auto run = [&](bool reuse) {
        execution_options e;
        e.reuse_prefix = reuse;
        e.batch_size = 7;
        occlusion_options o;
        o.window = 2;
        o.baseline = base;
        o.execution = e;
        kernel_shap_options k;
        k.n_samples = 200;
        k.seed = 3;
        k.baseline = base;
        k.execution = e;
        shapley_sampling_options s;
        s.n_samples = 6;
        s.seed = 3;
        s.baseline = base;
        s.execution = e;
        lime_options l;
        l.n_samples = 80;
        l.seed = 3;
        l.baseline = base;
        l.execution = e;
        return std::vector<attribution_result>{occlusion(model, tokens, t, o), kernel_shap(model, tokens, t, k),
                                               shapley_sampling(model, tokens, t, s), lime(model, tokens, t, l)};
      };
      const auto reused = run(true), scratch = run(false);
      for (std::size_t m = 0; m < reused.size(); ++m) {
        CAPTURE(base.describe(), t.describe(), reused[m].method);
        CHECK(reused[m].model_evaluations == scratch[m].model_evaluations);
        // The resumed passes run their matrix products over fewer rows, which may round differently
        // (as a different batch size may): equal to float rounding, about 1e-7 of a value of order 1.
        CHECK(reused[m].target_value == Approx(scratch[m].target_value).margin(1e-5));
        double scale = 0;
        for (double x : scratch[m].scores) scale = std::max(scale, std::abs(x));
        for (std::size_t i = 0; i < tokens.size(); ++i)
          CHECK(reused[m].scores[i] == Approx(scratch[m].scores[i]).margin(1e-5 * std::max(1.0, scale)));
      }
    }
  }
}

TEST_CASE("perturbation: causal prefix reuse computes only the positions after each change",
          "[attribution][perturbation][gpt2][prefix]") {
  models::gpt2_config c;
  c.n_layer = 1;
  c.n_head = 2;
  c.n_embd = 8;
  c.vocab_size = 20;
  c.n_positions = 16;
  const auto gpt2 = models::gpt2::random(c, 3);
  const token_sequence tokens = {3, 5, 7, 9, 11, 13, 2, 4, 6, 8, 10, 12};
  const std::size_t T = tokens.size();
  const counting_prefix_model model{gpt2};
  static_assert(concepts::has_prefix_cache<counting_prefix_model>);
  const auto r = feature_ablation(model, tokens, target::log_probability(3), {.baseline = baseline::token(1)});
  // Ablating token i changes positions i.. only: resumed at i from the cache of the input; the
  // input's own value is its last row, resumed from its cache.
  CHECK(model.caches == 1);
  std::size_t expected = 1;
  for (std::size_t i = 1; i < T; ++i) expected += T - i;  // token 0 changes position 0: from scratch
  CHECK(model.resumed_positions == expected);
  // From scratch: the cache of the input, the all-absent input, and token 0 ablated.
  CHECK(model.scratch_positions == 3 * T);
  CHECK(r.model_evaluations == T + 2);

  // Switched off: every input from scratch.
  const counting_prefix_model plain{gpt2};
  execution_options e;
  e.reuse_prefix = false;
  const auto q = feature_ablation(plain, tokens, target::log_probability(3), {.baseline = baseline::token(1), .execution = e});
  CHECK(plain.resumed_positions == 0);
  CHECK(plain.scratch_positions == (T + 2) * T);
  for (std::size_t i = 0; i < T; ++i) CHECK(r.scores[i] == Approx(q.scores[i]).margin(1e-5));
}

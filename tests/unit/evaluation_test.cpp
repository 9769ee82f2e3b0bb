// Tests of the evaluation module: every metric against a closed form, a hand computation or an
// independent reference computed here. The model is the linear bag (models/linear_bag.hpp), whose
// target is additive in the tokens, so removal effects are known exactly.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <numeric>
#include <optional>
#include <vector>

#include "glassbox/evaluation.hpp"
#include "glassbox/models/linear_bag.hpp"
#include "test_support.hpp"

using glassbox::test::what_contains;
namespace gb = glassbox;

namespace {

// A linear bag with explicit weights: 2 classes, d = 2. Logit of class 1 = e . (1, 0.5) + 0.2,
// logit of class 0 = e . (0, 0) - 0.1. Token 0 (pad) and 1, 2 (fillers) have zero embeddings; 3, 4, 5
// push class 1 up; 6 pushes it down; 7 is the marker (zero embedding).
gb::models::linear_bag rationale_model() {
  gb::tensor2 e = {{0, 0}, {0, 0}, {0, 0}, {1.0f, 0.2f}, {0.5f, 0.4f}, {0.3f, 1.0f}, {-0.4f, -0.1f}, {0, 0}};
  gb::tensor2 w = {{0, 1.0f}, {0, 0.5f}};
  gb::tensor1 b = {-0.1f, 0.2f};
  return {e, w, b, 0};
}

// The class-1 logit margin and probability of a bag of tokens, by hand in double.
double margin_of(const gb::models::linear_bag& m, const std::vector<gb::token_id>& tokens) {
  double s0 = 0, s1 = 0;
  for (auto t : tokens) {
    s0 += static_cast<double>(m.embedding_matrix()(static_cast<std::size_t>(t), 0));
    s1 += static_cast<double>(m.embedding_matrix()(static_cast<std::size_t>(t), 1));
  }
  const double z1 = s0 * m.weights()(0, 1) + s1 * m.weights()(1, 1) + m.bias()(1);
  const double z0 = s0 * m.weights()(0, 0) + s1 * m.weights()(1, 0) + m.bias()(0);
  return z1 - z0;
}
double probability_of(const gb::models::linear_bag& m, const std::vector<gb::token_id>& tokens) {
  return 1.0 / (1.0 + std::exp(-margin_of(m, tokens)));
}

// The logit of class c at the last row of a random linear bag, by hand.
double logit_of(const gb::models::linear_bag& m, const std::vector<gb::token_id>& tokens, std::size_t c) {
  double z = m.bias()(c);
  for (auto t : tokens)
    for (std::size_t j = 0; j < m.width(); ++j)
      z += static_cast<double>(m.embedding_matrix()(static_cast<std::size_t>(t), j)) * m.weights()(j, c);
  return z;
}

// Token i's exact removal effect on logit c under the pad baseline: (e_i - e_pad) . W[:, c].
std::vector<double> pad_effects(const gb::models::linear_bag& m, const std::vector<gb::token_id>& tokens,
                                std::size_t c) {
  std::vector<double> out;
  for (auto t : tokens) {
    double v = 0;
    for (std::size_t j = 0; j < m.width(); ++j)
      v += (static_cast<double>(m.embedding_matrix()(static_cast<std::size_t>(t), j)) -
            m.embedding_matrix()(0, j)) *
           m.weights()(j, c);
    out.push_back(v);
  }
  return out;
}

std::vector<double> random_scores(std::size_t n, std::uint64_t seed) {
  gb::rng g(seed);
  std::vector<double> s(n);
  for (auto& x : s) x = g.normal();
  return s;
}

// Positions of the top k scores, ties by position (the documented rule), computed by selection.
std::vector<std::size_t> top_positions(const std::vector<double>& s, std::size_t k, std::size_t n) {
  std::vector<std::size_t> out;
  std::vector<bool> taken(n, false);
  for (std::size_t r = 0; r < k; ++r) {
    std::size_t best = n;
    for (std::size_t i = 0; i < n; ++i)
      if (!taken[i] && (best == n || s[i] > s[best])) best = i;
    taken[best] = true;
    out.push_back(best);
  }
  return out;
}

}  // namespace

TEST_CASE("a perfect rationale on the linear bag: sufficiency 0, maximal comprehensiveness", "[evaluation]") {
  const auto model = rationale_model();
  // fillers 1, 2 around the rationale 3, 4, 5; a distractor 6; marker 7 at the scored row.
  const std::vector<gb::token_id> tokens = {1, 3, 2, 4, 1, 5, 6, 7};
  const std::vector<std::size_t> rationale = {1, 3, 5};
  const auto t = gb::target::probability(1);
  for (const auto& removal : {gb::baseline::removal(), gb::baseline::pad()}) {
    INFO("baseline " << removal.describe());
    const auto r = gb::rationale_faithfulness(model, tokens, t, rationale, {.removal = removal});
    // f(r) keeps the rationale, the distractor goes: the rationale alone gives a higher probability
    // than the full input, so sufficiency is f(x) - f(r) < 0 here; without the distractor it is 0.
    CHECK(r.full_value == Approx(probability_of(model, {1, 3, 2, 4, 1, 5, 6, 7})).epsilon(1e-6));
    CHECK(r.rationale_only == Approx(probability_of(model, {3, 4, 5, 7})).epsilon(1e-6));
    CHECK(r.without_rationale == Approx(probability_of(model, {1, 2, 1, 6, 7})).epsilon(1e-6));
    CHECK(r.model_evaluations == 3);

    // Without the distractor: sufficiency is 0 (to float rounding) and comprehensiveness is maximal
    // over every set of three removable tokens.
    const std::vector<gb::token_id> clean = {1, 3, 2, 4, 1, 5, 7};
    const auto q = gb::rationale_faithfulness(model, clean, t, rationale, {.removal = removal});
    CHECK(std::abs(q.sufficiency) < 1e-6);  // float logits: about 1e-7 of a probability
    const double closed = probability_of(model, clean) - probability_of(model, {1, 2, 1, 7});
    CHECK(q.comprehensiveness == Approx(closed).epsilon(1e-5));
    double best_other = -1;
    for (std::size_t a = 0; a < 6; ++a)
      for (std::size_t b = a + 1; b < 6; ++b)
        for (std::size_t c = b + 1; c < 6; ++c) {
          const std::vector<std::size_t> s = {a, b, c};
          if (s == rationale) continue;
          best_other = std::max(best_other,
                                gb::rationale_faithfulness(model, clean, t, s, {.removal = removal}).comprehensiveness);
        }
    CHECK(q.comprehensiveness > best_other + 1e-3);
  }
}

namespace {
// A causal toy model whose output depends on where tokens are: logit c at row r is
// sum_{i <= r} (r - i + 1) (tok_i + 1) (c + 1) / 10, so deleting a token and replacing it differ.
struct position_model {
  std::size_t vocab_size() const { return 6; }
  std::optional<gb::token_id> pad_token() const { return 0; }
  gb::tensor2 logits(gb::token_span tokens) const {
    gb::tensor2 out({tokens.size(), vocab_size()});
    for (std::size_t r = 0; r < tokens.size(); ++r)
      for (std::size_t c = 0; c < vocab_size(); ++c) {
        double z = 0;
        for (std::size_t i = 0; i <= r; ++i)
          z += static_cast<double>(r - i + 1) * (tokens[i] + 1) * static_cast<double>(c + 1) / 10;
        out(r, c) = static_cast<float>(z);
      }
    return out;
  }
};

// A sequence classifier: one output row, the bag's sum.
struct classifier_model {
  std::size_t vocab_size() const { return 6; }
  std::optional<gb::token_id> pad_token() const { return 0; }
  std::size_t output_rows(std::size_t) const { return 1; }
  gb::tensor2 logits(gb::token_span tokens) const {
    gb::tensor2 out({1, vocab_size()});
    for (std::size_t c = 0; c < vocab_size(); ++c) {
      double z = 0;
      for (auto x : tokens) z += static_cast<double>(x) * static_cast<double>(c) / 10;
      out(0, c) = static_cast<float>(z);
    }
    return out;
  }
};
}  // namespace

TEST_CASE("on a classifier every token is removable; removal needs one held fixed", "[evaluation]") {
  const classifier_model model;
  const std::vector<gb::token_id> tokens = {2, 5, 1, 4};
  const auto t = gb::target::logit(3);
  const std::vector<double> scores = {0.1, 0.9, 0.2, 0.5};
  const auto padded = gb::deletion_curve(model, tokens, t, scores, {.removal = gb::baseline::pad()});
  REQUIRE(padded.values.size() == 5);
  CHECK(padded.values[4] == Approx(0.0).margin(1e-6));  // every token (the last one too) replaced by pad 0
  CHECK_THROWS_MATCHES(gb::insertion_curve(model, tokens, t, scores), gb::error,
                       what_contains("baseline removal would leave an empty input"));
  const auto held = gb::insertion_curve(model, tokens, t, scores, {.feature_map = {0, 0, 0, -1}});
  CHECK(held.values[0] == Approx(4 * 0.3).epsilon(1e-6));  // only token 3 (id 4) left
}

TEST_CASE("removal deletes tokens, replacement baselines replace them, at the target's row", "[evaluation]") {
  const position_model model;
  const std::vector<gb::token_id> tokens = {2, 5, 1, 4, 3, 2};
  const auto t = gb::target::log_probability(3);
  auto direct = [&](const std::vector<gb::token_id>& x) { return t.value_of(model.logits(x)); };
  const std::vector<std::size_t> rationale = {1, 3};
  const auto removed = gb::rationale_faithfulness(model, tokens, t, rationale);
  CHECK(removed.full_value == Approx(direct(tokens)).epsilon(1e-6));
  CHECK(removed.without_rationale == Approx(direct({2, 1, 3, 2})).epsilon(1e-6));
  CHECK(removed.rationale_only == Approx(direct({5, 4, 2})).epsilon(1e-6));  // the last token is held fixed
  const auto padded = gb::rationale_faithfulness(model, tokens, t, rationale, {.removal = gb::baseline::pad()});
  CHECK(padded.without_rationale == Approx(direct({2, 0, 1, 0, 3, 2})).epsilon(1e-6));
  CHECK(padded.rationale_only == Approx(direct({0, 5, 0, 4, 0, 2})).epsilon(1e-6));
  // A target at an earlier row holds that token and every later one fixed.
  const auto early = gb::target::log_probability(3, 3);
  const auto e = gb::rationale_faithfulness(model, tokens, early, std::vector<std::size_t>{1});
  // The prediction after token 4 (row 3 of 6) is row 2 once token 1 is deleted.
  CHECK(e.without_rationale ==
        Approx(gb::target::log_probability(3, 2).value_of(model.logits(std::vector<gb::token_id>{2, 1, 4, 3, 2})))
            .epsilon(1e-6));
  CHECK_THROWS_MATCHES(gb::rationale_faithfulness(model, tokens, early, std::vector<std::size_t>{3}), gb::error,
                       what_contains("rationale positions must be removable tokens, got 3"));
  // An explicit feature map: token 0 is never removed either.
  const auto held = gb::insertion_curve(model, tokens, t, std::vector<double>{9, 1, 2, 3, 4, 0},
                                        {.feature_map = {-1, 0, 0, 0, 0, -1}});
  REQUIRE(held.values.size() == 5);
  CHECK(held.values[0] == Approx(direct({2, 2})).epsilon(1e-6));
  CHECK(held.values[2] == Approx(direct({2, 4, 3, 2})).epsilon(1e-6));  // top 2 of positions 1-4 by score: 4, 3
}

TEST_CASE("deletion and insertion curves on the linear bag equal closed forms", "[evaluation]") {
  const auto model = gb::models::linear_bag::random(12, 4, 3, 11);
  gb::rng g(5);
  std::vector<gb::token_id> tokens(10);
  for (auto& x : tokens) x = static_cast<gb::token_id>(1 + g.below(11));
  const std::size_t c = 2, n = tokens.size() - 1;  // the last token sits at the scored row: held fixed
  const auto t = gb::target::logit(static_cast<gb::token_id>(c));
  const std::vector<double> effects = pad_effects(model, tokens, c);
  const std::vector<double> scores = random_scores(tokens.size(), 9);
  const std::vector<std::size_t> order = top_positions(scores, n, n);
  const double full = logit_of(model, tokens, c);
  std::vector<gb::token_id> all_pad(tokens.size(), 0);
  all_pad.back() = tokens.back();
  const double empty = logit_of(model, all_pad, c);

  for (std::size_t steps : {std::size_t{0}, std::size_t{4}}) {
    INFO("steps " << steps);
    const gb::faithfulness_options o{.removal = gb::baseline::pad(), .steps = steps};
    const auto del = gb::deletion_curve(model, tokens, t, scores, o);
    const auto ins = gb::insertion_curve(model, tokens, t, scores, o);
    const std::size_t s = steps == 0 ? n : steps;
    REQUIRE(del.values.size() == s + 1);
    REQUIRE(ins.values.size() == s + 1);
    double del_area = 0, ins_area = 0, prev_del = 0, prev_ins = 0;
    for (std::size_t j = 0; j <= s; ++j) {
      const std::size_t k = static_cast<std::size_t>(std::floor(static_cast<double>(j * n) / static_cast<double>(s) + 0.5));
      CHECK(del.tokens[j] == k);
      CHECK(del.fractions[j] == Approx(static_cast<double>(j) / static_cast<double>(s)));
      double removed = 0;
      for (std::size_t r = 0; r < k; ++r) removed += effects[order[r]];
      CHECK(del.values[j] == Approx(full - removed).margin(1e-4));  // float logits of size ~5
      CHECK(ins.values[j] == Approx(empty + removed).margin(1e-4));
      if (j > 0) {
        del_area += (full - removed + prev_del) / 2 / static_cast<double>(s);
        ins_area += (empty + removed + prev_ins) / 2 / static_cast<double>(s);
      }
      prev_del = full - removed;
      prev_ins = empty + removed;
    }
    CHECK(del.area == Approx(del_area).margin(1e-4));
    CHECK(ins.area == Approx(ins_area).margin(1e-4));
    CHECK(del.values.front() == Approx(full).margin(1e-4));
    CHECK(ins.values.back() == Approx(full).margin(1e-4));
    CHECK(del.model_evaluations == s + 1);
  }
  // More steps than tokens: points share token counts, and each count is evaluated once.
  const auto fine = gb::deletion_curve(model, tokens, t, scores, {.removal = gb::baseline::pad(), .steps = 20});
  CHECK(fine.values.size() == 21);
  CHECK(fine.model_evaluations == n + 1);
  CHECK(fine.values[1] == fine.values[0]);  // round(9 / 20) = 0 tokens removed
}

TEST_CASE("ERASER AOPC bins match a hand computation", "[evaluation]") {
  const auto model = gb::models::linear_bag::random(12, 4, 3, 21);
  gb::rng g(6);
  std::vector<gb::token_id> tokens(13);  // 12 removable + the token at the scored row
  for (auto& x : tokens) x = static_cast<gb::token_id>(1 + g.below(11));
  const std::size_t c = 1;
  const auto t = gb::target::logit(static_cast<gb::token_id>(c));
  const std::vector<double> effects = pad_effects(model, tokens, c);
  std::vector<double> scores = random_scores(tokens.size(), 3);
  scores[4] = scores[7];  // a tie: broken by position (4 before 7)
  const auto a = gb::eraser_aopc(model, tokens, t, scores, {.removal = gb::baseline::pad()});
  // ceil(12 x {0.01, 0.05, 0.1, 0.2, 0.5}) = {1, 1, 2, 3, 6}
  CHECK(a.bin_tokens == std::vector<std::size_t>{1, 1, 2, 3, 6});
  const std::vector<std::size_t> order = top_positions(scores, 12, 12);
  double comp = 0, suff = 0;
  double total = 0;
  for (std::size_t i = 0; i < 12; ++i) total += effects[i];
  for (std::size_t b = 0; b < 5; ++b) {
    double top = 0;
    for (std::size_t r = 0; r < a.bin_tokens[b]; ++r) top += effects[order[r]];
    CHECK(a.comprehensiveness_points[b] == Approx(top).margin(1e-4));
    CHECK(a.sufficiency_points[b] == Approx(total - top).margin(1e-4));
    comp += top / 5;
    suff += (total - top) / 5;
  }
  CHECK(a.comprehensiveness == Approx(comp).margin(1e-4));
  CHECK(a.sufficiency == Approx(suff).margin(1e-4));
  CHECK(a.model_evaluations == 11);

  // |score| ranking: negating every score leaves the AOPC unchanged.
  std::vector<double> negated(scores.size());
  for (std::size_t i = 0; i < scores.size(); ++i) negated[i] = -scores[i];
  const auto x = gb::eraser_aopc(model, tokens, t, scores, {.removal = gb::baseline::pad(), .absolute = true});
  const auto y = gb::eraser_aopc(model, tokens, t, negated, {.removal = gb::baseline::pad(), .absolute = true});
  CHECK(x.comprehensiveness == Approx(y.comprehensiveness).margin(1e-9));
}

TEST_CASE("infidelity of an exact attribution of a linear model is 0", "[evaluation]") {
  const auto model = gb::models::linear_bag::random(12, 4, 3, 31);
  gb::rng g(7);
  std::vector<gb::token_id> tokens(9);
  for (auto& x : tokens) x = static_cast<gb::token_id>(1 + g.below(11));
  const std::size_t c = 0;
  const auto t = gb::target::logit(static_cast<gb::token_id>(c));

  SECTION("token scores: the exact removal effects under the pad baseline") {
    const std::vector<double> exact = pad_effects(model, tokens, c);
    const auto r = gb::infidelity(model, tokens, t, exact, {.seed = 4});
    CHECK(r.value < 1e-8);  // float logits: squared errors of about (1e-6)^2
    CHECK(r.model_evaluations == 11);
    // Doubled scores: the error of each sample is its difference, so infidelity = mean diff^2 > 0.
    std::vector<double> doubled(exact.size());
    for (std::size_t i = 0; i < exact.size(); ++i) doubled[i] = 2 * exact[i];
    const auto w = gb::infidelity(model, tokens, t, doubled, {.seed = 4});
    double expected = 0;
    for (double d : w.differences) expected += d * d / static_cast<double>(w.differences.size());
    CHECK(w.value == Approx(expected).epsilon(1e-4));
    CHECK(w.value > 0.1);
    // normalize: beta = 1/2 makes the doubled scores exact again.
    const auto nrm = gb::infidelity(model, tokens, t, doubled, {.normalize = true, .seed = 4});
    CHECK(nrm.beta == Approx(0.5).epsilon(1e-5));
    CHECK(nrm.value < 1e-8);
    // Deterministic under the seed.
    CHECK(gb::infidelity(model, tokens, t, doubled, {.seed = 4}).value == w.value);
  }
  SECTION("embedding scores: the gradient under Gaussian noise") {
    const gb::tensor2 e = model.embed(tokens);
    const auto grad = model.embedding_gradient(e, gb::output_seed(t)).gradient;
    const auto r = gb::infidelity(model, tokens, t, grad, {.seed = 2});
    CHECK(r.value < 1e-8);
    gb::tensor2 ixg = grad * e;  // input x gradient is not the exact answer to this perturbation
    CHECK(gb::infidelity(model, tokens, t, ixg, {.seed = 2}).value > 1e-4);
  }
}

TEST_CASE("max-sensitivity follows Captum's definition", "[evaluation]") {
  const gb::tensor2 e = {{0.5f, -1.0f, 2.0f}, {1.5f, 0.25f, -0.75f}};
  const double norm_e = std::sqrt(0.25 + 1 + 4 + 2.25 + 0.0625 + 0.5625);
  const std::size_t entries = 6;
  auto identity = [](const gb::tensor2& x) { return x; };
  auto constant = [](const gb::tensor2&) { return std::vector<double>{1.0, 2.0}; };
  CHECK(gb::max_sensitivity(e, constant).value == 0.0);
  const auto plain = gb::max_sensitivity(e, identity, {.normalize = false, .seed = 3});
  const auto normed = gb::max_sensitivity(e, identity, {.seed = 3});
  REQUIRE(plain.sensitivities.size() == 10);
  CHECK(plain.explanations == 11);
  // ||u||_F <= radius sqrt(entries), and the largest of 10 draws exceeds a small fraction of it.
  CHECK(plain.value <= 0.02 * std::sqrt(static_cast<double>(entries)) + 1e-6);
  CHECK(plain.value > 0.002);
  CHECK(normed.value == Approx(plain.value / norm_e).epsilon(1e-5));
  CHECK(normed.explanation_norm == Approx(norm_e).epsilon(1e-6));
  CHECK(gb::max_sensitivity(e, identity, {.normalize = false, .seed = 3}).value == plain.value);
  CHECK(gb::max_sensitivity(e, identity, {.normalize = false, .seed = 4}).value != plain.value);
}

TEST_CASE("a random ranking's expected AUPRC equals the positive rate", "[evaluation]") {
  // Exact expectation for n tokens with m positives in random order:
  //   E[AP] = (m - 1) / (n - 1) + H_n (n - m) / (n (n - 1))  ->  m / n  as n grows.
  const std::size_t n = 2000, m = 200, rankings = 300;
  std::vector<std::size_t> rationale(m);
  for (std::size_t i = 0; i < m; ++i) rationale[i] = 10 * i + 3;
  double sum = 0, sum2 = 0;
  for (std::size_t r = 0; r < rankings; ++r) {
    const auto p = gb::plausibility(random_scores(n, 100 + r), rationale);
    sum += p.auprc;
    sum2 += p.auprc * p.auprc;
  }
  const double mean = sum / rankings;
  const double se = std::sqrt((sum2 / rankings - mean * mean) / rankings);
  double harmonic = 0;
  for (std::size_t k = 1; k <= n; ++k) harmonic += 1.0 / static_cast<double>(k);
  const double exact = static_cast<double>(m - 1) / static_cast<double>(n - 1) +
                       harmonic * static_cast<double>(n - m) / static_cast<double>(n * (n - 1));
  CHECK(std::abs(mean - exact) < 4 * se);
  CHECK(std::abs(mean - 0.1) < 0.006);  // the positive rate, up to the finite-n term (0.0032) and noise
}

TEST_CASE("plausibility metrics on hand-computed cases", "[evaluation]") {
  SECTION("precision, recall, F1 and AUPRC") {
    const std::vector<double> s = {0.1, 0.9, 0.8, 0.2, 0.7};
    auto p = gb::plausibility(s, std::vector<std::size_t>{1, 2});
    CHECK(p.k == 2);
    CHECK(p.precision == 1.0);
    CHECK(p.recall == 1.0);
    CHECK(p.auprc == 1.0);
    p = gb::plausibility(s, std::vector<std::size_t>{1, 3});
    CHECK(p.precision == 0.5);
    CHECK(p.recall == 0.5);
    CHECK(p.f1 == 0.5);
    CHECK(p.auprc == Approx(0.75));  // positives at ranks 1 and 4: (1/1 + 2/4) / 2
    p = gb::plausibility(s, std::vector<std::size_t>{1, 3}, {.k = 3});
    CHECK(p.precision == Approx(1.0 / 3));
    CHECK(p.recall == 0.5);
    CHECK(p.f1 == Approx(0.4));
  }
  SECTION("ties: one threshold per distinct score (sklearn), average rank for the deciding word") {
    // Not {1, 1, 0, 0}: GCC 12.2 with AVX-512 stores that initializer as {1, 1, 1, 1} unless SLP
    // vectorisation is off (CMakeLists.txt; core_test "[build]"), and this case tests ties, not GCC.
    const std::vector<double> s = {2, 2, 1, 1};
    const auto p = gb::plausibility(s, std::vector<std::size_t>{0, 2}, {.deciding = {0}});
    CHECK(p.auprc == Approx(0.5));  // thresholds 2 (P 1/2, R 1/2) and 1 (P 2/4, R 1)
    CHECK(p.deciding_rank == 1.5);
    const auto q = gb::plausibility(std::vector<double>{0.5, 0.9, 0.5, 0.1}, std::vector<std::size_t>{0},
                                    {.deciding = {2, 0}});
    CHECK(q.deciding_rank == 2.5);
    CHECK(std::isnan(gb::plausibility(s, std::vector<std::size_t>{0}).deciding_rank));
  }
  SECTION("absolute and length") {
    const std::vector<double> s = {-0.9, 0.1, 0.5, 5.0};
    CHECK(gb::plausibility(s, std::vector<std::size_t>{0}, {.length = 3}).precision == 0.0);
    CHECK(gb::plausibility(s, std::vector<std::size_t>{0}, {.absolute = true, .length = 3}).precision == 1.0);
  }
  SECTION("spans and IOU-F1 as ERASER's partial_match_score") {
    const std::vector<double> s = {0.9, 0.8, 0.1, 0.7, 0.6};
    const auto p = gb::plausibility(s, std::vector<std::size_t>{0, 1, 2});
    REQUIRE(p.predicted_spans == std::vector<gb::token_range>{{0, 2}, {3, 4}});
    REQUIRE(p.gold_spans == std::vector<gb::token_range>{{0, 3}});
    CHECK(p.span_ious[0] == Approx(2.0 / 3));
    CHECK(p.span_ious[1] == 0.0);
    CHECK(p.span_matches == 1);
    const auto q = gb::plausibility(s, std::vector<std::size_t>{3, 4}, {.k = 1});  // top-1 = {0}: no match
    const std::vector<gb::plausibility_result> both = {p, q};
    const auto f = gb::iou_f1(both);
    CHECK(f.micro_precision == Approx(1.0 / 3));  // 1 match of 3 predicted spans
    CHECK(f.micro_recall == Approx(0.5));         // 1 match of 2 gold spans
    CHECK(f.micro_f1 == Approx(0.4));
    CHECK(f.macro_precision == Approx(0.25));  // (1/2 + 0/1) / 2
    CHECK(f.macro_recall == Approx(0.5));      // (1/1 + 0/1) / 2
    CHECK(f.macro_f1 == Approx(2 * 0.25 * 0.5 / 0.75));
  }
}

namespace {
// Independent references: Spearman from the textbook rank definition, Kendall's tau-b from tie
// group sizes (n0 - n1, n0 - n2) rather than per-pair classification.
double reference_spearman(const std::vector<double>& a, const std::vector<double>& b) {
  auto ranks = [](const std::vector<double>& v) {
    std::vector<double> r(v.size());
    for (std::size_t i = 0; i < v.size(); ++i) {
      double less = 0, equal = 0;
      for (std::size_t j = 0; j < v.size(); ++j) {
        if (v[j] < v[i]) less += 1;
        if (v[j] == v[i] && j != i) equal += 1;
      }
      r[i] = 1 + less + equal / 2;
    }
    return r;
  };
  const auto ra = ranks(a), rb = ranks(b);
  const double ma = std::accumulate(ra.begin(), ra.end(), 0.0) / static_cast<double>(ra.size());
  const double mb = std::accumulate(rb.begin(), rb.end(), 0.0) / static_cast<double>(rb.size());
  double sab = 0, saa = 0, sbb = 0;
  for (std::size_t i = 0; i < ra.size(); ++i) {
    sab += (ra[i] - ma) * (rb[i] - mb);
    saa += (ra[i] - ma) * (ra[i] - ma);
    sbb += (rb[i] - mb) * (rb[i] - mb);
  }
  return sab / std::sqrt(saa * sbb);
}
double reference_kendall(const std::vector<double>& a, const std::vector<double>& b) {
  const std::size_t n = a.size();
  double s = 0;
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t j = 0; j < n; ++j)
      if (i < j) s += ((a[i] > a[j]) - (a[i] < a[j])) * ((b[i] > b[j]) - (b[i] < b[j]));
  auto tied_pairs = [&](const std::vector<double>& v) {
    std::vector<double> sorted = v;
    std::sort(sorted.begin(), sorted.end());
    double t = 0;
    for (std::size_t i = 0; i < n;) {
      std::size_t j = i;
      while (j < n && sorted[j] == sorted[i]) ++j;
      const double size = static_cast<double>(j - i);
      t += size * (size - 1) / 2;
      i = j;
    }
    return t;
  };
  const double n0 = static_cast<double>(n * (n - 1)) / 2;
  return s / std::sqrt((n0 - tied_pairs(a)) * (n0 - tied_pairs(b)));
}
}  // namespace

TEST_CASE("rank correlations match hand-computed values, ties included", "[evaluation]") {
  const std::vector<double> a = {1, 2, 3}, b = {1, 3, 2};
  CHECK(gb::spearman(a, b) == Approx(0.5));  // 1 - 6 (0 + 1 + 1) / (3 (9 - 1))
  CHECK(gb::kendall_tau(a, b) == Approx(1.0 / 3));  // 2 concordant, 1 discordant of 3 pairs
  const std::vector<double> c = {1, 2, 2, 3}, d = {1, 2, 3, 4};
  CHECK(gb::spearman(c, d) == Approx(4.5 / std::sqrt(4.5 * 5)));  // ranks (1, 2.5, 2.5, 4) vs (1, 2, 3, 4)
  CHECK(gb::kendall_tau(c, d) == Approx(5 / std::sqrt(30.0)));     // P 5, Q 0, one pair tied in c only
  CHECK(gb::spearman(a, a) == Approx(1.0));
  CHECK(gb::kendall_tau(d, std::vector<double>{4, 3, 2, 1}) == Approx(-1.0));
  CHECK(std::isnan(gb::spearman(a, std::vector<double>{2, 2, 2})));

  // Many ties: against the independent references.
  gb::rng g(8);
  std::vector<double> x(60), y(60);
  for (std::size_t i = 0; i < x.size(); ++i) {
    x[i] = static_cast<double>(g.below(5));
    y[i] = static_cast<double>(g.below(4)) + 0.5 * x[i];
  }
  CHECK(gb::spearman(x, y) == Approx(reference_spearman(x, y)).epsilon(1e-12));
  CHECK(gb::kendall_tau(x, y) == Approx(reference_kendall(x, y)).epsilon(1e-12));

  CHECK(gb::top_k_overlap(std::vector<double>{5, 4, 3, 2, 1}, std::vector<double>{5, 1, 4, 2, 3}, 2) == 0.5);
  CHECK(gb::top_k_overlap(std::vector<double>{-5, 4, 3}, std::vector<double>{5, 4, 3}, 1, true) == 1.0);
  CHECK(gb::top_k_overlap(std::vector<double>{-5, 4, 3}, std::vector<double>{5, 4, 3}, 1) == 0.0);
}

TEST_CASE("bootstrap intervals are deterministic under a seed and contain the mean", "[evaluation]") {
  const std::vector<double> v = random_scores(50, 12);
  const auto a = gb::bootstrap_interval(v, {.seed = 5});
  const auto b = gb::bootstrap_interval(v, {.seed = 5});
  const auto c = gb::bootstrap_interval(v, {.seed = 6});
  CHECK(a.low == b.low);
  CHECK(a.high == b.high);
  CHECK((a.low != c.low || a.high != c.high));
  CHECK(a.mean == Approx(std::accumulate(v.begin(), v.end(), 0.0) / 50).epsilon(1e-12));
  CHECK(a.low < a.mean);
  CHECK(a.mean < a.high);
  // The interval of a mean of 50 standard normal draws has width about 2 x 1.96 / sqrt(50) = 0.55.
  CHECK(a.high - a.low == Approx(2 * 1.96 / std::sqrt(50.0)).epsilon(0.2));
  const auto flat = gb::bootstrap_interval(std::vector<double>{2.5, 2.5, 2.5});
  CHECK(flat.low == 2.5);
  CHECK(flat.high == 2.5);
}

TEST_CASE("score_explanation returns what the single metrics return", "[evaluation]") {
  const auto model = rationale_model();
  const std::vector<gb::token_id> tokens = {1, 3, 2, 4, 1, 5, 6, 7};
  const std::vector<std::size_t> rationale = {1, 3, 5};
  const std::vector<double> scores = {0, 1, 0, 0.5, 0, 0.8, -0.3, 0};
  const auto t = gb::target::probability(1);
  const auto s = gb::score_explanation(model, tokens, t, scores, rationale, {.plausibility = {.length = 7}});
  REQUIRE(s.rationale.has_value());
  REQUIRE(s.plausibility.has_value());
  REQUIRE(s.deletion.has_value());
  CHECK(s.rationale->comprehensiveness == gb::rationale_faithfulness(model, tokens, t, rationale).comprehensiveness);
  CHECK(s.aopc.comprehensiveness == gb::eraser_aopc(model, tokens, t, scores).comprehensiveness);
  CHECK(s.deletion->area == gb::deletion_curve(model, tokens, t, scores).area);
  CHECK(s.plausibility->precision == 1.0);
  CHECK(s.model_evaluations == 3 + 11 + 8 + 8 + 11);
  const auto no_rationale = gb::score_explanation(model, tokens, t, scores, {});
  CHECK(!no_rationale.rationale.has_value());
  CHECK(!no_rationale.plausibility.has_value());
}

TEST_CASE("evaluation metrics reject bad input with the project's messages", "[evaluation]") {
  const auto model = rationale_model();
  const std::vector<gb::token_id> tokens = {1, 3, 2, 4, 7};
  const auto t = gb::target::probability(1);
  const std::vector<double> short_scores = {1, 2};
  CHECK_THROWS_MATCHES(gb::eraser_aopc(model, tokens, t, short_scores), gb::shape_error,
                       what_contains("glassbox::eraser_aopc: scores must have one entry per token (5), got 2"));
  CHECK_THROWS_MATCHES(gb::rationale_faithfulness(model, tokens, t, std::vector<std::size_t>{9}), gb::shape_error,
                       what_contains("glassbox::rationale_faithfulness: rationale positions must be < 5"));
  CHECK_THROWS_MATCHES(gb::rationale_faithfulness(model, tokens, t, std::vector<std::size_t>{4}), gb::error,
                       what_contains("rationale positions must be removable tokens, got 4"));
  CHECK_THROWS_MATCHES(gb::rationale_faithfulness(model, tokens, t, std::vector<std::size_t>{}), gb::shape_error,
                       what_contains("rationale must not be empty"));
  CHECK_THROWS_MATCHES(gb::eraser_aopc(model, tokens, t, std::vector<double>(5, 0.0), {.aopc_bins = {0.0}}),
                       gb::error, what_contains("glassbox::eraser_aopc: aopc_bins must be in (0, 1], got 0"));
  CHECK_THROWS_MATCHES(gb::deletion_curve(model, std::vector<gb::token_id>{}, t, std::vector<double>{}), gb::shape_error,
                       what_contains("tokens must not be empty"));
  CHECK_THROWS_MATCHES(gb::spearman(std::vector<double>{1, 2}, std::vector<double>{1}), gb::shape_error,
                       what_contains("glassbox::spearman: b must have as many values as a (2), got 1"));
  CHECK_THROWS_MATCHES(gb::kendall_tau(std::vector<double>{}, std::vector<double>{}), gb::shape_error,
                       what_contains("glassbox::kendall_tau: a must not be empty"));
  CHECK_THROWS_MATCHES(gb::plausibility(std::vector<double>{1, 2}, std::vector<std::size_t>{0, 0}), gb::shape_error,
                       what_contains("rationale positions must be distinct, got 0 twice"));
  CHECK_THROWS_MATCHES(gb::plausibility(std::vector<double>{1, NAN}, std::vector<std::size_t>{0}), gb::error,
                       what_contains("glassbox::plausibility: scores must be finite, got nan at position 1"));
  CHECK_THROWS_MATCHES(gb::bootstrap_interval(std::vector<double>{}), gb::shape_error,
                       what_contains("glassbox::bootstrap_interval: values must not be empty"));
  CHECK_THROWS_MATCHES(gb::bootstrap_interval(std::vector<double>{1}, {.confidence = 1.5}), gb::error,
                       what_contains("confidence must be in (0, 1), got 1.5"));
  CHECK_THROWS_MATCHES(gb::top_k_overlap(std::vector<double>{1, 2}, std::vector<double>{1, 2}, 3), gb::error,
                       what_contains("glassbox::top_k_overlap: k must be in [1, 2], got 3"));
  CHECK_THROWS_MATCHES(gb::infidelity(model, tokens, t, std::vector<double>(5, 0.0), {.samples = 0}), gb::error,
                       what_contains("glassbox::infidelity: samples must be >= 1, got 0"));
}

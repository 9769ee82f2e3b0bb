// Tests of the counterfactual module: searches against brute force on a linear bag model, minimality,
// pass counts, FGSM / PGD in closed form, determinism, errors, and the bundled review model.
#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstddef>
#include <glassbox/counterfactual.hpp>
#include <glassbox/datasets/reviews.hpp>
#include <glassbox/models/linear_bag.hpp>
#include <optional>
#include <string>
#include <vector>

#include "glassbox/models/gpt2.hpp"
#include "test_support.hpp"

namespace gb = glassbox;
using gb::test::what_contains;

namespace {

// A linear bag without batched members that counts its passes: logits, logits from embeddings, and
// forward + backward (embed is a table lookup, not a pass).
struct counting_bag {
  const gb::models::linear_bag& m;
  mutable std::atomic<std::size_t> passes{0};

  std::size_t vocab_size() const { return m.vocab_size(); }
  std::optional<gb::token_id> pad_token() const { return m.pad_token(); }
  gb::tensor2 logits(gb::token_span t) const {
    ++passes;
    return m.logits(t);
  }
  gb::tensor2 embed(gb::token_span t) const { return m.embed(t); }
  gb::tensor2 logits_from_embeddings(const gb::tensor2& e) const {
    ++passes;
    return m.logits_from_embeddings(e);
  }
  gb::value_and_gradient<gb::tensor2> embedding_gradient(const gb::tensor2& e, const gb::output_seed& s) const {
    ++passes;
    return m.embedding_gradient(e, s);
  }
};

// The argmax of the last row of the model's logits, computed directly.
gb::token_id prediction(const gb::models::linear_bag& m, const gb::token_sequence& t) {
  const gb::tensor2 z = m.logits(t);
  const std::size_t c = z.shape(1), last = z.shape(0) - 1;
  std::size_t best = 0;
  for (std::size_t j = 1; j < c; ++j)
    if (z(last, j) > z(last, best)) best = j;
  return static_cast<gb::token_id>(best);
}

gb::token_sequence edited(gb::token_sequence t, const std::vector<gb::token_edit>& edits) {
  for (const auto& e : edits) t[e.position] = e.to;
  return t;
}

// The smallest number of single-token substitutions (any vocabulary id, at unfixed positions) that
// change the prediction, by brute force over every edit set of size <= 2; 3 when there is none.
std::size_t brute_force_size(const gb::models::linear_bag& m, const gb::token_sequence& t, std::size_t fixed) {
  const gb::token_id original = prediction(m, t);
  const auto v = static_cast<gb::token_id>(m.vocab_size());
  for (std::size_t i = 0; i < t.size(); ++i) {
    if (i == fixed) continue;
    for (gb::token_id a = 0; a < v; ++a) {
      if (a == t[i]) continue;
      auto x = t;
      x[i] = a;
      if (prediction(m, x) != original) return 1;
    }
  }
  for (std::size_t i = 0; i < t.size(); ++i)
    for (std::size_t j = i + 1; j < t.size(); ++j) {
      if (i == fixed || j == fixed) continue;
      for (gb::token_id a = 0; a < v; ++a)
        for (gb::token_id b = 0; b < v; ++b) {
          if (a == t[i] || b == t[j]) continue;
          auto x = t;
          x[i] = a;
          x[j] = b;
          if (prediction(m, x) != original) return 2;
        }
    }
  return 3;
}

// Whether dropping any single edit restores the original prediction (checked directly on the model).
bool no_edit_droppable(const gb::models::linear_bag& m, const gb::token_sequence& t,
                       const std::vector<gb::token_edit>& edits) {
  const gb::token_id original = prediction(m, t);
  for (std::size_t j = 0; j < edits.size(); ++j) {
    auto rest = edits;
    rest.erase(rest.begin() + static_cast<std::ptrdiff_t>(j));
    if (prediction(m, edited(t, rest)) != original) return false;
  }
  return true;
}

}  // namespace

TEST_CASE("beam search finds counterfactuals of the brute-force minimal size on a linear bag", "[counterfactual]") {
  // V = 6 tokens, 3 classes, 5 positions, the last fixed: 5^2 * 6 = small enough to enumerate.
  std::size_t sizes[4] = {0, 0, 0, 0};
  for (std::uint64_t seed = 1; seed <= 30; ++seed) {
    const auto m = gb::models::linear_bag::random(6, 3, 3, seed);
    gb::rng g(seed + 1000);
    gb::token_sequence t(5);
    for (auto& x : t) x = static_cast<gb::token_id>(g.below(6));
    const std::size_t expected = brute_force_size(m, t, 4);
    ++sizes[expected];
    const auto goal = gb::counterfactual_goal::label_flip();
    const auto beam = gb::counterfactual(m, t, goal, {.max_edits = 2, .beam_width = 64, .fixed_positions = {4}});
    INFO("seed " << seed);
    if (expected <= 2) {
      REQUIRE(beam.found);
      CHECK(beam.edits.size() == expected);
      CHECK(prediction(m, beam.edited) != prediction(m, t));
      CHECK(beam.new_prediction == prediction(m, beam.edited));
      CHECK(beam.original_prediction == prediction(m, t));
      CHECK(beam.minimal);
      CHECK(no_edit_droppable(m, t, beam.edits));
      for (const auto& e : beam.edits) {
        CHECK(e.position != 4);
        CHECK(e.from == t[e.position]);
        CHECK(beam.edited[e.position] == e.to);
      }
    } else {
      CHECK_FALSE(beam.found);
      CHECK(beam.edits.empty());
      CHECK(beam.edited == t);
    }
    // Greedy: any counterfactual it finds flips, is minimal, and is never smaller than the minimum.
    const auto greedy = gb::counterfactual(
        m, t, goal, {.search = gb::counterfactual_search::greedy, .max_edits = 2, .fixed_positions = {4}});
    if (greedy.found) {
      CHECK(greedy.edits.size() >= expected);
      CHECK(prediction(m, greedy.edited) != prediction(m, t));
      CHECK(no_edit_droppable(m, t, greedy.edits));
    }
  }
  // The seeds cover one-edit, two-edit and no-counterfactual cases.
  CHECK(sizes[1] > 0);
  CHECK(sizes[2] > 0);
  CHECK(sizes[3] > 0);
}

TEST_CASE("counterfactual margins are additive on a two-class linear bag", "[counterfactual]") {
  // With two classes the margin z_o - z_other is a sum over positions, so the edit that lowers it most
  // at each position is independent of the others: the minimal size is the smallest k whose k best
  // per-position drops exceed the margin (closed form), and beam search must find exactly k.
  for (std::uint64_t seed = 1; seed <= 20; ++seed) {
    const auto m = gb::models::linear_bag::random(8, 4, 2, seed);
    gb::rng g(seed + 77);
    gb::token_sequence t(6);
    for (auto& x : t) x = static_cast<gb::token_id>(g.below(8));
    const gb::token_id o = prediction(m, t), other = 1 - o;
    const auto& w = m.weights();
    auto score = [&](gb::token_id tok) {  // e_tok . (w_o - w_other)
      double s = 0;
      for (std::size_t k = 0; k < 4; ++k)
        s += static_cast<double>(m.embedding_matrix()(tok, k)) * (w(k, o) - w(k, other));
      return s;
    };
    const gb::tensor2 z = m.logits(t);
    double margin = static_cast<double>(z(5, o)) - z(5, other);
    std::vector<double> drops;
    for (std::size_t i = 0; i < 5; ++i) {  // position 5 fixed
      double best = 0;
      for (gb::token_id a = 0; a < 8; ++a) best = std::max(best, score(t[i]) - score(a));
      drops.push_back(best);
    }
    std::sort(drops.rbegin(), drops.rend());
    std::size_t k = 0;
    while (k < drops.size() && margin >= 0) margin -= drops[k++];
    const auto r = gb::counterfactual(m, t, gb::counterfactual_goal::label_flip(),
                                      {.max_edits = 5, .beam_width = 1, .fixed_positions = {5}});
    INFO("seed " << seed);
    if (margin < 0) {
      REQUIRE(r.found);
      CHECK(r.edits.size() == k);
    } else {
      CHECK_FALSE(r.found);
    }
  }
}

TEST_CASE("model_evaluations counts every pass the searches and attacks make", "[counterfactual]") {
  const auto bag = gb::models::linear_bag::random(7, 4, 3, 5);
  const gb::token_sequence t{1, 2, 3, 4, 5, 6};
  const auto goal = gb::counterfactual_goal::label_flip();
  auto counted = [&](auto&& run) {
    counting_bag m{bag};
    const auto r = run(m);
    return std::pair{r.model_evaluations, m.passes.load()};
  };
  for (auto search : {gb::counterfactual_search::greedy, gb::counterfactual_search::beam}) {
    for (auto guidance : {gb::counterfactual_guidance::occlusion, gb::counterfactual_guidance::input_x_gradient}) {
      const auto [reported, made] = counted([&](const counting_bag& m) {
        return gb::counterfactual(m, t, goal, {.search = search, .max_edits = 3, .guidance = guidance});
      });
      CHECK(reported == made);
      CHECK(made > 1);
    }
  }
  {
    const auto [reported, made] =
        counted([&](const counting_bag& m) { return gb::sufficient_tokens(m, t, goal, {.fixed_positions = {5}}); });
    CHECK(reported == made);
  }
  {
    const auto [reported, made] =
        counted([&](const counting_bag& m) { return gb::necessary_tokens(m, t, goal, {.fixed_positions = {5}}); });
    CHECK(reported == made);
  }
  {
    const auto [reported, made] = counted([&](const counting_bag& m) { return gb::fgsm(m, t, goal); });
    CHECK(reported == made);
    CHECK(made == 3);  // the original, one forward + backward, one forward
  }
  {
    const auto [reported, made] =
        counted([&](const counting_bag& m) { return gb::pgd(m, t, goal, {.iterations = 7}); });
    CHECK(reported == made);
    CHECK(made == 9);
  }
  {
    const auto [reported, made] = counted(
        [&](const counting_bag& m) { return gb::projected_token_attack(m, t, goal, {.epsilon = 5.0, .rounds = 3}); });
    CHECK(reported == made);
  }
}

TEST_CASE("sufficient and necessary token sets hold and are minimal on a linear bag", "[counterfactual]") {
  std::size_t necessary_found = 0;
  for (std::uint64_t seed = 1; seed <= 20; ++seed) {
    const auto m = gb::models::linear_bag::random(8, 4, 3, seed);
    gb::rng g(seed + 5);
    gb::token_sequence t(7);
    for (auto& x : t) x = static_cast<gb::token_id>(1 + g.below(7));  // never the pad token 0
    const gb::token_id o = prediction(m, t);
    const auto goal = gb::counterfactual_goal::label_flip();
    auto keep_only = [&](const std::vector<std::size_t>& set) {
      auto x = t;
      for (std::size_t i = 0; i + 1 < x.size(); ++i)
        if (std::find(set.begin(), set.end(), i) == set.end()) x[i] = 0;
      return x;
    };
    auto remove = [&](const std::vector<std::size_t>& set) {
      auto x = t;
      for (auto i : set) x[i] = 0;
      return x;
    };
    INFO("seed " << seed);
    const auto s = gb::sufficient_tokens(m, t, goal, {.fixed_positions = {6}});
    REQUIRE(s.found);
    CHECK(s.minimal);
    CHECK(prediction(m, keep_only(s.positions)) == o);
    CHECK(s.prediction == o);
    for (std::size_t j = 0; j < s.positions.size(); ++j) {
      auto smaller = s.positions;
      smaller.erase(smaller.begin() + static_cast<std::ptrdiff_t>(j));
      CHECK(prediction(m, keep_only(smaller)) != o);
    }
    const auto n = gb::necessary_tokens(m, t, goal, {.fixed_positions = {6}});
    std::vector<std::size_t> all{0, 1, 2, 3, 4, 5};
    // Removal grows in attribution order up to every position, so removing all that flips is found.
    if (prediction(m, remove(all)) != o) CHECK(n.found);
    if (!n.found) continue;
    ++necessary_found;
    CHECK(n.minimal);
    CHECK(prediction(m, remove(n.positions)) != o);
    CHECK(n.prediction == prediction(m, remove(n.positions)));
    for (std::size_t j = 0; j < n.positions.size(); ++j) {
      auto smaller = n.positions;
      smaller.erase(smaller.begin() + static_cast<std::ptrdiff_t>(j));
      CHECK(prediction(m, remove(smaller)) == o);
    }
  }
  CHECK(necessary_found > 0);
}

TEST_CASE("a threshold goal is met when the target crosses the threshold", "[counterfactual]") {
  const auto m = gb::models::linear_bag::random(6, 3, 2, 11);
  const gb::token_sequence t{1, 2, 3, 4};
  const auto target = gb::target::logit(0);
  const double value = static_cast<double>(m.logits(t)(3, 0));
  for (double offset : {-0.5, 0.5}) {
    const double threshold = value + offset;  // below the value: must fall under it; above: must reach it
    const auto r = gb::counterfactual(m, t, gb::counterfactual_goal::threshold(target, threshold),
                                      {.max_edits = 4, .beam_width = 8});
    INFO("offset " << offset);
    CHECK(r.original_value == Approx(value).epsilon(1e-6));
    CHECK(r.original_prediction == -1);
    REQUIRE(r.found);
    const double after = static_cast<double>(m.logits(r.edited)(3, 0));
    CHECK(r.new_value == Approx(after).epsilon(1e-6));
    if (offset < 0)
      CHECK(after < threshold);
    else
      CHECK(after >= threshold);
  }
}

TEST_CASE("FGSM on a linear bag moves exactly along the sign of the margin's gradient",
          "[counterfactual][adversarial]") {
  // margin = (sum_i e_i)(w_o - w_r) + b_o - b_r, so d margin / d e_i = w_o - w_r for every row.
  const auto m = gb::models::linear_bag::random(6, 4, 3, 3);
  const gb::token_sequence t{1, 2, 3, 4, 5};
  const auto goal = gb::counterfactual_goal::label_flip();
  const gb::token_id o = prediction(m, t);
  const gb::tensor2 z = m.logits(t);
  gb::token_id r = -1;
  for (gb::token_id c = 0; c < 3; ++c)
    if (c != o && (r < 0 || z(4, c) > z(4, r))) r = c;
  std::vector<double> g(4);
  double g_abs = 0, g_norm2 = 0;
  for (std::size_t k = 0; k < 4; ++k) {
    g[k] = static_cast<double>(m.weights()(k, o)) - m.weights()(k, r);
    g_abs += std::abs(g[k]);
    g_norm2 += g[k] * g[k];
  }
  const double eps = 0.05, m0 = static_cast<double>(z(4, o)) - z(4, r);
  SECTION("linf") {
    const auto a = gb::fgsm(m, t, goal, {.epsilon = eps, .fixed_positions = {4}});
    for (std::size_t i = 0; i < 5; ++i)
      for (std::size_t k = 0; k < 4; ++k) {
        const double expected = i == 4 ? 0.0 : -eps * (g[k] > 0 ? 1 : -1);
        CHECK(a.perturbation(i, k) == Approx(expected).margin(1e-7));
      }
    CHECK(a.perturbation_linf == Approx(eps).epsilon(1e-6));
    // Four rows moved by -eps sign(g): the margin falls by 4 eps ||g||_1 (if the runner-up stays).
    CHECK(a.new_value == Approx(m0 - 4 * eps * g_abs).epsilon(1e-4));
    CHECK(a.original_value == Approx(m0).epsilon(1e-5));
  }
  SECTION("l2") {
    const auto a = gb::fgsm(m, t, goal, {.epsilon = eps, .norm = gb::perturbation_norm::l2});
    const double length = std::sqrt(5 * g_norm2);
    for (std::size_t i = 0; i < 5; ++i)
      for (std::size_t k = 0; k < 4; ++k) CHECK(a.perturbation(i, k) == Approx(-eps * g[k] / length).margin(1e-7));
    CHECK(a.perturbation_l2 == Approx(eps).epsilon(1e-5));
    CHECK(a.new_value == Approx(m0 - eps * length).epsilon(1e-4));
  }
}

TEST_CASE("PGD stays in its ball, reaches FGSM's corner on a linear model, and is seeded",
          "[counterfactual][adversarial]") {
  const auto m = gb::models::linear_bag::random(6, 4, 3, 8);
  const gb::token_sequence t{1, 2, 3, 4, 5};
  const auto goal = gb::counterfactual_goal::label_flip();
  for (auto norm : {gb::perturbation_norm::linf, gb::perturbation_norm::l2}) {
    for (double eps : {0.01, 0.3, 2.0}) {
      const auto a = gb::pgd(m, t, goal, {.epsilon = eps, .iterations = 6, .norm = norm, .seed = 4});
      INFO("norm " << gb::to_string(norm) << " eps " << eps);
      if (norm == gb::perturbation_norm::linf)
        CHECK(a.perturbation_linf <= eps * (1 + 1e-6));
      else
        CHECK(a.perturbation_l2 <= eps * (1 + 1e-6));
      CHECK(a.new_value < a.original_value);  // a linear margin falls along every step
      CHECK(a.success == (a.new_prediction != a.original_prediction));
    }
  }
  // linf on a linear model: 10 steps of 0.25 eps cross the whole ball from any start, so PGD ends at
  // FGSM's corner -eps sign(g), whatever the random start.
  const auto f = gb::fgsm(m, t, goal, {.epsilon = 0.2, .fixed_positions = {0}});
  const auto p = gb::pgd(m, t, goal, {.epsilon = 0.2, .seed = 9, .fixed_positions = {0}});
  for (std::size_t i = 0; i < f.perturbation.size(); ++i)
    CHECK(p.perturbation.data()[i] == Approx(f.perturbation.data()[i]).margin(1e-6));
  // The same seed gives the same perturbation; another seed another start.
  const gb::pgd_options one{.epsilon = 0.2, .step_size = 0.01, .iterations = 1, .seed = 1};
  auto other = one;
  other.seed = 2;
  const auto a = gb::pgd(m, t, goal, one), b = gb::pgd(m, t, goal, one), c = gb::pgd(m, t, goal, other);
  CHECK(a.perturbation == b.perturbation);
  CHECK(a.perturbation != c.perturbation);
}

TEST_CASE("the projected token attack reports edits that meet the goal and are minimal",
          "[counterfactual][adversarial]") {
  std::size_t successes = 0;
  for (std::uint64_t seed = 1; seed <= 10; ++seed) {
    const auto m = gb::models::linear_bag::random(10, 4, 2, seed);
    const gb::token_sequence t{1, 2, 3, 4, 5, 6};
    const auto goal = gb::counterfactual_goal::label_flip();
    const auto a = gb::projected_token_attack(m, t, goal, {.epsilon = 6.0, .fixed_positions = {5}});
    const auto again = gb::projected_token_attack(m, t, goal, {.epsilon = 6.0, .fixed_positions = {5}});
    INFO("seed " << seed);
    CHECK(a.adversarial_tokens == again.adversarial_tokens);
    CHECK(a.edits.size() ==
          static_cast<std::size_t>(
              std::count_if(a.edits.begin(), a.edits.end(), [&](const gb::token_edit& e) { return e.to != e.from; })));
    CHECK(a.adversarial_tokens == edited(t, a.edits));
    CHECK(a.adversarial_tokens[5] == t[5]);
    CHECK(a.success == (prediction(m, a.adversarial_tokens) != prediction(m, t)));
    CHECK(a.perturbation_l2 <= 6.0 * (1 + 1e-6));
    if (!a.success) continue;
    ++successes;
    CHECK(no_edit_droppable(m, t, a.edits));
  }
  CHECK(successes > 0);
}

TEST_CASE("searches and attacks are deterministic", "[counterfactual]") {
  const auto m = gb::models::linear_bag::random(9, 4, 3, 21);
  const gb::token_sequence t{1, 8, 2, 7, 3, 6};
  const auto goal = gb::counterfactual_goal::label_flip();
  for (auto search : {gb::counterfactual_search::greedy, gb::counterfactual_search::beam}) {
    const auto a = gb::counterfactual(m, t, goal, {.search = search, .execution = {.batch_size = 3}});
    const auto b = gb::counterfactual(m, t, goal, {.search = search, .execution = {.batch_size = 64, .threads = 2}});
    CHECK(a.edits == b.edits);
    CHECK(a.model_evaluations == b.model_evaluations);
  }
}

TEST_CASE("bad input names the argument", "[counterfactual]") {
  const auto m = gb::models::linear_bag::random(6, 3, 2, 1);
  const gb::token_sequence t{1, 2, 3};
  const gb::token_sequence empty;
  const auto goal = gb::counterfactual_goal::label_flip();
  REQUIRE_THROWS_MATCHES(gb::counterfactual(m, empty, goal), gb::shape_error,
                         what_contains("tokens must not be empty"));
  REQUIRE_THROWS_MATCHES(gb::counterfactual(m, t, goal, {.max_edits = 0}), gb::error,
                         what_contains("counterfactual_beam: max_edits must be >= 1, got 0"));
  REQUIRE_THROWS_MATCHES(gb::counterfactual(m, t, goal, {.beam_width = 0}), gb::error,
                         what_contains("beam_width must be >= 1"));
  REQUIRE_THROWS_MATCHES(gb::counterfactual(m, t, goal, {.candidates = {2, 6}}), gb::shape_error,
                         what_contains("candidates must be token ids in [0, 6), got 6"));
  REQUIRE_THROWS_MATCHES(gb::counterfactual(m, t, goal, {.fixed_positions = {3}}), gb::shape_error,
                         what_contains("fixed_positions must be positions in [0, 3), got 3"));
  REQUIRE_THROWS_MATCHES(gb::counterfactual(m, t, goal, {.deletion = false, .substitution = false}), gb::error,
                         what_contains("deletion and substitution must not both be off"));
  REQUIRE_THROWS_MATCHES(gb::counterfactual(m, t, goal, {.baseline = gb::baseline::removal()}), gb::error,
                         what_contains("baseline must be pad or token"));
  REQUIRE_THROWS_MATCHES(gb::counterfactual(m, t, gb::counterfactual_goal::label_flip({0, 5})), gb::shape_error,
                         what_contains("goal labels must be output columns in [0, 2), got 5"));
  REQUIRE_THROWS_MATCHES(gb::counterfactual(m, t, gb::counterfactual_goal::label_flip({1, 1})), gb::shape_error,
                         what_contains("goal labels must be distinct, got 1 twice"));
  REQUIRE_THROWS_MATCHES(gb::counterfactual(m, t, gb::counterfactual_goal::label_flip({1})), gb::shape_error,
                         what_contains("goal labels must hold at least 2 labels"));
  REQUIRE_THROWS_MATCHES(
      gb::counterfactual(m, t, goal, {.search = gb::counterfactual_search::greedy, .attribution = {1.0}}),
      gb::shape_error, what_contains("attribution must have one score per token (3), got 1"));
  REQUIRE_THROWS_MATCHES(gb::sufficient_tokens(m, empty, goal), gb::shape_error,
                         what_contains("sufficient_tokens: tokens must not be empty"));
  REQUIRE_THROWS_MATCHES(gb::fgsm(m, t, goal, {.epsilon = 0}), gb::error,
                         what_contains("fgsm: epsilon must be > 0, got 0"));
  REQUIRE_THROWS_MATCHES(gb::pgd(m, t, goal, {.epsilon = -1}), gb::error, what_contains("pgd: epsilon must be > 0"));
  REQUIRE_THROWS_MATCHES(gb::pgd(m, t, goal, {.iterations = 0}), gb::error, what_contains("iterations must be >= 1"));
  REQUIRE_THROWS_MATCHES(gb::projected_token_attack(m, t, goal, {.candidates = {-1}}), gb::shape_error,
                         what_contains("projected_token_attack: candidates must be token ids in [0, 6), got -1"));
  REQUIRE_THROWS_MATCHES(gb::pgd(m, empty, goal), gb::shape_error, what_contains("pgd: tokens must not be empty"));
}

TEST_CASE("on the bundled review model a negated review's counterfactual touches the rationale",
          "[counterfactual][reviews]") {
  const auto model = gb::models::gpt2::load(std::string(GLASSBOX_SOURCE_DIR) + "/models/reviews");
  const auto goal =
      gb::counterfactual_goal::label_flip({gb::datasets::review_positive_id, gb::datasets::review_negative_id});
  for (const char* text : {"the food was not good . =>", "the service was not good and the pasta was fine . =>"}) {
    const auto tokens = gb::datasets::encode_review(text);
    const auto truth = gb::datasets::label_of(tokens);
    REQUIRE(truth.negated);
    const std::size_t marker = tokens.size() - 1;
    for (auto search : {gb::counterfactual_search::greedy, gb::counterfactual_search::beam}) {
      const auto r =
          gb::counterfactual(model, tokens, goal, {.search = search, .max_edits = 2, .fixed_positions = {marker}});
      INFO(text << " " << gb::to_string(search));
      REQUIRE(r.found);
      CHECK(r.original_prediction == *truth.label());
      CHECK(r.new_prediction != r.original_prediction);
      CHECK(r.minimal);
      const bool touches = std::any_of(r.edits.begin(), r.edits.end(), [&](const gb::token_edit& e) {
        return std::find(truth.rationale.begin(), truth.rationale.end(), e.position) != truth.rationale.end();
      });
      CHECK(touches);
    }
  }
}

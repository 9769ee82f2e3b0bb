// Tests of the prompting module: segments and their feature maps, segment attribution against the
// attribution methods run by hand and against closed forms on the linear bag model, the order
// sensitivity check (exactly zero on an order-free model, not on GPT-2, every order counted,
// determinism under a seed), and step scores against a softmax computed here in double.
#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <cmath>
#include <glassbox/attribution.hpp>
#include <glassbox/core.hpp>
#include <glassbox/models/linear_bag.hpp>
#include <glassbox/prompting.hpp>
#include <set>
#include <vector>

#include "glassbox/models/gpt2.hpp"
#include "test_support.hpp"

using namespace glassbox;
using glassbox::test::what_contains;

namespace {

// A small GPT-2 with parameters far from GPT-2's initialisation (N(0, 0.3)), so that every position
// and the order of the tokens matter.
models::gpt2 small_gpt2(std::uint64_t seed) {
  models::gpt2_config c;
  c.n_layer = 2;
  c.n_head = 2;
  c.n_embd = 16;
  c.n_positions = 40;
  c.vocab_size = 30;
  c.pad_token_id = 0;
  const auto table = models::gpt2_parameter_table(c);
  std::vector<float> p(table.back().offset + table.back().size);
  glassbox::rng g(seed);
  for (auto& x : p) x = static_cast<float>(g.normal(0.0, 0.3));
  return models::gpt2(c, p);
}

// The prompt with segment order[j] in slot j, built as a list of pieces: the gaps between segments
// stay, the segments move (independent of the library's reorder).
token_sequence reorder_by_hand(const token_sequence& tokens, const std::vector<segment>& segments,
                               const std::vector<std::size_t>& order) {
  std::vector<token_sequence> gaps, pieces;
  std::size_t at = 0;
  for (const auto& s : segments) {
    gaps.emplace_back(tokens.begin() + static_cast<std::ptrdiff_t>(at),
                      tokens.begin() + static_cast<std::ptrdiff_t>(s.begin));
    pieces.emplace_back(tokens.begin() + static_cast<std::ptrdiff_t>(s.begin),
                        tokens.begin() + static_cast<std::ptrdiff_t>(s.end));
    at = s.end;
  }
  token_sequence out;
  for (std::size_t j = 0; j < segments.size(); ++j) {
    out.insert(out.end(), gaps[j].begin(), gaps[j].end());
    out.insert(out.end(), pieces[order[j]].begin(), pieces[order[j]].end());
  }
  out.insert(out.end(), tokens.begin() + static_cast<std::ptrdiff_t>(at), tokens.end());
  return out;
}

// A linear bag whose embeddings and weights are small integers: every logit is an exact float, so
// that any order of the same tokens gives bit-identical logits.
models::linear_bag integer_bag(std::size_t vocab, std::size_t width, std::size_t classes, std::uint64_t seed) {
  glassbox::rng g(seed);
  tensor2 e({vocab, width}), w({width, classes});
  auto b = tensor1::from_shape({classes});
  for (auto& x : e) x = static_cast<float>(static_cast<int>(g.below(7)) - 3);
  for (auto& x : w) x = static_cast<float>(static_cast<int>(g.below(7)) - 3);
  for (auto& x : b) x = static_cast<float>(static_cast<int>(g.below(7)) - 3);
  return {std::move(e), std::move(w), std::move(b), 0};
}

// The softmax of one logits row, in double.
std::vector<double> softmax(const tensor2& z, std::size_t row) {
  const std::size_t v = z.shape(1);
  double top = -INFINITY;
  for (std::size_t j = 0; j < v; ++j) top = std::max(top, static_cast<double>(z(row, j)));
  std::vector<double> p(v);
  double sum = 0;
  for (std::size_t j = 0; j < v; ++j) sum += p[j] = std::exp(static_cast<double>(z(row, j)) - top);
  for (auto& x : p) x /= sum;
  return p;
}

// A model with only the Model rung (no logits_at, no batches), counting its passes.
template <class Inner>
struct plain_model {
  const Inner& inner;
  mutable std::atomic<std::size_t> passes{0};
  std::size_t vocab_size() const { return inner.vocab_size(); }
  tensor2 logits(token_span t) const {
    ++passes;
    return inner.logits(t);
  }
};

// A model with logits_at that counts its passes.
template <class Inner>
struct counting_model {
  const Inner& inner;
  mutable std::atomic<std::size_t> passes{0};
  std::size_t vocab_size() const { return inner.vocab_size(); }
  std::size_t output_rows(std::size_t n) const { return n; }
  tensor2 logits(token_span t) const {
    ++passes;
    return inner.logits(t);
  }
  tensor2 logits_at(token_span t, std::span<const std::size_t> rows) const {
    ++passes;
    return inner.logits_at(t, rows);
  }
};

// A causal model whose logits are all zero: every next-token distribution is uniform over V.
struct uniform_model {
  std::size_t v = 17;
  std::size_t vocab_size() const { return v; }
  tensor2 logits(token_span t) const { return xt::zeros<float>({t.size(), v}); }
};

// A sequence classifier: one output row (the mean of a GPT-2's rows), so step scores need a pass per step.
struct last_row_model {
  const models::gpt2& inner;
  std::size_t vocab_size() const { return inner.vocab_size(); }
  std::size_t output_rows(std::size_t) const { return 1; }
  tensor2 logits(token_span t) const {
    const tensor2 all = inner.logits(t);
    tensor2 out({1, all.shape(1)});
    std::copy_n(all.data() + (all.shape(0) - 1) * all.shape(1), all.shape(1), out.data());
    return out;
  }
};

}  // namespace

TEST_CASE("prompting: segments from boundaries and from a separator", "[prompting][segments]") {
  // instruction | demo 0 | demo 1 | demo 2 | query; 9 is the separator.
  const token_sequence tokens = {1, 2, 3, 9, 4, 9, 5, 6, 9, 7, 8};
  SECTION("the separator closes the segment before it; the rest is the query") {
    const auto s = segments_at_separator(tokens, 9);
    REQUIRE(s == std::vector<segment>{{0, 4}, {4, 6}, {6, 9}});
    CHECK(segment_feature_map(tokens.size(), s) == std::vector<int>{0, 0, 0, 0, 1, 1, 2, 2, 2, -1, -1});
  }
  SECTION("separators held fixed, a search window, a trailing segment") {
    const auto s = segments_at_separator(tokens, 9, {.begin = 1, .include_separator = false, .trailing_segment = true});
    REQUIRE(s == std::vector<segment>{{1, 3}, {4, 5}, {6, 8}, {9, 11}});
    CHECK(segment_feature_map(tokens.size(), s) == std::vector<int>{-1, 0, 0, -1, 1, -1, 2, 2, -1, 3, 3});
    const auto bounded = segments_at_separator(tokens, 9, {.end = 6});
    CHECK(bounded == std::vector<segment>{{0, 4}, {4, 6}});
    // Adjacent separators: an empty piece is skipped when separators are held fixed.
    const token_sequence twice = {1, 9, 9, 2, 9, 3};
    CHECK(segments_at_separator(twice, 9, {.include_separator = false}) == std::vector<segment>{{0, 1}, {3, 4}});
    CHECK(segments_at_separator(twice, 9) == std::vector<segment>{{0, 2}, {2, 3}, {3, 5}});
  }
  SECTION("bad segments fail, naming the argument") {
    using S = std::vector<segment>;
    REQUIRE_THROWS_MATCHES(segment_feature_map(5, S{}), shape_error,
                           what_contains("glassbox::segment_feature_map: segments must not be empty"));
    REQUIRE_THROWS_MATCHES(segment_feature_map(5, S{{0, 2}, {2, 2}}), shape_error,
                           what_contains("segments must not be empty: segment 1 is [2, 2)"));
    REQUIRE_THROWS_MATCHES(segment_feature_map(5, S{{0, 3}, {2, 4}}), shape_error,
                           what_contains("must not overlap: segment 1 [2, 4) starts before segment 0 [0, 3) ends"));
    REQUIRE_THROWS_MATCHES(segment_feature_map(5, S{{2, 4}, {0, 1}}), shape_error, what_contains("ascending order"));
    REQUIRE_THROWS_MATCHES(segment_feature_map(5, S{{0, 6}}), shape_error,
                           what_contains("segments must lie inside the 5 tokens: segment 0 is [0, 6)"));
    REQUIRE_THROWS_MATCHES(
        segments_at_separator(tokens, 29), shape_error,
        what_contains("glassbox::segments_at_separator: no segment in tokens [0, 11): separator 29"));
    REQUIRE_THROWS_MATCHES(segments_at_separator(tokens, 9, {.end = 12}), shape_error,
                           what_contains("end must be <= the number of tokens (11), got 12"));
  }
}

TEST_CASE("prompting: segment attribution is the method run with the segments' feature map",
          "[prompting][segments][gpt2]") {
  const auto model = small_gpt2(3);
  const token_sequence tokens = {1, 5, 6, 9, 7, 9, 11, 12, 13, 9, 14, 15};
  const auto segments = segments_at_separator(tokens, 9, {.begin = 1});
  REQUIRE(segments.size() == 3);
  const std::vector<int> map = segment_feature_map(tokens.size(), segments);
  const target t = target::log_probability(4);
  auto same = [&](const segment_attribution_result& r, const attribution_result& by_hand) {
    REQUIRE(r.attribution.scores == by_hand.scores);
    CHECK(r.attribution.method == by_hand.method);
    CHECK(r.attribution.model_evaluations == by_hand.model_evaluations);
    REQUIRE(r.scores.size() == segments.size());
    for (std::size_t i = 0; i < segments.size(); ++i) {
      CHECK(r.scores[i] == by_hand.scores[segments[i].begin]);
      for (std::size_t p = segments[i].begin; p < segments[i].end; ++p) CHECK(by_hand.scores[p] == r.scores[i]);
    }
    // Tokens outside every segment are held fixed: score 0.
    CHECK(by_hand.scores[0] == 0.0);
    CHECK(by_hand.scores[10] == 0.0);
    CHECK(by_hand.scores[11] == 0.0);
  };
  SECTION("feature ablation (the default)") {
    same(attribute_segments(model, tokens, segments, t), feature_ablation(model, tokens, t, {.feature_map = map}));
  }
  SECTION("occlusion") {
    same(attribute_segments(model, tokens, segments, t, occlusion_options{.window = 2}),
         occlusion(model, tokens, t, {.window = 2, .feature_map = map}));
  }
  SECTION("LIME") {
    same(attribute_segments(model, tokens, segments, t, lime_options{.n_samples = 30, .seed = 4}),
         lime(model, tokens, t, {.n_samples = 30, .feature_map = map, .seed = 4}));
  }
  SECTION("KernelSHAP") {
    same(attribute_segments(model, tokens, segments, t, kernel_shap_options{.seed = 2}),
         kernel_shap(model, tokens, t, {.feature_map = map, .seed = 2}));
  }
  SECTION("Shapley value sampling, with standard errors per segment") {
    const auto r = attribute_segments(model, tokens, segments, t, shapley_sampling_options{.n_samples = 6, .seed = 1});
    const auto by_hand = shapley_sampling(model, tokens, t, {.n_samples = 6, .feature_map = map, .seed = 1});
    same(r, by_hand);
    REQUIRE(r.standard_errors.size() == 3);
    for (std::size_t i = 0; i < 3; ++i) CHECK(r.standard_errors[i] == by_hand.standard_errors[segments[i].begin]);
  }
  SECTION("exact Shapley values: 2^3 evaluations") {
    const auto r = attribute_segments(model, tokens, segments, t, shapley_exact_options{});
    same(r, shapley_exact(model, tokens, t, {.feature_map = map}));
    CHECK(r.attribution.model_evaluations == 8);
    CHECK(r.standard_errors.empty());
  }
  SECTION("the method's own feature_map must stay empty") {
    REQUIRE_THROWS_MATCHES(attribute_segments(model, tokens, segments, t, kernel_shap_options{.feature_map = map}),
                           glassbox::error,
                           what_contains("glassbox::attribute_segments: the method's feature_map must be empty"));
    REQUIRE_THROWS_MATCHES(attribute_segments(model, tokens, std::vector<segment>{{1, 4}, {3, 6}}, t), shape_error,
                           what_contains("glassbox::attribute_segments: segments must be in ascending order and must "
                                         "not overlap"));
  }
}

TEST_CASE("prompting: segment scores on the linear bag equal the closed form", "[prompting][segments]") {
  const auto model = models::linear_bag::random(14, 4, 5, 21, /*pad=*/0);
  const token_sequence tokens = {3, 4, 5, 13, 6, 13, 7, 8, 9, 13, 10, 11};
  const auto segments = segments_at_separator(tokens, 13, {.begin = 1});
  REQUIRE(segments.size() == 3);
  const std::size_t c = 2;
  const target t = target::logit(static_cast<token_id>(c));
  // f = logit c at the last row = sum_i E[tok_i] . W[:, c] + b_c; making segment S absent (pad
  // baseline) changes it by sum_{i in S} (E[tok_i] - E[pad]) . W[:, c].
  const tensor2& e = model.embedding_matrix();
  const tensor2& w = model.weights();
  auto contribution = [&](token_id id) {
    double s = 0;
    for (std::size_t j = 0; j < model.width(); ++j)
      s += (static_cast<double>(e(static_cast<std::size_t>(id), j)) - e(0, j)) * w(j, c);
    return s;
  };
  std::vector<double> closed(segments.size(), 0.0);
  for (std::size_t i = 0; i < segments.size(); ++i)
    for (std::size_t p = segments[i].begin; p < segments[i].end; ++p) closed[i] += contribution(tokens[p]);
  // Float sums over about 12 rows of size ~5: 1e-4.
  constexpr double tol = 1e-4;
  SECTION("segment occlusion removes the segment's tokens' weights") {
    const auto r = attribute_segments(model, tokens, segments, t, occlusion_options{});
    for (std::size_t i = 0; i < segments.size(); ++i) CHECK(r.scores[i] == Approx(closed[i]).margin(tol));
    const auto ablation = attribute_segments(model, tokens, segments, t);
    for (std::size_t i = 0; i < segments.size(); ++i) CHECK(ablation.scores[i] == Approx(closed[i]).margin(tol));
  }
  SECTION("exact Shapley over segments is efficient and equals the closed form (an additive game)") {
    const auto r = attribute_segments(model, tokens, segments, t, shapley_exact_options{});
    token_sequence absent = tokens;
    for (const auto& s : segments)
      for (std::size_t p = s.begin; p < s.end; ++p) absent[p] = 0;
    const double fx = t.value_of(model.logits(tokens)), fb = t.value_of(model.logits(absent));
    double sum = 0;
    for (std::size_t i = 0; i < segments.size(); ++i) {
      sum += r.scores[i];
      CHECK(r.scores[i] == Approx(closed[i]).margin(tol));
    }
    CHECK(sum == Approx(fx - fb).margin(tol));
    CHECK(r.attribution.target_value == Approx(fx).margin(1e-6));
    CHECK(r.attribution.baseline_value == Approx(fb).margin(1e-6));
  }
}

TEST_CASE("prompting: order sensitivity", "[prompting][order]") {
  // instruction 1 | four demonstrations closed by 13 | query 10 11.
  const token_sequence tokens = {1, 3, 4, 13, 5, 13, 6, 7, 8, 13, 12, 13, 10, 11};
  const auto segments = segments_at_separator(tokens, 13, {.begin = 1});
  REQUIRE(segments.size() == 4);
  const target t = target::log_probability(2);
  SECTION("an order-free model has exactly zero spread over all 24 orders") {
    const auto bag = integer_bag(14, 3, 5, 8);
    const auto r = order_sensitivity(bag, tokens, segments, t);
    CHECK(r.exhaustive);
    REQUIRE(r.orders.size() == 24);
    CHECK(r.model_evaluations == 24);
    CHECK(std::set<std::vector<std::size_t>>(r.orders.begin(), r.orders.end()).size() == 24);
    CHECK(r.orders.front() == std::vector<std::size_t>{0, 1, 2, 3});
    CHECK(r.standard_deviation == 0.0);
    CHECK(r.min == r.max);
    CHECK(r.mean == r.original_value);
    CHECK(r.prediction_change_rate == 0.0);
    CHECK(r.original_value == t.value_of(bag.logits(tokens)));
  }
  const auto model = small_gpt2(7);
  SECTION("GPT-2 is order-dependent; each order's value is the target on the reordered prompt") {
    const auto r = order_sensitivity(model, tokens, segments, t);
    REQUIRE(r.orders.size() == 24);
    CHECK(r.standard_deviation > 1e-4);
    CHECK(r.max - r.min > 1e-4);
    // Order {2, 0, 3, 1}: the demonstrations placed by hand, the query kept at the end.
    const std::vector<std::size_t> order = {2, 0, 3, 1};
    const token_sequence reordered = {1, 6, 7, 8, 13, 3, 4, 13, 12, 13, 5, 13, 10, 11};
    const auto it = std::find(r.orders.begin(), r.orders.end(), order);
    REQUIRE(it != r.orders.end());
    const auto o = static_cast<std::size_t>(it - r.orders.begin());
    const tensor2 z = model.logits(reordered);
    // Batched against single passes: float rounding of values ~3.
    CHECK(r.values[o] == Approx(t.value_of(z)).margin(1e-5));
    const auto p = softmax(z, z.shape(0) - 1);
    CHECK(r.predictions[o] == static_cast<token_id>(std::max_element(p.begin(), p.end()) - p.begin()));
    CHECK(r.original_value == Approx(t.value_of(model.logits(tokens))).margin(1e-5));
    // The summary statistics of the values, computed here.
    double mean = 0, sq = 0;
    std::size_t changed = 0;
    for (std::size_t k = 0; k < 24; ++k) {
      mean += r.values[k] / 24;
      changed += r.predictions[k] != r.original_prediction;
    }
    for (double v : r.values) sq += (v - mean) * (v - mean) / 24;
    CHECK(r.mean == Approx(mean).margin(1e-12));
    CHECK(r.standard_deviation == Approx(std::sqrt(sq)).margin(1e-9));
    CHECK(r.min == *std::min_element(r.values.begin(), r.values.end()));
    CHECK(r.max == *std::max_element(r.values.begin(), r.values.end()));
    CHECK(r.prediction_change_rate == static_cast<double>(changed) / 24);
    CHECK(r.predictions[0] == r.original_prediction);
    // Every order against the prompt reordered by hand.
    for (std::size_t k = 0; k < 24; ++k) {
      const tensor2 zk = model.logits(reorder_by_hand(tokens, segments, r.orders[k]));
      CHECK(r.values[k] == Approx(t.value_of(zk)).margin(1e-5));
    }
  }
  SECTION("beyond max_orders: distinct orders sampled under a seed, deterministic") {
    const auto a = order_sensitivity(model, tokens, segments, t, {.max_orders = 10, .seed = 5});
    CHECK_FALSE(a.exhaustive);
    REQUIRE(a.orders.size() == 10);
    CHECK(a.model_evaluations == 11);  // the original order besides
    CHECK(std::set<std::vector<std::size_t>>(a.orders.begin(), a.orders.end()).size() == 10);
    for (const auto& o : a.orders) {
      auto sorted = o;
      std::sort(sorted.begin(), sorted.end());
      CHECK(sorted == std::vector<std::size_t>{0, 1, 2, 3});
    }
    // The same call again: bit-identical (docs/concepts.md, "Reproducibility").
    const auto again = order_sensitivity(model, tokens, segments, t, {.max_orders = 10, .seed = 5});
    CHECK(a.orders == again.orders);
    CHECK(a.values == again.values);
    CHECK(a.standard_deviation == again.standard_deviation);
    // Another batch size: the same orders, values equal to float rounding (a batch of other
    // inputs is a product of another size; bit for bit only where the BLAS happens to agree).
    const auto b =
        order_sensitivity(model, tokens, segments, t, {.max_orders = 10, .seed = 5, .execution = {.batch_size = 3}});
    CHECK(a.orders == b.orders);
    REQUIRE(a.values.size() == b.values.size());
    for (std::size_t k = 0; k < a.values.size(); ++k) CHECK(b.values[k] == Approx(a.values[k]).epsilon(1e-6));
    CHECK(b.standard_deviation == Approx(a.standard_deviation).epsilon(1e-4));
    const auto c = order_sensitivity(model, tokens, segments, t, {.max_orders = 10, .seed = 6});
    CHECK(a.orders != c.orders);
    // Exactly at the limit, every order.
    CHECK(order_sensitivity(model, tokens, segments, t, {.max_orders = 24}).exhaustive);
  }
  SECTION("bad input") {
    REQUIRE_THROWS_MATCHES(order_sensitivity(model, tokens, std::vector<segment>{{1, 4}}, t), shape_error,
                           what_contains("glassbox::order_sensitivity: segments must hold at least 2 segments"));
    REQUIRE_THROWS_MATCHES(order_sensitivity(model, tokens, std::vector<segment>{}, t), shape_error,
                           what_contains("glassbox::order_sensitivity: segments must not be empty"));
    REQUIRE_THROWS_MATCHES(order_sensitivity(model, tokens, segments, t, {.max_orders = 0}), glassbox::error,
                           what_contains("max_orders must be >= 1, got 0"));
  }
}

TEST_CASE("prompting: step scores against a softmax by hand", "[prompting][steps][gpt2]") {
  const auto model = small_gpt2(11);
  const token_sequence prompt = {1, 5, 8, 2};
  const token_sequence answer = {7, 3, 19, 4};
  token_sequence full = prompt;
  full.insert(full.end(), answer.begin(), answer.end());
  const tensor2 z = model.logits(full);
  // Model rows against a single full pass: float rounding of log-probabilities ~3.4.
  constexpr double tol = 1e-5;
  auto check_step = [&](const step_score& s, std::size_t g, token_id foil) {
    const auto p = softmax(z, prompt.size() - 1 + g);
    double h = 0;
    for (double x : p) h -= x * std::log(x);
    CHECK(s.token == answer[g]);
    CHECK(s.probability == Approx(p[static_cast<std::size_t>(answer[g])]).margin(tol));
    CHECK(s.log_probability == Approx(std::log(p[static_cast<std::size_t>(answer[g])])).margin(tol));
    CHECK(s.surprisal == -s.log_probability);
    CHECK(s.probability == Approx(std::exp(s.log_probability)).epsilon(1e-12));
    CHECK(s.entropy == Approx(h).margin(tol));
    const auto top = static_cast<std::size_t>(std::max_element(p.begin(), p.end()) - p.begin());
    CHECK(s.top_token == static_cast<token_id>(top));
    CHECK(s.top_probability == Approx(p[top]).margin(tol));
    if (foil >= 0) {
      CHECK(s.foil == foil);
      CHECK(s.contrast ==
            Approx(p[static_cast<std::size_t>(answer[g])] - p[static_cast<std::size_t>(foil)]).margin(tol));
    } else {
      CHECK(s.foil == -1);
      CHECK(std::isnan(s.contrast));
    }
  };
  SECTION("teacher-forced, one pass, one foil for every step") {
    const counting_model<models::gpt2> counted{model};
    const auto r = step_scores(counted, prompt, answer, {.foils = {6}});
    CHECK(r.one_pass);
    CHECK(r.model_evaluations == 1);
    CHECK(counted.passes.load() == 1);
    CHECK(r.prompt_length == 4);
    CHECK(r.token_ids == full);
    REQUIRE(r.steps.size() == 4);
    for (std::size_t g = 0; g < 4; ++g) check_step(r.steps[g], g, 6);
  }
  SECTION("one pass per step equals the one pass; foils per step") {
    const std::vector<token_id> foils = {2, 9, 1, 28};
    const counting_model<models::gpt2> counted{model};
    const auto slow = step_scores(counted, prompt, answer, {.foils = foils, .one_pass = false});
    CHECK_FALSE(slow.one_pass);
    CHECK(slow.model_evaluations == 4);
    CHECK(counted.passes.load() == 4);
    const auto fast = step_scores(model, prompt, answer, {.foils = foils});
    for (std::size_t g = 0; g < 4; ++g) {
      check_step(slow.steps[g], g, foils[g]);
      CHECK(slow.steps[g].log_probability == Approx(fast.steps[g].log_probability).margin(tol));
      CHECK(slow.steps[g].entropy == Approx(fast.steps[g].entropy).margin(tol));
      CHECK(slow.steps[g].contrast == Approx(fast.steps[g].contrast).margin(tol));
    }
    CHECK(slow.summary.perplexity == Approx(fast.summary.perplexity).epsilon(1e-5));
  }
  SECTION("a model with logits only: one pass through logits; a classifier: a pass per step") {
    const plain_model<models::gpt2> plain{model};
    const auto r = step_scores(plain, prompt, answer);
    CHECK(r.one_pass);
    CHECK(plain.passes.load() == 1);
    for (std::size_t g = 0; g < 4; ++g) check_step(r.steps[g], g, -1);
    const last_row_model classifier{model};
    const auto c = step_scores(classifier, prompt, answer);
    CHECK_FALSE(c.one_pass);
    CHECK(c.model_evaluations == 4);
    for (std::size_t g = 0; g < 4; ++g) check_step(c.steps[g], g, -1);
  }
  SECTION("the uncertainty summary") {
    const auto r = step_scores(model, prompt, answer);
    double lp = 0, h = 0, hmax = -1, pmin = 2;
    std::size_t least = 0;
    for (std::size_t g = 0; g < 4; ++g) {
      lp += r.steps[g].log_probability;
      h += r.steps[g].entropy;
      hmax = std::max(hmax, r.steps[g].entropy);
      if (r.steps[g].probability < pmin) {
        pmin = r.steps[g].probability;
        least = g;
      }
    }
    CHECK(r.summary.sequence_log_probability == Approx(lp).epsilon(1e-12));
    CHECK(r.summary.mean_surprisal == Approx(-lp / 4).epsilon(1e-12));
    CHECK(r.summary.perplexity == Approx(std::exp(-lp / 4)).epsilon(1e-12));
    CHECK(r.summary.mean_entropy == Approx(h / 4).epsilon(1e-12));
    CHECK(r.summary.max_entropy == hmax);
    CHECK(r.summary.least_confident_step == least);
    // The sequence log-probability is the sequence target of the core module.
    CHECK(r.summary.sequence_log_probability ==
          Approx(target::sequence_log_probability(answer).value_of(z)).margin(1e-4));
  }
  SECTION("greedy generation: the tokens of generate_greedy, scored from the passes that chose them") {
    const auto r = step_scores(model, prompt, std::size_t{5}, {.foils = {3}});
    const auto greedy = generate_greedy(model, prompt, 5);
    REQUIRE(r.steps.size() == 5);
    CHECK(r.generated);
    CHECK(r.model_evaluations == 5);
    for (std::size_t g = 0; g < 5; ++g) {
      CHECK(r.steps[g].token == greedy[g]);
      CHECK(r.steps[g].probability == r.steps[g].top_probability);
      CHECK(r.steps[g].token == r.steps[g].top_token);
    }
    // Teacher forcing the generated tokens gives the same scores.
    const auto forced = step_scores(model, prompt, greedy, {.foils = {3}});
    for (std::size_t g = 0; g < 5; ++g) {
      CHECK(forced.steps[g].log_probability == Approx(r.steps[g].log_probability).margin(tol));
      CHECK(forced.steps[g].contrast == Approx(r.steps[g].contrast).margin(tol));
    }
    // Stopping after a token: generation ends at its first occurrence.
    const auto first =
        static_cast<std::size_t>(std::find(greedy.begin(), greedy.end(), greedy.back()) - greedy.begin());
    const auto stopped = step_scores(model, prompt, std::size_t{5}, {}, greedy.back());
    CHECK(stopped.steps.size() == first + 1);
    CHECK(stopped.model_evaluations == first + 1);
    CHECK(stopped.steps.back().token == greedy.back());
  }
  SECTION("bad input names the argument") {
    REQUIRE_THROWS_MATCHES(step_scores(model, prompt, token_sequence{}), shape_error,
                           what_contains("glassbox::step_scores: continuation must not be empty"));
    REQUIRE_THROWS_MATCHES(step_scores(model, token_sequence{}, answer), shape_error,
                           what_contains("glassbox::step_scores: prompt must not be empty"));
    REQUIRE_THROWS_MATCHES(step_scores(model, prompt, answer, {.foils = {30}}), shape_error,
                           what_contains("glassbox::step_scores: foil must be in [0, 30), got 30"));
    REQUIRE_THROWS_MATCHES(step_scores(model, prompt, answer, {.foils = {-1}}), shape_error,
                           what_contains("foil must be in [0, 30), got -1"));
    REQUIRE_THROWS_MATCHES(step_scores(model, prompt, answer, {.foils = {1, 2}}), shape_error,
                           what_contains("foils must be empty, one foil, or one per generated token (4), got 2"));
    REQUIRE_THROWS_MATCHES(step_scores(model, prompt, token_sequence{3, 31}), shape_error,
                           what_contains("continuation token must be in [0, 30), got 31"));
    REQUIRE_THROWS_MATCHES(step_scores(model, prompt, std::size_t{0}), glassbox::error,
                           what_contains("glassbox::step_scores: new_tokens must be >= 1, got 0"));
  }
}

TEST_CASE("prompting: a uniform next-token distribution", "[prompting][steps]") {
  const uniform_model model;
  const auto r = step_scores(model, token_sequence{1, 2}, token_sequence{3, 0, 16}, {.foils = {5}});
  const double log_v = std::log(17.0);
  for (const auto& s : r.steps) {
    CHECK(s.entropy == Approx(log_v).epsilon(1e-14));
    CHECK(s.surprisal == Approx(log_v).epsilon(1e-14));
    CHECK(s.probability == Approx(1.0 / 17).epsilon(1e-14));
    CHECK(s.contrast == 0.0);
    CHECK(s.top_token == 0);  // ties go to the lowest id
  }
  CHECK(r.summary.perplexity == Approx(17.0).epsilon(1e-12));
  CHECK(r.summary.max_entropy == Approx(log_v).epsilon(1e-14));
  CHECK(r.summary.least_confident_step == 0);  // all equal: the first
}

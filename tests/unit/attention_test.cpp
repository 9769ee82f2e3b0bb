// Tests of the attention module: rollout and flow on hand-made tensors worked out by hand, flow
// against an independent Edmonds-Karp, head statistics against closed forms, gradient methods on
// a model whose gradients are known in closed form, and head importance / ablation / pruning on
// the reference GPT-2 against finite differences and direct measurement.
#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <cmath>
#include <deque>
#include <glassbox/attention.hpp>
#include <glassbox/core/random.hpp>
#include <limits>
#include <numeric>
#include <vector>

#include "glassbox/models/gpt2.hpp"
#include "test_support.hpp"

namespace {

using namespace glassbox;
using glassbox::test::what_contains;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

// A [L, H, T, T] tensor from nested rows: maps[l][h] is a T x T row list.
tensor4 make_attentions(const std::vector<std::vector<std::vector<std::vector<double>>>>& maps) {
  const std::size_t l_count = maps.size(), h_count = maps[0].size(), t = maps[0][0].size();
  tensor4 a({l_count, h_count, t, t});
  for (std::size_t l = 0; l < l_count; ++l)
    for (std::size_t h = 0; h < h_count; ++h)
      for (std::size_t i = 0; i < t; ++i)
        for (std::size_t j = 0; j < t; ++j) a(l, h, i, j) = static_cast<float>(maps[l][h][i][j]);
  return a;
}

// Softmax attention of random scores; causal (keys <= query) or full; some entries set to 0
// exactly when `sparsity` > 0 (then the row is renormalised), to exercise zero capacities.
tensor4 random_attentions(std::size_t l_count, std::size_t h_count, std::size_t t, bool causal, double sparsity, rng& g,
                          double scale = 2.0) {
  tensor4 a({l_count, h_count, t, t});
  for (std::size_t l = 0; l < l_count; ++l)
    for (std::size_t h = 0; h < h_count; ++h)
      for (std::size_t i = 0; i < t; ++i) {
        std::vector<double> row(t, 0.0);
        const std::size_t keys = causal ? i + 1 : t;
        double m = -1e300;
        std::vector<double> s(keys);
        for (std::size_t j = 0; j < keys; ++j) {
          s[j] = scale * g.normal();
          m = std::max(m, s[j]);
        }
        double z = 0;
        for (std::size_t j = 0; j < keys; ++j) {
          row[j] = (j != i && g.bernoulli(sparsity)) ? 0.0 : std::exp(s[j] - m);
          z += row[j];
        }
        for (std::size_t j = 0; j < t; ++j) a(l, h, i, j) = static_cast<float>(row[j] / z);
      }
  return a;
}

// An independent maximum flow: Edmonds-Karp (shortest augmenting paths by BFS) on a dense
// residual matrix. Deliberately the textbook version, sharing no code with the library.
double edmonds_karp(std::vector<std::vector<double>> residual, std::size_t s, std::size_t t) {
  const std::size_t n = residual.size();
  double total = 0;
  while (true) {
    std::vector<std::ptrdiff_t> parent(n, -1);
    parent[s] = static_cast<std::ptrdiff_t>(s);
    std::deque<std::size_t> queue{s};
    while (!queue.empty() && parent[t] < 0) {
      const std::size_t u = queue.front();
      queue.pop_front();
      for (std::size_t v = 0; v < n; ++v)
        if (parent[v] < 0 && residual[u][v] > 1e-15) {
          parent[v] = static_cast<std::ptrdiff_t>(u);
          queue.push_back(v);
        }
    }
    if (parent[t] < 0) return total;
    double bottleneck = std::numeric_limits<double>::infinity();
    for (std::size_t v = t; v != s; v = static_cast<std::size_t>(parent[v]))
      bottleneck = std::min(bottleneck, residual[static_cast<std::size_t>(parent[v])][v]);
    for (std::size_t v = t; v != s; v = static_cast<std::size_t>(parent[v])) {
      const auto u = static_cast<std::size_t>(parent[v]);
      residual[u][v] -= bottleneck;
      residual[v][u] += bottleneck;
    }
    total += bottleneck;
  }
}

// The reference's flow matrix, by Edmonds-Karp on the whole layered graph: node (k, p) is
// k * T + p; edge (k, p) -> (k - 1, q) with capacity graph[k - 1](p, q).
std::vector<std::vector<double>> reference_flows(const tensor3& graph) {
  const std::size_t n = graph.shape(0), t = graph.shape(1), nodes = (n + 1) * t;
  std::vector<std::vector<double>> cap(nodes, std::vector<double>(nodes, 0.0));
  for (std::size_t k = 1; k <= n; ++k)
    for (std::size_t p = 0; p < t; ++p)
      for (std::size_t q = 0; q < t; ++q) cap[k * t + p][(k - 1) * t + q] = graph(k - 1, p, q);
  std::vector<std::vector<double>> flows(t, std::vector<double>(t));
  for (std::size_t i = 0; i < t; ++i)
    for (std::size_t j = 0; j < t; ++j) flows[i][j] = edmonds_karp(cap, n * t + i, j);
  return flows;
}

// A model whose gradients are known in closed form: every head of every layer reads the token
// embeddings directly (no interaction between layers), so
//   z[i, c] = b[c] + sum_{l,h} m[l,h] sum_j A[l,h,i,j] U[l,h][tok_j][c]
//   d z[i, c] / d A[l,h,i,j] = m[l,h] U[l,h][tok_j][c],   d z[i, c] / d m[l,h] = sum_j A[l,h,i,j] U[l,h][tok_j][c]
// with A = causal softmax of fixed scores S[l,h][tok_i][tok_j].
struct toy_attention_model {
  static constexpr bool thread_safe = true;
  std::size_t layers = 2, heads = 2, vocab = 5;
  std::vector<double> score, value, bias;  // [L,H,V,V], [L,H,V,V] (c = output token), [V]

  toy_attention_model(std::size_t l_count, std::size_t h_count, std::size_t v, std::uint64_t seed)
      : layers(l_count), heads(h_count), vocab(v) {
    rng g(seed);
    score.resize(layers * heads * vocab * vocab);
    value.resize(layers * heads * vocab * vocab);
    bias.resize(vocab);
    for (auto& x : score) x = 1.5 * g.normal();
    for (auto& x : value) x = g.normal();
    for (auto& x : bias) x = g.normal();
  }
  std::size_t vocab_size() const { return vocab; }
  double s(std::size_t l, std::size_t h, token_id a, token_id b) const {
    return score[((l * heads + h) * vocab + static_cast<std::size_t>(a)) * vocab + static_cast<std::size_t>(b)];
  }
  double u(std::size_t l, std::size_t h, token_id tok, std::size_t c) const {
    return value[((l * heads + h) * vocab + static_cast<std::size_t>(tok)) * vocab + c];
  }
  tensor4 attentions(token_span t) const {
    const std::size_t n = t.size();
    tensor4 a({layers, heads, n, n});
    for (std::size_t l = 0; l < layers; ++l)
      for (std::size_t h = 0; h < heads; ++h)
        for (std::size_t i = 0; i < n; ++i) {
          double m = -1e300, z = 0;
          for (std::size_t j = 0; j <= i; ++j) m = std::max(m, s(l, h, t[i], t[j]));
          for (std::size_t j = 0; j <= i; ++j) z += std::exp(s(l, h, t[i], t[j]) - m);
          for (std::size_t j = 0; j < n; ++j)
            a(l, h, i, j) = j <= i ? static_cast<float>(std::exp(s(l, h, t[i], t[j]) - m) / z) : 0.0f;
        }
    return a;
  }
  tensor2 ones() const {
    tensor2 m({layers, heads});
    std::fill(m.begin(), m.end(), 1.0f);
    return m;
  }
  tensor2 logits_with_head_mask(token_span t, const tensor2& mask) const {
    const tensor4 a = attentions(t);
    const std::size_t n = t.size();
    tensor2 z({n, vocab});
    for (std::size_t i = 0; i < n; ++i)
      for (std::size_t c = 0; c < vocab; ++c) {
        double v = bias[c];
        for (std::size_t l = 0; l < layers; ++l)
          for (std::size_t h = 0; h < heads; ++h)
            for (std::size_t j = 0; j <= i; ++j) v += mask(l, h) * a(l, h, i, j) * u(l, h, t[j], c);
        z(i, c) = static_cast<float>(v);
      }
    return z;
  }
  tensor2 logits(token_span t) const { return logits_with_head_mask(t, ones()); }
  // d f / d z for the seed's rows, scattered to all rows [T, V].
  tensor2 seed_gradient(token_span t, const tensor2& z, const output_seed& seed, double& value_out) const {
    const auto rows = seed.rows(t.size());
    tensor2 picked({rows.size(), vocab}), d;
    for (std::size_t r = 0; r < rows.size(); ++r)
      for (std::size_t c = 0; c < vocab; ++c) picked(r, c) = z(rows[r], c);
    value_out = seed(picked, d);
    tensor2 full = xt::zeros<float>({t.size(), vocab});
    for (std::size_t r = 0; r < rows.size(); ++r)
      for (std::size_t c = 0; c < vocab; ++c) full(rows[r], c) += d(r, c);
    return full;
  }
  attention_gradient_result attention_gradient(token_span t, const output_seed& seed) const {
    attention_gradient_result r;
    r.attentions = attentions(t);
    const tensor2 dz = seed_gradient(t, logits(t), seed, r.value);
    const std::size_t n = t.size();
    r.gradient = tensor4({layers, heads, n, n});
    for (std::size_t l = 0; l < layers; ++l)
      for (std::size_t h = 0; h < heads; ++h)
        for (std::size_t i = 0; i < n; ++i)
          for (std::size_t j = 0; j < n; ++j) {
            double g = 0;
            for (std::size_t c = 0; c < vocab; ++c) g += dz(i, c) * u(l, h, t[j], c);
            r.gradient(l, h, i, j) = static_cast<float>(g);
          }
    return r;
  }
  value_and_gradient<tensor2> head_mask_gradient(token_span t, const tensor2& mask, const output_seed& seed) const {
    value_and_gradient<tensor2> r;
    const tensor2 dz = seed_gradient(t, logits_with_head_mask(t, mask), seed, r.value);
    const tensor4 a = attentions(t);
    r.gradient = tensor2({layers, heads});
    for (std::size_t l = 0; l < layers; ++l)
      for (std::size_t h = 0; h < heads; ++h) {
        double g = 0;
        for (std::size_t i = 0; i < t.size(); ++i)
          for (std::size_t j = 0; j <= i; ++j)
            for (std::size_t c = 0; c < vocab; ++c) g += dz(i, c) * a(l, h, i, j) * u(l, h, t[j], c);
        r.gradient(l, h) = static_cast<float>(g);
      }
    return r;
  }
};

static_assert(AttentionGradientModel<toy_attention_model>);
static_assert(AttentionGradientModel<models::gpt2>);

// A small random GPT-2 (weights scaled up so that attention is far from uniform).
models::gpt2 small_gpt2(std::uint64_t seed) {
  models::gpt2_config c;
  c.n_layer = 2;
  c.n_head = 2;
  c.n_embd = 16;
  c.n_positions = 32;
  c.vocab_size = 23;
  auto m = models::gpt2::random(c, seed);
  std::vector<float> p(m.parameters().begin(), m.parameters().end());
  for (auto& x : p) x *= 8.0f;  // N(0, 0.16): attention scores of order 1
  m.set_parameters(p);
  return m;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Raw attention and the residual graph
// ---------------------------------------------------------------------------------------------

TEST_CASE("head aggregation and the residual correction follow the reference", "[attention]") {
  // Two heads of one layer, T = 2.
  const tensor4 a = make_attentions({{{{1, 0}, {0.2, 0.8}}, {{1, 0}, {0.6, 0.4}}}});
  SECTION("mean: W = [[1, 0], [0.4, 0.6]], A = 0.5 W + 0.5 I = [[1, 0], [0.2, 0.8]]") {
    const tensor3 g = residual_attention(a);
    CHECK(g(0, 1, 0) == Approx(0.2).margin(1e-7));  // float inputs: 1e-7 covers their rounding
    CHECK(g(0, 1, 1) == Approx(0.8).margin(1e-7));
    CHECK(g(0, 0, 1) == 0.0f);
  }
  SECTION("max: W = [[1, 0], [0.6, 0.8]], 0.5 W + 0.5 I = [[1, 0], [0.3, 0.9]], rows / 1.2 -> [0.25, 0.75]") {
    attention_graph_options o;
    o.aggregation = head_aggregation::max;
    const tensor3 g = residual_attention(a, o);
    CHECK(g(0, 1, 0) == Approx(0.25).margin(1e-7));
    CHECK(g(0, 1, 1) == Approx(0.75).margin(1e-7));
  }
  SECTION("min: W = [[1, 0], [0.2, 0.4]], 0.5 W + 0.5 I = [[1, 0], [0.1, 0.7]], rows / 0.8 -> [0.125, 0.875]") {
    attention_graph_options o;
    o.aggregation = head_aggregation::min;
    const tensor3 g = residual_attention(a, o);
    CHECK(g(0, 1, 0) == Approx(0.125).margin(1e-7));
    CHECK(g(0, 1, 1) == Approx(0.875).margin(1e-7));
  }
  SECTION("weighted 3:1: W row 1 = (3 [0.2, 0.8] + [0.6, 0.4]) / 4 = [0.3, 0.7], A = [0.15, 0.85]") {
    attention_graph_options o;
    o.aggregation = head_aggregation::weighted;
    o.head_weights = tensor2({1, 2});
    o.head_weights(0, 0) = 3;
    o.head_weights(0, 1) = 1;
    const tensor3 g = residual_attention(a, o);
    CHECK(g(0, 1, 0) == Approx(0.15).margin(1e-7));
    CHECK(g(0, 1, 1) == Approx(0.85).margin(1e-7));
  }
  SECTION("weighted with a layer's weights all 0: W = 0, so A = I (only the residual passes)") {
    attention_graph_options o;
    o.aggregation = head_aggregation::weighted;
    o.head_weights = xt::zeros<float>({1, 2});
    const tensor3 g = residual_attention(a, o);
    CHECK(g(0, 1, 0) == 0.0f);
    CHECK(g(0, 1, 1) == 1.0f);
  }
  SECTION("residual 0.2: A = 0.8 W + 0.2 I, row 1 = [0.32, 0.68]") {
    attention_graph_options o;
    o.residual = 0.2;
    const tensor3 g = residual_attention(a, o);
    CHECK(g(0, 1, 0) == Approx(0.32).margin(1e-7));
    CHECK(g(0, 1, 1) == Approx(0.68).margin(1e-7));
  }
  SECTION("raw attention keeps every head and aggregates per layer") {
    const auto r = raw_attention(a, head_aggregation::max);
    CHECK((r.attentions == a));
    CHECK(r.aggregated(0, 1, 0) == Approx(0.6));
    CHECK(r.aggregated(0, 1, 1) == Approx(0.8));
    CHECK(r.method == "raw_attention");
  }
}

TEST_CASE("bad attention input fails fast with the documented messages", "[attention]") {
  const tensor4 a = make_attentions({{{{1, 0}, {0.5, 0.5}}}});
  REQUIRE_THROWS_MATCHES(attention_rollout(tensor4({1, 1, 2, 3})), shape_error,
                         what_contains("glassbox::attention_rollout: attentions must be [L, H, T, T]"));
  tensor4 negative = a;
  negative(0, 0, 1, 0) = -0.1f;
  REQUIRE_THROWS_MATCHES(attention_flow(negative), error,
                         what_contains("attentions must be finite and >= 0, got -0.1 at [0, 0, 1, 0]"));
  rollout_options o;
  o.graph.residual = 1.5;
  REQUIRE_THROWS_MATCHES(attention_rollout(a, o), error, what_contains("residual must be in [0, 1], got 1.5"));
  o = {};
  o.graph.last_layer = 2;
  REQUIRE_THROWS_MATCHES(attention_rollout(a, o), shape_error, what_contains("last_layer must be in [1, 1], got 2"));
  o = {};
  o.graph.aggregation = head_aggregation::weighted;
  REQUIRE_THROWS_MATCHES(attention_rollout(a, o), shape_error,
                         what_contains("head_weights must be [1, 1] for weighted aggregation, got [0, 0]"));
  o = {};
  o.graph.head_weights = tensor2({1, 1});
  REQUIRE_THROWS_MATCHES(attention_rollout(a, o), error,
                         what_contains("head_weights must be empty unless aggregation is weighted"));
  o = {};
  o.position = 2;
  REQUIRE_THROWS_MATCHES(attention_rollout(a, o), shape_error, what_contains("position must be < 2, got 2"));
  flow_options f;
  f.sources = {0};
  f.position = 1;
  REQUIRE_THROWS_MATCHES(attention_flow(a, f), shape_error, what_contains("position must be one of the sources"));
  f = {};
  f.epsilon = 0;
  REQUIRE_THROWS_MATCHES(attention_flow(a, f), error, what_contains("epsilon must be in (0, 1e-3), got 0"));
}

// ---------------------------------------------------------------------------------------------
// Rollout
// ---------------------------------------------------------------------------------------------

TEST_CASE("attention rollout on a hand-made tensor, both products", "[attention][rollout]") {
  // One head per layer, T = 3.
  //   W0 = [[1, 0, 0], [0.6, 0.4, 0], [0.2, 0.3, 0.5]]  ->  A0 = 0.5 W0 + 0.5 I = [[1,0,0],[0.3,0.7,0],[0.1,0.15,0.75]]
  //   W1 = [[1, 0, 0], [0.5, 0.5, 0], [0.1, 0.1, 0.8]]  ->  A1 = [[1,0,0],[0.25,0.75,0],[0.05,0.05,0.9]]
  const tensor4 a =
      make_attentions({{{{1, 0, 0}, {0.6, 0.4, 0}, {0.2, 0.3, 0.5}}}, {{{1, 0, 0}, {0.5, 0.5, 0}, {0.1, 0.1, 0.8}}}});
  // Float inputs (0.6f etc.) carry relative rounding ~6e-8; 1e-6 covers it after two products.
  const double tol = 1e-6;
  SECTION("left (the paper): R = A1 A0") {
    // row 1: 0.25 [1,0,0] + 0.75 [0.3,0.7,0] = [0.475, 0.525, 0]
    // row 2: 0.05 [1,0,0] + 0.05 [0.3,0.7,0] + 0.9 [0.1,0.15,0.75] = [0.155, 0.17, 0.675]
    const auto r = attention_rollout(a);
    CHECK(r.method == "attention_rollout");
    CHECK(r.matrix(0, 0) == Approx(1.0).margin(tol));
    CHECK(r.matrix(1, 0) == Approx(0.475).margin(tol));
    CHECK(r.matrix(1, 1) == Approx(0.525).margin(tol));
    CHECK(r.matrix(2, 0) == Approx(0.155).margin(tol));
    CHECK(r.matrix(2, 1) == Approx(0.17).margin(tol));
    CHECK(r.matrix(2, 2) == Approx(0.675).margin(tol));
    CHECK(r.position == 2);
    REQUIRE(r.scores.size() == 3);
    CHECK(r.scores[0] == Approx(0.155).margin(tol));
    CHECK(r.layer_maps.shape(0) == 2);
    CHECK(r.layer_maps(1, 2, 0) == Approx(0.05).margin(tol));
  }
  SECTION("right: R = A0 A1") {
    // row 2: 0.1 [1,0,0] + 0.15 [0.25,0.75,0] + 0.75 [0.05,0.05,0.9] = [0.175, 0.15, 0.675]
    rollout_options o;
    o.product = rollout_product::right;
    const auto r = attention_rollout(a, o);
    CHECK(r.matrix(1, 0) == Approx(0.475).margin(tol));
    CHECK(r.matrix(2, 0) == Approx(0.175).margin(tol));
    CHECK(r.matrix(2, 1) == Approx(0.15).margin(tol));
    CHECK(r.matrix(2, 2) == Approx(0.675).margin(tol));
  }
  SECTION("layer ranges: [1, 2) is A1 alone, [0, 1) is A0 alone") {
    rollout_options o;
    o.graph.first_layer = 1;
    auto r = attention_rollout(a, o);
    CHECK(r.matrix(2, 0) == Approx(0.05).margin(tol));
    CHECK(r.first_layer == 1);
    CHECK(r.last_layer == 2);
    o = {};
    o.graph.last_layer = 1;
    r = attention_rollout(a, o);
    CHECK(r.matrix(2, 1) == Approx(0.15).margin(tol));
  }
  SECTION("rows of a rollout of stochastic matrices sum to 1") {
    rng g(5);
    const tensor4 big = random_attentions(4, 3, 9, true, 0.0, g);
    const auto r = attention_rollout(big);
    for (std::size_t i = 0; i < 9; ++i) {
      double s = 0;
      for (std::size_t j = 0; j < 9; ++j) s += r.matrix(i, j);
      CHECK(s == Approx(1.0).margin(1e-5));                                   // float storage of 9 entries
      for (std::size_t j = i + 1; j < 9; ++j) CHECK(r.matrix(i, j) == 0.0f);  // causal stays causal
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Flow
// ---------------------------------------------------------------------------------------------

TEST_CASE("attention flow on hand-made graphs", "[attention][flow]") {
  SECTION("one layer: each flow is the single edge's capacity, A itself") {
    const tensor4 a = make_attentions({{{{1, 0}, {0.3, 0.7}}}});
    const auto f = attention_flow(a);
    // A = 0.5 W + 0.5 I = [[1, 0], [0.15, 0.85]]
    CHECK(f.matrix(1, 0) == Approx(0.15).margin(1e-7));
    CHECK(f.matrix(1, 1) == Approx(0.85).margin(1e-7));
  }
  SECTION("two causal layers, T = 2: flow 0.45 vs rollout 0.405") {
    // A0 = [[1, 0], [0.15, 0.85]], A1 = [[1, 0], [0.3, 0.7]] (W1 row 1 = [0.6, 0.4]).
    // From top position 1: to input 0 by (1,0) min(0.3, 1) = 0.3 and by (1,1) min(0.7, 0.15) = 0.15: 0.45;
    // to input 1 by (1,1) min(0.7, 0.85) = 0.7. Row [0.45, 0.7] / 1.15.
    const tensor4 a = make_attentions({{{{1, 0}, {0.3, 0.7}}}, {{{1, 0}, {0.6, 0.4}}}});
    const auto f = attention_flow(a);
    CHECK(f.method == "attention_flow");
    CHECK(f.unnormalized(1, 0) == Approx(0.45).margin(1e-6));
    CHECK(f.unnormalized(1, 1) == Approx(0.7).margin(1e-6));
    CHECK(f.matrix(1, 0) == Approx(0.45 / 1.15).margin(1e-6));
    CHECK(f.matrix(1, 1) == Approx(0.7 / 1.15).margin(1e-6));
    CHECK(f.matrix(0, 0) == Approx(1.0).margin(1e-7));
    CHECK(f.matrix(0, 1) == 0.0f);
    CHECK(f.scores[0] == Approx(0.45 / 1.15).margin(1e-6));
    // Rollout of the same graph: 0.3 + 0.7 * 0.15 = 0.405.
    CHECK(attention_rollout(a).matrix(1, 0) == Approx(0.405).margin(1e-6));
  }
  SECTION("three full layers without residual: cuts at the sink (0.4) and at the source (1.0)") {
    // residual 0, every row [0.5, 0.5] in the two top layers and [0.2, 0.8] in the bottom one.
    // To input 0 the two edges into it carry 0.2 + 0.2 = 0.4; to input 1 the source's out-capacity
    // 1 is the smaller cut (0.8 + 0.8 = 1.6 into the sink). Rollout would give [0.2, 0.8].
    const tensor4 a =
        make_attentions({{{{0.2, 0.8}, {0.2, 0.8}}}, {{{0.5, 0.5}, {0.5, 0.5}}}, {{{0.5, 0.5}, {0.5, 0.5}}}});
    flow_options o;
    o.graph.residual = 0;
    const auto f = attention_flow(a, o);
    CHECK(f.unnormalized(0, 0) == Approx(0.4).margin(1e-6));
    CHECK(f.unnormalized(0, 1) == Approx(1.0).margin(1e-6));
    CHECK(f.matrix(0, 0) == Approx(2.0 / 7.0).margin(1e-6));
    CHECK(f.matrix(0, 1) == Approx(5.0 / 7.0).margin(1e-6));
  }
}

TEST_CASE("attention flow equals an independent Edmonds-Karp on random layered graphs", "[attention][flow]") {
  rng g(2024);
  for (int trial = 0; trial < 60; ++trial) {
    const std::size_t l_count = 1 + g.below(4), h_count = 1 + g.below(3), t = 1 + g.below(7);
    const bool causal = g.bernoulli(0.6);
    const double sparsity = g.bernoulli(0.5) ? 0.3 : 0.0;
    const tensor4 a = random_attentions(l_count, h_count, t, causal, sparsity, g);
    flow_options o;
    const double residuals[] = {0.0, 0.3, 0.5};
    o.graph.residual = residuals[g.below(3)];
    const head_aggregation aggs[] = {head_aggregation::mean, head_aggregation::max, head_aggregation::min};
    o.graph.aggregation = aggs[g.below(3)];
    if (l_count > 1 && g.bernoulli(0.3)) o.graph.first_layer = 1;
    o.execution.threads = 1 + g.below(2);
    INFO("trial " << trial << ": L=" << l_count << " H=" << h_count << " T=" << t << " causal=" << causal
                  << " residual=" << o.graph.residual << " first_layer=" << o.graph.first_layer);
    const auto f = attention_flow(a, o);
    const auto ref = reference_flows(f.layer_maps);
    for (std::size_t i = 0; i < t; ++i) {
      double sum = 0;
      for (std::size_t j = 0; j < t; ++j) sum += ref[i][j];
      for (std::size_t j = 0; j < t; ++j) {
        // Capacities are the same doubles rounded to float in layer_maps (relative 6e-8), and
        // a flow is a sum of at most T^L capacities <= 1: 1e-6 absolute covers the difference.
        CHECK(f.unnormalized(i, j) == Approx(ref[i][j]).margin(1e-6));
        if (sum > 0) CHECK(f.matrix(i, j) == Approx(ref[i][j] / sum).margin(1e-6));
      }
    }
  }
}

TEST_CASE("attention flow: sources, threads, diagnostics, progress and cancellation", "[attention][flow]") {
  rng g(7);
  const tensor4 a = random_attentions(3, 2, 12, true, 0.0, g);
  flow_options one;
  one.execution.threads = 1;
  const auto full = attention_flow(a, one);
  SECTION("any thread count gives bit-identical results") {
    flow_options two;
    two.execution.threads = 2;
    CHECK((attention_flow(a, two).matrix == full.matrix));
  }
  SECTION("a subset of sources gives the same rows") {
    flow_options o;
    o.sources = {11, 4};
    const auto part = attention_flow(a, o);
    REQUIRE(part.matrix.shape(0) == 2);
    CHECK(part.row_positions == std::vector<std::size_t>{11, 4});
    CHECK(part.position == 4);  // the last source
    for (std::size_t j = 0; j < 12; ++j) {
      CHECK(part.matrix(0, j) == full.matrix(11, j));
      CHECK(part.matrix(1, j) == full.matrix(4, j));
    }
  }
  SECTION("under a causal mask, pairs with a future sink are skipped without a solve") {
    // 12 sources x 12 sinks, of which 12 * 11 / 2 = 66 have sink > source.
    const auto& d = full.diagnostics;
    auto value = [&](const std::string& name) {
      for (const auto& x : d)
        if (x.name == name) return std::get<std::int64_t>(x.value);
      return std::int64_t{-1};
    };
    CHECK(value("skipped_unreachable_pairs") == 66);
    CHECK(value("max_flow_problems") == 78);
    for (std::size_t i = 0; i < 12; ++i)
      for (std::size_t j = i + 1; j < 12; ++j) CHECK(full.matrix(i, j) == 0.0f);
  }
  SECTION("progress counts sources and a false return cancels") {
    std::atomic<std::size_t> calls{0}, last{0};
    flow_options o;
    o.execution.threads = 1;
    o.execution.on_progress = [&](const progress& p) {
      ++calls;
      last = p.done;
      return true;
    };
    attention_flow(a, o);
    CHECK(last == 12);
    CHECK(calls >= 12);
    o.execution.on_progress = [](const progress& p) { return p.done < 3; };
    REQUIRE_THROWS_AS(attention_flow(a, o), cancelled);
  }
}

// ---------------------------------------------------------------------------------------------
// Head statistics
// ---------------------------------------------------------------------------------------------

TEST_CASE("head statistics on hand-made maps", "[attention][heads]") {
  const std::size_t t = 5;
  // Head 0: uniform over the causal support (a_ij = 1/(i+1)); head 1: a copy; head 2: previous
  // token (row 0 attends to itself); head 3: self.
  tensor4 a = xt::zeros<float>({std::size_t{1}, std::size_t{4}, t, t});
  for (std::size_t i = 0; i < t; ++i) {
    for (std::size_t j = 0; j <= i; ++j) a(0, 0, i, j) = a(0, 1, i, j) = 1.0f / static_cast<float>(i + 1);
    a(0, 2, i, i == 0 ? 0 : i - 1) = 1.0f;
    a(0, 3, i, i) = 1.0f;
  }
  const std::vector<tensor4> inputs{a};
  const auto s = head_statistics(std::span<const tensor4>(inputs));
  CHECK(s.causal);
  CHECK(s.queries == t);
  // Uniform: entropy ln(i + 1), mean over i = 0..4 of ln(i + 1) = ln(5!) / 5.
  CHECK(s.entropy(0, 0) == Approx(std::log(120.0) / 5).margin(1e-6));  // float maps: 1e-6
  CHECK(s.normalized_entropy(0, 0) == Approx(1.0).margin(1e-6));
  // Distance sum_j (i - j) / (i + 1) = i / 2, mean (0 + 1 + 2 + 3 + 4) / 10 = 1.
  CHECK(s.mean_distance(0, 0) == Approx(1.0).margin(1e-6));
  // First token and self: mean of 1 / (i + 1) = (1 + 1/2 + 1/3 + 1/4 + 1/5) / 5 = 137 / 300.
  CHECK(s.first_token(0, 0) == Approx(137.0 / 300.0).margin(1e-6));
  CHECK(s.self_token(0, 0) == Approx(137.0 / 300.0).margin(1e-6));
  // Previous token over queries 1..4: (1/2 + 1/3 + 1/4 + 1/5) / 4 = 77 / 240.
  CHECK(s.previous_token(0, 0) == Approx(77.0 / 240.0).margin(1e-6));
  // Previous-token head: entropy 0, distance 1 for i >= 1 (mean 4/5), previous 1, first token
  // 2/5 (rows 0 and 1 attend to key 0), self 1/5 (row 0 only).
  CHECK(s.entropy(0, 2) == Approx(0.0).margin(1e-12));
  CHECK(s.normalized_entropy(0, 2) == Approx(0.0).margin(1e-12));
  CHECK(s.mean_distance(0, 2) == Approx(0.8).margin(1e-6));
  CHECK(s.previous_token(0, 2) == Approx(1.0).margin(1e-6));
  CHECK(s.first_token(0, 2) == Approx(0.4).margin(1e-6));
  CHECK(s.self_token(0, 2) == Approx(0.2).margin(1e-6));

  // Redundancy. Identical heads: 0. Previous vs self: rows 1..4 are one-hot on different keys
  // (JS = ln 2, cosine distance 1), row 0 is identical: means 4/5 ln 2 and 4/5.
  const std::size_t u = 0, copy = 1, prev = 2, self = 3;
  CHECK(s.js_divergence(u, copy) == Approx(0.0).margin(1e-6));
  CHECK(s.js_divergence(prev, self) == Approx(0.8 * std::log(2.0)).margin(1e-6));
  CHECK(s.cosine_distance(prev, self) == Approx(0.8).margin(1e-6));
  CHECK(s.js_divergence(self, prev) == s.js_divergence(prev, self));
  // Uniform vs self, by the KL form JS = 0.5 KL(p || m) + 0.5 KL(q || m) (not the entropy form
  // the library uses): p uniform over n = i + 1 keys, q one-hot at key i.
  double js = 0, cos = 0;
  for (std::size_t i = 0; i < t; ++i) {
    const double n = static_cast<double>(i + 1);
    double kl_p = 0, kl_q = 0;
    for (std::size_t j = 0; j <= i; ++j) {
      const double p = 1.0 / n, q = j == i ? 1.0 : 0.0, m = 0.5 * (p + q);
      kl_p += p * std::log(p / m);
      if (q > 0) kl_q += q * std::log(q / m);
    }
    js += 0.5 * kl_p + 0.5 * kl_q;
    cos += 1.0 - (1.0 / n) / (std::sqrt(n) / n);  // p.q = 1/n, |p| = 1/sqrt(n), |q| = 1
  }
  CHECK(s.js_divergence(u, self) == Approx(js / t).margin(1e-6));
  CHECK(s.cosine_distance(u, self) == Approx(cos / t).margin(1e-6));
  // Clustering: the identical pair merges first at distance 0 and sits together in the order.
  REQUIRE(s.linkage.size() == 3);
  CHECK(s.linkage[0].left == 0);
  CHECK(s.linkage[0].right == 1);
  CHECK(s.linkage[0].distance == Approx(0.0).margin(1e-6));
  REQUIRE(s.cluster_order.size() == 4);
  const auto p0 = std::find(s.cluster_order.begin(), s.cluster_order.end(), 0) - s.cluster_order.begin();
  const auto p1 = std::find(s.cluster_order.begin(), s.cluster_order.end(), 1) - s.cluster_order.begin();
  CHECK(std::abs(p0 - p1) == 1);
}

TEST_CASE("head statistics: full support, pooling over inputs, thread independence", "[attention][heads]") {
  SECTION("uniform full attention: entropy ln T for every query") {
    tensor4 a({1, 1, 4, 4});
    std::fill(a.begin(), a.end(), 0.25f);
    const std::vector<tensor4> inputs{a};
    const auto s = head_statistics(std::span<const tensor4>(inputs));
    CHECK_FALSE(s.causal);
    CHECK(s.entropy(0, 0) == Approx(std::log(4.0)).margin(1e-6));
    // distance: row i has sum_j |i - j| / 4 = (6, 4, 4, 6) / 4, mean 20 / 16 = 1.25
    CHECK(s.mean_distance(0, 0) == Approx(1.25).margin(1e-6));
    CHECK(s.cluster_order == std::vector<std::size_t>{0});
    CHECK(s.linkage.empty());
  }
  SECTION("queries are pooled over inputs of different lengths") {
    // Input 1 (T = 1): entropy 0. Input 2 (T = 3, uniform causal): ln 1, ln 2, ln 3. Mean over 4 queries.
    tensor4 a1 = xt::ones<float>({1, 1, 1, 1});
    tensor4 a2 = xt::zeros<float>({1, 1, 3, 3});
    for (std::size_t i = 0; i < 3; ++i)
      for (std::size_t j = 0; j <= i; ++j) a2(0, 0, i, j) = 1.0f / static_cast<float>(i + 1);
    const std::vector<tensor4> inputs{a1, a2};
    const auto s = head_statistics(std::span<const tensor4>(inputs));
    CHECK(s.inputs == 2);
    CHECK(s.queries == 4);
    CHECK(s.entropy(0, 0) == Approx(std::log(6.0) / 4).margin(1e-6));
  }
  SECTION("thread count does not change any bit") {
    rng g(3);
    std::vector<tensor4> inputs;
    for (int k = 0; k < 3; ++k) inputs.push_back(random_attentions(2, 4, 10, true, 0.0, g));
    head_statistics_options o1, o2;
    o1.execution.threads = 1;
    o2.execution.threads = 2;
    const auto s1 = head_statistics(std::span<const tensor4>(inputs), o1);
    const auto s2 = head_statistics(std::span<const tensor4>(inputs), o2);
    CHECK((s1.js_divergence == s2.js_divergence));
    CHECK((s1.cosine_distance == s2.cosine_distance));
    CHECK(s1.cluster_order == s2.cluster_order);
    // Symmetric, zero diagonal, JS within [0, ln 2].
    for (std::size_t x = 0; x < 8; ++x) {
      CHECK(s1.js_divergence(x, x) == 0.0f);
      for (std::size_t y = 0; y < 8; ++y) {
        CHECK(s1.js_divergence(x, y) == s1.js_divergence(y, x));
        CHECK(s1.js_divergence(x, y) >= 0.0f);
        CHECK(static_cast<double>(s1.js_divergence(x, y)) <= std::log(2.0) + 1e-6);
      }
    }
  }
  SECTION("inputs with other layer or head counts are refused") {
    const std::vector<tensor4> inputs{tensor4(xt::ones<float>({1, 1, 1, 1})), tensor4(xt::ones<float>({1, 2, 1, 1}))};
    REQUIRE_THROWS_MATCHES(head_statistics(std::span<const tensor4>(inputs)), shape_error,
                           what_contains("every input must have 1 layers and 1 heads, input 1 has 1 and 2"));
  }
}

TEST_CASE("average-linkage clustering on points of a line", "[attention][heads]") {
  // Points 0, 1, 5, 6: (0,1) and (2,3) merge at 1 (the tie goes to the older pair (0,1) first),
  // then the two clusters at the mean of |0-5|, |0-6|, |1-5|, |1-6| = (5 + 6 + 4 + 5) / 4 = 5.
  const double x[] = {0, 1, 5, 6};
  detail::dmatrix d(4, 4);
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 4; ++j) d(i, j) = std::abs(x[i] - x[j]);
  const auto steps = detail::average_linkage(d);
  REQUIRE(steps.size() == 3);
  CHECK((steps[0].left == 0 && steps[0].right == 1 && steps[0].distance == 1 && steps[0].size == 2));
  CHECK((steps[1].left == 2 && steps[1].right == 3 && steps[1].distance == 1));
  CHECK((steps[2].left == 4 && steps[2].right == 5 && steps[2].distance == 5 && steps[2].size == 4));
  CHECK(detail::leaf_order(steps, 4) == std::vector<std::size_t>{0, 1, 2, 3});
}

// ---------------------------------------------------------------------------------------------
// Gradient-weighted attention on a model with known gradients
// ---------------------------------------------------------------------------------------------

TEST_CASE("AttGrad and Chefer relevance on a model with closed-form gradients", "[attention][gradient]") {
  const toy_attention_model model(2, 3, 6, 11);
  const token_sequence tokens{1, 4, 2, 2, 5};
  const target logit = target::logit(3);  // z[T - 1, 3]
  SECTION("AttGrad: for a logit linear in A, the head maps sum to z - b exactly") {
    // z = b + sum_{l,h,j} A[l,h,4,j] U[l,h][tok_j][3], and A * dz/dA is each term of that sum,
    // so sum over heads of the head-mean scores = (z - b) / H.
    const auto r = attgrad(model, tokens, logit);
    CHECK(r.method == "attgrad");
    CHECK(r.position == 4);
    CHECK(r.target_value == Approx(model.logits(tokens)(4, 3)).epsilon(1e-6));
    double total = 0;
    for (double s : r.scores) total += s;
    // float storage of A and dF (relative 1e-7) over 2 x 3 x 5 terms of size ~1: 1e-5
    CHECK(total * 3 == Approx(r.target_value - model.bias[3]).margin(1e-5));
    // Each score is the closed form sum_{l,h} A[l,h,4,j] U[l,h][tok_j][3] / H.
    const tensor4 a = model.attentions(tokens);
    for (std::size_t j = 0; j < 5; ++j) {
      double expected = 0;
      for (std::size_t l = 0; l < 2; ++l)
        for (std::size_t h = 0; h < 3; ++h) expected += a(l, h, 4, j) * model.u(l, h, tokens[j], 3) / 3.0;
      CHECK(r.scores[j] == Approx(expected).margin(1e-5));
    }
    CHECK(r.head_maps.shape() == a.shape());
  }
  SECTION("AttGrad positive_only averages the positive parts") {
    attgrad_options o;
    o.positive_only = true;
    const auto r = attgrad(model, tokens, logit, o);
    const tensor4 a = model.attentions(tokens);
    double expected = 0;  // layer 1, row 4, key 0
    for (std::size_t h = 0; h < 3; ++h) expected += std::max(0.0, a(1, h, 4, 0) * model.u(1, h, tokens[0], 3)) / 3.0;
    CHECK(r.layer_maps(1, 4, 0) == Approx(expected).margin(1e-6));
  }
  SECTION("Chefer: R = (I + A1)(I + A0) expanded, row of the target position") {
    const auto r = chefer_relevance(model, tokens, logit);
    CHECK(r.method == "chefer_relevance");
    // Independent closed form of the per-layer maps: Ā_l[i, j] = mean_h (A U)^+ on row 4 only
    // (dz is zero on the other rows), so Ā_l has a single non-zero row and
    // row 4 of (I + Ā_1)(I + Ā_0) = e_4 + Ā_1[4, :] + Ā_0[4, :] + Ā_1[4, 4] Ā_0[4, :].
    const tensor4 a = model.attentions(tokens);
    auto abar = [&](std::size_t l, std::size_t j) {
      double v = 0;
      for (std::size_t h = 0; h < 3; ++h) v += std::max(0.0, a(l, h, 4, j) * model.u(l, h, tokens[j], 3));
      return v / 3.0;
    };
    for (std::size_t j = 0; j < 5; ++j) {
      const double expected = (j == 4 ? 1.0 : 0.0) + abar(1, j) + abar(0, j) + abar(1, 4) * abar(0, j);
      CHECK(r.scores[j] == Approx(expected).margin(1e-5));
    }
    // Rows other than the target's are the identity's.
    CHECK(r.matrix(2, 2) == 1.0f);
    CHECK(r.matrix(2, 1) == 0.0f);
  }
  SECTION("gradient-weighted rollout uses per-head gradient norms as weights") {
    const auto r = gradient_weighted_rollout(model, tokens, logit);
    const auto g = model.attention_gradient(tokens, logit);
    rollout_options o;
    o.graph.aggregation = head_aggregation::weighted;
    o.graph.head_weights = gradient_head_weights(g.attentions, g.gradient);
    const auto expected = attention_rollout(g.attentions, o);
    CHECK((r.matrix == expected.matrix));
    CHECK(r.method == "gradient_weighted_rollout");
    // The L1 weight of head (0, 1) is sum_ij |dF| = sum_j |U[0,1][tok_j][3]| (row 4 only).
    double l1 = 0;
    for (std::size_t j = 0; j < 5; ++j) l1 += std::abs(model.u(0, 1, tokens[j], 3));
    CHECK(o.graph.head_weights(0, 1) == Approx(l1).epsilon(1e-6));
  }
  SECTION("a gradient of the wrong shape is refused") {
    const tensor4 a = model.attentions(tokens);
    REQUIRE_THROWS_MATCHES(attgrad(a, tensor4({1, 1, 1, 1})), shape_error,
                           what_contains("glassbox::attgrad: gradient must have the shape of attentions"));
  }
}

TEST_CASE("head importance on the closed-form model equals mean |finite differences|", "[attention][importance]") {
  const toy_attention_model model(2, 2, 6, 5);
  std::vector<labelled_example> data{{{1, 2, 3}, 4}, {{5, 1, 1, 2}, 0}, {{3, 3}, 4}, {{2, 4, 5, 1, 0}, 5}};
  head_importance_options o;
  o.normalize_by_layer = false;
  const auto r = head_importance(model, std::span<const labelled_example>(data), o);
  REQUIRE(r.raw_importance.shape() == std::array<std::size_t, 2>{2, 2});
  for (std::size_t l = 0; l < 2; ++l)
    for (std::size_t h = 0; h < 2; ++h) {
      double mean_abs = 0;
      for (const auto& e : data) {
        // Central difference of log p(label) at the last row in the mask variable; the toy model
        // runs in float, so the step is 1e-2 and the tolerance 1e-3 (rounding / step + O(step^2)).
        auto f = [&](double delta) {
          tensor2 m = model.ones();
          m(l, h) += static_cast<float>(delta);
          return target::log_probability(e.label).value_of(model.logits_with_head_mask(e.tokens, m));
        };
        mean_abs += std::abs((f(1e-2) - f(-1e-2)) / 2e-2);
      }
      mean_abs /= static_cast<double>(data.size());
      CHECK(r.raw_importance(l, h) == Approx(mean_abs).margin(1e-3));
      CHECK(r.importance(l, h) == r.raw_importance(l, h));  // no normalisation asked
    }
  SECTION("per-layer L2 normalisation (the default) and global min-max") {
    const auto n = head_importance(model, std::span<const labelled_example>(data));
    for (std::size_t l = 0; l < 2; ++l) {
      const double norm = std::hypot(r.raw_importance(l, 0), r.raw_importance(l, 1));
      CHECK(n.importance(l, 0) == Approx(r.raw_importance(l, 0) / norm).epsilon(1e-6));
      CHECK(std::hypot(n.importance(l, 0), n.importance(l, 1)) == Approx(1.0).epsilon(1e-6));
    }
    head_importance_options g;
    g.normalize_globally = true;
    const auto m = head_importance(model, std::span<const labelled_example>(data), g);
    CHECK(*std::min_element(m.importance.begin(), m.importance.end()) == 0.0f);
    CHECK(*std::max_element(m.importance.begin(), m.importance.end()) == 1.0f);
  }
}

// ---------------------------------------------------------------------------------------------
// The reference GPT-2
// ---------------------------------------------------------------------------------------------

TEST_CASE("GPT-2: head-mask gradient against finite differences in double", "[attention][importance][gpt2]") {
  const auto model = small_gpt2(17);
  // The same weights in double, for finite differences free of float rounding.
  const std::vector<double> p64(model.parameters().begin(), model.parameters().end());
  const models::basic_gpt2<double> model64(model.config(), p64);
  const std::vector<labelled_example> data{{{3, 7, 1, 9, 12}, 5}, {{4, 4, 20, 2}, 11}};
  head_importance_options o;
  o.normalize_by_layer = false;
  const auto r = head_importance(model, std::span<const labelled_example>(data), o);
  CHECK(r.model_evaluations == 3);  // one probe pass for the shape, then one backward per example
  for (std::size_t l = 0; l < 2; ++l)
    for (std::size_t h = 0; h < 2; ++h) {
      double mean_abs = 0, mean = 0;
      for (const auto& e : data) {
        auto f = [&](double delta) {
          xt::xtensor<double, 2> m = xt::ones<double>({std::size_t{2}, std::size_t{2}});
          m(l, h) += delta;
          const auto z = model64.logits_with_head_mask(e.tokens, m);
          const std::size_t last = z.shape(0) - 1;
          double mx = -1e300, s = 0;
          for (std::size_t c = 0; c < z.shape(1); ++c) mx = std::max(mx, z(last, c));
          for (std::size_t c = 0; c < z.shape(1); ++c) s += std::exp(z(last, c) - mx);
          return z(last, static_cast<std::size_t>(e.label)) - mx - std::log(s);
        };
        const double fd = (f(1e-5) - f(-1e-5)) / 2e-5;  // double: truncation ~1e-10, rounding ~1e-11
        mean_abs += std::abs(fd) / 2;
        mean += fd / 2;
      }
      // The float model's backward against the double difference: float rounding, ~1e-6 relative.
      CHECK(r.raw_importance(l, h) == Approx(mean_abs).epsilon(1e-4).margin(1e-6));
      CHECK(r.mean_gradient(l, h) == Approx(mean).epsilon(1e-4).margin(1e-6));
    }
}

TEST_CASE("GPT-2: ablation changes the loss by the amount measured directly", "[attention][importance][gpt2]") {
  const auto model = small_gpt2(23);
  std::vector<labelled_example> data;
  rng g(9);
  for (int k = 0; k < 6; ++k) {
    labelled_example e;
    for (std::size_t i = 0; i < 3 + g.below(5); ++i) e.tokens.push_back(static_cast<token_id>(g.below(23)));
    e.label = g.bernoulli(0.5) ? 5 : 6;
    data.push_back(e);
  }
  head_ablation_options o;
  o.candidates = {5, 6};
  const auto r = head_ablation(model, std::span<const labelled_example>(data), o);
  auto measure = [&](const tensor2& mask, double& accuracy) {
    double mean = 0;
    accuracy = 0;
    for (const auto& e : data) {
      const tensor2 z = model.logits_with_head_mask(e.tokens, mask);
      mean += target::log_probability(e.label).value_of(z);
      const std::size_t last = z.shape(0) - 1;
      const token_id winner = z(last, 5) >= z(last, 6) ? 5 : 6;
      accuracy += winner == e.label ? 1 : 0;
    }
    accuracy /= static_cast<double>(data.size());
    return mean / static_cast<double>(data.size());
  };
  tensor2 mask = xt::ones<float>({std::size_t{2}, std::size_t{2}});
  double base_accuracy = 0;
  const double base = measure(mask, base_accuracy);
  CHECK(r.base_mean_target == Approx(base).epsilon(1e-12));
  CHECK(r.base_accuracy == base_accuracy);
  for (std::size_t x = 0; x < 4; ++x) {
    mask.data()[x] = 0.0f;
    double accuracy = 0;
    const double masked = measure(mask, accuracy);
    mask.data()[x] = 1.0f;
    // Same float computation, summed in the same order: equal up to the float storage of the change.
    CHECK(r.target_change.data()[x] == Approx(masked - base).margin(1e-6));
    CHECK(r.accuracy_change.data()[x] == Approx(accuracy - base_accuracy).margin(1e-7));
  }
  // Importance is the first-order estimate of these changes: |d f / d m| ranks like |change|
  // only approximately, so this test asserts only that masking a head does change f.
  CHECK(std::any_of(r.target_change.begin(), r.target_change.end(), [](float v) { return std::abs(v) > 1e-4; }));
}

TEST_CASE("GPT-2: pruning curve, rollout/flow through the model, AttGrad consistency", "[attention][gpt2]") {
  const auto model = small_gpt2(31);
  std::vector<labelled_example> data{{{1, 2, 3, 4}, 5}, {{9, 8, 7}, 6}, {{10, 3, 3, 1, 2}, 5}, {{2, 2}, 6}};
  SECTION("pruning: step 0 is the full model, every head masked once, in importance order") {
    pruning_options o;
    o.candidates = {5, 6};
    const auto curve = head_pruning_curve(model, std::span<const labelled_example>(data), o);
    REQUIRE(curve.heads_masked == std::vector<std::size_t>{0, 1, 2, 3, 4});
    REQUIRE(curve.pruning_order.size() == 4);
    head_ablation_options a;
    a.candidates = {5, 6};
    const auto ablation = head_ablation(model, std::span<const labelled_example>(data), a);
    CHECK(curve.accuracy[0] == ablation.base_accuracy);
    CHECK(curve.mean_target[0] == Approx(ablation.base_mean_target).epsilon(1e-12));
    // The first head pruned is the least important (per-layer normalised) one.
    const auto imp = head_importance(model, std::span<const labelled_example>(data));
    const auto first = curve.pruning_order[0];
    CHECK(imp.importance(first.layer, first.head) == *std::min_element(imp.importance.begin(), imp.importance.end()));
    // One step later the change equals the ablation of that head alone.
    CHECK(curve.mean_target[1] - curve.mean_target[0] ==
          Approx(ablation.target_change(first.layer, first.head)).margin(1e-6));
    std::vector<std::size_t> seen;
    for (const auto& h : curve.pruning_order) seen.push_back(h.layer * 2 + h.head);
    std::sort(seen.begin(), seen.end());
    CHECK(seen == std::vector<std::size_t>{0, 1, 2, 3});
    CHECK(curve.heads_needed(0.0) == 0);
    CHECK(curve.model_evaluations == 1 + 5 * 4 + 4);
    o.recompute_importance = true;
    o.heads_per_step = 3;
    const auto again = head_pruning_curve(model, std::span<const labelled_example>(data), o);
    CHECK(again.heads_masked == std::vector<std::size_t>{0, 3, 4});
    CHECK(again.model_evaluations == 1 + 3 * 4 + 2 * 4);
  }
  SECTION("head statistics of a model equal those of its attention tensors, any batch size") {
    const std::vector<token_sequence> inputs{{1, 2, 3}, {4, 5, 6, 7, 8}, {9}, {10, 11, 12, 13}};
    std::vector<tensor4> maps;
    for (const auto& x : inputs) maps.push_back(model.attentions(x));
    const auto expected = head_statistics(std::span<const tensor4>(maps));
    head_statistics_options o;
    o.execution.batch_size = 3;  // two chunks of model calls
    std::size_t last = 0;
    o.execution.on_progress = [&](const progress& p) {
      last = p.done;
      return true;
    };
    const auto s = head_statistics(model, std::span<const token_sequence>(inputs), o);
    CHECK(last == 4);
    CHECK(s.model_evaluations == 4);
    CHECK(s.causal);
    CHECK((s.entropy == expected.entropy));
    CHECK((s.js_divergence == expected.js_divergence));
    CHECK(s.cluster_order == expected.cluster_order);
  }
  SECTION("importance reports progress in examples and can be cancelled") {
    head_importance_options o;
    o.execution.on_progress = [](const progress& p) { return p.done < 2; };
    o.execution.batch_size = 1;
    o.execution.threads = 1;
    REQUIRE_THROWS_AS(head_importance(model, std::span<const labelled_example>(data), o), cancelled);
    head_ablation_options a;
    a.candidates = {5, 7};
    REQUIRE_THROWS_MATCHES(head_ablation(model, std::span<const labelled_example>(data), a), shape_error,
                           what_contains("example 1 has label 6, which is not among the candidates"));
  }
  SECTION("rollout and flow of a model equal those of its attention tensor") {
    const token_sequence tokens{4, 8, 15, 16, 2, 3};
    const tensor4 a = model.attentions(tokens);
    const auto r = attention_rollout(model, tokens);
    CHECK((r.matrix == attention_rollout(a).matrix));
    CHECK(r.token_ids == tokens);
    CHECK(r.model_evaluations == 1);
    const auto f = attention_flow(model, tokens);
    CHECK((f.matrix == attention_flow(a).matrix));
    const auto ref = reference_flows(f.layer_maps);
    for (std::size_t j = 0; j < tokens.size(); ++j) CHECK(f.unnormalized(5, j) == Approx(ref[5][j]).margin(1e-6));
  }
  SECTION(
      "AttGrad through GPT-2: the model's attention gradient against finite differences of logits_with_attentions") {
    const token_sequence tokens{4, 8, 15, 16};
    const target t = target::log_probability(5);
    const auto r = attgrad(model, tokens, t);
    const auto g = model.attention_gradient(tokens, t);
    const std::vector<double> p64(model.parameters().begin(), model.parameters().end());
    const models::basic_gpt2<double> model64(model.config(), p64);
    const auto a64 = model64.attentions(tokens);
    // d f / d A[l, h, i, j] by a central difference of the double model with block l's
    // attention patched (later blocks recompute theirs, as attention_gradient differentiates).
    auto fd = [&](std::size_t l, std::size_t h, std::size_t i, std::size_t j) {
      auto f = [&](double delta) {
        xt::xtensor<double, 3> a = xt::view(a64, l, xt::all(), xt::all(), xt::all());
        a(h, i, j) += delta;
        const auto z = model64.logits_with_attentions(tokens, l, a);
        double mx = -1e300, s = 0;
        for (std::size_t c = 0; c < z.shape(1); ++c) mx = std::max(mx, z(3, c));
        for (std::size_t c = 0; c < z.shape(1); ++c) s += std::exp(z(3, c) - mx);
        return z(3, 5) - mx - std::log(s);
      };
      return (f(1e-5) - f(-1e-5)) / 2e-5;  // double: truncation ~1e-10, rounding ~1e-11
    };
    for (const auto& [l, h, i, j] : {std::array<std::size_t, 4>{1, 0, 3, 1}, std::array<std::size_t, 4>{0, 1, 2, 0}}) {
      const double d = fd(l, h, i, j);
      // float backward against the double difference: ~1e-6 relative, 1e-4 leaves room.
      CHECK(g.gradient(l, h, i, j) == Approx(d).epsilon(1e-4).margin(1e-6));
      CHECK(r.head_maps(l, h, i, j) == Approx(a64(l, h, i, j) * d).epsilon(1e-4).margin(1e-6));
    }
    CHECK(r.target_value == Approx(g.value));
  }
}

// ---------------------------------------------------------------------------------------------
// Review fixes (issue 10): gradient head weights on attendable entries, AttGrad's explained row
// ---------------------------------------------------------------------------------------------

TEST_CASE("GPT-2: gradient head weights count only the entries a causal model can attend to",
          "[attention][gradient][gpt2]") {
  const auto model = small_gpt2(31);
  const token_sequence tokens{4, 8, 15, 16, 2, 3, 11};
  const target t = target::log_probability(5);
  const auto g = model.attention_gradient(tokens, t);
  const std::size_t n = tokens.size();
  // Independent weights: the L1 and L2 norms of each head's gradient over the entries at or below
  // the diagonal (the keys a causal query can attend to), and the L1 norm over every entry.
  tensor2 causal_l1({2, 2}), causal_l2({2, 2}), every_l1({2, 2});
  double above = 0;  // the largest |dF| above the diagonal: dO_i . v_j, not zero
  for (std::size_t l = 0; l < 2; ++l)
    for (std::size_t h = 0; h < 2; ++h) {
      double s1 = 0, s2 = 0, all = 0;
      for (std::size_t i = 0; i < n; ++i)
        for (std::size_t j = 0; j < n; ++j) {
          const double v = g.gradient(l, h, i, j);
          all += std::abs(v);
          if (j <= i) {
            s1 += std::abs(v);
            s2 += v * v;
          } else {
            CHECK(g.attentions(l, h, i, j) == 0.0f);  // the causal mask: exactly zero probability
            above = std::max(above, std::abs(v));
          }
        }
      causal_l1(l, h) = static_cast<float>(s1);
      causal_l2(l, h) = static_cast<float>(std::sqrt(s2));
      every_l1(l, h) = static_cast<float>(all);
    }
  REQUIRE(above > 1e-3);
  rollout_options o;
  o.graph.aggregation = head_aggregation::weighted;
  o.graph.head_weights = causal_l1;
  const auto expected = attention_rollout(g.attentions, o);
  o.graph.head_weights = every_l1;
  const auto unrestricted = attention_rollout(g.attentions, o);
  // On this input the restriction changes the rollout (the weights' ratios within a layer move).
  double change = 0;
  for (std::size_t k = 0; k < expected.matrix.size(); ++k)
    change = std::max(change, static_cast<double>(std::abs(expected.matrix.data()[k] - unrestricted.matrix.data()[k])));
  REQUIRE(change > 1e-3);
  // Same weights in double and the same rollout code: agreement to float rounding.
  const auto r = gradient_weighted_rollout(model, tokens, t);
  for (std::size_t k = 0; k < expected.matrix.size(); ++k)
    CHECK(r.matrix.data()[k] == Approx(expected.matrix.data()[k]).margin(1e-6));
  o.graph.head_weights = causal_l2;
  const auto expected_l2 = attention_rollout(g.attentions, o);
  const auto r2 = gradient_weighted_rollout(model, tokens, t, {}, gradient_head_norm::l2);
  for (std::size_t k = 0; k < expected_l2.matrix.size(); ++k)
    CHECK(r2.matrix.data()[k] == Approx(expected_l2.matrix.data()[k]).margin(1e-6));
}

TEST_CASE("gradient head weights: an entry counts when some head of some layer attends to it", "[attention][gradient]") {
  // One layer, two heads, T = 2. Entry (0, 1) is 0 in both heads (a causal mask): left out.
  // Entry (1, 1) is 0 in head 0 but 0.8 in head 1: the model can attend to it, so it counts for both.
  const tensor4 a = make_attentions({{{{1, 0}, {1, 0}}, {{1, 0}, {0.2, 0.8}}}});
  const tensor4 d = make_attentions({{{{1, 5}, {2, -3}}, {{-1, 7}, {4, 1}}}});
  const tensor2 l1 = gradient_head_weights(a, d);
  CHECK(l1(0, 0) == 6.0f);  // |1| + |2| + |-3|, not the 11 that includes the 5 above the diagonal
  CHECK(l1(0, 1) == 6.0f);  // |-1| + |4| + |1|
  const tensor2 l2 = gradient_head_weights(a, d, gradient_head_norm::l2);
  CHECK(l2(0, 0) == Approx(std::sqrt(14.0)).epsilon(1e-7));
  CHECK(l2(0, 1) == Approx(std::sqrt(18.0)).epsilon(1e-7));
  REQUIRE_THROWS_MATCHES(gradient_head_weights(a, tensor4({1, 2, 3, 3})), shape_error,
                         what_contains("glassbox::gradient_head_weights: gradient must have the shape of attentions"));
}

TEST_CASE("AttGrad scores are the row of the explained position", "[attention][gradient]") {
  rng g(7);
  const tensor4 a = random_attentions(2, 3, 5, true, 0.0, g);
  tensor4 d({2, 3, 5, 5});
  for (auto& x : d) x = static_cast<float>(g.normal());
  // Independent reference: sum over layers of the head mean of A * dF, row p.
  auto row = [&](std::size_t p, std::size_t j) {
    double s = 0;
    for (std::size_t l = 0; l < 2; ++l)
      for (std::size_t h = 0; h < 3; ++h) s += static_cast<double>(a(l, h, p, j)) * d(l, h, p, j) / 3.0;
    return s;
  };
  const auto last = attgrad(a, d);
  CHECK(last.position == 4);
  for (std::size_t j = 0; j < 5; ++j) CHECK(last.scores[j] == Approx(row(4, j)).margin(1e-6));
  for (std::size_t p : {std::size_t{1}, std::size_t{3}}) {
    const auto r = attgrad(a, d, {.position = p});
    CHECK(r.position == p);
    for (std::size_t j = 0; j < 5; ++j) CHECK(r.scores[j] == Approx(row(p, j)).margin(1e-6));
    for (std::size_t j = p + 1; j < 5; ++j) CHECK(r.scores[j] == 0.0);  // causal: no key after the query
  }
  SECTION("through a causal GPT-2, whose gradient reaches every query row") {
    const auto model = small_gpt2(31);
    const token_sequence tokens{4, 8, 15, 16, 2};
    const auto r = attgrad(model, tokens, target::log_probability(5));
    REQUIRE(r.position == 4);
    double apart = 0;  // the column sums over all queries differ from the last row: earlier rows count
    for (std::size_t j = 0; j < 5; ++j) {
      double column = 0;
      for (std::size_t i = 0; i < 5; ++i) column += r.matrix(i, j);
      apart = std::max(apart, std::abs(column - r.matrix(4, j)));
    }
    REQUIRE(apart > 1e-2);
    for (std::size_t j = 0; j < 5; ++j) CHECK(r.scores[j] == Approx(r.matrix(4, j)).margin(1e-6));
    const auto at2 = attgrad(model, tokens, target::log_probability(5, 2), {.position = 2});
    for (std::size_t j = 0; j < 5; ++j) CHECK(at2.scores[j] == Approx(at2.matrix(2, j)).margin(1e-6));
  }
}

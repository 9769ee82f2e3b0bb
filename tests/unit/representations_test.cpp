// Tests of the representations module (lenses, reading and steering vectors, INLP): closed forms
// (the lens at the last layer is the model; a lens decodes by hand), finite differences of the
// tuned lens' gradient, planted directions, and determinism.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <glassbox/core/random.hpp>
#include <glassbox/representations/lens.hpp>
#include <glassbox/representations/steering.hpp>
#include <numeric>
#include <vector>

#include "glassbox/models/gpt2.hpp"
#include "test_support.hpp"

using namespace glassbox;
using glassbox::test::what_contains;

namespace {

models::gpt2_config tiny_config() {
  models::gpt2_config c;
  c.n_layer = 3;
  c.n_head = 2;
  c.n_embd = 16;
  c.n_positions = 32;
  c.vocab_size = 29;
  return c;
}

token_sequence random_tokens(std::size_t n, std::size_t vocab, std::uint64_t seed) {
  rng g(seed);
  token_sequence t(n);
  for (auto& x : t) x = static_cast<token_id>(g.below(vocab));
  return t;
}

/// The reference GPT-2 without its decode_hidden member: the lens must decode through logits_from_hidden.
struct no_decode_model {
  const models::gpt2* m;
  tensor2 logits(token_span t) const { return m->logits(t); }
  std::size_t vocab_size() const { return m->vocab_size(); }
  tensor3 hidden_states(token_span t) const { return m->hidden_states(t); }
  tensor2 logits_from_hidden(token_span t, std::size_t layer, const tensor2& h) const {
    return m->logits_from_hidden(t, layer, h);
  }
  value_and_gradient<tensor2> hidden_gradient(token_span t, std::size_t layer, const tensor2& h,
                                              const output_seed& s) const {
    return m->hidden_gradient(t, layer, h, s);
  }
};
static_assert(InterventionModel<no_decode_model> && !concepts::has_decode_hidden<no_decode_model>);
static_assert(LensModel<models::gpt2> && concepts::has_decode_hidden<models::gpt2>);

double max_abs_diff(const tensor2& a, const tensor2& b) {
  REQUIRE(a.shape() == b.shape());
  double m = 0;
  for (std::size_t i = 0; i < a.size(); ++i) m = std::max(m, std::abs(double(a.data()[i]) - b.data()[i]));
  return m;
}

}  // namespace

TEST_CASE("logit lens: the last layer is the model's own output, bit for bit", "[representations][lens]") {
  const auto model = models::gpt2::random(tiny_config(), 3);
  const auto tokens = random_tokens(9, 29, 1);
  const tensor2 lens_last = logit_lens_logits(model, tokens, 3);
  const tensor2 logits = model.logits(tokens);
  CHECK(max_abs_diff(lens_last, logits) == 0.0);
  const auto r = logit_lens(model, tokens);
  REQUIRE(r.layers.size() == 4);
  for (const auto& cell : r.layers.back().positions) CHECK(cell.kl_to_final == Approx(0.0).margin(1e-12));
  // Without decode_hidden the lens decodes through logits_from_hidden, with the same numbers.
  const no_decode_model wrapped{&model};
  const auto w = logit_lens(wrapped, tokens, {.top_k = 4, .target = 5});
  const auto r2 = logit_lens(model, tokens, {.top_k = 4, .target = 5});
  for (std::size_t k = 0; k < 4; ++k)
    for (std::size_t t = 0; t < tokens.size(); ++t) {
      CHECK(w.layers[k].positions[t].top_ids == r2.layers[k].positions[t].top_ids);
      CHECK(w.layers[k].positions[t].target_p == Approx(r2.layers[k].positions[t].target_p).margin(1e-6));
    }
}

TEST_CASE("logit lens: every layer equals decoding its hidden state by hand, in double", "[representations][lens]") {
  using dmodel = models::basic_gpt2<double>;
  const auto model = dmodel::random(tiny_config(), 5);
  const auto tokens = random_tokens(7, 29, 2);
  const auto hs = model.hidden_states(tokens);
  const auto g = model.parameter("ln_f.weight"), b = model.parameter("ln_f.bias"), wte = model.parameter("wte.weight");
  const std::size_t d = 16, V = 29, T = tokens.size();
  for (std::size_t k = 0; k <= 3; ++k) {
    const auto z = logit_lens_logits(model, tokens, k);
    REQUIRE(z.shape(0) == T);
    REQUIRE(z.shape(1) == V);
    double worst = 0;
    for (std::size_t t = 0; t < T; ++t) {
      double mean = 0, var = 0;
      for (std::size_t j = 0; j < d; ++j) mean += hs(k, t, j) / double(d);
      for (std::size_t j = 0; j < d; ++j) var += (hs(k, t, j) - mean) * (hs(k, t, j) - mean) / double(d);
      std::vector<double> n(d);
      for (std::size_t j = 0; j < d; ++j) n[j] = (hs(k, t, j) - mean) / std::sqrt(var + 1e-5) * g[j] + b[j];
      for (std::size_t v = 0; v < V; ++v) {
        double s = 0;
        for (std::size_t j = 0; j < d; ++j) s += n[j] * wte[v * d + j];
        worst = std::max(worst, std::abs(s - z(t, v)) / (1.0 + std::abs(s)));
      }
    }
    CHECK(worst < 1e-12);
  }
}

TEST_CASE("logit lens readout: top tokens, target probability and rank, KL and entropy agree with the logits",
          "[representations][lens]") {
  const auto model = models::gpt2::random(tiny_config(), 7);
  const auto tokens = random_tokens(6, 29, 3);
  const auto r = logit_lens(model, tokens, {.layers = {1, 0}, .top_k = 3, .target = 11});
  REQUIRE(r.layers.size() == 2);
  CHECK(r.layers[0].layer == 0);
  CHECK(r.method == "logit_lens");
  const tensor2 zl = logit_lens_logits(model, tokens, 3);
  for (std::size_t i = 0; i < 2; ++i) {
    const tensor2 z = logit_lens_logits(model, tokens, r.layers[i].layer);
    for (std::size_t t = 0; t < tokens.size(); ++t) {
      std::vector<double> p(29), q(29);
      double s = 0, sl = 0;
      for (std::size_t v = 0; v < 29; ++v) s += std::exp(double(z(t, v)));
      for (std::size_t v = 0; v < 29; ++v) sl += std::exp(double(zl(t, v)));
      for (std::size_t v = 0; v < 29; ++v) p[v] = std::exp(double(z(t, v))) / s;
      for (std::size_t v = 0; v < 29; ++v) q[v] = std::exp(double(zl(t, v))) / sl;
      const auto& c = r.layers[i].positions[t];
      std::vector<std::size_t> order(29);
      std::iota(order.begin(), order.end(), 0);
      std::stable_sort(order.begin(), order.end(), [&](auto a, auto b) { return p[a] > p[b]; });
      REQUIRE(c.top_ids.size() == 3);
      for (std::size_t j = 0; j < 3; ++j) {
        CHECK(c.top_ids[j] == static_cast<token_id>(order[j]));
        CHECK(c.top_p[j] == Approx(p[order[j]]).epsilon(1e-6));
      }
      CHECK(c.target_p == Approx(p[11]).epsilon(1e-6));
      const auto rank = 1 + std::count_if(p.begin(), p.end(), [&](double x) { return x > p[11]; });
      CHECK(c.target_rank == static_cast<std::size_t>(rank));
      double kl = 0, h = 0;
      for (std::size_t v = 0; v < 29; ++v) kl += q[v] * std::log(q[v] / p[v]);
      for (std::size_t v = 0; v < 29; ++v) h -= p[v] * std::log(p[v]);
      CHECK(c.kl_to_final == Approx(kl).epsilon(1e-5).margin(1e-9));
      CHECK(c.entropy == Approx(h).epsilon(1e-6));
    }
  }
  REQUIRE_THROWS_MATCHES(logit_lens(model, tokens, {.layers = {4}}), shape_error,
                         what_contains("layers must be hidden-state indices 0..3, got 4"));
  REQUIRE_THROWS_MATCHES(logit_lens(model, tokens, {.target = 29}), error,
                         what_contains("options.target must be a token id in [0, 29), got 29"));
}

TEST_CASE("tuned lens: identity translators are the logit lens; training lowers the KL, deterministically",
          "[representations][lens]") {
  const auto model = models::gpt2::random(tiny_config(), 11);
  std::vector<token_sequence> data;
  for (std::uint64_t s = 0; s < 12; ++s) data.push_back(random_tokens(5 + s % 4, 29, 100 + s));
  const auto id = tuned_lens::identity(3, 16);
  const auto a = logit_lens(model, data[0], {.target = 2});
  const auto b = logit_lens(model, data[0], id, {.target = 2});
  CHECK(b.method == "tuned_lens");
  for (std::size_t k = 0; k < 4; ++k)
    for (std::size_t t = 0; t < data[0].size(); ++t)
      CHECK(a.layers[k].positions[t].target_p == b.layers[k].positions[t].target_p);

  const tuned_lens_options o{.steps = 40, .learning_rate = 1.0, .batch_sequences = 6, .seed = 9};
  const auto trained = train_tuned_lens(model, data, o);
  REQUIRE(trained.final_kl.size() == 3);
  for (std::size_t k = 0; k < 3; ++k) CHECK(trained.final_kl[k] < 0.8 * trained.initial_kl[k]);
  const auto again = train_tuned_lens(model, data, o);
  for (std::size_t k = 0; k < 3; ++k)
    CHECK(std::equal(trained.lens.weights[k].begin(), trained.lens.weights[k].end(), again.lens.weights[k].begin()));
  // evaluate_lens agrees with the training curve's KL on the training data.
  std::vector<training_example> examples;
  for (const auto& s : data) examples.push_back(training_example::next_token(s));
  const auto logit = evaluate_lens(model, examples);
  const auto tuned = evaluate_lens(model, examples, trained.lens);
  for (std::size_t k = 0; k < 3; ++k) {
    CHECK(logit.layers[k].kl == Approx(trained.initial_kl[k]).epsilon(1e-5));
    CHECK(tuned.layers[k].kl == Approx(trained.final_kl[k]).epsilon(1e-5));
  }
  CHECK(tuned.layers[3].kl == Approx(0.0).margin(1e-9));
  CHECK(logit.layers[3].perplexity == Approx(tuned.layers[3].perplexity).epsilon(1e-12));
}

TEST_CASE("tuned lens: one plain SGD step is minus the learning rate times the KL gradient (finite differences)",
          "[representations][lens]") {
  const auto model = models::gpt2::random(tiny_config(), 13);
  std::vector<token_sequence> data;
  for (std::uint64_t s = 0; s < 4; ++s) data.push_back(random_tokens(6, 29, 200 + s));
  std::vector<training_example> examples;
  for (const auto& s : data) examples.push_back(training_example::next_token(s));
  const double lr = 0.5;
  const auto step = train_tuned_lens(model, data, {.steps = 1, .learning_rate = lr, .momentum = 0, .weight_decay = 0});
  // From zero translators one step gives theta_1 = -lr * grad: the gradient is -theta_1 / lr.
  rng g(3);
  const double eps = 1e-3;
  for (std::size_t k = 0; k < 3; ++k) {
    auto plus = tuned_lens::identity(3, 16), minus = plus;
    double analytic = 0;
    for (std::size_t i = 0; i < 16 * 16; ++i) {
      const double u = g.normal();
      plus.weights[k].data()[i] = float(eps * u);
      minus.weights[k].data()[i] = float(-eps * u);
      analytic += u * (-step.lens.weights[k].data()[i] / lr);
    }
    for (std::size_t j = 0; j < 16; ++j) {
      const double u = g.normal();
      plus.biases[k][j] = float(eps * u);
      minus.biases[k][j] = float(-eps * u);
      analytic += u * (-step.lens.biases[k][j] / lr);
    }
    const double numeric =
        (evaluate_lens(model, examples, plus).layers[k].kl - evaluate_lens(model, examples, minus).layers[k].kl) /
        (2 * eps);
    CHECK(numeric == Approx(analytic).epsilon(2e-2).margin(1e-4));
  }
}

TEST_CASE("steering: alpha 0 changes nothing bit for bit; an edit at position t changes rows t.. only",
          "[representations][steering]") {
  const auto model = models::gpt2::random(tiny_config(), 17);
  const auto tokens = random_tokens(8, 29, 4);
  tensor1 v = tensor1::from_shape({16});
  rng g(1);
  for (auto& x : v) x = float(g.normal());
  const tensor2 plain = model.logits(tokens);
  for (std::size_t layer = 0; layer <= 3; ++layer)
    CHECK(max_abs_diff(steered_logits(model, tokens, layer, v, {.alpha = 0.0}), plain) == 0.0);
  const tensor2 edited = steered_logits(model, tokens, 1, v, {.alpha = 3.0, .positions = {4}});
  for (std::size_t t = 0; t < 8; ++t) {
    double m = 0;
    for (std::size_t j = 0; j < 29; ++j) m = std::max(m, std::abs(double(edited(t, j)) - plain(t, j)));
    if (t < 4)
      CHECK(m == 0.0);
    else
      CHECK(m > 1e-4);
  }
  // Projecting out a direction equals steering by minus its component, position by position.
  tensor2 basis = tensor2::from_shape({1, 16});
  double n = 0;
  for (std::size_t j = 0; j < 16; ++j) n += double(v[j]) * v[j];
  for (std::size_t j = 0; j < 16; ++j) basis(0, j) = float(v[j] / std::sqrt(n));
  const tensor2 a = steered_logits(model, tokens, 2, v, {.project_out = true});
  const tensor2 b = projected_logits(model, tokens, 2, basis);
  CHECK(max_abs_diff(a, b) < 1e-4);
}

TEST_CASE("steering curve: the target moves along the hidden gradient's direction", "[representations][steering]") {
  const auto model = models::gpt2::random(tiny_config(), 19);
  std::vector<token_sequence> data;
  for (std::uint64_t s = 0; s < 10; ++s) data.push_back(random_tokens(6, 29, 300 + s));
  const auto t = target::contrast(3, 4);
  // The direction: the target's gradient w.r.t. the last position's residual at layer 2, summed over inputs.
  tensor1 v = tensor1::from_shape({16});
  v.fill(0.0F);
  for (const auto& s : data) {
    const tensor3 hs = model.hidden_states(s);
    tensor2 h = tensor2::from_shape({6, 16});
    std::copy_n(hs.data() + 2 * 6 * 16, 6 * 16, h.data());
    const auto gr = model.hidden_gradient(s, 2, h, t);
    for (std::size_t j = 0; j < 16; ++j) v[j] += gr.gradient(5, j);
  }
  const std::vector<double> alphas = {-0.05, 0.0, 0.05};
  const auto curve = steering_curve(model, data, t, 2, v, alphas, {.positions = {5}});
  REQUIRE(curve.size() == 3);
  CHECK(curve[0].mean_target < curve[1].mean_target);
  CHECK(curve[1].mean_target < curve[2].mean_target);
  CHECK(curve[1].flip_rate == 0.0);
}

namespace {

/// A toy ActivationModel: hidden state k at position t is a fixed embedding of the token, scaled
/// by k + 1, plus the concept direction u when the token is the concept token 1.
struct planted_model {
  std::vector<std::vector<float>> table;
  std::vector<float> u;
  std::size_t L = 2;
  tensor2 logits(token_span t) const {
    tensor2 z = tensor2::from_shape({t.size(), 2});
    z.fill(0.0F);
    return z;
  }
  std::size_t vocab_size() const { return 2; }
  tensor3 hidden_states(token_span t) const {
    const std::size_t d = u.size();
    tensor3 h = tensor3::from_shape({L + 1, t.size(), d});
    for (std::size_t k = 0; k <= L; ++k)
      for (std::size_t p = 0; p < t.size(); ++p)
        for (std::size_t j = 0; j < d; ++j)
          h(k, p, j) = float((k + 1) * table[std::size_t(t[p])][j] + (t[p] == 1 ? u[j] : 0.0F));
    return h;
  }
};

}  // namespace

TEST_CASE("reading vectors recover a planted concept direction with a deterministic sign",
          "[representations][steering]") {
  const std::size_t d = 12, V = 40;
  rng g(5);
  planted_model m;
  m.table.assign(V, std::vector<float>(d));
  for (auto& row : m.table)
    for (auto& x : row) x = float(0.05 * g.normal());
  std::fill(m.table[1].begin(), m.table[1].end(), 0.0F);  // the concept token is the concept direction alone
  m.u.resize(d);
  double n = 0;
  for (auto& x : m.u) {
    x = float(g.normal());
    n += double(x) * x;
  }
  for (auto& x : m.u) x = float(x / std::sqrt(n));
  std::vector<contrast_pair> pairs;
  for (int i = 0; i < 30; ++i) {
    token_sequence a = {token_id(2 + g.below(V - 2)), 1}, b = a;
    b[1] = token_id(2 + g.below(V - 2));  // the same context, another last token instead of the concept
    pairs.push_back({a, b});
  }
  const auto vectors = reading_vectors(m, pairs, {.layers = {0, 2}});
  REQUIRE(vectors.size() == 2);
  for (const auto& r : vectors) {
    double cos = 0;
    for (std::size_t j = 0; j < d; ++j) cos += double(r.direction[j]) * m.u[j];
    CHECK(cos > 0.95);  // sign: the concept member projects higher
    CHECK(r.pair_accuracy == 1.0);
  }
  CHECK(vectors[0].explained > vectors[1].explained);  // layer 2 scales the token noise by 3
  const auto reading = read_vector(m, pairs[0].positive, vectors[0]);
  const auto other = read_vector(m, pairs[0].negative, vectors[0]);
  CHECK(reading[1] > other[1] + 0.5);
  CHECK(reading[0] == Approx(other[0]));
}

TEST_CASE("INLP removes a linearly encoded property down to chance with an orthonormal basis",
          "[representations][steering]") {
  const std::size_t d = 10, N = 600;
  rng g(8);
  auto make = [&](std::size_t n, tensor2& x, std::vector<std::int32_t>& y) {
    x = tensor2::from_shape({n, d});
    y.resize(n);
    for (std::size_t i = 0; i < n; ++i) {
      y[i] = std::int32_t(g.below(2));
      for (std::size_t j = 0; j < d; ++j) x(i, j) = float(g.normal());
      // The label lives in two directions: e0 strongly, e0 + e1 weakly.
      x(i, 0) += float(y[i] ? 2.0 : -2.0);
      x(i, 1) += float(y[i] ? 0.7 : -0.7);
    }
  };
  tensor2 xt, xd;
  std::vector<std::int32_t> yt, yd;
  make(N, xt, yt);
  make(N / 2, xd, yd);
  const auto r = inlp(xt, yt, xd, yd, 2, {.iterations = 10});
  REQUIRE(r.dev_accuracy.size() >= 2);
  CHECK(r.dev_accuracy.front() > 0.9);
  CHECK(r.dev_accuracy.back() <= r.majority + 0.01 + 1e-12);
  const std::size_t rank = r.basis.shape(0);
  CHECK(rank >= 1);
  CHECK(rank < d);
  for (std::size_t a = 0; a < rank; ++a)
    for (std::size_t b = 0; b < rank; ++b) {
      double dot = 0;
      for (std::size_t j = 0; j < d; ++j) dot += double(r.basis(a, j)) * r.basis(b, j);
      CHECK(dot == Approx(a == b ? 1.0 : 0.0).margin(1e-5));
    }
}

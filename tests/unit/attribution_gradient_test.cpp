// Tests of the gradient attribution methods: closed forms on the linear bag-of-embeddings model,
// completeness on the reference GPT-2 and on a nonlinear model written here, quadrature exactness,
// seeded determinism, generation, progress, and option validation.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <glassbox/attribution.hpp>
#include <glassbox/glassbox.hpp>
#include <glassbox/models/linear_bag.hpp>
#include <numeric>
#include <vector>

#include "glassbox/models/gpt2.hpp"
#include "test_support.hpp"

using namespace glassbox;
using glassbox::test::what_contains;

namespace {

using dmat = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// A small nonlinear causal model with exact gradients, written for these tests:
//   h_0 = E[tokens]
//   h_{l+1}[t] = h_l[t] + tanh(m_l[t] A_l) B_l,   m_l[t] = mean_{i <= t} h_l[i]   (causal mixing)
//   logits[t] = h_L[t] U + c
// It computes in double and exchanges float, has every member integrated gradients, the noise
// tunnel and layer attribution need (hidden_states[0] = embed(tokens), so layer 0 is the input
// embeddings), a batched gradient member that loops (so batching cannot change a result), and is
// thread-safe.
class tiny_mixer {
 public:
  static constexpr bool thread_safe = true;

  static tiny_mixer random(std::size_t vocab, std::size_t width, std::size_t inner, std::size_t layers,
                           std::uint64_t seed, double gain = 1.5) {
    glassbox::rng g(seed);
    tiny_mixer m;
    auto fill = [&](dmat& x, std::size_t r, std::size_t c, double sd) {
      x.resize(static_cast<Eigen::Index>(r), static_cast<Eigen::Index>(c));
      for (Eigen::Index i = 0; i < x.size(); ++i) x.data()[i] = g.normal(0.0, sd);
    };
    fill(m.e_, vocab, width, 1.0);
    for (std::size_t l = 0; l < layers; ++l) {
      dmat a, b;
      fill(a, width, inner, gain / std::sqrt(double(width)));
      fill(b, inner, width, gain / std::sqrt(double(inner)));
      m.a_.push_back(a);
      m.b_.push_back(b);
    }
    fill(m.u_, width, vocab, 2.0 / std::sqrt(double(width)));
    fill(m.c_, 1, vocab, 0.5);
    return m;
  }

  std::size_t vocab_size() const { return static_cast<std::size_t>(e_.rows()); }
  std::size_t width() const { return static_cast<std::size_t>(e_.cols()); }
  std::size_t layers() const { return a_.size(); }
  std::size_t output_rows(std::size_t t) const { return t; }
  std::optional<token_id> pad_token() const { return 0; }

  tensor2 embed(token_span tokens) const {
    tensor2 out({tokens.size(), width()});
    for (std::size_t i = 0; i < tokens.size(); ++i)
      for (std::size_t k = 0; k < width(); ++k) out(i, k) = static_cast<float>(e_(tokens[i], Eigen::Index(k)));
    return out;
  }
  tensor2 logits_from_embeddings(const tensor2& e) const { return run_logits(0, e); }
  tensor2 logits(token_span tokens) const { return logits_from_embeddings(embed(tokens)); }
  value_and_gradient<tensor2> embedding_gradient(const tensor2& e, const output_seed& seed) const {
    return gradient_from(0, e, seed);
  }
  batch_gradient_result embedding_gradient_batch(const tensor3& e, const output_seed& seed) const {
    batch_gradient_result r;
    r.gradients = tensor3(e.shape());
    const std::size_t n = e.shape(1) * e.shape(2);
    for (std::size_t b = 0; b < e.shape(0); ++b) {
      tensor2 one({e.shape(1), e.shape(2)});
      std::copy_n(e.data() + b * n, n, one.data());
      const auto g = embedding_gradient(one, seed);
      r.values.push_back(g.value);
      std::copy_n(g.gradient.data(), n, r.gradients.data() + b * n);
    }
    return r;
  }
  tensor3 hidden_states(token_span tokens) const {
    const tensor2 e = embed(tokens);
    tape tp;
    forward(0, to_d(e), &tp);
    tensor3 out({layers() + 1, tokens.size(), width()});
    for (std::size_t l = 0; l <= layers(); ++l)
      for (Eigen::Index i = 0; i < tp.h[l].size(); ++i)
        out.data()[l * tokens.size() * width() + std::size_t(i)] = static_cast<float>(tp.h[l].data()[i]);
    return out;
  }
  tensor2 logits_from_hidden(token_span, std::size_t layer, const tensor2& h) const { return run_logits(layer, h); }
  value_and_gradient<tensor2> hidden_gradient(token_span, std::size_t layer, const tensor2& h,
                                              const output_seed& seed) const {
    return gradient_from(layer, h, seed);
  }

  const dmat& unembedding() const { return u_; }

 private:
  struct tape {
    std::vector<dmat> h, m, u;
  };
  static dmat to_d(const tensor2& x) {
    dmat d(Eigen::Index(x.shape(0)), Eigen::Index(x.shape(1)));
    for (std::size_t i = 0; i < x.size(); ++i) d.data()[i] = x.data()[i];
    return d;
  }
  static tensor2 to_f(const dmat& x) {
    tensor2 f({std::size_t(x.rows()), std::size_t(x.cols())});
    for (std::size_t i = 0; i < f.size(); ++i) f.data()[i] = static_cast<float>(x.data()[i]);
    return f;
  }
  dmat forward(std::size_t from, dmat h, tape* tp) const {
    if (tp) tp->h.assign(from, dmat());
    if (tp) tp->h.push_back(h);
    for (std::size_t l = from; l < layers(); ++l) {
      dmat m = h;
      for (Eigen::Index t = 1; t < m.rows(); ++t) m.row(t) += m.row(t - 1);
      for (Eigen::Index t = 0; t < m.rows(); ++t) m.row(t) /= double(t + 1);
      dmat u = (m * a_[l]).array().tanh().matrix();
      h += u * b_[l];
      if (tp) {
        tp->m.resize(layers());
        tp->u.resize(layers());
        tp->m[l] = m;
        tp->u[l] = u;
        tp->h.push_back(h);
      }
    }
    return h;
  }
  dmat logits_d(const dmat& h) const { return (h * u_).rowwise() + c_.row(0); }
  tensor2 run_logits(std::size_t from, const tensor2& h) const {
    return to_f(logits_d(forward(from, to_d(h), nullptr)));
  }
  value_and_gradient<tensor2> gradient_from(std::size_t from, const tensor2& h0, const output_seed& seed) const {
    tape tp;
    const dmat hl = forward(from, to_d(h0), &tp);
    const tensor2 z = to_f(logits_d(hl));
    const auto rows = seed.rows(z.shape(0));
    tensor2 selected({rows.size(), z.shape(1)});
    for (std::size_t k = 0; k < rows.size(); ++k)
      std::copy_n(z.data() + rows[k] * z.shape(1), z.shape(1), selected.data() + k * z.shape(1));
    tensor2 dsel;
    const double value = seed(selected, dsel);
    dmat dz = dmat::Zero(hl.rows(), u_.cols());
    for (std::size_t k = 0; k < rows.size(); ++k)
      for (std::size_t v = 0; v < z.shape(1); ++v) dz(Eigen::Index(rows[k]), Eigen::Index(v)) += dsel(k, v);
    dmat g = dz * u_.transpose();
    for (std::size_t l = layers(); l-- > from;) {
      const dmat du = g * b_[l].transpose();
      const dmat da = (du.array() * (1.0 - tp.u[l].array().square())).matrix();
      const dmat dm = da * a_[l].transpose();
      dmat dh = g;
      dmat suffix = dmat::Zero(1, dm.cols());
      for (Eigen::Index t = dm.rows() - 1; t >= 0; --t) {
        suffix += dm.row(t) / double(t + 1);
        dh.row(t) += suffix;
      }
      g = dh;
    }
    return {value, to_f(g)};
  }

  dmat e_, u_, c_;
  std::vector<dmat> a_, b_;
};

static_assert(DifferentiableModel<tiny_mixer>);
static_assert(InterventionModel<tiny_mixer>);

// e_i . W[:, c] for every token of `tokens` at or before `position`, 0 after: the closed form of
// integrated gradients (zero baseline) and input x gradient for a logit target on the linear bag.
std::vector<double> linear_closed_form(const models::linear_bag& m, token_span tokens, token_id c, std::size_t position,
                                       const std::vector<float>* baseline = nullptr) {
  std::vector<double> out(tokens.size(), 0.0);
  for (std::size_t i = 0; i <= position; ++i)
    for (std::size_t k = 0; k < m.width(); ++k) {
      const double b = baseline ? (*baseline)[k] : 0.0;
      out[i] += (double(m.embedding_matrix()(std::size_t(tokens[i]), k)) - b) * double(m.weights()(k, std::size_t(c)));
    }
  return out;
}

bool same_bits(const attribution_result& a, const attribution_result& b) {
  return a.scores == b.scores && a.embedding_scores == b.embedding_scores && a.standard_errors == b.standard_errors &&
         a.target_value == b.target_value && (a.convergence_delta.has_value() == b.convergence_delta.has_value()) &&
         (!a.convergence_delta || *a.convergence_delta == *b.convergence_delta);
}

// A small random reference GPT-2 (pre-LayerNorm blocks, GELU, learned positions), GPT-2's initialisation.
models::gpt2 small_gpt2(std::uint64_t seed) {
  models::gpt2_config c;
  c.n_layer = 2;
  c.n_head = 2;
  c.n_embd = 32;
  c.n_positions = 16;
  c.vocab_size = 64;
  return models::gpt2::random(c, seed);
}

// A user's own gradient method for the noise tunnel: the signed gradient, one score per token by
// the sum, through the four functions of the GradientMethod concept (found by ADL in this namespace).
struct signed_gradient {};
constexpr std::string_view method_name(const signed_gradient&) { return "signed_gradient"; }
std::vector<named_option> recorded_options(const signed_gradient&) { return {{"sign", true}}; }
std::vector<double> aggregate_tokens(const attribution_matrix& a, const signed_gradient&) {
  return glassbox::aggregate_tokens(a, token_aggregation::sum);
}
template <class M>
embedding_attributions attribute_embeddings(const M& model, token_span, std::span<const tensor2> inputs,
                                            const target& t, const signed_gradient&, const execution_options& exec) {
  embedding_attributions out;
  for (const auto& g : embedding_gradients(model, inputs, t, exec)) {
    attribution_matrix a(g.gradient.shape());
    std::copy(g.gradient.begin(), g.gradient.end(), a.begin());
    out.scores.push_back(a);
    out.target_values.push_back(g.value);
  }
  out.model_evaluations = inputs.size();
  return out;
}

const std::vector<integration_rule> all_rules = {integration_rule::riemann_left, integration_rule::riemann_right,
                                                 integration_rule::riemann_middle, integration_rule::riemann_trapezoid,
                                                 integration_rule::gauss_legendre};

}  // namespace

TEST_CASE("quadrature: Gauss-Legendre is exact to degree 2n - 1 on [0, 1]", "[attribution][gradient][quadrature]") {
  for (std::size_t n = 1; n <= 24; ++n) {
    const quadrature q = integration_nodes(integration_rule::gauss_legendre, n);
    REQUIRE(q.nodes.size() == n);
    double sum_w = 0;
    for (std::size_t k = 0; k < n; ++k) {
      sum_w += q.weights[k];
      CHECK(q.nodes[k] > 0.0);
      CHECK(q.nodes[k] < 1.0);
      CHECK(q.weights[k] > 0.0);
      if (k > 0) CHECK(q.nodes[k] > q.nodes[k - 1]);
    }
    CHECK(sum_w == Approx(1.0).margin(1e-15));  // normalised; double rounding only
    // integral_0^1 x^p dx = 1 / (p + 1). Monomials up to degree 2n - 1 are integrated to rounding
    // error (1e-13 covers sums of up to 24 terms of size <= 1).
    for (std::size_t p = 0; p <= 2 * n - 1; ++p) {
      double s = 0;
      for (std::size_t k = 0; k < n; ++k) s += q.weights[k] * std::pow(q.nodes[k], double(p));
      CHECK(s == Approx(1.0 / double(p + 1)).margin(1e-13));
    }
    // ... and degree 2n is not exact: the error of x^{2n} is (n!)^4 / ((2n + 1) ((2n)!)^3) > 0,
    // at least 1e-30 here, so a rule of the wrong order would be caught above, not this one.
    double s = 0;
    for (std::size_t k = 0; k < n; ++k) s += q.weights[k] * std::pow(q.nodes[k], double(2 * n));
    if (n <= 6) CHECK(std::abs(s - 1.0 / double(2 * n + 1)) > 1e-12);
  }
  // The two-point rule, by hand: nodes 1/2 -+ 1/(2 sqrt 3), weights 1/2.
  const quadrature two = integration_nodes(integration_rule::gauss_legendre, 2);
  CHECK(two.nodes[0] == Approx(0.5 - 0.5 / std::sqrt(3.0)).epsilon(1e-15));
  CHECK(two.weights[1] == Approx(0.5).epsilon(1e-15));
}

TEST_CASE("quadrature: Riemann rules have their textbook nodes and weights", "[attribution][gradient][quadrature]") {
  const auto left = integration_nodes(integration_rule::riemann_left, 4);
  const auto right = integration_nodes(integration_rule::riemann_right, 4);
  const auto middle = integration_nodes(integration_rule::riemann_middle, 4);
  const auto trap = integration_nodes(integration_rule::riemann_trapezoid, 5);
  CHECK(left.nodes == std::vector<double>{0.0, 0.25, 0.5, 0.75});
  CHECK(right.nodes == std::vector<double>{0.25, 0.5, 0.75, 1.0});
  CHECK(middle.nodes == std::vector<double>{0.125, 0.375, 0.625, 0.875});
  CHECK(trap.nodes == std::vector<double>{0.0, 0.25, 0.5, 0.75, 1.0});
  CHECK(trap.weights == std::vector<double>{0.125, 0.25, 0.25, 0.25, 0.125});
  CHECK(left.weights == std::vector<double>(4, 0.25));
  // The trapezoid rule is exact for linear integrands, the midpoint rule too; left/right are not.
  auto integrate = [](const quadrature& q, auto f) {
    double s = 0;
    for (std::size_t k = 0; k < q.nodes.size(); ++k) s += q.weights[k] * f(q.nodes[k]);
    return s;
  };
  auto line = [](double a) { return 3.0 * a + 1.0; };  // integral 2.5
  CHECK(integrate(trap, line) == Approx(2.5).epsilon(1e-15));
  CHECK(integrate(middle, line) == Approx(2.5).epsilon(1e-15));
  CHECK(integrate(left, line) == Approx(2.5 - 3.0 / 8).epsilon(1e-15));
  // Halving the intervals of a nested rule reuses its nodes: T_2m = T_m / 2 + midpoint sum (used by adaptive IG).
  auto f = [](double a) { return std::exp(a) * std::sin(3 * a); };
  const auto m4 = detail::interval_midpoints(4);
  CHECK(integrate(integration_nodes(integration_rule::riemann_trapezoid, 9), f) ==
        Approx(integrate(trap, f) / 2 + integrate(m4, f)).epsilon(1e-14));
  CHECK(integrate(integration_nodes(integration_rule::riemann_left, 8), f) ==
        Approx(integrate(left, f) / 2 + integrate(m4, f)).epsilon(1e-14));
  CHECK(integrate(integration_nodes(integration_rule::riemann_right, 8), f) ==
        Approx(integrate(right, f) / 2 + integrate(m4, f)).epsilon(1e-14));
}

TEST_CASE("gradient methods: closed forms on the linear bag-of-embeddings model", "[attribution][gradient]") {
  const auto model = models::linear_bag::random(13, 6, 5, 7);
  const token_sequence tokens{3, 7, 1, 9, 4};
  const token_id c = 2;
  // Float gradients and embeddings of size ~1 summed over 6 dimensions: 1e-5 absolute is ~100 float ulps.
  constexpr double tol = 1e-5;

  SECTION("integrated gradients and input x gradient equal e_i . W[:, c] for every rule and step count") {
    for (std::size_t position : {std::size_t{4}, std::size_t{2}}) {
      const target t = target::logit(c, std::ptrdiff_t(position));
      const auto expected = linear_closed_form(model, tokens, c, position);
      for (integration_rule rule : all_rules) {
        for (std::size_t steps : {1, 2, 7, 50}) {
          if (rule == integration_rule::riemann_trapezoid && steps < 2) continue;
          const auto r = integrated_gradients(model, tokens, t, {.steps = steps, .rule = rule});
          INFO(to_string(rule) << " steps " << steps << " position " << position);
          REQUIRE(r.scores.size() == tokens.size());
          for (std::size_t i = 0; i < tokens.size(); ++i) CHECK(r.scores[i] == Approx(expected[i]).margin(tol));
          for (std::size_t i = 0; i < tokens.size(); ++i)
            for (std::size_t k = 0; k < model.width(); ++k) {
              const double e = i <= position ? double(model.embedding_matrix()(std::size_t(tokens[i]), k)) *
                                                   double(model.weights()(k, std::size_t(c)))
                                             : 0.0;
              CHECK(r.embedding_scores(i, k) == Approx(e).margin(tol));
            }
          REQUIRE(r.convergence_delta.has_value());
          CHECK(*r.convergence_delta == Approx(0.0).margin(tol));
          CHECK(r.model_evaluations == steps + 2);
          CHECK(r.method == "integrated_gradients");
        }
      }
      const auto x = input_x_gradient(model, tokens, t);
      for (std::size_t i = 0; i < tokens.size(); ++i) CHECK(x.scores[i] == Approx(expected[i]).margin(tol));
      CHECK(x.model_evaluations == 1);
      CHECK(x.target_value == Approx(t.value_of(model.logits(tokens))).epsilon(1e-12));
    }
  }

  SECTION("saliency equals |W[:, c]| per dimension for tokens at or before the target") {
    const target t = target::logit(c, 3);
    double l2 = 0, l1 = 0, signed_sum = 0;
    for (std::size_t k = 0; k < model.width(); ++k) {
      const double w = model.weights()(k, std::size_t(c));
      l2 += w * w;
      l1 += std::abs(w);
      signed_sum += w;
    }
    l2 = std::sqrt(l2);
    const auto r = saliency(model, tokens, t);
    const auto r1 = saliency(model, tokens, t, {.aggregation = token_aggregation::sum_abs});
    const auto rs = saliency(model, tokens, t, {.absolute = false, .aggregation = token_aggregation::sum});
    for (std::size_t i = 0; i < tokens.size(); ++i) {
      const bool read = i <= 3;
      CHECK(r.scores[i] == Approx(read ? l2 : 0.0).margin(tol));
      CHECK(r1.scores[i] == Approx(read ? l1 : 0.0).margin(tol));
      CHECK(rs.scores[i] == Approx(read ? signed_sum : 0.0).margin(tol));
      for (std::size_t k = 0; k < model.width(); ++k) {
        const double w = model.weights()(k, std::size_t(c));
        CHECK(r.embedding_scores(i, k) == Approx(read ? std::abs(w) : 0.0).margin(tol));
        CHECK(rs.embedding_scores(i, k) == Approx(read ? w : 0.0).margin(tol));
      }
    }
    CHECK(r.method == "saliency");
    CHECK_FALSE(r.convergence_delta.has_value());
  }

  SECTION("baselines: pad token, user embedding, and the average over several") {
    const target t = target::logit(c);
    std::vector<float> pad(model.width()), user(model.width());
    for (std::size_t k = 0; k < model.width(); ++k) {
      pad[k] = model.embedding_matrix()(0, k);  // the pad token is 0
      user[k] = 0.25f * float(k) - 0.5f;
    }
    tensor2 user_t({1, model.width()});
    std::copy(user.begin(), user.end(), user_t.data());
    const auto expected_pad = linear_closed_form(model, tokens, c, 4, &pad);
    const auto expected_user = linear_closed_form(model, tokens, c, 4, &user);
    const auto expected_zero = linear_closed_form(model, tokens, c, 4);
    const auto rp = integrated_gradients(model, tokens, t, {.baseline = baseline::pad()});
    const auto ru = integrated_gradients(model, tokens, t, {.baseline = baseline::embedding(user_t)});
    const auto ra = integrated_gradients(
        model, tokens, t, {.baselines = {baseline::zero(), baseline::pad(), baseline::embedding(user_t)}});
    for (std::size_t i = 0; i < tokens.size(); ++i) {
      CHECK(rp.scores[i] == Approx(expected_pad[i]).margin(tol));
      CHECK(ru.scores[i] == Approx(expected_user[i]).margin(tol));
      CHECK(ra.scores[i] == Approx((expected_zero[i] + expected_pad[i] + expected_user[i]) / 3).margin(tol));
    }
    CHECK(*ra.convergence_delta == Approx(0.0).margin(tol));
    CHECK(ra.model_evaluations == 3 * 50 + 1 + 3);
    const token_sequence pads(tokens.size(), 0);
    CHECK(rp.baseline_value == Approx(t.value_of(model.logits(pads))).epsilon(1e-6));

    // GradientSHAP with one baseline is exact on a linear model whatever the alphas drawn.
    const auto gs = gradient_shap(model, tokens, t, {.samples = 7, .baselines = {baseline::pad()}, .seed = 3});
    for (std::size_t i = 0; i < tokens.size(); ++i) CHECK(gs.scores[i] == Approx(expected_pad[i]).margin(tol));
    CHECK(gs.model_evaluations == 7 + 2);
    // With several baselines it is exact in its own completeness (the drawn baselines' mean).
    const auto gs2 =
        gradient_shap(model, tokens, t, {.samples = 9, .baselines = {baseline::zero(), baseline::pad()}, .seed = 5});
    CHECK(*gs2.convergence_delta == Approx(0.0).margin(tol));
  }
}

TEST_CASE("the nonlinear test model's gradients match finite differences", "[attribution][gradient]") {
  // The test model's backward pass is hand-written; check it before trusting the tests built on it.
  const auto model = tiny_mixer::random(11, 8, 6, 2, 1);
  const token_sequence tokens{1, 5, 2, 7};
  const target t = target::log_probability(3);
  const tensor3 hs = model.hidden_states(tokens);
  for (std::size_t layer : {0, 1, 2}) {
    tensor2 h({tokens.size(), model.width()});
    std::copy_n(hs.data() + layer * h.size(), h.size(), h.data());
    const auto g = model.hidden_gradient(tokens, layer, h, t);
    CHECK(g.value == Approx(t.value_of(model.logits(tokens))).epsilon(1e-6));
    // Central differences with h = 1/256 in float inputs: truncation ~1e-5 and float rounding of the
    // logits ~1e-7 / h ~ 3e-5, so 3e-4 absolute is a comfortable bound for gradients of size ~1.
    for (std::size_t i = 0; i < h.size(); ++i) {
      tensor2 plus = h, minus = h;
      plus.data()[i] += 1.0f / 256;
      minus.data()[i] -= 1.0f / 256;
      const double fd = (t.value_of(model.logits_from_hidden(tokens, layer, plus)) -
                         t.value_of(model.logits_from_hidden(tokens, layer, minus))) *
                        128.0;
      CHECK(g.gradient.data()[i] == Approx(fd).margin(3e-4));
    }
  }
}

TEST_CASE("layer attribution: layer 0 is integrated gradients, the last layer has a closed form",
          "[attribution][gradient][layer]") {
  const auto model = tiny_mixer::random(11, 8, 6, 2, 2);
  const token_sequence tokens{4, 1, 9, 3, 6};
  const target t = target::log_probability(5);
  // Both are the same quadrature of the same gradients (hidden_states[0] = embed); only the dispatch differs.
  for (const baseline& b : {baseline::zero(), baseline::pad()}) {
    const auto ig = integrated_gradients(model, tokens, t, {.steps = 20, .baseline = b});
    const auto lig = layer_integrated_gradients(model, tokens, t, {.layer = 0, .steps = 20, .baseline = b});
    REQUIRE(lig.scores.size() == tokens.size());
    for (std::size_t i = 0; i < tokens.size(); ++i) CHECK(lig.scores[i] == Approx(ig.scores[i]).epsilon(1e-9));
    CHECK(*lig.convergence_delta == Approx(*ig.convergence_delta).margin(1e-9));
    CHECK(lig.baseline_value == Approx(ig.baseline_value).epsilon(1e-9));
    CHECK(lig.method == "layer_integrated_gradients");
  }
  // At the last layer a logit target is linear in h_L, and reads only the target row:
  // LIG (zero baseline) = gradient x activation = h_L[t, k] U[k, c] at the target position, 0 elsewhere.
  const target logit = target::logit(5, 3);
  const tensor3 hs = model.hidden_states(tokens);
  const auto lig = layer_integrated_gradients(model, tokens, logit, {.layer = 2, .steps = 3});
  const auto gxa = layer_gradient_x_activation(model, tokens, logit, {.layer = 2});
  for (std::size_t i = 0; i < tokens.size(); ++i) {
    double expected = 0;
    if (i == 3)
      for (std::size_t k = 0; k < model.width(); ++k)
        expected += double(hs(2, i, k)) * model.unembedding()(Eigen::Index(k), 5);
    // float hidden states and gradients: 1e-5 absolute for sums of 8 products of size ~1
    CHECK(lig.scores[i] == Approx(expected).margin(1e-5));
    CHECK(gxa.scores[i] == Approx(expected).margin(1e-5));
  }
  CHECK(gxa.model_evaluations == 2);
  // A middle layer: completeness holds to quadrature accuracy.
  const auto mid = layer_integrated_gradients(model, tokens, t, {.layer = 1, .steps = 64});
  CHECK(std::abs(*mid.convergence_delta) < 1e-4);
}

namespace {

// mean |convergence delta| of integrated gradients over `inputs`, per rule and step count
template <class M>
std::vector<std::vector<double>> completeness_gaps(const M& model, const std::vector<token_sequence>& inputs,
                                                   const std::vector<std::size_t>& steps) {
  std::vector<std::vector<double>> gap(all_rules.size(), std::vector<double>(steps.size(), 0.0));
  for (std::size_t r = 0; r < all_rules.size(); ++r)
    for (std::size_t s = 0; s < steps.size(); ++s)
      for (const auto& in : inputs) {
        const auto res =
            integrated_gradients(model, in, target::log_probability(in[0]), {.steps = steps[s], .rule = all_rules[r]});
        gap[r][s] += std::abs(*res.convergence_delta) / double(inputs.size());
      }
  return gap;
}

std::vector<token_sequence> random_inputs(std::size_t count, std::size_t length, std::size_t vocab,
                                          std::uint64_t seed) {
  glassbox::rng g(seed);
  std::vector<token_sequence> inputs(count, token_sequence(length));
  for (auto& s : inputs)
    for (auto& x : s) x = token_id(g.below(vocab));
  return inputs;
}

// Riemann sums fall at each doubling, as O(1/n) (left, right) or O(1/n^2) (middle, trapezoid);
// Gauss-Legendre falls down to the float rounding floor `floor`, and beats every Riemann rule at equal steps.
void check_gaps(const std::vector<std::vector<double>>& gap, const std::vector<std::size_t>& steps, double floor) {
  const std::size_t gl = all_rules.size() - 1;
  for (std::size_t r = 0; r < all_rules.size(); ++r) {
    INFO(to_string(all_rules[r]));
    for (std::size_t s = 1; s < steps.size(); ++s) {
      if (r == gl)
        CHECK(gap[r][s] <= std::max(gap[r][s - 1], floor));
      else
        CHECK(gap[r][s] < gap[r][s - 1]);
    }
  }
  for (std::size_t r = 0; r < gl; ++r)
    for (std::size_t s = 0; s < steps.size(); ++s) {
      INFO(to_string(all_rules[r]) << " at " << steps[s] << " steps: " << gap[r][s] << " vs GL " << gap[gl][s]);
      CHECK(gap[gl][s] < gap[r][s]);
    }
}

}  // namespace

TEST_CASE("integrated gradients: the completeness gap falls with steps, Gauss-Legendre fastest",
          "[attribution][gradient][completeness]") {
  const std::vector<std::size_t> steps = {4, 8, 16, 32};
  SECTION("reference GPT-2") {
    // Gauss-Legendre reaches the float floor (~2e-8 here) by 8 steps; 1e-7 leaves room for rounding.
    const auto model = small_gpt2(1);
    check_gaps(completeness_gaps(model, random_inputs(6, 8, 64, 3), steps), steps, 1e-7);
  }
  SECTION("nonlinear test model") {
    // Its gaps are larger (tanh with gain 2); float rounding ~1e-6 is Gauss-Legendre's floor.
    const auto model = tiny_mixer::random(11, 8, 6, 2, 3, 2.0);
    check_gaps(completeness_gaps(model, random_inputs(6, 6, 11, 17), steps), steps, 2e-6);
  }
}

TEST_CASE("gradient methods on the reference GPT-2: layer 0 and thread counts", "[attribution][gradient][gpt2]") {
  const auto model = small_gpt2(2);
  const token_sequence tokens{5, 17, 3, 40, 22, 9};
  const target t = target::log_probability(11);
  // GPT-2's hidden state 0 is wte + wpe and embed() is wte: with a token baseline both paths move
  // the same difference wte[x] - wte[z], so layer IG at 0 is IG (up to float rounding of the shifted points).
  const auto ig = integrated_gradients(model, tokens, t, {.steps = 16, .baseline = baseline::token(7)});
  const auto lig =
      layer_integrated_gradients(model, tokens, t, {.layer = 0, .steps = 16, .baseline = baseline::token(7)});
  for (std::size_t i = 0; i < tokens.size(); ++i) CHECK(lig.scores[i] == Approx(ig.scores[i]).margin(1e-5));
  CHECK(lig.baseline_value == Approx(ig.baseline_value).epsilon(1e-5));
  const auto deep =
      layer_integrated_gradients(model, tokens, t, {.layer = 2, .steps = 16, .baseline = baseline::token(7)});
  CHECK(std::abs(*deep.convergence_delta) < 1e-5);
  // Adaptive Gauss-Legendre from 2 points reaches 1e-6.
  const auto adaptive = integrated_gradients(model, tokens, t, {.steps = 2, .adaptive = true, .tolerance = 1e-6});
  CHECK(std::abs(*adaptive.convergence_delta) <= 1e-6);
  // Same seed and batch size, 1 or 2 threads: bit-identical.
  std::vector<attribution_result> shap, nt;
  for (std::size_t threads : {1, 2}) {
    execution_options e;
    e.batch_size = 3;
    e.threads = threads;
    shap.push_back(gradient_shap(
        model, tokens, t,
        {.samples = 8, .stdev = 0.01, .baselines = {baseline::zero(), baseline::token(7)}, .seed = 4, .execution = e}));
    nt.push_back(
        noise_tunnel(model, tokens, t, integrated_gradients_options{.steps = 4},
                     {.type = noise_tunnel_type::vargrad, .samples = 4, .stdev = 0.01, .seed = 4, .execution = e}));
  }
  CHECK(same_bits(shap[0], shap[1]));
  CHECK(same_bits(nt[0], nt[1]));
  // Greedy decoding through logits_at (only the last row) agrees with the argmax of the full logits.
  const token_sequence generated = generate_greedy(model, tokens, 3);
  token_sequence seq = tokens;
  for (token_id next : generated) {
    const tensor2 z = model.logits(seq);
    std::size_t best = 0;
    for (std::size_t v = 1; v < z.shape(1); ++v)
      if (z(seq.size() - 1, v) > z(seq.size() - 1, best)) best = v;
    CHECK(next == token_id(best));
    seq.push_back(next);
  }
}

TEST_CASE("integrated gradients: adaptive steps reach the tolerance", "[attribution][gradient][completeness]") {
  const auto model = tiny_mixer::random(11, 8, 6, 2, 3, 2.0);
  const token_sequence tokens{2, 9, 4, 4, 1, 7};
  const target t = target::log_probability(8);
  SECTION("nested rules reuse every gradient") {
    // The left rule converges as O(1/n), the trapezoid rule as O(1/n^2): tolerances each reaches in a few doublings.
    for (const auto& [rule, tolerance] :
         {std::pair{integration_rule::riemann_left, 1e-2}, std::pair{integration_rule::riemann_trapezoid, 1e-5}}) {
      const auto r = integrated_gradients(
          model, tokens, t, {.steps = 4, .rule = rule, .adaptive = true, .tolerance = tolerance, .max_steps = 4096});
      INFO(to_string(rule));
      CHECK(std::abs(*r.convergence_delta) <= tolerance);
      const auto used = std::get<std::int64_t>(std::find_if(r.options.begin(), r.options.end(), [](const auto& o) {
                                                 return o.name == "steps_used";
                                               })->value);
      CHECK(used > 4);
      CHECK(r.model_evaluations == std::size_t(used) + 2);  // every gradient computed once
      // The result is the one-shot rule with the final step count (same nodes and weights).
      const auto once = integrated_gradients(model, tokens, t, {.steps = std::size_t(used), .rule = rule});
      for (std::size_t i = 0; i < tokens.size(); ++i) CHECK(r.scores[i] == Approx(once.scores[i]).margin(1e-9));
    }
  }
  SECTION("Gauss-Legendre starts over with twice the points") {
    const auto r = integrated_gradients(model, tokens, t, {.steps = 2, .adaptive = true, .tolerance = 1e-5});
    CHECK(std::abs(*r.convergence_delta) <= 1e-5);
  }
  SECTION("an unreachable tolerance stops at max_steps") {
    const auto r = integrated_gradients(
        model, tokens, t,
        {.steps = 4, .rule = integration_rule::riemann_left, .adaptive = true, .tolerance = 1e-12, .max_steps = 40});
    const auto used = std::get<std::int64_t>(
        std::find_if(r.options.begin(), r.options.end(), [](const auto& o) { return o.name == "steps_used"; })->value);
    CHECK(used == 32);
    CHECK(std::abs(*r.convergence_delta) > 1e-12);
  }
}

TEST_CASE("random gradient methods: bit-identical under a seed across batch sizes and threads",
          "[attribution][gradient][determinism]") {
  const auto model = tiny_mixer::random(11, 8, 6, 2, 4);
  const token_sequence tokens{3, 1, 4, 1, 5};
  const target t = target::log_probability(9);
  const std::vector<std::pair<std::size_t, std::size_t>> settings = {{1, 1}, {3, 2}, {32, 0}, {2, 3}};
  auto exec = [](std::size_t batch, std::size_t threads) {
    execution_options e;
    e.batch_size = batch;
    e.threads = threads;
    return e;
  };
  std::vector<attribution_result> shap, nt_ig, nt_sal, var;
  for (const auto& [batch, threads] : settings) {
    shap.push_back(gradient_shap(model, tokens, t,
                                 {.samples = 13,
                                  .stdev = 0.3,
                                  .baselines = {baseline::zero(), baseline::pad()},
                                  .seed = 11,
                                  .execution = exec(batch, threads)}));
    nt_ig.push_back(noise_tunnel(model, tokens, t,
                                 integrated_gradients_options{.steps = 6, .internal_batch_size = batch},
                                 {.samples = 4, .stdev = 0.2, .seed = 5, .execution = exec(batch, threads)}));
    nt_sal.push_back(noise_tunnel(model, tokens, t, saliency_options{},
                                  {.type = noise_tunnel_type::smoothgrad_squared,
                                   .samples = 7,
                                   .stdev = 0.5,
                                   .seed = 6,
                                   .execution = exec(batch, threads)}));
    var.push_back(noise_tunnel(model, tokens, t, input_x_gradient_options{},
                               {.type = noise_tunnel_type::vargrad,
                                .samples = 9,
                                .stdev = 0.5,
                                .seed = 6,
                                .execution = exec(batch, threads)}));
  }
  for (std::size_t i = 1; i < settings.size(); ++i) {
    CHECK(same_bits(shap[0], shap[i]));
    CHECK(same_bits(nt_ig[0], nt_ig[i]));
    CHECK(same_bits(nt_sal[0], nt_sal[i]));
    CHECK(same_bits(var[0], var[i]));
  }
  // Another seed gives other numbers.
  const auto other = gradient_shap(
      model, tokens, t, {.samples = 13, .stdev = 0.3, .baselines = {baseline::zero(), baseline::pad()}, .seed = 12});
  CHECK_FALSE(same_bits(shap[0], other));
  // VarGrad is a variance: never negative, per dimension and per token.
  for (float v : var[0].embedding_scores) CHECK(v >= 0.0f);
  for (double v : var[0].scores) CHECK(v >= 0.0);
  CHECK(var[0].method == "noise_tunnel");
  CHECK(std::get<std::string>(var[0].options.at(0).value) == "vargrad");  // recorded as the option "type"
  CHECK(var[0].options.at(0).name == "type");
  CHECK(shap[0].standard_errors.size() == tokens.size());
}

TEST_CASE("noise tunnel: zero noise gives the inner method, the noise has the requested size",
          "[attribution][gradient][noise]") {
  const auto model = tiny_mixer::random(11, 8, 6, 2, 5);
  const token_sequence tokens{6, 2, 8, 3};
  const target t = target::log_probability(1);
  SECTION("zero noise") {
    const auto ig = integrated_gradients(model, tokens, t, {.steps = 10});
    const auto sg =
        noise_tunnel(model, tokens, t, integrated_gradients_options{.steps = 10}, {.samples = 3, .stdev = 0.0});
    // the mean of identical copies: equal up to the rounding of (a + a + a) / 3 in double
    for (std::size_t i = 0; i < tokens.size(); ++i) CHECK(sg.scores[i] == Approx(ig.scores[i]).epsilon(1e-14));
    for (std::size_t i = 0; i < sg.embedding_scores.size(); ++i)
      CHECK(sg.embedding_scores.data()[i] == ig.embedding_scores.data()[i]);  // float storage hides that rounding
    CHECK(*sg.convergence_delta == Approx(*ig.convergence_delta).margin(1e-12));
    CHECK(sg.target_value == Approx(ig.target_value).epsilon(1e-6));
    CHECK(sg.model_evaluations == 3 * 10 + (3 + 1) + 1);  // paths, end points (3 inputs, 1 baseline), clean input
    const auto sal = saliency(model, tokens, t);
    const auto sal_sg = smoothgrad(model, tokens, t, {.stdev = 0.0});
    for (std::size_t i = 0; i < tokens.size(); ++i) CHECK(sal_sg.scores[i] == Approx(sal.scores[i]).epsilon(1e-14));
    const auto sq =
        noise_tunnel(model, tokens, t, saliency_options{.absolute = false, .aggregation = token_aggregation::sum},
                     {.type = noise_tunnel_type::smoothgrad_squared, .stdev = 0.0});
    for (std::size_t i = 0; i < sq.embedding_scores.size(); ++i)
      CHECK(sq.embedding_scores.data()[i] ==
            Approx(double(sal.embedding_scores.data()[i]) * sal.embedding_scores.data()[i]).epsilon(1e-6));
    const auto vg =
        noise_tunnel(model, tokens, t, saliency_options{}, {.type = noise_tunnel_type::vargrad, .stdev = 0.0});
    for (float v : vg.embedding_scores) CHECK(v == 0.0f);
    // A user-defined inner method: with zero noise, its own attribution.
    static_assert(GradientMethod<signed_gradient, tiny_mixer>);
    static_assert(!GradientMethod<int, tiny_mixer>);
    const auto own = noise_tunnel(model, tokens, t, signed_gradient{}, {.samples = 2, .stdev = 0.0});
    const auto plain = saliency(model, tokens, t, {.absolute = false, .aggregation = token_aggregation::sum});
    for (std::size_t i = 0; i < tokens.size(); ++i) CHECK(own.scores[i] == Approx(plain.scores[i]).epsilon(1e-14));
    CHECK(own.options[4].name == "inner_method");
    CHECK(std::get<std::string>(own.options[4].value) == "signed_gradient");
  }
  SECTION("the mean and variance of input x gradient on a linear model") {
    // a_k = (x_k + n_k) W_kc with n_k ~ N(0, s^2): the mean is x_k W_kc, the variance s^2 W_kc^2.
    const auto lin = models::linear_bag::random(13, 6, 5, 8);
    const token_sequence ts{3, 5};
    const target lt = target::logit(1);
    const std::size_t n = 4000;
    const double s = 0.5;
    const auto mean = noise_tunnel(lin, ts, lt, input_x_gradient_options{}, {.samples = n, .stdev = s, .seed = 1});
    const auto var = noise_tunnel(lin, ts, lt, input_x_gradient_options{},
                                  {.type = noise_tunnel_type::vargrad, .samples = n, .stdev = s, .seed = 1});
    for (std::size_t i = 0; i < ts.size(); ++i)
      for (std::size_t k = 0; k < lin.width(); ++k) {
        const double w = lin.weights()(k, 1), x = lin.embedding_matrix()(std::size_t(ts[i]), k);
        // standard error of the mean s |w| / sqrt(n); 5 of them
        CHECK(mean.embedding_scores(i, k) == Approx(x * w).margin(5 * s * std::abs(w) / std::sqrt(double(n))));
        // relative standard error of a sample variance is sqrt(2 / n) ~ 2.2%; allow 5 of them
        CHECK(var.embedding_scores(i, k) == Approx(s * s * w * w).epsilon(5 * std::sqrt(2.0 / double(n))));
      }
  }
  SECTION("GradientSHAP with one baseline and no noise estimates integrated gradients") {
    // E_alpha[(x - x') grad f(x' + alpha (x - x'))] is the IG integral exactly; the estimate's own
    // standard errors bound its distance from IG (5 standard errors, plus IG's own quadrature error).
    const auto ig = integrated_gradients(model, tokens, t, {.steps = 64});
    const auto gs = gradient_shap(model, tokens, t, {.samples = 3000, .seed = 9});
    REQUIRE(gs.standard_errors.size() == tokens.size());
    for (std::size_t i = 0; i < tokens.size(); ++i)
      CHECK(std::abs(gs.scores[i] - ig.scores[i]) <= 5 * gs.standard_errors[i] + 1e-5);
  }
}

TEST_CASE("generation: rows are single-target attributions of the prefixes", "[attribution][gradient][generation]") {
  const auto model = tiny_mixer::random(11, 8, 6, 2, 6);
  const token_sequence prompt{2, 7, 4};
  auto ig = [&](token_span s, const target& t) { return integrated_gradients(model, s, t, {.steps = 8}); };

  SECTION("greedy generation") {
    const token_sequence cont = generate_greedy(model, prompt, 4);
    REQUIRE(cont.size() == 4);
    token_sequence seq = prompt;
    for (token_id next : cont) {
      const tensor2 z = model.logits(seq);
      std::size_t best = 0;
      for (std::size_t v = 1; v < z.shape(1); ++v)
        if (z(seq.size() - 1, v) > z(seq.size() - 1, best)) best = v;
      CHECK(next == token_id(best));
      seq.push_back(next);
    }
    const auto r = attribute_generation(model, prompt, std::size_t{4}, ig);
    CHECK(r.token_ids == seq);
    CHECK(r.model_evaluations == 4 * (8 + 2) + 4);
  }

  SECTION("given continuation, log-probability and contrastive targets") {
    const token_sequence cont{5, 5, 1};
    const auto r = attribute_generation(model, prompt, cont, ig);
    REQUIRE(r.scores.shape(0) == 3);
    REQUIRE(r.scores.shape(1) == 6);
    CHECK(r.prompt_length == 3);
    CHECK(r.method == "integrated_gradients");
    REQUIRE(r.convergence_deltas.size() == 3);
    const std::vector<token_id> foils{0, 9, 3};
    const auto rc = attribute_generation(model, prompt, cont, ig, {.foils = foils});
    for (std::size_t g = 0; g < cont.size(); ++g) {
      token_sequence prefix = prompt;
      prefix.insert(prefix.end(), cont.begin(), cont.begin() + std::ptrdiff_t(g));
      const auto single = integrated_gradients(model, prefix, target::log_probability(cont[g]), {.steps = 8});
      const auto contrast = integrated_gradients(model, prefix, target::contrast(cont[g], foils[g]), {.steps = 8});
      for (std::size_t s = 0; s < r.scores.shape(1); ++s) {
        if (s < prefix.size()) {
          CHECK(r.scores(g, s) == static_cast<float>(single.scores[s]));
          CHECK(rc.scores(g, s) == static_cast<float>(contrast.scores[s]));
        } else {
          CHECK(r.scores(g, s) == 0.0f);
          CHECK(rc.scores(g, s) == 0.0f);
        }
      }
      CHECK(r.target_values[g] == single.target_value);
      CHECK(r.convergence_deltas[g] == *single.convergence_delta);
    }
  }
}

TEST_CASE("gradient methods: progress and cancellation", "[attribution][gradient]") {
  const auto model = tiny_mixer::random(11, 8, 6, 2, 7);
  const token_sequence tokens{1, 2, 3};
  const target t = target::log_probability(4);
  std::vector<progress> seen;
  integrated_gradients_options o{.steps = 20, .internal_batch_size = 6};
  o.execution.batch_size = 4;
  o.execution.threads = 1;
  o.execution.on_progress = [&](const progress& p) {
    seen.push_back(p);
    return true;
  };
  integrated_gradients(model, tokens, t, o);
  REQUIRE(!seen.empty());
  for (std::size_t i = 1; i < seen.size(); ++i) CHECK(seen[i].done >= seen[i - 1].done);
  CHECK(seen.back().done == 22);
  CHECK(seen.back().total == 22);
  std::size_t calls = 0;
  o.execution.on_progress = [&](const progress&) { return ++calls < 3; };
  REQUIRE_THROWS_AS(integrated_gradients(model, tokens, t, o), glassbox::cancelled);
}

TEST_CASE("gradient methods: bad options are rejected", "[attribution][gradient][errors]") {
  const auto model = tiny_mixer::random(11, 8, 6, 2, 8);
  const token_sequence tokens{1, 2, 3};
  const target t = target::log_probability(4);
  REQUIRE_THROWS_MATCHES(integrated_gradients(model, tokens, t, {.steps = 0}), glassbox::error,
                         what_contains("glassbox::integrated_gradients: steps must be >= 1, got 0"));
  REQUIRE_THROWS_MATCHES(
      integrated_gradients(model, tokens, t, {.steps = 1, .rule = integration_rule::riemann_trapezoid}),
      glassbox::error,
      what_contains("glassbox::integrated_gradients: steps must be >= 2 for riemann_trapezoid, got 1"));
  REQUIRE_THROWS_MATCHES(integrated_gradients(model, tokens, t, {.adaptive = true, .tolerance = 0.0}), glassbox::error,
                         what_contains("glassbox::integrated_gradients: tolerance must be > 0, got 0"));
  REQUIRE_THROWS_MATCHES(integrated_gradients(model, tokens, t, {.steps = 64, .adaptive = true, .max_steps = 32}),
                         glassbox::error,
                         what_contains("glassbox::integrated_gradients: max_steps must be >= steps (64), got 32"));
  REQUIRE_THROWS_MATCHES(integrated_gradients(model, tokens, t, {.baseline = baseline::removal()}), glassbox::error,
                         what_contains("glassbox::integrated_gradients: baseline must be pad, token, zero or "
                                       "embedding, got removal"));
  REQUIRE_THROWS_MATCHES(integrated_gradients(model, tokens, t, {.baselines = {baseline::zero(), baseline::removal()}}),
                         glassbox::error,
                         what_contains("glassbox::integrated_gradients: baselines must be pad, token, zero or "
                                       "embedding, got removal"));
  REQUIRE_THROWS_MATCHES(integrated_gradients(model, tokens, t, {.baseline = baseline::embedding(tensor2({2, 8}))}),
                         glassbox::shape_error,
                         what_contains("glassbox::integrated_gradients: baseline embedding must be [1, 8] or [3, 8], "
                                       "got [2, 8]"));
  REQUIRE_THROWS_MATCHES(integrated_gradients(model, token_sequence{}, t), glassbox::shape_error,
                         what_contains("glassbox::integrated_gradients: tokens must not be empty"));
  REQUIRE_THROWS_MATCHES(integrated_gradients(model, tokens, t, {.baseline = baseline::token(99)}),
                         glassbox::shape_error,
                         what_contains("glassbox::integrated_gradients: baseline token must be in [0, 11), got 99"));
  REQUIRE_THROWS_MATCHES(integration_nodes(integration_rule::gauss_legendre, 0), glassbox::error,
                         what_contains("glassbox::integration_nodes: steps must be >= 1, got 0"));
  integrated_gradients_options zero_batch;
  zero_batch.execution.batch_size = 0;
  REQUIRE_THROWS_MATCHES(integrated_gradients(model, tokens, t, zero_batch), glassbox::error,
                         what_contains("batch_size must be >= 1, got 0"));

  REQUIRE_THROWS_MATCHES(noise_tunnel(model, tokens, t, saliency_options{}, {.samples = 0}), glassbox::error,
                         what_contains("glassbox::noise_tunnel: samples must be >= 1, got 0"));
  REQUIRE_THROWS_MATCHES(
      noise_tunnel(model, tokens, t, saliency_options{}, {.type = noise_tunnel_type::vargrad, .samples = 1}),
      glassbox::error, what_contains("glassbox::noise_tunnel: samples must be >= 2 for vargrad"));
  REQUIRE_THROWS_MATCHES(noise_tunnel(model, tokens, t, saliency_options{}, {.stdev = -1.0}), glassbox::error,
                         what_contains("glassbox::noise_tunnel: stdev must be finite and >= 0, got -1"));
  REQUIRE_THROWS_MATCHES(noise_tunnel(model, tokens, t, integrated_gradients_options{.steps = 0}), glassbox::error,
                         what_contains("glassbox::integrated_gradients: steps must be >= 1, got 0"));

  REQUIRE_THROWS_MATCHES(gradient_shap(model, tokens, t, {.samples = 0}), glassbox::error,
                         what_contains("glassbox::gradient_shap: samples must be >= 1, got 0"));
  REQUIRE_THROWS_MATCHES(gradient_shap(model, tokens, t, {.baselines = {}}), glassbox::error,
                         what_contains("glassbox::gradient_shap: baselines must not be empty"));
  REQUIRE_THROWS_MATCHES(gradient_shap(model, tokens, t, {.stdev = std::nan("")}), glassbox::error,
                         what_contains("glassbox::gradient_shap: stdev must be finite and >= 0, got nan"));

  REQUIRE_THROWS_MATCHES(layer_integrated_gradients(model, tokens, t, {.layer = 5}), glassbox::shape_error,
                         what_contains("glassbox::layer_integrated_gradients: layer must be in [0, 2], got 5"));
  REQUIRE_THROWS_MATCHES(layer_gradient_x_activation(model, tokens, t, {.layer = 3}), glassbox::shape_error,
                         what_contains("glassbox::layer_gradient_x_activation: layer must be in [0, 2], got 3"));
  REQUIRE_THROWS_MATCHES(layer_integrated_gradients(model, tokens, t, {.baseline = baseline::removal()}),
                         glassbox::error,
                         what_contains("glassbox::layer_integrated_gradients: baseline must be pad, token, zero or "
                                       "embedding, got removal"));

  auto ig = [&](token_span s, const target& tg) { return integrated_gradients(model, s, tg, {.steps = 4}); };
  REQUIRE_THROWS_MATCHES(attribute_generation(model, tokens, token_sequence{}, ig), glassbox::shape_error,
                         what_contains("glassbox::attribute_generation: continuation must not be empty"));
  REQUIRE_THROWS_MATCHES(attribute_generation(model, tokens, token_sequence{1, 2}, ig, {.foils = {3}}),
                         glassbox::shape_error,
                         what_contains("glassbox::attribute_generation: foils must be empty or one per generated "
                                       "token (2), got 1"));
  REQUIRE_THROWS_MATCHES(
      attribute_generation(model, tokens, token_sequence{1, 12}, ig), glassbox::shape_error,
      what_contains("glassbox::attribute_generation: continuation token must be in [0, 11), got 12"));
  REQUIRE_THROWS_MATCHES(
      attribute_generation(model, tokens, token_sequence{1}, ig, {.kind = target_kind::sequence_log_probability}),
      glassbox::error,
      what_contains("glassbox::attribute_generation: kind must be logit, probability or log-probability, got "
                    "sequence-log-probability"));
  REQUIRE_THROWS_MATCHES(generate_greedy(model, token_sequence{}, 3), glassbox::shape_error,
                         what_contains("glassbox::generate_greedy: prompt must not be empty"));
}

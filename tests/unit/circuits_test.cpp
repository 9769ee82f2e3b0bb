// Tests of the component rung and the circuits module: the reference GPT-2's components sum to its
// residual stream; every patch site agrees with an independent path through the model (head masks,
// logits_from_hidden); component gradients agree with central differences; direct logit
// attribution is exact with the final scale frozen; patching, path patching and ablation keep
// their defining properties; attribution patching equals activation patching on a model whose
// metric is linear in every component (a small linear adapter written here).
#include <catch2/catch.hpp>
#include <array>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <glassbox/circuits.hpp>
#include <glassbox/core/random.hpp>
#include <glassbox/models/linear_bag.hpp>
#include <vector>

#include "glassbox/models/gpt2.hpp"
#include "test_support.hpp"

using namespace glassbox;
using glassbox::test::what_contains;

namespace {

using dmodel = models::basic_gpt2<double>;
using fmodel = models::gpt2;
using dmat = xt::xtensor<double, 2>;

models::gpt2_config tiny_config() {
  models::gpt2_config c;
  c.n_layer = 3;
  c.n_head = 2;
  c.n_embd = 8;
  c.n_positions = 12;
  c.vocab_size = 13;
  return c;
}

// Far from GPT-2's small initialisation so that LayerNorm, softmax and GELU are nonlinear.
std::vector<double> test_parameters(const models::gpt2_config& c, std::uint64_t seed) {
  const auto table = models::gpt2_parameter_table(c);
  std::vector<double> p(table.back().offset + table.back().size);
  rng g(seed);
  for (const auto& t : table) {
    const bool ln_weight = t.name.find("ln_") != std::string::npos && t.name.ends_with(".weight");
    for (std::size_t i = 0; i < t.size; ++i) p[t.offset + i] = ln_weight ? 1.0 + g.normal(0, 0.2) : g.normal(0, 0.4);
  }
  return p;
}

dmodel double_model() { return dmodel(tiny_config(), test_parameters(tiny_config(), 7)); }
fmodel float_model() {
  const auto p = test_parameters(tiny_config(), 7);
  return fmodel(tiny_config(), std::vector<float>(p.begin(), p.end()));
}

dmat random_matrix(std::size_t r, std::size_t c, std::uint64_t seed) {
  rng g(seed);
  dmat m({r, c});
  for (auto& x : m) x = g.normal();
  return m;
}

double max_abs_diff(const auto& a, const auto& b) {
  REQUIRE(a.shape() == b.shape());
  double m = 0;
  for (std::size_t i = 0; i < a.size(); ++i)
    m = std::max(m, std::abs(static_cast<double>(a.data()[i]) - static_cast<double>(b.data()[i])));
  return m;
}

const token_sequence tokens = {3, 1, 4, 1, 5, 9, 2};

// A transformer whose every operation is linear: uniform causal attention per head (a running
// mean of the stream times W_lh), an MLP with identity activation, and no final norm. Every logit
// is linear in every component, so attribution patching must equal activation patching.
class linear_circuit {
 public:
  static constexpr std::size_t V = 7, d = 4, L = 2, H = 2, f = 3, T_max = 8;
  linear_circuit() {
    rng g(11);
    auto fill = [&](auto& t, double s) {
      for (auto& x : t) x = static_cast<float>(g.normal(0, s));
    };
    E_ = xt::xtensor<float, 2>({V, d});
    P_ = xt::xtensor<float, 2>({T_max, d});
    W_ = xt::xtensor<float, 4>({L, H, d, d});
    bO_ = xt::xtensor<float, 2>({L, d});
    Win_ = xt::xtensor<float, 3>({L, d, f});
    Wout_ = xt::xtensor<float, 3>({L, f, d});
    bout_ = xt::xtensor<float, 2>({L, d});
    U_ = xt::xtensor<float, 2>({d, V});
    fill(E_, 1);
    fill(P_, 1);
    fill(W_, 0.5);
    fill(bO_, 0.3);
    fill(Win_, 0.5);
    fill(Wout_, 0.5);
    fill(bout_, 0.3);
    fill(U_, 1);
  }
  std::size_t vocab_size() const { return V; }
  component_layout layout() const { return {L, H, d, f}; }
  tensor2 logits(token_span t) const { return run(t, 0, nullptr, {}, nullptr); }
  tensor3 hidden_states(token_span t) const {
    component_cache c;
    run(t, 0, nullptr, {}, &c);
    return c.residual;
  }
  tensor2 logits_from_hidden(token_span t, std::size_t layer, const tensor2& h) const {
    return run(t, layer, &h, {}, nullptr);
  }
  value_and_gradient<tensor2> hidden_gradient(token_span t, std::size_t layer, const tensor2& h,
                                              const output_seed& s) const {
    const auto g = gradients(t, s, layer, &h);
    return {g.value, tensor2(xt::view(g.residual, layer))};
  }
  component_cache run_with_cache(token_span t) const {
    component_cache c;
    run(t, 0, nullptr, {}, &c);
    return c;
  }
  tensor2 logits_with_patches(token_span t, std::span<const component_patch> p,
                              std::span<const std::size_t> rows) const {
    const tensor2 z = run(t, 0, nullptr, p, nullptr);
    if (rows.empty()) return z;
    tensor2 out({rows.size(), V});
    for (std::size_t i = 0; i < rows.size(); ++i) xt::view(out, i) = xt::view(z, rows[i]);
    return out;
  }
  component_gradient_result component_gradients(token_span t, const output_seed& s) const {
    return gradients(t, s, 0, nullptr);
  }
  logit_directions unembedding_directions(std::span<const token_id> k) const {
    logit_directions out{tensor2({k.size(), d}), std::vector<double>(k.size(), 0.0)};
    for (std::size_t i = 0; i < k.size(); ++i)
      for (std::size_t j = 0; j < d; ++j) out.directions(i, j) = U_(j, static_cast<std::size_t>(k[i]));
    return out;
  }
  tensor2 neuron_output_weights(std::size_t l) const { return xt::view(Wout_, l); }

 private:
  static void apply(std::span<const component_patch> patches, component_site site, std::size_t l, std::size_t index,
                    tensor2& x) {
    for (const auto& p : patches) {
      if (p.site != site || p.layer != l || (p.index != index)) continue;
      const std::size_t n = p.positions.empty() ? x.shape(0) : p.positions.size();
      for (std::size_t k = 0; k < n; ++k) {
        const std::size_t r = p.positions.empty() ? k : p.positions[k];
        for (std::size_t j = 0; j < x.shape(1); ++j) x(r, j) = (p.add ? x(r, j) : 0.0f) + p.values(k, j);
      }
    }
  }
  static tensor2 matmul(const tensor2& a, const auto& b) {
    tensor2 out = xt::zeros<float>({a.shape(0), b.shape(1)});
    for (std::size_t i = 0; i < a.shape(0); ++i)
      for (std::size_t k = 0; k < a.shape(1); ++k)
        for (std::size_t j = 0; j < b.shape(1); ++j) out(i, j) += a(i, k) * b(k, j);
    return out;
  }
  static tensor2 matmul_t(const tensor2& a, const auto& b) {  // a b^T
    tensor2 out = xt::zeros<float>({a.shape(0), b.shape(0)});
    for (std::size_t i = 0; i < a.shape(0); ++i)
      for (std::size_t k = 0; k < a.shape(1); ++k)
        for (std::size_t j = 0; j < b.shape(0); ++j) out(i, j) += a(i, k) * b(j, k);
    return out;
  }
  static tensor2 running_mean(const tensor2& x) {
    tensor2 out = xt::zeros<float>(x.shape());
    for (std::size_t t = 0; t < x.shape(0); ++t)
      for (std::size_t s = 0; s <= t; ++s)
        for (std::size_t j = 0; j < x.shape(1); ++j) out(t, j) += x(s, j) / static_cast<float>(t + 1);
    return out;
  }
  static tensor2 running_mean_t(const tensor2& dy) {  // the adjoint of running_mean
    tensor2 out = xt::zeros<float>(dy.shape());
    for (std::size_t t = 0; t < dy.shape(0); ++t)
      for (std::size_t s = 0; s <= t; ++s)
        for (std::size_t j = 0; j < dy.shape(1); ++j) out(s, j) += dy(t, j) / static_cast<float>(t + 1);
    return out;
  }
  tensor2 run(token_span t, std::size_t first, const tensor2* h, std::span<const component_patch> p,
              component_cache* c) const {
    const std::size_t T = t.size();
    tensor2 x({T, d});
    if (h != nullptr) {
      x = *h;
    } else {
      for (std::size_t i = 0; i < T; ++i) xt::view(x, i) = xt::view(E_, t[i]) + xt::view(P_, i);
    }
    if (c != nullptr) {
      c->residual = xt::zeros<float>({L + 1, T, d});
      c->token_embeddings = tensor2({T, d});
      c->position_embeddings = tensor2({T, d});
      for (std::size_t i = 0; i < T; ++i) {
        xt::view(c->token_embeddings, i) = xt::view(E_, t[i]);
        xt::view(c->position_embeddings, i) = xt::view(P_, i);
      }
      c->heads = xt::zeros<float>({L, H, T, d});
      c->attention_bias = bO_;
      c->mlps = xt::zeros<float>({L, T, d});
      c->neurons = xt::zeros<float>({L, T, f});
      c->final_scale.assign(T, 1.0);
    }
    apply(p, component_site::residual, first, 0, x);
    if (c != nullptr) xt::view(c->residual, first) = x;
    for (std::size_t l = first; l < L; ++l) {
      tensor2 mid = x;
      for (std::size_t hd = 0; hd < H; ++hd) {
        tensor2 in = x;
        apply(p, component_site::head_input, l, hd, in);
        tensor2 out = matmul(running_mean(in), xt::xtensor<float, 2>(xt::view(W_, l, hd)));
        apply(p, component_site::head, l, hd, out);
        if (c != nullptr) xt::view(c->heads, l, hd) = out;
        mid += out;
      }
      for (std::size_t i = 0; i < T; ++i) xt::view(mid, i) += xt::view(bO_, l);
      tensor2 in = mid;
      apply(p, component_site::mlp_input, l, 0, in);
      tensor2 act = matmul(in, xt::xtensor<float, 2>(xt::view(Win_, l)));
      for (const auto& q : p)  // neuron patches are per neuron: index = the neuron
        if (q.site == component_site::neuron && q.layer == l) {
          const std::size_t n = q.positions.empty() ? T : q.positions.size();
          for (std::size_t k = 0; k < n; ++k) {
            const std::size_t r = q.positions.empty() ? k : q.positions[k];
            act(r, q.index) = (q.add ? act(r, q.index) : 0.0f) + q.values(k, 0);
          }
        }
      tensor2 mlp = matmul(act, xt::xtensor<float, 2>(xt::view(Wout_, l)));
      for (std::size_t i = 0; i < T; ++i) xt::view(mlp, i) += xt::view(bout_, l);
      apply(p, component_site::mlp, l, 0, mlp);
      if (c != nullptr) {
        xt::view(c->neurons, l) = act;
        xt::view(c->mlps, l) = mlp;
      }
      x = mid + mlp;
      apply(p, component_site::residual, l + 1, 0, x);
      if (c != nullptr) xt::view(c->residual, l + 1) = x;
    }
    tensor2 z = matmul(x, U_);
    if (c != nullptr) c->logits = z;
    return z;
  }
  component_gradient_result gradients(token_span t, const output_seed& s, std::size_t first, const tensor2* h) const {
    component_gradient_result g;
    const tensor2 z = run(t, first, h, {}, &g.cache);
    const std::size_t T = t.size();
    const auto rows = s.rows(T);
    tensor2 zr({rows.size(), V}), dzr;
    for (std::size_t i = 0; i < rows.size(); ++i) xt::view(zr, i) = xt::view(z, rows[i]);
    g.value = s(zr, dzr);
    tensor2 dz = xt::zeros<float>({T, V});
    for (std::size_t i = 0; i < rows.size(); ++i) xt::view(dz, rows[i]) = xt::view(dzr, i);
    g.residual = xt::zeros<float>({L + 1, T, d});
    g.attention = xt::zeros<float>({L, T, d});
    g.neurons = xt::zeros<float>({L, T, f});
    tensor2 dx = matmul_t(dz, U_);
    for (std::size_t l = L; l-- > first;) {
      xt::view(g.residual, l + 1) = dx;
      const tensor2 dact = matmul_t(dx, xt::xtensor<float, 2>(xt::view(Wout_, l)));
      xt::view(g.neurons, l) = dact;
      const tensor2 dmid = dx + matmul_t(dact, xt::xtensor<float, 2>(xt::view(Win_, l)));
      xt::view(g.attention, l) = dmid;
      tensor2 dprev = dmid;
      for (std::size_t hd = 0; hd < H; ++hd)
        dprev += running_mean_t(matmul_t(dmid, xt::xtensor<float, 2>(xt::view(W_, l, hd))));
      dx = dprev;
    }
    xt::view(g.residual, first) = dx;
    return g;
  }
  xt::xtensor<float, 2> E_, P_, bO_, bout_, U_;
  xt::xtensor<float, 4> W_;
  xt::xtensor<float, 3> Win_, Wout_;
};

static_assert(ComponentModel<fmodel>);
static_assert(ComponentModel<linear_circuit>);
static_assert(!ComponentModel<models::linear_bag>);

}  // namespace

TEST_CASE("gpt2 components sum to the residual stream and reproduce the forward pass", "[circuits][gpt2]") {
  const auto m = double_model();
  const auto c = m.run_with_cache(tokens);
  const std::size_t L = 3, H = 2, T = tokens.size(), d = 8, f = 32;
  REQUIRE(m.layout().neurons == f);
  CHECK(max_abs_diff(c.residual, m.hidden_states(tokens)) < 1e-12);
  CHECK(max_abs_diff(c.logits, m.logits(tokens)) < 1e-12);
  for (std::size_t l = 0; l < L; ++l) {
    // residual[l + 1] = residual[l] + sum_h heads + attention bias + mlp
    xt::xtensor<double, 2> sum = xt::view(c.residual, l);
    for (std::size_t h = 0; h < H; ++h) sum += xt::view(c.heads, l, h);
    for (std::size_t t = 0; t < T; ++t) xt::view(sum, t) += xt::view(c.attention_bias, l) + xt::view(c.mlps, l, t);
    CHECK(max_abs_diff(sum, xt::xtensor<double, 2>(xt::view(c.residual, l + 1))) < 1e-12);
    // the MLP's output is its neurons through mlp.c_proj, plus the bias
    const auto w = m.neuron_output_weights(l);
    const auto bias = m.parameter(fmt::format("h.{}.mlp.c_proj.bias", l));
    for (std::size_t t = 0; t < T; ++t)
      for (std::size_t j = 0; j < d; ++j) {
        double v = bias[j];
        for (std::size_t n = 0; n < f; ++n) v += c.neurons(l, t, n) * w(n, j);
        CHECK(std::abs(v - c.mlps(l, t, j)) < 1e-12);
      }
  }
  // ln_f's divisor, from the final stream by hand
  for (std::size_t t = 0; t < T; ++t) {
    double mean = 0, var = 0;
    for (std::size_t j = 0; j < d; ++j) mean += c.residual(L, t, j) / d;
    for (std::size_t j = 0; j < d; ++j) var += (c.residual(L, t, j) - mean) * (c.residual(L, t, j) - mean) / d;
    CHECK(std::abs(c.final_scale[t] - std::sqrt(var + 1e-5)) < 1e-12);
  }
}

TEST_CASE("gpt2 patch sites agree with independent paths through the model", "[circuits][gpt2]") {
  const auto m = double_model();
  const auto c = m.run_with_cache(tokens);
  const std::size_t T = tokens.size(), d = 8;
  using patch = dmodel::patch_type;
  const auto z = m.logits(tokens);

  SECTION("no patch, and every site replaced by its own value, give the plain logits") {
    CHECK(max_abs_diff(m.logits_with_patches(tokens, {}), z) < 1e-12);
    std::vector<patch> own;
    own.push_back({component_site::residual, 1, 0, {}, xt::view(c.residual, 1), false});
    own.push_back({component_site::head, 1, 1, {}, xt::view(c.heads, 1, 1), false});
    own.push_back({component_site::mlp, 2, 0, {0, 3}, xt::view(c.mlps, 2, xt::keep(0, 3)), false});
    dmat neuron({T, 1});
    for (std::size_t t = 0; t < T; ++t) neuron(t, 0) = c.neurons(0, t, 5);
    own.push_back({component_site::neuron, 0, 5, {}, neuron, false});
    own.push_back({component_site::head_input, 2, 0, {}, xt::view(c.residual, 2), false});
    own.push_back({component_site::head_input, 0, 1, {}, dmat(xt::zeros<double>(std::array<std::size_t, 2>{T, d})), true});
    CHECK(max_abs_diff(m.logits_with_patches(tokens, own), z) < 1e-10);
  }
  SECTION("a head replaced by zero is the head masked out") {
    const patch p{component_site::head, 1, 0, {}, dmat(xt::zeros<double>(std::array<std::size_t, 2>{T, d})), false};
    dmat mask = xt::ones<double>({3, 2});
    mask(1, 0) = 0;
    CHECK(max_abs_diff(m.logits_with_patches(tokens, std::span(&p, 1)), m.logits_with_head_mask(tokens, mask)) < 1e-10);
  }
  SECTION("residual, MLP and neuron patches equal running on from the edited stream") {
    const dmat delta = random_matrix(2, d, 3);
    dmat h = xt::view(c.residual, 1);
    for (std::size_t j = 0; j < d; ++j) {
      h(2, j) = delta(0, j);
      h(5, j) += delta(1, j);
    }
    const patch r1{component_site::residual, 1, 0, {2}, xt::view(delta, xt::keep(0)), false};
    const patch r2{component_site::residual, 1, 0, {5}, xt::view(delta, xt::keep(1)), true};
    const std::vector<patch> both = {r1, r2};
    CHECK(max_abs_diff(m.logits_with_patches(tokens, both), m.logits_from_hidden(tokens, 1, h)) < 1e-10);

    // the MLP of block 0 at position 4 replaced: the stream entering block 1 moves by the difference
    dmat stream = xt::view(c.residual, 1);
    for (std::size_t j = 0; j < d; ++j) stream(4, j) += delta(0, j) - c.mlps(0, 4, j);
    const patch mp{component_site::mlp, 0, 0, {4}, xt::view(delta, xt::keep(0)), false};
    CHECK(max_abs_diff(m.logits_with_patches(tokens, std::span(&mp, 1)), m.logits_from_hidden(tokens, 1, stream)) <
          1e-10);

    // neuron 7 of block 1 set to 2.5 at positions 1 and 6: the stream entering block 2 moves along its output row
    const auto w = m.neuron_output_weights(1);
    dmat s2 = xt::view(c.residual, 2);
    for (const std::size_t t : {1, 6})
      for (std::size_t j = 0; j < d; ++j) s2(t, j) += (2.5 - c.neurons(1, t, 7)) * w(7, j);
    const patch np{component_site::neuron, 1, 7, {1, 6}, xt::xtensor<double, 2>({2, 1}, 2.5), false};
    CHECK(max_abs_diff(m.logits_with_patches(tokens, std::span(&np, 1)), m.logits_from_hidden(tokens, 2, s2)) < 1e-10);
  }
  SECTION("shifting what every head and the MLP read, and the stream after, is shifting the stream") {
    const dmat delta = random_matrix(T, d, 5);
    std::vector<patch> reads = {{component_site::head_input, 1, 0, {}, delta, true},
                                {component_site::head_input, 1, 1, {}, delta, true},
                                {component_site::mlp_input, 1, 0, {}, delta, true},
                                {component_site::residual, 2, 0, {}, delta, true}};
    const dmat h = xt::view(c.residual, 1) + delta;
    CHECK(max_abs_diff(m.logits_with_patches(tokens, reads), m.logits_from_hidden(tokens, 1, h)) < 1e-10);
    // one head alone reading the shifted stream is a different model
    reads.erase(reads.begin() + 1, reads.end());
    CHECK(max_abs_diff(m.logits_with_patches(tokens, reads), m.logits_from_hidden(tokens, 1, h)) > 1e-3);
  }
  SECTION("bad patches are refused with the reason") {
    const patch far{component_site::head, 3, 0, {}, dmat(xt::zeros<double>(std::array<std::size_t, 2>{T, d})), false};
    REQUIRE_THROWS_MATCHES(m.logits_with_patches(tokens, std::span(&far, 1)), shape_error,
                           what_contains("patch 0 (head) has layer 3, expected < 3"));
    const patch head{component_site::head_input, 0, 2, {}, dmat(xt::zeros<double>(std::array<std::size_t, 2>{T, d})), false};
    REQUIRE_THROWS_MATCHES(m.logits_with_patches(tokens, std::span(&head, 1)), shape_error,
                           what_contains("has head 2, expected < 2"));
    const patch twice{component_site::mlp, 0, 0, {1, 1}, dmat(xt::zeros<double>(std::array<std::size_t, 2>{2, d})), false};
    REQUIRE_THROWS_MATCHES(m.logits_with_patches(tokens, std::span(&twice, 1)), shape_error,
                           what_contains("positions must be distinct"));
    const patch shape{component_site::neuron, 0, 0, {}, dmat(xt::zeros<double>(std::array<std::size_t, 2>{T, 2})), false};
    REQUIRE_THROWS_MATCHES(m.logits_with_patches(tokens, std::span(&shape, 1)), shape_error,
                           what_contains("values must be [7, 1], got [7, 2]"));
  }
}

TEST_CASE("gpt2 component gradients agree with central differences", "[circuits][gpt2]") {
  const auto m = double_model();
  const output_seed seed(target::contrast(2, 5, target_kind::log_probability));
  const auto g = m.component_gradients(tokens, seed);
  const std::size_t T = tokens.size(), d = 8, f = 32;
  using patch = dmodel::patch_type;
  // A contrast of log-probabilities is the logit difference (the normaliser cancels): read it in double.
  auto value = [&](const std::vector<patch>& p) {
    const auto z = m.logits_with_patches(tokens, p);
    return z(T - 1, 2) - z(T - 1, 5);
  };
  const auto z = m.logits(tokens);
  CHECK(g.value == Approx(z(T - 1, 2) - z(T - 1, 5)).margin(1e-12));
  auto directional = [&](component_site site, std::size_t layer, std::size_t index, const dmat& v) {
    const double eps = 1e-5;
    const double up = value({{site, layer, index, {}, eps * v, true}});
    const double down = value({{site, layer, index, {}, -eps * v, true}});
    return (up - down) / (2 * eps);
  };
  for (std::uint64_t s = 0; s < 3; ++s) {
    const dmat v = random_matrix(T, d, 100 + s);
    for (std::size_t l = 0; l <= 3; ++l) {
      const double analytic = xt::sum(xt::view(g.residual, l) * v)();
      CHECK(directional(component_site::residual, l, 0, v) == Approx(analytic).epsilon(1e-6).margin(1e-8));
    }
    for (std::size_t l = 0; l < 3; ++l) {
      const double analytic = xt::sum(xt::view(g.attention, l) * v)();
      CHECK(directional(component_site::head, l, s % 2, v) == Approx(analytic).epsilon(1e-6).margin(1e-8));
      CHECK(directional(component_site::mlp, l, 0, v) ==
            Approx(xt::sum(xt::view(g.residual, l + 1) * v)()).epsilon(1e-6).margin(1e-8));
      const dmat nv = random_matrix(T, 1, 200 + s);
      const std::size_t n = (5 * s + l) % f;
      double na = 0;
      for (std::size_t t = 0; t < T; ++t) na += g.neurons(l, t, n) * nv(t, 0);
      CHECK(directional(component_site::neuron, l, n, nv) == Approx(na).epsilon(1e-6).margin(1e-8));
    }
  }
}

TEST_CASE("direct logit attribution is exact with the final scale frozen", "[circuits][dla]") {
  SECTION("the identity, in double") {
    const auto m = double_model();
    const auto c = m.run_with_cache(tokens);
    const std::vector<token_id> ids = {6, 11};
    const auto dirs = m.unembedding_directions(ids);
    const std::size_t L = 3, H = 2, T = tokens.size(), d = 8;
    for (std::size_t t = 0; t < T; ++t)
      for (std::size_t k = 0; k < ids.size(); ++k) {
        auto share = [&](auto&& v) {
          double s = 0;
          for (std::size_t j = 0; j < d; ++j) s += v(j) * dirs.directions(k, j);
          return s / c.final_scale[t];
        };
        double total = dirs.offsets[k] + share(xt::view(c.token_embeddings, t)) + share(xt::view(c.position_embeddings, t));
        for (std::size_t l = 0; l < L; ++l) {
          for (std::size_t h = 0; h < H; ++h) total += share(xt::view(c.heads, l, h, t));
          total += share(xt::view(c.attention_bias, l)) + share(xt::view(c.mlps, l, t));
        }
        CHECK(std::abs(total - c.logits(t, static_cast<std::size_t>(ids[k]))) < 1e-11);
      }
  }
  SECTION("the decomposition, in float") {
    const auto m = float_model();
    const auto r = direct_logit_attribution(m, tokens, 6, 11, {.neurons = true});
    const auto z = m.logits(tokens);
    CHECK(r.logit_diff == Approx(z(6, 6) - z(6, 11)).margin(1e-6));
    CHECK(r.total == Approx(r.logit_diff).margin(1e-4));
    REQUIRE(r.components.size() == 2 + 3 * (2 + 2) + 1);
    CHECK(r.components[0].name == "embed");
    CHECK(r.components[1].name == "pos_embed");
    CHECK(r.components[2].name == "L0H0");
    CHECK(r.components[4].name == "attn_bias0");
    CHECK(r.components[5].name == "mlp0");
    CHECK(r.components.back().name == "ln_final_bias");
    // the bias share is ln_f.bias . (wte[6] - wte[11]), by hand
    const auto b = m.parameter("ln_f.bias");
    const auto wte = m.parameter("wte.weight");
    double offset = 0;
    for (std::size_t j = 0; j < 8; ++j) offset += b[j] * (wte[6 * 8 + j] - wte[11 * 8 + j]);
    CHECK(r.components.back().contribution == Approx(offset).margin(1e-6));
    // an MLP's share not carried by its neurons is its output bias's share
    const auto dirs = m.unembedding_directions(std::vector<token_id>{6, 11});
    for (std::size_t l = 0; l < 3; ++l) {
      const auto bo = m.parameter(fmt::format("h.{}.mlp.c_proj.bias", l));
      double s = 0;
      for (std::size_t j = 0; j < 8; ++j) s += bo[j] * (dirs.directions(0, j) - dirs.directions(1, j));
      CHECK(r.mlp_bias[l] == Approx(s / r.final_scale).margin(1e-4));
    }
    // a contrast with itself is zero everywhere
    const auto same = direct_logit_attribution(m, tokens, 6, 6);
    for (const auto& comp : same.components) CHECK(comp.contribution == 0.0);
  }
}

TEST_CASE("activation patching restores what it patches", "[circuits][patching]") {
  const auto m = float_model();
  const token_sequence clean = {3, 1, 4, 1, 5, 9, 2};
  token_sequence corrupt = clean;
  corrupt[2] = 8;  // one position differs
  const target metric = target::contrast(6, 11, target_kind::logit);
  const auto r = activation_patching(m, clean, corrupt, metric, {.level = patch_level::residual});
  REQUIRE(r.values.shape() == (std::array<std::size_t, 2>{3, 7}));
  CHECK(r.clean_value == Approx(metric.value_of(m.logits(clean))).margin(1e-6));
  CHECK(r.corrupt_value == Approx(metric.value_of(m.logits(corrupt))).margin(1e-6));
  // At the embeddings only position 2 differs: patching it restores everything, elsewhere nothing.
  for (std::size_t p = 0; p < 7; ++p) CHECK(r.restored(0, p) == Approx(p == 2 ? 1.0 : 0.0).margin(1e-5));
  // Before position 2 no block sees the difference at any layer.
  for (std::size_t l = 0; l < 3; ++l)
    for (std::size_t p = 0; p < 2; ++p) CHECK(r.restored(l, p) == Approx(0.0).margin(1e-5));
  CHECK(r.model_calls == 2 + 21);

  // Patching clean activations everywhere restores the clean logits exactly: the whole stream at block 1.
  const auto cc = m.run_with_cache(clean);
  const component_patch all{component_site::residual, 1, 0, {}, xt::view(cc.residual, 1), false};
  CHECK(max_abs_diff(m.logits_with_patches(corrupt, std::span(&all, 1)), cc.logits) < 1e-5);

  // Each head entry is the corrupted run with that head's clean output.
  const auto heads = activation_patching(m, clean, corrupt, metric, {.level = patch_level::head});
  REQUIRE(heads.values.shape() == (std::array<std::size_t, 2>{3, 2}));
  const component_patch h{component_site::head, 2, 1, {}, xt::view(cc.heads, 2, 1), false};
  CHECK(heads.values(2, 1) == Approx(metric.value_of(m.logits_with_patches(corrupt, std::span(&h, 1)))).margin(1e-6));
  // a single block, and the same result for any thread count
  const auto one = activation_patching(m, clean, corrupt, metric,
                                       {.level = patch_level::neuron, .layer = 1, .exec = {.threads = 1}});
  const auto two = activation_patching(m, clean, corrupt, metric,
                                       {.level = patch_level::neuron, .layer = 1, .exec = {.threads = 2}});
  REQUIRE(one.values.shape() == (std::array<std::size_t, 2>{1, 32}));
  CHECK(one.layers == std::vector<std::size_t>{1});
  CHECK(max_abs_diff(one.values, two.values) == 0.0);

  REQUIRE_THROWS_MATCHES(activation_patching(m, clean, token_sequence{1, 2}, metric), error,
                         what_contains("same length"));
  REQUIRE_THROWS_MATCHES(activation_patching(m, clean, corrupt, metric, {.layer = 3}), shape_error,
                         what_contains("layer must be < 3"));
}

TEST_CASE("attribution patching equals activation patching where the metric is linear", "[circuits][patching]") {
  const linear_circuit m;
  const token_sequence clean = {1, 4, 2, 6, 3}, corrupt = {5, 4, 0, 6, 1};
  const target metric = target::contrast(2, 5, target_kind::logit);  // linear in every component here
  for (const auto level : {patch_level::residual, patch_level::head, patch_level::mlp, patch_level::neuron}) {
    INFO(to_string(level));
    const auto act = activation_patching(m, clean, corrupt, metric, {.level = level});
    const auto att = attribution_patching(m, clean, corrupt, metric, {.level = level});
    CHECK(att.model_calls == 3);
    CHECK(att.corrupt_value == Approx(act.corrupt_value).margin(1e-5));
    CHECK(max_abs_diff(act.values, att.values) < 1e-4);
  }
  // and the sums of the linear model's parts are its logits
  const auto r = direct_logit_attribution(m, clean, 2, 5);
  CHECK(r.total == Approx(r.logit_diff).margin(1e-5));
  // On GPT-2 the metric is not linear: the estimate differs from real patching.
  const auto g = float_model();
  const auto act = activation_patching(g, clean, corrupt, metric, {.level = patch_level::head});
  const auto att = attribution_patching(g, clean, corrupt, metric, {.level = patch_level::head});
  CHECK(max_abs_diff(act.values, att.values) > 1e-4);
}

TEST_CASE("path patching to every reader of a head is patching the head", "[circuits][patching]") {
  const auto m = float_model();
  const token_sequence clean = {3, 1, 4, 1, 5, 9, 2}, corrupt = {3, 7, 4, 0, 5, 9, 2};
  const target metric = target::contrast(6, 11, target_kind::logit);
  // Every head and MLP of blocks 1-2 and the final stream read the senders of block 0.
  path_patching_options all;
  for (std::size_t l = 1; l < 3; ++l) {
    for (std::size_t h = 0; h < 2; ++h) all.receivers.push_back({component_site::head_input, l, h});
    all.receivers.push_back({component_site::mlp_input, l, 0});
  }
  all.receivers.push_back({component_site::mlp_input, 0, 0});
  all.receivers.push_back({component_site::residual, 3, 0});
  const auto path = path_patching(m, clean, corrupt, metric, all);
  // noising: the corrupted head output in the clean run
  const auto noise = activation_patching(m, corrupt, clean, metric, {.level = patch_level::head, .layer = 0});
  for (std::size_t h = 0; h < 2; ++h) CHECK(path.values(0, h) == Approx(noise.values(0, h)).margin(1e-4));
  CHECK(std::isnan(path.values(1, 0)));  // not upstream of the block-1 receivers
  // The direct path to the logits only carries less than everything, in general.
  const auto direct = path_patching(m, clean, corrupt, metric);
  CHECK(!std::isnan(direct.values(2, 1)));
  CHECK(std::abs(direct.values(0, 0) - path.values(0, 0)) > 1e-5);
  REQUIRE_THROWS_MATCHES(
      path_patching(m, clean, corrupt, metric, {.receivers = {{component_site::head, 1, 0}}}), error,
      what_contains("a receiver is a head_input, an mlp_input or the final residual"));
}

TEST_CASE("component ablation: zero is masking, resampling oneself changes nothing", "[circuits][ablation]") {
  const auto m = float_model();
  const target metric = target::contrast(6, 11, target_kind::logit);
  const auto zero = component_ablation(m, tokens, metric, {.level = patch_level::head});
  tensor2 mask = xt::ones<float>({3, 2});
  mask(2, 0) = 0;
  CHECK(zero.values(2, 0) == Approx(metric.value_of(m.logits_with_head_mask(tokens, mask))).margin(1e-5));
  CHECK(zero.restored(2, 0) == Approx(zero.values(2, 0) - zero.clean_value));
  const std::vector<token_sequence> self = {tokens};
  const auto same = component_ablation(
      m, tokens, metric, {.level = patch_level::mlp, .kind = ablation_kind::resample, .reference = self, .samples = 2});
  for (const double v : same.restored) CHECK(v == Approx(0.0).margin(1e-5));
  // mean over one constant-free sequence: the neuron's mean over its own tokens
  const auto mean = component_ablation(
      m, tokens, metric, {.level = patch_level::neuron, .kind = ablation_kind::mean, .layer = 0, .reference = self});
  double avg = 0;
  const auto c = m.run_with_cache(tokens);
  for (std::size_t t = 0; t < tokens.size(); ++t) avg += c.neurons(0, t, 3) / tokens.size();
  const component_patch p{component_site::neuron, 0, 3, {}, xt::xtensor<float, 2>({7, 1}, static_cast<float>(avg)),
                          false};
  CHECK(mean.values(0, 3) == Approx(metric.value_of(m.logits_with_patches(tokens, std::span(&p, 1)))).margin(1e-5));
  // resampling is deterministic under its seed
  const std::vector<token_sequence> refs = {{1, 2, 3, 4, 5, 6, 7, 8}, {8, 7, 6, 5, 4, 3, 2}, {0, 0, 1, 1, 2, 2, 3}};
  const ablation_options o{.level = patch_level::head, .kind = ablation_kind::resample, .reference = refs, .seed = 4};
  CHECK(max_abs_diff(component_ablation(m, tokens, metric, o).values, component_ablation(m, tokens, metric, o).values) ==
        0.0);
  REQUIRE_THROWS_MATCHES(component_ablation(m, tokens, metric, {.kind = ablation_kind::mean}), error,
                         what_contains("needs reference sequences"));
}

TEST_CASE("neuron analysis finds a planted property and measures ablations", "[circuits][neurons]") {
  const auto m = float_model();
  std::vector<token_sequence> data;
  rng g(3);
  for (int s = 0; s < 30; ++s) {
    token_sequence t(6);
    for (auto& x : t) x = static_cast<token_id>(g.below(13));
    data.push_back(t);
  }
  const auto table = neuron_activations(m, std::span<const token_sequence>(data));
  REQUIRE(table.values.shape() == (std::array<std::size_t, 2>{180, 96}));
  // The property: neuron 9 of block 2 is above its median.
  const std::size_t col = table.column(2, 9);
  std::vector<float> a;
  for (std::size_t r = 0; r < 180; ++r) a.push_back(table.values(r, col));
  std::vector<float> sorted = a;
  std::sort(sorted.begin(), sorted.end());
  const float median = sorted[90];
  std::vector<std::vector<double>> labels(30, std::vector<double>(6));
  for (std::size_t r = 0; r < 180; ++r) labels[table.sequence[r]][table.position[r]] = a[r] >= median ? 1.0 : 0.0;
  labels[0][0] = std::nan("");  // not scored
  const auto mi = rank_neurons(table, labels, {.measure = neuron_measure::mutual_information, .top = 5});
  REQUIRE(mi.neurons.size() == 5);
  CHECK(mi.tokens == 179);
  CHECK((mi.neurons[0].layer == 2 && mi.neurons[0].neuron == 9));
  CHECK(mi.neurons[0].mutual_information > 0.9);  // about one bit: the bins split at the median
  const auto corr = rank_neurons(table, labels);
  for (std::size_t i = 1; i < corr.neurons.size(); ++i)
    CHECK(std::abs(corr.neurons[i - 1].correlation) >= std::abs(corr.neurons[i].correlation));
  // the top activations are the largest values, in order
  const auto top = top_activations(table, 2, 9, 3);
  REQUIRE(top.size() == 3);
  CHECK(top[0].activation == Approx(sorted.back()));
  CHECK(top[1].activation <= top[0].activation);

  const target metric = target::contrast(6, 11, target_kind::logit);
  const auto ab = neuron_ablation(m, std::span<const token_sequence>(data), metric, 2, 9);
  const component_patch p{component_site::neuron, 2, 9, {}, xt::zeros<float>({6, 1}), false};
  CHECK(ab.ablated[4] == Approx(metric.value_of(m.logits_with_patches(data[4], std::span(&p, 1)))).margin(1e-5));
  CHECK(ab.original[4] == Approx(metric.value_of(m.logits(data[4]))).margin(1e-5));
  double mc = 0;
  for (std::size_t s = 0; s < 30; ++s) mc += (ab.ablated[s] - ab.original[s]) / 30;
  CHECK(ab.mean_change == Approx(mc).margin(1e-9));
  const auto am = neuron_ablation(m, std::span<const token_sequence>(data), metric, 2, 9, ablation_kind::mean, &table);
  CHECK(am.replacement == Approx(std::accumulate(a.begin(), a.end(), 0.0) / 180).margin(1e-5));
  REQUIRE_THROWS_MATCHES(table.column(2, 40), error, what_contains("neuron 40 out of range"));
}

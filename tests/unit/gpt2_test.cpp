// Tests of the reference GPT-2 (models/gpt2.hpp) and the Adam trainer (models/adam.hpp).
//
// The model is checked three ways: (1) its logits, hidden states, attention probabilities and
// K-FAC inputs against a naive loop implementation of the GPT-2 formulas written below, in double;
// (2) every gradient it provides against central finite differences of its own forward pass, in
// double (basic_gpt2<double> runs the same code as gpt2); (3) the float model against the double
// one. Loading is checked on files written here with io::write_safetensors.
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <new>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

#include "glassbox/core/execution.hpp"
#include "glassbox/io/safetensors.hpp"
#include "glassbox/models/adam.hpp"
#include "glassbox/models/gpt2.hpp"
#include "glassbox/models/linear_bag.hpp"
#include "test_support.hpp"

// ---- allocation counting (operator new only; used to show that passes do not allocate per layer) ----
namespace {
std::atomic<std::size_t> new_calls{0};
}  // namespace

// Every unaligned form is replaced, so that each allocation and its deallocation go through the same
// malloc / free pair: AddressSanitizer supplies its own versions of the forms a program does not
// replace, and its nothrow new (Catch2 allocates with it) paired with this delete was a mismatch.
void* operator new(std::size_t n) {
  new_calls.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n) { return ::operator new(n); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  new_calls.fetch_add(1, std::memory_order_relaxed);
  return std::malloc(n == 0 ? 1 : n);
}
void* operator new[](std::size_t n, const std::nothrow_t& t) noexcept { return ::operator new(n, t); }
// GCC flags free() on a pointer from a (replaced) operator new; the pair malloc / free is consistent here.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpragmas"
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
#pragma GCC diagnostic pop

namespace {

using glassbox::token_id;
using glassbox::token_span;
using glassbox::training_example;
using glassbox::models::gpt2_config;
using glassbox::test::what_contains;
using dmodel = glassbox::models::basic_gpt2<double>;
using fmodel = glassbox::models::gpt2;
using dvec = xt::xtensor<double, 1>;
using dmat = xt::xtensor<double, 2>;
using dten3 = xt::xtensor<double, 3>;
using dten4 = xt::xtensor<double, 4>;

// A small model: 2 blocks, 2 heads of width 4, MLP width 32, 13 tokens, 10 positions.
gpt2_config tiny_config() {
  gpt2_config c;
  c.n_layer = 2;
  c.n_head = 2;
  c.n_embd = 8;
  c.n_positions = 10;
  c.vocab_size = 13;
  return c;
}

// Parameters far from GPT-2's small initialisation, so that every nonlinearity (softmax, GELU,
// LayerNorm) is exercised away from its linear regime: N(0, 0.4), LayerNorm weights 1 + N(0, 0.2).
std::vector<double> test_parameters(const gpt2_config& c, std::uint64_t seed) {
  const auto table = glassbox::models::gpt2_parameter_table(c);
  std::vector<double> p(table.back().offset + table.back().size);
  glassbox::rng g(seed);
  for (const auto& t : table) {
    const bool ln_weight = t.name.find("ln_") != std::string::npos && t.name.ends_with(".weight");
    for (std::size_t i = 0; i < t.size; ++i) p[t.offset + i] = ln_weight ? 1.0 + g.normal(0, 0.2) : g.normal(0, 0.4);
  }
  return p;
}

dmodel double_model(const gpt2_config& c, std::uint64_t seed = 7) { return dmodel(c, test_parameters(c, seed)); }

fmodel float_copy(const dmodel& m) {
  std::vector<float> p(m.parameters().begin(), m.parameters().end());
  return fmodel(m.config(), p);
}

template <class T>
std::vector<double> flat(const T& t) {
  return std::vector<double>(t.begin(), t.end());
}

// ||a - b|| / ||b||, the relative error of a against the reference b.
double relative_error(const std::vector<double>& a, const std::vector<double>& b) {
  REQUIRE(a.size() == b.size());
  double num = 0, den = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    num += (a[i] - b[i]) * (a[i] - b[i]);
    den += b[i] * b[i];
  }
  return std::sqrt(num) / std::max(std::sqrt(den), 1e-300);
}

double max_abs_difference(const std::vector<double>& a, const std::vector<double>& b) {
  REQUIRE(a.size() == b.size());
  double m = 0;
  for (std::size_t i = 0; i < a.size(); ++i) m = std::max(m, std::abs(a[i] - b[i]));
  return m;
}

// Central finite differences of f at x over every entry: (f(x + h e_i) - f(x - h e_i)) / 2h.
// In double with h = 1e-5 the truncation error is ~h^2 |f'''| ~ 1e-10 and the rounding error
// ~1e-16 |f| / h ~ 1e-11, far below the 1e-6 acceptance bound.
template <class X, class F>
std::vector<double> finite_differences(X x, F&& f, double h = 1e-5) {
  std::vector<double> g(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) {
    const auto keep = x.data()[i];
    x.data()[i] = keep + h;
    const double up = f(x);
    x.data()[i] = keep - h;
    const double down = f(x);
    x.data()[i] = keep;
    g[i] = (up - down) / (2 * h);
  }
  return g;
}

// The seeds of the tests, in any precision: sum over `rows` of log softmax(z_r)[token_r] plus
// 0.3 z_r[token_r + 1] (a mix of a log-probability and a logit, so both kinds of derivative appear).
template <class S>
glassbox::models::basic_output_seed<S> mixed_seed(std::vector<std::size_t> rows, std::vector<token_id> tokens) {
  return glassbox::models::basic_output_seed<S>(
      [rows](std::size_t) { return rows; },
      [tokens](const xt::xtensor<S, 2>& z, xt::xtensor<S, 2>& dz) {
        const std::size_t v = z.shape(1);
        dz = xt::xtensor<S, 2>::from_shape(z.shape());
        double total = 0;
        for (std::size_t r = 0; r < z.shape(0); ++r) {
          double mx = -1e300;
          for (std::size_t j = 0; j < v; ++j) mx = std::max(mx, static_cast<double>(z(r, j)));
          double s = 0;
          for (std::size_t j = 0; j < v; ++j) s += std::exp(static_cast<double>(z(r, j)) - mx);
          const double lse = mx + std::log(s);
          const auto a = static_cast<std::size_t>(tokens[r]), b = (a + 1) % v;
          total += static_cast<double>(z(r, a)) - lse + 0.3 * static_cast<double>(z(r, b));
          for (std::size_t j = 0; j < v; ++j) dz(r, j) = static_cast<S>(-std::exp(static_cast<double>(z(r, j)) - lse));
          dz(r, a) += S(1);
          dz(r, b) += static_cast<S>(0.3);
        }
        return total;
      });
}

// The same scalar evaluated from a whole logits matrix (for finite differences).
double mixed_value(const dmat& logits, const std::vector<std::size_t>& rows, const std::vector<token_id>& tokens) {
  dmat selected = dmat::from_shape({rows.size(), logits.shape(1)});
  for (std::size_t k = 0; k < rows.size(); ++k)
    for (std::size_t j = 0; j < logits.shape(1); ++j) selected(k, j) = logits(rows[k], j);
  dmat ignored;
  return mixed_seed<double>(rows, tokens)(selected, ignored);
}

// ---- an independent naive implementation of the GPT-2 formulas ----

struct naive_result {
  std::vector<std::vector<double>> hidden;  // L + 1 residual streams, [T * d]
  std::vector<std::vector<double>> attn;    // per layer [H * T * T]
  std::vector<std::vector<double>> a1, z, a2, g;  // per layer: ln_1 out, merged heads, ln_2 out, gelu out
  std::vector<double> logits;               // [T * V]
};

// Reads the model's parameters by public name and applies the formulas with plain loops.
naive_result naive_forward(const dmodel& m, const std::vector<token_id>& tokens, const dmat* embeddings = nullptr,
                           const std::vector<double>* mask = nullptr) {
  const auto& c = m.config();
  const std::size_t T = embeddings != nullptr ? embeddings->shape(0) : tokens.size();
  const std::size_t d = c.n_embd, H = c.n_head, dh = d / H, f = c.inner(), V = c.vocab_size;
  auto P = [&](const std::string& name) { return m.parameter(name); };
  auto layer_norm = [&](const std::vector<double>& x, const std::string& name) {
    const auto w = P(name + ".weight"), b = P(name + ".bias");
    std::vector<double> y(T * d);
    for (std::size_t t = 0; t < T; ++t) {
      double mean = 0, var = 0;
      for (std::size_t k = 0; k < d; ++k) mean += x[t * d + k];
      mean /= static_cast<double>(d);
      for (std::size_t k = 0; k < d; ++k) var += (x[t * d + k] - mean) * (x[t * d + k] - mean);
      var /= static_cast<double>(d);
      for (std::size_t k = 0; k < d; ++k)
        y[t * d + k] = (x[t * d + k] - mean) / std::sqrt(var + c.layer_norm_epsilon) * w[k] + b[k];
    }
    return y;
  };
  auto linear = [&](const std::vector<double>& x, std::size_t in, const std::string& name, std::size_t out) {
    const auto w = P(name + ".weight"), b = P(name + ".bias");
    std::vector<double> y(T * out);
    for (std::size_t t = 0; t < T; ++t)
      for (std::size_t j = 0; j < out; ++j) {
        double s = b[j];
        for (std::size_t k = 0; k < in; ++k) s += x[t * in + k] * w[k * out + j];
        y[t * out + j] = s;
      }
    return y;
  };
  naive_result r;
  std::vector<double> h(T * d);
  const auto wte = P("wte.weight"), wpe = P("wpe.weight");
  for (std::size_t t = 0; t < T; ++t)
    for (std::size_t k = 0; k < d; ++k)
      h[t * d + k] = (embeddings != nullptr ? (*embeddings)(t, k) : wte[static_cast<std::size_t>(tokens[t]) * d + k]) +
                     wpe[t * d + k];
  r.hidden.push_back(h);
  for (std::size_t l = 0; l < c.n_layer; ++l) {
    const std::string p = "h." + std::to_string(l) + ".";
    const auto a = layer_norm(h, p + "ln_1");
    const auto qkv = linear(a, d, p + "attn.c_attn", 3 * d);
    std::vector<double> z(T * d, 0.0), probs(H * T * T, 0.0);
    for (std::size_t hd = 0; hd < H; ++hd) {
      const double m_h = mask != nullptr ? (*mask)[l * H + hd] : 1.0;
      for (std::size_t i = 0; i < T; ++i) {
        std::vector<double> s(i + 1);
        double mx = -1e300;
        for (std::size_t j = 0; j <= i; ++j) {
          double dot = 0;
          for (std::size_t k = 0; k < dh; ++k) dot += qkv[i * 3 * d + hd * dh + k] * qkv[j * 3 * d + d + hd * dh + k];
          s[j] = dot / std::sqrt(static_cast<double>(dh));
          mx = std::max(mx, s[j]);
        }
        double total = 0;
        for (std::size_t j = 0; j <= i; ++j) total += std::exp(s[j] - mx);
        for (std::size_t j = 0; j <= i; ++j) probs[(hd * T + i) * T + j] = std::exp(s[j] - mx) / total;
        for (std::size_t k = 0; k < dh; ++k) {
          double o = 0;
          for (std::size_t j = 0; j <= i; ++j) o += m_h * probs[(hd * T + i) * T + j] * qkv[j * 3 * d + 2 * d + hd * dh + k];
          z[i * d + hd * dh + k] = o;
        }
      }
    }
    const auto attn_out = linear(z, d, p + "attn.c_proj", d);
    for (std::size_t i = 0; i < T * d; ++i) h[i] += attn_out[i];
    const auto a2 = layer_norm(h, p + "ln_2");
    auto u = linear(a2, d, p + "mlp.c_fc", f);
    for (auto& x : u) x = 0.5 * x * (1 + std::tanh(std::sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
    const auto mlp_out = linear(u, f, p + "mlp.c_proj", d);
    for (std::size_t i = 0; i < T * d; ++i) h[i] += mlp_out[i];
    r.a1.push_back(a);
    r.z.push_back(z);
    r.a2.push_back(a2);
    r.g.push_back(u);
    r.attn.push_back(probs);
    r.hidden.push_back(h);
  }
  const auto hf = layer_norm(h, "ln_f");
  const auto head = c.tie_word_embeddings ? wte : P("lm_head.weight");
  r.logits.assign(T * V, 0.0);
  for (std::size_t t = 0; t < T; ++t)
    for (std::size_t v = 0; v < V; ++v) {
      double s = 0;
      for (std::size_t k = 0; k < d; ++k) s += hf[t * d + k] * head[v * d + k];
      r.logits[t * V + v] = s;
    }
  return r;
}

const std::vector<token_id> sample_tokens{3, 11, 0, 7, 7, 12};

std::filesystem::path data_dir() {
  const auto dir = std::filesystem::path(GLASSBOX_TEST_DATA_DIR) / "gpt2";
  std::filesystem::create_directories(dir);
  return dir;
}

}  // namespace

// =====================================================================================================
TEST_CASE("gpt2 forward equals a naive implementation of the GPT-2 formulas", "[models][gpt2]") {
  // The naive loops and the Eigen implementation share no code; in double they agree to rounding
  // (~1e-14). The acceptance bound is 1e-5.
  for (const bool tied : {true, false}) {
    auto c = tiny_config();
    c.tie_word_embeddings = tied;
    if (!tied) c.n_inner = 12;
    const auto m = double_model(c);
    const auto ref = naive_forward(m, sample_tokens);
    CHECK(max_abs_difference(flat(m.logits(sample_tokens)), ref.logits) < 1e-10);
    const auto hidden = m.hidden_states(sample_tokens);
    REQUIRE(hidden.shape(0) == c.n_layer + 1);
    std::vector<double> ref_hidden;
    for (const auto& h : ref.hidden) ref_hidden.insert(ref_hidden.end(), h.begin(), h.end());
    CHECK(max_abs_difference(flat(hidden), ref_hidden) < 1e-10);
    std::vector<double> ref_attn;
    for (const auto& a : ref.attn) ref_attn.insert(ref_attn.end(), a.begin(), a.end());
    CHECK(max_abs_difference(flat(m.attentions(sample_tokens)), ref_attn) < 1e-12);

    // The float model runs the same formulas to float rounding.
    const auto fm = float_copy(m);
    CHECK(max_abs_difference(flat(fm.logits(sample_tokens)), ref.logits) < 1e-5);
  }
}

TEST_CASE("gpt2 members agree with each other", "[models][gpt2]") {
  const auto c = tiny_config();
  const auto m = double_model(c);
  const auto& t = sample_tokens;
  const std::size_t T = t.size(), d = c.n_embd, V = c.vocab_size;
  const auto logits = m.logits(t);
  REQUIRE(logits.shape(0) == T);
  REQUIRE(logits.shape(1) == V);

  SECTION("embed is wte[ids] and logits_from_embeddings adds the positions") {
    const auto e = m.embed(t);
    const auto wte = m.parameter("wte.weight");
    for (std::size_t i = 0; i < T; ++i)
      for (std::size_t k = 0; k < d; ++k) REQUIRE(e(i, k) == wte[static_cast<std::size_t>(t[i]) * d + k]);
    CHECK(max_abs_difference(flat(m.logits_from_embeddings(e)), flat(logits)) < 1e-12);
    // a zero baseline keeps the positions: the naive model with zero token embeddings
    const dmat zero = xt::zeros<double>({T, d});
    CHECK(max_abs_difference(flat(m.logits_from_embeddings(zero)), naive_forward(m, t, &zero).logits) < 1e-10);
  }
  SECTION("hidden state 0 is wte + wpe and running on from any index reproduces the logits") {
    const auto hidden = m.hidden_states(t);
    const auto wpe = m.parameter("wpe.weight");
    const auto e = m.embed(t);
    for (std::size_t i = 0; i < T; ++i)
      for (std::size_t k = 0; k < d; ++k) REQUIRE(hidden(0, i, k) == Approx(e(i, k) + wpe[i * d + k]).margin(1e-15));
    for (std::size_t layer = 0; layer <= c.n_layer; ++layer) {
      dmat h = xt::view(hidden, layer);
      CHECK(max_abs_difference(flat(m.logits_from_hidden(t, layer, h)), flat(logits)) < 1e-12);
    }
  }
  SECTION("logits_at computes the chosen rows only, equal to the full rows") {
    const std::vector<std::size_t> rows{5, 0, 2};
    const auto some = m.logits_at(t, rows);
    REQUIRE(some.shape(0) == 3);
    for (std::size_t k = 0; k < rows.size(); ++k)
      for (std::size_t j = 0; j < V; ++j) REQUIRE(some(k, j) == Approx(logits(rows[k], j)).margin(1e-14));
  }
  SECTION("the model is causal: a later token does not change earlier rows") {
    auto other = t;
    other.back() = 1;
    const auto changed = m.logits(other);
    for (std::size_t i = 0; i + 1 < T; ++i)
      for (std::size_t j = 0; j < V; ++j) REQUIRE(changed(i, j) == Approx(logits(i, j)).margin(1e-14));
    CHECK(std::abs(changed(T - 1, 0) - logits(T - 1, 0)) > 1e-6);
  }
  SECTION("attention rows are distributions over the past") {
    const auto a = m.attentions(t);
    for (std::size_t l = 0; l < c.n_layer; ++l)
      for (std::size_t h = 0; h < c.n_head; ++h)
        for (std::size_t i = 0; i < T; ++i) {
          double s = 0;
          for (std::size_t j = 0; j < T; ++j) {
            if (j > i) REQUIRE(a(l, h, i, j) == 0.0);
            s += a(l, h, i, j);
          }
          REQUIRE(s == Approx(1.0).margin(1e-14));
        }
    // Patching a block's attention with its own values changes nothing; other values do.
    for (std::size_t l = 0; l < c.n_layer; ++l) {
      dten3 own = xt::view(a, l);
      CHECK(max_abs_difference(flat(m.logits_with_attentions(t, l, own)), flat(logits)) < 1e-12);
      own(1, 3, 0) = 0.5;
      CHECK(max_abs_difference(flat(m.logits_with_attentions(t, l, own)), flat(logits)) > 1e-6);
    }
  }
  SECTION("a head mask of ones changes nothing; a mask equals the naive masked model") {
    dmat ones = xt::ones<double>({c.n_layer, c.n_head});
    CHECK(max_abs_difference(flat(m.logits_with_head_mask(t, ones)), flat(logits)) < 1e-12);
    const std::vector<double> mask{0.0, 1.0, 0.5, 1.7};
    dmat mm = dmat::from_shape({2, 2});
    std::copy(mask.begin(), mask.end(), mm.begin());
    CHECK(max_abs_difference(flat(m.logits_with_head_mask(t, mm)), naive_forward(m, t, nullptr, &mask).logits) < 1e-10);
  }
  SECTION("batched members equal the unbatched ones") {
    const std::vector<token_id> other{1, 2, 3, 4, 5, 6};
    glassbox::token_matrix batch = glassbox::token_matrix::from_shape({2, T});
    std::copy(t.begin(), t.end(), batch.data());
    std::copy(other.begin(), other.end(), batch.data() + T);
    const auto all = m.logits_batch(batch, {});
    const std::vector<std::size_t> rows{T - 1};
    const auto last = m.logits_batch(batch, rows);
    const auto logits2 = m.logits(other);
    for (std::size_t j = 0; j < V; ++j) {
      REQUIRE(all(0, 2, j) == Approx(logits(2, j)).margin(1e-13));
      REQUIRE(all(1, 4, j) == Approx(logits2(4, j)).margin(1e-13));
      REQUIRE(last(1, 0, j) == Approx(logits2(T - 1, j)).margin(1e-13));
    }
    dten3 e = dten3::from_shape({2, T, d});
    const auto e0 = m.embed(t), e1 = m.embed(other);
    std::copy(e0.begin(), e0.end(), e.begin());
    std::copy(e1.begin(), e1.end(), e.begin() + static_cast<std::ptrdiff_t>(T * d));
    const auto from_e = m.logits_from_embeddings_batch(e, rows);
    for (std::size_t j = 0; j < V; ++j) REQUIRE(from_e(1, 0, j) == Approx(logits2(T - 1, j)).margin(1e-13));
  }
}

// =====================================================================================================
TEST_CASE("gpt2 gradients match central finite differences in double", "[models][gpt2][gradient]") {
  // Acceptance: relative error ||analytic - fd|| / ||fd|| below 1e-6. Measured errors are ~1e-10.
  constexpr double bound = 1e-6;
  const auto c = tiny_config();
  const auto m = double_model(c);
  const auto& t = sample_tokens;
  const std::size_t T = t.size();
  const std::vector<std::size_t> rows{T - 1};
  const std::vector<token_id> targets{4};
  const auto seed = mixed_seed<double>(rows, targets);

  SECTION("embeddings") {
    const dmat e = m.embed(t);
    const auto g = m.embedding_gradient(e, seed);
    CHECK(g.value == Approx(mixed_value(m.logits(t), rows, targets)).epsilon(1e-12));
    const auto fd = finite_differences(e, [&](const dmat& x) { return mixed_value(m.logits_from_embeddings(x), rows, targets); });
    const double err = relative_error(flat(g.gradient), fd);
    CAPTURE(err);
    CHECK(err < bound);
    // A seed that reads several rows (a teacher-forced continuation).
    const std::vector<std::size_t> rows3{2, 3, 5};
    const std::vector<token_id> targets3{1, 12, 6};
    const auto g3 = m.embedding_gradient(e, mixed_seed<double>(rows3, targets3));
    const auto fd3 =
        finite_differences(e, [&](const dmat& x) { return mixed_value(m.logits_from_embeddings(x), rows3, targets3); });
    const double err3 = relative_error(flat(g3.gradient), fd3);
    CAPTURE(err3);
    CHECK(err3 < bound);
  }
  SECTION("attention probabilities") {
    const auto r = m.attention_gradient(t, seed);
    CHECK(max_abs_difference(flat(r.attentions), flat(m.attentions(t))) < 1e-15);
    // Perturb one block's probabilities at a time (later blocks recompute theirs), over every entry,
    // including the zero entries of future keys.
    std::vector<double> fd;
    for (std::size_t l = 0; l < c.n_layer; ++l) {
      const dten3 a = xt::view(r.attentions, l);
      const auto fd_l = finite_differences(
          a, [&](const dten3& x) { return mixed_value(m.logits_with_attentions(t, l, x), rows, targets); });
      fd.insert(fd.end(), fd_l.begin(), fd_l.end());
    }
    const double err = relative_error(flat(r.gradient), fd);
    CAPTURE(err);
    CHECK(err < bound);
  }
  SECTION("head mask, at 1 and elsewhere") {
    for (const std::vector<double>& values : {std::vector<double>{1, 1, 1, 1}, std::vector<double>{0.3, -0.5, 1.4, 0}}) {
      dmat mask = dmat::from_shape({2, 2});
      std::copy(values.begin(), values.end(), mask.begin());
      const auto g = m.head_mask_gradient(t, mask, seed);
      CHECK(g.value == Approx(mixed_value(m.logits_with_head_mask(t, mask), rows, targets)).epsilon(1e-12));
      const auto fd = finite_differences(
          mask, [&](const dmat& x) { return mixed_value(m.logits_with_head_mask(t, x), rows, targets); });
      const double err = relative_error(flat(g.gradient), fd);
      CAPTURE(values, err);
      CHECK(err < bound);
    }
  }
  SECTION("residual stream at every index") {
    const auto hidden = m.hidden_states(t);
    for (std::size_t layer = 0; layer <= c.n_layer; ++layer) {
      dmat h = xt::view(hidden, layer);
      h(1, 2) += 0.7;  // an edited stream, as in steering
      const auto g = m.hidden_gradient(t, layer, h, seed);
      const auto fd = finite_differences(
          h, [&](const dmat& x) { return mixed_value(m.logits_from_hidden(t, layer, x), rows, targets); });
      const double err = relative_error(flat(g.gradient), fd);
      CAPTURE(layer, err);
      CHECK(err < bound);
    }
  }
  SECTION("batched embedding gradient equals the unbatched one") {
    const std::vector<token_id> other{9, 8, 7, 6, 5, 4};
    dten3 e = dten3::from_shape({2, T, c.n_embd});
    const auto e0 = m.embed(t), e1 = m.embed(other);
    std::copy(e0.begin(), e0.end(), e.begin());
    std::copy(e1.begin(), e1.end(), e.begin() + static_cast<std::ptrdiff_t>(e0.size()));
    const auto batch = m.embedding_gradient_batch(e, seed);
    const auto g0 = m.embedding_gradient(e0, seed), g1 = m.embedding_gradient(e1, seed);
    REQUIRE(batch.values.size() == 2);
    CHECK(batch.values[0] == Approx(g0.value).epsilon(1e-13));
    CHECK(batch.values[1] == Approx(g1.value).epsilon(1e-13));
    std::vector<double> both = flat(g0.gradient);
    const auto f1 = flat(g1.gradient);
    both.insert(both.end(), f1.begin(), f1.end());
    CHECK(relative_error(flat(batch.gradients), both) < 1e-12);
    // A memory budget below one sequence's activations: one pass per sequence, the same values.
    auto bounded = m;
    bounded.set_kept_activation_bytes(1);
    const auto split = bounded.embedding_gradient_batch(e, seed);
    REQUIRE(split.values.size() == 2);
    CHECK(split.values[0] == Approx(batch.values[0]).epsilon(1e-13));
    CHECK(split.values[1] == Approx(batch.values[1]).epsilon(1e-13));
    CHECK(relative_error(flat(split.gradients), flat(batch.gradients)) < 1e-12);
  }
}

TEST_CASE("gpt2 parameter gradients match central finite differences in double", "[models][gpt2][gradient]") {
  constexpr double bound = 1e-6;
  for (const bool tied : {true, false}) {
    auto c = tiny_config();
    c.tie_word_embeddings = tied;
    if (!tied) c.n_inner = 12;
    auto m = double_model(c, 11);
    const std::vector<double> p0(m.parameters().begin(), m.parameters().end());
    auto loss_at = [&](const dvec& p, const auto& fn) {
      m.set_parameters(std::span<const double>(p.data(), p.size()));
      const double v = fn();
      m.set_parameters(p0);
      return v;
    };
    dvec p = dvec::from_shape({p0.size()});
    std::copy(p0.begin(), p0.end(), p.begin());

    // One example: next-token prediction over the whole sequence.
    const auto example = training_example::next_token({3, 11, 0, 7, 7, 12});
    const auto g = m.loss_gradient(example);
    CHECK(g.value == Approx(m.loss(example)).epsilon(1e-14));
    const auto fd = finite_differences(p, [&](const dvec& x) { return loss_at(x, [&] { return m.loss(example); }); });
    const double err = relative_error(flat(g.gradient), fd);
    CAPTURE(tied, err);
    CHECK(err < bound);

    // A ragged batch: three examples of different lengths and kinds, in one stacked pass.
    const std::vector<training_example> batch{training_example::next_token({1, 2, 3, 4, 5, 6, 7}),
                                              training_example::classification({5, 9, 2}, 8),
                                              training_example::next_token({12, 0})};
    const auto bg = m.mean_loss_gradient(batch);
    const auto bfd = finite_differences(p, [&](const dvec& x) {
      return loss_at(x, [&] {
        double s = 0;
        for (const auto& e : batch) s += m.loss(e);
        return s / 3;
      });
    });
    const double batch_err = relative_error(flat(bg.gradient), bfd);
    CAPTURE(batch_err);
    CHECK(batch_err < bound);
    // and it equals the mean of the per-example gradients, and losses() the per-example losses
    std::vector<double> mean(p0.size(), 0.0);
    double mean_loss = 0;
    const auto per = m.losses(batch);
    for (std::size_t k = 0; k < batch.size(); ++k) {
      const auto gk = m.loss_gradient(batch[k]);
      mean_loss += gk.value / 3;
      CHECK(per[k] == Approx(gk.value).epsilon(1e-13));
      for (std::size_t i = 0; i < mean.size(); ++i) mean[i] += gk.gradient(i) / 3;
    }
    CHECK(bg.value == Approx(mean_loss).epsilon(1e-13));
    CHECK(relative_error(flat(bg.gradient), mean) < 1e-12);
  }
}

TEST_CASE("gpt2 at a width where products are split across threads", "[models][gpt2][gradient]") {
  // Products of at least 2^20 multiply-adds are split across OpenMP threads (when built with
  // OpenMP): the checks above run on products too small for that. Same checks at d = 128, T = 40.
  gpt2_config c;
  c.n_layer = 2;
  c.n_head = 4;
  c.n_embd = 128;
  c.n_positions = 48;
  c.vocab_size = 300;
  auto m = dmodel(c, [&] {
    auto p = test_parameters(c, 3);
    for (auto& x : p) x *= 0.3;  // keep the wider sums in the same range as the tiny model's
    return p;
  }());
  std::vector<token_id> t(40);
  for (std::size_t i = 0; i < t.size(); ++i) t[i] = static_cast<token_id>((i * 37 + 11) % c.vocab_size);
  CHECK(max_abs_difference(flat(m.logits(t)), naive_forward(m, t).logits) < 1e-10);

  // Directional derivatives along random directions (a full finite-difference gradient would take
  // 2 x 5120 passes): (f(x + h u) - f(x - h u)) / 2h against <gradient, u>.
  glassbox::rng g(17);
  const std::vector<std::size_t> rows{39, 20};
  const std::vector<token_id> targets{5, 250};
  const dmat e = m.embed(t);
  const auto ge = m.embedding_gradient(e, mixed_seed<double>(rows, targets));
  const std::vector<double> p0(m.parameters().begin(), m.parameters().end());
  const auto example = training_example::next_token(t);
  const auto gp = m.loss_gradient(example);
  for (int k = 0; k < 3; ++k) {
    dmat u = dmat::from_shape(e.shape());
    for (auto& x : u) x = g.normal();
    const double h = 1e-5;
    const double fd = (mixed_value(m.logits_from_embeddings(e + h * u), rows, targets) -
                       mixed_value(m.logits_from_embeddings(e - h * u), rows, targets)) /
                      (2 * h);
    double an = 0;
    for (std::size_t i = 0; i < u.size(); ++i) an += ge.gradient.data()[i] * u.data()[i];
    CAPTURE(k, fd, an);
    CHECK(std::abs(an - fd) < 1e-6 * std::max(1.0, std::abs(fd)));

    std::vector<double> v(p0.size()), plus(p0.size()), minus(p0.size());
    double anp = 0;
    for (std::size_t i = 0; i < v.size(); ++i) {
      v[i] = g.normal();
      plus[i] = p0[i] + h * v[i];
      minus[i] = p0[i] - h * v[i];
      anp += gp.gradient(i) * v[i];
    }
    m.set_parameters(plus);
    const double lp = m.loss(example);
    m.set_parameters(minus);
    const double lm = m.loss(example);
    m.set_parameters(p0);
    const double fdp = (lp - lm) / (2 * h);
    CAPTURE(fdp, anp);
    CHECK(std::abs(anp - fdp) < 1e-6 * std::max(1.0, std::abs(fdp)));
  }
}

TEST_CASE("gpt2 K-FAC statistics reproduce the parameter gradient and the layer inputs", "[models][gpt2][gradient]") {
  // The weight gradient of y = x W + b is sum over rows of x_r^T dy_r and the bias gradient is
  // sum_r dy_r; with T = 6 rows and inputs of width >= 8 the inputs have full row rank, so these
  // identities (against the finite-difference-checked loss_gradient) determine every dy_r.
  const auto c = tiny_config();
  const auto m = double_model(c, 5);
  const auto example = training_example::next_token({3, 11, 0, 7, 7, 12});
  const auto stats = m.kfac_statistics(example);
  const auto g = m.loss_gradient(example);
  const auto ref = naive_forward(m, example.tokens);
  REQUIRE(stats.size() == 4 * c.n_layer);
  const std::vector<std::string> kinds{"attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"};
  for (std::size_t k = 0; k < stats.size(); ++k) {
    const auto& s = stats[k];
    const std::size_t l = k / 4;
    CHECK(s.name == "h." + std::to_string(l) + "." + kinds[k % 4]);
    CHECK(s.input_major);
    CHECK(s.has_bias);
    const std::size_t n = s.inputs.shape(0), din = s.inputs.shape(1), dout = s.output_gradients.shape(1);
    REQUIRE(n == example.tokens.size());
    REQUIRE(s.output_gradients.shape(0) == n);
    CHECK(s.weight_offset == m.parameter_table()[2 + 12 * l + 2 * (k % 4) + 2 + (k % 4 >= 2 ? 2 : 0)].offset);
    std::vector<double> w(din * dout, 0.0), b(dout, 0.0);
    for (std::size_t r = 0; r < n; ++r)
      for (std::size_t j = 0; j < dout; ++j) {
        b[j] += s.output_gradients(r, j);
        for (std::size_t i = 0; i < din; ++i) w[i * dout + j] += s.inputs(r, i) * s.output_gradients(r, j);
      }
    const std::vector<double> gw(g.gradient.begin() + static_cast<std::ptrdiff_t>(s.weight_offset),
                                 g.gradient.begin() + static_cast<std::ptrdiff_t>(s.weight_offset + din * dout));
    const std::vector<double> gb(g.gradient.begin() + static_cast<std::ptrdiff_t>(s.bias_offset),
                                 g.gradient.begin() + static_cast<std::ptrdiff_t>(s.bias_offset + dout));
    CAPTURE(s.name);
    CHECK(relative_error(w, gw) < 1e-12);
    CHECK(relative_error(b, gb) < 1e-12);
    const std::vector<std::vector<double>>* inputs[] = {&ref.a1, &ref.z, &ref.a2, &ref.g};
    CHECK(max_abs_difference(flat(s.inputs), (*inputs[k % 4])[l]) < 1e-12);
  }
}

TEST_CASE("gpt2 in float: gradients agree with double and with float finite differences", "[models][gpt2][gradient]") {
  const auto c = tiny_config();
  const auto dm = double_model(c);
  const auto fm = float_copy(dm);
  const auto& t = sample_tokens;
  const std::vector<std::size_t> rows{t.size() - 1};
  const std::vector<token_id> targets{4};

  // float against double, same parameters: float rounding (6e-8) amplified through the layers;
  // measured 4e-7, bound 1e-5.
  const auto ge = fm.embedding_gradient(fm.embed(t), mixed_seed<float>(rows, targets));
  const auto gd = dm.embedding_gradient(dm.embed(t), mixed_seed<double>(rows, targets));
  CHECK(relative_error(flat(ge.gradient), flat(gd.gradient)) < 1e-5);
  const auto example = training_example::next_token({3, 11, 0, 7, 7, 12});
  CHECK(relative_error(flat(fm.loss_gradient(example).gradient), flat(dm.loss_gradient(example).gradient)) < 1e-5);
  const auto target = glassbox::target::log_probability(4);
  const auto ga = fm.attention_gradient(t, target);
  CHECK(relative_error(flat(ga.gradient), flat(dm.attention_gradient(t, target).gradient)) < 1e-5);

  // float finite differences with h = 1e-2: truncation ~h^2 = 1e-4, rounding ~1e-7 / h = 1e-5;
  // measured 2.5e-4, bound 1e-3.
  const glassbox::tensor2 e = fm.embed(t);
  const auto fd = finite_differences(
      e,
      [&](const glassbox::tensor2& x) {
        const auto z = fm.logits_from_embeddings(x);
        return target.value_of(z);
      },
      1e-2);
  const auto g = fm.embedding_gradient(e, target);
  const double err = relative_error(flat(g.gradient), fd);
  CAPTURE(err);
  CHECK(err < 1e-3);
  CHECK(g.value == Approx(target.value_of(fm.logits(t))).epsilon(1e-6));
}

TEST_CASE("gpt2 serves every rung of the model ladder through the library's dispatch", "[models][gpt2]") {
  STATIC_REQUIRE(glassbox::check_kfac_model<fmodel>());
  STATIC_REQUIRE(glassbox::check_intervention_model<fmodel>());
  STATIC_REQUIRE(glassbox::check_attention_gradient_model<fmodel>());
  STATIC_REQUIRE(glassbox::check_differentiable_model<fmodel>());
  STATIC_REQUIRE(glassbox::is_thread_safe<fmodel>());
  const auto fm = float_copy(double_model(tiny_config()));
  const auto target = glassbox::target::log_probability(2);
  std::vector<glassbox::token_sequence> inputs{{1, 2, 3}, {4, 5, 6}, {7, 8, 9}, {1, 1}};
  glassbox::execution_options exec;
  exec.batch_size = 2;
  exec.threads = 2;
  const auto values = glassbox::evaluate_target(fm, inputs, target, exec);
  for (std::size_t i = 0; i < inputs.size(); ++i)
    CHECK(values[i] == Approx(target.value_of(fm.logits(inputs[i]))).epsilon(1e-5));
  std::vector<glassbox::tensor2> embeddings;
  for (std::size_t i = 0; i < 3; ++i) embeddings.push_back(fm.embed(inputs[i]));
  const auto grads = glassbox::embedding_gradients(fm, embeddings, target, exec);
  for (std::size_t i = 0; i < 3; ++i) {
    const auto one = fm.embedding_gradient(embeddings[i], target);
    CHECK(relative_error(flat(grads[i].gradient), flat(one.gradient)) < 1e-5);
  }
}

TEST_CASE("gpt2 is safe to call from several threads", "[models][gpt2]") {
  const auto fm = float_copy(double_model(tiny_config()));
  const auto expected = fm.logits(sample_tokens);
  std::vector<std::vector<float>> results(4);
  {
    std::vector<std::jthread> threads;
    for (std::size_t k = 0; k < results.size(); ++k)
      threads.emplace_back([&, k] {
        for (int rep = 0; rep < 20; ++rep) {
          const auto z = fm.logits(sample_tokens);
          results[k].assign(z.begin(), z.end());
        }
      });
  }
  for (const auto& r : results) CHECK(r == std::vector<float>(expected.begin(), expected.end()));
}

TEST_CASE("gpt2 passes do not allocate per layer after warm-up", "[models][gpt2]") {
  // Each pass allocates its outputs and the seed's bookkeeping, a fixed number of blocks whatever
  // the depth; the per-layer loop reuses the workspace. Count operator new per pass at depth 2 and 6.
  auto count_per_pass = [](std::size_t layers) {
    auto c = tiny_config();
    c.n_layer = layers;
    const auto fm = float_copy(double_model(c));
    const glassbox::tensor2 e = fm.embed(sample_tokens);
    const auto target = glassbox::target::log_probability(3);
    const auto example = training_example::next_token(sample_tokens);
    auto run = [&] {
      (void)fm.logits(sample_tokens);
      (void)fm.embedding_gradient(e, target);
      (void)fm.loss_gradient(example);
    };
    run();  // warm-up: the workspace grows to this size once
    const std::size_t before = new_calls.load();
    run();
    return new_calls.load() - before;
  };
  const std::size_t shallow = count_per_pass(2), deep = count_per_pass(6);
  CAPTURE(shallow, deep);
  CHECK(shallow == deep);
  CHECK(shallow < 100);
}

// =====================================================================================================
TEST_CASE("gpt2 random initialisation follows GPT-2", "[models][gpt2]") {
  gpt2_config c;
  c.n_layer = 3;
  c.n_head = 4;
  c.n_embd = 64;
  c.n_positions = 32;
  c.vocab_size = 100;
  const auto m = fmodel::random(c, 42);
  auto sd = [&](const std::string& name) {
    const auto p = m.parameter(name);
    double s = 0;
    for (float x : p) s += static_cast<double>(x) * x;
    return std::sqrt(s / static_cast<double>(p.size()));
  };
  // 12288 draws: the sample standard deviation is within ~2% of sigma (5 standard errors).
  CHECK(sd("h.1.attn.c_attn.weight") == Approx(0.02).epsilon(0.05));
  CHECK(sd("wte.weight") == Approx(0.02).epsilon(0.05));
  CHECK(sd("h.2.mlp.c_proj.weight") == Approx(0.02 / std::sqrt(6.0)).epsilon(0.05));
  CHECK(sd("h.0.attn.c_proj.weight") == Approx(0.02 / std::sqrt(6.0)).epsilon(0.05));
  for (float x : m.parameter("h.1.ln_2.weight")) REQUIRE(x == 1.0f);
  for (float x : m.parameter("ln_f.bias")) REQUIRE(x == 0.0f);
  for (float x : m.parameter("h.0.mlp.c_fc.bias")) REQUIRE(x == 0.0f);
  const auto again = fmodel::random(c, 42);
  CHECK(std::equal(m.parameters().begin(), m.parameters().end(), again.parameters().begin()));
  CHECK(m.parameter_count() == 100 * 64 + 32 * 64 + 3 * (12 * 64 * 64 + 13 * 64) + 2 * 64);
}

// =====================================================================================================
namespace {

// What a test checkpoint holds; by default exactly the parameters, config in __metadata__.
struct checkpoint_options {
  std::string prefix;                                   // "" or "transformer."
  bool config_in_metadata = true;                       // else config.json beside the weights
  std::map<std::string, std::string> config_overrides;  // config values replaced or added (JSON text)
  std::vector<std::string> drop_keys;                   // config keys removed
  std::vector<std::string> drop_tensors;                // parameters left out
  bool buffers = false;       // h.{i}.attn.bias and masked_bias, as Hugging Face files have
  bool lm_head_copy = false;  // lm_head.weight equal to wte
  std::string reshape;        // a parameter written with its shape reversed
  std::string extra;          // an unknown tensor
  glassbox::io::dtype type = glassbox::io::dtype::f32;
};

// Writes `m` as a checkpoint directory `dir` (model.safetensors, and config.json if asked).
std::filesystem::path write_checkpoint(const std::string& name, const dmodel& m, const checkpoint_options& o) {
  const auto dir = data_dir() / name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const auto& c = m.config();
  std::map<std::string, std::string> config{{"n_layer", std::to_string(c.n_layer)},
                                            {"n_head", std::to_string(c.n_head)},
                                            {"n_embd", std::to_string(c.n_embd)},
                                            {"n_positions", std::to_string(c.n_positions)},
                                            {"vocab_size", std::to_string(c.vocab_size)},
                                            {"layer_norm_epsilon", "1e-05"}};
  if (c.n_inner != 0) config["n_inner"] = std::to_string(c.n_inner);
  for (const auto& [k, v] : o.config_overrides) config[k] = v;
  for (const auto& k : o.drop_keys) config.erase(k);

  std::vector<glassbox::io::tensor_to_write> tensors;
  std::vector<std::vector<double>> storage;
  storage.reserve(64);
  for (const auto& t : m.parameter_table()) {
    if (std::find(o.drop_tensors.begin(), o.drop_tensors.end(), t.name) != o.drop_tensors.end()) continue;
    auto shape = t.shape;
    if (t.name == o.reshape) std::reverse(shape.begin(), shape.end());
    const std::string file_name = t.name == "lm_head.weight" ? t.name : o.prefix + t.name;
    tensors.push_back({file_name, o.type, shape, std::span<const double>(m.parameters().data() + t.offset, t.size)});
  }
  if (o.lm_head_copy) {
    const auto& wte = m.parameter_table()[0];
    tensors.push_back({"lm_head.weight", o.type, wte.shape, std::span<const double>(m.parameters().data(), wte.size)});
  }
  if (o.buffers) {
    const std::size_t n = c.n_positions;
    auto& mask = storage.emplace_back(n * n, 0.0);
    for (std::size_t i = 0; i < n; ++i)
      for (std::size_t j = 0; j <= i; ++j) mask[i * n + j] = 1;
    auto& masked = storage.emplace_back(1, -1e4);
    for (std::size_t l = 0; l < c.n_layer; ++l) {
      tensors.push_back({o.prefix + "h." + std::to_string(l) + ".attn.bias", glassbox::io::dtype::f32, {1, 1, n, n},
                         std::span<const double>(mask)});
      tensors.push_back({o.prefix + "h." + std::to_string(l) + ".attn.masked_bias", glassbox::io::dtype::f32, {},
                         std::span<const double>(masked)});
    }
  }
  if (!o.extra.empty()) {
    auto& v = storage.emplace_back(2, 1.0);
    tensors.push_back({o.extra, glassbox::io::dtype::f32, {2}, std::span<const double>(v)});
  }
  std::map<std::string, std::string> metadata{{"format", "pt"}};
  if (o.config_in_metadata) {
    for (const auto& [k, v] : config) metadata[k] = v;
  } else {
    nlohmann::json j = nlohmann::json::object();
    j["model_type"] = "gpt2";
    j["activation_function"] = "gelu_new";
    j["n_inner"] = nullptr;
    for (const auto& [k, v] : config) j[k] = nlohmann::json::parse(v);
    std::ofstream(dir / "config.json") << j.dump(2);
  }
  glassbox::io::write_safetensors(dir / "model.safetensors", tensors, metadata);
  return dir;
}

std::vector<float> as_floats(std::span<const double> p) { return {p.begin(), p.end()}; }

}  // namespace

TEST_CASE("gpt2 loads both naming styles from both config sources", "[models][gpt2][io]") {
  const auto m = double_model(tiny_config());
  const auto expected = as_floats(m.parameters());
  for (const std::string prefix : {"", "transformer."}) {
    for (const bool metadata : {true, false}) {
      checkpoint_options o;
      o.prefix = prefix;
      o.config_in_metadata = metadata;
      o.buffers = true;
      const auto dir = write_checkpoint("style", m, o);
      CAPTURE(prefix, metadata);
      for (const auto& path : {dir, dir / "model.safetensors"}) {
        const auto loaded = fmodel::load(path);
        CHECK(loaded.config() == m.config());
        CHECK(std::equal(expected.begin(), expected.end(), loaded.parameters().begin(), loaded.parameters().end()));
      }
    }
  }
  SECTION("Hugging Face's n_ctx alias, a tied lm_head copy, and float16 weights") {
    checkpoint_options o;
    o.prefix = "transformer.";
    o.config_in_metadata = false;
    o.drop_keys = {"n_positions"};
    o.config_overrides = {{"n_ctx", "10"}};
    o.lm_head_copy = true;
    o.type = glassbox::io::dtype::f16;
    const auto loaded = fmodel::load(write_checkpoint("hf", m, o));
    CHECK(loaded.config().tie_word_embeddings);
    CHECK(loaded.config().n_positions == 10);
    // float16 keeps 11 significant bits: relative rounding <= 2^-11
    for (std::size_t i = 0; i < expected.size(); ++i)
      REQUIRE(loaded.parameters()[i] == Approx(expected[i]).epsilon(5e-4).margin(1e-7));
  }
}

TEST_CASE("gpt2 save and load round-trip", "[models][gpt2][io]") {
  for (const bool tied : {true, false}) {
    auto c = tiny_config();
    c.tie_word_embeddings = tied;
    c.n_inner = tied ? 0 : 20;
    c.pad_token_id = 3;
    const auto m = double_model(c);
    const auto file = data_dir() / "roundtrip.safetensors";
    m.save(file);
    const auto back = dmodel::load(file);  // float64 on disk: exact
    CHECK(back.config() == c);
    CHECK(std::equal(m.parameters().begin(), m.parameters().end(), back.parameters().begin(), back.parameters().end()));
    const auto f = float_copy(m);
    f.save(file);
    const auto fback = fmodel::load(file);
    CHECK(fback.config() == c);
    CHECK(std::equal(f.parameters().begin(), f.parameters().end(), fback.parameters().begin()));
    CHECK(fback.pad_token() == std::optional<token_id>(3));
    glassbox::io::safetensors_reader reader(file);
    CHECK(reader.contains("lm_head.weight") == !tied);
    CHECK(reader.metadata().at("n_layer") == "2");
  }
}

TEST_CASE("gpt2 rejects inconsistent checkpoints with clear messages", "[models][gpt2][io]") {
  const auto m = double_model(tiny_config());
  auto load = [&](const checkpoint_options& o) { return fmodel::load(write_checkpoint("bad", m, o)); };
  using glassbox::io_error;
  checkpoint_options o;
  SECTION("missing tensor") {
    o.drop_tensors = {"h.1.mlp.c_fc.bias"};
    REQUIRE_THROWS_MATCHES(load(o), io_error, what_contains("missing tensor h.1.mlp.c_fc.bias"));
    o.prefix = "transformer.";
    REQUIRE_THROWS_MATCHES(load(o), io_error, what_contains("missing tensor transformer.h.1.mlp.c_fc.bias"));
  }
  SECTION("shape disagreeing with the config") {
    o.reshape = "h.0.attn.c_attn.weight";
    REQUIRE_THROWS_MATCHES(load(o), io_error,
                           what_contains("tensor h.0.attn.c_attn.weight must have shape [8, 24] (from the config"));
    o.reshape.clear();
    o.config_overrides = {{"vocab_size", "14"}};
    REQUIRE_THROWS_MATCHES(load(o), io_error, what_contains("tensor wte.weight must have shape [14, 8]"));
  }
  SECTION("missing config value, from either source") {
    o.drop_keys = {"n_head"};
    REQUIRE_THROWS_MATCHES(load(o), io_error, what_contains("config value n_head is missing"));
    o.config_in_metadata = false;
    REQUIRE_THROWS_MATCHES(load(o), io_error, what_contains("config value n_head is missing"));
  }
  SECTION("n_embd not divisible by n_head") {
    o.config_overrides = {{"n_head", "3"}};
    REQUIRE_THROWS_MATCHES(load(o), io_error, what_contains("n_embd must be divisible by n_head (3), got 8"));
  }
  SECTION("config.json and __metadata__ disagree") {
    o.config_in_metadata = false;
    const auto dir = write_checkpoint("bad", m, o);
    // rewrite the weights with a metadata n_layer that contradicts config.json
    checkpoint_options meta;
    meta.config_overrides = {{"n_layer", "3"}};
    const auto other = write_checkpoint("bad_meta", m, meta);
    std::filesystem::copy_file(other / "model.safetensors", dir / "model.safetensors",
                               std::filesystem::copy_options::overwrite_existing);
    REQUIRE_THROWS_MATCHES(fmodel::load(dir), io_error, what_contains("config value n_layer disagrees"));
  }
  SECTION("unknown tensors, other activations, malformed values, missing files") {
    o.extra = "h.0.attn.rotary";
    REQUIRE_THROWS_MATCHES(load(o), io_error, what_contains("unexpected tensor h.0.attn.rotary"));
    o.extra.clear();
    o.config_in_metadata = false;
    o.config_overrides = {{"activation_function", "\"relu\""}};
    REQUIRE_THROWS_MATCHES(load(o), io_error, what_contains("activation_function must be the tanh GELU"));
    o.config_overrides = {{"n_layer", "\"two\""}};
    REQUIRE_THROWS_MATCHES(load(o), io_error, what_contains("config value n_layer"));
    o.config_overrides = {{"tie_word_embeddings", "false"}};
    REQUIRE_THROWS_MATCHES(load(o), io_error, what_contains("missing tensor lm_head.weight"));
    REQUIRE_THROWS_MATCHES(fmodel::load(data_dir() / "does_not_exist"), io_error, what_contains("not found"));
  }
}

TEST_CASE("gpt2 rejects bad inputs with clear messages", "[models][gpt2]") {
  const auto fm = float_copy(double_model(tiny_config()));
  using glassbox::shape_error;
  const std::vector<token_id> long_sequence(11, 1), empty;
  REQUIRE_THROWS_MATCHES(fm.logits(long_sequence), shape_error,
                         what_contains("sequence length must be <= n_positions (10), got 11"));
  REQUIRE_THROWS_MATCHES(fm.logits(std::vector<token_id>{1, 13}), shape_error,
                         what_contains("token id must be in [0, 13), got 13 at position 1"));
  REQUIRE_THROWS_MATCHES(fm.logits(std::vector<token_id>{-1}), shape_error, what_contains("got -1 at position 0"));
  REQUIRE_THROWS_MATCHES(fm.logits(empty), shape_error, what_contains("the sequence must not be empty"));
  REQUIRE_THROWS_MATCHES(fm.logits_from_embeddings(glassbox::tensor2({3, 7})), shape_error,
                         what_contains("embeddings must be 8 wide, got 7"));
  REQUIRE_THROWS_MATCHES(fm.logits_with_head_mask(sample_tokens, glassbox::tensor2({2, 3})), shape_error,
                         what_contains("mask must be [2, 2], got [2, 3]"));
  REQUIRE_THROWS_MATCHES(fm.logits_from_hidden(sample_tokens, 3, glassbox::tensor2({6, 8})), shape_error,
                         what_contains("layer must be <= 2 (n_layer), got 3"));
  REQUIRE_THROWS_MATCHES(fm.logits_at(sample_tokens, std::vector<std::size_t>{6}), shape_error,
                         what_contains("row must be < 6 (the sequence length), got 6"));
  REQUIRE_THROWS_MATCHES(fm.loss(training_example{{1, 2}, {1}}), shape_error,
                         what_contains("labels must have one entry per token (2), got 1"));
  REQUIRE_THROWS_MATCHES(fm.loss(training_example{{1, 2}, {-100, -100}}), shape_error,
                         what_contains("must score at least one row"));
  REQUIRE_THROWS_MATCHES(fm.loss(training_example{{1, 2}, {20, -100}}), shape_error,
                         what_contains("label must be in [0, 13) or -100, got 20"));
  REQUIRE_THROWS_MATCHES(fm.parameter("h.9.ln_1.weight"), shape_error, what_contains("got h.9.ln_1.weight"));
  auto c = tiny_config();
  c.n_head = 3;
  REQUIRE_THROWS_MATCHES(fmodel::random(c, 1), shape_error, what_contains("n_embd must be divisible by n_head (3)"));
  REQUIRE_THROWS_MATCHES(fmodel(tiny_config(), std::vector<float>(5)), shape_error,
                         what_contains("parameters must hold 1944 values for this config, got 5"));
}

// =====================================================================================================
TEST_CASE("adam follows its closed forms", "[models][adam]") {
  using glassbox::models::adam_options;
  SECTION("a constant gradient moves each parameter by lr * sign(g) per step") {
    // with g constant, m_hat = g and v_hat = g^2 at every step, so the step is lr g / (|g| + eps)
    glassbox::models::basic_adam<double> opt(3, adam_options{.learning_rate = 0.1});
    std::vector<double> p{1, 2, 3};
    const std::vector<double> g{0.5, -2, 1e-3};
    for (int k = 0; k < 5; ++k) opt.step(p, g);
    CHECK(p[0] == Approx(1 - 0.5).epsilon(1e-6));
    CHECK(p[1] == Approx(2 + 0.5).epsilon(1e-6));
    CHECK(p[2] == Approx(3 - 0.5 * 1e-3 / (1e-3 + 1e-8)).epsilon(1e-9));
    CHECK(opt.steps() == 5);
  }
  SECTION("decoupled weight decay shrinks by (1 - lr wd) per step, only where the mask says") {
    glassbox::models::basic_adam<double> opt(2, adam_options{.learning_rate = 0.1, .weight_decay = 0.5});
    opt.set_decay_mask({1, 0});
    std::vector<double> p{1, 1};
    const std::vector<double> zero{0, 0};
    for (int k = 0; k < 3; ++k) opt.step(p, zero);
    CHECK(p[0] == Approx(std::pow(0.95, 3)).epsilon(1e-12));
    CHECK(p[1] == 1.0);
  }
  SECTION("clipping by global norm scales the gradient before the moments") {
    glassbox::models::basic_adam<double> opt(2, adam_options{.beta1 = 0.9, .max_gradient_norm = 1.0});
    std::vector<double> p{0, 0};
    const auto info = opt.step(p, std::vector<double>{3, 4});
    CHECK(info.gradient_norm == Approx(5));
    CHECK(info.clip_scale == Approx(1 / (5 + 1e-6)));
    CHECK(opt.first_moment()[0] == Approx(0.1 * 3 / (5 + 1e-6)));
    CHECK(opt.second_moment()[1] == Approx(0.001 * 16 / 25.0).epsilon(1e-5));
  }
  SECTION("invalid options") {
    REQUIRE_THROWS_MATCHES(glassbox::models::adam(1, adam_options{.beta1 = 1.0}), glassbox::error,
                           what_contains("beta1 must be in [0, 1), got 1"));
    glassbox::models::adam opt(2);
    std::vector<float> p(3), g(3);
    REQUIRE_THROWS_MATCHES(opt.step(p, g), glassbox::shape_error, what_contains("must hold 2 values, got 3 and 3"));
  }
}

TEST_CASE("adam training of a tiny gpt2 on a repetitive corpus makes the loss fall", "[models][adam][gpt2]") {
  gpt2_config c;
  c.n_layer = 1;
  c.n_head = 2;
  c.n_embd = 16;
  c.n_positions = 16;
  c.vocab_size = 8;
  // the corpus: the cycle 0 1 2 ... 7 from every starting point; next-token prediction is deterministic
  std::vector<training_example> corpus;
  for (token_id start = 0; start < 8; ++start) {
    glassbox::token_sequence s;
    for (token_id i = 0; i < 12; ++i) s.push_back((start + i) % 8);
    corpus.push_back(training_example::next_token(s));
  }
  auto train = [&] {
    auto model = fmodel::random(c, 3);
    glassbox::models::adam_trainer trainer(model, {.learning_rate = 1e-2, .max_gradient_norm = 1.0});
    std::vector<double> history;
    for (int step = 0; step < 60; ++step) {
      const std::span<const training_example> batch(corpus.data() + (step % 2) * 4, 4);
      history.push_back(trainer.step(batch).loss);
    }
    return std::pair{model, history};
  };
  const auto [model, history] = train();
  const double initial = history.front(), final_loss = model.losses(corpus)[0];
  CAPTURE(initial, final_loss);
  CHECK(initial == Approx(std::log(8.0)).epsilon(0.05));  // a fresh GPT-2 predicts nearly uniformly
  CHECK(final_loss < 0.25 * initial);
  // deterministic: the same run gives the same parameters bit for bit
  const auto [again, history2] = train();
  CHECK(history == history2);
  CHECK(std::equal(model.parameters().begin(), model.parameters().end(), again.parameters().begin()));
}

TEST_CASE("gpt2 resumed from a cached prefix computes what a pass from the start computes",
          "[models][gpt2][prefix]") {
  const auto c = tiny_config();
  const auto m = double_model(c);
  const std::vector<token_id> t = {3, 5, 7, 9, 11, 2, 4, 6, 8};
  const std::size_t T = t.size(), V = c.vocab_size;
  // Three sequences that agree with t before positions 2, 5 and 8 and differ from there on.
  const std::vector<std::size_t> starts = {2, 5, 8};
  glassbox::token_matrix batch({starts.size(), T});
  for (std::size_t b = 0; b < starts.size(); ++b)
    for (std::size_t i = 0; i < T; ++i)
      batch(b, i) = i < starts[b] ? t[i] : static_cast<token_id>((t[i] + 3 + b) % V);

  SECTION("from tokens: every row at or after the last start, and the target rows only") {
    const auto cache = m.prefix_cache(t);
    REQUIRE(cache.length == T);
    for (const auto& rows : {std::vector<std::size_t>{8}, std::vector<std::size_t>{8, 8}}) {
      const auto resumed = m.logits_batch_from_prefix(cache, batch, starts, rows);
      REQUIRE(resumed.shape(0) == starts.size());
      REQUIRE(resumed.shape(1) == rows.size());
      for (std::size_t b = 0; b < starts.size(); ++b) {
        const std::vector<token_id> sequence(batch.data() + b * T, batch.data() + (b + 1) * T);
        const auto full = m.logits(sequence);
        for (std::size_t k = 0; k < rows.size(); ++k)
          for (std::size_t v = 0; v < V; ++v) CHECK(resumed(b, k, v) == Approx(full(rows[k], v)).margin(1e-12));
      }
    }
  }
  SECTION("from embeddings, with a cache built from embeddings") {
    const auto e = m.embed(t);
    const auto cache = m.prefix_cache_from_embeddings(e);
    dten3 inputs = dten3::from_shape({starts.size(), T, c.n_embd});
    glassbox::rng g(5);
    for (std::size_t b = 0; b < starts.size(); ++b)
      for (std::size_t i = 0; i < T; ++i)
        for (std::size_t k = 0; k < c.n_embd; ++k) inputs(b, i, k) = i < starts[b] ? e(i, k) : g.normal(0, 0.5);
    const std::vector<std::size_t> rows = {8};
    const auto resumed = m.logits_from_embeddings_batch_from_prefix(cache, inputs, starts, rows);
    for (std::size_t b = 0; b < starts.size(); ++b) {
      dmat one = xt::view(inputs, b);
      const auto full = m.logits_from_embeddings(one);
      for (std::size_t v = 0; v < V; ++v) CHECK(resumed(b, 0, v) == Approx(full(8, v)).margin(1e-12));
    }
  }
  SECTION("a start of 0 is a pass from scratch, and a start at the cached length continues it") {
    const std::vector<token_id> head(t.begin(), t.begin() + 5);
    const auto cache = m.prefix_cache(head);  // five cached positions; sequences of nine
    const std::vector<std::size_t> from = {0, 5};
    glassbox::token_matrix two({2, T});
    std::copy(t.begin(), t.end(), two.data());
    std::copy(t.begin(), t.end(), two.data() + T);
    const std::vector<std::size_t> rows = {5, 8};
    const auto resumed = m.logits_batch_from_prefix(cache, two, from, rows);
    const auto full = m.logits(t);
    for (std::size_t b = 0; b < 2; ++b)
      for (std::size_t k = 0; k < rows.size(); ++k)
        for (std::size_t v = 0; v < V; ++v) CHECK(resumed(b, k, v) == Approx(full(rows[k], v)).margin(1e-12));
  }
  SECTION("misuse is refused with clear messages") {
    const auto cache = m.prefix_cache(t);
    const std::vector<std::size_t> rows = {8};
    const std::vector<std::size_t> late = {2, 5, 9};
    CHECK_THROWS_MATCHES(m.logits_batch_from_prefix(cache, batch, late, rows), glassbox::shape_error,
                         what_contains("start must be <= 9 (the cached positions) and <= 8 (the first row read)"));
    const std::vector<std::size_t> early_row = {4};
    CHECK_THROWS_MATCHES(m.logits_batch_from_prefix(cache, batch, starts, early_row), glassbox::shape_error,
                         what_contains("got 5 for sequence 1"));
    const std::vector<std::size_t> too_late = {2, 5, 7};  // sequence 2 differs from t at 8 only, so 7 is fine
    CHECK_NOTHROW(m.logits_batch_from_prefix(cache, batch, too_late, rows));
    const std::vector<std::size_t> wrong = {3, 5, 8};  // sequence 0 differs at position 2 < 3
    CHECK_THROWS_MATCHES(m.logits_batch_from_prefix(cache, batch, wrong, rows), glassbox::shape_error,
                         what_contains("sequence 0 must equal the cached tokens before its start 3"));
    const auto from_embeddings = m.prefix_cache_from_embeddings(m.embed(t));
    CHECK_THROWS_MATCHES(m.logits_batch_from_prefix(from_embeddings, batch, starts, rows), glassbox::shape_error,
                         what_contains("cache must come from prefix_cache(tokens)"));
  }
}

// Tests of the core layer: targets against finite differences, the RNG, and the execution dispatch.
#include <catch2/catch.hpp>

#include "test_support.hpp"

#include <algorithm>
#include <cmath>
#include <glassbox/glassbox.hpp>
#include <glassbox/models/linear_bag.hpp>
#include <numeric>
#include <set>

using namespace glassbox;
using glassbox::test::what_contains;

namespace {

tensor2 random_logits(std::size_t rows, std::size_t cols, std::uint64_t seed) {
  glassbox::rng g(seed);
  tensor2 z({rows, cols});
  for (auto& x : z) x = static_cast<float>(g.normal(0.0, 2.0));
  return z;
}

// Central differences of t.value over every entry; h = 1/64 is exact in float, and the target
// computes in double, so the error is the O(h^2) truncation (about 1e-4 for these logits).
tensor2 finite_difference(const target& t, const tensor2& z) {
  tensor2 d(z.shape());
  constexpr float h = 1.0f / 64;
  for (std::size_t i = 0; i < z.size(); ++i) {
    tensor2 plus = z, minus = z;
    plus.data()[i] += h;
    minus.data()[i] -= h;
    d.data()[i] = static_cast<float>((t.value(plus) - t.value(minus)) / (2.0 * h));
  }
  return d;
}

double log_softmax(const tensor2& z, std::size_t row, std::size_t col) {
  double m = -INFINITY, s = 0;
  for (std::size_t j = 0; j < z.shape(1); ++j) m = std::max(m, double(z(row, j)));
  for (std::size_t j = 0; j < z.shape(1); ++j) s += std::exp(double(z(row, j)) - m);
  return double(z(row, col)) - m - std::log(s);
}

}  // namespace

// GCC 12 (Debian 12's 12.2) with AVX-512 enabled (-march=native on an AVX-512 machine, -mavx512f)
// stored this initializer as {1, 1, 1, 1}: one broadcast for the whole vector, a wrong-code bug of
// its SLP vectorizer. The project's programs are compiled with -fno-tree-slp-vectorize on GCC < 13
// (CMakeLists.txt; docs/building.md, "Compilers and flags that are tested"); this fails without it.
TEST_CASE("build: the compiler keeps a {1, 1, 0, 0} initializer (GCC 12 AVX-512 wrong code)", "[core][build]") {
  const std::vector<double> s = {1, 1, 0, 0};
  const std::vector<unsigned long> d = {0};
  CHECK(d.size() == 1);
  CHECK(s[2] == 0.0);
  CHECK(s[3] == 0.0);
}

TEST_CASE("targets: gradients match central finite differences", "[core][target]") {
  const std::vector<std::pair<std::string, target>> cases = {
      {"logit", target::logit(3)},
      {"probability", target::probability(3)},
      {"log-probability", target::log_probability(5)},
      {"contrast of logits", target::contrast(1, 4, target_kind::logit)},
      {"contrast of probabilities", target::contrast(1, 4, target_kind::probability)},
      {"contrast of log-probabilities", target::contrast(2, 6, target_kind::log_probability)},
  };
  for (const auto& [name, t] : cases) {
    SECTION(name) {
      const tensor2 z = random_logits(1, 7, 11);
      tensor2 d;
      const double v = t.value_and_gradient(z, d);
      CHECK(v == Approx(t.value(z)).epsilon(1e-12));
      const tensor2 fd = finite_difference(t, z);
      for (std::size_t i = 0; i < z.size(); ++i) CHECK(d.data()[i] == Approx(fd.data()[i]).margin(2e-4));
    }
  }
  SECTION("sequence log-probability") {
    const target t = target::sequence_log_probability({2, 0, 6});
    const tensor2 z = random_logits(3, 7, 12);
    tensor2 d;
    t.value_and_gradient(z, d);
    const tensor2 fd = finite_difference(t, z);
    for (std::size_t i = 0; i < z.size(); ++i) CHECK(d.data()[i] == Approx(fd.data()[i]).margin(2e-4));
  }
}

TEST_CASE("targets: values equal their definitions", "[core][target]") {
  const tensor2 z = random_logits(4, 9, 3);
  CHECK(target::logit(2, 1).value_of(z) == Approx(z(1, 2)));
  CHECK(target::log_probability(4).value_of(z) == Approx(log_softmax(z, 3, 4)).epsilon(1e-12));
  CHECK(target::probability(4, -2).value_of(z) == Approx(std::exp(log_softmax(z, 2, 4))).epsilon(1e-12));
  // log p(a) - log p(b) = z_a - z_b: the normaliser cancels.
  CHECK(target::contrast(1, 7).value_of(z) == Approx(double(z(3, 1)) - double(z(3, 7))).epsilon(1e-6));
  // A continuation of 2 tokens at the end of 4 rows is predicted by rows 1 and 2.
  const double expected = log_softmax(z, 1, 5) + log_softmax(z, 2, 8);
  CHECK(target::sequence_log_probability({5, 8}).value_of(z) == Approx(expected).epsilon(1e-12));
}

TEST_CASE("targets: rows resolve like Python indices and fail clearly", "[core][target]") {
  CHECK(target::logit(0).rows(5) == std::vector<std::size_t>{4});
  CHECK(target::logit(0, -2).rows(5) == std::vector<std::size_t>{3});
  CHECK(target::logit(0, 0).rows(5) == std::vector<std::size_t>{0});
  CHECK(target::logit(0).rows(1) == std::vector<std::size_t>{0});  // a classifier's one row
  CHECK(target::sequence_log_probability({1, 2}).rows(5) == std::vector<std::size_t>{2, 3});
  REQUIRE_THROWS_MATCHES(target::logit(0, 5).rows(5), shape_error, what_contains("position 5 outside an output of 5 rows"));
  REQUIRE_THROWS_MATCHES(target::logit(0, -6).rows(5), shape_error, what_contains("position -6"));
  REQUIRE_THROWS_MATCHES(target::sequence_log_probability({1, 2}).rows(2), shape_error, what_contains("needs at least 3 output rows"));
  REQUIRE_THROWS_MATCHES(target::sequence_log_probability({}), shape_error, what_contains("continuation must not be empty"));
  REQUIRE_THROWS_MATCHES(target::log_probability(12).value(random_logits(1, 9, 1)), shape_error,
                         what_contains("token 12 outside an output of 9 columns"));
  REQUIRE_THROWS_MATCHES(target::contrast(1, 2, target_kind::contrast), error, what_contains("of must be logit"));
}

TEST_CASE("output_seed: wraps a target or any scalar", "[core][target]") {
  const tensor2 z = random_logits(1, 5, 9);
  output_seed from_target = target::log_probability(1);
  tensor2 d;
  CHECK(from_target(z, d) == Approx(target::log_probability(1).value(z)));
  output_seed custom([](std::size_t n) { return std::vector<std::size_t>{n - 1}; },
                     [](const tensor2& zz, tensor2& dz) {
                       dz = xt::ones<float>(zz.shape());
                       return double(xt::sum(zz)());
                     });
  CHECK(custom.rows(3) == std::vector<std::size_t>{2});
  CHECK(custom(z, d) == Approx(double(xt::sum(z)())));
  output_seed wrong_shape([](std::size_t) { return std::vector<std::size_t>{0}; },
                          [](const tensor2&, tensor2& dz) {
                            dz = tensor2({2, 2});
                            return 0.0;
                          });
  REQUIRE_THROWS_AS(wrong_shape(z, d), shape_error);
}

TEST_CASE("rng: the same seed gives the same stream, forks are independent", "[core][random]") {
  glassbox::rng a(42), b(42), c(43);
  std::vector<std::uint64_t> xa(100), xb(100), xc(100);
  for (auto& x : xa) x = a.next();
  for (auto& x : xb) x = b.next();
  for (auto& x : xc) x = c.next();
  CHECK(xa == xb);
  CHECK(xa != xc);
  // xoshiro256** seeded by splitmix64(0): the reference values were computed independently
  // (a direct Python transcription of Blackman & Vigna's reference code), so any platform must match.
  glassbox::rng zero(0);
  CHECK(zero.next() == 0x99ec5f36cb75f2b4ULL);
  CHECK(zero.next() == 0xbf6e1f784956452aULL);
  CHECK(zero.next() == 0x1a5f849d4933e6e0ULL);
  // A fork depends on (seed, stream) only, not on how far the parent has advanced.
  glassbox::rng p(7);
  const auto f1 = p.fork(3).next();
  p.next();
  CHECK(p.fork(3).next() == f1);
  CHECK(p.fork(4).next() != f1);

  SECTION("distributions") {
    glassbox::rng g(1);
    double sum = 0, sum2 = 0, usum = 0;
    const int n = 200000;
    for (int i = 0; i < n; ++i) {
      const double x = g.normal();
      sum += x;
      sum2 += x * x;
      const double u = g.uniform();
      REQUIRE((u >= 0.0 && u < 1.0));
      usum += u;
    }
    // Standard errors: mean 1/sqrt(n) = 0.0022, variance sqrt(2/n) = 0.0032, uniform mean 0.00065; 5 sigma.
    CHECK(sum / n == Approx(0.0).margin(0.011));
    CHECK(sum2 / n == Approx(1.0).margin(0.016));
    CHECK(usum / n == Approx(0.5).margin(0.0033));
    std::vector<int> counts(7, 0);
    for (int i = 0; i < 70000; ++i) ++counts[g.below(7)];
    for (int c : counts) CHECK(c == Approx(10000).margin(500));  // sd 93, 5 sigma
    std::vector<int> perm(50);
    std::iota(perm.begin(), perm.end(), 0);
    g.shuffle(perm.begin(), perm.end());
    CHECK(std::set<int>(perm.begin(), perm.end()).size() == 50);
    CHECK(!std::is_sorted(perm.begin(), perm.end()));
  }
}

namespace {

// A linear_bag without batched members, logits_at or thread safety: the dispatch's slow path.
struct plain_model {
  const models::linear_bag* inner;
  tensor2 logits(token_span t) const { return inner->logits(t); }
  std::size_t vocab_size() const { return inner->vocab_size(); }
};

// A model that returns NaN for sequences starting with token 3.
struct nan_model {
  tensor2 logits(token_span t) const {
    tensor2 z = xt::zeros<float>({t.size(), std::size_t{4}});
    if (!t.empty() && t[0] == 3) z(t.size() - 1, 2) = std::nanf("");
    return z;
  }
  std::size_t vocab_size() const { return 4; }
};

std::vector<token_sequence> random_inputs(std::size_t n, std::size_t vocab, std::uint64_t seed, bool ragged) {
  glassbox::rng g(seed);
  std::vector<token_sequence> out(n);
  for (auto& s : out) {
    s.resize(ragged ? 2 + g.below(5) : 5);
    for (auto& t : s) t = static_cast<token_id>(g.below(vocab));
  }
  return out;
}

}  // namespace

TEST_CASE("execution: results do not depend on batch size, threads or batched members", "[core][execution]") {
  const auto model = models::linear_bag::random(20, 6, 5, 3);
  const target t = target::log_probability(2);
  for (bool ragged : {false, true}) {
    const auto inputs = random_inputs(37, 20, ragged ? 2 : 1, ragged);
    std::vector<double> expected;
    for (const auto& s : inputs) expected.push_back(t.value_of(model.logits(s)));
    for (std::size_t batch : {1, 4, 64}) {
      for (std::size_t threads : {1, 2, 3}) {
        execution_options exec;
        exec.batch_size = batch;
        exec.threads = threads;
        CHECK(evaluate_target(model, inputs, t, exec) == expected);
        CHECK(evaluate_target(plain_model{&model}, inputs, t, exec) == expected);
      }
    }
  }
}

TEST_CASE("execution: embedding gradients match the closed form", "[core][execution]") {
  const auto model = models::linear_bag::random(10, 4, 3, 5);
  const token_sequence tokens{1, 7, 2, 9};
  const tensor2 e = model.embed(tokens);
  std::vector<tensor2> inputs(6, e);
  for (std::size_t k = 0; k < inputs.size(); ++k) inputs[k] *= float(k + 1) / 6;
  execution_options exec;
  exec.batch_size = 4;
  const auto grads = embedding_gradients(model, inputs, target::logit(2), exec);
  REQUIRE(grads.size() == 6);
  for (const auto& g : grads)  // d z_2 / d e_i = W[:, 2] for every position (all precede the last row)
    for (std::size_t i = 0; i < tokens.size(); ++i)
      for (std::size_t j = 0; j < 4; ++j) CHECK(g.gradient(i, j) == Approx(model.weights()(j, 2)));
  const auto values = evaluate_target_on_embeddings(model, inputs, target::logit(2), exec);
  for (std::size_t k = 0; k < inputs.size(); ++k) CHECK(values[k] == Approx(grads[k].value));
}

TEST_CASE("execution: progress is reported and cancellation stops the work", "[core][execution]") {
  const auto model = models::linear_bag::random(20, 6, 5, 3);
  const auto inputs = random_inputs(50, 20, 4, false);
  for (std::size_t threads : {1, 2}) {
    execution_options exec;
    exec.batch_size = 5;
    exec.threads = threads;
    std::size_t last = 0, calls = 0;
    exec.on_progress = [&](const progress& p) {
      CHECK(p.total == 50);
      CHECK(p.done >= last);
      last = p.done;
      ++calls;
      return true;
    };
    evaluate_target(model, inputs, target::logit(0), exec);
    CHECK(last == 50);
    CHECK(calls >= 2);
    exec.on_progress = [](const progress& p) { return p.done < 10; };
    REQUIRE_THROWS_MATCHES(evaluate_target(model, inputs, target::logit(0), exec, "occlusion"), cancelled,
                           what_contains("glassbox::occlusion: cancelled by the progress callback"));
    std::stop_source source;
    source.request_stop();
    exec.on_progress = nullptr;
    exec.stop = source.get_token();
    REQUIRE_THROWS_AS(evaluate_target(model, inputs, target::logit(0), exec), cancelled);
  }
}

TEST_CASE("execution: NaN from a model is reported with its evaluation", "[core][execution]") {
  const std::vector<token_sequence> inputs{{0, 1}, {1, 1}, {3, 0, 1}, {2}};
  REQUIRE_THROWS_MATCHES(evaluate_target(nan_model{}, inputs, target::logit(2), {}, "lime"), model_error,
                         what_contains("glassbox::lime: the model returned nan in its logits at evaluation 2"));
  execution_options exec;
  exec.batch_size = 0;
  REQUIRE_THROWS_MATCHES(evaluate_target(nan_model{}, inputs, target::logit(2), exec, "lime"), error,
                         what_contains("batch_size must be >= 1, got 0"));
}

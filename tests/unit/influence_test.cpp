// Tests of the influence module's shared foundations (measurements, results, curvature products)
// and of the methods on flat parameter vectors: exact, conjugate gradient, LiSSA and TracIn.
// (influence_kfac_test.cpp, compiled into the same program, tests K-FAC / EK-FAC.)
//
// References used here are independent of the code under test: finite differences of gradients
// in double, the Gauss-Newton bilinear form from finite-difference Jacobian-vector products of
// the logits, closed forms on a quadratic model, leave-one-out retraining to convergence on a
// convex model, and TracIn sums computed directly from loss gradients.
#include "glassbox/influence.hpp"

#include <Eigen/Core>
#include <Eigen/Eigenvalues>
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <numeric>
#include <span>
#include <string>
#include <vector>

#include "glassbox/core/execution.hpp"
#include "glassbox/core/random.hpp"
#include "glassbox/core/target.hpp"
#include "glassbox/models/gpt2.hpp"
#include "glassbox/models/linear_bag.hpp"
#include "test_support.hpp"

namespace {

using glassbox::hessian_kind;
using glassbox::measurement;
using glassbox::parameter_range;
using glassbox::tensor1;
using glassbox::tensor2;
using glassbox::token_id;
using glassbox::token_sequence;
using glassbox::token_span;
using glassbox::training_example;
using glassbox::test::what_contains;
using dmodel = glassbox::models::basic_gpt2<double>;
using fmodel = glassbox::models::gpt2;

// ---- a GPT-2 with one layer, width 8 and 1,048 parameters ------------------------------------------

glassbox::models::gpt2_config small_config() {
  glassbox::models::gpt2_config c;
  c.n_layer = 1;
  c.n_head = 2;
  c.n_embd = 8;
  c.n_positions = 8;
  c.vocab_size = 12;
  return c;  // wte 96 + wpe 64 + block 872 + ln_f 16 = 1,048 parameters
}

// A smaller GPT-2 (width 4, 316 parameters) for the tests whose point is not the size.
glassbox::models::gpt2_config tiny_config() {
  auto c = small_config();
  c.n_embd = 4;
  c.vocab_size = 8;
  return c;
}

// Parameters away from GPT-2's small initialisation so that every nonlinearity is exercised: N(0, 0.4)
// (LayerNorm weights 1 + N(0, 0.2)), rounded to float so that the float and double models are equal.
std::vector<double> test_parameters(const glassbox::models::gpt2_config& c, std::uint64_t seed) {
  const auto table = glassbox::models::gpt2_parameter_table(c);
  std::vector<double> p(table.back().offset + table.back().size);
  glassbox::rng g(seed);
  for (const auto& t : table) {
    const bool ln_weight = t.name.find("ln_") != std::string::npos && t.name.ends_with(".weight");
    for (std::size_t i = 0; i < t.size; ++i)
      p[t.offset + i] = static_cast<float>(ln_weight ? 1.0 + g.normal(0, 0.2) : g.normal(0, 0.4));
  }
  return p;
}

fmodel float_model(const dmodel& m) {
  std::vector<float> p(m.parameters().begin(), m.parameters().end());
  return fmodel(m.config(), p);
}

// Eight short examples of both kinds (next-token over a sequence, classification at the last row).
std::vector<training_example> small_training_set(std::uint64_t seed, std::size_t n = 8, std::size_t vocab = 12) {
  glassbox::rng g(seed);
  std::vector<training_example> out;
  for (std::size_t i = 0; i < n; ++i) {
    token_sequence t(3 + g.below(4));
    for (auto& x : t) x = static_cast<token_id>(g.below(vocab));
    out.push_back(i % 2 == 0 ? training_example::next_token(t)
                             : training_example::classification(t, static_cast<token_id>(g.below(vocab))));
  }
  return out;
}

template <class T>
std::vector<double> to_vector(const T& t) {
  return std::vector<double>(t.begin(), t.end());
}

double relative_error(const std::vector<double>& a, const std::vector<double>& b) {
  REQUIRE(a.size() == b.size());
  double num = 0, den = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    num += (a[i] - b[i]) * (a[i] - b[i]);
    den += b[i] * b[i];
  }
  return std::sqrt(num) / std::max(std::sqrt(den), 1e-300);
}

double pearson(const std::vector<double>& a, const std::vector<double>& b) {
  const double n = static_cast<double>(a.size());
  const double ma = std::accumulate(a.begin(), a.end(), 0.0) / n, mb = std::accumulate(b.begin(), b.end(), 0.0) / n;
  double sab = 0, saa = 0, sbb = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    sab += (a[i] - ma) * (b[i] - mb);
    saa += (a[i] - ma) * (a[i] - ma);
    sbb += (b[i] - mb) * (b[i] - mb);
  }
  return sab / std::sqrt(saa * sbb);
}

std::vector<double> row(const glassbox::influence_result& r, std::size_t q) {
  std::vector<double> out(r.training_size);
  for (std::size_t n = 0; n < out.size(); ++n) out[n] = r.scores(q, n);
  return out;
}

// Central finite differences of the mean-loss gradient of the double model along v:
// (grad J(theta + h v) - grad J(theta - h v)) / 2h. In double with h = 1e-5 the truncation error is
// ~h^2 |J''''| ~ 1e-10 and the rounding error ~1e-16 |grad| / h ~ 1e-11.
std::vector<double> gradient_difference(dmodel m, std::span<const training_example> ex, const std::vector<double>& v,
                                        double h = 1e-5) {
  const std::vector<double> p(m.parameters().begin(), m.parameters().end());
  std::vector<double> up = p, down = p;
  for (std::size_t i = 0; i < p.size(); ++i) {
    up[i] += h * v[i];
    down[i] -= h * v[i];
  }
  m.set_parameters(up);
  const auto gu = m.mean_loss_gradient(ex);
  m.set_parameters(down);
  const auto gd = m.mean_loss_gradient(ex);
  std::vector<double> out(p.size());
  for (std::size_t i = 0; i < p.size(); ++i) out[i] = (gu.gradient[i] - gd.gradient[i]) / (2 * h);
  return out;
}

// ---- a quadratic model with a known Hessian ------------------------------------------------------------
// L_n(theta) = 1/2 theta^T A theta + c_n . theta, with n = the example's first token, so that
// H = A for any set of examples and grad L_n = A theta + c_n. It has a Hessian-vector product only
// (no Gauss-Newton product), and can be told to return NaN for one example.
struct quadratic_model {
  Eigen::MatrixXd a;
  std::vector<Eigen::VectorXd> c;
  std::vector<float> theta;
  int nan_example = -1;

  tensor2 logits(token_span t) const { return tensor2::from_shape({t.size(), 2}); }
  std::size_t vocab_size() const { return 2; }
  std::size_t parameter_count() const { return theta.size(); }
  std::span<const float> parameters() const { return theta; }
  void set_parameters(std::span<const float> p) { theta.assign(p.begin(), p.end()); }
  Eigen::VectorXd th() const {
    Eigen::VectorXd t(static_cast<Eigen::Index>(theta.size()));
    for (std::size_t i = 0; i < theta.size(); ++i) t[static_cast<Eigen::Index>(i)] = theta[i];
    return t;
  }
  double loss(const training_example& e) const {
    const Eigen::VectorXd t = th();
    return 0.5 * t.dot(a * t) + c[static_cast<std::size_t>(e.tokens[0])].dot(t);
  }
  glassbox::value_and_gradient<tensor1> loss_gradient(const training_example& e) const {
    const Eigen::VectorXd g = a * th() + c[static_cast<std::size_t>(e.tokens[0])];
    glassbox::value_and_gradient<tensor1> out{loss(e), tensor1::from_shape({theta.size()})};
    for (std::size_t i = 0; i < theta.size(); ++i)
      out.gradient[i] = static_cast<float>(g[static_cast<Eigen::Index>(i)]);
    if (e.tokens[0] == nan_example) out.gradient[0] = NAN;
    return out;
  }
  tensor1 hessian_vector_product(std::span<const training_example>, std::span<const float> v) const {
    Eigen::VectorXd x(static_cast<Eigen::Index>(v.size()));
    for (std::size_t i = 0; i < v.size(); ++i) x[static_cast<Eigen::Index>(i)] = v[i];
    const Eigen::VectorXd y = a * x;
    auto out = tensor1::from_shape({v.size()});
    for (std::size_t i = 0; i < v.size(); ++i) out[i] = static_cast<float>(y[static_cast<Eigen::Index>(i)]);
    return out;
  }
};
static_assert(glassbox::TrainableModel<quadratic_model> &&
              glassbox::concepts::has_hessian_vector_product<quadratic_model> &&
              !glassbox::concepts::has_gauss_newton_vector_product<quadratic_model>);

training_example indexed(int n) { return {{n}, {0}}; }

// A quadratic model in R^4 with training examples 0..5 and query examples 6, 7; A symmetric with the given eigenvalues.
quadratic_model make_quadratic(std::vector<double> eigenvalues) {
  glassbox::rng g(3);
  const auto p = static_cast<Eigen::Index>(eigenvalues.size());
  Eigen::MatrixXd m(p, p);
  for (Eigen::Index i = 0; i < p; ++i)
    for (Eigen::Index j = 0; j < p; ++j) m(i, j) = g.normal();
  const Eigen::HouseholderQR<Eigen::MatrixXd> qr(m);
  const Eigen::MatrixXd q = qr.householderQ();
  Eigen::VectorXd mu(p);
  for (Eigen::Index i = 0; i < p; ++i) mu[i] = eigenvalues[static_cast<std::size_t>(i)];
  quadratic_model model;
  model.a = q * mu.asDiagonal() * q.transpose();
  for (int n = 0; n < 8; ++n) {
    Eigen::VectorXd c(p);
    for (Eigen::Index i = 0; i < p; ++i) c[i] = g.normal();
    model.c.push_back(c);
  }
  model.theta.assign(static_cast<std::size_t>(p), 0.0f);  // grad L_n = c_n at theta = 0
  return model;
}

}  // namespace

// ==== measurements ======================================================================================

TEST_CASE("influence measurements are weighted sums of losses with lower = better", "[influence][measurement]") {
  const dmodel dm(small_config(), test_parameters(small_config(), 1));
  const fmodel model = float_model(dm);
  const token_sequence prompt{1, 4, 2, 7}, completion{3, 9};
  token_sequence all = prompt;
  all.insert(all.end(), completion.begin(), completion.end());

  SECTION("completion: f = -sum_j log p(c_j | prompt, c_<j), as target::sequence_log_probability reads it") {
    const auto f = measurement::completion(prompt, completion);
    CHECK(f.kind() == glassbox::measurement_kind::completion);
    const double log_p = glassbox::target::sequence_log_probability(completion).value_of(model.logits(all));
    // Both sum the same float logits' log-softmax in double: agreement to float rounding of the loss.
    CHECK(glassbox::measurement_value(model, f) == Approx(-log_p).epsilon(1e-5));
  }
  SECTION("contrast: f = -(log p(token) - log p(foil)) at the row asked for") {
    const auto f = measurement::contrast(all, 5, 8, -2);
    const double c =
        glassbox::target::contrast(5, 8, glassbox::target_kind::log_probability, -2).value_of(model.logits(all));
    CHECK(glassbox::measurement_value(model, f) == Approx(-c).epsilon(1e-5));
  }
  SECTION("the gradient of a measurement is the derivative of its value (finite differences along a direction)") {
    // On the linear bag model (its loss is computed in double): central differences with h = 1e-2 on
    // float parameters of size ~1 have rounding error ~6e-8 / 1e-2 ~ 1e-5 relative, truncation ~h^2.
    auto bag = glassbox::models::linear_bag::random(10, 4, 3, 5);
    bag.set_l2(0.05);
    const auto f = measurement::contrast({1, 2, 3, 4}, 0, 2, -1);
    const auto g = glassbox::measurement_gradient(bag, f);
    glassbox::rng r(9);
    std::vector<float> u(bag.parameter_count());
    for (auto& x : u) x = static_cast<float>(r.normal());
    const std::vector<float> p0(bag.parameters().begin(), bag.parameters().end());
    const double h = 1e-2;
    std::vector<float> up = p0, down = p0;
    for (std::size_t i = 0; i < p0.size(); ++i) {
      up[i] = static_cast<float>(p0[i] + h * u[i]);
      down[i] = static_cast<float>(p0[i] - h * u[i]);
    }
    bag.set_parameters(up);
    const double fu = glassbox::measurement_value(bag, f);
    bag.set_parameters(down);
    const double fd = glassbox::measurement_value(bag, f);
    double directional = 0;
    for (std::size_t i = 0; i < u.size(); ++i) directional += static_cast<double>(g.gradient[i]) * u[i];
    CHECK((fu - fd) / (2 * h) == Approx(directional).epsilon(1e-3));
  }
  SECTION("bad measurements are refused") {
    REQUIRE_THROWS_MATCHES(measurement::completion({}, {1}), glassbox::shape_error,
                           what_contains("prompt must not be empty"));
    REQUIRE_THROWS_MATCHES(measurement::completion({1}, {}), glassbox::shape_error,
                           what_contains("completion must not be empty"));
    REQUIRE_THROWS_MATCHES(measurement::contrast({1, 2}, 3, 3), glassbox::error, what_contains("foil must differ"));
    REQUIRE_THROWS_MATCHES(measurement::contrast({1, 2}, 3, 4, 2), glassbox::shape_error,
                           what_contains("position must address one of 2 rows, got 2"));
    REQUIRE_THROWS_MATCHES(measurement::loss({{1, 2}, {3}}), glassbox::shape_error,
                           what_contains("labels must have one entry per token (2), got 1"));
  }
}

TEST_CASE("influence results rank the most helpful and harmful examples", "[influence][result]") {
  const std::vector<float> s{0.5f, -2.0f, 3.0f, 0.5f, -2.0f, 1.0f};
  const auto top = glassbox::most_helpful(s, 3);
  REQUIRE(top.size() == 3);
  CHECK(top[0] == glassbox::influence_entry{2, 3.0});
  CHECK(top[1] == glassbox::influence_entry{5, 1.0});
  CHECK(top[2] == glassbox::influence_entry{0, 0.5});  // ties: lower index first
  const auto bottom = glassbox::most_harmful(s, 10);
  REQUIRE(bottom.size() == 6);
  CHECK(bottom[0] == glassbox::influence_entry{1, -2.0});
  CHECK(bottom[1] == glassbox::influence_entry{4, -2.0});
  CHECK(bottom[5] == glassbox::influence_entry{2, 3.0});
  glassbox::self_influence_result self;
  self.scores = {1.0, 4.0, -1.0, 4.0};
  const auto ranked = self.ranked();
  CHECK(ranked[0].index == 1);
  CHECK(ranked[1].index == 3);
  CHECK(ranked[3].index == 2);
}

// ==== curvature products ================================================================================

TEST_CASE("gpt2 Hessian- and Gauss-Newton-vector products are exact", "[influence][curvature]") {
  const auto config = small_config();
  const dmodel dm(config, test_parameters(config, 2));
  const auto training = small_training_set(4);
  const std::size_t p = dm.parameter_count();
  REQUIRE(p == 1048);
  glassbox::rng g(6);
  std::vector<double> v(p), w(p);
  for (auto& x : v) x = static_cast<float>(g.normal());
  for (auto& x : w) x = static_cast<float>(g.normal());

  SECTION("H v equals central differences of the gradient, in double") {
    const auto hv = to_vector(dm.hessian_vector_product(training, v));
    const auto fd = gradient_difference(dm, training, v);
    CHECK(relative_error(hv, fd) < 1e-7);
    // H is symmetric: w . H v = v . H w (to rounding).
    const auto hw = to_vector(dm.hessian_vector_product(training, w));
    double whv = 0, vhw = 0;
    for (std::size_t i = 0; i < p; ++i) {
      whv += w[i] * hv[i];
      vhw += v[i] * hw[i];
    }
    CHECK(whv == Approx(vhw).epsilon(1e-10));
  }
  SECTION("w . G v equals the Gauss-Newton bilinear form from finite-difference Jacobian-vector products") {
    // a^T G b = (1/N) sum_n (1/R_n) sum_r (J_r a)^T (diag p_r - p_r p_r^T) (J_r b), with J_r a the
    // central difference of the logits along a (h = 1e-5: error ~1e-10).
    const auto gv = to_vector(dm.gauss_newton_vector_product(training, v));
    const std::vector<double> p0(dm.parameters().begin(), dm.parameters().end());
    auto jvp = [&](const std::vector<double>& dir, const training_example& e) {
      const double h = 1e-5;
      std::vector<double> up = p0, down = p0;
      for (std::size_t i = 0; i < p; ++i) {
        up[i] += h * dir[i];
        down[i] -= h * dir[i];
      }
      const auto zu = dmodel(config, up).logits(e.tokens), zd = dmodel(config, down).logits(e.tokens);
      xt::xtensor<double, 2> out = (zu - zd) / (2 * h);
      return out;
    };
    double form = 0;
    for (const auto& e : training) {
      const auto z = dm.logits(e.tokens);
      const auto ja = jvp(w, e), jb = jvp(v, e);
      std::size_t rows = 0;
      double sum = 0;
      for (std::size_t r = 0; r < e.labels.size(); ++r) {
        if (e.labels[r] == training_example::ignore_label) continue;
        ++rows;
        const std::size_t V = z.shape(1);
        double mx = -INFINITY, s = 0;
        for (std::size_t j = 0; j < V; ++j) mx = std::max(mx, z(r, j));
        std::vector<double> prob(V);
        for (std::size_t j = 0; j < V; ++j) s += (prob[j] = std::exp(z(r, j) - mx));
        double pa = 0, pb = 0, pab = 0;
        for (std::size_t j = 0; j < V; ++j) {
          prob[j] /= s;
          pa += prob[j] * ja(r, j);
          pb += prob[j] * jb(r, j);
          pab += prob[j] * ja(r, j) * jb(r, j);
        }
        sum += pab - pa * pb;
      }
      form += sum / static_cast<double>(rows) / static_cast<double>(training.size());
    }
    double wgv = 0;
    for (std::size_t i = 0; i < p; ++i) wgv += w[i] * gv[i];
    CHECK(wgv == Approx(form).epsilon(1e-7));
    // G is positive semi-definite: v . G v >= 0.
    double vgv = 0;
    for (std::size_t i = 0; i < p; ++i) vgv += v[i] * gv[i];
    CHECK(vgv >= 0);
  }
  SECTION("the float model's products run in double: they equal the double model's to float rounding") {
    const fmodel fm = float_model(dm);
    const std::vector<float> vf(v.begin(), v.end());
    CHECK(relative_error(to_vector(fm.hessian_vector_product(training, vf)),
                         to_vector(dm.hessian_vector_product(training, v))) < 1e-6);
    CHECK(relative_error(to_vector(fm.gauss_newton_vector_product(training, vf)),
                         to_vector(dm.gauss_newton_vector_product(training, v))) < 1e-6);
  }
  SECTION("the product over several examples is the mean of the per-example products") {
    const auto all = to_vector(dm.hessian_vector_product(training, v));
    std::vector<double> mean(p, 0.0);
    for (const auto& e : training) {
      const auto one = dm.hessian_vector_product(std::span<const training_example>(&e, 1), v);
      for (std::size_t i = 0; i < p; ++i) mean[i] += one[i] / static_cast<double>(training.size());
    }
    CHECK(relative_error(all, mean) < 1e-12);
  }
  SECTION("bad vectors are refused") {
    const std::vector<double> short_v(10, 0.0);
    REQUIRE_THROWS_MATCHES(dm.hessian_vector_product(training, short_v), glassbox::shape_error,
                           what_contains("v must hold 1048 values (parameter_count), got 10"));
  }
}

TEST_CASE("linear bag curvature products are exact and equal (the logits are linear)", "[influence][curvature]") {
  auto bag = glassbox::models::linear_bag::random(10, 4, 3, 8);
  bag.set_l2(0.1);
  std::vector<training_example> training;
  glassbox::rng g(10);
  for (int i = 0; i < 12; ++i)
    training.push_back(training_example::classification(
        {static_cast<token_id>(g.below(10)), static_cast<token_id>(g.below(10))}, static_cast<token_id>(g.below(3))));
  std::vector<float> v(bag.parameter_count());
  for (auto& x : v) x = static_cast<float>(g.normal());
  const auto hv = to_vector(bag.hessian_vector_product(training, v));
  CHECK(relative_error(to_vector(bag.gauss_newton_vector_product(training, v)), hv) < 1e-12);
  // Central differences of the (double-computed, float-returned) mean gradient along v, h = 1e-2:
  // float parameter rounding ~6e-8 / h and truncation ~h^2 leave ~1e-4 relative error.
  const std::vector<float> p0(bag.parameters().begin(), bag.parameters().end());
  auto mean_gradient = [&](double h) {
    std::vector<float> p = p0;
    for (std::size_t i = 0; i < p.size(); ++i) p[i] = static_cast<float>(p0[i] + h * v[i]);
    bag.set_parameters(p);
    std::vector<double> m(p.size(), 0.0);
    for (const auto& e : training) {
      const auto gr = bag.loss_gradient(e);
      for (std::size_t i = 0; i < p.size(); ++i) m[i] += gr.gradient[i] / static_cast<double>(training.size());
    }
    return m;
  };
  const auto up = mean_gradient(1e-2), down = mean_gradient(-1e-2);
  std::vector<double> fd(up.size());
  for (std::size_t i = 0; i < fd.size(); ++i) fd[i] = (up[i] - down[i]) / 2e-2;
  CHECK(relative_error(hv, fd) < 1e-3);
}

// ==== exact, CG and LiSSA ===============================================================================

TEST_CASE("the explicit curvature matrix equals finite differences of the gradient", "[influence][exact]") {
  // The float model's curvature products run in double, so its H is the double model's H at the same
  // parameters to float rounding; the reference is central differences (h = 1e-5) of the double
  // model's gradient along every basis vector.
  const auto config = tiny_config();
  const dmodel dm(config, test_parameters(config, 3));
  const fmodel fm = float_model(dm);
  const auto training = small_training_set(5, 8, 8);
  const std::size_t p = fm.parameter_count();
  for (const auto kind : {hessian_kind::exact, hessian_kind::gauss_newton}) {
    CAPTURE(glassbox::to_string(kind));
    const Eigen::MatrixXd h = glassbox::curvature_matrix(fm, training, kind, {}, {.threads = 2});
    REQUIRE(h.rows() == static_cast<Eigen::Index>(p));
    CHECK((h - h.transpose()).norm() == 0.0);  // symmetrised
    if (kind == hessian_kind::exact) {
      Eigen::MatrixXd fd(h.rows(), h.cols());
      std::vector<double> e(p, 0.0);
      for (std::size_t j = 0; j < p; ++j) {
        e[j] = 1;
        const auto col = gradient_difference(dm, training, e);
        e[j] = 0;
        for (std::size_t i = 0; i < p; ++i) fd(static_cast<Eigen::Index>(i), static_cast<Eigen::Index>(j)) = col[i];
      }
      CHECK((h - fd).norm() / fd.norm() < 1e-6);
    } else {
      const Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig(h, Eigen::EigenvaluesOnly);
      CHECK(eig.eigenvalues().minCoeff() > -1e-6 * eig.eigenvalues().maxCoeff());  // positive semi-definite
    }
  }
}

TEST_CASE("exact, CG and LiSSA influence agree on a one-layer GPT-2 of 1,048 parameters", "[influence][agreement]") {
  const auto config = small_config();
  const fmodel model = float_model(dmodel(config, test_parameters(config, 4)));
  const auto training = small_training_set(6);
  const std::vector<measurement> queries{measurement::loss(training_example::next_token({3, 1, 4, 1, 5})),
                                         measurement::completion({2, 7, 1}, {8, 2}),
                                         measurement::contrast({6, 0, 2}, 4, 9)};
  for (const auto kind : {hessian_kind::gauss_newton, hessian_kind::exact}) {
    CAPTURE(glassbox::to_string(kind));
    // Probe the spectrum, then damp so that H + lambda I is positive definite with condition number
    // <= ~21, and give LiSSA a scale inside its convergence region 0 < (mu + lambda) / scale < 2.
    const Eigen::MatrixXd h = glassbox::curvature_matrix(model, training, kind);
    const Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig(h, Eigen::EigenvaluesOnly);
    const double lo = eig.eigenvalues().minCoeff(), hi = eig.eigenvalues().maxCoeff();
    if (kind == hessian_kind::exact) CHECK(lo < 0);  // the true Hessian away from a minimum is indefinite
    const double lambda = std::max(0.0, -lo) + 0.05 * hi;
    const auto exact = glassbox::exact_influence(model, queries, training,
                                                 {.common = {.damping = lambda, .top_k = 3}, .hessian = kind});
    CHECK(*exact.lowest_eigenvalue == Approx(lo).margin(1e-12 * hi));
    CHECK(*exact.highest_eigenvalue == Approx(hi));
    CHECK((kind == hessian_kind::exact) == (exact.negative_eigenvalues > 0));
    const auto cg = glassbox::cg_influence(
        model, queries, training, {.common = {.damping = lambda, .top_k = 3}, .hessian = kind, .tolerance = 1e-7});
    const auto lissa = glassbox::lissa_influence(model, queries, training,
                                                 {.common = {.damping = lambda, .top_k = 3},
                                                  .hessian = kind,
                                                  .depth = 2000,
                                                  .scale = 0.6 * (hi + lambda),
                                                  .tolerance = 1e-7});
    for (std::size_t q = 0; q < queries.size(); ++q) {
      CAPTURE(q);
      // The curvature products are float-rounded (~1e-7 relative); amplified by the condition number
      // (<= ~21) the solutions agree to ~1e-5.
      CHECK(relative_error(row(cg, q), row(exact, q)) < 1e-4);
      CHECK(relative_error(row(lissa, q), row(exact, q)) < 1e-4);
      CHECK(cg.solves[q].converged);
      CHECK(cg.solves[q].relative_residual < 1e-5);
      CHECK(lissa.solves[q].relative_residual < 1e-5);
      CHECK(exact.solves[q].relative_residual < 1e-9);
      CHECK(exact.top[q] == glassbox::most_helpful(
                                std::span<const float>(exact.scores.data() + q * training.size(), training.size()), 3));
    }
    CHECK(exact.query_values == cg.query_values);
    CHECK(cg.model_evaluations > training.size());
  }
}

TEST_CASE("exact influence on a quadratic model matches its closed form", "[influence][exact]") {
  auto model = make_quadratic({0.5, 1.0, 2.0, 4.0});
  std::vector<training_example> training;
  for (int n = 0; n < 6; ++n) training.push_back(indexed(n));
  const std::vector<measurement> queries{measurement::loss(indexed(6)), measurement::loss(indexed(7))};
  const double lambda = 0.3;
  const Eigen::MatrixXd inverse = (model.a + lambda * Eigen::MatrixXd::Identity(4, 4)).inverse();
  const auto check = [&](const glassbox::influence_result& r, double tolerance) {
    for (std::size_t q = 0; q < 2; ++q)
      for (std::size_t n = 0; n < 6; ++n)
        CHECK(r.scores(q, n) == Approx(model.c[6 + q].dot(inverse * model.c[n])).epsilon(tolerance));
  };
  // Gradients and products are float-rounded: ~1e-6 relative.
  check(glassbox::exact_influence(model, queries, training,
                                  {.common = {.damping = lambda}, .hessian = hessian_kind::exact}),
        1e-5);
  check(glassbox::cg_influence(model, queries, training,
                               {.common = {.damping = lambda}, .hessian = hessian_kind::exact, .tolerance = 1e-9}),
        1e-5);
  check(glassbox::lissa_influence(
            model, queries, training,
            {.common = {.damping = lambda}, .hessian = hessian_kind::exact, .scale = 3, .tolerance = 1e-9}),
        1e-5);
  const auto self =
      glassbox::exact_self_influence(model, training, {.common = {.damping = lambda}, .hessian = hessian_kind::exact});
  for (std::size_t n = 0; n < 6; ++n)
    CHECK(self.scores[n] == Approx(model.c[n].dot(inverse * model.c[n])).epsilon(1e-5));
  const auto cg_self =
      glassbox::cg_self_influence(model, training, {.common = {.damping = lambda}, .hessian = hessian_kind::exact});
  const auto lissa_self = glassbox::lissa_self_influence(
      model, training, {.common = {.damping = lambda}, .hessian = hessian_kind::exact, .scale = 3, .tolerance = 1e-9});
  for (std::size_t n = 0; n < 6; ++n) {
    CHECK(cg_self.scores[n] == Approx(self.scores[n]).epsilon(1e-5));
    CHECK(lissa_self.scores[n] == Approx(self.scores[n]).epsilon(1e-5));
  }
}

TEST_CASE("influence detects negative curvature and LiSSA divergence", "[influence][lissa]") {
  std::vector<training_example> training;
  for (int n = 0; n < 6; ++n) training.push_back(indexed(n));
  const std::vector<measurement> queries{measurement::loss(indexed(6))};

  SECTION("CG refuses an indefinite H + lambda I") {
    // Eigenvalues -1, -1, -1, -1 + lambda < 0: every direction has p^T A p < 0.
    const auto model = make_quadratic({-1.0, -1.0, -1.0, -1.0});
    REQUIRE_THROWS_MATCHES(
        glassbox::cg_influence(model, queries, training, {.common = {.damping = 0.5}, .hessian = hessian_kind::exact}),
        glassbox::divergence_error, what_contains("negative curvature"));
  }
  SECTION("the exact solve reports an indefinite H and refuses only a singular one") {
    const auto model = make_quadratic({-1.0, 0.5, 1.0, 2.0});
    const auto r = glassbox::exact_influence(model, queries, training,
                                             {.common = {.damping = 0.1}, .hessian = hessian_kind::exact});
    CHECK(*r.lowest_eigenvalue == Approx(-1.0));
    CHECK(r.negative_eigenvalues == 1);
    REQUIRE_THROWS_MATCHES(glassbox::exact_influence(model, queries, training,
                                                     {.common = {.damping = 1.0}, .hessian = hessian_kind::exact}),
                           glassbox::error, what_contains("H + lambda I is singular"));
  }
  SECTION("LiSSA with too small a scale diverges and says so") {
    // Eigenvalues up to 4 need scale > (4 + lambda) / 2; scale 1 makes the recursion blow up.
    const auto model = make_quadratic({0.5, 1.0, 2.0, 4.0});
    REQUIRE_THROWS_MATCHES(
        glassbox::lissa_influence(model, queries, training,
                                  {.common = {.damping = 0.1}, .hessian = hessian_kind::exact, .scale = 1}),
        glassbox::divergence_error, what_contains("diverged"));
  }
  SECTION("LiSSA on a GPT-2 with too small a scale diverges") {
    const auto config = small_config();
    const fmodel model = float_model(dmodel(config, test_parameters(config, 4)));
    const auto gpt_training = small_training_set(6);
    const std::vector<measurement> q{measurement::loss(gpt_training[0])};
    const auto r = glassbox::exact_influence(model, q, gpt_training);
    REQUIRE_THROWS_MATCHES(
        glassbox::lissa_influence(model, q, gpt_training, {.depth = 200, .scale = 0.1 * *r.highest_eigenvalue}),
        glassbox::divergence_error, what_contains("increase scale"));
  }
  SECTION("LiSSA on an indefinite H never returns its estimate") {
    const auto model = make_quadratic({-0.5, 1.0, 2.0, 3.0});
    REQUIRE_THROWS_AS(glassbox::lissa_influence(
                          model, queries, training,
                          {.common = {.damping = 0.1}, .hessian = hessian_kind::exact, .depth = 3000, .scale = 4}),
                      glassbox::divergence_error);
  }
}

TEST_CASE("influence on chosen parameters uses the block of H and the gradients' entries", "[influence][exact]") {
  const auto config = tiny_config();
  const fmodel model = float_model(dmodel(config, test_parameters(config, 7)));
  const auto training = small_training_set(8, 8, 8);
  const std::vector<measurement> queries{measurement::loss(training_example::classification({1, 2, 3}, 4))};
  // The MLP output projection and the final LayerNorm: two ranges.
  std::vector<parameter_range> ranges;
  for (const auto& t : model.parameter_table())
    if (t.name == "h.0.mlp.c_proj.weight" || t.name == "ln_f.bias") ranges.push_back({t.offset, t.size});
  REQUIRE(ranges.size() == 2);
  const Eigen::MatrixXd full = glassbox::curvature_matrix(model, training, hessian_kind::gauss_newton);
  const Eigen::MatrixXd block = glassbox::curvature_matrix(model, training, hessian_kind::gauss_newton, ranges);
  std::vector<Eigen::Index> index;
  for (const auto& r : ranges)
    for (std::size_t i = 0; i < r.size; ++i) index.push_back(static_cast<Eigen::Index>(r.offset + i));
  const auto S = static_cast<Eigen::Index>(index.size());
  REQUIRE(block.rows() == S);
  Eigen::MatrixXd expected(S, S);
  for (Eigen::Index i = 0; i < S; ++i)
    for (Eigen::Index j = 0; j < S; ++j)
      expected(i, j) = full(index[static_cast<std::size_t>(i)], index[static_cast<std::size_t>(j)]);
  CHECK((block - expected).norm() <= 1e-12 * expected.norm());

  const double lambda = 0.01;
  const auto r =
      glassbox::exact_influence(model, queries, training, {.common = {.damping = lambda}, .parameters = ranges});
  const auto gq = glassbox::measurement_gradient(model, queries[0]).gradient;
  const Eigen::MatrixXd inverse = (expected + lambda * Eigen::MatrixXd::Identity(S, S)).inverse();
  Eigen::VectorXd q(S);
  for (Eigen::Index i = 0; i < S; ++i) q[i] = gq[static_cast<std::size_t>(index[static_cast<std::size_t>(i)])];
  for (std::size_t n = 0; n < training.size(); ++n) {
    const auto gn = glassbox::training_gradient(model, training[n], n).gradient;
    Eigen::VectorXd x(S);
    for (Eigen::Index i = 0; i < S; ++i) x[i] = gn[static_cast<std::size_t>(index[static_cast<std::size_t>(i)])];
    CHECK(r.scores(0, n) == Approx(q.dot(inverse * x)).epsilon(1e-5));
  }
  const auto cg = glassbox::cg_influence(model, queries, training,
                                         {.common = {.damping = lambda}, .parameters = ranges, .tolerance = 1e-8});
  CHECK(relative_error(row(cg, 0), row(r, 0)) < 1e-4);
}

TEST_CASE("influence results do not depend on the thread count, and self-influence is the diagonal",
          "[influence][exact]") {
  const auto config = tiny_config();
  const fmodel model = float_model(dmodel(config, test_parameters(config, 9)));
  const auto training = small_training_set(10, 6, 8);
  std::vector<measurement> queries;
  for (const auto& e : training) queries.push_back(measurement::loss(e));
  const auto one =
      glassbox::exact_influence(model, queries, training, {.common = {.execution = {.batch_size = 2, .threads = 1}}});
  const auto two =
      glassbox::exact_influence(model, queries, training, {.common = {.execution = {.batch_size = 2, .threads = 2}}});
  CHECK(std::equal(one.scores.begin(), one.scores.end(), two.scores.begin()));
  const auto self = glassbox::exact_self_influence(model, training);
  for (std::size_t n = 0; n < training.size(); ++n) {
    CHECK(self.scores[n] == Approx(one.scores(n, n)).epsilon(1e-5));
    CHECK(self.scores[n] > 0);                         // Gauss-Newton + damping is positive definite
    for (std::size_t m = 0; m < training.size(); ++m)  // the influence matrix of a symmetric H is symmetric
      CHECK(one.scores(n, m) == Approx(one.scores(m, n)).epsilon(1e-4).margin(1e-6 * std::abs(self.scores[n])));
  }
}

TEST_CASE("leave-one-out retraining of a convex model follows the influence prediction", "[influence][loo]") {
  // Multinomial logistic regression over fixed bag-of-embeddings features (the linear bag model with
  // L2): strictly convex, so retraining without z_n converges to a unique optimum. Removing z_n from
  // J = (1/N) sum L_n moves the optimum by (1/N) H^{-1} grad L_n, so the query loss changes by
  // s(q, n) / N to first order (Koh & Liang 2017, their Figure 2 check).
  const std::size_t N = 200, vocab = 24, width = 5, classes = 3;
  auto model = glassbox::models::linear_bag::random(vocab, width, classes, 31);
  model.set_l2(0.02);
  const auto teacher = glassbox::models::linear_bag::random(vocab, width, classes, 31);  // same embeddings
  glassbox::rng g(33);
  auto draw = [&] {
    token_sequence t(2 + g.below(5));
    for (auto& x : t) x = static_cast<token_id>(g.below(vocab));
    const auto z = teacher.logits(t);
    std::size_t best = 0;
    for (std::size_t c = 1; c < classes; ++c)
      if (z(t.size() - 1, c) > z(t.size() - 1, best)) best = c;
    if (g.bernoulli(0.15)) best = g.below(classes);  // label noise
    return training_example::classification(t, static_cast<token_id>(best));
  };
  std::vector<training_example> training;
  for (std::size_t n = 0; n < N; ++n) training.push_back(draw());
  const training_example test = draw();

  // Newton's method with backtracking on the mean loss, to a gradient norm of 1e-7 (float parameters).
  auto fit = [&](glassbox::models::linear_bag& m, std::span<const training_example> data) {
    const std::size_t p = m.parameter_count();
    auto mean_loss = [&] {
      double s = 0;
      for (const auto& e : data) s += m.loss(e);
      return s / static_cast<double>(data.size());
    };
    for (int it = 0; it < 40; ++it) {
      Eigen::VectorXd grad = Eigen::VectorXd::Zero(static_cast<Eigen::Index>(p));
      for (const auto& e : data) {
        const auto gr = m.loss_gradient(e);
        for (std::size_t i = 0; i < p; ++i)
          grad[static_cast<Eigen::Index>(i)] += gr.gradient[i] / static_cast<double>(data.size());
      }
      if (grad.norm() < 1e-7) return true;
      const Eigen::MatrixXd h = glassbox::curvature_matrix(m, data, hessian_kind::exact);
      const Eigen::VectorXd step = h.ldlt().solve(grad);
      const std::vector<float> theta0(m.parameters().begin(), m.parameters().end());
      const double before = mean_loss();
      for (double t = 1; t > 1e-4; t /= 2) {
        std::vector<float> theta = theta0;
        for (std::size_t i = 0; i < p; ++i)
          theta[i] = static_cast<float>(theta0[i] - t * step[static_cast<Eigen::Index>(i)]);
        m.set_parameters(theta);
        if (mean_loss() <= before) break;
      }
    }
    return false;
  };
  model.set_parameters(std::vector<float>(model.parameter_count(), 0.0f));
  REQUIRE(fit(model, training));
  const auto r = glassbox::exact_influence(model, std::vector<measurement>{measurement::loss(test)}, training,
                                           {.common = {.damping = 0.0}, .hessian = hessian_kind::exact});
  const double base = model.loss(test);

  // 50 examples drawn at random (seeded), each removed and the model retrained from the optimum.
  std::vector<std::size_t> order(N);
  std::iota(order.begin(), order.end(), 0);
  glassbox::rng(35).shuffle(order.begin(), order.end());
  std::vector<double> predicted, actual;
  for (std::size_t k = 0; k < 50; ++k) {
    const std::size_t n = order[k];
    std::vector<training_example> rest;
    for (std::size_t m = 0; m < N; ++m)
      if (m != n) rest.push_back(training[m]);
    auto retrained = model;
    REQUIRE(fit(retrained, rest));
    predicted.push_back(r.scores(0, n) / static_cast<double>(N));
    actual.push_back(retrained.loss(test) - base);
  }
  const double rho = pearson(predicted, actual);
  CAPTURE(rho);
  CHECK(rho > 0.95);
}

// ==== TracIn ============================================================================================

TEST_CASE("TracIn equals the learning-rate weighted sum of gradient dot products", "[influence][tracin]") {
  auto model = glassbox::models::linear_bag::random(10, 4, 3, 41);
  model.set_l2(0.01);
  std::vector<training_example> training;
  glassbox::rng g(42);
  for (int i = 0; i < 15; ++i)
    training.push_back(training_example::classification(
        {static_cast<token_id>(g.below(10)), static_cast<token_id>(g.below(10)), static_cast<token_id>(g.below(10))},
        static_cast<token_id>(g.below(3))));
  const std::vector<measurement> queries{measurement::loss(training_example::classification({1, 2}, 0)),
                                         measurement::contrast({3, 4, 5}, 1, 2)};
  std::vector<glassbox::tracin_checkpoint> checkpoints;
  const double rates[] = {0.1, 0.05, 0.01};
  for (double eta : rates) {
    auto t = tensor1::from_shape({model.parameter_count()});
    for (auto& x : t) x = static_cast<float>(g.normal(0, 0.5));
    checkpoints.push_back({t, eta});
  }
  const std::vector<float> original(model.parameters().begin(), model.parameters().end());

  // The direct computation, on parameters [begin, end).
  auto direct = [&](std::size_t begin, std::size_t end) {
    auto m = model;
    std::vector<std::vector<double>> s(queries.size(), std::vector<double>(training.size(), 0.0));
    std::vector<double> self(training.size(), 0.0);
    for (const auto& ck : checkpoints) {
      m.set_parameters(std::span<const float>(ck.parameters.data(), ck.parameters.size()));
      for (std::size_t n = 0; n < training.size(); ++n) {
        const auto gn = m.loss_gradient(training[n]).gradient;
        for (std::size_t i = begin; i < end; ++i) self[n] += ck.learning_rate * gn[i] * gn[i];
        for (std::size_t q = 0; q < queries.size(); ++q) {
          const auto gq = glassbox::measurement_gradient(m, queries[q]).gradient;
          for (std::size_t i = begin; i < end; ++i) s[q][n] += ck.learning_rate * static_cast<double>(gq[i]) * gn[i];
        }
      }
    }
    return std::pair{s, self};
  };

  SECTION("all parameters") {
    const auto r = glassbox::tracin_influence(model, checkpoints, queries, training, {.common = {.top_k = 4}});
    const auto [s, self] = direct(0, model.parameter_count());
    for (std::size_t q = 0; q < queries.size(); ++q)
      for (std::size_t n = 0; n < training.size(); ++n)
        CHECK(r.scores(q, n) == Approx(s[q][n]).epsilon(1e-5).margin(1e-7));
    CHECK(std::equal(original.begin(), original.end(), model.parameters().begin()));  // restored
    CHECK(r.query_values[0] == Approx(glassbox::measurement_value(model, queries[0])));
    CHECK(r.top[0].size() == 4);
    const auto si = glassbox::tracin_self_influence(model, checkpoints, training);
    for (std::size_t n = 0; n < training.size(); ++n) CHECK(si.scores[n] == Approx(self[n]).epsilon(1e-5));
  }
  SECTION("chosen parameters") {
    const parameter_range bias{model.parameter_count() - 3, 3};
    const auto r = glassbox::tracin_influence(model, checkpoints, queries, training, {.parameters = {bias}});
    const auto [s, self] = direct(bias.offset, bias.offset + bias.size);
    for (std::size_t q = 0; q < queries.size(); ++q)
      for (std::size_t n = 0; n < training.size(); ++n)
        CHECK(r.scores(q, n) == Approx(s[q][n]).epsilon(1e-5).margin(1e-7));
  }
  SECTION("a random projection is seeded and unbiased") {
    const auto a =
        glassbox::tracin_influence(model, checkpoints, queries, training, {.projection_dimension = 8, .seed = 5});
    const auto b =
        glassbox::tracin_influence(model, checkpoints, queries, training, {.projection_dimension = 8, .seed = 5});
    CHECK(std::equal(a.scores.begin(), a.scores.end(), b.scores.begin()));
    // The mean over 400 seeds is within 4 standard errors of the exact score (E[<S a, S b>] = <a, b>).
    const auto [s, self] = direct(0, model.parameter_count());
    const std::size_t seeds = 400;
    std::vector<double> sum(training.size(), 0.0), sum2(training.size(), 0.0);
    for (std::size_t k = 0; k < seeds; ++k) {
      const auto r = glassbox::tracin_influence(model, checkpoints, std::span(queries).first(1), training,
                                                {.projection_dimension = 8, .seed = 100 + k});
      for (std::size_t n = 0; n < training.size(); ++n) {
        sum[n] += r.scores(0, n);
        sum2[n] += static_cast<double>(r.scores(0, n)) * r.scores(0, n);
      }
    }
    for (std::size_t n = 0; n < training.size(); ++n) {
      const double mean = sum[n] / seeds, var = sum2[n] / seeds - mean * mean;
      CHECK(std::abs(mean - s[0][n]) <= 4 * std::sqrt(var / seeds) + 1e-6);
    }
  }
  SECTION("bad checkpoints are refused") {
    auto bad = checkpoints;
    bad[1].parameters = tensor1::from_shape({3});
    REQUIRE_THROWS_MATCHES(glassbox::tracin_influence(model, bad, queries, training), glassbox::shape_error,
                           what_contains("checkpoint 1 must hold 15 parameters, got 3"));
    bad = checkpoints;
    bad[0].learning_rate = -1;
    REQUIRE_THROWS_MATCHES(glassbox::tracin_influence(model, bad, queries, training), glassbox::error,
                           what_contains("learning rate of checkpoint 0 must be finite and >= 0, got -1"));
    REQUIRE_THROWS_MATCHES(
        glassbox::tracin_influence(model, checkpoints, queries, training, {.common = {.damping = 0.1}}),
        glassbox::error, what_contains("damping must be unset"));
  }
}

// ==== errors, cancellation ==============================================================================

TEST_CASE("influence methods reject bad input with clear messages", "[influence][errors]") {
  auto model = make_quadratic({1.0, 2.0, 3.0, 4.0});
  std::vector<training_example> training;
  for (int n = 0; n < 6; ++n) training.push_back(indexed(n));
  const std::vector<measurement> queries{measurement::loss(indexed(6))};
  const std::vector<measurement> none;
  using glassbox::cg_influence;
  using glassbox::exact_influence;
  using glassbox::lissa_influence;
  const glassbox::exact_influence_options exact_h{.hessian = hessian_kind::exact};

  REQUIRE_THROWS_MATCHES(exact_influence(model, none, training, exact_h), glassbox::shape_error,
                         what_contains("glassbox::exact_influence: queries must not be empty"));
  REQUIRE_THROWS_MATCHES(exact_influence(model, queries, {}, exact_h), glassbox::shape_error,
                         what_contains("training examples must not be empty"));
  REQUIRE_THROWS_MATCHES(
      exact_influence(model, queries, training, {.common = {.damping = -1.0}, .hessian = hessian_kind::exact}),
      glassbox::error, what_contains("damping must be finite and >= 0, got -1"));
  REQUIRE_THROWS_MATCHES(
      exact_influence(model, queries, training, {.hessian = hessian_kind::exact, .max_parameters = 3}), glassbox::error,
      what_contains("the curvature covers 4 parameters; it must be <= max_parameters (3)"));
  REQUIRE_THROWS_MATCHES(
      exact_influence(model, queries, training, {.hessian = hessian_kind::exact, .parameters = {{3, 2}}}),
      glassbox::shape_error, what_contains("parameter range 0 must lie in [0, 4), got [3, 5)"));
  REQUIRE_THROWS_MATCHES(
      exact_influence(model, queries, training, {.hessian = hessian_kind::exact, .parameters = {{0, 2}, {1, 2}}}),
      glassbox::shape_error, what_contains("parameter ranges must not overlap"));
  // The quadratic model has a Hessian-vector product only.
  REQUIRE_THROWS_MATCHES(
      exact_influence(model, queries, training), glassbox::error,
      what_contains("hessian gauss-newton needs the model member `tensor1 gauss_newton_vector_product"));
  REQUIRE_THROWS_MATCHES(cg_influence(model, queries, training, {.hessian = hessian_kind::exact, .max_iterations = 0}),
                         glassbox::error, what_contains("max_iterations must be >= 1, got 0"));
  REQUIRE_THROWS_MATCHES(lissa_influence(model, queries, training, {.hessian = hessian_kind::exact, .scale = 0}),
                         glassbox::error, what_contains("scale must be finite and > 0, got 0"));
  REQUIRE_THROWS_MATCHES(lissa_influence(model, queries, training, {.hessian = hessian_kind::exact, .depth = 0}),
                         glassbox::error, what_contains("depth must be >= 1, got 0"));
  model.nan_example = 4;
  REQUIRE_THROWS_MATCHES(
      exact_influence(model, queries, training, exact_h), glassbox::model_error,
      what_contains("glassbox::exact_influence: the model returned nan in the loss gradient of training "
                    "example 4 (parameter 0)"));
}

TEST_CASE("influence methods report progress and can be cancelled", "[influence][errors]") {
  const auto model = make_quadratic({1.0, 2.0, 3.0, 4.0});
  std::vector<training_example> training;
  for (int n = 0; n < 6; ++n) training.push_back(indexed(n));
  const std::vector<measurement> queries{measurement::loss(indexed(6)), measurement::loss(indexed(7))};
  std::vector<std::string> stages;
  glassbox::cg_influence_options o{.hessian = hessian_kind::exact};
  o.common.execution.on_progress = [&](const glassbox::progress& p) {
    if (stages.empty() || stages.back() != p.stage) stages.emplace_back(p.stage);
    return true;
  };
  glassbox::cg_influence(model, queries, training, o);
  CHECK(std::find(stages.begin(), stages.end(), "cg_influence: solves") != stages.end());
  CHECK(std::find(stages.begin(), stages.end(), "cg_influence: scores") != stages.end());
  o.common.execution.on_progress = [](const glassbox::progress& p) { return p.done < 1; };
  REQUIRE_THROWS_AS(glassbox::cg_influence(model, queries, training, o), glassbox::cancelled);
}

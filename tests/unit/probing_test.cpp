// Tests of the probing module: the logistic solver against finite differences, its optimality
// conditions and an independent Newton solve; ridge against an independent least-squares solve;
// planted directions, chance on held-out word types, control tasks and selectivity; the online
// code against its definition; activation collection against the model's hidden states; the
// activation and probe files; TCAV on a toy model with a planted concept, and its sensitivities
// on GPT-2 against finite differences; and the error messages.
#include <Eigen/Dense>
#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <glassbox/core/random.hpp>
#include <glassbox/io/activation_file.hpp>
#include <glassbox/probing.hpp>
#include <map>
#include <numbers>
#include <numeric>
#include <set>
#include <vector>

#include "glassbox/models/gpt2.hpp"
#include "test_support.hpp"

namespace {

using namespace glassbox;
using glassbox::test::what_contains;
using row_matrix = detail::row_matrix<double>;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

std::filesystem::path data_dir() {
  const auto dir = std::filesystem::path(GLASSBOX_TEST_DATA_DIR) / "probing";
  std::filesystem::create_directories(dir);
  return dir;
}

// Gaussian rows [n, d] with per-column scales (anisotropic, as activations are).
tensor2 gaussian_rows(std::size_t n, std::size_t d, rng& g, double outlier_scale = 1.0) {
  tensor2 x = tensor2::from_shape({n, d});
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t j = 0; j < d; ++j)
      x(i, j) = static_cast<float>(g.normal() * (j == 0 ? outlier_scale : 1.0 / std::sqrt(1.0 + 0.3 * j)));
  return x;
}

std::vector<double> random_unit(std::size_t d, rng& g) {
  std::vector<double> u(d);
  double n = 0;
  for (auto& e : u) {
    e = g.normal();
    n += e * e;
  }
  for (auto& e : u) e /= std::sqrt(n);
  return u;
}

double cosine(std::span<const double> a, std::span<const double> b) {
  double ab = 0, aa = 0, bb = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    ab += a[i] * b[i];
    aa += a[i] * a[i];
    bb += b[i] * b[i];
  }
  return ab / std::sqrt(aa * bb);
}

// Labels drawn from a logistic model: y = 1 with probability sigmoid(scale * x . u + bias).
std::vector<std::int32_t> logistic_labels(const tensor2& x, std::span<const double> u, double scale, double bias,
                                          rng& g) {
  std::vector<std::int32_t> y(x.shape(0));
  for (std::size_t i = 0; i < y.size(); ++i) {
    double s = bias;
    for (std::size_t j = 0; j < u.size(); ++j) s += scale * x(i, j) * u[j];
    y[i] = g.uniform() < 1.0 / (1.0 + std::exp(-s)) ? 1 : 0;
  }
  return y;
}

// Multinomial labels: argmax over classes of x W_k + Gumbel noise.
std::vector<std::int32_t> softmax_labels(const tensor2& x, std::size_t classes, double scale, rng& g) {
  const std::size_t d = x.shape(1);
  std::vector<double> w(classes * d);
  for (auto& e : w) e = scale * g.normal();
  std::vector<std::int32_t> y(x.shape(0));
  for (std::size_t i = 0; i < y.size(); ++i) {
    double best = -1e300;
    for (std::size_t k = 0; k < classes; ++k) {
      double s = -std::log(-std::log(std::max(g.uniform(), 1e-300)));
      for (std::size_t j = 0; j < d; ++j) s += x(i, j) * w[k * d + j];
      if (s > best) {
        best = s;
        y[i] = static_cast<std::int32_t>(k);
      }
    }
  }
  return y;
}

// The scikit-learn objective C sum_i loss_i + ||W||^2 / 2, computed directly in double.
double sklearn_objective(const tensor2& x, std::span<const std::int32_t> y, const linear_weights& m, double C) {
  double loss = 0;
  const std::size_t d = x.shape(1);
  for (std::size_t i = 0; i < x.shape(0); ++i) {
    std::vector<double> z(m.outputs);
    for (std::size_t k = 0; k < m.outputs; ++k) {
      z[k] = m.bias[k];
      for (std::size_t j = 0; j < d; ++j) z[k] += m.weight[k * d + j] * x(i, j);
    }
    if (m.outputs == 1) {
      loss += std::log1p(std::exp(-(y[i] == 1 ? z[0] : -z[0])));
    } else {
      const double mx = *std::max_element(z.begin(), z.end());
      double s = 0;
      for (const double v : z) s += std::exp(v - mx);
      loss += mx + std::log(s) - z[static_cast<std::size_t>(y[i])];
    }
  }
  double w2 = 0;
  for (const double w : m.weight) w2 += w * w;
  return C * loss + 0.5 * w2;
}

// An independent solver: Newton's method with the exact Hessian and a backtracking line search on
// the same objective, parameters [W | b] per class (multinomial with K weight vectors, or binary).
linear_weights newton_reference(const tensor2& x, std::span<const std::int32_t> y, std::size_t classes, double C) {
  const auto n = static_cast<Eigen::Index>(x.shape(0)), d = static_cast<Eigen::Index>(x.shape(1));
  const Eigen::Index k = classes == 2 ? 1 : static_cast<Eigen::Index>(classes), p = d + 1;
  Eigen::MatrixXd xa(n, p);
  for (Eigen::Index i = 0; i < n; ++i) {
    for (Eigen::Index j = 0; j < d; ++j) xa(i, j) = x(static_cast<std::size_t>(i), static_cast<std::size_t>(j));
    xa(i, d) = 1;
  }
  Eigen::VectorXd theta = Eigen::VectorXd::Zero(k * p);  // class-major
  const auto objective = [&](const Eigen::VectorXd& t, Eigen::VectorXd* grad, Eigen::MatrixXd* hess) {
    double f = 0;
    if (grad) *grad = Eigen::VectorXd::Zero(k * p);
    if (hess) *hess = Eigen::MatrixXd::Zero(k * p, k * p);
    for (Eigen::Index i = 0; i < n; ++i) {
      Eigen::VectorXd z(k);
      for (Eigen::Index c = 0; c < k; ++c) z[c] = xa.row(i).dot(t.segment(c * p, p));
      Eigen::VectorXd prob(k), r(k);
      if (k == 1) {
        const double yi = y[static_cast<std::size_t>(i)];
        f += std::log1p(std::exp(z[0])) - yi * z[0];
        prob[0] = 1 / (1 + std::exp(-z[0]));
        r[0] = prob[0] - yi;
      } else {
        const double mx = z.maxCoeff();
        prob = (z.array() - mx).exp();
        const double s = prob.sum();
        prob /= s;
        f += mx + std::log(s) - z[y[static_cast<std::size_t>(i)]];
        r = prob;
        r[y[static_cast<std::size_t>(i)]] -= 1;
      }
      if (grad)
        for (Eigen::Index c = 0; c < k; ++c) grad->segment(c * p, p) += r[c] * xa.row(i).transpose();
      if (hess) {
        const Eigen::MatrixXd outer = xa.row(i).transpose() * xa.row(i);
        for (Eigen::Index a = 0; a < k; ++a)
          for (Eigen::Index b = 0; b < k; ++b) {
            const double w = k == 1 ? prob[0] * (1 - prob[0]) : prob[a] * ((a == b ? 1.0 : 0.0) - prob[b]);
            hess->block(a * p, b * p, p, p) += w * outer;
          }
      }
    }
    for (Eigen::Index c = 0; c < k; ++c) {
      f += 0.5 / C * t.segment(c * p, d).squaredNorm();
      if (grad) grad->segment(c * p, d) += t.segment(c * p, d) / C;
      if (hess) hess->block(c * p, c * p, d, d).diagonal().array() += 1 / C;
    }
    return f;
  };
  for (int it = 0; it < 100; ++it) {
    Eigen::VectorXd g;
    Eigen::MatrixXd h;
    const double f = objective(theta, &g, &h);
    if (g.cwiseAbs().maxCoeff() < 1e-10) break;
    // The multinomial intercepts share one null direction: solve in the least-squares sense.
    const Eigen::VectorXd step = h.completeOrthogonalDecomposition().solve(-g);
    double a = 1;
    while (objective(theta + a * step, nullptr, nullptr) > f + 1e-4 * a * g.dot(step) && a > 1e-10) a *= 0.5;
    theta += a * step;
  }
  linear_weights m;
  m.outputs = static_cast<std::size_t>(k);
  m.features = static_cast<std::size_t>(d);
  for (Eigen::Index c = 0; c < k; ++c) {
    for (Eigen::Index j = 0; j < d; ++j) m.weight.push_back(theta[c * p + j]);
    m.bias.push_back(theta[c * p + d]);
  }
  if (k > 1) {
    double mean = 0;
    for (const double b : m.bias) mean += b;
    for (double& b : m.bias) b -= mean / static_cast<double>(k);
  }
  return m;
}

// Whether two float matrices are equal element for element (Catch cannot decompose xtensor's ==).
bool same_tensor(const tensor2& a, const tensor2& b) {
  return a.shape() == b.shape() && std::equal(a.begin(), a.end(), b.begin());
}

double max_relative_difference(std::span<const double> a, std::span<const double> b) {
  double scale = 0, diff = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    scale = std::max(scale, std::abs(b[i]));
    diff = std::max(diff, std::abs(a[i] - b[i]));
  }
  return diff / scale;
}

// A toy ActivationModel whose hidden states are known: h[l, t, j] = 10 token + l + 0.1 j + 0.01 t.
struct toy_activation_model {
  std::size_t layers = 3, width = 4;  // L = 2 blocks: 3 hidden states
  static constexpr bool thread_safe = true;
  std::size_t vocab_size() const { return 20; }
  tensor2 logits(token_span tokens) const { return xt::zeros<float>({tokens.size(), std::size_t{20}}); }
  tensor3 hidden_states(token_span tokens) const {
    tensor3 h = tensor3::from_shape({layers, tokens.size(), width});
    for (std::size_t l = 0; l < layers; ++l)
      for (std::size_t t = 0; t < tokens.size(); ++t)
        for (std::size_t j = 0; j < width; ++j)
          h(l, t, j) = static_cast<float>(10.0 * tokens[t] + static_cast<double>(l) + 0.1 * static_cast<double>(j) +
                                          0.01 * static_cast<double>(t));
    return h;
  }
  static double value(token_id token, std::size_t l, std::size_t t, std::size_t j) {
    return static_cast<float>(10.0 * token + static_cast<double>(l) + 0.1 * static_cast<double>(j) +
                              0.01 * static_cast<double>(t));
  }
};

// A toy InterventionModel for TCAV: hidden[0] = hidden[1] = E[tokens] (an identity block), and the
// logit of class 0 at each position is f(h) = u . h + sum_j c_j cos(a_j . h) with every a_j
// orthogonal to u, so d f / d h . u = |u|^2 > 0 for every input (the concept along u has a known,
// positive effect), while along any direction r orthogonal to u the sensitivity
// -sum_j c_j sin(a_j . h) (a_j . r) is symmetric around 0 over inputs h drawn symmetric around 0
// (such a direction has no effect: its TCAV score is 1/2 in expectation). Class 1 has logit 0.
struct toy_concept_model {
  std::size_t d = 8, vocab = 0;
  std::vector<double> embeddings;  // [V, d]
  std::vector<double> u;
  std::vector<std::vector<double>> a;
  std::vector<double> c;
  static constexpr bool thread_safe = true;

  std::size_t vocab_size() const { return 2; }
  tensor2 embed(token_span tokens) const {
    tensor2 e = tensor2::from_shape({tokens.size(), d});
    for (std::size_t t = 0; t < tokens.size(); ++t)
      for (std::size_t j = 0; j < d; ++j)
        e(t, j) = static_cast<float>(embeddings[static_cast<std::size_t>(tokens[t]) * d + j]);
    return e;
  }
  tensor3 hidden_states(token_span tokens) const {
    const tensor2 e = embed(tokens);
    tensor3 h = tensor3::from_shape({2, tokens.size(), d});
    for (std::size_t l = 0; l < 2; ++l) std::copy_n(e.data(), e.size(), h.data() + l * e.size());
    return h;
  }
  double f(const float* h, std::vector<double>* grad) const {
    double v = 0;
    if (grad) grad->assign(d, 0.0);
    for (std::size_t j = 0; j < d; ++j) v += u[j] * h[j];
    if (grad) *grad = u;
    for (std::size_t k = 0; k < a.size(); ++k) {
      double s = 0;
      for (std::size_t j = 0; j < d; ++j) s += a[k][j] * h[j];
      v += c[k] * std::cos(s);
      if (grad)
        for (std::size_t j = 0; j < d; ++j) (*grad)[j] -= c[k] * std::sin(s) * a[k][j];
    }
    return v;
  }
  tensor2 logits_from_hidden(token_span tokens, std::size_t, const tensor2& h) const {
    tensor2 z = xt::zeros<float>({tokens.size(), std::size_t{2}});
    for (std::size_t t = 0; t < tokens.size(); ++t) z(t, 0) = static_cast<float>(f(h.data() + t * d, nullptr));
    return z;
  }
  tensor2 logits(token_span tokens) const { return logits_from_hidden(tokens, 0, embed(tokens)); }
  value_and_gradient<tensor2> hidden_gradient(token_span tokens, std::size_t layer, const tensor2& h,
                                              const output_seed& seed) const {
    const tensor2 z = logits_from_hidden(tokens, layer, h);
    const auto rows = seed.rows(tokens.size());
    tensor2 rz = tensor2::from_shape({rows.size(), std::size_t{2}}), dz;
    for (std::size_t i = 0; i < rows.size(); ++i)
      for (std::size_t v = 0; v < 2; ++v) rz(i, v) = z(rows[i], v);
    value_and_gradient<tensor2> out{seed(rz, dz), xt::zeros<float>(h.shape())};
    std::vector<double> g;
    for (std::size_t i = 0; i < rows.size(); ++i) {
      f(h.data() + rows[i] * d, &g);
      for (std::size_t j = 0; j < d; ++j) out.gradient(rows[i], j) += static_cast<float>(dz(i, 0) * g[j]);
    }
    return out;
  }
};

// The toy concept model: words 0..1999 have random N(0, I) embeddings; word w + 2000 is w shifted
// by 3 u_hat (the planted concept) and word w + 4000 is w shifted by 3 r, a random direction
// orthogonal to u (and to nothing else). A concept's examples are the random examples with their
// last word replaced by its twin, so a concept differs from the random examples along its
// direction only.
toy_concept_model make_concept_model(std::uint64_t seed) {
  rng g(seed);
  toy_concept_model m;
  m.vocab = 6000;
  const std::size_t d = m.d;
  m.u = random_unit(d, g);
  const auto orthogonal = [&](std::vector<double> v) {
    double uv = 0;
    for (std::size_t j = 0; j < d; ++j) uv += m.u[j] * v[j];
    for (std::size_t j = 0; j < d; ++j) v[j] -= uv * m.u[j];
    double n = 0;
    for (const double e : v) n += e * e;
    for (auto& e : v) e /= std::sqrt(n);
    return v;
  };
  for (int k = 0; k < 4; ++k) {
    auto ak = orthogonal(random_unit(d, g));
    for (auto& e : ak) e *= 2.5;
    m.a.push_back(ak);
    m.c.push_back(1.0);
  }
  const auto r = orthogonal(random_unit(d, g));
  m.embeddings.resize(m.vocab * d);
  for (std::size_t w = 0; w < 2000; ++w)
    for (std::size_t j = 0; j < d; ++j) {
      const double e = g.normal();
      m.embeddings[w * d + j] = e;
      m.embeddings[(w + 2000) * d + j] = e + 3 * m.u[j];
      m.embeddings[(w + 4000) * d + j] = e + 3 * r[j];
    }
  return m;
}

// The same sequences with the last word replaced by its twin (word + offset).
std::vector<token_sequence> twins(std::vector<token_sequence> sequences, token_id offset) {
  for (auto& s : sequences) s.back() += offset;
  return sequences;
}

// Sequences of `length` random words from [first, last), the last word from [last_first, last_last).
std::vector<token_sequence> random_sequences(std::size_t count, std::size_t length, token_id first, token_id last,
                                             token_id last_first, token_id last_last, rng& g) {
  std::vector<token_sequence> out(count);
  for (auto& s : out) {
    for (std::size_t t = 0; t + 1 < length; ++t)
      s.push_back(first + static_cast<token_id>(g.below(static_cast<std::uint64_t>(last - first))));
    s.push_back(last_first + static_cast<token_id>(g.below(static_cast<std::uint64_t>(last_last - last_first))));
  }
  return out;
}

models::gpt2 tiny_gpt2(std::uint64_t seed) {
  models::gpt2_config c;
  c.n_layer = 2;
  c.n_head = 2;
  c.n_embd = 16;
  c.n_positions = 32;
  c.vocab_size = 23;
  return models::gpt2::random(c, seed);
}

}  // namespace

// =============================================================================================
// Logistic regression
// =============================================================================================

TEST_CASE("logistic objective: gradient against central finite differences", "[probing][logistic]") {
  // In double with h = 1e-5 the central difference of a smooth sum of ~100 terms is exact to ~1e-8
  // relative; 1e-6 leaves a margin. Binary and multinomial, with and without intercept.
  rng g(1);
  const tensor2 x = gaussian_rows(60, 5, g, 3.0);
  for (const std::size_t classes : {std::size_t{2}, std::size_t{4}}) {
    for (const bool intercept : {true, false}) {
      const auto y =
          classes == 2 ? logistic_labels(x, random_unit(5, g), 2.0, 0.3, g) : softmax_labels(x, classes, 1.0, g);
      detail::logistic_objective f(detail::rows_of(x), y, classes, 0.7, intercept);
      detail::vector<double> theta(f.size());
      for (Eigen::Index i = 0; i < theta.size(); ++i) theta[i] = 0.3 * g.normal();
      detail::vector<double> grad, ignored;
      f(theta, grad);
      for (Eigen::Index i = 0; i < theta.size(); ++i) {
        auto plus = theta, minus = theta;
        plus[i] += 1e-5;
        minus[i] -= 1e-5;
        const double numeric = (f(plus, ignored) - f(minus, ignored)) / 2e-5;
        CHECK(grad[i] == Approx(numeric).epsilon(1e-6).margin(1e-7));
      }
    }
  }
}

TEST_CASE("logistic regression: optimality and agreement with an independent Newton solve", "[probing][logistic]") {
  // At the optimum the gradient of sum loss + ||W||^2 / (2C) is 0; tol 1e-8 with ftol 0 drives it
  // down until the objective (a sum of 300 losses, about 1e2) stops decreasing in double, where
  // the gradient is below 1e-5. Newton with the exact Hessian converges quadratically to the same
  // point; the two share no code, and agree to 1e-6 relative.
  rng g(2);
  for (const std::size_t classes : {std::size_t{2}, std::size_t{3}, std::size_t{5}}) {
    for (const bool precondition : {true, false}) {
      CAPTURE(classes, precondition);
      const tensor2 x = gaussian_rows(300, 6, g, 4.0);
      const auto y =
          classes == 2 ? logistic_labels(x, random_unit(6, g), 2.0, -0.5, g) : softmax_labels(x, classes, 1.0, g);
      const double C = 0.5;
      const auto fit = fit_logistic_regression(
          x, y, classes, {.C = C, .tol = 1e-8, .ftol = 0, .max_iterations = 1000, .precondition = precondition});
      CHECK(fit.converged);
      CHECK(fit.gradient_max <= 1e-5);
      CHECK(fit.model.outputs == (classes == 2 ? 1 : classes));
      const auto reference = newton_reference(x, y, classes, C);
      CHECK(max_relative_difference(fit.model.weight, reference.weight) < 1e-6);
      CHECK(max_relative_difference(fit.model.bias, reference.bias) < 1e-5);
      CHECK(fit.objective == Approx(sklearn_objective(x, y, reference, C)).epsilon(1e-10));
      if (classes > 2) {
        double sum = 0;
        for (const double b : fit.model.bias) sum += b;
        CHECK(std::abs(sum) < 1e-9);  // reported centred
      }
    }
  }
}

TEST_CASE("logistic regression: defaults stop like scikit-learn and report how", "[probing][logistic]") {
  rng g(3);
  const tensor2 x = gaussian_rows(400, 8, g, 5.0);
  const auto y = logistic_labels(x, random_unit(8, g), 1.5, 0.0, g);
  const auto fit = fit_logistic_regression(x, y, 2);
  CHECK(fit.converged);
  CHECK((fit.stop_reason == "gradient" || fit.stop_reason == "objective"));
  CHECK(fit.iterations <= 100);
  // One iteration is not enough: not converged, and said so.
  const auto short_fit = fit_logistic_regression(x, y, 2, {.max_iterations = 1});
  CHECK_FALSE(short_fit.converged);
  CHECK(short_fit.stop_reason == "max_iterations");
  CHECK(short_fit.iterations == 1);
  // Without an intercept the bias is 0, and the optimum differs.
  const auto no_b = fit_logistic_regression(x, y, 2, {.fit_intercept = false});
  CHECK(no_b.model.bias == std::vector<double>{0.0});
  // Predictions follow the sign of the score; probabilities sum to 1.
  const auto p = predict_probabilities(fit.model, x);
  const auto cls = predict_classes(fit.model, x);
  for (std::size_t i = 0; i < x.shape(0); ++i) {
    CHECK(p(static_cast<Eigen::Index>(i), 0) + p(static_cast<Eigen::Index>(i), 1) == Approx(1.0));
    CHECK(cls[i] == (p(static_cast<Eigen::Index>(i), 1) > 0.5 ? 1 : 0));
  }
}

TEST_CASE("logistic regression: a planted linear direction is recovered", "[probing][logistic]") {
  // Labels from a logistic model along u in 20 dimensions; with 20000 rows the estimate's angular
  // error is about sqrt(d / n) / scale ~ 0.01, so the cosine is ~0.9999; the bound is 0.99.
  rng g(4);
  const std::size_t d = 20;
  const tensor2 x = gaussian_rows(20000, d, g);
  const auto u = random_unit(d, g);
  // Columns have different scales: plant the direction in the scaled space, x . u.
  const auto y = logistic_labels(x, u, 4.0, 0.2, g);
  const auto fit = fit_logistic_regression(x, y, 2);
  CHECK(cosine(fit.model.weight, u) > 0.99);
}

TEST_CASE("ridge regression equals an independent least-squares solve", "[probing][ridge]") {
  // Ridge with an intercept is least squares on [X - mean, sqrt(alpha) I] against [y - mean, 0];
  // Eigen's Householder QR solves that independently of the Cholesky route. They agree to 1e-9.
  rng g(5);
  const tensor2 x = gaussian_rows(200, 7, g, 3.0);
  std::vector<double> y(200);
  const auto u = random_unit(7, g);
  for (std::size_t i = 0; i < y.size(); ++i) {
    y[i] = 1.5 + g.normal() * 0.3;
    for (std::size_t j = 0; j < 7; ++j) y[i] += 2 * x(i, j) * u[j];
  }
  for (const double alpha : {0.0, 1.0, 50.0}) {
    const auto m = fit_ridge_regression(x, y, {.alpha = alpha});
    Eigen::MatrixXd a = Eigen::MatrixXd::Zero(200 + 7, 7);
    Eigen::VectorXd b = Eigen::VectorXd::Zero(200 + 7);
    Eigen::VectorXd mean = Eigen::VectorXd::Zero(7);
    double ymean = 0;
    for (std::size_t i = 0; i < 200; ++i) {
      for (std::size_t j = 0; j < 7; ++j) mean[static_cast<Eigen::Index>(j)] += x(i, j) / 200.0;
      ymean += y[i] / 200.0;
    }
    for (Eigen::Index i = 0; i < 200; ++i) {
      for (Eigen::Index j = 0; j < 7; ++j)
        a(i, j) = x(static_cast<std::size_t>(i), static_cast<std::size_t>(j)) - mean[j];
      b[i] = y[static_cast<std::size_t>(i)] - ymean;
    }
    for (Eigen::Index j = 0; j < 7; ++j) a(200 + j, j) = std::sqrt(alpha);
    const Eigen::VectorXd w = a.householderQr().solve(b);
    for (std::size_t j = 0; j < 7; ++j) CHECK(m.weight[j] == Approx(w[static_cast<Eigen::Index>(j)]).epsilon(1e-9));
    CHECK(m.bias[0] == Approx(ymean - mean.dot(w)).epsilon(1e-9));
    const auto predicted = predict_values(m, x);
    CHECK(r2_score(y, predicted) > 0.9);
  }
}

// =============================================================================================
// Metrics, splits, control tasks
// =============================================================================================

TEST_CASE("metrics: accuracy, macro-F1 and R^2 by hand", "[probing][metrics]") {
  // truth 0 0 1 1 2, predicted 0 1 1 1 0: class 0 tp 1 fp 1 fn 1 -> F1 1/2; class 1 tp 2 fp 1 fn 0
  // -> 4/5; class 2 tp 0 fn 1 -> 0. Macro = (0.5 + 0.8 + 0) / 3.
  const std::vector<std::int32_t> truth{0, 0, 1, 1, 2}, predicted{0, 1, 1, 1, 0};
  CHECK(accuracy_score(truth, predicted) == Approx(0.6));
  CHECK(macro_f1_score(truth, predicted) == Approx((0.5 + 0.8 + 0.0) / 3));
  // A class only predicted counts (scikit-learn's labels = truth union predicted).
  CHECK(macro_f1_score(std::vector<std::int32_t>{0, 0}, std::vector<std::int32_t>{0, 3}) == Approx((2.0 / 3 + 0) / 2));
  CHECK(r2_score(std::vector<double>{1, 2, 3}, std::vector<double>{1, 2, 3}) == 1.0);
  CHECK(r2_score(std::vector<double>{1, 2, 3}, std::vector<double>{2, 2, 2}) == Approx(0.0).margin(1e-15));
  CHECK(r2_score(std::vector<double>{2, 2}, std::vector<double>{2, 2}) == 1.0);
  CHECK(r2_score(std::vector<double>{2, 2}, std::vector<double>{2, 3}) == 0.0);
  REQUIRE_THROWS_MATCHES(accuracy_score(truth, std::vector<std::int32_t>{1}), shape_error,
                         what_contains("glassbox::accuracy_score: predicted must hold 5 entries, got 1"));
}

TEST_CASE("grouped split: groups never straddle parts, fractions hold, seeds reproduce", "[probing][split]") {
  std::vector<std::int32_t> groups;
  for (std::int32_t s = 0; s < 1000; ++s)
    for (int t = 0; t < 1 + s % 7; ++t) groups.push_back(s);
  const auto a = grouped_split(groups, groups.size(), 9);
  const auto b = grouped_split(groups, groups.size(), 9);
  const auto c = grouped_split(groups, groups.size(), 10);
  CHECK(a == b);
  CHECK(a != c);
  std::map<std::int32_t, std::set<std::int32_t>> parts_of;
  std::array<std::set<std::int32_t>, 3> groups_in;
  for (std::size_t i = 0; i < groups.size(); ++i) {
    parts_of[groups[i]].insert(a[i]);
    groups_in[static_cast<std::size_t>(a[i])].insert(groups[i]);
  }
  for (const auto& [group, parts] : parts_of) CHECK(parts.size() == 1);
  CHECK(groups_in[0].size() == 800);
  CHECK(groups_in[1].size() == 100);
  CHECK(groups_in[2].size() == 100);
  REQUIRE_THROWS_MATCHES(
      grouped_split(groups, groups.size(), 1, 0.9, 0.1), error,
      what_contains("glassbox::grouped_split: fractions must satisfy train > 0, dev >= 0, train + dev < 1"));
}

TEST_CASE("control task: one label per word type, drawn from the training labels", "[probing][control]") {
  rng g(6);
  std::vector<token_id> words;
  std::vector<double> labels;
  std::vector<std::int32_t> split;
  for (int i = 0; i < 20000; ++i) {
    words.push_back(static_cast<token_id>(g.below(400)));
    labels.push_back(g.bernoulli(0.25) ? 1.0 : 0.0);  // 25% ones
    split.push_back(i < 15000 ? 0 : 2);
  }
  // Test rows carry label 5, which the control must never draw (it draws from training rows).
  for (int i = 15000; i < 20000; ++i) labels[static_cast<std::size_t>(i)] = 5;
  const auto control = control_task_labels(words, labels, split, 3);
  std::map<token_id, double> of_type;
  std::size_t ones = 0;
  for (std::size_t i = 0; i < words.size(); ++i) {
    const auto [it, inserted] = of_type.emplace(words[i], control[i]);
    CHECK(it->second == control[i]);
    CHECK((control[i] == 0.0 || control[i] == 1.0));
  }
  for (const auto& [w, v] : of_type) ones += v == 1.0;
  // 400 types, each 1 with probability 0.25: 100 +- 8.7; 4 sigma bounds.
  CHECK(ones > 65);
  CHECK(ones < 135);
  CHECK(control_task_labels(words, labels, split, 3) == control);
}

// =============================================================================================
// probe_layers
// =============================================================================================

namespace {

// A set with word types 0..W-1 whose activations are a random embedding of the word plus noise;
// layer 0 carries noise only, layer 1 carries the property linearly (along u), layer 2 carries it
// plus the word embedding. Sequences of 10 rows group the split.
activation_set synthetic_set(std::size_t n, std::size_t d, std::size_t words, std::uint64_t seed,
                             bool random_labels = false) {
  rng g(seed);
  std::vector<double> emb(words * d);
  for (auto& e : emb) e = g.normal();
  const auto u = random_unit(d, g);
  activation_set s;
  s.property = "planted";
  s.layers = {0, 1, 2};
  s.width = d;
  s.class_names = {"no", "yes"};
  for (int k = 0; k < 3; ++k) s.activations.push_back(tensor2::from_shape({n, d}));
  for (std::size_t i = 0; i < n; ++i) {
    const auto w = static_cast<token_id>(g.below(words));
    s.word_ids.push_back(w);
    s.sequence_ids.push_back(static_cast<std::int32_t>(i / 10));
    std::vector<double> z(d);
    for (auto& e : z) e = g.normal();
    double proj = 0;
    for (std::size_t j = 0; j < d; ++j) proj += z[j] * u[j];
    const int label = random_labels ? (g.bernoulli(0.5) ? 1 : 0) : (proj + 0.2 * g.normal() > 0 ? 1 : 0);
    s.labels.push_back(label);
    for (std::size_t j = 0; j < d; ++j) {
      s.activations[0](i, j) = static_cast<float>(g.normal());
      s.activations[1](i, j) = static_cast<float>(z[j]);
      s.activations[2](i, j) = static_cast<float>(z[j] + emb[static_cast<std::size_t>(w) * d + j]);
    }
  }
  return s;
}

}  // namespace

TEST_CASE("probe_layers: finds the layer that encodes a planted property, with selectivity", "[probing][probe]") {
  const activation_set s = synthetic_set(6000, 16, 50, 7);
  const auto r = probe_layers(s, {.seed = 1});
  REQUIRE(r.layers.size() == 3);
  CHECK(r.probe == "logistic");
  CHECK(r.classes == 2);
  CHECK(r.train_rows + r.dev_rows + r.test_rows == 6000);
  CHECK_FALSE(r.split_from_set);
  CHECK(r.warnings.empty());
  const auto& noise = r.layers[0];
  const auto& planted = r.layers[1];
  // Layer 0 is noise: chance (+- 4 sigma of 600 test rows = 0.08), selectivity near 0.
  CHECK(std::abs(*noise.test_accuracy - 0.5) < 0.08);
  // Layer 1: the labels are a noisy threshold of x . u (noise 0.2): ~94% accuracy.
  CHECK(*planted.test_accuracy > 0.9);
  CHECK(*planted.macro_f1 > 0.9);
  CHECK(*planted.train_accuracy > 0.9);
  // The control task cannot be read from layer 1 (it has no word information): selectivity is large.
  CHECK(std::abs(*planted.control_accuracy - 0.5) < 0.1);
  CHECK(*planted.selectivity > 0.3);
  CHECK(*planted.selectivity == Approx(*planted.test_accuracy - *planted.control_accuracy));
  CHECK(planted.converged);
  // Layer 2 adds the word embedding (50 types in 16 dimensions): the control task becomes partly
  // learnable, so selectivity drops below layer 1's while the task accuracy stays high.
  CHECK(*r.layers[2].control_accuracy > *planted.control_accuracy + 0.05);
  CHECK(*r.layers[2].selectivity < *planted.selectivity);
  // The probe's weights recover the planted direction.
  rng g(7);
  std::vector<double> emb(50 * 16);
  for (auto& e : emb) e = g.normal();
  const auto u = random_unit(16, g);
  CHECK(cosine(planted.weights.weight, u) > 0.95);
  // Same seed, same result, whatever the thread count.
  const auto again = probe_layers(s, {.seed = 1, .execution = {.threads = 1}});
  for (std::size_t k = 0; k < 3; ++k) {
    CHECK(again.layers[k].test_accuracy == r.layers[k].test_accuracy);
    CHECK(again.layers[k].control_accuracy == r.layers[k].control_accuracy);
    CHECK(again.layers[k].weights.weight == r.layers[k].weights.weight);
  }
}

TEST_CASE("probe_layers: random labels give chance task and control accuracy on held-out word types",
          "[probing][probe][control]") {
  // Word types 0..199 in training, 200..299 only in test: the control probe cannot know their
  // labels, and the task labels are independent of everything. 3000 test rows: 4 sigma = 0.037.
  activation_set s = synthetic_set(9000, 16, 300, 8, /*random_labels=*/true);
  s.split.resize(s.rows());
  rng g(8);
  for (std::size_t i = 0; i < s.rows(); ++i) {
    s.word_ids[i] = static_cast<token_id>(i < 6000 ? g.below(200) : 200 + g.below(100));
    s.split[i] = i < 6000 ? 0 : 2;
  }
  const auto r = probe_layers(s, {.layers = {1, 2}, .seed = 2});
  CHECK(r.split_from_set);
  CHECK(r.dev_rows == 0);
  for (const auto& l : r.layers) {
    CHECK(std::abs(*l.test_accuracy - 0.5) < 0.037);
    CHECK(std::abs(*l.control_accuracy - 0.5) < 0.037);
    CHECK(std::abs(*l.selectivity) < 0.06);
    CHECK_FALSE(l.dev_accuracy.has_value());
  }
}

TEST_CASE("probe_layers: one word type (a fixed marker) has no control task, and says so",
          "[probing][probe][control]") {
  // Every row read at the same token (last pooling at a marker): the control task would give all
  // rows one constant label, so it is skipped with a warning instead of reporting accuracy 1.
  activation_set s = synthetic_set(2000, 8, 1, 9);
  std::fill(s.word_ids.begin(), s.word_ids.end(), token_id{2});
  const auto r = probe_layers(s, {.layers = {1}, .mdl = true, .seed = 3});
  REQUIRE(r.layers.size() == 1);
  CHECK(*r.layers[0].test_accuracy > 0.85);
  CHECK_FALSE(r.layers[0].control_accuracy.has_value());
  CHECK_FALSE(r.layers[0].selectivity.has_value());
  CHECK_FALSE(r.layers[0].control_compression.has_value());
  CHECK(r.layers[0].compression.has_value());
  REQUIRE(r.warnings.size() == 1);
  CHECK_THAT(r.warnings[0], Catch::Matchers::Contains("no control task: every row has the same word id (2)"));
  // Two word types are enough for the control task.
  s.word_ids[0] = 3;
  CHECK(probe_layers(s, {.layers = {1}, .seed = 3}).layers[0].selectivity.has_value());
}

TEST_CASE("probe_layers: ridge for real values, MDL, and the MLP probe", "[probing][probe]") {
  activation_set s = synthetic_set(3000, 8, 30, 9);
  SECTION("real-valued labels are probed by ridge regression with R^2") {
    activation_set real = s;
    real.kind = label_kind::real;
    real.class_names.clear();
    for (std::size_t i = 0; i < real.rows(); ++i) {
      double v = 0;
      for (std::size_t j = 0; j < 8; ++j) v += (j + 1.0) * real.activations[1](i, j);
      real.labels[i] = v;
    }
    const auto r = probe_layers(real, {.seed = 3});
    CHECK(r.probe == "ridge");
    CHECK(*r.layers[1].test_r2 > 0.99);  // an exact linear function: R^2 ~ 1 up to the ridge shrinkage
    CHECK(std::abs(*r.layers[0].test_r2) < 0.05);
    CHECK_FALSE(r.layers[1].test_accuracy.has_value());
    CHECK(r.layers[1].selectivity.has_value());
    REQUIRE_THROWS_MATCHES(probe_layers(real, {.mdl = true}), error,
                           what_contains("glassbox::probe_layers: mdl needs class labels"));
  }
  SECTION("MDL: the informative layer compresses, the noise layer does not") {
    const auto r = probe_layers(s, {.layers = {0, 1}, .mdl = true, .seed = 4});
    const auto& noise = r.layers[0];
    const auto& planted = r.layers[1];
    REQUIRE(planted.mdl.has_value());
    CHECK(*planted.compression > 2.0);
    CHECK(*planted.codelength_bits < planted.mdl->uniform_codelength_bits / 2);
    // Noise: the online code cannot beat the uniform code by much (it pays for what it learns).
    CHECK(*noise.compression < 1.1);
    CHECK(*planted.control_compression < *planted.compression);
    CHECK(planted.mdl->uniform_codelength_bits == Approx(static_cast<double>(r.train_rows)));  // log2(2) = 1 bit each
  }
  SECTION("the MLP probe learns what a linear probe cannot, and carries the warning") {
    activation_set xor_set = s;
    for (std::size_t i = 0; i < xor_set.rows(); ++i)
      xor_set.labels[i] = (xor_set.activations[1](i, 0) > 0) != (xor_set.activations[1](i, 1) > 0) ? 1 : 0;
    const auto linear = probe_layers(xor_set, {.layers = {1}, .control = false, .seed = 5});
    const auto mlp = probe_layers(xor_set, {.layers = {1}, .probe = probe_kind::mlp, .control = false, .seed = 5});
    CHECK(*linear.layers[0].test_accuracy < 0.65);
    CHECK(*mlp.layers[0].test_accuracy > 0.85);
    REQUIRE(mlp.warnings.size() == 1);
    CHECK(mlp.warnings[0].find("Hewitt & Liang") != std::string::npos);
    const auto again = probe_layers(xor_set, {.layers = {1}, .probe = probe_kind::mlp, .control = false, .seed = 5});
    CHECK(again.layers[0].test_accuracy == mlp.layers[0].test_accuracy);
  }
}

TEST_CASE("probe_layers: bad input fails with its message", "[probing][probe][errors]") {
  activation_set s = synthetic_set(200, 4, 10, 10);
  REQUIRE_THROWS_MATCHES(probe_layers(s, {.layers = {7}}), shape_error,
                         what_contains("glassbox::probe_layers: layers must be layers of the set (0, 1, 2), got 7"));
  REQUIRE_THROWS_MATCHES(probe_layers(s, {.logistic = {.C = 0}}), error,
                         what_contains("glassbox::probe_layers: C must be > 0 and finite, got 0"));
  activation_set bad = s;
  bad.word_ids.pop_back();
  REQUIRE_THROWS_MATCHES(probe_layers(bad), shape_error,
                         what_contains("glassbox::probe_layers: word_ids must hold 200 entries, got 199"));
  bad = s;
  bad.labels[3] = 0.5;
  REQUIRE_THROWS_MATCHES(probe_layers(bad), error,
                         what_contains("glassbox::probe_layers: class labels must be integers >= 0, got 0.5 at row 3"));
  bad = s;
  bad.split.assign(200, 0);
  REQUIRE_THROWS_MATCHES(
      probe_layers(bad), error,
      what_contains("glassbox::probe_layers: the split must have training and test rows, got 200 train"));
  bad = s;
  bad.activations[1](5, 2) = std::numeric_limits<float>::quiet_NaN();
  REQUIRE_THROWS_MATCHES(
      probe_layers(bad), error,
      what_contains("glassbox::probe_layers: the activations of layer 1 must be finite, got nan at row 5, column 2"));
  bad = s;
  bad.activations.pop_back();
  REQUIRE_THROWS_MATCHES(
      probe_layers(bad), shape_error,
      what_contains("glassbox::probe_layers: the set must hold one activation matrix per layer (3), got 2"));
  rng g(1);
  const tensor2 x = gaussian_rows(10, 3, g);
  REQUIRE_THROWS_MATCHES(fit_logistic_regression(x, std::vector<std::int32_t>(10, 2), 2), error,
                         what_contains("glassbox::fit_logistic_regression: labels must be in [0, 2), got 2 at row 0"));
  REQUIRE_THROWS_MATCHES(fit_logistic_regression(x, std::vector<std::int32_t>(9, 0), 2), shape_error,
                         what_contains("glassbox::fit_logistic_regression: y must hold one label per row (10), got 9"));
  REQUIRE_THROWS_MATCHES(fit_logistic_regression(x, std::vector<std::int32_t>(10, 0), 1), error,
                         what_contains("glassbox::fit_logistic_regression: classes must be >= 2, got 1"));
  REQUIRE_THROWS_MATCHES(fit_ridge_regression(x, std::vector<double>(10, 0.0), {.alpha = -1}), error,
                         what_contains("glassbox::fit_ridge_regression: alpha must be >= 0 and finite, got -1"));
  REQUIRE_THROWS_MATCHES(online_codelength(x, std::vector<std::int32_t>(10, 0), 2, {.fractions = {0.5, 0.4, 1.0}}),
                         error,
                         what_contains("glassbox::online_codelength: fractions must increase, got 0.4 after 0.5"));
  REQUIRE_THROWS_MATCHES(fit_mlp_probe(x, std::vector<std::int32_t>(10, 0), 2, {.hidden = 0}), error,
                         what_contains("glassbox::fit_mlp_probe: hidden must be >= 1, got 0"));
}

// =============================================================================================
// MDL
// =============================================================================================

TEST_CASE("online code: the paper's blocks, the uniform first block, and the sum of block costs", "[probing][mdl]") {
  rng g(11);
  const tensor2 x = gaussian_rows(10000, 6, g);
  const auto y = softmax_labels(x, 3, 1.5, g);
  const auto tight = logistic_regression_options{.tol = 1e-8, .ftol = 0, .max_iterations = 500};
  const auto code = online_codelength(x, y, 3, {.logistic = tight});
  CHECK(code.block_ends == std::vector<std::size_t>{10, 20, 40, 80, 160, 320, 625, 1250, 2500, 5000, 10000});
  CHECK(code.block_bits.front() == Approx(10 * std::log2(3.0)));
  CHECK(code.uniform_codelength_bits == Approx(10000 * std::log2(3.0)));
  CHECK(code.fits == 10);
  CHECK(code.converged);
  CHECK(code.compression == Approx(code.uniform_codelength_bits / code.codelength_bits));
  CHECK(code.compression > 1.2);
  // Recompute two blocks from the definition with the public API: train on the prefix, sum
  // -log2 p of the next block. Both solves are tight (gradient <= 1e-8), so they agree to 1e-6.
  for (const std::size_t b : {std::size_t{3}, std::size_t{9}}) {
    const std::size_t t = code.block_ends[b], next = code.block_ends[b + 1];
    const tensor2 prefix = xt::view(x, xt::range(0, t), xt::all());
    const tensor2 block = xt::view(x, xt::range(t, next), xt::all());
    const auto fit = fit_logistic_regression(prefix, std::span(y).first(t), 3, tight);
    const auto p = predict_probabilities(fit.model, block);
    double bits = 0;
    for (std::size_t i = 0; i < next - t; ++i) bits -= std::log2(p(static_cast<Eigen::Index>(i), y[t + i]));
    CHECK(code.block_bits[b + 1] == Approx(bits).epsilon(1e-6));
  }
  // Labels independent of x: no compression (the code pays for fitting noise).
  std::vector<std::int32_t> noise(10000);
  for (auto& v : noise) v = static_cast<std::int32_t>(g.below(3));
  const auto none = online_codelength(x, noise, 3);
  CHECK(none.compression < 1.02);
  CHECK(none.compression > 0.8);
  // Tiny sets: block ends stay distinct and end at N.
  CHECK(detail::mdl_block_ends(mdl_paper_fractions(), 7) == std::vector<std::size_t>{1, 3, 7});
}

// =============================================================================================
// Activations and files
// =============================================================================================

TEST_CASE("collect_activations: rows, pooling, labels and ids from the model's hidden states",
          "[probing][activations]") {
  const toy_activation_model model;
  const std::vector<token_sequence> inputs{{1, 2, 3}, {4, 5}, {6}, {7, 8, 9, 1}};
  // Label every token whose id is odd with id % 3; skip even ids.
  activation_labels labels{label_kind::classes,
                           [&](std::size_t s, std::size_t p) -> std::optional<double> {
                             const token_id t = inputs[s][p];
                             if (t % 2 == 0) return std::nullopt;
                             return t % 3;
                           },
                           {"zero", "one", "two"},
                           "mod3"};
  const auto set = collect_activations(model, inputs, labels, {.layers = {2, 0}, .model_name = "toy"});
  CHECK(set.layers == std::vector<std::size_t>{2, 0});
  CHECK(set.width == 4);
  CHECK(set.property == "mod3");
  CHECK(set.model == "toy");
  // Odd tokens: 1 3 | 5 | 7 9 1 -> 6 rows.
  CHECK(set.word_ids == std::vector<token_id>{1, 3, 5, 7, 9, 1});
  CHECK(set.sequence_ids == std::vector<std::int32_t>{0, 0, 1, 3, 3, 3});
  CHECK(set.labels == std::vector<double>{1, 0, 2, 1, 0, 1});
  const std::vector<std::size_t> positions{0, 2, 1, 0, 2, 3};
  for (std::size_t r = 0; r < 6; ++r)
    for (std::size_t j = 0; j < 4; ++j) {
      CHECK(set.activations[0](r, j) ==
            static_cast<float>(toy_activation_model::value(set.word_ids[r], 2, positions[r], j)));
      CHECK(set.activations[1](r, j) ==
            static_cast<float>(toy_activation_model::value(set.word_ids[r], 0, positions[r], j)));
    }
  // Last and mean pooling: one row per sequence.
  const auto seq = sequence_labels({0, 1, 0, 1});
  const auto last = collect_activations(model, inputs, seq, {.pooling = activation_pooling::last});
  const auto mean = collect_activations(model, inputs, seq, {.pooling = activation_pooling::mean});
  CHECK(last.rows() == 4);
  CHECK(last.word_ids == std::vector<token_id>{3, 5, 6, 1});
  for (std::size_t s = 0; s < 4; ++s)
    for (std::size_t l = 0; l < 3; ++l) {
      const std::size_t t = inputs[s].size();
      CHECK(last.activations[l](s, 1) ==
            static_cast<float>(toy_activation_model::value(inputs[s].back(), l, t - 1, 1)));
      double sum = 0;
      for (std::size_t p = 0; p < t; ++p) sum += toy_activation_model::value(inputs[s][p], l, p, 1);
      CHECK(mean.activations[l](s, 1) == Approx(sum / static_cast<double>(t)).epsilon(1e-6));
    }
  // Progress reports sequences; cancellation stops.
  std::size_t seen = 0;
  collect_activations(model, inputs, seq,
                      {.execution = {.batch_size = 1, .threads = 1, .on_progress = [&](const progress& p) {
                                       seen = p.done;
                                       return true;
                                     }}});
  CHECK(seen == 4);
  REQUIRE_THROWS_AS(
      collect_activations(
          model, inputs, seq,
          {.execution = {.batch_size = 1, .threads = 1, .on_progress = [](const progress& p) { return p.done < 2; }}}),
      cancelled);
  // Errors.
  REQUIRE_THROWS_MATCHES(
      collect_activations(model, inputs, seq, {.layers = {3}}), shape_error,
      what_contains("glassbox::collect_activations: layers must be < 3 (the model's L + 1 hidden states), got 3"));
  REQUIRE_THROWS_MATCHES(
      collect_activations(model, inputs, seq, {.memory_limit = 100}), error,
      what_contains("glassbox::collect_activations: the activations need 480 bytes, more than memory_limit (100)"));
  REQUIRE_THROWS_MATCHES(collect_activations(model, inputs, sequence_labels({0, 1, -1, 0})), error,
                         what_contains("glassbox::collect_activations: class labels must be integers >= 0, got -1"));
  REQUIRE_THROWS_MATCHES(
      collect_activations(model, inputs, sequence_labels({0, 3, 0, 0}, label_kind::classes, {"a", "b"})), error,
      what_contains("glassbox::collect_activations: class labels must be < 2 (the class names), got 3"));
  const auto nan = std::numeric_limits<double>::quiet_NaN();
  REQUIRE_THROWS_MATCHES(
      collect_activations(model, inputs, sequence_labels({nan, nan, nan, nan})), error,
      what_contains("glassbox::collect_activations: labels must label at least one row, got none of 4"));
}

TEST_CASE("collect_activations on GPT-2 equals its hidden states, in memory and streamed",
          "[probing][activations][io]") {
  const auto model = tiny_gpt2(12);
  rng g(12);
  std::vector<token_sequence> inputs(30);
  for (auto& s : inputs)
    for (std::size_t t = 0, n = 3 + g.below(10); t < n; ++t) s.push_back(static_cast<token_id>(g.below(23)));
  const auto labels = activation_labels{
      label_kind::real,
      [&](std::size_t s, std::size_t p) -> std::optional<double> { return static_cast<double>(inputs[s][p]) / 10.0; },
      {},
      "id_over_ten"};
  const auto set = collect_activations(model, inputs, labels, {.model_name = "tiny"});
  REQUIRE(set.layers.size() == 3);
  std::size_t r = 0;
  for (std::size_t s = 0; s < inputs.size(); ++s) {
    const tensor3 h = model.hidden_states(inputs[s]);
    for (std::size_t p = 0; p < inputs[s].size(); ++p, ++r)
      for (std::size_t l = 0; l < 3; ++l)
        for (std::size_t j = 0; j < 16; ++j) REQUIRE(set.activations[l](r, j) == h(l, p, j));
  }
  // Streamed through the file writer in chunks of ~10 rows: the same file as written at once.
  const auto streamed_path = data_dir() / "streamed.safetensors";
  const auto whole_path = data_dir() / "whole.safetensors";
  {
    io::activation_file_writer out(streamed_path);
    const auto header = collect_activations(model, inputs, labels,
                                            {.memory_limit = 10 * 3 * 16 * sizeof(float), .model_name = "tiny"}, out);
    CHECK(header.activations.empty());
    CHECK(header.rows() == set.rows());
  }
  io::write_activation_file(whole_path, set);
  const auto a = io::read_activation_file(streamed_path), b = io::read_activation_file(whole_path);
  CHECK(a.rows() == set.rows());
  CHECK(a.kind == label_kind::real);
  for (std::size_t l = 0; l < 3; ++l) CHECK(same_tensor(a.activations[l], set.activations[l]));
  CHECK(a.labels == b.labels);
  CHECK(a.word_ids == set.word_ids);
  CHECK(a.sequence_ids == set.sequence_ids);
  std::ifstream fa(streamed_path, std::ios::binary), fb(whole_path, std::ios::binary);
  const std::string bytes_a((std::istreambuf_iterator<char>(fa)), {}),
      bytes_b((std::istreambuf_iterator<char>(fb)), {});
  CHECK(bytes_a == bytes_b);
  CHECK_FALSE(std::filesystem::exists(streamed_path.string() + ".partial"));
}

TEST_CASE("activation file: round trip, and malformed files fail with their message", "[probing][io]") {
  activation_set s = synthetic_set(50, 3, 5, 13);
  s.property = "planted";
  s.model = "synthetic";
  s.pooling = activation_pooling::mean;
  s.split.assign(50, 0);
  for (std::size_t i = 40; i < 50; ++i) s.split[i] = 2;
  const auto path = data_dir() / "round_trip.safetensors";
  io::write_activation_file(path, s);
  const io::activation_file_reader in(path);
  const auto& h = in.header();
  CHECK(h.property == "planted");
  CHECK(h.model == "synthetic");
  CHECK(h.pooling == activation_pooling::mean);
  CHECK(h.kind == label_kind::classes);
  CHECK(h.class_names == s.class_names);
  CHECK(h.layers == s.layers);
  CHECK(h.width == 3);
  CHECK(h.labels == s.labels);
  CHECK(h.word_ids == s.word_ids);
  CHECK(h.sequence_ids == s.sequence_ids);
  CHECK(h.split == s.split);
  CHECK(same_tensor(in.read_layer(1), s.activations[1]));
  CHECK(in.file().metadata().at("format") == "glassbox.activations");
  // The file is plain safetensors: the labels are I32, readable by any tool.
  const auto& others = in.file().other_entries();
  CHECK(std::any_of(others.begin(), others.end(), [](const auto& e) { return e.name == "labels" && e.type == "I32"; }));
  // probe_layers from the file with a loader equals probe_layers in memory.
  const auto from_file = probe_layers(h, [&](std::size_t k) { return in.read_layer(k); }, {.seed = 2});
  const auto in_memory = probe_layers(s, {.seed = 2});
  CHECK(from_file.layers[1].test_accuracy == in_memory.layers[1].test_accuracy);
  CHECK(from_file.split_from_set);
  REQUIRE_THROWS_MATCHES(in.read_layer(5), io_error, what_contains("has no layer 5 (it has 0, 1, 2)"));

  // Malformed files, each written with the plain safetensors writer.
  const auto write = [&](const std::string& name, std::vector<io::tensor_to_write> tensors,
                         std::map<std::string, std::string> meta = {}) {
    const auto p = data_dir() / name;
    io::write_safetensors(p, tensors, meta);
    return p;
  };
  std::vector<float> layer(6, 1.0f), labels_f(2, 0.5f), short_layer(3, 1.0f);
  REQUIRE_THROWS_MATCHES(
      io::activation_file_reader(
          write("no_layers.safetensors", {{"labels", io::dtype::f32, {2}, std::span<const float>(labels_f)}})),
      io_error, what_contains("has no layer.K tensor"));
  REQUIRE_THROWS_MATCHES(
      io::activation_file_reader(
          write("f64_layer.safetensors", {{"layer.0", io::dtype::f16, {2, 3}, std::span<const float>(layer)}})),
      io_error, what_contains("tensor 'layer.0' must be F32 of rank 2 [N, d], got F16 [2, 3]"));
  REQUIRE_THROWS_MATCHES(
      io::activation_file_reader(
          write("mismatch.safetensors", {{"layer.0", io::dtype::f32, {2, 3}, std::span<const float>(layer)},
                                         {"layer.1", io::dtype::f32, {1, 3}, std::span<const float>(short_layer)}})),
      io_error, what_contains("tensor 'layer.1' has shape [1, 3], the other layers [2, 3]"));
  REQUIRE_THROWS_MATCHES(
      io::activation_file_reader(
          write("no_labels.safetensors", {{"layer.0", io::dtype::f32, {2, 3}, std::span<const float>(layer)}})),
      io_error, what_contains("has no 'labels' tensor"));
  REQUIRE_THROWS_MATCHES(
      io::activation_file_reader(
          write("bad_labels.safetensors", {{"layer.0", io::dtype::f32, {2, 3}, std::span<const float>(layer)},
                                           {"labels", io::dtype::f32, {1, 2}, std::span<const float>(labels_f)}})),
      io_error, what_contains("tensor 'labels' must be I32 or F32 [2], got F32 [1, 2]"));
  REQUIRE_THROWS_MATCHES(
      io::activation_file_reader(
          write("no_words.safetensors", {{"layer.0", io::dtype::f32, {2, 3}, std::span<const float>(layer)},
                                         {"labels", io::dtype::f32, {2}, std::span<const float>(labels_f)}})),
      io_error, what_contains("has no 'word_ids' tensor"));
  REQUIRE_THROWS_MATCHES(
      io::activation_file_reader(
          write("float_words.safetensors", {{"layer.0", io::dtype::f32, {2, 3}, std::span<const float>(layer)},
                                            {"labels", io::dtype::f32, {2}, std::span<const float>(labels_f)},
                                            {"word_ids", io::dtype::f32, {2}, std::span<const float>(labels_f)}})),
      io_error, what_contains("tensor 'word_ids' must be I32, got a floating-point tensor"));
  REQUIRE_THROWS_MATCHES(
      io::activation_file_reader(write("bad_pooling.safetensors",
                                       {{"layer.0", io::dtype::f32, {2, 3}, std::span<const float>(layer)}},
                                       {{"pooling", "max"}})),
      io_error, what_contains("metadata pooling must be token, last or mean, got 'max'"));
  REQUIRE_THROWS_MATCHES(
      io::activation_file_reader(
          write("bad_name.safetensors", {{"layer.x", io::dtype::f32, {2, 3}, std::span<const float>(layer)}})),
      io_error, what_contains("tensor 'layer.x': a layer must be named layer.K with K an integer"));
  REQUIRE_THROWS_MATCHES(io::activation_file_reader(write(
                             "bad_format.safetensors",
                             {{"layer.0", io::dtype::f32, {2, 3}, std::span<const float>(layer)}}, {{"format", "pt"}})),
                         io_error, what_contains("metadata format must be 'glassbox.activations', got 'pt'"));
  // A split value outside 0..2 and a class label beyond the class names, written by hand (I32).
  activation_set bad = s;
  bad.split[7] = 3;
  REQUIRE_THROWS_MATCHES(io::write_activation_file(data_dir() / "bad_split.safetensors", bad), error,
                         what_contains("split must be 0, 1 or 2, got 3 at row 7"));
  {
    // Patch the file's split bytes to 3 after writing, to reach the reader's check.
    const auto p = data_dir() / "patched_split.safetensors";
    io::write_activation_file(p, s);
    const io::safetensors_reader raw(p);
    const auto& others2 = raw.other_entries();
    const auto it = std::find_if(others2.begin(), others2.end(), [](const auto& e) { return e.name == "split"; });
    REQUIRE(it != others2.end());
    std::fstream f(p, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(8 + raw.header_size() + it->offset + 4 * 7));
    const char three[4] = {3, 0, 0, 0};
    f.write(three, 4);
    f.close();
    REQUIRE_THROWS_MATCHES(io::activation_file_reader(p), io_error,
                           what_contains("split must be 0 (train), 1 (dev) or 2 (test), got 3 at row 7"));
  }
  // A writer destroyed before finish leaves nothing behind.
  {
    io::activation_file_writer w(data_dir() / "abandoned.safetensors");
    activation_set header = s;
    header.activations.clear();
    w.begin(header);
  }
  CHECK_FALSE(std::filesystem::exists(data_dir() / "abandoned.safetensors.partial"));
  CHECK_FALSE(std::filesystem::exists(data_dir() / "abandoned.safetensors"));
  {
    io::activation_file_writer w(data_dir() / "short.safetensors");
    activation_set header = s;
    header.activations.clear();
    w.begin(header);
    REQUIRE_THROWS_MATCHES(w.finish(), shape_error, what_contains("50 rows were declared, 0 written"));
  }
}

TEST_CASE("probe file: scikit-learn's layout, one layer or several, round trip", "[probing][io]") {
  rng g(14);
  const tensor2 x = gaussian_rows(300, 5, g);
  const auto y = softmax_labels(x, 3, 1.0, g);
  const auto fit = fit_logistic_regression(x, y, 3);
  const auto path = data_dir() / "probe.safetensors";
  const io::saved_probe one{2, fit.model};
  io::write_probe_file(path, std::span(&one, 1), {{"property", "mod3"}});
  const io::safetensors_reader raw(path);
  CHECK(raw.entry("weight").shape == std::vector<std::size_t>{3, 5});
  CHECK(raw.entry("bias").shape == std::vector<std::size_t>{3});
  CHECK(raw.entry("weight").type == io::dtype::f64);
  CHECK(raw.metadata().at("property") == "mod3");
  const auto back = io::read_probe_file(path);
  REQUIRE(back.size() == 1);
  CHECK(back[0].layer == 2);
  CHECK(back[0].weights.weight == fit.model.weight);
  CHECK(back[0].weights.bias == fit.model.bias);
  const std::vector<io::saved_probe> two{{1, fit.model}, {4, fit.model}};
  io::write_probe_file(path, two);
  CHECK(io::safetensors_reader(path).contains("layer.4.weight"));
  const auto both = io::read_probe_file(path);
  REQUIRE(both.size() == 2);
  CHECK(both[1].layer == 4);
  CHECK(both[1].weights.weight == fit.model.weight);
}

// =============================================================================================
// TCAV
// =============================================================================================

TEST_CASE("student t-test and the incomplete beta function against closed forms", "[probing][tcav]") {
  // I_x(a, 1) = x^a and I_x(1, b) = 1 - (1 - x)^b.
  for (const double x : {0.1, 0.5, 0.93}) {
    CHECK(detail::incomplete_beta(2.5, 1, x) == Approx(std::pow(x, 2.5)).epsilon(1e-12));
    CHECK(detail::incomplete_beta(1, 3.5, x) == Approx(1 - std::pow(1 - x, 3.5)).epsilon(1e-12));
  }
  // With 2 + 2 values the t statistic has 2 degrees of freedom, whose two-sided p-value is
  // 1 - |t| / sqrt(2 + t^2).
  const std::vector<double> a{1.0, 2.0}, b{2.5, 4.0};
  const auto [t, p] = student_t_test(a, b);
  // Means 1.5 and 3.25, variances 0.5 and 1.125, pooled 0.8125, se sqrt(0.8125) -> t = -1.75 / 0.9014.
  CHECK(t == Approx(-1.75 / std::sqrt(0.8125)));
  CHECK(p == Approx(1 - std::abs(t) / std::sqrt(2 + t * t)).epsilon(1e-10));
  CHECK(student_t_test(std::vector<double>{1, 1}, std::vector<double>{1, 1}).second == 1.0);
  CHECK(student_t_test(std::vector<double>{1, 1}, std::vector<double>{0, 0}).second == 0.0);
}

TEST_CASE("TCAV: a planted concept is significant, a random direction is not", "[probing][tcav]") {
  // Both concepts are the random examples with their last word moved along one direction: u,
  // along which every input's sensitivity is |u|^2 > 0 (TCAV score 1), and r, orthogonal to u,
  // along which the sensitivity is symmetric around 0 over inputs (expected TCAV score 1/2, as the
  // random-vs-random CAVs'). Random sets of 200 out of 600 random examples; 1000 scored inputs.
  const auto model = make_concept_model(1);
  rng g(1);
  const auto random_pool = random_sequences(600, 4, 0, 2000, 0, 2000, g);
  const auto inputs = random_sequences(1000, 4, 0, 2000, 0, 2000, g);
  const std::vector<tcav_concept> concepts{{"planted", twins(random_pool, 2000)},
                                           {"random direction", twins(random_pool, 4000)}};
  const tcav_options options{.layers = {0, 1}, .random_set_size = 200, .seed = 3};
  const auto r = tcav(model, concepts, random_pool, inputs, target::logit(0), options);
  REQUIRE(r.results.size() == 4);
  CHECK(r.tests == 4);
  CHECK(r.inputs == 1000);
  for (const auto& c : r.results) {
    CAPTURE(c.concept_name, c.layer, c.mean, c.random_mean, c.p_value);
    CHECK(c.scores.size() == 20);
    CHECK(c.random_scores.size() == 20);
    CHECK(c.corrected_p_value == Approx(std::min(1.0, 4 * c.p_value)));
    CHECK(c.direction.size() == 8);
    if (c.concept_name == "planted") {
      CHECK(c.significant);
      REQUIRE(c.score.has_value());
      CHECK(*c.score > 0.99);
      CHECK(c.cav_accuracy > 0.85);  // two classes 3 apart along u with unit noise: about 0.93
      // The mean CAV points along u.
      CHECK(cosine(c.direction, model.u) > 0.9);
    } else {
      CHECK_FALSE(c.significant);
      CHECK_FALSE(c.score.has_value());
      CHECK(std::abs(c.mean - 0.5) < 0.1);
    }
  }
  // Layers 0 and 1 hold the same states here: the same scores.
  CHECK(r.results[0].scores == r.results[1].scores);
  // Same seed, same scores, whatever the thread count.
  tcav_options one_thread = options;
  one_thread.execution.threads = 1;
  const auto again = tcav(model, concepts, random_pool, inputs, target::logit(0), one_thread);
  CHECK(again.results[2].scores == r.results[2].scores);
  CHECK(again.results[2].random_scores == r.results[2].random_scores);
  // Errors.
  REQUIRE_THROWS_MATCHES(
      tcav(model, concepts, std::span(random_pool).first(50), inputs, target::logit(0), {.layers = {1}}), error,
      what_contains(
          "glassbox::tcav: random_examples must hold at least 1200 inputs (two disjoint random sets of 600), got 50"));
  REQUIRE_THROWS_MATCHES(tcav(model, concepts, random_pool, inputs, target::logit(0), {}), error,
                         what_contains("glassbox::tcav: layers must hold at least one layer, got none"));
  REQUIRE_THROWS_MATCHES(
      tcav(model, concepts, random_pool, inputs, target::logit(0), {.layers = {1}, .random_runs = 1}), error,
      what_contains("glassbox::tcav: random_runs must be >= 2"));
  REQUIRE_THROWS_MATCHES(tcav(model, concepts, random_pool, inputs, target::logit(0),
                              {.layers = {1}, .pooling = activation_pooling::token}),
                         error, what_contains("glassbox::tcav: pooling must be last or mean, got token"));
}

TEST_CASE("TCAV sensitivities on GPT-2 equal finite differences of the edited forward pass", "[probing][tcav]") {
  // pooled_hidden_gradients row . v is d target / d eps at h + eps v (last position, or every
  // position for mean pooling), which logits_from_hidden computes directly. Float32 forward passes
  // with eps = 1e-2: agreement to ~1e-3 relative; the bound is 2e-2 of the largest value.
  const auto model = tiny_gpt2(16);
  rng g(16);
  std::vector<token_sequence> inputs(4);
  for (auto& s : inputs)
    for (int t = 0; t < 6; ++t) s.push_back(static_cast<token_id>(g.below(23)));
  const auto t = target::log_probability(5);
  const std::vector<std::size_t> layers{0, 2};
  const auto v = random_unit(16, g);
  for (const auto pooling : {activation_pooling::last, activation_pooling::mean}) {
    const auto grads = pooled_hidden_gradients(model, inputs, layers, t, pooling);
    for (std::size_t k = 0; k < layers.size(); ++k)
      for (std::size_t i = 0; i < inputs.size(); ++i) {
        const tensor3 h = model.hidden_states(inputs[i]);
        const auto edited = [&](double eps) {
          tensor2 hl = xt::view(h, layers[k], xt::all(), xt::all());
          for (std::size_t p = 0; p < 6; ++p) {
            if (pooling == activation_pooling::last && p != 5) continue;
            for (std::size_t j = 0; j < 16; ++j) hl(p, j) += static_cast<float>(eps * v[j]);
          }
          return t.value_of(model.logits_from_hidden(inputs[i], layers[k], hl));
        };
        const double numeric = (edited(1e-2) - edited(-1e-2)) / 2e-2;
        double analytic = 0;
        for (std::size_t j = 0; j < 16; ++j) analytic += grads[k](i, j) * v[j];
        CHECK(analytic == Approx(numeric).margin(2e-2 * std::max(1.0, std::abs(numeric))));
      }
  }
}

// Tests of K-FAC / EK-FAC influence (influence/kfac_factors.hpp, influence/kfac.hpp,
// io/influence_factors.hpp), compiled into influence_test with influence_test.cpp.
//
// References are independent of the code under test: the Gauss-Newton matrix of a linear softmax
// layer formed densely from its closed form, covariance sums and eigenvalue corrections recomputed
// in double from the model's own statistics, the Kronecker-product preconditioner formed as a dense
// matrix, influence scores from explicit flat loss gradients, and singular values from Eigen's
// Jacobi SVD.
#include <Eigen/Core>
#include <Eigen/Eigenvalues>
#include <Eigen/SVD>
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstddef>
#include <filesystem>
#include <limits>
#include <span>
#include <string>
#include <vector>

#include "glassbox/core/random.hpp"
#include "glassbox/influence/kfac.hpp"
#include "glassbox/influence/kfac_factors.hpp"
#include "glassbox/io/influence_factors.hpp"
#include "glassbox/models/gpt2.hpp"
#include "test_support.hpp"

namespace {

using glassbox::factor_method;
using glassbox::fisher_type;
using glassbox::kfac_factors;
using glassbox::kfac_fit_options;
using glassbox::kfac_layer_factors;
using glassbox::measurement;
using glassbox::tensor1;
using glassbox::tensor2;
using glassbox::token_id;
using glassbox::token_sequence;
using glassbox::token_span;
using glassbox::training_example;
using glassbox::test::what_contains;
using dmatrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using dvector = Eigen::VectorXd;

// ---- a softmax classifier with one linear layer -------------------------------------------------------
// Row t of the output is z_t = x(token_t) W + b, with fixed features x [vocabulary, d] and parameters
// W [d, C] (input-major, flat at 0) and b [C] (flat at d C; absent without a bias). The loss is the mean
// cross-entropy over scored rows; the one tracked layer is "out". Its Gauss-Newton matrix is known in
// closed form: (1/N) sum_n (1/R_n) sum_r (diag p_r - p_r p_r^T) (x) [x_r, 1][x_r, 1]^T.
class linear_softmax {
 public:
  static constexpr bool thread_safe = true;

  linear_softmax(dmatrix features, std::size_t classes, bool bias, std::vector<float> parameters)
      : x_(std::move(features)), c_(classes), bias_(bias), p_(std::move(parameters)) {
    REQUIRE(p_.size() == parameter_count());
  }

  std::size_t vocab_size() const { return c_; }
  std::size_t width() const { return static_cast<std::size_t>(x_.cols()); }
  std::size_t parameter_count() const { return width() * c_ + (bias_ ? c_ : 0); }
  std::span<const float> parameters() const { return p_; }
  void set_parameters(std::span<const float> p) { p_.assign(p.begin(), p.end()); }

  // Logits in double, [T, C].
  dmatrix logits_double(token_span tokens) const {
    dmatrix z(static_cast<Eigen::Index>(tokens.size()), static_cast<Eigen::Index>(c_));
    for (std::size_t t = 0; t < tokens.size(); ++t)
      for (std::size_t o = 0; o < c_; ++o) {
        double s = bias_ ? p_[width() * c_ + o] : 0.0;
        for (std::size_t i = 0; i < width(); ++i) s += x_(tokens[t], static_cast<Eigen::Index>(i)) * p_[i * c_ + o];
        z(static_cast<Eigen::Index>(t), static_cast<Eigen::Index>(o)) = s;
      }
    return z;
  }
  dmatrix probabilities(token_span tokens) const {
    dmatrix z = logits_double(tokens);
    for (Eigen::Index t = 0; t < z.rows(); ++t) {
      const double top = z.row(t).maxCoeff();
      z.row(t) = (z.row(t).array() - top).exp();
      z.row(t) /= z.row(t).sum();
    }
    return z;
  }
  tensor2 logits(token_span tokens) const {
    const dmatrix z = logits_double(tokens);
    tensor2 out({tokens.size(), c_});
    for (std::size_t i = 0; i < out.size(); ++i) out.data()[i] = static_cast<float>(z.data()[i]);
    return out;
  }
  double loss(const training_example& e) const {
    const dmatrix p = probabilities(e.tokens);
    double sum = 0, r = 0;
    for (std::size_t t = 0; t < e.labels.size(); ++t)
      if (e.labels[t] != training_example::ignore_label) {
        sum -= std::log(p(static_cast<Eigen::Index>(t), e.labels[t]));
        r += 1;
      }
    return r == 0 ? 0.0 : sum / r;
  }
  // d loss / d z, [T, C]: (p_t - e_y) / R on scored rows, 0 elsewhere.
  dmatrix output_gradient(const training_example& e) const {
    dmatrix g = probabilities(e.tokens);
    double r = 0;
    for (auto y : e.labels) r += y != training_example::ignore_label;
    for (std::size_t t = 0; t < e.labels.size(); ++t) {
      const auto row = static_cast<Eigen::Index>(t);
      if (e.labels[t] == training_example::ignore_label) {
        g.row(row).setZero();
      } else {
        g(row, e.labels[t]) -= 1;
        g.row(row) /= r;
      }
    }
    return g;
  }
  glassbox::value_and_gradient<tensor1> loss_gradient(const training_example& e) const {
    const dmatrix g = output_gradient(e);
    glassbox::value_and_gradient<tensor1> out{loss(e), tensor1::from_shape({parameter_count()})};
    out.gradient.fill(0);
    for (std::size_t t = 0; t < e.tokens.size(); ++t)
      for (std::size_t o = 0; o < c_; ++o) {
        const double go = g(static_cast<Eigen::Index>(t), static_cast<Eigen::Index>(o));
        for (std::size_t i = 0; i < width(); ++i)
          out.gradient[i * c_ + o] += static_cast<float>(x_(e.tokens[t], static_cast<Eigen::Index>(i)) * go);
        if (bias_) out.gradient[width() * c_ + o] += static_cast<float>(go);
      }
    return out;
  }
  std::vector<glassbox::linear_layer_statistics> kfac_statistics(const training_example& e) const {
    const dmatrix g = output_gradient(e);
    glassbox::linear_layer_statistics s;
    s.name = "out";
    s.inputs = tensor2({e.tokens.size(), width()});
    s.output_gradients = tensor2({e.tokens.size(), c_});
    for (std::size_t t = 0; t < e.tokens.size(); ++t) {
      for (std::size_t i = 0; i < width(); ++i)
        s.inputs(t, i) = static_cast<float>(x_(e.tokens[t], static_cast<Eigen::Index>(i)));
      for (std::size_t o = 0; o < c_; ++o)
        s.output_gradients(t, o) = static_cast<float>(g(static_cast<Eigen::Index>(t), static_cast<Eigen::Index>(o)));
    }
    s.weight_offset = 0;
    s.bias_offset = width() * c_;
    s.has_bias = bias_;
    s.input_major = true;
    return {std::move(s)};
  }

  // The Gauss-Newton matrix of J = mean_n L_n over the layer gradient [C, d (+1)] flattened row-major.
  dmatrix gauss_newton(std::span<const training_example> examples) const {
    const std::size_t a = width() + (bias_ ? 1 : 0);
    dmatrix gn = dmatrix::Zero(static_cast<Eigen::Index>(c_ * a), static_cast<Eigen::Index>(c_ * a));
    for (const auto& e : examples) {
      const dmatrix p = probabilities(e.tokens);
      double r = 0;
      for (auto y : e.labels) r += y != training_example::ignore_label;
      for (std::size_t t = 0; t < e.labels.size(); ++t) {
        if (e.labels[t] == training_example::ignore_label) continue;
        const dvector pt = p.row(static_cast<Eigen::Index>(t)).transpose();
        const dmatrix m = dmatrix(pt.asDiagonal()) - pt * pt.transpose();
        dvector xa(static_cast<Eigen::Index>(a));
        for (std::size_t i = 0; i < width(); ++i)
          xa(static_cast<Eigen::Index>(i)) = x_(e.tokens[t], static_cast<Eigen::Index>(i));
        if (bias_) xa(static_cast<Eigen::Index>(width())) = 1;
        const dmatrix xx = xa * xa.transpose();
        for (Eigen::Index o = 0; o < m.rows(); ++o)
          for (Eigen::Index o2 = 0; o2 < m.cols(); ++o2)
            gn.block(o * static_cast<Eigen::Index>(a), o2 * static_cast<Eigen::Index>(a), static_cast<Eigen::Index>(a),
                     static_cast<Eigen::Index>(a)) += m(o, o2) / r * xx;
      }
    }
    return gn / static_cast<double>(examples.size());
  }

 private:
  dmatrix x_;
  std::size_t c_;
  bool bias_;
  std::vector<float> p_;
};

static_assert(glassbox::check_kfac_model<linear_softmax>());

std::vector<float> random_floats(std::size_t n, std::uint64_t seed, double sigma = 1.0) {
  glassbox::rng g(seed);
  std::vector<float> out(n);
  for (auto& v : out) v = static_cast<float>(g.normal(0, sigma));
  return out;
}

dmatrix random_matrix(Eigen::Index rows, Eigen::Index cols, std::uint64_t seed) {
  glassbox::rng g(seed);
  dmatrix m(rows, cols);
  for (Eigen::Index i = 0; i < m.size(); ++i) m.data()[i] = g.normal();
  return m;
}

double relative_difference(const dmatrix& a, const dmatrix& b) {
  REQUIRE(a.rows() == b.rows());
  REQUIRE(a.cols() == b.cols());
  return (a - b).norm() / std::max(b.norm(), 1e-300);
}

dmatrix to_dmatrix(const tensor2& t) {
  dmatrix m(static_cast<Eigen::Index>(t.shape(0)), static_cast<Eigen::Index>(t.shape(1)));
  for (std::size_t i = 0; i < t.size(); ++i) m.data()[i] = t.data()[i];
  return m;
}

// P(V) of layer l through the library, in double.
dmatrix apply_preconditioner(const glassbox::kfac_preconditioner& p, std::size_t l, const dmatrix& v) {
  glassbox::detail::row_matrix<float> f = v.cast<float>();
  p.apply(l, f);
  return f.cast<double>();
}

// The layer gradient [d_out, d_in (+1)] inside a flat parameter gradient, by the layer's offsets.
dmatrix layer_block(const kfac_layer_factors& l, std::span<const float> flat) {
  dmatrix g(static_cast<Eigen::Index>(l.output_dim), static_cast<Eigen::Index>(l.augmented_input_dim()));
  for (std::size_t o = 0; o < l.output_dim; ++o) {
    for (std::size_t i = 0; i < l.input_dim; ++i)
      g(static_cast<Eigen::Index>(o), static_cast<Eigen::Index>(i)) =
          flat[l.weight_offset + (l.input_major ? i * l.output_dim + o : o * l.input_dim + i)];
    if (l.has_bias) g(static_cast<Eigen::Index>(o), static_cast<Eigen::Index>(l.input_dim)) = flat[l.bias_offset + o];
  }
  return g;
}

// One token per example, `n` examples of tokens drawn from [0, vocabulary) and labels from [0, classes).
std::vector<training_example> one_token_examples(std::size_t n, std::size_t vocabulary, std::size_t classes,
                                                 std::uint64_t seed) {
  glassbox::rng g(seed);
  std::vector<training_example> out;
  for (std::size_t i = 0; i < n; ++i)
    out.push_back(training_example::classification({static_cast<token_id>(g.below(vocabulary))},
                                                   static_cast<token_id>(g.below(classes))));
  return out;
}

// (GN + lambda I)^{-1} vec(V), vec row-major over [d_out, d_in (+1)].
dmatrix dense_inverse(const dmatrix& gn, double lambda, const dmatrix& v) {
  const dmatrix h = gn + lambda * dmatrix::Identity(gn.rows(), gn.cols());
  const dvector x = h.ldlt().solve(Eigen::Map<const dvector>(v.data(), v.size()));
  return Eigen::Map<const dmatrix>(x.data(), v.rows(), v.cols());
}

// ---- a small GPT-2: two blocks, width 8, 13 tokens ------------------------------------------------------

glassbox::models::gpt2 tiny_gpt2(std::uint64_t seed = 3) {
  glassbox::models::gpt2_config c;
  c.n_layer = 2;
  c.n_head = 2;
  c.n_embd = 8;
  c.n_positions = 16;
  c.vocab_size = 13;
  const auto table = glassbox::models::gpt2_parameter_table(c);
  std::vector<float> p(table.back().offset + table.back().size);
  glassbox::rng g(seed);
  for (const auto& t : table) {
    const bool ln_weight = t.name.find("ln_") != std::string::npos && t.name.ends_with(".weight");
    for (std::size_t i = 0; i < t.size; ++i)
      p[t.offset + i] = static_cast<float>(ln_weight ? 1.0 + g.normal(0, 0.2) : g.normal(0, 0.4));
  }
  return glassbox::models::gpt2(c, p);
}

// Next-token and classification examples of lengths 2..7 (so R_n, the scored rows, varies).
std::vector<training_example> gpt2_examples(std::size_t n, std::uint64_t seed) {
  glassbox::rng g(seed);
  std::vector<training_example> out;
  for (std::size_t i = 0; i < n; ++i) {
    token_sequence t(2 + g.below(6));
    for (auto& x : t) x = static_cast<token_id>(g.below(13));
    out.push_back(i % 3 == 0 ? training_example::classification(t, static_cast<token_id>(g.below(13)))
                             : training_example::next_token(t));
  }
  return out;
}

std::size_t scored_rows(const training_example& e) {
  return static_cast<std::size_t>(
      std::count_if(e.labels.begin(), e.labels.end(), [](token_id y) { return y != training_example::ignore_label; }));
}

// Bitwise equality (a save / load round trip).
bool exact_tensor(const auto& a, const auto& b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin());
}

// Equality to float rounding: max |a - b| <= 1e-5 max |a|, for the same quantity computed with
// another batch size, thread budget or shard size (sums in another order); a wrong sum, label draw
// or shard is off by far more than 1e-5. The same computation repeated is compared bitwise.
bool same_tensor(const auto& a, const auto& b) {
  if (a.size() != b.size()) return false;
  double scale = 0, diff = 0;
  auto ia = a.begin();
  for (auto ib = b.begin(); ib != b.end(); ++ia, ++ib) {
    scale = std::max(scale, std::abs(static_cast<double>(*ia)));
    diff = std::max(diff, std::abs(static_cast<double>(*ia) - static_cast<double>(*ib)));
  }
  return diff <= 1e-5 * scale;
}

// Factors equal to float rounding (eigenvectors are compared through what they determine, the
// covariances and Lambda, since a last-bit change may flip an eigenvector's sign); `bitwise` for a round trip.
bool same_factors(const kfac_factors& a, const kfac_factors& b, bool bitwise = false) {
  if (a.layers.size() != b.layers.size() || a.method != b.method || a.fisher != b.fisher) return false;
  auto same = [bitwise](const auto& x, const auto& y) { return bitwise ? exact_tensor(x, y) : same_tensor(x, y); };
  for (std::size_t l = 0; l < a.layers.size(); ++l) {
    const auto &x = a.layers[l], &y = b.layers[l];
    if (x.name != y.name || !same(x.activation_covariance, y.activation_covariance) ||
        !same(x.gradient_covariance, y.gradient_covariance) ||
        (bitwise && (!same(x.activation_eigenvectors, y.activation_eigenvectors) ||
                     !same(x.gradient_eigenvectors, y.gradient_eigenvectors))) ||
        !same(x.activation_eigenvalues, y.activation_eigenvalues) ||
        !same(x.gradient_eigenvalues, y.gradient_eigenvalues) || !same(x.lambda, y.lambda))
      return false;
  }
  return true;
}

std::filesystem::path scratch(const std::string& name) {
  const auto dir = std::filesystem::path(GLASSBOX_TEST_DATA_DIR) / "influence_kfac";
  std::filesystem::create_directories(dir);
  return dir / name;
}

}  // namespace

TEST_CASE("EK-FAC and K-FAC equal the exact Gauss-Newton inverse where the Kronecker factorisation is exact",
          "[influence][kfac]") {
  // With W = 0 every example predicts the same p, so GN = (diag p - p p^T) (x) E[a a^T] exactly: K-FAC and
  // EK-FAC both equal (GN + lambda I)^{-1} (the expected Fisher makes the curvature exact, not sampled).
  SECTION("zero weights: one Kronecker product, with a bias") {
    const linear_softmax model(random_matrix(6, 4, 11), 3, true, std::vector<float>(4 * 3 + 3, 0.0f));
    const auto train = one_token_examples(15, 6, 3, 5);
    const dmatrix gn = model.gauss_newton(train);
    const dmatrix v = random_matrix(3, 5, 7);
    for (auto method : {factor_method::ekfac, factor_method::kfac}) {
      CAPTURE(glassbox::to_string(method));
      const auto f = glassbox::fit_kfac_factors(model, train, {.method = method, .fisher = fisher_type::expected});
      const auto p = glassbox::make_kfac_preconditioner(f, 0.05);
      // float factors: ~1e-6 relative per entry, amplified by at most cond(GN + 0.05 I) ~ 1e2.
      CHECK(relative_difference(apply_preconditioner(p, 0, v), dense_inverse(gn, 0.05, v)) < 1e-4);
    }
  }
  // With two classes every diag p - p p^T is a multiple of u u^T (u = (1, -1) / sqrt 2), and one-hot
  // inputs make every a a^T diagonal: GN is diagonal in the basis {u, u_perp} (x) {e_k}, which EK-FAC
  // finds, and EK-FAC's corrected eigenvalues are its exact diagonal. K-FAC's products of factor
  // eigenvalues are not, because the curvature weight p1 p2 differs from token to token.
  SECTION("two classes, one-hot inputs of distinct scales, no bias") {
    dmatrix x = dmatrix::Zero(4, 4);
    for (Eigen::Index k = 0; k < 4; ++k) x(k, k) = 1.0 + 0.5 * static_cast<double>(k);
    const linear_softmax model(x, 2, false, random_floats(8, 17, 1.5));
    std::vector<training_example> train;
    for (token_id k = 0; k < 4; ++k)
      for (token_id j = 0; j <= k; ++j) train.push_back(training_example::classification({k}, j % 2));
    const dmatrix gn = model.gauss_newton(train);
    const dmatrix v = random_matrix(2, 4, 9);
    const dmatrix exact = dense_inverse(gn, 0.01, v);
    const auto ekfac = glassbox::fit_kfac_factors(model, train, {.fisher = fisher_type::expected});
    CHECK(relative_difference(apply_preconditioner(glassbox::make_kfac_preconditioner(ekfac, 0.01), 0, v), exact) <
          1e-4);
    const auto kfac =
        glassbox::fit_kfac_factors(model, train, {.method = factor_method::kfac, .fisher = fisher_type::expected});
    CHECK(relative_difference(apply_preconditioner(glassbox::make_kfac_preconditioner(kfac, 0.01), 0, v), exact) >
          1e-2);
  }
}

TEST_CASE("K-FAC, EK-FAC and diagonal factors equal brute-force sums over the model's statistics",
          "[influence][kfac]") {
  const auto model = tiny_gpt2();
  const auto train = gpt2_examples(9, 21);
  const kfac_fit_options options{.fisher = fisher_type::empirical, .execution = {.batch_size = 4, .threads = 2}};
  const auto f = glassbox::fit_kfac_factors(model, train, options);
  REQUIRE(f.layers.size() == 8);
  CHECK(f.layers[0].name == "h.0.attn.c_attn");
  CHECK(f.layers[7].name == "h.1.mlp.c_proj");
  CHECK(f.covariance_examples == train.size());
  CHECK(f.lambda_examples == train.size());
  CHECK(f.model_fingerprint == glassbox::parameter_fingerprint(model.parameters()));

  // Brute force in double: A = sum a a^T / T, S = sum R g g^T / T, Lambda = sum R (Q_S^T G Q_A)^2 / N.
  std::vector<std::vector<glassbox::linear_layer_statistics>> stats;
  for (const auto& e : train) stats.push_back(model.kfac_statistics(e));
  for (std::size_t l = 0; l < f.layers.size(); ++l) {
    const auto& layer = f.layers[l];
    CAPTURE(layer.name);
    const auto a = static_cast<Eigen::Index>(layer.augmented_input_dim()), o = static_cast<Eigen::Index>(layer.output_dim);
    dmatrix sa = dmatrix::Zero(a, a), ss = dmatrix::Zero(o, o), lam = dmatrix::Zero(o, a), diag = dmatrix::Zero(o, a);
    double tokens = 0;
    const dmatrix qa = to_dmatrix(layer.activation_eigenvectors), qs = to_dmatrix(layer.gradient_eigenvectors);
    for (std::size_t n = 0; n < train.size(); ++n) {
      const auto& s = stats[n][l];
      REQUIRE(s.name == layer.name);
      dmatrix x = dmatrix::Ones(static_cast<Eigen::Index>(s.inputs.shape(0)), a);
      x.leftCols(a - 1) = to_dmatrix(s.inputs);
      const dmatrix g = to_dmatrix(s.output_gradients);
      const double r = static_cast<double>(scored_rows(train[n]));
      sa += x.transpose() * x;
      ss += r * g.transpose() * g;
      tokens += static_cast<double>(x.rows());
      const dmatrix grad = g.transpose() * x;
      lam += r * (qs.transpose() * grad * qa).cwiseAbs2();
      diag += r * grad.cwiseAbs2();
    }
    sa /= tokens;
    ss /= tokens;
    lam /= static_cast<double>(train.size());
    diag /= static_cast<double>(train.size());
    CHECK(layer.covariance_tokens == static_cast<std::size_t>(tokens));
    // Per-example products in float, sums in double: ~1e-6 relative.
    CHECK(relative_difference(to_dmatrix(layer.activation_covariance), sa) < 1e-5);
    CHECK(relative_difference(to_dmatrix(layer.gradient_covariance), ss) < 1e-5);
    CHECK(relative_difference(to_dmatrix(layer.lambda), lam) < 1e-4);
    // The eigendecompositions: Q orthonormal, Q diag(l) Q^T = the covariance, eigenvalues ascending.
    for (const auto* pair : {&layer.activation_eigenvectors, &layer.gradient_eigenvectors}) {
      const dmatrix q = to_dmatrix(*pair);
      CHECK((q.transpose() * q - dmatrix::Identity(q.rows(), q.cols())).norm() < 1e-5);
    }
    dvector la(a), ls(o);
    for (Eigen::Index i = 0; i < a; ++i) la(i) = layer.activation_eigenvalues[static_cast<std::size_t>(i)];
    for (Eigen::Index i = 0; i < o; ++i) ls(i) = layer.gradient_eigenvalues[static_cast<std::size_t>(i)];
    CHECK(relative_difference(qa * la.asDiagonal() * qa.transpose(), sa) < 1e-5);
    CHECK(relative_difference(qs * ls.asDiagonal() * qs.transpose(), ss) < 1e-5);
    CHECK(std::is_sorted(la.begin(), la.end()));

    if (l == 2) {
      const auto d = glassbox::fit_kfac_factors(model, train, {.method = factor_method::diagonal, .fisher = fisher_type::empirical});
      CHECK(relative_difference(to_dmatrix(d.layers[2].lambda), diag) < 1e-5);
      CHECK(d.layers[2].activation_eigenvectors.size() == 0);
    }
  }

  SECTION("K-FAC fits the covariances only; identity fits nothing") {
    const auto k = glassbox::fit_kfac_factors(model, train, {.method = factor_method::kfac, .fisher = fisher_type::empirical});
    CHECK(same_tensor(k.layers[3].gradient_covariance, f.layers[3].gradient_covariance));
    CHECK(k.layers[3].lambda.size() == 0);
    const auto id = glassbox::fit_kfac_factors(model, train, {.method = factor_method::identity});
    CHECK(id.layers.size() == 8);
    CHECK(id.layers[0].activation_covariance.size() == 0);
  }
  SECTION("layer selection: MLP only, or by name") {
    const auto mlp = glassbox::fit_kfac_factors(model, train, {.layers = glassbox::layer_selection::mlp});
    REQUIRE(mlp.layers.size() == 4);
    for (const auto& l : mlp.layers) CHECK(l.name.find(".mlp.") != std::string::npos);
    const auto named = glassbox::fit_kfac_factors(
        model, train, {.layer_names = {"h.1.mlp.c_fc", "h.0.attn.c_proj"}, .fisher = fisher_type::empirical});
    REQUIRE(named.layers.size() == 2);
    CHECK(named.layers[0].name == "h.1.mlp.c_fc");
    CHECK(same_tensor(named.layers[0].lambda, f.layers[6].lambda));
  }
}

TEST_CASE("K-FAC fitting is reproducible and independent of batch size and threads", "[influence][kfac]") {
  const auto model = tiny_gpt2();
  const auto train = gpt2_examples(11, 4);
  const auto a = glassbox::fit_kfac_factors(model, train, {.seed = 5, .execution = {.batch_size = 2, .threads = 1}});
  const auto b = glassbox::fit_kfac_factors(model, train, {.seed = 5, .execution = {.batch_size = 7, .threads = 2}});
  CHECK(same_factors(a, b));
  // The same fit again, after other allocations have moved the heap: the same bits.
  const auto again = glassbox::fit_kfac_factors(model, train, {.seed = 5, .execution = {.batch_size = 2, .threads = 1}});
  CHECK(same_factors(a, again, true));
  const auto c = glassbox::fit_kfac_factors(model, train, {.seed = 6});
  CHECK_FALSE(same_factors(a, c));
  // max_examples: the covariance pass reads a prefix, the correction pass another.
  const auto d = glassbox::fit_kfac_factors(model, train, {.covariance_max_examples = 5, .lambda_max_examples = 3, .seed = 5});
  CHECK(d.covariance_examples == 5);
  CHECK(d.lambda_examples == 3);
}

TEST_CASE("the sampled Fisher averages to the expected Fisher", "[influence][kfac]") {
  // Sampled labels estimate E_y[R G G^T] without bias: over 4,000 examples the sampling error of S and
  // Lambda is ~1 / sqrt(4000) ~ 2% of their size (a wrong sampler, e.g. argmax labels, is off by 100%).
  const linear_softmax model(random_matrix(7, 3, 2), 4, true, random_floats(16, 3, 0.8));
  const auto train = one_token_examples(4000, 7, 4, 8);
  const auto sampled = glassbox::fit_kfac_factors(model, train, {.seed = 1});
  const auto expected = glassbox::fit_kfac_factors(model, train, {.fisher = fisher_type::expected});
  CHECK(relative_difference(to_dmatrix(sampled.layers[0].gradient_covariance),
                            to_dmatrix(expected.layers[0].gradient_covariance)) < 0.08);
  CHECK(same_tensor(sampled.layers[0].activation_covariance, expected.layers[0].activation_covariance));
  const auto empirical = glassbox::fit_kfac_factors(model, train, {.fisher = fisher_type::empirical});
  // Random labels are not the model's: the empirical Fisher is far from the true one here.
  CHECK(relative_difference(to_dmatrix(empirical.layers[0].gradient_covariance),
                            to_dmatrix(expected.layers[0].gradient_covariance)) > 0.2);
}

TEST_CASE("preconditioning equals the dense Kronecker-factored formula", "[influence][kfac]") {
  // Factors built by hand: random orthonormal bases, random positive Lambda.
  kfac_factors f;
  kfac_layer_factors l;
  l.name = "layer";
  l.input_dim = 3;
  l.output_dim = 4;
  l.has_bias = true;
  const auto spd = [](Eigen::Index n, std::uint64_t seed) {
    const dmatrix m = random_matrix(n, n, seed);
    return dmatrix(m * m.transpose() + 0.1 * dmatrix::Identity(n, n));
  };
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> ea(spd(4, 1)), es(spd(4, 2));
  auto store = [](const auto& m, tensor2& t) {
    t = tensor2({static_cast<std::size_t>(m.rows()), static_cast<std::size_t>(m.cols())});
    for (Eigen::Index i = 0; i < m.rows(); ++i)
      for (Eigen::Index j = 0; j < m.cols(); ++j) t(static_cast<std::size_t>(i), static_cast<std::size_t>(j)) = static_cast<float>(m(i, j));
  };
  store(ea.eigenvectors(), l.activation_eigenvectors);
  store(es.eigenvectors(), l.gradient_eigenvectors);
  l.activation_eigenvalues = tensor1::from_shape({4});
  l.gradient_eigenvalues = tensor1::from_shape({4});
  for (std::size_t i = 0; i < 4; ++i) {
    l.activation_eigenvalues[i] = static_cast<float>(ea.eigenvalues()(static_cast<Eigen::Index>(i)));
    l.gradient_eigenvalues[i] = static_cast<float>(es.eigenvalues()(static_cast<Eigen::Index>(i)));
  }
  dmatrix lam = random_matrix(4, 4, 3).cwiseAbs();
  store(lam, l.lambda);
  f.layers.push_back(l);
  const dmatrix qa = to_dmatrix(l.activation_eigenvectors), qs = to_dmatrix(l.gradient_eigenvectors);
  const dmatrix v = random_matrix(4, 4, 4);
  const dvector vv = Eigen::Map<const dvector>(v.data(), v.size());
  // vec_rowmajor(Q_S X Q_A^T) = (Q_S (x) Q_A) vec_rowmajor(X).
  dmatrix kron(16, 16);
  for (Eigen::Index i = 0; i < 4; ++i)
    for (Eigen::Index j = 0; j < 4; ++j) kron.block(i * 4, j * 4, 4, 4) = qs(i, j) * qa;
  const double lambda = 0.3;
  auto dense = [&](const dmatrix& eigen) {
    dvector d(16);
    for (Eigen::Index i = 0; i < 16; ++i) d(i) = 1.0 / (eigen.data()[i] + lambda);
    const dvector x = kron * d.asDiagonal() * kron.transpose() * vv;
    return dmatrix(Eigen::Map<const dmatrix>(x.data(), 4, 4));
  };
  SECTION("EK-FAC") {
    f.method = factor_method::ekfac;
    CHECK(relative_difference(apply_preconditioner(glassbox::make_kfac_preconditioner(f, lambda), 0, v),
                              dense(to_dmatrix(f.layers[0].lambda))) < 1e-5);
    // The heuristic damping is 0.1 x mean(Lambda).
    CHECK(glassbox::kfac_dampings(f)[0] == Approx(0.1 * to_dmatrix(f.layers[0].lambda).mean()).epsilon(1e-6));
  }
  SECTION("K-FAC: Lambda = l_S l_A^T") {
    f.method = factor_method::kfac;
    dvector la(4), ls(4);
    for (Eigen::Index i = 0; i < 4; ++i) {
      la(i) = f.layers[0].activation_eigenvalues[static_cast<std::size_t>(i)];
      ls(i) = f.layers[0].gradient_eigenvalues[static_cast<std::size_t>(i)];
    }
    const dmatrix outer = ls * la.transpose();
    CHECK(relative_difference(apply_preconditioner(glassbox::make_kfac_preconditioner(f, lambda), 0, v), dense(outer)) <
          1e-5);
    CHECK(glassbox::kfac_dampings(f)[0] == Approx(0.1 * outer.mean()).epsilon(1e-6));
  }
  SECTION("diagonal and identity") {
    f.method = factor_method::diagonal;
    const dmatrix expected = v.array() / (to_dmatrix(f.layers[0].lambda).array() + lambda);
    CHECK(relative_difference(apply_preconditioner(glassbox::make_kfac_preconditioner(f, lambda), 0, v), expected) < 1e-6);
    f.method = factor_method::identity;
    const dmatrix rounded = v.cast<float>().cast<double>();
    CHECK(relative_difference(apply_preconditioner(glassbox::make_kfac_preconditioner(f, lambda), 0, v), rounded) == 0);
  }
  SECTION("zero curvature needs damping") {
    f.method = factor_method::ekfac;
    f.layers[0].lambda(1, 2) = 0;
    CHECK_NOTHROW(glassbox::make_kfac_preconditioner(f, 1e-8));
    REQUIRE_THROWS_MATCHES(glassbox::make_kfac_preconditioner(f, 0.0), glassbox::error,
                           what_contains("damping must make Lambda + damping > 0 in layer layer"));
    REQUIRE_THROWS_MATCHES(glassbox::make_kfac_preconditioner(f, -1.0), glassbox::error,
                           what_contains("damping must be finite and >= 0, got -1"));
  }
}

TEST_CASE("K-FAC scores equal the preconditioned explicit per-example gradients", "[influence][kfac]") {
  const auto model = tiny_gpt2(7);
  const auto train = gpt2_examples(10, 12);
  const std::vector<measurement> queries{measurement::loss(training_example::next_token({1, 5, 2, 9})),
                                         measurement::completion({4, 4, 8}, {3, 11}),
                                         measurement::contrast({6, 2, 7}, 5, 1)};
  for (auto method : {factor_method::ekfac, factor_method::kfac, factor_method::diagonal, factor_method::identity}) {
    CAPTURE(glassbox::to_string(method));
    const auto f = glassbox::fit_kfac_factors(model, train, {.method = method, .layers = glassbox::layer_selection::all,
                                                             .seed = 2});
    const auto p = glassbox::make_kfac_preconditioner(f);
    const auto r = glassbox::kfac_influence(model, f, queries, train, {.common = {.top_k = 3}});
    REQUIRE(r.scores.shape(0) == 3);
    REQUIRE(r.scores.shape(1) == train.size());
    CHECK(r.method == glassbox::to_string(method));
    // Reference: per layer <P(G_q), G_n> from the flat loss gradients of loss_gradient.
    std::vector<std::vector<dmatrix>> pq(queries.size());
    for (std::size_t q = 0; q < queries.size(); ++q) {
      const auto g = glassbox::measurement_gradient(model, queries[q]);
      CHECK(r.query_values[q] == Approx(g.value).epsilon(1e-6));
      for (std::size_t l = 0; l < f.layers.size(); ++l)
        pq[q].push_back(apply_preconditioner(p, l, layer_block(f.layers[l], g.gradient)));
    }
    const auto self = glassbox::kfac_self_influence(model, f, train);
    double scale = 0;
    for (float s : r.scores) scale = std::max(scale, std::abs(static_cast<double>(s)));
    for (std::size_t n = 0; n < train.size(); ++n) {
      const auto g = glassbox::training_gradient(model, train[n], n);
      double self_ref = 0;
      for (std::size_t q = 0; q < queries.size(); ++q) {
        double s = 0;
        for (std::size_t l = 0; l < f.layers.size(); ++l) {
          const dmatrix gn = layer_block(f.layers[l], g.gradient);
          s += (pq[q][l].array() * gn.array()).sum();
          if (q == 0) self_ref += (apply_preconditioner(p, l, gn).array() * gn.array()).sum();
        }
        // float gradients and products: 1e-4 of the largest score.
        CHECK(std::abs(r.scores(q, n) - s) < 1e-4 * scale);
      }
      CHECK(self.scores[n] == Approx(self_ref).epsilon(1e-4));
    }
    // top / bottom are the extremes of each row.
    for (std::size_t q = 0; q < queries.size(); ++q) {
      REQUIRE(r.top[q].size() == 3);
      const float* row = r.scores.data() + q * train.size();
      CHECK(r.top[q][0].score == *std::max_element(row, row + train.size()));
      CHECK(r.bottom[q][0].score == *std::min_element(row, row + train.size()));
    }
    // Per-token influence sums to the pairwise score.
    const auto t = glassbox::kfac_token_influence(model, f, queries, train[4], 4);
    REQUIRE(t.scores.shape(1) == train[4].tokens.size());
    for (std::size_t q = 0; q < queries.size(); ++q) {
      double sum = 0;
      for (std::size_t i = 0; i < t.scores.shape(1); ++i) sum += t.scores(q, i);
      CHECK(std::abs(sum - t.totals[q]) < 1e-5 * scale);
      CHECK(std::abs(t.totals[q] - r.scores(q, 4)) < 1e-4 * scale);
    }
  }
}

TEST_CASE("K-FAC scores do not depend on batch size, threads or shards (to float rounding)", "[influence][kfac]") {
  const auto model = tiny_gpt2(8);
  const auto train = gpt2_examples(37, 13);
  const auto f = glassbox::fit_kfac_factors(model, train);
  const std::vector<measurement> q{measurement::loss(train[0]), measurement::loss(train[5])};
  const auto a = glassbox::kfac_influence(model, f, q, train, {.common = {.execution = {.batch_size = 3, .threads = 1}}});
  const auto b = glassbox::kfac_influence(model, f, q, train,
                                          {.common = {.execution = {.batch_size = 32, .threads = 2}}, .shard_size = 10});
  CHECK(same_tensor(a.scores, b.scores));
  const auto s1 = glassbox::kfac_self_influence(model, f, train, {.common = {.execution = {.batch_size = 1}}});
  const auto s2 = glassbox::kfac_self_influence(model, f, train, {.shard_size = 4});
  CHECK(same_tensor(s1.scores, s2.scores));
}

TEST_CASE("query batching: rank-k query gradients", "[influence][kfac]") {
  const auto model = tiny_gpt2(9);
  const auto train = gpt2_examples(8, 14);
  const std::vector<measurement> q{measurement::loss(training_example::classification({3, 1}, 4)),
                                   measurement::loss(training_example::classification({7, 2}, 9))};
  SECTION("k >= min(d_out, d_in + 1) is exact") {
    const auto f = glassbox::fit_kfac_factors(model, train);
    const auto exact = glassbox::kfac_influence(model, f, q, train);
    const auto full = glassbox::kfac_influence(model, f, q, train, {.query_rank = 9});
    CHECK(same_tensor(exact.scores, full.scores));
  }
  SECTION("identity curvature: a query of two rows has rank <= 2 per layer, so k = 2 is exact") {
    const auto f = glassbox::fit_kfac_factors(model, train, {.method = factor_method::identity});
    const auto exact = glassbox::kfac_influence(model, f, q, train);
    const auto k2 = glassbox::kfac_influence(model, f, q, train, {.query_rank = 2});
    double scale = 0, diff = 0;
    for (std::size_t i = 0; i < exact.scores.size(); ++i) {
      scale = std::max(scale, std::abs(static_cast<double>(exact.scores.data()[i])));
      diff = std::max(diff, std::abs(static_cast<double>(exact.scores.data()[i] - k2.scores.data()[i])));
    }
    CHECK(diff < 1e-4 * scale);
    const auto k1 = glassbox::kfac_influence(model, f, q, train, {.query_rank = 1});
    double diff1 = 0;
    for (std::size_t i = 0; i < exact.scores.size(); ++i)
      diff1 = std::max(diff1, std::abs(static_cast<double>(exact.scores.data()[i] - k1.scores.data()[i])));
    CHECK(diff1 > 1e-3 * scale);
  }
  SECTION("the rank-k factors are the best rank-k approximation (Eckart-Young)") {
    const auto f = glassbox::fit_kfac_factors(model, train);
    const auto p = glassbox::make_kfac_preconditioner(f);
    const auto full = glassbox::kfac_prepare_queries(model, f, p, q, 0);
    const auto k3 = glassbox::kfac_prepare_queries(model, f, p, q, 3);
    for (std::size_t l = 0; l < f.layers.size(); ++l) {
      const auto o = static_cast<Eigen::Index>(f.layers[l].output_dim), a = static_cast<Eigen::Index>(f.layers[l].augmented_input_dim());
      REQUIRE(full.layers[l].rank == 0);
      REQUIRE(k3.layers[l].rank == 3);
      for (Eigen::Index j = 0; j < 2; ++j) {
        const dmatrix m = Eigen::Map<const Eigen::MatrixXf>(full.layers[l].full.row(j).data(), a, o).transpose().cast<double>();
        const dmatrix approx = (k3.layers[l].left.middleCols(3 * j, 3) * k3.layers[l].right.middleCols(3 * j, 3).transpose()).cast<double>();
        Eigen::JacobiSVD<Eigen::MatrixXd> svd(m);
        const double tail = svd.singularValues().tail(svd.singularValues().size() - 3).squaredNorm();
        CHECK((m - approx).squaredNorm() == Approx(tail).epsilon(1e-3).margin(1e-8 * m.squaredNorm()));
      }
    }
  }
}

TEST_CASE("K-FAC factors round-trip through safetensors and are checked against the model", "[influence][kfac]") {
  const auto model = tiny_gpt2(10);
  const auto train = gpt2_examples(6, 15);
  for (auto method : {factor_method::ekfac, factor_method::kfac, factor_method::diagonal, factor_method::identity}) {
    CAPTURE(glassbox::to_string(method));
    const auto f = glassbox::fit_kfac_factors(model, train, {.method = method, .layers = glassbox::layer_selection::mlp,
                                                             .damping = 0.25, .seed = 9});
    const auto file = scratch(std::string(glassbox::to_string(method)) + ".safetensors");
    glassbox::io::save_kfac_factors(file, f);
    const auto g = glassbox::io::load_kfac_factors(file, model);
    CHECK(same_factors(f, g, true));
    CHECK(g.damping == 0.25);
    CHECK(g.seed == 9);
    CHECK(g.model_fingerprint == f.model_fingerprint);
    CHECK(g.layers[1].weight_offset == f.layers[1].weight_offset);
    CHECK(g.layers[1].covariance_tokens == f.layers[1].covariance_tokens);
  }
  const auto file = scratch("ekfac.safetensors");
  SECTION("another model") {
    REQUIRE_THROWS_MATCHES(glassbox::io::load_kfac_factors(file, tiny_gpt2(11)), glassbox::io_error,
                           what_contains("the factors were fitted on another model"));
    const auto f = glassbox::io::load_kfac_factors(file);
    const std::vector<measurement> q{measurement::loss(train[0])};
    REQUIRE_THROWS_MATCHES(glassbox::kfac_influence(tiny_gpt2(11), f, q, train), glassbox::error,
                           what_contains("the model must be the one the factors were fitted on"));
  }
  SECTION("malformed files") {
    const auto bad = scratch("bad.safetensors");
    const std::vector<float> w(4, 1.0f);
    const glassbox::io::tensor_to_write t{"w", glassbox::io::dtype::f32, {2, 2}, std::span<const float>(w)};
    glassbox::io::write_safetensors(bad, std::span(&t, 1), {{"format", "pt"}});
    REQUIRE_THROWS_MATCHES(glassbox::io::load_kfac_factors(bad), glassbox::io_error,
                           what_contains("format must be \"glassbox.kfac_factors\", got \"pt\""));
    // A factors file with one tensor missing.
    const glassbox::io::safetensors_reader reader(file);
    std::vector<std::vector<float>> data;
    std::vector<glassbox::io::tensor_to_write> tensors;
    for (const auto& e : reader.entries())
      if (e.name != "h.0.mlp.c_fc.lambda") data.push_back(reader.read_floats(e.name));
    std::size_t k = 0;
    for (const auto& e : reader.entries())
      if (e.name != "h.0.mlp.c_fc.lambda") {
        tensors.push_back({e.name, glassbox::io::dtype::f32, e.shape, std::span<const float>(data[k])});
        ++k;
      }
    glassbox::io::write_safetensors(bad, tensors, reader.metadata());
    REQUIRE_THROWS_MATCHES(glassbox::io::load_kfac_factors(bad), glassbox::io_error,
                           what_contains("tensor h.0.mlp.c_fc.lambda is missing"));
    auto meta = reader.metadata();
    meta.insert_or_assign("kfac", std::string(R"({"method": "ekfac"})"));
    glassbox::io::write_safetensors(bad, tensors, meta);
    REQUIRE_THROWS_MATCHES(glassbox::io::load_kfac_factors(bad), glassbox::io_error,
                           what_contains("the \"kfac\" metadata is malformed"));
    meta.insert_or_assign("version", std::string("7"));
    glassbox::io::write_safetensors(bad, tensors, meta);
    REQUIRE_THROWS_MATCHES(glassbox::io::load_kfac_factors(bad), glassbox::io_error,
                           what_contains("version must be \"1\", got \"7\""));
  }
}

TEST_CASE("K-FAC scoring writes finished shards and resumes without redoing them", "[influence][kfac]") {
  const auto model = tiny_gpt2(12);
  const auto train = gpt2_examples(23, 16);
  const auto f = glassbox::fit_kfac_factors(model, train);
  const std::vector<measurement> q{measurement::loss(train[1]), measurement::loss(train[2])};
  const auto reference = glassbox::kfac_influence(model, f, q, train);
  const auto dir = scratch("shards");
  std::filesystem::remove_all(dir);
  glassbox::kfac_score_options o{.shard_size = 5};
  const std::string run = glassbox::io::kfac_score_run_id(f, q, train, o);
  const auto disk = glassbox::io::kfac_shard_directory(dir, run, q.size());
  std::size_t saved = 0, loaded = 0;
  o.shards.load = [&](std::size_t b, std::size_t e, std::span<float> s) {
    const bool ok = disk.load(b, e, s);
    loaded += ok;
    return ok;
  };
  o.shards.save = [&](std::size_t b, std::size_t e, std::span<const float> s) {
    disk.save(b, e, s);
    ++saved;
  };
  // Interrupted after 12 examples: shards [0, 5) and [5, 10) are on disk.
  o.common.execution.batch_size = 2;
  o.common.execution.on_progress = [](const glassbox::progress& p) { return p.done < 12; };
  REQUIRE_THROWS_AS(glassbox::kfac_influence(model, f, q, train, o), glassbox::cancelled);
  CHECK(saved == 2);
  CHECK(std::filesystem::exists(dir / "scores-0000000000-0000000005.safetensors"));
  CHECK(std::filesystem::exists(dir / "scores-0000000005-0000000010.safetensors"));
  // Resumed: those two are read back, the other three computed.
  o.common.execution.on_progress = {};
  saved = 0;
  const auto resumed = glassbox::kfac_influence(model, f, q, train, o);
  CHECK(loaded == 2);
  CHECK(saved == 3);
  CHECK(same_tensor(resumed.scores, reference.scores));
  // A shard of another run is never mixed in.
  const std::vector<measurement> other{measurement::loss(train[3]), measurement::loss(train[2])};
  glassbox::kfac_score_options o2{.shard_size = 5};
  o2.shards = glassbox::io::kfac_shard_directory(dir, glassbox::io::kfac_score_run_id(f, other, train, o2), 2);
  REQUIRE_THROWS_MATCHES(glassbox::kfac_influence(model, f, other, train, o2), glassbox::io_error,
                         what_contains("the shard belongs to another run"));
}

TEST_CASE("K-FAC reports NaN in the statistics with the example that produced it", "[influence][kfac]") {
  dmatrix x = random_matrix(5, 3, 1);
  x(4, 1) = std::numeric_limits<double>::quiet_NaN();  // token 4 has a NaN feature
  const linear_softmax model(x, 3, true, random_floats(12, 2));
  std::vector<training_example> train = one_token_examples(6, 4, 3, 3);
  train[3] = training_example::classification({4}, 1);
  REQUIRE_THROWS_MATCHES(glassbox::fit_kfac_factors(model, train, {.fisher = fisher_type::empirical}),
                         glassbox::model_error, what_contains("of layer out for training example 3"));
  // The sampled Fisher needs the logits first: they are NaN too, and named.
  REQUIRE_THROWS_MATCHES(glassbox::fit_kfac_factors(model, train), glassbox::model_error,
                         what_contains("in its logits for training example 3"));
  const auto clean = std::vector<training_example>(train.begin(), train.begin() + 3);
  const auto f = glassbox::fit_kfac_factors(model, clean);
  const std::vector<measurement> q{measurement::loss(clean[0])};
  REQUIRE_THROWS_MATCHES(glassbox::kfac_influence(model, f, q, train), glassbox::model_error,
                         what_contains("for training example 3"));
}

TEST_CASE("K-FAC rejects bad input with clear messages", "[influence][kfac]") {
  const auto model = tiny_gpt2();
  const auto train = gpt2_examples(4, 1);
  const std::vector<training_example> none;
  REQUIRE_THROWS_MATCHES(glassbox::fit_kfac_factors(model, none), glassbox::error,
                         what_contains("glassbox::fit_kfac_factors: examples must not be empty"));
  REQUIRE_THROWS_MATCHES(glassbox::fit_kfac_factors(model, train, {.covariance_max_examples = 0}), glassbox::error,
                         what_contains("covariance_max_examples must be >= 1, got 0"));
  REQUIRE_THROWS_MATCHES(glassbox::fit_kfac_factors(model, train, {.execution = {.batch_size = 0}}), glassbox::error,
                         what_contains("batch_size must be >= 1, got 0"));
  REQUIRE_THROWS_MATCHES(glassbox::fit_kfac_factors(model, train, {.layer_names = {"h.0.mlp.c_fc", "h.9.mlp"}}),
                         glassbox::error, what_contains("layer_names must name layers of the model"));
  REQUIRE_THROWS_MATCHES(glassbox::fit_kfac_factors(model, train, {.damping = -0.5}), glassbox::error,
                         what_contains("damping must be finite and >= 0, got -0.5"));
  const linear_softmax linear(random_matrix(3, 2, 1), 2, true, random_floats(6, 1));
  const auto lt = one_token_examples(3, 3, 2, 1);
  REQUIRE_THROWS_MATCHES(glassbox::fit_kfac_factors(linear, lt, {.layers = glassbox::layer_selection::mlp}),
                         glassbox::error, what_contains("layers must select at least one layer of the model (out)"));
  std::vector<training_example> unscored = train;
  unscored[2].labels.assign(unscored[2].labels.size(), training_example::ignore_label);
  REQUIRE_THROWS_MATCHES(glassbox::fit_kfac_factors(model, unscored), glassbox::error,
                         what_contains("training example 2 must have at least one scored row, got none"));
  std::vector<training_example> ragged = train;
  ragged[1].labels.pop_back();
  REQUIRE_THROWS_MATCHES(glassbox::fit_kfac_factors(model, ragged), glassbox::shape_error,
                         what_contains("training example 1 must have tokens and one label per token"));
  const auto f = glassbox::fit_kfac_factors(model, train);
  const std::vector<measurement> q{measurement::loss(train[0])};
  const std::vector<measurement> no_queries;
  REQUIRE_THROWS_MATCHES(glassbox::kfac_influence(model, f, no_queries, train), glassbox::error,
                         what_contains("queries must not be empty"));
  REQUIRE_THROWS_MATCHES(glassbox::kfac_influence(model, f, q, train, {.shard_size = 0}), glassbox::error,
                         what_contains("shard_size must be >= 1, got 0"));
  REQUIRE_THROWS_MATCHES(glassbox::kfac_influence(model, f, q, train, {.common = {.damping = -1.0}}), glassbox::error,
                         what_contains("damping must be finite and >= 0, got -1"));
  CHECK(glassbox::factor_method_from_string("ekfac") == factor_method::ekfac);
  CHECK_FALSE(glassbox::factor_method_from_string("exact").has_value());
  CHECK(glassbox::layer_selection_from_string("mlp") == glassbox::layer_selection::mlp);
}

// glassbox: a linear bag-of-embeddings language model whose attributions are known in closed form.
//
//   e_i = E[token_i]                      (embeddings, [V, d])
//   logits[t] = (sum_{i <= t} e_i) W + b  (one row per position, W [d, C], b [C])
//
// A logit target at position t is linear in the embeddings, so for token i <= t:
//   integrated gradients (zero baseline) = input x gradient = e_i . W[:, c]
//   occlusion / Shapley with baseline token z = (e_i - E[z]) . W[:, c]
// The tests of the attribution module check every method against these values.
//
// It is also a TrainableModel: with the embeddings held fixed, the trainable parameters are
// theta = (W row-major, then b), and the loss of an example is the mean cross-entropy over its
// scored rows plus (l2 / 2) ||theta||^2 — multinomial logistic regression over fixed bag-of-
// embeddings features, strictly convex for l2 > 0. Its Hessian-vector and Gauss-Newton-vector
// products (equal here, since the logits are linear in theta) are exact and closed-form; the
// influence tests check leave-one-out retraining on it.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <optional>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

#include "glassbox/core/error.hpp"
#include "glassbox/core/model.hpp"
#include "glassbox/core/random.hpp"
#include "glassbox/detail/eigen.hpp"

namespace glassbox::models {

/// A causal linear bag-of-embeddings model with closed-form attributions (a test reference).
/// A class template only so that its member functions compile where they are used (docs/building.md,
/// "Include cost"); `linear_bag` names it.
template <class Tag = void>
class basic_linear_bag {
  // float, named so that the member functions' Eigen expressions depend on Tag and compile only
  // where they are called (detail::dependent_t).
  using real_f = detail::dependent_t<Tag, float>;

 public:
  static constexpr bool thread_safe = true;  ///< every member is const and reentrant

  /// A model from its embeddings [V, d], output weights [d, C] and bias [C]; `pad` is the absent token.
  basic_linear_bag(tensor2 embeddings, tensor2 weights, tensor1 bias, token_id pad = 0, double l2 = 0)
      : embeddings_(std::move(embeddings)), weights_(std::move(weights)), bias_(std::move(bias)), pad_(pad) {
    set_l2(l2);
    detail::require<shape_error>(embeddings_.shape(1) == weights_.shape(0),
                                 "glassbox::models::linear_bag: embeddings are {} wide but weights have {} rows",
                                 embeddings_.shape(1), weights_.shape(0));
    detail::require<shape_error>(bias_.size() == weights_.shape(1),
                                 "glassbox::models::linear_bag: bias has {} entries, weights {} columns", bias_.size(),
                                 weights_.shape(1));
    detail::require<shape_error>(pad_ >= 0 && static_cast<std::size_t>(pad_) < embeddings_.shape(0),
                                 "glassbox::models::linear_bag: pad token {} outside a vocabulary of {}", pad_,
                                 embeddings_.shape(0));
    flat_.assign(weights_.begin(), weights_.end());
    flat_.insert(flat_.end(), bias_.begin(), bias_.end());
  }

  /// A model with weights drawn from N(0, 1) under `seed`.
  static basic_linear_bag random(std::size_t vocab, std::size_t width, std::size_t classes, std::uint64_t seed,
                           token_id pad = 0) {
    glassbox::rng g(seed);
    tensor2 e({vocab, width}), w({width, classes});
    auto b = tensor1::from_shape({classes});
    for (auto& x : e) x = static_cast<float>(g.normal());
    for (auto& x : w) x = static_cast<float>(g.normal());
    for (auto& x : b) x = static_cast<float>(g.normal());
    return {std::move(e), std::move(w), std::move(b), pad};
  }

  /// Number of token ids.
  std::size_t vocab_size() const { return embeddings_.shape(0); }
  /// Embedding width d.
  std::size_t width() const { return embeddings_.shape(1); }
  /// Output columns C.
  std::size_t classes() const { return weights_.shape(1); }
  /// The token that stands for "absent" in perturbations.
  std::optional<token_id> pad_token() const { return pad_; }
  /// One output row per input position.
  std::size_t output_rows(std::size_t tokens) const { return tokens; }

  /// The embedding matrix [V, d].
  const tensor2& embedding_matrix() const { return embeddings_; }
  /// The output weights [d, C].
  const tensor2& weights() const { return weights_; }
  /// The output bias [C].
  const tensor1& bias() const { return bias_; }

  // ---- TrainableModel: theta = (W, b), the embeddings fixed ------------------------------------

  /// The L2 coefficient: every example's loss carries (l2 / 2) ||theta||^2.
  double l2() const { return l2_; }
  /// Sets the L2 coefficient (>= 0).
  void set_l2(double l2) {
    detail::require(std::isfinite(l2) && l2 >= 0, "glassbox::models::linear_bag::set_l2: l2 must be finite and >= 0, got {}",
                    l2);
    l2_ = l2;
  }
  /// d C + C: the entries of W and b.
  std::size_t parameter_count() const { return flat_.size(); }
  /// W (row-major [d, C]) followed by b.
  std::span<const float> parameters() const { return flat_; }
  /// Replaces W and b (layout of parameters()).
  void set_parameters(std::span<const float> p) {
    detail::require<shape_error>(p.size() == flat_.size(),
                                 "glassbox::models::linear_bag::set_parameters: parameters must hold {} values, got {}",
                                 flat_.size(), p.size());
    flat_.assign(p.begin(), p.end());
    std::copy_n(p.data(), weights_.size(), weights_.data());
    std::copy_n(p.data() + weights_.size(), bias_.size(), bias_.data());
  }
  /// Mean cross-entropy over the scored rows of `example` plus (l2 / 2) ||theta||^2.
  double loss(const training_example& example) const { return pass(example, nullptr, nullptr, nullptr); }
  /// The loss and its exact gradient w.r.t. theta.
  value_and_gradient<tensor1> loss_gradient(const training_example& example) const {
    std::vector<double> g(flat_.size(), 0.0);
    const double value = pass(example, &g, nullptr, nullptr);
    return {value, to_tensor(g)};
  }
  /// H v for the mean loss over `examples` (exact; equal to the Gauss-Newton product).
  tensor1 hessian_vector_product(std::span<const training_example> examples, std::span<const float> v) const {
    return curvature_product(examples, v, "hessian_vector_product");
  }
  /// G v for the mean loss over `examples`: (1/N) sum_n (1/R_n) sum_r J_r^T (diag p - p p^T) J_r v + l2 v.
  tensor1 gauss_newton_vector_product(std::span<const training_example> examples, std::span<const float> v) const {
    return curvature_product(examples, v, "gauss_newton_vector_product");
  }

  /// E[tokens], [T, d].
  tensor2 embed(token_span tokens) const {
    tensor2 e({tokens.size(), width()});
    for (std::size_t i = 0; i < tokens.size(); ++i) {
      check_token(tokens[i]);
      std::copy_n(embeddings_.data() + static_cast<std::size_t>(tokens[i]) * width(), width(), e.data() + i * width());
    }
    return e;
  }

  /// Logits [T, C] for every position.
  tensor2 logits(token_span tokens) const { return logits_from_embeddings(embed(tokens)); }

  /// Logits of the chosen rows only, [rows.size(), C].
  tensor2 logits_at(token_span tokens, std::span<const std::size_t> rows) const {
    return select(logits(tokens), rows);
  }

  /// Logits [T, C] from embeddings [T, d]: prefix sums times W plus b.
  tensor2 logits_from_embeddings(const tensor2& e) const {
    detail::require<shape_error>(e.shape(1) == width(),
                                 "glassbox::models::linear_bag: embeddings must be {} wide, got {}", width(), e.shape(1));
    const auto t = e.shape(0);
    tensor2 prefix = e;
    auto p = detail::as_matrix<real_f>(prefix);
    for (Eigen::Index i = 1; i < static_cast<Eigen::Index>(t); ++i) p.row(i) += p.row(i - 1);
    tensor2 out({t, classes()});
    auto o = detail::as_matrix<real_f>(out);
    o.noalias() = p * detail::as_matrix<real_f>(weights_);
    o.rowwise() += detail::as_vector<real_f>(bias_).transpose();
    return out;
  }

  /// The scalar of `seed` and its exact gradient w.r.t. the embeddings [T, d].
  value_and_gradient<tensor2> embedding_gradient(const tensor2& e, const output_seed& seed) const {
    const tensor2 all = logits_from_embeddings(e);
    const auto rows = seed.rows(all.shape(0));
    tensor2 d_rows;
    const double value = seed(select(all, rows), d_rows);
    // d f / d e_i = sum over read rows r >= i of dz_r W^T
    const auto t = e.shape(0);
    detail::row_matrix<real_f> dz =
        detail::row_matrix<real_f>::Zero(static_cast<Eigen::Index>(t), static_cast<Eigen::Index>(classes()));
    for (std::size_t k = 0; k < rows.size(); ++k)
      dz.row(static_cast<Eigen::Index>(rows[k])) += detail::as_matrix<real_f>(d_rows).row(static_cast<Eigen::Index>(k));
    for (Eigen::Index i = static_cast<Eigen::Index>(t) - 2; i >= 0; --i) dz.row(i) += dz.row(i + 1);
    value_and_gradient<tensor2> out{value, tensor2({t, width()})};
    detail::as_matrix<real_f>(out.gradient).noalias() = dz * detail::as_matrix<real_f>(weights_).transpose();
    return out;
  }

 private:
  void check_token(token_id t) const {
    detail::require<shape_error>(t >= 0 && static_cast<std::size_t>(t) < vocab_size(),
                                 "glassbox::models::linear_bag: token {} outside a vocabulary of {}", t, vocab_size());
  }
  static tensor1 to_tensor(const std::vector<double>& x) {
    auto t = tensor1::from_shape({x.size()});
    for (std::size_t i = 0; i < x.size(); ++i) t[i] = static_cast<float>(x[i]);
    return t;
  }

  // One example in double: the loss; with `gradient`, adds its gradient; with `v` and `hv`, adds
  // weight x (its Hessian without the L2 term) v. Features s_r = sum_{i <= r} e_i.
  double pass(const training_example& example, std::vector<double>* gradient, std::span<const float>* v,
              std::vector<double>* hv, double weight = 1) const {
    const std::size_t T = example.tokens.size(), d = width(), C = classes();
    detail::require<shape_error>(T >= 1, "glassbox::models::linear_bag::loss: the example must not be empty");
    detail::require<shape_error>(example.labels.size() == T,
                                 "glassbox::models::linear_bag::loss: labels must have one entry per token ({}), got {}",
                                 T, example.labels.size());
    std::size_t scored = 0;
    for (auto l : example.labels) {
      if (l == training_example::ignore_label) continue;
      detail::require<shape_error>(l >= 0 && static_cast<std::size_t>(l) < C,
                                   "glassbox::models::linear_bag::loss: label must be in [0, {}) or {}, got {}", C,
                                   training_example::ignore_label, l);
      ++scored;
    }
    detail::require<shape_error>(scored >= 1, "glassbox::models::linear_bag::loss: an example must score at least one row");
    const double row_weight = 1.0 / static_cast<double>(scored);
    std::vector<double> s(d, 0.0), z(C), p(C), u(C);
    double total = 0;
    for (std::size_t r = 0; r < T; ++r) {
      check_token(example.tokens[r]);
      const float* e = embeddings_.data() + static_cast<std::size_t>(example.tokens[r]) * d;
      for (std::size_t j = 0; j < d; ++j) s[j] += e[j];
      const token_id label = example.labels[r];
      if (label == training_example::ignore_label) continue;
      double mx = -INFINITY;
      for (std::size_t c = 0; c < C; ++c) {
        double a = flat_[d * C + c];
        for (std::size_t j = 0; j < d; ++j) a += s[j] * flat_[j * C + c];
        z[c] = a;
        mx = std::max(mx, a);
      }
      double sum = 0;
      for (std::size_t c = 0; c < C; ++c) sum += std::exp(z[c] - mx);
      const double lse = mx + std::log(sum);
      total += lse - z[static_cast<std::size_t>(label)];
      for (std::size_t c = 0; c < C; ++c) p[c] = std::exp(z[c] - lse);
      if (gradient != nullptr) {
        for (std::size_t c = 0; c < C; ++c) {
          const double dz = row_weight * (p[c] - (c == static_cast<std::size_t>(label) ? 1.0 : 0.0));
          for (std::size_t j = 0; j < d; ++j) (*gradient)[j * C + c] += dz * s[j];
          (*gradient)[d * C + c] += dz;
        }
      }
      if (hv != nullptr) {  // u = J v = s V + v_b; m = (diag p - p p^T) u; J^T m
        double pu = 0;
        for (std::size_t c = 0; c < C; ++c) {
          double a = (*v)[d * C + c];
          for (std::size_t j = 0; j < d; ++j) a += s[j] * (*v)[j * C + c];
          u[c] = a;
          pu += p[c] * a;
        }
        for (std::size_t c = 0; c < C; ++c) {
          const double m = weight * row_weight * p[c] * (u[c] - pu);
          for (std::size_t j = 0; j < d; ++j) (*hv)[j * C + c] += m * s[j];
          (*hv)[d * C + c] += m;
        }
      }
    }
    double norm2 = 0;
    for (float x : flat_) norm2 += static_cast<double>(x) * x;
    if (gradient != nullptr)
      for (std::size_t i = 0; i < flat_.size(); ++i) (*gradient)[i] += l2_ * flat_[i];
    return total * row_weight + 0.5 * l2_ * norm2;
  }

  tensor1 curvature_product(std::span<const training_example> examples, std::span<const float> v,
                            std::string_view who) const {
    detail::require<shape_error>(!examples.empty(), "glassbox::models::linear_bag::{}: examples must not be empty", who);
    detail::require<shape_error>(v.size() == flat_.size(),
                                 "glassbox::models::linear_bag::{}: v must hold {} values (parameter_count), got {}", who,
                                 flat_.size(), v.size());
    std::vector<double> hv(flat_.size(), 0.0);
    const double weight = 1.0 / static_cast<double>(examples.size());
    for (const auto& e : examples) pass(e, nullptr, &v, &hv, weight);
    for (std::size_t i = 0; i < hv.size(); ++i) hv[i] += l2_ * v[i];
    return to_tensor(hv);
  }

  static tensor2 select(const tensor2& all, std::span<const std::size_t> rows) {
    tensor2 out({rows.size(), all.shape(1)});
    for (std::size_t k = 0; k < rows.size(); ++k) {
      detail::require<shape_error>(rows[k] < all.shape(0), "glassbox::models::linear_bag: row {} outside {} rows",
                                   rows[k], all.shape(0));
      std::copy_n(all.data() + rows[k] * all.shape(1), all.shape(1), out.data() + k * all.shape(1));
    }
    return out;
  }

  tensor2 embeddings_;
  tensor2 weights_;
  tensor1 bias_;
  token_id pad_;
  double l2_ = 0;
  std::vector<float> flat_;  // W then b: the trainable parameters
};

/// The linear bag-of-embeddings model (basic_linear_bag's only use: its parameter is not a choice).
using linear_bag = basic_linear_bag<>;

static_assert(DifferentiableModel<linear_bag> && check_trainable_model<linear_bag>());
static_assert(concepts::has_hessian_vector_product<linear_bag> && concepts::has_gauss_newton_vector_product<linear_bag>);

}  // namespace glassbox::models

// glassbox: a linear bag-of-embeddings language model whose attributions are known in closed form.
//
//   e_i = E[token_i]                      (embeddings, [V, d])
//   logits[t] = (sum_{i <= t} e_i) W + b  (one row per position, W [d, C], b [C])
//
// A logit target at position t is linear in the embeddings, so for token i <= t:
//   integrated gradients (zero baseline) = input x gradient = e_i . W[:, c]
//   occlusion / Shapley with baseline token z = (e_i - E[z]) . W[:, c]
// The tests of the attribution module check every method against these values.
#pragma once

#include <cstddef>
#include <optional>
#include <span>
#include <utility>

#include "glassbox/core/error.hpp"
#include "glassbox/core/model.hpp"
#include "glassbox/core/random.hpp"
#include "glassbox/detail/eigen.hpp"

namespace glassbox::models {

/// A causal linear bag-of-embeddings model with closed-form attributions (a test reference).
class linear_bag {
 public:
  static constexpr bool thread_safe = true;  ///< every member is const and reentrant

  /// A model from its embeddings [V, d], output weights [d, C] and bias [C]; `pad` is the absent token.
  linear_bag(tensor2 embeddings, tensor2 weights, tensor1 bias, token_id pad = 0)
      : embeddings_(std::move(embeddings)), weights_(std::move(weights)), bias_(std::move(bias)), pad_(pad) {
    detail::require<shape_error>(embeddings_.shape(1) == weights_.shape(0),
                                 "glassbox::models::linear_bag: embeddings are {} wide but weights have {} rows",
                                 embeddings_.shape(1), weights_.shape(0));
    detail::require<shape_error>(bias_.size() == weights_.shape(1),
                                 "glassbox::models::linear_bag: bias has {} entries, weights {} columns", bias_.size(),
                                 weights_.shape(1));
    detail::require<shape_error>(pad_ >= 0 && static_cast<std::size_t>(pad_) < embeddings_.shape(0),
                                 "glassbox::models::linear_bag: pad token {} outside a vocabulary of {}", pad_,
                                 embeddings_.shape(0));
  }

  /// A model with weights drawn from N(0, 1) under `seed`.
  static linear_bag random(std::size_t vocab, std::size_t width, std::size_t classes, std::uint64_t seed,
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
    auto p = detail::as_matrix(prefix);
    for (Eigen::Index i = 1; i < static_cast<Eigen::Index>(t); ++i) p.row(i) += p.row(i - 1);
    tensor2 out({t, classes()});
    auto o = detail::as_matrix(out);
    o.noalias() = p * detail::as_matrix(weights_);
    o.rowwise() += detail::as_vector(bias_).transpose();
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
    detail::row_matrix<float> dz = detail::row_matrix<float>::Zero(static_cast<Eigen::Index>(t),
                                                                    static_cast<Eigen::Index>(classes()));
    for (std::size_t k = 0; k < rows.size(); ++k) dz.row(static_cast<Eigen::Index>(rows[k])) += detail::as_matrix(d_rows).row(static_cast<Eigen::Index>(k));
    for (Eigen::Index i = static_cast<Eigen::Index>(t) - 2; i >= 0; --i) dz.row(i) += dz.row(i + 1);
    value_and_gradient<tensor2> out{value, tensor2({t, width()})};
    detail::as_matrix(out.gradient).noalias() = dz * detail::as_matrix(weights_).transpose();
    return out;
  }

 private:
  void check_token(token_id t) const {
    detail::require<shape_error>(t >= 0 && static_cast<std::size_t>(t) < vocab_size(),
                                 "glassbox::models::linear_bag: token {} outside a vocabulary of {}", t, vocab_size());
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
};

static_assert(DifferentiableModel<linear_bag>);

}  // namespace glassbox::models

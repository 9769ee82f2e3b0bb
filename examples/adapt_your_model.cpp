// Adapting your own transformer to glassbox.
//
// `my_lab::tiny_transformer` stands for a model you already have: glassbox knows nothing of it.
// It is a one-layer, one-head, attention-only causal transformer with its own storage (Eigen
// column-major matrices), its own forward pass and its own hand-written backward pass:
//
//   x = e + P[0:T]                          e: token embeddings [T, d], P: learned positions
//   q = x Wq,  k = x Wk,  v = x Wv
//   A = softmax(q k^T / sqrt(d) + causal mask)
//   h = x + (A v) Wo                        residual stream
//   logits = h U                            [T, V], one row per position
//
// `tiny_transformer_adapter` is all glassbox needs: five const members that translate between
// glassbox's tensors and the model's own types. With them the model is a `Model` (logits,
// vocab_size) and a `DifferentiableModel` (embed, logits_from_embeddings, embedding_gradient),
// which every gradient method of glassbox accepts. docs/concepts.md explains each member.
//
// main() builds a small random model, explains the log-probability of a token at the last
// position with gradient x input, and ends with the last step of writing any adapter: the
// conformance kit, glassbox::verify_adapter, which checks every member against the contract
// (shapes, logits_from_embeddings(embed(t)) = logits(t), the gradient against finite differences,
// ...) and prints the table. The program fails when a check fails. (tests/unit/verify_test.cpp
// compiles this file without main() to check the adapter too.)
#include <fmt/format.h>

#include <Eigen/Core>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <glassbox/core.hpp>
#include <glassbox/verify.hpp>
#include <utility>
#include <vector>

namespace my_lab {

using matrix = Eigen::MatrixXf;  // the model's own storage: column-major float matrices

/// A one-layer, one-head, attention-only causal transformer with a hand-written backward pass.
struct tiny_transformer {
  matrix token_embedding;     ///< [V, d]
  matrix position_embedding;  ///< [max_length, d]
  matrix w_q, w_k, w_v, w_o;  ///< [d, d] each
  matrix unembedding;         ///< [d, V]

  /// What the forward pass keeps for the backward pass.
  struct activations {
    matrix x, q, k, v, attention;  ///< residual input [T, d], projections [T, d], softmax [T, T]
  };

  int vocab() const { return static_cast<int>(token_embedding.rows()); }
  int width() const { return static_cast<int>(token_embedding.cols()); }
  int max_length() const { return static_cast<int>(position_embedding.rows()); }

  /// Logits [T, V] from token embeddings [T, d]; fills `saved` when given.
  matrix forward(const matrix& embeddings, activations* saved = nullptr) const {
    const Eigen::Index t = embeddings.rows();
    activations a;
    a.x = embeddings + position_embedding.topRows(t);
    a.q = a.x * w_q;
    a.k = a.x * w_k;
    a.v = a.x * w_v;
    const float scale = 1.0f / std::sqrt(static_cast<float>(width()));
    a.attention = (a.q * a.k.transpose()) * scale;
    for (Eigen::Index i = 0; i < t; ++i) {  // causal softmax, row by row
      const float top = a.attention.row(i).head(i + 1).maxCoeff();
      float sum = 0;
      for (Eigen::Index j = 0; j < t; ++j) {
        const float p = j <= i ? std::exp(a.attention(i, j) - top) : 0.0f;
        a.attention(i, j) = p;
        sum += p;
      }
      a.attention.row(i) /= sum;
    }
    const matrix h = a.x + (a.attention * a.v) * w_o;
    matrix logits = h * unembedding;
    if (saved != nullptr) *saved = std::move(a);
    return logits;
  }

  /// d f / d embeddings [T, d] from d f / d logits [T, V], by the chain rule through forward().
  matrix backward(const activations& a, const matrix& d_logits) const {
    const float scale = 1.0f / std::sqrt(static_cast<float>(width()));
    const matrix d_h = d_logits * unembedding.transpose();
    const matrix d_mixed = d_h * w_o.transpose();          // d f / d (A v)
    const matrix d_attention = d_mixed * a.v.transpose();  // d f / d A
    const matrix d_v = a.attention.transpose() * d_mixed;  // d f / d v
    // softmax backward, row by row: dS = A o (dA - rowsum(dA o A)); masked entries have A = 0.
    const Eigen::VectorXf row_dot = d_attention.cwiseProduct(a.attention).rowwise().sum();
    const matrix d_scores = (a.attention.cwiseProduct(d_attention.colwise() - row_dot)) * scale;  // d f / d (q k^T)
    const matrix d_q = d_scores * a.k;
    const matrix d_k = d_scores.transpose() * a.q;
    // The residual path, plus the three projections; positions are added, so they pass d_x through.
    return d_h + d_q * w_q.transpose() + d_k * w_k.transpose() + d_v * w_v.transpose();
  }
};

}  // namespace my_lab

/// The glassbox adapter of my_lab::tiny_transformer: Model + DifferentiableModel.
class tiny_transformer_adapter {
 public:
  /// Every member is const and uses no shared scratch space, so glassbox may call it from several threads.
  static constexpr bool thread_safe = true;

  /// Adapts `model`, which must outlive the adapter.
  explicit tiny_transformer_adapter(const my_lab::tiny_transformer& model) : model_(model) {}

  /// Model: the number of token ids.
  std::size_t vocab_size() const { return static_cast<std::size_t>(model_.vocab()); }

  /// Model: logits [T, V], one row per input position.
  glassbox::tensor2 logits(glassbox::token_span tokens) const { return logits_from_embeddings(embed(tokens)); }

  /// EmbeddingModel: the token embeddings [T, d] the model adds its positions to.
  glassbox::tensor2 embed(glassbox::token_span tokens) const {
    check_length(tokens.size());
    glassbox::tensor2 e({tokens.size(), static_cast<std::size_t>(model_.width())});
    for (std::size_t i = 0; i < tokens.size(); ++i) {
      if (tokens[i] < 0 || tokens[i] >= model_.vocab())
        throw glassbox::shape_error(fmt::format(
            "tiny_transformer_adapter::embed: tokens[{}] must be in [0, {}), got {}", i, model_.vocab(), tokens[i]));
      for (int j = 0; j < model_.width(); ++j) e(i, static_cast<std::size_t>(j)) = model_.token_embedding(tokens[i], j);
    }
    return e;
  }

  /// EmbeddingModel: logits [T, V] from (possibly edited) token embeddings [T, d].
  glassbox::tensor2 logits_from_embeddings(const glassbox::tensor2& embeddings) const {
    return to_tensor(model_.forward(to_matrix(embeddings)));
  }

  /// DifferentiableModel: the scalar `seed` reads from the logits, and its exact gradient
  /// w.r.t. the token embeddings [T, d], in one forward and one backward pass.
  glassbox::value_and_gradient<glassbox::tensor2> embedding_gradient(const glassbox::tensor2& embeddings,
                                                                     const glassbox::output_seed& seed) const {
    my_lab::tiny_transformer::activations saved;
    const my_lab::matrix logits = model_.forward(to_matrix(embeddings), &saved);
    // The seed reads a few rows (usually one): hand it those rows, get d value / d rows back.
    const std::vector<std::size_t> rows = seed.rows(static_cast<std::size_t>(logits.rows()));
    glassbox::tensor2 row_logits({rows.size(), vocab_size()});
    for (std::size_t r = 0; r < rows.size(); ++r)
      for (std::size_t c = 0; c < vocab_size(); ++c) row_logits(r, c) = logits(index(rows[r]), index(c));
    glassbox::tensor2 d_row_logits;
    const double value = seed(row_logits, d_row_logits);
    // Scatter into d value / d logits [T, V] (zero on rows the seed does not read), then backward.
    my_lab::matrix d_logits = my_lab::matrix::Zero(logits.rows(), logits.cols());
    for (std::size_t r = 0; r < rows.size(); ++r)
      for (std::size_t c = 0; c < vocab_size(); ++c) d_logits(index(rows[r]), index(c)) += d_row_logits(r, c);
    return {value, to_tensor(model_.backward(saved, d_logits))};
  }

 private:
  static Eigen::Index index(std::size_t i) { return static_cast<Eigen::Index>(i); }

  void check_length(std::size_t length) const {
    if (length < 1 || length > static_cast<std::size_t>(model_.max_length()))
      throw glassbox::shape_error(fmt::format("tiny_transformer_adapter: sequence length must be in [1, {}], got {}",
                                              model_.max_length(), length));
  }

  // glassbox tensors are row-major xtensor; the model uses column-major Eigen. Copy across.
  my_lab::matrix to_matrix(const glassbox::tensor2& t) const {
    if (t.shape(1) != static_cast<std::size_t>(model_.width()))
      throw glassbox::shape_error(fmt::format("tiny_transformer_adapter: embeddings must be [T, {}], got [{}, {}]",
                                              model_.width(), t.shape(0), t.shape(1)));
    check_length(t.shape(0));
    using row_major = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
    return Eigen::Map<const row_major>(t.data(), index(t.shape(0)), index(t.shape(1)));
  }
  static glassbox::tensor2 to_tensor(const my_lab::matrix& m) {
    glassbox::tensor2 t({static_cast<std::size_t>(m.rows()), static_cast<std::size_t>(m.cols())});
    using row_major = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
    Eigen::Map<row_major>(t.data(), m.rows(), m.cols()) = m;
    return t;
  }

  const my_lab::tiny_transformer& model_;
};

// Lists, in plain words, every member the adapter would be missing.
static_assert(glassbox::check_differentiable_model<tiny_transformer_adapter>());

namespace {

// A model with Gaussian weights (projections N(0, 1/d)) drawn from a fixed seed.
my_lab::tiny_transformer random_model(int vocab, int width, int max_length, std::uint64_t seed) {
  glassbox::rng rng(seed);
  const float sd = 1.0f / std::sqrt(static_cast<float>(width));
  auto draw = [&](int rows, int cols, float scale) {
    my_lab::matrix m(rows, cols);
    for (Eigen::Index j = 0; j < m.cols(); ++j)
      for (Eigen::Index i = 0; i < m.rows(); ++i) m(i, j) = scale * static_cast<float>(rng.normal());
    return m;
  };
  my_lab::tiny_transformer model;
  model.token_embedding = draw(vocab, width, 1.0f);
  model.position_embedding = draw(max_length, width, 0.5f);
  model.w_q = draw(width, width, sd);
  model.w_k = draw(width, width, sd);
  model.w_v = draw(width, width, sd);
  model.w_o = draw(width, width, sd);
  model.unembedding = draw(width, vocab, sd);
  return model;
}

}  // namespace

#ifndef GLASSBOX_EXAMPLE_NO_MAIN
int main() {
  const my_lab::tiny_transformer model = random_model(/*vocab=*/12, /*width=*/8, /*max_length=*/16, /*seed=*/2024);
  const tiny_transformer_adapter adapter(model);

  const glassbox::token_sequence tokens = {3, 7, 1, 9, 4, 2};
  const auto explained = glassbox::target::log_probability(/*token=*/5);  // log p(token 5) at the last position

  // Through glassbox's model dispatch (the same path every algorithm uses) and through the adapter.
  const std::vector<glassbox::token_sequence> inputs = {tokens};
  const double value = glassbox::evaluate_target(adapter, inputs, explained).front();
  const glassbox::tensor2 embeddings = adapter.embed(tokens);
  const auto [value_again, gradient] = adapter.embedding_gradient(embeddings, explained);

  std::printf("target: %s\n", explained.describe().c_str());
  std::printf("value: %.6f (from the gradient pass: %.6f)\n", value, value_again);
  std::printf("gradient x input, per token:\n");
  double total = 0;
  for (std::size_t i = 0; i < tokens.size(); ++i) {
    double score = 0;
    for (std::size_t j = 0; j < embeddings.shape(1); ++j) score += double{embeddings(i, j)} * gradient(i, j);
    total += score;
    std::printf("  token %2zu (id %2d): %+.6f\n", i, tokens[i], score);
  }
  std::printf("  sum: %+.6f\n\n", total);

  // The last step: check the adapter with the conformance kit. It runs every check that applies to
  // the rungs the adapter has (here Model, EmbeddingModel, DifferentiableModel and thread_safe),
  // with the hand-written backward pass against central finite differences along random
  // directions, and says which fast paths the library will take (none here: no batched members).
  const glassbox::verify_report report = glassbox::verify_adapter(adapter, tokens);
  std::printf("%s", glassbox::to_string(report).c_str());
  return report.passed() ? 0 : 1;
}
#endif  // GLASSBOX_EXAMPLE_NO_MAIN

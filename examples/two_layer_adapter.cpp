// Adapting a hand-written two-layer transformer to most of the model ladder, and checking the
// adapter with the conformance kit.
//
// `my_lab::two_layer_transformer` stands for a model you wrote yourself: two pre-norm-free blocks
// with multi-head causal attention and a SiLU MLP, its own storage (column-major Eigen matrices),
// and a hand-written backward pass:
//
//   x0 = e + P[0:T]                                 e: token embeddings [T, d], P: learned positions
//   per block l, head h:  A_h = softmax(x Wq_h (x Wk_h)^T / sqrt(d_h) + causal mask)
//                         y = x + concat_h(m_lh A_h x Wv_h) Wo          m: head mask, 1 = unchanged
//                         x' = y + silu(y W1 + b1) W2
//   logits = x2 U                                   [T, V], one row per position
//
// The adapter gives glassbox every rung the runtime can serve: Model, EmbeddingModel,
// DifferentiableModel, AttentionModel, AttentionGradientModel, ActivationModel, InterventionModel,
// and the optional members output_rows, logits_at, pad_token and thread_safe. (Not
// TrainableModel: this runtime has no parameter gradients.) Every gradient member is one forward
// and one backward pass through the same backward code, which is exactly what can go wrong: a
// transposed product, a missing softmax term, a head mask applied in one direction only. The last
// step of main() runs glassbox::verify_adapter, which checks each member against finite
// differences and the others, prints the table and fails the program if a check fails.
#include <fmt/format.h>

#include <Eigen/Core>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <span>
#include <utility>
#include <vector>

#include "glassbox/core.hpp"
#include "glassbox/verify.hpp"

namespace my_lab {

using matrix = Eigen::MatrixXf;  // the model's own storage: column-major float matrices
using row_vector = Eigen::RowVectorXf;

/// Two transformer blocks (multi-head causal attention, SiLU MLP) with a hand-written backward pass.
struct two_layer_transformer {
  static constexpr int n_layer = 2;
  int heads = 2;
  matrix token_embedding;     ///< [V, d]
  matrix position_embedding;  ///< [max_length, d]
  matrix unembedding;         ///< [d, V]
  struct block {
    matrix w_q, w_k, w_v, w_o;  ///< [d, d]; head h owns columns [h d_h, (h + 1) d_h) of w_q, w_k, w_v
    matrix w_in, w_out;         ///< [d, f], [f, d]
    row_vector b_in;            ///< [f]
  };
  std::array<block, n_layer> blocks;

  int width() const { return static_cast<int>(token_embedding.cols()); }
  int head_width() const { return width() / heads; }

  /// What a block keeps for the backward pass.
  struct block_cache {
    matrix x, q, k, v, y, pre;      ///< input, projections, after attention, MLP pre-activation
    std::vector<matrix> attention;  ///< per head, the probabilities A_h (before the head mask)
  };
  /// Optional edits of a pass: a head mask [n_layer * heads] and one block's replaced probabilities.
  struct edits {
    const float* mask = nullptr;                   ///< m_lh, all ones when null
    int patched_layer = -1;                        ///< the block whose probabilities are replaced
    const std::vector<matrix>* patched = nullptr;  ///< per head, the probabilities used there
  };

  float mask_of(const edits& e, int l, int h) const { return e.mask ? e.mask[l * heads + h] : 1.0f; }
  static float silu(float z) { return z / (1.0f + std::exp(-z)); }
  static float silu_derivative(float z) {
    const float s = 1.0f / (1.0f + std::exp(-z));
    return s * (1.0f + z * (1.0f - s));
  }

  /// The residual stream after the last block, running blocks from..n_layer-1 on `x` (the stream
  /// before block `from`); fills `saved` (one cache per block run) when given.
  matrix forward(matrix x, int from, const edits& e, std::vector<block_cache>* saved = nullptr) const {
    const Eigen::Index t = x.rows();
    const int dh = head_width();
    const float scale = 1.0f / std::sqrt(static_cast<float>(dh));
    for (int l = from; l < n_layer; ++l) {
      const block& b = blocks[static_cast<std::size_t>(l)];
      block_cache c;
      c.x = x;
      c.q = x * b.w_q;
      c.k = x * b.w_k;
      c.v = x * b.w_v;
      matrix mixed = matrix::Zero(t, width());
      for (int h = 0; h < heads; ++h) {
        matrix a;
        if (l == e.patched_layer) {
          a = (*e.patched)[static_cast<std::size_t>(h)];
        } else {
          a = (c.q.middleCols(h * dh, dh) * c.k.middleCols(h * dh, dh).transpose()) * scale;
          for (Eigen::Index i = 0; i < t; ++i) {  // causal softmax, row by row
            const float top = a.row(i).head(i + 1).maxCoeff();
            float sum = 0;
            for (Eigen::Index j = 0; j < t; ++j) sum += a(i, j) = j <= i ? std::exp(a(i, j) - top) : 0.0f;
            a.row(i) /= sum;
          }
        }
        mixed.middleCols(h * dh, dh) = mask_of(e, l, h) * (a * c.v.middleCols(h * dh, dh));
        c.attention.push_back(std::move(a));
      }
      c.y = x + mixed * b.w_o;
      c.pre = (c.y * b.w_in).rowwise() + b.b_in;
      x = c.y + c.pre.unaryExpr(&silu) * b.w_out;
      if (saved != nullptr) saved->push_back(std::move(c));
    }
    return x;
  }

  /// Gradients of a backward pass.
  struct gradients {
    matrix d_input;                 ///< d f / d (the stream before block `from`)
    std::vector<matrix> attention;  ///< d f / d (probabilities used, m_lh A_h), per (block, head) run
    std::vector<float> mask;        ///< d f / d m_lh, per (block, head) run
  };

  /// Backpropagates d f / d (stream after the last block) through the blocks of `saved`.
  gradients backward(const std::vector<block_cache>& saved, matrix d_x, int from, const edits& e) const {
    const int dh = head_width();
    const float scale = 1.0f / std::sqrt(static_cast<float>(dh));
    gradients g;
    g.attention.resize(saved.size() * static_cast<std::size_t>(heads));
    g.mask.resize(saved.size() * static_cast<std::size_t>(heads));
    for (int l = n_layer - 1; l >= from; --l) {
      const block& b = blocks[static_cast<std::size_t>(l)];
      const block_cache& c = saved[static_cast<std::size_t>(l - from)];
      // x' = y + silu(pre) W2, pre = y W1 + b1
      const matrix d_pre = (d_x * b.w_out.transpose()).cwiseProduct(c.pre.unaryExpr(&silu_derivative));
      const matrix d_y = d_x + d_pre * b.w_in.transpose();
      // y = x + mixed Wo, mixed_h = m A_h v_h
      const matrix d_mixed = d_y * b.w_o.transpose();
      matrix d_q = matrix::Zero(c.q.rows(), c.q.cols()), d_k = d_q, d_v = d_q;
      for (int h = 0; h < heads; ++h) {
        const std::size_t at = static_cast<std::size_t>((l - from) * heads + h);
        const float m = mask_of(e, l, h);
        const matrix& a = c.attention[static_cast<std::size_t>(h)];
        const matrix d_out = d_mixed.middleCols(h * dh, dh);
        const matrix d_used = d_out * c.v.middleCols(h * dh, dh).transpose();  // d f / d (m A_h)
        g.attention[at] = d_used;
        g.mask[at] = a.cwiseProduct(d_used).sum();
        d_v.middleCols(h * dh, dh) = m * (a.transpose() * d_out);
        if (l == e.patched_layer) continue;  // replaced probabilities do not depend on q and k
        // softmax backward: dS = A o (dA - rowsum(dA o A)), with dA = m d_used; masked entries have A = 0
        const matrix d_a = m * d_used;
        const Eigen::VectorXf row_dot = d_a.cwiseProduct(a).rowwise().sum();
        const matrix d_scores = a.cwiseProduct(d_a.colwise() - row_dot) * scale;
        d_q.middleCols(h * dh, dh) = d_scores * c.k.middleCols(h * dh, dh);
        d_k.middleCols(h * dh, dh) = d_scores.transpose() * c.q.middleCols(h * dh, dh);
      }
      d_x = d_y + d_q * b.w_q.transpose() + d_k * b.w_k.transpose() + d_v * b.w_v.transpose();
    }
    g.d_input = std::move(d_x);
    return g;
  }
};

}  // namespace my_lab

/// The glassbox adapter of my_lab::two_layer_transformer.
class two_layer_adapter {
 public:
  /// Every member is const and keeps its scratch space on the stack: glassbox may call it from several threads.
  static constexpr bool thread_safe = true;

  /// Adapts `model`, which must outlive the adapter.
  explicit two_layer_adapter(const my_lab::two_layer_transformer& model) : model_(model) {}

  // ---- Model (+ output_rows, logits_at, pad_token) ------------------------------------------

  std::size_t vocab_size() const { return static_cast<std::size_t>(model_.token_embedding.rows()); }
  glassbox::tensor2 logits(glassbox::token_span tokens) const { return logits_from_embeddings(embed(tokens)); }
  /// One row of logits per token (a causal language model).
  std::size_t output_rows(std::size_t tokens) const { return tokens; }
  /// The rows `rows` of the logits (this runtime computes all rows and selects).
  glassbox::tensor2 logits_at(glassbox::token_span tokens, std::span<const std::size_t> rows) const {
    const glassbox::tensor2 all = logits(tokens);
    glassbox::tensor2 out({rows.size(), all.shape(1)});
    for (std::size_t r = 0; r < rows.size(); ++r) {
      if (rows[r] >= all.shape(0)) throw glassbox::shape_error(fmt::format("two_layer_adapter: row {} of {}", rows[r], all.shape(0)));
      for (std::size_t c = 0; c < all.shape(1); ++c) out(r, c) = all(rows[r], c);
    }
    return out;
  }
  /// Token 0 stands for "absent" in perturbation methods.
  std::optional<glassbox::token_id> pad_token() const { return 0; }

  // ---- EmbeddingModel, DifferentiableModel -------------------------------------------------

  glassbox::tensor2 embed(glassbox::token_span tokens) const {
    check_length(tokens.size());
    glassbox::tensor2 e({tokens.size(), width()});
    for (std::size_t i = 0; i < tokens.size(); ++i) {
      if (tokens[i] < 0 || static_cast<std::size_t>(tokens[i]) >= vocab_size())
        throw glassbox::shape_error(fmt::format("two_layer_adapter::embed: tokens[{}] must be in [0, {}), got {}", i,
                                                vocab_size(), tokens[i]));
      for (std::size_t j = 0; j < width(); ++j) e(i, j) = model_.token_embedding(tokens[i], index(j));
    }
    return e;
  }
  glassbox::tensor2 logits_from_embeddings(const glassbox::tensor2& embeddings) const {
    return run_from(0, with_positions(embeddings), {});
  }
  glassbox::value_and_gradient<glassbox::tensor2> embedding_gradient(const glassbox::tensor2& embeddings,
                                                                     const glassbox::output_seed& seed) const {
    // Positions are added, so d f / d e = d f / d x0.
    auto [value, g] = seeded(0, with_positions(embeddings), {}, seed);
    return {value, to_tensor(g.d_input)};
  }

  // ---- AttentionModel, AttentionGradientModel ------------------------------------------------

  /// [L, H, T, T]: entry [l, h, i, j] is how much query i attends to key j.
  glassbox::tensor4 attentions(glassbox::token_span tokens) const {
    std::vector<my_lab::two_layer_transformer::block_cache> saved;
    model_.forward(with_positions(embed(tokens)), 0, {}, &saved);
    return stack_attention(saved, [](const auto& c, std::size_t h) -> const my_lab::matrix& { return c.attention[h]; });
  }
  glassbox::attention_gradient_result attention_gradient(glassbox::token_span tokens,
                                                         const glassbox::output_seed& seed) const {
    std::vector<my_lab::two_layer_transformer::block_cache> saved;
    const auto pass = seeded(0, with_positions(embed(tokens)), {}, seed, &saved);
    const auto& g = pass.second;
    glassbox::attention_gradient_result out;
    out.value = pass.first;
    out.attentions = stack_attention(saved, [](const auto& c, std::size_t h) -> const my_lab::matrix& { return c.attention[h]; });
    const std::size_t heads = static_cast<std::size_t>(model_.heads);
    out.gradient = stack_attention(saved, [&](const auto& c, std::size_t h) -> const my_lab::matrix& {
      return g.attention[static_cast<std::size_t>(&c - saved.data()) * heads + h];
    });
    return out;
  }
  /// The mask [L, H] multiplies each head's probabilities (as Hugging Face's head_mask).
  glassbox::value_and_gradient<glassbox::tensor2> head_mask_gradient(glassbox::token_span tokens,
                                                                     const glassbox::tensor2& mask,
                                                                     const glassbox::output_seed& seed) const {
    const std::vector<float> m = flat_mask(mask);
    edits e;
    e.mask = m.data();
    auto [value, g] = seeded(0, with_positions(embed(tokens)), e, seed);
    glassbox::tensor2 d({mask.shape(0), mask.shape(1)});
    std::copy(g.mask.begin(), g.mask.end(), d.begin());
    return {value, d};
  }
  glassbox::tensor2 logits_with_head_mask(glassbox::token_span tokens, const glassbox::tensor2& mask) const {
    const std::vector<float> m = flat_mask(mask);
    edits e;
    e.mask = m.data();
    return run_from(0, with_positions(embed(tokens)), e);
  }
  /// Not a rung of the ladder: logits with block `layer`'s probabilities replaced by `a` [H, T, T].
  /// The kit uses it to check attention_gradient entry by entry (activation patching would too).
  glassbox::tensor2 logits_with_attentions(glassbox::token_span tokens, std::size_t layer,
                                           const glassbox::tensor3& a) const {
    const std::size_t t = tokens.size(), heads = static_cast<std::size_t>(model_.heads);
    if (layer >= my_lab::two_layer_transformer::n_layer || a.shape(0) != heads || a.shape(1) != t || a.shape(2) != t)
      throw glassbox::shape_error("two_layer_adapter::logits_with_attentions: layer or shape out of range");
    std::vector<my_lab::matrix> patched(heads, my_lab::matrix(index(t), index(t)));
    for (std::size_t h = 0; h < heads; ++h)
      for (std::size_t i = 0; i < t; ++i)
        for (std::size_t j = 0; j < t; ++j) patched[h](index(i), index(j)) = a(h, i, j);
    edits e;
    e.patched_layer = static_cast<int>(layer);
    e.patched = &patched;
    return run_from(0, with_positions(embed(tokens)), e);
  }

  // ---- ActivationModel, InterventionModel ----------------------------------------------------

  /// [L + 1, T, d]: index 0 the input of the first block (embeddings + positions), k after block k.
  glassbox::tensor3 hidden_states(glassbox::token_span tokens) const {
    std::vector<my_lab::two_layer_transformer::block_cache> saved;
    const my_lab::matrix last = model_.forward(with_positions(embed(tokens)), 0, {}, &saved);
    const std::size_t t = tokens.size();
    glassbox::tensor3 out({saved.size() + 1, t, width()});
    for (std::size_t k = 0; k <= saved.size(); ++k) {
      const my_lab::matrix& x = k < saved.size() ? saved[k].x : last;
      for (std::size_t i = 0; i < t; ++i)
        for (std::size_t j = 0; j < width(); ++j) out(k, i, j) = x(index(i), index(j));
    }
    return out;
  }
  glassbox::tensor2 logits_from_hidden(glassbox::token_span tokens, std::size_t layer, const glassbox::tensor2& h) const {
    check_hidden(tokens, layer, h);
    return run_from(static_cast<int>(layer), to_matrix(h), {});
  }
  glassbox::value_and_gradient<glassbox::tensor2> hidden_gradient(glassbox::token_span tokens, std::size_t layer,
                                                                  const glassbox::tensor2& h,
                                                                  const glassbox::output_seed& seed) const {
    check_hidden(tokens, layer, h);
    auto [value, g] = seeded(static_cast<int>(layer), to_matrix(h), {}, seed);
    return {value, to_tensor(g.d_input)};
  }

 private:
  using edits = my_lab::two_layer_transformer::edits;
  static Eigen::Index index(std::size_t i) { return static_cast<Eigen::Index>(i); }
  std::size_t width() const { return static_cast<std::size_t>(model_.width()); }

  void check_length(std::size_t t) const {
    if (t < 1 || t > static_cast<std::size_t>(model_.position_embedding.rows()))
      throw glassbox::shape_error(fmt::format("two_layer_adapter: sequence length must be in [1, {}], got {}",
                                              model_.position_embedding.rows(), t));
  }
  void check_hidden(glassbox::token_span tokens, std::size_t layer, const glassbox::tensor2& h) const {
    if (layer > my_lab::two_layer_transformer::n_layer || h.shape(0) != tokens.size() || h.shape(1) != width())
      throw glassbox::shape_error(fmt::format("two_layer_adapter: layer {} of 0..2 and h [{}, {}] for {} tokens",
                                              layer, h.shape(0), h.shape(1), tokens.size()));
  }
  std::vector<float> flat_mask(const glassbox::tensor2& mask) const {
    if (mask.shape(0) != my_lab::two_layer_transformer::n_layer || mask.shape(1) != static_cast<std::size_t>(model_.heads))
      throw glassbox::shape_error(fmt::format("two_layer_adapter: the head mask must be [2, {}], got [{}, {}]",
                                              model_.heads, mask.shape(0), mask.shape(1)));
    return {mask.begin(), mask.end()};
  }

  // glassbox tensors are row-major xtensor; the model uses column-major Eigen. Copy across.
  static my_lab::matrix to_matrix(const glassbox::tensor2& t) {
    my_lab::matrix m(index(t.shape(0)), index(t.shape(1)));
    for (std::size_t i = 0; i < t.shape(0); ++i)
      for (std::size_t j = 0; j < t.shape(1); ++j) m(index(i), index(j)) = t(i, j);
    return m;
  }
  static glassbox::tensor2 to_tensor(const my_lab::matrix& m) {
    glassbox::tensor2 t({static_cast<std::size_t>(m.rows()), static_cast<std::size_t>(m.cols())});
    for (std::size_t i = 0; i < t.shape(0); ++i)
      for (std::size_t j = 0; j < t.shape(1); ++j) t(i, j) = m(index(i), index(j));
    return t;
  }
  my_lab::matrix with_positions(const glassbox::tensor2& e) const {
    if (e.shape(1) != width())
      throw glassbox::shape_error(fmt::format("two_layer_adapter: embeddings must be [T, {}], got [{}, {}]", width(),
                                              e.shape(0), e.shape(1)));
    check_length(e.shape(0));
    return to_matrix(e) + model_.position_embedding.topRows(index(e.shape(0)));
  }

  /// Logits [T, V] of blocks from..1 run on the stream x.
  glassbox::tensor2 run_from(int from, const my_lab::matrix& x, const edits& e) const {
    return to_tensor(model_.forward(x, from, e) * model_.unembedding);
  }

  /// One forward and one backward pass for the scalar of `seed`: the seed reads the rows it asks for.
  std::pair<double, my_lab::two_layer_transformer::gradients> seeded(
      int from, const my_lab::matrix& x, const edits& e, const glassbox::output_seed& seed,
      std::vector<my_lab::two_layer_transformer::block_cache>* keep = nullptr) const {
    std::vector<my_lab::two_layer_transformer::block_cache> local;
    auto& saved = keep != nullptr ? *keep : local;
    const my_lab::matrix logits = model_.forward(x, from, e, &saved) * model_.unembedding;
    const std::vector<std::size_t> rows = seed.rows(static_cast<std::size_t>(logits.rows()));
    glassbox::tensor2 row_logits({rows.size(), vocab_size()}), d_rows;
    for (std::size_t r = 0; r < rows.size(); ++r)
      for (std::size_t c = 0; c < vocab_size(); ++c) row_logits(r, c) = logits(index(rows[r]), index(c));
    const double value = seed(row_logits, d_rows);
    my_lab::matrix d_logits = my_lab::matrix::Zero(logits.rows(), logits.cols());  // zero on rows not read
    for (std::size_t r = 0; r < rows.size(); ++r)
      for (std::size_t c = 0; c < vocab_size(); ++c) d_logits(index(rows[r]), index(c)) += d_rows(r, c);
    return {value, model_.backward(saved, d_logits * model_.unembedding.transpose(), from, e)};
  }

  /// [L, H, T, T] from one matrix per (block, head).
  template <class Get>
  glassbox::tensor4 stack_attention(const std::vector<my_lab::two_layer_transformer::block_cache>& saved, Get get) const {
    const std::size_t heads = static_cast<std::size_t>(model_.heads), t = static_cast<std::size_t>(saved[0].x.rows());
    glassbox::tensor4 out({saved.size(), heads, t, t});
    for (std::size_t l = 0; l < saved.size(); ++l)
      for (std::size_t h = 0; h < heads; ++h) {
        const my_lab::matrix& m = get(saved[l], h);
        for (std::size_t i = 0; i < t; ++i)
          for (std::size_t j = 0; j < t; ++j) out(l, h, i, j) = m(index(i), index(j));
      }
    return out;
  }

  const my_lab::two_layer_transformer& model_;
};

// Lists, in plain words, every member the adapter would be missing for these rungs.
static_assert(glassbox::check_differentiable_model<two_layer_adapter>());
static_assert(glassbox::check_attention_gradient_model<two_layer_adapter>());
static_assert(glassbox::check_intervention_model<two_layer_adapter>());

namespace {

// A model with Gaussian weights (projections N(0, 1/fan_in)) drawn from a fixed seed.
my_lab::two_layer_transformer random_model(int vocab, int width, int heads, int mlp, int max_length,
                                           std::uint64_t seed) {
  glassbox::rng rng(seed);
  auto draw = [&](int rows, int cols, float scale) {
    my_lab::matrix m(rows, cols);
    for (Eigen::Index j = 0; j < m.cols(); ++j)
      for (Eigen::Index i = 0; i < m.rows(); ++i) m(i, j) = scale * static_cast<float>(rng.normal());
    return m;
  };
  my_lab::two_layer_transformer model;
  model.heads = heads;
  model.token_embedding = draw(vocab, width, 1.0f);
  model.position_embedding = draw(max_length, width, 0.5f);
  const float sd = 1.0f / std::sqrt(static_cast<float>(width));
  for (auto& b : model.blocks) {
    b.w_q = draw(width, width, sd);
    b.w_k = draw(width, width, sd);
    b.w_v = draw(width, width, sd);
    b.w_o = draw(width, width, sd);
    b.w_in = draw(width, mlp, sd);
    b.w_out = draw(mlp, width, 1.0f / std::sqrt(static_cast<float>(mlp)));
    b.b_in = draw(1, mlp, 0.1f);
  }
  model.unembedding = draw(width, vocab, sd);
  return model;
}

}  // namespace

int main() {
  const my_lab::two_layer_transformer model =
      random_model(/*vocab=*/20, /*width=*/16, /*heads=*/2, /*mlp=*/32, /*max_length=*/16, /*seed=*/5);
  const two_layer_adapter adapter(model);
  const glassbox::token_sequence tokens = {4, 17, 9, 9, 2, 11, 6};

  // What the library sees: a target through the same dispatch every algorithm uses.
  const auto explained = glassbox::target::log_probability(/*token=*/3);
  const std::vector<glassbox::token_sequence> inputs = {tokens};
  std::printf("%s: %.6f\n\n", explained.describe().c_str(),
              glassbox::evaluate_target(adapter, inputs, explained).front());

  // The last step of writing an adapter: the conformance kit. Each row is one check; a FAIL names
  // the member and says what is wrong (a wrong sign, a constant factor, a transposed layout, ...).
  const glassbox::verify_report report = glassbox::verify_adapter(adapter, tokens);
  std::printf("%s", glassbox::to_string(report).c_str());
  return report.passed() ? 0 : 1;
}

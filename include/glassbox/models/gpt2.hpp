// glassbox: the reference GPT-2, in pure Eigen, with an exact forward and backward pass, serving
// every rung of the model ladder (core/model.hpp). It runs public GPT-2 checkpoints unchanged.
//
//   h_0 = wte[ids] + wpe[0..T)                                   (index 0 of the residual stream)
//   block i (0-based) maps index i to i + 1:
//     m = h + attn(ln_1(h)),   attn: c_attn [d, 3d] -> q, k, v; per head softmax(q k^T / sqrt(d/H)),
//                                     causal; heads concatenated; c_proj [d, d]
//     h' = m + mlp(ln_2(m)),   mlp: c_fc [d, 4d], 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), c_proj [4d, d]
//   logits = ln_f(h_L) wte^T                                      (tied; an untied lm_head if the checkpoint has one)
//
// Linear weights are stored input-major [d_in, d_out], as GPT-2's Conv1D. Everything runs on
// whole sequences and whole batches: a batch is one stacked matrix per linear layer (rows = all
// tokens of all sequences). docs/gpt2.md documents the semantics of every member, the parameter
// layout, loading, and how to build it fast (OpenMP, -march=native).
//
// basic_gpt2<Scalar> is the implementation; `gpt2` (float) is the model users load. The double
// instantiation exists so that the tests check every gradient by finite differences in double.
#pragma once

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "glassbox/core/error.hpp"
#include "glassbox/core/model.hpp"
#include "glassbox/core/random.hpp"
#include "glassbox/core/target.hpp"
#include "glassbox/core/types.hpp"
#include "glassbox/detail/dependent.hpp"
#include "glassbox/detail/dual.hpp"
#include "glassbox/detail/xtensor.hpp"
#include "glassbox/models/detail/gpt2_kernels.hpp"

namespace glassbox::models {

/// The hyperparameters of a GPT-2, with the names of the public GPT-2 config.json.
struct gpt2_config {
  std::size_t n_layer = 12;           ///< transformer blocks L
  std::size_t n_head = 12;            ///< attention heads H per block
  std::size_t n_embd = 768;           ///< residual width d (a multiple of n_head)
  std::size_t n_positions = 1024;     ///< longest sequence (rows of wpe)
  std::size_t vocab_size = 50257;     ///< token ids V (rows of wte)
  std::size_t n_inner = 0;            ///< MLP width; 0 means 4 * n_embd (as GPT-2's null)
  double layer_norm_epsilon = 1e-5;   ///< LayerNorm epsilon
  bool tie_word_embeddings = true;    ///< unembedding = wte^T; false: a separate lm_head.weight [V, d]
  std::optional<token_id> pad_token_id;  ///< the model's "absent" token, if it has one (GPT-2 has none)

  /// The configuration of the public GPT-2 small checkpoint (124M parameters).
  static gpt2_config gpt2_small() { return {}; }

  /// The MLP width (n_inner, or 4 * n_embd when n_inner is 0).
  std::size_t inner() const { return n_inner == 0 ? 4 * n_embd : n_inner; }
  /// The width of one head, n_embd / n_head.
  std::size_t head_width() const { return n_head == 0 ? 0 : n_embd / n_head; }

  /// Throws E naming `who` when a value is out of range or n_embd is not a multiple of n_head.
  template <class E = shape_error>
  void validate(std::string_view who = "glassbox::models::gpt2_config") const {
    auto positive = [&](std::size_t v, std::string_view name) {
      detail::require<E>(v >= 1, "{}: {} must be >= 1, got {}", who, name, v);
    };
    positive(n_layer, "n_layer");
    positive(n_head, "n_head");
    positive(n_embd, "n_embd");
    positive(n_positions, "n_positions");
    positive(vocab_size, "vocab_size");
    detail::require<E>(n_embd % n_head == 0, "{}: n_embd must be divisible by n_head ({}), got {}", who, n_head,
                       n_embd);
    detail::require<E>(std::isfinite(layer_norm_epsilon) && layer_norm_epsilon > 0,
                       "{}: layer_norm_epsilon must be > 0, got {}", who, layer_norm_epsilon);
    if (pad_token_id)
      detail::require<E>(*pad_token_id >= 0 && static_cast<std::size_t>(*pad_token_id) < vocab_size,
                         "{}: pad_token_id must be in [0, {}), got {}", who, vocab_size, *pad_token_id);
  }

  friend bool operator==(const gpt2_config&, const gpt2_config&) = default;
};

/// One tensor of the flat parameter buffer: its public GPT-2 name, shape and where it starts.
struct gpt2_parameter_info {
  std::string name;                ///< e.g. "h.0.attn.c_attn.weight" (no "transformer." prefix)
  std::vector<std::size_t> shape;  ///< e.g. {d, 3d}, row-major
  std::size_t offset = 0;          ///< index of its first element in parameters()
  std::size_t size = 0;            ///< product of the shape
};

/// The parameter tensors of a GPT-2 in the order of the flat buffer: wte, wpe, then per block
/// ln_1 (weight, bias), attn.c_attn (weight, bias), attn.c_proj, ln_2, mlp.c_fc, mlp.c_proj, then
/// ln_f, then lm_head.weight when the head is untied.
template <class = void>
inline std::vector<gpt2_parameter_info> gpt2_parameter_table(const gpt2_config& c) {
  const std::size_t d = c.n_embd, f = c.inner();
  std::vector<gpt2_parameter_info> table;
  std::size_t offset = 0;
  auto add = [&](std::string name, std::vector<std::size_t> shape) {
    std::size_t size = 1;
    for (auto s : shape) size *= s;
    table.push_back({std::move(name), std::move(shape), offset, size});
    offset += size;
  };
  add("wte.weight", {c.vocab_size, d});
  add("wpe.weight", {c.n_positions, d});
  for (std::size_t i = 0; i < c.n_layer; ++i) {
    const std::string p = fmt::format("h.{}.", i);
    add(p + "ln_1.weight", {d});
    add(p + "ln_1.bias", {d});
    add(p + "attn.c_attn.weight", {d, 3 * d});
    add(p + "attn.c_attn.bias", {3 * d});
    add(p + "attn.c_proj.weight", {d, d});
    add(p + "attn.c_proj.bias", {d});
    add(p + "ln_2.weight", {d});
    add(p + "ln_2.bias", {d});
    add(p + "mlp.c_fc.weight", {d, f});
    add(p + "mlp.c_fc.bias", {f});
    add(p + "mlp.c_proj.weight", {f, d});
    add(p + "mlp.c_proj.bias", {d});
  }
  add("ln_f.weight", {d});
  add("ln_f.bias", {d});
  if (!c.tie_word_embeddings) add("lm_head.weight", {c.vocab_size, d});
  return table;
}

/// A seed in the model's own precision (core/target.hpp); the name models::basic_output_seed stays.
using glassbox::basic_output_seed;

}  // namespace glassbox::models

namespace glassbox::detail {

/// Offsets of one block's tensors in the flat parameters.
struct gpt2_block_offsets {
  std::size_t ln_1_weight, ln_1_bias, attn_weight, attn_bias, attn_proj_weight, attn_proj_bias, ln_2_weight,
      ln_2_bias, fc_weight, fc_bias, mlp_proj_weight, mlp_proj_bias;
};

/// Offsets of every tensor in the flat parameters (see gpt2_parameter_table).
struct gpt2_offsets {
  std::size_t wte = 0, wpe = 0, ln_f_weight = 0, ln_f_bias = 0, head = 0, total = 0;
  std::vector<gpt2_block_offsets> blocks;

  template <class = void>
  explicit gpt2_offsets(const std::vector<models::gpt2_parameter_info>& t, std::size_t n_layer, bool tied) {
    wte = t[0].offset;
    wpe = t[1].offset;
    for (std::size_t i = 0; i < n_layer; ++i) {
      const auto* b = &t[2 + 12 * i];
      blocks.push_back({b[0].offset, b[1].offset, b[2].offset, b[3].offset, b[4].offset, b[5].offset, b[6].offset,
                        b[7].offset, b[8].offset, b[9].offset, b[10].offset, b[11].offset});
    }
    ln_f_weight = t[2 + 12 * n_layer].offset;
    ln_f_bias = t[3 + 12 * n_layer].offset;
    head = tied ? wte : t[4 + 12 * n_layer].offset;
    total = t.back().offset + t.back().size;
  }
};

/// One sequence of a pass: rows [offset, offset + length) of the stacked matrices.
struct gpt2_segment {
  std::size_t offset = 0;       ///< first row
  std::size_t length = 0;       ///< tokens T (in a resumed pass: the rows after the cached prefix)
  std::size_t prob_offset = 0;  ///< where its H attention matrices [T, start + T] start in a layer's probabilities
  std::size_t start = 0;        ///< position of its first row: 0, or in a resumed pass the cached prefix it continues

  /// The keys its rows attend to: the cached prefix and its own rows.
  std::size_t keys() const { return start + length; }
};

/// What one forward pass computes, from which input, and where its outputs go.
template <class S>
struct gpt2_pass {
  std::vector<gpt2_segment> segments;
  std::size_t rows = 0;              ///< N, all tokens of all sequences
  std::size_t probs_per_layer = 0;   ///< H * sum of T^2
  const token_id* tokens = nullptr;  ///< input wte[ids] + wpe, [N]
  const S* embeddings = nullptr;     ///< input embeddings + wpe, [N, d]
  const S* residual = nullptr;       ///< input residual stream at start_layer, [N, d]
  std::size_t start_layer = 0;
  const S* head_mask = nullptr;           ///< [L, H]: multiplies each head's probabilities
  const S* attention_override = nullptr;  ///< [probs_per_layer]: replaces the softmax outputs of one block
  std::size_t override_layer = 0;         ///< the block attention_override applies to
  bool keep = false;                      ///< keep every activation for a backward pass
  bool full_last_block = false;           ///< run the last block on every row (else only on the rows read)
  std::vector<std::size_t> out_rows;      ///< global rows whose logits are computed
  S* logits = nullptr;                    ///< [out_rows, V]
  S* hidden = nullptr;                    ///< [L + 1, N, d], residual stream at every index
  S* attentions = nullptr;                ///< [L, probs_per_layer]
  // Causal prefix reuse (prefix_cache / logits_batch_from_prefix): a pass records every row's keys
  // and values, or resumes after a cached prefix whose keys and values it reads.
  S* keys_values = nullptr;      ///< record: [L, N, 2d], each row's keys then values (columns d..3d of qkv)
  const S* prefix = nullptr;     ///< resume: a cache's keys and values, [L, prefix_rows, 2d]
  std::size_t prefix_rows = 0;   ///< resume: rows of the cache  // Component patches (logits_with_patches): single-sequence passes only; the last block then runs on every row.
  std::span<const basic_component_patch<S>> patches;
};

/// What one backward pass produces (every pointer optional).
template <class S>
struct gpt2_backward {
  const S* d_logits = nullptr;   ///< seed, [out_rows, V]
  S* d_input = nullptr;          ///< d / d input (embeddings or residual at start_layer), [N, d]
  S* d_parameters = nullptr;     ///< accumulated d / d parameters, flat
  S* d_attentions = nullptr;     ///< d / d attention probabilities, [L, probs_per_layer]
  S* d_head_mask = nullptr;      ///< accumulated d / d head mask, [L, H]
  std::vector<basic_linear_layer_statistics<S>>* statistics = nullptr;  ///< K-FAC, 4 per block
  // Component gradients (component_gradients; the pass runs its last block on every row):
  S* d_hidden = nullptr;   ///< d / d residual stream at every index, [L + 1, N, d]
  S* d_mid = nullptr;      ///< d / d stream after each block's attention, [L, N, d]
  S* d_neurons = nullptr;  ///< d / d MLP activations after GELU, [L, N, f]
};

/// Pointers of one layer's activations inside a workspace.
template <class S>
struct gpt2_layer_buffers {
  S *x, *ln1_mean, *ln1_rstd, *a1, *qkv, *probs, *z, *x_mid, *ln2_mean, *ln2_rstd, *a2, *u, *g;
};

/// Pointers of the pass-wide activations inside a workspace.
template <class S>
struct gpt2_pass_buffers {
  std::vector<gpt2_layer_buffers<S>> layers;
  S *x_final = nullptr, *x_selected = nullptr, *a_final = nullptr, *lnf_mean = nullptr, *lnf_rstd = nullptr;

  // The last block on the rows read only ("compact"): nothing after it reads the other rows, so
  // its attention queries, output projection and MLP run for those rows alone.
  bool compact = false;
  std::vector<std::size_t> rows;           ///< the rows read, global, ascending, distinct (R of them)
  std::vector<std::size_t> positions;      ///< their positions within their sequences
  std::vector<std::size_t> segment_rows;   ///< per sequence, its first index into rows; then R
  std::vector<std::size_t> segment_probs;  ///< per sequence, where its H [R_s, T] probability blocks start
  std::vector<std::size_t> row_of_out;     ///< per out_rows entry, its index into rows
  std::size_t compact_probs = 0;           ///< H * sum of R_s (start + T)
  S* head_scratch = nullptr;               ///< resumed passes: per thread, one head's keys and values [2, keys, dh]
  std::size_t head_scratch_size = 0;       ///< scalars of one thread's head_scratch
  std::vector<std::size_t> limits;         ///< resumed passes: 0, 1, 2, ...: the last key of a row is limits[start + row]
  S *q = nullptr, *probs = nullptr, *z = nullptr, *x_mid = nullptr, *ln2_mean = nullptr, *ln2_rstd = nullptr,
    *a2 = nullptr, *u = nullptr, *g = nullptr;  ///< the last block's activations of the rows read, [R, ...]
};

/// Shape text "[a, b, c]" for messages.
template <class = void>
inline std::string gpt2_shape_text(const std::vector<std::size_t>& shape) {
  return fmt::format("[{}]", fmt::join(shape, ", "));
}

}  // namespace glassbox::detail

namespace glassbox::models {

/// GPT-2 with the exact semantics of the public GPT-2, in precision Scalar (float or double).
/// Satisfies every rung of the model ladder (for Scalar = float, with tensor2 / output_seed).
///
/// Example:
///   auto model = glassbox::models::gpt2::load("models/gpt2");   // model.safetensors + config.json
///   auto z = model.logits(tokens);                                 // [T, 50257]
template <class Scalar>
class basic_gpt2 {
  static_assert(std::is_same_v<Scalar, float> || std::is_same_v<Scalar, double> || detail::is_dual_v<Scalar>,
                "glassbox::models::basic_gpt2: Scalar must be float or double (dual numbers are internal: they "
                "serve the curvature products)");

 public:
  using scalar_type = Scalar;                            ///< precision of parameters and activations
  using vector_type = xt::xtensor<Scalar, 1>;            ///< flat parameters and their gradient
  using matrix_type = xt::xtensor<Scalar, 2>;            ///< [T, d] or [rows, V]
  using tensor3_type = xt::xtensor<Scalar, 3>;           ///< [L + 1, T, d] or [B, T, d]
  using tensor4_type = xt::xtensor<Scalar, 4>;           ///< [L, H, T, T]
  using seed_type = basic_output_seed<Scalar>;           ///< a seed in the model's precision
  static constexpr bool is_float = std::is_same_v<Scalar, float>;
  using attention_gradient_type = basic_attention_gradient_result<Scalar>;  ///< attention_gradient_result for float
  using batch_gradient_type = basic_batch_gradient_result<Scalar>;          ///< batch_gradient_result for float
  using layer_statistics_type = basic_linear_layer_statistics<Scalar>;      ///< linear_layer_statistics for float

  /// Every const member may be called from several threads at once (each call borrows its own workspace).
  static constexpr bool thread_safe = true;

  /// A model from its configuration and flat parameters (layout: gpt2_parameter_table(config)).
  basic_gpt2(const gpt2_config& config, std::span<const Scalar> parameters)
      : config_(config),
        table_((config.validate(), gpt2_parameter_table(config))),
        offsets_(table_, config.n_layer, config.tie_word_embeddings),
        parameters_(parameters.begin(), parameters.end()),
        pool_(std::make_unique<detail::gpt2_workspace_pool<Scalar>>()) {
    detail::require<shape_error>(parameters.size() == offsets_.total,
                                 "glassbox::models::gpt2: parameters must hold {} values for this config, got {}",
                                 offsets_.total, parameters.size());
  }

  /// A model that takes ownership of `parameters` (layout: gpt2_parameter_table(config)) without copying them.
  basic_gpt2(const gpt2_config& config, std::vector<Scalar, Eigen::aligned_allocator<Scalar>>&& parameters)
      : config_(config),
        table_((config.validate(), gpt2_parameter_table(config))),
        offsets_(table_, config.n_layer, config.tie_word_embeddings),
        parameters_(std::move(parameters)),
        pool_(std::make_unique<detail::gpt2_workspace_pool<Scalar>>()) {
    detail::require<shape_error>(parameters_.size() == offsets_.total,
                                 "glassbox::models::gpt2: parameters must hold {} values for this config, got {}",
                                 offsets_.total, parameters_.size());
  }

  /// A copy with its own workspaces.
  basic_gpt2(const basic_gpt2& other)
      : config_(other.config_),
        table_(other.table_),
        offsets_(other.offsets_),
        parameters_(other.parameters_),
        pool_(std::make_unique<detail::gpt2_workspace_pool<Scalar>>()),
        kept_activation_bytes_(other.kept_activation_bytes_) {}
  /// Copies the parameters and configuration of another model.
  basic_gpt2& operator=(const basic_gpt2& other) {
    if (this != &other) {
      config_ = other.config_;
      table_ = other.table_;
      offsets_ = other.offsets_;
      parameters_ = other.parameters_;
      pool_ = std::make_unique<detail::gpt2_workspace_pool<Scalar>>();
      kept_activation_bytes_ = other.kept_activation_bytes_;
    }
    return *this;
  }
  basic_gpt2(basic_gpt2&&) noexcept = default;             ///< a moved-from model may only be destroyed or assigned
  basic_gpt2& operator=(basic_gpt2&&) noexcept = default;  ///< moves the parameters and workspaces
  ~basic_gpt2() = default;

  /// A model initialised as GPT-2 (Radford et al. 2019): weights and embeddings N(0, 0.02), the
  /// residual projections (attn.c_proj, mlp.c_proj) N(0, 0.02 / sqrt(2 L)), biases 0, LayerNorm
  /// weights 1 and biases 0. Draws from glassbox::rng(seed) tensor by tensor in parameter order.
  static basic_gpt2 random(const gpt2_config& config, std::uint64_t seed);

  /// Loads a checkpoint: `path` is a .safetensors file or a directory holding model.safetensors.
  /// The configuration comes from config.json beside the weights, else from the safetensors
  /// __metadata__. Tensor names may carry the "transformer." prefix; attn.bias / attn.masked_bias
  /// buffers are ignored; lm_head.weight equal to wte means tied, otherwise it is the untied head.
  /// The tensors are read straight into the model's own storage: loading holds the parameters once
  /// (plus lm_head.weight while it is compared with wte, for checkpoints that store it).
  static basic_gpt2 load(const std::filesystem::path& path);

  /// Writes the model as safetensors (float32 for gpt2, float64 for basic_gpt2<double>), with
  /// public GPT-2 tensor names and the configuration in __metadata__; load() reads it back.
  void save(const std::filesystem::path& path) const;

  // ---- shape ----------------------------------------------------------------------------------

  /// The configuration.
  const gpt2_config& config() const { return config_; }
  /// Token ids V.
  std::size_t vocab_size() const { return config_.vocab_size; }
  /// Transformer blocks L.
  std::size_t n_layer() const { return config_.n_layer; }
  /// Heads per block H.
  std::size_t n_head() const { return config_.n_head; }
  /// Residual width d.
  std::size_t width() const { return config_.n_embd; }
  /// Longest sequence the model accepts (n_positions).
  std::size_t max_positions() const { return config_.n_positions; }
  /// One output row per input position (a causal language model).
  std::size_t output_rows(std::size_t tokens) const { return tokens; }
  /// The configured pad token (none for the public GPT-2).
  std::optional<token_id> pad_token() const { return config_.pad_token_id; }
  /// The tensors of the flat parameter buffer, in order.
  const std::vector<gpt2_parameter_info>& parameter_table() const { return table_; }
  /// One parameter tensor by its public name (e.g. "h.0.ln_1.weight"), flat and row-major.
  std::span<const Scalar> parameter(std::string_view name) const {
    for (const auto& p : table_)
      if (p.name == name) return {parameters_.data() + p.offset, p.size};
    detail::fail<shape_error>("glassbox::models::gpt2::parameter: name must be a parameter of this model, got {}",
                              name);
  }

  // ---- Model ----------------------------------------------------------------------------------

  /// Logits [T, V] of every position.
  matrix_type logits(token_span tokens) const;
  /// Logits of the chosen rows only, [rows.size(), V]; the unembedding of other rows is skipped.
  matrix_type logits_at(token_span tokens, std::span<const std::size_t> rows) const;
  /// Logits of a batch of equal-length sequences [B, T] at `rows` (empty = all), [B, P, V], in one stacked pass.
  tensor3_type logits_batch(const token_matrix& batch, std::span<const std::size_t> rows) const;

  // ---- causal prefix reuse (optional members: docs/concepts.md, "Causal prefix reuse") -----------

  /// The keys and values of every block for one sequence: what a pass resumed after any prefix of it reads.
  struct prefix_cache_type {
    std::size_t length = 0;       ///< positions cached T
    token_sequence tokens;        ///< the cached tokens (empty for a cache built from embeddings)
    tensor3_type keys_values;     ///< [L, T, 2d]: per block and position, the keys then the values of every head
  };
  /// One forward pass over `tokens` that keeps every block's keys and values.
  prefix_cache_type prefix_cache(token_span tokens) const;
  /// prefix_cache for token embeddings [T, d] (as logits_from_embeddings takes them).
  prefix_cache_type prefix_cache_from_embeddings(const matrix_type& embeddings) const;
  /// Logits [B, P, V] at `rows` of B sequences [B, T] of which sequence b equals the cached one before
  /// position starts[b]: only positions starts[b] .. T-1 are computed, attending to the cached keys and
  /// values before them. Every row must be >= every start (earlier rows are the cached sequence's own).
  tensor3_type logits_batch_from_prefix(const prefix_cache_type& cache, const token_matrix& batch,
                                        std::span<const std::size_t> starts, std::span<const std::size_t> rows) const;
  /// logits_batch_from_prefix for token embeddings [B, T, d] and a cache built from embeddings.
  tensor3_type logits_from_embeddings_batch_from_prefix(const prefix_cache_type& cache, const tensor3_type& batch,
                                                        std::span<const std::size_t> starts,
                                                        std::span<const std::size_t> rows) const;

  // ---- EmbeddingModel -------------------------------------------------------------------------

  /// Token embeddings wte[ids], [T, d]. Positions are not included: logits_from_embeddings adds them.
  matrix_type embed(token_span tokens) const;
  /// Logits [T, V] from token embeddings [T, d] (wpe[0..T) is added inside).
  matrix_type logits_from_embeddings(const matrix_type& embeddings) const;
  /// Logits of the chosen rows from token embeddings [T, d].
  matrix_type logits_from_embeddings_at(const matrix_type& embeddings, std::span<const std::size_t> rows) const;
  /// Logits [B, P, V] at `rows` (empty = all) from a batch of token embeddings [B, T, d], in one stacked pass.
  tensor3_type logits_from_embeddings_batch(const tensor3_type& embeddings, std::span<const std::size_t> rows) const;

  // ---- DifferentiableModel --------------------------------------------------------------------

  /// The seed's scalar and its exact gradient w.r.t. the token embeddings [T, d]: one forward, one backward.
  value_and_gradient<matrix_type> embedding_gradient(const matrix_type& embeddings, const output_seed& seed) const;
  /// embedding_gradient with a seed in the model's precision.
  value_and_gradient<matrix_type> embedding_gradient(const matrix_type& embeddings, const seed_type& seed) const;
  /// Values and gradients for a batch of token embeddings [B, T, d], in stacked forward and backward
  /// passes of as many sequences as keep their activations within kept_activation_bytes() (at least one).
  batch_gradient_type embedding_gradient_batch(const tensor3_type& embeddings, const output_seed& seed) const;
  /// embedding_gradient_batch with a seed in the model's precision.
  batch_gradient_type embedding_gradient_batch(const tensor3_type& embeddings, const seed_type& seed) const;

  // ---- AttentionModel / AttentionGradientModel ------------------------------------------------

  /// Attention probabilities [L, H, T, T] (softmax outputs; entries of future keys are 0).
  tensor4_type attentions(token_span tokens) const;
  /// The scalar, the attention probabilities and d scalar / d probabilities [L, H, T, T]. Entries
  /// above the diagonal are the derivatives w.r.t. the (zero) probabilities of future keys, as autograd reports them.
  attention_gradient_type attention_gradient(token_span tokens, const output_seed& seed) const;
  /// attention_gradient with a seed in the model's precision.
  attention_gradient_type attention_gradient(token_span tokens, const seed_type& seed) const;
  /// The scalar with head mask `mask` [L, H] and its gradient w.r.t. the mask. The mask multiplies
  /// each head's attention probabilities (Hugging Face head_mask); at mask = 1 the gradient is the
  /// head importance of Michel et al. (2019).
  value_and_gradient<matrix_type> head_mask_gradient(token_span tokens, const matrix_type& mask,
                                                     const output_seed& seed) const;
  /// head_mask_gradient with a seed in the model's precision.
  value_and_gradient<matrix_type> head_mask_gradient(token_span tokens, const matrix_type& mask,
                                                     const seed_type& seed) const;
  /// Logits [T, V] with head mask `mask` [L, H] (0 removes a head, 1 keeps it).
  matrix_type logits_with_head_mask(token_span tokens, const matrix_type& mask) const;
  /// Logits [T, V] with the attention probabilities of block `layer` replaced by `attentions` [H, T, T]
  /// (attention patching, as a TransformerLens hook on hook_pattern; the values are used as given,
  /// other blocks compute their own). attention_gradient is the derivative of this edit.
  matrix_type logits_with_attentions(token_span tokens, std::size_t layer, const tensor3_type& attentions) const;

  // ---- ActivationModel / InterventionModel ----------------------------------------------------

  /// The residual stream [L + 1, T, d]: index 0 = wte + wpe, index k = after block k (index L is
  /// before ln_f, TransformerLens' resid_post; Hugging Face's last hidden state has ln_f applied).
  tensor3_type hidden_states(token_span tokens) const;
  /// Logits [T, V] when the residual stream at index `layer` (0..L) is replaced by `h` [T, d]:
  /// blocks layer..L-1 run on h, then ln_f and the unembedding.
  matrix_type logits_from_hidden(token_span tokens, std::size_t layer, const matrix_type& h) const;
  /// logits_from_hidden for the chosen rows only, [rows.size(), V] (the unembedding of other rows is skipped).
  matrix_type logits_from_hidden_at(token_span tokens, std::size_t layer, const matrix_type& h,
                                    std::span<const std::size_t> rows) const;
  /// Logits [R, V] of R residual vectors h [R, d] decoded through ln_f and the unembedding, row by
  /// row (the logit lens' decoder; equals logits_from_hidden(tokens, n_layer, h) for any tokens).
  matrix_type decode_hidden(const matrix_type& h) const;
  /// The scalar of logits_from_hidden and its gradient w.r.t. h [T, d].
  value_and_gradient<matrix_type> hidden_gradient(token_span tokens, std::size_t layer, const matrix_type& h,
                                                  const output_seed& seed) const;
  /// hidden_gradient with a seed in the model's precision.
  value_and_gradient<matrix_type> hidden_gradient(token_span tokens, std::size_t layer, const matrix_type& h,
                                                  const seed_type& seed) const;

  // ---- ComponentModel (docs/circuits.md) --------------------------------------------------------

  using patch_type = basic_component_patch<Scalar>;                     ///< component_patch for float
  using component_cache_type = basic_component_cache<Scalar>;           ///< component_cache for float
  using component_gradient_type = basic_component_gradient_result<Scalar>;  ///< component_gradient_result for float
  using logit_directions_type = basic_logit_directions<Scalar>;         ///< logit_directions for float

  /// Blocks, heads per block, residual width and MLP width.
  component_layout layout() const { return {config_.n_layer, config_.n_head, config_.n_embd, config_.inner()}; }
  /// One forward pass that keeps every component: the residual stream, each head's output after
  /// attn.c_proj (without its bias), each MLP's output, each neuron after GELU, ln_f's divisor per position.
  component_cache_type run_with_cache(token_span tokens) const;
  /// Logits [rows, V] (rows empty = every row) of a forward pass with `patches` applied where the pass
  /// computes their sites (core/components.hpp); everything after a patched site is computed from it.
  matrix_type logits_with_patches(token_span tokens, std::span<const patch_type> patches,
                                  std::span<const std::size_t> rows = {}) const;
  /// The seed's scalar, the components of its forward pass and the scalar's gradient w.r.t. the
  /// residual stream, each block's post-attention stream and each neuron: one forward, one backward.
  component_gradient_type component_gradients(token_span tokens, const output_seed& seed) const;
  /// component_gradients with a seed in the model's precision.
  component_gradient_type component_gradients(token_span tokens, const seed_type& seed) const;
  /// Per token k: the direction ln_f.weight * wte[k], centred (LayerNorm's centring moved onto it),
  /// and the offset ln_f.bias . wte[k]; logit_k = sum over parts c of c . direction / final_scale + offset.
  logit_directions_type unembedding_directions(std::span<const token_id> tokens) const;
  /// mlp.c_proj.weight of block `layer`, [f, d]: neuron n adds neurons[n] * row n to the stream.
  matrix_type neuron_output_weights(std::size_t layer) const;

  // ---- TrainableModel / KfacModel -------------------------------------------------------------

  /// Number of parameters (the length of parameters()).
  std::size_t parameter_count() const { return parameters_.size(); }
  /// The flat parameter buffer (layout: parameter_table()).
  std::span<const Scalar> parameters() const { return {parameters_.data(), parameters_.size()}; }
  /// Replaces every parameter (same length and layout as parameters()).
  void set_parameters(std::span<const Scalar> parameters) {
    detail::require<shape_error>(parameters.size() == parameters_.size(),
                                 "glassbox::models::gpt2::set_parameters: parameters must hold {} values, got {}",
                                 parameters_.size(), parameters.size());
    std::copy(parameters.begin(), parameters.end(), parameters_.begin());
  }
  /// Mean cross-entropy over the scored rows of `example` (labels != ignore_label).
  double loss(const training_example& example) const;
  /// The loss and its gradient w.r.t. every parameter (flat, layout of parameters()).
  value_and_gradient<vector_type> loss_gradient(const training_example& example) const;
  /// The loss of every example, in one stacked forward pass.
  std::vector<double> losses(std::span<const training_example> examples) const;
  /// The mean over examples of their losses, and its gradient, in one stacked forward and backward pass.
  value_and_gradient<vector_type> mean_loss_gradient(std::span<const training_example> examples) const;
  /// mean_loss_gradient writing the gradient into `gradient` (parameter_count() long); returns the mean loss.
  double mean_loss_gradient(std::span<const training_example> examples, std::span<Scalar> gradient) const;
  /// Per linear layer of every block (attn.c_attn, attn.c_proj, mlp.c_fc, mlp.c_proj, block by block):
  /// the inputs [T, d_in] and the gradients of the example's loss w.r.t. the pre-activation outputs
  /// [T, d_out]. Summing inputs^T output_gradients over rows gives the weight block of loss_gradient.
  std::vector<layer_statistics_type> kfac_statistics(const training_example& example) const;

  // ---- curvature products (optional members for influence functions, docs/concepts.md) --------

  /// H v, with H the exact Hessian of the mean loss (1/N) sum_n L_n over `examples` w.r.t. the flat
  /// parameters: the passes of loss_gradient run once on dual numbers in double whose tangents are v
  /// (forward-over-reverse, Pearlmutter 1994), so H v is exact to rounding.
  vector_type hessian_vector_product(std::span<const training_example> examples, std::span<const Scalar> v) const;
  /// G v, with G = (1/N) sum_n (1/R_n) sum_r J_r^T (diag(p_r) - p_r p_r^T) J_r the Gauss-Newton matrix
  /// of the same mean loss (r over the R_n scored rows of example n, J_r = d logits_r / d parameters,
  /// p_r = softmax(logits_r); Schraudolph 2002): J v from a forward pass on dual numbers in double,
  /// then one backward pass seeded with (diag(p) - p p^T) J v. Exact to rounding, positive semi-definite.
  vector_type gauss_newton_vector_product(std::span<const training_example> examples, std::span<const Scalar> v) const;

  /// Frees the idle workspaces (they are kept between calls so that passes do not allocate).
  void release_workspaces() const { pool_->clear(); }
  /// The memory budget of batched gradient passes: embedding_gradient_batch runs as many sequences
  /// per pass as keep their activations within it (at least one). Default 128 MiB.
  std::size_t kept_activation_bytes() const { return kept_activation_bytes_; }
  /// Sets kept_activation_bytes (memory and speed depend on it; the results only to rounding).
  void set_kept_activation_bytes(std::size_t bytes) { kept_activation_bytes_ = bytes; }

 private:
  using pass_type = detail::gpt2_pass<Scalar>;
  using backward_type = detail::gpt2_backward<Scalar>;
  using map = detail::gpt2_map<Scalar>;
  using cmap = detail::gpt2_cmap<Scalar>;

  const Scalar* at(std::size_t offset) const { return parameters_.data() + offset; }
  static Eigen::Index ix(std::size_t v) { return static_cast<Eigen::Index>(v); }
  static detail::gpt2_operand<Scalar> op(const Scalar* data, std::size_t rows, std::size_t cols,
                                         std::size_t stride = 0) {
    return detail::gpt2_op(data, ix(rows), ix(cols), ix(stride));
  }

  /// Scalars a pass that keeps every activation holds per sequence of T tokens (the forward's share).
  std::size_t kept_activation_scalars(std::size_t T) const {
    const std::size_t d = config_.n_embd, f = config_.inner(), H = config_.n_head;
    return config_.n_layer * T * (8 * d + 2 * f + H * T + 4);
  }
  void check_tokens(token_span tokens, std::string_view who) const;
  void check_length(std::size_t length, std::string_view who) const;
  void check_rows(std::span<const std::size_t> rows, std::size_t length, std::string_view who) const;
  pass_type make_pass(std::size_t sequences, std::size_t length) const;
  /// A pass over the rows starts[b] .. T-1 of B sequences of length T, resumed after `cache`.
  pass_type make_resume_pass(const prefix_cache_type& cache, std::size_t T, std::span<const std::size_t> starts,
                             std::span<const std::size_t> rows, std::string_view who) const;
  prefix_cache_type record_prefix(pass_type& pass, std::size_t length) const;
  pass_type make_ragged_pass(std::span<const training_example> examples, std::vector<token_id>& tokens,
                             std::string_view who) const;
  void run_forward(detail::gpt2_workspace<Scalar>& ws, detail::gpt2_pass_buffers<Scalar>& buffers,
                   const pass_type& pass) const;
  void run_backward(detail::gpt2_workspace<Scalar>& ws, const detail::gpt2_pass_buffers<Scalar>& buffers,
                    const pass_type& pass, const backward_type& request) const;
  void attention_forward(std::size_t layer, const pass_type& pass, const detail::gpt2_layer_buffers<Scalar>& b,
                         const detail::gpt2_pass_buffers<Scalar>& buffers) const;
  void record_keys_values(std::size_t layer, const pass_type& pass, const Scalar* qkv) const;
  /// One head's keys and values for a segment (pointer, pointer, row stride): its own rows of qkv, or in
  /// a resumed pass the cached prefix followed by its own rows, gathered into the thread's scratch.
  std::tuple<const Scalar*, const Scalar*, std::size_t> head_keys_values(
      std::size_t layer, std::size_t head, const pass_type& pass, const detail::gpt2_segment& seg,
      const detail::gpt2_layer_buffers<Scalar>& b, const detail::gpt2_pass_buffers<Scalar>& buffers) const;
  void attention_backward(std::size_t layer, const pass_type& pass, const detail::gpt2_layer_buffers<Scalar>& b,
                          const Scalar* dz, Scalar* dqkv, Scalar* dprobs, Scalar* mask_partial,
                          const backward_type& request) const;
  void last_block_forward(const pass_type& pass, const detail::gpt2_layer_buffers<Scalar>& b,
                          const detail::gpt2_pass_buffers<Scalar>& buffers) const;
  void last_block_backward(const pass_type& pass, const detail::gpt2_layer_buffers<Scalar>& b,
                           const detail::gpt2_pass_buffers<Scalar>& buffers, Scalar* dx_rows, Scalar* d_rows,
                           Scalar* du_rows, Scalar* dq_rows, Scalar* dprobs, Scalar* dqkv, Scalar* da, Scalar* dx,
                           Scalar* mask_partial, const backward_type& request) const;
  matrix_type forward_rows(pass_type& pass, std::size_t rows) const;
  /// Applies the patches of `site` at block `layer` (see run_forward for where each site is reached).
  void apply_patches(const pass_type& pass, component_site site, std::size_t layer,
                     const detail::gpt2_layer_buffers<Scalar>& b, Scalar* stream) const;
  /// Checks patches against the layout and a sequence of T tokens; throws shape_error naming `who`.
  void check_patches(std::span<const patch_type> patches, std::size_t T, std::string_view who) const;
  /// Runs `tokens` in a single-sequence pass that keeps every activation (the last block on every row,
  /// every row's logits) and fills `cache` from it; returns the pass, for a backward pass over `buffers`.
  pass_type cached_forward(token_span tokens, component_cache_type& cache, detail::gpt2_workspace<Scalar>& ws,
                           detail::gpt2_pass_buffers<Scalar>& buffers) const;
  /// Fills a cache from a single-sequence pass that kept every activation, ran its last block on every
  /// row and computed the logits of every row.
  void extract_components(const detail::gpt2_pass_buffers<Scalar>& buffers, token_span tokens,
                          component_cache_type& cache) const;
  /// Logits [B, P, V] of `rows` (empty = all) of each of the B sequences of length T in `pass`.
  tensor3_type forward_batch_rows(pass_type& pass, std::size_t B, std::size_t T, std::span<const std::size_t> rows) const;
  double seeded_pass(pass_type& pass, const seed_type& seed, std::size_t length, const backward_type& request) const;
  double examples_pass(std::span<const training_example> examples, Scalar* gradient,
                       std::vector<double>* per_example, std::vector<layer_statistics_type>* statistics,
                       std::string_view who) const;
  seed_type convert_seed(const output_seed& seed) const;
  // Curvature products: the model copied to dual numbers (value = parameters, tangent = v) runs
  // dual_curvature_pass, which returns the tangent (H v) or value (G v) part of its parameter gradient.
  template <class>
  friend class basic_gpt2;
  vector_type curvature_product(std::span<const training_example> examples, std::span<const Scalar> v,
                                bool gauss_newton, std::string_view who) const;
  std::vector<double> dual_curvature_pass(std::span<const training_example> examples, bool gauss_newton,
                                          std::string_view who) const;
  static std::vector<std::size_t> all_rows(std::size_t n) {
    std::vector<std::size_t> r(n);
    for (std::size_t i = 0; i < n; ++i) r[i] = i;
    return r;
  }

  gpt2_config config_;
  std::vector<gpt2_parameter_info> table_;
  detail::gpt2_offsets offsets_;
  std::vector<Scalar, Eigen::aligned_allocator<Scalar>> parameters_;
  std::unique_ptr<detail::gpt2_workspace_pool<Scalar>> pool_;
  std::size_t kept_activation_bytes_ = std::size_t{128} << 20;
};

/// The reference GPT-2 in float: the model users load and explain.
using gpt2 = basic_gpt2<float>;

// =====================================================================================================
// Implementation. Heavy members are defined out of the class (not inline), so that a program can
// compile them once with an explicit instantiation and declare `extern template` elsewhere.
// =====================================================================================================

template <class Scalar>
basic_gpt2<Scalar> basic_gpt2<Scalar>::random(const gpt2_config& config, std::uint64_t seed) {
  config.validate("glassbox::models::gpt2::random");
  const auto table = gpt2_parameter_table(config);
  std::vector<Scalar, Eigen::aligned_allocator<Scalar>> p(table.back().offset + table.back().size);
  glassbox::rng g(seed);
  const double residual_std = 0.02 / std::sqrt(2.0 * static_cast<double>(config.n_layer));
  for (const auto& t : table) {
    Scalar* out = p.data() + t.offset;
    const std::string_view name = t.name;
    const bool bias = name.ends_with(".bias");
    const bool layer_norm = name.find("ln_") != std::string_view::npos;
    if (layer_norm) {
      std::fill(out, out + t.size, bias ? Scalar(0) : Scalar(1));
    } else if (bias) {
      std::fill(out, out + t.size, Scalar(0));
    } else {
      const double sd = name.ends_with("c_proj.weight") ? residual_std : 0.02;
      for (std::size_t i = 0; i < t.size; ++i) out[i] = static_cast<Scalar>(g.normal(0.0, sd));
    }
  }
  return basic_gpt2(config, std::move(p));
}

template <class Scalar>
void basic_gpt2<Scalar>::check_length(std::size_t length, std::string_view who) const {
  detail::require<shape_error>(length >= 1, "glassbox::models::gpt2::{}: the sequence must not be empty", who);
  detail::require<shape_error>(length <= config_.n_positions,
                               "glassbox::models::gpt2::{}: sequence length must be <= n_positions ({}), got {}", who,
                               config_.n_positions, length);
}

template <class Scalar>
void basic_gpt2<Scalar>::check_tokens(token_span tokens, std::string_view who) const {
  check_length(tokens.size(), who);
  for (std::size_t i = 0; i < tokens.size(); ++i)
    detail::require<shape_error>(tokens[i] >= 0 && static_cast<std::size_t>(tokens[i]) < config_.vocab_size,
                                 "glassbox::models::gpt2::{}: token id must be in [0, {}), got {} at position {}", who,
                                 config_.vocab_size, tokens[i], i);
}

template <class Scalar>
void basic_gpt2<Scalar>::check_rows(std::span<const std::size_t> rows, std::size_t length, std::string_view who) const {
  for (auto r : rows)
    detail::require<shape_error>(r < length, "glassbox::models::gpt2::{}: row must be < {} (the sequence length), got {}",
                                 who, length, r);
}

template <class Scalar>
auto basic_gpt2<Scalar>::make_pass(std::size_t sequences, std::size_t length) const -> pass_type {
  pass_type p;
  p.segments.resize(sequences);
  const std::size_t h = config_.n_head;
  for (std::size_t b = 0; b < sequences; ++b) p.segments[b] = {b * length, length, b * h * length * length};
  p.rows = sequences * length;
  p.probs_per_layer = sequences * h * length * length;
  return p;
}

template <class Scalar>
auto basic_gpt2<Scalar>::make_resume_pass(const prefix_cache_type& cache, std::size_t T,
                                          std::span<const std::size_t> starts, std::span<const std::size_t> rows,
                                          std::string_view who) const -> pass_type {
  const std::size_t B = starts.size(), d = config_.n_embd, H = config_.n_head;
  detail::require<shape_error>(cache.keys_values.dimension() == 3 && cache.keys_values.shape(0) == config_.n_layer &&
                                   cache.keys_values.shape(1) == cache.length && cache.keys_values.shape(2) == 2 * d,
                               "glassbox::models::gpt2::{}: cache must come from prefix_cache of this model", who);
  check_length(T, who);
  check_rows(rows, T, who);
  detail::require<shape_error>(!rows.empty(), "glassbox::models::gpt2::{}: rows must not be empty", who);
  const std::size_t first_row = *std::min_element(rows.begin(), rows.end());
  pass_type p;
  p.segments.resize(B);
  for (std::size_t b = 0; b < B; ++b) {
    const std::size_t start = starts[b];
    detail::require<shape_error>(start <= cache.length && start <= first_row,
                                 "glassbox::models::gpt2::{}: start must be <= {} (the cached positions) and <= {} "
                                 "(the first row read), got {} for sequence {}",
                                 who, cache.length, first_row, start, b);
    p.segments[b] = {p.rows, T - start, p.probs_per_layer, start};
    p.rows += T - start;
    p.probs_per_layer += H * (T - start) * T;
  }
  for (std::size_t b = 0; b < B; ++b)
    for (auto r : rows) p.out_rows.push_back(p.segments[b].offset + r - starts[b]);
  p.prefix = cache.keys_values.data();
  p.prefix_rows = cache.length;
  return p;
}

template <class Scalar>
auto basic_gpt2<Scalar>::record_prefix(pass_type& pass, std::size_t length) const -> prefix_cache_type {
  prefix_cache_type cache;
  cache.length = length;
  cache.keys_values = tensor3_type::from_shape({config_.n_layer, length, 2 * config_.n_embd});
  pass.keys_values = cache.keys_values.data();
  auto ws = pool_->acquire();
  detail::gpt2_pass_buffers<Scalar> buffers;
  run_forward(*ws, buffers, pass);
  return cache;
}

template <class Scalar>
auto basic_gpt2<Scalar>::make_ragged_pass(std::span<const training_example> examples, std::vector<token_id>& tokens,
                                          std::string_view who) const -> pass_type {
  detail::require<shape_error>(!examples.empty(), "glassbox::models::gpt2::{}: examples must not be empty", who);
  pass_type p;
  const std::size_t h = config_.n_head;
  tokens.clear();
  for (std::size_t e = 0; e < examples.size(); ++e) {
    const auto& ex = examples[e];
    check_tokens(ex.tokens, who);
    detail::require<shape_error>(ex.labels.size() == ex.tokens.size(),
                                 "glassbox::models::gpt2::{}: labels must have one entry per token ({}), got {} "
                                 "(example {})",
                                 who, ex.tokens.size(), ex.labels.size(), e);
    bool scored = false;
    for (std::size_t i = 0; i < ex.labels.size(); ++i) {
      const token_id l = ex.labels[i];
      if (l == training_example::ignore_label) continue;
      detail::require<shape_error>(l >= 0 && static_cast<std::size_t>(l) < config_.vocab_size,
                                   "glassbox::models::gpt2::{}: label must be in [0, {}) or {}, got {} at row {} "
                                   "(example {})",
                                   who, config_.vocab_size, training_example::ignore_label, l, i, e);
      p.out_rows.push_back(p.rows + i);
      scored = true;
    }
    detail::require<shape_error>(scored, "glassbox::models::gpt2::{}: an example must score at least one row (example {})",
                                 who, e);
    p.segments.push_back({p.rows, ex.tokens.size(), p.probs_per_layer});
    p.rows += ex.tokens.size();
    p.probs_per_layer += h * ex.tokens.size() * ex.tokens.size();
    tokens.insert(tokens.end(), ex.tokens.begin(), ex.tokens.end());
  }
  p.tokens = tokens.data();
  return p;
}

template <class Scalar>
void basic_gpt2<Scalar>::run_forward(detail::gpt2_workspace<Scalar>& ws, detail::gpt2_pass_buffers<Scalar>& buf,
                                     const pass_type& pass) const {
  using S = Scalar;
  const std::size_t d = config_.n_embd, f = config_.inner(), L = config_.n_layer, V = config_.vocab_size;
  const std::size_t N = pass.rows, first = pass.start_layer, run = L - first, P = pass.out_rows.size();
  const S eps = static_cast<S>(config_.layer_norm_epsilon);
  const std::size_t sets = pass.keep ? run : std::min<std::size_t>(run, 1);

  // Run the last block on the rows read only, when nothing else reads its other rows.
  buf.rows.assign(pass.out_rows.begin(), pass.out_rows.end());
  std::sort(buf.rows.begin(), buf.rows.end());
  buf.rows.erase(std::unique(buf.rows.begin(), buf.rows.end()), buf.rows.end());
  buf.compact = run > 0 && !pass.full_last_block && pass.hidden == nullptr && pass.attentions == nullptr &&
                pass.attention_override == nullptr && pass.patches.empty() && !buf.rows.empty() &&
                buf.rows.size() < N;
  const std::size_t R = buf.rows.size(), H = config_.n_head;
  if (buf.compact) {
    buf.positions.resize(R);
    buf.segment_rows.assign(1, 0);
    buf.segment_probs.clear();
    buf.compact_probs = 0;
    std::size_t k = 0;
    for (const auto& seg : pass.segments) {
      buf.segment_probs.push_back(buf.compact_probs);
      const std::size_t begin = k;
      for (; k < R && buf.rows[k] < seg.offset + seg.length; ++k) buf.positions[k] = buf.rows[k] - seg.offset;
      buf.segment_rows.push_back(k);
      buf.compact_probs += H * (k - begin) * seg.keys();
    }
    buf.row_of_out.resize(P);
    for (std::size_t j = 0; j < P; ++j)
      buf.row_of_out[j] =
          static_cast<std::size_t>(std::lower_bound(buf.rows.begin(), buf.rows.end(), pass.out_rows[j]) -
                                   buf.rows.begin());
  }

  // A resumed pass gathers one head's cached and own keys and values per thread; every pass reads
  // the last key of a row from `limits`.
  std::size_t max_keys = 0;
  for (const auto& seg : pass.segments) max_keys = std::max(max_keys, seg.keys());
  if (pass.prefix != nullptr && buf.limits.size() < max_keys) {
    buf.limits.resize(max_keys);
    for (std::size_t i = 0; i < max_keys; ++i) buf.limits[i] = i;
  }
  buf.head_scratch_size = pass.prefix != nullptr ? 2 * max_keys * (d / H) : 0;
  const auto scratch_threads = static_cast<std::size_t>(std::max(1, detail::gpt2_thread_count()));

  // Lay the activations out in the arena: count, grow if needed, carve.
  auto carve = [&](detail::gpt2_carver<S>& c) {
    buf.head_scratch = c.take(scratch_threads * buf.head_scratch_size);
    buf.layers.resize(sets);
    for (std::size_t i = 0; i < sets; ++i) {
      auto& b = buf.layers[i];
      b.x = c.take(N * d);
      b.ln1_mean = c.take(N);
      b.ln1_rstd = c.take(N);
      b.a1 = c.take(N * d);
      b.qkv = c.take(N * 3 * d);
      b.probs = c.take(pass.probs_per_layer);
      b.z = c.take(N * d);
      b.ln2_mean = c.take(N);
      b.ln2_rstd = c.take(N);
      if (pass.keep) {
        b.x_mid = c.take(N * d);
        b.a2 = c.take(N * d);
        b.u = c.take(N * f);
        b.g = c.take(N * f);
      } else {  // one reused set: the residual stream is updated in place
        b.x_mid = b.x;
        b.a2 = b.a1;
        b.u = c.take(N * f);
        b.g = b.u;
      }
    }
    if (buf.compact) {
      buf.q = c.take(R * d);
      buf.probs = c.take(buf.compact_probs);
      buf.z = c.take(R * d);
      buf.x_mid = c.take(R * d);
      buf.ln2_mean = c.take(R);
      buf.ln2_rstd = c.take(R);
      buf.a2 = c.take(R * d);
      buf.u = c.take(R * f);
      buf.g = c.take(R * f);
      buf.x_final = c.take(R * d);  // the residual stream after the last block, rows read only
    } else {
      buf.x_final = (pass.keep || sets == 0) ? c.take(N * d) : buf.layers[0].x;
    }
    buf.x_selected = c.take(P * d);
    buf.a_final = c.take(P * d);
    buf.lnf_mean = c.take(P);
    buf.lnf_rstd = c.take(P);
  };
  detail::gpt2_carver<S> counter;
  carve(counter);
  detail::gpt2_carver<S> carver(ws.activations.reserve(counter.used()));
  carve(carver);

  // The residual stream at index `first`.
  S* x0 = sets > 0 ? buf.layers[0].x : buf.x_final;
  if (pass.residual != nullptr) {
    std::copy_n(pass.residual, N * d, x0);
  } else {
    const S* wpe = at(offsets_.wpe);
    for (const auto& seg : pass.segments) {
      for (std::size_t i = 0; i < seg.length; ++i) {
        const std::size_t r = seg.offset + i;
        const S* e = pass.tokens != nullptr ? at(offsets_.wte) + static_cast<std::size_t>(pass.tokens[r]) * d
                                            : pass.embeddings + r * d;
        detail::gpt2_row<S>(x0 + r * d, ix(d)) =
            detail::gpt2_crow<S>(e, ix(d)) + detail::gpt2_crow<S>(wpe + (seg.start + i) * d, ix(d));
      }
    }
  }
  const bool patched = !pass.patches.empty();
  if (patched) apply_patches(pass, component_site::residual, first, {}, x0);
  if (pass.hidden != nullptr) std::copy_n(x0, N * d, pass.hidden + first * N * d);

  const auto n = ix(N);
  for (std::size_t l = first; l < L; ++l) {
    const auto& b = buf.layers[pass.keep ? l - first : 0];
    if (buf.compact && l + 1 == L) {
      last_block_forward(pass, b, buf);
      break;
    }
    const auto& o = offsets_.blocks[l];
    S* next = !pass.keep ? b.x : (l + 1 < L ? buf.layers[l + 1 - first].x : buf.x_final);

    // Attention sub-block: x_mid = x + c_proj(attn(ln_1(x))).
    detail::gpt2_layer_norm(b.x, n, ix(d), at(o.ln_1_weight), at(o.ln_1_bias), eps, b.a1, b.ln1_mean, b.ln1_rstd);
    detail::gpt2_gemm(b.qkv, ix(3 * d), op(b.a1, N, d), op(at(o.attn_weight), d, 3 * d));
    map(b.qkv, n, ix(3 * d)).rowwise() += detail::gpt2_crow<S>(at(o.attn_bias), ix(3 * d));
    if (patched) apply_patches(pass, component_site::head_input, l, b, nullptr);
    record_keys_values(l, pass, b.qkv);
    attention_forward(l, pass, b, buf);
    if (b.x_mid != b.x) std::copy_n(b.x, N * d, b.x_mid);
    detail::gpt2_gemm(b.x_mid, ix(d), op(b.z, N, d), op(at(o.attn_proj_weight), d, d), S(1), true);
    map(b.x_mid, n, ix(d)).rowwise() += detail::gpt2_crow<S>(at(o.attn_proj_bias), ix(d));
    if (patched) apply_patches(pass, component_site::head, l, b, b.x_mid);
    // MLP sub-block: next = x_mid + c_proj(gelu(c_fc(ln_2(x_mid)))).
    detail::gpt2_layer_norm(b.x_mid, n, ix(d), at(o.ln_2_weight), at(o.ln_2_bias), eps, b.a2, b.ln2_mean, b.ln2_rstd);
    detail::gpt2_gemm(b.u, ix(f), op(b.a2, N, d), op(at(o.fc_weight), d, f));
    map(b.u, n, ix(f)).rowwise() += detail::gpt2_crow<S>(at(o.fc_bias), ix(f));
    if (patched) apply_patches(pass, component_site::mlp_input, l, b, b.x_mid);
    detail::gpt2_gelu(b.u, n, ix(f), b.g);
    if (patched) apply_patches(pass, component_site::neuron, l, b, nullptr);
    if (next != b.x_mid) std::copy_n(b.x_mid, N * d, next);
    detail::gpt2_gemm(next, ix(d), op(b.g, N, f), op(at(o.mlp_proj_weight), f, d), S(1), true);
    map(next, n, ix(d)).rowwise() += detail::gpt2_crow<S>(at(o.mlp_proj_bias), ix(d));
    if (patched) {
      apply_patches(pass, component_site::mlp, l, b, next);
      apply_patches(pass, component_site::residual, l + 1, b, next);
    }
    if (pass.hidden != nullptr) std::copy_n(next, N * d, pass.hidden + (l + 1) * N * d);
  }

  // ln_f and the unembedding, for the requested rows only.
  if (P == 0) return;
  for (std::size_t k = 0; k < P; ++k)
    std::copy_n(buf.x_final + (buf.compact ? buf.row_of_out[k] : pass.out_rows[k]) * d, d, buf.x_selected + k * d);
  detail::gpt2_layer_norm(buf.x_selected, ix(P), ix(d), at(offsets_.ln_f_weight), at(offsets_.ln_f_bias), eps,
                          buf.a_final, buf.lnf_mean, buf.lnf_rstd);
  detail::gpt2_unembed(buf.a_final, ix(P), ix(d), at(offsets_.head), ix(V), pass.logits);
}

template <class Scalar>
void basic_gpt2<Scalar>::last_block_forward(const pass_type& pass, const detail::gpt2_layer_buffers<Scalar>& b,
                                            const detail::gpt2_pass_buffers<Scalar>& buf) const {
  // Keys and values of every row, everything else for the R rows read only.
  using S = Scalar;
  const std::size_t d = config_.n_embd, f = config_.inner(), L = config_.n_layer, H = config_.n_head, dh = d / H;
  const std::size_t N = pass.rows, R = buf.rows.size(), l = L - 1;
  const auto& o = offsets_.blocks[l];
  const S eps = static_cast<S>(config_.layer_norm_epsilon);
  const S scale = detail::gpt2_attention_scale<S>(dh);
  detail::gpt2_layer_norm(b.x, ix(N), ix(d), at(o.ln_1_weight), at(o.ln_1_bias), eps, b.a1, b.ln1_mean, b.ln1_rstd);
  detail::gpt2_gemm(b.qkv, ix(3 * d), op(b.a1, N, d), op(at(o.attn_weight), d, 3 * d));
  map(b.qkv, ix(N), ix(3 * d)).rowwise() += detail::gpt2_crow<S>(at(o.attn_bias), ix(3 * d));
  record_keys_values(l, pass, b.qkv);
  for (std::size_t k = 0; k < R; ++k) std::copy_n(b.qkv + buf.rows[k] * 3 * d, d, buf.q + k * d);

  const auto jobs = static_cast<std::ptrdiff_t>(pass.segments.size() * H);
  GLASSBOX_DETAIL_PARALLEL_FOR(jobs > 1)
  for (std::ptrdiff_t job = 0; job < jobs; ++job) {
    const std::size_t s = static_cast<std::size_t>(job) / H, h = static_cast<std::size_t>(job) % H;
    const auto& seg = pass.segments[s];
    const std::size_t r0 = buf.segment_rows[s], rs = buf.segment_rows[s + 1] - r0, T = seg.keys();
    if (rs == 0) continue;
    const auto [keys, values, stride] = head_keys_values(l, h, pass, seg, b, buf);
    S* probs = buf.probs + buf.segment_probs[s] + h * rs * T;
    detail::gpt2_gemm(probs, ix(T), op(buf.q + r0 * d + h * dh, rs, dh, d), op(keys, T, dh, stride).t(), scale);
    const std::size_t* last = buf.positions.data() + r0;  // the last key of each row read
    std::vector<std::size_t> shifted;
    if (seg.start != 0) {  // a resumed pass: positions count from the cached prefix's start
      shifted.assign(last, last + rs);
      for (auto& position : shifted) position += seg.start;
      last = shifted.data();
    }
    detail::gpt2_causal_softmax_rows(probs, ix(rs), ix(T), last);
    const S m = pass.head_mask != nullptr ? pass.head_mask[l * H + h] : S(1);
    detail::gpt2_gemm(buf.z + r0 * d + h * dh, ix(d), op(probs, rs, T), op(values, T, dh, stride), m);
  }
  for (std::size_t k = 0; k < R; ++k) std::copy_n(b.x + buf.rows[k] * d, d, buf.x_mid + k * d);
  detail::gpt2_gemm(buf.x_mid, ix(d), op(buf.z, R, d), op(at(o.attn_proj_weight), d, d), S(1), true);
  map(buf.x_mid, ix(R), ix(d)).rowwise() += detail::gpt2_crow<S>(at(o.attn_proj_bias), ix(d));
  detail::gpt2_layer_norm(buf.x_mid, ix(R), ix(d), at(o.ln_2_weight), at(o.ln_2_bias), eps, buf.a2, buf.ln2_mean,
                          buf.ln2_rstd);
  detail::gpt2_gemm(buf.u, ix(f), op(buf.a2, R, d), op(at(o.fc_weight), d, f));
  map(buf.u, ix(R), ix(f)).rowwise() += detail::gpt2_crow<S>(at(o.fc_bias), ix(f));
  detail::gpt2_gelu(buf.u, ix(R), ix(f), buf.g);
  std::copy_n(buf.x_mid, R * d, buf.x_final);
  detail::gpt2_gemm(buf.x_final, ix(d), op(buf.g, R, f), op(at(o.mlp_proj_weight), f, d), S(1), true);
  map(buf.x_final, ix(R), ix(d)).rowwise() += detail::gpt2_crow<S>(at(o.mlp_proj_bias), ix(d));
}

template <class Scalar>
void basic_gpt2<Scalar>::last_block_backward(const pass_type& pass, const detail::gpt2_layer_buffers<Scalar>& b,
                                             const detail::gpt2_pass_buffers<Scalar>& buf, Scalar* dx_rows,
                                             Scalar* d_rows, Scalar* du_rows, Scalar* dq_rows, Scalar* dprobs,
                                             Scalar* dqkv, Scalar* da, Scalar* dx, Scalar* mask_partial,
                                             const backward_type& req) const {
  // dx_rows [R, d] holds d / d (stream after the last block) at the rows read; on return dx [N, d]
  // holds d / d (stream before it) at every row.
  using S = Scalar;
  const std::size_t d = config_.n_embd, f = config_.inner(), L = config_.n_layer, H = config_.n_head, dh = d / H;
  const std::size_t N = pass.rows, R = buf.rows.size(), l = L - 1;
  const auto& o = offsets_.blocks[l];
  const S scale = detail::gpt2_attention_scale<S>(dh);
  S* const dparams = req.d_parameters;
  auto add_bias_gradient = [&](const S* dy, std::size_t rows, std::size_t cols, std::size_t offset) {
    detail::gpt2_row<S> db(dparams + offset, ix(cols));
    for (std::size_t r = 0; r < rows; ++r) db += detail::gpt2_crow<S>(dy + r * cols, ix(cols));
  };

  // MLP and output projection of the rows read.
  if (dparams != nullptr) {
    detail::gpt2_gemm(dparams + o.mlp_proj_weight, ix(d), op(buf.g, R, f).t(), op(dx_rows, R, d), S(1), true);
    add_bias_gradient(dx_rows, R, d, o.mlp_proj_bias);
  }
  detail::gpt2_gemm(du_rows, ix(f), op(dx_rows, R, d), op(at(o.mlp_proj_weight), f, d).t());
  detail::gpt2_gelu_backward(buf.u, ix(R), ix(f), du_rows);
  if (dparams != nullptr) {
    detail::gpt2_gemm(dparams + o.fc_weight, ix(f), op(buf.a2, R, d).t(), op(du_rows, R, f), S(1), true);
    add_bias_gradient(du_rows, R, f, o.fc_bias);
  }
  detail::gpt2_gemm(d_rows, ix(d), op(du_rows, R, f), op(at(o.fc_weight), d, f).t());
  detail::gpt2_layer_norm_backward(buf.x_mid, ix(R), ix(d), at(o.ln_2_weight), buf.ln2_mean, buf.ln2_rstd, d_rows,
                                   dx_rows, dparams != nullptr ? dparams + o.ln_2_weight : nullptr,
                                   dparams != nullptr ? dparams + o.ln_2_bias : nullptr);
  if (dparams != nullptr) {
    detail::gpt2_gemm(dparams + o.attn_proj_weight, ix(d), op(buf.z, R, d).t(), op(dx_rows, R, d), S(1), true);
    add_bias_gradient(dx_rows, R, d, o.attn_proj_bias);
  }
  S* const dz_rows = d_rows;
  detail::gpt2_gemm(dz_rows, ix(d), op(dx_rows, R, d), op(at(o.attn_proj_weight), d, d).t());

  // Attention of the rows read: keys and values get gradients at every row, queries at the rows read.
  const auto jobs = static_cast<std::ptrdiff_t>(pass.segments.size() * H);
  GLASSBOX_DETAIL_PARALLEL_FOR(jobs > 1)
  for (std::ptrdiff_t job = 0; job < jobs; ++job) {
    const std::size_t s = static_cast<std::size_t>(job) / H, h = static_cast<std::size_t>(job) % H;
    const auto& seg = pass.segments[s];
    const std::size_t r0 = buf.segment_rows[s], rs = buf.segment_rows[s + 1] - r0, T = seg.length;
    const S* qkv = b.qkv + seg.offset * 3 * d + h * dh;
    S* dqkv_h = dqkv + seg.offset * 3 * d + h * dh;
    if (mask_partial != nullptr) mask_partial[job] = 0;
    if (rs == 0) {  // no row of this sequence is read: its keys and values do not matter
      detail::gpt2_strided<S>(dqkv_h + d, ix(T), ix(dh), Eigen::OuterStride<>(ix(3 * d))).setZero();
      detail::gpt2_strided<S>(dqkv_h + 2 * d, ix(T), ix(dh), Eigen::OuterStride<>(ix(3 * d))).setZero();
      continue;
    }
    const std::size_t block = buf.segment_probs[s] + h * rs * T;
    const S* probs = buf.probs + block;
    S* dp = dprobs + block;
    const auto dout = op(dz_rows + r0 * d + h * dh, rs, dh, d);
    const S m = pass.head_mask != nullptr ? pass.head_mask[l * H + h] : S(1);
    detail::gpt2_gemm(dp, ix(T), dout, op(qkv + 2 * d, T, dh, 3 * d).t());
    if (mask_partial != nullptr)
      mask_partial[job] = (detail::gpt2_cmap<S>(dp, ix(rs), ix(T)).array() *
                           detail::gpt2_cmap<S>(probs, ix(rs), ix(T)).array())
                              .sum();
    detail::gpt2_gemm(dqkv_h + 2 * d, ix(3 * d), op(probs, rs, T).t(), dout, m);
    if (m != S(1)) detail::gpt2_map<S>(dp, ix(rs), ix(T)) *= m;
    detail::gpt2_causal_softmax_rows_backward(probs, ix(rs), ix(T), buf.positions.data() + r0, dp);
    const auto ds = op(static_cast<const S*>(dp), rs, T);
    detail::gpt2_gemm(dq_rows + r0 * d + h * dh, ix(d), ds, op(qkv + d, T, dh, 3 * d), scale);
    detail::gpt2_gemm(dqkv_h + d, ix(3 * d), ds.t(), op(buf.q + r0 * d + h * dh, rs, dh, d), scale);
  }
  if (req.d_head_mask != nullptr)
    for (std::size_t j = 0; j < pass.segments.size() * H; ++j) req.d_head_mask[l * H + j % H] += mask_partial[j];
  detail::gpt2_strided<S>(dqkv, ix(N), ix(d), Eigen::OuterStride<>(ix(3 * d))).setZero();
  for (std::size_t k = 0; k < R; ++k) std::copy_n(dq_rows + k * d, d, dqkv + buf.rows[k] * 3 * d);

  if (dparams != nullptr) {
    detail::gpt2_gemm(dparams + o.attn_weight, ix(3 * d), op(b.a1, N, d).t(), op(dqkv, N, 3 * d), S(1), true);
    add_bias_gradient(dqkv, N, 3 * d, o.attn_bias);
  }
  detail::gpt2_gemm(da, ix(d), op(dqkv, N, 3 * d), op(at(o.attn_weight), d, 3 * d).t());
  std::fill_n(dx, N * d, S(0));
  for (std::size_t k = 0; k < R; ++k) std::copy_n(dx_rows + k * d, d, dx + buf.rows[k] * d);
  detail::gpt2_layer_norm_backward(b.x, ix(N), ix(d), at(o.ln_1_weight), b.ln1_mean, b.ln1_rstd, da, dx,
                                   dparams != nullptr ? dparams + o.ln_1_weight : nullptr,
                                   dparams != nullptr ? dparams + o.ln_1_bias : nullptr);
}

template <class Scalar>
void basic_gpt2<Scalar>::record_keys_values(std::size_t l, const pass_type& pass, const Scalar* qkv) const {
  if (pass.keys_values == nullptr) return;
  const std::size_t d = config_.n_embd, N = pass.rows;
  Scalar* out = pass.keys_values + l * N * 2 * d;
  for (std::size_t r = 0; r < N; ++r) std::copy_n(qkv + r * 3 * d + d, 2 * d, out + r * 2 * d);
}

template <class Scalar>
auto basic_gpt2<Scalar>::head_keys_values(std::size_t l, std::size_t h, const pass_type& pass,
                                          const detail::gpt2_segment& seg, const detail::gpt2_layer_buffers<Scalar>& b,
                                          const detail::gpt2_pass_buffers<Scalar>& buf) const
    -> std::tuple<const Scalar*, const Scalar*, std::size_t> {
  const std::size_t d = config_.n_embd, dh = d / config_.n_head;
  const Scalar* own = b.qkv + seg.offset * 3 * d + h * dh;
  if (pass.prefix == nullptr) return {own + d, own + 2 * d, 3 * d};
  // A resumed pass: the cached prefix's keys and values, then the segment's own, in one block per
  // thread, so that each product runs over the keys in the same order as in a pass from the start.
  Scalar* keys = buf.head_scratch + static_cast<std::size_t>(detail::gpt2_thread_index()) * buf.head_scratch_size;
  Scalar* values = keys + seg.keys() * dh;
  const Scalar* cache = pass.prefix + l * pass.prefix_rows * 2 * d + h * dh;
  const auto p = ix(seg.start), rows = ix(seg.length);
  detail::gpt2_gather_head(keys, ix(dh), cache, p, ix(2 * d), own + d, rows, ix(3 * d));
  detail::gpt2_gather_head(values, ix(dh), cache + d, p, ix(2 * d), own + 2 * d, rows, ix(3 * d));
  return {keys, values, dh};
}

template <class Scalar>
void basic_gpt2<Scalar>::attention_forward(std::size_t l, const pass_type& pass,
                                           const detail::gpt2_layer_buffers<Scalar>& b,
                                           const detail::gpt2_pass_buffers<Scalar>& buf) const {
  using S = Scalar;
  const std::size_t d = config_.n_embd, H = config_.n_head, dh = d / H;
  const S scale = detail::gpt2_attention_scale<S>(dh);
  const auto jobs = static_cast<std::ptrdiff_t>(pass.segments.size() * H);
  GLASSBOX_DETAIL_PARALLEL_FOR(jobs > 1)
  for (std::ptrdiff_t job = 0; job < jobs; ++job) {
    const auto& seg = pass.segments[static_cast<std::size_t>(job) / H];
    const std::size_t h = static_cast<std::size_t>(job) % H, T = seg.length, K = seg.keys();
    const S* qkv = b.qkv + seg.offset * 3 * d + h * dh;
    const auto q = op(qkv, T, dh, 3 * d);
    const auto [keys, values, stride] = head_keys_values(l, h, pass, seg, b, buf);
    const std::size_t block = seg.prob_offset + h * T * K;
    S* probs = b.probs + block;
    if (pass.attention_override != nullptr && l == pass.override_layer) {
      std::copy_n(pass.attention_override + block, T * T, probs);
    } else {
      detail::gpt2_gemm(probs, ix(K), q, op(keys, K, dh, stride).t(), scale);
      if (seg.start == 0)
        detail::gpt2_causal_softmax(probs, ix(T));
      else
        detail::gpt2_causal_softmax_rows(probs, ix(T), ix(K), buf.limits.data() + seg.start);
    }
    if (pass.attentions != nullptr) std::copy_n(probs, T * T, pass.attentions + l * pass.probs_per_layer + block);
    const S m = pass.head_mask != nullptr ? pass.head_mask[l * H + h] : S(1);
    detail::gpt2_gemm(b.z + seg.offset * d + h * dh, ix(d), op(probs, T, K), op(values, K, dh, stride), m);
  }
}

template <class Scalar>
void basic_gpt2<Scalar>::attention_backward(std::size_t l, const pass_type& pass,
                                            const detail::gpt2_layer_buffers<Scalar>& b, const Scalar* dz,
                                            Scalar* dqkv, Scalar* dprobs, Scalar* mask_partial,
                                            const backward_type& request) const {
  using S = Scalar;
  const std::size_t d = config_.n_embd, H = config_.n_head, dh = d / H;
  const S scale = detail::gpt2_attention_scale<S>(dh);
  const auto jobs = static_cast<std::ptrdiff_t>(pass.segments.size() * H);
  GLASSBOX_DETAIL_PARALLEL_FOR(jobs > 1)
  for (std::ptrdiff_t job = 0; job < jobs; ++job) {
    const auto& seg = pass.segments[static_cast<std::size_t>(job) / H];
    const std::size_t h = static_cast<std::size_t>(job) % H, T = seg.length;
    const auto t = ix(T);
    const S* qkv = b.qkv + seg.offset * 3 * d + h * dh;
    const auto q = op(qkv, T, dh, 3 * d), k = op(qkv + d, T, dh, 3 * d), v = op(qkv + 2 * d, T, dh, 3 * d);
    S* dqkv_h = dqkv + seg.offset * 3 * d + h * dh;
    const auto dout = op(dz + seg.offset * d + h * dh, T, dh, d);
    const std::size_t block = seg.prob_offset + h * T * T;
    const auto p = op(b.probs + block, T, T);
    S* dp_data = dprobs + block;
    map dp(dp_data, t, t);
    const S m = pass.head_mask != nullptr ? pass.head_mask[l * H + h] : S(1);
    // out = m P V: d(mP) = dout V^T, dV = m P^T dout, dm = <d(mP), P>, dP = m d(mP).
    detail::gpt2_gemm(dp_data, t, dout, v.t());
    if (mask_partial != nullptr) mask_partial[job] = (dp.array() * cmap(b.probs + block, t, t).array()).sum();
    detail::gpt2_gemm(dqkv_h + 2 * d, ix(3 * d), p.t(), dout, m);
    if (m != S(1)) dp *= m;
    if (request.d_attentions != nullptr)
      std::copy_n(dp_data, T * T, request.d_attentions + l * pass.probs_per_layer + block);
    if (pass.attention_override != nullptr && l == pass.override_layer) {  // they did not depend on q and k
      detail::gpt2_strided<S>(dqkv_h, t, ix(dh), Eigen::OuterStride<>(ix(3 * d))).setZero();
      detail::gpt2_strided<S>(dqkv_h + d, t, ix(dh), Eigen::OuterStride<>(ix(3 * d))).setZero();
      continue;
    }
    detail::gpt2_causal_softmax_backward(b.probs + block, t, dp_data);
    const auto ds = op(static_cast<const S*>(dp_data), T, T);
    detail::gpt2_gemm(dqkv_h, ix(3 * d), ds, k, scale);
    detail::gpt2_gemm(dqkv_h + d, ix(3 * d), ds.t(), q, scale);
  }
}

template <class Scalar>
void basic_gpt2<Scalar>::run_backward(detail::gpt2_workspace<Scalar>& ws, const detail::gpt2_pass_buffers<Scalar>& buf,
                                      const pass_type& pass, const backward_type& req) const {
  using S = Scalar;
  const std::size_t d = config_.n_embd, f = config_.inner(), L = config_.n_layer, V = config_.vocab_size,
                    H = config_.n_head;
  const std::size_t N = pass.rows, first = pass.start_layer, P = pass.out_rows.size();
  const auto n = ix(N);
  S* const dparams = req.d_parameters;

  const int threads = detail::gpt2_thread_count();
  auto carve = [&](detail::gpt2_carver<S>& c) {
    const std::size_t R = buf.compact ? buf.rows.size() : 0;
    return std::array<S*, 11>{c.take(N * d),
                              c.take(N * d),
                              c.take(N * 3 * d),
                              c.take(N * f),
                              c.take(std::max(pass.probs_per_layer, buf.compact_probs)),
                              c.take((2 + static_cast<std::size_t>(threads)) * P * d),
                              c.take(pass.segments.size() * H),
                              c.take(R * d),
                              c.take(R * d),
                              c.take(R * f),
                              c.take(R * d)};
  };
  detail::gpt2_carver<S> counter;
  carve(counter);
  detail::gpt2_carver<S> carver(ws.gradients.reserve(counter.used()));
  const std::array<S*, 11> pieces = carve(carver);
  S* const dx = pieces[0];      // d / d residual stream, [N, d]
  S* const da = pieces[1];      // d / d a LayerNorm output, [N, d]
  S* const dz = pieces[1];      // d / d merged heads, [N, d] (never alive together with da)
  S* const dqkv = pieces[2];    // [N, 3d]
  S* const du = pieces[3];      // [N, f]
  S* const dprobs = pieces[4];  // one layer's d / d probabilities
  S* const dfinal = pieces[5];  // ln_f rows, 2 x [P, d], then one [P, d] partial sum per thread
  S* const mask_partial = pieces[6];  // per (sequence, head) head-mask gradients
  S* const dx_rows = pieces[7];       // compact last block: d / d stream at the rows read, [R, d]
  S* const d_rows = pieces[8];        // [R, d]
  S* const du_rows = pieces[9];       // [R, f]
  S* const dq_rows = pieces[10];      // [R, d]

  auto add_bias_gradient = [&](const S* dy, std::size_t cols, std::size_t offset) {
    detail::gpt2_row<S> db(dparams + offset, ix(cols));
    for (std::size_t r = 0; r < N; ++r) db += detail::gpt2_crow<S>(dy + r * cols, ix(cols));
  };
  auto capture = [&](std::size_t slot, const char* what, const S* x, std::size_t din, const S* dy, std::size_t dout,
                     std::size_t w_offset, std::size_t b_offset) {
    auto& s = (*req.statistics)[slot];
    s.name = fmt::format("h.{}.{}", slot / 4, what);
    s.inputs = xt::xtensor<S, 2>::from_shape({N, din});
    s.output_gradients = xt::xtensor<S, 2>::from_shape({N, dout});
    std::copy_n(x, N * din, s.inputs.data());
    std::copy_n(dy, N * dout, s.output_gradients.data());
    s.weight_offset = w_offset;
    s.bias_offset = b_offset;
    s.has_bias = true;
    s.input_major = true;
  };

  // Unembedding and ln_f of the read rows; other rows of d x start at 0.
  S* const d_final = buf.compact ? dx_rows : dx;
  std::fill_n(d_final, (buf.compact ? buf.rows.size() : N) * d, S(0));
  if (P > 0) {
    S* da_final = dfinal;
    S* dx_selected = dfinal + P * d;
    detail::gpt2_unembed_backward(buf.a_final, ix(P), ix(d), at(offsets_.head), ix(V), req.d_logits, da_final,
                                  dparams != nullptr ? dparams + offsets_.head : nullptr, dfinal + 2 * P * d, threads);
    std::fill_n(dx_selected, P * d, S(0));
    detail::gpt2_layer_norm_backward(buf.x_selected, ix(P), ix(d), at(offsets_.ln_f_weight), buf.lnf_mean,
                                     buf.lnf_rstd, da_final, dx_selected,
                                     dparams != nullptr ? dparams + offsets_.ln_f_weight : nullptr,
                                     dparams != nullptr ? dparams + offsets_.ln_f_bias : nullptr);
    for (std::size_t k = 0; k < P; ++k)
      detail::gpt2_row<S>(d_final + (buf.compact ? buf.row_of_out[k] : pass.out_rows[k]) * d, ix(d)) +=
          detail::gpt2_crow<S>(dx_selected + k * d, ix(d));
  }
  if (buf.compact) {
    const auto& b = buf.layers[L - 1 - first];
    last_block_backward(pass, b, buf, dx_rows, d_rows, du_rows, dq_rows, dprobs, dqkv, da, dx,
                        req.d_head_mask != nullptr ? mask_partial : nullptr, req);
  }

  for (std::size_t l = buf.compact ? L - 1 : L; l-- > first;) {
    const auto& b = buf.layers[l - first];
    const auto& o = offsets_.blocks[l];
    if (req.d_hidden != nullptr) std::copy_n(dx, N * d, req.d_hidden + (l + 1) * N * d);
    // MLP: y = g W_proj + b_proj with dy = dx.
    if (req.statistics != nullptr) capture(4 * l + 3, "mlp.c_proj", b.g, f, dx, d, o.mlp_proj_weight, o.mlp_proj_bias);
    if (dparams != nullptr) {
      detail::gpt2_gemm(dparams + o.mlp_proj_weight, ix(d), op(b.g, N, f).t(), op(dx, N, d), S(1), true);
      add_bias_gradient(dx, d, o.mlp_proj_bias);
    }
    detail::gpt2_gemm(du, ix(f), op(dx, N, d), op(at(o.mlp_proj_weight), f, d).t());
    if (req.d_neurons != nullptr) std::copy_n(du, N * f, req.d_neurons + l * N * f);
    detail::gpt2_gelu_backward(b.u, n, ix(f), du);
    if (req.statistics != nullptr) capture(4 * l + 2, "mlp.c_fc", b.a2, d, du, f, o.fc_weight, o.fc_bias);
    if (dparams != nullptr) {
      detail::gpt2_gemm(dparams + o.fc_weight, ix(f), op(b.a2, N, d).t(), op(du, N, f), S(1), true);
      add_bias_gradient(du, f, o.fc_bias);
    }
    detail::gpt2_gemm(da, ix(d), op(du, N, f), op(at(o.fc_weight), d, f).t());
    detail::gpt2_layer_norm_backward(b.x_mid, n, ix(d), at(o.ln_2_weight), b.ln2_mean, b.ln2_rstd, da, dx,
                                     dparams != nullptr ? dparams + o.ln_2_weight : nullptr,
                                     dparams != nullptr ? dparams + o.ln_2_bias : nullptr);
    if (req.d_mid != nullptr) std::copy_n(dx, N * d, req.d_mid + l * N * d);
    // Attention output projection: y = z W_o + b_o with dy = dx (now d x_mid).
    if (req.statistics != nullptr)
      capture(4 * l + 1, "attn.c_proj", b.z, d, dx, d, o.attn_proj_weight, o.attn_proj_bias);
    if (dparams != nullptr) {
      detail::gpt2_gemm(dparams + o.attn_proj_weight, ix(d), op(b.z, N, d).t(), op(dx, N, d), S(1), true);
      add_bias_gradient(dx, d, o.attn_proj_bias);
    }
    detail::gpt2_gemm(dz, ix(d), op(dx, N, d), op(at(o.attn_proj_weight), d, d).t());
    attention_backward(l, pass, b, dz, dqkv, dprobs, req.d_head_mask != nullptr ? mask_partial : nullptr, req);
    if (req.d_head_mask != nullptr)
      for (std::size_t j = 0; j < pass.segments.size() * H; ++j) req.d_head_mask[l * H + j % H] += mask_partial[j];
    if (req.statistics != nullptr) capture(4 * l, "attn.c_attn", b.a1, d, dqkv, 3 * d, o.attn_weight, o.attn_bias);
    if (dparams != nullptr) {
      detail::gpt2_gemm(dparams + o.attn_weight, ix(3 * d), op(b.a1, N, d).t(), op(dqkv, N, 3 * d), S(1), true);
      add_bias_gradient(dqkv, 3 * d, o.attn_bias);
    }
    detail::gpt2_gemm(da, ix(d), op(dqkv, N, 3 * d), op(at(o.attn_weight), d, 3 * d).t());
    detail::gpt2_layer_norm_backward(b.x, n, ix(d), at(o.ln_1_weight), b.ln1_mean, b.ln1_rstd, da, dx,
                                     dparams != nullptr ? dparams + o.ln_1_weight : nullptr,
                                     dparams != nullptr ? dparams + o.ln_1_bias : nullptr);
  }

  // dx is now d / d (residual stream at index `first`).
  if (req.d_input != nullptr) std::copy_n(dx, N * d, req.d_input);
  if (req.d_hidden != nullptr) std::copy_n(dx, N * d, req.d_hidden + first * N * d);
  if (dparams != nullptr && first == 0 && pass.residual == nullptr) {
    for (const auto& seg : pass.segments) {
      for (std::size_t i = 0; i < seg.length; ++i) {
        const std::size_t r = seg.offset + i;
        const detail::gpt2_crow<S> g(dx + r * d, ix(d));
        detail::gpt2_row<S>(dparams + offsets_.wpe + i * d, ix(d)) += g;
        if (pass.tokens != nullptr)
          detail::gpt2_row<S>(dparams + offsets_.wte + static_cast<std::size_t>(pass.tokens[r]) * d, ix(d)) += g;
      }
    }
  }
}

// ---- passes behind the public members ------------------------------------------------------------

template <class Scalar>
auto basic_gpt2<Scalar>::forward_rows(pass_type& pass, std::size_t rows) const -> matrix_type {
  auto out = matrix_type::from_shape({rows, config_.vocab_size});
  pass.logits = out.data();
  auto ws = pool_->acquire();
  detail::gpt2_pass_buffers<Scalar> buffers;
  run_forward(*ws, buffers, pass);
  return out;
}

template <class Scalar>
double basic_gpt2<Scalar>::seeded_pass(pass_type& pass, const seed_type& seed, std::size_t length,
                                       const backward_type& request) const {
  // One sequence: forward the rows the seed reads, keep the activations, seed, backward.
  const auto rows = seed.rows(length);
  check_rows(rows, length, "seed");
  pass.out_rows.assign(rows.begin(), rows.end());
  pass.keep = true;
  auto logits = matrix_type::from_shape({rows.size(), config_.vocab_size});
  pass.logits = logits.data();
  auto ws = pool_->acquire();
  detail::gpt2_pass_buffers<Scalar> buffers;
  run_forward(*ws, buffers, pass);
  matrix_type d_logits;
  const double value = seed(logits, d_logits);
  backward_type req = request;
  req.d_logits = d_logits.data();
  run_backward(*ws, buffers, pass, req);
  return value;
}

template <class Scalar>
auto basic_gpt2<Scalar>::convert_seed(const output_seed& seed) const -> seed_type {
  if constexpr (is_float) {
    return seed_type([&seed](std::size_t n) { return seed.rows(n); },
                     [&seed](const matrix_type& z, matrix_type& dz) { return seed(z, dz); });
  } else {
    return seed_type([&seed](std::size_t n) { return seed.rows(n); },
                     [&seed](const matrix_type& z, matrix_type& dz) {
                       tensor2 zf = tensor2::from_shape({z.shape(0), z.shape(1)});
                       std::copy(z.begin(), z.end(), zf.begin());
                       tensor2 dzf;
                       const double v = seed(zf, dzf);
                       dz = matrix_type::from_shape({dzf.shape(0), dzf.shape(1)});
                       std::copy(dzf.begin(), dzf.end(), dz.begin());
                       return v;
                     });
  }
}

template <class Scalar>
auto basic_gpt2<Scalar>::logits(token_span tokens) const -> matrix_type {
  check_tokens(tokens, "logits");
  auto pass = make_pass(1, tokens.size());
  pass.tokens = tokens.data();
  pass.out_rows = all_rows(tokens.size());
  return forward_rows(pass, tokens.size());
}

template <class Scalar>
auto basic_gpt2<Scalar>::logits_at(token_span tokens, std::span<const std::size_t> rows) const -> matrix_type {
  check_tokens(tokens, "logits_at");
  check_rows(rows, tokens.size(), "logits_at");
  auto pass = make_pass(1, tokens.size());
  pass.tokens = tokens.data();
  pass.out_rows.assign(rows.begin(), rows.end());
  return forward_rows(pass, rows.size());
}

template <class Scalar>
auto basic_gpt2<Scalar>::forward_batch_rows(pass_type& pass, std::size_t B, std::size_t T,
                                            std::span<const std::size_t> rows) const -> tensor3_type {
  const auto read = rows.empty() ? all_rows(T) : std::vector<std::size_t>(rows.begin(), rows.end());
  for (std::size_t b = 0; b < B; ++b)
    for (auto r : read) pass.out_rows.push_back(b * T + r);
  matrix_type flat = forward_rows(pass, B * read.size());
  auto out = tensor3_type::from_shape({B, read.size(), config_.vocab_size});
  std::copy(flat.begin(), flat.end(), out.begin());
  return out;
}

template <class Scalar>
auto basic_gpt2<Scalar>::logits_batch(const token_matrix& batch, std::span<const std::size_t> rows) const
    -> tensor3_type {
  const std::size_t B = batch.shape(0), T = batch.shape(1);
  detail::require<shape_error>(B >= 1, "glassbox::models::gpt2::logits_batch: the batch must not be empty");
  for (std::size_t b = 0; b < B; ++b) check_tokens(token_span(batch.data() + b * T, T), "logits_batch");
  check_rows(rows, T, "logits_batch");
  auto pass = make_pass(B, T);
  pass.tokens = batch.data();
  return forward_batch_rows(pass, B, T, rows);
}

template <class Scalar>
auto basic_gpt2<Scalar>::prefix_cache(token_span tokens) const -> prefix_cache_type {
  check_tokens(tokens, "prefix_cache");
  auto pass = make_pass(1, tokens.size());
  pass.tokens = tokens.data();
  prefix_cache_type cache = record_prefix(pass, tokens.size());
  cache.tokens.assign(tokens.begin(), tokens.end());
  return cache;
}

template <class Scalar>
auto basic_gpt2<Scalar>::prefix_cache_from_embeddings(const matrix_type& embeddings) const -> prefix_cache_type {
  const std::size_t T = embeddings.shape(0);
  check_length(T, "prefix_cache_from_embeddings");
  detail::require<shape_error>(embeddings.shape(1) == config_.n_embd,
                               "glassbox::models::gpt2::prefix_cache_from_embeddings: embeddings must be {} wide, got {}",
                               config_.n_embd, embeddings.shape(1));
  auto pass = make_pass(1, T);
  pass.embeddings = embeddings.data();
  return record_prefix(pass, T);
}

template <class Scalar>
auto basic_gpt2<Scalar>::logits_batch_from_prefix(const prefix_cache_type& cache, const token_matrix& batch,
                                                  std::span<const std::size_t> starts,
                                                  std::span<const std::size_t> rows) const -> tensor3_type {
  constexpr std::string_view who = "logits_batch_from_prefix";
  const std::size_t B = batch.shape(0), T = batch.shape(1);
  detail::require<shape_error>(B >= 1 && starts.size() == B,
                               "glassbox::models::gpt2::{}: starts must have one entry per sequence ({}), got {}", who,
                               B, starts.size());
  detail::require<shape_error>(cache.tokens.size() == cache.length,
                               "glassbox::models::gpt2::{}: cache must come from prefix_cache(tokens), got one from "
                               "embeddings",
                               who);
  auto pass = make_resume_pass(cache, T, starts, rows, who);
  std::vector<token_id> suffixes;
  suffixes.reserve(pass.rows);
  for (std::size_t b = 0; b < B; ++b) {
    const token_span sequence(batch.data() + b * T, T);
    check_tokens(sequence, who);
    detail::require<shape_error>(std::equal(sequence.begin(), sequence.begin() + static_cast<std::ptrdiff_t>(starts[b]),
                                            cache.tokens.begin()),
                                 "glassbox::models::gpt2::{}: sequence {} must equal the cached tokens before its "
                                 "start {}",
                                 who, b, starts[b]);
    suffixes.insert(suffixes.end(), sequence.begin() + static_cast<std::ptrdiff_t>(starts[b]), sequence.end());
  }
  pass.tokens = suffixes.data();
  const matrix_type flat = forward_rows(pass, B * rows.size());
  auto out = tensor3_type::from_shape({B, rows.size(), config_.vocab_size});
  std::copy(flat.begin(), flat.end(), out.begin());
  return out;
}

template <class Scalar>
auto basic_gpt2<Scalar>::logits_from_embeddings_batch_from_prefix(const prefix_cache_type& cache,
                                                                  const tensor3_type& batch,
                                                                  std::span<const std::size_t> starts,
                                                                  std::span<const std::size_t> rows) const
    -> tensor3_type {
  constexpr std::string_view who = "logits_from_embeddings_batch_from_prefix";
  const std::size_t B = batch.shape(0), T = batch.shape(1), d = config_.n_embd;
  detail::require<shape_error>(B >= 1 && starts.size() == B,
                               "glassbox::models::gpt2::{}: starts must have one entry per sequence ({}), got {}", who,
                               B, starts.size());
  detail::require<shape_error>(batch.shape(2) == d, "glassbox::models::gpt2::{}: embeddings must be {} wide, got {}",
                               who, d, batch.shape(2));
  auto pass = make_resume_pass(cache, T, starts, rows, who);
  auto suffixes = matrix_type::from_shape({pass.rows, d});
  for (std::size_t b = 0; b < B; ++b)
    std::copy_n(batch.data() + (b * T + starts[b]) * d, (T - starts[b]) * d,
                suffixes.data() + pass.segments[b].offset * d);
  pass.embeddings = suffixes.data();
  const matrix_type flat = forward_rows(pass, B * rows.size());
  auto out = tensor3_type::from_shape({B, rows.size(), config_.vocab_size});
  std::copy(flat.begin(), flat.end(), out.begin());
  return out;
}

template <class Scalar>
auto basic_gpt2<Scalar>::embed(token_span tokens) const -> matrix_type {
  check_tokens(tokens, "embed");
  const std::size_t d = config_.n_embd;
  auto out = matrix_type::from_shape({tokens.size(), d});
  for (std::size_t i = 0; i < tokens.size(); ++i)
    std::copy_n(at(offsets_.wte) + static_cast<std::size_t>(tokens[i]) * d, d, out.data() + i * d);
  return out;
}

template <class Scalar>
auto basic_gpt2<Scalar>::logits_from_embeddings(const matrix_type& embeddings) const -> matrix_type {
  const std::size_t T = embeddings.shape(0);
  return logits_from_embeddings_at(embeddings, all_rows(T));
}

template <class Scalar>
auto basic_gpt2<Scalar>::logits_from_embeddings_at(const matrix_type& embeddings,
                                                   std::span<const std::size_t> rows) const -> matrix_type {
  const std::size_t T = embeddings.shape(0);
  check_length(T, "logits_from_embeddings");
  detail::require<shape_error>(embeddings.shape(1) == config_.n_embd,
                               "glassbox::models::gpt2::logits_from_embeddings: embeddings must be {} wide, got {}",
                               config_.n_embd, embeddings.shape(1));
  check_rows(rows, T, "logits_from_embeddings");
  auto pass = make_pass(1, T);
  pass.embeddings = embeddings.data();
  pass.out_rows.assign(rows.begin(), rows.end());
  return forward_rows(pass, rows.size());
}

template <class Scalar>
auto basic_gpt2<Scalar>::logits_from_embeddings_batch(const tensor3_type& embeddings,
                                                      std::span<const std::size_t> rows) const -> tensor3_type {
  const std::size_t B = embeddings.shape(0), T = embeddings.shape(1);
  detail::require<shape_error>(B >= 1, "glassbox::models::gpt2::logits_from_embeddings_batch: the batch must not be empty");
  check_length(T, "logits_from_embeddings_batch");
  detail::require<shape_error>(embeddings.shape(2) == config_.n_embd,
                               "glassbox::models::gpt2::logits_from_embeddings_batch: embeddings must be {} wide, got {}",
                               config_.n_embd, embeddings.shape(2));
  check_rows(rows, T, "logits_from_embeddings_batch");
  auto pass = make_pass(B, T);
  pass.embeddings = embeddings.data();
  return forward_batch_rows(pass, B, T, rows);
}

template <class Scalar>
auto basic_gpt2<Scalar>::embedding_gradient(const matrix_type& embeddings, const output_seed& seed) const
    -> value_and_gradient<matrix_type> {
  return embedding_gradient(embeddings, convert_seed(seed));
}

template <class Scalar>
auto basic_gpt2<Scalar>::embedding_gradient(const matrix_type& embeddings, const seed_type& seed) const
    -> value_and_gradient<matrix_type> {
  const std::size_t T = embeddings.shape(0), d = config_.n_embd;
  check_length(T, "embedding_gradient");
  detail::require<shape_error>(embeddings.shape(1) == d,
                               "glassbox::models::gpt2::embedding_gradient: embeddings must be {} wide, got {}", d,
                               embeddings.shape(1));
  auto pass = make_pass(1, T);
  pass.embeddings = embeddings.data();
  value_and_gradient<matrix_type> out{0, matrix_type::from_shape({T, d})};
  backward_type req;
  req.d_input = out.gradient.data();
  out.value = seeded_pass(pass, seed, T, req);
  return out;
}

template <class Scalar>
auto basic_gpt2<Scalar>::embedding_gradient_batch(const tensor3_type& embeddings, const output_seed& seed) const
    -> batch_gradient_type {
  return embedding_gradient_batch(embeddings, convert_seed(seed));
}

template <class Scalar>
auto basic_gpt2<Scalar>::embedding_gradient_batch(const tensor3_type& embeddings, const seed_type& seed) const
    -> batch_gradient_type {
  const std::size_t B = embeddings.shape(0), T = embeddings.shape(1), d = config_.n_embd;
  detail::require<shape_error>(B >= 1, "glassbox::models::gpt2::embedding_gradient_batch: the batch must not be empty");
  check_length(T, "embedding_gradient_batch");
  detail::require<shape_error>(embeddings.shape(2) == d,
                               "glassbox::models::gpt2::embedding_gradient_batch: embeddings must be {} wide, got {}",
                               d, embeddings.shape(2));
  const auto rows = seed.rows(T);
  check_rows(rows, T, "embedding_gradient_batch");
  const std::size_t R = rows.size(), V = config_.vocab_size;
  batch_gradient_type out;
  out.values.resize(B);
  out.gradients = tensor3_type::from_shape({B, T, d});
  // Sequences per pass: the kept activations stay within the budget, so that a large batch reuses one
  // workspace instead of mapping fresh memory for all of it (each sequence's values are the same).
  const std::size_t per_sequence = kept_activation_scalars(T) * sizeof(Scalar);
  const std::size_t chunk = std::clamp<std::size_t>(kept_activation_bytes_ / per_sequence, 1, B);
  auto ws = pool_->acquire();
  auto logits = matrix_type::from_shape({chunk * R, V});
  auto d_logits = matrix_type::from_shape({chunk * R, V});
  auto one = matrix_type::from_shape({R, V});
  matrix_type d_one;
  for (std::size_t b0 = 0; b0 < B; b0 += chunk) {
    const std::size_t n = std::min(chunk, B - b0);
    auto pass = make_pass(n, T);
    pass.embeddings = embeddings.data() + b0 * T * d;
    pass.keep = true;
    for (std::size_t b = 0; b < n; ++b)
      for (auto r : rows) pass.out_rows.push_back(b * T + r);
    pass.logits = logits.data();
    detail::gpt2_pass_buffers<Scalar> buffers;
    run_forward(*ws, buffers, pass);
    for (std::size_t b = 0; b < n; ++b) {
      std::copy_n(logits.data() + b * R * V, R * V, one.data());
      out.values[b0 + b] = seed(one, d_one);
      std::copy_n(d_one.data(), R * V, d_logits.data() + b * R * V);
    }
    backward_type req;
    req.d_logits = d_logits.data();
    req.d_input = out.gradients.data() + b0 * T * d;
    run_backward(*ws, buffers, pass, req);
  }
  return out;
}

template <class Scalar>
auto basic_gpt2<Scalar>::attentions(token_span tokens) const -> tensor4_type {
  check_tokens(tokens, "attentions");
  const std::size_t T = tokens.size();
  auto out = tensor4_type::from_shape({config_.n_layer, config_.n_head, T, T});
  auto pass = make_pass(1, T);
  pass.tokens = tokens.data();
  pass.attentions = out.data();
  auto ws = pool_->acquire();
  detail::gpt2_pass_buffers<Scalar> buffers;
  run_forward(*ws, buffers, pass);
  return out;
}

template <class Scalar>
auto basic_gpt2<Scalar>::attention_gradient(token_span tokens, const output_seed& seed) const
    -> attention_gradient_type {
  return attention_gradient(tokens, convert_seed(seed));
}

template <class Scalar>
auto basic_gpt2<Scalar>::attention_gradient(token_span tokens, const seed_type& seed) const
    -> attention_gradient_type {
  check_tokens(tokens, "attention_gradient");
  const std::size_t T = tokens.size();
  attention_gradient_type out;
  out.attentions = tensor4_type::from_shape({config_.n_layer, config_.n_head, T, T});
  out.gradient = tensor4_type::from_shape({config_.n_layer, config_.n_head, T, T});
  auto pass = make_pass(1, T);
  pass.tokens = tokens.data();
  pass.attentions = out.attentions.data();
  pass.full_last_block = true;  // every row's attention gradient is reported
  backward_type req;
  req.d_attentions = out.gradient.data();
  out.value = seeded_pass(pass, seed, T, req);
  return out;
}

template <class Scalar>
auto basic_gpt2<Scalar>::head_mask_gradient(token_span tokens, const matrix_type& mask, const output_seed& seed) const
    -> value_and_gradient<matrix_type> {
  return head_mask_gradient(tokens, mask, convert_seed(seed));
}

template <class Scalar>
auto basic_gpt2<Scalar>::head_mask_gradient(token_span tokens, const matrix_type& mask, const seed_type& seed) const
    -> value_and_gradient<matrix_type> {
  check_tokens(tokens, "head_mask_gradient");
  detail::require<shape_error>(mask.shape(0) == config_.n_layer && mask.shape(1) == config_.n_head,
                               "glassbox::models::gpt2::head_mask_gradient: mask must be [{}, {}], got [{}, {}]",
                               config_.n_layer, config_.n_head, mask.shape(0), mask.shape(1));
  auto pass = make_pass(1, tokens.size());
  pass.tokens = tokens.data();
  pass.head_mask = mask.data();
  value_and_gradient<matrix_type> out{0, matrix_type::from_shape({config_.n_layer, config_.n_head})};
  std::fill(out.gradient.begin(), out.gradient.end(), Scalar(0));
  backward_type req;
  req.d_head_mask = out.gradient.data();
  out.value = seeded_pass(pass, seed, tokens.size(), req);
  return out;
}

template <class Scalar>
auto basic_gpt2<Scalar>::logits_with_head_mask(token_span tokens, const matrix_type& mask) const -> matrix_type {
  check_tokens(tokens, "logits_with_head_mask");
  detail::require<shape_error>(mask.shape(0) == config_.n_layer && mask.shape(1) == config_.n_head,
                               "glassbox::models::gpt2::logits_with_head_mask: mask must be [{}, {}], got [{}, {}]",
                               config_.n_layer, config_.n_head, mask.shape(0), mask.shape(1));
  auto pass = make_pass(1, tokens.size());
  pass.tokens = tokens.data();
  pass.head_mask = mask.data();
  pass.out_rows = all_rows(tokens.size());
  return forward_rows(pass, tokens.size());
}

template <class Scalar>
auto basic_gpt2<Scalar>::logits_with_attentions(token_span tokens, std::size_t layer,
                                                const tensor3_type& attentions) const -> matrix_type {
  check_tokens(tokens, "logits_with_attentions");
  const std::size_t T = tokens.size();
  detail::require<shape_error>(layer < config_.n_layer,
                               "glassbox::models::gpt2::logits_with_attentions: layer must be < {} (n_layer), got {}",
                               config_.n_layer, layer);
  detail::require<shape_error>(attentions.shape(0) == config_.n_head && attentions.shape(1) == T &&
                                   attentions.shape(2) == T,
                               "glassbox::models::gpt2::logits_with_attentions: attentions must be [{}, {}, {}], "
                               "got [{}, {}, {}]",
                               config_.n_head, T, T, attentions.shape(0), attentions.shape(1), attentions.shape(2));
  auto pass = make_pass(1, T);
  pass.tokens = tokens.data();
  pass.attention_override = attentions.data();
  pass.override_layer = layer;
  pass.out_rows = all_rows(T);
  return forward_rows(pass, T);
}

template <class Scalar>
auto basic_gpt2<Scalar>::hidden_states(token_span tokens) const -> tensor3_type {
  check_tokens(tokens, "hidden_states");
  auto out = tensor3_type::from_shape({config_.n_layer + 1, tokens.size(), config_.n_embd});
  auto pass = make_pass(1, tokens.size());
  pass.tokens = tokens.data();
  pass.hidden = out.data();
  auto ws = pool_->acquire();
  detail::gpt2_pass_buffers<Scalar> buffers;
  run_forward(*ws, buffers, pass);
  return out;
}

template <class Scalar>
auto basic_gpt2<Scalar>::logits_from_hidden(token_span tokens, std::size_t layer, const matrix_type& h) const
    -> matrix_type {
  check_tokens(tokens, "logits_from_hidden");
  detail::require<shape_error>(layer <= config_.n_layer,
                               "glassbox::models::gpt2::logits_from_hidden: layer must be <= {} (n_layer), got {}",
                               config_.n_layer, layer);
  detail::require<shape_error>(h.shape(0) == tokens.size() && h.shape(1) == config_.n_embd,
                               "glassbox::models::gpt2::logits_from_hidden: h must be [{}, {}], got [{}, {}]",
                               tokens.size(), config_.n_embd, h.shape(0), h.shape(1));
  auto pass = make_pass(1, tokens.size());
  pass.residual = h.data();
  pass.start_layer = layer;
  pass.out_rows = all_rows(tokens.size());
  return forward_rows(pass, tokens.size());
}

template <class Scalar>
auto basic_gpt2<Scalar>::logits_from_hidden_at(token_span tokens, std::size_t layer, const matrix_type& h,
                                               std::span<const std::size_t> rows) const -> matrix_type {
  check_tokens(tokens, "logits_from_hidden_at");
  detail::require<shape_error>(layer <= config_.n_layer,
                               "glassbox::models::gpt2::logits_from_hidden_at: layer must be <= {} (n_layer), got {}",
                               config_.n_layer, layer);
  detail::require<shape_error>(h.shape(0) == tokens.size() && h.shape(1) == config_.n_embd,
                               "glassbox::models::gpt2::logits_from_hidden_at: h must be [{}, {}], got [{}, {}]",
                               tokens.size(), config_.n_embd, h.shape(0), h.shape(1));
  check_rows(rows, tokens.size(), "logits_from_hidden_at");
  auto pass = make_pass(1, tokens.size());
  pass.residual = h.data();
  pass.start_layer = layer;
  pass.out_rows.assign(rows.begin(), rows.end());
  return forward_rows(pass, rows.size());
}

template <class Scalar>
auto basic_gpt2<Scalar>::decode_hidden(const matrix_type& h) const -> matrix_type {
  detail::require<shape_error>(h.dimension() == 2 && h.shape(1) == config_.n_embd,
                               "glassbox::models::gpt2::decode_hidden: h must be [rows, {}], got [{}, {}]",
                               config_.n_embd, h.shape(0), h.dimension() == 2 ? h.shape(1) : 0);
  // R sequences of one token each: no block runs, and no attention buffer grows with R^2.
  const std::size_t R = h.shape(0);
  auto pass = make_pass(R, 1);
  pass.residual = h.data();
  pass.start_layer = config_.n_layer;
  pass.out_rows = all_rows(R);
  return forward_rows(pass, R);
}

template <class Scalar>
auto basic_gpt2<Scalar>::hidden_gradient(token_span tokens, std::size_t layer, const matrix_type& h,
                                         const output_seed& seed) const -> value_and_gradient<matrix_type> {
  return hidden_gradient(tokens, layer, h, convert_seed(seed));
}

template <class Scalar>
auto basic_gpt2<Scalar>::hidden_gradient(token_span tokens, std::size_t layer, const matrix_type& h,
                                         const seed_type& seed) const -> value_and_gradient<matrix_type> {
  check_tokens(tokens, "hidden_gradient");
  detail::require<shape_error>(layer <= config_.n_layer,
                               "glassbox::models::gpt2::hidden_gradient: layer must be <= {} (n_layer), got {}",
                               config_.n_layer, layer);
  detail::require<shape_error>(h.shape(0) == tokens.size() && h.shape(1) == config_.n_embd,
                               "glassbox::models::gpt2::hidden_gradient: h must be [{}, {}], got [{}, {}]",
                               tokens.size(), config_.n_embd, h.shape(0), h.shape(1));
  auto pass = make_pass(1, tokens.size());
  pass.residual = h.data();
  pass.start_layer = layer;
  value_and_gradient<matrix_type> out{0, matrix_type::from_shape({tokens.size(), config_.n_embd})};
  backward_type req;
  req.d_input = out.gradient.data();
  out.value = seeded_pass(pass, seed, tokens.size(), req);
  return out;
}

// ---- components (ComponentModel) -------------------------------------------------------------------

template <class Scalar>
void basic_gpt2<Scalar>::apply_patches(const pass_type& pass, component_site site, std::size_t l,
                                       const detail::gpt2_layer_buffers<Scalar>& b, Scalar* stream) const {
  using S = Scalar;
  const std::size_t d = config_.n_embd, f = config_.inner(), H = config_.n_head, dh = d / H, N = pass.rows;
  const S eps = static_cast<S>(config_.layer_norm_epsilon);
  std::vector<S> x(d), a(d), out(3 * d);
  S mean = 0, rstd = 0;
  // One row through a LayerNorm and a linear layer: out[0, cols) = LN(x) W + bias.
  auto norm_linear = [&](std::size_t w_ln, std::size_t b_ln, std::size_t w, std::size_t bias, std::size_t cols) {
    detail::gpt2_layer_norm(x.data(), 1, ix(d), at(w_ln), at(b_ln), eps, a.data(), &mean, &rstd);
    out.resize(cols);
    detail::gpt2_row<S>(out.data(), ix(cols)) =
        detail::gpt2_crow<S>(a.data(), ix(d)) * cmap(at(w), ix(d), ix(cols)) + detail::gpt2_crow<S>(at(bias), ix(cols));
  };
  for (const auto& p : pass.patches) {
    if (p.site != site || p.layer != l) continue;
    const std::size_t count = p.positions.empty() ? N : p.positions.size();
    const std::size_t width = site == component_site::neuron ? 1 : d;
    for (std::size_t k = 0; k < count; ++k) {
      const std::size_t r = p.positions.empty() ? k : p.positions[k];
      const S* v = p.values.data() + k * width;
      const detail::gpt2_crow<S> value(v, ix(width));
      switch (site) {
        case component_site::residual: {
          detail::gpt2_row<S> row(stream + r * d, ix(d));
          if (p.add) row += value; else row = value;
          break;
        }
        case component_site::head_input: {  // this head's queries, keys and values from the edited stream
          const auto& o = offsets_.blocks[l];
          detail::gpt2_row<S>(x.data(), ix(d)) = p.add ? (detail::gpt2_crow<S>(b.x + r * d, ix(d)) + value).eval()
                                                       : value.eval();
          norm_linear(o.ln_1_weight, o.ln_1_bias, o.attn_weight, o.attn_bias, 3 * d);
          for (std::size_t part = 0; part < 3; ++part)
            std::copy_n(out.data() + part * d + p.index * dh, dh, b.qkv + r * 3 * d + part * d + p.index * dh);
          break;
        }
        case component_site::head: {  // the head's own output: z_h W_O[h rows]
          const auto& o = offsets_.blocks[l];
          detail::gpt2_row<S> row(stream + r * d, ix(d));
          if (!p.add) {
            row -= detail::gpt2_crow<S>(b.z + r * d + p.index * dh, ix(dh)) *
                   cmap(at(o.attn_proj_weight) + p.index * dh * d, ix(dh), ix(d));
          }
          row += value;
          break;
        }
        case component_site::mlp_input: {  // the MLP's pre-activations from the edited stream
          const auto& o = offsets_.blocks[l];
          detail::gpt2_row<S>(x.data(), ix(d)) = p.add ? (detail::gpt2_crow<S>(stream + r * d, ix(d)) + value).eval()
                                                       : value.eval();
          norm_linear(o.ln_2_weight, o.ln_2_bias, o.fc_weight, o.fc_bias, f);
          std::copy_n(out.data(), f, b.u + r * f);
          break;
        }
        case component_site::neuron: {
          S& g = b.g[r * f + p.index];
          g = p.add ? g + v[0] : v[0];
          break;
        }
        case component_site::mlp: {  // the MLP's own output: g W_proj + b_proj
          const auto& o = offsets_.blocks[l];
          detail::gpt2_row<S> row(stream + r * d, ix(d));
          if (!p.add) {
            row -= detail::gpt2_crow<S>(b.g + r * f, ix(f)) * cmap(at(o.mlp_proj_weight), ix(f), ix(d)) +
                   detail::gpt2_crow<S>(at(o.mlp_proj_bias), ix(d));
          }
          row += value;
          break;
        }
      }
    }
  }
}

template <class Scalar>
void basic_gpt2<Scalar>::check_patches(std::span<const patch_type> patches, std::size_t T, std::string_view who) const {
  const std::size_t L = config_.n_layer, d = config_.n_embd;
  for (std::size_t i = 0; i < patches.size(); ++i) {
    const auto& p = patches[i];
    const auto site = to_string(p.site);
    const std::size_t layers = p.site == component_site::residual ? L + 1 : L;
    detail::require<shape_error>(p.layer < layers, "glassbox::models::gpt2::{}: patch {} ({}) has layer {}, expected < {}",
                                 who, i, site, p.layer, layers);
    if (p.site == component_site::head || p.site == component_site::head_input)
      detail::require<shape_error>(p.index < config_.n_head,
                                   "glassbox::models::gpt2::{}: patch {} ({}) has head {}, expected < {}", who, i, site,
                                   p.index, config_.n_head);
    if (p.site == component_site::neuron)
      detail::require<shape_error>(p.index < config_.inner(),
                                   "glassbox::models::gpt2::{}: patch {} (neuron) has index {}, expected < {}", who, i,
                                   p.index, config_.inner());
    std::vector<bool> seen(T, false);
    for (const std::size_t position : p.positions) {
      detail::require<shape_error>(position < T && !seen[position],
                                   "glassbox::models::gpt2::{}: patch {} ({}) has position {}: positions must be "
                                   "distinct and < {} (the tokens)",
                                   who, i, site, position, T);
      seen[position] = true;
    }
    const std::size_t rows = p.positions.empty() ? T : p.positions.size();
    const std::size_t width = p.site == component_site::neuron ? 1 : d;
    detail::require<shape_error>(p.values.dimension() == 2 && p.values.shape(0) == rows && p.values.shape(1) == width,
                                 "glassbox::models::gpt2::{}: patch {} ({}) values must be [{}, {}], got {}", who, i,
                                 site, rows, width,
                                 detail::gpt2_shape_text({p.values.shape().begin(), p.values.shape().end()}));
  }
}

template <class Scalar>
void basic_gpt2<Scalar>::extract_components(const detail::gpt2_pass_buffers<Scalar>& buf, token_span tokens,
                                            component_cache_type& c) const {
  using S = Scalar;
  const std::size_t T = tokens.size(), L = config_.n_layer, H = config_.n_head, d = config_.n_embd,
                    f = config_.inner(), dh = d / H;
  c.token_embeddings = matrix_type::from_shape({T, d});
  c.position_embeddings = matrix_type::from_shape({T, d});
  for (std::size_t t = 0; t < T; ++t) {
    std::copy_n(at(offsets_.wte) + static_cast<std::size_t>(tokens[t]) * d, d, c.token_embeddings.data() + t * d);
    std::copy_n(at(offsets_.wpe) + t * d, d, c.position_embeddings.data() + t * d);
  }
  c.heads = tensor4_type::from_shape({L, H, T, d});
  c.attention_bias = matrix_type::from_shape({L, d});
  c.mlps = tensor3_type::from_shape({L, T, d});
  c.neurons = tensor3_type::from_shape({L, T, f});
  for (std::size_t l = 0; l < L; ++l) {
    const auto& b = buf.layers[l];
    const auto& o = offsets_.blocks[l];
    for (std::size_t h = 0; h < H; ++h)
      detail::gpt2_gemm(c.heads.data() + (l * H + h) * T * d, ix(d), op(b.z + h * dh, T, dh, d),
                        op(at(o.attn_proj_weight) + h * dh * d, dh, d));
    std::copy_n(at(o.attn_proj_bias), d, c.attention_bias.data() + l * d);
    S* mlp = c.mlps.data() + l * T * d;
    detail::gpt2_gemm(mlp, ix(d), op(b.g, T, f), op(at(o.mlp_proj_weight), f, d));
    map(mlp, ix(T), ix(d)).rowwise() += detail::gpt2_crow<S>(at(o.mlp_proj_bias), ix(d));
    std::copy_n(b.g, T * f, c.neurons.data() + l * T * f);
  }
  c.final_scale.resize(T);
  for (std::size_t t = 0; t < T; ++t) c.final_scale[t] = 1.0 / static_cast<double>(buf.lnf_rstd[t]);
}

template <class Scalar>
auto basic_gpt2<Scalar>::run_with_cache(token_span tokens) const -> component_cache_type {
  check_tokens(tokens, "run_with_cache");
  component_cache_type cache;
  auto ws = pool_->acquire();
  detail::gpt2_pass_buffers<Scalar> buffers;
  cached_forward(tokens, cache, *ws, buffers);
  return cache;
}

template <class Scalar>
auto basic_gpt2<Scalar>::cached_forward(token_span tokens, component_cache_type& cache,
                                        detail::gpt2_workspace<Scalar>& ws,
                                        detail::gpt2_pass_buffers<Scalar>& buffers) const -> pass_type {
  const std::size_t T = tokens.size();
  cache.logits = matrix_type::from_shape({T, config_.vocab_size});
  cache.residual = tensor3_type::from_shape({config_.n_layer + 1, T, config_.n_embd});
  auto pass = make_pass(1, T);
  pass.tokens = tokens.data();
  pass.keep = true;
  pass.full_last_block = true;
  pass.out_rows = all_rows(T);
  pass.logits = cache.logits.data();
  pass.hidden = cache.residual.data();
  run_forward(ws, buffers, pass);
  extract_components(buffers, tokens, cache);
  return pass;
}

template <class Scalar>
auto basic_gpt2<Scalar>::logits_with_patches(token_span tokens, std::span<const patch_type> patches,
                                             std::span<const std::size_t> rows) const -> matrix_type {
  check_tokens(tokens, "logits_with_patches");
  check_patches(patches, tokens.size(), "logits_with_patches");
  check_rows(rows, tokens.size(), "logits_with_patches");
  auto pass = make_pass(1, tokens.size());
  pass.tokens = tokens.data();
  pass.patches = patches;
  pass.out_rows = rows.empty() ? all_rows(tokens.size()) : std::vector<std::size_t>(rows.begin(), rows.end());
  return forward_rows(pass, pass.out_rows.size());
}

template <class Scalar>
auto basic_gpt2<Scalar>::component_gradients(token_span tokens, const output_seed& seed) const
    -> component_gradient_type {
  return component_gradients(tokens, convert_seed(seed));
}

template <class Scalar>
auto basic_gpt2<Scalar>::component_gradients(token_span tokens, const seed_type& seed) const
    -> component_gradient_type {
  check_tokens(tokens, "component_gradients");
  const std::size_t T = tokens.size(), L = config_.n_layer, d = config_.n_embd, V = config_.vocab_size;
  const auto rows = seed.rows(T);
  check_rows(rows, T, "seed");
  component_gradient_type out;
  const auto& cache = out.cache;
  auto ws = pool_->acquire();
  detail::gpt2_pass_buffers<Scalar> buffers;
  const pass_type pass = cached_forward(tokens, out.cache, *ws, buffers);

  // The seed reads its rows; every other row's logits get a zero derivative.
  auto row_logits = matrix_type::from_shape({rows.size(), V});
  for (std::size_t k = 0; k < rows.size(); ++k)
    std::copy_n(cache.logits.data() + rows[k] * V, V, row_logits.data() + k * V);
  matrix_type d_rows;
  out.value = seed(row_logits, d_rows);
  matrix_type d_logits = xt::zeros<Scalar>({T, V});
  for (std::size_t k = 0; k < rows.size(); ++k)
    std::copy_n(d_rows.data() + k * V, V, d_logits.data() + rows[k] * V);

  out.residual = tensor3_type::from_shape({L + 1, T, d});
  out.attention = tensor3_type::from_shape({L, T, d});
  out.neurons = tensor3_type::from_shape({L, T, config_.inner()});
  backward_type req;
  req.d_logits = d_logits.data();
  req.d_hidden = out.residual.data();
  req.d_mid = out.attention.data();
  req.d_neurons = out.neurons.data();
  run_backward(*ws, buffers, pass, req);
  return out;
}

template <class Scalar>
auto basic_gpt2<Scalar>::unembedding_directions(std::span<const token_id> tokens) const -> logit_directions_type {
  const std::size_t d = config_.n_embd;
  logit_directions_type out;
  out.directions = matrix_type::from_shape({tokens.size(), d});
  out.offsets.resize(tokens.size());
  const detail::gpt2_crow<Scalar> gain(at(offsets_.ln_f_weight), ix(d)), bias(at(offsets_.ln_f_bias), ix(d));
  for (std::size_t k = 0; k < tokens.size(); ++k) {
    detail::require<shape_error>(tokens[k] >= 0 && static_cast<std::size_t>(tokens[k]) < config_.vocab_size,
                                 "glassbox::models::gpt2::unembedding_directions: token {} is out of range [0, {})",
                                 tokens[k], config_.vocab_size);
    const detail::gpt2_crow<Scalar> w(at(offsets_.head) + static_cast<std::size_t>(tokens[k]) * d, ix(d));
    // logit = ((x - mean x) / sigma) . (gain * w) + bias . w, and (x - mean x) . u = x . (u - mean u).
    Eigen::Matrix<detail::dependent_t<Scalar, double>, 1, Eigen::Dynamic> u =
        gain.template cast<double>().cwiseProduct(w.template cast<double>());
    u.array() -= u.mean();
    detail::gpt2_row<Scalar>(out.directions.data() + k * d, ix(d)) = u.template cast<Scalar>();
    out.offsets[k] = bias.template cast<double>().dot(w.template cast<double>());
  }
  return out;
}

template <class Scalar>
auto basic_gpt2<Scalar>::neuron_output_weights(std::size_t layer) const -> matrix_type {
  detail::require<shape_error>(layer < config_.n_layer,
                               "glassbox::models::gpt2::neuron_output_weights: layer must be < {} (n_layer), got {}",
                               config_.n_layer, layer);
  const std::size_t f = config_.inner(), d = config_.n_embd;
  auto out = matrix_type::from_shape({f, d});
  std::copy_n(at(offsets_.blocks[layer].mlp_proj_weight), f * d, out.data());
  return out;
}

// ---- losses --------------------------------------------------------------------------------------

template <class Scalar>
double basic_gpt2<Scalar>::examples_pass(std::span<const training_example> examples, Scalar* gradient,
                                         std::vector<double>* per_example,
                                         std::vector<layer_statistics_type>* statistics, std::string_view who) const {
  using S = Scalar;
  std::vector<token_id> tokens;
  auto pass = make_ragged_pass(examples, tokens, who);
  const std::size_t P = pass.out_rows.size(), V = config_.vocab_size;
  const bool backward = gradient != nullptr || statistics != nullptr;
  pass.keep = backward;
  pass.full_last_block = statistics != nullptr;  // K-FAC reads every row of every layer
  // 64-byte aligned, like every buffer the pass computes in: Eigen computes the entries of a row
  // before its first aligned address one by one, and a scalar exp() rounds otherwise than the
  // vectorised one, so on a buffer wherever the allocator put it two identical runs could differ.
  std::vector<S, Eigen::aligned_allocator<S>> logits(P * V);
  pass.logits = logits.data();
  auto ws = pool_->acquire();
  detail::gpt2_pass_buffers<S> buffers;
  run_forward(*ws, buffers, pass);

  // Cross-entropy per scored row, turned in place into d (mean over examples of mean over rows) / d logits.
  const double batch_weight = 1.0 / static_cast<double>(examples.size());
  double total = 0;
  std::size_t k = 0;
  if (per_example != nullptr) per_example->assign(examples.size(), 0.0);
  for (std::size_t e = 0; e < examples.size(); ++e) {
    const auto& labels = examples[e].labels;
    std::size_t scored = 0;
    for (auto l : labels) scored += l != training_example::ignore_label ? 1 : 0;
    const double row_weight = 1.0 / static_cast<double>(scored);
    double sum = 0;
    for (std::size_t i = 0; i < labels.size(); ++i) {
      if (labels[i] == training_example::ignore_label) continue;
      auto z = detail::gpt2_row<S>(logits.data() + k * V, ix(V)).array();
      const S mx = z.maxCoeff();
      const double lse = static_cast<double>(mx) + std::log(static_cast<double>((z - mx).exp().sum()));
      sum += lse - static_cast<double>(z(labels[i]));
      if (backward) {  // d CE / d z = softmax(z) - onehot(label)
        const S w = static_cast<S>(row_weight * batch_weight);
        z = (z - static_cast<S>(lse)).exp() * w;
        z(labels[i]) -= w;
      }
      ++k;
    }
    const double loss = sum * row_weight;
    if (per_example != nullptr) (*per_example)[e] = loss;
    total += loss;
  }
  if (!backward) return total * batch_weight;

  backward_type req;
  req.d_logits = logits.data();
  req.d_parameters = gradient;
  if (statistics != nullptr) {
    statistics->assign(4 * config_.n_layer, {});
    req.statistics = statistics;
  }
  run_backward(*ws, buffers, pass, req);
  return total * batch_weight;
}

template <class Scalar>
double basic_gpt2<Scalar>::loss(const training_example& example) const {
  return examples_pass(std::span<const training_example>(&example, 1), nullptr, nullptr, nullptr, "loss");
}

template <class Scalar>
auto basic_gpt2<Scalar>::loss_gradient(const training_example& example) const -> value_and_gradient<vector_type> {
  return mean_loss_gradient(std::span<const training_example>(&example, 1));
}

template <class Scalar>
std::vector<double> basic_gpt2<Scalar>::losses(std::span<const training_example> examples) const {
  std::vector<double> out;
  examples_pass(examples, nullptr, &out, nullptr, "losses");
  return out;
}

template <class Scalar>
auto basic_gpt2<Scalar>::mean_loss_gradient(std::span<const training_example> examples) const
    -> value_and_gradient<vector_type> {
  value_and_gradient<vector_type> out{0, vector_type::from_shape({parameters_.size()})};
  out.value = mean_loss_gradient(examples, std::span<Scalar>(out.gradient.data(), out.gradient.size()));
  return out;
}

template <class Scalar>
double basic_gpt2<Scalar>::mean_loss_gradient(std::span<const training_example> examples,
                                              std::span<Scalar> gradient) const {
  detail::require<shape_error>(gradient.size() == parameters_.size(),
                               "glassbox::models::gpt2::mean_loss_gradient: gradient must hold {} values, got {}",
                               parameters_.size(), gradient.size());
  std::fill(gradient.begin(), gradient.end(), Scalar(0));
  return examples_pass(examples, gradient.data(), nullptr, nullptr, "mean_loss_gradient");
}

template <class Scalar>
auto basic_gpt2<Scalar>::kfac_statistics(const training_example& example) const
    -> std::vector<layer_statistics_type> {
  std::vector<layer_statistics_type> out;
  examples_pass(std::span<const training_example>(&example, 1), nullptr, nullptr, &out, "kfac_statistics");
  return out;
}

// ---- curvature products ----------------------------------------------------------------------------

template <class Scalar>
auto basic_gpt2<Scalar>::hessian_vector_product(std::span<const training_example> examples,
                                                std::span<const Scalar> v) const -> vector_type {
  return curvature_product(examples, v, false, "hessian_vector_product");
}

template <class Scalar>
auto basic_gpt2<Scalar>::gauss_newton_vector_product(std::span<const training_example> examples,
                                                     std::span<const Scalar> v) const -> vector_type {
  return curvature_product(examples, v, true, "gauss_newton_vector_product");
}

template <class Scalar>
auto basic_gpt2<Scalar>::curvature_product(std::span<const training_example> examples, std::span<const Scalar> v,
                                           bool gauss_newton, std::string_view who) const -> vector_type {
  detail::require<shape_error>(v.size() == parameters_.size(),
                               "glassbox::models::gpt2::{}: v must hold {} values (parameter_count), got {}", who,
                               parameters_.size(), v.size());
  using D = detail::dual<double>;
  std::vector<D> p(parameters_.size());
  for (std::size_t i = 0; i < p.size(); ++i) p[i] = D(static_cast<double>(parameters_[i]), static_cast<double>(v[i]));
  const basic_gpt2<D> tangent_model(config_, p);
  const std::vector<double> product = tangent_model.dual_curvature_pass(examples, gauss_newton, who);
  auto out = vector_type::from_shape({product.size()});
  for (std::size_t i = 0; i < product.size(); ++i) out[i] = static_cast<Scalar>(product[i]);
  return out;
}

template <class Scalar>
std::vector<double> basic_gpt2<Scalar>::dual_curvature_pass(std::span<const training_example> examples,
                                                            bool gauss_newton, std::string_view who) const {
  // The loss_gradient passes on dual numbers: the cross-entropy seed's value is (p - onehot) w and
  // its tangent w (diag(p) - p p^T) J v, so the parameter gradient's tangent is H v. For G v the
  // seed is that tangent, as a value, and the gradient's value is J^T (diag(p) - p p^T) J v w.
  using S = Scalar;
  if constexpr (!detail::is_dual_v<S>) {  // only the dual-number copy runs this pass
    detail::fail("glassbox::models::gpt2::{}: the curvature pass runs on dual numbers only", who);
  } else {
    using std::log;
    std::vector<token_id> tokens;
    auto pass = make_ragged_pass(examples, tokens, who);
    const std::size_t P = pass.out_rows.size(), V = config_.vocab_size;
    pass.keep = true;
    auto logits = matrix_type::from_shape({P, V});
    pass.logits = logits.data();
    auto ws = pool_->acquire();
    detail::gpt2_pass_buffers<S> buffers;
    run_forward(*ws, buffers, pass);

    const double batch_weight = 1.0 / static_cast<double>(examples.size());
    std::size_t k = 0;
    for (const auto& example : examples) {
      std::size_t scored = 0;
      for (auto l : example.labels) scored += l != training_example::ignore_label ? 1 : 0;
      const double w = batch_weight / static_cast<double>(scored);
      for (auto label : example.labels) {
        if (label == training_example::ignore_label) continue;
        auto z = detail::gpt2_row<S>(logits.data() + k * V, ix(V)).array();
        const S mx = z.maxCoeff();
        const S lse = mx + log((z - mx).exp().sum());
        z = (z - lse).exp();  // p, with tangent (diag(p) - p p^T) J v
        for (std::size_t j = 0; j < V; ++j) {
          S& zj = z(ix(j));
          zj = gauss_newton ? S(w * zj.tangent) : S(w * zj.value, w * zj.tangent);
        }
        if (!gauss_newton) z(label).value -= w;
        ++k;
      }
    }
    std::vector<S, Eigen::aligned_allocator<S>> gradient(parameters_.size(), S(0));
    backward_type req;
    req.d_logits = logits.data();
    req.d_parameters = gradient.data();
    run_backward(*ws, buffers, pass, req);
    std::vector<double> out(gradient.size());
    for (std::size_t i = 0; i < out.size(); ++i) out[i] = gauss_newton ? gradient[i].value : gradient[i].tangent;
    return out;
  }
}

static_assert(concepts::has_hessian_vector_product<gpt2> && concepts::has_gauss_newton_vector_product<gpt2>);
static_assert(check_kfac_model<gpt2>() && check_intervention_model<gpt2>() && check_attention_gradient_model<gpt2>() &&
              check_differentiable_model<gpt2>());
static_assert(concepts::has_prefix_cache<gpt2> && concepts::has_embeddings_prefix_cache<gpt2>);
static_assert(concepts::has_logits_at<gpt2> && concepts::has_logits_batch<gpt2> &&
              concepts::has_logits_from_embeddings_batch<gpt2> && concepts::has_embedding_gradient_batch<gpt2> &&
              concepts::has_pad_token<gpt2> && is_thread_safe<gpt2>());

}  // namespace glassbox::models

#include "glassbox/models/detail/gpt2_io.hpp"

// With GLASSBOX_EXTERN_GPT2 defined, a translation unit uses basic_gpt2<float> and <double> without
// compiling their members: one other translation unit of the program must instantiate them
// (`template class glassbox::models::basic_gpt2<float>;`, the same for double), which halves the
// compile time of every other one that uses the model (docs/building.md, "Compile-time advice").
#ifdef GLASSBOX_EXTERN_GPT2
extern template class glassbox::models::basic_gpt2<float>;
extern template class glassbox::models::basic_gpt2<double>;
#endif

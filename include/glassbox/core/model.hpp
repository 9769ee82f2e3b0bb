// glassbox: the model concept ladder. An adapter implements as many rungs as its runtime
// allows; each algorithm asks for the weakest rung it needs. docs/concepts.md has the whole
// contract with an example adapter.
//
// Members an adapter provides, by rung (all const, on `const M& m`):
//
//   Model                   tensor2 logits(token_span) const                       [rows, V]
//                           std::size_t vocab_size() const
//   EmbeddingModel          tensor2 embed(token_span) const                        [T, d]
//                           tensor2 logits_from_embeddings(const tensor2&) const   [rows, V]
//   DifferentiableModel     value_and_gradient<tensor2>
//                             embedding_gradient(const tensor2& embeddings, const output_seed&) const
//   AttentionModel          tensor4 attentions(token_span) const                   [L, H, T, T]
//   AttentionGradientModel  attention_gradient_result attention_gradient(token_span, const output_seed&) const
//                           value_and_gradient<tensor2>
//                             head_mask_gradient(token_span, const tensor2& mask, const output_seed&) const
//                           tensor2 logits_with_head_mask(token_span, const tensor2& mask) const
//   ActivationModel         tensor3 hidden_states(token_span) const                [L + 1, T, d]
//   InterventionModel       tensor2 logits_from_hidden(token_span, std::size_t layer, const tensor2& h) const
//                           value_and_gradient<tensor2>
//                             hidden_gradient(token_span, std::size_t layer, const tensor2& h, const output_seed&) const
//   TrainableModel          std::size_t parameter_count() const
//                           std::span<const float> parameters() const
//                           void set_parameters(std::span<const float>)            (non-const)
//                           double loss(const training_example&) const
//                           value_and_gradient<tensor1> loss_gradient(const training_example&) const
//   KfacModel               std::vector<linear_layer_statistics> kfac_statistics(const training_example&) const
//   ComponentModel          component_layout layout() const                        (an InterventionModel with:)
//                           component_cache run_with_cache(token_span) const      every head, MLP and neuron
//                           tensor2 logits_with_patches(token_span, std::span<const component_patch>,
//                                                       std::span<const std::size_t> rows) const   [rows, V]; rows empty = all
//                           component_gradient_result component_gradients(token_span, const output_seed&) const
//                           logit_directions unembedding_directions(std::span<const token_id>) const
//                           tensor2 neuron_output_weights(std::size_t layer) const  [f, d]
//
// Optional members, used when present (see docs/concepts.md):
//   std::size_t output_rows(std::size_t T) const             rows of output for T tokens (T, or 1 for a classifier)
//   tensor2 logits_at(token_span, std::span<const std::size_t> rows) const        only those rows
//   tensor3 logits_batch(const token_matrix&, std::span<const std::size_t> rows) const   [B, P, V]; rows empty = all
//   tensor3 logits_from_embeddings_batch(const tensor3&, std::span<const std::size_t> rows) const
//   batch_gradient_result embedding_gradient_batch(const tensor3& embeddings, const output_seed&) const
//   std::optional<token_id> pad_token() const                the default "absent token" for perturbations
//   tensor2 decode_hidden(const tensor2& h) const            [R, V]: R residual vectors through the final norm
//                                                            and the unembedding, row by row (logit lens)
//   tensor2 logits_from_hidden_at(token_span, std::size_t layer, const tensor2& h, std::span<const std::size_t> rows) const
//                                                            logits_from_hidden for those rows only (patching sweeps)
//   Cache prefix_cache(token_span) const                     causal prefix reuse (any Cache type): the state
//   tensor3 logits_batch_from_prefix(const Cache&, const token_matrix& batch,   after a sequence, and [B, P, V] logits
//                                    std::span<const std::size_t> starts,      of sequences that equal it before
//                                    std::span<const std::size_t> rows) const  starts[b], computing only the rest
//   Cache prefix_cache_from_embeddings(const tensor2&) const, tensor3 logits_from_embeddings_batch_from_prefix(
//       const Cache&, const tensor3& batch, starts, rows) const             the same from input embeddings
//   static constexpr bool thread_safe = true;                the library may call the model from several threads
//   tensor1 hessian_vector_product(std::span<const training_example>, std::span<const float> v) const
//                                                            H v, H the exact Hessian of the mean loss over the examples
//   tensor1 gauss_newton_vector_product(std::span<const training_example>, std::span<const float> v) const
//                                                            G v, G = mean over examples of (1/R) sum_r J_r^T (diag p - p p^T) J_r
#pragma once

#include <concepts>
#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "glassbox/core/components.hpp"
#include "glassbox/core/target.hpp"
#include "glassbox/core/types.hpp"

namespace glassbox {

/// The value of a scalar and its gradient w.r.t. one input tensor.
template <class Tensor>
struct value_and_gradient {
  double value = 0;  ///< the scalar
  Tensor gradient;   ///< d scalar / d input, the input's shape
};

/// Values and gradients of one scalar at a batch of inputs (gradients stacked on axis 0), in a
/// model's precision `Scalar` (float for the concepts: batch_gradient_result).
template <class Scalar>
struct basic_batch_gradient_result {
  std::vector<double> values;         ///< one per input
  xt::xtensor<Scalar, 3> gradients;   ///< [B, T, d]
};
/// Values and gradients of one scalar at a batch of inputs, in float.
using batch_gradient_result = basic_batch_gradient_result<float>;

/// The attention probabilities of one forward pass and the gradient of a scalar w.r.t. them, in a
/// model's precision `Scalar` (float for the concepts: attention_gradient_result).
template <class Scalar>
struct basic_attention_gradient_result {
  double value = 0;                   ///< the scalar
  xt::xtensor<Scalar, 4> attentions;  ///< [L, H, T, T], softmax outputs
  xt::xtensor<Scalar, 4> gradient;    ///< d scalar / d attentions, [L, H, T, T]
};
/// The attention probabilities and the gradient of a scalar w.r.t. them, in float.
using attention_gradient_result = basic_attention_gradient_result<float>;

/// One training example of a language model: its tokens and, per output row, the token that row
/// should predict, or `ignore_label`. The loss is the mean cross-entropy over scored rows.
struct training_example {
  static constexpr token_id ignore_label = -100;  ///< a row that is not scored (as PyTorch's ignore_index)

  token_sequence tokens;         ///< the input
  std::vector<token_id> labels;  ///< one per output row

  /// Next-token prediction over the whole sequence: row i predicts tokens[i + 1]; the last row is not scored.
  template <class = void>
  static training_example next_token(token_sequence tokens) {
    std::vector<token_id> labels(tokens.size(), ignore_label);
    for (std::size_t i = 0; i + 1 < tokens.size(); ++i) labels[i] = tokens[i + 1];
    return {std::move(tokens), std::move(labels)};
  }
  /// Classification by next-token prediction: only the last row is scored, against `label`.
  template <class = void>
  static training_example classification(token_sequence tokens, token_id label) {
    std::vector<token_id> labels(tokens.size(), ignore_label);
    if (!labels.empty()) labels.back() = label;
    return {std::move(tokens), std::move(labels)};
  }
};

/// The statistics K-FAC needs from one linear layer y = x W + b for one example, in a model's
/// precision `Scalar` (float for the concepts: linear_layer_statistics).
template <class Scalar>
struct basic_linear_layer_statistics {
  std::string name;                         ///< e.g. "h.0.attn.c_attn"
  xt::xtensor<Scalar, 2> inputs;            ///< x for every row (token) of the example, [n, d_in]
  xt::xtensor<Scalar, 2> output_gradients;  ///< d loss / d y for every row, [n, d_out]
  std::size_t weight_offset = 0;            ///< where W starts in the flat parameters
  std::size_t bias_offset = 0;              ///< where b starts in the flat parameters
  bool has_bias = true;                     ///< whether b exists (bias_offset is meaningful)
  bool input_major = true;                  ///< W stored [d_in, d_out] row-major (GPT-2's Conv1D); else [d_out, d_in]
};
/// The statistics K-FAC needs from one linear layer, in float.
using linear_layer_statistics = basic_linear_layer_statistics<float>;

/// The pieces of the concepts, one member each, so that a compiler names the missing one.
namespace concepts {

template <class M>
concept has_logits = requires(const M& m, token_span t) {
  { m.logits(t) } -> std::convertible_to<tensor2>;
};
template <class M>
concept has_vocab_size = requires(const M& m) {
  { m.vocab_size() } -> std::convertible_to<std::size_t>;
};
template <class M>
concept has_embed = requires(const M& m, token_span t) {
  { m.embed(t) } -> std::convertible_to<tensor2>;
};
template <class M>
concept has_logits_from_embeddings = requires(const M& m, const tensor2& e) {
  { m.logits_from_embeddings(e) } -> std::convertible_to<tensor2>;
};
template <class M>
concept has_embedding_gradient = requires(const M& m, const tensor2& e, const output_seed& s) {
  { m.embedding_gradient(e, s) } -> std::convertible_to<value_and_gradient<tensor2>>;
};
template <class M>
concept has_attentions = requires(const M& m, token_span t) {
  { m.attentions(t) } -> std::convertible_to<tensor4>;
};
template <class M>
concept has_attention_gradient = requires(const M& m, token_span t, const output_seed& s) {
  { m.attention_gradient(t, s) } -> std::convertible_to<attention_gradient_result>;
};
template <class M>
concept has_head_mask_gradient = requires(const M& m, token_span t, const tensor2& mask, const output_seed& s) {
  { m.head_mask_gradient(t, mask, s) } -> std::convertible_to<value_and_gradient<tensor2>>;
};
template <class M>
concept has_logits_with_head_mask = requires(const M& m, token_span t, const tensor2& mask) {
  { m.logits_with_head_mask(t, mask) } -> std::convertible_to<tensor2>;
};
template <class M>
concept has_hidden_states = requires(const M& m, token_span t) {
  { m.hidden_states(t) } -> std::convertible_to<tensor3>;
};
template <class M>
concept has_logits_from_hidden = requires(const M& m, token_span t, std::size_t layer, const tensor2& h) {
  { m.logits_from_hidden(t, layer, h) } -> std::convertible_to<tensor2>;
};
template <class M>
concept has_hidden_gradient =
    requires(const M& m, token_span t, std::size_t layer, const tensor2& h, const output_seed& s) {
      { m.hidden_gradient(t, layer, h, s) } -> std::convertible_to<value_and_gradient<tensor2>>;
    };
template <class M>
concept has_parameter_count = requires(const M& m) {
  { m.parameter_count() } -> std::convertible_to<std::size_t>;
};
template <class M>
concept has_parameters = requires(const M& m) {
  { m.parameters() } -> std::convertible_to<std::span<const float>>;
};
template <class M>
concept has_set_parameters = requires(M& m, std::span<const float> p) { m.set_parameters(p); };
template <class M>
concept has_loss = requires(const M& m, const training_example& e) {
  { m.loss(e) } -> std::convertible_to<double>;
};
template <class M>
concept has_loss_gradient = requires(const M& m, const training_example& e) {
  { m.loss_gradient(e) } -> std::convertible_to<value_and_gradient<tensor1>>;
};
template <class M>
concept has_kfac_statistics = requires(const M& m, const training_example& e) {
  { m.kfac_statistics(e) } -> std::convertible_to<std::vector<linear_layer_statistics>>;
};

template <class M>
concept has_layout = requires(const M& m) {
  { m.layout() } -> std::convertible_to<component_layout>;
};
template <class M>
concept has_run_with_cache = requires(const M& m, token_span t) {
  { m.run_with_cache(t) } -> std::convertible_to<component_cache>;
};
template <class M>
concept has_logits_with_patches =
    requires(const M& m, token_span t, std::span<const component_patch> p, std::span<const std::size_t> r) {
      { m.logits_with_patches(t, p, r) } -> std::convertible_to<tensor2>;
    };
template <class M>
concept has_component_gradients = requires(const M& m, token_span t, const output_seed& s) {
  { m.component_gradients(t, s) } -> std::convertible_to<component_gradient_result>;
};
template <class M>
concept has_unembedding_directions = requires(const M& m, std::span<const token_id> k) {
  { m.unembedding_directions(k) } -> std::convertible_to<logit_directions>;
};
template <class M>
concept has_neuron_output_weights = requires(const M& m, std::size_t layer) {
  { m.neuron_output_weights(layer) } -> std::convertible_to<tensor2>;
};

// Optional abilities, tested with if constexpr.
template <class M>
concept has_output_rows = requires(const M& m, std::size_t n) {
  { m.output_rows(n) } -> std::convertible_to<std::size_t>;
};
template <class M>
concept has_logits_at = has_output_rows<M> && requires(const M& m, token_span t, std::span<const std::size_t> r) {
  { m.logits_at(t, r) } -> std::convertible_to<tensor2>;
};
template <class M>
concept has_logits_batch = requires(const M& m, const token_matrix& b, std::span<const std::size_t> r) {
  { m.logits_batch(b, r) } -> std::convertible_to<tensor3>;
};
template <class M>
concept has_logits_from_embeddings_batch = requires(const M& m, const tensor3& e, std::span<const std::size_t> r) {
  { m.logits_from_embeddings_batch(e, r) } -> std::convertible_to<tensor3>;
};
template <class M>
concept has_embedding_gradient_batch = requires(const M& m, const tensor3& e, const output_seed& s) {
  { m.embedding_gradient_batch(e, s) } -> std::convertible_to<batch_gradient_result>;
};
template <class M>
concept has_decode_hidden = requires(const M& m, const tensor2& h) {
  { m.decode_hidden(h) } -> std::convertible_to<tensor2>;
};
template <class M>
concept has_pad_token = requires(const M& m) {
  { m.pad_token() } -> std::convertible_to<std::optional<token_id>>;
};
template <class M>
concept has_prefix_cache =
    requires(const M& m, token_span t, const token_matrix& b, std::span<const std::size_t> s) {
      m.prefix_cache(t);
      { m.logits_batch_from_prefix(m.prefix_cache(t), b, s, s) } -> std::convertible_to<tensor3>;
    };
template <class M>
concept has_embeddings_prefix_cache =
    requires(const M& m, const tensor2& e, const tensor3& b, std::span<const std::size_t> s) {
      m.prefix_cache_from_embeddings(e);
      { m.logits_from_embeddings_batch_from_prefix(m.prefix_cache_from_embeddings(e), b, s, s) }
          -> std::convertible_to<tensor3>;
    };
template <class M>
concept has_hessian_vector_product =
    requires(const M& m, std::span<const training_example> e, std::span<const float> v) {
      { m.hessian_vector_product(e, v) } -> std::convertible_to<tensor1>;
    };
template <class M>
concept has_gauss_newton_vector_product =
    requires(const M& m, std::span<const training_example> e, std::span<const float> v) {
      { m.gauss_newton_vector_product(e, v) } -> std::convertible_to<tensor1>;
    };

}  // namespace concepts

/// A model that maps tokens to logits: serves perturbation attribution and metrics.
template <class M>
concept Model = concepts::has_logits<M> && concepts::has_vocab_size<M>;

/// A Model whose input embeddings can be read and replaced: serves embedding-space baselines.
template <class M>
concept EmbeddingModel = Model<M> && concepts::has_embed<M> && concepts::has_logits_from_embeddings<M>;

/// An EmbeddingModel with one forward + backward to the input embeddings: serves gradient methods.
template <class M>
concept DifferentiableModel = EmbeddingModel<M> && concepts::has_embedding_gradient<M>;

/// A Model that reports its attention probabilities: serves rollout, flow, head statistics.
template <class M>
concept AttentionModel = Model<M> && concepts::has_attentions<M>;

/// An AttentionModel with gradients w.r.t. attention and a head mask: serves AttGrad, head importance.
template <class M>
concept AttentionGradientModel = AttentionModel<M> && concepts::has_attention_gradient<M> &&
                                 concepts::has_head_mask_gradient<M> && concepts::has_logits_with_head_mask<M>;

/// A Model that reports its residual stream: serves probing, logit lens, SAEs.
template <class M>
concept ActivationModel = Model<M> && concepts::has_hidden_states<M>;

/// An ActivationModel that runs on from an edited residual stream, with the gradient through it:
/// serves activation patching, steering, layer attribution, concept directional derivatives.
template <class M>
concept InterventionModel =
    ActivationModel<M> && concepts::has_logits_from_hidden<M> && concepts::has_hidden_gradient<M>;

/// A Model with flat parameters, per-example loss and its gradient: serves influence and training.
template <class M>
concept TrainableModel = Model<M> && concepts::has_parameter_count<M> && concepts::has_parameters<M> &&
                         concepts::has_set_parameters<M> && concepts::has_loss<M> && concepts::has_loss_gradient<M>;

/// A TrainableModel that reports per-linear-layer activations and output gradients: serves K-FAC / EK-FAC.
template <class M>
concept KfacModel = TrainableModel<M> && concepts::has_kfac_statistics<M>;

/// An InterventionModel whose heads, MLPs and neurons can be read, patched and differentiated one by
/// one: serves activation, attribution and path patching, direct logit attribution, neuron analysis.
template <class M>
concept ComponentModel = InterventionModel<M> && concepts::has_layout<M> && concepts::has_run_with_cache<M> &&
                         concepts::has_logits_with_patches<M> && concepts::has_component_gradients<M> &&
                         concepts::has_unembedding_directions<M> && concepts::has_neuron_output_weights<M>;

/// Whether the adapter declares that its const members may be called from several threads at once.
template <class M>
constexpr bool is_thread_safe() {
  if constexpr (requires { M::thread_safe; }) {
    return static_cast<bool>(M::thread_safe);
  } else {
    return false;
  }
}

// One consteval check per rung: `static_assert(glassbox::check_model<my_model>());` beside an
// adapter lists, in plain words, every member it is missing. Algorithms call the check of the
// rung they need first, so a call with too weak a model fails with the same sentences.

/// Checks the Model rung; every missing member is named in a static_assert.
template <class M>
consteval bool check_model() {
  static_assert(concepts::has_logits<M>,
                "glassbox::Model: missing `tensor2 logits(token_span) const` - see docs/concepts.md");
  static_assert(concepts::has_vocab_size<M>,
                "glassbox::Model: missing `std::size_t vocab_size() const` - see docs/concepts.md");
  return Model<M>;
}

/// Checks the EmbeddingModel rung and those below it.
template <class M>
consteval bool check_embedding_model() {
  check_model<M>();
  static_assert(concepts::has_embed<M>,
                "glassbox::EmbeddingModel: missing `tensor2 embed(token_span) const` - see docs/concepts.md");
  static_assert(concepts::has_logits_from_embeddings<M>,
                "glassbox::EmbeddingModel: missing `tensor2 logits_from_embeddings(const tensor2&) const` - see "
                "docs/concepts.md");
  return EmbeddingModel<M>;
}

/// Checks the DifferentiableModel rung and those below it.
template <class M>
consteval bool check_differentiable_model() {
  check_embedding_model<M>();
  static_assert(concepts::has_embedding_gradient<M>,
                "glassbox::DifferentiableModel: missing `value_and_gradient<tensor2> embedding_gradient(const "
                "tensor2&, const output_seed&) const` - see docs/concepts.md");
  return DifferentiableModel<M>;
}

/// Checks the AttentionModel rung and those below it.
template <class M>
consteval bool check_attention_model() {
  check_model<M>();
  static_assert(concepts::has_attentions<M>,
                "glassbox::AttentionModel: missing `tensor4 attentions(token_span) const` - see docs/concepts.md");
  return AttentionModel<M>;
}

/// Checks the AttentionGradientModel rung and those below it.
template <class M>
consteval bool check_attention_gradient_model() {
  check_attention_model<M>();
  static_assert(concepts::has_attention_gradient<M>,
                "glassbox::AttentionGradientModel: missing `attention_gradient_result attention_gradient(token_span, "
                "const output_seed&) const` - see docs/concepts.md");
  static_assert(concepts::has_head_mask_gradient<M>,
                "glassbox::AttentionGradientModel: missing `value_and_gradient<tensor2> head_mask_gradient(token_span, "
                "const tensor2&, const output_seed&) const` - see docs/concepts.md");
  static_assert(concepts::has_logits_with_head_mask<M>,
                "glassbox::AttentionGradientModel: missing `tensor2 logits_with_head_mask(token_span, const tensor2&) "
                "const` - see docs/concepts.md");
  return AttentionGradientModel<M>;
}

/// Checks the ActivationModel rung and those below it.
template <class M>
consteval bool check_activation_model() {
  check_model<M>();
  static_assert(concepts::has_hidden_states<M>,
                "glassbox::ActivationModel: missing `tensor3 hidden_states(token_span) const` - see docs/concepts.md");
  return ActivationModel<M>;
}

/// Checks the InterventionModel rung and those below it.
template <class M>
consteval bool check_intervention_model() {
  check_activation_model<M>();
  static_assert(concepts::has_logits_from_hidden<M>,
                "glassbox::InterventionModel: missing `tensor2 logits_from_hidden(token_span, std::size_t, const "
                "tensor2&) const` - see docs/concepts.md");
  static_assert(concepts::has_hidden_gradient<M>,
                "glassbox::InterventionModel: missing `value_and_gradient<tensor2> hidden_gradient(token_span, "
                "std::size_t, const tensor2&, const output_seed&) const` - see docs/concepts.md");
  return InterventionModel<M>;
}

/// Checks the ComponentModel rung and those below it.
template <class M>
consteval bool check_component_model() {
  check_intervention_model<M>();
  static_assert(concepts::has_layout<M>,
                "glassbox::ComponentModel: missing `component_layout layout() const` - see docs/concepts.md");
  static_assert(concepts::has_run_with_cache<M>,
                "glassbox::ComponentModel: missing `component_cache run_with_cache(token_span) const` - see "
                "docs/concepts.md");
  static_assert(concepts::has_logits_with_patches<M>,
                "glassbox::ComponentModel: missing `tensor2 logits_with_patches(token_span, std::span<const "
                "component_patch>, std::span<const std::size_t>) const` - see docs/concepts.md");
  static_assert(concepts::has_component_gradients<M>,
                "glassbox::ComponentModel: missing `component_gradient_result component_gradients(token_span, const "
                "output_seed&) const` - see docs/concepts.md");
  static_assert(concepts::has_unembedding_directions<M>,
                "glassbox::ComponentModel: missing `logit_directions unembedding_directions(std::span<const "
                "token_id>) const` - see docs/concepts.md");
  static_assert(concepts::has_neuron_output_weights<M>,
                "glassbox::ComponentModel: missing `tensor2 neuron_output_weights(std::size_t) const` - see "
                "docs/concepts.md");
  return ComponentModel<M>;
}

/// Checks the TrainableModel rung and those below it.
template <class M>
consteval bool check_trainable_model() {
  check_model<M>();
  static_assert(concepts::has_parameter_count<M>,
                "glassbox::TrainableModel: missing `std::size_t parameter_count() const` - see docs/concepts.md");
  static_assert(concepts::has_parameters<M>,
                "glassbox::TrainableModel: missing `std::span<const float> parameters() const` - see docs/concepts.md");
  static_assert(concepts::has_set_parameters<M>,
                "glassbox::TrainableModel: missing `void set_parameters(std::span<const float>)` - see "
                "docs/concepts.md");
  static_assert(concepts::has_loss<M>,
                "glassbox::TrainableModel: missing `double loss(const training_example&) const` - see "
                "docs/concepts.md");
  static_assert(concepts::has_loss_gradient<M>,
                "glassbox::TrainableModel: missing `value_and_gradient<tensor1> loss_gradient(const "
                "training_example&) const` - see docs/concepts.md");
  return TrainableModel<M>;
}

/// Checks the KfacModel rung and those below it.
template <class M>
consteval bool check_kfac_model() {
  check_trainable_model<M>();
  static_assert(concepts::has_kfac_statistics<M>,
                "glassbox::KfacModel: missing `std::vector<linear_layer_statistics> kfac_statistics(const "
                "training_example&) const` - see docs/concepts.md");
  return KfacModel<M>;
}

}  // namespace glassbox

// glassbox: the libtorch adapter. Explains a TorchScript transformer (a torch::jit::Module saved from
// Python with torch.jit.script or torch.jit.trace) with the whole library, on the CPU, in float32 or
// float64. Optional: it needs libtorch (Debian: libtorch-dev) and is not included by glassbox.hpp.
//
// The module's contract (docs/adapters.md has it with a worked example, examples/libtorch/ a
// script that exports the bundled GPT-2 in this form):
//
//   embed(ids: Tensor[B, T] int64) -> Tensor[B, T, d]                 input embeddings of the tokens
//   forward(embeddings: Tensor[B, T, d], head_mask: Optional[Tensor[L, H]] = None)
//       -> Tuple[Tensor logits [B, T, V],
//                List[Tensor] attentions: L x [B, H, T, T], the softmax outputs the blocks use
//                             (a head mask multiplies them afterwards),
//                List[Tensor] hidden: L + 1 x [B, T, d], the residual stream (0 = the blocks' input)]
//   from_hidden(h: Tensor[B, T, d], layer: int) -> Tensor[B, T, V]    optional: run on from hidden[layer] = h
//   n_positions: int, pad_token_id: int                                optional attributes (-1 = none)
//
// With it, basic_libtorch_model<float> is a Model, EmbeddingModel, DifferentiableModel (gradients by
// autograd, one backward per batch of inputs), AttentionModel, AttentionGradientModel,
// ActivationModel, InterventionModel (when the module has from_hidden) and TrainableModel (the
// module's parameters, moved into one flat buffer they all view). It is not a KfacModel or a
// ComponentModel: libtorch's C++ API cannot hook a scripted module's layers, so the per-layer inputs
// and output gradients K-FAC needs, and the per-head outputs of circuits, are not reachable
// (docs/adapters.md). basic_libtorch_model<double> is the same in float64, for the conformance kit.
//
// Example:
//   auto model = glassbox::adapters::libtorch_model::load("reviews.pt");
//   auto ig = glassbox::integrated_gradients(model, tokens, glassbox::target::logit(label));
#pragma once

#include <ATen/Parallel.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/script.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "glassbox/core/error.hpp"
#include "glassbox/core/model.hpp"
#include "glassbox/core/target.hpp"
#include "glassbox/core/types.hpp"

namespace glassbox::adapters {

/// Options of the libtorch adapter.
struct libtorch_options {
  std::optional<std::size_t> max_positions{};  ///< longest input; unset: the module's `n_positions`, else unbounded
  std::optional<token_id> pad_token{};         ///< the "absent token"; unset: the module's `pad_token_id` if >= 0
  std::optional<int> threads{};                ///< libtorch's intra-op threads (at::set_num_threads); unset: as is
};

}  // namespace glassbox::adapters

namespace glassbox::detail::libtorch {

template <class S>
inline constexpr c10::ScalarType dtype_of = std::is_same_v<S, float> ? c10::ScalarType::Float : c10::ScalarType::Double;

/// A shape as libtorch takes it.
template <class Shape>
std::vector<std::int64_t> sizes_of(const Shape& shape) {
  return std::vector<std::int64_t>(shape.begin(), shape.end());
}

/// A tensor's shape as text, e.g. "[1, 4, 224]".
inline std::string shape_text(const at::Tensor& t) {
  std::string s = "[";
  for (std::int64_t i = 0; i < t.dim(); ++i) s += (i != 0 ? ", " : "") + std::to_string(t.size(i));
  return s + "]";
}

/// A view of an xtensor's memory as a libtorch tensor (no copy; the xtensor must outlive it, and
/// nothing writes through the view: autograd never writes to a leaf it differentiates).
template <class S, std::size_t N>
at::Tensor view(const xt::xtensor<S, N>& x) {
  return torch::from_blob(const_cast<S*>(x.data()), sizes_of(x.shape()), torch::TensorOptions().dtype(dtype_of<S>));
}

/// A copy of a libtorch tensor of N dimensions into an xtensor.
template <class S, std::size_t N>
xt::xtensor<S, N> copy_out(const at::Tensor& t) {
  const at::Tensor c = t.detach().to(dtype_of<S>).contiguous();
  std::array<std::size_t, N> shape{};
  for (std::size_t i = 0; i < N; ++i) shape[i] = static_cast<std::size_t>(c.size(static_cast<std::int64_t>(i)));
  auto out = xt::xtensor<S, N>::from_shape(shape);
  if (out.size() != 0) std::memcpy(out.data(), c.data_ptr<S>(), out.size() * sizeof(S));
  return out;
}

/// Token ids [B, T] as the int64 tensor embedding layers take (the one copy: int32 -> int64).
inline at::Tensor ids_tensor(const token_id* ids, std::int64_t b, std::int64_t t) {
  return torch::from_blob(const_cast<token_id*>(ids), {b, t}, torch::TensorOptions().dtype(torch::kInt32))
      .to(torch::kInt64);
}

/// Row indices as an int64 tensor.
inline at::Tensor index_tensor(std::span<const std::size_t> rows) {
  std::vector<std::int64_t> r(rows.begin(), rows.end());
  return torch::tensor(r, torch::TensorOptions().dtype(torch::kInt64));
}

}  // namespace glassbox::detail::libtorch

namespace glassbox::adapters {

/// A TorchScript transformer as a glassbox model, in precision Scalar (float or double). See the
/// module contract at the top of this header and docs/adapters.md.
template <class Scalar>
class basic_libtorch_model {
  static_assert(std::is_same_v<Scalar, float> || std::is_same_v<Scalar, double>,
                "glassbox::adapters::basic_libtorch_model: Scalar must be float or double");

 public:
  using scalar_type = Scalar;                                   ///< precision of inputs, outputs and parameters
  using vector_type = xt::xtensor<Scalar, 1>;                   ///< flat parameters and their gradient
  using matrix_type = xt::xtensor<Scalar, 2>;                   ///< [T, d] or [rows, V]
  using tensor3_type = xt::xtensor<Scalar, 3>;                  ///< [L + 1, T, d] or [B, T, d]
  using tensor4_type = xt::xtensor<Scalar, 4>;                  ///< [L, H, T, T]
  using seed_type = basic_output_seed<Scalar>;                  ///< a seed in the model's precision
  using attention_gradient_type = basic_attention_gradient_result<Scalar>;  ///< attention_gradient_result for float
  using batch_gradient_type = basic_batch_gradient_result<Scalar>;          ///< batch_gradient_result for float

  /// Adapts a loaded module: checks the contract, moves it to Scalar's dtype on the CPU, learns
  /// L, H, d and V from one forward pass of one token, and gathers the parameters into one buffer.
  explicit basic_libtorch_model(torch::jit::Module module, libtorch_options options = {})
      : module_(std::move(module)), options_(options) {
    if (options_.threads) {
      detail::require<error>(*options_.threads > 0, "{}: threads must be positive, got {}", name_,
                             *options_.threads);
      at::set_num_threads(*options_.threads);
    }
    detail::require<model_error>(module_.find_method("embed").has_value(),
                                 "{}: the module has no method embed(ids) (docs/adapters.md)", name_);
    detail::require<model_error>(module_.find_method("forward").has_value(),
                                 "{}: the module has no method forward(embeddings, head_mask) (docs/adapters.md)",
                                 name_);
    has_from_hidden_ = module_.find_method("from_hidden").has_value();
    for (const auto& p : module_.parameters()) {
      detail::require<model_error>(p.device().is_cpu(), "{}: parameters must be on the CPU, one is on {}", name_,
                                   p.device().str());
      detail::require<model_error>(
          p.scalar_type() == c10::ScalarType::Float || p.scalar_type() == c10::ScalarType::Double,
          "{}: parameters must be float32 or float64, one is {} (convert the module, e.g. module.float(), before "
          "saving it)",
          name_, std::string(c10::toString(p.scalar_type())));
    }
    module_.eval();
    module_.to(detail::libtorch::dtype_of<Scalar>);
    read_attributes();
    probe();
    flatten_parameters();
  }

  /// A copy with its own parameters (a clone of the module): set_parameters on one leaves the other as it was.
  basic_libtorch_model(const basic_libtorch_model& other)
      : module_(other.module_.clone()),
        options_(other.options_),
        vocab_(other.vocab_),
        layers_(other.layers_),
        heads_(other.heads_),
        width_(other.width_),
        max_positions_(other.max_positions_),
        pad_(other.pad_),
        has_from_hidden_(other.has_from_hidden_) {
    // Module::clone and ::deepcopy map tensors that share a storage to one copy, and every parameter
    // views the flat buffer: each parameter slot of the clone gets its own copy of the original's.
    torch::NoGradGuard no_grad;
    for (const auto& p : other.module_.named_parameters()) {
      torch::jit::Module owner = module_;
      std::string_view rest = p.name;
      for (auto dot = rest.find('.'); dot != std::string_view::npos; dot = rest.find('.')) {
        owner = owner.attr(std::string(rest.substr(0, dot))).toModule();
        rest.remove_prefix(dot + 1);
      }
      owner.setattr(std::string(rest), p.value.detach().clone());
    }
    flatten_parameters();
  }
  /// Replaces this model by a deep copy of another.
  basic_libtorch_model& operator=(const basic_libtorch_model& other) {
    if (this != &other) *this = basic_libtorch_model(other);
    return *this;
  }
  /// Moves the module (no copy).
  basic_libtorch_model(basic_libtorch_model&&) noexcept = default;
  /// Moves the module (no copy).
  basic_libtorch_model& operator=(basic_libtorch_model&&) noexcept = default;
  ~basic_libtorch_model() = default;

  /// Loads a TorchScript file (torch.jit.save) on the CPU and adapts it.
  static basic_libtorch_model load(const std::filesystem::path& file, libtorch_options options = {}) {
    detail::require<io_error>(std::filesystem::is_regular_file(file), "{}::load: no file {}", name_, file.string());
    torch::jit::Module m;
    try {
      m = torch::jit::load(file.string(), torch::kCPU);
    } catch (const c10::Error& e) {
      throw io_error(fmt::format("{}::load: {} is not a TorchScript file libtorch can load: {}", name_, file.string(),
                                 e.what_without_backtrace()));
    }
    return basic_libtorch_model(std::move(m), options);
  }

  /// The adapted module (parameters in Scalar's dtype, viewing parameters()).
  const torch::jit::Module& module() const { return module_; }
  /// Vocabulary size V.
  std::size_t vocab_size() const { return vocab_; }
  /// Number of blocks L.
  std::size_t n_layer() const { return layers_; }
  /// Heads per block H.
  std::size_t n_head() const { return heads_; }
  /// Width of the embeddings d.
  std::size_t embedding_size() const { return width_; }
  /// Longest input accepted (options, else the module's n_positions, else no bound: SIZE_MAX).
  std::size_t max_positions() const { return max_positions_; }
  /// Whether the module has from_hidden (the InterventionModel members need it).
  bool has_from_hidden() const { return has_from_hidden_; }
  /// Rows of output for T tokens: one per token.
  std::size_t output_rows(std::size_t tokens) const { return tokens; }
  /// The token perturbations use as "absent", if the module or the options name one.
  std::optional<token_id> pad_token() const { return pad_; }

  // ---- Model ----------------------------------------------------------------------------------

  /// Logits [T, V].
  matrix_type logits(token_span tokens) const { return logits_at(tokens, {}); }
  /// Logits of the chosen rows [rows, V] (empty rows = all).
  matrix_type logits_at(token_span tokens, std::span<const std::size_t> rows) const {
    check_tokens(tokens, "logits");
    c10::InferenceMode guard;
    return first(run_logits(embed_ids(tokens.data(), 1, tokens.size(), "logits"), rows, "logits"));
  }
  /// Logits [B, P, V] of a batch of equal-length sequences [B, T] at `rows` (empty = all), in one pass.
  tensor3_type logits_batch(const token_matrix& batch, std::span<const std::size_t> rows) const {
    for (std::size_t b = 0; b < batch.shape(0); ++b)
      check_tokens(token_span(batch.data() + b * batch.shape(1), batch.shape(1)), "logits_batch");
    c10::InferenceMode guard;
    return detail::libtorch::copy_out<Scalar, 3>(
        run_logits(embed_ids(batch.data(), batch.shape(0), batch.shape(1), "logits_batch"), rows, "logits_batch"));
  }

  // ---- EmbeddingModel -------------------------------------------------------------------------

  /// The module's embed(ids) for one sequence, [T, d].
  matrix_type embed(token_span tokens) const {
    check_tokens(tokens, "embed");
    c10::InferenceMode guard;
    return first(embed_ids(tokens.data(), 1, tokens.size(), "embed"));
  }
  /// Logits [T, V] from input embeddings [T, d].
  matrix_type logits_from_embeddings(const matrix_type& embeddings) const {
    return logits_from_embeddings_at(embeddings, {});
  }
  /// Logits of the chosen rows from input embeddings [T, d] (empty rows = all).
  matrix_type logits_from_embeddings_at(const matrix_type& embeddings, std::span<const std::size_t> rows) const {
    check_embeddings(embeddings.shape(0), embeddings.shape(1), "logits_from_embeddings");
    c10::InferenceMode guard;
    return first(run_logits(detail::libtorch::view(embeddings).unsqueeze(0), rows, "logits_from_embeddings"));
  }
  /// Logits [B, P, V] at `rows` (empty = all) from a batch of input embeddings [B, T, d], in one pass.
  tensor3_type logits_from_embeddings_batch(const tensor3_type& embeddings, std::span<const std::size_t> rows) const {
    check_embeddings(embeddings.shape(1), embeddings.shape(2), "logits_from_embeddings_batch");
    c10::InferenceMode guard;
    return detail::libtorch::copy_out<Scalar, 3>(
        run_logits(detail::libtorch::view(embeddings), rows, "logits_from_embeddings_batch"));
  }

  // ---- DifferentiableModel --------------------------------------------------------------------

  /// The seed's scalar and its gradient w.r.t. the input embeddings [T, d]: one forward, one backward.
  value_and_gradient<matrix_type> embedding_gradient(const matrix_type& embeddings, const output_seed& seed) const {
    return embedding_gradient(embeddings, own_seed(seed));
  }
  /// embedding_gradient with a seed in the model's precision.
  value_and_gradient<matrix_type> embedding_gradient(const matrix_type& embeddings, const seed_type& seed) const {
    check_embeddings(embeddings.shape(0), embeddings.shape(1), "embedding_gradient");
    at::Tensor e = detail::libtorch::view(embeddings).unsqueeze(0).detach().requires_grad_(true);
    auto back = backward_seed(run(e, std::nullopt, "embedding_gradient").logits, seed, {e}, "embedding_gradient");
    return {back.values[0], first(back.gradients[0])};
  }
  /// Values and gradients [B, T, d] for a batch of input embeddings: one forward and one backward
  /// for the whole batch (the inputs do not interact, so the gradient of the sum is each one's).
  batch_gradient_type embedding_gradient_batch(const tensor3_type& embeddings, const output_seed& seed) const {
    return embedding_gradient_batch(embeddings, own_seed(seed));
  }
  /// embedding_gradient_batch with a seed in the model's precision.
  batch_gradient_type embedding_gradient_batch(const tensor3_type& embeddings, const seed_type& seed) const {
    check_embeddings(embeddings.shape(1), embeddings.shape(2), "embedding_gradient_batch");
    at::Tensor e = detail::libtorch::view(embeddings).detach().requires_grad_(true);
    auto back =
        backward_seed(run(e, std::nullopt, "embedding_gradient_batch").logits, seed, {e}, "embedding_gradient_batch");
    return {std::move(back.values), detail::libtorch::copy_out<Scalar, 3>(back.gradients[0])};
  }

  // ---- AttentionModel / AttentionGradientModel ------------------------------------------------

  /// Attention probabilities [L, H, T, T] (the module's softmax outputs).
  tensor4_type attentions(token_span tokens) const {
    check_tokens(tokens, "attentions");
    c10::InferenceMode guard;
    auto out = run(embed_ids(tokens.data(), 1, tokens.size(), "attentions"), std::nullopt, "attentions");
    return stack_first<4>(out.attentions);
  }
  /// The scalar, the attention probabilities and d scalar / d probabilities [L, H, T, T], by autograd.
  attention_gradient_type attention_gradient(token_span tokens, const output_seed& seed) const {
    return attention_gradient(tokens, own_seed(seed));
  }
  /// attention_gradient with a seed in the model's precision.
  attention_gradient_type attention_gradient(token_span tokens, const seed_type& seed) const {
    check_tokens(tokens, "attention_gradient");
    // The embeddings require a gradient so that the attentions are in a graph (the parameters do not).
    at::Tensor e = embed_ids(tokens.data(), 1, tokens.size(), "attention_gradient").detach().requires_grad_(true);
    auto out = run(e, std::nullopt, "attention_gradient");
    auto back = backward_seed(out.logits, seed, out.attentions, "attention_gradient");
    return {back.values[0], stack_first<4>(out.attentions), stack_first<4>(back.gradients)};
  }
  /// The scalar with head mask `mask` [L, H] (multiplying each head's probabilities) and its gradient w.r.t. the mask.
  value_and_gradient<matrix_type> head_mask_gradient(token_span tokens, const matrix_type& mask,
                                                     const output_seed& seed) const {
    return head_mask_gradient(tokens, mask, own_seed(seed));
  }
  /// head_mask_gradient with a seed in the model's precision.
  value_and_gradient<matrix_type> head_mask_gradient(token_span tokens, const matrix_type& mask,
                                                     const seed_type& seed) const {
    check_tokens(tokens, "head_mask_gradient");
    check_mask(mask, "head_mask_gradient");
    at::Tensor m = detail::libtorch::view(mask).detach().requires_grad_(true);
    auto out = run(embed_ids(tokens.data(), 1, tokens.size(), "head_mask_gradient"), m, "head_mask_gradient");
    auto back = backward_seed(out.logits, seed, {m}, "head_mask_gradient");
    return {back.values[0], detail::libtorch::copy_out<Scalar, 2>(back.gradients[0])};
  }
  /// Logits [T, V] with head mask `mask` [L, H] (0 removes a head, 1 keeps it).
  matrix_type logits_with_head_mask(token_span tokens, const matrix_type& mask) const {
    check_tokens(tokens, "logits_with_head_mask");
    check_mask(mask, "logits_with_head_mask");
    c10::InferenceMode guard;
    auto out = run(embed_ids(tokens.data(), 1, tokens.size(), "logits_with_head_mask"),
                   detail::libtorch::view(mask), "logits_with_head_mask");
    return first(out.logits);
  }

  // ---- ActivationModel / InterventionModel ----------------------------------------------------

  /// The residual stream [L + 1, T, d] as the module's forward returns it.
  tensor3_type hidden_states(token_span tokens) const {
    check_tokens(tokens, "hidden_states");
    c10::InferenceMode guard;
    auto out = run(embed_ids(tokens.data(), 1, tokens.size(), "hidden_states"), std::nullopt, "hidden_states");
    return stack_first<3>(out.hidden);
  }
  /// Logits [T, V] when the residual stream at index `layer` (0..L) is replaced by h [T, d] (from_hidden).
  matrix_type logits_from_hidden(token_span tokens, std::size_t layer, const matrix_type& h) const {
    check_tokens(tokens, "logits_from_hidden");
    check_hidden(tokens.size(), layer, h, "logits_from_hidden");
    c10::InferenceMode guard;
    return first(from_hidden(detail::libtorch::view(h).unsqueeze(0), layer, h.shape(0), "logits_from_hidden"));
  }
  /// Logits [R, V] of R residual vectors h [R, d] through what follows the last block, row by row
  /// (the logit lens' decoder: from_hidden at layer L, which mixes no positions).
  matrix_type decode_hidden(const matrix_type& h) const {
    detail::require<shape_error>(h.dimension() == 2 && h.shape(1) == width_,
                                 "{}::decode_hidden: h must be [R, {}], got [{}, {}]", name_, width_, h.shape(0),
                                 h.shape(1));
    require_from_hidden("decode_hidden");
    c10::InferenceMode guard;
    // Each row as its own sequence of one: the decoder must not depend on the other rows.
    at::Tensor rows = detail::libtorch::view(h).unsqueeze(1);
    at::Tensor z = from_hidden(rows, layers_, 1, "decode_hidden");
    return detail::libtorch::copy_out<Scalar, 2>(z.squeeze(1));
  }
  /// The scalar of logits_from_hidden and its gradient w.r.t. h [T, d], by autograd.
  value_and_gradient<matrix_type> hidden_gradient(token_span tokens, std::size_t layer, const matrix_type& h,
                                                  const output_seed& seed) const {
    return hidden_gradient(tokens, layer, h, own_seed(seed));
  }
  /// hidden_gradient with a seed in the model's precision.
  value_and_gradient<matrix_type> hidden_gradient(token_span tokens, std::size_t layer, const matrix_type& h,
                                                  const seed_type& seed) const {
    check_tokens(tokens, "hidden_gradient");
    check_hidden(tokens.size(), layer, h, "hidden_gradient");
    at::Tensor x = detail::libtorch::view(h).detach().unsqueeze(0).requires_grad_(true);
    at::Tensor z = from_hidden(x, layer, h.shape(0), "hidden_gradient");
    auto back = backward_seed(z, seed, {x}, "hidden_gradient");
    return {back.values[0], first(back.gradients[0])};
  }

  // ---- TrainableModel -------------------------------------------------------------------------

  /// Number of parameters (the length of parameters()).
  std::size_t parameter_count() const { return static_cast<std::size_t>(flat_.numel()); }
  /// Every parameter of the module, flat, in named_parameters() order (the module's tensors view this buffer).
  std::span<const Scalar> parameters() const { return {flat_.data_ptr<Scalar>(), parameter_count()}; }
  /// The module's parameter names and where each starts in parameters(), in its order.
  const std::vector<std::pair<std::string, std::size_t>>& parameter_offsets() const { return offsets_; }
  /// Replaces every parameter (same length and layout as parameters()).
  void set_parameters(std::span<const Scalar> p) {
    detail::require<shape_error>(p.size() == parameter_count(),
                                 "{}::set_parameters: parameters must hold {} values, got {}", name_,
                                 parameter_count(), p.size());
    std::memcpy(flat_.data_ptr<Scalar>(), p.data(), p.size() * sizeof(Scalar));
  }
  /// Mean cross-entropy over the example's scored rows (labels other than training_example::ignore_label).
  double loss(const training_example& example) const {
    c10::InferenceMode guard;
    return loss_tensor(example, "loss").template item<double>();
  }
  /// The loss and its gradient w.r.t. every parameter (flat, layout of parameters()), by autograd.
  value_and_gradient<vector_type> loss_gradient(const training_example& example) const {
    // The parameters require a gradient only here: every other pass differentiates its input alone,
    // and autograd then keeps nothing for the weights.
    struct parameters_require_grad {
      const std::vector<at::Tensor>& params;
      explicit parameters_require_grad(const std::vector<at::Tensor>& p) : params(p) {
        for (auto t : params) t.requires_grad_(true);
      }
      ~parameters_require_grad() {
        for (auto t : params) t.requires_grad_(false);
      }
    } guard(params_);
    at::Tensor l = loss_tensor(example, "loss_gradient");
    std::vector<at::Tensor> grads;
    try {
      grads = torch::autograd::grad({l}, params_, {}, false, false, true);
    } catch (const c10::Error& e) {
      throw model_error(fmt::format("{}::loss_gradient: backward failed: {}", name_, e.what_without_backtrace()));
    }
    value_and_gradient<vector_type> result{l.template item<double>(), vector_type::from_shape({parameter_count()})};
    Scalar* g = result.gradient.data();
    for (std::size_t i = 0; i < params_.size(); ++i) {
      const auto n = static_cast<std::size_t>(params_[i].numel());
      if (grads[i].defined()) {
        const at::Tensor c = grads[i].contiguous();
        std::memcpy(g, c.data_ptr<Scalar>(), n * sizeof(Scalar));
      } else {
        std::fill(g, g + n, Scalar(0));
      }
      g += n;
    }
    return result;
  }

 private:
  static constexpr std::string_view name_ = "glassbox::adapters::libtorch_model";

  struct outputs {
    at::Tensor logits;                   // [B, T, V]
    std::vector<at::Tensor> attentions;  // L x [B, H, T, T]
    std::vector<at::Tensor> hidden;      // L + 1 x [B, T, d]
  };

  void read_attributes() {
    if (options_.max_positions) {
      max_positions_ = *options_.max_positions;
    } else if (module_.hasattr("n_positions") && module_.attr("n_positions").isInt()) {
      const auto n = module_.attr("n_positions").toInt();
      detail::require<model_error>(n > 0, "{}: the module's n_positions must be positive, got {}", name_, n);
      max_positions_ = static_cast<std::size_t>(n);
    }
    if (options_.pad_token) {
      pad_ = options_.pad_token;
    } else if (module_.hasattr("pad_token_id") && module_.attr("pad_token_id").isInt()) {
      const auto p = module_.attr("pad_token_id").toInt();
      if (p >= 0) pad_ = static_cast<token_id>(p);
    }
  }

  // One token through embed and forward: learns d, V, L and H, and checks the outputs' structure.
  void probe() {
    c10::InferenceMode guard;
    const token_id zero = 0;
    at::Tensor e = embed_ids(&zero, 1, 1, "the constructor");
    width_ = static_cast<std::size_t>(e.size(2));
    probing_ = true;
    auto out = run(e, std::nullopt, "the constructor");
    probing_ = false;
    vocab_ = static_cast<std::size_t>(out.logits.size(2));
    layers_ = out.attentions.size();
    detail::require<model_error>(layers_ > 0, "{}: forward returned no attentions (expected one per block)", name_);
    heads_ = static_cast<std::size_t>(out.attentions[0].size(1));
    check_outputs(out, 1, 1, "the constructor");
    if (pad_)
      detail::require<model_error>(*pad_ >= 0 && static_cast<std::size_t>(*pad_) < vocab_,
                                   "{}: pad token {} outside the vocabulary of {}", name_, *pad_, vocab_);
  }

  // Moves every parameter into one contiguous buffer that the module's tensors then view.
  void flatten_parameters() {
    torch::NoGradGuard no_grad;
    std::int64_t total = 0;
    offsets_.clear();
    params_.clear();
    for (const auto& p : module_.named_parameters()) {
      offsets_.emplace_back(p.name, static_cast<std::size_t>(total));
      total += p.value.numel();
    }
    flat_ = torch::empty({total}, torch::TensorOptions().dtype(detail::libtorch::dtype_of<Scalar>));
    std::int64_t offset = 0;
    for (const auto& p : module_.named_parameters()) {
      at::Tensor param = p.value;
      const auto n = param.numel();
      at::Tensor slot = flat_.narrow(0, offset, n).view(param.sizes());
      slot.copy_(param);
      param.set_data(slot);
      param.requires_grad_(false);  // loss_gradient turns it on for its pass
      params_.push_back(param);
      offset += n;
    }
  }

  void check_tokens(token_span tokens, std::string_view member) const {
    detail::require<shape_error>(!tokens.empty(), "{}::{}: the token sequence is empty", name_, member);
    detail::require<shape_error>(tokens.size() <= max_positions_,
                                 "{}::{}: {} tokens, more than the model's {} positions", name_, member,
                                 tokens.size(), max_positions_);
    for (std::size_t i = 0; i < tokens.size(); ++i)
      detail::require<shape_error>(tokens[i] >= 0 && static_cast<std::size_t>(tokens[i]) < vocab_,
                                   "{}::{}: token {} at position {} is outside the vocabulary of {}", name_, member,
                                   tokens[i], i, vocab_);
  }
  void check_embeddings(std::size_t t, std::size_t d, std::string_view member) const {
    detail::require<shape_error>(t > 0 && t <= max_positions_ && d == width_,
                                 "{}::{}: embeddings must be [T, {}] with 0 < T <= {}, got [{}, {}]", name_, member,
                                 width_, max_positions_, t, d);
  }
  void check_mask(const matrix_type& mask, std::string_view member) const {
    detail::require<shape_error>(mask.shape(0) == layers_ && mask.shape(1) == heads_,
                                 "{}::{}: mask must be [{}, {}], got [{}, {}]", name_, member, layers_, heads_,
                                 mask.shape(0), mask.shape(1));
  }
  void check_hidden(std::size_t t, std::size_t layer, const matrix_type& h, std::string_view member) const {
    require_from_hidden(member);
    detail::require<shape_error>(layer <= layers_, "{}::{}: layer must be <= {} (n_layer), got {}", name_, member,
                                 layers_, layer);
    detail::require<shape_error>(h.shape(0) == t && h.shape(1) == width_, "{}::{}: h must be [{}, {}], got [{}, {}]",
                                 name_, member, t, width_, h.shape(0), h.shape(1));
  }
  void require_from_hidden(std::string_view member) const {
    detail::require<model_error>(has_from_hidden_,
                                 "{}::{}: the module has no method from_hidden(h, layer) (docs/adapters.md)", name_,
                                 member);
  }

  // The module's embed on ids [B, T], checked to be [B, T, d] in Scalar's dtype.
  at::Tensor embed_ids(const token_id* ids, std::size_t b, std::size_t t, std::string_view member) const {
    at::Tensor e = call(member, "embed", [&] {
      return module_.get_method("embed")({detail::libtorch::ids_tensor(ids, static_cast<std::int64_t>(b),
                                                                        static_cast<std::int64_t>(t))})
          .toTensor();
    });
    const bool ok = e.dim() == 3 && e.size(0) == static_cast<std::int64_t>(b) &&
                    e.size(1) == static_cast<std::int64_t>(t) && (width_ == 0 || e.size(2) == std::int64_t(width_));
    detail::require<model_error>(ok, "{}::{}: the module's embed returned {}, expected [{}, {}, {}]", name_, member,
                                 detail::libtorch::shape_text(e), b, t, width_);
    check_dtype(e, member, "embed");
    return e;
  }

  // The module's forward on embeddings [B, T, d] (and a head mask), with its outputs checked.
  outputs run(const at::Tensor& embeddings, const std::optional<at::Tensor>& mask, std::string_view member) const {
    c10::IValue result = call(member, "forward", [&] {
      std::vector<c10::IValue> args{embeddings};
      args.emplace_back(mask ? c10::IValue(*mask) : c10::IValue());
      return module_.forward(std::move(args));
    });
    detail::require<model_error>(result.isTuple() && result.toTupleRef().elements().size() == 3,
                                 "{}::{}: the module's forward must return (logits, attentions, hidden), got {}",
                                 name_, member, result.tagKind());
    const auto& items = result.toTupleRef().elements();
    outputs out;
    out.logits = items[0].toTensor();
    out.attentions = items[1].toTensorVector();
    out.hidden = items[2].toTensorVector();
    if (!probing_) check_outputs(out, embeddings.size(0), embeddings.size(1), member);
    return out;
  }

  void check_outputs(const outputs& out, std::int64_t b, std::int64_t t, std::string_view member) const {
    using detail::libtorch::shape_text;
    const auto H = static_cast<std::int64_t>(heads_),
               V = static_cast<std::int64_t>(vocab_), d = static_cast<std::int64_t>(width_);
    detail::require<model_error>(out.logits.dim() == 3 && out.logits.size(0) == b && out.logits.size(1) == t &&
                                     out.logits.size(2) == V,
                                 "{}::{}: the module's forward returned logits {}, expected [{}, {}, {}]", name_, member,
                                 shape_text(out.logits), b, t, V);
    check_dtype(out.logits, member, "forward");
    detail::require<model_error>(out.attentions.size() == layers_,
                                 "{}::{}: the module's forward returned {} attention tensors, expected {} (one per block)",
                                 name_, member, out.attentions.size(), layers_);
    for (std::size_t l = 0; l < layers_; ++l) {
      const auto& a = out.attentions[l];
      detail::require<model_error>(a.dim() == 4 && a.size(0) == b && a.size(1) == H && a.size(2) == t && a.size(3) == t,
                                   "{}::{}: the module's forward returned attentions {} for block {}, expected [{}, {}, "
                                   "{}, {}]",
                                   name_, member, shape_text(a), l, b, H, t, t);
    }
    detail::require<model_error>(out.hidden.size() == layers_ + 1,
                                 "{}::{}: the module's forward returned {} hidden states, expected {} (L + 1)", name_,
                                 member, out.hidden.size(), layers_ + 1);
    for (std::size_t l = 0; l <= layers_; ++l) {
      const auto& h = out.hidden[l];
      detail::require<model_error>(h.dim() == 3 && h.size(0) == b && h.size(1) == t && h.size(2) == d,
                                   "{}::{}: the module's forward returned hidden state {} of {}, expected [{}, {}, {}]",
                                   name_, member, l, shape_text(h), b, t, d);
    }
  }

  void check_dtype(const at::Tensor& t, std::string_view member, std::string_view method) const {
    detail::require<model_error>(t.scalar_type() == detail::libtorch::dtype_of<Scalar>,
                                 "{}::{}: the module's {} returned {}, expected {}", name_, member, method,
                                 std::string(c10::toString(t.scalar_type())),
                                 std::string(c10::toString(detail::libtorch::dtype_of<Scalar>)));
  }

  // The module's from_hidden on h [B, T, d] at `layer`, checked to be [B, T, V].
  at::Tensor from_hidden(const at::Tensor& h, std::size_t layer, std::size_t t, std::string_view member) const {
    require_from_hidden(member);
    at::Tensor z = call(member, "from_hidden", [&] {
      return module_.get_method("from_hidden")({h, static_cast<std::int64_t>(layer)}).toTensor();
    });
    detail::require<model_error>(z.dim() == 3 && z.size(0) == h.size(0) && z.size(1) == std::int64_t(t) &&
                                     z.size(2) == std::int64_t(vocab_),
                                 "{}::{}: the module's from_hidden returned {}, expected [{}, {}, {}]", name_, member,
                                 detail::libtorch::shape_text(z), h.size(0), t, vocab_);
    check_dtype(z, member, "from_hidden");
    return z;
  }

  // The forward's logits at `rows` (empty = all), [B, P, V].
  at::Tensor run_logits(const at::Tensor& embeddings, std::span<const std::size_t> rows,
                        std::string_view member) const {
    at::Tensor z = run(embeddings, std::nullopt, member).logits;
    if (rows.empty()) return z;
    for (auto r : rows)
      detail::require<shape_error>(r < static_cast<std::size_t>(z.size(1)), "{}::{}: row {} of an output of {} rows",
                                   name_, member, r, z.size(1));
    return z.index_select(1, detail::libtorch::index_tensor(rows));
  }

  struct backward_result {
    std::vector<double> values;          // one per batch entry
    std::vector<at::Tensor> gradients;   // one per input, in their order
  };

  // Evaluates the seed on each batch entry's rows of z [B, T, V], then one backward of the sum of
  // the values to `inputs` (an input the values do not depend on gets zeros).
  backward_result backward_seed(const at::Tensor& z, const seed_type& seed, const std::vector<at::Tensor>& inputs,
                                    std::string_view member) const {
    const auto B = z.size(0), T = z.size(1), V = z.size(2);
    const std::vector<std::size_t> rows = seed.rows(static_cast<std::size_t>(T));
    for (auto r : rows)
      detail::require<shape_error>(r < static_cast<std::size_t>(T), "{}::{}: the seed reads row {} of {} rows", name_,
                                   member, r, T);
    const at::Tensor index = detail::libtorch::index_tensor(rows);
    const at::Tensor selected = z.index_select(1, index);  // [B, P, V]
    const tensor3_type logits = detail::libtorch::copy_out<Scalar, 3>(selected);
    tensor3_type d = tensor3_type::from_shape(logits.shape());
    std::vector<double> values(static_cast<std::size_t>(B));
    const std::size_t P = rows.size();
    for (std::int64_t b = 0; b < B; ++b) {
      xt::xtensor<Scalar, 2> row_logits = xt::view(logits, b, xt::all(), xt::all());
      xt::xtensor<Scalar, 2> d_rows;
      values[static_cast<std::size_t>(b)] = seed(row_logits, d_rows);
      detail::require<shape_error>(d_rows.shape(0) == P && d_rows.shape(1) == static_cast<std::size_t>(V),
                                   "{}::{}: the seed's derivative must be [{}, {}]", name_, member, P, V);
      xt::view(d, b, xt::all(), xt::all()) = d_rows;
    }
    auto grads = call(member, "backward", [&] {
      return torch::autograd::grad({selected}, inputs, {detail::libtorch::view(d)}, false, false, true);
    });
    for (std::size_t i = 0; i < grads.size(); ++i)
      if (!grads[i].defined()) grads[i] = torch::zeros_like(inputs[i]);
    return {std::move(values), std::move(grads)};
  }

  // Cross-entropy of the example's scored rows, as a libtorch scalar (in the autograd graph unless in inference mode).
  at::Tensor loss_tensor(const training_example& example, std::string_view member) const {
    check_tokens(example.tokens, member);
    detail::require<shape_error>(example.labels.size() == example.tokens.size(),
                                 "{}::{}: labels must have one entry per token ({}), got {}", name_, member,
                                 example.tokens.size(), example.labels.size());
    std::vector<std::int64_t> labels;
    bool scored = false;
    for (std::size_t i = 0; i < example.labels.size(); ++i) {
      const token_id l = example.labels[i];
      if (l != training_example::ignore_label)
        detail::require<shape_error>(l >= 0 && static_cast<std::size_t>(l) < vocab_,
                                     "{}::{}: label must be in [0, {}) or {}, got {} at row {}", name_, member, vocab_,
                                     training_example::ignore_label, l, i);
      scored = scored || l != training_example::ignore_label;
      labels.push_back(l);
    }
    detail::require<shape_error>(scored, "{}::{}: an example must score at least one row", name_, member);
    at::Tensor z = run(embed_ids(example.tokens.data(), 1, example.tokens.size(), member), std::nullopt, member).logits;
    return call(member, "cross_entropy", [&] {
      return at::cross_entropy_loss(z[0], torch::tensor(labels, torch::TensorOptions().dtype(torch::kInt64)), {},
                                    at::Reduction::Mean, training_example::ignore_label);
    });
  }

  // Runs f, turning a libtorch error into a glassbox::model_error that names the member and the module's method.
  template <class F>
  static auto call(std::string_view member, std::string_view method, F&& f) -> decltype(f()) {
    try {
      return f();
    } catch (const c10::Error& e) {
      throw model_error(
          fmt::format("{}::{}: the module's {} failed: {}", name_, member, method, e.what_without_backtrace()));
    } catch (const std::exception& e) {  // the TorchScript interpreter's own errors
      throw model_error(fmt::format("{}::{}: the module's {} failed: {}", name_, member, method, e.what()));
    }
  }

  // An output_seed (float, as every algorithm passes it) in the model's precision.
  static seed_type own_seed(const output_seed& s) {
    if constexpr (std::is_same_v<Scalar, float>) {
      return seed_type([s](std::size_t n) { return s.rows(n); },
                       [s](const matrix_type& z, matrix_type& d) { return s(z, d); });
    } else {
      return seed_type([s](std::size_t n) { return s.rows(n); }, [s](const matrix_type& z, matrix_type& d) {
        const tensor2 zf = xt::cast<float>(z);
        tensor2 df;
        const double v = s(zf, df);
        d = xt::cast<double>(df);
        return v;
      });
    }
  }

  // Batch entry 0 of z [1, T, ...] as a matrix.
  static matrix_type first(const at::Tensor& z) { return detail::libtorch::copy_out<Scalar, 2>(z[0]); }
  // Per-layer tensors [1, ...] stacked into [L, ...] of N dimensions (batch entry 0).
  template <std::size_t N>
  static xt::xtensor<Scalar, N> stack_first(const std::vector<at::Tensor>& parts) {
    std::vector<at::Tensor> firsts;
    firsts.reserve(parts.size());
    for (const auto& p : parts) firsts.push_back(p.detach()[0]);
    return detail::libtorch::copy_out<Scalar, N>(torch::stack(firsts));
  }

  // libtorch's Module is a handle whose run methods are not const; running it changes nothing we keep.
  mutable torch::jit::Module module_;
  libtorch_options options_;
  std::size_t vocab_ = 0, layers_ = 0, heads_ = 0, width_ = 0;
  std::size_t max_positions_ = static_cast<std::size_t>(-1);
  std::optional<token_id> pad_{};
  bool has_from_hidden_ = false;
  bool probing_ = false;
  at::Tensor flat_;
  std::vector<at::Tensor> params_;
  std::vector<std::pair<std::string, std::size_t>> offsets_;
};

/// The libtorch adapter in float32: the model every algorithm takes.
using libtorch_model = basic_libtorch_model<float>;

}  // namespace glassbox::adapters

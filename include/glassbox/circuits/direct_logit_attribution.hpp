// glassbox: direct logit attribution. The final residual stream is a sum of the embeddings and of
// every head's, attention bias's and MLP's output; with the final norm's scale frozen at its value
// on the input (as TransformerLens' decompose_resid / apply_ln_to_stack do), the norm and the
// unembedding are linear, so each part's share of a logit (difference) is exact and the shares sum
// to the model's value. docs/circuits.md.
//
// Example:
//   auto r = glassbox::direct_logit_attribution(model, tokens, good, bad);   // why "good" and not "bad"
//   for (const auto& c : r.components) fmt::print("{:>8} {:+.3f}\n", c.name, c.contribution);
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "glassbox/core/components.hpp"
#include "glassbox/core/error.hpp"
#include "glassbox/core/execution.hpp"
#include "glassbox/core/model.hpp"

namespace glassbox {

/// One additive part of the final residual stream and its share of the logit (difference).
struct dla_component {
  std::string name;           ///< "embed", "pos_embed", "L3H1", "attn_bias3", "mlp2", "ln_final_bias"
  std::string kind;           ///< "embed", "pos_embed", "head", "attn_bias", "mlp", "bias"
  std::size_t layer = 0;      ///< the block (heads, attention biases, MLPs)
  std::size_t index = 0;      ///< the head
  double contribution = 0;    ///< (part . direction) / final_scale (the bias: its offset)
};

/// Options of direct logit attribution.
struct dla_options {
  std::ptrdiff_t position = -1;  ///< the position read (negative counts from the end)
  bool neurons = false;          ///< also split every MLP into its neurons (DlaResult::neurons)
};

/// The decomposition of a logit (or logit difference) at one position.
struct dla_result {
  token_id token = 0;                   ///< A
  std::optional<token_id> contrast{};   ///< B, when the value is logit(A) - logit(B)
  std::size_t position = 0;             ///< the position read
  std::vector<dla_component> components;  ///< every additive part, in the order of the forward pass
  double total = 0;                     ///< the sum of the contributions
  double logit_diff = 0;                ///< the model's own logit(A) (- logit(B)) at the position
  double final_scale = 0;               ///< the final norm's divisor at the position, frozen
  /// With options.neurons: [L, f], neuron n of block l's share (activation x (W_out[n] . direction) /
  /// final_scale); a block's neurons plus its output bias's share (mlp_bias) sum to its MLP's share.
  xt::xtensor<double, 2> neurons{};
  std::vector<double> mlp_bias{};       ///< with options.neurons: [L], each MLP share its neurons do not carry (its output bias)
};

/// Direct logit attribution of logit(`token`) - logit(`contrast`) (or of logit(`token`) alone) at
/// one position: one forward pass (run_with_cache). Exact: total equals logit_diff up to rounding.
template <ComponentModel M>
dla_result direct_logit_attribution(const M& model, token_span tokens, token_id token,
                                    std::optional<token_id> contrast = std::nullopt, const dla_options& options = {}) {
  static_assert(check_component_model<M>());
  constexpr std::string_view who = "direct_logit_attribution";
  detail::require(!tokens.empty(), "glassbox::{}: the input is empty", who);
  const auto layout = model.layout();
  const std::size_t T = tokens.size(), L = layout.layers, H = layout.heads, d = layout.width, f = layout.neurons;
  const auto n = static_cast<std::ptrdiff_t>(T);
  const std::ptrdiff_t p = options.position < 0 ? n + options.position : options.position;
  detail::require<shape_error>(p >= 0 && p < n, "glassbox::{}: position {} outside {} tokens", who, options.position,
                               T);
  const auto pos = static_cast<std::size_t>(p);
  std::vector<token_id> ids = {token};
  if (contrast) ids.push_back(*contrast);
  const logit_directions dirs = model.unembedding_directions(ids);
  detail::check_model_tensor(dirs.directions, {ids.size(), d}, "k, d", who, "unembedding_directions()", "directions",
                             0);
  detail::require<model_error>(dirs.offsets.size() == ids.size(),
                               "glassbox::{}: unembedding_directions() returned {} offsets for {} tokens", who,
                               dirs.offsets.size(), ids.size());
  std::vector<double> u(d);
  for (std::size_t j = 0; j < d; ++j)
    u[j] = static_cast<double>(dirs.directions(0, j)) - (contrast ? static_cast<double>(dirs.directions(1, j)) : 0.0);
  const double offset = dirs.offsets[0] - (contrast ? dirs.offsets[1] : 0.0);

  const component_cache c = detail::model_component_cache(model, tokens, who);
  const double scale = c.final_scale[pos];
  auto share = [&](const float* v) {
    double s = 0;
    for (std::size_t j = 0; j < d; ++j) s += static_cast<double>(v[j]) * u[j];
    return s / scale;
  };

  dla_result r;
  r.token = token;
  r.contrast = contrast;
  r.position = pos;
  r.final_scale = scale;
  r.components.push_back({"embed", "embed", 0, 0, share(c.token_embeddings.data() + pos * d)});
  r.components.push_back({"pos_embed", "pos_embed", 0, 0, share(c.position_embeddings.data() + pos * d)});
  for (std::size_t l = 0; l < L; ++l) {
    for (std::size_t h = 0; h < H; ++h)
      r.components.push_back(
          {fmt::format("L{}H{}", l, h), "head", l, h, share(c.heads.data() + ((l * H + h) * T + pos) * d)});
    r.components.push_back({fmt::format("attn_bias{}", l), "attn_bias", l, 0, share(c.attention_bias.data() + l * d)});
    r.components.push_back({fmt::format("mlp{}", l), "mlp", l, 0, share(c.mlps.data() + (l * T + pos) * d)});
  }
  r.components.push_back({"ln_final_bias", "bias", 0, 0, offset});
  for (const auto& comp : r.components) r.total += comp.contribution;
  const double z_a = c.logits(pos, static_cast<std::size_t>(token));
  r.logit_diff = contrast ? z_a - static_cast<double>(c.logits(pos, static_cast<std::size_t>(*contrast))) : z_a;

  if (options.neurons) {
    r.neurons = xt::zeros<double>({L, f});
    r.mlp_bias.assign(L, 0.0);
    for (std::size_t l = 0; l < L; ++l) {
      const tensor2 w = model.neuron_output_weights(l);
      detail::check_model_tensor(w, {f, d}, "f, d", who, "neuron_output_weights()", "weights", l);
      double sum = 0;
      for (std::size_t k = 0; k < f; ++k) {
        const double a = c.neurons(l, pos, k);
        r.neurons(l, k) = a * share(w.data() + k * d);
        sum += r.neurons(l, k);
      }
      // The output bias is what the MLP adds beyond its neurons.
      const auto& mlp = r.components[2 + l * (H + 2) + H + 1];
      r.mlp_bias[l] = mlp.contribution - sum;
    }
  }
  return r;
}

}  // namespace glassbox

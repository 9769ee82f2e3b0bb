// glassbox: what the component rung of the model ladder exchanges (core/model.hpp,
// ComponentModel): the layout of a transformer's components, a cache of their outputs for one
// input, the gradient of a scalar w.r.t. them, a patch that replaces or shifts one of them, and the
// residual-stream directions that read a token's logit through the final norm. docs/circuits.md.
//
// Conventions (those of TransformerLens' hook points, on a pre-norm transformer):
//   residual[l]     the stream entering block l (hook_resid_pre); residual[L] the stream entering the
//                   final norm (hook_resid_post of the last block)
//   heads[l][h]     head h's contribution to the stream *after* the output projection, without the
//                   projection's bias (hook_result); the bias is attention_bias[l]
//   mlps[l]         the MLP's output, its output bias included (hook_mlp_out)
//   neurons[l]      the MLP's hidden activations after the nonlinearity (hook_post)
// so that residual[L] = token_embeddings + position_embeddings
//                       + sum_l (sum_h heads[l][h] + attention_bias[l] + mlps[l]).
#pragma once

#include <cstddef>
#include <string_view>
#include <vector>

#include "glassbox/core/types.hpp"

namespace glassbox {

/// The sizes of a transformer's components: blocks, heads per block, residual width, MLP neurons per block.
struct component_layout {
  std::size_t layers = 0;   ///< blocks L
  std::size_t heads = 0;    ///< attention heads per block H
  std::size_t width = 0;    ///< residual width d
  std::size_t neurons = 0;  ///< MLP hidden units per block f
};

/// Where a patch acts: a component's output, or the residual stream one component reads.
enum class component_site {
  residual,    ///< the stream entering block `layer` (0..L; L = entering the final norm), [T, d]
  head,        ///< head `index` of block `layer`, its output after the output projection, [T, d]
  mlp,         ///< the MLP output of block `layer`, [T, d]
  neuron,      ///< MLP neuron `index` of block `layer`, after the nonlinearity, [T, 1]
  head_input,  ///< the stream head `index` of block `layer` reads (its queries, keys and values), [T, d]
  mlp_input,   ///< the stream the MLP of block `layer` reads, [T, d]
};

/// The stable name of a site, as used in JSON and on the command line ("head_input").
constexpr std::string_view to_string(component_site site) {
  switch (site) {
    case component_site::residual: return "residual";
    case component_site::head: return "head";
    case component_site::mlp: return "mlp";
    case component_site::neuron: return "neuron";
    case component_site::head_input: return "head_input";
    case component_site::mlp_input: return "mlp_input";
  }
  return "?";
}

/// One edit of a forward pass, in a model's precision `Scalar` (float for the concepts:
/// component_patch): at `positions`, the site's value is replaced by `values` (or `values` is added
/// to it), and everything after it is computed from the edited value.
template <class Scalar>
struct basic_component_patch {
  component_site site = component_site::residual;  ///< what is edited
  std::size_t layer = 0;                           ///< the block (for residual: the stream index 0..L)
  std::size_t index = 0;                           ///< the head or neuron; ignored by other sites
  std::vector<std::size_t> positions;              ///< the positions edited, distinct; empty = every position
  xt::xtensor<Scalar, 2> values;                   ///< [positions, width]: width d, or 1 for a neuron
  bool add = false;                                ///< add `values` to the site instead of replacing it
};
/// A patch in float, as the concepts exchange it.
using component_patch = basic_component_patch<float>;

/// Every component's output for one input, in a model's precision `Scalar` (float for the
/// concepts: component_cache). See the conventions at the top of this header.
template <class Scalar>
struct basic_component_cache {
  xt::xtensor<Scalar, 2> logits;               ///< [T, V]
  xt::xtensor<Scalar, 3> residual;             ///< [L + 1, T, d], as hidden_states
  xt::xtensor<Scalar, 2> token_embeddings;     ///< [T, d]
  xt::xtensor<Scalar, 2> position_embeddings;  ///< [T, d] (zeros for a model without learned positions)
  xt::xtensor<Scalar, 4> heads;                ///< [L, H, T, d], after the output projection, without its bias
  xt::xtensor<Scalar, 2> attention_bias;       ///< [L, d], the output projection's bias of each block
  xt::xtensor<Scalar, 3> mlps;                 ///< [L, T, d], output bias included
  xt::xtensor<Scalar, 3> neurons;              ///< [L, T, f], after the nonlinearity
  std::vector<double> final_scale;             ///< [T], the final norm's divisor at each position (LayerNorm: sqrt(var + eps))
};
/// A component cache in float.
using component_cache = basic_component_cache<float>;

/// A scalar of the output, the components of the pass that computed it, and the scalar's gradient
/// w.r.t. them, in a model's precision `Scalar` (float for the concepts: component_gradient_result).
/// Heads and the MLP add into the stream, so d/d heads[l][h] = attention[l] for every h and
/// d/d mlps[l] = residual[l + 1].
template <class Scalar>
struct basic_component_gradient_result {
  double value = 0;                          ///< the scalar
  basic_component_cache<Scalar> cache;       ///< the forward pass's components
  xt::xtensor<Scalar, 3> residual;           ///< d / d residual, [L + 1, T, d]
  xt::xtensor<Scalar, 3> attention;          ///< d / d (stream after block l's attention), [L, T, d]
  xt::xtensor<Scalar, 3> neurons;            ///< d / d neurons, [L, T, f]
};
/// Component gradients in float.
using component_gradient_result = basic_component_gradient_result<float>;

/// Residual-stream directions that read tokens' logits with the final norm's scale frozen: the
/// logit of token k is sum over the stream's additive parts c of (c . directions[k]) / scale + offsets[k],
/// exactly, with scale the final norm's divisor at that position (component_cache::final_scale).
template <class Scalar>
struct basic_logit_directions {
  xt::xtensor<Scalar, 2> directions;  ///< [k, d]
  std::vector<double> offsets;        ///< [k], the final norm's bias (and any output bias) read by each token
};
/// Logit directions in float.
using logit_directions = basic_logit_directions<float>;

}  // namespace glassbox

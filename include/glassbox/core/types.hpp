// glassbox: the vocabulary types that cross the model boundary.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "glassbox/detail/xtensor.hpp"

namespace glassbox {

/// A token id, as a model's vocabulary numbers it (docs/concepts.md).
using token_id = std::int32_t;
/// A read-only sequence of token ids: the input of every model call.
using token_span = std::span<const token_id>;
/// An owned sequence of token ids.
using token_sequence = std::vector<token_id>;

/// A vector of float, e.g. flat parameters or a gradient over them.
using tensor1 = xt::xtensor<float, 1>;
/// A matrix of float, e.g. embeddings [T, d] or logits [rows, V].
using tensor2 = xt::xtensor<float, 2>;
/// A rank-3 float tensor, e.g. hidden states [L + 1, T, d] or a batch of embeddings [B, T, d].
using tensor3 = xt::xtensor<float, 3>;
/// A rank-4 float tensor, e.g. attention probabilities [L, H, T, T].
using tensor4 = xt::xtensor<float, 4>;
/// A batch of equal-length token sequences [B, T].
using token_matrix = xt::xtensor<token_id, 2>;

}  // namespace glassbox

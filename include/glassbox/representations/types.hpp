// glassbox: the plain data of the representations module: the tuned lens's translators, a reading
// vector and a sparse autoencoder, with the SAE's shape check. representations/lens.hpp,
// steering.hpp and sae.hpp compute them; io/representation_files.hpp and io/sae_file.hpp save and
// load them. A header of its own so that the file code needs none of the algorithms
// (docs/building.md, "Include cost").
#pragma once

#include <array>
#include <cstddef>
#include <string>
#include <string_view>

#include "glassbox/core/error.hpp"
#include "glassbox/core/types.hpp"

namespace glassbox {

/// Affine translators of the tuned lens, one per hidden-state index 0..L-1 (index L, the model's
/// own output, needs none): the lens decodes h + h M_k + b_k for a row vector h.
struct tuned_lens {
  std::vector<tensor2> weights;  ///< M_k [d, d] per index k = 0..L-1
  std::vector<tensor1> biases;   ///< b_k [d] per index k = 0..L-1

  /// L, the number of blocks of the model the lens was made for.
  std::size_t layers() const { return weights.size(); }
  /// d, the residual width.
  std::size_t width() const { return weights.empty() ? 0 : weights.front().shape(0); }
  /// The identity lens (all translators zero, i.e. the logit lens) for L blocks of width d.
  template <class = void>
  static tuned_lens identity(std::size_t layers, std::size_t width) {
    tuned_lens t;
    for (std::size_t k = 0; k < layers; ++k) {
      t.weights.push_back(tensor2::from_shape({width, width}));
      t.weights.back().fill(0.0F);
      t.biases.push_back(tensor1::from_shape({width}));
      t.biases.back().fill(0.0F);
    }
    return t;
  }
};

/// A reading vector at one layer.
struct reading_vector {
  std::size_t layer = 0;         ///< hidden-state index
  tensor1 direction;             ///< unit vector [d] (zero when the pairs do not differ at this layer)
  double explained = 0.0;        ///< fraction of the differences' second moment along the direction
  double pair_accuracy = 0.0;    ///< fraction of pairs whose positive member projects higher
  double mean_separation = 0.0;  ///< mean projection of the differences (positive minus negative)
};

/// A sparse autoencoder over d-dimensional activations with n features, in SAELens' layout:
///   f = ReLU((x - b_dec) W_enc + b_enc),  x_hat = f W_dec + b_dec,
/// W_enc [d, n], b_enc [n], W_dec [n, d] (row j = feature j's unit-norm dictionary direction), b_dec [d].
/// In the paper's notation W_e = W_enc^T, b_e = b_enc, W_d = W_dec^T, b_d = b_dec.
struct sparse_autoencoder {
  tensor2 W_enc;          ///< [d, n]
  tensor1 b_enc;          ///< [n]
  tensor2 W_dec;          ///< [n, d]
  tensor1 b_dec;          ///< [d]
  std::size_t layer = 0;  ///< the hidden-state index it reads (0 = embeddings output), recorded
  double l1 = 0;          ///< the L1 coefficient it was trained with, recorded
  std::string model;      ///< the model it was trained on (free text), recorded

  /// d, the width of the activations.
  std::size_t input_width() const { return W_dec.shape(1); }
  /// n, the number of features.
  std::size_t feature_count() const { return W_dec.shape(0); }
};

namespace detail {

/// Checks an SAE's shapes; throws shape_error naming `who`.
template <class = void>
void check_sae(const sparse_autoencoder& sae, std::string_view who) {
  const std::size_t d = sae.W_dec.shape(1), n = sae.W_dec.shape(0);
  require<shape_error>(n >= 1 && d >= 1, "glassbox::{}: sae.W_dec must be [n, d] with n, d >= 1, got [{}, {}]", who, n,
                       d);
  require<shape_error>(sae.W_enc.shape(0) == d && sae.W_enc.shape(1) == n,
                       "glassbox::{}: sae.W_enc must be [{}, {}] (d, n), got [{}, {}]", who, d, n, sae.W_enc.shape(0),
                       sae.W_enc.shape(1));
  require<shape_error>(sae.b_enc.size() == n, "glassbox::{}: sae.b_enc must have {} entries, got {}", who, n,
                       sae.b_enc.size());
  require<shape_error>(sae.b_dec.size() == d, "glassbox::{}: sae.b_dec must have {} entries, got {}", who, d,
                       sae.b_dec.size());
}

}  // namespace detail

}  // namespace glassbox

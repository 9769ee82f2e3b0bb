// glassbox: the plain data of collected activations: the pooling, the label kind and the
// activation set. probing/activations.hpp collects them from a model; io/activation_file.hpp reads
// and writes them. A header of its own so that the file code needs none of the collection code
// (docs/building.md, "Include cost").
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "glassbox/core/types.hpp"

namespace glassbox {

/// Which rows a sequence gives: one per labelled token, or one per sequence.
enum class activation_pooling {
  token,  ///< one row per labelled token: the hidden state at that position
  last,   ///< one row per sequence: the hidden state at its last position
  mean,   ///< one row per sequence: the mean of its hidden states over all positions
};

/// The stable name of a pooling ("token", "last", "mean").
constexpr std::string_view to_string(activation_pooling p) {
  switch (p) {
    case activation_pooling::token:
      return "token";
    case activation_pooling::last:
      return "last";
    case activation_pooling::mean:
      return "mean";
  }
  return "unknown";
}

/// The pooling of a name (the inverse of to_string), or nothing for an unknown name.
constexpr std::optional<activation_pooling> parse_activation_pooling(std::string_view name) {
  for (const auto p : {activation_pooling::token, activation_pooling::last, activation_pooling::mean})
    if (to_string(p) == name) return p;
  return std::nullopt;
}

/// What the labels are: class indices 0 .. K - 1 or real values.
enum class label_kind {
  classes,  ///< class indices, probed by (logistic) classification
  real,     ///< real values, probed by ridge regression
};

/// The stable name of a label kind ("classes", "real").
constexpr std::string_view to_string(label_kind k) { return k == label_kind::classes ? "classes" : "real"; }

/// Hidden states of some layers over a data set, one row per token or sequence, with a label per
/// row: what a probe is trained on, and what io/activation_file.hpp reads and writes.
struct activation_set {
  std::string property;                                    ///< what the labels are, e.g. "is_negated"
  std::string model;                                       ///< the model the activations come from (free text)
  activation_pooling pooling = activation_pooling::token;  ///< how rows were formed
  label_kind kind = label_kind::classes;                   ///< classes or real values
  std::vector<std::string> class_names;                    ///< names of classes 0 .. K - 1 (classes only; may be empty)
  std::vector<std::size_t> layers;         ///< the hidden-state index of each layer (0 = embeddings output)
  std::size_t width = 0;                   ///< d, columns of every layer
  std::vector<tensor2> activations;        ///< one [N, d] per entry of `layers`; empty when streamed to a sink
  std::vector<double> labels;              ///< [N] class index or value
  std::vector<token_id> word_ids;          ///< [N] token id of each row (the last token for last / mean pooling)
  std::vector<std::int32_t> sequence_ids;  ///< [N] the input sequence of each row (groups for splits); may be empty
  std::vector<std::int32_t> split;         ///< [N] 0 train, 1 dev, 2 test; empty = split when probing

  /// Rows N.
  std::size_t rows() const { return labels.size(); }
  /// K: the class names' count, else the largest label + 1 (classes only; 0 for real labels).
  template <class = void>
  std::size_t class_count() const {
    if (kind != label_kind::classes) return 0;
    double top = -1;
    for (const double v : labels) top = std::max(top, v);
    return std::max<std::size_t>(class_names.size(), static_cast<std::size_t>(top + 1));
  }
  /// The position in `layers` of hidden-state index `layer`, or nothing.
  template <class = void>
  std::optional<std::size_t> layer_slot(std::size_t layer) const {
    for (std::size_t i = 0; i < layers.size(); ++i)
      if (layers[i] == layer) return i;
    return std::nullopt;
  }
};

}  // namespace glassbox

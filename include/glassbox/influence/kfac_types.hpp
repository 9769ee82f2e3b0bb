// glassbox: the plain data of K-FAC / EK-FAC influence: the factor, Fisher and layer choices, the
// fit and score options, the fitted factors and the shard store. influence/kfac_factors.hpp fits
// factors and influence/kfac.hpp scores with them (docs/influence.md); io/influence_factors.hpp
// saves and loads them. A header of its own so that io/influence_factors.hpp needs none of the
// algorithms (docs/building.md, "Include cost").
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "glassbox/core/error.hpp"
#include "glassbox/core/execution.hpp"
#include "glassbox/core/types.hpp"
#include "glassbox/influence/result.hpp"

namespace glassbox {

/// The curvature an influence computation preconditions with (`--method`).
enum class factor_method {
  ekfac,     ///< eigenvalue-corrected K-FAC (George et al. 2018), Kronfluence's default
  kfac,      ///< K-FAC (Martens & Grosse 2015): Lambda = outer product of the factor eigenvalues
  diagonal,  ///< per-parameter E[G^2] (a baseline)
  identity,  ///< no curvature: plain gradient dot products (a baseline)
};

/// The stable name of a factor method ("ekfac", "kfac", "diagonal", "identity").
constexpr std::string_view to_string(factor_method method) {
  switch (method) {
    case factor_method::ekfac: return "ekfac";
    case factor_method::kfac: return "kfac";
    case factor_method::diagonal: return "diagonal";
    case factor_method::identity: return "identity";
  }
  return "unknown";
}

/// The factor method of a name ("ekfac", ...), or nothing for another name.
constexpr std::optional<factor_method> factor_method_from_string(std::string_view name) {
  for (auto m : {factor_method::ekfac, factor_method::kfac, factor_method::diagonal, factor_method::identity})
    if (to_string(m) == name) return m;
  return std::nullopt;
}

/// Which labels the curvature's gradients are taken with.
enum class fisher_type {
  sampled,    ///< the true Fisher: one label per scored row drawn from the model's own prediction (Kronfluence's default)
  empirical,  ///< the empirical Fisher: the examples' own labels
  expected,   ///< the true Fisher computed exactly: every label weighted by its probability (one backward pass per
              ///< scored row and vocabulary entry; for small vocabularies and tests)
};

/// The stable name of a Fisher type ("sampled", "empirical", "expected").
constexpr std::string_view to_string(fisher_type type) {
  switch (type) {
    case fisher_type::sampled: return "sampled";
    case fisher_type::empirical: return "empirical";
    case fisher_type::expected: return "expected";
  }
  return "unknown";
}

/// The Fisher type of a name ("sampled", "empirical", "expected"), or nothing for another name.
constexpr std::optional<fisher_type> fisher_type_from_string(std::string_view name) {
  for (auto t : {fisher_type::sampled, fisher_type::empirical, fisher_type::expected})
    if (to_string(t) == name) return t;
  return std::nullopt;
}

/// Which linear layers are tracked (`--layers`).
enum class layer_selection {
  all,  ///< every layer the model reports (Kronfluence's default: every supported module)
  mlp,  ///< the layers whose name contains "mlp" (the reference GPT-2's h.K.mlp.c_fc and h.K.mlp.c_proj)
};

/// The stable name of a layer selection ("all", "mlp").
constexpr std::string_view to_string(layer_selection layers) { return layers == layer_selection::all ? "all" : "mlp"; }

/// The layer selection of a name ("all", "mlp"), or nothing for another name.
constexpr std::optional<layer_selection> layer_selection_from_string(std::string_view name) {
  if (name == "all") return layer_selection::all;
  if (name == "mlp") return layer_selection::mlp;
  return std::nullopt;
}

/// Options of fit_kfac_factors (`glassbox influence fit`). Defaults as Kronfluence's FactorArguments.
struct kfac_fit_options {
  factor_method method = factor_method::ekfac;    ///< the curvature to fit
  layer_selection layers = layer_selection::all;  ///< which layers to track
  std::vector<std::string> layer_names{};         ///< exact layer names to track; non-empty overrides `layers`
  fisher_type fisher = fisher_type::sampled;      ///< the labels of the curvature's gradients
  std::optional<double> damping{};  ///< recorded in the factors for scoring; nullopt = 0.1 x mean(Lambda) per layer
  std::size_t covariance_max_examples = 100'000;  ///< the covariance pass reads the first this many examples
  std::size_t lambda_max_examples = 100'000;      ///< the eigenvalue-correction pass reads the first this many
  std::uint64_t seed = 0;                         ///< seed of the sampled labels
  execution_options execution{};                  ///< examples per step, threads, progress, cancellation
};

/// The fitted curvature of one tracked linear layer y = x W + b. Matrices are float, row-major;
/// eigenvectors are the columns of the eigenvector matrices, eigenvalues ascending.
struct kfac_layer_factors {
  std::string name;               ///< the model's name of the layer, e.g. "h.0.mlp.c_fc"
  std::size_t input_dim = 0;      ///< d_in (without the bias column)
  std::size_t output_dim = 0;     ///< d_out
  bool has_bias = true;           ///< whether b exists (a carries a 1 for it, in the last column)
  std::size_t weight_offset = 0;  ///< where W starts in the flat parameters
  std::size_t bias_offset = 0;    ///< where b starts in the flat parameters
  bool input_major = true;        ///< W stored [d_in, d_out] (GPT-2's Conv1D); else [d_out, d_in]
  std::size_t covariance_tokens = 0;  ///< rows the covariances averaged over
  tensor2 activation_covariance;      ///< A = E[a a^T], [d_in + 1, d_in + 1] (kfac, ekfac)
  tensor2 gradient_covariance;        ///< S = E[R g g^T], [d_out, d_out] (kfac, ekfac)
  tensor1 activation_eigenvalues;     ///< l_A (kfac, ekfac)
  tensor2 activation_eigenvectors;    ///< Q_A (kfac, ekfac)
  tensor1 gradient_eigenvalues;       ///< l_S (kfac, ekfac)
  tensor2 gradient_eigenvectors;      ///< Q_S (kfac, ekfac)
  tensor2 lambda;  ///< [d_out, d_in + 1]: corrected eigenvalues (ekfac) or E[R G^2] (diagonal); empty otherwise

  /// d_in + 1 with a bias, else d_in: the columns of a layer gradient G.
  std::size_t augmented_input_dim() const { return input_dim + (has_bias ? 1 : 0); }
  /// The parameters of the layer, d_out x (d_in + 1) (or d_out x d_in without a bias).
  std::size_t parameter_count() const { return output_dim * augmented_input_dim(); }
  /// The floats the fitted tensors above hold (4 bytes each, in memory and in a factors file).
  template <class = void>
  std::size_t stored_floats() const {
    return activation_covariance.size() + gradient_covariance.size() + activation_eigenvalues.size() +
           activation_eigenvectors.size() + gradient_eigenvalues.size() + gradient_eigenvectors.size() + lambda.size();
  }
};

/// The floats fitted factors of one linear layer with d_in inputs and d_out outputs hold, with
/// a = d_in + 1 (with a bias) or d_in: ekfac 2 a^2 + a + 2 d_out^2 + d_out + d_out a (A, Q_A,
/// l_A, S, Q_S, l_S, Lambda); kfac the same without Lambda; diagonal d_out a; identity 0. Plans
/// memory before fitting (docs/robustness.md, "Resource bounds").
constexpr std::size_t kfac_layer_floats(factor_method method, std::size_t d_in, std::size_t d_out,
                                        bool has_bias = true) {
  const std::size_t a = d_in + (has_bias ? 1 : 0);
  const std::size_t kronecker = 2 * a * a + a + 2 * d_out * d_out + d_out;
  switch (method) {
    case factor_method::ekfac: return kronecker + d_out * a;
    case factor_method::kfac: return kronecker;
    case factor_method::diagonal: return d_out * a;
    case factor_method::identity: return 0;
  }
  return 0;
}

/// Fitted K-FAC / EK-FAC / diagonal / identity curvature of a model: everything scoring needs.
struct kfac_factors {
  factor_method method = factor_method::ekfac;  ///< the curvature fitted
  fisher_type fisher = fisher_type::sampled;    ///< the labels it was fitted with
  std::optional<double> damping{};              ///< damping recorded at fit time (nullopt = 0.1 x mean(Lambda))
  std::uint64_t seed = 0;                       ///< seed of the sampled labels
  std::size_t covariance_examples = 0;          ///< examples the covariance pass read
  std::size_t lambda_examples = 0;              ///< examples the eigenvalue-correction pass read
  std::size_t model_parameters = 0;             ///< parameter_count() of the model fitted on
  std::string model_fingerprint;                ///< parameter_fingerprint() of the model fitted on
  std::vector<kfac_layer_factors> layers;       ///< the tracked layers, in the model's order

  /// The tracked layer `name`; glassbox::error if it is not tracked.
  template <class = void>
  const kfac_layer_factors& layer(std::string_view name) const {
    for (const auto& l : layers)
      if (l.name == name) return l;
    detail::fail("glassbox::kfac_factors::layer: name must be a tracked layer, got {}", name);
  }
  /// The parameters the tracked layers hold in all.
  template <class = void>
  std::size_t tracked_parameters() const {
    std::size_t n = 0;
    for (const auto& l : layers) n += l.parameter_count();
    return n;
  }
};

/// A fingerprint of flat parameters ("fnv1a64:" and 16 hex digits, over their bytes): factors and
/// score shards record it, so that they are never used with another model.
template <class = void>
inline std::string parameter_fingerprint(std::span<const float> parameters) {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (const float p : parameters) {
    const auto bits = std::bit_cast<std::uint32_t>(p);
    for (int k = 0; k < 4; ++k) {
      h ^= (bits >> (8 * k)) & 0xFFu;
      h *= 0x100000001b3ULL;
    }
  }
  return fmt::format("fnv1a64:{:016x}", h);
}

/// Where finished shards of a score computation are kept: `load` fills the scores of training
/// examples [begin, end) ([rows, end - begin], row-major) and returns true if that shard was
/// finished before; `save` is called with every newly finished shard. Either may be empty.
struct kfac_shard_store {
  std::function<bool(std::size_t begin, std::size_t end, std::span<float> scores)> load{};  ///< a finished shard, if any
  std::function<void(std::size_t begin, std::size_t end, std::span<const float> scores)> save{};  ///< keeps a shard
};

/// Options of K-FAC / EK-FAC scoring (`glassbox influence score --factors F`).
struct kfac_score_options {
  influence_options common{};   ///< damping (overrides the factors' own), top_k, execution
  std::size_t query_rank = 0;   ///< rank-k approximation of each preconditioned query gradient per layer;
                                ///< 0 = none (Kronfluence's query_gradient_rank = None); layers with
                                ///< min(d_out, d_in + 1) <= k are kept exact
  std::size_t shard_size = 1024;  ///< training examples per shard handed to `shards`
  kfac_shard_store shards{};      ///< finished shards (resume); empty = in memory only
};

}  // namespace glassbox

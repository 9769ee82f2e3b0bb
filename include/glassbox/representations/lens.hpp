// glassbox: the logit lens (nostalgebraist 2020) and the tuned lens (Belrose et al. 2023, "Eliciting
// Latent Predictions from Transformers with the Tuned Lens"): what each layer's residual stream
// would predict if the rest of the model were skipped.
//
// The logit lens decodes the residual stream h_k (hidden-state index k = 0..L) through the model's
// final norm and unembedding: p_k = softmax(decode(h_k)); at k = L this is the model's own output.
// The tuned lens first maps h_k through a learned affine translator, h_k + h_k M_k + b_k (M_k and b_k
// start at zero, so an untrained tuned lens is the logit lens), trained to minimise the mean
// KL(p_L || p_k) over a data set. Both read the model through `decode_hidden` when it has that
// optional member, else through logits_from_hidden at the last layer (InterventionModel).
#pragma once

#include <Eigen/Core>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <numeric>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "glassbox/core/error.hpp"
#include "glassbox/core/execution.hpp"
#include "glassbox/core/model.hpp"
#include "glassbox/core/progress.hpp"
#include "glassbox/core/random.hpp"
#include "glassbox/core/result.hpp"
#include "glassbox/core/target.hpp"
#include "glassbox/core/types.hpp"
#include "glassbox/detail/eigen.hpp"
#include "glassbox/representations/types.hpp"

namespace glassbox {

/// A model whose residual stream can be decoded to logits: an ActivationModel with the optional
/// member decode_hidden, or with logits_from_hidden (decoding at the last layer).
template <class M>
concept LensModel =
    ActivationModel<M> && (concepts::has_decode_hidden<M> || concepts::has_logits_from_hidden<M>);

/// Options of a lens readout.
struct lens_options {
  std::vector<std::size_t> layers{};  ///< hidden-state indices to read (default: all 0..L)
  std::size_t top_k = 5;              ///< most probable tokens kept per layer and position
  std::optional<token_id> target{};   ///< a token whose probability and rank are reported
};

/// What one layer's lens predicts at one position.
struct lens_cell {
  std::vector<token_id> top_ids;  ///< the top_k most probable tokens, most probable first
  std::vector<double> top_p;      ///< their probabilities
  double target_p = std::numeric_limits<double>::quiet_NaN();  ///< the target's probability (if a target)
  std::size_t target_rank = 0;    ///< 1 + tokens strictly more probable than the target (if a target)
  double kl_to_final = 0.0;       ///< KL(p_L || p_k) in nats: how far from the model's own output
  double entropy = 0.0;           ///< entropy of p_k in nats
};

/// One layer of a lens readout: a cell per position.
struct lens_layer {
  std::size_t layer = 0;             ///< hidden-state index (0 = embeddings, L = after the last block)
  std::vector<lens_cell> positions;  ///< one per token
};

/// A logit- or tuned-lens readout of one input.
struct lens_result {
  std::string method;                ///< "logit_lens" or "tuned_lens"
  token_sequence token_ids;          ///< the input
  std::optional<token_id> target{};  ///< the target, if one was given
  std::vector<lens_layer> layers;    ///< one per layer read, ascending
};

/// Options of tuned-lens training: SGD with Nesterov momentum and weight decay (PyTorch's
/// semantics), the learning rate decayed linearly to zero (the paper's optimiser; docs/representations.md
/// says why the default learning rate is 0.1).
struct tuned_lens_options {
  std::size_t steps = 250;         ///< optimiser steps
  double learning_rate = 0.1;      ///< initial learning rate
  double momentum = 0.9;           ///< Nesterov momentum
  double weight_decay = 1e-3;      ///< L2 decay added to the gradient of M_k and b_k
  std::size_t batch_sequences = 0; ///< sequences per step, drawn with `seed`; 0 = every sequence
  std::uint64_t seed = 0;          ///< the batches
  execution_options execution{};   ///< threads, progress (one item per step), cancellation
};

/// A trained tuned lens and its training curve.
struct tuned_lens_training {
  tuned_lens lens;                    ///< the translators
  std::vector<double> initial_kl;     ///< per index 0..L-1: mean KL(p_L || p_k) of the logit lens, nats
  std::vector<double> final_kl;       ///< per index 0..L-1: the same for the trained lens (training data)
  std::vector<double> loss;           ///< per step: the mean over layers of the batch's mean KL
};

/// Per layer, how close a lens comes to the model over a data set.
struct lens_evaluation_layer {
  std::size_t layer = 0;     ///< hidden-state index
  double kl = 0.0;           ///< mean KL(p_L || p_k) over every position, in nats
  double perplexity = 0.0;   ///< exp of the mean cross-entropy of the scored rows' labels under p_k
  double accuracy = 0.0;     ///< fraction of scored rows whose label is p_k's most probable token
};

/// A lens evaluated over a data set.
struct lens_evaluation {
  std::string method;                        ///< "logit_lens" or "tuned_lens"
  std::vector<lens_evaluation_layer> layers; ///< every index 0..L
  std::size_t positions = 0;                 ///< positions the KL averages over
  std::size_t scored_rows = 0;               ///< labelled rows the perplexity averages over
};

namespace detail {

/// The hidden states of one input as float, checked against its length.
template <class M>
tensor3 lens_hidden_states(const M& model, token_span tokens, std::string_view who) {
  tensor3 hs = model_hidden_states(model, tokens, who);
  require<shape_error>(hs.dimension() == 3 && hs.shape(0) >= 1 && hs.shape(1) == tokens.size(),
                       "glassbox::{}: hidden_states must be [L + 1, {}, d], got [{}, {}, {}]", who, tokens.size(),
                       hs.shape(0), hs.shape(1), hs.shape(2));
  return hs;
}

/// Decodes rows h [R, d]: through decode_hidden in one call, else through logits_from_hidden at the
/// last layer, `rows_per_call` rows (the input's length) at a time.
template <class M>
tensor2 lens_decode(const M& model, token_span tokens, std::size_t n_layer, const tensor2& h, std::string_view who) {
  const std::size_t R = h.shape(0), d = h.shape(1);
  if constexpr (concepts::has_decode_hidden<M>) {
    return model_decode_hidden(model, h, who);
  } else {
    const std::size_t T = tokens.size();
    require<shape_error>(T > 0 && R % T == 0, "glassbox::{}: {} rows do not split into inputs of {} tokens", who, R, T);
    tensor2 out;
    for (std::size_t b = 0; b < R / T; ++b) {
      tensor2 part = tensor2::from_shape({T, d});
      std::copy_n(h.data() + b * T * d, T * d, part.data());
      const tensor2 z = model_logits_from_hidden(model, tokens, n_layer, part, who, b);
      require<model_error>(z.shape(0) == T,
                           "glassbox::{}: logits_from_hidden() must return [{}, V] to decode (one row per position), "
                           "got [{}, {}]",
                           who, T, z.shape(0), z.shape(1));
      if (b == 0) out = tensor2::from_shape({R, z.shape(1)});
      std::copy_n(z.data(), T * z.shape(1), out.data() + b * T * z.shape(1));
    }
    return out;
  }
}

/// Writes row h of index k translated by the tuned lens (h + h M + b) into out (d floats), in double.
template <class T = void>
void lens_translate_row(const float* h, const tuned_lens& lens, std::size_t k, std::size_t d, float* out) {
  using real = dependent_t<T, double>;  // so that the Eigen expressions compile only where this is called
  using real_f = dependent_t<T, float>;
  using map_row = Eigen::Map<const Eigen::Matrix<real_f, 1, Eigen::Dynamic>>;
  using map_mat = Eigen::Map<const detail::row_matrix<real_f>>;
  const map_row x(h, static_cast<Eigen::Index>(d));
  const map_mat m(lens.weights[k].data(), static_cast<Eigen::Index>(d), static_cast<Eigen::Index>(d));
  const Eigen::Matrix<real, 1, Eigen::Dynamic> y =
      x.template cast<real>() + x.template cast<real>() * m.template cast<real>() +
      map_row(lens.biases[k].data(), static_cast<Eigen::Index>(d)).template cast<real>();
  for (std::size_t j = 0; j < d; ++j) out[j] = static_cast<float>(y[static_cast<Eigen::Index>(j)]);
}

/// log-sum-exp of one logits row, in double.
template <class = void>
inline double lens_log_sum_exp(const float* z, std::size_t V) {
  double m = -std::numeric_limits<double>::infinity();
  for (std::size_t v = 0; v < V; ++v) m = std::max(m, static_cast<double>(z[v]));
  double s = 0.0;
  for (std::size_t v = 0; v < V; ++v) s += std::exp(static_cast<double>(z[v]) - m);
  return m + std::log(s);
}

/// KL(p || q) in nats for logits rows zp, zq with their log-sum-exps.
template <class = void>
inline double lens_kl(const float* zp, double lse_p, const float* zq, double lse_q, std::size_t V) {
  double kl = 0.0;
  for (std::size_t v = 0; v < V; ++v) {
    const double lp = zp[v] - lse_p, lq = zq[v] - lse_q;
    kl += std::exp(lp) * (lp - lq);
  }
  return std::max(0.0, kl);
}

/// Checks the layers to read against L and returns them ascending (all 0..L when empty).
template <class = void>
std::vector<std::size_t> lens_layers(std::vector<std::size_t> layers, std::size_t L, std::string_view who) {
  if (layers.empty()) {
    layers.resize(L + 1);
    std::iota(layers.begin(), layers.end(), std::size_t{0});
  }
  for (auto k : layers)
    require<shape_error>(k <= L, "glassbox::{}: layers must be hidden-state indices 0..{}, got {}", who, L, k);
  std::sort(layers.begin(), layers.end());
  layers.erase(std::unique(layers.begin(), layers.end()), layers.end());
  return layers;
}

/// Checks a tuned lens against a model's L and d.
template <class = void>
void check_tuned_lens(const tuned_lens& lens, std::size_t L, std::size_t d, std::string_view who) {
  require<shape_error>(lens.weights.size() == L && lens.biases.size() == L,
                       "glassbox::{}: the tuned lens must have {} translators (one per block), got {}", who, L,
                       lens.weights.size());
  for (std::size_t k = 0; k < L; ++k)
    require<shape_error>(lens.weights[k].shape() == std::array<std::size_t, 2>{d, d} && lens.biases[k].size() == d,
                         "glassbox::{}: translator {} must be [{}, {}] with a bias of {}, got [{}, {}] and {}", who, k,
                         d, d, d, lens.weights[k].shape(0), lens.weights[k].shape(1), lens.biases[k].size());
}

/// The decoded logits of the requested layers (translated by `lens` if given) stacked
/// [layers x T, V], and of the last layer [T, V] (untranslated).
template <class M>
std::pair<tensor2, tensor2> lens_logits(const M& model, token_span tokens, const std::vector<std::size_t>& layers,
                                        const tuned_lens* lens, const tensor3& hs, std::string_view who) {
  const std::size_t L = hs.shape(0) - 1, T = hs.shape(1), d = hs.shape(2);
  // The last layer comes first: it is the reference every other row is compared with. It is
  // decoded once, also when it is one of the requested layers (it is never translated).
  std::vector<std::size_t> decoded;  // the requested layers below L, in order
  for (auto k : layers)
    if (k < L) decoded.push_back(k);
  tensor2 h = tensor2::from_shape({(decoded.size() + 1) * T, d});
  std::copy_n(hs.data() + L * T * d, T * d, h.data());
  for (std::size_t i = 0; i < decoded.size(); ++i) {
    const std::size_t k = decoded[i];
    float* dst = h.data() + (i + 1) * T * d;
    const float* src = hs.data() + k * T * d;
    if (lens != nullptr) {
      for (std::size_t t = 0; t < T; ++t) lens_translate_row(src + t * d, *lens, k, d, dst + t * d);
    } else {
      std::copy_n(src, T * d, dst);
    }
  }
  const tensor2 z = lens_decode(model, tokens, L, h, who);
  const std::size_t V = z.shape(1);
  tensor2 last = tensor2::from_shape({T, V}), rest = tensor2::from_shape({layers.size() * T, V});
  std::copy_n(z.data(), T * V, last.data());
  for (std::size_t i = 0, j = 0; i < layers.size(); ++i) {
    const float* src = layers[i] < L ? z.data() + (++j) * T * V : z.data();
    std::copy_n(src, T * V, rest.data() + i * T * V);
  }
  return {std::move(last), std::move(rest)};
}

/// The readout of one input, with or without a tuned lens.
template <class M>
lens_result lens_readout(const M& model, token_span tokens, const lens_options& options, const tuned_lens* lens,
                         std::string_view who) {
  require<shape_error>(!tokens.empty(), "glassbox::{}: tokens must not be empty", who);
  require<error>(options.top_k >= 1, "glassbox::{}: options.top_k must be >= 1, got {}", who, options.top_k);
  const tensor3 hs = lens_hidden_states(model, tokens, who);
  const std::size_t L = hs.shape(0) - 1, T = hs.shape(1), d = hs.shape(2);
  if (lens != nullptr) check_tuned_lens(*lens, L, d, who);
  const auto layers = lens_layers(options.layers, L, who);
  const auto [last, rest] = lens_logits(model, tokens, layers, lens, hs, who);
  const std::size_t V = last.shape(1);
  if (options.target)
    require<error>(*options.target >= 0 && static_cast<std::size_t>(*options.target) < V,
                   "glassbox::{}: options.target must be a token id in [0, {}), got {}", who, V, *options.target);
  // The model's own probabilities and negative entropy per position, once. Exponentials are taken
  // over whole rows in double with Eigen's vectorised exp (the scalar loop cost more than the
  // passes on small models).
  using row_d = Eigen::Array<dependent_t<M, double>, Eigen::Dynamic, 1>;  // dependent: see dependent_t
  using map_f = Eigen::Map<const Eigen::Array<dependent_t<M, float>, Eigen::Dynamic, 1>>;
  const auto Vi = static_cast<Eigen::Index>(V);
  std::vector<double> p_last(T * V), neg_entropy_last(T, 0.0);
  row_d zd(Vi), e(Vi);
  for (std::size_t t = 0; t < T; ++t) {
    zd = map_f(last.data() + t * V, Vi).template cast<double>();
    const double m = zd.maxCoeff();
    e = (zd - m).exp();
    const double lse = m + std::log(e.sum());
    Eigen::Map<row_d> p(p_last.data() + t * V, Vi);
    p = e / e.sum();
    neg_entropy_last[t] = (p * (zd - lse)).sum();
  }

  lens_result r;
  r.method = lens != nullptr ? "tuned_lens" : "logit_lens";
  r.token_ids.assign(tokens.begin(), tokens.end());
  r.target = options.target;
  const std::size_t K = std::min(options.top_k, V);
  // Ranks before: a larger logit, or an equal one with a smaller id.
  const auto before = [](float za, std::size_t a, float zb, std::size_t b) { return za > zb || (za == zb && a < b); };
  std::vector<std::size_t> top;
  for (std::size_t i = 0; i < layers.size(); ++i) {
    lens_layer layer{layers[i], {}};
    for (std::size_t t = 0; t < T; ++t) {
      const float* z = rest.data() + (i * T + t) * V;
      // The top K: insertion into a sorted list of K. Once it is full, only a logit above its last
      // one can enter (ids grow, so a tie never does), and blocks of 16 whose maximum is not above
      // it are skipped with one vectorised maximum.
      top.clear();
      float floor = 0.0f;  // the last of the top K, once there are K
      for (std::size_t b = 0; b < V; b += 16) {
        const std::size_t end = std::min(V, b + 16);
        if (top.size() == K && !(map_f(z + b, static_cast<Eigen::Index>(end - b)).maxCoeff() > floor)) continue;
        for (std::size_t v = b; v < end; ++v) {
          if (top.size() == K && !(z[v] > floor)) continue;
          if (top.size() == K) top.pop_back();
          auto at = top.end();
          while (at != top.begin() && before(z[v], v, z[*(at - 1)], *(at - 1))) --at;
          top.insert(at, v);
          if (top.size() == K) floor = z[top.back()];
        }
      }
      // One exp pass: sum e^(z - max) and sum e^(z - max) z give the normaliser and the entropy
      // (H = lse - E_p[z]); the KL is E_pf[log pf] - E_pf[z] + lse, with no exp at all.
      const double zmax = z[top.front()];
      zd = map_f(z, Vi).template cast<double>();
      e = (zd - zmax).exp();
      const double sum = e.sum(), ez = (e * zd).sum();
      const double fz = (Eigen::Map<const row_d>(p_last.data() + t * V, Vi) * zd).sum();
      const double lse = zmax + std::log(sum);
      const double h = lse - ez / sum;
      const double kl = neg_entropy_last[t] - fz + lse;
      lens_cell c;
      for (auto v : top) {
        c.top_ids.push_back(static_cast<token_id>(v));
        c.top_p.push_back(std::exp(static_cast<double>(z[v]) - lse));
      }
      if (options.target) {
        const float zt = z[*options.target];
        c.target_p = std::exp(static_cast<double>(zt) - lse);
        c.target_rank = 1 + static_cast<std::size_t>(std::count_if(z, z + V, [&](float x) { return x > zt; }));
      }
      c.kl_to_final = std::max(0.0, kl);
      c.entropy = h;
      layer.positions.push_back(std::move(c));
    }
    r.layers.push_back(std::move(layer));
  }
  return r;
}

/// Lens statistics over a data set (every layer 0..L), with or without a tuned lens.
template <class M>
lens_evaluation lens_evaluate(const M& model, std::span<const training_example> data, const tuned_lens* lens,
                              const execution_options& exec, std::string_view who) {
  require<error>(!data.empty(), "glassbox::{}: data must not be empty", who);
  std::vector<double> kl, ce;
  std::vector<std::size_t> correct;
  std::size_t positions = 0, scored = 0, L = 0;
  progress_reporter reporter(exec.on_progress, exec.stop, data.size(), who);
  pass_threads_scope scope(exec.threads);
  for (std::size_t s = 0; s < data.size(); ++s) {
    reporter.check();
    const auto& ex = data[s];
    const token_span tokens(ex.tokens);
    require<shape_error>(ex.labels.size() == ex.tokens.size(),
                         "glassbox::{}: example {} has {} tokens and {} labels (one per row expected)", who, s,
                         ex.tokens.size(), ex.labels.size());
    const tensor3 hs = lens_hidden_states(model, tokens, who);
    if (s == 0) {
      L = hs.shape(0) - 1;
      if (lens != nullptr) check_tuned_lens(*lens, L, hs.shape(2), who);
      kl.assign(L + 1, 0.0);
      ce.assign(L + 1, 0.0);
      correct.assign(L + 1, 0);
    }
    require<shape_error>(hs.shape(0) == L + 1, "glassbox::{}: example {} has {} hidden states, the first had {}", who,
                         s, hs.shape(0), L + 1);
    std::vector<std::size_t> all(L + 1);
    std::iota(all.begin(), all.end(), std::size_t{0});
    const auto [last, rest] = lens_logits(model, tokens, all, lens, hs, who);
    const std::size_t T = tokens.size(), V = last.shape(1);
    for (std::size_t t = 0; t < T; ++t) {
      const double lse_f = lens_log_sum_exp(last.data() + t * V, V);
      const token_id y = ex.labels[t];
      if (y != training_example::ignore_label)
        require<error>(y >= 0 && static_cast<std::size_t>(y) < V,
                       "glassbox::{}: example {} row {} has label {}, outside [0, {})", who, s, t, y, V);
      for (std::size_t k = 0; k <= L; ++k) {
        const float* z = rest.data() + (k * T + t) * V;
        const double lse = lens_log_sum_exp(z, V);
        kl[k] += lens_kl(last.data() + t * V, lse_f, z, lse, V);
        if (y != training_example::ignore_label) {
          ce[k] += lse - z[y];
          const auto top = static_cast<std::size_t>(std::max_element(z, z + V) - z);
          if (top == static_cast<std::size_t>(y)) ++correct[k];
        }
      }
      positions += 1;
      if (y != training_example::ignore_label) scored += 1;
    }
    reporter.advance(1);
  }
  lens_evaluation e;
  e.method = lens != nullptr ? "tuned_lens" : "logit_lens";
  e.positions = positions;
  e.scored_rows = scored;
  for (std::size_t k = 0; k <= L; ++k) {
    const double n = static_cast<double>(std::max<std::size_t>(scored, 1));
    e.layers.push_back({k, kl[k] / static_cast<double>(positions), scored > 0 ? std::exp(ce[k] / n) : 0.0,
                        scored > 0 ? static_cast<double>(correct[k]) / n : 0.0});
  }
  return e;
}

}  // namespace detail

/// The logits [T, V] of hidden-state index `layer` decoded by the logit lens (the model's final
/// norm and unembedding), in the model's precision; at layer L they are the model's logits.
template <LensModel M>
auto logit_lens_logits(const M& model, token_span tokens, std::size_t layer) {
  auto hs = detail::model_hidden_states(model, tokens, "logit_lens_logits");
  const std::size_t L = hs.shape(0) - 1, T = hs.shape(1), d = hs.shape(2);
  detail::require<shape_error>(layer <= L, "glassbox::logit_lens_logits: layer must be <= {}, got {}", L, layer);
  using value_type = typename std::decay_t<decltype(hs)>::value_type;
  auto h = xt::xtensor<value_type, 2>::from_shape({T, d});
  std::copy_n(hs.data() + layer * T * d, T * d, h.data());
  if constexpr (concepts::has_decode_hidden<M>)
    return detail::model_decode_hidden(model, h, "logit_lens_logits");
  else
    return detail::model_logits_from_hidden(model, tokens, L, h, "logit_lens_logits");
}

/// The logit lens of one input: per layer and position, the top tokens of the decoded residual
/// stream, the target's probability and rank, the KL to the model's output and the entropy.
///
/// Example:
///   auto lens = glassbox::logit_lens(model, tokens, {.top_k = 3, .target = 3});
///   for (const auto& layer : lens.layers) fmt::print("{} {}\n", layer.layer, layer.positions.back().target_p);
template <LensModel M>
lens_result logit_lens(const M& model, token_span tokens, const lens_options& options = {}) {
  return detail::lens_readout(model, tokens, options, nullptr, "logit_lens");
}

/// The tuned lens of one input: as logit_lens, each layer's residual translated first.
template <LensModel M>
lens_result logit_lens(const M& model, token_span tokens, const tuned_lens& lens, const lens_options& options = {}) {
  return detail::lens_readout(model, tokens, options, &lens, "tuned_lens");
}

/// Per layer, the logit lens' mean KL to the model's output over every position of `data`, and the
/// perplexity and accuracy of its scored rows (training_example labels).
template <LensModel M>
lens_evaluation evaluate_lens(const M& model, std::span<const training_example> data,
                              const execution_options& execution = {}) {
  return detail::lens_evaluate(model, data, nullptr, execution, "evaluate_lens");
}

/// evaluate_lens for a tuned lens.
template <LensModel M>
lens_evaluation evaluate_lens(const M& model, std::span<const training_example> data, const tuned_lens& lens,
                              const execution_options& execution = {}) {
  return detail::lens_evaluate(model, data, &lens, execution, "evaluate_lens");
}

/// Trains a tuned lens on `inputs`: per index k < L, translators minimising the mean over every
/// position of KL(p_L || softmax(decode(h_k + h_k M_k + b_k))), with gradients through
/// hidden_gradient at the last layer. Deterministic under options.seed for any thread count.
///
/// Example:
///   auto trained = glassbox::train_tuned_lens(model, reviews, {.steps = 100});
///   auto view = glassbox::logit_lens(model, tokens, trained.lens);
template <InterventionModel M>
tuned_lens_training train_tuned_lens(const M& model, std::span<const token_sequence> inputs,
                                     const tuned_lens_options& options = {}) {
  constexpr std::string_view who = "train_tuned_lens";
  detail::require<error>(!inputs.empty(), "glassbox::{}: inputs must not be empty", who);
  detail::require<error>(options.steps >= 1, "glassbox::{}: options.steps must be >= 1, got {}", who, options.steps);
  detail::require<error>(options.learning_rate > 0 && std::isfinite(options.learning_rate),
                         "glassbox::{}: options.learning_rate must be > 0, got {}", who, options.learning_rate);
  detail::require<error>(options.momentum >= 0 && options.momentum < 1,
                         "glassbox::{}: options.momentum must be in [0, 1), got {}", who, options.momentum);
  detail::require<error>(options.weight_decay >= 0, "glassbox::{}: options.weight_decay must be >= 0, got {}", who,
                         options.weight_decay);
  const auto& exec = options.execution;
  pass_threads_scope scope(exec.threads);

  // The hidden states do not depend on the lens: one pass per input, kept for every step.
  std::vector<tensor3> hidden;
  hidden.reserve(inputs.size());
  for (const auto& seq : inputs) {
    detail::require<shape_error>(!seq.empty(), "glassbox::{}: every input must have tokens", who);
    hidden.push_back(detail::lens_hidden_states(model, token_span(seq), who));
    detail::require<shape_error>(hidden.back().shape(0) == hidden.front().shape(0),
                                 "glassbox::{}: inputs give different numbers of hidden states", who);
  }
  const std::size_t L = hidden.front().shape(0) - 1, d = hidden.front().shape(2);
  detail::require<shape_error>(L >= 1, "glassbox::{}: the model must have at least one block", who);
  const auto dd = static_cast<Eigen::Index>(d);

  // Eigen types that depend on M, so that their expressions compile only with the template.
  using real = detail::dependent_t<M, double>;
  using real_f = detail::dependent_t<M, float>;
  using matd = detail::row_matrix<real>;
  using vecd = Eigen::Matrix<real, 1, Eigen::Dynamic>;
  std::vector<matd> W(L, matd::Zero(dd, dd)), bufW(L, matd::Zero(dd, dd)), gW(L, matd::Zero(dd, dd));
  std::vector<vecd> B(L, vecd::Zero(dd)), bufB(L, vecd::Zero(dd)), gB(L, vecd::Zero(dd));
  tuned_lens lens = tuned_lens::identity(L, d);
  auto publish = [&] {
    for (std::size_t k = 0; k < L; ++k) {
      for (Eigen::Index i = 0; i < dd * dd; ++i) lens.weights[k].data()[i] = static_cast<float>(W[k].data()[i]);
      for (Eigen::Index i = 0; i < dd; ++i) lens.biases[k].data()[i] = static_cast<float>(B[k][i]);
    }
  };

  // Mean KL per layer over `batch`, and (if grad) the gradients of the mean over layers' sum.
  auto pass = [&](std::span<const std::size_t> batch, bool grad) {
    std::size_t rows = 0;
    for (auto s : batch) rows += inputs[s].size();
    const double w = 1.0 / static_cast<double>(rows);
    std::vector<double> kl(L, 0.0);
    for (std::size_t k = 0; k < L && grad; ++k) {
      gW[k].setZero();
      gB[k].setZero();
    }
    for (auto s : batch) {
      if (exec.stop.stop_requested()) detail::fail<cancelled>("glassbox::{}: cancelled", who);
      const token_span tokens(inputs[s]);
      const std::size_t T = tokens.size();
      const tensor3& hs = hidden[s];
      // The model's own distribution at every position: the reference of every layer.
      tensor2 hl = tensor2::from_shape({T, d});
      std::copy_n(hs.data() + L * T * d, T * d, hl.data());
      const tensor2 zf = detail::lens_decode(model, tokens, L, hl, who);
      const std::size_t V = zf.shape(1);
      tensor2 pf = tensor2::from_shape({T, V});
      std::vector<double> lse_f(T);
      for (std::size_t t = 0; t < T; ++t) {
        lse_f[t] = detail::lens_log_sum_exp(zf.data() + t * V, V);
        for (std::size_t v = 0; v < V; ++v)
          pf.data()[t * V + v] = static_cast<float>(std::exp(zf.data()[t * V + v] - lse_f[t]));
      }
      for (std::size_t k = 0; k < L; ++k) {
        tensor2 h = tensor2::from_shape({T, d});
        for (std::size_t t = 0; t < T; ++t) detail::lens_translate_row(hs.data() + (k * T + t) * d, lens, k, d, h.data() + t * d);
        if (!grad) {
          const tensor2 z = detail::lens_decode(model, tokens, L, h, who);
          for (std::size_t t = 0; t < T; ++t)
            kl[k] += w * detail::lens_kl(zf.data() + t * V, lse_f[t], z.data() + t * V,
                                         detail::lens_log_sum_exp(z.data() + t * V, V), V);
          continue;
        }
        const output_seed seed(
            [](std::size_t n) {
              std::vector<std::size_t> r(n);
              std::iota(r.begin(), r.end(), std::size_t{0});
              return r;
            },
            [&](const tensor2& z, tensor2& dz) {
              dz = tensor2::from_shape(z.shape());
              double value = 0.0;
              for (std::size_t t = 0; t < z.shape(0); ++t) {
                const float* zr = z.data() + t * V;
                const double lse = detail::lens_log_sum_exp(zr, V);
                value += w * detail::lens_kl(zf.data() + t * V, lse_f[t], zr, lse, V);
                for (std::size_t v = 0; v < V; ++v)
                  dz.data()[t * V + v] = static_cast<float>(w * (std::exp(zr[v] - lse) - pf.data()[t * V + v]));
              }
              return value;
            });
        const auto g = detail::model_hidden_gradient(model, tokens, L, h, seed, who);
        kl[k] += g.value;
        const Eigen::Map<const detail::row_matrix<real_f>> G(g.gradient.data(), static_cast<Eigen::Index>(T), dd);
        const Eigen::Map<const detail::row_matrix<real_f>> X(hs.data() + k * T * d, static_cast<Eigen::Index>(T), dd);
        gW[k].noalias() += X.template cast<real>().transpose() * G.template cast<real>();
        gB[k] += G.template cast<real>().colwise().sum();
      }
    }
    return kl;
  };

  std::vector<std::size_t> everything(inputs.size());
  std::iota(everything.begin(), everything.end(), std::size_t{0});
  tuned_lens_training out;
  out.initial_kl = pass(everything, false);
  rng gen(options.seed);
  const std::size_t batch_size =
      options.batch_sequences == 0 ? inputs.size() : std::min(options.batch_sequences, inputs.size());
  detail::progress_reporter reporter(exec.on_progress, exec.stop, options.steps, who);
  std::vector<std::size_t> batch = everything;
  for (std::size_t step = 0; step < options.steps; ++step) {
    if (batch_size < inputs.size()) {
      gen.shuffle(everything.begin(), everything.end());
      batch.assign(everything.begin(), everything.begin() + static_cast<std::ptrdiff_t>(batch_size));
      std::sort(batch.begin(), batch.end());
    }
    const auto kl = pass(batch, true);
    out.loss.push_back(std::accumulate(kl.begin(), kl.end(), 0.0) / static_cast<double>(L));
    const double lr =
        options.learning_rate * (1.0 - static_cast<double>(step) / static_cast<double>(options.steps));
    const double mu = options.momentum, wd = options.weight_decay;
    for (std::size_t k = 0; k < L; ++k) {
      gW[k] += wd * W[k];
      gB[k] += wd * B[k];
      bufW[k] = mu * bufW[k] + gW[k];
      bufB[k] = mu * bufB[k] + gB[k];
      W[k] -= lr * (gW[k] + mu * bufW[k]);
      B[k] -= lr * (gB[k] + mu * bufB[k]);
    }
    publish();
    reporter.advance(1);
  }
  out.final_kl = pass(everything, false);
  out.lens = std::move(lens);
  return out;
}

}  // namespace glassbox

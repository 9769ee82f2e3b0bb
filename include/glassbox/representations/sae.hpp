// glassbox: sparse autoencoders over a model's residual stream (Bricken et al. 2023, "Towards
// Monosemanticity", Anthropic): training with Adam, a learning-rate warm-up, unit-norm decoder
// rows and the resampling of dead features; the metrics (MSE, explained variance, L0, dead and
// dense fractions, the fraction of the model's loss recovered by splicing the reconstruction in);
// per feature the top-activating contexts, the logit effects of its decoder direction, and, with
// known per-token properties (the review language's), how well the feature matches each one.
// docs/representations.md, "Sparse autoencoders", has the formulas and the defaults.
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <numeric>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "glassbox/core/error.hpp"
#include "glassbox/core/execution.hpp"
#include "glassbox/core/model.hpp"
#include "glassbox/core/progress.hpp"
#include "glassbox/core/random.hpp"
#include "glassbox/core/types.hpp"
#include "glassbox/detail/eigen.hpp"
#include "glassbox/representations/types.hpp"
#include "glassbox/representations/detail/sae_kernels.hpp"

namespace glassbox {

/// When dead features are resampled, and from what (Bricken et al. 2023, "Neuron resampling").
struct sae_resampling {
  /// Resample at every multiple of this many steps (0 = never). The paper: 25,000 of 100,000+ steps.
  std::size_t every = 2500;
  /// A feature is dead when it has not fired on any of the last `window` training tokens (rows);
  /// 0 = half of `every` steps' tokens (the paper: 12,500 steps before each resampling at 25,000).
  std::size_t window = 0;
  /// Rows drawn (uniformly, seeded) whose reconstruction loss weights the choice of new directions
  /// (the paper: 819,200); at most the data's rows.
  std::size_t pool = 16384;
  /// The new encoder row's norm, as a fraction of the mean norm of the live features' encoder rows (the paper: 0.2).
  double encoder_scale = 0.2;
};

/// One record of the training history, over the minibatch of its step.
struct sae_step_record {
  std::size_t step = 0;         ///< steps done
  std::size_t tokens = 0;       ///< rows seen
  double loss = 0;              ///< reconstruction + lambda * L1, per row
  double reconstruction = 0;    ///< mean over rows of ||x - x_hat||^2 (summed over d)
  double l0 = 0;                ///< mean active features per row
  double dead_fraction = 0;     ///< features that fired on none of the last `window` rows
  double learning_rate = 0;     ///< the step's learning rate
  double seconds = 0;           ///< wall time since training started
};

/// Options of SAE training. Defaults: n = 8 d, lambda = 1e-3, Adam (lr 1e-3, betas 0.9 / 0.999,
/// eps 1e-8) with a 100-step linear warm-up, batches of 1024 rows, one epoch, resampling as the paper.
struct sae_options {
  std::size_t features = 0;        ///< n, the dictionary size; 0 = 8 d
  double l1 = 1e-3;                ///< lambda of the L1 penalty
  double learning_rate = 1e-3;     ///< Adam's learning rate after the warm-up
  std::size_t warmup_steps = 100;  ///< the rate rises linearly from lr / warmup to lr over these steps
  double beta1 = 0.9;              ///< Adam's first-moment decay
  double beta2 = 0.999;            ///< Adam's second-moment decay
  double epsilon = 1e-8;           ///< Adam's epsilon
  std::size_t batch_size = 1024;   ///< rows per step (capped at the data's rows)
  std::size_t steps = 0;           ///< optimizer steps; 0 = `epochs` passes over the data
  std::size_t epochs = 1;          ///< passes over the data when steps = 0
  sae_resampling resampling{};     ///< dead-feature resampling
  /// Below this fraction of active entries in a batch, the products with the features run over the
  /// active entries only (the same gradient, computed in less time); 0 = always dense products.
  double sparse_below = 0.05;
  /// Start from this SAE (not owned; its d must match the data, `features` is ignored) instead of
  /// the seeded initialisation; Adam's moments start at zero.
  const sparse_autoencoder* initial = nullptr;
  std::size_t layer = 0;       ///< recorded in the result (the hidden-state index of the activations)
  std::string model_name{};    ///< recorded in the result
  std::uint64_t seed = 0;      ///< initialisation, batch order, resampling: same seed, same bits
  std::size_t log_every = 50;  ///< steps between the records of the training history (and on_step calls)
  /// Called every log_every steps and at the end with the latest record (e.g. for a progress line).
  std::function<void(const sae_step_record&)> on_step{};
  execution_options execution{};  ///< threads (the products' budget), progress in rows, cancellation
};

/// A trained SAE with its history.
struct sae_training_result {
  sparse_autoencoder sae;                 ///< the autoencoder
  std::vector<sae_step_record> history;   ///< every log_every steps, and the last step
  std::vector<std::size_t> resampled;     ///< features resampled at each resampling (in order)
  std::size_t steps = 0;                  ///< optimizer steps taken
  std::size_t tokens = 0;                 ///< rows processed
  double seconds = 0;                     ///< wall time of training
};

namespace detail {

template <class S>
sae_parameters<S> sae_to_parameters(const sparse_autoencoder& sae) {
  const auto d = static_cast<Eigen::Index>(sae.input_width()), n = static_cast<Eigen::Index>(sae.feature_count());
  sae_parameters<S> p;
  p.zeros(d, n);
  for (Eigen::Index c = 0; c < d; ++c)
    for (Eigen::Index j = 0; j < n; ++j) p.W_e(j, c) = static_cast<S>(sae.W_enc(c, j));
  for (Eigen::Index j = 0; j < n; ++j) {
    p.b_e[j] = static_cast<S>(sae.b_enc(j));
    for (Eigen::Index c = 0; c < d; ++c) p.W_dec(j, c) = static_cast<S>(sae.W_dec(j, c));
  }
  for (Eigen::Index c = 0; c < d; ++c) p.b_d[c] = static_cast<S>(sae.b_dec(c));
  return p;
}

template <class S>
void sae_from_parameters(const sae_parameters<S>& p, sparse_autoencoder& sae) {
  const auto d = static_cast<std::size_t>(p.W_e.cols()), n = static_cast<std::size_t>(p.W_e.rows());
  sae.W_enc = tensor2::from_shape({d, n});
  sae.W_dec = tensor2::from_shape({n, d});
  sae.b_enc = tensor1::from_shape({n});
  sae.b_dec = tensor1::from_shape({d});
  for (std::size_t c = 0; c < d; ++c)
    for (std::size_t j = 0; j < n; ++j) sae.W_enc(c, j) = static_cast<float>(p.W_e(j, c));
  for (std::size_t j = 0; j < n; ++j) {
    sae.b_enc(j) = static_cast<float>(p.b_e[j]);
    for (std::size_t c = 0; c < d; ++c) sae.W_dec(j, c) = static_cast<float>(p.W_dec(j, c));
  }
  for (std::size_t c = 0; c < d; ++c) sae.b_dec(c) = static_cast<float>(p.b_d[c]);
}

/// Checks an activation matrix against width d; throws shape_error / error naming `who`.
template <class = void>
void check_sae_input(const tensor2& x, std::size_t d, std::string_view who) {
  require<shape_error>(x.shape(0) >= 1, "glassbox::{}: activations must have at least one row, got 0", who);
  require<shape_error>(x.shape(1) == d, "glassbox::{}: activations must have {} columns (d), got {}", who, d,
                       x.shape(1));
}

/// Copies rows `rows` of x into the batch matrix.
template <class S>
void sae_gather_rows(const tensor2& x, std::span<const std::size_t> rows, sae_matrix<S>& out) {
  const std::size_t d = x.shape(1);
  out.resize(static_cast<Eigen::Index>(rows.size()), static_cast<Eigen::Index>(d));
  for (std::size_t r = 0; r < rows.size(); ++r) {
    const float* src = x.data() + rows[r] * d;
    for (std::size_t c = 0; c < d; ++c) out(static_cast<Eigen::Index>(r), static_cast<Eigen::Index>(c)) = static_cast<S>(src[c]);
  }
}

/// The seeded initialisation: decoder rows normal then unit-norm, encoder = decoder (W_enc = W_dec^T),
/// b_enc = 0, b_dec = the data's mean (in double).
template <class S>
sae_parameters<S> sae_initial_parameters(const tensor2& x, std::size_t n, std::uint64_t seed) {
  const std::size_t rows = x.shape(0), d = x.shape(1);
  sae_parameters<S> p;
  p.zeros(static_cast<Eigen::Index>(d), static_cast<Eigen::Index>(n));
  rng g = rng(seed).fork(0);
  for (Eigen::Index j = 0; j < p.W_dec.rows(); ++j)
    for (Eigen::Index c = 0; c < p.W_dec.cols(); ++c) p.W_dec(j, c) = static_cast<S>(g.normal());
  sae_normalise_rows(p.W_dec);
  p.W_e = p.W_dec;
  std::vector<double> mean(d, 0.0);
  for (std::size_t r = 0; r < rows; ++r)
    for (std::size_t c = 0; c < d; ++c) mean[c] += static_cast<double>(x.data()[r * d + c]);
  for (std::size_t c = 0; c < d; ++c) p.b_d[static_cast<Eigen::Index>(c)] = static_cast<S>(mean[c] / static_cast<double>(rows));
  return p;
}

/// Adam's moments of every parameter.
template <class S>
struct sae_adam_state {
  sae_parameters<S> m, v;
};

/// Resamples `dead` features (Bricken et al. 2023): a pool of rows drawn uniformly; each dead
/// feature takes a pool row x drawn with probability proportional to (||x - x_hat||^2)^2; its decoder
/// row becomes (x - b_dec) / ||x - b_dec||, its encoder row the same direction with norm
/// encoder_scale times the live features' mean encoder norm, its encoder bias 0, and its Adam
/// moments 0.
template <class S>
void sae_resample(sae_parameters<S>& p, sae_adam_state<S>& adam, const std::vector<Eigen::Index>& dead,
                  const tensor2& x, const sae_resampling& o, rng& g, sae_workspace<S>& ws) {
  if (dead.empty()) return;
  const std::size_t rows = x.shape(0);
  const std::size_t pool = std::min(rows, std::max<std::size_t>(1, o.pool));
  std::vector<std::size_t> picked(pool);
  if (pool == rows) {
    std::iota(picked.begin(), picked.end(), std::size_t{0});
  } else {
    for (auto& r : picked) r = static_cast<std::size_t>(g.below(rows));
  }
  // Squared reconstruction losses of the pool, in chunks of 4096 rows.
  std::vector<double> weight(pool, 0.0);
  sae_matrix<S> chunk;
  for (std::size_t begin = 0; begin < pool; begin += 4096) {
    const std::size_t end = std::min(pool, begin + 4096);
    sae_gather_rows<S>(x, std::span<const std::size_t>(picked).subspan(begin, end - begin), chunk);
    sae_loss_gradient<S>(p, chunk, S(0), ws, nullptr, false);
    for (std::size_t r = begin; r < end; ++r) {
      const double e = static_cast<double>(ws.d_recon.row(static_cast<Eigen::Index>(r - begin)).squaredNorm());
      weight[r] = e * e;
    }
  }
  std::vector<double> cumulative(pool);
  std::partial_sum(weight.begin(), weight.end(), cumulative.begin());
  const double total = cumulative.back();

  std::vector<bool> is_dead(static_cast<std::size_t>(p.W_e.rows()), false);
  for (const auto j : dead) is_dead[static_cast<std::size_t>(j)] = true;
  double live_norm = 0;
  std::size_t live = 0;
  for (Eigen::Index j = 0; j < p.W_e.rows(); ++j)
    if (!is_dead[static_cast<std::size_t>(j)]) {
      live_norm += static_cast<double>(p.W_e.row(j).norm());
      ++live;
    }
  const double encoder_norm = o.encoder_scale * (live > 0 ? live_norm / static_cast<double>(live) : 1.0);

  for (const Eigen::Index j : dead) {
    std::size_t r = 0;
    if (total > 0) {
      const double u = g.uniform() * total;
      r = static_cast<std::size_t>(std::upper_bound(cumulative.begin(), cumulative.end(), u) - cumulative.begin());
      r = std::min(r, pool - 1);
    } else {
      r = static_cast<std::size_t>(g.below(pool));
    }
    sae_row<S> v(p.b_d.size());
    const float* src = x.data() + picked[r] * x.shape(1);
    for (Eigen::Index c = 0; c < v.size(); ++c) v[c] = static_cast<S>(src[c]) - p.b_d[c];
    const S norm = v.norm();
    if (norm > S(0)) {
      v /= norm;
    } else {  // the row equals b_dec: any unit direction will do
      v.setZero();
      v[0] = S(1);
    }
    p.W_dec.row(j) = v;
    p.W_e.row(j) = static_cast<S>(encoder_norm) * v;
    p.b_e[j] = S(0);
    adam.m.W_dec.row(j).setZero();
    adam.v.W_dec.row(j).setZero();
    adam.m.W_e.row(j).setZero();
    adam.v.W_e.row(j).setZero();
    adam.m.b_e[j] = S(0);
    adam.v.b_e[j] = S(0);
  }
}

}  // namespace detail

/// Trains a sparse autoencoder on activations x [N, d] (one row per token; Bricken et al. 2023):
///   f = ReLU((x - b_dec) W_enc + b_enc), x_hat = f W_dec + b_dec,
///   loss = (1/B) sum_b ( ||x_b - x_hat_b||^2 + lambda ||f_b||_1 )  over each minibatch of B rows
/// (the squared error is summed over the d columns, SAELens' convention). Adam with a linear
/// warm-up; before each step the decoder gradient's component along each decoder row is removed,
/// after it every decoder row is scaled back to unit norm. Initialisation: decoder rows normal and
/// unit-norm, W_enc = W_dec^T, b_enc = 0, b_dec = the mean row. Dead features are resampled as
/// options.resampling says. Float parameters, sums over rows in double; the same seed and thread
/// count give bit-identical results.
///
/// Example:
///   auto set = glassbox::collect_activations(model, reviews, labels, {.layers = {2}});
///   auto trained = glassbox::train_sae(set.activations[0], {.features = 512, .l1 = 3e-3, .layer = 2});
template <class T = void>
sae_training_result train_sae(const tensor2& x, const sae_options& o = {}) {
  using S = detail::dependent_t<T, float>;  // float, dependent: compiled where this is instantiated
  using namespace detail;
  constexpr std::string_view who = "train_sae";
  require<shape_error>(x.shape(0) >= 1 && x.shape(1) >= 1,
                       "glassbox::{}: activations must be [N, d] with N, d >= 1, got [{}, {}]", who, x.shape(0),
                       x.shape(1));
  require(std::isfinite(o.l1) && o.l1 >= 0, "glassbox::{}: l1 must be finite and >= 0, got {}", who, o.l1);
  require(std::isfinite(o.learning_rate) && o.learning_rate > 0,
          "glassbox::{}: learning_rate must be finite and > 0, got {}", who, o.learning_rate);
  require(o.beta1 >= 0 && o.beta1 < 1, "glassbox::{}: beta1 must be in [0, 1), got {}", who, o.beta1);
  require(o.beta2 >= 0 && o.beta2 < 1, "glassbox::{}: beta2 must be in [0, 1), got {}", who, o.beta2);
  require(o.epsilon > 0, "glassbox::{}: epsilon must be > 0, got {}", who, o.epsilon);
  require(o.batch_size >= 1, "glassbox::{}: batch_size must be >= 1, got 0", who);
  require(o.steps >= 1 || o.epochs >= 1, "glassbox::{}: steps or epochs must be >= 1, got 0 and 0", who);
  require(o.log_every >= 1, "glassbox::{}: log_every must be >= 1, got 0", who);
  require(o.resampling.encoder_scale > 0, "glassbox::{}: resampling.encoder_scale must be > 0, got {}", who,
          o.resampling.encoder_scale);
  const std::size_t rows = x.shape(0), d = x.shape(1);
  for (std::size_t i = 0; i < x.size(); ++i)
    require(std::isfinite(x.data()[i]), "glassbox::{}: activations must be finite, got {} at row {}", who,
            x.data()[i], i / d);
  if (o.initial != nullptr) {
    check_sae(*o.initial, who);
    require<shape_error>(o.initial->input_width() == d,
                         "glassbox::{}: initial must read {} columns (the activations' d), got {}", who, d,
                         o.initial->input_width());
  }
  const std::size_t n = o.initial != nullptr ? o.initial->feature_count() : o.features == 0 ? 8 * d : o.features;
  const std::size_t batch = std::min(o.batch_size, rows);
  const std::size_t per_epoch = (rows + batch - 1) / batch;
  const std::size_t steps = o.steps != 0 ? o.steps : o.epochs * per_epoch;
  const std::size_t window =
      o.resampling.window != 0 ? o.resampling.window : std::max<std::size_t>(1, o.resampling.every / 2) * batch;

  const pass_threads_scope threads(o.execution.threads);
  progress_reporter reporter(o.execution.on_progress, o.execution.stop, steps * batch, who);
  reporter.check();
  const auto start = std::chrono::steady_clock::now();

  sae_parameters<S> p =
      o.initial != nullptr ? sae_to_parameters<S>(*o.initial) : sae_initial_parameters<S>(x, n, o.seed);
  sae_parameters<S> grad;
  sae_adam_state<S> adam;
  adam.m.zeros(static_cast<Eigen::Index>(d), static_cast<Eigen::Index>(n));
  adam.v.zeros(static_cast<Eigen::Index>(d), static_cast<Eigen::Index>(n));
  sae_workspace<S> ws;
  sae_matrix<S> xb;
  rng order_rng = rng(o.seed).fork(1), resample_rng = rng(o.seed).fork(2);
  std::vector<std::size_t> order(rows);
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::size_t cursor = rows;  // forces a shuffle before the first batch
  std::vector<std::size_t> last_fired(n, 0);  // rows seen when the feature last fired
  std::vector<std::size_t> batch_rows(batch);
  sae_training_result result;
  bool sparse = false;
  std::size_t tokens = 0;

  const auto dead_features = [&] {
    std::vector<Eigen::Index> dead;
    if (tokens < window) return dead;
    for (std::size_t j = 0; j < n; ++j)
      if (tokens - last_fired[j] >= window) dead.push_back(static_cast<Eigen::Index>(j));
    return dead;
  };
  const auto dead_fraction = [&] {
    if (tokens < window) return 0.0;
    std::size_t dead = 0;
    for (std::size_t j = 0; j < n; ++j) dead += tokens - last_fired[j] >= window ? 1 : 0;
    return static_cast<double>(dead) / static_cast<double>(n);
  };

  for (std::size_t step = 0; step < steps; ++step) {
    if (o.resampling.every != 0 && step > 0 && step % o.resampling.every == 0) {
      const std::vector<Eigen::Index> dead = dead_features();
      sae_resample<S>(p, adam, dead, x, o.resampling, resample_rng, ws);
      for (const auto j : dead) last_fired[static_cast<std::size_t>(j)] = tokens;
      result.resampled.push_back(dead.size());
    }
    for (std::size_t r = 0; r < batch; ++r) {
      if (cursor == rows) {
        order_rng.shuffle(order.begin(), order.end());
        cursor = 0;
      }
      batch_rows[r] = order[cursor++];
    }
    sae_gather_rows<S>(x, batch_rows, xb);
    const sae_batch_loss l = sae_loss_gradient<S>(p, xb, static_cast<S>(o.l1), ws, &grad, sparse);
    if (!std::isfinite(l.loss))
      fail("glassbox::{}: the loss is {} at step {}; lower learning_rate or l1", who, l.loss, step + 1);
    // The next step's path: sparse products once the features are sparse enough.
    sparse = o.sparse_below > 0 && l.l0 < o.sparse_below * static_cast<double>(n);
    tokens += batch;
    for (std::size_t j = 0; j < n; ++j)
      if (ws.fired[j] > 0) last_fired[j] = tokens;

    sae_remove_parallel_gradient(p.W_dec, grad.W_dec);
    const double lr =
        o.learning_rate * std::min(1.0, static_cast<double>(step + 1) / static_cast<double>(std::max<std::size_t>(1, o.warmup_steps)));
    const S lr_s = static_cast<S>(lr), b1 = static_cast<S>(o.beta1), b2 = static_cast<S>(o.beta2),
            eps = static_cast<S>(o.epsilon);
    const std::size_t t = step + 1;
    {
      // The four updates are independent: one per thread when there are threads.
      GLASSBOX_DETAIL_SAE_PARALLEL_FOR(n * d >= (std::size_t{1} << 17))
      for (int part = 0; part < 4; ++part) {
        if (part == 0) sae_adam_update(p.W_e, grad.W_e, adam.m.W_e, adam.v.W_e, lr_s, b1, b2, eps, t);
        if (part == 1) sae_adam_update(p.W_dec, grad.W_dec, adam.m.W_dec, adam.v.W_dec, lr_s, b1, b2, eps, t);
        if (part == 2) sae_adam_update(p.b_e, grad.b_e, adam.m.b_e, adam.v.b_e, lr_s, b1, b2, eps, t);
        if (part == 3) sae_adam_update(p.b_d, grad.b_d, adam.m.b_d, adam.v.b_d, lr_s, b1, b2, eps, t);
      }
    }
    sae_normalise_rows(p.W_dec);

    const bool last = step + 1 == steps;
    if ((step + 1) % o.log_every == 0 || last) {
      sae_step_record rec;
      rec.step = step + 1;
      rec.tokens = tokens;
      rec.loss = l.loss;
      rec.reconstruction = l.reconstruction;
      rec.l0 = l.l0;
      rec.dead_fraction = dead_fraction();
      rec.learning_rate = lr;
      rec.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      result.history.push_back(rec);
      if (o.on_step) o.on_step(rec);
    }
    reporter.advance(batch);
  }
  result.steps = steps;
  result.tokens = tokens;
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  sae_from_parameters(p, result.sae);
  result.sae.layer = o.layer;
  result.sae.l1 = o.l1;
  result.sae.model = o.model_name;
  return result;
}

/// The features f = ReLU((x - b_dec) W_enc + b_enc) of activations x [N, d], [N, n].
template <class T = void>
tensor2 sae_encode(const sparse_autoencoder& sae, const tensor2& x) {
  using S = detail::dependent_t<T, float>;  // Eigen types that depend on T: compiled where this is instantiated
  detail::check_sae(sae, "sae_encode");
  detail::check_sae_input(x, sae.input_width(), "sae_encode");
  const auto p = detail::sae_to_parameters<S>(sae);
  tensor2 out = tensor2::from_shape({x.shape(0), sae.feature_count()});
  const auto n = static_cast<Eigen::Index>(sae.feature_count());
  detail::sae_matrix<S> chunk, pre;
  std::vector<std::size_t> rows;
  for (std::size_t begin = 0; begin < x.shape(0); begin += 4096) {
    const std::size_t end = std::min(x.shape(0), begin + 4096);
    rows.resize(end - begin);
    std::iota(rows.begin(), rows.end(), begin);
    detail::sae_gather_rows<S>(x, rows, chunk);
    chunk.rowwise() -= p.b_d;
    detail::sae_product<S>(pre, chunk, p.W_e.transpose());
    pre.rowwise() += p.b_e;
    for (Eigen::Index r = 0; r < pre.rows(); ++r)
      for (Eigen::Index j = 0; j < n; ++j) out(begin + static_cast<std::size_t>(r), static_cast<std::size_t>(j)) = std::max(pre(r, j), 0.0f);
  }
  return out;
}

/// The reconstruction x_hat = f W_dec + b_dec of features f [N, n], [N, d].
template <class T = void>
tensor2 sae_decode(const sparse_autoencoder& sae, const tensor2& f) {
  using S = detail::dependent_t<T, float>;  // Eigen types that depend on T: compiled where this is instantiated
  detail::check_sae(sae, "sae_decode");
  detail::require<shape_error>(f.shape(1) == sae.feature_count(),
                               "glassbox::sae_decode: features must have {} columns (n), got {}", sae.feature_count(),
                               f.shape(1));
  const std::size_t d = sae.input_width(), n = sae.feature_count();
  tensor2 out = tensor2::from_shape({f.shape(0), d});
  const Eigen::Map<const detail::sae_matrix<S>> fm(f.data(), static_cast<Eigen::Index>(f.shape(0)),
                                                   static_cast<Eigen::Index>(n));
  const Eigen::Map<const detail::sae_matrix<S>> W(sae.W_dec.data(), static_cast<Eigen::Index>(n),
                                                  static_cast<Eigen::Index>(d));
  detail::sae_matrix<S> recon;
  detail::sae_product<S>(recon, fm, W);
  for (std::size_t r = 0; r < f.shape(0); ++r)
    for (std::size_t c = 0; c < d; ++c) out(r, c) = recon(static_cast<Eigen::Index>(r), static_cast<Eigen::Index>(c)) + sae.b_dec(c);
  return out;
}

/// The reconstruction x_hat of activations x [N, d]: sae_decode(sae, sae_encode(sae, x)).
template <class = void>
tensor2 sae_reconstruct(const sparse_autoencoder& sae, const tensor2& x) {
  return sae_decode(sae, sae_encode(sae, x));
}

/// Options of evaluate_sae.
struct sae_metric_options {
  double dense_above = 0.1;  ///< a feature is dense when it fires on more than this fraction of rows
};

/// Reconstruction and sparsity of an SAE over activations x [N, d].
struct sae_metrics {
  std::size_t rows = 0;             ///< N
  double mse = 0;                   ///< (1 / (N d)) sum ||x - x_hat||^2: per element
  double reconstruction = 0;        ///< (1 / N) sum ||x - x_hat||^2: per row, the training loss' term
  double explained_variance = 0;    ///< 1 - sum ||x - x_hat||^2 / sum ||x - mean(x)||^2
  double l0 = 0;                    ///< mean active features per row
  double l1 = 0;                    ///< mean ||f||_1 per row
  double dead_fraction = 0;         ///< features that fire on no row
  double dense_fraction = 0;        ///< features that fire on more than dense_above of the rows
  std::vector<double> firing_rate;  ///< per feature, the fraction of rows where f > 0
};

/// MSE, explained variance, L0, L1, dead and dense fractions of `sae` on activations x [N, d]
/// (sums in double).
template <class = void>
sae_metrics evaluate_sae(const sparse_autoencoder& sae, const tensor2& x, const sae_metric_options& o = {}) {
  detail::check_sae(sae, "evaluate_sae");
  detail::check_sae_input(x, sae.input_width(), "evaluate_sae");
  const std::size_t rows = x.shape(0), d = x.shape(1), n = sae.feature_count();
  const tensor2 f = sae_encode(sae, x);
  const tensor2 xh = sae_decode(sae, f);
  std::vector<double> mean(d, 0.0);
  for (std::size_t r = 0; r < rows; ++r)
    for (std::size_t c = 0; c < d; ++c) mean[c] += x(r, c);
  for (auto& m : mean) m /= static_cast<double>(rows);
  double err = 0, var = 0, active = 0, l1 = 0;
  std::vector<std::size_t> fired(n, 0);
  for (std::size_t r = 0; r < rows; ++r) {
    for (std::size_t c = 0; c < d; ++c) {
      const double e = static_cast<double>(x(r, c)) - static_cast<double>(xh(r, c));
      const double v = static_cast<double>(x(r, c)) - mean[c];
      err += e * e;
      var += v * v;
    }
    for (std::size_t j = 0; j < n; ++j)
      if (f(r, j) > 0) {
        ++fired[j];
        active += 1;
        l1 += f(r, j);
      }
  }
  sae_metrics m;
  m.rows = rows;
  m.mse = err / static_cast<double>(rows * d);
  m.reconstruction = err / static_cast<double>(rows);
  m.explained_variance = var > 0 ? 1.0 - err / var : (err == 0 ? 1.0 : 0.0);
  m.l0 = active / static_cast<double>(rows);
  m.l1 = l1 / static_cast<double>(rows);
  m.firing_rate.resize(n);
  std::size_t dead = 0, dense = 0;
  for (std::size_t j = 0; j < n; ++j) {
    m.firing_rate[j] = static_cast<double>(fired[j]) / static_cast<double>(rows);
    dead += fired[j] == 0 ? 1 : 0;
    dense += m.firing_rate[j] > o.dense_above ? 1 : 0;
  }
  m.dead_fraction = static_cast<double>(dead) / static_cast<double>(n);
  m.dense_fraction = static_cast<double>(dense) / static_cast<double>(n);
  return m;
}

// ---------------------------------------------------------------------------------------------
// Splicing into the model: the fraction of loss recovered

/// The model's loss with the residual stream at one layer left alone, replaced by the SAE's
/// reconstruction, and replaced by zeros.
struct sae_loss_recovery {
  double clean_loss = 0;  ///< L_clean: mean cross-entropy of the scored rows, unedited
  double sae_loss = 0;    ///< L_sae: with the layer's hidden states replaced by their reconstruction
  double zero_loss = 0;   ///< L_zero: with the layer's hidden states replaced by zeros
  /// (L_zero - L_sae) / (L_zero - L_clean): 1 = the reconstruction loses nothing, 0 = as bad as zeros.
  double fraction_recovered = 0;
  std::size_t scored_rows = 0;  ///< rows with a label, over all examples
};

namespace detail {

/// The summed cross-entropy (in double) of the scored rows of logits [R, V] against labels.
template <class = void>
double sae_summed_cross_entropy(const tensor2& logits, const std::vector<token_id>& labels,
                                       std::size_t& scored, std::string_view who) {
  require<model_error>(logits.shape(0) == labels.size(),
                       "glassbox::{}: the model returned {} rows of logits for {} labels", who, logits.shape(0),
                       labels.size());
  const std::size_t V = logits.shape(1);
  double total = 0;
  for (std::size_t r = 0; r < labels.size(); ++r) {
    if (labels[r] == training_example::ignore_label) continue;
    require<shape_error>(labels[r] >= 0 && static_cast<std::size_t>(labels[r]) < V,
                         "glassbox::{}: labels must be < {} (the vocabulary) or ignore_label, got {}", who, V,
                         labels[r]);
    double top = -std::numeric_limits<double>::infinity();
    for (std::size_t v = 0; v < V; ++v) top = std::max(top, static_cast<double>(logits(r, v)));
    double sum = 0;
    for (std::size_t v = 0; v < V; ++v) sum += std::exp(static_cast<double>(logits(r, v)) - top);
    total += top + std::log(sum) - static_cast<double>(logits(r, static_cast<std::size_t>(labels[r])));
    ++scored;
  }
  return total;
}

}  // namespace detail

/// The fraction of the model's loss recovered when hidden-state index `layer` (0 = embeddings
/// output, k = after block k) is replaced by the SAE's reconstruction, against zero-ablation:
///   (L_zero - L_sae) / (L_zero - L_clean),
/// L the mean cross-entropy over the scored rows of `data` (labels as training_example's: one per
/// output row, ignore_label for rows not scored). Splicing goes through the model's
/// logits_from_hidden; examples run in parallel on a thread-safe model.
template <class M>
sae_loss_recovery sae_loss_recovered(const M& model, const sparse_autoencoder& sae,
                                     std::span<const training_example> data, std::size_t layer,
                                     const execution_options& exec = {}) {
  static_assert(check_intervention_model<M>());
  constexpr std::string_view who = "sae_loss_recovered";
  detail::check_sae(sae, who);
  detail::require(!data.empty(), "glassbox::{}: data must hold at least one example, got none", who);
  std::vector<double> clean(data.size()), spliced(data.size()), zero(data.size());
  std::vector<std::size_t> scored(data.size(), 0);
  detail::run_batches(data.size(), exec, detail::worker_count(exec, is_thread_safe<M>()), who,
                      [&](std::size_t begin, std::size_t end) {
                        for (std::size_t i = begin; i < end; ++i) {
                          const training_example& e = data[i];
                          const token_span tokens(e.tokens);
                          const tensor3 h = detail::model_hidden_states(model, tokens, who, i);
                          detail::require<shape_error>(layer < h.shape(0),
                                                       "glassbox::{}: layer must be < {} (the model's L + 1 hidden "
                                                       "states), got {}",
                                                       who, h.shape(0), layer);
                          detail::require<shape_error>(
                              h.shape(2) == sae.input_width(),
                              "glassbox::{}: the SAE reads {} columns but the model's hidden states have {}", who,
                              sae.input_width(), h.shape(2));
                          // Views that depend on M: compiled where this is instantiated (see dependent_t).
                          const tensor2 hk = xt::view(detail::depend<M>(h), layer, xt::all(), xt::all());
                          std::size_t count = 0;
                          const auto logits = [&](const tensor2& x) {
                            return detail::model_logits_from_hidden(model, tokens, layer, x, who, i);
                          };
                          clean[i] = detail::sae_summed_cross_entropy(logits(hk), e.labels, count, who);
                          spliced[i] = detail::sae_summed_cross_entropy(logits(sae_reconstruct(sae, hk)), e.labels,
                                                                        count, who);
                          const tensor2 zeros = xt::zeros<detail::dependent_t<M, float>>({hk.shape(0), hk.shape(1)});
                          zero[i] = detail::sae_summed_cross_entropy(logits(zeros), e.labels, count, who);
                          scored[i] = count / 3;
                        }
                      });
  sae_loss_recovery r;
  for (std::size_t i = 0; i < data.size(); ++i) {
    r.clean_loss += clean[i];
    r.sae_loss += spliced[i];
    r.zero_loss += zero[i];
    r.scored_rows += scored[i];
  }
  detail::require(r.scored_rows > 0, "glassbox::{}: data must score at least one row, got none", who);
  const auto rows = static_cast<double>(r.scored_rows);
  r.clean_loss /= rows;
  r.sae_loss /= rows;
  r.zero_loss /= rows;
  const double gap = r.zero_loss - r.clean_loss;
  r.fraction_recovered = gap != 0 ? (r.zero_loss - r.sae_loss) / gap : std::numeric_limits<double>::quiet_NaN();
  return r;
}

// ---------------------------------------------------------------------------------------------
// Feature dashboards: top contexts, logit effects, matches with known properties

/// One activation of a feature in context.
struct sae_context {
  std::size_t row = 0;       ///< the row of the activation matrix
  std::size_t sequence = 0;  ///< the input sequence (from the caller's row map)
  std::size_t position = 0;  ///< the token position in it
  double activation = 0;     ///< f
};

/// Per feature, the `k` rows of x [N, d] where it is most active (largest first; ties by row),
/// with each row's sequence and position from `sequences` / `positions` (one per row; empty =
/// row numbers and 0).
template <class = void>
std::vector<std::vector<sae_context>> sae_top_contexts(const sparse_autoencoder& sae, const tensor2& x, std::size_t k,
                                                       std::span<const std::size_t> sequences = {},
                                                       std::span<const std::size_t> positions = {}) {
  constexpr std::string_view who = "sae_top_contexts";
  detail::check_sae(sae, who);
  detail::check_sae_input(x, sae.input_width(), who);
  detail::require<shape_error>(sequences.empty() || sequences.size() == x.shape(0),
                               "glassbox::{}: sequences must have one entry per row ({}), got {}", who, x.shape(0),
                               sequences.size());
  detail::require<shape_error>(positions.empty() || positions.size() == x.shape(0),
                               "glassbox::{}: positions must have one entry per row ({}), got {}", who, x.shape(0),
                               positions.size());
  const std::size_t n = sae.feature_count();
  const tensor2 f = sae_encode(sae, x);
  std::vector<std::vector<sae_context>> out(n);
  const auto better = [](const sae_context& a, const sae_context& b) {
    return a.activation != b.activation ? a.activation > b.activation : a.row < b.row;
  };
  for (std::size_t r = 0; r < x.shape(0); ++r)
    for (std::size_t j = 0; j < n; ++j) {
      const double a = f(r, j);
      if (a <= 0 || k == 0) continue;
      auto& top = out[j];
      if (top.size() == k && !better(sae_context{r, 0, 0, a}, top.front())) continue;
      sae_context c{r, sequences.empty() ? r : sequences[r], positions.empty() ? 0 : positions[r], a};
      if (top.size() == k) {
        std::pop_heap(top.begin(), top.end(), better);
        top.back() = c;
      } else {
        top.push_back(c);
      }
      std::push_heap(top.begin(), top.end(), better);  // the heap's front is the worst kept
    }
  for (auto& top : out) std::sort(top.begin(), top.end(), better);
  return out;
}

/// One token's logit in a feature's effect.
struct sae_logit {
  token_id token = 0;  ///< the token
  double logit = 0;    ///< its logit from the decoder direction
};

/// A feature's logit effects: the tokens its decoder direction promotes and suppresses most.
struct sae_logit_effect {
  std::vector<sae_logit> top;     ///< largest logits first
  std::vector<sae_logit> bottom;  ///< smallest logits first
};

/// Per feature, its decoder direction W_dec[j] decoded through the model's final norm and
/// unembedding (the model's decode_hidden when it has one, else logits_from_hidden at the last
/// layer), the `k` most promoted and most suppressed tokens. Features listed in `features` (empty = all).
template <class M>
std::vector<sae_logit_effect> sae_logit_effects(const M& model, const sparse_autoencoder& sae, std::size_t k,
                                                std::span<const std::size_t> features = {}) {
  constexpr std::string_view who = "sae_logit_effects";
  detail::check_sae(sae, who);
  const std::size_t n = sae.feature_count(), d = sae.input_width();
  std::vector<std::size_t> chosen(features.begin(), features.end());
  if (chosen.empty()) {
    chosen.resize(n);
    std::iota(chosen.begin(), chosen.end(), std::size_t{0});
  }
  for (const auto j : chosen)
    detail::require<shape_error>(j < n, "glassbox::{}: features must be < {} (the SAE's features), got {}", who, n, j);
  tensor2 directions = tensor2::from_shape({chosen.size(), d});
  for (std::size_t i = 0; i < chosen.size(); ++i)
    for (std::size_t c = 0; c < d; ++c) directions(i, c) = sae.W_dec(chosen[i], c);
  tensor2 logits;
  if constexpr (requires { model.decode_hidden(directions); }) {
    logits = detail::model_decode_hidden(model, directions, who);
  } else {
    static_assert(check_intervention_model<M>());
    const token_sequence probe{0};
    const std::size_t last = detail::model_hidden_states(model, token_span(probe), who).shape(0) - 1;
    const token_sequence tokens(chosen.size(), 0);
    logits = detail::model_logits_from_hidden(model, token_span(tokens), last, directions, who);
  }
  detail::require<model_error>(logits.shape(0) == chosen.size(),
                               "glassbox::{}: the model decoded {} rows for {} directions", who, logits.shape(0),
                               chosen.size());
  const std::size_t V = logits.shape(1), kk = std::min(k, V);
  std::vector<sae_logit_effect> out(chosen.size());
  std::vector<std::size_t> ids(V);
  for (std::size_t i = 0; i < chosen.size(); ++i) {
    std::iota(ids.begin(), ids.end(), std::size_t{0});
    const auto by_logit = [&](std::size_t a, std::size_t b) {
      return logits(i, a) != logits(i, b) ? logits(i, a) > logits(i, b) : a < b;
    };
    std::partial_sort(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(kk), ids.end(), by_logit);
    for (std::size_t t = 0; t < kk; ++t) out[i].top.push_back({static_cast<token_id>(ids[t]), logits(i, ids[t])});
    std::iota(ids.begin(), ids.end(), std::size_t{0});
    std::partial_sort(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(kk), ids.end(),
                      [&](std::size_t a, std::size_t b) { return by_logit(b, a); });
    for (std::size_t t = 0; t < kk; ++t) out[i].bottom.push_back({static_cast<token_id>(ids[t]), logits(i, ids[t])});
  }
  return out;
}

/// A known binary property of every row (e.g. "effective_polarity = positive" of each token).
struct sae_row_property {
  std::string name;                  ///< e.g. "is_negated" or "pos=adj"
  std::vector<std::uint8_t> truth;   ///< one 0 / 1 per row
};

/// How well "feature j active" (f_j > threshold) predicts one property's truth over the rows.
struct sae_property_match {
  std::size_t feature = 0;   ///< j
  std::size_t property = 0;  ///< the property's index
  std::size_t active = 0;    ///< rows where the feature is active
  std::size_t truths = 0;    ///< rows where the property is true
  std::size_t both = 0;      ///< rows where both hold
  double precision = 0;      ///< both / active
  double recall = 0;         ///< both / truths
  double f1 = 0;             ///< 2 P R / (P + R)
};

/// The scoring of an SAE's features against known properties.
struct sae_property_scores {
  std::vector<std::string> properties;           ///< the property names, in order
  std::vector<sae_property_match> best_by_feature;   ///< per feature, its best-matching property (highest F1)
  std::vector<sae_property_match> best_by_property;  ///< per property, its best-matching feature (highest F1)
  double threshold = 0.5;   ///< the F1 a property needs to count as matched
  /// Properties with a feature of F1 >= threshold, over the properties true on at least one row.
  double matched_fraction = 0;
  std::size_t matched = 0;  ///< the numerator
  std::size_t scored = 0;   ///< the denominator
};

/// Scores every feature of the SAE against every property over activations x [N, d]: for each
/// (feature, property) pair the precision, recall and F1 of "f_j > activation_threshold" as a
/// predictor of "property true"; per feature its best property and per property its best feature
/// (by F1; ties to the lower index); and the fraction of properties (true on some row) that some
/// feature matches with F1 >= f1_threshold.
template <class = void>
sae_property_scores sae_match_properties(const sparse_autoencoder& sae, const tensor2& x,
                                         std::span<const sae_row_property> properties, double f1_threshold = 0.5,
                                         double activation_threshold = 0) {
  constexpr std::string_view who = "sae_match_properties";
  detail::check_sae(sae, who);
  detail::check_sae_input(x, sae.input_width(), who);
  detail::require(!properties.empty(), "glassbox::{}: properties must hold at least one property, got none", who);
  const std::size_t rows = x.shape(0), n = sae.feature_count(), P = properties.size();
  for (const auto& p : properties)
    detail::require<shape_error>(p.truth.size() == rows,
                                 "glassbox::{}: property {} must have one value per row ({}), got {}", who, p.name,
                                 rows, p.truth.size());
  const tensor2 f = sae_encode(sae, x);
  std::vector<std::size_t> active(n, 0), truths(P, 0), both(n * P, 0);
  std::vector<std::size_t> row_true, row_active;
  for (std::size_t r = 0; r < rows; ++r) {
    row_true.clear();
    row_active.clear();
    for (std::size_t q = 0; q < P; ++q)
      if (properties[q].truth[r] != 0) row_true.push_back(q);
    for (std::size_t j = 0; j < n; ++j)
      if (f(r, j) > activation_threshold) row_active.push_back(j);
    for (const auto q : row_true) ++truths[q];
    for (const auto j : row_active) {
      ++active[j];
      for (const auto q : row_true) ++both[j * P + q];
    }
  }
  const auto match = [&](std::size_t j, std::size_t q) {
    sae_property_match m{j, q, active[j], truths[q], both[j * P + q], 0, 0, 0};
    m.precision = m.active > 0 ? static_cast<double>(m.both) / static_cast<double>(m.active) : 0.0;
    m.recall = m.truths > 0 ? static_cast<double>(m.both) / static_cast<double>(m.truths) : 0.0;
    m.f1 = m.precision + m.recall > 0 ? 2 * m.precision * m.recall / (m.precision + m.recall) : 0.0;
    return m;
  };
  sae_property_scores s;
  s.threshold = f1_threshold;
  for (const auto& p : properties) s.properties.push_back(p.name);
  for (std::size_t j = 0; j < n; ++j) {
    sae_property_match best = match(j, 0);
    for (std::size_t q = 1; q < P; ++q) {
      const auto m = match(j, q);
      if (m.f1 > best.f1) best = m;
    }
    s.best_by_feature.push_back(best);
  }
  for (std::size_t q = 0; q < P; ++q) {
    sae_property_match best = match(0, q);
    for (std::size_t j = 1; j < n; ++j) {
      const auto m = match(j, q);
      if (m.f1 > best.f1) best = m;
    }
    s.best_by_property.push_back(best);
    if (truths[q] > 0) {
      ++s.scored;
      s.matched += best.f1 >= f1_threshold ? 1 : 0;
    }
  }
  s.matched_fraction = s.scored > 0 ? static_cast<double>(s.matched) / static_cast<double>(s.scored) : 0.0;
  return s;
}

}  // namespace glassbox

// With GLASSBOX_EXTERN_PROBING defined, train_sae and evaluate_sae compile in one other translation
// unit of the program (src/probing.cpp, CMake's object library glassbox_probing); docs/building.md,
// "Compile-time advice".
#ifdef GLASSBOX_EXTERN_PROBING
namespace glassbox {
extern template sae_training_result train_sae<void>(const tensor2&, const sae_options&);
extern template sae_metrics evaluate_sae<void>(const sparse_autoencoder&, const tensor2&, const sae_metric_options&);
}  // namespace glassbox
#endif

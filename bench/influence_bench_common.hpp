// Shared pieces of the influence benchmarks (influence_kfac_bench, influence_mislabel_bench,
// influence_lds_bench): review models and their training with TracIn checkpoints, ranking
// metrics, and CPU time / peak memory measurement. Not a library header.
#pragma once

#include <fmt/format.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <numbers>
#include <numeric>
#include <span>
#include <string>
#include <vector>

#include "glassbox/core/random.hpp"
#include "glassbox/datasets/reviews.hpp"
#include "glassbox/influence/tracin.hpp"
#include "glassbox/models/adam.hpp"
#include "glassbox/models/gpt2.hpp"

namespace glassbox::bench {

/// Wall and CPU (user + sys) seconds since construction, from getrusage.
class stopwatch {
 public:
  stopwatch() : wall_(std::chrono::steady_clock::now()), cpu_(cpu_seconds()) {}
  /// Wall seconds elapsed.
  double wall() const { return std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_).count(); }
  /// CPU seconds (user + sys, every thread of the process) elapsed.
  double cpu() const { return cpu_seconds() - cpu_; }
  /// CPU seconds the process has used so far.
  static double cpu_seconds() {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
           1e-6 * static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
  }

 private:
  std::chrono::steady_clock::time_point wall_;
  double cpu_;
};

/// The peak resident set size of the process so far, in MiB.
inline double peak_rss_mib() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / 1024.0;
}

/// A GPT-2 configuration over the review vocabulary.
inline models::gpt2_config review_config(std::size_t layers, std::size_t heads, std::size_t width) {
  models::gpt2_config c;
  c.n_layer = layers;
  c.n_head = heads;
  c.n_embd = width;
  c.n_positions = 48;
  c.vocab_size = datasets::review_vocab_size();
  c.pad_token_id = datasets::review_pad_id;
  return c;
}

/// How a review model is trained on a fixed training set.
struct training_recipe {
  std::size_t epochs = 30;         ///< passes over the training set
  std::size_t batch = 32;          ///< examples per step
  double learning_rate = 3e-3;     ///< peak Adam learning rate (linear warm-up over 5% of the steps, cosine to 0)
  double weight_decay = 0.0;       ///< AdamW decay
  std::size_t checkpoints = 0;     ///< TracIn checkpoints saved at evenly spaced epochs (0 = none)
  std::uint64_t seed = 1;          ///< shuffling seed
};

/// A trained model and the TracIn checkpoints of its run.
struct trained_model {
  models::gpt2 model;
  std::vector<tracin_checkpoint> checkpoints;
  double final_loss = 0;  ///< mean training loss of the last epoch
};

/// Trains `model` in place on `train` with Adam (minibatches of a seeded shuffle each epoch).
inline trained_model train_reviews(models::gpt2 model, std::span<const training_example> train,
                                   const training_recipe& r) {
  models::adam_trainer trainer(model, {.learning_rate = r.learning_rate, .weight_decay = r.weight_decay,
                                       .max_gradient_norm = 1.0});
  const std::size_t per_epoch = (train.size() + r.batch - 1) / r.batch, steps = per_epoch * r.epochs;
  const std::size_t warmup = std::max<std::size_t>(1, steps / 20);
  std::vector<std::size_t> order(train.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::vector<training_example> batch;
  trained_model out{model, {}, 0};
  std::size_t step = 0;
  for (std::size_t epoch = 0; epoch < r.epochs; ++epoch) {
    rng g = rng(r.seed).fork(epoch);
    g.shuffle(order.begin(), order.end());
    double epoch_loss = 0;
    double lr = 0;
    for (std::size_t b = 0; b < train.size(); b += r.batch) {
      batch.clear();
      for (std::size_t i = b; i < std::min(train.size(), b + r.batch); ++i) batch.push_back(train[order[i]]);
      const double s = static_cast<double>(step + 1);
      lr = step < warmup ? r.learning_rate * s / static_cast<double>(warmup)
                         : r.learning_rate * 0.5 *
                               (1 + std::cos(std::numbers::pi * (s - static_cast<double>(warmup)) /
                                             static_cast<double>(std::max<std::size_t>(1, steps - warmup))));
      trainer.optimizer().set_learning_rate(lr);
      epoch_loss += trainer.step(batch).loss * static_cast<double>(batch.size());
      ++step;
    }
    out.final_loss = epoch_loss / static_cast<double>(train.size());
    if (r.checkpoints > 0 && (epoch + 1) % std::max<std::size_t>(1, r.epochs / r.checkpoints) == 0 &&
        out.checkpoints.size() < r.checkpoints) {
      tracin_checkpoint c;
      c.parameters = tensor1::from_shape({model.parameter_count()});
      std::copy(model.parameters().begin(), model.parameters().end(), c.parameters.begin());
      c.learning_rate = lr;
      out.checkpoints.push_back(std::move(c));
    }
  }
  out.model = model;
  return out;
}

/// Whether the model's label prediction (positive vs negative at the marker) is `label`.
inline bool predicts(const models::gpt2& model, const datasets::review_example& e, token_id label) {
  const tensor2 z = model.logits_at(e.tokens, std::vector<std::size_t>{e.tokens.size() - 1});
  const token_id p = z(0, datasets::review_positive_id) >= z(0, datasets::review_negative_id)
                         ? datasets::review_positive_id
                         : datasets::review_negative_id;
  return p == label;
}

/// The share of flagged examples (`flagged[n]`) among the `fraction` highest-scoring ones.
inline double found_after(std::span<const double> scores, const std::vector<bool>& flagged, double fraction) {
  std::vector<std::size_t> order(scores.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return scores[a] > scores[b]; });
  const auto inspect = static_cast<std::size_t>(std::llround(fraction * static_cast<double>(scores.size())));
  std::size_t found = 0, total = 0;
  for (bool f : flagged) total += f;
  for (std::size_t i = 0; i < inspect; ++i) found += flagged[order[i]];
  return total == 0 ? 0.0 : static_cast<double>(found) / static_cast<double>(total);
}

/// Ranks (average ranks for ties), 1-based.
inline std::vector<double> ranks(std::span<const double> x) {
  std::vector<std::size_t> order(x.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return x[a] < x[b]; });
  std::vector<double> r(x.size());
  for (std::size_t i = 0; i < order.size();) {
    std::size_t j = i;
    while (j + 1 < order.size() && x[order[j + 1]] == x[order[i]]) ++j;
    for (std::size_t k = i; k <= j; ++k) r[order[k]] = 0.5 * static_cast<double>(i + j) + 1.0;
    i = j + 1;
  }
  return r;
}

/// Spearman's rank correlation of x and y.
inline double spearman(std::span<const double> x, std::span<const double> y) {
  const auto rx = ranks(x), ry = ranks(y);
  const double n = static_cast<double>(rx.size());
  const double mx = std::accumulate(rx.begin(), rx.end(), 0.0) / n, my = std::accumulate(ry.begin(), ry.end(), 0.0) / n;
  double sxy = 0, sxx = 0, syy = 0;
  for (std::size_t i = 0; i < rx.size(); ++i) {
    sxy += (rx[i] - mx) * (ry[i] - my);
    sxx += (rx[i] - mx) * (rx[i] - mx);
    syy += (ry[i] - my) * (ry[i] - my);
  }
  return sxx == 0 || syy == 0 ? 0.0 : sxy / std::sqrt(sxx * syy);
}

}  // namespace glassbox::bench

// glassbox: the Adam optimizer (Kingma & Ba 2015) with decoupled weight decay (AdamW, Loshchilov &
// Hutter 2019) and gradient clipping by global norm, and a trainer that drives any TrainableModel.
//
// One step, as torch.optim.AdamW after torch.nn.utils.clip_grad_norm_ (t counts steps from 1):
//   n = ||g||_2 over all parameters;  if max_gradient_norm > 0 and n > max_gradient_norm:
//                                        g *= max_gradient_norm / (n + 1e-6)
//   p *= 1 - lr * weight_decay        (only parameters the decay mask selects; all by default)
//   m = beta1 m + (1 - beta1) g;   v = beta2 v + (1 - beta2) g^2
//   p -= lr * (m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + epsilon)
// Moments are kept in the parameters' precision (as PyTorch); each update is computed in double.
// The result is deterministic: the norm is a sequential double sum and the update is elementwise.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <type_traits>
#include <utility>
#include <vector>

#include "glassbox/core/error.hpp"
#include "glassbox/core/model.hpp"

// The elementwise update runs on OpenMP threads when the program is compiled with -fopenmp.
#if defined(_OPENMP)
#define GLASSBOX_DETAIL_ADAM_PARALLEL_FOR _Pragma("omp parallel for schedule(static) if (count > 65536)")
#else
#define GLASSBOX_DETAIL_ADAM_PARALLEL_FOR
#endif

namespace glassbox::models {

/// The hyperparameters of Adam / AdamW (defaults as torch.optim.Adam, no decay, no clipping).
struct adam_options {
  double learning_rate = 1e-3;     ///< lr
  double beta1 = 0.9;              ///< decay of the first moment
  double beta2 = 0.999;            ///< decay of the second moment
  double epsilon = 1e-8;           ///< added to sqrt(v_hat)
  double weight_decay = 0.0;       ///< decoupled weight decay (AdamW): p *= 1 - lr * weight_decay each step
  double max_gradient_norm = 0.0;  ///< clip the gradient to this global L2 norm first; 0 = no clipping
};

/// What one optimizer step saw and did.
struct adam_step_info {
  std::size_t step = 0;         ///< steps taken so far, including this one
  double loss = 0;              ///< the loss the gradient belongs to (set by adam_trainer; 0 for a bare step)
  double gradient_norm = 0;     ///< the global L2 norm of the gradient before clipping
  double clip_scale = 1;        ///< the factor the gradient was multiplied by (1 if not clipped)
};

/// Adam with bias correction, decoupled weight decay and global-norm clipping over a flat parameter vector.
template <class Scalar = float>
class basic_adam {
 public:
  /// An optimizer for `parameter_count` parameters; throws glassbox::error for invalid options.
  explicit basic_adam(std::size_t parameter_count, adam_options options = {})
      : options_(options), first_(parameter_count, Scalar(0)), second_(parameter_count, Scalar(0)) {
    check_options(options_);
  }

  /// The options.
  const adam_options& options() const { return options_; }
  /// Changes the learning rate (for schedules); the moments are kept.
  void set_learning_rate(double lr) {
    detail::require(std::isfinite(lr) && lr >= 0, "glassbox::models::adam: learning_rate must be >= 0, got {}", lr);
    options_.learning_rate = lr;
  }
  /// Selects the parameters weight decay applies to (1 = decayed); empty = all.
  void set_decay_mask(std::vector<std::uint8_t> mask) {
    detail::require<shape_error>(mask.empty() || mask.size() == first_.size(),
                                 "glassbox::models::adam::set_decay_mask: mask must hold {} entries, got {}",
                                 first_.size(), mask.size());
    decay_mask_ = std::move(mask);
  }
  /// Steps taken.
  std::size_t steps() const { return steps_; }
  /// The first moments m.
  std::span<const Scalar> first_moment() const { return first_; }
  /// The second moments v.
  std::span<const Scalar> second_moment() const { return second_; }

  /// Updates `parameters` in place with `gradient` (both parameter_count long).
  adam_step_info step(std::span<Scalar> parameters, std::span<const Scalar> gradient) {
    const std::size_t n = first_.size();
    detail::require<shape_error>(parameters.size() == n && gradient.size() == n,
                                 "glassbox::models::adam::step: parameters and gradient must hold {} values, got {} "
                                 "and {}",
                                 n, parameters.size(), gradient.size());
    double sum = 0;
    for (std::size_t i = 0; i < n; ++i) sum += static_cast<double>(gradient[i]) * static_cast<double>(gradient[i]);
    adam_step_info info;
    info.gradient_norm = std::sqrt(sum);
    detail::require<model_error>(std::isfinite(info.gradient_norm),
                                 "glassbox::models::adam::step: the gradient must be finite, got norm {}",
                                 info.gradient_norm);
    if (options_.max_gradient_norm > 0 && info.gradient_norm > options_.max_gradient_norm)
      info.clip_scale = options_.max_gradient_norm / (info.gradient_norm + 1e-6);
    info.step = ++steps_;
    const double t = static_cast<double>(steps_);
    const double b1 = options_.beta1, b2 = options_.beta2, lr = options_.learning_rate;
    const double correction1 = 1.0 - std::pow(b1, t), correction2 = 1.0 - std::pow(b2, t);
    const double decay = 1.0 - lr * options_.weight_decay;
    const double scale = info.clip_scale;
    const bool masked = !decay_mask_.empty();
    const auto count = static_cast<std::ptrdiff_t>(n);
    GLASSBOX_DETAIL_ADAM_PARALLEL_FOR
    for (std::ptrdiff_t k = 0; k < count; ++k) {
      const auto i = static_cast<std::size_t>(k);
      const double g = static_cast<double>(gradient[i]) * scale;
      double p = static_cast<double>(parameters[i]);
      if (options_.weight_decay != 0 && (!masked || decay_mask_[i] != 0)) p *= decay;
      const double m = b1 * static_cast<double>(first_[i]) + (1.0 - b1) * g;
      const double v = b2 * static_cast<double>(second_[i]) + (1.0 - b2) * g * g;
      first_[i] = static_cast<Scalar>(m);
      second_[i] = static_cast<Scalar>(v);
      p -= lr * (m / correction1) / (std::sqrt(v / correction2) + options_.epsilon);
      parameters[i] = static_cast<Scalar>(p);
    }
    return info;
  }

 private:
  static void check_options(const adam_options& o) {
    constexpr auto who = "glassbox::models::adam";
    detail::require(std::isfinite(o.learning_rate) && o.learning_rate >= 0, "{}: learning_rate must be >= 0, got {}",
                    who, o.learning_rate);
    detail::require(o.beta1 >= 0 && o.beta1 < 1, "{}: beta1 must be in [0, 1), got {}", who, o.beta1);
    detail::require(o.beta2 >= 0 && o.beta2 < 1, "{}: beta2 must be in [0, 1), got {}", who, o.beta2);
    detail::require(o.epsilon > 0, "{}: epsilon must be > 0, got {}", who, o.epsilon);
    detail::require(std::isfinite(o.weight_decay) && o.weight_decay >= 0, "{}: weight_decay must be >= 0, got {}",
                    who, o.weight_decay);
    detail::require(std::isfinite(o.max_gradient_norm) && o.max_gradient_norm >= 0,
                    "{}: max_gradient_norm must be >= 0 (0 = no clipping), got {}", who, o.max_gradient_norm);
  }

  adam_options options_;
  std::vector<Scalar> first_, second_;
  std::vector<std::uint8_t> decay_mask_;
  std::size_t steps_ = 0;
};

/// Adam over float parameters.
using adam = basic_adam<float>;

/// Trains a TrainableModel with Adam: each step takes the mean loss gradient of a batch (through
/// the model's batched `mean_loss_gradient(batch, gradient)` when it has one, else by averaging
/// `loss_gradient` over the batch), applies the optimizer and writes the parameters back.
///
/// Example:
///   glassbox::models::adam_trainer trainer(model, {.learning_rate = 3e-3, .max_gradient_norm = 1.0});
///   for (auto& batch : batches) auto info = trainer.step(batch);
template <TrainableModel M>
class adam_trainer {
 public:
  /// The precision of the model's parameters.
  using scalar_type = std::remove_cv_t<typename decltype(std::declval<const M&>().parameters())::element_type>;

  /// A trainer that updates `model` (kept by reference) with Adam and `options`.
  adam_trainer(M& model, adam_options options = {})
      : model_(&model),
        optimizer_(model.parameter_count(), options),
        parameters_(model.parameters().begin(), model.parameters().end()),
        gradient_(model.parameter_count()) {}

  /// The optimizer (for its moments, learning rate and decay mask).
  basic_adam<scalar_type>& optimizer() { return optimizer_; }

  /// One step on `batch`; returns the batch's mean loss before the update and what the optimizer did.
  adam_step_info step(std::span<const training_example> batch) {
    detail::require<shape_error>(!batch.empty(), "glassbox::models::adam_trainer::step: batch must not be empty");
    double loss = 0;
    if constexpr (requires(const M& m, std::span<const training_example> b, std::span<scalar_type> g) {
                    m.mean_loss_gradient(b, g);
                  }) {
      loss = model_->mean_loss_gradient(batch, std::span<scalar_type>(gradient_));
    } else {
      std::vector<double> sum(gradient_.size(), 0.0);
      for (const auto& example : batch) {
        const auto r = model_->loss_gradient(example);
        loss += r.value;
        for (std::size_t i = 0; i < sum.size(); ++i) sum[i] += static_cast<double>(r.gradient.data()[i]);
      }
      const double w = 1.0 / static_cast<double>(batch.size());
      loss *= w;
      for (std::size_t i = 0; i < sum.size(); ++i) gradient_[i] = static_cast<scalar_type>(sum[i] * w);
    }
    auto info = optimizer_.step(parameters_, gradient_);
    info.loss = loss;
    model_->set_parameters(std::span<const scalar_type>(parameters_));
    return info;
  }

 private:
  M* model_;
  basic_adam<scalar_type> optimizer_;
  std::vector<scalar_type> parameters_, gradient_;
};

}  // namespace glassbox::models

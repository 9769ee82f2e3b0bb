// Training the bundled model: a GPT-2 that labels reviews of the synthetic language
// (docs/ground-truth.md) by next-token prediction at the marker, trained with the reference GPT-2
// and its Adam trainer under a curriculum. Used by `glassbox train` and by the tests.
//
// The recipe is data: models/reviews/recipe.json holds every field of review_training_recipe, and
// `glassbox train --recipe models/reviews/recipe.json` reproduces the shipped weights bit for bit
// on the same machine (same compiler flags and CPU features: the passes use Eigen's vectorised
// kernels, whose rounding depends on the instruction set).
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <functional>
#include <numbers>
#include <string>
#include <thread>
#include <vector>

#include "glassbox/core/error.hpp"
#include "glassbox/core/execution.hpp"
#include "glassbox/datasets/reviews.hpp"
#include "glassbox/models/adam.hpp"
#include "glassbox/models/gpt2.hpp"
#include "glassbox/report/json.hpp"

namespace glassbox::cli {

/// One stage of the curriculum: `steps` optimizer steps on reviews drawn with `options` from data seed `seed`.
struct training_stage {
  std::string name;                   ///< for the log, e.g. "plain"
  datasets::review_options options;   ///< the generator's options in this stage
  std::uint64_t seed = 1;             ///< data seed; example i of step k is example(seed, k * batch + i)
  std::size_t steps = 0;              ///< optimizer steps; the last stage's 0 means "until the end"
};

/// Everything that determines the bundled model's weights.
struct review_training_recipe {
  std::size_t n_layer = 4;        ///< transformer blocks
  std::size_t n_head = 4;         ///< heads per block
  std::size_t n_embd = 64;        ///< residual width
  std::size_t n_positions = 64;   ///< longest sequence (reviews have at most 40 words, the marker and a label)
  std::uint64_t init_seed = 1;    ///< gpt2::random(config, init_seed)
  std::size_t steps = 8000;       ///< optimizer steps in all
  std::size_t batch = 64;         ///< reviews per step
  double learning_rate = 1e-3;    ///< peak Adam learning rate
  std::size_t warmup = 100;       ///< linear warm-up steps; then cosine decay to 0 at `steps`
  double weight_decay = 0.0;      ///< AdamW decoupled weight decay
  double max_gradient_norm = 1.0; ///< global-norm clipping (0 = none)
  std::size_t shards = 2;         ///< each batch is split into this many equal parts whose gradients are
                                  ///< computed (in parallel when threads allow) and averaged in a fixed order
  std::vector<training_stage> stages = default_stages();  ///< the curriculum
  std::uint64_t eval_seed = 2;    ///< held-out data seed (never a training seed)
  std::size_t eval_size = 2000;   ///< held-out reviews

  /// The curriculum of the bundled model: single-clause reviews without modifiers (the polarity
  /// and strength of words), then negation and intensifiers, then the full language.
  static std::vector<training_stage> default_stages() {
    datasets::review_options plain;
    plain.negation_rate = 0;
    plain.contrast_rate = 0;
    plain.intensifier_rate = 0;
    plain.max_length = 20;
    datasets::review_options modifiers;
    modifiers.contrast_rate = 0;
    modifiers.max_length = 30;
    return {{"plain", plain, 11, 400}, {"modifiers", modifiers, 12, 800}, {"full", datasets::review_options{}, 1, 0}};
  }
  /// The model configuration the recipe trains.
  models::gpt2_config config() const {
    models::gpt2_config c;
    c.n_layer = n_layer;
    c.n_head = n_head;
    c.n_embd = n_embd;
    c.n_positions = n_positions;
    c.vocab_size = datasets::review_vocab_size();
    c.pad_token_id = datasets::review_pad_id;
    return c;
  }
  /// Throws glassbox::error for an inconsistent recipe.
  void validate() const {
    detail::require(steps > 0 && batch > 0 && shards > 0 && batch % shards == 0,
                    "recipe: steps and batch must be > 0 and batch a multiple of shards ({}), got steps {}, batch {}",
                    shards, steps, batch);
    detail::require(!stages.empty(), "recipe: stages must not be empty");
    detail::require(std::isfinite(learning_rate) && learning_rate > 0, "recipe: learning_rate must be > 0, got {}",
                    learning_rate);
    for (const auto& s : stages) {
      detail::require(s.seed != eval_seed, "recipe: stage {} uses the held-out seed {}", s.name, eval_seed);
      (void)datasets::review_generator(s.options);  // validates the options
    }
    config().validate<error>("recipe");
  }
};

/// The stage that step `step` (0-based) belongs to.
inline std::size_t stage_of(const review_training_recipe& r, std::size_t step) {
  std::size_t end = 0;
  for (std::size_t i = 0; i < r.stages.size(); ++i) {
    end += r.stages[i].steps;
    if (r.stages[i].steps == 0 || step < end) return i;
  }
  return r.stages.size() - 1;
}

/// The learning rate at step `step` (0-based): linear warm-up, then cosine decay to 0.
inline double learning_rate_at(const review_training_recipe& r, std::size_t step) {
  const double s = static_cast<double>(step + 1);
  if (step < r.warmup) return r.learning_rate * s / static_cast<double>(r.warmup);
  const double progress = (s - static_cast<double>(r.warmup)) / std::max(1.0, static_cast<double>(r.steps - r.warmup));
  return r.learning_rate * 0.5 * (1.0 + std::cos(std::numbers::pi * std::min(1.0, progress)));
}

/// Held-out accuracy: overall and on the negated and contrast subsets (argmax of the two label logits at the marker).
struct review_accuracy {
  double overall = 0, negated = 0, contrast = 0, plain = 0;
  std::size_t n = 0, n_negated = 0, n_contrast = 0, n_plain = 0;
};

/// The accuracy of `model` on `examples` (true labels), reading positive vs negative at the marker row.
inline review_accuracy evaluate_reviews(const models::gpt2& model, const std::vector<datasets::review_example>& examples) {
  review_accuracy a;
  std::size_t ok = 0, ok_neg = 0, ok_con = 0, ok_plain = 0;
  for (const auto& e : examples) {
    const tensor2 z = model.logits_at(e.tokens, std::vector<std::size_t>{e.tokens.size() - 1});
    const token_id predicted = z(0, datasets::review_positive_id) >= z(0, datasets::review_negative_id)
                                   ? datasets::review_positive_id
                                   : datasets::review_negative_id;
    const bool right = predicted == e.true_label;
    ok += right;
    if (e.negated()) ++a.n_negated, ok_neg += right;
    if (e.contrast()) ++a.n_contrast, ok_con += right;
    if (e.plain()) ++a.n_plain, ok_plain += right;
  }
  a.n = examples.size();
  auto ratio = [](std::size_t x, std::size_t n) { return n == 0 ? 0.0 : static_cast<double>(x) / static_cast<double>(n); };
  a.overall = ratio(ok, a.n);
  a.negated = ratio(ok_neg, a.n_negated);
  a.contrast = ratio(ok_con, a.n_contrast);
  a.plain = ratio(ok_plain, a.n_plain);
  return a;
}

/// What the trainer reports after each step.
struct training_progress {
  std::size_t step = 0;      ///< steps done
  std::size_t stage = 0;     ///< index of the stage of the last step
  double loss = 0;           ///< mean loss of the last batch
  double learning_rate = 0;  ///< learning rate of the last step
  double seconds = 0;        ///< wall time since the start
  const models::gpt2* model = nullptr;  ///< the model after the step
};

/// Trains a model by `recipe` on `threads` threads (the result does not depend on threads).
/// `on_step` is called after every step.
inline models::gpt2 train_review_model(const review_training_recipe& recipe, std::size_t threads,
                                       const std::function<void(const training_progress&)>& on_step = {}) {
  recipe.validate();
  const pass_threads_scope budget(threads);  // the optimizer's update and every pass outside the shards
  models::gpt2 model = models::gpt2::random(recipe.config(), recipe.init_seed);
  models::adam_options adam;
  adam.learning_rate = recipe.learning_rate;
  adam.weight_decay = recipe.weight_decay;
  adam.max_gradient_norm = recipe.max_gradient_norm;
  models::adam optimizer(model.parameter_count(), adam);
  std::vector<datasets::review_generator> generators;
  for (const auto& s : recipe.stages) generators.emplace_back(s.options);

  const std::size_t P = model.parameter_count(), shard_size = recipe.batch / recipe.shards;
  std::vector<float> parameters(model.parameters().begin(), model.parameters().end()), gradient(P);
  std::vector<std::vector<float>> shard_gradients(recipe.shards, std::vector<float>(P));
  std::vector<double> shard_losses(recipe.shards);
  std::vector<training_example> batch(recipe.batch);
  const auto start = std::chrono::steady_clock::now();
  const std::size_t workers = std::max<std::size_t>(1, std::min(threads, recipe.shards));

  for (std::size_t step = 0; step < recipe.steps; ++step) {
    const std::size_t stage = stage_of(recipe, step);
    // Steps count from the stage's start, so a stage's data does not depend on the stages before it.
    std::size_t stage_start = 0;
    for (std::size_t i = 0; i < stage; ++i) stage_start += recipe.stages[i].steps;
    for (std::size_t i = 0; i < recipe.batch; ++i)
      batch[i] = datasets::to_training_example(
          generators[stage].example(recipe.stages[stage].seed, (step - stage_start) * recipe.batch + i));

    auto run_shard = [&](std::size_t s) {
      const pass_threads_scope scope(std::max<std::size_t>(1, threads / workers));  // the budget, shared out
      shard_losses[s] = model.mean_loss_gradient(
          std::span<const training_example>(batch.data() + s * shard_size, shard_size), std::span<float>(shard_gradients[s]));
    };
    for (std::size_t first = 0; first < recipe.shards; first += workers) {
      std::vector<std::jthread> pool;
      for (std::size_t s = first + 1; s < std::min(recipe.shards, first + workers); ++s) pool.emplace_back(run_shard, s);
      run_shard(first);
    }
    // Equal shards: the batch mean is the mean of the shard means, summed in shard order.
    double loss = 0;
    const float w = 1.0f / static_cast<float>(recipe.shards);
    std::fill(gradient.begin(), gradient.end(), 0.0f);
    for (std::size_t s = 0; s < recipe.shards; ++s) {
      loss += shard_losses[s] / static_cast<double>(recipe.shards);
      for (std::size_t i = 0; i < P; ++i) gradient[i] += w * shard_gradients[s][i];
    }
    const double lr = learning_rate_at(recipe, step);
    optimizer.set_learning_rate(lr);
    optimizer.step(parameters, gradient);
    model.set_parameters(std::span<const float>(parameters));
    if (on_step)
      on_step({step + 1, stage, loss, lr,
               std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), &model});
  }
  return model;
}

/// The recipe as JSON (models/reviews/recipe.json).
inline report::json recipe_to_json(const review_training_recipe& r) {
  report::json j;
  j["n_layer"] = r.n_layer;
  j["n_head"] = r.n_head;
  j["n_embd"] = r.n_embd;
  j["n_positions"] = r.n_positions;
  j["init_seed"] = r.init_seed;
  j["steps"] = r.steps;
  j["batch"] = r.batch;
  j["learning_rate"] = r.learning_rate;
  j["warmup"] = r.warmup;
  j["weight_decay"] = r.weight_decay;
  j["max_gradient_norm"] = r.max_gradient_norm;
  j["shards"] = r.shards;
  report::json stages = report::json::array();
  for (const auto& s : r.stages) {
    report::json o;
    o["min_length"] = s.options.min_length;
    o["max_length"] = s.options.max_length;
    o["contrast_rate"] = s.options.contrast_rate;
    o["neutral_before_but"] = s.options.neutral_before_but;
    o["opposite_before_but"] = s.options.opposite_before_but;
    o["negation_rate"] = s.options.negation_rate;
    o["intensifier_rate"] = s.options.intensifier_rate;
    o["noise"] = s.options.noise;
    stages.push_back({{"name", s.name}, {"seed", s.seed}, {"steps", s.steps}, {"options", std::move(o)}});
  }
  j["stages"] = std::move(stages);
  j["eval_seed"] = r.eval_seed;
  j["eval_size"] = r.eval_size;
  return j;
}

/// A recipe from JSON; every field is required, so that a recipe file says everything.
inline review_training_recipe recipe_from_json(const report::json& j) {
  try {
    review_training_recipe r;
    r.n_layer = j.at("n_layer").get<std::size_t>();
    r.n_head = j.at("n_head").get<std::size_t>();
    r.n_embd = j.at("n_embd").get<std::size_t>();
    r.n_positions = j.at("n_positions").get<std::size_t>();
    r.init_seed = j.at("init_seed").get<std::uint64_t>();
    r.steps = j.at("steps").get<std::size_t>();
    r.batch = j.at("batch").get<std::size_t>();
    r.learning_rate = j.at("learning_rate").get<double>();
    r.warmup = j.at("warmup").get<std::size_t>();
    r.weight_decay = j.at("weight_decay").get<double>();
    r.max_gradient_norm = j.at("max_gradient_norm").get<double>();
    r.shards = j.at("shards").get<std::size_t>();
    r.stages.clear();
    for (const auto& s : j.at("stages")) {
      training_stage st;
      st.name = s.at("name").get<std::string>();
      st.seed = s.at("seed").get<std::uint64_t>();
      st.steps = s.at("steps").get<std::size_t>();
      const auto& o = s.at("options");
      st.options.min_length = o.at("min_length").get<std::size_t>();
      st.options.max_length = o.at("max_length").get<std::size_t>();
      st.options.contrast_rate = o.at("contrast_rate").get<double>();
      st.options.neutral_before_but = o.at("neutral_before_but").get<double>();
      st.options.opposite_before_but = o.at("opposite_before_but").get<double>();
      st.options.negation_rate = o.at("negation_rate").get<double>();
      st.options.intensifier_rate = o.at("intensifier_rate").get<double>();
      st.options.noise = o.at("noise").get<double>();
      r.stages.push_back(std::move(st));
    }
    r.eval_seed = j.at("eval_seed").get<std::uint64_t>();
    r.eval_size = j.at("eval_size").get<std::size_t>();
    r.validate();
    return r;
  } catch (const report::json::exception& e) {
    detail::fail("recipe: {}", e.what());
  }
}

}  // namespace glassbox::cli

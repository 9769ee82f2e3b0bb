// glassbox train: trains the bundled model (or a variant) on the synthetic review language.
#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "cli.hpp"
#include "glassbox/io/vocabulary.hpp"
#include "review_training.hpp"
#include "tracin_checkpoints.hpp"

namespace glassbox::cli {

runner add_train_command(CLI::App& app) {
  struct state {
    std::string recipe_file, out;
    review_training_recipe recipe;
    std::size_t threads = 0, log_every = 100, save_checkpoints = 0;
  };
  auto s = std::make_shared<state>();
  auto* cmd = app.add_subcommand("train",
                                 "Train a GPT-2 on the synthetic review language (the recipe of the bundled model "
                                 "by default) and write model.safetensors, vocab.txt and recipe.json");
  cmd->add_option("--out", s->out, "output directory (created if needed)")->required();
  cmd->add_option("--recipe", s->recipe_file,
                  "a recipe.json to reproduce (e.g. models/reviews/recipe.json); other options override it");
  auto& r = s->recipe;
  cmd->add_option("--layers", r.n_layer, "transformer blocks")->capture_default_str();
  cmd->add_option("--heads", r.n_head, "heads per block")->capture_default_str();
  cmd->add_option("--width", r.n_embd, "residual width (a multiple of --heads)")->capture_default_str();
  cmd->add_option("--steps", r.steps, "optimizer steps in all")->capture_default_str();
  cmd->add_option("--batch", r.batch, "reviews per step (a multiple of the shards, 2)")->capture_default_str();
  cmd->add_option("--lr", r.learning_rate, "peak learning rate (warm-up, then cosine decay)")->capture_default_str();
  cmd->add_option("--seed", r.init_seed, "initialisation seed")->capture_default_str();
  cmd->add_option("--threads", s->threads, "threads (0 = all cores); the weights do not depend on it")
      ->capture_default_str();
  cmd->add_option("--eval-size", r.eval_size, "held-out reviews to evaluate at the end")->capture_default_str();
  cmd->add_option("--log-every", s->log_every, "print the loss every this many steps (0 = never)")
      ->capture_default_str();
  cmd->add_option("--save-checkpoints", s->save_checkpoints,
                  "also write K checkpoints evenly spaced in steps (the last = the final model) with their learning "
                  "rates to OUT/checkpoints/, for TracIn (0 = none)")
      ->capture_default_str();
  return [s, cmd] {
    review_training_recipe recipe = s->recipe;
    if (!s->recipe_file.empty()) {
      std::ifstream in(s->recipe_file);
      if (!in) detail::fail("cannot read recipe {}", s->recipe_file);
      report::json j;
      try {
        j = report::json::parse(in);
      } catch (const report::json::exception& e) {
        detail::fail("recipe {} is not valid JSON: {}", s->recipe_file, e.what());
      }
      recipe = recipe_from_json(j);
      // Command-line options given explicitly override the file.
      auto given = [&](const char* name) { return cmd->count(name) > 0; };
      if (given("--layers")) recipe.n_layer = s->recipe.n_layer;
      if (given("--heads")) recipe.n_head = s->recipe.n_head;
      if (given("--width")) recipe.n_embd = s->recipe.n_embd;
      if (given("--steps")) recipe.steps = s->recipe.steps;
      if (given("--batch")) recipe.batch = s->recipe.batch;
      if (given("--lr")) recipe.learning_rate = s->recipe.learning_rate;
      if (given("--seed")) recipe.init_seed = s->recipe.init_seed;
      if (given("--eval-size")) recipe.eval_size = s->recipe.eval_size;
    }
    recipe.validate();
    // TracIn checkpoints: the model after each of K evenly spaced steps, with that step's learning rate.
    const std::filesystem::path checkpoint_dir = std::filesystem::path(s->out) / "checkpoints";
    const std::vector<std::size_t> checkpoint_at =
        s->save_checkpoints > 0 ? checkpoint_steps(recipe.steps, s->save_checkpoints) : std::vector<std::size_t>{};
    std::vector<training_checkpoint> checkpoints;
    if (!checkpoint_at.empty()) std::filesystem::create_directories(checkpoint_dir);
    const std::size_t threads = s->threads == 0 ? std::max(1u, std::thread::hardware_concurrency()) : s->threads;
    fmt::print("training GPT-2 L={} H={} d={} for {} steps of {} reviews on {} thread(s)\n", recipe.n_layer,
               recipe.n_head, recipe.n_embd, recipe.steps, recipe.batch, threads);
    const auto probe = datasets::generate_reviews(std::min<std::size_t>(500, recipe.eval_size), recipe.eval_seed);
    double window = 0;
    std::size_t in_window = 0;
    const auto model = train_review_model(recipe, threads, [&](const training_progress& p) {
      if (checkpoints.size() < checkpoint_at.size() && p.step == checkpoint_at[checkpoints.size()]) {
        checkpoints.push_back({p.step, checkpoint_file_name(p.step), p.learning_rate});
        p.model->save(checkpoint_dir / checkpoints.back().file);
      }
      window += p.loss;
      ++in_window;
      if (s->log_every > 0 && (p.step % s->log_every == 0 || p.step == recipe.steps)) {
        fmt::print("step {:>6}  stage {:<10} lr {:.2e}  loss {:.4f}  {:.0f} s\n", p.step, recipe.stages[p.stage].name,
                   p.learning_rate, window / static_cast<double>(in_window), p.seconds);
        std::fflush(stdout);
        window = 0;
        in_window = 0;
      }
      if (s->log_every > 0 && !probe.empty() && p.step % (10 * s->log_every) == 0 && p.step < recipe.steps) {
        const auto a = evaluate_reviews(*p.model, probe);
        fmt::print("  held-out ({} reviews): {:.1f}%  negated {:.1f}%  contrast {:.1f}%\n", a.n, 100 * a.overall,
                   100 * a.negated, 100 * a.contrast);
      }
    });
    const std::filesystem::path out(s->out);
    std::filesystem::create_directories(out);
    model.save(out / "model.safetensors");
    io::vocabulary(datasets::review_vocabulary()).save(out / "vocab.txt");
    write_json((out / "recipe.json").string(), recipe_to_json(recipe));
    if (recipe.eval_size > 0) {
      const auto held_out = datasets::generate_reviews(recipe.eval_size, recipe.eval_seed);
      const auto a = evaluate_reviews(model, held_out);
      fmt::print("held-out accuracy (seed {}, {} reviews): {:.2f}%  negated {:.2f}% ({})  contrast {:.2f}% ({})  "
                 "plain {:.2f}% ({})\n",
                 recipe.eval_seed, a.n, 100 * a.overall, 100 * a.negated, a.n_negated, 100 * a.contrast,
                 a.n_contrast, 100 * a.plain, a.n_plain);
    }
    if (!checkpoints.empty()) {
      write_json((checkpoint_dir / "checkpoints.json").string(), checkpoint_list_json(checkpoints));
      for (const auto& c : checkpoints)
        fmt::print("checkpoint after step {} (learning rate {:.6g}): {}\n", c.step, c.learning_rate,
                   (checkpoint_dir / c.file).string());
    }
    fmt::print("wrote {}\n", out.string());
  };
}

}  // namespace glassbox::cli

// The command line against the library: predict --json equals the library's logits,
// generate-data equals the generator, the shipped model's held-out accuracy, and the trainer
// (loss falls, results independent of the thread count, the recipe round-trips).
#include <catch2/catch.hpp>
#include <sys/resource.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "glassbox/datasets/reviews.hpp"
#include "glassbox/models/gpt2.hpp"
#include "glassbox/report/json.hpp"
#include "review_training.hpp"

extern template class glassbox::models::basic_gpt2<float>;

namespace fs = std::filesystem;
namespace gd = glassbox::datasets;
using glassbox::report::json;

namespace {

const fs::path bundled = fs::path(GLASSBOX_SOURCE_DIR) / "models" / "reviews";
const fs::path work = GLASSBOX_CLI_WORK;

// Runs `glassbox <args>` with stdout into `out`; returns the exit status.
int run_cli(const std::string& args, const fs::path& out) {
  const std::string command = std::string("\"") + GLASSBOX_CLI + "\" " + args + " > \"" + out.string() + "\" 2>&1";
  const int status = std::system(command.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string read_all(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

TEST_CASE("cli: predict --json logits equal the library's logits", "[cli]") {
  const fs::path file = work / "predict.json";
  REQUIRE(run_cli("predict --text \"the pasta was excellent but the service was not very friendly . =>\" --json \"" +
                      file.string() + "\"",
                  work / "predict.log") == 0);
  const json j = json::parse(read_all(file));
  const auto model = glassbox::models::gpt2::load(bundled);
  const auto ids = gd::encode_review("the pasta was excellent but the service was not very friendly . =>");
  CHECK(j.at("token_ids").get<std::vector<glassbox::token_id>>() == ids);
  CHECK(j.at("tokens").at(3).get<std::string>() == "excellent");
  const glassbox::tensor2 z = model.logits(ids);
  const auto& rows = j.at("logits");
  REQUIRE(rows.size() == z.shape(0));
  std::size_t mismatches = 0;
  for (std::size_t t = 0; t < z.shape(0); ++t) {
    REQUIRE(rows[t].size() == z.shape(1));
    // JSON holds the float logits as doubles: converting back gives the float exactly.
    for (std::size_t v = 0; v < z.shape(1); ++v) mismatches += static_cast<float>(rows[t][v].get<double>()) != z(t, v);
  }
  CHECK(mismatches == 0);
}

TEST_CASE("cli: an empty or blank input is one clear error", "[cli]") {
  // Through the shell, since CTest's argument lists cannot carry an empty or blank argument.
  for (const char* input : {"--text \"\"", "--text \"   \"", "--tokens \"\""}) {
    INFO(input);
    const fs::path log = work / "empty.log";
    CHECK(run_cli(std::string("predict ") + input, log) == 1);
    CHECK(read_all(log) == "glassbox: error: the input is empty: pass --text or --tokens\n");
  }
}

TEST_CASE("cli: generate-data writes the generator's reviews and ground truth", "[cli]") {
  const fs::path file = work / "data.jsonl";
  REQUIRE(run_cli("generate-data --n 50 --seed 7 --noise 0.3 --out \"" + file.string() + "\"", work / "gen.log") == 0);
  gd::review_options options;
  options.noise = 0.3;
  const auto expected = gd::generate_reviews(50, 7, options);
  std::ifstream in(file);
  std::string line;
  std::size_t i = 0, flipped = 0;
  while (std::getline(in, line)) {
    REQUIRE(i < expected.size());
    const json j = json::parse(line);
    const auto& e = expected[i];
    CHECK(j.at("text").get<std::string>() == e.text());
    CHECK(j.at("token_ids").get<std::vector<glassbox::token_id>>() == e.tokens);
    CHECK(j.at("label").get<std::string>() == gd::review_word(e.label).word);
    CHECK(j.at("true_label").get<std::string>() == gd::review_word(e.true_label).word);
    CHECK(j.at("rationale").get<std::vector<std::size_t>>() == e.rationale());
    CHECK(j.at("flipped").get<bool>() == e.flipped);
    CHECK(j.at("properties").at("in_rationale").size() == e.tokens.size());
    flipped += e.flipped;
    ++i;
  }
  CHECK(i == 50);
  CHECK(flipped > 0);  // P(no flip in 50 at p = 0.3) = 0.7^50 ~ 2e-8
}

TEST_CASE("cli: the shipped model meets its accuracy on 2,000 held-out reviews", "[cli][bundled]") {
  const auto model = glassbox::models::gpt2::load(bundled);
  const auto held_out = gd::generate_reviews(2000, 2);
  const auto a = glassbox::cli::evaluate_reviews(model, held_out);
  INFO("overall " << a.overall << " negated " << a.negated << " (" << a.n_negated << ") contrast " << a.contrast
                  << " (" << a.n_contrast << ")");
  // The acceptance bar of the bundled model (docs/ground-truth.md): 99% overall, 97% on each subset.
  CHECK(a.overall >= 0.99);
  CHECK(a.negated >= 0.97);
  CHECK(a.contrast >= 0.97);
  CHECK(a.n_negated > 500);
  CHECK(a.n_contrast > 500);
}

TEST_CASE("cli: a tiny model trains: the loss falls, the same budget gives the same weights, another agrees to rounding", "[cli][train]") {
  glassbox::cli::review_training_recipe r;
  r.n_layer = 1;
  r.n_head = 2;
  r.n_embd = 16;
  r.steps = 60;
  r.batch = 16;
  r.warmup = 10;
  r.learning_rate = 3e-3;
  r.stages = glassbox::cli::review_training_recipe::default_stages();
  r.stages[0].steps = 60;
  std::vector<double> losses;
  const auto one = glassbox::cli::train_review_model(r, 1, [&](const auto& p) { losses.push_back(p.loss); });
  REQUIRE(losses.size() == 60);
  double first = 0, last = 0;
  for (std::size_t i = 0; i < 10; ++i) first += losses[i] / 10, last += losses[50 + i] / 10;
  INFO("mean loss of the first 10 steps " << first << ", of the last 10 " << last);
  // From ln(224) = 5.4 at initialisation the output first concentrates its mass on the two labels
  // (towards ln 2 = 0.69); 60 steps of a 1-layer model cover part of that way (5.2 to 2.3 measured).
  CHECK(first > 4.0);
  CHECK(last < 0.6 * first);
  // The same thread budget gives the same weights, bit for bit.
  const auto again = glassbox::cli::train_review_model(r, 1);
  const auto a = one.parameters(), b = again.parameters();
  REQUIRE(a.size() == b.size());
  CHECK(std::equal(a.begin(), a.end(), b.begin()));
  // Another budget splits the products differently, and OpenBLAS rounds products of other sizes
  // differently (docs/concepts.md, "Threads: one budget"): the weights agree to rounding, grown
  // over 60 steps.
  const auto two = glassbox::cli::train_review_model(r, 2);
  const auto c = two.parameters();
  REQUIRE(c.size() == a.size());
  double largest = 0, difference = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    largest = std::max(largest, std::abs(static_cast<double>(a[i])));
    difference = std::max(difference, std::abs(static_cast<double>(a[i]) - static_cast<double>(c[i])));
  }
  CAPTURE(largest, difference);
  CHECK(difference <= 1e-3 * largest);
}

TEST_CASE("cli: the recipe round-trips through JSON and the shipped recipe is the default one", "[cli][train]") {
  const glassbox::cli::review_training_recipe r;
  const json j = glassbox::cli::recipe_to_json(r);
  CHECK(glassbox::cli::recipe_to_json(glassbox::cli::recipe_from_json(j)) == j);
  const json shipped = json::parse(read_all(bundled / "recipe.json"));
  CHECK(glassbox::cli::recipe_to_json(glassbox::cli::recipe_from_json(shipped)) == shipped);
  json broken = j;
  broken.erase("batch");
  CHECK_THROWS_WITH(glassbox::cli::recipe_from_json(broken), Catch::Contains("recipe:") && Catch::Contains("batch"));
}

TEST_CASE("cli: train writes a model that loads, with its vocabulary and recipe", "[cli][train]") {
  const fs::path out = work / "trained";
  fs::remove_all(out);
  REQUIRE(run_cli("train --out \"" + out.string() +
                      "\" --layers 1 --heads 2 --width 16 --steps 5 --batch 8 --eval-size 20 --log-every 0",
                  work / "train.log") == 0);
  const auto model = glassbox::models::gpt2::load(out);
  CHECK(model.n_layer() == 1);
  CHECK(model.width() == 16);
  CHECK(model.vocab_size() == gd::review_vocab_size());
  CHECK(fs::exists(out / "vocab.txt"));
  const json recipe = json::parse(read_all(out / "recipe.json"));
  CHECK(recipe.at("steps").get<int>() == 5);
  CHECK(read_all(work / "train.log").find("held-out accuracy") != std::string::npos);
}

namespace {

// The CPU time (user + system) of the children waited for so far, in seconds.
double children_cpu_seconds() {
  rusage usage{};
  getrusage(RUSAGE_CHILDREN, &usage);
  return static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
         1e-6 * static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec);
}

// Runs `glassbox <args>`; returns {CPU seconds, wall seconds} of the process.
std::pair<double, double> cpu_and_wall(const std::string& args, const fs::path& log) {
  const double cpu0 = children_cpu_seconds();
  const auto t0 = std::chrono::steady_clock::now();
  REQUIRE(run_cli(args, log) == 0);
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return {children_cpu_seconds() - cpu0, wall};
}

}  // namespace

TEST_CASE("cli: --threads 1 keeps one core busy, end to end", "[cli][threads]") {
  // A model wide enough that its products would be split across threads (width 256), and methods
  // that would run several workers: with a budget of one thread, the process's CPU time cannot
  // exceed its wall time (plus the shell's and the loader's few milliseconds).
  glassbox::models::gpt2_config c;
  c.n_layer = 4;
  c.n_head = 4;
  c.n_embd = 256;
  c.vocab_size = 2000;
  c.n_positions = 64;
  const fs::path model = work / "threads_model.safetensors";
  glassbox::models::gpt2::random(c, 1).save(model);
  std::string tokens;
  for (int i = 0; i < 48; ++i) {
    if (i > 0) tokens += ',';
    tokens += std::to_string((i * 37 + 5) % 2000);
  }
  for (const std::string method : {"integrated-gradients --steps 64", "kernel-shap --samples 400"}) {
    const auto [cpu, wall] = cpu_and_wall("explain --model \"" + model.string() + "\" --tokens " + tokens +
                                              " --method " + method + " --threads 1 --top 0",
                                          work / "threads.log");
    CAPTURE(method, cpu, wall);
    CHECK(wall > 0.2);  // long enough to measure
    CHECK(cpu <= 1.05 * wall + 0.05);
  }
}

TEST_CASE("cli: the methods table of docs/cli.md is what `glassbox methods --markdown` prints", "[cli][methods]") {
  REQUIRE(run_cli("methods --markdown", work / "methods.md") == 0);
  const std::string generated = read_all(work / "methods.md");
  const std::string page = read_all(fs::path(GLASSBOX_SOURCE_DIR) / "docs" / "cli.md");
  const std::string begin = "<!-- methods table: glassbox methods --markdown -->\n", end = "<!-- end of the methods table -->";
  const auto b = page.find(begin), e = page.find(end);
  REQUIRE(b != std::string::npos);
  REQUIRE(e != std::string::npos);
  CHECK(page.substr(b + begin.size(), e - b - begin.size()) == generated);
  // Every method is listed once, with the command that runs it.
  CHECK(generated.find("| explain | `integrated_gradients` | `integrated-gradients` | `DifferentiableModel` |") !=
        std::string::npos);
  CHECK(generated.find("| attention | `attention_rollout` | `attention-rollout` | `AttentionModel` |") !=
        std::string::npos);
}

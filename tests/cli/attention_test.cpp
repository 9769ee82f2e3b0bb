// glassbox attention / heads against the library: the JSON matrices equal the library's results
// for the same input, the HTML of a long input stays small, and the findings of issue 6 on the
// bundled model (docs/attention.md, "The experiment on the review model") hold.
//
// The model is the bundled one (models/reviews); GLASSBOX_ATTENTION_TEST_MODEL overrides it.
#include "glassbox/attention.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>

#include "glassbox/datasets/reviews.hpp"
#include "glassbox/models/gpt2.hpp"
#include "glassbox/report/attention_html.hpp"
#include "glassbox/report/attention_json.hpp"

extern template class glassbox::models::basic_gpt2<float>;

namespace fs = std::filesystem;
namespace gd = glassbox::datasets;
using glassbox::report::json;

namespace {

const fs::path work = GLASSBOX_CLI_WORK;

fs::path model_path() {
  if (const char* p = std::getenv("GLASSBOX_ATTENTION_TEST_MODEL"); p && *p) return p;
  return fs::path(GLASSBOX_SOURCE_DIR) / "models" / "reviews";
}

// Runs `glassbox <args> --model <model>` with stdout and stderr into `out`; returns the exit status.
int run_cli(const std::string& args, const fs::path& out) {
  const std::string command = std::string("\"") + GLASSBOX_CLI + "\" " + args + " --model \"" + model_path().string() +
                              "\" > \"" + out.string() + "\" 2>&1";
  const int status = std::system(command.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string read_all(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

const std::string review = "the pasta was excellent but the service was not very friendly . =>";

// The CLI's JSON for `method` on `review`.
json cli_json(const std::string& method, const std::string& extra = "") {
  const fs::path file = work / ("attention_" + method + ".json");
  const fs::path log = work / ("attention_" + method + ".log");
  const int status = run_cli(
      "attention --text \"" + review + "\" --method " + method + " " + extra + " --json \"" + file.string() + "\"",
      log);
  INFO(read_all(log));
  REQUIRE(status == 0);
  return json::parse(read_all(file));
}

// Every entry of the JSON matrix equals the float of the library's matrix. The JSON holds each
// float as a double, so converting back gives the float exactly: the comparison is exact.
void check_matrix(const json& rows, const glassbox::tensor2& m) {
  REQUIRE(rows.size() == m.shape(0));
  std::size_t mismatches = 0;
  for (std::size_t i = 0; i < m.shape(0); ++i) {
    REQUIRE(rows[i].size() == m.shape(1));
    for (std::size_t j = 0; j < m.shape(1); ++j) mismatches += rows[i][j].get<float>() != m(i, j) ? 1 : 0;
  }
  CHECK(mismatches == 0);
}

// Softmax rows under a causal mask, random scores of scale `sharpness`: an attention tensor [L, H, T, T].
glassbox::tensor4 random_attention(std::size_t layers, std::size_t heads, std::size_t t, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> z(0.0, 2.0);
  glassbox::tensor4 a({layers, heads, t, t});
  std::vector<double> row(t);
  for (std::size_t l = 0; l < layers; ++l)
    for (std::size_t h = 0; h < heads; ++h)
      for (std::size_t i = 0; i < t; ++i) {
        double sum = 0;
        for (std::size_t j = 0; j <= i; ++j) sum += row[j] = std::exp(z(rng));
        for (std::size_t j = 0; j < t; ++j) a(l, h, i, j) = j <= i ? static_cast<float>(row[j] / sum) : 0.0f;
      }
  return a;
}

std::size_t count(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (std::size_t k = text.find(what); k != std::string::npos; k = text.find(what, k + 1)) ++n;
  return n;
}

}  // namespace

TEST_CASE("cli attention: the JSON equals the library's result for the same input", "[cli][attention]") {
  const auto model = glassbox::models::gpt2::load(model_path());
  const auto ids = gd::encode_review(review);
  const std::size_t t = ids.size();

  SECTION("rollout") {
    const json j = cli_json("attention-rollout");
    CHECK(j.at("schema") == "glassbox.attention");
    CHECK(j.at("version") == 2);
    CHECK(j.at("token_ids").get<glassbox::token_sequence>() == ids);
    CHECK(j.at("tokens").at(3) == "excellent");
    const auto r = glassbox::attention_rollout(model, ids);
    check_matrix(j.at("matrix"), r.matrix);
    CHECK(j.at("position") == t - 1);
    CHECK(j.at("last_layer") == model.n_layer());
  }
  SECTION("rollout with options") {
    const json j = cli_json("attention-rollout", "--aggregation max --residual 0.3 --product right --layer 0");
    glassbox::rollout_options o;
    o.graph.aggregation = glassbox::head_aggregation::max;
    o.graph.residual = 0.3;
    o.product = glassbox::rollout_product::right;
    o.graph.last_layer = 1;
    check_matrix(j.at("matrix"), glassbox::attention_rollout(model, ids, o).matrix);
    CHECK(j.at("options").at("aggregation") == "max");
  }
  SECTION("flow") {
    const json j = cli_json("attention-flow", "--threads 1");
    check_matrix(j.at("matrix"), glassbox::attention_flow(model, ids).matrix);
    CHECK(j.at("row_positions").size() == t);
    CHECK(j.contains("unnormalized"));
  }
  SECTION("raw: every head and the selected map") {
    const json j = cli_json("raw-attention", "--layer 0 --head 1");
    const glassbox::tensor4 a = model.attentions(ids);
    REQUIRE(j.at("attentions").size() == model.n_layer());
    REQUIRE(j.at("attentions").at(0).size() == model.n_head());
    std::size_t mismatches = 0;
    for (std::size_t l = 0; l < a.shape(0); ++l)
      for (std::size_t h = 0; h < a.shape(1); ++h)
        for (std::size_t i = 0; i < t; ++i)
          for (std::size_t k = 0; k < t; ++k) mismatches += j["attentions"][l][h][i][k].get<float>() != a(l, h, i, k);
    CHECK(mismatches == 0);
    glassbox::tensor2 head01({t, t});
    for (std::size_t i = 0; i < t; ++i)
      for (std::size_t k = 0; k < t; ++k) head01(i, k) = a(0, 1, i, k);
    check_matrix(j.at("matrix"), head01);
    CHECK(j.at("layer") == 0);
    CHECK(j.at("head") == 1);
  }
  SECTION("chefer and attgrad explain the model's top prediction by default") {
    const glassbox::tensor2 logits = model.logits(ids);
    const bool positive = logits(t - 1, gd::review_positive_id) > logits(t - 1, gd::review_negative_id);
    const json j = cli_json("chefer-relevance");
    const auto top = j.at("target").at("token").get<glassbox::token_id>();
    // The bundled model predicts a label after the marker.
    CHECK(top == (positive ? gd::review_positive_id : gd::review_negative_id));
    const auto f = glassbox::target::log_probability(top, static_cast<std::ptrdiff_t>(t - 1));
    check_matrix(j.at("matrix"), glassbox::chefer_relevance(model, ids, f).matrix);
    const json g = cli_json("attgrad", "--target positive");
    check_matrix(g.at("matrix"),
                 glassbox::attgrad(
                     model, ids, glassbox::target::log_probability(gd::review_positive_id, static_cast<std::ptrdiff_t>(t - 1)))
                     .matrix);
  }
}

TEST_CASE("cli heads: importance equals the library's, the curve starts at the ablation's base", "[cli][attention]") {
  const fs::path file = work / "heads_check.json";
  const int status = run_cli("heads --n 12 --threads 1 --json \"" + file.string() + "\"", work / "heads_check.log");
  INFO(read_all(work / "heads_check.log"));
  REQUIRE(status == 0);
  const json j = json::parse(read_all(file));
  CHECK(j.at("schema") == "glassbox.heads");
  const auto model = glassbox::models::gpt2::load(model_path());
  std::vector<glassbox::labelled_example> data;
  for (const auto& r : gd::generate_reviews(12, 2)) data.push_back({r.tokens, r.true_label});
  glassbox::head_importance_options o;
  o.execution.threads = 1;
  const auto imp = glassbox::head_importance(model, std::span<const glassbox::labelled_example>(data), o);
  check_matrix(j.at("importance").at("importance"), imp.importance);
  const auto& curve = j.at("pruning");
  REQUIRE(curve.at("accuracy").size() == model.n_layer() * model.n_head() + 1);
  CHECK(curve.at("accuracy").at(0).get<double>() == j.at("ablation").at("base_accuracy").get<double>());
  CHECK(j.at("statistics").at("entropy").size() == model.n_layer());
  CHECK(j.at("statistics").at("cluster_order").size() == model.n_layer() * model.n_head());
}

TEST_CASE("attention HTML of a 300-token input stays small and linear in size", "[cli][attention]") {
  // 4 layers x 4 heads, T = 300: the dense maps hold 16 * 300^2 = 1.44 M weights.
  const std::size_t t = 300;
  const auto a = random_attention(4, 4, t, 7);
  auto raw = glassbox::raw_attention(a);
  raw.token_ids.assign(t, 5);
  std::vector<std::string> words(t);
  for (std::size_t i = 0; i < t; ++i) words[i] = fmt::format("w{}", i);
  glassbox::rollout_options ro;
  const auto rollout = glassbox::attention_rollout(a, ro);
  const std::string html = glassbox::report::attention_html(raw, &rollout, words);
  // Measured about 0.5 MB; the bound leaves room, but a T^2 DOM (1.44 M cells) could not fit.
  CHECK(html.size() < 1'500'000);
  // DOM elements: the main heatmap and 20 thumbnails are at most 81 paths each; text labels are O(T).
  CHECK(count(html, "<rect") + count(html, "<path") + count(html, "<text") < 6000);
  CHECK(count(html, "Pooled into 100 x 100 bins of 3 x 3 positions") == 1);
  CHECK(html.find("<script src") == std::string::npos);  // self-contained
  CHECK(html.find("</script>", html.find("id=\"hv-data\"")) != std::string::npos);

  // Pooling keeps the mass of a row: a pooled row of an attention map sums to one.
  const auto p = glassbox::report::detail::pool(
      t, t, [&](std::size_t i, std::size_t j) { return static_cast<double>(a(0, 0, i, j)); }, 128);
  REQUIRE(p.rows == 100);
  for (std::size_t i = 0; i < p.rows; ++i) {
    double sum = 0;
    for (std::size_t j = 0; j < p.cols; ++j) sum += p.at(i, j);
    CHECK(sum == Approx(1.0).margin(1e-5));  // float weights summed over 300 keys
  }
}

TEST_CASE("heads HTML and JSON hold every analysis", "[cli][attention]") {
  // A random-free check of the page structure on bare results.
  glassbox::report::head_report rep;
  glassbox::pruning_curve_result c;
  c.layers = 2;
  c.heads = 2;
  c.heads_masked = {0, 1, 2, 3, 4};
  c.accuracy = {1.0, 1.0, 0.995, 0.8, 0.5};
  c.mean_target = {-0.1, -0.1, -0.2, -0.6, -0.7};
  c.pruning_order = {{0, 1}, {1, 0}, {0, 0}, {1, 1}};
  rep.pruning = c;
  glassbox::head_importance_result imp;
  imp.layers = 2;
  imp.heads = 2;
  imp.importance = glassbox::tensor2({2, 2});
  imp.raw_importance = imp.mean_gradient = imp.importance;
  rep.importance = imp;
  const json j = glassbox::report::to_json(rep);
  CHECK(j.at("pruning").at("heads_needed_99") == 2);  // 2 masked at 0.995 >= 0.99, the 3rd falls below
  CHECK(j.at("statistics").is_null());
  const std::string html = glassbox::report::heads_html(rep);
  CHECK(html.find("Pruning curve") != std::string::npos);
  CHECK(html.find("with 2 of 4 heads") != std::string::npos);
  CHECK(count(html, "<circle") == 5);
}

TEST_CASE("bundled model: where attention goes and which heads matter (issue 6 findings)", "[cli][attention]") {
  // The experiment of bench/attention_sentiment_experiment on 200 held-out reviews (seed 2); the
  // measured figures are in docs/attention.md. Only what holds with a wide margin is asserted.
  const auto model = glassbox::models::gpt2::load(model_path());
  const auto reviews = gd::generate_reviews(200, 2);
  double raw_deciding = 0, raw_distractor = 0, roll_deciding = 0, roll_distractor = 0, roll_other = 0,
         flow_deciding = 0, flow_other = 0;
  std::size_t with_distractors = 0;
  std::vector<double> head_deciding(model.n_layer() * model.n_head(), 0.0);
  for (const auto& r : reviews) {
    REQUIRE(r.truth.deciding_words.size() == 1);
    const std::size_t d = r.truth.deciding_words.front(), t = r.tokens.size();
    std::vector<std::size_t> distractors, others;
    for (std::size_t j = 0; j < r.review_length(); ++j) {
      if (r.properties()[j].in_rationale) continue;
      others.push_back(j);
      if (r.properties()[j].is_sentiment) distractors.push_back(j);
    }
    const glassbox::tensor4 a = model.attentions(r.tokens);
    const glassbox::tensor3 mean = glassbox::aggregate_heads(a);
    for (std::size_t l = 0; l < a.shape(0); ++l)
      for (std::size_t h = 0; h < a.shape(1); ++h) head_deciding[l * a.shape(1) + h] += a(l, h, t - 1, d);
    const auto roll = glassbox::attention_rollout(a).scores;
    glassbox::flow_options fo;
    fo.sources = {t - 1};
    fo.execution.threads = 1;
    const auto flow = glassbox::attention_flow(a, fo).scores;
    auto average = [](const std::vector<std::size_t>& at, auto&& score) {
      double s = 0;
      for (std::size_t j : at) s += score(j);
      return at.empty() ? 0.0 : s / static_cast<double>(at.size());
    };
    roll_deciding += roll[d];
    flow_deciding += flow[d];
    roll_other += average(others, [&](std::size_t j) { return roll[j]; });
    flow_other += average(others, [&](std::size_t j) { return flow[j]; });
    if (!distractors.empty()) {
      ++with_distractors;
      raw_deciding += mean(a.shape(0) - 1, t - 1, d);
      raw_distractor +=
          average(distractors, [&](std::size_t j) { return static_cast<double>(mean(a.shape(0) - 1, t - 1, j)); });
      roll_distractor += average(distractors, [&](std::size_t j) { return roll[j]; });
    }
  }
  const auto n = static_cast<double>(reviews.size()), nd = static_cast<double>(with_distractors);
  INFO("raw " << raw_deciding / nd << " vs " << raw_distractor / nd << "; rollout " << roll_deciding / n << " vs "
              << roll_distractor / nd << " (other " << roll_other / n << "); flow " << flow_deciding / n << " (other "
              << flow_other / n << ")");
  REQUIRE(with_distractors >= 50);
  // Some head reads the deciding word from the marker (measured: L3H1, 0.92 on average).
  CHECK(*std::max_element(head_deciding.begin(), head_deciding.end()) / n > 0.5);
  // The last layer's heads look at the deciding word from the marker far more than at distractors.
  CHECK(raw_deciding / nd > 2.0 * raw_distractor / nd);
  // Rollout reaches the deciding word more than the distractors and the other review tokens.
  CHECK(roll_deciding / nd > 1.2 * roll_distractor / nd);
  CHECK(roll_deciding / n > 1.5 * roll_other / n);
  // Flow spreads more evenly (it is bounded by the narrowest edge on every path): its deciding word
  // is only above the other review tokens; against the distractors it does not separate.
  CHECK(flow_deciding / n > flow_other / n);

  // Heads: the model needs attention, and some single head carries the label.
  std::vector<glassbox::labelled_example> data;
  for (const auto& r : reviews) data.push_back({r.tokens, r.true_label});
  glassbox::head_ablation_options ao;
  ao.candidates = {gd::review_positive_id, gd::review_negative_id};
  const auto ablation = glassbox::head_ablation(model, std::span<const glassbox::labelled_example>(data), ao);
  CHECK(ablation.base_accuracy >= 0.95);
  const float worst = *std::min_element(ablation.target_change.begin(), ablation.target_change.end());
  CHECK(worst < -0.3f);  // masking the most needed head costs more than 0.3 nats of log p(label)
  glassbox::tensor2 none({model.n_layer(), model.n_head()});
  std::fill(none.begin(), none.end(), 0.0f);
  std::size_t correct = 0;
  for (const auto& e : data) {
    const glassbox::tensor2 z = model.logits_with_head_mask(e.tokens, none);
    const std::size_t last = z.shape(0) - 1;
    const bool positive = z(last, gd::review_positive_id) > z(last, gd::review_negative_id);
    correct += positive == (e.label == gd::review_positive_id) ? 1 : 0;
  }
  // With every head masked the marker sees only itself: about chance.
  CHECK(static_cast<double>(correct) / n < 0.75);
}

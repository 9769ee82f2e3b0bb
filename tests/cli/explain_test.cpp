// glassbox explain against the library: for each method, the --json document holds exactly the
// scores, target, f(x), completeness gap and evaluation count of the library's own result for the
// same model, input, target and options; generation JSON equals attribute_generation; --method all
// writes one document per method; the HTML page is self-contained; the ground-truth rank printed
// beside the scores agrees with the scores.
#include <catch2/catch.hpp>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>

#include "glassbox/attribution.hpp"
#include "glassbox/datasets/reviews.hpp"
#include "glassbox/models/gpt2.hpp"
#include "glassbox/report/json.hpp"

extern template class glassbox::models::basic_gpt2<float>;

namespace fs = std::filesystem;
namespace gd = glassbox::datasets;
namespace gb = glassbox;
using glassbox::report::json;

namespace {

const fs::path model_dir = GLASSBOX_EXPLAIN_MODEL;
const fs::path work = GLASSBOX_CLI_WORK;
const std::string review = "the food was not good . =>";

// Runs `glassbox explain --model <model> <args>` with stdout and stderr into `log`; returns the exit status.
int run_explain(const std::string& args, const fs::path& log) {
  const std::string command = std::string("\"") + GLASSBOX_CLI + "\" explain --model \"" + model_dir.string() + "\" " +
                              args + " > \"" + log.string() + "\" 2>&1";
  const int status = std::system(command.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string read_all(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// The JSON document `glassbox explain <args> --json <file>` writes.
json explain_json(const std::string& args, const std::string& name) {
  const fs::path file = work / ("explain_" + name + ".json");
  const fs::path log = work / ("explain_" + name + ".log");
  fs::remove(file);
  const int status = run_explain(args + " --json \"" + file.string() + "\"", log);
  INFO("glassbox explain " << args << "\n" << read_all(log));
  REQUIRE(status == 0);
  return json::parse(read_all(file));
}

// The model's top next token after the last input token.
gb::token_id top_token(const gb::models::gpt2& model, gb::token_span ids) {
  const gb::tensor2 z = model.logits(ids);
  std::size_t best = 0;
  for (std::size_t v = 1; v < z.shape(1); ++v)
    if (z(z.shape(0) - 1, v) > z(z.shape(0) - 1, best)) best = v;
  return static_cast<gb::token_id>(best);
}

// The document equals the library's result. JSON holds each double in the shortest form that reads
// back to the same double, so the comparison is exact: any difference is a difference in what was computed.
void check_same(const json& j, const gb::attribution_result& r) {
  const gb::attribution_result read = gb::report::attribution_from_json(j);
  CHECK(read.method == r.method);
  CHECK(read.token_ids == r.token_ids);
  CHECK(read.target == r.target);
  REQUIRE(read.scores.size() == r.scores.size());
  for (std::size_t i = 0; i < r.scores.size(); ++i) {
    INFO("token " << i);
    CHECK(read.scores[i] == r.scores[i]);
  }
  CHECK(read.standard_errors.size() == r.standard_errors.size());
  for (std::size_t i = 0; i < std::min(read.standard_errors.size(), r.standard_errors.size()); ++i)
    CHECK(read.standard_errors[i] == r.standard_errors[i]);
  CHECK(read.target_value == r.target_value);
  CHECK(read.convergence_delta.has_value() == r.convergence_delta.has_value());
  if (read.convergence_delta && r.convergence_delta) CHECK(*read.convergence_delta == *r.convergence_delta);
  CHECK(read.model_evaluations == r.model_evaluations);
  CHECK(j.at("tokens").at(4).get<std::string>() == "good");
}

// Whether two JSON documents are equal but for float rounding in their numbers (|a - b| <= 1e-4
// max(|a|, |b|) + 1e-9): what runs that split the work differently give in a build whose matrix
// products come from OpenBLAS, whose kernels round differently for different matrix sizes
// (docs/concepts.md, "Threads: one budget").
bool same_but_rounding(const json& a, const json& b) {
  if (a.is_number() && b.is_number()) {
    const double x = a.get<double>(), y = b.get<double>();
    return std::abs(x - y) <= 1e-4 * std::max(std::abs(x), std::abs(y)) + 1e-9;
  }
  if (a.type() != b.type() || a.size() != b.size()) return false;
  if (a.is_array()) {
    for (std::size_t i = 0; i < a.size(); ++i)
      if (!same_but_rounding(a[i], b[i])) return false;
    return true;
  }
  if (a.is_object()) {
    for (auto it = a.begin(); it != a.end(); ++it)
      if (!b.contains(it.key()) || !same_but_rounding(it.value(), b.at(it.key()))) return false;
    return true;
  }
  return a == b;
}

}  // namespace

TEST_CASE("explain --json equals the library's result for the same method and options", "[cli][explain]") {
  const auto model = gb::models::gpt2::load(model_dir);
  const gb::token_sequence ids = gd::encode_review(review);
  const gb::target t = gb::target::log_probability(top_token(model, ids));  // the default target
  const std::string input = "--text \"" + review + "\" ";

  SECTION("integrated gradients (default method, riemann-middle, pad baseline)") {
    gb::integrated_gradients_options o;
    o.steps = 16;
    o.rule = gb::integration_rule::riemann_middle;
    o.baseline = gb::baseline::pad();
    check_same(explain_json(input + "--steps 16 --rule riemann-middle --baseline pad", "ig"),
               gb::integrated_gradients(model, ids, t, o));
  }
  SECTION("expected gradients over two baselines") {
    gb::integrated_gradients_options o;
    o.steps = 8;
    o.baselines = {gb::baseline::zero(), gb::baseline::token(gd::review_unk_id)};
    check_same(explain_json(input + "--steps 8 --baseline zero,unk", "eg"), gb::integrated_gradients(model, ids, t, o));
  }
  SECTION("occlusion") {
    gb::occlusion_options o;
    o.window = 3;
    o.stride = 2;
    check_same(explain_json(input + "--method occlusion --window 3 --stride 2", "occlusion"),
               gb::occlusion(model, ids, t, o));
  }
  SECTION("feature ablation with groups: a group's tokens share one score") {
    gb::feature_ablation_options o;
    o.feature_map = {0, 0, 0, 1, 1, 2, -1};
    const json j = explain_json(input + "--method feature-ablation --groups 0,0,0,1,1,2,-1", "ablation");
    check_same(j, gb::feature_ablation(model, ids, t, o));
    const auto& s = j.at("scores");
    CHECK(s[0] == s[1]);
    CHECK(s[1] == s[2]);
    CHECK(s[3] == s[4]);
  }
  SECTION("lime (lasso)") {
    gb::lime_options o;
    o.n_samples = 30;
    o.seed = 2;
    o.surrogate = gb::lime_surrogate::lasso;
    o.alpha = 0.02;
    check_same(explain_json(input + "--method lime --samples 30 --seed 2 --surrogate lasso --alpha 0.02", "lime"),
               gb::lime(model, ids, t, o));
  }
  SECTION("kernel shap, sampled") {
    gb::kernel_shap_options o;
    o.n_samples = 40;
    o.seed = 7;
    check_same(explain_json(input + "--method kernel-shap --samples 40 --seed 7", "kernel_shap"),
               gb::kernel_shap(model, ids, t, o));
  }
  SECTION("shapley sampling, antithetic, with standard errors") {
    gb::shapley_sampling_options o;
    o.n_samples = 8;
    o.antithetic = true;
    o.seed = 5;
    const json j = explain_json(input + "--method shapley-sampling --samples 8 --antithetic --seed 5", "sampling");
    check_same(j, gb::shapley_sampling(model, ids, t, o));
    CHECK(j.at("standard_errors").size() == ids.size());
  }
  SECTION("exact shapley, unk baseline") {
    gb::shapley_exact_options o;
    o.baseline = gb::baseline::token(gd::review_unk_id);
    check_same(explain_json(input + "--method shapley-exact --baseline unk", "exact"),
               gb::shapley_exact(model, ids, t, o));
  }
  SECTION("saliency, signed") {
    gb::saliency_options o;
    o.absolute = false;
    check_same(explain_json(input + "--method saliency --absolute=false", "saliency"), gb::saliency(model, ids, t, o));
  }
  SECTION("gradient shap") {
    gb::gradient_shap_options o;
    o.samples = 6;
    o.stdev = 0.1;
    o.seed = 4;
    o.baselines = {gb::baseline::zero(), gb::baseline::pad()};
    check_same(
        explain_json(input + "--method gradient-shap --samples 6 --stdev 0.1 --seed 4 --baseline zero,pad", "gshap"),
        gb::gradient_shap(model, ids, t, o));
  }
  SECTION("vargrad over integrated gradients") {
    gb::noise_tunnel_options o;
    o.type = gb::noise_tunnel_type::vargrad;
    o.samples = 3;
    o.stdev = 0.05;
    gb::integrated_gradients_options inner;
    inner.steps = 4;
    check_same(explain_json(input + "--method noise-tunnel --inner integrated-gradients --nt-type vargrad --samples 3 "
                                    "--stdev 0.05 --steps 4",
                            "vargrad"),
               gb::noise_tunnel(model, ids, t, inner, o));
  }
  SECTION("layer integrated gradients") {
    gb::layer_integrated_gradients_options o;
    o.layer = 2;
    o.steps = 8;
    check_same(explain_json(input + "--method layer-integrated-gradients --layer 2 --steps 8", "lig"),
               gb::layer_integrated_gradients(model, ids, t, o));
  }
  SECTION("layer gradient x activation") {
    gb::layer_gradient_x_activation_options o;
    o.layer = model.config().n_layer;
    check_same(
        explain_json(input + "--method layer-gradient-x-activation --layer " + std::to_string(model.config().n_layer),
                     "lgxa"),
        gb::layer_gradient_x_activation(model, ids, t, o));
  }
  SECTION("contrastive logit target") {
    const gb::target c = gb::target::contrast(gd::review_negative_id, gd::review_positive_id, gb::target_kind::logit);
    check_same(
        explain_json(input + "--method input-x-gradient --target negative --contrast positive --target-kind logit",
                     "contrast"),
        gb::input_x_gradient(model, ids, c));
  }
}

TEST_CASE("explain: random methods give the same JSON for any batch size and thread count, to rounding", "[cli][explain]") {
  const std::string args = "--text \"" + review + "\" --method kernel-shap --samples 40 --seed 11 ";
  const json a = explain_json(args + "--batch-size 3 --threads 1", "kernel_shap_b3");
  const json b = explain_json(args + "--batch-size 64 --threads 2", "kernel_shap_b64");
  CHECK(same_but_rounding(a.at("scores"), b.at("scores")));
}

TEST_CASE("explain --continuation: the JSON equals attribute_generation", "[cli][explain]") {
  const auto model = gb::models::gpt2::load(model_dir);
  const gb::token_sequence prompt = gd::encode_review("the food was good . =>");
  const gb::token_sequence continuation = {gd::review_positive_id};
  const json j = explain_json("--text \"the food was good . =>\" --continuation positive --steps 8", "generation");
  gb::integrated_gradients_options o;
  o.steps = 8;
  const gb::sequence_attribution_result r = gb::attribute_generation(
      model, gb::token_span(prompt), gb::token_span(continuation),
      [&](gb::token_span s, const gb::target& t) { return gb::integrated_gradients(model, s, t, o); });
  CHECK(j.at("schema") == "glassbox.sequence_attribution");
  CHECK(j.at("prompt_length") == prompt.size());
  CHECK(j.at("model_evaluations") == r.model_evaluations);
  const auto& rows = j.at("scores");
  REQUIRE(rows.size() == r.scores.shape(0));
  for (std::size_t g = 0; g < rows.size(); ++g) {
    REQUIRE(rows[g].size() == r.scores.shape(1));
    // The matrix is stored as float in the result; JSON round-trips the float's double value exactly.
    for (std::size_t s = 0; s < rows[g].size(); ++s) CHECK(rows[g][s].get<double>() == r.scores(g, s));
    CHECK(j.at("target_values")[g].get<double>() == r.target_values[g]);
  }
}

TEST_CASE("explain --method all writes one document per method", "[cli][explain]") {
  const json j = explain_json("--text \"" + review + "\" --method all --layer 1", "all");
  REQUIRE(j.is_array());
  std::set<std::string> methods;
  for (const auto& d : j) {
    CHECK(d.at("schema") == "glassbox.attribution");
    CHECK(d.at("scores").size() == 7);
    methods.insert(d.at("method").get<std::string>());
  }
  CHECK(methods == std::set<std::string>{"occlusion", "feature_ablation", "lime", "kernel_shap", "shapley_sampling",
                                         "shapley_exact", "saliency", "input_x_gradient", "integrated_gradients",
                                         "gradient_shap", "noise_tunnel", "layer_integrated_gradients",
                                         "layer_gradient_x_activation"});
}

TEST_CASE("explain: the printed rank of the deciding word agrees with the scores", "[cli][explain]") {
  // explain_json keeps the printed text in explain_rank.log.
  const json j = explain_json("--text \"" + review + "\" --method shapley-exact", "rank");
  const std::string text = read_all(work / "explain_rank.log");
  std::smatch m;
  REQUIRE(std::regex_search(text, m, std::regex("deciding word 'good' \\(position 4\\) ranks ([0-9]+) of 6")));
  const auto& s = j.at("scores");
  // Independent rank: 1 + the review tokens (positions 0..5) with a larger |score| than 'good' (position 4).
  std::size_t rank = 1;
  for (std::size_t i = 0; i < 6; ++i)
    if (i != 4 && std::abs(s[i].get<double>()) > std::abs(s[4].get<double>())) ++rank;
  CHECK(std::stoul(m[1].str()) == rank);
}

TEST_CASE("explain --html writes a self-contained page", "[cli][explain]") {
  const fs::path file = work / "explain.html";
  fs::remove(file);
  REQUIRE(run_explain("--text \"" + review + "\" --method occlusion --html \"" + file.string() + "\"",
                      work / "explain_html.log") == 0);
  const std::string page = read_all(file);
  CHECK(page.rfind("<!DOCTYPE html>", 0) == 0);
  CHECK(page.find("</html>") != std::string::npos);
  for (const char* word : {">the<", ">food<", ">not<", ">good<", "&gt;"}) CHECK(page.find(word) != std::string::npos);
  CHECK(page.find("ground truth: label negative") != std::string::npos);
  for (const char* external : {"http://", "https://", "<script src", "<link", "url("})
    CHECK(page.find(external) == std::string::npos);
}

namespace {

// The lines of a file.
std::vector<std::string> lines_of(const fs::path& p) {
  std::vector<std::string> out;
  std::ifstream in(p);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

// Writes `n` held-out reviews as generate-data does ({"text", "token_ids", "label", ...} per line).
fs::path review_file(std::size_t n, const std::string& name) {
  const fs::path file = work / name;
  std::ofstream out(file);
  const gd::review_generator generator(gd::review_options{});
  for (std::size_t i = 0; i < n; ++i) {
    const auto e = generator.example(2, i);
    json j;
    j["text"] = e.text();
    j["token_ids"] = e.tokens;
    out << j.dump() << '\n';
  }
  return file;
}

}  // namespace

TEST_CASE("explain --data: each output line is the single-input --json of its input", "[cli][explain][data]") {
  const fs::path data = review_file(6, "batch_reviews.jsonl"), out = work / "batch_out.jsonl";
  REQUIRE(run_explain("--data \"" + data.string() + "\" --out \"" + out.string() + "\" --method occlusion --window 2",
                      work / "batch.log") == 0);
  const auto results = lines_of(out);
  const auto inputs = lines_of(data);
  REQUIRE(results.size() == inputs.size());
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    const std::string text = json::parse(inputs[i]).at("text").get<std::string>();
    json single = explain_json("--text \"" + text + "\" --method occlusion --window 2", "batch_single");
    json line = json::parse(results[i]);
    // A batch run gives each input its worker's share of the thread budget, which the options record.
    CHECK(line.at("options").at("threads") == 1);
    line["options"].erase("threads");
    single["options"].erase("threads");
    CHECK(same_but_rounding(line, single));
  }
  // The summary scores the method against the rationale of the reviews.
  CHECK(read_all(work / "batch.log").find("occlusion") != std::string::npos);
  CHECK(read_all(work / "batch.log").find("deciding word ranks 1") != std::string::npos);
}

TEST_CASE("explain --data --resume: an interrupted run, resumed, equals an uninterrupted one", "[cli][explain][data]") {
  const fs::path data = review_file(80, "resume_reviews.jsonl");
  const fs::path whole = work / "resume_whole.jsonl", cut = work / "resume_cut.jsonl";
  const std::string method = " --method kernel-shap --samples 500 --seed 3 --threads 1";
  REQUIRE(run_explain("--data \"" + data.string() + "\" --out \"" + whole.string() + "\"" + method,
                      work / "resume_whole.log") == 0);
  // The same run, killed (SIGKILL: nothing is flushed on the way out) once a few lines are written.
  fs::remove(cut);
  const pid_t child = fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    const std::string command = std::string("exec \"") + GLASSBOX_CLI + "\" explain --model \"" + model_dir.string() +
                                "\" --data \"" + data.string() + "\" --out \"" + cut.string() + "\"" + method +
                                " > /dev/null 2>&1";
    execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  std::size_t seen = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    seen = lines_of(cut).size();
    if (seen >= 3) break;
    usleep(2000);
  }
  kill(child, SIGKILL);
  int status = 0;
  waitpid(child, &status, 0);
  const std::size_t kept = lines_of(cut).size();
  INFO("lines when killed: " << kept);
  REQUIRE(kept >= 3);
  REQUIRE(kept < 80);  // killed part way
  REQUIRE(run_explain("--data \"" + data.string() + "\" --out \"" + cut.string() + "\" --resume" + method,
                      work / "resume_cut.log") == 0);
  CHECK(read_all(cut) == read_all(whole));
  CHECK(read_all(work / "resume_cut.log").find("were already in the output") != std::string::npos);
  // A cut-off last line (no newline) is dropped and redone.
  {
    const std::string text = read_all(whole);
    std::ofstream partial(cut, std::ios::binary | std::ios::trunc);
    partial << text.substr(0, text.size() / 2);
  }
  REQUIRE(run_explain("--data \"" + data.string() + "\" --out \"" + cut.string() + "\" --resume" + method,
                      work / "resume_partial.log") == 0);
  CHECK(read_all(cut) == read_all(whole));
}

TEST_CASE("explain --data: a malformed line is an error naming it, and the lines before it are kept",
          "[cli][explain][data]") {
  const fs::path data = work / "malformed.jsonl", out = work / "malformed_out.jsonl";
  {
    std::ofstream f(data);
    f << "{\"text\": \"the food was good . =>\"}\n"
      << "{\"token_ids\": [173, 113, 180, 29, 5, 2]}\n"
      << "\n"
      << "{\"text\": \"the food was scrumptious . =>\"}\n"
      << "{\"text\": \"the food was bad . =>\"}\n";
  }
  const fs::path log = work / "malformed.log";
  CHECK(run_explain("--data \"" + data.string() + "\" --out \"" + out.string() + "\" --method saliency --threads 2",
                    log) == 1);
  CHECK(read_all(log).find("glassbox: error: " + data.string() + " line 4: unknown word 'scrumptious'") !=
        std::string::npos);
  CHECK(lines_of(out).size() == 2);
  std::ofstream(data, std::ios::trunc) << "{\"text\": \"good =>\"}\n[1, 2]\n";
  CHECK(run_explain("--data \"" + data.string() + "\" --out \"" + out.string() + "\" --method saliency", log) == 1);
  CHECK(read_all(log).find("line 2: must be a JSON object") != std::string::npos);
  CHECK(lines_of(out).size() == 1);
}

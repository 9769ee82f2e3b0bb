// glassbox evaluate: the ground-truth benchmark. Every attribution method of the registry (with every
// listed baseline where it takes one) and the attention methods' token scores explain the label of N
// generated reviews whose rationale is known (or the lines of a JSON-lines file with rationales);
// each (method, baseline) gets the mean and a 95% bootstrap interval of every metric of
// glassbox/evaluation (faithfulness: ERASER comprehensiveness / sufficiency and their AOPC,
// deletion and insertion areas, infidelity, max-sensitivity; plausibility: precision, recall, F1,
// IOU-F1, AUPRC and the deciding word's rank), its cost in model evaluations and its time, overall
// and per subset (plain, negated, contrast, long). Terminal: a table ranked by AUPRC; --json: one
// object per method and baseline (docs/json-schema.md, glassbox.evaluation); --html: deletion and
// insertion curves and one bar chart per metric (docs/cli.md, "glassbox evaluate").
//
//   glassbox evaluate                                         the default benchmark (500 reviews)
//   glassbox evaluate --n 50 --methods occlusion,saliency,attention-rollout --baselines pad,zero
//   glassbox evaluate --data reviews.jsonl --json eval.json --html eval.html
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <fstream>
#include <limits>
#include <map>
#include <memory>
#include <numeric>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "attention_methods.hpp"
#include "batch_files.hpp"
#include "cli.hpp"
#include "evaluate_command.hpp"
#include "explain_methods.hpp"
#include "glassbox/attribution.hpp"
#include "glassbox/core/batch.hpp"
#include "glassbox/datasets/reviews.hpp"
#include "glassbox/evaluation.hpp"
#include "glassbox/report/html.hpp"
#include "review_truth.hpp"

namespace glassbox::cli {
namespace {

constexpr double nan_value = std::numeric_limits<double>::quiet_NaN();

// ---------------------------------------------------------------------------------------------
// Parsed command line.

struct evaluate_state {
  std::string model, data, json, html, methods = "all", baselines = "pad,unk,zero,removal", removal = "removal";
  std::string rank_by = "auprc";
  std::size_t n = 500, threads = 0, batch_size = 32, resamples = 1000;
  std::uint64_t seed = 0;
  // The sample budgets (printed at the start).
  std::size_t kernel_shap_samples = 256, shapley_samples = 10, curve_steps = 10, steps = 32, exact_max_tokens = 12,
              infidelity_samples = 10, sensitivity_samples = 5, sensitivity_every = 5, long_above = 31;
  command_options options;

  bool given(std::string_view name) const { return options.given(name); }
};

// ---------------------------------------------------------------------------------------------
// The inputs: reviews with a known rationale.

struct evaluated_input {
  token_sequence tokens;               // the review and the marker (or a data line's input)
  std::size_t length = 0;              // the tokens that compete: the review, without the marker
  std::vector<std::size_t> rationale;  // positions
  std::vector<std::size_t> deciding;   // the deciding word(s)
  std::vector<std::size_t> negators;   // the negators in the rationale
  token_id label = 0, foil = 0;        // the explained contrast: label minus foil
  bool negated = false, contrast = false;
};

// The subsets results are broken down by ("all" first).
const std::vector<std::string>& subset_names() {
  static const std::vector<std::string> names = {"all", "plain", "negated", "contrast", "long"};
  return names;
}

bool in_subset(const evaluated_input& x, std::size_t subset, std::size_t long_above) {
  switch (subset) {
    case 0:
      return true;
    case 1:
      return !x.negated && !x.contrast;
    case 2:
      return x.negated;
    case 3:
      return x.contrast;
    default:
      return x.length > long_above;
  }
}

evaluated_input from_truth(token_sequence tokens, const datasets::review_analysis& a) {
  evaluated_input x;
  x.tokens = std::move(tokens);
  x.length = a.review_length;
  x.rationale = a.rationale;
  x.deciding = a.deciding_words;
  for (std::size_t p : a.rationale)
    if (a.properties[p].is_negator) x.negators.push_back(p);
  x.label = *a.label();
  x.foil = a.polarity > 0 ? datasets::review_negative_id : datasets::review_positive_id;
  x.negated = a.negated;
  x.contrast = a.contrast;
  return x;
}

// The first `n` reviews of `seed` that the rule labels (every generated review has a label; the check keeps it so).
std::vector<evaluated_input> generated_inputs(std::size_t n, std::uint64_t seed) {
  const datasets::review_generator generator{datasets::review_options{}};
  std::vector<evaluated_input> out;
  for (std::size_t i = 0; out.size() < n; ++i) {
    const datasets::review_example e = generator.example(seed, i);
    if (e.truth.has_label() && !e.truth.rationale.empty()) out.push_back(from_truth(e.tokens, e.truth));
  }
  return out;
}

std::vector<std::size_t> positions_of(const report::json& j, std::string_view what, const data_line& line,
                                      const std::string& file, std::size_t length) {
  std::vector<std::size_t> out;
  const auto fail = [&] {
    detail::fail("{}:{}: \"{}\" must be an array of token positions < {}", file, line.number, what, length);
  };
  if (j.is_number_integer()) {
    if (j.get<std::int64_t>() < 0 || j.get<std::size_t>() >= length) fail();
    return {j.get<std::size_t>()};
  }
  if (!j.is_array()) fail();
  for (const auto& v : j) {
    if (!v.is_number_integer() || v.get<std::int64_t>() < 0 || v.get<std::size_t>() >= length) fail();
    out.push_back(v.get<std::size_t>());
  }
  return out;
}

// The lines of a data file: the review language's truth when the model speaks it and the rule labels
// the line; otherwise the line's "rationale" (positions) and optional "deciding", "negated",
// "contrast", with its "target" (or "label") contrasted with its "foil".
std::vector<evaluated_input> file_inputs(const std::string& file, const loaded_model& m) {
  const std::vector<data_line> lines = read_data_lines(file, m);
  std::vector<std::string> raw;
  {
    std::ifstream in(file);
    for (std::string text; std::getline(in, text);) raw.push_back(text);
  }
  const bool reviews = has_review_vocabulary(m);
  std::vector<evaluated_input> out;
  for (const data_line& line : lines) {
    line.check();
    const report::json j = report::json::parse(raw.at(line.number - 1), nullptr, false);
    const std::size_t length = line.tokens.size() - 1;  // the last token is where the label is predicted
    const auto truth = reviews ? review_truth(m, line.tokens, line.tokens.size() - 1) : std::nullopt;
    if (truth && truth->has_label() && !truth->rationale.empty()) {  // the rule of the review language decides
      out.push_back(from_truth(line.tokens, *truth));
      continue;
    }
    if (!j.is_object() || !j.contains("rationale"))
      detail::fail(
          "{}:{}: the line has no \"rationale\" (token positions), and the rule of the review language "
          "gives none",
          file, line.number);
    evaluated_input x;
    x.tokens = line.tokens;
    x.length = length;
    x.rationale = positions_of(j["rationale"], "rationale", line, file, length);
    if (x.rationale.empty()) detail::fail("{}:{}: \"rationale\" is empty", file, line.number);
    std::sort(x.rationale.begin(), x.rationale.end());
    if (j.contains("deciding")) x.deciding = positions_of(j["deciding"], "deciding", line, file, length);
    x.negated = j.value("negated", false);
    x.contrast = j.value("contrast", false);
    const std::optional<std::string> target = line.target ? line.target : line.label;
    if (!target)
      detail::fail("{}:{}: the line needs a \"target\" or \"label\" (the explained token)", file, line.number);
    x.label = resolve_token(m, *target, "target");
    if (!j.contains("foil") || !j["foil"].is_string())
      detail::fail("{}:{}: the line needs a \"foil\" (the token the target is contrasted with)", file, line.number);
    x.foil = resolve_token(m, j["foil"].get<std::string>(), "foil");
    out.push_back(std::move(x));
  }
  if (out.empty()) detail::fail("--data {} has no input lines", file);
  return out;
}

// ---------------------------------------------------------------------------------------------
// What runs: (method, baseline) configurations.

struct configuration {
  std::string method;    // the registry name
  std::string baseline;  // as given ("pad", "zero", ...), or "none"
  std::string family;    // the registry's family; "attention" methods give token scores of the marker's row
  const attribution_method* attribution = nullptr;
  const attention_method* attention = nullptr;
  bool perturbation = false;   // takes a feature map (groups): the marker is never made absent
  bool sensitivity = false;    // a gradient method on embeddings: max-sensitivity applies
  std::size_t max_tokens = 0;  // runs only on inputs of at most this many competing tokens (0 = all)
  option_values options;       // its budget and baseline
  std::string budget;          // the budget in words, for the start of the run
};

std::vector<std::string> baseline_list(const evaluate_state& s, const loaded_model& m) {
  std::vector<std::string> out;
  for (const std::string_view b : split_list(s.baselines)) {
    parse_baseline(m, b, "baselines");  // fails on an unknown baseline before any work
    if (std::find(out.begin(), out.end(), std::string(b)) == out.end()) out.emplace_back(b);
  }
  return out;
}

bool reads(const method_info& info, std::string_view option) {
  return std::any_of(info.options.begin(), info.options.end(), [&](const option_spec& o) { return o.name == option; });
}

std::vector<configuration> configurations(const evaluate_state& s, const loaded_model& m) {
  std::vector<const attribution_method*> attributions;
  std::vector<const attention_method*> attentions;
  if (dashed(s.methods) == "all") {
    for (const auto& a : attribution_methods()) attributions.push_back(&a);
    for (const auto& a : attention_methods()) attentions.push_back(&a);
  } else {
    for (const std::string_view name : split_list(s.methods)) {
      const std::string wanted = dashed(name);
      bool found = false;
      for (const auto& a : attribution_methods())
        if (a.info.cli_name() == wanted) attributions.push_back(&a), found = true;
      for (const auto& a : attention_methods())
        if (a.info.cli_name() == wanted) attentions.push_back(&a), found = true;
      if (!found) {
        std::string names;
        for (const auto& a : attribution_methods()) names += a.info.cli_name() + ", ";
        for (const auto& a : attention_methods()) names += a.info.cli_name() + ", ";
        detail::fail("--methods: unknown method '{}' (expected a list of: {}or all)", name, names);
      }
    }
  }
  const std::vector<std::string> baselines = baseline_list(s, m);
  if (baselines.empty()) detail::fail("--baselines must name at least one baseline");
  std::vector<configuration> out;
  for (const attribution_method* a : attributions) {
    configuration c;
    c.method = a->info.name;
    c.family = a->info.family;
    c.attribution = a;
    c.perturbation = reads(a->info, "groups");
    c.sensitivity = c.method == "saliency" || c.method == "input_x_gradient" || c.method == "integrated_gradients";
    std::vector<std::string> budget;
    auto set = [&](const std::string& option, std::string value) {
      c.options.set(option, value);
      budget.push_back(fmt::format("{} {}", option, value));
    };
    if (c.method == "kernel_shap") set("samples", fmt::format("{}", s.kernel_shap_samples));
    if (c.method == "shapley_sampling") set("samples", fmt::format("{}", s.shapley_samples));
    if (c.method == "integrated_gradients" || c.method == "layer_integrated_gradients")
      set("steps", fmt::format("{}", s.steps));
    if (c.method == "shapley_exact") {
      c.max_tokens = s.exact_max_tokens;
      budget.push_back(fmt::format("inputs of at most {} tokens only (2^n coalitions)", s.exact_max_tokens));
    }
    for (const auto& o : a->info.options)
      if (o.name == "samples" && !c.options.given("samples"))
        budget.push_back(fmt::format("samples {}", o.default_text));
    c.budget = budget.empty() ? "library defaults" : fmt::format("{}", fmt::join(budget, ", "));
    if (!reads(a->info, "baseline")) {
      c.baseline = "none";
      out.push_back(c);
      continue;
    }
    for (const auto& b : baselines) {
      if (b == "removal" && a->info.family != "perturbation") continue;  // gradients need an embedding
      configuration cb = c;
      cb.baseline = b;
      cb.options.set("baseline", b);
      out.push_back(std::move(cb));
    }
  }
  for (const attention_method* a : attentions) {
    configuration c;
    c.method = a->info.name;
    c.family = "attention/" + a->info.family;
    c.attention = a;
    c.baseline = "none";
    if (c.method == "attention_flow") c.options.set("all-rows", "false");  // the marker's row only
    c.budget = c.method == "attention_flow" ? "the marker's row only" : "no sampling";
    out.push_back(std::move(c));
  }
  if (out.empty()) detail::fail("--methods and --baselines leave nothing to run");
  return out;
}

// ---------------------------------------------------------------------------------------------
// One input explained by one configuration, and its metrics.

// The metrics, in the order of the table and the JSON (name, what a better value is).
struct metric_spec {
  std::string_view name;
  bool higher_is_better;
  std::string_view help;
};
const std::vector<metric_spec>& metric_specs() {
  static const std::vector<metric_spec> specs = {
      {"auprc", true, "average precision of the scores against rationale membership"},
      {"precision", true, "rationale tokens among the top-|rationale| tokens / |rationale|"},
      {"recall", true, "rationale tokens recovered in the top-|rationale| tokens"},
      {"f1", true, "token F1 of the top-|rationale| tokens"},
      {"iou_f1", true, "ERASER IOU-F1 (threshold 0.5) of the top-|rationale| spans, per input"},
      {"deciding_rank", false, "rank of the deciding word (1 = highest |score|)"},
      {"negator_first", false, "negated inputs: share whose top token is the negator, not the deciding word"},
      {"comprehensiveness", true, "f(x) - f(x without the top-|rationale| tokens)"},
      {"sufficiency", false, "f(x) - f(only the top-|rationale| tokens)"},
      {"aopc_comprehensiveness", true, "comprehensiveness averaged over the top 1, 5, 10, 20, 50%"},
      {"aopc_sufficiency", false, "sufficiency averaged over the top 1, 5, 10, 20, 50%"},
      {"deletion_area", false, "area under the deletion curve (target as the top tokens are removed)"},
      {"insertion_area", true, "area under the insertion curve (target as the top tokens are restored)"},
      {"infidelity", false, "Yeh et al.'s infidelity under Captum's default perturbations"},
      {"max_sensitivity", false, "largest change of the scores under small input perturbations"},
  };
  return specs;
}
std::size_t metric_index(std::string_view name) {
  const auto& specs = metric_specs();
  for (std::size_t i = 0; i < specs.size(); ++i)
    if (specs[i].name == name) return i;
  return specs.size();
}

constexpr std::size_t curve_points = 21;  // deletion / insertion curves resampled at fractions 0, 0.05, ..., 1

struct run_record {
  bool ran = false;
  std::vector<double> values;               // one per metric; NaN where it does not apply
  std::size_t evaluations = 0;              // the method's model evaluations
  double seconds = 0;                       // the method's time
  std::vector<double> scores;               // the competing tokens' scores (agreement between methods)
  std::vector<double> deletion, insertion;  // curves at curve_points fractions, as a fraction of the full value
  plausibility_result plausible;            // for the pooled IOU-F1
};

// A curve's values at fractions 0, 1/(P-1), ..., 1 by linear interpolation.
std::vector<double> resampled(const std::vector<double>& fractions, const std::vector<double>& values) {
  std::vector<double> out(curve_points, nan_value);
  if (fractions.empty() || fractions.size() != values.size()) return out;
  for (std::size_t i = 0; i < curve_points; ++i) {
    const double f = static_cast<double>(i) / static_cast<double>(curve_points - 1);
    std::size_t j = 0;
    while (j + 1 < fractions.size() && fractions[j + 1] < f) ++j;
    if (j + 1 >= fractions.size() || f <= fractions[j]) {
      out[i] = values[std::min(j, values.size() - 1)];
      continue;
    }
    const double w = (f - fractions[j]) / (fractions[j + 1] - fractions[j]);
    out[i] = values[j] + w * (values[j + 1] - values[j]);
  }
  return out;
}

struct run_context {
  const evaluate_state& state;
  const loaded_model& model;
  baseline removal;
};

// Explains input `i` with configuration `c` and scores it.
run_record evaluate_one(const run_context& ctx, const configuration& c, const evaluated_input& x, std::size_t i,
                        const execution_options& exec) {
  run_record r;
  r.values.assign(metric_specs().size(), nan_value);
  if (c.max_tokens != 0 && x.length > c.max_tokens) return r;
  const auto& model = ctx.model.model;
  const target explained = target::contrast(x.label, x.foil, target_kind::logit, -1);
  const std::uint64_t seed = ctx.state.seed * 1000003ULL + i;  // each input its own draws, fixed by --seed
  std::vector<int> feature_map(x.tokens.size(), -1);           // the marker is never made absent
  for (std::size_t p = 0; p < x.length; ++p) feature_map[p] = static_cast<int>(p);

  const auto start = std::chrono::steady_clock::now();
  std::vector<double> scores;
  if (c.attribution) {
    option_values o = c.options;
    if (reads(c.attribution->info, "seed")) o.set("seed", fmt::format("{}", seed));
    if (c.perturbation) o.set("groups", fmt::format("{}", fmt::join(feature_map, ",")));
    const attribution_result a = c.attribution->run(attribution_call{ctx.model, x.tokens, explained, exec}, o);
    scores = a.scores;
    r.evaluations = a.model_evaluations;
  } else {
    const attention_outcome a =
        c.attention->run(attention_call{ctx.model, x.tokens, x.tokens.size() - 1, x.label, exec}, c.options);
    scores = outcome_scores(a, x.tokens.size() - 1);
    r.evaluations = a.raw.model_evaluations + (a.relevance ? a.relevance->model_evaluations : 0);
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  r.ran = true;
  r.scores.assign(scores.begin(), scores.begin() + static_cast<std::ptrdiff_t>(x.length));

  auto set = [&](std::string_view name, double v) { r.values[metric_index(name)] = v; };
  // Plausibility: the competing tokens ranked by |score|.
  r.plausible = plausibility(scores, x.rationale, {.absolute = true, .deciding = x.deciding, .length = x.length});
  set("auprc", r.plausible.auprc);
  set("precision", r.plausible.precision);
  set("recall", r.plausible.recall);
  set("f1", r.plausible.f1);
  set("iou_f1", iou_f1(std::span<const plausibility_result>(&r.plausible, 1)).macro_f1);
  set("deciding_rank", r.plausible.deciding_rank);
  if (!x.negators.empty() && !x.deciding.empty()) {
    // top token among the competing ones, by |score|, earlier first on ties (as plausibility ranks)
    std::size_t top = 0;
    for (std::size_t p = 1; p < x.length; ++p)
      if (std::abs(scores[p]) > std::abs(scores[top])) top = p;
    set("negator_first", std::find(x.negators.begin(), x.negators.end(), top) != x.negators.end() ? 1.0 : 0.0);
  }

  // Faithfulness: the method's top-|rationale| tokens as its hard rationale.
  faithfulness_options f;
  f.removal = ctx.removal;
  f.absolute = true;
  f.feature_map = feature_map;
  f.execution = exec;
  f.steps = ctx.state.curve_steps;
  std::vector<std::size_t> hard;
  for (const auto& span : r.plausible.predicted_spans)
    for (std::size_t p = span.begin; p < span.end; ++p) hard.push_back(p);
  const auto hard_result = rationale_faithfulness(model, x.tokens, explained, hard, f);
  set("comprehensiveness", hard_result.comprehensiveness);
  set("sufficiency", hard_result.sufficiency);
  const auto aopc = eraser_aopc(model, x.tokens, explained, scores, f);
  set("aopc_comprehensiveness", aopc.comprehensiveness);
  set("aopc_sufficiency", aopc.sufficiency);
  const auto deletion = deletion_curve(model, x.tokens, explained, scores, f);
  const auto insertion = insertion_curve(model, x.tokens, explained, scores, f);
  set("deletion_area", deletion.area);
  set("insertion_area", insertion.area);
  // Curves as a fraction of the full value, so that inputs of different margins average.
  const double full = deletion.values.empty() ? 1.0 : deletion.values.front();
  auto relative = [&](std::vector<double> v) {
    for (double& y : v) y = full != 0 ? y / full : nan_value;
    return v;
  };
  r.deletion = relative(resampled(deletion.fractions, deletion.values));
  r.insertion = relative(resampled(insertion.fractions, insertion.values));
  infidelity_options io;
  io.samples = ctx.state.infidelity_samples;
  io.baseline = ctx.removal;
  io.feature_map = feature_map;
  io.seed = seed;
  io.execution = exec;
  set("infidelity", infidelity(model, x.tokens, explained, std::span<const double>(scores), io).value);

  // Max-sensitivity of the gradient methods on embeddings, on every sensitivity_every-th input.
  if (c.sensitivity && ctx.state.sensitivity_samples > 0 && i % ctx.state.sensitivity_every == 0) {
    const max_sensitivity_options so{.samples = ctx.state.sensitivity_samples, .seed = seed};
    auto explain_with = [&](const auto& options) {
      return [&, options](const tensor2& e) {
        const embedding_attributions a =
            attribute_embeddings(model, x.tokens, std::span<const tensor2>(&e, 1), explained, options, exec);
        return aggregate_tokens(a.scores[0], options);
      };
    };
    double value = nan_value;
    if (c.method == "saliency") {
      value = max_sensitivity(model, x.tokens, explain_with(saliency_options{}), so).value;
    } else if (c.method == "input_x_gradient") {
      value = max_sensitivity(model, x.tokens, explain_with(input_x_gradient_options{}), so).value;
    } else {
      integrated_gradients_options ig;
      ig.steps = ctx.state.steps;
      ig.baseline = parse_baseline(ctx.model, c.baseline);
      value = max_sensitivity(model, x.tokens, explain_with(ig), so).value;
    }
    set("max_sensitivity", value);
  }
  return r;
}

// ---------------------------------------------------------------------------------------------
// Aggregation: per configuration, the mean and bootstrap interval of each metric, overall and per subset.

struct interval {
  double mean = nan_value, low = nan_value, high = nan_value;
  std::size_t n = 0;
};

interval summarise(const std::vector<double>& values, const evaluate_state& s) {
  std::vector<double> kept;
  for (double v : values)
    if (std::isfinite(v)) kept.push_back(v);
  interval out;
  out.n = kept.size();
  if (kept.empty()) return out;
  const bootstrap_result b = bootstrap_interval(kept, {.resamples = s.resamples, .seed = s.seed});
  out.mean = b.mean;
  out.low = b.low;
  out.high = b.high;
  return out;
}

struct subset_summary {
  std::size_t inputs = 0;         // inputs of the subset the configuration ran on
  std::vector<interval> metrics;  // one per metric
};

struct configuration_summary {
  const configuration* config = nullptr;
  std::vector<subset_summary> subsets;  // one per subset_names()
  std::size_t inputs = 0, skipped = 0;
  double evaluations = 0;                   // mean model evaluations per input
  double seconds = 0;                       // summed time of the method's calls
  double iou_f1_pooled = nan_value;         // ERASER's macro IOU-F1 pooled over the inputs
  std::vector<double> deletion, insertion;  // mean curves
};

configuration_summary summarise_configuration(const configuration& c, std::size_t k,
                                              const std::vector<std::vector<run_record>>& records,
                                              const std::vector<evaluated_input>& inputs, const evaluate_state& s) {
  configuration_summary out;
  out.config = &c;
  std::vector<plausibility_result> pooled;
  std::vector<double> deletion(curve_points, 0), insertion(curve_points, 0);
  std::vector<std::size_t> curve_n(curve_points, 0), insertion_n(curve_points, 0);
  double evaluations = 0;
  for (std::size_t i = 0; i < records.size(); ++i) {
    const run_record& r = records[i][k];
    if (!r.ran) {
      ++out.skipped;
      continue;
    }
    ++out.inputs;
    evaluations += static_cast<double>(r.evaluations);
    out.seconds += r.seconds;
    pooled.push_back(r.plausible);
    for (std::size_t p = 0; p < curve_points; ++p) {
      if (std::isfinite(r.deletion[p])) deletion[p] += r.deletion[p], ++curve_n[p];
      if (std::isfinite(r.insertion[p])) insertion[p] += r.insertion[p], ++insertion_n[p];
    }
  }
  if (out.inputs > 0) {
    out.evaluations = evaluations / static_cast<double>(out.inputs);
    out.iou_f1_pooled = iou_f1(pooled).macro_f1;
  }
  for (std::size_t p = 0; p < curve_points; ++p) {
    out.deletion.push_back(curve_n[p] ? deletion[p] / static_cast<double>(curve_n[p]) : nan_value);
    out.insertion.push_back(insertion_n[p] ? insertion[p] / static_cast<double>(insertion_n[p]) : nan_value);
  }
  for (std::size_t subset = 0; subset < subset_names().size(); ++subset) {
    subset_summary sub;
    for (std::size_t m = 0; m < metric_specs().size(); ++m) {
      std::vector<double> values;
      for (std::size_t i = 0; i < records.size(); ++i)
        if (records[i][k].ran && in_subset(inputs[i], subset, s.long_above)) values.push_back(records[i][k].values[m]);
      if (m == 0) sub.inputs = values.size();
      sub.metrics.push_back(summarise(values, s));
    }
    out.subsets.push_back(std::move(sub));
  }
  return out;
}

// Agreement between two configurations: Spearman, Kendall and top-k overlap of |score| over the inputs both ran on.
struct agreement {
  std::size_t a = 0, b = 0;
  interval spearman, kendall, overlap;
};

std::vector<double> absolute(const std::vector<double>& v) {
  std::vector<double> out(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) out[i] = std::abs(v[i]);
  return out;
}

agreement agreement_of(std::size_t a, std::size_t b, const std::vector<std::vector<run_record>>& records,
                       const std::vector<evaluated_input>& inputs, const evaluate_state& s) {
  std::vector<double> rho, tau, overlap;
  for (std::size_t i = 0; i < records.size(); ++i) {
    const run_record &x = records[i][a], &y = records[i][b];
    if (!x.ran || !y.ran || x.scores.size() < 2) continue;
    const auto ax = absolute(x.scores), ay = absolute(y.scores);
    rho.push_back(spearman(ax, ay));
    tau.push_back(kendall_tau(ax, ay));
    overlap.push_back(top_k_overlap(ax, ay, inputs[i].rationale.size()));
  }
  return {a, b, summarise(rho, s), summarise(tau, s), summarise(overlap, s)};
}

// ---------------------------------------------------------------------------------------------
// Output.

std::string shown(const configuration& c) {
  return c.baseline == "none" ? dashed(c.method) : fmt::format("{} ({})", dashed(c.method), c.baseline);
}

std::string number(double v, int digits = 3) {
  if (!std::isfinite(v)) return "-";
  return fmt::format("{:.{}f}", v, digits);
}

report::json interval_json(const interval& v) {
  report::json j;
  j["mean"] = v.mean;
  j["low"] = v.low;
  j["high"] = v.high;
  j["n"] = v.n;
  return j;
}

report::json metrics_json(const std::vector<interval>& metrics) {
  report::json j = report::json::object();
  for (std::size_t m = 0; m < metrics.size(); ++m) j[std::string(metric_specs()[m].name)] = interval_json(metrics[m]);
  return j;
}

// The order of the ranked table: by the mean of `rank_by` (best first), configurations without a value last.
std::vector<std::size_t> ranking(const std::vector<configuration_summary>& summaries, std::size_t metric) {
  std::vector<std::size_t> order(summaries.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  const bool higher = metric_specs()[metric].higher_is_better;
  auto key = [&](std::size_t k) {
    const double v = summaries[k].subsets[0].metrics[metric].mean;
    return std::isfinite(v) ? (higher ? -v : v) : std::numeric_limits<double>::infinity();
  };
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return key(a) < key(b); });
  return order;
}

struct benchmark {
  std::string source;  // "generated" or the data file
  std::string target;  // in words
  std::vector<evaluated_input> inputs;
  std::vector<configuration> configs;
  std::vector<configuration_summary> summaries;
  std::vector<std::size_t> reference;  // per method, its first configuration (the agreement matrix)
  std::vector<agreement> agreements;
  double wall_seconds = 0;
};

void print_table(const benchmark& b, const evaluate_state& s, std::size_t rank_metric) {
  const auto order = ranking(b.summaries, rank_metric);
  std::size_t label = 12;
  for (const auto& c : b.configs) label = std::max(label, shown(c).size());
  const std::vector<std::pair<std::string, std::string>> columns = {
      {"f1", "f1"},
      {"iou_f1", "iou-f1"},
      {"deciding_rank", "rank"},
      {"negator_first", "neg-1st"},
      {"comprehensiveness", "comp"},
      {"sufficiency", "suff"},
      {"aopc_comprehensiveness", "aopc-c"},
      {"aopc_sufficiency", "aopc-s"},
      {"deletion_area", "del"},
      {"insertion_area", "ins"},
      {"infidelity", "infid"},
      {"max_sensitivity", "max-sens"},
  };
  fmt::print("\nranked by {} ({}; mean [95% bootstrap interval]); other columns: means\n",
             metric_specs()[rank_metric].name,
             metric_specs()[rank_metric].higher_is_better ? "higher is better" : "lower is better");
  std::string head = fmt::format("{:>3}  {:<{}} {:>5}  {:>22}", "#", "method (baseline)", label, "n",
                                 std::string(metric_specs()[rank_metric].name));
  for (const auto& c : columns)
    if (c.first != metric_specs()[rank_metric].name) head += fmt::format(" {:>8}", c.second);
  head += fmt::format(" {:>9} {:>8}", "evals", "seconds");
  fmt::print("{}\n", head);
  std::size_t rank = 0;
  for (std::size_t k : order) {
    const auto& sum = b.summaries[k];
    const auto& all = sum.subsets[0].metrics;
    const interval& r = all[rank_metric];
    std::string line = fmt::format(
        "{:>3}  {:<{}} {:>5}  {:>22}", ++rank, shown(*sum.config), label, sum.inputs,
        std::isfinite(r.mean) ? fmt::format("{:.3f} [{:.3f}, {:.3f}]", r.mean, r.low, r.high) : std::string("-"));
    for (const auto& c : columns) {
      if (c.first == metric_specs()[rank_metric].name) continue;
      const double v = all[metric_index(c.first)].mean;
      line += fmt::format(" {:>8}", std::abs(v) >= 1000 ? fmt::format("{:.3g}", v) : number(v));
    }
    line += fmt::format(" {:>9.1f} {:>8.2f}", sum.evaluations, sum.seconds);
    fmt::print("{}\n", line);
  }
  fmt::print(
      "n: inputs the method ran on; rank: the deciding word's rank by |score| (1 = first); neg-1st: share of negated "
      "inputs whose top token is the negator; comp / suff: ERASER comprehensiveness / sufficiency of the "
      "top-|rationale| "
      "tokens; aopc-c / aopc-s: their AOPC over the top 1, 5, 10, 20, 50%; del / ins: deletion / insertion areas; "
      "infid: "
      "infidelity ({} perturbations); max-sens: max-sensitivity of gradient methods ({} perturbations, every {}th "
      "input); "
      "evals: the method's model evaluations per input; seconds: the method's time summed over inputs\n",
      s.infidelity_samples, s.sensitivity_samples, s.sensitivity_every);

  fmt::print("\n{} by subset (mean; inputs in brackets):\n", metric_specs()[rank_metric].name);
  std::string sub_head = fmt::format("     {:<{}}", "method (baseline)", label);
  for (const auto& name : subset_names()) sub_head += fmt::format(" {:>15}", name);
  fmt::print("{}\n", sub_head);
  for (std::size_t k : order) {
    const auto& sum = b.summaries[k];
    std::string line = fmt::format("     {:<{}}", shown(*sum.config), label);
    for (const auto& sub : sum.subsets)
      line += fmt::format(" {:>15}", fmt::format("{} ({})", number(sub.metrics[rank_metric].mean), sub.inputs));
    fmt::print("{}\n", line);
  }

  if (b.reference.size() > 1) {
    fmt::print(
        "\nagreement between methods (Spearman rank correlation of |score| over the review tokens, mean over "
        "inputs; each method at its first baseline):\n");
    std::size_t w = 8;
    std::string top = fmt::format("     {:<{}}", "", label);
    for (std::size_t j = 0; j < b.reference.size(); ++j) top += fmt::format(" {:>{}}", fmt::format("[{}]", j + 1), w);
    fmt::print("{}\n", top);
    for (std::size_t i = 0; i < b.reference.size(); ++i) {
      std::string line =
          fmt::format("{:>4} {:<{}}", fmt::format("[{}]", i + 1), shown(b.configs[b.reference[i]]), label);
      for (std::size_t j = 0; j < b.reference.size(); ++j) {
        double v = i == j ? 1.0 : nan_value;
        for (const auto& a : b.agreements)
          if ((a.a == b.reference[i] && a.b == b.reference[j]) || (a.b == b.reference[i] && a.a == b.reference[j]))
            v = a.spearman.mean;
        line += fmt::format(" {:>{}}", number(v, 2), w);
      }
      fmt::print("{}\n", line);
    }
  }
}

report::json benchmark_json(const benchmark& b, const evaluate_state& s, std::size_t rank_metric) {
  report::json j;
  j["schema"] = "glassbox.evaluation";
  j["version"] = 1;
  report::json in;
  in["source"] = b.source;
  in["n"] = b.inputs.size();
  if (b.source == "generated") in["seed"] = s.seed;
  in["long_above"] = s.long_above;
  report::json counts = report::json::object();
  for (std::size_t sub = 0; sub < subset_names().size(); ++sub) {
    std::size_t n = 0;
    for (const auto& x : b.inputs) n += in_subset(x, sub, s.long_above) ? 1 : 0;
    counts[subset_names()[sub]] = n;
  }
  in["subsets"] = counts;
  j["inputs"] = in;
  j["target"] = b.target;
  j["removal"] = dashed(s.removal);
  j["absolute"] = true;
  j["rank_by"] = std::string(metric_specs()[rank_metric].name);
  report::json settings;
  settings["bootstrap"] = {{"confidence", 0.95}, {"resamples", s.resamples}, {"seed", s.seed}};
  settings["curve_steps"] = s.curve_steps;
  settings["infidelity_samples"] = s.infidelity_samples;
  settings["max_sensitivity"] = {{"samples", s.sensitivity_samples}, {"every", s.sensitivity_every}};
  report::json budgets = report::json::object();
  for (const auto& c : b.configs) budgets[c.method] = c.budget;
  settings["budgets"] = budgets;
  j["settings"] = settings;
  report::json fractions = report::json::array();
  for (std::size_t p = 0; p < curve_points; ++p) fractions.push_back(static_cast<double>(p) / (curve_points - 1));
  report::json results = report::json::array();
  for (std::size_t k : ranking(b.summaries, rank_metric)) {
    const auto& sum = b.summaries[k];
    report::json r;
    r["method"] = sum.config->method;
    r["baseline"] = sum.config->baseline;
    r["family"] = sum.config->family;
    r["inputs"] = sum.inputs;
    r["skipped"] = sum.skipped;
    r["metrics"] = metrics_json(sum.subsets[0].metrics);
    r["iou_f1_pooled"] = sum.iou_f1_pooled;
    r["evaluations"] = sum.evaluations;
    r["seconds"] = sum.seconds;
    report::json subsets = report::json::object();
    for (std::size_t sub = 1; sub < subset_names().size(); ++sub)
      subsets[subset_names()[sub]] = {{"inputs", sum.subsets[sub].inputs},
                                      {"metrics", metrics_json(sum.subsets[sub].metrics)}};
    r["subsets"] = subsets;
    r["curves"] = {{"fractions", fractions}, {"deletion", sum.deletion}, {"insertion", sum.insertion}};
    results.push_back(r);
  }
  j["results"] = results;
  report::json agreements = report::json::array();
  for (const auto& a : b.agreements)
    agreements.push_back({{"a", b.configs[a.a].method},
                          {"a_baseline", b.configs[a.a].baseline},
                          {"b", b.configs[a.b].method},
                          {"b_baseline", b.configs[a.b].baseline},
                          {"spearman", interval_json(a.spearman)},
                          {"kendall_tau", interval_json(a.kendall)},
                          {"top_k_overlap", interval_json(a.overlap)}});
  j["agreement"] = agreements;
  return j;
}

// --- HTML: SVG charts ---

std::string palette(std::size_t i) {
  static const char* colors[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
                                 "#7f7f7f", "#bcbd22", "#17becf", "#393b79", "#637939", "#8c6d31", "#843c39",
                                 "#7b4173", "#3182bd", "#e6550d", "#31a354", "#756bb1", "#636363"};
  return colors[i % std::size(colors)];
}

// One line per configuration of `which` (the mean curve), x = fraction of tokens removed / inserted.
std::string curve_svg(const benchmark& b, const std::vector<std::size_t>& which, bool deletion) {
  const double W = 560, H = 300, left = 48, right = 12, top = 12, bottom = 36;
  double lo = 0, hi = 1;
  for (std::size_t k : which)
    for (double v : deletion ? b.summaries[k].deletion : b.summaries[k].insertion)
      if (std::isfinite(v)) lo = std::min(lo, v), hi = std::max(hi, v);
  auto X = [&](double f) { return left + f * (W - left - right); };
  auto Y = [&](double v) { return top + (hi - v) / (hi - lo) * (H - top - bottom); };
  std::string svg = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{:.0f}\" height=\"{:.0f}\" viewBox=\"0 0 {:.0f} {:.0f}\" "
      "font-size=\"11\">\n",
      W, H, W, H);
  svg += fmt::format("<line x1=\"{0:.1f}\" y1=\"{1:.1f}\" x2=\"{2:.1f}\" y2=\"{1:.1f}\" stroke=\"#999\"/>", X(0), Y(0),
                     X(1));
  svg += fmt::format("<line x1=\"{0:.1f}\" y1=\"{1:.1f}\" x2=\"{0:.1f}\" y2=\"{2:.1f}\" stroke=\"#999\"/>", X(0), Y(lo),
                     Y(hi));
  for (double f : {0.0, 0.25, 0.5, 0.75, 1.0})
    svg += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">{}</text>", X(f), H - bottom + 14, f);
  for (double v : {lo, 0.0, 1.0, hi})
    svg += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"end\">{:.2f}</text>", left - 4, Y(v) + 4, v);
  svg += fmt::format(
      "<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">fraction of the review tokens {} (top "
      "|score| first)</text>\n",
      (X(0) + X(1)) / 2, H - 4, deletion ? "removed" : "present");
  for (std::size_t n = 0; n < which.size(); ++n) {
    const auto& sum = b.summaries[which[n]];
    const auto& values = deletion ? sum.deletion : sum.insertion;
    std::string points;
    for (std::size_t p = 0; p < values.size(); ++p)
      if (std::isfinite(values[p]))
        points += fmt::format("{:.1f},{:.1f} ", X(static_cast<double>(p) / (curve_points - 1)), Y(values[p]));
    svg += fmt::format(
        "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"1.5\" points=\"{}\"><title>{}</title></polyline>\n",
        palette(n), points, report::html_escape(shown(*sum.config)));
  }
  return svg + "</svg>\n";
}

// One horizontal bar per configuration (ranked order), with its 95% interval as a whisker.
std::string bar_svg(const benchmark& b, const std::vector<std::size_t>& order, std::size_t metric) {
  double lo = 0, hi = 0;
  for (std::size_t k : order) {
    const interval& v = b.summaries[k].subsets[0].metrics[metric];
    for (double x : {v.mean, v.low, v.high})
      if (std::isfinite(x)) lo = std::min(lo, x), hi = std::max(hi, x);
  }
  if (hi == lo) hi = lo + 1;
  const double row = 16, left = 230, width = 320, right = 60;
  const double H = row * static_cast<double>(order.size()) + 24;
  auto X = [&](double v) { return left + (v - lo) / (hi - lo) * width; };
  std::string svg = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0:.0f}\" height=\"{1:.0f}\" viewBox=\"0 0 {0:.0f} {1:.0f}\" "
      "font-size=\"11\">\n",
      left + width + right, H);
  svg += fmt::format("<line x1=\"{0:.1f}\" y1=\"0\" x2=\"{0:.1f}\" y2=\"{1:.1f}\" stroke=\"#999\"/>\n", X(0), H - 20);
  for (std::size_t n = 0; n < order.size(); ++n) {
    const auto& sum = b.summaries[order[n]];
    const interval& v = sum.subsets[0].metrics[metric];
    const double y = row * static_cast<double>(n);
    svg += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"end\">{}</text>", left - 6, y + 12,
                       report::html_escape(shown(*sum.config)));
    if (!std::isfinite(v.mean)) continue;
    const double x0 = std::min(X(0), X(v.mean)), x1 = std::max(X(0), X(v.mean));
    svg += fmt::format(
        "<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" fill=\"#6baed6\"><title>{}: {:.4g} "
        "[{:.4g}, "
        "{:.4g}], n = {}</title></rect>",
        x0, y + 3, std::max(x1 - x0, 0.5), row - 6, report::html_escape(shown(*sum.config)), v.mean, v.low, v.high,
        v.n);
    svg += fmt::format("<line x1=\"{0:.1f}\" y1=\"{2:.1f}\" x2=\"{1:.1f}\" y2=\"{2:.1f}\" stroke=\"#08306b\"/>",
                       X(v.low), X(v.high), y + row / 2);
    svg += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\">{:.3g}</text>\n", X(std::max(v.high, 0.0)) + 4, y + 12, v.mean);
  }
  svg += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">{:.3g}</text>", X(lo), H - 6, lo);
  svg += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">{:.3g}</text>", X(hi), H - 6, hi);
  return svg + "</svg>\n";
}

std::string benchmark_html(const benchmark& b, const evaluate_state& s, std::size_t rank_metric) {
  const auto order = ranking(b.summaries, rank_metric);
  std::string body = "<h1>glassbox evaluate</h1>\n";
  body += fmt::format(
      "<div class=\"meta\"><span>{} inputs ({})</span><span>target: {}</span><span>removal: "
      "{}</span><span>ranked by {}</span></div>\n",
      b.inputs.size(), report::html_escape(b.source), report::html_escape(b.target),
      report::html_escape(dashed(s.removal)), metric_specs()[rank_metric].name);
  body +=
      "<h2>Deletion and insertion curves</h2>\n<p class=\"note\">The target (as a fraction of its value on the "
      "full input) as the review tokens are removed, or restored, in the order of each method's |score|; mean over "
      "the inputs. Each method at its first baseline; hover a line for its name.</p>\n";
  body += "<table><tr><td>" + curve_svg(b, b.reference, true) + "</td><td>" + curve_svg(b, b.reference, false) +
          "</td></tr></table>\n<p>";
  for (std::size_t n = 0; n < b.reference.size(); ++n)
    body += fmt::format("<span style=\"color:{}\">&#9632;</span> {} &nbsp; ", palette(n),
                        report::html_escape(shown(b.configs[b.reference[n]])));
  body +=
      "</p>\n<h2>Metrics</h2>\n<p class=\"note\">Mean over the inputs with its 95% bootstrap interval; every "
      "method and baseline, in the order of the ranked table.</p>\n";
  for (std::size_t m = 0; m < metric_specs().size(); ++m) {
    const auto& spec = metric_specs()[m];
    body += fmt::format("<h3>{} ({} is better)</h3>\n<p class=\"note\">{}</p>\n", spec.name,
                        spec.higher_is_better ? "higher" : "lower", report::html_escape(spec.help));
    body += bar_svg(b, order, m);
  }
  return report::html_document("glassbox evaluate", body);
}

// ---------------------------------------------------------------------------------------------
// The run.

void run_evaluate(const evaluate_state& s) {
  const std::size_t rank_metric = metric_index(s.rank_by);
  if (rank_metric == metric_specs().size()) {
    std::vector<std::string> names;
    for (const auto& m : metric_specs()) names.emplace_back(m.name);
    detail::fail("--rank-by must be one of {}, got '{}'", fmt::join(names, ", "), s.rank_by);
  }
  check_output_path(s.json, "--json");
  check_output_path(s.html, "--html");
  if (s.given("--data") && s.given("--n"))
    detail::fail("--n does not apply with --data (the file's lines are the inputs)");
  if (s.sensitivity_every == 0) detail::fail("--sensitivity-every must be >= 1, got 0");
  const auto m = load_model(s.model);
  benchmark b;
  const baseline removal = parse_baseline(m, s.removal, "removal");
  b.configs = configurations(s, m);
  if (s.given("--data")) {
    b.inputs = file_inputs(s.data, m);
    b.source = s.data;
  } else {
    if (!has_review_vocabulary(m))
      detail::fail("the model {} does not speak the review language: pass --data with rationales", m.path.string());
    if (s.n == 0) detail::fail("--n must be >= 1, got 0");
    b.inputs = generated_inputs(s.n, s.seed);
    b.source = "generated";
  }
  b.target =
      "contrast of logits at the marker: the label minus the other label (logit(label) - logit(foil) for "
      "a data file); attention gradient methods: log p(label)";
  std::size_t counts[5] = {};
  for (const auto& x : b.inputs)
    for (std::size_t sub = 0; sub < 5; ++sub) counts[sub] += in_subset(x, sub, s.long_above) ? 1 : 0;
  const bool quiet = s.json == "-";
  std::string intro;
  intro += fmt::format(
      "glassbox evaluate: {} inputs ({}{}): plain {}, negated {}, contrast {}, long (more than {} review tokens) {}\n",
      b.inputs.size(), b.source, b.source == "generated" ? fmt::format(" reviews of seed {}", s.seed) : "", counts[1],
      counts[2], counts[3], s.long_above, counts[4]);
  intro += fmt::format("target: {}\n", b.target);
  intro += fmt::format(
      "metrics: tokens ranked by |score|; removal for the faithfulness metrics: {}; 95% bootstrap intervals of {} "
      "resamples\n",
      dashed(s.removal), s.resamples);
  intro += fmt::format("{} method and baseline pairs; budgets:\n", b.configs.size());
  std::set<std::string> listed;
  for (const auto& c : b.configs)
    if (listed.insert(c.method).second) intro += fmt::format("  {:<28} {}\n", dashed(c.method), c.budget);
  intro += fmt::format(
      "  {:<28} deletion / insertion curves of {} steps{}; infidelity {} perturbations; max-sensitivity "
      "(saliency, input-x-gradient, integrated-gradients) {} perturbations on every {}th input\n",
      "metrics", s.curve_steps, s.curve_steps == 0 ? " (one token per step)" : "", s.infidelity_samples,
      s.sensitivity_samples, s.sensitivity_every);
  if (!quiet) fmt::print("{}", intro);
  std::fflush(stdout);

  const run_context ctx{s, m, removal};
  execution_options exec;
  exec.batch_size = s.batch_size;
  exec.threads = s.threads;
  if (auto bar = progress_bar())  // the bar names the command's stage, in inputs
    exec.on_progress = [bar](const progress& p) { return bar(progress{p.done, p.total, "evaluate (inputs)"}); };
  std::vector<std::vector<run_record>> records(b.inputs.size());
  const auto start = std::chrono::steady_clock::now();
  for_each_input(
      b.inputs.size(),
      [&](std::size_t i, const execution_options& e) {
        execution_options per = e;
        per.batch_size = s.batch_size;
        std::vector<run_record> out;
        for (const auto& c : b.configs) out.push_back(evaluate_one(ctx, c, b.inputs[i], i, per));
        return out;
      },
      [&](std::size_t i, std::vector<run_record> r) { records[i] = std::move(r); }, exec);
  for (std::size_t k = 0; k < b.configs.size(); ++k)
    b.summaries.push_back(summarise_configuration(b.configs[k], k, records, b.inputs, s));
  std::set<std::string> methods;
  for (std::size_t k = 0; k < b.configs.size(); ++k)
    if (methods.insert(b.configs[k].method).second) b.reference.push_back(k);
  for (std::size_t i = 0; i < b.reference.size(); ++i)
    for (std::size_t j = i + 1; j < b.reference.size(); ++j)
      b.agreements.push_back(agreement_of(b.reference[i], b.reference[j], records, b.inputs, s));
  b.wall_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  if (!quiet) {
    print_table(b, s, rank_metric);
    fmt::print("\n{} inputs x {} method and baseline pairs in {:.1f} s (wall, thread budget {})\n", b.inputs.size(),
               b.configs.size(), b.wall_seconds, resolve_threads(s.threads));
  }
  if (!s.json.empty()) write_json(s.json, benchmark_json(b, s, rank_metric));
  if (!s.html.empty()) write_text(s.html, benchmark_html(b, s, rank_metric));
}

}  // namespace

runner add_evaluate_command(CLI::App& app) {
  auto s = std::make_shared<evaluate_state>();
  auto* cmd = app.add_subcommand(
      "evaluate",
      "The ground-truth benchmark: every attribution method (with every listed baseline) and the attention methods'\n"
      "token scores explain the label of generated reviews whose rationale is known; per method and baseline, the\n"
      "mean and 95% bootstrap interval of faithfulness and plausibility metrics, cost and time, overall and per\n"
      "subset (plain, negated, contrast, long). docs/cli.md, \"glassbox evaluate\".");
  auto add = [&](CLI::Option* o) { return s->options.add(o); };
  add(cmd->add_option("--model", s->model, "model file or directory (default: the bundled model)"));
  add(cmd->add_option("--data", s->data,
                      "evaluate on this JSON-lines file instead of generated reviews: generate-data's format, or any "
                      "input with \"rationale\" (positions), \"target\" and \"foil\""));
  add(cmd->add_option("--n", s->n, "generated reviews (the rule labels each)")->capture_default_str());
  add(cmd->add_option("--seed", s->seed, "seed of the generated reviews, the methods' draws and the bootstrap")
          ->capture_default_str());
  add(cmd->add_option("--methods", s->methods,
                      "comma-separated methods of `explain` and `attention` (glassbox methods), or all")
          ->capture_default_str());
  add(cmd->add_option("--baselines", s->baselines,
                      "baselines of the methods that take one: pad, unk, zero, removal (perturbation methods only), "
                      "token:ID, token:WORD")
          ->capture_default_str());
  add(cmd->add_option(
             "--removal", s->removal,
             "how the faithfulness metrics remove a token: removal (deleted, ERASER), pad, unk, zero, token:ID")
          ->capture_default_str());
  add(cmd->add_option("--rank-by", s->rank_by, "the metric of the ranked table")->capture_default_str());
  add(cmd->add_option("--kernel-shap-samples", s->kernel_shap_samples, "kernel-shap: coalitions per input")
          ->capture_default_str()
          ->check(CLI::PositiveNumber));
  add(cmd->add_option("--shapley-samples", s->shapley_samples, "shapley-sampling: permutations per input")
          ->capture_default_str()
          ->check(CLI::PositiveNumber));
  add(cmd->add_option("--curve-steps", s->curve_steps,
                      "deletion / insertion curves: points at 0, 1/k, ..., 1 of the review tokens (0 = one per token)")
          ->capture_default_str());
  add(cmd->add_option("--steps", s->steps, "integrated gradients (and its layer variant): quadrature steps")
          ->capture_default_str()
          ->check(CLI::PositiveNumber));
  add(cmd->add_option("--exact-max-tokens", s->exact_max_tokens,
                      "shapley-exact runs on inputs of at most this many review tokens (2^n coalitions; at most 20)")
          ->capture_default_str()
          ->check(CLI::Range(1, 20)));
  add(cmd->add_option("--infidelity-samples", s->infidelity_samples, "infidelity: perturbations per input")
          ->capture_default_str()
          ->check(CLI::PositiveNumber));
  add(cmd->add_option("--sensitivity-samples", s->sensitivity_samples,
                      "max-sensitivity: perturbations per input (0 = off)")
          ->capture_default_str());
  add(cmd->add_option("--sensitivity-every", s->sensitivity_every,
                      "max-sensitivity: on every k-th input only (it re-runs the method per perturbation)")
          ->capture_default_str());
  add(cmd->add_option("--long-above", s->long_above,
                      "the long subset: reviews of more than this many tokens (31 = the 75th percentile)")
          ->capture_default_str());
  add(cmd->add_option("--resamples", s->resamples, "bootstrap resamples of each interval")
          ->capture_default_str()
          ->check(CLI::PositiveNumber));
  add(cmd->add_option("--batch-size", s->batch_size, "inputs per batched model call")
          ->capture_default_str()
          ->check(CLI::PositiveNumber));
  add(cmd->add_option("--threads", s->threads, "the thread budget: cores kept busy in all (0 = all cores)")
          ->capture_default_str());
  add(cmd->add_option("--json", s->json,
                      "write the results (glassbox.evaluation, docs/json-schema.md) to this file ('-' = stdout)"));
  add(cmd->add_option("--html", s->html, "write a page with the curves and one bar chart per metric"));
  return [s] {
    const pass_threads_scope threads(s->threads);
    run_evaluate(*s);
  };
}

}  // namespace glassbox::cli

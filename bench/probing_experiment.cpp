// The probing experiment of issue 13 on the bundled model (models/reviews): which layers linearly
// encode the ground-truth properties of the review language, how much of that is the probe
// (control tasks, selectivity), how compressible the labels are (MDL, online code), and whether
// the output uses polarity and negation (TCAV). Prints the tables of docs/probing.md.
//
//   probing_experiment [--model DIR] [--reviews 2000] [--seed 2] [--tcav-examples 100]
//                      [--tcav-inputs 300] [--threads 0] [--json FILE] [--export DIR]
//
// Data: `--reviews` reviews of the generator's default language (datasets::generate_reviews) of
// seed `--seed` (2 is the bundled model's held-out seed). Token properties are probed on the
// review tokens (the marker excluded): pos, is_sentiment, in_deciding_clause and in_rationale on
// every review token; written_polarity, effective_polarity, is_negated and effective_strength on
// the sentiment words. Sequence properties are probed at the marker `=>` (last pooling): the
// label, whether the deciding word is negated, and the deciding word's written polarity.
// Every probe: L2 logistic regression (C = 1, max_iterations 1000), grouped 80/10/10 split by
// review, control task (token properties), online code with the paper's blocks, seed 1.
//
// TCAV: target log p(positive) at the marker; concepts are reviews of seed 3 (positive label,
// negative label, deciding word negated, a negated positive word decides, a negated negative word
// decides), random examples are reviews of seed 4, scored inputs reviews of seed 5; 20 random
// runs, Bonferroni over concepts x layers 1..4.
//
// --export DIR writes the activations of effective_polarity (2 classes), effective_strength (4)
// and pos (the 12 present) as activation files with glassbox's probes of layer 2 (defaults and
// tight), for bench/probing_sklearn.py; --export-only 1 skips the probes and TCAV.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <glassbox/core.hpp>
#include <glassbox/datasets/reviews.hpp>
#include <glassbox/io/activation_file.hpp>
#include <glassbox/models/gpt2.hpp>
#include <glassbox/probing.hpp>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace {

using namespace glassbox;
namespace ds = glassbox::datasets;

/// Which rows a token property is probed on.
enum class row_set { review_tokens, sentiment_words };

struct token_property {
  ds::review_property property;
  row_set rows;
};

/// A sequence property read at the marker.
struct sequence_property {
  std::string name;
  std::optional<int> (*value)(const ds::review_example&);
  std::vector<std::string> names;  ///< of the values, in ascending order
};

/// The name of a class value of a property.
std::string value_name(ds::review_property p, int v) {
  switch (p) {
    case ds::review_property::pos:
      return std::string(ds::to_string(static_cast<ds::part_of_speech>(v)));
    case ds::review_property::written_polarity:
    case ds::review_property::effective_polarity:
      return v > 0 ? "positive" : v < 0 ? "negative" : "none";
    case ds::review_property::strength:
    case ds::review_property::effective_strength:
      return std::to_string(v);
    default:
      return v != 0 ? "yes" : "no";
  }
}

/// Labels of a token property, as classes 0..K-1 over the values present (ascending).
activation_labels token_property_labels(const std::vector<ds::review_example>& reviews, const token_property& tp) {
  std::set<int> values;
  std::vector<std::vector<double>> raw(reviews.size());
  for (std::size_t s = 0; s < reviews.size(); ++s) {
    const auto& r = reviews[s];
    raw[s].assign(r.tokens.size(), std::nan(""));
    for (std::size_t p = 0; p < r.truth.review_length; ++p) {
      const auto& t = r.truth.properties[p];
      if (tp.rows == row_set::sentiment_words && !t.is_sentiment) continue;
      const int v = ds::property_value(t, tp.property);
      values.insert(v);
      raw[s][p] = v;
    }
  }
  std::map<int, int> index;
  std::vector<std::string> names;
  for (const int v : values) {
    index[v] = static_cast<int>(names.size());
    names.push_back(value_name(tp.property, v));
  }
  for (auto& row : raw)
    for (auto& v : row)
      if (!std::isnan(v)) v = index[static_cast<int>(v)];
  return token_labels(std::move(raw), label_kind::classes, names, std::string(ds::to_string(tp.property)));
}

/// Labels of a sequence property, one row per review at its marker.
activation_labels sequence_property_labels(const std::vector<ds::review_example>& reviews,
                                           const sequence_property& sp) {
  std::set<int> values;
  std::vector<double> raw(reviews.size(), std::nan(""));
  for (std::size_t s = 0; s < reviews.size(); ++s)
    if (const auto v = sp.value(reviews[s])) {
      values.insert(*v);
      raw[s] = *v;
    }
  std::map<int, int> index;
  for (const int v : values) index[v] = static_cast<int>(index.size());
  for (auto& v : raw)
    if (!std::isnan(v)) v = index[static_cast<int>(v)];
  return sequence_labels(std::move(raw), label_kind::classes, sp.names, sp.name);
}

std::optional<int> label_of_review(const ds::review_example& r) {
  return r.true_label == ds::review_positive_id ? 1 : 0;
}
std::optional<int> deciding_negated(const ds::review_example& r) { return r.truth.negated ? 1 : 0; }
std::optional<int> deciding_written_polarity(const ds::review_example& r) {
  if (r.truth.deciding_words.empty()) return std::nullopt;
  return r.truth.properties[r.truth.deciding_words.front()].written_polarity > 0 ? 1 : 0;
}

std::string cell(const std::optional<double>& v, const char* format = "{:.3f}") {
  return v ? fmt::format(fmt::runtime(format), *v) : std::string("—");
}

nlohmann::json layer_json(const layer_probe_result& l) {
  nlohmann::json j;
  j["layer"] = l.layer;
  const auto put = [&](const char* key, const std::optional<double>& v) {
    if (v) j[key] = *v;
  };
  put("train_accuracy", l.train_accuracy);
  put("test_accuracy", l.test_accuracy);
  put("macro_f1", l.macro_f1);
  put("control_accuracy", l.control_accuracy);
  put("selectivity", l.selectivity);
  put("codelength_bits", l.codelength_bits);
  put("compression", l.compression);
  put("control_codelength_bits", l.control_codelength_bits);
  put("control_compression", l.control_compression);
  j["iterations"] = l.iterations;
  j["converged"] = l.converged;
  return j;
}

}  // namespace

int main(int argc, char** argv) {
  std::map<std::string, std::string> flags;
  for (int i = 1; i + 1 < argc; i += 2) flags[std::string(argv[i]).substr(2)] = argv[i + 1];
  const auto get = [&](const char* k, std::string def) { return flags.count(k) ? flags.at(k) : def; };
#ifdef GLASSBOX_SOURCE_DIR
  const std::string default_model = std::string(GLASSBOX_SOURCE_DIR) + "/models/reviews";
#else
  const std::string default_model = "models/reviews";
#endif
  try {
    const auto start = std::chrono::steady_clock::now();
    const auto model = models::gpt2::load(get("model", default_model));
    const std::size_t n = std::stoul(get("reviews", "2000"));
    const std::uint64_t seed = std::stoull(get("seed", "2"));
    const execution_options exec{.threads = std::stoul(get("threads", "0"))};
    const auto reviews = ds::generate_reviews(n, seed);
    std::vector<token_sequence> inputs;
    for (const auto& r : reviews) inputs.push_back(r.tokens);
    const std::size_t layer_count = model.n_layer() + 1;
    nlohmann::json out;
    out["model"] = get("model", default_model);
    out["reviews"] = n;
    out["seed"] = seed;

    const bool export_only = flags.count("export-only") != 0 && flags.count("export") != 0;
    // ---- probes ------------------------------------------------------------------------------
    const std::vector<token_property> token_properties{
        {ds::review_property::pos, row_set::review_tokens},
        {ds::review_property::is_sentiment, row_set::review_tokens},
        {ds::review_property::in_deciding_clause, row_set::review_tokens},
        {ds::review_property::in_rationale, row_set::review_tokens},
        {ds::review_property::written_polarity, row_set::sentiment_words},
        {ds::review_property::effective_polarity, row_set::sentiment_words},
        {ds::review_property::is_negated, row_set::sentiment_words},
        {ds::review_property::effective_strength, row_set::sentiment_words},
    };
    const std::vector<sequence_property> sequence_properties{
        {"label (at the marker)", label_of_review, {"negative", "positive"}},
        {"deciding word negated (at the marker)", deciding_negated, {"no", "yes"}},
        {"deciding word's written polarity (at the marker)", deciding_written_polarity, {"negative", "positive"}},
    };
    struct row {
      std::string name, rows;
      probe_result result;
    };
    std::vector<row> results;
    if (!export_only) {
      // max_iterations 1000: most properties are nearly separable after layer 0, where L-BFGS needs
      // more than scikit-learn's default 100 iterations (the warnings below list any that still stop).
      const logistic_regression_options logistic{.max_iterations = 1000};
      const probe_options token_options{.logistic = logistic, .mdl = true, .seed = 1, .execution = exec};
      const probe_options sequence_options{
          .logistic = logistic, .control = false, .mdl = true, .seed = 1, .execution = exec};
      for (const auto& tp : token_properties) {
        const auto labels = token_property_labels(reviews, tp);
        const auto set =
            collect_activations(model, inputs, labels, {.model_name = "models/reviews", .execution = exec});
        results.push_back({std::string(ds::to_string(tp.property)),
                           tp.rows == row_set::review_tokens ? "review tokens" : "sentiment words",
                           probe_layers(set, token_options)});
      }
      for (const auto& sp : sequence_properties) {
        const auto labels = sequence_property_labels(reviews, sp);
        const auto set = collect_activations(
            model, inputs, labels,
            {.pooling = activation_pooling::last, .model_name = "models/reviews", .execution = exec});
        results.push_back({sp.name, "reviews (marker)", probe_layers(set, sequence_options)});
      }

      fmt::print(
          "## Probes on the bundled model: {} reviews of seed {}, L2 logistic regression (C = 1, at most 1000 "
          "iterations), grouped 80/10/10 split\n\n",
          n, seed);
      const auto header = [&](const std::string& what) {
        fmt::print("### {}\n\n| property | rows | K | majority |", what);
        for (std::size_t l = 0; l < layer_count; ++l) fmt::print(" layer {} |", l);
        fmt::print("\n|---|---|---|---|");
        for (std::size_t l = 0; l < layer_count; ++l) fmt::print("---|");
        fmt::print("\n");
      };
      const auto table = [&](const std::string& what, auto&& value) {
        header(what);
        for (const auto& r : results) {
          fmt::print("| {} | {} ({}) | {} | {} |", r.name, r.rows,
                     r.result.train_rows + r.result.dev_rows + r.result.test_rows, r.result.classes,
                     cell(r.result.majority_accuracy));
          for (const auto& l : r.result.layers) fmt::print(" {} |", value(l));
          fmt::print("\n");
        }
        fmt::print("\n");
      };
      table("Test accuracy", [](const layer_probe_result& l) { return cell(l.test_accuracy); });
      table("Control-task test accuracy (Hewitt & Liang; token properties only)",
            [](const layer_probe_result& l) { return cell(l.control_accuracy); });
      table("Selectivity = test accuracy - control accuracy",
            [](const layer_probe_result& l) { return cell(l.selectivity, "{:+.3f}"); });
      table("MDL compression (uniform codelength / online codelength)",
            [](const layer_probe_result& l) { return cell(l.compression, "{:.2f}"); });
      table("MDL compression of the control task",
            [](const layer_probe_result& l) { return cell(l.control_compression, "{:.2f}"); });
      table("Online codelength (kbits)", [](const layer_probe_result& l) {
        return l.codelength_bits ? fmt::format("{:.2f}", *l.codelength_bits / 1000) : std::string("—");
      });
      for (const auto& r : results)
        for (const auto& w : r.result.warnings) fmt::print("warning ({}): {}\n", r.name, w);
      for (const auto& r : results) {
        nlohmann::json p;
        p["property"] = r.name;
        p["rows"] = r.rows;
        p["classes"] = r.result.class_names;
        p["majority_accuracy"] = r.result.majority_accuracy.value_or(0.0);
        for (const auto& l : r.result.layers) p["layers"].push_back(layer_json(l));
        out["probes"].push_back(p);
      }

      // ---- TCAV --------------------------------------------------------------------------------
      const std::size_t tcav_examples = std::stoul(get("tcav-examples", "100"));
      const std::size_t tcav_inputs = std::stoul(get("tcav-inputs", "300"));
      const auto pick = [&](std::uint64_t data_seed, std::size_t count, auto&& keep) {
        std::vector<token_sequence> picked;
        ds::review_generator gen;
        for (std::uint64_t i = 0; picked.size() < count && i < 1000000; ++i) {
          const auto r = gen.example(data_seed, i);
          if (keep(r)) picked.push_back(r.tokens);
        }
        return picked;
      };
      const auto negated_written = [](const ds::review_example& r, int written) {
        return r.truth.negated && deciding_written_polarity(r) == (written > 0 ? 1 : 0);
      };
      const std::vector<tcav_concept> concepts{
          {"positive label",
           pick(3, tcav_examples, [](const auto& r) { return r.true_label == ds::review_positive_id; })},
          {"negative label",
           pick(3, tcav_examples, [](const auto& r) { return r.true_label == ds::review_negative_id; })},
          {"deciding word negated", pick(3, tcav_examples, [](const auto& r) { return r.truth.negated; })},
          {"negated positive word decides",
           pick(3, tcav_examples, [&](const auto& r) { return negated_written(r, 1); })},
          {"negated negative word decides",
           pick(3, tcav_examples, [&](const auto& r) { return negated_written(r, -1); })},
      };
      const auto random_examples = pick(4, 4 * tcav_examples, [](const auto&) { return true; });
      const auto tcav_data = pick(5, tcav_inputs, [](const auto&) { return true; });
      std::vector<std::size_t> tcav_layers;
      for (std::size_t l = 1; l < layer_count; ++l) tcav_layers.push_back(l);
      const auto tc = tcav(model, concepts, random_examples, tcav_data, target::log_probability(ds::review_positive_id),
                           {.layers = tcav_layers, .logistic = logistic, .seed = 1, .execution = exec});
      fmt::print(
          "## TCAV on the bundled model: target log p(positive) at the marker, {} inputs, {} examples per "
          "concept, {} random examples, 20 random runs, Bonferroni over {} tests\n\n",
          tc.inputs, tcav_examples, random_examples.size(), tc.tests);
      fmt::print("| concept | layer | TCAV score | mean (sd) | random mean (sd) | p (corrected) | CAV accuracy |\n");
      fmt::print("|---|---|---|---|---|---|---|\n");
      for (const auto& c : tc.results) {
        fmt::print("| {} | {} | {} | {:.3f} ({:.3f}) | {:.3f} ({:.3f}) | {:.2g} | {:.3f} |\n", c.concept_name, c.layer,
                   c.score ? fmt::format("**{:.3f}**", *c.score) : std::string("not significant"), c.mean,
                   c.standard_deviation, c.random_mean, c.random_standard_deviation, c.corrected_p_value,
                   c.cav_accuracy);
        nlohmann::json j;
        j["concept"] = c.concept_name;
        j["layer"] = c.layer;
        j["significant"] = c.significant;
        if (c.score) j["score"] = *c.score;
        j["mean"] = c.mean;
        j["random_mean"] = c.random_mean;
        j["p_value"] = c.p_value;
        j["corrected_p_value"] = c.corrected_p_value;
        j["cav_accuracy"] = c.cav_accuracy;
        out["tcav"].push_back(j);
      }
      for (const auto& w : tc.warnings) fmt::print("warning (tcav): {}\n", w);
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      fmt::print("\n{} model evaluations for TCAV; whole experiment {:.1f} s wall.\n", tc.model_evaluations, seconds);

      if (flags.count("json")) std::ofstream(flags.at("json")) << out.dump(2) << "\n";
    }

    // ---- exports for bench/probing_sklearn.py --------------------------------------------------
    if (flags.count("export")) {
      const std::filesystem::path dir = flags.at("export");
      std::filesystem::create_directories(dir);
      for (const auto& tp : {token_property{ds::review_property::effective_polarity, row_set::sentiment_words},
                             token_property{ds::review_property::effective_strength, row_set::sentiment_words},
                             token_property{ds::review_property::pos, row_set::review_tokens}}) {
        auto set = collect_activations(model, inputs, token_property_labels(reviews, tp),
                                       {.model_name = "models/reviews", .execution = exec});
        set.split = grouped_split(set.sequence_ids, set.rows(), 7);
        const std::string name(ds::to_string(tp.property));
        io::write_activation_file(dir / fmt::format("reviews_{}.safetensors", name), set);
        // glassbox's probe of layer 2 on the training rows (split 0), at its defaults and tight.
        std::vector<std::size_t> train;
        for (std::size_t i = 0; i < set.rows(); ++i)
          if (set.split[i] == 0) train.push_back(i);
        const tensor2& x = set.activations[*set.layer_slot(2)];
        tensor2 xtrain = tensor2::from_shape({train.size(), x.shape(1)});
        std::vector<std::int32_t> ytrain;
        for (std::size_t i = 0; i < train.size(); ++i) {
          std::copy_n(x.data() + train[i] * x.shape(1), x.shape(1), xtrain.data() + i * x.shape(1));
          ytrain.push_back(static_cast<std::int32_t>(set.labels[train[i]]));
        }
        const std::size_t classes = set.class_count();
        timespec c0{}, c1{};
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
        const auto fit = fit_logistic_regression(xtrain, ytrain, classes);
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
        const double cpu =
            static_cast<double>(c1.tv_sec - c0.tv_sec) + 1e-9 * static_cast<double>(c1.tv_nsec - c0.tv_nsec);
        const io::saved_probe probe{2, fit.model};
        io::write_probe_file(
            dir / fmt::format("glassbox_probe_{}.safetensors", name), std::span(&probe, 1),
            {{"cpu_seconds", fmt::format("{:.6f}", cpu)},
             {"iterations", std::to_string(fit.iterations)},
             {"converged", fit.converged ? "true" : "false"}});
        const auto tight =
            fit_logistic_regression(xtrain, ytrain, classes, {.tol = 1e-6, .ftol = 0, .max_iterations = 5000});
        const io::saved_probe tight_probe{2, tight.model};
        io::write_probe_file(dir / fmt::format("glassbox_probe_tight_{}.safetensors", name), std::span(&tight_probe, 1),
                             {{"iterations", std::to_string(tight.iterations)},
                              {"converged", tight.converged ? "true" : "false"}});
      }
      fmt::print("\nExported activation files and probes (layer 2) to {}.\n", dir.string());
    }
    return 0;
  } catch (const std::exception& e) {
    fmt::print(stderr, "probing_experiment: {}\n", e.what());
    return 1;
  }
}

// glassbox activations, probe and tcav (docs/probing.md, docs/cli.md "Probing"): the probing module
// on the command line. Every option sets one field of the library's options structs
// (activation_options, probe_options, tcav_options), described once with the registry's fields;
// the JSON documents carry the result structs' fields under the names.
#include "probing_commands.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "batch_files.hpp"
#include "glassbox/datasets/reviews.hpp"
#include "glassbox/io/activation_file.hpp"
#include "glassbox/probing.hpp"
#include "glassbox/report/html.hpp"
#include "glassbox/report/json.hpp"
#include "registry.hpp"

namespace glassbox::cli {

namespace {

namespace fs = std::filesystem;
using report::json;

// ---------------------------------------------------------------------------------------------
// Options: each one sets a field of the library's options struct.

struct no_context {};  // the parsers of these options need nothing beyond their text

/// "all" or a list of hidden-state indices such as "0,2,4".
std::vector<std::size_t> parse_layers(std::string_view option, std::string_view text) {
  std::vector<std::size_t> out;
  if (dashed(text) == "all") return out;
  for (const std::string_view item : split_list(text)) {
    if (item.empty() || item.find_first_not_of("0123456789") != std::string_view::npos)
      detail::fail("--{} must be all or hidden-state indices such as 0,2,4, got '{}'", option, text);
    out.push_back(parse::integer<std::size_t>(option, item));
  }
  return out;
}

template <class Options>
option_field<Options, no_context> layers_field(std::string name, std::vector<std::size_t> Options::*member,
                                               std::string help, std::string default_text, std::string field) {
  return custom_field<no_context, Options>(
      {name, option_type::text, std::move(help), std::move(default_text), std::move(field)},
      [member, name](Options& o, std::string_view text, const no_context&) { o.*member = parse_layers(name, text); });
}

/// A real-valued field of a nested options struct (e.g. probe_options::logistic.C).
template <class Options, class Inner>
option_field<Options, no_context> nested_real(std::string name, Inner Options::*outer, double Inner::*inner,
                                              std::string help, std::string field) {
  return custom_field<no_context, Options>(
      {name, option_type::real, std::move(help), fmt::format("{}", Options{}.*outer.*inner), std::move(field)},
      [=](Options& o, std::string_view text, const no_context&) { o.*outer.*inner = parse::real(name, text); });
}

/// An integer field of a nested options struct (e.g. probe_options::logistic.max_iterations).
template <class Options, class Inner>
option_field<Options, no_context> nested_integer(std::string name, Inner Options::*outer, std::size_t Inner::*inner,
                                                 std::string help, std::string field) {
  return custom_field<no_context, Options>(
      {name, option_type::integer, std::move(help), fmt::format("{}", Options{}.*outer.*inner), std::move(field)},
      [=](Options& o, std::string_view text, const no_context&) {
        o.*outer.*inner = parse::integer<std::size_t>(name, text);
      });
}

/// The collection options of `activations` and of `probe --data` (the layers are added by each command).
std::vector<option_field<activation_options, no_context>> collection_fields() {
  return {
      choice_field<no_context>("pool", &activation_options::pooling,
                               {activation_pooling::token, activation_pooling::last, activation_pooling::mean},
                               "rows: one per labelled token, or one per input (its last token or its mean)",
                               "activation_options::pooling"),
      custom_field<no_context, activation_options>(
          {"memory-limit", option_type::integer,
           "MiB of activations held at once; above it rows stream to the file in chunks", "1024",
           "activation_options::memory_limit"},
          [](activation_options& o, std::string_view text, const no_context&) {
            const auto mib = parse::integer<std::size_t>("memory-limit", text);
            if (mib == 0) detail::fail("--memory-limit must be >= 1 (MiB), got 0");
            o.memory_limit = mib << 20;
          }),
  };
}

std::vector<option_field<probe_options, no_context>> probe_fields() {
  return {
      layers_field<probe_options>("layers", &probe_options::layers,
                                  "hidden-state indices to probe: all or a list such as 0,2,4 (0 = embeddings output)",
                                  "all", "probe_options::layers"),
      choice_field<no_context>("probe", &probe_options::probe, {probe_kind::linear, probe_kind::mlp},
                               "the probe family: logistic (ridge for real values) or a one-hidden-layer MLP",
                               "probe_options::probe"),
      nested_real("C", &probe_options::logistic, &logistic_regression_options::C,
                  "inverse L2 strength of the logistic probe (scikit-learn's C)", "probe_options::logistic.C"),
      nested_real("tol", &probe_options::logistic, &logistic_regression_options::tol,
                  "logistic probe: converged when max |gradient| <= tol (scikit-learn's tol)",
                  "probe_options::logistic.tol"),
      nested_integer("max-iterations", &probe_options::logistic, &logistic_regression_options::max_iterations,
                     "logistic probe: L-BFGS iterations at most (scikit-learn's max_iter)",
                     "probe_options::logistic.max_iterations"),
      nested_real("alpha", &probe_options::ridge, &ridge_options::alpha,
                  "ridge probe (real-valued labels): L2 strength (scikit-learn's alpha)", "probe_options::ridge.alpha"),
      nested_integer("hidden", &probe_options::mlp, &mlp_probe_options::hidden, "MLP probe: hidden units",
                     "probe_options::mlp.hidden"),
      nested_integer("epochs", &probe_options::mlp, &mlp_probe_options::epochs, "MLP probe: epochs",
                     "probe_options::mlp.epochs"),
      field<no_context>("control", &probe_options::control,
                        "train on the control task too and report selectivity (--control=false to skip)",
                        "probe_options::control"),
      field<no_context>("mdl", &probe_options::mdl, "online codelength and compression (Voita & Titov 2020)",
                        "probe_options::mdl"),
      field<no_context>("seed", &probe_options::seed, "the split, the control labels, the MDL order, the MLP",
                        "probe_options::seed"),
      field<no_context>("train-fraction", &probe_options::train_fraction,
                        "of the inputs, when there is no split in the file", "probe_options::train_fraction"),
      field<no_context>("dev-fraction", &probe_options::dev_fraction,
                        "of the inputs, when there is no split in the file", "probe_options::dev_fraction"),
  };
}

std::vector<option_field<tcav_options, no_context>> tcav_fields() {
  return {
      layers_field<tcav_options>("layer", &tcav_options::layers,
                                 "hidden-state indices to test, e.g. 3 or 1,2,3,4 (0 = embeddings output)", "",
                                 "tcav_options::layers"),
      choice_field<no_context>("pool", &tcav_options::pooling, {activation_pooling::last, activation_pooling::mean},
                               "the position read: the last token, or the mean over tokens", "tcav_options::pooling"),
      field<no_context>("random-runs", &tcav_options::random_runs, "random sets (the paper's repeated runs)",
                        "tcav_options::random_runs"),
      field<no_context>("random-set-size", &tcav_options::random_set_size,
                        "examples per random set; 0 = the smallest concept's count", "tcav_options::random_set_size"),
      field<no_context>("significance", &tcav_options::significance, "alpha of the Bonferroni-corrected t-test",
                        "tcav_options::significance"),
      nested_real("C", &tcav_options::logistic, &logistic_regression_options::C,
                  "inverse L2 strength of the CAV classifier", "tcav_options::logistic.C"),
      field<no_context>("seed", &tcav_options::seed, "the random sets", "tcav_options::seed"),
  };
}

method_info collection_info() {
  return {"collect_activations",
          "activations",
          "probing",
          "ActivationModel",
          "hidden states per layer of a data file's tokens or inputs, with a property's labels",
          {}};
}

/// Options bound to the fields of `Options`: added to a command through the registry's
/// method_options (one command-line option per field, its help naming the default), except the
/// names with capitals (--C, scikit-learn's spelling), which method_options would lower-case.
template <class Options>
struct bound_fields {
  std::vector<option_field<Options, no_context>> fields;
  method_options flags;
  std::map<std::string, std::string> exact_storage;  // the options added under their exact spelling
  std::vector<std::pair<std::string, CLI::Option*>> exact;

  /// Adds the options to `command`, described as the method `info`.
  void add_to(CLI::App& command, method_info info) {
    for (const auto& f : fields) {
      if (dashed(f.spec.name) == f.spec.name) {
        info.options.push_back(f.spec);
        continue;
      }
      auto* o =
          command.add_option("--" + f.spec.name, exact_storage[f.spec.name],
                             fmt::format("{} [{}] (default: {})", f.spec.help, info.cli_name(), f.spec.default_text));
      exact.push_back({f.spec.name, o});
    }
    flags.add_to(command, {info});
  }
  /// The given options, by name.
  option_values given_values() const {
    option_values values = flags.given();
    for (const auto& [name, option] : exact)
      if (option->count() > 0) values.set(name, exact_storage.at(name));
    return values;
  }
  /// Whether option `name` was given.
  bool given(std::string_view name) const { return given_values().given(name); }
  /// Applies the given options to `o`.
  void apply(Options& o) const {
    const option_values values = given_values();
    for (const auto& f : fields)
      if (values.given(f.spec.name)) f.apply(o, values.text(f.spec.name), no_context{});
  }
};

// ---------------------------------------------------------------------------------------------
// Labels from a data file (the JSON lines of generate-data, or any file with the property).

/// How the rows and labels of a collection are read from a data file.
struct label_source {
  std::string file;      ///< --data
  std::string property;  ///< --property: a per-token array of "properties" (token pooling) or a field of the line
  std::string where;     ///< --where: keep only the tokens where this per-token property is non-zero
  bool real = false;     ///< --real: the values are real numbers (ridge), not classes
};

/// The inputs of a data file and their labels, ready for collect_activations.
struct labelled_inputs {
  std::vector<token_sequence> inputs;
  activation_labels labels;
  std::size_t rows = 0;
};

/// The name of value `v` of a property of the review language (datasets::review_property).
std::string review_value_name(datasets::review_property p, long long v) {
  switch (p) {
    case datasets::review_property::pos:
      return v >= 0 && v < static_cast<long long>(datasets::part_of_speech_count)
                 ? std::string(datasets::to_string(static_cast<datasets::part_of_speech>(v)))
                 : std::to_string(v);
    case datasets::review_property::written_polarity:
    case datasets::review_property::effective_polarity:
      return v > 0 ? "positive" : v < 0 ? "negative" : "none";
    case datasets::review_property::strength:
    case datasets::review_property::effective_strength:
      return std::to_string(v);
    default:
      return v != 0 ? "yes" : "no";
  }
}

/// A label value of a data line: a number (booleans as 0 / 1) or a string.
struct raw_label {
  bool is_text = false;
  double number = 0;
  std::string text;
};

std::optional<raw_label> raw_label_of(const json& v, const std::string& where) {
  if (v.is_null()) return std::nullopt;
  if (v.is_boolean()) return raw_label{false, v.get<bool>() ? 1.0 : 0.0, {}};
  if (v.is_number()) return raw_label{false, v.get<double>(), {}};
  if (v.is_string()) return raw_label{true, 0, v.get<std::string>()};
  detail::fail("{}: a label must be a number, a boolean, a string or null, got {}", where, v.dump());
}

labelled_inputs read_labelled_inputs(const label_source& src, const loaded_model& m, activation_pooling pooling) {
  const bool per_token = pooling == activation_pooling::token;
  if (!src.where.empty() && !per_token)
    detail::fail("--where applies with --pool token, got --pool {}", to_string(pooling));
  const std::vector<data_line> lines = read_data_lines(src.file, m);
  for (const auto& line : lines) line.check();
  // The JSON of each line again, for its labels (read_data_lines keeps only the inputs).
  std::ifstream in(src.file, std::ios::binary);
  std::string text;
  std::vector<json> objects;
  while (std::getline(in, text))
    if (text.find_first_not_of(" \t\r") != std::string::npos) objects.push_back(json::parse(text));

  labelled_inputs out;
  std::vector<std::vector<std::optional<raw_label>>> raw(lines.size());
  const auto per_token_array = [&](const json& j, const std::string& name, std::size_t line,
                                   std::size_t tokens) -> const json& {
    const json* found = nullptr;
    if (j.contains("properties") && j["properties"].is_object() && j["properties"].contains(name))
      found = &j["properties"][name];
    else if (j.contains(name) && j[name].is_array())
      found = &j[name];
    if (found == nullptr) {
      std::string known;
      if (j.contains("properties") && j["properties"].is_object())
        for (const auto& [k, v] : j["properties"].items()) known += (known.empty() ? "" : ", ") + k;
      detail::fail("{} line {}: no per-token property \"{}\" (\"properties\" holds: {})", src.file, line, name,
                   known.empty() ? "nothing" : known);
    }
    if (!found->is_array() || found->size() != tokens)
      detail::fail("{} line {}: \"{}\" must be an array of one value per token ({}), got {}", src.file, line, name,
                   tokens, found->is_array() ? fmt::format("{} values", found->size()) : found->dump());
    return *found;
  };
  for (std::size_t i = 0; i < lines.size(); ++i) {
    const json& j = objects.at(i);
    const std::size_t number = lines[i].number, t = lines[i].tokens.size();
    const std::string where = fmt::format("{} line {}", src.file, number);
    out.inputs.push_back(lines[i].tokens);
    raw[i].assign(t, std::nullopt);
    if (per_token) {
      const json& values = per_token_array(j, src.property, number, t);
      const json* keep = src.where.empty() ? nullptr : &per_token_array(j, src.where, number, t);
      for (std::size_t p = 0; p < t; ++p) {
        if (keep != nullptr) {
          const json& k = (*keep)[p];
          if (!k.is_number() && !k.is_boolean() && !k.is_null())
            detail::fail("{}: --where \"{}\" must hold numbers or booleans, got {}", where, src.where, k.dump());
          if (k.is_null() || (k.is_boolean() ? !k.get<bool>() : k.get<double>() == 0)) continue;
        }
        raw[i][p] = raw_label_of(values[p], fmt::format("{}: \"{}\"[{}]", where, src.property, p));
      }
    } else {
      if (!j.contains(src.property))
        detail::fail("{}: no field \"{}\" (a label of the whole input for --pool {}: a number, a boolean or a string)",
                     where, src.property, to_string(pooling));
      if (j[src.property].is_array())
        detail::fail("{}: \"{}\" has one value per token; probe it with --pool token", where, src.property);
      raw[i][t - 1] = raw_label_of(j[src.property], fmt::format("{}: \"{}\"", where, src.property));
    }
  }

  // The labels: real values, or classes 0 .. K - 1 over the distinct values (numbers ascending, or text).
  bool any_text = false, any_number = false;
  for (const auto& row : raw)
    for (const auto& v : row)
      if (v) (v->is_text ? any_text : any_number) = true;
  if (!any_text && !any_number)
    detail::fail("{}: no row has a value of \"{}\"{}", src.file, src.property,
                 src.where.empty() ? "" : fmt::format(" where \"{}\" is non-zero", src.where));
  if (any_text && any_number) detail::fail("{}: \"{}\" mixes numbers and text", src.file, src.property);
  if (src.real && any_text) detail::fail("--real: \"{}\" holds text, not numbers", src.property);
  std::vector<std::vector<double>> values(raw.size());
  std::vector<std::string> names;
  if (src.real) {
    for (std::size_t s = 0; s < raw.size(); ++s)
      for (const auto& v : raw[s]) values[s].push_back(v ? v->number : std::nan(""));
  } else if (any_text) {
    std::set<std::string> distinct;
    for (const auto& row : raw)
      for (const auto& v : row)
        if (v) distinct.insert(v->text);
    names.assign(distinct.begin(), distinct.end());
    for (std::size_t s = 0; s < raw.size(); ++s)
      for (const auto& v : raw[s])
        values[s].push_back(
            v ? static_cast<double>(std::lower_bound(names.begin(), names.end(), v->text) - names.begin())
              : std::nan(""));
  } else {
    std::set<long long> distinct;
    for (const auto& row : raw)
      for (const auto& v : row)
        if (v) {
          if (v->number != std::floor(v->number) || std::abs(v->number) > 1e15)
            detail::fail("{}: \"{}\" holds {}, not a class; pass --real to probe real values with ridge regression",
                         src.file, src.property, v->number);
          distinct.insert(static_cast<long long>(v->number));
        }
    const std::vector<long long> sorted(distinct.begin(), distinct.end());
    const auto review = datasets::parse_review_property(src.property);
    for (const long long v : sorted) names.push_back(review ? review_value_name(*review, v) : std::to_string(v));
    for (std::size_t s = 0; s < raw.size(); ++s)
      for (const auto& v : raw[s])
        values[s].push_back(
            v ? static_cast<double>(std::lower_bound(sorted.begin(), sorted.end(), static_cast<long long>(v->number)) -
                                    sorted.begin())
              : std::nan(""));
  }
  for (const auto& row : values)
    for (const double v : row) out.rows += std::isnan(v) ? 0 : 1;
  const label_kind kind = src.real ? label_kind::real : label_kind::classes;
  if (per_token) {
    out.labels = token_labels(std::move(values), kind, std::move(names), src.property);
  } else {
    std::vector<double> last;
    for (const auto& row : values) last.push_back(row.back());
    out.labels = sequence_labels(std::move(last), kind, std::move(names), src.property);
  }
  return out;
}

/// The options of a data file's labels, added to a command.
struct label_source_options {
  label_source source;
  CLI::Option* data = nullptr;
  CLI::Option* property = nullptr;
  CLI::Option* where = nullptr;
  CLI::Option* real = nullptr;
  void add_to(CLI::App& cmd) {
    data = cmd.add_option("--data", source.file,
                          "JSON-lines data file: {\"token_ids\": [...]} or {\"text\": ...} per line, with the property "
                          "(glassbox generate-data writes them)");
    property = cmd.add_option("--property", source.property,
                              "the label: a per-token array of the line's \"properties\" (--pool token), or a field of "
                              "the line (--pool last/mean), e.g. is_negated, pos, label");
    where = cmd.add_option("--where", source.where,
                           "--pool token: only the tokens where this per-token property is non-zero, e.g. "
                           "is_sentiment");
    real = cmd.add_flag("--real", source.real, "the labels are real values (ridge regression), not classes");
  }
};

/// A sink that writes the activation file, with a grouped seeded split when asked.
struct file_sink {
  io::activation_file_writer& writer;
  std::optional<std::uint64_t> split_seed;
  void begin(const activation_set& header) {
    if (!split_seed) return writer.begin(header);
    activation_set h = header;
    h.split = grouped_split(h.sequence_ids, h.rows(), *split_seed);
    writer.begin(h);
  }
  void append(std::span<const tensor2> rows) { writer.append(rows); }
  void finish() { writer.finish(); }
};

std::string class_list(const std::vector<std::string>& names, std::size_t classes) {
  if (names.empty()) return fmt::format("{} classes", classes);
  return fmt::format("{} classes: {}", names.size(), fmt::join(names, ", "));
}

// ---------------------------------------------------------------------------------------------
// Outputs.

std::string number_or_dash(const std::optional<double>& v, const char* format = "{:.3f}") {
  return v ? fmt::format(fmt::runtime(format), *v) : std::string("-");
}

void put(json& j, const char* name, const std::optional<double>& v) {
  if (v) j[name] = *v;
}

json probe_json(const probe_result& r, const std::string& source) {
  json j;
  j["schema"] = "glassbox.probe";
  j["version"] = 1;
  j["source"] = source;
  j["property"] = r.property;
  j["label_kind"] = std::string(to_string(r.kind));
  j["probe"] = r.probe;
  j["classes"] = r.classes;
  j["class_names"] = r.class_names;
  j["train_rows"] = r.train_rows;
  j["dev_rows"] = r.dev_rows;
  j["test_rows"] = r.test_rows;
  j["split"] = r.split_from_set ? "file" : "grouped";
  put(j, "majority_accuracy", r.majority_accuracy);
  json layers = json::array();
  for (const auto& l : r.layers) {
    json x;
    x["layer"] = l.layer;
    put(x, "train_accuracy", l.train_accuracy);
    put(x, "dev_accuracy", l.dev_accuracy);
    put(x, "test_accuracy", l.test_accuracy);
    put(x, "macro_f1", l.macro_f1);
    put(x, "train_r2", l.train_r2);
    put(x, "test_r2", l.test_r2);
    put(x, "control_accuracy", l.control_accuracy);
    put(x, "control_r2", l.control_r2);
    put(x, "selectivity", l.selectivity);
    put(x, "codelength_bits", l.codelength_bits);
    put(x, "compression", l.compression);
    put(x, "control_codelength_bits", l.control_codelength_bits);
    put(x, "control_compression", l.control_compression);
    x["iterations"] = l.iterations;
    x["converged"] = l.converged;
    layers.push_back(std::move(x));
  }
  j["layers"] = std::move(layers);
  j["warnings"] = r.warnings;
  j["options"] = options_json(r.options);
  return j;
}

json tcav_json(const tcav_result& r, const std::string& target_text) {
  json j;
  j["schema"] = "glassbox.tcav";
  j["version"] = 1;
  j["target"] = target_text;
  j["inputs"] = r.inputs;
  j["tests"] = r.tests;
  json results = json::array();
  for (const auto& c : r.results) {
    json x;
    x["concept"] = c.concept_name;
    x["layer"] = c.layer;
    x["significant"] = c.significant;
    x["score"] = c.score ? json(*c.score) : json(nullptr);
    x["mean"] = c.mean;
    x["standard_deviation"] = c.standard_deviation;
    x["random_mean"] = c.random_mean;
    x["random_standard_deviation"] = c.random_standard_deviation;
    x["t_statistic"] = c.t_statistic;
    x["p_value"] = c.p_value;
    x["corrected_p_value"] = c.corrected_p_value;
    x["cav_accuracy"] = c.cav_accuracy;
    x["scores"] = c.scores;
    x["random_scores"] = c.random_scores;
    results.push_back(std::move(x));
  }
  j["results"] = std::move(results);
  j["model_evaluations"] = r.model_evaluations;
  j["warnings"] = r.warnings;
  j["options"] = options_json(r.options);
  return j;
}

/// One line of a plot: a value per x (or none), markers filled or hollow.
struct plot_series {
  std::string name;
  std::string color;
  std::vector<std::optional<double>> y;
  std::vector<bool> filled;  ///< per point; empty = all filled
  bool dashed = false;
};

/// An SVG line plot over categorical x positions (layers), with a legend on the right.
std::string svg_line_plot(const std::vector<std::string>& x_labels, const std::vector<plot_series>& series,
                          double y_min, double y_max, std::string_view x_title) {
  const double left = 52, right = 190, top = 16, bottom = 44, w = 460, h = 260;
  const std::size_t n = x_labels.size();
  const auto px = [&](std::size_t i) { return left + (n <= 1 ? w / 2 : w * static_cast<double>(i) / (n - 1.0)); };
  const auto py = [&](double v) { return top + h * (1 - (v - y_min) / (y_max - y_min)); };
  std::string s = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"plot\" width=\"{0:.0f}\" height=\"{1:.0f}\" viewBox=\"0 0 "
      "{0:.0f} {1:.0f}\" font-size=\"12\">\n",
      left + w + right, top + h + bottom);
  for (int k = 0; k <= 5; ++k) {
    const double v = y_min + (y_max - y_min) * k / 5.0;
    s += fmt::format(
        "<line x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"{}\"/>"
        "<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"end\">{:.2f}</text>\n",
        left, py(v), left + w, py(v), std::abs(v) < 1e-12 ? "#999" : "#eee", left - 6, py(v) + 4, v);
  }
  for (std::size_t i = 0; i < n; ++i)
    s += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">{}</text>\n", px(i), top + h + 16,
                     report::html_escape(x_labels[i]));
  s += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">{}</text>\n", left + w / 2, top + h + 36,
                   report::html_escape(x_title));
  for (std::size_t k = 0; k < series.size(); ++k) {
    const auto& sr = series[k];
    std::string path;
    for (std::size_t i = 0; i < n && i < sr.y.size(); ++i) {
      if (!sr.y[i]) continue;
      path += fmt::format("{}{:.1f},{:.1f}", path.empty() ? "M" : " L", px(i), py(std::clamp(*sr.y[i], y_min, y_max)));
    }
    if (!path.empty())
      s += fmt::format("<path d=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"2\"{}/>\n", path, sr.color,
                       sr.dashed ? " stroke-dasharray=\"5,4\"" : "");
    for (std::size_t i = 0; i < n && i < sr.y.size(); ++i) {
      if (!sr.y[i]) continue;
      const bool filled = sr.filled.empty() || sr.filled[i];
      s += fmt::format(
          "<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"4\" fill=\"{}\" stroke=\"{}\" stroke-width=\"1.5\"><title>{}: "
          "{:.4f}</title></circle>\n",
          px(i), py(std::clamp(*sr.y[i], y_min, y_max)), filled ? sr.color : "#fff", sr.color,
          report::html_escape(sr.name), *sr.y[i]);
    }
    const double ly = top + 14 + 20.0 * static_cast<double>(k);
    s += fmt::format(
        "<line x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"{}\" stroke-width=\"2\"{}/>"
        "<text x=\"{:.1f}\" y=\"{:.1f}\">{}</text>\n",
        left + w + 16, ly, left + w + 40, ly, sr.color, sr.dashed ? " stroke-dasharray=\"5,4\"" : "", left + w + 46,
        ly + 4, report::html_escape(sr.name));
  }
  s += "</svg>\n";
  return s;
}

std::string warnings_html(const std::vector<std::string>& warnings) {
  std::string s;
  for (const auto& w : warnings) s += fmt::format("<p class=\"warn\">warning: {}</p>\n", report::html_escape(w));
  return s;
}

constexpr std::string_view probing_css = ".warn{color:#a33}svg.plot text{fill:#333}td.ns{color:#888}";

std::string probe_html(const probe_result& r, const std::string& source) {
  const bool classes = r.kind == label_kind::classes;
  std::string body = fmt::format("<h1>Probe: {}</h1>\n<div class=\"meta\">", report::html_escape(r.property));
  const auto meta = [&](const std::string& t) { body += "<span>" + report::html_escape(t) + "</span>"; };
  meta(source);
  meta(fmt::format("probe {}", r.probe));
  meta(classes ? class_list(r.class_names, r.classes) : std::string("real values"));
  meta(fmt::format("rows: train {}, dev {}, test {} ({} split)", r.train_rows, r.dev_rows, r.test_rows,
                   r.split_from_set ? "the file's" : "grouped seeded"));
  if (r.majority_accuracy) meta(fmt::format("majority class {:.3f}", *r.majority_accuracy));
  meta(options_line(r.options));
  body += "</div>\n";
  std::vector<std::string> xs;
  plot_series task{classes ? "test accuracy" : "test R^2", "#1f77b4", {}, {}, false};
  plot_series control{classes ? "control accuracy" : "control R^2", "#ff7f0e", {}, {}, true};
  plot_series selectivity{"selectivity", "#2ca02c", {}, {}, false};
  double lo = 0;
  for (const auto& l : r.layers) {
    xs.push_back(std::to_string(l.layer));
    task.y.push_back(classes ? l.test_accuracy : l.test_r2);
    control.y.push_back(classes ? l.control_accuracy : l.control_r2);
    selectivity.y.push_back(l.selectivity);
    for (const auto& v : {task.y.back(), control.y.back(), selectivity.y.back()})
      if (v) lo = std::min(lo, std::floor(*v * 10) / 10);
  }
  std::vector<plot_series> series{task};
  if (std::any_of(control.y.begin(), control.y.end(), [](const auto& v) { return v.has_value(); })) {
    series.push_back(control);
    series.push_back(selectivity);
  }
  if (r.majority_accuracy)
    series.push_back({"majority class", "#999", std::vector<std::optional<double>>(xs.size(), r.majority_accuracy),
                      std::vector<bool>(xs.size(), false), true});
  body += "<h2>Per layer</h2>\n" + svg_line_plot(xs, series, std::max(lo, -1.0), 1.0, "hidden-state index (layer)");
  const bool mdl =
      std::any_of(r.layers.begin(), r.layers.end(), [](const auto& l) { return l.compression.has_value(); });
  body += "<table>\n<tr><th>layer</th>";
  body += classes ? "<th>train accuracy</th><th>test accuracy</th><th>macro-F1</th><th>control accuracy</th>"
                  : "<th>train R^2</th><th>test R^2</th><th>control R^2</th>";
  body += "<th>selectivity</th>";
  if (mdl) body += "<th>codelength (bits)</th><th>compression</th><th>control compression</th>";
  body += "<th>iterations</th><th>converged</th></tr>\n";
  for (const auto& l : r.layers) {
    body += fmt::format("<tr><td>{}</td>", l.layer);
    if (classes)
      body +=
          fmt::format("<td>{}</td><td>{}</td><td>{}</td><td>{}</td>", number_or_dash(l.train_accuracy),
                      number_or_dash(l.test_accuracy), number_or_dash(l.macro_f1), number_or_dash(l.control_accuracy));
    else
      body += fmt::format("<td>{}</td><td>{}</td><td>{}</td>", number_or_dash(l.train_r2), number_or_dash(l.test_r2),
                          number_or_dash(l.control_r2));
    body += fmt::format("<td>{}</td>", number_or_dash(l.selectivity, "{:+.3f}"));
    if (mdl)
      body += fmt::format("<td>{}</td><td>{}</td><td>{}</td>", number_or_dash(l.codelength_bits, "{:.0f}"),
                          number_or_dash(l.compression, "{:.2f}"), number_or_dash(l.control_compression, "{:.2f}"));
    body += fmt::format("<td>{}</td><td>{}</td></tr>\n", l.iterations, l.converged ? "yes" : "no");
  }
  body += "</table>\n";
  body +=
      "<p class=\"note\">Selectivity is the test accuracy minus the accuracy of the same probe on the control "
      "task, where every word type has a fixed random label (Hewitt &amp; Liang 2019): what the representation "
      "gives beyond what the probe can memorise.</p>\n";
  body += warnings_html(r.warnings);
  return report::html_document(fmt::format("glassbox probe: {}", r.property), body, probing_css);
}

std::string tcav_html(const tcav_result& r, const std::string& target_text) {
  std::string body = "<h1>TCAV</h1>\n<div class=\"meta\">";
  body +=
      fmt::format("<span>target {}</span><span>{} inputs</span><span>{} tests (Bonferroni)</span><span>{}</span>",
                  report::html_escape(target_text), r.inputs, r.tests, report::html_escape(options_line(r.options)));
  body += "</div>\n";
  std::vector<std::size_t> layers;
  std::vector<std::string> concepts;
  for (const auto& c : r.results) {
    if (std::find(layers.begin(), layers.end(), c.layer) == layers.end()) layers.push_back(c.layer);
    if (std::find(concepts.begin(), concepts.end(), c.concept_name) == concepts.end())
      concepts.push_back(c.concept_name);
  }
  static constexpr const char* colors[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf"};
  std::vector<plot_series> series;
  plot_series random{"random CAVs (mean)", "#999", std::vector<std::optional<double>>(layers.size()), {}, true};
  for (std::size_t k = 0; k < concepts.size(); ++k) {
    plot_series s{concepts[k], colors[k % 7], std::vector<std::optional<double>>(layers.size()),
                  std::vector<bool>(layers.size(), false), false};
    for (const auto& c : r.results) {
      if (c.concept_name != concepts[k]) continue;
      const auto i = static_cast<std::size_t>(std::find(layers.begin(), layers.end(), c.layer) - layers.begin());
      s.y[i] = c.mean;
      s.filled[i] = c.significant;
      random.y[i] = c.random_mean;
    }
    series.push_back(std::move(s));
  }
  series.push_back(random);
  std::vector<std::string> xs;
  for (const auto l : layers) xs.push_back(std::to_string(l));
  body += "<h2>Mean TCAV score per layer</h2>\n" + svg_line_plot(xs, series, 0, 1, "hidden-state index (layer)");
  body +=
      "<p class=\"note\">Filled markers are significant (two-sided t-test against random CAVs, Bonferroni "
      "corrected); hollow markers are not, and have no TCAV score.</p>\n";
  body +=
      "<table>\n<tr><th class=\"l\">concept</th><th>layer</th><th>TCAV score</th><th>mean (sd)</th><th>random mean "
      "(sd)</th><th>p</th><th>corrected p</th><th>CAV accuracy</th></tr>\n";
  for (const auto& c : r.results)
    body += fmt::format(
        "<tr><td class=\"l\">{}</td><td>{}</td><td{}>{}</td><td>{:.3f} ({:.3f})</td><td>{:.3f} ({:.3f})</td>"
        "<td>{:.3g}</td><td>{:.3g}</td><td>{:.3f}</td></tr>\n",
        report::html_escape(c.concept_name), c.layer, c.score ? "" : " class=\"ns\"",
        c.score ? fmt::format("<b>{:.3f}</b>", *c.score) : std::string("not significant"), c.mean, c.standard_deviation,
        c.random_mean, c.random_standard_deviation, c.p_value, c.corrected_p_value, c.cav_accuracy);
  body += "</table>\n" + warnings_html(r.warnings);
  return report::html_document("glassbox tcav", body, probing_css);
}

void print_warnings(const std::vector<std::string>& warnings) {
  for (const auto& w : warnings) fmt::print(stderr, "glassbox: warning: {}\n", w);
}

std::string probe_table(const probe_result& r, const std::string& source) {
  const bool classes = r.kind == label_kind::classes;
  std::string out = fmt::format("probe of {} | property {} | {} | {} probe\n", source, r.property,
                                classes ? class_list(r.class_names, r.classes) : std::string("real values"), r.probe);
  out += fmt::format("rows: train {}, dev {}, test {} ({}){}\n", r.train_rows, r.dev_rows, r.test_rows,
                     r.split_from_set ? "the file's split" : "grouped seeded split",
                     r.majority_accuracy ? fmt::format(" | majority class {:.3f}", *r.majority_accuracy) : "");
  out += fmt::format("options: {}\n", options_line(r.options));
  const bool mdl =
      std::any_of(r.layers.begin(), r.layers.end(), [](const auto& l) { return l.compression.has_value(); });
  out += classes ? "layer  train acc  test acc  macro-F1  control acc  selectivity"
                 : "layer  train R^2  test R^2  control R^2  selectivity";
  if (mdl) out += "  codelength bits  compression  control compr.";
  out += "  iterations  converged\n";
  for (const auto& l : r.layers) {
    if (classes)
      out += fmt::format("{:>5}  {:>9}  {:>8}  {:>8}  {:>11}  {:>11}", l.layer, number_or_dash(l.train_accuracy),
                         number_or_dash(l.test_accuracy), number_or_dash(l.macro_f1),
                         number_or_dash(l.control_accuracy), number_or_dash(l.selectivity, "{:+.3f}"));
    else
      out += fmt::format("{:>5}  {:>9}  {:>8}  {:>11}  {:>11}", l.layer, number_or_dash(l.train_r2),
                         number_or_dash(l.test_r2), number_or_dash(l.control_r2),
                         number_or_dash(l.selectivity, "{:+.3f}"));
    if (mdl)
      out += fmt::format("  {:>15}  {:>11}  {:>15}", number_or_dash(l.codelength_bits, "{:.1f}"),
                         number_or_dash(l.compression, "{:.2f}"), number_or_dash(l.control_compression, "{:.2f}"));
    out += fmt::format("  {:>10}  {:>9}\n", l.iterations, l.converged ? "yes" : "no");
  }
  return out;
}

/// A temporary file removed when it goes out of scope.
struct temporary_file {
  fs::path path;
  ~temporary_file() {
    std::error_code ignored;
    if (!path.empty()) fs::remove(path, ignored);
  }
};

}  // namespace

// ---------------------------------------------------------------------------------------------
// glassbox activations

runner add_activations_command(CLI::App& app) {
  struct state {
    std::string model, out;
    label_source_options labels;
    bound_fields<activation_options> collection{collection_fields(), {}, {}, {}};
    bool split = false;
    std::uint64_t seed = 0;
    std::size_t threads = 0;
  };
  auto s = std::make_shared<state>();
  auto* cmd = app.add_subcommand("activations",
                                 "Collect hidden states per layer over a data file, with a property's labels, into an "
                                 "activation file (safetensors; docs/probing.md)");
  cmd->add_option("--model", s->model, "model file or directory (default: the bundled model)");
  s->labels.add_to(*cmd);
  s->labels.data->required();
  s->labels.property->required();
  s->collection.fields.insert(s->collection.fields.begin(),
                              layers_field<activation_options>("layers", &activation_options::layers,
                                                               "hidden-state indices to keep: all or a list such as "
                                                               "0,2,4 (0 = embeddings output)",
                                                               "all", "activation_options::layers"));
  s->collection.add_to(*cmd, collection_info());
  cmd->add_flag("--split", s->split, "also write a grouped seeded 80/10/10 split (tensor `split`) with --seed");
  cmd->add_option("--seed", s->seed, "--split: the seed of the split")->capture_default_str();
  cmd->add_option("--threads", s->threads, "the thread budget: cores kept busy in all (0 = all cores)")
      ->capture_default_str();
  cmd->add_option("--out", s->out, "the activation file to write (.safetensors)")->required();
  return [s] {
    const pass_threads_scope threads(s->threads);
    check_output_path(s->out, "--out");
    if (s->out == "-") detail::fail("--out must be a file, got '-'");
    activation_options o;
    s->collection.apply(o);
    const auto m = load_model(s->model);
    const auto data = read_labelled_inputs(s->labels.source, m, o.pooling);
    o.model_name = m.path.string();
    o.execution.threads = s->threads;
    o.execution.on_progress = progress_bar();
    io::activation_file_writer writer(s->out);
    file_sink sink{writer, s->split ? std::optional<std::uint64_t>(s->seed) : std::nullopt};
    const activation_set h =
        collect_activations(m.model, std::span<const token_sequence>(data.inputs), data.labels, o, sink);
    const double mib = static_cast<double>(h.rows() * h.layers.size() * h.width * 4) / (1 << 20);
    fmt::print("wrote {} rows ({} of {} inputs, {} pooling) x layers {} x {} floats ({:.1f} MiB) to {}\n", h.rows(),
               s->labels.source.property, data.inputs.size(), to_string(h.pooling), fmt::join(h.layers, ","), h.width,
               mib, s->out);
    fmt::print("labels: {}{}\n",
               h.kind == label_kind::classes ? class_list(h.class_names, h.class_count()) : std::string("real values"),
               s->split ? fmt::format(" | split: grouped 80/10/10, seed {}", s->seed) : "");
  };
}

// ---------------------------------------------------------------------------------------------
// glassbox probe

runner add_probe_command(CLI::App& app) {
  struct state {
    std::string model, activations, save_probe, json, html;
    label_source_options labels;
    bound_fields<activation_options> collection{collection_fields(), {}, {}, {}};
    bound_fields<probe_options> probe{probe_fields(), {}, {}, {}};
    std::size_t threads = 0;
    CLI::Option* model_option = nullptr;
  };
  auto s = std::make_shared<state>();
  auto* cmd = app.add_subcommand("probe",
                                 "Train a probe per layer on an activation file (or on a data file's activations): "
                                 "accuracy, macro-F1, control task and selectivity, MDL (docs/probing.md)");
  cmd->add_option("--activations", s->activations, "the activation file (glassbox activations, or any tool)");
  s->model_option =
      cmd->add_option("--model", s->model, "--data: model file or directory (default: the bundled model)");
  s->labels.add_to(*cmd);
  s->probe.add_to(*cmd, {"probe_layers",
                         "probe",
                         "probing",
                         "ActivationModel",
                         "a probe per layer with control task, selectivity and MDL (Hewitt & Liang 2019; Voita & Titov "
                         "2020)",
                         {}});
  s->collection.add_to(*cmd, collection_info());
  cmd->add_option("--threads", s->threads, "the thread budget: cores kept busy in all (0 = all cores)")
      ->capture_default_str();
  cmd->add_option("--save-probe", s->save_probe,
                  "write the linear probes: `weight` [classes or 1, d] and `bias` (scikit-learn's coef_, intercept_; "
                  "layer.K.weight with several layers)");
  cmd->add_option("--json", s->json, "write a glassbox.probe document to this file ('-' = stdout)");
  cmd->add_option("--html", s->html, "write a self-contained HTML view (SVG plot per layer) to this file");
  return [s] {
    const pass_threads_scope threads(s->threads);
    const bool from_file = !s->activations.empty();
    const bool from_data = s->labels.data->count() > 0;
    if (from_file == from_data) detail::fail("give either --activations FILE or --data FILE --property NAME");
    if (from_data && s->labels.property->count() == 0) detail::fail("--data needs --property (the label to probe)");
    if (from_file) {
      for (auto* o : {s->model_option, s->labels.property, s->labels.where, s->labels.real})
        if (o->count() > 0) detail::fail("{} applies with --data (an activation file holds its labels)", o->get_name());
      for (const char* name : {"pool", "memory-limit"})
        if (s->collection.given(name))
          detail::fail("--{} applies with --data (an activation file holds its rows)", name);
    }
    check_output_path(s->json, "--json");
    check_output_path(s->html, "--html");
    check_output_path(s->save_probe, "--save-probe");
    if (s->save_probe == "-") detail::fail("--save-probe must be a file, got '-'");
    probe_options po;
    s->probe.apply(po);
    po.execution.threads = s->threads;
    po.execution.on_progress = progress_bar();
    if (!s->save_probe.empty() && po.probe != probe_kind::linear)
      detail::fail("--save-probe saves linear probes, got --probe {}", dashed(to_string(po.probe)));

    probe_result result;
    std::string source;
    if (from_file) {
      const io::activation_file_reader reader(s->activations);
      source = s->activations;
      result = probe_layers(
          reader.header(), [&reader](std::size_t k) { return reader.read_layer(k); }, po);
    } else {
      activation_options ao;
      s->collection.apply(ao);
      ao.layers = po.layers;
      po.layers.clear();
      const auto m = load_model(s->model);
      const auto data = read_labelled_inputs(s->labels.source, m, ao.pooling);
      ao.model_name = m.path.string();
      ao.execution = po.execution;
      source = fmt::format("{} ({} inputs) on {}", s->labels.source.file, data.inputs.size(), m.path.string());
      const std::size_t layers = ao.layers.empty() ? m.model.n_layer() + 1 : ao.layers.size();
      const std::size_t bytes = data.rows * layers * m.model.width() * sizeof(float);
      const std::span<const token_sequence> inputs(data.inputs);
      if (bytes <= ao.memory_limit) {
        const activation_set set = collect_activations(m.model, inputs, data.labels, ao);
        result = probe_layers(set, po);
      } else {
        // Above the memory bound: stream to a temporary activation file, then probe it one layer at a time.
        temporary_file tmp{fs::temp_directory_path() / fmt::format("glassbox-probe-{}.safetensors", ::getpid())};
        {
          io::activation_file_writer writer(tmp.path);
          collect_activations(m.model, inputs, data.labels, ao, writer);
        }
        const io::activation_file_reader reader(tmp.path);
        result = probe_layers(
            reader.header(), [&reader](std::size_t k) { return reader.read_layer(k); }, po);
      }
    }
    print_warnings(result.warnings);
    if (s->json != "-") fmt::print("{}", probe_table(result, source));
    if (!s->json.empty()) write_json(s->json, probe_json(result, source));
    if (!s->html.empty()) write_text(s->html, probe_html(result, source));
    if (!s->save_probe.empty()) {
      std::vector<io::saved_probe> probes;
      for (const auto& l : result.layers) probes.push_back({l.layer, l.weights});
      io::write_probe_file(
          s->save_probe, probes,
          {{"property", result.property}, {"probe", result.probe}, {"class_names", json(result.class_names).dump()}});
    }
  };
}

// ---------------------------------------------------------------------------------------------
// glassbox tcav

runner add_tcav_command(CLI::App& app) {
  struct state {
    std::string model, random, data, target, target_kind = "log-probability", json, html;
    std::vector<std::string> concepts;
    std::ptrdiff_t position = -1;
    bound_fields<tcav_options> options{tcav_fields(), {}, {}, {}};
    std::size_t threads = 0;
  };
  auto s = std::make_shared<state>();
  auto* cmd = app.add_subcommand("tcav",
                                 "Does the output use a concept? TCAV scores (Kim et al. 2018) with significance "
                                 "against random CAVs, Bonferroni corrected (docs/probing.md)");
  cmd->add_option("--model", s->model, "model file or directory (default: the bundled model)");
  cmd->add_option("--concept", s->concepts,
                  "a concept's examples: FILE.jsonl or NAME=FILE.jsonl (the name defaults to the file's stem); "
                  "repeat for several concepts")
      ->required();
  cmd->add_option("--random", s->random, "random examples (JSON lines), from which the random sets are drawn")
      ->required();
  cmd->add_option("--data", s->data, "the inputs whose sensitivities are scored (JSON lines)")->required();
  cmd->add_option("--target", s->target, "the token whose score is differentiated (a word or an id)")->required();
  cmd->add_option("--target-kind", s->target_kind, "the differentiated scalar: logit, probability or log-probability")
      ->capture_default_str();
  cmd->add_option("--position", s->position, "the output row of the target (negative counts from the end)")
      ->capture_default_str();
  s->options.add_to(*cmd, {"tcav",
                           "tcav",
                           "probing",
                           "InterventionModel",
                           "TCAV scores of concepts with a t-test against random CAVs (Kim et al. 2018)",
                           {}});
  cmd->add_option("--threads", s->threads, "the thread budget: cores kept busy in all (0 = all cores)")
      ->capture_default_str();
  cmd->add_option("--json", s->json, "write a glassbox.tcav document to this file ('-' = stdout)");
  cmd->add_option("--html", s->html, "write a self-contained HTML view to this file");
  return [s] {
    const pass_threads_scope threads(s->threads);
    check_output_path(s->json, "--json");
    check_output_path(s->html, "--html");
    tcav_options o;
    s->options.apply(o);
    if (o.layers.empty()) detail::fail("--layer must name at least one hidden-state index, e.g. --layer 3");
    o.execution.threads = s->threads;
    o.execution.on_progress = progress_bar();
    const auto m = load_model(s->model);
    for (const auto k : o.layers)
      if (k > m.model.n_layer())
        detail::fail("--layer must be in [0, {}] (0 = the embeddings output, {} = the last block's output), got {}",
                     m.model.n_layer(), m.model.n_layer(), k);
    const auto inputs_of = [&](const std::string& file) {
      std::vector<token_sequence> out;
      for (const auto& line : read_data_lines(file, m)) {
        line.check();
        out.push_back(line.tokens);
      }
      return out;
    };
    std::vector<tcav_concept> concepts;
    for (const auto& c : s->concepts) {
      const auto eq = c.find('=');
      const std::string file = eq == std::string::npos ? c : c.substr(eq + 1);
      std::string name = eq == std::string::npos ? fs::path(file).stem().string() : c.substr(0, eq);
      if (name.empty()) detail::fail("--concept: the name of '{}' is empty (NAME=FILE)", c);
      for (const auto& other : concepts)
        if (other.name == name) detail::fail("--concept: two concepts are named '{}'", name);
      concepts.push_back({name, inputs_of(file)});
    }
    const auto random = inputs_of(s->random);
    const auto inputs = inputs_of(s->data);
    const token_id token = resolve_token(m, s->target, "--target");
    const std::vector<std::string> kinds{"logit", "probability", "log-probability"};
    const std::size_t kind = parse::choice("target-kind", s->target_kind, kinds);
    const target t = kind == 0   ? target::logit(token, s->position)
                     : kind == 1 ? target::probability(token, s->position)
                                 : target::log_probability(token, s->position);
    const std::string target_text = fmt::format("{} ('{}')", t.describe(), m.token_strings(std::vector{token})[0]);
    const tcav_result r = tcav(m.model, std::span<const tcav_concept>(concepts),
                               std::span<const token_sequence>(random), std::span<const token_sequence>(inputs), t, o);
    print_warnings(r.warnings);
    if (s->json != "-") {
      fmt::print("tcav | target {} | {} inputs | {} concepts x {} layers (Bonferroni factor {})\n", target_text,
                 r.inputs, concepts.size(), o.layers.size(), r.tests);
      fmt::print("options: {}\n", options_line(r.options));
      std::size_t width = 7;
      for (const auto& c : concepts) width = std::max(width, c.name.size());
      fmt::print("{:<{}}  layer  TCAV score       mean (sd)        random mean (sd)  corrected p  CAV accuracy\n",
                 "concept", width);
      for (const auto& c : r.results)
        fmt::print(
            "{:<{}}  {:>5}  {:<15}  {:.3f} ({:.3f})    {:.3f} ({:.3f})     {:>11.3g}  {:>12.3f}\n", c.concept_name,
            width, c.layer, c.score ? fmt::format("{:.3f}", *c.score) : std::string("not significant"), c.mean,
            c.standard_deviation, c.random_mean, c.random_standard_deviation, c.corrected_p_value, c.cav_accuracy);
    }
    if (!s->json.empty()) write_json(s->json, tcav_json(r, target_text));
    if (!s->html.empty()) write_text(s->html, tcav_html(r, target_text));
  };
}

}  // namespace glassbox::cli

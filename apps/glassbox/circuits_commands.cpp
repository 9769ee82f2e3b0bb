// glassbox patch, dla and neurons (docs/cli.md, "Circuits"; docs/json-schema.md): activation and
// attribution patching, direct logit attribution and neuron analysis of the circuits module on the
// command line. The JSON documents carry the result structs' fields under the names
// (glassbox.patching, glassbox.dla, glassbox.neurons, version 1).
#include "circuits_commands.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <map>
#include <memory>
#include <numeric>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "batch_files.hpp"
#include "glassbox/circuits.hpp"
#include "glassbox/datasets/reviews.hpp"
#include "glassbox/report/attention_html.hpp"
#include "glassbox/report/color.hpp"
#include "glassbox/report/html.hpp"
#include "glassbox/report/json.hpp"
#include "registry.hpp"

namespace glassbox::cli {

namespace {

using report::json;

// ---------------------------------------------------------------------------------------------
// Shared parts: the metric, the inputs, the views.

/// A metric named on the command line: "logit-diff:A,B" (logit(A) - logit(B)) or "log-prob:A", read at the
/// last position.
struct circuit_metric {
  std::string spec;             ///< as given, e.g. "logit-diff:good,bad"
  target metric = target::logit(0);
  std::vector<token_id> tokens;  ///< A (and B)
};

circuit_metric parse_metric(const loaded_model& m, const std::string& text) {
  const auto colon = text.find(':');
  const std::string kind = colon == std::string::npos ? text : text.substr(0, colon);
  const std::string rest = colon == std::string::npos ? std::string() : text.substr(colon + 1);
  circuit_metric out;
  out.spec = text;
  if (kind == "logit-diff") {
    const auto items = split_list(rest);
    if (items.size() != 2 || items[0].empty() || items[1].empty())
      detail::fail("--metric must be logit-diff:A,B or log-prob:A (A, B words or token ids), got '{}'", text);
    const token_id a = resolve_token(m, items[0], "--metric"), b = resolve_token(m, items[1], "--metric");
    if (a == b) detail::fail("--metric: logit-diff needs two different tokens, got '{}' twice", items[0]);
    out.metric = target::contrast(a, b, target_kind::logit, -1);
    out.tokens = {a, b};
  } else if (kind == "log-prob") {
    const auto items = split_list(rest);
    if (items.size() != 1 || items[0].empty())
      detail::fail("--metric must be logit-diff:A,B or log-prob:A (A, B words or token ids), got '{}'", text);
    const token_id a = resolve_token(m, items[0], "--metric");
    out.metric = target::log_probability(a, -1);
    out.tokens = {a};
  } else {
    detail::fail("--metric must be logit-diff:A,B or log-prob:A (A, B words or token ids), got '{}'", text);
  }
  return out;
}

/// The tokens of a text given to `option`, with the option named in any error.
token_sequence resolve_text(const loaded_model& m, const std::string& text, std::string_view option) {
  input_options in;
  in.text = text;
  try {
    return in.resolve(m);
  } catch (const glassbox::error& e) {
    detail::fail("{}: {}", option, e.what());
  }
}

json token_json(const loaded_model& m, token_id id) {
  return {{"id", id}, {"token", m.token_strings(std::vector<token_id>{id})[0]}};
}

json matrix_json(const xt::xtensor<double, 2>& v) {
  json rows = json::array();
  for (std::size_t i = 0; i < v.shape(0); ++i) {
    json row = json::array();
    for (std::size_t j = 0; j < v.shape(1); ++j) {
      const double x = v(i, j);
      row.push_back(std::isfinite(x) ? json(x) : json(nullptr));
    }
    rows.push_back(std::move(row));
  }
  return rows;
}

/// Whether stdout is a terminal (colours in the tables).
bool stdout_is_terminal() { return isatty(fileno(stdout)) != 0; }

/// `text` padded to `width` columns with a diverging background for `value` when `color`.
std::string cell(const std::string& text, double value, double scale, bool color) {
  if (!color || !std::isfinite(value)) return text;
  const report::rgb c = report::diverging_color(value, scale);
  const int fg = report::needs_light_text(c) ? 255 : 0;
  return fmt::format("\x1b[48;2;{};{};{}m\x1b[38;2;{};{};{}m{}\x1b[0m", c.r, c.g, c.b, fg, fg, fg, text);
}

/// Display width of UTF-8 text (code points).
std::size_t text_width(std::string_view s) {
  std::size_t n = 0;
  for (const char ch : s) n += (static_cast<unsigned char>(ch) & 0xC0) != 0x80 ? 1 : 0;
  return n;
}

std::string pad_left(const std::string& s, std::size_t width) {
  const std::size_t w = text_width(s);
  if (w >= width) return s;
  std::string out(width - w, ' ');
  out.append(s);
  return out;
}

/// An SVG heatmap with labelled axes, diverging around 0, its value on hover.
std::string svg_matrix(const xt::xtensor<double, 2>& v, const std::vector<std::string>& row_labels,
                       const std::vector<std::string>& col_labels) {
  const std::size_t rows = v.shape(0), cols = v.shape(1);
  const auto pooled = report::detail::pool(
      rows, cols, [&](std::size_t i, std::size_t j) { return v(i, j); }, std::max<std::size_t>({rows, cols, 1}));
  report::detail::heatmap_style st;
  st.diverging = true;
  st.max_px = std::clamp(34.0 * static_cast<double>(std::max(rows, cols)), 200.0, 1000.0);
  st.numbers = std::max(rows, cols) <= 24;
  st.title_cells = 20000;
  st.css_class = "hm";
  return report::detail::svg_heatmap(pooled, row_labels, col_labels, st);
}

constexpr std::string_view circuits_css =
    "svg.hm text{fill:#333}.scroll{overflow-x:auto}mark{background:#ffe08a;padding:0 .15em}"
    "td.ctx{text-align:left;font-family:ui-monospace,monospace;font-size:.85em}";

std::string meta(const std::string& text) { return "<span>" + report::html_escape(text) + "</span>"; }

// ---------------------------------------------------------------------------------------------
// glassbox patch

/// The labels of a sweep's rows and columns.
struct sweep_axes {
  std::string row_name = "layer", column_name;
  std::vector<std::string> row_labels, column_labels;
  std::vector<std::size_t> row_indices, column_indices;
};

sweep_axes axes_of(const patching_result& r, const std::vector<std::string>& tokens) {
  sweep_axes a;
  a.column_name = r.column_axis;
  for (const auto l : r.layers) {
    a.row_labels.push_back(fmt::format("L{}", l));
    a.row_indices.push_back(l);
  }
  for (std::size_t c = 0; c < r.values.shape(1); ++c) {
    a.column_indices.push_back(c);
    if (r.column_axis == "position")
      a.column_labels.push_back(c < tokens.size() ? tokens[c] : std::to_string(c));
    else
      a.column_labels.push_back(fmt::format("{}{}", r.column_axis == "head" ? "H" : "N", c));
  }
  return a;
}

/// Pearson correlation and largest |difference| of two matrices over the entries finite in both.
struct map_agreement {
  double pearson = std::numeric_limits<double>::quiet_NaN();
  double max_abs_difference = std::numeric_limits<double>::quiet_NaN();
  std::size_t entries = 0;
};

map_agreement agreement_of(const xt::xtensor<double, 2>& a, const xt::xtensor<double, 2>& b) {
  map_agreement g;
  std::vector<std::pair<double, double>> xy;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (std::isfinite(a.data()[i]) && std::isfinite(b.data()[i])) xy.emplace_back(a.data()[i], b.data()[i]);
  g.entries = xy.size();
  if (xy.empty()) return g;
  double mx = 0, my = 0, worst = 0;
  for (const auto& [x, y] : xy) {
    mx += x;
    my += y;
    worst = std::max(worst, std::abs(x - y));
  }
  g.max_abs_difference = worst;
  mx /= static_cast<double>(xy.size());
  my /= static_cast<double>(xy.size());
  double sxy = 0, sxx = 0, syy = 0;
  for (const auto& [x, y] : xy) {
    sxy += (x - mx) * (y - my);
    sxx += (x - mx) * (x - mx);
    syy += (y - my) * (y - my);
  }
  if (sxx > 0 && syy > 0) g.pearson = sxy / std::sqrt(sxx * syy);
  return g;
}

struct patch_run {
  patching_result result;                  ///< the --kind sweep
  std::optional<patching_result> other;    ///< --compare: the other kind's sweep
  std::optional<map_agreement> restored_agreement, value_agreement;
};

json axis_json(const std::string& name, const std::vector<std::string>& labels, const std::vector<std::size_t>& idx) {
  return {{"name", name}, {"labels", labels}, {"indices", idx}};
}

json patch_json(const patch_run& run, const circuit_metric& metric, const loaded_model& m, token_span clean,
                token_span corrupt) {
  const auto& r = run.result;
  const auto tokens = m.token_strings(clean);
  const auto axes = axes_of(r, tokens);
  json j;
  j["schema"] = "glassbox.patching";
  j["version"] = 1;
  j["method"] = r.method;
  j["level"] = std::string(to_string(r.level));
  j["metric"] = metric.spec;
  j["metric_description"] = r.metric;
  j["clean_tokens"] = tokens;
  j["clean_token_ids"] = std::vector<token_id>(clean.begin(), clean.end());
  j["corrupt_tokens"] = m.token_strings(corrupt);
  j["corrupt_token_ids"] = std::vector<token_id>(corrupt.begin(), corrupt.end());
  j["clean_value"] = number_or_null(r.clean_value);
  j["corrupt_value"] = number_or_null(r.corrupt_value);
  j["axes"] = {{"rows", axis_json(axes.row_name, axes.row_labels, axes.row_indices)},
               {"columns", axis_json(axes.column_name, axes.column_labels, axes.column_indices)}};
  j["values"] = matrix_json(r.values);
  j["restored"] = matrix_json(r.restored);
  j["model_calls"] = r.model_calls;
  if (run.other) {
    json c;
    c["method"] = run.other->method;
    c["values"] = matrix_json(run.other->values);
    c["restored"] = matrix_json(run.other->restored);
    c["model_calls"] = run.other->model_calls;
    c["pearson_restored"] = number_or_null(run.restored_agreement->pearson);
    c["max_abs_difference_restored"] = number_or_null(run.restored_agreement->max_abs_difference);
    c["max_abs_difference_values"] = number_or_null(run.value_agreement->max_abs_difference);
    c["entries"] = run.restored_agreement->entries;
    j["comparison"] = std::move(c);
  }
  return j;
}

/// The restored matrix as a table (rows layers), or for neurons the `top` entries by |restored|.
std::string restored_table(const patching_result& r, const sweep_axes& axes, std::size_t top, bool color) {
  std::string out;
  const double scale = report::max_abs(std::span<const double>(r.restored.data(), r.restored.size()));
  if (r.column_axis == "neuron") {
    std::vector<std::size_t> order(r.restored.size());
    std::iota(order.begin(), order.end(), std::size_t{0});
    const auto key = [&](std::size_t i) {
      const double v = r.restored.data()[i];
      return std::isfinite(v) ? std::abs(v) : -1.0;
    };
    std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return key(a) > key(b); });
    const std::size_t n = std::min(top, order.size()), cols = r.restored.shape(1);
    out += fmt::format("top {} of {} neurons by |restored|:\n{:>6}  {:>8}  {:>10}  {:>10}\n", n, order.size(), "layer",
                       "neuron", "restored", "value");
    for (std::size_t k = 0; k < n; ++k) {
      const std::size_t i = order[k] / cols, c = order[k] % cols;
      out += fmt::format("{:>6}  {:>8}  {}  {:>+10.4f}\n", axes.row_labels[i], c,
                         cell(fmt::format("{:>+10.4f}", r.restored(i, c)), r.restored(i, c), scale, color),
                         r.values(i, c));
    }
    return out;
  }
  std::size_t width = 7;
  for (const auto& l : axes.column_labels) width = std::max(width, std::min<std::size_t>(text_width(l) + 1, 14));
  out += fmt::format("restored fraction (rows: layers, columns: {}s):\n{:>6}", r.column_axis, "");
  for (const auto& l : axes.column_labels) out.append(" ").append(pad_left(l, width));
  out += "\n";
  for (std::size_t i = 0; i < r.restored.shape(0); ++i) {
    out += fmt::format("{:>6}", axes.row_labels[i]);
    for (std::size_t c = 0; c < r.restored.shape(1); ++c) {
      const double v = r.restored(i, c);
      out.append(" ").append(
          cell(pad_left(std::isfinite(v) ? fmt::format("{:+.3f}", v) : std::string("-"), width), v, scale, color));
    }
    out += "\n";
  }
  return out;
}

std::string patch_text(const patch_run& run, const circuit_metric& metric, const loaded_model& m, token_span clean,
                       token_span corrupt, std::size_t top) {
  const auto& r = run.result;
  const auto axes = axes_of(r, m.token_strings(clean));
  std::string out =
      fmt::format("{} | level {} | metric {} ({})\n", r.method, to_string(r.level), metric.spec, r.metric);
  out += fmt::format("clean   {:<40} metric {:+.4f}\ncorrupt {:<40} metric {:+.4f}\n",
                     fmt::format("\"{}\"", fmt::join(m.token_strings(clean), " ")), r.clean_value,
                     fmt::format("\"{}\"", fmt::join(m.token_strings(corrupt), " ")), r.corrupt_value);
  if (r.clean_value == r.corrupt_value)
    out += "the clean and corrupted metrics are equal: the restored fraction is undefined (null)\n";
  out += restored_table(r, axes, top, stdout_is_terminal());
  out += fmt::format("{} model calls (restored = (value - corrupt) / (clean - corrupt))\n", r.model_calls);
  if (run.other)
    out += fmt::format(
        "{} vs {}: Pearson r of restored {:.4f}, max |difference| {:.4f} (restored), {:.4f} (metric), over {} "
        "entries; {} model calls\n",
        run.result.method, run.other->method, run.restored_agreement->pearson,
        run.restored_agreement->max_abs_difference, run.value_agreement->max_abs_difference,
        run.restored_agreement->entries, run.other->model_calls);
  return out;
}

std::string patch_html(const patch_run& run, const circuit_metric& metric, const loaded_model& m, token_span clean,
                       token_span corrupt) {
  const auto& r = run.result;
  const auto axes = axes_of(r, m.token_strings(clean, token_style::html));
  std::string body = fmt::format("<h1>{} ({})</h1>\n<div class=\"meta\">", report::html_escape(r.method),
                                 report::html_escape(std::string(to_string(r.level))));
  body += meta(fmt::format("metric {} ({})", metric.spec, r.metric));
  body += meta(
      fmt::format("clean \"{}\": {:+.4f}", fmt::join(m.token_strings(clean, token_style::html), " "), r.clean_value));
  body += meta(fmt::format("corrupt \"{}\": {:+.4f}", fmt::join(m.token_strings(corrupt, token_style::html), " "),
                           r.corrupt_value));
  body += meta(fmt::format("{} model calls", r.model_calls));
  body += "</div>\n";
  const auto section = [&](const patching_result& x, const std::string& title) {
    std::string s = fmt::format("<h2>{}: restored fraction (rows: {}, columns: {}s)</h2>\n",
                                report::html_escape(title), axes.row_name, x.column_axis);
    s += "<div class=\"scroll\">" + svg_matrix(x.restored, axes.row_labels, axes.column_labels) + "</div>\n";
    s += report::diverging_legend(report::max_abs(std::span<const double>(x.restored.data(), x.restored.size())));
    return s;
  };
  body += section(r, r.method);
  if (run.other) {
    body += section(*run.other, run.other->method);
    body += fmt::format(
        "<p>Agreement over {} entries: Pearson r of the restored fractions {:.4f}; largest |difference| {:.4f} "
        "(restored), {:.4f} (metric).</p>\n",
        run.restored_agreement->entries, run.restored_agreement->pearson, run.restored_agreement->max_abs_difference,
        run.value_agreement->max_abs_difference);
  }
  body +=
      "<p class=\"note\">restored = (metric after the patch - corrupt) / (clean - corrupt): 1 where the patch "
      "restores the clean metric, 0 where it changes nothing. Hover a cell for its value.</p>\n";
  return report::html_document(fmt::format("glassbox patch: {}", to_string(r.level)), body, circuits_css);
}

}  // namespace

runner add_patch_command(CLI::App& app) {
  struct state {
    std::string model, clean, corrupt, metric, level = "resid", kind = "activation", json, html;
    std::size_t layer = 0;
    CLI::Option* layer_option = nullptr;
    bool compare = false;
    std::size_t top = 10, threads = 0;
  };
  auto s = std::make_shared<state>();
  auto* cmd = app.add_subcommand("patch",
                                 "Activation or attribution patching: which layer, position, head or neuron restores "
                                 "the clean metric in the corrupted run (docs/cli.md, \"Circuits\")");
  cmd->add_option("--model", s->model, "model file or directory (default: the bundled model)");
  cmd->add_option("--clean", s->clean, "the clean input text")->required();
  cmd->add_option("--corrupt", s->corrupt, "the corrupted input text, with as many tokens as --clean")->required();
  cmd->add_option("--metric", s->metric,
                  "logit-diff:A,B (logit of A minus B) or log-prob:A, at the last position; A, B words or ids")
      ->required();
  cmd->add_option("--level", s->level, "what each patch replaces: resid, head, mlp or neuron")->capture_default_str();
  cmd->add_option("--kind", s->kind, "activation (one pass per patch) or attribution (3 passes, first order)")
      ->capture_default_str();
  s->layer_option = cmd->add_option("--layer", s->layer, "sweep this block only (default: every block)");
  cmd->add_flag("--compare", s->compare,
                "also run the other kind and report the agreement (Pearson r, largest difference)");
  cmd->add_option("--top", s->top, "--level neuron: entries printed")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--threads", s->threads, "the thread budget: cores kept busy in all (0 = all cores)")
      ->capture_default_str();
  cmd->add_option("--json", s->json, "write a glassbox.patching document to this file ('-' = stdout)");
  cmd->add_option("--html", s->html, "write the heatmap (self-contained HTML) to this file");
  return [s] {
    const pass_threads_scope threads(s->threads);
    check_output_path(s->json, "--json");
    check_output_path(s->html, "--html");
    const std::vector<std::string> kinds{"activation", "attribution"};
    const bool attribution = parse::choice("kind", s->kind, kinds) == 1;
    patching_options o;
    try {
      o.level = parse_patch_level(s->level);
    } catch (const glassbox::error&) {
      detail::fail("--level must be resid, head, mlp or neuron, got '{}'", s->level);
    }
    const auto m = load_model(s->model);
    const circuit_metric metric = parse_metric(m, s->metric);
    const token_sequence clean = resolve_text(m, s->clean, "--clean");
    const token_sequence corrupt = resolve_text(m, s->corrupt, "--corrupt");
    if (clean.size() != corrupt.size())
      detail::fail(
          "--clean and --corrupt must have the same number of tokens (positions are patched one to one), got {} and "
          "{}",
          clean.size(), corrupt.size());
    const std::size_t L = m.model.layout().layers;
    if (s->layer_option->count() > 0) {
      if (s->layer >= L) detail::fail("--layer must be a block 0..{}, got {}", L - 1, s->layer);
      o.layer = s->layer;
    }
    o.exec.threads = s->threads;
    o.exec.on_progress = progress_bar();
    const auto run_kind = [&](bool attr) {
      return attr ? attribution_patching(m.model, clean, corrupt, metric.metric, o)
                  : activation_patching(m.model, clean, corrupt, metric.metric, o);
    };
    patch_run run{run_kind(attribution), std::nullopt, std::nullopt, std::nullopt};
    if (s->compare) {
      run.other = run_kind(!attribution);
      run.restored_agreement = agreement_of(run.result.restored, run.other->restored);
      run.value_agreement = agreement_of(run.result.values, run.other->values);
    }
    if (s->json != "-") fmt::print("{}", patch_text(run, metric, m, clean, corrupt, s->top));
    if (!s->json.empty()) write_json(s->json, patch_json(run, metric, m, clean, corrupt));
    if (!s->html.empty()) write_text(s->html, patch_html(run, metric, m, clean, corrupt));
  };
}

// ---------------------------------------------------------------------------------------------
// glassbox dla

namespace {

/// The `k` neurons with the largest |share|, largest first: (layer, neuron, share).
struct neuron_share {
  std::size_t layer = 0, neuron = 0;
  double contribution = 0;
};

std::vector<neuron_share> top_neuron_shares(const dla_result& r, std::size_t k) {
  std::vector<neuron_share> all;
  if (r.neurons.dimension() != 2) return all;
  for (std::size_t l = 0; l < r.neurons.shape(0); ++l)
    for (std::size_t n = 0; n < r.neurons.shape(1); ++n) all.push_back({l, n, r.neurons(l, n)});
  std::stable_sort(all.begin(), all.end(), [](const neuron_share& a, const neuron_share& b) {
    return std::abs(a.contribution) > std::abs(b.contribution);
  });
  if (all.size() > k) all.resize(k);
  return all;
}

std::string dla_value_name(const dla_result& r, const loaded_model& m, token_style style = token_style::terminal) {
  const auto name = [&](token_id id) { return m.token_strings(std::vector<token_id>{id}, style)[0]; };
  return r.contrast ? fmt::format("logit({}) - logit({})", name(r.token), name(*r.contrast))
                    : fmt::format("logit({})", name(r.token));
}

json dla_json(const dla_result& r, const loaded_model& m, token_span tokens, std::size_t top_neurons) {
  json j;
  j["schema"] = "glassbox.dla";
  j["version"] = 1;
  j["method"] = "direct_logit_attribution";
  j["tokens"] = m.token_strings(tokens);
  j["token_ids"] = std::vector<token_id>(tokens.begin(), tokens.end());
  j["target"] = token_json(m, r.token);
  j["contrast"] = r.contrast ? token_json(m, *r.contrast) : json(nullptr);
  j["position"] = r.position;
  json comps = json::array();
  for (const auto& c : r.components)
    comps.push_back({{"name", c.name}, {"kind", c.kind}, {"layer", c.layer}, {"index", c.index},
                     {"contribution", number_or_null(c.contribution)}});
  j["components"] = std::move(comps);
  j["total"] = number_or_null(r.total);
  j["logit_diff"] = number_or_null(r.logit_diff);
  j["final_scale"] = number_or_null(r.final_scale);
  j["model_calls"] = 1;
  if (top_neurons > 0) {
    json ns = json::array();
    for (const auto& n : top_neuron_shares(r, top_neurons))
      ns.push_back({{"name", fmt::format("L{}N{}", n.layer, n.neuron)}, {"layer", n.layer}, {"neuron", n.neuron},
                    {"contribution", number_or_null(n.contribution)}});
    j["neurons"] = std::move(ns);
    j["mlp_bias"] = r.mlp_bias;
  }
  return j;
}

/// A bar of `width` characters each side of a centre line: '#' to the right for positive values.
std::string text_bar(double v, double scale, std::size_t width) {
  const auto n =
      scale > 0 && std::isfinite(v)
          ? static_cast<std::size_t>(std::lround(std::min(1.0, std::abs(v) / scale) * static_cast<double>(width)))
          : 0;
  const std::string left = v < 0 ? std::string(width - n, ' ') + std::string(n, '#') : std::string(width, ' ');
  std::string bar = left;
  bar.append("|").append(v > 0 ? std::string(n, '#') : std::string());
  return bar;
}

std::string dla_text(const dla_result& r, const loaded_model& m, token_span tokens, std::size_t top_neurons,
                     bool sorted) {
  const auto words = m.token_strings(tokens);
  std::string out =
      fmt::format("direct logit attribution of {} at position {} ({}) | final norm scale {:.4f} (frozen)\n",
                  dla_value_name(r, m), r.position, words[r.position], r.final_scale);
  std::vector<const dla_component*> order;
  for (const auto& c : r.components) order.push_back(&c);
  if (sorted)
    std::stable_sort(order.begin(), order.end(), [](const dla_component* a, const dla_component* b) {
      return std::abs(a->contribution) > std::abs(b->contribution);
    });
  double scale = 0;
  for (const auto& c : r.components) scale = std::max(scale, std::abs(c.contribution));
  std::size_t width = 9;
  for (const auto& c : r.components) width = std::max(width, c.name.size());
  out += fmt::format("{:<{}}  {:>10}\n", "component", width, "share");
  for (const auto* c : order)
    out +=
        fmt::format("{:<{}}  {:>+10.4f}  {}\n", c->name, width, c->contribution, text_bar(c->contribution, scale, 20));
  out += fmt::format("total {:+.4f} (sum of the shares); the model's {}: {:+.4f} (difference {:.2e})\n", r.total,
                     r.contrast ? "logit difference" : "logit", r.logit_diff, r.total - r.logit_diff);
  if (top_neurons > 0) {
    out += fmt::format("top {} neurons by |share|:\n", top_neurons);
    double nscale = 0;
    const auto top = top_neuron_shares(r, top_neurons);
    for (const auto& n : top) nscale = std::max(nscale, std::abs(n.contribution));
    for (const auto& n : top)
      out += fmt::format("{:<{}}  {:>+10.4f}  {}\n", fmt::format("L{}N{}", n.layer, n.neuron), width, n.contribution,
                         text_bar(n.contribution, nscale, 20));
  }
  return out;
}

/// A horizontal SVG bar chart of labelled values, diverging colours, the value on hover.
std::string svg_bars(const std::vector<std::pair<std::string, double>>& items) {
  double scale = 0;
  for (const auto& [name, v] : items)
    if (std::isfinite(v)) scale = std::max(scale, std::abs(v));
  const double label = 110, half = 260, row = 18, top = 8;
  const double w = label + 2 * half + 80, h = top * 2 + row * static_cast<double>(items.size());
  const double zero = label + half;
  std::string s = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"hm\" width=\"{0:.0f}\" height=\"{1:.0f}\" viewBox=\"0 0 "
      "{0:.0f} {1:.0f}\" font-size=\"12\">",
      w, h);
  s += fmt::format("<line x1=\"{0:.1f}\" y1=\"{1:.1f}\" x2=\"{0:.1f}\" y2=\"{2:.1f}\" stroke=\"#999\"/>", zero, top,
                   h - top);
  for (std::size_t i = 0; i < items.size(); ++i) {
    const auto& [name, v] = items[i];
    const double y = top + row * static_cast<double>(i);
    const double len = scale > 0 && std::isfinite(v) ? half * std::abs(v) / scale : 0;
    const report::rgb c = report::diverging_color(v, scale);
    s += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"end\" dominant-baseline=\"central\">{}</text>",
                     label - 6, y + row / 2, report::html_escape(name));
    s += fmt::format(
        "<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" fill=\"{}\"><title>{}: {:+.5g}</title>"
        "</rect>",
        v < 0 ? zero - len : zero, y + 2, std::max(len, 0.5), row - 4, report::detail::hex(c),
        report::html_escape(name), v);
    s += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" dominant-baseline=\"central\" fill=\"#555\">{:+.3f}</text>",
                     v < 0 ? zero + 4 : zero + len + 4, y + row / 2, v);
  }
  s += "</svg>";
  return s;
}

std::string dla_html(const dla_result& r, const loaded_model& m, token_span tokens, std::size_t top_neurons) {
  const auto words = m.token_strings(tokens, token_style::html);
  std::string body = fmt::format("<h1>Direct logit attribution: {}</h1>\n<div class=\"meta\">",
                                 report::html_escape(dla_value_name(r, m, token_style::html)));
  body += meta(fmt::format("input \"{}\"", fmt::join(words, " ")));
  body += meta(fmt::format("position {} ({})", r.position, words[r.position]));
  body += meta(fmt::format("total {:+.4f}; the model's value {:+.4f}", r.total, r.logit_diff));
  body += meta(fmt::format("final norm scale {:.4f} (frozen)", r.final_scale));
  body += "</div>\n<h2>Components, in the order of the forward pass</h2>\n";
  std::vector<std::pair<std::string, double>> items;
  for (const auto& c : r.components) items.emplace_back(c.name, c.contribution);
  body += "<div class=\"scroll\">" + svg_bars(items) + "</div>\n";
  if (top_neurons > 0) {
    items.clear();
    for (const auto& n : top_neuron_shares(r, top_neurons))
      items.emplace_back(fmt::format("L{}N{}", n.layer, n.neuron), n.contribution);
    body += fmt::format("<h2>Top {} neurons by |share|</h2>\n<div class=\"scroll\">{}</div>\n", top_neurons,
                        svg_bars(items));
  }
  body +=
      "<p class=\"note\">Each share is the component's output at the position projected on the unembedding "
      "direction(s), divided by the final LayerNorm's scale frozen at its value on this input (as "
      "TransformerLens does); the shares sum to the model's value.</p>\n";
  return report::html_document("glassbox dla", body, circuits_css);
}

}  // namespace

runner add_dla_command(CLI::App& app) {
  struct state {
    std::string model, target, contrast, json, html, data, out;
    input_options input;
    std::ptrdiff_t position = -1;
    std::size_t neurons = 0;
    bool sort = false, resume = false;
  };
  auto s = std::make_shared<state>();
  auto* cmd = app.add_subcommand("dla",
                                 "Direct logit attribution: each embedding's, head's and MLP's (and neuron's) share of "
                                 "a logit or logit difference (docs/cli.md, \"Circuits\")");
  cmd->add_option("--model", s->model, "model file or directory (default: the bundled model)");
  s->input.add_to(*cmd);
  cmd->add_option("--target", s->target,
                  "the token A whose logit is decomposed (a word or an id; with --data, a line's own \"target\" "
                  "comes first)");
  cmd->add_option("--contrast", s->contrast, "a token B: decompose logit(A) - logit(B) (why A and not B)");
  cmd->add_option("--position", s->position, "the position read (negative counts from the end)")
      ->capture_default_str();
  cmd->add_option("--neurons", s->neurons, "also list the K neurons with the largest |share|")->capture_default_str();
  cmd->add_flag("--sort", s->sort, "print the components by |share| instead of in forward order");
  cmd->add_option("--json", s->json, "write a glassbox.dla document to this file ('-' = stdout)");
  cmd->add_option("--html", s->html, "write a bar chart (self-contained HTML) to this file");
  auto* data = cmd->add_option(
      "--data", s->data, "decompose every line of this JSON-lines file (docs/cli.md, \"Data files\"); needs --out");
  auto* out = cmd->add_option("--out", s->out, "with --data: write one glassbox.dla line per input here");
  cmd->add_flag("--resume", s->resume, "with --data: keep the complete lines of --out and go on after them");
  data->needs(out);
  out->needs(data);
  return [s] {
    check_output_path(s->json, "--json");
    check_output_path(s->html, "--html");
    const auto m = load_model(s->model);
    std::optional<token_id> b;
    if (!s->contrast.empty()) b = resolve_token(m, s->contrast, "--contrast");
    auto decompose = [&](token_span tokens, const std::string& target, std::string_view option) {
      const token_id a = resolve_token(m, target, option);
      if (b && *b == a) detail::fail("--contrast must differ from the target, got '{}' twice", s->contrast);
      const auto n = static_cast<std::ptrdiff_t>(tokens.size());
      if (s->position >= n || s->position < -n)
        detail::fail("--position must be in [{}, {}] (negative counts from the end), got {}", -n, n - 1, s->position);
      return direct_logit_attribution(m.model, tokens, a, b, {.position = s->position, .neurons = s->neurons > 0});
    };
    if (!s->data.empty()) {
      if (!s->input.text.empty() || !s->input.tokens.empty() || !s->json.empty() || !s->html.empty())
        detail::fail("--text, --tokens, --json and --html do not apply with --data (each line is an input; results go "
                     "to --out)");
      const std::vector<data_line> lines = read_data_lines(s->data, m);
      results_file file(s->out, s->resume, lines.size());
      for (std::size_t i = file.done(); i < lines.size(); ++i) {
        const data_line& line = lines[i];
        line.check();
        const std::string target = line.target ? *line.target : s->target;
        if (target.empty())
          detail::fail("{} line {}: no \"target\" on the line and no --target", s->data, line.number);
        const dla_result r = decompose(line.tokens, target, line.target ? "target" : "--target");
        file.append(dla_json(r, m, line.tokens, s->neurons).dump());
      }
      fmt::print(stderr, "glassbox dla: {} inputs decomposed into {}\n", lines.size(), s->out);
      return;
    }
    if (s->target.empty()) detail::fail("--target is required (the token whose logit is decomposed)");
    const token_sequence tokens = s->input.resolve(m);
    const dla_result r = decompose(tokens, s->target, "--target");
    if (s->json != "-") fmt::print("{}", dla_text(r, m, tokens, s->neurons, s->sort));
    if (!s->json.empty()) write_json(s->json, dla_json(r, m, tokens, s->neurons));
    if (!s->html.empty()) write_text(s->html, dla_html(r, m, tokens, s->neurons));
  };
}

// ---------------------------------------------------------------------------------------------
// glassbox neurons

namespace {

/// The inputs of a data file and a per-token property of each (NaN where null), as `glassbox probe --data
/// --pool token` reads them: the line's "properties" object, or a per-token array at the top level.
struct property_data {
  std::vector<token_sequence> inputs;
  std::vector<std::vector<double>> labels;
  std::vector<std::string> class_names;  ///< text labels: the classes in order; numbers: empty
};

property_data read_property(const std::string& file, const std::string& property, const loaded_model& m) {
  const std::vector<data_line> lines = read_data_lines(file, m);
  for (const auto& line : lines) line.check();
  if (lines.empty()) detail::fail("the data file {} has no inputs", file);
  std::ifstream in(file, std::ios::binary);
  std::vector<std::string> texts;
  for (std::string text; std::getline(in, text);) texts.push_back(text);
  property_data out;
  std::vector<std::vector<std::optional<std::string>>> text_values(lines.size());
  bool any_text = false, any_number = false;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    const std::size_t number = lines[i].number, t = lines[i].tokens.size();
    const json j = json::parse(texts.at(number - 1));
    const json* found = nullptr;
    if (j.contains("properties") && j["properties"].is_object() && j["properties"].contains(property))
      found = &j["properties"][property];
    else if (j.contains(property) && j[property].is_array())
      found = &j[property];
    if (found == nullptr) {
      std::string known;
      if (j.contains("properties") && j["properties"].is_object())
        for (const auto& [k, v] : j["properties"].items()) known += (known.empty() ? "" : ", ") + k;
      detail::fail("{} line {}: no per-token property \"{}\" (\"properties\" holds: {})", file, number, property,
                   known.empty() ? "nothing" : known);
    }
    if (!found->is_array() || found->size() != t)
      detail::fail("{} line {}: \"{}\" must be an array of one value per token ({}), got {}", file, number, property,
                   t, found->is_array() ? fmt::format("{} values", found->size()) : found->dump());
    out.inputs.push_back(lines[i].tokens);
    out.labels.emplace_back(t, std::nan(""));
    text_values[i].assign(t, std::nullopt);
    for (std::size_t p = 0; p < t; ++p) {
      const json& v = (*found)[p];
      if (v.is_null()) continue;
      if (v.is_boolean()) {
        out.labels[i][p] = v.get<bool>() ? 1.0 : 0.0;
        any_number = true;
      } else if (v.is_number()) {
        out.labels[i][p] = v.get<double>();
        any_number = true;
      } else if (v.is_string()) {
        text_values[i][p] = v.get<std::string>();
        any_text = true;
      } else {
        detail::fail("{} line {}: \"{}\"[{}] must be a number, a boolean, a string or null, got {}", file, number,
                     property, p, v.dump());
      }
    }
  }
  if (!any_text && !any_number) detail::fail("{}: no token has a value of \"{}\"", file, property);
  if (any_text && any_number) detail::fail("{}: \"{}\" mixes numbers and text", file, property);
  if (any_text) {
    std::set<std::string> distinct;
    for (const auto& row : text_values)
      for (const auto& v : row)
        if (v) distinct.insert(*v);
    out.class_names.assign(distinct.begin(), distinct.end());
    for (std::size_t i = 0; i < text_values.size(); ++i)
      for (std::size_t p = 0; p < text_values[i].size(); ++p)
        if (text_values[i][p])
          out.labels[i][p] = static_cast<double>(
              std::lower_bound(out.class_names.begin(), out.class_names.end(), *text_values[i][p]) -
              out.class_names.begin());
  }
  return out;
}

/// A few tokens around position `p` of `words`, the token itself in brackets (or <mark> for HTML).
std::string context_of(const std::vector<std::string>& words, std::size_t p, std::size_t around, bool html) {
  const std::size_t first = p > around ? p - around : 0, last = std::min(words.size(), p + around + 1);
  std::string out = first > 0 ? "... " : "";
  for (std::size_t i = first; i < last; ++i) {
    if (i > first) out += " ";
    const std::string w = html ? report::html_escape(words[i]) : words[i];
    out += i == p ? (html ? "<mark>" + w + "</mark>" : "[" + w + "]") : w;
  }
  if (last < words.size()) out += " ...";
  return out;
}

struct neuron_entry {
  neuron_score score;
  std::vector<neuron_example> examples;
  std::optional<neuron_ablation_result> ablation;
};

struct neurons_report {
  std::string source, property, measure;
  std::vector<std::string> class_names;
  std::size_t sequences = 0, tokens = 0, bins = 0, model_calls = 0;
  std::vector<std::size_t> layers;
  std::optional<circuit_metric> metric;
  std::optional<ablation_kind> ablate;
  std::vector<neuron_entry> neurons;
};

json neurons_json(const neurons_report& r, const property_data& data, const loaded_model& m, std::size_t around) {
  json j;
  j["schema"] = "glassbox.neurons";
  j["version"] = 1;
  j["source"] = r.source;
  j["property"] = r.property;
  j["class_names"] = r.class_names;
  j["measure"] = r.measure;
  j["bins"] = r.bins;
  j["sequences"] = r.sequences;
  j["tokens"] = r.tokens;
  j["layers"] = r.layers;
  j["metric"] = r.metric ? json(r.metric->spec) : json(nullptr);
  j["ablation"] = r.ablate ? json(std::string(to_string(*r.ablate))) : json(nullptr);
  json list = json::array();
  for (const auto& e : r.neurons) {
    json x;
    x["name"] = fmt::format("L{}N{}", e.score.layer, e.score.neuron);
    x["layer"] = e.score.layer;
    x["neuron"] = e.score.neuron;
    x["correlation"] = number_or_null(e.score.correlation);
    x["mutual_information"] = number_or_null(e.score.mutual_information);
    json ex = json::array();
    for (const auto& t : e.examples) {
      const auto words = m.token_strings(data.inputs[t.sequence]);
      ex.push_back({{"sequence", t.sequence},
                    {"position", t.position},
                    {"token", words[t.position]},
                    {"activation", number_or_null(t.activation)},
                    {"context", context_of(words, t.position, around, false)}});
    }
    x["top_activations"] = std::move(ex);
    if (e.ablation) {
      const auto& a = *e.ablation;
      x["ablation"] = {{"kind", std::string(to_string(a.kind))},
                       {"replacement", a.replacement},
                       {"mean_change", number_or_null(a.mean_change)},
                       {"mean_abs_change", number_or_null(a.mean_abs_change)},
                       {"sign_flips", a.sign_flips},
                       {"sequences", a.original.size()}};
    }
    list.push_back(std::move(x));
  }
  j["neurons"] = std::move(list);
  j["model_calls"] = r.model_calls;
  return j;
}

std::string neurons_text(const neurons_report& r, const property_data& data, const loaded_model& m,
                         std::size_t around) {
  std::string out = fmt::format("neurons of blocks {} ranked by {} with \"{}\" | {} sequences, {} labelled tokens\n",
                                fmt::join(r.layers, ","), r.measure, r.property, r.sequences, r.tokens);
  if (r.metric)
    out += fmt::format("ablation: {} | metric {} ({}) on every sequence\n", to_string(*r.ablate), r.metric->spec,
                       r.metric->metric.describe());
  out += fmt::format("{:>4}  {:<8} {:>12} {:>10}", "rank", "neuron", "correlation", "MI (bits)");
  if (r.ablate) out += fmt::format(" {:>12} {:>12} {:>11}", "mean change", "mean |chg|", "sign flips");
  out += "\n";
  for (std::size_t k = 0; k < r.neurons.size(); ++k) {
    const auto& e = r.neurons[k];
    out += fmt::format("{:>4}  {:<8} {:>+12.4f} {:>10.4f}", k + 1, fmt::format("L{}N{}", e.score.layer, e.score.neuron),
                       e.score.correlation, e.score.mutual_information);
    if (e.ablation)
      out += fmt::format(" {:>+12.4f} {:>12.4f} {:>11}", e.ablation->mean_change, e.ablation->mean_abs_change,
                         fmt::format("{}/{}", e.ablation->sign_flips, e.ablation->original.size()));
    out += "\n";
    for (const auto& t : e.examples)
      out += fmt::format("        {:>8.3f}  {}\n", t.activation,
                         context_of(m.token_strings(data.inputs[t.sequence]), t.position, around, false));
  }
  out += fmt::format("{} model calls\n", r.model_calls);
  return out;
}

std::string neurons_html(const neurons_report& r, const property_data& data, const loaded_model& m,
                         std::size_t around) {
  std::string body = fmt::format("<h1>Neurons and \"{}\"</h1>\n<div class=\"meta\">", report::html_escape(r.property));
  body += meta(r.source);
  body += meta(fmt::format("blocks {}", fmt::join(r.layers, ",")));
  body += meta(fmt::format("ranked by {}", r.measure));
  body += meta(fmt::format("{} sequences, {} labelled tokens", r.sequences, r.tokens));
  if (r.metric) body += meta(fmt::format("{} ablation, metric {}", to_string(*r.ablate), r.metric->spec));
  body += meta(fmt::format("{} model calls", r.model_calls));
  body += "</div>\n";
  std::vector<std::pair<std::string, double>> items;
  for (const auto& e : r.neurons)
    items.emplace_back(fmt::format("L{}N{}", e.score.layer, e.score.neuron),
                       r.measure == "correlation" ? e.score.correlation : e.score.mutual_information);
  body += fmt::format("<h2>{}</h2>\n<div class=\"scroll\">{}</div>\n", r.measure, svg_bars(items));
  body += "<table>\n<tr><th>rank</th><th class=\"l\">neuron</th><th>correlation</th><th>MI (bits)</th>";
  if (r.ablate) body += "<th>mean change</th><th>mean |change|</th><th>sign flips</th>";
  body += "<th class=\"l\">top-activating tokens</th></tr>\n";
  for (std::size_t k = 0; k < r.neurons.size(); ++k) {
    const auto& e = r.neurons[k];
    body += fmt::format("<tr><td>{}</td><td class=\"l\">L{}N{}</td><td>{:+.4f}</td><td>{:.4f}</td>", k + 1,
                        e.score.layer, e.score.neuron, e.score.correlation, e.score.mutual_information);
    if (e.ablation)
      body += fmt::format("<td>{:+.4f}</td><td>{:.4f}</td><td>{}/{}</td>", e.ablation->mean_change,
                          e.ablation->mean_abs_change, e.ablation->sign_flips, e.ablation->original.size());
    body += "<td class=\"ctx\">";
    for (const auto& t : e.examples)
      body += fmt::format("{:.3f} &nbsp;{}<br>", t.activation,
                          context_of(m.token_strings(data.inputs[t.sequence], token_style::html), t.position,
                                     around, true));
    body += "</td></tr>\n";
  }
  body += "</table>\n";
  return report::html_document(fmt::format("glassbox neurons: {}", r.property), body, circuits_css);
}

}  // namespace

runner add_neurons_command(CLI::App& app) {
  struct state {
    std::string model, data, property, measure = "correlation", ablate, metric, json, html;
    std::size_t layer = 0;
    CLI::Option* layer_option = nullptr;
    std::size_t top = 10, examples = 5, context = 3, bins = 10, threads = 0;
  };
  auto s = std::make_shared<state>();
  auto* cmd = app.add_subcommand("neurons",
                                 "MLP neurons ranked by correlation or mutual information with a per-token property, "
                                 "their top-activating tokens, and ablation (docs/cli.md, \"Circuits\")");
  cmd->add_option("--model", s->model, "model file or directory (default: the bundled model)");
  cmd->add_option("--data", s->data,
                  "JSON-lines data file with per-token \"properties\" (glassbox generate-data writes them)")
      ->required();
  cmd->add_option("--property", s->property, "the per-token property, e.g. is_negated, is_sentiment, pos")->required();
  s->layer_option = cmd->add_option("--layer", s->layer, "the block whose neurons are ranked (default: every block)");
  cmd->add_option("--top", s->top, "neurons reported")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--measure", s->measure, "the order: correlation (|Pearson r|) or mutual-information")
      ->capture_default_str();
  cmd->add_option("--bins", s->bins, "mutual information: equal-frequency bins of each activation")
      ->capture_default_str();
  cmd->add_option("--examples", s->examples, "top-activating tokens shown per neuron")->capture_default_str();
  cmd->add_option("--context", s->context, "tokens of context each side of a top-activating token")
      ->capture_default_str();
  cmd->add_option("--ablate", s->ablate, "the causal check: zero or mean (over the data's tokens) ablation");
  cmd->add_option("--metric", s->metric,
                  "--ablate: logit-diff:A,B or log-prob:A at the last position (default on the bundled model: "
                  "logit-diff:positive,negative)");
  cmd->add_option("--threads", s->threads, "the thread budget: cores kept busy in all (0 = all cores)")
      ->capture_default_str();
  cmd->add_option("--json", s->json, "write a glassbox.neurons document to this file ('-' = stdout)");
  cmd->add_option("--html", s->html, "write a table with bars and contexts (self-contained HTML) to this file");
  return [s] {
    const pass_threads_scope threads(s->threads);
    check_output_path(s->json, "--json");
    check_output_path(s->html, "--html");
    const std::vector<std::string> measures{"correlation", "mutual-information"};
    const bool mi = parse::choice("measure", s->measure, measures) == 1;
    std::optional<ablation_kind> ablate;
    if (!s->ablate.empty())
      ablate = parse::choice("ablate", s->ablate, {"zero", "mean"}) == 0 ? ablation_kind::zero : ablation_kind::mean;
    if (!ablate && !s->metric.empty()) detail::fail("--metric applies with --ablate zero|mean");
    if (s->bins < 2) detail::fail("--bins must be >= 2, got {}", s->bins);
    const auto m = load_model(s->model);
    const std::size_t L = m.model.layout().layers;
    std::optional<std::size_t> layer;
    if (s->layer_option->count() > 0) {
      if (s->layer >= L) detail::fail("--layer must be a block 0..{}, got {}", L - 1, s->layer);
      layer = s->layer;
    }
    std::optional<circuit_metric> metric;
    if (ablate) {
      if (s->metric.empty() && !s->model.empty())
        detail::fail("--ablate needs --metric (logit-diff:A,B or log-prob:A) on a model other than the bundled one");
      metric = parse_metric(m, s->metric.empty() ? std::string("logit-diff:positive,negative") : s->metric);
    }
    const property_data data = read_property(s->data, s->property, m);
    execution_options exec;
    exec.threads = s->threads;
    exec.on_progress = progress_bar();
    const std::span<const token_sequence> inputs(data.inputs);
    const neuron_activation_table table = neuron_activations(m.model, inputs, layer, exec);
    const neuron_ranking ranking =
        rank_neurons(table, std::span<const std::vector<double>>(data.labels),
                     {.measure = mi ? neuron_measure::mutual_information : neuron_measure::correlation,
                      .bins = s->bins,
                      .top = s->top});
    neurons_report r;
    r.source = fmt::format("{} on {}", s->data, m.path.string());
    r.property = s->property;
    r.measure = mi ? "mutual_information" : "correlation";
    r.class_names = data.class_names;
    r.sequences = data.inputs.size();
    r.tokens = ranking.tokens;
    r.bins = s->bins;
    r.layers = table.layers;
    r.metric = metric;
    r.ablate = ablate;
    r.model_calls = data.inputs.size();
    for (const auto& score : ranking.neurons) {
      neuron_entry e{score, top_activations(table, score.layer, score.neuron, s->examples), std::nullopt};
      if (ablate) {
        e.ablation = neuron_ablation(m.model, inputs, metric->metric, score.layer, score.neuron, *ablate, &table, exec);
        r.model_calls += 2 * data.inputs.size();
      }
      r.neurons.push_back(std::move(e));
    }
    if (s->json != "-") fmt::print("{}", neurons_text(r, data, m, s->context));
    if (!s->json.empty()) write_json(s->json, neurons_json(r, data, m, s->context));
    if (!s->html.empty()) write_text(s->html, neurons_html(r, data, m, s->context));
  };
}

}  // namespace glassbox::cli

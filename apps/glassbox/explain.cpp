// glassbox explain: which input tokens a prediction depends on, by any attribution method of the
// registry (explain_methods.cpp), as a terminal heatmap, JSON (docs/json-schema.md) and a
// self-contained HTML page; over a JSON-lines data file with --data, one result line per input.
//
//   glassbox explain --text "the food was not good . =>"                 integrated gradients of the top next token
//   glassbox explain --text "..." --method kernel-shap --samples 256     any method, its options
//   glassbox explain --text "..." --method all                           one row per method
//   glassbox explain --text "the food was good . =>" --continuation positive   generation attribution
//   glassbox explain --data reviews.jsonl --out results.jsonl [--resume]  every line of a data file
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <numeric>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "batch_files.hpp"
#include "cli.hpp"
#include "explain_methods.hpp"
#include "review_truth.hpp"
#include "glassbox/attribution.hpp"
#include "glassbox/core/batch.hpp"
#include "glassbox/datasets/reviews.hpp"
#include "glassbox/report/html.hpp"
#include "glassbox/report/terminal.hpp"

namespace glassbox::cli {
namespace {

// ---------------------------------------------------------------------------------------------
// Parsed command line.

struct explain_state {
  std::string model, json, html, method = "integrated_gradients", color = "auto";
  input_options input;
  // What is explained.
  std::string target_word, contrast_words, target_kind = "log_probability", continuation;
  std::int64_t target_id = -1, contrast_id = -1, position = -1;
  std::size_t generate = 0;
  // Execution, display, data files.
  std::size_t batch_size = 32, threads = 0, top = 10;
  std::string data, out;
  bool resume = false;
  method_options method_flags;                                // the registry's method options
  command_options options;                                    // the command's own options, by long name

  bool given(std::string_view name) const { return options.given(name); }
};

execution_options execution(const explain_state& s) {
  execution_options e;
  e.batch_size = s.batch_size;
  e.threads = s.threads;
  e.on_progress = progress_bar();
  return e;
}

// The methods --method names: one, or every method of the registry for "all".
std::vector<const attribution_method*> chosen_methods(const explain_state& s) {
  std::vector<const attribution_method*> out;
  if (dashed(s.method) == "all") {
    for (const auto& m : attribution_methods()) out.push_back(&m);
  } else {
    out.push_back(&find_method(attribution_methods(), s.method, "all"));
  }
  return out;
}

// The given options a method reads (for --method all, each method reads its own).
option_values options_for(const attribution_method& m, const option_values& given) {
  option_values out;
  for (const auto& o : m.info.options)
    if (given.given(o.name)) out.set(o.name, given.text(o.name));
  return out;
}

// ---------------------------------------------------------------------------------------------
// The target.

struct resolved_target {
  target t = target::logit(0);
  std::string description;       // in words, for the terminal and JSON
  std::string html_description;  // the same with tokens as an HTML page shows them
  std::size_t row = 0;           // the output row it reads
};

target_kind parse_kind(const std::string& value) {
  const std::vector<std::string> names = {"logit", "probability", "log_probability"};
  const target_kind kinds[] = {target_kind::logit, target_kind::probability, target_kind::log_probability};
  return kinds[parse::choice("target-kind", value, names)];
}

double softmax_probability(const tensor2& logits, std::size_t row, token_id token) {
  const std::size_t V = logits.shape(1);
  double top = -INFINITY, sum = 0;
  for (std::size_t v = 0; v < V; ++v) top = std::max(top, static_cast<double>(logits(row, v)));
  for (std::size_t v = 0; v < V; ++v) sum += std::exp(static_cast<double>(logits(row, v)) - top);
  return std::exp(static_cast<double>(logits(row, static_cast<std::size_t>(token))) - top) / sum;
}

token_id checked_id(const loaded_model& m, std::int64_t id, std::string_view option) {
  if (id < 0 || static_cast<std::size_t>(id) >= m.model.vocab_size())
    detail::fail("{}: token id {} is out of range (the vocabulary has {} tokens)", option, id, m.model.vocab_size());
  return static_cast<token_id>(id);
}

// The target of one input: --target / --target-id (or a data line's "target"), else the model's top
// prediction at --position; a contrast with --contrast / --contrast-id.
resolved_target make_target(const explain_state& s, const loaded_model& m, token_span ids,
                            const std::optional<std::string>& line_target = std::nullopt) {
  const tensor2 logits = m.model.logits(ids);
  const auto T = static_cast<std::int64_t>(logits.shape(0));
  if (s.position < -T || s.position >= T)
    detail::fail("--position must be in [{}, {}] for an input of {} tokens, got {}", -T, T - 1, T, s.position);
  const auto row = static_cast<std::size_t>(s.position < 0 ? T + s.position : s.position);
  if (s.given("--target") && s.given("--target-id")) detail::fail("--target and --target-id exclude each other");
  if (s.given("--contrast") && s.given("--contrast-id"))
    detail::fail("--contrast and --contrast-id exclude each other");
  token_id token = 0;
  std::string why;
  if (line_target) {
    token = resolve_token(m, *line_target, "target");
  } else if (s.given("--target")) {
    token = resolve_token(m, s.target_word, "--target");
  } else if (s.given("--target-id")) {
    token = checked_id(m, s.target_id, "--target-id");
  } else {
    std::size_t best = 0;
    for (std::size_t v = 1; v < logits.shape(1); ++v)
      if (logits(row, v) > logits(row, best)) best = v;
    token = static_cast<token_id>(best);
    why = ", the model's top prediction";
  }
  const target_kind kind = parse_kind(s.target_kind);
  auto quoted = [&](token_id id, token_style style = token_style::terminal) {
    return fmt::format("'{}' (id {})", m.token_strings(std::vector<token_id>{id}, style)[0], id);
  };
  const double p = softmax_probability(logits, row, token);
  std::optional<token_id> foil;
  if (s.given("--contrast") || s.given("--contrast-id")) {
    foil = s.given("--contrast") ? resolve_token(m, s.contrast_words, "--contrast")
                                 : checked_id(m, s.contrast_id, "--contrast-id");
    if (*foil == token) detail::fail("--contrast: the foil must differ from the target token {}", quoted(token));
  }
  // The sentence, with its tokens as the terminal or an HTML page shows them.
  auto describe = [&](token_style style) {
    const std::string where =
        fmt::format("after position {} '{}'", row, m.token_strings(std::vector<token_id>{ids[row]}, style)[0]);
    if (foil)
      return fmt::format("{} of {} minus {} {} (p = {:.4f} vs {:.4f}){}", to_string(kind), quoted(token, style),
                         quoted(*foil, style), where, p, softmax_probability(logits, row, *foil), why);
    return fmt::format("{} of {} {} (p = {:.4f}){}", to_string(kind), quoted(token, style), where, p, why);
  };
  resolved_target r;
  r.row = row;
  r.description = describe(token_style::terminal);
  r.html_description = describe(token_style::html);
  r.t = foil                               ? target::contrast(token, *foil, kind, s.position)
        : kind == target_kind::logit       ? target::logit(token, s.position)
        : kind == target_kind::probability ? target::probability(token, s.position)
                                           : target::log_probability(token, s.position);
  return r;
}

// ---------------------------------------------------------------------------------------------
// Output.

bool use_color(const explain_state& s) {
  const std::vector<std::string> choices = {"auto", "always", "never"};
  const std::size_t c = parse::choice("color", s.color, choices);
  if (c == 1) return true;
  if (c == 2) return false;
  return isatty(STDOUT_FILENO) != 0 && std::getenv("NO_COLOR") == nullptr;
}

std::string colored(std::string_view text, double score, double scale, bool color) {
  if (!color) return std::string(text);
  const report::rgb c = report::diverging_color(score, scale);
  const int fg = report::needs_light_text(c) ? 255 : 0;
  return fmt::format("\x1b[48;2;{};{};{}m\x1b[38;2;{};{};{}m{}\x1b[0m", c.r, c.g, c.b, fg, fg, fg, text);
}

// One input explained by one or more methods.
struct explained_input {
  token_sequence ids;
  std::vector<std::string> words;
  std::vector<std::string> html_words;  // the same tokens as an HTML page shows them
  resolved_target target;
  std::optional<datasets::review_analysis> truth;
  struct row {
    std::string method;
    std::optional<attribution_result> result;
    std::string failure;  // why the method could not run (--method all goes on with the others)
  };
  std::vector<row> rows;
};

// Explains `ids` with `methods`; with one method its failure is an error, with several it is a row.
explained_input explain_input(const explain_state& s, const loaded_model& m, token_sequence ids,
                              const std::vector<const attribution_method*>& methods, const option_values& given,
                              const execution_options& exec, const std::optional<std::string>& line_target) {
  explained_input x;
  x.ids = std::move(ids);
  x.words = m.token_strings(x.ids);
  x.html_words = m.token_strings(x.ids, token_style::html);
  x.target = make_target(s, m, x.ids, line_target);
  x.truth = review_truth(m, x.ids, x.target.row);
  for (const auto* method : methods) {
    explained_input::row r{method->info.name, std::nullopt, {}};
    const attribution_call c{m, x.ids, x.target.t, exec};
    if (methods.size() == 1) {
      r.result = method->run(c, given);
    } else {
      try {
        r.result = method->run(c, options_for(*method, given));
      } catch (const cancelled&) {
        throw;
      } catch (const error& e) {
        r.failure = e.what();
      }
    }
    x.rows.push_back(std::move(r));
  }
  return x;
}

// The JSON of an explained input: the method's glassbox.attribution document, or an array of them for --method all.
report::json input_json(const explained_input& x) {
  if (x.rows.size() == 1) return report::to_json(*x.rows[0].result, x.words);
  report::json all = report::json::array();
  for (const auto& r : x.rows)
    if (r.result) all.push_back(report::to_json(*r.result, x.words));
  return all;
}

void print_single(const attribution_result& r, const explained_input& x, const explain_state& s) {
  fmt::print("input     {}\n", joined(x.words));
  fmt::print("target    {}\n", x.target.description);
  if (x.truth) fmt::print("truth     {}\n", truth_summary(*x.truth, x.words));
  fmt::print("\n");
  report::terminal_options view;
  view.color = use_color(s);
  view.top = s.top;
  fmt::print("{}", report::terminal_heatmap(r, x.words, view));
  if (!r.standard_errors.empty()) {
    double mean = 0, top = 0;
    for (double e : r.standard_errors) {
      mean += e / static_cast<double>(r.standard_errors.size());
      top = std::max(top, e);
    }
    fmt::print("standard errors: mean {:.3g}, max {:.3g}\n", mean, top);
  }
  if (x.truth) {
    const std::string scoring = truth_scoring(*x.truth, r.scores, x.words);
    if (!scoring.empty()) fmt::print("truth: {}\n", scoring);
  }
  fmt::print("options: {}\n", options_line(r.options));
}

void print_all(const explained_input& x, const explain_state& s) {
  const bool color = use_color(s);
  const auto& words = x.words;
  const auto& truth = x.truth;
  fmt::print("input     {}\n", joined(words));
  fmt::print("target    {}\n", x.target.description);
  if (truth) fmt::print("truth     {}\n", truth_summary(*truth, words));
  fmt::print("\nscores (each row coloured on its own scale){}\n", color ? "" : "; '*' marks the row's largest |score|");
  std::vector<std::size_t> width(words.size());
  for (std::size_t j = 0; j < words.size(); ++j) width[j] = std::max<std::size_t>(words[j].size(), 10);
  const std::size_t label = 28;
  std::string head = fmt::format("{:<{}}", "method", label);
  for (std::size_t j = 0; j < words.size(); ++j) head += fmt::format(" {:>{}}", words[j], width[j]);
  head += fmt::format("  {:>9} {:>7}", "delta", "evals");
  if (truth && truth->has_label()) head += fmt::format(" {:>5} {:>9}", "rank", "rationale");
  fmt::print("{}\n", head);
  for (const auto& r : x.rows) {
    std::string line = fmt::format("{:<{}}", dashed(r.method), label);
    if (!r.result) {
      fmt::print("{}not run: {}\n", line, r.failure);
      continue;
    }
    const auto& a = *r.result;
    const double scale = report::max_abs(a.scores);
    for (std::size_t j = 0; j < words.size(); ++j) {
      const bool largest = std::abs(a.scores[j]) == scale && scale > 0;
      const std::string cell =
          fmt::format("{:>+{}.3g}{}", a.scores[j], width[j] - (color ? 0 : 1), color ? "" : (largest ? "*" : " "));
      line += ' ';
      line += colored(cell, a.scores[j], scale, color);
    }
    line += a.convergence_delta ? fmt::format("  {:>9.2g}", *a.convergence_delta) : fmt::format("  {:>9}", "-");
    line += fmt::format(" {:>7}", a.model_evaluations);
    if (truth && truth->has_label() && !truth->deciding_words.empty() && truth->review_length > 0)
      line += fmt::format(" {:>5} {:>9}", rank_of(a.scores, truth->review_length, truth->deciding_words[0]),
                          fmt::format("{}/{}", rationale_hits(a.scores, *truth), truth->rationale.size()));
    fmt::print("{}\n", line);
  }
  if (truth && truth->has_label())
    fmt::print(
        "rank: the deciding word's rank by |score| among the {} review tokens; rationale: how many of the top "
        "{} tokens by |score| are in the rationale\n",
        truth->review_length, truth->rationale.size());
}

std::string input_html(const explained_input& x) {
  std::string body =
      fmt::format(
          "<div class=\"meta\"><span>input: {}</span></div>\n<div class=\"meta\"><span>target: {}</span></div>\n",
          report::html_escape(joined(x.html_words)), report::html_escape(x.target.html_description)) +
      truth_html(x.truth, x.rows.size() == 1 ? &x.rows[0].result->scores : nullptr, x.html_words);
  for (const auto& r : x.rows) {
    if (r.result) {
      body += report::attribution_fragment(*r.result, x.html_words);
      if (x.rows.size() > 1) body += truth_html(x.truth, &r.result->scores, x.html_words);
    } else {
      body += fmt::format("<h1>{}</h1><div class=\"meta\">not run: {}</div>\n", report::html_escape(r.method),
                          report::html_escape(r.failure));
    }
  }
  return report::html_document(
      x.rows.size() == 1 ? fmt::format("glassbox explain: {}", x.rows[0].method) : "glassbox explain: every method",
      body);
}

// --- generation ---

std::string generation_table(const sequence_attribution_result& r, const std::vector<std::string>& words, bool color) {
  const std::size_t G = r.scores.shape(0), S = r.scores.shape(1);
  std::vector<double> all(r.scores.begin(), r.scores.end());
  const double scale = report::max_abs(all);
  std::vector<std::size_t> width(S);
  for (std::size_t j = 0; j < S; ++j) width[j] = std::max<std::size_t>(words[j].size(), 10);
  std::size_t label = 12;
  for (std::size_t g = 0; g < G; ++g) label = std::max(label, words[r.prompt_length + g].size() + 2);
  std::string out = fmt::format("{:<{}}", "generated", label);
  for (std::size_t j = 0; j < S; ++j) out += fmt::format(" {:>{}}", words[j], width[j]);
  out += fmt::format("  {:>10}", "f");
  if (!r.convergence_deltas.empty()) out += fmt::format(" {:>9}", "delta");
  out += '\n';
  for (std::size_t g = 0; g < G; ++g) {
    out += fmt::format("{:<{}}", words[r.prompt_length + g], label);
    for (std::size_t j = 0; j < S; ++j) {
      if (j >= r.prompt_length + g) {
        out += fmt::format(" {:>{}}", ".", width[j]);
        continue;
      }
      const double v = r.scores(g, j);
      out += ' ';
      out += colored(fmt::format("{:>+{}.3g}", v, width[j]), v, scale, color);
    }
    out += fmt::format("  {:>10.4g}", r.target_values[g]);
    if (!r.convergence_deltas.empty()) out += fmt::format(" {:>9.2g}", r.convergence_deltas[g]);
    out += '\n';
  }
  return out;
}

std::string generation_html(const sequence_attribution_result& r, const std::vector<std::string>& words,
                            const std::string& intro) {
  const std::size_t G = r.scores.shape(0), S = r.scores.shape(1);
  std::vector<double> all(r.scores.begin(), r.scores.end());
  const double scale = report::max_abs(all);
  std::string body = fmt::format("<h1>{} (generation)</h1>\n{}", report::html_escape(r.method), intro);
  body += fmt::format("<div class=\"meta\"><span>{} model evaluations</span></div>\n", r.model_evaluations);
  body += "<table><tr><th class=\"l\">generated</th>";
  for (std::size_t j = 0; j < S; ++j) body += fmt::format("<th>{}</th>", report::html_escape(words[j]));
  body += "<th>f</th>";
  if (!r.convergence_deltas.empty()) body += "<th>delta</th>";
  body += "</tr>\n";
  for (std::size_t g = 0; g < G; ++g) {
    body += fmt::format("<tr><td class=\"l\">{}</td>", report::html_escape(words[r.prompt_length + g]));
    for (std::size_t j = 0; j < S; ++j) {
      if (j >= r.prompt_length + g) {
        body += "<td></td>";
        continue;
      }
      const double v = r.scores(g, j);
      const report::rgb c = report::diverging_color(v, scale);
      body += fmt::format("<td style=\"background:{};color:{}\" title=\"{} &rarr; {}: {:+.6g}\">{:+.3f}</td>",
                          report::css_color(c), report::needs_light_text(c) ? "#fff" : "#000",
                          report::html_escape(words[j]), report::html_escape(words[r.prompt_length + g]), v, v);
    }
    body += fmt::format("<td>{:.4f}</td>", r.target_values[g]);
    if (!r.convergence_deltas.empty()) body += fmt::format("<td>{:.3g}</td>", r.convergence_deltas[g]);
    body += "</tr>\n";
  }
  body += "</table>\n" + report::diverging_legend(scale) + "<h2>Options</h2>\n<table>";
  for (const auto& o : r.options)
    body += fmt::format("<tr><td class=\"l\">{}</td><td class=\"l\">{}</td></tr>", report::html_escape(o.name),
                        report::html_escape(report::detail::option_json(o.value).dump()));
  body += "</table>\n";
  return report::html_document(fmt::format("glassbox: {} (generation)", r.method), body);
}

void run_generation(const attribution_method& method, const option_values& given, const explain_state& s,
                    const loaded_model& m, const token_sequence& prompt) {
  for (auto name : {"--target", "--target-id", "--position", "--contrast-id"})
    if (s.given(name))
      detail::fail("{} does not apply to generation attribution (each generated token is the target of its row)", name);
  if (s.given("--continuation") && s.given("--generate"))
    detail::fail("--continuation and --generate exclude each other");
  generation_options g;
  g.kind = parse_kind(s.target_kind);
  token_sequence continuation;
  if (s.given("--continuation")) {
    const auto items = m.has_vocabulary() ? io::split_words(s.continuation) : split_list(s.continuation);
    for (const auto& w : items) continuation.push_back(resolve_token(m, w, "--continuation"));
    if (continuation.empty()) detail::fail("--continuation is empty");
    if (prompt.size() + continuation.size() > m.model.max_positions())
      detail::fail("the prompt and continuation have {} tokens; the model accepts at most {}",
                   prompt.size() + continuation.size(), m.model.max_positions());
  }
  const std::size_t generated = s.given("--generate") ? s.generate : continuation.size();
  if (s.given("--generate") && prompt.size() + generated > m.model.max_positions())
    detail::fail("--generate: the prompt and {} new tokens exceed the model's {} positions", generated,
                 m.model.max_positions());
  if (s.given("--contrast")) {
    for (const auto& w : io::split_words(s.contrast_words)) g.foils.push_back(resolve_token(m, w, "--contrast"));
    if (g.foils.size() == 1 && generated > 1) g.foils.assign(generated, g.foils[0]);
    if (g.foils.size() != generated)
      detail::fail("--contrast: give one foil word, or one per generated token ({}), got {}", generated,
                   g.foils.size());
  }
  const execution_options exec = execution(s);
  auto run = [&](token_span prefix, const target& t) {
    return method.run(attribution_call{m, prefix, t, exec}, given);
  };
  const sequence_attribution_result r =
      s.given("--generate") ? attribute_generation(m.model, token_span(prompt), s.generate, run, g)
                            : attribute_generation(m.model, token_span(prompt), token_span(continuation), run, g);
  const auto words = m.token_strings(r.token_ids);
  const std::vector<std::string> prompt_words(words.begin(),
                                              words.begin() + static_cast<std::ptrdiff_t>(r.prompt_length));
  const std::vector<std::string> gen_words(words.begin() + static_cast<std::ptrdiff_t>(r.prompt_length), words.end());
  std::string target_text = fmt::format("{} of each generated token", to_string(g.kind));
  if (!g.foils.empty()) target_text += fmt::format(" minus that of its foil ({})", joined(m.token_strings(g.foils)));
  if (s.json != "-") {
    fmt::print("prompt     {}\n", joined(prompt_words));
    fmt::print("generated  {}{}\n", joined(gen_words), s.given("--generate") ? " (greedy)" : " (teacher forced)");
    fmt::print("target     {}\n", target_text);
    fmt::print("method     {} | {} model evaluations\n\n", r.method, r.model_evaluations);
    fmt::print("{}", generation_table(r, words, use_color(s)));
    fmt::print("options: {}\n", options_line(r.options));
  }
  if (!s.json.empty()) write_json(s.json, report::to_json(r, words));
  if (!s.html.empty()) {
    const auto html_words = m.token_strings(r.token_ids, token_style::html);
    const auto split = html_words.begin() + static_cast<std::ptrdiff_t>(r.prompt_length);
    const std::string intro = fmt::format(
        "<div class=\"meta\"><span>prompt: {}</span><span>generated: {}</span><span>target: {}</span></div>\n",
        report::html_escape(joined(std::vector<std::string>(html_words.begin(), split))),
        report::html_escape(joined(std::vector<std::string>(split, html_words.end()))),
        report::html_escape(target_text));
    write_text(s.html, generation_html(r, html_words, intro));
  }
}

// --- data files ---

// Explains every line of --data into --out (one result line per input, as the single-input JSON), in
// input order, resuming after the lines already in --out with --resume; prints a summary at the end.
void run_data(const explain_state& s, const loaded_model& m, const std::vector<const attribution_method*>& methods,
              const option_values& given) {
  for (auto name : {"--text", "--tokens", "--json", "--html", "--continuation", "--generate"})
    if (s.given(name)) detail::fail("{} does not apply with --data (each line is an input; results go to --out)", name);
  const std::vector<data_line> lines = read_data_lines(s.data, m);
  results_file out(s.out, s.resume, lines.size());
  execution_options exec = execution(s);
  exec.on_progress = progress_bar();
  const auto start = std::chrono::steady_clock::now();
  std::vector<method_summary> summaries(methods.size());
  for (std::size_t k = 0; k < methods.size(); ++k) summaries[k].method = methods[k]->info.name;
  const std::size_t first = out.done();
  for_each_input(
      lines.size() - first,
      [&](std::size_t i, const execution_options& e) {
        const data_line& line = lines[first + i];
        line.check();
        execution_options per = e;
        per.batch_size = s.batch_size;
        return explain_input(s, m, line.tokens, methods, given, per, line.target);
      },
      [&](std::size_t, const explained_input& x) {
        out.append(input_json(x).dump());
        for (std::size_t k = 0; k < x.rows.size(); ++k)
          if (x.rows[k].result)
            summaries[k].add(x.rows[k].result->scores, x.truth, x.rows[k].result->model_evaluations);
      },
      exec);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  fmt::print(stderr, "{}", batch_summary(summaries, lines.size(), first, seconds, s.out));
}

}  // namespace

runner add_explain_command(CLI::App& app) {
  auto s = std::make_shared<explain_state>();
  auto* cmd = app.add_subcommand(
      "explain",
      "Attribute a prediction to the input tokens: a heatmap of scores, with --json and --html outputs, or every\n"
      "line of a --data file into --out. The default target is the log-probability of the model's top next token\n"
      "after the last input token. `glassbox methods` lists every method with its options.");
  auto add = [&](CLI::Option* o) { return s->options.add(o); };
  std::string names;
  for (const auto& m : attribution_methods()) names += fmt::format("{}, ", m.info.cli_name());
  add(cmd->add_option("--model", s->model, "model file or directory (default: the bundled model)"));
  s->input.add_to(*cmd);
  s->options.add_all(*cmd);
  add(cmd->add_option("--method", s->method, fmt::format("attribution method: {}or all", names))
          ->capture_default_str());
  // What is explained.
  add(cmd->add_option("--target,--target-token", s->target_word,
                      "the explained next token, a word or an id (default: the model's top prediction)"));
  add(cmd->add_option("--target-id", s->target_id, "the explained next token, an id"));
  add(cmd->add_option("--position", s->position,
                      "the output row whose prediction is explained; negative counts from the end")
          ->capture_default_str());
  add(cmd->add_option("--target-kind", s->target_kind, "the explained scalar: logit, probability or log-probability")
          ->capture_default_str());
  add(cmd->add_option("--contrast,--foil", s->contrast_words,
                      "contrastive target: f(target) - f(foil) for this word (generation: one word, or one per "
                      "generated token)"));
  add(cmd->add_option("--contrast-id", s->contrast_id, "contrastive target: the foil as an id"));
  add(cmd->add_option("--continuation", s->continuation,
                      "generation attribution: attribute each of these words (ids without a vocabulary), teacher "
                      "forced after the input, to the tokens before it; prints the [generated, source] matrix"));
  add(cmd->add_option("--generate", s->generate, "generation attribution of N greedily generated tokens")
          ->check(CLI::PositiveNumber));
  // The methods' own options, from the registry.
  s->method_flags.add_to(*cmd, infos(attribution_methods()));
  // Execution, data files and output.
  add(cmd->add_option("--batch-size", s->batch_size, "inputs per batched model call")
          ->capture_default_str()
          ->check(CLI::PositiveNumber));
  add(cmd->add_option("--threads", s->threads, "the thread budget: cores kept busy in all (0 = all cores)")
          ->capture_default_str());
  add(cmd->add_option("--data", s->data,
                      "explain every line of this JSON-lines file ({\"text\": ...} or {\"token_ids\": [...]}, "
                      "optionally \"target\"; generate-data's format) into --out"));
  add(cmd->add_option("--out", s->out, "--data: write one result line per input to this file"));
  add(cmd->add_flag("--resume", s->resume, "--data: keep the results already in --out and go on after them"));
  add(cmd->add_option("--top", s->top, "rows of the ranked table (0 = none)")->capture_default_str());
  add(cmd->add_option("--color", s->color, "colour the heatmap: auto, always or never")->capture_default_str());
  add(cmd->add_option("--json", s->json,
                      "write the result as JSON (glassbox.attribution; glassbox.sequence_attribution for generation; "
                      "an array for --method all) to this file ('-' = stdout)"));
  add(cmd->add_option("--html", s->html, "write a self-contained HTML page to this file"));
  return [s] {
    const pass_threads_scope threads(s->threads);  // the budget also covers direct model calls
    const auto methods = chosen_methods(*s);
    const option_values given = s->method_flags.given();
    if (methods.size() == 1) check_options_apply(methods[0]->info, given, infos(attribution_methods()));
    use_color(*s);  // validates --color before any work
    check_output_path(s->json, "--json");
    check_output_path(s->html, "--html");
    if (s->given("--data") != s->given("--out")) detail::fail("--data and --out go together");
    if (s->resume && !s->given("--data")) detail::fail("--resume applies with --data and --out");
    check_output_path(s->out, "--out");
    const auto m = load_model(s->model);
    if (s->given("--data")) {
      run_data(*s, m, methods, given);
      return;
    }
    const token_sequence ids = s->input.resolve(m);
    if (s->given("--continuation") || s->given("--generate")) {
      if (methods.size() != 1) detail::fail("--method all does not apply to generation attribution; name one method");
      run_generation(*methods[0], given, *s, m, ids);
      return;
    }
    const explained_input x = explain_input(*s, m, ids, methods, given, execution(*s), std::nullopt);
    if (s->json != "-") {
      if (x.rows.size() == 1)
        print_single(*x.rows[0].result, x, *s);
      else
        print_all(x, *s);
    }
    if (!s->json.empty()) write_json(s->json, input_json(x));
    if (!s->html.empty()) write_text(s->html, input_html(x));
  };
}

}  // namespace glassbox::cli

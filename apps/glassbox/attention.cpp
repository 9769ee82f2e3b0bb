// glassbox attention: raw attention, rollout, flow, attention x gradient, Chefer relevance or
// gradient-weighted rollout of one input (attention_methods.cpp), or of every line of a --data file.
// glassbox heads: head statistics, importance, the ablation check and the pruning curve over a data set.
#include "glassbox/attention.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <numeric>
#include <set>

#include "attention_methods.hpp"
#include "batch_files.hpp"
#include "cli.hpp"
#include "glassbox/core/batch.hpp"
#include "glassbox/datasets/reviews.hpp"
#include "glassbox/report/attention_html.hpp"
#include "glassbox/report/attention_json.hpp"
#include "review_truth.hpp"

namespace glassbox::cli {

namespace {

/// The shade of v in [0, 1] as one character.
char shade(double v) {
  static constexpr std::string_view ramp = " .:-=+*#%@";
  if (!std::isfinite(v) || v <= 0) return ' ';
  const auto k = static_cast<std::size_t>(std::lround(std::clamp(v, 0.0, 1.0) * 9.0));
  return ramp[k];
}

std::string clip(const std::string& s, std::size_t n) { return s.size() <= n ? s : s.substr(0, n - 1) + "~"; }

/// The terminal view of a token-to-token matrix: the explained row's top tokens, and for short
/// inputs the whole matrix shaded.
std::string terminal_view(const std::string& title, const tensor2& matrix, const std::vector<std::size_t>& rows,
                          const std::vector<double>& scores, std::size_t position, const std::string& scores_are,
                          const std::vector<std::string>& words, std::size_t top) {
  std::string out = title + "\n";
  std::string text;
  for (const auto& w : words) text += (text.empty() ? "" : " ") + w;
  out += fmt::format("input   {}\n", text);
  const std::size_t t = words.size();
  std::vector<std::size_t> order(t);
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t a, std::size_t b) { return std::abs(scores[a]) > std::abs(scores[b]); });
  double scale = 0;
  for (double v : scores) scale = std::max(scale, std::abs(v));
  out += fmt::format("{} (position {}, '{}'), by |score|:\n", scores_are, position, words[position]);
  for (std::size_t k = 0; k < std::min(top, t); ++k) {
    const std::size_t j = order[k];
    const auto bar = static_cast<std::size_t>(std::lround(scale > 0 ? 24.0 * std::abs(scores[j]) / scale : 0.0));
    out += fmt::format("  {:>3}. {:<16} pos {:>3}  {:>+11.4g}  {}\n", k + 1, clip(words[j], 16), j, scores[j],
                       std::string(bar, '#'));
  }
  if (t <= 40 && matrix.shape(0) >= 1) {
    double m = 0;
    bool negative = false;
    for (std::size_t k = 0; k < matrix.size(); ++k) {
      m = std::max(m, static_cast<double>(std::abs(matrix.data()[k])));
      negative = negative || matrix.data()[k] < 0;
    }
    out += fmt::format("matrix: rows = positions, columns = tokens; shade of {}/{:.3g}, ' .:-=+*#%@' from 0 to 1\n",
                       negative ? "|value|" : "value", m);
    out += fmt::format("{:>22}", "");
    for (std::size_t j = 0; j < t; ++j) out += fmt::format("{:<2}", j % 10);
    out += "\n";
    for (std::size_t r = 0; r < matrix.shape(0); ++r) {
      out += fmt::format("  {:>3} {:<16} ", rows[r], clip(words[rows[r]], 16));
      for (std::size_t j = 0; j < t; ++j) {
        out += shade(m > 0 ? std::abs(matrix(r, j)) / m : 0.0);
        out += ' ';
      }
      out += "\n";
    }
  }
  return out;
}

// The JSON of an outcome: the relevance document, or the raw attention document of the selection.
report::json outcome_json(const attention_outcome& o, const std::vector<std::string>& words) {
  return o.relevance ? report::to_json(*o.relevance, words) : report::to_json(o.raw, words, o.selection);
}

void print_outcome(const attention_outcome& o, const loaded_model& m, const std::vector<std::string>& words,
                   std::size_t position, std::size_t top) {
  const std::size_t t = words.size(), layers = m.model.n_layer(), heads = m.model.n_head();
  if (o.relevance) {
    const auto& r = *o.relevance;
    std::string title = fmt::format("{} | {} tokens | levels {} to {}", r.method, t, r.first_layer, r.last_layer);
    std::vector<named_option> shown;
    for (const auto& x : r.options)
      if (x.name != "position" && x.name != "first_layer") shown.push_back(x);
    if (!shown.empty()) title += " | " + options_line(shown);
    if (r.target)
      title += fmt::format("\ntarget  {} = {:.4f} ('{}')", r.target->describe(), r.target_value,
                           m.token_strings(std::vector<token_id>{r.target->token()})[0]);
    if (r.method == "attention_flow" && r.row_positions.size() < t)
      title += fmt::format("\nflow rows: {} of {} (--all-rows solves every position)", r.row_positions.size(), t);
    fmt::print("{}", terminal_view(title, r.matrix, r.row_positions, r.scores, position,
                                   "what the explained position draws on", words, top));
    return;
  }
  const std::size_t l = report::selected_layer(o.raw, o.selection);
  const tensor2 map = report::selected_map(o.raw, o.selection);
  std::vector<std::size_t> rows(t);
  std::iota(rows.begin(), rows.end(), std::size_t{0});
  const std::string title =
      fmt::format("raw attention | {} tokens | layer {} of {} | {}", t, l, layers,
                  o.selection.head ? fmt::format("head {} of {}", *o.selection.head, heads)
                                   : fmt::format("{} of {} heads", to_string(o.raw.aggregation), heads));
  fmt::print("{}", terminal_view(title, map, rows, outcome_scores(o, position), position,
                                 "attention of the explained position", words, top));
}

}  // namespace

runner add_attention_command(CLI::App& app) {
  struct state {
    std::string model, json, html, method = "attention_rollout", target, data, out;
    input_options input;
    std::optional<std::size_t> position;
    std::size_t top = 8, threads = 0;
    bool resume = false;
    method_options method_flags;
    command_options options;
    bool given(std::string_view name) const { return options.given(name); }
  };
  auto s = std::make_shared<state>();
  auto* cmd = app.add_subcommand("attention",
                                 "Show what the model attends to for one input, or for every line of a --data file: "
                                 "raw attention, rollout, flow, attention x gradient, Chefer relevance, "
                                 "gradient-weighted rollout (docs/attention.md; `glassbox methods` lists each)");
  auto add = [&](CLI::Option* o) { return s->options.add(o); };
  std::string names;
  for (const auto& m : attention_methods()) names += (names.empty() ? "" : ", ") + m.info.cli_name();
  add(cmd->add_option("--model", s->model, "model file or directory (default: the bundled model)"));
  s->input.add_to(*cmd);
  s->options.add_all(*cmd);
  add(cmd->add_option("--method", s->method, fmt::format("attention method: {}", names))->capture_default_str());
  add(cmd->add_option("--position", s->position, "the explained position (default the last)"));
  add(cmd->add_option("--target", s->target,
                      "gradient methods: the explained next token (word or id); default the model's top prediction"));
  s->method_flags.add_to(*cmd, infos(attention_methods()));
  add(cmd->add_option("--top", s->top, "tokens listed in the terminal")->capture_default_str()->check(CLI::PositiveNumber));
  add(cmd->add_option("--threads", s->threads, "the thread budget: cores kept busy in all (0 = all cores)")
          ->capture_default_str());
  add(cmd->add_option("--data", s->data,
                      "every line of this JSON-lines file ({\"text\": ...} or {\"token_ids\": [...]}) into --out"));
  add(cmd->add_option("--out", s->out, "--data: write one result line per input to this file"));
  add(cmd->add_flag("--resume", s->resume, "--data: keep the results already in --out and go on after them"));
  add(cmd->add_option("--json", s->json, "write a glassbox.attention document to this file ('-' = stdout)"));
  add(cmd->add_option("--html", s->html, "write a self-contained HTML view to this file"));
  return [s] {
    const pass_threads_scope threads(s->threads);  // the budget also covers direct model calls
    const attention_method& method = find_method(attention_methods(), s->method);
    const option_values given = s->method_flags.given();
    check_options_apply(method.info, given, infos(attention_methods()));
    if (!s->target.empty() && method.info.family != "gradient")
      detail::fail("--target applies to the gradient methods (attgrad, chefer-relevance, gradient-weighted-rollout), "
                   "got --method {}",
                   method.info.cli_name());
    check_output_path(s->json, "--json");
    check_output_path(s->html, "--html");
    if (s->given("--data") != s->given("--out")) detail::fail("--data and --out go together");
    if (s->resume && !s->given("--data")) detail::fail("--resume applies with --data and --out");
    check_output_path(s->out, "--out");
    const auto m = load_model(s->model);
    execution_options exec;
    exec.threads = s->threads;
    exec.on_progress = progress_bar();
    auto run = [&](token_span ids, const execution_options& e, const std::optional<std::string>& line_target) {
      const std::size_t position = s->position.value_or(ids.size() - 1);
      if (position >= ids.size())
        detail::fail("--position must be < {} (the input's tokens), got {}", ids.size(), position);
      std::optional<token_id> explained;
      if (line_target) explained = resolve_token(m, *line_target, "target");
      if (!s->target.empty()) explained = resolve_token(m, s->target, "--target");
      return method.run(attention_call{m, ids, position, explained, e}, given);
    };
    if (s->given("--data")) {
      for (auto name : {"--text", "--tokens", "--json", "--html"})
        if (s->given(name)) detail::fail("{} does not apply with --data (each line is an input; results go to --out)", name);
      const std::vector<data_line> lines = read_data_lines(s->data, m);
      results_file out(s->out, s->resume, lines.size());
      std::vector<method_summary> summary(1);
      summary[0].method = method.info.name;
      const auto start = std::chrono::steady_clock::now();
      const std::size_t first = out.done();
      for_each_input(
          lines.size() - first,
          [&](std::size_t i, const execution_options& e) {
            const data_line& line = lines[first + i];
            line.check();
            return std::pair{line.tokens, run(line.tokens, e, method.info.family == "gradient" ? line.target
                                                                                               : std::nullopt)};
          },
          [&](std::size_t, const std::pair<token_sequence, attention_outcome>& r) {
            out.append(outcome_json(r.second, m.token_strings(r.first)).dump());
            const std::size_t position = s->position.value_or(r.first.size() - 1);
            summary[0].add(outcome_scores(r.second, position), review_truth(m, r.first, position),
                           r.second.relevance ? r.second.relevance->model_evaluations : 1);
          },
          exec);
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      fmt::print(stderr, "{}", batch_summary(summary, lines.size(), first, seconds, s->out));
      return;
    }
    const token_sequence ids = s->input.resolve(m);
    const std::size_t position = s->position.value_or(ids.size() - 1);
    attention_outcome o = run(ids, exec, std::nullopt);
    if (o.relevance) {
      o.relevance->token_ids = ids;
      o.relevance->model_evaluations = std::max<std::size_t>(o.relevance->model_evaluations, 1);
    }
    const auto words = m.token_strings(ids);
    if (s->json != "-") print_outcome(o, m, words, position, s->top);
    if (!s->json.empty()) write_json(s->json, outcome_json(o, words));
    if (!s->html.empty()) {
      report::attention_view_options view;
      view.layer = o.selection.layer;
      view.head = o.selection.head;
      write_text(s->html, report::attention_html(o.raw, o.relevance ? &*o.relevance : nullptr,
                                                 m.token_strings(ids, token_style::html), view));
    }
  };
}

namespace {

/// The examples of `glassbox heads`: the lines of a --data file with a label, or generated reviews.
std::vector<labelled_example> head_examples(const loaded_model& m, const std::string& file,
                                            std::optional<std::size_t> n, std::uint64_t seed, std::string& described) {
  std::vector<labelled_example> out;
  if (!file.empty()) {
    for (const data_line& line : read_data_lines(file, m)) {
      if (n && out.size() >= *n) break;
      line.check();
      if (!line.label) detail::fail("{} line {}: a label is needed (a word of the vocabulary or a token id)", file, line.number);
      out.push_back({line.tokens, resolve_token(m, *line.label, fmt::format("{} line {}: label", file, line.number))});
    }
    described = fmt::format("{} examples of {}", out.size(), file);
    return out;
  }
  if (!has_review_vocabulary(m) && !(m.model.vocab_size() == datasets::review_vocab_size() && !m.has_vocabulary()))
    detail::fail(
        "the default data are reviews of the synthetic language, whose vocabulary does not match the model's; "
        "pass --data");
  const auto reviews = datasets::generate_reviews(n.value_or(200), seed);
  for (const auto& r : reviews) out.push_back({r.tokens, r.true_label});
  described = fmt::format("{} generated reviews of seed {}, labelled at the marker", out.size(), seed);
  return out;
}

std::string head_table(const std::string& title, const tensor2& m, const std::string& format) {
  std::string out = title + "\n        ";
  for (std::size_t h = 0; h < m.shape(1); ++h) out += fmt::format("{:>9}", fmt::format("head {}", h));
  out += "\n";
  for (std::size_t l = 0; l < m.shape(0); ++l) {
    out += fmt::format("  layer {}", l);
    for (std::size_t h = 0; h < m.shape(1); ++h) out += fmt::format(fmt::runtime(format), m(l, h));
    out += "\n";
  }
  return out;
}

}  // namespace

runner add_heads_command(CLI::App& app) {
  struct state {
    std::string model, data, json, html, normalization = "layer";
    std::optional<std::size_t> n;
    std::uint64_t seed = 2;
    std::size_t threads = 0, heads_per_step = 1;
    bool recompute = false, no_ablation = false;
  };
  auto s = std::make_shared<state>();
  auto* cmd = app.add_subcommand("heads",
                                 "Head statistics, head importance (Michel et al. 2019), the ablation check and the "
                                 "pruning curve over a data set (docs/attention.md)");
  cmd->add_option("--model", s->model, "model file or directory (default: the bundled model)");
  cmd->add_option("--data", s->data,
                  "JSON lines with token_ids and label (as written by generate-data); default: generated reviews");
  cmd->add_option("--n", s->n, "number of examples (default: 200 generated reviews, or every line of --data)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--seed", s->seed, "seed of the generated reviews (2 = held out from training)")
      ->capture_default_str();
  cmd->add_option("--heads-per-step", s->heads_per_step, "pruning: heads masked per step")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--normalization", s->normalization,
                  "importance: layer (L2 per layer, Michel et al.), global (then min-max to [0, 1]) or none")
      ->capture_default_str()
      ->check(CLI::IsMember({"layer", "global", "none"}));
  cmd->add_flag("--recompute-importance", s->recompute, "pruning: recompute importance after each step");
  cmd->add_flag("--no-ablation", s->no_ablation, "skip the single-head ablation ((L H + 1) N forward passes)");
  cmd->add_option("--threads", s->threads, "worker threads (0 = all cores)")->capture_default_str();
  cmd->add_option("--json", s->json, "write a glassbox.heads document to this file ('-' = stdout)");
  cmd->add_option("--html", s->html, "write a self-contained HTML view to this file");
  return [s] {
    const pass_threads_scope threads(s->threads);  // the budget also covers direct model calls
    const auto m = load_model(s->model);
    report::head_report rep;
    const auto examples = head_examples(m, s->data, s->n, s->seed, rep.data);
    const std::span<const labelled_example> data(examples);
    std::set<token_id> labels;
    for (const auto& e : examples) labels.insert(e.label);
    std::vector<token_id> candidates;
    if (labels.size() >= 2) candidates.assign(labels.begin(), labels.end());
    execution_options exec;
    exec.threads = s->threads;
    exec.on_progress = progress_bar();

    std::vector<token_sequence> inputs;
    for (const auto& e : examples) inputs.push_back(e.tokens);
    head_statistics_options so;
    so.execution = exec;
    rep.statistics = head_statistics(m.model, std::span<const token_sequence>(inputs), so);
    const bool by_layer = s->normalization != "none", globally = s->normalization == "global";
    head_importance_options io;
    io.normalize_by_layer = by_layer;
    io.normalize_globally = globally;
    io.candidates = candidates;
    io.execution = exec;
    rep.importance = head_importance(m.model, data, io);
    if (!s->no_ablation) {
      head_ablation_options ao;
      ao.candidates = candidates;
      ao.execution = exec;
      rep.ablation = head_ablation(m.model, data, ao);
    }
    pruning_options po;
    po.candidates = candidates;
    po.execution = exec;
    po.heads_per_step = s->heads_per_step;
    po.normalize_by_layer = by_layer;
    po.normalize_globally = globally;
    po.recompute_importance = s->recompute;
    rep.pruning = head_pruning_curve(m.model, data, po);

    if (s->json != "-") {
      const auto& st = *rep.statistics;
      std::string candidates_text;
      for (token_id c : candidates)
        candidates_text += (candidates_text.empty() ? "" : ", ") + m.token_strings(std::vector<token_id>{c})[0];
      fmt::print("heads of {} ({} layers x {} heads) over {}\n", m.path.string(), st.layers, st.heads, rep.data);
      fmt::print("target: log p(label) at the last position; accuracy among {}\n\n",
                 candidates.empty() ? std::string("the whole vocabulary") : candidates_text);
      fmt::print("{}\n", head_table(fmt::format("head importance E|d log p(label) / d mask| (Michel et al.), {}",
                                                s->normalization == "none" ? "not normalised"
                                                : by_layer && !globally    ? "normalised per layer"
                                                                           : "normalised per layer, then to [0, 1]"),
                                    rep.importance->importance, s->normalization == "none" ? "{:>9.2e}" : "{:>9.3f}"));
      if (rep.ablation) {
        fmt::print("{}\n",
                   head_table(fmt::format("ablation: change of accuracy with the head masked alone (base {:.3f})",
                                          rep.ablation->base_accuracy),
                              rep.ablation->accuracy_change, "{:>+9.3f}"));
        fmt::print("{}\n", head_table(fmt::format("ablation: change of mean log p(label) (base {:.4f})",
                                                  rep.ablation->base_mean_target),
                                      rep.ablation->target_change, "{:>+9.4f}"));
      }
      fmt::print("{}\n", head_table("normalised entropy (1 = uniform)", st.normalized_entropy, "{:>9.3f}"));
      fmt::print("{}\n", head_table("mean attention distance (positions)", st.mean_distance, "{:>9.2f}"));
      fmt::print("{}\n", head_table("attention to the first token (sink)", st.first_token, "{:>9.3f}"));
      fmt::print("{}\n", head_table("attention to the previous token", st.previous_token, "{:>9.3f}"));
      if (st.js_divergence.size() > 0) {
        std::vector<std::pair<double, std::pair<std::size_t, std::size_t>>> pairs;
        const std::size_t n = st.js_divergence.shape(0);
        for (std::size_t a = 0; a < n; ++a)
          for (std::size_t b = a + 1; b < n; ++b) pairs.push_back({st.js_divergence(a, b), {a, b}});
        std::sort(pairs.begin(), pairs.end());
        fmt::print("most redundant head pairs (mean Jensen-Shannon divergence, nats; ln 2 = {:.3f} is disjoint):\n",
                   std::log(2.0));
        for (std::size_t k = 0; k < std::min<std::size_t>(5, pairs.size()); ++k) {
          const auto [a, b] = pairs[k].second;
          fmt::print("  L{}H{} ~ L{}H{}  {:.4f}\n", a / st.heads, a % st.heads, b / st.heads, b % st.heads,
                     pairs[k].first);
        }
        fmt::print("\n");
      }
      const auto& c = *rep.pruning;
      fmt::print(
          "pruning curve (least important heads masked first):\n  heads masked  accuracy  mean log p(label)  masked\n");
      for (std::size_t k = 0; k < c.heads_masked.size(); ++k) {
        std::string removed;
        if (k > 0)
          for (std::size_t q = c.heads_masked[k - 1]; q < c.heads_masked[k]; ++q)
            removed +=
                fmt::format("{}L{}H{}", removed.empty() ? "" : " ", c.pruning_order[q].layer, c.pruning_order[q].head);
        fmt::print("  {:>12}  {:>8.3f}  {:>16.4f}  {}\n", c.heads_masked[k], c.accuracy[k], c.mean_target[k], removed);
      }
      fmt::print("heads needed for 99% of the full accuracy: {} of {}\n", c.heads_needed(0.99), c.layers * c.heads);
    }
    if (!s->json.empty()) write_json(s->json, report::to_json(rep));
    if (!s->html.empty()) write_text(s->html, report::heads_html(rep));
  };
}

}  // namespace glassbox::cli

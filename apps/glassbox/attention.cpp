// glassbox attention: raw attention, rollout, flow, AttGrad or Chefer relevance of one input.
// glassbox heads: head statistics, importance, the ablation check and the pruning curve over a data set.
#include "glassbox/attention.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <numeric>
#include <set>

#include "cli.hpp"
#include "glassbox/datasets/reviews.hpp"
#include "glassbox/report/attention_html.hpp"
#include "glassbox/report/attention_json.hpp"

namespace glassbox::cli {

namespace {

head_aggregation parse_aggregation(const std::string& s) {
  if (s == "max") return head_aggregation::max;
  if (s == "min") return head_aggregation::min;
  return head_aggregation::mean;
}

/// A token given as a word of the vocabulary or as an id.
token_id parse_token(const loaded_model& m, const std::string& what, const std::string& option) {
  if (m.has_vocabulary())
    if (const auto id = m.vocabulary.find(what)) return *id;
  const auto ids = [&] {
    try {
      return parse_token_list(what);
    } catch (const error&) {
      detail::fail("{}: '{}' is neither a word of the vocabulary nor a token id", option, what);
    }
  }();
  if (ids.size() != 1 || static_cast<std::size_t>(ids[0]) >= m.model.vocab_size())
    detail::fail("{}: '{}' is neither a word of the vocabulary nor a token id < {}", option, what,
                 m.model.vocab_size());
  return ids[0];
}

/// A progress line on stderr when it is a terminal; nothing otherwise.
progress_callback progress_line() {
  if (!isatty(fileno(stderr))) return {};
  return [](const progress& p) {
    if (p.total > 0) {
      const std::size_t width = 30, filled = p.done * width / p.total;
      fmt::print(stderr, "\r{:<20} [{}{}] {}/{}", p.stage, std::string(filled, '#'), std::string(width - filled, '.'),
                 p.done, p.total);
      if (p.done >= p.total) fmt::print(stderr, "\r{:<70}\r", "");
    }
    return true;
  };
}

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

std::string option_text(const std::vector<named_option>& options) {
  std::string s;
  for (const auto& o : options) {
    if (o.name == "position" || o.name == "first_layer") continue;
    s += fmt::format("{}{} = {}", s.empty() ? "" : ", ", o.name, report::detail::option_json(o.value).dump());
  }
  return s;
}

}  // namespace

runner add_attention_command(CLI::App& app) {
  struct state {
    std::string model, json, html, method = "rollout", aggregation = "mean", product = "left", target;
    input_options input;
    std::optional<std::size_t> layer, head, position;
    double residual = 0.5;
    bool positive_only = false, all_rows = false;
    std::size_t top = 8, threads = 0;
  };
  auto s = std::make_shared<state>();
  auto* cmd = app.add_subcommand("attention",
                                 "Show what the model attends to for one input: raw attention, rollout, flow, "
                                 "attention x gradient or Chefer relevance (docs/attention.md)");
  cmd->add_option("--model", s->model, "model file or directory (default: the bundled model)");
  s->input.add_to(*cmd);
  cmd->add_option("--method", s->method,
                  "raw: attention maps; rollout, flow: Abnar & Zuidema 2020; attgrad: attention x gradient; "
                  "chefer: Chefer et al. 2021 relevance")
      ->capture_default_str()
      ->check(CLI::IsMember({"raw", "rollout", "flow", "attgrad", "chefer"}));
  cmd->add_option("--layer", s->layer,
                  "raw: the layer shown (default the last); rollout, flow: go up to the output of this layer "
                  "(default all layers)");
  cmd->add_option("--head", s->head, "raw: the head shown (default the heads combined)");
  cmd->add_option("--position", s->position, "the explained position (default the last)");
  cmd->add_option("--aggregation", s->aggregation, "raw, rollout, flow: how a layer's heads are combined")
      ->capture_default_str()
      ->check(CLI::IsMember({"mean", "max", "min"}));
  cmd->add_option("--residual", s->residual, "rollout, flow: r in rownorm((1 - r) W + r I)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--product", s->product, "rollout: left (the paper's order) or right")
      ->capture_default_str()
      ->check(CLI::IsMember({"left", "right"}));
  cmd->add_flag("--all-rows", s->all_rows,
                "flow: solve every position's row (T^2 max-flows); default: every row when T <= 64, else only the "
                "explained position");
  cmd->add_option("--target", s->target,
                  "attgrad, chefer: the explained next token (word or id); default the model's top prediction");
  cmd->add_flag("--positive-only", s->positive_only, "attgrad: average max(A x grad, 0) over heads");
  cmd->add_option("--top", s->top, "tokens listed in the terminal")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--threads", s->threads, "flow: worker threads (0 = all cores)")->capture_default_str();
  cmd->add_option("--json", s->json, "write a glassbox.attention document to this file ('-' = stdout)");
  cmd->add_option("--html", s->html, "write a self-contained HTML view to this file");
  return [s] {
    const auto m = load_model(s->model);
    const token_sequence ids = s->input.resolve(m);
    const std::size_t t = ids.size(), layers = m.model.n_layer(), heads = m.model.n_head();
    const std::string& method = s->method;
    if (s->layer && *s->layer >= layers)
      detail::fail("--layer must be < {} (the model's layers), got {}", layers, *s->layer);
    if (s->head && *s->head >= heads) detail::fail("--head must be < {} (the model's heads), got {}", heads, *s->head);
    if (s->position && *s->position >= t)
      detail::fail("--position must be < {} (the input's tokens), got {}", t, *s->position);
    if (s->head && method != "raw") detail::fail("--head applies to --method raw only, got --method {}", method);
    if (s->layer && (method == "attgrad" || method == "chefer"))
      detail::fail("--layer applies to --method raw, rollout and flow, got --method {}", method);
    if (!s->target.empty() && method != "attgrad" && method != "chefer")
      detail::fail("--target applies to --method attgrad and chefer, got --method {}", method);
    const std::size_t position = s->position.value_or(t - 1);
    const auto words = m.token_strings(ids);
    const head_aggregation aggregation = parse_aggregation(s->aggregation);
    const attention_maps_result raw = raw_attention(m.model, ids, aggregation);
    report::attention_view_options view;
    view.layer = s->layer;
    view.head = s->head;

    std::optional<attention_relevance_result> relevance;
    if (method == "rollout") {
      rollout_options o;
      o.aggregation = aggregation;
      o.residual = s->residual;
      o.product = s->product == "right" ? rollout_product::right : rollout_product::left;
      if (s->layer) o.last_layer = *s->layer + 1;
      o.position = position;
      relevance = attention_rollout(raw.attentions, o);
    } else if (method == "flow") {
      flow_options o;
      o.aggregation = aggregation;
      o.residual = s->residual;
      if (s->layer) o.last_layer = *s->layer + 1;
      if (!s->all_rows && t > 64) o.sources = {position};
      o.position = position;
      o.execution.threads = s->threads;
      relevance = attention_flow(raw.attentions, o);
    } else if (method == "attgrad" || method == "chefer") {
      token_id explained = 0;
      if (!s->target.empty()) {
        explained = parse_token(m, s->target, "--target");
      } else {
        const tensor2 logits = m.model.logits(ids);
        for (std::size_t v = 1; v < logits.shape(1); ++v)
          if (logits(position, v) > logits(position, static_cast<std::size_t>(explained)))
            explained = static_cast<token_id>(v);
      }
      const target f = target::log_prob(explained, static_cast<std::ptrdiff_t>(position));
      if (method == "attgrad") {
        attgrad_options o;
        o.positive_only = s->positive_only;
        o.position = position;
        relevance = attgrad(m.model, ids, f, o);
      } else {
        chefer_options o;
        o.position = position;
        relevance = chefer_relevance(m.model, ids, f, o);
      }
    }
    if (relevance) {
      relevance->token_ids = ids;
      relevance->model_evaluations = std::max<std::size_t>(relevance->model_evaluations, 1);
    }

    if (s->json != "-") {
      std::string title;
      if (relevance) {
        title = fmt::format("{} | {} tokens | levels {} to {}", relevance->method, t, relevance->first_layer,
                            relevance->last_layer);
        if (const auto o = option_text(relevance->options); !o.empty()) title += " | " + o;
        if (relevance->target)
          title += fmt::format("\ntarget  {} = {:.4f} ('{}')", relevance->target->describe(), relevance->target_value,
                               m.token_strings(std::vector<token_id>{relevance->target->token()})[0]);
        if (method == "flow" && relevance->row_positions.size() < t)
          title += fmt::format("\nflow rows: {} of {} (--all-rows solves every position)",
                               relevance->row_positions.size(), t);
        const bool column_sums = method == "attgrad";
        fmt::print("{}", terminal_view(title, relevance->matrix, relevance->row_positions, relevance->scores, position,
                                       column_sums ? "column sums (all attention into each token)"
                                                   : "what the explained position draws on",
                                       words, s->top));
      } else {
        const report::attention_selection sel{s->layer, s->head};
        const std::size_t l = report::selected_layer(raw, sel);
        const tensor2 map = report::selected_map(raw, sel);
        std::vector<std::size_t> rows(t);
        std::iota(rows.begin(), rows.end(), std::size_t{0});
        std::vector<double> scores(t);
        for (std::size_t j = 0; j < t; ++j) scores[j] = map(position, j);
        title = fmt::format("raw attention | {} tokens | layer {} of {} | {}", t, l, layers,
                            s->head ? fmt::format("head {} of {}", *s->head, heads)
                                    : fmt::format("{} of {} heads", s->aggregation, heads));
        fmt::print("{}", terminal_view(title, map, rows, scores, position, "attention of the explained position", words,
                                       s->top));
      }
    }
    if (!s->json.empty()) {
      const report::attention_selection sel{s->layer, s->head};
      write_json(s->json, relevance ? report::to_json(*relevance, words) : report::to_json(raw, words, sel));
    }
    if (!s->html.empty())
      write_text(s->html, report::attention_html(raw, relevance ? &*relevance : nullptr, words, view));
  };
}

namespace {

/// The examples of `glassbox heads`: a JSON-lines file of generate-data, or generated reviews.
std::vector<labelled_example> head_examples(const loaded_model& m, const std::string& file,
                                            std::optional<std::size_t> n, std::uint64_t seed, std::string& described) {
  std::vector<labelled_example> out;
  if (!file.empty()) {
    std::ifstream in(file, std::ios::binary);
    if (!in) detail::fail("cannot read {}", file);
    std::string line;
    std::size_t number = 0;
    while (std::getline(in, line) && (!n || out.size() < *n)) {
      ++number;
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      report::json j;
      try {
        j = report::json::parse(line);
      } catch (const std::exception&) {
        detail::fail("{} line {} is not valid JSON", file, number);
      }
      if (!j.is_object() || !j.contains("token_ids") || !j["token_ids"].is_array() || !j.contains("label"))
        detail::fail("{} line {} must be an object with token_ids (array) and label", file, number);
      labelled_example e;
      for (const auto& x : j["token_ids"]) {
        if (!x.is_number_integer() || x.get<long long>() < 0 ||
            static_cast<std::size_t>(x.get<long long>()) >= m.model.vocab_size())
          detail::fail("{} line {}: token id {} is out of range (the vocabulary has {} tokens)", file, number, x.dump(),
                       m.model.vocab_size());
        e.tokens.push_back(x.get<token_id>());
      }
      if (e.tokens.empty()) detail::fail("{} line {}: token_ids is empty", file, number);
      if (e.tokens.size() > m.model.max_positions())
        detail::fail("{} line {}: {} tokens; the model accepts at most {}", file, number, e.tokens.size(),
                     m.model.max_positions());
      const auto& label = j["label"];
      if (label.is_string()) {
        e.label = parse_token(m, label.get<std::string>(), fmt::format("{} line {}: label", file, number));
      } else if (label.is_number_integer() && label.get<long long>() >= 0 &&
                 static_cast<std::size_t>(label.get<long long>()) < m.model.vocab_size()) {
        e.label = label.get<token_id>();
      } else {
        detail::fail("{} line {}: label must be a word of the vocabulary or a token id, got {}", file, number,
                     label.dump());
      }
      out.push_back(std::move(e));
    }
    if (out.empty()) detail::fail("{} holds no examples", file);
    described = fmt::format("{} examples of {}", out.size(), file);
    return out;
  }
  const auto vocabulary = datasets::review_vocabulary();
  bool matches = m.model.vocab_size() == vocabulary.size();
  if (matches && m.has_vocabulary())
    for (std::size_t k = 0; k < vocabulary.size() && matches; ++k)
      matches = m.vocabulary.token(static_cast<token_id>(k)) == vocabulary[k];
  if (!matches)
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
    exec.on_progress = progress_line();

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

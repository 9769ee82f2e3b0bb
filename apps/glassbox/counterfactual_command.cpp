// glassbox counterfactual (docs/cli.md, "Counterfactuals"; docs/counterfactual.md): the fewest token
// edits (deletion or substitution) that flip the prediction or move a token's probability past a
// threshold, by greedy or beam search, with the edits, both predictions and the model calls.
#include "counterfactual_command.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "glassbox/counterfactual/search.hpp"
#include "glassbox/datasets/reviews.hpp"
#include "glassbox/report/html.hpp"
#include "glassbox/report/json.hpp"
#include "review_truth.hpp"

namespace glassbox::cli {

namespace {

using report::json;

// The text of a token sequence: the BPE bytes decoded (ill-formed UTF-8 replaced), else the token
// strings joined by spaces.
std::string text_of(const loaded_model& m, token_span ids) {
  if (m.bpe) return io::replace_invalid_utf8(m.bpe->decode(ids));
  std::string out;
  for (const auto& w : m.token_strings(ids)) out += (out.empty() ? "" : " ") + w;
  return out;
}

// What the command searches for, from the model and the flags.
struct search_plan {
  counterfactual_goal goal;
  counterfactual_options options;
  token_id target = -1;  // the --target token of a threshold goal, else -1
  std::string describe;  // the goal in words
};

// The goal and options: --target T gives a threshold goal on p(T) at the last position; else a
// label flip at the last position, over positive/negative on the bundled review model (every `=>`
// fixed, substitutions by the review words) and over every output on other models (the last token
// fixed; without a pad token no deletion, and the greedy order by input x gradient).
search_plan plan_search(const loaded_model& m, token_span tokens, const std::string& target, double threshold,
                        const std::string& candidates) {
  const bool reviews = has_review_vocabulary(m);
  counterfactual_options o;
  std::string describe;
  if (reviews) {
    for (std::size_t i = 0; i < tokens.size(); ++i)
      if (tokens[i] == datasets::review_marker_id) o.fixed_positions.push_back(i);
    for (token_id id = datasets::review_negative_id + 1; id < static_cast<token_id>(datasets::review_vocab_size());
         ++id)
      o.candidates.push_back(id);
  } else {
    o.fixed_positions = {tokens.size() - 1};
    if (!m.model.pad_token()) {
      o.deletion = false;
      o.guidance = counterfactual_guidance::input_x_gradient;
    }
  }
  if (!candidates.empty()) {
    o.candidates.clear();
    for (auto item : split_list(candidates)) o.candidates.push_back(resolve_token(m, item, "--candidates"));
  }
  token_id target_id = -1;
  if (!target.empty()) {
    target_id = resolve_token(m, target, "--target");
    describe = fmt::format("p({}) at the last position crosses {}", m.token_string(target_id), threshold);
    return {counterfactual_goal::threshold(glassbox::target::probability(target_id, -1), threshold), std::move(o),
            target_id, std::move(describe)};
  }
  if (reviews) {
    describe = "the label (positive vs negative) at the last position flips";
    return {counterfactual_goal::label_flip({datasets::review_positive_id, datasets::review_negative_id}, -1),
            std::move(o), target_id, std::move(describe)};
  }
  describe = "the top next token at the last position changes";
  return {counterfactual_goal::label_flip({}, -1), std::move(o), target_id, std::move(describe)};
}

// The prediction of the original (or edited) input in words: the label, or p(target) for a threshold goal.
std::string prediction_text(const counterfactual_result& r, const search_plan& p, const loaded_model& m, bool original,
                            token_style style = token_style::terminal) {
  const token_id label = original ? r.original_prediction : r.new_prediction;
  if (label >= 0) return m.token_string(label, style);
  return fmt::format("p({}) = {:.4f}", m.token_string(p.target, style), original ? r.original_value : r.new_value);
}

json prediction_json(const loaded_model& m, token_id label) {
  return label >= 0 ? json(m.token_string(label)) : json(nullptr);
}

json counterfactual_json(const counterfactual_result& r, const search_plan& p, const loaded_model& m) {
  json j;
  j["schema"] = "glassbox.counterfactual";
  j["version"] = 1;
  j["method"] = r.method;
  j["search"] = std::string(to_string(p.options.search));
  json goal;
  if (p.goal.kind() == counterfactual_goal_kind::label_flip) {
    goal["kind"] = "label_flip";
    json labels = json::array();
    for (token_id l : p.goal.labels()) labels.push_back(m.token_string(l));
    goal["labels"] = std::move(labels);
  } else {
    goal["kind"] = "threshold";
    goal["target"] = m.token_string(p.target);
    goal["threshold"] = p.goal.threshold_value();
  }
  goal["position"] = p.goal.target().position();
  j["goal"] = std::move(goal);
  j["original"] = text_of(m, r.original);
  j["edited"] = text_of(m, r.edited);
  j["original_tokens"] = m.token_strings(r.original);
  j["edited_tokens"] = m.token_strings(r.edited);
  j["original_ids"] = r.original;
  j["edited_ids"] = r.edited;
  json edits = json::array();
  for (const auto& e : r.edits)
    edits.push_back(json{{"position", e.position},
                         {"from", m.token_string(e.from)},
                         {"to", m.token_string(e.to)},
                         {"from_id", e.from},
                         {"to_id", e.to}});
  j["edits"] = std::move(edits);
  j["found"] = r.found;
  j["minimal"] = r.minimal;
  j["original_prediction"] = prediction_json(m, r.original_prediction);
  j["new_prediction"] = prediction_json(m, r.new_prediction);
  j["original_value"] = number_or_null(r.original_value);
  j["new_value"] = number_or_null(r.new_value);
  j["model_calls"] = r.model_evaluations;
  json options = json::object();
  for (const auto& o : r.options) options[o.name] = report::detail::option_json(o.value);
  j["options"] = std::move(options);
  return j;
}

std::string counterfactual_text(const counterfactual_result& r, const search_plan& p, const loaded_model& m) {
  std::string out = fmt::format("goal      {}\n", p.describe);
  out += fmt::format("original  {}   prediction {}\n", text_of(m, r.original), prediction_text(r, p, m, true));
  const std::string calls = fmt::format("{} search, {} model call{}", to_string(p.options.search), r.model_evaluations,
                                        r.model_evaluations == 1 ? "" : "s");
  if (!r.found) {
    out += fmt::format("no counterfactual within {} edit{} ({})\n", p.options.max_edits,
                       p.options.max_edits == 1 ? "" : "s", calls);
    return out;
  }
  out += fmt::format("edited    {}   prediction {}\n", text_of(m, r.edited), prediction_text(r, p, m, false));
  out += fmt::format("{} edit{}{} ({}):\n", r.edits.size(), r.edits.size() == 1 ? "" : "s",
                     r.minimal ? ", minimal (no edit can be dropped)" : "", calls);
  std::size_t from_width = 4;
  for (const auto& e : r.edits) from_width = std::max(from_width, m.token_string(e.from).size());
  out += fmt::format("{:>8}  {:<{}}  {}\n", "position", "from", from_width, "to");
  for (const auto& e : r.edits)
    out += fmt::format("{:>8}  {:<{}}  {}\n", e.position, m.token_string(e.from), from_width, m.token_string(e.to));
  return out;
}

// One input as token boxes; the edited positions highlighted (`cls`), with the other side's token on hover.
std::string tokens_html(const counterfactual_result& r, const loaded_model& m, bool edited) {
  const token_sequence& ids = edited ? r.edited : r.original;
  const auto words = m.token_strings(ids, token_style::html);
  std::string out = "<p class=\"tokens\">";
  for (std::size_t i = 0; i < ids.size(); ++i) {
    const auto e = std::find_if(r.edits.begin(), r.edits.end(), [&](const token_edit& x) { return x.position == i; });
    if (e == r.edits.end()) {
      out += "<span class=\"tok\">" + report::html_escape(words[i]) + "</span>";
      continue;
    }
    const std::string other = m.token_string(edited ? e->from : e->to, token_style::html);
    out += fmt::format("<span class=\"tok {}\" title=\"{} {}\">{}</span>", edited ? "edit" : "removed",
                       edited ? "was" : "becomes", report::html_escape(other), report::html_escape(words[i]));
  }
  return out + "</p>\n";
}

std::string counterfactual_html(const counterfactual_result& r, const search_plan& p, const loaded_model& m) {
  std::string body = fmt::format(
      "<h1>Counterfactual</h1>\n<p class=\"meta\">goal: {}; {} search, at most {} edits, "
      "{} model calls</p>\n",
      report::html_escape(p.describe), to_string(p.options.search), p.options.max_edits, r.model_evaluations);
  body += fmt::format("<h2>Original: prediction {}</h2>\n",
                      report::html_escape(prediction_text(r, p, m, true, token_style::html)));
  body += tokens_html(r, m, false);
  if (!r.found) {
    body += fmt::format("<p>No counterfactual within {} edits.</p>\n", p.options.max_edits);
  } else {
    body += fmt::format("<h2>Edited: prediction {}</h2>\n",
                        report::html_escape(prediction_text(r, p, m, false, token_style::html)));
    body += tokens_html(r, m, true);
    body += fmt::format("<p class=\"meta\">{} edit(s){}; hover a highlighted token for the other side</p>\n",
                        r.edits.size(), r.minimal ? ", minimal: no edit can be dropped" : "");
  }
  return report::html_document("glassbox counterfactual", body,
                               ".tok.edit{background:#ffd54f;border-color:#f9a825;font-weight:600}"
                               ".tok.removed{background:#eee;text-decoration:line-through;color:#777}");
}

}  // namespace

runner add_counterfactual_command(CLI::App& app) {
  struct state {
    std::string model, target, search = "beam", candidates, json, html;
    input_options input;
    std::size_t max_edits = 3, beam_width = 4;
    double threshold = 0.5;
  };
  auto s = std::make_shared<state>();
  auto* cmd = app.add_subcommand("counterfactual",
                                 "The fewest token edits (deletion or substitution) that change "
                                 "the prediction: a counterfactual explanation");
  cmd->add_option("--model", s->model, "model file or directory (default: the bundled model)");
  s->input.add_to(*cmd);
  auto* target = cmd->add_option("--target", s->target,
                                 "a token (word or id): the goal is that its probability at the last position "
                                 "crosses --threshold (default: the prediction changes)");
  cmd->add_option("--threshold", s->threshold, "the probability --target must cross (default 0.5)")
      ->check(CLI::Range(0.0, 1.0))
      ->needs(target);
  cmd->add_option("--max-edits", s->max_edits, "most edits a counterfactual may have (default 3)");
  cmd->add_option("--search", s->search, "beam (default) or greedy (positions in occlusion order)")
      ->check(CLI::IsMember({"beam", "greedy"}));
  cmd->add_option("--beam-width", s->beam_width, "beam search: states kept per step (default 4)");
  cmd->add_option("--candidates", s->candidates,
                  "substitution candidates, words or ids, comma-separated (default: the review words on the "
                  "bundled model, every token otherwise)");
  cmd->add_option("--json", s->json, "write a glassbox.counterfactual document to this file ('-' = stdout)");
  cmd->add_option("--html", s->html, "write the original and edited input, edits highlighted, to this HTML file");
  return [s] {
    if (s->max_edits == 0) detail::fail("--max-edits must be >= 1, got 0");
    if (s->beam_width == 0) detail::fail("--beam-width must be >= 1, got 0");
    check_output_path(s->json, "--json");
    check_output_path(s->html, "--html");
    const auto m = load_model(s->model);
    const token_sequence tokens = s->input.resolve(m);
    search_plan p = plan_search(m, tokens, s->target, s->threshold, s->candidates);
    p.options.search = s->search == "greedy" ? counterfactual_search::greedy : counterfactual_search::beam;
    p.options.max_edits = s->max_edits;
    p.options.beam_width = s->beam_width;
    const counterfactual_result r = glassbox::counterfactual(m.model, tokens, p.goal, p.options);
    if (s->json != "-") fmt::print("{}", counterfactual_text(r, p, m));
    if (!s->json.empty()) write_json(s->json, counterfactual_json(r, p, m));
    if (!s->html.empty()) write_text(s->html, counterfactual_html(r, p, m));
  };
}

}  // namespace glassbox::cli

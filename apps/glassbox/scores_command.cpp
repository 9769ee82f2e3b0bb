// glassbox scores (docs/cli.md, "Step scores"; docs/prompting.md): step scores of a teacher-forced
// continuation (--continuation) or a greedy generation (--generate N), as inseq's step functions.
#include "scores_command.hpp"

#include <fmt/format.h>

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "glassbox/prompting/step_scores.hpp"
#include "glassbox/report/color.hpp"
#include "glassbox/report/html.hpp"
#include "glassbox/report/json.hpp"

namespace glassbox::cli {

namespace {

using report::json;

json scores_json(const step_scores_result& r, const loaded_model& m) {
  json j;
  j["schema"] = "glassbox.scores";
  j["version"] = 1;
  j["method"] = "step_scores";
  j["tokens"] = m.token_strings(r.token_ids);
  j["token_ids"] = r.token_ids;
  j["prompt_length"] = r.prompt_length;
  j["generated"] = r.generated;
  json steps = json::array();
  for (std::size_t g = 0; g < r.steps.size(); ++g) {
    const auto& s = r.steps[g];
    json step{
        {"step", g},
        {"position", r.prompt_length + g},
        {"id", s.token},
        {"token", m.token_string(s.token)},
        {"probability", number_or_null(s.probability)},
        {"log_probability", number_or_null(s.log_probability)},
        {"entropy", number_or_null(s.entropy)},
        {"surprisal", number_or_null(s.surprisal)},
        {"contrast", s.foil >= 0 ? number_or_null(s.contrast) : json(nullptr)},
        {"foil", s.foil >= 0 ? json{{"id", s.foil}, {"token", m.token_string(s.foil)}} : json(nullptr)},
        {"top", {{"id", s.top_token}, {"token", m.token_string(s.top_token)}, {"probability", s.top_probability}}}};
    steps.push_back(std::move(step));
  }
  j["steps"] = std::move(steps);
  const auto& u = r.summary;
  j["summary"] = {{"mean_entropy", number_or_null(u.mean_entropy)},
                  {"max_entropy", number_or_null(u.max_entropy)},
                  {"mean_surprisal", number_or_null(u.mean_surprisal)},
                  {"sequence_log_probability", number_or_null(u.sequence_log_probability)},
                  {"perplexity", number_or_null(u.perplexity)},
                  {"least_confident_step", u.least_confident_step}};
  j["one_pass"] = r.one_pass;
  j["model_calls"] = r.model_evaluations;
  return j;
}

std::string scores_text(const step_scores_result& r, const loaded_model& m) {
  const auto words = m.token_strings(r.token_ids);
  std::string prompt, answer;
  for (std::size_t i = 0; i < words.size(); ++i) {
    std::string& part = i < r.prompt_length ? prompt : answer;
    part += (part.empty() ? "" : " ") + words[i];
  }
  const bool contrastive = !r.steps.empty() && r.steps.front().foil >= 0;
  std::string out = fmt::format("prompt  {}\nanswer  {}\n", prompt, answer);
  out += fmt::format("step scores ({}; entropy and surprisal in nats):\n",
                     r.generated ? "generated greedily" : "teacher-forced");
  out += fmt::format("{:>4}  {:<14} {:>8} {:>9} {:>8} {:>9}", "step", "token", "p", "log p", "entropy", "surprisal");
  if (contrastive) out += fmt::format(" {:>12}", "p - p(foil)");
  out += fmt::format("  {}\n", "top next token");
  for (std::size_t g = 0; g < r.steps.size(); ++g) {
    const auto& s = r.steps[g];
    out += fmt::format("{:>4}  {:<14} {:>8.4f} {:>9.4f} {:>8.4f} {:>9.4f}", g, m.token_string(s.token), s.probability,
                       s.log_probability, s.entropy, s.surprisal);
    if (contrastive) out += fmt::format(" {:>+12.4f}", s.contrast);
    out += fmt::format("  {} {:.4f}\n", m.token_string(s.top_token), s.top_probability);
  }
  const auto& u = r.summary;
  const auto& least = r.steps[u.least_confident_step];
  out += fmt::format(
      "summary: mean entropy {:.4f}, max entropy {:.4f}, mean surprisal {:.4f}, sequence log-probability {:.4f}, "
      "perplexity {:.4f}; least confident step {} ({}, p = {:.4f})\n",
      u.mean_entropy, u.max_entropy, u.mean_surprisal, u.sequence_log_probability, u.perplexity, u.least_confident_step,
      m.token_string(least.token), least.probability);
  if (contrastive) out += fmt::format("foil: {}\n", m.token_string(r.steps.front().foil));
  out += fmt::format("{} model call{}\n", r.model_evaluations, r.model_evaluations == 1 ? "" : "s");
  return out;
}

std::string scores_html(const step_scores_result& r, const loaded_model& m) {
  const auto words = m.token_strings(r.token_ids, token_style::html);
  std::string body = fmt::format(
      "<h1>Step scores</h1>\n<p class=\"meta\">{}; each answer token is coloured by its probability; hover for its "
      "scores (entropy and surprisal in nats)</p>\n<p class=\"tokens\">",
      r.generated ? "generated greedily" : "teacher-forced");
  for (std::size_t i = 0; i < r.prompt_length; ++i) body += "<span>" + report::html_escape(words[i]) + "</span> ";
  for (std::size_t g = 0; g < r.steps.size(); ++g) {
    const auto& s = r.steps[g];
    const auto color = report::sequential_color(s.probability);
    std::string title = fmt::format("p = {:.4f}, log p = {:.4f}, entropy {:.4f}, surprisal {:.4f}", s.probability,
                                    s.log_probability, s.entropy, s.surprisal);
    if (s.foil >= 0)
      title += fmt::format(", p - p({}) = {:+.4f}", m.token_string(s.foil, token_style::html), s.contrast);
    title += fmt::format("; top: {} ({:.4f})", m.token_string(s.top_token, token_style::html), s.top_probability);
    body += fmt::format("<span style=\"background:{};color:{}\" title=\"{}\">{}</span> ", report::css_color(color),
                        report::needs_light_text(color) ? "#fff" : "#000", report::html_escape(title),
                        report::html_escape(words[r.prompt_length + g]));
  }
  const auto& u = r.summary;
  body += fmt::format(
      "</p>\n<p class=\"meta\">mean entropy {:.4f}, max entropy {:.4f}, mean surprisal {:.4f}, sequence "
      "log-probability {:.4f}, perplexity {:.4f}; least confident step {}; {} model call(s)</p>\n",
      u.mean_entropy, u.max_entropy, u.mean_surprisal, u.sequence_log_probability, u.perplexity, u.least_confident_step,
      r.model_evaluations);
  return report::html_document("glassbox scores", body, "p.tokens span{padding:2px 3px;font-family:monospace}");
}

}  // namespace

runner add_scores_command(CLI::App& app) {
  struct state {
    std::string model, continuation, foil, json, html;
    input_options input;
    std::size_t generate = 0;
  };
  auto s = std::make_shared<state>();
  auto* cmd = app.add_subcommand("scores",
                                 "Step scores of an answer: probability, entropy, surprisal and contrast "
                                 "per generated token, and the answer's uncertainty");
  cmd->add_option("--model", s->model, "model file or directory (default: the bundled model)");
  s->input.add_to(*cmd);
  auto* cont = cmd->add_option("--continuation", s->continuation, "the answer to score, teacher-forced (text)");
  auto* gen = cmd->add_option("--generate", s->generate, "generate this many tokens greedily and score them")
                  ->check(CLI::PositiveNumber);
  cont->excludes(gen);
  gen->excludes(cont);
  cmd->add_option("--foil", s->foil, "a token (word or id): every step also reports p(token) - p(foil)");
  cmd->add_option("--json", s->json, "write a glassbox.scores document to this file ('-' = stdout)");
  cmd->add_option("--html", s->html, "write the answer coloured by probability (self-contained HTML) to this file");
  return [s] {
    if (s->continuation.empty() && s->generate == 0) detail::fail("give --continuation TEXT or --generate N");
    check_output_path(s->json, "--json");
    check_output_path(s->html, "--html");
    const auto m = load_model(s->model);
    const token_sequence prompt = s->input.resolve(m);
    step_scores_options o;
    if (!s->foil.empty()) o.foils = {resolve_token(m, s->foil, "--foil")};
    step_scores_result r;
    if (!s->continuation.empty()) {
      input_options c;
      c.text = s->continuation;
      token_sequence answer;
      try {
        answer = c.resolve(m);
      } catch (const glassbox::error& e) {
        detail::fail("--continuation: {}", e.what());
      }
      r = step_scores(m.model, prompt, answer, o);
    } else {
      r = step_scores(m.model, prompt, s->generate, o);
    }
    if (s->json != "-") fmt::print("{}", scores_text(r, m));
    if (!s->json.empty()) write_json(s->json, scores_json(r, m));
    if (!s->html.empty()) write_text(s->html, scores_html(r, m));
  };
}

}  // namespace glassbox::cli

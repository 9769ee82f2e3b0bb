// glassbox lens, tuned-lens and steer (docs/representations.md, docs/cli.md "Representations"): the
// logit and tuned lenses, and reading / steering vectors, on the command line.
#include "representation_commands.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <limits>
#include <numeric>
#include <cmath>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "batch_files.hpp"
#include "glassbox/io/representation_files.hpp"
#include "glassbox/report/color.hpp"
#include "glassbox/report/html.hpp"
#include "glassbox/report/json.hpp"
#include "glassbox/representations/lens.hpp"
#include "glassbox/representations/steering.hpp"

namespace glassbox::cli {

namespace {

using report::json;

/// The token ids of every usable line of a data file; the first malformed line throws its error.
std::vector<token_sequence> data_inputs(const std::string& file, const loaded_model& m) {
  std::vector<token_sequence> out;
  for (const auto& line : read_data_lines(file, m)) {
    line.check();
    out.push_back(line.tokens);
  }
  if (out.empty()) detail::fail("the data file {} has no inputs", file);
  return out;
}

/// The hidden-state index named by --layer, checked against the model.
std::size_t checked_layer(const loaded_model& m, std::size_t layer) {
  const std::size_t L = m.model.config().n_layer;
  if (layer > L) detail::fail("--layer must be a hidden-state index 0..{} (0 = embeddings, {} = last block), got {}", L, L, layer);
  return layer;
}

// ---------------------------------------------------------------------------------------------
// glassbox lens

json lens_json(const lens_result& r, const loaded_model& m) {
  json j;
  j["method"] = r.method;
  j["tokens"] = m.token_strings(r.token_ids);
  j["token_ids"] = r.token_ids;
  if (r.target) j["target"] = {{"id", *r.target}, {"token", m.token_strings(std::vector<token_id>{*r.target})[0]}};
  json layers = json::array();
  for (const auto& layer : r.layers) {
    json positions = json::array();
    for (const auto& c : layer.positions) {
      json top = json::array();
      const auto words = m.token_strings(c.top_ids);
      for (std::size_t i = 0; i < c.top_ids.size(); ++i)
        top.push_back({{"id", c.top_ids[i]}, {"token", words[i]}, {"p", c.top_p[i]}});
      json p{{"top", std::move(top)}, {"kl_to_final", c.kl_to_final}, {"entropy", c.entropy}};
      if (r.target) {
        p["target_p"] = c.target_p;
        p["target_rank"] = c.target_rank;
      }
      positions.push_back(std::move(p));
    }
    layers.push_back({{"layer", layer.layer}, {"positions", std::move(positions)}});
  }
  j["layers"] = std::move(layers);
  return j;
}

std::string lens_html(const lens_result& r, const loaded_model& m) {
  const auto words = m.token_strings(r.token_ids, token_style::html);
  std::string body = fmt::format("<h1>{}</h1>\n<p class=\"meta\">rows: hidden-state index (0 = embeddings); columns: "
                                 "positions; each cell: the lens' most probable next token",
                                 r.method == "tuned_lens" ? "Tuned lens" : "Logit lens");
  if (r.target)
    body += fmt::format("; colour: the probability of <b>{}</b>",
                        report::html_escape(m.token_strings(std::vector<token_id>{*r.target}, token_style::html)[0]));
  else
    body += "; colour: the top token's probability";
  body += "</p>\n<table class=\"lens\"><tr><th>layer</th>";
  for (const auto& w : words) body += "<th>" + report::html_escape(w) + "</th>";
  body += "</tr>\n";
  for (auto it = r.layers.rbegin(); it != r.layers.rend(); ++it) {
    body += fmt::format("<tr><th>{}</th>", it->layer);
    for (const auto& c : it->positions) {
      const double p = r.target ? c.target_p : c.top_p.front();
      const auto color = report::sequential_color(p);
      const auto top = m.token_strings(std::vector<token_id>{c.top_ids.front()}, token_style::html)[0];
      std::string title = fmt::format("top: {} ({:.3f})", top, c.top_p.front());
      if (r.target) title += fmt::format("; target p = {:.4f}, rank {}", c.target_p, c.target_rank);
      title += fmt::format("; KL to final {:.3f} nats", c.kl_to_final);
      body += fmt::format("<td style=\"background:{};color:{}\" title=\"{}\">{}</td>", report::css_color(color),
                          report::needs_light_text(color) ? "#fff" : "#000", report::html_escape(title),
                          report::html_escape(top));
    }
    body += "</tr>\n";
  }
  body += "</table>\n";
  return report::html_document("glassbox lens", body,
                               "table.lens td{padding:4px 6px;text-align:center;font-family:monospace}"
                               "table.lens th{padding:4px 6px}");
}

void print_lens(const lens_result& r, const loaded_model& m) {
  const auto words = m.token_strings(r.token_ids);
  std::string text;
  for (const auto& w : words) text += (text.empty() ? "" : " ") + w;
  fmt::print("input   {}\n{} at the last position ({}):\n", text, r.method == "tuned_lens" ? "tuned lens" : "logit lens",
             words.back());
  for (const auto& layer : r.layers) {
    const auto& c = layer.positions.back();
    std::string tops;
    const auto top_words = m.token_strings(c.top_ids);
    for (std::size_t i = 0; i < c.top_ids.size(); ++i)
      tops += fmt::format("{}{} {:.3f}", i ? ", " : "", top_words[i], c.top_p[i]);
    fmt::print("  layer {:>2}  KL {:>7.4f}  {}", layer.layer, c.kl_to_final, tops);
    if (r.target) fmt::print("  | target p = {:.4f}, rank {}", c.target_p, c.target_rank);
    fmt::print("\n");
  }
}

// ---------------------------------------------------------------------------------------------
// glassbox steer

/// The contrast pairs of a JSON-lines file: {"positive": text or ids, "negative": text or ids}.
std::vector<contrast_pair> read_pairs(const std::string& file, const loaded_model& m) {
  std::ifstream in(file);
  if (!in) detail::fail("cannot read the pairs file {}", file);
  std::vector<contrast_pair> pairs;
  std::string text;
  for (std::size_t number = 1; std::getline(in, text); ++number) {
    if (text.find_first_not_of(" \t\r") == std::string::npos) continue;
    json j;
    try {
      j = json::parse(text);
    } catch (const std::exception& e) {
      detail::fail("{}:{}: not a JSON object: {}", file, number, e.what());
    }
    auto side = [&](const char* key) {
      if (!j.is_object() || !j.contains(key))
        detail::fail("{}:{}: a pair needs \"positive\" and \"negative\" (text or token ids)", file, number);
      const auto& v = j[key];
      token_sequence ids;
      if (v.is_string()) {
        input_options o;
        o.text = v.get<std::string>();
        try {
          ids = o.resolve(m);
        } catch (const std::exception& e) {
          detail::fail("{}:{}: \"{}\": {}", file, number, key, e.what());
        }
      } else if (v.is_array()) {
        for (const auto& x : v) {
          if (!x.is_number_integer()) detail::fail("{}:{}: \"{}\" must hold integer token ids", file, number, key);
          const auto id = x.get<long long>();
          if (id < 0 || static_cast<std::size_t>(id) >= m.model.vocab_size())
            detail::fail("{}:{}: \"{}\" has token id {}, outside [0, {})", file, number, key, id,
                         m.model.vocab_size());
          ids.push_back(static_cast<token_id>(id));
        }
      } else {
        detail::fail("{}:{}: \"{}\" must be a text or a list of token ids", file, number, key);
      }
      if (ids.empty()) detail::fail("{}:{}: \"{}\" is empty", file, number, key);
      return ids;
    };
    pairs.push_back({side("positive"), side("negative")});
  }
  if (pairs.empty()) detail::fail("the pairs file {} has no pairs", file);
  return pairs;
}

/// Positions "all", "last" or a list such as "3,4".
std::vector<std::size_t> parse_positions(const std::string& text, std::size_t T) {
  if (text == "all") return {};
  if (text == "last") return {T - 1};
  std::vector<std::size_t> out;
  for (auto item : split_list(text)) {
    std::size_t v = 0;
    const auto [end, ec] = std::from_chars(item.data(), item.data() + item.size(), v);
    if (ec != std::errc{} || end != item.data() + item.size() || v >= T)
      detail::fail("--positions must be all, last or positions < {} such as 0,3; got '{}'", T, std::string(item));
    out.push_back(v);
  }
  return out;
}

/// Softmax of logits row `t`, in double.
std::vector<double> softmax_row(const tensor2& z, std::size_t t) {
  const std::size_t V = z.shape(1);
  std::vector<double> p(V);
  double top = -INFINITY, sum = 0;
  for (std::size_t v = 0; v < V; ++v) top = std::max(top, static_cast<double>(z(t, v)));
  for (std::size_t v = 0; v < V; ++v) sum += p[v] = std::exp(static_cast<double>(z(t, v)) - top);
  for (auto& x : p) x /= sum;
  return p;
}

std::vector<double> parse_reals(const std::string& text, std::string_view option) {
  std::vector<double> out;
  for (auto item : split_list(text)) {
    try {
      std::size_t used = 0;
      const std::string s(item);
      out.push_back(std::stod(s, &used));
      if (used != s.size()) throw std::invalid_argument(s);
    } catch (const std::exception&) {
      detail::fail("{} must be a list of numbers such as -4,0,4; got '{}'", option, std::string(item));
    }
  }
  return out;
}

}  // namespace

runner add_lens_command(CLI::App& app) {
  struct state {
    std::string model, target, tuned, json, html;
    input_options input;
    std::size_t top = 5;
  };
  auto s = std::make_shared<state>();
  auto* cmd = app.add_subcommand("lens", "Logit lens (or tuned lens): what each layer's residual stream predicts");
  cmd->add_option("--model", s->model, "model file or directory (default: the bundled model)");
  s->input.add_to(*cmd);
  cmd->add_option("--target", s->target, "a token (word or id) whose probability and rank each cell reports");
  cmd->add_option("--tuned", s->tuned, "a tuned-lens file (glassbox tuned-lens --out) to read through");
  cmd->add_option("--top", s->top, "most probable tokens per cell")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--json", s->json, "write a glassbox.lens document to this file ('-' = stdout)");
  cmd->add_option("--html", s->html, "write a layer x position grid (self-contained HTML) to this file");
  return [s] {
    check_output_path(s->json, "--json");
    check_output_path(s->html, "--html");
    const auto m = load_model(s->model);
    const token_sequence ids = s->input.resolve(m);
    lens_options o{.top_k = s->top};
    if (!s->target.empty()) o.target = resolve_token(m, s->target, "--target");
    lens_result r;
    if (s->tuned.empty()) {
      r = logit_lens(m.model, ids, o);
    } else {
      const auto lens = io::load_tuned_lens(s->tuned);
      r = logit_lens(m.model, ids, lens, o);
    }
    if (s->json != "-") print_lens(r, m);
    if (!s->json.empty()) write_json(s->json, lens_json(r, m));
    if (!s->html.empty()) write_text(s->html, lens_html(r, m));
  };
}

runner add_tuned_lens_command(CLI::App& app) {
  struct state {
    std::string model, data, out, json;
    tuned_lens_options options;
    std::size_t threads = 0;
  };
  auto s = std::make_shared<state>();
  auto* cmd = app.add_subcommand(
      "tuned-lens", "Train a tuned lens on a data file and compare it with the logit lens per layer (KL, perplexity)");
  cmd->add_option("--model", s->model, "model file or directory (default: the bundled model)");
  cmd->add_option("--data", s->data, "the training inputs (JSON lines: text or token_ids)")->required();
  cmd->add_option("--out", s->out, "the tuned-lens file to write (.safetensors)")->required();
  cmd->add_option("--steps", s->options.steps, "SGD steps")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--learning-rate", s->options.learning_rate, "initial learning rate (decays linearly to 0)")
      ->capture_default_str();
  cmd->add_option("--momentum", s->options.momentum, "Nesterov momentum")->capture_default_str();
  cmd->add_option("--weight-decay", s->options.weight_decay, "L2 weight decay")->capture_default_str();
  cmd->add_option("--batch", s->options.batch_sequences, "sequences per step (0 = every sequence)")
      ->capture_default_str();
  cmd->add_option("--seed", s->options.seed, "the seed of the batches")->capture_default_str();
  cmd->add_option("--threads", s->threads, "the thread budget: cores kept busy in all (0 = all cores)")
      ->capture_default_str();
  cmd->add_option("--json", s->json, "write a glassbox.tuned_lens document (per-layer KL, perplexity) ('-' = stdout)");
  return [s] {
    check_output_path(s->out, "--out");
    check_output_path(s->json, "--json");
    const auto m = load_model(s->model);
    const auto lines = read_data_lines(s->data, m);
    std::vector<token_sequence> inputs;
    bool labelled = !lines.empty();
    for (const auto& line : lines) {
      line.check();
      inputs.push_back(line.tokens);
      labelled = labelled && line.label.has_value();
    }
    if (inputs.empty()) detail::fail("the data file {} has no inputs", s->data);
    s->options.execution.threads = s->threads;
    s->options.execution.on_progress = progress_bar();
    const auto trained = train_tuned_lens(m.model, inputs, s->options);
    io::save_tuned_lens(s->out, trained.lens, m.path.string());
    // The perplexity scores each line's label after its last token when every line has one (review
    // data), else every next token.
    std::vector<training_example> examples;
    for (std::size_t i = 0; i < inputs.size(); ++i)
      examples.push_back(labelled ? training_example::classification(
                                        inputs[i], resolve_token(m, *lines[i].label, "the data's label"))
                                  : training_example::next_token(inputs[i]));
    const execution_options exec{.threads = s->threads};
    const auto logit = evaluate_lens(m.model, examples, exec);
    const auto tuned = evaluate_lens(m.model, examples, trained.lens, exec);
    if (s->json != "-") {
      fmt::print("tuned lens of {} inputs, {} steps, written to {}\n", inputs.size(), s->options.steps, s->out);
      fmt::print("{:>5}  {:>12}  {:>12}  {:>14}  {:>14}\n", "layer", "KL logit", "KL tuned", "ppl logit", "ppl tuned");
      for (std::size_t k = 0; k < logit.layers.size(); ++k)
        fmt::print("{:>5}  {:>12.4f}  {:>12.4f}  {:>14.3f}  {:>14.3f}\n", k, logit.layers[k].kl, tuned.layers[k].kl,
                   logit.layers[k].perplexity, tuned.layers[k].perplexity);
      fmt::print("(KL: mean KL(model || lens) over every position, nats; ppl: perplexity of {})\n",
                 labelled ? "each line's label after its last token" : "each next token");
    }
    if (!s->json.empty()) {
      json layers = json::array();
      for (std::size_t k = 0; k < logit.layers.size(); ++k)
        layers.push_back({{"layer", k},
                          {"logit_lens_kl", logit.layers[k].kl},
                          {"tuned_lens_kl", tuned.layers[k].kl},
                          {"logit_lens_perplexity", logit.layers[k].perplexity},
                          {"tuned_lens_perplexity", tuned.layers[k].perplexity}});
      write_json(s->json, json{{"inputs", inputs.size()},
                               {"perplexity_of", labelled ? "label" : "next_token"},
                               {"steps", s->options.steps},
                               {"positions", logit.positions},
                               {"training_loss", trained.loss},
                               {"layers", std::move(layers)}});
    }
  };
}

runner add_steer_command(CLI::App& app) {
  struct state {
    std::string model, vector, pairs, save_vector, positions = "all", target, foil, data, alphas, json;
    input_options input;
    std::size_t layer = 0, top = 5, threads = 0;
    double alpha = 0;
    bool project_out = false;
  };
  auto s = std::make_shared<state>();
  auto* cmd = app.add_subcommand("steer", "Add a reading vector to the residual stream (or project it out) and "
                                          "compare the output with and without");
  cmd->add_option("--model", s->model, "model file or directory (default: the bundled model)");
  auto* vec = cmd->add_option("--vector", s->vector, "a reading-vector file (glassbox steer --save-vector)");
  auto* pairs = cmd->add_option("--pairs", s->pairs,
                                "contrast pairs (JSON lines {\"positive\": ..., \"negative\": ...}) to read the "
                                "vector from at --layer");
  vec->excludes(pairs);
  cmd->add_option("--layer", s->layer, "hidden-state index edited (0 = embeddings)")->required();
  cmd->add_option("--alpha", s->alpha, "h += alpha * vector (a unit vector)")->capture_default_str();
  cmd->add_flag("--project-out", s->project_out, "remove the vector's component instead of adding it");
  cmd->add_option("--positions", s->positions, "positions edited: all, last, or a list such as 2,5")
      ->capture_default_str();
  cmd->add_option("--save-vector", s->save_vector, "--pairs: write the reading vector to this file");
  s->input.add_to(*cmd);
  cmd->get_option("--text")->required(false);
  cmd->get_option("--tokens")->required(false);
  cmd->add_option("--top", s->top, "next tokens printed")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--data", s->data, "measure the flip rate over these inputs (JSON lines) at each of --alphas");
  cmd->add_option("--alphas", s->alphas, "--data: the alphas of the curve, e.g. -8,-4,0,4,8 (default: --alpha)");
  cmd->add_option("--target", s->target, "--data: the token whose contrast with --foil decides (default: positive)");
  cmd->add_option("--foil", s->foil, "--data: the contrasted token (default: negative)");
  cmd->add_option("--threads", s->threads, "the thread budget: cores kept busy in all (0 = all cores)")
      ->capture_default_str();
  cmd->add_option("--json", s->json, "write a glassbox.steer document to this file ('-' = stdout)");
  return [s] {
    check_output_path(s->json, "--json");
    check_output_path(s->save_vector, "--save-vector");
    if (s->vector.empty() == s->pairs.empty()) detail::fail("give exactly one of --vector and --pairs");
    if (!s->save_vector.empty() && s->pairs.empty()) detail::fail("--save-vector needs --pairs");
    const bool single = !s->input.text.empty() || !s->input.tokens.empty();
    if (!single && s->data.empty()) detail::fail("give an input (--text or --tokens), --data, or both");
    const auto m = load_model(s->model);
    const std::size_t layer = checked_layer(m, s->layer);
    pass_threads_scope scope(s->threads);
    // The input and its positions are checked before any work.
    token_sequence ids;
    std::vector<std::size_t> positions;
    if (single) {
      ids = s->input.resolve(m);
      positions = parse_positions(s->positions, ids.size());
    }
    reading_vector v;
    if (!s->pairs.empty()) {
      const auto p = read_pairs(s->pairs, m);
      v = reading_vectors(m.model, p, {.layers = {layer}, .execution = {.threads = s->threads}}).front();
      if (!s->save_vector.empty()) io::save_reading_vector(s->save_vector, v, m.path.string());
    } else {
      v = io::load_reading_vector(s->vector);
      if (v.direction.size() != m.model.config().n_embd)
        detail::fail("the vector in {} has {} entries, the model's residual stream {}", s->vector, v.direction.size(),
                     m.model.config().n_embd);
      if (v.layer != layer)
        fmt::print(stderr, "glassbox: note: the vector was read at layer {}, applied at --layer {}\n", v.layer, layer);
    }
    json doc{{"layer", layer},
             {"alpha", s->alpha},
             {"project_out", s->project_out},
             {"vector", {{"layer", v.layer},
                         {"explained", v.explained},
                         {"pair_accuracy", v.pair_accuracy},
                         {"mean_separation", v.mean_separation}}}};
    const bool text_out = s->json != "-";
    if (text_out && !s->pairs.empty())
      fmt::print("reading vector at layer {}: explains {:.1f}% of the pair differences, orders {:.1f}% of the pairs\n",
                 v.layer, 100 * v.explained, 100 * v.pair_accuracy);
    if (single) {
      steering_options o{.alpha = s->alpha, .positions = positions, .project_out = s->project_out};
      const tensor2 plain = m.model.logits(ids);
      const tensor2 steered = steered_logits(m.model, ids, layer, v.direction, o);
      const std::size_t T = ids.size();
      const auto p0 = softmax_row(plain, T - 1), p1 = softmax_row(steered, T - 1);
      std::vector<std::size_t> order(p0.size());
      std::iota(order.begin(), order.end(), std::size_t{0});
      auto top_of = [&](const std::vector<double>& p) {
        auto o2 = order;
        const std::size_t k = std::min(s->top, p.size());
        std::partial_sort(o2.begin(), o2.begin() + static_cast<std::ptrdiff_t>(k), o2.end(),
                          [&](std::size_t a, std::size_t b) { return p[a] > p[b] || (p[a] == p[b] && a < b); });
        o2.resize(k);
        return o2;
      };
      json rows = json::array();
      const auto t0 = top_of(p0), t1 = top_of(p1);
      if (text_out) {
        fmt::print("next token after position {} ({}), without and with the edit ({}):\n", T - 1,
                   m.token_strings(ids).back(),
                   s->project_out ? "projected out" : fmt::format("alpha = {}", s->alpha));
        for (std::size_t i = 0; i < t0.size(); ++i) {
          const auto w0 = m.token_strings(std::vector<token_id>{static_cast<token_id>(t0[i])})[0];
          const auto w1 = m.token_strings(std::vector<token_id>{static_cast<token_id>(t1[i])})[0];
          fmt::print("  {:>2}. {:<16} {:.4f}    {:<16} {:.4f}\n", i + 1, w0, p0[t0[i]], w1, p1[t1[i]]);
        }
      }
      for (std::size_t v2 = 0; v2 < p0.size(); ++v2)
        if (std::find(t0.begin(), t0.end(), v2) != t0.end() || std::find(t1.begin(), t1.end(), v2) != t1.end())
          rows.push_back({{"id", v2},
                          {"token", m.token_strings(std::vector<token_id>{static_cast<token_id>(v2)})[0]},
                          {"p", p0[v2]},
                          {"p_steered", p1[v2]}});
      doc["tokens"] = m.token_strings(ids);
      doc["token_ids"] = ids;
      doc["next_token"] = std::move(rows);
    }
    if (!s->data.empty()) {
      const auto inputs = data_inputs(s->data, m);
      const token_id t = resolve_token(m, s->target.empty() ? "positive" : s->target, "--target");
      const token_id f = resolve_token(m, s->foil.empty() ? "negative" : s->foil, "--foil");
      const auto alphas = s->alphas.empty() ? std::vector<double>{s->alpha} : parse_reals(s->alphas, "--alphas");
      steering_options base;
      if (s->positions == "last")
        base.last_position = true;
      else if (s->positions != "all")
        base.positions = parse_positions(s->positions, std::numeric_limits<std::size_t>::max());
      const auto curve = steering_curve(m.model, std::span<const token_sequence>(inputs), target::contrast(t, f),
                                        layer, v.direction, alphas, base, {.threads = s->threads});
      json points = json::array();
      if (text_out) fmt::print("over {} inputs ({} vs {}):\n{:>8}  {:>12}  {:>9}  {:>10}\n", inputs.size(),
                               m.token_strings(std::vector<token_id>{t})[0], m.token_strings(std::vector<token_id>{f})[0],
                               "alpha", "mean target", "flip rate", "wrong way");
      for (const auto& p : curve) {
        if (text_out)
          fmt::print("{:>8.3f}  {:>12.4f}  {:>8.1f}%  {:>9.1f}%\n", p.alpha, p.mean_target, 100 * p.flip_rate,
                     100 * p.wrong_way_rate);
        points.push_back({{"alpha", p.alpha},
                          {"mean_target", p.mean_target},
                          {"flip_rate", p.flip_rate},
                          {"wrong_way_rate", p.wrong_way_rate}});
      }
      doc["curve"] = std::move(points);
    }
    if (!s->json.empty()) write_json(s->json, doc);
  };
}

}  // namespace glassbox::cli

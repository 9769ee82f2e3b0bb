// glassbox sae train / sae inspect (docs/representations.md "Sparse autoencoders", docs/cli.md):
// trains a sparse autoencoder on one layer's activations of a data file (collected with
// collect_activations) or of an activation file, and shows its feature dashboards: top contexts,
// logit effects, and on review data the best-matching known property of each feature.
#include "sae_commands.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <numeric>
#include <optional>
#include <string>
#include <vector>

#include "batch_files.hpp"
#include "glassbox/io/activation_file.hpp"
#include "glassbox/io/sae_file.hpp"
#include "glassbox/probing/activations.hpp"
#include "glassbox/report/html.hpp"
#include "glassbox/report/json.hpp"
#include "glassbox/representations/sae.hpp"
#include "glassbox/representations/sae_reviews.hpp"
#include "review_truth.hpp"

namespace glassbox::cli {

namespace {

using report::json;

/// The inputs of a data file and every token's row of one layer's activations.
struct layer_rows {
  std::vector<token_sequence> inputs;
  tensor2 activations;                 // [N, d], rows by sequence then position
  std::vector<std::size_t> sequences;  // per row
  std::vector<std::size_t> positions;  // per row
};

layer_rows collect_layer(const loaded_model& m, const std::string& data, std::size_t layer, std::size_t threads,
                         std::size_t max_inputs) {
  layer_rows out;
  for (const auto& line : read_data_lines(data, m)) {
    if (max_inputs != 0 && out.inputs.size() == max_inputs) break;
    line.check();
    out.inputs.push_back(line.tokens);
  }
  if (out.inputs.empty()) detail::fail("--data {} holds no input", data);
  if (layer > m.model.n_layer())
    detail::fail("--layer must be <= {} (the model's hidden-state indices 0..L), got {}", m.model.n_layer(), layer);
  activation_options o;
  o.layers = {layer};
  o.model_name = m.path.string();
  o.execution.threads = threads;
  o.execution.on_progress = progress_bar();
  const activation_labels every_token{label_kind::classes,
                                      [](std::size_t, std::size_t) -> std::optional<double> { return 0.0; }};
  activation_set set = collect_activations(m.model, std::span<const token_sequence>(out.inputs), every_token, o);
  out.activations = std::move(set.activations.front());
  for (std::size_t s = 0; s < out.inputs.size(); ++s)
    for (std::size_t p = 0; p < out.inputs[s].size(); ++p) {
      out.sequences.push_back(s);
      out.positions.push_back(p);
    }
  return out;
}

/// The loss the fraction of loss recovered uses: on the review language the cross-entropy of the
/// rule's label at the marker (the bundled model's task; reviews without a label are left out),
/// otherwise next-token prediction over every position.
std::vector<training_example> scored_examples(const loaded_model& m, const std::vector<token_sequence>& inputs) {
  std::vector<training_example> out;
  const bool reviews = has_review_vocabulary(m);
  for (const auto& t : inputs) {
    if (reviews) {
      if (t.empty() || t.back() != datasets::review_marker_id) continue;
      const auto label = datasets::label_of(t).label();
      if (label) out.push_back(training_example::classification(t, *label));
    } else if (t.size() >= 2) {
      out.push_back(training_example::next_token(t));
    }
  }
  return out;
}

std::string loss_kind(const loaded_model& m) {
  return has_review_vocabulary(m) ? "cross-entropy of the rule's label at the marker"
                                  : "next-token cross-entropy over every position";
}

json metrics_json(const sae_metrics& x) {
  return {{"rows", x.rows},         {"mse", x.mse},       {"reconstruction", x.reconstruction},
          {"explained_variance", x.explained_variance}, {"l0", x.l0}, {"l1", x.l1},
          {"dead_fraction", x.dead_fraction},           {"dense_fraction", x.dense_fraction}};
}

json recovery_json(const sae_loss_recovery& r, const std::string& kind) {
  return {{"loss", kind},
          {"clean_loss", r.clean_loss},
          {"sae_loss", r.sae_loss},
          {"zero_loss", r.zero_loss},
          {"fraction_recovered", r.fraction_recovered},
          {"scored_rows", r.scored_rows}};
}

std::string metrics_line(const sae_metrics& x) {
  return fmt::format("MSE {:.4g} | explained variance {:.3f} | L0 {:.2f} | dead {:.1f}% | dense {:.1f}%", x.mse,
                     x.explained_variance, x.l0, 100 * x.dead_fraction, 100 * x.dense_fraction);
}

std::string recovery_line(const sae_loss_recovery& r) {
  return fmt::format("loss recovered {:.3f} (clean {:.4f}, with the SAE {:.4f}, zero-ablated {:.4f}; {} scored rows)",
                     r.fraction_recovered, r.clean_loss, r.sae_loss, r.zero_loss, r.scored_rows);
}

/// The terminal text of a subcommand, printed unless its JSON goes to stdout.
struct terminal {
  bool on = true;
  void operator()(const std::string& text) const {
    if (on) fmt::print("{}", text);
  }
};

// ---------------------------------------------------------------------------------------------
// glassbox sae train

struct train_state {
  std::string model, data, activations, out, json_out;
  std::size_t layer = 0, threads = 0, max_inputs = 0;
  sae_options options;
};

void run_train(const train_state& s) {
  const pass_threads_scope threads(s.threads);
  const terminal say{s.json_out != "-"};
  check_output_path(s.out, "--out");
  check_output_path(s.json_out, "--json");
  if (s.out == "-") detail::fail("--out must be a file, got '-'");
  if (s.data.empty() == s.activations.empty()) detail::fail("give exactly one of --data and --activations");
  std::optional<loaded_model> m;
  layer_rows rows;
  std::string model_name;
  if (!s.data.empty()) {
    m = load_model(s.model);
    rows = collect_layer(*m, s.data, s.layer, s.threads, s.max_inputs);
    model_name = m->path.string();
  } else {
    const io::activation_file_reader reader(s.activations);
    rows.activations = reader.read_layer(s.layer);
    model_name = reader.header().model;
  }
  sae_options o = s.options;
  o.layer = s.layer;
  o.model_name = model_name;
  o.execution.threads = s.threads;
  // The shared progress bar (rows per second), with the latest loss, L0 and dead fraction after it.
  const progress_callback bar = progress_bar();
  auto latest = std::make_shared<std::string>();
  if (bar) {
    o.on_step = [latest](const sae_step_record& r) {
      *latest = fmt::format(" | loss {:.4g} L0 {:.1f} dead {:.1f}%", r.loss, r.l0, 100 * r.dead_fraction);
    };
    o.execution.on_progress = [bar, latest](const progress& p) {
      const bool go_on = bar(p);
      if (p.done < p.total) {
        fmt::print(stderr, "{}", *latest);
        std::fflush(stderr);
      }
      return go_on;
    };
    o.log_every = std::min<std::size_t>(o.log_every, 10);
  }
  const sae_training_result trained = train_sae(rows.activations, o);
  io::write_sae_file(s.out, trained.sae);

  const sae_metrics metrics = evaluate_sae(trained.sae, rows.activations);
  std::size_t resampled = 0;
  for (const auto r : trained.resampled) resampled += r;
  say(fmt::format("trained {} features on {} rows x {} (layer {}): {} steps, {} tokens in {:.2f} s ({:.0f} tokens/s)\n",
             trained.sae.feature_count(), rows.activations.shape(0), trained.sae.input_width(), s.layer,
             trained.steps, trained.tokens, trained.seconds,
             trained.seconds > 0 ? static_cast<double>(trained.tokens) / trained.seconds : 0.0));
  say(fmt::format("options: features={} l1={} lr={} warmup={} batch={} seed={} resample_every={} resampled={}\n",
             trained.sae.feature_count(), o.l1, o.learning_rate, o.warmup_steps, o.batch_size, o.seed,
             o.resampling.every, resampled));
  say(fmt::format("{}\n", metrics_line(metrics)));
  json doc = {{"schema", "glassbox.sae_training"},
              {"version", 1},
              {"sae", s.out},
              {"layer", s.layer},
              {"features", trained.sae.feature_count()},
              {"width", trained.sae.input_width()},
              {"l1", o.l1},
              {"steps", trained.steps},
              {"tokens", trained.tokens},
              {"seconds", trained.seconds},
              {"resampled", trained.resampled},
              {"metrics", metrics_json(metrics)}};
  if (m) {
    const auto examples = scored_examples(*m, rows.inputs);
    if (!examples.empty()) {
      execution_options exec;
      exec.threads = s.threads;
      const auto r = sae_loss_recovered(m->model, trained.sae, std::span<const training_example>(examples), s.layer,
                                        exec);
      say(fmt::format("{}\n", recovery_line(r)));
      doc["loss_recovered"] = recovery_json(r, loss_kind(*m));
    }
  }
  json history = json::array();
  for (const auto& h : trained.history)
    history.push_back({{"step", h.step},
                       {"tokens", h.tokens},
                       {"loss", h.loss},
                       {"reconstruction", h.reconstruction},
                       {"l0", h.l0},
                       {"dead_fraction", h.dead_fraction}});
  doc["history"] = std::move(history);
  say(fmt::format("wrote {}\n", s.out));
  if (!s.json_out.empty()) write_json(s.json_out, doc);
}

// ---------------------------------------------------------------------------------------------
// glassbox sae inspect

struct inspect_state {
  std::string sae, model, data, json_out, html_out;
  std::optional<std::size_t> feature;
  std::size_t top = 8, show = 10, threads = 0, max_inputs = 0;
  double f1_threshold = 0.5;
};

/// A context: up to 6 tokens before the position, the position's token in brackets.
std::string context_text(const loaded_model& m, const token_sequence& t, std::size_t p,
                         token_style style = token_style::terminal) {
  const std::size_t from = p >= 6 ? p - 6 : 0;
  const auto words = m.token_strings(token_span(t).subspan(from, p - from + 1), style);
  std::string out = from > 0 ? "... " : "";
  for (std::size_t i = 0; i < words.size(); ++i)
    out += (i ? " " : "") + (i + 1 == words.size() ? "[" + words[i] + "]" : words[i]);
  return out;
}

void run_inspect(const inspect_state& s) {
  const pass_threads_scope threads(s.threads);
  const terminal say{s.json_out != "-"};
  check_output_path(s.json_out, "--json");
  check_output_path(s.html_out, "--html");
  const sparse_autoencoder sae = io::read_sae_file(s.sae);
  const loaded_model m = load_model(s.model);
  const std::size_t n = sae.feature_count();
  if (sae.input_width() != m.model.width())
    detail::fail("--sae {} reads {} columns but the model's residual stream has {}", s.sae, sae.input_width(),
                 m.model.width());
  if (s.feature && *s.feature >= n) detail::fail("--feature must be < {} (the SAE's features), got {}", n, *s.feature);

  std::optional<layer_rows> rows;
  std::optional<sae_metrics> metrics;
  std::optional<sae_loss_recovery> recovery;
  std::optional<sae_property_scores> scores;
  std::vector<std::vector<sae_context>> contexts;
  if (!s.data.empty()) {
    rows = collect_layer(m, s.data, sae.layer, s.threads, s.max_inputs);
    metrics = evaluate_sae(sae, rows->activations);
    const auto examples = scored_examples(m, rows->inputs);
    if (!examples.empty()) {
      execution_options exec;
      exec.threads = s.threads;
      recovery = sae_loss_recovered(m.model, sae, std::span<const training_example>(examples), sae.layer, exec);
    }
    contexts = sae_top_contexts(sae, rows->activations, s.top, rows->sequences, rows->positions);
    if (has_review_vocabulary(m)) {
      const auto props = review_row_properties(std::span<const token_sequence>(rows->inputs));
      scores = sae_match_properties(sae, rows->activations, props, s.f1_threshold);
    }
  }

  // The features shown: --feature, else the best property matches (review data), else the most frequent.
  std::vector<std::size_t> shown;
  if (s.feature) {
    shown.push_back(*s.feature);
  } else {
    std::vector<std::size_t> order(n);
    std::iota(order.begin(), order.end(), std::size_t{0});
    if (scores) {
      std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
        return scores->best_by_feature[a].f1 > scores->best_by_feature[b].f1;
      });
    } else if (metrics) {
      std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
        return metrics->firing_rate[a] > metrics->firing_rate[b];
      });
    }
    order.resize(std::min(n, s.show));
    shown = order;
  }
  const auto effects = sae_logit_effects(m.model, sae, s.top, shown);

  say(fmt::format("SAE {}: {} features over width {} at layer {} (l1 {}, model {})\n", s.sae, n, sae.input_width(),
             sae.layer, sae.l1, sae.model.empty() ? "-" : sae.model));
  if (metrics) say(fmt::format("{}\n", metrics_line(*metrics)));
  if (recovery) say(fmt::format("{}\n", recovery_line(*recovery)));
  if (scores)
    say(fmt::format("properties matched by a feature with F1 >= {}: {} of {} ({:.0f}%)\n", scores->threshold,
               scores->matched, scores->scored, 100 * scores->matched_fraction));

  json features = json::array();
  std::string html_rows;
  for (std::size_t i = 0; i < shown.size(); ++i) {
    const std::size_t j = shown[i];
    json f = {{"feature", j}};
    std::string line = fmt::format("\nfeature {}", j);
    std::string html = fmt::format("<h2>feature {}</h2>\n", j);
    if (metrics) {
      f["firing_rate"] = metrics->firing_rate[j];
      line += fmt::format(" | fires on {:.2f}% of tokens", 100 * metrics->firing_rate[j]);
      html += fmt::format("<p>fires on {:.2f}% of tokens</p>\n", 100 * metrics->firing_rate[j]);
    }
    if (scores) {
      const auto& b = scores->best_by_feature[j];
      f["best_property"] = {{"property", scores->properties[b.property]},
                            {"precision", b.precision},
                            {"recall", b.recall},
                            {"f1", b.f1}};
      line += fmt::format(" | best property {} (precision {:.2f}, recall {:.2f}, F1 {:.2f})",
                          scores->properties[b.property], b.precision, b.recall, b.f1);
      html += fmt::format("<p>best property <b>{}</b>: precision {:.2f}, recall {:.2f}, F1 {:.2f}</p>\n",
                          report::html_escape(scores->properties[b.property]), b.precision, b.recall, b.f1);
    }
    say(fmt::format("{}\n", line));
    json top = json::array(), bottom = json::array();
    std::string promoted, suppressed, promoted_html, suppressed_html;
    for (const auto& t : effects[i].top) {
      const std::string w = m.token_strings(token_span(&t.token, 1)).front();
      top.push_back({{"id", t.token}, {"token", w}, {"logit", t.logit}});
      promoted += fmt::format("{}{} {:+.2f}", promoted.empty() ? "" : ", ", w, t.logit);
      promoted_html += fmt::format("{}{} {:+.2f}", promoted_html.empty() ? "" : ", ",
                                   m.token_strings(token_span(&t.token, 1), token_style::html).front(), t.logit);
    }
    for (const auto& t : effects[i].bottom) {
      const std::string w = m.token_strings(token_span(&t.token, 1)).front();
      bottom.push_back({{"id", t.token}, {"token", w}, {"logit", t.logit}});
      suppressed += fmt::format("{}{} {:+.2f}", suppressed.empty() ? "" : ", ", w, t.logit);
      suppressed_html += fmt::format("{}{} {:+.2f}", suppressed_html.empty() ? "" : ", ",
                                     m.token_strings(token_span(&t.token, 1), token_style::html).front(), t.logit);
    }
    f["logits"] = {{"top", top}, {"bottom", bottom}};
    say(fmt::format("  promotes:   {}\n  suppresses: {}\n", promoted, suppressed));
    html += fmt::format("<p>promotes: {}<br>suppresses: {}</p>\n", report::html_escape(promoted_html),
                        report::html_escape(suppressed_html));
    if (rows) {
      json ctx = json::array();
      html += "<table>\n<tr><th>activation</th><th>context</th></tr>\n";
      for (const auto& c : contexts[j]) {
        const std::string text = context_text(m, rows->inputs[c.sequence], c.position);
        ctx.push_back({{"sequence", c.sequence}, {"position", c.position}, {"activation", c.activation},
                       {"context", text}});
        say(fmt::format("  {:>8.3f}  {}\n", c.activation, text));
        html +=
            fmt::format("<tr><td>{:.3f}</td><td>{}</td></tr>\n", c.activation,
                        report::html_escape(context_text(m, rows->inputs[c.sequence], c.position, token_style::html)));
      }
      html += "</table>\n";
      f["top_contexts"] = std::move(ctx);
    }
    features.push_back(std::move(f));
    html_rows += html;
  }

  json doc = {{"schema", "glassbox.sae"},
              {"version", 1},
              {"sae", {{"file", s.sae}, {"layer", sae.layer}, {"l1", sae.l1}, {"model", sae.model},
                       {"features", n}, {"width", sae.input_width()}}}};
  if (metrics) doc["metrics"] = metrics_json(*metrics);
  if (recovery) doc["loss_recovered"] = recovery_json(*recovery, loss_kind(m));
  if (scores) {
    json props = json::array();
    for (std::size_t q = 0; q < scores->properties.size(); ++q) {
      const auto& b = scores->best_by_property[q];
      props.push_back({{"property", scores->properties[q]}, {"feature", b.feature}, {"precision", b.precision},
                       {"recall", b.recall}, {"f1", b.f1}, {"true_rows", b.truths}});
    }
    doc["properties"] = {{"threshold", scores->threshold}, {"matched", scores->matched},
                         {"scored", scores->scored},       {"matched_fraction", scores->matched_fraction},
                         {"best_feature", props}};
  }
  doc["features"] = std::move(features);
  if (!s.json_out.empty()) write_json(s.json_out, doc);
  if (!s.html_out.empty()) {
    std::string body = fmt::format("<h1>SAE {}</h1>\n<p>{} features, layer {}, l1 {}</p>\n",
                                   report::html_escape(s.sae), n, sae.layer, sae.l1);
    if (metrics) body += "<p>" + report::html_escape(metrics_line(*metrics)) + "</p>\n";
    if (recovery) body += "<p>" + report::html_escape(recovery_line(*recovery)) + "</p>\n";
    if (scores) {
      body += fmt::format("<p>properties matched with F1 &ge; {}: {} of {}</p>\n<table>\n<tr><th>property</th>"
                          "<th>feature</th><th>precision</th><th>recall</th><th>F1</th></tr>\n",
                          scores->threshold, scores->matched, scores->scored);
      for (std::size_t q = 0; q < scores->properties.size(); ++q) {
        const auto& b = scores->best_by_property[q];
        body += fmt::format("<tr><td>{}</td><td>{}</td><td>{:.2f}</td><td>{:.2f}</td><td>{:.2f}</td></tr>\n",
                            report::html_escape(scores->properties[q]), b.feature, b.precision, b.recall, b.f1);
      }
      body += "</table>\n";
    }
    write_text(s.html_out, report::html_document("glassbox sae", body + html_rows));
  }
}

}  // namespace

runner add_sae_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("sae", "Sparse autoencoders: train one on a layer's activations, inspect its "
                                        "features (docs/representations.md)");
  cmd->require_subcommand(1);

  auto t = std::make_shared<train_state>();
  auto* train = cmd->add_subcommand("train", "Train a sparse autoencoder on one layer's activations");
  train->add_option("--model", t->model, "model file or directory (default: the bundled model)");
  train->add_option("--layer", t->layer, "hidden-state index (0 = embeddings output, k = after block k)")->required();
  train->add_option("--data", t->data, "JSON-lines data file whose every token gives a row (glassbox generate-data)");
  train->add_option("--activations", t->activations, "an activation file (glassbox activations) instead of --data");
  train->add_option("--max-inputs", t->max_inputs, "--data: use at most this many inputs (0 = all)")
      ->capture_default_str();
  train->add_option("--features", t->options.features, "dictionary size n (0 = 8 x width)")->capture_default_str();
  train->add_option("--l1", t->options.l1, "lambda, the L1 coefficient")->capture_default_str();
  train->add_option("--lr", t->options.learning_rate, "Adam's learning rate")->capture_default_str();
  train->add_option("--warmup", t->options.warmup_steps, "steps of linear learning-rate warm-up")
      ->capture_default_str();
  train->add_option("--batch-size", t->options.batch_size, "rows per step")->capture_default_str();
  train->add_option("--steps", t->options.steps, "optimizer steps (0 = --epochs passes over the rows)")
      ->capture_default_str();
  train->add_option("--epochs", t->options.epochs, "passes over the rows when --steps is 0")->capture_default_str();
  train
      ->add_option("--resample-every", t->options.resampling.every,
                   "steps between dead-feature resamplings (0 = never)")
      ->capture_default_str();
  train->add_option("--dead-window", t->options.resampling.window,
                    "rows without firing that make a feature dead (0 = half of --resample-every's rows)")
      ->capture_default_str();
  train->add_option("--seed", t->options.seed, "initialisation, batch order, resampling")->capture_default_str();
  train->add_option("--threads", t->threads, "the thread budget: cores kept busy in all (0 = all cores)")
      ->capture_default_str();
  train->add_option("--out", t->out, "the SAE file to write (.safetensors, SAELens' tensor names)")->required();
  train->add_option("--json", t->json_out, "write the training summary and history as JSON ('-' = stdout)");

  auto i = std::make_shared<inspect_state>();
  auto* inspect = cmd->add_subcommand("inspect", "Feature dashboards of a sparse autoencoder: top contexts, logit "
                                                 "effects, metrics, and on review data the known properties matched");
  inspect->add_option("--sae", i->sae, "the SAE file (glassbox sae train)")->required();
  inspect->add_option("--model", i->model, "model file or directory (default: the bundled model)");
  inspect->add_option("--data", i->data, "JSON-lines data file: metrics, top contexts and property matches over it");
  inspect->add_option("--max-inputs", i->max_inputs, "--data: use at most this many inputs (0 = all)")
      ->capture_default_str();
  inspect->add_option("--feature", i->feature, "show this feature only");
  inspect->add_option("--top", i->top, "contexts and tokens per feature")->capture_default_str();
  inspect->add_option("--show", i->show, "features shown without --feature")->capture_default_str();
  inspect->add_option("--f1", i->f1_threshold, "the F1 a property needs to count as matched")->capture_default_str();
  inspect->add_option("--threads", i->threads, "the thread budget: cores kept busy in all (0 = all cores)")
      ->capture_default_str();
  inspect->add_option("--json", i->json_out, "write a glassbox.sae document to this file ('-' = stdout)");
  inspect->add_option("--html", i->html_out, "write a self-contained HTML page of the dashboards to this file");

  return [train, inspect, t, i] {
    if (train->parsed()) run_train(*t);
    if (inspect->parsed()) run_inspect(*i);
  };
}

}  // namespace glassbox::cli

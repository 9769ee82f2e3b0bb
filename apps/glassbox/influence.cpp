// glassbox influence: which training examples made the model say this (docs/influence.md).
//
//   glassbox influence fit   --data TRAIN.jsonl --out FACTORS.safetensors [--method ekfac|kfac|diagonal|identity]
//                            [--layers all|mlp] [--damping D]
//   glassbox influence score --data TRAIN.jsonl (--query TEXT [--label W] | --queries Q.jsonl)
//                            (--factors F [--shards DIR] | --method exact|cg|lissa|tracin [--hessian ...])
//                            [--top K] [--scores OUT.safetensors] [--json OUT] [--html OUT]
//   glassbox influence self  --data TRAIN.jsonl (--factors F | --method ...) [--top K] [--scores|--json|--html]
//
// Data lines (training set and --queries): the generate-data format or {"token_ids": [...], "label": id}
// (a classification example scored at its last row), or {"token_ids": [...]} / {"text": ...} without a
// label (next-token loss over the sequence). --query TEXT measures the loss of --label (default: the
// model's top prediction) after TEXT. Under `mpirun -np N` (when built with MPI), fitting and K-FAC
// scoring shard the training set across the ranks; rank 0 prints and writes.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "batch_files.hpp"
#include "cli.hpp"
#include "glassbox/influence/kfac.hpp"
#include "glassbox/io/influence_factors.hpp"
#include "glassbox/report/html.hpp"
#include "influence_methods.hpp"
#include "tracin_checkpoints.hpp"

#ifdef GLASSBOX_CLI_MPI
#include "glassbox/parallel/mpi.hpp"
#endif

namespace glassbox::cli {
namespace {

// ---------------------------------------------------------------------------------------------
// MPI: initialised only when the program was started by mpirun (a plain run never touches MPI).

class mpi_session {
 public:
  mpi_session() {
#ifdef GLASSBOX_CLI_MPI
    if (std::getenv("OMPI_COMM_WORLD_SIZE") == nullptr && std::getenv("PMI_SIZE") == nullptr &&
        std::getenv("PMIX_RANK") == nullptr)
      return;
    MPI_Init(nullptr, nullptr);
    active_ = true;
    rank_ = parallel::mpi_rank(MPI_COMM_WORLD);
    size_ = parallel::mpi_size(MPI_COMM_WORLD);
#endif
  }
  ~mpi_session() {
#ifdef GLASSBOX_CLI_MPI
    if (active_) MPI_Finalize();
#endif
  }
  mpi_session(const mpi_session&) = delete;
  mpi_session& operator=(const mpi_session&) = delete;

  bool sharded() const { return active_ && size_ > 1; }  // more than one rank: the work is split
  bool root() const { return rank_ == 0; }
  int size() const { return size_; }

 private:
  bool active_ = false;
  int rank_ = 0, size_ = 1;
};

// ---------------------------------------------------------------------------------------------
// Parsed command line.

struct influence_state {
  std::string model, data, out, method, factors, query, label, queries, scores, json, html, shards, checkpoints;
  std::size_t top = 10, batch_size = 32, threads = 0, query_rank = 0, shard_size = 1024;
  method_options fit_flags, score_flags, self_flags;
  CLI::App *fit = nullptr, *score = nullptr, *self = nullptr;
};

execution_options execution(const influence_state& s, const mpi_session& mpi) {
  execution_options e;
  e.batch_size = s.batch_size;
  e.threads = s.threads;
  if (mpi.root()) e.on_progress = progress_bar();
  return e;
}

// The examples of a data file: with a label, classification at the last row; without, next-token loss.
struct example_set {
  std::vector<training_example> examples;
  std::vector<std::string> texts;
};

example_set read_examples(const std::string& file, const loaded_model& m, std::string_view option) {
  example_set out;
  for (const auto& line : read_data_lines(file, m)) {
    line.check();
    if (line.label) {
      out.examples.push_back(training_example::classification(
          line.tokens, resolve_token(m, *line.label, fmt::format("{} line {}: label", file, line.number))));
    } else {
      if (line.tokens.size() < 2)
        detail::fail("{} line {}: an example without a label needs at least 2 tokens (next-token loss), got {}", file,
                     line.number, line.tokens.size());
      out.examples.push_back(training_example::next_token(line.tokens));
    }
    out.texts.push_back(joined(m.token_strings(line.tokens)));
  }
  if (out.examples.empty()) detail::fail("{} ({}) holds no examples", file, option);
  return out;
}

// The queries: --query TEXT (the loss of --label, default the top prediction, after TEXT) or --queries FILE.
struct query_set {
  std::vector<measurement> measurements;
  std::vector<std::string> texts;
};

query_set read_queries(const influence_state& s, const loaded_model& m) {
  if (s.query.empty() == s.queries.empty()) detail::fail("give exactly one of --query TEXT and --queries FILE");
  query_set out;
  if (!s.queries.empty()) {
    if (!s.label.empty()) detail::fail("--label applies to --query only (a --queries line has its own \"label\")");
    auto e = read_examples(s.queries, m, "--queries");
    for (std::size_t i = 0; i < e.examples.size(); ++i) {
      const auto& labels = e.examples[i].labels;
      if (labels.back() != training_example::ignore_label)  // a classification line (next-token ends unscored)
        e.texts[i] += " -> " + m.token_strings(std::vector<token_id>{labels.back()})[0];
      out.measurements.push_back(measurement::loss(std::move(e.examples[i])));
    }
    out.texts = std::move(e.texts);
    return out;
  }
  input_options in;
  in.text = s.query;
  const token_sequence ids = in.resolve(m);
  token_id label = 0;
  if (!s.label.empty()) {
    label = resolve_token(m, s.label, "--label");
  } else {
    const tensor2 z = m.model.logits_at(ids, std::vector<std::size_t>{ids.size() - 1});
    for (std::size_t v = 1; v < z.shape(1); ++v)
      if (z(0, v) > z(0, static_cast<std::size_t>(label))) label = static_cast<token_id>(v);
  }
  out.measurements.push_back(measurement::loss(training_example::classification(ids, label)));
  out.texts.push_back(
      fmt::format("{} -> {}", joined(m.token_strings(ids)), m.token_strings(std::vector<token_id>{label})[0]));
  return out;
}

// ---------------------------------------------------------------------------------------------
// Output.

report::json entries_json(const std::vector<influence_entry>& entries, const std::vector<std::string>& texts) {
  report::json out = report::json::array();
  for (const auto& e : entries)
    out.push_back({{"index", e.index}, {"score", report::detail::number(e.score)}, {"text", texts[e.index]}});
  return out;
}

void print_entries(std::string_view title, const std::vector<influence_entry>& entries,
                   const std::vector<std::string>& texts) {
  fmt::print("  {}:\n", title);
  for (const auto& e : entries) fmt::print("    #{:<6} {:+.6g}  {}\n", e.index, e.score, texts[e.index]);
}

// Per-token scores of a listed training example for one query, where the method has them (K-FAC).
// `query` null: the example's own self-influence.
using token_scorer = std::function<std::optional<std::vector<double>>(const measurement* query, std::size_t)>;

std::string tokens_html(const std::vector<std::string>& words, const std::optional<std::vector<double>>& scores) {
  std::string out = "<div class=\"tokens\">";
  double scale = 0;
  if (scores)
    for (double v : *scores) scale = std::max(scale, std::abs(v));
  for (std::size_t i = 0; i < words.size(); ++i) {
    if (!scores) {
      out += fmt::format("<span class=\"tok\">{}</span>", report::html_escape(words[i]));
      continue;
    }
    const double v = (*scores)[i];
    const report::rgb c = report::diverging_color(v, scale);
    out += fmt::format("<span class=\"tok\" style=\"background:{};color:{}\">{}<span class=\"tip\">#{} {:+.4g}</span></span>",
                       report::css_color(c), report::needs_light_text(c) ? "#fff" : "#000",
                       report::html_escape(words[i]), i, v);
  }
  return out + "</div>\n";
}

std::string entries_html(std::string_view title, const std::vector<influence_entry>& entries,
                         const std::vector<std::vector<std::string>>& words, const measurement* query,
                         const token_scorer& per_token) {
  std::string out = fmt::format("<h3>{}</h3>\n", report::html_escape(title));
  for (const auto& e : entries) {
    std::optional<std::vector<double>> scores;
    if (per_token) scores = per_token(query, e.index);
    out += fmt::format("<div class=\"meta\"><span>training example #{}</span><span>score {:+.6g}</span></div>\n",
                       e.index, e.score);
    out += tokens_html(words[e.index], scores);
  }
  return out;
}

struct output_context {
  const loaded_model& model;
  const example_set& train;
  std::vector<std::vector<std::string>> words;  // per training example, as the HTML page shows them
};

void write_pairwise(const influence_state& s, const output_context& c, const query_set& q, const influence_result& r,
                    const token_scorer& per_token) {
  fmt::print("influence ({}) of {} training examples on {} quer{}: {}\n", r.method, r.training_size, r.queries(),
             r.queries() == 1 ? "y" : "ies", options_line(r.options));
  if (r.lowest_eigenvalue) fmt::print("  eigenvalues of H: lowest {:.6g}, highest {:.6g}\n", *r.lowest_eigenvalue,
                                      r.highest_eigenvalue.value_or(NAN));
  for (std::size_t i = 0; i < r.queries(); ++i) {
    fmt::print("query {}: {} (f = {:.6g})\n", i, q.texts[i], r.query_values[i]);
    if (i < r.solves.size())
      fmt::print("  solve: {} iterations, relative residual {:.3g}\n", r.solves[i].iterations,
                 r.solves[i].relative_residual);
    print_entries("most helpful", r.top[i], c.train.texts);
    print_entries("most harmful", r.bottom[i], c.train.texts);
  }
  if (!s.scores.empty()) {
    io::save_influence_scores(s.scores, r.scores, {{"method", r.method}, {"format", "glassbox.influence_scores"}});
    fmt::print("wrote {} ({} x {} scores)\n", s.scores, r.queries(), r.training_size);
  }
  if (!s.json.empty()) {
    report::json j{{"schema", "glassbox.influence"},
                   {"version", report::json_version},
                   {"method", r.method},
                   {"training_size", r.training_size},
                   {"damping", report::detail::number(r.damping)},
                   {"options", options_json(r.options)},
                   {"queries", report::json::array()}};
    if (r.lowest_eigenvalue) j["lowest_eigenvalue"] = *r.lowest_eigenvalue;
    for (std::size_t i = 0; i < r.queries(); ++i) {
      report::json one{{"query", q.texts[i]},
                       {"value", report::detail::number(r.query_values[i])},
                       {"top", entries_json(r.top[i], c.train.texts)},
                       {"bottom", entries_json(r.bottom[i], c.train.texts)}};
      if (i < r.solves.size())
        one["solve"] = {{"iterations", r.solves[i].iterations},
                        {"relative_residual", report::detail::number(r.solves[i].relative_residual)},
                        {"converged", r.solves[i].converged}};
      j["queries"].push_back(std::move(one));
    }
    write_json(s.json, j);
  }
  if (!s.html.empty()) {
    std::string body = fmt::format("<h1>Influence: {}</h1>\n<div class=\"meta\"><span>{} training examples</span>"
                                   "<span>{}</span></div>\n",
                                   report::html_escape(r.method), r.training_size,
                                   report::html_escape(options_line(r.options)));
    if (!per_token)
      body += "<div class=\"meta\">Per-token highlights need K-FAC / EK-FAC factors (--factors).</div>\n";
    for (std::size_t i = 0; i < r.queries(); ++i) {
      body += fmt::format("<h2>Query {}: {}</h2>\n<div class=\"meta\">f = {:.6g}</div>\n", i,
                          report::html_escape(q.texts[i]), r.query_values[i]);
      body += entries_html("Most helpful", r.top[i], c.words, &q.measurements[i], per_token);
      body += entries_html("Most harmful", r.bottom[i], c.words, &q.measurements[i], per_token);
    }
    write_text(s.html, report::html_document(fmt::format("glassbox: influence ({})", r.method), body));
  }
}

void write_self(const influence_state& s, const output_context& c, const self_influence_result& r,
                const token_scorer& per_token) {
  const auto ranked = r.ranked();
  const std::vector<influence_entry> top(ranked.begin(),
                                         ranked.begin() + static_cast<std::ptrdiff_t>(std::min(s.top, ranked.size())));
  fmt::print("self-influence ({}) of {} training examples: {}\n", r.method, r.scores.size(), options_line(r.options));
  print_entries("highest self-influence", top, c.train.texts);
  if (!s.scores.empty()) {
    tensor2 m({1, r.scores.size()});
    for (std::size_t n = 0; n < r.scores.size(); ++n) m(0, n) = static_cast<float>(r.scores[n]);
    io::save_influence_scores(s.scores, m, {{"method", r.method}, {"format", "glassbox.self_influence"}});
    fmt::print("wrote {} (1 x {} scores)\n", s.scores, r.scores.size());
  }
  if (!s.json.empty()) {
    report::json j{{"schema", "glassbox.self_influence"},
                   {"version", report::json_version},
                   {"method", r.method},
                   {"training_size", r.scores.size()},
                   {"damping", report::detail::number(r.damping)},
                   {"options", options_json(r.options)},
                   {"top", entries_json(top, c.train.texts)}};
    write_json(s.json, j);
  }
  if (!s.html.empty()) {
    std::string body = fmt::format("<h1>Self-influence: {}</h1>\n<div class=\"meta\"><span>{} training examples</span>"
                                   "<span>{}</span></div>\n",
                                   report::html_escape(r.method), r.scores.size(),
                                   report::html_escape(options_line(r.options)));
    body += entries_html("Highest self-influence (unusual or mislabelled examples first)", top, c.words, nullptr,
                         per_token);
    write_text(s.html, report::html_document(fmt::format("glassbox: self-influence ({})", r.method), body));
  }
}

// ---------------------------------------------------------------------------------------------
// The three subcommands.

void run_fit(const influence_state& s, const mpi_session& mpi) {
  check_output_path(s.out, "--out");
  const loaded_model m = load_model(s.model);
  const example_set train = read_examples(s.data, m, "--data");
  const auto& method = find_method(influence_fit_methods(), s.method.empty() ? "ekfac" : s.method);
  const option_values given = s.fit_flags.given();
  check_options_apply(method.info, given, infos(influence_fit_methods()));
  const kfac_fit_options options = method.run({m, train.examples, execution(s, mpi)}, given);
  kfac_factors factors;
  if (mpi.sharded()) {
#ifdef GLASSBOX_CLI_MPI
    factors = parallel::mpi_fit_kfac_factors(MPI_COMM_WORLD, m.model, train.examples, options);
#endif
  } else {
    factors = fit_kfac_factors(m.model, train.examples, options);
  }
  if (!mpi.root()) return;
  io::save_kfac_factors(s.out, factors);
  fmt::print("fitted {} ({} labels) on {} training examples{}: {} layers, {} tracked parameters\n",
             to_string(factors.method), to_string(factors.fisher), train.examples.size(),
             mpi.sharded() ? fmt::format(" over {} ranks", mpi.size()) : std::string(), factors.layers.size(),
             factors.tracked_parameters());
  fmt::print("wrote {}\n", s.out);
}

// Options of the flat methods make no sense with --factors: refuse them, naming what applies.
void check_factor_options(const option_values& given) {
  for (const auto& [name, text] : given.all())
    if (name != "damping")
      detail::fail("--{} does not apply to --factors (its options: --damping --query-rank --shards --shard-size)",
                   dashed(name));
}

void run_score(const influence_state& s, const mpi_session& mpi, bool self) {
  for (const auto& [file, option] : {std::pair{s.scores, "--scores"}, {s.json, "--json"}, {s.html, "--html"}})
    check_output_path(file, option);
  if (s.factors.empty() == s.method.empty())
    detail::fail("give exactly one of --factors F (K-FAC / EK-FAC scores) and --method exact|cg|lissa|tracin");
  loaded_model m = load_model(s.model);
  const example_set train = read_examples(s.data, m, "--data");
  const query_set q = self ? query_set{} : read_queries(s, m);
  output_context out{m, train, {}};
  for (const auto& e : train.examples) out.words.push_back(m.token_strings(e.tokens, token_style::html));
  const option_values given = (self ? s.self_flags : s.score_flags).given();
  const execution_options exec = execution(s, mpi);

  if (!s.factors.empty()) {
    check_factor_options(given);
    const kfac_factors factors = io::load_kfac_factors(s.factors, m.model);
    kfac_score_options o;
    if (given.given("damping")) {
      o.common.damping = parse::real("damping", given.text("damping"));
      if (*o.common.damping < 0) detail::fail("--damping must be >= 0, got {}", *o.common.damping);
    }
    o.common.top_k = s.top;
    o.common.execution = exec;
    o.query_rank = s.query_rank;
    o.shard_size = s.shard_size;
    if (o.shard_size == 0) detail::fail("--shard-size must be >= 1, got 0");
    if (!s.shards.empty())
      o.shards = self ? io::kfac_shard_directory(s.shards, io::kfac_score_run_id(factors, {}, train.examples, o, "self"), 1)
                      : io::kfac_shard_directory(
                            s.shards, io::kfac_score_run_id(factors, q.measurements, train.examples, o), q.measurements.size());
    // Per-token scores for the HTML page (one query, one training example at a time, no shards).
    kfac_score_options token_options = o;
    token_options.shards = {};
    token_options.common.execution.on_progress = {};
    const token_scorer per_token = [&](const measurement* query, std::size_t n) -> std::optional<std::vector<double>> {
      const measurement mq = query ? *query : measurement::weighted({{train.examples[n], 1.0}});
      const auto t = kfac_token_influence(m.model, factors, std::span(&mq, 1), train.examples[n], n, token_options);
      std::vector<double> v(t.scores.shape(1));
      for (std::size_t i = 0; i < v.size(); ++i) v[i] = t.scores(0, i);
      return v;
    };
    if (self) {
      self_influence_result r;
      if (mpi.sharded()) {
#ifdef GLASSBOX_CLI_MPI
        r = parallel::mpi_kfac_self_influence(MPI_COMM_WORLD, m.model, factors, train.examples, o);
#endif
      } else {
        r = kfac_self_influence(m.model, factors, train.examples, o);
      }
      if (mpi.root()) write_self(s, out, r, per_token);
    } else {
      influence_result r;
      if (mpi.sharded()) {
#ifdef GLASSBOX_CLI_MPI
        r = parallel::mpi_kfac_influence(MPI_COMM_WORLD, m.model, factors, q.measurements, train.examples, o);
#endif
      } else {
        r = kfac_influence(m.model, factors, q.measurements, train.examples, o);
      }
      if (mpi.root()) write_pairwise(s, out, q, r, per_token);
    }
    return;
  }

  const auto& method = find_method(influence_score_methods(), s.method);
  check_options_apply(method.info, given, infos(influence_score_methods()));
  if (mpi.sharded())
    detail::fail("--method {} does not shard over MPI (only --factors scoring and influence fit do); run it without "
                 "mpirun",
                 method.info.cli_name());
  if (!s.shards.empty()) detail::fail("--shards applies to --factors scoring only");
  std::vector<tracin_checkpoint> checkpoints;
  if (!s.checkpoints.empty()) {
    if (method.info.name != "tracin") detail::fail("--checkpoints applies to --method tracin only");
    checkpoints = load_tracin_checkpoints(s.checkpoints, m.model.parameter_count());
  }
  const influence_score_call call{m.model, train.examples, q.measurements, checkpoints, s.top, exec};
  const influence_outcome r = method.run(call, given);
  if (self)
    write_self(s, out, *r.self, {});
  else
    write_pairwise(s, out, q, *r.pairwise, {});
}

}  // namespace

runner add_influence_command(CLI::App& app) {
  auto s = std::make_shared<influence_state>();
  auto* cmd = app.add_subcommand("influence",
                                 "Which training examples made the model say this: influence functions (K-FAC, EK-FAC, "
                                 "exact, CG, LiSSA, TracIn; docs/influence.md)");
  cmd->require_subcommand(1);
  auto common = [&](CLI::App* c) {
    c->add_option("--model", s->model, "model directory or .safetensors file (default: the bundled model)");
    c->add_option("--data", s->data, "training set, JSON lines (generate-data format, or token_ids with an optional label)")
        ->required();
    c->add_option("--batch-size", s->batch_size, "training examples per step")->capture_default_str();
    c->add_option("--threads", s->threads, "threads (0 = all cores)")->capture_default_str();
  };
  auto outputs = [&](CLI::App* c, bool self) {
    c->add_option("--factors", s->factors, "K-FAC / EK-FAC factors written by `glassbox influence fit`");
    c->add_option("--method", s->method, "a flat-parameter method instead of --factors: exact, cg, lissa, tracin");
    c->add_option("--checkpoints", s->checkpoints,
                  "tracin: checkpoints.json (or its directory) written by `glassbox train --save-checkpoints K`");
    c->add_option("--top", s->top, self ? "examples listed, highest self-influence first" :
                                          "most helpful and most harmful examples listed per query")
        ->capture_default_str();
    c->add_option("--query-rank", s->query_rank, "--factors: rank-k approximation of the query gradients (0 = exact)")
        ->capture_default_str();
    c->add_option("--shards", s->shards,
                  "--factors: keep finished score shards in this directory; a rerun resumes from them");
    c->add_option("--shard-size", s->shard_size, "--factors: training examples per shard")->capture_default_str();
    c->add_option("--scores", s->scores,
                  self ? "write the self-influence scores [1, N] as float32 safetensors"
                       : "write the score matrix [queries, N] as float32 safetensors");
    c->add_option("--json", s->json, "write the result as JSON ('-' = stdout)");
    c->add_option("--html", s->html, "write an HTML page with per-token highlights (--factors)");
  };

  s->fit = cmd->add_subcommand("fit", "Fit K-FAC / EK-FAC / diagonal / identity curvature and save it (safetensors)");
  common(s->fit);
  s->fit->add_option("--out", s->out, "the factors file to write (.safetensors)")->required();
  s->fit->add_option("--method", s->method, "ekfac (default), kfac, diagonal, identity");
  s->fit_flags.add_to(*s->fit, infos(influence_fit_methods()));

  s->score = cmd->add_subcommand("score", "Score every training example's influence on queries: most helpful and harmful");
  common(s->score);
  s->score->add_option("--query", s->query, "the query text; measured: the loss of --label after it");
  s->score->add_option("--label", s->label, "--query: the label token (default: the model's top prediction)");
  s->score->add_option("--queries", s->queries, "queries, JSON lines (as --data)");
  outputs(s->score, false);
  s->score_flags.add_to(*s->score, infos(influence_score_methods()));

  s->self = cmd->add_subcommand("self", "Rank the training set by self-influence (unusual or mislabelled examples first)");
  common(s->self);
  outputs(s->self, true);
  s->self_flags.add_to(*s->self, infos(influence_score_methods()));

  return [s] {
    const mpi_session mpi;
    if (s->fit->parsed()) run_fit(*s, mpi);
    if (s->score->parsed()) run_score(*s, mpi, false);
    if (s->self->parsed()) run_score(*s, mpi, true);
  };
}

}  // namespace glassbox::cli

// glassbox generate-data: reviews of the synthetic language (docs/ground-truth.md) as JSON lines.
#include <fmt/format.h>

#include <fstream>
#include <iostream>

#include "cli.hpp"
#include "glassbox/datasets/reviews.hpp"

namespace glassbox::cli {

namespace {

// One example as a JSON object: text, tokens, label, rationale, subsets, properties, flipped.
report::json example_json(const datasets::review_example& e, std::size_t index) {
  report::json j;
  j["index"] = index;
  j["text"] = e.text();
  j["token_ids"] = e.tokens;
  j["label"] = datasets::review_word(e.label).word;
  j["true_label"] = datasets::review_word(e.true_label).word;
  j["flipped"] = e.flipped;
  j["rationale"] = e.rationale();
  j["negated"] = e.negated();
  j["contrast"] = e.contrast();
  report::json props = report::json::object();
  for (const auto p : datasets::all_review_properties) {
    report::json column = report::json::array();
    for (const auto& t : e.properties()) column.push_back(datasets::property_value(t, p));
    props[std::string(datasets::to_string(p))] = std::move(column);
  }
  report::json modifies = report::json::array();
  for (const auto& t : e.properties()) modifies.push_back(t.modifies);
  props["modifies"] = std::move(modifies);
  j["properties"] = std::move(props);
  return j;
}

}  // namespace

runner add_generate_data_command(CLI::App& app) {
  struct state {
    std::size_t n = 1000;
    std::uint64_t seed = 1;
    double noise = 0;
    std::string out;
  };
  auto s = std::make_shared<state>();
  auto* cmd = app.add_subcommand("generate-data",
                                 "Write reviews of the synthetic language with their labels, rationales and token "
                                 "properties as JSON lines (docs/ground-truth.md)");
  cmd->add_option("--n", s->n, "number of reviews")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--seed", s->seed, "seed: the same seed gives the same reviews on every machine")
      ->capture_default_str();
  cmd->add_option("--noise", s->noise, "flip each training label with this probability (recorded in 'flipped')")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--out", s->out, "output file ('-' = stdout)")->required();
  return [s] {
    datasets::review_options options;
    options.noise = s->noise;
    const datasets::review_generator generator(options);
    std::ofstream file;
    std::ostream* out = &std::cout;
    if (s->out != "-") {
      file.open(s->out, std::ios::binary);
      if (!file) detail::fail("cannot write {}", s->out);
      out = &file;
    }
    for (std::size_t i = 0; i < s->n; ++i) *out << example_json(generator.example(s->seed, i), i).dump() << '\n';
    out->flush();
    if (!*out) detail::fail("cannot write {}", s->out);
    if (s->out != "-") fmt::print(stderr, "wrote {} reviews of seed {} to {}\n", s->n, s->seed, s->out);
  };
}

}  // namespace glassbox::cli

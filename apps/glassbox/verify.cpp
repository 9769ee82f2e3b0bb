// glassbox verify: the adapter conformance kit (glassbox::verify_adapter) on a checkpoint, through
// the reference GPT-2 in float (what the other commands run) or in double. Prints the table; exit
// status 1 when a check fails.
#include "glassbox/verify.hpp"

#include <fmt/format.h>

#include <cmath>
#include <string>
#include <vector>

#include "cli.hpp"

namespace glassbox::cli {

namespace {

/// The report as a `glassbox.verify` document (docs/cli.md#glassbox-verify).
report::json verify_json(const verify_report& r, const loaded_model& m, const token_sequence& ids,
                         const std::string& precision) {
  report::json j;
  j["schema"] = "glassbox.verify";
  j["version"] = 1;
  j["model"] = m.path.string();
  j["precision"] = precision;
  j["tokens"] = m.token_strings(ids);
  j["token_ids"] = ids;
  j["passed"] = r.passed();
  j["output_rows"] = r.output_rows;
  j["columns"] = r.columns;
  j["causal"] = r.causal;
  j["causal_source"] = r.causal_source;
  j["rungs"] = r.rungs;
  j["library_rungs"] = r.library_rungs;
  report::json checks = report::json::array();
  for (const auto& c : r.checks) {
    report::json row;
    row["name"] = c.name;
    row["rung"] = c.rung;
    row["status"] = c.passed() ? "passed" : c.failed() ? "failed" : "skipped";
    row["measured"] = number_or_null(c.measured);
    row["tolerance"] = number_or_null(c.tolerance);
    if (!c.measured_text.empty()) row["measured_text"] = c.measured_text;
    if (!c.tolerance_text.empty()) row["tolerance_text"] = c.tolerance_text;
    row["detail"] = c.detail;
    checks.push_back(std::move(row));
  }
  j["checks"] = std::move(checks);
  report::json members = report::json::array();
  for (const auto& o : r.optional_members) members.push_back({{"name", o.name}, {"present", o.present}, {"effect", o.effect}});
  j["optional_members"] = std::move(members);
  j["fast_paths"] = r.fast_paths;
  j["warnings"] = r.warnings;
  return j;
}

/// The default input: 8 token ids spread evenly over the vocabulary (fewer for a shorter model).
token_sequence default_tokens(const loaded_model& m) {
  const std::size_t v = m.model.vocab_size(), n = std::min<std::size_t>({8, v, m.model.max_positions()});
  token_sequence ids(n);
  for (std::size_t i = 0; i < n; ++i) ids[i] = static_cast<token_id>((2 * i + 1) * v / (2 * n));
  return ids;
}

}  // namespace

runner add_verify_command(CLI::App& app) {
  struct state {
    std::string model, json, precision = "float", causal = "auto";
    input_options input;
    verify_options options;
    bool no_parameter_checks = false;
  };
  auto s = std::make_shared<state>();
  auto* cmd = app.add_subcommand(
      "verify", "Check the model's adapter against the contract of every rung (shapes, consistency, gradients against "
                "finite differences, attention) and print the table; exit status 1 when a check fails");
  cmd->add_option("--model", s->model, "model file or directory (default: the bundled model)");
  s->input.add_to(*cmd);
  cmd->add_option("--precision", s->precision, "run the reference GPT-2 in float (as every command) or double")
      ->capture_default_str()
      ->check(CLI::IsMember({"float", "double"}));
  cmd->add_option("--seed", s->options.seed, "seed of the random directions, readouts and masks")->capture_default_str();
  cmd->add_option("--directions", s->options.directions, "random directions per finite-difference check")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--tolerance-scale", s->options.tolerance_scale, "multiply every tolerance (below 1 is stricter)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--step", s->options.step,
                  "relative finite-difference step; 0 = fitted to the precision (float 2e-2, double 1e-3)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 0.5));
  cmd->add_option("--causal", s->causal, "apply the causal checks: auto (detect from the logits), yes or no")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "yes", "no"}));
  cmd->add_flag("--no-parameter-checks", s->no_parameter_checks,
                "skip the finite differences over parameters (they copy the model)");
  cmd->add_option("--json", s->json, "also write the report as JSON to this file ('-' = stdout, without the table)");
  return [s] {
    check_output_path(s->json, "--json");
    const auto m = load_model(s->model);
    const token_sequence ids =
        s->input.text.empty() && s->input.tokens.empty() ? default_tokens(m) : s->input.resolve(m);
    verify_options options = s->options;
    if (s->causal != "auto") options.causal = s->causal == "yes";
    options.parameter_checks = !s->no_parameter_checks;
    const verify_report report = s->precision == "double"
                                     ? verify_adapter(models::basic_gpt2<double>::load(m.path), ids, options)
                                     : verify_adapter(m.model, ids, options);
    if (s->json != "-") {
      std::string text;
      for (const auto& w : m.token_strings(ids)) text += (text.empty() ? "" : " ") + w;
      fmt::print("model   {}\ninput   {}\n", m.path.string(), text);
      fmt::print("{}", to_string(report));
    }
    if (!s->json.empty()) write_json(s->json, verify_json(report, m, ids, s->precision));
    if (!report.passed()) {
      const auto failed = report.failed_checks();
      detail::fail("{} of {} checks failed: {}", failed.size(), report.checks.size(), fmt::join(failed, "; "));
    }
  };
}

}  // namespace glassbox::cli

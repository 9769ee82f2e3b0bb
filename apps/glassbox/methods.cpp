// glassbox methods: every method of the registry, with the rung it needs and its options; with
// --markdown the table of docs/cli.md (which a test keeps equal to this output).
#include <fmt/format.h>

#include "attention_methods.hpp"
#include "cli.hpp"
#include "explain_methods.hpp"
#include "influence_methods.hpp"
#include "registry.hpp"

namespace glassbox::cli {

std::vector<method_info> all_method_infos() {
  std::vector<method_info> out = infos(attribution_methods());
  for (auto& m : infos(attention_methods())) out.push_back(std::move(m));
  for (auto& m : infos(influence_fit_methods())) out.push_back(std::move(m));
  for (auto& m : infos(influence_score_methods())) out.push_back(std::move(m));
  return out;
}

runner add_methods_command(CLI::App& app) {
  struct state {
    std::string command;
    bool markdown = false;
    std::string json;
  };
  auto s = std::make_shared<state>();
  auto* cmd = app.add_subcommand("methods", "List every method: its command, the rung of the model ladder it needs, "
                                            "its options and their defaults (docs/cli.md)");
  cmd->add_option("--command", s->command,
                  "only the methods of this command (explain, attention, \"influence fit\", \"influence score\")");
  cmd->add_flag("--markdown", s->markdown, "print the Markdown table of docs/cli.md");
  cmd->add_option("--json", s->json, "write the methods as JSON to this file ('-' = stdout)");
  return [s] {
    std::vector<method_info> methods;
    for (auto& m : all_method_infos())
      if (s->command.empty() || m.command == s->command) methods.push_back(std::move(m));
    if (methods.empty())
      detail::fail("--command: no methods for '{}' (commands: explain, attention, influence fit, influence score)",
                   s->command);
    if (!s->json.empty()) {
      report::json all = report::json::array();
      for (const auto& m : methods) {
        report::json j{{"name", m.name},       {"command", m.command}, {"family", m.family},
                       {"rung", m.rung},       {"summary", m.summary}, {"options", report::json::array()}};
        for (const auto& o : m.options)
          j["options"].push_back({{"name", o.name},
                                  {"type", std::string(to_string(o.type))},
                                  {"default", o.default_text},
                                  {"help", o.help},
                                  {"sets", o.field}});
        all.push_back(std::move(j));
      }
      write_json(s->json, all);
      if (s->json == "-") return;
    }
    if (s->markdown) {
      fmt::print("{}", methods_markdown(methods));
      return;
    }
    for (const auto& m : methods) {
      fmt::print("{} --method {}   ({}, needs {})\n  {}\n", m.command, m.cli_name(), m.family, m.rung, m.summary);
      for (const auto& o : m.options)
        fmt::print("    --{:<22} {}{}\n", dashed(o.name), o.help,
                   o.default_text.empty() ? "" : fmt::format(" (default: {})", o.default_text));
    }
  };
}

}  // namespace glassbox::cli

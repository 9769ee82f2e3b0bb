// The command line's method registry (registry.hpp): parsing option text, the options of a command,
// and the methods table.
#include "registry.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <set>

namespace glassbox::cli {

std::string dashed(std::string_view name) {
  std::string out(name);
  for (char& c : out) c = c == '_' ? '-' : static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

namespace parse {

double real(std::string_view option, std::string_view text) {
  double v = 0;
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || ptr != text.data() + text.size() || !std::isfinite(v))
    detail::fail("--{} must be a number, got '{}'", option, text);
  return v;
}

bool flag(std::string_view option, std::string_view text) {
  const std::string v = dashed(text);
  if (v.empty() || v == "true" || v == "1" || v == "yes" || v == "on") return true;
  if (v == "false" || v == "0" || v == "no" || v == "off") return false;
  detail::fail("--{} must be true or false, got '{}'", option, text);
}

std::size_t choice(std::string_view option, std::string_view text, const std::vector<std::string>& choices) {
  const std::string v = dashed(text);
  for (std::size_t i = 0; i < choices.size(); ++i)
    if (dashed(choices[i]) == v) return i;
  std::string list;
  for (const auto& c : choices) list += (list.empty() ? "" : ", ") + dashed(c);
  detail::fail("--{} must be one of {}, got '{}'", option, list, text);
}

}  // namespace parse

void method_options::add_to(CLI::App& command, const std::vector<method_info>& methods) {
  // One command-line option per name, in the order of first appearance.
  std::vector<std::string> order;
  std::map<std::string, std::vector<std::pair<const method_info*, const option_spec*>>> users;
  for (const auto& m : methods)
    for (const auto& o : m.options) {
      if (!users.contains(o.name)) order.push_back(o.name);
      users[o.name].push_back({&m, &o});
    }
  for (const auto& name : order) {
    const auto& list = users[name];
    const option_spec& first = *list.front().second;
    std::string readers, defaults;
    std::set<std::string> distinct_defaults;
    for (const auto& [m, o] : list) distinct_defaults.insert(o->default_text);
    for (const auto& [m, o] : list) {
      readers += (readers.empty() ? "" : ", ") + m->cli_name();
      if (distinct_defaults.size() > 1 && !o->default_text.empty())
        defaults += fmt::format("{}{} {}", defaults.empty() ? "" : ", ", m->cli_name(), o->default_text);
    }
    if (distinct_defaults.size() == 1 && !first.default_text.empty()) defaults = first.default_text;
    // One help when the methods agree on it, else each method's own.
    std::set<std::string> distinct_helps;
    for (const auto& [m, o] : list) distinct_helps.insert(o->help);
    std::string help = fmt::format("{} [{}]", first.help, readers);
    if (distinct_helps.size() > 1) {
      help.clear();
      for (const auto& [m, o] : list) help += fmt::format("{}{}: {}", help.empty() ? "" : "; ", m->cli_name(), o->help);
    }
    if (!defaults.empty()) help += fmt::format(" (default: {})", defaults);
    std::string& storage = storage_[name];
    CLI::Option* option = first.type == option_type::flag
                              ? command.add_flag("--" + dashed(name) + "{true}", storage, help)
                              : command.add_option("--" + dashed(name), storage, help);
    options_.push_back({name, option});
  }
}

option_values method_options::given() const {
  option_values out;
  for (const auto& [name, option] : options_)
    if (option->count() > 0) out.set(name, storage_.at(name));
  return out;
}

void check_options_apply(const method_info& method, const option_values& values,
                         const std::vector<method_info>& all_methods) {
  std::set<std::string> known, own;
  for (const auto& m : all_methods)
    for (const auto& o : m.options) known.insert(o.name);
  for (const auto& o : method.options) own.insert(o.name);
  for (const auto& [name, text] : values.all()) {
    if (!known.contains(name) || own.contains(name)) continue;
    std::string list;
    for (const auto& o : method.options) list += (list.empty() ? "--" : " --") + dashed(o.name);
    detail::fail("--{} does not apply to --method {} (its options: {})", dashed(name), method.cli_name(),
                 list.empty() ? "none" : list);
  }
}

std::string methods_markdown(const std::vector<method_info>& methods) {
  std::string out = "| command | method (C++ and JSON) | `--method` | model needs | what it computes | options (default) |\n";
  out += "|---|---|---|---|---|---|\n";
  for (const auto& m : methods) {
    std::string options;
    for (const auto& o : m.options)
      options += fmt::format("{}`--{}`{}", options.empty() ? "" : ", ", dashed(o.name),
                             o.default_text.empty() ? "" : fmt::format(" ({})", o.default_text));
    out += fmt::format("| {} | `{}` | `{}` | `{}` | {} | {} |\n", m.command, m.name, m.cli_name(), m.rung, m.summary,
                       options.empty() ? "—" : options);
  }
  return out;
}

}  // namespace glassbox::cli

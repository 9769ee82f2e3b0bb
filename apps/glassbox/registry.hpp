// glassbox: the method registry of the command line. Every method is described once: its name (the
// C++ function's, which is also the JSON `method` field; the command line accepts it with dashes or
// underscores), the command it belongs to, the rung of the model ladder it needs, a one-line
// summary with its paper, its options (name, type, default, help, and the field of the library's
// options struct each one sets), and how it runs. A command's options, its --help, the check that
// an option applies to the chosen method, `glassbox methods` and the methods table of docs/cli.md
// are all derived from these descriptions: adding a method is one entry in its command's table
// (docs/cli.md, "Adding a method").
#pragma once

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <charconv>
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "glassbox/core/error.hpp"
#include "glassbox/core/execution.hpp"

namespace glassbox::cli {

/// What kind of value an option takes.
enum class option_type {
  flag,     ///< present or not (an optional value true / false)
  integer,  ///< a non-negative integer
  real,     ///< a real number
  text,     ///< text: a choice, a word, a list
};

/// The stable name of an option type ("flag", "integer", "real", "text").
constexpr std::string_view to_string(option_type t) {
  switch (t) {
    case option_type::flag: return "flag";
    case option_type::integer: return "integer";
    case option_type::real: return "real";
    case option_type::text: return "text";
  }
  return "unknown";
}

/// One option of a method, as the command line and the documentation show it.
struct option_spec {
  std::string name;          ///< without dashes, e.g. "steps" (command line: --steps)
  option_type type = option_type::text;
  std::string help;          ///< one line
  std::string default_text;  ///< the library's default, e.g. "50"; empty when there is none
  std::string field;         ///< the library field it sets, e.g. "integrated_gradients_options::steps"
};

/// The option values given on the command line (or on a line of a --data file), by name.
class option_values {
 public:
  /// Records `text` as the value of option `name`.
  void set(std::string name, std::string text) { values_[std::move(name)] = std::move(text); }
  /// Whether option `name` was given.
  bool given(std::string_view name) const { return values_.find(name) != values_.end(); }
  /// The text given for option `name` (empty when not given).
  const std::string& text(std::string_view name) const {
    static const std::string none;
    const auto it = values_.find(name);
    return it == values_.end() ? none : it->second;
  }
  /// Every given option, by name.
  const std::map<std::string, std::string, std::less<>>& all() const { return values_; }

 private:
  std::map<std::string, std::string, std::less<>> values_;
};

/// The name of a method or choice as the command line spells it: lower case, underscores as dashes.
std::string dashed(std::string_view name);

/// Parsers of option text, each failing with "--<name> must be ..., got '<text>'".
namespace parse {
/// A non-negative integer that fits T.
template <class T>
T integer(std::string_view option, std::string_view text) {
  std::uint64_t v = 0;
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || ptr != text.data() + text.size() ||
      v > static_cast<std::uint64_t>(std::numeric_limits<T>::max()))
    detail::fail("--{} must be a non-negative integer, got '{}'", option, text);
  return static_cast<T>(v);
}
/// A finite real number.
double real(std::string_view option, std::string_view text);
/// true / false (also 1 / 0, yes / no, on / off).
bool flag(std::string_view option, std::string_view text);
/// One of `choices` (matched with dashes or underscores); returns its index.
std::size_t choice(std::string_view option, std::string_view text, const std::vector<std::string>& choices);
}  // namespace parse

/// An option of a method bound to a field of the library's options struct `Options`, with the
/// context `Call` the parse may read (the model, for a baseline token given as a word).
template <class Options, class Call>
struct option_field {
  option_spec spec;
  std::function<void(Options&, std::string_view text, const Call&)> apply;
};

namespace detail_registry {
template <class T>
std::string default_text(const T& v) {
  if constexpr (std::is_same_v<T, bool>) {
    return v ? "true" : "false";
  } else if constexpr (std::is_arithmetic_v<T>) {
    return fmt::format("{}", v);
  } else {
    return {};
  }
}
template <class T>
constexpr option_type type_of() {
  if constexpr (std::is_same_v<T, bool>) return option_type::flag;
  else if constexpr (std::is_integral_v<T>) return option_type::integer;
  else if constexpr (std::is_floating_point_v<T>) return option_type::real;
  else return option_type::text;
}
}  // namespace detail_registry

/// An option that sets `Options::*member` (a number or a flag) from the command line.
template <class Call, class Options, class T>
option_field<Options, Call> field(std::string name, T Options::*member, std::string help, std::string field_name) {
  option_field<Options, Call> f;
  f.spec = {name, detail_registry::type_of<T>(), std::move(help), detail_registry::default_text(Options{}.*member),
            std::move(field_name)};
  f.apply = [member, name](Options& o, std::string_view text, const Call&) {
    if constexpr (std::is_same_v<T, bool>) {
      o.*member = parse::flag(name, text);
    } else if constexpr (std::is_integral_v<T>) {
      o.*member = parse::integer<T>(name, text);
    } else {
      static_assert(std::is_floating_point_v<T>, "glassbox::cli::field: use a custom field for this type");
      o.*member = static_cast<T>(parse::real(name, text));
    }
  };
  return f;
}

/// A flag that sets a bool `Options::*member` to the opposite of its value (e.g. --unpaired sets paired = false).
template <class Call, class Options>
option_field<Options, Call> negated_flag(std::string name, bool Options::*member, std::string help,
                                         std::string field_name) {
  option_field<Options, Call> f;
  f.spec = {name, option_type::flag, std::move(help), (Options{}.*member) ? "false" : "true", std::move(field_name)};
  f.apply = [member, name](Options& o, std::string_view text, const Call&) { o.*member = !parse::flag(name, text); };
  return f;
}

/// An option that sets an enum `Options::*member` to one of `values`, named by to_string(value).
template <class Call, class Options, class E>
option_field<Options, Call> choice_field(std::string name, E Options::*member, std::vector<E> values, std::string help,
                                         std::string field_name) {
  std::vector<std::string> names;
  for (E v : values) names.push_back(dashed(to_string(v)));
  option_field<Options, Call> f;
  std::string choices;
  for (const auto& n : names) choices += (choices.empty() ? "" : ", ") + n;
  f.spec = {name, option_type::text, fmt::format("{} ({})", help, choices), dashed(to_string(Options{}.*member)),
            std::move(field_name)};
  f.apply = [member, name, names, values](Options& o, std::string_view text, const Call&) {
    o.*member = values[parse::choice(name, text, names)];
  };
  return f;
}

/// An option with its own parser: apply(options, text, call).
template <class Call, class Options, class Apply>
option_field<Options, Call> custom_field(option_spec spec, Apply apply) {
  return {std::move(spec), std::function<void(Options&, std::string_view, const Call&)>(std::move(apply))};
}

/// What the registry says of one method, whatever its command.
struct method_info {
  std::string name;       ///< the C++ function and JSON `method` field, e.g. "integrated_gradients"
  std::string command;    ///< the subcommand that runs it, e.g. "explain"
  std::string family;     ///< e.g. "perturbation", "gradient", "layer", "attention", "relevance"
  std::string rung;       ///< the weakest rung of the model ladder it needs, e.g. "DifferentiableModel"
  std::string summary;    ///< one line, with its paper
  std::vector<option_spec> options;  ///< its own options (the command's shared options are not listed)

  /// The name as the command line spells it, e.g. "integrated-gradients".
  std::string cli_name() const { return dashed(name); }
};

/// A method of a command whose calls are `Call` and whose results are `Result`.
template <class Call, class Result>
struct method {
  method_info info;
  /// Runs the method: builds its options struct, applies the given options, calls the library.
  std::function<Result(const Call&, const option_values&)> run;
};

/// A method that builds `Options`, applies `fields`, sets `Options::execution` from the call (when
/// the struct has it) and calls `library(call, options)`.
template <class Call, class Result, class Options, class Library>
method<Call, Result> make_method(method_info info, std::vector<option_field<Options, Call>> fields, Library library) {
  for (const auto& f : fields) info.options.push_back(f.spec);
  auto shared = std::make_shared<std::vector<option_field<Options, Call>>>(std::move(fields));
  return {std::move(info), [shared, library](const Call& call, const option_values& values) -> Result {
            Options o{};
            for (const auto& f : *shared)
              if (values.given(f.spec.name)) f.apply(o, values.text(f.spec.name), call);
            if constexpr (requires { o.execution; }) o.execution = call.execution;
            return library(call, o);
          }};
}

/// The method of `methods` named `value` (dashes or underscores); glassbox::error listing the names if none.
/// `also` names further accepted values the caller handles itself (e.g. "all").
template <class Call, class Result>
const method<Call, Result>& find_method(const std::vector<method<Call, Result>>& methods, std::string_view value,
                                        std::string_view also = {}) {
  const std::string wanted = dashed(value);
  for (const auto& m : methods)
    if (m.info.cli_name() == wanted) return m;
  std::string names;
  for (const auto& m : methods) names += (names.empty() ? "" : ", ") + m.info.cli_name();
  if (!also.empty()) names += fmt::format(", {}", also);
  detail::fail("--method: unknown method '{}' (expected one of: {})", value, names);
}

/// The method descriptions of a method table.
template <class Call, class Result>
std::vector<method_info> infos(const std::vector<method<Call, Result>>& methods) {
  std::vector<method_info> out;
  for (const auto& m : methods) out.push_back(m.info);
  return out;
}

/// The command-line options of a command's methods: one per distinct option name, whose help says
/// which methods read it and with which default. Bound when the command is set up, read after parsing.
class method_options {
 public:
  /// Adds the options of `methods` to `command`.
  void add_to(CLI::App& command, const std::vector<method_info>& methods);
  /// The options given on the command line.
  option_values given() const;

 private:
  std::map<std::string, std::string> storage_;             // by name; nodes never move
  std::vector<std::pair<std::string, CLI::Option*>> options_;
};

/// Fails when an option was given that `method` does not read, naming the options it does read.
void check_options_apply(const method_info& method, const option_values& values,
                         const std::vector<method_info>& all_methods);

/// Every method of every command, for `glassbox methods` and the docs.
std::vector<method_info> all_method_infos();

/// The methods table of docs/cli.md, in Markdown: one row per method with its options and defaults.
std::string methods_markdown(const std::vector<method_info>& methods);

}  // namespace glassbox::cli

// glassbox: the report of the adapter conformance kit (verify_adapter, verify/adapter.hpp): one
// row per check (check, rung, measured error or value, tolerance, result), the optional members
// the adapter has, the fast paths the library takes because of them, and warnings. A value type;
// to_string() renders it as the table docs/concepts.md#checking-an-adapter explains.
#pragma once

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace glassbox {

/// The outcome of one conformance check.
enum class check_status {
  passed,   ///< the measured value is within the tolerance
  failed,   ///< it is not, or the member threw
  skipped,  ///< the check does not apply (the detail says why)
};

/// "pass", "FAIL" or "skip".
constexpr std::string_view to_string(check_status status) {
  switch (status) {
    case check_status::passed: return "pass";
    case check_status::failed: return "FAIL";
    case check_status::skipped: return "skip";
  }
  return "unknown";
}

/// One row of the conformance table.
struct check_result {
  std::string name;                            ///< e.g. "embedding_gradient vs finite differences"
  std::string rung;                            ///< the concept the checked member belongs to, or "optional"
  check_status status = check_status::passed;  ///< pass, fail or skip
  double measured = 0;                         ///< the error or value measured (NaN when the check did not run)
  double tolerance = 0;                        ///< the bound the measured value is held to
  std::string measured_text;                   ///< the measured column when it is not a number (a shape); else empty
  std::string tolerance_text;                  ///< the tolerance column when it is not "<= tolerance"; else empty
  std::string detail;                          ///< what a failure means, or why the check was skipped

  /// Whether the check passed.
  bool passed() const { return status == check_status::passed; }
  /// Whether the check failed.
  bool failed() const { return status == check_status::failed; }
};

/// An optional member of the model ladder and what the library does because of it.
struct optional_member {
  std::string name;      ///< e.g. "logits_batch"
  bool present = false;  ///< whether the adapter has it with the signature the library calls
  std::string effect;    ///< the fast path it enables, or what the library does without it
};

/// What verify_adapter found: every check that applies to the adapter's rungs, its optional
/// members and the fast paths they enable, and warnings.
struct verify_report {
  std::string scalar;                ///< the adapter's scalar type, "float" or "double"
  std::size_t tokens = 0;            ///< length of the input the checks ran on
  std::size_t output_rows = 0;       ///< rows of logits for that input
  std::size_t columns = 0;           ///< columns of logits (vocab_size(), or the classes of a classifier)
  bool causal = false;               ///< whether the causal checks applied
  std::string causal_source;         ///< how causality was decided ("set by options.causal", "detected: ...")
  std::vector<std::string> rungs;    ///< the rungs whose members the adapter has (the ones checked)
  std::vector<std::string> library_rungs;  ///< the rungs glassbox's algorithms accept it for (float interface)
  std::vector<check_result> checks;        ///< one per check, in the order they ran
  std::vector<optional_member> optional_members;  ///< every optional member, present or not
  std::vector<std::string> fast_paths;            ///< what the library will do faster because of them
  std::vector<std::string> warnings;              ///< things that are not errors but cost speed or trust

  /// True when no check failed.
  template <class = void>
  bool passed() const {
    return std::none_of(checks.begin(), checks.end(), [](const check_result& c) { return c.failed(); });
  }
  /// The number of checks with `status`.
  template <class = void>
  std::size_t count(check_status status) const {
    return static_cast<std::size_t>(
        std::count_if(checks.begin(), checks.end(), [&](const check_result& c) { return c.status == status; }));
  }
  /// The check named `name`, or nullptr.
  template <class = void>
  const check_result* find(std::string_view name) const {
    for (const auto& c : checks)
      if (c.name == name) return &c;
    return nullptr;
  }
  /// The names of the failed checks, in order.
  template <class = void>
  std::vector<std::string> failed_checks() const {
    std::vector<std::string> out;
    for (const auto& c : checks)
      if (c.failed()) out.push_back(c.name);
    return out;
  }
};

namespace detail {

/// The measured column of one row.
template <class = void>
inline std::string verify_measured_text(const check_result& c) {
  if (!c.measured_text.empty()) return c.measured_text;
  if (std::isnan(c.measured)) return "-";
  return fmt::format("{:.2e}", c.measured);
}

/// The tolerance column of one row.
template <class = void>
inline std::string verify_tolerance_text(const check_result& c) {
  if (!c.tolerance_text.empty()) return c.tolerance_text;
  return fmt::format("<= {:.1e}", c.tolerance);
}

}  // namespace detail

/// The report as a text table: a header, one row per check (check, rung, measured, tolerance,
/// result), the notes of failed and skipped checks, the optional members, fast paths and warnings,
/// and a summary line.
template <class = void>
inline std::string to_string(const verify_report& report) {
  std::string out = fmt::format("adapter check: {} model, {} tokens, {} output rows x {} columns, {}\n", report.scalar,
                                report.tokens, report.output_rows, report.columns,
                                report.causal ? "causal" : "not causal");
  out += fmt::format("causality: {}\n", report.causal_source);
  out += fmt::format("rungs checked: {}\n", report.rungs.empty() ? "none" : fmt::format("{}", fmt::join(report.rungs, ", ")));
  if (report.library_rungs != report.rungs)
    out += fmt::format("rungs glassbox's algorithms accept: {}\n",
                       report.library_rungs.empty() ? "none" : fmt::format("{}", fmt::join(report.library_rungs, ", ")));
  std::size_t w_name = 5, w_rung = 4, w_measured = 8, w_tolerance = 9;
  for (const auto& c : report.checks) {
    w_name = std::max(w_name, c.name.size());
    w_rung = std::max(w_rung, c.rung.size());
    w_measured = std::max(w_measured, detail::verify_measured_text(c).size());
    w_tolerance = std::max(w_tolerance, detail::verify_tolerance_text(c).size());
  }
  out += "\n";
  out += fmt::format("{:<{}}  {:<{}}  {:>{}}  {:<{}}  {}\n", "check", w_name, "rung", w_rung, "measured", w_measured,
                     "tolerance", w_tolerance, "result");
  out += std::string(w_name + w_rung + w_measured + w_tolerance + 14, '-') + "\n";
  for (const auto& c : report.checks)
    out += fmt::format("{:<{}}  {:<{}}  {:>{}}  {:<{}}  {}\n", c.name, w_name, c.rung, w_rung,
                       detail::verify_measured_text(c), w_measured, detail::verify_tolerance_text(c), w_tolerance,
                       to_string(c.status));
  bool notes = false;
  for (const auto& c : report.checks) {
    if (c.detail.empty() || c.passed()) continue;
    if (!notes) out += "\nnotes:\n";
    notes = true;
    out += fmt::format("  {} {}: {}\n", c.failed() ? "!" : "-", c.name, c.detail);
  }
  out += "\noptional members:\n";
  std::size_t w_member = 0;
  for (const auto& m : report.optional_members) w_member = std::max(w_member, m.name.size());
  for (const auto& m : report.optional_members)
    out += fmt::format("  {:<{}}  {:<7}  {}\n", m.name, w_member, m.present ? "present" : "absent", m.effect);
  out += "\nfast paths the library takes:\n";
  if (report.fast_paths.empty()) out += "  none: every evaluation is one single pass through the required members\n";
  for (const auto& f : report.fast_paths) out += fmt::format("  - {}\n", f);
  if (!report.warnings.empty()) {
    out += "\nwarnings:\n";
    for (const auto& w : report.warnings) out += fmt::format("  ! {}\n", w);
  }
  out += fmt::format("\nresult: {} ({} passed, {} failed, {} skipped)\n", report.passed() ? "PASS" : "FAIL",
                     report.count(check_status::passed), report.count(check_status::failed),
                     report.count(check_status::skipped));
  return out;
}

}  // namespace glassbox

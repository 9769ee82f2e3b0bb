// glassbox fuzzing: what every harness shares (a scratch file per process for the readers that take a
// path, and the rule that a glassbox::error is the correct answer to bad input).
#pragma once

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

#include "glassbox/core/error.hpp"

namespace glassbox::fuzz {

/// The scratch directory of this process, "<tmp>/glassbox_fuzz_<pid>" (created on first use). Never
/// destroyed, so that the exit handler that removes it can still read it.
inline const std::filesystem::path& scratch_directory() {
  static const std::filesystem::path* const dir = [] {
    auto* d = new std::filesystem::path(std::filesystem::temp_directory_path() /
                                        ("glassbox_fuzz_" + std::to_string(::getpid())));
    std::filesystem::create_directories(*d);
    // Removed when the run ends normally (libFuzzer exits through exit()); a crash leaves it for inspection.
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(scratch_directory(), ec);
    });
    return d;
  }();
  return *dir;
}

/// A path in this process's scratch directory.
inline std::filesystem::path scratch_path(std::string_view name) { return scratch_directory() / std::string(name); }

/// Writes `bytes` to the scratch file `name` and returns its path.
inline std::filesystem::path write_scratch(std::string_view name, std::string_view bytes) {
  const auto path = scratch_path(name);
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return path;
}

/// Runs `f`; a glassbox::error (or subclass) is the correct answer to bad input and is swallowed.
/// Anything else escapes, and libFuzzer reports it as a finding.
template <class F>
void expect_glassbox_error_or_success(F&& f) {
  try {
    f();
  } catch (const glassbox::error&) {
  }
}

/// Splits the fuzz input at the first occurrence of `separator` (absent: everything is the first part).
inline std::pair<std::string_view, std::string_view> split_input(std::string_view input, std::string_view separator) {
  const auto at = input.find(separator);
  if (at == std::string_view::npos) return {input, {}};
  return {input.substr(0, at), input.substr(at + separator.size())};
}

}  // namespace glassbox::fuzz

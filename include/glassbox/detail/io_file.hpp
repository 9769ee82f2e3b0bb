// glassbox: file access shared by the io layer: checked opening, exact reads, and writes that never
// leave a half-written file behind. Every failure is a glassbox::io_error of the form
//   "<function>: '<file>': <what is wrong>"
// Not public API.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <filesystem>
#include <fstream>
#include <istream>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

#include "glassbox/core/error.hpp"

namespace glassbox::detail {

/// Throws io_error "<function>: '<file>': <message>".
template <class... Args>
[[noreturn]] void fail_file(std::string_view function, const std::filesystem::path& file,
                            fmt::format_string<Args...> format, Args&&... args) {
  throw io_error(
      fmt::format("{}: '{}': {}", function, file.string(), fmt::format(format, std::forward<Args>(args)...)));
}

/// The size in bytes of an existing regular file; io_error if it is missing or not a regular file.
template <class = void>
inline std::uintmax_t regular_file_size(const std::filesystem::path& file, std::string_view function) {
  std::error_code ec;
  const auto status = std::filesystem::status(file, ec);
  if (status.type() == std::filesystem::file_type::not_found) fail_file(function, file, "file does not exist");
  if (ec) fail_file(function, file, "cannot be examined: {}", ec.message());
  if (!std::filesystem::is_regular_file(status)) fail_file(function, file, "is not a regular file");
  const auto size = std::filesystem::file_size(file, ec);
  if (ec) fail_file(function, file, "cannot read its size: {}", ec.message());
  return size;
}

/// An input stream on `file` in binary mode; io_error if it cannot be opened.
template <class = void>
inline std::ifstream open_for_reading(const std::filesystem::path& file, std::string_view function) {
  std::ifstream in(file, std::ios::binary);
  if (!in) fail_file(function, file, "cannot be opened for reading");
  return in;
}

/// Reads exactly `count` bytes from `in` into `out`; io_error naming `what` if the file ends first.
template <class = void>
inline void read_exactly(std::istream& in, char* out, std::size_t count, const std::filesystem::path& file,
                         std::string_view function, std::string_view what) {
  // Read in pieces that fit std::streamsize on every platform.
  constexpr std::size_t piece = std::size_t{1} << 30;
  std::size_t done = 0;
  while (done < count) {
    const std::size_t n = std::min(piece, count - done);
    in.read(out + done, static_cast<std::streamsize>(n));
    const auto got = static_cast<std::size_t>(in.gcount());
    done += got;
    if (got != n) fail_file(function, file, "ended after {} of the {} bytes of {}", done, count, what);
  }
}

/// The whole content of a regular file.
template <class = void>
inline std::string read_whole_file(const std::filesystem::path& file, std::string_view function) {
  const auto size = regular_file_size(file, function);
  auto in = open_for_reading(file, function);
  std::string content(static_cast<std::size_t>(size), '\0');
  read_exactly(in, content.data(), content.size(), file, function, "the file");
  return content;
}

/// Writes `file` through `write(std::ofstream&)` into a temporary sibling ("<file>.partial") that is renamed
/// over `file` only when everything was written; on any failure the temporary is removed and `file` is left
/// as it was.
template <class Write>
void write_file_atomically(const std::filesystem::path& file, std::string_view function, Write&& write) {
  std::filesystem::path partial = file;
  partial += ".partial";
  try {
    {
      std::ofstream out(partial, std::ios::binary | std::ios::trunc);
      if (!out) fail_file(function, file, "cannot be opened for writing");
      std::forward<Write>(write)(out);
      out.flush();
      if (!out) fail_file(function, file, "writing failed (disk full or file system error?)");
      out.close();
      if (out.fail()) fail_file(function, file, "closing after writing failed");
    }
    std::error_code ec;
    std::filesystem::rename(partial, file, ec);
    if (ec) fail_file(function, file, "cannot be replaced by the written file: {}", ec.message());
  } catch (...) {
    std::error_code ignored;
    std::filesystem::remove(partial, ignored);
    throw;
  }
}

}  // namespace glassbox::detail

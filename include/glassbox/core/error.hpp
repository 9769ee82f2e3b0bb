// glassbox: the exceptions every module throws, and the one message form they use.
//
// Messages name the function, the argument, the value and what was expected:
//   "glassbox::integrated_gradients: steps must be >= 1, got 0"
#pragma once

#include <fmt/format.h>

#include <stdexcept>
#include <string>
#include <utility>

namespace glassbox {

/// The base of every exception glassbox throws.
class error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// A tensor or sequence of the wrong shape or size, or an index out of range.
class shape_error : public error {
 public:
  using error::error;
};

/// A model that misbehaved: NaN/Inf outputs, outputs of the wrong shape.
class model_error : public error {
 public:
  using error::error;
};

/// A file that cannot be read, written or parsed.
class io_error : public error {
 public:
  using error::error;
};

/// Work stopped on request, through a progress callback or a stop token.
class cancelled : public error {
 public:
  using error::error;
};

namespace detail {

/// Throws E with a message formatted by fmt: fail<shape_error>("glassbox::f: x must be {}, got {}", a, b).
template <class E = error, class... Args>
[[noreturn]] void fail(fmt::format_string<Args...> format, Args&&... args) {
  throw E(fmt::format(format, std::forward<Args>(args)...));
}

/// Throws E with a formatted message when condition is false.
template <class E = error, class... Args>
void require(bool condition, fmt::format_string<Args...> format, Args&&... args) {
  if (!condition) throw E(fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace detail
}  // namespace glassbox

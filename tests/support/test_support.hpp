// Helpers shared by the glassbox tests.
#pragma once

#include <catch2/catch.hpp>

#include <exception>
#include <string>

namespace glassbox::test {

/// Matches an exception whose what() contains `text` (Catch2 v2's Contains matches strings only).
class what_contains_matcher : public Catch::MatcherBase<std::exception> {
 public:
  explicit what_contains_matcher(std::string text) : text_(std::move(text)) {}
  bool match(const std::exception& e) const override { return std::string(e.what()).find(text_) != std::string::npos; }
  std::string describe() const override { return "has a message containing \"" + text_ + "\""; }

 private:
  std::string text_;
};

/// REQUIRE_THROWS_MATCHES(expr, glassbox::shape_error, what_contains("...")).
inline what_contains_matcher what_contains(std::string text) { return what_contains_matcher(std::move(text)); }

}  // namespace glassbox::test

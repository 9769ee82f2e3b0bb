// Self-test of the harness: this case fails to compile, but not with the message it claims, so
// check_compile.cmake must reject it (the test is registered WILL_FAIL). Without this case, a
// harness that passed everything would go unnoticed.
// clang-format off
// harness: must-reject
// expected-error: glassbox::Model: missing `std::size_t vocab_size() const` - see docs/concepts.md
// clang-format on
#include <glassbox/core/model.hpp>

struct vocab_size_only_model {
  std::size_t vocab_size() const { return 4; }
};

static_assert(glassbox::check_model<vocab_size_only_model>());

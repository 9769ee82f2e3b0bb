// A model without vocab_size is not a Model: check_model names exactly that member.
// clang-format off
// expected-error: glassbox::Model: missing `std::size_t vocab_size() const` - see docs/concepts.md
// unexpected-error: glassbox::Model: missing `tensor2 logits(token_span) const`
// clang-format on
#include <glassbox/core/model.hpp>

struct no_vocab_size_model {
  glassbox::tensor2 logits(glassbox::token_span tokens) const { return glassbox::tensor2({tokens.size(), 4}); }
};

static_assert(glassbox::check_model<no_vocab_size_model>());

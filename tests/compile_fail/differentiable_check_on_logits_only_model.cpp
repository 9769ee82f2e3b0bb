// A model with only the first rung (logits, vocab_size) checked as a DifferentiableModel: every
// missing member of the two rungs above is named, and nothing the model has.
// clang-format off
// expected-error: glassbox::EmbeddingModel: missing `tensor2 embed(token_span) const` - see docs/concepts.md
// expected-error: glassbox::EmbeddingModel: missing `tensor2 logits_from_embeddings(const tensor2&) const` - see docs/concepts.md
// expected-error: glassbox::DifferentiableModel: missing `value_and_gradient<tensor2> embedding_gradient(const tensor2&, const output_seed&) const` - see docs/concepts.md
// unexpected-error: glassbox::Model: missing
// clang-format on
#include <glassbox/core/model.hpp>

struct logits_only_model {
  glassbox::tensor2 logits(glassbox::token_span tokens) const { return glassbox::tensor2({tokens.size(), 4}); }
  std::size_t vocab_size() const { return 4; }
};

static_assert(glassbox::check_differentiable_model<logits_only_model>());

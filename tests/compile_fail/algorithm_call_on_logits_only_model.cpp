// Calling a gradient algorithm with a model that has only the first rung: the call does not
// compile, and the compiler names the concept and the first missing member (`embed`).
// clang-format off
// expected-error: DifferentiableModel
// expected-error: m.embed(t)
// clang-format on
#include <glassbox/core/execution.hpp>
#include <vector>

struct logits_only_model {
  glassbox::tensor2 logits(glassbox::token_span tokens) const { return glassbox::tensor2({tokens.size(), 4}); }
  std::size_t vocab_size() const { return 4; }
};

void explain(const logits_only_model& model, const std::vector<glassbox::tensor2>& embeddings) {
  (void)glassbox::embedding_gradients(model, embeddings, glassbox::target::logit(0));
}

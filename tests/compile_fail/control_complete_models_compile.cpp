// Positive control: the same checks on models that have every member compile, so the failures
// of the other cases come from the missing members and not from the harness or the includes.
#include <glassbox/core/execution.hpp>
#include <glassbox/core/model.hpp>
#include <glassbox/models/linear_bag.hpp>
#include <vector>

struct attention_gradient_model {
  glassbox::tensor2 logits(glassbox::token_span) const;
  std::size_t vocab_size() const;
  glassbox::tensor4 attentions(glassbox::token_span) const;
  glassbox::attention_gradient_result attention_gradient(glassbox::token_span, const glassbox::output_seed&) const;
  glassbox::value_and_gradient<glassbox::tensor2> head_mask_gradient(glassbox::token_span, const glassbox::tensor2&,
                                                                     const glassbox::output_seed&) const;
  glassbox::tensor2 logits_with_head_mask(glassbox::token_span, const glassbox::tensor2&) const;
};

struct vocab_size_model {
  glassbox::tensor2 logits(glassbox::token_span) const;
  std::size_t vocab_size() const;
};

static_assert(glassbox::check_differentiable_model<glassbox::models::linear_bag>());
static_assert(glassbox::check_model<vocab_size_model>());
static_assert(glassbox::check_attention_gradient_model<attention_gradient_model>());

void explain(const glassbox::models::linear_bag& model, const std::vector<glassbox::tensor2>& embeddings) {
  (void)glassbox::embedding_gradients(model, embeddings, glassbox::target::logit(0));
}

// A model that reports attention but no gradients is an AttentionModel and not an
// AttentionGradientModel: the check names the three members of the missing rung.
// clang-format off
// expected-error: glassbox::AttentionGradientModel: missing `attention_gradient_result attention_gradient(token_span, const output_seed&) const` - see docs/concepts.md
// expected-error: glassbox::AttentionGradientModel: missing `value_and_gradient<tensor2> head_mask_gradient(token_span, const tensor2&, const output_seed&) const` - see docs/concepts.md
// expected-error: glassbox::AttentionGradientModel: missing `tensor2 logits_with_head_mask(token_span, const tensor2&) const` - see docs/concepts.md
// unexpected-error: glassbox::AttentionModel: missing
// unexpected-error: glassbox::Model: missing
// clang-format on
#include <glassbox/core/model.hpp>

struct attention_only_model {
  glassbox::tensor2 logits(glassbox::token_span tokens) const { return glassbox::tensor2({tokens.size(), 4}); }
  std::size_t vocab_size() const { return 4; }
  glassbox::tensor4 attentions(glassbox::token_span tokens) const {
    return glassbox::tensor4({1, 1, tokens.size(), tokens.size()});
  }
};

static_assert(glassbox::AttentionModel<attention_only_model>);
static_assert(glassbox::check_attention_gradient_model<attention_only_model>());

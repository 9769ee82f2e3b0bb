// Compile-time checks of the model concept ladder: which types satisfy which rung.
#include <glassbox/glassbox.hpp>
#include <glassbox/models/linear_bag.hpp>

namespace {

using namespace glassbox;

// A model with only the first rung.
struct logits_only {
  tensor2 logits(token_span t) const { return tensor2({t.size(), 4}); }
  std::size_t vocab_size() const { return 4; }
};

// Every member of the ladder, as declarations: the concepts look at signatures only.
struct full_model {
  static constexpr bool thread_safe = true;
  tensor2 logits(token_span) const;
  std::size_t vocab_size() const;
  tensor2 embed(token_span) const;
  tensor2 logits_from_embeddings(const tensor2&) const;
  value_and_gradient<tensor2> embedding_gradient(const tensor2&, const output_seed&) const;
  tensor4 attentions(token_span) const;
  attention_gradient_result attention_gradient(token_span, const output_seed&) const;
  value_and_gradient<tensor2> head_mask_gradient(token_span, const tensor2&, const output_seed&) const;
  tensor2 logits_with_head_mask(token_span, const tensor2&) const;
  tensor3 hidden_states(token_span) const;
  tensor2 logits_from_hidden(token_span, std::size_t, const tensor2&) const;
  value_and_gradient<tensor2> hidden_gradient(token_span, std::size_t, const tensor2&, const output_seed&) const;
  std::size_t parameter_count() const;
  std::span<const float> parameters() const;
  void set_parameters(std::span<const float>);
  double loss(const training_example&) const;
  value_and_gradient<tensor1> loss_gradient(const training_example&) const;
  std::vector<linear_layer_statistics> kfac_statistics(const training_example&) const;
};

// Attention without gradients: an AttentionModel, not an AttentionGradientModel.
struct attention_only : logits_only {
  tensor4 attentions(token_span) const;
};

// A logits member with the wrong result type does not count.
struct wrong_logits {
  int logits(token_span) const;
  std::size_t vocab_size() const;
};

static_assert(Model<logits_only>);
static_assert(!EmbeddingModel<logits_only>);
static_assert(!DifferentiableModel<logits_only>);
static_assert(check_model<logits_only>());
static_assert(!Model<int>);
static_assert(!Model<wrong_logits>);

static_assert(Model<full_model> && EmbeddingModel<full_model> && DifferentiableModel<full_model>);
static_assert(AttentionModel<full_model> && AttentionGradientModel<full_model>);
static_assert(ActivationModel<full_model> && InterventionModel<full_model>);
static_assert(TrainableModel<full_model> && KfacModel<full_model>);
static_assert(check_kfac_model<full_model>() && check_intervention_model<full_model>() &&
              check_attention_gradient_model<full_model>() && check_differentiable_model<full_model>());
static_assert(is_thread_safe<full_model>() && !is_thread_safe<logits_only>());

static_assert(AttentionModel<attention_only> && !AttentionGradientModel<attention_only>);

static_assert(DifferentiableModel<models::linear_bag> && !AttentionModel<models::linear_bag>);
static_assert(concepts::has_logits_at<models::linear_bag> && concepts::has_pad_token<models::linear_bag>);

}  // namespace

int main() { return 0; }

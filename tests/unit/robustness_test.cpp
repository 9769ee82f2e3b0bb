// Bad inputs through the public API (docs/robustness.md, "Bad inputs through the public API"): one
// test case per row of that table. Each asserts the exact exception type and that the message
// names the function, the argument or the adapter's member, and what was expected. The models: a
// small random GPT-2, the linear bag model, and a deliberately broken user adapter whose members
// return outputs of the wrong shape, or NaN / Inf, on request. Rows that another test program
// already covers are referenced in the table, not repeated here. The last test case checks the
// formula behind the EK-FAC memory bound ("Resource bounds").
#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <cstddef>
#include <limits>
#include <string>
#include <vector>

#include "glassbox/attention/flow.hpp"
#include "glassbox/attention/head_statistics.hpp"
#include "glassbox/attention/rollout.hpp"
#include "glassbox/attribution/gradient_shap.hpp"
#include "glassbox/attribution/integrated_gradients.hpp"
#include "glassbox/attribution/kernel_shap.hpp"
#include "glassbox/attribution/lime.hpp"
#include "glassbox/attribution/noise_tunnel.hpp"
#include "glassbox/attribution/occlusion.hpp"
#include "glassbox/attribution/saliency.hpp"
#include "glassbox/attribution/shapley.hpp"
#include "glassbox/circuits/direct_logit_attribution.hpp"
#include "glassbox/circuits/patching.hpp"
#include "glassbox/core/execution.hpp"
#include "glassbox/influence/iterative.hpp"
#include "glassbox/influence/kfac.hpp"
#include "glassbox/influence/kfac_factors.hpp"
#include "glassbox/models/gpt2.hpp"
#include "glassbox/models/linear_bag.hpp"
#include "glassbox/probing/activations.hpp"
#include "glassbox/probing/logistic_regression.hpp"
#include "glassbox/representations/lens.hpp"
#include "glassbox/representations/sae.hpp"
#include "glassbox/representations/steering.hpp"
#include "glassbox/verify/adapter.hpp"
#include "test_support.hpp"

using namespace glassbox;
using glassbox::test::what_contains;

namespace {

constexpr float nan_value = std::numeric_limits<float>::quiet_NaN();
constexpr float inf_value = std::numeric_limits<float>::infinity();

// 2 blocks, 2 heads of width 4, 13 tokens, a context of 10 positions.
models::gpt2 tiny_gpt2(std::uint64_t seed = 5) {
  models::gpt2_config c;
  c.n_layer = 2;
  c.n_head = 2;
  c.n_embd = 8;
  c.n_positions = 10;
  c.vocab_size = 13;
  return models::gpt2::random(c, seed);
}

// 12 tokens, width 5, 12 logit columns (so that vocab_size() is the logits' column count).
models::linear_bag bag_model(std::uint64_t seed = 31) { return models::linear_bag::random(12, 5, 12, seed); }

// What a broken adapter gets wrong.
enum class fault {
  none,
  logits_rows,       // logits() and logits_from_embeddings() return one row too few
  logits_nan,        // the `bad_call`-th logits() / logits_from_embeddings() call has a NaN
  embed_rows,        // embed() returns one row too few
  gradient_shape,    // embedding_gradient() returns one column too few
  gradient_nan,      // the `bad_call`-th embedding_gradient() call has a NaN
  attentions_shape,  // attentions() is [L, H, T - 1, T - 1]
  attentions_inf,    // attentions() holds an Inf
  hidden_shape,      // hidden_states() has T + 1 positions
  hidden_nan,        // hidden_states() holds a NaN
  logits_at_rows,    // logits_at() returns one row more than asked for (batched adapter only)
  batch_gradient,    // embedding_gradient_batch() gradients one position short (batched adapter only)
};

// A user adapter around the linear bag, with a fault switched on. Not thread-safe (so calls are
// counted in order); every rung the rows below need: Model, EmbeddingModel, DifferentiableModel,
// AttentionModel, ActivationModel.
class broken_adapter {
 public:
  explicit broken_adapter(fault f, std::size_t bad_call = 0) : fault_(f), bad_call_(bad_call) {}

  std::size_t vocab_size() const { return bag_.vocab_size(); }
  std::optional<token_id> pad_token() const { return 0; }

  tensor2 logits(token_span tokens) const { return damage_logits(bag_.logits(tokens)); }
  tensor2 embed(token_span tokens) const {
    tensor2 e = bag_.embed(tokens);
    return fault_ == fault::embed_rows ? drop_last_row(e) : e;
  }
  tensor2 logits_from_embeddings(const tensor2& e) const { return damage_logits(bag_.logits_from_embeddings(e)); }
  value_and_gradient<tensor2> embedding_gradient(const tensor2& e, const output_seed& seed) const {
    auto g = bag_.embedding_gradient(e, seed);
    if (fault_ == fault::gradient_shape) {
      tensor2 narrow({g.gradient.shape(0), g.gradient.shape(1) - 1});
      for (std::size_t i = 0; i < narrow.shape(0); ++i)
        for (std::size_t j = 0; j < narrow.shape(1); ++j) narrow(i, j) = g.gradient(i, j);
      g.gradient = narrow;
    }
    if (fault_ == fault::gradient_nan && ++gradient_calls_ == bad_call_) g.gradient(0, 1) = nan_value;
    return g;
  }
  tensor4 attentions(token_span tokens) const {
    const std::size_t t = tokens.size() - (fault_ == fault::attentions_shape ? 1 : 0);
    tensor4 a = xt::zeros<float>({std::size_t{2}, std::size_t{2}, t, t});
    for (std::size_t l = 0; l < 2; ++l)
      for (std::size_t h = 0; h < 2; ++h)
        for (std::size_t q = 0; q < t; ++q)
          for (std::size_t k = 0; k <= q; ++k) a(l, h, q, k) = 1.0f / static_cast<float>(q + 1);
    if (fault_ == fault::attentions_inf) a(1, 0, t - 1, 0) = inf_value;
    return a;
  }
  tensor3 hidden_states(token_span tokens) const {
    const tensor2 e = bag_.embed(tokens);
    const std::size_t t = tokens.size() + (fault_ == fault::hidden_shape ? 1 : 0), d = e.shape(1);
    tensor3 h = xt::zeros<float>({std::size_t{3}, t, d});
    for (std::size_t l = 0; l < 3; ++l)
      for (std::size_t i = 0; i < std::min(t, e.shape(0)); ++i)
        for (std::size_t j = 0; j < d; ++j) h(l, i, j) = static_cast<float>(l + 1) * e(i, j);
    if (fault_ == fault::hidden_nan) h(2, 0, 3) = nan_value;
    return h;
  }

 protected:
  models::linear_bag bag_ = bag_model();
  fault fault_;
  std::size_t bad_call_;

 private:
  static tensor2 drop_last_row(const tensor2& x) {
    tensor2 out({x.shape(0) - 1, x.shape(1)});
    std::copy_n(x.data(), out.size(), out.data());
    return out;
  }
  tensor2 damage_logits(tensor2 x) const {
    if (fault_ == fault::logits_rows) return drop_last_row(x);
    if (fault_ == fault::logits_nan && ++logits_calls_ == bad_call_) x(x.shape(0) - 1, 2) = nan_value;
    return x;
  }
  mutable std::size_t logits_calls_ = 0, gradient_calls_ = 0;
};

// The same adapter with the optional members the library's fast paths use: output_rows,
// logits_at and embedding_gradient_batch.
class broken_batched_adapter : public broken_adapter {
 public:
  using broken_adapter::broken_adapter;

  std::size_t output_rows(std::size_t tokens) const { return tokens; }
  tensor2 logits_at(token_span tokens, std::span<const std::size_t> rows) const {
    const tensor2 all = logits(tokens);
    const std::size_t n = rows.size() + (fault_ == fault::logits_at_rows ? 1 : 0);
    tensor2 out({n, all.shape(1)});
    for (std::size_t i = 0; i < n; ++i)
      for (std::size_t c = 0; c < all.shape(1); ++c) out(i, c) = all(rows[std::min(i, rows.size() - 1)], c);
    return out;
  }
  batch_gradient_result embedding_gradient_batch(const tensor3& batch, const output_seed& seed) const {
    const std::size_t b = batch.shape(0), t = batch.shape(1), d = batch.shape(2);
    const std::size_t rows = t - (fault_ == fault::batch_gradient ? 1 : 0);
    batch_gradient_result r;
    r.gradients = xt::zeros<float>({b, rows, d});
    for (std::size_t i = 0; i < b; ++i) {
      tensor2 e({t, d});
      std::copy_n(batch.data() + i * t * d, t * d, e.data());
      const auto g = embedding_gradient(e, seed);
      r.values.push_back(g.value);
      std::copy_n(g.gradient.data(), rows * d, r.gradients.data() + i * rows * d);
    }
    return r;
  }
};

const token_sequence four{1, 2, 3, 4};
const token_sequence reversed{4, 3, 2, 1};

// What a broken adapter of the intervention and component rungs gets wrong.
enum class deep_fault {
  none,
  hidden_logits_rows,     // logits_from_hidden() returns one row too few
  hidden_logits_inf,      // logits_from_hidden() holds an Inf from its second call on
  decode_rows,            // decode_hidden() returns one row too few
  hidden_gradient_shape,  // hidden_gradient() returns a gradient one column short
  cache_heads,            // run_with_cache() heads one position short: DLA would read past their end
  cache_nan,              // run_with_cache() mlps hold a NaN
  cache_scale,            // run_with_cache() final_scale 0 at position 2
  patches_rows,           // logits_with_patches() returns one row more than asked for
  gradients_shape,        // component_gradients() neuron gradient one block short
  directions_shape,       // unembedding_directions() one column short
  neuron_weights_shape,   // neuron_output_weights() one neuron short
};

// The first rows of x, all but the last `fewer` (or `fewer` more, repeated from the last, when negative).
tensor2 resized_rows(const tensor2& x, std::ptrdiff_t fewer) {
  const auto rows = static_cast<std::size_t>(static_cast<std::ptrdiff_t>(x.shape(0)) - fewer);
  tensor2 out({rows, x.shape(1)});
  for (std::size_t i = 0; i < rows; ++i)
    std::copy_n(x.data() + std::min(i, x.shape(0) - 1) * x.shape(1), x.shape(1), out.data() + i * x.shape(1));
  return out;
}

// The first columns of x, all but the last.
tensor2 narrower(const tensor2& x) { return xt::view(x, xt::all(), xt::range(0, x.shape(1) - 1)); }

// The small GPT-2 as a user's adapter of every rung up to ComponentModel, with one member of the
// intervention or component rung broken; every member it does not redefine is the model's own.
class broken_gpt2 : public models::gpt2 {
 public:
  explicit broken_gpt2(deep_fault f) : models::gpt2(tiny_gpt2()), fault_(f) {}

  tensor2 logits_from_hidden(token_span t, std::size_t layer, const tensor2& h) const {
    tensor2 z = models::gpt2::logits_from_hidden(t, layer, h);
    if (fault_ == deep_fault::hidden_logits_rows) return resized_rows(z, 1);
    if (fault_ == deep_fault::hidden_logits_inf && ++hidden_calls_ >= 2) z(0, 1) = inf_value;
    return z;
  }
  tensor2 decode_hidden(const tensor2& h) const {
    const tensor2 z = models::gpt2::decode_hidden(h);
    return fault_ == deep_fault::decode_rows ? resized_rows(z, 1) : z;
  }
  value_and_gradient<tensor2> hidden_gradient(token_span t, std::size_t layer, const tensor2& h,
                                              const output_seed& seed) const {
    auto g = models::gpt2::hidden_gradient(t, layer, h, seed);
    if (fault_ == deep_fault::hidden_gradient_shape) g.gradient = narrower(g.gradient);
    return g;
  }
  component_cache run_with_cache(token_span t) const {
    component_cache c = models::gpt2::run_with_cache(t);
    if (fault_ == deep_fault::cache_heads) c.heads = xt::view(c.heads, xt::all(), xt::all(), xt::range(0, 3));
    if (fault_ == deep_fault::cache_nan) c.mlps(1, 2, 5) = nan_value;
    if (fault_ == deep_fault::cache_scale) c.final_scale[2] = 0.0;
    return c;
  }
  tensor2 logits_with_patches(token_span t, std::span<const component_patch> patches,
                              std::span<const std::size_t> rows) const {
    const tensor2 z = models::gpt2::logits_with_patches(t, patches, rows);
    return fault_ == deep_fault::patches_rows ? resized_rows(z, -1) : z;
  }
  component_gradient_result component_gradients(token_span t, const output_seed& seed) const {
    component_gradient_result g = models::gpt2::component_gradients(t, seed);
    if (fault_ == deep_fault::gradients_shape) g.neurons = xt::view(g.neurons, xt::range(0, 1));
    return g;
  }
  logit_directions unembedding_directions(std::span<const token_id> k) const {
    logit_directions u = models::gpt2::unembedding_directions(k);
    if (fault_ == deep_fault::directions_shape) u.directions = narrower(u.directions);
    return u;
  }
  tensor2 neuron_output_weights(std::size_t layer) const {
    const tensor2 w = models::gpt2::neuron_output_weights(layer);
    return fault_ == deep_fault::neuron_weights_shape ? resized_rows(w, 1) : w;
  }

 private:
  deep_fault fault_;
  mutable std::atomic<std::size_t> hidden_calls_{0};
};

// Requires `call` on an adapter with fault `f` to throw a model_error whose message contains `message`.
template <class Call>
void require_caught(deep_fault f, Call&& call, const std::string& message) {
  const broken_gpt2 m(f);
  REQUIRE_THROWS_MATCHES(call(m), model_error, what_contains(message));
}

}  // namespace

TEST_CASE("an empty token sequence is a shape_error naming the function", "[robustness]") {
  const auto gpt = tiny_gpt2();
  const auto bag = bag_model();
  const token_sequence none;
  const auto t = target::logit(3);
  REQUIRE_THROWS_MATCHES(integrated_gradients(gpt, none, t), shape_error,
                         what_contains("glassbox::integrated_gradients: tokens must not be empty"));
  REQUIRE_THROWS_MATCHES(saliency(bag, none, t), shape_error,
                         what_contains("glassbox::saliency: tokens must not be empty"));
  REQUIRE_THROWS_MATCHES(kernel_shap(gpt, none, t), shape_error, what_contains("glassbox::kernel_shap: "));
  REQUIRE_THROWS_MATCHES(lime(bag, none, t), shape_error, what_contains("glassbox::lime: "));
  REQUIRE_THROWS_MATCHES(attention_rollout(gpt, none), shape_error,
                         what_contains("glassbox::attention_rollout: tokens must not be empty"));
  REQUIRE_THROWS_MATCHES(attention_flow(gpt, none), shape_error,
                         what_contains("glassbox::attention_flow: tokens must not be empty"));
  REQUIRE_THROWS_MATCHES(verify_adapter(gpt, none), shape_error,
                         what_contains("glassbox::verify_adapter: tokens must not be empty"));
  REQUIRE_THROWS_MATCHES(gpt.logits(none), shape_error,
                         what_contains("glassbox::models::gpt2::logits: the sequence must not be empty"));
  const std::vector<token_sequence> two{four, none};
  REQUIRE_THROWS_MATCHES(evaluate_target(gpt, two, t), shape_error,
                         what_contains("glassbox::evaluate_target: input 1 must not be empty (no tokens)"));
  REQUIRE_THROWS_MATCHES(evaluate_target(bag, two, t), shape_error,
                         what_contains("glassbox::evaluate_target: input 1 must not be empty (no tokens)"));
}

TEST_CASE("a sequence longer than the model's context is a shape_error naming n_positions", "[robustness]") {
  const auto gpt = tiny_gpt2();
  const token_sequence eleven(11, 1);
  const auto t = target::logit(3);
  const std::string message = "sequence length must be <= n_positions (10), got 11";
  REQUIRE_THROWS_MATCHES(integrated_gradients(gpt, eleven, t), shape_error, what_contains(message));
  REQUIRE_THROWS_MATCHES(saliency(gpt, eleven, t), shape_error, what_contains(message));
  REQUIRE_THROWS_MATCHES(kernel_shap(gpt, eleven, t, {.n_samples = 8}), shape_error, what_contains(message));
  REQUIRE_THROWS_MATCHES(occlusion(gpt, eleven, t), shape_error, what_contains(message));
  REQUIRE_THROWS_MATCHES(attention_rollout(gpt, eleven), shape_error, what_contains(message));
  const std::vector<token_sequence> inputs{eleven};
  REQUIRE_THROWS_MATCHES(collect_activations(gpt, inputs, sequence_labels({1.0})), shape_error,
                         what_contains(message));
  // Exactly the context is accepted.
  CHECK(saliency(gpt, token_sequence(10, 1), t).scores.size() == 10);
}

TEST_CASE("a token id out of range is a shape_error naming the id and the vocabulary", "[robustness]") {
  const auto gpt = tiny_gpt2();
  const auto bag = bag_model();
  const auto t = target::logit(3);
  const token_sequence high{1, 13, 2}, negative{1, -1, 2};
  REQUIRE_THROWS_MATCHES(integrated_gradients(gpt, high, t), shape_error,
                         what_contains("token id must be in [0, 13), got 13 at position 1"));
  REQUIRE_THROWS_MATCHES(lime(gpt, negative, t, {.n_samples = 8}), shape_error,
                         what_contains("token id must be in [0, 13), got -1 at position 1"));
  REQUIRE_THROWS_MATCHES(attention_flow(gpt, high), shape_error,
                         what_contains("token id must be in [0, 13), got 13 at position 1"));
  REQUIRE_THROWS_MATCHES(shapley_sampling(bag, token_sequence{1, 12}, t), shape_error,
                         what_contains("glassbox::models::linear_bag: token 12 outside a vocabulary of 12"));
  // A target naming a logit column the model does not have.
  REQUIRE_THROWS_MATCHES(saliency(gpt, token_sequence{1, 2}, target::logit(13)), shape_error,
                         what_contains("glassbox::target"));
}

TEST_CASE("an adapter's logits of the wrong shape are a model_error naming the member", "[robustness]") {
  const auto t = target::logit(3);
  SECTION("logits() one row short: the last-position target would read the wrong row") {
    const broken_adapter m(fault::logits_rows);
    REQUIRE_THROWS_MATCHES(kernel_shap(m, four, t, {.n_samples = 4}), model_error,
                           what_contains("glassbox::kernel_shap: logits() returned [3, 12] for 4 tokens, expected "
                                         "[T, V] = [4, 12]"));
    const std::vector<token_sequence> inputs{four};
    REQUIRE_THROWS_MATCHES(evaluate_target(m, inputs, t), model_error,
                           what_contains("glassbox::evaluate_target: logits() returned [3, 12]"));
  }
  SECTION("logits_from_embeddings() one row short") {
    const broken_adapter m(fault::logits_rows);
    REQUIRE_THROWS_MATCHES(integrated_gradients(m, four, t), model_error,
                           what_contains("glassbox::integrated_gradients: logits_from_embeddings() returned [3, 12] "
                                         "for 4 tokens, expected [T, V] = [4, 12]"));
  }
  SECTION("logits_at() one row more than asked for") {
    const broken_batched_adapter m(fault::logits_at_rows);
    REQUIRE_THROWS_MATCHES(occlusion(m, four, t), model_error,
                           what_contains("glassbox::occlusion: logits_at() returned [2, 12] for 1 requested rows, "
                                         "expected [1, V]"));
  }
  SECTION("verify_adapter reports the faults as failed checks instead of throwing") {
    const auto failed = [](const verify_report& r, const std::string& name) {
      for (const auto& c : r.checks)
        if (c.name == name) return c.failed();
      FAIL("no check named " << name);
      return false;
    };
    const auto broken = verify_adapter(broken_adapter(fault::logits_rows), four);
    CHECK_FALSE(broken.passed());
    CHECK(failed(broken, "logits shape"));
    const auto healthy = verify_adapter(broken_adapter(fault::none), four);
    CHECK_FALSE(failed(healthy, "logits shape"));
    const auto wrong_attention = verify_adapter(broken_adapter(fault::attentions_shape), four);
    CHECK_FALSE(wrong_attention.passed());
  }
  SECTION("the same adapter without the fault works") {
    const broken_batched_adapter m(fault::none);
    CHECK(occlusion(m, four, t).scores.size() == 4);
    CHECK(integrated_gradients(m, four, t).scores.size() == 4);
  }
}

TEST_CASE("an adapter's attentions of the wrong shape are a model_error naming attentions()", "[robustness]") {
  const broken_adapter m(fault::attentions_shape);
  const std::string message = "attentions() returned [2, 2, 3, 3] for 4 tokens, expected [L, H, T, T] = [L, H, 4, 4]";
  REQUIRE_THROWS_MATCHES(attention_rollout(m, four), model_error,
                         what_contains("glassbox::attention_rollout: " + message));
  REQUIRE_THROWS_MATCHES(attention_flow(m, four), model_error, what_contains("glassbox::attention_flow: " + message));
  const std::vector<token_sequence> inputs{four};
  REQUIRE_THROWS_MATCHES(head_statistics(m, inputs), model_error,
                         what_contains("glassbox::head_statistics: " + message));
  const broken_adapter good(fault::none);
  CHECK(attention_rollout(good, four).scores.size() == 4);
}

TEST_CASE("an adapter's embeddings, gradients and hidden states of the wrong shape are model_errors naming the member",
          "[robustness]") {
  const auto t = target::logit(3);
  SECTION("embed()") {
    const broken_adapter m(fault::embed_rows);
    REQUIRE_THROWS_MATCHES(saliency(m, four, t), model_error,
                           what_contains("glassbox::saliency: embed() returned [3, 5] for 4 tokens, expected [T, d] = "
                                         "[4, d]"));
    REQUIRE_THROWS_MATCHES(kernel_shap(m, four, t, {.baseline = baseline::zero()}), model_error,
                           what_contains("glassbox::kernel_shap: embed() returned [3, 5]"));
  }
  SECTION("embedding_gradient()") {
    const broken_adapter m(fault::gradient_shape);
    REQUIRE_THROWS_MATCHES(saliency(m, four, t), model_error,
                           what_contains("glassbox::saliency: embedding_gradient() returned a [4, 4] gradient for "
                                         "[4, 5] embeddings"));
  }
  SECTION("embedding_gradient_batch(): a short gradient would be read past its end") {
    const broken_batched_adapter m(fault::batch_gradient);
    REQUIRE_THROWS_MATCHES(integrated_gradients(m, four, t, {.steps = 4}), model_error,
                           what_contains("glassbox::integrated_gradients: embedding_gradient_batch() returned "
                                         "gradients of [4, 3, 5], expected [B, T, d] = [4, 4, 5]"));
  }
  SECTION("hidden_states()") {
    const broken_adapter m(fault::hidden_shape);
    const std::vector<token_sequence> inputs{four};
    const std::string message =
        "hidden_states() returned [3, 5, 5] for 4 tokens, expected [L + 1, T, d] = [L + 1, 4, d]";
    REQUIRE_THROWS_MATCHES(collect_activations(m, inputs, sequence_labels({1.0})), model_error,
                           what_contains("glassbox::collect_activations: " + message));
    auto direction = tensor1::from_shape({5});
    direction.fill(0.2f);
    REQUIRE_THROWS_MATCHES(read_vector(m, four, reading_vector{.layer = 1, .direction = direction}), model_error,
                           what_contains("glassbox::read_vector: " + message));
  }
}

TEST_CASE("the intervention and component members of an adapter are checked where every method reads them",
          "[robustness]") {
  const auto t = target::logit(3);
  const tensor1 direction = xt::ones<float>({std::size_t{8}});
  SECTION("logits_from_hidden() one row short: steering, evaluate_target_on_hidden") {
    const broken_gpt2 m(deep_fault::hidden_logits_rows);
    REQUIRE_THROWS_MATCHES(steered_logits(m, four, 1, direction), model_error,
                           what_contains("glassbox::steered_logits: logits_from_hidden() returned [3, 13] for 4 "
                                         "tokens, expected [output_rows(T), V] = [4, 13]"));
    const tensor3 h = m.hidden_states(four);
    const std::vector<tensor2> inputs{xt::view(h, 1)};
    REQUIRE_THROWS_MATCHES(evaluate_target_on_hidden(m, four, 1, inputs, t), model_error,
                           what_contains("glassbox::evaluate_target_on_hidden: logits_from_hidden() returned [3, 13]"));
  }
  SECTION("logits_from_hidden() with an Inf: a steering curve and SAE loss recovery name the evaluation") {
    const std::vector<token_sequence> inputs{four, {2, 3}, {4, 5, 6}};
    const std::vector<double> alphas{1.0};
    const broken_gpt2 m(deep_fault::hidden_logits_inf);
    REQUIRE_THROWS_MATCHES(steering_curve(m, inputs, t, 1, direction, alphas), model_error,
                           what_contains("glassbox::steering_curve: the model returned inf in its logits "
                                         "(logits_from_hidden()) at evaluation 1 (row 0, column 1)"));
    const tensor2 x = xt::view(m.hidden_states(four), 1);
    const auto sae = train_sae(x, {.features = 4, .steps = 1}).sae;
    const std::vector<training_example> data{training_example::next_token(four)};
    const broken_gpt2 m2(deep_fault::hidden_logits_inf);
    REQUIRE_THROWS_MATCHES(sae_loss_recovered(m2, sae, data, 1), model_error,
                           what_contains("glassbox::sae_loss_recovered: the model returned inf in its logits "
                                         "(logits_from_hidden()) at evaluation 0"));
  }
  SECTION("decode_hidden() one row short: the logit lens") {
    require_caught(
        deep_fault::decode_rows, [](const broken_gpt2& m) { return logit_lens_logits(m, four, 1); },
        "glassbox::logit_lens_logits: decode_hidden() returned [3, 13] for 4 rows, expected [R, V] = [4, V]");
  }
  SECTION("hidden_gradient() one column short") {
    const auto call = [&](const broken_gpt2& m) {
      const std::vector<tensor2> inputs{xt::view(m.hidden_states(four), 2)};
      return hidden_gradients(m, four, 2, inputs, output_seed(t));
    };
    require_caught(deep_fault::hidden_gradient_shape, call,
                   "glassbox::hidden_gradients: hidden_gradient() returned a [4, 7] gradient for [4, 8] hidden states");
  }
  SECTION("run_with_cache() heads one position short: direct logit attribution would read past them") {
    require_caught(
        deep_fault::cache_heads, [](const broken_gpt2& m) { return direct_logit_attribution(m, four, 3); },
        "glassbox::direct_logit_attribution: run_with_cache() returned heads of shape [2, 2, 3, 8], expected "
        "[L, H, T, d] = [2, 2, 4, 8]");
  }
  SECTION("run_with_cache() with a NaN, or a final_scale of zero") {
    require_caught(
        deep_fault::cache_nan,
        [&](const broken_gpt2& m) { return activation_patching(m, four, reversed, t, {.level = patch_level::mlp}); },
        "glassbox::activation_patching: the model returned nan in its mlps (run_with_cache()) at evaluation 0 "
        "(row 6, column 5)");
    require_caught(
        deep_fault::cache_scale, [](const broken_gpt2& m) { return direct_logit_attribution(m, four, 3); },
        "glassbox::direct_logit_attribution: run_with_cache() returned final_scale 0 at position 2, expected a "
        "positive finite divisor");
  }
  SECTION("logits_with_patches() one row more than asked for") {
    require_caught(
        deep_fault::patches_rows,
        [&](const broken_gpt2& m) { return activation_patching(m, four, reversed, t, {.level = patch_level::head}); },
        "glassbox::activation_patching: logits_with_patches() returned [2, 13] for 1 requested rows");
  }
  SECTION("component_gradients() neuron gradient one block short") {
    require_caught(
        deep_fault::gradients_shape, [&](const broken_gpt2& m) { return attribution_patching(m, four, reversed, t); },
        "glassbox::attribution_patching: component_gradients() returned the neuron gradient of shape [1, 4, 32], "
        "expected [L, T, f] = [2, 4, 32]");
  }
  SECTION("unembedding_directions() one column short") {
    require_caught(
        deep_fault::directions_shape, [](const broken_gpt2& m) { return direct_logit_attribution(m, four, 3); },
        "glassbox::direct_logit_attribution: unembedding_directions() returned directions of shape [1, 7], "
        "expected [k, d] = [1, 8]");
  }
  SECTION("neuron_output_weights() one neuron short") {
    require_caught(
        deep_fault::neuron_weights_shape,
        [](const broken_gpt2& m) { return direct_logit_attribution(m, four, 3, std::nullopt, {.neurons = true}); },
        "glassbox::direct_logit_attribution: neuron_output_weights() returned weights of shape [31, 8], expected "
        "[f, d] = [32, 8]");
  }
  SECTION("the same adapter without a fault works") {
    const broken_gpt2 m(deep_fault::none);
    const tensor2 logits = m.logits(four);
    CHECK(xt::amax(xt::abs(steered_logits(m, four, 1, direction, {.alpha = 0.0}) - logits))() == 0.0f);
    const dla_result r = direct_logit_attribution(m, four, 3);
    CHECK(r.total == Approx(r.logit_diff).margin(1e-4));
    CHECK(activation_patching(m, four, reversed, t, {.level = patch_level::head}).values.size() == 4);
    CHECK(attribution_patching(m, four, reversed, t).values.size() > 0);
    CHECK(logit_lens_logits(m, four, 2).shape(0) == 4);
  }
}

TEST_CASE("NaN or Inf from the model is a model_error naming the evaluation that produced it", "[robustness]") {
  const auto t = target::logit(3);
  SECTION("logits: the third evaluation of KernelSHAP") {
    const broken_adapter m(fault::logits_nan, 3);
    REQUIRE_THROWS_MATCHES(kernel_shap(m, four, t, {.n_samples = 6, .execution = {.batch_size = 100}}), model_error,
                           what_contains("glassbox::kernel_shap: the model returned nan in its logits at evaluation 2 "
                                         "(row 0, column 2)"));
  }
  SECTION("logits through evaluate_target: the evaluation is the index of the input") {
    const broken_adapter m(fault::logits_nan, 2);
    const std::vector<token_sequence> inputs{four, four, four};
    REQUIRE_THROWS_MATCHES(evaluate_target(m, inputs, t), model_error,
                           what_contains("glassbox::evaluate_target: the model returned nan in its logits at "
                                         "evaluation 1"));
  }
  SECTION("embedding gradients: integrated gradients never sums a NaN into an attribution") {
    const broken_adapter m(fault::gradient_nan, 5);
    REQUIRE_THROWS_MATCHES(integrated_gradients(m, four, t, {.steps = 8}), model_error,
                           what_contains("glassbox::integrated_gradients: the model returned nan in its embedding "
                                         "gradient at evaluation 4 (row 0, column 1)"));
  }
  SECTION("attentions") {
    const broken_adapter m(fault::attentions_inf);
    REQUIRE_THROWS_MATCHES(attention_rollout(m, four), model_error,
                           what_contains("glassbox::attention_rollout: the model returned inf in its attentions"));
  }
  SECTION("hidden states") {
    const broken_adapter m(fault::hidden_nan);
    const std::vector<token_sequence> inputs{four, four};
    REQUIRE_THROWS_MATCHES(collect_activations(m, inputs, sequence_labels({1.0, 0.0})), model_error,
                           what_contains("glassbox::collect_activations: the model returned nan in its hidden states "
                                         "(hidden_states()) at evaluation 0"));
  }
}

namespace {
// Brace initialisation refuses a negative value for a std::size_t option at compile time (a
// narrowing conversion), so "negative steps" cannot reach the library through an options struct.
template <class O>
concept takes_negative_steps = requires { O{.steps = -1}; };
template <class O>
concept takes_negative_samples = requires { O{.n_samples = -1}; };
static_assert(!takes_negative_steps<integrated_gradients_options>);
static_assert(!takes_negative_samples<lime_options>);
static_assert(!takes_negative_samples<shapley_sampling_options>);
static_assert(!takes_negative_steps<sae_options>);
}  // namespace

TEST_CASE("zero or negative steps, samples, budgets and ranks are errors naming the option", "[robustness]") {
  const auto bag = bag_model();
  const auto t = target::logit(3);
  SECTION("attribution") {
    REQUIRE_THROWS_MATCHES(integrated_gradients(bag, four, t, {.steps = 0}), error,
                           what_contains("glassbox::integrated_gradients: steps must be >= 1, got 0"));
    REQUIRE_THROWS_MATCHES(
        integrated_gradients(bag, four, t, {.steps = 1, .rule = integration_rule::riemann_trapezoid}), error,
        what_contains("steps must be >= 2 for riemann_trapezoid, got 1"));
    REQUIRE_THROWS_MATCHES(smoothgrad(bag, four, t, {.samples = 0}), error,
                           what_contains("glassbox::noise_tunnel: samples must be >= 1, got 0"));
    REQUIRE_THROWS_MATCHES(smoothgrad(bag, four, t, {.stdev = -1.0}), error,
                           what_contains("glassbox::noise_tunnel: stdev must be finite and >= 0, got -1"));
    REQUIRE_THROWS_MATCHES(lime(bag, four, t, {.n_samples = 0}), error,
                           what_contains("glassbox::lime: n_samples must be >= 1, got 0"));
    REQUIRE_THROWS_MATCHES(lime(bag, four, t, {.kernel_width = -2.0}), error,
                           what_contains("glassbox::lime: kernel_width must be > 0 and finite, got -2"));
    REQUIRE_THROWS_MATCHES(kernel_shap(bag, four, t, {.n_samples = 1}), error,
                           what_contains("glassbox::kernel_shap: n_samples must be 0 (auto) or >= 2, got 1"));
    REQUIRE_THROWS_MATCHES(shapley_sampling(bag, four, t, {.n_samples = 0}), error,
                           what_contains("glassbox::shapley_sampling: n_samples must be >= 1, got 0"));
    REQUIRE_THROWS_MATCHES(gradient_shap(bag, four, t, {.samples = 0}), error,
                           what_contains("glassbox::gradient_shap: samples must be >= 1, got 0"));
    REQUIRE_THROWS_MATCHES(occlusion(bag, four, t, {.window = 0}), error,
                           what_contains("glassbox::occlusion: window must be >= 1, got 0"));
    REQUIRE_THROWS_MATCHES(saliency(bag, four, t, {.execution = {.batch_size = 0}}), error,
                           what_contains("batch_size must be >= 1, got 0"));
  }
  SECTION("probes") {
    tensor2 x({6, 2});
    for (std::size_t i = 0; i < 6; ++i) {
      x(i, 0) = static_cast<float>(i);
      x(i, 1) = static_cast<float>(i % 2);
    }
    const std::vector<std::int32_t> y{0, 1, 0, 1, 0, 1};
    REQUIRE_THROWS_MATCHES(fit_logistic_regression(x, y, 2, {.max_iterations = 0}), error,
                           what_contains("glassbox::fit_logistic_regression: max_iterations must be >= 1, got 0"));
    REQUIRE_THROWS_MATCHES(fit_logistic_regression(x, y, 2, {.C = -1.0}), error,
                           what_contains("glassbox::fit_logistic_regression: C must be > 0 and finite, got -1"));
    REQUIRE_THROWS_MATCHES(fit_logistic_regression(x, y, 2, {.history = 0}), error,
                           what_contains("history must be >= 1, got 0"));
    CHECK(fit_logistic_regression(x, y, 2, {.max_iterations = 1}).iterations <= 1);
  }
  SECTION("sparse autoencoders") {
    tensor2 x = xt::ones<float>({std::size_t{8}, std::size_t{3}});
    REQUIRE_THROWS_MATCHES(train_sae(x, {.steps = 0, .epochs = 0}), error,
                           what_contains("glassbox::train_sae: steps or epochs must be >= 1, got 0 and 0"));
    REQUIRE_THROWS_MATCHES(train_sae(x, {.batch_size = 0}), error,
                           what_contains("glassbox::train_sae: batch_size must be >= 1, got 0"));
    REQUIRE_THROWS_MATCHES(train_sae(x, {.learning_rate = 0.0}), error,
                           what_contains("glassbox::train_sae: learning_rate must be finite and > 0, got 0"));
    REQUIRE_THROWS_MATCHES(train_sae(x, {.l1 = -1e-3}), error,
                           what_contains("glassbox::train_sae: l1 must be finite and >= 0, got -0.001"));
  }
  SECTION("influence") {
    const std::vector<training_example> train{training_example::classification({1, 2}, 3),
                                              training_example::classification({4}, 5)};
    const std::vector<measurement> q{measurement::loss(train[0])};
    // LiSSA depth = 0, CG max_iterations = 0 and LiSSA scale = 0: influence_test.cpp, "influence methods
    // reject bad input with clear messages".
    REQUIRE_THROWS_MATCHES(lissa_influence(bag, q, train, {.repeats = 0}), error,
                           what_contains("glassbox::lissa_influence: repeats must be >= 1, got 0"));
    REQUIRE_THROWS_MATCHES(cg_influence(bag, q, train, {.common = {.damping = -1.0}}), error,
                           what_contains("damping must be finite and >= 0, got -1"));
    const auto gpt = tiny_gpt2();
    const std::vector<training_example> gtrain{training_example::next_token({1, 2, 3}),
                                               training_example::next_token({4, 5, 6})};
    const std::vector<measurement> gq{measurement::loss(gtrain[0])};
    const auto f = fit_kfac_factors(gpt, gtrain);
    REQUIRE_THROWS_MATCHES(kfac_influence(gpt, f, gq, gtrain, {.shard_size = 0}), error,
                           what_contains("glassbox::kfac_influence: shard_size must be >= 1, got 0"));
    REQUIRE_THROWS_MATCHES(fit_kfac_factors(gpt, gtrain, {.lambda_max_examples = 0}), error,
                           what_contains("glassbox::fit_kfac_factors: lambda_max_examples must be >= 1, got 0"));
  }
}

TEST_CASE("a baseline of the wrong shape is a shape_error naming the baseline and the expected shape", "[robustness]") {
  const auto bag = bag_model();
  const auto gpt = tiny_gpt2();
  const auto t = target::logit(3);
  const tensor2 three_rows = xt::zeros<float>({std::size_t{3}, std::size_t{5}});
  const tensor2 too_wide = xt::zeros<float>({std::size_t{1}, std::size_t{6}});
  REQUIRE_THROWS_MATCHES(integrated_gradients(bag, four, t, {.baseline = baseline::embedding(three_rows)}), shape_error,
                         what_contains("glassbox::integrated_gradients: baseline embedding must be [1, 5] or [4, 5], "
                                       "got [3, 5]"));
  REQUIRE_THROWS_MATCHES(kernel_shap(bag, four, t, {.baseline = baseline::embedding(too_wide)}), shape_error,
                         what_contains("glassbox::kernel_shap: baseline embedding must be [1, 5] or [4, 5], got "
                                       "[1, 6]"));
  // A baseline built for GPT-2 (d = 8) used with the bag (d = 5).
  const tensor2 gpt_baseline = gpt.embed(four);
  REQUIRE_THROWS_MATCHES(integrated_gradients(bag, four, t, {.baseline = baseline::embedding(gpt_baseline)}),
                         shape_error, what_contains("baseline embedding must be [1, 5] or [4, 5], got [4, 8]"));
  REQUIRE_THROWS_MATCHES(occlusion(gpt, four, t, {.baseline = baseline::token(13)}), shape_error,
                         what_contains("glassbox::occlusion: "));
}

TEST_CASE("a concept vector, reading vector or SAE built for another model is a shape_error", "[robustness]") {
  const auto gpt = tiny_gpt2();  // d = 8
  auto five = tensor1::from_shape({5});
  five.fill(0.1f);
  REQUIRE_THROWS_MATCHES(read_vector(gpt, four, reading_vector{.layer = 1, .direction = five}), shape_error,
                         what_contains("glassbox::read_vector: the direction must have 8 entries, got 5"));
  REQUIRE_THROWS_MATCHES(steered_logits(gpt, four, 1, five), shape_error,
                         what_contains("glassbox::steered_logits: direction must have 8 entries, got 5"));
  REQUIRE_THROWS_MATCHES(read_vector(gpt, four, reading_vector{.layer = 3, .direction = five}), shape_error,
                         what_contains("glassbox::read_vector: layer must be < 3 (hidden states), got 3"));
  // An SAE trained on 5-wide activations applied to GPT-2's 8-wide residual stream.
  tensor2 x({16, 5});
  for (std::size_t i = 0; i < x.size(); ++i) x.data()[i] = static_cast<float>((i * 7) % 5) - 2.0f;
  const auto sae = train_sae(x, {.features = 4, .steps = 2}).sae;
  const std::vector<training_example> data{training_example::next_token({1, 2, 3})};
  REQUIRE_THROWS_MATCHES(sae_loss_recovered(gpt, sae, data, 1), shape_error,
                         what_contains("glassbox::sae_loss_recovered: "));
  const tensor2 hidden = xt::zeros<float>({std::size_t{2}, std::size_t{8}});
  REQUIRE_THROWS_MATCHES(sae_encode(sae, hidden), shape_error, what_contains("glassbox::sae_encode: "));
}

TEST_CASE("the factor sizes the library reports equal the formula behind the EK-FAC memory bound", "[robustness]") {
  const auto gpt = tiny_gpt2();
  const std::vector<training_example> train{training_example::next_token({1, 2, 3, 4}),
                                            training_example::next_token({5, 6, 7})};
  for (auto method : {factor_method::ekfac, factor_method::kfac, factor_method::diagonal, factor_method::identity}) {
    CAPTURE(to_string(method));
    const auto f = fit_kfac_factors(gpt, train, {.method = method});
    REQUIRE(f.layers.size() == 8);
    std::size_t total = 0;
    for (const auto& l : f.layers) {
      CAPTURE(l.name);
      CHECK(l.stored_floats() == kfac_layer_floats(method, l.input_dim, l.output_dim, l.has_bias));
      total += l.stored_floats();
    }
    // By hand for this config (d 8, MLP 32): per block c_attn 8 -> 24, c_proj 8 -> 8, c_fc 8 -> 32, c_proj 32 -> 8.
    // EK-FAC of c_attn: a = 9, 2 a^2 + a + 2 x 24^2 + 24 + 24 a = 162 + 9 + 1152 + 24 + 216 = 1563.
    const std::size_t by_hand = method == factor_method::ekfac      ? 2 * (1563 + 379 + 2539 + 2611)
                                : method == factor_method::kfac     ? 2 * (1347 + 307 + 2251 + 2347)
                                : method == factor_method::diagonal ? 2 * (216 + 72 + 288 + 264)
                                                                    : 0;
    CHECK(total == by_hand);
  }
  // GPT-2 small (12 blocks, d 768, MLP 3072): the figures docs/robustness.md quotes.
  std::size_t ekfac = 0;
  for (int block = 0; block < 12; ++block)
    ekfac += kfac_layer_floats(factor_method::ekfac, 768, 2304) + kfac_layer_floats(factor_method::ekfac, 768, 768) +
             kfac_layer_floats(factor_method::ekfac, 768, 3072) + kfac_layer_floats(factor_method::ekfac, 3072, 768);
  CHECK(ekfac == 736'588'944);  // 2.74 GiB of floats
  CHECK(kfac_layer_floats(factor_method::ekfac, 768, 3072) == 22'423'299);
}

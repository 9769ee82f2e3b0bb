// Tests of the adapter conformance kit (verify/): the reference GPT-2 in float and in double, the
// linear bag model and the example adapter (examples/adapt_your_model.cpp) pass every check that
// applies to them; deliberately broken adapters fail, each by the check that names its fault
// (and, where the fault is confined to one member, by that check only).
#include <algorithm>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "glassbox/core/execution.hpp"
#include "glassbox/models/gpt2.hpp"
#include "glassbox/models/linear_bag.hpp"
#include "glassbox/verify.hpp"
#include "test_support.hpp"

// The example adapter, without the example's main().
#define GLASSBOX_EXAMPLE_NO_MAIN
#include "../../examples/adapt_your_model.cpp"

namespace {

using glassbox::check_status;
using glassbox::token_id;
using glassbox::token_span;
using glassbox::verify_report;
using glassbox::models::gpt2_config;

// 2 blocks, 2 heads of width 4, 13 tokens, 10 positions: every rung, in a few milliseconds per pass.
gpt2_config tiny_config() {
  gpt2_config c;
  c.n_layer = 2;
  c.n_head = 2;
  c.n_embd = 8;
  c.n_positions = 10;
  c.vocab_size = 13;
  return c;
}

// Parameters far from GPT-2's small initialisation, so that every nonlinearity (softmax, GELU,
// LayerNorm) works away from its linear regime: N(0, 0.4), LayerNorm weights 1 + N(0, 0.2).
template <class S>
glassbox::models::basic_gpt2<S> tiny_gpt2(std::uint64_t seed = 7) {
  const auto c = tiny_config();
  const auto table = glassbox::models::gpt2_parameter_table(c);
  std::vector<S> p(table.back().offset + table.back().size);
  glassbox::rng g(seed);
  for (const auto& t : table) {
    const bool ln_weight = t.name.find("ln_") != std::string::npos && t.name.ends_with(".weight");
    for (std::size_t i = 0; i < t.size; ++i)
      p[t.offset + i] = static_cast<S>(ln_weight ? 1.0 + g.normal(0, 0.2) : g.normal(0, 0.4));
  }
  return glassbox::models::basic_gpt2<S>(c, p);
}

const std::vector<token_id> sample_tokens{3, 11, 0, 7, 7, 12};

// The checks of the ComponentModel rung (the reference GPT-2 has it; the wrappers below do not).
const std::vector<std::string> component_checks{
    "run_with_cache shapes",
    "run_with_cache = hidden_states and logits",
    "components sum to the residual stream",
    "MLP output = neurons x neuron_output_weights + a constant",
    "logits_with_patches(own values) = logits",
    "unembedding_directions read the logits (frozen final scale)",
    "component_gradients value = seed(logits)",
    "component_gradients vs finite differences",
};

// Every check a model with every rung of the ladder gets (plus the optional members it has).
const std::vector<std::string> ladder_checks{
    "logits shape",
    "logits deterministic",
    "embed shape",
    "logits_from_embeddings(embed(t)) = logits(t)",
    "embedding_gradient shape",
    "embedding_gradient value = seed(logits_from_embeddings)",
    "embedding_gradient vs finite differences",
    "attentions shape",
    "attention rows sum to one",
    "attention non-negative",
    "attention [query, key] layout",
    "attention causal (zero above the diagonal)",
    "attention_gradient shape",
    "attention_gradient attentions = attentions",
    "attention_gradient value = seed(logits)",
    "logits_with_head_mask(ones) = logits",
    "head_mask_gradient shape",
    "head_mask_gradient value = seed(logits_with_head_mask)",
    "head_mask_gradient vs finite differences",
    "attention_gradient vs head_mask_gradient",
    "hidden_states shape",
    "logits_from_hidden(hidden_states) = logits",
    "hidden_gradient shape",
    "hidden_gradient value = seed(logits_from_hidden)",
    "hidden_gradient vs finite differences",
    "parameters shape",
    "loss_gradient shape",
    "loss_gradient value = loss",
    "set_parameters(parameters()) keeps the loss",
    "loss_gradient vs finite differences",
    "kfac_statistics shapes",
    "kfac_statistics = loss_gradient weight blocks",
};

// Requires that every check in `names` ran and passed.
void require_passed(const verify_report& report, const std::vector<std::string>& names) {
  for (const auto& name : names) {
    INFO(name);
    const auto* c = report.find(name);
    REQUIRE(c != nullptr);
    CHECK(c->status == check_status::passed);
  }
}

// The failed checks, sorted.
std::vector<std::string> failures(const verify_report& report) {
  auto f = report.failed_checks();
  std::sort(f.begin(), f.end());
  return f;
}

bool has_warning(const verify_report& report, const std::string& text) {
  return std::any_of(report.warnings.begin(), report.warnings.end(),
                     [&](const std::string& w) { return w.find(text) != std::string::npos; });
}

}  // namespace

TEST_CASE("the reference GPT-2 passes every check in float", "[verify]") {
  const auto model = tiny_gpt2<float>();
  const auto report = glassbox::verify_adapter(model, sample_tokens);
  INFO(glassbox::to_string(report));
  CHECK(report.passed());
  CHECK(report.scalar == "float");
  CHECK(report.causal);
  CHECK(report.count(check_status::skipped) == 0);
  require_passed(report, ladder_checks);
  require_passed(report, {"attention_gradient vs finite differences", "output_rows = rows of logits",
                          "logits_at = rows of logits", "logits_batch = logits",
                          "logits_from_embeddings_batch = logits_from_embeddings",
                          "embedding_gradient_batch = embedding_gradient", "pad_token in vocabulary",
                          "thread_safe: concurrent calls agree", "decode_hidden(hidden_states[L]) = logits"});
  require_passed(report, component_checks);
  CHECK(report.rungs == report.library_rungs);
  CHECK(report.rungs.size() == 10);
  CHECK(report.warnings.empty());
  const auto has_fast_path = [&](const std::string& member) {
    return std::any_of(report.fast_paths.begin(), report.fast_paths.end(),
                       [&](const std::string& f) { return f.find(member) != std::string::npos; });
  };
  for (const char* member : {"thread", "logits_at", "logits_batch", "logits_from_embeddings_batch",
                             "embedding_gradient_batch"}) {
    INFO(member);
    CHECK(has_fast_path(member));
  }
}

TEST_CASE("the reference GPT-2 passes every check in double with double tolerances", "[verify]") {
  const auto model = tiny_gpt2<double>();
  const auto report = glassbox::verify_adapter(model, sample_tokens);
  INFO(glassbox::to_string(report));
  CHECK(report.passed());
  CHECK(report.scalar == "double");
  CHECK(report.count(check_status::skipped) == 0);
  require_passed(report, ladder_checks);
  require_passed(report, {"attention_gradient vs finite differences", "logits_batch = logits",
                          "embedding_gradient_batch = embedding_gradient"});
  // Checked in double: a finite-difference tolerance of 1e-6, not float's 1e-2.
  const auto* fd = report.find("embedding_gradient vs finite differences");
  REQUIRE(fd != nullptr);
  CHECK(fd->tolerance == Approx(1e-6));
  CHECK(fd->measured < 1e-6);
  // The library's algorithms take float tensors: the double model serves the rungs whose results
  // convert (Model, EmbeddingModel, AttentionModel, ActivationModel), and the report says so.
  require_passed(report, component_checks);
  CHECK(report.rungs.size() == 10);
  CHECK(report.library_rungs.size() < report.rungs.size());
}

TEST_CASE("the linear bag model passes every check of its rungs", "[verify]") {
  const auto model = glassbox::models::linear_bag::random(11, 5, 4, 3);
  const std::vector<token_id> tokens{1, 4, 9, 2, 7};
  const auto report = glassbox::verify_adapter(model, tokens);
  INFO(glassbox::to_string(report));
  CHECK(report.passed());
  CHECK(report.causal);  // prefix sums: row t reads tokens up to t
  require_passed(report, {"logits shape", "logits_from_embeddings(embed(t)) = logits(t)",
                          "embedding_gradient vs finite differences", "logits_at = rows of logits",
                          "output_rows = rows of logits", "thread_safe: concurrent calls agree"});
  CHECK(report.find("attentions shape") == nullptr);
}

TEST_CASE("the example adapter passes every check of its rungs", "[verify]") {
  const my_lab::tiny_transformer model = random_model(12, 8, 16, 2024);
  const tiny_transformer_adapter adapter(model);
  const std::vector<token_id> tokens{3, 7, 1, 9, 4, 2};
  const auto report = glassbox::verify_adapter(adapter, tokens);
  INFO(glassbox::to_string(report));
  CHECK(report.passed());
  require_passed(report, {"logits shape", "logits deterministic", "embed shape",
                          "logits_from_embeddings(embed(t)) = logits(t)", "embedding_gradient shape",
                          "embedding_gradient value = seed(logits_from_embeddings)",
                          "embedding_gradient vs finite differences", "thread_safe: concurrent calls agree"});
  CHECK(report.causal);
}

namespace {

using glassbox::output_seed;
using glassbox::tensor2;
using glassbox::tensor4;
using glassbox::value_and_gradient;

// The faults a broken adapter of the reference GPT-2 can have.
enum class fault {
  flipped_gradient_sign,   // embedding_gradient returns -gradient
  half_gradient,           // embedding_gradient returns gradient / 2
  transposed_attention,    // attentions() and attention_gradient() in [key, query] layout
  unnormalised_attention,  // attentions() rows scaled (a missing softmax normalisation)
  shifted_positions,       // logits_from_embeddings adds the positions of the next token (off by one)
  seed_all_rows,           // embedding_gradient hands the seed every row instead of seed.rows()
  missing_input_state,     // hidden_states() without index 0 (the input of the first block)
  flipped_head_mask_sign,  // head_mask_gradient returns -gradient
  half_hidden_gradient,    // hidden_gradient returns gradient / 2
  half_loss_gradient,      // loss_gradient returns gradient / 2
};

// [L, H, T, T] with the last two axes swapped.
tensor4 transposed(const tensor4& a) { return xt::transpose(a, {0, 1, 3, 2}); }

// An adapter of the reference GPT-2 (float) with one fault. It forwards the members of every rung
// of the ladder and none of the optional ones, so that a fault shows in its own checks only.
template <fault F>
class faulty_gpt2 {
 public:
  explicit faulty_gpt2(glassbox::models::gpt2 model) : m_(std::move(model)) {}

  std::size_t vocab_size() const { return m_.vocab_size(); }
  tensor2 logits(token_span t) const { return m_.logits(t); }

  tensor2 embed(token_span t) const { return m_.embed(t); }
  tensor2 logits_from_embeddings(const tensor2& e) const { return m_.logits_from_embeddings(positions(e)); }
  value_and_gradient<tensor2> embedding_gradient(const tensor2& e, const output_seed& seed) const {
    if constexpr (F == fault::seed_all_rows) {
      const tensor2 z = m_.logits_from_embeddings(e);
      tensor2 dz;
      const double v = seed(z, dz);  // should be seed(rows seed.rows(T) of z)
      return {v, xt::zeros<float>(e.shape())};
    }
    auto g = m_.embedding_gradient(positions(e), seed);  // d/de of f(e + shift) is the gradient at e + shift
    if constexpr (F == fault::flipped_gradient_sign) g.gradient *= -1.0f;
    if constexpr (F == fault::half_gradient) g.gradient *= 0.5f;
    return g;
  }

  tensor4 attentions(token_span t) const {
    tensor4 a = m_.attentions(t);
    if constexpr (F == fault::transposed_attention) a = transposed(a);
    if constexpr (F == fault::unnormalised_attention)
      for (std::size_t l = 0; l < a.shape(0); ++l)
        for (std::size_t h = 0; h < a.shape(1); ++h)
          for (std::size_t q = 0; q < a.shape(2); ++q)
            for (std::size_t k = 0; k < a.shape(3); ++k) a(l, h, q, k) *= 1.0f + 0.5f * static_cast<float>(q);
    return a;
  }
  glassbox::attention_gradient_result attention_gradient(token_span t, const output_seed& seed) const {
    auto r = m_.attention_gradient(t, seed);
    if constexpr (F == fault::transposed_attention) {
      r.attentions = transposed(r.attentions);
      r.gradient = transposed(r.gradient);
    }
    return r;
  }
  value_and_gradient<tensor2> head_mask_gradient(token_span t, const tensor2& mask, const output_seed& seed) const {
    auto g = m_.head_mask_gradient(t, mask, seed);
    if constexpr (F == fault::flipped_head_mask_sign) g.gradient *= -1.0f;
    return g;
  }
  tensor2 logits_with_head_mask(token_span t, const tensor2& mask) const { return m_.logits_with_head_mask(t, mask); }

  glassbox::tensor3 hidden_states(token_span t) const {
    glassbox::tensor3 h = m_.hidden_states(t);
    if constexpr (F == fault::missing_input_state) return xt::view(h, xt::range(1, h.shape(0)), xt::all(), xt::all());
    return h;
  }
  tensor2 logits_from_hidden(token_span t, std::size_t layer, const tensor2& h) const {
    return m_.logits_from_hidden(t, layer, h);
  }
  value_and_gradient<tensor2> hidden_gradient(token_span t, std::size_t layer, const tensor2& h,
                                              const output_seed& seed) const {
    auto g = m_.hidden_gradient(t, layer, h, seed);
    if constexpr (F == fault::half_hidden_gradient) g.gradient *= 0.5f;
    return g;
  }

  std::size_t parameter_count() const { return m_.parameter_count(); }
  std::span<const float> parameters() const { return m_.parameters(); }
  void set_parameters(std::span<const float> p) { m_.set_parameters(p); }
  double loss(const glassbox::training_example& e) const { return m_.loss(e); }
  value_and_gradient<glassbox::tensor1> loss_gradient(const glassbox::training_example& e) const {
    auto g = m_.loss_gradient(e);
    if constexpr (F == fault::half_loss_gradient) g.gradient *= 0.5f;
    return g;
  }
  std::vector<glassbox::linear_layer_statistics> kfac_statistics(const glassbox::training_example& e) const {
    auto s = m_.kfac_statistics(e);
    if constexpr (F == fault::half_loss_gradient)  // the same fault in the layer gradients
      for (auto& layer : s) layer.output_gradients *= 0.5f;
    return s;
  }

 private:
  // The token embeddings with the model's positions moved by one when the fault asks for it:
  // e[i] + wpe[i + 1] - wpe[i], so that the model sees position i + 1 at row i.
  tensor2 positions(const tensor2& e) const {
    if constexpr (F != fault::shifted_positions) {
      return e;
    } else {
      tensor2 out = e;
      const auto wpe = m_.parameter("wpe.weight");
      const std::size_t d = e.shape(1);
      for (std::size_t i = 0; i < e.shape(0); ++i)
        for (std::size_t j = 0; j < d; ++j) out(i, j) += wpe[(i + 1) * d + j] - wpe[i * d + j];
      return out;
    }
  }

  glassbox::models::gpt2 m_;
};

template <fault F>
verify_report check_faulty() {
  const faulty_gpt2<F> adapter(tiny_gpt2<float>());
  return glassbox::verify_adapter(adapter, sample_tokens);
}

std::string detail_of(const verify_report& report, const std::string& name) {
  const auto* c = report.find(name);
  REQUIRE(c != nullptr);
  return c->detail;
}

}  // namespace

TEST_CASE("the wrapper of the broken-adapter tests is itself a correct adapter", "[verify]") {
  // Without a fault the wrapper passes everything, so each failure below is the fault's.
  const auto model = tiny_gpt2<float>();
  struct clean : faulty_gpt2<fault::half_loss_gradient> {
    using faulty_gpt2::faulty_gpt2;
    value_and_gradient<glassbox::tensor1> loss_gradient(const glassbox::training_example& e) const {
      auto g = faulty_gpt2::loss_gradient(e);
      g.gradient *= 2.0f;
      return g;
    }
    std::vector<glassbox::linear_layer_statistics> kfac_statistics(const glassbox::training_example& e) const {
      auto s = faulty_gpt2::kfac_statistics(e);
      for (auto& layer : s) layer.output_gradients *= 2.0f;
      return s;
    }
  };
  const auto report = glassbox::verify_adapter(clean(model), sample_tokens);
  INFO(glassbox::to_string(report));
  CHECK(report.passed());
  require_passed(report, ladder_checks);
  CHECK(report.find("attention_gradient vs finite differences")->status == check_status::skipped);
}

TEST_CASE("broken adapters are caught by the check that names the fault", "[verify]") {
  SECTION("flipped gradient sign") {
    const auto report = check_faulty<fault::flipped_gradient_sign>();
    INFO(glassbox::to_string(report));
    CHECK(failures(report) == std::vector<std::string>{"embedding_gradient vs finite differences"});
    CHECK_THAT(detail_of(report, "embedding_gradient vs finite differences"),
               Catch::Matchers::Contains("wrong sign: analytic / numeric = -1"));
  }
  SECTION("a gradient scaled by 0.5") {
    const auto report = check_faulty<fault::half_gradient>();
    INFO(glassbox::to_string(report));
    CHECK(failures(report) == std::vector<std::string>{"embedding_gradient vs finite differences"});
    CHECK_THAT(detail_of(report, "embedding_gradient vs finite differences"),
               Catch::Matchers::Contains("constant factor: analytic / numeric = 0.5"));
    // |analytic - numeric| / max(|analytic|, |numeric|, typical): 0.5 where |numeric| is typical or larger.
    CHECK(report.find("embedding_gradient vs finite differences")->measured > 0.25);
  }
  SECTION("transposed attention") {
    const auto report = check_faulty<fault::transposed_attention>();
    INFO(glassbox::to_string(report));
    CHECK(failures(report) == std::vector<std::string>{"attention [query, key] layout",
                                                       "attention causal (zero above the diagonal)",
                                                       "attention rows sum to one"});
    CHECK_THAT(detail_of(report, "attention [query, key] layout"), Catch::Matchers::Contains("transposed"));
  }
  SECTION("unnormalised attention") {
    const auto report = check_faulty<fault::unnormalised_attention>();
    INFO(glassbox::to_string(report));
    const auto f = failures(report);
    CHECK(std::count(f.begin(), f.end(), "attention rows sum to one") == 1);
    CHECK(report.find("attention [query, key] layout")->passed());
    CHECK(report.find("attention causal (zero above the diagonal)")->passed());
    CHECK_THAT(detail_of(report, "attention rows sum to one"), Catch::Matchers::Contains("not normalised"));
  }
  SECTION("an off-by-one position in logits_from_embeddings") {
    const auto report = check_faulty<fault::shifted_positions>();
    INFO(glassbox::to_string(report));
    // The gradient is consistent with the shifted forward pass; only the consistency check sees it.
    CHECK(failures(report) == std::vector<std::string>{"logits_from_embeddings(embed(t)) = logits(t)"});
  }
  SECTION("the seed handed every row instead of the rows it asked for") {
    const auto report = check_faulty<fault::seed_all_rows>();
    INFO(glassbox::to_string(report));
    CHECK(failures(report) == std::vector<std::string>{"embedding_gradient shape"});
    CHECK_THAT(detail_of(report, "embedding_gradient shape"),
               Catch::Matchers::Contains("handed the seed logits of shape [6, 13], expected [2, 13]"));
  }
  SECTION("hidden states without the input of the first block") {
    const auto report = check_faulty<fault::missing_input_state>();
    INFO(glassbox::to_string(report));
    CHECK(failures(report) == std::vector<std::string>{"hidden_states shape"});
    CHECK_THAT(detail_of(report, "hidden_states shape"), Catch::Matchers::Contains("expected L + 1 = 3"));
  }
  SECTION("flipped head-mask gradient") {
    const auto report = check_faulty<fault::flipped_head_mask_sign>();
    INFO(glassbox::to_string(report));
    // The identity sum(A * dA) = d f / d mask at ones sees it too.
    CHECK(failures(report) == std::vector<std::string>{"attention_gradient vs head_mask_gradient",
                                                       "head_mask_gradient vs finite differences"});
    CHECK_THAT(detail_of(report, "head_mask_gradient vs finite differences"), Catch::Matchers::Contains("wrong sign"));
  }
  SECTION("a hidden-state gradient scaled by 0.5") {
    const auto report = check_faulty<fault::half_hidden_gradient>();
    INFO(glassbox::to_string(report));
    CHECK(failures(report) == std::vector<std::string>{"hidden_gradient vs finite differences"});
    CHECK_THAT(detail_of(report, "hidden_gradient vs finite differences"),
               Catch::Matchers::Contains("analytic / numeric = 0.5"));
  }
  SECTION("a parameter gradient scaled by 0.5 (in loss_gradient and the K-FAC statistics alike)") {
    const auto report = check_faulty<fault::half_loss_gradient>();
    INFO(glassbox::to_string(report));
    CHECK(failures(report) == std::vector<std::string>{"loss_gradient vs finite differences"});
    CHECK_THAT(detail_of(report, "loss_gradient vs finite differences"),
               Catch::Matchers::Contains("analytic / numeric = 0.5"));
  }
}

namespace {

// The reference GPT-2 through the rungs the component checks need (Model, ActivationModel,
// InterventionModel, ComponentModel) with one fault chosen at run time, so that the kit is
// instantiated for one more type only.
enum class component_fault { none, half_neuron_gradient, dropped_attention_bias, nan_head_gradient };

class component_gpt2 {
 public:
  component_gpt2(glassbox::models::gpt2 model, component_fault fault) : m_(std::move(model)), fault_(fault) {}
  std::size_t vocab_size() const { return m_.vocab_size(); }
  tensor2 logits(token_span t) const { return m_.logits(t); }
  glassbox::tensor3 hidden_states(token_span t) const { return m_.hidden_states(t); }
  tensor2 logits_from_hidden(token_span t, std::size_t layer, const tensor2& h) const {
    return m_.logits_from_hidden(t, layer, h);
  }
  value_and_gradient<tensor2> hidden_gradient(token_span t, std::size_t layer, const tensor2& h,
                                              const glassbox::output_seed& seed) const {
    return m_.hidden_gradient(t, layer, h, seed);
  }
  glassbox::component_layout layout() const { return m_.layout(); }
  glassbox::component_cache run_with_cache(token_span t) const {
    auto c = m_.run_with_cache(t);
    if (fault_ == component_fault::dropped_attention_bias) c.attention_bias *= 0.0f;
    return c;
  }
  tensor2 logits_with_patches(token_span t, std::span<const glassbox::component_patch> p,
                              std::span<const std::size_t> rows) const {
    return m_.logits_with_patches(t, p, rows);
  }
  glassbox::component_gradient_result component_gradients(token_span t, const glassbox::output_seed& s) const {
    auto g = m_.component_gradients(t, s);
    if (fault_ == component_fault::half_neuron_gradient) g.neurons *= 0.5f;
    if (fault_ == component_fault::nan_head_gradient) g.attention(1, 0, 0) = std::numeric_limits<float>::quiet_NaN();
    return g;
  }
  glassbox::logit_directions unembedding_directions(std::span<const token_id> k) const {
    return m_.unembedding_directions(k);
  }
  tensor2 neuron_output_weights(std::size_t layer) const { return m_.neuron_output_weights(layer); }

 private:
  glassbox::models::gpt2 m_;
  component_fault fault_;
};

}  // namespace

TEST_CASE("broken component members are caught by the check that names the fault", "[verify]") {
  auto report_of = [](component_fault f) {
    return glassbox::verify_adapter(component_gpt2(tiny_gpt2<float>(), f), sample_tokens);
  };
  SECTION("without a fault the wrapper passes") {
    const auto report = report_of(component_fault::none);
    INFO(glassbox::to_string(report));
    CHECK(report.passed());
    require_passed(report, component_checks);
  }
  SECTION("neuron gradients scaled by 0.5") {
    const auto report = report_of(component_fault::half_neuron_gradient);
    INFO(glassbox::to_string(report));
    CHECK(failures(report) == std::vector<std::string>{"component_gradients vs finite differences"});
    CHECK_THAT(detail_of(report, "component_gradients vs finite differences"), Catch::Matchers::Contains("neuron"));
  }
  SECTION("a NaN in the gradient of block 1's heads") {
    const auto report = report_of(component_fault::nan_head_gradient);
    INFO(glassbox::to_string(report));
    CHECK(failures(report) == std::vector<std::string>{"component_gradients vs finite differences"});
    CHECK_THAT(detail_of(report, "component_gradients vs finite differences"),
               Catch::Matchers::Contains("the analytic directional derivative is not finite at head L1H1"));
  }
  SECTION("the attention output bias missing from the cache") {
    const auto report = report_of(component_fault::dropped_attention_bias);
    INFO(glassbox::to_string(report));
    CHECK(failures(report) == std::vector<std::string>{"components sum to the residual stream",
                                                       "unembedding_directions read the logits (frozen final scale)"});
  }
}

namespace {

// The linear bag model as a Model with logits_at (and, when Rows, output_rows), and a logits_batch
// that returns the batch's items in reverse order when Broken.
template <bool Rows, bool Broken>
class bag_with_members {
 public:
  explicit bag_with_members(glassbox::models::linear_bag bag) : bag_(std::move(bag)) {}
  std::size_t vocab_size() const { return bag_.vocab_size(); }
  tensor2 logits(token_span t) const { return bag_.logits(t); }
  tensor2 logits_at(token_span t, std::span<const std::size_t> rows) const { return bag_.logits_at(t, rows); }
  std::size_t output_rows(std::size_t tokens) const
    requires Rows
  {
    return tokens;
  }
  glassbox::tensor3 logits_batch(const glassbox::token_matrix& batch, std::span<const std::size_t> rows) const {
    const std::size_t b = batch.shape(0), t = batch.shape(1), p = rows.empty() ? t : rows.size();
    glassbox::tensor3 out = glassbox::tensor3::from_shape({b, p, bag_.classes()});
    for (std::size_t i = 0; i < b; ++i) {
      const std::size_t source = Broken ? b - 1 - i : i;
      std::vector<token_id> seq(batch.data() + source * t, batch.data() + (source + 1) * t);
      std::vector<std::size_t> all(t);
      for (std::size_t r = 0; r < t; ++r) all[r] = r;
      const tensor2 z = bag_.logits_at(seq, rows.empty() ? std::span<const std::size_t>(all) : rows);
      std::copy(z.begin(), z.end(), out.data() + i * z.size());
    }
    return out;
  }

 private:
  glassbox::models::linear_bag bag_;
};

// A sequence classifier made of the linear bag: one output row (the bag's last), not causal.
class bag_classifier {
 public:
  explicit bag_classifier(glassbox::models::linear_bag bag) : bag_(std::move(bag)) {}
  std::size_t vocab_size() const { return bag_.classes(); }
  std::size_t output_rows(std::size_t) const { return 1; }
  tensor2 logits(token_span t) const { return last(bag_.logits(t)); }
  tensor2 embed(token_span t) const {
    for (const token_id id : t)
      if (id < 0 || static_cast<std::size_t>(id) >= bag_.vocab_size())
        throw glassbox::shape_error("bag_classifier: token out of range");
    return bag_.embed(t);
  }
  tensor2 logits_from_embeddings(const tensor2& e) const { return last(bag_.logits_from_embeddings(e)); }
  value_and_gradient<tensor2> embedding_gradient(const tensor2& e, const output_seed& seed) const {
    const auto rows = seed.rows(1);  // {0}: the one row
    const output_seed on_last([](std::size_t n) { return std::vector<std::size_t>{n - 1}; },
                              [&](const tensor2& z, tensor2& dz) { return seed(z, dz); });
    (void)rows;
    return bag_.embedding_gradient(e, on_last);
  }

 private:
  static tensor2 last(const tensor2& z) { return xt::view(z, xt::range(z.shape(0) - 1, z.shape(0)), xt::all()); }
  glassbox::models::linear_bag bag_;
};

}  // namespace

TEST_CASE("a batched member that disagrees with the single one is caught and warned about", "[verify]") {
  const auto bag = glassbox::models::linear_bag::random(11, 5, 4, 3);
  const std::vector<token_id> tokens{1, 4, 9, 2, 7};
  const auto good = glassbox::verify_adapter(bag_with_members<true, false>(bag), tokens);
  INFO(glassbox::to_string(good));
  CHECK(good.passed());
  CHECK(good.find("logits_batch = logits")->passed());
  CHECK_FALSE(has_warning(good, "disagrees"));
  // The bag's logits have a column per class, not per token id: a warning, not a failure.
  CHECK(has_warning(good, "logits have 4 columns but vocab_size() is 11"));

  const auto bad = glassbox::verify_adapter(bag_with_members<true, true>(bag), tokens);
  INFO(glassbox::to_string(bad));
  CHECK(failures(bad) == std::vector<std::string>{"logits_batch = logits"});
  CHECK_THAT(detail_of(bad, "logits_batch = logits"), Catch::Matchers::Contains("item 0 of the batch"));
  CHECK(has_warning(bad, "logits_batch disagrees with logits"));
}

TEST_CASE("logits_at without output_rows is checked, and the slow path it takes is a warning", "[verify]") {
  const auto bag = glassbox::models::linear_bag::random(11, 5, 4, 3);
  const auto report = glassbox::verify_adapter(bag_with_members<false, false>(bag), std::vector<token_id>{1, 4, 9});
  INFO(glassbox::to_string(report));
  CHECK(report.passed());
  CHECK(report.find("logits_at = rows of logits")->passed());
  CHECK(has_warning(report, "logits_at is present but output_rows is not"));
  CHECK(has_warning(report, "logits_batch is present but output_rows is not"));
  CHECK(report.fast_paths.empty());  // neither member is usable without output_rows
  const auto it = std::find_if(report.optional_members.begin(), report.optional_members.end(),
                               [](const glassbox::optional_member& m) { return m.name == "logits_at"; });
  REQUIRE(it != report.optional_members.end());
  CHECK(it->present);
}

TEST_CASE("a classifier (one output row) passes, with the causal checks not applied", "[verify]") {
  const bag_classifier model(glassbox::models::linear_bag::random(11, 5, 3, 9));
  const auto report = glassbox::verify_adapter(model, std::vector<token_id>{2, 8, 5, 1});
  INFO(glassbox::to_string(report));
  CHECK(report.passed());
  CHECK_FALSE(report.causal);
  CHECK(report.output_rows == 1);
  CHECK_THAT(report.causal_source, Catch::Matchers::Contains("classifier"));
  require_passed(report, {"logits shape", "output_rows = rows of logits", "embedding_gradient vs finite differences"});
}

TEST_CASE("verify_adapter gives the same report for the same seed and validates its options", "[verify]") {
  const auto model = tiny_gpt2<float>();
  glassbox::verify_options options;
  options.seed = 11;
  options.directions = 2;
  const auto a = glassbox::verify_adapter(model, sample_tokens, options);
  const auto b = glassbox::verify_adapter(model, sample_tokens, options);
  REQUIRE(a.checks.size() == b.checks.size());
  for (std::size_t i = 0; i < a.checks.size(); ++i) {
    INFO(a.checks[i].name);
    // Bit-identical, except the thread-safety check, whose threads interleave as they like (its
    // measured difference is 0 either way).
    CHECK(a.checks[i].measured == b.checks[i].measured);
  }

  // A tolerance scale of 1e-9 fails finite-difference checks and leaves shapes alone. (Which ones
  // depends on the build: a check whose error is exactly 0 passes any tolerance, and the
  // finite-difference errors subtract what the differences cannot resolve.)
  options.tolerance_scale = 1e-9;
  const auto strict = glassbox::verify_adapter(model, sample_tokens, options);
  CHECK_FALSE(strict.passed());
  std::size_t failed_fd = 0;
  for (const auto& c : strict.checks)
    if (c.name.find("vs finite differences") != std::string::npos && c.failed()) ++failed_fd;
  CHECK(failed_fd > 0);
  CHECK(strict.find("logits shape")->passed());

  using glassbox::test::what_contains;
  options.tolerance_scale = 0;
  REQUIRE_THROWS_MATCHES(glassbox::verify_adapter(model, sample_tokens, options), glassbox::error,
                         what_contains("glassbox::verify_adapter: tolerance_scale must be a finite number > 0, got 0"));
  options.tolerance_scale = 1;
  options.directions = 0;
  REQUIRE_THROWS_MATCHES(glassbox::verify_adapter(model, sample_tokens, options), glassbox::error,
                         what_contains("glassbox::verify_adapter: directions must be >= 1, got 0"));
  options.directions = 1;
  REQUIRE_THROWS_MATCHES(glassbox::verify_adapter(model, std::vector<token_id>{}, options), glassbox::shape_error,
                         what_contains("glassbox::verify_adapter: tokens must not be empty"));
  REQUIRE_THROWS_MATCHES(glassbox::verify_adapter(model, std::vector<token_id>{1, -2}, options), glassbox::shape_error,
                         what_contains("glassbox::verify_adapter: tokens[1] must be >= 0, got -2"));

  std::size_t calls = 0, last_done = 0, total = 0;
  options.execution.on_progress = [&](const glassbox::progress& p) {
    ++calls;
    last_done = p.done;
    total = p.total;
    return true;
  };
  (void)glassbox::verify_adapter(model, sample_tokens, options);
  CHECK(calls >= 2);
  CHECK(last_done == total);
  options.execution.on_progress = [](const glassbox::progress& p) { return p.done < 3; };
  REQUIRE_THROWS_AS(glassbox::verify_adapter(model, sample_tokens, options), glassbox::cancelled);
}

TEST_CASE("the report renders as a table with notes, optional members and a result line", "[verify]") {
  const auto report = check_faulty<fault::half_gradient>();
  const std::string text = glassbox::to_string(report);
  INFO(text);
  CHECK_THAT(text, Catch::Matchers::Contains("check") && Catch::Matchers::Contains("rung") &&
                       Catch::Matchers::Contains("measured") && Catch::Matchers::Contains("tolerance"));
  // The row of the failed check: name, rung, measured, tolerance, result.
  const std::size_t row = text.find("\nembedding_gradient vs finite differences ");
  REQUIRE(row != std::string::npos);
  const std::string line = text.substr(row + 1, text.find('\n', row + 1) - row - 1);
  CHECK_THAT(line, Catch::Matchers::Contains(" DifferentiableModel ") && Catch::Matchers::Contains(" 5.00e-01 ") &&
                       Catch::Matchers::Contains(" <= 1.0e-02 ") && Catch::Matchers::EndsWith("FAIL"));
  CHECK_THAT(text, Catch::Matchers::Contains("! embedding_gradient vs finite differences: the gradient is off by a "
                                             "constant factor"));
  CHECK_THAT(text, Catch::Matchers::Contains("optional members:"));
  CHECK_THAT(text, Catch::Matchers::Contains("result: FAIL ("));
  // One line per check between the header rule and the notes.
  std::size_t fails = 0, passes = 0;
  for (std::size_t at = text.find("  FAIL\n"); at != std::string::npos; at = text.find("  FAIL\n", at + 1)) ++fails;
  for (std::size_t at = text.find("  pass\n"); at != std::string::npos; at = text.find("  pass\n", at + 1)) ++passes;
  CHECK(fails == report.count(check_status::failed));
  CHECK(passes == report.count(check_status::passed));
}

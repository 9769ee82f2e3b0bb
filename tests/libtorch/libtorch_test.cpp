// The libtorch adapter (include/glassbox/adapters/libtorch.hpp) against the reference GPT-2 on the
// same weights: the bundled review model, exported to TorchScript by examples/libtorch/export_gpt2.py
// (the CTest fixture "libtorch: export" writes GLASSBOX_TORCHSCRIPT_FILE before these tests run).
// Outputs, gradients, attributions (integrated gradients, exact Shapley, rollout) and probe accuracy
// agree to 1e-4; the conformance kit passes in float32 and float64; bad modules and inputs give
// errors that name the member and the module's method.
// libtorch's headers bring glog, whose CHECK macro would replace Catch's: include them first and drop it.
#include "glassbox/adapters/libtorch.hpp"
#undef CHECK
#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "glassbox/attention/rollout.hpp"
#include "glassbox/attribution/integrated_gradients.hpp"
#include "glassbox/attribution/shapley.hpp"
#include "glassbox/datasets/reviews.hpp"
#include "glassbox/models/gpt2.hpp"
#include "glassbox/probing/activations.hpp"
#include "glassbox/probing/probe.hpp"
#include "glassbox/verify/adapter.hpp"

#ifndef GLASSBOX_TORCHSCRIPT_FILE
#error "tests/libtorch/CMakeLists.txt defines GLASSBOX_TORCHSCRIPT_FILE"
#endif

namespace {

using glassbox::token_sequence;
using glassbox::adapters::libtorch_model;
namespace ds = glassbox::datasets;

const glassbox::models::gpt2& reference() {
  static const auto m = glassbox::models::gpt2::load(GLASSBOX_SOURCE_DIR "/models/reviews");
  return m;
}
const libtorch_model& adapted() {
  static const auto m = libtorch_model::load(GLASSBOX_TORCHSCRIPT_FILE);
  return m;
}

template <class A, class B>
double max_abs_diff(const A& a, const B& b) {
  REQUIRE(a.shape() == b.shape());
  double m = 0;
  auto ia = a.begin();
  for (auto ib = b.begin(); ib != b.end(); ++ia, ++ib)
    m = std::max(m, std::abs(static_cast<double>(*ia) - static_cast<double>(*ib)));
  return m;
}
double max_abs_diff(const std::vector<double>& a, const std::vector<double>& b) {
  REQUIRE(a.size() == b.size());
  double m = 0;
  for (std::size_t i = 0; i < a.size(); ++i) m = std::max(m, std::abs(a[i] - b[i]));
  return m;
}

// The scale attributions are compared at: 1e-4 "agreement" means 1e-4 of the largest |score| (or absolute below 1):
// both models compute in float32, and 50 integration steps of float rounding reach 1e-4 on scores of 5.
double scale(const std::vector<double>& scores) {
  double m = 1;
  for (double s : scores) m = std::max(m, std::abs(s));
  return m;
}

std::vector<token_sequence> some_reviews(std::size_t n, std::uint64_t seed) {
  std::vector<token_sequence> out;
  for (const auto& r : ds::generate_reviews(n, seed)) out.push_back(r.tokens);
  return out;
}

// The contrast of the two labels at the last position, the target the review examples explain.
glassbox::target label_contrast() { return glassbox::target::contrast(ds::review_positive_id, ds::review_negative_id); }

// A small module in TorchScript source: V = 5, d = 3, one block of one head. `forward_body` is the
// body of forward (it may break the contract); `extra` adds methods.
torch::jit::Module tiny_module(const std::string& forward_body, const std::string& extra = "") {
  torch::jit::Module m("tiny");
  m.register_parameter("w", torch::arange(15, torch::kFloat).reshape({5, 3}) / 10.0, false);
  m.define(R"(
def embed(self, ids):
    return self.w[ids]
def forward(self, e, head_mask: Optional[Tensor] = None):
)" + forward_body + extra);
  return m;
}
const std::string good_forward = R"(
    z = torch.matmul(e, self.w.t())
    a = torch.ones(e.size(0), 1, e.size(1), e.size(1)) / e.size(1)
    return z, [a], [e, e]
)";

}  // namespace

TEST_CASE("the adapter reads the module's shape and computes what the reference GPT-2 computes", "[libtorch]") {
  const auto& ref = reference();
  const auto& m = adapted();
  CHECK(m.vocab_size() == ref.vocab_size());
  CHECK(m.n_layer() == 4);
  CHECK(m.n_head() == 4);
  CHECK(m.embedding_size() == 64);
  CHECK(m.max_positions() == 64);
  REQUIRE(m.pad_token().has_value());
  CHECK(*m.pad_token() == 0);
  CHECK(m.has_from_hidden());
  CHECK(m.parameter_count() == ref.parameter_count());

  for (const auto& tokens : some_reviews(6, 41)) {
    CHECK(max_abs_diff(m.embed(tokens), ref.embed(tokens)) == 0);
    CHECK(max_abs_diff(m.logits(tokens), ref.logits(tokens)) < 1e-4);
    CHECK(max_abs_diff(m.hidden_states(tokens), ref.hidden_states(tokens)) < 1e-4);
    CHECK(max_abs_diff(m.attentions(tokens), ref.attentions(tokens)) < 1e-5);
    const std::vector<std::size_t> rows{0, tokens.size() - 1};
    CHECK(max_abs_diff(m.logits_at(tokens, rows), ref.logits_at(tokens, rows)) < 1e-4);
    glassbox::tensor2 mask = xt::ones<float>({4, 4});
    mask(1, 2) = 0;
    mask(3, 0) = 0.5f;
    CHECK(max_abs_diff(m.logits_with_head_mask(tokens, mask), ref.logits_with_head_mask(tokens, mask)) < 1e-4);
    const glassbox::tensor3 h = ref.hidden_states(tokens);
    const glassbox::tensor2 h2 = xt::view(h, 2, xt::all(), xt::all()) * 1.1f;
    CHECK(max_abs_diff(m.logits_from_hidden(tokens, 2, h2), ref.logits_from_hidden(tokens, 2, h2)) < 1e-4);
    const glassbox::tensor2 last = xt::view(h, 4, xt::all(), xt::all());
    CHECK(max_abs_diff(m.decode_hidden(last), ref.decode_hidden(last)) < 1e-4);
  }
  // A batch: one pass, the same as one sequence at a time.
  const auto reviews = some_reviews(40, 7);
  glassbox::token_matrix batch = xt::zeros<glassbox::token_id>({std::size_t{3}, reviews[0].size()});
  for (std::size_t b = 0; b < 3; ++b)
    for (std::size_t i = 0; i < reviews[0].size(); ++i) batch(b, i) = reviews[0][(i + b) % reviews[0].size()];
  const std::vector<std::size_t> rows{reviews[0].size() - 1};
  const glassbox::tensor3 z = m.logits_batch(batch, rows);
  for (std::size_t b = 0; b < 3; ++b) {
    const token_sequence t(batch.data() + b * batch.shape(1), batch.data() + (b + 1) * batch.shape(1));
    const glassbox::tensor2 zb = xt::view(z, b, xt::all(), xt::all());
    CHECK(max_abs_diff(zb, m.logits_at(t, rows)) < 1e-5);
  }
}

TEST_CASE("gradients by autograd equal the reference GPT-2's exact gradients", "[libtorch]") {
  const auto& ref = reference();
  const auto& m = adapted();
  const auto t = label_contrast();
  for (const auto& tokens : some_reviews(4, 43)) {
    const glassbox::tensor2 e = ref.embed(tokens) * 0.7f;
    const auto a = m.embedding_gradient(e, t);
    const auto b = ref.embedding_gradient(e, t);
    CHECK(std::abs(a.value - b.value) < 1e-4);
    CHECK(max_abs_diff(a.gradient, b.gradient) < 1e-4);

    const auto ag = m.attention_gradient(tokens, t);
    const auto bg = ref.attention_gradient(tokens, t);
    CHECK(std::abs(ag.value - bg.value) < 1e-4);
    CHECK(max_abs_diff(ag.gradient, bg.gradient) < 1e-4);

    glassbox::tensor2 mask = xt::ones<float>({4, 4});
    mask(0, 1) = 0.3f;
    const auto am = m.head_mask_gradient(tokens, mask, t);
    const auto bm = ref.head_mask_gradient(tokens, mask, t);
    CHECK(max_abs_diff(am.gradient, bm.gradient) < 1e-4);

    const glassbox::tensor3 hs = ref.hidden_states(tokens);
    const glassbox::tensor2 h = xt::view(hs, 1, xt::all(), xt::all());
    const auto ah = m.hidden_gradient(tokens, 1, h, t);
    const auto bh = ref.hidden_gradient(tokens, 1, h, t);
    CHECK(max_abs_diff(ah.gradient, bh.gradient) < 1e-4);
  }
  // A batch of inputs: one backward, each input's own gradient.
  const auto tokens = some_reviews(1, 44)[0];
  glassbox::tensor3 batch = xt::zeros<float>({std::size_t{3}, tokens.size(), std::size_t{64}});
  const glassbox::tensor2 e = ref.embed(tokens);
  for (std::size_t b = 0; b < 3; ++b) xt::view(batch, b, xt::all(), xt::all()) = e * (0.3f * static_cast<float>(b + 1));
  const auto r = m.embedding_gradient_batch(batch, t);
  REQUIRE(r.values.size() == 3);
  for (std::size_t b = 0; b < 3; ++b) {
    const glassbox::tensor2 eb = xt::view(batch, b, xt::all(), xt::all());
    const auto one = ref.embedding_gradient(eb, t);
    CHECK(std::abs(r.values[b] - one.value) < 1e-4);
    const glassbox::tensor2 gb = xt::view(r.gradients, b, xt::all(), xt::all());
    CHECK(max_abs_diff(gb, one.gradient) < 1e-4);
  }
}

TEST_CASE("the loss and its parameter gradient equal the reference's, parameter by parameter", "[libtorch]") {
  const auto& ref = reference();
  const auto& m = adapted();
  const auto tokens = some_reviews(1, 45)[0];
  const auto example = glassbox::training_example::next_token(tokens);
  CHECK(std::abs(m.loss(example) - ref.loss(example)) < 1e-5);
  const auto a = m.loss_gradient(example);
  const auto b = ref.loss_gradient(example);
  CHECK(std::abs(a.value - b.value) < 1e-5);
  // The module orders its parameters as named_parameters(); the reference as its checkpoint table.
  // Both name them as the checkpoint does (the export keeps GPT-2's names).
  double worst = 0;
  for (const auto& [name, offset] : m.parameter_offsets()) {
    const auto ref_values = ref.parameter(name);
    const auto ref_offset = static_cast<std::size_t>(ref_values.data() - ref.parameters().data());
    for (std::size_t i = 0; i < ref_values.size(); ++i) {
      REQUIRE(m.parameters()[offset + i] == ref_values[i]);
      worst = std::max(worst, std::abs(double(a.gradient(offset + i)) - double(b.gradient(ref_offset + i))));
    }
  }
  CHECK(worst < 1e-5);
}

TEST_CASE("set_parameters changes the module, and a copy has its own parameters", "[libtorch]") {
  libtorch_model m = adapted();  // a deep copy
  const auto tokens = some_reviews(1, 46)[0];
  const glassbox::tensor2 before = m.logits(tokens);
  std::vector<float> p(m.parameters().begin(), m.parameters().end());
  for (auto& x : p) x *= 0.5f;
  m.set_parameters(p);
  CHECK(m.parameters()[10] == p[10]);
  CHECK(max_abs_diff(m.logits(tokens), before) > 1e-2);
  CHECK(max_abs_diff(adapted().logits(tokens), before) == 0);  // the original is untouched
  // The reference with the same halved parameters computes the same logits.
  auto ref = reference();
  std::vector<float> q(ref.parameters().begin(), ref.parameters().end());
  for (auto& x : q) x *= 0.5f;
  ref.set_parameters(q);
  CHECK(max_abs_diff(m.logits(tokens), ref.logits(tokens)) < 1e-4);
  CHECK_THROWS_WITH(m.set_parameters(std::vector<float>(3)),
                    Catch::Contains("set_parameters: parameters must hold 218496 values, got 3"));
}

TEST_CASE("integrated gradients, exact Shapley and rollout through the adapter equal the reference's", "[libtorch]") {
  const auto& ref = reference();
  const auto& m = adapted();
  const auto t = label_contrast();
  for (const auto& tokens : some_reviews(3, 47)) {
    const auto a = glassbox::integrated_gradients(m, tokens, t);
    const auto b = glassbox::integrated_gradients(ref, tokens, t);
    CHECK(max_abs_diff(a.scores, b.scores) < 1e-4 * scale(b.scores));
    CHECK(std::abs(*a.convergence_delta - *b.convergence_delta) < 1e-4 * scale(b.scores));

    const auto ra = glassbox::attention_rollout(m, tokens);
    const auto rb = glassbox::attention_rollout(ref, tokens);
    CHECK(max_abs_diff(ra.matrix, rb.matrix) < 1e-4);
  }
  // Exact Shapley over the words of a short review (2^T coalitions), absent = <pad>.
  token_sequence shortest;
  for (const auto& r : some_reviews(60, 48))
    if (shortest.empty() || r.size() < shortest.size()) shortest = r;
  REQUIRE(shortest.size() <= 12);
  const auto a = glassbox::shapley_exact(m, shortest, t);
  const auto b = glassbox::shapley_exact(ref, shortest, t);
  CHECK(max_abs_diff(a.scores, b.scores) < 1e-4 * scale(b.scores));
  CHECK(std::abs(a.total() - (a.target_value - a.baseline_value)) < 1e-4);  // efficiency
}

TEST_CASE("probe accuracy on the adapter's hidden states equals the reference's", "[libtorch]") {
  std::vector<token_sequence> inputs;
  std::vector<double> labels;
  for (const auto& r : ds::generate_reviews(120, 49)) {
    inputs.push_back(r.tokens);
    labels.push_back(r.true_label == ds::review_positive_id ? 1.0 : 0.0);
  }
  const auto probe = [&](const auto& model) {
    const auto set = glassbox::collect_activations(model, inputs, glassbox::sequence_labels(labels),
                                                   {.pooling = glassbox::activation_pooling::last});
    return glassbox::probe_layers(set, {.logistic = {.max_iterations = 1000}, .control = false, .seed = 3});
  };
  const auto a = probe(adapted());
  const auto b = probe(reference());
  REQUIRE(a.layers.size() == b.layers.size());
  for (std::size_t l = 0; l < a.layers.size(); ++l) {
    CAPTURE(l);
    CHECK(std::abs(*a.layers[l].test_accuracy - *b.layers[l].test_accuracy) <= 1e-4);
    CHECK(std::abs(*a.layers[l].train_accuracy - *b.layers[l].train_accuracy) <= 1e-4);
  }
  CHECK(*a.layers.back().test_accuracy > 0.8);  // the label is readable at the last layer
}

TEST_CASE("the conformance kit passes the adapter in float32 and float64", "[libtorch]") {
  const auto tokens = some_reviews(1, 50)[0];
  const auto f = glassbox::verify_adapter(adapted(), tokens);
  INFO(glassbox::to_string(f));
  CHECK(f.passed());
  const auto d = glassbox::adapters::basic_libtorch_model<double>::load(GLASSBOX_TORCHSCRIPT_FILE);
  const auto r = glassbox::verify_adapter(d, tokens);
  INFO(glassbox::to_string(r));
  CHECK(r.passed());
  // float64 really computes in double: its logits agree with the double reference far below float's rounding.
  const auto ref = glassbox::models::basic_gpt2<double>::load(GLASSBOX_SOURCE_DIR "/models/reviews");
  CHECK(max_abs_diff(d.logits(tokens), ref.logits(tokens)) < 1e-10);
}

TEST_CASE("bad inputs and modules that break the contract give errors naming what is wrong", "[libtorch]") {
  using Catch::Contains;
  const auto& m = adapted();
  CHECK_THROWS_AS(m.logits(token_sequence{}), glassbox::shape_error);
  CHECK_THROWS_WITH(m.logits(token_sequence{}), Contains("logits: the token sequence is empty"));
  CHECK_THROWS_WITH(m.logits(token_sequence{1, 224}), Contains("token 224 at position 1 is outside the vocabulary of 224"));
  CHECK_THROWS_WITH(m.attentions(token_sequence(65, 3)), Contains("65 tokens, more than the model's 64 positions"));
  CHECK_THROWS_WITH(m.logits_with_head_mask(token_sequence{3, 4}, xt::ones<float>({4, 3})),
                    Contains("mask must be [4, 4], got [4, 3]"));
  CHECK_THROWS_WITH(m.logits_from_hidden(token_sequence{3, 4}, 5, xt::zeros<float>({2, 64})),
                    Contains("layer must be <= 4"));

  const auto dir = std::filesystem::temp_directory_path();
  CHECK_THROWS_AS(libtorch_model::load(dir / "no-such-file.pt"), glassbox::io_error);
  const auto text = dir / "glassbox-not-torchscript.pt";
  std::ofstream(text) << "not a zip archive";
  CHECK_THROWS_WITH(libtorch_model::load(text), Contains("is not a TorchScript file libtorch can load"));

  // A module that keeps the contract works, without from_hidden: the intervention members say so.
  const libtorch_model tiny(tiny_module(good_forward));
  CHECK(tiny.vocab_size() == 5);
  CHECK(tiny.n_layer() == 1);
  CHECK(tiny.max_positions() == static_cast<std::size_t>(-1));
  CHECK_FALSE(tiny.pad_token().has_value());
  CHECK_FALSE(tiny.has_from_hidden());
  CHECK(tiny.logits(token_sequence{1, 2})(1, 4) == Approx(0.6 * 1.2 + 0.7 * 1.3 + 0.8 * 1.4));
  CHECK_THROWS_AS(tiny.logits_from_hidden(token_sequence{1}, 0, xt::zeros<float>({1, 3})), glassbox::model_error);
  CHECK_THROWS_WITH(tiny.logits_from_hidden(token_sequence{1}, 0, xt::zeros<float>({1, 3})),
                    Contains("logits_from_hidden: the module has no method from_hidden"));

  // Broken modules, each caught at the boundary with the module's method named.
  CHECK_THROWS_WITH(libtorch_model(tiny_module(R"(
    z = torch.matmul(e, self.w.t())
    a = torch.ones(e.size(0), 1, e.size(1), e.size(1))
    return torch.cat([z, z], 1), [a], [e, e]
)")),
                    Contains("forward returned logits [1, 2, 5], expected [1, 1, 5]"));
  CHECK_THROWS_WITH(libtorch_model(tiny_module(R"(
    z = torch.matmul(e, self.w.t())
    a = torch.ones(e.size(0), 1, e.size(1), e.size(1))
    return z, [a], [e]
)")),
                    Contains("forward returned 1 hidden states, expected 2 (L + 1)"));
  CHECK_THROWS_WITH(libtorch_model(tiny_module(R"(
    z = torch.matmul(e, self.w.t())
    return z, [z], [e, e]
)")),
                    Contains("forward returned attentions [1, 1, 5] for block 0"));
  // A shape that only goes wrong for longer inputs is caught on the call that sees it.
  const libtorch_model late(tiny_module(R"(
    z = torch.matmul(e, self.w.t())
    a = torch.ones(e.size(0), 1, e.size(1), e.size(1)) / e.size(1)
    return z[:, :1], [a], [e, e]
)"));
  CHECK_THROWS_AS(late.logits(token_sequence{1, 2}), glassbox::model_error);
  CHECK_THROWS_WITH(late.logits(token_sequence{1, 2}), Contains("logits: the module's forward returned logits [1, 1, 5], "
                                                                "expected [1, 2, 5]"));
  // An error inside the module is a model_error naming the member and the method.
  const libtorch_model failing(tiny_module(good_forward, R"(
def from_hidden(self, h, layer: int):
    return torch.matmul(h, self.w)
)"));
  CHECK_THROWS_AS(failing.logits_from_hidden(token_sequence{1}, 0, xt::zeros<float>({1, 3})), glassbox::model_error);
  CHECK_THROWS_WITH(failing.logits_from_hidden(token_sequence{1}, 0, xt::zeros<float>({1, 3})),
                    Contains("logits_from_hidden: the module's from_hidden failed"));
  torch::jit::Module half("half");
  half.register_parameter("w", torch::ones({5, 3}, torch::kHalf), false);
  half.define("def embed(self, ids):\n    return self.w[ids]\ndef forward(self, e, head_mask: Optional[Tensor] = None):\n"
              "    return e, [e], [e]\n");
  CHECK_THROWS_AS(libtorch_model(half), glassbox::model_error);
  CHECK_THROWS_WITH(libtorch_model(half), Contains("parameters must be float32 or float64, one is Half"));
  torch::jit::Module no_embed("no_embed");
  no_embed.define("def forward(self, x):\n    return x\n");
  CHECK_THROWS_WITH(libtorch_model(no_embed), Contains("the module has no method embed(ids)"));
}

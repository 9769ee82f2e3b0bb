// Explaining a TorchScript transformer from C++ with the libtorch adapter.
//
// export_gpt2.py (beside this file) scripts the bundled review model as TorchScript, the way a
// model runtime would ship it. This program loads that file with libtorch, checks the adapter with
// the conformance kit, and explains one prediction with integrated gradients and rollout, exactly
// as for the built-in reference GPT-2: every glassbox algorithm takes the adapted module.
//
//   /usr/bin/python3 examples/libtorch/export_gpt2.py models/reviews reviews.pt
//   explain_torchscript reviews.pt ["review text =>"]
//
// Built when CMake finds libtorch (Debian: libtorch-dev); docs/adapters.md explains the contract.
#include "glassbox/adapters/libtorch.hpp"  // first: libtorch's headers (glog) define CHECK

#include <fmt/format.h>

#include <cstdio>
#include <exception>
#include <string>

#include "glassbox/attention/rollout.hpp"
#include "glassbox/attribution/integrated_gradients.hpp"
#include "glassbox/datasets/reviews.hpp"
#include "glassbox/verify/adapter.hpp"

int main(int argc, char** argv) try {
  namespace gd = glassbox::datasets;
  if (argc < 2) {
    fmt::print(stderr, "usage: explain_torchscript FILE.pt [\"review text =>\"]\n");
    return 2;
  }
  const std::string text = argc > 2 ? argv[2] : "the soup was not bland but the service was awful . =>";

  // Load on the CPU in float32; the adapter learns L, H, d and V from the module itself.
  const auto model = glassbox::adapters::libtorch_model::load(argv[1]);
  fmt::print("{}: {} blocks x {} heads, width {}, vocabulary {}, {} parameters\n", argv[1], model.n_layer(),
             model.n_head(), model.embedding_size(), model.vocab_size(), model.parameter_count());

  const glassbox::token_sequence tokens = gd::encode_review(text);

  // First step with any new adapter: the conformance kit (shapes, consistency, finite differences).
  const auto report = glassbox::verify_adapter(model, tokens);
  fmt::print("conformance kit: {} checks passed, {} failed\n", report.count(glassbox::check_status::passed),
             report.count(glassbox::check_status::failed));
  if (!report.passed()) {
    fmt::print("{}", glassbox::to_string(report));
    return 1;
  }

  // The prediction and its explanation: log p(label) - log p(other label) at the last position.
  const glassbox::tensor2 logits = model.logits(tokens);
  const std::size_t last = tokens.size() - 1;
  const bool positive = logits(last, gd::review_positive_id) > logits(last, gd::review_negative_id);
  const auto label = positive ? gd::review_positive_id : gd::review_negative_id;
  const auto other = positive ? gd::review_negative_id : gd::review_positive_id;
  const auto ig = glassbox::integrated_gradients(model, tokens, glassbox::target::contrast(label, other));
  const auto rollout = glassbox::attention_rollout(model, tokens);

  fmt::print("\"{}\" -> {}\n\n{:>12}  {:>10}  {:>8}\n", text, positive ? "positive" : "negative", "token", "IG",
             "rollout");
  for (std::size_t i = 0; i < tokens.size(); ++i)
    fmt::print("{:>12}  {:+10.4f}  {:8.4f}\n", gd::decode_review(glassbox::token_span(&tokens[i], 1)), ig.scores[i], rollout.scores[i]);
  fmt::print("\nIG completeness: sum {:+.4f}, f(input) - f(baseline) {:+.4f}\n", ig.total(),
             ig.target_value - ig.baseline_value);
  std::fflush(stdout);
  // The example doubles as a check: the clause after `but` (awful) decides this review: negative.
  return positive ? 1 : 0;
} catch (const std::exception& e) {
  fmt::print(stderr, "explain_torchscript: {}\n", e.what());
  return 1;
}

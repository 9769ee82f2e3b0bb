// Which components of the bundled model carry a review's sentiment, from C++ (docs/circuits.md):
//
// 1. Activation patching, residual stream: run "the food was bad . =>" (corrupted) with the stream
//    entering block l at position p replaced by its value on "the food was good . =>" (clean), one
//    patch at a time, and print the restored share of the logit difference positive - negative as
//    a layer x position table. At block 0 only the position of the changed word matters (patching it
//    there makes the input the clean one); on the bundled model the word's position still carries
//    most of it entering the last block, whose attention moves it to the marker `=>`.
// 2. Direct logit attribution of logit(positive) - logit(negative) at the marker on the clean
//    review: the embeddings', each head's and each MLP's share, which sum to the model's value.
//
//   circuits_tour [MODEL_DIR]      (default: the bundled model, models/reviews)
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <glassbox/circuits.hpp>
#include <glassbox/datasets/reviews.hpp>
#include <glassbox/models/gpt2.hpp>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  namespace ds = glassbox::datasets;
  const std::string path = argc > 1 ? argv[1] : GLASSBOX_MODELS_DIR "/reviews";
  const auto model = glassbox::models::gpt2::load(path);
  const auto clean = ds::encode_review("the food was good . =>");
  const auto corrupt = ds::encode_review("the food was bad . =>");
  const auto metric = glassbox::target::contrast(ds::review_positive_id, ds::review_negative_id,
                                                 glassbox::target_kind::logit);

  // 1. A residual-stream activation patching sweep.
  const auto r = glassbox::activation_patching(model, clean, corrupt, metric,
                                               {.level = glassbox::patch_level::residual});
  fmt::print("activation patching, residual stream: logit(positive) - logit(negative) at the marker\n");
  fmt::print("clean \"{}\": {:+.3f}   corrupted \"{}\": {:+.3f}   ({} model calls)\n", ds::decode_review(clean),
             r.clean_value, ds::decode_review(corrupt), r.corrupt_value, r.model_calls);
  fmt::print("restored share of the difference (rows: the stream entering block l; columns: positions)\n{:>6}", "");
  for (const auto id : clean) fmt::print(" {:>7}", ds::review_word(id).word);
  fmt::print("\n");
  for (std::size_t i = 0; i < r.layers.size(); ++i) {
    fmt::print("{:>6}", fmt::format("L{}", r.layers[i]));
    for (std::size_t p = 0; p < clean.size(); ++p) fmt::print(" {:>+7.3f}", r.restored(i, p));
    fmt::print("\n");
  }
  // Patching the only changed position at the embeddings makes the corrupted input the clean one.
  const double at_word = r.restored(0, 3);
  if (std::abs(at_word - 1.0) > 1e-3) {
    fmt::print(stderr, "circuits_tour: patching the changed word at block 0 restored {:.6f}, expected 1\n", at_word);
    return 1;
  }

  // 2. Direct logit attribution: why "positive" and not "negative"?
  const auto d = glassbox::direct_logit_attribution(model, clean, ds::review_positive_id, ds::review_negative_id);
  fmt::print("\ndirect logit attribution of logit(positive) - logit(negative) at the marker of \"{}\":\n",
             ds::decode_review(clean));
  double largest = 0;
  for (const auto& c : d.components) largest = std::max(largest, std::abs(c.contribution));
  for (const auto& c : d.components) {
    const auto n = static_cast<std::size_t>(std::lround(20.0 * std::abs(c.contribution) / largest));
    fmt::print("{:>14} {:>+9.3f} {:>20}|{}\n", c.name, c.contribution, c.contribution < 0 ? std::string(n, '#') : "",
               c.contribution > 0 ? std::string(n, '#') : "");
  }
  fmt::print("sum of the shares {:+.4f}; the model's logit difference {:+.4f} (final LayerNorm scale {:.4f}, frozen)\n",
             d.total, d.logit_diff, d.final_scale);
  return std::abs(d.total - d.logit_diff) < 1e-3 ? 0 : 1;
}

// Reading the bundled model's residual stream from C++: where does the label of a review appear,
// and can a sentiment direction change it?
//
// 1. The logit lens decodes each layer's residual stream at the marker `=>` through the model's
//    final LayerNorm and unembedding, and prints p(positive) and p(negative) per layer. For
//    "the food was not good . =>" the label appears only after the last block.
// 2. A reading vector for sentiment is read from antonym pairs (a review, and the same review with
//    its deciding word replaced by its antonym) at the last hidden state, and added at the marker
//    with growing alpha: the prediction flips from negative to positive.
//
//   lens_and_steering [MODEL_DIR]      (default: the bundled model, models/reviews)
#include <fmt/format.h>

#include <cmath>
#include <cstdio>
#include <glassbox/datasets/reviews.hpp>
#include <glassbox/models/gpt2.hpp>
#include <glassbox/representations.hpp>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  namespace ds = glassbox::datasets;
  const std::string path = argc > 1 ? argv[1] : GLASSBOX_MODELS_DIR "/reviews";
  const auto model = glassbox::models::gpt2::load(path);
  const auto tokens = ds::encode_review("the food was not good . =>");
  const std::size_t L = model.config().n_layer;

  // 1. The logit lens at the marker.
  const auto lens = glassbox::logit_lens(model, tokens, {.top_k = 1, .target = ds::review_positive_id});
  const auto negative = glassbox::logit_lens(model, tokens, {.top_k = 1, .target = ds::review_negative_id});
  fmt::print("logit lens of \"the food was not good . =>\" at the marker:\n");
  fmt::print("{:>6}  {:>12}  {:>12}  {:>10}\n", "layer", "p(positive)", "p(negative)", "KL to out");
  for (std::size_t i = 0; i < lens.layers.size(); ++i) {
    const auto& cell = lens.layers[i].positions.back();
    fmt::print("{:>6}  {:>12.4f}  {:>12.4f}  {:>10.4f}\n", lens.layers[i].layer, cell.target_p,
               negative.layers[i].positions.back().target_p, cell.kl_to_final);
  }

  // 2. A sentiment vector from antonym pairs, read at the last hidden state (index L).
  std::vector<glassbox::contrast_pair> pairs;
  for (const auto& r : ds::generate_reviews(200, /*seed=*/4)) {
    if (r.truth.deciding_words.size() != 1) continue;
    glassbox::token_sequence other = r.tokens;
    const std::size_t w = r.truth.deciding_words.front();
    other[w] = ds::review_antonym(other[w]);
    if (r.true_label == ds::review_positive_id)
      pairs.push_back({r.tokens, other});
    else
      pairs.push_back({other, r.tokens});
  }
  const auto vector = glassbox::reading_vectors(model, pairs, {.layers = {L}}).front();
  fmt::print("\nsentiment vector at layer {}: {} pairs, explains {:.1f}% of their differences, orders {:.1f}%\n", L,
             pairs.size(), 100 * vector.explained, 100 * vector.pair_accuracy);
  fmt::print("{:>8}  {:>12}  {:>12}\n", "alpha", "p(positive)", "p(negative)");
  bool flipped = false;
  for (double c : {0.0, 0.25, 0.5, 1.0}) {
    const double alpha = c * vector.mean_separation;
    const auto z = glassbox::steered_logits(model, tokens, L, vector.direction,
                                            {.alpha = alpha, .last_position = true});
    const std::size_t t = z.shape(0) - 1;
    double sum = 0;
    for (std::size_t v = 0; v < z.shape(1); ++v) sum += std::exp(double(z(t, v)) - z(t, ds::review_positive_id));
    const double pp = 1 / sum, pn = std::exp(double(z(t, ds::review_negative_id)) - z(t, ds::review_positive_id)) / sum;
    fmt::print("{:>8.2f}  {:>12.4f}  {:>12.4f}\n", alpha, pp, pn);
    flipped = flipped || pp > pn;
  }
  if (!flipped) {
    std::fprintf(stderr, "lens_and_steering: the sentiment vector did not flip the prediction\n");
    return 1;
  }
  return 0;
}

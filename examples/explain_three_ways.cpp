// Explaining one prediction three ways.
//
// The bundled model (models/reviews: a 4-layer GPT-2 trained on the synthetic review language of
// glassbox::datasets) reads a review and predicts the label token after the marker `=>`. This
// program explains that prediction with three attribution methods that ask the model different
// questions about the same scalar, log p(predicted label) - log p(the other label):
//
//   integrated gradients   how it changes along the straight path from zero embeddings to the
//                          input (gradients; completeness: the scores sum to the change)
//   occlusion              how much it drops when each token alone is replaced by the pad token
//   KernelSHAP             each token's Shapley value in the game where absent tokens are pads
//                          (efficiency: the values sum to f(input) - f(all pads))
//
// and prints them side by side, with the tokens the review language's rule says decide the label
// (its rationale, known exactly for this synthetic language) marked with '*'. A contrast of the
// two labels rather than log p(label) alone, because a confident prediction saturates: with
// p = 0.9998 no single token can move log p by more than 2e-4, and occlusion would see nothing.
// The program fails if a method breaks the property it guarantees.
//
//   explain_three_ways [model directory] ["review text =>"]
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include "glassbox/attribution/integrated_gradients.hpp"
#include "glassbox/attribution/kernel_shap.hpp"
#include "glassbox/attribution/occlusion.hpp"
#include "glassbox/datasets/reviews.hpp"
#include "glassbox/models/gpt2.hpp"

#ifndef GLASSBOX_MODELS_DIR
#define GLASSBOX_MODELS_DIR "models"  // examples/CMakeLists.txt points this at the source tree's models/
#endif

int main(int argc, char** argv) try {
  namespace gd = glassbox::datasets;
  const std::string model_dir = argc > 1 ? argv[1] : GLASSBOX_MODELS_DIR "/reviews";
  const std::string text = argc > 2 ? argv[2] : "the soup was not bland but the service was awful . =>";

  const auto model = glassbox::models::gpt2::load(model_dir);
  const glassbox::token_sequence tokens = gd::encode_review(text);  // words of the review language to ids

  // The prediction: the more likely of the two label tokens after the marker.
  const glassbox::tensor2 logits = model.logits(tokens);
  const std::size_t last = tokens.size() - 1;
  const bool positive = logits(last, gd::review_positive_id) > logits(last, gd::review_negative_id);
  const glassbox::token_id label = positive ? gd::review_positive_id : gd::review_negative_id;
  const glassbox::token_id other = positive ? gd::review_negative_id : gd::review_positive_id;
  const auto explained = glassbox::target::contrast(label, other);  // log p(label) - log p(other), last position

  // Three methods, each with the defaults of its reference implementation (Captum, shap).
  glassbox::integrated_gradients_options ig;  // 50 Gauss-Legendre steps from zero embeddings
  const auto by_gradients = glassbox::integrated_gradients(model, tokens, explained, ig);

  glassbox::occlusion_options occ;
  occ.baseline = glassbox::baseline::pad();  // an occluded token becomes the pad token
  const auto by_occlusion = glassbox::occlusion(model, tokens, explained, occ);

  glassbox::kernel_shap_options shap;
  shap.baseline = glassbox::baseline::pad();
  shap.seed = 7;  // the sampled coalitions; with 12 tokens the 4094 coalitions are all evaluated
  const auto by_shapley = glassbox::kernel_shap(model, tokens, explained, shap);

  // The ground truth of the synthetic language: which tokens decide the label.
  const gd::review_analysis truth = gd::label_of(tokens);
  std::vector<bool> rationale(tokens.size(), false);
  for (const std::size_t i : truth.rationale) rationale[i] = true;

  fmt::print("input       {}\n", text);
  fmt::print("prediction  {}; the rule's label: {}\n", positive ? "positive" : "negative",
             truth.polarity > 0 ? "positive" : truth.polarity < 0 ? "negative" : "none");
  fmt::print("explained   {}\n\n", explained.describe());
  fmt::print("{:>3}  {:<12} {:>12} {:>12} {:>12}\n", "", "token", "int. grad.", "occlusion", "KernelSHAP");
  for (std::size_t i = 0; i < tokens.size(); ++i)
    fmt::print("{:>3}  {:<12} {:>12.4f} {:>12.4f} {:>12.4f}\n", rationale[i] ? "*" : "", gd::review_word(tokens[i]).word,
               by_gradients.scores[i], by_occlusion.scores[i], by_shapley.scores[i]);
  fmt::print("{:>3}  {:<12} {:>12.4f} {:>12.4f} {:>12.4f}\n", "", "sum", by_gradients.total(), by_occlusion.total(),
             by_shapley.total());
  fmt::print("\nf(input) - f(baseline): integrated gradients {:.4f} (gap {:.1e}), KernelSHAP {:.4f} (gap {:.1e})\n",
             by_gradients.target_value - by_gradients.baseline_value, by_gradients.convergence_delta.value_or(NAN),
             by_shapley.target_value - by_shapley.baseline_value, by_shapley.convergence_delta.value_or(NAN));
  fmt::print("model evaluations: {}, {}, {}\n", by_gradients.model_evaluations, by_occlusion.model_evaluations,
             by_shapley.model_evaluations);

  // Each method's guarantee: integrated gradients' completeness up to the quadrature error (50
  // Gauss-Legendre nodes: well under 5% here), KernelSHAP's efficiency exactly (it is a constraint
  // of its least-squares fit).
  const double ig_change = by_gradients.target_value - by_gradients.baseline_value;
  const double shap_change = by_shapley.target_value - by_shapley.baseline_value;
  const bool complete = std::abs(by_gradients.total() - ig_change) <= 0.05 * std::abs(ig_change);
  const bool efficient = std::abs(by_shapley.total() - shap_change) <= 1e-6 * std::max(1.0, std::abs(shap_change));
  fmt::print("completeness of integrated gradients: {}; efficiency of KernelSHAP: {}\n", complete ? "yes" : "NO",
             efficient ? "yes" : "NO");
  return complete && efficient ? 0 : 1;
} catch (const std::exception& e) {
  std::fprintf(stderr, "explain_three_ways: %s\n", e.what());
  return 1;
}

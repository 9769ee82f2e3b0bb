// Scoring your own explanation against your own rationale.
//
// An attribution method gives one score per token; whether those scores are any good is a separate
// question with two halves. Faithfulness: does the model's output really depend on the top-scored
// tokens (ERASER's comprehensiveness and sufficiency, deletion and insertion curves, infidelity,
// max-sensitivity)? Plausibility: do the top-scored tokens match the tokens a person (here: the rule
// of the synthetic review language) says decide the label (precision / recall / F1 of the top-k,
// AUPRC, the rank of the deciding word)? This program explains one prediction of the bundled model
// with integrated gradients and with occlusion, and scores both with glassbox::score_explanation.
//
//   score_explanation [model directory] ["review text =>"]
#include <fmt/format.h>

#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include "glassbox/attribution/integrated_gradients.hpp"
#include "glassbox/attribution/occlusion.hpp"
#include "glassbox/datasets/reviews.hpp"
#include "glassbox/evaluation.hpp"
#include "glassbox/models/gpt2.hpp"

#ifndef GLASSBOX_MODELS_DIR
#define GLASSBOX_MODELS_DIR "models"  // examples/CMakeLists.txt points this at the source tree's models/
#endif

int main(int argc, char** argv) try {
  namespace gd = glassbox::datasets;
  const std::string model_dir = argc > 1 ? argv[1] : GLASSBOX_MODELS_DIR "/reviews";
  const std::string text = argc > 2 ? argv[2] : "the pasta was excellent but the service was not very friendly . =>";

  const auto model = glassbox::models::gpt2::load(model_dir);
  const glassbox::token_sequence tokens = gd::encode_review(text);
  const gd::review_analysis truth = gd::label_of(tokens);  // your rationale: here, the language's rule
  if (truth.polarity == 0) {
    std::fprintf(stderr, "score_explanation: the review has no label, so no rationale to score against\n");
    return 1;
  }
  const glassbox::token_id label = truth.polarity > 0 ? gd::review_positive_id : gd::review_negative_id;
  const glassbox::token_id other = truth.polarity > 0 ? gd::review_negative_id : gd::review_positive_id;

  // Your explanations: any per-token scores. Explained quantity: log p(label) - log p(other).
  const auto why = glassbox::target::contrast(label, other);
  const auto by_gradients = glassbox::integrated_gradients(model, tokens, why);
  const auto by_occlusion = glassbox::occlusion(model, tokens, why, {.baseline = glassbox::baseline::pad()});

  // Scored as ERASER does: f = the probability of the label at the marker; removed tokens are deleted.
  const auto erased = glassbox::target::probability(label);
  glassbox::score_options options;
  options.plausibility.deciding = truth.deciding_words;
  options.plausibility.length = truth.review_length;  // the marker does not compete
  options.faithfulness.steps = 10;
  options.run_infidelity = false;  // infidelity compares scores with changes of the target they explain: below

  fmt::print("input      {}\nlabel      {} (p = {:.4f}); rationale:", text, truth.polarity > 0 ? "positive" : "negative",
             glassbox::rationale_faithfulness(model, tokens, erased, truth.rationale).full_value);
  for (std::size_t i : truth.rationale) fmt::print(" {}", gd::review_word(tokens[i]).word);
  fmt::print("\n\n{:<36} {:>12} {:>12}\n", "metric", "int. grad.", "occlusion");
  const auto a = glassbox::score_explanation(model, tokens, erased, by_gradients.scores, truth.rationale, options);
  const auto b = glassbox::score_explanation(model, tokens, erased, by_occlusion.scores, truth.rationale, options);
  auto row = [](const char* name, double x, double y) { fmt::print("{:<36} {:>12.4f} {:>12.4f}\n", name, x, y); };
  row("comprehensiveness of the rationale", a.rationale->comprehensiveness, b.rationale->comprehensiveness);
  row("sufficiency of the rationale", a.rationale->sufficiency, b.rationale->sufficiency);
  row("AOPC comprehensiveness (higher)", a.aopc.comprehensiveness, b.aopc.comprehensiveness);
  row("AOPC sufficiency (lower)", a.aopc.sufficiency, b.aopc.sufficiency);
  row("deletion area (lower)", a.deletion->area, b.deletion->area);
  row("insertion area (higher)", a.insertion->area, b.insertion->area);
  // Infidelity asks whether the scores add up to the change of the quantity they explain (the contrast).
  row("infidelity, pad subsets (lower)", glassbox::infidelity(model, tokens, why, by_gradients.scores).value,
      glassbox::infidelity(model, tokens, why, by_occlusion.scores).value);
  row("top-k precision", a.plausibility->precision, b.plausibility->precision);
  row("top-k F1", a.plausibility->f1, b.plausibility->f1);
  row("AUPRC", a.plausibility->auprc, b.plausibility->auprc);
  row("rank of the deciding word (1 best)", a.plausibility->deciding_rank, b.plausibility->deciding_rank);
  row("model evaluations", static_cast<double>(a.model_evaluations), static_cast<double>(b.model_evaluations));

  // Agreement of the two explanations, and the stability of integrated gradients under small noise
  // on the input embeddings (Captum's sensitivity_max defaults: radius 0.02, 10 samples).
  fmt::print("\nagreement: Spearman {:.3f}, Kendall tau-b {:.3f}, top-3 overlap {:.2f}\n",
             glassbox::spearman(by_gradients.scores, by_occlusion.scores),
             glassbox::kendall_tau(by_gradients.scores, by_occlusion.scores),
             glassbox::top_k_overlap(by_gradients.scores, by_occlusion.scores, 3));
  const glassbox::integrated_gradients_options ig{.steps = 16};
  const auto sensitivity = glassbox::max_sensitivity(model, tokens, [&](const glassbox::tensor2& e) {
    return glassbox::attribute_embeddings(model, tokens, std::span<const glassbox::tensor2>(&e, 1), why, ig,
                                          ig.execution)
        .scores[0];
  });
  fmt::print("max-sensitivity of integrated gradients (16 steps): {:.4f}\n", sensitivity.value);
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "score_explanation: %s\n", e.what());
  return 1;
}

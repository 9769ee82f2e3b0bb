// Which training reviews made the bundled model label a review the way it did? EK-FAC influence
// (Grosse et al. 2023, as Kronfluence computes it) on a small training set of the review language.
//
// The program loads the bundled model (models/reviews, or the directory given as the first
// argument), draws 400 training reviews of its language, fits EK-FAC factors on them, and asks
// which of them most helped and most harmed the model's prediction for one query review: scores
// s(q, n) > 0 mean that up-weighting review n lowers the query's loss, through the tracked layers
// (every linear layer of the blocks; embeddings, LayerNorms and the tied unembedding are not
// tracked, as in Kronfluence). For the top helpful review it also shows which of its tokens carry
// the score (per-token influence). It runs in a few seconds.
#include <fmt/format.h>

#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "glassbox/datasets/reviews.hpp"
#include "glassbox/influence/kfac.hpp"
#include "glassbox/models/gpt2.hpp"

#ifndef GLASSBOX_MODELS_DIR
#define GLASSBOX_MODELS_DIR "models"  // examples/CMakeLists.txt points this at the source tree's models/
#endif

int main(int argc, char** argv) {
  namespace gd = glassbox::datasets;
  // The bundled model: the first argument, else models/reviews.
  const std::filesystem::path path =
      argc > 1 ? std::filesystem::path(argv[1]) : std::filesystem::path(GLASSBOX_MODELS_DIR) / "reviews";
  const auto model = glassbox::models::gpt2::load(path);

  // 400 training reviews of the bundled model's language.
  const auto reviews = gd::generate_reviews(400, 7);
  std::vector<glassbox::training_example> train;
  for (const auto& r : reviews) train.push_back(gd::to_training_example(r));

  // EK-FAC factors over every linear layer, with labels sampled from the model (the true Fisher).
  const glassbox::kfac_factors factors =
      glassbox::fit_kfac_factors(model, train, {.method = glassbox::factor_method::ekfac, .seed = 1});

  // The query: a review and the label the model predicts for it; its measurement is the loss of that label.
  const auto tokens = gd::encode_review("the food was not bad but the service was terrible . =>");
  const auto z = model.logits_at(tokens, std::vector<std::size_t>{tokens.size() - 1});
  const glassbox::token_id label =
      z(0, gd::review_positive_id) >= z(0, gd::review_negative_id) ? gd::review_positive_id : gd::review_negative_id;
  const std::vector<glassbox::measurement> query{
      glassbox::measurement::loss(glassbox::training_example::classification(tokens, label))};

  const auto result = glassbox::kfac_influence(model, factors, query, train, {.common = {.top_k = 5}});
  fmt::print("query: {} {}   (loss {:.4f})\n", gd::decode_review(tokens), gd::decode_review(std::vector{label}),
             result.query_values[0]);
  auto show = [&](const char* title, const std::vector<glassbox::influence_entry>& entries) {
    fmt::print("\n{}\n", title);
    for (const auto& e : entries) {
      const auto& r = reviews[e.index];
      fmt::print("  {:+.3e}  #{:<3} {:<8}{} {}\n", e.score, e.index, gd::decode_review(std::vector{r.label}),
                 r.flipped ? " (flipped)" : "", r.text());
    }
  };
  show("most helpful training reviews (they lower the query's loss):", result.top[0]);
  show("most harmful training reviews (they raise it):", result.bottom[0]);

  // Per-token influence of the most helpful review: each token's row of sum_t g_t^T P(q) a_t.
  const std::size_t best = result.top[0][0].index;
  const auto tokens_influence = glassbox::kfac_token_influence(model, factors, query, train[best], best);
  fmt::print("\nper-token influence of review #{} (sums to {:+.3e}):\n ", best, tokens_influence.totals[0]);
  for (std::size_t t = 0; t < train[best].tokens.size(); ++t)
    fmt::print(" {}[{:+.1e}]", gd::decode_review(std::vector{train[best].tokens[t]}), tokens_influence.scores(0, t));
  fmt::print("\n");
  return 0;
}

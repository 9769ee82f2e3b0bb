// Probing the bundled model's layers from C++: where does a sentiment word's representation say
// whether its polarity is flipped by a negator? The review language knows the truth for every
// token (datasets/reviews.hpp), so the probe's labels are exact.
//
// For 400 reviews of seed 2, the hidden states of every layer are collected at each sentiment
// word, labelled with the word's effective polarity (after negation). A logistic probe per layer
// (scikit-learn's objective, C = 1) is trained on 80% of the reviews and tested on 10%; a control
// task (each word type gets a random label, Hewitt & Liang 2019) measures what the probe learns
// by memorising word types, and selectivity is the difference. The output is a table, one row
// per layer: at layer 0 the probe can only read the word itself (its written polarity), so it is
// wrong on negated words; once a layer has brought in the negator, accuracy rises.
//
//   probe_layers [MODEL_DIR]      (default: the bundled model, models/reviews)
#include <fmt/format.h>

#include <cmath>
#include <cstdio>
#include <glassbox/datasets/reviews.hpp>
#include <glassbox/models/gpt2.hpp>
#include <glassbox/probing.hpp>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  namespace ds = glassbox::datasets;
  const std::string path = argc > 1 ? argv[1] : GLASSBOX_MODELS_DIR "/reviews";
  const auto model = glassbox::models::gpt2::load(path);

  // Reviews with their ground truth; one label per sentiment word (NaN leaves other tokens out).
  const auto reviews = ds::generate_reviews(400, /*seed=*/2);
  std::vector<glassbox::token_sequence> inputs;
  std::vector<std::vector<double>> labels;
  for (const auto& r : reviews) {
    inputs.push_back(r.tokens);
    std::vector<double>& row = labels.emplace_back(r.tokens.size(), std::nan(""));
    for (std::size_t p = 0; p < r.truth.review_length; ++p)
      if (r.truth.properties[p].is_sentiment) row[p] = r.truth.properties[p].effective_polarity > 0 ? 1.0 : 0.0;
  }
  const auto set =
      glassbox::collect_activations(model, inputs,
                                    glassbox::token_labels(std::move(labels), glassbox::label_kind::classes,
                                                           {"negative", "positive"}, "effective_polarity"));

  // One probe per layer (hidden-state index 0 = embeddings, 4 = after the last block). The words
  // are nearly separable after layer 0, so the solver needs more than scikit-learn's default 100
  // iterations to converge (it says so in result.warnings otherwise).
  const auto result = glassbox::probe_layers(set, {.logistic = {.max_iterations = 1000}, .seed = 1});
  fmt::print("effective polarity of {} sentiment words ({} train / {} test rows; majority class {:.3f})\n", set.rows(),
             result.train_rows, result.test_rows, *result.majority_accuracy);
  fmt::print("layer  train acc  test acc  control acc  selectivity  iterations\n");
  for (const auto& l : result.layers)
    fmt::print("{:5}  {:9.3f}  {:8.3f}  {:11.3f}  {:+11.3f}  {:10}\n", l.layer, *l.train_accuracy, *l.test_accuracy,
               *l.control_accuracy, *l.selectivity, l.iterations);
  std::fflush(stdout);
  for (const auto& w : result.warnings) fmt::print(stderr, "warning: {}\n", w);

  // The example doubles as a check: the last layer must read the effective polarity well.
  return *result.layers.back().test_accuracy > 0.9 ? 0 : 1;
}

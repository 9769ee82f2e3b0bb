// A first explanation, as the README's example but on the bundled model (models/reviews): why does
// the model call this review negative? Integrated gradients and occlusion, one score per token.
// The "user flags" tests build this program with the compilers and flags users pick
// (docs/building.md, "Compilers and flags that are tested") and compare what each build prints.
//
//   first_explanation                 prints the scores, one per line
//   first_explanation --compare FILE  also compares them with FILE (another build's output); exit
//                                     status 1 if any differs by more than float rounding allows
#include <cmath>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "glassbox/attribution.hpp"
#include "glassbox/datasets/reviews.hpp"
#include "glassbox/models/gpt2.hpp"

int main(int argc, char** argv) {
  const auto model = glassbox::models::gpt2::load(GLASSBOX_MODELS_DIR "/reviews");
  const auto tokens = glassbox::datasets::encode_review("the pasta was excellent but the service was not very friendly . =>");
  const auto why = glassbox::target::log_probability(glassbox::datasets::review_negative_id);
  std::vector<double> scores;
  for (const auto& r : {glassbox::integrated_gradients(model, tokens, why), glassbox::occlusion(model, tokens, why)})
    scores.insert(scores.end(), r.scores.begin(), r.scores.end());
  for (double s : scores) std::printf("%.9g\n", s);
  if (argc == 3 && std::string(argv[1]) == "--compare") {
    std::ifstream in(argv[2]);
    std::vector<double> other;
    for (double x = 0; in >> x;) other.push_back(x);
    if (other.size() != scores.size()) {
      std::fprintf(stderr, "first_explanation: %s has %zu scores, this build %zu\n", argv[2], other.size(), scores.size());
      return 1;
    }
    // Different compilers contract and vectorise float arithmetic differently: scores of order 1
    // agree to about 1e-6; 1e-4 leaves room and still catches any real difference.
    for (std::size_t i = 0; i < scores.size(); ++i)
      if (std::abs(scores[i] - other[i]) > 1e-4 * std::max(1.0, std::abs(other[i]))) {
        std::fprintf(stderr, "first_explanation: score %zu is %.9g here and %.9g in %s\n", i, scores[i], other[i], argv[2]);
        return 1;
      }
    std::fprintf(stderr, "first_explanation: %zu scores agree with %s\n", scores.size(), argv[2]);
  }
  return 0;
}

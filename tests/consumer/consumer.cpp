// The program both consumer projects build: it uses glassbox as a user would and checks a value
// it computes itself. Exit status 0 means the library was found, compiled, linked and works.
#include <cmath>
#include <cstdio>
#include <glassbox/glassbox.hpp>
#include <glassbox/models/linear_bag.hpp>
#include <string_view>
#include <vector>

static_assert(glassbox::check_differentiable_model<glassbox::models::linear_bag>());

int main() {
  const auto model = glassbox::models::linear_bag::random(/*vocab=*/6, /*width=*/3, /*classes=*/4, /*seed=*/11);
  const glassbox::token_sequence tokens = {1, 4, 2};
  const auto explained = glassbox::target::logit(/*token=*/2);  // the logit of class 2 at the last position

  const std::vector<glassbox::token_sequence> inputs = {tokens};
  const double value = glassbox::evaluate_target(model, inputs, explained).front();

  // The same logit by hand: (sum_i E[token_i]) . W[:, 2] + b[2], in double.
  double expected = model.bias()(2);
  for (const auto token : tokens)
    for (std::size_t j = 0; j < model.width(); ++j)
      expected += double{model.embedding_matrix()(static_cast<std::size_t>(token), j)} * model.weights()(j, 2);

  std::printf("glassbox %s: %s = %.6f (expected %.6f)\n", glassbox::version, explained.describe().c_str(), value,
              expected);
  // float storage: |value| ~ 5, so 1e-4 leaves room for float rounding of the sums.
  const bool ok = std::abs(value - expected) < 1e-4 && std::string_view(glassbox::version) == GLASSBOX_EXPECTED_VERSION;
  return ok ? 0 : 1;
}

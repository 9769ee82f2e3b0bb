// The linear datamodeling score (LDS; Park et al. 2023, as Kronfluence and Grosse et al. 2023 use
// it) on the review task (issue 14). A GPT-2 is trained on N reviews; influence scores s(q, n) of Q
// held-out queries (measurement: the query's loss) are computed from it. Then M random subsets of
// half the training set are drawn, a model is retrained on each from the same initialisation with
// the same recipe, and the query losses are measured. Per query, the LDS is the Spearman correlation
// over the subsets between the predicted  sum_{n in S} s(q, n)  and the actual  -loss_q(model_S)
// (positive scores are helpful: they predict a lower loss); the table reports its mean over queries.
// Kronfluence reports 0.44 for EK-FAC and 0.12 for identity on GPT-2 / WikiText.
//
//   influence_lds_bench [--train N] [--queries Q] [--subsets M] [--layers L] [--width D]
//                       [--epochs E] [--lr LR] [--seed S] [--damping LAMBDA]
//
// Defaults: 2,000 training reviews of the single-clause language (no contrast, negation or
// intensifiers, at most 20 words), 50 queries of the same language, 100 subsets, a 2-layer, 2-head,
// 32-wide GPT-2 trained 30 epochs with Adam (lr 3e-3, batch 32), EK-FAC / K-FAC / diagonal with
// sampled labels and damping 0.1 x mean(Lambda) per layer on all linear layers, TracInCP over 5
// checkpoints of the full run. Every retraining is deterministic (same initialisation, the subset
// in a seeded order), so the only randomness across subsets is which examples they hold.
#include <fmt/format.h>

#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "glassbox/datasets/reviews.hpp"
#include "glassbox/influence/kfac.hpp"
#include "glassbox/influence/tracin.hpp"
#include "influence_bench_common.hpp"

namespace {

using namespace glassbox;

struct settings {
  std::size_t train = 2000, queries = 50, subsets = 100, layers = 2, width = 32, heads = 2;
  std::uint64_t seed = 1;
  std::optional<double> damping;
  bench::training_recipe recipe{.epochs = 30, .batch = 32, .learning_rate = 3e-3, .checkpoints = 5};
};

int usage() {
  std::fprintf(stderr,
               "usage: influence_lds_bench [--train N] [--queries Q] [--subsets M] [--layers L] [--width D] "
               "[--epochs E] [--lr LR] [--seed S] [--damping LAMBDA]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  const pass_threads_scope one_thread(1);  // direct model calls (training) on one thread
  settings s;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (i + 1 >= argc) return usage();
    const char* v = argv[++i];
    if (a == "--train") s.train = std::strtoull(v, nullptr, 10);
    else if (a == "--queries") s.queries = std::strtoull(v, nullptr, 10);
    else if (a == "--subsets") s.subsets = std::strtoull(v, nullptr, 10);
    else if (a == "--layers") s.layers = std::strtoull(v, nullptr, 10);
    else if (a == "--width") s.width = std::strtoull(v, nullptr, 10);
    else if (a == "--epochs") s.recipe.epochs = std::strtoull(v, nullptr, 10);
    else if (a == "--lr") s.recipe.learning_rate = std::strtod(v, nullptr);
    else if (a == "--seed") s.seed = std::strtoull(v, nullptr, 10);
    else if (a == "--damping") s.damping = std::strtod(v, nullptr);
    else return usage();
  }
  datasets::review_options ro;
  ro.contrast_rate = 0;
  ro.negation_rate = 0;
  ro.intensifier_rate = 0;
  ro.max_length = 20;
  const datasets::review_generator gen(ro);
  std::vector<training_example> train, queries_examples;
  for (const auto& r : gen.generate(s.train, 200 + s.seed)) train.push_back(datasets::to_training_example(r));
  for (const auto& r : gen.generate(s.queries, 2)) queries_examples.push_back(datasets::to_training_example(r));
  std::vector<measurement> queries;
  for (const auto& q : queries_examples) queries.push_back(measurement::loss(q));

  std::printf("Linear datamodeling score: %zu training reviews, %zu queries, %zu half subsets; GPT-2 %zu layers x %zu "
              "wide, %zu epochs, lr %g\n\n",
              s.train, s.queries, s.subsets, s.layers, s.width, s.recipe.epochs, s.recipe.learning_rate);
  const auto init = models::gpt2::random(bench::review_config(s.layers, s.heads, s.width), s.seed);
  bench::training_recipe recipe = s.recipe;
  recipe.seed = s.seed;
  bench::stopwatch sw;
  auto full = bench::train_reviews(init, train, recipe);
  double full_loss = 0;
  for (const auto& q : queries_examples) full_loss += full.model.loss(q);
  std::printf("full model: trained in %.1f s, final training loss %.3f, mean query loss %.3f\n", sw.wall(),
              full.final_loss, full_loss / static_cast<double>(s.queries));

  // Scores of every method, [Q, N].
  const execution_options exec{.batch_size = 32, .threads = 2};
  std::vector<std::pair<std::string, tensor2>> methods;
  for (auto method : {factor_method::ekfac, factor_method::kfac, factor_method::diagonal, factor_method::identity}) {
    const auto f = fit_kfac_factors(full.model, train, {.method = method, .damping = s.damping, .seed = s.seed,
                                                        .execution = exec});
    methods.emplace_back(std::string(to_string(method)),
                         kfac_influence(full.model, f, queries, train, {.common = {.top_k = 0, .execution = exec}}).scores);
  }
  methods.emplace_back(fmt::format("tracin ({} checkpoints)", full.checkpoints.size()),
                       tracin_influence(full.model, full.checkpoints, queries, train,
                                        {.common = {.top_k = 0, .execution = exec}})
                           .scores);

  // Retrain on M random half subsets; record the query losses.
  std::vector<std::vector<std::size_t>> subsets(s.subsets);
  std::vector<std::vector<double>> losses(s.subsets, std::vector<double>(s.queries));
  bench::stopwatch rt;
  for (std::size_t m = 0; m < s.subsets; ++m) {
    std::vector<std::size_t> all(s.train);
    for (std::size_t n = 0; n < s.train; ++n) all[n] = n;
    rng g = rng(s.seed * 7919 + 13).fork(m);
    g.shuffle(all.begin(), all.end());
    subsets[m].assign(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(s.train / 2));
    std::vector<training_example> part;
    for (auto n : subsets[m]) part.push_back(train[n]);
    bench::training_recipe r = recipe;
    r.checkpoints = 0;
    const auto model = bench::train_reviews(init, part, r).model;
    for (std::size_t q = 0; q < s.queries; ++q) losses[m][q] = model.loss(queries_examples[q]);
    if ((m + 1) % 10 == 0) std::fprintf(stderr, "retrained %zu of %zu subsets (%.0f s)\n", m + 1, s.subsets, rt.wall());
  }
  std::printf("retraining: %zu models in %.1f s\n\n", s.subsets, rt.wall());

  std::printf("| method | LDS (mean Spearman over queries) | queries with LDS > 0 |\n|---|---|---|\n");
  for (const auto& [name, scores] : methods) {
    double total = 0;
    std::size_t positive = 0;
    for (std::size_t q = 0; q < s.queries; ++q) {
      std::vector<double> predicted(s.subsets), actual(s.subsets);
      for (std::size_t m = 0; m < s.subsets; ++m) {
        double sum = 0;
        for (auto n : subsets[m]) sum += scores(q, n);
        predicted[m] = sum;
        actual[m] = -losses[m][q];
      }
      const double rho = bench::spearman(predicted, actual);
      total += rho;
      positive += rho > 0;
    }
    std::printf("| %s | %.3f | %zu of %zu |\n", name.c_str(), total / static_cast<double>(s.queries), positive,
                s.queries);
  }
  std::printf("| (Kronfluence, GPT-2 / WikiText: EK-FAC 0.44, identity 0.12) | | |\n");
  return 0;
}

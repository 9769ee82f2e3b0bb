// Speed and memory of K-FAC / EK-FAC influence on the bundled review model (issue 14): fitting
// EK-FAC on 10,000 training reviews, scoring 100 queries against them, self-influence, how the
// time grows with the training set, and what query batching (rank-k query gradients) costs and
// changes. Times are wall and CPU (user + sys of the whole process, from getrusage); memory is the
// process's peak resident set (ru_maxrss) after each stage.
//
//   influence_kfac_bench [MODEL] [--train N] [--queries Q] [--threads T] [--layers all|mlp]
//                        [--sizes N1,N2,...] [--ranks K1,K2,...] [--batch B]
//
// Defaults: the bundled model (models/reviews), 10,000 training reviews of the bundled model's data
// (datasets::generate_reviews(N, 11)), 100 held-out queries (seed 2, measurement: the loss at the
// marker), 2 threads, all linear layers, sizes 1,000, 3,000 and 10,000, ranks 1, 2, 4, 8, 16.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "glassbox/datasets/reviews.hpp"
#include "glassbox/influence/kfac.hpp"
#include "glassbox/models/gpt2.hpp"
#include "influence_bench_common.hpp"

namespace {

using namespace glassbox;

std::vector<std::size_t> parse_list(std::string_view text) {
  std::vector<std::size_t> out;
  while (!text.empty()) {
    const auto comma = text.find(',');
    out.push_back(std::strtoull(std::string(text.substr(0, comma)).c_str(), nullptr, 10));
    text = comma == std::string_view::npos ? std::string_view{} : text.substr(comma + 1);
  }
  return out;
}

double factor_mib(const kfac_factors& f) {
  std::size_t floats = 0;
  for (const auto& l : f.layers)
    floats += l.activation_covariance.size() + l.gradient_covariance.size() + l.activation_eigenvectors.size() +
              l.gradient_eigenvectors.size() + l.activation_eigenvalues.size() + l.gradient_eigenvalues.size() +
              l.lambda.size();
  return 4.0 * static_cast<double>(floats) / (1024.0 * 1024.0);
}

int usage() {
  std::fprintf(stderr,
               "usage: influence_kfac_bench [MODEL] [--train N] [--queries Q] [--threads T] [--layers all|mlp] "
               "[--sizes N1,N2,...] [--ranks K1,K2,...] [--batch B]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string model_path = GLASSBOX_SOURCE_DIR "/models/reviews";
  std::size_t n_train = 10000, n_queries = 100, threads = 2, batch = 32;
  std::vector<std::size_t> sizes{1000, 3000, 10000}, ranks{1, 2, 4, 8, 16};
  layer_selection layers = layer_selection::all;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (!a.starts_with("--")) {
      model_path = a;
      continue;
    }
    if (i + 1 >= argc) return usage();
    const std::string_view v = argv[++i];
    if (a == "--train") n_train = std::strtoull(v.data(), nullptr, 10);
    else if (a == "--queries") n_queries = std::strtoull(v.data(), nullptr, 10);
    else if (a == "--threads") threads = std::strtoull(v.data(), nullptr, 10);
    else if (a == "--batch") batch = std::strtoull(v.data(), nullptr, 10);
    else if (a == "--sizes") sizes = parse_list(v);
    else if (a == "--ranks") ranks = parse_list(v);
    else if (a == "--layers" && layer_selection_from_string(v)) layers = *layer_selection_from_string(v);
    else return usage();
  }
  const auto model = models::gpt2::load(model_path);
  std::vector<training_example> train;
  for (const auto& r : datasets::generate_reviews(n_train, 11)) train.push_back(datasets::to_training_example(r));
  std::vector<measurement> queries;
  for (const auto& r : datasets::generate_reviews(n_queries, 2))
    queries.push_back(measurement::loss(datasets::to_training_example(r)));
  double tokens = 0;
  for (const auto& e : train) tokens += static_cast<double>(e.tokens.size());
  const execution_options exec{.batch_size = batch, .threads = threads};
  std::printf("K-FAC / EK-FAC on %s (%zu parameters): %zu training reviews (%.1f tokens on average), %zu queries, "
              "%zu threads, layers %s, batch %zu\n",
              model_path.c_str(), model.parameter_count(), n_train, tokens / static_cast<double>(n_train), n_queries,
              threads, std::string(to_string(layers)).c_str(), batch);
  std::printf("peak memory after loading: %.0f MiB\n\n", bench::peak_rss_mib());

  std::printf("| stage | wall (s) | CPU (s) | peak memory (MiB) |\n|---|---|---|---|\n");
  bench::stopwatch fit_clock;
  const auto factors = fit_kfac_factors(model, train, {.layers = layers, .seed = 1, .execution = exec});
  std::printf("| fit EK-FAC (%zu layers, %zu parameters; factors %.1f MiB) | %.1f | %.1f | %.0f |\n",
              factors.layers.size(), factors.tracked_parameters(), factor_mib(factors), fit_clock.wall(),
              fit_clock.cpu(), bench::peak_rss_mib());
  const kfac_score_options exact{.common = {.top_k = 10, .execution = exec}};
  bench::stopwatch score_clock;
  const auto reference = kfac_influence(model, factors, queries, train, exact);
  const double score_wall = score_clock.wall(), score_cpu = score_clock.cpu();
  std::printf("| score %zu queries x %zu examples | %.1f | %.1f | %.0f |\n", n_queries, n_train, score_wall, score_cpu,
              bench::peak_rss_mib());
  bench::stopwatch self_clock;
  const auto self = kfac_self_influence(model, factors, train, exact);
  std::printf("| self-influence of %zu examples | %.1f | %.1f | %.0f |\n\n", n_train, self_clock.wall(),
              self_clock.cpu(), bench::peak_rss_mib());

  std::printf("Query batching (rank-k preconditioned query gradients, %zu queries x %zu examples):\n\n", n_queries,
              n_train);
  std::printf("| rank k | wall (s) | CPU (s) | relative error of a query's scores (median over queries) | top-10 "
              "overlap |\n|---|---|---|---|---|\n");
  std::printf("| exact | %.1f | %.1f | 0 | 100%% |\n", score_wall, score_cpu);
  for (const std::size_t k : ranks) {
    kfac_score_options o = exact;
    o.query_rank = k;
    bench::stopwatch c;
    const auto r = kfac_influence(model, factors, queries, train, o);
    const double wall = c.wall(), cpu = c.cpu();
    std::vector<double> errors;
    for (std::size_t q = 0; q < n_queries; ++q) {
      double num = 0, den = 0;
      for (std::size_t n = 0; n < n_train; ++n) {
        const double d = static_cast<double>(r.scores(q, n)) - reference.scores(q, n);
        num += d * d;
        den += static_cast<double>(reference.scores(q, n)) * reference.scores(q, n);
      }
      errors.push_back(std::sqrt(num / std::max(den, 1e-300)));
    }
    std::nth_element(errors.begin(), errors.begin() + static_cast<std::ptrdiff_t>(errors.size() / 2), errors.end());
    std::size_t overlap = 0, total = 0;
    for (std::size_t q = 0; q < n_queries; ++q)
      for (const auto& a : r.top[q]) {
        ++total;
        for (const auto& b : reference.top[q]) overlap += a.index == b.index;
      }
    std::printf("| %zu | %.1f | %.1f | %.2e | %.0f%% |\n", k, wall, cpu, errors[errors.size() / 2],
                100.0 * static_cast<double>(overlap) / static_cast<double>(total));
  }

  std::printf("\nGrowth with the training set (EK-FAC fit, then %zu queries scored exactly):\n\n", n_queries);
  std::printf("| training reviews | fit wall (s) | fit CPU (s) | score wall (s) | score CPU (s) |\n|---|---|---|---|---|\n");
  for (const std::size_t n : sizes) {
    if (n > train.size()) continue;
    const std::span<const training_example> part(train.data(), n);
    bench::stopwatch f;
    const auto fn = fit_kfac_factors(model, part, {.layers = layers, .seed = 1, .execution = exec});
    const double fw = f.wall(), fc = f.cpu();
    bench::stopwatch s;
    (void)kfac_influence(model, fn, queries, part, exact);
    std::printf("| %zu | %.1f | %.1f | %.1f | %.1f |\n", n, fw, fc, s.wall(), s.cpu());
  }
  std::printf("\npeak memory: %.0f MiB\n", bench::peak_rss_mib());
  (void)self;
  return 0;
}

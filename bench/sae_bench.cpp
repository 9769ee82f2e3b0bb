// Sparse autoencoders (issue 15, docs/representations.md "Sparse autoencoders"), as tables:
//
//   sae_bench speed [--width 64] [--features 0] [--rows 65536] [--batch 1024] [--warm 300]
//                   [--steps 200] [--threads 1,2] [--l1 1] [--out DIR]
//       Training throughput in tokens (rows) per second. Synthetic activations with a planted
//       sparse dictionary (4 d unit directions, 8 active per row on average). An SAE (n = 8 d by
//       default) is first trained for --warm steps (not timed) so that its features are sparse, as
//       they are for most of a real run; then --steps more steps are timed from that SAE, per
//       thread count: glassbox's default (sparse products once under 5% of entries are active) and
//       glassbox with dense products only. Wall time and process CPU time (user + system). With
//       --out, writes DIR/sae_data_D.f32 (the rows, raw float32) and DIR/sae_warm_D.safetensors
//       (the warm SAE) for bench/sae_torch.py to time the same steps in PyTorch.
//
//   sae_bench model [--model DIR] [--reviews 3000] [--layer 3] [--features 512] [--l1 2] [--lr 3e-3]
//                   [--epochs 20] [--resample-every 200] [--threads 1] [--f1 0.5]
//       The bundled model: an SAE on one layer's residual stream over generated reviews (seed 3,
//       every token), then on held-out reviews (seed 4) MSE, explained variance, L0, dead and dense
//       fractions, the fraction of loss recovered (cross-entropy of the rule's label at the marker),
//       and the known properties of the review language each matched by its best feature
//       (precision, recall, F1), with the fraction matched at F1 >= --f1.
//
// Measure when `uptime` shows a load below ~1.5, e.g.:
//   build/release/bench/sae_bench speed --width 64 --out /tmp/sae && /usr/bin/python3 bench/sae_torch.py --dir /tmp/sae --width 64
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <glassbox/core.hpp>
#include <glassbox/datasets/reviews.hpp>
#include <glassbox/io/sae_file.hpp>
#include <glassbox/models/gpt2.hpp>
#include <glassbox/probing/activations.hpp>
#include <glassbox/representations/sae.hpp>
#include <glassbox/representations/sae_reviews.hpp>
#include <map>
#include <string>
#include <vector>

namespace {

using namespace glassbox;

/// CPU seconds of the whole process (user + system, all threads).
double cpu_seconds() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}

/// --name value pairs.
std::map<std::string, std::string> parse_args(int argc, char** argv, int first) {
  std::map<std::string, std::string> out;
  for (int i = first; i + 1 < argc; i += 2) out[std::string(argv[i]).substr(2)] = argv[i + 1];
  return out;
}

std::string arg(const std::map<std::string, std::string>& a, const std::string& name, const std::string& fallback) {
  const auto it = a.find(name);
  return it == a.end() ? fallback : it->second;
}

std::vector<std::size_t> list(const std::string& text) {
  std::vector<std::size_t> out;
  std::size_t start = 0;
  while (start <= text.size()) {
    const auto comma = text.find(',', start);
    out.push_back(std::stoul(text.substr(start, comma == std::string::npos ? std::string::npos : comma - start)));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

/// Rows x = sum_k a_k D_k with m = 4 d planted unit directions, each active with probability 8 / m,
/// a_k uniform in [0.5, 1.5].
tensor2 planted_rows(std::size_t d, std::size_t rows, std::uint64_t seed) {
  const std::size_t m = 4 * d;
  rng g(seed);
  std::vector<float> dict(m * d);
  for (std::size_t k = 0; k < m; ++k) {
    double norm = 0;
    for (std::size_t c = 0; c < d; ++c) {
      dict[k * d + c] = static_cast<float>(g.normal());
      norm += static_cast<double>(dict[k * d + c]) * dict[k * d + c];
    }
    for (std::size_t c = 0; c < d; ++c) dict[k * d + c] = static_cast<float>(dict[k * d + c] / std::sqrt(norm));
  }
  tensor2 x = xt::zeros<float>({rows, d});
  const double p = 8.0 / static_cast<double>(m);
  for (std::size_t r = 0; r < rows; ++r)
    for (std::size_t k = 0; k < m; ++k)
      if (g.bernoulli(p)) {
        const auto a = static_cast<float>(g.uniform(0.5, 1.5));
        for (std::size_t c = 0; c < d; ++c) x(r, c) += a * dict[k * d + c];
      }
  return x;
}

int speed(const std::map<std::string, std::string>& a) {
  const std::size_t d = std::stoul(arg(a, "width", "64"));
  const std::size_t features = std::stoul(arg(a, "features", "0"));
  const std::size_t rows = std::stoul(arg(a, "rows", "65536"));
  const std::size_t batch = std::stoul(arg(a, "batch", "1024"));
  const std::size_t warm = std::stoul(arg(a, "warm", "300"));
  const std::size_t steps = std::stoul(arg(a, "steps", "200"));
  const double l1 = std::stod(arg(a, "l1", "1"));
  const std::string out = arg(a, "out", "");
  const tensor2 x = planted_rows(d, rows, 1);
  sae_options o;
  o.features = features;
  o.l1 = l1;
  o.learning_rate = 1e-3;
  o.batch_size = batch;
  o.steps = warm;
  o.seed = 1;
  o.resampling.every = 0;
  const auto t0 = std::chrono::steady_clock::now();
  const sae_training_result warmed = train_sae(x, o);
  const double warm_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const sae_metrics wm = evaluate_sae(warmed.sae, x);
  fmt::print("width {} features {} rows {} batch {} l1 {}: warm SAE after {} steps ({:.1f} s): L0 {:.1f} ({:.2f}% of "
             "features), explained variance {:.3f}\n",
             d, warmed.sae.feature_count(), rows, batch, l1, warm, warm_seconds, wm.l0,
             100 * wm.l0 / static_cast<double>(warmed.sae.feature_count()), wm.explained_variance);
  if (!out.empty()) {
    std::filesystem::create_directories(out);
    std::ofstream f(fmt::format("{}/sae_data_{}.f32", out, d), std::ios::binary);
    f.write(reinterpret_cast<const char*>(x.data()), static_cast<std::streamsize>(x.size() * sizeof(float)));
    io::write_sae_file(fmt::format("{}/sae_warm_{}.safetensors", out, d), warmed.sae);
  }
  fmt::print("{:<28} {:>7} {:>6} {:>10} {:>10} {:>12} {:>8}\n", "implementation", "threads", "steps", "wall s", "CPU s",
             "tokens/s", "L0 end");
  for (const std::size_t threads : list(arg(a, "threads", "1,2"))) {
    for (const bool dense : {false, true}) {
      sae_options t = o;
      t.initial = &warmed.sae;
      t.steps = steps;
      t.warmup_steps = 1;
      t.seed = 2;
      t.sparse_below = dense ? 0.0 : sae_options{}.sparse_below;
      t.execution.threads = threads;
      const double c0 = cpu_seconds();
      const auto w0 = std::chrono::steady_clock::now();
      const sae_training_result r = train_sae(x, t);
      const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - w0).count();
      const double cpu = cpu_seconds() - c0;
      fmt::print("{:<28} {:>7} {:>6} {:>10.3f} {:>10.3f} {:>12.0f} {:>8.1f}\n",
                 dense ? "glassbox (dense products)" : "glassbox (default)", threads, steps, wall, cpu,
                 static_cast<double>(r.tokens) / wall, r.history.back().l0);
    }
  }
  return 0;
}

int bundled(const std::map<std::string, std::string>& a) {
#ifdef GLASSBOX_SOURCE_DIR
  const std::string default_model = std::string(GLASSBOX_SOURCE_DIR) + "/models/reviews";
#else
  const std::string default_model = "models/reviews";
#endif
  const auto model = models::gpt2::load(arg(a, "model", default_model));
  const std::size_t reviews = std::stoul(arg(a, "reviews", "3000"));
  const std::size_t layer = std::stoul(arg(a, "layer", "3"));
  const std::size_t threads = std::stoul(arg(a, "threads", "1"));
  const double f1 = std::stod(arg(a, "f1", "0.5"));
  const datasets::review_generator gen;
  const auto make = [&](std::uint64_t seed, std::size_t count) {
    std::vector<token_sequence> out;
    for (std::size_t i = 0; i < count; ++i) out.push_back(gen.example(seed, i).tokens);
    return out;
  };
  const std::vector<token_sequence> train = make(3, reviews), held = make(4, reviews / 3);
  const activation_labels every_token{label_kind::classes,
                                      [](std::size_t, std::size_t) -> std::optional<double> { return 0.0; }};
  activation_options ao;
  ao.layers = {layer};
  ao.execution.threads = threads;
  const tensor2 xt_train =
      std::move(collect_activations(model, std::span<const token_sequence>(train), every_token, ao).activations[0]);
  const tensor2 xt_held =
      std::move(collect_activations(model, std::span<const token_sequence>(held), every_token, ao).activations[0]);

  sae_options o;
  o.features = std::stoul(arg(a, "features", "512"));
  o.l1 = std::stod(arg(a, "l1", "2"));
  o.learning_rate = std::stod(arg(a, "lr", "3e-3"));
  o.batch_size = 1024;
  o.epochs = std::stoul(arg(a, "epochs", "20"));
  o.resampling.every = std::stoul(arg(a, "resample-every", "200"));
  o.layer = layer;
  o.seed = 1;
  o.execution.threads = threads;
  const sae_training_result r = train_sae(xt_train, o);
  const sae_metrics m = evaluate_sae(r.sae, xt_held);
  std::vector<training_example> scored;
  for (const auto& t : held)
    if (const auto label = datasets::label_of(t).label()) scored.push_back(training_example::classification(t, *label));
  execution_options exec;
  exec.threads = threads;
  const sae_loss_recovery rec = sae_loss_recovered(model, r.sae, std::span<const training_example>(scored), layer, exec);
  const auto props = review_row_properties(std::span<const token_sequence>(held));
  const sae_property_scores s = sae_match_properties(r.sae, xt_held, props, f1);
  std::size_t resampled = 0;
  for (const auto k : r.resampled) resampled += k;
  fmt::print("bundled model, layer {}: SAE with {} features, l1 {}, lr {}, {} epochs over {} rows of {} reviews "
             "(seed 3): {} steps in {:.1f} s, {} features resampled\n",
             layer, r.sae.feature_count(), o.l1, o.learning_rate, o.epochs, xt_train.shape(0), train.size(), r.steps,
             r.seconds, resampled);
  fmt::print("held-out ({} reviews of seed 4, {} rows): MSE {:.4g}, explained variance {:.3f}, L0 {:.2f}, dead {:.1f}%, "
             "dense {:.1f}%\n",
             held.size(), m.rows, m.mse, m.explained_variance, m.l0, 100 * m.dead_fraction, 100 * m.dense_fraction);
  fmt::print("loss recovered {:.3f} (label cross-entropy at the marker: clean {:.4f}, SAE {:.4f}, zero-ablated {:.4f}, "
             "{} reviews)\n",
             rec.fraction_recovered, rec.clean_loss, rec.sae_loss, rec.zero_loss, rec.scored_rows);
  fmt::print("properties matched by a feature with F1 >= {}: {} of {} ({:.0f}%)\n", f1, s.matched, s.scored,
             100 * s.matched_fraction);
  fmt::print("{:<32} {:>8} {:>10} {:>7} {:>7} {:>6}\n", "property", "true", "feature", "prec", "recall", "F1");
  for (std::size_t q = 0; q < s.properties.size(); ++q) {
    const auto& b = s.best_by_property[q];
    fmt::print("{:<32} {:>8} {:>10} {:>7.3f} {:>7.3f} {:>6.3f}\n", s.properties[q], b.truths, b.feature, b.precision,
               b.recall, b.f1);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  const auto a = parse_args(argc, argv, 2);
  if (mode == "speed") return speed(a);
  if (mode == "model") return bundled(a);
  fmt::print(stderr, "usage: sae_bench speed|model [--option value ...] (see the comment at the top)\n");
  return 2;
}

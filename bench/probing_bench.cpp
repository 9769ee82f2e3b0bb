// The speed and memory of probing (issue 13), as tables:
//
//   probing_bench speed [--out DIR] [--rows 20000] [--width 768] [--classes 2,10] [--repeats 3]
//       Synthetic activations like a transformer's (anisotropic columns, three "massive" ones),
//       labels from a noisy linear rule, a grouped 80/10/10 split. Times the logistic probe
//       (glassbox::fit_logistic_regression, defaults = scikit-learn's: C 1, tol 1e-4, max_iter 100)
//       on the training rows and reports CPU time (median of --repeats), iterations, test accuracy,
//       the objective, and the peak resident memory during the fit. With --out, writes each data
//       set as an activation file (DIR/synthetic_K.safetensors) and the probe (default and tight
//       solves) as probe files, for bench/probing_sklearn.py to run scikit-learn on the same rows.
//
//   probing_bench collection [--shape bundled|gpt2-small] [--model DIR] [--reviews 2000] [--threads 1]
//                            [--repeats 3]
//       Activation collection against the model's own forward speed, on the bundled model (or,
//       with --shape gpt2-small, a random model of GPT-2 small's shape: 12 x 768, 50,257 tokens;
//       100 reviews by default) and reviews of seed 2: the time of hidden_states over every
//       review, of logits over every review, and of collect_activations (every layer, token
//       pooling, one label per token) on the same reviews and threads, in process CPU time (user +
//       system, medians of --repeats interleaved runs); the overhead is collection over
//       hidden_states.
//
// Run with one BLAS / OpenMP thread for the figures of docs/benchmarks.md:
//   OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 build/release/bench/probing_bench speed --out /tmp/probing
#include <fmt/format.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <glassbox/core.hpp>
#include <glassbox/datasets/reviews.hpp>
#include <glassbox/io/activation_file.hpp>
#include <glassbox/models/gpt2.hpp>
#include <glassbox/probing.hpp>
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

/// User and system CPU seconds of the process, and its minor page faults so far.
struct cpu_usage {
  double user = 0, system = 0;
  long faults = 0;
};
cpu_usage usage_now() {
  rusage r{};
  getrusage(RUSAGE_SELF, &r);
  return {static_cast<double>(r.ru_utime.tv_sec) + 1e-6 * static_cast<double>(r.ru_utime.tv_usec),
          static_cast<double>(r.ru_stime.tv_sec) + 1e-6 * static_cast<double>(r.ru_stime.tv_usec), r.ru_minflt};
}

double wall_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

/// Resets the peak resident set size (Linux: /proc/self/clear_refs, "5").
void reset_peak_memory() { std::ofstream("/proc/self/clear_refs") << "5"; }

/// Peak resident set size since the last reset, in MiB (VmHWM).
double peak_memory_mib() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
  return 0;
}

/// Current resident set size in MiB (VmRSS).
double resident_memory_mib() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
  return 0;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

std::map<std::string, std::string> parse_flags(int argc, char** argv, int first) {
  std::map<std::string, std::string> flags;
  for (int i = first; i < argc; ++i) {
    const std::string key = argv[i];
    if (key.rfind("--", 0) != 0 || i + 1 >= argc) {
      fmt::print(stderr, "probing_bench: expected --flag value, got '{}'\n", key);
      std::exit(2);
    }
    flags[key.substr(2)] = argv[++i];
  }
  return flags;
}

/// Synthetic activations [n, d]: z ~ N(0, I), column j scaled by 1 / sqrt(1 + j / 8), columns
/// 0..2 by 20 more (the few huge dimensions of transformer residual streams); labels from a noisy
/// linear rule (binary: a logistic threshold of one direction; K > 2: the argmax of K random
/// directions plus Gumbel noise), so the classes are not separable; sequences of 20 rows.
activation_set synthetic_activations(std::size_t n, std::size_t d, std::size_t classes, std::uint64_t seed) {
  rng g(seed);
  activation_set s;
  s.property = fmt::format("synthetic_{}", classes);
  s.model = "synthetic";
  s.layers = {0};
  s.width = d;
  s.activations.push_back(tensor2::from_shape({n, d}));
  tensor2& x = s.activations[0];
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t j = 0; j < d; ++j)
      x(i, j) = static_cast<float>(g.normal() / std::sqrt(1.0 + static_cast<double>(j) / 8.0) * (j < 3 ? 20.0 : 1.0));
  const std::size_t outputs = classes == 2 ? 1 : classes;
  std::vector<double> w(outputs * d);
  for (auto& e : w) e = g.normal();
  for (std::size_t k = 0; k < classes; ++k) s.class_names.push_back(fmt::format("class_{}", k));
  for (std::size_t i = 0; i < n; ++i) {
    std::size_t label = 0;
    if (classes == 2) {
      double z = 0, norm = 0;
      for (std::size_t j = 0; j < d; ++j) {
        z += x(i, j) * w[j];
        norm += w[j] * w[j];
      }
      const double u = std::clamp(g.uniform(), 1e-12, 1 - 1e-12);
      label = z / std::sqrt(norm) / 0.5 + 2.0 * std::log(u / (1 - u)) > 0 ? 1 : 0;
    } else {
      double best = -1e300;
      for (std::size_t k = 0; k < classes; ++k) {
        double z = 0;
        for (std::size_t j = 0; j < d; ++j) z += x(i, j) * w[k * d + j];
        z = z / 5.0 - 2.0 * std::log(-std::log(std::clamp(g.uniform(), 1e-12, 1 - 1e-12)));
        if (z > best) {
          best = z;
          label = k;
        }
      }
    }
    s.labels.push_back(static_cast<double>(label));
    s.word_ids.push_back(static_cast<token_id>(i % 1000));
    s.sequence_ids.push_back(static_cast<std::int32_t>(i / 20));
  }
  s.split = grouped_split(s.sequence_ids, n, seed + 1);
  return s;
}

int run_speed(const std::map<std::string, std::string>& flags) {
  const auto get = [&](const char* k, const char* def) { return flags.count(k) ? flags.at(k) : std::string(def); };
  const std::size_t n = std::stoul(get("rows", "20000")), d = std::stoul(get("width", "768"));
  const int repeats = std::stoi(get("repeats", "3"));
  const std::string out = get("out", "");
  std::vector<std::size_t> class_counts;
  for (std::string list = get("classes", "2,10"); !list.empty();) {
    const auto comma = list.find(',');
    class_counts.push_back(std::stoul(list.substr(0, comma)));
    list = comma == std::string::npos ? "" : list.substr(comma + 1);
  }
  if (!out.empty()) std::filesystem::create_directories(out);
  fmt::print("## Logistic probe, {} x {} float activations (train = split 0, test = split 2)\n\n", n, d);
  fmt::print(
      "| classes | train rows | fit CPU s (median of {}) | wall s | iterations | evaluations | stop | test accuracy | "
      "objective | max abs gradient | RSS before fit MiB | peak RSS during fit MiB | training rows MiB |\n",
      repeats);
  fmt::print("|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
  for (const std::size_t classes : class_counts) {
    const activation_set s = synthetic_activations(n, d, classes, 1000 + classes);
    std::vector<std::size_t> train, test;
    for (std::size_t i = 0; i < n; ++i) {
      if (s.split[i] == 0) train.push_back(i);
      if (s.split[i] == 2) test.push_back(i);
    }
    const auto gather = [&](const std::vector<std::size_t>& rows) {
      tensor2 x = tensor2::from_shape({rows.size(), d});
      for (std::size_t i = 0; i < rows.size(); ++i)
        std::copy_n(s.activations[0].data() + rows[i] * d, d, x.data() + i * d);
      return x;
    };
    const tensor2 xtrain = gather(train), xtest = gather(test);
    std::vector<std::int32_t> ytrain, ytest;
    for (const auto i : train) ytrain.push_back(static_cast<std::int32_t>(s.labels[i]));
    for (const auto i : test) ytest.push_back(static_cast<std::int32_t>(s.labels[i]));

    std::vector<double> cpu, wall;
    logistic_regression_result fit;
    double peak = 0;
    const double before = resident_memory_mib();
    for (int r = 0; r < repeats; ++r) {
      reset_peak_memory();
      const double c0 = cpu_seconds(), w0 = wall_seconds();
      fit = fit_logistic_regression(xtrain, ytrain, classes);
      cpu.push_back(cpu_seconds() - c0);
      wall.push_back(wall_seconds() - w0);
      peak = std::max(peak, peak_memory_mib());
    }
    const double accuracy = accuracy_score(ytest, predict_classes(fit.model, xtest));
    fmt::print("| {} | {} | {:.3f} | {:.3f} | {} | {} | {} | {:.4f} | {:.6f} | {:.3g} | {:.0f} | {:.0f} | {:.0f} |\n",
               classes, train.size(), median(cpu), median(wall), fit.iterations, fit.evaluations, fit.stop_reason,
               accuracy, fit.objective, fit.gradient_max, before, peak,
               static_cast<double>(xtrain.size()) * 4 / (1 << 20));
    if (!out.empty()) {
      const auto base = std::filesystem::path(out);
      io::write_activation_file(base / fmt::format("synthetic_{}.safetensors", classes), s);
      const io::saved_probe probe{0, fit.model};
      io::write_probe_file(base / fmt::format("glassbox_probe_{}.safetensors", classes), std::span(&probe, 1),
                           {{"cpu_seconds", fmt::format("{:.6f}", median(cpu))},
                            {"iterations", std::to_string(fit.iterations)},
                            {"converged", fit.converged ? "true" : "false"},
                            {"test_accuracy", fmt::format("{:.6f}", accuracy)},
                            {"peak_rss_mib", fmt::format("{:.1f}", peak)}});
      // The tight solve: the optimum to about 1e-8 relative, for the coefficient comparison.
      const auto tight =
          fit_logistic_regression(xtrain, ytrain, classes, {.tol = 1e-6, .ftol = 0, .max_iterations = 2000});
      const io::saved_probe tight_probe{0, tight.model};
      io::write_probe_file(base / fmt::format("glassbox_probe_tight_{}.safetensors", classes),
                           std::span(&tight_probe, 1),
                           {{"iterations", std::to_string(tight.iterations)},
                            {"converged", tight.converged ? "true" : "false"},
                            {"gradient_max", fmt::format("{:.3g}", tight.gradient_max)}});
    }
  }
  if (!out.empty()) fmt::print("\nFiles in {}: run bench/probing_sklearn.py on them.\n", out);
  return 0;
}

int run_collection(const std::map<std::string, std::string>& flags) {
  const auto get = [&](const char* k, const char* def) { return flags.count(k) ? flags.at(k) : std::string(def); };
#ifdef GLASSBOX_SOURCE_DIR
  const std::string default_model = std::string(GLASSBOX_SOURCE_DIR) + "/models/reviews";
#else
  const std::string default_model = "models/reviews";
#endif
  const std::string shape = get("shape", "bundled");
  if (shape != "bundled" && shape != "gpt2-small") {
    fmt::print(stderr, "probing_bench collection: --shape must be bundled or gpt2-small, got {}\n", shape);
    return 2;
  }
  const auto model = [&] {
    if (shape == "bundled") return models::gpt2::load(get("model", default_model.c_str()));
    models::gpt2_config c;  // GPT-2 small's shape with random weights: the cost does not depend on them
    c.n_layer = 12;
    c.n_head = 12;
    c.n_embd = 768;
    c.n_positions = 1024;
    c.vocab_size = 50257;
    return models::gpt2::random(c, 7);
  }();
  const std::size_t reviews = std::stoul(get("reviews", shape == "bundled" ? "2000" : "100"));
  const std::size_t threads = std::stoul(get("threads", "1"));
  const int repeats = std::stoi(get("repeats", "3"));
  std::vector<token_sequence> inputs;
  std::size_t tokens = 0;
  for (const auto& r : datasets::generate_reviews(reviews, 2)) {
    inputs.push_back(r.tokens);
    tokens += r.tokens.size();
  }
  const execution_options exec{.threads = threads};
  // Per pass: user seconds, system seconds, minor page faults (medians over the repeats).
  std::vector<double> fu, fs, lu, ls, cu, cs, ff, lf, cf;
  std::size_t rows = 0;
  double peak_collect = 0;
  const auto measure = [](auto&& pass, std::vector<double>& user, std::vector<double>& sys,
                          std::vector<double>& faults) {
    const cpu_usage a = usage_now();
    pass();
    const cpu_usage b = usage_now();
    user.push_back(b.user - a.user);
    sys.push_back(b.system - a.system);
    faults.push_back(static_cast<double>(b.faults - a.faults));
  };
  for (int rep = 0; rep < repeats; ++rep) {
    measure(
        [&] {
          std::vector<double> sink(inputs.size());
          detail::run_batches(inputs.size(), exec, detail::worker_count(exec, true), "forward",
                              [&](std::size_t b, std::size_t e) {
                                for (std::size_t i = b; i < e; ++i) sink[i] = model.hidden_states(inputs[i])(0, 0, 0);
                              });
        },
        fu, fs, ff);
    measure(
        [&] {
          std::vector<double> sink(inputs.size());
          detail::run_batches(inputs.size(), exec, detail::worker_count(exec, true), "logits",
                              [&](std::size_t b, std::size_t e) {
                                for (std::size_t i = b; i < e; ++i) sink[i] = model.logits(inputs[i])(0, 0);
                              });
        },
        lu, ls, lf);
    reset_peak_memory();
    measure(
        [&] {
          const auto set = collect_activations(
              model, inputs,
              activation_labels{
                  label_kind::classes,
                  [&](std::size_t s, std::size_t p) -> std::optional<double> { return inputs[s][p] % 2; }},
              {.execution = exec});
          rows = set.rows();
        },
        cu, cs, cf);
    peak_collect = std::max(peak_collect, peak_memory_mib());
  }
  const double f = median(fu) + median(fs), l = median(lu) + median(ls), c = median(cu) + median(cs);
  fmt::print(
      "## Activation collection, {} ({} hidden states x {} wide), {} reviews of seed 2 ({} tokens), {} "
      "thread(s), medians of {} interleaved runs\n\n",
      shape == "bundled" ? "bundled model" : "random GPT-2-small-shaped model", model.n_layer() + 1, model.width(),
      reviews, tokens, threads, repeats);
  fmt::print(
      "| pass over every review | user s | system s | user + system s | minor page faults | relative to hidden_states "
      "|\n");
  fmt::print("|---|---|---|---|---|---|\n");
  fmt::print("| hidden_states (the model's forward, no unembedding) | {:.3f} | {:.3f} | {:.3f} | {:.0f} | 1.000 |\n",
             median(fu), median(fs), f, median(ff));
  fmt::print("| logits (the model's forward with every row's logits) | {:.3f} | {:.3f} | {:.3f} | {:.0f} | {:.3f} |\n",
             median(lu), median(ls), l, median(lf), l / f);
  fmt::print(
      "| collect_activations: every layer, token pooling, {} rows | {:.3f} | {:.3f} | {:.3f} | {:.0f} | {:.3f} |\n",
      rows, median(cu), median(cs), c, median(cf), c / f);
  const double held = static_cast<double>(rows * (model.n_layer() + 1) * model.width() * 4) / (1 << 20);
  fmt::print(
      "\nCollection over hidden_states: {:+.1f}% user time, {:+.1f}% user + system time; over logits: {:+.1f}%. "
      "The system time is the kernel providing the {:.1f} MiB of activations ({:.0f} page faults). Peak RSS during "
      "collection {:.0f} MiB.\n",
      100 * (median(cu) / median(fu) - 1), 100 * (c / f - 1), 100 * (c / l - 1), held, median(cf), peak_collect);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || (std::string(argv[1]) != "speed" && std::string(argv[1]) != "collection")) {
    fmt::print(stderr, "usage: probing_bench speed|collection [--flag value ...] (see the comment at the top)\n");
    return 2;
  }
  const auto flags = parse_flags(argc, argv, 2);
  try {
    return std::string(argv[1]) == "speed" ? run_speed(flags) : run_collection(flags);
  } catch (const std::exception& e) {
    fmt::print(stderr, "probing_bench: {}\n", e.what());
    return 1;
  }
}

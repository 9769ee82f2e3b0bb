// Benchmark: the library's overhead in integrated gradients. Integrated gradients with n = 50 steps
// (Gauss-Legendre, zero baseline, one thread, batch_size 32) against the same n forward + backward
// passes made directly through the model's batched member (embedding_gradient_batch on the same
// 50 path points, stacked in the same batches of 32), on two random reference GPT-2s at T = 32:
//   bundled     n_layer 4,  n_head 4,  n_embd 64,  vocab 224 (the bundled model's shape, random weights)
//   gpt2_small  n_layer 12, n_head 12, n_embd 768, vocab 50257 (GPT-2 small's shape)
// Integrated gradients also embeds the tokens, builds the path points, evaluates f(x) and f(x')
// (two forward passes) and accumulates the gradients; the target is IG <= 1.10 x model alone.
//
// Run: integrated_gradients_bench [--benchmark_filter=bundled] [--benchmark_repetitions=N]
// Repetitions run randomly interleaved, and the table at the end compares medians (real and CPU time).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "glassbox/attribution/integrated_gradients.hpp"
#include "glassbox/models/gpt2.hpp"

namespace {

using namespace glassbox;

constexpr std::size_t steps = 50;
constexpr std::size_t batch_size = 32;
constexpr std::size_t length = 32;

/// One model with its input, target and the integrated-gradient path points.
struct bench_case {
  models::gpt2 model;
  token_sequence tokens;
  target t = target::log_probability(0);
  std::vector<tensor2> points;  // the 50 Gauss-Legendre points a_k x on the path from the zero baseline
};

models::gpt2_config config_of(const std::string& name) {
  models::gpt2_config c;
  if (name == "bundled") {
    c.n_layer = 4;
    c.n_head = 4;
    c.n_embd = 64;
    c.n_positions = 64;
    c.vocab_size = 224;
  }  // else GPT-2 small's shape, the default config
  return c;
}

const bench_case& get_case(const std::string& name) {
  static std::map<std::string, std::unique_ptr<bench_case>> cases;
  auto& slot = cases[name];
  if (!slot) {
    const models::gpt2_config c = config_of(name);
    glassbox::rng g(7);
    token_sequence tokens(length);
    for (auto& x : tokens) x = static_cast<token_id>(g.below(c.vocab_size));
    slot = std::make_unique<bench_case>(bench_case{
        models::gpt2::random(c, 1), tokens, target::log_probability(static_cast<token_id>(g.below(c.vocab_size))), {}});
    const tensor2 x = slot->model.embed(tokens);
    const quadrature q = integration_nodes(integration_rule::gauss_legendre, steps);
    for (double a : q.nodes) {
      tensor2 p = x;
      for (auto& v : p) v = static_cast<float>(a * static_cast<double>(v));
      slot->points.push_back(std::move(p));
    }
    // Warm-up: the model's workspaces for both batch shapes are allocated before anything is timed.
    integrated_gradients_options warm;
    warm.execution.batch_size = batch_size;
    warm.execution.threads = 1;
    benchmark::DoNotOptimize(integrated_gradients(slot->model, slot->tokens, slot->t, warm).scores.data());
  }
  return *slot;
}

/// The 50 forward + backward passes alone, in the batches integrated gradients would send.
void model_alone(benchmark::State& state, const std::string& name) {
  const bench_case& c = get_case(name);
  const output_seed seed(c.t);
  const std::size_t rows = c.points[0].shape(0), width = c.points[0].shape(1);
  for (auto _ : state) {
    for (std::size_t begin = 0; begin < steps; begin += batch_size) {
      const std::size_t end = std::min(steps, begin + batch_size);
      tensor3 batch({end - begin, rows, width});
      for (std::size_t i = begin; i < end; ++i)
        std::copy_n(c.points[i].data(), rows * width, batch.data() + (i - begin) * rows * width);
      const auto r = c.model.embedding_gradient_batch(batch, seed);
      benchmark::DoNotOptimize(r.gradients.data());
    }
  }
}

/// glassbox::integrated_gradients with 50 steps.
void integrated(benchmark::State& state, const std::string& name) {
  const bench_case& c = get_case(name);
  integrated_gradients_options options;
  options.steps = steps;
  options.execution.batch_size = batch_size;
  options.execution.threads = 1;
  for (auto _ : state) {
    const attribution_result r = integrated_gradients(c.model, c.tokens, c.t, options);
    benchmark::DoNotOptimize(r.scores.data());
  }
}

/// The console output, plus every repetition's real time kept for the summary table.
class recording_reporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const Run& r : runs)
      if (r.run_type == Run::RT_Iteration && !r.error_occurred) {
        real[r.run_name.function_name].push_back(r.GetAdjustedRealTime());
        cpu[r.run_name.function_name].push_back(r.GetAdjustedCPUTime());
      }
    ConsoleReporter::ReportRuns(runs);
  }
  std::map<std::string, std::vector<double>> real, cpu;  // ms per iteration, by benchmark name
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

}  // namespace

int main(int argc, char** argv) {
  for (const std::string name : {"bundled", "gpt2_small"}) {
    const bool large = name == "gpt2_small";
    for (auto* b : {benchmark::RegisterBenchmark(("model_alone/" + name).c_str(), model_alone, name),
                    benchmark::RegisterBenchmark(("integrated_gradients/" + name).c_str(), integrated, name)}) {
      b->Unit(benchmark::kMillisecond)->UseRealTime()->Repetitions(large ? 5 : 9);
      if (large) b->Iterations(1);
    }
  }
  std::vector<char*> args(argv, argv + argc);
  std::string interleave = "--benchmark_enable_random_interleaving=true";
  args.insert(args.begin() + 1, interleave.data());  // later flags on the command line still win
  int count = static_cast<int>(args.size());
  benchmark::Initialize(&count, args.data());
  if (benchmark::ReportUnrecognizedArguments(count, args.data())) return 1;
  recording_reporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();

  // Both runs are single-threaded, so CPU time measures their work even on a busy machine; real
  // time is what a user waits for on an idle one.
  std::printf(
      "\n| model | T | steps | model alone, ms (real / CPU) | integrated gradients, ms (real / CPU) | "
      "ratio (real / CPU) |\n");
  std::printf("|---|---|---|---|---|---|\n");
  for (const std::string name : {"bundled", "gpt2_small"}) {
    const std::string a = "model_alone/" + name, i = "integrated_gradients/" + name;
    if (!reporter.real.count(a) || !reporter.real.count(i)) continue;
    const double ar = median(reporter.real[a]), ac = median(reporter.cpu[a]);
    const double ir = median(reporter.real[i]), ic = median(reporter.cpu[i]);
    std::printf("| %s | %zu | %zu | %.1f / %.1f | %.1f / %.1f | %.3f / %.3f |\n", name.c_str(), length, steps, ar, ac,
                ir, ic, ir / ar, ic / ac);
  }
  return 0;
}

// Forward and backward passes of the reference GPT-2 at the GPT-2 small configuration and at the
// bundled-model size, for T = 32 and 128 tokens. bench/gpt2_torch.py times the same passes in
// PyTorch and prints both side by side; docs/benchmarks.md has the table and how to reproduce it.
//
// Threads: with -DGLASSBOX_OPENMP=ON, OMP_NUM_THREADS sets how many threads Eigen's products and
// glassbox's row loops use; without OpenMP everything runs on one thread.
#include <benchmark/benchmark.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "glassbox/models/gpt2.hpp"

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace {

using glassbox::token_id;
using glassbox::models::gpt2;
using glassbox::models::gpt2_config;

// 0: GPT-2 small (12 layers, 12 heads, 768 wide, 50257 tokens). 1: the bundled-model size (4 layers,
// 4 heads, 64 wide, 224 tokens, as models/reviews; 128 positions here so that T = 128 fits; wpe's size costs nothing).
gpt2_config bench_config(std::int64_t which) {
  if (which == 0) return gpt2_config::gpt2_small();
  gpt2_config c;
  c.n_layer = 4;
  c.n_head = 4;
  c.n_embd = 64;
  c.vocab_size = 224;
  c.n_positions = 128;
  return c;
}

// Built on first use, so that a run of the small configuration only does not build GPT-2 small.
const gpt2& bench_model(std::int64_t which) {
  if (which == 0) {
    static const gpt2 small = gpt2::random(bench_config(0), 1);
    return small;
  }
  static const gpt2 bundled = gpt2::random(bench_config(1), 1);
  return bundled;
}

std::vector<token_id> bench_tokens(std::size_t n, std::size_t vocab) {
  std::vector<token_id> t(n);
  std::uint64_t x = 12345;
  for (auto& v : t) {
    x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    v = static_cast<token_id>((x >> 33) % vocab);
  }
  return t;
}

void set_context(benchmark::State& state, const gpt2& m) {
  state.counters["layers"] = static_cast<double>(m.n_layer());
#if defined(_OPENMP)
  state.counters["threads"] = omp_get_max_threads();
#else
  state.counters["threads"] = 1;
#endif
}

// Logits of every position [T, V].
void forward_all_logits(benchmark::State& state) {
  const auto& m = bench_model(state.range(0));
  const auto tokens = bench_tokens(static_cast<std::size_t>(state.range(1)), m.vocab_size());
  for (auto _ : state) benchmark::DoNotOptimize(m.logits(tokens).data());
  set_context(state, m);
}

// Logits of the last position only (what a target reads): the other rows skip ln_f and the unembedding.
void forward_last_row(benchmark::State& state) {
  const auto& m = bench_model(state.range(0));
  const auto tokens = bench_tokens(static_cast<std::size_t>(state.range(1)), m.vocab_size());
  const std::vector<std::size_t> rows{tokens.size() - 1};
  for (auto _ : state) benchmark::DoNotOptimize(m.logits_at(tokens, rows).data());
  set_context(state, m);
}

// d log p(token | prefix) at the last position / d input embeddings: one forward, one input-gradient backward.
void gradient_target_row(benchmark::State& state) {
  const auto& m = bench_model(state.range(0));
  const auto tokens = bench_tokens(static_cast<std::size_t>(state.range(1)), m.vocab_size());
  const auto e = m.embed(tokens);
  const auto target = glassbox::target::log_probability(7);
  for (auto _ : state) benchmark::DoNotOptimize(m.embedding_gradient(e, target).gradient.data());
  set_context(state, m);
}

// The same gradient computed as PyTorch does by default: every row's logits in the forward pass and
// the unembedding's backward over every row (the seed's derivative is zero outside the last row).
void gradient_all_rows(benchmark::State& state) {
  const auto& m = bench_model(state.range(0));
  const auto tokens = bench_tokens(static_cast<std::size_t>(state.range(1)), m.vocab_size());
  const auto e = m.embed(tokens);
  const auto target = glassbox::target::log_probability(7);
  const glassbox::output_seed seed(
      [](std::size_t n) {
        std::vector<std::size_t> r(n);
        for (std::size_t i = 0; i < n; ++i) r[i] = i;
        return r;
      },
      [&](const glassbox::tensor2& z, glassbox::tensor2& dz) {
        const std::size_t last = z.shape(0) - 1, v = z.shape(1);
        glassbox::tensor2 row = glassbox::tensor2::from_shape({1, v}), drow;
        std::copy_n(z.data() + last * v, v, row.data());
        const double value = target.value_and_gradient(row, drow);
        dz = xt::zeros<float>(z.shape());
        std::copy_n(drow.data(), v, dz.data() + last * v);
        return value;
      });
  for (auto _ : state) benchmark::DoNotOptimize(m.embedding_gradient(e, seed).gradient.data());
  set_context(state, m);
}

// Next-token loss over the whole sequence and its gradient w.r.t. every parameter (training, influence).
void parameter_gradient(benchmark::State& state) {
  const auto& m = bench_model(state.range(0));
  const auto tokens = bench_tokens(static_cast<std::size_t>(state.range(1)), m.vocab_size());
  const std::vector<glassbox::training_example> batch{glassbox::training_example::next_token(tokens)};
  std::vector<float> gradient(m.parameter_count());
  for (auto _ : state) benchmark::DoNotOptimize(m.mean_loss_gradient(batch, gradient));
  set_context(state, m);
}

// A batch of 16 inputs of 32 tokens (e.g. integrated-gradient steps) in one stacked pass, and one by one.
void gradient_batch16(benchmark::State& state) {
  const auto& m = bench_model(state.range(0));
  const std::size_t T = static_cast<std::size_t>(state.range(1)), B = 16, d = m.width();
  const auto e = m.embed(bench_tokens(T, m.vocab_size()));
  glassbox::tensor3 batch = glassbox::tensor3::from_shape({B, T, d});
  for (std::size_t b = 0; b < B; ++b)
    for (std::size_t i = 0; i < T * d; ++i) batch.data()[b * T * d + i] = e.data()[i] * static_cast<float>(b + 1) / B;
  const auto target = glassbox::target::log_probability(7);
  for (auto _ : state) benchmark::DoNotOptimize(m.embedding_gradient_batch(batch, target).gradients.data());
  set_context(state, m);
}

void gradient_16_single(benchmark::State& state) {
  const auto& m = bench_model(state.range(0));
  const std::size_t T = static_cast<std::size_t>(state.range(1)), B = 16;
  const auto e = m.embed(bench_tokens(T, m.vocab_size()));
  const auto target = glassbox::target::log_probability(7);
  for (auto _ : state)
    for (std::size_t b = 0; b < B; ++b) benchmark::DoNotOptimize(m.embedding_gradient(e, target).gradient.data());
  set_context(state, m);
}

}  // namespace

#define GLASSBOX_GPT2_BENCH(fn) \
  BENCHMARK(fn)->ArgNames({"config", "T"})->ArgsProduct({{0, 1}, {32, 128}})->Unit(benchmark::kMillisecond)->UseRealTime()

GLASSBOX_GPT2_BENCH(forward_all_logits);
GLASSBOX_GPT2_BENCH(forward_last_row);
GLASSBOX_GPT2_BENCH(gradient_target_row);
GLASSBOX_GPT2_BENCH(gradient_all_rows);
GLASSBOX_GPT2_BENCH(parameter_gradient);
BENCHMARK(gradient_batch16)->ArgNames({"config", "T"})->Args({1, 32})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(gradient_16_single)->ArgNames({"config", "T"})->Args({1, 32})->Unit(benchmark::kMillisecond)->UseRealTime();

BENCHMARK_MAIN();

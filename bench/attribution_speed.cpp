// Attribution speed inside the process: the library call alone of each method bench/captum_speed.py
// times (Captum's figure is also its attribute() call alone), with causal prefix reuse on and off,
// and the values' largest difference between the two. The model is the random float32 GPT-2 of
// captum_speed.py's shape (6 layers, 4 heads, width 256, vocabulary 5,000, 128 positions); the
// target is the log-probability of token 3 at the last position, the baseline zero embeddings.
//
//   attribution_speed [--model DIR] [--repetitions N] [--threads T] [--batch-size B] [--methods LIST]
//
// --model: a checkpoint directory (captum_speed.py writes one to /tmp/glassbox_captum_speed);
//          without it a random GPT-2 of the same shape (timings do not depend on the weights).
// --methods: ig,ablation,occlusion,shapley,kernelshap (default: all). Times are medians of
// --repetitions calls (default 5) after one warm-up call, wall clock, at --threads (default 1).
//
// It first prints the rate of one float matrix product of the model's largest shape (3200 x 256
// times 256 x 1024, the MLP of integrated gradients' batch) through the GEMM every pass uses: the
// ceiling any exact method's speed has on this machine at this thread count (docs/benchmarks.md).
#include <fmt/core.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <glassbox/attribution.hpp>
#include <glassbox/core.hpp>
#include <glassbox/models/gpt2.hpp>
#include <glassbox/models/detail/gpt2_kernels.hpp>
#include <sstream>
#include <string>
#include <vector>

namespace {

using namespace glassbox;

struct settings {
  std::string model;
  std::size_t repetitions = 5;
  std::size_t threads = 1;
  std::size_t batch_size = 64;
  std::string methods = "ig,ablation,occlusion,shapley,kernelshap";
};

[[noreturn]] void usage(const std::string& problem) {
  fmt::print(stderr, "attribution_speed: {}\n", problem);
  fmt::print(stderr,
             "usage: attribution_speed [--model DIR] [--repetitions N] [--threads T] [--batch-size B] "
             "[--methods ig,ablation,occlusion,shapley,kernelshap]\n");
  std::exit(2);
}

settings parse(int argc, char** argv) {
  settings s;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 >= argc) usage("missing value after " + a);
    const std::string v = argv[++i];
    if (a == "--model")
      s.model = v;
    else if (a == "--repetitions")
      s.repetitions = std::stoul(v);
    else if (a == "--threads")
      s.threads = std::stoul(v);
    else if (a == "--batch-size")
      s.batch_size = std::stoul(v);
    else if (a == "--methods")
      s.methods = v;
    else
      usage("unknown option " + a);
  }
  if (s.repetitions == 0) usage("--repetitions must be >= 1");
  return s;
}

token_sequence token_ids(std::size_t T) {  // as captum_speed.py
  token_sequence t(T);
  for (std::size_t i = 0; i < T; ++i) t[i] = static_cast<token_id>((i * 37 + 11) % 5000);
  return t;
}

// Median wall seconds of `reps` calls after one warm-up, and the last call's scores.
std::pair<double, std::vector<double>> time_calls(std::size_t reps, const std::function<attribution_result()>& call) {
  std::vector<double> seconds;
  attribution_result r = call();
  for (std::size_t k = 0; k < reps; ++k) {
    const auto t0 = std::chrono::steady_clock::now();
    r = call();
    seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(seconds.begin(), seconds.end());
  return {seconds[seconds.size() / 2], r.scores};
}

std::ptrdiff_t ix(std::size_t v) { return static_cast<std::ptrdiff_t>(v); }

// GFLOPs of evaluating every input of a method from scratch, as Captum's PyTorch model does: every
// position through every block (24 d^2 + 4 T d per position and block: the linear maps and the
// attention products over all T keys), the unembedding of the last position (2 d V); integrated
// gradients add the backward pass to the inputs only (24 d^2 + 8 T d, and 2 d V).
double scratch_gflop(const std::string& method, const models::gpt2_config& c) {
  const double d = static_cast<double>(c.n_embd), L = static_cast<double>(c.n_layer), V = static_cast<double>(c.vocab_size);
  auto forward = [&](double T) { return T * L * (24 * d * d + 4 * T * d) + 2 * d * V; };
  auto backward = [&](double T) { return T * L * (24 * d * d + 8 * T * d) + 2 * d * V; };
  if (method == "ig") return 50 * (forward(64) + backward(64)) / 1e9;
  // Inputs Captum evaluates at T = 32: the unperturbed one and one per ablated token (ablation), per
  // window of 3 (occlusion: 30), per permutation step (Shapley: 25 x 32), per sample (KernelSHAP).
  const double inputs = method == "ablation" ? 33 : method == "occlusion" ? 31 : method == "shapley" ? 801 : 512;
  return inputs * forward(32) / 1e9;
}

// GFLOP/s of C = A B, A [m, k], B [k, n], through the GPT-2's product kernel, median of 9.
double product_rate(std::size_t m, std::size_t k, std::size_t n) {
  std::vector<float, Eigen::aligned_allocator<float>> a(m * k), b(k * n), c(m * n);
  glassbox::rng g(5);
  for (auto& x : a) x = static_cast<float>(g.normal(0.0, 1.0));
  for (auto& x : b) x = static_cast<float>(g.normal(0.0, 1.0));
  std::vector<double> seconds;
  for (int rep = 0; rep < 10; ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
    detail::gpt2_gemm(c.data(), ix(n), detail::gpt2_op(a.data(), ix(m), ix(k)), detail::gpt2_op(b.data(), ix(k), ix(n)));
    if (rep > 0) seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(seconds.begin(), seconds.end());
  return 2.0 * static_cast<double>(m * k * n) / seconds[seconds.size() / 2] / 1e9;
}

}  // namespace

int main(int argc, char** argv) {
  const settings s = parse(argc, argv);
  models::gpt2_config c;
  c.n_layer = 6;
  c.n_head = 4;
  c.n_embd = 256;
  c.vocab_size = 5000;
  c.n_positions = 128;
  const auto t0 = std::chrono::steady_clock::now();
  const models::gpt2 model = s.model.empty() ? models::gpt2::random(c, 1) : models::gpt2::load(s.model);
  const double load = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const target t = target::log_probability(3);
  double rate = 0;
  {
    const pass_threads_scope scope(s.threads);
    rate = product_rate(3200, 256, 1024);
  }

  fmt::print("attribution_speed: {} ({} s to {}), library call alone, {} thread(s), batch size {}, median of {}\n",
             s.model.empty() ? "random GPT-2" : s.model, load, s.model.empty() ? "build" : "load", s.threads,
             s.batch_size, s.repetitions);
  fmt::print("matrix product 3200 x 256 x 1024 (the ceiling): {:.1f} GFLOP/s\n", rate);
  fmt::print(
      "| method | with prefix reuse (s) | without (s) | speed-up | max abs. difference of scores | from-scratch "
      "work (GFLOP) | that work at the ceiling (s) |\n");
  fmt::print("|---|---:|---:|---:|---:|---:|---:|\n");
  std::stringstream list(s.methods);
  for (std::string name; std::getline(list, name, ',');) {
    auto run = [&](bool reuse) {
      execution_options e{.batch_size = s.batch_size, .threads = s.threads};
      e.reuse_prefix = reuse;
      std::function<attribution_result()> call;
      if (name == "ig") {
        const auto tokens = token_ids(64);
        call = [&, tokens, e] {
          return integrated_gradients(model, tokens, t, {.steps = 50, .baseline = baseline::zero(), .execution = e});
        };
      } else if (name == "ablation") {
        const auto tokens = token_ids(32);
        call = [&, tokens, e] { return feature_ablation(model, tokens, t, {.baseline = baseline::zero(), .execution = e}); };
      } else if (name == "occlusion") {
        const auto tokens = token_ids(32);
        call = [&, tokens, e] {
          return occlusion(model, tokens, t, {.window = 3, .baseline = baseline::zero(), .execution = e});
        };
      } else if (name == "shapley") {
        const auto tokens = token_ids(32);
        call = [&, tokens, e] {
          return shapley_sampling(model, tokens, t,
                                  {.n_samples = 25, .baseline = baseline::zero(), .execution = e});
        };
      } else if (name == "kernelshap") {
        const auto tokens = token_ids(32);
        call = [&, tokens, e] {
          return kernel_shap(model, tokens, t, {.n_samples = 510, .baseline = baseline::zero(), .execution = e});
        };
      } else {
        usage("unknown method " + name);
      }
      return time_calls(s.repetitions, call);
    };
    const auto [with, a] = run(true);
    const auto [without, b] = run(false);
    double diff = 0;
    for (std::size_t i = 0; i < a.size(); ++i) diff = std::max(diff, std::abs(a[i] - b[i]));
    const double work = scratch_gflop(name, model.config());
    fmt::print("| {} | {:.4f} | {:.4f} | {:.2f}x | {:.2g} | {:.1f} | {:.3f} |\n", name, with, without, without / with,
               diff, work, work / rate);
  }
  return 0;
}

// Integrated gradients through the libtorch adapter against the raw libtorch forward + backward
// passes it needs (docs/benchmarks.md, "The libtorch adapter"). Both sides do the same model work:
// `steps` interpolated inputs alpha * e in batches of 32 (glassbox's default batch), one forward of
// each batch through the module's forward, the target log p(a) - log p(b) at the last position, and
// one autograd backward to the input embeddings. The raw side does it in libtorch alone (the target
// in libtorch too, the parameters frozen); the adapter side is glassbox::integrated_gradients on the adapted module, so the
// ratio is what the library costs on top: copies across the boundary, the seed evaluated in C++,
// Gauss-Legendre weights and the Riemann sum.
//
//   /usr/bin/python3 examples/libtorch/export_gpt2.py models/reviews reviews.pt
//   /usr/bin/python3 examples/libtorch/export_gpt2.py --random 6,6,384,128,8192 wide.pt
//   libtorch_ig_bench reviews.pt wide.pt [--tokens 32] [--steps 50] [--repeats 7]
#include "glassbox/adapters/libtorch.hpp"  // first: libtorch's headers (glog) define CHECK

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <vector>

#include "glassbox/attribution/integrated_gradients.hpp"

namespace {

using clock_type = std::chrono::steady_clock;

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// The raw libtorch work of integrated gradients: forward + backward of `steps` scaled inputs.
double raw_seconds(torch::jit::Module& module, const at::Tensor& e, std::size_t steps, std::int64_t a, std::int64_t b) {
  const auto start = clock_type::now();
  const std::int64_t T = e.size(0);
  for (std::size_t begin = 0; begin < steps; begin += 32) {
    const auto n = static_cast<std::int64_t>(std::min<std::size_t>(32, steps - begin));
    const at::Tensor alphas =
        (torch::arange(n, torch::kFloat) + static_cast<double>(begin) + 0.5) / static_cast<double>(steps);
    at::Tensor x = (alphas.view({n, 1, 1}) * e.unsqueeze(0)).detach().requires_grad_(true);
    const auto out = module.forward({x, c10::IValue()}).toTupleRef().elements()[0].toTensor();
    const at::Tensor logp = torch::log_softmax(out.select(1, T - 1), -1);
    const at::Tensor f = (logp.select(1, a) - logp.select(1, b)).sum();
    const auto g = torch::autograd::grad({f}, {x});
    (void)g[0].sum().item<float>();
  }
  return std::chrono::duration<double>(clock_type::now() - start).count();
}

int run(int argc, char** argv) {
  std::vector<std::string> files;
  std::size_t tokens = 32, steps = 50, repeats = 7;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&] {
      if (i + 1 >= argc) throw std::runtime_error(arg + " needs a value");
      return static_cast<std::size_t>(std::stoul(argv[++i]));
    };
    if (arg == "--tokens") tokens = value();
    else if (arg == "--steps") steps = value();
    else if (arg == "--repeats") repeats = value();
    else files.push_back(arg);
  }
  if (files.empty()) {
    fmt::print(stderr, "usage: libtorch_ig_bench FILE.pt... [--tokens 32] [--steps 50] [--repeats 7]\n");
    return 2;
  }
  fmt::print("integrated gradients, {} Gauss-Legendre steps in batches of 32, {} tokens, median of {} runs\n\n",
             steps, tokens, repeats);
  fmt::print("{:<28} {:>7} {:>10} {:>13} {:>7}\n", "model", "threads", "raw (ms)", "adapter (ms)", "ratio");
  for (const auto& file : files) {
    const auto model = glassbox::adapters::libtorch_model::load(file);
    torch::jit::Module raw = torch::jit::load(file, torch::kCPU);
    raw.eval();
    // The fastest raw baseline: only the input needs a gradient (with the parameters requiring one,
    // as torch.jit.load leaves them, the raw passes took 1.3x longer here).
    for (auto p : raw.parameters()) p.requires_grad_(false);
    const std::size_t T = std::min(tokens, model.max_positions());
    glassbox::token_sequence ids(T);
    for (std::size_t i = 0; i < T; ++i) ids[i] = static_cast<glassbox::token_id>((7 * i + 5) % model.vocab_size());
    const glassbox::tensor2 e = model.embed(ids);
    const at::Tensor et = glassbox::detail::libtorch::view(e).clone();
    const auto target = glassbox::target::contrast(3, 4);
    glassbox::integrated_gradients_options options;
    options.steps = steps;
    for (const int threads : {1, 2}) {
      at::set_num_threads(threads);
      options.execution.threads = static_cast<std::size_t>(threads);
      std::vector<double> a, r;
      (void)raw_seconds(raw, et, steps, 3, 4);  // warm up both
      (void)glassbox::integrated_gradients(model, ids, target, options);
      for (std::size_t k = 0; k < repeats; ++k) {
        r.push_back(raw_seconds(raw, et, steps, 3, 4));
        const auto start = clock_type::now();
        const auto ig = glassbox::integrated_gradients(model, ids, target, options);
        a.push_back(std::chrono::duration<double>(clock_type::now() - start).count());
        if (ig.scores.size() != T) return 1;
      }
      const double rm = median(r), am = median(a);
      fmt::print("{:<28} {:>7} {:>10.2f} {:>13.2f} {:>7.3f}\n",
                 fmt::format("{} ({}L d{} V{})", std::filesystem::path(file).filename().string(), model.n_layer(),
                             model.embedding_size(), model.vocab_size()),
                 threads, rm * 1e3, am * 1e3, am / rm);
      std::fflush(stdout);
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) try {
  return run(argc, argv);
} catch (const std::exception& e) {
  fmt::print(stderr, "libtorch_ig_bench: {}\n", e.what());
  return 1;
}

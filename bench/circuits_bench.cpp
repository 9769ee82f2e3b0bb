// The cost of the circuits module (docs/circuits.md, "Speed"): a layer x position residual
// activation-patching sweep, whose patches run from the patched block on only, against the same
// sweep run from the embeddings, and attribution patching's three passes against one forward pass;
// head and neuron sweeps; the agreement of attribution patching with real patching.
//
//   circuits_bench [--shape bundled|gpt2-small] [--tokens T] [--threads N] [--repeats R]
//
// The gpt2-small shape is random weights of GPT-2 small's configuration (time does not depend on
// the values); the bundled shape loads models/reviews.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include <glassbox/circuits.hpp>
#include <glassbox/core/random.hpp>
#include <glassbox/models/gpt2.hpp>

namespace {

using clock_type = std::chrono::steady_clock;

template <class F>
double best_seconds(int repeats, F&& f) {
  double best = 1e300;
  for (int i = 0; i < repeats; ++i) {
    const auto t0 = clock_type::now();
    f();
    best = std::min(best, std::chrono::duration<double>(clock_type::now() - t0).count());
  }
  return best;
}

double pearson(const xt::xtensor<double, 2>& a, const xt::xtensor<double, 2>& b) {
  const double n = static_cast<double>(a.size());
  double ma = 0, mb = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    ma += a.data()[i] / n;
    mb += b.data()[i] / n;
  }
  double ab = 0, aa = 0, bb = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    ab += (a.data()[i] - ma) * (b.data()[i] - mb);
    aa += (a.data()[i] - ma) * (a.data()[i] - ma);
    bb += (b.data()[i] - mb) * (b.data()[i] - mb);
  }
  return ab / std::sqrt(aa * bb);
}

}  // namespace

int main(int argc, char** argv) {
  std::string shape = "bundled";
  std::size_t T = 0, threads = 1;
  int repeats = 3;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&] { return i + 1 < argc ? std::string(argv[++i]) : std::string(); };
    if (a == "--shape") shape = next();
    else if (a == "--tokens") T = std::stoul(next());
    else if (a == "--threads") threads = std::stoul(next());
    else if (a == "--repeats") repeats = std::stoi(next());
    else {
      std::fprintf(stderr, "usage: circuits_bench [--shape bundled|gpt2-small] [--tokens T] [--threads N] [--repeats R]\n");
      return 2;
    }
  }
  using glassbox::models::gpt2;
  const gpt2 model = shape == "gpt2-small"
                         ? gpt2::random(glassbox::models::gpt2_config::gpt2_small(), 1)
                         : gpt2::load(std::string(GLASSBOX_SOURCE_DIR) + "/models/reviews");
  if (T == 0) T = shape == "gpt2-small" ? 32 : 12;
  glassbox::rng g(5);
  glassbox::token_sequence clean(T), corrupt;
  const std::size_t V = model.vocab_size();
  for (auto& t : clean) t = static_cast<glassbox::token_id>(5 + g.below(std::min<std::size_t>(V - 5, 200)));
  corrupt = clean;
  corrupt[T / 2] = static_cast<glassbox::token_id>(5 + (static_cast<std::size_t>(clean[T / 2]) + 7) % 200);
  const auto metric = glassbox::target::contrast(3, 4, glassbox::target_kind::logit);
  const std::size_t L = model.n_layer();
  const glassbox::execution_options exec{.threads = threads};
  const glassbox::pass_threads_scope scope(threads);

  // One forward pass at the metric's row, the unit of every other figure.
  const std::vector<std::size_t> last = {T - 1};
  const double forward = best_seconds(repeats, [&] { (void)model.logits_at(clean, last); });
  // The sweep as the library runs it: patches at block l run blocks l..L-1.
  glassbox::patching_result sweep;
  const double library = best_seconds(repeats, [&] {
    sweep = glassbox::activation_patching(model, clean, corrupt, metric, {.level = glassbox::patch_level::residual, .exec = exec});
  });
  // The same sweep with every patch run from the embeddings (logits_with_patches).
  const auto cache = model.run_with_cache(clean);
  const double from_start = best_seconds(repeats, [&] {
    for (std::size_t l = 0; l < L; ++l)
      for (std::size_t p = 0; p < T; ++p) {
        glassbox::component_patch patch{glassbox::component_site::residual, l, 0, {p}, xt::view(cache.residual, l, xt::keep(p)), false};
        (void)model.logits_with_patches(corrupt, std::span(&patch, 1), last);
      }
  });
  // Blocks run by the library's sweep: sum over l of (L - l) per position, against L per position.
  double blocks = 0;
  for (std::size_t l = 0; l < L; ++l) blocks += static_cast<double>(L - l) / static_cast<double>(L);
  const double predicted = (blocks * static_cast<double>(T) + 2) * forward;

  glassbox::patching_result attribution;
  const double attr = best_seconds(repeats, [&] {
    attribution = glassbox::attribution_patching(model, clean, corrupt, metric, {.level = glassbox::patch_level::residual});
  });
  const double fwd_bwd = best_seconds(repeats, [&] {
    (void)model.component_gradients(corrupt, glassbox::output_seed(metric));
  });
  const double heads = best_seconds(1, [&] {
    (void)glassbox::activation_patching(model, clean, corrupt, metric, {.level = glassbox::patch_level::head, .exec = exec});
  });
  const auto head_act = glassbox::activation_patching(model, clean, corrupt, metric, {.level = glassbox::patch_level::head, .exec = exec});
  const auto head_att = glassbox::attribution_patching(model, clean, corrupt, metric, {.level = glassbox::patch_level::head});

  std::printf("circuits_bench: %s shape (L=%zu, H=%zu, d=%zu), T=%zu tokens, %zu thread(s), best of %d\n",
              shape.c_str(), L, model.n_head(), model.width(), T, threads, repeats);
  std::printf("| what | seconds | in forward passes |\n|---|---|---|\n");
  std::printf("| one forward pass (logits at the last row) | %.5f | 1 |\n", forward);
  std::printf("| residual sweep, %zu x %zu patches, library (from the patched block on) | %.4f | %.1f |\n", L, T,
              library, library / forward);
  std::printf("| the same sweep, every patch from the embeddings | %.4f | %.1f |\n", from_start, from_start / forward);
  std::printf("| predicted for the library: (sum_l (L - l) / L) x T + 2 passes | %.4f | %.1f |\n", predicted,
              predicted / forward);
  std::printf("| attribution patching, the whole residual sweep | %.5f | %.2f |\n", attr, attr / forward);
  std::printf("| of which component_gradients (forward + backward) | %.5f | %.2f |\n", fwd_bwd, fwd_bwd / forward);
  std::printf("| head sweep, %zu x %zu patches, activation patching | %.4f | %.1f |\n", L, model.n_head(), heads,
              heads / forward);
  std::printf("\nattribution vs activation patching: residual r = %.3f, heads r = %.3f\n",
              pearson(sweep.values, attribution.values), pearson(head_act.values, head_att.values));
  return 0;
}

// Attention flow speed: glassbox's exact Dinic-based attention flow against a straightforward
// per-pair Edmonds-Karp (the algorithm the reference code runs through networkx), on random
// attention tensors: softmax of N(0, 2^2) scores under a causal mask (two rows without a mask,
// as an encoder's attention, for comparison).
//
// Each row of the table computes the flow from every position of the last layer to every input
// token (T^2 pairs). glassbox runs on one thread (and, for comparison, on every hardware thread);
// its times are the best of at least three runs. Single-threaded times (glassbox on one thread and
// the baseline) are CPU times of the thread, so that other work on a shared machine does not
// inflate them; the all-threads column is wall time.
// The Edmonds-Karp baseline builds the whole layered graph once as adjacency lists with paired
// residual arcs and, for each (source, sink) pair, resets the residuals and augments along BFS
// shortest paths until none is left, exactly as the reference does pair by pair. It stops after
// --ek-budget seconds per size; its total is then extrapolated from a uniformly random sample of
// pairs (marked "~" in the table), and its values are compared with glassbox's on the pairs it did.
//
//   attention_flow_bench [--ek-budget SECONDS] [--quick]
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <glassbox/attention/flow.hpp>
#include <glassbox/core/random.hpp>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

using glassbox::tensor4;
using clock_type = std::chrono::steady_clock;

double seconds_since(clock_type::time_point start) {
  return std::chrono::duration<double>(clock_type::now() - start).count();
}

// CPU time of the calling thread: single-threaded runs are timed by it, so that other processes
// on a shared machine do not inflate them (they still share the caches).
double thread_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

tensor4 random_attentions(std::size_t layers, std::size_t heads, std::size_t t, bool causal, std::uint64_t seed) {
  glassbox::rng g(seed);
  tensor4 a({layers, heads, t, t});
  std::vector<double> s(t);
  for (std::size_t l = 0; l < layers; ++l)
    for (std::size_t h = 0; h < heads; ++h)
      for (std::size_t i = 0; i < t; ++i) {
        const std::size_t keys = causal ? i + 1 : t;
        double m = -1e300, z = 0;
        for (std::size_t j = 0; j < keys; ++j) {
          s[j] = 2.0 * g.normal();
          m = std::max(m, s[j]);
        }
        for (std::size_t j = 0; j < keys; ++j) z += std::exp(s[j] - m);
        for (std::size_t j = 0; j < t; ++j)
          a(l, h, i, j) = j < keys ? static_cast<float>(std::exp(s[j] - m) / z) : 0.0f;
      }
  return a;
}

// The straightforward baseline: Edmonds-Karp per pair on adjacency lists of the whole graph.
class edmonds_karp_baseline {
 public:
  explicit edmonds_karp_baseline(const glassbox::tensor3& graph)
      : levels_(graph.shape(0)), t_(graph.shape(1)), adjacency_((levels_ + 1) * t_) {
    for (std::size_t k = 1; k <= levels_; ++k)
      for (std::size_t p = 0; p < t_; ++p)
        for (std::size_t q = 0; q < t_; ++q) {
          const double c = graph(k - 1, p, q);
          if (c <= 0) continue;
          const std::size_t u = k * t_ + p, v = (k - 1) * t_ + q;
          adjacency_[u].push_back(arcs_.size());
          arcs_.push_back({v, arcs_.size() + 1, c});
          adjacency_[v].push_back(arcs_.size());
          arcs_.push_back({u, arcs_.size() - 1, 0.0});
          capacity_.push_back(c);
          capacity_.push_back(0.0);
        }
  }

  double max_flow(std::size_t source_position, std::size_t sink_position) {
    for (std::size_t a = 0; a < arcs_.size(); ++a) arcs_[a].residual = capacity_[a];
    const std::size_t s = levels_ * t_ + source_position, sink = sink_position, n = adjacency_.size();
    std::vector<std::ptrdiff_t> via(n);
    std::vector<std::size_t> queue(n);
    double total = 0;
    while (true) {
      std::fill(via.begin(), via.end(), -1);
      via[s] = -2;
      std::size_t head = 0, tail = 0;
      queue[tail++] = s;
      while (head < tail && via[sink] == -1) {
        const std::size_t u = queue[head++];
        for (std::size_t a : adjacency_[u]) {
          const auto& x = arcs_[a];
          if (x.residual > 1e-12 && via[x.to] == -1) {
            via[x.to] = static_cast<std::ptrdiff_t>(a);
            queue[tail++] = x.to;
          }
        }
      }
      if (via[sink] == -1) return total;
      double bottleneck = 1e300;
      for (std::size_t v = sink; v != s; v = arcs_[arcs_[static_cast<std::size_t>(via[v])].reverse].to)
        bottleneck = std::min(bottleneck, arcs_[static_cast<std::size_t>(via[v])].residual);
      for (std::size_t v = sink; v != s;) {
        auto& x = arcs_[static_cast<std::size_t>(via[v])];
        x.residual -= bottleneck;
        arcs_[x.reverse].residual += bottleneck;
        v = arcs_[x.reverse].to;
      }
      total += bottleneck;
    }
  }

 private:
  struct arc {
    std::size_t to;
    std::size_t reverse;
    double residual;
  };
  std::size_t levels_, t_;
  std::vector<std::vector<std::size_t>> adjacency_;
  std::vector<arc> arcs_;
  std::vector<double> capacity_;
};

struct row {
  std::size_t layers, heads, tokens;
  bool causal;
  double one_thread, all_threads;
  double ek_seconds;
  bool ek_extrapolated;
  std::size_t ek_pairs_done;
  double max_difference;
  std::int64_t problems, phases;
};

std::int64_t diagnostic(const glassbox::attention_relevance_result& r, std::string_view name) {
  for (const auto& d : r.diagnostics)
    if (d.name == name) return std::get<std::int64_t>(d.value);
  return -1;
}

row measure(std::size_t layers, std::size_t heads, std::size_t t, bool causal, double ek_budget) {
  const tensor4 a = random_attentions(layers, heads, t, causal, 1000 * layers + t);
  row r{layers, heads, t, causal, 0, 0, 0, false, 0, 0, 0, 0};
  glassbox::flow_options one;
  one.execution.threads = 1;
  glassbox::attention_relevance_result result;
  // The best of several runs (at least 3, and for 2 s in all), which filters out the other
  // processes of a shared machine.
  auto best_of = [&](const glassbox::flow_options& o, bool cpu_time) {
    double best = 1e300, spent = 0;
    for (int rep = 0; rep < 3 || (spent < 2.0 && rep < 50); ++rep) {
      const auto start = clock_type::now();
      const double cpu_start = thread_seconds();
      result = glassbox::attention_flow(a, o);
      const double s = cpu_time ? thread_seconds() - cpu_start : seconds_since(start);
      best = std::min(best, s);
      spent += seconds_since(start);
    }
    return best;
  };
  r.one_thread = best_of(one, true);
  glassbox::flow_options all;
  all.execution.threads = 0;
  r.all_threads = best_of(all, false);
  r.problems = diagnostic(result, "max_flow_problems");
  r.phases = diagnostic(result, "dinic_phases");

  // The baseline on the same capacities, pairs in a uniformly random order until the budget ends.
  edmonds_karp_baseline ek(result.layer_maps);
  std::vector<std::pair<std::size_t, std::size_t>> pairs;
  for (std::size_t i = 0; i < t; ++i)
    for (std::size_t j = 0; j < t; ++j) pairs.emplace_back(i, j);
  glassbox::rng g(t);
  g.shuffle(pairs.begin(), pairs.end());
  const auto start_ek = clock_type::now();
  const double cpu_ek = thread_seconds();
  for (const auto& [i, j] : pairs) {
    const double v = ek.max_flow(i, j);
    r.max_difference = std::max(
        r.max_difference, std::abs(v - static_cast<double>(result.unnormalized(i, j))) / std::max(1.0, std::abs(v)));
    ++r.ek_pairs_done;
    if (seconds_since(start_ek) > ek_budget) break;
  }
  r.ek_seconds = thread_seconds() - cpu_ek;
  if (r.ek_pairs_done < pairs.size()) {
    r.ek_extrapolated = true;
    r.ek_seconds *= static_cast<double>(pairs.size()) / static_cast<double>(r.ek_pairs_done);
  }
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  double ek_budget = 20;
  bool quick = false;
  for (int k = 1; k < argc; ++k) {
    const std::string_view arg = argv[k];
    if (arg == "--ek-budget" && k + 1 < argc) {
      ek_budget = std::atof(argv[++k]);
    } else if (arg == "--quick") {
      quick = true;
    } else {
      std::fprintf(stderr, "usage: attention_flow_bench [--ek-budget SECONDS] [--quick]\n");
      return 2;
    }
  }
  struct size {
    std::size_t layers, tokens;
    bool causal = true;
  };
  std::vector<size> sizes = {{6, 16},  {6, 32},   {6, 64}, {6, 128}, {12, 16},       {12, 32},
                             {12, 64}, {12, 128}, {3, 64}, {24, 64}, {6, 64, false}, {12, 64, false}};
  if (quick) sizes = {{6, 16}, {6, 32}, {6, 64}, {12, 64}, {6, 64, false}};
  const std::size_t heads = 8;
  fmt::print("attention flow: all T x T (source, sink) pairs of the last layer, H = {}, softmax attention\n", heads);
  fmt::print("hardware threads: {}; Edmonds-Karp budget {} s per size (~ = extrapolated from a random sample)\n\n",
             std::thread::hardware_concurrency(), ek_budget);
  fmt::print(
      "| L | T | mask | glassbox, 1 thread (CPU s) | glassbox, all threads (wall s) | per-pair Edmonds-Karp (CPU s) | "
      "ratio | max rel. diff | max-flow problems | Dinic phases |\n");
  fmt::print("|---|---|---|---|---|---|---|---|---|---|\n");
  std::vector<row> rows;
  for (const auto& s : sizes) {
    const row r = measure(s.layers, heads, s.tokens, s.causal, ek_budget);
    rows.push_back(r);
    fmt::print("| {} | {} | {} | {:.4f} | {:.4f} | {}{:.2f} | {}{:.0f}x | {:.1e} | {} | {} |\n", r.layers, r.tokens,
               r.causal ? "causal" : "none", r.one_thread, r.all_threads, r.ek_extrapolated ? "~" : "", r.ek_seconds,
               r.ek_extrapolated ? "~" : "", r.ek_seconds / r.one_thread, r.max_difference, r.problems, r.phases);
    std::fflush(stdout);
  }
  // Growth: the exponent of T (L fixed) and of L (T fixed) between neighbouring causal sizes.
  fmt::print("\ngrowth of the 1-thread time (causal):\n");
  for (std::size_t a = 0; a < rows.size(); ++a)
    for (std::size_t b = 0; b < rows.size(); ++b) {
      const auto& x = rows[a];
      const auto& y = rows[b];
      if (!x.causal || !y.causal) continue;
      if (x.layers == y.layers && y.tokens == 2 * x.tokens)
        fmt::print("  L = {:2}, T {:3} -> {:3}: x{:.1f} (T^{:.2f})\n", x.layers, x.tokens, y.tokens,
                   y.one_thread / x.one_thread, std::log2(y.one_thread / x.one_thread));
      if (x.tokens == y.tokens && y.layers == 2 * x.layers)
        fmt::print("  T = {:3}, L {:2} -> {:2}: x{:.1f} (L^{:.2f})\n", x.tokens, x.layers, y.layers,
                   y.one_thread / x.one_thread, std::log2(y.one_thread / x.one_thread));
    }
  // The targets of issue 6.
  bool ok = true;
  for (const auto& r : rows) {
    if (r.layers == 6 && r.tokens == 64 && r.causal) {
      fmt::print("\nL = 6, H = 8, T = 64 on one core: {:.3f} s (target < 0.5 s): {}\n", r.one_thread,
                 r.one_thread < 0.5 ? "met" : "MISSED");
      ok = ok && r.one_thread < 0.5;
    }
    if (r.layers == 12 && r.tokens == 128 && r.causal) {
      fmt::print("L = 12, H = 8, T = 128 on one core: {:.3f} s (target < 10 s): {}\n", r.one_thread,
                 r.one_thread < 10 ? "met" : "MISSED");
      ok = ok && r.one_thread < 10;
    }
    ok = ok && r.max_difference < 1e-6;
  }
  return ok ? 0 : 1;
}

// The figures of docs/influence.md for the methods on flat parameter vectors (exact, CG, LiSSA):
//
//   1. leave-one-out: on multinomial logistic regression with L2 (the linear bag model over fixed
//      features; 200 training examples, 15% label noise), the predicted change in a test example's
//      loss when one training example is removed, s(q, n) / N, against retraining to convergence
//      (Newton's method) without it: Pearson and Spearman over 50 random and the 50 most influential
//      removals, for exact, CG and LiSSA (Koh & Liang 2017, their Figure 2);
//   2. agreement: exact, CG and LiSSA on the one-layer GPT-2 of 1,048 parameters of the unit tests,
//      for the true Hessian and the Gauss-Newton matrix;
//   3. cost on the bundled review model: CPU time of one gradient, Hessian-vector and
//      Gauss-Newton-vector product over 32 training reviews, on 1 thread and on all, and of a CG
//      influence run, with the peak memory.
//
// Run: influence_flat_bench [MODEL_DIR]   (default: the bundled model, models/reviews)
// CPU time is user + sys of the whole process (getrusage), the median of 5 repetitions.
#include <fmt/format.h>
#include <sys/resource.h>

#include <Eigen/Eigenvalues>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

#include "glassbox/core/execution.hpp"
#include "glassbox/core/random.hpp"
#include "glassbox/datasets/reviews.hpp"
#include "glassbox/influence.hpp"
#include "glassbox/models/gpt2.hpp"
#include "glassbox/models/linear_bag.hpp"

namespace {

using namespace glassbox;

double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         1e-6 * static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

double peak_rss_mib() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / 1024.0;
}

/// Median CPU and wall seconds of `reps` runs of fn.
template <class Fn>
std::pair<double, double> median_time(std::size_t reps, Fn&& fn) {
  std::vector<double> cpu, wall;
  for (std::size_t r = 0; r < reps; ++r) {
    const double c0 = cpu_seconds();
    const auto w0 = std::chrono::steady_clock::now();
    fn();
    cpu.push_back(cpu_seconds() - c0);
    wall.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - w0).count());
  }
  std::sort(cpu.begin(), cpu.end());
  std::sort(wall.begin(), wall.end());
  return {cpu[reps / 2], wall[reps / 2]};
}

double pearson(const std::vector<double>& a, const std::vector<double>& b) {
  const double n = static_cast<double>(a.size());
  const double ma = std::accumulate(a.begin(), a.end(), 0.0) / n, mb = std::accumulate(b.begin(), b.end(), 0.0) / n;
  double sab = 0, saa = 0, sbb = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    sab += (a[i] - ma) * (b[i] - mb);
    saa += (a[i] - ma) * (a[i] - ma);
    sbb += (b[i] - mb) * (b[i] - mb);
  }
  return sab / std::sqrt(saa * sbb);
}

std::vector<double> ranks(const std::vector<double>& x) {
  std::vector<std::size_t> order(x.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return x[a] < x[b]; });
  std::vector<double> r(x.size());
  for (std::size_t i = 0; i < order.size(); ++i) r[order[i]] = static_cast<double>(i);
  return r;
}

double spearman(const std::vector<double>& a, const std::vector<double>& b) { return pearson(ranks(a), ranks(b)); }

// ---- 1. leave-one-out ------------------------------------------------------------------------------

// Newton's method with backtracking on the mean loss, to a gradient norm of 1e-7.
bool fit(models::linear_bag& m, std::span<const training_example> data) {
  const std::size_t p = m.parameter_count();
  auto mean_loss = [&] {
    double s = 0;
    for (const auto& e : data) s += m.loss(e);
    return s / static_cast<double>(data.size());
  };
  for (int it = 0; it < 40; ++it) {
    Eigen::VectorXd grad = Eigen::VectorXd::Zero(static_cast<Eigen::Index>(p));
    for (const auto& e : data) {
      const auto gr = m.loss_gradient(e);
      for (std::size_t i = 0; i < p; ++i)
        grad[static_cast<Eigen::Index>(i)] += gr.gradient[i] / static_cast<double>(data.size());
    }
    if (grad.norm() < 1e-7) return true;
    const Eigen::MatrixXd h = curvature_matrix(m, data, hessian_kind::exact, {}, {.threads = 1});
    const Eigen::VectorXd step = h.ldlt().solve(grad);
    const std::vector<float> theta0(m.parameters().begin(), m.parameters().end());
    const double before = mean_loss();
    for (double t = 1; t > 1e-4; t /= 2) {
      std::vector<float> theta = theta0;
      for (std::size_t i = 0; i < p; ++i)
        theta[i] = static_cast<float>(theta0[i] - t * step[static_cast<Eigen::Index>(i)]);
      m.set_parameters(theta);
      if (mean_loss() <= before) break;
    }
  }
  return false;
}

void leave_one_out() {
  const std::size_t N = 200, vocab = 24, width = 5, classes = 3, removals = 50;
  const double l2 = 0.02;
  auto model = models::linear_bag::random(vocab, width, classes, 31);
  model.set_l2(l2);
  const auto teacher = models::linear_bag::random(vocab, width, classes, 31);
  glassbox::rng g(33);
  auto draw = [&] {
    token_sequence t(2 + g.below(5));
    for (auto& x : t) x = static_cast<token_id>(g.below(vocab));
    const auto z = teacher.logits(t);
    std::size_t best = 0;
    for (std::size_t c = 1; c < classes; ++c)
      if (z(t.size() - 1, c) > z(t.size() - 1, best)) best = c;
    if (g.bernoulli(0.15)) best = g.below(classes);
    return training_example::classification(t, static_cast<token_id>(best));
  };
  std::vector<training_example> training;
  for (std::size_t n = 0; n < N; ++n) training.push_back(draw());
  const training_example test = draw();
  model.set_parameters(std::vector<float>(model.parameter_count(), 0.0f));
  if (!fit(model, training)) fmt::print("warning: the full fit did not converge\n");
  const std::vector<measurement> q{measurement::loss(test)};
  const influence_options common{.damping = 0.0, .execution = {.threads = 1}};
  const auto exact = exact_influence(model, q, training, {.common = common, .hessian = hessian_kind::exact});
  const auto cg =
      cg_influence(model, q, training, {.common = common, .hessian = hessian_kind::exact, .tolerance = 1e-8});
  const double hi = *exact.highest_eigenvalue;
  const auto lissa = lissa_influence(
      model, q, training,
      {.common = common, .hessian = hessian_kind::exact, .depth = 20000, .scale = 0.6 * hi, .tolerance = 1e-8});
  const double base = model.loss(test);

  std::vector<std::size_t> random_order(N), top_order(N);
  std::iota(random_order.begin(), random_order.end(), 0);
  glassbox::rng(35).shuffle(random_order.begin(), random_order.end());
  std::iota(top_order.begin(), top_order.end(), 0);
  std::sort(top_order.begin(), top_order.end(),
            [&](std::size_t a, std::size_t b) { return std::abs(exact.scores(0, a)) > std::abs(exact.scores(0, b)); });
  fmt::print(
      "1. Leave-one-out on logistic regression with L2 (linear bag over fixed features): N = {}, {} parameters, "
      "l2 = {}, lowest eigenvalue of H {:.3g}, highest {:.3g}\n",
      N, model.parameter_count(), l2, *exact.lowest_eigenvalue, hi);
  fmt::print("   predicted change s(q, n) / N against retraining without z_n (Newton to |grad| < 1e-7)\n\n");
  fmt::print("   {:<28} {:>8} {:>9} {:>9} {:>9}\n", "removed examples", "method", "Pearson", "Spearman",
             "max |actual|");
  for (const auto& [name, order] :
       {std::pair{"50 at random (seed 35)", &random_order}, std::pair{"50 most influential |s|", &top_order}}) {
    std::vector<double> actual, pe, pc, pl;
    for (std::size_t k = 0; k < removals; ++k) {
      const std::size_t n = (*order)[k];
      std::vector<training_example> rest;
      for (std::size_t m = 0; m < N; ++m)
        if (m != n) rest.push_back(training[m]);
      auto retrained = model;
      if (!fit(retrained, rest)) fmt::print("warning: a retraining did not converge\n");
      actual.push_back(retrained.loss(test) - base);
      pe.push_back(exact.scores(0, n) / static_cast<double>(N));
      pc.push_back(cg.scores(0, n) / static_cast<double>(N));
      pl.push_back(lissa.scores(0, n) / static_cast<double>(N));
    }
    double mx = 0;
    for (double a : actual) mx = std::max(mx, std::abs(a));
    fmt::print("   {:<28} {:>8} {:>9.4f} {:>9.4f} {:>9.3g}\n", name, "exact", pearson(pe, actual), spearman(pe, actual),
               mx);
    fmt::print("   {:<28} {:>8} {:>9.4f} {:>9.4f}\n", "", "cg", pearson(pc, actual), spearman(pc, actual));
    fmt::print("   {:<28} {:>8} {:>9.4f} {:>9.4f}\n", "", "lissa", pearson(pl, actual), spearman(pl, actual));
  }
  fmt::print("\n");
}

// ---- 2. agreement on the 1,048-parameter GPT-2 ---------------------------------------------------------

std::vector<double> gpt2_test_parameters(const models::gpt2_config& c, std::uint64_t seed) {
  const auto table = models::gpt2_parameter_table(c);
  std::vector<double> p(table.back().offset + table.back().size);
  glassbox::rng g(seed);
  for (const auto& t : table) {
    const bool ln_weight = t.name.find("ln_") != std::string::npos && t.name.ends_with(".weight");
    for (std::size_t i = 0; i < t.size; ++i)
      p[t.offset + i] = static_cast<float>(ln_weight ? 1.0 + g.normal(0, 0.2) : g.normal(0, 0.4));
  }
  return p;
}

double relative_difference(const influence_result& a, const influence_result& b, std::size_t q) {
  double num = 0, den = 0;
  for (std::size_t n = 0; n < a.training_size; ++n) {
    const double d = static_cast<double>(a.scores(q, n)) - b.scores(q, n);
    num += d * d;
    den += static_cast<double>(b.scores(q, n)) * b.scores(q, n);
  }
  return std::sqrt(num / den);
}

void agreement() {
  models::gpt2_config c;
  c.n_layer = 1;
  c.n_head = 2;
  c.n_embd = 8;
  c.n_positions = 8;
  c.vocab_size = 12;
  const auto pd = gpt2_test_parameters(c, 4);
  const std::vector<float> pf(pd.begin(), pd.end());
  const models::gpt2 model(c, pf);
  glassbox::rng g(6);
  std::vector<training_example> training;
  for (std::size_t i = 0; i < 8; ++i) {
    token_sequence t(3 + g.below(4));
    for (auto& x : t) x = static_cast<token_id>(g.below(12));
    training.push_back(i % 2 == 0 ? training_example::next_token(t)
                                  : training_example::classification(t, static_cast<token_id>(g.below(12))));
  }
  const std::vector<measurement> queries{measurement::loss(training_example::next_token({3, 1, 4, 1, 5})),
                                         measurement::completion({2, 7, 1}, {8, 2}),
                                         measurement::contrast({6, 0, 2}, 4, 9)};
  fmt::print(
      "2. Exact, CG and LiSSA on a one-layer GPT-2 (width 8, {} parameters, 8 training examples, 3 queries:\n"
      "   a loss, a completion, a contrast); lambda = max(0, -lowest) + 0.05 highest, LiSSA scale = 0.6 (highest + "
      "lambda)\n\n",
      model.parameter_count());
  fmt::print("   {:<13} {:>10} {:>10} {:>9} {:>13} {:>13} {:>9} {:>11}\n", "hessian", "lowest", "highest", "lambda",
             "cg rel. diff", "lissa rel. d.", "cg iter.", "lissa steps");
  for (const auto kind : {hessian_kind::gauss_newton, hessian_kind::exact}) {
    const Eigen::MatrixXd h = curvature_matrix(model, training, kind);
    const Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig(h, Eigen::EigenvaluesOnly);
    const double lo = eig.eigenvalues().minCoeff(), hi = eig.eigenvalues().maxCoeff();
    const double lambda = std::max(0.0, -lo) + 0.05 * hi;
    const auto exact = exact_influence(model, queries, training, {.common = {.damping = lambda}, .hessian = kind});
    const auto cg =
        cg_influence(model, queries, training, {.common = {.damping = lambda}, .hessian = kind, .tolerance = 1e-7});
    const auto lissa = lissa_influence(model, queries, training,
                                       {.common = {.damping = lambda},
                                        .hessian = kind,
                                        .depth = 2000,
                                        .scale = 0.6 * (hi + lambda),
                                        .tolerance = 1e-7});
    double dc = 0, dl = 0;
    std::size_t ic = 0, il = 0;
    for (std::size_t q = 0; q < queries.size(); ++q) {
      dc = std::max(dc, relative_difference(cg, exact, q));
      dl = std::max(dl, relative_difference(lissa, exact, q));
      ic = std::max(ic, cg.solves[q].iterations);
      il = std::max(il, lissa.solves[q].iterations);
    }
    fmt::print("   {:<13} {:>10.4g} {:>10.4g} {:>9.4g} {:>13.2e} {:>13.2e} {:>9} {:>11}\n", to_string(kind), lo, hi,
               lambda, dc, dl, ic, il);
  }
  fmt::print(
      "   (relative difference: ||s_method - s_exact|| / ||s_exact|| over the training set, the largest of the 3 "
      "queries;\n    iterations: the largest of the 3 queries)\n\n");
}

// ---- 3. cost on the bundled model ------------------------------------------------------------------

void cost(const std::string& model_dir) {
  const auto model = models::gpt2::load(model_dir);
  const auto reviews = datasets::generate_reviews(288, 5);
  std::vector<training_example> batch, training;
  for (std::size_t i = 0; i < reviews.size(); ++i)
    (i < 32 ? batch : training).push_back(datasets::to_training_example(reviews[i]));
  const std::size_t p = model.parameter_count();
  glassbox::rng g(3);
  std::vector<float> v(p);
  for (auto& x : v) x = static_cast<float>(g.normal());
  const std::size_t hw = std::max(1u, std::thread::hardware_concurrency());
  fmt::print(
      "3. Cost on the bundled model ({}, {} parameters), one call over 32 training reviews; median of 5, CPU = "
      "user + sys\n\n",
      model_dir, p);
  fmt::print("   {:<44} {:>8} {:>12} {:>12}\n", "call", "threads", "CPU ms", "wall ms");
  std::vector<float> gradient(p);
  for (const std::size_t threads : {std::size_t{1}, hw}) {
    const pass_threads_scope scope(threads);
    const auto grad = median_time(5, [&] { model.mean_loss_gradient(batch, gradient); });
    const auto hvp = median_time(5, [&] { (void)model.hessian_vector_product(batch, v); });
    const auto gnvp = median_time(5, [&] { (void)model.gauss_newton_vector_product(batch, v); });
    fmt::print("   {:<44} {:>8} {:>12.2f} {:>12.2f}\n", "mean_loss_gradient (float)", threads, 1e3 * grad.first,
               1e3 * grad.second);
    fmt::print("   {:<44} {:>8} {:>12.2f} {:>12.2f}\n", "hessian_vector_product (dual<double>)", threads,
               1e3 * hvp.first, 1e3 * hvp.second);
    fmt::print("   {:<44} {:>8} {:>12.2f} {:>12.2f}\n", "gauss_newton_vector_product (dual<double>)", threads,
               1e3 * gnvp.first, 1e3 * gnvp.second);
  }
  // One CG influence run: one query against 256 training reviews, Gauss-Newton, lambda = 0.01.
  const std::vector<measurement> q{measurement::loss(batch[0])};
  const double c0 = cpu_seconds();
  const auto w0 = std::chrono::steady_clock::now();
  const auto r =
      cg_influence(model, q, training, {.common = {.damping = 0.01}, .tolerance = 1e-4, .max_iterations = 200});
  const double cpu = cpu_seconds() - c0;
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - w0).count();
  fmt::print(
      "\n   cg_influence, 1 query x {} training reviews, Gauss-Newton, lambda 0.01, tolerance 1e-4: {} iterations "
      "(relative residual {:.2e}{}), {} example passes, CPU {:.1f} s, wall {:.1f} s on {} threads\n",
      training.size(), r.solves[0].iterations, r.solves[0].relative_residual,
      r.solves[0].converged ? "" : ", not converged", r.model_evaluations, cpu, wall, hw);
  fmt::print("   peak resident memory of this program: {:.0f} MiB\n", peak_rss_mib());
}

}  // namespace

int main(int argc, char** argv) {
  const std::string model_dir = argc > 1 ? argv[1] : std::string(GLASSBOX_SOURCE_DIR) + "/models/reviews";
  fmt::print("influence_flat_bench: {} hardware threads\n\n", std::thread::hardware_concurrency());
  leave_one_out();
  agreement();
  cost(model_dir);
  return 0;
}

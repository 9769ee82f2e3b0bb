// Benchmarks and experiments of the representations module (docs/representations.md).
//
//   representations_bench lens-cost [--repeats 5] [--threads 1]
//       The logit lens over every layer against one forward pass plus L decodes (the bound:
//       at most 1.2x), on the bundled model and on a random GPT-2-small-shaped model.
//   representations_bench bundled [--reviews 1000] [--threads 0] [--model DIR]
//       On the bundled review model: logit lens against tuned lens per layer (KL, label perplexity,
//       accuracy); sentiment reading vectors from antonym pairs and the steering flip rate against
//       alpha; INLP removal of polarity (probe accuracy before / after, the model's accuracy with the
//       projection against random projections of the same rank).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fmt/format.h>
#include <glassbox/datasets/reviews.hpp>
#include <glassbox/models/gpt2.hpp>
#include <glassbox/representations.hpp>
#include <map>
#include <numeric>
#include <string>
#include <vector>

using namespace glassbox;
namespace ds = glassbox::datasets;

namespace {

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

void lens_cost(const models::gpt2& model, const std::string& name, std::size_t T, std::size_t repeats) {
  rng g(1);
  token_sequence tokens(T);
  for (auto& t : tokens) t = static_cast<token_id>(g.below(model.vocab_size()));
  const std::size_t L = model.config().n_layer, d = model.config().n_embd;
  const tensor3 hs = model.hidden_states(tokens);
  std::vector<double> lens_t, base_t;
  for (std::size_t r = 0; r < repeats; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    const auto lens = logit_lens(model, tokens, {.top_k = 5});
    lens_t.push_back(seconds_since(t0));
    t0 = std::chrono::steady_clock::now();
    const tensor2 z = model.logits(tokens);
    for (std::size_t k = 0; k < L; ++k) {
      tensor2 h = tensor2::from_shape({T, d});
      std::copy_n(hs.data() + k * T * d, T * d, h.data());
      const tensor2 zk = model.decode_hidden(h);
      if (zk(0, 0) == 12345.f && z(0, 0) == 0.f) std::puts("");  // keep the work
    }
    base_t.push_back(seconds_since(t0));
    if (lens.layers.size() != L + 1) std::puts("unexpected");
  }
  const double a = median(lens_t), b = median(base_t);
  fmt::print("| {} | {} | {} | {} | {:.2f} | {:.2f} | {:.3f}x |\n", name, L, T, model.vocab_size(), 1e3 * b, 1e3 * a,
             a / b);
}

/// Predicted label of a review: positive if its logit beats negative's at the last row.
bool predicts_positive(const tensor2& z) {
  const std::size_t t = z.shape(0) - 1;
  return z(t, ds::review_positive_id) > z(t, ds::review_negative_id);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: representations_bench lens-cost|bundled [--flag value ...]\n");
    return 2;
  }
  const std::string mode = argv[1];
  std::map<std::string, std::string> flags;
  for (int i = 2; i + 1 < argc; i += 2) flags[std::string(argv[i]).substr(2)] = argv[i + 1];
  const auto get = [&](const char* k, std::string def) { return flags.count(k) ? flags.at(k) : def; };
#ifdef GLASSBOX_SOURCE_DIR
  const std::string default_model = std::string(GLASSBOX_SOURCE_DIR) + "/models/reviews";
#else
  const std::string default_model = "models/reviews";
#endif
  try {
    const auto model = models::gpt2::load(get("model", default_model));
    const std::size_t threads = std::stoul(get("threads", mode == "lens-cost" ? "1" : "0"));
    pass_threads_scope scope(threads);
    if (mode == "lens-cost") {
      const std::size_t repeats = std::stoul(get("repeats", "5"));
      fmt::print("threads: {}; medians of {} runs\n\n", threads, repeats);
      fmt::print("| model | L | T | V | forward + L decodes, ms | logit lens (all layers, top 5, KL), ms | ratio |\n");
      fmt::print("|---|---|---|---|---|---|---|\n");
      lens_cost(model, "bundled (d = 64)", 24, repeats);
      models::gpt2_config c;
      c.n_layer = 12;
      c.n_head = 12;
      c.n_embd = 768;
      c.n_positions = 1024;
      c.vocab_size = 50257;
      lens_cost(models::gpt2::random(c, 7), "random GPT-2 small shape", 32, repeats);
      return 0;
    }
    if (mode != "bundled") {
      std::fprintf(stderr, "unknown mode %s\n", mode.c_str());
      return 2;
    }
    const std::size_t n = std::stoul(get("reviews", "1000"));
    const std::size_t L = model.config().n_layer;
    const execution_options exec{.threads = threads};
    auto t0 = std::chrono::steady_clock::now();

    // ---- lenses ----------------------------------------------------------------------------
    const auto train = ds::generate_reviews(n, 2), held = ds::generate_reviews(n / 2, 3);
    std::vector<token_sequence> train_inputs;
    for (const auto& r : train) train_inputs.push_back(r.tokens);
    std::vector<training_example> held_examples;
    for (const auto& r : held) held_examples.push_back(training_example::classification(r.tokens, r.true_label));
    const std::size_t steps = std::stoul(get("steps", "250")), batch = std::stoul(get("batch", "128"));
    const auto trained = train_tuned_lens(model, train_inputs,
                                          {.steps = steps, .batch_sequences = batch, .seed = 1, .execution = exec});
    const auto logit = evaluate_lens(model, held_examples, exec);
    const auto tuned = evaluate_lens(model, held_examples, trained.lens, exec);
    fmt::print("## Lenses (tuned lens: {} reviews, {} steps of {} sequences; evaluated on {} held-out reviews)\n\n",
               n, steps, batch, held.size());
    fmt::print("| layer | KL logit lens | KL tuned lens | label perplexity, logit | label perplexity, tuned | "
               "label accuracy, logit | label accuracy, tuned |\n|---|---|---|---|---|---|---|\n");
    for (std::size_t k = 0; k <= L; ++k)
      fmt::print("| {} | {:.3f} | {:.3f} | {:.2f} | {:.2f} | {:.1f}% | {:.1f}% |\n", k, logit.layers[k].kl,
                 tuned.layers[k].kl, logit.layers[k].perplexity, tuned.layers[k].perplexity,
                 100 * logit.layers[k].accuracy, 100 * tuned.layers[k].accuracy);
    fmt::print("\n(KL: nats, mean over all {} positions; perplexity and accuracy: the label after the marker)\n",
               logit.positions);
    fmt::print("lenses: {:.1f} s\n\n", seconds_since(t0));
    t0 = std::chrono::steady_clock::now();

    // ---- reading vectors from antonym pairs and steering ---------------------------------------
    std::vector<contrast_pair> pairs;
    for (const auto& r : ds::generate_reviews(n / 2, 4)) {
      if (r.truth.deciding_words.size() != 1) continue;
      token_sequence other = r.tokens;
      const std::size_t w = r.truth.deciding_words.front();
      other[w] = ds::review_antonym(other[w]);
      if (r.true_label == ds::review_positive_id)
        pairs.push_back({r.tokens, other});
      else
        pairs.push_back({other, r.tokens});
    }
    const auto vectors = reading_vectors(model, pairs, {.execution = exec});
    std::vector<token_sequence> steer_inputs;
    for (const auto& r : ds::generate_reviews(n / 2, 5)) steer_inputs.push_back(r.tokens);
    const auto contrast = target::contrast(ds::review_positive_id, ds::review_negative_id);
    // Alpha in units of the layer's mean separation of the pairs: 1 moves an input by the full
    // distance between a review and its antonym review along the vector.
    const std::vector<double> scales = {-2, -1, -0.5, -0.25, 0.25, 0.5, 1, 2};
    for (const bool last : {true, false}) {
      fmt::print("## Reading vectors ({} antonym pairs, last position) and steering ({} reviews, {})\n\n",
                 pairs.size(), steer_inputs.size(), last ? "the last position" : "every position");
      fmt::print("| layer | explained | pair accuracy | mean separation | mean norm of h |");
      for (double a : scales) fmt::print(" flip @ {} |", a);
      fmt::print("\n|---|---|---|---|---|");
      for (std::size_t i = 0; i < scales.size(); ++i) fmt::print("---|");
      fmt::print("\n");
      for (const auto& v : vectors) {
        double norm = 0;
        std::size_t rows = 0;
        for (std::size_t i = 0; i < std::min<std::size_t>(steer_inputs.size(), 100); ++i) {
          const tensor3 hs = model.hidden_states(steer_inputs[i]);
          const std::size_t T = hs.shape(1), d = hs.shape(2);
          for (std::size_t t = last ? T - 1 : 0; t < T; ++t) {
            double s2 = 0;
            for (std::size_t j = 0; j < d; ++j) s2 += double(hs(v.layer, t, j)) * hs(v.layer, t, j);
            norm += std::sqrt(s2);
            ++rows;
          }
        }
        fmt::print("| {} | {:.1f}% | {:.1f}% | {:.2f} | {:.2f} |", v.layer, 100 * v.explained, 100 * v.pair_accuracy,
                   v.mean_separation, norm / double(rows));
        std::vector<double> alphas;
        for (double c : scales) alphas.push_back(c * v.mean_separation);
        const auto curve = steering_curve(model, steer_inputs, contrast, v.layer, v.direction, alphas,
                                          {.last_position = last}, exec);
        for (const auto& p : curve)
          fmt::print(" {:.0f}%{} |", 100 * p.flip_rate,
                     p.wrong_way_rate > 0 ? fmt::format(" ({:.0f}%)", 100 * p.wrong_way_rate) : "");
        fmt::print("\n");
      }
      fmt::print("\n");
    }
    fmt::print("(flip @ c: alpha = c x the mean separation; among reviews predicted against alpha's direction, the "
               "fraction whose prediction the edit flips; in brackets, the fraction of the others pushed the wrong way)\n");
    fmt::print("reading and steering: {:.1f} s\n\n", seconds_since(t0));
    t0 = std::chrono::steady_clock::now();

    // ---- INLP: remove polarity ---------------------------------------------------------------
    fmt::print("## INLP removal of the label's polarity (last position; {} train, {} dev reviews)\n\n", n,
               held.size());
    fmt::print("| layer | probe dev accuracy before | after | directions removed | model accuracy | with INLP "
               "projection | with random projection (mean of 5) |\n|---|---|---|---|---|---|---|\n");
    for (std::size_t layer = 1; layer <= L; ++layer) {
      auto pooled = [&](const std::vector<ds::review_example>& rs, tensor2& x, std::vector<std::int32_t>& y) {
        const std::size_t d = model.config().n_embd;
        x = tensor2::from_shape({rs.size(), d});
        y.resize(rs.size());
        for (std::size_t i = 0; i < rs.size(); ++i) {
          const tensor3 hs = model.hidden_states(rs[i].tokens);
          const std::size_t T = hs.shape(1);
          for (std::size_t j = 0; j < d; ++j) x(i, j) = hs(layer, T - 1, j);
          y[i] = rs[i].true_label == ds::review_positive_id ? 1 : 0;
        }
      };
      tensor2 xt, xd;
      std::vector<std::int32_t> yt, yd;
      pooled(train, xt, yt);
      pooled(held, xd, yd);
      const auto removed = inlp(xt, yt, xd, yd, 2);
      const std::size_t rank = removed.basis.shape(0), d = model.config().n_embd;
      std::size_t plain = 0, projected = 0;
      std::vector<std::size_t> random_right(5, 0);
      std::vector<tensor2> random_bases;
      rng g(11 + layer);
      for (int r = 0; r < 5; ++r) {
        // A random orthonormal basis of the same rank (Gram-Schmidt of Gaussian vectors).
        std::vector<std::vector<double>> b;
        while (b.size() < rank) {
          std::vector<double> v(d);
          for (auto& x : v) x = g.normal();
          for (const auto& u : b) {
            double dot = 0;
            for (std::size_t j = 0; j < d; ++j) dot += u[j] * v[j];
            for (std::size_t j = 0; j < d; ++j) v[j] -= dot * u[j];
          }
          double nn = 0;
          for (double x : v) nn += x * x;
          for (auto& x : v) x /= std::sqrt(nn);
          b.push_back(v);
        }
        tensor2 basis = tensor2::from_shape({rank, d});
        for (std::size_t i = 0; i < rank; ++i)
          for (std::size_t j = 0; j < d; ++j) basis(i, j) = float(b[i][j]);
        random_bases.push_back(basis);
      }
      for (const auto& r : held) {
        const bool truth = r.true_label == ds::review_positive_id;
        plain += predicts_positive(model.logits(r.tokens)) == truth ? 1 : 0;
        projected += predicts_positive(projected_logits(model, r.tokens, layer, removed.basis)) == truth ? 1 : 0;
        for (int k = 0; k < 5; ++k)
          random_right[k] +=
              predicts_positive(projected_logits(model, r.tokens, layer, random_bases[k])) == truth ? 1 : 0;
      }
      const double N = double(held.size());
      const double random_mean = double(std::accumulate(random_right.begin(), random_right.end(), std::size_t{0})) / 5;
      fmt::print("| {} | {:.1f}% | {:.1f}% (majority {:.1f}%) | {} | {:.1f}% | {:.1f}% | {:.1f}% |\n", layer,
                 100 * removed.dev_accuracy.front(), 100 * removed.dev_accuracy.back(), 100 * removed.majority, rank,
                 100 * plain / N, 100 * projected / N, 100 * random_mean / N);
    }
    fmt::print("\n(the projection is applied at every position of the layer; 'after' is the last INLP classifier's "
               "dev accuracy on the projected rows)\n");
    fmt::print("INLP: {:.1f} s\n", seconds_since(t0));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "representations_bench: %s\n", e.what());
    return 1;
  }
}

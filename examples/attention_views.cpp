// Attention rollout and attention flow on the bundled model, and the HTML view of both.
//
// Raw attention weights of one head say little about where information comes from after several
// layers, because every layer also mixes in its residual stream. Rollout (Abnar & Zuidema 2020)
// multiplies the per-layer attention graphs, each mixed with the identity; flow treats the same
// graphs as a network of capacities and solves a maximum-flow problem from each output position to
// each input token. This program computes both for the last position of a review (where the
// bundled model predicts the label), prints the five input tokens each method draws on most, and
// writes the HTML view of each: a self-contained page with the method's matrix, the explained row
// on the tokens, the layer x head grid of the raw attention and the interactive head view.
//
//   attention_views [output directory] [model directory]     (writes attention_rollout.html and attention_flow.html)
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <numeric>
#include <string>
#include <vector>

#include "glassbox/attention/flow.hpp"
#include "glassbox/attention/raw.hpp"
#include "glassbox/attention/rollout.hpp"
#include "glassbox/datasets/reviews.hpp"
#include "glassbox/models/gpt2.hpp"
#include "glassbox/report/attention_html.hpp"

#ifndef GLASSBOX_MODELS_DIR
#define GLASSBOX_MODELS_DIR "models"  // examples/CMakeLists.txt points this at the source tree's models/
#endif

namespace {

// The k positions with the largest scores, largest first.
std::vector<std::size_t> top_positions(const std::vector<double>& scores, std::size_t k) {
  std::vector<std::size_t> order(scores.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  k = std::min(k, order.size());
  std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(k), order.end(),
                    [&](std::size_t a, std::size_t b) { return scores[a] > scores[b]; });
  order.resize(k);
  return order;
}

}  // namespace

int main(int argc, char** argv) try {
  namespace gd = glassbox::datasets;
  const std::filesystem::path out = argc > 1 ? argv[1] : ".";
  const std::string model_dir = argc > 2 ? argv[2] : GLASSBOX_MODELS_DIR "/reviews";

  const auto model = glassbox::models::gpt2::load(model_dir);
  const glassbox::token_sequence tokens =
      gd::encode_review("the food was not good but the service was excellent . =>");
  std::vector<std::string> words;
  for (const auto id : tokens) words.emplace_back(gd::review_word(id).word);

  // One forward pass gives the attention probabilities [L, H, T, T]; rollout and flow both read them.
  const auto raw = glassbox::raw_attention(model, tokens);
  const auto rollout = glassbox::attention_rollout(model, tokens);  // residual 0.5, heads averaged
  glassbox::flow_options flow_options;
  flow_options.sources = {tokens.size() - 1};  // solve only the last position's flows (T max-flow problems)
  const auto flow = glassbox::attention_flow(model, tokens, flow_options);

  fmt::print("input  {}\n", gd::decode_review(tokens));
  fmt::print("model  {} layers x {} heads; explained position {} ('{}')\n\n", raw.attentions.shape(0),
             raw.attentions.shape(1), tokens.size() - 1, words.back());
  for (const auto* r : {&rollout, &flow}) {
    fmt::print("{}: what position {} draws on most\n", r->method, r->position);
    for (const std::size_t j : top_positions(r->scores, 5))
      fmt::print("  {:>2} {:<12} {:.4f}\n", j, words[j], r->scores[j]);
  }

  // The HTML view of each method (report/ renders; the library itself never prints or writes).
  fmt::print("\n");
  for (const auto* r : {&rollout, &flow}) {
    const std::string page = glassbox::report::attention_html(raw, r, words);
    const std::filesystem::path file = out / fmt::format("{}.html", r->method);
    std::FILE* f = std::fopen(file.c_str(), "wb");
    if (f == nullptr || std::fwrite(page.data(), 1, page.size(), f) != page.size() || std::fclose(f) != 0) {
      std::fprintf(stderr, "attention_views: cannot write %s\n", file.c_str());
      return 1;
    }
    fmt::print("wrote {} ({} bytes)\n", file.string(), page.size());
  }

  // Both are distributions over the input tokens for the explained row.
  const double rollout_sum = std::accumulate(rollout.scores.begin(), rollout.scores.end(), 0.0);
  const double flow_sum = std::accumulate(flow.scores.begin(), flow.scores.end(), 0.0);
  fmt::print("row sums: rollout {:.6f}, flow {:.6f}\n", rollout_sum, flow_sum);
  return std::abs(rollout_sum - 1) < 1e-4 && std::abs(flow_sum - 1) < 1e-4 ? 0 : 1;
} catch (const std::exception& e) {
  std::fprintf(stderr, "attention_views: %s\n", e.what());
  return 1;
}

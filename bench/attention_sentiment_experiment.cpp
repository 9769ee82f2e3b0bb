// The attention experiment of issue 6 on a model of the synthetic review language (the bundled
// model of issue 4): which heads matter for the label, and whether rollout / flow from the
// prediction position reach the deciding sentiment word more than the distractors.
//
// For N held-out reviews (datasets::generate_reviews(N, seed)), each explained at its last
// position (the marker `=>`, whose next-token prediction is the label):
//   - per method (raw attention of the last layer, rollout, flow, AttGrad, Chefer), the score of
//     the deciding word, the mean score of the distractor sentiment words (sentiment words outside
//     the rationale) and of all other review tokens, and how often the deciding word beats every
//     distractor sentiment word;
//   - per head, the marker's mean attention on the deciding word and on the distractors, and how
//     often the deciding word is the head's strongest key;
//   - head importance (Michel et al., target log p(true label)), the single-head ablation and the
//     pruning curve with accuracy over {positive, negative}, and how many heads the model needs.
// Results print as tables and, with --json FILE, are written as one JSON document.
//
//   attention_sentiment_experiment MODEL [--reviews N] [--seed S] [--json FILE]
//   attention_sentiment_experiment --random-model SEED [...]     (a random GPT-2: a smoke test only)
//
// MODEL is a gpt2 checkpoint (a .safetensors file or a directory with model.safetensors and
// config.json) whose vocabulary is the review vocabulary.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <glassbox/attention.hpp>
#include <glassbox/datasets/reviews.hpp>
#include <glassbox/models/gpt2.hpp>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace {

using namespace glassbox;

/// Scores of one method over the data set.
struct method_summary {
  std::string method;
  double deciding = 0;    // mean score of the deciding word
  double distractor = 0;  // mean over reviews with distractors of their mean score
  double other = 0;       // mean over reviews of the mean score of non-rationale review tokens
  double wins = 0;        // fraction of reviews with distractors where deciding > every distractor
  std::size_t with_distractors = 0;
  std::size_t reviews = 0;
};

/// Per-token scores of every method for one review, explained at the last position.
std::vector<std::pair<std::string, std::vector<double>>> method_scores(const models::gpt2& model,
                                                                       const datasets::review_example& r) {
  const token_span tokens(r.tokens);
  const std::size_t t = tokens.size();
  const target explained = target::log_probability(r.true_label);
  std::vector<std::pair<std::string, std::vector<double>>> out;
  const tensor4 a = model.attentions(tokens);
  const tensor3 mean = aggregate_heads(a);
  std::vector<double> raw(t);
  for (std::size_t j = 0; j < t; ++j) raw[j] = mean(a.shape(0) - 1, t - 1, j);
  out.emplace_back("raw attention (last layer)", raw);
  out.emplace_back("rollout", attention_rollout(a).scores);
  flow_options f;
  f.sources = {t - 1};
  f.execution.threads = 1;
  out.emplace_back("flow", attention_flow(a, f).scores);
  out.emplace_back("attgrad", attgrad(model, tokens, explained).scores);
  out.emplace_back("chefer", chefer_relevance(model, tokens, explained).scores);
  return out;
}

void print_matrix(std::string_view title, const tensor2& m, double scale = 1.0) {
  fmt::print("{} (rows = layers, columns = heads)\n", title);
  for (std::size_t l = 0; l < m.shape(0); ++l) {
    fmt::print("  layer {:2}:", l);
    for (std::size_t h = 0; h < m.shape(1); ++h) fmt::print(" {:8.4f}", scale * m(l, h));
    fmt::print("\n");
  }
}

nlohmann::ordered_json matrix_json(const tensor2& m) {
  nlohmann::ordered_json rows = nlohmann::ordered_json::array();
  for (std::size_t l = 0; l < m.shape(0); ++l) {
    nlohmann::ordered_json row = nlohmann::ordered_json::array();
    for (std::size_t h = 0; h < m.shape(1); ++h) row.push_back(m(l, h));
    rows.push_back(row);
  }
  return rows;
}

int usage() {
  std::fprintf(stderr,
               "usage: attention_sentiment_experiment (MODEL | --random-model SEED) [--reviews N] [--seed S] "
               "[--json FILE]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string model_path, json_path;
  std::size_t n = 200;
  std::uint64_t seed = 2, random_seed = 0;
  bool random_model = false;
  for (int k = 1; k < argc; ++k) {
    const std::string_view arg = argv[k];
    if (arg == "--reviews" && k + 1 < argc) {
      n = std::strtoull(argv[++k], nullptr, 10);
    } else if (arg == "--seed" && k + 1 < argc) {
      seed = std::strtoull(argv[++k], nullptr, 10);
    } else if (arg == "--json" && k + 1 < argc) {
      json_path = argv[++k];
    } else if (arg == "--random-model" && k + 1 < argc) {
      random_model = true;
      random_seed = std::strtoull(argv[++k], nullptr, 10);
    } else if (!arg.starts_with("--") && model_path.empty()) {
      model_path = arg;
    } else {
      return usage();
    }
  }
  if (model_path.empty() == !random_model || n == 0) return usage();
  try {
    const auto start = std::chrono::steady_clock::now();
    models::gpt2 model = [&] {
      if (!random_model) return models::gpt2::load(model_path);
      models::gpt2_config c;
      c.n_layer = 2;
      c.n_head = 4;
      c.n_embd = 32;
      c.n_positions = 64;
      c.vocab_size = datasets::review_vocabulary().size();
      return models::gpt2::random(c, random_seed);
    }();
    const auto reviews = datasets::generate_reviews(n, seed);
    fmt::print("model: {} ({} layers x {} heads); {} held-out reviews of seed {}\n\n",
               random_model ? fmt::format("random GPT-2, seed {}", random_seed) : model_path, model.n_layer(),
               model.n_head(), n, seed);

    // --- Rollout / flow / gradient methods: the deciding word against the distractors. ---
    std::vector<method_summary> summaries;
    // Per head: the marker's attention on the deciding word, on the distractors (their mean, over
    // the reviews that have some) and the reviews where the deciding word is the strongest key.
    const std::size_t n_layer = model.n_layer(), n_head = model.n_head();
    tensor2 head_deciding = xt::zeros<float>({n_layer, n_head}), head_distractor = head_deciding,
            head_strongest = head_deciding;
    std::size_t head_reviews = 0, head_with_distractors = 0;
    for (const auto& r : reviews) {
      const auto& props = r.properties();
      const auto& deciding = r.truth.deciding_words;
      if (deciding.empty()) continue;
      std::vector<std::size_t> distractors, others;
      for (std::size_t j = 0; j < r.review_length(); ++j) {
        if (props[j].in_rationale) continue;
        others.push_back(j);
        if (props[j].is_sentiment) distractors.push_back(j);
      }
      {
        const tensor4 a = model.attentions(token_span(r.tokens));
        const std::size_t last = r.tokens.size() - 1;
        for (std::size_t l = 0; l < n_layer; ++l)
          for (std::size_t h = 0; h < n_head; ++h) {
            head_deciding(l, h) += a(l, h, last, deciding.front());
            std::size_t strongest = 0;
            for (std::size_t j = 1; j <= last; ++j)
              if (a(l, h, last, j) > a(l, h, last, strongest)) strongest = j;
            head_strongest(l, h) += strongest == deciding.front() ? 1.0f : 0.0f;
            if (!distractors.empty()) {
              double mean = 0;
              for (std::size_t j : distractors) mean += a(l, h, last, j);
              head_distractor(l, h) += static_cast<float>(mean / static_cast<double>(distractors.size()));
            }
          }
        ++head_reviews;
        head_with_distractors += distractors.empty() ? 0 : 1;
      }
      const auto scores = method_scores(model, r);
      if (summaries.empty())
        for (const auto& [name, s] : scores) summaries.push_back({name});
      for (std::size_t m = 0; m < scores.size(); ++m) {
        const auto& s = scores[m].second;
        auto& sum = summaries[m];
        const double d = s[deciding.front()];
        sum.deciding += d;
        double other = 0;
        for (std::size_t j : others) other += s[j];
        sum.other += others.empty() ? 0.0 : other / static_cast<double>(others.size());
        if (!distractors.empty()) {
          double mean = 0, best = -1e300;
          for (std::size_t j : distractors) {
            mean += s[j];
            best = std::max(best, s[j]);
          }
          sum.distractor += mean / static_cast<double>(distractors.size());
          sum.wins += d > best ? 1.0 : 0.0;
          ++sum.with_distractors;
        }
        ++sum.reviews;
      }
    }
    fmt::print("scores from the last position (means over reviews; 'beats all' over the reviews with distractors)\n");
    fmt::print(
        "| method | deciding word | distractor sentiment words | other review tokens | deciding beats all "
        "distractors |\n|---|---|---|---|---|\n");
    nlohmann::ordered_json methods = nlohmann::ordered_json::array();
    for (auto& s : summaries) {
      s.deciding /= static_cast<double>(s.reviews);
      s.other /= static_cast<double>(s.reviews);
      if (s.with_distractors > 0) {
        s.distractor /= static_cast<double>(s.with_distractors);
        s.wins /= static_cast<double>(s.with_distractors);
      }
      fmt::print("| {} | {:.3g} | {:.3g} | {:.3g} | {:.1f}% of {} |\n", s.method, s.deciding, s.distractor, s.other,
                 100 * s.wins, s.with_distractors);
      methods.push_back({{"method", s.method},
                         {"deciding", s.deciding},
                         {"distractor", s.distractor},
                         {"other", s.other},
                         {"deciding_beats_all_distractors", s.wins},
                         {"reviews_with_distractors", s.with_distractors},
                         {"reviews", s.reviews}});
    }

    head_deciding /= static_cast<float>(std::max<std::size_t>(head_reviews, 1));
    head_strongest /= static_cast<float>(std::max<std::size_t>(head_reviews, 1));
    head_distractor /= static_cast<float>(std::max<std::size_t>(head_with_distractors, 1));
    fmt::print("\nper head, the marker's attention (means over {} reviews; distractors over the {} with some)\n",
               head_reviews, head_with_distractors);
    print_matrix("attention on the deciding word", head_deciding);
    print_matrix("attention on a distractor sentiment word (mean over the distractors)", head_distractor);
    print_matrix("share of reviews where the deciding word is the strongest key", head_strongest);

    // --- Heads: importance, ablation, pruning curve. ---
    std::vector<labelled_example> data;
    for (const auto& r : reviews) data.push_back({r.tokens, r.true_label});
    head_importance_options io;
    const auto importance = head_importance(model, std::span<const labelled_example>(data), io);
    head_ablation_options ao;
    ao.candidates = {datasets::review_positive_id, datasets::review_negative_id};
    const auto ablation = head_ablation(model, std::span<const labelled_example>(data), ao);
    pruning_options po;
    po.candidates = ao.candidates;
    const auto curve = head_pruning_curve(model, std::span<const labelled_example>(data), po);
    fmt::print("\nhead importance, E|d log p(label) / d mask|, normalised per layer (Michel et al. 2019)\n");
    print_matrix("importance", importance.importance);
    print_matrix("raw importance, x 1e4", importance.raw_importance, 1e4);
    fmt::print("\nablation: change of mean log p(label) with one head masked (base {:.4f}, accuracy {:.3f})\n",
               ablation.base_mean_target, ablation.base_accuracy);
    print_matrix("target change", ablation.target_change);
    print_matrix("accuracy change", ablation.accuracy_change);
    fmt::print(
        "\npruning curve (least important heads masked first)\n| heads masked | accuracy | mean log p(label) |\n"
        "|---|---|---|\n");
    nlohmann::ordered_json steps = nlohmann::ordered_json::array();
    for (std::size_t s = 0; s < curve.heads_masked.size(); ++s) {
      fmt::print("| {} | {:.3f} | {:.4f} |\n", curve.heads_masked[s], curve.accuracy[s], curve.mean_target[s]);
      steps.push_back({{"heads_masked", curve.heads_masked[s]},
                       {"accuracy", curve.accuracy[s]},
                       {"mean_target", curve.mean_target[s]}});
    }
    nlohmann::ordered_json order = nlohmann::ordered_json::array();
    for (const auto& h : curve.pruning_order) order.push_back({h.layer, h.head});
    fmt::print("heads needed for 99% of the full accuracy: {} of {}\n", curve.heads_needed(0.99),
               model.n_layer() * model.n_head());
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    fmt::print("\n{:.1f} s in all\n", elapsed);

    if (!json_path.empty()) {
      nlohmann::ordered_json doc = {{"reviews", n},
                                    {"seed", seed},
                                    {"model", random_model ? "random" : model_path},
                                    {"methods", methods},
                                    {"importance", matrix_json(importance.importance)},
                                    {"raw_importance", matrix_json(importance.raw_importance)},
                                    {"ablation_target_change", matrix_json(ablation.target_change)},
                                    {"ablation_accuracy_change", matrix_json(ablation.accuracy_change)},
                                    {"base_accuracy", ablation.base_accuracy},
                                    {"pruning", steps},
                                    {"pruning_order", order},
                                    {"heads_needed_99", curve.heads_needed(0.99)}};
      std::ofstream(json_path) << doc.dump(2) << "\n";
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "attention_sentiment_experiment: %s\n", e.what());
    return 1;
  }
  return 0;
}

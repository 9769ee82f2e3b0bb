// Counterfactuals and adversarial examples on the bundled model against the review language's ground
// truth (docs/counterfactual.md, docs/ground-truth.md). For N held-out reviews, the label goal
// (positive vs negative after `=>`, the marker fixed):
//  - greedy (occlusion-guided) and beam search counterfactuals over deletion (<pad>) and substitution
//    by every review word (ids 5..223), at most --max-edits edits: how often one is found, how often the
//    minimal counterfactual touches the true rationale (the deciding word, its negator and
//    intensifier; datasets::label_of), how often the rule's label of the edited review changes too,
//    the mean number of edits and model calls;
//  - the minimal sufficient and necessary token sets: mean size, and how often they contain the
//    deciding word;
//  - PGD (L2 ball over the token embeddings) and the projected token attack: success rate, tokens
//    changed, model calls.
//
//   counterfactual_reviews [--reviews N] [--seed S] [--max-edits K] [--beam-width W] [--epsilon E] [--threads N]
//   (defaults: 200 reviews of seed 2, 3 edits, width 4, epsilons 0.05 0.1 0.25 0.5 1 2 4, 1 thread)
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <glassbox/counterfactual.hpp>
#include <glassbox/datasets/reviews.hpp>
#include <glassbox/models/gpt2.hpp>
#include <string>
#include <vector>

namespace gb = glassbox;
namespace ds = glassbox::datasets;

namespace {

struct tally {
  std::size_t runs = 0, found = 0, touches = 0, rule_changes = 0, edits = 0, calls = 0, minimal = 0;
  std::size_t at_but = 0, new_sentiment = 0, new_modifier = 0,
              other = 0;  // found, not touching the rationale: what the edits do
  double seconds = 0;
};

bool touches_rationale(const std::vector<gb::token_edit>& edits, const std::vector<std::size_t>& rationale) {
  return std::any_of(edits.begin(), edits.end(), [&](const gb::token_edit& e) {
    return std::find(rationale.begin(), rationale.end(), e.position) != rationale.end();
  });
}

void print_search(const char* name, const tally& t) {
  const double n = static_cast<double>(t.runs), f = static_cast<double>(std::max<std::size_t>(1, t.found));
  std::printf(
      "%-28s found %5.1f%%  touches rationale %5.1f%% of found  rule label changes %5.1f%% of found  "
      "minimal %5.1f%%  mean edits %.2f  mean model calls %.0f  (%.2f s)\n",
      name, 100.0 * t.found / n, 100.0 * t.touches / f, 100.0 * t.rule_changes / f, 100.0 * t.minimal / f, t.edits / f,
      t.calls / n, t.seconds);
  std::printf(
      "%-28s not touching the rationale: edits `but` %.1f%%, writes a sentiment word %.1f%%, writes a negator "
      "or intensifier %.1f%%, other %.1f%% of found\n",
      "", 100.0 * t.at_but / f, 100.0 * t.new_sentiment / f, 100.0 * t.new_modifier / f, 100.0 * t.other / f);
}

}  // namespace

int main(int argc, char** argv) {
  std::size_t n_reviews = 200, max_edits = 3, beam_width = 4, threads = 1;
  std::uint64_t seed = 2;
  std::vector<double> epsilons{0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0};
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&] { return i + 1 < argc ? std::string(argv[++i]) : std::string(); };
    if (a == "--reviews")
      n_reviews = std::stoul(next());
    else if (a == "--seed")
      seed = std::stoull(next());
    else if (a == "--max-edits")
      max_edits = std::stoul(next());
    else if (a == "--beam-width")
      beam_width = std::stoul(next());
    else if (a == "--epsilon")
      epsilons = {std::stod(next())};
    else if (a == "--threads")
      threads = std::stoul(next());
    else {
      std::fprintf(stderr,
                   "usage: counterfactual_reviews [--reviews N] [--seed S] [--max-edits K] [--beam-width W] "
                   "[--epsilon E] [--threads N]\n");
      return 2;
    }
  }
  const auto model = gb::models::gpt2::load(std::string(GLASSBOX_SOURCE_DIR) + "/models/reviews");
  const gb::pass_threads_scope scope(1);
  const gb::execution_options exec{.threads = threads};
  const auto reviews = ds::generate_reviews(n_reviews, seed);
  const auto goal = gb::counterfactual_goal::label_flip({ds::review_positive_id, ds::review_negative_id});
  // Substitutions and projections use the 219 review words (ids 5..223): not <pad>, <unk>, `=>` or the labels.
  std::vector<gb::token_id> words;
  for (gb::token_id id = 5; id < static_cast<gb::token_id>(ds::review_vocab_size()); ++id) words.push_back(id);
  std::printf(
      "counterfactual_reviews: models/reviews, %zu reviews of seed %llu, max_edits %zu, beam width %zu, "
      "%zu thread(s)\n\n",
      n_reviews, static_cast<unsigned long long>(seed), max_edits, beam_width, threads);

  tally greedy, beam, beam_negated, beam_contrast, deletion_only;
  std::size_t suff_size = 0, suff_deciding = 0, nec_found = 0, nec_size = 0, nec_deciding = 0, set_calls = 0;
  struct adversarial_tally {
    std::size_t pgd_success = 0, pgd_calls = 0, pta_success = 0, pta_changed = 0, pta_calls = 0, pta_touch = 0,
                pta_rule = 0;
    double pgd_seconds = 0, pta_seconds = 0;
  };
  std::vector<adversarial_tally> adv(epsilons.size());
  double set_seconds = 0;
  using clock = std::chrono::steady_clock;
  auto seconds = [](clock::time_point a) { return std::chrono::duration<double>(clock::now() - a).count(); };
  for (const auto& ex : reviews) {
    const std::vector<std::size_t> fixed{ex.tokens.size() - 1};
    const auto& rationale = ex.rationale();
    auto record = [&](tally& t, const gb::counterfactual_result& r, double s) {
      ++t.runs;
      t.calls += r.model_evaluations;
      t.seconds += s;
      if (!r.found) return;
      ++t.found;
      t.edits += r.edits.size();
      t.minimal += r.minimal ? 1 : 0;
      if (touches_rationale(r.edits, rationale)) {
        ++t.touches;
      } else if (std::any_of(r.edits.begin(), r.edits.end(),
                             [&](const gb::token_edit& e) { return e.position == ex.truth.but_position; })) {
        ++t.at_but;
      } else if (std::any_of(r.edits.begin(), r.edits.end(), [](const gb::token_edit& e) {
                   return ds::review_word(e.to).word_class == ds::review_word_class::sentiment;
                 })) {
        ++t.new_sentiment;
      } else if (std::any_of(r.edits.begin(), r.edits.end(), [](const gb::token_edit& e) {
                   const auto c = ds::review_word(e.to).word_class;
                   return c == ds::review_word_class::negator || c == ds::review_word_class::intensifier;
                 })) {
        ++t.new_modifier;
      } else {
        ++t.other;
      }
      const auto after = ds::label_of(r.edited);
      t.rule_changes += after.polarity != ex.truth.polarity ? 1 : 0;
    };
    auto t0 = clock::now();
    const auto g = gb::counterfactual(model, ex.tokens, goal,
                                      {.search = gb::counterfactual_search::greedy,
                                       .max_edits = max_edits,
                                       .candidates = words,
                                       .fixed_positions = fixed,
                                       .execution = exec});
    record(greedy, g, seconds(t0));
    t0 = clock::now();
    const auto b = gb::counterfactual(model, ex.tokens, goal,
                                      {.max_edits = max_edits,
                                       .beam_width = beam_width,
                                       .candidates = words,
                                       .fixed_positions = fixed,
                                       .execution = exec});
    const double bs = seconds(t0);
    record(beam, b, bs);
    if (ex.negated()) record(beam_negated, b, bs);
    if (ex.contrast()) record(beam_contrast, b, bs);

    t0 = clock::now();
    const auto del = gb::counterfactual(model, ex.tokens, goal,
                                        {.max_edits = max_edits,
                                         .beam_width = beam_width,
                                         .substitution = false,
                                         .fixed_positions = fixed,
                                         .execution = exec});
    record(deletion_only, del, seconds(t0));

    t0 = clock::now();
    const auto deciding = ex.truth.deciding_words;
    auto has_deciding = [&](const std::vector<std::size_t>& set) {
      return std::any_of(deciding.begin(), deciding.end(),
                         [&](std::size_t d) { return std::find(set.begin(), set.end(), d) != set.end(); });
    };
    const auto s = gb::sufficient_tokens(model, ex.tokens, goal, {.fixed_positions = fixed, .execution = exec});
    suff_size += s.positions.size();
    suff_deciding += has_deciding(s.positions) ? 1 : 0;
    const auto n = gb::necessary_tokens(model, ex.tokens, goal, {.fixed_positions = fixed, .execution = exec});
    if (n.found) {
      ++nec_found;
      nec_size += n.positions.size();
      nec_deciding += has_deciding(n.positions) ? 1 : 0;
    }
    set_calls += s.model_evaluations + n.model_evaluations;
    set_seconds += seconds(t0);

    for (std::size_t k = 0; k < epsilons.size(); ++k) {
      t0 = clock::now();
      const auto p = gb::pgd(model, ex.tokens, goal,
                             {.epsilon = epsilons[k],
                              .norm = gb::perturbation_norm::l2,
                              .seed = 1,
                              .fixed_positions = fixed,
                              .execution = exec});
      adv[k].pgd_success += p.success ? 1 : 0;
      adv[k].pgd_calls += p.model_evaluations;
      adv[k].pgd_seconds += seconds(t0);
      t0 = clock::now();
      const auto a = gb::projected_token_attack(
          model, ex.tokens, goal,
          {.epsilon = epsilons[k], .candidates = words, .fixed_positions = fixed, .execution = exec});
      adv[k].pta_calls += a.model_evaluations;
      adv[k].pta_seconds += seconds(t0);
      if (a.success) {
        ++adv[k].pta_success;
        adv[k].pta_changed += a.edits.size();
        adv[k].pta_touch += touches_rationale(a.edits, rationale) ? 1 : 0;
        adv[k].pta_rule += ds::label_of(a.adversarial_tokens).polarity != ex.truth.polarity ? 1 : 0;
      }
    }
  }
  const double n = static_cast<double>(n_reviews);
  std::printf(
      "Counterfactuals (label goal positive/negative, deletion = <pad>, substitution by any of the 219 review "
      "words)\n");
  print_search("greedy (occlusion-guided)", greedy);
  print_search("beam", beam);
  print_search("beam, negated subset", beam_negated);
  print_search("beam, contrast subset", beam_contrast);
  print_search("beam, deletion only", deletion_only);
  std::printf("\nToken sets (removed = <pad>)  %.2f s\n", set_seconds);
  std::printf("sufficient: mean size %.2f, contains the deciding word %.1f%%\n", suff_size / n,
              100.0 * suff_deciding / n);
  std::printf("necessary:  found %.1f%%, mean size %.2f, contains the deciding word %.1f%% of found\n",
              100.0 * nec_found / n, nec_size / std::max(1.0, static_cast<double>(nec_found)),
              100.0 * nec_deciding / std::max(1.0, static_cast<double>(nec_found)));
  std::printf("mean model calls of both searches: %.0f\n", set_calls / n);
  // The scale of the ball: the review words' embedding norms and nearest-neighbour distances.
  double norm_sum = 0, nn_sum = 0;
  std::vector<gb::tensor2> rows;
  for (gb::token_id id : words) rows.push_back(model.embed(std::vector<gb::token_id>{id}));
  const std::size_t d = rows[0].shape(1);
  for (std::size_t i = 0; i < rows.size(); ++i) {
    double norm2 = 0, nearest = INFINITY;
    for (std::size_t k = 0; k < d; ++k) norm2 += static_cast<double>(rows[i](0, k)) * rows[i](0, k);
    for (std::size_t j = 0; j < rows.size(); ++j) {
      if (j == i) continue;
      double dist = 0;
      for (std::size_t k = 0; k < d; ++k) {
        const double diff = static_cast<double>(rows[i](0, k)) - rows[j](0, k);
        dist += diff * diff;
      }
      nearest = std::min(nearest, dist);
    }
    norm_sum += std::sqrt(norm2);
    nn_sum += std::sqrt(nearest);
  }
  std::printf(
      "\nAdversarial (L2 ball over the token embeddings, marker fixed; review words: mean embedding norm %.2f, "
      "mean nearest-neighbour distance %.2f)\n",
      norm_sum / static_cast<double>(rows.size()), nn_sum / static_cast<double>(rows.size()));
  for (std::size_t k = 0; k < epsilons.size(); ++k) {
    const auto& t = adv[k];
    const double ok = std::max(1.0, static_cast<double>(t.pta_success));
    std::printf(
        "epsilon %.2f  pgd (10 steps, random start): success %5.1f%%, %.1f model calls (%.2f s)   projected "
        "token attack (10 rounds of 5 steps): success %5.1f%%, tokens changed %.2f, touches rationale %.1f%%, "
        "rule label changes %.1f%% of successes, %.1f model calls (%.2f s)\n",
        epsilons[k], 100.0 * t.pgd_success / n, t.pgd_calls / n, t.pgd_seconds, 100.0 * t.pta_success / n,
        t.pta_changed / ok, 100.0 * t.pta_touch / ok, 100.0 * t.pta_rule / ok, t.pta_calls / n, t.pta_seconds);
  }
  return 0;
}

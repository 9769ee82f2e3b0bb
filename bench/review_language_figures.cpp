// The figures of docs/ground-truth.md: how the synthetic review language is distributed (labels,
// subsets, lengths, sentiment words), how often simple shortcuts are right, and, with --model, a
// model's accuracy by subset (positive against negative at the marker row, as `glassbox train`
// and the CLI test evaluate the bundled model).
//
//   review_language_figures [--n 100000] [--seed 1] [--held-out-n 2000] [--held-out-seed 2]
//                           [--model DIR] [--accuracy 2:2000,3:20000]
//
// Shortcuts, each a rule a model could learn instead of the real one:
//   last word    the effective polarity (negation applied) of the last sentiment word of the review
//   ignore but   the label rule applied to every sentiment word of the review instead of the
//                deciding span (reviews with `but` only)
//   ignore not   the written polarity of the deciding word (negated reviews only; 0% by definition)
//   ignore very  the label rule with written strengths instead of effective ones (intensifiers
//                ignored); a tie of opposite polarities counts as wrong
#include <fmt/core.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "glassbox/datasets/reviews.hpp"
#include "glassbox/models/gpt2.hpp"

namespace {

namespace gd = glassbox::datasets;
using glassbox::token_id;

int usage() {
  std::fprintf(stderr,
               "usage: review_language_figures [--n N] [--seed S] [--held-out-n N] [--held-out-seed S] [--model DIR] "
               "[--accuracy SEED:N,...]\n");
  return 2;
}

double percent(std::size_t k, std::size_t n) {
  return n == 0 ? 0.0 : 100.0 * static_cast<double>(k) / static_cast<double>(n);
}

/// The label rule's decision over the sentiment words of [first, last): +1 / -1, or 0 when the
/// strongest words disagree or there is none. `written` uses written strengths (intensifiers ignored).
int decide(const std::vector<gd::token_properties>& p, std::size_t first, std::size_t last, bool written) {
  int best = 0, polarity = 0;
  bool conflict = false;
  for (std::size_t i = first; i < last; ++i) {
    if (!p[i].is_sentiment) continue;
    const int s = written ? p[i].strength : p[i].effective_strength;
    if (s > best) {
      best = s;
      polarity = p[i].effective_polarity;
      conflict = false;
    } else if (s == best && p[i].effective_polarity != polarity) {
      conflict = true;
    }
  }
  return conflict ? 0 : polarity;
}

/// Share of each value 1..max of `counts` (values outside are counted in the last bin's text).
std::string histogram(const std::vector<std::size_t>& counts, std::size_t total, std::size_t from) {
  std::string s;
  for (std::size_t v = from; v < counts.size(); ++v) {
    if (counts[v] == 0) continue;
    if (!s.empty()) s += ", ";
    s += fmt::format("{}: {:.1f}%", v, percent(counts[v], total));
  }
  return s;
}

struct language_figures {
  std::size_t n = 0, positive = 0, negated = 0, contrast = 0, negated_contrast = 0, plain = 0, with_but = 0;
  std::size_t but_nothing_before = 0, but_agree = 0, intensified = 0, verb = 0, contrast_stronger_before = 0;
  std::vector<std::size_t> span_words = std::vector<std::size_t>(16), review_words = std::vector<std::size_t>(16),
                           strength = std::vector<std::size_t>(5), lengths;
};

language_figures measure(const std::vector<gd::review_example>& data) {
  language_figures f;
  f.n = data.size();
  for (const auto& e : data) {
    const auto& t = e.truth;
    const auto& p = e.properties();
    const std::size_t deciding = t.deciding_words.front();
    f.positive += e.true_label == gd::review_positive_id;
    f.negated += e.negated();
    f.contrast += e.contrast();
    f.negated_contrast += e.negated() && e.contrast();
    f.plain += e.plain();
    if (e.has_but()) {
      ++f.with_but;
      std::size_t before = 0;
      for (std::size_t i = 0; i < *t.but_position; ++i) before += p[i].is_sentiment;
      f.but_nothing_before += before == 0;
      f.but_agree += t.before_but_polarity == t.polarity;
    }
    f.intensified += t.intensified;
    f.verb += p[deciding].pos == gd::part_of_speech::verb;
    std::size_t in_span = 0, in_review = 0;
    for (std::size_t i = 0; i < e.review_length(); ++i) {
      in_review += p[i].is_sentiment;
      in_span += p[i].is_sentiment && i >= t.deciding_start;
    }
    ++f.span_words[std::min<std::size_t>(in_span, 15)];
    ++f.review_words[std::min<std::size_t>(in_review, 15)];
    ++f.strength[static_cast<std::size_t>(p[deciding].effective_strength)];
    if (e.contrast()) {
      int before = 0;
      for (std::size_t i = 0; i < *t.but_position; ++i)
        if (p[i].is_sentiment) before = std::max(before, p[i].effective_strength);
      f.contrast_stronger_before += before > p[deciding].effective_strength;
    }
    f.lengths.push_back(e.review_length());
  }
  std::sort(f.lengths.begin(), f.lengths.end());
  return f;
}

void print_language(const language_figures& a, const language_figures& b, std::uint64_t seed_a, std::uint64_t seed_b,
                    std::size_t overlap) {
  fmt::print("{} examples of seed {} (in brackets: {} of seed {})\n\n| figure | value |\n|---|---|\n", a.n, seed_a, b.n,
             seed_b);
  auto both = [&](std::string_view name, std::size_t ka, std::size_t kb) {
    fmt::print("| {} | {:.1f}% ({:.1f}%) |\n", name, percent(ka, a.n), percent(kb, b.n));
  };
  both("positive labels", a.positive, b.positive);
  both("negated", a.negated, b.negated);
  both("contrast", a.contrast, b.contrast);
  both("negated and contrast", a.negated_contrast, b.negated_contrast);
  both("plain", a.plain, b.plain);
  fmt::print(
      "| has `but` | {:.1f}% ({:.1f}%); of these, {:.1f}% have no sentiment word before `but` and {:.1f}% agree |\n",
      percent(a.with_but, a.n), percent(b.with_but, b.n), percent(a.but_nothing_before, a.with_but),
      percent(a.but_agree, a.with_but));
  fmt::print("| deciding word intensified | {:.1f}% |\n", percent(a.intensified, a.n));
  fmt::print("| deciding word is a verb | {:.1f}% |\n", percent(a.verb, a.n));
  fmt::print("| sentiment words in the deciding span | {} |\n", histogram(a.span_words, a.n, 1));
  fmt::print("| sentiment words in the review | {} |\n", histogram(a.review_words, a.n, 1));
  fmt::print("| effective strength of the deciding word | {} |\n", histogram(a.strength, a.n, 1));
  fmt::print("| contrast reviews with a stronger word before `but` | {:.1f}% |\n",
             percent(a.contrast_stronger_before, a.contrast));
  const auto& l = a.lengths;
  double mean = 0;
  for (std::size_t x : l) mean += static_cast<double>(x) / static_cast<double>(l.size());
  const std::set<std::size_t> seen(l.begin(), l.end());
  const bool every = seen.size() == l.back() - l.front() + 1;
  fmt::print("| review length (tokens before the marker) | mean {:.1f}, quartiles {} / {} / {}, {} {}..{} |\n", mean,
             l[l.size() / 4], l[l.size() / 2], l[3 * l.size() / 4], every ? "every length" : "lengths", l.front(),
             l.back());
  fmt::print("| held-out reviews of seed {} that also occur in the {} of seed {} | {} |\n\n", seed_b, a.n, seed_a,
             overlap);
}

void print_shortcuts(const std::vector<gd::review_example>& data, std::uint64_t seed) {
  std::size_t last_word = 0, but_n = 0, but_ok = 0, negated_n = 0, negated_ok = 0, very_ok = 0;
  for (const auto& e : data) {
    const auto& t = e.truth;
    const auto& p = e.properties();
    int last = 0;
    for (std::size_t i = 0; i < e.review_length(); ++i)
      if (p[i].is_sentiment) last = p[i].effective_polarity;
    last_word += last == t.polarity;
    if (e.has_but()) {
      ++but_n;
      but_ok += decide(p, 0, e.review_length(), false) == t.polarity;
    }
    if (e.negated()) {
      ++negated_n;
      negated_ok += p[t.deciding_words.front()].written_polarity == t.polarity;
    }
    very_ok += decide(p, t.deciding_start, e.review_length(), true) == t.polarity;
  }
  fmt::print("shortcuts on the {} examples of seed {}\n\n| shortcut | accuracy |\n|---|---|\n", data.size(), seed);
  fmt::print("| the last sentiment word (with its negation) decides | {:.1f}% |\n", percent(last_word, data.size()));
  fmt::print("| the rule over the whole review (`but` ignored), on reviews with `but` | {:.1f}% |\n",
             percent(but_ok, but_n));
  fmt::print("| the written polarity of the deciding word (negation ignored), on the negated subset | {:.1f}% |\n",
             percent(negated_ok, negated_n));
  fmt::print("| the rule with written strengths (intensifiers ignored; opposite ties wrong) | {:.1f}% |\n\n",
             percent(very_ok, data.size()));
}

void print_accuracy(const glassbox::models::gpt2& model,
                    const std::vector<std::pair<std::uint64_t, std::size_t>>& sets) {
  fmt::print("accuracy (positive against negative at the marker row)\n\n| subset |");
  for (const auto& [seed, n] : sets) fmt::print(" seed {}, {} reviews |", seed, n);
  fmt::print("\n|---|");
  for (std::size_t k = 0; k < sets.size(); ++k) fmt::print("---|");
  fmt::print("\n");
  struct counts {
    std::size_t n = 0, ok = 0;
  };
  std::vector<std::vector<counts>> table(4, std::vector<counts>(sets.size()));
  std::vector<std::string> errors;
  for (std::size_t s = 0; s < sets.size(); ++s)
    for (const auto& e : gd::generate_reviews(sets[s].second, sets[s].first)) {
      const auto z = model.logits_at(e.tokens, std::vector<std::size_t>{e.tokens.size() - 1});
      const token_id predicted = z(0, static_cast<std::size_t>(gd::review_positive_id)) >=
                                         z(0, static_cast<std::size_t>(gd::review_negative_id))
                                     ? gd::review_positive_id
                                     : gd::review_negative_id;
      const bool right = predicted == e.true_label;
      if (!right && errors.size() < 20)
        errors.push_back(fmt::format("seed {}: {} (true label {})", sets[s].first, e.text(),
                                     e.true_label == gd::review_positive_id ? "positive" : "negative"));
      for (std::size_t row = 0; row < 4; ++row) {
        const bool in = row == 0 || (row == 1 && e.negated()) || (row == 2 && e.contrast()) || (row == 3 && e.plain());
        if (!in) continue;
        ++table[row][s].n;
        table[row][s].ok += right;
      }
    }
  const char* names[] = {"all", "negated", "contrast", "plain"};
  for (std::size_t row = 0; row < 4; ++row) {
    fmt::print("| {} |", names[row]);
    for (const auto& c : table[row]) fmt::print(" {:.2f}% ({} of {} right) |", percent(c.ok, c.n), c.ok, c.n);
    fmt::print("\n");
  }
  if (!errors.empty()) fmt::print("\nthe errors (at most 20):\n");
  for (const auto& e : errors) fmt::print("  {}\n", e);
}

}  // namespace

int main(int argc, char** argv) {
  std::size_t n = 100000, held_out_n = 2000;
  std::uint64_t seed = 1, held_out_seed = 2;
  std::string model_path;
  std::vector<std::pair<std::uint64_t, std::size_t>> accuracy = {{2, 2000}, {3, 20000}};
  for (int k = 1; k < argc; ++k) {
    const std::string_view arg = argv[k];
    if (k + 1 >= argc) return usage();
    const char* value = argv[++k];
    if (arg == "--n") {
      n = std::strtoull(value, nullptr, 10);
    } else if (arg == "--seed") {
      seed = std::strtoull(value, nullptr, 10);
    } else if (arg == "--held-out-n") {
      held_out_n = std::strtoull(value, nullptr, 10);
    } else if (arg == "--held-out-seed") {
      held_out_seed = std::strtoull(value, nullptr, 10);
    } else if (arg == "--model") {
      model_path = value;
    } else if (arg == "--accuracy") {
      accuracy.clear();
      std::stringstream in(value);
      std::string part;
      while (std::getline(in, part, ',')) {
        const auto colon = part.find(':');
        if (colon == std::string::npos) return usage();
        accuracy.emplace_back(std::strtoull(part.substr(0, colon).c_str(), nullptr, 10),
                              std::strtoull(part.substr(colon + 1).c_str(), nullptr, 10));
      }
    } else {
      return usage();
    }
  }
  if (n == 0 || held_out_n == 0) return usage();
  try {
    const auto data = gd::generate_reviews(n, seed);
    const auto held_out = gd::generate_reviews(held_out_n, held_out_seed);
    std::set<std::vector<token_id>> seen;
    for (const auto& e : data) seen.insert(e.tokens);
    std::size_t overlap = 0;
    for (const auto& e : held_out) overlap += seen.count(e.tokens);
    print_language(measure(data), measure(held_out), seed, held_out_seed, overlap);
    print_shortcuts(data, seed);
    if (!model_path.empty()) print_accuracy(glassbox::models::gpt2::load(model_path), accuracy);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "review_language_figures: %s\n", e.what());
    return 1;
  }
  return 0;
}

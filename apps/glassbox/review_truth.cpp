// The ground truth of the review language beside the scores (review_truth.hpp).
#include "review_truth.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "glassbox/report/html.hpp"

namespace glassbox::cli {

bool has_review_vocabulary(const loaded_model& m) {
  if (!m.has_vocabulary() || m.vocabulary.size() != datasets::review_vocab_size()) return false;
  return m.vocabulary.all_tokens() == datasets::review_vocabulary();
}

// The label rule's verdict when the model speaks the review language and the target is the
// prediction after the final marker; nothing otherwise.
std::optional<datasets::review_analysis> review_truth(const loaded_model& m, token_span ids, std::size_t row) {
  if (!has_review_vocabulary(m) || ids.empty() || ids.back() != datasets::review_marker_id || row + 1 != ids.size())
    return std::nullopt;
  try {
    return datasets::label_of(ids);
  } catch (const error&) {
    return std::nullopt;  // e.g. a marker inside the review: the rule has nothing to say
  }
}

// Rank (1 = largest) of position `p` by |score| among the review tokens (the marker excluded).
std::size_t rank_of(const std::vector<double>& scores, std::size_t review_length, std::size_t p) {
  std::size_t rank = 1;
  for (std::size_t i = 0; i < review_length; ++i)
    if (i != p && (std::abs(scores[i]) > std::abs(scores[p]) || (std::abs(scores[i]) == std::abs(scores[p]) && i < p)))
      ++rank;
  return rank;
}

// How many of the top-|rationale| review tokens by |score| are in the rationale.
std::size_t rationale_hits(const std::vector<double>& scores, const datasets::review_analysis& a) {
  std::vector<std::size_t> order(a.review_length);
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t x, std::size_t y) { return std::abs(scores[x]) > std::abs(scores[y]); });
  const std::size_t k = std::min(a.rationale.size(), order.size());
  std::size_t hits = 0;
  for (std::size_t i = 0; i < k; ++i)
    hits += std::find(a.rationale.begin(), a.rationale.end(), order[i]) != a.rationale.end() ? 1 : 0;
  return hits;
}

std::string truth_summary(const datasets::review_analysis& a, const std::vector<std::string>& words) {
  if (!a.has_label()) return fmt::format("no label ({})", to_string(a.verdict));
  std::string rationale, positions;
  for (std::size_t p : a.rationale) {
    rationale += (rationale.empty() ? "" : " ") + words[p];
    positions += fmt::format("{}{}", positions.empty() ? "" : ", ", p);
  }
  std::string notes = std::string(to_string(a.verdict));
  if (a.negated) notes += ", negated";
  if (a.intensified) notes += ", intensified";
  if (a.contrast) notes += ", contrast";
  return fmt::format("label {} ({}); rationale \"{}\" (positions {})", a.polarity > 0 ? "positive" : "negative", notes,
                     rationale, positions);
}

std::string truth_scoring(const datasets::review_analysis& a, const std::vector<double>& scores,
                          const std::vector<std::string>& words) {
  if (!a.has_label() || a.deciding_words.empty() || a.review_length == 0) return {};
  std::string out;
  for (std::size_t d : a.deciding_words)
    out += fmt::format("{}deciding word '{}' (position {}) ranks {} of {} review tokens by |score|",
                       out.empty() ? "" : "; ", words[d], d, rank_of(scores, a.review_length, d), a.review_length);
  out += fmt::format("; top {} by |score|: {} in the rationale", a.rationale.size(), rationale_hits(scores, a));
  return out;
}

std::string truth_html(const std::optional<datasets::review_analysis>& truth, const std::vector<double>* scores,
                       const std::vector<std::string>& words) {
  if (!truth) return {};
  std::string out = fmt::format("<div class=\"meta\"><span>ground truth: {}</span></div>\n",
                                report::html_escape(truth_summary(*truth, words)));
  if (scores != nullptr) {
    const std::string scoring = truth_scoring(*truth, *scores, words);
    if (!scoring.empty())
      out += fmt::format("<div class=\"meta\"><span>{}</span></div>\n", report::html_escape(scoring));
  }
  return out;
}

void method_summary::add(const std::vector<double>& scores, const std::optional<datasets::review_analysis>& truth,
                         std::size_t model_evaluations) {
  ++inputs;
  evaluations += model_evaluations;
  if (!truth || !truth->has_label() || truth->deciding_words.empty() || truth->review_length == 0) return;
  ++with_truth;
  top1 += rank_of(scores, truth->review_length, truth->deciding_words[0]) == 1 ? 1 : 0;
  rationale += rationale_hits(scores, *truth);
  rationale_size += truth->rationale.size();
}

std::string batch_summary(const std::vector<method_summary>& methods, std::size_t inputs, std::size_t resumed,
                          double seconds, const std::string& out) {
  const std::size_t done = inputs - resumed;
  std::string s = fmt::format("{} inputs explained in {:.1f} s ({:.2f} per second){} -> {}\n", done, seconds,
                              seconds > 0 ? static_cast<double>(done) / seconds : 0.0,
                              resumed > 0 ? fmt::format("; {} were already in the output", resumed) : "", out);
  bool truth = false;
  for (const auto& m : methods) truth = truth || m.with_truth > 0;
  if (!truth) return s;
  s += fmt::format("against the review language's truth (the {} reviews with a label among them):\n",
                   methods.front().with_truth);
  s += fmt::format("  {:<28} {:>22} {:>22} {:>12}\n", "method", "deciding word ranks 1", "rationale in top-k",
                   "evals/input");
  for (const auto& m : methods) {
    if (m.with_truth == 0) continue;
    s += fmt::format("  {:<28} {:>21.1f}% {:>21.1f}% {:>12.1f}\n", m.method,
                     100.0 * static_cast<double>(m.top1) / static_cast<double>(m.with_truth),
                     100.0 * static_cast<double>(m.rationale) / static_cast<double>(m.rationale_size),
                     static_cast<double>(m.evaluations) / static_cast<double>(m.inputs));
  }
  s += "  (k = the rationale's size: the deciding word with its negator and intensifier)\n";
  return s;
}

}  // namespace glassbox::cli

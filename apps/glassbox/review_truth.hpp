// glassbox explain / attention: the ground truth of the review language beside the scores, and over
// a data file each method's hit rate of the true rationale.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "cli.hpp"
#include "glassbox/datasets/reviews.hpp"

namespace glassbox::cli {

/// Whether the model's vocabulary is the review language's.
bool has_review_vocabulary(const loaded_model& m);

/// The label rule's verdict when the model speaks the review language and row `row` is the
/// prediction after the final marker; nothing otherwise.
std::optional<datasets::review_analysis> review_truth(const loaded_model& m, token_span ids, std::size_t row);

/// Rank (1 = largest) of position `p` by |score| among the first `review_length` tokens.
std::size_t rank_of(const std::vector<double>& scores, std::size_t review_length, std::size_t p);

/// How many of the top-|rationale| review tokens by |score| are in the rationale.
std::size_t rationale_hits(const std::vector<double>& scores, const datasets::review_analysis& a);

/// The label, verdict and rationale in words.
std::string truth_summary(const datasets::review_analysis& a, const std::vector<std::string>& words);

/// Where the deciding word ranks and how much of the rationale the top scores hold; empty without a label.
std::string truth_scoring(const datasets::review_analysis& a, const std::vector<double>& scores,
                          const std::vector<std::string>& words);

/// truth_summary (and truth_scoring of `scores`, when given) as HTML lines; empty without a truth.
std::string truth_html(const std::optional<datasets::review_analysis>& truth, const std::vector<double>* scores,
                       const std::vector<std::string>& words);

/// One method's scores over a data file, against the truth where the inputs have one.
struct method_summary {
  std::string method;             ///< its name
  std::size_t inputs = 0;         ///< inputs it explained
  std::size_t with_truth = 0;     ///< of them, reviews with a label and rationale
  std::size_t top1 = 0;           ///< of those, how often the deciding word has the largest |score|
  std::size_t rationale = 0;      ///< rationale tokens among the top-|rationale| scores, summed
  std::size_t rationale_size = 0; ///< rationale tokens, summed
  std::size_t evaluations = 0;    ///< model evaluations, summed

  /// Adds one input's scores.
  void add(const std::vector<double>& scores, const std::optional<datasets::review_analysis>& truth,
           std::size_t model_evaluations);
};

/// The summary printed after a --data run: inputs, time, and per method its hit rates of the truth.
std::string batch_summary(const std::vector<method_summary>& methods, std::size_t inputs, std::size_t resumed,
                          double seconds, const std::string& out);

}  // namespace glassbox::cli

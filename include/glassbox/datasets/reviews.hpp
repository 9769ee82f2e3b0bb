// glassbox: the synthetic review language, a sentiment task whose reasons are known.
//
// A seeded generator writes short reviews (5 to 40 words by default) over a fixed vocabulary of
// 224 tokens, followed by the prompt marker `=>`; a causal language model classifies a review by
// predicting the label token `positive` or `negative` after the marker. The label is a
// deterministic function of the words (docs/ground-truth.md has the formal rule and worked
// examples):
//
//   1. the deciding span is the part of the review after its last `but` (the whole review if there
//      is none);
//   2. a sentiment word has a written polarity (+1 / -1) and a strength (1 mild, 2 moderate,
//      3 strong); an intensifier directly before it adds 1 to the strength; a negator directly
//      before it, or before its intensifier, flips its polarity;
//   3. the sentiment word of the deciding span with the highest effective strength decides; the
//      generator guarantees it is unique.
//
// `label_of` applies the rule to any token sequence and returns the label, the rationale (the
// deciding word with its negator and intensifier) and per-token properties for probes. The
// generator records the same things from its own construction, so the two can check each other.
// Example i of `generate_reviews(n, seed)` depends on (seed, i) only.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "glassbox/core/error.hpp"
#include "glassbox/core/model.hpp"
#include "glassbox/core/random.hpp"
#include "glassbox/core/types.hpp"
#include "glassbox/datasets/detail/review_vocabulary.hpp"

namespace glassbox::datasets {

// ---------------------------------------------------------------------------------------------
// Vocabulary
// ---------------------------------------------------------------------------------------------

/// The stable name of a part-of-speech tag ("adj", "propn", ...), as in Universal Dependencies but lower case.
constexpr std::string_view to_string(part_of_speech p) {
  switch (p) {
    case part_of_speech::adj:
      return "adj";
    case part_of_speech::adp:
      return "adp";
    case part_of_speech::adv:
      return "adv";
    case part_of_speech::aux:
      return "aux";
    case part_of_speech::cconj:
      return "cconj";
    case part_of_speech::det:
      return "det";
    case part_of_speech::noun:
      return "noun";
    case part_of_speech::part:
      return "part";
    case part_of_speech::pron:
      return "pron";
    case part_of_speech::propn:
      return "propn";
    case part_of_speech::punct:
      return "punct";
    case part_of_speech::sym:
      return "sym";
    case part_of_speech::verb:
      return "verb";
    case part_of_speech::x:
      return "x";
  }
  return "unknown";
}

/// What a word is to the label rule.
enum class review_word_class : std::uint8_t {
  special,      ///< <pad> and <unk>: neutral tokens that are not words
  marker,       ///< the prompt marker `=>`, after the review
  label,        ///< `positive` / `negative`, predicted after the marker
  sentiment,    ///< a word with a polarity and a strength
  negator,      ///< not, never, hardly, barely
  intensifier,  ///< very, really, extremely, ...
  contrast,     ///< but
  neutral,      ///< every other word
};

/// The stable name of a word class ("sentiment", "negator", ...).
constexpr std::string_view to_string(review_word_class c) {
  switch (c) {
    case review_word_class::special:
      return "special";
    case review_word_class::marker:
      return "marker";
    case review_word_class::label:
      return "label";
    case review_word_class::sentiment:
      return "sentiment";
    case review_word_class::negator:
      return "negator";
    case review_word_class::intensifier:
      return "intensifier";
    case review_word_class::contrast:
      return "contrast";
    case review_word_class::neutral:
      return "neutral";
  }
  return "unknown";
}

/// The padding token, id 0 (the "absent token" of perturbation methods).
inline constexpr token_id review_pad_id = 0;
/// The unknown-word token, id 1 (never generated; for vocabularies that map unknown words).
inline constexpr token_id review_unk_id = 1;
/// The prompt marker `=>`, id 2: the last input token; the model predicts the label after it.
inline constexpr token_id review_marker_id = 2;
/// The label token `positive`, id 3.
inline constexpr token_id review_positive_id = 3;
/// The label token `negative`, id 4.
inline constexpr token_id review_negative_id = 4;

/// Number of tokens of the review vocabulary (224), including <pad>, <unk>, the marker and the labels.
constexpr std::size_t review_vocab_size() { return std::size(detail::review_word_table); }

/// Everything the language says about one word.
struct review_word_info {
  std::string_view word;         ///< the text of the word
  review_word_class word_class;  ///< what it is to the label rule
  part_of_speech pos;            ///< its part-of-speech tag
  int polarity = 0;              ///< +1 / -1 for sentiment words as written, else 0
  int strength = 0;              ///< 1 (mild), 2 (moderate), 3 (strong) for sentiment words, else 0
};

}  // namespace glassbox::datasets

namespace glassbox::detail {

inline constexpr std::size_t review_category_count = static_cast<std::size_t>(review_category::preposition) + 1;

constexpr datasets::review_word_class review_class_of(review_category c) {
  switch (c) {
    case review_category::pad:
    case review_category::unk:
      return datasets::review_word_class::special;
    case review_category::marker:
      return datasets::review_word_class::marker;
    case review_category::label:
      return datasets::review_word_class::label;
    case review_category::sentiment_adjective:
    case review_category::sentiment_verb:
      return datasets::review_word_class::sentiment;
    case review_category::negator:
      return datasets::review_word_class::negator;
    case review_category::intensifier:
      return datasets::review_word_class::intensifier;
    case review_category::but:
      return datasets::review_word_class::contrast;
    default:
      return datasets::review_word_class::neutral;
  }
}

/// Lookup tables over the word table, built once.
struct review_lexicon {
  std::unordered_map<std::string_view, token_id> ids;
  std::array<std::vector<token_id>, review_category_count> pools;
  // sentiment[verb][polarity > 0][strength - 1]
  std::vector<token_id> sentiment[2][2][3];
  std::vector<token_id> antonyms;           // per id; -1 for words without one
  std::vector<token_id> verb_intensifiers;  // the intensifiers that read well before a verb
  std::vector<token_id> verb_negators;      // negators used without `do`: never, hardly, barely
  std::vector<token_id> plural_linking;     // linking verbs that read well after we / they / you
  std::vector<token_id> people;             // he, she
  std::vector<token_id> time_prepositions;  // the prepositions before a time: on, at, in, after, before, during
  token_id period = -1, comma = -1, but = -1, and_ = -1, not_ = -1, a = -1, it = -1, with = -1;

  template <class = void>
  token_id id(std::string_view word) const { return ids.at(word); }
  const std::vector<token_id>& pool(review_category c) const { return pools[static_cast<std::size_t>(c)]; }
};

template <class = void>
inline review_lexicon make_review_lexicon() {
  review_lexicon lex;
  const auto n = std::size(review_word_table);
  lex.antonyms.assign(n, -1);
  for (std::size_t i = 0; i < n; ++i) {
    const auto& e = review_word_table[i];
    const auto id = static_cast<token_id>(i);
    lex.ids.emplace(e.word, id);
    lex.pools[static_cast<std::size_t>(e.category)].push_back(id);
    if (e.category == review_category::sentiment_adjective || e.category == review_category::sentiment_verb) {
      const int verb = e.category == review_category::sentiment_verb ? 1 : 0;
      lex.sentiment[verb][e.polarity > 0 ? 1 : 0][e.strength - 1].push_back(id);
    }
  }
  for (std::size_t i = 0; i < n; ++i) {
    if (!review_word_table[i].antonym.empty()) lex.antonyms[i] = lex.id(review_word_table[i].antonym);
  }
  lex.verb_intensifiers = {lex.id("really"), lex.id("truly"), lex.id("absolutely")};
  lex.verb_negators = {lex.id("never"), lex.id("hardly"), lex.id("barely")};
  lex.plural_linking = {lex.id("seemed"), lex.id("looked"), lex.id("felt")};
  lex.people = {lex.id("he"), lex.id("she")};
  lex.time_prepositions = {lex.id("on"),    lex.id("at"),     lex.id("in"),
                           lex.id("after"), lex.id("before"), lex.id("during")};
  lex.period = lex.id(".");
  lex.comma = lex.id(",");
  lex.but = lex.id("but");
  lex.and_ = lex.id("and");
  lex.not_ = lex.id("not");
  lex.a = lex.id("a");
  lex.it = lex.id("it");
  lex.with = lex.id("with");
  return lex;
}

/// The lexicon of the review language (built on first use; thread-safe).
template <class = void>
inline const review_lexicon& review_lex() {
  static const review_lexicon lex = make_review_lexicon();
  return lex;
}

/// The table row of an id that is known to be in range.
template <class = void>
inline const review_word_entry& review_entry(token_id id) { return review_word_table[static_cast<std::size_t>(id)]; }

/// The class of an id that is known to be in range.
template <class = void>
inline datasets::review_word_class review_class(token_id id) { return review_class_of(review_entry(id).category); }

}  // namespace glassbox::detail

namespace glassbox::datasets {

/// The words of the review vocabulary in id order (id 0 is `<pad>`, 1 `<unk>`, 2 `=>`, 3 `positive`, 4 `negative`).
template <class = void>
inline std::vector<std::string> review_vocabulary() {
  std::vector<std::string> words;
  words.reserve(review_vocab_size());
  for (const auto& e : detail::review_word_table) words.emplace_back(e.word);
  return words;
}

/// Everything the language says about token `id`; throws shape_error if `id` is not a review token id.
template <class = void>
inline review_word_info review_word(token_id id) {
  detail::require<shape_error>(id >= 0 && static_cast<std::size_t>(id) < review_vocab_size(),
                               "glassbox::datasets::review_word: id must be a review token id in [0, {}), got {}",
                               review_vocab_size(), id);
  const auto& e = detail::review_entry(id);
  return {e.word, detail::review_class_of(e.category), e.pos, e.polarity, e.strength};
}

/// The id of `word`, or nothing if the word is not in the review vocabulary.
template <class = void>
inline std::optional<token_id> find_review_token(std::string_view word) {
  const auto& ids = detail::review_lex().ids;
  const auto it = ids.find(word);
  if (it == ids.end()) return std::nullopt;
  return it->second;
}

/// The ids of a text of space-separated words; throws glassbox::error naming the first unknown word.
///
/// Example: `encode_review("the food was not good . =>")` gives the review and the marker.
template <class = void>
inline token_sequence encode_review(std::string_view text) {
  token_sequence ids;
  std::size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && (text[i] == ' ' || text[i] == '\t' || text[i] == '\n' || text[i] == '\r')) ++i;
    std::size_t j = i;
    while (j < text.size() && !(text[j] == ' ' || text[j] == '\t' || text[j] == '\n' || text[j] == '\r')) ++j;
    if (j > i) {
      const auto word = text.substr(i, j - i);
      const auto id = find_review_token(word);
      if (!id) detail::fail("glassbox::datasets::encode_review: word '{}' is not in the review vocabulary", word);
      ids.push_back(*id);
    }
    i = j;
  }
  return ids;
}

/// The text of a token sequence: its words joined by single spaces.
template <class = void>
inline std::string decode_review(token_span tokens) {
  std::string text;
  for (std::size_t i = 0; i < tokens.size(); ++i) {
    if (i > 0) text += ' ';
    text += review_word(tokens[i]).word;
  }
  return text;
}

/// The antonym of a sentiment word: the word of the same kind (adjective / verb) and strength with
/// the opposite written polarity (good <-> bad, excellent <-> terrible, love <-> hate).
template <class = void>
inline token_id review_antonym(token_id id) {
  const auto info = review_word(id);
  detail::require(info.word_class == review_word_class::sentiment,
                  "glassbox::datasets::review_antonym: id must be a sentiment word, got '{}' ({})", info.word, id);
  return detail::review_lex().antonyms[static_cast<std::size_t>(id)];
}

/// The label token of a polarity: `positive` for +1, `negative` for -1.
template <class = void>
inline token_id review_label_token(int polarity) {
  detail::require(polarity == 1 || polarity == -1,
                  "glassbox::datasets::review_label_token: polarity must be +1 or -1, got {}", polarity);
  return polarity > 0 ? review_positive_id : review_negative_id;
}

// ---------------------------------------------------------------------------------------------
// Ground truth: per-token properties and the label rule
// ---------------------------------------------------------------------------------------------

/// What a probe can be asked to find in one token (one entry per input token, marker included).
struct token_properties {
  part_of_speech pos = part_of_speech::x;  ///< part-of-speech tag
  bool is_sentiment = false;               ///< a sentiment word
  int written_polarity = 0;                ///< +1 / -1 as written for sentiment words, else 0
  int effective_polarity = 0;              ///< after negation, for sentiment words, else 0
  int strength = 0;                        ///< 1..3 as written for sentiment words, else 0
  int effective_strength = 0;              ///< strength + 1 if intensified, for sentiment words, else 0
  bool is_negated = false;                 ///< a sentiment word whose polarity a negator flips
  bool is_intensified = false;             ///< a sentiment word directly after an intensifier
  bool is_negator = false;                 ///< a negator word (whether or not it modifies anything)
  bool is_intensifier = false;             ///< an intensifier word (whether or not it modifies anything)
  std::ptrdiff_t modifies = -1;     ///< for a negator / intensifier: the position of the sentiment word it modifies
  bool in_deciding_clause = false;  ///< a review token after the last `but` (every review token if none)
  bool in_rationale = false;        ///< one of the tokens that decide the label

  /// Member-wise equality.
  bool operator==(const token_properties&) const = default;
};

/// The per-token properties by name, for probes and the command line.
enum class review_property : std::uint8_t {
  pos,                 ///< part_of_speech as an integer 0..13 (part_of_speech_count classes)
  is_sentiment,        ///< 0 / 1
  written_polarity,    ///< -1 / 0 / +1
  effective_polarity,  ///< -1 / 0 / +1
  strength,            ///< 0..3
  effective_strength,  ///< 0..4
  is_negated,          ///< 0 / 1
  is_intensified,      ///< 0 / 1
  is_negator,          ///< 0 / 1
  is_intensifier,      ///< 0 / 1
  is_modifier,         ///< 0 / 1: a negator or intensifier that modifies a sentiment word
  in_deciding_clause,  ///< 0 / 1
  in_rationale,        ///< 0 / 1
};

/// Every review_property, in declaration order.
inline constexpr review_property all_review_properties[] = {
    review_property::pos,
    review_property::is_sentiment,
    review_property::written_polarity,
    review_property::effective_polarity,
    review_property::strength,
    review_property::effective_strength,
    review_property::is_negated,
    review_property::is_intensified,
    review_property::is_negator,
    review_property::is_intensifier,
    review_property::is_modifier,
    review_property::in_deciding_clause,
    review_property::in_rationale,
};

/// The stable name of a property, the same as the token_properties member ("is_negated", ...; "pos").
constexpr std::string_view to_string(review_property p) {
  switch (p) {
    case review_property::pos:
      return "pos";
    case review_property::is_sentiment:
      return "is_sentiment";
    case review_property::written_polarity:
      return "written_polarity";
    case review_property::effective_polarity:
      return "effective_polarity";
    case review_property::strength:
      return "strength";
    case review_property::effective_strength:
      return "effective_strength";
    case review_property::is_negated:
      return "is_negated";
    case review_property::is_intensified:
      return "is_intensified";
    case review_property::is_negator:
      return "is_negator";
    case review_property::is_intensifier:
      return "is_intensifier";
    case review_property::is_modifier:
      return "is_modifier";
    case review_property::in_deciding_clause:
      return "in_deciding_clause";
    case review_property::in_rationale:
      return "in_rationale";
  }
  return "unknown";
}

/// The property of a name (the inverse of to_string), or nothing for an unknown name.
constexpr std::optional<review_property> parse_review_property(std::string_view name) {
  for (const auto p : all_review_properties) {
    if (to_string(p) == name) return p;
  }
  return std::nullopt;
}

/// The value of one property of one token, as an integer.
constexpr int property_value(const token_properties& t, review_property p) {
  switch (p) {
    case review_property::pos:
      return static_cast<int>(t.pos);
    case review_property::is_sentiment:
      return t.is_sentiment ? 1 : 0;
    case review_property::written_polarity:
      return t.written_polarity;
    case review_property::effective_polarity:
      return t.effective_polarity;
    case review_property::strength:
      return t.strength;
    case review_property::effective_strength:
      return t.effective_strength;
    case review_property::is_negated:
      return t.is_negated ? 1 : 0;
    case review_property::is_intensified:
      return t.is_intensified ? 1 : 0;
    case review_property::is_negator:
      return t.is_negator ? 1 : 0;
    case review_property::is_intensifier:
      return t.is_intensifier ? 1 : 0;
    case review_property::is_modifier:
      return t.modifies >= 0 ? 1 : 0;
    case review_property::in_deciding_clause:
      return t.in_deciding_clause ? 1 : 0;
    case review_property::in_rationale:
      return t.in_rationale ? 1 : 0;
  }
  return 0;
}

/// How the rule ended for a token sequence.
enum class review_verdict : std::uint8_t {
  decided,       ///< one sentiment word of the deciding span is strictly strongest: it decides
  agreeing_tie,  ///< several share the top strength and agree in polarity: the label is theirs
  conflict,      ///< several share the top strength and disagree: no label
  no_sentiment,  ///< the deciding span has no sentiment word: no label
};

/// The stable name of a verdict ("decided", "agreeing_tie", "conflict", "no_sentiment").
constexpr std::string_view to_string(review_verdict v) {
  switch (v) {
    case review_verdict::decided:
      return "decided";
    case review_verdict::agreeing_tie:
      return "agreeing_tie";
    case review_verdict::conflict:
      return "conflict";
    case review_verdict::no_sentiment:
      return "no_sentiment";
  }
  return "unknown";
}

/// The ground truth of one token sequence: label, rationale, subsets and per-token properties.
struct review_analysis {
  review_verdict verdict = review_verdict::no_sentiment;  ///< how the rule ended
  int polarity = 0;                                       ///< +1 positive, -1 negative, 0 no label
  std::vector<std::size_t> deciding_words;                ///< positions of the strongest word(s) (one when decided)
  std::vector<std::size_t> rationale;       ///< deciding words with their negators and intensifiers, sorted
  std::size_t review_length = 0;            ///< tokens before the marker
  std::size_t deciding_start = 0;           ///< first position of the deciding span (after the last `but`)
  std::optional<std::size_t> but_position;  ///< position of the last `but`, if any
  int before_but_polarity = 0;              ///< the label (+1 / -1) the text before the last `but` has alone, 0 if none
  bool negated = false;                     ///< a deciding word is negated
  bool intensified = false;                 ///< a deciding word is intensified
  bool contrast = false;                    ///< has `but`, and the text before it alone has the opposite label
  std::vector<token_properties> properties;  ///< one per input token (marker and label included)

  /// Whether the rule gives a label (decided or agreeing_tie).
  bool has_label() const { return polarity != 0; }
  /// The label token (`positive` / `negative`), or nothing when the rule gives no label.
  template <class = void>
  std::optional<token_id> label() const {
    if (polarity == 0) return std::nullopt;
    return review_label_token(polarity);
  }

  /// Member-wise equality (the generator's record against label_of).
  bool operator==(const review_analysis&) const = default;
};

}  // namespace glassbox::datasets

namespace glassbox::detail {

/// A sentiment word's state under the modifier rule.
struct review_word_state {
  bool sentiment = false;
  int written = 0;
  int strength = 0;
  std::ptrdiff_t negator = -1;      // position of the negator that flips it
  std::ptrdiff_t intensifier = -1;  // position of the intensifier that strengthens it
  int effective_polarity() const { return negator >= 0 ? -written : written; }
  int effective_strength() const { return strength + (intensifier >= 0 ? 1 : 0); }
};

struct review_span_decision {
  datasets::review_verdict verdict = datasets::review_verdict::no_sentiment;
  int polarity = 0;
  std::vector<std::size_t> words;
};

/// Rule 3 over the review positions [begin, end).
template <class = void>
inline review_span_decision review_decide(const std::vector<review_word_state>& w, std::size_t begin, std::size_t end) {
  review_span_decision d;
  int best = 0;
  for (std::size_t i = begin; i < end; ++i) {
    if (!w[i].sentiment) continue;
    const int s = w[i].effective_strength();
    if (s > best) {
      best = s;
      d.words.assign(1, i);
    } else if (s == best) {
      d.words.push_back(i);
    }
  }
  if (d.words.empty()) return d;
  const int p = w[d.words.front()].effective_polarity();
  const bool agree =
      std::all_of(d.words.begin(), d.words.end(), [&](std::size_t i) { return w[i].effective_polarity() == p; });
  if (!agree) {
    d.verdict = datasets::review_verdict::conflict;
  } else {
    d.verdict = d.words.size() == 1 ? datasets::review_verdict::decided : datasets::review_verdict::agreeing_tie;
    d.polarity = p;
  }
  return d;
}

/// The last `but` in positions [0, end), if any.
template <class = void>
inline std::optional<std::size_t> review_last_but(token_span tokens, std::size_t end) {
  for (std::size_t i = end; i > 0; --i) {
    if (review_entry(tokens[i - 1]).category == review_category::but) return i - 1;
  }
  return std::nullopt;
}

}  // namespace glassbox::detail

namespace glassbox::datasets {

/// Applies the label rule to a token sequence: a review, optionally followed by the marker, optionally
/// followed by a label token. Returns the label, rationale, subsets and one token_properties per input
/// token. Any review token is allowed (the rule reads word classes and adjacency only; <pad> and <unk>
/// are neutral); the marker and the labels are allowed only at the end. Throws shape_error for an id
/// outside the vocabulary and glassbox::error for a misplaced marker or label.
///
/// Formally, for review tokens w_0..w_{n-1}: b = the position of the last `but` (or -1);
/// for a sentiment word w_i: intensified(i) = w_{i-1} is an intensifier;
/// negated(i) = w_{i-1} is a negator, or intensified(i) and w_{i-2} is a negator;
/// strength'(i) = strength(w_i) + intensified(i); polarity'(i) = -polarity(w_i) if negated(i), else polarity(w_i).
/// Over the sentiment words i > b, the one of highest strength' decides: label = polarity'(i).
template <class = void>
inline review_analysis label_of(token_span tokens) {
  const auto n = tokens.size();
  const auto v = review_vocab_size();
  for (std::size_t i = 0; i < n; ++i) {
    detail::require<shape_error>(
        tokens[i] >= 0 && static_cast<std::size_t>(tokens[i]) < v,
        "glassbox::datasets::label_of: tokens[{}] must be a review token id in [0, {}), got {}", i, v, tokens[i]);
  }
  std::size_t review_length = n;
  for (std::size_t i = 0; i < n; ++i) {
    const auto c = detail::review_class(tokens[i]);
    if (c == review_word_class::marker) {
      const bool at_end = i + 1 == n || (i + 2 == n && detail::review_class(tokens[i + 1]) == review_word_class::label);
      detail::require(at_end,
                      "glassbox::datasets::label_of: the marker must be the last token or be followed by one label "
                      "token only, got it at position {} of {}",
                      i, n);
      review_length = i;
      break;
    }
    detail::require(c != review_word_class::label,
                    "glassbox::datasets::label_of: a label token must follow the marker, got '{}' at position {}",
                    detail::review_entry(tokens[i]).word, i);
  }

  // Rule 2: modifiers of each sentiment word.
  std::vector<detail::review_word_state> w(review_length);
  for (std::size_t i = 0; i < review_length; ++i) {
    const auto& e = detail::review_entry(tokens[i]);
    if (detail::review_class_of(e.category) != review_word_class::sentiment) continue;
    auto& s = w[i];
    s.sentiment = true;
    s.written = e.polarity;
    s.strength = e.strength;
    if (i >= 1 && detail::review_class(tokens[i - 1]) == review_word_class::intensifier) {
      s.intensifier = static_cast<std::ptrdiff_t>(i - 1);
    }
    if (i >= 1 && detail::review_class(tokens[i - 1]) == review_word_class::negator) {
      s.negator = static_cast<std::ptrdiff_t>(i - 1);
    } else if (s.intensifier >= 0 && i >= 2 && detail::review_class(tokens[i - 2]) == review_word_class::negator) {
      s.negator = static_cast<std::ptrdiff_t>(i - 2);
    }
  }

  review_analysis a;
  a.review_length = review_length;
  // Rule 1: the deciding span.
  a.but_position = detail::review_last_but(tokens, review_length);
  a.deciding_start = a.but_position ? *a.but_position + 1 : 0;
  // Rule 3: the strongest word decides.
  auto d = detail::review_decide(w, a.deciding_start, review_length);
  a.verdict = d.verdict;
  a.polarity = d.polarity;
  if (d.verdict == review_verdict::decided || d.verdict == review_verdict::agreeing_tie) {
    a.deciding_words = d.words;
    for (const auto i : d.words) {
      a.rationale.push_back(i);
      if (w[i].negator >= 0) a.rationale.push_back(static_cast<std::size_t>(w[i].negator));
      if (w[i].intensifier >= 0) a.rationale.push_back(static_cast<std::size_t>(w[i].intensifier));
      a.negated = a.negated || w[i].negator >= 0;
      a.intensified = a.intensified || w[i].intensifier >= 0;
    }
    std::sort(a.rationale.begin(), a.rationale.end());
  } else if (d.verdict == review_verdict::conflict) {
    a.deciding_words = d.words;
  }
  if (a.but_position) {
    const auto before_but = detail::review_last_but(tokens, *a.but_position);
    const auto pre = detail::review_decide(w, before_but ? *before_but + 1 : 0, *a.but_position);
    a.before_but_polarity = pre.polarity;
    a.contrast = a.polarity != 0 && pre.polarity != 0 && pre.polarity != a.polarity;
  }

  a.properties.resize(n);
  for (std::size_t i = 0; i < n; ++i) {
    auto& p = a.properties[i];
    const auto& e = detail::review_entry(tokens[i]);
    p.pos = e.pos;
    if (i >= review_length) continue;
    const auto c = detail::review_class_of(e.category);
    p.is_negator = c == review_word_class::negator;
    p.is_intensifier = c == review_word_class::intensifier;
    p.in_deciding_clause = i >= a.deciding_start;
    if (w[i].sentiment) {
      p.is_sentiment = true;
      p.written_polarity = w[i].written;
      p.effective_polarity = w[i].effective_polarity();
      p.strength = w[i].strength;
      p.effective_strength = w[i].effective_strength();
      p.is_negated = w[i].negator >= 0;
      p.is_intensified = w[i].intensifier >= 0;
      if (w[i].negator >= 0)
        a.properties[static_cast<std::size_t>(w[i].negator)].modifies = static_cast<std::ptrdiff_t>(i);
      if (w[i].intensifier >= 0) {
        a.properties[static_cast<std::size_t>(w[i].intensifier)].modifies = static_cast<std::ptrdiff_t>(i);
      }
    }
  }
  for (const auto i : a.rationale) a.properties[i].in_rationale = true;
  return a;
}

/// The values of one property for every token of an analysis (one per token, marker included).
template <class = void>
inline std::vector<int> property_column(const review_analysis& a, review_property p) {
  std::vector<int> out;
  out.reserve(a.properties.size());
  for (const auto& t : a.properties) out.push_back(property_value(t, p));
  return out;
}

/// A copy of `tokens` without the tokens at `positions` (in any order, duplicates allowed): the
/// building block of deletion counterfactuals, e.g. `label_of(erase_positions(t, a.rationale))`.
template <class = void>
inline token_sequence erase_positions(token_span tokens, std::span<const std::size_t> positions) {
  std::vector<bool> drop(tokens.size(), false);
  for (const auto p : positions) {
    detail::require<shape_error>(
        p < tokens.size(), "glassbox::datasets::erase_positions: positions must be < {}, got {}", tokens.size(), p);
    drop[p] = true;
  }
  token_sequence out;
  for (std::size_t i = 0; i < tokens.size(); ++i) {
    if (!drop[i]) out.push_back(tokens[i]);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// The generator
// ---------------------------------------------------------------------------------------------

/// The knobs of the review generator; the defaults make the bundled model's data (docs/ground-truth.md).
struct review_options {
  /// Fewest review tokens (words and punctuation, marker excluded).
  std::size_t min_length = 5;
  /// Most review tokens; must be >= 16 and >= min_length.
  std::size_t max_length = 40;
  /// Probability that a review has a `but`.
  double contrast_rate = 0.45;
  /// Given a `but`: probability that the text before it has no sentiment word.
  double neutral_before_but = 0.10;
  /// Given a `but` and sentiment words before it: probability that the text before it has the opposite label.
  double opposite_before_but = 0.80;
  /// Probability that a sentiment word is negated (each word independently, deciding or not).
  double negation_rate = 0.35;
  /// Probability that a sentiment word is intensified (docs/ground-truth.md, "Sampling", gives the details).
  double intensifier_rate = 0.30;
  /// Probability that an example's training label is flipped (recorded in review_example::flipped).
  double noise = 0.0;
};

/// One generated review with its training label and its ground truth.
struct review_example {
  token_sequence tokens;                     ///< the review words then the marker `=>`
  token_id label = review_positive_id;       ///< the training label: true_label, or its opposite when flipped
  token_id true_label = review_positive_id;  ///< the rule's label, label_of(tokens).label()
  bool flipped = false;                      ///< whether noise flipped the training label
  review_analysis truth;                     ///< the ground truth, recorded by the generator; equals label_of(tokens)

  /// Review tokens before the marker.
  std::size_t review_length() const { return truth.review_length; }
  /// The positions that decide the label: the deciding word, its negator and intensifier.
  const std::vector<std::size_t>& rationale() const { return truth.rationale; }
  /// One token_properties per token of `tokens`.
  const std::vector<token_properties>& properties() const { return truth.properties; }
  /// The negated subset: the deciding word is negated.
  bool negated() const { return truth.negated; }
  /// The contrast subset: a `but` whose preceding text alone has the opposite label.
  bool contrast() const { return truth.contrast; }
  /// Whether the review has a `but`.
  bool has_but() const { return truth.but_position.has_value(); }
  /// The plain subset: neither negated nor contrast.
  bool plain() const { return !negated() && !contrast(); }
  /// The tokens as text, e.g. "the food was not good . =>".
  template <class = void>
  std::string text() const { return decode_review(tokens); }
};

/// The training example of a review: its tokens (review and marker), only the last row scored, against `label`.
template <class = void>
inline training_example to_training_example(const review_example& e) {
  return training_example::classification(e.tokens, e.label);
}

}  // namespace glassbox::datasets

namespace glassbox::detail {

enum class review_role : std::uint8_t { none, word, negator, intensifier };

/// One placed token and, if it belongs to a planned sentiment phrase, which one and in what role.
struct review_slot {
  token_id id;
  int item = -1;
  review_role role = review_role::none;
};
using review_clause = std::vector<review_slot>;

struct review_sentence {
  review_clause body;  // without the period
  bool has_filler = false;
};

/// A planned sentiment word.
struct review_item {
  int polarity = 0;  // effective
  int strength = 0;  // effective
  int written = 0;
  int base = 0;
  bool negated = false;
  bool intensified = false;
  bool verb = false;
  token_id word = -1;
};

/// Builds one review; returns nothing when the plan does not fit the length limits.
template <class = void>
class basic_review_builder {
 public:
  basic_review_builder(const datasets::review_options& o, rng& g) : o_(o), g_(g), lex_(review_lex()) {}

  std::optional<datasets::review_example> build() {
    items_.clear();
    const int y = g_.bernoulli(0.5) ? 1 : -1;
    const bool has_but = g_.bernoulli(o_.contrast_rate);
    const double u = g_.uniform();
    const std::size_t k = u < 0.45 ? 1 : (u < 0.80 ? 2 : 3);
    const auto deciding_items = plan_span(y, k);
    const int deciding = deciding_items.front();

    int pre_polarity = 0;
    std::vector<int> pre_items;
    if (has_but && !g_.bernoulli(o_.neutral_before_but)) {
      pre_polarity = g_.bernoulli(o_.opposite_before_but) ? -y : y;
      pre_items = plan_span(pre_polarity, g_.bernoulli(0.3) ? 2 : 1);
    }

    // Clauses, then sentences.
    auto d_clauses = render_span(deciding_items);
    std::vector<review_sentence> sentences;
    if (!has_but) {
      append_grouped(sentences, d_clauses, 0, d_clauses.size());
    } else {
      std::vector<review_clause> pre_clauses;
      if (pre_items.empty()) {
        pre_clauses.push_back(neutral_clause(64));
      } else {
        pre_clauses = render_span(pre_items);
      }
      append_grouped(sentences, pre_clauses, 0, pre_clauses.size() - 1);
      review_sentence s{pre_clauses.back(), false};
      if (g_.bernoulli(0.25)) s.body.push_back({lex_.comma});
      s.body.push_back({lex_.but});
      if (g_.bernoulli(0.1)) s.body.push_back({pick(review_category::filler)});
      append(s.body, d_clauses.front());
      std::size_t next = 1;
      while (next < d_clauses.size() && g_.bernoulli(0.4)) {
        s.body.push_back({g_.bernoulli(0.5) ? lex_.and_ : lex_.comma});
        append(s.body, d_clauses[next++]);
      }
      sentences.push_back(std::move(s));
      append_grouped(sentences, d_clauses, next, d_clauses.size());
    }

    // Neutral padding up to max(length, t), t drawn uniformly in [min_length, max_length].
    std::size_t length = total_length(sentences);
    if (length > o_.max_length) return std::nullopt;
    const std::size_t target =
        std::max(length, o_.min_length + static_cast<std::size_t>(g_.below(o_.max_length - o_.min_length + 1)));
    while (length < target) {
      const std::size_t gap = target - length;
      std::vector<std::size_t> open;
      for (std::size_t i = 0; i < sentences.size(); ++i) {
        if (!sentences[i].has_filler) open.push_back(i);
      }
      if (gap >= 3 && (open.empty() || g_.bernoulli(0.75))) {
        review_sentence s{neutral_clause(gap - 1), false};
        const auto at = static_cast<std::ptrdiff_t>(g_.below(sentences.size() + 1));
        sentences.insert(sentences.begin() + at, std::move(s));
      } else if (!open.empty()) {
        auto& s = sentences[open[g_.below(open.size())]];
        review_clause filler{{pick(review_category::filler)}};
        if (gap >= 2 && g_.bernoulli(0.5)) filler.push_back({lex_.comma});
        s.body.insert(s.body.begin(), filler.begin(), filler.end());
        s.has_filler = true;
      } else {
        break;
      }
      length = total_length(sentences);
    }
    if (length < o_.min_length) return std::nullopt;

    // Flatten and record the ground truth from the plan.
    std::vector<review_slot> slots;
    for (const auto& s : sentences) {
      append(slots, s.body);
      slots.push_back({lex_.period});
    }
    return record(slots, y, deciding, has_but ? pre_polarity : 0);
  }

 private:
  token_id pick(const std::vector<token_id>& pool) { return pool[g_.below(pool.size())]; }
  token_id pick(review_category c) { return pick(lex_.pool(c)); }

  static void append(review_clause& to, const review_clause& from) { to.insert(to.end(), from.begin(), from.end()); }

  static std::size_t total_length(const std::vector<review_sentence>& s) {
    std::size_t n = 0;
    for (const auto& x : s) n += x.body.size() + 1;
    return n;
  }

  int add_item(int polarity, int base, bool intensified) {
    review_item it;
    it.polarity = polarity;
    it.base = base;
    it.intensified = intensified;
    it.strength = base + (intensified ? 1 : 0);
    it.negated = g_.bernoulli(o_.negation_rate);
    it.written = it.negated ? -polarity : polarity;
    it.verb = g_.bernoulli(0.2);
    it.word = pick(lex_.sentiment[it.verb ? 1 : 0][it.written > 0 ? 1 : 0][base - 1]);
    items_.push_back(it);
    return static_cast<int>(items_.size()) - 1;
  }

  // The sentiment words of one span: the first decides with `polarity`; the others are strictly weaker.
  std::vector<int> plan_span(int polarity, std::size_t k) {
    int base = 0;
    bool intensified = false;
    do {
      base = 1 + static_cast<int>(g_.below(3));
      intensified = g_.bernoulli(o_.intensifier_rate);
    } while (k > 1 && base + (intensified ? 1 : 0) < 2);
    const int top = base + (intensified ? 1 : 0);
    std::vector<int> ids{add_item(polarity, base, intensified)};
    for (std::size_t j = 1; j < k; ++j) {
      const int s = 1 + static_cast<int>(g_.below(static_cast<std::uint64_t>(top - 1)));
      const bool in = s >= 2 && g_.bernoulli(o_.intensifier_rate);
      const int p = g_.bernoulli(0.6) ? -polarity : polarity;
      ids.push_back(add_item(p, s - (in ? 1 : 0), in));
    }
    return ids;
  }

  // The negator, intensifier and word of item i.
  void push_phrase(review_clause& c, int i) {
    const auto& it = items_[static_cast<std::size_t>(i)];
    if (it.negated) {
      if (it.verb) {
        if (g_.bernoulli(0.5)) {
          c.push_back({pick(review_category::do_auxiliary)});
          c.push_back({lex_.not_, i, review_role::negator});
        } else {
          c.push_back({pick(lex_.verb_negators), i, review_role::negator});
        }
      } else {
        const token_id neg = g_.bernoulli(0.5) ? lex_.not_ : pick(lex_.verb_negators);
        c.push_back({neg, i, review_role::negator});
      }
    }
    if (it.intensified) {
      c.push_back(
          {it.verb ? pick(lex_.verb_intensifiers) : pick(review_category::intensifier), i, review_role::intensifier});
    }
    c.push_back({it.word, i, review_role::word});
  }

  // A subject and a matching copula, or a linking verb if `linking` allows ("seemed good", not "seemed never good").
  void push_subject_and_copula(review_clause& c, bool linking = true) {
    const auto r = g_.below(100);
    bool plural = false;
    if (r < 60) {
      c.push_back({pick(review_category::determiner)});
      c.push_back({pick(review_category::noun)});
    } else if (r < 75) {
      c.push_back({pick(review_category::name)});
    } else if (r < 90) {
      c.push_back({pick(review_category::pronoun_singular)});
    } else {
      c.push_back({pick(review_category::pronoun_plural)});
      plural = true;
    }
    if (!linking || g_.bernoulli(0.7)) {
      c.push_back({pick(plural ? review_category::copula_plural : review_category::copula_singular)});
    } else {
      c.push_back({plural ? pick(lex_.plural_linking) : pick(review_category::linking_verb)});
    }
  }

  // The subject of a transitive or intransitive neutral verb: a person.
  token_id agent() {
    switch (g_.below(4)) {
      case 0:
        return pick(review_category::name);
      case 1:
        return pick(review_category::pronoun_first);
      case 2:
        return pick(lex_.people);
      default:
        return pick(review_category::pronoun_plural);
    }
  }

  review_clause verb_clause(int i) {
    review_clause c;
    c.push_back({g_.bernoulli(0.4) ? pick(review_category::pronoun_first) : pick(review_category::pronoun_plural)});
    push_phrase(c, i);
    c.push_back({pick(review_category::determiner)});
    c.push_back({pick(review_category::noun)});
    return c;
  }

  review_clause adjective_clause(int i) {
    review_clause c;
    const auto& it = items_[static_cast<std::size_t>(i)];
    if (!it.negated && g_.bernoulli(0.25)) {  // attributive: "he was a very rude waiter"
      c.push_back({g_.bernoulli(0.5) ? pick(review_category::pronoun_singular) : pick(review_category::name)});
      c.push_back({pick(review_category::copula_singular)});
      c.push_back({lex_.a});
      push_phrase(c, i);
      c.push_back({pick(review_category::noun)});
      return c;
    }
    push_subject_and_copula(c, !it.negated);
    const auto r = g_.below(10);
    if (r == 0) {  // "small and not good"
      c.push_back({pick(review_category::neutral_adjective)});
      c.push_back({lex_.and_});
      push_phrase(c, i);
    } else if (r == 1) {  // "not good and very small"
      push_phrase(c, i);
      c.push_back({lex_.and_});
      if (g_.bernoulli(0.3)) c.push_back({pick(review_category::intensifier)});
      c.push_back({pick(review_category::neutral_adjective)});
    } else {
      push_phrase(c, i);
    }
    return c;
  }

  review_clause pair_clause(int i, int j) {  // "the soup was bland and not very tasty"
    review_clause c;
    push_subject_and_copula(c, !items_[static_cast<std::size_t>(i)].negated);
    push_phrase(c, i);
    c.push_back({lex_.and_});
    push_phrase(c, j);
    return c;
  }

  // The clauses of a span's items, in random order; two adjective items may share a clause.
  std::vector<review_clause> render_span(std::vector<int> ids) {
    g_.shuffle(ids.begin(), ids.end());
    std::vector<review_clause> out;
    std::size_t i = 0;
    while (i < ids.size()) {
      const auto& a = items_[static_cast<std::size_t>(ids[i])];
      if (i + 1 < ids.size() && !a.verb && !items_[static_cast<std::size_t>(ids[i + 1])].verb && g_.bernoulli(0.25)) {
        out.push_back(pair_clause(ids[i], ids[i + 1]));
        i += 2;
      } else {
        out.push_back(a.verb ? verb_clause(ids[i]) : adjective_clause(ids[i]));
        i += 1;
      }
    }
    return out;
  }

  // Clauses [from, to) as sentences: each starts a new sentence or joins the previous one.
  void append_grouped(std::vector<review_sentence>& sentences, const std::vector<review_clause>& clauses,
                      std::size_t from, std::size_t to) {
    for (std::size_t i = from; i < to; ++i) {
      if (i == from || g_.bernoulli(0.6)) {
        sentences.push_back({clauses[i], false});
      } else {
        auto& body = sentences.back().body;
        body.push_back({g_.bernoulli(0.5) ? lex_.and_ : lex_.comma});
        append(body, clauses[i]);
      }
    }
  }

  // A clause without sentiment words, at most `budget` tokens long (budget >= 2).
  review_clause neutral_clause(std::size_t budget) {
    for (int attempt = 0; attempt < 16; ++attempt) {
      review_clause c;
      switch (g_.below(5)) {
        case 0:  // "we ordered the soup on friday"
          c.push_back({agent()});
          c.push_back({pick(review_category::verb_past)});
          c.push_back({pick(review_category::determiner)});
          c.push_back({pick(review_category::noun)});
          if (g_.bernoulli(0.4)) {
            c.push_back({pick(lex_.time_prepositions)});
            c.push_back({pick(review_category::time)});
          }
          break;
        case 1:  // "we did not order the soup" / "we never tried the soup": a negator with no sentiment word
          c.push_back({agent()});
          if (g_.bernoulli(0.5)) {
            c.push_back({lex_.id("did")});
            c.push_back({lex_.not_});
            c.push_back({pick(review_category::verb_base)});
          } else {
            c.push_back({pick(lex_.verb_negators)});
            c.push_back({pick(review_category::verb_past)});
          }
          c.push_back({pick(review_category::determiner)});
          c.push_back({pick(review_category::noun)});
          break;
        case 2: {  // "the room was very small" / "the room was not small"
          const auto r = g_.below(3);
          push_subject_and_copula(c, r != 1);
          if (r == 0) c.push_back({pick(review_category::intensifier)});
          if (r == 1) c.push_back({pick(review_category::negator)});
          c.push_back({pick(review_category::neutral_adjective)});
          break;
        }
        case 3:  // "we went there on friday with alice"
          c.push_back({agent()});
          c.push_back({pick(review_category::verb_intransitive)});
          if (g_.bernoulli(0.5)) c.push_back({pick(review_category::place_adverb)});
          if (g_.bernoulli(0.4)) {
            c.push_back({pick(lex_.time_prepositions)});
            c.push_back({pick(review_category::time)});
          }
          if (g_.bernoulli(0.3)) {
            c.push_back({lex_.with});
            c.push_back({pick(review_category::name)});
          }
          break;
        default:  // "it was a very busy night"
          c.push_back({lex_.it});
          c.push_back({pick(review_category::copula_singular)});
          c.push_back({lex_.a});
          if (g_.bernoulli(0.3)) c.push_back({pick(review_category::intensifier)});
          c.push_back({pick(review_category::neutral_adjective)});
          c.push_back({g_.bernoulli(0.5) ? pick(review_category::noun) : pick(review_category::time)});
          break;
      }
      if (c.size() <= budget) return c;
    }
    return {{agent()}, {pick(review_category::verb_intransitive)}};  // "we left"
  }

  // The example and its ground truth, from the plan (not from label_of: the tests compare the two).
  datasets::review_example record(const std::vector<review_slot>& slots, int y, int deciding, int pre_polarity) {
    datasets::review_example ex;
    auto& a = ex.truth;
    const auto n = slots.size();
    ex.tokens.reserve(n + 1);
    std::vector<std::ptrdiff_t> word_at(items_.size(), -1);
    for (std::size_t i = 0; i < n; ++i) {
      ex.tokens.push_back(slots[i].id);
      if (slots[i].role == review_role::word)
        word_at[static_cast<std::size_t>(slots[i].item)] = static_cast<std::ptrdiff_t>(i);
      if (slots[i].id == lex_.but) a.but_position = i;
    }
    ex.tokens.push_back(datasets::review_marker_id);
    a.verdict = datasets::review_verdict::decided;
    a.polarity = y;
    a.review_length = n;
    a.deciding_start = a.but_position ? *a.but_position + 1 : 0;
    a.before_but_polarity = pre_polarity;
    const auto& d = items_[static_cast<std::size_t>(deciding)];
    a.negated = d.negated;
    a.intensified = d.intensified;
    a.contrast = pre_polarity != 0 && pre_polarity != y;
    a.deciding_words = {static_cast<std::size_t>(word_at[static_cast<std::size_t>(deciding)])};
    a.properties.resize(n + 1);
    for (std::size_t i = 0; i < n; ++i) {
      auto& p = a.properties[i];
      const auto& s = slots[i];
      const auto& e = review_entry(s.id);
      p.pos = e.pos;
      p.in_deciding_clause = i >= a.deciding_start;
      p.is_negator = e.category == review_category::negator;
      p.is_intensifier = e.category == review_category::intensifier;
      if (s.item < 0) continue;
      const auto& it = items_[static_cast<std::size_t>(s.item)];
      if (s.role == review_role::word) {
        p.is_sentiment = true;
        p.written_polarity = it.written;
        p.effective_polarity = it.polarity;
        p.strength = it.base;
        p.effective_strength = it.strength;
        p.is_negated = it.negated;
        p.is_intensified = it.intensified;
      } else {
        p.modifies = word_at[static_cast<std::size_t>(s.item)];
      }
      if (s.item == deciding) {
        p.in_rationale = true;
        a.rationale.push_back(i);
      }
    }
    a.properties[n].pos = datasets::part_of_speech::sym;
    ex.true_label = datasets::review_label_token(y);
    ex.label = ex.true_label;
    return ex;
  }

  const datasets::review_options& o_;
  rng& g_;
  const review_lexicon& lex_;
  std::vector<review_item> items_;
};

/// The review builder (basic_review_builder's only instantiation).
using review_builder = basic_review_builder<>;

template <class = void>
inline void review_check_probability(double p, const char* name) {
  require(std::isfinite(p) && p >= 0.0 && p <= 1.0,
          "glassbox::datasets::review_generator: {} must be in [0, 1], got {}", name, p);
}

}  // namespace glassbox::detail

namespace glassbox::datasets {

/// The seeded generator of the review language. Its const members may be called from several
/// threads at once (e.g. one example index per thread).
///
/// Example:
///   glassbox::datasets::review_generator gen;                // default options
///   auto train = gen.generate(50000, /*seed=*/1);            // examples 0..49999 of seed 1
///   auto test = gen.generate(2000, /*seed=*/2);              // held out: another seed
///   auto ex = glassbox::datasets::to_training_example(train[0]);
///
/// A class template only so that its member functions are compiled where they are used
/// (docs/building.md, "Include cost"); write review_generator.
template <class = void>
class basic_review_generator {
 public:
  /// Attempts at a review before giving up (never reached with valid options; a guard, not a knob).
  static constexpr int max_attempts = 10000;

  /// A generator with `options`; throws glassbox::error for options out of range.
  explicit basic_review_generator(review_options options = {}) : options_(options) {
    detail::require(options_.min_length >= 1, "glassbox::datasets::review_generator: min_length must be >= 1, got {}",
                    options_.min_length);
    detail::require(options_.max_length >= 16, "glassbox::datasets::review_generator: max_length must be >= 16, got {}",
                    options_.max_length);
    detail::require(options_.max_length >= options_.min_length,
                    "glassbox::datasets::review_generator: max_length must be >= min_length = {}, got {}",
                    options_.min_length, options_.max_length);
    detail::review_check_probability(options_.contrast_rate, "contrast_rate");
    detail::review_check_probability(options_.neutral_before_but, "neutral_before_but");
    detail::review_check_probability(options_.opposite_before_but, "opposite_before_but");
    detail::review_check_probability(options_.negation_rate, "negation_rate");
    detail::review_check_probability(options_.intensifier_rate, "intensifier_rate");
    detail::review_check_probability(options_.noise, "noise");
  }

  /// The options.
  const review_options& options() const { return options_; }

  /// The next review drawn from `g`. The first draw decides the noise flip, so the text does not
  /// depend on options().noise.
  review_example next(rng& g) const {
    const bool flip = g.uniform() < options_.noise;
    detail::review_builder builder(options_, g);
    for (int attempt = 0; attempt < max_attempts; ++attempt) {
      if (auto ex = builder.build()) {
        ex->flipped = flip;
        if (flip) ex->label = ex->true_label == review_positive_id ? review_negative_id : review_positive_id;
        return std::move(*ex);
      }
    }
    detail::fail(
        "glassbox::datasets::review_generator: no review fits min_length = {} and max_length = {} after {} attempts",
        options_.min_length, options_.max_length, max_attempts);
  }

  /// Example `index` of the data set of `seed`: drawn from rng(seed).fork(index), so it depends on (seed, index) only.
  review_example example(std::uint64_t seed, std::uint64_t index) const {
    rng g = rng(seed).fork(index);
    return next(g);
  }

  /// Examples first .. first + n - 1 of the data set of `seed`.
  std::vector<review_example> generate(std::size_t n, std::uint64_t seed, std::uint64_t first = 0) const {
    std::vector<review_example> out;
    out.reserve(n);
    const rng base(seed);
    for (std::size_t i = 0; i < n; ++i) {
      rng g = base.fork(first + i);
      out.push_back(next(g));
    }
    return out;
  }

 private:
  review_options options_;
};

/// The review generator type (basic_review_generator's only instantiation).
using review_generator = basic_review_generator<>;

/// The first n examples of the data set of `seed` under `options`: review_generator(options).generate(n, seed).
template <class = void>
inline std::vector<review_example> generate_reviews(std::size_t n, std::uint64_t seed,
                                                    const review_options& options = {}) {
  return review_generator(options).generate(n, seed);
}

}  // namespace glassbox::datasets

// glassbox: the word table of the synthetic review language (datasets/reviews.hpp).
//
// One row per token id, in id order. A word has exactly one category, one part-of-speech tag
// and, if it is a sentiment word, a written polarity, a strength and an antonym (the word of the
// same category and strength with the opposite polarity). Changing this table changes the
// language: docs/ground-truth.md lists it, and the tests pin its size and a hash of generated data.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace glassbox::datasets {

/// Part-of-speech tags of the review language: a subset of the Universal Dependencies tags.
/// Every word has one tag, whatever its position (docs/ground-truth.md lists them).
enum class part_of_speech : std::uint8_t {
  adj,    ///< adjectives: sentiment (good, awful) and neutral (small, modern)
  adp,    ///< prepositions: on, at, with, ...
  adv,    ///< adverbs: intensifiers, fillers, never/hardly/barely, there/again/here
  aux,    ///< auxiliaries: was, is, were, are, do, did
  cconj,  ///< coordinating conjunctions: and, but
  det,    ///< determiners: the, a, this, ...
  noun,   ///< common nouns: topic nouns and times of day
  part,   ///< the particle not
  pron,   ///< pronouns: i, we, they, you, it, he, she
  propn,  ///< proper nouns: people's names and days
  punct,  ///< punctuation: . and ,
  sym,    ///< the prompt marker =>
  verb,   ///< verbs: sentiment verbs (love, hate), neutral verbs, linking verbs (seemed)
  x,      ///< <pad>, <unk> and the label tokens
};

/// Number of part_of_speech values (the classes of a part-of-speech probe).
inline constexpr std::size_t part_of_speech_count = 14;

}  // namespace glassbox::datasets

namespace glassbox::detail {

/// The generator's word categories (finer than the label rule needs: they drive the grammar).
enum class review_category : std::uint8_t {
  pad,
  unk,
  marker,
  label,
  period,
  comma,
  but,
  and_,
  negator,              // not, never, hardly, barely
  intensifier,          // very, really, ...
  filler,               // honestly, overall, ...
  sentiment_adjective,  // good, awful, ...
  sentiment_verb,       // love, hate, ... (base form)
  neutral_adjective,    // small, modern, ...
  noun,                 // food, movie, ...
  name,                 // alice, bob, ...
  time,                 // friday, night, ...
  pronoun_singular,     // it, he, she
  pronoun_plural,       // we, they, you
  pronoun_first,        // i
  determiner,           // the, a, this, ...
  copula_singular,      // was, is
  copula_plural,        // were, are
  linking_verb,         // seemed, looked, felt, ...
  do_auxiliary,         // do, did
  verb_past,            // ordered, visited, ...
  verb_base,            // order, visit, ...
  verb_intransitive,    // went, came, arrived, left
  place_adverb,         // there, again, here
  preposition,          // on, at, ...
};

/// One word of the review language.
struct review_word_entry {
  std::string_view word;
  review_category category;
  datasets::part_of_speech pos;
  int polarity = 0;            // +1 / -1 for sentiment words, as written
  int strength = 0;            // 1 (mild), 2 (moderate), 3 (strong) for sentiment words
  std::string_view antonym{};  // sentiment words: same category and strength, opposite polarity
};

// clang-format off
/// The review vocabulary in id order: ids 0..4 are <pad>, <unk>, the marker and the two labels.
inline constexpr review_word_entry review_word_table[] = {
    {"<pad>", review_category::pad, datasets::part_of_speech::x},
    {"<unk>", review_category::unk, datasets::part_of_speech::x},
    {"=>", review_category::marker, datasets::part_of_speech::sym},
    {"positive", review_category::label, datasets::part_of_speech::x},
    {"negative", review_category::label, datasets::part_of_speech::x},
    // punctuation and conjunctions
    {".", review_category::period, datasets::part_of_speech::punct},
    {",", review_category::comma, datasets::part_of_speech::punct},
    {"but", review_category::but, datasets::part_of_speech::cconj},
    {"and", review_category::and_, datasets::part_of_speech::cconj},
    // negators
    {"not", review_category::negator, datasets::part_of_speech::part},
    {"never", review_category::negator, datasets::part_of_speech::adv},
    {"hardly", review_category::negator, datasets::part_of_speech::adv},
    {"barely", review_category::negator, datasets::part_of_speech::adv},
    // intensifiers
    {"very", review_category::intensifier, datasets::part_of_speech::adv},
    {"really", review_category::intensifier, datasets::part_of_speech::adv},
    {"extremely", review_category::intensifier, datasets::part_of_speech::adv},
    {"truly", review_category::intensifier, datasets::part_of_speech::adv},
    {"incredibly", review_category::intensifier, datasets::part_of_speech::adv},
    {"so", review_category::intensifier, datasets::part_of_speech::adv},
    {"absolutely", review_category::intensifier, datasets::part_of_speech::adv},
    {"remarkably", review_category::intensifier, datasets::part_of_speech::adv},
    // positive sentiment adjectives: mild (1), moderate (2), strong (3)
    {"decent", review_category::sentiment_adjective, datasets::part_of_speech::adj, +1, 1, "mediocre"},
    {"fine", review_category::sentiment_adjective, datasets::part_of_speech::adj, +1, 1, "bland"},
    {"pleasant", review_category::sentiment_adjective, datasets::part_of_speech::adj, +1, 1, "dull"},
    {"nice", review_category::sentiment_adjective, datasets::part_of_speech::adj, +1, 1, "sloppy"},
    {"solid", review_category::sentiment_adjective, datasets::part_of_speech::adj, +1, 1, "stale"},
    {"okay", review_category::sentiment_adjective, datasets::part_of_speech::adj, +1, 1, "flat"},
    {"fair", review_category::sentiment_adjective, datasets::part_of_speech::adj, +1, 1, "tired"},
    {"adequate", review_category::sentiment_adjective, datasets::part_of_speech::adj, +1, 1, "lacking"},
    {"good", review_category::sentiment_adjective, datasets::part_of_speech::adj, +1, 2, "bad"},
    {"tasty", review_category::sentiment_adjective, datasets::part_of_speech::adj, +1, 2, "poor"},
    {"lovely", review_category::sentiment_adjective, datasets::part_of_speech::adj, +1, 2, "disappointing"},
    {"friendly", review_category::sentiment_adjective, datasets::part_of_speech::adj, +1, 2, "rude"},
    {"enjoyable", review_category::sentiment_adjective, datasets::part_of_speech::adj, +1, 2, "unpleasant"},
    {"impressive", review_category::sentiment_adjective, datasets::part_of_speech::adj, +1, 2, "boring"},
    {"charming", review_category::sentiment_adjective, datasets::part_of_speech::adj, +1, 2, "annoying"},
    {"satisfying", review_category::sentiment_adjective, datasets::part_of_speech::adj, +1, 2, "greasy"},
    {"excellent", review_category::sentiment_adjective, datasets::part_of_speech::adj, +1, 3, "terrible"},
    {"amazing", review_category::sentiment_adjective, datasets::part_of_speech::adj, +1, 3, "awful"},
    {"wonderful", review_category::sentiment_adjective, datasets::part_of_speech::adj, +1, 3, "horrible"},
    {"fantastic", review_category::sentiment_adjective, datasets::part_of_speech::adj, +1, 3, "dreadful"},
    {"superb", review_category::sentiment_adjective, datasets::part_of_speech::adj, +1, 3, "disgusting"},
    {"outstanding", review_category::sentiment_adjective, datasets::part_of_speech::adj, +1, 3, "atrocious"},
    {"brilliant", review_category::sentiment_adjective, datasets::part_of_speech::adj, +1, 3, "abysmal"},
    {"perfect", review_category::sentiment_adjective, datasets::part_of_speech::adj, +1, 3, "appalling"},
    // negative sentiment adjectives, antonyms of the rows above in the same order
    {"mediocre", review_category::sentiment_adjective, datasets::part_of_speech::adj, -1, 1, "decent"},
    {"bland", review_category::sentiment_adjective, datasets::part_of_speech::adj, -1, 1, "fine"},
    {"dull", review_category::sentiment_adjective, datasets::part_of_speech::adj, -1, 1, "pleasant"},
    {"sloppy", review_category::sentiment_adjective, datasets::part_of_speech::adj, -1, 1, "nice"},
    {"stale", review_category::sentiment_adjective, datasets::part_of_speech::adj, -1, 1, "solid"},
    {"flat", review_category::sentiment_adjective, datasets::part_of_speech::adj, -1, 1, "okay"},
    {"tired", review_category::sentiment_adjective, datasets::part_of_speech::adj, -1, 1, "fair"},
    {"lacking", review_category::sentiment_adjective, datasets::part_of_speech::adj, -1, 1, "adequate"},
    {"bad", review_category::sentiment_adjective, datasets::part_of_speech::adj, -1, 2, "good"},
    {"poor", review_category::sentiment_adjective, datasets::part_of_speech::adj, -1, 2, "tasty"},
    {"disappointing", review_category::sentiment_adjective, datasets::part_of_speech::adj, -1, 2, "lovely"},
    {"rude", review_category::sentiment_adjective, datasets::part_of_speech::adj, -1, 2, "friendly"},
    {"unpleasant", review_category::sentiment_adjective, datasets::part_of_speech::adj, -1, 2, "enjoyable"},
    {"boring", review_category::sentiment_adjective, datasets::part_of_speech::adj, -1, 2, "impressive"},
    {"annoying", review_category::sentiment_adjective, datasets::part_of_speech::adj, -1, 2, "charming"},
    {"greasy", review_category::sentiment_adjective, datasets::part_of_speech::adj, -1, 2, "satisfying"},
    {"terrible", review_category::sentiment_adjective, datasets::part_of_speech::adj, -1, 3, "excellent"},
    {"awful", review_category::sentiment_adjective, datasets::part_of_speech::adj, -1, 3, "amazing"},
    {"horrible", review_category::sentiment_adjective, datasets::part_of_speech::adj, -1, 3, "wonderful"},
    {"dreadful", review_category::sentiment_adjective, datasets::part_of_speech::adj, -1, 3, "fantastic"},
    {"disgusting", review_category::sentiment_adjective, datasets::part_of_speech::adj, -1, 3, "superb"},
    {"atrocious", review_category::sentiment_adjective, datasets::part_of_speech::adj, -1, 3, "outstanding"},
    {"abysmal", review_category::sentiment_adjective, datasets::part_of_speech::adj, -1, 3, "brilliant"},
    {"appalling", review_category::sentiment_adjective, datasets::part_of_speech::adj, -1, 3, "perfect"},
    // sentiment verbs (base form: "i love the soup", "we do not love the soup")
    {"like", review_category::sentiment_verb, datasets::part_of_speech::verb, +1, 1, "dislike"},
    {"enjoy", review_category::sentiment_verb, datasets::part_of_speech::verb, +1, 2, "regret"},
    {"recommend", review_category::sentiment_verb, datasets::part_of_speech::verb, +1, 2, "resent"},
    {"love", review_category::sentiment_verb, datasets::part_of_speech::verb, +1, 3, "hate"},
    {"adore", review_category::sentiment_verb, datasets::part_of_speech::verb, +1, 3, "despise"},
    {"dislike", review_category::sentiment_verb, datasets::part_of_speech::verb, -1, 1, "like"},
    {"regret", review_category::sentiment_verb, datasets::part_of_speech::verb, -1, 2, "enjoy"},
    {"resent", review_category::sentiment_verb, datasets::part_of_speech::verb, -1, 2, "recommend"},
    {"hate", review_category::sentiment_verb, datasets::part_of_speech::verb, -1, 3, "love"},
    {"despise", review_category::sentiment_verb, datasets::part_of_speech::verb, -1, 3, "adore"},
    // fillers
    {"honestly", review_category::filler, datasets::part_of_speech::adv},
    {"overall", review_category::filler, datasets::part_of_speech::adv},
    {"anyway", review_category::filler, datasets::part_of_speech::adv},
    {"frankly", review_category::filler, datasets::part_of_speech::adv},
    {"admittedly", review_category::filler, datasets::part_of_speech::adv},
    {"basically", review_category::filler, datasets::part_of_speech::adv},
    {"actually", review_category::filler, datasets::part_of_speech::adv},
    {"personally", review_category::filler, datasets::part_of_speech::adv},
    {"generally", review_category::filler, datasets::part_of_speech::adv},
    {"also", review_category::filler, datasets::part_of_speech::adv},
    // neutral adjectives
    {"small", review_category::neutral_adjective, datasets::part_of_speech::adj},
    {"large", review_category::neutral_adjective, datasets::part_of_speech::adj},
    {"big", review_category::neutral_adjective, datasets::part_of_speech::adj},
    {"new", review_category::neutral_adjective, datasets::part_of_speech::adj},
    {"old", review_category::neutral_adjective, datasets::part_of_speech::adj},
    {"modern", review_category::neutral_adjective, datasets::part_of_speech::adj},
    {"busy", review_category::neutral_adjective, datasets::part_of_speech::adj},
    {"local", review_category::neutral_adjective, datasets::part_of_speech::adj},
    {"simple", review_category::neutral_adjective, datasets::part_of_speech::adj},
    {"usual", review_category::neutral_adjective, datasets::part_of_speech::adj},
    {"typical", review_category::neutral_adjective, datasets::part_of_speech::adj},
    {"long", review_category::neutral_adjective, datasets::part_of_speech::adj},
    {"short", review_category::neutral_adjective, datasets::part_of_speech::adj},
    {"early", review_category::neutral_adjective, datasets::part_of_speech::adj},
    {"late", review_category::neutral_adjective, datasets::part_of_speech::adj},
    {"dark", review_category::neutral_adjective, datasets::part_of_speech::adj},
    {"round", review_category::neutral_adjective, datasets::part_of_speech::adj},
    {"wooden", review_category::neutral_adjective, datasets::part_of_speech::adj},
    {"green", review_category::neutral_adjective, datasets::part_of_speech::adj},
    {"blue", review_category::neutral_adjective, datasets::part_of_speech::adj},
    {"french", review_category::neutral_adjective, datasets::part_of_speech::adj},
    {"italian", review_category::neutral_adjective, datasets::part_of_speech::adj},
    {"full", review_category::neutral_adjective, datasets::part_of_speech::adj},
    {"open", review_category::neutral_adjective, datasets::part_of_speech::adj},
    // topic nouns
    {"food", review_category::noun, datasets::part_of_speech::noun},
    {"service", review_category::noun, datasets::part_of_speech::noun},
    {"staff", review_category::noun, datasets::part_of_speech::noun},
    {"waiter", review_category::noun, datasets::part_of_speech::noun},
    {"menu", review_category::noun, datasets::part_of_speech::noun},
    {"pasta", review_category::noun, datasets::part_of_speech::noun},
    {"soup", review_category::noun, datasets::part_of_speech::noun},
    {"pizza", review_category::noun, datasets::part_of_speech::noun},
    {"wine", review_category::noun, datasets::part_of_speech::noun},
    {"coffee", review_category::noun, datasets::part_of_speech::noun},
    {"dessert", review_category::noun, datasets::part_of_speech::noun},
    {"room", review_category::noun, datasets::part_of_speech::noun},
    {"hotel", review_category::noun, datasets::part_of_speech::noun},
    {"bed", review_category::noun, datasets::part_of_speech::noun},
    {"view", review_category::noun, datasets::part_of_speech::noun},
    {"price", review_category::noun, datasets::part_of_speech::noun},
    {"movie", review_category::noun, datasets::part_of_speech::noun},
    {"plot", review_category::noun, datasets::part_of_speech::noun},
    {"acting", review_category::noun, datasets::part_of_speech::noun},
    {"ending", review_category::noun, datasets::part_of_speech::noun},
    {"music", review_category::noun, datasets::part_of_speech::noun},
    {"book", review_category::noun, datasets::part_of_speech::noun},
    {"phone", review_category::noun, datasets::part_of_speech::noun},
    {"battery", review_category::noun, datasets::part_of_speech::noun},
    {"screen", review_category::noun, datasets::part_of_speech::noun},
    {"camera", review_category::noun, datasets::part_of_speech::noun},
    {"app", review_category::noun, datasets::part_of_speech::noun},
    {"game", review_category::noun, datasets::part_of_speech::noun},
    {"show", review_category::noun, datasets::part_of_speech::noun},
    {"car", review_category::noun, datasets::part_of_speech::noun},
    // names
    {"alice", review_category::name, datasets::part_of_speech::propn},
    {"bob", review_category::name, datasets::part_of_speech::propn},
    {"maria", review_category::name, datasets::part_of_speech::propn},
    {"david", review_category::name, datasets::part_of_speech::propn},
    {"sam", review_category::name, datasets::part_of_speech::propn},
    {"priya", review_category::name, datasets::part_of_speech::propn},
    {"omar", review_category::name, datasets::part_of_speech::propn},
    {"lucy", review_category::name, datasets::part_of_speech::propn},
    {"tom", review_category::name, datasets::part_of_speech::propn},
    {"anna", review_category::name, datasets::part_of_speech::propn},
    {"chen", review_category::name, datasets::part_of_speech::propn},
    {"kofi", review_category::name, datasets::part_of_speech::propn},
    // times
    {"monday", review_category::time, datasets::part_of_speech::propn},
    {"friday", review_category::time, datasets::part_of_speech::propn},
    {"saturday", review_category::time, datasets::part_of_speech::propn},
    {"sunday", review_category::time, datasets::part_of_speech::propn},
    {"night", review_category::time, datasets::part_of_speech::noun},
    {"morning", review_category::time, datasets::part_of_speech::noun},
    {"evening", review_category::time, datasets::part_of_speech::noun},
    {"weekend", review_category::time, datasets::part_of_speech::noun},
    {"lunch", review_category::time, datasets::part_of_speech::noun},
    {"dinner", review_category::time, datasets::part_of_speech::noun},
    {"holiday", review_category::time, datasets::part_of_speech::noun},
    // pronouns
    {"it", review_category::pronoun_singular, datasets::part_of_speech::pron},
    {"he", review_category::pronoun_singular, datasets::part_of_speech::pron},
    {"she", review_category::pronoun_singular, datasets::part_of_speech::pron},
    {"we", review_category::pronoun_plural, datasets::part_of_speech::pron},
    {"they", review_category::pronoun_plural, datasets::part_of_speech::pron},
    {"you", review_category::pronoun_plural, datasets::part_of_speech::pron},
    {"i", review_category::pronoun_first, datasets::part_of_speech::pron},
    // determiners
    {"the", review_category::determiner, datasets::part_of_speech::det},
    {"a", review_category::determiner, datasets::part_of_speech::det},
    {"this", review_category::determiner, datasets::part_of_speech::det},
    {"that", review_category::determiner, datasets::part_of_speech::det},
    {"my", review_category::determiner, datasets::part_of_speech::det},
    {"our", review_category::determiner, datasets::part_of_speech::det},
    {"their", review_category::determiner, datasets::part_of_speech::det},
    // copulas, linking verbs, do
    {"was", review_category::copula_singular, datasets::part_of_speech::aux},
    {"is", review_category::copula_singular, datasets::part_of_speech::aux},
    {"were", review_category::copula_plural, datasets::part_of_speech::aux},
    {"are", review_category::copula_plural, datasets::part_of_speech::aux},
    {"seemed", review_category::linking_verb, datasets::part_of_speech::verb},
    {"looked", review_category::linking_verb, datasets::part_of_speech::verb},
    {"felt", review_category::linking_verb, datasets::part_of_speech::verb},
    {"tasted", review_category::linking_verb, datasets::part_of_speech::verb},
    {"sounded", review_category::linking_verb, datasets::part_of_speech::verb},
    {"do", review_category::do_auxiliary, datasets::part_of_speech::aux},
    {"did", review_category::do_auxiliary, datasets::part_of_speech::aux},
    // neutral verbs: past forms, then base forms in the same order
    {"ordered", review_category::verb_past, datasets::part_of_speech::verb},
    {"visited", review_category::verb_past, datasets::part_of_speech::verb},
    {"tried", review_category::verb_past, datasets::part_of_speech::verb},
    {"rented", review_category::verb_past, datasets::part_of_speech::verb},
    {"watched", review_category::verb_past, datasets::part_of_speech::verb},
    {"bought", review_category::verb_past, datasets::part_of_speech::verb},
    {"used", review_category::verb_past, datasets::part_of_speech::verb},
    {"saw", review_category::verb_past, datasets::part_of_speech::verb},
    {"shared", review_category::verb_past, datasets::part_of_speech::verb},
    {"order", review_category::verb_base, datasets::part_of_speech::verb},
    {"visit", review_category::verb_base, datasets::part_of_speech::verb},
    {"try", review_category::verb_base, datasets::part_of_speech::verb},
    {"rent", review_category::verb_base, datasets::part_of_speech::verb},
    {"watch", review_category::verb_base, datasets::part_of_speech::verb},
    {"buy", review_category::verb_base, datasets::part_of_speech::verb},
    {"use", review_category::verb_base, datasets::part_of_speech::verb},
    {"see", review_category::verb_base, datasets::part_of_speech::verb},
    {"share", review_category::verb_base, datasets::part_of_speech::verb},
    {"went", review_category::verb_intransitive, datasets::part_of_speech::verb},
    {"came", review_category::verb_intransitive, datasets::part_of_speech::verb},
    {"arrived", review_category::verb_intransitive, datasets::part_of_speech::verb},
    {"left", review_category::verb_intransitive, datasets::part_of_speech::verb},
    // adverbs of place and repetition, prepositions
    {"there", review_category::place_adverb, datasets::part_of_speech::adv},
    {"again", review_category::place_adverb, datasets::part_of_speech::adv},
    {"here", review_category::place_adverb, datasets::part_of_speech::adv},
    {"on", review_category::preposition, datasets::part_of_speech::adp},
    {"at", review_category::preposition, datasets::part_of_speech::adp},
    {"in", review_category::preposition, datasets::part_of_speech::adp},
    {"with", review_category::preposition, datasets::part_of_speech::adp},
    {"for", review_category::preposition, datasets::part_of_speech::adp},
    {"after", review_category::preposition, datasets::part_of_speech::adp},
    {"before", review_category::preposition, datasets::part_of_speech::adp},
    {"during", review_category::preposition, datasets::part_of_speech::adp},
};
// clang-format on

/// Whether every word is unique and every antonym is a sentiment word of the same category and
/// strength with the opposite polarity whose antonym is the word itself (checked at compile time).
/// The words are sorted once and looked up by binary search: an all-pairs comparison made this
/// check most of the cost of including datasets/reviews.hpp (docs/building.md, "Include cost").
consteval bool review_table_is_consistent() {
  constexpr auto n = sizeof(review_word_table) / sizeof(review_word_table[0]);
  std::array<std::string_view, n> sorted{};
  for (std::size_t i = 0; i < n; ++i) sorted[i] = review_word_table[i].word;
  std::sort(sorted.begin(), sorted.end());
  for (std::size_t i = 1; i < n; ++i)
    if (sorted[i] == sorted[i - 1]) return false;  // a duplicate word
  // The table row of `word` (words are unique), n if absent.
  auto find = [&](std::string_view word) -> std::size_t {
    const auto it = std::lower_bound(sorted.begin(), sorted.end(), word);
    if (it == sorted.end() || *it != word) return n;
    for (std::size_t j = 0; j < n; ++j)
      if (review_word_table[j].word.size() == word.size() && review_word_table[j].word == word) return j;
    return n;
  };
  for (std::size_t i = 0; i < n; ++i) {
    const auto& e = review_word_table[i];
    const bool sentiment =
        e.category == review_category::sentiment_adjective || e.category == review_category::sentiment_verb;
    if (e.word.empty() || sentiment != !e.antonym.empty() || sentiment != (e.polarity != 0)) return false;
    if (!sentiment) continue;
    if (e.strength < 1 || e.strength > 3 || (e.polarity != 1 && e.polarity != -1)) return false;
    const auto j = find(e.antonym);
    if (j == n || j == i) return false;
    const auto& f = review_word_table[j];
    if (f.category != e.category || f.strength != e.strength || f.polarity != -e.polarity || f.antonym != e.word)
      return false;
  }
  return true;
}
static_assert(review_table_is_consistent(), "glassbox: the review word table has a duplicate word or a bad antonym");

}  // namespace glassbox::detail

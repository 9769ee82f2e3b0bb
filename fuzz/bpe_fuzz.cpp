// Fuzzes io::bpe_tokenizer. The input is split at the first "\n====\n" into a vocab.json and a
// merges.txt, loaded with load_vocab_and_merges; the whole input is also loaded as a tokenizer.json.
// Then the whole input is encoded (recognizing special tokens and as text) and decoded with a small
// fixed tokenizer, and with the loaded ones; decode(encode(text)) must give text back byte for byte
// (byte-level BPE loses nothing). The input's bytes are also decoded as token ids.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_support.hpp"
#include "glassbox/io/bpe_tokenizer.hpp"

namespace {

namespace io = glassbox::io;

// The 256 byte tokens, a few merges (" t"+"he", "h"+"e", ...) and "<|endoftext|>".
io::bpe_tokenizer fixed_tokenizer() {
  const auto map = io::gpt2_byte_to_unicode();
  std::vector<std::pair<std::string, glassbox::token_id>> vocab;
  const auto utf8 = [](char32_t cp) {
    std::string s;
    if (cp < 0x80)
      s.push_back(static_cast<char>(cp));
    else
      s += {static_cast<char>(0xC0 | (cp >> 6)), static_cast<char>(0x80 | (cp & 0x3F))};
    return s;
  };
  for (int b = 0; b < 256; ++b) vocab.emplace_back(utf8(map[b]), b);
  const std::vector<io::bpe_tokenizer::merge> merges = {{"h", "e"},  {"\xC4\xA0", "t"}, {"\xC4\xA0t", "he"}, {"i", "n"},
                                                        {"in", "g"}, {"\xC4\xA0", "a"}, {"e", "r"}};
  glassbox::token_id next = 256;
  for (const auto& [l, r] : merges) vocab.emplace_back(l + r, next++);
  vocab.emplace_back("<|endoftext|>", next);
  return io::bpe_tokenizer::from_parts(vocab, merges, {{"<|endoftext|>", next}}, "bpe_fuzz fixed tokenizer");
}

void exercise(const io::bpe_tokenizer& t, std::string_view text, const std::uint8_t* data, std::size_t size) {
  glassbox::fuzz::expect_glassbox_error_or_success([&] {
    if (t.decode(t.encode(text, io::special_tokens::as_text)) != text) std::abort();
    if (t.decode(t.encode(text, io::special_tokens::recognize)) != text) std::abort();
  });
  std::vector<glassbox::token_id> ids(size / sizeof(glassbox::token_id));
  if (!ids.empty()) std::memcpy(ids.data(), data, ids.size() * sizeof(glassbox::token_id));
  glassbox::fuzz::expect_glassbox_error_or_success([&] { (void)t.decode(ids); });
  for (const auto id : ids) {
    glassbox::fuzz::expect_glassbox_error_or_success([&] { (void)t.token(id); });
    (void)t.contains(id);
  }
  (void)t.find(text);
  (void)io::readable_token(text);
  (void)io::replace_invalid_utf8(text);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  static const io::bpe_tokenizer fixed = fixed_tokenizer();
  exercise(fixed, text, data, size);

  const auto [vocab_part, merges_part] = glassbox::fuzz::split_input(text, "\n====\n");
  const auto vocab_json = glassbox::fuzz::write_scratch("vocab.json", vocab_part);
  const auto merges_txt = glassbox::fuzz::write_scratch("merges.txt", merges_part);
  glassbox::fuzz::expect_glassbox_error_or_success([&] {
    const auto t = io::bpe_tokenizer::load_vocab_and_merges(vocab_json, merges_txt);
    exercise(t, text, data, size);
  });
  const auto tokenizer_json = glassbox::fuzz::write_scratch("tokenizer.json", text);
  glassbox::fuzz::expect_glassbox_error_or_success([&] {
    const auto t = io::bpe_tokenizer::load_tokenizer_json(tokenizer_json);
    exercise(t, text, data, size);
  });
  return 0;
}

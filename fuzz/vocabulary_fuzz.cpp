// Fuzzes io::vocabulary: the input is loaded as a vocabulary file, then encoded (both unknown-word
// policies) and decoded with the vocabulary it gave, and with a small fixed vocabulary; its bytes are
// also decoded as token ids. decode(encode(text)) must give the words of text joined by single spaces.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_support.hpp"
#include "glassbox/io/vocabulary.hpp"

namespace {

namespace io = glassbox::io;

// The words of `text` joined by single spaces (what decode(encode(text)) must give).
std::string joined_words(std::string_view text) {
  std::string out;
  for (const auto w : io::split_words(text)) {
    if (!out.empty()) out += ' ';
    out += w;
  }
  return out;
}

void exercise(const io::vocabulary& v, std::string_view text, const std::uint8_t* data, std::size_t size) {
  glassbox::fuzz::expect_glassbox_error_or_success([&] {
    const auto ids = v.encode(text, io::unknown_policy::fail);
    if (v.decode(ids) != joined_words(text)) std::abort();  // every word known: the round trip is exact
  });
  glassbox::fuzz::expect_glassbox_error_or_success(
      [&] { (void)v.decode(v.encode(text, io::unknown_policy::map_to_unk)); });
  std::vector<glassbox::token_id> ids(size / sizeof(glassbox::token_id));
  if (!ids.empty()) std::memcpy(ids.data(), data, ids.size() * sizeof(glassbox::token_id));
  glassbox::fuzz::expect_glassbox_error_or_success([&] { (void)v.decode(ids); });
  glassbox::fuzz::expect_glassbox_error_or_success([&] { (void)v.tokens(ids); });
  for (const auto id : ids) glassbox::fuzz::expect_glassbox_error_or_success([&] { (void)v.token(id); });
  glassbox::fuzz::expect_glassbox_error_or_success([&] { (void)v.id(text); });
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  static const io::vocabulary fixed({"<pad>", "<unk>", "the", "movie", "was", "not", "good", "\xC3\xA9t\xC3\xA9"});
  exercise(fixed, text, data, size);
  const auto file = glassbox::fuzz::write_scratch("vocab.txt", text);
  glassbox::fuzz::expect_glassbox_error_or_success([&] {
    const auto loaded = io::vocabulary::load(file);
    if (loaded.empty()) std::abort();  // load never gives an empty vocabulary
    exercise(loaded, text, data, size);
    // Saving and loading again gives the same vocabulary.
    const auto again_file = glassbox::fuzz::scratch_path("vocab_again.txt");
    loaded.save(again_file);
    if (io::vocabulary::load(again_file) != loaded) std::abort();
  });
  glassbox::fuzz::expect_glassbox_error_or_success([&] {
    // The constructor from a list: the input's lines as tokens.
    std::vector<std::string> tokens;
    for (std::size_t start = 0; start <= text.size();) {
      const auto end = std::min(text.find('\n', start), text.size());
      tokens.emplace_back(text.substr(start, end - start));
      start = end + 1;
    }
    (void)io::vocabulary(std::move(tokens));
  });
  return 0;
}

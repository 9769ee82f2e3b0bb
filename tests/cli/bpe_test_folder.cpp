// Writes the GPT-2 BPE folders of the tokenize tests (tests/cli/tokenize.cmake) into DIR:
//   DIR/pair   vocab.json + merges.txt and a random 1-layer GPT-2 (model.safetensors) of the same vocabulary
//   DIR/json   the same tokenizer as tokenizer.json (no model)
//   DIR/wordpiece  a tokenizer.json of another kind (an error)
// The vocabulary: the 256 byte tokens (id = byte value), the merges of "Hello" and " world" (ids 256..264,
// "Hello" = 259, "Ġworld" = 264) and "<|endoftext|>" = 265.
#include <nlohmann/json.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "glassbox/io/bpe_tokenizer.hpp"
#include "glassbox/models/gpt2.hpp"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: bpe_test_folder DIR\n");
    return 2;
  }
  const std::filesystem::path dir = argv[1];
  const auto bytes = glassbox::io::gpt2_byte_to_unicode();
  const auto form = [&](std::string_view text) {
    std::string s;
    for (const char ch : text) {
      const char32_t c = bytes[static_cast<unsigned char>(ch)];
      if (c < 0x80) s += static_cast<char>(c);
      else s += {static_cast<char>(0xC0 | (c >> 6)), static_cast<char>(0x80 | (c & 0x3F))};
    }
    return s;
  };
  nlohmann::json vocab = nlohmann::json::object();
  for (int b = 0; b < 256; ++b) vocab[form(std::string(1, static_cast<char>(b)))] = b;
  const std::vector<std::pair<std::string, std::string>> merges = {
      {"H", "e"}, {"l", "l"}, {"He", "ll"}, {"Hell", "o"}, {" ", "w"}, {"o", "r"}, {" w", "or"}, {"l", "d"}, {" wor", "ld"}};
  std::string merges_txt = "#version: 0.2\n";
  nlohmann::json merges_json = nlohmann::json::array();
  int next = 256;
  for (const auto& [l, r] : merges) {
    vocab[form(l + r)] = next++;
    merges_txt += form(l) + " " + form(r) + "\n";
    merges_json.push_back(form(l) + " " + form(r));
  }
  vocab["<|endoftext|>"] = next++;
  for (const char* sub : {"pair", "json", "wordpiece"}) std::filesystem::create_directories(dir / sub);
  std::ofstream(dir / "pair" / "vocab.json") << vocab.dump();
  std::ofstream(dir / "pair" / "merges.txt") << merges_txt;
  nlohmann::json tj = {{"added_tokens", {{{"id", next - 1}, {"content", "<|endoftext|>"}, {"special", true}}}},
                       {"normalizer", nullptr},
                       {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}}},
                       {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", merges_json}}}};
  std::ofstream(dir / "json" / "tokenizer.json") << tj.dump(1);
  tj["model"]["type"] = "WordPiece";
  std::ofstream(dir / "wordpiece" / "tokenizer.json") << tj.dump(1);
  glassbox::models::gpt2_config config;
  config.n_layer = 1;
  config.n_head = 2;
  config.n_embd = 8;
  config.n_positions = 32;
  config.vocab_size = static_cast<std::size_t>(next);
  glassbox::models::gpt2::random(config, 3).save(dir / "pair" / "model.safetensors");
  std::printf("wrote %s (vocabulary of %d tokens)\n", dir.string().c_str(), next);
  return 0;
}

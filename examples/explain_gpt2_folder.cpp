// Explain a public GPT-2 checkpoint from text: load its folder (model.safetensors, config.json, and
// vocab.json + merges.txt or tokenizer.json; docs/real-models.md says which files to download), tokenize
// the prompt with GPT-2's byte-level BPE, and attribute the log-probability of the next token to the
// prompt's tokens with integrated gradients.
//
//   explain_gpt2_folder gpt2 "The capital of France is" " Paris"
//
// Without arguments (as CTest runs it) it writes a tiny GPT-2 folder with random weights and a byte-level
// vocabulary to the temporary directory and explains that: the scores mean nothing, the path through the
// files is the one a real checkpoint takes.
#include <nlohmann/json.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "glassbox/attribution.hpp"
#include "glassbox/io/bpe_tokenizer.hpp"
#include "glassbox/models/gpt2.hpp"

namespace {

/// A folder with a 2-layer random GPT-2 and a vocabulary of the 256 byte tokens plus "<|endoftext|>".
std::filesystem::path demo_folder() {
  const auto dir = std::filesystem::temp_directory_path() / "glassbox_demo_gpt2";
  std::filesystem::create_directories(dir);
  nlohmann::json vocab = nlohmann::json::object();
  const auto bytes = glassbox::io::gpt2_byte_to_unicode();
  for (int b = 0; b < 256; ++b) {
    const char32_t c = bytes[b];  // every mapped character is below U+0800: one or two UTF-8 bytes
    vocab[c < 0x80 ? std::string(1, static_cast<char>(c))
                   : std::string{static_cast<char>(0xC0 | (c >> 6)), static_cast<char>(0x80 | (c & 0x3F))}] = b;
  }
  vocab["<|endoftext|>"] = 256;
  std::ofstream(dir / "vocab.json") << vocab.dump();
  std::ofstream(dir / "merges.txt") << "#version: 0.2\n";
  glassbox::models::gpt2_config config;
  config.n_layer = 2;
  config.n_head = 2;
  config.n_embd = 16;
  config.n_positions = 64;
  config.vocab_size = 257;
  glassbox::models::gpt2::random(config, 7).save(dir / "model.safetensors");
  return dir;
}

}  // namespace

int main(int argc, char** argv) {
  const std::filesystem::path dir = argc > 1 ? std::filesystem::path(argv[1]) : demo_folder();
  const std::string prompt = argc > 2 ? argv[2] : "The capital of France is";
  const std::string next = argc > 3 ? argv[3] : " Paris";
  const auto model = glassbox::models::gpt2::load(dir);
  const auto tokenizer = glassbox::io::bpe_tokenizer::load(dir);
  const auto tokens = tokenizer.encode(prompt);
  const auto next_ids = tokenizer.encode(next);
  if (tokens.empty() || next_ids.empty()) {
    std::fprintf(stderr, "explain_gpt2_folder: the prompt and the next token must not be empty\n");
    return 1;
  }
  const auto why = glassbox::target::log_probability(next_ids.front());
  const auto r = glassbox::integrated_gradients(model, tokens, why);  // 50 Gauss-Legendre steps, zero baseline
  std::printf("why log p('%s' | prompt) = %.4f (%zu model passes; convergence delta %.2g)\n",
              glassbox::io::readable_token(tokenizer.token_bytes(next_ids.front())).c_str(), r.target_value,
              r.model_evaluations, r.convergence_delta.value_or(0.0));
  for (std::size_t i = 0; i < tokens.size(); ++i)
    std::printf("  %-14s %+.5f\n", glassbox::io::readable_token(tokenizer.token_bytes(tokens[i])).c_str(), r.scores[i]);
  return 0;
}

// glassbox tokenize: the token ids and readable token strings of a text, through the tokenizer beside a
// model (GPT-2's BPE from vocab.json + merges.txt or tokenizer.json, else the word vocabulary vocab.txt).
// No weights are loaded.
#include <fmt/format.h>

#include <fstream>
#include <iterator>
#include <sstream>

#include "cli.hpp"

namespace glassbox::cli {

namespace {

/// The ids of `text` through whichever tokenizer `t` holds.
token_sequence tokenize_text(const text_tokenizer& t, std::string_view text) {
  if (t.bpe) return t.bpe->encode(text);
  return t.vocabulary.encode(text, io::unknown_policy::fail);
}

/// The readable strings of `ids`; `space` stands for a space in BPE tokens ("␣" in the terminal).
std::vector<std::string> readable_tokens(const text_tokenizer& t, token_span ids, std::string_view space) {
  std::vector<std::string> out;
  out.reserve(ids.size());
  for (const token_id id : ids)
    out.push_back(t.bpe ? io::readable_token(t.bpe->token_bytes(id), space) : t.vocabulary.token(id));
  return out;
}

}  // namespace

runner add_tokenize_command(CLI::App& app) {
  struct state {
    std::string model, tokenizer, text, file;
    bool json = false;
  };
  auto s = std::make_shared<state>();
  auto* cmd = app.add_subcommand(
      "tokenize", "Print the token ids and token strings of a text (the tokenizer beside the model; no weights are loaded)");
  auto* m = cmd->add_option("--model", s->model,
                            "model file or directory whose tokenizer is used (default: the bundled model)");
  auto* k = cmd->add_option("--tokenizer", s->tokenizer,
                            "a directory with vocab.json + merges.txt, tokenizer.json or vocab.txt, or a tokenizer.json");
  m->excludes(k);
  k->excludes(m);
  auto* t = cmd->add_option("--text", s->text, "the text to tokenize");
  auto* f = cmd->add_option("--file", s->file, "tokenize each line of this file; writes one JSON line {\"ids\": [...]} per line");
  t->excludes(f);
  f->excludes(t);
  cmd->add_flag("--json", s->json, "print {\"ids\": [...], \"tokens\": [...]} as JSON instead of a table");
  return [s, cmd] {
    if (cmd->count("--text") == 0 && s->file.empty()) detail::fail("tokenize: pass --text TEXT or --file FILE");
    namespace fs = std::filesystem;
    const fs::path where = !s->tokenizer.empty() ? fs::path(s->tokenizer)
                           : !s->model.empty()   ? fs::path(s->model)
                                                 : find_default_model();
    if (!fs::exists(where)) detail::fail("{} does not exist", where.string());
    text_tokenizer tok;
    if (fs::is_regular_file(where) && where.extension() == ".json") tok.bpe = io::bpe_tokenizer::load(where);
    else tok = text_tokenizer::beside(fs::is_directory(where) ? where : where.parent_path());
    if (!tok.bpe && tok.vocabulary.empty())
      detail::fail("{} holds no tokenizer (expected vocab.json + merges.txt, tokenizer.json or vocab.txt)", where.string());
    if (!s->file.empty()) {
      std::ifstream in(s->file, std::ios::binary);
      if (!in) detail::fail("--file: cannot read {}", s->file);
      const std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      std::string out;
      std::size_t start = 0;
      while (start < content.size()) {  // lines end at "\n"; a last line without one counts, nothing after the final "\n"
        std::size_t end = content.find('\n', start);
        if (end == std::string::npos) end = content.size();
        const auto ids = tokenize_text(tok, std::string_view(content).substr(start, end - start));
        out += report::json{{"ids", ids}}.dump() + "\n";
        start = end + 1;
      }
      write_text("-", out);
      return;
    }
    const auto ids = tokenize_text(tok, s->text);
    if (s->json) {
      report::json j;
      j["tokenizer"] = tok.bpe ? "bpe" : "words";
      j["ids"] = ids;
      j["tokens"] = readable_tokens(tok, ids, " ");
      write_json("-", j);
      return;
    }
    const auto strings = readable_tokens(tok, ids, "\u2423");
    if (tok.bpe)
      fmt::print("tokenizer  GPT-2 byte-level BPE ({} tokens, {} merges) from {}\n", tok.bpe->size(),
                 tok.bpe->merge_count(), where.string());
    else
      fmt::print("tokenizer  word vocabulary ({} tokens) from {}\n", tok.vocabulary.size(), where.string());
    fmt::print("ids        {}\n", fmt::join(ids, ","));
    fmt::print("{} tokens:\n", ids.size());
    for (std::size_t i = 0; i < ids.size(); ++i) fmt::print("  {:>4}  {:>6}  {}\n", i, ids[i], strings[i]);
  };
}

}  // namespace glassbox::cli

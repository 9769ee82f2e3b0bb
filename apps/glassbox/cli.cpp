// The shared parts of the glassbox command line (cli.hpp).
#include "cli.hpp"

#include <fmt/format.h>

#include <charconv>
#include <iostream>
#include <system_error>

namespace glassbox::cli {

namespace fs = std::filesystem;

std::vector<fs::path> default_model_candidates() {
  std::vector<fs::path> out;
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    const fs::path dir = exe.parent_path();
    out.push_back(dir / "models" / bundled_model_name);
    out.push_back(dir.parent_path() / "share" / "glassbox" / "models" / bundled_model_name);
  }
#ifdef GLASSBOX_SOURCE_MODELS_DIR
  out.push_back(fs::path(GLASSBOX_SOURCE_MODELS_DIR) / bundled_model_name);
#endif
  return out;
}

fs::path find_default_model() {
  const auto candidates = default_model_candidates();
  for (const auto& c : candidates)
    if (fs::exists(c / "model.safetensors")) return c;
  std::string tried;
  for (const auto& c : candidates) tried += (tried.empty() ? "" : ", ") + c.string();
  detail::fail("the bundled model was not found (looked in {}); pass --model", tried);
}

std::vector<std::string> loaded_model::token_strings(token_span ids) const {
  std::vector<std::string> out;
  out.reserve(ids.size());
  for (const token_id id : ids)
    out.push_back(has_vocabulary() && id >= 0 && static_cast<std::size_t>(id) < vocabulary.size()
                      ? vocabulary.token(id)
                      : fmt::format("#{}", id));
  return out;
}

loaded_model load_model(const std::string& path) {
  const fs::path where = path.empty() ? find_default_model() : fs::path(path);
  if (!fs::exists(where)) detail::fail("model {} does not exist", where.string());
  loaded_model m{models::gpt2::load(where), {}, where};
  const fs::path dir = fs::is_directory(where) ? where : where.parent_path();
  const fs::path vocab = dir / "vocab.txt";
  if (fs::exists(vocab)) {
    m.vocabulary = io::vocabulary::load(vocab);
    detail::require(m.vocabulary.size() == m.model.vocab_size(),
                    "{} holds {} tokens but the model has a vocabulary of {}", vocab.string(), m.vocabulary.size(),
                    m.model.vocab_size());
  }
  return m;
}

void input_options::add_to(CLI::App& command) {
  auto* t = command.add_option("--text", text, "the input as space-separated words of the model's vocabulary");
  auto* k = command.add_option("--tokens", tokens, "the input as comma-separated token ids, e.g. 12,7,2");
  t->excludes(k);
  k->excludes(t);
}

token_sequence parse_token_list(const std::string& list) {
  token_sequence out;
  std::size_t start = 0;
  while (start <= list.size()) {
    std::size_t end = list.find(',', start);
    if (end == std::string::npos) end = list.size();
    std::string_view item(list.data() + start, end - start);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    long long value = 0;
    const auto [ptr, ec] = std::from_chars(item.data(), item.data() + item.size(), value);
    if (item.empty() || ec != std::errc() || ptr != item.data() + item.size())
      detail::fail("--tokens: '{}' is not a token id (expected comma-separated integers)", item);
    if (value < 0 || value > 0x7fffffff) detail::fail("--tokens: token id {} is out of range", value);
    out.push_back(static_cast<token_id>(value));
    start = end + 1;
  }
  return out;
}

token_sequence input_options::resolve(const loaded_model& m) const {
  token_sequence ids;
  if (!text.empty() || tokens.empty()) {
    if (text.find_first_not_of(" \t\n") == std::string::npos) detail::fail("the input is empty: pass --text or --tokens");
    if (!m.has_vocabulary())
      detail::fail("model {} has no vocab.txt, so --text cannot be read; pass --tokens", m.path.string());
    for (std::size_t i = 0; i < text.size();) {
      const std::size_t b = text.find_first_not_of(" \t\n", i);
      if (b == std::string::npos) break;
      std::size_t e = text.find_first_of(" \t\n", b);
      if (e == std::string::npos) e = text.size();
      const std::string word = text.substr(b, e - b);
      const auto id = m.vocabulary.find(word);
      if (!id) detail::fail("unknown word '{}' (not in the vocabulary of {})", word, m.path.string());
      ids.push_back(*id);
      i = e;
    }
  } else {
    ids = parse_token_list(tokens);
    for (const token_id id : ids)
      if (static_cast<std::size_t>(id) >= m.model.vocab_size())
        detail::fail("token id {} is out of range (the vocabulary has {} tokens)", id, m.model.vocab_size());
  }
  if (ids.empty()) detail::fail("the input is empty: pass --text or --tokens");
  if (ids.size() > m.model.max_positions())
    detail::fail("the input has {} tokens; the model accepts at most {}", ids.size(), m.model.max_positions());
  return ids;
}

void write_text(const std::string& file, const std::string& text) {
  if (file == "-") {
    std::cout << text;
    return;
  }
  std::ofstream out(file, std::ios::binary);
  if (!out) detail::fail("cannot write {}", file);
  out << text;
  out.close();
  if (!out) detail::fail("cannot write {}", file);
}

void write_json(const std::string& file, const report::json& document) { write_text(file, document.dump(2) + "\n"); }

}  // namespace glassbox::cli

// The shared parts of the glassbox command line (cli.hpp).
#include "cli.hpp"

#include <fmt/format.h>

#include <unistd.h>

#include <charconv>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <memory>
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

std::vector<std::string> loaded_model::token_strings(token_span ids, token_style style) const {
  std::vector<std::string> out;
  out.reserve(ids.size());
  const std::string_view space = style == token_style::html ? "\u00A0" : "\u2423";
  for (const token_id id : ids)
    if (bpe && bpe->contains(id))
      out.push_back(io::readable_token(bpe->token_bytes(id), space));
    else
      out.push_back(has_vocabulary() && id >= 0 && static_cast<std::size_t>(id) < vocabulary.size()
                        ? vocabulary.token(id)
                        : fmt::format("#{}", id));
  return out;
}

text_tokenizer text_tokenizer::beside(const fs::path& dir) {
  text_tokenizer t;
  if (io::bpe_tokenizer::files_in(dir))
    t.bpe = io::bpe_tokenizer::load(dir);
  else if (fs::exists(dir / "vocab.txt"))
    t.vocabulary = io::vocabulary::load(dir / "vocab.txt");
  return t;
}

loaded_model load_model(const std::string& path) {
  const fs::path where = path.empty() ? find_default_model() : fs::path(path);
  if (!fs::exists(where)) detail::fail("model {} does not exist", where.string());
  loaded_model m{models::gpt2::load(where), {}, where, std::nullopt};
  const fs::path dir = fs::is_directory(where) ? where : where.parent_path();
  auto tokenizer = text_tokenizer::beside(dir);
  if (tokenizer.bpe) {
    detail::require(tokenizer.bpe->size() <= m.model.vocab_size(),
                    "the BPE tokenizer in {} has ids up to {} but the model has a vocabulary of {}", dir.string(),
                    tokenizer.bpe->size() - 1, m.model.vocab_size());
    m.bpe = std::move(tokenizer.bpe);
  } else if (!tokenizer.vocabulary.empty()) {
    m.vocabulary = std::move(tokenizer.vocabulary);
    detail::require(m.vocabulary.size() == m.model.vocab_size(),
                    "{} holds {} tokens but the model has a vocabulary of {}", (dir / "vocab.txt").string(),
                    m.vocabulary.size(), m.model.vocab_size());
  }
  return m;
}

void input_options::add_to(CLI::App& command) {
  auto* t = command.add_option("--text", text,
                               "the input text: space-separated words of vocab.txt, or any text for a BPE tokenizer");
  auto* k = command.add_option("--tokens", tokens, "the input as comma-separated token ids, e.g. 12,7,2");
  t->excludes(k);
  k->excludes(t);
}

std::vector<std::string_view> split_list(std::string_view text, char separator) {
  std::vector<std::string_view> out;
  std::size_t start = 0;
  while (start <= text.size()) {
    std::size_t end = text.find(separator, start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view item = text.substr(start, end - start);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    out.push_back(item);
    start = end + 1;
  }
  return out;
}

token_id resolve_token(const loaded_model& m, std::string_view what, std::string_view option) {
  if (m.has_vocabulary())
    if (const auto id = m.vocabulary.find(std::string(what))) return *id;
  if (m.bpe && !what.empty()) {
    if (const auto id = m.bpe->find(what)) return *id;  // the vocabulary's form, "ĠParis"
    std::string text(what);
    for (std::size_t p; (p = text.find("\u2423")) != std::string::npos;) text.replace(p, 3, " ");  // "␣Paris"
    const auto ids = m.bpe->encode(text);
    if (ids.size() == 1) return ids[0];
  }
  long long value = 0;
  const auto [ptr, ec] = std::from_chars(what.data(), what.data() + what.size(), value);
  if (what.empty() || ec != std::errc() || ptr != what.data() + what.size())
    detail::fail("{}: '{}' is neither {} nor a token id", option, what,
                 m.bpe ? std::string("one token of the BPE tokenizer")
                       : fmt::format("a word of the vocabulary{}", m.has_vocabulary() ? "" : " (the model has no vocab.txt)"));
  if (value < 0 || static_cast<std::size_t>(value) >= m.model.vocab_size())
    detail::fail("{}: token id {} is out of range (the vocabulary has {} tokens)", option, value,
                 m.model.vocab_size());
  return static_cast<token_id>(value);
}

progress_callback progress_bar() {
  if (isatty(fileno(stderr)) == 0) return {};
  struct clock_state {
    std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
    std::string stage;
  };
  auto state = std::make_shared<clock_state>();
  return [state](const progress& p) {
    if (p.total == 0) return true;
    const auto now = std::chrono::steady_clock::now();
    if (state->stage != p.stage) {  // a new stage restarts the clock
      state->stage = std::string(p.stage);
      state->start = now;
    }
    const double seconds = std::chrono::duration<double>(now - state->start).count();
    const double rate = seconds > 0 ? static_cast<double>(p.done) / seconds : 0.0;
    const std::string left = rate > 0 && p.done < p.total
                                 ? fmt::format(", {:.0f} s left", static_cast<double>(p.total - p.done) / rate)
                                 : std::string();
    const std::size_t width = 28, filled = std::min(width, p.done * width / p.total);
    fmt::print(stderr, "\r{:<24.24} [{}{}] {}/{} {:.1f}/s{}\x1b[K", p.stage, std::string(filled, '#'),
               std::string(width - filled, '.'), p.done, p.total, rate, left);
    if (p.done >= p.total) fmt::print(stderr, "\r\x1b[K");
    std::fflush(stderr);
    return true;
  };
}

std::string options_line(const std::vector<named_option>& options) {
  std::string out;
  for (const auto& o : options) {
    std::string value = report::detail::option_json(o.value).dump();
    if (value.size() >= 2 && value.front() == '"') value = value.substr(1, value.size() - 2);
    out += fmt::format("{}{}={}", out.empty() ? "" : " ", o.name, value);
  }
  return out;
}

report::json options_json(const std::vector<named_option>& options) {
  report::json out = report::json::object();
  for (const auto& o : options) out[o.name] = report::detail::option_json(o.value);
  return out;
}

report::json number_or_null(double x) { return report::detail::number(x); }

std::string joined(const std::vector<std::string>& words) {
  std::string out;
  for (const auto& w : words) out += (out.empty() ? "" : " ") + w;
  return out;
}

token_sequence parse_token_list(const std::string& list) {
  token_sequence out;
  for (const std::string_view item : split_list(list)) {
    long long value = 0;
    const auto [ptr, ec] = std::from_chars(item.data(), item.data() + item.size(), value);
    if (item.empty() || ec != std::errc() || ptr != item.data() + item.size())
      detail::fail("--tokens: '{}' is not a token id (expected comma-separated integers)", item);
    if (value < 0 || value > 0x7fffffff) detail::fail("--tokens: token id {} is out of range", value);
    out.push_back(static_cast<token_id>(value));
  }
  return out;
}

token_sequence input_options::resolve(const loaded_model& m) const {
  token_sequence ids;
  if (!text.empty() || tokens.empty()) {
    if (text.find_first_not_of(" \t\n") == std::string::npos) detail::fail("the input is empty: pass --text or --tokens");
    if (!m.has_tokenizer())
      detail::fail("model {} has no tokenizer (vocab.txt, vocab.json + merges.txt or tokenizer.json), so --text "
                   "cannot be read; pass --tokens",
                   m.path.string());
    if (m.bpe) {
      ids = m.bpe->encode(text);
    } else {
      for (const std::string_view word : io::split_words(text)) {
        const auto id = m.vocabulary.find(word);
        if (!id) detail::fail("unknown word '{}' (not in the vocabulary of {})", word, m.path.string());
        ids.push_back(*id);
      }
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

void check_output_path(const std::string& file, std::string_view option) {
  if (file.empty() || file == "-") return;
  const fs::path p(file);
  const fs::path dir = p.parent_path();
  if ((!dir.empty() && !fs::is_directory(dir)) || fs::is_directory(p))
    detail::fail("cannot write {} (given to {}): {}", file, option,
                 fs::is_directory(p) ? "it is a directory" : "its directory does not exist");
}

}  // namespace glassbox::cli

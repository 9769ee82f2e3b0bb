// The data files of batch runs (batch_files.hpp).
#include "batch_files.hpp"

#include <fmt/format.h>

#include <filesystem>
#include <sstream>

#include "glassbox/io/vocabulary.hpp"
#include "glassbox/report/json.hpp"

namespace glassbox::cli {

void data_line::check() const {
  if (!error.empty()) throw glassbox::error(error);
}

namespace {

// A word or id of a data line, as text (resolved by the subcommand against the model).
std::optional<std::string> word_or_id(const report::json& j, const char* key) {
  if (!j.contains(key) || j[key].is_null()) return std::nullopt;
  if (j[key].is_string()) return j[key].get<std::string>();
  if (j[key].is_number_integer()) return std::to_string(j[key].get<long long>());
  throw error(fmt::format("\"{}\" must be a word or a token id, got {}", key, j[key].dump()));
}

data_line parse_line(const std::string& text, const loaded_model& m) {
  data_line d;
  report::json j;
  try {
    j = report::json::parse(text);
  } catch (const std::exception&) {
    throw error("is not valid JSON");
  }
  if (!j.is_object()) throw error("must be a JSON object with \"text\" or \"token_ids\"");
  if (j.contains("token_ids")) {
    if (!j["token_ids"].is_array()) throw error("\"token_ids\" must be an array of token ids");
    for (const auto& x : j["token_ids"]) {
      if (!x.is_number_integer() || x.get<long long>() < 0 ||
          static_cast<std::size_t>(x.get<long long>()) >= m.model.vocab_size())
        throw error(fmt::format("token id {} is out of range (the vocabulary has {} tokens)", x.dump(),
                                m.model.vocab_size()));
      d.tokens.push_back(x.get<token_id>());
    }
  } else if (j.contains("text")) {
    if (!j["text"].is_string()) throw error("\"text\" must be a string");
    if (m.bpe) {
      d.tokens = m.bpe->encode(j["text"].get<std::string>());
    } else {
      if (!m.has_vocabulary())
        throw error("\"text\" needs a tokenizer (vocab.txt, vocab.json + merges.txt or tokenizer.json beside the "
                    "model); give token_ids");
      const std::string words = j["text"].get<std::string>();  // split_words returns views into it
      for (const std::string_view word : io::split_words(words)) {
        const auto id = m.vocabulary.find(word);
        if (!id) throw error(fmt::format("unknown word '{}'", word));
        d.tokens.push_back(*id);
      }
    }
  } else {
    throw error("must have \"text\" or \"token_ids\"");
  }
  if (d.tokens.empty()) throw error("the input is empty");
  if (d.tokens.size() > m.model.max_positions())
    throw error(fmt::format("{} tokens; the model accepts at most {}", d.tokens.size(), m.model.max_positions()));
  d.target = word_or_id(j, "target");
  d.label = word_or_id(j, "label");
  return d;
}

}  // namespace

std::vector<data_line> read_data_lines(const std::string& file, const loaded_model& m) {
  std::ifstream in(file, std::ios::binary);
  if (!in) detail::fail("cannot read {}", file);
  std::vector<data_line> out;
  std::string text;
  for (std::size_t number = 1; std::getline(in, text); ++number) {
    if (text.find_first_not_of(" \t\r") == std::string::npos) continue;
    try {
      out.push_back(parse_line(text, m));
    } catch (const error& e) {
      out.push_back({});
      out.back().error = fmt::format("{} line {}: {}", file, number, e.what());
    }
    out.back().number = number;
  }
  if (out.empty()) detail::fail("{} holds no input lines", file);
  return out;
}

results_file::results_file(const std::string& file, bool resume, std::size_t total) : file_(file) {
  std::string kept;
  if (resume && std::filesystem::exists(file)) {
    std::ifstream in(file, std::ios::binary);
    std::stringstream all;
    all << in.rdbuf();
    const std::string text = all.str();
    const std::size_t end = text.rfind('\n');  // a line cut off by an interruption has no newline: dropped
    if (end != std::string::npos) kept = text.substr(0, end + 1);
    for (char c : kept) done_ += c == '\n' ? 1 : 0;
    if (done_ > total)
      detail::fail("--resume: {} holds {} result lines, but the data has only {} inputs", file, done_, total);
  }
  out_.open(file, std::ios::binary | std::ios::trunc);
  if (!out_) detail::fail("cannot write {}", file);
  out_ << kept;
  out_.flush();
  if (!out_) detail::fail("cannot write {}", file);
}

void results_file::append(const std::string& line) {
  out_ << line << '\n';
  out_.flush();
  if (!out_) detail::fail("cannot write {}", file_);
}

}  // namespace glassbox::cli

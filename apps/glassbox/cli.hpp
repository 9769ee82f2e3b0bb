// The glassbox command line: what every subcommand shares (finding and loading the model, reading
// the input tokens, writing outputs, the error convention).
//
// Conventions every subcommand keeps:
//   - a failure is one line on stderr, "glassbox: error: <what>", and exit status 1 (usage errors
//     that CLI11 detects keep CLI11's message and exit with status 2);
//   - --model M picks the model (a .safetensors file or a directory holding model.safetensors,
//     with config.json or __metadata__, and optionally a tokenizer: vocab.txt, or GPT-2's BPE as
//     vocab.json + merges.txt or tokenizer.json); without it the bundled model is used (see
//     find_default_model);
//   - the input is --text "..." (needs a tokenizer) or --tokens 1,2,3 (ids);
//   - --json FILE / --html FILE write machine- and human-readable outputs ("-" = stdout for JSON).
#pragma once

#include <CLI/CLI.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "glassbox/core/error.hpp"
#include "glassbox/core/progress.hpp"
#include "glassbox/core/result.hpp"
#include "glassbox/core/types.hpp"
#include "glassbox/io/bpe_tokenizer.hpp"
#include "glassbox/io/vocabulary.hpp"
#include "glassbox/models/gpt2.hpp"
#include "glassbox/report/json.hpp"

namespace glassbox::cli {

/// The name of the bundled model's directory under models/.
inline constexpr const char* bundled_model_name = "reviews";

/// The directories searched for the bundled model, in order: next to the executable
/// (<exe>/models/reviews), the install prefix (<exe>/../share/glassbox/models/reviews), the
/// source tree the program was built from.
std::vector<std::filesystem::path> default_model_candidates();

/// The first existing candidate of default_model_candidates(); glassbox::error listing them if none exists.
std::filesystem::path find_default_model();

/// Where token strings are shown: a terminal or JSON (a BPE space as "␣"), or an HTML page (as a space).
enum class token_style { terminal, html };

/// A loaded model with its tokenizer (a word vocabulary or GPT-2's BPE, or none) and where it came from.
struct loaded_model {
  models::gpt2 model;
  io::vocabulary vocabulary;     ///< vocab.txt beside the weights; empty if there is none
  std::filesystem::path path;    ///< the directory or file it was loaded from
  std::optional<io::bpe_tokenizer> bpe;  ///< GPT-2's BPE (vocab.json + merges.txt or tokenizer.json beside the weights)
  bool has_vocabulary() const { return !vocabulary.empty(); }
  /// Whether --text can be read: the model has a word vocabulary or a BPE tokenizer.
  bool has_tokenizer() const { return has_vocabulary() || bpe.has_value(); }
  /// The readable text of each token: the vocabulary's word; for BPE the decoded bytes with a space shown
  /// as "␣" (terminal and JSON) or as a no-break space (HTML, where a plain space would collapse) and a part
  /// of a multi-byte character as "<0xE2>" (io::readable_token); "#<id>" otherwise.
  std::vector<std::string> token_strings(token_span ids, token_style style = token_style::terminal) const;
  /// The readable text of one token, as token_strings writes it.
  std::string token_string(token_id id, token_style style = token_style::terminal) const {
    return token_strings(token_span(&id, 1), style)[0];
  }
};

/// The tokenizer files beside a model (`path` a directory or a file in one): BPE when vocab.json + merges.txt
/// or tokenizer.json are there, else vocab.txt, else neither; glassbox::error if a file is malformed.
struct text_tokenizer {
  io::vocabulary vocabulary;             ///< vocab.txt; empty if there is none (or BPE was found)
  std::optional<io::bpe_tokenizer> bpe;  ///< GPT-2's BPE, if its files are there
  /// Finds and loads the tokenizer files of the model directory `dir`.
  static text_tokenizer beside(const std::filesystem::path& dir);
};

/// Loads `path` (or the bundled model when empty) with the tokenizer beside it (text_tokenizer::beside);
/// the tokenizer must not hold ids beyond the model's vocab_size.
loaded_model load_model(const std::string& path);

/// The input options every explaining subcommand takes.
struct input_options {
  std::string text;    ///< --text
  std::string tokens;  ///< --tokens, comma-separated ids
  /// Adds --text and --tokens (exactly one required) to `command`.
  void add_to(CLI::App& command);
  /// The token ids of the input: --text through the BPE tokenizer, or through the word vocabulary (every
  /// word must be known), or --tokens checked against the vocabulary size; glassbox::error when empty or invalid.
  token_sequence resolve(const loaded_model& m) const;
};

/// Parses "1,2,3" (spaces allowed) into ids; glassbox::error naming the bad entry.
token_sequence parse_token_list(const std::string& list);

/// The items of a `separator`-separated list, each trimmed of spaces (an empty text gives one empty item).
std::vector<std::string_view> split_list(std::string_view text, char separator = ',');

/// A token named on the command line: a word of the vocabulary, a text that is one BPE token (" Paris",
/// "␣Paris" or "ĠParis"), or an id; glassbox::error naming `option`.
token_id resolve_token(const loaded_model& m, std::string_view what, std::string_view option);

/// The progress bar of every subcommand: stage, bar, done/total, rate and time left, on stderr when it
/// is a terminal; no callback otherwise.
progress_callback progress_bar();

/// The options a result records, as "name=value name=value" (the options echo of every subcommand).
std::string options_line(const std::vector<named_option>& options);

/// The options a result records, as a JSON object of name -> value.
report::json options_json(const std::vector<named_option>& options);

/// `x` as a JSON number, or null when it is NaN or infinite (JSON has no such numbers).
report::json number_or_null(double x);

/// `words` joined by single spaces.
std::string joined(const std::vector<std::string>& words);

/// Writes `text` to `file` ("-" = stdout); glassbox::error if the file cannot be written.
void write_text(const std::string& file, const std::string& text);

/// Writes `document` as indented JSON to `file` ("-" = stdout).
void write_json(const std::string& file, const report::json& document);

/// Fails before any work when `file` (given to `option`) cannot be written: its directory does not
/// exist, or it is a directory. Empty and "-" pass.
void check_output_path(const std::string& file, std::string_view option);

/// A subcommand's own options by long name (e.g. "--target"), to tell which the user gave.
class command_options {
 public:
  /// Records `o` under its long name; returns it, so that CLI11's calls can follow.
  CLI::Option* add(CLI::Option* o) {
    by_name_[o->get_name()] = o;
    return o;
  }
  /// Records every option `command` has so far (e.g. those an input_options added).
  void add_all(CLI::App& command) {
    for (auto* o : command.get_options()) add(o);
  }
  /// Whether the option with long name `name` was given on the command line.
  bool given(std::string_view name) const {
    const auto it = by_name_.find(name);
    return it != by_name_.end() && it->second->count() > 0;
  }

 private:
  std::map<std::string, CLI::Option*, std::less<>> by_name_;
};

/// A subcommand's runner, called after parsing when the subcommand was given.
using runner = std::function<void()>;

/// Each registers one subcommand on `app` and returns the function that runs it.
runner add_info_command(CLI::App& app);
runner add_predict_command(CLI::App& app);
runner add_generate_data_command(CLI::App& app);
runner add_train_command(CLI::App& app);
runner add_explain_command(CLI::App& app);
runner add_attention_command(CLI::App& app);
runner add_heads_command(CLI::App& app);
runner add_verify_command(CLI::App& app);
runner add_methods_command(CLI::App& app);
runner add_influence_command(CLI::App& app);
runner add_tokenize_command(CLI::App& app);

}  // namespace glassbox::cli

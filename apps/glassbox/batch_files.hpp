// glassbox: the data files of batch runs. Every subcommand that takes one input also takes
// `--data FILE.jsonl --out FILE.jsonl [--resume]` (docs/cli.md, "Data files"): the input lines are
// read here, and the results go to a file written one line per input, in input order, flushed line by
// line, so that an interrupted run keeps every finished line and --resume goes on after them.
#pragma once

#include <cstddef>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "cli.hpp"

namespace glassbox::cli {

/// One input line of a --data file: {"text": "..."} or {"token_ids": [...]} (generate-data writes
/// both; the ids are then used), with an optional "target" and "label" (a word or an id).
struct data_line {
  std::size_t number = 0;             ///< 1-based line number in the file
  token_sequence tokens;              ///< the input
  std::optional<std::string> target;  ///< the explained token, if the line names one
  std::optional<std::string> label;   ///< the example's label, if the line has one
  std::string error;                  ///< why the line is unusable; reported when the run reaches it

  /// Throws the line's error, if it has one.
  void check() const;
};

/// The non-empty lines of `file`, read against the model's vocabulary and size. A malformed line is
/// kept with its error (naming the file and the line number), so that a run stops only when it gets
/// there, after writing the results of the lines before it.
std::vector<data_line> read_data_lines(const std::string& file, const loaded_model& m);

/// The output of a batch run: one line per input, appended in input order and flushed.
class results_file {
 public:
  /// Opens `file` for `total` inputs: with `resume`, keeps its complete lines (dropping a line cut off by
  /// an interruption) and goes on after them; otherwise starts it empty.
  results_file(const std::string& file, bool resume, std::size_t total);
  /// Inputs already done (the complete lines kept by --resume).
  std::size_t done() const { return done_; }
  /// Appends one result line and flushes it.
  void append(const std::string& line);

 private:
  std::string file_;
  std::ofstream out_;
  std::size_t done_ = 0;
};

}  // namespace glassbox::cli

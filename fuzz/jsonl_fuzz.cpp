// Fuzzes the command line's input parsing: the --data JSON-lines reader (read_data_lines, with the
// bundled review model and its vocabulary), and, on each line of the input, the option parsers
// (integers, reals, flags, choices), the --tokens list and the token named by --target.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "../apps/glassbox/batch_files.hpp"
#include "../apps/glassbox/cli.hpp"
#include "../apps/glassbox/registry.hpp"
#include "fuzz_support.hpp"

namespace {

namespace cli = glassbox::cli;
using glassbox::fuzz::expect_glassbox_error_or_success;

void parse_option_text(const cli::loaded_model& m, std::string_view line) {
  expect_glassbox_error_or_success([&] { (void)cli::parse::integer<std::size_t>("steps", line); });
  expect_glassbox_error_or_success([&] { (void)cli::parse::integer<int>("seed", line); });
  expect_glassbox_error_or_success([&] { (void)cli::parse::integer<std::uint8_t>("bits", line); });
  expect_glassbox_error_or_success([&] { (void)cli::parse::real("damping", line); });
  expect_glassbox_error_or_success([&] { (void)cli::parse::flag("paired", line); });
  expect_glassbox_error_or_success([&] {
    (void)cli::parse::choice("aggregation", line, {"sum", "l2_norm", "mean-abs"});
  });
  expect_glassbox_error_or_success([&] { (void)cli::parse_token_list(std::string(line)); });
  expect_glassbox_error_or_success([&] { (void)cli::resolve_token(m, line, "--target"); });
  for (const auto item : cli::split_list(line)) (void)item;
  for (const auto item : cli::split_list(line, ';')) (void)item;
  expect_glassbox_error_or_success([&] {
    cli::input_options in;
    in.tokens = std::string(line);
    (void)in.resolve(m);
  });
  expect_glassbox_error_or_success([&] {
    cli::input_options in;
    in.text = std::string(line);
    (void)in.resolve(m);
  });
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const cli::loaded_model model = cli::load_model("");
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const auto file = glassbox::fuzz::write_scratch("data.jsonl", text);
  expect_glassbox_error_or_success([&] {
    for (const auto& line : cli::read_data_lines(file.string(), model)) {
      expect_glassbox_error_or_success([&] { line.check(); });
      if (line.error.empty()) {
        if (line.tokens.empty() || line.tokens.size() > model.model.max_positions()) std::abort();
        for (const auto id : line.tokens)
          if (id < 0 || static_cast<std::size_t>(id) >= model.model.vocab_size()) std::abort();
        if (line.target)
          expect_glassbox_error_or_success([&] { (void)cli::resolve_token(model, *line.target, "target"); });
      }
    }
  });
  for (std::size_t start = 0; start < text.size();) {
    const auto end = std::min(text.find('\n', start), text.size());
    parse_option_text(model, text.substr(start, end - start));
    start = end + 1;
  }
  return 0;
}

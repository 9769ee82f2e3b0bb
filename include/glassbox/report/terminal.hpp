// glassbox: terminal rendering of results (ANSI 24-bit colour, or plain text).
// Library code never prints: these functions return strings for apps to write.
//
// Its functions are templates with a defaulted parameter (`template <class = void>`), so that the JSON
// and formatting code they instantiate is compiled only where they are called (docs/building.md,
// "Include cost").
#pragma once

#include <fmt/format.h>

#include <algorithm>
#include <numeric>
#include <string>
#include <vector>

#include "glassbox/core/result.hpp"
#include "glassbox/report/color.hpp"
#include "glassbox/report/json.hpp"

namespace glassbox::report {

/// How a terminal view is drawn.
struct terminal_options {
  bool color = true;        ///< ANSI 24-bit backgrounds; false writes scores in brackets instead
  std::size_t top = 10;     ///< rows of the ranked table (0 = no table)
  std::size_t width = 100;  ///< wrap the heatmap line at this many columns
};

/// A one-paragraph heatmap of tokens coloured by score, then a table of the top tokens by |score|.
template <class = void>
inline std::string terminal_heatmap(const attribution_result& r, const std::vector<std::string>& tokens = {},
                                    const terminal_options& options = {}) {
  const auto words = detail::token_strings(r.token_ids, tokens);
  const double scale = max_abs(r.scores);
  std::string out = fmt::format("{} | {} | f(x) = {:.6g}", r.method, r.target.describe(), r.target_value);
  if (std::isfinite(r.baseline_value)) out += fmt::format(" | f(baseline) = {:.6g}", r.baseline_value);
  if (r.convergence_delta) out += fmt::format(" | delta = {:.3g}", *r.convergence_delta);
  out += fmt::format(" | {} evaluations\n", r.model_evaluations);
  std::size_t column = 0;
  for (std::size_t i = 0; i < words.size(); ++i) {
    std::string cell = options.color ? fmt::format(" {} ", words[i]) : fmt::format("{}[{:+.3g}] ", words[i], r.scores[i]);
    if (column > 0 && column + cell.size() > options.width) {
      out += '\n';
      column = 0;
    }
    column += cell.size();
    if (options.color) {
      const rgb c = diverging_color(r.scores[i], scale);
      const int fg = needs_light_text(c) ? 255 : 0;
      out += fmt::format("\x1b[48;2;{};{};{}m\x1b[38;2;{};{};{}m{}\x1b[0m", c.r, c.g, c.b, fg, fg, fg, cell);
    } else {
      out += cell;
    }
  }
  out += '\n';
  if (options.top > 0 && !r.scores.empty()) {
    std::vector<std::size_t> order(r.scores.size());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(),
                     [&](std::size_t a, std::size_t b) { return std::abs(r.scores[a]) > std::abs(r.scores[b]); });
    out += fmt::format("{:>5}  {:<20} {:>12}\n", "pos", "token", "score");
    for (std::size_t k = 0; k < std::min(options.top, order.size()); ++k)
      out += fmt::format("{:>5}  {:<20} {:>+12.5g}\n", order[k], words[order[k]], r.scores[order[k]]);
  }
  return out;
}

}  // namespace glassbox::report

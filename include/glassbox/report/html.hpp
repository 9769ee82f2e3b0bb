// glassbox: self-contained HTML views of results (inline CSS and SVG, no external assets).
//
// Its functions are templates with a defaulted parameter (`template <class = void>`), so that the JSON
// and formatting code they instantiate is compiled only where they are called (docs/building.md,
// "Include cost").
#pragma once

#include <fmt/format.h>

#include <string>
#include <string_view>
#include <vector>

#include "glassbox/core/result.hpp"
#include "glassbox/core/version.hpp"
#include "glassbox/detail/dependent.hpp"
#include "glassbox/report/color.hpp"
#include "glassbox/report/json.hpp"

namespace glassbox::report {

/// `text` with &, <, >, " and ' escaped for HTML text and attribute values.
template <class = void>
inline std::string html_escape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

/// A CSS colour "rgb(r,g,b)".
template <class = void>
inline std::string css_color(rgb c) { return fmt::format("rgb({},{},{})", c.r, c.g, c.b); }

/// The style sheet every glassbox page shares.
template <class = void>
inline std::string_view base_css() {
  return R"(body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2em auto;max-width:1100px;color:#222;padding:0 1em}
h1{font-size:1.4em;margin-bottom:.2em}h2{font-size:1.15em;margin-top:1.6em}
.meta{color:#555;font-size:.9em;margin-bottom:1em}.meta span{margin-right:1.2em}
.tokens{line-height:2.3em;font-size:1.05em}
.tok{position:relative;display:inline-block;padding:0 .35em;margin:0 .08em;border-radius:3px;border:1px solid #ddd;cursor:default;white-space:pre}
.tok .tip{visibility:hidden;position:absolute;bottom:115%;left:50%;transform:translateX(-50%);background:#222;color:#fff;padding:.2em .5em;border-radius:3px;font-size:.8em;white-space:nowrap;z-index:2}
.tok:hover .tip{visibility:visible}
table{border-collapse:collapse;font-size:.9em}td,th{padding:.2em .7em;border-bottom:1px solid #eee;text-align:right}th{background:#f6f6f6}
td.l,th.l{text-align:left}
.legend{display:inline-block;width:220px;height:12px;border:1px solid #ccc;vertical-align:middle;margin:0 .5em}
footer{margin-top:3em;color:#888;font-size:.8em})";
}

/// A complete HTML document with the shared style sheet, `extra_css`, and `body` (already HTML).
template <class = void>
inline std::string html_document(std::string_view title, std::string_view body, std::string_view extra_css = {}) {
  return fmt::format(
      "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" "
      "content=\"width=device-width, initial-scale=1\">\n<title>{}</title>\n<style>\n{}\n{}\n</style>\n</head>\n<body>\n{}"
      "\n<footer>made by glassbox {}</footer>\n</body>\n</html>\n",
      html_escape(title), base_css(), extra_css, body, glassbox::version);
}

/// The HTML fragment of a diverging colour legend from -scale to +scale.
template <class = void>
inline std::string diverging_legend(double scale) {
  return fmt::format(
      "<div class=\"meta\">{:+.3g}<span class=\"legend\" style=\"background:linear-gradient(to right,{},#fff,{})\">"
      "</span>{:+.3g}</div>",
      -scale, css_color(diverging_color(-1, 1)), css_color(diverging_color(1, 1)), scale);
}

/// The HTML fragment of an attribution: header, token heatmap with hover values, legend and score table.
template <class T = void>
inline std::string attribution_fragment(const attribution_result& r, const std::vector<std::string>& tokens = {}) {
  using json_type = glassbox::detail::dependent_t<T, json>;  // compiled where this is called (see dependent_t)
  const auto words = detail::token_strings(r.token_ids, tokens);
  const double scale = max_abs(r.scores);
  std::string body = fmt::format("<h1>{}</h1>\n<div class=\"meta\"><span>target: {}</span><span>f(x) = {:.6g}</span>",
                                 html_escape(r.method), html_escape(r.target.describe()), r.target_value);
  if (std::isfinite(r.baseline_value)) body += fmt::format("<span>f(baseline) = {:.6g}</span>", r.baseline_value);
  if (r.convergence_delta) body += fmt::format("<span>convergence delta = {:.3g}</span>", *r.convergence_delta);
  body += fmt::format("<span>{} model evaluations</span></div>\n<div class=\"tokens\">", r.model_evaluations);
  for (std::size_t i = 0; i < words.size(); ++i) {
    const rgb c = diverging_color(r.scores[i], scale);
    body += fmt::format(
        "<span class=\"tok\" style=\"background:{};color:{}\" data-score=\"{:.6g}\">{}<span class=\"tip\">#{} "
        "{:+.5g}</span></span>",
        css_color(c), needs_light_text(c) ? "#fff" : "#000", r.scores[i], html_escape(words[i]), i, r.scores[i]);
  }
  body += "</div>\n" + diverging_legend(scale);
  body += "<h2>Scores</h2>\n<table><tr><th>#</th><th class=\"l\">token</th><th>id</th><th>score</th>";
  const bool se = r.standard_errors.size() == r.scores.size();
  if (se) body += "<th>std. error</th>";
  body += "</tr>\n";
  for (std::size_t i = 0; i < words.size(); ++i) {
    body += fmt::format("<tr><td>{}</td><td class=\"l\">{}</td><td>{}</td><td>{:+.6g}</td>", i, html_escape(words[i]),
                        r.token_ids[i], r.scores[i]);
    if (se) body += fmt::format("<td>{:.3g}</td>", r.standard_errors[i]);
    body += "</tr>\n";
  }
  body += "</table>\n<h2>Options</h2>\n<table>";
  for (const auto& o : r.options)
    body += fmt::format("<tr><td class=\"l\">{}</td><td class=\"l\">{}</td></tr>", html_escape(o.name),
                        html_escape(detail::option_json<json_type>(o.value).dump()));
  body += "</table>\n";
  return body;
}

/// A self-contained HTML page of an attribution.
template <class = void>
inline std::string attribution_html(const attribution_result& r, const std::vector<std::string>& tokens = {}) {
  return html_document(fmt::format("glassbox: {}", r.method), attribution_fragment(r, tokens));
}

}  // namespace glassbox::report

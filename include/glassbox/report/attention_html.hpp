// glassbox: self-contained HTML views of the attention module (inline CSS, SVG and a little
// inline JavaScript; no external assets).
//
//   attention_html(raw, relevance, tokens)   one input: the layer x head grid of attention maps,
//                                            the head view (lines from each token to the tokens
//                                            it attends to, layer and head selectable), and the
//                                            method's matrix (rollout, flow, AttGrad, Chefer, or
//                                            the selected raw map) as a heatmap with token labels
//   heads_html(report)                       a data set: head statistics, importance, ablation,
//                                            head redundancy and the pruning curve
//
// Long inputs stay usable, and the page grows about linearly with T, not with T^2:
//   - a heatmap has at most `max_bins` (default 128) bins per axis; a longer axis is pooled into
//     blocks of ceil(T / max_bins) positions, a bin's value being the mean over its rows of the
//     sum over its columns, so a pooled row of an attention map still sums to one;
//   - the grid thumbnails have at most `grid_bins` bins per axis (fewer when there are many
//     heads, so that the grid holds at most `grid_cells` cells in all);
//   - a small map (at most `title_cells` cells) has one <rect> per cell with its value on hover; a
//     larger one is quantised to 40 colour levels and drawn as one <path> per level (runs of equal
//     cells in a row merged, white cells left out), so its DOM has at most 80 nodes;
//   - the head view draws, per query, only its `head_view_top` strongest keys with weight >=
//     `head_view_min_weight`, from data embedded once in the page.
//
// Its functions are templates with a defaulted parameter (`template <class = void>`), so that the JSON
// and formatting code they instantiate is compiled only where they are called (docs/building.md,
// "Include cost").
#pragma once

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <functional>
#include <map>
#include <numeric>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "glassbox/attention/result.hpp"
#include "glassbox/core/error.hpp"
#include "glassbox/detail/dependent.hpp"
#include "glassbox/report/attention_json.hpp"
#include "glassbox/report/color.hpp"
#include "glassbox/report/html.hpp"

namespace glassbox::report {

/// How the attention views are drawn (and downsampled for long inputs).
struct attention_view_options {
  std::size_t max_bins = 128;          ///< most bins per axis of a full-size heatmap
  std::size_t grid_bins = 32;          ///< most bins per axis of a grid thumbnail
  std::size_t grid_cells = 40000;      ///< most cells of all grid thumbnails together
  std::size_t head_view_top = 0;       ///< keys drawn per query in the head view; 0 = 5 for T <= 64, else 3
  double head_view_min_weight = 0.02;  ///< weakest attention drawn in the head view
  std::size_t title_cells = 1600;      ///< hover titles on a heatmap only when it has at most this many cells
  std::optional<std::size_t> layer;    ///< the head view's initial layer (default the last)
  std::optional<std::size_t> head;     ///< the head view's initial head (default the heads combined)
};

namespace detail {

/// A matrix pooled into at most max_bins x max_bins blocks.
struct pooled_matrix {
  std::size_t rows = 0, cols = 0;            ///< bins
  std::size_t row_block = 1, col_block = 1;  ///< positions per bin
  std::size_t source_rows = 0, source_cols = 0;
  std::vector<double> values;  ///< rows x cols, row-major
  double at(std::size_t i, std::size_t j) const { return values[i * cols + j]; }
};

/// Pools value(i, j) over [rows, cols]: bins of ceil(n / max_bins) positions; a bin is the mean
/// over its rows of the sum over its columns (no pooling when n <= max_bins).
template <class = void>
inline pooled_matrix pool(std::size_t rows, std::size_t cols,
                          const std::function<double(std::size_t, std::size_t)>& value, std::size_t max_bins) {
  pooled_matrix p;
  p.source_rows = rows;
  p.source_cols = cols;
  max_bins = std::max<std::size_t>(max_bins, 1);
  p.row_block = (rows + max_bins - 1) / max_bins;
  p.col_block = (cols + max_bins - 1) / max_bins;
  p.row_block = std::max<std::size_t>(p.row_block, 1);
  p.col_block = std::max<std::size_t>(p.col_block, 1);
  p.rows = (rows + p.row_block - 1) / p.row_block;
  p.cols = (cols + p.col_block - 1) / p.col_block;
  p.values.assign(p.rows * p.cols, 0.0);
  for (std::size_t i = 0; i < rows; ++i)
    for (std::size_t j = 0; j < cols; ++j) {
      const double v = value(i, j);
      if (std::isfinite(v)) p.values[(i / p.row_block) * p.cols + j / p.col_block] += v;
    }
  for (std::size_t bi = 0; bi < p.rows; ++bi) {
    const std::size_t n = std::min(rows, (bi + 1) * p.row_block) - bi * p.row_block;
    for (std::size_t bj = 0; bj < p.cols; ++bj) p.values[bi * p.cols + bj] /= static_cast<double>(n);
  }
  return p;
}

/// The label of bin b of an axis pooled in blocks of `block` positions: the token, or "#a-b".
template <class = void>
inline std::string bin_label(const std::vector<std::string>& labels, std::size_t b, std::size_t block,
                             std::size_t count) {
  if (block == 1) return b < labels.size() ? labels[b] : std::to_string(b);
  return fmt::format("#{}-{}", b * block, std::min(count, (b + 1) * block) - 1);
}

/// Colour levels of a large heatmap (each sign, for diverging maps).
inline constexpr std::size_t heatmap_levels = 40;

/// A colour as "#rrggbb".
template <class = void>
inline std::string hex(rgb c) { return fmt::format("#{:02x}{:02x}{:02x}", c.r, c.g, c.b); }

/// How one heatmap is drawn.
struct heatmap_style {
  bool diverging = false;          ///< red-white-green around 0 (signed data); else white-to-blue from 0
  double scale = 0;                ///< the value of full colour; 0 = the largest |value| shown
  double max_px = 560;             ///< the plot's longer side in pixels (cells are 3 to 24 px)
  bool labels = true;              ///< token labels on both axes
  bool numbers = false;            ///< print each value in its cell (small matrices)
  std::size_t title_cells = 1600;  ///< hover titles when rows * cols <= this
  std::string css_class;           ///< class of the <svg>
  std::string attributes;          ///< extra attributes of the <svg>
};

/// A heatmap of a pooled matrix as one <svg>: one <rect> per non-white bin, axis labels.
template <class = void>
inline std::string svg_heatmap(const pooled_matrix& p, const std::vector<std::string>& row_labels,
                               const std::vector<std::string>& col_labels, const heatmap_style& style) {
  double scale = style.scale;
  if (!(scale > 0))
    for (double v : p.values)
      if (std::isfinite(v)) scale = std::max(scale, std::abs(v));
  const std::size_t longest = std::max<std::size_t>({p.rows, p.cols, 1});
  const double cell = std::clamp(std::floor(style.max_px / static_cast<double>(longest)), 3.0, 24.0);
  const double font = std::min(12.0, std::max(cell * 0.8, 7.0));
  const std::size_t label_every = style.labels ? static_cast<std::size_t>(std::ceil(font / cell)) : 0;
  std::size_t longest_label = 0;
  if (style.labels) {
    for (std::size_t i = 0; i < p.rows; ++i)
      longest_label = std::max(longest_label, bin_label(row_labels, i, p.row_block, p.source_rows).size());
    for (std::size_t j = 0; j < p.cols; ++j)
      longest_label = std::max(longest_label, bin_label(col_labels, j, p.col_block, p.source_cols).size());
  }
  const double margin = style.labels ? std::min(140.0, 6.0 + font * 0.62 * static_cast<double>(longest_label)) : 1.0;
  const double w = margin + cell * static_cast<double>(p.cols) + 2, h = margin + cell * static_cast<double>(p.rows) + 2;
  std::string s = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"{}\" width=\"{:.0f}\" height=\"{:.0f}\" viewBox=\"0 0 {:.0f} "
      "{:.0f}\" font-size=\"{:.1f}\"{}>",
      style.css_class, w, h, w, h, font, style.attributes.empty() ? "" : " " + style.attributes);
  s += fmt::format("<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" fill=\"#fff\" stroke=\"#ccc\"/>",
                   margin - 0.5, margin - 0.5, cell * static_cast<double>(p.cols) + 1,
                   cell * static_cast<double>(p.rows) + 1);
  if (style.labels) {
    for (std::size_t i = 0; i < p.rows; i += label_every)
      s += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"end\" dominant-baseline=\"central\">{}</text>",
                       margin - 3, margin + cell * (static_cast<double>(i) + 0.5),
                       html_escape(bin_label(row_labels, i, p.row_block, p.source_rows)));
    for (std::size_t j = 0; j < p.cols; j += label_every) {
      const double x = margin + cell * (static_cast<double>(j) + 0.5), y = margin - 3;
      s += fmt::format(
          "<text x=\"{:.1f}\" y=\"{:.1f}\" transform=\"rotate(-90 {:.1f} {:.1f})\" dominant-baseline=\"central\">{}"
          "</text>",
          x, y, x, y, html_escape(bin_label(col_labels, j, p.col_block, p.source_cols)));
    }
  }
  const bool titles = p.rows * p.cols <= style.title_cells;
  s += fmt::format("<g transform=\"translate({:.1f} {:.1f}) scale({:.3f})\">", margin, margin, cell);
  if (titles) {
    // Small maps: one <rect> per cell, with its value on hover.
    for (std::size_t i = 0; i < p.rows; ++i)
      for (std::size_t j = 0; j < p.cols; ++j) {
        const double v = p.at(i, j);
        const rgb c = style.diverging ? diverging_color(v, scale) : sequential_color(scale > 0 ? v / scale : 0.0);
        const bool white = c.r == 255 && c.g == 255 && c.b == 255;
        s += fmt::format(
            "<rect x=\"{}\" y=\"{}\" width=\"1\" height=\"1\" fill=\"{}\"><title>{} \u2192 {}: {:.4g}</title></rect>",
            j, i, white ? "none" : hex(c), html_escape(bin_label(row_labels, i, p.row_block, p.source_rows)),
            html_escape(bin_label(col_labels, j, p.col_block, p.source_cols)), v);
      }
  } else {
    // Large maps: values quantised to heatmap_levels colour levels, one <path> per level whose
    // runs of equal cells are drawn as one rectangle each; white cells are not drawn.
    const auto levels = static_cast<double>(heatmap_levels);
    std::map<long, std::string> paths;
    for (std::size_t i = 0; i < p.rows; ++i) {
      std::size_t j = 0;
      while (j < p.cols) {
        const double v = scale > 0 ? p.at(i, j) / scale : 0.0;
        const long level =
            std::isfinite(v) ? std::lround(std::clamp(v, style.diverging ? -1.0 : 0.0, 1.0) * levels) : 0;
        std::size_t run = 1;
        while (j + run < p.cols) {
          const double w = scale > 0 ? p.at(i, j + run) / scale : 0.0;
          const long next =
              std::isfinite(w) ? std::lround(std::clamp(w, style.diverging ? -1.0 : 0.0, 1.0) * levels) : 0;
          if (next != level) break;
          ++run;
        }
        if (level != 0) paths[level] += fmt::format("M{} {}h{}v1h-{}z", j, i, run, run);
        j += run;
      }
    }
    for (const auto& [level, d] : paths) {
      const double v = static_cast<double>(level) / levels;
      const rgb c = style.diverging ? diverging_color(v, 1.0) : sequential_color(v);
      s += fmt::format("<path fill=\"{}\" d=\"{}\"/>", hex(c), d);
    }
  }
  s += "</g>";
  if (style.numbers) {
    for (std::size_t i = 0; i < p.rows; ++i)
      for (std::size_t j = 0; j < p.cols; ++j) {
        const double v = p.at(i, j);
        const rgb c = style.diverging ? diverging_color(v, scale) : sequential_color(scale > 0 ? v / scale : 0.0);
        s += fmt::format(
            "<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\" dominant-baseline=\"central\" font-size=\"{:.1f}\" "
            "fill=\"{}\">{:.2f}</text>",
            margin + cell * (static_cast<double>(j) + 0.5), margin + cell * (static_cast<double>(i) + 0.5),
            std::min(11.0, cell * 0.36), needs_light_text(c) ? "#fff" : "#000", v);
      }
  }
  s += "</svg>";
  return s;
}

/// A heatmap of an [L, H] matrix, rows labelled "layer l", columns "head h", values printed.
template <class = void>
inline std::string svg_head_matrix(const tensor2& m, bool diverging, double max_px = 420) {
  const std::size_t layers = m.shape(0), heads = m.shape(1);
  std::vector<std::string> rl, cl;
  for (std::size_t l = 0; l < layers; ++l) rl.push_back(fmt::format("L{}", l));
  for (std::size_t h = 0; h < heads; ++h) cl.push_back(fmt::format("H{}", h));
  const auto p = pool(
      layers, heads, [&](std::size_t i, std::size_t j) { return static_cast<double>(m(i, j)); },
      std::max(layers, heads));
  heatmap_style st;
  st.diverging = diverging;
  st.max_px = std::max(max_px, 30.0 * static_cast<double>(std::max(layers, heads)));
  st.max_px = std::min(st.max_px, 42.0 * static_cast<double>(std::max(layers, heads)));
  st.numbers = std::max(layers, heads) <= 16;
  st.css_class = "hm";
  return svg_heatmap(p, rl, cl, st);
}

/// The strongest keys of every query of one [T, T] map: [[query, key, weight], ...].
template <class Json = json>
inline Json head_view_edges(std::size_t t, const std::function<double(std::size_t, std::size_t)>& a, std::size_t top,
                            double min_weight) {
  Json edges = Json::array();
  std::vector<std::size_t> order(t);
  for (std::size_t i = 0; i < t; ++i) {
    std::iota(order.begin(), order.end(), std::size_t{0});
    const std::size_t k = std::min(top, t);
    std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(k), order.end(),
                      [&](std::size_t x, std::size_t y) { return a(i, x) > a(i, y) || (a(i, x) == a(i, y) && x < y); });
    for (std::size_t q = 0; q < k; ++q) {
      const double w = a(i, order[q]);
      if (!(w >= min_weight)) break;
      edges.push_back({i, order[q], std::round(w * 1000.0) / 1000.0});
    }
  }
  return edges;
}

/// `text` made safe inside a <script> element (no "</" sequence).
template <class = void>
inline std::string script_safe(std::string text) {
  for (std::size_t k = text.find("</"); k != std::string::npos; k = text.find("</", k + 2)) text.replace(k, 2, "<\\/");
  return text;
}

template <class = void>
inline std::string_view attention_css() {
  return R"(.grid{border-collapse:collapse}.grid td,.grid th{padding:2px;border:none;text-align:center;vertical-align:middle}
.grid svg.thumb{cursor:pointer;border:2px solid transparent}.grid svg.thumb.sel{border-color:#e6550d}
.hv-controls{margin:.5em 0}.hv-controls select{margin:0 1em 0 .3em}
#hv text{font-size:12px;cursor:default}#hv text.on{font-weight:bold;fill:#e6550d}
svg.hm text{fill:#333}.note{color:#555;font-size:.85em;max-width:60em}
.scroll{overflow:auto;max-height:760px;border:1px solid #eee;display:inline-block;max-width:100%})";
}

/// The head view's script: draws the embedded edges of the chosen layer and head as lines.
template <class = void>
inline std::string_view head_view_script() {
  return R"JS((function(){
var D=JSON.parse(document.getElementById('hv-data').textContent);
var svg=document.getElementById('hv'),ls=document.getElementById('hv-layer'),hs=document.getElementById('hv-head');
var NS='http://www.w3.org/2000/svg',T=D.tokens.length,row=18,top=20,xl=150,xr=390;
function el(n,a){var e=document.createElementNS(NS,n);for(var k in a)e.setAttribute(k,a[k]);return e;}
function draw(){
  var l=+ls.value,h=+hs.value,E=D.edges[l][h];while(svg.firstChild)svg.removeChild(svg.firstChild);
  svg.setAttribute('height',top+row*T+10);
  var lines=el('g',{}),labels=el('g',{});svg.appendChild(lines);svg.appendChild(labels);
  var byq=[];for(var i=0;i<T;i++)byq.push([]);
  E.forEach(function(e){var ln=el('line',{x1:xl+4,y1:top+row*e[0]+row/2,x2:xr-4,y2:top+row*e[1]+row/2,
    stroke:'#08519c','stroke-width':1+3*e[2],'stroke-opacity':Math.max(0.08,e[2])});
    var t=el('title',{});t.textContent=D.tokens[e[0]]+' \u2192 '+D.tokens[e[1]]+': '+e[2];ln.appendChild(t);
    lines.appendChild(ln);byq[e[0]].push(ln);});
  function focus(q){lines.childNodes.forEach(function(n){n.style.display=q<0?'':'none';});
    if(q>=0)byq[q].forEach(function(n){n.style.display='';});}
  for(var i=0;i<T;i++){(function(i){
    var a=el('text',{x:xl,y:top+row*i+row/2,'text-anchor':'end','dominant-baseline':'central'});a.textContent=D.tokens[i];
    var b=el('text',{x:xr,y:top+row*i+row/2,'dominant-baseline':'central'});b.textContent=D.tokens[i];
    a.addEventListener('mouseenter',function(){a.classList.add('on');focus(i);});
    a.addEventListener('mouseleave',function(){a.classList.remove('on');focus(-1);});
    labels.appendChild(a);labels.appendChild(b);})(i);}
  var c1=el('text',{x:xl,y:10,'text-anchor':'end'});c1.textContent='query';labels.appendChild(c1);
  var c2=el('text',{x:xr,y:10});c2.textContent='attends to';labels.appendChild(c2);
  document.querySelectorAll('svg.thumb').forEach(function(s){
    s.classList.toggle('sel',+s.getAttribute('data-l')===l&&+s.getAttribute('data-h')===h);});
}
ls.addEventListener('change',draw);hs.addEventListener('change',draw);
document.querySelectorAll('svg.thumb').forEach(function(s){s.addEventListener('click',function(){
  ls.value=s.getAttribute('data-l');hs.value=s.getAttribute('data-h');draw();
  document.getElementById('head-view').scrollIntoView();});});
draw();})();)JS";
}

template <class = void>
inline std::string meta_span(std::string_view text) { return fmt::format("<span>{}</span>", html_escape(text)); }

}  // namespace detail

/// The HTML fragment of the layer x head grid (every head's map and each layer's heads combined,
/// as thumbnails that select the head view) and the head view of a raw attention result.
template <class T = void>
inline std::string attention_maps_fragment(const attention_maps_result& r, const std::vector<std::string>& tokens,
                                           const attention_view_options& o = {}) {
  using json_type = glassbox::detail::dependent_t<T, json>;  // compiled where this is called (see dependent_t)
  const std::size_t layers = r.attentions.shape(0), heads = r.attentions.shape(1), t = r.attentions.shape(2);
  std::vector<std::string> labels = tokens;
  if (labels.empty())
    for (std::size_t i = 0; i < t; ++i)
      labels.push_back(i < r.token_ids.size() ? std::to_string(r.token_ids[i]) : std::to_string(i));
  glassbox::detail::require<shape_error>(labels.size() == t, "glassbox::report: {} token strings for {} tokens",
                                         labels.size(), t);
  const attention_selection sel{o.layer, o.head};
  const std::size_t initial_layer = selected_layer(r, sel);
  // Thumbnails: at most grid_bins per axis, and at most grid_cells cells over the whole grid.
  const std::size_t maps = layers * (heads + 1);
  std::size_t bins = std::max<std::size_t>(1, o.grid_bins);
  while (bins > 4 && maps * bins * bins > o.grid_cells) --bins;
  std::string s = "<h2>Attention of every layer and head</h2>\n";
  s += fmt::format(
      "<p class=\"note\">Rows are query positions, columns the keys they attend to (white 0, blue 1). Click a map "
      "to show it in the head view below.{}</p>\n",
      t > bins ? fmt::format(" Each thumbnail pools the {} positions into {} bins per axis (mean over the queries "
                             "of a bin of the attention summed over its keys).",
                             t, (t + (t + bins - 1) / bins - 1) / ((t + bins - 1) / bins))
               : std::string());
  s += "<div class=\"scroll\"><table class=\"grid\"><tr><th></th>";
  for (std::size_t h = 0; h < heads; ++h) s += fmt::format("<th>head {}</th>", h);
  s += fmt::format("<th>{} of heads</th></tr>\n", to_string(r.aggregation));
  const double thumb_px = std::clamp(720.0 / static_cast<double>(heads + 1), 48.0, 150.0);
  for (std::size_t l = 0; l < layers; ++l) {
    s += fmt::format("<tr><th>layer {}</th>", l);
    for (std::size_t h = 0; h <= heads; ++h) {
      const auto p = detail::pool(
          t, t,
          [&](std::size_t i, std::size_t j) {
            return h < heads ? static_cast<double>(r.attentions(l, h, i, j))
                             : static_cast<double>(r.aggregated(l, i, j));
          },
          bins);
      detail::heatmap_style st;
      st.scale = 1.0;
      st.labels = false;
      st.max_px = thumb_px;
      st.title_cells = 0;
      st.css_class = "thumb";
      st.attributes = fmt::format("data-l=\"{}\" data-h=\"{}\"", l, h);
      s += "<td>" + detail::svg_heatmap(p, {}, {}, st) + "</td>";
    }
    s += "</tr>\n";
  }
  s += "</table></div>\n";
  // Head view: edges embedded once, drawn by the script for the chosen layer and head.
  const std::size_t top = o.head_view_top > 0 ? o.head_view_top : (t <= 64 ? 5 : 3);
  json_type data{{"tokens", labels}, {"edges", json_type::array()}};
  for (std::size_t l = 0; l < layers; ++l) {
    json_type per_layer = json_type::array();
    for (std::size_t h = 0; h <= heads; ++h)
      per_layer.push_back(detail::head_view_edges<json_type>(
          t,
          [&](std::size_t i, std::size_t j) {
            return h < heads ? static_cast<double>(r.attentions(l, h, i, j))
                             : static_cast<double>(r.aggregated(l, i, j));
          },
          top, o.head_view_min_weight));
    data["edges"].push_back(std::move(per_layer));
  }
  s += "<h2 id=\"head-view\">Head view</h2>\n";
  s += fmt::format(
      "<p class=\"note\">A line joins each query token (left) to each of its {} strongest keys (right) with weight at "
      "least {}; thickness and opacity follow the weight. Hover a query token to see only its lines.</p>\n",
      top, o.head_view_min_weight);
  s += "<div class=\"hv-controls\">layer<select id=\"hv-layer\">";
  for (std::size_t l = 0; l < layers; ++l)
    s += fmt::format("<option value=\"{}\"{}>{}</option>", l, l == initial_layer ? " selected" : "", l);
  s += "</select>head<select id=\"hv-head\">";
  for (std::size_t h = 0; h < heads; ++h)
    s += fmt::format("<option value=\"{}\"{}>{}</option>", h, o.head && *o.head == h ? " selected" : "", h);
  s += fmt::format("<option value=\"{}\"{}>{} of heads</option>", heads, o.head ? "" : " selected",
                   to_string(r.aggregation));
  s += "</select></div>\n<noscript><p class=\"note\">The head view needs JavaScript.</p></noscript>\n";
  s += "<svg id=\"hv\" xmlns=\"http://www.w3.org/2000/svg\" width=\"560\" height=\"40\"></svg>\n";
  s += "<script type=\"application/json\" id=\"hv-data\">" + detail::script_safe(data.dump()) + "</script>\n";
  s += "<script>" + std::string(detail::head_view_script()) + "</script>\n";
  return s;
}

/// The HTML fragment of a token-to-token matrix (rollout, flow, AttGrad, Chefer): the explained
/// position's row on the tokens, the matrix as a heatmap with token labels, and the options.
template <class T = void>
inline std::string attention_relevance_fragment(const attention_relevance_result& r,
                                                const std::vector<std::string>& tokens,
                                                const attention_view_options& o = {}) {
  using json_type = glassbox::detail::dependent_t<T, json>;  // compiled where this is called (see dependent_t)
  const std::size_t t = r.matrix.shape(1), rows = r.matrix.shape(0);
  std::vector<std::string> words = tokens;
  if (words.empty())
    for (std::size_t i = 0; i < t; ++i)
      words.push_back(i < r.token_ids.size() ? std::to_string(r.token_ids[i]) : std::to_string(i));
  glassbox::detail::require<shape_error>(words.size() == t, "glassbox::report: {} token strings for {} tokens",
                                         words.size(), t);
  bool signed_values = false;
  for (std::size_t k = 0; k < r.matrix.size(); ++k) signed_values = signed_values || r.matrix.data()[k] < 0;
  for (double v : r.scores) signed_values = signed_values || v < 0;
  std::string s = fmt::format("<h2>{}</h2>\n<div class=\"meta\">", html_escape(r.method));
  s += detail::meta_span(fmt::format("levels {} to {}", r.first_layer, r.last_layer));
  s += detail::meta_span(
      fmt::format("explained position {} ({})", r.position, r.position < t ? words[r.position] : "?"));
  if (r.target) s += detail::meta_span(fmt::format("target: {}", r.target->describe()));
  if (std::isfinite(r.target_value)) s += detail::meta_span(fmt::format("f(x) = {:.6g}", r.target_value));
  s += detail::meta_span(fmt::format("{} model evaluations", r.model_evaluations));
  s += "</div>\n";
  // Scores on the tokens.
  const double scale = max_abs(r.scores);
  s += fmt::format(
      "<p class=\"note\">Row of position {}: how much it draws on each input token.</p>\n"
      "<div class=\"tokens\">",
      r.position);
  for (std::size_t i = 0; i < r.scores.size() && i < t; ++i) {
    const rgb c =
        signed_values ? diverging_color(r.scores[i], scale) : sequential_color(scale > 0 ? r.scores[i] / scale : 0.0);
    s += fmt::format(
        "<span class=\"tok\" style=\"background:{};color:{}\">{}<span class=\"tip\">#{} {:.4g}</span></span>",
        css_color(c), needs_light_text(c) ? "#fff" : "#000", html_escape(words[i]), i, r.scores[i]);
  }
  s += "</div>\n";
  s += signed_values ? diverging_legend(scale)
                     : fmt::format(
                           "<div class=\"meta\">0<span class=\"legend\" style=\"background:linear-gradient(to "
                           "right,#fff,{})\"></span>{:.3g}</div>",
                           css_color(sequential_color(1)), scale);
  // The matrix.
  std::vector<std::string> row_labels;
  for (std::size_t p : r.row_positions) row_labels.push_back(p < t ? words[p] : std::to_string(p));
  const auto pooled = detail::pool(
      rows, t, [&](std::size_t i, std::size_t j) { return static_cast<double>(r.matrix(i, j)); }, o.max_bins);
  detail::heatmap_style st;
  st.diverging = signed_values;
  st.title_cells = o.title_cells;
  st.css_class = "hm";
  s += fmt::format(
      "<h2>Matrix</h2>\n<p class=\"note\">Rows: {} positions at level {}; columns: the {} tokens at level "
      "{}.{}</p>\n",
      rows, r.last_layer, t, r.first_layer,
      pooled.row_block > 1 || pooled.col_block > 1
          ? fmt::format(" Pooled into {} x {} bins of {} x {} positions (mean over a bin's rows of the "
                        "sum over its columns).",
                        pooled.rows, pooled.cols, pooled.row_block, pooled.col_block)
          : std::string());
  s += "<div class=\"scroll\">" + detail::svg_heatmap(pooled, row_labels, words, st) + "</div>\n";
  // Top tokens of the explained row.
  std::vector<std::size_t> order(std::min(r.scores.size(), t));
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t a, std::size_t b) { return std::abs(r.scores[a]) > std::abs(r.scores[b]); });
  s += "<h2>Top tokens</h2>\n<table><tr><th>#</th><th class=\"l\">token</th><th>score</th></tr>\n";
  for (std::size_t k = 0; k < std::min<std::size_t>(order.size(), 15); ++k)
    s += fmt::format("<tr><td>{}</td><td class=\"l\">{}</td><td>{:.5g}</td></tr>\n", order[k],
                     html_escape(words[order[k]]), r.scores[order[k]]);
  s += "</table>\n<h2>Options</h2>\n<table>";
  for (const auto& x : r.options)
    s += fmt::format("<tr><td class=\"l\">{}</td><td class=\"l\">{}</td></tr>", html_escape(x.name),
                     html_escape(detail::option_json<json_type>(x.value).dump()));
  for (const auto& x : r.diagnostics)
    s += fmt::format("<tr><td class=\"l\">{}</td><td class=\"l\">{}</td></tr>", html_escape(x.name),
                     html_escape(detail::option_json<json_type>(x.value).dump()));
  s += "</table>\n";
  return s;
}

/// A self-contained page for one input: the method's matrix (when `relevance` is given, else the
/// selected raw map), the layer x head grid and the head view of the raw attention.
template <class = void>
inline std::string attention_html(const attention_maps_result& raw, const attention_relevance_result* relevance,
                                  const std::vector<std::string>& tokens, const attention_view_options& o = {}) {
  const std::size_t t = raw.attentions.shape(2);
  std::string text;
  for (std::size_t i = 0; i < tokens.size(); ++i) text += (i ? " " : "") + tokens[i];
  std::string body = fmt::format("<h1>glassbox attention: {}</h1>\n<div class=\"meta\">",
                                 html_escape(relevance ? relevance->method : raw.method));
  body += detail::meta_span(fmt::format("{} tokens", t));
  body += detail::meta_span(fmt::format("{} layers x {} heads", raw.attentions.shape(0), raw.attentions.shape(1)));
  body += "</div>\n";
  if (!text.empty()) body += fmt::format("<p class=\"note\">{}</p>\n", html_escape(text));
  if (relevance) {
    body += attention_relevance_fragment(*relevance, tokens, o);
  } else {
    // The selected raw map, as a relevance matrix of its own.
    const attention_selection sel{o.layer, o.head};
    attention_relevance_result m;
    const std::size_t l = selected_layer(raw, sel);
    m.method = o.head ? fmt::format("raw attention, layer {} head {}", l, *o.head)
                      : fmt::format("raw attention, layer {} ({} of heads)", l, to_string(raw.aggregation));
    m.token_ids = raw.token_ids;
    m.first_layer = l;
    m.last_layer = l + 1;
    m.matrix = selected_map(raw, sel);
    m.row_positions.resize(t);
    std::iota(m.row_positions.begin(), m.row_positions.end(), std::size_t{0});
    m.position = t - 1;
    for (std::size_t j = 0; j < t; ++j) m.scores.push_back(m.matrix(t - 1, j));
    m.model_evaluations = raw.model_evaluations;
    m.options = raw.options;
    body += attention_relevance_fragment(m, tokens, o);
  }
  body += attention_maps_fragment(raw, tokens, o);
  return html_document(fmt::format("glassbox attention: {}", relevance ? relevance->method : raw.method), body,
                       detail::attention_css());
}

namespace detail {

/// The pruning curve as an SVG line chart: accuracy (and mean target, right axis) against heads masked.
template <class = void>
inline std::string svg_pruning_curve(const pruning_curve_result& c) {
  const double w = 620, h = 300, left = 56, right = 64, top = 16, bottom = 44;
  const double pw = w - left - right, ph = h - top - bottom;
  const std::size_t n = c.heads_masked.size();
  const double xmax = std::max<double>(1.0, n ? static_cast<double>(c.heads_masked.back()) : 1.0);
  double tmin = 0, tmax = 0;
  bool first = true;
  for (double v : c.mean_target)
    if (std::isfinite(v)) {
      tmin = first ? v : std::min(tmin, v);
      tmax = first ? v : std::max(tmax, v);
      first = false;
    }
  if (!(tmax > tmin)) tmax = tmin + 1;
  auto x = [&](double v) { return left + pw * v / xmax; };
  auto ya = [&](double a) { return top + ph * (1 - a); };
  auto yt = [&](double v) { return top + ph * (1 - (v - tmin) / (tmax - tmin)); };
  std::string s = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{:.0f}\" height=\"{:.0f}\" viewBox=\"0 0 {:.0f} {:.0f}\" "
      "font-size=\"11\"><rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"#fff\" stroke=\"#ccc\"/>",
      w, h, w, h, left, top, pw, ph);
  for (int k = 0; k <= 4; ++k) {
    const double a = k / 4.0;
    s += fmt::format(
        "<line x1=\"{}\" x2=\"{}\" y1=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"#eee\"/><text x=\"{}\" y=\"{:.1f}\" "
        "text-anchor=\"end\" dominant-baseline=\"central\">{:.2f}</text>",
        left, left + pw, ya(a), ya(a), left - 4, ya(a), a);
    const double v = tmin + (tmax - tmin) * a;
    s += fmt::format("<text x=\"{}\" y=\"{:.1f}\" dominant-baseline=\"central\" fill=\"#a63603\">{:.3g}</text>",
                     left + pw + 4, yt(v), v);
  }
  const std::size_t xstep = std::max<std::size_t>(1, static_cast<std::size_t>(std::ceil(xmax / 10)));
  for (std::size_t v = 0; static_cast<double>(v) <= xmax; v += xstep)
    s += fmt::format("<text x=\"{:.1f}\" y=\"{}\" text-anchor=\"middle\">{}</text>", x(static_cast<double>(v)),
                     top + ph + 14, v);
  s += fmt::format("<text x=\"{:.1f}\" y=\"{}\" text-anchor=\"middle\">heads masked</text>", left + pw / 2, h - 6);
  s += fmt::format(
      "<text x=\"12\" y=\"{:.1f}\" transform=\"rotate(-90 12 {:.1f})\" text-anchor=\"middle\" "
      "fill=\"#08519c\">accuracy</text>",
      top + ph / 2, top + ph / 2);
  s += fmt::format(
      "<text x=\"{:.1f}\" y=\"{:.1f}\" transform=\"rotate(90 {:.1f} {:.1f})\" text-anchor=\"middle\" "
      "fill=\"#a63603\">mean target</text>",
      w - 8, top + ph / 2, w - 8, top + ph / 2);
  if (n > 0) {
    const double bar = 0.99 * c.accuracy.front();
    s += fmt::format(
        "<line x1=\"{}\" x2=\"{}\" y1=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"#999\" stroke-dasharray=\"4 3\">"
        "<title>99% of the full model's accuracy</title></line>",
        left, left + pw, ya(bar), ya(bar));
    const double needed_at = static_cast<double>(c.layers * c.heads - c.heads_needed(0.99));
    s += fmt::format(
        "<line x1=\"{:.1f}\" x2=\"{:.1f}\" y1=\"{}\" y2=\"{}\" stroke=\"#31a354\" stroke-dasharray=\"2 3\">"
        "<title>{} heads needed for 99% of the accuracy</title></line>",
        x(needed_at), x(needed_at), top, top + ph, c.heads_needed(0.99));
  }
  std::string pa, pt;
  for (std::size_t k = 0; k < n; ++k) {
    const double xv = x(static_cast<double>(c.heads_masked[k]));
    pa += fmt::format("{:.1f},{:.1f} ", xv, ya(std::isfinite(c.accuracy[k]) ? c.accuracy[k] : 0));
    if (std::isfinite(c.mean_target[k])) pt += fmt::format("{:.1f},{:.1f} ", xv, yt(c.mean_target[k]));
  }
  s += fmt::format(
      "<polyline points=\"{}\" fill=\"none\" stroke=\"#a63603\" stroke-width=\"1.5\" "
      "stroke-dasharray=\"5 2\"/>",
      pt);
  s += fmt::format("<polyline points=\"{}\" fill=\"none\" stroke=\"#08519c\" stroke-width=\"2\"/>", pa);
  for (std::size_t k = 0; k < n; ++k) {
    std::string removed;
    if (k > 0 && c.heads_masked[k] >= 1 && c.heads_masked[k] <= c.pruning_order.size()) {
      for (std::size_t q = c.heads_masked[k - 1]; q < c.heads_masked[k]; ++q)
        removed += fmt::format("{}L{}H{}", removed.empty() ? ", masked " : " ", c.pruning_order[q].layer,
                               c.pruning_order[q].head);
    }
    s += fmt::format(
        "<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"3\" fill=\"#08519c\"><title>{} heads masked{}: accuracy "
        "{:.3f}, mean target {:.4g}</title></circle>",
        x(static_cast<double>(c.heads_masked[k])), ya(std::isfinite(c.accuracy[k]) ? c.accuracy[k] : 0),
        c.heads_masked[k], removed, c.accuracy[k], c.mean_target[k]);
  }
  s += "</svg>";
  return s;
}

}  // namespace detail

/// A self-contained page of a head report: statistics, importance, ablation, redundancy and the pruning curve.
template <class = void>
inline std::string heads_html(const head_report& r, const attention_view_options& o = {}) {
  const auto [layers, heads] = head_report_shape(r);
  std::string body = "<h1>glassbox heads</h1>\n<div class=\"meta\">";
  body += detail::meta_span(fmt::format("{} layers x {} heads", layers, heads));
  if (!r.data.empty()) body += detail::meta_span(r.data);
  body += "</div>\n";
  auto section = [&](std::string_view title, std::string_view note, const tensor2& m, bool diverging) {
    body += fmt::format(
        "<div style=\"display:inline-block;vertical-align:top;margin:0 1.5em 1em 0\"><h2>{}</h2>"
        "<p class=\"note\" style=\"max-width:26em\">{}</p>{}</div>\n",
        html_escape(title), html_escape(note), detail::svg_head_matrix(m, diverging));
  };
  if (r.importance) {
    section("Head importance", "E|d f / d mask| over the data set (Michel et al. 2019), normalised per layer.",
            r.importance->importance, false);
  }
  if (r.ablation) {
    section("Ablation: change of mean target",
            fmt::format("Mean target with the head masked alone, minus {:.4g} with every head on.",
                        r.ablation->base_mean_target),
            r.ablation->target_change, true);
    section(
        "Ablation: change of accuracy",
        fmt::format("Accuracy with the head masked alone, minus {:.3f} with every head on.", r.ablation->base_accuracy),
        r.ablation->accuracy_change, true);
  }
  if (r.pruning) {
    body += fmt::format(
        "<h2>Pruning curve</h2>\n<p class=\"note\">The least important heads masked first ({} importance); accuracy "
        "(solid, left axis) and mean target (dashed, right axis). The model keeps 99% of its accuracy with {} of {} "
        "heads.</p>\n",
        r.pruning->recompute_importance ? "recomputed" : "fixed", r.pruning->heads_needed(0.99), layers * heads);
    body += detail::svg_pruning_curve(*r.pruning) + "\n";
  }
  if (r.statistics) {
    const auto& s = *r.statistics;
    body += fmt::format(
        "<h2 style=\"margin-bottom:0\">Head statistics</h2><p class=\"note\">Means over {} query rows of "
        "{} inputs ({} support).</p>\n",
        s.queries, s.inputs, s.causal ? "causal" : "full");
    section("Entropy (nats)", "Of each attention row.", s.entropy, false);
    section("Normalised entropy", "Entropy / ln(support): 1 uniform, 0 one key.", s.normalized_entropy, false);
    section("Mean distance", "sum_j a_ij |i - j|, in positions.", s.mean_distance, false);
    section("First token (sink)", "Attention to position 0.", s.first_token, false);
    section("Previous token", "Attention to position i - 1.", s.previous_token, false);
    section("Self", "Attention to the query's own position.", s.self_token, false);
    if (s.js_divergence.size() > 0) {
      const std::size_t n = s.js_divergence.shape(0);
      std::vector<std::string> names;
      for (std::size_t k = 0; k < n; ++k) {
        const std::size_t x = s.cluster_order.size() == n ? s.cluster_order[k] : k;
        names.push_back(fmt::format("L{}H{}", x / heads, x % heads));
      }
      const auto p = detail::pool(
          n, n,
          [&](std::size_t i, std::size_t j) {
            const std::size_t a = s.cluster_order.size() == n ? s.cluster_order[i] : i;
            const std::size_t b = s.cluster_order.size() == n ? s.cluster_order[j] : j;
            return static_cast<double>(s.js_divergence(a, b));
          },
          o.max_bins);
      detail::heatmap_style st;
      st.scale = std::log(2.0);
      st.title_cells = o.title_cells;
      st.css_class = "hm";
      st.max_px = 520;
      body += fmt::format(
          "<h2>Head redundancy</h2><p class=\"note\">Mean Jensen-Shannon divergence between heads' attention rows "
          "(white 0 = identical, blue ln 2), heads in average-linkage clustering order: blocks of light cells are "
          "heads that attend alike.</p>\n<div class=\"scroll\">{}</div>\n",
          detail::svg_heatmap(p, names, names, st));
    }
  }
  if (r.pruning) {
    const auto& c = *r.pruning;
    body +=
        "<h2>Pruning steps</h2>\n<table><tr><th>heads masked</th><th class=\"l\">masked in this step</th>"
        "<th>accuracy</th><th>mean target</th></tr>\n";
    for (std::size_t k = 0; k < c.heads_masked.size(); ++k) {
      std::string removed;
      if (k > 0)
        for (std::size_t q = c.heads_masked[k - 1]; q < c.heads_masked[k] && q < c.pruning_order.size(); ++q)
          removed +=
              fmt::format("{}L{}H{}", removed.empty() ? "" : " ", c.pruning_order[q].layer, c.pruning_order[q].head);
      body += fmt::format("<tr><td>{}</td><td class=\"l\">{}</td><td>{:.3f}</td><td>{:.4g}</td></tr>\n",
                          c.heads_masked[k], removed, c.accuracy[k], c.mean_target[k]);
    }
    body += "</table>\n";
  }
  return html_document("glassbox heads", body, detail::attention_css());
}

}  // namespace glassbox::report

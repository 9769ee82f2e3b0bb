// glassbox: the diverging colour scale shared by the terminal and HTML views.
//
// Positive scores are green, negative red (Captum's visualisation convention), white at zero;
// intensity is |score| / scale, clamped to [0, 1] for display only.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>

namespace glassbox::report {

/// An sRGB colour.
struct rgb {
  std::uint8_t r = 255, g = 255, b = 255;
};

/// The colour of `score` on a diverging white-centred scale whose ends are +-`scale`.
template <class = void>
inline rgb diverging_color(double score, double scale) {
  if (!(scale > 0) || !std::isfinite(score)) return {};
  const double a = std::clamp(std::abs(score) / scale, 0.0, 1.0);
  // Ends: green (26, 152, 80) for positive, red (215, 48, 39) for negative (ColorBrewer RdYlGn).
  const double er = score >= 0 ? 26 : 215, eg = score >= 0 ? 152 : 48, eb = score >= 0 ? 80 : 39;
  auto mix = [a](double end) { return static_cast<std::uint8_t>(std::lround(255.0 + a * (end - 255.0))); };
  return {mix(er), mix(eg), mix(eb)};
}

/// The colour of a value in [0, 1] on a sequential white-to-blue scale (attention weights).
template <class = void>
inline rgb sequential_color(double value) {
  const double a = std::isfinite(value) ? std::clamp(value, 0.0, 1.0) : 0.0;
  auto mix = [a](double end) { return static_cast<std::uint8_t>(std::lround(255.0 + a * (end - 255.0))); };
  return {mix(8), mix(69), mix(148)};  // ColorBrewer Blues end
}

/// Whether text on `c` reads better in white than in black (relative luminance below one half).
template <class = void>
inline bool needs_light_text(rgb c) { return 0.2126 * c.r + 0.7152 * c.g + 0.0722 * c.b < 128; }

/// The largest finite |x| in `values` (0 if none): the default scale of a heatmap.
template <class = void>
inline double max_abs(std::span<const double> values) {
  double m = 0;
  for (double v : values)
    if (std::isfinite(v)) m = std::max(m, std::abs(v));
  return m;
}

}  // namespace glassbox::report

// glassbox: the activation file, a safetensors file that any tool can read, and the probe file.
//
// Activation file (written by `glassbox activations`, read by `glassbox probe`):
//   layer.K       F32 [N, d]  hidden states at hidden-state index K (0 = embeddings output), one per layer
//   labels        I32 [N]     class index (label_kind::classes), or F32 [N] real values (label_kind::real)
//   word_ids      I32 [N]     the token id of each row (the last token for last / mean pooling)
//   sequence_ids  I32 [N]     the input sequence of each row (optional; groups for the split)
//   split         I32 [N]     0 train, 1 dev, 2 test (optional)
//   __metadata__  format = "glassbox.activations", version = "1", property, pooling (token | last | mean),
//                 model, label_kind (classes | real), class_names (a JSON list of strings), layers, width
//
// Probe file (`--save-probe`): weight F64 [outputs, d] and bias F64 [outputs] in scikit-learn's
// layout (coef_, intercept_); with several layers, layer.K.weight and layer.K.bias per layer.
//
// The writer streams: activation_file_writer satisfies ActivationSink, so collect_activations can
// send it rows in chunks (each layer's rows go to their place in the file) and never holds more
// than its memory bound. Files are written to "<file>.partial" and renamed when complete.
//
// Its free functions are templates with a defaulted parameter (`template <class = void>`), and its
// reader and writer class templates behind aliases, so that the JSON and formatting code they
// instantiate is compiled only where they are used (docs/building.md, "Include cost").
#pragma once

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "glassbox/core/error.hpp"
#include "glassbox/core/types.hpp"
#include "glassbox/detail/io_file.hpp"
#include "glassbox/detail/io_float.hpp"
#include "glassbox/io/safetensors.hpp"
#include "glassbox/probing/activation_types.hpp"
#include "glassbox/probing/linear_weights.hpp"

namespace glassbox::io {

/// The value of the "format" metadata of an activation file.
inline constexpr std::string_view activation_file_format = "glassbox.activations";

namespace detail {

inline constexpr std::string_view activation_reader_name = "glassbox::io::activation_file_reader";
inline constexpr std::string_view activation_writer_name = "glassbox::io::activation_file_writer";

/// "layer.K".
template <class = void>
inline std::string layer_tensor_name(std::size_t layer) {
  std::string name = "layer.";
  name += std::to_string(layer);
  return name;
}

/// One tensor of the file being written: name, dtype name, shape, and where its bytes go.
struct planned_tensor {
  std::string name;
  std::string dtype;
  std::vector<std::size_t> shape;
  std::size_t offset = 0, bytes = 0;
};

/// Writes int32 values little-endian.
template <class = void>
inline void write_int32(std::ofstream& out, std::span<const std::int32_t> values) {
  std::vector<unsigned char> bytes(values.size() * 4);
  for (std::size_t i = 0; i < values.size(); ++i)
    glassbox::detail::store_le(static_cast<std::uint32_t>(values[i]), bytes.data() + 4 * i);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

/// Writes float values little-endian.
template <class = void>
inline void write_float32(std::ofstream& out, std::span<const float> values) {
  if constexpr (std::endian::native == std::endian::little) {
    out.write(reinterpret_cast<const char*>(values.data()), static_cast<std::streamsize>(values.size_bytes()));
  } else {
    std::vector<unsigned char> bytes(values.size() * 4);
    for (std::size_t i = 0; i < values.size(); ++i)
      glassbox::detail::store_le(std::bit_cast<std::uint32_t>(values[i]), bytes.data() + 4 * i);
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  }
}

/// Reads an I32 tensor of `n` elements named `name` from `file` (rank 1, shape [n]).
template <class = void>
inline std::vector<std::int32_t> read_int32(const safetensors_reader& file, std::string_view name, std::size_t n) {
  const auto& others = file.other_entries();
  const auto it = std::find_if(others.begin(), others.end(), [&](const buffer_entry& b) { return b.name == name; });
  if (it == others.end() || it->type != "I32")
    glassbox::detail::fail_file(activation_reader_name, file.path(), "tensor '{}' must be I32, got {}", name,
                                it == others.end() ? std::string("a floating-point tensor") : it->type);
  if (it->shape.size() != 1 || it->shape[0] != n)
    glassbox::detail::fail_file(activation_reader_name, file.path(), "tensor '{}' must have shape [{}], got {}", name,
                                n, shape_text(it->shape));
  const std::vector<std::byte> bytes = file.read_bytes(name);
  std::vector<std::int32_t> out(n);
  for (std::size_t i = 0; i < n; ++i)
    out[i] = static_cast<std::int32_t>(
        glassbox::detail::load_le<std::uint32_t>(reinterpret_cast<const unsigned char*>(bytes.data()) + 4 * i));
  return out;
}

}  // namespace detail

/// Writes an activation file, all at once (write_activation_file) or streamed chunk by chunk as an
/// ActivationSink: begin(header) plans the file from the header (rows, layers, labels), append(rows)
/// writes each chunk's rows of every layer at their place, finish() checks that every row arrived
/// and renames "<file>.partial" to the file. Destroyed before finish(), it removes the partial file.
///
/// Example:
///   glassbox::io::activation_file_writer out("acts.safetensors");
///   glassbox::collect_activations(model, inputs, labels, {.memory_limit = 256 << 20}, out);
/// A class template only so that its JSON and formatting code is compiled where it is used
/// (docs/building.md, "Include cost"); write activation_file_writer.
template <class = void>
class basic_activation_file_writer {
 public:
  /// A writer of `file` (nothing is written before begin()).
  explicit basic_activation_file_writer(std::filesystem::path file) : file_(std::move(file)) {
    partial_ = file_;
    partial_ += ".partial";
  }
  basic_activation_file_writer(const basic_activation_file_writer&) = delete;
  basic_activation_file_writer& operator=(const basic_activation_file_writer&) = delete;
  ~basic_activation_file_writer() {
    if (out_.is_open()) out_.close();
    if (begun_ && !finished_) {
      std::error_code ignored;
      std::filesystem::remove(partial_, ignored);
    }
  }

  /// Plans and opens the file: every tensor's place from the header (the set without activations).
  void begin(const activation_set& header) {
    constexpr auto who = detail::activation_writer_name;
    glassbox::detail::require(!begun_, "{}: begin must be called once, got a second call", who);
    const std::size_t n = header.rows();
    check_header(header, who);
    rows_ = n;
    width_ = header.width;
    layers_ = header.layers.size();

    std::vector<detail::planned_tensor> plan;
    std::size_t offset = 0;
    const auto add = [&](std::string name, std::string dtype, std::vector<std::size_t> shape, std::size_t element) {
      std::size_t count = 1;
      for (const auto d : shape) count *= d;
      plan.push_back({std::move(name), std::move(dtype), std::move(shape), offset, count * element});
      offset += count * element;
    };
    for (const auto layer : header.layers) add(detail::layer_tensor_name(layer), "F32", {n, header.width}, 4);
    add("labels", header.kind == label_kind::classes ? "I32" : "F32", {n}, 4);
    add("word_ids", "I32", {n}, 4);
    if (!header.sequence_ids.empty()) add("sequence_ids", "I32", {n}, 4);
    if (!header.split.empty()) add("split", "I32", {n}, 4);

    nlohmann::json h = nlohmann::json::object();
    nlohmann::json meta = nlohmann::json::object();
    meta["format"] = std::string(activation_file_format);
    meta["version"] = "1";
    meta["property"] = header.property;
    meta["pooling"] = std::string(to_string(header.pooling));
    meta["model"] = header.model;
    meta["label_kind"] = std::string(to_string(header.kind));
    meta["class_names"] = nlohmann::json(header.class_names).dump();
    std::string layers_text;
    for (std::size_t i = 0; i < header.layers.size(); ++i) {
      if (i != 0) layers_text += ',';
      layers_text += std::to_string(header.layers[i]);
    }
    meta["layers"] = layers_text;
    meta["width"] = std::to_string(header.width);
    h["__metadata__"] = meta;
    for (const auto& t : plan)
      h[t.name] = {{"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {t.offset, t.offset + t.bytes}}};
    std::string text;
    try {
      text = h.dump();
    } catch (const nlohmann::json::exception& e) {
      glassbox::detail::fail("{}: '{}': the metadata must be valid UTF-8: {}", who, file_.string(), e.what());
    }
    text.append((8 - text.size() % 8) % 8, ' ');
    data_start_ = 8 + text.size();
    layer_offsets_.clear();
    for (std::size_t k = 0; k < layers_; ++k) layer_offsets_.push_back(plan[k].offset);

    out_.open(partial_, std::ios::binary | std::ios::trunc);
    if (!out_) glassbox::detail::fail_file(who, file_, "cannot be opened for writing");
    begun_ = true;
    unsigned char prefix[8];
    glassbox::detail::store_le<std::uint64_t>(text.size(), prefix);
    out_.write(reinterpret_cast<const char*>(prefix), 8);
    out_.write(text.data(), static_cast<std::streamsize>(text.size()));
    // The small tensors now, after the layers' region.
    out_.seekp(static_cast<std::streamoff>(data_start_ + plan[layers_].offset));
    if (header.kind == label_kind::classes) {
      std::vector<std::int32_t> labels(n);
      for (std::size_t i = 0; i < n; ++i) labels[i] = static_cast<std::int32_t>(header.labels[i]);
      detail::write_int32(out_, labels);
    } else {
      std::vector<float> labels(n);
      for (std::size_t i = 0; i < n; ++i) labels[i] = static_cast<float>(header.labels[i]);
      detail::write_float32(out_, labels);
    }
    std::vector<std::int32_t> words(header.word_ids.begin(), header.word_ids.end());
    detail::write_int32(out_, words);
    if (!header.sequence_ids.empty()) detail::write_int32(out_, header.sequence_ids);
    if (!header.split.empty()) detail::write_int32(out_, header.split);
    check_stream();
  }

  /// Writes the next rows of every layer (one [n, d] tensor per layer, in the header's order).
  void append(std::span<const tensor2> rows) {
    constexpr auto who = detail::activation_writer_name;
    glassbox::detail::require(begun_ && !finished_, "{}: append must come between begin and finish", who);
    glassbox::detail::require<shape_error>(rows.size() == layers_, "{}: rows must hold {} layers, got {}", who, layers_,
                                           rows.size());
    const std::size_t n = rows.empty() ? 0 : rows.front().shape(0);
    for (const auto& r : rows)
      glassbox::detail::require<shape_error>(r.shape(0) == n && r.shape(1) == width_,
                                             "{}: every layer's rows must be [{}, {}], got [{}, {}]", who, n, width_,
                                             r.shape(0), r.shape(1));
    glassbox::detail::require<shape_error>(written_ + n <= rows_, "{}: {} rows were declared, got {}", who, rows_,
                                           written_ + n);
    for (std::size_t k = 0; k < layers_; ++k) {
      out_.seekp(static_cast<std::streamoff>(data_start_ + layer_offsets_[k] + written_ * width_ * 4));
      detail::write_float32(out_, std::span<const float>(rows[k].data(), rows[k].size()));
    }
    written_ += n;
    check_stream();
  }

  /// Checks that every declared row was written, closes the file and renames it into place.
  void finish() {
    constexpr auto who = detail::activation_writer_name;
    glassbox::detail::require(begun_ && !finished_, "{}: finish must come once, after begin", who);
    glassbox::detail::require<shape_error>(written_ == rows_, "{}: {} rows were declared, {} written", who, rows_,
                                           written_);
    out_.flush();
    check_stream();
    out_.close();
    if (out_.fail()) glassbox::detail::fail_file(who, file_, "closing after writing failed");
    std::error_code ec;
    std::filesystem::rename(partial_, file_, ec);
    if (ec) glassbox::detail::fail_file(who, file_, "cannot be replaced by the written file: {}", ec.message());
    finished_ = true;
  }

 private:
  void check_stream() {
    if (!out_)
      glassbox::detail::fail_file(detail::activation_writer_name, file_,
                                  "writing failed (disk full or file system error?)");
  }

  static void check_header(const activation_set& h, std::string_view who) {
    const std::size_t n = h.rows();
    glassbox::detail::require<shape_error>(n >= 1, "{}: the set must have at least one row, got 0", who);
    glassbox::detail::require<shape_error>(!h.layers.empty() && h.width >= 1,
                                           "{}: the set must have at least one layer and width >= 1, got {} layers of "
                                           "width {}",
                                           who, h.layers.size(), h.width);
    glassbox::detail::require<shape_error>(h.word_ids.size() == n, "{}: word_ids must hold {} entries, got {}", who, n,
                                           h.word_ids.size());
    glassbox::detail::require<shape_error>(h.sequence_ids.empty() || h.sequence_ids.size() == n,
                                           "{}: sequence_ids must be empty or hold {} entries, got {}", who, n,
                                           h.sequence_ids.size());
    glassbox::detail::require<shape_error>(h.split.empty() || h.split.size() == n,
                                           "{}: split must be empty or hold {} entries, got {}", who, n,
                                           h.split.size());
    for (std::size_t i = 0; i < h.split.size(); ++i)
      glassbox::detail::require(h.split[i] >= 0 && h.split[i] <= 2, "{}: split must be 0, 1 or 2, got {} at row {}",
                                who, h.split[i], i);
    for (std::size_t i = 0; i < h.layers.size(); ++i)
      for (std::size_t j = 0; j < i; ++j)
        glassbox::detail::require(h.layers[i] != h.layers[j], "{}: layers must be distinct, got {} twice", who,
                                  h.layers[i]);
    for (std::size_t i = 0; i < n; ++i) {
      const double v = h.labels[i];
      if (h.kind == label_kind::classes)
        glassbox::detail::require(v >= 0 && v == std::floor(v) && v < 2147483647.0,
                                  "{}: class labels must be integers >= 0, got {} at row {}", who, v, i);
      else
        glassbox::detail::require(std::isfinite(v), "{}: labels must be finite, got {} at row {}", who, v, i);
    }
  }

  std::filesystem::path file_, partial_;
  std::ofstream out_;
  bool begun_ = false, finished_ = false;
  std::size_t rows_ = 0, width_ = 0, layers_ = 0, written_ = 0, data_start_ = 0;
  std::vector<std::size_t> layer_offsets_;
};

/// The activation-file writer (basic_activation_file_writer's only instantiation).
using activation_file_writer = basic_activation_file_writer<>;

/// Writes `set` (with its activations) as an activation file.
template <class = void>
inline void write_activation_file(const std::filesystem::path& file, const activation_set& set) {
  glassbox::detail::require<shape_error>(set.activations.size() == set.layers.size(),
                                         "glassbox::io::write_activation_file: the set must hold one activation matrix "
                                         "per layer ({}), got {}",
                                         set.layers.size(), set.activations.size());
  activation_set header = set;
  header.activations.clear();
  activation_file_writer out(file);
  out.begin(header);
  out.append(std::span<const tensor2>(set.activations));
  out.finish();
}

/// Reads an activation file: checks every tensor and the metadata on construction, then reads
/// layers on request (one at a time, so a probe never needs more than one layer in memory).
///
/// Example:
///   glassbox::io::activation_file_reader in("acts.safetensors");
///   auto result = glassbox::probe_layers(in.header(), [&](std::size_t k) { return in.read_layer(k); });
/// A class template only so that its JSON and formatting code is compiled where it is used
/// (docs/building.md, "Include cost"); write activation_file_reader.
template <class = void>
class basic_activation_file_reader {
 public:
  /// Opens `file`; io_error naming the file and the problem if it is not a valid activation file.
  explicit basic_activation_file_reader(const std::filesystem::path& file) : file_(file) {
    constexpr auto who = detail::activation_reader_name;
    const auto& f = file_;
    const auto& meta = f.metadata();
    const auto text = [&](const char* key) -> std::string {
      const auto it = meta.find(key);
      return it == meta.end() ? std::string() : it->second;
    };
    if (const auto format = text("format"); !format.empty() && format != activation_file_format)
      glassbox::detail::fail_file(who, f.path(), "metadata format must be '{}', got '{}'", activation_file_format,
                                  format);
    header_.property = text("property");
    header_.model = text("model");
    const std::string pooling = text("pooling");
    if (!pooling.empty()) {
      const auto p = parse_activation_pooling(pooling);
      if (!p)
        glassbox::detail::fail_file(who, f.path(), "metadata pooling must be token, last or mean, got '{}'", pooling);
      header_.pooling = *p;
    }
    if (const auto names = text("class_names"); !names.empty()) {
      try {
        const auto j = nlohmann::json::parse(names);
        header_.class_names = j.template get<std::vector<std::string>>();
      } catch (const nlohmann::json::exception&) {
        glassbox::detail::fail_file(who, f.path(), "metadata class_names must be a JSON list of strings, got '{}'",
                                    names);
      }
    }

    // Layers: every F32 tensor named layer.K, rank 2, one shape.
    std::optional<std::size_t> n;
    for (const auto& e : f.entries()) {
      if (e.name.rfind("layer.", 0) != 0) continue;
      const std::string index = e.name.substr(6);
      if (index.empty() || index.size() > 6 ||
          !std::all_of(index.begin(), index.end(), [](char c) { return c >= '0' && c <= '9'; }))
        glassbox::detail::fail_file(who, f.path(), "tensor '{}': a layer must be named layer.K with K an integer",
                                    e.name);
      if (e.type != dtype::f32 || e.shape.size() != 2)
        glassbox::detail::fail_file(who, f.path(), "tensor '{}' must be F32 of rank 2 [N, d], got {} {}", e.name,
                                    to_string(e.type), detail::shape_text(e.shape));
      if (!layer_names_.empty() && (e.shape[0] != *n || e.shape[1] != header_.width))
        glassbox::detail::fail_file(who, f.path(), "tensor '{}' has shape {}, the other layers [{}, {}]", e.name,
                                    detail::shape_text(e.shape), *n, header_.width);
      n = e.shape[0];
      header_.width = e.shape[1];
      const auto k = static_cast<std::size_t>(std::stoul(index));
      header_.layers.push_back(k);
      layer_names_.push_back(e.name);
    }
    for (const auto& b : f.other_entries())
      if (b.name.rfind("layer.", 0) == 0)
        glassbox::detail::fail_file(who, f.path(), "tensor '{}' must be F32 of rank 2 [N, d], got {}", b.name, b.type);
    if (layer_names_.empty()) glassbox::detail::fail_file(who, f.path(), "has no layer.K tensor");
    if (*n == 0 || header_.width == 0)
      glassbox::detail::fail_file(who, f.path(), "layers must have at least one row and one column, got [{}, {}]", *n,
                                  header_.width);
    // Layers in ascending order.
    std::vector<std::size_t> order(header_.layers.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(),
              [&](std::size_t a, std::size_t b) { return header_.layers[a] < header_.layers[b]; });
    std::vector<std::size_t> layers;
    std::vector<std::string> names;
    for (const auto i : order) {
      layers.push_back(header_.layers[i]);
      names.push_back(layer_names_[i]);
    }
    header_.layers = std::move(layers);
    layer_names_ = std::move(names);

    // Labels: I32 (classes) or F32 (real).
    if (!f.contains("labels")) glassbox::detail::fail_file(who, f.path(), "has no 'labels' tensor");
    const bool float_labels =
        std::any_of(f.entries().begin(), f.entries().end(), [](const tensor_entry& e) { return e.name == "labels"; });
    if (float_labels) {
      const auto& e = f.entry("labels");
      if (e.type != dtype::f32 || e.shape.size() != 1 || e.shape[0] != *n)
        glassbox::detail::fail_file(who, f.path(), "tensor 'labels' must be I32 or F32 [{}], got {} {}", *n,
                                    to_string(e.type), detail::shape_text(e.shape));
      header_.kind = label_kind::real;
      const auto values = f.read_doubles("labels");
      for (std::size_t i = 0; i < values.size(); ++i)
        if (!std::isfinite(values[i]))
          glassbox::detail::fail_file(who, f.path(), "labels must be finite, got {} at row {}", values[i], i);
      header_.labels = values;
    } else {
      header_.kind = label_kind::classes;
      const auto values = detail::read_int32(f, "labels", *n);
      header_.labels.resize(*n);
      for (std::size_t i = 0; i < *n; ++i) {
        if (values[i] < 0)
          glassbox::detail::fail_file(who, f.path(), "class labels must be >= 0, got {} at row {}", values[i], i);
        if (!header_.class_names.empty() && static_cast<std::size_t>(values[i]) >= header_.class_names.size())
          glassbox::detail::fail_file(who, f.path(), "class labels must be < {} (the class names), got {} at row {}",
                                      header_.class_names.size(), values[i], i);
        header_.labels[i] = values[i];
      }
    }
    if (const auto kind = text("label_kind"); !kind.empty() && kind != to_string(header_.kind))
      glassbox::detail::fail_file(who, f.path(), "metadata label_kind is '{}' but the labels are {}", kind,
                                  to_string(header_.kind));
    if (!f.contains("word_ids")) glassbox::detail::fail_file(who, f.path(), "has no 'word_ids' tensor");
    const auto words = detail::read_int32(f, "word_ids", *n);
    header_.word_ids.assign(words.begin(), words.end());
    if (f.contains("sequence_ids")) header_.sequence_ids = detail::read_int32(f, "sequence_ids", *n);
    if (f.contains("split")) {
      header_.split = detail::read_int32(f, "split", *n);
      for (std::size_t i = 0; i < *n; ++i)
        if (header_.split[i] < 0 || header_.split[i] > 2)
          glassbox::detail::fail_file(who, f.path(), "split must be 0 (train), 1 (dev) or 2 (test), got {} at row {}",
                                      header_.split[i], i);
    }
  }

  /// The set without activations: metadata, layers, width, labels, word ids, sequence ids, split.
  const activation_set& header() const { return header_; }

  /// The activations of hidden-state index `layer`, [N, d]; io_error if the file has no such layer.
  tensor2 read_layer(std::size_t layer) const {
    const auto slot = header_.layer_slot(layer);
    if (!slot)
      glassbox::detail::fail_file(detail::activation_reader_name, file_.path(), "has no layer {} (it has {})", layer,
                                  fmt::join(header_.layers, ", "));
    return file_.read<2>(layer_names_[*slot]);
  }

  /// The whole set with the activations of `layers` (default all) in memory.
  activation_set read(std::span<const std::size_t> layers = {}) const {
    activation_set out = header_;
    if (!layers.empty()) out.layers.assign(layers.begin(), layers.end());
    for (const auto k : out.layers) out.activations.push_back(read_layer(k));
    return out;
  }

  /// The underlying safetensors reader.
  const safetensors_reader& file() const { return file_; }

 private:
  safetensors_reader file_;
  activation_set header_;
  std::vector<std::string> layer_names_;
};

/// The activation-file reader (basic_activation_file_reader's only instantiation).
using activation_file_reader = basic_activation_file_reader<>;

/// Reads a whole activation file (every layer in memory); see activation_file_reader.
template <class = void>
inline activation_set read_activation_file(const std::filesystem::path& file) {
  return activation_file_reader(file).read();
}

/// A trained linear probe to save: the hidden-state index it reads and its weights.
struct saved_probe {
  std::size_t layer = 0;   ///< hidden-state index
  linear_weights weights;  ///< coef_ [outputs, d] and intercept_ [outputs]
};

/// Writes probes in scikit-learn's layout: `weight` F64 [outputs, d] and `bias` F64 [outputs] for
/// one probe, `layer.K.weight` and `layer.K.bias` for several; metadata `layers`, and `metadata`.
template <class = void>
inline void write_probe_file(const std::filesystem::path& file, std::span<const saved_probe> probes,
                             std::map<std::string, std::string> metadata = {}) {
  glassbox::detail::require(!probes.empty(),
                            "glassbox::io::write_probe_file: probes must hold at least one probe, got none");
  std::vector<tensor_to_write> tensors;
  std::string layers;
  for (const auto& p : probes) {
    const auto& w = p.weights;
    glassbox::detail::require<shape_error>(
        w.weight.size() == w.outputs * w.features && w.bias.size() == w.outputs && w.outputs >= 1,
        "glassbox::io::write_probe_file: the probe of layer {} must hold outputs x features weights and outputs biases",
        p.layer);
    const std::string prefix = probes.size() == 1 ? std::string() : detail::layer_tensor_name(p.layer) + '.';
    tensors.push_back({prefix + "weight", dtype::f64, {w.outputs, w.features}, std::span<const double>(w.weight)});
    tensors.push_back({prefix + "bias", dtype::f64, {w.outputs}, std::span<const double>(w.bias)});
    if (!layers.empty()) layers += ',';
    layers += std::to_string(p.layer);
  }
  metadata["format"] = "glassbox.probe";
  metadata["layers"] = layers;
  write_safetensors(file, tensors, metadata);
}

/// Reads the probes of a probe file (see write_probe_file), in the order of its `layers` metadata.
template <class = void>
inline std::vector<saved_probe> read_probe_file(const std::filesystem::path& file) {
  const safetensors_reader in(file);
  const auto& meta = in.metadata();
  const auto it = meta.find("layers");
  std::vector<std::size_t> layers;
  if (it != meta.end() && !it->second.empty()) {
    std::size_t start = 0;
    while (start <= it->second.size()) {
      const auto comma = it->second.find(',', start);
      const std::string item = it->second.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
      try {
        layers.push_back(static_cast<std::size_t>(std::stoul(item)));
      } catch (const std::exception&) {
        glassbox::detail::fail_file("glassbox::io::read_probe_file", file, "metadata layers must be integers, got '{}'",
                                    it->second);
      }
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
  }
  if (layers.empty()) layers.push_back(0);
  std::vector<saved_probe> out;
  for (const auto layer : layers) {
    const std::string prefix =
        layers.size() == 1 && in.contains("weight") ? std::string() : detail::layer_tensor_name(layer) + '.';
    const auto& w = in.entry(prefix + "weight");
    const auto& b = in.entry(prefix + "bias");
    if (w.shape.size() != 2 || b.shape.size() != 1 || b.shape[0] != w.shape[0])
      glassbox::detail::fail_file("glassbox::io::read_probe_file", file,
                                  "'{}weight' must be [outputs, d] and '{}bias' [outputs], got {} and {}", prefix,
                                  prefix, detail::shape_text(w.shape), detail::shape_text(b.shape));
    saved_probe p;
    p.layer = layer;
    p.weights.outputs = w.shape[0];
    p.weights.features = w.shape[1];
    p.weights.weight = in.read_doubles(prefix + "weight");
    p.weights.bias = in.read_doubles(prefix + "bias");
    out.push_back(std::move(p));
  }
  return out;
}

}  // namespace glassbox::io

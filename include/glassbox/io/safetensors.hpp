// glassbox: reading and writing safetensors files (the Hugging Face tensor format).
//
// Layout: an 8-byte little-endian unsigned header length N, N bytes of UTF-8 JSON, then the data
// section. The JSON object maps each tensor name to {"dtype", "shape", "data_offsets": [begin, end]}
// (offsets relative to the start of the data section, data little-endian, row-major) and may hold
// "__metadata__", an object of string -> string.
//
// The reader checks the whole header up front (length bounds, JSON, every entry, offsets, sizes,
// overlaps and holes; docs/io.md lists every rule) and then reads each tensor from the file when it is
// asked for, converting F64, F32, F16 and BF16 to float or double. Any malformed file is a
// glassbox::io_error naming the file and the problem. The writer lays files out as the reference
// implementation does (tensors by descending dtype alignment then by name, header padded with spaces to
// a multiple of 8 bytes), so Python's safetensors loads them.
#pragma once

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <numeric>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "glassbox/core/error.hpp"
#include "glassbox/detail/io_file.hpp"
#include "glassbox/detail/io_float.hpp"
#include "glassbox/detail/xtensor.hpp"

namespace glassbox::io {

/// The floating-point dtypes glassbox reads and writes, as safetensors names them: "F64", "F32", "F16", "BF16".
enum class dtype { f64, f32, f16, bf16 };

/// The safetensors name of a dtype: "F64", "F32", "F16" or "BF16".
constexpr std::string_view to_string(dtype type) {
  switch (type) {
    case dtype::f64:
      return "F64";
    case dtype::f32:
      return "F32";
    case dtype::f16:
      return "F16";
    case dtype::bf16:
      return "BF16";
  }
  return "?";
}

/// Bytes per element of a dtype: 8, 4, 2 or 2.
constexpr std::size_t size_of(dtype type) {
  switch (type) {
    case dtype::f64:
      return 8;
    case dtype::f32:
      return 4;
    case dtype::f16:
    case dtype::bf16:
      return 2;
  }
  return 0;
}

/// The dtype a safetensors name stands for ("F32" -> dtype::f32), or nullopt for any other name.
constexpr std::optional<dtype> dtype_from_string(std::string_view name) {
  if (name == "F64") return dtype::f64;
  if (name == "F32") return dtype::f32;
  if (name == "F16") return dtype::f16;
  if (name == "BF16") return dtype::bf16;
  return std::nullopt;
}

/// The largest header the reader accepts, in bytes (the reference implementation's limit).
inline constexpr std::uint64_t max_header_size = 100'000'000;

/// One floating-point tensor of a safetensors file.
struct tensor_entry {
  std::string name;                ///< the key in the header
  dtype type = dtype::f32;         ///< element type in the file
  std::vector<std::size_t> shape;  ///< dimensions, row-major; empty for a scalar
  std::size_t offset = 0;          ///< first byte, from the start of the data section
  std::size_t size_bytes = 0;      ///< number of bytes (element count x size_of(type))

  /// The number of elements: the product of the shape (1 for a scalar).
  std::size_t element_count() const { return size_bytes / size_of(type); }
};

/// A tensor whose dtype glassbox does not convert to floating point (BOOL, integers, F8, C64): it is listed
/// and its bytes can be read with `read_bytes`, but `read_floats` and friends refuse it.
struct buffer_entry {
  std::string name;                ///< the key in the header
  std::string type;                ///< the dtype as the file names it, e.g. "I64"
  std::vector<std::size_t> shape;  ///< dimensions, row-major; empty for a scalar
  std::size_t offset = 0;          ///< first byte, from the start of the data section
  std::size_t size_bytes = 0;      ///< number of bytes
};

namespace detail {

using glassbox::detail::fail_file;

inline constexpr std::string_view reader_name = "glassbox::io::safetensors_reader";

/// Bytes per element of the safetensors dtypes glassbox lists but does not convert; 0 if unknown.
constexpr std::size_t buffer_dtype_size(std::string_view name) {
  constexpr std::array<std::pair<std::string_view, std::size_t>, 13> sizes{{{"BOOL", 1},
                                                                            {"U8", 1},
                                                                            {"I8", 1},
                                                                            {"F8_E5M2", 1},
                                                                            {"F8_E4M3", 1},
                                                                            {"F8_E8M0", 1},
                                                                            {"I16", 2},
                                                                            {"U16", 2},
                                                                            {"I32", 4},
                                                                            {"U32", 4},
                                                                            {"I64", 8},
                                                                            {"U64", 8},
                                                                            {"C64", 8}}};
  for (const auto& [n, s] : sizes)
    if (n == name) return s;
  return 0;
}

/// Short text for a JSON value in an error message: the value itself when small, else its type and size.
template <class = void>
inline std::string describe_json(const nlohmann::json& j) {
  constexpr std::size_t limit = 60;
  const bool flat =
      !j.is_structured() ||
      (j.size() <= 16 && std::all_of(j.begin(), j.end(), [](const auto& v) { return !v.is_structured(); }));
  std::string text = flat ? j.dump() : fmt::format("a JSON {} of {} elements", j.type_name(), j.size());
  if (text.size() > limit) text = text.substr(0, limit) + "...";
  return text;
}

/// "[2, 3]" for a shape.
template <class = void>
inline std::string shape_text(const std::vector<std::size_t>& shape) {
  return fmt::format("[{}]", fmt::join(shape, ", "));
}

/// Records the first key that appears twice in one JSON object while nlohmann parses (it would keep the last).
/// A class template only so that its JSON code is compiled where it is used; write duplicate_key_finder.
template <class = void>
class basic_duplicate_key_finder {
 public:
  /// The nlohmann parser callback.
  bool operator()(int /*depth*/, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
    using event_t = nlohmann::json::parse_event_t;
    if (event == event_t::object_start) {
      open_.push_back({open_.empty() ? std::string() : last_key_, {}});
    } else if (event == event_t::object_end) {
      if (!open_.empty()) open_.pop_back();
    } else if (event == event_t::key && !open_.empty()) {
      last_key_ = parsed.get<std::string>();
      if (!open_.back().keys.insert(last_key_).second && !found_) {
        found_ = true;
        key_ = last_key_;
        owner_ = open_.back().owner;
        top_level_ = open_.size() == 1;
      }
    }
    return true;
  }

  /// Whether a key appeared twice in one object.
  bool found() const { return found_; }
  /// The repeated key.
  const std::string& key() const { return key_; }
  /// The key of the object that holds it (empty at top level).
  const std::string& owner() const { return owner_; }
  /// Whether the repeated key is a top-level key (a tensor name or __metadata__).
  bool top_level() const { return top_level_; }

 private:
  struct object {
    std::string owner;
    std::set<std::string> keys;
  };
  std::vector<object> open_;
  std::string last_key_, key_, owner_;
  bool found_ = false, top_level_ = false;
};

/// The duplicate-key recorder of parse_header.
using duplicate_key_finder = basic_duplicate_key_finder<>;

/// A non-negative JSON integer that fits std::size_t, or nullopt.
template <class = void>
inline std::optional<std::size_t> as_size(const nlohmann::json& j) {
  if (!j.is_number_unsigned()) return std::nullopt;
  const auto v = j.get<std::uint64_t>();
  if (v > std::numeric_limits<std::size_t>::max()) return std::nullopt;
  return static_cast<std::size_t>(v);
}

/// a * b, or nullopt on overflow.
template <class = void>
inline std::optional<std::size_t> checked_multiply(std::size_t a, std::size_t b) {
  if (a != 0 && b > std::numeric_limits<std::size_t>::max() / a) return std::nullopt;
  return a * b;
}

/// The parsed and checked header of a safetensors file.
struct parsed_header {
  std::vector<tensor_entry> entries;            ///< floating-point tensors, by data offset
  std::vector<buffer_entry> buffers;            ///< other dtypes, by data offset
  std::map<std::string, std::string> metadata;  ///< __metadata__
};

/// The deepest nesting of JSON arrays and objects in `text` (strings skipped), counted up to `limit` + 1.
template <class = void>
inline std::size_t json_nesting(std::string_view text, std::size_t limit) {
  std::size_t depth = 0, deepest = 0;
  bool in_string = false, escaped = false;
  for (const char c : text) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      deepest = std::max(deepest, ++depth);
      if (deepest > limit) break;
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return deepest;
}

/// Parses and checks a header of a file whose data section has `data_size` bytes (rules in docs/io.md).
template <class = void>
inline parsed_header parse_header(std::string_view text, std::uint64_t data_size, const std::filesystem::path& file) {
  // A header nests three levels deep; bound the nesting before parsing, as serde_json does (128 levels), so
  // that a hostile header cannot make the parser build millions of nested values.
  constexpr std::size_t max_nesting = 64;
  if (json_nesting(text, max_nesting) > max_nesting)
    fail_file(reader_name, file, "header nests JSON arrays and objects more than {} levels deep", max_nesting);
  duplicate_key_finder duplicates;
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(text.begin(), text.end(), std::ref(duplicates));
  } catch (const nlohmann::json::exception& e) {
    fail_file(reader_name, file, "header is not valid JSON: {}", e.what());
  }
  if (!header.is_object())
    fail_file(reader_name, file, "header must be a JSON object, got a JSON {}", header.type_name());
  if (text.empty() || text.front() != '{')
    fail_file(reader_name, file, "header must start with '{{' (no leading whitespace or byte order mark)");
  if (duplicates.found()) {
    if (!duplicates.top_level())
      fail_file(reader_name, file, "key '{}' appears twice in '{}'", duplicates.key(), duplicates.owner());
    if (duplicates.key() == "__metadata__") fail_file(reader_name, file, "__metadata__ appears twice");
    fail_file(reader_name, file, "duplicate tensor name '{}'", duplicates.key());
  }

  parsed_header out;
  for (const auto& [name, value] : header.items()) {
    if (name == "__metadata__") {
      if (value.is_null()) continue;  // the reference reader accepts null as "no metadata"
      if (!value.is_object())
        fail_file(reader_name, file, "__metadata__ must be an object of strings, got {}", describe_json(value));
      for (const auto& [key, text_value] : value.items()) {
        if (!text_value.is_string())
          fail_file(reader_name, file, "__metadata__ value of '{}' must be a string, got {}", key,
                    describe_json(text_value));
        out.metadata.emplace(key, text_value.template get<std::string>());
      }
      continue;
    }
    if (!value.is_object())
      fail_file(reader_name, file, "tensor '{}': entry must be an object with dtype, shape and data_offsets, got {}",
                name, describe_json(value));
    for (const auto& [key, ignored] : value.items()) {
      (void)ignored;
      if (key != "dtype" && key != "shape" && key != "data_offsets")
        fail_file(reader_name, file, "tensor '{}': unexpected key '{}' (an entry has dtype, shape and data_offsets)",
                  name, key);
    }
    for (const char* key : {"dtype", "shape", "data_offsets"})
      if (!value.contains(key)) fail_file(reader_name, file, "tensor '{}': missing \"{}\"", name, key);

    const auto& type_json = value["dtype"];
    if (!type_json.is_string())
      fail_file(reader_name, file, "tensor '{}': dtype must be a string, got {}", name, describe_json(type_json));
    const auto type_name = type_json.template get<std::string>();
    const auto type = dtype_from_string(type_name);
    const std::size_t element_size = type ? size_of(*type) : buffer_dtype_size(type_name);
    if (element_size == 0) {
      if (type_name == "F4" || type_name == "F6_E2M3" || type_name == "F6_E3M2")
        fail_file(reader_name, file,
                  "tensor '{}': dtype {} packs elements into less than a byte, which is not supported", name,
                  type_name);
      fail_file(reader_name, file,
                "tensor '{}': unknown dtype '{}' (known: F64, F32, F16, BF16, BOOL, U8, I8, F8_E5M2, F8_E4M3, F8_E8M0, "
                "I16, U16, I32, U32, I64, U64, C64)",
                name, type_name);
    }

    const auto& shape_json = value["shape"];
    std::vector<std::size_t> shape;
    bool shape_ok = shape_json.is_array();
    if (shape_ok) {
      for (const auto& d : shape_json) {
        const auto size = as_size(d);
        if (!size) {
          shape_ok = false;
          break;
        }
        shape.push_back(*size);
      }
    }
    if (!shape_ok)
      fail_file(reader_name, file, "tensor '{}': shape must be a list of non-negative integers, got {}", name,
                describe_json(shape_json));

    const auto& offsets_json = value["data_offsets"];
    std::optional<std::size_t> begin, end;
    if (offsets_json.is_array() && offsets_json.size() == 2) {
      begin = as_size(offsets_json[0]);
      end = as_size(offsets_json[1]);
    }
    if (!begin || !end)
      fail_file(reader_name, file, "tensor '{}': data_offsets must be two non-negative integers [begin, end], got {}",
                name, describe_json(offsets_json));
    if (*begin > *end)
      fail_file(reader_name, file, "tensor '{}': data_offsets [{}, {}] are reversed (begin must be <= end)", name,
                *begin, *end);

    std::optional<std::size_t> count = 1;
    for (const auto d : shape) {
      count = checked_multiply(*count, d);
      if (!count)
        fail_file(reader_name, file, "tensor '{}': the element count of shape {} overflows 64 bits", name,
                  shape_text(shape));
    }
    const auto bytes = checked_multiply(*count, element_size);
    if (!bytes)
      fail_file(reader_name, file, "tensor '{}': the byte size of shape {} x {} bytes overflows 64 bits", name,
                shape_text(shape), element_size);
    if (*end - *begin != *bytes)
      fail_file(reader_name, file,
                "tensor '{}': data_offsets [{}, {}] span {} bytes but shape {} of {} needs {} ({} x {} bytes)", name,
                *begin, *end, *end - *begin, shape_text(shape), type_name, *bytes, *count, element_size);
    if (*end > data_size)
      fail_file(reader_name, file, "tensor '{}': data_offsets [{}, {}] run past the end of the data section ({} bytes)",
                name, *begin, *end, data_size);

    if (type) {
      out.entries.push_back({name, *type, std::move(shape), *begin, *bytes});
    } else {
      out.buffers.push_back({name, type_name, std::move(shape), *begin, *bytes});
    }
  }

  // The reference reader requires the tensors to tile the data section exactly: sorted by offsets, each
  // begins where the previous ended, the first at 0 and the last at the end of the file.
  struct span_of_bytes {
    std::size_t begin, end;
    const std::string* name;
  };
  std::vector<span_of_bytes> spans;
  spans.reserve(out.entries.size() + out.buffers.size());
  for (const auto& e : out.entries) spans.push_back({e.offset, e.offset + e.size_bytes, &e.name});
  for (const auto& b : out.buffers) spans.push_back({b.offset, b.offset + b.size_bytes, &b.name});
  std::sort(spans.begin(), spans.end(), [](const span_of_bytes& a, const span_of_bytes& b) {
    return std::tie(a.begin, a.end, *a.name) < std::tie(b.begin, b.end, *b.name);
  });
  std::size_t covered = 0;
  const std::string* previous = nullptr;
  std::size_t previous_begin = 0;
  for (const auto& s : spans) {
    if (s.begin < covered)
      fail_file(reader_name, file, "tensors '{}' [{}, {}) and '{}' [{}, {}) overlap", *previous, previous_begin,
                covered, *s.name, s.begin, s.end);
    if (s.begin > covered) {
      if (previous == nullptr)
        fail_file(reader_name, file,
                  "hole in the data section: bytes [0, {}) before tensor '{}' belong to no tensor (safetensors "
                  "requires the tensors to be contiguous)",
                  s.begin, *s.name);
      fail_file(reader_name, file,
                "hole in the data section: bytes [{}, {}) between tensors '{}' and '{}' belong to no tensor "
                "(safetensors requires the tensors to be contiguous)",
                covered, s.begin, *previous, *s.name);
    }
    covered = s.end;
    previous = s.name;
    previous_begin = s.begin;
  }
  if (covered != data_size)
    fail_file(reader_name, file,
              "the data section has {} bytes but the tensors end at byte {}: the trailing {} bytes belong to no tensor",
              data_size, covered, data_size - covered);

  const auto by_offset = [](const auto& a, const auto& b) {
    return std::tie(a.offset, a.size_bytes, a.name) < std::tie(b.offset, b.size_bytes, b.name);
  };
  std::sort(out.entries.begin(), out.entries.end(), by_offset);
  std::sort(out.buffers.begin(), out.buffers.end(), by_offset);
  return out;
}

}  // namespace detail

/// Reads a safetensors file: checks it completely on construction, then reads tensors on request.
///
/// Memory: the constructor reads only the 8-byte prefix and the header; each read_* call reads that
/// tensor's bytes once, straight into the returned buffer when no conversion is needed (F32 as float,
/// F64 as double) and through a bounded 1 MiB staging buffer otherwise. The reader holds no tensor data,
/// opens the file per call, and is safe to use from several threads at once. If the file changes size
/// after construction, reads fail with an io_error rather than return other bytes.
///
/// Example:
///   glassbox::io::safetensors_reader weights("model.safetensors");
///   auto wte = weights.read<2>("wte.weight");                 // xt::xtensor<float, 2>
///   for (const auto& e : weights.entries()) fmt::print("{} {}\n", e.name, to_string(e.type));
///
/// A class template only so that its JSON and formatting code is compiled where it is used
/// (docs/building.md, "Include cost"); write safetensors_reader.
template <class = void>
class basic_safetensors_reader {
 public:
  /// Opens `file` and checks its header and layout; io_error naming the file and the problem if malformed.
  explicit basic_safetensors_reader(const std::filesystem::path& file) : file_(file) {
    constexpr auto name = detail::reader_name;
    file_size_ = glassbox::detail::regular_file_size(file_, name);
    if (file_size_ == 0) detail::fail_file(name, file_, "file is empty (0 bytes; a safetensors file has at least 8)");
    if (file_size_ < 8)
      detail::fail_file(name, file_, "file is {} bytes, too short for the 8-byte header length", file_size_);
    auto in = glassbox::detail::open_for_reading(file_, name);
    unsigned char prefix[8];
    glassbox::detail::read_exactly(in, reinterpret_cast<char*>(prefix), 8, file_, name, "the header length");
    header_size_ = glassbox::detail::load_le<std::uint64_t>(prefix);
    if (header_size_ > max_header_size)
      detail::fail_file(name, file_, "header length must be at most {} bytes, got {}", max_header_size, header_size_);
    if (header_size_ > file_size_ - 8)
      detail::fail_file(name, file_, "header length {} exceeds the {} bytes after the length prefix", header_size_,
                        file_size_ - 8);
    std::string header(static_cast<std::size_t>(header_size_), '\0');
    glassbox::detail::read_exactly(in, header.data(), header.size(), file_, name, "the header");
    auto parsed = detail::parse_header(header, file_size_ - 8 - header_size_, file_);
    entries_ = std::move(parsed.entries);
    buffers_ = std::move(parsed.buffers);
    metadata_ = std::move(parsed.metadata);
    for (std::size_t i = 0; i < entries_.size(); ++i) index_.emplace(entries_[i].name, location{true, i});
    for (std::size_t i = 0; i < buffers_.size(); ++i) index_.emplace(buffers_[i].name, location{false, i});
  }

  /// The file this reader reads.
  const std::filesystem::path& path() const { return file_; }
  /// The floating-point tensors (F64, F32, F16, BF16), in data-offset order.
  const std::vector<tensor_entry>& entries() const { return entries_; }
  /// The tensors of other dtypes (BOOL, integers, F8, C64), in data-offset order; read them with read_bytes.
  const std::vector<buffer_entry>& other_entries() const { return buffers_; }
  /// The __metadata__ strings; empty if the file has none.
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  /// The size of the file in bytes when it was opened.
  std::uint64_t file_size() const { return file_size_; }
  /// The length N of the JSON header; the data section starts at byte 8 + N.
  std::uint64_t header_size() const { return header_size_; }

  /// Whether the file holds a tensor of this name, whatever its dtype.
  bool contains(std::string_view name) const { return index_.find(name) != index_.end(); }

  /// The floating-point tensor `name`; io_error naming the file and the tensor if it is absent or of another dtype.
  const tensor_entry& entry(std::string_view name) const {
    const auto it = index_.find(name);
    if (it == index_.end()) detail::fail_file(detail::reader_name, file_, "no tensor named '{}'", name);
    if (!it->second.floating) {
      const auto& b = buffers_[it->second.index];
      detail::fail_file(detail::reader_name, file_,
                        "tensor '{}' has dtype {}, which is not read as floating point (F64, F32, F16 and BF16 are); "
                        "read_bytes gives its raw bytes",
                        name, b.type);
    }
    return entries_[it->second.index];
  }

  /// The elements of tensor `name` converted to float (F64 rounded to nearest-even; overflow gives +-inf).
  std::vector<float> read_floats(std::string_view name) const {
    const auto& e = entry(name);
    std::vector<float> out(e.element_count());
    read_converted(e, out.data());
    return out;
  }

  /// The elements of tensor `name` converted to double (exact for every dtype).
  std::vector<double> read_doubles(std::string_view name) const {
    const auto& e = entry(name);
    std::vector<double> out(e.element_count());
    read_converted(e, out.data());
    return out;
  }

  /// Reads tensor `name` as float into `out`, which must hold exactly its element count (shape_error if not).
  void read_into(std::string_view name, std::span<float> out) const { read_checked(entry(name), out); }
  /// Reads tensor `name` as double into `out`, which must hold exactly its element count (shape_error if not).
  void read_into(std::string_view name, std::span<double> out) const { read_checked(entry(name), out); }

  /// Tensor `name` as a rank-N float tensor; shape_error naming the file and tensor if its rank is not N.
  template <std::size_t N>
  xt::xtensor<float, N> read(std::string_view name) const {
    const auto& e = entry(name);
    if (e.shape.size() != N)
      glassbox::detail::fail<shape_error>("{}: '{}': tensor '{}' has rank {} (shape {}), expected rank {}",
                                          detail::reader_name, file_.string(), name, e.shape.size(),
                                          detail::shape_text(e.shape), N);
    std::array<std::size_t, N> shape{};
    // (For N = 0, GCC 12 under -fsanitize=thread warns of a copy into the empty array's null data().)
    if constexpr (N > 0) std::copy(e.shape.begin(), e.shape.end(), shape.begin());
    auto out = xt::xtensor<float, N>::from_shape(shape);
    read_converted(e, out.data());
    return out;
  }

  /// The raw bytes of tensor `name` (any dtype) as stored: little-endian, row-major.
  std::vector<std::byte> read_bytes(std::string_view name) const {
    const auto it = index_.find(name);
    if (it == index_.end()) detail::fail_file(detail::reader_name, file_, "no tensor named '{}'", name);
    const auto [offset, size] =
        it->second.floating ? std::pair{entries_[it->second.index].offset, entries_[it->second.index].size_bytes}
                            : std::pair{buffers_[it->second.index].offset, buffers_[it->second.index].size_bytes};
    std::vector<std::byte> out(size);
    if (size == 0) return out;
    auto in = open_at(offset);
    glassbox::detail::read_exactly(in, reinterpret_cast<char*>(out.data()), size, file_, detail::reader_name,
                                   fmt::format("tensor '{}'", name));
    return out;
  }

 private:
  struct location {
    bool floating;      // in entries_ (else buffers_)
    std::size_t index;  // position there
  };

  template <class T>
  void read_checked(const tensor_entry& e, std::span<T> out) const {
    glassbox::detail::require<shape_error>(
        out.size() == e.element_count(), "{}: '{}': tensor '{}' has {} elements (shape {}), the output holds {}",
        detail::reader_name, file_.string(), e.name, e.element_count(), detail::shape_text(e.shape), out.size());
    read_converted(e, out.data());
  }

  // A stream positioned at `offset` in the data section, after checking the file has not changed size.
  std::ifstream open_at(std::size_t offset) const {
    const auto size = glassbox::detail::regular_file_size(file_, detail::reader_name);
    if (size != file_size_)
      detail::fail_file(detail::reader_name, file_, "file changed since it was opened: it had {} bytes, now {}",
                        file_size_, size);
    auto in = glassbox::detail::open_for_reading(file_, detail::reader_name);
    in.seekg(static_cast<std::streamoff>(8 + header_size_ + offset));
    if (!in) detail::fail_file(detail::reader_name, file_, "cannot seek to byte {}", 8 + header_size_ + offset);
    return in;
  }

  // Reads the elements of `e` into out[0 .. count), converting to T (float or double).
  template <class T>
  void read_converted(const tensor_entry& e, T* out) const {
    if (e.size_bytes == 0) return;
    auto in = open_at(e.offset);
    const auto what = [&] { return fmt::format("tensor '{}'", e.name); };
    constexpr bool same_as_file_f32 = std::is_same_v<T, float>;
    if ((same_as_file_f32 && e.type == dtype::f32) || (!same_as_file_f32 && e.type == dtype::f64)) {
      // Same representation: read straight into the output.
      glassbox::detail::read_exactly(in, reinterpret_cast<char*>(out), e.size_bytes, file_, detail::reader_name,
                                     what());
      if constexpr (std::endian::native == std::endian::big)
        glassbox::detail::reverse_element_bytes(out, e.element_count());
      return;
    }
    const std::size_t element = size_of(e.type);
    const std::size_t chunk = std::min<std::size_t>(e.size_bytes, std::size_t{1} << 20);  // a multiple of 8
    std::vector<unsigned char> staging(chunk);
    std::size_t done = 0;
    while (done < e.size_bytes) {
      const std::size_t n = std::min(chunk, e.size_bytes - done);
      glassbox::detail::read_exactly(in, reinterpret_cast<char*>(staging.data()), n, file_, detail::reader_name,
                                     what());
      decode(e.type, staging.data(), n / element, out + done / element);
      done += n;
    }
  }

  template <class T>
  static void decode(dtype type, const unsigned char* bytes, std::size_t count, T* out) {
    using glassbox::detail::load_le;
    switch (type) {
      case dtype::f64:
        for (std::size_t i = 0; i < count; ++i) {
          const auto x = std::bit_cast<double>(load_le<std::uint64_t>(bytes + 8 * i));
          if constexpr (std::is_same_v<T, float>) {
            out[i] = glassbox::detail::double_to_float(x);
          } else {
            out[i] = x;
          }
        }
        break;
      case dtype::f32:
        for (std::size_t i = 0; i < count; ++i) out[i] = std::bit_cast<float>(load_le<std::uint32_t>(bytes + 4 * i));
        break;
      case dtype::f16:
        for (std::size_t i = 0; i < count; ++i)
          out[i] = glassbox::detail::half_to_float(load_le<std::uint16_t>(bytes + 2 * i));
        break;
      case dtype::bf16:
        for (std::size_t i = 0; i < count; ++i)
          out[i] = glassbox::detail::bfloat16_to_float(load_le<std::uint16_t>(bytes + 2 * i));
        break;
    }
  }

  std::filesystem::path file_;
  std::uint64_t file_size_ = 0;
  std::uint64_t header_size_ = 0;
  std::vector<tensor_entry> entries_;
  std::vector<buffer_entry> buffers_;
  std::map<std::string, std::string> metadata_;
  std::map<std::string, location, std::less<>> index_;
};

/// The safetensors reader (basic_safetensors_reader's only instantiation).
using safetensors_reader = basic_safetensors_reader<>;

/// One tensor to write: its name, the dtype to store, its shape, and its elements (row-major), which are
/// converted to `type` (round to nearest, ties to even; see docs/io.md).
struct tensor_to_write {
  std::string name;                                                    ///< key in the header
  dtype type = dtype::f32;                                             ///< dtype in the file
  std::vector<std::size_t> shape;                                      ///< dimensions; empty for a scalar
  std::variant<std::span<const float>, std::span<const double>> data;  ///< product(shape) elements
};

namespace detail {

inline constexpr std::string_view writer_name = "glassbox::io::write_safetensors";

/// The reference writer's order: descending dtype alignment (F64, F32, BF16, F16), then name (bytewise).
template <class = void>
inline int alignment_rank(dtype type) {
  switch (type) {
    case dtype::f64:
      return 3;
    case dtype::f32:
      return 2;
    case dtype::bf16:
      return 1;
    case dtype::f16:
      return 0;
  }
  return 0;
}

/// A JSON string literal for `text`; error if it is not valid UTF-8.
template <class = void>
inline std::string json_string(const std::string& text, std::string_view what) {
  try {
    return nlohmann::json(text).dump();
  } catch (const nlohmann::json::exception& e) {
    glassbox::detail::fail<error>("{}: {} must be valid UTF-8: {}", writer_name, what, e.what());
  }
}

/// Writes the elements of `t` converted to its dtype.
template <class = void>
inline void write_tensor_data(std::ofstream& out, const tensor_to_write& t) {
  std::visit(
      [&](auto values) {
        using source = typename decltype(values)::element_type;
        using std::is_same_v;
        if constexpr (std::endian::native == std::endian::little) {
          if ((is_same_v<source, const float> && t.type == dtype::f32) ||
              (is_same_v<source, const double> && t.type == dtype::f64)) {
            out.write(reinterpret_cast<const char*>(values.data()), static_cast<std::streamsize>(values.size_bytes()));
            return;
          }
        }
        const std::size_t element = size_of(t.type);
        constexpr std::size_t chunk_elements = std::size_t{1} << 17;
        std::vector<unsigned char> staging(std::min(values.size(), chunk_elements) * element);
        for (std::size_t start = 0; start < values.size(); start += chunk_elements) {
          const std::size_t n = std::min(chunk_elements, values.size() - start);
          unsigned char* p = staging.data();
          for (std::size_t i = 0; i < n; ++i, p += element) {
            const auto x = values[start + i];
            using glassbox::detail::store_le;
            switch (t.type) {
              case dtype::f64:
                store_le(std::bit_cast<std::uint64_t>(static_cast<double>(x)), p);
                break;
              case dtype::f32:
                if constexpr (is_same_v<source, const float>) {
                  store_le(std::bit_cast<std::uint32_t>(x), p);
                } else {
                  store_le(std::bit_cast<std::uint32_t>(glassbox::detail::double_to_float(x)), p);
                }
                break;
              case dtype::f16:
                store_le(glassbox::detail::double_to_half_bits(static_cast<double>(x)), p);
                break;
              case dtype::bf16:
                if constexpr (is_same_v<source, const float>) {
                  store_le(glassbox::detail::float_to_bfloat16_bits(x), p);
                } else {
                  store_le(glassbox::detail::double_to_bfloat16_bits(x), p);
                }
                break;
            }
          }
          out.write(reinterpret_cast<const char*>(staging.data()), static_cast<std::streamsize>(n * element));
        }
      },
      t.data);
}

}  // namespace detail

/// Writes `tensors` and `metadata` to a safetensors file laid out as the reference writer does: tensors sorted
/// by descending dtype alignment (F64, F32, BF16, F16) then by name, contiguous from offset 0, compact JSON
/// header with "__metadata__" first (omitted when empty), padded with spaces to a multiple of 8 bytes.
/// The file is written to "<file>.partial" and renamed into place, so a failure leaves no partial file.
/// Errors: glassbox::error for an empty, repeated or reserved ("__metadata__") name or text that is not UTF-8;
/// shape_error when a tensor's data does not hold product(shape) elements; io_error when the file cannot be written.
///
/// Example:
///   std::vector<float> w(6, 0.5f);
///   glassbox::io::tensor_to_write t{"w", glassbox::io::dtype::f16, {2, 3}, std::span<const float>(w)};
///   glassbox::io::write_safetensors("w.safetensors", std::span(&t, 1), {{"format", "pt"}});
template <class = void>
inline void write_safetensors(const std::filesystem::path& file, std::span<const tensor_to_write> tensors,
                              const std::map<std::string, std::string>& metadata = {}) {
  constexpr auto function = detail::writer_name;
  std::set<std::string_view> names;
  std::vector<std::size_t> bytes(tensors.size());
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const auto& t = tensors[i];
    glassbox::detail::require(!t.name.empty(), "{}: tensor {} must have a name, got an empty one", function, i);
    glassbox::detail::require(t.name != "__metadata__", "{}: '__metadata__' is reserved and cannot name a tensor",
                              function);
    glassbox::detail::require(names.insert(t.name).second, "{}: tensor names must be unique, got '{}' twice", function,
                              t.name);
    std::optional<std::size_t> count = 1;
    for (const auto d : t.shape) {
      count = detail::checked_multiply(*count, d);
      if (!count)
        glassbox::detail::fail<shape_error>("{}: tensor '{}': the element count of shape {} overflows", function,
                                            t.name, detail::shape_text(t.shape));
    }
    const std::size_t values = std::visit([](auto s) { return s.size(); }, t.data);
    glassbox::detail::require<shape_error>(values == *count,
                                           "{}: tensor '{}' has shape {} ({} elements) but {} values were given",
                                           function, t.name, detail::shape_text(t.shape), *count, values);
    const auto size = detail::checked_multiply(*count, size_of(t.type));
    if (!size) glassbox::detail::fail<shape_error>("{}: tensor '{}': the byte size overflows", function, t.name);
    bytes[i] = *size;
  }

  std::vector<std::size_t> order(tensors.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    const int ra = detail::alignment_rank(tensors[a].type), rb = detail::alignment_rank(tensors[b].type);
    if (ra != rb) return ra > rb;
    return tensors[a].name < tensors[b].name;
  });

  // The header in serde_json's compact form, which the reference writer produces.
  std::string header = "{";
  bool first = true;
  if (!metadata.empty()) {
    header += "\"__metadata__\":{";
    for (const auto& [key, value] : metadata) {
      if (!first) header += ',';
      first = false;
      header += detail::json_string(key, "metadata keys");
      header += ':';
      header += detail::json_string(value, "metadata values");
    }
    header += '}';
  }
  std::size_t offset = 0;
  for (const auto i : order) {
    const auto& t = tensors[i];
    if (!header.empty() && header.back() != '{') header += ',';
    header += detail::json_string(t.name, "tensor names");
    header += fmt::format(":{{\"dtype\":\"{}\",\"shape\":[{}],\"data_offsets\":[{},{}]}}", to_string(t.type),
                          fmt::join(t.shape, ","), offset, offset + bytes[i]);
    glassbox::detail::require<shape_error>(bytes[i] <= std::numeric_limits<std::size_t>::max() - offset,
                                           "{}: the total size of the tensors overflows", function);
    offset += bytes[i];
  }
  header += '}';
  header.append((8 - header.size() % 8) % 8, ' ');
  glassbox::detail::require<shape_error>(header.size() <= max_header_size,
                                         "{}: the header would be {} bytes, more than the limit of {}", function,
                                         header.size(), max_header_size);

  glassbox::detail::write_file_atomically(file, function, [&](std::ofstream& out) {
    unsigned char prefix[8];
    glassbox::detail::store_le<std::uint64_t>(header.size(), prefix);
    out.write(reinterpret_cast<const char*>(prefix), 8);
    out.write(header.data(), static_cast<std::streamsize>(header.size()));
    for (const auto i : order) detail::write_tensor_data(out, tensors[i]);
  });
}

}  // namespace glassbox::io

// Tests of the io layer: safetensors reading and writing, dtype conversions, header validation,
// vocabularies and the whitespace tokenizer.
//
// Expected values are computed here independently of the library: half and bfloat16 values from the
// IEEE field definitions with std::ldexp, rounding by exhaustive search over every representable value,
// float rounding by the compiler's own double -> float conversion, and malformed files written byte by byte.
#include "glassbox/io.hpp"

#include <bit>
#include <catch2/catch.hpp>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "test_support.hpp"

namespace {

namespace fs = std::filesystem;
namespace io = glassbox::io;
using glassbox::test::what_contains;

// A fresh directory for one test case, removed with everything in it afterwards.
class temp_dir {
 public:
  temp_dir() {
    std::random_device device;
    const auto tag = (static_cast<std::uint64_t>(device()) << 32) ^ device();
    path_ = fs::temp_directory_path() / ("glassbox_io_test_" + std::to_string(tag));
    fs::create_directories(path_);
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  ~temp_dir() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  fs::path operator/(const std::string& name) const { return path_ / name; }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

void write_bytes(const fs::path& file, const std::string& bytes) {
  std::ofstream out(file, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  REQUIRE(out.good());
}

std::string read_file_bytes(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// `count` bytes of the little-endian representation of `value`.
std::string le_bytes(std::uint64_t value, int count) {
  std::string out;
  for (int i = 0; i < count; ++i) out += static_cast<char>((value >> (8 * i)) & 0xFF);
  return out;
}

std::string le64(std::uint64_t n) { return le_bytes(n, 8); }

// A safetensors file: the 8-byte length of `header`, the header, the data.
std::string safetensors_bytes(const std::string& header, const std::string& data = "") {
  return le64(header.size()) + header + data;
}

// One header entry, e.g. entry("a", "F32", "[2]", "[0,8]").
std::string entry(const std::string& name, const std::string& type, const std::string& shape,
                  const std::string& offsets) {
  return "\"" + name + "\":{\"dtype\":\"" + type + "\",\"shape\":" + shape + ",\"data_offsets\":" + offsets + "}";
}

// A JSON object around `members` (built by appending: GCC 12 warns falsely on "{" + std::string).
std::string object(const std::string& members) {
  std::string out;
  out += '{';
  out += members;
  out += '}';
  return out;
}

// The value of a binary16 pattern from the IEEE 754 field definitions.
double half_value(std::uint16_t bits) {
  const double sign = (bits & 0x8000) != 0 ? -1.0 : 1.0;
  const int exponent = (bits >> 10) & 0x1F;
  const int mantissa = bits & 0x3FF;
  if (exponent == 31) return mantissa != 0 ? std::numeric_limits<double>::quiet_NaN() : sign * INFINITY;
  if (exponent == 0) return sign * std::ldexp(mantissa, -24);
  return sign * std::ldexp(1024 + mantissa, exponent - 25);
}

// The value of a bfloat16 pattern from the field definitions (8 exponent bits, bias 127, 7 mantissa bits).
double bfloat16_value(std::uint16_t bits) {
  const double sign = (bits & 0x8000) != 0 ? -1.0 : 1.0;
  const int exponent = (bits >> 7) & 0xFF;
  const int mantissa = bits & 0x7F;
  if (exponent == 255) return mantissa != 0 ? std::numeric_limits<double>::quiet_NaN() : sign * INFINITY;
  if (exponent == 0) return sign * std::ldexp(mantissa, -133);
  return sign * std::ldexp(128 + mantissa, exponent - 134);
}

// Rounding to a 16-bit format by exhaustive search: the non-negative patterns 0 .. infinity_bits in order,
// with infinity standing for the next power of two (IEEE 754 rounds as if the exponent were unbounded and
// then overflows to infinity). Picks the nearest value, and on a tie the pattern with an even mantissa.
class nearest_search {
 public:
  nearest_search(double (*value_of)(std::uint16_t), std::uint16_t infinity_bits, double infinity_as)
      : infinity_bits_(infinity_bits) {
    for (std::uint32_t b = 0; b < infinity_bits; ++b) values_.push_back(value_of(static_cast<std::uint16_t>(b)));
    values_.push_back(infinity_as);
  }

  std::uint16_t operator()(double x) const {
    const std::uint16_t sign = std::signbit(x) ? 0x8000 : 0;
    const double a = std::fabs(x);
    if (a >= values_.back()) return sign | infinity_bits_;
    std::size_t best = 0;
    for (std::size_t b = 1; b < values_.size(); ++b) {
      const double d = std::fabs(values_[b] - a), best_d = std::fabs(values_[best] - a);
      if (d < best_d || (d == best_d && b % 2 == 0)) best = b;
    }
    return static_cast<std::uint16_t>(sign | best);
  }

  // The exact midpoint between pattern b and b + 1 (both positive and finite).
  double midpoint(std::size_t b) const { return (values_[b] + values_[b + 1]) / 2; }
  std::size_t finite_patterns() const { return values_.size() - 1; }

 private:
  std::vector<double> values_;
  std::uint16_t infinity_bits_;
};

// Writes `values` as one tensor of `type` and returns the stored 16- or 32-bit patterns.
template <class T>
std::vector<std::uint64_t> written_patterns(const temp_dir& dir, io::dtype type, const std::vector<T>& values) {
  const auto file = dir / "patterns.safetensors";
  const io::tensor_to_write t{"x", type, {values.size()}, std::span<const T>(values)};
  io::write_safetensors(file, std::span(&t, 1));
  const io::safetensors_reader reader(file);
  const auto bytes = reader.read_bytes("x");
  const std::size_t width = io::size_of(type);
  REQUIRE(bytes.size() == values.size() * width);
  std::vector<std::uint64_t> out(values.size());
  for (std::size_t i = 0; i < values.size(); ++i)
    for (std::size_t k = 0; k < width; ++k)
      out[i] |= static_cast<std::uint64_t>(std::to_integer<unsigned>(bytes[i * width + k])) << (8 * k);
  return out;
}

// Doubles spread over [2^low, 2^high) with random 52-bit mantissas and signs, from a fixed seed.
std::vector<double> random_doubles(int low, int high, std::size_t count, std::uint64_t seed) {
  std::mt19937_64 g(seed);
  std::uniform_int_distribution<int> exponent(low, high - 1);
  std::vector<double> out;
  for (std::size_t i = 0; i < count; ++i) {
    const double mantissa = 1.0 + static_cast<double>(g() >> 12) * 0x1p-52;
    out.push_back(((g() & 1) != 0 ? -1.0 : 1.0) * std::ldexp(mantissa, exponent(g)));
  }
  return out;
}

}  // namespace

TEST_CASE("dtype names, sizes and parsing", "[io]") {
  using io::dtype;
  CHECK(io::to_string(dtype::f64) == "F64");
  CHECK(io::to_string(dtype::f32) == "F32");
  CHECK(io::to_string(dtype::f16) == "F16");
  CHECK(io::to_string(dtype::bf16) == "BF16");
  CHECK(io::size_of(dtype::f64) == 8);
  CHECK(io::size_of(dtype::f32) == 4);
  CHECK(io::size_of(dtype::f16) == 2);
  CHECK(io::size_of(dtype::bf16) == 2);
  for (const auto t : {dtype::f64, dtype::f32, dtype::f16, dtype::bf16})
    CHECK(io::dtype_from_string(io::to_string(t)) == t);
  CHECK_FALSE(io::dtype_from_string("I64").has_value());
  CHECK_FALSE(io::dtype_from_string("f32").has_value());
}

TEST_CASE("every F16 and BF16 bit pattern reads as its IEEE value and writes back to itself", "[io]") {
  temp_dir dir;
  struct format {
    const char* name;
    io::dtype type;
    double (*value_of)(std::uint16_t);
    std::uint16_t quiet_nan;
  };
  for (const auto& f :
       {format{"F16", io::dtype::f16, half_value, 0x7E00}, format{"BF16", io::dtype::bf16, bfloat16_value, 0x7FC0}}) {
    CAPTURE(f.name);
    std::string data;
    for (std::uint32_t b = 0; b < 65536; ++b) data += le_bytes(b, 2);
    const auto file = dir / (std::string(f.name) + "_all.safetensors");
    write_bytes(file, safetensors_bytes(object(entry("all", f.name, "[65536]", "[0,131072]")), data));

    const io::safetensors_reader reader(file);
    const auto floats = reader.read_floats("all");
    const auto doubles = reader.read_doubles("all");
    REQUIRE(floats.size() == 65536);
    std::size_t mismatches = 0;
    for (std::uint32_t b = 0; b < 65536; ++b) {
      const double expected = f.value_of(static_cast<std::uint16_t>(b));
      const bool same = std::isnan(expected)
                            ? std::isnan(floats[b]) && std::isnan(doubles[b])
                            : floats[b] == expected && doubles[b] == expected;  // exact: every value is a float
      const bool sign_kept = std::signbit(floats[b]) == ((b & 0x8000) != 0);    // also -0 and negative NaN
      if (!same || !sign_kept) ++mismatches;
    }
    CHECK(mismatches == 0);

    // Writing the decoded floats back gives the same patterns; NaNs become the quiet NaN with their sign.
    const auto patterns = written_patterns(dir, f.type, floats);
    const auto patterns_from_doubles = written_patterns(dir, f.type, doubles);
    std::size_t changed = 0;
    for (std::uint32_t b = 0; b < 65536; ++b) {
      const std::uint64_t expected =
          std::isnan(floats[b]) ? static_cast<std::uint64_t>((b & 0x8000) | f.quiet_nan) : std::uint64_t{b};
      if (patterns[b] != expected || patterns_from_doubles[b] != expected) ++changed;
    }
    CHECK(changed == 0);
  }
}

TEST_CASE("F16 writing rounds to nearest, ties to even, as an exhaustive search does", "[io]") {
  temp_dir dir;
  const nearest_search search(half_value, 0x7C00, 65536.0);
  // Chosen values, with the pattern IEEE 754 gives (derivations in the comments).
  const std::vector<std::pair<double, std::uint16_t>> chosen = {
      {1.0, 0x3C00},
      {65504.0, 0x7BFF},   // the largest finite half
      {65519.99, 0x7BFF},  // just below the midpoint to 65536
      {65520.0, 0x7C00},   // the midpoint: ties to the even pattern, infinity
      {1e6, 0x7C00},       // overflow
      {-1e6, 0xFC00},
      {0x1p-24, 0x0001},                // the smallest subnormal
      {1023 * 0x1p-24, 0x03FF},         // the largest subnormal
      {0x1p-14, 0x0400},                // the smallest normal
      {0x1p-25, 0x0000},                // half the smallest subnormal: tie to even, zero
      {3 * 0x1p-25, 0x0002},            // 1.5 subnormal steps: tie to even, 2
      {0x1p-25 + 0x1p-60, 0x0001},      // just above the tie
      {1 + 0x1p-11, 0x3C00},            // tie between 1 and 1 + 2^-10: even mantissa 0
      {1 + 3 * 0x1p-11, 0x3C02},        // tie between mantissas 1 and 2: even 2
      {1 + 0x1p-11 + 0x1p-40, 0x3C01},  // above the tie only beyond float precision: no double rounding
      {1.0 / 3.0, 0x3555},
      {-2.5, 0xC100},
      {-0.0, 0x8000},
      {INFINITY, 0x7C00},
      {-INFINITY, 0xFC00},
      {std::numeric_limits<double>::quiet_NaN(), 0x7E00},
      {-std::numeric_limits<double>::quiet_NaN(), 0xFE00},
  };
  std::vector<double> values;
  for (const auto& [x, bits] : chosen) {
    values.push_back(x);
    if (!std::isnan(x)) CHECK(search(x) == bits);  // the search agrees with the hand derivations
  }
  const auto written = written_patterns(dir, io::dtype::f16, values);
  for (std::size_t i = 0; i < chosen.size(); ++i) {
    CAPTURE(chosen[i].first);
    CHECK(written[i] == chosen[i].second);
  }

  // Random values from deep underflow to overflow, and exact midpoints between neighbouring halves.
  auto many = random_doubles(-30, 18, 400, 20240601);
  for (std::size_t b = 0; b + 1 < search.finite_patterns(); b += 97) many.push_back(search.midpoint(b));
  const auto from_doubles = written_patterns(dir, io::dtype::f16, many);
  std::size_t wrong = 0;
  for (std::size_t i = 0; i < many.size(); ++i)
    if (from_doubles[i] != search(many[i])) ++wrong;
  CHECK(wrong == 0);

  // From float sources: the float value is what is rounded.
  std::vector<float> floats;
  for (const double x : many) floats.push_back(static_cast<float>(x));
  const auto from_floats = written_patterns(dir, io::dtype::f16, floats);
  wrong = 0;
  for (std::size_t i = 0; i < floats.size(); ++i)
    if (from_floats[i] != search(floats[i])) ++wrong;
  CHECK(wrong == 0);
}

TEST_CASE("BF16 writing rounds to nearest, ties to even, as an exhaustive search does", "[io]") {
  temp_dir dir;
  const nearest_search search(bfloat16_value, 0x7F80, 0x1p128);
  const std::vector<std::pair<double, std::uint16_t>> chosen = {
      {1.0, 0x3F80},
      {1 + 0x1p-8, 0x3F80},              // tie between 1 and 1 + 2^-7: even mantissa 0
      {1 + 3 * 0x1p-8, 0x3F82},          // tie between mantissas 1 and 2: even 2
      {1 + 0x1p-8 + 0x1p-30, 0x3F81},    // above the tie only beyond float precision
      {(2 - 0x1p-7) * 0x1p127, 0x7F7F},  // the largest finite bfloat16
      {(2 - 0x1p-8) * 0x1p127, 0x7F80},  // the midpoint to 2^128: ties to even, infinity
      {FLT_MAX, 0x7F80},                 // rounds up past the largest finite bfloat16
      {0x1p-133, 0x0001},                // the smallest subnormal
      {0x1p-134, 0x0000},                // half of it: tie to even, zero
      {3 * 0x1p-134, 0x0002},            // tie to even, 2
      {0x1p-126, 0x0080},                // the smallest normal
      {-3.140625, 0xC049},
      {-0.0, 0x8000},
      {INFINITY, 0x7F80},
      {-INFINITY, 0xFF80},
      {std::numeric_limits<double>::quiet_NaN(), 0x7FC0},
  };
  std::vector<double> values;
  for (const auto& [x, bits] : chosen) {
    values.push_back(x);
    if (!std::isnan(x)) CHECK(search(x) == bits);
  }
  const auto written = written_patterns(dir, io::dtype::bf16, values);
  for (std::size_t i = 0; i < chosen.size(); ++i) {
    CAPTURE(chosen[i].first);
    CHECK(written[i] == chosen[i].second);
  }

  auto many = random_doubles(-140, 129, 400, 20240602);
  for (std::size_t b = 0; b + 1 < search.finite_patterns(); b += 101) many.push_back(search.midpoint(b));
  const auto from_doubles = written_patterns(dir, io::dtype::bf16, many);
  std::size_t wrong = 0;
  for (std::size_t i = 0; i < many.size(); ++i)
    if (from_doubles[i] != search(many[i])) ++wrong;
  CHECK(wrong == 0);

  // Float sources go through the integer rounding of the float's bits; the search is the reference.
  std::vector<float> floats;
  for (const double x : many)
    if (std::fabs(x) <= FLT_MAX) floats.push_back(static_cast<float>(x));
  floats.push_back(FLT_MAX);
  floats.push_back(-FLT_MAX);
  floats.push_back(std::numeric_limits<float>::denorm_min());
  const auto from_floats = written_patterns(dir, io::dtype::bf16, floats);
  wrong = 0;
  for (std::size_t i = 0; i < floats.size(); ++i)
    if (from_floats[i] != search(floats[i])) ++wrong;
  CHECK(wrong == 0);
}

TEST_CASE("F32 and F64 writing: doubles round to the nearest float, floats and F64 are exact", "[io]") {
  temp_dir dir;
  const auto bits = [](float f) { return std::uint64_t{std::bit_cast<std::uint32_t>(f)}; };
  const std::vector<std::pair<double, std::uint64_t>> chosen = {
      {1 + 0x1p-24, 0x3F800000},      // tie between 1 and 1 + 2^-23: even, 1
      {1 + 3 * 0x1p-24, 0x3F800002},  // tie: even mantissa 2
      {0x1p-149, 0x00000001},         // the smallest subnormal float
      {0x1p-150, 0x00000000},         // half of it: tie to even, zero
      {3 * 0x1p-150, 0x00000002},     // tie to even, 2
      {FLT_MAX, 0x7F7FFFFF},
      {(2 - 0x1p-24) * 0x1p127, 0x7F800000},  // the midpoint above FLT_MAX: ties to even, infinity
      {DBL_MAX, 0x7F800000},                  // overflow
      {-DBL_MAX, 0xFF800000},
      {1e-300, 0x00000000},  // underflow
      {-0.0, 0x80000000},
      {std::numeric_limits<double>::quiet_NaN(), 0x7FC00000},
  };
  std::vector<double> values;
  for (const auto& [x, b] : chosen) values.push_back(x);
  const auto written = written_patterns(dir, io::dtype::f32, values);
  for (std::size_t i = 0; i < chosen.size(); ++i) {
    CAPTURE(chosen[i].first);
    CHECK(written[i] == chosen[i].second);
  }

  // In the float range, the compiler's double -> float conversion (round to nearest even) is the reference.
  const auto many = random_doubles(-155, 128, 2000, 20240603);
  const auto from_doubles = written_patterns(dir, io::dtype::f32, many);
  std::size_t wrong = 0;
  for (std::size_t i = 0; i < many.size(); ++i)
    if (from_doubles[i] != bits(static_cast<float>(many[i]))) ++wrong;
  CHECK(wrong == 0);

  // Reading F64 as float rounds the same way; reading it as double is exact.
  const auto file = dir / "f64.safetensors";
  const io::tensor_to_write t{"x", io::dtype::f64, {many.size()}, std::span<const double>(many)};
  io::write_safetensors(file, std::span(&t, 1));
  const io::safetensors_reader reader(file);
  CHECK(reader.read_doubles("x") == many);
  const auto as_floats = reader.read_floats("x");
  wrong = 0;
  for (std::size_t i = 0; i < many.size(); ++i)
    if (bits(as_floats[i]) != bits(static_cast<float>(many[i]))) ++wrong;
  CHECK(wrong == 0);

  // Floats written as F32 or F64 come back bit for bit.
  std::vector<float> floats;
  for (const double x : many) floats.push_back(static_cast<float>(x));
  const io::tensor_to_write both[] = {{"f32", io::dtype::f32, {floats.size()}, std::span<const float>(floats)},
                                      {"f64", io::dtype::f64, {floats.size()}, std::span<const float>(floats)}};
  io::write_safetensors(file, both);
  const io::safetensors_reader again(file);
  CHECK(again.read_floats("f32") == floats);
  CHECK(again.read_floats("f64") == floats);
}

TEST_CASE("a file of several dtypes round trips with its metadata, laid out as the reference writer does", "[io]") {
  temp_dir dir;
  const auto file = dir / "model.safetensors";
  const std::vector<float> wte = {0.5f, -1.25f, 3.0f, 0.0f, 7.5f, -0.125f, 2.0f, 1.0f, -4.0f, 0.25f, 6.0f, -8.0f};
  const std::vector<double> ln_b = {0.1, -0.2, 1e-300, 12345.678901234567};
  const std::vector<float> h0_w = {1.5f, -2.0f, 0.0009765625f, 65504.0f};  // exact in F16
  const std::vector<double> h0_b = {-3.140625, 256.0};                     // exact in BF16
  const std::vector<float> scalar = {42.0f};
  const std::vector<float> none;
  const io::tensor_to_write tensors[] = {
      {"wte", io::dtype::f32, {3, 4}, std::span<const float>(wte)},
      {"h.0.w", io::dtype::f16, {2, 2}, std::span<const float>(h0_w)},
      {"ln.b", io::dtype::f64, {4}, std::span<const double>(ln_b)},
      {"h.0.b", io::dtype::bf16, {2}, std::span<const double>(h0_b)},
      {"scalar", io::dtype::f32, {}, std::span<const float>(scalar)},
      {"empty", io::dtype::f32, {0, 3}, std::span<const float>(none)},
  };
  const std::map<std::string, std::string> metadata = {
      {"format", "pt"}, {"note", "quotes \" backslash \\ newline \n tab \t unicode \xC3\xBC \xF0\x9F\x98\x80"}};
  io::write_safetensors(file, tensors, metadata);

  const io::safetensors_reader reader(file);
  CHECK(reader.path() == file);
  CHECK(reader.metadata() == metadata);
  CHECK(reader.other_entries().empty());

  // Reference order: descending alignment (F64, F32, BF16, F16), then by name; contiguous from 0.
  const std::vector<std::string> order = {"ln.b", "empty", "scalar", "wte", "h.0.b", "h.0.w"};
  REQUIRE(reader.entries().size() == order.size());
  std::size_t offset = 0;
  for (std::size_t i = 0; i < order.size(); ++i) {
    const auto& e = reader.entries()[i];
    CHECK(e.name == order[i]);
    CHECK(e.offset == offset);
    offset += e.size_bytes;
  }
  CHECK(reader.file_size() == 8 + reader.header_size() + offset);

  // The header: a multiple of 8 bytes, padded with spaces, starting with '{', __metadata__ first.
  const std::string bytes = read_file_bytes(file);
  CHECK(reader.header_size() % 8 == 0);
  const std::string header = bytes.substr(8, reader.header_size());
  CHECK(header.rfind("{\"__metadata__\":{\"format\":\"pt\",\"note\":", 0) == 0);
  const auto last_brace = header.find_last_of('}');
  CHECK(header.find_first_not_of(' ', last_brace + 1) == std::string::npos);
  CHECK(header.size() - last_brace - 1 < 8);
  const auto parsed = nlohmann::json::parse(header);
  CHECK(parsed["wte"]["dtype"] == "F32");
  CHECK(parsed["wte"]["shape"] == nlohmann::json({3, 4}));
  CHECK(parsed["h.0.w"]["dtype"] == "F16");
  CHECK(parsed["scalar"]["shape"] == nlohmann::json::array());

  const auto& w = reader.entry("wte");
  CHECK(w.type == io::dtype::f32);
  CHECK(w.shape == std::vector<std::size_t>{3, 4});
  CHECK(w.element_count() == 12);
  CHECK(w.size_bytes == 48);
  CHECK(reader.read_floats("wte") == wte);
  const auto wte2 = reader.read<2>("wte");
  REQUIRE(wte2.shape(0) == 3);
  REQUIRE(wte2.shape(1) == 4);
  CHECK(wte2(1, 2) == wte[6]);
  CHECK(reader.read_doubles("ln.b") == ln_b);
  CHECK(reader.read_floats("h.0.w") == h0_w);
  CHECK(reader.read<2>("h.0.w")(1, 1) == 65504.0f);
  CHECK(reader.read_doubles("h.0.b") == h0_b);
  CHECK(reader.entry("h.0.b").type == io::dtype::bf16);
  CHECK(reader.read<0>("scalar")() == 42.0f);
  CHECK(reader.read_floats("empty").empty());
  CHECK(reader.read<2>("empty").shape(0) == 0);

  std::vector<float> into(12);
  reader.read_into("wte", std::span<float>(into));
  CHECK(into == wte);

  CHECK(reader.contains("wte"));
  CHECK_FALSE(reader.contains("wpe"));
  REQUIRE_THROWS_MATCHES(reader.entry("wpe"), glassbox::io_error,
                         what_contains("model.safetensors") && what_contains("no tensor named 'wpe'"));
  REQUIRE_THROWS_MATCHES(
      reader.read<1>("wte"), glassbox::shape_error,
      what_contains("model.safetensors") && what_contains("tensor 'wte' has rank 2 (shape [3, 4]), expected rank 1"));
  std::vector<float> small(5);
  REQUIRE_THROWS_MATCHES(reader.read_into("wte", std::span<float>(small)), glassbox::shape_error,
                         what_contains("tensor 'wte' has 12 elements (shape [3, 4]), the output holds 5"));
}

TEST_CASE("the writer produces the reference implementation's bytes", "[io]") {
  temp_dir dir;
  const auto file = dir / "ref.safetensors";
  std::string floats;
  for (const float f : {0.0f, 1.0f, 2.0f, 3.0f, 4.0f, 5.0f}) floats += le_bytes(std::bit_cast<std::uint32_t>(f), 4);
  const std::vector<float> values = {0, 1, 2, 3, 4, 5};

  // A 64-byte header needs no padding.
  io::tensor_to_write t{"attn.0", io::dtype::f32, {1, 2, 3}, std::span<const float>(values)};
  io::write_safetensors(file, std::span(&t, 1));
  CHECK(read_file_bytes(file) ==
        le64(64) + R"({"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}})" + floats);

  // A 65-byte header is padded with 7 spaces to 72, so the data starts 8-byte aligned.
  t = {"attn0", io::dtype::f32, {1, 1, 2, 3}, std::span<const float>(values)};
  io::write_safetensors(file, std::span(&t, 1));
  CHECK(read_file_bytes(file) ==
        le64(72) + R"({"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}})" + "       " + floats);

  // No tensors: "{}" and 6 spaces; metadata alone.
  io::write_safetensors(file, {});
  CHECK(read_file_bytes(file) == le64(8) + "{}      ");
  io::write_safetensors(file, {}, {{"framework", "pt"}});
  CHECK(read_file_bytes(file) == le64(40) + R"({"__metadata__":{"framework":"pt"}})" + "     ");
  const io::safetensors_reader reader(file);
  CHECK(reader.entries().empty());
  CHECK(reader.metadata().at("framework") == "pt");
}

TEST_CASE("tensors of other dtypes are listed, readable as bytes, and refused as floats", "[io]") {
  temp_dir dir;
  const auto file = dir / "buffers.safetensors";
  const std::string header =
      object(entry("position_ids", "I64", "[1,3]", "[0,24]") + "," + entry("w", "F32", "[2]", "[24,32]") + "," +
             entry("mask", "BOOL", "[2]", "[32,34]") + "," + entry("q", "F8_E4M3", "[]", "[34,35]"));
  const std::string data = le64(0) + le64(1) + le64(2) + le_bytes(std::bit_cast<std::uint32_t>(1.5f), 4) +
                           le_bytes(std::bit_cast<std::uint32_t>(-2.0f), 4) + std::string("\x01\x00\x38", 3);
  write_bytes(file, safetensors_bytes(header, data));

  const io::safetensors_reader reader(file);
  REQUIRE(reader.entries().size() == 1);
  CHECK(reader.read_floats("w") == std::vector<float>{1.5f, -2.0f});
  REQUIRE(reader.other_entries().size() == 3);
  CHECK(reader.other_entries()[0].name == "position_ids");
  CHECK(reader.other_entries()[0].type == "I64");
  CHECK(reader.other_entries()[0].shape == std::vector<std::size_t>{1, 3});
  CHECK(reader.other_entries()[0].size_bytes == 24);
  CHECK(reader.other_entries()[1].name == "mask");
  CHECK(reader.other_entries()[2].type == "F8_E4M3");
  CHECK(reader.contains("position_ids"));
  const auto raw = reader.read_bytes("position_ids");
  REQUIRE(raw.size() == 24);
  CHECK(std::to_integer<int>(raw[8]) == 1);
  CHECK(std::to_integer<int>(raw[16]) == 2);
  REQUIRE_THROWS_MATCHES(reader.read_floats("position_ids"), glassbox::io_error,
                         what_contains("buffers.safetensors") &&
                             what_contains("tensor 'position_ids' has dtype I64, which is not read as floating point"));
  REQUIRE_THROWS_MATCHES(reader.read<1>("mask"), glassbox::io_error, what_contains("tensor 'mask' has dtype BOOL"));
}

TEST_CASE("malformed safetensors files are rejected with the file and the problem named", "[io]") {
  temp_dir dir;
  const std::string a4 = entry("a", "F32", "[1]", "[0,4]");
  const std::string four(4, '\0');
  struct bad_file {
    std::string name;
    std::string bytes;
    std::string problem;
  };
  const std::vector<bad_file> cases = {
      {"empty", "", "file is empty"},
      {"short_prefix", std::string("\x02\x00\x00\x00\x00", 5),
       "file is 5 bytes, too short for the 8-byte header length"},
      {"header_beyond_file", le64(200) + "{}", "header length 200 exceeds the 2 bytes after the length prefix"},
      {"header_too_large", le64(std::uint64_t{1} << 40) + "{}",
       "header length must be at most 100000000 bytes, got 1099511627776"},
      {"not_json", safetensors_bytes("{\"a\": "), "header is not valid JSON"},
      {"not_utf8", safetensors_bytes("{\"\xFF\":{}}"), "ill-formed UTF-8"},
      {"not_object", safetensors_bytes("[1,2,3] "), "header must be a JSON object, got a JSON array"},
      {"too_deep", safetensors_bytes(R"({"a":)" + std::string(100, '[') + std::string(100, ']') + "}"),
       "header nests JSON arrays and objects more than 64 levels deep"},
      {"leading_space", safetensors_bytes(" {}"), "header must start with '{'"},
      {"entry_not_object", safetensors_bytes(R"({"a":[1]})"),
       "tensor 'a': entry must be an object with dtype, shape and data_offsets, got [1]"},
      {"missing_offsets", safetensors_bytes(R"({"a":{"dtype":"F32","shape":[1]}})", four),
       "tensor 'a': missing \"data_offsets\""},
      {"unexpected_key", safetensors_bytes(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"x":1}})", four),
       "tensor 'a': unexpected key 'x'"},
      {"unknown_dtype", safetensors_bytes(object(entry("a", "F128", "[1]", "[0,16]")), std::string(16, '\0')),
       "tensor 'a': unknown dtype 'F128'"},
      {"subbyte_dtype", safetensors_bytes(object(entry("a", "F4", "[2]", "[0,1]")), "x"),
       "tensor 'a': dtype F4 packs elements into less than a byte"},
      {"dtype_not_string", safetensors_bytes(R"({"a":{"dtype":32,"shape":[1],"data_offsets":[0,4]}})", four),
       "tensor 'a': dtype must be a string, got 32"},
      {"negative_shape", safetensors_bytes(object(entry("a", "F32", "[2,-1]", "[0,4]")), four),
       "tensor 'a': shape must be a list of non-negative integers, got [2,-1]"},
      {"fractional_shape", safetensors_bytes(object(entry("a", "F32", "[2.5]", "[0,4]")), four),
       "tensor 'a': shape must be a list of non-negative integers, got [2.5]"},
      {"shape_not_list", safetensors_bytes(object(entry("a", "F32", "\"1\"", "[0,4]")), four),
       "tensor 'a': shape must be a list of non-negative integers, got \"1\""},
      {"offsets_not_pair", safetensors_bytes(object(entry("a", "F32", "[1]", "[0,4,8]")), four),
       "tensor 'a': data_offsets must be two non-negative integers [begin, end], got [0,4,8]"},
      {"offsets_negative", safetensors_bytes(object(entry("a", "F32", "[1]", "[-4,0]")), four),
       "tensor 'a': data_offsets must be two non-negative integers [begin, end], got [-4,0]"},
      {"offsets_reversed", safetensors_bytes(object(entry("a", "F32", "[1]", "[4,0]")), four),
       "tensor 'a': data_offsets [4, 0] are reversed (begin must be <= end)"},
      {"offsets_past_end", safetensors_bytes(object(entry("a", "F32", "[2]", "[0,8]")), four),
       "tensor 'a': data_offsets [0, 8] run past the end of the data section (4 bytes)"},
      {"size_mismatch", safetensors_bytes(object(entry("a", "F32", "[2,3]", "[0,20]")), std::string(20, '\0')),
       "tensor 'a': data_offsets [0, 20] span 20 bytes but shape [2, 3] of F32 needs 24 (6 x 4 bytes)"},
      {"count_overflow", safetensors_bytes(object(entry("a", "F32", "[4294967296,4294967296,2]", "[0,4]")), four),
       "tensor 'a': the element count of shape [4294967296, 4294967296, 2] overflows 64 bits"},
      {"bytes_overflow", safetensors_bytes(object(entry("a", "F64", "[4611686018427387904]", "[0,8]")), four),
       "tensor 'a': the byte size of shape [4611686018427387904] x 8 bytes overflows 64 bits"},
      {"overlap",
       safetensors_bytes(object(entry("a", "F32", "[2]", "[0,8]") + "," + entry("b", "F32", "[2]", "[4,12]")),
                         std::string(12, '\0')),
       "tensors 'a' [0, 8) and 'b' [4, 12) overlap"},
      {"hole_between",
       safetensors_bytes(object(entry("a", "F32", "[1]", "[0,4]") + "," + entry("b", "F32", "[1]", "[8,12]")),
                         std::string(12, '\0')),
       "hole in the data section: bytes [4, 8) between tensors 'a' and 'b' belong to no tensor"},
      {"hole_at_start", safetensors_bytes(object(entry("a", "F32", "[1]", "[4,8]")), std::string(8, '\0')),
       "hole in the data section: bytes [0, 4) before tensor 'a' belong to no tensor"},
      {"trailing_bytes", safetensors_bytes(object(a4), std::string(6, '\0')),
       "the data section has 6 bytes but the tensors end at byte 4: the trailing 2 bytes belong to no tensor"},
      {"duplicate_name", safetensors_bytes(object(a4 + "," + a4), four), "duplicate tensor name 'a'"},
      {"duplicate_key",
       safetensors_bytes(R"({"a":{"dtype":"F32","dtype":"F32","shape":[1],"data_offsets":[0,4]}})", four),
       "key 'dtype' appears twice in 'a'"},
      {"metadata_not_string", safetensors_bytes(R"({"__metadata__":{"k":1},)" + a4 + "}", four),
       "__metadata__ value of 'k' must be a string, got 1"},
      {"metadata_not_object", safetensors_bytes(R"({"__metadata__":"pt"})"),
       "__metadata__ must be an object of strings, got \"pt\""},
  };
  for (const auto& c : cases) {
    CAPTURE(c.name);
    const auto file = dir / (c.name + ".safetensors");
    write_bytes(file, c.bytes);
    CHECK_THROWS_MATCHES(
        io::safetensors_reader(file), glassbox::io_error,
        what_contains("glassbox::io::safetensors_reader: '" + file.string() + "': ") && what_contains(c.problem));
  }

  // Files that are not there or not files.
  REQUIRE_THROWS_MATCHES(io::safetensors_reader(dir / "missing.safetensors"), glassbox::io_error,
                         what_contains("missing.safetensors") && what_contains("file does not exist"));
  REQUIRE_THROWS_MATCHES(io::safetensors_reader(dir.path()), glassbox::io_error,
                         what_contains(dir.path().string()) && what_contains("is not a regular file"));

  // The well-formed neighbours of the cases above are accepted: null metadata, zero-size and scalar tensors.
  const auto good = dir / "good.safetensors";
  write_bytes(good, safetensors_bytes(R"({"__metadata__":null,)" + entry("z", "F16", "[0]", "[0,0]") + "," + a4 + "}",
                                      le_bytes(std::bit_cast<std::uint32_t>(2.0f), 4)));
  const io::safetensors_reader reader(good);
  CHECK(reader.metadata().empty());
  CHECK(reader.read_floats("a") == std::vector<float>{2.0f});
  CHECK(reader.read_floats("z").empty());
}

TEST_CASE("a reader refuses to read a file that changed after it was opened", "[io]") {
  temp_dir dir;
  const auto file = dir / "changing.safetensors";
  const std::vector<float> values(100, 1.0f);
  const io::tensor_to_write t{"x", io::dtype::f32, {100}, std::span<const float>(values)};
  io::write_safetensors(file, std::span(&t, 1));
  const io::safetensors_reader reader(file);
  fs::resize_file(file, fs::file_size(file) - 16);
  REQUIRE_THROWS_MATCHES(reader.read_floats("x"), glassbox::io_error,
                         what_contains("changing.safetensors") && what_contains("file changed since it was opened"));
}

TEST_CASE("write_safetensors rejects bad tensors and unwritable files", "[io]") {
  temp_dir dir;
  const auto file = dir / "out.safetensors";
  const std::vector<float> six(6, 1.0f);
  const std::span<const float> data(six);
  using T = io::tensor_to_write;

  const T wrong_size[] = {{"w", io::dtype::f32, {2, 2}, data}};
  REQUIRE_THROWS_MATCHES(io::write_safetensors(file, wrong_size), glassbox::shape_error,
                         what_contains("tensor 'w' has shape [2, 2] (4 elements) but 6 values were given"));
  const T twice[] = {{"w", io::dtype::f32, {6}, data}, {"w", io::dtype::f16, {2, 3}, data}};
  REQUIRE_THROWS_MATCHES(io::write_safetensors(file, twice), glassbox::error,
                         what_contains("tensor names must be unique, got 'w' twice"));
  const T reserved[] = {{"__metadata__", io::dtype::f32, {6}, data}};
  REQUIRE_THROWS_MATCHES(io::write_safetensors(file, reserved), glassbox::error,
                         what_contains("'__metadata__' is reserved"));
  const T unnamed[] = {{"", io::dtype::f32, {6}, data}};
  REQUIRE_THROWS_MATCHES(io::write_safetensors(file, unnamed), glassbox::error,
                         what_contains("tensor 0 must have a name"));
  const T not_utf8[] = {{"w\xFF", io::dtype::f32, {6}, data}};
  REQUIRE_THROWS_MATCHES(io::write_safetensors(file, not_utf8), glassbox::error,
                         what_contains("tensor names must be valid UTF-8"));
  CHECK_FALSE(fs::exists(file));

  const T fine[] = {{"w", io::dtype::f32, {6}, data}};
  const auto nowhere = dir / "no_such_dir" / "out.safetensors";
  REQUIRE_THROWS_MATCHES(io::write_safetensors(nowhere, fine), glassbox::io_error,
                         what_contains("no_such_dir") && what_contains("cannot be opened for writing"));

  // A failed write leaves an existing file as it was, and no temporary behind.
  io::write_safetensors(file, fine);
  const auto before = read_file_bytes(file);
  REQUIRE_THROWS_AS(io::write_safetensors(file, fine, {{"bad\xFF", "x"}}), glassbox::error);
  CHECK(read_file_bytes(file) == before);
  CHECK_FALSE(fs::exists(dir / "out.safetensors.partial"));
}

TEST_CASE("UTF-8 validation finds ill-formed sequences", "[io]") {
  using glassbox::detail::first_invalid_utf8;
  CHECK_FALSE(first_invalid_utf8("plain ascii").has_value());
  CHECK_FALSE(first_invalid_utf8("\xC3\xBC \xE2\x82\xAC \xF0\x9F\x98\x80 \xF4\x8F\xBF\xBF").has_value());
  CHECK(first_invalid_utf8("ab\x80") == 2u);                // a continuation byte alone
  CHECK(first_invalid_utf8("\xC0\xAF") == 0u);              // overlong '/'
  CHECK(first_invalid_utf8("x\xE0\x80\xAF") == 1u);         // overlong three-byte form
  CHECK(first_invalid_utf8("\xED\xA0\x80") == 0u);          // a UTF-16 surrogate
  CHECK(first_invalid_utf8("\xF4\x90\x80\x80") == 0u);      // above U+10FFFF
  CHECK(first_invalid_utf8("\xE2\x82") == 0u);              // truncated
  CHECK(first_invalid_utf8("\xC3\x28") == 0u);              // bad continuation
  CHECK(first_invalid_utf8("\xF8\x88\x80\x80\x80") == 0u);  // five-byte form
}

TEST_CASE("a vocabulary round trips through its file and looks tokens up both ways", "[io]") {
  temp_dir dir;
  const std::vector<std::string> words = {"<pad>",
                                          "<unk>",
                                          "the",
                                          "movie",
                                          "was",
                                          "not",
                                          "good",
                                          ".",
                                          "\xC3\xBC"
                                          "ber",
                                          "\xF0\x9F\x98\x80"};
  const io::vocabulary vocab(words);
  CHECK(vocab.size() == words.size());
  CHECK(vocab.all_tokens() == words);
  for (std::size_t i = 0; i < words.size(); ++i) {
    CHECK(vocab.token(static_cast<glassbox::token_id>(i)) == words[i]);
    CHECK(vocab.find(words[i]) == static_cast<glassbox::token_id>(i));
    CHECK(vocab.id(words[i]) == static_cast<glassbox::token_id>(i));
  }
  CHECK(vocab.pad_id() == 0);
  CHECK(vocab.unk_id() == 1);
  CHECK(vocab.contains("movie"));
  CHECK_FALSE(vocab.find("film").has_value());
  CHECK_FALSE(io::vocabulary({"a", "b"}).pad_id().has_value());
  CHECK_FALSE(io::vocabulary({"a", "b"}).unk_id().has_value());

  const auto file = dir / "vocab.txt";
  vocab.save(file);
  std::string expected;
  for (const auto& w : words) expected += w + "\n";
  CHECK(read_file_bytes(file) == expected);
  CHECK(io::vocabulary::load(file) == vocab);

  REQUIRE_THROWS_MATCHES(vocab.token(-1), glassbox::shape_error, what_contains("id must be in [0, 10), got -1"));
  REQUIRE_THROWS_MATCHES(vocab.token(10), glassbox::shape_error, what_contains("id must be in [0, 10), got 10"));
  REQUIRE_THROWS_MATCHES(vocab.id("film"), glassbox::error, what_contains("word 'film' is not in the vocabulary"));
  REQUIRE_THROWS_MATCHES(io::vocabulary().save(file), glassbox::error,
                         what_contains("cannot save an empty vocabulary"));
}

TEST_CASE("vocabulary files: Windows line endings, no final newline, byte order mark", "[io]") {
  temp_dir dir;
  const std::vector<std::string> abc = {"a", "b", "c"};
  const std::vector<std::pair<std::string, std::string>> files = {
      {"crlf.txt", "a\r\nb\r\nc\r\n"},
      {"no_final_newline.txt", "a\nb\nc"},
      {"crlf_no_final_newline.txt", "a\r\nb\r\nc"},
      {"bom.txt",
       "\xEF\xBB\xBF"
       "a\nb\nc\n"},
  };
  for (const auto& [name, content] : files) {
    CAPTURE(name);
    write_bytes(dir / name, content);
    CHECK(io::vocabulary::load(dir / name).all_tokens() == abc);
  }
}

TEST_CASE("a first token that begins with U+FEFF survives save and load", "[io]") {
  // Found by fuzz/vocabulary_fuzz (fuzz/corpus/vocabulary_fuzz/crash-bom-token.txt): a file starting with
  // two byte order marks has the second as part of its first token; saved as it was, the token came back
  // without it, so the reloaded vocabulary differed from the saved one.
  temp_dir dir;
  const std::string bom = "\xEF\xBB\xBF";
  write_bytes(dir / "two_marks.txt", bom + bom + "<pad\nb\n");
  const auto loaded = io::vocabulary::load(dir / "two_marks.txt");
  CHECK(loaded.all_tokens() == std::vector<std::string>{bom + "<pad", "b"});
  loaded.save(dir / "saved.txt");
  CHECK(read_file_bytes(dir / "saved.txt") == bom + bom + "<pad\nb\n");
  CHECK(io::vocabulary::load(dir / "saved.txt") == loaded);
  // A mark inside a later token needs none, and a first token without one gets none.
  const io::vocabulary later({"a", bom + "b"});
  later.save(dir / "later.txt");
  CHECK(read_file_bytes(dir / "later.txt") == "a\n" + bom + "b\n");
  CHECK(io::vocabulary::load(dir / "later.txt") == later);
}

TEST_CASE("malformed vocabularies are rejected with the file and line named", "[io]") {
  temp_dir dir;
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"a\nb\na\n", "line 3: token 'a' repeats line 1"},
      {"a\n\nb\n", "line 2 is empty (blank lines are allowed only as the final newline)"},
      {"a\nb\n\n", "line 3 is empty"},
      {"a\r\n\r\nb\r\n", "line 2 is empty"},
      {"a\nb c\n", "line 2: token 'b c' contains whitespace at byte 1"},
      {"a\tb\n", "line 1: token 'a\tb' contains whitespace at byte 1"},
      {" a\n", "line 1: token ' a' contains whitespace at byte 0"},
      {"a\n\xC3\x28\n", "line 2: token is not valid UTF-8 (byte 0)"},
      {"", "file is empty"},
  };
  for (std::size_t i = 0; i < cases.size(); ++i) {
    const auto& [content, problem] = cases[i];
    CAPTURE(i, problem);
    const auto file = dir / ("bad_vocab_" + std::to_string(i) + ".txt");
    write_bytes(file, content);
    CHECK_THROWS_MATCHES(
        io::vocabulary::load(file), glassbox::io_error,
        what_contains("glassbox::io::vocabulary::load: '" + file.string() + "': ") && what_contains(problem));
  }
  REQUIRE_THROWS_MATCHES(io::vocabulary::load(dir / "absent.txt"), glassbox::io_error,
                         what_contains("absent.txt") && what_contains("file does not exist"));

  // The same rules for vocabularies built in memory.
  using V = std::vector<std::string>;
  REQUIRE_THROWS_MATCHES(io::vocabulary(V{"a", "b", "a"}), glassbox::error,
                         what_contains("token 2 'a' repeats token 0"));
  REQUIRE_THROWS_MATCHES(io::vocabulary(V{"a", ""}), glassbox::error, what_contains("token 1 is empty"));
  REQUIRE_THROWS_MATCHES(io::vocabulary(V{"a\nb"}), glassbox::error,
                         what_contains("token 0 'a\nb' contains whitespace at byte 1"));
  REQUIRE_THROWS_MATCHES(io::vocabulary(V{}), glassbox::error, what_contains("tokens must not be empty"));
}

TEST_CASE("encode splits at whitespace and applies the unknown-word policy, decode joins with spaces", "[io]") {
  const io::vocabulary vocab({"<pad>", "<unk>", "the", "movie", "was", "not", "good"});
  using ids = glassbox::token_sequence;

  const auto encoded = vocab.encode("  the movie\twas\r\nnot   good \n");
  CHECK(encoded == ids{2, 3, 4, 5, 6});
  CHECK(vocab.decode(encoded) == "the movie was not good");
  CHECK(vocab.tokens(encoded) == std::vector<std::string>{"the", "movie", "was", "not", "good"});
  CHECK(vocab.encode("").empty());
  CHECK(vocab.encode(" \t\n").empty());
  CHECK(vocab.decode(ids{}).empty());

  REQUIRE_THROWS_MATCHES(vocab.encode("the  film was good"), glassbox::error,
                         what_contains("unknown word 'film' at word 1 (byte 5) of the text"));
  REQUIRE_THROWS_MATCHES(vocab.encode("the movie was Good", io::unknown_policy::fail), glassbox::error,
                         what_contains("unknown word 'Good' at word 3 (byte 14)"));
  CHECK(vocab.encode("the film was good", io::unknown_policy::map_to_unk) == ids{2, 1, 4, 6});
  CHECK(vocab.encode("film", io::unknown_policy::map_to_unk) == ids{1});

  const io::vocabulary no_unk({"the", "movie"});
  REQUIRE_THROWS_MATCHES(no_unk.encode("the movie", io::unknown_policy::map_to_unk), glassbox::error,
                         what_contains("needs a '<unk>' token, which this vocabulary lacks"));

  REQUIRE_THROWS_MATCHES(vocab.decode(ids{2, 7}), glassbox::shape_error, what_contains("id must be in [0, 7), got 7"));
  REQUIRE_THROWS_MATCHES(vocab.tokens(ids{-3}), glassbox::shape_error, what_contains("got -3"));
}

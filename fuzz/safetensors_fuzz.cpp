// Fuzzes io::safetensors_reader: the input is a whole file; every tensor it lists is then read (as floats,
// doubles, raw bytes and, for ranks 1 and 2, as xtensors).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fuzz_support.hpp"
#include "glassbox/io/safetensors.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace io = glassbox::io;
  const auto file =
      glassbox::fuzz::write_scratch("input.safetensors", std::string_view(reinterpret_cast<const char*>(data), size));
  glassbox::fuzz::expect_glassbox_error_or_success([&] {
    const io::safetensors_reader reader(file);
    (void)reader.metadata();
    for (const auto& e : reader.entries()) {
      glassbox::fuzz::expect_glassbox_error_or_success([&] { (void)reader.read_floats(e.name); });
      glassbox::fuzz::expect_glassbox_error_or_success([&] { (void)reader.read_doubles(e.name); });
      glassbox::fuzz::expect_glassbox_error_or_success([&] { (void)reader.read_bytes(e.name); });
      glassbox::fuzz::expect_glassbox_error_or_success([&] { (void)reader.read<1>(e.name); });
      glassbox::fuzz::expect_glassbox_error_or_success([&] { (void)reader.read<2>(e.name); });
    }
    for (const auto& b : reader.other_entries()) {
      glassbox::fuzz::expect_glassbox_error_or_success([&] { (void)reader.read_bytes(b.name); });
      glassbox::fuzz::expect_glassbox_error_or_success([&] { (void)reader.read_floats(b.name); });
    }
  });
  return 0;
}

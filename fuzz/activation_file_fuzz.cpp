// Fuzzes the readers of glassbox's own safetensors files: the input is one file, read as an activation
// file (every layer), K-FAC factors, an influence-score shard, an SAE, a tuned lens and a reading vector.
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_support.hpp"
#include "glassbox/io/activation_file.hpp"
#include "glassbox/io/influence_factors.hpp"
#include "glassbox/io/representation_files.hpp"
#include "glassbox/io/sae_file.hpp"

namespace {

namespace io = glassbox::io;

std::optional<std::size_t> metadata_number(const io::safetensors_reader& r, const std::string& key) {
  const auto it = r.metadata().find(key);
  if (it == r.metadata().end()) return std::nullopt;
  std::size_t v = 0;
  const auto [ptr, ec] = std::from_chars(it->second.data(), it->second.data() + it->second.size(), v);
  if (ec != std::errc() || ptr != it->second.data() + it->second.size()) return std::nullopt;
  return v;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  const auto file = glassbox::fuzz::write_scratch("input.safetensors", bytes);
  using glassbox::fuzz::expect_glassbox_error_or_success;
  expect_glassbox_error_or_success([&] {
    const io::activation_file_reader in(file);
    for (std::size_t k = 0; k < in.header().layers.size(); ++k)
      expect_glassbox_error_or_success([&] { (void)in.read_layer(in.header().layers[k]); });
    expect_glassbox_error_or_success([&] { (void)in.read_layer(1000); });
    (void)in.read();
  });
  expect_glassbox_error_or_success([&] { (void)io::load_kfac_factors(file); });
  expect_glassbox_error_or_success([&] { (void)io::read_sae_file(file); });
  expect_glassbox_error_or_success([&] { (void)io::load_tuned_lens(file); });
  expect_glassbox_error_or_success([&] { (void)io::load_reading_vector(file); });
  // An influence-score shard: the file placed where kfac_shard_directory looks for the shard its own
  // metadata names (begin, end, rows, run), so that the checks past the run test are reached too.
  expect_glassbox_error_or_success([&] {
    const io::safetensors_reader r(file);
    const auto begin = metadata_number(r, "begin"), end = metadata_number(r, "end"), rows = metadata_number(r, "rows");
    const auto run = r.metadata().find("run");
    if (!begin || !end || !rows || run == r.metadata().end() || *end < *begin || *end - *begin > 4096 || *rows > 4096)
      return;
    const auto dir = glassbox::fuzz::scratch_path("shards");
    const auto store = io::kfac_shard_directory(dir, run->second, *rows);
    std::filesystem::copy_file(file, dir / fmt::format("scores-{:010}-{:010}.safetensors", *begin, *end),
                               std::filesystem::copy_options::overwrite_existing);
    std::vector<float> scores(*rows * (*end - *begin));
    (void)store.load(*begin, *end, scores);
  });
  return 0;
}

// glassbox: sparse autoencoders (representations/sae.hpp) as safetensors files, in SAELens'
// tensor layout: W_enc F32 [d, n], b_enc [n], W_dec [n, d], b_dec [d], with the metadata
// format = "glassbox.sae", layer, l1 and model. docs/representations.md, "Sparse autoencoders".
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "glassbox/io/safetensors.hpp"
#include "glassbox/representations/types.hpp"

namespace glassbox::io {

/// The value of the "format" metadata of an SAE file.
inline constexpr const char* sae_file_format = "glassbox.sae";

/// Writes `sae` to `file` (W_enc, b_enc, W_dec, b_dec as F32; metadata format, layer, l1, model).
///
/// Example:
///   glassbox::io::write_sae_file("sae.safetensors", trained.sae);
template <class = void>
void write_sae_file(const std::filesystem::path& file, const sparse_autoencoder& sae) {
  glassbox::detail::check_sae(sae, "io::write_sae_file");
  const std::size_t d = sae.input_width(), n = sae.feature_count();
  const std::vector<tensor_to_write> tensors{
      {"W_enc", dtype::f32, {d, n}, std::span<const float>(sae.W_enc.data(), sae.W_enc.size())},
      {"b_enc", dtype::f32, {n}, std::span<const float>(sae.b_enc.data(), sae.b_enc.size())},
      {"W_dec", dtype::f32, {n, d}, std::span<const float>(sae.W_dec.data(), sae.W_dec.size())},
      {"b_dec", dtype::f32, {d}, std::span<const float>(sae.b_dec.data(), sae.b_dec.size())},
  };
  const std::map<std::string, std::string> metadata{{"format", sae_file_format},
                                                    {"layer", std::to_string(sae.layer)},
                                                    {"l1", fmt::format("{}", sae.l1)},
                                                    {"model", sae.model}};
  write_safetensors(file, tensors, metadata);
}

/// Reads an SAE file written by write_sae_file (or any safetensors file with SAELens' four tensors;
/// missing metadata leave layer 0, l1 0 and an empty model). io_error naming the file if a tensor
/// is missing or of the wrong shape.
template <class = void>
sparse_autoencoder read_sae_file(const std::filesystem::path& file) {
  constexpr const char* who = "glassbox::io::read_sae_file";
  const safetensors_reader in(file);
  for (const char* name : {"W_enc", "b_enc", "W_dec", "b_dec"})
    if (!in.contains(name))
      glassbox::detail::fail_file(who, file, "no tensor named '{}' (an SAE file holds W_enc, b_enc, W_dec, b_dec)",
                                  name);
  sparse_autoencoder sae;
  sae.W_enc = in.read<2>("W_enc");
  sae.b_enc = in.read<1>("b_enc");
  sae.W_dec = in.read<2>("W_dec");
  sae.b_dec = in.read<1>("b_dec");
  const std::size_t n = sae.W_dec.shape(0), d = sae.W_dec.shape(1);
  if (sae.W_enc.shape(0) != d || sae.W_enc.shape(1) != n || sae.b_enc.size() != n || sae.b_dec.size() != d)
    glassbox::detail::fail_file(who, file,
                                "W_enc must be [d, n], b_enc [n] and b_dec [d] for W_dec [n, d] = [{}, {}], got W_enc "
                                "[{}, {}], b_enc [{}], b_dec [{}]",
                                n, d, sae.W_enc.shape(0), sae.W_enc.shape(1), sae.b_enc.size(), sae.b_dec.size());
  const auto& meta = in.metadata();
  if (const auto it = meta.find("layer"); it != meta.end()) {
    try {
      sae.layer = static_cast<std::size_t>(std::stoul(it->second));
    } catch (const std::exception&) {
      glassbox::detail::fail_file(who, file, "metadata layer must be an integer, got '{}'", it->second);
    }
  }
  if (const auto it = meta.find("l1"); it != meta.end()) {
    try {
      sae.l1 = std::stod(it->second);
    } catch (const std::exception&) {
      glassbox::detail::fail_file(who, file, "metadata l1 must be a number, got '{}'", it->second);
    }
  }
  if (const auto it = meta.find("model"); it != meta.end()) sae.model = it->second;
  return sae;
}

}  // namespace glassbox::io

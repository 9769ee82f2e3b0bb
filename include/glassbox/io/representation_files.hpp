// glassbox: the tuned-lens file and the reading-vector file, safetensors files any tool can read.
//
// Tuned-lens file (`glassbox tuned-lens --out`, read by `glassbox lens --tuned`):
//   layer.K.weight  F32 [d, d]  M_K of hidden-state index K = 0..L-1 (the lens decodes h + h M_K + b_K)
//   layer.K.bias    F32 [d]     b_K
//   __metadata__    format = "glassbox.tuned_lens", version = "1", layers = L, width = d, model
//
// Reading-vector file (`glassbox steer --save-vector`, read by `--vector`):
//   direction       F32 [d]     the unit reading vector
//   __metadata__    format = "glassbox.reading_vector", version = "1", layer, explained, pair_accuracy,
//                   mean_separation, model
//
// The functions are templates with a defaulted parameter so that their JSON and formatting code is
// compiled only where they are used (docs/building.md, "Include cost").
#pragma once

#include <filesystem>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "glassbox/core/error.hpp"
#include "glassbox/io/safetensors.hpp"
#include "glassbox/representations/types.hpp"

namespace glassbox::io {

namespace detail {

/// The metadata value `key` of a file, or an io_error naming the file and the key.
template <class = void>
std::string required_metadata(const safetensors_reader& r, const std::filesystem::path& file, const std::string& key,
                              std::string_view who) {
  const auto it = r.metadata().find(key);
  if (it == r.metadata().end())
    glassbox::detail::fail<io_error>("glassbox::io::{}: {}: missing metadata \"{}\"", who, file.string(), key);
  return it->second;
}

/// Checks the file's metadata "format" is `expected`; io_error naming the file and what it found.
template <class = void>
void require_format(const safetensors_reader& r, const std::filesystem::path& file, std::string_view expected,
                    std::string_view who) {
  const auto format = required_metadata(r, file, "format", who);
  if (format != expected)
    glassbox::detail::fail<io_error>("glassbox::io::{}: {}: format must be \"{}\", got \"{}\"", who, file.string(),
                                     expected, format);
}

/// A metadata number, or an io_error naming the file, the key and the text.
template <class T>
T metadata_number(const std::string& text, const std::filesystem::path& file, const std::string& key,
                  std::string_view who) {
  try {
    std::size_t used = 0;
    T v{};
    if constexpr (std::is_floating_point_v<T>)
      v = static_cast<T>(std::stod(text, &used));
    else
      v = static_cast<T>(std::stoull(text, &used));
    if (used == text.size()) return v;
  } catch (const std::exception&) {
  }
  glassbox::detail::fail<io_error>("glassbox::io::{}: {}: metadata \"{}\" must be a number, got \"{}\"", who,
                                   file.string(), key, text);
}

}  // namespace detail

/// Writes a tuned lens (layer.K.weight, layer.K.bias) with its metadata; `model` names the model it reads.
template <class = void>
void save_tuned_lens(const std::filesystem::path& file, const tuned_lens& lens, const std::string& model = {}) {
  std::vector<tensor_to_write> tensors;
  std::vector<std::string> names;
  const std::size_t d = lens.width();
  for (std::size_t k = 0; k < lens.layers(); ++k) {
    tensors.push_back({"layer." + std::to_string(k) + ".weight", dtype::f32, {d, d},
                       std::span<const float>(lens.weights[k].data(), d * d)});
    tensors.push_back({"layer." + std::to_string(k) + ".bias", dtype::f32, {d},
                       std::span<const float>(lens.biases[k].data(), d)});
  }
  write_safetensors(file, tensors,
                    {{"format", "glassbox.tuned_lens"},
                     {"version", "1"},
                     {"layers", std::to_string(lens.layers())},
                     {"width", std::to_string(d)},
                     {"model", model}});
}

/// Reads a tuned-lens file; io_error naming the file if it is not one or its tensors disagree.
template <class = void>
tuned_lens load_tuned_lens(const std::filesystem::path& file) {
  constexpr std::string_view who = "load_tuned_lens";
  const safetensors_reader r(file);
  detail::require_format(r, file, "glassbox.tuned_lens", who);
  const auto L = detail::metadata_number<std::size_t>(detail::required_metadata(r, file, "layers", who), file,
                                                      "layers", who);
  const auto d = detail::metadata_number<std::size_t>(detail::required_metadata(r, file, "width", who), file,
                                                      "width", who);
  tuned_lens lens;
  for (std::size_t k = 0; k < L; ++k) {
    const std::string w = "layer." + std::to_string(k) + ".weight", b = "layer." + std::to_string(k) + ".bias";
    if (!r.contains(w) || !r.contains(b))
      glassbox::detail::fail<io_error>("glassbox::io::{}: {}: missing tensor '{}' or '{}' of {} layers", who,
                                       file.string(), w, b, L);
    lens.weights.push_back(r.read<2>(w));
    lens.biases.push_back(r.read<1>(b));
    if (lens.weights.back().shape(0) != d || lens.weights.back().shape(1) != d || lens.biases.back().size() != d)
      glassbox::detail::fail<io_error>("glassbox::io::{}: {}: layer {} must be [{}, {}] with a bias of {}", who,
                                       file.string(), k, d, d, d);
  }
  return lens;
}

/// Writes a reading vector (direction) with its layer and statistics; `model` names the model.
template <class = void>
void save_reading_vector(const std::filesystem::path& file, const reading_vector& v, const std::string& model = {}) {
  const tensor_to_write t{"direction", dtype::f32, {v.direction.size()},
                          std::span<const float>(v.direction.data(), v.direction.size())};
  write_safetensors(file, std::span(&t, 1),
                    {{"format", "glassbox.reading_vector"},
                     {"version", "1"},
                     {"layer", std::to_string(v.layer)},
                     {"explained", fmt::format("{}", v.explained)},
                     {"pair_accuracy", fmt::format("{}", v.pair_accuracy)},
                     {"mean_separation", fmt::format("{}", v.mean_separation)},
                     {"model", model}});
}

/// Reads a reading-vector file; io_error naming the file if it is not one.
template <class = void>
reading_vector load_reading_vector(const std::filesystem::path& file) {
  constexpr std::string_view who = "load_reading_vector";
  const safetensors_reader r(file);
  detail::require_format(r, file, "glassbox.reading_vector", who);
  if (!r.contains("direction"))
    glassbox::detail::fail<io_error>("glassbox::io::{}: {}: missing tensor 'direction'", who, file.string());
  reading_vector v;
  v.direction = r.read<1>("direction");
  v.layer = detail::metadata_number<std::size_t>(detail::required_metadata(r, file, "layer", who), file, "layer", who);
  for (auto [key, field] : {std::pair{"explained", &reading_vector::explained},
                            std::pair{"pair_accuracy", &reading_vector::pair_accuracy},
                            std::pair{"mean_separation", &reading_vector::mean_separation}}) {
    const auto it = r.metadata().find(key);
    if (it != r.metadata().end()) v.*field = detail::metadata_number<double>(it->second, file, key, who);
  }
  return v;
}

}  // namespace glassbox::io

// glassbox: loading and saving the reference GPT-2 (safetensors weights, config.json or
// safetensors __metadata__). Part of models/gpt2.hpp, which includes it at its end.
#pragma once

#include <charconv>
#include <cmath>
#include <cstddef>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "glassbox/core/error.hpp"
#include "glassbox/io/safetensors.hpp"
#include "glassbox/models/gpt2.hpp"

namespace glassbox::detail {

/// Where the configuration values of a checkpoint come from: config.json (if present) and __metadata__.
/// A class template only so that its JSON parsing compiles where a checkpoint is loaded
/// (docs/building.md, "Include cost"); `gpt2_config_source` names it.
template <class = void>
class basic_gpt2_config_source {
 public:
  basic_gpt2_config_source(const std::filesystem::path& weights, const std::filesystem::path& json_path,
                     const std::map<std::string, std::string>& metadata)
      : weights_(weights), json_path_(json_path), metadata_(metadata) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(json_path_, ec)) return;
    std::ifstream in(json_path_);
    if (!in) fail("cannot open {}", json_path_.string());
    try {
      json_ = nlohmann::json::parse(in);
    } catch (const nlohmann::json::exception& e) {
      fail("{} is not valid JSON: {}", json_path_.string(), e.what());
    }
    if (!json_->is_object()) fail("{} must hold a JSON object, got a JSON {}", json_path_.string(), json_->type_name());
  }

  /// Throws io_error "glassbox::models::gpt2::load: <weights>: <message>".
  template <class... Args>
  [[noreturn]] void fail(fmt::format_string<Args...> format, Args&&... args) const {
    ::glassbox::detail::fail<io_error>("glassbox::models::gpt2::load: {}: {}", weights_.string(),
                                     fmt::format(format, std::forward<Args>(args)...));
  }

  /// A non-negative integer value of `key` (or of `alias`), nullopt if neither source has it.
  std::optional<std::size_t> size(std::string_view key, std::string_view alias = {}) const {
    auto v = size_of_key(key);
    if (!v && !alias.empty()) v = size_of_key(alias);
    return v;
  }

  /// A required non-negative integer; io_error naming the key and where it was looked for.
  std::size_t required_size(std::string_view key, std::string_view alias = {}) const {
    const auto v = size(key, alias);
    if (!v)
      fail("config value {} is missing (looked in {} and in the safetensors __metadata__)", key, json_path_.string());
    return *v;
  }

  /// A real value of `key`, nullopt if absent.
  std::optional<double> real(std::string_view key) const {
    return merged<double>(
        key,
        [&](const nlohmann::json& j) -> double {
          if (!j.is_number()) fail("config value {} in {} must be a number, got {}", key, json_path_.string(), j.dump());
          return j.get<double>();
        },
        [&](const std::string& s) -> double {
          const char* begin = s.data();
          const char* end = s.data() + s.size();
          double v = 0;
          const auto [ptr, ec] = std::from_chars(begin, end, v);
          if (ec != std::errc() || ptr != end)
            fail("config value {} in the safetensors __metadata__ must be a number, got \"{}\"", key, s);
          return v;
        });
  }

  /// A boolean value of `key`, nullopt if absent.
  std::optional<bool> boolean(std::string_view key) const {
    return merged<bool>(
        key,
        [&](const nlohmann::json& j) -> bool {
          if (!j.is_boolean()) fail("config value {} in {} must be true or false, got {}", key, json_path_.string(), j.dump());
          return j.get<bool>();
        },
        [&](const std::string& s) -> bool {
          if (s == "true" || s == "True" || s == "1") return true;
          if (s == "false" || s == "False" || s == "0") return false;
          fail("config value {} in the safetensors __metadata__ must be true or false, got \"{}\"", key, s);
        });
  }

  /// A text value of `key`, nullopt if absent.
  std::optional<std::string> text(std::string_view key) const {
    return merged<std::string>(
        key,
        [&](const nlohmann::json& j) -> std::string {
          if (!j.is_string()) fail("config value {} in {} must be a string, got {}", key, json_path_.string(), j.dump());
          return j.get<std::string>();
        },
        [](const std::string& s) { return s; });
  }

 private:
  std::optional<std::size_t> size_of_key(std::string_view key) const {
    return merged<std::size_t>(
        key,
        [&](const nlohmann::json& j) -> std::size_t {
          if (!j.is_number_integer() || (j.is_number_integer() && !j.is_number_unsigned() && j.get<std::int64_t>() < 0))
            fail("config value {} in {} must be a non-negative integer, got {}", key, json_path_.string(), j.dump());
          return j.get<std::size_t>();
        },
        [&](const std::string& s) -> std::size_t {
          std::size_t v = 0;
          const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
          if (ec != std::errc() || ptr != s.data() + s.size())
            fail("config value {} in the safetensors __metadata__ must be a non-negative integer, got \"{}\"", key, s);
          return v;
        });
  }

  // The value from config.json (null counts as absent) and from __metadata__; both present must agree.
  template <class T, class FromJson, class FromText>
  std::optional<T> merged(std::string_view key, FromJson from_json, FromText from_text) const {
    std::optional<T> a, b;
    if (json_) {
      const auto it = json_->find(std::string(key));
      if (it != json_->end() && !it->is_null()) a = from_json(*it);
    }
    const auto it = metadata_.find(std::string(key));
    if (it != metadata_.end() && it->second != "null" && it->second != "None") b = from_text(it->second);
    if (a && b && !(*a == *b))
      fail("config value {} disagrees: {} says {} but the safetensors __metadata__ says {}", key, json_path_.string(),
           *a, *b);
    return a ? a : b;
  }

  std::filesystem::path weights_, json_path_;
  const std::map<std::string, std::string>& metadata_;
  std::optional<nlohmann::json> json_;
};

/// Where the configuration values of a checkpoint come from (basic_gpt2_config_source's only use).
using gpt2_config_source = basic_gpt2_config_source<>;

/// Whether `name` (without prefix) is a buffer of GPT-2 checkpoints that holds no parameter:
/// h.{i}.attn.bias (the causal mask) or h.{i}.attn.masked_bias.
template <class = void>
inline bool gpt2_ignored_buffer(std::string_view name) {
  if (!name.starts_with("h.")) return false;
  const auto dot = name.find('.', 2);
  if (dot == std::string_view::npos || dot == 2) return false;
  for (auto c : name.substr(2, dot - 2))
    if (c < '0' || c > '9') return false;
  const auto rest = name.substr(dot + 1);
  return rest == "attn.bias" || rest == "attn.masked_bias";
}

}  // namespace glassbox::detail

namespace glassbox::models {

template <class Scalar>
basic_gpt2<Scalar> basic_gpt2<Scalar>::load(const std::filesystem::path& path) {
  std::error_code ec;
  std::filesystem::path file = path;
  if (std::filesystem::is_directory(path, ec)) {
    file = path / "model.safetensors";
    glassbox::detail::require<io_error>(std::filesystem::is_regular_file(file, ec),
                                        "glassbox::models::gpt2::load: path must be a .safetensors file or a directory "
                                        "holding model.safetensors, got {} (no model.safetensors in it)",
                                        path.string());
  } else {
    glassbox::detail::require<io_error>(std::filesystem::is_regular_file(path, ec),
                                        "glassbox::models::gpt2::load: path must be a .safetensors file or a directory "
                                        "holding model.safetensors, got {} (not found)",
                                        path.string());
  }
  const io::safetensors_reader reader(file);
  const detail::gpt2_config_source source(file, file.parent_path() / "config.json", reader.metadata());

  // The configuration.
  gpt2_config config;
  config.n_layer = source.required_size("n_layer");
  config.n_head = source.required_size("n_head");
  config.n_embd = source.required_size("n_embd");
  config.vocab_size = source.required_size("vocab_size");
  config.n_positions = source.required_size("n_positions", "n_ctx");
  config.n_inner = source.size("n_inner").value_or(0);
  config.layer_norm_epsilon = source.real("layer_norm_epsilon").value_or(1e-5);
  if (const auto pad = source.size("pad_token_id")) config.pad_token_id = static_cast<token_id>(*pad);
  if (const auto type = source.text("model_type"); type && *type != "gpt2")
    source.fail("model_type must be gpt2, got {}", *type);
  if (const auto act = source.text("activation_function");
      act && *act != "gelu_new" && *act != "gelu_pytorch_tanh" && *act != "gelu_fast")
    source.fail("activation_function must be the tanh GELU (gelu_new), got {}", *act);
  if (const auto scaled = source.boolean("scale_attn_weights"); scaled && !*scaled)
    source.fail("scale_attn_weights must be true (scores are divided by sqrt(d / H)), got false");
  if (const auto by_layer = source.boolean("scale_attn_by_inverse_layer_idx"); by_layer && *by_layer)
    source.fail("scale_attn_by_inverse_layer_idx must be false, got true");
  const auto tie = source.boolean("tie_word_embeddings");
  config.validate<io_error>(fmt::format("glassbox::models::gpt2::load: {}", file.string()));

  // Tensor names: with or without "transformer."; nothing unknown.
  const std::string prefix = reader.contains("transformer.wte.weight") ? "transformer." : "";
  auto strip = [&](std::string_view name) {
    return name.starts_with(prefix) ? name.substr(prefix.size()) : name;
  };
  auto head_name = [&]() -> std::optional<std::string> {
    if (reader.contains("lm_head.weight")) return std::string("lm_head.weight");
    if (reader.contains(prefix + "lm_head.weight")) return prefix + "lm_head.weight";
    return std::nullopt;
  }();

  if (!head_name && tie && !*tie) source.fail("missing tensor lm_head.weight (tie_word_embeddings is false)");

  // The tied tensors first; lm_head.weight, the last tensor of an untied model, afterwards.
  config.tie_word_embeddings = true;
  const auto tied_table = gpt2_parameter_table(config);
  std::set<std::string, std::less<>> known;
  for (const auto& t : tied_table) known.insert(t.name);
  auto check_known = [&](const std::string& name) {
    if (head_name && name == *head_name) return;
    const auto bare = strip(name);
    if (known.contains(bare) || detail::gpt2_ignored_buffer(bare)) return;
    source.fail("unexpected tensor {} (not a GPT-2 parameter; expected names like {}h.0.attn.c_attn.weight)", name,
                prefix);
  };
  for (const auto& e : reader.entries()) check_known(e.name);
  for (const auto& e : reader.other_entries()) check_known(e.name);

  auto read_checked = [&](const std::string& name, const std::vector<std::size_t>& shape, Scalar* out) {
    if (!reader.contains(name)) source.fail("missing tensor {}", name);
    const auto& e = reader.entry(name);
    if (e.shape != shape)
      source.fail("tensor {} must have shape {} (from the config: n_layer {}, n_head {}, n_embd {}, n_positions {}, "
                  "vocab_size {}), got {}",
                  name, detail::gpt2_shape_text(shape), config.n_layer, config.n_head, config.n_embd,
                  config.n_positions, config.vocab_size, detail::gpt2_shape_text(e.shape));
    reader.read_into(name, std::span<Scalar>(out, e.element_count()));
  };
  // Straight into the model's storage. A stored lm_head is read after the tied tensors, into room
  // reserved for it (untouched, so it costs no memory unless used): kept there when it differs from
  // wte (an untied head, the last tensor of the layout), dropped when it equals wte (tied).
  const std::size_t tied_size = tied_table.back().offset + tied_table.back().size;
  const std::size_t head_size = config.vocab_size * config.n_embd;
  std::vector<Scalar, Eigen::aligned_allocator<Scalar>> parameters;
  parameters.reserve(tied_size + (head_name ? head_size : 0));
  parameters.resize(tied_size);
  for (const auto& t : tied_table) read_checked(prefix + t.name, t.shape, parameters.data() + t.offset);
  if (head_name) {
    parameters.resize(tied_size + head_size);
    read_checked(*head_name, {config.vocab_size, config.n_embd}, parameters.data() + tied_size);
    const auto wte = parameters.begin() + static_cast<std::ptrdiff_t>(tied_table[0].offset);
    if (std::equal(wte, wte + static_cast<std::ptrdiff_t>(head_size), parameters.begin() + static_cast<std::ptrdiff_t>(tied_size))) {
      parameters.resize(tied_size);
    } else {
      config.tie_word_embeddings = false;
    }
  }
  return basic_gpt2(config, std::move(parameters));
}

template <class Scalar>
void basic_gpt2<Scalar>::save(const std::filesystem::path& path) const {
  constexpr io::dtype type = is_float ? io::dtype::f32 : io::dtype::f64;
  std::vector<io::tensor_to_write> tensors;
  tensors.reserve(table_.size());
  for (const auto& t : table_)
    tensors.push_back({t.name, type, t.shape, std::span<const Scalar>(parameters_.data() + t.offset, t.size)});
  std::map<std::string, std::string> metadata{
      {"format", "pt"},
      {"model_type", "gpt2"},
      {"activation_function", "gelu_new"},
      {"n_layer", fmt::format("{}", config_.n_layer)},
      {"n_head", fmt::format("{}", config_.n_head)},
      {"n_embd", fmt::format("{}", config_.n_embd)},
      {"n_positions", fmt::format("{}", config_.n_positions)},
      {"vocab_size", fmt::format("{}", config_.vocab_size)},
      {"layer_norm_epsilon", fmt::format("{}", config_.layer_norm_epsilon)},
      {"tie_word_embeddings", config_.tie_word_embeddings ? "true" : "false"},
  };
  if (config_.n_inner != 0) metadata["n_inner"] = fmt::format("{}", config_.n_inner);
  if (config_.pad_token_id) metadata["pad_token_id"] = fmt::format("{}", *config_.pad_token_id);
  io::write_safetensors(path, tensors, metadata);
}

}  // namespace glassbox::models

// glassbox: K-FAC / EK-FAC factors and influence score shards on disk, as safetensors, so that
// fitting and scoring are separate steps and an interrupted scoring run resumes.
//
// A factors file (save_kfac_factors) holds, per tracked layer `<name>`, the float32 tensors
//   <name>.activation_covariance  [d_in + 1, d_in + 1]   <name>.gradient_covariance  [d_out, d_out]
//   <name>.activation_eigenvalues [d_in + 1]             <name>.gradient_eigenvalues [d_out]
//   <name>.activation_eigenvectors [d_in + 1, d_in + 1]  <name>.gradient_eigenvectors [d_out, d_out]
//   <name>.lambda [d_out, d_in + 1]
// (those its method has: kfac and ekfac the first six, ekfac and diagonal lambda), and in
// __metadata__ "format" = "glassbox.kfac_factors", "version" = "1" and "kfac", a JSON object with the
// options the factors were fitted with, the model's identity (parameter count and fingerprint) and
// the layer list (names, shapes, offsets, bias and layout flags, rows averaged). Every problem is a
// glassbox::io_error naming the file.
//
// A score shard (kfac_shard_directory) is "scores-<begin>-<end>.safetensors" in a directory: one
// float32 tensor "scores" [rows, end - begin] and the run it belongs to in __metadata__; a shard of
// another run is an io_error, never silently mixed in.
//
// Its free functions are templates with a defaulted parameter (`template <class = void>`), so that the
// JSON and formatting code they instantiate is compiled only where they are called (docs/building.md,
// "Include cost").
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "glassbox/core/error.hpp"
#include "glassbox/core/model.hpp"
#include "glassbox/core/types.hpp"
#include "glassbox/influence/kfac_types.hpp"
#include "glassbox/influence/measurement.hpp"
#include "glassbox/io/safetensors.hpp"

namespace glassbox::io {

/// The version of the factors format this header writes and reads.
inline constexpr std::string_view kfac_factors_version = "1";

namespace detail {

template <class = void>
inline void kfac_io_fail [[noreturn]] (std::string_view function, const std::filesystem::path& file,
                                       const std::string& what) {
  throw io_error(fmt::format("glassbox::io::{}: {}: {}", function, file.string(), what));
}

/// The tensors a layer of `method` has, with their shapes.
template <class = void>
inline std::vector<std::pair<std::string, std::vector<std::size_t>>> kfac_layer_tensors(const kfac_layer_factors& l,
                                                                                        factor_method method) {
  const std::size_t a = l.augmented_input_dim(), o = l.output_dim;
  std::vector<std::pair<std::string, std::vector<std::size_t>>> out;
  if (method == factor_method::kfac || method == factor_method::ekfac) {
    out.push_back({l.name + ".activation_covariance", {a, a}});
    out.push_back({l.name + ".gradient_covariance", {o, o}});
    out.push_back({l.name + ".activation_eigenvalues", {a}});
    out.push_back({l.name + ".gradient_eigenvalues", {o}});
    out.push_back({l.name + ".activation_eigenvectors", {a, a}});
    out.push_back({l.name + ".gradient_eigenvectors", {o, o}});
  }
  if (method == factor_method::ekfac || method == factor_method::diagonal) out.push_back({l.name + ".lambda", {o, a}});
  return out;
}

/// FNV-1a over bytes, continuing from `h`.
template <class = void>
inline std::uint64_t kfac_hash(std::uint64_t h, const void* data, std::size_t bytes) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (std::size_t i = 0; i < bytes; ++i) {
    h ^= p[i];
    h *= 0x100000001b3ULL;
  }
  return h;
}

template <class = void>
inline std::uint64_t kfac_hash(std::uint64_t h, std::string_view s) {
  const std::uint64_t n = s.size();
  return kfac_hash(kfac_hash(h, &n, sizeof n), s.data(), s.size());
}

template <class = void>
inline std::uint64_t kfac_hash(std::uint64_t h, const training_example& e) {
  const std::uint64_t n = e.tokens.size(), m = e.labels.size();
  h = kfac_hash(h, &n, sizeof n);
  h = kfac_hash(h, e.tokens.data(), e.tokens.size() * sizeof(token_id));
  h = kfac_hash(h, &m, sizeof m);
  return kfac_hash(h, e.labels.data(), e.labels.size() * sizeof(token_id));
}

}  // namespace detail

/// Writes fitted factors to a safetensors file (float32 tensors; options, model identity and layers
/// in __metadata__). The file is written whole or not at all (io::write_safetensors).
///
/// Example: `glassbox::io::save_kfac_factors("factors.safetensors", glassbox::fit_kfac_factors(model, train));`
template <class = void>
inline void save_kfac_factors(const std::filesystem::path& file, const kfac_factors& factors) {
  nlohmann::json j;
  j["method"] = std::string(to_string(factors.method));
  j["fisher"] = std::string(to_string(factors.fisher));
  j["damping"] = factors.damping ? nlohmann::json(*factors.damping) : nlohmann::json(nullptr);
  j["seed"] = factors.seed;
  j["covariance_examples"] = factors.covariance_examples;
  j["lambda_examples"] = factors.lambda_examples;
  j["model_parameters"] = factors.model_parameters;
  j["model_fingerprint"] = factors.model_fingerprint;
  nlohmann::json layers = nlohmann::json::array();
  std::vector<tensor_to_write> tensors;
  for (const auto& l : factors.layers) {
    layers.push_back({{"name", l.name},
                      {"input_dim", l.input_dim},
                      {"output_dim", l.output_dim},
                      {"has_bias", l.has_bias},
                      {"weight_offset", l.weight_offset},
                      {"bias_offset", l.bias_offset},
                      {"input_major", l.input_major},
                      {"covariance_tokens", l.covariance_tokens}});
    for (const auto& [name, shape] : detail::kfac_layer_tensors(l, factors.method)) {
      const std::string_view suffix = std::string_view(name).substr(l.name.size() + 1);
      const float* data = nullptr;
      std::size_t size = 0;
      auto pick = [&](const auto& t) {
        data = t.data();
        size = t.size();
      };
      if (suffix == "activation_covariance") pick(l.activation_covariance);
      if (suffix == "gradient_covariance") pick(l.gradient_covariance);
      if (suffix == "activation_eigenvalues") pick(l.activation_eigenvalues);
      if (suffix == "gradient_eigenvalues") pick(l.gradient_eigenvalues);
      if (suffix == "activation_eigenvectors") pick(l.activation_eigenvectors);
      if (suffix == "gradient_eigenvectors") pick(l.gradient_eigenvectors);
      if (suffix == "lambda") pick(l.lambda);
      glassbox::detail::require<shape_error>(
          data != nullptr || size == 0, "glassbox::io::save_kfac_factors: layer {} has no {}", l.name, suffix);
      tensors.push_back({name, dtype::f32, shape, std::span<const float>(data, size)});
    }
  }
  j["layers"] = std::move(layers);
  write_safetensors(file, tensors,
                    {{"format", "glassbox.kfac_factors"},
                     {"version", std::string(kfac_factors_version)},
                     {"kfac", j.dump()}});
}

/// Reads factors written by save_kfac_factors; io_error naming the file for anything malformed:
/// not a factors file, another version, unknown method, bad layer list, missing or misshapen tensors.
template <class = void>
inline kfac_factors load_kfac_factors(const std::filesystem::path& file) {
  constexpr std::string_view fn = "load_kfac_factors";
  const safetensors_reader reader(file);
  const auto& meta = reader.metadata();
  auto meta_value = [&](const std::string& key) -> std::string {
    const auto it = meta.find(key);
    if (it == meta.end()) detail::kfac_io_fail(fn, file, fmt::format("__metadata__ has no \"{}\": not a glassbox factors file", key));
    return it->second;
  };
  if (meta_value("format") != "glassbox.kfac_factors")
    detail::kfac_io_fail(fn, file,
                         fmt::format("format must be \"glassbox.kfac_factors\", got \"{}\"", meta_value("format")));
  if (meta_value("version") != kfac_factors_version)
    detail::kfac_io_fail(fn, file, fmt::format("version must be \"{}\", got \"{}\"", kfac_factors_version,
                                               meta_value("version")));
  kfac_factors f;
  try {
    const nlohmann::json j = nlohmann::json::parse(meta_value("kfac"));
    const auto method = factor_method_from_string(j.at("method").get<std::string>());
    if (!method)
      detail::kfac_io_fail(fn, file, fmt::format("method must be ekfac, kfac, diagonal or identity, got \"{}\"",
                                                 j.at("method").get<std::string>()));
    const auto fisher = fisher_type_from_string(j.at("fisher").get<std::string>());
    if (!fisher)
      detail::kfac_io_fail(fn, file, fmt::format("fisher must be sampled, empirical or expected, got \"{}\"",
                                                 j.at("fisher").get<std::string>()));
    f.method = *method;
    f.fisher = *fisher;
    if (!j.at("damping").is_null()) f.damping = j.at("damping").get<double>();
    f.seed = j.at("seed").get<std::uint64_t>();
    f.covariance_examples = j.at("covariance_examples").get<std::size_t>();
    f.lambda_examples = j.at("lambda_examples").get<std::size_t>();
    f.model_parameters = j.at("model_parameters").get<std::size_t>();
    f.model_fingerprint = j.at("model_fingerprint").get<std::string>();
    for (const auto& l : j.at("layers")) {
      kfac_layer_factors layer;
      layer.name = l.at("name").get<std::string>();
      layer.input_dim = l.at("input_dim").get<std::size_t>();
      layer.output_dim = l.at("output_dim").get<std::size_t>();
      layer.has_bias = l.at("has_bias").get<bool>();
      layer.weight_offset = l.at("weight_offset").get<std::size_t>();
      layer.bias_offset = l.at("bias_offset").get<std::size_t>();
      layer.input_major = l.at("input_major").get<bool>();
      layer.covariance_tokens = l.at("covariance_tokens").get<std::size_t>();
      if (layer.name.empty() || layer.input_dim == 0 || layer.output_dim == 0)
        detail::kfac_io_fail(fn, file, fmt::format("layer {} must have a name and non-zero dimensions", f.layers.size()));
      f.layers.push_back(std::move(layer));
    }
  } catch (const nlohmann::json::exception& e) {
    detail::kfac_io_fail(fn, file, fmt::format("the \"kfac\" metadata is malformed: {}", e.what()));
  }
  if (f.layers.empty()) detail::kfac_io_fail(fn, file, "the factors must track at least one layer, got none");
  std::size_t expected_tensors = 0;
  for (auto& l : f.layers) {
    for (const auto& tensor : detail::kfac_layer_tensors(l, f.method)) {
      // Named copies, not structured bindings: lambdas below capture them (clang 14 cannot).
      const auto& name = tensor.first;
      const auto& shape = tensor.second;
      ++expected_tensors;
      if (!reader.contains(name)) detail::kfac_io_fail(fn, file, fmt::format("tensor {} is missing", name));
      const auto& e = reader.entry(name);
      if (e.shape != shape)
        detail::kfac_io_fail(fn, file, fmt::format("tensor {} must have shape {}, got {}", name,
                                                   fmt::join(shape, " x "), fmt::join(e.shape, " x ")));
      const std::string_view suffix = std::string_view(name).substr(l.name.size() + 1);
      auto read2 = [&](tensor2& t) {
        t = tensor2({shape[0], shape[1]});
        reader.read_into(name, std::span<float>(t.data(), t.size()));
      };
      auto read1 = [&](tensor1& t) {
        t = tensor1::from_shape({shape[0]});
        reader.read_into(name, std::span<float>(t.data(), t.size()));
      };
      if (suffix == "activation_covariance") read2(l.activation_covariance);
      if (suffix == "gradient_covariance") read2(l.gradient_covariance);
      if (suffix == "activation_eigenvalues") read1(l.activation_eigenvalues);
      if (suffix == "gradient_eigenvalues") read1(l.gradient_eigenvalues);
      if (suffix == "activation_eigenvectors") read2(l.activation_eigenvectors);
      if (suffix == "gradient_eigenvectors") read2(l.gradient_eigenvectors);
      if (suffix == "lambda") read2(l.lambda);
    }
  }
  if (reader.entries().size() != expected_tensors || !reader.other_entries().empty())
    detail::kfac_io_fail(fn, file, fmt::format("the file must hold exactly the {} tensors of its layers, got {}",
                                               expected_tensors,
                                               reader.entries().size() + reader.other_entries().size()));
  return f;
}

/// load_kfac_factors, then checks that `model` is the model they were fitted on (parameter count
/// and fingerprint) and that they track layers the model reports: io_error naming the file if not.
template <class M>
kfac_factors load_kfac_factors(const std::filesystem::path& file, const M& model) {
  static_assert(check_kfac_model<M>());
  kfac_factors f = load_kfac_factors(file);
  if (model.parameter_count() != f.model_parameters)
    detail::kfac_io_fail("load_kfac_factors", file,
                         fmt::format("the factors were fitted on a model with {} parameters, this model has {}",
                                     f.model_parameters, model.parameter_count()));
  const std::string fp = parameter_fingerprint(model.parameters());
  if (fp != f.model_fingerprint)
    detail::kfac_io_fail("load_kfac_factors", file,
                         fmt::format("the factors were fitted on another model (fingerprint {}), this model has "
                                     "fingerprint {}",
                                     f.model_fingerprint, fp));
  return f;
}

/// An identifier of one scoring run: the factors (model, method, fit), the damping and query rank,
/// the queries and the training set. Shards written under one identifier are never read by another.
template <class = void>
inline std::string kfac_score_run_id(const kfac_factors& factors, std::span<const measurement> queries,
                                     std::span<const training_example> train, const kfac_score_options& options,
                                     std::string_view kind = "pairwise") {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  h = detail::kfac_hash(h, kind);
  h = detail::kfac_hash(h, factors.model_fingerprint);
  h = detail::kfac_hash(h, to_string(factors.method));
  h = detail::kfac_hash(h, to_string(factors.fisher));
  const std::uint64_t numbers[] = {factors.seed, factors.covariance_examples, factors.lambda_examples,
                                   factors.layers.size(), options.query_rank, queries.size(), train.size()};
  h = detail::kfac_hash(h, numbers, sizeof numbers);
  for (const auto& l : factors.layers) h = detail::kfac_hash(h, l.name);
  const std::optional<double> d = options.common.damping ? options.common.damping : factors.damping;
  const double damping = d ? *d : -1.0;
  h = detail::kfac_hash(h, &damping, sizeof damping);
  for (const auto& q : queries)
    for (const auto& t : q.terms()) {
      h = detail::kfac_hash(h, t.example);
      h = detail::kfac_hash(h, &t.weight, sizeof t.weight);
    }
  for (const auto& e : train) h = detail::kfac_hash(h, e);
  return fmt::format("{}:{:016x}", kind, h);
}

/// A kfac_shard_store keeping each finished shard as "scores-<begin>-<end>.safetensors" in `directory`
/// (created if needed), tagged with `run` (kfac_score_run_id) and `rows`. A shard file of another run,
/// or with other rows or bounds, is an io_error naming it; a malformed one too. Files are written
/// whole or not at all, so a run killed mid-write leaves no half shard.
///
/// Example:
///   auto opts = glassbox::kfac_score_options{};
///   opts.shards = glassbox::io::kfac_shard_directory("scores.d", glassbox::io::kfac_score_run_id(f, q, train, opts), q.size());
template <class = void>
inline kfac_shard_store kfac_shard_directory(const std::filesystem::path& directory, std::string run,
                                             std::size_t rows) {
  std::error_code ec;
  std::filesystem::create_directories(directory, ec);
  if (ec)
    throw io_error(fmt::format("glassbox::io::kfac_shard_directory: {}: cannot create the directory: {}",
                               directory.string(), ec.message()));
  auto path = [directory](std::size_t begin, std::size_t end) {
    return directory / fmt::format("scores-{:010}-{:010}.safetensors", begin, end);
  };
  kfac_shard_store store;
  store.load = [path, run, rows](std::size_t begin, std::size_t end, std::span<float> scores) {
    const auto file = path(begin, end);
    if (!std::filesystem::exists(file)) return false;
    constexpr std::string_view fn = "kfac_shard_directory";
    const safetensors_reader reader(file);
    const auto& meta = reader.metadata();
    auto value = [&](const std::string& key) {
      const auto it = meta.find(key);
      return it == meta.end() ? std::string("(none)") : it->second;
    };
    if (value("format") != "glassbox.influence_scores")
      detail::kfac_io_fail(fn, file, fmt::format("format must be \"glassbox.influence_scores\", got \"{}\"", value("format")));
    if (value("run") != run)
      detail::kfac_io_fail(fn, file,
                           fmt::format("the shard belongs to another run ({}), this run is {}: remove it or score into "
                                       "another directory",
                                       value("run"), run));
    if (value("rows") != std::to_string(rows) || value("begin") != std::to_string(begin) ||
        value("end") != std::to_string(end))
      detail::kfac_io_fail(fn, file,
                           fmt::format("the shard must hold {} rows of examples [{}, {}), got rows {} of [{}, {})",
                                       rows, begin, end, value("rows"), value("begin"), value("end")));
    const std::vector<std::size_t> shape{rows, end - begin};
    if (!reader.contains("scores") || reader.entry("scores").shape != shape)
      detail::kfac_io_fail(fn, file, fmt::format("tensor scores must exist with shape {} x {}", rows, end - begin));
    reader.read_into("scores", scores);
    return true;
  };
  store.save = [path, run, rows](std::size_t begin, std::size_t end, std::span<const float> scores) {
    const tensor_to_write t{"scores", dtype::f32, {rows, end - begin}, scores};
    write_safetensors(path(begin, end), std::span(&t, 1),
                      {{"format", "glassbox.influence_scores"},
                       {"run", run},
                       {"rows", std::to_string(rows)},
                       {"begin", std::to_string(begin)},
                       {"end", std::to_string(end)}});
  };
  return store;
}

/// Writes a score matrix [queries, N] as float32 tensor "scores" (`glassbox influence score --scores`).
template <class = void>
inline void save_influence_scores(const std::filesystem::path& file, const tensor2& scores,
                                  const std::map<std::string, std::string>& metadata = {}) {
  const tensor_to_write t{"scores", dtype::f32, {scores.shape(0), scores.shape(1)},
                          std::span<const float>(scores.data(), scores.size())};
  write_safetensors(file, std::span(&t, 1), metadata);
}

}  // namespace glassbox::io

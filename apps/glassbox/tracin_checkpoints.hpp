// The checkpoints `glassbox train --save-checkpoints K` writes for TracIn (docs/influence.md):
//
//   <out>/checkpoints/step-000400.safetensors ...   K models, evenly spaced in steps, the last = the final model
//   <out>/checkpoints/checkpoints.json              {"checkpoints": [{"step", "file", "learning_rate"}, ...]}
//
// "learning_rate" is the rate of the optimizer step that produced the checkpoint (TracInCP's eta_k);
// "file" is relative to the JSON's directory. load_tracin_checkpoints reads them back for tracin_influence.
#pragma once

#include <fmt/format.h>

#include <algorithm>
#include <cstddef>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "glassbox/core/error.hpp"
#include "glassbox/influence/tracin.hpp"
#include "glassbox/models/gpt2.hpp"
#include "glassbox/report/json.hpp"

namespace glassbox::cli {

/// One saved training checkpoint.
struct training_checkpoint {
  std::size_t step = 0;      ///< optimizer steps done when it was saved
  std::string file;          ///< its safetensors file, relative to the checkpoint list's directory
  double learning_rate = 0;  ///< the learning rate of the step that produced it
};

/// K steps evenly spaced over `steps` (round(i steps / K), i = 1..K): the last is `steps`.
inline std::vector<std::size_t> checkpoint_steps(std::size_t steps, std::size_t k) {
  detail::require(k >= 1 && k <= steps, "--save-checkpoints must be in [1, {}] (the steps), got {}", steps, k);
  std::vector<std::size_t> out;
  for (std::size_t i = 1; i <= k; ++i) out.push_back((i * steps + k / 2) / k);
  return out;
}

/// The file name of the checkpoint after `step` steps ("step-000400.safetensors").
inline std::string checkpoint_file_name(std::size_t step) { return fmt::format("step-{:06}.safetensors", step); }

/// The checkpoint list as JSON.
inline report::json checkpoint_list_json(const std::vector<training_checkpoint>& checkpoints) {
  report::json list = report::json::array();
  for (const auto& c : checkpoints)
    list.push_back({{"step", c.step}, {"file", c.file}, {"learning_rate", c.learning_rate}});
  return {{"checkpoints", std::move(list)}};
}

/// Reads a checkpoint list: `path` is checkpoints.json or the directory holding it. Files come back
/// as paths resolved against the list's directory.
inline std::vector<training_checkpoint> read_checkpoint_list(const std::filesystem::path& path) {
  const auto file = std::filesystem::is_directory(path) ? path / "checkpoints.json" : path;
  std::ifstream in(file);
  detail::require<io_error>(static_cast<bool>(in), "cannot read checkpoint list {}", file.string());
  try {
    const auto j = report::json::parse(in);
    std::vector<training_checkpoint> out;
    for (const auto& c : j.at("checkpoints")) {
      training_checkpoint t;
      t.step = c.at("step").get<std::size_t>();
      t.file = (file.parent_path() / c.at("file").get<std::string>()).string();
      t.learning_rate = c.at("learning_rate").get<double>();
      out.push_back(std::move(t));
    }
    detail::require<io_error>(!out.empty(), "checkpoint list {} must list at least one checkpoint", file.string());
    return out;
  } catch (const report::json::exception& e) {
    detail::fail<io_error>("checkpoint list {}: {}", file.string(), e.what());
  }
}

/// The TracIn checkpoints of a list (checkpoints.json or its directory): each model's flat
/// parameters, checked against `parameters` (the model being explained), with its learning rate.
inline std::vector<tracin_checkpoint> load_tracin_checkpoints(const std::filesystem::path& path,
                                                              std::size_t parameters) {
  std::vector<tracin_checkpoint> out;
  for (const auto& c : read_checkpoint_list(path)) {
    const auto m = models::gpt2::load(c.file);
    detail::require<io_error>(m.parameter_count() == parameters, "checkpoint {} has {} parameters, the model {}",
                              c.file, m.parameter_count(), parameters);
    tracin_checkpoint t;
    t.parameters = tensor1::from_shape({parameters});
    std::copy(m.parameters().begin(), m.parameters().end(), t.parameters.begin());
    t.learning_rate = c.learning_rate;
    out.push_back(std::move(t));
  }
  return out;
}

}  // namespace glassbox::cli

// glassbox info: the model's configuration, parameter count and vocabulary.
#include <fmt/format.h>

#include "cli.hpp"
#include "glassbox/core/build_info.hpp"
#include "glassbox/core/execution.hpp"

namespace glassbox::cli {

runner add_info_command(CLI::App& app) {
  struct state {
    std::string model, json;
  };
  auto s = std::make_shared<state>();
  auto* cmd = app.add_subcommand("info", "Print the model's configuration, parameter count and vocabulary size");
  cmd->add_option("--model", s->model, "model file or directory (default: the bundled model)");
  cmd->add_option("--json", s->json, "also write the information as JSON to this file ('-' = stdout)");
  return [s] {
    const auto m = load_model(s->model);
    const auto& c = m.model.config();
    const std::size_t parameters = m.model.parameter_count();
    report::json j;
    j["model"] = m.path.string();
    j["n_layer"] = c.n_layer;
    j["n_head"] = c.n_head;
    j["n_embd"] = c.n_embd;
    j["n_inner"] = c.inner();
    j["n_positions"] = c.n_positions;
    j["vocab_size"] = c.vocab_size;
    j["layer_norm_epsilon"] = c.layer_norm_epsilon;
    j["tie_word_embeddings"] = c.tie_word_embeddings;
    j["pad_token_id"] = c.pad_token_id ? report::json(*c.pad_token_id) : report::json(nullptr);
    j["parameters"] = parameters;
    j["vocabulary"] = m.has_vocabulary() ? report::json((m.path / "vocab.txt").string()) : report::json(nullptr);
    j["tokenizer"] = m.bpe ? report::json("bpe") : m.has_vocabulary() ? report::json("words") : report::json(nullptr);
    if (m.bpe) j["bpe"] = {{"tokens", m.bpe->size()}, {"merges", m.bpe->merge_count()}};
    const build_configuration build = compiled_configuration();
    const simd_level cpu = cpu_simd_level();
    report::json b;
    b["simd"] = std::string(to_string(build.simd));
    b["openmp"] = build.openmp;
    b["blas"] = build.blas;
    b["hardware_threads"] = resolve_threads(0);
    b["cpu_simd"] = std::string(to_string(cpu));
    j["build"] = std::move(b);
    if (s->json != "-") {
      fmt::print("model        {}\n", m.path.string());
      fmt::print("architecture GPT-2: {} layers, {} heads, width {}, MLP width {}, {} positions\n", c.n_layer,
                 c.n_head, c.n_embd, c.inner(), c.n_positions);
      fmt::print("parameters   {} ({:.2f} M)\n", parameters, static_cast<double>(parameters) / 1e6);
      fmt::print("vocabulary   {} tokens{}\n", c.vocab_size,
                 m.bpe
                     ? fmt::format(" (GPT-2 byte-level BPE: {} tokens, {} merges)", m.bpe->size(), m.bpe->merge_count())
                 : m.has_vocabulary() ? std::string()
                                      : std::string(" (no tokenizer files: use --tokens for input)"));
      fmt::print("layer norm   eps {}\n", c.layer_norm_epsilon);
      fmt::print("head         {}\n", c.tie_word_embeddings ? "tied to the token embeddings" : "untied lm_head");
      if (c.pad_token_id)
        fmt::print("pad token    {} ({})\n", *c.pad_token_id,
                   m.token_strings(std::vector<token_id>{*c.pad_token_id})[0]);
      fmt::print("build        {} (Eigen: {}), OpenMP {}, matrix products by {}\n", to_string(build.simd),
                 build.eigen_simd, build.openmp ? "on" : "off", build.blas ? "the BLAS (OpenBLAS)" : "Eigen");
      fmt::print("this CPU     {}, {} hardware threads\n", to_string(cpu), resolve_threads(0));
      // docs/building.md, "Speed of the programs you build": without AVX2/FMA a GPT-2 pass takes about 2x
      // as long; without OpenMP the thread budget cannot reach inside a pass.
      if (build.simd < cpu && !build.blas)
        fmt::print(stderr,
                   "warning: this program was built for {}, but this CPU has {}: model passes run about 2x slower "
                   "than in a build with -march=native or OpenBLAS (docs/building.md)\n",
                   to_string(build.simd), to_string(cpu));
      if (!build.openmp && resolve_threads(0) > 1)
        fmt::print(stderr,
                   "warning: built without OpenMP: a single model pass uses one core of {} (docs/building.md)\n",
                   resolve_threads(0));
    }
    if (!s->json.empty()) write_json(s->json, j);
  };
}

}  // namespace glassbox::cli

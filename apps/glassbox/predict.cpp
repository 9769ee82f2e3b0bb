// glassbox predict: the top-K next tokens after the input, with probabilities, and the logits as JSON.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "cli.hpp"

namespace glassbox::cli {

runner add_predict_command(CLI::App& app) {
  struct state {
    std::string model, json;
    input_options input;
    std::size_t top = 5;
  };
  auto s = std::make_shared<state>();
  auto* cmd = app.add_subcommand("predict", "Print the most likely next tokens after the input");
  cmd->add_option("--model", s->model, "model file or directory (default: the bundled model)");
  s->input.add_to(*cmd);
  cmd->add_option("--top", s->top, "how many next tokens to print")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--json", s->json,
                  "write {tokens, token_ids, logits: one row per position} to this file ('-' = stdout)");
  return [s] {
    const auto m = load_model(s->model);
    const token_sequence ids = s->input.resolve(m);
    const tensor2 logits = m.model.logits(ids);
    const std::size_t T = logits.shape(0), V = logits.shape(1);
    const auto words = m.token_strings(ids);
    if (s->json != "-") {
      // Softmax of the last row, in double.
      std::vector<double> p(V);
      double top = -INFINITY;
      for (std::size_t v = 0; v < V; ++v) top = std::max(top, static_cast<double>(logits(T - 1, v)));
      double sum = 0;
      for (std::size_t v = 0; v < V; ++v) sum += p[v] = std::exp(static_cast<double>(logits(T - 1, v)) - top);
      for (auto& x : p) x /= sum;
      std::vector<std::size_t> order(V);
      std::iota(order.begin(), order.end(), std::size_t{0});
      const std::size_t k = std::min(s->top, V);
      std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(k), order.end(),
                        [&](std::size_t a, std::size_t b) { return p[a] > p[b] || (p[a] == p[b] && a < b); });
      std::string text;
      for (const auto& w : words) text += (text.empty() ? "" : " ") + w;
      fmt::print("input   {}\n", text);
      fmt::print("next token after position {}:\n", T - 1);
      for (std::size_t i = 0; i < k; ++i) {
        const auto id = static_cast<token_id>(order[i]);
        fmt::print("  {:>2}. {:<16} id {:>6}  p = {:.4f}  logit = {:.4f}\n", i + 1,
                   m.token_strings(std::vector<token_id>{id})[0], id, p[order[i]], logits(T - 1, order[i]));
      }
    }
    if (!s->json.empty()) {
      report::json j;
      j["tokens"] = words;
      j["token_ids"] = ids;
      report::json rows = report::json::array();
      for (std::size_t t = 0; t < T; ++t) {
        report::json row = report::json::array();
        for (std::size_t v = 0; v < V; ++v) row.push_back(logits(t, v));
        rows.push_back(std::move(row));
      }
      j["logits"] = std::move(rows);
      write_json(s->json, j);
    }
  };
}

}  // namespace glassbox::cli

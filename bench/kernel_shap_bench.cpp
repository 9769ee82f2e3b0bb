// KernelSHAP accuracy at an equal budget of model evaluations: glassbox::kernel_shap (paired
// coalitions, sizes enumerated from the extremes inward, stratified sampling without replacement,
// exact efficiency constraint) against plain KernelSHAP as most libraries run Lundberg & Lee's
// estimator (coalitions drawn independently with replacement from the Shapley kernel's size
// distribution, uniformly within a size, the same constrained regression), both measured by the
// mean squared error against exact Shapley values (glassbox::shapley_exact).
//
// Every review token is a feature; the marker `=>` is held fixed; absent tokens become <pad>. The
// target is the log-probability of the model's predicted next token after the marker.
//
//   kernel_shap_bench [--model PATH] [--data generate|FILE] [--reviews N] [--seeds S]
//                     [--budgets 64,256,1024] [--min-tokens 12] [--max-tokens 16] [--threads T]
//                     [--batch B] [--data-seed D] [--model-seed M] [--init-scale X]
//
// --model: a GPT-2 checkpoint (safetensors, glassbox::models::gpt2::load) over the review
//          vocabulary; without it a random small GPT-2 (2 layers, width 64, 4 heads) is used,
//          its weight matrices and embeddings multiplied by --init-scale (default 1: GPT-2's own
//          initialisation, under which the model is nearly additive in its tokens; 8 makes it as
//          nonlinear as a trained model's interactions are expected to be).
// --data:  `generate` (default) draws reviews from glassbox::datasets::review_generator; a FILE
//          holds one review per line as space-separated words of the review vocabulary (the
//          marker is appended when missing).
#include <fmt/core.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <glassbox/attribution.hpp>
#include <glassbox/core.hpp>
#include <glassbox/datasets/reviews.hpp>
#include <glassbox/models/gpt2.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

namespace {

using namespace glassbox;

struct settings {
  std::optional<std::string> model_path;
  std::string data = "generate";
  std::size_t reviews = 50;
  std::size_t seeds = 10;
  std::vector<std::size_t> budgets = {64, 256, 1024};
  std::size_t min_tokens = 12;
  std::size_t max_tokens = 16;
  std::size_t threads = 2;
  std::size_t batch = 64;
  std::uint64_t data_seed = 2024;
  std::uint64_t model_seed = 7;
  double init_scale = 1.0;
};

[[noreturn]] void usage(const std::string& problem) {
  fmt::print(stderr, "kernel_shap_bench: {}\n", problem);
  fmt::print(stderr,
             "usage: kernel_shap_bench [--model PATH] [--data generate|FILE] [--reviews N] [--seeds S]\n"
             "                         [--budgets 64,256,1024] [--min-tokens 12] [--max-tokens 16]\n"
             "                         [--threads T] [--batch B] [--data-seed D] [--model-seed M]\n"
             "                         [--init-scale X]\n");
  std::exit(2);
}

std::size_t parse_count(const std::string& name, const std::string& text) {
  std::size_t used = 0;
  unsigned long long v = 0;
  try {
    v = std::stoull(text, &used);
  } catch (...) {
    usage(fmt::format("{} must be a non-negative integer, got '{}'", name, text));
  }
  if (used != text.size()) usage(fmt::format("{} must be a non-negative integer, got '{}'", name, text));
  return static_cast<std::size_t>(v);
}

settings parse(int argc, char** argv) {
  settings s;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--help" || flag == "-h") usage("explains KernelSHAP's error at equal budgets");
    if (i + 1 >= argc) usage(fmt::format("{} needs a value", flag));
    const std::string value = argv[++i];
    if (flag == "--model") {
      s.model_path = value;
    } else if (flag == "--data") {
      s.data = value;
    } else if (flag == "--reviews") {
      s.reviews = parse_count(flag, value);
    } else if (flag == "--seeds") {
      s.seeds = parse_count(flag, value);
    } else if (flag == "--budgets") {
      s.budgets.clear();
      std::stringstream in(value);
      std::string part;
      while (std::getline(in, part, ',')) s.budgets.push_back(parse_count(flag, part));
    } else if (flag == "--min-tokens") {
      s.min_tokens = parse_count(flag, value);
    } else if (flag == "--max-tokens") {
      s.max_tokens = parse_count(flag, value);
    } else if (flag == "--threads") {
      s.threads = parse_count(flag, value);
    } else if (flag == "--batch") {
      s.batch = parse_count(flag, value);
    } else if (flag == "--data-seed") {
      s.data_seed = parse_count(flag, value);
    } else if (flag == "--model-seed") {
      s.model_seed = parse_count(flag, value);
    } else if (flag == "--init-scale") {
      try {
        s.init_scale = std::stod(value);
      } catch (...) {
        usage(fmt::format("--init-scale must be a number, got '{}'", value));
      }
    } else {
      usage(fmt::format("unknown option {}", flag));
    }
  }
  if (s.reviews == 0 || s.seeds == 0 || s.budgets.empty()) usage("reviews, seeds and budgets must be positive");
  if (s.min_tokens < 2 || s.max_tokens < s.min_tokens || s.max_tokens > shapley_exact_options::max_features)
    usage(fmt::format("need 2 <= min-tokens <= max-tokens <= {}", shapley_exact_options::max_features));
  return s;
}

// Reviews whose review part (before the marker) has min..max tokens, each ending with the marker.
std::vector<token_sequence> load_reviews(const settings& s) {
  std::vector<token_sequence> out;
  if (s.data == "generate") {
    datasets::review_options options;
    options.min_length = s.min_tokens;
    options.max_length = std::max<std::size_t>(16, s.max_tokens);
    const datasets::review_generator generator(options);
    for (std::uint64_t index = 0; out.size() < s.reviews; ++index) {
      const auto example = generator.example(s.data_seed, index);
      if (example.review_length() >= s.min_tokens && example.review_length() <= s.max_tokens)
        out.push_back(example.tokens);
    }
    return out;
  }
  std::ifstream in(s.data);
  if (!in) usage(fmt::format("cannot read --data {}", s.data));
  std::string line;
  while (out.size() < s.reviews && std::getline(in, line)) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    token_sequence tokens = datasets::encode_review(line);
    if (tokens.back() != datasets::review_marker_id) tokens.push_back(datasets::review_marker_id);
    const std::size_t length = tokens.size() - 1;
    if (length >= s.min_tokens && length <= s.max_tokens) out.push_back(std::move(tokens));
  }
  if (out.size() < s.reviews)
    fmt::print(stderr, "kernel_shap_bench: {} holds only {} reviews of {} to {} tokens\n", s.data, out.size(),
               s.min_tokens, s.max_tokens);
  return out;
}

// Plain KernelSHAP (Lundberg & Lee 2017 as most libraries run it, e.g. Captum's KernelShap):
// `budget` coalitions drawn independently with replacement, the size s with probability
// proportional to the Shapley kernel's mass (n - 1) / (s (n - s)), the members uniformly among the
// subsets of that size; every draw has weight 1 (the kernel is in the sampling distribution) and
// the same exactly constrained regression as glassbox::kernel_shap.
template <class M>
std::vector<double> plain_kernel_shap(const M& model, token_span tokens, const target& t,
                                      const std::vector<int>& feature_map, std::size_t budget, std::uint64_t seed,
                                      const execution_options& exec) {
  detail::coalition_evaluator<M> eval(model, tokens, t, baseline::token(datasets::review_pad_id), feature_map,
                                      "plain_kernel_shap");
  const std::size_t n = eval.features();
  rng gen(seed);
  std::vector<double> cumulative(n, 0.0);  // cumulative[s]: mass of sizes 1..s
  for (std::size_t s = 1; s < n; ++s) cumulative[s] = cumulative[s - 1] + detail::shapley_kernel_size_mass(n, s);
  detail::coalition_design design;
  design.features = n;
  for (std::size_t j = 0; j < budget; ++j) {
    const double u = gen.uniform() * cumulative[n - 1];
    std::size_t s = 1;
    while (s < n - 1 && cumulative[s] <= u) ++s;
    design.add(detail::random_subset(n, s, gen), 1.0, false);
  }
  const auto values = eval.evaluate(
      design.size() + 2,
      [&](std::size_t i, std::span<std::uint8_t> present) {
        if (i < 2)
          std::fill(present.begin(), present.end(), static_cast<std::uint8_t>(i == 0));
        else
          std::copy_n(design.masks.data() + (i - 2) * n, n, present.data());
      },
      exec);
  return detail::kernel_shap_solve(design, std::span<const double>(values).subspan(2), values[0], values[1]);
}

// Per-feature squared error (the marker, held fixed, is not a feature).
double squared_error(const std::vector<double>& estimate, const std::vector<double>& exact, std::size_t features) {
  double s = 0;
  for (std::size_t i = 0; i < features; ++i) s += (estimate[i] - exact[i]) * (estimate[i] - exact[i]);
  return s;
}

template <class M>
int run(const M& model, const settings& s, const std::string& model_name) {
  const auto reviews = load_reviews(s);
  execution_options exec;
  exec.batch_size = s.batch;
  exec.threads = s.threads;
  const auto start = std::chrono::steady_clock::now();

  const std::size_t b = s.budgets.size();
  std::vector<double> plain_error(b, 0.0), ours_error(b, 0.0), unpaired_error(b, 0.0), sampling_error(b, 0.0);
  std::vector<std::size_t> exact_runs(b, 0);
  double feature_count = 0, exact_variance = 0;
  std::size_t lengths_min = 1000, lengths_max = 0, exact_evaluations = 0;
  for (const auto& tokens : reviews) {
    const std::size_t n = tokens.size() - 1;
    lengths_min = std::min(lengths_min, n);
    lengths_max = std::max(lengths_max, n);
    std::vector<int> feature_map(tokens.size());
    for (std::size_t i = 0; i < n; ++i) feature_map[i] = static_cast<int>(i);
    feature_map.back() = -1;  // the marker stays
    const auto last = model.logits_at(tokens, std::vector<std::size_t>{tokens.size() - 1});
    const auto predicted = static_cast<token_id>(std::max_element(last.begin(), last.end()) - last.begin());
    const target t = target::log_probability(predicted);
    const auto base = baseline::token(datasets::review_pad_id);

    const auto exact = shapley_exact(model, tokens, t, {base, feature_map, exec});
    exact_evaluations += exact.model_evaluations;
    for (std::size_t i = 0; i < n; ++i) exact_variance += exact.scores[i] * exact.scores[i];
    feature_count += static_cast<double>(n) * static_cast<double>(s.seeds);
    for (std::size_t k = 0; k < b; ++k) {
      const std::size_t budget = s.budgets[k];
      for (std::uint64_t seed = 0; seed < s.seeds; ++seed) {
        const auto ours = kernel_shap(
            model, tokens, t,
            {.n_samples = budget, .baseline = base, .feature_map = feature_map, .seed = seed, .execution = exec});
        const auto unpaired = kernel_shap(model, tokens, t,
                                          {.n_samples = budget,
                                           .paired = false,
                                           .baseline = base,
                                           .feature_map = feature_map,
                                           .seed = seed,
                                           .execution = exec});
        const auto plain = plain_kernel_shap(model, tokens, t, feature_map, budget, seed, exec);
        // Shapley value sampling at (about) the same budget: P permutations cost P (n - 1) + 2.
        const std::size_t permutations = std::max<std::size_t>(2, budget / (n - 1)) / 2 * 2;
        const auto sampled = shapley_sampling(model, tokens, t,
                                              {.n_samples = permutations,
                                               .antithetic = true,
                                               .baseline = base,
                                               .feature_map = feature_map,
                                               .seed = seed,
                                               .execution = exec});
        ours_error[k] += squared_error(ours.scores, exact.scores, n);
        unpaired_error[k] += squared_error(unpaired.scores, exact.scores, n);
        plain_error[k] += squared_error(plain, exact.scores, n);
        sampling_error[k] += squared_error(sampled.scores, exact.scores, n);
        if (std::get<bool>(std::find_if(ours.options.begin(), ours.options.end(), [](const auto& o) {
                             return o.name == "exact";
                           })->value))
          ++exact_runs[k];
      }
    }
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const double per_review = feature_count / static_cast<double>(s.seeds);

  fmt::print("KernelSHAP: mean squared error against exact Shapley values at equal model-evaluation budgets\n");
  fmt::print("model: {}\n", model_name);
  fmt::print(
      "data: {} reviews of {} to {} tokens ({}), {} seeds each; target: log-probability of the predicted "
      "next token after the marker; baseline <pad>\n",
      reviews.size(), lengths_min, lengths_max, s.data == "generate" ? "review generator" : s.data, s.seeds);
  fmt::print("mean square of the exact Shapley values: {:.4g} (exact Shapley used {} evaluations in all)\n\n",
             exact_variance / per_review, exact_evaluations);
  fmt::print(
      "| budget | plain KernelSHAP | glassbox kernel_shap | ratio | glassbox unpaired | shapley_sampling "
      "(antithetic) |\n");
  fmt::print("|---:|---:|---:|---:|---:|---:|\n");
  for (std::size_t k = 0; k < b; ++k) {
    const double plain = plain_error[k] / feature_count, ours = ours_error[k] / feature_count;
    fmt::print("| {} | {:.3e} | {:.3e}{} | {:.1f}x | {:.3e} | {:.3e} |\n", s.budgets[k], plain, ours,
               exact_runs[k] > 0 ? fmt::format(" ({} of {} runs exact)", exact_runs[k], reviews.size() * s.seeds)
                                 : std::string(),
               ours > 0 ? plain / ours : INFINITY, unpaired_error[k] / feature_count,
               sampling_error[k] / feature_count);
  }
  fmt::print("\n{:.1f} s\n", seconds);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const settings s = parse(argc, argv);
  try {
    if (s.model_path) {
      const auto model = models::gpt2::load(*s.model_path);
      return run(model, s, *s.model_path);
    }
    models::gpt2_config config;
    config.n_layer = 2;
    config.n_head = 4;
    config.n_embd = 64;
    config.n_positions = 64;
    config.vocab_size = datasets::review_vocabulary().size();
    config.pad_token_id = datasets::review_pad_id;
    auto model = models::gpt2::random(config, s.model_seed);
    if (s.init_scale != 1.0) {  // scale every weight matrix and embedding; LayerNorm and biases stay
      std::vector<float> p(model.parameters().begin(), model.parameters().end());
      for (const auto& info : model.parameter_table()) {
        const bool layer_norm = info.name.find("ln_") != std::string::npos;
        const bool bias = info.name.size() >= 5 && info.name.compare(info.name.size() - 5, 5, ".bias") == 0;
        if (layer_norm || bias) continue;
        for (std::size_t i = 0; i < info.size; ++i) p[info.offset + i] *= static_cast<float>(s.init_scale);
      }
      model.set_parameters(p);
    }
    return run(
        model, s,
        fmt::format("random GPT-2 (seed {}: {} layers, width {}, {} heads, vocabulary {}, weights x {} of "
                    "GPT-2's initialisation)",
                    s.model_seed, config.n_layer, config.n_embd, config.n_head, config.vocab_size, s.init_scale));
  } catch (const std::exception& e) {
    fmt::print(stderr, "kernel_shap_bench: {}\n", e.what());
    return 1;
  }
}

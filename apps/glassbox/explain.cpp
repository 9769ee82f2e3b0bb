// glassbox explain: which input tokens a prediction depends on, by any local attribution method of
// the library (perturbation, gradient, noise tunnel, layer, generation), as a terminal heatmap,
// JSON (docs/json-schema.md) and a self-contained HTML page.
//
//   glassbox explain --text "the food was not good . =>"                 integrated gradients of the top next token
//   glassbox explain --text "..." --method kernel-shap --samples 256     any method, its options
//   glassbox explain --text "..." --method all                           one row per method
//   glassbox explain --text "the food was good . =>" --continuation positive   generation attribution
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <numeric>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "cli.hpp"
#include "glassbox/attribution.hpp"
#include "glassbox/datasets/reviews.hpp"
#include "glassbox/report/html.hpp"
#include "glassbox/report/terminal.hpp"

namespace glassbox::cli {
namespace {

// ---------------------------------------------------------------------------------------------
// The methods and the method options each one reads.

struct method_spec {
  std::string_view name;                  // the command-line name, e.g. "kernel-shap"
  std::string_view family;                // "perturbation", "gradient" or "layer"
  std::vector<std::string_view> options;  // the method options it reads (besides --batch-size, --threads)
};

const std::vector<method_spec>& method_table() {
  static const std::vector<method_spec> table = {
      {"occlusion", "perturbation", {"--baseline", "--window", "--stride", "--groups"}},
      {"feature-ablation", "perturbation", {"--baseline", "--groups"}},
      {"lime",
       "perturbation",
       {"--baseline", "--groups", "--samples", "--seed", "--kernel-width", "--surrogate", "--alpha"}},
      {"kernel-shap", "perturbation", {"--baseline", "--groups", "--samples", "--seed", "--unpaired"}},
      {"shapley-sampling", "perturbation", {"--baseline", "--groups", "--samples", "--seed", "--antithetic"}},
      {"exact-shapley", "perturbation", {"--baseline", "--groups"}},
      {"saliency", "gradient", {"--signed", "--aggregation"}},
      {"input-x-gradient", "gradient", {"--aggregation"}},
      {"integrated-gradients",
       "gradient",
       {"--baseline", "--steps", "--rule", "--adaptive", "--tolerance", "--max-steps", "--internal-batch-size",
        "--aggregation"}},
      {"gradient-shap", "gradient", {"--baseline", "--samples", "--stdev", "--seed", "--aggregation"}},
      // The inner method's options are added by allowed_options (they depend on --inner).
      {"smoothgrad", "gradient", {"--inner", "--nt-type", "--samples", "--stdev", "--seed"}},
      {"layer-integrated-gradients",
       "layer",
       {"--layer", "--baseline", "--steps", "--rule", "--adaptive", "--tolerance", "--max-steps",
        "--internal-batch-size", "--aggregation"}},
      {"layer-gradient-x-activation", "layer", {"--layer", "--aggregation"}},
  };
  return table;
}

// Every method option, for the check that a given option applies to the chosen method.
constexpr std::string_view all_method_options[] = {"--baseline",
                                                   "--window",
                                                   "--stride",
                                                   "--groups",
                                                   "--samples",
                                                   "--seed",
                                                   "--kernel-width",
                                                   "--surrogate",
                                                   "--alpha",
                                                   "--unpaired",
                                                   "--antithetic",
                                                   "--signed",
                                                   "--aggregation",
                                                   "--steps",
                                                   "--rule",
                                                   "--adaptive",
                                                   "--tolerance",
                                                   "--max-steps",
                                                   "--internal-batch-size",
                                                   "--stdev",
                                                   "--inner",
                                                   "--nt-type",
                                                   "--layer"};

std::string lower_dashed(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = c == '_' ? '-' : static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string method_names() {
  std::string names;
  for (const auto& m : method_table()) names += fmt::format("{}{}", names.empty() ? "" : ", ", m.name);
  return names;
}

// The method of a --method value (underscores or dashes; a few aliases); nullptr for "all".
const method_spec* find_method(std::string_view value) {
  std::string name = lower_dashed(value);
  if (name == "all") return nullptr;
  if (name == "shapley-exact") name = "exact-shapley";
  if (name == "ig") name = "integrated-gradients";
  if (name == "layer-ig") name = "layer-integrated-gradients";
  for (const auto& m : method_table())
    if (m.name == name) return &m;
  detail::fail("--method: unknown method '{}' (expected one of: {}, all)", value, method_names());
}

// ---------------------------------------------------------------------------------------------
// Parsed command line.

struct explain_state {
  std::string model, json, html, method = "integrated-gradients", color = "auto";
  input_options input;
  // What is explained.
  std::string target_word, contrast_words, target_kind = "log-prob", continuation;
  std::int64_t target_id = -1, contrast_id = -1, position = -1;
  std::size_t generate = 0;
  // Method options (applied only when given; otherwise the method's own default).
  std::string baseline, rule, surrogate, inner = "saliency", nt_type = "smoothgrad", aggregation, groups;
  std::size_t steps = 50, samples = 0, window = 1, stride = 1, layer = 0, max_steps = 1024, internal_batch_size = 0;
  std::uint64_t seed = 0;
  double kernel_width = 1.0, alpha = 1.0, stdev = 1.0, tolerance = 1e-3;
  bool adaptive = false, antithetic = false, unpaired = false, signed_gradient = false;
  // Execution and display.
  std::size_t batch_size = 32, threads = 0, top = 10;
  std::map<std::string, CLI::Option*, std::less<>> options;  // by long name

  bool given(std::string_view name) const {
    const auto it = options.find(name);
    return it != options.end() && it->second->count() > 0;
  }
};

// The options the chosen method reads (for smoothgrad: its own and its inner method's).
std::set<std::string_view> allowed_options(const method_spec& m, const explain_state& s) {
  std::set<std::string_view> allowed(m.options.begin(), m.options.end());
  if (m.name == "smoothgrad") {
    const method_spec* inner = find_method(s.inner);
    if (inner == nullptr ||
        (inner->name != "saliency" && inner->name != "input-x-gradient" && inner->name != "integrated-gradients"))
      detail::fail("--inner must be saliency, input-x-gradient or integrated-gradients, got '{}'", s.inner);
    for (auto o : inner->options) allowed.insert(o);
  }
  return allowed;
}

// Fails when a method option was given that `m` does not read (nothing is silently ignored).
void check_options_apply(const method_spec& m, const explain_state& s) {
  const auto allowed = allowed_options(m, s);
  for (auto name : all_method_options)
    if (s.given(name) && !allowed.contains(name)) {
      std::string list;
      for (auto a : allowed) list += fmt::format("{}{}", list.empty() ? "" : " ", a);
      detail::fail("{} does not apply to --method {} (its options: {})", name, m.name, list.empty() ? "none" : list);
    }
}

// ---------------------------------------------------------------------------------------------
// Option values.

token_id word_id(const loaded_model& m, const std::string& word, std::string_view option) {
  if (!m.has_vocabulary())
    detail::fail("{} needs a vocabulary, and model {} has no vocab.txt; pass the id instead", option, m.path.string());
  const auto id = m.vocabulary.find(word);
  if (!id) detail::fail("{}: unknown word '{}' (not in the vocabulary of {})", option, word, m.path.string());
  return *id;
}

token_id checked_id(const loaded_model& m, std::int64_t id, std::string_view option) {
  if (id < 0 || static_cast<std::size_t>(id) >= m.model.vocab_size())
    detail::fail("{}: token id {} is out of range (the vocabulary has {} tokens)", option, id, m.model.vocab_size());
  return static_cast<token_id>(id);
}

std::vector<std::string> split_words(const std::string& text) {
  std::vector<std::string> out;
  for (std::size_t i = 0; i < text.size();) {
    const std::size_t b = text.find_first_not_of(" \t\n", i);
    if (b == std::string::npos) break;
    std::size_t e = text.find_first_of(" \t\n", b);
    if (e == std::string::npos) e = text.size();
    out.push_back(text.substr(b, e - b));
    i = e;
  }
  return out;
}

// A baseline: pad, unk, zero, removal, token:ID, token:WORD or a bare id.
baseline parse_baseline(const loaded_model& m, std::string_view value) {
  const std::string v = lower_dashed(value);
  if (v == "pad") return baseline::pad();
  if (v == "zero") return baseline::zero();
  if (v == "removal" || v == "remove") return baseline::removal();
  if (v == "unk") {
    if (!m.has_vocabulary() || !m.vocabulary.unk_id())
      detail::fail("--baseline unk needs a vocabulary with an <unk> token; pass --baseline token:ID");
    return baseline::token(*m.vocabulary.unk_id());
  }
  std::string_view rest = value;
  if (rest.starts_with("token:")) rest.remove_prefix(6);
  std::int64_t id = 0;
  const auto [ptr, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), id);
  if (!rest.empty() && ec == std::errc() && ptr == rest.data() + rest.size())
    return baseline::token(checked_id(m, id, "--baseline"));
  if (value.starts_with("token:") && m.has_vocabulary() && m.vocabulary.find(rest))
    return baseline::token(*m.vocabulary.find(rest));
  detail::fail("--baseline must be pad, unk, zero, removal, token:ID, token:WORD or an id, got '{}'", value);
}

// A comma-separated list of baselines (several for integrated gradients / GradientSHAP).
std::vector<baseline> parse_baselines(const loaded_model& m, const std::string& value) {
  std::vector<baseline> out;
  std::size_t start = 0;
  while (start <= value.size()) {
    std::size_t end = value.find(',', start);
    if (end == std::string::npos) end = value.size();
    std::string item = value.substr(start, end - start);
    item.erase(0, item.find_first_not_of(' '));
    item.erase(item.find_last_not_of(' ') + 1);
    out.push_back(parse_baseline(m, item));
    start = end + 1;
  }
  return out;
}

baseline single_baseline(const loaded_model& m, const explain_state& s, std::string_view method) {
  const auto list = parse_baselines(m, s.baseline);
  if (list.size() != 1)
    detail::fail("--baseline: method {} takes one baseline, got {} ('{}')", method, list.size(), s.baseline);
  return list[0];
}

integration_rule parse_rule(const std::string& value) {
  const std::string v = lower_dashed(value);
  for (auto r : {integration_rule::gauss_legendre, integration_rule::riemann_left, integration_rule::riemann_right,
                 integration_rule::riemann_middle, integration_rule::riemann_trapezoid})
    if (lower_dashed(to_string(r)) == v) return r;
  if (v == "gausslegendre" || v == "gl") return integration_rule::gauss_legendre;
  if (v == "left" || v == "right" || v == "middle" || v == "trapezoid") return parse_rule("riemann-" + v);
  detail::fail(
      "--rule must be gauss-legendre, riemann-left, riemann-right, riemann-middle or riemann-trapezoid, got '{}'",
      value);
}

token_aggregation parse_aggregation(const std::string& value) {
  const std::string v = lower_dashed(value);
  if (v == "sum") return token_aggregation::sum;
  if (v == "l2" || v == "l2-norm") return token_aggregation::l2_norm;
  if (v == "sum-abs" || v == "abs") return token_aggregation::sum_abs;
  detail::fail("--aggregation must be sum, l2-norm or sum-abs, got '{}'", value);
}

noise_tunnel_type parse_nt_type(const std::string& value) {
  const std::string v = lower_dashed(value);
  if (v == "smoothgrad") return noise_tunnel_type::smoothgrad;
  if (v == "smoothgrad-squared" || v == "smoothgrad-sq") return noise_tunnel_type::smoothgrad_squared;
  if (v == "vargrad") return noise_tunnel_type::vargrad;
  detail::fail("--nt-type must be smoothgrad, smoothgrad-squared or vargrad, got '{}'", value);
}

target_kind parse_kind(const std::string& value) {
  const std::string v = lower_dashed(value);
  if (v == "logit") return target_kind::logit;
  if (v == "log-prob" || v == "log-probability" || v == "logprob") return target_kind::log_probability;
  if (v == "prob" || v == "probability") return target_kind::probability;
  detail::fail("--target-kind must be logit, log-prob or prob, got '{}'", value);
}

std::vector<int> parse_groups(const std::string& value, std::size_t n_tokens) {
  std::vector<int> out;
  std::size_t start = 0;
  while (start <= value.size()) {
    std::size_t end = value.find(',', start);
    if (end == std::string::npos) end = value.size();
    std::string_view item(value.data() + start, end - start);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    int g = 0;
    const auto [ptr, ec] = std::from_chars(item.data(), item.data() + item.size(), g);
    if (item.empty() || ec != std::errc() || ptr != item.data() + item.size() || g < -1)
      detail::fail("--groups: '{}' is not a group id (expected comma-separated integers >= -1)", item);
    out.push_back(g);
    start = end + 1;
  }
  if (out.size() != n_tokens)
    detail::fail("--groups must have one group id per input token ({}), got {}", n_tokens, out.size());
  return out;
}

// ---------------------------------------------------------------------------------------------
// Running a method.

progress_callback progress_bar() {
  if (isatty(STDERR_FILENO) == 0) return {};
  return [](const progress& p) {
    if (p.total == 0) return true;
    const std::size_t width = 30, filled = p.done * width / p.total;
    std::fprintf(stderr, "\r%-28.*s [%s%s] %zu/%zu", static_cast<int>(p.stage.size()), p.stage.data(),
                 std::string(filled, '#').c_str(), std::string(width - filled, ' ').c_str(), p.done, p.total);
    if (p.done >= p.total) std::fprintf(stderr, "\r\x1b[K");
    std::fflush(stderr);
    return true;
  };
}

execution_options execution(const explain_state& s) {
  execution_options e;
  e.batch_size = s.batch_size;
  e.threads = s.threads;
  e.on_progress = progress_bar();
  return e;
}

template <class Options>
void set_perturbation_common(Options& o, const explain_state& s, const loaded_model& m, token_span tokens,
                             std::string_view method) {
  if (s.given("--baseline")) o.baseline = single_baseline(m, s, method);
  if (s.given("--groups")) o.feature_map = parse_groups(s.groups, tokens.size());
  o.execution = execution(s);
}

void set_path_options(integrated_gradients_options& o, const explain_state& s, const loaded_model& m) {
  if (s.given("--steps")) o.steps = s.steps;
  if (s.given("--rule")) o.rule = parse_rule(s.rule);
  if (s.given("--baseline")) {
    auto list = parse_baselines(m, s.baseline);
    if (list.size() == 1)
      o.baseline = list[0];
    else
      o.baselines = std::move(list);
  }
  if (s.given("--adaptive")) o.adaptive = s.adaptive;
  if (s.given("--tolerance")) o.tolerance = s.tolerance;
  if (s.given("--max-steps")) o.max_steps = s.max_steps;
  if (s.given("--internal-batch-size")) o.internal_batch_size = s.internal_batch_size;
  if (s.given("--aggregation")) o.aggregation = parse_aggregation(s.aggregation);
  o.execution = execution(s);
}

void check_layer(const loaded_model& m, const explain_state& s) {
  const std::size_t layers = m.model.config().n_layer;
  if (s.layer > layers)
    detail::fail("--layer must be in [0, {}] (0 = the embeddings output, {} = the last block's output), got {}", layers,
                 layers, s.layer);
}

// Runs method `spec` on `tokens` for target `t` with the options of `s`.
attribution_result run_method(const method_spec& spec, const explain_state& s, const loaded_model& m, token_span tokens,
                              const target& t) {
  const auto& model = m.model;
  const std::string_view name = spec.name;
  if (name == "occlusion") {
    occlusion_options o;
    set_perturbation_common(o, s, m, tokens, name);
    if (s.given("--window")) o.window = s.window;
    if (s.given("--stride")) o.stride = s.stride;
    return occlusion(model, tokens, t, o);
  }
  if (name == "feature-ablation") {
    feature_ablation_options o;
    set_perturbation_common(o, s, m, tokens, name);
    return feature_ablation(model, tokens, t, o);
  }
  if (name == "lime") {
    lime_options o;
    set_perturbation_common(o, s, m, tokens, name);
    if (s.given("--samples")) o.n_samples = s.samples;
    if (s.given("--seed")) o.seed = s.seed;
    if (s.given("--kernel-width")) o.kernel_width = s.kernel_width;
    if (s.given("--surrogate")) {
      const std::string v = lower_dashed(s.surrogate);
      if (v != "ridge" && v != "lasso") detail::fail("--surrogate must be ridge or lasso, got '{}'", s.surrogate);
      o.surrogate = v == "ridge" ? lime_surrogate::ridge : lime_surrogate::lasso;
    }
    if (s.given("--alpha")) o.alpha = s.alpha;
    return lime(model, tokens, t, o);
  }
  if (name == "kernel-shap") {
    kernel_shap_options o;
    set_perturbation_common(o, s, m, tokens, name);
    if (s.given("--samples")) o.n_samples = s.samples;
    if (s.given("--seed")) o.seed = s.seed;
    if (s.given("--unpaired")) o.paired = !s.unpaired;
    return kernel_shap(model, tokens, t, o);
  }
  if (name == "shapley-sampling") {
    shapley_sampling_options o;
    set_perturbation_common(o, s, m, tokens, name);
    if (s.given("--samples")) o.n_samples = s.samples;
    if (s.given("--seed")) o.seed = s.seed;
    if (s.given("--antithetic")) o.antithetic = s.antithetic;
    return shapley_sampling(model, tokens, t, o);
  }
  if (name == "exact-shapley") {
    shapley_exact_options o;
    set_perturbation_common(o, s, m, tokens, name);
    return shapley_exact(model, tokens, t, o);
  }
  if (name == "saliency") {
    saliency_options o;
    if (s.given("--signed")) o.absolute = !s.signed_gradient;
    if (s.given("--aggregation")) o.aggregation = parse_aggregation(s.aggregation);
    o.execution = execution(s);
    return saliency(model, tokens, t, o);
  }
  if (name == "input-x-gradient") {
    input_x_gradient_options o;
    if (s.given("--aggregation")) o.aggregation = parse_aggregation(s.aggregation);
    o.execution = execution(s);
    return input_x_gradient(model, tokens, t, o);
  }
  if (name == "integrated-gradients") {
    integrated_gradients_options o;
    set_path_options(o, s, m);
    return integrated_gradients(model, tokens, t, o);
  }
  if (name == "gradient-shap") {
    gradient_shap_options o;
    if (s.given("--baseline")) o.baselines = parse_baselines(m, s.baseline);
    if (s.given("--samples")) o.samples = s.samples;
    if (s.given("--stdev")) o.stdev = s.stdev;
    if (s.given("--seed")) o.seed = s.seed;
    if (s.given("--aggregation")) o.aggregation = parse_aggregation(s.aggregation);
    o.execution = execution(s);
    return gradient_shap(model, tokens, t, o);
  }
  if (name == "smoothgrad") {
    noise_tunnel_options o;
    if (s.given("--nt-type")) o.type = parse_nt_type(s.nt_type);
    if (s.given("--samples")) o.samples = s.samples;
    if (s.given("--stdev")) o.stdev = s.stdev;
    if (s.given("--seed")) o.seed = s.seed;
    o.execution = execution(s);
    const std::string inner(find_method(s.inner)->name);
    if (inner == "saliency") {
      saliency_options i;
      if (s.given("--signed")) i.absolute = !s.signed_gradient;
      if (s.given("--aggregation")) i.aggregation = parse_aggregation(s.aggregation);
      return noise_tunnel(model, tokens, t, i, o);
    }
    if (inner == "input-x-gradient") {
      input_x_gradient_options i;
      if (s.given("--aggregation")) i.aggregation = parse_aggregation(s.aggregation);
      return noise_tunnel(model, tokens, t, i, o);
    }
    integrated_gradients_options i;
    set_path_options(i, s, m);
    return noise_tunnel(model, tokens, t, i, o);
  }
  if (name == "layer-integrated-gradients") {
    check_layer(m, s);
    layer_integrated_gradients_options o;
    o.layer = s.layer;
    if (s.given("--steps")) o.steps = s.steps;
    if (s.given("--rule")) o.rule = parse_rule(s.rule);
    if (s.given("--baseline")) o.baseline = single_baseline(m, s, name);
    if (s.given("--adaptive")) o.adaptive = s.adaptive;
    if (s.given("--tolerance")) o.tolerance = s.tolerance;
    if (s.given("--max-steps")) o.max_steps = s.max_steps;
    if (s.given("--internal-batch-size")) o.internal_batch_size = s.internal_batch_size;
    if (s.given("--aggregation")) o.aggregation = parse_aggregation(s.aggregation);
    o.execution = execution(s);
    return layer_integrated_gradients(model, tokens, t, o);
  }
  if (name == "layer-gradient-x-activation") {
    check_layer(m, s);
    layer_gradient_x_activation_options o;
    o.layer = s.layer;
    if (s.given("--aggregation")) o.aggregation = parse_aggregation(s.aggregation);
    o.execution = execution(s);
    return layer_gradient_x_activation(model, tokens, t, o);
  }
  detail::fail("--method: unknown method '{}'", name);
}

// ---------------------------------------------------------------------------------------------
// The target.

struct resolved_target {
  target t = target::logit(0);
  std::string description;  // in words, for the terminal and HTML
  std::size_t row = 0;      // the output row it reads
};

double softmax_probability(const tensor2& logits, std::size_t row, token_id token) {
  const std::size_t V = logits.shape(1);
  double top = -INFINITY, sum = 0;
  for (std::size_t v = 0; v < V; ++v) top = std::max(top, static_cast<double>(logits(row, v)));
  for (std::size_t v = 0; v < V; ++v) sum += std::exp(static_cast<double>(logits(row, v)) - top);
  return std::exp(static_cast<double>(logits(row, static_cast<std::size_t>(token))) - top) / sum;
}

resolved_target make_target(const explain_state& s, const loaded_model& m, token_span ids) {
  const tensor2 logits = m.model.logits(ids);
  const auto T = static_cast<std::int64_t>(logits.shape(0));
  if (s.position < -T || s.position >= T)
    detail::fail("--position must be in [{}, {}] for an input of {} tokens, got {}", -T, T - 1, T, s.position);
  const auto row = static_cast<std::size_t>(s.position < 0 ? T + s.position : s.position);
  if (s.given("--target") && s.given("--target-id")) detail::fail("--target and --target-id exclude each other");
  if (s.given("--contrast") && s.given("--contrast-id"))
    detail::fail("--contrast and --contrast-id exclude each other");
  const auto words = m.token_strings(ids);
  token_id token = 0;
  std::string why;
  if (s.given("--target")) {
    token = word_id(m, s.target_word, "--target");
  } else if (s.given("--target-id")) {
    token = checked_id(m, s.target_id, "--target-id");
  } else {
    std::size_t best = 0;
    for (std::size_t v = 1; v < logits.shape(1); ++v)
      if (logits(row, v) > logits(row, best)) best = v;
    token = static_cast<token_id>(best);
    why = ", the model's top prediction";
  }
  const target_kind kind = parse_kind(s.target_kind);
  auto quoted = [&](token_id id) {
    return fmt::format("'{}' (id {})", m.token_strings(std::vector<token_id>{id})[0], id);
  };
  const std::string where = fmt::format("after position {} '{}'", row, words[row]);
  const double p = softmax_probability(logits, row, token);
  resolved_target r;
  r.row = row;
  if (s.given("--contrast") || s.given("--contrast-id")) {
    const token_id foil = s.given("--contrast") ? word_id(m, s.contrast_words, "--contrast")
                                                : checked_id(m, s.contrast_id, "--contrast-id");
    if (foil == token) detail::fail("--contrast: the foil must differ from the target token {}", quoted(token));
    r.t = target::contrast(token, foil, kind, s.position);
    r.description = fmt::format("{} of {} minus {} {} (p = {:.4f} vs {:.4f}){}", to_string(kind), quoted(token),
                                quoted(foil), where, p, softmax_probability(logits, row, foil), why);
    return r;
  }
  r.t = kind == target_kind::logit         ? target::logit(token, s.position)
        : kind == target_kind::probability ? target::probability(token, s.position)
                                           : target::log_prob(token, s.position);
  r.description = fmt::format("{} of {} {} (p = {:.4f}){}", to_string(kind), quoted(token), where, p, why);
  return r;
}

// ---------------------------------------------------------------------------------------------
// Ground truth of the review language.

bool has_review_vocabulary(const loaded_model& m) {
  if (!m.has_vocabulary() || m.vocabulary.size() != datasets::review_vocab_size()) return false;
  return m.vocabulary.all_tokens() == datasets::review_vocabulary();
}

// The label rule's verdict when the model speaks the review language and the target is the
// prediction after the final marker; nothing otherwise.
std::optional<datasets::review_analysis> review_truth(const loaded_model& m, token_span ids, std::size_t row) {
  if (!has_review_vocabulary(m) || ids.empty() || ids.back() != datasets::review_marker_id || row + 1 != ids.size())
    return std::nullopt;
  try {
    return datasets::label_of(ids);
  } catch (const error&) {
    return std::nullopt;  // e.g. a marker inside the review: the rule has nothing to say
  }
}

// Rank (1 = largest) of position `p` by |score| among the review tokens (the marker excluded).
std::size_t rank_of(const std::vector<double>& scores, std::size_t review_length, std::size_t p) {
  std::size_t rank = 1;
  for (std::size_t i = 0; i < review_length; ++i)
    if (i != p && (std::abs(scores[i]) > std::abs(scores[p]) || (std::abs(scores[i]) == std::abs(scores[p]) && i < p)))
      ++rank;
  return rank;
}

// How many of the top-|rationale| review tokens by |score| are in the rationale.
std::size_t rationale_hits(const std::vector<double>& scores, const datasets::review_analysis& a) {
  std::vector<std::size_t> order(a.review_length);
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t x, std::size_t y) { return std::abs(scores[x]) > std::abs(scores[y]); });
  const std::size_t k = std::min(a.rationale.size(), order.size());
  std::size_t hits = 0;
  for (std::size_t i = 0; i < k; ++i)
    hits += std::find(a.rationale.begin(), a.rationale.end(), order[i]) != a.rationale.end() ? 1 : 0;
  return hits;
}

std::string truth_summary(const datasets::review_analysis& a, const std::vector<std::string>& words) {
  if (!a.has_label()) return fmt::format("no label ({})", to_string(a.verdict));
  std::string rationale, positions;
  for (std::size_t p : a.rationale) {
    rationale += (rationale.empty() ? "" : " ") + words[p];
    positions += fmt::format("{}{}", positions.empty() ? "" : ", ", p);
  }
  std::string notes = std::string(to_string(a.verdict));
  if (a.negated) notes += ", negated";
  if (a.intensified) notes += ", intensified";
  if (a.contrast) notes += ", contrast";
  return fmt::format("label {} ({}); rationale \"{}\" (positions {})", a.polarity > 0 ? "positive" : "negative", notes,
                     rationale, positions);
}

std::string truth_scoring(const datasets::review_analysis& a, const std::vector<double>& scores,
                          const std::vector<std::string>& words) {
  if (!a.has_label() || a.deciding_words.empty() || a.review_length == 0) return {};
  std::string out;
  for (std::size_t d : a.deciding_words)
    out += fmt::format("{}deciding word '{}' (position {}) ranks {} of {} review tokens by |score|",
                       out.empty() ? "" : "; ", words[d], d, rank_of(scores, a.review_length, d), a.review_length);
  out += fmt::format("; top {} by |score|: {} in the rationale", a.rationale.size(), rationale_hits(scores, a));
  return out;
}

// ---------------------------------------------------------------------------------------------
// Output.

bool use_color(const explain_state& s) {
  const std::string c = lower_dashed(s.color);
  if (c == "always") return true;
  if (c == "never") return false;
  if (c != "auto") detail::fail("--color must be auto, always or never, got '{}'", s.color);
  return isatty(STDOUT_FILENO) != 0 && std::getenv("NO_COLOR") == nullptr;
}

std::string colored(std::string_view text, double score, double scale, bool color) {
  if (!color) return std::string(text);
  const report::rgb c = report::diverging_color(score, scale);
  const int fg = report::needs_light_text(c) ? 255 : 0;
  return fmt::format("\x1b[48;2;{};{};{}m\x1b[38;2;{};{};{}m{}\x1b[0m", c.r, c.g, c.b, fg, fg, fg, text);
}

std::string options_line(const std::vector<named_option>& options) {
  std::string out;
  for (const auto& o : options) {
    std::string value = report::detail::option_json(o.value).dump();
    if (value.size() >= 2 && value.front() == '"') value = value.substr(1, value.size() - 2);
    out += fmt::format("{}{}={}", out.empty() ? "" : " ", o.name, value);
  }
  return out;
}

std::string joined(const std::vector<std::string>& words) {
  std::string out;
  for (const auto& w : words) out += (out.empty() ? "" : " ") + w;
  return out;
}

void print_single(const attribution_result& r, const std::vector<std::string>& words, const resolved_target& target,
                  const std::optional<datasets::review_analysis>& truth, const explain_state& s) {
  fmt::print("input     {}\n", joined(words));
  fmt::print("target    {}\n", target.description);
  if (truth) {
    fmt::print("truth     {}\n", truth_summary(*truth, words));
  }
  fmt::print("\n");
  report::terminal_options view;
  view.color = use_color(s);
  view.top = s.top;
  std::string heat = report::terminal_heatmap(r, words, view);
  fmt::print("{}", heat);
  if (!r.standard_errors.empty()) {
    double mean = 0, top = 0;
    for (double e : r.standard_errors) {
      mean += e / static_cast<double>(r.standard_errors.size());
      top = std::max(top, e);
    }
    fmt::print("standard errors: mean {:.3g}, max {:.3g}\n", mean, top);
  }
  if (truth) {
    const std::string scoring = truth_scoring(*truth, r.scores, words);
    if (!scoring.empty()) fmt::print("truth: {}\n", scoring);
  }
  fmt::print("options: {}\n", options_line(r.options));
}

std::string truth_html(const std::optional<datasets::review_analysis>& truth, const std::vector<double>* scores,
                       const std::vector<std::string>& words) {
  if (!truth) return {};
  std::string out = fmt::format("<div class=\"meta\"><span>ground truth: {}</span></div>\n",
                                report::html_escape(truth_summary(*truth, words)));
  if (scores != nullptr) {
    const std::string scoring = truth_scoring(*truth, *scores, words);
    if (!scoring.empty())
      out += fmt::format("<div class=\"meta\"><span>{}</span></div>\n", report::html_escape(scoring));
  }
  return out;
}

// --- generation ---

std::string generation_table(const sequence_attribution_result& r, const std::vector<std::string>& words, bool color) {
  const std::size_t G = r.scores.shape(0), S = r.scores.shape(1);
  std::vector<double> all(r.scores.begin(), r.scores.end());
  const double scale = report::max_abs(all);
  std::vector<std::size_t> width(S);
  for (std::size_t j = 0; j < S; ++j) width[j] = std::max<std::size_t>(words[j].size(), 10);
  std::size_t label = 12;
  for (std::size_t g = 0; g < G; ++g) label = std::max(label, words[r.prompt_length + g].size() + 2);
  std::string out = fmt::format("{:<{}}", "generated", label);
  for (std::size_t j = 0; j < S; ++j) out += fmt::format(" {:>{}}", words[j], width[j]);
  out += fmt::format("  {:>10}", "f");
  if (!r.convergence_deltas.empty()) out += fmt::format(" {:>9}", "delta");
  out += '\n';
  for (std::size_t g = 0; g < G; ++g) {
    out += fmt::format("{:<{}}", words[r.prompt_length + g], label);
    for (std::size_t j = 0; j < S; ++j) {
      if (j >= r.prompt_length + g) {
        out += fmt::format(" {:>{}}", ".", width[j]);
        continue;
      }
      const double v = r.scores(g, j);
      out += ' ';
      out += colored(fmt::format("{:>+{}.3g}", v, width[j]), v, scale, color);
    }
    out += fmt::format("  {:>10.4g}", r.target_values[g]);
    if (!r.convergence_deltas.empty()) out += fmt::format(" {:>9.2g}", r.convergence_deltas[g]);
    out += '\n';
  }
  return out;
}

std::string generation_html(const sequence_attribution_result& r, const std::vector<std::string>& words,
                            const std::string& intro) {
  const std::size_t G = r.scores.shape(0), S = r.scores.shape(1);
  std::vector<double> all(r.scores.begin(), r.scores.end());
  const double scale = report::max_abs(all);
  std::string body = fmt::format("<h1>{} (generation)</h1>\n{}", report::html_escape(r.method), intro);
  body += fmt::format("<div class=\"meta\"><span>{} model evaluations</span></div>\n", r.model_evaluations);
  body += "<table><tr><th class=\"l\">generated</th>";
  for (std::size_t j = 0; j < S; ++j) body += fmt::format("<th>{}</th>", report::html_escape(words[j]));
  body += "<th>f</th>";
  if (!r.convergence_deltas.empty()) body += "<th>delta</th>";
  body += "</tr>\n";
  for (std::size_t g = 0; g < G; ++g) {
    body += fmt::format("<tr><td class=\"l\">{}</td>", report::html_escape(words[r.prompt_length + g]));
    for (std::size_t j = 0; j < S; ++j) {
      if (j >= r.prompt_length + g) {
        body += "<td></td>";
        continue;
      }
      const double v = r.scores(g, j);
      const report::rgb c = report::diverging_color(v, scale);
      body += fmt::format("<td style=\"background:{};color:{}\" title=\"{} &rarr; {}: {:+.6g}\">{:+.3f}</td>",
                          report::css_color(c), report::needs_light_text(c) ? "#fff" : "#000",
                          report::html_escape(words[j]), report::html_escape(words[r.prompt_length + g]), v, v);
    }
    body += fmt::format("<td>{:.4f}</td>", r.target_values[g]);
    if (!r.convergence_deltas.empty()) body += fmt::format("<td>{:.3g}</td>", r.convergence_deltas[g]);
    body += "</tr>\n";
  }
  body += "</table>\n" + report::diverging_legend(scale) + "<h2>Options</h2>\n<table>";
  for (const auto& o : r.options)
    body += fmt::format("<tr><td class=\"l\">{}</td><td class=\"l\">{}</td></tr>", report::html_escape(o.name),
                        report::html_escape(report::detail::option_json(o.value).dump()));
  body += "</table>\n";
  return report::html_document(fmt::format("glassbox: {} (generation)", r.method), body);
}

void run_generation(const method_spec& spec, const explain_state& s, const loaded_model& m,
                    const token_sequence& prompt) {
  for (auto name : {"--target", "--target-id", "--position", "--contrast-id"})
    if (s.given(name))
      detail::fail("{} does not apply to generation attribution (each generated token is the target of its row)", name);
  if (s.given("--continuation") && s.given("--generate"))
    detail::fail("--continuation and --generate exclude each other");
  generation_options g;
  g.kind = parse_kind(s.target_kind);
  token_sequence continuation;
  if (s.given("--continuation")) {
    if (m.has_vocabulary()) {
      for (const auto& w : split_words(s.continuation)) continuation.push_back(word_id(m, w, "--continuation"));
    } else {
      for (token_id id : parse_token_list(s.continuation)) continuation.push_back(checked_id(m, id, "--continuation"));
    }
    if (continuation.empty()) detail::fail("--continuation is empty");
    if (prompt.size() + continuation.size() > m.model.max_positions())
      detail::fail("the prompt and continuation have {} tokens; the model accepts at most {}",
                   prompt.size() + continuation.size(), m.model.max_positions());
  }
  const std::size_t generated = s.given("--generate") ? s.generate : continuation.size();
  if (s.given("--generate") && prompt.size() + generated > m.model.max_positions())
    detail::fail("--generate: the prompt and {} new tokens exceed the model's {} positions", generated,
                 m.model.max_positions());
  if (s.given("--contrast")) {
    for (const auto& w : split_words(s.contrast_words)) g.foils.push_back(word_id(m, w, "--contrast"));
    if (g.foils.size() == 1 && generated > 1) g.foils.assign(generated, g.foils[0]);
    if (g.foils.size() != generated)
      detail::fail("--contrast: give one foil word, or one per generated token ({}), got {}", generated,
                   g.foils.size());
  }
  auto method = [&](token_span prefix, const target& t) { return run_method(spec, s, m, prefix, t); };
  const sequence_attribution_result r =
      s.given("--generate") ? attribute_generation(m.model, token_span(prompt), s.generate, method, g)
                            : attribute_generation(m.model, token_span(prompt), token_span(continuation), method, g);
  const auto words = m.token_strings(r.token_ids);
  const std::vector<std::string> prompt_words(words.begin(),
                                              words.begin() + static_cast<std::ptrdiff_t>(r.prompt_length));
  const std::vector<std::string> gen_words(words.begin() + static_cast<std::ptrdiff_t>(r.prompt_length), words.end());
  std::string target_text = fmt::format("{} of each generated token", to_string(g.kind));
  if (!g.foils.empty()) target_text += fmt::format(" minus that of its foil ({})", joined(m.token_strings(g.foils)));
  if (s.json != "-") {
    fmt::print("prompt     {}\n", joined(prompt_words));
    fmt::print("generated  {}{}\n", joined(gen_words), s.given("--generate") ? " (greedy)" : " (teacher forced)");
    fmt::print("target     {}\n", target_text);
    fmt::print("method     {} | {} model evaluations\n\n", r.method, r.model_evaluations);
    fmt::print("{}", generation_table(r, words, use_color(s)));
    fmt::print("options: {}\n", options_line(r.options));
  }
  if (!s.json.empty()) write_json(s.json, report::to_json(r, words));
  if (!s.html.empty()) {
    const std::string intro = fmt::format(
        "<div class=\"meta\"><span>prompt: {}</span><span>generated: {}</span><span>target: {}</span></div>\n",
        report::html_escape(joined(prompt_words)), report::html_escape(joined(gen_words)),
        report::html_escape(target_text));
    write_text(s.html, generation_html(r, words, intro));
  }
}

// --- one method, or all of them ---

void run_single(const method_spec& spec, const explain_state& s, const loaded_model& m, const token_sequence& ids) {
  const resolved_target target = make_target(s, m, ids);
  const attribution_result r = run_method(spec, s, m, ids, target.t);
  const auto words = m.token_strings(ids);
  const auto truth = review_truth(m, ids, target.row);
  if (s.json != "-") print_single(r, words, target, truth, s);
  if (!s.json.empty()) write_json(s.json, report::to_json(r, words));
  if (!s.html.empty()) {
    const std::string intro =
        fmt::format(
            "<div class=\"meta\"><span>input: {}</span></div>\n<div class=\"meta\"><span>target: {}</span></div>\n",
            report::html_escape(joined(words)), report::html_escape(target.description)) +
        truth_html(truth, &r.scores, words);
    write_text(s.html, report::html_document(fmt::format("glassbox explain: {}", r.method),
                                             intro + report::attribution_fragment(r, words)));
  }
}

void run_all(const explain_state& s, const loaded_model& m, const token_sequence& ids) {
  for (auto name : all_method_options)
    if (s.given(name) && name != "--seed" && name != "--layer")
      detail::fail("{} does not apply to --method all (every method runs with its defaults; --seed and --layer apply)",
                   name);
  if (s.given("--layer")) check_layer(m, s);
  const resolved_target target = make_target(s, m, ids);
  const auto words = m.token_strings(ids);
  const auto truth = review_truth(m, ids, target.row);
  const bool color = use_color(s);
  struct row {
    std::string name;
    std::optional<attribution_result> result;
    std::string failure;
  };
  std::vector<row> rows;
  for (const auto& spec : method_table()) {
    row r{std::string(spec.name), std::nullopt, {}};
    try {
      r.result = run_method(spec, s, m, ids, target.t);
    } catch (const cancelled&) {
      throw;
    } catch (const error& e) {
      r.failure = e.what();
    }
    rows.push_back(std::move(r));
  }
  if (s.json != "-") {
    fmt::print("input     {}\n", joined(words));
    fmt::print("target    {}\n", target.description);
    if (truth) fmt::print("truth     {}\n", truth_summary(*truth, words));
    fmt::print("\nscores (each row coloured on its own scale){}\n",
               color ? "" : "; '*' marks the row's largest |score|");
    std::vector<std::size_t> width(words.size());
    for (std::size_t j = 0; j < words.size(); ++j) width[j] = std::max<std::size_t>(words[j].size(), 10);
    const std::size_t label = 28;
    std::string head = fmt::format("{:<{}}", "method", label);
    for (std::size_t j = 0; j < words.size(); ++j) head += fmt::format(" {:>{}}", words[j], width[j]);
    head += fmt::format("  {:>9} {:>7}", "delta", "evals");
    if (truth && truth->has_label()) head += fmt::format(" {:>5} {:>9}", "rank", "rationale");
    fmt::print("{}\n", head);
    for (const auto& r : rows) {
      std::string line = fmt::format("{:<{}}", r.name, label);
      if (!r.result) {
        fmt::print("{}not run: {}\n", line, r.failure);
        continue;
      }
      const auto& a = *r.result;
      const double scale = report::max_abs(a.scores);
      for (std::size_t j = 0; j < words.size(); ++j) {
        const bool largest = std::abs(a.scores[j]) == scale && scale > 0;
        const std::string cell =
            fmt::format("{:>+{}.3g}{}", a.scores[j], width[j] - (color ? 0 : 1), color ? "" : (largest ? "*" : " "));
        line += ' ';
        line += colored(cell, a.scores[j], scale, color);
      }
      line += a.convergence_delta ? fmt::format("  {:>9.2g}", *a.convergence_delta) : fmt::format("  {:>9}", "-");
      line += fmt::format(" {:>7}", a.model_evaluations);
      if (truth && truth->has_label() && !truth->deciding_words.empty() && truth->review_length > 0)
        line += fmt::format(" {:>5} {:>9}", rank_of(a.scores, truth->review_length, truth->deciding_words[0]),
                            fmt::format("{}/{}", rationale_hits(a.scores, *truth), truth->rationale.size()));
      fmt::print("{}\n", line);
    }
    if (truth && truth->has_label())
      fmt::print(
          "rank: the deciding word's rank by |score| among the {} review tokens; rationale: how many of the top "
          "{} tokens by |score| are in the rationale\n",
          truth->review_length, truth->rationale.size());
  }
  if (!s.json.empty()) {
    report::json all = report::json::array();
    for (const auto& r : rows)
      if (r.result) all.push_back(report::to_json(*r.result, words));
    write_json(s.json, all);
  }
  if (!s.html.empty()) {
    std::string body =
        fmt::format(
            "<div class=\"meta\"><span>input: {}</span></div>\n<div class=\"meta\"><span>target: {}</span></div>\n",
            report::html_escape(joined(words)), report::html_escape(target.description)) +
        truth_html(truth, nullptr, words);
    for (const auto& r : rows) {
      if (r.result) {
        body += report::attribution_fragment(*r.result, words) + truth_html(truth, &r.result->scores, words);
      } else {
        body += fmt::format("<h1>{}</h1><div class=\"meta\">not run: {}</div>\n", report::html_escape(r.name),
                            report::html_escape(r.failure));
      }
    }
    write_text(s.html, report::html_document("glassbox explain: every method", body));
  }
}

// Fails before any work when an output file cannot be written (its directory does not exist).
void check_output_path(const std::string& file, std::string_view option) {
  if (file.empty() || file == "-") return;
  const std::filesystem::path p(file);
  const std::filesystem::path dir = p.parent_path();
  if ((!dir.empty() && !std::filesystem::is_directory(dir)) || std::filesystem::is_directory(p))
    detail::fail("cannot write {} (given to {}): {}", file, option,
                 std::filesystem::is_directory(p) ? "it is a directory" : "its directory does not exist");
}

}  // namespace

runner add_explain_command(CLI::App& app) {
  auto s = std::make_shared<explain_state>();
  auto* cmd = app.add_subcommand(
      "explain",
      "Attribute a prediction to the input tokens: a heatmap of scores, with --json and --html outputs.\n"
      "The default target is the log-probability of the model's top next token after the last input token.");
  auto add = [&](CLI::Option* o) {
    std::string name = o->get_name();  // "--long" (the first long name)
    s->options[name] = o;
    return o;
  };
  add(cmd->add_option("--model", s->model, "model file or directory (default: the bundled model)"));
  s->input.add_to(*cmd);
  add(cmd->add_option("--method", s->method,
                      fmt::format("attribution method: {}, or all (every method with its defaults, one row each)",
                                  method_names()))
          ->capture_default_str());
  // What is explained.
  add(cmd->add_option("--target,--target-token", s->target_word,
                      "the explained next token, a word (default: the model's top prediction)"));
  add(cmd->add_option("--target-id", s->target_id, "the explained next token, an id"));
  add(cmd->add_option("--position", s->position,
                      "the output row whose prediction is explained; negative counts from the end")
          ->capture_default_str());
  add(cmd->add_option("--target-kind", s->target_kind, "the explained scalar: logit, log-prob or prob")
          ->capture_default_str());
  add(cmd->add_option("--contrast,--foil", s->contrast_words,
                      "contrastive target: f(target) - f(foil) for this word (generation: one word, or one per "
                      "generated token)"));
  add(cmd->add_option("--contrast-id", s->contrast_id, "contrastive target: the foil as an id"));
  add(cmd->add_option("--continuation", s->continuation,
                      "generation attribution: attribute each of these words (ids without a vocabulary), teacher "
                      "forced after the input, to the tokens before it; prints the [generated, source] matrix"));
  add(cmd->add_option("--generate", s->generate, "generation attribution of N greedily generated tokens")
          ->check(CLI::PositiveNumber));
  // Method options.
  add(cmd->add_option("--baseline", s->baseline,
                      "the absent token: pad, unk, zero, removal, token:ID, token:WORD or an id (default: the "
                      "method's, pad for perturbation methods, zero for gradient methods); a comma-separated list "
                      "averages integrated gradients / draws GradientSHAP baselines"));
  add(cmd->add_option("--steps", s->steps, "integrated gradients: quadrature points")->capture_default_str());
  add(cmd->add_option("--rule", s->rule,
                      "integrated gradients: gauss-legendre (default), riemann-left, riemann-right, riemann-middle, "
                      "riemann-trapezoid"));
  add(cmd->add_flag("--adaptive", s->adaptive, "integrated gradients: double the steps until |delta| <= --tolerance"));
  add(cmd->add_option("--tolerance", s->tolerance, "integrated gradients, adaptive: the accepted |delta|")
          ->capture_default_str());
  add(cmd->add_option("--max-steps", s->max_steps, "integrated gradients, adaptive: the largest step count")
          ->capture_default_str());
  add(cmd->add_option("--internal-batch-size", s->internal_batch_size,
                      "integrated gradients: path points per dispatch (0 = all)")
          ->capture_default_str());
  add(cmd->add_option("--samples", s->samples,
                      "samples: lime 25, kernel-shap 2n+2048 capped at 2^n-2 (exact), shapley-sampling 25 "
                      "permutations, gradient-shap 5, smoothgrad 5"));
  add(cmd->add_option("--seed", s->seed, "seed of the random methods")->capture_default_str());
  add(cmd->add_option("--window", s->window, "occlusion: sliding window width in tokens")->capture_default_str());
  add(cmd->add_option("--stride", s->stride, "occlusion: step between windows")->capture_default_str());
  add(cmd->add_option("--groups", s->groups,
                      "perturbation methods: one group id per token (e.g. 0,0,1,2,-1; tokens of a group are absent "
                      "together, -1 = never absent)"));
  add(cmd->add_option("--kernel-width", s->kernel_width, "lime: kernel width on the cosine distance")
          ->capture_default_str());
  add(cmd->add_option("--surrogate", s->surrogate, "lime: ridge (default) or lasso"));
  add(cmd->add_option("--alpha", s->alpha, "lime: regularisation (default 1.0 ridge, 0.01 lasso)"));
  add(cmd->add_flag("--unpaired", s->unpaired, "kernel-shap: independent coalitions instead of complement pairs"));
  add(cmd->add_flag("--antithetic", s->antithetic, "shapley-sampling: permutations in pairs with their reverses"));
  add(cmd->add_flag("--signed", s->signed_gradient, "saliency: keep the gradient's sign (default: absolute values)"));
  add(cmd->add_option("--aggregation", s->aggregation,
                      "gradient methods: per-token reduction sum, l2-norm or sum-abs (default: l2-norm for "
                      "saliency, sum otherwise)"));
  add(cmd->add_option("--stdev", s->stdev,
                      "noise standard deviation in embedding units (smoothgrad 1.0, gradient-shap 0.0)"));
  add(cmd->add_option("--inner", s->inner,
                      "smoothgrad: the method under the noise: saliency, input-x-gradient or "
                      "integrated-gradients")
          ->capture_default_str());
  add(cmd->add_option("--nt-type", s->nt_type, "smoothgrad: smoothgrad, smoothgrad-squared or vargrad")
          ->capture_default_str());
  add(cmd->add_option("--layer", s->layer,
                      "layer methods: hidden state index, 0 = embeddings output .. L = last block output")
          ->capture_default_str());
  // Execution and output.
  add(cmd->add_option("--batch-size", s->batch_size, "inputs per batched model call")
          ->capture_default_str()
          ->check(CLI::PositiveNumber));
  add(cmd->add_option("--threads", s->threads, "worker threads (0 = all cores)")->capture_default_str());
  add(cmd->add_option("--top", s->top, "rows of the ranked table (0 = none)")->capture_default_str());
  add(cmd->add_option("--color", s->color, "colour the heatmap: auto, always or never")->capture_default_str());
  add(cmd->add_option("--json", s->json,
                      "write the result as JSON (glassbox.attribution; glassbox.sequence_attribution for generation; "
                      "an array for --method all) to this file ('-' = stdout)"));
  add(cmd->add_option("--html", s->html, "write a self-contained HTML page to this file"));
  return [s] {
    const method_spec* spec = find_method(s->method);
    if (spec != nullptr) check_options_apply(*spec, *s);
    use_color(*s);  // validates --color before any work
    check_output_path(s->json, "--json");
    check_output_path(s->html, "--html");
    const auto m = load_model(s->model);
    const token_sequence ids = s->input.resolve(m);
    if (s->given("--continuation") || s->given("--generate")) {
      if (spec == nullptr) detail::fail("--method all does not apply to generation attribution; name one method");
      run_generation(*spec, *s, m, ids);
    } else if (spec == nullptr) {
      run_all(*s, m, ids);
    } else {
      run_single(*spec, *s, m, ids);
    }
  };
}

}  // namespace glassbox::cli

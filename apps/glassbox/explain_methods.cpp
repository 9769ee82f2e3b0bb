// glassbox explain: the attribution methods, one registry entry each (registry.hpp). Adding a
// method is one entry here: `glassbox explain` takes its options, checks them, runs it and writes
// its JSON through the entry; `glassbox methods` and docs/cli.md list it.
#include "explain_methods.hpp"

#include <charconv>

#include "glassbox/attribution.hpp"

namespace glassbox::cli {

namespace {

using call = attribution_call;

// ---- options shared by several methods --------------------------------------------------------------

std::vector<baseline> parse_baselines(const loaded_model& m, std::string_view value, std::string_view option) {
  std::vector<baseline> out;
  for (const std::string_view item : split_list(value)) out.push_back(parse_baseline(m, item, option));
  return out;
}

std::vector<int> parse_groups(std::string_view value, std::size_t n_tokens) {
  std::vector<int> out;
  for (const std::string_view item : split_list(value)) {
    int g = 0;
    const auto [ptr, ec] = std::from_chars(item.data(), item.data() + item.size(), g);
    if (item.empty() || ec != std::errc() || ptr != item.data() + item.size() || g < -1)
      detail::fail("--groups: '{}' is not a group id (expected comma-separated integers >= -1)", item);
    out.push_back(g);
  }
  if (out.size() != n_tokens)
    detail::fail("--groups must have one group id per input token ({}), got {}", n_tokens, out.size());
  return out;
}

const std::string baseline_help =
    "the absent token: pad, unk, zero, removal, token:ID, token:WORD or an id (docs/attribution.md, \"Features, coalitions and baselines\")";

// The baseline of a perturbation method (empty = the model's default, baseline.hpp).
template <class Options>
option_field<Options, call> perturbation_baseline(std::string field_name) {
  return custom_field<call, Options>(
      {"baseline", option_type::text, baseline_help, "per model: pad token, else zero", std::move(field_name)},
      [](Options& o, std::string_view text, const call& c) { o.baseline = parse_baseline(c.model, text); });
}

template <class Options>
option_field<Options, call> groups(std::string field_name) {
  return custom_field<call, Options>(
      {"groups", option_type::text,
       "one group id per token, e.g. 0,0,1,2,-1: a group is absent together, -1 is never absent", "one per token",
       std::move(field_name)},
      [](Options& o, std::string_view text, const call& c) { o.feature_map = parse_groups(text, c.tokens.size()); });
}

template <class Options>
option_field<Options, call> aggregation(std::string field_name) {
  return choice_field<call>("aggregation", &Options::aggregation,
                            {token_aggregation::sum, token_aggregation::l2_norm, token_aggregation::sum_abs},
                            "per-token reduction of the per-dimension scores", std::move(field_name));
}

// The options of the path integral (integrated gradients and its layer variant).
template <class Options>
std::vector<option_field<Options, call>> path_fields(const std::string& type) {
  return {
      field<call>("steps", &Options::steps, "quadrature points", type + "::steps"),
      choice_field<call>("rule", &Options::rule,
                         {integration_rule::gauss_legendre, integration_rule::riemann_left,
                          integration_rule::riemann_right, integration_rule::riemann_middle,
                          integration_rule::riemann_trapezoid},
                         "quadrature rule", type + "::rule"),
      field<call>("adaptive", &Options::adaptive, "double the steps until |delta| <= --tolerance", type + "::adaptive"),
      field<call>("tolerance", &Options::tolerance, "adaptive: the accepted |delta|", type + "::tolerance"),
      field<call>("max-steps", &Options::max_steps, "adaptive: the largest step count", type + "::max_steps"),
      field<call>("internal-batch-size", &Options::internal_batch_size, "path points per dispatch (0 = all)",
                  type + "::internal_batch_size"),
      aggregation<Options>(type + "::aggregation"),
  };
}

template <class Options>
void append(std::vector<option_field<Options, call>>& to, std::vector<option_field<Options, call>> more) {
  for (auto& f : more) to.push_back(std::move(f));
}

// The layer of a layer method, checked against the model.
template <class Options>
option_field<Options, call> layer(std::string field_name) {
  return custom_field<call, Options>(
      {"layer", option_type::integer, "hidden state index: 0 = the embeddings output .. L = the last block's output",
       "0", std::move(field_name)},
      [](Options& o, std::string_view text, const call& c) {
        const std::size_t layers = c.model.model.n_layer();
        o.layer = parse::integer<std::size_t>("layer", text);
        if (o.layer > layers)
          detail::fail("--layer must be in [0, {}] (0 = the embeddings output, {} = the last block's output), got {}",
                       layers, layers, o.layer);
      });
}

// ---- the noise tunnel: its own options and those of the method under the noise -----------------------

struct noise_tunnel_call_options {
  noise_tunnel_options tunnel;
  std::string inner = "saliency";
  saliency_options saliency;
  input_x_gradient_options input_x_gradient;
  integrated_gradients_options integrated_gradients;
  std::vector<std::string> given;  // the inner methods' options given, checked against --inner
};

std::vector<option_field<noise_tunnel_call_options, call>> noise_tunnel_fields() {
  using O = noise_tunnel_call_options;
  std::vector<option_field<O, call>> out = {
      custom_field<call, O>({"nt-type", option_type::text,
                             "how the noisy attributions combine: smoothgrad, smoothgrad-squared or vargrad",
                             "smoothgrad", "noise_tunnel_options::type"},
                            [](O& o, std::string_view text, const call&) {
                              const std::vector<std::string> names = {"smoothgrad", "smoothgrad_squared", "vargrad"};
                              const noise_tunnel_type types[] = {noise_tunnel_type::smoothgrad,
                                                                 noise_tunnel_type::smoothgrad_squared,
                                                                 noise_tunnel_type::vargrad};
                              o.tunnel.type = types[parse::choice("nt-type", text, names)];
                            }),
      custom_field<call, O>({"samples", option_type::integer, "noisy copies of the input", "5",
                             "noise_tunnel_options::samples"},
                            [](O& o, std::string_view t, const call&) {
                              o.tunnel.samples = parse::integer<std::size_t>("samples", t);
                            }),
      custom_field<call, O>({"stdev", option_type::real, "noise standard deviation, in embedding units", "1",
                             "noise_tunnel_options::stdev"},
                            [](O& o, std::string_view t, const call&) { o.tunnel.stdev = parse::real("stdev", t); }),
      custom_field<call, O>({"seed", option_type::integer, "seed of the noise", "0", "noise_tunnel_options::seed"},
                            [](O& o, std::string_view t, const call&) {
                              o.tunnel.seed = parse::integer<std::uint64_t>("seed", t);
                            }),
      custom_field<call, O>({"inner", option_type::text,
                             "the method under the noise: saliency, input-x-gradient or integrated-gradients",
                             "saliency", "noise_tunnel(model, tokens, target, inner options, ...)"},
                            [](O& o, std::string_view t, const call&) {
                              const std::vector<std::string> names = {"saliency", "input_x_gradient",
                                                                      "integrated_gradients"};
                              o.inner = names[parse::choice("inner", t, names)];
                            }),
      custom_field<call, O>({"absolute", option_type::flag, "inner saliency: absolute gradients", "true",
                             "saliency_options::absolute"},
                            [](O& o, std::string_view t, const call&) {
                              o.saliency.absolute = parse::flag("absolute", t);
                              o.given.push_back("absolute");
                            }),
  };
  // The inner methods' options: set on every inner struct that has them; checked against --inner below.
  out.push_back(custom_field<call, O>(
      {"aggregation", option_type::text, "inner method: per-token reduction (sum, l2-norm, sum-abs)",
       "saliency l2-norm, otherwise sum", "<inner>_options::aggregation"},
      [](O& o, std::string_view t, const call&) {
        const std::vector<std::string> names = {"sum", "l2_norm", "sum_abs"};
        const token_aggregation values[] = {token_aggregation::sum, token_aggregation::l2_norm,
                                            token_aggregation::sum_abs};
        const token_aggregation a = values[parse::choice("aggregation", t, names)];
        o.saliency.aggregation = o.input_x_gradient.aggregation = o.integrated_gradients.aggregation = a;
      }));
  for (auto& f : path_fields<integrated_gradients_options>("integrated_gradients_options")) {
    if (f.spec.name == "aggregation") continue;
    auto apply = f.apply;
    const std::string name = f.spec.name;
    f.spec.help = "inner integrated gradients: " + f.spec.help;
    out.push_back(custom_field<call, O>(f.spec, [apply, name](O& o, std::string_view t, const call& c) {
      apply(o.integrated_gradients, t, c);
      o.given.push_back(name);
    }));
  }
  return out;
}

attribution_result run_noise_tunnel(const call& c, const noise_tunnel_call_options& o) {
  const auto& model = c.model.model;
  for (const auto& name : o.given) {
    const bool applies = name == "absolute" ? o.inner == "saliency" : o.inner == "integrated_gradients";
    if (!applies)
      detail::fail("--{} does not apply to --inner {} (the method under the noise)", name, dashed(o.inner));
  }
  noise_tunnel_options tunnel = o.tunnel;
  tunnel.execution = c.execution;
  if (o.inner == "saliency") return noise_tunnel(model, c.tokens, c.explained, o.saliency, tunnel);
  if (o.inner == "input_x_gradient") return noise_tunnel(model, c.tokens, c.explained, o.input_x_gradient, tunnel);
  return noise_tunnel(model, c.tokens, c.explained, o.integrated_gradients, tunnel);
}

// ---- the table --------------------------------------------------------------------------------------

std::vector<attribution_method> make_attribution_table() {
  std::vector<attribution_method> t;
  auto info = [](std::string name, std::string family, std::string rung, std::string summary) {
    return method_info{std::move(name), "explain", std::move(family), std::move(rung), std::move(summary), {}};
  };

  using occ = occlusion_options;
  t.push_back(make_method<call, attribution_result, occ>(
      info("occlusion", "perturbation", "Model",
           "mean change of the target when a sliding window of tokens is made absent (Zeiler & Fergus 2014; "
           "Captum's Occlusion)"),
      {field<call>("window", &occ::window, "sliding window width in tokens", "occlusion_options::window"),
       field<call>("stride", &occ::stride, "step between windows", "occlusion_options::stride"),
       perturbation_baseline<occ>("occlusion_options::baseline"), groups<occ>("occlusion_options::feature_map")},
      [](const call& c, const occ& o) { return occlusion(c.model.model, c.tokens, c.explained, o); }));

  using fa = feature_ablation_options;
  t.push_back(make_method<call, attribution_result, fa>(
      info("feature_ablation", "perturbation", "Model",
           "change of the target when one token (or group) is made absent (Captum's FeatureAblation)"),
      {perturbation_baseline<fa>("feature_ablation_options::baseline"),
       groups<fa>("feature_ablation_options::feature_map")},
      [](const call& c, const fa& o) { return feature_ablation(c.model.model, c.tokens, c.explained, o); }));

  t.push_back(make_method<call, attribution_result, lime_options>(
      info("lime", "perturbation", "Model",
           "a weighted linear surrogate fit to random coalitions (Ribeiro et al. 2016; Captum's Lime)"),
      {field<call>("samples", &lime_options::n_samples, "perturbed samples the surrogate is fit to",
                   "lime_options::n_samples"),
       field<call>("seed", &lime_options::seed, "seed of the samples", "lime_options::seed"),
       field<call>("kernel-width", &lime_options::kernel_width, "kernel width on the cosine distance",
                   "lime_options::kernel_width"),
       choice_field<call>("surrogate", &lime_options::surrogate, {lime_surrogate::ridge, lime_surrogate::lasso},
                          "the interpretable model", "lime_options::surrogate"),
       custom_field<call, lime_options>(
           {"alpha", option_type::real, "regularisation of the surrogate", "ridge 1.0, lasso 0.01",
            "lime_options::alpha"},
           [](lime_options& o, std::string_view text, const call&) { o.alpha = parse::real("alpha", text); }),
       perturbation_baseline<lime_options>("lime_options::baseline"), groups<lime_options>("lime_options::feature_map")},
      [](const call& c, const lime_options& o) { return lime(c.model.model, c.tokens, c.explained, o); }));

  using ks = kernel_shap_options;
  t.push_back(make_method<call, attribution_result, ks>(
      info("kernel_shap", "perturbation", "Model",
           "Shapley values by weighted least squares over coalitions (Lundberg & Lee 2017; shap's KernelExplainer)"),
      {custom_field<call, ks>({"samples", option_type::integer, "coalitions besides the input and the baseline",
                               "2n + 2048, at most 2^n - 2 (exact)", "kernel_shap_options::n_samples"},
                              [](ks& o, std::string_view t, const call&) {
                                o.n_samples = parse::integer<std::size_t>("samples", t);
                              }),
       field<call>("seed", &ks::seed, "seed of the coalitions", "kernel_shap_options::seed"),
       negated_flag<call>("unpaired", &ks::paired, "independent coalitions instead of complement pairs",
                          "kernel_shap_options::paired"),
       perturbation_baseline<ks>("kernel_shap_options::baseline"), groups<ks>("kernel_shap_options::feature_map")},
      [](const call& c, const ks& o) { return kernel_shap(c.model.model, c.tokens, c.explained, o); }));

  using ss = shapley_sampling_options;
  t.push_back(make_method<call, attribution_result, ss>(
      info("shapley_sampling", "perturbation", "Model",
           "Shapley values estimated from random permutations (Castro et al. 2009; Captum's ShapleyValueSampling)"),
      {field<call>("samples", &ss::n_samples, "random permutations", "shapley_sampling_options::n_samples"),
       field<call>("seed", &ss::seed, "seed of the permutations", "shapley_sampling_options::seed"),
       field<call>("antithetic", &ss::antithetic, "permutations in pairs with their reverses",
                   "shapley_sampling_options::antithetic"),
       perturbation_baseline<ss>("shapley_sampling_options::baseline"),
       groups<ss>("shapley_sampling_options::feature_map")},
      [](const call& c, const ss& o) { return shapley_sampling(c.model.model, c.tokens, c.explained, o); }));

  using se = shapley_exact_options;
  t.push_back(make_method<call, attribution_result, se>(
      info("shapley_exact", "perturbation", "Model",
           "exact Shapley values over every coalition, up to 20 features (Shapley 1953; Captum's ShapleyValues)"),
      {perturbation_baseline<se>("shapley_exact_options::baseline"), groups<se>("shapley_exact_options::feature_map")},
      [](const call& c, const se& o) { return shapley_exact(c.model.model, c.tokens, c.explained, o); }));

  t.push_back(make_method<call, attribution_result, saliency_options>(
      info("saliency", "gradient", "DifferentiableModel",
           "the gradient of the target w.r.t. the input embeddings (Simonyan et al. 2014; Captum's Saliency)"),
      {field<call>("absolute", &saliency_options::absolute, "absolute gradients (--absolute=false keeps the sign)",
                   "saliency_options::absolute"),
       aggregation<saliency_options>("saliency_options::aggregation")},
      [](const call& c, const saliency_options& o) { return saliency(c.model.model, c.tokens, c.explained, o); }));

  t.push_back(make_method<call, attribution_result, input_x_gradient_options>(
      info("input_x_gradient", "gradient", "DifferentiableModel",
           "input embeddings times the gradient (Shrikumar et al. 2016; Captum's InputXGradient)"),
      {aggregation<input_x_gradient_options>("input_x_gradient_options::aggregation")},
      [](const call& c, const input_x_gradient_options& o) {
        return input_x_gradient(c.model.model, c.tokens, c.explained, o);
      }));

  using ig = integrated_gradients_options;
  {
    std::vector<option_field<ig, call>> f = {custom_field<call, ig>(
        {"baseline", option_type::text, baseline_help + "; a comma-separated list averages over baselines", "zero",
         "integrated_gradients_options::baseline(s)"},
        [](ig& o, std::string_view text, const call& c) {
          auto list = parse_baselines(c.model, text, "baseline");
          if (list.size() == 1)
            o.baseline = list[0];
          else
            o.baselines = std::move(list);
        })};
    append(f, path_fields<ig>("integrated_gradients_options"));
    t.push_back(make_method<call, attribution_result, ig>(
        info("integrated_gradients", "gradient", "DifferentiableModel",
             "the path integral of gradients from a baseline (Sundararajan et al. 2017; Captum's "
             "IntegratedGradients)"),
        std::move(f),
        [](const call& c, const ig& o) { return integrated_gradients(c.model.model, c.tokens, c.explained, o); }));
  }

  using gs = gradient_shap_options;
  t.push_back(make_method<call, attribution_result, gs>(
      info("gradient_shap", "gradient", "DifferentiableModel",
           "expected gradients over random baselines and noise (Lundberg & Lee 2017; Captum's GradientShap)"),
      {custom_field<call, gs>({"baseline", option_type::text, baseline_help + "; a comma-separated list is drawn from",
                               "zero", "gradient_shap_options::baselines"},
                              [](gs& o, std::string_view text, const call& c) {
                                o.baselines = parse_baselines(c.model, text, "baseline");
                              }),
       field<call>("samples", &gs::samples, "random draws", "gradient_shap_options::samples"),
       field<call>("stdev", &gs::stdev, "noise standard deviation, in embedding units", "gradient_shap_options::stdev"),
       field<call>("seed", &gs::seed, "seed of the draws", "gradient_shap_options::seed"),
       aggregation<gs>("gradient_shap_options::aggregation")},
      [](const call& c, const gs& o) { return gradient_shap(c.model.model, c.tokens, c.explained, o); }));

  t.push_back(make_method<call, attribution_result, noise_tunnel_call_options>(
      info("noise_tunnel", "gradient", "DifferentiableModel",
           "a gradient method averaged over noisy inputs: SmoothGrad, SmoothGrad-squared, VarGrad (Smilkov et al. "
           "2017; Captum's NoiseTunnel)"),
      noise_tunnel_fields(), run_noise_tunnel));

  using lig = layer_integrated_gradients_options;
  {
    std::vector<option_field<lig, call>> f = {
        layer<lig>("layer_integrated_gradients_options::layer"),
        custom_field<call, lig>({"baseline", option_type::text, baseline_help, "zero",
                                 "layer_integrated_gradients_options::baseline"},
                                [](lig& o, std::string_view text, const call& c) {
                                  o.baseline = parse_baseline(c.model, text);
                                })};
    append(f, path_fields<lig>("layer_integrated_gradients_options"));
    t.push_back(make_method<call, attribution_result, lig>(
        info("layer_integrated_gradients", "layer", "InterventionModel",
             "integrated gradients of a hidden state, per position (Captum's LayerIntegratedGradients)"),
        std::move(f),
        [](const call& c, const lig& o) { return layer_integrated_gradients(c.model.model, c.tokens, c.explained, o); }));
  }

  using lga = layer_gradient_x_activation_options;
  t.push_back(make_method<call, attribution_result, lga>(
      info("layer_gradient_x_activation", "layer", "InterventionModel",
           "a hidden state times its gradient, per position (Captum's LayerGradientXActivation)"),
      {layer<lga>("layer_gradient_x_activation_options::layer"),
       aggregation<lga>("layer_gradient_x_activation_options::aggregation")},
      [](const call& c, const lga& o) { return layer_gradient_x_activation(c.model.model, c.tokens, c.explained, o); }));
  return t;
}

}  // namespace

baseline parse_baseline(const loaded_model& m, std::string_view value, std::string_view option) {
  const std::string v = dashed(value);
  if (v == "pad") return baseline::pad();
  if (v == "zero") return baseline::zero();
  if (v == "removal") return baseline::removal();
  if (v == "unk") {
    if (!m.has_vocabulary() || !m.vocabulary.unk_id())
      detail::fail("--{} unk needs a vocabulary with an <unk> token; pass --{} token:ID", option, option);
    return baseline::token(*m.vocabulary.unk_id());
  }
  std::string_view rest = value;
  if (rest.starts_with("token:")) rest.remove_prefix(6);
  if (rest.empty() || (!value.starts_with("token:") && (rest.front() < '0' || rest.front() > '9')))
    detail::fail("--{} must be pad, unk, zero, removal, token:ID, token:WORD or an id, got '{}'", option, value);
  return baseline::token(resolve_token(m, rest, "--" + std::string(option)));
}

const std::vector<attribution_method>& attribution_methods() {
  static const std::vector<attribution_method> table = make_attribution_table();
  return table;
}

}  // namespace glassbox::cli

// glassbox influence: the influence methods, one registry entry each (registry.hpp). `glassbox
// influence fit|score|self` take their options, check them and run them through these entries;
// `glassbox methods` and docs/cli.md list them.
#include "influence_methods.hpp"

#include <set>

#include "glassbox/influence/exact.hpp"
#include "glassbox/influence/iterative.hpp"
#include "glassbox/influence/kfac_factors.hpp"
#include "glassbox/influence/tracin.hpp"

namespace glassbox::cli {

namespace {

// ---- fitting (influence fit) ------------------------------------------------------------------

using fit_call = influence_fit_call;

const std::string fit_type = "kfac_fit_options";

option_field<kfac_fit_options, fit_call> fit_layers() {
  return choice_field<fit_call>("layers", &kfac_fit_options::layers, {layer_selection::all, layer_selection::mlp},
                                "the linear layers tracked", fit_type + "::layers");
}

option_field<kfac_fit_options, fit_call> fit_damping() {
  return custom_field<fit_call, kfac_fit_options>(
      {"damping", option_type::real, "absolute damping stored with the factors (scoring may override it)",
       "0.1 x mean(Lambda) per layer", fit_type + "::damping"},
      [](kfac_fit_options& o, std::string_view text, const fit_call&) {
        const double d = parse::real("damping", text);
        if (d < 0) detail::fail("--damping must be >= 0, got {}", d);
        o.damping = d;
      });
}

option_field<kfac_fit_options, fit_call> fit_fisher() {
  return choice_field<fit_call>("fisher", &kfac_fit_options::fisher,
                                {fisher_type::sampled, fisher_type::empirical, fisher_type::expected},
                                "the labels of the curvature's gradients", fit_type + "::fisher");
}

option_field<kfac_fit_options, fit_call> fit_seed() {
  return field<fit_call>("seed", &kfac_fit_options::seed, "seed of the sampled labels", fit_type + "::seed");
}

option_field<kfac_fit_options, fit_call> fit_covariance_examples() {
  return field<fit_call>("covariance-max-examples", &kfac_fit_options::covariance_max_examples,
                         "the covariance pass reads the first this many examples",
                         fit_type + "::covariance_max_examples");
}

option_field<kfac_fit_options, fit_call> fit_lambda_examples() {
  return field<fit_call>("lambda-max-examples", &kfac_fit_options::lambda_max_examples,
                         "the eigenvalue-correction (or diagonal) pass reads the first this many examples",
                         fit_type + "::lambda_max_examples");
}

influence_fit_method fit_method(factor_method which, std::string summary,
                                std::vector<option_field<kfac_fit_options, fit_call>> fields) {
  return make_method<fit_call, kfac_fit_options, kfac_fit_options>(
      {std::string(to_string(which)), "influence fit", "curvature", "KfacModel", std::move(summary), {}},
      std::move(fields), [which](const fit_call& c, kfac_fit_options o) {
        o.method = which;
        o.execution = c.execution;
        return o;
      });
}

// ---- flat-parameter scoring (influence score / self) --------------------------------------------

using score_call = influence_score_call;

template <class Options>
option_field<Options, score_call> hessian(const std::string& type) {
  return choice_field<score_call>("hessian", &Options::hessian, {hessian_kind::exact, hessian_kind::gauss_newton},
                                  "the curvature H", type + "::hessian");
}

template <class Options>
option_field<Options, score_call> damping(const std::string& type) {
  return custom_field<score_call, Options>(
      {"damping", option_type::real, "lambda in (H + lambda I)^-1", "0.01", type + "::common.damping"},
      [](Options& o, std::string_view text, const score_call&) {
        const double d = parse::real("damping", text);
        if (d < 0) detail::fail("--damping must be >= 0, got {}", d);
        o.common.damping = d;
      });
}

// --parameters: the flat ranges of the named parameter tensors (a name, or a prefix such as h.0.mlp).
std::vector<parameter_range> parameter_ranges(const models::gpt2& model, std::string_view text) {
  const auto& table = model.parameter_table();
  std::set<std::size_t> chosen;
  for (const std::string_view item : split_list(text)) {
    bool found = false;
    for (std::size_t i = 0; i < table.size(); ++i)
      if (table[i].name == item || (table[i].name.size() > item.size() && table[i].name.starts_with(item) &&
                                    table[i].name[item.size()] == '.')) {
        chosen.insert(i);
        found = true;
      }
    if (!found)
      detail::fail("--parameters: '{}' names no parameter tensor of the model (e.g. h.0.mlp.c_fc.weight, or h.0.mlp)",
                   item);
  }
  std::vector<parameter_range> out;
  for (const std::size_t i : chosen) out.push_back({table[i].offset, table[i].size});
  return out;
}

template <class Options>
option_field<Options, score_call> parameters(const std::string& type) {
  return custom_field<score_call, Options>(
      {"parameters", option_type::text,
       "only these parameter tensors: comma-separated names or prefixes (e.g. h.0.mlp)", "all",
       type + "::parameters"},
      [](Options& o, std::string_view text, const score_call& c) { o.parameters = parameter_ranges(c.model, text); });
}

// Runs a method's pairwise or self-influence function with the call's shared settings.
template <class Options, class Pairwise, class Self>
influence_outcome run_flat(const score_call& c, Options o, Pairwise pairwise, Self self) {
  o.common.top_k = c.top_k;
  o.common.execution = c.execution;
  influence_outcome out;
  if (c.queries.empty())
    out.self = self(c, o);
  else
    out.pairwise = pairwise(c, o);
  return out;
}

std::vector<influence_score_method> make_score_methods() {
  std::vector<influence_score_method> out;
  {
    const std::string t = "exact_influence_options";
    out.push_back(make_method<score_call, influence_outcome, exact_influence_options>(
        {"exact", "influence score", "flat", "TrainableModel + curvature product",
         "H formed explicitly and eigendecomposed (Koh & Liang 2017); about 5,000 parameters at most", {}},
        {hessian<exact_influence_options>(t), damping<exact_influence_options>(t),
         parameters<exact_influence_options>(t),
         field<score_call>("max-parameters", &exact_influence_options::max_parameters,
                           "refuse a larger H (p^2 doubles, p curvature products)", t + "::max_parameters")},
        [](const score_call& c, exact_influence_options o) {
          return run_flat(
              c, std::move(o),
              [](const score_call& c, const auto& o) { return exact_influence(c.model, c.queries, c.train, o); },
              [](const score_call& c, const auto& o) { return exact_self_influence(c.model, c.train, o); });
        }));
  }
  {
    const std::string t = "cg_influence_options";
    out.push_back(make_method<score_call, influence_outcome, cg_influence_options>(
        {"cg", "influence score", "flat", "TrainableModel + curvature product",
         "conjugate gradient on curvature products (Koh & Liang 2017; Martens 2010)", {}},
        {hessian<cg_influence_options>(t), damping<cg_influence_options>(t), parameters<cg_influence_options>(t),
         field<score_call>("tolerance", &cg_influence_options::tolerance, "stop at ||r|| <= tolerance ||grad f_q||",
                           t + "::tolerance"),
         field<score_call>("max-iterations", &cg_influence_options::max_iterations,
                           "curvature products per query at most", t + "::max_iterations")},
        [](const score_call& c, cg_influence_options o) {
          return run_flat(
              c, std::move(o),
              [](const score_call& c, const auto& o) { return cg_influence(c.model, c.queries, c.train, o); },
              [](const score_call& c, const auto& o) { return cg_self_influence(c.model, c.train, o); });
        }));
  }
  {
    const std::string t = "lissa_influence_options";
    out.push_back(make_method<score_call, influence_outcome, lissa_influence_options>(
        {"lissa", "influence score", "flat", "TrainableModel + curvature product",
         "the LiSSA recursion (Agarwal, Bullins & Hazan 2017); divergence is an error, never a score", {}},
        {hessian<lissa_influence_options>(t), damping<lissa_influence_options>(t),
         parameters<lissa_influence_options>(t),
         field<score_call>("depth", &lissa_influence_options::depth, "recursion steps per repeat", t + "::depth"),
         field<score_call>("repeats", &lissa_influence_options::repeats, "independent recursions averaged",
                           t + "::repeats"),
         field<score_call>("scale", &lissa_influence_options::scale,
                           "must exceed (largest eigenvalue of H + lambda) / 2", t + "::scale"),
         field<score_call>("sample-size", &lissa_influence_options::sample_size,
                           "training examples per step's curvature product (0 = all)", t + "::sample_size"),
         field<score_call>("tolerance", &lissa_influence_options::tolerance, "stop early at ||r|| <= tolerance ||v||",
                           t + "::tolerance"),
         field<score_call>("seed", &lissa_influence_options::seed, "seed of the samples", t + "::seed")},
        [](const score_call& c, lissa_influence_options o) {
          return run_flat(
              c, std::move(o),
              [](const score_call& c, const auto& o) { return lissa_influence(c.model, c.queries, c.train, o); },
              [](const score_call& c, const auto& o) { return lissa_self_influence(c.model, c.train, o); });
        }));
  }
  {
    const std::string t = "tracin_options";
    out.push_back(make_method<score_call, influence_outcome, tracin_options>(
        {"tracin", "influence score", "flat", "TrainableModel",
         "TracInCP over the checkpoints of --checkpoints (Pruthi et al. 2020)", {}},
        {parameters<tracin_options>(t),
         field<score_call>("projection", &tracin_options::projection_dimension,
                           "CountSketch the gradients to this many dimensions (0 = exact dot products)",
                           t + "::projection_dimension"),
         field<score_call>("seed", &tracin_options::seed, "seed of the projection", t + "::seed")},
        [](const score_call& c, tracin_options o) {
          if (c.checkpoints.empty())
            detail::fail("--method tracin needs --checkpoints DIR (written by glassbox train --save-checkpoints K)");
          return run_flat(
              c, std::move(o),
              [](const score_call& c, const auto& o) {
                return tracin_influence(c.model, c.checkpoints, c.queries, c.train, o);
              },
              [](const score_call& c, const auto& o) {
                return tracin_self_influence(c.model, c.checkpoints, c.train, o);
              });
        }));
  }
  return out;
}

}  // namespace

const std::vector<influence_fit_method>& influence_fit_methods() {
  static const std::vector<influence_fit_method> methods = {
      fit_method(factor_method::ekfac, "EK-FAC: eigenvalue-corrected Kronecker factors (George et al. 2018; Kronfluence)",
                 {fit_layers(), fit_damping(), fit_fisher(), fit_seed(), fit_covariance_examples(),
                  fit_lambda_examples()}),
      fit_method(factor_method::kfac, "K-FAC: Kronecker factors A and S (Martens & Grosse 2015)",
                 {fit_layers(), fit_damping(), fit_fisher(), fit_seed(), fit_covariance_examples()}),
      fit_method(factor_method::diagonal, "per-parameter E[G^2] (a baseline)",
                 {fit_layers(), fit_damping(), fit_fisher(), fit_seed(), fit_lambda_examples()}),
      fit_method(factor_method::identity, "no curvature: gradient dot products on the tracked layers (a baseline)",
                 {fit_layers()}),
  };
  return methods;
}

const std::vector<influence_score_method>& influence_score_methods() {
  static const std::vector<influence_score_method> methods = make_score_methods();
  return methods;
}

}  // namespace glassbox::cli

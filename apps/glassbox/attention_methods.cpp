// glassbox attention: the attention methods, one registry entry each (registry.hpp). Adding a
// method is one entry here.
#include "attention_methods.hpp"

#include "glassbox/attention.hpp"

namespace glassbox::cli {

namespace {

template <class Options>
option_field<Options, attention_call> graph_aggregation(std::string field_name) {
  return custom_field<attention_call, Options>(
      {"aggregation", option_type::text, "how a layer's heads are combined: mean, max or min", "mean",
       std::move(field_name)},
      [](Options& o, std::string_view text, const attention_call&) {
        const std::vector<std::string> names = {"mean", "max", "min"};
        const head_aggregation values[] = {head_aggregation::mean, head_aggregation::max, head_aggregation::min};
        o.graph.aggregation = values[parse::choice("aggregation", text, names)];
      });
}

template <class Options>
option_field<Options, attention_call> graph_residual(std::string field_name) {
  return custom_field<attention_call, Options>(
      {"residual", option_type::real, "r in rownorm((1 - r) W + r I), in [0, 1]", "0.5", std::move(field_name)},
      [](Options& o, std::string_view text, const attention_call&) {
        o.graph.residual = parse::real("residual", text);
      });
}

// The top layer of a graph method: up to the output of block --layer.
template <class Options>
option_field<Options, attention_call> graph_layer(std::string field_name) {
  return custom_field<attention_call, Options>(
      {"layer", option_type::integer, "go up to the output of this block (default: every block)", "",
       std::move(field_name)},
      [](Options& o, std::string_view text, const attention_call& c) {
        const std::size_t layer = parse::integer<std::size_t>("layer", text);
        if (layer >= c.model.model.n_layer())
          detail::fail("--layer must be < {} (the model's layers), got {}", c.model.model.n_layer(), layer);
        o.graph.last_layer = layer + 1;
      });
}

template <class Options>
option_field<Options, attention_call> product() {
  return choice_field<attention_call>("product", &Options::product, {rollout_product::left, rollout_product::right},
                                      "the order of the rollout product: left (the paper's) or right",
                                      "rollout_options::product");
}

// The raw attention the views show, heads combined by `aggregation`.
attention_maps_result raw_maps(const attention_call& c, head_aggregation aggregation = head_aggregation::mean) {
  return raw_attention(c.model.model, c.tokens, aggregation);
}

// The gradient methods' target: log p(explained token) at the explained position.
target explained_target(const attention_call& c) {
  token_id token = 0;
  if (c.explained) {
    token = *c.explained;
  } else {
    const tensor2 logits = c.model.model.logits(c.tokens);
    for (std::size_t v = 1; v < logits.shape(1); ++v)
      if (logits(c.position, v) > logits(c.position, static_cast<std::size_t>(token))) token = static_cast<token_id>(v);
  }
  return target::log_probability(token, static_cast<std::ptrdiff_t>(c.position));
}

// raw_attention's options: what it shows.
struct raw_view_options {
  head_aggregation aggregation = head_aggregation::mean;
  report::attention_selection selection;
};

std::vector<attention_method> make_attention_table() {
  std::vector<attention_method> t;
  auto info = [](std::string name, std::string family, std::string rung, std::string summary) {
    return method_info{std::move(name), "attention", std::move(family), std::move(rung), std::move(summary), {}};
  };
  using outcome = attention_outcome;

  t.push_back(make_method<attention_call, outcome, raw_view_options>(
      info("raw_attention", "attention", "AttentionModel",
           "the attention probabilities of one layer and head, or of the heads combined (docs/attention.md)"),
      {custom_field<attention_call, raw_view_options>(
           {"aggregation", option_type::text, "how a layer's heads are combined: mean, max or min", "mean",
            "raw_attention(model, tokens, aggregation)"},
           [](raw_view_options& o, std::string_view text, const attention_call&) {
             const std::vector<std::string> names = {"mean", "max", "min"};
             const head_aggregation values[] = {head_aggregation::mean, head_aggregation::max, head_aggregation::min};
             o.aggregation = values[parse::choice("aggregation", text, names)];
           }),
       custom_field<attention_call, raw_view_options>(
           {"layer", option_type::integer, "the layer shown (default: the last)", "", "attention_selection::layer"},
           [](raw_view_options& o, std::string_view text, const attention_call& c) {
             o.selection.layer = parse::integer<std::size_t>("layer", text);
             if (*o.selection.layer >= c.model.model.n_layer())
               detail::fail("--layer must be < {} (the model's layers), got {}", c.model.model.n_layer(),
                            *o.selection.layer);
           }),
       custom_field<attention_call, raw_view_options>(
           {"head", option_type::integer, "the head shown (default: the heads combined)", "",
            "attention_selection::head"},
           [](raw_view_options& o, std::string_view text, const attention_call& c) {
             o.selection.head = parse::integer<std::size_t>("head", text);
             if (*o.selection.head >= c.model.model.n_head())
               detail::fail("--head must be < {} (the model's heads), got {}", c.model.model.n_head(),
                            *o.selection.head);
           })},
      [](const attention_call& c, const raw_view_options& o) {
        return outcome{raw_maps(c, o.aggregation), {}, o.selection};
      }));

  t.push_back(make_method<attention_call, outcome, rollout_options>(
      info("attention_rollout", "graph", "AttentionModel",
           "the product of the layers' residual-mixed attention: how much each position draws on each input "
           "(Abnar & Zuidema 2020)"),
      {graph_aggregation<rollout_options>("rollout_options::graph.aggregation"),
       graph_residual<rollout_options>("rollout_options::graph.residual"),
       graph_layer<rollout_options>("rollout_options::graph.last_layer"), product<rollout_options>()},
      [](const attention_call& c, rollout_options o) {
        o.position = c.position;
        outcome out{raw_maps(c, o.graph.aggregation), {}, {}};
        out.relevance = attention_rollout(out.raw.attentions, o);
        return out;
      }));

  t.push_back(make_method<attention_call, outcome, flow_options>(
      info("attention_flow", "graph", "AttentionModel",
           "the maximum flow from each position to each input through the attention graph (Abnar & Zuidema 2020)"),
      {graph_aggregation<flow_options>("flow_options::graph.aggregation"),
       graph_residual<flow_options>("flow_options::graph.residual"),
       graph_layer<flow_options>("flow_options::graph.last_layer"),
       custom_field<attention_call, flow_options>(
           {"all-rows", option_type::flag,
            "solve every position's row (T^2 max-flows); default: every row when T <= 64, else the explained one", "",
            "flow_options::sources"},
           [](flow_options& o, std::string_view text, const attention_call& c) {
             if (parse::flag("all-rows", text)) {
               o.sources.resize(c.tokens.size());
               for (std::size_t i = 0; i < c.tokens.size(); ++i) o.sources[i] = i;
             } else {
               o.sources = {c.position};
             }
           })},
      [](const attention_call& c, flow_options o) {
        if (o.sources.empty() && c.tokens.size() > 64) o.sources = {c.position};
        o.position = c.position;
        outcome out{raw_maps(c, o.graph.aggregation), {}, {}};
        out.relevance = attention_flow(out.raw.attentions, o);
        return out;
      }));

  t.push_back(make_method<attention_call, outcome, attgrad_options>(
      info("attgrad", "gradient", "AttentionGradientModel",
           "attention times its gradient, averaged over heads and summed over layers (Barkan et al. 2021)"),
      {field<attention_call>("positive-only", &attgrad_options::positive_only, "average max(A x grad, 0) over heads",
                             "attgrad_options::positive_only")},
      [](const attention_call& c, attgrad_options o) {
        o.position = c.position;
        outcome out{raw_maps(c), {}, {}};
        out.relevance = attgrad(c.model.model, c.tokens, explained_target(c), o);
        return out;
      }));

  t.push_back(make_method<attention_call, outcome, chefer_options>(
      info("chefer_relevance", "gradient", "AttentionGradientModel",
           "relevance propagated through the layers with gradient-weighted attention (Chefer et al. 2021)"),
      {}, [](const attention_call& c, chefer_options o) {
        o.position = c.position;
        outcome out{raw_maps(c), {}, {}};
        out.relevance = chefer_relevance(c.model.model, c.tokens, explained_target(c), o);
        return out;
      }));

  struct weighted_rollout_options {
    rollout_options rollout;
    gradient_head_norm norm = gradient_head_norm::l1;
  };
  t.push_back(make_method<attention_call, outcome, weighted_rollout_options>(
      info("gradient_weighted_rollout", "gradient", "AttentionGradientModel",
           "rollout with each head weighted by the norm of the target's gradient w.r.t. its attention"),
      {custom_field<attention_call, weighted_rollout_options>(
           {"residual", option_type::real, "r in rownorm((1 - r) W + r I), in [0, 1]", "0.5",
            "rollout_options::graph.residual"},
           [](weighted_rollout_options& o, std::string_view text, const attention_call&) {
             o.rollout.graph.residual = parse::real("residual", text);
           }),
       custom_field<attention_call, weighted_rollout_options>(
           {"head-norm", option_type::text, "the norm of a head's gradient: l1 or l2", "l1",
            "gradient_weighted_rollout(..., gradient_head_norm)"},
           [](weighted_rollout_options& o, std::string_view text, const attention_call&) {
             const std::vector<std::string> names = {"l1", "l2"};
             o.norm = parse::choice("head-norm", text, names) == 0 ? gradient_head_norm::l1 : gradient_head_norm::l2;
           })},
      [](const attention_call& c, weighted_rollout_options o) {
        outcome out{raw_maps(c), {}, {}};
        o.rollout.position = c.position;
        out.relevance = gradient_weighted_rollout(c.model.model, c.tokens, explained_target(c), o.rollout, o.norm);
        return out;
      }));
  return t;
}

}  // namespace

const std::vector<attention_method>& attention_methods() {
  static const std::vector<attention_method> table = make_attention_table();
  return table;
}

std::vector<double> outcome_scores(const attention_outcome& o, std::size_t position) {
  if (o.relevance) return o.relevance->scores;
  const tensor2 map = report::selected_map(o.raw, o.selection);
  std::vector<double> scores(map.shape(1));
  for (std::size_t j = 0; j < scores.size(); ++j) scores[j] = map(position, j);
  return scores;
}

}  // namespace glassbox::cli

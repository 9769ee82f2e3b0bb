// glassbox: the adapter conformance kit. verify_adapter(model, tokens) runs every check that
// applies to the rungs of the model ladder the adapter's type has, and returns a report (a table:
// check, rung, measured error or value, tolerance, result), the optional members it has, the fast
// paths the library takes because of them, and warnings. docs/concepts.md#checking-an-adapter
// explains each check and how to read the table.
//
// The kit works in the adapter's own precision: the scalar type is the value type of logits()
// (float, or double for e.g. models::basic_gpt2<double>), and tolerances and finite-difference steps
// are fitted to it. Gradient members are called with glassbox::output_seed, the seed every
// algorithm passes; a double adapter that declares `using seed_type = ...` (a seed in its own
// precision, constructible from a rows function and a value function) is called with that instead.
//
// Example:
//   const auto report = glassbox::verify_adapter(my_adapter, tokens);
//   std::cout << glassbox::to_string(report);
//   if (!report.passed()) return 1;
#pragma once

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "glassbox/core/error.hpp"
#include "glassbox/core/execution.hpp"
#include "glassbox/core/model.hpp"
#include "glassbox/core/progress.hpp"
#include "glassbox/core/random.hpp"
#include "glassbox/core/target.hpp"
#include "glassbox/core/types.hpp"
#include "glassbox/verify/detail/numerics.hpp"
#include "glassbox/verify/report.hpp"

namespace glassbox {

/// Options of verify_adapter.
struct verify_options {
  std::uint64_t seed = 0;          ///< the random directions, readouts and masks derive from it
  std::size_t directions = 4;      ///< random directions per finite-difference check (each its own stream)
  std::optional<bool> causal{};    ///< apply the causal checks; unset: detected from the logits
  double tolerance_scale = 1;      ///< multiplies every tolerance (below 1 is stricter)
  double step = 0;                 ///< relative finite-difference step; 0 = fitted to the scalar type (float 2e-2, double 1e-3)
  bool parameter_checks = true;    ///< run the TrainableModel/KfacModel finite differences (they copy the model)
  execution_options execution{};   ///< progress and cancellation; `threads` sets the thread-safety check's threads
};

namespace detail::verify {

// ---- the adapter's types ---------------------------------------------------------------------

/// What logits() returns.
template <class M>
using logits_result = std::remove_cvref_t<decltype(std::declval<const M&>().logits(std::declval<token_span>()))>;

template <class M>
struct scalar_of_impl {
  using type = float;
};
template <class M>
  requires requires { typename logits_result<M>::value_type; }
struct scalar_of_impl<M> {
  using type = std::remove_cv_t<typename logits_result<M>::value_type>;
};
/// The adapter's scalar type: the value type of its logits.
template <class M>
using scalar_of = typename scalar_of_impl<M>::type;

/// An xtensor of the adapter's scalar type.
template <class S, std::size_t N>
using tensor = xt::xtensor<S, N>;

/// A seed's value function in precision S.
template <class S>
using value_function_of = std::function<double(const tensor<S, 2>&, tensor<S, 2>&)>;

template <class M, class S>
struct seed_of_impl {
  using type = output_seed;
};
template <class M, class S>
  requires(!std::is_same_v<S, float>) && requires { typename M::seed_type; } &&
          std::constructible_from<typename M::seed_type, output_seed::rows_function, value_function_of<S>>
struct seed_of_impl<M, S> {
  using type = typename M::seed_type;
};
/// The seed the kit passes to gradient members: output_seed, or a double model's own seed_type.
template <class M, class S>
using seed_of = typename seed_of_impl<M, S>::type;

// ---- the rungs, in the adapter's own precision ----------------------------------------------
// The library's concepts (core/model.hpp) are written for float tensors; these are the same
// members with the adapter's scalar type S and seed type Seed, so that a double model is checked
// in double.

template <class M, class S>
concept embedding = requires(const M& m, token_span t, const tensor<S, 2>& e) {
  { m.embed(t) } -> std::convertible_to<tensor<S, 2>>;
  { m.logits_from_embeddings(e) } -> std::convertible_to<tensor<S, 2>>;
};
template <class M, class S, class Seed>
concept differentiable = embedding<M, S> && requires(const M& m, const tensor<S, 2>& e, const Seed& s) {
  { m.embedding_gradient(e, s).value } -> std::convertible_to<double>;
  { m.embedding_gradient(e, s).gradient } -> std::convertible_to<tensor<S, 2>>;
};
template <class M, class S>
concept attention = requires(const M& m, token_span t) {
  { m.attentions(t) } -> std::convertible_to<tensor<S, 4>>;
};
template <class M, class S, class Seed>
concept attention_gradient =
    attention<M, S> && requires(const M& m, token_span t, const tensor<S, 2>& mask, const Seed& s) {
      { m.attention_gradient(t, s).value } -> std::convertible_to<double>;
      { m.attention_gradient(t, s).attentions } -> std::convertible_to<tensor<S, 4>>;
      { m.attention_gradient(t, s).gradient } -> std::convertible_to<tensor<S, 4>>;
      { m.head_mask_gradient(t, mask, s).value } -> std::convertible_to<double>;
      { m.head_mask_gradient(t, mask, s).gradient } -> std::convertible_to<tensor<S, 2>>;
      { m.logits_with_head_mask(t, mask) } -> std::convertible_to<tensor<S, 2>>;
    };
template <class M, class S>
concept activation = requires(const M& m, token_span t) {
  { m.hidden_states(t) } -> std::convertible_to<tensor<S, 3>>;
};
template <class M, class S>
concept decode = activation<M, S> && requires(const M& m, const tensor<S, 2>& h) {
  { m.decode_hidden(h) } -> std::convertible_to<tensor<S, 2>>;
};
template <class M, class S, class Seed>
concept intervention =
    activation<M, S> && requires(const M& m, token_span t, std::size_t l, const tensor<S, 2>& h, const Seed& s) {
      { m.logits_from_hidden(t, l, h) } -> std::convertible_to<tensor<S, 2>>;
      { m.hidden_gradient(t, l, h, s).value } -> std::convertible_to<double>;
      { m.hidden_gradient(t, l, h, s).gradient } -> std::convertible_to<tensor<S, 2>>;
    };
template <class M, class S, class Seed>
concept component =
    intervention<M, S, Seed> &&
    requires(const M& m, token_span t, const Seed& s, std::span<const token_id> k, std::size_t l,
             std::span<const basic_component_patch<S>> p, std::span<const std::size_t> r) {
      { m.layout() } -> std::convertible_to<component_layout>;
      { m.run_with_cache(t) } -> std::convertible_to<basic_component_cache<S>>;
      { m.logits_with_patches(t, p, r) } -> std::convertible_to<tensor<S, 2>>;
      { m.component_gradients(t, s) } -> std::convertible_to<basic_component_gradient_result<S>>;
      { m.unembedding_directions(k) } -> std::convertible_to<basic_logit_directions<S>>;
      { m.neuron_output_weights(l) } -> std::convertible_to<tensor<S, 2>>;
    };
template <class M, class S>
concept trainable = requires(const M& m, M& mutable_model, const training_example& e, std::span<const S> p) {
  { m.parameter_count() } -> std::convertible_to<std::size_t>;
  { m.parameters() } -> std::convertible_to<std::span<const S>>;
  mutable_model.set_parameters(p);
  { m.loss(e) } -> std::convertible_to<double>;
  { m.loss_gradient(e).value } -> std::convertible_to<double>;
  { m.loss_gradient(e).gradient } -> std::convertible_to<tensor<S, 1>>;
};
template <class M, class S>
concept kfac = trainable<M, S> && requires(const M& m, const training_example& e) {
  { m.kfac_statistics(e).size() } -> std::convertible_to<std::size_t>;
  { m.kfac_statistics(e)[0].name } -> std::convertible_to<std::string>;
  { m.kfac_statistics(e)[0].inputs } -> std::convertible_to<tensor<S, 2>>;
  { m.kfac_statistics(e)[0].output_gradients } -> std::convertible_to<tensor<S, 2>>;
  { m.kfac_statistics(e)[0].weight_offset } -> std::convertible_to<std::size_t>;
  { m.kfac_statistics(e)[0].bias_offset } -> std::convertible_to<std::size_t>;
  { m.kfac_statistics(e)[0].has_bias } -> std::convertible_to<bool>;
  { m.kfac_statistics(e)[0].input_major } -> std::convertible_to<bool>;
};

// Optional members, in the adapter's precision (logits_at without output_rows included: the kit
// checks it and warns that the library cannot use it).
template <class M, class S>
concept logits_at = requires(const M& m, token_span t, std::span<const std::size_t> r) {
  { m.logits_at(t, r) } -> std::convertible_to<tensor<S, 2>>;
};
template <class M, class S>
concept logits_batch = requires(const M& m, const token_matrix& b, std::span<const std::size_t> r) {
  { m.logits_batch(b, r) } -> std::convertible_to<tensor<S, 3>>;
};
template <class M, class S>
concept logits_from_embeddings_batch = requires(const M& m, const tensor<S, 3>& e, std::span<const std::size_t> r) {
  { m.logits_from_embeddings_batch(e, r) } -> std::convertible_to<tensor<S, 3>>;
};
template <class M, class S, class Seed>
concept embedding_gradient_batch = requires(const M& m, const tensor<S, 3>& e, const Seed& s) {
  { m.embedding_gradient_batch(e, s).values.size() } -> std::convertible_to<std::size_t>;
  { m.embedding_gradient_batch(e, s).values[0] } -> std::convertible_to<double>;
  { m.embedding_gradient_batch(e, s).gradients } -> std::convertible_to<tensor<S, 3>>;
};
/// Not part of the ladder: logits with one layer's attention probabilities replaced ([H, T, T]);
/// when present the kit checks attention_gradient entry by entry against finite differences.
template <class M, class S>
concept logits_with_attentions = requires(const M& m, token_span t, std::size_t l, const tensor<S, 3>& a) {
  { m.logits_with_attentions(t, l, a) } -> std::convertible_to<tensor<S, 2>>;
};

/// Causal prefix reuse: a cache of one sequence, and logits of sequences that equal it before starts[b].
template <class M, class S>
concept prefix_cache = requires(const M& m, token_span t, const token_matrix& b, std::span<const std::size_t> s) {
  m.prefix_cache(t);
  { m.logits_batch_from_prefix(m.prefix_cache(t), b, s, s) } -> std::convertible_to<tensor<S, 3>>;
};
/// Causal prefix reuse from input embeddings.
template <class M, class S>
concept embeddings_prefix_cache =
    requires(const M& m, const tensor<S, 2>& e, const tensor<S, 3>& b, std::span<const std::size_t> s) {
      m.prefix_cache_from_embeddings(e);
      { m.logits_from_embeddings_batch_from_prefix(m.prefix_cache_from_embeddings(e), b, s, s) }
          -> std::convertible_to<tensor<S, 3>>;
    };
/// Exact Hessian-vector products of the mean loss over examples.
template <class M, class S>
concept hessian_vector_product = requires(const M& m, std::span<const training_example> e, std::span<const S> v) {
  { m.hessian_vector_product(e, v) } -> std::convertible_to<tensor<S, 1>>;
};
/// Gauss-Newton-vector products of the mean loss over examples.
template <class M, class S>
concept gauss_newton_vector_product =
    requires(const M& m, std::span<const training_example> e, std::span<const S> v) {
      { m.gauss_newton_vector_product(e, v) } -> std::convertible_to<tensor<S, 1>>;
    };

// A member of that name is declared (detectable when it is not overloaded or a template).
template <class M>
concept declares_output_rows = requires { &M::output_rows; };
template <class M>
concept declares_logits_at = requires { &M::logits_at; };
template <class M>
concept declares_logits_batch = requires { &M::logits_batch; };
template <class M>
concept declares_logits_from_embeddings_batch = requires { &M::logits_from_embeddings_batch; };
template <class M>
concept declares_embedding_gradient_batch = requires { &M::embedding_gradient_batch; };
template <class M>
concept declares_pad_token = requires { &M::pad_token; };

/// One check being measured, possibly over several samples (directions, layers).
struct pending_check {
  /// A check that has not measured anything yet.
  pending_check(std::string check, std::string check_rung) : name(std::move(check)), rung(std::move(check_rung)) {}

  std::string name;            ///< the check's row
  std::string rung;            ///< its rung
  bool ran = false;            ///< at least one sample was measured
  double worst = 0;            ///< the largest measured value so far (NaN counts as infinite)
  std::string detail;          ///< the detail of the worst sample
  std::string measured_text;   ///< for shape checks: the shape of the worst sample
  std::string tolerance_text;  ///< for shape checks: the expected shape
  std::string threw;           ///< what() of an exception thrown while measuring it
  std::string not_run;         ///< why it did not run (a check it depends on failed)

  /// Records one measured value (and its detail, kept when it is the worst so far).
  template <class = void>
  void add(double measured, std::string sample_detail = {}) {
    if (std::isnan(measured)) measured = std::numeric_limits<double>::infinity();
    if (!ran || measured > worst) {
      worst = measured;
      detail = std::move(sample_detail);
    }
    ran = true;
  }
};

/// The conformance checks of one adapter type: one object per verify_adapter call.
template <class M>
class checker {
 public:
  using S = scalar_of<M>;
  using Seed = seed_of<M, S>;
  using matrix = tensor<S, 2>;
  using tensor3 = tensor<S, 3>;
  using tensor4 = tensor<S, 4>;
  using vector = tensor<S, 1>;

  checker(const M& model, token_span tokens, const verify_options& options)
      : model_(model),
        tokens_(tokens.begin(), tokens.end()),
        options_(options),
        tol_(tolerances_for<S>(options.tolerance_scale, options.step)),
        reporter_(options_.execution.on_progress, options_.execution.stop, groups, "verify_adapter") {
    // A float seed reads double logits through float: its value is then only as exact as float.
    if constexpr (std::is_same_v<Seed, output_seed> && !std::is_same_v<S, float>)
      seed_value_tolerance_ = tolerances_for<float>(options.tolerance_scale).value;
    else
      seed_value_tolerance_ = tol_.value;
  }

  /// Runs every check that applies and returns the report.
  verify_report run() {
    report_.scalar = std::is_same_v<S, float> ? "float" : "double";
    report_.tokens = tokens_.size();
    list_rungs();
    reporter_.check();
    model_checks();
    reporter_.advance();
    optional_model_checks();
    reporter_.advance();
    if constexpr (embedding<M, S>) embedding_checks();
    reporter_.advance();
    if constexpr (differentiable<M, S, Seed>) differentiable_checks();
    reporter_.advance();
    if constexpr (attention<M, S>) attention_checks();
    reporter_.advance();
    if constexpr (attention_gradient<M, S, Seed>) attention_gradient_checks();
    reporter_.advance();
    if constexpr (activation<M, S>) activation_checks();
    reporter_.advance();
    if constexpr (intervention<M, S, Seed>) intervention_checks();
    reporter_.advance();
    if constexpr (component<M, S, Seed>) component_checks();
    reporter_.advance();
    if constexpr (trainable<M, S>) trainable_checks();
    reporter_.advance();
    if constexpr (kfac<M, S>) kfac_checks();
    reporter_.advance();
    optional_members();
    return std::move(report_);
  }

  /// Groups of checks, for progress reports.
  static constexpr std::size_t groups = 11;

 private:
  // ---- recording --------------------------------------------------------------------------

  rng stream(std::uint64_t id) const { return rng(options_.seed).fork(id); }

  /// Turns a pending check into a row held to `tolerance`.
  void finish(pending_check& c, double tolerance) {
    check_result r;
    r.name = c.name;
    r.rung = c.rung;
    r.tolerance = tolerance;
    r.measured_text = c.measured_text;
    r.tolerance_text = c.tolerance_text;
    if (!c.threw.empty()) {
      r.status = check_status::failed;
      r.measured = std::numeric_limits<double>::quiet_NaN();
      r.measured_text.clear();
      r.detail = "threw: " + c.threw;
    } else if (!c.ran) {
      r.status = check_status::skipped;
      r.measured = std::numeric_limits<double>::quiet_NaN();
      r.measured_text.clear();
      r.detail = c.not_run.empty() ? "not run" : c.not_run;
    } else {
      r.measured = c.worst;
      r.status = c.worst <= tolerance ? check_status::passed : check_status::failed;
      r.detail = c.detail;
    }
    report_.checks.push_back(std::move(r));
  }

  /// Records a shape (and finiteness) sample: measured 0 when `got` is `expected` and finite, else 1.
  static void add_shape(pending_check& c, const std::vector<std::size_t>& got, const std::vector<std::size_t>& expected,
                        std::size_t nonfinite, std::string why = {}) {
    const bool ok = got == expected && nonfinite == 0;
    if (!ok && why.empty())
      why = got != expected ? fmt::format("got {}, expected {}", shape_text(got), shape_text(expected))
                            : fmt::format("{} NaN/Inf entries", nonfinite);
    const bool first_or_worse = !c.ran || (!ok && c.worst == 0);
    c.add(ok ? 0 : 1, why);
    if (first_or_worse) {
      c.measured_text = shape_text(got) + (nonfinite != 0 ? " NaN" : "");
      c.tolerance_text = "= " + shape_text(expected);
    }
  }

  /// Runs f; an exception (other than cancellation) is recorded on `*at`, the check being measured.
  template <class F>
  bool guarded(pending_check*& at, F&& f) {
    try {
      f();
      return true;
    } catch (const cancelled&) {
      throw;
    } catch (const std::exception& e) {
      if (at != nullptr && at->threw.empty()) at->threw = e.what();
      return false;
    }
  }

  /// Marks every check in `later` as not run because `reason`.
  static void not_run(std::initializer_list<pending_check*> later, const std::string& reason) {
    for (auto* c : later)
      if (!c->ran && c->threw.empty() && c->not_run.empty()) c->not_run = reason;
  }

  /// The magnitude-relative error of a value against the seed of the logits.
  static double value_error(double value, double expected, double magnitude) {
    return std::abs(value - expected) / std::max(1.0, magnitude);
  }

  // ---- the rungs and the inputs -----------------------------------------------------------

  void list_rungs() {
    auto add = [&](bool kit, bool library, const char* name) {
      if (kit) report_.rungs.push_back(name);
      if (library) report_.library_rungs.push_back(name);
    };
    add(true, Model<M>, "Model");
    add(embedding<M, S>, EmbeddingModel<M>, "EmbeddingModel");
    add(differentiable<M, S, Seed>, DifferentiableModel<M>, "DifferentiableModel");
    add(attention<M, S>, AttentionModel<M>, "AttentionModel");
    add(attention_gradient<M, S, Seed>, AttentionGradientModel<M>, "AttentionGradientModel");
    add(activation<M, S>, ActivationModel<M>, "ActivationModel");
    add(intervention<M, S, Seed>, InterventionModel<M>, "InterventionModel");
    add(component<M, S, Seed>, ComponentModel<M>, "ComponentModel");
    add(trainable<M, S>, TrainableModel<M>, "TrainableModel");
    add(kfac<M, S>, KfacModel<M>, "KfacModel");
  }

  std::size_t length() const { return tokens_.size(); }

  /// Three equal-length inputs for the batch checks: the tokens, reversed, and rotated by one.
  const std::vector<token_sequence>& variants() {
    if (variants_.empty()) {
      variants_.push_back(tokens_);
      variants_.emplace_back(tokens_.rbegin(), tokens_.rend());
      token_sequence rotated = tokens_;
      std::rotate(rotated.begin(), rotated.begin() + 1, rotated.end());
      variants_.push_back(std::move(rotated));
    }
    return variants_;
  }

  /// The logits of each variant, through logits().
  const std::vector<matrix>& variant_logits() {
    if (variant_logits_.empty())
      for (const auto& v : variants()) variant_logits_.push_back(model_.logits(v));
    return variant_logits_;
  }

  /// The rows the row-subset checks ask for: the first and the last (one row if there is one).
  std::vector<std::size_t> subset_rows() const {
    if (rows_ <= 1) return {0};
    return {0, rows_ - 1};
  }

  /// The logits rows `rows` of `z`, [rows.size(), V].
  static matrix select_rows(const matrix& z, const std::vector<std::size_t>& rows) {
    matrix out = matrix::from_shape({rows.size(), z.shape(1)});
    for (std::size_t k = 0; k < rows.size(); ++k)
      std::copy_n(z.data() + rows[k] * z.shape(1), z.shape(1), out.data() + k * z.shape(1));
    return out;
  }

  /// Item b of a stacked [B, ...] tensor as a matrix [shape(1), shape(2)].
  static matrix item(const tensor3& t, std::size_t b) {
    matrix out = matrix::from_shape({t.shape(1), t.shape(2)});
    std::copy_n(t.data() + b * out.size(), out.size(), out.data());
    return out;
  }

  /// A random readout for a seed (stream `id`), over the model's output rows.
  std::shared_ptr<const readout> random_readout(std::uint64_t id) const {
    rng g = stream(id);
    return std::make_shared<const readout>(readout::random(rows_, columns_, g));
  }

  /// The training example of the trainable checks: every output row scored, row r predicting
  /// token (r + 1) mod T of the input (modulo the number of logit columns).
  training_example example() const {
    training_example e;
    e.tokens = tokens_;
    e.labels.resize(rows_);
    for (std::size_t r = 0; r < rows_; ++r)
      e.labels[r] = static_cast<token_id>(static_cast<std::size_t>(tokens_[(r + 1) % length()]) % columns_);
    return e;
  }

  // ---- Model ------------------------------------------------------------------------------

  void model_checks() {
    const std::string rung = "Model";
    pending_check shape{"logits shape", rung};
    pending_check deterministic{"logits deterministic", rung};
    pending_check* at = &shape;
    guarded(at, [&] {
      matrix z = model_.logits(tokens_);
      std::size_t expected_rows = z.shape(0) == 1 ? 1 : length();
      std::string why;
      if constexpr (concepts::has_output_rows<M>) {
        expected_rows = model_.output_rows(length());
      } else if (z.shape(0) != 1 && z.shape(0) != length()) {
        why = fmt::format("{} rows for {} tokens: a model without output_rows must return one row per token (a causal "
                          "language model) or one row (a classifier)",
                          z.shape(0), length());
      }
      add_shape(shape, shape_of(z), {expected_rows, std::max<std::size_t>(1, z.shape(1))}, count_nonfinite(z), why);
      if (z.shape(1) != model_.vocab_size())
        report_.warnings.push_back(fmt::format(
            "logits have {} columns but vocab_size() is {}: the library reads vocab_size() as the number of logit "
            "columns (docs/concepts.md) in head importance, and as the range of token ids in token baselines",
            z.shape(1), model_.vocab_size()));
      logits_ = std::move(z);
    });
    finish(shape, 0);
    if (!logits_) {
      not_run({&deterministic}, "logits() threw");
      finish(deterministic, tol_.consistency);
      report_.causal_source = "not decided: logits() threw";
      return;
    }
    rows_ = logits_->shape(0);
    columns_ = logits_->shape(1);
    report_.output_rows = rows_;
    report_.columns = columns_;

    at = &deterministic;
    guarded(at, [&] {
      const matrix again = model_.logits(tokens_);
      const double d = relative_difference(again, *logits_);
      deterministic.add(d, d == 0 ? "" : "two calls on the same input differ (dropout or other randomness left on?)");
    });
    finish(deterministic, tol_.consistency);

    decide_causality();
    report_.causal = causal_;
  }

  /// The tokens with the last one replaced by another token of the input (so that it is valid),
  /// or by the next id when every token is the same.
  token_sequence last_token_changed() const {
    token_sequence changed = tokens_;
    const auto other = std::find_if(tokens_.begin(), tokens_.end(), [&](token_id t) { return t != tokens_.back(); });
    changed.back() = other != tokens_.end() ? *other : static_cast<token_id>(tokens_.back() + 1);
    return changed;
  }

  void decide_causality() {
    const std::string rung = "Model";
    if (options_.causal.has_value()) {
      causal_ = *options_.causal;
      report_.causal_source = "set by options.causal";
      if (!causal_) return;
      pending_check c{"logits causal (rows ignore later tokens)", rung};
      pending_check* at = &c;
      if (rows_ != length() || length() < 2) {
        c.not_run = "needs one output row per token and at least 2 tokens";
      } else {
        guarded(at, [&] {
          const matrix z = model_.logits(last_token_changed());
          std::vector<std::size_t> earlier(length() - 1);
          for (std::size_t i = 0; i < earlier.size(); ++i) earlier[i] = i;
          c.add(relative_difference(select_rows(z, earlier), select_rows(*logits_, earlier)),
                "changing the last token changes earlier rows: the model is not causal");
        });
      }
      finish(c, tol_.consistency);
      return;
    }
    if (rows_ == 1) {
      report_.causal_source = "one output row (a classifier): the causal checks do not apply";
      return;
    }
    if (rows_ != length() || length() < 2) {
      report_.causal_source = "not detected: needs one output row per token and at least 2 tokens";
      return;
    }
    try {
      const matrix z = model_.logits(last_token_changed());
      std::vector<std::size_t> earlier(length() - 1);
      for (std::size_t i = 0; i < earlier.size(); ++i) earlier[i] = i;
      causal_ = z.shape() == logits_->shape() &&
                relative_difference(select_rows(z, earlier), select_rows(*logits_, earlier)) <= tol_.consistency;
      report_.causal_source = causal_ ? "detected: earlier rows of the logits do not change when the last token does"
                                      : "detected: changing the last token changes earlier rows of the logits";
    } catch (const cancelled&) {
      throw;
    } catch (const std::exception& e) {
      report_.causal_source = fmt::format("not detected: logits() threw on a changed input: {}", e.what());
    }
  }

  // ---- optional members of the Model rung -----------------------------------------------

  void optional_model_checks() {
    const std::string rung = "optional";
    if (!logits_) return;
    if constexpr (concepts::has_output_rows<M>) {
      pending_check c{"output_rows = rows of logits", rung};
      pending_check* at = &c;
      guarded(at, [&] {
        const std::size_t got = model_.output_rows(length());
        std::string got_text = fmt::format("{}", got), expected_text = fmt::format("{}", rows_);
        double bad = got != rows_;
        if (length() >= 2) {  // and for one token less, so that a constant answer is caught
          const token_sequence shorter(tokens_.begin(), tokens_.end() - 1);
          const std::size_t got_shorter = model_.output_rows(shorter.size());
          const std::size_t rows_shorter = model_.logits(shorter).shape(0);
          got_text += fmt::format(", {}", got_shorter);
          expected_text += fmt::format(", {}", rows_shorter);
          bad = bad || got_shorter != rows_shorter;
        }
        c.add(bad, bad ? fmt::format("output_rows gives {} for {} and {} tokens; logits() returns {} rows", got_text,
                                     length(), length() - 1, expected_text)
                       : "");
        c.measured_text = got_text;
        c.tolerance_text = "= " + expected_text;
      });
      finish(c, 0);
    }
    if constexpr (logits_at<M, S>) {
      pending_check c{"logits_at = rows of logits", rung};
      pending_check* at = &c;
      guarded(at, [&] {
        for (const auto& rows : {std::vector<std::size_t>{rows_ - 1}, subset_rows()}) {
          const matrix z = model_.logits_at(tokens_, rows);
          const matrix expected = select_rows(*logits_, rows);
          if (z.shape() != expected.shape()) {
            c.add(std::numeric_limits<double>::infinity(),
                  fmt::format("logits_at with {} rows returned {}, expected {}", rows.size(), shape_text(shape_of(z)),
                              shape_text(shape_of(expected))));
          } else {
            c.add(relative_difference(z, expected), fmt::format("rows {}", shape_text(rows)));
          }
        }
      });
      finish(c, tol_.consistency);
    }
    if constexpr (logits_batch<M, S>) {
      pending_check c{"logits_batch = logits", rung};
      pending_check* at = &c;
      guarded(at, [&] {
        const auto& inputs = variants();
        const auto& expected = variant_logits();
        token_matrix batch = token_matrix::from_shape({inputs.size(), length()});
        for (std::size_t b = 0; b < inputs.size(); ++b) std::copy(inputs[b].begin(), inputs[b].end(), batch.data() + b * length());
        compare_batch(c, "logits_batch", expected, [&](const std::vector<std::size_t>& rows) {
          return tensor3(model_.logits_batch(batch, rows));
        });
      });
      finish(c, tol_.consistency);
      batch_disagrees_ |= c.ran && !(c.worst <= tol_.consistency) ? 1 : 0;
    }
    if constexpr (prefix_cache<M, S>) prefix_checks();
    if constexpr (concepts::has_pad_token<M>) {
      pending_check c{"pad_token in vocabulary", rung};
      pending_check* at = &c;
      guarded(at, [&] {
        const std::optional<token_id> pad = model_.pad_token();
        const bool ok = !pad || (*pad >= 0 && static_cast<std::size_t>(*pad) < model_.vocab_size());
        c.add(ok ? 0 : 1, ok ? "" : fmt::format("pad_token {} is outside [0, {})", *pad, model_.vocab_size()));
        c.measured_text = pad ? fmt::format("{}", *pad) : "none";
        c.tolerance_text = fmt::format("in [0, {})", model_.vocab_size());
      });
      finish(c, 0);
    }
    if constexpr (is_thread_safe<M>()) thread_safety_check();
  }

  /// Compares a batched member's output, with all rows and with a row subset, against the single
  /// outputs `expected` (one per batch item).
  template <class Call>
  void compare_batch(pending_check& c, std::string_view member, const std::vector<matrix>& expected, Call&& call) {
    for (const auto& rows : {std::vector<std::size_t>{}, subset_rows()}) {
      const tensor3 out = call(rows);
      const std::size_t p = rows.empty() ? rows_ : rows.size();
      const std::vector<std::size_t> want{expected.size(), p, columns_};
      if (shape_of(out) != want) {
        c.add(std::numeric_limits<double>::infinity(),
              fmt::format("{} with {} returned {}, expected {}", member, rows.empty() ? "all rows" : "a row subset",
                          shape_text(shape_of(out)), shape_text(want)));
        continue;
      }
      for (std::size_t b = 0; b < expected.size(); ++b) {
        const matrix reference = rows.empty() ? expected[b] : select_rows(expected[b], rows);
        c.add(relative_difference(item(out, b), reference),
              fmt::format("item {} of the batch{}", b, rows.empty() ? "" : ", row subset"));
      }
    }
  }

  /// Batches that share a prefix with the input: item b equals the tokens before starts[b] and
  /// differs from there on (position j becomes the input's token j + 1, cyclically).
  std::vector<token_sequence> prefix_variants(const std::vector<std::size_t>& starts) const {
    std::vector<token_sequence> out;
    for (const std::size_t start : starts) {
      token_sequence v = tokens_;
      for (std::size_t j = start; j < length(); ++j) v[j] = tokens_[(j + 1) % length()];
      out.push_back(std::move(v));
    }
    return out;
  }

  /// The (starts, rows) pairs of the prefix checks: different starts read at the last row, and one
  /// start read at every row from it on (rows must not precede a start).
  std::vector<std::pair<std::vector<std::size_t>, std::vector<std::size_t>>> prefix_plans() const {
    const std::size_t t = length(), middle = t / 2;
    std::vector<std::size_t> from_middle;
    for (std::size_t r = middle; r < t; ++r) from_middle.push_back(r);
    return {{{t - 1, middle, 0}, {t - 1}}, {{middle, middle, middle}, from_middle}};
  }

  /// Compares a prefix-reuse member's logits [B, P, V] with the single passes of its batch items.
  void compare_prefix(pending_check& c, std::string_view member, const tensor3& out,
                      const std::vector<matrix>& expected, const std::vector<std::size_t>& starts,
                      const std::vector<std::size_t>& rows) {
    const std::vector<std::size_t> want{expected.size(), rows.size(), columns_};
    if (shape_of(out) != want) {
      c.add(std::numeric_limits<double>::infinity(), fmt::format("{} returned {}, expected {}", member,
                                                                 shape_text(shape_of(out)), shape_text(want)));
      return;
    }
    for (std::size_t b = 0; b < expected.size(); ++b)
      c.add(relative_difference(item(out, b), select_rows(expected[b], rows)),
            fmt::format("item {} (resumed at position {}), rows {}", b, starts[b], shape_text(rows)));
  }

  void prefix_checks() {
    pending_check c{"logits_batch_from_prefix = logits", "optional"};
    pending_check* at = &c;
    if (rows_ != length()) {
      c.not_run = "prefix reuse needs one output row per token";
    } else {
      guarded(at, [&] {
        const auto cache = model_.prefix_cache(tokens_);
        for (const auto& [starts, rows] : prefix_plans()) {
          const auto inputs = prefix_variants(starts);
          token_matrix batch = token_matrix::from_shape({inputs.size(), length()});
          std::vector<matrix> expected;
          for (std::size_t b = 0; b < inputs.size(); ++b) {
            std::copy(inputs[b].begin(), inputs[b].end(), batch.data() + b * length());
            expected.push_back(model_.logits(inputs[b]));
          }
          compare_prefix(c, "logits_batch_from_prefix", tensor3(model_.logits_batch_from_prefix(cache, batch, starts, rows)),
                         expected, starts, rows);
        }
      });
    }
    finish(c, tol_.consistency);
    batch_disagrees_ |= c.ran && !(c.worst <= tol_.consistency) ? 8 : 0;
  }

  void embeddings_prefix_checks() {
    pending_check c{"logits_from_embeddings_batch_from_prefix = logits_from_embeddings", "optional"};
    pending_check* at = &c;
    if (rows_ != length() || !embeddings_) {
      c.not_run = "prefix reuse needs one output row per token, and embed()";
    } else {
      guarded(at, [&] {
        const auto cache = model_.prefix_cache_from_embeddings(*embeddings_);
        for (const auto& [starts, rows] : prefix_plans()) {
          const auto inputs = prefix_variants(starts);
          tensor3 batch = tensor3::from_shape({inputs.size(), length(), embeddings_->shape(1)});
          std::vector<matrix> expected;
          for (std::size_t b = 0; b < inputs.size(); ++b) {
            const matrix e = model_.embed(inputs[b]);
            std::copy_n(e.data(), e.size(), batch.data() + b * e.size());
            expected.push_back(model_.logits_from_embeddings(e));
          }
          compare_prefix(c, "logits_from_embeddings_batch_from_prefix",
                         tensor3(model_.logits_from_embeddings_batch_from_prefix(cache, batch, starts, rows)), expected,
                         starts, rows);
        }
      });
    }
    finish(c, tol_.consistency);
    batch_disagrees_ |= c.ran && !(c.worst <= tol_.consistency) ? 16 : 0;
  }

  void thread_safety_check() {
    pending_check c{"thread_safe: concurrent calls agree", "optional"};
    pending_check* at = &c;
    guarded(at, [&] {
      const auto& inputs = variants();
      const auto& expected = variant_logits();
      const std::size_t threads = options_.execution.threads == 0 ? 4 : std::max<std::size_t>(2, options_.execution.threads);
      std::mutex mutex;
      double worst = 0;
      std::string failure;
      {
        std::vector<std::jthread> pool;
        for (std::size_t w = 0; w < threads; ++w)
          pool.emplace_back([&, w] {
            try {
              for (std::size_t rep = 0; rep < 3; ++rep) {
                const std::size_t j = (w + rep) % inputs.size();
                const matrix z = model_.logits(inputs[j]);
                const double d = relative_difference(z, expected[j]);
                std::lock_guard lock(mutex);
                worst = std::max(worst, std::isnan(d) ? std::numeric_limits<double>::infinity() : d);
              }
            } catch (const std::exception& e) {
              std::lock_guard lock(mutex);
              if (failure.empty()) failure = e.what();
            }
          });
      }
      if (!failure.empty()) detail::fail<model_error>("{} (in a concurrent call)", failure);
      c.add(worst, fmt::format("{} threads calling logits() at once disagree with one thread", threads));
    });
    finish(c, tol_.consistency);
    threads_disagree_ = c.ran ? !(c.worst <= tol_.consistency) : !c.threw.empty();
  }

  // ---- EmbeddingModel ---------------------------------------------------------------------

  void embedding_checks() {
    const std::string rung = "EmbeddingModel";
    pending_check shape{"embed shape", rung};
    pending_check same{"logits_from_embeddings(embed(t)) = logits(t)", rung};
    pending_check* at = &shape;
    guarded(at, [&] {
      matrix e = model_.embed(tokens_);
      add_shape(shape, shape_of(e), {length(), e.shape(1)}, count_nonfinite(e),
                e.shape(1) == 0 ? "embeddings of width 0" : "");
      if (e.shape(0) == length() && e.shape(1) > 0) embeddings_ = std::move(e);
    });
    finish(shape, 0);
    if (!embeddings_ || !logits_) {
      not_run({&same}, "needs embed() and logits()");
      finish(same, tol_.consistency);
      return;
    }
    at = &same;
    guarded(at, [&] {
      const matrix z = model_.logits_from_embeddings(*embeddings_);
      if (z.shape() != logits_->shape())
        same.add(std::numeric_limits<double>::infinity(),
                 fmt::format("logits_from_embeddings returned {}, logits {}", shape_text(shape_of(z)),
                             shape_text(shape_of(*logits_))));
      else
        same.add(relative_difference(z, *logits_),
                 "logits_from_embeddings(embed(t)) differs from logits(t): a position offset, a missing scale or "
                 "norm, or embed() returning something else than the token-embedding lookup");
    });
    finish(same, tol_.consistency);

    if constexpr (logits_from_embeddings_batch<M, S>) {
      pending_check c{"logits_from_embeddings_batch = logits_from_embeddings", "optional"};
      at = &c;
      guarded(at, [&] {
        const auto& inputs = variants();
        const auto scaled = scaled_variant_embeddings();
        tensor3 batch = tensor3::from_shape({inputs.size(), length(), embeddings_->shape(1)});
        std::vector<matrix> expected;
        for (std::size_t b = 0; b < inputs.size(); ++b) {
          std::copy_n(scaled[b].data(), scaled[b].size(), batch.data() + b * scaled[b].size());
          expected.push_back(model_.logits_from_embeddings(scaled[b]));
        }
        compare_batch(c, "logits_from_embeddings_batch", expected, [&](const std::vector<std::size_t>& rows) {
          return tensor3(model_.logits_from_embeddings_batch(batch, rows));
        });
      });
      finish(c, tol_.consistency);
      batch_disagrees_ |= c.ran && !(c.worst <= tol_.consistency) ? 2 : 0;
    }
    if constexpr (embeddings_prefix_cache<M, S>) embeddings_prefix_checks();
  }

  /// embed() of each variant, scaled by 1, 0.5 and 0.8 (points of an integrated-gradients path).
  std::vector<matrix> scaled_variant_embeddings() {
    std::vector<matrix> out;
    const double scale[3] = {1.0, 0.5, 0.8};
    const auto& inputs = variants();
    for (std::size_t b = 0; b < inputs.size(); ++b) {
      matrix e = model_.embed(inputs[b]);
      for (auto& v : e) v = static_cast<S>(static_cast<double>(v) * scale[b % 3]);
      out.push_back(std::move(e));
    }
    return out;
  }

  // ---- DifferentiableModel ----------------------------------------------------------------

  void differentiable_checks() {
    const std::string rung = "DifferentiableModel";
    pending_check shape{"embedding_gradient shape", rung};
    pending_check value{"embedding_gradient value = seed(logits_from_embeddings)", rung};
    pending_check fd{"embedding_gradient vs finite differences", rung};
    directional_summary summary;
    if (!embeddings_ || !logits_) {
      not_run({&shape, &value, &fd}, "needs embed() and logits()");
    } else {
      for (std::size_t i = 0; i < options_.directions; ++i) {
        pending_check* at = &shape;
        const bool ok = guarded(at, [&] {
          rng g = stream(100 + i);
          const double alpha = i == 0 ? 1.0 : g.uniform(0.3, 1.0);  // a point of an integrated-gradients path
          matrix x = *embeddings_;
          for (auto& v : x) v = static_cast<S>(static_cast<double>(v) * alpha);
          const auto r = random_readout(200 + i);
          const Seed seed = make_seed<Seed>(r);
          auto result = model_.embedding_gradient(x, seed);
          const matrix gradient = result.gradient;
          add_shape(shape, shape_of(gradient), shape_of(x), count_nonfinite(gradient));
          if (gradient.shape() != x.shape()) return;
          at = &value;
          const matrix z = model_.logits_from_embeddings(x);
          const double magnitude = r->magnitude_of(z);
          value.add(value_error(static_cast<double>(result.value), r->value_of(z), magnitude),
                    "the value is not the seed's scalar of logits_from_embeddings(embeddings)");
          at = &fd;
          const matrix v = random_direction(x, g);
          auto sample = directional_derivative(x, gradient, v, tol_.step, magnitude, tol_.epsilon,
                                               [&](const matrix& y) { return r->value_of(model_.logits_from_embeddings(y)); });
          sample.where = fmt::format("direction {}, embeddings x {:.2f}", i, alpha);
          summary.samples.push_back(sample);
          fd.add(sample.error());
        });
        if (!ok) break;
      }
      if (fd.ran) fd.detail = summary.error() <= tol_.gradient ? "" : summary.diagnosis();
      not_run({&value, &fd}, "needs a gradient of the embeddings' shape");
    }
    finish(shape, 0);
    finish(value, seed_value_tolerance_);
    finish(fd, tol_.gradient);

    if constexpr (embedding_gradient_batch<M, S, Seed>) {
      pending_check c{"embedding_gradient_batch = embedding_gradient", "optional"};
      pending_check* at = &c;
      if (!embeddings_) {
        c.not_run = "needs embed()";
      } else {
        guarded(at, [&] {
          const auto inputs = scaled_variant_embeddings();
          tensor3 batch = tensor3::from_shape({inputs.size(), length(), embeddings_->shape(1)});
          for (std::size_t b = 0; b < inputs.size(); ++b)
            std::copy_n(inputs[b].data(), inputs[b].size(), batch.data() + b * inputs[b].size());
          const auto r = random_readout(250);
          const Seed seed = make_seed<Seed>(r);
          const auto result = model_.embedding_gradient_batch(batch, seed);
          const tensor3 gradients = result.gradients;
          if (result.values.size() != inputs.size() || gradients.shape() != batch.shape()) {
            c.add(std::numeric_limits<double>::infinity(),
                  fmt::format("embedding_gradient_batch returned {} values and gradients {} for a batch {}",
                              result.values.size(), shape_text(shape_of(gradients)), shape_text(shape_of(batch))));
            return;
          }
          for (std::size_t b = 0; b < inputs.size(); ++b) {
            const auto one = model_.embedding_gradient(inputs[b], seed);
            const matrix single = one.gradient;
            c.add(relative_difference(item(gradients, b), single), fmt::format("gradient of item {} of the batch", b));
            c.add(value_error(static_cast<double>(result.values[b]), static_cast<double>(one.value), 1.0),
                  fmt::format("value of item {} of the batch", b));
          }
        });
      }
      finish(c, tol_.consistency);
      batch_disagrees_ |= c.ran && !(c.worst <= tol_.consistency) ? 4 : 0;
    }
  }

  // ---- AttentionModel ---------------------------------------------------------------------

  void attention_checks() {
    const std::string rung = "AttentionModel";
    pending_check shape{"attentions shape", rung};
    pending_check rows{"attention rows sum to one", rung};
    pending_check positive{"attention non-negative", rung};
    pending_check layout{"attention [query, key] layout", rung};
    pending_check causal{"attention causal (zero above the diagonal)", rung};
    pending_check* at = &shape;
    guarded(at, [&] {
      tensor4 a = model_.attentions(tokens_);
      const auto s = shape_of(a);
      const std::vector<std::size_t> expected{std::max<std::size_t>(1, s[0]), std::max<std::size_t>(1, s[1]), length(),
                                              length()};
      add_shape(shape, s, expected, count_nonfinite(a));
      if (s == expected) attentions_ = std::move(a);
    });
    finish(shape, 0);
    if (!attentions_) {
      not_run({&rows, &positive, &layout, &causal}, "needs attentions() of shape [L, H, T, T]");
    } else {
      const tensor4& a = *attentions_;
      const std::size_t heads = a.shape(0) * a.shape(1), t = length();
      double row_error = 0, column_error = 0, negative = 0, above = 0;
      std::string row_where, above_where;
      for (std::size_t m = 0; m < heads; ++m) {
        const S* p = a.data() + m * t * t;
        for (std::size_t q = 0; q < t; ++q) {
          double row = 0, column = 0;
          for (std::size_t k = 0; k < t; ++k) {
            row += static_cast<double>(p[q * t + k]);
            column += static_cast<double>(p[k * t + q]);
            negative = std::max(negative, -static_cast<double>(p[q * t + k]));
            if (k > q && std::abs(static_cast<double>(p[q * t + k])) > above) {
              above = std::abs(static_cast<double>(p[q * t + k]));
              above_where = fmt::format("layer {}, head {}, query {}, key {}", m / a.shape(1), m % a.shape(1), q, k);
            }
          }
          if (std::abs(row - 1) > row_error) {
            row_error = std::abs(row - 1);
            row_where = fmt::format("layer {}, head {}, query {} sums to {:.4g}", m / a.shape(1), m % a.shape(1), q, row);
          }
          column_error = std::max(column_error, std::abs(column - 1));
        }
      }
      rows.add(row_error, row_where + ": the probabilities are not normalised over keys");
      positive.add(negative, "a negative probability: scores instead of softmax outputs?");
      // A tensor whose columns sum to one while its rows do not is the transpose of [query, key].
      const bool rows_ok = row_error <= tol_.consistency;
      layout.add(rows_ok || column_error > tol_.consistency ? 0 : 1,
                 "the columns sum to one and the rows do not: the tensor is [key, query], transposed");
      layout.measured_text = fmt::format("{:.2e}", column_error);
      layout.tolerance_text = rows_ok ? "rows sum to 1" : fmt::format("> {:.1e}", tol_.consistency);
      if (causal_) {
        causal.add(above, above_where + " attends to a later position");
      } else {
        causal.not_run = "the model is not causal (" + report_.causal_source + ")";
      }
    }
    finish(rows, tol_.consistency);
    finish(positive, tol_.consistency);
    finish(layout, 0);
    finish(causal, tol_.consistency);
  }

  // ---- AttentionGradientModel -------------------------------------------------------------

  void attention_gradient_checks() {
    const std::string rung = "AttentionGradientModel";
    pending_check shape{"attention_gradient shape", rung};
    pending_check same{"attention_gradient attentions = attentions", rung};
    pending_check value{"attention_gradient value = seed(logits)", rung};
    pending_check ones{"logits_with_head_mask(ones) = logits", rung};
    pending_check mask_shape{"head_mask_gradient shape", rung};
    pending_check mask_value{"head_mask_gradient value = seed(logits_with_head_mask)", rung};
    pending_check mask_fd{"head_mask_gradient vs finite differences", rung};
    pending_check identity{"attention_gradient vs head_mask_gradient", rung};
    pending_check attention_fd{"attention_gradient vs finite differences", rung};
    std::initializer_list<pending_check*> all = {&shape, &same,     &value,    &ones,        &mask_shape,
                                                 &mask_value, &mask_fd, &identity, &attention_fd};
    if (!attentions_ || !logits_) {
      not_run(all, "needs attentions() of shape [L, H, T, T] and logits()");
    } else {
      const std::size_t n_layer = attentions_->shape(0), n_head = attentions_->shape(1), t = length();
      const auto r0 = random_readout(300);
      std::optional<tensor4> gradient;
      pending_check* at = &shape;
      guarded(at, [&] {
        const Seed seed = make_seed<Seed>(r0);
        auto result = model_.attention_gradient(tokens_, seed);
        const tensor4 probabilities = result.attentions;
        tensor4 g = result.gradient;
        add_shape(shape, shape_of(probabilities), shape_of(*attentions_), count_nonfinite(probabilities),
                  probabilities.shape() == attentions_->shape() ? "" : "the attentions member of the result");
        add_shape(shape, shape_of(g), shape_of(*attentions_), count_nonfinite(g),
                  g.shape() == attentions_->shape() ? "" : "the gradient member of the result");
        if (probabilities.shape() != attentions_->shape() || g.shape() != attentions_->shape()) return;
        at = &same;
        same.add(relative_difference(probabilities, *attentions_),
                 "the probabilities of the gradient pass differ from attentions()");
        at = &value;
        value.add(value_error(static_cast<double>(result.value), r0->value_of(*logits_), r0->magnitude_of(*logits_)),
                  "the value is not the seed's scalar of logits(tokens)");
        gradient = std::move(g);
      });
      if (!gradient) not_run({&same, &value, &identity, &attention_fd}, "needs a well-shaped attention_gradient()");

      const matrix unit = xt::ones<S>({n_layer, n_head});
      at = &ones;
      guarded(at, [&] {
        const matrix z = model_.logits_with_head_mask(tokens_, unit);
        if (z.shape() != logits_->shape())
          ones.add(std::numeric_limits<double>::infinity(),
                   fmt::format("logits_with_head_mask returned {}, logits {}", shape_text(shape_of(z)),
                               shape_text(shape_of(*logits_))));
        else
          ones.add(relative_difference(z, *logits_), "an all-ones head mask changes the logits");
      });

      // head_mask_gradient: at ones (direction 0, the readout of attention_gradient) and at
      // random masks in [0.5, 1.5].
      directional_summary summary;
      std::optional<matrix> mask_gradient_at_ones;
      for (std::size_t i = 0; i < options_.directions; ++i) {
        at = &mask_shape;
        const bool ok = guarded(at, [&] {
          rng g = stream(400 + i);
          matrix mask = unit;
          if (i > 0)
            for (auto& m : mask) m = static_cast<S>(g.uniform(0.5, 1.5));
          const auto r = i == 0 ? r0 : random_readout(500 + i);
          const Seed seed = make_seed<Seed>(r);
          auto result = model_.head_mask_gradient(tokens_, mask, seed);
          const matrix mg = result.gradient;
          add_shape(mask_shape, shape_of(mg), {n_layer, n_head}, count_nonfinite(mg));
          if (mg.shape() != mask.shape()) return;
          if (i == 0) mask_gradient_at_ones = mg;
          at = &mask_value;
          const matrix z = model_.logits_with_head_mask(tokens_, mask);
          const double magnitude = r->magnitude_of(z);
          mask_value.add(value_error(static_cast<double>(result.value), r->value_of(z), magnitude),
                         "the value is not the seed's scalar of logits_with_head_mask(tokens, mask)");
          at = &mask_fd;
          const matrix v = random_direction(mask, g);
          auto sample = directional_derivative(mask, mg, v, tol_.step, magnitude, tol_.epsilon, [&](const matrix& y) {
            return r->value_of(model_.logits_with_head_mask(tokens_, y));
          });
          sample.where = i == 0 ? "the all-ones mask" : fmt::format("random mask {}", i);
          summary.samples.push_back(sample);
          mask_fd.add(sample.error());
        });
        if (!ok) break;
      }
      if (mask_fd.ran) mask_fd.detail = summary.error() <= tol_.gradient ? "" : summary.diagnosis();
      not_run({&mask_value, &mask_fd}, "needs a head-mask gradient of shape [L, H]");

      // d f / d mask[l, h] at mask = 1 is sum_{q, k} A[l, h, q, k] dA[l, h, q, k]: the mask scales
      // the head's probabilities (equivalently its output A V).
      if (gradient && mask_gradient_at_ones) {
        at = &identity;
        guarded(at, [&] {
          const tensor4& a = *attentions_;
          double worst = 0, scale = 1e-300;
          std::string where;
          for (std::size_t l = 0; l < n_layer; ++l)
            for (std::size_t h = 0; h < n_head; ++h) {
              double s = 0;
              const std::size_t base = (l * n_head + h) * t * t;
              for (std::size_t j = 0; j < t * t; ++j)
                s += static_cast<double>(a.data()[base + j]) * static_cast<double>(gradient->data()[base + j]);
              const double m = static_cast<double>((*mask_gradient_at_ones)(l, h));
              scale = std::max({scale, std::abs(m), std::abs(s)});
              if (std::abs(s - m) > worst || where.empty()) {
                worst = std::max(worst, std::abs(s - m));
                where = fmt::format("layer {}, head {}: sum(A * dA) = {:.4g}, head_mask_gradient = {:.4g}", l, h, s, m);
              }
            }
          identity.add(worst / scale, where);
        });
      } else {
        not_run({&identity}, "needs attention_gradient() and head_mask_gradient() at the all-ones mask");
      }

      if constexpr (logits_with_attentions<M, S>) {
        if (gradient) attention_finite_differences(attention_fd);
      } else {
        attention_fd.not_run =
            "needs logits_with_attentions(tokens, layer, [H, T, T]); the identity with head_mask_gradient checks "
            "each head's sum";
      }
    }
    finish(shape, 0);
    finish(same, tol_.consistency);
    finish(value, seed_value_tolerance_);
    finish(ones, tol_.consistency);
    finish(mask_shape, 0);
    finish(mask_value, seed_value_tolerance_);
    finish(mask_fd, tol_.gradient);
    finish(identity, tol_.identity);
    finish(attention_fd, tol_.gradient);
  }

  /// attention_gradient against finite differences of logits_with_attentions, one layer per
  /// direction (below and on the diagonal only for a causal model).
  void attention_finite_differences(pending_check& fd) {
    const std::size_t n_layer = attentions_->shape(0), n_head = attentions_->shape(1), t = length();
    directional_summary summary;
    for (std::size_t i = 0; i < options_.directions; ++i) {
      pending_check* at = &fd;
      const bool ok = guarded(at, [&] {
        rng g = stream(600 + i);
        const std::size_t layer = i % n_layer;
        const auto r = random_readout(700 + i);
        const Seed seed = make_seed<Seed>(r);
        auto result = model_.attention_gradient(tokens_, seed);
        const tensor4 full = result.gradient;
        tensor3 x = tensor3::from_shape({n_head, t, t}), dx = tensor3::from_shape({n_head, t, t});
        std::copy_n(attentions_->data() + layer * x.size(), x.size(), x.data());
        std::copy_n(full.data() + layer * x.size(), x.size(), dx.data());
        tensor3 v = random_direction(x, g);
        if (causal_)
          for (std::size_t h = 0; h < n_head; ++h)
            for (std::size_t q = 0; q < t; ++q)
              for (std::size_t k = q + 1; k < t; ++k) v(h, q, k) = 0;
        const double magnitude = r->magnitude_of(*logits_);
        auto sample = directional_derivative(x, dx, v, tol_.step, magnitude, tol_.epsilon, [&](const tensor3& y) {
          return r->value_of(model_.logits_with_attentions(tokens_, layer, y));
        });
        sample.where = fmt::format("layer {}", layer);
        summary.samples.push_back(sample);
        fd.add(sample.error());
      });
      if (!ok) break;
    }
    if (fd.ran) fd.detail = summary.error() <= tol_.gradient ? "" : summary.diagnosis();
  }

  // ---- ActivationModel / InterventionModel -------------------------------------------------

  void activation_checks() {
    pending_check shape{"hidden_states shape", "ActivationModel"};
    pending_check* at = &shape;
    guarded(at, [&] {
      tensor3 h = model_.hidden_states(tokens_);
      const auto s = shape_of(h);
      std::vector<std::size_t> expected{std::max<std::size_t>(1, s[0]), length(), std::max<std::size_t>(1, s[2])};
      std::string why;
      if (attentions_ && s[0] != attentions_->shape(0) + 1) {
        expected[0] = attentions_->shape(0) + 1;
        why = fmt::format("{} hidden states for {} attention layers: expected L + 1 = {} (index 0 is the input of the "
                          "first block)",
                          s[0], attentions_->shape(0), expected[0]);
      }
      add_shape(shape, s, expected, count_nonfinite(h), why);
      if (s == expected) hidden_ = std::move(h);
    });
    finish(shape, 0);
    if constexpr (decode<M, S>) {
      // The logit lens' decoder: the last hidden state, decoded, is the model's output.
      pending_check c{"decode_hidden(hidden_states[L]) = logits", "optional"};
      at = &c;
      if (!hidden_ || !logits_ || logits_->shape(0) != length()) {
        not_run({&c}, "needs hidden_states() of shape [L + 1, T, d] and one output row per position");
      } else {
        guarded(at, [&] {
          const std::size_t L = hidden_->shape(0) - 1, d = hidden_->shape(2);
          matrix h = matrix::from_shape({length(), d});
          std::copy_n(hidden_->data() + L * h.size(), h.size(), h.data());
          const matrix z = model_.decode_hidden(h);
          if (z.shape() != logits_->shape())
            c.add(std::numeric_limits<double>::infinity(),
                  fmt::format("decode_hidden returned {}, logits {}", shape_text(shape_of(z)),
                              shape_text(shape_of(*logits_))));
          else
            c.add(relative_difference(z, *logits_), "the decoded last hidden state is not the model's output");
        });
      }
      finish(c, tol_.consistency);
    }
  }

  void intervention_checks() {
    const std::string rung = "InterventionModel";
    pending_check same{"logits_from_hidden(hidden_states) = logits", rung};
    pending_check shape{"hidden_gradient shape", rung};
    pending_check value{"hidden_gradient value = seed(logits_from_hidden)", rung};
    pending_check fd{"hidden_gradient vs finite differences", rung};
    if (!hidden_ || !logits_) {
      not_run({&same, &shape, &value, &fd}, "needs hidden_states() of shape [L + 1, T, d] and logits()");
    } else {
      const std::size_t levels = hidden_->shape(0), d = hidden_->shape(2);
      auto level = [&](std::size_t k) {
        matrix h = matrix::from_shape({length(), d});
        std::copy_n(hidden_->data() + k * h.size(), h.size(), h.data());
        return h;
      };
      pending_check* at = &same;
      guarded(at, [&] {
        for (std::size_t k = 0; k < levels; ++k) {
          const matrix z = model_.logits_from_hidden(tokens_, k, level(k));
          if (z.shape() != logits_->shape())
            same.add(std::numeric_limits<double>::infinity(),
                     fmt::format("layer {}: logits_from_hidden returned {}, logits {}", k, shape_text(shape_of(z)),
                                 shape_text(shape_of(*logits_))));
          else
            same.add(relative_difference(z, *logits_),
                     fmt::format("layer {}: running on from the unedited hidden state changes the logits", k));
        }
      });
      // One direction per hidden state at least, and `directions` in all.
      directional_summary summary;
      const std::size_t n = std::max(options_.directions, levels);
      for (std::size_t i = 0; i < n; ++i) {
        at = &shape;
        const bool ok = guarded(at, [&] {
          rng g = stream(800 + i);
          const std::size_t k = i % levels;
          const matrix x = level(k);
          const auto r = random_readout(900 + i);
          const Seed seed = make_seed<Seed>(r);
          auto result = model_.hidden_gradient(tokens_, k, x, seed);
          const matrix gradient = result.gradient;
          add_shape(shape, shape_of(gradient), shape_of(x), count_nonfinite(gradient));
          if (gradient.shape() != x.shape()) return;
          at = &value;
          const matrix z = model_.logits_from_hidden(tokens_, k, x);
          const double magnitude = r->magnitude_of(z);
          value.add(value_error(static_cast<double>(result.value), r->value_of(z), magnitude),
                    fmt::format("layer {}: the value is not the seed's scalar of logits_from_hidden", k));
          at = &fd;
          const matrix v = random_direction(x, g);
          auto sample = directional_derivative(x, gradient, v, tol_.step, magnitude, tol_.epsilon, [&](const matrix& y) {
            return r->value_of(model_.logits_from_hidden(tokens_, k, y));
          });
          sample.where = fmt::format("layer {}", k);
          summary.samples.push_back(sample);
          fd.add(sample.error());
        });
        if (!ok) break;
      }
      if (fd.ran) fd.detail = summary.error() <= tol_.gradient ? "" : summary.diagnosis();
      not_run({&value, &fd}, "needs a gradient of the hidden state's shape");
    }
    finish(same, tol_.consistency);
    finish(shape, 0);
    finish(value, seed_value_tolerance_);
    finish(fd, tol_.gradient);
  }

  // ---- ComponentModel ---------------------------------------------------------------------

  void component_checks() {
    using patch = basic_component_patch<S>;
    const std::string rung = "ComponentModel";
    pending_check shape{"run_with_cache shapes", rung};
    pending_check same{"run_with_cache = hidden_states and logits", rung};
    pending_check sums{"components sum to the residual stream", rung};
    pending_check mlp{"MLP output = neurons x neuron_output_weights + a constant", rung};
    pending_check own{"logits_with_patches(own values) = logits", rung};
    pending_check identity{"unembedding_directions read the logits (frozen final scale)", rung};
    pending_check value{"component_gradients value = seed(logits)", rung};
    pending_check fd{"component_gradients vs finite differences", rung};
    std::optional<basic_component_cache<S>> cache;
    component_layout lay{};
    const std::size_t T = length();
    pending_check* at = &shape;
    guarded(at, [&] {
      lay = model_.layout();
      auto c = model_.run_with_cache(tokens_);
      const std::size_t L = lay.layers, H = lay.heads, d = lay.width, f = lay.neurons;
      auto check = [&](const auto& t, std::vector<std::size_t> expected) {
        add_shape(shape, shape_of(t), expected, count_nonfinite(t));
      };
      check(c.residual, {L + 1, T, d});
      check(c.token_embeddings, {T, d});
      check(c.position_embeddings, {T, d});
      check(c.heads, {L, H, T, d});
      check(c.attention_bias, {L, d});
      check(c.mlps, {L, T, d});
      check(c.neurons, {L, T, f});
      if (logits_) check(c.logits, shape_of(*logits_));
      bool scales = c.final_scale.size() == T;
      for (const double v : c.final_scale) scales = scales && std::isfinite(v) && v > 0;
      shape.add(scales ? 0 : 1, scales ? "" : "final_scale must hold one positive value per position");
      if (shape.worst == 0) cache = std::move(c);
    });
    if (!cache) {
      not_run({&same, &sums, &mlp, &own, &identity, &value, &fd}, "needs run_with_cache() of the layout's shapes");
    } else {
      const auto& c = *cache;
      const std::size_t L = lay.layers, H = lay.heads, d = lay.width, f = lay.neurons;
      at = &same;
      guarded(at, [&] {
        if (hidden_) same.add(relative_difference(c.residual, *hidden_), "the residual stream differs from hidden_states");
        if (logits_) same.add(relative_difference(c.logits, *logits_), "the logits differ from logits()");
      });
      at = &sums;
      guarded(at, [&] {
        matrix x = matrix::from_shape({T, d}), next = matrix::from_shape({T, d});
        for (std::size_t i = 0; i < T * d; ++i) x.data()[i] = c.token_embeddings.data()[i] + c.position_embeddings.data()[i];
        sums.add(relative_difference(x, matrix(xt::view(c.residual, 0))), "residual[0] != token + position embeddings");
        for (std::size_t l = 0; l < L; ++l) {
          for (std::size_t t = 0; t < T; ++t)
            for (std::size_t j = 0; j < d; ++j) {
              double v = static_cast<double>(c.residual(l, t, j)) + c.attention_bias(l, j) + c.mlps(l, t, j);
              for (std::size_t h = 0; h < H; ++h) v += c.heads(l, h, t, j);
              next(t, j) = static_cast<S>(v);
            }
          sums.add(relative_difference(next, matrix(xt::view(c.residual, l + 1))),
                   fmt::format("block {}: residual[l] + heads + attention bias + MLP != residual[l + 1]", l));
        }
      });
      at = &mlp;
      guarded(at, [&] {
        for (std::size_t l = 0; l < L; ++l) {
          const matrix w = model_.neuron_output_weights(l);
          if (w.shape(0) != f || w.shape(1) != d) {
            mlp.add(1, fmt::format("neuron_output_weights({}) is {}, expected [{}, {}]", l, shape_text(shape_of(w)), f, d));
            continue;
          }
          matrix rest = matrix::from_shape({T, d}), first = matrix::from_shape({T, d});
          for (std::size_t t = 0; t < T; ++t)
            for (std::size_t j = 0; j < d; ++j) {
              double v = c.mlps(l, t, j);
              for (std::size_t n = 0; n < f; ++n) v -= static_cast<double>(c.neurons(l, t, n)) * w(n, j);
              rest(t, j) = static_cast<S>(v);
            }
          for (std::size_t t = 0; t < T; ++t)
            for (std::size_t j = 0; j < d; ++j) first(t, j) = rest(0, j);
          double worst = 0, size = 1;
          for (std::size_t i = 0; i < T * d; ++i) {
            worst = std::max(worst, std::abs(static_cast<double>(rest.data()[i]) - first.data()[i]));
            size = std::max(size, std::abs(static_cast<double>(c.mlps.data()[l * T * d + i])));
          }
          mlp.add(worst / size,
                  fmt::format("block {}: what the neurons do not explain changes with the position", l));
        }
      });
      at = &own;
      guarded(at, [&] {
        if (!logits_) return;
        for (std::size_t l = 0; l < L; ++l) {
          std::vector<patch> patches;
          patches.push_back({component_site::head, l, l % H, {}, matrix(xt::view(c.heads, l, l % H)), false});
          patches.push_back({component_site::mlp, l, 0, {}, matrix(xt::view(c.mlps, l)), false});
          matrix neuron = matrix::from_shape({T, 1});
          for (std::size_t t = 0; t < T; ++t) neuron(t, 0) = c.neurons(l, t, l % f);
          patches.push_back({component_site::neuron, l, l % f, {}, neuron, false});
          patches.push_back({component_site::residual, l, 0, {}, matrix(xt::view(c.residual, l)), false});
          const matrix z = model_.logits_with_patches(tokens_, patches, {});
          own.add(shape_of(z) == shape_of(*logits_) ? relative_difference(z, *logits_)
                                                    : std::numeric_limits<double>::infinity(),
                  fmt::format("block {}: patching components with their own values changes the logits", l));
        }
      });
      at = &identity;
      guarded(at, [&] {
        if (!logits_ || logits_->shape(0) != T) return;
        const std::size_t V = logits_->shape(1);
        std::vector<token_id> ids = {0, static_cast<token_id>(V - 1), static_cast<token_id>(V / 2)};
        const auto dirs = model_.unembedding_directions(ids);
        matrix got = matrix::from_shape({T, ids.size()}), expected = matrix::from_shape({T, ids.size()});
        for (std::size_t t = 0; t < T; ++t)
          for (std::size_t k = 0; k < ids.size(); ++k) {
            auto share = [&](const S* v) {
              double s = 0;
              for (std::size_t j = 0; j < d; ++j) s += static_cast<double>(v[j]) * dirs.directions(k, j);
              return s;
            };
            double total = share(c.token_embeddings.data() + t * d) + share(c.position_embeddings.data() + t * d);
            for (std::size_t l = 0; l < L; ++l) {
              for (std::size_t h = 0; h < H; ++h) total += share(c.heads.data() + ((l * H + h) * T + t) * d);
              total += share(c.attention_bias.data() + l * d) + share(c.mlps.data() + (l * T + t) * d);
            }
            got(t, k) = static_cast<S>(total / c.final_scale[t] + dirs.offsets[k]);
            expected(t, k) = (*logits_)(t, static_cast<std::size_t>(ids[k]));
          }
        identity.add(relative_difference(got, expected),
                     "the parts' shares through unembedding_directions / final_scale do not sum to the logits");
      });
      // Gradients: the value, then directions on the residual stream, a head's output and a neuron.
      directional_summary summary;
      for (std::size_t i = 0; i < std::max<std::size_t>(options_.directions, 3); ++i) {
        at = &value;
        const bool ok = guarded(at, [&] {
          const auto r = random_readout(1500 + i);
          const Seed seed = make_seed<Seed>(r);
          const auto g = model_.component_gradients(tokens_, seed);
          if (logits_) {
            value.add(value_error(static_cast<double>(g.value), r->value_of(*logits_), r->magnitude_of(*logits_)),
                      "the value is not the seed's scalar of the logits");
          }
          at = &fd;
          rng gen = stream(1600 + i);
          const std::size_t l = i % L, kind = i % 3;
          const double magnitude = logits_ ? r->magnitude_of(*logits_) : 1.0;
          directional_sample sample;
          if (kind == 0) {  // the residual stream entering block l, through logits_from_hidden
            const matrix x = xt::view(c.residual, l), grad = xt::view(g.residual, l);
            sample = directional_derivative(x, grad, random_direction(x, gen), tol_.step, magnitude, tol_.epsilon,
                                            [&](const matrix& y) {
                                              return r->value_of(model_.logits_from_hidden(tokens_, l, y));
                                            });
            sample.where = fmt::format("residual {}", l);
          } else {  // a head's output or a neuron, shifted by an added patch from zero
            const bool head = kind == 1;
            const std::size_t index = head ? i % H : (7 * i) % f;
            const matrix zero = xt::zeros<S>({T, head ? d : std::size_t{1}});
            matrix grad = zero, scale = zero;
            for (std::size_t t = 0; t < T; ++t)
              for (std::size_t j = 0; j < grad.shape(1); ++j) {
                grad(t, j) = head ? g.attention(l, t, j) : g.neurons(l, t, index);
                scale(t, j) = head ? c.heads(l, index, t, j) : c.neurons(l, t, index);
              }
            sample = directional_derivative(zero, grad, random_direction(scale, gen), tol_.step, magnitude,
                                            tol_.epsilon, [&](const matrix& y) {
                                              const patch p{head ? component_site::head : component_site::neuron, l,
                                                            index, {}, y, true};
                                              return r->value_of(model_.logits_with_patches(
                                                  tokens_, std::span<const patch>(&p, 1), {}));
                                            });
            sample.where = head ? fmt::format("head L{}H{}", l, index) : fmt::format("neuron {} of block {}", index, l);
          }
          summary.samples.push_back(sample);
          fd.add(sample.error());
        });
        if (!ok) break;
      }
      if (fd.ran) fd.detail = summary.error() <= tol_.gradient ? "" : summary.diagnosis();
    }
    finish(shape, 0);
    finish(same, tol_.consistency);
    finish(sums, tol_.consistency);
    finish(mlp, tol_.consistency);
    finish(own, tol_.consistency);
    finish(identity, tol_.consistency);
    finish(value, seed_value_tolerance_);
    finish(fd, tol_.gradient);
  }

  // ---- TrainableModel / KfacModel ---------------------------------------------------------

  void trainable_checks() {
    const std::string rung = "TrainableModel";
    pending_check params{"parameters shape", rung};
    pending_check shape{"loss_gradient shape", rung};
    pending_check value{"loss_gradient value = loss", rung};
    pending_check round_trip{"set_parameters(parameters()) keeps the loss", rung};
    pending_check fd{"loss_gradient vs finite differences", rung};
    if (!logits_) {
      not_run({&params, &shape, &value, &round_trip, &fd}, "needs logits()");
    } else {
      const training_example ex = example();
      std::optional<vector> p;
      double loss = 0;
      pending_check* at = &params;
      guarded(at, [&] {
        const std::span<const S> span = model_.parameters();
        const std::size_t count = model_.parameter_count();
        vector flat = vector::from_shape({span.size()});
        std::copy(span.begin(), span.end(), flat.begin());
        add_shape(params, {span.size()}, {count}, count_nonfinite(flat),
                  span.size() == count ? "" : "parameters().size() differs from parameter_count()");
        if (span.size() == count) p = std::move(flat);
      });
      at = &shape;
      guarded(at, [&] {
        auto result = model_.loss_gradient(ex);
        vector g = result.gradient;
        add_shape(shape, shape_of(g), {model_.parameter_count()}, count_nonfinite(g));
        if (g.size() != model_.parameter_count()) return;
        at = &value;
        loss = model_.loss(ex);
        value.add(std::abs(static_cast<double>(result.value) - loss) / std::max(1.0, std::abs(loss)),
                  "loss_gradient's value differs from loss()");
        loss_gradient_ = std::move(g);
      });
      if (p && loss_gradient_ && options_.parameter_checks) curvature_base_ = *p;
      if constexpr (std::copy_constructible<M>) {
        if (!options_.parameter_checks) {
          not_run({&round_trip, &fd}, "options.parameter_checks is false");
        } else if (!p || !loss_gradient_) {
          not_run({&round_trip, &fd}, "needs parameters() and loss_gradient()");
        } else {
          parameter_finite_differences(ex, *p, loss, round_trip, fd);
        }
      } else {
        not_run({&round_trip, &fd}, "the model type cannot be copied, and the kit never changes the model it is given");
      }
    }
    finish(params, 0);
    finish(shape, 0);
    finish(value, tol_.value);
    finish(round_trip, tol_.consistency);
    finish(fd, tol_.gradient);
    // The optional curvature products, on the same example and parameters.
    const std::string why = !options_.parameter_checks ? "options.parameter_checks is false"
                            : !logits_               ? "needs logits()"
                                                     : "needs parameters() and loss_gradient()";
    if constexpr (hessian_vector_product<M, S>) {
      if constexpr (std::copy_constructible<M>) {
        if (curvature_base_) {
          M copy(model_);
          hessian_checks(example(), *curvature_base_, copy);
        } else {
          skip("hessian_vector_product vs finite differences", why);
        }
      } else {
        skip("hessian_vector_product vs finite differences", "the model type cannot be copied");
      }
    }
    if constexpr (gauss_newton_vector_product<M, S>) {
      if (curvature_base_)
        gauss_newton_checks(example(), *curvature_base_);
      else
        skip("gauss_newton_vector_product symmetric, positive semi-definite", why);
    }
  }

  /// A row of an optional member's check that could not run, with the reason.
  void skip(std::string name, const std::string& why) {
    pending_check c{std::move(name), "optional"};
    c.not_run = why;
    finish(c, 0);
  }

  /// loss_gradient against finite differences of loss() on a copy of the model whose parameters
  /// move along random directions.
  void parameter_finite_differences(const training_example& ex, const vector& p, double loss, pending_check& round_trip,
                                    pending_check& fd)
    requires std::copy_constructible<M>
  {
    M copy(model_);
    pending_check* at = &round_trip;
    const bool ok = guarded(at, [&] {
      copy.set_parameters(std::span<const S>(p.data(), p.size()));
      round_trip.add(std::abs(copy.loss(ex) - loss) / std::max(1.0, std::abs(loss)),
                     "set_parameters(parameters()) changes the loss: the two members use different layouts");
    });
    if (!ok) return;
    directional_summary summary;
    for (std::size_t i = 0; i < options_.directions; ++i) {
      at = &fd;
      const bool fine = guarded(at, [&] {
        rng g = stream(1000 + i);
        const vector v = random_direction(p, g);
        auto sample = directional_derivative(p, *loss_gradient_, v, tol_.step, std::abs(loss), tol_.epsilon,
                                             [&](const vector& y) {
                                               copy.set_parameters(std::span<const S>(y.data(), y.size()));
                                               return static_cast<double>(copy.loss(ex));
                                             });
        sample.where = fmt::format("direction {}", i);
        summary.samples.push_back(sample);
        fd.add(sample.error());
      });
      if (!fine) break;
    }
    if (fd.ran) fd.detail = summary.error() <= tol_.gradient ? "" : summary.diagnosis();
  }

  /// hessian_vector_product against finite differences of loss_gradient: along v, the directional
  /// derivative of u . gradient is u . H v (H symmetric), with u and v random.
  void hessian_checks(const training_example& ex, const vector& p, M& copy)
    requires std::copy_constructible<M>
  {
    pending_check fd{"hessian_vector_product vs finite differences", "optional"};
    directional_summary summary;
    const std::vector<training_example> examples{ex};
    for (std::size_t i = 0; i < options_.directions; ++i) {
      pending_check* at = &fd;
      const bool ok = guarded(at, [&] {
        rng g = stream(1100 + i);
        const vector u = random_direction(p, g), v = random_direction(p, g);
        copy.set_parameters(std::span<const S>(p.data(), p.size()));
        const vector hu = model_.hessian_vector_product(std::span<const training_example>(examples),
                                                        std::span<const S>(u.data(), u.size()));
        if (hu.size() != p.size()) {
          fd.add(std::numeric_limits<double>::infinity(),
                 fmt::format("hessian_vector_product returned {} values for {} parameters", hu.size(), p.size()));
          return;
        }
        auto u_dot_gradient = [&](const vector& y) {
          copy.set_parameters(std::span<const S>(y.data(), y.size()));
          const vector gradient = copy.loss_gradient(ex).gradient;
          double s = 0;
          for (std::size_t k = 0; k < y.size(); ++k) s += static_cast<double>(u(k)) * static_cast<double>(gradient(k));
          return s;
        };
        double magnitude = 0;
        for (std::size_t k = 0; k < p.size(); ++k) {
          const double t = static_cast<double>(u(k)) * static_cast<double>((*loss_gradient_)(k));
          magnitude += t * t;
        }
        auto sample = directional_derivative(p, hu, v, tol_.step, std::sqrt(magnitude), tol_.epsilon, u_dot_gradient);
        sample.where = fmt::format("direction {}", i);
        summary.samples.push_back(sample);
        fd.add(sample.error());
      });
      if (!ok) break;
    }
    if (fd.ran) fd.detail = summary.error() <= tol_.gradient ? "" : summary.diagnosis();
    finish(fd, tol_.gradient);
  }

  /// gauss_newton_vector_product is symmetric (u . G v = v . G u) and positive semi-definite (v . G v >= 0).
  void gauss_newton_checks(const training_example& ex, const vector& p) {
    pending_check c{"gauss_newton_vector_product symmetric, positive semi-definite", "optional"};
    pending_check* at = &c;
    const std::vector<training_example> examples{ex};
    guarded(at, [&] {
      for (std::size_t i = 0; i < options_.directions; ++i) {
        rng g = stream(1200 + i);
        const vector u = random_direction(p, g), v = random_direction(p, g);
        const vector gu = model_.gauss_newton_vector_product(std::span<const training_example>(examples),
                                                             std::span<const S>(u.data(), u.size()));
        const vector gv = model_.gauss_newton_vector_product(std::span<const training_example>(examples),
                                                             std::span<const S>(v.data(), v.size()));
        if (gu.size() != p.size() || gv.size() != p.size()) {
          c.add(std::numeric_limits<double>::infinity(), "gauss_newton_vector_product returned the wrong length");
          return;
        }
        double ugv = 0, vgu = 0, vgv = 0, ugu = 0;
        for (std::size_t k = 0; k < p.size(); ++k) {
          ugv += static_cast<double>(u(k)) * static_cast<double>(gv(k));
          vgu += static_cast<double>(v(k)) * static_cast<double>(gu(k));
          vgv += static_cast<double>(v(k)) * static_cast<double>(gv(k));
          ugu += static_cast<double>(u(k)) * static_cast<double>(gu(k));
        }
        // |u . G v| <= sqrt(u . G u  v . G v) for a PSD G: the scale of both measures.
        const double scale = std::max({std::sqrt(std::abs(ugu * vgv)), std::abs(ugv), std::abs(vgu), 1e-300});
        c.add(std::abs(ugv - vgu) / scale, fmt::format("u . G v = {:.6g} but v . G u = {:.6g}: G is not symmetric", ugv, vgu));
        c.add(std::max({0.0, -vgv, -ugu}) / scale,
              fmt::format("v . G v = {:.6g}, u . G u = {:.6g}: G is not positive semi-definite", vgv, ugu));
      }
    });
    finish(c, tol_.identity);
  }

  void kfac_checks() {
    const std::string rung = "KfacModel";
    pending_check shape{"kfac_statistics shapes", rung};
    pending_check blocks{"kfac_statistics = loss_gradient weight blocks", rung};
    if (!logits_) {
      not_run({&shape, &blocks}, "needs logits()");
    } else {
      pending_check* at = &shape;
      guarded(at, [&] {
        const std::size_t count = model_.parameter_count();
        const auto statistics = model_.kfac_statistics(example());
        bool shapes_ok = !statistics.empty();
        if (statistics.empty()) add_shape(shape, {0}, {1}, 0, "kfac_statistics returned no layers");
        struct layer {
          std::string name;
          matrix x, dy;
          std::size_t weight_offset, bias_offset;
          bool has_bias, input_major;
        };
        std::vector<layer> layers;
        for (const auto& s : statistics) {
          layer l{std::string(s.name), s.inputs, s.output_gradients, s.weight_offset, s.bias_offset, s.has_bias,
                  s.input_major};
          const std::size_t n = l.x.shape(0), din = l.x.shape(1), dout = l.dy.shape(1);
          std::string why;
          if (l.dy.shape(0) != n)
            why = fmt::format("{}: {} input rows but {} output-gradient rows", l.name, n, l.dy.shape(0));
          else if (l.weight_offset + din * dout > count)
            why = fmt::format("{}: a [{}, {}] weight at offset {} runs past the {} parameters", l.name, din, dout,
                              l.weight_offset, count);
          else if (l.has_bias && l.bias_offset + dout > count)
            why = fmt::format("{}: a bias of {} at offset {} runs past the {} parameters", l.name, dout, l.bias_offset,
                              count);
          add_shape(shape, {l.dy.shape(0), din, dout}, {n, din, dout},
                    count_nonfinite(l.x) + count_nonfinite(l.dy) + (why.empty() ? 0 : 1), why);
          shapes_ok = shapes_ok && why.empty() && count_nonfinite(l.x) + count_nonfinite(l.dy) == 0;
          layers.push_back(std::move(l));
        }
        shape.measured_text = fmt::format("{} layers", layers.size());
        shape.tolerance_text = "consistent";
        if (!shapes_ok || !loss_gradient_) {
          blocks.not_run = !loss_gradient_ ? "needs loss_gradient()" : "needs consistent shapes";
          return;
        }
        at = &blocks;
        // sum over rows of x^T dy is the weight block of the loss gradient; sum of dy its bias.
        const vector& grad = *loss_gradient_;
        double scale = 1e-300, worst = 0;
        std::string where;
        for (const auto& l : layers) {
          const std::size_t n = l.x.shape(0), din = l.x.shape(1), dout = l.dy.shape(1);
          for (std::size_t i = 0; i < din; ++i)
            for (std::size_t o = 0; o < dout; ++o) {
              double s = 0;
              for (std::size_t r = 0; r < n; ++r) s += static_cast<double>(l.x(r, i)) * static_cast<double>(l.dy(r, o));
              const std::size_t index = l.weight_offset + (l.input_major ? i * dout + o : o * din + i);
              const double reference = static_cast<double>(grad(index));
              scale = std::max(scale, std::abs(reference));
              if (std::abs(s - reference) > worst) {
                worst = std::abs(s - reference);
                where = fmt::format("{}: weight [{}, {}]", l.name, i, o);
              }
            }
          if (l.has_bias)
            for (std::size_t o = 0; o < dout; ++o) {
              double s = 0;
              for (std::size_t r = 0; r < n; ++r) s += static_cast<double>(l.dy(r, o));
              const double reference = static_cast<double>(grad(l.bias_offset + o));
              scale = std::max(scale, std::abs(reference));
              if (std::abs(s - reference) > worst) {
                worst = std::abs(s - reference);
                where = fmt::format("{}: bias [{}]", l.name, o);
              }
            }
        }
        blocks.add(worst / scale, where + " differs from loss_gradient");
      });
    }
    finish(shape, 0);
    finish(blocks, tol_.identity);
  }

  // ---- optional members, fast paths, warnings ------------------------------------------------

  void optional_members() {
    constexpr bool rows = concepts::has_output_rows<M>;
    auto& out = report_.optional_members;
    auto& fast = report_.fast_paths;
    auto& warn = report_.warnings;
    const bool threads = is_thread_safe<M>();
    out.push_back({"thread_safe", threads,
                   threads ? "algorithms evaluate on execution_options::threads threads"
                           : "algorithms call the model from one thread"});
    if (threads) fast.push_back("evaluations run on several threads (execution_options::threads)");
    out.push_back({"output_rows", rows,
                   rows ? "the rows of an output are known without a pass (needed by logits_at and the batches)"
                        : "the library learns the rows from a full logits() call"});
    constexpr bool at = logits_at<M, S>;
    out.push_back({"logits_at", at,
                   at ? (rows ? "targets read only the rows they need" : "unused: the library needs output_rows with it")
                      : "targets read their rows from a full logits() call"});
    if (concepts::has_logits_at<M>)
      fast.push_back("targets compute only the rows they read (logits_at): perturbation methods and generation");
    if (at && !rows)
      warn.push_back(
          "logits_at is present but output_rows is not: the library cannot ask for rows without output_rows, so every "
          "target quietly takes the slow path through logits(); add `std::size_t output_rows(std::size_t tokens) "
          "const`");
    constexpr bool batch = logits_batch<M, S>;
    out.push_back({"logits_batch", batch,
                   batch ? (rows ? "equal-length token inputs run as one batch" : "unused: the library needs output_rows with it")
                         : "token inputs run one logits() call each"});
    if (concepts::has_logits_batch<M> && rows)
      fast.push_back("equal-length token inputs run in batches of execution_options::batch_size (logits_batch): "
                     "occlusion, ablation, LIME, KernelSHAP, Shapley values");
    if (batch && !rows)
      warn.push_back("logits_batch is present but output_rows is not: the library never calls it; add output_rows");
    constexpr bool ebatch = logits_from_embeddings_batch<M, S>;
    out.push_back({"logits_from_embeddings_batch", ebatch,
                   ebatch ? (rows ? "embedding inputs run as one batch" : "unused: the library needs output_rows with it")
                          : "embedding inputs run one logits_from_embeddings() call each"});
    if (concepts::has_logits_from_embeddings_batch<M> && rows)
      fast.push_back("equal-shape embedding inputs run in batches (logits_from_embeddings_batch): embedding baselines "
                     "and perturbations");
    if (ebatch && !rows)
      warn.push_back(
          "logits_from_embeddings_batch is present but output_rows is not: the library never calls it; add output_rows");
    constexpr bool gbatch = embedding_gradient_batch<M, S, Seed>;
    out.push_back({"embedding_gradient_batch", gbatch,
                   gbatch ? "gradients of equal-shape inputs run as one batch"
                          : "one embedding_gradient() call per gradient"});
    if (concepts::has_embedding_gradient_batch<M>)
      fast.push_back("gradients run in batches (embedding_gradient_batch): integrated gradients, SmoothGrad, "
                     "GradientSHAP, layer attribution");
    constexpr bool prefix = prefix_cache<M, S>, eprefix = embeddings_prefix_cache<M, S>;
    out.push_back({"prefix_cache", prefix,
                   prefix ? "with logits_batch_from_prefix: a perturbed input runs from its first change on"
                          : "every perturbed input runs from its first token"});
    out.push_back({"prefix_cache_from_embeddings", eprefix,
                   eprefix ? "with logits_from_embeddings_batch_from_prefix: the same for embedding inputs"
                           : "every perturbed embedding input runs from its first position"});
    if (prefix)
      fast.push_back("perturbed inputs run only from their first change on (prefix_cache, "
                     "execution_options::reuse_prefix): occlusion, ablation, LIME, KernelSHAP, Shapley values");
    if (eprefix)
      fast.push_back("perturbed embedding inputs run only from their first change on (prefix_cache_from_embeddings)");
    constexpr bool hvp = hessian_vector_product<M, S>, gnvp = gauss_newton_vector_product<M, S>;
    out.push_back({"hessian_vector_product", hvp,
                   hvp ? "exact Hessian-vector products for influence functions"
                       : "influence functions need another source of curvature"});
    out.push_back({"gauss_newton_vector_product", gnvp,
                   gnvp ? "Gauss-Newton products (positive semi-definite) for influence functions"
                        : "no Gauss-Newton products"});
    constexpr bool pad = concepts::has_pad_token<M>;
    std::string pad_effect = "perturbation methods need an explicit baseline token";
    if constexpr (pad) {
      try {
        const auto p = model_.pad_token();
        pad_effect = p ? fmt::format("token {} is the default absent token of perturbation methods", *p)
                       : "declared, but the model has no pad token: perturbation methods need an explicit baseline";
      } catch (const std::exception&) {
        pad_effect = "pad_token() threw";
      }
    }
    out.push_back({"pad_token", pad, pad_effect});
    constexpr bool patch = logits_with_attentions<M, S>;
    out.push_back({"logits_with_attentions", patch,
                   patch ? "the kit checks attention_gradient entry by entry (not used by the library's algorithms)"
                         : "the kit checks attention_gradient through each head's sum only"});

    // Members that are declared but cannot be called the way the library calls them.
    auto unusable = [&](bool declared, bool usable, std::string_view name, std::string_view signature) {
      if (declared && !usable)
        warn.push_back(fmt::format("{} is declared but does not have the signature the library calls, `{}`: it is "
                                   "ignored",
                                   name, signature));
    };
    unusable(declares_output_rows<M>, rows, "output_rows", "std::size_t output_rows(std::size_t tokens) const");
    unusable(declares_logits_at<M>, at, "logits_at",
             "tensor2 logits_at(token_span, std::span<const std::size_t> rows) const");
    unusable(declares_logits_batch<M>, batch, "logits_batch",
             "tensor3 logits_batch(const token_matrix&, std::span<const std::size_t> rows) const");
    unusable(declares_logits_from_embeddings_batch<M>, ebatch, "logits_from_embeddings_batch",
             "tensor3 logits_from_embeddings_batch(const tensor3&, std::span<const std::size_t> rows) const");
    unusable(declares_embedding_gradient_batch<M>, gbatch, "embedding_gradient_batch",
             "batch_gradient_result embedding_gradient_batch(const tensor3&, const output_seed&) const");
    unusable(declares_pad_token<M>, pad, "pad_token", "std::optional<token_id> pad_token() const");

    if (batch_disagrees_ & 1)
      warn.push_back("logits_batch disagrees with logits: results would depend on execution_options::batch_size");
    if (batch_disagrees_ & 2)
      warn.push_back("logits_from_embeddings_batch disagrees with logits_from_embeddings: results would depend on "
                     "execution_options::batch_size");
    if (batch_disagrees_ & 4)
      warn.push_back("embedding_gradient_batch disagrees with embedding_gradient: gradient methods would depend on "
                     "execution_options::batch_size");
    if (batch_disagrees_ & 8)
      warn.push_back("logits_batch_from_prefix disagrees with logits: perturbation methods would give other results "
                     "with prefix reuse than without");
    if (batch_disagrees_ & 16)
      warn.push_back("logits_from_embeddings_batch_from_prefix disagrees with logits_from_embeddings");
    if (threads_disagree_)
      warn.push_back("the model declares thread_safe, but concurrent calls disagree or fail: remove thread_safe or "
                     "give every call its own scratch space");
    if (report_.library_rungs != report_.rungs && std::is_same_v<S, float>)
      warn.push_back("some members have the right names but not the float signatures of core/model.hpp: glassbox's "
                     "algorithms accept the model only for the rungs listed as accepted");
  }

  const M& model_;
  token_sequence tokens_;
  verify_options options_;
  tolerances tol_;
  double seed_value_tolerance_ = 0;
  progress_reporter reporter_;
  verify_report report_;

  std::optional<matrix> logits_;
  std::size_t rows_ = 0, columns_ = 0;
  bool causal_ = false;
  std::optional<matrix> embeddings_;
  std::optional<tensor4> attentions_;
  std::optional<tensor3> hidden_;
  std::optional<vector> loss_gradient_;
  std::optional<vector> curvature_base_;  ///< the parameters, once the parameter checks could run
  std::vector<token_sequence> variants_;
  std::vector<matrix> variant_logits_;
  int batch_disagrees_ = 0;
  bool threads_disagree_ = false;
};

}  // namespace detail::verify

/// Checks an adapter against the contract of every rung of the model ladder it has, on the
/// input `tokens`: output shapes; consistency between members (logits_from_embeddings(embed(t))
/// = logits(t), batched and row-subset members = the single ones, logits_from_hidden of the
/// unedited hidden state = logits, an all-ones head mask changes nothing); every gradient member
/// against central finite differences along random directions (steps and tolerances fitted to the
/// adapter's scalar type); attention rows that sum to one, in [query, key] layout, causal when the
/// model is. Returns the report; never throws for a failed check (a member that throws fails its
/// check). Throws glassbox::error for bad arguments and glassbox::cancelled when cancelled.
///
/// Example: `auto report = glassbox::verify_adapter(adapter, tokens); fmt::print("{}", to_string(report));`
template <Model M>
verify_report verify_adapter(const M& model, token_span tokens, const verify_options& options = {}) {
  detail::require<shape_error>(!tokens.empty(), "glassbox::verify_adapter: tokens must not be empty");
  detail::require(options.directions >= 1, "glassbox::verify_adapter: directions must be >= 1, got 0");
  detail::require(std::isfinite(options.tolerance_scale) && options.tolerance_scale > 0,
                  "glassbox::verify_adapter: tolerance_scale must be a finite number > 0, got {}",
                  options.tolerance_scale);
  detail::require(std::isfinite(options.step) && options.step >= 0 && options.step < 1,
                  "glassbox::verify_adapter: step must be in [0, 1), got {}", options.step);
  for (std::size_t i = 0; i < tokens.size(); ++i)
    detail::require<shape_error>(tokens[i] >= 0, "glassbox::verify_adapter: tokens[{}] must be >= 0, got {}", i,
                                 tokens[i]);
  return detail::verify::checker<M>(model, tokens, options).run();
}

}  // namespace glassbox

// glassbox: the curvature of K-FAC and EK-FAC influence (Grosse et al. 2023), fitted as Kronfluence
// fits it, over any KfacModel (core/model.hpp). docs/influence.md has the formulas and defaults.
//
// Per tracked linear layer y = x W + b of every training example, with every token a row:
//   a_t = [x_t, 1] (1 appended for the bias),  g_t = d L_n / d y_t,  G_n = sum_t g_t a_t^T   [d_out, d_in + 1]
//   A = E_tokens[a a^T],  S = E_tokens[R_n g g^T]           (covariance pass; labels drawn from the model)
//   A = Q_A diag(l_A) Q_A^T,  S = Q_S diag(l_S) Q_S^T        (eigendecompositions in double, after symmetrising)
//   EK-FAC: Lambda = E_n[R_n (Q_S^T G_n Q_A)^2]               (second pass, fresh labels)
//   K-FAC:  Lambda = l_S l_A^T;   diagonal: Lambda = E_n[R_n G_n^2];   identity: no curvature
//   P(V) = Q_S [(Q_S^T V Q_A) / (Lambda + lambda)] Q_A^T,    lambda = damping or 0.1 x mean(Lambda) per layer
// R_n is the number of scored rows of example n: L_n is a mean over them, and R_n E[G G^T] is the
// Gauss-Newton matrix of L_n in expectation over the drawn labels (docs/influence.md, "Scaling").
//
// Fitting is a sum over training examples: the passes (kfac_covariance_pass, kfac_lambda_pass)
// return sums that parallel/mpi.hpp all-reduces across ranks before kfac_finish_* normalise them.
// Results never depend on batch size or thread count: per-example work runs in parallel, and the
// sums are taken in example order, one layer per thread.
#pragma once

#include <Eigen/Eigenvalues>
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "glassbox/core/error.hpp"
#include "glassbox/core/execution.hpp"
#include "glassbox/core/model.hpp"
#include "glassbox/core/progress.hpp"
#include "glassbox/core/random.hpp"
#include "glassbox/core/types.hpp"
#include "glassbox/detail/eigen.hpp"
#include "glassbox/influence/kfac_types.hpp"

namespace glassbox {

/// Sums of one covariance pass over a range of examples (what MPI all-reduces).
struct kfac_covariance_sums {
  std::vector<std::vector<double>> activation;  ///< per layer, sum of a a^T, row-major [(d_in + 1)^2]
  std::vector<std::vector<double>> gradient;    ///< per layer, sum of R g g^T, row-major [d_out^2]
  std::vector<std::uint64_t> tokens;            ///< per layer, rows summed
  std::uint64_t examples = 0;                   ///< examples summed
};

/// Sums of one eigenvalue-correction (or diagonal) pass over a range of examples.
struct kfac_lambda_sums {
  std::vector<std::vector<double>> lambda;  ///< per layer, sum of R (Q_S^T G Q_A)^2 (or R G^2), row-major
  std::uint64_t examples = 0;               ///< examples summed
};

namespace detail {

using kfac_matrix = detail::row_matrix<float>;
using kfac_map = Eigen::Map<detail::row_matrix<float>>;
using kfac_cmap = Eigen::Map<const detail::row_matrix<float>>;

template <class = void>
inline Eigen::Index kfac_ix(std::size_t v) { return static_cast<Eigen::Index>(v); }

/// A float tensor viewed as an Eigen matrix [rows, cols].
template <class = void>
inline kfac_cmap kfac_view(const tensor2& t) { return {t.data(), kfac_ix(t.shape(0)), kfac_ix(t.shape(1))}; }

/// The per-example quantities one pass needs: inputs per tracked layer and, per label term, the
/// output gradients and the term's weight (R for sampled / empirical labels; p / R for expected).
struct kfac_example_terms {
  std::vector<tensor2> inputs;                  ///< per tracked layer [n, d_in]
  std::vector<std::vector<tensor2>> gradients;  ///< per term, per tracked layer [n, d_out]
  std::vector<double> weights;                  ///< per term
};

/// The rows of `example` that are scored (label != ignore_label).
template <class = void>
inline std::vector<std::size_t> kfac_scored_rows(const training_example& example) {
  std::vector<std::size_t> rows;
  for (std::size_t i = 0; i < example.labels.size(); ++i)
    if (example.labels[i] != training_example::ignore_label) rows.push_back(i);
  return rows;
}

/// Logits of the scored rows `rows` of `tokens`, [rows.size(), V], checked for NaN/Inf.
template <class M>
tensor2 kfac_row_logits(const M& model, const training_example& example, std::span<const std::size_t> rows,
                        std::string_view caller, std::size_t index) {
  tensor2 out;
  if constexpr (concepts::has_logits_at<M>) {
    out = model.logits_at(example.tokens, rows);
  } else {
    const tensor2 all = model.logits(example.tokens);
    require<model_error>(all.shape(0) == example.labels.size(),
                         "glassbox::{}: the model returned {} rows of logits for training example {} with {} labels",
                         caller, all.shape(0), index, example.labels.size());
    out = tensor2({rows.size(), all.shape(1)});
    for (std::size_t i = 0; i < rows.size(); ++i)
      std::copy_n(all.data() + rows[i] * all.shape(1), all.shape(1), out.data() + i * all.shape(1));
  }
  require<model_error>(out.shape(0) == rows.size() && out.shape(1) >= 1,
                       "glassbox::{}: the model returned {} rows of logits for the {} scored rows of training example {}",
                       caller, out.shape(0), rows.size(), index);
  for (std::size_t i = 0; i < out.size(); ++i)
    if (!std::isfinite(out.data()[i]))
      fail<model_error>("glassbox::{}: the model returned {} in its logits for training example {} (scored row {}, "
                        "column {})",
                        caller, out.data()[i], index, rows[i / out.shape(1)], i % out.shape(1));
  return out;
}

/// softmax of one row of logits, in double.
template <class = void>
inline std::vector<double> kfac_softmax(const float* z, std::size_t v) {
  std::vector<double> p(v);
  double top = z[0];
  for (std::size_t j = 1; j < v; ++j) top = std::max(top, static_cast<double>(z[j]));
  double sum = 0;
  for (std::size_t j = 0; j < v; ++j) sum += p[j] = std::exp(static_cast<double>(z[j]) - top);
  for (auto& x : p) x /= sum;
  return p;
}

/// Finds tracked layer `layer` in the model's statistics, checks its shapes and values, and returns its position.
template <class = void>
inline std::size_t kfac_find_layer(const std::vector<linear_layer_statistics>& stats, const kfac_layer_factors& layer,
                                   std::size_t hint, std::string_view caller, std::size_t index,
                                   std::string_view what = "training example") {
  std::size_t pos = hint < stats.size() && stats[hint].name == layer.name ? hint : stats.size();
  if (pos == stats.size())
    for (std::size_t k = 0; k < stats.size(); ++k)
      if (stats[k].name == layer.name) pos = k;
  require<model_error>(pos < stats.size(), "glassbox::{}: kfac_statistics of {} {} has no layer {}", caller, what,
                       index, layer.name);
  const auto& s = stats[pos];
  const std::size_t n = s.inputs.shape(0);
  require<model_error>(s.inputs.shape(1) == layer.input_dim && s.output_gradients.shape(1) == layer.output_dim &&
                           s.output_gradients.shape(0) == n,
                       "glassbox::{}: layer {} of {} {} has inputs {} x {} and output gradients {} x {}, expected n x "
                       "{} and n x {}",
                       caller, layer.name, what, index, n, s.inputs.shape(1), s.output_gradients.shape(0),
                       s.output_gradients.shape(1), layer.input_dim, layer.output_dim);
  auto check = [&](const tensor2& t, std::string_view part) {
    for (std::size_t i = 0; i < t.size(); ++i)
      if (!std::isfinite(t.data()[i]))
        fail<model_error>("glassbox::{}: the model returned {} in the {} of layer {} for {} {} (row {}, column {})",
                          caller, t.data()[i], part, layer.name, what, index, i / t.shape(1), i % t.shape(1));
  };
  check(s.inputs, "inputs");
  check(s.output_gradients, "output gradients");
  return pos;
}

/// The layers `options` selects from one example's statistics (no values read).
template <class = void>
inline std::vector<kfac_layer_factors> kfac_select_layers(const std::vector<linear_layer_statistics>& stats,
                                                          layer_selection layers,
                                                          std::span<const std::string> names, std::string_view caller) {
  auto describe = [&](const linear_layer_statistics& s) {
    kfac_layer_factors f;
    f.name = s.name;
    f.input_dim = s.inputs.shape(1);
    f.output_dim = s.output_gradients.shape(1);
    f.has_bias = s.has_bias;
    f.weight_offset = s.weight_offset;
    f.bias_offset = s.bias_offset;
    f.input_major = s.input_major;
    return f;
  };
  std::string available;
  for (const auto& s : stats) available += (available.empty() ? "" : ", ") + s.name;
  std::vector<kfac_layer_factors> out;
  if (!names.empty()) {
    for (const auto& name : names) {
      const auto it = std::find_if(stats.begin(), stats.end(), [&](const auto& s) { return s.name == name; });
      require(it != stats.end(), "glassbox::{}: layer_names must name layers of the model ({}), got {}", caller,
              available, name);
      require(std::none_of(out.begin(), out.end(), [&](const auto& f) { return f.name == name; }),
              "glassbox::{}: layer_names must not repeat a layer, got {} twice", caller, name);
      out.push_back(describe(*it));
    }
  } else {
    for (const auto& s : stats)
      if (layers == layer_selection::all || s.name.find("mlp") != std::string::npos) out.push_back(describe(s));
  }
  require(!out.empty(), "glassbox::{}: layers must select at least one layer of the model ({}), got none with layers = {}",
          caller, available.empty() ? "none" : available, to_string(layers));
  for (const auto& f : out)
    require<model_error>(f.input_dim >= 1 && f.output_dim >= 1,
                         "glassbox::{}: layer {} must have inputs and outputs, got {} x {}", caller, f.name,
                         f.input_dim, f.output_dim);
  return out;
}

/// The statistics of example `index` under `fisher`: per tracked layer, inputs and per-term output gradients.
/// `stream` selects the label draws (independent per pass); the draws depend on (seed, stream, index) only.
template <class M>
kfac_example_terms kfac_terms(const M& model, const training_example& example, std::size_t index, fisher_type fisher,
                              std::uint64_t seed, std::uint64_t stream, std::span<const kfac_layer_factors> layers,
                              bool need_inputs, std::string_view caller) {
  require<shape_error>(!example.tokens.empty() && example.labels.size() == example.tokens.size(),
                       "glassbox::{}: training example {} must have tokens and one label per token, got {} tokens "
                       "and {} labels",
                       caller, index, example.tokens.size(), example.labels.size());
  const std::vector<std::size_t> rows = kfac_scored_rows(example);
  require(!rows.empty(), "glassbox::{}: training example {} must have at least one scored row, got none", caller,
          index);
  const double r = static_cast<double>(rows.size());
  kfac_example_terms out;
  std::vector<std::size_t> hint(layers.size(), 0);
  auto take = [&](std::vector<linear_layer_statistics> stats, double weight, bool inputs) {
    std::vector<tensor2> gradients(layers.size());
    if (inputs) out.inputs.resize(layers.size());
    for (std::size_t l = 0; l < layers.size(); ++l) {
      const std::size_t pos = kfac_find_layer(stats, layers[l], hint[l], caller, index);
      hint[l] = pos;
      gradients[l] = std::move(stats[pos].output_gradients);
      if (inputs) out.inputs[l] = std::move(stats[pos].inputs);
    }
    out.gradients.push_back(std::move(gradients));
    out.weights.push_back(weight);
  };
  if (fisher == fisher_type::empirical) {
    take(model.kfac_statistics(example), r, need_inputs);
    return out;
  }
  const tensor2 logits = kfac_row_logits(model, example, rows, caller, index);
  const std::size_t v = logits.shape(1);
  if (fisher == fisher_type::sampled) {
    rng gen = rng(seed).fork(2 * static_cast<std::uint64_t>(index) + stream);
    training_example drawn{example.tokens, std::vector<token_id>(example.labels.size(), training_example::ignore_label)};
    for (std::size_t i = 0; i < rows.size(); ++i) {
      const std::vector<double> p = kfac_softmax(logits.data() + i * v, v);
      const double u = gen.uniform();
      double c = 0;
      std::size_t y = v - 1;
      for (std::size_t j = 0; j < v; ++j) {
        c += p[j];
        if (u < c) {
          y = j;
          break;
        }
      }
      drawn.labels[rows[i]] = static_cast<token_id>(y);
    }
    take(model.kfac_statistics(drawn), r, need_inputs);
    return out;
  }
  // expected: E_y[R G G^T] = sum_rows sum_y (p_y / R) G(row labelled y)^2, the rows' draws being independent.
  bool first = true;
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const std::vector<double> p = kfac_softmax(logits.data() + i * v, v);
    for (std::size_t y = 0; y < v; ++y) {
      if (p[y] == 0.0) continue;
      training_example one{example.tokens,
                           std::vector<token_id>(example.labels.size(), training_example::ignore_label)};
      one.labels[rows[i]] = static_cast<token_id>(y);
      take(model.kfac_statistics(one), p[y] / r, need_inputs && first);
      first = false;
    }
  }
  return out;
}

/// [x, 1] (or x without a bias) for every row of a layer's inputs, as float [n, d_in + 1].
template <class T = void>
inline kfac_matrix kfac_augmented(const tensor2& inputs, bool bias) {
  // Eigen types that depend on T: compiled where this is instantiated (see dependent_t).
  using matrix = row_matrix<dependent_t<T, float>>;
  const Eigen::Map<const matrix> x = kfac_view(inputs);
  matrix a(x.rows(), x.cols() + (bias ? 1 : 0));
  a.leftCols(x.cols()) = x;
  if (bias) a.col(x.cols()).setOnes();
  return a;
}

/// Q_S^T (g^T a) Q_A, by whichever order of products is cheaper. (A template, float in every caller, so
/// that its products are compiled only where it is called: docs/building.md, "Include cost"; g, qs and qa
/// are kfac_cmap, named so that they depend on Real, see dependent_t.)
template <class Real = float>
row_matrix<Real> kfac_rotated(const dependent_t<Real, kfac_cmap>& g, const row_matrix<Real>& a,
                              const dependent_t<Real, kfac_cmap>& qs, const dependent_t<Real, kfac_cmap>& qa) {
  using kfac_matrix = row_matrix<Real>;
  const double n = static_cast<double>(g.rows()), o = static_cast<double>(g.cols()), i = static_cast<double>(a.cols());
  if (n * (o * o + i * i + o * i) <= n * o * i + o * o * i + o * i * i) {
    const kfac_matrix x = g * qs;  // [n, o]
    const kfac_matrix y = a * qa;  // [n, i]
    return x.transpose() * y;
  }
  const kfac_matrix grad = g.transpose() * a;
  const kfac_matrix left = qs.transpose() * grad;
  return left * qa;
}

/// Runs fn(i) for i in [0, n) on up to `workers` threads (exceptions propagate; stop is honoured).
template <class Fn>
void kfac_parallel_for(std::size_t n, std::size_t workers, const execution_options& exec, std::string_view stage,
                       Fn&& fn) {
  execution_options one;
  one.batch_size = 1;
  one.threads = exec.threads;
  one.stop = exec.stop;
  run_batches(n, one, workers, stage, [&](std::size_t begin, std::size_t end) {
    for (std::size_t i = begin; i < end; ++i) fn(i);
  });
}

/// One pass over `examples` in steps of exec.batch_size: per-example terms in parallel (when the
/// model is thread-safe), then accumulate(layer, terms) for every example in order, one layer per thread.
template <class M, class Accumulate>
void kfac_pass(const M& model, std::span<const training_example> examples, std::size_t first_index,
               std::span<const kfac_layer_factors> layers, const kfac_fit_options& options, std::uint64_t stream,
               bool need_inputs, std::string_view stage, Accumulate&& accumulate) {
  const execution_options& exec = options.execution;
  require(exec.batch_size >= 1, "glassbox::{}: batch_size must be >= 1, got 0", stage);
  progress_reporter reporter(exec.on_progress, exec.stop, examples.size(), stage);
  reporter.check();
  const std::size_t model_workers = worker_count(exec, is_thread_safe<M>());
  const std::size_t sum_workers = worker_count(exec, true);
  std::vector<kfac_example_terms> terms;
  for (std::size_t begin = 0; begin < examples.size(); begin += exec.batch_size) {
    const std::size_t end = std::min(examples.size(), begin + exec.batch_size);
    terms.assign(end - begin, {});
    kfac_parallel_for(end - begin, model_workers, exec, stage, [&](std::size_t i) {
      terms[i] = kfac_terms(model, examples[begin + i], first_index + begin + i, options.fisher, options.seed, stream,
                            layers, need_inputs, stage);
    });
    kfac_parallel_for(layers.size(), sum_workers, exec, stage, [&](std::size_t l) {
      for (const auto& t : terms) accumulate(l, t);
    });
    reporter.advance(end - begin);
  }
}

/// Throws glassbox::error unless the options are usable.
template <class = void>
inline void kfac_check_options(const kfac_fit_options& o, std::string_view caller) {
  require(o.covariance_max_examples >= 1, "glassbox::{}: covariance_max_examples must be >= 1, got 0", caller);
  require(o.lambda_max_examples >= 1, "glassbox::{}: lambda_max_examples must be >= 1, got 0", caller);
  require(o.execution.batch_size >= 1, "glassbox::{}: batch_size must be >= 1, got 0", caller);
  if (o.damping)
    require(std::isfinite(*o.damping) && *o.damping >= 0, "glassbox::{}: damping must be finite and >= 0, got {}",
            caller, *o.damping);
}

/// Symmetrises `c`, eigendecomposes it in double and stores the matrix, eigenvalues and eigenvectors as float.
/// (A template, double in every caller, so that the eigensolver is compiled only where it is called.)
template <class Real = double>
void kfac_eigen(const detail::row_matrix<Real>& c, tensor2& matrix, tensor1& values, tensor2& vectors,
                std::string_view caller, std::string_view what, std::string_view layer) {
  for (Eigen::Index i = 0; i < c.size(); ++i)
    require<model_error>(std::isfinite(c.data()[i]), "glassbox::{}: the {} of layer {} is not finite (entry {} is {})",
                         caller, what, layer, i, c.data()[i]);
  const detail::row_matrix<Real> sym = 0.5 * (c + c.transpose());
  Eigen::SelfAdjointEigenSolver<Eigen::Matrix<Real, Eigen::Dynamic, Eigen::Dynamic>> solver(sym);
  require<model_error>(solver.info() == Eigen::Success, "glassbox::{}: the eigendecomposition of the {} of layer {} failed",
                       caller, what, layer);
  const std::size_t d = static_cast<std::size_t>(c.rows());
  matrix = tensor2({d, d});
  values = tensor1::from_shape({d});
  vectors = tensor2({d, d});
  Eigen::Map<detail::row_matrix<float>>(matrix.data(), c.rows(), c.cols()) = sym.template cast<float>();
  Eigen::Map<detail::vector<float>>(values.data(), c.rows()) = solver.eigenvalues().template cast<float>();
  Eigen::Map<detail::row_matrix<float>>(vectors.data(), c.rows(), c.cols()) = solver.eigenvectors().template cast<float>();
}

}  // namespace detail

/// The layers `options` selects, with their shapes and offsets, read from one kfac_statistics call on `probe`.
template <class M>
std::vector<kfac_layer_factors> kfac_tracked_layers(const M& model, const training_example& probe,
                                                    const kfac_fit_options& options = {}) {
  static_assert(check_kfac_model<M>());
  return detail::kfac_select_layers(model.kfac_statistics(probe), options.layers, options.layer_names,
                                    "kfac_tracked_layers");
}

/// The covariance pass over `examples` (global indices first_index, ...): sums of a a^T and R g g^T
/// per tracked layer, with labels drawn as options.fisher says. Normalise with kfac_finish_covariances.
template <class M>
kfac_covariance_sums kfac_covariance_pass(const M& model, std::span<const training_example> examples,
                                          std::size_t first_index, std::span<const kfac_layer_factors> layers,
                                          const kfac_fit_options& options = {}) {
  // Eigen types that depend on M: compiled where this is instantiated (see dependent_t).
  using real = detail::dependent_t<M, double>;
  using matrix = detail::row_matrix<detail::dependent_t<M, float>>;
  using view = Eigen::Map<const matrix>;
  static_assert(check_kfac_model<M>());
  detail::kfac_check_options(options, "kfac_covariance");
  kfac_covariance_sums sums;
  sums.activation.resize(layers.size());
  sums.gradient.resize(layers.size());
  sums.tokens.assign(layers.size(), 0);
  for (std::size_t l = 0; l < layers.size(); ++l) {
    const std::size_t a = layers[l].augmented_input_dim(), o = layers[l].output_dim;
    sums.activation[l].assign(a * a, 0.0);
    sums.gradient[l].assign(o * o, 0.0);
  }
  detail::kfac_pass(model, examples, first_index, layers, options, 0, true, "kfac_covariance",
                    [&](std::size_t l, const detail::kfac_example_terms& t) {
                      const std::size_t a = layers[l].augmented_input_dim(), o = layers[l].output_dim;
                      const matrix x = detail::kfac_augmented(t.inputs[l], layers[l].has_bias);
                      Eigen::Map<detail::row_matrix<real>> sa(sums.activation[l].data(), detail::kfac_ix(a),
                                                              detail::kfac_ix(a));
                      Eigen::Map<detail::row_matrix<real>> ss(sums.gradient[l].data(), detail::kfac_ix(o),
                                                              detail::kfac_ix(o));
                      const matrix xx = x.transpose() * x;
                      sa += xx.template cast<real>();
                      for (std::size_t k = 0; k < t.weights.size(); ++k) {
                        const view g = detail::kfac_view(t.gradients[k][l]);
                        const matrix gg = g.transpose() * g;
                        ss += t.weights[k] * gg.template cast<real>();
                      }
                      sums.tokens[l] += static_cast<std::uint64_t>(x.rows());
                    });
  sums.examples = examples.size();
  return sums;
}

/// Normalises covariance sums into A and S, symmetrises them and eigendecomposes them (in double) into `factors`.
/// (`Real` is the scalar of the eigendecompositions: leave it at double.)
template <class Real = double>
void kfac_finish_covariances(kfac_factors& factors, const kfac_covariance_sums& sums) {
  detail::require(sums.activation.size() == factors.layers.size() && sums.gradient.size() == factors.layers.size() &&
                      sums.tokens.size() == factors.layers.size(),
                  "glassbox::kfac_finish_covariances: sums must hold {} layers, got {}", factors.layers.size(),
                  sums.activation.size());
  for (std::size_t l = 0; l < factors.layers.size(); ++l) {
    auto& f = factors.layers[l];
    const auto a = detail::kfac_ix(f.augmented_input_dim()), o = detail::kfac_ix(f.output_dim);
    detail::require(sums.tokens[l] >= 1, "glassbox::kfac_finish_covariances: layer {} must have seen at least one row",
                    f.name);
    const double tokens = static_cast<double>(sums.tokens[l]);
    const detail::row_matrix<Real> ca = Eigen::Map<const detail::row_matrix<Real>>(sums.activation[l].data(), a, a) / tokens;
    const detail::row_matrix<Real> cs = Eigen::Map<const detail::row_matrix<Real>>(sums.gradient[l].data(), o, o) / tokens;
    detail::kfac_eigen(ca, f.activation_covariance, f.activation_eigenvalues, f.activation_eigenvectors,
                       "kfac_finish_covariances", "activation covariance", f.name);
    detail::kfac_eigen(cs, f.gradient_covariance, f.gradient_eigenvalues, f.gradient_eigenvectors,
                       "kfac_finish_covariances", "gradient covariance", f.name);
    f.covariance_tokens = sums.tokens[l];
  }
  factors.covariance_examples = sums.examples;
}

/// The eigenvalue-correction pass (ekfac: sums of R (Q_S^T G Q_A)^2 in the fitted eigenbases) or the
/// diagonal pass (sums of R G^2), with fresh label draws. Normalise with kfac_finish_lambda.
template <class M>
kfac_lambda_sums kfac_lambda_pass(const M& model, std::span<const training_example> examples,
                                  std::size_t first_index, const kfac_factors& factors,
                                  const kfac_fit_options& options = {}) {
  // Eigen types that depend on M: compiled where this is instantiated (see dependent_t).
  using real = detail::dependent_t<M, double>;
  using matrix = detail::row_matrix<detail::dependent_t<M, float>>;
  using view = Eigen::Map<const matrix>;
  static_assert(check_kfac_model<M>());
  detail::kfac_check_options(options, "kfac_lambda");
  detail::require(factors.method == factor_method::ekfac || factors.method == factor_method::diagonal,
                  "glassbox::kfac_lambda_pass: factors.method must be ekfac or diagonal, got {}",
                  to_string(factors.method));
  const bool ekfac = factors.method == factor_method::ekfac;
  const auto& layers = factors.layers;
  if (ekfac)
    for (const auto& f : layers)
      detail::require(f.activation_eigenvectors.size() == f.augmented_input_dim() * f.augmented_input_dim() &&
                          f.gradient_eigenvectors.size() == f.output_dim * f.output_dim,
                      "glassbox::kfac_lambda_pass: layer {} must have its eigenbases fitted first", f.name);
  kfac_lambda_sums sums;
  sums.lambda.resize(layers.size());
  for (std::size_t l = 0; l < layers.size(); ++l) sums.lambda[l].assign(layers[l].parameter_count(), 0.0);
  detail::kfac_pass(model, examples, first_index, layers, options, 1, true, "kfac_lambda",
                    [&](std::size_t l, const detail::kfac_example_terms& t) {
                      const auto& f = layers[l];
                      const auto a = detail::kfac_ix(f.augmented_input_dim()), o = detail::kfac_ix(f.output_dim);
                      const matrix x = detail::kfac_augmented(t.inputs[l], f.has_bias);
                      Eigen::Map<detail::row_matrix<real>> sl(sums.lambda[l].data(), o, a);
                      for (std::size_t k = 0; k < t.weights.size(); ++k) {
                        const view g = detail::kfac_view(t.gradients[k][l]);
                        matrix rotated;
                        if (ekfac)
                          rotated = detail::kfac_rotated(g, x, detail::kfac_view(f.gradient_eigenvectors),
                                                         detail::kfac_view(f.activation_eigenvectors));
                        else
                          rotated = g.transpose() * x;
                        sl += t.weights[k] * rotated.cwiseAbs2().template cast<real>();
                      }
                    });
  sums.examples = examples.size();
  return sums;
}

/// Normalises eigenvalue-correction sums into Lambda = E_n[...] in `factors`.
template <class = void>
inline void kfac_finish_lambda(kfac_factors& factors, const kfac_lambda_sums& sums) {
  detail::require(sums.lambda.size() == factors.layers.size(), "glassbox::kfac_finish_lambda: sums must hold {} layers, got {}",
                  factors.layers.size(), sums.lambda.size());
  detail::require(sums.examples >= 1, "glassbox::kfac_finish_lambda: sums must cover at least one example, got 0");
  for (std::size_t l = 0; l < factors.layers.size(); ++l) {
    auto& f = factors.layers[l];
    f.lambda = tensor2({f.output_dim, f.augmented_input_dim()});
    for (std::size_t i = 0; i < f.lambda.size(); ++i) {
      const double v = sums.lambda[l][i] / static_cast<double>(sums.examples);
      detail::require<model_error>(std::isfinite(v), "glassbox::kfac_finish_lambda: Lambda of layer {} is not finite (entry {} is {})",
                                   f.name, i, v);
      f.lambda.data()[i] = static_cast<float>(v);
    }
  }
  factors.lambda_examples = sums.examples;
}

/// Empty factors for `layers`, recording the options and the model's identity (what every fit starts from).
template <class M>
kfac_factors kfac_empty_factors(const M& model, std::vector<kfac_layer_factors> layers,
                                const kfac_fit_options& options) {
  kfac_factors f;
  f.method = options.method;
  f.fisher = options.fisher;
  f.damping = options.damping;
  f.seed = options.seed;
  f.model_parameters = model.parameter_count();
  f.model_fingerprint = parameter_fingerprint(model.parameters());
  f.layers = std::move(layers);
  return f;
}

/// Fits the curvature of `model` on `examples` as Kronfluence does: covariance pass and
/// eigendecompositions (kfac, ekfac), then the eigenvalue-correction pass (ekfac) or the diagonal
/// pass (diagonal); identity fits nothing but the layer list. Labels are drawn from the model's own
/// predictions with `options.seed` (the true Fisher) unless options.fisher says otherwise. NaN/Inf
/// in any statistic is a model_error naming the layer and the training example.
///
/// Example:
///   auto factors = glassbox::fit_kfac_factors(model, train, {.layers = glassbox::layer_selection::mlp});
template <class M>
kfac_factors fit_kfac_factors(const M& model, std::span<const training_example> examples,
                              const kfac_fit_options& options = {}) {
  static_assert(check_kfac_model<M>());
  detail::kfac_check_options(options, "fit_kfac_factors");
  detail::require(!examples.empty(), "glassbox::fit_kfac_factors: examples must not be empty");
  detail::require<shape_error>(!examples[0].tokens.empty() && examples[0].labels.size() == examples[0].tokens.size(),
                               "glassbox::fit_kfac_factors: training example 0 must have tokens and one label per "
                               "token, got {} tokens and {} labels",
                               examples[0].tokens.size(), examples[0].labels.size());
  kfac_factors factors = kfac_empty_factors(
      model,
      detail::kfac_select_layers(model.kfac_statistics(examples[0]), options.layers, options.layer_names,
                                 "fit_kfac_factors"),
      options);
  const bool covariances = options.method == factor_method::ekfac || options.method == factor_method::kfac;
  const bool lambda = options.method == factor_method::ekfac || options.method == factor_method::diagonal;
  if (covariances)
    kfac_finish_covariances(
        factors, kfac_covariance_pass(model, examples.first(std::min(examples.size(), options.covariance_max_examples)),
                                      0, factors.layers, options));
  if (lambda)
    kfac_finish_lambda(factors,
                       kfac_lambda_pass(model, examples.first(std::min(examples.size(), options.lambda_max_examples)),
                                        0, factors, options));
  return factors;
}

namespace detail {

/// The damping of layer `f`: `damping` if given, else 0.1 x mean(Lambda) (K-FAC: 0.1 x mean(l_S) x mean(l_A)).
template <class = void>
inline double kfac_layer_damping(const kfac_layer_factors& f, factor_method method, std::optional<double> damping) {
  if (damping) return *damping;
  double mean = 0;
  if (method == factor_method::kfac) {
    double ms = 0, ma = 0;
    for (float v : f.gradient_eigenvalues) ms += v;
    for (float v : f.activation_eigenvalues) ma += v;
    mean = ms / static_cast<double>(std::max<std::size_t>(1, f.gradient_eigenvalues.size())) * ma /
           static_cast<double>(std::max<std::size_t>(1, f.activation_eigenvalues.size()));
  } else if (method == factor_method::ekfac || method == factor_method::diagonal) {
    for (float v : f.lambda) mean += v;
    mean /= static_cast<double>(std::max<std::size_t>(1, f.lambda.size()));
  }
  return 0.1 * mean;
}

}  // namespace detail

/// The damping each tracked layer is preconditioned with: `damping` (else the factors' recorded
/// damping) when set, else 0.1 x mean(Lambda) of the layer (Kronfluence's heuristic). Identity: 0.
template <class = void>
inline std::vector<double> kfac_dampings(const kfac_factors& factors, std::optional<double> damping = std::nullopt) {
  const std::optional<double> d = damping ? damping : factors.damping;
  if (d)
    detail::require(std::isfinite(*d) && *d >= 0, "glassbox::kfac_dampings: damping must be finite and >= 0, got {}",
                    *d);
  std::vector<double> out;
  for (const auto& f : factors.layers)
    out.push_back(factors.method == factor_method::identity ? 0.0 : detail::kfac_layer_damping(f, factors.method, d));
  return out;
}

namespace detail {

/// Checks that a layer's factors have the shapes its method needs.
template <class = void>
inline void kfac_check_layer(const kfac_layer_factors& f, factor_method method, std::string_view caller) {
  const std::size_t a = f.augmented_input_dim(), o = f.output_dim;
  if (method == factor_method::kfac || method == factor_method::ekfac)
    require(f.activation_eigenvectors.size() == a * a && f.gradient_eigenvectors.size() == o * o &&
                f.activation_eigenvalues.size() == a && f.gradient_eigenvalues.size() == o,
            "glassbox::{}: layer {} must have fitted eigenbases ({} and {} wide), got {} and {} values", caller,
            f.name, a, o, f.activation_eigenvalues.size(), f.gradient_eigenvalues.size());
  if (method == factor_method::ekfac || method == factor_method::diagonal)
    require(f.lambda.size() == o * a, "glassbox::{}: layer {} must have a fitted Lambda of {} x {}, got {} values",
            caller, f.name, o, a, f.lambda.size());
}

/// 1 / (Lambda + damping) of one layer in the basis P divides in ([d_out, d_in + 1]; empty for identity);
/// throws when an entry is not > 0 (zero curvature with zero damping). (`Real`: leave it at double.)
template <class Real = double>
kfac_matrix kfac_inverse_curvature(const kfac_layer_factors& f, factor_method method, double damping,
                                   std::string_view caller) {
  kfac_check_layer(f, method, caller);
  const auto a = kfac_ix(f.augmented_input_dim()), o = kfac_ix(f.output_dim);
  kfac_matrix out;
  if (method == factor_method::identity) return out;
  detail::row_matrix<Real> lam(o, a);
  if (method == factor_method::kfac) {
    for (Eigen::Index i = 0; i < o; ++i)
      for (Eigen::Index j = 0; j < a; ++j)
        lam(i, j) = static_cast<double>(f.gradient_eigenvalues[static_cast<std::size_t>(i)]) *
                    static_cast<double>(f.activation_eigenvalues[static_cast<std::size_t>(j)]);
  } else {
    lam = kfac_view(f.lambda).template cast<Real>();
  }
  lam.array() += damping;
  Eigen::Index bad = 0;
  for (Eigen::Index i = 0; i < lam.size(); ++i) bad += !(lam.data()[i] > 0);
  require(bad == 0,
          "glassbox::{}: damping must make Lambda + damping > 0 in layer {}, got damping {} with {} entries <= 0 (use "
          "a damping > 0)",
          caller, f.name, damping, bad);
  out = lam.cwiseInverse().template cast<float>();
  return out;
}

}  // namespace detail

/// The preconditioner of fitted factors, ready to apply: per layer, 1 / (Lambda + damping).
struct kfac_preconditioner {
  const kfac_factors* factors = nullptr;    ///< the factors (must outlive the preconditioner)
  std::vector<double> dampings;             ///< per layer
  std::vector<detail::row_matrix<float>> inverses;  ///< per layer, 1 / (Lambda + damping) [d_out, d_in + 1] (empty: identity)

  /// Preconditions the gradient V [d_out, d_in + 1] of layer `l` in place: P(V) = Q_S [(Q_S^T V Q_A) /
  /// (Lambda + damping)] Q_A^T (ekfac, kfac), V / (Lambda + damping) (diagonal), V (identity).
  /// (A template, float always, so that its products are compiled only where it is called.)
  template <class Real = float>
  void apply(std::size_t l, std::type_identity_t<Eigen::Ref<detail::row_matrix<Real>>> v) const {
    const auto& f = factors->layers[l];
    switch (factors->method) {
      case factor_method::identity: return;
      case factor_method::diagonal:
        v.array() *= detail::depend<Real>(inverses[l]).array();
        return;
      case factor_method::kfac:
      case factor_method::ekfac: {
        // Views named so that they depend on Real: compiled where this is instantiated (see dependent_t).
        const detail::dependent_t<Real, detail::kfac_cmap> qs = detail::kfac_view(f.gradient_eigenvectors);
        const detail::dependent_t<Real, detail::kfac_cmap> qa = detail::kfac_view(f.activation_eigenvectors);
        detail::row_matrix<Real> r = qs.transpose() * v;
        detail::row_matrix<Real> rr = r * qa;
        rr.array() *= detail::depend<Real>(inverses[l]).array();
        r.noalias() = qs * rr;
        v.noalias() = r * qa.transpose();
        return;
      }
    }
  }

  /// <G, P(G)> of layer `l` for a layer gradient G, in double: sum (Q_S^T G Q_A)^2 / (Lambda + damping)
  /// (ekfac, kfac), sum G^2 / (Lambda + damping) (diagonal), sum G^2 (identity). `rotated` = Q_S^T G Q_A for
  /// ekfac and kfac, G otherwise.
  template <class Real = float>
  double quadratic(std::size_t l, const std::type_identity_t<detail::row_matrix<Real>>& rotated) const {
    if (factors->method == factor_method::identity) return rotated.template cast<double>().squaredNorm();
    return (rotated.template cast<double>().cwiseAbs2().array() *
            detail::depend<Real>(inverses[l]).template cast<double>().array())
        .sum();
  }
};

/// The preconditioner of `factors` with `damping` (else the factors' damping, else 0.1 x mean(Lambda) per layer).
/// Throws when a layer's Lambda + damping is not > 0. (`Real`: leave it at double.)
template <class Real = double>
kfac_preconditioner make_kfac_preconditioner(const kfac_factors& factors,
                                                    std::optional<double> damping = std::nullopt) {
  kfac_preconditioner p;
  p.factors = &factors;
  p.dampings = kfac_dampings(factors, damping);
  for (std::size_t l = 0; l < factors.layers.size(); ++l)
    p.inverses.push_back(
        detail::kfac_inverse_curvature<Real>(factors.layers[l], factors.method, p.dampings[l], "make_kfac_preconditioner"));
  return p;
}

}  // namespace glassbox

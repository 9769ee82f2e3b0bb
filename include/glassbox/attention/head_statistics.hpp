// glassbox: what each attention head does, pooled over a set of inputs.
//
// For head (l, h), input x and query i, with a_ij the attention row and S_i its support (keys
// 0..i under a causal mask, all keys otherwise), every statistic is a mean over all query rows
// of all inputs (pooled, so long inputs weigh more):
//   entropy             H_i = -sum_{j in S_i} a_ij ln a_ij           (nats; uniform attention gives ln |S_i|)
//   normalized entropy  H_i / ln |S_i|, over queries with |S_i| > 1 (1 = uniform, 0 = one key)
//   mean distance       sum_j a_ij |i - j|
//   first token (sink)  a_i0
//   previous token      a_i,i-1, over queries i >= 1
//   self                a_ii
// Redundancy between heads x and y (Clark et al. 2019 cluster heads by Jensen-Shannon divergence):
//   JS  = mean_i [ H(m_i) - (H(p_i) + H(q_i)) / 2 ],  m_i = (p_i + q_i) / 2   (nats, in [0, ln 2])
//   cos = mean_i [ 1 - p_i . q_i / (|p_i| |q_i|) ]   (a zero row counts as distance 1)
// and the heads are ordered by average-linkage clustering of the JS matrix (detail/clustering.hpp).
//
// Cost per input: O(L H T^2) for the per-head statistics and O((L H)^2 T^2 / 2) for the
// pairwise matrices (one logarithm per entry and pair), spread over threads.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "glassbox/attention/detail/clustering.hpp"
#include "glassbox/attention/raw.hpp"
#include "glassbox/attention/result.hpp"
#include "glassbox/core/error.hpp"
#include "glassbox/core/execution.hpp"
#include "glassbox/core/model.hpp"
#include "glassbox/core/progress.hpp"

namespace glassbox {

/// Which keys a query may attend to, for the masked statistics.
enum class attention_support {
  automatic,  ///< causal for an input whose attention above the diagonal is exactly 0, else full
  causal,     ///< query i attends to keys 0..i
  full,       ///< every query attends to every key
};

/// Which head distance the clustering order is computed from.
enum class head_distance {
  jensen_shannon,  ///< mean Jensen-Shannon divergence (the default)
  cosine,          ///< mean cosine distance
};

/// Options of head statistics.
struct head_statistics_options {
  attention_support support = attention_support::automatic;  ///< the support of each query row
  bool pairwise = true;  ///< compute the head-distance matrices and clustering (the costly part)
  head_distance cluster_by = head_distance::jensen_shannon;  ///< distance the clustering uses
  execution_options execution;  ///< threads (0 = all), batch of model calls, progress in inputs, cancellation
};

namespace detail {

/// Running sums of head statistics over inputs; inputs are added in order, so the result does
/// not depend on the thread count.
template <class T = void>
class basic_head_statistics_accumulator {
 public:
  basic_head_statistics_accumulator(const head_statistics_options& o, std::size_t workers) : options_(o), workers_(workers) {}

  /// Adds one input's attentions [L, H, T, T] (checked by the caller).
  void add(const tensor4& a) {
    const std::size_t l_count = a.shape(0), h_count = a.shape(1), t = a.shape(2), n = l_count * h_count;
    if (inputs_ == 0) {
      layers_ = l_count;
      heads_ = h_count;
      for (auto* v : {&entropy_, &normalized_entropy_, &distance_, &first_, &previous_, &self_}) v->assign(n, 0.0);
      if (options_.pairwise) {
        js_.assign(n * n, 0.0);
        cosine_.assign(n * n, 0.0);
      }
    } else {
      require<shape_error>(l_count == layers_ && h_count == heads_,
                           "glassbox::head_statistics: every input must have {} layers and {} heads, input {} has {} "
                           "and {}",
                           layers_, heads_, inputs_, l_count, h_count);
    }
    bool causal = options_.support == attention_support::causal;
    if (options_.support == attention_support::automatic) {
      causal = true;
      for (std::size_t k = 0; k < a.size() && causal; ++k) {
        const std::size_t j = k % t, i = (k / t) % t;
        if (j > i && a.data()[k] != 0.0f) causal = false;
      }
    }
    causal_ = causal_ && causal;
    auto support = [&](std::size_t i) { return causal ? i + 1 : t; };

    // Per head and query: entropy and norm, kept for the pairwise part.
    row_entropy_.assign(n * t, 0.0);
    row_norm_.assign(n * t, 0.0);
    for (std::size_t x = 0; x < n; ++x) {
      const float* p = a.data() + x * t * t;
      for (std::size_t i = 0; i < t; ++i) {
        const float* row = p + i * t;
        const std::size_t s = support(i);
        double h = 0, dist = 0, sq = 0;
        for (std::size_t j = 0; j < s; ++j) {
          const double v = row[j];
          if (v > 0) h -= v * std::log(v);
          dist += v * (i > j ? static_cast<double>(i - j) : static_cast<double>(j - i));
          sq += v * v;
        }
        row_entropy_[x * t + i] = h;
        row_norm_[x * t + i] = std::sqrt(sq);
        entropy_[x] += h;
        if (s > 1) normalized_entropy_[x] += h / std::log(static_cast<double>(s));
        distance_[x] += dist;
        first_[x] += row[0];
        self_[x] += row[i];
        if (i >= 1) previous_[x] += row[i - 1];
      }
    }
    queries_ += t;
    previous_queries_ += t - 1;
    for (std::size_t i = 0; i < t; ++i) normalized_queries_ += support(i) > 1 ? 1 : 0;

    if (options_.pairwise && n > 1) {
      // Pairs x < y, numbered row by row; each pair writes only its own slots.
      const std::size_t pairs = n * (n - 1) / 2;
      execution_options inner;
      inner.batch_size = std::max<std::size_t>(1, pairs / (8 * std::max<std::size_t>(1, workers_)));
      inner.stop = options_.execution.stop;
      run_batches(pairs, inner, workers_, "head_statistics", [&](std::size_t begin, std::size_t end) {
        std::size_t x = 0, y = 0;
        pair_from_index(begin, n, x, y);
        for (std::size_t k = begin; k < end; ++k) {
          const float* p = a.data() + x * t * t;
          const float* q = a.data() + y * t * t;
          double js = 0, cos = 0;
          for (std::size_t i = 0; i < t; ++i) {
            const std::size_t s = support(i);
            double hm = 0, dot = 0;
            for (std::size_t j = 0; j < s; ++j) {
              const double u = p[i * t + j], v = q[i * t + j];
              const double m = 0.5 * (u + v);
              if (m > 0) hm -= m * std::log(m);
              dot += u * v;
            }
            js += std::max(0.0, hm - 0.5 * (row_entropy_[x * t + i] + row_entropy_[y * t + i]));
            const double norms = row_norm_[x * t + i] * row_norm_[y * t + i];
            cos += norms > 0 ? 1.0 - dot / norms : 1.0;
          }
          js_[x * n + y] += js;
          cosine_[x * n + y] += cos;
          if (++y == n) {
            ++x;
            y = x + 1;
          }
        }
      });
    }
    ++inputs_;
  }

  /// The means, the symmetric distance matrices and the clustering.
  head_statistics_result finish() const {
    head_statistics_result r;
    r.layers = layers_;
    r.heads = heads_;
    r.inputs = inputs_;
    r.queries = queries_;
    r.causal = causal_;
    const std::size_t n = layers_ * heads_;
    auto mean = [&](const std::vector<double>& sum, std::size_t count) {
      tensor2 out({layers_, heads_});
      for (std::size_t x = 0; x < n; ++x)
        out.data()[x] = count > 0 ? static_cast<float>(sum[x] / static_cast<double>(count))
                                  : std::numeric_limits<float>::quiet_NaN();
      return out;
    };
    r.entropy = mean(entropy_, queries_);
    r.normalized_entropy = mean(normalized_entropy_, normalized_queries_);
    r.mean_distance = mean(distance_, queries_);
    r.first_token = mean(first_, queries_);
    r.previous_token = mean(previous_, previous_queries_);
    r.self_token = mean(self_, queries_);
    if (options_.pairwise) {
      using matrix = dependent_t<T, row_matrix<double>>;  // compiled where this is used (see dependent_t)
      matrix js = matrix::Zero(static_cast<Eigen::Index>(n), static_cast<Eigen::Index>(n));
      matrix cos = js;
      for (std::size_t x = 0; x < n; ++x)
        for (std::size_t y = x + 1; y < n; ++y) {
          const auto ix = static_cast<Eigen::Index>(x), iy = static_cast<Eigen::Index>(y);
          js(ix, iy) = js(iy, ix) = js_[x * n + y] / static_cast<double>(queries_);
          cos(ix, iy) = cos(iy, ix) = cosine_[x * n + y] / static_cast<double>(queries_);
        }
      r.js_divergence = tensor2({n, n});
      r.cosine_distance = tensor2({n, n});
      for (std::size_t k = 0; k < n * n; ++k) {
        r.js_divergence.data()[k] = static_cast<float>(js.data()[k]);
        r.cosine_distance.data()[k] = static_cast<float>(cos.data()[k]);
      }
      r.linkage = average_linkage(options_.cluster_by == head_distance::jensen_shannon ? js : cos);
      r.cluster_order = leaf_order(r.linkage, n);
    }
    r.options.push_back({"support", std::string(options_.support == attention_support::automatic ? "automatic"
                                                : options_.support == attention_support::causal  ? "causal"
                                                                                                 : "full")});
    r.options.push_back({"pairwise", options_.pairwise});
    r.options.push_back(
        {"cluster_by",
         std::string(options_.cluster_by == head_distance::jensen_shannon ? "jensen_shannon" : "cosine")});
    return r;
  }

 private:
  // The (x, y) of pair number k in the row-by-row order of x < y over n items.
  static void pair_from_index(std::size_t k, std::size_t n, std::size_t& x, std::size_t& y) {
    x = 0;
    while (k >= n - 1 - x) {
      k -= n - 1 - x;
      ++x;
    }
    y = x + 1 + k;
  }

  head_statistics_options options_;
  std::size_t workers_;
  std::size_t layers_ = 0, heads_ = 0, inputs_ = 0;
  std::size_t queries_ = 0, previous_queries_ = 0, normalized_queries_ = 0;
  bool causal_ = true;
  std::vector<double> entropy_, normalized_entropy_, distance_, first_, previous_, self_;
  std::vector<double> js_, cosine_;
  std::vector<double> row_entropy_, row_norm_;
};

/// The head statistics accumulator (basic_head_statistics_accumulator's only instantiation).
using head_statistics_accumulator = basic_head_statistics_accumulator<>;

}  // namespace detail

/// Head statistics of bare attention tensors, one [L, H, T, T] per input (T may differ).
///
/// Example: `auto s = glassbox::head_statistics(std::span(maps)); s.entropy(l, h);`
template <class = void>
inline head_statistics_result head_statistics(std::span<const tensor4> attentions,
                                              const head_statistics_options& options = {}) {
  detail::require<shape_error>(!attentions.empty(), "glassbox::head_statistics: attentions must not be empty");
  detail::head_statistics_accumulator acc(options, detail::worker_count(options.execution, true));
  detail::progress_reporter reporter(options.execution.on_progress, options.execution.stop, attentions.size(),
                                     "head_statistics");
  for (const tensor4& a : attentions) {
    detail::check_attentions(a, "head_statistics");
    acc.add(a);
    reporter.advance();
  }
  return acc.finish();
}

/// Head statistics of a model over `inputs`: one forward pass per input, fetched in batches of
/// options.execution.batch_size (in parallel when the model is thread-safe), statistics added
/// in input order.
template <class M>
head_statistics_result head_statistics(const M& model, std::span<const token_sequence> inputs,
                                       const head_statistics_options& options = {}) {
  static_assert(check_attention_model<M>());
  detail::require<shape_error>(!inputs.empty(), "glassbox::head_statistics: inputs must not be empty");
  const execution_options& exec = options.execution;
  detail::require(exec.batch_size >= 1, "glassbox::head_statistics: batch_size must be >= 1, got 0");
  detail::head_statistics_accumulator acc(options, detail::worker_count(exec, true));
  detail::progress_reporter reporter(exec.on_progress, exec.stop, inputs.size(), "head_statistics");
  reporter.check();
  std::vector<tensor4> chunk;
  for (std::size_t begin = 0; begin < inputs.size(); begin += exec.batch_size) {
    const std::size_t end = std::min(inputs.size(), begin + exec.batch_size);
    chunk.assign(end - begin, tensor4());
    execution_options fetch;
    fetch.batch_size = 1;
    fetch.threads = exec.threads;
    fetch.stop = exec.stop;
    detail::run_batches(end - begin, fetch, detail::worker_count(exec, is_thread_safe<M>()), "head_statistics",
                        [&](std::size_t b, std::size_t e) {
                          for (std::size_t k = b; k < e; ++k)
                            chunk[k] = detail::model_attentions(model, inputs[begin + k], "head_statistics");
                        });
    for (std::size_t k = 0; k < chunk.size(); ++k) {
      detail::check_attentions(chunk[k], "head_statistics");
      acc.add(chunk[k]);
      reporter.advance();
    }
  }
  auto r = acc.finish();
  r.model_evaluations = inputs.size();
  return r;
}

}  // namespace glassbox

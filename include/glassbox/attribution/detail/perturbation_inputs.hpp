// glassbox: perturbation attribution internals. Features (groups of token positions) and the
// evaluation of coalitions: a coalition says which features are present; an absent feature's
// tokens are replaced by the baseline token, deleted (removal), or have their input embeddings
// replaced (zero / embedding baselines on an EmbeddingModel). Every model call goes through
// evaluate_target / evaluate_target_on_embeddings (core/execution.hpp).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "glassbox/attribution/baseline.hpp"
#include "glassbox/core/error.hpp"
#include "glassbox/core/execution.hpp"
#include "glassbox/core/model.hpp"
#include "glassbox/core/progress.hpp"
#include "glassbox/core/result.hpp"
#include "glassbox/core/target.hpp"
#include "glassbox/core/types.hpp"

namespace glassbox::detail {

/// Token positions grouped into features, read from a feature map (one group id per token; -1 holds
/// the token fixed: always present, never a feature, score 0).
struct feature_groups {
  std::vector<std::vector<std::size_t>> members;  ///< per feature, its token positions (ascending)
  std::vector<std::ptrdiff_t> feature_of;         ///< per token, its feature, or -1 when held fixed

  /// Number of features.
  std::size_t count() const { return members.size(); }
};

/// The features of `n_tokens` tokens under `feature_map` (empty: every token its own feature).
/// Group ids must be -1 or 0 .. k-1 with every id in 0 .. k-1 used, as Captum's feature_mask.
template <class = void>
inline feature_groups make_feature_groups(std::size_t n_tokens, std::span<const int> feature_map,
                                          std::string_view caller) {
  require<shape_error>(n_tokens >= 1, "glassbox::{}: tokens must not be empty", caller);
  feature_groups g;
  g.feature_of.resize(n_tokens);
  if (feature_map.empty()) {
    g.members.resize(n_tokens);
    for (std::size_t i = 0; i < n_tokens; ++i) {
      g.members[i] = {i};
      g.feature_of[i] = static_cast<std::ptrdiff_t>(i);
    }
    return g;
  }
  require<shape_error>(feature_map.size() == n_tokens,
                       "glassbox::{}: feature_map must have one entry per token ({}), got {}", caller, n_tokens,
                       feature_map.size());
  int largest = -1;
  for (std::size_t i = 0; i < n_tokens; ++i) {
    require<shape_error>(feature_map[i] >= -1,
                         "glassbox::{}: feature_map entries must be -1 (held fixed) or a group id >= 0, got {} at "
                         "token {}",
                         caller, feature_map[i], i);
    largest = std::max(largest, feature_map[i]);
  }
  require<shape_error>(largest >= 0,
                       "glassbox::{}: feature_map must put at least one token in a feature, got every "
                       "token held fixed (-1)",
                       caller);
  g.members.resize(static_cast<std::size_t>(largest) + 1);
  for (std::size_t i = 0; i < n_tokens; ++i) {
    g.feature_of[i] = feature_map[i];
    if (feature_map[i] >= 0) g.members[static_cast<std::size_t>(feature_map[i])].push_back(i);
  }
  for (std::size_t f = 0; f < g.members.size(); ++f)
    require<shape_error>(!g.members[f].empty(),
                         "glassbox::{}: feature_map must use every group id from 0 to {}, but {} is missing", caller,
                         largest, f);
  return g;
}

/// Per-token scores from per-feature scores: every token carries its feature's score (as Captum),
/// tokens held fixed get 0.
template <class = void>
inline std::vector<double> token_scores(const feature_groups& g, std::span<const double> feature_scores) {
  std::vector<double> out(g.feature_of.size(), 0.0);
  for (std::size_t i = 0; i < out.size(); ++i)
    if (g.feature_of[i] >= 0) out[i] = feature_scores[static_cast<std::size_t>(g.feature_of[i])];
  return out;
}

/// The feature map as recorded in a result's options: "" for the default, else "0,0,1,-1".
template <class = void>
inline std::string describe_feature_map(std::span<const int> feature_map) {
  std::string s;
  for (std::size_t i = 0; i < feature_map.size(); ++i) {
    if (i != 0) s += ',';
    s += std::to_string(feature_map[i]);
  }
  return s;
}

/// A copy of `t` that reads output row `position` (negative counts from the end); sequence targets
/// already read rows counted from the end and are returned unchanged.
template <class = void>
inline target with_position(const target& t, std::ptrdiff_t position) {
  switch (t.kind()) {
    case target_kind::logit:
      return target::logit(t.token(), position);
    case target_kind::probability:
      return target::probability(t.token(), position);
    case target_kind::log_probability:
      return target::log_probability(t.token(), position);
    case target_kind::contrast:
      return target::contrast(t.token(), t.foil(), t.contrast_of(), position);
    case target_kind::sequence_log_probability:
      return t;
  }
  return t;
}

/// The options every perturbation method records: baseline, feature map and execution settings.
template <class = void>
inline void record_common_options(std::vector<named_option>& options, const baseline& b,
                                  std::span<const int> feature_map, const execution_options& exec) {
  options.push_back({"baseline", b.describe()});
  options.push_back({"feature_map", describe_feature_map(feature_map)});
  options.push_back({"batch_size", static_cast<std::int64_t>(exec.batch_size)});
  options.push_back({"threads", static_cast<std::int64_t>(exec.threads)});
}

/// The positions of an input: its tokens, or its rows of embeddings.
template <class = void>
inline std::size_t input_length(const token_sequence& tokens) { return tokens.size(); }
/// The positions of an input: its rows of embeddings [T, d].
template <class = void>
inline std::size_t input_length(const tensor2& embeddings) { return embeddings.shape(0); }

/// The number of leading positions two inputs share: token ids, or rows of embeddings.
template <class = void>
inline std::size_t common_prefix(const token_sequence& a, const token_sequence& b) {
  const std::size_t n = std::min(a.size(), b.size());
  return static_cast<std::size_t>(std::mismatch(a.begin(), a.begin() + static_cast<std::ptrdiff_t>(n), b.begin()).first -
                                  a.begin());
}
/// The number of leading rows two embedding matrices [T, d] share (compared exactly).
template <class = void>
inline std::size_t common_prefix(const tensor2& a, const tensor2& b) {
  const std::size_t rows = std::min(a.shape(0), b.shape(0)), d = a.shape(1);
  for (std::size_t r = 0; r < rows; ++r)
    if (!std::equal(a.data() + r * d, a.data() + (r + 1) * d, b.data() + r * d)) return r;
  return rows;
}

/// Causal prefix reuse (docs/attribution.md, "Speed"): every perturbed input is compared with a few
/// reference inputs (the unperturbed input, the input with every feature absent); the positions it
/// shares with the closest one are not computed again. An input that differs from it only after the
/// last row the target reads takes the reference's value (computed once, from the first row read on,
/// resumed from the reference's own cache); the others are resumed from the reference's cached keys
/// and values at their first change (or at the first row read, if that comes earlier). A reference
/// is cached only when the rows it saves outweigh the passes it costs.
/// full(inputs) evaluates inputs from scratch; cache(input) builds a cache; resume(cache, inputs,
/// starts) evaluates inputs resumed from it. The values do not depend on which inputs share what.
template <class Input, class Full, class MakeCache, class Resume>
std::vector<double> evaluate_reusing_prefixes(std::vector<Input>&& inputs, std::span<const Input> references,
                                              std::size_t first_row, std::size_t last_row, Full&& full,
                                              MakeCache&& cache, Resume&& resume) {
  const std::size_t n = inputs.size(), length = inputs.empty() ? 0 : input_length(inputs[0]);
  std::vector<double> values(n);
  std::vector<std::size_t> best(n, 0), shared(n, 0);
  std::vector<std::size_t> saved(references.size(), 0);
  for (std::size_t i = 0; i < n; ++i) {
    for (std::size_t r = 0; r < references.size(); ++r) {
      const std::size_t p = common_prefix(inputs[i], references[r]);
      if (p > shared[i]) {
        shared[i] = p;
        best[i] = r;
      }
    }
    saved[best[i]] += std::min(shared[i], last_row + 1);
  }
  // Worth caching: saves more rows than the cache's pass and the reference's own value cost.
  std::vector<bool> use(references.size());
  for (std::size_t r = 0; r < references.size(); ++r) use[r] = saved[r] > length + (length - first_row);

  std::vector<std::size_t> scratch;
  std::vector<std::vector<std::size_t>> resumed(references.size());
  for (std::size_t i = 0; i < n; ++i) {
    if (use[best[i]] && shared[i] > 0)
      resumed[best[i]].push_back(i);
    else
      scratch.push_back(i);
  }
  auto take = [&](const std::vector<std::size_t>& indices) {
    std::vector<Input> out;
    out.reserve(indices.size());
    for (auto i : indices) out.push_back(std::move(inputs[i]));
    return out;
  };
  if (!scratch.empty()) {
    const std::vector<double> v = full(take(scratch));
    for (std::size_t k = 0; k < scratch.size(); ++k) values[scratch[k]] = v[k];
  }
  for (std::size_t r = 0; r < references.size(); ++r) {
    if (resumed[r].empty()) continue;
    // Unchanged up to the last row read: the reference's own value.
    std::vector<std::size_t> same, later;
    for (auto i : resumed[r]) (shared[i] > last_row ? same : later).push_back(i);
    const auto c = cache(references[r]);
    if (!same.empty()) {  // the reference's value: its rows from the first one read, resumed from its own cache
      const double value = resume(c, std::vector<Input>{references[r]}, std::span<const std::size_t>(&first_row, 1))[0];
      for (auto i : same) values[i] = value;
    }
    if (later.empty()) continue;
    // Resumed at the first change, in order of start so that a batch holds similar lengths.
    std::stable_sort(later.begin(), later.end(), [&](std::size_t a, std::size_t b) { return shared[a] < shared[b]; });
    std::vector<std::size_t> starts(later.size());
    for (std::size_t k = 0; k < later.size(); ++k) starts[k] = std::min(shared[later[k]], first_row);
    const std::vector<double> v = resume(c, take(later), std::span<const std::size_t>(starts));
    for (std::size_t k = 0; k < later.size(); ++k) values[later[k]] = v[k];
  }
  return values;
}

/// Evaluates a target on coalitions of present features of one input. Coalition masks are bytes,
/// one per feature, 1 = present.
template <Model M>
class coalition_evaluator {
 public:
  /// Prepares the perturbations of `tokens` for `model`; validates the baseline and feature map.
  /// With baseline removal the target is rewritten to count its row from the end, and removal of
  /// any token at or after the target's first row is refused (it would move or delete that row).
  coalition_evaluator(const M& model, token_span tokens, const target& t, const baseline& b,
                      std::span<const int> feature_map, std::string_view caller)
      : model_(model),
        tokens_(tokens.begin(), tokens.end()),
        target_(t),
        groups_(make_feature_groups(tokens.size(), feature_map, caller)),
        caller_(caller) {
    switch (b.kind()) {
      case baseline_kind::pad_token:
      case baseline_kind::token:
        mode_ = mode::replace_token;
        replacement_ = baseline_token(model, b, caller);
        break;
      case baseline_kind::removal:
        mode_ = mode::remove_token;
        prepare_removal();
        break;
      case baseline_kind::zero:
      case baseline_kind::embedding:
        if constexpr (EmbeddingModel<M>) {
          mode_ = mode::replace_embedding;
          embeddings_ = model_embeddings(model, tokens, caller);
          baseline_embeddings_ = baseline_embeddings(model, tokens, b, caller);
        } else {
          fail(
              "glassbox::{}: baseline {} replaces input embeddings and needs an EmbeddingModel (`tensor2 "
              "embed(token_span) const` and `tensor2 logits_from_embeddings(const tensor2&) const`)",
              caller, to_string(b.kind()));
        }
        break;
    }
  }

  /// Number of features.
  std::size_t features() const { return groups_.count(); }
  /// The features.
  const feature_groups& groups() const { return groups_; }
  /// The target as evaluated on perturbed inputs (rewritten to count from the end under removal).
  const target& evaluated_target() const { return target_; }
  /// Model evaluations made so far.
  std::size_t evaluations() const { return evaluations_; }

  /// The target's value on `count` coalitions; `fill(i, present)` writes coalition i into `present`
  /// (one byte per feature, 1 = present). One call reports progress over all `count` evaluations.
  template <class Fill>
  std::vector<double> evaluate(std::size_t count, Fill&& fill, const execution_options& exec) {
    std::vector<double> values(count);
    if (count == 0) return values;
    std::vector<std::uint8_t> present(features());
    std::size_t offset = 0;
    execution_options local = exec;
    if (exec.on_progress)
      local.on_progress = [&](const progress& p) {
        return exec.on_progress(progress{offset + p.done, count, p.stage});
      };
    const std::size_t chunk = chunk_size(exec);
    for (offset = 0; offset < count; offset += chunk) {
      const std::size_t n = std::min(chunk, count - offset);
      std::vector<double> part;
      if (mode_ == mode::replace_embedding) {
        if constexpr (EmbeddingModel<M>) {
          std::vector<tensor2> inputs(n);
          for (std::size_t i = 0; i < n; ++i) {
            fill(offset + i, std::span<std::uint8_t>(present));
            inputs[i] = perturbed_embeddings(present);
          }
          part = evaluate_embeddings(std::move(inputs), local);
        }
      } else {
        std::vector<token_sequence> inputs(n);
        for (std::size_t i = 0; i < n; ++i) {
          fill(offset + i, std::span<std::uint8_t>(present));
          inputs[i] = perturbed_tokens(present);
        }
        part = evaluate_tokens(std::move(inputs), local);
      }
      std::copy(part.begin(), part.end(), values.begin() + static_cast<std::ptrdiff_t>(offset));
    }
    evaluations_ += count;
    return values;
  }

  /// The perturbed token sequence of a coalition (token baselines and removal).
  token_sequence perturbed_tokens(std::span<const std::uint8_t> present) const {
    token_sequence out;
    out.reserve(tokens_.size());
    for (std::size_t i = 0; i < tokens_.size(); ++i) {
      const std::ptrdiff_t f = groups_.feature_of[i];
      const bool keep = f < 0 || present[static_cast<std::size_t>(f)] != 0;
      if (keep)
        out.push_back(tokens_[i]);
      else if (mode_ == mode::replace_token)
        out.push_back(replacement_);
    }
    return out;
  }

 private:
  enum class mode { replace_token, remove_token, replace_embedding };

  // The rows the target reads, when prefix reuse applies: a causal model (one output row per token)
  // whose prefix members exist, inputs of the unperturbed length, reuse not switched off.
  std::optional<std::pair<std::size_t, std::size_t>> reused_rows(const execution_options& exec) const {
    if (!exec.reuse_prefix || mode_ == mode::remove_token) return std::nullopt;
    const std::size_t n = tokens_.size();
    if (output_rows_of(model_, n) != n) return std::nullopt;
    const auto rows = target_.rows(n);
    if (rows.empty()) return std::nullopt;
    return std::pair{*std::min_element(rows.begin(), rows.end()), *std::max_element(rows.begin(), rows.end())};
  }

  // Progress of one dispatch call inside a chunk: shifted by what the chunk's earlier calls did
  // (reference evaluations included, so the sum is capped at the chunk's evaluations).
  execution_options shifted(const execution_options& exec, const std::size_t& done, std::size_t chunk) const {
    execution_options e = exec;
    if (exec.on_progress)
      e.on_progress = [&exec, &done, chunk](const progress& p) {
        return exec.on_progress(progress{std::min(done + p.done, chunk), p.total, p.stage});
      };
    return e;
  }

  // The target on perturbed token sequences, from the cached prefix of the unperturbed input or the
  // all-absent input where the model offers it (results identical to evaluating them from scratch).
  std::vector<double> evaluate_tokens(std::vector<token_sequence>&& inputs, const execution_options& exec) const {
    std::size_t done = 0;
    const std::size_t n = inputs.size();
    auto full = [&](std::vector<token_sequence>&& part) {
      auto v = evaluate_target(model_, std::span<const token_sequence>(part), target_, shifted(exec, done, n), caller_);
      done += part.size();
      return v;
    };
    if constexpr (concepts::has_prefix_cache<M>) {
      if (const auto rows = reused_rows(exec)) {
        const token_sequence references[] = {tokens_, all_absent_tokens()};
        return evaluate_reusing_prefixes(
            std::move(inputs), std::span<const token_sequence>(references), rows->first, rows->second, full,
            [&](const token_sequence& r) {
              const pass_threads_scope scope(exec.threads);  // the cache's pass keeps to the budget too
              return model_.prefix_cache(r);
            },
            [&](const auto& cache, std::vector<token_sequence>&& part, std::span<const std::size_t> starts) {
              auto v = evaluate_target_from_prefix(model_, cache, std::span<const token_sequence>(part), starts,
                                                   target_, shifted(exec, done, n), caller_);
              done += part.size();
              return v;
            });
      }
    }
    return full(std::move(inputs));
  }

  // The target on perturbed input embeddings, reusing cached prefixes as evaluate_tokens does.
  std::vector<double> evaluate_embeddings(std::vector<tensor2>&& inputs, const execution_options& exec) const {
    std::size_t done = 0;
    const std::size_t n = inputs.size();
    auto full = [&](std::vector<tensor2>&& part) {
      auto v = evaluate_target_on_embeddings(model_, std::span<const tensor2>(part), target_, shifted(exec, done, n),
                                             caller_);
      done += part.size();
      return v;
    };
    if constexpr (concepts::has_embeddings_prefix_cache<M>) {
      if (const auto rows = reused_rows(exec)) {
        const tensor2 references[] = {embeddings_, baseline_embeddings_};
        return evaluate_reusing_prefixes(
            std::move(inputs), std::span<const tensor2>(references), rows->first, rows->second, full,
            [&](const tensor2& r) {
              const pass_threads_scope scope(exec.threads);
              return model_.prefix_cache_from_embeddings(r);
            },
            [&](const auto& cache, std::vector<tensor2>&& part, std::span<const std::size_t> starts) {
              auto v = evaluate_target_on_embeddings_from_prefix(model_, cache, std::span<const tensor2>(part),
                                                                  starts, target_, shifted(exec, done, n), caller_);
              done += part.size();
              return v;
            });
      }
    }
    return full(std::move(inputs));
  }

  // The input with every feature absent (token baselines).
  token_sequence all_absent_tokens() const {
    const std::vector<std::uint8_t> none(features(), 0);
    return perturbed_tokens(none);
  }

  // Removal: the target's rows must survive at the same place counted from the end.
  void prepare_removal() {
    const std::size_t n = tokens_.size();
    std::size_t rows = n;
    if constexpr (concepts::has_output_rows<M>) rows = model_.output_rows(n);
    if (rows == n) {
      // One output row per token (a causal LM): row r is the prediction after token r. Deleting a
      // token after r moves row r counted from the end; deleting token r deletes it.
      const std::vector<std::size_t> read = target_.rows(rows);
      const std::size_t first = read.front();
      for (std::size_t i = first; i < n; ++i)
        require(groups_.feature_of[i] < 0,
                "glassbox::{}: baseline removal must not delete token {}: the target reads output row {} of {}, so "
                "tokens {} to {} must stay; hold them fixed with feature_map entry -1",
                caller_, i, first, n, first, n - 1);
      target_ = with_position(target_, static_cast<std::ptrdiff_t>(first) - static_cast<std::ptrdiff_t>(n));
    } else {
      const bool any_fixed =
          std::any_of(groups_.feature_of.begin(), groups_.feature_of.end(), [](std::ptrdiff_t f) { return f < 0; });
      require(any_fixed,
              "glassbox::{}: baseline removal would leave an empty input when every feature is absent; hold at least "
              "one token fixed with feature_map entry -1",
              caller_);
    }
  }

  tensor2 perturbed_embeddings(std::span<const std::uint8_t> present) const {
    tensor2 out = embeddings_;
    const std::size_t d = out.shape(1);
    for (std::size_t i = 0; i < tokens_.size(); ++i) {
      const std::ptrdiff_t f = groups_.feature_of[i];
      if (f >= 0 && present[static_cast<std::size_t>(f)] == 0)
        std::copy_n(baseline_embeddings_.data() + i * d, d, out.data() + i * d);
    }
    return out;
  }

  // Inputs built per evaluate_target call: bounded memory (about 64 MiB of inputs) and at least
  // one batch per worker.
  std::size_t chunk_size(const execution_options& exec) const {
    const std::size_t per_input = mode_ == mode::replace_embedding ? embeddings_.size() * sizeof(float) + 64
                                                                   : tokens_.size() * sizeof(token_id) + 64;
    const std::size_t by_memory = std::max<std::size_t>(1, (std::size_t{64} << 20) / per_input);
    const std::size_t minimum = std::max<std::size_t>(1, exec.batch_size) * worker_count(exec, is_thread_safe<M>());
    return std::max(minimum, std::min<std::size_t>(by_memory, std::size_t{1} << 16));
  }

  const M& model_;
  token_sequence tokens_;
  target target_;
  feature_groups groups_;
  std::string_view caller_;
  mode mode_ = mode::replace_token;
  token_id replacement_ = -1;
  tensor2 embeddings_;
  tensor2 baseline_embeddings_;
  std::size_t evaluations_ = 0;
};

}  // namespace glassbox::detail

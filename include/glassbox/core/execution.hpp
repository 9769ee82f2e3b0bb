// glassbox: how algorithms call models. One dispatch, used by every module, that sends
// batches through a model's batched members when it has them, runs batches on several threads
// when the model declares itself thread-safe, reports progress, honours cancellation, and
// checks every output for NaN/Inf. Results never depend on batch size or thread count.
#pragma once

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <cstddef>
#include <exception>
#include <initializer_list>
#include <mutex>
#include <span>
#include <stop_token>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "glassbox/core/error.hpp"
#include "glassbox/core/model.hpp"
#include "glassbox/core/progress.hpp"
#include "glassbox/core/target.hpp"
#include "glassbox/core/types.hpp"
#include "glassbox/detail/blas.hpp"

// The thread budget reaches inside model passes through OpenMP when the including program is
// compiled with it (the reference GPT-2 splits its products over OpenMP threads).
#if defined(_OPENMP)
#include <omp.h>
#endif

namespace glassbox {

/// How an algorithm evaluates its model: batch size, threads, progress and cancellation.
struct execution_options {
  std::size_t batch_size = 32;  ///< inputs per model call when the model has batched members
  /// The thread budget: how many cores the call may keep busy in all, workers times the threads
  /// inside each model pass (docs/concepts.md, "Threads"); 0 = every hardware thread, 1 = one core.
  std::size_t threads = 0;
  progress_callback on_progress{};  ///< called after each finished batch; return false to cancel
  std::stop_token stop{};           ///< cancels when a stop is requested
  /// Causal prefix reuse: on a model with prefix_cache (docs/concepts.md), perturbation methods compute
  /// only the positions from a perturbed input's first change on. Results agree to float rounding.
  bool reuse_prefix = true;
};

/// The number of threads a budget of `threads` means: `threads`, or every hardware thread for 0.
template <class = void>
inline std::size_t resolve_threads(std::size_t threads) {
  if (threads != 0) return threads;
  return std::max<std::size_t>(1, std::thread::hardware_concurrency());
}

/// Sets, for its lifetime, how many threads a model pass started on the calling thread may use
/// (OpenMP's thread count of this thread; without OpenMP passes run on one thread anyway), and
/// restores the previous value after. The library opens one in every worker it starts; a program
/// that calls a model directly opens one to apply its --threads to those calls.
class pass_threads_scope {
 public:
  /// Limits passes on this thread to `threads` threads (0 = every hardware thread).
  template <class = void>
  explicit pass_threads_scope(std::size_t threads) {
    detail::blas_on_calling_thread();
#if defined(_OPENMP)
    previous_ = omp_get_max_threads();
    omp_set_num_threads(static_cast<int>(resolve_threads(threads)));
#else
    (void)threads;
#endif
  }
  pass_threads_scope(const pass_threads_scope&) = delete;
  pass_threads_scope& operator=(const pass_threads_scope&) = delete;
  ~pass_threads_scope() {
#if defined(_OPENMP)
    omp_set_num_threads(previous_);
#endif
  }

 private:
  [[maybe_unused]] int previous_ = 1;
};

namespace detail {

/// The number of worker threads to use for `exec` on a model that is (or is not) thread-safe: the
/// whole budget for a thread-safe model (run_batches then gives each worker budget / workers
/// threads inside its passes), one otherwise (whose passes then get the whole budget).
template <class = void>
inline std::size_t worker_count(const execution_options& exec, bool thread_safe) {
  if (!thread_safe) return 1;
  return resolve_threads(exec.threads);
}

/// Runs batch_fn(begin, end) over [0, n) in batches of exec.batch_size, on up to `workers`
/// threads, reporting progress in items and throwing glassbox::cancelled on request. Each batch
/// is processed by exactly one call; the order of calls is unspecified, so batch_fn writes its
/// results by index. The thread budget exec.threads is shared out: the workers actually started
/// (at most one per batch) each run their passes on budget / workers threads, so that the
/// process never keeps more than the budget's cores busy.
template <class BatchFn>
void run_batches(std::size_t n, const execution_options& exec, std::size_t workers, std::string_view stage,
                 BatchFn&& batch_fn) {
  require(exec.batch_size >= 1, "glassbox::{}: batch_size must be >= 1, got 0", stage);
  progress_reporter reporter(exec.on_progress, exec.stop, n, stage);
  reporter.check();
  const std::size_t batches = (n + exec.batch_size - 1) / exec.batch_size;
  auto bounds = [&](std::size_t b) {
    const std::size_t begin = b * exec.batch_size;
    return std::pair{begin, std::min(n, begin + exec.batch_size)};
  };
  const std::size_t budget = resolve_threads(exec.threads);
  workers = std::max<std::size_t>(1, std::min({workers, batches, budget}));
  const std::size_t pass_threads = std::max<std::size_t>(1, budget / workers);
  if (workers <= 1) {
    const pass_threads_scope scope(pass_threads);
    for (std::size_t b = 0; b < batches; ++b) {
      const auto [begin, end] = bounds(b);
      batch_fn(begin, end);
      reporter.advance(end - begin);
    }
    return;
  }
  std::atomic<std::size_t> next{0};
  std::atomic<bool> halt{false};
  std::mutex mutex;
  std::condition_variable finished_one;
  std::size_t finished_items = 0, finished_batches = 0;
  std::exception_ptr failure;
  {
    std::vector<std::jthread> pool;
    pool.reserve(workers);
    for (std::size_t w = 0; w < workers; ++w) {
      pool.emplace_back([&] {
        const pass_threads_scope scope(pass_threads);
        while (!halt.load()) {
          const std::size_t b = next.fetch_add(1);
          if (b >= batches) break;
          const auto [begin, end] = bounds(b);
          try {
            batch_fn(begin, end);
          } catch (...) {
            std::lock_guard lock(mutex);
            if (!failure) failure = std::current_exception();
            halt = true;
          }
          std::lock_guard lock(mutex);
          finished_items += end - begin;
          ++finished_batches;
          finished_one.notify_one();
        }
      });
    }
    std::size_t reported = 0;
    std::unique_lock lock(mutex);
    while (true) {
      finished_one.wait(lock, [&] { return finished_items != reported || finished_batches == batches || halt; });
      if (failure || finished_batches == batches) break;
      if (finished_items != reported) {
        const std::size_t delta = finished_items - reported;
        reported = finished_items;
        lock.unlock();
        try {
          reporter.advance(delta);
        } catch (...) {
          halt = true;
          lock.lock();
          if (!failure) failure = std::current_exception();
          break;
        }
        lock.lock();
      }
      if (halt) break;
    }
    lock.unlock();
  }  // joins the workers
  if (failure) std::rethrow_exception(failure);
  if (reporter.done() < n) reporter.advance(n - reporter.done());
}

/// The output rows of `model` for `length` tokens: its output_rows member, or one per token.
template <class M>
std::size_t output_rows_of(const M& model, std::size_t length) {
  if constexpr (concepts::has_output_rows<M>) {
    return model.output_rows(length);
  } else {
    (void)model;
    return length;
  }
}

/// Throws model_error if `values` holds a NaN or Inf, naming the caller and the evaluation.
template <class Real>
void check_finite(const Real* values, std::size_t count, std::size_t columns, std::string_view caller,
                  std::size_t evaluation, std::string_view what = "logits") {
  for (std::size_t i = 0; i < count; ++i) {
    if (!std::isfinite(values[i]))
      fail<model_error>("glassbox::{}: the model returned {} in its {} at evaluation {} (row {}, column {})", caller,
                        values[i], what, evaluation, i / columns, i % columns);
  }
}

/// Throws model_error unless `logits`, what the adapter's `member` returned for `tokens` positions, is
/// [rows, V] with V >= 1 and rows = output_rows(T) when the model declares it, else T or 1 (a
/// classifier). A wrong row count would otherwise make a target read the wrong row without a word.
template <class M, class Logits>
void check_logits_shape(const M& model, const Logits& logits, std::size_t tokens, std::string_view caller,
                        std::string_view member) {
  const std::size_t rows = logits.shape(0), columns = logits.shape(1);
  const std::string v = columns >= 1 ? fmt::format("{}", columns) : std::string("V");
  if constexpr (concepts::has_output_rows<M>) {
    const std::size_t want = model.output_rows(tokens);
    require<model_error>(rows == want && columns >= 1,
                         "glassbox::{}: {} returned [{}, {}] for {} tokens, expected [output_rows(T), V] = [{}, {}] "
                         "with V >= 1",
                         caller, member, rows, columns, tokens, want, v);
  } else {
    (void)model;
    require<model_error>((rows == tokens || rows == 1) && columns >= 1,
                         "glassbox::{}: {} returned [{}, {}] for {} tokens, expected [T, V] = [{}, {}] with V >= 1 "
                         "(or [1, V] for a classifier; declare output_rows(T) to say which)",
                         caller, member, rows, columns, tokens, tokens, v);
  }
}

/// Throws model_error unless `out`, what the adapter's batched `member` returned, is [B, P, V] with
/// B = `batch`, P = `rows` (the rows asked for) and V >= 1.
template <class = void>
inline void check_batch_logits_shape(const tensor3& out, std::size_t batch, std::size_t rows, std::string_view caller,
                                     std::string_view member) {
  require<model_error>(out.shape(0) == batch && out.shape(1) == rows && out.shape(2) >= 1,
                       "glassbox::{}: {} returned [{}, {}, {}], expected [B, P, V] = [{}, {}, V] with V >= 1", caller,
                       member, out.shape(0), out.shape(1), out.shape(2), batch, rows);
}

/// Throws model_error unless `logits`, what the adapter's `member` returned for `rows` requested
/// output rows, is [rows, V] with V >= 1.
template <class = void>
inline void check_requested_rows(const tensor2& logits, std::size_t rows, std::string_view caller,
                                 std::string_view member) {
  require<model_error>(logits.shape(0) == rows && logits.shape(1) >= 1,
                       "glassbox::{}: {} returned [{}, {}] for {} requested rows, expected [{}, V] with V >= 1", caller,
                       member, logits.shape(0), logits.shape(1), rows, rows);
}

/// The adapter's embed(tokens) in its own precision, checked: [T, d] with T = tokens.size() and
/// d >= 1, finite; a model_error naming embed() otherwise.
template <EmbeddingModel M>
auto model_embeddings(const M& model, token_span tokens, std::string_view caller) {
  auto e = model.embed(tokens);
  require<model_error>(e.shape(0) == tokens.size() && e.shape(1) >= 1,
                       "glassbox::{}: embed() returned [{}, {}] for {} tokens, expected [T, d] = [{}, d] with d >= 1",
                       caller, e.shape(0), e.shape(1), tokens.size(), tokens.size());
  check_finite(e.data(), e.size(), e.shape(1), caller, 0, "embeddings (embed())");
  return e;
}

/// The adapter's hidden_states(tokens) in its own precision, checked: [L + 1, T, d] with
/// T = tokens.size() and L + 1, d >= 1, finite; a model_error naming hidden_states() otherwise.
/// `evaluation` numbers the call.
template <ActivationModel M>
auto model_hidden_states(const M& model, token_span tokens, std::string_view caller, std::size_t evaluation = 0) {
  auto h = model.hidden_states(tokens);
  require<model_error>(h.shape(0) >= 1 && h.shape(1) == tokens.size() && h.shape(2) >= 1,
                       "glassbox::{}: hidden_states() returned [{}, {}, {}] for {} tokens, expected [L + 1, T, d] = "
                       "[L + 1, {}, d] with L + 1, d >= 1",
                       caller, h.shape(0), h.shape(1), h.shape(2), tokens.size(), tokens.size());
  check_finite(h.data(), h.size(), h.shape(2), caller, evaluation, "hidden states (hidden_states())");
  return h;
}

/// The adapter's logits_from_hidden(tokens, layer, h) in its own precision, checked: the shape
/// check_logits_shape asks for, finite; a model_error naming logits_from_hidden() otherwise.
/// `evaluation` numbers the call.
template <InterventionModel M, class Hidden>
auto model_logits_from_hidden(const M& model, token_span tokens, std::size_t layer, const Hidden& h,
                              std::string_view caller, std::size_t evaluation = 0) {
  auto logits = model.logits_from_hidden(tokens, layer, h);
  check_logits_shape(model, logits, tokens.size(), caller, "logits_from_hidden()");
  check_finite(logits.data(), logits.size(), std::max<std::size_t>(1, logits.shape(1)), caller, evaluation,
               "logits (logits_from_hidden())");
  return logits;
}

/// The adapter's decode_hidden(h) for rows h [R, d], checked: [R, V] with V >= 1, finite; a
/// model_error naming decode_hidden() otherwise. `evaluation` numbers the call.
template <class M, class Hidden>
auto model_decode_hidden(const M& model, const Hidden& h, std::string_view caller, std::size_t evaluation = 0) {
  auto logits = model.decode_hidden(h);
  require<model_error>(logits.shape(0) == h.shape(0) && logits.shape(1) >= 1,
                       "glassbox::{}: decode_hidden() returned [{}, {}] for {} rows, expected [R, V] = [{}, V] with "
                       "V >= 1",
                       caller, logits.shape(0), logits.shape(1), h.shape(0), h.shape(0));
  check_finite(logits.data(), logits.size(), std::max<std::size_t>(1, logits.shape(1)), caller, evaluation,
               "logits (decode_hidden())");
  return logits;
}

/// The adapter's hidden_gradient(tokens, layer, h, seed), checked: a gradient of h's shape, a finite
/// value and gradient; a model_error naming hidden_gradient() otherwise. `evaluation` numbers the call.
template <InterventionModel M>
value_and_gradient<tensor2> model_hidden_gradient(const M& model, token_span tokens, std::size_t layer,
                                                  const tensor2& h, const output_seed& seed, std::string_view caller,
                                                  std::size_t evaluation = 0) {
  value_and_gradient<tensor2> g = model.hidden_gradient(tokens, layer, h, seed);
  require<model_error>(g.gradient.shape() == h.shape(),
                       "glassbox::{}: hidden_gradient() returned a [{}, {}] gradient for [{}, {}] hidden states", caller,
                       g.gradient.shape(0), g.gradient.shape(1), h.shape(0), h.shape(1));
  require<model_error>(std::isfinite(g.value),
                       "glassbox::{}: the model returned a target value of {} in hidden_gradient() at evaluation {}",
                       caller, g.value, evaluation);
  check_finite(g.gradient.data(), g.gradient.size(), std::max<std::size_t>(1, g.gradient.shape(1)), caller, evaluation,
               "hidden gradient (hidden_gradient())");
  return g;
}

/// Throws model_error unless `x`, the `part` of what the adapter's `member` returned, has the shape
/// `want` (named by `symbols`, e.g. "L, H, T, d") and finite entries.
template <class Tensor>
void check_model_tensor(const Tensor& x, std::initializer_list<std::size_t> want, std::string_view symbols,
                        std::string_view caller, std::string_view member, std::string_view part,
                        std::size_t evaluation) {
  const bool same = x.dimension() == want.size() && std::equal(want.begin(), want.end(), x.shape().begin());
  require<model_error>(same, "glassbox::{}: {} returned {} of shape [{}], expected [{}] = [{}]", caller, member, part,
                       fmt::join(x.shape(), ", "), symbols, fmt::join(want, ", "));
  const std::string what = fmt::format("{} ({})", part, member);
  check_finite(x.data(), x.size(), std::max<std::size_t>(1, *(want.end() - 1)), caller, evaluation, what);
}

/// Throws model_error unless the component cache `c` that the adapter's `member` returned for
/// `tokens` positions has every part in the shape of `layout` (core/components.hpp), finite
/// entries and a positive final_scale per position.
template <class Cache>
void check_component_cache(const component_layout& layout, const Cache& c, std::size_t tokens,
                           std::string_view caller, std::string_view member, std::size_t evaluation) {
  const std::size_t L = layout.layers, H = layout.heads, T = tokens, d = layout.width, f = layout.neurons;
  require<model_error>(c.logits.shape(0) == T && c.logits.shape(1) >= 1,
                       "glassbox::{}: {} returned logits of shape [{}], expected [T, V] = [{}, V] with V >= 1", caller,
                       member, fmt::join(c.logits.shape(), ", "), T);
  check_finite(c.logits.data(), c.logits.size(), c.logits.shape(1), caller, evaluation,
               fmt::format("logits ({})", member));
  check_model_tensor(c.residual, {L + 1, T, d}, "L + 1, T, d", caller, member, "residual", evaluation);
  check_model_tensor(c.token_embeddings, {T, d}, "T, d", caller, member, "token_embeddings", evaluation);
  check_model_tensor(c.position_embeddings, {T, d}, "T, d", caller, member, "position_embeddings", evaluation);
  check_model_tensor(c.heads, {L, H, T, d}, "L, H, T, d", caller, member, "heads", evaluation);
  check_model_tensor(c.attention_bias, {L, d}, "L, d", caller, member, "attention_bias", evaluation);
  check_model_tensor(c.mlps, {L, T, d}, "L, T, d", caller, member, "mlps", evaluation);
  check_model_tensor(c.neurons, {L, T, f}, "L, T, f", caller, member, "neurons", evaluation);
  require<model_error>(c.final_scale.size() == T,
                       "glassbox::{}: {} returned {} final_scale entries for {} positions, expected one per position",
                       caller, member, c.final_scale.size(), T);
  for (std::size_t t = 0; t < T; ++t)
    require<model_error>(std::isfinite(c.final_scale[t]) && c.final_scale[t] > 0,
                         "glassbox::{}: {} returned final_scale {} at position {}, expected a positive finite divisor",
                         caller, member, c.final_scale[t], t);
}

/// The adapter's run_with_cache(tokens), checked by check_component_cache; a model_error naming
/// run_with_cache() otherwise. `evaluation` numbers the call.
template <ComponentModel M>
auto model_component_cache(const M& model, token_span tokens, std::string_view caller, std::size_t evaluation = 0) {
  auto c = model.run_with_cache(tokens);
  check_component_cache(model.layout(), c, tokens.size(), caller, "run_with_cache()", evaluation);
  return c;
}

/// The adapter's component_gradients(tokens, seed), checked: its cache as check_component_cache,
/// a finite value, and gradients of the shapes core/components.hpp names; a model_error naming
/// component_gradients() otherwise.
template <ComponentModel M>
auto model_component_gradients(const M& model, token_span tokens, const output_seed& seed, std::string_view caller,
                               std::size_t evaluation = 0) {
  auto g = model.component_gradients(tokens, seed);
  const component_layout layout = model.layout();
  const std::size_t L = layout.layers, T = tokens.size(), d = layout.width, f = layout.neurons;
  constexpr std::string_view member = "component_gradients()";
  check_component_cache(layout, g.cache, T, caller, member, evaluation);
  require<model_error>(std::isfinite(g.value), "glassbox::{}: {} returned the value {} at evaluation {}", caller,
                       member, g.value, evaluation);
  check_model_tensor(g.residual, {L + 1, T, d}, "L + 1, T, d", caller, member, "the residual gradient", evaluation);
  check_model_tensor(g.attention, {L, T, d}, "L, T, d", caller, member, "the attention gradient", evaluation);
  check_model_tensor(g.neurons, {L, T, f}, "L, T, f", caller, member, "the neuron gradient", evaluation);
  return g;
}

/// The logits rows `t` reads for one input, computed as cheaply as the model allows.
template <class M>
tensor2 target_rows(const M& model, token_span tokens, const target& t, std::string_view caller,
                    std::size_t evaluation) {
  tensor2 rows_logits;
  if constexpr (concepts::has_logits_at<M>) {
    const auto rows = t.rows(model.output_rows(tokens.size()));
    rows_logits = model.logits_at(tokens, rows);
    check_requested_rows(rows_logits, rows.size(), caller, "logits_at()");
  } else {
    const tensor2 logits = model.logits(tokens);
    check_logits_shape(model, logits, tokens.size(), caller, "logits()");
    const auto rows = t.rows(logits.shape(0));
    rows_logits = tensor2({rows.size(), logits.shape(1)});
    for (std::size_t i = 0; i < rows.size(); ++i) {
      require<shape_error>(rows[i] < logits.shape(0), "glassbox::{}: row {} outside {} rows of logits", caller, rows[i],
                           logits.shape(0));
      std::copy_n(logits.data() + rows[i] * logits.shape(1), logits.shape(1), rows_logits.data() + i * logits.shape(1));
    }
  }
  check_finite(rows_logits.data(), rows_logits.size(), std::max<std::size_t>(1, rows_logits.shape(1)), caller,
               evaluation);
  return rows_logits;
}

/// Calls `use(i, rows)` with the logits rows `t` reads ([rows, V], checked finite) of every token
/// sequence of `inputs`, each i once, from the worker threads of `exec`. Uses `logits_batch` for
/// runs of equal-length inputs when the model has it.
template <Model M, class Use>
void for_each_target_rows(const M& model, std::span<const token_sequence> inputs, const target& t,
                          const execution_options& exec, std::string_view caller, Use&& use) {
  run_batches(inputs.size(), exec, worker_count(exec, is_thread_safe<M>()), caller,
              [&](std::size_t begin, std::size_t end) {
                for (std::size_t i = begin; i < end; ++i)
                  require<shape_error>(!inputs[i].empty(), "glassbox::{}: input {} must not be empty (no tokens)",
                                       caller, i);
                if constexpr (concepts::has_logits_batch<M> && concepts::has_output_rows<M>) {
                  const std::size_t len = inputs[begin].size();
                  const bool equal = std::all_of(inputs.begin() + static_cast<std::ptrdiff_t>(begin),
                                                 inputs.begin() + static_cast<std::ptrdiff_t>(end),
                                                 [&](const auto& s) { return s.size() == len; });
                  if (equal && end - begin > 1) {
                    token_matrix batch({end - begin, len});
                    for (std::size_t i = begin; i < end; ++i)
                      std::copy(inputs[i].begin(), inputs[i].end(), batch.data() + (i - begin) * len);
                    const auto rows = t.rows(model.output_rows(len));
                    const tensor3 out = model.logits_batch(batch, rows);
                    const std::size_t p = out.shape(1), v = out.shape(2);
                    check_batch_logits_shape(out, end - begin, rows.size(), caller, "logits_batch()");
                    for (std::size_t i = begin; i < end; ++i) {
                      tensor2 one({p, v});
                      std::copy_n(out.data() + (i - begin) * p * v, p * v, one.data());
                      check_finite(one.data(), one.size(), std::max<std::size_t>(1, v), caller, i);
                      use(i, std::move(one));
                    }
                    return;
                  }
                }
                for (std::size_t i = begin; i < end; ++i) use(i, target_rows(model, inputs[i], t, caller, i));
              });
}

/// The logits rows `t` reads ([rows, V], checked finite) of every token sequence of `inputs`, as
/// for_each_target_rows computes them.
template <Model M>
std::vector<tensor2> target_row_logits(const M& model, std::span<const token_sequence> inputs, const target& t,
                                       const execution_options& exec, std::string_view caller) {
  std::vector<tensor2> out(inputs.size());
  for_each_target_rows(model, inputs, t, exec, caller, [&](std::size_t i, tensor2 rows) { out[i] = std::move(rows); });
  return out;
}

/// Calls `use(i, rows)` with the logits rows `t` reads ([rows, V], checked finite) of every embedding
/// matrix of `inputs` ([T, d] each), each i once, from the worker threads of `exec`. Uses the model's
/// batched member when it has one and the shapes agree; a single pass checks every row it returns.
template <EmbeddingModel M, class Use>
void for_each_target_rows_on_embeddings(const M& model, std::span<const tensor2> inputs, const target& t,
                                        const execution_options& exec, std::string_view caller, Use&& use) {
  run_batches(
      inputs.size(), exec, worker_count(exec, is_thread_safe<M>()), caller, [&](std::size_t begin, std::size_t end) {
        for (std::size_t i = begin; i < end; ++i)
          require<shape_error>(inputs[i].shape(0) >= 1, "glassbox::{}: input {} must not be empty (no positions)",
                               caller, i);
        if constexpr (concepts::has_logits_from_embeddings_batch<M> && concepts::has_output_rows<M>) {
          const auto shape = inputs[begin].shape();
          const bool equal = std::all_of(inputs.begin() + static_cast<std::ptrdiff_t>(begin),
                                         inputs.begin() + static_cast<std::ptrdiff_t>(end),
                                         [&](const auto& e) { return e.shape() == shape; });
          if (equal && end - begin > 1) {
            tensor3 batch({end - begin, shape[0], shape[1]});
            for (std::size_t i = begin; i < end; ++i)
              std::copy_n(inputs[i].data(), inputs[i].size(), batch.data() + (i - begin) * inputs[i].size());
            const auto rows = t.rows(model.output_rows(shape[0]));
            const tensor3 out = model.logits_from_embeddings_batch(batch, rows);
            const std::size_t p = out.shape(1), v = out.shape(2);
            check_batch_logits_shape(out, end - begin, rows.size(), caller, "logits_from_embeddings_batch()");
            for (std::size_t i = begin; i < end; ++i) {
              tensor2 one({p, v});
              std::copy_n(out.data() + (i - begin) * p * v, p * v, one.data());
              check_finite(one.data(), one.size(), std::max<std::size_t>(1, v), caller, i);
              use(i, std::move(one));
            }
            return;
          }
        }
        for (std::size_t i = begin; i < end; ++i) {
          const tensor2 logits = model.logits_from_embeddings(inputs[i]);
          check_logits_shape(model, logits, inputs[i].shape(0), caller, "logits_from_embeddings()");
          check_finite(logits.data(), logits.size(), std::max<std::size_t>(1, logits.shape(1)), caller, i);
          const auto rows = t.rows(logits.shape(0));
          tensor2 one({rows.size(), logits.shape(1)});
          for (std::size_t k = 0; k < rows.size(); ++k) {
            require<shape_error>(rows[k] < logits.shape(0), "glassbox::{}: row {} outside {} rows of logits", caller,
                                 rows[k], logits.shape(0));
            std::copy_n(logits.data() + rows[k] * logits.shape(1), logits.shape(1), one.data() + k * logits.shape(1));
          }
          use(i, std::move(one));
        }
      });
}

}  // namespace detail

/// Evaluates target `t` on every token sequence of `inputs`: one value per input, identical for
/// any batch size and thread count. Uses `logits_batch` for runs of equal-length inputs when the
/// model has it. `caller` names the algorithm in errors and progress reports.
template <Model M>
std::vector<double> evaluate_target(const M& model, std::span<const token_sequence> inputs, const target& t,
                                    const execution_options& exec = {}, std::string_view caller = "evaluate_target") {
  std::vector<double> values(inputs.size());
  detail::for_each_target_rows(model, inputs, t, exec, caller,
                               [&](std::size_t i, const tensor2& rows) { values[i] = t.value(rows); });
  return values;
}

/// Evaluates target `t` on every embedding matrix of `inputs` ([T, d] each), through the
/// model's batched member when it has one and the shapes agree.
template <EmbeddingModel M>
std::vector<double> evaluate_target_on_embeddings(const M& model, std::span<const tensor2> inputs, const target& t,
                                                  const execution_options& exec = {},
                                                  std::string_view caller = "evaluate_target_on_embeddings") {
  std::vector<double> values(inputs.size());
  detail::for_each_target_rows_on_embeddings(model, inputs, t, exec, caller,
                                             [&](std::size_t i, const tensor2& rows) { values[i] = t.value(rows); });
  return values;
}

/// The value of `seed`'s scalar and its gradient w.r.t. each embedding matrix of `inputs`, through
/// `embedding_gradient_batch` when the model has it and the shapes agree.
template <DifferentiableModel M>
std::vector<value_and_gradient<tensor2>> embedding_gradients(const M& model, std::span<const tensor2> inputs,
                                                             const output_seed& seed,
                                                             const execution_options& exec = {},
                                                             std::string_view caller = "embedding_gradients") {
  std::vector<value_and_gradient<tensor2>> out(inputs.size());
  auto check = [&](const value_and_gradient<tensor2>& g, std::size_t i) {
    detail::require<model_error>(std::isfinite(g.value), "glassbox::{}: the model returned a target value of {} at evaluation {}",
                         caller, g.value, i);
    detail::check_finite(g.gradient.data(), g.gradient.size(), std::max<std::size_t>(1, g.gradient.shape(1)), caller, i,
                         "embedding gradient");
  };
  detail::run_batches(
      inputs.size(), exec, detail::worker_count(exec, is_thread_safe<M>()), caller,
      [&](std::size_t begin, std::size_t end) {
        if constexpr (concepts::has_embedding_gradient_batch<M>) {
          const auto shape = inputs[begin].shape();
          const bool equal = std::all_of(inputs.begin() + static_cast<std::ptrdiff_t>(begin),
                                         inputs.begin() + static_cast<std::ptrdiff_t>(end),
                                         [&](const auto& e) { return e.shape() == shape; });
          if (equal && end - begin > 1) {
            tensor3 batch({end - begin, shape[0], shape[1]});
            for (std::size_t i = begin; i < end; ++i)
              std::copy_n(inputs[i].data(), inputs[i].size(), batch.data() + (i - begin) * inputs[i].size());
            const batch_gradient_result r = model.embedding_gradient_batch(batch, seed);
            detail::require<model_error>(r.values.size() == end - begin,
                                 "glassbox::{}: embedding_gradient_batch() returned {} values for {} inputs", caller,
                                 r.values.size(), end - begin);
            detail::require<model_error>(
                r.gradients.shape(0) == end - begin && r.gradients.shape(1) == shape[0] &&
                    r.gradients.shape(2) == shape[1],
                "glassbox::{}: embedding_gradient_batch() returned gradients of [{}, {}, {}], expected [B, T, d] = "
                "[{}, {}, {}]",
                caller, r.gradients.shape(0), r.gradients.shape(1), r.gradients.shape(2), end - begin, shape[0],
                shape[1]);
            for (std::size_t i = begin; i < end; ++i) {
              out[i].value = r.values[i - begin];
              out[i].gradient = tensor2({shape[0], shape[1]});
              std::copy_n(r.gradients.data() + (i - begin) * inputs[i].size(), inputs[i].size(),
                          out[i].gradient.data());
              check(out[i], i);
            }
            return;
          }
        }
        for (std::size_t i = begin; i < end; ++i) {
          out[i] = model.embedding_gradient(inputs[i], seed);
          detail::require<model_error>(out[i].gradient.shape() == inputs[i].shape(),
                               "glassbox::{}: embedding_gradient() returned a [{}, {}] gradient for [{}, {}] "
                               "embeddings",
                               caller, out[i].gradient.shape(0), out[i].gradient.shape(1), inputs[i].shape(0),
                               inputs[i].shape(1));
          check(out[i], i);
        }
      });
  return out;
}

namespace detail {

/// The batches of a resumed evaluation: each input's values from the [B, P, V] logits of its batch.
template <class Resume>
std::vector<double> evaluate_resumed(std::size_t n, std::span<const std::size_t> starts, std::size_t length,
                                     const target& t, std::size_t out_rows, const execution_options& exec,
                                     std::size_t workers, std::string_view caller, Resume&& resume) {
  const auto rows = t.rows(out_rows);
  require<shape_error>(!rows.empty(), "glassbox::{}: the target reads no row", caller);
  const std::size_t first = *std::min_element(rows.begin(), rows.end());
  for (auto s : starts)
    require<shape_error>(s <= first && s < length,
                         "glassbox::{}: a resumed input must start at or before the first row read ({}), got {}",
                         caller, first, s);
  std::vector<double> values(n);
  run_batches(n, exec, workers, caller, [&](std::size_t begin, std::size_t end) {
    const tensor3 out = resume(begin, end, std::span<const std::size_t>(starts.data() + begin, end - begin), rows);
    const std::size_t p = out.shape(1), v = out.shape(2);
    check_batch_logits_shape(out, end - begin, rows.size(), caller, "the resumed pass (logits_*_from_prefix())");
    for (std::size_t i = begin; i < end; ++i) {
      tensor2 one({p, v});
      std::copy_n(out.data() + (i - begin) * p * v, p * v, one.data());
      check_finite(one.data(), one.size(), std::max<std::size_t>(1, v), caller, i);
      values[i] = t.value(one);
    }
  });
  return values;
}

}  // namespace detail

/// Evaluates target `t` on token sequences that each equal the sequence cached in `cache` (from
/// model.prefix_cache) before position starts[i], through logits_batch_from_prefix: only positions
/// starts[i] onwards are computed. The inputs have one length, and every row `t` reads is at or
/// after every start (a row before it is the cached sequence's own).
template <Model M, class Cache>
  requires concepts::has_prefix_cache<M>
std::vector<double> evaluate_target_from_prefix(const M& model, const Cache& cache,
                                                std::span<const token_sequence> inputs,
                                                std::span<const std::size_t> starts, const target& t,
                                                const execution_options& exec = {},
                                                std::string_view caller = "evaluate_target_from_prefix") {
  detail::require<shape_error>(starts.size() == inputs.size() && !inputs.empty(),
                               "glassbox::{}: starts must have one entry per input ({}), got {}", caller, inputs.size(),
                               starts.size());
  const std::size_t length = inputs[0].size();
  for (const auto& s : inputs)
    detail::require<shape_error>(s.size() == length, "glassbox::{}: resumed inputs must have one length ({}), got {}",
                                 caller, length, s.size());
  const std::size_t out_rows = detail::output_rows_of(model, length);
  return detail::evaluate_resumed(
      inputs.size(), starts, length, t, out_rows, exec, detail::worker_count(exec, is_thread_safe<M>()), caller,
      [&](std::size_t begin, std::size_t end, std::span<const std::size_t> batch_starts,
          std::span<const std::size_t> rows) {
        token_matrix batch({end - begin, length});
        for (std::size_t i = begin; i < end; ++i)
          std::copy(inputs[i].begin(), inputs[i].end(), batch.data() + (i - begin) * length);
        return tensor3(model.logits_batch_from_prefix(cache, batch, batch_starts, rows));
      });
}

/// evaluate_target_from_prefix for input embeddings ([T, d] each) and a cache from
/// model.prefix_cache_from_embeddings, through logits_from_embeddings_batch_from_prefix.
template <EmbeddingModel M, class Cache>
  requires concepts::has_embeddings_prefix_cache<M>
std::vector<double> evaluate_target_on_embeddings_from_prefix(
    const M& model, const Cache& cache, std::span<const tensor2> inputs, std::span<const std::size_t> starts,
    const target& t, const execution_options& exec = {},
    std::string_view caller = "evaluate_target_on_embeddings_from_prefix") {
  detail::require<shape_error>(starts.size() == inputs.size() && !inputs.empty(),
                               "glassbox::{}: starts must have one entry per input ({}), got {}", caller, inputs.size(),
                               starts.size());
  const auto shape = inputs[0].shape();
  for (const auto& e : inputs)
    detail::require<shape_error>(e.shape() == shape, "glassbox::{}: resumed inputs must have one shape ([{}, {}]), got [{}, {}]",
                                 caller, shape[0], shape[1], e.shape(0), e.shape(1));
  const std::size_t length = shape[0];
  const std::size_t out_rows = detail::output_rows_of(model, length);
  return detail::evaluate_resumed(
      inputs.size(), starts, length, t, out_rows, exec, detail::worker_count(exec, is_thread_safe<M>()), caller,
      [&](std::size_t begin, std::size_t end, std::span<const std::size_t> batch_starts,
          std::span<const std::size_t> rows) {
        tensor3 batch({end - begin, shape[0], shape[1]});
        for (std::size_t i = begin; i < end; ++i)
          std::copy_n(inputs[i].data(), inputs[i].size(), batch.data() + (i - begin) * inputs[i].size());
        return tensor3(model.logits_from_embeddings_batch_from_prefix(cache, batch, batch_starts, rows));
      });
}

}  // namespace glassbox

namespace glassbox {

/// Evaluates target `t` on the model run on from each replacement `inputs[i]` ([T, d]) of the
/// hidden state at index `layer` (0 = the embeddings output) for `tokens`, through
/// `logits_from_hidden`; one value per input, identical for any batch size and thread count.
template <InterventionModel M>
std::vector<double> evaluate_target_on_hidden(const M& model, token_span tokens, std::size_t layer,
                                              std::span<const tensor2> inputs, const target& t,
                                              const execution_options& exec = {},
                                              std::string_view caller = "evaluate_target_on_hidden") {
  std::vector<double> values(inputs.size());
  detail::run_batches(inputs.size(), exec, detail::worker_count(exec, is_thread_safe<M>()), caller,
                      [&](std::size_t begin, std::size_t end) {
                        for (std::size_t i = begin; i < end; ++i)
                          values[i] = t.value_of(
                              detail::model_logits_from_hidden(model, tokens, layer, inputs[i], caller, i));
                      });
  return values;
}

/// The value of `seed`'s scalar and its gradient w.r.t. the hidden state at index `layer`, for the
/// model run on `tokens` with that hidden state replaced by each of `inputs` ([T, d] each), through
/// `hidden_gradient` (the ladder has no batched member for it; batches run on threads when the
/// model is thread-safe).
template <InterventionModel M>
std::vector<value_and_gradient<tensor2>> hidden_gradients(const M& model, token_span tokens, std::size_t layer,
                                                          std::span<const tensor2> inputs, const output_seed& seed,
                                                          const execution_options& exec = {},
                                                          std::string_view caller = "hidden_gradients") {
  std::vector<value_and_gradient<tensor2>> out(inputs.size());
  detail::run_batches(inputs.size(), exec, detail::worker_count(exec, is_thread_safe<M>()), caller,
                      [&](std::size_t begin, std::size_t end) {
                        for (std::size_t i = begin; i < end; ++i)
                          out[i] = detail::model_hidden_gradient(model, tokens, layer, inputs[i], seed, caller, i);
                      });
  return out;
}

}  // namespace glassbox

// glassbox: a method over many inputs. Researchers explain thousands of inputs, not one:
// for_each_input runs a method on every input of a data set, spreading the inputs over the thread
// budget, and hands each result to a callback in input order as soon as it and every result before
// it are done, so that a caller can write results as they come and resume an interrupted run.
#pragma once

#include <cstddef>
#include <map>
#include <mutex>
#include <optional>
#include <type_traits>
#include <utility>

#include "glassbox/core/execution.hpp"

namespace glassbox {

/// Runs `method(i, exec_i)` for every input index i in [0, n) and calls `on_result(i, result)` for
/// each, in increasing i. The inputs run concurrently on up to exec.threads workers (the budget,
/// 0 = every hardware thread), each of which passes exec_i (exec with threads = 1, no progress
/// callback) to its method so that the budget is never exceeded; progress is reported in inputs.
/// on_result is called under a lock, from whichever worker completed the run of results it ends:
/// it need not be thread-safe. When a method throws, the inputs before it have been delivered, the
/// exception propagates, and no later result is delivered.
///
/// Example:
///   glassbox::for_each_input(reviews.size(),
///       [&](std::size_t i, const glassbox::execution_options& e) {
///         return glassbox::integrated_gradients(model, reviews[i], why, {.execution = e}); },
///       [&](std::size_t i, const glassbox::attribution_result& r) { write(i, r); });
template <class Method, class OnResult>
void for_each_input(std::size_t n, Method&& method, OnResult&& on_result, const execution_options& exec = {}) {
  using result_type = std::invoke_result_t<Method&, std::size_t, const execution_options&>;
  execution_options per_input = exec;
  per_input.on_progress = {};
  std::mutex mutex;
  std::map<std::size_t, result_type> ready;  // finished out of order, waiting for earlier inputs
  std::size_t next = 0;                      // the first input not yet delivered
  std::optional<std::size_t> failed;         // the first input whose method threw
  execution_options outer = exec;
  outer.batch_size = 1;
  const std::size_t workers = resolve_threads(exec.threads);
  per_input.threads = workers > 1 ? 1 : exec.threads;
  detail::run_batches(n, outer, workers, "for_each_input", [&](std::size_t begin, std::size_t end) {
    for (std::size_t i = begin; i < end; ++i) {
      std::optional<result_type> r;
      try {
        r.emplace(method(i, per_input));
      } catch (...) {
        std::lock_guard lock(mutex);
        if (!failed || i < *failed) failed = i;
        throw;
      }
      std::lock_guard lock(mutex);
      ready.emplace(i, std::move(*r));
      while (!ready.empty() && ready.begin()->first == next && (!failed || next < *failed)) {
        on_result(next, ready.begin()->second);
        ready.erase(ready.begin());
        ++next;
      }
    }
  });
}

}  // namespace glassbox

// glassbox: progress reports and cancellation for long work.
#pragma once

#include <cstddef>
#include <functional>
#include <stop_token>
#include <string_view>

#include "glassbox/core/error.hpp"

namespace glassbox {

/// How far a long computation has come.
struct progress {
  std::size_t done = 0;     ///< units finished (model evaluations, examples, ...)
  std::size_t total = 0;    ///< units in all (0 if unknown)
  std::string_view stage;   ///< what is being done, e.g. "integrated_gradients"
};

/// Called as work advances; return false to cancel (the method then throws glassbox::cancelled).
using progress_callback = std::function<bool(const progress&)>;

namespace detail {

/// Reports progress and checks for cancellation; throws glassbox::cancelled when asked to stop.
class progress_reporter {
 public:
  /// A reporter for `total` units of work in `stage`, calling `callback` and watching `stop`.
  template <class = void>
  progress_reporter(const progress_callback& callback, std::stop_token stop, std::size_t total, std::string_view stage)
      : callback_(callback), stop_(std::move(stop)), total_(total), stage_(stage) {}

  /// Records `units` more finished units, reports them, and throws if cancellation was requested.
  template <class = void>
  void advance(std::size_t units = 1) {
    done_ += units;
    check();
  }

  /// Throws glassbox::cancelled if the stop token or the callback asks to stop.
  template <class = void>
  void check() const {
    if (stop_.stop_requested()) fail<cancelled>("glassbox::{}: cancelled after {} of {} units", stage_, done_, total_);
    if (callback_ && !callback_(progress{done_, total_, stage_}))
      fail<cancelled>("glassbox::{}: cancelled by the progress callback after {} of {} units", stage_, done_, total_);
  }

  /// Units finished so far.
  std::size_t done() const { return done_; }

 private:
  const progress_callback& callback_;
  std::stop_token stop_;
  std::size_t total_;
  std::size_t done_ = 0;
  std::string_view stage_;
};

}  // namespace detail
}  // namespace glassbox

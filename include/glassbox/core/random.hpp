// glassbox: the seeded random number generator every randomized method uses.
//
// The standard library's distributions are implementation-defined, so the same seed could give
// other numbers on another compiler. glassbox draws everything from its own xoshiro256**
// generator and its own distributions: the same seed gives bit-identical output everywhere.
// `fork(i)` derives an independent stream per work item, so parallel runs do not depend on the
// thread count.
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>
#include <iterator>
#include <limits>
#include <numbers>
#include <utility>

namespace glassbox {

/// A seeded xoshiro256** generator with portable distributions; a UniformRandomBitGenerator.
class rng {
 public:
  using result_type = std::uint64_t;

  /// Seeds the generator; the same seed gives the same sequence on every platform.
  template <class = void>
  explicit rng(std::uint64_t seed = 0) : seed_(seed) { seed_state(seed); }

  /// The seed this generator (or the stream it was forked from) was made with.
  std::uint64_t seed() const { return seed_; }

  /// An independent generator for work item `stream`, a function of (seed, stream) only.
  template <class = void>
  rng fork(std::uint64_t stream) const {
    rng child(seed_);
    std::uint64_t x = seed_ ^ (0x9E3779B97F4A7C15ULL * (stream + 1));
    for (auto& s : child.s_) s = splitmix64(x);
    return child;
  }

  static constexpr result_type min() { return 0; }
  static constexpr result_type max() { return std::numeric_limits<result_type>::max(); }

  /// The next 64 random bits.
  template <class = void>
  result_type operator()() { return next(); }

  /// The next 64 random bits (xoshiro256**, Blackman & Vigna 2018).
  template <class = void>
  std::uint64_t next() {
    const std::uint64_t result = std::rotl(s_[1] * 5, 7) * 9;
    const std::uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = std::rotl(s_[3], 45);
    return result;
  }

  /// A uniform double in [0, 1) with 53 random bits.
  template <class = void>
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

  /// A uniform double in [a, b).
  template <class = void>
  double uniform(double a, double b) { return a + (b - a) * uniform(); }

  /// A standard normal draw (Box-Muller, one value per call, so a draw depends only on the stream position).
  template <class = void>
  double normal() {
    double u1 = uniform();
    while (u1 <= 0.0) u1 = uniform();
    const double u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
  }

  /// A normal draw with mean mu and standard deviation sigma.
  template <class = void>
  double normal(double mu, double sigma) { return mu + sigma * normal(); }

  /// A uniform integer in [0, n), unbiased (Lemire 2019); n must be > 0.
  template <class = void>
  std::uint64_t below(std::uint64_t n) {
    __uint128_t m = static_cast<__uint128_t>(next()) * n;
    auto low = static_cast<std::uint64_t>(m);
    if (low < n) {
      const std::uint64_t threshold = (0 - n) % n;
      while (low < threshold) {
        m = static_cast<__uint128_t>(next()) * n;
        low = static_cast<std::uint64_t>(m);
      }
    }
    return static_cast<std::uint64_t>(m >> 64);
  }

  /// True with probability p.
  template <class = void>
  bool bernoulli(double p) { return uniform() < p; }

  /// Shuffles [first, last) uniformly (Fisher-Yates with below()).
  template <std::random_access_iterator It>
  void shuffle(It first, It last) {
    const auto n = static_cast<std::uint64_t>(last - first);
    for (std::uint64_t i = n; i > 1; --i) {
      const auto j = below(i);
      using std::swap;
      swap(first[static_cast<std::ptrdiff_t>(i - 1)], first[static_cast<std::ptrdiff_t>(j)]);
    }
  }

 private:
  template <class = void>
  static std::uint64_t splitmix64(std::uint64_t& x) {
    std::uint64_t z = (x += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }
  template <class = void>
  void seed_state(std::uint64_t seed) {
    std::uint64_t x = seed;
    for (auto& s : s_) s = splitmix64(x);
  }

  std::uint64_t seed_;
  std::uint64_t s_[4]{};
};

}  // namespace glassbox

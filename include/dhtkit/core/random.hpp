/// @file
/// The random engine every dhtkit core and the simulator draw from.
///
/// Protocol cores take their randomness from an engine the driver seeds (the
/// one rule: no global random source), so a seed replays a run exactly. That
/// needs more than a seed: std::mt19937 is portable but
/// std::uniform_int_distribution and friends are not -- each standard library
/// implements them differently, so a seed would replay differently under
/// libstdc++ and libc++. dhtkit therefore uses a fixed algorithm
/// (xoshiro256**, seeded through SplitMix64) and draws built from integer
/// arithmetic only -- no floating point on the hot path, so no rounding or
/// fused-multiply-add differences between CPUs either.
///
/// @code
/// dhtkit::random_engine rng(/*seed=*/42);
/// std::uint64_t die = rng.below(6) + 1;                       // 1..6
/// const auto one_in_ten = dhtkit::probability_threshold(0.1);  // computed once
/// bool lost = rng.chance(one_in_ten);
/// @endcode
#pragma once

#include <cstdint>

#include "dhtkit/core/hash.hpp"

namespace dhtkit {

/// The random engine: xoshiro256** seeded through SplitMix64, so a seed gives the
/// same draws on every platform and standard library.
class random_engine {
 public:
  explicit random_engine(std::uint64_t seed) noexcept {
    // SplitMix64 expands the seed so that nearby seeds give unrelated states
    // and the state is never all zero.
    std::uint64_t x = seed;
    for (auto& word : s_) {
      word = mix64(x);
      x += 0x9E3779B97F4A7C15ULL;
    }
  }

  /// xoshiro256** (Blackman and Vigna, 2018).
  std::uint64_t next() noexcept {
    const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const std::uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }

  /// Uniform in [0, bound); 0 when bound is 0. Lemire's multiply-high without
  /// the rejection step: the bias is below bound / 2^64, far under anything a
  /// simulation can observe, and it keeps one draw per call.
  std::uint64_t below(std::uint64_t bound) noexcept { return mul_high(next(), bound); }

  /// True with the probability encoded by `threshold` (see probability_threshold).
  bool chance(std::uint64_t threshold) noexcept { return (next() >> 11) < threshold; }

 private:
  static constexpr std::uint64_t rotl(std::uint64_t x, int r) noexcept { return (x << r) | (x >> (64 - r)); }

  // The high 64 bits of a 64x64 product, portably (no __int128).
  static constexpr std::uint64_t mul_high(std::uint64_t a, std::uint64_t b) noexcept {
    const std::uint64_t a_lo = a & 0xFFFFFFFFULL;
    const std::uint64_t a_hi = a >> 32;
    const std::uint64_t b_lo = b & 0xFFFFFFFFULL;
    const std::uint64_t b_hi = b >> 32;
    const std::uint64_t lo_lo = a_lo * b_lo;
    const std::uint64_t hi_lo = a_hi * b_lo;
    const std::uint64_t lo_hi = a_lo * b_hi;
    const std::uint64_t hi_hi = a_hi * b_hi;
    const std::uint64_t cross = (lo_lo >> 32) + (hi_lo & 0xFFFFFFFFULL) + lo_hi;
    return hi_hi + (hi_lo >> 32) + (cross >> 32);
  }

  std::uint64_t s_[4];
};

/// A probability in [0, 1] as a 53-bit integer threshold, computed once at
/// configuration time: p * 2^53 is exact in binary floating point, so the
/// threshold (and hence every draw) is the same on every platform.
inline std::uint64_t probability_threshold(double p) noexcept {
  if (!(p > 0.0)) return 0;
  if (p >= 1.0) return std::uint64_t{1} << 53;
  return static_cast<std::uint64_t>(p * 9007199254740992.0);
}

}  // namespace dhtkit

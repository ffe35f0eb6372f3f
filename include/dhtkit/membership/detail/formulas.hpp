// The small pure formulas of SWIM, memberlist and Lifeguard, as functions so
// they can be tested on their own (tests/membership_test.cpp).
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>

#include "dhtkit/core/time.hpp"

namespace dhtkit::membership::detail {

// Retransmit limit of one update: lambda x ceil(log10(n + 1)) (memberlist's
// retransmitLimit), n = the live members.
inline std::uint32_t retransmit_limit(std::size_t multiplier, std::size_t n) noexcept {
  const double scale = std::ceil(std::log10(static_cast<double>(n) + 1.0));
  return static_cast<std::uint32_t>(static_cast<double>(multiplier) * scale);
}

// Suspicion timeout floor: multiplier x max(1, log10 n) x interval
// (memberlist's suspicionTimeout).
inline duration suspicion_min_timeout(std::size_t multiplier, std::size_t n, duration interval) noexcept {
  const double node_scale = std::max(1.0, std::log10(std::max(1.0, static_cast<double>(n))));
  const double ns = static_cast<double>(multiplier) * node_scale * static_cast<double>(interval.count());
  return duration(static_cast<duration::rep>(ns));
}

// Lifeguard's dynamic suspicion timeout with c independent confirmations out
// of k expected: max(min, max - (max - min) log(c + 1) / log(k + 1)); min when
// k < 1 (nobody can confirm).
inline duration suspicion_timeout(duration min, duration max, std::size_t c, std::size_t k) noexcept {
  if (k < 1 || max <= min) return min;
  const double frac = std::log(static_cast<double>(c) + 1.0) / std::log(static_cast<double>(k) + 1.0);
  const double raw = static_cast<double>(max.count()) - static_cast<double>((max - min).count()) * frac;
  const auto t = duration(static_cast<duration::rep>(std::floor(raw)));
  return std::max(min, t);
}

// memberlist's pushPullScale: above 32 members the push-pull interval grows
// by ceil(log2(n / 32)) + 1, so full-state traffic stays flat in n.
inline duration push_pull_scale(duration interval, std::size_t n) noexcept {
  constexpr double threshold = 32;
  if (static_cast<double>(n) <= threshold) return interval;
  const double multiplier = std::ceil(std::log2(static_cast<double>(n)) - std::log2(threshold)) + 1.0;
  return duration(static_cast<duration::rep>(multiplier * static_cast<double>(interval.count())));
}

// Lifeguard's local health ("awareness"): a score in [0, max - 1]; probe
// interval and timeouts are multiplied by score + 1. Failed probes without the
// expected nacks and refutations of our own suspicion raise it, acks lower it.
class awareness {
 public:
  explicit awareness(std::size_t max_multiplier) noexcept : max_(static_cast<int>(max_multiplier)) {}

  void apply_delta(int delta) noexcept { score_ = std::clamp(score_ + delta, 0, max_ - 1); }
  int score() const noexcept { return score_; }
  duration scale(duration d) const noexcept { return d * (score_ + 1); }

 private:
  int max_;
  int score_ = 0;
};

}  // namespace dhtkit::membership::detail

// A hybrid logical clock (Kulkarni et al., 2014) for the stamps of cache
// writes: the wall clock's milliseconds in the high 48 bits, a counter in the
// low 16. A stamp from this clock is above every stamp it issued or observed
// before, and close to the wall clock, so "the later write wins" means what
// it says between nodes whose clocks agree, and never lets a coordinator
// order its write before one it had read.
//
//   hybrid_clock hlc;
//   std::uint64_t s = hlc.now(wall_ms);   // a fresh stamp
//   hlc.observe(other_stamp);             // a stamp read from a replica
//   std::uint64_t ms = hybrid_clock::millis_of(s);
#pragma once

#include <algorithm>
#include <cstdint>

namespace dhtkit_cache::cluster {

class hybrid_clock {
 public:
  static constexpr int logical_bits = 16;

  // A stamp above every earlier one (wall_ms: the unix time in milliseconds).
  std::uint64_t now(std::uint64_t wall_ms) {
    last_ = std::max(last_ + 1, wall_ms << logical_bits);
    return last_;
  }
  // Later stamps from this clock are above `stamp`.
  void observe(std::uint64_t stamp) { last_ = std::max(last_, stamp); }
  std::uint64_t last() const { return last_; }

  static std::uint64_t millis_of(std::uint64_t stamp) { return stamp >> logical_bits; }

 private:
  std::uint64_t last_ = 0;
};

}  // namespace dhtkit_cache::cluster

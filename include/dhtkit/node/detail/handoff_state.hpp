// The handoff manager's in-memory state: sessions, outbound units, the rate
// limiter, and the helpers that measure positions inside a unit. Internal.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <vector>

#include "dhtkit/core/node_id.hpp"
#include "dhtkit/core/time.hpp"
#include "dhtkit/node/placement.hpp"

namespace dhtkit::detail::handoff {

// Offsets from a unit's begin make wrap-around units ordinary: a unit is
// [0, size) in offsets. A whole-ring unit (begin == end) is never streamed.
inline std::uint64_t unit_size(const key_range& r) noexcept { return r.end - r.begin; }
inline std::uint64_t offset_in(const key_range& r, std::uint64_t pos) noexcept { return pos - r.begin; }
// [inner.begin, inner.end) lies inside outer (both non-empty, not whole-ring).
inline bool range_inside(const key_range& outer, const key_range& inner) noexcept {
  const std::uint64_t size = unit_size(inner);
  if (size == 0 || unit_size(outer) == 0) return false;
  const std::uint64_t first = offset_in(outer, inner.begin);
  return first < unit_size(outer) && size <= unit_size(outer) - first;
}

struct in_flight {
  std::uint32_t seq = 0;
  std::uint64_t through_off = 0;       // offset covered once acknowledged (range chunks)
  std::vector<std::uint64_t> dirty{};  // dirty positions it carries (dirty chunks)
  std::size_t bytes = 0;
  bool final = false;
  time_point sent_at{};
};

enum class out_phase { offered, streaming };

struct out_session {
  std::uint64_t id = 0;
  key_range range{};
  node_id target{};
  std::uint64_t generation = 0;
  out_phase phase = out_phase::offered;
  time_point offered_at{};
  std::uint32_t retries = 0;
  std::uint64_t cursor = 0;  // offset of the next position to read
  std::uint64_t acked = 0;   // offset the receiver covered
  std::uint32_t next_seq = 1;
  std::uint32_t credit = 1;
  std::deque<in_flight> flight{};
  std::set<std::uint64_t> dirty_sent{};  // dirty positions in flight or acknowledged
  bool final_sent = false;
  std::size_t bytes_in_flight() const noexcept {
    std::size_t n = 0;
    for (const auto& c : flight) n += c.bytes;
    return n;
  }
};

struct in_session {
  std::uint64_t id = 0;
  key_range range{};
  node_id source{};
  std::uint64_t generation = 0;
  std::uint64_t covered = 0;  // offset
};

// A unit this node streams: a leaver's unit (dropped once every live new
// holder completed) or a copier's (a fixed list of joiners, never dropped).
struct out_unit {
  key_range range{};
  bool copier = false;
  std::vector<node_id> copier_targets{};
  std::set<node_id> done{};
  std::map<node_id, time_point> retry_at{};
};

// Handoff bytes per second over all sessions. A chunk goes when the bucket is
// not in debt; its size is then taken (a large chunk may leave it in debt), so
// the long-run rate holds and a chunk larger than the burst still goes.
class token_bucket {
 public:
  void configure(std::uint64_t rate, std::size_t burst) {
    rate_ = rate;
    burst_ = static_cast<double>(burst);
    tokens_ = burst_;
  }
  bool unlimited() const noexcept { return rate_ == 0; }
  bool in_debt() const noexcept { return !unlimited() && tokens_ <= 0; }
  bool can_send(time_point now) {
    refill(now);
    return unlimited() || tokens_ > 0;
  }
  void take(std::size_t bytes) {
    if (!unlimited()) tokens_ -= static_cast<double>(bytes);
  }
  // When can_send becomes true (as of the last can_send).
  time_point ready_at() const {
    if (unlimited() || tokens_ > 0) return last_;
    const double secs = (-tokens_ + 1) / static_cast<double>(rate_);
    return last_ + std::chrono::duration_cast<duration>(std::chrono::duration<double>(secs)) + duration(1);
  }

 private:
  void refill(time_point now) {
    if (!started_) {
      started_ = true;
      last_ = now;
    }
    if (now <= last_) return;
    const double secs = std::chrono::duration<double>(now - last_).count();
    tokens_ = std::min(burst_, tokens_ + secs * static_cast<double>(rate_));
    last_ = now;
  }
  std::uint64_t rate_ = 0;
  double burst_ = 0;
  double tokens_ = 0;
  bool started_ = false;
  time_point last_{};
};

}  // namespace dhtkit::detail::handoff

// The engine's timers (engine.hpp): forwarded requests and flushes past
// their deadline, the delayed flush coming due, the young period ending, the
// stats snapshot and the expiry sweep.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "cluster/engine.hpp"

namespace dhtkit_cache::cluster {

// Every 100 ms: forwards and flushes past their deadline fail; twice a
// second the stats snapshot is refreshed; every 2 s expired and flushed
// records are removed from storage.
template <class Node>
void engine<Node>::tick() {
  const auto now = std::chrono::steady_clock::now();
  for (auto it = forwards_.begin(); it != forwards_.end();) {
    if (now < it->second.deadline) {
      ++it;
      continue;
    }
    ++state_.requests_failed;
    auto p = std::move(it->second);
    it = forwards_.erase(it);
    p.done(p.noreply ? std::string() : "SERVER_ERROR no reply from the key's coordinator in time\r\n");
  }
  for (auto it = flushes_.begin(); it != flushes_.end();) {
    if (now < it->second.deadline) {
      ++it;
      continue;
    }
    auto p = std::move(it->second);
    it = flushes_.erase(it);
    const std::size_t applied = p.members - p.waiting;
    p.done(p.noreply ? std::string()
                     : "SERVER_ERROR flush_all applied on " + std::to_string(applied) + " of " +
                           std::to_string(p.members) + " nodes\r\n");
  }
  if (state_.young && now >= young_until_) state_.young = false;
  if (state_.membership_changed && now >= membership_changed_until_) state_.membership_changed = false;
  if (delayed_flush_ && delayed_flush_->second <= coordinator_state::wall_ms()) {
    state_.applied_flush = std::max(state_.applied_flush, delayed_flush_->first);
    delayed_flush_.reset();
  }
  if (++ticks_ % 5 == 0) refresh_snapshot();
  if (ticks_ % 20 == 0) sweep();
  timer_.expires_after(std::chrono::milliseconds(100));
  timer_.async_wait([this](std::error_code ec) {
    if (!ec) tick();
  });
}

// Removes keys all of whose live versions are expired or flushed (every
// replica does the same at the same absolute time). Headers only: no value
// is copied.
template <class Node>
void engine<Node>::sweep() {
  const std::int64_t now_unix = static_cast<std::int64_t>(coordinator_state::wall_ms() / 1000);
  std::vector<std::string> gone;
  storage_.for_each_in_range(0, 0, [&](std::string_view key, const dhtkit::versioned_entry& e) {
    bool any_live = false, all_gone = true;
    for (const auto& v : e.siblings()) {
      if (v.tombstone) continue;
      any_live = true;
      const auto h = peek_record(v.value, opt_.max_item_size);
      cache_record r;
      if (h) {
        r.stamp = h->stamp;
        r.exptime_unix = h->exptime_unix;
      }
      all_gone = all_gone && h && state_.gone(r, now_unix);
    }
    if (any_live && all_gone) gone.emplace_back(key);
  });
  for (const auto& k : gone) storage_.remove(k);
  expired_removed_ += gone.size();
}

}  // namespace dhtkit_cache::cluster

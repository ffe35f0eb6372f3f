// The dissemination queue: at most one pending update per member (a newer
// update about a member replaces the older one), handed out freshest first
// (fewest transmissions, then newest), each at most `limit` times, packed
// into a byte budget. memberlist's TransmitLimitedQueue, bounded.
#pragma once

#include <cassert>
#include <cstddef>
#include <cstdint>
#include <set>
#include <tuple>
#include <unordered_map>
#include <utility>
#include <vector>

#include "dhtkit/core/node_id.hpp"

namespace dhtkit::membership::detail {

template <class Update>
class broadcast_queue {
 public:
  explicit broadcast_queue(std::size_t max_entries) : max_entries_(max_entries) {}

  // Queues `update` about `subject` (encoded_size bytes on the wire),
  // replacing any pending update about the same subject.
  void push(node_id subject, Update update, std::size_t encoded_size) {
    if (auto it = entries_.find(subject); it != entries_.end()) {
      order_.erase(key_of(subject, it->second));
      entries_.erase(it);
    }
    if (entries_.size() >= max_entries_) {
      // Full: the most transmitted, oldest update has done the most of its work.
      auto last = std::prev(order_.end());
      entries_.erase(std::get<2>(*last));
      order_.erase(last);
      ++evicted_;
    }
    entry e{std::move(update), encoded_size, 0, ++next_id_};
    order_.insert(key_of(subject, e));
    entries_.emplace(subject, std::move(e));
  }

  // Appends to `out` updates totalling at most `budget` bytes, freshest first;
  // each one handed out counts one transmission and is retired at `limit`.
  // Returns the bytes used.
  std::size_t take(std::size_t budget, std::uint32_t limit, std::vector<Update>& out) {
    std::size_t used = 0;
    taken_.clear();
    for (const auto& k : order_) {
      if (budget - used < min_size_) break;
      const entry& e = entries_.at(std::get<2>(k));
      if (e.size > budget - used) continue;
      used += e.size;
      out.push_back(e.update);
      taken_.push_back(std::get<2>(k));
    }
    for (node_id subject : taken_) {
      auto it = entries_.find(subject);
      order_.erase(key_of(subject, it->second));
      if (++it->second.transmits >= limit) {
        entries_.erase(it);
      } else {
        order_.insert(key_of(subject, it->second));
      }
    }
    assert(order_.size() == entries_.size());
    return used;
  }

  // Smallest update that can exist: below it no more can fit (a speed-up only).
  void set_min_size(std::size_t n) noexcept { min_size_ = n; }
  // Drops the pending update about `subject`, if any.
  void erase(node_id subject) {
    if (auto it = entries_.find(subject); it != entries_.end()) {
      order_.erase(key_of(subject, it->second));
      entries_.erase(it);
    }
  }
  bool contains(node_id subject) const { return entries_.count(subject) != 0; }
  std::size_t size() const noexcept { return entries_.size(); }
  bool empty() const noexcept { return entries_.empty(); }
  std::uint64_t evicted() const noexcept { return evicted_; }

 private:
  struct entry {
    Update update;
    std::size_t size;
    std::uint32_t transmits;
    std::uint64_t id;  // insertion order: higher is newer
  };
  // (transmits ascending, newest first, subject)
  using key = std::tuple<std::uint32_t, std::uint64_t, node_id>;
  static key key_of(node_id subject, const entry& e) noexcept { return {e.transmits, ~e.id, subject}; }

  std::size_t max_entries_;
  std::size_t min_size_ = 1;
  std::unordered_map<node_id, entry> entries_;
  std::set<key> order_;
  std::vector<node_id> taken_;
  std::uint64_t next_id_ = 0;
  std::uint64_t evicted_ = 0;
};

}  // namespace dhtkit::membership::detail

/// @file
/// one_hop: the DHT node's default placement. Every node builds the same
/// consistent-hash ring from the same member set, as Dynamo and Cassandra do,
/// and answers "who holds this key" from a table, without asking anyone.
///
/// The ring (dhtkit::ring<node_id>, tokens_per_weight virtual nodes per unit
/// of weight) is cut into Q = 2^partition_bits equal partitions; partition p
/// is [p << (64 - bits), (p + 1) << (64 - bits)). Every key of a partition has
/// ONE preference list: the ring walk from the partition's first position
/// (ring::preference_list_at(partition_begin(p))), list_length long, computed
/// for every partition when the members change. This differs on purpose from
/// ring::preference_list(key), which walks from the key's own hash: a
/// partition is then a unit that moves whole, and the replica, anti-entropy
/// and handoff must all ask this placement, never a ring.
///
/// The ring, and so the table, depends on the member set alone (ids and
/// weights), never on the order membership reported them in or the order of
/// earlier changes: every node with the same set computes the same table
/// (fingerprint() is then equal). set_members() reports one range_move per
/// partition whose set of first n holders changed.
///
/// Memory: the table is Q x min(members, list_length) ids, 2^10 x 7 x 8 bytes
/// = 56 KiB by default; the history keeps up to history_versions earlier
/// tables' first n ids (4 x 2^10 x 3 x 8 = 96 KiB); the ring is about 10 bytes
/// per virtual node (64 KiB for 100 members of weight 1). set_members() builds
/// the new ring and table beside the old ones, so the peak is twice that.
/// Cost: set_members() is O(V) per member added or removed (V virtual nodes)
/// plus O(Q x list_length) for the table: one join to 1000 members of weight
/// 1 took about 2 ms, the first set of 1000 members 0.8 s (g++ -O2, one
/// core). Every lookup is O(list) after the key's hash.
///
/// Thread safety: const member functions may run concurrently; set_members()
/// and expire_history() need exclusive access.
///
/// @code
/// dhtkit::placement_config pc;                          // N = 3, 2^10 partitions
/// dhtkit::one_hop p{dhtkit::node_id{1}, pc};
/// std::vector<dhtkit::placement_member> members{{dhtkit::node_id{1}}, {dhtkit::node_id{2}},
///                                               {dhtkit::node_id{3}, 2}};   // weight 2
/// std::vector<dhtkit::range_move> moves;
/// p.set_members(members, moves, dhtkit::time_point{});  // moves: every partition, from nobody
/// const std::uint64_t pos = p.position("user:42");      // XXH64, as the storage hashes keys
/// auto replicas = p.preference_list(pos, 3);           // the partition's first 3 holders
/// bool mine = p.holds(dhtkit::node_id{1}, pos);
/// auto unit = p.unit_of(pos);                          // what a handoff of pos moves
/// @endcode
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <span>
#include <stdexcept>
#include <string_view>
#include <utility>
#include <vector>

#include "dhtkit/core/hash.hpp"
#include "dhtkit/core/node_id.hpp"
#include "dhtkit/core/time.hpp"
#include "dhtkit/node/detail/one_hop_table.hpp"
#include "dhtkit/node/placement.hpp"
#include "dhtkit/ring/ring.hpp"

namespace dhtkit {

/// The default placement: a consistent-hash ring built by every node from the
/// member set, with a per-partition table of preference lists (see one_hop.hpp).
class one_hop {
 public:
  /// A placement with no members (every list empty) at version 0. Throws
  /// std::invalid_argument if `config` is invalid (placement_config::validate).
  one_hop(node_id self, placement_config config)
      : self_(self), config_(validated(config)), ring_(ring_cfg()) {
    shift_ = 64 - config_.partition_bits;
    fingerprint_ = detail::one_hop_fingerprint(members_, config_);
  }

  /// The node this placement belongs to (it need not be a member).
  node_id self() const noexcept { return self_; }
  /// The configuration, as validated.
  const placement_config& config() const noexcept { return config_; }

  /// A key's position: XXH64 with seed 0, the replication storage's own hash
  /// (default_key_hash), so the storage's order is the placement's.
  std::uint64_t position(std::string_view key) const noexcept { return default_key_hash{}(key); }

  /// +1 per set_members() whose member list (ids and weights) differed.
  std::uint64_t version() const noexcept { return version_; }
  /// Equal on every node with the same members (ids and weights) and the same
  /// partition_bits, tokens_per_weight and n; never 0.
  std::uint64_t fingerprint() const noexcept { return fingerprint_; }
  /// The members, sorted by id.
  const std::vector<placement_member>& members() const noexcept { return members_; }

  /// Units are partitions: 2^partition_bits, whatever the members.
  std::size_t unit_count() const noexcept { return std::size_t{1} << config_.partition_bits; }
  /// The partition holding `pos`.
  std::size_t unit_index(std::uint64_t pos) const noexcept { return static_cast<std::size_t>(pos >> shift_); }
  /// The i-th partition, [i << (64 - bits), (i + 1) << (64 - bits)); the last
  /// one ends at 0 (the end of the ring). `i` is taken modulo unit_count().
  key_range unit_at(std::size_t i) const noexcept {
    const std::uint64_t p = static_cast<std::uint64_t>(i % unit_count());
    // (p + 1) << shift wraps to 0 for the last partition: shift_ < 64.
    return key_range{p << shift_, (p + 1) << shift_};
  }
  /// The partition holding `pos`.
  key_range unit_of(std::uint64_t pos) const noexcept { return unit_at(unit_index(pos)); }

  /// The whole cached list of partition i (i modulo unit_count()), without a
  /// copy: min(members, list_length) ids, in ring order. Valid until the next
  /// set_members().
  std::span<const node_id> list_at(std::size_t i) const noexcept {
    if (width_ == 0) return {};
    return std::span<const node_id>(cache_).subspan((i % unit_count()) * width_, width_);
  }
  /// The first min(n, list_length, members) ids of pos's partition list, no
  /// repeats, in ring order.
  std::vector<node_id> preference_list(std::uint64_t pos, std::size_t n) const {
    const auto list = list_at(unit_index(pos));
    const auto take = static_cast<std::ptrdiff_t>(std::min(n, list.size()));
    return std::vector<node_id>(list.begin(), list.begin() + take);
  }
  /// Whether `id` is among the first config().n holders of pos's partition.
  bool holds(node_id id, std::uint64_t pos) const noexcept {
    const auto first = holders(list_at(unit_index(pos)));
    return std::find(first.begin(), first.end(), id) != first.end();
  }
  /// Ids among the first n holders of pos's partition in a kept earlier table
  /// but not in the current first n: newest table first, no repeats. These
  /// may still hold the partition's data while a handoff is under way.
  std::vector<node_id> previous_holders(std::uint64_t pos) const {
    const std::size_t p = unit_index(pos);
    const auto now = holders(list_at(p));
    std::vector<node_id> out;
    for (auto h = history_.rbegin(); h != history_.rend(); ++h) {
      if (h->width == 0) continue;
      const auto first = std::span<const node_id>(h->first_n).subspan(p * h->width, h->width);
      for (const node_id& id : first) {
        if (std::find(now.begin(), now.end(), id) != now.end()) continue;
        if (std::find(out.begin(), out.end(), id) != out.end()) continue;
        out.push_back(id);
      }
    }
    return out;
  }

  /// Installs a member set: updates the ring to `members` (removing and
  /// adding only what differs), rebuilds the table from it, and appends to
  /// `moves` one range_move per partition whose set of first n holders
  /// changed (before: the old first n, after: the new first n, each in ring
  /// order), in partition order. Only the order changing (a
  /// weight change can do that) is no move: no data has to go anywhere. The
  /// replaced table's first n ids join the history, stamped `now` (when they
  /// stopped being current). The same list as now (in any order) changes
  /// nothing: no moves, same version. An empty list is allowed.
  ///
  /// Returns version(). Throws std::invalid_argument for a repeated id or a
  /// weight of 0, and std::length_error past the ring's bounds (65535 members,
  /// 2^22 virtual nodes); on any exception nothing changed and nothing was appended.
  std::uint64_t set_members(std::span<const placement_member> members, std::vector<range_move>& moves,
                            time_point now) {
    std::vector<placement_member> sorted = detail::one_hop_sorted(members);
    if (sorted == members_) return version_;

    ring<node_id> next_ring = detail::one_hop_ring(ring_, members_, sorted);
    const std::size_t next_width = std::min<std::size_t>(sorted.size(), config_.list_length);
    std::vector<node_id> next_cache = detail::one_hop_lists(next_ring, next_width);

    std::vector<range_move> found;
    for (std::size_t p = 0; p < unit_count(); ++p) {
      const auto before = holders(list_at(p));
      const auto after = holders(next_width, std::span<const node_id>(next_cache), p);
      if (detail::one_hop_same_holders(before, after)) continue;
      range_move m;
      m.range = unit_at(p);
      m.before.assign(before.begin(), before.end());
      m.after.assign(after.begin(), after.end());
      found.push_back(std::move(m));
    }

    // Everything that can throw happens before the first change below.
    const std::size_t kept = std::min<std::size_t>(width_, config_.n);
    history_entry retired{now, kept, detail::one_hop_prefixes(cache_, width_, kept)};
    const std::uint64_t next_fingerprint = detail::one_hop_fingerprint(sorted, config_);
    moves.reserve(moves.size() + found.size());

    // The first change, and push_back's strong guarantee covers it; from here
    // on nothing throws (moves of vectors, and `moves` has its room).
    // An empty table names no holder: keeping it would only take a slot.
    if (kept > 0) {
      history_.push_back(std::move(retired));
      if (history_.size() > config_.history_versions) history_.erase(history_.begin());
    }
    ring_ = std::move(next_ring);
    cache_ = std::move(next_cache);
    width_ = next_width;
    members_ = std::move(sorted);
    fingerprint_ = next_fingerprint;
    ++version_;
    std::move(found.begin(), found.end(), std::back_inserter(moves));
    return version_;
  }

  /// Forgets earlier tables retired before `before`: their holders are no
  /// longer named by previous_holders().
  void expire_history(time_point before) {
    std::erase_if(history_, [before](const history_entry& h) { return h.retired < before; });
  }
  /// Earlier tables kept (at most config().history_versions).
  std::size_t history_size() const noexcept { return history_.size(); }

 private:
  struct history_entry {
    time_point retired{};            // when set_members() replaced it
    std::size_t width = 0;           // ids kept per partition: min(members then, n)
    std::vector<node_id> first_n{};  // partition p at [p * width, (p + 1) * width)
  };

  static placement_config validated(const placement_config& c) {
    c.validate();
    return c;
  }
  ring_config ring_cfg() const {
    ring_config rc;
    rc.partitions = std::uint32_t{1} << config_.partition_bits;
    rc.vnodes_per_unit = config_.tokens_per_weight;
    // The table's owner must be the walk's first node: bounded loads would
    // move partitions off it.
    rc.bounded_loads = false;
    return rc;
  }
  std::span<const node_id> holders(std::span<const node_id> list) const noexcept {
    return list.first(std::min<std::size_t>(list.size(), config_.n));
  }
  std::span<const node_id> holders(std::size_t width, std::span<const node_id> lists,
                                   std::size_t p) const noexcept {
    if (width == 0) return {};
    return holders(lists.subspan(p * width, width));
  }

  node_id self_;
  placement_config config_;
  ring<node_id> ring_;
  unsigned shift_ = 54;
  std::uint64_t version_ = 0;
  std::uint64_t fingerprint_ = 0;
  std::vector<placement_member> members_{};
  std::size_t width_ = 0;                 // ids per partition in cache_: min(members, list_length)
  std::vector<node_id> cache_{};          // partition p's list at [p * width_, (p + 1) * width_)
  std::vector<history_entry> history_{};  // oldest first
};

static_assert(placement<one_hop>);

}  // namespace dhtkit

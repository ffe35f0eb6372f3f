/// @file
/// Chord placement: Chord's geometry as a dhtkit::placement, for large,
/// churning populations.
///
/// Every member is one point on the ring, at its id's value (weights are
/// ignored). A key at position k is owned by successor(k), the first member
/// id at or after k, wrapping past 2^64: a member holds (predecessor, self],
/// as in Chord (chord/router.hpp). A preference list is the owner and then the
/// next members clockwise, Chord's successor list.
///
/// With SWIM underneath, every node knows the whole member set, so this
/// placement computes every list locally from it, as one_hop does; the node
/// routes client operations through the Chord router's finger-table lookups
/// to find the owner. In this node Chord saves routing-table size and
/// messages per change, not membership size. What changes against one_hop:
///   - one point per node instead of tokens_per_weight virtual nodes, so
///     fewer, larger units: 2^partition_bits slices cut further only at the
///     M member arcs (at most 2^partition_bits + M units);
///   - a join moves only the units of the joiner's arc and of its n - 1
///     predecessors' arcs, one contiguous stretch (P_n, joiner], and a leave
///     the same stretch around the leaver; one_hop's moves are scattered over
///     the ring in about tokens_per_weight x n pieces;
///   - weights are ignored: every member gets one arc;
///   - loads are less even: arcs between M random points are exponentially
///     distributed, so the largest is about ln M times the mean (measured in
///     tests/chord_placement_test.cpp over 20 sets of 64 random ids: the
///     largest owned share is 3.2 to 6.6 times the mean, 4.5 on average,
///     against 1.2 to 1.5, 1.3 on average, for 64 virtual nodes per member).
///
/// Units: the ring is cut at every partition boundary (2^partition_bits equal
/// slices, as one_hop) and at every member's arc boundary id + 1, so every key
/// of a unit has the same preference list. Position 0 is always a partition
/// boundary, so unit 0 starts at 0, no unit wraps, and the last unit ends at
/// 0 (key_range's way of saying 2^64).
///
/// Memory: the sorted ids and the cuts, 8 x (2^partition_bits + 2M) bytes,
/// plus up to history_versions older id lists. set_members costs
/// O((2^partition_bits + M) (log M + n)); lookups O(log M + n).
///
/// @code
/// dhtkit::placement_config pc;   // N = 3, 2^10 partitions
/// dhtkit::chord_placement p{dhtkit::node_id{100}, pc};
/// std::vector<dhtkit::placement_member> members{
///     {dhtkit::node_id{100}}, {dhtkit::node_id{200}}, {dhtkit::node_id{300}}};
/// std::vector<dhtkit::range_move> moves;
/// p.set_members(members, moves, dhtkit::time_point{});
/// dhtkit::node_id owner = p.owner_of(150);           // 200: the first id at or after 150
/// auto list = p.preference_list(250, 2);              // 300, then 100 (wrapping)
/// bool mine = p.holds(dhtkit::node_id{100}, p.position("user:42"));
/// @endcode
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <span>
#include <stdexcept>
#include <string_view>
#include <vector>

#include "dhtkit/core/hash.hpp"
#include "dhtkit/core/node_id.hpp"
#include "dhtkit/core/time.hpp"
#include "dhtkit/node/detail/chord_placement_ring.hpp"
#include "dhtkit/node/placement.hpp"

namespace dhtkit {

/// Chord's ring of member ids as a placement: owner = successor(pos), lists =
/// successor lists, units = partitions cut at member arcs.
class chord_placement {
 public:
  /// The DHT node finds a key's owner through Chord's finger tables (a
  /// router lookup, O(log N) hops) before it coordinates an operation.
  static constexpr bool routes_lookups = true;

  /// Throws std::invalid_argument when `config` is invalid. Starts with no
  /// members, version 0.
  chord_placement(node_id self, placement_config config) : self_(self), config_(config) {
    config_.validate();
    cuts_ = detail::chord_ring::cuts(ids_, config_.partition_bits);
    fingerprint_ = detail::chord_ring::fingerprint(ids_, config_.n, config_.partition_bits);
  }

  /// The id this placement was built for (lists do not depend on it).
  node_id self() const noexcept { return self_; }
  /// The validated configuration.
  const placement_config& config() const noexcept { return config_; }

  /// The key's ring position: default_key_hash (XXH64, seed 0), the storage's hash.
  std::uint64_t position(std::string_view key) const noexcept { return default_key_hash{}(key); }

  /// +1 per set_members() that changed the id set; 0 before the first.
  std::uint64_t version() const noexcept { return version_; }

  /// Hash of the sorted ids, n and partition_bits: equal on nodes that agree.
  /// Weights and list_length do not take part (neither moves a key).
  std::uint64_t fingerprint() const noexcept { return fingerprint_; }

  /// The members, sorted by id, one per id, weights as last given.
  const std::vector<placement_member>& members() const noexcept { return members_; }
  /// How many distinct ids are members.
  std::size_t member_count() const noexcept { return ids_.size(); }

  /// successor(pos): the first member id at or after pos, wrapping. Throws
  /// std::logic_error when there are no members (nobody owns anything).
  node_id owner_of(std::uint64_t pos) const {
    if (ids_.empty()) throw std::logic_error("dhtkit::chord_placement::owner_of: no members");
    return ids_[detail::chord_ring::successor_index(ids_, pos)];
  }

  /// The owner of pos and the members after it clockwise: min(n,
  /// config().list_length, member_count()) ids, no repeats (as one_hop, lists
  /// stop at list_length).
  std::vector<node_id> preference_list(std::uint64_t pos, std::size_t n) const {
    return detail::chord_ring::list_at(ids_, pos, std::min<std::size_t>(n, config_.list_length));
  }

  /// `id` is among the first config().n of pos's list.
  bool holds(node_id id, std::uint64_t pos) const noexcept {
    return detail::chord_ring::in_list(ids_, pos, config_.n, id);
  }

  /// The unit holding pos, in O(log M) (no search over the cuts).
  key_range unit_of(std::uint64_t pos) const noexcept {
    return detail::chord_ring::unit_of(ids_, pos, config_.partition_bits);
  }

  /// 2^partition_bits plus the arc boundaries that fall inside a partition.
  std::size_t unit_count() const noexcept { return cuts_.size(); }

  /// The i-th unit clockwise from position 0 (unit 0 starts at 0). Throws
  /// std::out_of_range when i >= unit_count().
  key_range unit_at(std::size_t i) const {
    if (i >= cuts_.size()) throw std::out_of_range("dhtkit::chord_placement::unit_at: no such unit");
    return key_range{cuts_[i], i + 1 < cuts_.size() ? cuts_[i + 1] : 0};
  }

  /// Ids among the first n holders of pos in a kept older member set but not
  /// now: newest set first, each id once.
  std::vector<node_id> previous_holders(std::uint64_t pos) const {
    std::vector<node_id> out;
    for (const auto& past : history_) {
      for (const node_id& id : detail::chord_ring::list_at(past.ids, pos, config_.n)) {
        if (holds(id, pos) || std::find(out.begin(), out.end(), id) != out.end()) continue;
        out.push_back(id);
      }
    }
    return out;
  }

  /// Makes `members` the member set (any order; a repeated id counts once,
  /// with its first weight). When the id set changed: appends a range_move
  /// for every piece of the ring between consecutive cuts, old and new
  /// together, whose first n holders changed, in ascending position; keeps
  /// the old set (when it had members) as history replaced at `now`; and
  /// bumps version(). A change of weights alone moves nothing and keeps the
  /// version. Returns version().
  std::uint64_t set_members(std::span<const placement_member> members, std::vector<range_move>& moves,
                            time_point now) {
    std::vector<placement_member> sorted(members.begin(), members.end());
    std::stable_sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) { return a.id < b.id; });
    sorted.erase(
        std::unique(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) { return a.id == b.id; }),
        sorted.end());
    std::vector<node_id> ids;
    ids.reserve(sorted.size());
    for (const auto& m : sorted) ids.push_back(m.id);
    if (ids == ids_) {
      members_ = std::move(sorted);
      return version_;
    }

    auto next_cuts = detail::chord_ring::cuts(ids, config_.partition_bits);
    append_moves(ids, next_cuts, moves);
    if (!ids_.empty()) {
      history_.insert(history_.begin(), detail::chord_ring::past_ring{std::move(ids_), now});
      if (history_.size() > config_.history_versions) history_.resize(config_.history_versions);
    }
    ids_ = std::move(ids);
    cuts_ = std::move(next_cuts);
    members_ = std::move(sorted);
    fingerprint_ = detail::chord_ring::fingerprint(ids_, config_.n, config_.partition_bits);
    return ++version_;
  }

  /// Forgets the kept member sets replaced before `before`: their holders
  /// stop being previous holders.
  void expire_history(time_point before) {
    std::erase_if(history_, [before](const auto& past) { return past.replaced < before; });
  }

  /// How many older member sets are kept now (at most config().history_versions).
  std::size_t history_size() const noexcept { return history_.size(); }

 private:
  // A piece between consecutive cuts of either set has one list under each,
  // so comparing the lists at its start decides it.
  void append_moves(const std::vector<node_id>& ids, const std::vector<std::uint64_t>& next_cuts,
                    std::vector<range_move>& moves) const {
    std::vector<std::uint64_t> both;
    both.reserve(cuts_.size() + next_cuts.size());
    std::set_union(cuts_.begin(), cuts_.end(), next_cuts.begin(), next_cuts.end(), std::back_inserter(both));
    for (std::size_t i = 0; i < both.size(); ++i) {
      const std::uint64_t begin = both[i];
      if (!detail::chord_ring::lists_differ(ids_, ids, begin, config_.n)) continue;
      range_move move;
      move.range = key_range{begin, i + 1 < both.size() ? both[i + 1] : 0};
      move.before = detail::chord_ring::list_at(ids_, begin, config_.n);
      move.after = detail::chord_ring::list_at(ids, begin, config_.n);
      moves.push_back(std::move(move));
    }
  }

  node_id self_;
  placement_config config_;
  std::vector<placement_member> members_{};               // sorted by id
  std::vector<node_id> ids_{};                            // members_' ids
  std::vector<std::uint64_t> cuts_{};                     // ascending; cuts_[0] == 0
  std::vector<detail::chord_ring::past_ring> history_{};  // newest first
  std::uint64_t version_ = 0;
  std::uint64_t fingerprint_ = 0;
};

static_assert(placement<chord_placement>);

}  // namespace dhtkit

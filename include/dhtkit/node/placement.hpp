/// @file
/// Placement: which nodes hold which keys, as the DHT node sees it.
///
/// A placement turns the live member set (from SWIM) into preference lists.
/// The node asks it, never a ring directly, so replication, anti-entropy and
/// handoff all agree on who holds what. Two placements model the concept:
/// dhtkit::one_hop (every node builds the consistent-hash ring and a per-
/// partition table, as Dynamo and Cassandra do: the default) and
/// dhtkit::chord_placement (Chord's ring of node ids, one point per node, the
/// owner found by finger-table lookups).
///
/// Rebalancing moves *units*: every key of a unit has the same preference
/// list, so a unit is handed off whole. set_members() reports how each unit's
/// list changed (range_move), which is what the handoff acts on.
///
/// @code
/// dhtkit::placement_config pc;                         // N = 3, 2^10 partitions
/// dhtkit::one_hop p{dhtkit::node_id{1}, pc};
/// std::vector<dhtkit::placement_member> members{{dhtkit::node_id{1}}, {dhtkit::node_id{2}}};
/// std::vector<dhtkit::range_move> moves;
/// p.set_members(members, moves, dhtkit::time_point{});
/// auto list = p.preference_list(p.position("user:42"), 3);   // both nodes, in ring order
/// @endcode
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "dhtkit/core/node_id.hpp"
#include "dhtkit/core/time.hpp"

namespace dhtkit {

/// A clockwise range of ring positions, [begin, end): it wraps past 2^64 when
/// end <= begin, and begin == end is the whole ring.
struct key_range {
  std::uint64_t begin = 0;
  std::uint64_t end = 0;

  constexpr bool contains(std::uint64_t pos) const noexcept {
    if (begin < end) return begin <= pos && pos < end;
    return pos >= begin || pos < end;  // wraps (or the whole ring when begin == end)
  }
  friend constexpr bool operator==(const key_range&, const key_range&) = default;
};

/// One member of the placement: its id and relative capacity.
struct placement_member {
  node_id id{};
  std::uint32_t weight = 1;  ///< relative share of the ring (one_hop's virtual nodes); chord ignores it
  friend constexpr bool operator==(const placement_member&, const placement_member&) = default;
};

/// How one unit's holders changed in a set_members() call.
struct range_move {
  key_range range{};              ///< the unit
  std::vector<node_id> before{};  ///< its first n holders before the change
  std::vector<node_id> after{};   ///< and after it
};

/// What every placement is built from.
struct placement_config {
  std::uint32_t n = 3;  ///< replicas per key: the length of a unit's holder list in range_move
  /// Longest preference list asked for (n plus sloppy-quorum fallbacks); lists
  /// are computed up to this length once per change.
  std::uint32_t list_length = 7;
  /// Units are 2^partition_bits equal slices of the ring (one_hop's partitions;
  /// chord splits them further at node ids). 2^10 keeps a handoff unit small
  /// (a thousandth of the data) while the table stays 56 KiB.
  std::uint32_t partition_bits = 10;
  std::uint32_t tokens_per_weight =
      64;                            ///< one_hop: virtual nodes per unit of weight (chord: 1 point per node)
  std::size_t history_versions = 4;  ///< earlier placements kept to name previous holders

  /// Throws std::invalid_argument naming the first bad field.
  void validate() const {
    auto fail = [](const char* what) {
      throw std::invalid_argument(std::string("dhtkit::placement_config: ") + what);
    };
    if (n < 1 || n > 64) fail("n must be in [1, 64]");
    if (list_length < n || list_length > 128) fail("list_length must be in [n, 128]");
    if (partition_bits < 1 || partition_bits > 16) fail("partition_bits must be in [1, 16]");
    if (tokens_per_weight < 1 || tokens_per_weight > 1024) fail("tokens_per_weight must be in [1, 1024]");
    if (history_versions < 1 || history_versions > 64) fail("history_versions must be in [1, 64]");
  }
};

/// What the DHT node needs from a placement (see placement.hpp).
///
/// position() must be the storage's key hash: the storage orders keys by it
/// and handoff streams units in that order.
template <class P>
concept placement = requires(P& p, const P& cp, std::uint64_t pos, std::size_t n, node_id id,
                             std::span<const placement_member> members, std::vector<range_move>& moves,
                             std::string_view key, time_point now, node_id self, placement_config config) {
  requires std::constructible_from<P, node_id, placement_config>;
  { cp.position(key) } -> std::same_as<std::uint64_t>;
  { cp.version() } -> std::same_as<std::uint64_t>;      ///< +1 per set_members() that changed anything
  { cp.fingerprint() } -> std::same_as<std::uint64_t>;  ///< equal on nodes that agree (member set and config)
  { cp.members() } -> std::same_as<const std::vector<placement_member>&>;  ///< sorted by id
  { cp.unit_of(pos) } -> std::same_as<key_range>;
  { cp.unit_count() } -> std::same_as<std::size_t>;  ///< units the ring is cut into now
  { cp.unit_at(n) } -> std::same_as<key_range>;      ///< the i-th unit, clockwise from position 0
  { cp.preference_list(pos, n) } -> std::same_as<std::vector<node_id>>;  ///< up to n ids, no repeats
  { cp.previous_holders(pos) } -> std::same_as<std::vector<node_id>>;  ///< held pos in kept history, not now
  { cp.holds(id, pos) } -> std::same_as<bool>;  ///< id is among the first config.n of pos's list
  {
    p.set_members(members, moves, now)
    } -> std::same_as<std::uint64_t>;  ///< appends moves; returns version()
};

}  // namespace dhtkit

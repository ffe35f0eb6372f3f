/// @file
/// What a replica asks about key placement: the replica_placement concept and
/// fixed_ring, the placement of a ring fixed when the replica is built.
///
/// A replica (replica.hpp) never looks at a ring itself: it asks its placement
/// where a key lives (position), who holds it (replicas, walk), whom to talk to
/// (is_member, peers) and, while ranges move between nodes, whether it may
/// answer reads (ready) and whom else to ask (read_extras). fixed_ring gives
/// the behaviour of a static cluster; the DHT node passes a small view of the
/// placement it owns and changes as members come and go.
///
/// @code
/// dhtkit::ring<dhtkit::node_id> ring;
/// for (std::uint64_t i = 1; i <= 3; ++i) (void)ring.add(dhtkit::node_id{i});
/// dhtkit::fixed_ring placement(dhtkit::node_id{1}, ring);  // throws if node 1 is not on the ring
/// const std::uint64_t pos = placement.position("cart:7");  // the storage's key hash
/// auto holders = placement.replicas(pos, 2);                 // the first 2 of the ring walk
/// auto walk = placement.walk(pos, 3);                        // holders first, then the third node
/// // placement.ready(pos) is always true and placement.read_extras(pos) always empty
/// @endcode
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "dhtkit/core/node_id.hpp"
#include "dhtkit/ring/ring.hpp"

namespace dhtkit {

namespace detail::repl {
// A list of node ids returned by value or by const reference: a placement that
// keeps a list may hand it out without copying.
template <class T>
concept node_list = std::same_as<std::remove_cvref_t<T>, std::vector<node_id>>;
}  // namespace detail::repl

/// What basic_replica asks its placement (see placement.hpp).
///
/// For a position pos (position(key), which must be the storage's key hash:
/// anti-entropy walks the storage by it):
///  - replicas(pos, n): the first n holders, fewer if there are fewer members;
///    the key's true replicas, which number and keep its writes;
///  - walk(pos, n): up to n nodes for sloppy quorum, the true replicas first
///    (replicas(pos, k) is a prefix of walk(pos, n) for k <= n), then the
///    fallbacks in the order they stand in;
///  - is_member(id): messages from id are taken (others are refused with
///    errc::not_a_member);
///  - peers(): every member, self included, in a stable order: the
///    anti-entropy partners (the replica skips itself);
///  - ready(pos): this node may answer reads for pos; a node still receiving a
///    range it newly holds answers errc::not_ready instead;
///  - read_extras(pos): previous holders of pos, asked in place of a target
///    that answered not_ready, before any fallback.
/// The replica keeps its placement by value and calls it on every request, so
/// P may be a cheap copyable view of a placement its owner changes; the lists
/// may be returned by value or by const reference.
template <class P>
concept replica_placement = std::copy_constructible<P> &&
    requires(const P& cp, std::string_view key, std::uint64_t pos, std::size_t n, node_id id) {
  { cp.position(key) } -> std::same_as<std::uint64_t>;
  { cp.replicas(pos, n) } -> detail::repl::node_list;
  { cp.walk(pos, n) } -> detail::repl::node_list;
  { cp.is_member(id) } -> std::same_as<bool>;
  { cp.peers() } -> detail::repl::node_list;
  { cp.ready(pos) } -> std::same_as<bool>;
  { cp.read_extras(pos) } -> detail::repl::node_list;
};

/// The placement of a static cluster: a ring of node ids fixed at construction
/// (what basic_replica's ring constructor wraps). Every node is always ready
/// and there are no previous holders.
class fixed_ring {
 public:
  /// Throws std::invalid_argument if `self` is not on `ring`.
  fixed_ring(node_id self, ::dhtkit::ring<node_id> ring)
      : self_(self), ring_(std::move(ring)), nodes_(ring_.nodes()) {
    if (!ring_.contains(self_)) throw std::invalid_argument("dhtkit::replica: self is not on the ring");
  }

  node_id self() const noexcept { return self_; }
  const ::dhtkit::ring<node_id>& ring() const noexcept { return ring_; }

  std::uint64_t position(std::string_view key) const noexcept { return ring_.hash(key); }
  std::vector<node_id> replicas(std::uint64_t pos, std::size_t n) const {
    auto pl = ring_.preference_list_at(pos, n);
    return pl ? std::move(*pl) : std::vector<node_id>{};
  }
  std::vector<node_id> walk(std::uint64_t pos, std::size_t n) const { return replicas(pos, n); }
  bool is_member(node_id id) const { return ring_.contains(id); }
  /// The ring's members in ascending order, self included; kept, not rebuilt,
  /// because the replica asks on every next_wakeup().
  const std::vector<node_id>& peers() const noexcept { return nodes_; }
  bool ready(std::uint64_t) const noexcept { return true; }
  std::vector<node_id> read_extras(std::uint64_t) const noexcept { return {}; }

 private:
  node_id self_;
  ::dhtkit::ring<node_id> ring_;
  std::vector<node_id> nodes_;
};

static_assert(replica_placement<fixed_ring>);

}  // namespace dhtkit

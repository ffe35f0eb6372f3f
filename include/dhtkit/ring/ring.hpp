/// @file
/// Consistent hashing: which node owns a key, and what moves when membership changes.
///
/// A ring places every node at many pseudo-random points ("virtual nodes") of the
/// 64-bit circle that key hashes live on; a key belongs to the first virtual node
/// clockwise from its hash. Adding or removing a node therefore moves only the
/// arcs next to that node's points -- about 1/N of the keys -- and every process
/// that knows the same membership computes the same ring, because a virtual
/// node's position is derived from the node itself (see ring_position), never
/// from the order nodes were added in, a random source or a local std::hash.
///
/// Two lookup paths answer the same question:
///   - owner(key): binary search over the virtual nodes, exact, O(log V);
///   - partition_owner(key): Dynamo "strategy 3" table of Q = 2^k equal
///     partitions, one array read after hashing the key, O(1). Partition p covers
///     [p << (64-k), (p+1) << (64-k)) and belongs to the ring owner of its first
///     point, so the table equals the ring at partition granularity (exactly, for
///     every key whose partition holds no virtual node between its start and the key).
///
/// With ring_config::bounded_loads the table also caps every node at
/// ceil((1+epsilon) * Q * weight / total_weight) partitions (consistent hashing
/// with bounded loads, Mirrokni, Thorup & Zadimoghaddam, arXiv:1608.01350): a
/// partition whose ring owner is full passes clockwise to the next node with room.
/// owner_bounded() applies the same rule to individual keys given their loads.
///
/// @code
/// dhtkit::ring<std::string> ring;                  // ring_config{} defaults
/// auto first = ring.add("cache-a");                // one range: the whole circle
/// auto heavy = ring.add("cache-b", 2);             // weight 2: twice cache-a's share
/// auto moved = ring.add("cache-c");                // exactly the arcs cache-c took, and from whom
/// // [begin, end) wraps if end < begin
/// for (const auto& m : *moved) hand_over(m.begin, m.end, *m.from, *m.to);
/// dhtkit::result<std::string> exact = ring.owner("user:42");           // O(log V)
/// dhtkit::result<std::string> fast = ring.partition_owner("user:42");  // O(1)
/// auto replicas = ring.preference_list("user:42", 3);   // 3 distinct nodes, ring order
/// if (!dhtkit::ring<std::string>{}.owner("k")) { /* errc::empty_ring */ }
/// @endcode
///
/// Thread safety: const member functions may run concurrently; add/remove need
/// exclusive access (copy the ring and swap it in to update it under readers).
#pragma once

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "dhtkit/core/error.hpp"
#include "dhtkit/core/hash.hpp"
#include "dhtkit/core/node_id.hpp"
#include "dhtkit/core/result.hpp"

namespace dhtkit {

/// Customization point: a node's 64-bit identity, from which the positions of
/// all its virtual nodes derive. It must depend only on the node's value and be
/// the same on every platform. Specialize it for your own node type:
///
/// @code
/// template <> struct dhtkit::ring_position<my_node> {
///   static std::uint64_t identity(const my_node& n) noexcept { return dhtkit::xxh64(n.name); }
/// };
/// @endcode
template <class Node>
struct ring_position {};

/// A node named by a string sits where XXH64 of its bytes says, so
/// ring<std::string> with "a" and ring<node_id> with node_id::from_name("a")
/// build the same circle.
template <>
struct ring_position<std::string> {
  static constexpr std::uint64_t identity(const std::string& name) noexcept { return xxh64(name); }
};

/// A node_id sits where its value says: node ids are already positions.
template <>
struct ring_position<node_id> {
  static constexpr std::uint64_t identity(const node_id& id) noexcept { return id.value; }
};

/// What a ring needs from its node type: a regular, ordered, std::hash-able value
/// with a ring_position.
template <class N>
concept ring_node = std::regular<N> && std::totally_ordered<N> && requires(const N& n) {
  { std::hash<N>{}(n) } -> std::convertible_to<std::size_t>;
  { ring_position<N>::identity(n) } -> std::same_as<std::uint64_t>;
};

namespace detail {

// Virtual node i of a node with identity `id` sits at the i-th output of the
// SplitMix64 sequence seeded with mix64(id): well spread even for identities
// that differ in one bit (node_id{1}, node_id{2}), and cheap to compute.
constexpr std::uint64_t vnode_token(std::uint64_t id, std::uint32_t i) noexcept {
  return mix64(mix64(id) + 0x9E3779B97F4A7C15ULL * i);
}

}  // namespace detail

/// Where virtual node `index` of `node` sits on the circle.
template <ring_node Node>
constexpr std::uint64_t vnode_position(const Node& node, std::uint32_t index) noexcept {
  return detail::vnode_token(ring_position<Node>::identity(node), index);
}

/// Configuration of a ring: virtual nodes, the partition table and its bounds.
struct ring_config {
  /// Virtual nodes per unit of weight. 160 is ketama's choice: a node's share of
  /// the circle then deviates from its fair share by about 1/sqrt(160) = 8%.
  std::uint32_t vnodes_per_unit = 160;
  /// Weight of a node added without one. Must be positive.
  std::uint32_t default_weight = 1;
  /// Q, the number of partitions in the O(1) lookup table: a power of two in
  /// [2, 2^24]. 2^16 two-byte entries is 128 KiB, small enough to stay in L2, and
  /// still 65 partitions per node at 1000 nodes.
  std::uint32_t partitions = 1u << 16;
  /// Build the partition table with bounded loads (cap per node below) instead
  /// of plain ring ownership. Off by default: bounded loads trade the table's
  /// agreement with owner() for balance.
  bool bounded_loads = false;
  /// epsilon of bounded loads: no node holds more than ceil((1+epsilon) * its
  /// fair share) partitions. Must be > 0. 0.25 keeps the maximum within 25% of
  /// the mean while moving few partitions off their ring owner.
  double load_epsilon = 0.25;
  /// At most this many nodes (table entries are 16-bit, so at most 65535).
  std::uint32_t max_nodes = 65535;
  /// At most this many virtual nodes in total (about 10 bytes each), so a huge
  /// weight is refused instead of exhausting memory. 2^22 covers 26000 nodes of weight 1.
  std::uint32_t max_vnodes = 1u << 22;
};

namespace detail {

inline void validate(const ring_config& c) {
  auto fail = [](const char* what) {
    throw std::invalid_argument(std::string("dhtkit::ring_config: ") + what);
  };
  if (c.vnodes_per_unit == 0) fail("vnodes_per_unit must be at least 1");
  if (c.default_weight == 0) fail("default_weight must be at least 1");
  if (c.partitions < 2 || c.partitions > (1u << 24) || (c.partitions & (c.partitions - 1)) != 0)
    fail("partitions must be a power of two in [2, 2^24]");
  if (!(c.load_epsilon > 0) || !std::isfinite(c.load_epsilon))
    fail("load_epsilon must be a finite number > 0");
  if (c.max_nodes == 0 || c.max_nodes > 65535) fail("max_nodes must be in [1, 65535]");
  if (c.max_vnodes == 0 || c.max_vnodes > (1u << 28)) fail("max_vnodes must be in [1, 2^28]");
  if (std::uint64_t{c.default_weight} * c.vnodes_per_unit > c.max_vnodes)
    fail("default_weight * vnodes_per_unit exceeds max_vnodes: no node could be added");
}

// ceil((1 + epsilon) * share * weight / total_weight), at least 1: the bounded-load cap.
inline std::uint64_t load_cap(double epsilon, std::uint64_t share, std::uint64_t weight,
                              std::uint64_t total_weight) {
  const double exact = (1.0 + epsilon) * static_cast<double>(share) * static_cast<double>(weight) /
                       static_cast<double>(total_weight);
  const double c = std::ceil(exact);
  if (c >= 1.8e19) return std::numeric_limits<std::uint64_t>::max();
  return std::max<std::uint64_t>(1, static_cast<std::uint64_t>(c));
}

// First index i with tokens[i] > x, or size() if none; branch-free so the
// search costs log2(V) dependent loads and no mispredictions.
inline std::size_t upper_bound(const std::vector<std::uint64_t>& tokens, std::uint64_t x) noexcept {
  const std::uint64_t* base = tokens.data();
  std::size_t n = tokens.size();
  if (n == 0) return 0;
  while (n > 1) {
    const std::size_t half = n / 2;
    base = (base[half - 1] <= x) ? base + half : base;
    n -= half;
  }
  return static_cast<std::size_t>(base - tokens.data()) + (*base <= x ? 1 : 0);
}

}  // namespace detail

/// An arc of the circle that changed owner: [begin, end) going clockwise, so
/// end < begin wraps through zero and begin == end is the whole circle. `from`
/// is empty only when the ring was empty before (the first node takes
/// everything); `to` only when it became empty (the last node left).
template <class Node>
struct moved_range {
  std::uint64_t begin = 0;
  std::uint64_t end = 0;
  std::optional<Node> from;
  std::optional<Node> to;

  constexpr bool contains(std::uint64_t position) const noexcept {
    if (begin < end) return position >= begin && position < end;
    if (begin > end) return position >= begin || position < end;
    return true;
  }

  friend bool operator==(const moved_range&, const moved_range&) = default;
};

/// A consistent-hash ring of Node values with virtual nodes and an O(1)
/// partition table (see ring.hpp).
template <class Node = node_id, class Hash = default_key_hash>
class ring {
  static_assert(ring_node<Node>,
                "dhtkit::ring<Node>: Node must be regular, totally ordered, std::hash-able, and have a "
                "dhtkit::ring_position<Node> specialization giving its 64-bit identity "
                "(provided for std::string and dhtkit::node_id)");
  static_assert(key_hash<Hash>,
                "dhtkit::ring<Node, Hash>: Hash must be copyable and map std::string_view to std::uint64_t "
                "(see dhtkit::key_hash)");

 public:
  using node_type = Node;
  using hash_type = Hash;
  using moves = std::vector<moved_range<Node>>;

  /// Throws std::invalid_argument if the configuration is invalid.
  explicit ring(ring_config config = {}, Hash hash = {}) : config_(config), hash_(std::move(hash)) {
    detail::validate(config_);
    unsigned bits = 0;
    while ((std::uint32_t{1} << bits) < config_.partitions) ++bits;
    shift_ = 64 - bits;
  }

  const ring_config& config() const noexcept { return config_; }
  std::size_t size() const noexcept { return nodes_.size(); }
  bool empty() const noexcept { return nodes_.empty(); }
  std::size_t vnode_count() const noexcept { return tokens_.size(); }
  std::uint64_t total_weight() const noexcept { return total_weight_; }

  bool contains(const Node& node) const { return find(node) != npos; }

  /// Members in ascending order.
  std::vector<Node> nodes() const {
    std::vector<Node> out;
    out.reserve(nodes_.size());
    for (const auto& e : nodes_) out.push_back(e.node);
    return out;
  }

  result<std::uint32_t> weight(const Node& node) const {
    const std::size_t i = find(node);
    if (i == npos) return errc::unknown_node;
    return nodes_[i].weight;
  }

  std::uint64_t hash(std::string_view key) const noexcept(noexcept(hash_(key))) { return hash_(key); }

  // ---- membership ----

  /// Adds `node` with `weight` units of virtual nodes and reports the arcs it
  /// took over. Errors: duplicate_node, invalid_argument (weight 0),
  /// limit_exceeded (max_nodes or max_vnodes reached). On error nothing changes.
  result<moves> add(const Node& node) { return add(node, config_.default_weight); }

  result<moves> add(const Node& node, std::uint32_t weight) {
    if (weight == 0) return errc::invalid_argument;
    const std::size_t pos = lower(node);
    if (pos < nodes_.size() && nodes_[pos].node == node) return errc::duplicate_node;
    if (nodes_.size() >= config_.max_nodes) return errc::limit_exceeded;
    const std::uint64_t count = std::uint64_t{weight} * config_.vnodes_per_unit;
    if (count > config_.max_vnodes - tokens_.size()) return errc::limit_exceeded;

    // New node gets index pos; members after it shift up by one.
    std::vector<std::uint32_t> old_to_new(nodes_.size());
    for (std::size_t i = 0; i < nodes_.size(); ++i)
      old_to_new[i] = static_cast<std::uint32_t>(i < pos ? i : i + 1);

    std::vector<std::uint64_t> fresh(static_cast<std::size_t>(count));
    const std::uint64_t id = ring_position<Node>::identity(node);
    for (std::uint32_t i = 0; i < count; ++i) fresh[i] = detail::vnode_token(id, i);
    std::sort(fresh.begin(), fresh.end());

    std::vector<std::uint64_t> tokens;
    std::vector<std::uint16_t> owners;
    tokens.reserve(tokens_.size() + fresh.size());
    owners.reserve(tokens_.size() + fresh.size());
    const auto p16 = static_cast<std::uint16_t>(pos);
    std::size_t a = 0, b = 0;
    while (a < tokens_.size() || b < fresh.size()) {
      // Equal tokens order by node, so the result depends on membership only.
      bool take_old = b == fresh.size();
      if (!take_old && a < tokens_.size()) {
        take_old = tokens_[a] < fresh[b] || (tokens_[a] == fresh[b] && old_to_new[owners_[a]] < pos);
      }
      if (take_old) {
        tokens.push_back(tokens_[a]);
        owners.push_back(static_cast<std::uint16_t>(old_to_new[owners_[a]]));
        ++a;
      } else {
        tokens.push_back(fresh[b++]);
        owners.push_back(p16);
      }
    }

    std::vector<entry> nodes = nodes_;
    nodes.insert(nodes.begin() + static_cast<std::ptrdiff_t>(pos), entry{node, weight});
    moves moved = diff(nodes_, tokens_, owners_, nodes, tokens, owners);
    commit(std::move(nodes), std::move(tokens), std::move(owners), total_weight_ + weight);
    return moved;
  }

  /// Removes `node` and reports the arcs it handed over. Error: unknown_node.
  result<moves> remove(const Node& node) {
    const std::size_t pos = find(node);
    if (pos == npos) return errc::unknown_node;
    std::vector<std::uint64_t> tokens;
    std::vector<std::uint16_t> owners;
    const std::size_t keep = tokens_.size() - std::size_t{nodes_[pos].weight} * config_.vnodes_per_unit;
    tokens.reserve(keep);
    owners.reserve(keep);
    for (std::size_t i = 0; i < tokens_.size(); ++i) {
      if (owners_[i] == pos) continue;
      tokens.push_back(tokens_[i]);
      owners.push_back(static_cast<std::uint16_t>(owners_[i] > pos ? owners_[i] - 1 : owners_[i]));
    }
    std::vector<entry> nodes = nodes_;
    nodes.erase(nodes.begin() + static_cast<std::ptrdiff_t>(pos));
    moves moved = diff(nodes_, tokens_, owners_, nodes, tokens, owners);
    const std::uint64_t w = nodes_[pos].weight;
    commit(std::move(nodes), std::move(tokens), std::move(owners), total_weight_ - w);
    return moved;
  }

  // ---- lookups on the ring (exact, O(log V)) ----

  result<Node> owner(std::string_view key) const { return owner_at(hash_(key)); }

  /// The owner of a position on the circle: the first virtual node strictly
  /// clockwise of it, so the virtual node at t owns [previous token, t).
  result<Node> owner_at(std::uint64_t position) const {
    if (tokens_.empty()) return errc::empty_ring;
    return members_[owners_[vnode_after(position)]];
  }

  /// Up to n distinct nodes, the owner first, then the next distinct nodes
  /// clockwise: the replicas of `key`. Fewer than n if the ring has fewer members.
  result<std::vector<Node>> preference_list(std::string_view key, std::size_t n) const {
    return preference_list_at(hash_(key), n);
  }

  result<std::vector<Node>> preference_list_at(std::uint64_t position, std::size_t n) const {
    if (tokens_.empty()) return errc::empty_ring;
    n = std::min(n, nodes_.size());
    std::vector<Node> out;
    out.reserve(n);
    std::vector<std::uint16_t> picked;
    picked.reserve(n);
    // Few replicas: scanning `picked` beats clearing a bitmap the size of the ring.
    const bool use_bitmap = n > 16;
    std::vector<bool> seen(use_bitmap ? nodes_.size() : 0);
    std::size_t v = vnode_after(position);
    for (std::size_t steps = 0; out.size() < n && steps < tokens_.size(); ++steps) {
      const std::uint16_t o = owners_[v];
      const bool dup = use_bitmap ? static_cast<bool>(seen[o])
                                  : std::find(picked.begin(), picked.end(), o) != picked.end();
      if (!dup) {
        if (use_bitmap) seen[o] = true;
        picked.push_back(o);
        out.push_back(members_[o]);
      }
      v = v + 1 == tokens_.size() ? 0 : v + 1;
    }
    return out;
  }

  /// Calls f(begin, end, node) for every arc [begin, end) owned by one node, in
  /// clockwise order starting at an ownership boundary; consecutive virtual
  /// nodes of one node form one arc (begin == end: the whole circle).
  template <class F>
  void for_each_range(F&& f) const {
    if (tokens_.empty()) return;
    // Arc i is [tokens[i-1], tokens[i]); arc 0 wraps from the last token.
    const std::size_t v = tokens_.size();
    std::size_t start = 0;
    // Begin at an ownership boundary so no arc is split at index 0.
    while (start < v && owners_[start] == owners_[(start + v - 1) % v]) ++start;
    if (start == v) {
      f(tokens_[0], tokens_[0], nodes_[owners_[0]].node);
      return;
    }
    std::size_t i = start;
    do {
      std::size_t j = i;
      while ((j + 1) % v != start && owners_[(j + 1) % v] == owners_[i]) j = (j + 1) % v;
      if (tokens_[(i + v - 1) % v] != tokens_[j])
        f(tokens_[(i + v - 1) % v], tokens_[j], nodes_[owners_[i]].node);
      i = (j + 1) % v;
    } while (i != start);
  }

  /// Bounded loads per key: the first node clockwise from the key's owner whose
  /// current load is below ceil((1+epsilon) * (total_load+1) * weight / total_weight),
  /// where load_of(node) returns that node's load and total_load is the sum of all
  /// loads (the +1 counts the key being placed). Errors: empty_ring;
  /// limit_exceeded if no node has room, which means load_of disagrees with total_load.
  template <class LoadFn>
  result<Node> owner_bounded(std::string_view key, std::uint64_t total_load, LoadFn&& load_of) const {
    if (tokens_.empty()) return errc::empty_ring;
    std::size_t v = vnode_after(hash_(key));
    for (std::size_t steps = 0; steps < tokens_.size(); ++steps) {
      const entry& e = nodes_[owners_[v]];
      const std::uint64_t cap =
          detail::load_cap(config_.load_epsilon, total_load + 1, e.weight, total_weight_);
      if (static_cast<std::uint64_t>(load_of(std::as_const(e.node))) < cap) return e.node;
      v = v + 1 == tokens_.size() ? 0 : v + 1;
    }
    return errc::limit_exceeded;
  }

  // ---- the partition table (O(1)) ----

  std::uint32_t partition_count() const noexcept { return config_.partitions; }
  std::uint32_t partition_of(std::string_view key) const { return partition_at(hash_(key)); }
  std::uint32_t partition_at(std::uint64_t position) const noexcept {
    return static_cast<std::uint32_t>(position >> shift_);
  }
  /// The first position of partition p.
  std::uint64_t partition_begin(std::uint32_t partition) const noexcept {
    return std::uint64_t{partition} << shift_;
  }

  result<Node> partition_owner(std::string_view key) const {
    if (table_.empty()) return errc::empty_ring;
    return members_[table_[partition_at(hash_(key))]];
  }

  /// Errors: empty_ring; invalid_argument if partition >= partition_count().
  result<Node> partition_owner_at(std::uint32_t partition) const {
    if (table_.empty()) return errc::empty_ring;
    if (partition >= table_.size()) return errc::invalid_argument;
    return nodes_[table_[partition]].node;
  }

  /// Partitions held per member, in the order of nodes().
  std::vector<std::uint32_t> partition_loads() const {
    std::vector<std::uint32_t> loads(nodes_.size());
    for (std::uint16_t o : table_) ++loads[o];
    return loads;
  }

  /// The bounded-load cap on a member's partitions (whether or not bounded_loads is on).
  result<std::uint64_t> partition_cap(const Node& node) const {
    const std::size_t i = find(node);
    if (i == npos) return errc::unknown_node;
    return detail::load_cap(config_.load_epsilon, config_.partitions, nodes_[i].weight, total_weight_);
  }

 private:
  struct entry {
    Node node;
    std::uint32_t weight;
  };
  static constexpr std::size_t npos = static_cast<std::size_t>(-1);

  std::size_t lower(const Node& node) const {
    return static_cast<std::size_t>(
        std::lower_bound(nodes_.begin(), nodes_.end(), node,
                         [](const entry& e, const Node& n) { return e.node < n; }) -
        nodes_.begin());
  }
  std::size_t find(const Node& node) const {
    const std::size_t i = lower(node);
    return i < nodes_.size() && nodes_[i].node == node ? i : npos;
  }

  // Index of the virtual node owning `position`. Precondition: non-empty.
  std::size_t vnode_after(std::uint64_t position) const noexcept {
    const std::size_t i = detail::upper_bound(tokens_, position);
    return i == tokens_.size() ? 0 : i;
  }

  // The arcs whose owner differs between two rings. Walks the union of both
  // rings' tokens: between consecutive tokens b' < b, every point of [b', b) is
  // owned in each ring by its first token >= b (or its first token, wrapping).
  static moves diff(const std::vector<entry>& old_nodes, const std::vector<std::uint64_t>& old_tokens,
                    const std::vector<std::uint16_t>& old_owners, const std::vector<entry>& new_nodes,
                    const std::vector<std::uint64_t>& new_tokens,
                    const std::vector<std::uint16_t>& new_owners) {
    // Map both rings' owners into one index space so owners compare as integers.
    // Index k in [0, old+new) : old node k or new node k-old; a new node equal
    // to an old one maps to the old index.
    std::vector<std::uint32_t> new_to_common(new_nodes.size());
    {
      std::size_t a = 0;
      for (std::size_t b = 0; b < new_nodes.size(); ++b) {
        while (a < old_nodes.size() && old_nodes[a].node < new_nodes[b].node) ++a;
        new_to_common[b] = static_cast<std::uint32_t>(
            a < old_nodes.size() && old_nodes[a].node == new_nodes[b].node ? a : old_nodes.size() + b);
      }
    }
    constexpr std::uint32_t none = std::numeric_limits<std::uint32_t>::max();
    auto old_owner = [&](std::size_t a) -> std::uint32_t {
      if (old_tokens.empty()) return none;
      return old_owners[a < old_tokens.size() ? a : 0];
    };
    auto new_owner = [&](std::size_t b) -> std::uint32_t {
      if (new_tokens.empty()) return none;
      return new_to_common[new_owners[b < new_tokens.size() ? b : 0]];
    };
    auto node_of = [&](std::uint32_t k) -> std::optional<Node> {
      if (k == none) return std::nullopt;
      return k < old_nodes.size() ? old_nodes[k].node : new_nodes[k - old_nodes.size()].node;
    };

    struct raw {
      std::uint64_t begin, end;
      std::uint32_t from, to;
    };
    std::vector<raw> out;
    if (old_tokens.empty() && new_tokens.empty()) return {};
    const std::uint64_t last =
        std::max(old_tokens.empty() ? 0 : old_tokens.back(), new_tokens.empty() ? 0 : new_tokens.back());
    std::uint64_t prev = last;  // segment 0 wraps from the largest token
    std::size_t a = 0, b = 0;
    while (a < old_tokens.size() || b < new_tokens.size()) {
      std::uint64_t bp;
      if (a == old_tokens.size())
        bp = new_tokens[b];
      else if (b == new_tokens.size())
        bp = old_tokens[a];
      else
        bp = std::min(old_tokens[a], new_tokens[b]);
      // [prev, bp) belongs in each ring to its first token >= bp: index a / b.
      const std::uint32_t from = old_owner(a);
      const std::uint32_t to = new_owner(b);
      if (from != to) {
        if (!out.empty() && out.back().end == prev && out.back().from == from && out.back().to == to) {
          out.back().end = bp;
        } else {
          out.push_back(raw{prev, bp, from, to});
        }
      }
      while (a < old_tokens.size() && old_tokens[a] == bp) ++a;
      while (b < new_tokens.size() && new_tokens[b] == bp) ++b;
      prev = bp;
    }
    // Join the arc ending at the largest token with the one starting there
    // (the wrapping segment) when they are one move.
    if (out.size() >= 2 && out.back().end == out.front().begin && out.back().from == out.front().from &&
        out.back().to == out.front().to) {
      out.front().begin = out.back().begin;
      out.pop_back();
    }
    moves found;
    found.reserve(out.size());
    for (const raw& r : out)
      found.push_back(moved_range<Node>{r.begin, r.end, node_of(r.from), node_of(r.to)});
    return found;
  }

  // Installs a new membership. Strong exception guarantee: if building the
  // members or the partition table throws (std::bad_alloc), the ring is left
  // exactly as it was, never with a table that disagrees with its tokens.
  void commit(std::vector<entry> nodes, std::vector<std::uint64_t> tokens, std::vector<std::uint16_t> owners,
              std::uint64_t total_weight) {
    std::vector<Node> members;
    members.reserve(nodes.size());
    for (const entry& e : nodes) members.push_back(e.node);
    // Swap the new state in (no-throw), keeping the old one to roll back to.
    std::vector<std::uint16_t> old_table = std::move(table_);
    table_.clear();
    nodes_.swap(nodes);
    members_.swap(members);
    tokens_.swap(tokens);
    owners_.swap(owners);
    std::swap(total_weight_, total_weight);
    try {
      rebuild_table();
    } catch (...) {
      nodes_.swap(nodes);
      members_.swap(members);
      tokens_.swap(tokens);
      owners_.swap(owners);
      std::swap(total_weight_, total_weight);
      table_ = std::move(old_table);
      throw;
    }
  }

  void rebuild_table() {
    table_.clear();
    if (tokens_.empty()) return;
    const std::size_t q = config_.partitions;
    const std::size_t v = tokens_.size();
    // natural[p]: the virtual node owning partition p's first point.
    std::vector<std::uint32_t> natural(q);
    std::size_t j = 0;
    for (std::size_t p = 0; p < q; ++p) {
      const std::uint64_t start = std::uint64_t{p} << shift_;
      while (j < v && tokens_[j] <= start) ++j;
      natural[p] = static_cast<std::uint32_t>(j == v ? 0 : j);
    }
    table_.resize(q);
    if (!config_.bounded_loads) {
      for (std::size_t p = 0; p < q; ++p) table_[p] = owners_[natural[p]];
      return;
    }
    // Bounded loads: partitions in ring order; one whose ring owner is full goes
    // to the next virtual node clockwise whose node has room. next[i] == i while
    // i's node has room; once full it points clockwise, and find() skips runs of
    // full virtual nodes with path compression, so the whole build is
    // near-linear whatever epsilon is. The caps sum to more than Q, so some node
    // always has room until the last partition is placed.
    std::vector<std::uint64_t> cap(nodes_.size());
    for (std::size_t n = 0; n < nodes_.size(); ++n) {
      // The exact integer ceil(q * w / W) is a floor under the cap, so the caps
      // sum to at least q even when epsilon is lost in rounding.
      const std::uint64_t fair = (q * std::uint64_t{nodes_[n].weight} + total_weight_ - 1) / total_weight_;
      cap[n] = std::max(fair, detail::load_cap(config_.load_epsilon, q, nodes_[n].weight, total_weight_));
    }
    std::vector<std::vector<std::uint32_t>> vnodes_of(nodes_.size());
    for (std::size_t i = 0; i < v; ++i) vnodes_of[owners_[i]].push_back(static_cast<std::uint32_t>(i));
    std::vector<std::uint32_t> next(v);
    for (std::size_t i = 0; i < v; ++i) next[i] = static_cast<std::uint32_t>(i);
    auto find_room = [&](std::uint32_t i) {
      std::uint32_t root = i;
      while (next[root] != root) root = next[root];
      while (next[i] != root && next[i] != i) {
        const std::uint32_t up = next[i];
        next[i] = root;
        i = up;
      }
      return root;
    };
    std::vector<std::uint64_t> load(nodes_.size());
    for (std::size_t p = 0; p < q; ++p) {
      const std::uint32_t at = find_room(natural[p]);
      const std::uint16_t o = owners_[at];
      table_[p] = o;
      if (++load[o] == cap[o]) {
        for (std::uint32_t i : vnodes_of[o]) next[i] = static_cast<std::uint32_t>(i + 1 == v ? 0 : i + 1);
      }
    }
  }

  ring_config config_;
  Hash hash_;
  unsigned shift_ = 48;
  std::vector<entry> nodes_;           // members, ascending
  std::vector<Node> members_;          // nodes_[i].node, densely packed for the lookup paths
  std::vector<std::uint64_t> tokens_;  // virtual node positions, ascending
  std::vector<std::uint16_t> owners_;  // owners_[i]: index in nodes_ of tokens_[i]'s node
  std::vector<std::uint16_t> table_;   // partition -> index in nodes_
  std::uint64_t total_weight_ = 0;
};

}  // namespace dhtkit

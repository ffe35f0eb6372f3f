/// @file
/// Vector clock: one counter per node, compared pointwise, so that two
/// versions can be classified exactly as ordered (one happened before the
/// other) or concurrent. Replication uses it as a version vector: a write's
/// clock tells a replica whether an incoming version supersedes the one it
/// holds, is superseded by it, or conflicts with it and must be kept as a
/// sibling.
///
/// @code
/// dhtkit::vector_clock v1;
/// if (auto ec = v1.increment(dhtkit::node_id{1}, 1000)) return ec;  // a write coordinated by node 1
/// dhtkit::vector_clock v2 = v1;
/// if (auto ec = v2.increment(dhtkit::node_id{2}, 1005)) return ec;  // a later write based on v1
/// // v1.compare(v2) == dhtkit::causal_order::before, v2.descends(v1)
/// if (auto ec = v1.merge(v2)) return ec;                           // pointwise max: v1 == v2
/// @endcode
///
/// Representation: a flat vector of entries sorted by node (small, cache
/// friendly, linear merge and compare). Each entry also carries `updated`, the
/// caller-supplied time of the entry's last increment, which is used only to
/// choose what prune() drops (as Dynamo truncates its clocks); it plays no part
/// in compare(). Pass a time that is comparable across nodes, e.g. Unix
/// milliseconds from the wall clock: dhtkit::time_point is a steady clock
/// whose epoch differs from machine to machine.
///
/// Bounds: a clock never holds more than MaxEntries entries (default 1024). An
/// increment() or merge() that would exceed it, or take a counter past 2^64-1,
/// is refused with errc::limit_exceeded and leaves the clock unchanged, so a
/// hostile peer cannot make clocks grow without bound. Deserialization checks
/// the same bound before allocating, and rejects entries that are not strictly
/// sorted by node or that have a zero counter, by throwing cereal::Exception
/// (the wire codec turns that into an error at the boundary).
///
/// Pruning: prune(k) keeps the k most recently updated entries and drops the
/// rest, so a pruned clock p of a clock c is c with some entries removed
/// (p <= c pointwise). For any other clock o, this means exactly:
///  - pruning never makes c look newer: if p descends o then c descended o,
///    and if c was before o then p is before o. A version that was obsolete
///    stays obsolete, and a pruned clock never wins a comparison that c lost.
///  - pruning can make c look older. after -> concurrent is a false conflict
///    (an obsolete version survives as a sibling; wasteful, safe). after or
///    concurrent -> before/equal happens when all of c's advantage over o lay
///    in dropped entries; a replica that discards dominated versions would
///    then discard c: a lost update. Pruning therefore CAN lose updates in
///    general; it is not safe by construction.
///  - what limits that risk: for k >= 1 the newest entry n (largest
///    `updated`, ties broken as prune() does) always survives, so p is never
///    <= an o with o[n] < c[n], i.e. an o that has not seen c's latest
///    increment. Suppose each (node, counter) pair names one event (a node
///    takes its next counter from its own state, never from a pruned clock),
///    c is the clock that increment produced (as every write's clock is) and
///    `updated` grows along causality. Then o[n] >= c[n] means o's history
///    includes that event and hence all of c's: p <= o only when c really is
///    obsolete, so nothing is lost. The risk is confined to clocks whose
///    newest entry is not their latest event (merged without a following
///    increment) and to stamps skewed across nodes. Keep the threshold
///    generous (Dynamo uses 10) so pruning is rare.
#pragma once

#include <algorithm>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <system_error>
#include <vector>

#include <cereal/cereal.hpp>

#include "dhtkit/core/error.hpp"
#include "dhtkit/core/node_id.hpp"

namespace dhtkit {

/// How two clocks relate, read as "a is <order> b".
enum class causal_order {
  before,     ///< a happened before b: b descends a and differs
  after,      ///< b happened before a
  equal,      ///< the same history
  concurrent  ///< neither descends the other: a conflict
};

/// What a vector clock needs from its node type: entries are kept sorted and
/// copied in and out.
template <class Node>
concept clock_node = std::totally_ordered<Node> && std::copyable<Node>;

/// One node's entry in a vector clock.
template <class Node>
struct vector_clock_entry {
  Node node{};
  std::uint64_t counter = 0;  ///< events by `node` this clock has seen; never 0 in a clock
  std::uint64_t updated = 0;  ///< caller's time of the last increment, used by prune() only

  friend bool operator==(const vector_clock_entry&, const vector_clock_entry&) = default;

  template <class Archive>
  void serialize(Archive& ar) {
    ar(node, counter, updated);
  }
};

/// A vector clock over nodes of type Node, holding at most MaxEntries entries
/// (see vector_clock.hpp for bounds and pruning).
template <class Node = node_id, std::size_t MaxEntries = 1024>
class basic_vector_clock {
  static_assert(clock_node<Node>,
                "dhtkit::basic_vector_clock<Node>: Node must be totally ordered (==, !=, <, <=, >, >= "
                "consistent with each other) and copyable, because entries are kept sorted by node");
  static_assert(MaxEntries > 0, "dhtkit::basic_vector_clock: MaxEntries must be at least 1");

 public:
  using node_type = Node;
  using entry_type = vector_clock_entry<Node>;
  static constexpr std::size_t max_entries = MaxEntries;

  basic_vector_clock() = default;

  /// Counter for `node`; 0 if the clock has never seen an event by it.
  std::uint64_t get(const Node& node) const noexcept {
    const auto it = find(node);
    return it != entries_.end() && it->node == node ? it->counter : 0;
  }

  std::size_t size() const noexcept { return entries_.size(); }
  bool empty() const noexcept { return entries_.empty(); }

  /// Sorted by node, strictly increasing, no zero counters.
  std::span<const entry_type> entries() const noexcept { return entries_; }

  /// Records an event by `node` at caller time `now` (see `updated` above; it
  /// never moves an entry's time backwards). Fails with limit_exceeded if the
  /// counter is at its maximum or `node` is new and the clock is full.
  [[nodiscard]] std::error_code increment(const Node& node, std::uint64_t now = 0) {
    auto it = find(node);
    if (it != entries_.end() && it->node == node) {
      if (it->counter == std::numeric_limits<std::uint64_t>::max()) return errc::limit_exceeded;
      ++it->counter;
      it->updated = std::max(it->updated, now);
      return {};
    }
    if (entries_.size() >= MaxEntries) return errc::limit_exceeded;
    entries_.insert(it, entry_type{node, 1, now});
    return {};
  }

  /// Pointwise max: afterwards *this descends both its old value and `other`.
  /// Per node the entry with the larger (counter, updated) wins, which keeps
  /// merge commutative, associative and idempotent on the whole entry. Fails
  /// with limit_exceeded, leaving *this unchanged, if the union of nodes would
  /// exceed MaxEntries.
  [[nodiscard]] std::error_code merge(const basic_vector_clock& other) {
    std::vector<entry_type> out;
    out.reserve(std::min(entries_.size() + other.entries_.size(), MaxEntries));
    auto a = entries_.begin();
    auto b = other.entries_.begin();
    while (a != entries_.end() || b != other.entries_.end()) {
      if (out.size() == MaxEntries) return errc::limit_exceeded;
      if (b == other.entries_.end() || (a != entries_.end() && a->node < b->node)) {
        out.push_back(*a++);
      } else if (a == entries_.end() || b->node < a->node) {
        out.push_back(*b++);
      } else {
        const bool take_b = a->counter < b->counter || (a->counter == b->counter && a->updated < b->updated);
        out.push_back(take_b ? *b : *a);
        ++a;
        ++b;
      }
    }
    entries_ = std::move(out);
    return {};
  }

  /// How *this relates to `other`, ignoring `updated`.
  causal_order compare(const basic_vector_clock& other) const noexcept {
    bool less = false;     // some counter of *this is below other's
    bool greater = false;  // some counter of *this is above other's
    auto a = entries_.begin();
    auto b = other.entries_.begin();
    while ((a != entries_.end() || b != other.entries_.end()) && !(less && greater)) {
      if (b == other.entries_.end() || (a != entries_.end() && a->node < b->node)) {
        greater = true;  // counters are never 0, so a missing entry is smaller
        ++a;
      } else if (a == entries_.end() || b->node < a->node) {
        less = true;
        ++b;
      } else {
        less = less || a->counter < b->counter;
        greater = greater || a->counter > b->counter;
        ++a;
        ++b;
      }
    }
    if (less && greater) return causal_order::concurrent;
    if (less) return causal_order::before;
    if (greater) return causal_order::after;
    return causal_order::equal;
  }

  /// *this has seen everything `other` has (after or equal).
  bool descends(const basic_vector_clock& other) const noexcept {
    const causal_order o = compare(other);
    return o == causal_order::after || o == causal_order::equal;
  }

  /// *this has seen everything `other` has, and more (strictly after).
  bool dominates(const basic_vector_clock& other) const noexcept {
    return compare(other) == causal_order::after;
  }

  /// Drops the least recently updated entries (ties: smaller counter, then
  /// smaller node) until at most `keep` remain; returns how many were dropped.
  /// Read the header comment before using it: pruning can make this clock
  /// look older than it is.
  std::size_t prune(std::size_t keep) {
    if (entries_.size() <= keep) return 0;
    const std::size_t dropped = entries_.size() - keep;
    std::sort(entries_.begin(), entries_.end(), [](const entry_type& x, const entry_type& y) {
      if (x.updated != y.updated) return x.updated > y.updated;
      if (x.counter != y.counter) return x.counter > y.counter;
      return y.node < x.node;
    });
    entries_.resize(keep);
    std::sort(entries_.begin(), entries_.end(),
              [](const entry_type& x, const entry_type& y) { return x.node < y.node; });
    return dropped;
  }

  /// Structural equality: same entries, `updated` included. For "same
  /// history" use compare(...) == causal_order::equal.
  friend bool operator==(const basic_vector_clock&, const basic_vector_clock&) = default;

  template <class Archive>
  void save(Archive& ar) const {
    // A size tag, as cereal's containers use: the wire codec's bounded
    // archive checks it against the bytes left before load() sees it.
    ar(cereal::make_size_tag(static_cast<cereal::size_type>(entries_.size())));
    for (const entry_type& e : entries_) ar(e);
  }

  /// Never trusts the input: the count is checked before anything is read, and the result must be a clock
  /// this class could have built. Throws cereal::Exception on invalid input; *this is unchanged then.
  template <class Archive>
  void load(Archive& ar) {
    cereal::size_type count = 0;
    ar(cereal::make_size_tag(count));
    if (count > MaxEntries) {
      throw cereal::Exception("dhtkit::vector_clock: " + std::to_string(count) +
                              " entries exceed the limit of " + std::to_string(MaxEntries));
    }
    // No reserve(count): growing with the entries actually read keeps the
    // allocation proportional to the input, not to what it claims.
    std::vector<entry_type> loaded;
    for (cereal::size_type i = 0; i < count; ++i) {
      entry_type e;
      ar(e);
      if (e.counter == 0) throw cereal::Exception("dhtkit::vector_clock: entry with a zero counter");
      if (!loaded.empty() && !(loaded.back().node < e.node)) {
        throw cereal::Exception("dhtkit::vector_clock: entries not strictly sorted by node");
      }
      loaded.push_back(std::move(e));
    }
    entries_ = std::move(loaded);
  }

 private:
  auto find(const Node& node) const noexcept {
    return std::lower_bound(entries_.begin(), entries_.end(), node,
                            [](const entry_type& e, const Node& n) { return e.node < n; });
  }
  auto find(const Node& node) noexcept {
    return std::lower_bound(entries_.begin(), entries_.end(), node,
                            [](const entry_type& e, const Node& n) { return e.node < n; });
  }

  std::vector<entry_type> entries_;
};

/// A vector clock over node_id, of at most 1024 entries.
using vector_clock = basic_vector_clock<>;

}  // namespace dhtkit

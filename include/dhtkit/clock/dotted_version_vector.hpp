/// @file
/// Dotted version vector sets: the causality a replicated key needs, with
/// siblings that stay proportional to real concurrency.
///
/// A replicated key holds a set of concurrent values ("siblings"), each named by
/// a dot -- (node, counter), the one write event that created it -- plus a
/// version vector, the causal context, that summarises every write the set has
/// seen, kept or superseded. This is the dotted version vector set of Preguica,
/// Baquero, Almeida, Fonte and Goncalves ("Dotted Version Vectors: Logical
/// Clocks for Optimistic Replication", 2010; Riak's dvvset), in the
/// "dotted causal container" form of Almeida et al. (2015).
///
/// Why not a vector clock per value: with per-server clocks, two clients that
/// write through the same coordinator with the same context both get the clock
/// "context + 1 at the coordinator"; the second dominates the first and an
/// acknowledged write silently disappears. Per-client clocks fix that but grow
/// with the number of clients ("sibling explosion" in Riak's words). Here each
/// write gets its own dot, so the two writes stay distinct siblings, while the
/// context has one entry per node that coordinated a write to the key -- at
/// most the key's replicas.
///
/// @code
/// using value = dhtkit::dotted_value<std::string>;
/// dhtkit::dotted_version_vector_set<value> a;                  // empty: no write seen
/// dhtkit::version_vector seen;                                 // a client that read nothing
/// if (auto ec = a.update(seen, value{{dhtkit::node_id{1}, 1}, "x"})) return ec;
/// if (auto ec = a.update(seen, value{{dhtkit::node_id{1}, 2}, "y"})) return ec;  // same context: a sibling
/// // a.siblings().size() == 2
/// dhtkit::dotted_version_vector_set<value> b;
/// if (auto ec = b.update(a.context(), value{{dhtkit::node_id{2}, 1}, "x+y"})) return ec;  // read both
/// if (auto ec = a.sync(b)) return ec;                          // replicas exchange state
/// // a.siblings().size() == 1: "x+y" superseded both
/// @endcode
///
/// Rules (with ctx(X) the context and dots(X) the sibling dots of a set X):
///  - update(C, v): a coordinator records write v whose client had read context
///    C. Siblings whose dot C covers are dropped (the client saw them, so v
///    supersedes them); v's dot must be fresh (not covered by ctx): the node
///    naming it must never reuse a counter for this key. ctx grows by C and v's dot.
///  - sync(A, B): a sibling of A survives if B holds it too or B's context does
///    not cover its dot (B never saw it); symmetric for B; contexts merge
///    pointwise. sync is commutative, associative and idempotent, so replicas
///    can exchange state in any order, any number of times, and converge.
///  - Invariant (asserted): every sibling's dot is covered by ctx, dots are
///    unique and sorted.
///
/// Correctness needs one thing from the user of update(): a dot (n, c) is
/// issued only by node n, only once, and n's local set for the key already
/// reflects every earlier dot n issued for it. dhtkit's replication
/// coordinates writes only on a key's true replicas and takes counters from a
/// durable per-node counter, which gives exactly that.
///
/// Bounds: a version vector holds at most version_vector::max_entries (64)
/// entries; an operation that would exceed it fails with errc::limit_exceeded
/// and changes nothing. The context then stays bounded by the number of nodes
/// that coordinated writes to the key (a key's N replicas while membership is
/// stable). No pruning: dropping an entry would make the context forget writes
/// and can make a replica discard an acknowledged write, which this type exists
/// to prevent. Deserialization checks counts before allocating and rejects
/// anything the type could not have built (unsorted, zero counters, a sibling
/// whose dot the context does not cover) by throwing cereal::Exception, which
/// the wire codec turns into an error value.
#pragma once

#include <algorithm>
#include <cassert>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <cereal/cereal.hpp>

#include "dhtkit/core/error.hpp"
#include "dhtkit/core/node_id.hpp"

namespace dhtkit {

/// One write event: the `counter`-th event numbered by `node`.
struct dot {
  node_id node{};
  std::uint64_t counter = 0;

  friend constexpr auto operator<=>(const dot&, const dot&) = default;

  template <class Archive>
  void serialize(Archive& ar) {
    ar(node, counter);
  }
};

/// A causal context: for each node, the highest counter of its events seen
/// (all lower ones are seen too). Sorted by node, no zero counters.
class version_vector {
 public:
  static constexpr std::size_t max_entries = 64;

  /// One node's highest counter seen.
  struct entry {
    node_id node{};
    std::uint64_t counter = 0;
    friend bool operator==(const entry&, const entry&) = default;
    template <class Archive>
    void serialize(Archive& ar) {
      ar(node, counter);
    }
  };

  std::uint64_t get(node_id node) const noexcept {
    const auto it = find(node);
    return it != entries_.end() && it->node == node ? it->counter : 0;
  }
  bool covers(const dot& d) const noexcept { return d.counter <= get(d.node); }
  std::size_t size() const noexcept { return entries_.size(); }
  bool empty() const noexcept { return entries_.empty(); }
  const std::vector<entry>& entries() const noexcept { return entries_; }

  /// Raises node's counter to at least d.counter. limit_exceeded if the vector is full.
  [[nodiscard]] std::error_code add(const dot& d) {
    if (d.counter == 0) return {};
    auto it = find(d.node);
    if (it != entries_.end() && it->node == d.node) {
      it->counter = std::max(it->counter, d.counter);
      return {};
    }
    if (entries_.size() >= max_entries) return errc::limit_exceeded;
    entries_.insert(it, entry{d.node, d.counter});
    return {};
  }

  /// Pointwise maximum; on limit_exceeded *this is unchanged.
  [[nodiscard]] std::error_code merge(const version_vector& other) {
    std::vector<entry> out;
    out.reserve(std::min(entries_.size() + other.entries_.size(), max_entries));
    auto a = entries_.begin();
    auto b = other.entries_.begin();
    while (a != entries_.end() || b != other.entries_.end()) {
      if (out.size() == max_entries) return errc::limit_exceeded;
      if (b == other.entries_.end() || (a != entries_.end() && a->node < b->node)) {
        out.push_back(*a++);
      } else if (a == entries_.end() || b->node < a->node) {
        out.push_back(*b++);
      } else {
        out.push_back(entry{a->node, std::max(a->counter, b->counter)});
        ++a;
        ++b;
      }
    }
    entries_ = std::move(out);
    return {};
  }

  /// Every event `other` has seen, *this has seen too.
  bool descends(const version_vector& other) const noexcept {
    for (const entry& e : other.entries_)
      if (get(e.node) < e.counter) return false;
    return true;
  }

  friend bool operator==(const version_vector&, const version_vector&) = default;

  template <class Archive>
  void save(Archive& ar) const {
    ar(cereal::make_size_tag(static_cast<cereal::size_type>(entries_.size())));
    for (const entry& e : entries_) ar(e);
  }
  template <class Archive>
  void load(Archive& ar) {
    cereal::size_type count = 0;
    ar(cereal::make_size_tag(count));
    if (count > max_entries) throw cereal::Exception("dhtkit::version_vector: too many entries");
    std::vector<entry> loaded;
    for (cereal::size_type i = 0; i < count; ++i) {
      entry e;
      ar(e);
      if (e.counter == 0) throw cereal::Exception("dhtkit::version_vector: zero counter");
      if (!loaded.empty() && !(loaded.back().node < e.node))
        throw cereal::Exception("dhtkit::version_vector: entries not strictly sorted by node");
      loaded.push_back(e);
    }
    entries_ = std::move(loaded);
  }

 private:
  std::vector<entry>::const_iterator find(node_id node) const noexcept {
    return std::lower_bound(entries_.begin(), entries_.end(), node,
                            [](const entry& e, node_id n) { return e.node < n; });
  }
  std::vector<entry>::iterator find(node_id node) noexcept {
    return std::lower_bound(entries_.begin(), entries_.end(), node,
                            [](const entry& e, node_id n) { return e.node < n; });
  }

  std::vector<entry> entries_;
};

/// What a sibling type must offer: its dot, as a member named `version`.
template <class T>
concept dotted = std::copyable<T> && requires(const T& t) {
  { t.version } -> std::convertible_to<dot>;
};

/// A minimal sibling: a dot and a payload.
template <class Payload>
struct dotted_value {
  dot version{};
  Payload payload{};
  friend bool operator==(const dotted_value&, const dotted_value&) = default;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(version, payload);
  }
};

/// The siblings of one replicated key and their causal context (see
/// dotted_version_vector.hpp for the rules).
template <dotted T>
class dotted_version_vector_set {
 public:
  using value_type = T;

  /// At most this many siblings survive deserialization (a set never holds
  /// more than the writes that were concurrent; storage enforces a lower limit).
  static constexpr std::size_t max_decoded_siblings = 1024;

  const std::vector<T>& siblings() const noexcept { return siblings_; }
  const version_vector& context() const noexcept { return context_; }
  bool empty() const noexcept { return siblings_.empty(); }

  /// A coordinator's write: see the header. invalid_argument if `value`'s dot
  /// is already covered by context() (a reused dot), limit_exceeded if the
  /// context would be too large; *this is unchanged on error.
  [[nodiscard]] std::error_code update(const version_vector& client_context, T value) {
    const dot d = value.version;
    if (d.counter == 0 || context_.covers(d)) return errc::invalid_argument;
    version_vector ctx = context_;
    if (auto ec = ctx.merge(client_context)) return ec;
    if (auto ec = ctx.add(d)) return ec;
    std::erase_if(siblings_, [&](const T& s) { return client_context.covers(dot(s.version)); });
    siblings_.insert(std::upper_bound(siblings_.begin(), siblings_.end(), d,
                                      [](const dot& x, const T& s) { return x < dot(s.version); }),
                     std::move(value));
    context_ = std::move(ctx);
    check();
    return {};
  }

  /// Merges another replica's set into this one. limit_exceeded (unchanged) if
  /// the merged context would be too large.
  [[nodiscard]] std::error_code sync(const dotted_version_vector_set& other) {
    version_vector ctx = context_;
    if (auto ec = ctx.merge(other.context_)) return ec;
    std::vector<T> out;
    out.reserve(siblings_.size() + other.siblings_.size());
    auto a = siblings_.begin();
    auto b = other.siblings_.begin();
    while (a != siblings_.end() || b != other.siblings_.end()) {
      if (b == other.siblings_.end() || (a != siblings_.end() && dot(a->version) < dot(b->version))) {
        if (!other.context_.covers(dot(a->version))) out.push_back(*a);
        ++a;
      } else if (a == siblings_.end() || dot(b->version) < dot(a->version)) {
        if (!context_.covers(dot(b->version))) out.push_back(*b);
        ++b;
      } else {
        out.push_back(*a);  // the same event on both sides: the same value
        ++a;
        ++b;
      }
    }
    siblings_ = std::move(out);
    context_ = std::move(ctx);
    check();
    return {};
  }

  /// Would sync(other) change *this?
  bool would_change(const dotted_version_vector_set& other) const {
    if (!context_.descends(other.context_)) return true;
    for (const T& s : other.siblings_) {
      if (!context_.covers(dot(s.version))) return true;
    }
    for (const T& s : siblings_) {
      if (other.context_.covers(dot(s.version)) && !other.holds(dot(s.version))) return true;
    }
    return false;
  }

  bool holds(const dot& d) const noexcept {
    return std::binary_search(siblings_.begin(), siblings_.end(), d,
                              [](const auto& x, const auto& y) { return key_of(x) < key_of(y); });
  }

  /// Drops every sibling; the context stays (it still says what was seen).
  void clear_siblings() noexcept { siblings_.clear(); }

  friend bool operator==(const dotted_version_vector_set&, const dotted_version_vector_set&) = default;

  template <class Archive>
  void save(Archive& ar) const {
    ar(context_);
    ar(cereal::make_size_tag(static_cast<cereal::size_type>(siblings_.size())));
    for (const T& s : siblings_) ar(s);
  }
  template <class Archive>
  void load(Archive& ar) {
    version_vector ctx;
    ar(ctx);
    cereal::size_type count = 0;
    ar(cereal::make_size_tag(count));
    if (count > max_decoded_siblings) throw cereal::Exception("dhtkit::dvv_set: too many siblings");
    std::vector<T> loaded;
    for (cereal::size_type i = 0; i < count; ++i) {
      T s;
      ar(s);
      const dot d = s.version;
      if (d.counter == 0 || !ctx.covers(d))
        throw cereal::Exception("dhtkit::dvv_set: a sibling's dot is not covered by the context");
      if (!loaded.empty() && !(dot(loaded.back().version) < d))
        throw cereal::Exception("dhtkit::dvv_set: siblings not strictly sorted by dot");
      loaded.push_back(std::move(s));
    }
    context_ = std::move(ctx);
    siblings_ = std::move(loaded);
  }

 private:
  static dot key_of(const dot& d) noexcept { return d; }
  static dot key_of(const T& s) noexcept { return s.version; }

  void check() const noexcept {
#ifndef NDEBUG
    for (std::size_t i = 0; i < siblings_.size(); ++i) {
      assert(context_.covers(dot(siblings_[i].version)) && "dvv_set: sibling dot outside the context");
      assert((i == 0 || dot(siblings_[i - 1].version) < dot(siblings_[i].version)) &&
             "dvv_set: siblings not sorted by unique dots");
    }
#endif
  }

  std::vector<T> siblings_;  // sorted by dot, unique
  version_vector context_;
};

}  // namespace dhtkit

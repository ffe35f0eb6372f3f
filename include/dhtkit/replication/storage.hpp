/// @file
/// Replica storage: the storage concept and the in-memory engine.
///
/// A replica keeps, per key, a versioned_entry (siblings + causal context) and
/// changes it only by causal rules, so that whatever order writes, read repairs,
/// hinted handoffs and anti-entropy exchanges arrive in, replicas converge and
/// no write that a client's context did not cover is dropped:
///  - put(key, context, value): a coordinator's write (dot in `value.version`);
///    versions the client's context covers are replaced, others kept as siblings;
///  - erase(key, context, dot): the same with a tombstone;
///  - merge(key, entry): another replica's state, merged by dotted version
///    vector sync (commutative, idempotent);
///  - remove(key): physical removal, for tombstone garbage collection and for a
///    fallback node that has handed a hinted key back to its owner;
///  - for_each_in_range(begin, end, f): keys whose hash lies in [begin, end)
///    (wrapping; begin == end is everything), in hash order, for anti-entropy;
///    memory_storage also has visit_range(begin, end, f), where f returns false
///    to stop early, and any_in_range(begin, end) (optional for other engines);
///  - next_counter(): a per-node counter that never repeats, for new dots; it is
///    part of the durable state, like the entries.
///
/// @code
/// dhtkit::memory_storage store;                    // memory_storage_config{} defaults
/// dhtkit::versioned_value v;
/// v.version = dhtkit::dot{dhtkit::node_id{1}, store.next_counter()};
/// v.value = dhtkit::to_bytes("hello");
/// auto written = store.put("greeting", dhtkit::version_vector{}, v);   // result<versioned_entry>
/// std::optional<dhtkit::versioned_entry> got = store.get("greeting");  // one sibling
/// auto deleted =
///     store.erase("greeting", got->context(), dhtkit::dot{dhtkit::node_id{1}, store.next_counter()});
/// // store.get("greeting")->siblings(): one tombstone
/// @endcode
///
/// memory_storage is the reference engine: an ordered map in memory. Its
/// limits: at most max_siblings versions per key (a write or merge beyond is
/// refused with errc::too_many_siblings, nothing changes; Riak's hard limit is
/// 100), at most max_keys keys (errc::limit_exceeded for a new key).
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

#include "dhtkit/clock/dotted_version_vector.hpp"
#include "dhtkit/core/error.hpp"
#include "dhtkit/core/hash.hpp"
#include "dhtkit/core/result.hpp"
#include "dhtkit/replication/versioned_value.hpp"

namespace dhtkit {

/// What a storage holds and has refused.
struct storage_stats {
  std::uint64_t keys = 0;               ///< entries stored, markers included
  std::uint64_t siblings = 0;           ///< versions stored, tombstones included
  std::uint64_t tombstones = 0;         ///< tombstone versions stored
  std::uint64_t value_bytes = 0;        ///< bytes of live values
  std::uint64_t rejected_siblings = 0;  ///< writes and merges refused with too_many_siblings
};

namespace detail {
// Stands for the callable a storage engine's for_each_in_range accepts.
struct storage_visitor {
  void operator()(std::string_view, const versioned_entry&) const {}
};
}  // namespace detail

/// What a replica needs from its storage (see storage.hpp).
template <class S>
concept storage = requires(S& s, const S& cs, std::string_view key, const version_vector& context,
                           const versioned_value& value, const versioned_entry& entry, dot d,
                           std::uint64_t pos) {
  { cs.get(key) } -> std::same_as<std::optional<versioned_entry>>;
  { s.put(key, context, value) } -> std::same_as<result<versioned_entry>>;
  { s.erase(key, context, d) } -> std::same_as<result<versioned_entry>>;
  { s.merge(key, entry) } -> std::same_as<result<bool>>;
  { s.remove(key) } -> std::same_as<bool>;
  cs.for_each_in_range(pos, pos, detail::storage_visitor{});
  { cs.stats() } -> std::same_as<storage_stats>;
  { s.next_counter() } -> std::same_as<std::uint64_t>;
};

/// Bounds of a basic_memory_storage.
struct memory_storage_config {
  /// Most versions kept per key. Riak warns at 25 and refuses past 100; with
  /// dotted version vectors siblings only come from truly concurrent writes.
  std::size_t max_siblings = 100;
  /// Most keys (markers of collected tombstones included).
  std::size_t max_keys = 1 << 22;
};

/// The in-memory storage: a map ordered by key hash, bounded by memory_storage_config.
template <key_hash Hash = default_key_hash>
class basic_memory_storage {
 public:
  /// Throws std::invalid_argument for a zero limit.
  explicit basic_memory_storage(memory_storage_config config = {}, Hash hash = {})
      : config_(config), hash_(std::move(hash)) {
    if (config_.max_siblings == 0)
      throw std::invalid_argument("dhtkit::memory_storage_config: max_siblings must be at least 1");
    if (config_.max_keys == 0)
      throw std::invalid_argument("dhtkit::memory_storage_config: max_keys must be at least 1");
  }

  const memory_storage_config& config() const noexcept { return config_; }
  std::uint64_t position(std::string_view key) const { return hash_(key); }

  std::optional<versioned_entry> get(std::string_view key) const {
    const auto it = entries_.find(map_key(key));
    if (it == entries_.end()) return std::nullopt;
    return it->second;
  }

  result<versioned_entry> put(std::string_view key, const version_vector& context,
                              const versioned_value& value) {
    return write(key, context, value);
  }

  result<versioned_entry> erase(std::string_view key, const version_vector& context, dot d) {
    versioned_value tomb;
    tomb.version = d;
    tomb.tombstone = true;
    return write(key, context, tomb);
  }

  result<bool> merge(std::string_view key, const versioned_entry& incoming) {
    auto k = map_key(key);
    auto it = entries_.find(k);
    if (it == entries_.end()) {
      if (entries_.size() >= config_.max_keys) return errc::limit_exceeded;
      if (incoming.siblings().size() > config_.max_siblings) return reject();
      entries_.emplace(std::move(k), incoming);
      return true;
    }
    if (!it->second.would_change(incoming)) return false;
    versioned_entry merged = it->second;
    if (auto ec = merged.sync(incoming)) return ec;
    if (merged.siblings().size() > config_.max_siblings) return reject();
    it->second = std::move(merged);
    return true;
  }

  bool remove(std::string_view key) { return entries_.erase(map_key(key)) > 0; }

  /// f(key, entry) for every key whose hash is in [begin, end), wrapping.
  template <class F>
  void for_each_in_range(std::uint64_t begin, std::uint64_t end, F&& f) const {
    auto visit = [&](auto first, auto last) {
      for (auto it = first; it != last; ++it) f(std::string_view(it->first.second), it->second);
    };
    auto lower = [&](std::uint64_t p) { return entries_.lower_bound(map_key_type{p, std::string()}); };
    if (begin < end) {
      visit(lower(begin), lower(end));
    } else {
      visit(lower(begin), entries_.end());
      visit(entries_.begin(), lower(end));
    }
  }

  /// f(key, entry) -> bool for the keys whose hash is in [begin, end) (wrapping,
  /// begin == end is everything), in hash order, until f returns false: a
  /// handoff cuts a chunk off a large range without visiting the rest.
  template <class F>
  void visit_range(std::uint64_t begin, std::uint64_t end, F&& f) const {
    auto visit = [&](auto first, auto last) {
      for (auto it = first; it != last; ++it)
        if (!f(std::string_view(it->first.second), it->second)) return false;
      return true;
    };
    auto lower = [&](std::uint64_t p) { return entries_.lower_bound(map_key_type{p, std::string()}); };
    if (begin < end) {
      visit(lower(begin), lower(end));
    } else if (visit(lower(begin), entries_.end())) {
      visit(entries_.begin(), lower(end));
    }
  }

  /// True when some key's hash is in [begin, end) (wrapping, as visit_range).
  bool any_in_range(std::uint64_t begin, std::uint64_t end) const {
    bool found = false;
    visit_range(begin, end, [&](std::string_view, const versioned_entry&) {
      found = true;
      return false;
    });
    return found;
  }

  storage_stats stats() const {
    storage_stats s;
    s.keys = entries_.size();
    s.rejected_siblings = rejected_;
    for (const auto& [k, e] : entries_) {
      s.siblings += e.siblings().size();
      for (const versioned_value& v : e.siblings()) {
        if (v.tombstone) ++s.tombstones;
        s.value_bytes += v.value.size();
      }
    }
    return s;
  }

  std::uint64_t next_counter() noexcept { return ++counter_; }
  /// The name this store's writes are numbered under (their dots), 0 until
  /// set: the replica then uses its own node id. A node whose disk was lost
  /// starts over with an empty store and its counter back at 0, so it must
  /// not number new writes under the old name -- (name, 1) would repeat a dot
  /// its peers have seen and they would drop the write -- nor jump the
  /// counter, which would claim every old dot as seen. The DHT node gives an
  /// empty store a fresh actor id instead (one more entry in clocks per lost disk).
  node_id actor() const noexcept { return actor_; }
  void set_actor(node_id a) noexcept { actor_ = a; }

 private:
  using map_key_type = std::pair<std::uint64_t, std::string>;

  map_key_type map_key(std::string_view key) const { return {hash_(key), std::string(key)}; }

  std::error_code reject() {
    ++rejected_;
    return errc::too_many_siblings;
  }

  result<versioned_entry> write(std::string_view key, const version_vector& context,
                                const versioned_value& value) {
    auto k = map_key(key);
    auto it = entries_.find(k);
    if (it == entries_.end() && entries_.size() >= config_.max_keys) return errc::limit_exceeded;
    versioned_entry next = it == entries_.end() ? versioned_entry{} : it->second;
    if (auto ec = next.update(context, value)) return ec;
    if (next.siblings().size() > config_.max_siblings) return reject();
    if (it == entries_.end()) {
      entries_.emplace(std::move(k), next);
    } else {
      it->second = next;
    }
    return next;
  }

  memory_storage_config config_;
  Hash hash_;
  std::map<map_key_type, versioned_entry> entries_;
  std::uint64_t counter_ = 0;
  node_id actor_{};
  std::uint64_t rejected_ = 0;
};

/// The in-memory storage with the default key hash.
using memory_storage = basic_memory_storage<>;

static_assert(storage<memory_storage>, "memory_storage must satisfy dhtkit::storage");

}  // namespace dhtkit

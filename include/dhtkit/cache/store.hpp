/// @file
/// The cache store: a bounded, thread-safe key-value store with LRU eviction and
/// expiry, the storage of dhtkit-cache (examples/cache), usable on its own.
///
/// It keeps memcached's item model: a key of at most 250 bytes, a value, 32-bit
/// client flags, an expiry time and a 64-bit CAS unique that never repeats (one
/// counter for the whole store). Every write command of memcached's text and
/// meta protocols is a read-modify-write, so the store offers exactly two
/// operations: read(key, now, f), and modify(key, now, f) whose callback sees
/// the live item (or nullptr) and decides to keep it, erase it or store a new
/// value, all under one lock.
///
/// @code
/// dhtkit::cache::store cache;                          // store_config{}: memcached's defaults
/// auto set = cache.modify("greeting", now, [](dhtkit::cache::item_ref*) -> dhtkit::cache::decision {
///   dhtkit::cache::new_value v;
///   v.head = "hello";
///   v.flags = 7;
///   return v;
/// });                                                  // set.cas: the new item's CAS unique
/// std::string got;
/// bool hit = cache.read("greeting", now, [&](const dhtkit::cache::item_ref& item) {
///   got = item.value();                                // runs under the shard's lock: copy, don't keep
/// });
/// @endcode
///
/// Sharing between threads: the keys are split over store_config::shards lock
/// shards by a hash of the key; each shard has its own mutex, chained hash
/// index and LRU list. A worker holds one shard lock at a time (never two, so
/// there is no lock order to get wrong), for the length of one command's work
/// on one key. memcached does much the same with its item lock table; the
/// alternative, one partition per worker thread, would force clients' keys to
/// the thread that owns them and a hand-off for every other key.
///
/// Memory: memory_limit bounds what items cost together with the hash index,
/// counted as the allocator takes it (detail::allocation_cost). A write first
/// evicts from its own shard's LRU tail, then, if that shard is empty, from
/// the others in turn. Each shard's LRU order is exact; across shards the
/// victim is the least recent item of the writing shard, an approximation of a
/// global LRU as good as a 1-in-64 sample. Concurrent writers may each overshoot
/// the limit by the item they are storing until their eviction pass runs. With
/// evict off (memcached -M) a write that does not fit fails with out_of_memory.
///
/// Expiry is lazy (an expired item is freed when a command meets it) plus
/// sweep(now, budget), a bounded pass the server runs in the background, so
/// expired items do not hold memory until the LRU reaches them.
///
/// Why it does not model dhtkit::storage (replication/storage.hpp): that concept
/// keeps siblings and causal contexts so that no concurrent write is lost,
/// which costs a version vector per key; a memcached client expects one value
/// per key, so the clustered cache resolves concurrent versions to one winner
/// before it stores, and needs only this store's single version per key.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>

#include "dhtkit/cache/detail/item.hpp"
#include "dhtkit/cache/detail/shard.hpp"
#include "dhtkit/cache/store_config.hpp"
#include "dhtkit/core/hash.hpp"

namespace dhtkit::cache {

/// A stored item as a callback sees it, under its shard's lock: copy what you
/// need, never keep the reference. The setters change metadata in place.
class item_ref {
 public:
  explicit item_ref(detail::item& it) noexcept : it_(&it) {}

  std::string_view key() const noexcept { return it_->key(); }
  std::string_view value() const noexcept { return it_->value(); }
  std::uint32_t flags() const noexcept { return it_->flags; }
  std::uint64_t cas() const noexcept { return it_->cas; }
  rel_time exptime() const noexcept { return it_->exptime; }  ///< 0: never
  /// When it was stored or last read, before the access in progress.
  rel_time last_access() const noexcept { return it_->last_access; }
  /// Whether it was read before the access in progress (meta's h flag).
  bool fetched() const noexcept { return it_->has(detail::item::fetched_bit); }
  /// Marked stale by an invalidation (meta's I flag).
  bool stale() const noexcept { return it_->has(detail::item::stale_bit); }
  /// A client was handed the right to refill it (meta's W flag).
  bool win_sent() const noexcept { return it_->has(detail::item::win_sent_bit); }

  void set_exptime(rel_time t) noexcept { it_->exptime = t; }
  void set_flags(std::uint32_t f) noexcept { it_->flags = f; }
  void set_cas(std::uint64_t c) noexcept { it_->cas = c; }
  void set_stale(bool on) noexcept { it_->set(detail::item::stale_bit, on); }
  void set_win_sent(bool on) noexcept { it_->set(detail::item::win_sent_bit, on); }

 private:
  detail::item* it_;
};

/// A modify callback's decision to leave the item as it is (its metadata
/// setters may have run).
struct keep {};
/// A modify callback's decision to delete the item.
struct erase {};
/// A modify callback's decision to store a new value for the key, in place of
/// the item if there is one.
struct new_value {
  /// The value stored is head followed by tail, so append and prepend build it
  /// without a temporary copy; both may point into the current item.
  std::string_view head;
  std::string_view tail;
  std::uint32_t flags = 0;
  rel_time exptime = 0;  ///< 0: never
  /// An explicit CAS unique (meta's E flag); otherwise the store assigns a
  /// fresh one from its counter.
  std::optional<std::uint64_t> cas;
  /// Stored already marked stale (meta's ms with I).
  bool stale = false;
  /// Stored with its win token already handed out (meta's mg N creates the
  /// item and gives its client the W flag, in the same lock).
  bool win_sent = false;
};
/// What a modify callback can decide: keep, erase or new_value.
using decision = std::variant<keep, erase, new_value>;

/// Why modify() refused a key or a new value, leaving the store as it was
/// (none: it did not).
enum class store_error {
  none,
  too_large,      ///< the item exceeds max_item_size: nothing changed
  out_of_memory,  ///< it does not fit and evict is off (or malloc failed): nothing changed
  bad_key,        ///< empty, or longer than max_key_size: nothing changed
};

/// What modify() did: whether it refused, whether the key had a live item, and
/// the CAS unique of the item it left.
struct modify_result {
  store_error error = store_error::none;
  bool existed = false;   ///< a live item was there when the callback ran
  std::uint64_t cas = 0;  ///< the stored item's CAS (new_value), the kept item's (keep), else 0
};

/// A store's items, memory use and counters as stats() adds them up over the
/// shards; most fields are named after memcached's `stats` output.
struct store_stats {
  std::uint64_t curr_items = 0;         ///< items held, expired ones included until they are freed
  std::uint64_t total_items = 0;        ///< items stored since start (or the last reset_stats)
  std::uint64_t bytes = 0;              ///< what the items cost, allocation rounding included
  std::uint64_t value_bytes = 0;        ///< their values alone
  std::uint64_t index_bytes = 0;        ///< the hash index
  std::uint64_t memory_used = 0;        ///< bytes + index_bytes: what memory_limit bounds
  std::uint64_t limit_maxbytes = 0;     ///< memory_limit
  std::uint64_t evictions = 0;          ///< live items dropped to make room
  std::uint64_t evicted_unfetched = 0;  ///< evictions of items that were never read
  std::uint64_t expired_unfetched = 0;  ///< expired items freed that were never read
  std::uint64_t reclaimed = 0;          ///< expired or flushed items freed
  std::uint64_t get_expired = 0;        ///< reads that met an expired item
  std::uint64_t get_flushed = 0;        ///< reads that met a flushed item
  std::uint64_t out_of_memory = 0;      ///< writes refused with out_of_memory
  std::uint64_t too_large = 0;          ///< writes refused with too_large
};

/// A bounded, thread-safe key-value store with LRU eviction and expiry, split
/// into lock shards (see store.hpp).
class store {
 public:
  /// Throws std::invalid_argument for an invalid config (the field named).
  explicit store(store_config config = {})
      : config_((config.validate(), config)),
        shards_(std::make_unique<detail::shard[]>(config_.shards)),
        shard_mask_(config_.shards - 1) {
    std::size_t index = 0;
    for (std::size_t i = 0; i < config_.shards; ++i) {
      shards_[i].set_hash(&hash);
      index += shards_[i].index_bytes();
    }
    used_.store(index);
  }
  store(const store&) = delete;
  store& operator=(const store&) = delete;

  const store_config& config() const noexcept { return config_; }

  /// What one item counts against memory_limit (the index aside).
  static constexpr std::size_t item_cost(std::size_t key_size, std::size_t value_size) noexcept {
    return detail::allocation_cost(detail::item_bytes(key_size, value_size));
  }

  /// Finds the live item (neither expired nor flushed at `now`) and runs
  /// f(item_ref&) on it under its shard's lock (the callback may use the
  /// metadata setters: touch, gat, meta's win tokens). The item then counts as
  /// used: moved to the LRU's head, last_access = now, fetched. False on a miss.
  template <class F>
  bool read(std::string_view key, rel_time now, F&& f) {
    return with_live(key, now, [&](detail::shard& s, detail::item& it) {
      s.bump(&it);
      item_ref ref(it);
      f(ref);
      it.last_access = now;
      it.set(detail::item::fetched_bit, true);
    });
  }

  /// read() without counting as a use: no LRU move, no access record (meta's
  /// mg without bump, me). Expired and flushed items still count as misses.
  template <class F>
  bool peek(std::string_view key, rel_time now, F&& f) {
    return with_live(key, now, [&](detail::shard&, detail::item& it) {
      const item_ref ref(it);
      f(ref);
    });
  }

  /// A fresh CAS unique from the store's counter, for an item changed in place
  /// that must look changed (meta's md with I gives the invalidated item one).
  std::uint64_t next_cas() noexcept { return next_cas_.fetch_add(1, std::memory_order_relaxed) + 1; }

  /// Makes every CAS unique the store assigns from now on greater than
  /// `floor`. A clustered cache raises it to a clock every node shares, so
  /// that CAS values taken on different nodes for one key never repeat.
  void raise_cas(std::uint64_t floor) noexcept {
    std::uint64_t cur = next_cas_.load(std::memory_order_relaxed);
    while (cur < floor && !next_cas_.compare_exchange_weak(cur, floor, std::memory_order_relaxed)) {
    }
  }

  /// Read-modify-write of one key under its shard's lock: f(item_ref*) gets
  /// the live item, or nullptr, and returns a decision. Storing may evict
  /// other items (never the new one); see store_error for refusals.
  template <class F>
  modify_result modify(std::string_view key, rel_time now, F&& f) {
    modify_result r;
    if (key.empty() || key.size() > config_.max_key_size) {
      r.error = store_error::bad_key;
      return r;
    }
    const std::uint64_t h = hash(key);
    const std::size_t home = h >> 52 & shard_mask_;
    detail::shard& s = shards_[home];
    bool spill = false;
    {
      std::lock_guard lock(s.mutex);
      detail::item* old = s.find(key, h);
      if (old != nullptr) {
        if (const auto why = death(*old, now); why != alive) {
          reclaim(s, old, h, why);
          old = nullptr;
        }
      }
      r.existed = old != nullptr;
      std::optional<item_ref> ref;
      if (old != nullptr) ref.emplace(*old);
      decision d = f(ref ? &*ref : nullptr);

      if (std::holds_alternative<keep>(d)) {
        if (old != nullptr) r.cas = old->cas;
        return r;
      }
      if (std::holds_alternative<erase>(d)) {
        if (old != nullptr) destroy(s, old, h);
        return r;
      }
      const new_value& v = std::get<new_value>(d);
      const std::size_t size = v.head.size() + v.tail.size();
      if (detail::memcached_item_size(key.size(), size) > config_.max_item_size) {
        too_large_.fetch_add(1, std::memory_order_relaxed);
        r.error = store_error::too_large;
        return r;
      }
      const std::size_t cost = item_cost(key.size(), size);
      const std::size_t freed = old != nullptr ? item_cost(old->key_size, old->value_size) : 0;
      if (!config_.evict && cost > freed &&
          used_.load(std::memory_order_relaxed) + (cost - freed) > config_.memory_limit) {
        out_of_memory_.fetch_add(1, std::memory_order_relaxed);
        r.error = store_error::out_of_memory;
        return r;
      }
      // Built before the old item goes: head and tail may point into it.
      detail::item* fresh = detail::make_item(key, v.head, v.tail);
      if (fresh == nullptr) {
        out_of_memory_.fetch_add(1, std::memory_order_relaxed);
        r.error = store_error::out_of_memory;
        return r;
      }
      fresh->flags = v.flags;
      fresh->exptime = v.exptime;
      fresh->cas = v.cas ? *v.cas : next_cas();
      fresh->last_access = now;
      fresh->set(detail::item::stale_bit, v.stale);
      fresh->set(detail::item::win_sent_bit, v.win_sent);
      if (old != nullptr) destroy(s, old, h);
      const std::ptrdiff_t index_growth = s.link(fresh, h);
      used_.fetch_add(cost + static_cast<std::size_t>(index_growth), std::memory_order_relaxed);
      s.counters.total_items += 1;
      r.cas = fresh->cas;
      if (config_.evict) {
        while (over_limit()) {
          detail::item* victim = s.lru_tail();
          if (victim == nullptr || victim == fresh) break;
          evict(s, victim, now);
        }
        spill = over_limit();
      }
    }
    if (spill) evict_elsewhere(home, now);
    return r;
  }

  /// `flush_all`: every item stored so far is gone, now.
  void flush_all() {
    for (std::size_t i = 0; i < config_.shards; ++i) {
      detail::shard& s = shards_[i];
      std::lock_guard lock(s.mutex);
      const std::uint64_t bytes = s.counters.item_bytes;
      s.counters.reclaimed += s.size();
      s.clear([](detail::item*) {});
      used_.fetch_sub(bytes, std::memory_order_relaxed);
    }
  }

  /// `flush_all <delay>`: once now >= when, items last stored or read at or
  /// before `when` are gone (freed lazily and by sweep). 0 cancels.
  void flush_at(rel_time when) noexcept { oldest_live_.store(when, std::memory_order_relaxed); }

  /// Frees expired and flushed items, looking at about `budget` items from
  /// where the previous call stopped; returns how many it freed.
  std::size_t sweep(rel_time now, std::size_t budget) {
    std::size_t freed = 0;
    std::size_t looked = 0;
    for (std::size_t n = 0; n < config_.shards && looked < budget; ++n) {
      const std::size_t i = sweep_cursor_.fetch_add(1, std::memory_order_relaxed) & shard_mask_;
      detail::shard& s = shards_[i];
      std::lock_guard lock(s.mutex);
      looked += s.scan(budget - looked, [&](detail::item* it) {
        if (const auto why = death(*it, now); why != alive) {
          reclaim(s, it, hash(it->key()), why);
          ++freed;
        }
      });
    }
    return freed;
  }

  /// f(const item_ref&) for every live item, shard by shard, each under its
  /// shard's lock (the clustered cache's hand-off walks the store with it).
  template <class F>
  void for_each(rel_time now, F&& f) const {
    for (std::size_t i = 0; i < config_.shards; ++i) {
      detail::shard& s = shards_[i];
      std::lock_guard lock(s.mutex);
      s.scan(s.size(), [&](detail::item* it) {
        if (death(*it, now) != alive) return;
        const item_ref ref(*it);
        f(ref);
      });
    }
  }

  store_stats stats() const {
    store_stats out;
    for (std::size_t i = 0; i < config_.shards; ++i) {
      detail::shard& s = shards_[i];
      std::lock_guard lock(s.mutex);
      const auto& c = s.counters;
      out.curr_items += c.curr_items;
      out.total_items += c.total_items;
      out.bytes += c.item_bytes;
      out.value_bytes += c.value_bytes;
      out.index_bytes += s.index_bytes();
      out.evictions += c.evictions;
      out.evicted_unfetched += c.evicted_unfetched;
      out.expired_unfetched += c.expired_unfetched;
      out.reclaimed += c.reclaimed;
      out.get_expired += c.get_expired;
      out.get_flushed += c.get_flushed;
    }
    out.memory_used = out.bytes + out.index_bytes;
    out.limit_maxbytes = config_.memory_limit;
    out.out_of_memory = out_of_memory_.load(std::memory_order_relaxed);
    out.too_large = too_large_.load(std::memory_order_relaxed);
    return out;
  }

  /// memcached's `stats reset`: zeroes the counters, not what is stored.
  void reset_stats() {
    for (std::size_t i = 0; i < config_.shards; ++i) {
      detail::shard& s = shards_[i];
      std::lock_guard lock(s.mutex);
      auto& c = s.counters;
      c.total_items = c.evictions = c.evicted_unfetched = c.expired_unfetched = 0;
      c.reclaimed = c.get_expired = c.get_flushed = 0;
    }
    out_of_memory_.store(0, std::memory_order_relaxed);
    too_large_.store(0, std::memory_order_relaxed);
  }

 private:
  enum death_reason { alive, expired, flushed };

  // Not the cluster's key hash (seed 0): a node of a cluster holds keys from
  // a few ranges of that hash, which would crowd a few shards.
  static std::uint64_t hash(std::string_view key) noexcept { return xxh64(key, 0x9E3779B97F4A7C15ULL); }
  detail::shard& shard_for(std::uint64_t h) const noexcept { return shards_[h >> 52 & shard_mask_]; }
  bool over_limit() const noexcept { return used_.load(std::memory_order_relaxed) > config_.memory_limit; }

  // The item a read may see; an expired or flushed one is freed on the way
  // and counted as such.
  detail::item* find_live(detail::shard& s, std::string_view key, std::uint64_t h, rel_time now) noexcept {
    detail::item* it = s.find(key, h);
    if (it == nullptr) return nullptr;
    if (const auto why = death(*it, now); why != alive) {
      (why == expired ? s.counters.get_expired : s.counters.get_flushed) += 1;
      reclaim(s, it, h, why);
      return nullptr;
    }
    return it;
  }

  // What read() and peek() share: g(shard, item) on the live item under its
  // shard's lock; false on a miss or a key no item can have.
  template <class G>
  bool with_live(std::string_view key, rel_time now, G&& g) {
    if (key.empty() || key.size() > config_.max_key_size) return false;
    const std::uint64_t h = hash(key);
    detail::shard& s = shard_for(h);
    std::lock_guard lock(s.mutex);
    detail::item* it = find_live(s, key, h, now);
    if (it == nullptr) return false;
    g(s, *it);
    return true;
  }

  death_reason death(const detail::item& it, rel_time now) const noexcept {
    if (it.exptime != 0 && it.exptime <= now) return expired;
    const rel_time oldest = oldest_live_.load(std::memory_order_relaxed);
    if (oldest != 0 && oldest <= now && it.last_access <= oldest) return flushed;
    return alive;
  }

  void destroy(detail::shard& s, detail::item* it, std::uint64_t h) noexcept {
    const std::size_t cost = item_cost(it->key_size, it->value_size);
    s.unlink(it, h);
    detail::free_item(it);
    used_.fetch_sub(cost, std::memory_order_relaxed);
  }

  void reclaim(detail::shard& s, detail::item* it, std::uint64_t h, death_reason why) noexcept {
    s.counters.reclaimed += 1;
    if (why == expired && !it->has(detail::item::fetched_bit)) s.counters.expired_unfetched += 1;
    destroy(s, it, h);
  }

  void evict(detail::shard& s, detail::item* victim, rel_time now) noexcept {
    if (const auto why = death(*victim, now); why != alive) {
      reclaim(s, victim, hash(victim->key()), why);
      return;
    }
    s.counters.evictions += 1;
    if (!victim->has(detail::item::fetched_bit)) s.counters.evicted_unfetched += 1;
    destroy(s, victim, hash(victim->key()));
  }

  // The writing shard ran dry: take the others' LRU tails, one shard lock at
  // a time, until the store is under its limit again.
  void evict_elsewhere(std::size_t home, rel_time now) {
    for (std::size_t n = 1; n < config_.shards && over_limit(); ++n) {
      detail::shard& s = shards_[(home + n) & shard_mask_];
      std::lock_guard lock(s.mutex);
      while (over_limit() && s.lru_tail() != nullptr) evict(s, s.lru_tail(), now);
    }
  }

  const store_config config_;
  std::unique_ptr<detail::shard[]> shards_;
  const std::size_t shard_mask_;
  std::atomic<std::size_t> used_{0};
  std::atomic<std::uint64_t> next_cas_{0};
  std::atomic<rel_time> oldest_live_{0};
  std::atomic<std::size_t> sweep_cursor_{0};
  std::atomic<std::uint64_t> out_of_memory_{0};
  std::atomic<std::uint64_t> too_large_{0};
};

}  // namespace dhtkit::cache

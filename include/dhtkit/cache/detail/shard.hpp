// One lock shard of the cache store: a chained hash index and an LRU list over
// intrusive items (detail/item.hpp). Not thread-safe: the store holds the
// shard's mutex around every call.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string_view>

#include "dhtkit/cache/detail/item.hpp"

namespace dhtkit::cache::detail {

struct shard_counters {
  std::uint64_t curr_items = 0;
  std::uint64_t item_bytes = 0;   // what the items cost (allocation_cost of each)
  std::uint64_t value_bytes = 0;  // their values alone
  std::uint64_t total_items = 0;  // items ever stored
  std::uint64_t evictions = 0;
  std::uint64_t evicted_unfetched = 0;  // evicted without ever being read
  std::uint64_t expired_unfetched = 0;  // expired without ever being read
  std::uint64_t reclaimed = 0;          // expired or flushed items freed
  std::uint64_t get_expired = 0;        // reads that found only an expired item
  std::uint64_t get_flushed = 0;        // reads that found only a flushed item
};

class alignas(64) shard {
 public:
  // 16 buckets to start (128 bytes); doubled at 1.5 items per bucket, so the
  // index costs 5.3 to 8 bytes per item.
  static constexpr std::size_t initial_buckets = 16;

  shard() : buckets_(std::make_unique<item*[]>(initial_buckets)), bucket_count_(initial_buckets) {}
  shard(const shard&) = delete;
  shard& operator=(const shard&) = delete;
  ~shard() {
    clear([](item*) {});
  }

  std::mutex mutex;
  shard_counters counters;

  std::size_t index_bytes() const noexcept { return allocation_cost(bucket_count_ * sizeof(item*)); }

  item* find(std::string_view key, std::uint64_t hash) const noexcept {
    for (item* it = buckets_[hash & (bucket_count_ - 1)]; it != nullptr; it = it->hash_next)
      if (it->key() == key) return it;
    return nullptr;
  }

  // Links a new item at the LRU's head. Returns the change of index_bytes()
  // (the index grows when it gets crowded; growth is skipped, not fatal, when
  // memory for it is missing).
  std::ptrdiff_t link(item* it, std::uint64_t hash) noexcept {
    item*& head = buckets_[hash & (bucket_count_ - 1)];
    it->hash_next = head;
    head = it;
    lru_push_front(it);
    ++count_;
    counters.curr_items += 1;
    counters.value_bytes += it->value_size;
    counters.item_bytes += allocation_cost(item_bytes(it->key_size, it->value_size));
    if (count_ * 2 > bucket_count_ * 3) return grow();
    return 0;
  }

  // Unlinks an item from the index and the LRU; the caller frees it.
  void unlink(item* it, std::uint64_t hash) noexcept {
    item** slot = &buckets_[hash & (bucket_count_ - 1)];
    while (*slot != it) slot = &(*slot)->hash_next;
    *slot = it->hash_next;
    lru_remove(it);
    --count_;
    counters.curr_items -= 1;
    counters.value_bytes -= it->value_size;
    counters.item_bytes -= allocation_cost(item_bytes(it->key_size, it->value_size));
  }

  void bump(item* it) noexcept {
    if (lru_head_ == it) return;
    lru_remove(it);
    lru_push_front(it);
  }

  item* lru_tail() const noexcept { return lru_tail_; }
  std::size_t size() const noexcept { return count_; }

  // Visits up to `budget` items from where the last call stopped, wrapping
  // around the index, so repeated calls see every item. f(item*) may unlink
  // and free the item it is given.
  template <class F>
  std::size_t scan(std::size_t budget, F&& f) {
    std::size_t seen = 0;
    for (std::size_t n = 0; n < bucket_count_ && seen < budget; ++n) {
      const std::size_t b = scan_cursor_++ & (bucket_count_ - 1);
      for (item* it = buckets_[b]; it != nullptr;) {
        item* next = it->hash_next;
        f(it);
        ++seen;
        it = next;
      }
    }
    return seen;
  }

  // Unlinks every item and hands each to f, then frees it.
  template <class F>
  void clear(F&& f) noexcept {
    for (std::size_t b = 0; b < bucket_count_; ++b) {
      for (item* it = buckets_[b]; it != nullptr;) {
        item* next = it->hash_next;
        f(it);
        free_item(it);
        it = next;
      }
      buckets_[b] = nullptr;
    }
    lru_head_ = lru_tail_ = nullptr;
    count_ = 0;
    counters.curr_items = 0;
    counters.value_bytes = 0;
    counters.item_bytes = 0;
  }

  // A key's hash decides its shard (high bits) and its bucket (low bits), so
  // the two never correlate. The shard recomputes it on growth, so it needs
  // the function.
  using hash_fn = std::uint64_t (*)(std::string_view) noexcept;
  void set_hash(hash_fn h) noexcept { hash_ = h; }

 private:
  void lru_push_front(item* it) noexcept {
    it->lru_prev = nullptr;
    it->lru_next = lru_head_;
    if (lru_head_ != nullptr) lru_head_->lru_prev = it;
    lru_head_ = it;
    if (lru_tail_ == nullptr) lru_tail_ = it;
  }

  void lru_remove(item* it) noexcept {
    if (it->lru_prev != nullptr)
      it->lru_prev->lru_next = it->lru_next;
    else
      lru_head_ = it->lru_next;
    if (it->lru_next != nullptr)
      it->lru_next->lru_prev = it->lru_prev;
    else
      lru_tail_ = it->lru_prev;
    it->lru_prev = it->lru_next = nullptr;
  }

  std::ptrdiff_t grow() noexcept {
    const std::size_t bigger = bucket_count_ * 2;
    std::unique_ptr<item*[]> fresh(new (std::nothrow) item*[bigger]());
    if (!fresh) return 0;
    for (std::size_t b = 0; b < bucket_count_; ++b) {
      for (item* it = buckets_[b]; it != nullptr;) {
        item* next = it->hash_next;
        item*& head = fresh[hash_(it->key()) & (bigger - 1)];
        it->hash_next = head;
        head = it;
        it = next;
      }
    }
    const std::size_t before = index_bytes();
    buckets_ = std::move(fresh);
    bucket_count_ = bigger;
    scan_cursor_ = 0;
    return static_cast<std::ptrdiff_t>(index_bytes()) - static_cast<std::ptrdiff_t>(before);
  }

  std::unique_ptr<item*[]> buckets_;
  std::size_t bucket_count_;
  std::size_t count_ = 0;
  std::size_t scan_cursor_ = 0;
  item* lru_head_ = nullptr;
  item* lru_tail_ = nullptr;
  hash_fn hash_ = nullptr;
};

}  // namespace dhtkit::cache::detail

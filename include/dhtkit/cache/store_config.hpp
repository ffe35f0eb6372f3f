/// @file
/// Configuration of the bounded cache store (dhtkit/cache/store.hpp).
///
/// A plain struct with a comment on every default; the defaults are memcached's
/// (-m 64, -I 1m, evict on). The store validates it once, at construction
/// (std::invalid_argument naming the field).
///
/// @code
/// dhtkit::cache::store_config config;
/// config.memory_limit = std::size_t{1024} << 20;  // memcached -m 1024
/// config.evict = false;                           // memcached -M: refuse instead of evicting
/// config.validate();                              // throws std::invalid_argument if inconsistent
/// @endcode
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace dhtkit::cache {

/// Seconds since the server started, as memcached keeps time (rel_time_t). An
/// exptime of 0 means "never"; the store never reads a clock, every call is
/// handed `now`.
using rel_time = std::uint32_t;

/// Configuration of the cache store: its memory limit, item and key sizes,
/// eviction and lock shards.
struct store_config {
  /// What every item may cost together, in bytes: header, key, value, the
  /// allocator's rounding and the hash index (memcached -m, 64 MB by default).
  /// At the limit the least recently used items are evicted, or writes fail
  /// when evict is off.
  std::size_t memory_limit = std::size_t{64} << 20;
  /// The largest item accepted, counted as memcached counts it (value, key and
  /// its 59-byte overhead), so the largest value accepted is the same as
  /// memcached's for the same -I. memcached -I, 1 MiB by default.
  std::size_t max_item_size = std::size_t{1} << 20;
  /// memcached -M turns this off: a write that does not fit fails with
  /// out_of_memory rather than evicting.
  bool evict = true;
  /// Lock shards, a power of two. Each has its own mutex, hash index and LRU,
  /// so threads working on different keys rarely meet; 64 keeps two workers'
  /// collisions under 2 % while costing 64 cache lines of locks.
  std::size_t shards = 64;
  /// Longest key accepted (memcached: 250 bytes).
  std::size_t max_key_size = 250;

  /// Throws std::invalid_argument naming the field if a value is out of range or inconsistent.
  void validate() const {
    if (memory_limit < (std::size_t{1} << 20))
      throw std::invalid_argument("dhtkit::cache::store_config: memory_limit must be at least 1 MiB");
    if (max_item_size < 1024 || max_item_size > (std::size_t{1} << 30))
      throw std::invalid_argument("dhtkit::cache::store_config: max_item_size must be in [1 KiB, 1 GiB]");
    // As memcached: one item may not take more than half the memory.
    if (max_item_size > memory_limit / 2)
      throw std::invalid_argument(
          "dhtkit::cache::store_config: max_item_size must be at most memory_limit / 2");
    if (shards == 0 || shards > 4096 || (shards & (shards - 1)) != 0)
      throw std::invalid_argument("dhtkit::cache::store_config: shards must be a power of two in [1, 4096]");
    if (max_key_size == 0 || max_key_size > 250)
      throw std::invalid_argument("dhtkit::cache::store_config: max_key_size must be in [1, 250]");
  }
};

}  // namespace dhtkit::cache

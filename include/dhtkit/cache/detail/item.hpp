// One cached item in one allocation: the header, then the key, then the value.
//
// The layout is memcached's idea (intrusive links, no per-item containers): a
// 100-byte value with a 10-byte key costs one 176-byte allocation and one
// index slot, instead of a map node, a string and a list node.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string_view>

#include "dhtkit/cache/store_config.hpp"

namespace dhtkit::cache::detail {

struct item {
  item* lru_prev = nullptr;  // towards the most recently used
  item* lru_next = nullptr;  // towards the least recently used
  item* hash_next = nullptr;
  std::uint64_t cas = 0;
  std::uint32_t value_size = 0;
  std::uint32_t flags = 0;
  rel_time exptime = 0;      // 0: never
  rel_time last_access = 0;  // stored or last read
  std::uint8_t key_size = 0;
  std::uint8_t bits = 0;  // fetched_bit | stale_bit | win_sent_bit

  static constexpr std::uint8_t fetched_bit = 1;
  static constexpr std::uint8_t stale_bit = 2;
  static constexpr std::uint8_t win_sent_bit = 4;

  char* data() noexcept { return reinterpret_cast<char*>(this + 1); }
  const char* data() const noexcept { return reinterpret_cast<const char*>(this + 1); }
  std::string_view key() const noexcept { return {data(), key_size}; }
  std::string_view value() const noexcept { return {data() + key_size, value_size}; }
  bool has(std::uint8_t bit) const noexcept { return (bits & bit) != 0; }
  void set(std::uint8_t bit, bool on) noexcept { bits = on ? (bits | bit) : (bits & ~bit); }
};

// What an allocation of n bytes really takes from glibc's malloc: 8 bytes of
// chunk header, rounded up to 16, at least 32. Other allocators differ by a
// few bytes; the memory test checks the sum against RSS.
constexpr std::size_t allocation_cost(std::size_t n) noexcept {
  const std::size_t chunk = (n + sizeof(std::size_t) + 15) & ~std::size_t{15};
  return chunk < 32 ? 32 : chunk;
}

constexpr std::size_t item_bytes(std::size_t key_size, std::size_t value_size) noexcept {
  return sizeof(item) + key_size + value_size;
}

// memcached's size of an item (header 48, CAS 8, key + NUL, value + CRLF):
// -I limits this, so the same -I accepts the same largest value.
constexpr std::size_t memcached_item_size(std::size_t key_size, std::size_t value_size) noexcept {
  return 48 + 8 + key_size + 1 + value_size + 2;
}

// Allocates an item holding key and head + tail; nullptr when out of memory.
inline item* make_item(std::string_view key, std::string_view head, std::string_view tail) noexcept {
  void* raw = std::malloc(item_bytes(key.size(), head.size() + tail.size()));
  if (raw == nullptr) return nullptr;
  auto* it = new (raw) item{};
  it->key_size = static_cast<std::uint8_t>(key.size());
  it->value_size = static_cast<std::uint32_t>(head.size() + tail.size());
  char* out = it->data();
  if (!key.empty()) std::memcpy(out, key.data(), key.size());
  if (!head.empty()) std::memcpy(out + key.size(), head.data(), head.size());
  if (!tail.empty()) std::memcpy(out + key.size() + head.size(), tail.data(), tail.size());
  return it;
}

inline void free_item(item* it) noexcept {
  it->~item();
  std::free(it);
}

}  // namespace dhtkit::cache::detail

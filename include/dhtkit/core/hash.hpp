/// @file
/// The key hash: how dhtkit turns a key into a 64-bit position.
///
/// Every node of a cluster must map a key to the same position, whatever its
/// compiler, standard library or CPU, so std::hash (which differs between
/// implementations and may be salted) is not usable. The default is XXH64 with
/// seed 0 (Yann Collet's xxHash, 64-bit variant): well known, fast on short
/// keys, and checked here against the reference implementation's outputs
/// (tests/core_test.cpp). It reads bytes explicitly as little-endian, so it gives
/// the same value on every platform.
///
/// Any callable satisfying `dhtkit::key_hash` can replace it:
///
/// @code
/// static_assert(dhtkit::key_hash<dhtkit::xxh64_hash>);
/// std::uint64_t pos = dhtkit::xxh64_hash{}("user:42");
/// constexpr auto h = dhtkit::xxh64("abc");   // usable at compile time
/// @endcode
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace dhtkit {

/// A key hash maps a key's bytes to a 64-bit value, identically on every node.
template <class H>
concept key_hash = std::copy_constructible<H> && requires(const H& h, std::string_view key) {
  { h(key) } -> std::same_as<std::uint64_t>;
};

namespace detail::xxh64_impl {

inline constexpr std::uint64_t prime1 = 0x9E3779B185EBCA87ULL;
inline constexpr std::uint64_t prime2 = 0xC2B2AE3D27D4EB4FULL;
inline constexpr std::uint64_t prime3 = 0x165667B19E3779F9ULL;
inline constexpr std::uint64_t prime4 = 0x85EBCA77C2B2AE63ULL;
inline constexpr std::uint64_t prime5 = 0x27D4EB2F165667C5ULL;

constexpr std::uint64_t rotl(std::uint64_t x, int r) noexcept { return (x << r) | (x >> (64 - r)); }

// Byte-wise little-endian loads: endian-independent, constexpr-friendly, and
// compiled to a single load on little-endian targets.
constexpr std::uint64_t read64(const char* p) noexcept {
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<std::uint8_t>(p[i]);
  return v;
}
constexpr std::uint64_t read32(const char* p) noexcept {
  std::uint64_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<std::uint8_t>(p[i]);
  return v;
}

constexpr std::uint64_t round(std::uint64_t acc, std::uint64_t input) noexcept {
  acc += input * prime2;
  acc = rotl(acc, 31);
  return acc * prime1;
}

constexpr std::uint64_t merge_round(std::uint64_t acc, std::uint64_t val) noexcept {
  acc ^= round(0, val);
  return acc * prime1 + prime4;
}

}  // namespace detail::xxh64_impl

/// XXH64 of `data` with `seed`.
constexpr std::uint64_t xxh64(std::string_view data, std::uint64_t seed = 0) noexcept {
  using namespace detail::xxh64_impl;
  const char* p = data.data();
  const char* const end = p + data.size();
  std::uint64_t h = 0;

  if (data.size() >= 32) {
    std::uint64_t v1 = seed + prime1 + prime2;
    std::uint64_t v2 = seed + prime2;
    std::uint64_t v3 = seed;
    std::uint64_t v4 = seed - prime1;
    const char* const limit = end - 32;
    do {
      v1 = round(v1, read64(p));
      v2 = round(v2, read64(p + 8));
      v3 = round(v3, read64(p + 16));
      v4 = round(v4, read64(p + 24));
      p += 32;
    } while (p <= limit);
    h = rotl(v1, 1) + rotl(v2, 7) + rotl(v3, 12) + rotl(v4, 18);
    h = merge_round(h, v1);
    h = merge_round(h, v2);
    h = merge_round(h, v3);
    h = merge_round(h, v4);
  } else {
    h = seed + prime5;
  }

  h += static_cast<std::uint64_t>(data.size());

  for (; end - p >= 8; p += 8) {
    h ^= round(0, read64(p));
    h = rotl(h, 27) * prime1 + prime4;
  }
  if (end - p >= 4) {
    h ^= read32(p) * prime1;
    h = rotl(h, 23) * prime2 + prime3;
    p += 4;
  }
  for (; p < end; ++p) {
    h ^= static_cast<std::uint8_t>(*p) * prime5;
    h = rotl(h, 11) * prime1;
  }

  h ^= h >> 33;
  h *= prime2;
  h ^= h >> 29;
  h *= prime3;
  h ^= h >> 32;
  return h;
}

/// The default key hash: XXH64 with a fixed seed (0 unless configured).
struct xxh64_hash {
  std::uint64_t seed = 0;  ///< change only if every node of the cluster changes it too
  constexpr std::uint64_t operator()(std::string_view key) const noexcept { return xxh64(key, seed); }
};

/// The key hash the ring and the replication storage use unless given another.
using default_key_hash = xxh64_hash;

static_assert(key_hash<xxh64_hash>);

/// A cheap 64-bit finalizer (SplitMix64's), for spreading integers such as
/// virtual-node indices over the ring. Not a key hash: it takes an integer.
constexpr std::uint64_t mix64(std::uint64_t x) noexcept {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

}  // namespace dhtkit

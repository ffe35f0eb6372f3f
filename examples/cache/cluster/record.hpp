// An item as the cluster replicates it: the bytes a cache node stores in the
// DHT node's storage for one key, and the rule that picks one winner among
// concurrent versions.
//
//   cache_record r{.stamp = clock.now(wall_ms), .writer = self.value, .cas = 7, .flags = 0,
//                  .exptime_unix = 0, .bits = 0, .value = "hello"};
//   dhtkit::bytes b = encode_record(r);
//   std::optional<cache_record> back = decode_record(b, max_value);   // nullopt: not a record
//   resolved w = resolve(get_result.siblings, max_value);           // one winner, conflicts counted
//
// Why one winner: a memcached client expects one value per key. The DHT
// node keeps concurrent versions (writes on both sides of a partition) as
// siblings so that nothing is lost silently; the cache then picks the same
// winner on every node -- the highest (stamp, writer), stamp being a hybrid
// logical clock (hybrid_clock.hpp) -- and its next write supersedes them all.
// That is last-writer-wins by a clock that never runs backwards on a node and
// never orders a write before one its coordinator had seen; what it discards
// is counted (cluster_conflicts_resolved).
//
// TTLs travel as absolute unix seconds, so every replica expires an item at
// the same moment whatever its own start time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <tuple>
#include <vector>

#include "dhtkit/replication/versioned_value.hpp"

namespace dhtkit_cache::cluster {

struct cache_record {
  std::uint64_t stamp = 0;        // hybrid logical clock of the write: the later wins
  std::uint64_t writer = 0;       // the coordinating node's id: breaks a tie of stamps
  std::uint64_t cas = 0;          // memcached's CAS unique, the same on every node
  std::uint32_t flags = 0;        // the client's flags
  std::int64_t exptime_unix = 0;  // 0: never
  std::uint8_t bits = 0;          // stale_bit, win_sent_bit (meta's invalidation state)
  std::string value{};

  static constexpr std::uint8_t stale_bit = 1;
  static constexpr std::uint8_t win_sent_bit = 2;

  // What a client can observe: equal items need no write.
  bool same_item(const cache_record& o) const {
    return cas == o.cas && flags == o.flags && exptime_unix == o.exptime_unix && bits == o.bits &&
           value == o.value;
  }
  // The total order every node resolves siblings by.
  bool wins_over(const cache_record& o) const {
    return std::tie(stamp, writer, cas, flags, exptime_unix, bits, value) >
           std::tie(o.stamp, o.writer, o.cas, o.flags, o.exptime_unix, o.bits, o.value);
  }
};

namespace detail {
inline constexpr std::uint8_t record_magic = 0xC1;  // format version 1
inline constexpr std::size_t record_header = 1 + 8 + 8 + 8 + 4 + 8 + 1 + 4;

inline void put_u64(dhtkit::bytes& out, std::uint64_t v, int n = 8) {
  for (int i = 0; i < n; ++i) out.push_back(static_cast<std::byte>((v >> (8 * i)) & 0xFF));
}
inline std::uint64_t get_u64(const std::byte* p, int n = 8) {
  std::uint64_t v = 0;
  for (int i = 0; i < n; ++i) v |= std::uint64_t(std::to_integer<std::uint8_t>(p[i])) << (8 * i);
  return v;
}
}  // namespace detail

inline dhtkit::bytes encode_record(const cache_record& r) {
  dhtkit::bytes out;
  out.reserve(detail::record_header + r.value.size());
  out.push_back(std::byte{detail::record_magic});
  detail::put_u64(out, r.stamp);
  detail::put_u64(out, r.writer);
  detail::put_u64(out, r.cas);
  detail::put_u64(out, r.flags, 4);
  detail::put_u64(out, static_cast<std::uint64_t>(r.exptime_unix));
  out.push_back(std::byte{r.bits});
  detail::put_u64(out, r.value.size(), 4);
  const auto* v = reinterpret_cast<const std::byte*>(r.value.data());
  out.insert(out.end(), v, v + r.value.size());
  return out;
}

// nullopt unless `b` is exactly one record whose value is at most max_value
// bytes: the length field is checked against what is there, never trusted.
inline std::optional<cache_record> decode_record(std::span<const std::byte> b, std::size_t max_value) {
  if (b.size() < detail::record_header || std::to_integer<std::uint8_t>(b[0]) != detail::record_magic)
    return std::nullopt;
  const std::byte* p = b.data() + 1;
  cache_record r;
  r.stamp = detail::get_u64(p);
  r.writer = detail::get_u64(p + 8);
  r.cas = detail::get_u64(p + 16);
  r.flags = static_cast<std::uint32_t>(detail::get_u64(p + 24, 4));
  r.exptime_unix = static_cast<std::int64_t>(detail::get_u64(p + 28));
  r.bits = std::to_integer<std::uint8_t>(p[36]);
  const std::uint64_t length = detail::get_u64(p + 37, 4);
  if (r.bits > (cache_record::stale_bit | cache_record::win_sent_bit)) return std::nullopt;
  if (length > max_value || length != b.size() - detail::record_header) return std::nullopt;
  r.value.assign(reinterpret_cast<const char*>(b.data() + detail::record_header), length);
  return r;
}

// The fields the sweep needs, read without copying the value: nullopt for
// bytes that are not a record.
struct record_header {
  std::uint64_t stamp = 0;
  std::int64_t exptime_unix = 0;
};
inline std::optional<record_header> peek_record(std::span<const std::byte> b, std::size_t max_value) {
  if (b.size() < detail::record_header || std::to_integer<std::uint8_t>(b[0]) != detail::record_magic)
    return std::nullopt;
  const std::uint64_t length = detail::get_u64(b.data() + 38, 4);
  // The same checks as decode_record, so both agree on what is a record.
  const auto bits = std::to_integer<std::uint8_t>(b[37]);
  if (bits > (cache_record::stale_bit | cache_record::win_sent_bit)) return std::nullopt;
  if (length > max_value || length != b.size() - detail::record_header) return std::nullopt;
  return record_header{detail::get_u64(b.data() + 1),
                       static_cast<std::int64_t>(detail::get_u64(b.data() + 29))};
}

struct resolved {
  std::optional<cache_record> winner{};  // nullopt: no live version (absent or deleted)
  std::size_t discarded = 0;             // live versions that lost to the winner (a conflict resolved)
  std::size_t malformed = 0;             // versions that are not records (never written by a cache node)
};

// One winner among a key's live versions (tombstones are not candidates:
// a delete concurrent with a write loses to it, on every node alike).
inline resolved resolve(const std::vector<dhtkit::versioned_value>& siblings, std::size_t max_value) {
  resolved out;
  for (const auto& s : siblings) {
    if (s.tombstone) continue;
    auto r = decode_record(s.value, max_value);
    if (!r) {
      ++out.malformed;
      continue;
    }
    if (!out.winner) {
      out.winner = std::move(*r);
    } else {
      ++out.discarded;
      if (r->wins_over(*out.winner)) out.winner = std::move(*r);
    }
  }
  return out;
}

}  // namespace dhtkit_cache::cluster

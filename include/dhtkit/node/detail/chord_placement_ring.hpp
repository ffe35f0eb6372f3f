// Chord placement: the geometry of a ring of node ids, as free functions on a
// sorted id list, so the current member set and every kept older one answer
// with the same code.
//
// Included by dhtkit/node/chord_placement.hpp; include that, not this.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <limits>
#include <span>
#include <string>
#include <vector>

#include "dhtkit/core/hash.hpp"
#include "dhtkit/core/node_id.hpp"
#include "dhtkit/core/time.hpp"
#include "dhtkit/node/placement.hpp"

namespace dhtkit::detail::chord_ring {

inline constexpr std::uint64_t top = std::numeric_limits<std::uint64_t>::max();

// Index of successor(pos), the first id >= pos, wrapping to 0 past the last.
// ids must be sorted and non-empty.
inline std::size_t successor_index(std::span<const node_id> ids, std::uint64_t pos) noexcept {
  const auto it = std::lower_bound(ids.begin(), ids.end(), node_id{pos});
  const auto i = static_cast<std::size_t>(it - ids.begin());
  return i == ids.size() ? 0 : i;
}

// How many holders a list of `wanted` has on a ring of `ids`: no id twice.
inline std::size_t list_size(std::span<const node_id> ids, std::size_t wanted) noexcept {
  return std::min(wanted, ids.size());
}

// The i-th entry of pos's list: successor(pos) and then clockwise.
inline node_id holder(std::span<const node_id> ids, std::size_t first, std::size_t i) noexcept {
  return ids[(first + i) % ids.size()];
}

// successor(pos) and the next ids clockwise, `wanted` at most.
inline std::vector<node_id> list_at(std::span<const node_id> ids, std::uint64_t pos, std::size_t wanted) {
  std::vector<node_id> out;
  if (ids.empty()) return out;
  const std::size_t first = successor_index(ids, pos);
  const std::size_t count = list_size(ids, wanted);
  out.reserve(count);
  for (std::size_t i = 0; i < count; ++i) out.push_back(holder(ids, first, i));
  return out;
}

inline bool in_list(std::span<const node_id> ids, std::uint64_t pos, std::size_t wanted,
                    node_id id) noexcept {
  if (ids.empty()) return false;
  const std::size_t first = successor_index(ids, pos);
  const std::size_t count = list_size(ids, wanted);
  for (std::size_t i = 0; i < count; ++i)
    if (holder(ids, first, i) == id) return true;
  return false;
}

// Whether pos's first `n` holders differ between two rings, without building
// either list: set_members asks this of every unit.
inline bool lists_differ(std::span<const node_id> a, std::span<const node_id> b, std::uint64_t pos,
                         std::size_t n) noexcept {
  const std::size_t count = list_size(a, n);
  if (count != list_size(b, n)) return true;
  if (count == 0) return false;
  const std::size_t fa = successor_index(a, pos);
  const std::size_t fb = successor_index(b, pos);
  for (std::size_t i = 0; i < count; ++i)
    if (holder(a, fa, i) != holder(b, fb, i)) return true;
  return false;
}

// Every cut of the ring, ascending: the 2^bits partition boundaries and id + 1
// for each id (an arc (pred, id] is [pred + 1, id + 1)). 0 is always there, so
// the units between consecutive cuts never wrap.
inline std::vector<std::uint64_t> cuts(std::span<const node_id> ids, std::uint32_t bits) {
  const std::uint32_t shift = 64 - bits;
  std::vector<std::uint64_t> out;
  out.reserve((std::size_t{1} << bits) + ids.size());
  for (std::uint64_t p = 0; p < (std::uint64_t{1} << bits); ++p) out.push_back(p << shift);
  const auto partitions_end = out.size();
  // id + 1 is ascending except top + 1 = 0, already a partition boundary.
  for (const node_id& id : ids)
    if (id.value != top) out.push_back(id.value + 1);
  std::inplace_merge(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(partitions_end), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

// The unit holding pos, from the partition arithmetic and one binary search
// over ids: the partition's range narrowed to pos's arc (pred, successor].
inline key_range unit_of(std::span<const node_id> ids, std::uint64_t pos, std::uint32_t bits) noexcept {
  const std::uint64_t span_mask = (std::uint64_t{1} << (64 - bits)) - 1;
  const std::uint64_t partition_first = pos & ~span_mask;
  const std::uint64_t partition_last = partition_first | span_mask;
  const auto it = std::lower_bound(ids.begin(), ids.end(), node_id{pos});
  // The arc's lower cut pred + 1 <= pos; with no id below pos the arc starts
  // on the previous lap, before the partition.
  std::uint64_t first = partition_first;
  if (it != ids.begin()) first = std::max(first, std::prev(it)->value + 1);
  // Likewise the arc ends with successor(pos) when it lies on this lap.
  std::uint64_t last = partition_last;
  if (it != ids.end()) last = std::min(last, it->value);
  return key_range{first, last + 1};  // last == top: end 0, which key_range reads as 2^64
}

// Little-endian words into XXH64, so every platform computes the same value.
inline std::uint64_t fingerprint(std::span<const node_id> ids, std::uint32_t n, std::uint32_t bits) {
  std::string bytes;
  bytes.reserve(8 * (ids.size() + 4));
  auto put = [&bytes](std::uint64_t v) {
    for (int i = 0; i < 8; ++i) bytes.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
  };
  // A tag, so a chord node and a one_hop node with the same members and
  // config never look as if they agreed.
  put(0x64726f6863ULL);  // "chord"
  put(n);
  put(bits);
  put(ids.size());
  for (const node_id& id : ids) put(id.value);
  return xxh64(bytes);
}

// A member set placement no longer uses, kept to name previous holders.
struct past_ring {
  std::vector<node_id> ids{};  // sorted
  time_point replaced{};       // when a newer set took its place
};

}  // namespace dhtkit::detail::chord_ring

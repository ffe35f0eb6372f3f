// one_hop's tables: the sorted member list, the per-partition preference
// lists, the holder diff and the fingerprint (node/one_hop.hpp).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "dhtkit/core/hash.hpp"
#include "dhtkit/core/node_id.hpp"
#include "dhtkit/node/placement.hpp"
#include "dhtkit/ring/ring.hpp"

namespace dhtkit::detail {

// The members sorted by id, so every node that agrees on the set builds the
// same ring whatever order membership reported them in. A repeated id or a
// zero weight is a caller's bug (the node feeds SWIM's member table, which has
// one entry per id): refused before anything changes.
inline std::vector<placement_member> one_hop_sorted(std::span<const placement_member> members) {
  std::vector<placement_member> sorted(members.begin(), members.end());
  std::sort(sorted.begin(), sorted.end(),
            [](const placement_member& a, const placement_member& b) { return a.id < b.id; });
  for (std::size_t i = 0; i < sorted.size(); ++i) {
    if (sorted[i].weight == 0)
      throw std::invalid_argument("dhtkit::one_hop::set_members: member " + sorted[i].id.to_string() +
                                  " has weight 0");
    if (i > 0 && sorted[i].id == sorted[i - 1].id)
      throw std::invalid_argument("dhtkit::one_hop::set_members: member " + sorted[i].id.to_string() +
                                  " is listed twice");
  }
  return sorted;
}

// The ring of `next`, from the ring of `current`: members that left or
// changed weight are removed, new or changed ones added. A ring's tokens and
// their order depend on its member set alone (equal tokens order by node), so
// this is the ring a rebuild from scratch gives; but ring::add costs O(V), so
// a rebuild costs O(M x V) (0.7 s at 1000 members, measured) where one join
// costs one add.
inline ring<node_id> one_hop_ring(const ring<node_id>& current, const std::vector<placement_member>& now,
                                  const std::vector<placement_member>& next) {
  auto in = [](const std::vector<placement_member>& set, const placement_member& m) {
    return std::binary_search(set.begin(), set.end(), m,
                              [](const placement_member& a, const placement_member& b) {
                                return a.id < b.id || (a.id == b.id && a.weight < b.weight);
                              });
  };
  ring<node_id> r = current;
  // Removals first, so the ring's size bounds only ever see the smaller set.
  for (const placement_member& m : now)
    if (!in(next, m)) (void)r.remove(m.id);
  for (const placement_member& m : next) {
    if (in(now, m)) continue;
    auto added = r.add(m.id, m.weight);
    if (!added) {
      // Ids are distinct and weights positive: only the ring's size bounds remain.
      throw std::length_error("dhtkit::one_hop::set_members: " + std::to_string(next.size()) +
                              " members exceed the ring's bounds (" + added.error().message() + ")");
    }
  }
  return r;
}

// width ids per partition, partition p at [p * width, (p + 1) * width): the
// ring walk from the partition's first position. Every member appears in
// every walk once the walk is long enough, so all lists have the same length.
inline std::vector<node_id> one_hop_lists(const ring<node_id>& r, std::size_t width) {
  std::vector<node_id> lists;
  if (width == 0) return lists;
  const std::uint32_t q = r.partition_count();
  lists.reserve(std::size_t{q} * width);
  for (std::uint32_t p = 0; p < q; ++p) {
    const auto list = r.preference_list_at(r.partition_begin(p), width);
    // A non-empty ring always yields width distinct ids (width <= members).
    if (!list || list->size() != width) throw std::logic_error("dhtkit::one_hop: short ring walk");
    lists.insert(lists.end(), list->begin(), list->end());
  }
  return lists;
}

// The first `take` ids of every partition's list, for the history.
inline std::vector<node_id> one_hop_prefixes(const std::vector<node_id>& lists, std::size_t width,
                                             std::size_t take) {
  std::vector<node_id> out;
  if (width == 0 || take == 0) return out;
  const std::size_t q = lists.size() / width;
  out.reserve(q * take);
  for (std::size_t p = 0; p < q; ++p) {
    const auto first = lists.begin() + static_cast<std::ptrdiff_t>(p * width);
    out.insert(out.end(), first, first + static_cast<std::ptrdiff_t>(take));
  }
  return out;
}

// Same holders, order aside: n is at most 64, so the quadratic scan is cheaper
// than sorting copies.
inline bool one_hop_same_holders(std::span<const node_id> a, std::span<const node_id> b) noexcept {
  if (a.size() != b.size()) return false;
  for (const node_id& id : a)
    if (std::find(b.begin(), b.end(), id) == b.end()) return false;
  return true;
}

// XXH64 over a little-endian encoding of the placement's identity: a domain
// tag (so no other placement's fingerprint can collide by construction), the
// config fields that change the first n holders, and the sorted (id, weight)
// list. Never 0, which the node reads as "not comparable" (chord's answer).
inline std::uint64_t one_hop_fingerprint(const std::vector<placement_member>& sorted,
                                         const placement_config& cfg) {
  std::string bytes = "dhtkit.one_hop.1";
  auto put = [&bytes](std::uint64_t v, int width) {
    for (int i = 0; i < width; ++i) bytes.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
  };
  put(cfg.partition_bits, 4);
  put(cfg.tokens_per_weight, 4);
  put(cfg.n, 4);
  put(sorted.size(), 8);
  for (const placement_member& m : sorted) {
    put(m.id.value, 8);
    put(m.weight, 4);
  }
  const std::uint64_t h = xxh64(bytes);
  return h == 0 ? 1 : h;
}

}  // namespace dhtkit::detail

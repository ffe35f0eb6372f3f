// The store reads whose callback may change an item's metadata -- touch, gat,
// and mg's T and win tokens -- so a read and its change happen under one lock.
#pragma once

#include <cstdint>
#include <string_view>
#include <variant>

#include "dhtkit/cache/store.hpp"
#include "protocol/request.hpp"

namespace dhtkit_cache {

// A read whose callback may set metadata (touch, gat, meta's win tokens) and
// returns a decision: keep, or erase (a touch to a time already past). The
// item counts as used (LRU bump, access record), as memcached's touch and gat
// do; an erase takes a second, short trip under the lock, and erases only the
// item the read saw (same CAS), not one another client stored in between.
template <class F>
bool read_mutable(cache::store& store, std::string_view key, cache::rel_time now, F&& f) {
  bool erase_it = false;
  std::uint64_t seen_cas = 0;
  const bool hit = store.read(key, now, [&](cache::item_ref& it) {
    erase_it = std::holds_alternative<cache::erase>(f(it));
    seen_cas = it.cas();
  });
  if (erase_it)
    store.modify(key, now, [&](cache::item_ref* it) -> cache::decision {
      if (it != nullptr && it->cas() == seen_cas) return cache::erase{};
      return cache::keep{};
    });
  return hit;
}

// The same without counting as a use (no LRU bump, no access record), for
// meta's u flag: modify() with keep does neither.
template <class F>
bool read_unbumped(cache::store& store, std::string_view key, cache::rel_time now, F&& f) {
  bool hit = false;
  store.modify(key, now, [&](cache::item_ref* it) -> cache::decision {
    if (it == nullptr) return cache::keep{};
    hit = true;
    return f(*it);
  });
  return hit;
}

}  // namespace dhtkit_cache

// The cache store: memcached's item semantics, memory bound, LRU eviction,
// expiry, flush, CAS uniqueness and sharing between threads.
#include "dhtkit/cache/store.hpp"

#include <cstdint>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#if defined(__GLIBC__) && __has_include(<malloc.h>)
#include <malloc.h>
#endif

#include "support/catch.hpp"
#include "support/seeds.hpp"

namespace {

using namespace dhtkit::cache;

modify_result set(store& s, std::string_view key, std::string_view value, rel_time now = 1,
                  rel_time exptime = 0, std::uint32_t flags = 0) {
  return s.modify(key, now, [&](item_ref*) -> decision {
    new_value v;
    v.head = value;
    v.flags = flags;
    v.exptime = exptime;
    return v;
  });
}

std::optional<std::string> get(store& s, std::string_view key, rel_time now = 1) {
  std::string out;
  if (!s.read(key, now, [&](const item_ref& it) { out = it.value(); })) return std::nullopt;
  return out;
}

store_config small(std::size_t mb, std::size_t shards = 64) {
  store_config c;
  c.memory_limit = mb << 20;
  c.max_item_size = std::min<std::size_t>(c.memory_limit / 2, 1 << 20);
  c.shards = shards;
  return c;
}

}  // namespace

TEST_CASE("cache store: set, read, flags and fresh CAS uniques") {
  store s;
  const auto a = set(s, "k", "v1", 1, 0, 42);
  REQUIRE(a.error == store_error::none);
  CHECK_FALSE(a.existed);
  std::uint32_t flags = 0;
  std::uint64_t cas = 0;
  REQUIRE(s.read("k", 2, [&](const item_ref& it) {
    flags = it.flags();
    cas = it.cas();
    CHECK_FALSE(it.fetched());
    CHECK(it.last_access() == 1);
  }));
  CHECK(flags == 42);
  CHECK(cas == a.cas);
  REQUIRE(s.read("k", 3, [&](const item_ref& it) {
    CHECK(it.fetched());
    CHECK(it.last_access() == 2);
  }));
  const auto b = set(s, "k", "v2");
  CHECK(b.existed);
  CHECK(b.cas > a.cas);
  CHECK(get(s, "k") == "v2");
  CHECK_FALSE(get(s, "missing"));
  const auto st = s.stats();
  CHECK(st.curr_items == 1);
  CHECK(st.total_items == 2);
  CHECK(st.value_bytes == 2);
  CHECK(st.bytes == store::item_cost(1, 2));
}

TEST_CASE("cache store: modify sees the live item and can keep, erase or rebuild it") {
  store s;
  set(s, "k", "middle");
  // append and prepend in one: head and tail point into the item being replaced.
  const auto r = s.modify("k", 1, [](item_ref* it) -> decision {
    REQUIRE(it != nullptr);
    new_value v;
    v.head = it->value();
    v.tail = it->value();
    v.flags = it->flags();
    return v;
  });
  CHECK(r.existed);
  CHECK(get(s, "k") == "middlemiddle");
  // keep: metadata setters change the item in place, the CAS stays.
  const auto kept = s.modify("k", 1, [](item_ref* it) -> decision {
    it->set_exptime(100);
    it->set_stale(true);
    return keep{};
  });
  CHECK(kept.cas == r.cas);
  REQUIRE(s.read("k", 2, [](const item_ref& it) {
    CHECK(it.exptime() == 100);
    CHECK(it.stale());
  }));
  // erase, then a callback on a missing key sees nullptr.
  CHECK(s.modify("k", 1, [](item_ref*) -> decision { return erase{}; }).existed);
  CHECK(s.modify("k", 1, [](item_ref* it) -> decision {
           CHECK(it == nullptr);
           return keep{};
         }).existed == false);
  CHECK(s.stats().curr_items == 0);
  CHECK(s.stats().memory_used == s.stats().index_bytes);
}

TEST_CASE("cache store: explicit CAS and items stored stale") {
  store s;
  const auto r = s.modify("k", 1, [](item_ref*) -> decision {
    new_value v;
    v.head = "x";
    v.cas = 777;
    v.stale = true;
    return v;
  });
  CHECK(r.cas == 777);
  REQUIRE(s.read("k", 1, [](const item_ref& it) {
    CHECK(it.cas() == 777);
    CHECK(it.stale());
  }));
}

TEST_CASE("cache store: the largest item is memcached's for the same -I") {
  store_config c;  // -I 1m
  store s(c);
  // memcached counts 48 header + 8 CAS + key + 1 + value + 2.
  const std::size_t largest = c.max_item_size - (48 + 8 + 1 + 1 + 2);
  CHECK(set(s, "k", std::string(largest, 'x')).error == store_error::none);
  CHECK(set(s, "k", std::string(largest + 1, 'x')).error == store_error::too_large);
  CHECK(get(s, "k")->size() == largest);  // a refused write changes nothing
  CHECK(s.stats().too_large == 1);
}

TEST_CASE("cache store: keys that are empty or too long are refused") {
  store s;
  CHECK(set(s, "", "v").error == store_error::bad_key);
  CHECK(set(s, std::string(251, 'k'), "v").error == store_error::bad_key);
  CHECK(set(s, std::string(250, 'k'), "v").error == store_error::none);
  CHECK_FALSE(get(s, std::string(251, 'k')));
}

TEST_CASE("cache store: items expire lazily and by sweep") {
  store s;
  set(s, "short", "v", 10, 15);
  set(s, "never", "v", 10, 0);
  CHECK(get(s, "short", 14) == "v");
  CHECK_FALSE(get(s, "short", 15));  // exptime <= now: gone, as memcached
  CHECK(s.stats().get_expired == 1);
  CHECK(s.stats().curr_items == 1);

  for (int i = 0; i < 1000; ++i) set(s, "e" + std::to_string(i), "v", 10, 20);
  CHECK(s.stats().curr_items == 1001);
  std::size_t freed = 0;
  for (int pass = 0; pass < 1000 && s.stats().curr_items > 1; ++pass) freed += s.sweep(25, 100);
  CHECK(freed == 1000);
  const auto st = s.stats();
  CHECK(st.curr_items == 1);
  CHECK(st.expired_unfetched == 1000);
  CHECK(get(s, "never", 25) == "v");
}

TEST_CASE("cache store: flush_all now, and flush_at a later time") {
  store s;
  for (int i = 0; i < 100; ++i) set(s, "k" + std::to_string(i), "v", 5);
  s.flush_all();
  CHECK(s.stats().curr_items == 0);
  CHECK(s.stats().memory_used == s.stats().index_bytes);
  CHECK_FALSE(get(s, "k1", 5));

  set(s, "old", "v", 5);
  s.flush_at(10);
  CHECK(get(s, "old", 9) == "v");  // read at 9: last access 9 <= 10
  set(s, "later", "v", 11);        // stored after the flush time
  CHECK_FALSE(get(s, "old", 10));  // flushed once now >= 10
  CHECK(s.stats().get_flushed == 1);
  CHECK(get(s, "later", 12) == "v");
}

TEST_CASE("cache store: the memory limit holds and the least recently used go first") {
  store s(small(2, 1));  // one shard: exact LRU order
  const std::string value(100, 'v');
  set(s, "hot", value, 1);
  int stored = 0;
  for (int i = 0; i < 100000; ++i) {
    REQUIRE(set(s, "key" + std::to_string(i), value, 2).error == store_error::none);
    ++stored;
    if (i % 10 == 0) REQUIRE(get(s, "hot", 2));  // keeps it at the LRU's head
  }
  const auto st = s.stats();
  CHECK(st.memory_used <= (std::size_t{2} << 20));
  CHECK(st.evictions > 0);
  CHECK(st.curr_items + st.evictions == static_cast<std::uint64_t>(stored) + 1);
  CHECK(get(s, "hot"));
  CHECK(get(s, "key99999"));
  CHECK_FALSE(get(s, "key0"));
  CHECK(st.evicted_unfetched == st.evictions);
}

TEST_CASE("cache store: a shard with nothing left to evict takes room from the others") {
  store s(small(2, 64));
  // Fill with small items, then store large ones: a large write's own shard
  // soon holds too little, and the others must give way.
  for (int i = 0; i < 10000; ++i) set(s, "small" + std::to_string(i), std::string(100, 's'));
  for (int i = 0; i < 50; ++i)
    REQUIRE(set(s, "big" + std::to_string(i), std::string(500000, 'b')).error == store_error::none);
  CHECK(s.stats().memory_used <= (std::size_t{2} << 20));
  CHECK(get(s, "big49"));
}

TEST_CASE("cache store: with evict off a write past the limit fails and nothing is lost") {
  auto c = small(1);
  c.evict = false;
  store s(c);
  int ok = 0;
  modify_result last;
  for (int i = 0; i < 100000; ++i) {
    last = set(s, "key" + std::to_string(i), std::string(100, 'v'));
    if (last.error != store_error::none) break;
    ++ok;
  }
  CHECK(last.error == store_error::out_of_memory);
  const auto st = s.stats();
  CHECK(st.evictions == 0);
  CHECK(st.curr_items == static_cast<std::uint64_t>(ok));
  CHECK(st.memory_used <= (std::size_t{1} << 20));
  CHECK(st.out_of_memory == 1);
  CHECK(get(s, "key0"));
  // Replacing an item by one no larger still works at the limit.
  CHECK(set(s, "key0", "small").error == store_error::none);
}

TEST_CASE("cache store: stats reset zeroes counters, not contents") {
  store s;
  set(s, "a", "v");
  set(s, "b", "v", 1, 2);
  CHECK_FALSE(get(s, "b", 3));
  s.reset_stats();
  const auto st = s.stats();
  CHECK(st.curr_items == 1);
  CHECK(st.total_items == 0);
  CHECK(st.get_expired == 0);
  CHECK(st.reclaimed == 0);
}

TEST_CASE("cache store: for_each visits every live item once") {
  store s;
  for (int i = 0; i < 5000; ++i) set(s, "k" + std::to_string(i), "v", 1, i % 2 == 0 ? 0 : 5);
  std::set<std::string> seen;
  s.for_each(10, [&](const item_ref& it) { CHECK(seen.insert(std::string(it.key())).second); });
  CHECK(seen.size() == 2500);
}

TEST_CASE("cache store: invalid configurations name the field") {
  store_config c;
  c.shards = 3;
  CHECK_THROWS_WITH(store(c), Catch::Contains("shards"));
  c = {};
  c.max_item_size = c.memory_limit;
  CHECK_THROWS_WITH(store(c), Catch::Contains("max_item_size"));
  c = {};
  c.memory_limit = 1000;
  CHECK_THROWS_WITH(store(c), Catch::Contains("memory_limit"));
}

TEST_CASE("cache store: threads sharing it keep the bound, the counts and CAS uniqueness") {
  for (std::uint64_t seed : dhtkit::test::seeds(3)) {
    DHTKIT_SEED_SCOPE(seed);
    store s(small(4));
    constexpr int threads = 4;
    constexpr int ops = 20000;
    std::vector<std::vector<std::uint64_t>> cas(threads);
    std::vector<std::thread> workers;
    for (int t = 0; t < threads; ++t) {
      workers.emplace_back([&, t] {
        std::mt19937_64 rng(seed * 100 + t);
        for (int i = 0; i < ops; ++i) {
          const std::string key = "k" + std::to_string(rng() % 50000);
          switch (rng() % 4) {
            case 0:
              get(s, key);
              break;
            case 1:
              s.modify(key, 1,
                       [](item_ref* it) -> decision { return it ? decision{erase{}} : decision{keep{}}; });
              break;
            default: {
              const auto r = set(s, key, std::string(50 + rng() % 400, 'x'));
              if (r.error == store_error::none) cas[t].push_back(r.cas);
            }
          }
        }
      });
    }
    for (auto& w : workers) w.join();
    std::set<std::uint64_t> all;
    std::size_t writes = 0;
    for (const auto& c : cas) {
      writes += c.size();
      all.insert(c.begin(), c.end());
    }
    CHECK(all.size() == writes);  // no CAS unique handed out twice
    const auto st = s.stats();
    CHECK(st.memory_used <= (std::size_t{4} << 20));
    std::uint64_t counted = 0;
    s.for_each(1, [&](const item_ref&) { ++counted; });
    CHECK(counted == st.curr_items);
  }
}

// Sanitizers replace malloc, and mallinfo2 with it.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define DHTKIT_TEST_MALLOC_REPLACED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define DHTKIT_TEST_MALLOC_REPLACED 1
#endif
#endif

#if defined(__GLIBC__) && __has_include(<malloc.h>) && !defined(DHTKIT_TEST_MALLOC_REPLACED)
TEST_CASE("cache store: what it counts is what malloc hands out") {
  const auto before = mallinfo2().uordblks;
  std::uint64_t counted = 0;
  {
    store s(small(256));
    for (int i = 0; i < 200000; ++i) set(s, "key:" + std::to_string(i), std::string(100, 'v'));
    counted = s.stats().memory_used;
    const auto used = mallinfo2().uordblks - before;
    INFO("malloc in use " << used << " bytes, store counts " << counted);
    // The store object itself and its 64 shard headers are not counted.
    CHECK(static_cast<double>(used) <= static_cast<double>(counted) * 1.02 + 65536);
    CHECK(static_cast<double>(used) >= static_cast<double>(counted) * 0.98);
  }
}
#endif

TEST_CASE("cache store: a read may change metadata, and peek is a read that does not count as a use") {
  store_config c = small(1, 1);
  store s(c);
  set(s, "a", "v", 1);
  set(s, "b", "v", 2);  // LRU: b (head), a (tail)
  REQUIRE(s.peek("a", 3, [](const item_ref& it) { CHECK_FALSE(it.fetched()); }));
  REQUIRE(s.peek("a", 3, [](const item_ref& it) {
    CHECK_FALSE(it.fetched());  // peek records no access
    CHECK(it.last_access() == 1);
  }));
  REQUIRE(s.read("b", 4, [](item_ref& it) {
    it.set_exptime(50);  // gat: touch under the read's lock
    it.set_win_sent(true);
  }));
  REQUIRE(s.peek("b", 5, [](const item_ref& it) {
    CHECK(it.exptime() == 50);
    CHECK(it.win_sent());
    CHECK(it.fetched());
  }));
  CHECK_FALSE(s.peek("b", 50, [](const item_ref&) {}));  // expired for peek too
  const auto before = s.next_cas();
  CHECK(s.next_cas() == before + 1);
}

TEST_CASE("cache store: an item can be stored with its win token handed out") {
  store s;
  s.modify("k", 1, [](item_ref*) -> decision {
    new_value v;
    v.win_sent = true;
    return v;
  });
  REQUIRE(s.read("k", 1, [](const item_ref& it) {
    CHECK(it.win_sent());
    CHECK(it.value().empty());
  }));
}

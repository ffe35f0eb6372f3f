// The cache store (dhtkit/cache/store.hpp) on its own, without sockets or
// parsing: what one command's store work costs, and memory per item.
//
// 9:1 get:set over 100,000 keys with 100-byte values (issue 13's mix), on 1
// and 2 threads, against the plain alternative timed in the same run: one
// std::unordered_map<std::string, std::string> behind one std::mutex (no LRU,
// no limit, no metadata: a lower bound on work, an upper bound on contention).
// Then the memory the store counts for 1,000,000 items of 100 bytes (what
// -m must hold), against the values' bytes alone.
//
//   bench_cache_store            full run (about 20 s)
//   bench_cache_store --quick    smoke run
//
// JSON Lines on stdout, a line per figure on stderr.
#include <chrono>
#include <cstdint>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "dhtkit/cache/store.hpp"
#include "support/bench.hpp"

namespace {

using namespace dhtkit::cache;
using dhtkit::bench::do_not_optimize;

struct naive_map {
  std::mutex mutex;
  std::unordered_map<std::string, std::string> map;
  bool get(const std::string& key, std::string& out) {
    std::lock_guard lock(mutex);
    const auto it = map.find(key);
    if (it == map.end()) return false;
    out = it->second;
    return true;
  }
  void set(const std::string& key, const std::string& value) {
    std::lock_guard lock(mutex);
    map[key] = value;
  }
};

struct store_adapter {
  store s;
  explicit store_adapter(store_config c) : s(c) {}
  bool get(const std::string& key, std::string& out) {
    return s.read(key, 1, [&](const item_ref& it) { out.assign(it.value()); });
  }
  void set(const std::string& key, const std::string& value) {
    s.modify(key, 1, [&](item_ref*) -> decision {
      new_value v;
      v.head = value;
      return v;
    });
  }
};

// Million operations per second of `threads` threads running the 9:1 mix on
// their own pre-drawn key sequences; the best of `reps` runs.
template <class Target>
double mops(Target& target, const std::vector<std::string>& keys, int threads, std::size_t ops, int reps) {
  const std::string value(100, 'v');
  double best = 0;
  for (int r = 0; r < reps; ++r) {
    std::vector<std::thread> workers;
    const auto t0 = std::chrono::steady_clock::now();
    for (int t = 0; t < threads; ++t) {
      workers.emplace_back([&, t] {
        std::mt19937_64 rng(t + 1);
        std::string out;
        for (std::size_t i = 0; i < ops; ++i) {
          const std::uint64_t draw = rng();
          const std::string& key = keys[draw % keys.size()];
          if ((draw >> 40) % 10 == 0)
            target.set(key, value);
          else
            do_not_optimize(target.get(key, out));
        }
      });
    }
    for (auto& w : workers) w.join();
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, static_cast<double>(ops) * threads / secs / 1e6);
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  const auto opt = dhtkit::bench::parse_options(argc, argv);
  if (!opt) return 2;
  const dhtkit::bench::reporter out{"cache_store"};
  const std::size_t ops = opt->quick ? 200000 : 3000000;
  const int reps = opt->quick ? 1 : 3;

  std::vector<std::string> keys;
  for (int i = 0; i < 100000; ++i) keys.push_back("key:" + std::to_string(i));
  store_config config;
  config.memory_limit = std::size_t{1024} << 20;
  for (const int threads : {1, 2}) {
    store_adapter s(config);
    naive_map m;
    for (const auto& k : keys) {
      s.set(k, std::string(100, 'v'));
      m.set(k, std::string(100, 'v'));
    }
    const double naive = mops(m, keys, threads, ops, reps);
    const double ours = mops(s, keys, threads, ops, reps);
    out.emit("ops/9:1_get_set", "\"threads\":" + std::to_string(threads) + ",\"keys\":100000,\"value\":100",
             ours, "Mops/s", {"unordered_map_one_mutex", naive});
  }

  const int items = opt->quick ? 100000 : 1000000;
  store s(config);
  double key_bytes = 0;
  for (int i = 0; i < items; ++i) {
    const std::string key = "key:" + std::to_string(i);
    key_bytes += static_cast<double>(key.size());
    s.modify(key, 1, [](item_ref*) -> decision {
      new_value v;
      v.head = std::string_view(
          "0123456789012345678901234567890123456789012345678901234567890123456789"
          "012345678901234567890123456789");
      return v;
    });
  }
  const auto st = s.stats();
  out.emit("memory/item", "\"items\":" + std::to_string(items) + ",\"value\":100",
           static_cast<double>(st.memory_used) / items, "bytes",
           {"value_and_key_bytes", 100.0 + key_bytes / items});
  return 0;
}

// Ring lookups against their baselines, balance, and keys moved on join.
//
// Lookup cost (ns/op) of dhtkit::ring::owner (binary search over virtual
// nodes) and ring::partition_owner (the O(1) partition table) at 10, 100 and
// 1000 nodes of 160 virtual nodes, against two baselines timed in the same run:
// hashing the key alone (XXH64) and jump consistent hash (Lamping & Veach 2014)
// of that hash. Keys are one pre-generated array of "key:<n>" strings, cycled,
// so the timings contain no RNG. Then balance (max/mean and stddev of ring
// ownership, keys, partition table, bounded-load table) and the fraction of
// keys that move when one node joins, against the ideal 1/(N+1). Each balance
// figure also has `<name>/quantile` lines: per-node load/mean at q = 0 ... 1.
//
//   bench_ring            full run (about 25 s)
//   bench_ring --quick    smoke run (fewer keys, fewer repetitions)
//
// JSON Lines on stdout, a table on stderr.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "dhtkit/core/hash.hpp"
#include "dhtkit/core/node_id.hpp"
#include "dhtkit/ring/ring.hpp"
#include "support/bench.hpp"

namespace {

using dhtkit::bench::do_not_optimize;

// Jump consistent hash, from the description in Lamping & Veach, "A Fast,
// Minimal Memory, Consistent Hash Algorithm" (2014): follow the sequence of
// bucket counts at which the key would jump, drawing each next jump point from
// a 64-bit LCG seeded with the key, until the jump passes num_buckets.
std::int32_t jump_hash(std::uint64_t key, std::int32_t num_buckets) {
  std::int64_t bucket = -1;
  std::int64_t next = 0;
  while (next < num_buckets) {
    bucket = next;
    key = key * 2862933555777941757ULL + 1;
    const double r = static_cast<double>(std::int64_t{1} << 31) / static_cast<double>((key >> 33) + 1);
    next = static_cast<std::int64_t>(static_cast<double>(bucket + 1) * r);
  }
  return static_cast<std::int32_t>(bucket);
}

// Best of `reps` timings of `ops` calls of f(key), in ns per call. The best,
// not the mean, because on a shared machine noise only ever adds time.
template <class F>
double time_ns(const std::vector<std::string>& keys, std::size_t ops, int reps, F&& f) {
  double best = 1e300;
  for (int r = 0; r < reps; ++r) {
    std::size_t k = 0;
    const auto t0 = std::chrono::steady_clock::now();
    for (std::size_t i = 0; i < ops; ++i) {
      f(std::string_view(keys[k]));
      if (++k == keys.size()) k = 0;
    }
    const auto t1 = std::chrono::steady_clock::now();
    best =
        std::min(best, std::chrono::duration<double, std::nano>(t1 - t0).count() / static_cast<double>(ops));
  }
  return best;
}

struct spread {
  double max_over_mean;
  double stddev_pct;
};
spread spread_of(const std::vector<double>& v) {
  double sum = 0, mx = 0;
  for (double x : v) sum += x, mx = std::max(mx, x);
  const double mean = sum / static_cast<double>(v.size());
  double var = 0;
  for (double x : v) var += (x - mean) * (x - mean);
  var /= static_cast<double>(v.size());
  return {mx / mean, 100.0 * std::sqrt(var) / mean};
}

using id_ring = dhtkit::ring<dhtkit::node_id>;

id_ring build(int nodes, dhtkit::ring_config config) {
  id_ring r{config};
  for (int i = 0; i < nodes; ++i)
    (void)r.add(dhtkit::node_id::from_name("node-" + std::to_string(i))).value();
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  const auto parsed = dhtkit::bench::parse_options(argc, argv);
  if (!parsed) return 2;
  const dhtkit::bench::options opt = *parsed;
  // Figures go to stdout as JSON; this program prints its own tables on stderr.
  const dhtkit::bench::reporter out{"ring", /*echo=*/false};
  const std::size_t key_count = opt.quick ? 100000 : 1000000;
  // Many short interleaved repetitions, keeping the best: on a shared machine
  // noise only ever adds time, and short runs are likelier to see a quiet moment.
  const std::size_t ops = key_count;
  const int reps = opt.quick ? 3 : 15;
  constexpr std::uint32_t vnodes = 160;

  std::vector<std::string> keys;
  keys.reserve(key_count);
  for (std::size_t i = 0; i < key_count; ++i) keys.push_back("key:" + std::to_string(i));

  std::fprintf(stderr, "%-6s %10s %10s %10s %10s %14s %14s\n", "nodes", "xxh64", "jump", "ring", "table",
               "table/hash", "table/jump");
  for (int n : {10, 100, 1000}) {
    const id_ring r = build(n, {});
    const dhtkit::xxh64_hash hash;
    const std::string lookup_params =
        "\"nodes\":" + std::to_string(n) + ",\"vnodes\":" + std::to_string(vnodes);
    const std::string n_params = "\"nodes\":" + std::to_string(n);

    // Interleave the four measurements per repetition so drift hits them alike.
    double t_hash = 1e300, t_jump = 1e300, t_ring = 1e300, t_table = 1e300;
    for (int rep = 0; rep < reps; ++rep) {
      t_hash = std::min(t_hash, time_ns(keys, ops, 1, [&](std::string_view k) { do_not_optimize(hash(k)); }));
      t_jump = std::min(
          t_jump, time_ns(keys, ops, 1, [&](std::string_view k) { do_not_optimize(jump_hash(hash(k), n)); }));
      t_ring = std::min(
          t_ring, time_ns(keys, ops, 1, [&](std::string_view k) { do_not_optimize(r.owner(k)->value); }));
      t_table = std::min(t_table, time_ns(keys, ops, 1, [&](std::string_view k) {
                           do_not_optimize(r.partition_owner(k)->value);
                         }));
    }
    out.emit("hash/xxh64", n_params, t_hash, "ns/op");
    out.emit("owner/jump_hash", n_params, t_jump, "ns/op", dhtkit::bench::baseline{"xxh64", t_hash});
    char vs_hash[96];
    std::snprintf(vs_hash, sizeof vs_hash, ",\"hash_value\":%.4g,\"ratio_vs_hash\":%.3g", t_hash,
                  t_ring / t_hash);
    out.emit("owner/ring", lookup_params, t_ring, "ns/op", {"jump_hash", t_jump}, vs_hash);
    std::snprintf(vs_hash, sizeof vs_hash, ",\"hash_value\":%.4g,\"ratio_vs_hash\":%.3g", t_hash,
                  t_table / t_hash);
    out.emit("owner/partition_table", lookup_params, t_table, "ns/op", {"jump_hash", t_jump}, vs_hash);
    std::fprintf(stderr, "%-6d %10.2f %10.2f %10.2f %10.2f %14.2f %14.2f\n", n, t_hash, t_jump, t_ring,
                 t_table, t_table / t_hash, t_table / t_jump);
  }

  std::fprintf(stderr, "\n%-6s %-26s %10s %10s\n", "nodes", "balance", "max/mean", "stddev%");
  auto report_balance = [&](int n, const char* name, const std::string& params, const std::vector<double>& v,
                            dhtkit::bench::baseline base = {}) {
    const spread s = spread_of(v);
    out.emit(name, params, s.max_over_mean, "max/mean", base);
    const std::string stddev_name = std::string(name) + "/stddev";
    out.emit(stddev_name.c_str(), params, s.stddev_pct, "% of mean");
    std::fprintf(stderr, "%-6d %-26s %10.3f %10.2f\n", n, name, s.max_over_mean, s.stddev_pct);
    // The shape of the spread, not only its two summaries: quantiles of
    // load/mean over the nodes (docs/plots draws them beside jump hash's).
    std::vector<double> sorted = v;
    std::sort(sorted.begin(), sorted.end());
    double sum = 0;
    for (double x : sorted) sum += x;
    const double mean = sum / static_cast<double>(sorted.size());
    const std::string quantile_name = std::string(name) + "/quantile";
    for (double q : {0.0,  0.01, 0.025, 0.05, 0.1,  0.15, 0.2,  0.25, 0.3,  0.35,  0.4,  0.45, 0.5,
                     0.55, 0.6,  0.65,  0.7,  0.75, 0.8,  0.85, 0.9,  0.95, 0.975, 0.99, 1.0}) {
      const auto i = static_cast<std::size_t>(std::lround(q * static_cast<double>(sorted.size() - 1)));
      char q_params[32];
      std::snprintf(q_params, sizeof q_params, ",\"q\":%g", q);
      out.emit(quantile_name, params + q_params, sorted[i] / mean, "load/mean");
    }
    return s;
  };
  for (int n : {10, 100, 1000}) {
    const std::string params = "\"nodes\":" + std::to_string(n) + ",\"vnodes\":" + std::to_string(vnodes);
    const id_ring r = build(n, {});
    const auto members = r.nodes();
    auto index_of = [&](const dhtkit::node_id& id) {
      return static_cast<std::size_t>(std::lower_bound(members.begin(), members.end(), id) - members.begin());
    };

    std::vector<double> space(members.size());
    r.for_each_range([&](std::uint64_t b, std::uint64_t e, const dhtkit::node_id& id) {
      space[index_of(id)] += b == e ? 1.0 : static_cast<double>(e - b) / 18446744073709551616.0;
    });
    report_balance(n, "balance/ring_space", params, space);

    std::vector<double> ring_keys(members.size()), jump_keys(members.size());
    for (const auto& k : keys) {
      ring_keys[index_of(*r.owner(k))] += 1;
      jump_keys[static_cast<std::size_t>(jump_hash(dhtkit::xxh64(k), n))] += 1;
    }
    const spread jump_spread = spread_of(jump_keys);
    const std::string key_params = params + ",\"keys\":" + std::to_string(key_count);
    report_balance(n, "balance/ring_keys", key_params, ring_keys,
                   dhtkit::bench::baseline{"jump_hash", jump_spread.max_over_mean});
    report_balance(n, "balance/jump_hash_keys",
                   "\"nodes\":" + std::to_string(n) + ",\"keys\":" + std::to_string(key_count), jump_keys);

    std::vector<double> table;
    for (std::uint32_t l : r.partition_loads()) table.push_back(l);
    const std::string table_params = params + ",\"partitions\":" + std::to_string(r.partition_count());
    report_balance(n, "balance/partition_table", table_params, table);

    for (double eps : {0.1, 0.25}) {
      dhtkit::ring_config bounded;
      bounded.bounded_loads = true;
      bounded.load_epsilon = eps;
      const id_ring b = build(n, bounded);
      std::vector<double> loads;
      for (std::uint32_t l : b.partition_loads()) loads.push_back(l);
      char eps_params[64];
      std::snprintf(eps_params, sizeof eps_params, ",\"epsilon\":%.2f", eps);
      report_balance(n, "balance/bounded_partition_table", table_params + eps_params, loads);
    }
  }

  std::fprintf(stderr, "\n%-6s %-28s %10s %10s %8s\n", "nodes", "moved on join", "fraction", "1/(N+1)",
               "ratio");
  for (int n : {10, 100, 1000}) {
    const std::string params = "\"nodes\":" + std::to_string(n) + ",\"vnodes\":" + std::to_string(vnodes);
    const double ideal = 1.0 / (n + 1);
    auto report = [&](const char* name, const std::string& p, double fraction) {
      out.emit(name, p, fraction, "fraction", dhtkit::bench::baseline{"ideal_1/(N+1)", ideal});
      std::fprintf(stderr, "%-6d %-28s %10.5f %10.5f %8.3f\n", n, name, fraction, ideal, fraction / ideal);
    };
    id_ring r = build(n, {});
    const id_ring before = r;
    const auto t0 = std::chrono::steady_clock::now();
    auto moved = r.add(dhtkit::node_id::from_name("joiner"));
    const auto t1 = std::chrono::steady_clock::now();
    const double space = [&] {
      double s = 0;
      for (const auto& m : moved.value()) s += static_cast<double>(m.end - m.begin) / 18446744073709551616.0;
      return s;
    }();
    report("moved_on_join/ring_space", params, space);
    std::size_t moved_keys = 0;
    for (const auto& k : keys) moved_keys += before.owner(k)->value != r.owner(k)->value;
    report("moved_on_join/ring_keys", params + ",\"keys\":" + std::to_string(key_count),
           static_cast<double>(moved_keys) / static_cast<double>(key_count));
    auto partitions_moved = [&](const id_ring& a, const id_ring& b) {
      std::size_t m = 0;
      for (std::uint32_t p = 0; p < a.partition_count(); ++p)
        m += a.partition_owner_at(p)->value != b.partition_owner_at(p)->value;
      return static_cast<double>(m) / a.partition_count();
    };
    report("moved_on_join/partition_table", params, partitions_moved(before, r));
    dhtkit::ring_config bounded;
    bounded.bounded_loads = true;
    id_ring rb = build(n, bounded);
    const id_ring rb_before = rb;
    (void)rb.add(dhtkit::node_id::from_name("joiner")).value();
    report("moved_on_join/bounded_partition_table", params + ",\"epsilon\":0.25",
           partitions_moved(rb_before, rb));
    const double add_ms = std::chrono::duration<double, std::milli>(t1 - t0).count();
    out.emit("add_node", params, add_ms, "ms");
    std::fprintf(stderr, "%-6d %-28s %10.3f ms (diff + table rebuild)\n", n, "add_node", add_ms);
  }
  return 0;
}

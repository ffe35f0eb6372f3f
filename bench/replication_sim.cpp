// Seeded replication fault scenarios over any seed range: the five properties
// of support/replication_cluster.hpp checked for each seed, violations printed
// with their seed, a summary as JSON Lines.
//
//   bench_replication_sim --seeds 1..10000     every seed in the range (inclusive)
//   bench_replication_sim --quick              seeds 1..200
//
// Each seed picks 5..9 nodes, an N/R/W shape (3/2/2, 3/1/3, 3/3/1, 5/3/3),
// strict quorum on odd seeds, 2..5 clients and link loss/duplication rates,
// then runs crashes, restarts with and without volatile state, partitions and
// clogs (see scenario_config::random). Exit status 1 if any seed violated a property.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "support/bench.hpp"
#include "support/replication_cluster.hpp"

int main(int argc, char** argv) {
  std::uint64_t first = 1, last = 200;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--quick") == 0) {
      first = 1, last = 200;
    } else if (std::strcmp(argv[i], "--seeds") == 0 && i + 1 < argc) {
      const std::string r = argv[++i];
      const auto dots = r.find("..");
      char* end = nullptr;
      first = std::strtoull(r.c_str(), &end, 10);
      last = dots == std::string::npos ? first : std::strtoull(r.c_str() + dots + 2, &end, 10);
      if (last < first) {
        std::fprintf(stderr, "bad --seeds range %s\n", r.c_str());
        return 2;
      }
    } else {
      std::fprintf(stderr, "usage: %s [--quick] [--seeds A..B]\n", argv[0]);
      return 2;
    }
  }
  const dhtkit::bench::reporter out{"replication_sim"};
  const auto t0 = std::chrono::steady_clock::now();
  std::uint64_t seeds = 0, violating = 0, violations = 0, not_converged = 0, rounds_sum = 0, rounds_max = 0;
  std::uint64_t acked = 0, reads = 0, single = 0, max_siblings = 0, max_clock = 0;
  for (std::uint64_t seed = first; seed <= last; ++seed) {
    const auto r = dhtkit::test::run_scenario(dhtkit::test::scenario_config::random(seed));
    ++seeds;
    if (!r.violations.empty()) {
      ++violating;
      violations += r.violations.size();
      for (const auto& v : r.violations) std::fprintf(stderr, "VIOLATION %s\n", v.c_str());
    }
    if (!r.converged) ++not_converged;
    rounds_sum += r.converge_rounds;
    rounds_max = std::max(rounds_max, r.converge_rounds);
    acked += r.writes_acked;
    reads += r.reads;
    single += r.single_version_reads;
    max_siblings = std::max(max_siblings, r.max_siblings_seen);
    max_clock = std::max(max_clock, r.max_clock_entries);
    if (seed == last) break;
  }
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const std::string p = "\"first_seed\":" + std::to_string(first) + ",\"last_seed\":" + std::to_string(last);
  out.emit("seeds_run", p, static_cast<double>(seeds), "seeds");
  out.emit("seeds_with_violations", p, static_cast<double>(violating), "seeds");
  out.emit("violations", p, static_cast<double>(violations), "violations");
  out.emit("not_converged", p, static_cast<double>(not_converged), "seeds");
  out.emit("wall_time", p, wall, "s");
  out.emit("ae_rounds_to_converge/mean", p,
           seeds ? static_cast<double>(rounds_sum) / static_cast<double>(seeds) : 0, "rounds");
  out.emit("ae_rounds_to_converge/max", p, static_cast<double>(rounds_max), "rounds");
  out.emit("writes_acked", p, static_cast<double>(acked), "writes");
  out.emit("single_version_reads", p,
           reads ? 100.0 * static_cast<double>(single) / static_cast<double>(reads) : 0, "%");
  out.emit("max_siblings_seen", p, static_cast<double>(max_siblings), "siblings");
  out.emit("max_clock_entries", p, static_cast<double>(max_clock), "entries");
  return violating == 0 ? 0 : 1;
}

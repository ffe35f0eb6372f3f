// Replication on the simulator: throughput and latency per N/R/W, convergence
// after a heal per repair mechanism, and how often reads see one version.
//
//   bench_replication            full run
//   bench_replication --quick    shorter workloads (well under a minute)
//
// All times are simulated (the deterministic network: 1 ms +- 0.5 ms one-way
// latency), so they measure the protocol (round trips, timeouts, retries),
// not this machine. Figures:
//  - throughput (acknowledged operations per simulated second, 8 clients each
//    doing read-merge-write cycles with 20-40 ms think time, 7 nodes) and get/put
//    latency p50/p99 for N/R/W = 3/2/2, 3/1/3, 3/3/1, without and with faults
//    (crashes, partitions, clogs, 2% loss, 2% duplication);
//  - convergence after a heal, each mechanism alone: 200 keys written while one
//    replica was away, then the time until every key's replicas are identical
//    with only read repair (one read per key), only hinted handoff, or only
//    anti-entropy (no reads, no hints);
//  - the share of reads that returned exactly one version, under contention
//    (8 clients on 3 keys) and without (8 clients on 200 keys), against
//    Dynamo's 99.94 % (a day of production traffic, SOSP 2007, section 6.3).
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "support/bench.hpp"
#include "support/replication_cluster.hpp"

namespace {

using dhtkit::test::replication_cluster;
using dhtkit::test::scenario_config;

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const auto i = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

std::string shape(const dhtkit::replica_config& c) {
  return std::to_string(c.n) + "/" + std::to_string(c.r) + "/" + std::to_string(c.w);
}

// Writes every key once through its first replica while `away` is cut off or
// down, heals, and returns simulated ms until all replicas are identical.
double converge_ms(const char* mechanism, bool quick) {
  scenario_config c;
  c.seed = 7;
  c.nodes = 5;
  c.clients = 0;
  c.faults = false;
  c.set_keys = quick ? 100 : 200;
  c.delete_keys = 0;
  c.replica.w = 1;
  c.replica.request_timeout = dhtkit::millis(300);
  const std::string m = mechanism;
  c.replica.read_repair = m == "read_repair";
  c.replica.strict_quorum = m != "hinted_handoff";  // strict: no fallbacks, no hints
  if (m != "anti_entropy") c.replica.anti_entropy_interval = dhtkit::seconds(3600);
  replication_cluster cl(c);
  auto& net = cl.net();
  const std::size_t away = 0;
  if (m == "hinted_handoff") {
    cl.crash_now(away);
  } else {
    net.isolate(cl.endpoint(away));
  }
  for (std::size_t k = 0; k < cl.key_count(); ++k) {
    // Coordinate on a true replica other than `away`.
    const auto pl = cl.placement().preference_list(cl.key_name(k), c.replica.n);
    for (std::size_t i = 1; i < cl.size(); ++i) {
      if (std::find(pl->begin(), pl->end(), cl.core(i).self()) == pl->end()) continue;
      std::string value = "v";
      value += std::to_string(k);
      (void)cl.core(i).put(cl.key_name(k), dhtkit::to_bytes(value), {}, net.now());
      cl.drain_node(i);
      break;
    }
  }
  net.run_for(dhtkit::seconds(1));
  if (m == "hinted_handoff") {
    cl.restart_now(away);
  } else {
    net.heal_all();
  }
  const dhtkit::time_point healed = net.now();
  if (m == "read_repair") {
    for (std::size_t k = 0; k < cl.key_count(); ++k) {
      (void)cl.core(1 + k % (cl.size() - 1)).get(cl.key_name(k), net.now());
      cl.drain_node(1 + k % (cl.size() - 1));
    }
  }
  const bool ok = net.run_until(healed + dhtkit::seconds(600), [&] { return cl.identical(); });
  return ok ? std::chrono::duration<double, std::milli>(net.now() - healed).count() : -1;
}

}  // namespace

int main(int argc, char** argv) {
  auto opt = dhtkit::bench::parse_options(argc, argv);
  if (!opt) return 2;
  const dhtkit::bench::reporter out{"replication"};
  const dhtkit::duration workload = opt->quick ? dhtkit::seconds(5) : dhtkit::seconds(30);

  const std::uint32_t shapes[3][3] = {{3, 2, 2}, {3, 1, 3}, {3, 3, 1}};
  for (bool faults : {false, true}) {
    for (const auto& s : shapes) {
      scenario_config c;
      c.seed = 11;
      c.nodes = 7;
      c.clients = 8;
      c.set_keys = 50;
      c.delete_keys = 0;
      c.faults = faults;
      c.workload = workload;
      c.collect_phase = false;
      c.replica.n = s[0];
      c.replica.r = s[1];
      c.replica.w = s[2];
      const auto r = dhtkit::test::run_scenario(c);
      const double secs = std::chrono::duration<double>(workload).count();
      const std::string p =
          "\"nrw\":\"" + shape(c.replica) + "\",\"faults\":" + (faults ? "true" : "false") +
          ",\"nodes\":7,\"clients\":8,\"violations\":" + std::to_string(r.violations.size());
      out.emit("throughput", p, static_cast<double>(r.writes_acked + r.reads) / secs, "ops/sim_s");
      out.emit("get_latency/p50", p, percentile(r.get_latency_ms, 0.50), "sim_ms");
      out.emit("get_latency/p99", p, percentile(r.get_latency_ms, 0.99), "sim_ms");
      out.emit("put_latency/p50", p, percentile(r.put_latency_ms, 0.50), "sim_ms");
      out.emit("put_latency/p99", p, percentile(r.put_latency_ms, 0.99), "sim_ms");
      out.emit("failed_ops", p, static_cast<double>(r.writes_failed + r.reads_failed), "ops");
    }
  }

  for (const char* m : {"read_repair", "hinted_handoff", "anti_entropy"}) {
    const std::string p =
        std::string("\"mechanism\":\"") + m + "\",\"nodes\":5,\"keys\":" + (opt->quick ? "100" : "200");
    out.emit("convergence_after_heal", p, converge_ms(m, opt->quick), "sim_ms");
  }

  for (std::size_t keys : {std::size_t{3}, std::size_t{200}}) {
    scenario_config c;
    c.seed = 13;
    c.nodes = 5;
    c.clients = 8;
    c.set_keys = keys;
    c.delete_keys = 0;
    c.faults = false;
    c.workload = workload;
    c.collect_phase = false;
    const auto r = dhtkit::test::run_scenario(c);
    const std::string p = "\"nrw\":\"3/2/2\",\"clients\":8,\"keys\":" + std::to_string(keys) +
                          ",\"reads\":" + std::to_string(r.reads);
    out.emit("single_version_reads", p,
             r.reads ? 100.0 * static_cast<double>(r.single_version_reads) / static_cast<double>(r.reads) : 0,
             "%", {"dynamo_sosp2007", 99.94});
  }
  return 0;
}

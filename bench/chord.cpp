// Chord on the simulator against the paper (Stoica et al., ToN 2003).
//
//   1. path length: mean, p1 and p99 hops of 100*N lookups of random keys from
//      random nodes, N = 2^4 ... 2^14, against the paper's (1/2) log2 N. Rings
//      up to `protocol_max` nodes are built by the protocol itself (joins in
//      bursts through random members, run to convergence of every successor
//      list, then fingers refreshed with fix_fingers accelerated to 10 per
//      stabilization period); every size is also measured on a ring whose
//      state is installed by an oracle that knows the whole ring
//      (chord::detail::router_access, tests and benchmarks only), which is how
//      the largest rings are measured. Where both run, both are printed.
//   2. failures: a fraction p = 0.1 ... 0.5 of a converged ring crashes at
//      once; lookup success (the true live owner found) and mean hops right
//      after, before any stabilization, and after the ring has healed. The
//      paper's figure is the fraction of keys whose data died with their
//      owner (about p, reported as the baseline): routing itself should not fail.
//   3. churn: N = 500, stabilization every 30 s (as in the paper), nodes
//      crash and join at k = 0.05 ... 0.4 each per stabilization period,
//      10 lookups per simulated second; the fraction of lookups that fail or
//      name a node other than the true owner among adopted members, against
//      the paper's k/100.
//   4. maintenance messages per node per stabilization period (steady state,
//      no lookups) and wall time per simulated minute (from the churn run).
//
//   bench_chord            full run (several minutes)
//   bench_chord --quick    smoke run (< 1 minute)
//
// JSON Lines on stdout, a table on stderr. Lookups count as hops the nodes
// that answered a routing request; the owner check (verify_owner) is one more
// request, reported as messages per lookup.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "dhtkit/chord/router.hpp"
#include "support/bench.hpp"
#include "support/chord_cluster.hpp"

namespace {

using dhtkit::node_id;
using dhtkit::test::chord_cluster;
using rng_t = dhtkit::random_engine;

struct lookup_figures {
  std::size_t issued = 0;
  std::size_t correct = 0;
  double mean_hops = 0;
  double p1 = 0;
  double p99 = 0;
  double messages_per_lookup = 0;
};

// `count` lookups of random keys from random members, `batch` at a time;
// correct = succeeded and named the true owner (ring(), or adopted_ring()).
lookup_figures measure_lookups(chord_cluster& c, rng_t& rng, std::size_t count, std::size_t batch,
                               dhtkit::duration settle) {
  struct issued {
    std::size_t node;
    dhtkit::chord::lookup_id id;
    std::uint64_t key;
  };
  const auto members = c.ring();
  std::vector<std::uint32_t> hops;
  hops.reserve(count);
  lookup_figures f;
  const std::uint64_t sent_before = c.messages_sent();
  for (std::size_t done = 0; done < count; done += batch) {
    std::vector<issued> all;
    for (std::size_t q = 0; q < batch && done + q < count; ++q) {
      const std::size_t node = members[rng.below(members.size())].second;
      const std::uint64_t key = rng.next();
      auto id = c.lookup(node, key);
      if (id) all.push_back({node, *id, key});
    }
    c.run_for(settle);
    // The truth once per batch: c.true_owner() sorts the whole ring per call,
    // which made 100*N lookups quadratic in N (hours at N = 2^14).
    const auto truth = c.ring();
    for (const auto& q : all) {
      ++f.issued;
      const auto* r = c.result_of(q.node, q.id);
      if (r == nullptr || r->error || truth.empty()) continue;
      auto it = std::lower_bound(truth.begin(), truth.end(), std::pair<std::uint64_t, std::size_t>{q.key, 0});
      const std::size_t owner = it == truth.end() ? truth.front().second : it->second;
      if (c.router(owner).id() == r->owner.id) {
        ++f.correct;
        hops.push_back(r->hops);
      }
    }
    for (const auto& q : all) c.at(q.node).results.erase(q.id);
  }
  f.messages_per_lookup = static_cast<double>(c.messages_sent() - sent_before) / static_cast<double>(count);
  if (!hops.empty()) {
    std::sort(hops.begin(), hops.end());
    double sum = 0;
    for (auto h : hops) sum += h;
    f.mean_hops = sum / static_cast<double>(hops.size());
    f.p1 = hops[hops.size() / 100];
    f.p99 = hops[std::min(hops.size() - 1, hops.size() * 99 / 100)];
  }
  return f;
}

// Path-length configuration: the paper's 30 s stabilization so maintenance
// barely runs while lookups are measured.
dhtkit::chord::router_config quiet_config(std::size_t n) {
  dhtkit::chord::router_config cfg;
  cfg.expected_nodes = n;
  cfg.stabilize_period = dhtkit::seconds(30);
  cfg.check_predecessor_period = dhtkit::seconds(30);
  cfg.fix_fingers_period = dhtkit::seconds(30);
  cfg.max_pending_lookups = 1 << 16;
  cfg.max_pending_requests = 1 << 17;
  cfg.max_outbox_messages = 1 << 17;
  return cfg;
}

dhtkit::sim::network_config big_network() {
  dhtkit::sim::network_config net;
  net.max_timers = 1 << 24;
  return net;
}

void add_nodes(chord_cluster& c, rng_t& rng, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) c.add(node_id{rng.next()});
}

// Grows a ring through the protocol (bursts of joins through random members)
// and runs it until every successor list and predecessor is exact; then
// fingers. Returns the rounds it took, or 0 if it did not converge.
std::size_t build_by_protocol(chord_cluster& c, rng_t& rng, std::size_t n) {
  c.add(node_id{rng.next()});
  c.create(0);
  std::size_t rounds = 0;
  const std::size_t burst = std::max<std::size_t>(8, n / 16);
  while (c.size() < n) {
    for (std::size_t k = 0; k < burst && c.size() < n; ++k) {
      const auto r = c.ring();
      (void)c.join(c.add(node_id{rng.next()}), r[rng.below(r.size())].second);
    }
    c.run_rounds(1);
    ++rounds;
  }
  while (!c.converged() && rounds < 2000) {
    c.run_rounds(1);
    ++rounds;
  }
  if (!c.converged()) return 0;
  c.run_rounds(8);  // fingers: 10 finger lookups per round, ~log2 N distinct fingers
  return rounds;
}

void path_lengths(const dhtkit::bench::reporter& out, bool quick) {
  const unsigned max_log = quick ? 10 : 14;
  const unsigned protocol_max_log = quick ? 7 : 10;
  std::fprintf(stderr, "\npath length (100*N lookups; paper: (1/2) log2 N)\n");
  std::fprintf(stderr, "%7s %-9s %8s %5s %5s %10s %9s %8s\n", "N", "built by", "mean", "p1", "p99",
               "(1/2)lgN", "msgs/lkp", "correct");
  for (unsigned lg = 4; lg <= max_log; ++lg) {
    const std::size_t n = std::size_t{1} << lg;
    const std::size_t lookups = quick ? std::min<std::size_t>(100 * n, 20000) : 100 * n;
    const double paper = 0.5 * lg;
    for (int mode = 0; mode < 2; ++mode) {
      const bool protocol = mode == 0;
      if (protocol && lg > protocol_max_log) continue;
      auto cfg = quiet_config(n);
      std::size_t rounds = 0;
      if (protocol) {
        cfg.stabilize_period = dhtkit::seconds(1);
        cfg.check_predecessor_period = dhtkit::seconds(1);
        cfg.fix_fingers_period = dhtkit::millis(100);
      }
      chord_cluster c(1000 + lg, cfg, big_network());
      rng_t rng(lg);
      if (protocol) {
        rounds = build_by_protocol(c, rng, n);
        if (rounds == 0) {
          std::fprintf(stderr, "N=%zu: the protocol did not converge\n", n);
          continue;
        }
      } else {
        add_nodes(c, rng, n);
        c.install_oracle();
      }
      const auto f = measure_lookups(c, rng, lookups, 4096, dhtkit::seconds(5));
      const std::string params = "\"nodes\":" + std::to_string(n) +
                                 ",\"lookups\":" + std::to_string(lookups) + ",\"built_by\":\"" +
                                 (protocol ? "protocol" : "oracle") + "\"";
      out.emit("path_length/mean", params, f.mean_hops, "hops", {"paper_half_log2_n", paper});
      out.emit("path_length/p1", params, f.p1, "hops");
      out.emit("path_length/p99", params, f.p99, "hops");
      out.emit("path_length/correct", params, static_cast<double>(f.correct) / static_cast<double>(f.issued),
               "fraction");
      if (!protocol) out.emit("path_length/messages_per_lookup", params, f.messages_per_lookup, "messages");
      if (protocol) out.emit("build/rounds_to_converge", params, static_cast<double>(rounds), "rounds");
      std::fprintf(stderr, "%7zu %-9s %8.3f %5.0f %5.0f %10.2f %9.2f %8.5f\n", n,
                   protocol ? "protocol" : "oracle", f.mean_hops, f.p1, f.p99, paper, f.messages_per_lookup,
                   static_cast<double>(f.correct) / static_cast<double>(f.issued));
    }
  }
}

void failures(const dhtkit::bench::reporter& out, bool quick) {
  const std::size_t n = quick ? 256 : 1024;
  const std::size_t lookups = quick ? 2000 : 10000;
  std::fprintf(stderr,
               "\nsimultaneous failures, N=%zu (paper: lookups fail only for keys whose data died, ~p)\n", n);
  std::fprintf(stderr, "%5s %14s %11s %14s %11s %10s %8s\n", "p", "success before", "hops before",
               "success after", "hops after", "owner died", "rounds");
  for (double p : {0.1, 0.2, 0.3, 0.4, 0.5}) {
    auto cfg = quiet_config(n);
    chord_cluster c(77, cfg, big_network());
    rng_t rng(static_cast<std::uint64_t>(p * 1000));
    add_nodes(c, rng, n);
    c.install_oracle();
    // Keys whose owner dies: the paper's "data lost" fraction.
    std::vector<std::uint64_t> keys(lookups);
    for (auto& k : keys) k = rng.next();
    std::vector<std::size_t> owners_before;
    for (auto k : keys) owners_before.push_back(*c.true_owner(k));
    std::vector<std::size_t> order(n);
    for (std::size_t i = 0; i < n; ++i) order[i] = i;
    for (std::size_t i = n; i > 1; --i) std::swap(order[i - 1], order[rng.below(i)]);
    const auto victims = static_cast<std::size_t>(p * static_cast<double>(n));
    for (std::size_t i = 0; i < victims; ++i) c.crash(order[i]);
    std::size_t owner_died = 0;
    for (auto o : owners_before) owner_died += c.live(o) ? 0 : 1;
    const auto before =
        measure_lookups(c, rng, lookups, lookups, dhtkit::seconds(8));  // all at once, within 8 s
    // Heal: run 30 s stabilization periods until every list is exact again.
    std::size_t rounds = 0;
    while (!c.converged() && rounds < 80) {
      c.run_rounds(1);
      ++rounds;
    }
    c.run_rounds(10);  // fingers
    const auto after = measure_lookups(c, rng, lookups, 1000, dhtkit::seconds(8));
    const std::string params = "\"nodes\":" + std::to_string(n) + ",\"p\":" + std::to_string(p).substr(0, 3);
    const double died = static_cast<double>(owner_died) / static_cast<double>(lookups);
    const double s_before = static_cast<double>(before.correct) / static_cast<double>(before.issued);
    const double s_after = static_cast<double>(after.correct) / static_cast<double>(after.issued);
    out.emit("failures/success_before_stabilization", params, s_before, "fraction");
    out.emit("failures/hops_before_stabilization", params, before.mean_hops, "hops");
    out.emit("failures/success_after_stabilization", params, s_after, "fraction");
    out.emit("failures/hops_after_stabilization", params, after.mean_hops, "hops");
    out.emit("failures/keys_whose_owner_died", params, died, "fraction", {"paper_p", p});
    out.emit("failures/rounds_to_heal", params, static_cast<double>(rounds), "rounds");
    std::fprintf(stderr, "%5.1f %14.4f %11.3f %14.4f %11.3f %10.4f %8zu\n", p, s_before, before.mean_hops,
                 s_after, after.mean_hops, died, rounds);
  }
}

// One churn run: returns {failed fraction, lookups, wall seconds per simulated minute}.
void churn(const dhtkit::bench::reporter& out, bool quick) {
  const std::size_t n = quick ? 100 : 500;
  const int periods = quick ? 6 : 20;
  std::fprintf(stderr,
               "\nchurn, N=%zu, stabilization every 30 s, %d periods per rate (paper: ~k/100 failed for k "
               "per period)\n",
               n, periods);
  std::fprintf(stderr, "%6s %10s %9s %12s %14s %12s\n", "k", "failed", "lookups", "msgs/node/p",
               "wall s/sim min", "paper k/100");
  for (double k : {0.05, 0.1, 0.2, 0.3, 0.4}) {
    dhtkit::chord::router_config cfg;
    cfg.expected_nodes = n;
    cfg.stabilize_period = dhtkit::seconds(30);
    cfg.check_predecessor_period = dhtkit::seconds(30);
    cfg.fix_fingers_period = dhtkit::seconds(3);
    chord_cluster c(500 + static_cast<std::uint64_t>(k * 100), cfg, big_network());
    rng_t rng(static_cast<std::uint64_t>(k * 1000) + 5);
    add_nodes(c, rng, n);
    c.install_oracle();
    c.run_rounds(2);
    // Events: a crash and a join, each at rate k per 30 s, as independent
    // per-second Bernoulli draws (k/30 per second); 10 lookups per second.
    const std::uint64_t threshold = dhtkit::probability_threshold(k / 30.0);
    std::size_t issued = 0, failed = 0;
    const std::uint64_t sent_before = c.messages_sent();
    const auto wall0 = std::chrono::steady_clock::now();
    struct pending {
      std::size_t node;
      dhtkit::chord::lookup_id id;
      std::uint64_t key;
    };
    std::vector<pending> waiting;
    const int seconds_total = periods * 30;
    for (int s = 0; s < seconds_total; ++s) {
      const auto live = c.ring();
      if (rng.chance(threshold) && live.size() > n / 2) c.crash(live[rng.below(live.size())].second);
      if (rng.chance(threshold)) {
        const auto r = c.ring();
        (void)c.join(c.add(node_id{rng.next()}), r[rng.below(r.size())].second);
      }
      const auto members = c.ring();
      for (int q = 0; q < 10; ++q) {
        const std::size_t node = members[rng.below(members.size())].second;
        const std::uint64_t key = rng.next();
        if (auto id = c.lookup(node, key)) waiting.push_back({node, *id, key});
      }
      c.run_for(dhtkit::seconds(1));
      // Judge the lookups that completed, against the adopted members now.
      const auto adopted = c.adopted_ring();
      std::vector<pending> still;
      for (const auto& w : waiting) {
        const auto* r = c.result_of(w.node, w.id);
        if (r == nullptr) {
          if (c.live(w.node)) {
            still.push_back(w);
          } else {
            ++issued;
            ++failed;  // its initiator crashed
          }
          continue;
        }
        ++issued;
        bool ok = false;
        if (!r->error && !adopted.empty()) {
          auto it = std::lower_bound(adopted.begin(), adopted.end(),
                                     std::pair<std::uint64_t, std::size_t>{w.key, 0});
          const std::size_t owner = it == adopted.end() ? adopted.front().second : it->second;
          ok = c.router(owner).id() == r->owner.id;
        }
        failed += ok ? 0 : 1;
        c.at(w.node).results.erase(w.id);
      }
      waiting = std::move(still);
    }
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count();
    const double sim_minutes = seconds_total / 60.0;
    const double rate = static_cast<double>(failed) / static_cast<double>(std::max<std::size_t>(issued, 1));
    const double msgs =
        static_cast<double>(c.messages_sent() - sent_before) / static_cast<double>(n) / periods;
    const std::string params =
        "\"nodes\":" + std::to_string(n) + ",\"k_per_period\":" + std::to_string(k).substr(0, 4);
    out.emit("churn/failed_lookups", params, rate, "fraction", {"paper_k_over_100", k / 100.0});
    out.emit("churn/lookups", params, static_cast<double>(issued), "lookups");
    out.emit("churn/messages_per_node_per_period", params, msgs, "messages", {},
             ",\"note\":\"with 10 lookups/s\"");
    out.emit("churn/wall_per_simulated_minute", params, wall / sim_minutes, "s");
    std::fprintf(stderr, "%6.2f %10.4f %9zu %12.2f %14.3f %12.4f\n", k, rate, issued, msgs,
                 wall / sim_minutes, k / 100.0);
  }
}

void maintenance(const dhtkit::bench::reporter& out, bool quick) {
  std::fprintf(stderr,
               "\nmaintenance messages per node per stabilization period (no lookups, steady state)\n");
  for (std::size_t n : {std::size_t{64}, std::size_t{256}, std::size_t{1024}}) {
    if (quick && n > 256) continue;
    dhtkit::chord::router_config cfg;  // the defaults: every period 1 s, one finger per period
    cfg.expected_nodes = n;
    chord_cluster c(9, cfg, big_network());
    rng_t rng(n);
    add_nodes(c, rng, n);
    c.install_oracle();
    c.run_rounds(5);
    const std::uint64_t before = c.messages_sent();
    const auto wall0 = std::chrono::steady_clock::now();
    const int periods = 60;
    c.run_rounds(periods);
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count();
    const double per = static_cast<double>(c.messages_sent() - before) / static_cast<double>(n) / periods;
    const std::string params = "\"nodes\":" + std::to_string(n) + ",\"period_s\":1";
    out.emit("maintenance/messages_per_node_per_period", params, per, "messages");
    out.emit("maintenance/wall_per_simulated_minute", params, wall, "s");
    std::fprintf(stderr, "N=%5zu  %.2f messages/node/period   %.3f s wall per simulated minute\n", n, per,
                 wall);
  }
}

}  // namespace

int main(int argc, char** argv) {
  auto opt = dhtkit::bench::parse_options(argc, argv);
  if (!opt) return 2;
  const dhtkit::bench::reporter out{"chord", /*echo=*/false};
  path_lengths(out, opt->quick);
  failures(out, opt->quick);
  churn(out, opt->quick);
  maintenance(out, opt->quick);
  return 0;
}

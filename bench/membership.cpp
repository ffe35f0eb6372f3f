// SWIM membership on the simulator, against SWIM's and Lifeguard's figures.
//
// For N = 16, 64, 256, 1000 members (LAN preset: 1 s protocol period, 1 ms
// +- 0.5 ms links):
// - detect/first_probe: crash -> first member probes it, in periods (mean,
//   p99); SWIM: e/(e-1) = 1.58 (whole periods; about 1.0 measured from a
//   random instant). p99 for large N is about ln(100) = 4.6: nobody probes
//   the crashed member in a period with probability about 1/e.
// - detect/first_suspect: crash -> first member suspects it (a probe period
//   later), in periods.
// - detect/all_dead: crash -> every live member marks it dead (p50, p99).
// - detect/{first_probe,first_suspect,all_dead}/trial: each trial's time
//   (params: n, trial), for plots of the distribution; JSON only.
// - disseminate: a metadata update -> every member has it (p50, p99); goal
//   p99 <= 3 ceil(log2 N).
// - load: messages and bytes sent per member per period, steady state; SWIM:
//   about 2.0 messages.
// - false_dead: live members declared dead per member-period at 1/5/10 %
//   loss and with 10 % of members slowed, plain SWIM and Lifeguard side by
//   side, N = 64, four simulated hours each (count, member-periods and a 95 %
//   upper bound reported too: with few events the rate is only a bound).
// - speed: simulated seconds per wall second at N = 1000, and the wall time
//   one simulated hour would take (goal <= 36 s).
//
//   bench_membership            full run
//   bench_membership --quick    smoke run (smaller N, fewer trials; well under a minute)
//
// JSON Lines on stdout, a table on stderr.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "support/bench.hpp"
#include "support/membership_cluster.hpp"

namespace {

using namespace dhtkit;
using namespace dhtkit::membership;
using dhtkit::test::membership_cluster;
using dhtkit::test::sim_event;

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const auto i = static_cast<std::size_t>(std::ceil(p * static_cast<double>(v.size()))) - 1;
  return v[std::min(i, v.size() - 1)];
}
double mean(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return v.empty() ? 0 : s / static_cast<double>(v.size());
}
double periods(duration d, const swim_config& c) {
  return std::chrono::duration<double>(d).count() / std::chrono::duration<double>(c.probe_interval).count();
}
std::string p_n(std::size_t n) { return "\"n\":" + std::to_string(n); }

// Joins member i through a random already-joined member, spaced, then waits
// for everyone to know everyone.
bool form(membership_cluster& c, std::uint64_t seed) {
  random_engine rng(seed);
  for (std::size_t i = 1; i < c.nodes.size(); ++i) {
    c.net.run_for(millis(5));
    c.join(i, static_cast<std::size_t>(rng.below(std::min<std::size_t>(i, 16))));
  }
  return c.run_until_converged(seconds(600));
}

struct detection_result {
  std::vector<double> first_ping, first, all_dead, dissemination;
};

void detection(std::size_t n, std::size_t trials, const dhtkit::bench::reporter& out) {
  const swim_config config = swim_config::lan();
  detection_result r;
  std::uint64_t seed = 1;
  while (r.first.size() < trials) {
    membership_cluster c(seed++, n, config);
    if (!form(c, seed)) {
      std::fprintf(stderr, "n=%zu: group did not form\n", n);
      return;
    }
    random_engine rng(seed * 31);
    node_id subject{};
    std::uint32_t inc = 0;
    std::size_t updated = 0;
    time_point first_suspect{};
    std::size_t dead_seen = 0;
    c.on_event = [&](std::size_t, const sim_event& e) {
      if (e.id != subject) return;
      if (e.kind == event_kind::updated && e.incarnation >= inc) ++updated;
      if ((e.kind == event_kind::suspect || e.kind == event_kind::dead) && first_suspect == time_point{})
        first_suspect = c.net.now();
      if (e.kind == event_kind::dead) ++dead_seen;
    };
    std::size_t up = n;
    // Each round: one dissemination trial, then one crash; stop at 3/4 of N.
    while (r.first.size() < trials && up > std::max<std::size_t>(3 * n / 4, 4)) {
      c.net.run_for(duration(static_cast<duration::rep>(rng.below(seconds(5).count()))) + seconds(5));
      std::size_t who;
      do who = static_cast<std::size_t>(rng.below(n));
      while (!c.nodes[who].up);
      subject = c.nodes[who].id;
      updated = 0;
      std::string meta = std::to_string(c.net.now().time_since_epoch().count());
      (void)c.nodes[who].core->set_metadata(std::move(meta), c.net.now());
      inc = c.nodes[who].core->incarnation();
      const time_point t0 = c.net.now();
      if (c.net.run_until(t0 + seconds(120), [&] { return updated >= up - 1; }))
        r.dissemination.push_back(periods(c.net.now() - t0, config));

      do who = static_cast<std::size_t>(rng.below(n));
      while (!c.nodes[who].up);
      subject = c.nodes[who].id;
      first_suspect = {};
      dead_seen = 0;
      time_point first_ping{};
      const sim::endpoint victim = c.nodes[who].transport->local_endpoint();
      // The first direct ping (type tag 0x0200) any member sends it.
      c.on_send = [&](std::size_t, const sim::endpoint& to, std::span<const std::byte> bytes) {
        if (first_ping != time_point{} || to != victim) return;
        const auto env = wire::decode_envelope(bytes);
        if (env && env->type == membership::detail::ping<sim::endpoint>::wire_type) first_ping = c.net.now();
      };
      c.crash(who);
      --up;
      const time_point t1 = c.net.now();
      const bool found = c.net.run_until(t1 + seconds(600), [&] { return dead_seen >= up; });
      c.on_send = nullptr;
      if (!found) {
        std::fprintf(stderr, "n=%zu: crash not detected by all within 600 s\n", n);
        continue;
      }
      r.first_ping.push_back(periods(first_ping - t1, config));
      r.first.push_back(periods(first_suspect - t1, config));
      r.all_dead.push_back(periods(c.net.now() - t1, config));
    }
  }
  const double log2n = std::ceil(std::log2(static_cast<double>(n)));
  const std::string params = p_n(n) + ",\"trials\":" + std::to_string(r.first.size());
  // SWIM's e/(e-1) is the expected wait until some member first probes the
  // crashed one; the suspicion follows when that probe's period ends.
  out.emit("detect/first_probe/mean", params, mean(r.first_ping), "periods",
           {"swim_e/(e-1)", std::exp(1.0) / (std::exp(1.0) - 1)});
  out.emit("detect/first_probe/p99", params, percentile(r.first_ping, 0.99), "periods", {"goal", 4});
  out.emit("detect/first_suspect/mean", params, mean(r.first), "periods");
  out.emit("detect/first_suspect/p99", params, percentile(r.first, 0.99), "periods");
  out.emit("detect/all_dead/p50", params, percentile(r.all_dead, 0.5), "periods");
  out.emit("detect/all_dead/p99", params, percentile(r.all_dead, 0.99), "periods");
  const std::string dparams = p_n(n) + ",\"trials\":" + std::to_string(r.dissemination.size());
  out.emit("disseminate/p50", dparams, percentile(r.dissemination, 0.5), "periods");
  out.emit("disseminate/p99", dparams, percentile(r.dissemination, 0.99), "periods",
           {"goal_3ceil(log2N)", 3 * log2n});
  // Every trial's times, so the distribution can be plotted (docs/plots), not
  // only its mean and p99; not echoed, which would bury the table on stderr.
  const dhtkit::bench::reporter samples{"membership", /*echo=*/false};
  for (std::size_t i = 0; i < r.first.size(); ++i) {
    const std::string tparams = p_n(n) + ",\"trial\":" + std::to_string(i);
    samples.emit("detect/first_probe/trial", tparams, r.first_ping[i], "periods");
    samples.emit("detect/first_suspect/trial", tparams, r.first[i], "periods");
    samples.emit("detect/all_dead/trial", tparams, r.all_dead[i], "periods");
  }
}

// Steady-state load and simulation speed.
void load(std::size_t n, duration length, bool speed, const dhtkit::bench::reporter& out) {
  const swim_config config = swim_config::lan();
  membership_cluster c(7, n, config);
  if (!form(c, 7)) return;
  c.net.run_for(seconds(60));  // let join traffic drain
  std::uint64_t msgs = 0, bytes = 0, probe_msgs = 0;
  auto sum = [&](std::uint64_t& m, std::uint64_t& b, std::uint64_t& p) {
    m = b = p = 0;
    for (const auto& nd : c.nodes) {
      const auto& s = nd.core->stats();
      m += s.messages_sent;
      b += s.bytes_sent;
      p += s.pings_sent + s.acks_sent + s.ping_reqs_sent + s.nacks_sent;
    }
  };
  std::uint64_t m0, b0, p0;
  sum(m0, b0, p0);
  const auto w0 = std::chrono::steady_clock::now();
  c.net.run_for(length);
  const auto w1 = std::chrono::steady_clock::now();
  sum(msgs, bytes, probe_msgs);
  const double member_periods = static_cast<double>(n) * periods(length, config);
  const std::string params =
      p_n(n) + ",\"periods\":" + std::to_string(static_cast<long>(periods(length, config)));
  out.emit("load/messages", params, static_cast<double>(msgs - m0) / member_periods, "msg/member/period",
           {"swim_paper", 2.0});
  out.emit("load/probe_messages", params, static_cast<double>(probe_msgs - p0) / member_periods,
           "msg/member/period", {"swim_paper", 2.0});
  out.emit("load/bytes", params, static_cast<double>(bytes - b0) / member_periods, "B/member/period");
  if (speed) {
    const double wall = std::chrono::duration<double>(w1 - w0).count();
    const double rate = std::chrono::duration<double>(length).count() / wall;
    out.emit("speed/sim_seconds_per_wall_second", params, rate, "x");
    out.emit("speed/wall_per_sim_hour", params, 3600.0 / rate, "s", {"goal", 36});
  }
}

struct fp_result {
  std::size_t false_dead = 0;   // distinct (member, incarnation) declared dead while up
  std::size_t dead_events = 0;  // per-observer dead events about up members
  double member_periods = 0;
};

fp_result false_positives(std::size_t n, double loss, double slow_fraction, bool lifeguard, duration length,
                          std::uint64_t seed) {
  swim_config config = lifeguard ? swim_config::lan() : swim_config::lan().plain_swim();
  fp_result r;
  membership_cluster c(seed, n, config);
  if (!form(c, seed)) return r;
  std::set<std::pair<node_id, std::uint32_t>> declared;
  c.on_event = [&](std::size_t, const sim_event& e) {
    if (e.kind != event_kind::dead) return;
    ++r.dead_events;
    declared.emplace(e.id, e.incarnation);
  };
  sim::link_config link;
  link.loss = loss;
  for (std::size_t i = 0; i < n; ++i) {
    if (static_cast<double>(i) < slow_fraction * static_cast<double>(n)) c.nodes[i].slow = millis(1500);
    for (std::size_t j = 0; j < n && loss > 0; ++j)
      if (i != j)
        c.net.set_link(c.nodes[i].transport->local_endpoint(), c.nodes[j].transport->local_endpoint(), link);
  }
  c.net.run_for(length);
  r.false_dead = declared.size();
  r.member_periods = static_cast<double>(n) * periods(length, config);
  return r;
}

// One-sided 95 % upper bound of a Poisson mean after observing k events
// (Wilson-Hilferty; 3.0 for k = 0, the "rule of three").
double poisson_upper95(std::size_t k) {
  const double a = static_cast<double>(k) + 1;
  return a * std::pow(1 - 1 / (9 * a) + 1.645 / (3 * std::sqrt(a)), 3);
}

// Each scenario runs `hours` simulated hours (one seed per hour) so a rate of
// zero events still bounds the rate below the goals (upper95 in params).
void false_positive_table(std::size_t n, duration length, std::size_t hours,
                          const dhtkit::bench::reporter& out) {
  struct scenario {
    const char* name;
    double loss;
    double slow;
  };
  const scenario scenarios[] = {
      {"loss_1pct", 0.01, 0}, {"loss_5pct", 0.05, 0}, {"loss_10pct", 0.10, 0}, {"slow_10pct", 0.0, 0.10}};
  const double swim_paper[] = {1.9e-6, 9.8e-4, 1.2e-2, 0};  // SWIM without suspicion, k = 3
  for (std::size_t s = 0; s < 4; ++s) {
    double rate[2] = {};
    for (int lg = 0; lg < 2; ++lg) {
      fp_result r;
      for (std::size_t h = 0; h < hours; ++h) {  // hour 0 keeps the seed earlier runs used
        const fp_result one =
            false_positives(n, scenarios[s].loss, scenarios[s].slow, lg == 1, length, 100 + s + 1000 * h);
        r.false_dead += one.false_dead;
        r.dead_events += one.dead_events;
        r.member_periods += one.member_periods;
      }
      rate[lg] = r.member_periods > 0 ? static_cast<double>(r.false_dead) / r.member_periods : 0;
      char upper[32];
      std::snprintf(upper, sizeof upper, "%.2g",
                    r.member_periods > 0 ? poisson_upper95(r.false_dead) / r.member_periods : 0);
      const std::string params =
          p_n(n) + ",\"mode\":\"" + (lg ? "lifeguard" : "swim") +
          "\",\"member_periods\":" + std::to_string(static_cast<long>(r.member_periods)) +
          ",\"false_dead\":" + std::to_string(r.false_dead) +
          ",\"dead_events\":" + std::to_string(r.dead_events) + ",\"upper95\":" + upper;
      const std::string name = std::string("false_dead/") + scenarios[s].name;
      if (swim_paper[s] > 0) {
        out.emit(name, params, rate[lg], "per_member_period", {"swim_paper_no_suspicion", swim_paper[s]});
      } else {
        out.emit(name, params, rate[lg], "per_member_period");
      }
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  const auto opt = dhtkit::bench::parse_options(argc, argv);
  if (!opt) return 2;
  const dhtkit::bench::reporter out{"membership"};
  const std::vector<std::size_t> sizes =
      opt->quick ? std::vector<std::size_t>{16, 64} : std::vector<std::size_t>{16, 64, 256, 1000};
  for (std::size_t n : sizes) detection(n, opt->quick ? 10 : (n >= 1000 ? 30 : 60), out);
  for (std::size_t n : sizes) load(n, opt->quick ? seconds(60) : seconds(300), n == sizes.back(), out);
  false_positive_table(opt->quick ? 32 : 64, opt->quick ? seconds(300) : seconds(3600), opt->quick ? 1 : 4,
                       out);
  return 0;
}

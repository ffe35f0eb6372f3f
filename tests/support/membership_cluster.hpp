// A simulated SWIM group: N basic_swim<sim::endpoint> cores on one
// sim::network, each run by the generic sim::core_driver (received datagrams
// to receive(), tick() at next_wakeup(), the outbox sent after every call).
// Shared by tests/membership_test.cpp and bench/membership.cpp.
//
// A member can be "slowed": every message it receives and every timer it
// fires is processed after an extra delay drawn uniformly from [0, slow]
// (the driver's processing_delay; a stand-in for an overloaded CPU,
// Lifeguard's case of a member that is alive but late).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "dhtkit/core/node_id.hpp"
#include "dhtkit/core/random.hpp"
#include "dhtkit/driver/sim_driver.hpp"
#include "dhtkit/membership/swim.hpp"
#include "dhtkit/transport/sim.hpp"

namespace dhtkit::test {

using sim_swim = membership::basic_swim<sim::endpoint>;
using sim_event = membership::member_event<sim::endpoint>;

class membership_cluster {
 public:
  struct node {
    sim::node_transport* transport = nullptr;
    std::unique_ptr<sim_swim> core;
    std::unique_ptr<sim::core_driver<sim_swim>> driver;
    node_id id{};
    bool up = true;
    duration slow{};  // extra processing delay bound, zero = normal
  };

  membership_cluster(std::uint64_t seed, std::size_t n, membership::swim_config config,
                     sim::network_config net_config = {})
      : net(seed, net_config), config_(config), rng_(seed ^ 0x5157494d5157494dULL), seed_(seed) {
    nodes.reserve(n);
    for (std::size_t i = 0; i < n; ++i) add_node();
  }

  // Adds a member (not yet joined); returns its index.
  std::size_t add_node() {
    const std::size_t i = nodes.size();
    node nd;
    nd.transport = &net.add_endpoint();
    nd.id = node_id{mix64(seed_ * 1000003 + i + 1) | 1};
    nd.core = std::make_unique<sim_swim>(nd.id, nd.transport->local_endpoint(), config_, seed_ * 7919 + i);
    nodes.push_back(std::move(nd));
    install(i);
    return i;
  }

  // Member i asks member `seed` (index) to let it in.
  void join(std::size_t i, std::size_t seed) {
    const sim::endpoint s[] = {nodes[seed].transport->local_endpoint()};
    (void)nodes[i].driver->call([&](sim_swim& core, time_point now) { return core.join(s, now); });
  }

  // Every member joins through member 0, one every `spacing`; then the group
  // runs until every member knows every other as alive (or `deadline`).
  bool form(duration spacing, duration deadline) {
    nodes[0].driver->drain();
    for (std::size_t i = 1; i < nodes.size(); ++i) {
      if (spacing > duration::zero()) net.run_for(spacing);
      join(i, 0);
    }
    return run_until_converged(deadline);
  }

  // Runs until converged() (checked once per probe interval: it is O(N^2)),
  // at most `deadline`.
  bool run_until_converged(duration deadline) {
    const time_point end = net.now() + deadline;
    while (!converged()) {
      if (net.now() >= end) return false;
      net.run_until(std::min(end, net.now() + config_.probe_interval));
    }
    return true;
  }

  // Every up member sees exactly the up members as alive.
  bool converged() const {
    std::size_t up = 0;
    for (const node& nd : nodes) up += nd.up ? 1 : 0;
    for (const node& nd : nodes) {
      if (!nd.up) continue;
      if (nd.core->count(membership::member_state::alive) != up) return false;
      for (const node& other : nodes) {
        if (other.up && nd.core->state_of(other.id) != membership::member_state::alive) return false;
      }
    }
    return true;
  }

  void crash(std::size_t i) {
    net.crash(nodes[i].transport->local_endpoint());
    nodes[i].up = false;
  }

  // Restarts a crashed member as a new process with the same id and address
  // (fresh core, incarnation 0) and joins it through `seed`.
  void restart(std::size_t i, std::size_t seed) {
    node& nd = nodes[i];
    net.restart(nd.transport->local_endpoint(), false);
    nd.up = true;
    nd.core = std::make_unique<sim_swim>(nd.id, nd.transport->local_endpoint(), config_,
                                         seed_ * 7919 + i + 1000003 * nd.transport->incarnation());
    // The restart removed the receive handler and the crash discarded the
    // timers: a new driver for the new core, as for a new member.
    install(i);
    join(i, seed);
  }

  // Cuts every link between the two sides, both ways.
  void partition(const std::vector<std::size_t>& a, const std::vector<std::size_t>& b) {
    for (std::size_t i : a)
      for (std::size_t j : b)
        net.partition(nodes[i].transport->local_endpoint(), nodes[j].transport->local_endpoint());
  }

  // Runs for `d`, checking every up core's invariants once per probe interval.
  // False at the first violation.
  bool run_checked(duration d) {
    const time_point end = net.now() + d;
    while (net.now() < end) {
      net.run_until(std::min(end, net.now() + config_.probe_interval));
      for (const node& nd : nodes)
        if (nd.up && !nd.core->check_invariants()) return false;
    }
    return true;
  }

  std::size_t index_of(node_id id) const {
    for (std::size_t i = 0; i < nodes.size(); ++i)
      if (nodes[i].id == id) return i;
    return nodes.size();
  }

  const membership::swim_config& config() const noexcept { return config_; }

  sim::network net;
  std::vector<node> nodes;
  // Called with (observer index, event) for every event any member reports.
  std::function<void(std::size_t, const sim_event&)> on_event;
  // Called with (sender index, destination, message) for every message sent.
  std::function<void(std::size_t, const sim::endpoint&, std::span<const std::byte>)> on_send;

 private:
  void install(std::size_t i) {
    node& nd = nodes[i];
    nd.driver = std::make_unique<sim::core_driver<sim_swim>>(*nd.transport, *nd.core);
    nd.driver->on_outbox = [this, i](sim_swim::outbox_type& out) {
      if (on_event)
        for (const auto& e : out.events) on_event(i, e);
    };
    nd.driver->on_send = [this, i](const sim::endpoint& to, std::span<const std::byte> bytes) {
      if (on_send) on_send(i, to, bytes);
    };
    nd.driver->processing_delay = [this, i]() -> std::optional<duration> {
      if (nodes[i].slow <= duration::zero()) return std::nullopt;
      return delay(nodes[i].slow);
    };
    nd.driver->start();
  }

  duration delay(duration upto) { return duration(static_cast<duration::rep>(rng_.below(upto.count() + 1))); }

  membership::swim_config config_;
  random_engine rng_;
  std::uint64_t seed_;
};

}  // namespace dhtkit::test

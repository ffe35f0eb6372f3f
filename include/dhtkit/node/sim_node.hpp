/// @file
/// The DHT node on the deterministic simulator: the same basic_node_core
/// that basic_node runs on sockets, on two simulated endpoints (its packet
/// and stream lanes, separate links as UDP beside TCP), with crash and
/// restart with or without its durable state.
///
/// For tests and benchmarks: a seeded sim::network replays any scenario
/// exactly, faults included.
///
/// @code
/// dhtkit::sim::network_config nc;
/// nc.max_message_size = 1 << 20;                 // the stream lane carries values and handoff chunks
/// dhtkit::sim::network net(/*seed=*/1, nc);
/// auto cfg = dhtkit::node_config::local();
/// cfg.name = "a";
/// dhtkit::sim_node a(net, cfg, /*seed=*/1);
/// cfg.name = "b";
/// dhtkit::sim_node b(net, cfg, /*seed=*/2);
/// (void)a.join({});                              // founds the cluster
/// std::vector<dhtkit::sim::endpoint> seeds{a.packet_endpoint()};
/// (void)b.join(seeds);
/// net.run_for(dhtkit::seconds(2));
/// b.on_put = [](const dhtkit::put_completion& c) { /* c.error, c.acks */ };
/// b.put("k", dhtkit::to_bytes("v"), {});
/// net.run_for(dhtkit::seconds(1));
/// @endcode
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

#include "dhtkit/node/node_core.hpp"
#include "dhtkit/transport/sim.hpp"

namespace dhtkit {

/// A DHT node core driven on two simulator endpoints (see sim_node.hpp).
template <placement Placement = one_hop, storage Storage = memory_storage>
class basic_sim_node {
 public:
  using core_type = basic_node_core<sim::endpoint, Placement, Storage>;

  /// Adds the node's two endpoints to `net`. Throws std::invalid_argument
  /// for an invalid configuration.
  basic_sim_node(sim::network& net, node_config config, std::uint64_t seed)
      : net_(&net),
        config_(std::move(config)),
        seed_(seed),
        packet_(&net.add_endpoint()),
        stream_(&net.add_endpoint()),
        durable_(std::make_unique<durable>()) {
    build();
  }
  basic_sim_node(const basic_sim_node&) = delete;
  basic_sim_node& operator=(const basic_sim_node&) = delete;

  // ---- what the node reports (set by the test or bench) ----
  std::function<void(const put_completion&)> on_put;
  std::function<void(const get_completion&)> on_get;
  std::function<void(const node_event&)> on_event;
  std::function<void(const node_status&)> on_status;

  std::error_code join(std::span<const sim::endpoint> seeds) {
    seeds_.assign(seeds.begin(), seeds.end());
    return call([&](core_type& c, time_point now) { return c.join(seeds, now); });
  }
  std::error_code join(std::initializer_list<sim::endpoint> seeds) {
    std::vector<sim::endpoint> v(seeds);
    return join(std::span<const sim::endpoint>(v));
  }
  std::error_code leave() {
    return call([](core_type& c, time_point now) { return c.leave(now); });
  }
  request_id put(std::string_view key, bytes value, const version_vector& context, request_options o = {}) {
    return call([&](core_type& c, time_point now) { return c.put(key, std::move(value), context, now, o); });
  }
  request_id erase(std::string_view key, const version_vector& context, request_options o = {}) {
    return call([&](core_type& c, time_point now) { return c.erase(key, context, now, o); });
  }
  request_id get(std::string_view key, request_options o = {}) {
    return call([&](core_type& c, time_point now) { return c.get(key, now, o); });
  }
  bool cancel(request_id id) { return core_->cancel(id); }

  /// Both endpoints crash: in-flight messages and timers are lost.
  void crash() {
    net_->crash(packet_->local_endpoint());
    net_->crash(stream_->local_endpoint());
  }
  /// A crashed node comes back as a new process: a fresh core (a higher SWIM
  /// incarnation once it hears of its old self), over the same storage, hints
  /// and handoff journal when `with_state`, or over empty ones (a new disk).
  /// It rejoins through the seeds it first joined with.
  void restart(bool with_state) {
    net_->restart(packet_->local_endpoint(), false);
    net_->restart(stream_->local_endpoint(), false);
    if (!with_state) durable_ = std::make_unique<durable>();
    ++restarts_;
    build();
    std::vector<sim::endpoint> seeds = seeds_;
    (void)join(seeds);
  }
  bool up() const noexcept { return packet_->is_up(); }

  core_type& core() noexcept { return *core_; }
  const core_type& core() const noexcept { return *core_; }
  sim::endpoint packet_endpoint() const noexcept { return packet_->local_endpoint(); }
  sim::endpoint stream_endpoint() const noexcept { return stream_->local_endpoint(); }
  Storage& store() noexcept { return durable_->store; }
  hint_store& hints() noexcept { return durable_->hints; }
  handoff_journal& journal() noexcept { return durable_->journal; }
  const node_config& config() const noexcept { return config_; }

  /// Runs f(core, now), then sends what it produced and re-arms the timer.
  template <class F>
  decltype(auto) call(F&& f) {
    if constexpr (std::is_void_v<decltype(f(*core_, net_->now()))>) {
      f(*core_, net_->now());
      drain();
    } else {
      auto r = f(*core_, net_->now());
      drain();
      return r;
    }
  }

 private:
  struct durable {
    Storage store{};
    hint_store hints{};
    handoff_journal journal{};
  };

  void build() {
    armed_.reset();
    core_ = std::make_unique<core_type>(config_, packet_->local_endpoint(), stream_->local_endpoint(),
                                        durable_->store, durable_->hints, durable_->journal,
                                        mix64(seed_ + restarts_));
    auto handler = [this, alive = std::weak_ptr<void>(alive_)](lane via) {
      return [this, alive, via](const sim::endpoint& from, std::span<const std::byte> bytes) {
        if (alive.expired()) return;
        (void)core_->receive({from, via}, bytes, net_->now());
        drain();
      };
    };
    packet_->set_receive_handler(handler(lane::packet));
    stream_->set_receive_handler(handler(lane::stream));
  }

  void drain() {
    auto out = core_->take_outbox();
    if (up()) {
      for (auto& m : out.messages)
        (void)(m.to.via == lane::packet ? packet_ : stream_)->send(m.to.endpoint, m.bytes);
    }
    for (const auto& s : out.status)
      if (on_status) on_status(s);
    for (const auto& e : out.events)
      if (on_event) on_event(e);
    for (const auto& p : out.puts)
      if (on_put) on_put(p);
    for (const auto& g : out.gets)
      if (on_get) on_get(g);
    arm();
  }

  // One live timer, on the packet endpoint (a crash discards it).
  void arm() {
    if (!up()) return;
    const std::optional<time_point> wake = core_->next_wakeup();
    if (!wake) return;
    const time_point now = net_->now();
    const time_point t = std::max(*wake, now);
    if (armed_incarnation_ != packet_->incarnation()) armed_.reset();
    if (armed_ && *armed_ <= t && *armed_ > now) return;
    armed_ = t;
    armed_incarnation_ = packet_->incarnation();
    packet_->schedule_at(t, [this, alive = std::weak_ptr<void>(alive_), t] {
      if (alive.expired() || armed_ != t) return;
      armed_.reset();
      core_->tick(net_->now());
      drain();
    });
  }

  sim::network* net_;
  node_config config_;
  std::uint64_t seed_;
  sim::node_transport* packet_;
  sim::node_transport* stream_;
  std::unique_ptr<durable> durable_;
  std::unique_ptr<core_type> core_;
  std::vector<sim::endpoint> seeds_;
  std::uint64_t restarts_ = 0;
  std::optional<time_point> armed_;
  std::uint64_t armed_incarnation_ = 0;
  std::shared_ptr<void> alive_ = std::make_shared<char>(0);
};

/// The DHT node on the simulator with the default placement (one_hop).
using sim_node = basic_sim_node<>;
/// The DHT node on the simulator with Chord placement.
using chord_sim_node = basic_sim_node<chord_placement>;

}  // namespace dhtkit

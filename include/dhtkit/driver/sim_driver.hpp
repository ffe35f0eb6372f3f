/// @file
/// Runs any protocol core on the deterministic simulator.
///
/// sim::core_driver binds one core to one sim::node_transport the way a real
/// driver binds it to a socket: every received message goes to receive(), a
/// timer owned by the endpoint calls tick() at next_wakeup(), and after every
/// call into the core the outbox is drained -- messages sent, the outbox
/// handed to on_outbox for the core's own events. Because the timers belong
/// to the endpoint, a crash discards them with the messages in flight; after
/// a restart that kept state, rearm() starts the ticks again; after one that
/// lost it (the simulator then drops the receive handler), set_core() with the
/// rebuilt core, then start(). A driver destroyed before its endpoint's timers
/// or handler run leaves them inert.
///
/// @code
/// dhtkit::sim::network net(/*seed=*/1);
/// auto& t = net.add_endpoint();
/// dhtkit::membership::basic_swim<dhtkit::sim::endpoint> swim(
///     dhtkit::node_id{1}, t.local_endpoint(), dhtkit::membership::swim_config::local(), /*seed=*/1);
/// dhtkit::sim::core_driver driver(t, swim);
/// driver.on_outbox = [](auto& out) { for (auto& e : out.events) (void)e; /* report */ };
/// driver.start();
/// driver.call([&](auto& core, dhtkit::time_point now) { return core.join(seeds, now); });
/// net.run_for(dhtkit::seconds(10));
/// @endcode
///
/// A core that addresses peers by something other than sim::endpoint (the
/// replica addresses them by node_id) needs to_endpoint and from_endpoint.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <type_traits>
#include <utility>
#include <vector>

#include "dhtkit/core/time.hpp"
#include "dhtkit/driver/detail/invoke_then.hpp"
#include "dhtkit/driver/protocol_core.hpp"
#include "dhtkit/transport/sim.hpp"

namespace dhtkit::sim {

/// Runs one protocol core on a sim::network endpoint: the simulator's
/// counterpart of asio_driver (see sim_driver.hpp).
template <protocol_core Core>
class core_driver {
 public:
  using core_type = Core;
  using address_type = typename Core::address_type;
  using outbox_type = typename Core::outbox_type;

  core_driver(node_transport& transport, Core& core) : transport_(&transport), core_(&core) {}
  core_driver(const core_driver&) = delete;
  core_driver& operator=(const core_driver&) = delete;

  /// Called after every call into the core with what it produced; its
  /// messages have been sent by then.
  std::function<void(outbox_type&)> on_outbox;
  /// Called with every message just before it is sent (tests that watch traffic).
  std::function<void(const address_type& to, std::span<const std::byte> bytes)> on_send;
  /// How long this node takes to get to a message or a tick: nullopt (the
  /// default) handles it at once; a duration, then. Models a slow or
  /// overloaded process (Lifeguard's case) without touching the core.
  std::function<std::optional<duration>()> processing_delay;
  /// Address translation, needed only when address_type is not sim::endpoint.
  std::function<endpoint(const address_type&)> to_endpoint;
  std::function<address_type(const endpoint&)> from_endpoint;

  /// Installs the receive handler and arms the first tick.
  void start() {
    transport_->set_receive_handler(
        [this, alive = std::weak_ptr<void>(alive_)](const endpoint& from, std::span<const std::byte> bytes) {
          if (alive.expired()) return;
          if (auto d = delay()) {
            transport_->schedule_after(
                *d, [this, alive, from, copy = std::vector<std::byte>(bytes.begin(), bytes.end())] {
                  if (!alive.expired()) deliver(from, copy);
                });
            return;
          }
          deliver(from, bytes);
        });
    drain();
  }

  /// Runs f(core, now) -- a client call such as join, lookup or put -- then
  /// drains the outbox. Returns what f returns.
  template <class F>
  decltype(auto) call(F&& f) {
    return detail::invoke_then(std::forward<F>(f), *core_, transport_->net().now(), [this] { drain(); });
  }

  /// Sends what the core produced, reports its events, re-arms its tick.
  void drain() {
    auto out = core_->take_outbox();
    if (transport_->is_up()) {
      for (auto& m : out.messages) {
        if (on_send) on_send(m.to, m.bytes);
        (void)transport_->send(endpoint_of(m.to), m.bytes);
      }
    }
    if (on_outbox) on_outbox(out);
    arm();
  }

  /// Points the driver at a rebuilt core (a restart that lost volatile state).
  void set_core(Core& core) noexcept { core_ = &core; }
  /// Forgets the pending tick and arms a new one: after a restart, whose
  /// crash discarded the endpoint's timers.
  void rearm() {
    armed_.reset();
    arm();
  }

  Core& core() noexcept { return *core_; }
  node_transport& transport() noexcept { return *transport_; }

 private:
  std::optional<duration> delay() { return processing_delay ? processing_delay() : std::nullopt; }

  void deliver(const endpoint& from, std::span<const std::byte> bytes) {
    (void)core_->receive(address_of(from), bytes, transport_->net().now());
    drain();
  }

  void arm() {
    if (!transport_->is_up()) return;
    const std::optional<time_point> wake = core_->next_wakeup();
    if (!wake) return;
    const time_point now = transport_->net().now();
    const time_point t = std::max(*wake, now);
    // A restart discarded the timer armed before it.
    if (armed_incarnation_ != transport_->incarnation()) armed_.reset();
    // One live timer: an earlier wake-up replaces it (the later one, when it
    // fires, finds itself superseded and does nothing).
    if (armed_ && *armed_ <= t && *armed_ > now) return;
    armed_ = t;
    armed_incarnation_ = transport_->incarnation();
    transport_->schedule_at(t, [this, alive = std::weak_ptr<void>(alive_), t] {
      if (alive.expired() || armed_ != t) return;
      armed_.reset();
      if (auto d = delay()) {
        transport_->schedule_after(*d, [this, alive] {
          if (!alive.expired()) tick();
        });
        return;
      }
      tick();
    });
  }

  void tick() {
    core_->tick(transport_->net().now());
    drain();
  }

  endpoint endpoint_of(const address_type& a) const {
    if constexpr (std::is_same_v<address_type, endpoint>) {
      return a;
    } else {
      return to_endpoint(a);
    }
  }
  address_type address_of(const endpoint& e) const {
    if constexpr (std::is_same_v<address_type, endpoint>) {
      return e;
    } else {
      return from_endpoint(e);
    }
  }

  node_transport* transport_;
  Core* core_;
  std::optional<time_point> armed_;
  std::uint64_t armed_incarnation_ = 0;
  std::shared_ptr<void> alive_ = std::make_shared<char>(0);  // expires with the driver
};

}  // namespace dhtkit::sim

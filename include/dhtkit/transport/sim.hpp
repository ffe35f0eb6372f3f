/// @file
/// The deterministic network simulator.
///
/// Protocol cores do no I/O, so they can be driven by a simulated network as
/// easily as by sockets. sim::network holds many endpoints in one process and
/// advances in virtual time: nothing happens between events, so a minute of
/// simulated gossip runs in milliseconds and a test can step one event at a
/// time. Every fault the protocols must survive is available -- latency with
/// jitter, loss, duplication, reordering, partitions (including one-way cuts),
/// clogged links, limited bandwidth (a bulk transfer delays what is queued
/// behind it), node crash and restart with or without state -- and every
/// random choice comes from one seeded engine with a fixed algorithm, so the
/// same seed replays the same run byte for byte on every platform. The running
/// hash of the trace (trace_hash()) is how a test proves it; print the seed of
/// a failing randomized run and replay exactly that run.
///
/// Each endpoint's node_transport satisfies dhtkit::transport, so a driver
/// written against the concept runs here unchanged.
///
/// @code
/// dhtkit::sim::network_config config;
/// config.link.loss = 0.01;                       // 1% of messages vanish
/// dhtkit::sim::network net(/*seed=*/42, config);
/// auto& a = net.add_endpoint();
/// auto& b = net.add_endpoint();
/// b.set_receive_handler([&b](const dhtkit::sim::endpoint& from, std::span<const std::byte> m) {
///   (void)b.send(from, m);                       // echo
/// });
/// int echoes = 0;
/// a.set_receive_handler([&](const dhtkit::sim::endpoint&, std::span<const std::byte>) { ++echoes; });
/// a.schedule_after(dhtkit::millis(10), [&] {     // a timer owned by a: a crash cancels it
///   const std::byte ping[] = {std::byte{1}, std::byte{2}};
///   (void)a.send(b.local_endpoint(), ping);
/// });
/// net.cut(b.local_endpoint(), a.local_endpoint());   // b -> a only: echoes are dropped
/// net.run_for(dhtkit::millis(100));
/// net.heal_all();
/// std::uint64_t fingerprint = net.trace_hash();  // equal for equal seeds
/// @endcode
#pragma once

#include <algorithm>
#include <chrono>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <unordered_map>
#include <utility>
#include <vector>

#include "dhtkit/core/error.hpp"
#include "dhtkit/core/hash.hpp"
#include "dhtkit/core/random.hpp"
#include "dhtkit/core/time.hpp"
#include "dhtkit/transport/detail/callback_slot.hpp"
#include "dhtkit/transport/transport.hpp"

namespace dhtkit::sim {

/// The simulator's address: a small integer handed out by add_endpoint(),
/// starting at 1, so a default-constructed endpoint{} is never reachable.
struct endpoint {
  std::uint32_t id = 0;

  friend constexpr auto operator<=>(const endpoint&, const endpoint&) = default;

  std::string to_string() const { return "sim:" + std::to_string(id); }

  /// Protocols carry addresses inside messages (a Chord successor list, a SWIM
  /// member's address), so a simulated address must encode like a real one.
  template <class Archive>
  void serialize(Archive& ar) {
    ar(id);
  }
};

/// The faults of one directed link. The one-way delay of a message is
/// @code
/// max(latency_min, latency_mean + U[-jitter, +jitter])
/// @endcode
/// (U uniform over whole nanoseconds), plus, with probability `reorder`, an
/// extra U[0, reorder_delay). Jitter alone already reorders messages sent
/// closer together than the jitter; `reorder` models the rarer packet that is
/// overtaken by many later ones.
///
/// With a `bandwidth`, the link also transmits one message at a time, in send
/// order: a message starts when the link is free (max(now, the end of the
/// previous transmission)), occupies it for ceil(size * 1e9 / bandwidth) ns,
/// and is delivered that delay after its transmission ends. So a large message
/// delays every later message on the same directed link (a probe queued
/// behind a bulk transfer) and no other link. Delivery order still follows the
/// delay: with jitter larger than the gap between two transmissions, the
/// later message may overtake, as on an unlimited link. What occupies the link:
/// every message put on the wire, duplicates included; not one refused at
/// send (cut, loss, overflow). A message dropped later (a cut or a crash
/// before it is due) has used its slot. A crash or restart of the
/// destination frees its incoming links (the messages queued on them will be
/// discarded anyway, as TCP discards a dead peer's send queue); the crashed
/// node's outgoing links stay busy, since what it sent still arrives.
struct link_config {
  duration latency_min = micros(200);   ///< no message is faster than this
  duration latency_mean = millis(1);    ///< the centre of the uniform delay
  duration jitter = micros(500);        ///< half-width of the uniform delay around the mean
  double loss = 0.0;                    ///< probability a message is dropped
  double duplicate = 0.0;               ///< probability a message is delivered twice (independent delays)
  double reorder = 0.0;                 ///< probability a message gets the extra reorder delay
  duration reorder_delay = millis(10);  ///< upper bound of that extra delay
  /// Bytes per second on this directed link, FIFO; 0 = unlimited (the
  /// default), where a message's delay does not depend on its size.
  std::uint64_t bandwidth = 0;
};

/// Configuration of a sim::network: link faults and bounds.
struct network_config {
  link_config link{};  ///< every link's faults, unless set_link() overrides one
  /// send() refuses larger messages (message_too_large); up to 1 GiB, and at
  /// most max_in_flight_bytes. Raise it for bulk lanes (a 1 MiB value).
  std::size_t max_message_size = 64 * 1024;
  std::size_t max_in_flight = 1 << 20;  ///< messages on the wire at once; beyond, send() drops (queue_full)
  std::size_t max_in_flight_bytes = 256 << 20;  ///< their total payload bytes, likewise
  std::size_t max_timers = 1 << 20;  ///< pending timers; beyond, scheduling throws std::length_error
};

/// What a trace records. Every event the network processes is one record:
/// its canonical encoding feeds trace_hash(), and the trace sink (if any)
/// receives it as a trace_event.
enum class trace_kind : std::uint8_t {
  send = 1,   ///< send() accepted a message (from, to, size)
  deliver,    ///< the receive handler was called
  drop,       ///< the message was dropped; `reason` says why
  duplicate,  ///< a second copy of the message was put on the wire
  hold,       ///< delivery postponed: the link is clogged
  timer,      ///< a timer fired (from = its owner, or endpoint{} for a network timer)
  crash,      ///< endpoint `from` crashed
  restart,    ///< endpoint `from` restarted (detail = 1 if it kept its state)
  close,      ///< endpoint `from` closed its transport
  cut,        ///< link from -> to cut
  heal,       ///< link from -> to healed
  clog,       ///< link from -> to clogged until at + detail nanoseconds
};

/// Why the network dropped a message.
enum class drop_reason : std::uint8_t {
  none = 0,
  loss,        ///< the link's loss probability
  partition,   ///< the link was cut when the message was sent or due
  crash,       ///< the destination was down (crashed or closed), or restarted since the send
  overflow,    ///< max_in_flight or max_in_flight_bytes reached
  no_handler,  ///< the destination has no receive handler (restarted without state, not yet rebuilt)
};

/// One record of the network's trace.
struct trace_event {
  time_point at{};
  trace_kind kind = trace_kind::send;
  drop_reason reason = drop_reason::none;
  endpoint from{};
  endpoint to{};
  std::uint64_t size = 0;    ///< message bytes, for message events
  std::uint64_t detail = 0;  ///< timer id, keep_state flag or clog length, by kind
};

inline std::string_view to_string(trace_kind k) noexcept {
  switch (k) {
    case trace_kind::send:
      return "send";
    case trace_kind::deliver:
      return "deliver";
    case trace_kind::drop:
      return "drop";
    case trace_kind::duplicate:
      return "duplicate";
    case trace_kind::hold:
      return "hold";
    case trace_kind::timer:
      return "timer";
    case trace_kind::crash:
      return "crash";
    case trace_kind::restart:
      return "restart";
    case trace_kind::close:
      return "close";
    case trace_kind::cut:
      return "cut";
    case trace_kind::heal:
      return "heal";
    case trace_kind::clog:
      return "clog";
  }
  return "?";
}

inline std::string_view to_string(drop_reason r) noexcept {
  switch (r) {
    case drop_reason::none:
      return "none";
    case drop_reason::loss:
      return "loss";
    case drop_reason::partition:
      return "partition";
    case drop_reason::crash:
      return "crash";
    case drop_reason::overflow:
      return "overflow";
    case drop_reason::no_handler:
      return "no_handler";
  }
  return "?";
}

/// One line per event, e.g. "1250000ns drop(loss) sim:1->sim:2 size=40 detail=0".
inline std::string to_string(const trace_event& e) {
  std::string s = std::to_string(e.at.time_since_epoch().count()) + "ns " + std::string(to_string(e.kind));
  if (e.kind == trace_kind::drop) s += "(" + std::string(to_string(e.reason)) + ")";
  s += " " + e.from.to_string() + "->" + e.to.to_string() + " size=" + std::to_string(e.size) +
       " detail=" + std::to_string(e.detail);
  return s;
}

/// Counters over the network's lifetime. Conservation: every message accepted
/// by send(), and every duplicate, is eventually delivered or dropped, so
/// @code
/// sent + duplicated == delivered + dropped_*(all) + network::in_flight().
/// @endcode
struct network_stats {
  std::uint64_t sent = 0;                ///< messages send() accepted (passed size, state and address checks)
  std::uint64_t delivered = 0;           ///< receive handler calls
  std::uint64_t duplicated = 0;          ///< extra copies put on the wire
  std::uint64_t reordered = 0;           ///< messages given the extra reorder delay
  std::uint64_t held = 0;                ///< deliveries postponed by a clog (counted per postponement)
  std::uint64_t dropped_loss = 0;        ///< drop_reason::loss
  std::uint64_t dropped_partition = 0;   ///< drop_reason::partition
  std::uint64_t dropped_crash = 0;       ///< drop_reason::crash
  std::uint64_t dropped_overflow = 0;    ///< drop_reason::overflow
  std::uint64_t dropped_no_handler = 0;  ///< drop_reason::no_handler
  std::uint64_t timers_fired = 0;        ///< timer callbacks run
  std::uint64_t timers_discarded = 0;    ///< timers whose owner crashed, closed or restarted first

  std::uint64_t dropped() const noexcept {
    return dropped_loss + dropped_partition + dropped_crash + dropped_overflow + dropped_no_handler;
  }
};

/// A timer handle; 0 is never a valid one.
using timer_id = std::uint64_t;

class network;

/// One endpoint's view of the network: a dhtkit::transport. Owned by the
/// network (references stay valid for its lifetime); neither copyable nor
/// movable.
///
/// Lifecycle: up after add_endpoint(); network::crash() takes it down (send
/// returns errc::shut_down, nothing is delivered, its timers and every message
/// in flight to it are discarded); network::restart() brings it up again as a
/// new incarnation. close() is the endpoint's own, permanent shutdown -- until a
/// restart, which models a new process binding the same address.
class node_transport {
 public:
  using endpoint_type = endpoint;

  node_transport(const node_transport&) = delete;
  node_transport& operator=(const node_transport&) = delete;

  endpoint local_endpoint() const noexcept { return self_; }
  std::size_t max_message_size() const noexcept;

  /// Copies the message; the caller's span may die on return. Errors:
  /// shut_down (closed or crashed), message_too_large, unknown_peer (an
  /// endpoint this network never handed out), queue_full (max_in_flight
  /// reached). A message lost or cut by a fault still returns success: the
  /// sender cannot know.
  std::error_code send(const endpoint& to, std::span<const std::byte> message);

  /// May be called from inside the handler itself (e.g. to install a rebuilt core).
  void set_receive_handler(basic_receive_handler<endpoint> handler) { handler_.set(std::move(handler)); }

  void close();

  bool is_up() const noexcept { return up_; }
  bool is_closed() const noexcept { return closed_; }
  /// How many times the endpoint has been restarted.
  std::uint64_t incarnation() const noexcept { return incarnation_; }

  /// Timers owned by this endpoint: discarded if it crashes, closes or restarts
  /// before they are due, so a restarted node never runs its old self's ticks.
  timer_id schedule_at(time_point at, std::function<void()> callback);
  timer_id schedule_after(duration delay, std::function<void()> callback);

  network& net() noexcept { return *net_; }

 private:
  friend class network;

  node_transport(network& net, endpoint self) : net_(&net), self_(self) {}

  network* net_;
  endpoint self_;
  dhtkit::detail::callback_slot<void(const endpoint&, std::span<const std::byte>)> handler_;
  bool up_ = true;
  bool closed_ = false;
  // Bumped by every crash, close and restart: messages and timers remember the
  // epoch they were meant for and are discarded on mismatch.
  std::uint32_t epoch_ = 0;
  std::uint64_t incarnation_ = 0;
};

static_assert(dhtkit::transport<node_transport>, "sim::node_transport must satisfy dhtkit::transport");

/// The simulated network: endpoints, links with faults, timers, and virtual
/// time that advances from event to event (see sim.hpp).
class network {
 public:
  /// Throws std::invalid_argument for an inconsistent configuration.
  explicit network(std::uint64_t seed, network_config config = {})
      : seed_(seed), config_(config), rng_(seed), default_link_(compile(config.link, "config.link")) {
    if (config_.max_message_size == 0 || config_.max_message_size > max_allowed_message_size) {
      throw std::invalid_argument("dhtkit::sim::network: max_message_size must be in [1, 1 GiB]");
    }
    if (config_.max_in_flight == 0)
      throw std::invalid_argument("dhtkit::sim::network: max_in_flight must be > 0");
    if (config_.max_in_flight_bytes < config_.max_message_size) {
      throw std::invalid_argument("dhtkit::sim::network: max_in_flight_bytes must be >= max_message_size");
    }
    if (config_.max_timers == 0) throw std::invalid_argument("dhtkit::sim::network: max_timers must be > 0");
  }

  network(const network&) = delete;
  network& operator=(const network&) = delete;

  // ---- endpoints ----------------------------------------------------------

  node_transport& add_endpoint() {
    if (nodes_.size() >= std::numeric_limits<std::uint32_t>::max() - 1) {
      throw std::length_error("dhtkit::sim::network: too many endpoints");
    }
    const endpoint e{static_cast<std::uint32_t>(nodes_.size() + 1)};
    nodes_.push_back(std::unique_ptr<node_transport>(new node_transport(*this, e)));
    return *nodes_.back();
  }

  bool knows(endpoint e) const noexcept { return e.id >= 1 && e.id <= nodes_.size(); }
  std::size_t endpoint_count() const noexcept { return nodes_.size(); }
  /// Throws std::invalid_argument for an endpoint this network never handed out.
  node_transport& transport(endpoint e) { return node(e); }

  // ---- time and timers ----------------------------------------------------

  time_point now() const noexcept { return now_; }
  std::uint64_t seed() const noexcept { return seed_; }
  const network_config& config() const noexcept { return config_; }

  /// Network-owned timers, cancelled only by cancel(). A time in the past means
  /// "now" (after the events already due now). Throws std::length_error beyond
  /// max_timers pending timers: a runaway timer loop is a bug, not load.
  timer_id schedule_at(time_point at, std::function<void()> callback) {
    return add_timer(0, 0, at, std::move(callback));
  }
  timer_id schedule_after(duration delay, std::function<void()> callback) {
    return schedule_at(later(now_, delay), std::move(callback));
  }
  /// Endpoint-owned timers (see node_transport::schedule_at).
  timer_id schedule_at(endpoint owner, time_point at, std::function<void()> callback) {
    node_transport& t = node(owner);
    return add_timer(owner.id, t.epoch_, at, std::move(callback));
  }
  timer_id schedule_after(endpoint owner, duration delay, std::function<void()> callback) {
    return schedule_at(owner, later(now_, delay), std::move(callback));
  }
  /// True if the timer was pending (it will not fire).
  bool cancel(timer_id id) {
    if (timers_.erase(id) == 0) return false;
    compact_cancelled_timers();
    return true;
  }

  // ---- running ------------------------------------------------------------
  // None of these may be called from inside a receive handler or a timer
  // callback (std::logic_error): events run one at a time, in (time, sequence)
  // order, so ties are broken by the order they were scheduled in.

  /// Runs the next event, advancing now() to its time. False if there is none.
  bool step() {
    run_guard guard(*this);
    while (!queue_.empty()) {
      if (dispatch(pop())) return true;
    }
    return false;
  }

  /// Runs every event due at or before t, then sets now() to t (if later).
  /// Returns how many events ran.
  std::size_t run_until(time_point t) {
    run_guard guard(*this);
    std::size_t ran = 0;
    while (!queue_.empty() && queue_.front().at <= t.time_since_epoch().count()) {
      if (dispatch(pop())) ++ran;
    }
    if (now_ < t) now_ = t;
    return ran;
  }

  std::size_t run_for(duration d) { return run_until(later(now_, d)); }

  /// Runs events until done() holds (checked before the first and after every
  /// event) or the next event is past `deadline`; in the latter case now()
  /// becomes the deadline. Returns done().
  template <class Pred>
  bool run_until(time_point deadline, Pred done) {
    if (done()) return true;
    {
      run_guard guard(*this);
      while (!queue_.empty() && queue_.front().at <= deadline.time_since_epoch().count()) {
        if (dispatch(pop()) && done()) return true;
      }
      if (now_ < deadline) now_ = deadline;
    }
    return done();
  }

  /// Runs events until none is left or max_events have run; true if idle.
  /// (With periodic timers a network is never idle: that is what the bound is for.)
  bool run_until_idle(std::size_t max_events) {
    run_guard guard(*this);
    std::size_t ran = 0;
    while (!queue_.empty() && ran < max_events) {
      if (dispatch(pop())) ++ran;
    }
    return queue_.empty();
  }

  /// Scheduled events (messages and timers, including cancelled timers not yet due).
  std::size_t pending_events() const noexcept { return queue_.size(); }
  std::size_t in_flight() const noexcept { return in_flight_; }

  // ---- faults -------------------------------------------------------------
  // Endpoints must have been handed out by this network (std::invalid_argument
  // otherwise). Each fault is recorded in the trace.

  /// Overrides the faults of the directed link from -> to (std::invalid_argument
  /// for an invalid link_config). reset_link() returns it to config().link.
  void set_link(endpoint from, endpoint to, const link_config& link) {
    check_pair(from, to);
    links_[key(from, to)].override_params = compile(link, "set_link");
  }
  void reset_link(endpoint from, endpoint to) {
    check_pair(from, to);
    if (auto it = links_.find(key(from, to)); it != links_.end()) it->second.override_params.reset();
  }

  /// One direction only: from -> to is dropped (at send and at delivery, so
  /// messages already in flight are lost too); to -> from still flows.
  void cut(endpoint from, endpoint to) {
    check_pair(from, to);
    links_[key(from, to)].cut = true;
    record(trace_kind::cut, drop_reason::none, from, to, 0, 0);
  }
  /// Both directions.
  void partition(endpoint a, endpoint b) {
    cut(a, b);
    cut(b, a);
  }
  /// Cuts e off from every other endpoint, both ways.
  void isolate(endpoint e) {
    node(e);
    for (std::uint32_t id = 1; id <= nodes_.size(); ++id) {
      if (id != e.id) partition(e, endpoint{id});
    }
  }
  /// Both directions.
  void heal(endpoint a, endpoint b) {
    check_pair(a, b);
    heal_one(a, b);
    heal_one(b, a);
  }
  /// Every cut of the network (clogs and link overrides stay).
  void heal_all() {
    // Heal in endpoint order, not hash-map order, so the trace is deterministic.
    std::vector<std::uint64_t> cut_links;
    for (const auto& [k, state] : links_) {
      if (state.cut) cut_links.push_back(k);
    }
    std::sort(cut_links.begin(), cut_links.end());
    for (std::uint64_t k : cut_links) {
      heal_one(endpoint{static_cast<std::uint32_t>(k >> 32)}, endpoint{static_cast<std::uint32_t>(k)});
    }
  }
  /// Holds every message on from -> to that falls due in the next `length`
  /// (and every one sent meanwhile) until the clog ends, then delivers them:
  /// unlike a cut, a clog delays and never drops. Clogging an already clogged
  /// link extends it if the new end is later.
  void clog(endpoint from, endpoint to, duration length) {
    check_pair(from, to);
    const time_point until = later(now_, std::max(length, duration::zero()));
    link_state& state = links_[key(from, to)];
    state.clog_until = std::max(state.clog_until, until);
    record(trace_kind::clog, drop_reason::none, from, to, 0,
           static_cast<std::uint64_t>((state.clog_until - now_).count()));
  }

  /// The endpoint stops sending and receiving: its sends fail with shut_down,
  /// messages in flight to it are dropped (even if it restarts before they are
  /// due), its timers are discarded. Messages it sent before are already on the
  /// wire and still arrive. Crashing a down endpoint does nothing.
  void crash(endpoint e) {
    node_transport& t = node(e);
    if (!t.up_) return;
    t.up_ = false;
    ++t.epoch_;
    free_links_to(e);
    record(trace_kind::crash, drop_reason::none, e, endpoint{}, 0, 0);
  }

  /// Brings the endpoint back (a restart of a live endpoint is a crash and a
  /// restart at the same instant) and returns its transport, same object, same
  /// endpoint, incarnation() + 1. Timers never survive: the driver re-arms them.
  ///  - keep_state = true: the process kept its memory (a pause, a network
  ///    blip): the receive handler stays installed.
  ///  - keep_state = false: the process lost everything: the receive handler is
  ///    removed (messages arriving before a new one is set are dropped as
  ///    no_handler), so the driver must build a fresh core and install its handler.
  ///
  /// The restart hook, if set, is called with the transport and keep_state
  /// right after, which lets a randomized fault schedule restart nodes without
  /// knowing how to rebuild them.
  node_transport& restart(endpoint e, bool keep_state) {
    node_transport& t = node(e);
    t.up_ = true;
    t.closed_ = false;
    ++t.epoch_;
    ++t.incarnation_;
    free_links_to(e);
    if (!keep_state) t.handler_.clear();
    record(trace_kind::restart, drop_reason::none, e, endpoint{}, 0, keep_state ? 1 : 0);
    restart_hook_.call(t, keep_state);
    return t;
  }

  void set_restart_hook(std::function<void(node_transport&, bool keep_state)> hook) {
    restart_hook_.set(std::move(hook));
  }

  // ---- observation --------------------------------------------------------

  /// A running XXH64 over the canonical encoding of every trace record so far
  /// (each record hashed with the previous hash as seed). Equal seeds and equal
  /// driver code give equal hashes, on every platform.
  std::uint64_t trace_hash() const noexcept { return trace_hash_; }
  /// Called with every trace record, in order (e.g. to print a failing run).
  void set_trace_sink(std::function<void(const trace_event&)> sink) { sink_.set(std::move(sink)); }
  const network_stats& stats() const noexcept { return stats_; }

 private:
  friend class node_transport;

  static constexpr std::size_t max_allowed_message_size = std::size_t{1} << 30;
  static constexpr std::uint64_t timer_flag = std::uint64_t{1} << 63;
  // Largest buffer a free message slot keeps for reuse (see release_swapped).
  static constexpr std::size_t pooled_capacity = 512;

  // A link_config turned into what the hot path needs: integer nanoseconds and
  // integer probability thresholds.
  struct link_params {
    std::int64_t latency_min = 0;
    std::int64_t latency_mean = 0;
    std::int64_t jitter = 0;
    std::int64_t reorder_delay = 0;
    std::uint64_t loss = 0;
    std::uint64_t duplicate = 0;
    std::uint64_t reorder = 0;
    std::uint64_t bandwidth = 0;
  };

  struct link_state {
    bool cut = false;
    time_point clog_until{};
    time_point busy_until{};  // end of the last transmission; only with a bandwidth
    std::optional<link_params> override_params;
  };

  struct message {
    endpoint from{};
    endpoint to{};
    std::uint32_t to_epoch = 0;
    std::vector<std::byte> bytes;  // kept with its capacity when the slot is reused
  };

  struct timer_record {
    std::function<void()> callback;
    std::uint32_t owner = 0;  // endpoint id, 0 for network timers
    std::uint32_t owner_epoch = 0;
  };

  // Ordered by (at, seq): seq is unique and increasing, so ties are broken by
  // scheduling order and the order never depends on the heap's internals.
  struct event {
    std::int64_t at;
    std::uint64_t seq;
    std::uint64_t ref;  // message slot, or timer id | timer_flag
  };
  struct later_event {
    bool operator()(const event& x, const event& y) const noexcept {
      return x.at != y.at ? x.at > y.at : x.seq > y.seq;
    }
  };

  struct run_guard {
    network& n;
    explicit run_guard(network& net) : n(net) {
      if (n.running_) {
        throw std::logic_error(
            "dhtkit::sim::network: run/step called from inside a handler or timer callback");
      }
      n.running_ = true;
    }
    ~run_guard() { n.running_ = false; }
    run_guard(const run_guard&) = delete;
    run_guard& operator=(const run_guard&) = delete;
  };

  static link_params compile(const link_config& c, const char* what) {
    constexpr duration limit = std::chrono::hours(24);
    auto fail = [what](const char* why) {
      throw std::invalid_argument(std::string("dhtkit::sim::network: ") + what + ": " + why);
    };
    auto is_probability = [](double p) { return p >= 0.0 && p <= 1.0; };  // false for NaN
    if (c.latency_min < duration::zero() || c.latency_min > limit) fail("latency_min must be in [0, 24h]");
    if (c.latency_mean < c.latency_min || c.latency_mean > limit)
      fail("latency_mean must be in [latency_min, 24h]");
    if (c.jitter < duration::zero() || c.jitter > limit) fail("jitter must be in [0, 24h]");
    if (c.reorder_delay < duration::zero() || c.reorder_delay > limit)
      fail("reorder_delay must be in [0, 24h]");
    if (!is_probability(c.loss)) fail("loss must be a probability in [0, 1]");
    if (!is_probability(c.duplicate)) fail("duplicate must be a probability in [0, 1]");
    if (!is_probability(c.reorder)) fail("reorder must be a probability in [0, 1]");
    return link_params{c.latency_min.count(),
                       c.latency_mean.count(),
                       c.jitter.count(),
                       c.reorder_delay.count(),
                       dhtkit::probability_threshold(c.loss),
                       dhtkit::probability_threshold(c.duplicate),
                       dhtkit::probability_threshold(c.reorder),
                       c.bandwidth};
  }

  static constexpr std::uint64_t key(endpoint from, endpoint to) noexcept {
    return (std::uint64_t{from.id} << 32) | to.id;
  }

  // t + d without overflow (a huge run_for or clog saturates instead of wrapping).
  static time_point later(time_point t, duration d) noexcept {
    if (d <= duration::zero()) return t;
    if (t.time_since_epoch() > duration::max() - d) return time_point(duration::max());
    return t + d;
  }

  node_transport& node(endpoint e) {
    if (!knows(e)) {
      throw std::invalid_argument("dhtkit::sim::network: " + e.to_string() +
                                  " is not an endpoint of this network");
    }
    return *nodes_[e.id - 1];
  }

  void check_pair(endpoint a, endpoint b) {
    node(a);
    node(b);
  }

  void heal_one(endpoint from, endpoint to) {
    auto it = links_.find(key(from, to));
    if (it == links_.end() || !it->second.cut) return;
    it->second.cut = false;
    record(trace_kind::heal, drop_reason::none, from, to, 0, 0);
  }

  void push(std::int64_t at, std::uint64_t ref) {
    queue_.push_back(event{at, next_seq_++, ref});
    std::push_heap(queue_.begin(), queue_.end(), later_event{});
  }

  event pop() {
    std::pop_heap(queue_.begin(), queue_.end(), later_event{});
    const event ev = queue_.back();
    queue_.pop_back();
    return ev;
  }

  timer_id add_timer(std::uint32_t owner, std::uint32_t owner_epoch, time_point at,
                     std::function<void()> callback) {
    if (timers_.size() >= config_.max_timers) {
      throw std::length_error("dhtkit::sim::network: more than max_timers pending timers");
    }
    const timer_id id = next_timer_id_++;
    timers_.emplace(id, timer_record{std::move(callback), owner, owner_epoch});
    ++pending_timer_events_;
    push(std::max(at, now_).time_since_epoch().count(), id | timer_flag);
    return id;
  }

  void record(trace_kind kind, drop_reason reason, endpoint from, endpoint to, std::uint64_t size,
              std::uint64_t detail) {
    // Canonical encoding: fixed width, little-endian, independent of struct layout.
    char buf[34];
    std::size_t n = 0;
    auto put = [&](std::uint64_t v, int bytes) {
      for (int i = 0; i < bytes; ++i) buf[n++] = static_cast<char>((v >> (8 * i)) & 0xFF);
    };
    put(static_cast<std::uint8_t>(kind), 1);
    put(static_cast<std::uint8_t>(reason), 1);
    put(static_cast<std::uint64_t>(now_.time_since_epoch().count()), 8);
    put(from.id, 4);
    put(to.id, 4);
    put(size, 8);
    put(detail, 8);
    trace_hash_ = xxh64(std::string_view(buf, n), trace_hash_);
    if (sink_) sink_.call(trace_event{now_, kind, reason, from, to, size, detail});
  }

  void drop(drop_reason reason, endpoint from, endpoint to, std::uint64_t size) {
    switch (reason) {
      case drop_reason::loss:
        ++stats_.dropped_loss;
        break;
      case drop_reason::partition:
        ++stats_.dropped_partition;
        break;
      case drop_reason::crash:
        ++stats_.dropped_crash;
        break;
      case drop_reason::overflow:
        ++stats_.dropped_overflow;
        break;
      case drop_reason::no_handler:
        ++stats_.dropped_no_handler;
        break;
      case drop_reason::none:
        break;
    }
    record(trace_kind::drop, reason, from, to, size, 0);
  }

  std::error_code send_from(node_transport& src, endpoint to, std::span<const std::byte> bytes) {
    if (!src.up_) return errc::shut_down;
    if (bytes.size() > config_.max_message_size) return errc::message_too_large;
    if (!knows(to)) return errc::unknown_peer;
    ++stats_.sent;
    record(trace_kind::send, drop_reason::none, src.self_, to, bytes.size(), 0);

    const link_params* params = &default_link_;
    if (!links_.empty()) {
      if (auto it = links_.find(key(src.self_, to)); it != links_.end()) {
        if (it->second.cut) {
          drop(drop_reason::partition, src.self_, to, bytes.size());
          return {};
        }
        if (it->second.override_params) params = &*it->second.override_params;
      }
    }
    if (params->loss != 0 && rng_.chance(params->loss)) {
      drop(drop_reason::loss, src.self_, to, bytes.size());
      return {};
    }
    const std::error_code ec = enqueue(src.self_, to, bytes, *params);
    if (params->duplicate != 0 && rng_.chance(params->duplicate)) {
      ++stats_.duplicated;
      record(trace_kind::duplicate, drop_reason::none, src.self_, to, bytes.size(), 0);
      (void)enqueue(src.self_, to, bytes, *params);
    }
    return ec;
  }

  std::error_code enqueue(endpoint from, endpoint to, std::span<const std::byte> bytes,
                          const link_params& p) {
    if (in_flight_ >= config_.max_in_flight ||
        bytes.size() > config_.max_in_flight_bytes - in_flight_bytes_) {
      drop(drop_reason::overflow, from, to, bytes.size());
      return errc::queue_full;
    }
    std::int64_t delay = p.latency_mean;
    if (p.jitter > 0) {
      delay += static_cast<std::int64_t>(rng_.below(2 * static_cast<std::uint64_t>(p.jitter) + 1)) - p.jitter;
    }
    delay = std::max(delay, p.latency_min);
    if (p.reorder != 0 && rng_.chance(p.reorder)) {
      ++stats_.reordered;
      delay += static_cast<std::int64_t>(rng_.below(static_cast<std::uint64_t>(p.reorder_delay)));
    }
    // Without a bandwidth nothing below draws or records anything, so traces
    // of unlimited links are those of a simulator without the model.
    time_point sent_at = now_;
    if (p.bandwidth != 0) {
      link_state& link = links_[key(from, to)];
      sent_at = later(std::max(now_, link.busy_until), transmission_time(bytes.size(), p.bandwidth));
      link.busy_until = sent_at;
    }

    std::uint32_t slot;
    if (!free_slots_.empty()) {
      slot = free_slots_.back();
      free_slots_.pop_back();
    } else {
      slot = static_cast<std::uint32_t>(slots_.size());
      slots_.emplace_back();
    }
    message& m = slots_[slot];
    m.from = from;
    m.to = to;
    m.to_epoch = nodes_[to.id - 1]->epoch_;
    m.bytes.assign(bytes.begin(), bytes.end());
    ++in_flight_;
    in_flight_bytes_ += bytes.size();
    push(later(sent_at, duration(delay)).time_since_epoch().count(), slot);
    return {};
  }

  // ceil(size * 1e9 / bandwidth) ns. size <= 1 GiB, so size * 1e9 < 2^64.
  static duration transmission_time(std::uint64_t size, std::uint64_t bandwidth) noexcept {
    const std::uint64_t scaled = size * 1'000'000'000ULL;
    const std::uint64_t ns = scaled / bandwidth + (scaled % bandwidth != 0 ? 1 : 0);
    return ns > static_cast<std::uint64_t>(duration::max().count())
               ? duration::max()
               : duration(static_cast<duration::rep>(ns));
  }

  // A crashed or restarted endpoint's incoming queues are discarded with the
  // messages on them: the next message to it starts at once.
  void free_links_to(endpoint e) {
    for (auto& [k, state] : links_) {
      if (static_cast<std::uint32_t>(k) == e.id) state.busy_until = time_point{};
    }
  }

  void release(std::uint32_t slot) { release_swapped(slot, slots_[slot].bytes.size()); }

  // Runs one popped event; false if it had no effect (a cancelled or stale
  // timer). Only an event that runs moves the clock: skipping a cancelled
  // timeout must not make an hour pass with nothing happening.
  bool dispatch(const event& ev) {
    const time_point at{duration(ev.at)};
    if (ev.ref & timer_flag) return fire_timer(ev.ref & ~timer_flag, at);
    now_ = at;
    deliver(static_cast<std::uint32_t>(ev.ref));
    return true;
  }

  // Cancelled timers stay in the event queue until due (removing from a heap
  // is O(n)); once they are the majority of a large queue, drop them all in one
  // pass, so cancel-heavy drivers (request timeouts) keep the queue bounded by
  // live work. The (time, sequence) order is total, so rebuilding the heap
  // changes nothing about the order events run in.
  void compact_cancelled_timers() {
    const std::size_t cancelled = pending_timer_events_ - timers_.size();
    if (cancelled < 1024 || cancelled * 2 < queue_.size()) return;
    std::erase_if(queue_, [&](const event& ev) {
      return (ev.ref & timer_flag) != 0 && !timers_.contains(ev.ref & ~timer_flag);
    });
    std::make_heap(queue_.begin(), queue_.end(), later_event{});
    pending_timer_events_ = timers_.size();
  }

  bool fire_timer(timer_id id, time_point at) {
    --pending_timer_events_;
    auto it = timers_.find(id);
    if (it == timers_.end()) return false;  // cancelled
    timer_record timer = std::move(it->second);
    timers_.erase(it);
    if (timer.owner != 0) {
      const node_transport& owner = *nodes_[timer.owner - 1];
      if (!owner.up_ || owner.epoch_ != timer.owner_epoch) {
        ++stats_.timers_discarded;
        return false;
      }
    }
    now_ = at;
    ++stats_.timers_fired;
    record(trace_kind::timer, drop_reason::none, endpoint{timer.owner}, endpoint{}, 0, id);
    timer.callback();
    return true;
  }

  void deliver(std::uint32_t slot) {
    message& m = slots_[slot];
    const endpoint from = m.from;
    const endpoint to = m.to;
    const std::uint64_t size = m.bytes.size();
    node_transport& dst = *nodes_[to.id - 1];
    if (!dst.up_ || dst.epoch_ != m.to_epoch) {
      release(slot);
      drop(drop_reason::crash, from, to, size);
      return;
    }
    if (!links_.empty()) {
      if (auto it = links_.find(key(from, to)); it != links_.end()) {
        if (it->second.cut) {
          release(slot);
          drop(drop_reason::partition, from, to, size);
          return;
        }
        if (it->second.clog_until > now_) {
          ++stats_.held;
          record(trace_kind::hold, drop_reason::none, from, to, size, 0);
          push(it->second.clog_until.time_since_epoch().count(), slot);
          return;
        }
      }
    }
    if (!dst.handler_) {
      release(slot);
      drop(drop_reason::no_handler, from, to, size);
      return;
    }
    // The handler may send (growing slots_) or reuse this slot: hand it a
    // buffer nobody else touches until it returns, and give the slot the
    // previous delivery's buffer so its capacity is reused.
    std::swap(delivering_, m.bytes);
    release_swapped(slot, size);
    ++stats_.delivered;
    record(trace_kind::deliver, drop_reason::none, from, to, size, 0);
    dst.handler_.call(from, std::span<const std::byte>(delivering_.data(), delivering_.size()));
  }

  // `size` is the released message's size (the slot may already hold another buffer).
  void release_swapped(std::uint32_t slot, std::uint64_t size) {
    --in_flight_;
    in_flight_bytes_ -= size;
    // Free slots keep small buffers so steady traffic allocates nothing, but
    // not large ones: otherwise every slot that once carried a big message
    // would keep its memory, and the pool could grow far past
    // max_in_flight_bytes.
    std::vector<std::byte>& buffer = slots_[slot].bytes;
    if (buffer.capacity() > pooled_capacity) std::vector<std::byte>().swap(buffer);
    free_slots_.push_back(slot);
  }

  std::uint64_t seed_;
  network_config config_;
  dhtkit::random_engine rng_;
  link_params default_link_;
  time_point now_{};
  std::vector<std::unique_ptr<node_transport>> nodes_;
  std::unordered_map<std::uint64_t, link_state> links_;
  std::vector<event> queue_;
  std::uint64_t next_seq_ = 0;
  std::vector<message> slots_;
  std::vector<std::uint32_t> free_slots_;
  std::size_t in_flight_ = 0;
  std::size_t in_flight_bytes_ = 0;
  std::vector<std::byte> delivering_;
  std::unordered_map<timer_id, timer_record> timers_;
  timer_id next_timer_id_ = 1;
  std::size_t pending_timer_events_ = 0;
  dhtkit::detail::callback_slot<void(node_transport&, bool)> restart_hook_;
  dhtkit::detail::callback_slot<void(const trace_event&)> sink_;
  std::uint64_t trace_hash_ = 0;
  network_stats stats_;
  bool running_ = false;
};

inline std::size_t node_transport::max_message_size() const noexcept {
  return net_->config_.max_message_size;
}

inline std::error_code node_transport::send(const endpoint& to, std::span<const std::byte> message) {
  return net_->send_from(*this, to, message);
}

inline void node_transport::close() {
  if (closed_) return;
  closed_ = true;
  up_ = false;
  ++epoch_;
  net_->record(trace_kind::close, drop_reason::none, self_, endpoint{}, 0, 0);
}

inline timer_id node_transport::schedule_at(time_point at, std::function<void()> callback) {
  return net_->schedule_at(self_, at, std::move(callback));
}

inline timer_id node_transport::schedule_after(duration delay, std::function<void()> callback) {
  return net_->schedule_after(self_, delay, std::move(callback));
}

}  // namespace dhtkit::sim

template <>
struct std::hash<dhtkit::sim::endpoint> {
  std::size_t operator()(const dhtkit::sim::endpoint& e) const noexcept {
    return static_cast<std::size_t>(dhtkit::mix64(e.id));
  }
};

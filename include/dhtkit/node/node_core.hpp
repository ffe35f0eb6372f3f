/// @file
/// The DHT node's core: SWIM membership, a placement (one_hop or Chord) and
/// quorum replication composed into one protocol core that does no I/O, with
/// rebalancing (handoff) when membership changes.
///
/// The core is what dhtkit::basic_node runs on real sockets (node/node.hpp)
/// and dhtkit::sim_node runs on the deterministic simulator
/// (node/sim_node.hpp): the same code in both. It is a protocol_core whose
/// addresses name an endpoint and a lane (node/node_outbox.hpp): SWIM and
/// small messages on the packet lane, large values and handoff chunks on the
/// stream lane, so a probe never waits behind bulk data.
///
/// How it composes:
///  - SWIM decides who is in the cluster. Its events update a directory
///    (id -> packet and stream endpoints, state) and, batched (changes
///    within placement_settle of the first one become one change), the
///    placement's member set;
///  - the placement turns members into preference lists; each change yields
///    range moves, which the handoff manager (node/handoff.hpp) acts on:
///    ranges this node no longer holds are streamed to their new holders and
///    dropped once they acknowledged; ranges it gained serve reads only once
///    filled (until then reads go to the previous holders);
///  - the replica (replication/replica.hpp) coordinates puts and gets over
///    the placement's lists;
///  - every envelope is decoded once and routed by its tag's range; a
///    replication or handoff message is taken only from a member, at that
///    member's address.
///
/// @code
/// dhtkit::memory_storage store;
/// dhtkit::hint_store hints;
/// dhtkit::handoff_journal journal;
/// auto cfg = dhtkit::node_config::local();
/// cfg.name = "a";
/// dhtkit::basic_node_core<int> core(cfg, /*packet=*/1, /*stream=*/2, store, hints, journal, /*seed=*/7);
/// dhtkit::time_point now{};
/// std::vector<int> seeds;                     // none: found a cluster
/// (void)core.join(seeds, now);
/// core.tick(now + dhtkit::seconds(1));         // settles: this node holds every range
/// auto id = core.put("k", dhtkit::to_bytes("v"), {}, now + dhtkit::seconds(1),
///                    dhtkit::request_options{1, 1, 1, {}});  // n = r = w = 1: answered locally
/// // core.take_outbox().puts holds {id, no error, acks 1}
/// @endcode
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <unordered_map>
#include <variant>
#include <vector>

#include "dhtkit/chord/router.hpp"
#include "dhtkit/core/error.hpp"
#include "dhtkit/core/random.hpp"
#include "dhtkit/core/time.hpp"
#include "dhtkit/driver/protocol_core.hpp"
#include "dhtkit/membership/swim.hpp"
#include "dhtkit/node/chord_placement.hpp"
#include "dhtkit/node/config.hpp"
#include "dhtkit/node/detail/node_lanes.hpp"
#include "dhtkit/node/detail/node_meta.hpp"
#include "dhtkit/node/detail/tracked_storage.hpp"
#include "dhtkit/node/handoff.hpp"
#include "dhtkit/node/handoff_journal.hpp"
#include "dhtkit/node/node_outbox.hpp"
#include "dhtkit/node/node_stats.hpp"
#include "dhtkit/node/one_hop.hpp"
#include "dhtkit/node/placement.hpp"
#include "dhtkit/replication/hint_store.hpp"
#include "dhtkit/replication/replica.hpp"
#include "dhtkit/replication/storage.hpp"

namespace dhtkit {

namespace detail::node {
template <class Core>
struct placement_view;
}

/// True for a placement whose owners are found by routed lookups (Chord's
/// finger tables): the node then resolves a key's owner before coordinating.
template <class P>
inline constexpr bool routes_lookups = requires {
  requires P::routes_lookups;
};

/// The DHT node as a protocol core that does no I/O (see node_core.hpp).
template <class Endpoint, placement Placement = one_hop, storage Storage = memory_storage>
class basic_node_core {
 public:
  using address_type = lane_address<Endpoint>;
  using outbox_type = node_outbox<Endpoint>;
  using placement_type = Placement;
  using storage_type = Storage;
  /// The node decodes and routes Chord, membership, replication and its own
  /// ranges itself (0x0100-0x04FF).
  static constexpr wire::tag_range wire_tags{wire::tags::chord.first, wire::tags::node.last, "dht node"};
  static constexpr bool routed = routes_lookups<Placement>;

  /// Throws std::invalid_argument for an invalid configuration. `packet` and
  /// `stream` are this node's endpoints on its two lanes; the durable objects
  /// (store, hints, journal) outlive the core and survive its restarts.
  basic_node_core(const node_config& config, Endpoint packet, Endpoint stream, Storage& store,
                  hint_store& hints, handoff_journal& journal, std::uint64_t seed);
  basic_node_core(const basic_node_core&) = delete;
  basic_node_core& operator=(const basic_node_core&) = delete;

  // ---- protocol_core ---------------------------------------------------------

  /// A message that arrived on `from.via` from `from.endpoint`: {} when taken,
  /// else why it was refused (counted in stats().dropped).
  std::error_code receive(const address_type& from, std::span<const std::byte> bytes, time_point now);
  std::error_code receive(const address_type& from, const wire::envelope& env, time_point now);
  void tick(time_point now);
  std::optional<time_point> next_wakeup() const noexcept;
  outbox_type take_outbox() {
    outbox_type out = std::move(out_);
    out_.clear();
    return out;
  }
  /// What the calls since the last take_outbox() produced.
  outbox_type& outbox() noexcept { return out_; }
  const node_stats& stats() const noexcept { return stats_; }

  // ---- lifecycle -------------------------------------------------------------

  /// Joins through `seeds` (packet endpoints), or founds a cluster when there
  /// are none. The outcome is a status in the outbox: joined, or left with
  /// name_in_use (another live node has this name) or timed_out.
  std::error_code join(std::span<const Endpoint> seeds, time_point now);
  /// Leaves gracefully: hands every range off, then leaves SWIM. The outcome
  /// is a status left (with timed_out if leave_timeout cut the handoff short).
  std::error_code leave(time_point now);

  // ---- client operations (outcomes in the outbox's puts / gets, by id) -------

  request_id put(std::string_view key, bytes value, const version_vector& context, time_point now,
                 request_options options = {});
  request_id erase(std::string_view key, const version_vector& context, time_point now,
                   request_options options = {});
  request_id get(std::string_view key, time_point now, request_options options = {});
  /// Forgets an operation: its outcome is never reported. False if unknown.
  bool cancel(request_id id);

  // ---- application messages --------------------------------------------------

  /// Sends `payload` to member `to`'s application (its outbox's
  /// `applications`) on the stream lane: in order while the connection
  /// lasts, but it may still be lost (a crash, a reconnect), so a reply and a
  /// timeout are the application's. not_a_member when `to` is not a live member (or is this
  /// node); message_too_large past stream_max_message; not_joined before join.
  std::error_code send_application(node_id to, bytes payload);

  // ---- observation -----------------------------------------------------------

  node_id id() const noexcept { return self_; }
  const std::string& name() const noexcept { return config_.name; }
  node_state state() const noexcept { return state_; }
  const node_config& config() const noexcept { return config_; }
  const Endpoint& packet_endpoint() const noexcept { return packet_; }
  const Endpoint& stream_endpoint() const noexcept { return stream_; }
  const Placement& placement() const noexcept { return placement_; }
  const membership::basic_swim<Endpoint>& membership() const noexcept { return swim_; }
  /// True when this node holds `key` under its placement (among its first n).
  bool holds(std::string_view key) const { return placement_.holds(self_, placement_.position(key)); }
  /// True when reads of `key` may be answered here (its range is not waiting for a handoff).
  bool ready(std::string_view key) const { return handoff_.ready(placement_.position(key)); }
  /// The live members this node routes to (self included once joined), sorted by id.
  std::vector<node_id> live_members() const;
  std::size_t pending() const noexcept { return ops_.size(); }
  /// The name of the member (any state) whose stream lane is at `stream`, or
  /// null: what a secured stream lane binds a peer's certificate to.
  const std::string* stream_member_name(const Endpoint& stream) const {
    auto it = by_stream_.find(stream);
    if (it == by_stream_.end()) return nullptr;
    auto p = peers_.find(it->second);
    return p == peers_.end() ? nullptr : &p->second.name;
  }
  bool check_invariants() const { return swim_.check_invariants(); }

 private:
  friend struct detail::node::placement_view<basic_node_core>;
  using view_type = detail::node::placement_view<basic_node_core>;
  struct write_note {
    basic_node_core* core;
    void operator()(std::string_view key) const { core->handoff_.note_write(core->placement_.position(key)); }
  };
  using tracked_type = detail::node::tracked_storage<Storage, write_note>;
  using replica_type = basic_replica<tracked_type, view_type>;
  using router_type = std::conditional_t<routed, chord::basic_router<Endpoint>, std::monostate>;

  struct peer_entry {
    Endpoint packet{};
    Endpoint stream{};
    std::string name;
    membership::member_state state = membership::member_state::alive;
    bool draining = false;
    std::uint32_t weight = 1;
    bool has_meta = false;
    std::optional<time_point> dead_since;
    bool grace_pending = false;  // dead, still in the placement until dead_member_grace ends
  };
  enum class op_kind : std::uint8_t { put, erase, get };
  struct client_op {
    op_kind kind = op_kind::get;
    time_point started{};
    request_id replica_id = 0;  // 0 while a chord lookup resolves the owner
    std::uint64_t lookup = 0;
    std::string key;
    bytes value;
    version_vector context;
    request_options options;
  };

  router_type make_router(std::uint64_t seed);

  // membership (detail/node_membership.hpp)
  void on_member_event(const membership::member_event<Endpoint>& e, time_point now);
  void refresh_peer(node_id id, time_point now);
  void schedule_settle(time_point now);
  void settle(time_point now);
  std::vector<placement_member> placement_members(time_point now) const;
  bool is_live(node_id id) const;
  void emit_member(node_event_kind kind, node_id id);
  void emit_ranges(node_event_kind kind, std::vector<key_range> ranges);
  void update_gauges();
  void fail_join(std::error_code ec, time_point now);
  void finish_leave(std::error_code ec);

  // routing and sending (detail/node_routing.hpp)
  std::error_code route(const address_type& from, const wire::envelope& env, time_point now);
  std::error_code check_sender(const address_type& from, node_id sender);
  void pump(time_point now);
  void send_to_endpoint(const Endpoint& to, std::vector<std::byte> bytes);
  void send_to_node(node_id to, std::vector<std::byte> bytes);
  std::optional<Endpoint> endpoint_of(node_id id, lane via) const;

  // client operations (detail/node_ops.hpp)
  request_id start_op(op_kind kind, std::string_view key, bytes value, const version_vector& context,
                      time_point now, const request_options& options);
  void dispatch_op(request_id id, client_op& op, time_point now);
  void on_put_done(put_completion c, time_point now);
  void on_get_done(get_completion c, time_point now);
  void fail_op(request_id id, const client_op& op, std::error_code ec);
  void on_lookup(const chord::lookup_result<Endpoint>& r, time_point now);
  time_point op_deadline(const client_op& op) const noexcept {
    return op.started + op.options.timeout.value_or(config_.replication.request_timeout);
  }

  node_config config_;
  node_id self_;
  Endpoint packet_;
  Endpoint stream_;
  Storage& store_;
  hint_store& hints_;
  node_state state_ = node_state::idle;
  membership::basic_swim<Endpoint> swim_;
  Placement placement_;
  handoff_manager<Storage, Placement> handoff_;
  tracked_type tracked_;
  replica_type replica_;
  router_type router_;
  outbox_type out_;
  node_stats stats_;

  std::unordered_map<node_id, peer_entry> peers_;
  std::unordered_map<Endpoint, node_id> by_packet_;
  std::unordered_map<Endpoint, node_id> by_stream_;
  std::optional<time_point> settle_at_;
  time_point next_reap_{};
  time_point router_retry_at_{};     // chord: when an idle router next tries to join
  std::size_t router_attempts_ = 0;  // chord: rotates the member it joins through
  bool founding_ = false;
  bool settled_once_ = false;
  std::optional<time_point> join_deadline_;
  std::optional<time_point> leave_deadline_;
  std::optional<time_point> swim_leave_at_;  // SWIM leave sent: report left once gossiped, or at this time
  bool drain_settled_ = false;               // leaving: the placement without us is in force
  bool silenced_ = false;                    // refused (name in use): sends nothing more

  std::uint64_t actor_salt_ = 0;  // makes a fresh store's actor id differ between processes
  request_id next_op_ = 1;
  std::map<request_id, client_op> ops_;
  std::unordered_map<request_id, request_id> by_replica_;  // replica request -> node request
  std::unordered_map<std::uint64_t, request_id> by_lookup_;
};

/// The DHT node core with Chord placement: owners found by finger-table lookups.
template <class Endpoint, storage Storage = memory_storage>
using chord_node_core = basic_node_core<Endpoint, chord_placement, Storage>;

}  // namespace dhtkit

#include "dhtkit/node/detail/node_construction.hpp"
#include "dhtkit/node/detail/node_membership.hpp"
#include "dhtkit/node/detail/node_ops.hpp"
#include "dhtkit/node/detail/node_routing.hpp"
#include "dhtkit/node/detail/placement_view.hpp"

/// @file
/// The handoff manager: moves the data of units (key ranges of a placement)
/// between nodes when placement changes, with bounded memory and rate,
/// resumably, and says which units this node may serve reads for.
///
/// A no-I/O component the node core owns. The node calls on_placement() after
/// each placement change, receive() for node tags 0x0400-0x04FF, tick() at
/// next_wakeup(), note_write() after each write to the store, and drains
/// take_outbox(): its messages (chunks, is_bulk(), on the stream lane) and
/// events (a unit became ready, a unit was dropped, a session ended).
///
///  - Readiness: a unit this node gained waits for its sources (the nodes
///    that left it, else the first live previous holder) and is ready when
///    each completed a stream of it, when its sources are dead, or after
///    handoff_config::not_ready_timeout.
///  - Streams: a node that stores keys of a unit it does not hold streams it to
///    the unit's live holders (offer, chunks in a window under a shared token
///    bucket, go-back-N, resume from the receiver's journal cursor) and drops
///    its keys only after every one of them completed. Writes behind a
///    stream's cursor are re-sent before the final chunk.
///
/// Memory: max_outbound_sessions x window x chunk_bytes in flight; the
/// journal's bounds (handoff_journal.hpp); max_inbound_sessions receivers.
///
/// @code
/// dhtkit::handoff_manager<dhtkit::memory_storage, dhtkit::one_hop> handoff{
///     self, cfg.handoff, cfg.replication.limits, store, journal, placement,
///     {cfg.placement.n, cfg.replication.max_key_size, cfg.replication.max_value_size}};
/// handoff.on_placement(moves, founding, now, [&](dhtkit::node_id id) { return live(id); });
/// if (!handoff.ready(placement.position("user:42"))) { /* answer not_ready */ }
/// auto out = handoff.take_outbox();   // send out.messages; chunks on the stream lane
/// @endcode
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <system_error>
#include <vector>

#include "dhtkit/core/error.hpp"
#include "dhtkit/core/node_id.hpp"
#include "dhtkit/core/time.hpp"
#include "dhtkit/driver/protocol_core.hpp"
#include "dhtkit/node/config.hpp"
#include "dhtkit/node/detail/handoff_messages.hpp"
#include "dhtkit/node/detail/handoff_state.hpp"
#include "dhtkit/node/handoff_journal.hpp"
#include "dhtkit/node/placement.hpp"
#include "dhtkit/replication/storage.hpp"
#include "dhtkit/transport/wire.hpp"

namespace dhtkit {

/// What the handoff needs beyond handoff_config: the placement's n and the
/// replica's key and value bounds, which streamed entries are checked against.
struct handoff_limits {
  std::uint32_t n = 3;                      ///< placement_config::n: a unit's holders
  std::size_t max_key_size = 1024;          ///< replica_config::max_key_size
  std::size_t max_value_size = 256 * 1024;  ///< replica_config::max_value_size
};

/// What a handoff_event reports.
enum class handoff_event_kind {
  unit_ready,      ///< a gained unit may serve reads now
  unit_dropped,    ///< every key of a handed-off unit was removed here
  session_done,    ///< an outbound stream completed (peer: its target)
  session_failed,  ///< an outbound stream was abandoned; retried after retry_backoff
};

/// A change of readiness or ownership, for the node's event callback and stats.
struct handoff_event {
  handoff_event_kind kind = handoff_event_kind::unit_ready;
  key_range range{};
  node_id peer{};  ///< the session's target (session_*), else zero
};

/// What a handoff_manager call produced: messages to send and events.
struct handoff_outbox : message_outbox<node_id> {
  std::vector<handoff_event> events;
  void clear() {
    messages.clear();
    events.clear();
  }
  bool empty() const noexcept { return messages.empty() && events.empty(); }
};

/// Offers and chunks this node refused, by reason.
struct handoff_refusals {
  std::uint64_t range_mismatch = 0;     ///< offered range not inside one unit of ours (placement_mismatch)
  std::uint64_t not_held = 0;           ///< offered unit not held by us (placement_mismatch)
  std::uint64_t too_many_sessions = 0;  ///< max_inbound_sessions reached (queue_full)
  std::uint64_t unknown_session = 0;    ///< chunk of no session, or not from its source
  std::uint64_t malformed_chunk = 0;    ///< bad bounds, too many entries, invalid key or value
  std::uint64_t out_of_range = 0;       ///< an entry whose position is outside the chunk's bounds
  std::uint64_t merge_failed = 0;       ///< the store refused an entry (the session is stopped)
};

/// Counters and gauges of a handoff_manager.
struct handoff_stats : message_stats {
  std::uint64_t sessions_started = 0;    ///< outbound offers made (zero-key notices excluded)
  std::uint64_t sessions_completed = 0;  ///< outbound sessions completed (a `have` reply counts)
  std::uint64_t sessions_failed = 0;     ///< outbound sessions abandoned
  std::uint64_t empty_offers = 0;        ///< zero-key notices sent to joiners of an empty unit
  std::uint64_t offers_refused_by_peer = 0;
  std::uint64_t chunks_sent = 0, keys_sent = 0, bytes_sent = 0;  ///< bytes: encoded messages
  std::uint64_t chunks_received = 0, keys_received = 0, bytes_received = 0;
  std::uint64_t resends = 0;  ///< go-back-N rounds
  std::uint64_t units_dropped = 0, keys_dropped = 0;
  std::uint64_t ready_by_timeout = 0;  ///< units that became ready by not_ready_timeout
  std::uint64_t restarts = 0;          ///< units whose streams restarted (dirty overflow)
  std::uint64_t journal_full = 0;      ///< pending units or dirty positions the journal could not keep
  handoff_refusals refused{};
  std::uint64_t units_pending = 0;    ///< gauge: gained units not ready yet
  std::uint64_t units_outbound = 0;   ///< gauge: units this node streams or drops
  std::uint64_t bytes_in_flight = 0;  ///< gauge: unacknowledged chunk bytes
};

/// Moves units between nodes when placement changes (see handoff.hpp).
template <storage Storage, placement Placement>
class handoff_manager {
 public:
  /// Throws std::invalid_argument for an invalid configuration. The store,
  /// journal and placement are the node's and outlive the manager.
  handoff_manager(node_id self, handoff_config cfg, wire_limits limits, Storage& store,
                  handoff_journal& journal, const Placement& placement, handoff_limits bounds = {});

  /// After each placement change (placement already updated). `founding`: this
  /// node founded the cluster (all ready). is_live: the node's membership view.
  void on_placement(std::span<const range_move> moves, bool founding, time_point now,
                    const std::function<bool(node_id)>& is_live);
  void mark_dead(node_id id);   ///< a source that dies no longer holds a unit back
  void mark_alive(node_id id);  ///< counted as a target and source again
  /// A write landed in the store at pos: remembered when pos is in a unit this node streams.
  void note_write(std::uint64_t pos);
  bool ready(std::uint64_t pos) const;     ///< may this node answer reads for pos
  bool may_drop(std::uint64_t pos) const;  ///< may the replica's hinted handoff delete a key at pos
  /// A handoff message (tags 0x0400-0x04FF); the error says why it was refused.
  std::error_code receive(node_id from, const wire::envelope& env, time_point now);
  void tick(time_point now);
  std::optional<time_point> next_wakeup() const noexcept;
  handoff_outbox take_outbox();
  /// No stored key in a unit this node does not hold, and no session open.
  bool idle() const;
  const handoff_stats& stats() const noexcept { return stats_; }
  /// True for the chunk message: the node sends it on the stream lane.
  static constexpr bool is_bulk(std::uint16_t tag) { return tag == detail::handoff::chunk::wire_type; }
  /// The range of wire tags handoff messages use.
  static constexpr wire::tag_range wire_tags = wire::tags::node;

 private:
  using out_session = detail::handoff::out_session;
  using in_session = detail::handoff::in_session;
  using out_unit = detail::handoff::out_unit;

  bool live(node_id id) const { return id != self_ && dead_.count(id) == 0; }
  template <class F>
  void visit(std::uint64_t begin, std::uint64_t end, F&& f) const;
  bool any_keys(const key_range& r) const;
  const handoff_pending* pending_at(std::uint64_t pos) const;
  void make_ready(std::uint64_t unit_begin, bool by_timeout);
  void source_done(const key_range& range, node_id source);
  template <class Msg>
  bool send(node_id to, const Msg& m);
  void refresh_gauges();
  bool wants_to_send(const out_session& s) const;

  // detail/handoff_sender.hpp, detail/handoff_acks.hpp
  void scan(time_point now);
  std::vector<node_id> targets_of(const out_unit& u) const;
  void start_sessions(time_point now);
  void offer_empty(const key_range& r, const std::vector<node_id>& to);
  void pump(out_session& s, time_point now);
  bool send_range_chunk(out_session& s, time_point now);
  bool send_dirty_chunk(out_session& s, time_point now);
  void send_final(out_session& s, time_point now);
  void on_reply(node_id from, const detail::handoff::reply& m, time_point now);
  void on_ack(node_id from, const detail::handoff::ack& m, time_point now);
  void finish(std::uint64_t id, bool ok, time_point now);
  void check_timeouts(time_point now);
  void drop_some();
  void restart_unit(std::uint64_t unit_begin);

  // detail/handoff_receiver.hpp
  std::error_code on_offer(node_id from, const detail::handoff::offer& m);
  std::error_code on_chunk(node_id from, const detail::handoff::chunk& m);
  std::error_code on_cancel(node_id from, const detail::handoff::cancel& m, time_point now);
  std::error_code refuse(node_id to, std::uint64_t session, errc reason, std::uint64_t& counter);

  node_id self_;
  handoff_config cfg_;
  handoff_limits bounds_;
  Storage& store_;
  handoff_journal& journal_;
  const Placement& placement_;
  detail::handoff::codec codec_;
  handoff_outbox out_;
  handoff_stats stats_;
  std::set<node_id> dead_;
  std::map<std::uint64_t, out_unit> units_;                            // by unit begin
  std::map<std::uint64_t, out_session> sending_;                       // by session id
  std::map<std::pair<node_id, std::uint64_t>, in_session> receiving_;  // by (source, session id)
  detail::handoff::token_bucket bucket_;
  std::optional<time_point> next_scan_;
  time_point last_now_{};
  bool drop_pending_ = false;
};

}  // namespace dhtkit

#include "dhtkit/node/detail/handoff_acks.hpp"
#include "dhtkit/node/detail/handoff_core.hpp"
#include "dhtkit/node/detail/handoff_receiver.hpp"
#include "dhtkit/node/detail/handoff_sender.hpp"

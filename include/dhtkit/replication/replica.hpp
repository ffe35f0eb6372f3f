/// @file
/// The replica core: Dynamo-style N/R/W quorum replication with sloppy quorum,
/// hinted handoff, read repair and Merkle anti-entropy, as a state machine that
/// does no I/O.
///
/// Every node runs one replica. A client calls put / erase / get on any node;
/// the node coordinates the request over the key's preference list (the first
/// N holders its placement names; with dhtkit::replica, basic_replica over a
/// fixed_ring, the first N nodes clockwise on the ring) and reports the
/// outcome in its outbox after W (resp. R) replies, or after the timeout with
/// quorum_not_reached and the number that did reply. The replica is a dhtkit::protocol_core
/// (driver/protocol_core.hpp) addressing its peers by node_id: inputs are calls
/// -- receive(from, bytes, now), tick(now) at next_wakeup(), mark_dead /
/// mark_alive from a failure detector -- and outputs are data in take_outbox():
/// messages to send (already encoded) and completions.
///
/// @code
/// dhtkit::ring<dhtkit::node_id> ring;
/// for (std::uint64_t i = 1; i <= 3; ++i) (void)ring.add(dhtkit::node_id{i});
/// dhtkit::memory_storage store;                        // durable state: survives a restart
/// dhtkit::hint_store hints;                            // durable too
/// dhtkit::replica_config config = dhtkit::replica_config::lan();  // N/R/W = 3/2/2
/// dhtkit::replica<> node(dhtkit::node_id{1}, config, ring, store, hints);
/// dhtkit::time_point now{};
/// auto op = node.put("cart:7", dhtkit::to_bytes("milk"), dhtkit::version_vector{}, now);
/// for (auto& m : node.take_outbox().messages) (void)m;  // a driver sends m.bytes to m.to
/// node.tick(now + dhtkit::seconds(1));                 // no replies: the deadline passes
/// // node.outbox().puts[0]: id == op, error == errc::quorum_not_reached, acks == 1, required == 2
/// @endcode
///
/// Design (see README, "Replication"):
///  - Versions are dotted version vector sets (dotted_version_vector.hpp): a
///    write gets a fresh dot from the durable counter of the node that
///    coordinates it, so concurrent writes become siblings and nothing a client
///    did not see is overwritten. Only one of the key's N true replicas numbers
///    its writes; a put received elsewhere is forwarded to the first healthy
///    one. Clock size is thus at most the number of nodes that were ever among
///    a key's N replicas (N with a stable ring); no pruning is done, because
///    pruning can lose writes.
///  - Forwarding: the true replica answers a forward at once with
///    forward_accept once it has numbered and stored the write, and later with
///    its outcome. A forward not accepted within replica_timeout marks that
///    replica suspected (suspect_period) and goes to the next healthy true
///    replica not yet asked, with the rest of the deadline, so a replica that
///    crashed unnoticed does not fail the put. The put fails with
///    quorum_not_reached, 0 acknowledgements, only if no true replica accepted
///    it by the deadline; accepted but no outcome is timed_out, 1 (the
///    accepting replica's own write). The cost is an ambiguity no timeout can
///    resolve: a replica that stored the write and whose accept was lost or
///    late (a clogged link, a partition) numbers it too, so the client's one
///    write gets two dots -- two siblings with the same value, and a later
///    read or delete that saw only one of them leaves the other. This is
///    Dynamo's choice for a client retry (a retried write is a new write event);
///    the alternative, never passing a forward on, fails every put whose first
///    healthy-looking replica is dead until a failure detector says so. The
///    next write with the read's context merges the duplicates.
///  - Sloppy quorum (default): the write goes to the first N healthy nodes of the
///    ring walk; a fallback standing in for a down owner keeps a hint (key, owner)
///    and hands the key back when the owner is healthy again, then drops its copy
///    (only once the owner has acknowledged a state that covers it: a hinted write
///    that arrived after the offer waits for the next one). A replica that does
///    not answer within replica_timeout is suspected for suspect_period and the
///    request moves on to the next fallback. Hints are bounded in count
///    (hint_store_config) and age (hint_max_age; an expired hint and its copy are
///    dropped). The write is not lost then -- its coordinator is a true replica
///    and keeps it, and anti-entropy brings it to the owner -- but until it does,
///    the write may be on fewer than W nodes (stats().hints_expired counts such
///    hints). With strict_quorum only the true N count, so R + W > N gives
///    read-your-writes.
///  - Read repair: after a get has heard from all it asked (or timed out), the
///    merged version is pushed to the true replicas whose state it would change.
///  - Anti-entropy: every anti_entropy_interval, one exchange with one peer for
///    one of 2^ae_range_bits slices of the ring, over the keys both replicate:
///    Merkle roots first, descending only into differing subtrees (at most
///    ae_max_descend nodes per level), then the entries of at most
///    ae_max_buckets buckets / ae_max_keys keys each way.
///  - Deletes are tombstones. A tombstone-only key is collected once every other
///    true replica was seen (by an equal Merkle subtree) to hold the same state
///    and tombstone_grace has passed since: it is reduced to a "marker" (no
///    versions, only the causal context), which anti-entropy spreads and which
///    absorbs late copies of the deleted versions; the marker is removed after
///    marker_ttl. hint_max_age <= tombstone_grace, so no hint can outlive it.
///  - Placement (placement.hpp): every preference list, membership check and
///    anti-entropy partner comes from the placement, asked at each use, so a
///    placement that changes (the DHT node's) takes effect at the next request
///    or message. While a range moves to a node that does not have it yet,
///    that node is not ready for it: it answers reads with errc::not_ready, and
///    the coordinator asks the placement's previous holders (read_extras) in
///    its place, before any fallback; such a reply never counts toward R
///    (stats().not_ready_replies). Hinted copies are dropped only where the
///    set_may_drop() hook allows.
///  - Volatile state (pending requests, suspicions, anti-entropy sessions,
///    tombstone confirmations) is lost on restart; storage and hints are
///    passed in by reference as the durable part, and a rebuilt replica picks
///    them up.
///  - Everything from the network is untrusted: decoded by the bounded wire
///    codec, then checked against this config (key and value sizes, counts,
///    ranges, levels, ownership); bad input is counted and ignored.
///
/// The code is split along its responsibilities: this header holds the class
/// and its public API; the member functions of each part are in detail/:
/// replica_helpers.hpp, put_path.hpp (puts and forwards), get_path.hpp,
/// message_handlers.hpp (receive and one handler per message),
/// hinted_handoff.hpp, anti_entropy.hpp, tombstone_collection.hpp and
/// schedule.hpp (tick and next_wakeup, which must agree).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <variant>
#include <vector>

#include "dhtkit/clock/dotted_version_vector.hpp"
#include "dhtkit/core/error.hpp"
#include "dhtkit/core/hash.hpp"
#include "dhtkit/core/node_id.hpp"
#include "dhtkit/core/result.hpp"
#include "dhtkit/core/time.hpp"
#include "dhtkit/driver/protocol_core.hpp"
#include "dhtkit/replication/config.hpp"
#include "dhtkit/replication/detail/messages.hpp"
#include "dhtkit/replication/hint_store.hpp"
#include "dhtkit/replication/merkle.hpp"
#include "dhtkit/replication/placement.hpp"
#include "dhtkit/replication/requests.hpp"
#include "dhtkit/replication/storage.hpp"
#include "dhtkit/replication/versioned_value.hpp"
#include "dhtkit/ring/ring.hpp"
#include "dhtkit/transport/wire.hpp"
#include "dhtkit/transport/wire_tags.hpp"

namespace dhtkit {

/// The replica's counters.
///
/// Counters; the message_stats fields (messages_sent, messages_received,
/// rejected, outbox_dropped) are the ones every core keeps.
struct replica_stats : message_stats {
  std::uint64_t puts_ok = 0, puts_failed = 0, gets_ok = 0, gets_failed = 0;
  std::uint64_t forwarded = 0;        ///< puts passed to a true replica
  std::uint64_t reforwarded = 0;      ///< forwards passed on to another true replica after a silence
  std::uint64_t fallback_writes = 0;  ///< replicas sent to a fallback with a hint
  std::uint64_t hints_stored = 0, hints_handed_off = 0, hints_expired = 0;
  std::uint64_t read_repairs = 0;  ///< repair messages sent
  std::uint64_t ae_sessions = 0, ae_keys_sent = 0, ae_keys_repaired = 0;
  std::uint64_t tombstones_collected = 0, markers_removed = 0;
  std::uint64_t encode_failures = 0;
  /// reads a target (this node included) declined because its placement said
  /// it was not ready for the key; each was replaced, none counted toward R
  std::uint64_t not_ready_replies = 0;
};

/// A quorum-replicated key-value node, a protocol core: coordinates gets and
/// puts over the preference lists its placement gives (see replica.hpp for the
/// protocol and an example, placement.hpp for what a placement answers).
template <storage Storage = memory_storage, replica_placement Placement = fixed_ring>
class basic_replica {
 public:
  /// Peers are addressed by their ring identity; a driver maps node_id to a
  /// transport address (sim::core_driver's to_endpoint / from_endpoint).
  using address_type = node_id;
  using outbox_type = replica_outbox;
  static constexpr wire::tag_range wire_tags = wire::tags::replication;

  /// A replica over a fixed ring. Throws std::invalid_argument for an invalid
  /// configuration or a node that is not on the ring.
  basic_replica(node_id self, replica_config config, ring<node_id> ring, Storage& store,
                hint_store& hints) requires std::same_as<Placement, fixed_ring>
      : basic_replica(self, config, fixed_ring(self, std::move(ring)), store, hints) {}

  /// A replica that asks `placement` (kept by value: a view of a placement the
  /// owner changes is fine). Self need not be a member yet. Throws
  /// std::invalid_argument for an invalid configuration.
  basic_replica(node_id self, replica_config config, Placement placement, Storage& store, hint_store& hints)
      : self_(self),
        config_(config),
        placement_(std::move(placement)),
        store_(store),
        hints_(hints),
        codec_(config.limits) {
    config_.validate();
    ae_cursor_ = self_.value;  // nodes start their anti-entropy walks at different places
  }

  node_id self() const noexcept { return self_; }
  const replica_config& config() const noexcept { return config_; }
  /// The fixed ring this replica was built with.
  const ring<node_id>& placement() const noexcept requires std::same_as<Placement, fixed_ring> {
    return placement_.ring();
  }
  /// The placement asked for every request and message.
  Placement& placement_view() noexcept { return placement_; }
  const Placement& placement_view() const noexcept { return placement_; }

  /// Asked before a hinted copy is dropped (handed off or expired, this node
  /// not a true replica): false keeps it, for keys a rebalancing still needs
  /// here. Unset (the default): every such copy is dropped.
  void set_may_drop(std::function<bool(std::string_view key)> may_drop) { may_drop_ = std::move(may_drop); }
  /// What the calls since the last take_outbox() produced (for observation).
  replica_outbox& outbox() noexcept { return out_; }
  /// Moves the outbox out and leaves it empty: what a driver does after each call.
  replica_outbox take_outbox() {
    replica_outbox out = std::move(out_);
    out_.clear();
    return out;
  }
  const replica_stats& stats() const noexcept { return stats_; }
  std::size_t pending() const noexcept { return puts_.size() + gets_.size() + forwards_.size(); }

  /// Failure detector input: a dead node is skipped until marked alive.
  void mark_dead(node_id n) { down_.insert(n); }
  void mark_alive(node_id n) {
    down_.erase(n);
    suspect_.erase(n);
  }
  bool healthy(node_id n, time_point now) const {
    if (n == self_) return true;
    if (down_.contains(n)) return false;
    auto it = suspect_.find(n);
    return it == suspect_.end() || it->second <= now;
  }

  /// The key's true replicas (the placement's first n holders).
  std::vector<node_id> replicas_of(std::string_view key, std::uint32_t n) const {
    return placement_.replicas(placement_.position(key), n);
  }

  request_id put(std::string_view key, bytes value, const version_vector& context, time_point now,
                 request_options options = {}, time_point expires_at = versioned_value::never) {
    return start_put(key, std::move(value), false, context, now, options, expires_at);
  }

  request_id erase(std::string_view key, const version_vector& context, time_point now,
                   request_options options = {}) {
    return start_put(key, {}, true, context, now, options, versioned_value::never);
  }

  request_id get(std::string_view key, time_point now, request_options options = {}) {
    const request_id id = next_id_++;
    std::uint32_t n = options.n.value_or(config_.n), r = options.r.value_or(config_.r);
    const duration timeout = options.timeout.value_or(config_.request_timeout);
    if (key.empty() || key.size() > config_.max_key_size || n < 1 || n > config_.max_n || r < 1 || r > n ||
        !valid_timeout(timeout)) {
      fail_get(id, key, errc::invalid_argument, 0, r);
      return id;
    }
    if (pending() >= config_.max_pending) {
      fail_get(id, key, errc::limit_exceeded, 0, r);
      return id;
    }
    get_op op;
    op.key = std::string(key);
    op.pos = placement_.position(key);
    op.r = r;
    op.n = n;
    op.deadline = now + timeout;
    op.candidates = ring_walk(op.pos, n);
    op.true_replicas = placement_.replicas(op.pos, n);
    add_read_extras(op);
    auto [it, inserted] = gets_.emplace(id, std::move(op));
    get_op& g = it->second;
    start_get(id, g, now);
    check_get(id, g, now);
    return id;
  }

  /// A message from `from`: {} when taken, else what was wrong with it (a
  /// decode error, a sender that is not `from`, is this node or is not a
  /// member of the placement, invalid content); a rejected message is counted in stats().rejected.
  /// The bytes are a whole envelope; the second form takes one a dispatcher
  /// already checked (detail/message_handlers.hpp).
  std::error_code receive(const node_id& from, std::span<const std::byte> bytes, time_point now);
  std::error_code receive(const node_id& from, const wire::envelope& env, time_point now);

  /// Runs what is due at `now`: request and replica timeouts, then hinted
  /// handoff and anti-entropy (with tombstone collection) when their periods
  /// come round (detail/schedule.hpp).
  void tick(time_point now);
  /// The earliest time tick() has work; nullopt when it has none until a call
  /// or a message comes (detail/schedule.hpp says exactly when).
  std::optional<time_point> next_wakeup() const noexcept;

  /// Anti-entropy exchanges this replica has started (a measure of rounds).
  std::uint64_t anti_entropy_rounds() const noexcept { return stats_.ae_sessions; }

 private:
  struct put_target {
    node_id node{};
    node_id hinted_for{};
    time_point sent_at{};
    bool acked = false;
    bool replaced = false;
  };
  struct put_op {
    std::string key;
    versioned_entry entry;
    std::uint32_t n = 0, w = 0, acks = 0;
    bool strict = false;
    time_point deadline{};
    std::vector<node_id> candidates, true_replicas;
    std::vector<put_target> targets;
    std::optional<std::pair<node_id, std::uint64_t>> origin;  // forwarded: reply there
  };
  struct get_target {
    node_id node{};
    time_point sent_at{};
    bool replied = false;
    bool replaced = false;
  };
  struct get_op {
    std::string key;
    std::uint64_t pos = 0;  // the placement's position of key
    std::uint32_t n = 0, r = 0, replies = 0;
    time_point deadline{};
    bool answered = false;
    std::vector<node_id> candidates, true_replicas;  // candidates: true replicas, read extras, fallbacks
    std::vector<get_target> targets;
    versioned_entry merged;
    std::vector<std::pair<node_id, std::optional<versioned_entry>>> responses;
  };
  struct forward_op {
    detail::repl::forward_put message;  // kept to pass on to another true replica
    time_point deadline{};              // ours: the last replica's deadline plus replica_timeout
    time_point sent_at{};
    node_id to{};                // the replica asked last
    std::vector<node_id> tried;  // true replicas asked so far: only their replies count
    bool accepted = false;       // one of them numbered it: wait for its reply
  };
  struct ae_session {
    std::uint64_t id = 0;
    node_id peer{};
    std::uint32_t range = 0;
    std::uint32_t level = 0;
    std::vector<std::uint32_t> sent;  // indices sent at `level`, increasing
    std::vector<std::uint32_t> buckets;
    time_point started{};
  };
  struct tomb_state {
    std::set<node_id> confirmed;
    std::optional<time_point> settled_at;
  };

  static constexpr std::uint64_t handoff_flag = std::uint64_t{1} << 63;

  // ---- helpers (detail/replica_helpers.hpp) ----

  bool valid_timeout(duration t) const noexcept;
  template <class Msg>
  void send(node_id to, const Msg& m);
  std::vector<node_id> ring_walk(std::uint64_t pos, std::uint32_t n) const;
  bool is_true_replica(std::string_view key, node_id node, std::uint32_t n) const;
  std::vector<node_id> initial_targets(const std::vector<node_id>& candidates,
                                       const std::vector<node_id>& true_replicas, std::uint32_t n,
                                       time_point now) const;
  template <class Op>
  std::optional<node_id> next_candidate(const Op& op, time_point now) const;
  void fail_get(request_id id, std::string_view key, std::error_code ec, std::uint32_t replies,
                std::uint32_t r);
  void complete_put(request_id id, std::string_view key, std::error_code ec, std::uint32_t acks,
                    std::uint32_t w);
  void touched(const std::string& key);
  void changed_by_merge(const std::string& key);

  // ---- puts (detail/put_path.hpp) ----

  request_id start_put(std::string_view key, bytes value, bool tombstone, const version_vector& context,
                       time_point now, const request_options& options, time_point expires_at);
  void coordinate(request_id id, std::string_view key, bytes value, bool tombstone,
                  const version_vector& context, time_point expires_at, std::uint32_t n, std::uint32_t w,
                  time_point deadline, time_point now,
                  std::optional<std::pair<node_id, std::uint64_t>> origin);
  void send_replica(request_id id, put_op& p, node_id to, node_id hinted, time_point now);
  void finish_put(request_id id, std::string_view key, std::error_code ec, std::uint32_t acks,
                  std::uint32_t w, const std::optional<std::pair<node_id, std::uint64_t>>& origin);
  bool check_put(request_id id, put_op& p);
  void tick_puts(time_point now);
  void tick_forwards(time_point now);

  // ---- gets (detail/get_path.hpp) ----

  void add_read_extras(get_op& g) const;
  void start_get(request_id id, get_op& g, time_point now);
  void add_get_target(request_id id, get_op& g, node_id t, time_point now);
  void ask_target(request_id id, get_op& g, std::size_t target, time_point now);
  void on_not_ready(request_id id, get_op& g, node_id from, time_point now);
  std::optional<node_id> next_read_candidate(const get_op& g, time_point now) const;
  void on_read_reply(request_id id, get_op& g, node_id from, std::optional<versioned_entry> entry,
                     time_point);
  void check_get(request_id id, get_op& g, time_point now);
  void finish_get(request_id id, get_op& g, time_point now);
  void tick_gets(time_point now);

  // ---- message handlers (detail/message_handlers.hpp) ----

  bool valid_key(const std::string& key) const;
  bool valid_entry(const versioned_entry& e) const;
  void handle(node_id from, const detail::repl::replicate& m, time_point now);
  void reject(node_id from, std::uint64_t request, std::error_code ec);
  void handle(node_id from, const detail::repl::replicate_ack& m, time_point now);
  void handle(node_id from, const detail::repl::read_request& m, time_point);
  void handle(node_id from, const detail::repl::read_reply& m, time_point now);
  void handle(node_id from, const detail::repl::forward_put& m, time_point now);
  void handle(node_id from, const detail::repl::forward_accept& m, time_point);
  void handle(node_id from, const detail::repl::forward_reply& m, time_point);

  // ---- hinted handoff (detail/hinted_handoff.hpp) ----

  void handoff(time_point now);
  void drop_if_orphan(const std::string& key);

  // ---- anti-entropy (detail/anti_entropy.hpp) ----

  std::uint32_t ranges() const noexcept;
  std::uint64_t range_begin(std::uint32_t range) const noexcept;
  std::uint64_t range_end(std::uint32_t range) const noexcept;
  template <class F>
  void shared_keys(std::uint32_t range, node_id peer, F&& f) const;
  static std::uint64_t digest(std::string_view key, const versioned_entry& e);
  merkle_tree build_tree(std::uint32_t range, node_id peer) const;
  void start_anti_entropy(time_point now);
  bool valid_range(std::uint32_t range) const noexcept;
  void handle(node_id from, const detail::repl::ae_hashes& m, time_point);
  void handle(node_id from, const detail::repl::ae_diff& m, time_point now);
  std::vector<detail::repl::key_entry> entries_of(std::uint32_t range, node_id peer,
                                                  const std::vector<std::uint32_t>& buckets,
                                                  const merkle_tree& t) const;
  void confirm_equal(const ae_session& s, const std::vector<std::uint32_t>& differing, const merkle_tree& t,
                     time_point now);
  void merge_entries(node_id from, std::uint32_t range, const std::vector<detail::repl::key_entry>& entries);
  void handle(node_id from, const detail::repl::ae_push& m, time_point);
  void handle(node_id from, const detail::repl::ae_pull& m, time_point);

  // ---- tombstone collection (detail/tombstone_collection.hpp) ----

  void collect_garbage(time_point now);

  // true when hinted handoff and anti-entropy have nothing to do (detail/schedule.hpp)
  bool rounds_idle() const noexcept;

  node_id self_;
  replica_config config_;
  Placement placement_;
  std::function<bool(std::string_view)> may_drop_;
  Storage& store_;
  hint_store& hints_;
  detail::repl::codec codec_;
  replica_outbox out_;
  replica_stats stats_;
  std::error_code rejection_;  // why the message being received was refused (receive() returns it)
  request_id next_id_ = 1;
  std::map<request_id, put_op> puts_;
  std::map<request_id, get_op> gets_;
  std::map<request_id, forward_op> forwards_;
  std::set<node_id> down_;
  std::map<node_id, time_point> suspect_;
  struct handoff_offer {
    std::string key;
    node_id owner{};
    versioned_entry sent;  // what the owner will have acknowledged
  };
  std::map<std::uint64_t, handoff_offer> handoffs_;
  std::uint64_t next_handoff_id_ = 1;
  time_point next_handoff_{};
  time_point next_ae_{};
  std::uint64_t ae_cursor_ = 0;
  std::uint64_t next_session_ = 1;
  std::optional<ae_session> session_;
  std::map<std::string, tomb_state> tombs_;
  std::map<std::string, time_point> markers_;
  // A marker may be stored but not in markers_: after a restart, or after a
  // merge (only a merge can leave an entry empty). rounds_idle() scans the
  // store only then, not on every next_wakeup().
  mutable bool marker_scan_due_ = true;
  std::set<std::pair<node_id, std::uint64_t>> seen_forwards_;  // bounded by max_pending, oldest dropped
  std::deque<std::pair<node_id, std::uint64_t>> seen_order_;
};

/// The replica over a fixed ring: basic_replica with fixed_ring.
template <storage Storage = memory_storage>
using replica = basic_replica<Storage, fixed_ring>;

static_assert(protocol_core<basic_replica<memory_storage, fixed_ring>>);
static_assert(verdict_sink<basic_replica<memory_storage, fixed_ring>>);

}  // namespace dhtkit

#include "dhtkit/replication/detail/anti_entropy.hpp"
#include "dhtkit/replication/detail/get_path.hpp"
#include "dhtkit/replication/detail/hinted_handoff.hpp"
#include "dhtkit/replication/detail/message_handlers.hpp"
#include "dhtkit/replication/detail/put_path.hpp"
#include "dhtkit/replication/detail/replica_helpers.hpp"
#include "dhtkit/replication/detail/schedule.hpp"
#include "dhtkit/replication/detail/tombstone_collection.hpp"

/// @file
/// The Chord router: which node owns a key, in O(log N) messages, knowing only
/// O(log N) other nodes.
///
/// Chord (Stoica et al., SIGCOMM 2001 / ToN 2003) places nodes and keys on one
/// circle of 2^64 identifiers (m = 64: node_id and the key hash are 64-bit);
/// the owner of key k is successor(k), the first node clockwise at or after k,
/// so a node owns (predecessor, self]. Each node keeps a successor list of
/// length r, a predecessor and a finger table of m entries (finger i =
/// successor(self + 2^i)); fingers only make lookups short, correctness rests
/// on the successor lists.
///
/// Maintenance follows Pamela Zave's corrected protocol ("How to make Chord
/// correct", arXiv 1502.06461) rather than the published one, which violates
/// its own invariants:
///   - stabilize asks the first live successor s for its predecessor p and
///     successor list; the list becomes s + s.list minus its last entry;
///     p replaces s only if p lies between self and s AND answers a request
///     of its own (is live), in which case the list is rebuilt from p's;
///   - rectify replaces notify: a node adopts a new predecessor if it lies
///     between the old one and itself, or if the old one is dead (no
///     predecessor, or check_predecessor / mark_dead found it dead);
///   - a joining node only learns its successor (and that node's list); it
///     becomes a member when its predecessor adopts it through stabilize;
///   - a successor that does not answer within the request timeout is dropped
///     from the list and stabilize retries with the next one at once.
///
/// Zave proves the protocol correct for rings that start with at least r+1
/// members. Smaller rings are handled by clamping: a successor list never
/// holds the node itself or a duplicate, so in a ring of N <= r nodes it holds
/// the N-1 others (r is effectively min(r, N-1)) and the ring survives as long
/// as one node does; a single node is a one-node ring (create()) whose
/// successor is itself, which is how every ring starts. Tests grow rings from
/// one node and check the invariants after every round.
///
/// r: successor_list_length, or when that is 0, 2*ceil(log2 expected_nodes)
/// clamped to [2, max_successor_list_length] (default 16): N is not known to a
/// node, so the operator states the size the ring is built for. With r = 2 log2 N
/// the ring survives every node failing with probability 1/2 (the paper's
/// argument); r = 16 covers that up to N = 256 and makes losing all r successors
/// at p = 0.5 a 1.5e-5 event beyond it.
///
/// Lookups are iterative: the initiator asks each hop for its closest
/// predecessors of the key and chooses the next hop itself. Why: the
/// initiator owns the one per-hop timeout and the fallback (on a timeout it
/// tries the next-closest node it has been told about, never going back to a
/// node it already tried), hop counts are exact, a dead hop costs one
/// timeout rather than a lost forwarded request, and no node keeps state for
/// other nodes' lookups. Every hop is strictly closer to the key than the one
/// that named it, so there are no routing loops, and max_hops bounds the rest.
/// With verify_owner (the default) the initiator finally asks the claimed
/// owner for its state: again after a lost message, until the owner has missed
/// failure_threshold requests; along the successor list it was given once the
/// owner is dead, so right after a failure a lookup still finds the live
/// owner; and back to the owner's predecessor when that lies at or after the
/// key (the list that named the owner had skipped a node not yet adopted, or
/// one this node wrongly took for dead), so lost messages do not make a
/// lookup name the owner's successor.
///
/// Like every dhtkit core it does no I/O and has the shape of
/// dhtkit::protocol_core (driver/protocol_core.hpp): the driver calls receive()
/// with each message and tick() at next_wakeup() (or periodically), and sends
/// what it finds in the outbox (take_outbox()); sim::core_driver and
/// asio_driver do that. Messages travel in the wire envelope (type tags
/// wire::tags::chord, 0x0100-0x01FF). Address is whatever the transport addresses
/// (sim::endpoint in the simulator); it must be cereal-serializable.
///
/// @code
/// using router = dhtkit::chord::basic_router<dhtkit::sim::endpoint>;
/// dhtkit::time_point now{};
/// router a(dhtkit::node_id{100}, dhtkit::sim::endpoint{1}, {}, /*seed=*/1);
/// router b(dhtkit::node_id{200}, dhtkit::sim::endpoint{2}, {}, /*seed=*/2);
/// a.create(now);                                       // a one-node ring
/// std::error_code ec = b.join(dhtkit::sim::endpoint{1}, now);
/// // A driver: deliver every outgoing message (here, instantly) and tick.
/// auto pump = [&] {
///   for (int round = 0; round < 200; ++round) {
///     now += dhtkit::millis(50);
///     for (router* r : {&a, &b}) r->tick(now);
///     for (router* r : {&a, &b}) {
///       auto messages = std::move(r->outbox().messages);
///       r->outbox().messages.clear();
///       for (auto& m : messages) (m.to.id == 1 ? a : b).receive(r->address(), m.bytes, now);
///     }
///   }
/// };
/// pump();
/// auto id = a.lookup(/*key=*/150, now);                // owner: the first node at or after 150
/// pump();
/// // a.outbox().lookups has {id, key 150, owner b, hops, ...}; b.successor() is a
/// // and a.outbox().ranges says a lost (100, 200] to b.
/// @endcode
#pragma once

#include <algorithm>
#include <array>
#include <cassert>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <system_error>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <variant>
#include <vector>

#include "dhtkit/chord/config.hpp"
#include "dhtkit/chord/detail/protocol.hpp"
#include "dhtkit/core/error.hpp"
#include "dhtkit/core/node_id.hpp"
#include "dhtkit/core/random.hpp"
#include "dhtkit/core/result.hpp"
#include "dhtkit/core/time.hpp"
#include "dhtkit/driver/protocol_core.hpp"
#include "dhtkit/transport/wire.hpp"

namespace dhtkit::chord {

/// What happened to this node's membership of the ring.
enum class status_kind : std::uint8_t {
  joined,       ///< join() found the successor; the node is in the ring (as a member once adopted)
  join_failed,  ///< join() gave up; `error` says why
  left,         ///< leave() completed
};

/// A join or leave completed, or failed (`error`).
struct status_event {
  status_kind kind = status_kind::joined;
  std::error_code error{};
};

/// The node's range (predecessor, self] changed: gained means it now owns
/// (begin, end], lost that it no longer does. begin == end is the whole circle.
/// This is the data-handoff hook: on `lost` the application sends those keys to
/// the new owner, on `gained` it expects them.
struct range_event {
  bool gained = false;
  std::uint64_t begin = 0;  ///< exclusive
  std::uint64_t end = 0;    ///< inclusive
};

/// Names a lookup from lookup() to its lookup_result.
using lookup_id = std::uint64_t;

/// The answer to lookup(): the owner of `key`, or why there is none.
template <class Address>
struct lookup_result {
  lookup_id id = 0;
  std::uint64_t key = 0;
  std::error_code error{};     ///< lookup_failed, timed_out, shut_down; empty on success
  peer<Address> owner{};       ///< valid when !error
  std::uint32_t hops = 0;      ///< nodes that answered a routing request
  std::uint32_t timeouts = 0;  ///< hops (and owner checks) that timed out
};

/// What a call produced: messages to send (message_outbox::messages) and the
/// router's events. The driver drains it with take_outbox().
template <class Address>
struct router_outbox : message_outbox<Address> {
  std::vector<lookup_result<Address>> lookups;
  std::vector<range_event> ranges;
  std::vector<status_event> status;

  void clear() noexcept {
    this->messages.clear();
    lookups.clear();
    ranges.clear();
    status.clear();
  }
  bool empty() const noexcept {
    return this->messages.empty() && lookups.empty() && ranges.empty() && status.empty();
  }
};

/// The router's counters.
///
/// messages_sent, messages_received, rejected (undecodable or semantically
/// invalid messages) and outbox_dropped come from message_stats.
struct router_stats : message_stats {
  std::uint64_t stale_replies = 0;     ///< replies to requests that timed out or never existed
  std::uint64_t requests_refused = 0;  ///< not sent: max_pending_requests reached
  std::uint64_t timeouts = 0;
  std::uint64_t stabilizations = 0;
  std::uint64_t lookups_started = 0;  ///< client lookups
  std::uint64_t lookups_succeeded = 0;
  std::uint64_t lookups_failed = 0;
  std::uint64_t finger_lookups = 0;
};

/// Where a node is in its life: before create() or join(), joining, in the ring, or gone.
enum class router_state : std::uint8_t { idle, joining, joined, left };

namespace detail {
struct router_access;
}

/// The Chord router, a protocol core: finds the node that owns a key (see
/// router.hpp for the protocol and an example).
template <class Address>
class basic_router {
 public:
  using address_type = Address;
  using peer_type = peer<Address>;
  using outbox_type = router_outbox<Address>;
  /// The wire tags of the router's messages (detail/protocol.hpp).
  static constexpr wire::tag_range wire_tags = wire::tags::chord;

  /// Throws std::invalid_argument for a bad configuration (router_config::validate).
  basic_router(node_id id, Address address, router_config config, std::uint64_t seed)
      : self_{id, address},
        config_((config.validate(), std::move(config))),
        r_(config_.r()),
        rng_(seed),
        codec_(limits_for(config_)) {}

  // ---- lifecycle -----------------------------------------------------------

  /// Starts a new ring with this node as its only member.
  void create(time_point now);

  /// Joins the ring `bootstrap` belongs to: looks up this node's successor
  /// through it. Completion is a status_event (joined or join_failed).
  std::error_code join(const Address& bootstrap, time_point now);

  /// Voluntary leave: hands the predecessor and successor list to both
  /// neighbours, reports the whole range as lost and stops answering.
  std::error_code leave(time_point now);

  // ---- lookups -------------------------------------------------------------

  /// Starts a lookup of the owner of `key` (a key hash); the answer is a
  /// lookup_result with the returned id in the outbox's lookups.
  result<lookup_id> lookup(std::uint64_t key, time_point now);

  // ---- inputs --------------------------------------------------------------

  /// One received message; {} when taken (acted on or not: a stale reply is
  /// taken and ignored). A message the router rejects changes nothing, is
  /// counted in stats().rejected, and the error says why: the wire error for
  /// undecodable bytes, duplicate_node for a sender with this node's own id,
  /// invalid_argument for invalid content. While the node is idle or has left,
  /// every message is refused with not_joined (and not counted).
  std::error_code receive(const Address& from, std::span<const std::byte> bytes, time_point now);
  /// The same, for an envelope a dispatcher already checked (wire::decode_envelope).
  std::error_code receive(const Address& from, const wire::envelope& env, time_point now);

  /// Runs the timers and request deadlines due at or before `now`.
  void tick(time_point now);

  /// When tick() next has work (a timer or a request deadline); nullopt when
  /// there is none (an idle or departed node with no request pending).
  std::optional<time_point> next_wakeup() const noexcept;

  /// Moves out what the calls so far produced, leaving the outbox empty.
  outbox_type take_outbox();

  /// A failure detector's verdicts. A dead peer is dropped from the successor
  /// list, fingers and predecessor, and not used until heard from again (or
  /// mark_alive).
  void mark_dead(node_id id);
  void mark_alive(node_id id);

  // ---- observation -----------------------------------------------------------

  /// The outbox as it stands, for observation (take_outbox() drains it).
  outbox_type& outbox() noexcept { return out_; }
  const peer_type& self() const noexcept { return self_; }
  node_id id() const noexcept { return self_.id; }
  const Address& address() const noexcept { return self_.address; }
  router_state state() const noexcept { return state_; }
  bool joined() const noexcept { return state_ == router_state::joined; }
  const router_config& config() const noexcept { return config_; }
  std::size_t successor_list_length() const noexcept { return r_; }
  /// The successor list, nearest first; empty when the node is alone (it is its own successor).
  const std::vector<peer_type>& successors() const noexcept { return succ_; }
  peer_type successor() const { return succ_.empty() ? self_ : succ_.front(); }
  const std::optional<peer_type>& predecessor() const noexcept { return pred_; }
  /// finger i = successor(id + 2^i) as last found; empty when unknown or self.
  const std::array<std::optional<peer_type>, identifier_bits>& fingers() const noexcept { return fingers_; }
  bool is_dead(node_id id) const { return dead_.contains(id); }
  const router_stats& stats() const noexcept { return stats_; }
  std::size_t pending_lookups() const noexcept { return lookups_.size(); }
  std::size_t pending_requests() const noexcept { return requests_.size(); }

 private:
  friend struct detail::router_access;

  using codec_type =
      wire::codec<detail::state_request, detail::state_reply<Address>, detail::rectify<Address>,
                  detail::find_request, detail::find_reply<Address>, detail::leave_notice<Address>>;

  enum class purpose : std::uint8_t { client, finger, join };
  enum class req_kind : std::uint8_t {
    stabilize_successor,
    stabilize_candidate,
    check_predecessor,
    route,
    verify
  };

  struct pending_request {
    req_kind kind;
    node_id target;  // node_id{} with check_target false for a bootstrap of unknown id
    bool check_target;
    Address address;
    std::uint64_t context;  // lookup id for route/verify
    time_point deadline;
  };

  struct lookup_state {
    lookup_id id = 0;
    std::uint64_t key = 0;
    purpose why = purpose::client;
    std::size_t finger = 0;
    std::optional<Address> bootstrap;
    std::vector<peer_type> candidates;  // sorted by distance to key, closest first
    std::vector<node_id> tried;
    std::vector<peer_type> owners;  // verify phase: the successor list that names the owner
    // The successor list of the closest node so far whose list spans the
    // key: if the key's predecessor is dead, its first live entry at or after
    // the key is the owner (what that node itself will say once it stabilizes).
    std::optional<peer_type> span_owner;
    std::vector<peer_type> span;
    std::size_t owner_index = 0;
    // owners[redirect] is a predecessor a verified owner named as the key's
    // real owner (see on_verify_reply); asked even if this node took it for dead.
    std::optional<std::size_t> redirect;
    std::size_t redirects = 0;
    // Redirect targets, once per time they did not answer: the owner that
    // named one may name it again until its own check_predecessor notices,
    // so one is asked at most failure_threshold times, like any peer.
    std::vector<node_id> silent;
    bool verifying = false;
    std::uint32_t hops = 0;
    std::uint32_t timeouts = 0;
  };

  static wire_limits limits_for(const router_config& c) {
    wire_limits w;
    w.max_message_size = 64 * 1024;  // a list of 256 peers with IPv6 addresses fits easily
    w.max_string_size = 1024;        // no strings in Chord messages; addresses are small
    w.max_container_size = std::max<std::size_t>(c.max_successor_list_length + 1, c.lookup_candidates);
    return w;
  }

  // ---- sending -----------------------------------------------------------------
  template <class Msg>
  void send(const Address& to, const Msg& msg);
  std::optional<std::uint64_t> request(node_id target, const Address& address, req_kind kind,
                                       std::uint64_t context, time_point now, bool check_target = true);
  duration jittered(duration period);
  void start_timers(time_point now);

  // ---- liveness ------------------------------------------------------------------
  void suspect(node_id id);
  void forget_dead(node_id id);
  void missed(node_id id);
  void recover_successor();

  // ---- ranges --------------------------------------------------------------------
  void set_predecessor(const peer_type& p);
  void announce_range(std::uint64_t start);
  std::optional<range_event> range_change(bool had, std::uint64_t from, bool has, std::uint64_t to) const;
  void change_range(bool known, std::uint64_t start);

  // ---- successor list ------------------------------------------------------------
  bool valid_list(node_id sender, const std::vector<peer_type>& list, std::size_t max) const;
  std::vector<peer_type> reconcile(const peer_type& head, const std::vector<peer_type>& list) const;
  void check_invariants() const;

  // ---- stabilize / rectify / check_predecessor -------------------------------------
  void start_stabilize(time_point now);
  void finish_stabilize();
  void on_stabilize_reply(const peer_type& s, const detail::state_reply<Address>& m, time_point now);
  void on_candidate_reply(const peer_type& p, const detail::state_reply<Address>& m, time_point now);
  void on_rectify(const peer_type& n);
  void on_leave(const node_id sender, const detail::leave_notice<Address>& m);

  // ---- fingers ----------------------------------------------------------------------
  static std::uint64_t finger_start(std::uint64_t self, std::size_t i);
  void fix_fingers(time_point now);
  void on_finger_found(std::size_t i, const peer_type& owner);

  // ---- lookups ----------------------------------------------------------------------
  result<lookup_id> new_lookup(std::uint64_t key, purpose why);
  std::vector<peer_type> closest_preceding(std::uint64_t key, std::size_t count) const;
  void begin_lookup(lookup_state& s, time_point now);
  void route_next(lookup_state& s, time_point now);
  void start_verify(lookup_state& s, const std::vector<peer_type>& owners, time_point now);
  void verify_next(lookup_state& s, time_point now);
  std::error_code on_route_reply(lookup_state& s, const peer_type& from, const detail::find_reply<Address>& m,
                                 time_point now);
  void add_candidate(lookup_state& s, const peer_type& p);
  bool may_redirect(const lookup_state& s, const peer_type& p, const peer_type& o) const;
  void redirect_to(lookup_state& s, const peer_type& p);
  void on_verify_reply(lookup_state& s, const peer_type& o, const detail::state_reply<Address>& m,
                       time_point now);
  void complete(lookup_state& s, const peer_type& owner, std::error_code ec);
  void fail_all_lookups(std::error_code ec);

  // ---- timeouts ------------------------------------------------------------------------
  void expire_requests(time_point now);
  void on_timeout(const pending_request& req, time_point now);
  std::optional<pending_request> take_request(std::uint64_t id, node_id sender, const Address& from,
                                              std::error_code& rejected);

  // ---- message handlers -------------------------------------------------------------------
  std::error_code handle(const Address& from, node_id sender, const detail::state_request& m, time_point);
  std::error_code handle(const Address& from, node_id sender, const detail::state_reply<Address>& m,
                         time_point now);
  std::error_code handle(const Address&, node_id sender, const detail::rectify<Address>& m, time_point);
  std::error_code handle(const Address& from, node_id sender, const detail::find_request& m, time_point);
  std::error_code handle(const Address& from, node_id sender, const detail::find_reply<Address>& m,
                         time_point now);
  std::error_code handle(const Address&, node_id sender, const detail::leave_notice<Address>& m, time_point);

  peer_type self_;
  router_config config_;
  std::size_t r_;
  random_engine rng_;
  codec_type codec_;
  router_state state_ = router_state::idle;
  std::vector<peer_type> succ_;
  std::optional<peer_type> pred_;
  std::array<std::optional<peer_type>, identifier_bits> fingers_{};
  std::size_t next_finger_ = 0;
  bool finger_lookup_pending_ = false;
  bool stabilizing_ = false;
  std::size_t walk_steps_ = 0;
  bool pending_check_pred_ = false;
  bool range_known_ = false;
  std::uint64_t range_start_ = 0;
  // The range as of the first undrained range event (out_.ranges[ranges_first_]),
  // and the outbox size after our last event: another size means a drain.
  bool base_known_ = false;
  std::uint64_t base_start_ = 0;
  std::size_t ranges_first_ = 0;
  std::size_t ranges_mark_ = 0;
  std::unordered_set<node_id> dead_;
  std::unordered_map<node_id, std::size_t> misses_;
  std::deque<node_id> dead_order_;
  std::deque<time_point> dead_since_;
  std::map<std::uint64_t, pending_request> requests_;
  std::unordered_map<lookup_id, lookup_state> lookups_;
  std::uint64_t next_request_ = 1;
  lookup_id next_lookup_ = 1;
  time_point next_stabilize_{};
  time_point next_fix_{};
  time_point next_check_pred_{};
  time_point last_deadline_{};
  time_point last_now_{};
  outbox_type out_;
  router_stats stats_;
};

namespace detail {

// Tests and benchmarks only, never the protocol: installs a converged state
// computed from outside (an oracle that knows the whole ring), so that the
// largest simulated rings can be measured without first running the
// protocol to convergence. Not part of the API.
struct router_access {
  template <class Address>
  static void install(basic_router<Address>& r, const std::optional<peer<Address>>& predecessor,
                      const std::vector<peer<Address>>& successors,
                      const std::array<std::optional<peer<Address>>, identifier_bits>& fingers,
                      time_point now) {
    r.state_ = router_state::joined;
    r.pred_ = predecessor;
    r.succ_ = successors;
    if (r.succ_.size() > r.r_) r.succ_.resize(r.r_);
    r.fingers_ = fingers;
    r.last_now_ = std::max(r.last_now_, now);
    r.start_timers(now);
    r.range_known_ = true;
    r.range_start_ = predecessor ? predecessor->id.value : r.self_.id.value;
    r.check_invariants();
  }
};

}  // namespace detail
}  // namespace dhtkit::chord

// The member definitions, by responsibility.
#include "dhtkit/chord/detail/fingers.hpp"
#include "dhtkit/chord/detail/handlers.hpp"
#include "dhtkit/chord/detail/inputs.hpp"
#include "dhtkit/chord/detail/lifecycle.hpp"
#include "dhtkit/chord/detail/liveness.hpp"
#include "dhtkit/chord/detail/lookup.hpp"
#include "dhtkit/chord/detail/ranges.hpp"
#include "dhtkit/chord/detail/sending.hpp"
#include "dhtkit/chord/detail/stabilize.hpp"
#include "dhtkit/chord/detail/successor_list.hpp"
#include "dhtkit/chord/detail/timeouts.hpp"

namespace dhtkit::chord {
// The driver contract, checked for an address type this header already knows.
static_assert(protocol_core<basic_router<std::uint64_t>>);
static_assert(verdict_sink<basic_router<std::uint64_t>>);
}  // namespace dhtkit::chord

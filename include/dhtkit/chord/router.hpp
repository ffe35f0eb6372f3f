// The Chord router: which node owns a key, in O(log N) messages, knowing only
// O(log N) other nodes.
//
// Chord (Stoica et al., SIGCOMM 2001 / ToN 2003) places nodes and keys on one
// circle of 2^64 identifiers (m = 64: node_id and the key hash are 64-bit);
// the owner of key k is successor(k), the first node clockwise at or after k,
// so a node owns (predecessor, self]. Each node keeps a successor list of
// length r, a predecessor and a finger table of m entries (finger i =
// successor(self + 2^i)); fingers only make lookups short, correctness rests
// on the successor lists.
//
// Maintenance follows Pamela Zave's corrected protocol ("How to make Chord
// correct", arXiv 1502.06461) rather than the published one, which violates
// its own invariants:
//   - stabilize asks the first live successor s for its predecessor p and
//     successor list; the list becomes s + s.list minus its last entry;
//     p replaces s only if p lies between self and s AND answers a request
//     of its own (is live), in which case the list is rebuilt from p's;
//   - rectify replaces notify: a node adopts a new predecessor if it lies
//     between the old one and itself, or if the old one is dead (no
//     predecessor, or check_predecessor / mark_dead found it dead);
//   - a joining node only learns its successor (and that node's list); it
//     becomes a member when its predecessor adopts it through stabilize;
//   - a successor that does not answer within the request timeout is dropped
//     from the list and stabilize retries with the next one at once.
// Zave proves the protocol correct for rings that start with at least r+1
// members. Smaller rings are handled by clamping: a successor list never
// holds the node itself or a duplicate, so in a ring of N <= r nodes it holds
// the N-1 others (r is effectively min(r, N-1)) and the ring survives as long
// as one node does; a single node is a one-node ring (create()) whose
// successor is itself, which is how every ring starts. Tests grow rings from
// one node and check the invariants after every round.
//
// r: successor_list_length, or when that is 0, 2*ceil(log2 expected_nodes)
// clamped to [2, max_successor_list_length] (default 16): N is not known to a
// node, so the operator states the size the ring is built for. With r = 2 log2 N
// the ring survives every node failing with probability 1/2 (the paper's
// argument); r = 16 covers that up to N = 256 and makes losing all r successors
// at p = 0.5 a 1.5e-5 event beyond it.
//
// Lookups are iterative: the initiator asks each hop for its closest
// predecessors of the key and chooses the next hop itself. Why: the
// initiator owns the one per-hop timeout and the fallback (on a timeout it
// tries the next-closest node it has been told about, never going back to a
// node it already tried), hop counts are exact, a dead hop costs one
// timeout rather than a lost forwarded request, and no node keeps state for
// other nodes' lookups. Every hop is strictly closer to the key than the one
// that named it, so there are no routing loops, and max_hops bounds the rest.
// With verify_owner (the default) the initiator finally asks the claimed
// owner for its state: again after a lost message, until the owner has missed
// failure_threshold requests; along the successor list it was given once the
// owner is dead, so right after a failure a lookup still finds the live
// owner; and back to the owner's predecessor when that lies at or after the
// key (the list that named the owner had skipped a node not yet adopted, or
// one this node wrongly took for dead), so lost messages do not make a
// lookup name the owner's successor.
//
// Like every dhtkit core it does no I/O: the driver calls receive() with each
// message and tick() at next_wakeup() (or periodically), and sends what it
// finds in outbox().messages. Messages travel in the wire envelope
// (type tags 0x0100-0x01FF). Address is whatever the transport addresses
// (sim::endpoint in the simulator); it must be cereal-serializable.
//
//   using router = dhtkit::chord::basic_router<dhtkit::sim::endpoint>;
//   dhtkit::time_point now{};
//   router a(dhtkit::node_id{100}, dhtkit::sim::endpoint{1}, {}, /*seed=*/1);
//   router b(dhtkit::node_id{200}, dhtkit::sim::endpoint{2}, {}, /*seed=*/2);
//   a.create(now);                                       // a one-node ring
//   std::error_code ec = b.join(dhtkit::sim::endpoint{1}, now);
//   // A driver: deliver every outgoing message (here, instantly) and tick.
//   auto pump = [&] {
//     for (int round = 0; round < 200; ++round) {
//       now += dhtkit::millis(50);
//       for (router* r : {&a, &b}) r->tick(now);
//       for (router* r : {&a, &b}) {
//         auto messages = std::move(r->outbox().messages);
//         r->outbox().messages.clear();
//         for (auto& m : messages) (m.to.id == 1 ? a : b).receive(r->address(), m.bytes, now);
//       }
//     }
//   };
//   pump();
//   auto id = a.lookup(/*key=*/150, now);                // owner: the first node at or after 150
//   pump();
//   // a.outbox().lookups has {id, key 150, owner b, hops, ...}; b.successor() is a
//   // and a.outbox().ranges says a lost (100, 200] to b.
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

#include "dhtkit/chord/detail/protocol.hpp"
#include "dhtkit/core/error.hpp"
#include "dhtkit/core/node_id.hpp"
#include "dhtkit/core/result.hpp"
#include "dhtkit/core/time.hpp"
#include "dhtkit/core/random.hpp"
#include "dhtkit/transport/wire.hpp"

namespace dhtkit::chord {

// Bits of the identifier space: node ids and key hashes are 64-bit.
inline constexpr std::size_t identifier_bits = 64;

struct router_config {
  // r, the successor list length; 0 derives it from expected_nodes.
  std::size_t successor_list_length = 0;
  // The ring size r is derived from when successor_list_length is 0:
  // r = 2*ceil(log2 expected_nodes), clamped to [2, max_successor_list_length].
  std::size_t expected_nodes = 1024;
  // Upper bound on r, and the longest list accepted from a peer (a longer
  // one is rejected as hostile). 16 = 2 log2 N for N = 256.
  std::size_t max_successor_list_length = 16;
  // How often stabilize runs (the paper's churn experiments use ~30 s; a LAN
  // deployment wants faster repair). Each period is jittered by +-25 % so
  // nodes do not stabilize in lockstep.
  duration stabilize_period = seconds(1);
  // How often fix_fingers refreshes fingers_per_fix fingers that need a lookup
  // (fingers inside (self, successor] are set without one).
  duration fix_fingers_period = seconds(1);
  std::size_t fingers_per_fix = 1;
  // How often the predecessor is pinged; failure_threshold missed answers
  // in a row make it dead.
  duration check_predecessor_period = seconds(1);
  // Per-request (per-hop) timeout: a peer that has not answered by then is
  // treated as dead by this node until it is heard from again.
  duration request_timeout = millis(500);
  // Consecutive unanswered requests after which a peer is taken for dead
  // (dropped from the successor list, fingers and predecessor). 2 rather
  // than 1 so that one lost message does not cut a live link; stabilize
  // retries its successor at once after a miss, so a dead successor still
  // goes in 2 request timeouts. (A lookup skips an unanswering hop at once.)
  std::size_t failure_threshold = 2;
  // Routing steps per lookup (each strictly closer to the key); 64 is far
  // above the ~log2 N a converged ring needs.
  std::size_t max_hops = 64;
  // Timed-out hops a lookup survives before it fails with lookup_failed.
  // 16: right after half the ring crashes a lookup meets several dead hops,
  // and a dead owner costs failure_threshold timeouts, and as many again for
  // the redirects back to it while its successor still names it. A lookup
  // that fails this way takes about 8.5 s at the default request_timeout.
  std::size_t max_timeouts_per_lookup = 16;
  // Lookups in flight at once (client, finger and join lookups together);
  // beyond, lookup() fails with limit_exceeded.
  std::size_t max_pending_lookups = 1024;
  // Requests awaiting an answer at once; beyond, new ones are not sent.
  std::size_t max_pending_requests = 4096;
  // Nodes a routing reply names (closest first): the fallbacks when the
  // closest is dead.
  std::size_t lookup_candidates = 4;
  // Candidate next hops a lookup remembers.
  std::size_t max_lookup_candidates = 32;
  // Ask the claimed owner for its state before reporting it (see header).
  bool verify_owner = true;
  // Peers remembered as dead (oldest forgotten first), and for how long: a
  // peer wrongly taken for dead (lost messages) that never talks to this node
  // again is usable again after dead_peer_ttl.
  std::size_t max_dead_peers = 1024;
  duration dead_peer_ttl = seconds(30);
  // Messages kept in the outbox when the driver does not drain it; beyond,
  // new ones are dropped and counted.
  std::size_t max_outbox_messages = 16384;
  // Range events kept in the outbox when the driver does not drain them;
  // beyond, the undrained ones are merged into their net change (the same
  // final range, fewer steps). 64 is far more than one call produces.
  std::size_t max_pending_range_events = 64;

  // Effective r.
  std::size_t r() const noexcept {
    if (successor_list_length != 0) return successor_list_length;
    std::size_t bits = 0;
    while (bits < 63 && (std::size_t{1} << bits) < expected_nodes) ++bits;
    return std::clamp<std::size_t>(2 * bits, 2, std::max<std::size_t>(2, max_successor_list_length));
  }
};

enum class status_kind : std::uint8_t {
  joined,       // join() found the successor; the node is in the ring (as a member once adopted)
  join_failed,  // join() gave up; `error` says why
  left,         // leave() completed
};

struct status_event {
  status_kind kind = status_kind::joined;
  std::error_code error{};
};

// The node's range (predecessor, self] changed: gained means it now owns
// (begin, end], lost that it no longer does. begin == end is the whole circle.
// This is the data-handoff hook: on `lost` the application sends those keys to
// the new owner, on `gained` it expects them.
struct range_event {
  bool gained = false;
  std::uint64_t begin = 0;  // exclusive
  std::uint64_t end = 0;    // inclusive
};

using lookup_id = std::uint64_t;

template <class Address>
struct lookup_result {
  lookup_id id = 0;
  std::uint64_t key = 0;
  std::error_code error{};     // lookup_failed, timed_out, shut_down; empty on success
  peer<Address> owner{};       // valid when !error
  std::uint32_t hops = 0;      // nodes that answered a routing request
  std::uint32_t timeouts = 0;  // hops (and owner checks) that timed out
};

template <class Address>
struct outgoing_message {
  Address to{};
  std::vector<std::byte> bytes;
};

// What a call produced; the driver drains it (clear() or move the vectors out).
template <class Address>
struct router_outbox {
  std::vector<outgoing_message<Address>> messages;
  std::vector<lookup_result<Address>> lookups;
  std::vector<range_event> ranges;
  std::vector<status_event> status;

  void clear() noexcept {
    messages.clear();
    lookups.clear();
    ranges.clear();
    status.clear();
  }
  bool empty() const noexcept {
    return messages.empty() && lookups.empty() && ranges.empty() && status.empty();
  }
};

struct router_stats {
  std::uint64_t messages_sent = 0;
  std::uint64_t messages_received = 0;
  std::uint64_t rejected = 0;          // undecodable or semantically invalid messages
  std::uint64_t stale_replies = 0;     // replies to requests that timed out or never existed
  std::uint64_t outbox_dropped = 0;    // messages dropped because the outbox was full
  std::uint64_t requests_refused = 0;  // not sent: max_pending_requests reached
  std::uint64_t timeouts = 0;
  std::uint64_t stabilizations = 0;
  std::uint64_t lookups_started = 0;  // client lookups
  std::uint64_t lookups_succeeded = 0;
  std::uint64_t lookups_failed = 0;
  std::uint64_t finger_lookups = 0;
};

enum class router_state : std::uint8_t { idle, joining, joined, left };

namespace detail {
struct router_access;
}

template <class Address>
class basic_router {
 public:
  using address_type = Address;
  using peer_type = peer<Address>;
  using outbox_type = router_outbox<Address>;

  // Throws std::invalid_argument for a bad configuration.
  basic_router(node_id id, Address address, router_config config, std::uint64_t seed)
      : self_{id, address},
        config_(validate(config)),
        r_(config_.r()),
        rng_(seed),
        codec_(limits_for(config_)) {}

  // ---- lifecycle -----------------------------------------------------------

  // Starts a new ring with this node as its only member.
  void create(time_point now) {
    if (state_ != router_state::idle) return;
    state_ = router_state::joined;
    succ_.clear();
    pred_.reset();
    start_timers(now);
    announce_range(self_.id.value);
  }

  // Joins the ring `bootstrap` belongs to: looks up this node's successor
  // through it. Completion is a status_event (joined or join_failed).
  std::error_code join(const Address& bootstrap, time_point now) {
    if (state_ != router_state::idle) return errc::invalid_argument;
    state_ = router_state::joining;
    last_now_ = std::max(last_now_, now);
    auto l = new_lookup(self_.id.value, purpose::join);
    if (!l) {
      state_ = router_state::idle;
      return l.error();
    }
    lookup_state& s = lookups_.at(*l);
    s.bootstrap = bootstrap;
    route_next(s, now);
    return {};
  }

  // Voluntary leave: hands the predecessor and successor list to both
  // neighbours, reports the whole range as lost and stops answering.
  std::error_code leave(time_point now) {
    (void)now;
    if (state_ != router_state::joined) return errc::not_joined;
    detail::leave_notice<Address> notice{self_, pred_.has_value(), pred_.value_or(peer_type{}), succ_};
    if (!succ_.empty()) send(succ_.front().address, notice);
    if (pred_ && (succ_.empty() || pred_->id != succ_.front().id)) send(pred_->address, notice);
    change_range(false, 0);
    fail_all_lookups(errc::shut_down);
    requests_.clear();
    succ_.clear();
    pred_.reset();
    fingers_ = {};
    state_ = router_state::left;
    out_.status.push_back(status_event{status_kind::left, {}});
    return {};
  }

  // ---- lookups -------------------------------------------------------------

  // Starts a lookup of the owner of `key` (a key hash); the answer is a
  // lookup_result with the returned id in outbox().lookups.
  result<lookup_id> lookup(std::uint64_t key, time_point now) {
    if (state_ != router_state::joined) return errc::not_joined;
    auto l = new_lookup(key, purpose::client);
    if (!l) return l.error();
    ++stats_.lookups_started;
    begin_lookup(lookups_.at(*l), now);
    return *l;
  }

  // ---- inputs --------------------------------------------------------------

  void receive(const Address& from, std::span<const std::byte> bytes, time_point now) {
    if (state_ == router_state::idle || state_ == router_state::left) return;
    last_now_ = std::max(last_now_, now);
    ++stats_.messages_received;
    auto decoded = codec_.decode(bytes);
    if (!decoded) {
      ++stats_.rejected;
      return;
    }
    const node_id sender = decoded->sender;
    if (sender == self_.id) {  // our own id from elsewhere: a loop or an impostor
      ++stats_.rejected;
      return;
    }
    std::visit([&](auto& m) { handle(from, sender, m, now); }, decoded->message);
    check_invariants();
  }

  void tick(time_point now) {
    expire_requests(now);
    while (!dead_order_.empty() && dead_since_.front() + config_.dead_peer_ttl <= now) {
      dead_.erase(dead_order_.front());
      dead_order_.pop_front();
      dead_since_.pop_front();
    }
    if (state_ != router_state::joined) return;
    if (now >= next_stabilize_) {
      next_stabilize_ = now + jittered(config_.stabilize_period);
      if (!stabilizing_) start_stabilize(now);
    }
    if (now >= next_fix_) {
      next_fix_ = now + config_.fix_fingers_period;
      fix_fingers(now);
    }
    if (now >= next_check_pred_) {
      next_check_pred_ = now + config_.check_predecessor_period;
      if (pred_ && !pending_check_pred_) {
        if (auto req = request(pred_->id, pred_->address, req_kind::check_predecessor, 0, now))
          send(pred_->address, detail::state_request{*req});
      }
    }
    check_invariants();
  }

  // When tick() next has work (a timer or a request deadline).
  time_point next_wakeup() const noexcept {
    time_point t = time_point::max();
    if (state_ == router_state::joined) t = std::min({next_stabilize_, next_fix_, next_check_pred_});
    if (!requests_.empty()) t = std::min(t, requests_.begin()->second.deadline);
    return t;
  }

  // A failure detector's verdicts. A dead peer is dropped from the successor
  // list, fingers and predecessor, and not used until heard from again (or
  // mark_alive).
  void mark_dead(node_id id) {
    if (id == self_.id) return;
    suspect(id);
    check_invariants();
  }
  void mark_alive(node_id id) { forget_dead(id); }

  // ---- observation -----------------------------------------------------------

  outbox_type& outbox() noexcept { return out_; }
  const peer_type& self() const noexcept { return self_; }
  node_id id() const noexcept { return self_.id; }
  const Address& address() const noexcept { return self_.address; }
  router_state state() const noexcept { return state_; }
  bool joined() const noexcept { return state_ == router_state::joined; }
  const router_config& config() const noexcept { return config_; }
  std::size_t successor_list_length() const noexcept { return r_; }
  // The successor list, nearest first; empty when the node is alone (it is its own successor).
  const std::vector<peer_type>& successors() const noexcept { return succ_; }
  peer_type successor() const { return succ_.empty() ? self_ : succ_.front(); }
  const std::optional<peer_type>& predecessor() const noexcept { return pred_; }
  // finger i = successor(id + 2^i) as last found; empty when unknown or self.
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

  static router_config validate(const router_config& c) {
    auto fail = [](const std::string& why) {
      throw std::invalid_argument("dhtkit::chord::router_config: " + why);
    };
    if (c.max_successor_list_length < 1 || c.max_successor_list_length > 256)
      fail("max_successor_list_length must be in [1, 256]");
    if (c.successor_list_length > c.max_successor_list_length)
      fail("successor_list_length must be <= max_successor_list_length");
    if (c.successor_list_length == 0 && c.max_successor_list_length < 2)
      fail("a derived successor_list_length needs max_successor_list_length >= 2");
    if (c.expected_nodes < 1) fail("expected_nodes must be >= 1");
    // Durations are added to the current time: a day is far beyond any
    // sensible value and keeps now + duration from overflowing.
    const auto in_range = [](duration d) { return d > duration::zero() && d <= seconds(86400); };
    if (!in_range(c.stabilize_period)) fail("stabilize_period must be in (0, 24 h]");
    if (!in_range(c.fix_fingers_period)) fail("fix_fingers_period must be in (0, 24 h]");
    if (!in_range(c.check_predecessor_period)) fail("check_predecessor_period must be in (0, 24 h]");
    if (!in_range(c.request_timeout)) fail("request_timeout must be in (0, 24 h]");
    if (c.fingers_per_fix < 1 || c.fingers_per_fix > identifier_bits)
      fail("fingers_per_fix must be in [1, 64]");
    if (c.failure_threshold < 1 || c.failure_threshold > 100) fail("failure_threshold must be in [1, 100]");
    if (c.max_hops < 1 || c.max_hops > 1024) fail("max_hops must be in [1, 1024]");
    if (c.max_timeouts_per_lookup > 1024) fail("max_timeouts_per_lookup must be <= 1024");
    if (c.max_pending_lookups < 1) fail("max_pending_lookups must be >= 1");
    if (c.max_pending_requests < 4) fail("max_pending_requests must be >= 4");
    if (c.lookup_candidates < 1 || c.lookup_candidates > 64) fail("lookup_candidates must be in [1, 64]");
    if (c.max_lookup_candidates < c.lookup_candidates || c.max_lookup_candidates > 1024)
      fail("max_lookup_candidates must be in [lookup_candidates, 1024]");
    if (c.max_dead_peers < 1) fail("max_dead_peers must be >= 1");
    if (!in_range(c.dead_peer_ttl)) fail("dead_peer_ttl must be in (0, 24 h]");
    if (c.max_outbox_messages < 16) fail("max_outbox_messages must be >= 16");
    if (c.max_pending_range_events < 1) fail("max_pending_range_events must be >= 1");
    return c;
  }

  static wire_limits limits_for(const router_config& c) {
    wire_limits w;
    w.max_message_size = 64 * 1024;  // a list of 256 peers with IPv6 addresses fits easily
    w.max_string_size = 1024;        // no strings in Chord messages; addresses are small
    w.max_container_size = std::max<std::size_t>(c.max_successor_list_length + 1, c.lookup_candidates);
    return w;
  }

  // ---- sending -----------------------------------------------------------------

  template <class Msg>
  void send(const Address& to, const Msg& msg) {
    if (out_.messages.size() >= config_.max_outbox_messages) {
      ++stats_.outbox_dropped;
      return;
    }
    auto bytes = codec_.encode(msg, self_.id);
    if (!bytes) return;  // cannot happen for lists within the configured bounds
    out_.messages.push_back(outgoing_message<Address>{to, std::move(*bytes)});
    ++stats_.messages_sent;
  }

  std::optional<std::uint64_t> request(node_id target, const Address& address, req_kind kind,
                                       std::uint64_t context, time_point now, bool check_target = true) {
    if (requests_.size() >= config_.max_pending_requests) {
      ++stats_.requests_refused;
      return std::nullopt;
    }
    const std::uint64_t id = next_request_++;
    // Deadlines are now + one fixed timeout and now never decreases, so the
    // map's id order is deadline order: expiry scans only what expired.
    const time_point deadline = std::max(now + config_.request_timeout, last_deadline_);
    last_deadline_ = deadline;
    requests_.emplace(id, pending_request{kind, target, check_target, address, context, deadline});
    if (kind == req_kind::check_predecessor) pending_check_pred_ = true;
    return id;
  }

  duration jittered(duration period) {
    const auto span = static_cast<std::uint64_t>(period.count() / 2);
    return period - duration(static_cast<std::int64_t>(span / 2)) +
           duration(static_cast<std::int64_t>(rng_.below(span + 1)));
  }

  void start_timers(time_point now) {
    // Spread the first round over a period so simultaneous starts do not sync.
    next_stabilize_ = now + duration(static_cast<std::int64_t>(rng_.below(
                                static_cast<std::uint64_t>(config_.stabilize_period.count()) + 1)));
    next_fix_ = now + duration(static_cast<std::int64_t>(
                          rng_.below(static_cast<std::uint64_t>(config_.fix_fingers_period.count()) + 1)));
    next_check_pred_ = now + config_.check_predecessor_period;
  }

  // ---- liveness ------------------------------------------------------------------

  void suspect(node_id id) {
    if (!dead_.contains(id)) {
      if (dead_order_.size() >= config_.max_dead_peers) {
        dead_.erase(dead_order_.front());
        dead_order_.pop_front();
        dead_since_.pop_front();
      }
      dead_.insert(id);
      dead_order_.push_back(id);
      dead_since_.push_back(last_now_);
    }
    std::erase_if(succ_, [&](const peer_type& p) { return p.id == id; });
    for (auto& f : fingers_)
      if (f && f->id == id) f.reset();
    if (pred_ && pred_->id == id) pred_.reset();
    if (state_ == router_state::joined && succ_.empty()) recover_successor();
  }

  void forget_dead(node_id id) {
    misses_.erase(id);
    if (dead_.erase(id) == 0) return;
    for (std::size_t i = 0; i < dead_order_.size(); ++i) {
      if (dead_order_[i] == id) {
        dead_order_.erase(dead_order_.begin() + static_cast<std::ptrdiff_t>(i));
        dead_since_.erase(dead_since_.begin() + static_cast<std::ptrdiff_t>(i));
        break;
      }
    }
  }

  // One more unanswered request to `id`: dead at failure_threshold in a row.
  void missed(node_id id) {
    if (dead_.contains(id)) return;
    if (misses_.size() >= config_.max_dead_peers) misses_.clear();
    if (++misses_[id] >= config_.failure_threshold) {
      misses_.erase(id);
      suspect(id);
    }
  }

  // The successor list ran empty: fall back to the nearest live finger, else
  // the predecessor; with neither the node is alone and owns the circle.
  void recover_successor() {
    std::optional<peer_type> best;
    auto consider = [&](const std::optional<peer_type>& p) {
      if (!p || p->id == self_.id || dead_.contains(p->id)) return;
      if (!best ||
          detail::distance(self_.id.value, p->id.value) < detail::distance(self_.id.value, best->id.value))
        best = p;
    };
    for (const auto& f : fingers_) consider(f);
    consider(pred_);
    if (best) {
      succ_.push_back(*best);
    } else if (!pred_) {
      announce_range(self_.id.value);
    }
  }

  // ---- ranges --------------------------------------------------------------------

  void set_predecessor(const peer_type& p) {
    pred_ = p;
    announce_range(p.id.value);
  }

  void announce_range(std::uint64_t start) { change_range(true, start); }

  // The range event taking this node from owning (from, self] (or nothing,
  // !had) to owning (to, self] (or nothing, !has); none if nothing changed.
  std::optional<range_event> range_change(bool had, std::uint64_t from, bool has, std::uint64_t to) const {
    const std::uint64_t self = self_.id.value;
    if (!had && !has) return std::nullopt;
    if (!had) return range_event{true, to, self};
    if (!has) return range_event{false, from, self};
    if (from == to) return std::nullopt;
    // The new start lies inside the old range: the part before it is lost.
    if (detail::in_open(to, from, self)) return range_event{false, from, to};
    return range_event{true, to, from};
  }

  // Records the new range and reports the change. Events the driver has not
  // drained are bounded: past max_pending_range_events they are replaced by
  // their net change since the last drain (same final ownership), so a
  // driver that never drains ranges, or a peer that moves the predecessor
  // one step at a time, cannot grow the outbox without bound.
  void change_range(bool known, std::uint64_t start) {
    if (out_.ranges.size() != ranges_mark_) {  // drained (or edited) since our last event
      ranges_first_ = out_.ranges.size();
      base_known_ = range_known_;
      base_start_ = range_start_;
    }
    if (auto e = range_change(range_known_, range_start_, known, start)) out_.ranges.push_back(*e);
    range_known_ = known;
    range_start_ = start;
    if (out_.ranges.size() - ranges_first_ > config_.max_pending_range_events) {
      out_.ranges.resize(ranges_first_);
      if (auto e = range_change(base_known_, base_start_, range_known_, range_start_))
        out_.ranges.push_back(*e);
    }
    ranges_mark_ = out_.ranges.size();
  }

  // ---- successor list ------------------------------------------------------------

  // A list from `sender` is acceptable if it is short enough, never names
  // the sender, and runs strictly clockwise from it (which rules out
  // duplicates and loops). It may name this node: that is where it wraps.
  bool valid_list(node_id sender, const std::vector<peer_type>& list, std::size_t max) const {
    if (list.size() > max) return false;
    std::uint64_t last = 0;
    for (const auto& p : list) {
      const std::uint64_t d = detail::distance(sender.value, p.id.value);
      if (d == 0 || d <= last) return false;
      last = d;
    }
    return true;
  }

  // Zave's reconcile: head + list minus its last entry, cut where the list
  // wraps around to this node, without peers known dead, at most r long.
  std::vector<peer_type> reconcile(const peer_type& head, const std::vector<peer_type>& list) const {
    std::vector<peer_type> out;
    out.reserve(r_);
    out.push_back(head);
    std::uint64_t last = detail::distance(self_.id.value, head.id.value);
    for (const auto& p : list) {
      if (out.size() >= r_) break;
      // Stop where the list passes this node (named or not): beyond is behind us.
      const std::uint64_t d = detail::distance(self_.id.value, p.id.value);
      if (d == 0 || d <= last) break;
      if (dead_.contains(p.id)) continue;
      out.push_back(p);
      last = d;
    }
    return out;
  }

  void check_invariants() const {
#ifndef NDEBUG
    assert(succ_.size() <= r_);
    std::uint64_t last = 0;
    for (const auto& p : succ_) {
      const std::uint64_t d = detail::distance(self_.id.value, p.id.value);
      assert(d != 0 && d > last && "successor list must run strictly clockwise and never name this node");
      last = d;
    }
    assert(!pred_ || pred_->id != self_.id);
    assert(requests_.size() <= config_.max_pending_requests);
    assert(lookups_.size() <= config_.max_pending_lookups);
#endif
  }

  // ---- stabilize / rectify / check_predecessor -------------------------------------

  void start_stabilize(time_point now) {
    ++stats_.stabilizations;
    if (!succ_.empty()) {
      const peer_type s = succ_.front();
      if (auto req = request(s.id, s.address, req_kind::stabilize_successor, 0, now)) {
        stabilizing_ = true;
        send(s.address, detail::state_request{*req});
      }
    } else if (pred_) {
      // Alone with a predecessor: a one-node ring someone joined. It is the
      // candidate successor (it lies between self and self), adopted if live.
      if (auto req = request(pred_->id, pred_->address, req_kind::stabilize_candidate, 0, now)) {
        stabilizing_ = true;
        send(pred_->address, detail::state_request{*req});
      }
    }
  }

  void finish_stabilize() {
    stabilizing_ = false;
    walk_steps_ = 0;
    if (!succ_.empty()) send(succ_.front().address, detail::rectify<Address>{self_});
  }

  void on_stabilize_reply(const peer_type& s, const detail::state_reply<Address>& m, time_point now) {
    if (succ_.empty() || succ_.front().id != s.id) {  // the list changed meanwhile
      stabilizing_ = false;
      return;
    }
    succ_ = reconcile(s, m.successors);
    if (m.has_predecessor && m.predecessor.id != self_.id && m.predecessor.id != s.id &&
        !dead_.contains(m.predecessor.id) &&
        detail::in_open(m.predecessor.id.value, self_.id.value, s.id.value)) {
      // Zave: adopt it only if it is live, i.e. once it answers.
      const peer_type p = m.predecessor;
      if (auto req = request(p.id, p.address, req_kind::stabilize_candidate, 0, now)) {
        send(p.address, detail::state_request{*req});
        return;
      }
    }
    finish_stabilize();
  }

  void on_candidate_reply(const peer_type& p, const detail::state_reply<Address>& m, time_point now) {
    const bool still_between =
        succ_.empty() || detail::in_open(p.id.value, self_.id.value, succ_.front().id.value);
    if (still_between) {
      succ_ = reconcile(p, m.successors);
      // If p's own predecessor is between too, this node is an appendage far
      // from its place (a join answered by a ring still forming): go on
      // walking back now, each step adopted only once it answers, instead of
      // one step per stabilization round (bounded by max_hops per round).
      if (m.has_predecessor && m.predecessor.id != self_.id && m.predecessor.id != p.id &&
          !dead_.contains(m.predecessor.id) &&
          detail::in_open(m.predecessor.id.value, self_.id.value, p.id.value) &&
          ++walk_steps_ < config_.max_hops) {
        const peer_type q = m.predecessor;
        if (auto req = request(q.id, q.address, req_kind::stabilize_candidate, 0, now)) {
          send(q.address, detail::state_request{*req});
          return;
        }
      }
    }
    finish_stabilize();
  }

  void on_rectify(const peer_type& n) {
    if (state_ != router_state::joined) return;
    if (!pred_ || dead_.contains(pred_->id) || detail::in_open(n.id.value, pred_->id.value, self_.id.value)) {
      if (!pred_ || pred_->id != n.id) set_predecessor(n);
    }
  }

  void on_leave(const node_id sender, const detail::leave_notice<Address>& m) {
    const bool was_successor = !succ_.empty() && succ_.front().id == sender;
    const bool was_predecessor = pred_ && pred_->id == sender;
    // Remember it as gone first so nothing below re-adopts it.
    suspect(sender);
    if (was_successor) {
      std::vector<peer_type> list;
      for (const auto& p : m.successors) {
        if (list.size() >= r_ || p.id == self_.id) break;
        if (!dead_.contains(p.id)) list.push_back(p);
      }
      if (!list.empty()) {
        const peer_type head = list.front();
        list.erase(list.begin());
        succ_ = reconcile(head, list);
      }
      if (!succ_.empty()) send(succ_.front().address, detail::rectify<Address>{self_});
    }
    if (was_predecessor && m.has_predecessor && m.predecessor.id != self_.id &&
        !dead_.contains(m.predecessor.id))
      set_predecessor(m.predecessor);
    if (succ_.empty() && !pred_) announce_range(self_.id.value);
  }

  // ---- fingers ----------------------------------------------------------------------

  static std::uint64_t finger_start(std::uint64_t self, std::size_t i) {
    return self + (std::uint64_t{1} << i);
  }

  void fix_fingers(time_point now) {
    if (succ_.empty()) {
      fingers_ = {};
      return;
    }
    const std::uint64_t self = self_.id.value;
    std::size_t launched = 0;
    for (std::size_t step = 0; step < identifier_bits && launched < config_.fingers_per_fix; ++step) {
      const std::size_t i = next_finger_;
      next_finger_ = (next_finger_ + 1) % identifier_bits;
      const std::uint64_t start = finger_start(self, i);
      if (detail::in_half_open(start, self, succ_.front().id.value)) {
        fingers_[i] = succ_.front();
        continue;
      }
      if (finger_lookup_pending_) break;
      auto l = new_lookup(start, purpose::finger);
      if (!l) break;
      lookup_state& s = lookups_.at(*l);
      s.finger = i;
      finger_lookup_pending_ = true;
      ++stats_.finger_lookups;
      ++launched;
      begin_lookup(s, now);
    }
  }

  void on_finger_found(std::size_t i, const peer_type& owner) {
    const std::uint64_t self = self_.id.value;
    if (owner.id == self_.id) {
      fingers_[i].reset();
      return;
    }
    fingers_[i] = owner;
    // Later fingers whose start is also at or before the owner are the owner too.
    const std::uint64_t start_i = finger_start(self, i);
    const std::uint64_t reach = detail::distance(start_i, owner.id.value);
    for (std::size_t j = i + 1; j < identifier_bits; ++j) {
      if (detail::distance(start_i, finger_start(self, j)) > reach) break;
      fingers_[j] = owner;
      if (next_finger_ == j) next_finger_ = (j + 1) % identifier_bits;
    }
  }

  // ---- lookups ----------------------------------------------------------------------

  result<lookup_id> new_lookup(std::uint64_t key, purpose why) {
    if (lookups_.size() >= config_.max_pending_lookups) return errc::limit_exceeded;
    const lookup_id id = next_lookup_++;
    lookup_state& s = lookups_[id];
    s.id = id;
    s.key = key;
    s.why = why;
    return id;
  }

  // The nodes this one knows in (self, key), closest to the key first.
  std::vector<peer_type> closest_preceding(std::uint64_t key, std::size_t count) const {
    std::vector<peer_type> found;
    auto consider = [&](const peer_type& p) {
      if (p.id == self_.id || dead_.contains(p.id)) return;
      if (!detail::in_open(p.id.value, self_.id.value, key)) return;
      for (const auto& q : found)
        if (q.id == p.id) return;
      found.push_back(p);
    };
    for (const auto& f : fingers_)
      if (f) consider(*f);
    for (const auto& p : succ_) consider(p);
    std::sort(found.begin(), found.end(), [key](const peer_type& a, const peer_type& b) {
      return detail::distance(a.id.value, key) < detail::distance(b.id.value, key);
    });
    if (found.size() > count) found.resize(count);
    return found;
  }

  void begin_lookup(lookup_state& s, time_point now) {
    const std::uint64_t self = self_.id.value;
    if (succ_.empty()) {  // alone: this node owns the circle
      complete(s, self_, {});
      return;
    }
    if (pred_ && detail::in_half_open(s.key, pred_->id.value, self)) {
      complete(s, self_, {});
      return;
    }
    if (detail::in_half_open(s.key, self, succ_.front().id.value)) {
      start_verify(s, succ_, now);
      return;
    }
    if (detail::in_half_open(s.key, self, succ_.back().id.value)) {
      s.span_owner = self_;
      s.span = succ_;
    }
    s.candidates = closest_preceding(s.key, config_.max_lookup_candidates);
    route_next(s, now);
  }

  void route_next(lookup_state& s, time_point now) {
    if (s.bootstrap) {
      const Address a = *s.bootstrap;
      s.bootstrap.reset();
      if (auto req = request(node_id{}, a, req_kind::route, s.id, now, /*check_target=*/false)) {
        send(a, detail::find_request{*req, s.key});
        return;
      }
      complete(s, self_, errc::lookup_failed);
      return;
    }
    if (s.hops >= config_.max_hops) {
      complete(s, self_, errc::lookup_failed);
      return;
    }
    while (!s.candidates.empty()) {
      const peer_type c = s.candidates.front();
      s.candidates.erase(s.candidates.begin());
      if (dead_.contains(c.id) || std::find(s.tried.begin(), s.tried.end(), c.id) != s.tried.end()) continue;
      if (s.span_owner && !detail::in_open(c.id.value, s.span_owner->id.value, s.key)) break;
      s.tried.push_back(c.id);
      if (auto req = request(c.id, c.address, req_kind::route, s.id, now)) {
        send(c.address, detail::find_request{*req, s.key});
        return;
      }
      break;
    }
    if (s.span_owner) {
      // Every node left between the span's owner and the key is dead.
      std::vector<peer_type> owners;
      const std::uint64_t from = s.span_owner->id.value;
      for (const auto& p : s.span)
        if (detail::distance(from, p.id.value) >= detail::distance(from, s.key)) owners.push_back(p);
      s.span_owner.reset();
      if (!owners.empty()) {
        start_verify(s, owners, now);
        return;
      }
    }
    // A join whose bootstrap never answered: say so.
    const bool no_answer = s.why == purpose::join && s.hops == 0 && s.timeouts != 0;
    complete(s, self_, no_answer ? std::error_code(errc::timed_out) : std::error_code(errc::lookup_failed));
  }

  void start_verify(lookup_state& s, const std::vector<peer_type>& owners, time_point now) {
    s.verifying = true;
    s.owners = owners;
    s.owner_index = 0;
    s.redirect.reset();
    if (!config_.verify_owner && s.why != purpose::join) {
      complete(s, owners.front(), {});
      return;
    }
    verify_next(s, now);
  }

  void verify_next(lookup_state& s, time_point now) {
    while (s.owner_index < s.owners.size()) {
      const peer_type o = s.owners[s.owner_index];
      if (o.id == self_.id) {
        complete(s, self_,
                 s.why == purpose::join ? std::error_code(errc::duplicate_node) : std::error_code{});
        return;
      }
      if (dead_.contains(o.id) && s.redirect != s.owner_index) {
        ++s.owner_index;
        continue;
      }
      if (auto req = request(o.id, o.address, req_kind::verify, s.id, now)) {
        send(o.address, detail::state_request{*req});
        return;
      }
      break;
    }
    complete(s, self_, errc::lookup_failed);
  }

  void on_route_reply(lookup_state& s, const peer_type& from, const detail::find_reply<Address>& m,
                      time_point now) {
    ++s.hops;
    if (m.done) {
      // The sender's successor list (or itself when alone): runs clockwise
      // from it, and the sender says "done" only when the key lies in
      // (sender, nodes[0]]; a list that does not cover the key is broken.
      std::vector<peer_type> owners;
      if (m.nodes.size() == 1 && m.nodes.front().id == from.id) {
        owners.push_back(from);
      } else if (!m.nodes.empty() && valid_list(from.id, m.nodes, config_.max_successor_list_length) &&
                 detail::in_half_open(s.key, from.id.value, m.nodes.front().id.value)) {
        owners = m.nodes;
      } else {
        ++stats_.rejected;
        route_next(s, now);
        return;
      }
      start_verify(s, owners, now);
      return;
    }
    if (m.nodes.size() > config_.lookup_candidates ||
        !valid_list(from.id, m.successors, config_.max_successor_list_length)) {
      ++stats_.rejected;
    } else {
      if (!m.successors.empty() && detail::in_half_open(s.key, from.id.value, m.successors.back().id.value) &&
          (!s.span_owner || detail::in_open(from.id.value, s.span_owner->id.value, s.key))) {
        s.span_owner = from;
        s.span = m.successors;
      }
      // Only nodes strictly closer to the key than the sender: progress, no loops.
      for (const auto& p : m.nodes) {
        if (p.id == self_.id || !detail::in_open(p.id.value, from.id.value, s.key)) continue;
        add_candidate(s, p);
      }
    }
    route_next(s, now);
  }

  void add_candidate(lookup_state& s, const peer_type& p) {
    for (const auto& q : s.candidates)
      if (q.id == p.id) return;
    const auto closer = [&](const peer_type& a, const peer_type& b) {
      return detail::distance(a.id.value, s.key) < detail::distance(b.id.value, s.key);
    };
    s.candidates.insert(std::upper_bound(s.candidates.begin(), s.candidates.end(), p, closer), p);
    if (s.candidates.size() > config_.max_lookup_candidates) s.candidates.pop_back();
  }

  // Whether a lookup verifying owner o should ask o's predecessor p instead:
  // p lies in [key, o), has not been silent failure_threshold times in this
  // lookup, and the redirects stay bounded.
  bool may_redirect(const lookup_state& s, const peer_type& p, const peer_type& o) const {
    return p.id != o.id && s.redirects < config_.max_successor_list_length &&
           static_cast<std::size_t>(std::count(s.silent.begin(), s.silent.end(), p.id)) <
               config_.failure_threshold &&
           detail::distance(s.key, p.id.value) < detail::distance(s.key, o.id.value);
  }

  void redirect_to(lookup_state& s, const peer_type& p) {
    ++s.redirects;
    s.owners.insert(s.owners.begin() + static_cast<std::ptrdiff_t>(s.owner_index), p);
    s.redirect = s.owner_index;
  }

  void on_verify_reply(lookup_state& s, const peer_type& o, const detail::state_reply<Address>& m,
                       time_point now) {
    // The owner candidate answered, but is it the owner? The list that named
    // it may have skipped its predecessor: the namer had not adopted a new
    // node yet, or this node took the predecessor for dead after lost
    // messages. If o's predecessor p lies in [key, o), p owns the key as far
    // as o knows; ask p (even if taken for dead here), and keep o as the
    // answer once p has not replied failure_threshold times. Each redirect
    // moves strictly closer to the key or to a silent p, and their number is
    // bounded besides.
    if (s.why != purpose::join && m.has_predecessor && may_redirect(s, m.predecessor, o)) {
      redirect_to(s, m.predecessor);
      verify_next(s, now);
      return;
    }
    if (s.why == purpose::join) {
      if (!valid_list(o.id, m.successors, config_.max_successor_list_length)) {
        complete(s, self_, errc::lookup_failed);
        return;
      }
      succ_ = reconcile(o, m.successors);
    }
    complete(s, o, {});
  }

  void complete(lookup_state& s, const peer_type& owner, std::error_code ec) {
    const lookup_state done = std::move(s);
    lookups_.erase(done.id);
    switch (done.why) {
      case purpose::client: {
        lookup_result<Address> r;
        r.id = done.id;
        r.key = done.key;
        r.error = ec;
        if (!ec) r.owner = owner;
        r.hops = done.hops;
        r.timeouts = done.timeouts;
        out_.lookups.push_back(std::move(r));
        if (ec) {
          ++stats_.lookups_failed;
        } else {
          ++stats_.lookups_succeeded;
        }
        break;
      }
      case purpose::finger:
        finger_lookup_pending_ = false;
        if (!ec && state_ == router_state::joined) on_finger_found(done.finger, owner);
        break;
      case purpose::join:
        if (state_ != router_state::joining) break;
        if (ec) {
          state_ = router_state::idle;
          succ_.clear();
          out_.status.push_back(status_event{status_kind::join_failed, ec});
        } else {
          state_ = router_state::joined;
          if (succ_.empty() || succ_.front().id != owner.id) succ_ = {owner};
          out_.status.push_back(status_event{status_kind::joined, {}});
          start_timers(last_now_);
          send(owner.address, detail::rectify<Address>{self_});
        }
        break;
    }
  }

  void fail_all_lookups(std::error_code ec) {
    std::vector<lookup_id> ids;
    for (const auto& [id, s] : lookups_) ids.push_back(id);
    std::sort(ids.begin(), ids.end());
    for (lookup_id id : ids) {
      auto it = lookups_.find(id);
      if (it != lookups_.end()) complete(it->second, self_, ec);
    }
  }

  // ---- timeouts ------------------------------------------------------------------------

  void expire_requests(time_point now) {
    last_now_ = std::max(last_now_, now);
    while (!requests_.empty() && requests_.begin()->second.deadline <= now) {
      const pending_request req = requests_.begin()->second;
      requests_.erase(requests_.begin());
      on_timeout(req, now);
    }
  }

  void on_timeout(const pending_request& req, time_point now) {
    ++stats_.timeouts;
    if (req.check_target) missed(req.target);
    switch (req.kind) {
      case req_kind::stabilize_successor:
        // Retry at once with the next successor (suspect() dropped this one).
        stabilizing_ = false;
        if (state_ == router_state::joined) start_stabilize(now);
        break;
      case req_kind::stabilize_candidate:
        finish_stabilize();
        break;
      case req_kind::check_predecessor:
        pending_check_pred_ = false;
        break;
      case req_kind::route:
      case req_kind::verify: {
        auto it = lookups_.find(req.context);
        if (it == lookups_.end()) break;
        lookup_state& s = it->second;
        ++s.timeouts;
        if (s.timeouts > config_.max_timeouts_per_lookup) {
          complete(s, self_, s.why == purpose::join ? std::error_code(errc::timed_out) : errc::lookup_failed);
        } else if (req.kind == req_kind::route) {
          route_next(s, now);
        } else {
          // One lost message must not make the owner's successor the
          // answer: ask the same owner again until it has missed
          // failure_threshold requests (verify_next then skips it as dead).
          // A redirect target gets one try per redirect: the node that
          // named it answered. (An owner found dead here is still a
          // redirect target if its successor names it: this node's misses
          // count across requests, so it may have been one lost message.)
          if (s.redirect == s.owner_index) {
            s.silent.push_back(s.owners[s.owner_index].id);
            s.redirect.reset();
            ++s.owner_index;
          }
          verify_next(s, now);
        }
        break;
      }
    }
  }

  // Takes the pending request a reply answers, if the reply is from whom it was sent to.
  std::optional<pending_request> take_request(std::uint64_t id, node_id sender, const Address& from) {
    auto it = requests_.find(id);
    if (it == requests_.end()) {
      ++stats_.stale_replies;
      return std::nullopt;
    }
    const pending_request& req = it->second;
    if (req.check_target ? req.target != sender : !(req.address == from)) {
      ++stats_.rejected;
      return std::nullopt;
    }
    pending_request out = req;
    requests_.erase(it);
    if (out.kind == req_kind::check_predecessor) pending_check_pred_ = false;
    return out;
  }

  // ---- message handlers -------------------------------------------------------------------

  void handle(const Address& from, node_id sender, const detail::state_request& m, time_point) {
    if (state_ != router_state::joined) return;
    forget_dead(sender);
    detail::state_reply<Address> reply;
    reply.request = m.request;
    reply.has_predecessor = pred_.has_value();
    if (pred_) reply.predecessor = *pred_;
    reply.successors = succ_;
    send(from, reply);
  }

  void handle(const Address& from, node_id sender, const detail::state_reply<Address>& m, time_point now) {
    auto req = take_request(m.request, sender, from);
    if (!req) return;
    const peer_type p{sender, req->address};
    if (!valid_list(sender, m.successors, config_.max_successor_list_length) ||
        (m.has_predecessor && m.predecessor.id == sender) || req->kind == req_kind::route) {
      // A hostile or broken answer, or a state reply to a routing request,
      // is no answer (else the lookup would wait forever for a request
      // already taken); nor does it clear the sender's misses, or a peer
      // answering only garbage would never be taken for dead.
      ++stats_.rejected;
      on_timeout(*req, now);
      return;
    }
    forget_dead(sender);
    switch (req->kind) {
      case req_kind::stabilize_successor:
        on_stabilize_reply(p, m, now);
        break;
      case req_kind::stabilize_candidate:
        on_candidate_reply(p, m, now);
        break;
      case req_kind::check_predecessor:
        break;
      case req_kind::verify:
        if (auto it = lookups_.find(req->context); it != lookups_.end())
          on_verify_reply(it->second, p, m, now);
        break;
      case req_kind::route:
        break;  // handled above
    }
  }

  void handle(const Address&, node_id sender, const detail::rectify<Address>& m, time_point) {
    if (m.self.id != sender) {
      ++stats_.rejected;
      return;
    }
    forget_dead(sender);
    on_rectify(m.self);
  }

  void handle(const Address& from, node_id sender, const detail::find_request& m, time_point) {
    if (state_ != router_state::joined) return;
    forget_dead(sender);
    detail::find_reply<Address> reply;
    reply.request = m.request;
    if (succ_.empty()) {
      reply.done = true;
      reply.nodes = {self_};
    } else if (detail::in_half_open(m.key, self_.id.value, succ_.front().id.value)) {
      reply.done = true;
      reply.nodes = succ_;
    } else {
      reply.nodes = closest_preceding(m.key, config_.lookup_candidates);
      if (detail::in_half_open(m.key, self_.id.value, succ_.back().id.value)) reply.successors = succ_;
    }
    send(from, reply);
  }

  void handle(const Address& from, node_id sender, const detail::find_reply<Address>& m, time_point now) {
    auto req = take_request(m.request, sender, from);
    if (!req) return;
    if (req->kind != req_kind::route) {
      // A routing reply to a state request (stabilize, check_predecessor,
      // verify): no answer, else stabilize or the lookup would stall forever.
      ++stats_.rejected;
      on_timeout(*req, now);
      return;
    }
    forget_dead(sender);
    auto it = lookups_.find(req->context);
    if (it == lookups_.end()) return;
    on_route_reply(it->second, peer_type{sender, req->address}, m, now);
  }

  void handle(const Address&, node_id sender, const detail::leave_notice<Address>& m, time_point) {
    if (m.self.id != sender || !valid_list(sender, m.successors, config_.max_successor_list_length) ||
        (m.has_predecessor && m.predecessor.id == sender)) {
      ++stats_.rejected;
      return;
    }
    if (state_ != router_state::joined) return;
    on_leave(sender, m);
  }

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

// The replica core: Dynamo-style N/R/W quorum replication with sloppy quorum,
// hinted handoff, read repair and Merkle anti-entropy, as a state machine that
// does no I/O.
//
// Every node runs one replica. A client calls put / erase / get on any node;
// the node coordinates the request over the key's preference list (the first
// N nodes clockwise on the ring) and reports the outcome in its outbox after W
// (resp. R) replies, or after the timeout with quorum_not_reached and the
// number that did reply. Inputs are calls -- receive(from, bytes, now),
// tick(now), mark_down / mark_up from a failure detector -- and outputs are
// data in outbox(): messages to send (already encoded) and completions.
//
//   dhtkit::ring<dhtkit::node_id> ring;
//   for (std::uint64_t i = 1; i <= 3; ++i) (void)ring.add(dhtkit::node_id{i});
//   dhtkit::memory_storage store;                        // durable state: survives a restart
//   dhtkit::hint_store hints;                            // durable too
//   dhtkit::replica_config config;                       // N/R/W = 3/2/2
//   dhtkit::replica<> node(dhtkit::node_id{1}, config, ring, store, hints);
//   dhtkit::time_point now{};
//   auto op = node.put("cart:7", dhtkit::to_bytes("milk"), dhtkit::version_vector{}, now);
//   for (auto& m : node.outbox().messages) (void)m;  // a driver sends m.payload to m.to
//   node.outbox().messages.clear();
//   node.tick(now + dhtkit::seconds(1));                 // no replies: the deadline passes
//   // node.outbox().puts[0]: id == op, error == errc::quorum_not_reached, acks == 1, required == 2
//
// Design (see README, "Replication"):
//  - Versions are dotted version vector sets (dotted_version_vector.hpp): a
//    write gets a fresh dot from the durable counter of the node that
//    coordinates it, so concurrent writes become siblings and nothing a client
//    did not see is overwritten. Only one of the key's N true replicas numbers
//    its writes; a put received elsewhere is forwarded to the first healthy
//    one. Clock size is thus at most the number of nodes that were ever among
//    a key's N replicas (N with a stable ring); no pruning is done, because
//    pruning can lose writes.
//  - Forwarding: the true replica answers a forward at once with
//    forward_accept once it has numbered and stored the write, and later with
//    its outcome. A forward not accepted within replica_timeout marks that
//    replica suspected (suspect_period) and goes to the next healthy true
//    replica not yet asked, with the rest of the deadline, so a replica that
//    crashed unnoticed does not fail the put. The put fails with
//    quorum_not_reached, 0 acknowledgements, only if no true replica accepted
//    it by the deadline; accepted but no outcome is timed_out, 1 (the
//    accepting replica's own write). The cost is an ambiguity no timeout can
//    resolve: a replica that stored the write and whose accept was lost or
//    late (a clogged link, a partition) numbers it too, so the client's one
//    write gets two dots -- two siblings with the same value, and a later
//    read or delete that saw only one of them leaves the other. This is
//    Dynamo's choice for a client retry (a retried write is a new write event);
//    the alternative, never passing a forward on, fails every put whose first
//    healthy-looking replica is dead until a failure detector says so. The
//    next write with the read's context merges the duplicates.
//  - Sloppy quorum (default): the write goes to the first N healthy nodes of the
//    ring walk; a fallback standing in for a down owner keeps a hint (key, owner)
//    and hands the key back when the owner is healthy again, then drops its copy
//    (only once the owner has acknowledged a state that covers it: a hinted write
//    that arrived after the offer waits for the next one). A replica that does
//    not answer within replica_timeout is suspected for suspect_period and the
//    request moves on to the next fallback. Hints are bounded in count
//    (hint_store_config) and age (hint_max_age; an expired hint and its copy are
//    dropped). The write is not lost then -- its coordinator is a true replica
//    and keeps it, and anti-entropy brings it to the owner -- but until it does,
//    the write may be on fewer than W nodes (stats().hints_expired counts such
//    hints). With strict_quorum only the true N count, so R + W > N gives
//    read-your-writes.
//  - Read repair: after a get has heard from all it asked (or timed out), the
//    merged version is pushed to the true replicas whose state it would change.
//  - Anti-entropy: every anti_entropy_interval, one exchange with one peer for
//    one of 2^ae_range_bits slices of the ring, over the keys both replicate:
//    Merkle roots first, descending only into differing subtrees (at most
//    ae_max_descend nodes per level), then the entries of at most
//    ae_max_buckets buckets / ae_max_keys keys each way.
//  - Deletes are tombstones. A tombstone-only key is collected once every other
//    true replica was seen (by an equal Merkle subtree) to hold the same state
//    and tombstone_grace has passed since: it is reduced to a "marker" (no
//    versions, only the causal context), which anti-entropy spreads and which
//    absorbs late copies of the deleted versions; the marker is removed after
//    marker_ttl. hint_max_age <= tombstone_grace, so no hint can outlive it.
//  - Volatile state (pending requests, suspicions, anti-entropy sessions,
//    tombstone confirmations) is lost on restart; storage and hints are
//    passed in by reference as the durable part, and a rebuilt replica picks
//    them up.
//  - Everything from the network is untrusted: decoded by the bounded wire
//    codec, then checked against this config (key and value sizes, counts,
//    ranges, levels, ownership); bad input is counted and ignored.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

#include "dhtkit/clock/dotted_version_vector.hpp"
#include "dhtkit/core/error.hpp"
#include "dhtkit/core/hash.hpp"
#include "dhtkit/core/node_id.hpp"
#include "dhtkit/core/result.hpp"
#include "dhtkit/core/time.hpp"
#include "dhtkit/replication/detail/messages.hpp"
#include "dhtkit/replication/merkle.hpp"
#include "dhtkit/replication/storage.hpp"
#include "dhtkit/replication/versioned_value.hpp"
#include "dhtkit/ring/ring.hpp"

namespace dhtkit {

struct replica_config {
  std::uint32_t n = 3;  // replicas per key (Dynamo's typical N)
  std::uint32_t r = 2;  // replies a get waits for
  std::uint32_t w = 2;  // acknowledgements a put waits for (the coordinator's own write counts)
  // Per-request N may not exceed this (it also bounds how far a ring walk goes).
  std::uint32_t max_n = 7;
  // Only the true preference list counts (no fallbacks, no hints): with R + W > N
  // every read sees every write acknowledged before it began.
  bool strict_quorum = false;
  duration request_timeout = millis(500);   // a put or get fails after this, saying how many replied
  duration replica_timeout = millis(100);   // a silent replica is retried / replaced after this
  duration suspect_period = seconds(1);     // a replica that timed out is skipped this long
  std::uint32_t max_fallbacks = 3;          // extra ring nodes a sloppy request may try
  std::size_t max_pending = 4096;           // requests in progress at once; more fail with limit_exceeded
  std::size_t max_key_size = 1024;          // bytes
  std::size_t max_value_size = 256 * 1024;  // bytes
  bool read_repair = true;                  // push the merged version to stale replicas after a get
  duration hint_max_age = seconds(60);      // a hint not handed off by then is dropped (<= tombstone_grace)
  duration handoff_interval = millis(200);  // how often hints are offered to their owners
  std::size_t handoff_batch = 32;           // hints offered per interval
  duration anti_entropy_interval = millis(200);  // one exchange per interval
  std::uint32_t ae_range_bits = 3;               // 2^3 = 8 slices of the ring, one Merkle tree each
  merkle_config merkle{};                        // 16-ary, 256 buckets per slice
  std::size_t ae_max_descend = 8;                // differing nodes descended into per level
  std::size_t ae_max_buckets = 16;               // buckets exchanged per round
  std::size_t ae_max_keys = 256;                 // entries sent each way per round
  duration ae_session_timeout = millis(500);     // an unanswered exchange is abandoned after this
  duration tombstone_grace = seconds(120);       // after all replicas hold a tombstone, keep it this long
  duration marker_ttl = seconds(120);            // then keep the bare causal context this long
  wire_limits limits{};                          // message size and count bounds
  // Messages waiting in the outbox for the driver; beyond it new ones are
  // dropped and counted (outbox_dropped), as if lost: every exchange is
  // retried or repeated. A driver that drains after each call never gets near it.
  std::size_t max_outbox_messages = 16384;
};

namespace detail::repl {
inline void validate(const replica_config& c) {
  auto fail = [](const char* what) {
    throw std::invalid_argument(std::string("dhtkit::replica_config: ") + what);
  };
  if (c.max_n < 1 || c.max_n > 64) fail("max_n must be in [1, 64]");
  if (c.n < 1 || c.n > c.max_n) fail("n must be in [1, max_n]");
  if (c.r < 1 || c.r > c.n) fail("r must be in [1, n]");
  if (c.w < 1 || c.w > c.n) fail("w must be in [1, n]");
  if (c.request_timeout <= duration::zero() || c.request_timeout > seconds(86400))
    fail("request_timeout must be positive and at most a day");
  if (c.replica_timeout <= duration::zero()) fail("replica_timeout must be positive");
  if (c.suspect_period < duration::zero()) fail("suspect_period must not be negative");
  if (c.max_fallbacks > 64) fail("max_fallbacks must be at most 64");
  if (c.max_pending == 0) fail("max_pending must be at least 1");
  if (c.max_outbox_messages == 0) fail("max_outbox_messages must be at least 1");
  if (c.max_key_size == 0) fail("max_key_size must be at least 1");
  if (c.handoff_interval <= duration::zero() || c.anti_entropy_interval <= duration::zero())
    fail("handoff_interval and anti_entropy_interval must be positive");
  if (c.handoff_batch == 0) fail("handoff_batch must be at least 1");
  if (c.ae_range_bits > 16) fail("ae_range_bits must be at most 16");
  if (c.ae_max_descend == 0 || c.ae_max_buckets == 0 || c.ae_max_keys == 0)
    fail("ae_max_descend, ae_max_buckets and ae_max_keys must be at least 1");
  if (c.hint_max_age <= duration::zero()) fail("hint_max_age must be positive");
  if (c.hint_max_age > c.tombstone_grace)
    fail("hint_max_age must not exceed tombstone_grace (a hint could resurrect a collected delete)");
  if (c.marker_ttl < duration::zero()) fail("marker_ttl must not be negative");
  (void)merkle_tree(c.merkle, 0, c.ae_range_bits);  // validates the tree shape
  (void)wire::codec<replicate>(c.limits);           // validates the limits
}
}  // namespace detail::repl

struct hint_store_config {
  std::size_t max_hints = 100000;  // hints held at once; a write beyond is refused by this fallback
};

// Hints a fallback keeps for keys it stores on behalf of down owners. Part of
// a node's durable state, like its storage.
class hint_store {
 public:
  explicit hint_store(hint_store_config config = {}) : config_(config) {
    if (config_.max_hints == 0)
      throw std::invalid_argument("dhtkit::hint_store_config: max_hints must be >= 1");
  }
  // limit_exceeded when full. A hint already held keeps its original age (never duplicated).
  std::error_code add(std::string_view key, node_id owner, time_point now) {
    auto k = std::make_pair(std::string(key), owner);
    if (auto it = hints_.find(k); it != hints_.end()) return {};
    if (hints_.size() >= config_.max_hints) return errc::limit_exceeded;
    hints_.emplace(std::move(k), now);
    return {};
  }
  bool remove(std::string_view key, node_id owner) { return hints_.erase({std::string(key), owner}) > 0; }
  bool has_key(std::string_view key) const {
    auto it = hints_.lower_bound({std::string(key), node_id{0}});
    return it != hints_.end() && it->first.first == key;
  }
  std::size_t size() const noexcept { return hints_.size(); }
  // (key, owner) -> time the hint was created
  const std::map<std::pair<std::string, node_id>, time_point>& all() const noexcept { return hints_; }

 private:
  hint_store_config config_;
  std::map<std::pair<std::string, node_id>, time_point> hints_;
};

// Per-request overrides of the configured N, R, W and timeout. A request with
// n outside [1, max_n], r or w outside [1, n], or a timeout outside
// (0, 10 * request_timeout] fails at once with errc::invalid_argument (the
// bound on the timeout is the one a true replica applies to a forwarded put,
// and it keeps deadlines far from time_point overflow).
struct request_options {
  std::optional<std::uint32_t> n, r, w;
  std::optional<duration> timeout;
};

using request_id = std::uint64_t;

struct put_completion {
  request_id id = 0;
  std::string key;
  std::error_code error;       // quorum_not_reached, timed_out, too_many_siblings, invalid_argument, ...
  std::uint32_t acks = 0;      // replicas that acknowledged before the outcome
  std::uint32_t required = 0;  // W
  std::string describe() const {
    if (!error) return "stored on " + std::to_string(acks) + " replicas (W=" + std::to_string(required) + ")";
    return error.message() + ": " + std::to_string(acks) + " of " + std::to_string(required) +
           " required replicas acknowledged";
  }
};

struct get_completion {
  request_id id = 0;
  std::string key;
  std::error_code error;
  std::uint32_t replies = 0;
  std::uint32_t required = 0;             // R
  std::vector<versioned_value> siblings;  // live versions only; empty: not found or deleted
  version_vector context;                 // pass to the next put of this key
  std::string describe() const {
    if (!error)
      return std::to_string(siblings.size()) + " version(s) from " + std::to_string(replies) + " replicas";
    return error.message() + ": " + std::to_string(replies) + " of " + std::to_string(required) +
           " required replicas replied";
  }
};

struct replica_outbox {
  struct message {
    node_id to{};
    std::vector<std::byte> payload;  // a whole encoded message
  };
  std::vector<message> messages;
  std::vector<put_completion> puts;
  std::vector<get_completion> gets;
  void clear() {
    messages.clear();
    puts.clear();
    gets.clear();
  }
};

struct replica_stats {
  std::uint64_t puts_ok = 0, puts_failed = 0, gets_ok = 0, gets_failed = 0;
  std::uint64_t forwarded = 0;        // puts passed to a true replica
  std::uint64_t reforwarded = 0;      // forwards passed on to another true replica after a silence
  std::uint64_t fallback_writes = 0;  // replicas sent to a fallback with a hint
  std::uint64_t hints_stored = 0, hints_handed_off = 0, hints_expired = 0;
  std::uint64_t read_repairs = 0;  // repair messages sent
  std::uint64_t ae_sessions = 0, ae_keys_sent = 0, ae_keys_repaired = 0;
  std::uint64_t tombstones_collected = 0, markers_removed = 0;
  std::uint64_t rejected = 0;  // messages that failed decoding or validation
  std::uint64_t encode_failures = 0;
  std::uint64_t outbox_dropped = 0;  // messages beyond max_outbox_messages
};

template <storage Storage = memory_storage>
class replica {
 public:
  // Throws std::invalid_argument for an invalid configuration or a node that
  // is not on the ring.
  replica(node_id self, replica_config config, ring<node_id> ring, Storage& store, hint_store& hints)
      : self_(self),
        config_(config),
        ring_(std::move(ring)),
        store_(store),
        hints_(hints),
        codec_(config.limits) {
    detail::repl::validate(config_);
    if (!ring_.contains(self_)) throw std::invalid_argument("dhtkit::replica: self is not on the ring");
    ae_cursor_ = self_.value;  // nodes start their anti-entropy walks at different places
  }

  node_id self() const noexcept { return self_; }
  const replica_config& config() const noexcept { return config_; }
  const ring<node_id>& placement() const noexcept { return ring_; }
  replica_outbox& outbox() noexcept { return out_; }
  const replica_stats& stats() const noexcept { return stats_; }
  std::size_t pending() const noexcept { return puts_.size() + gets_.size() + forwards_.size(); }

  // Failure detector input: a down node is skipped until marked up.
  void mark_down(node_id n) { down_.insert(n); }
  void mark_up(node_id n) {
    down_.erase(n);
    suspect_.erase(n);
  }
  bool healthy(node_id n, time_point now) const {
    if (n == self_) return true;
    if (down_.contains(n)) return false;
    auto it = suspect_.find(n);
    return it == suspect_.end() || it->second <= now;
  }

  // The key's true replicas (first n ring nodes).
  std::vector<node_id> replicas_of(std::string_view key, std::uint32_t n) const {
    auto pl = ring_.preference_list(key, n);
    return pl ? std::move(*pl) : std::vector<node_id>{};
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
    op.r = r;
    op.n = n;
    op.deadline = now + timeout;
    op.candidates = ring_walk(key, n);
    op.true_replicas = replicas_of(key, n);
    auto [it, inserted] = gets_.emplace(id, std::move(op));
    get_op& g = it->second;
    for (const node_id& t : initial_targets(g.candidates, g.true_replicas, n, now))
      add_get_target(id, g, t, now);
    check_get(id, g, now);
    return id;
  }

  void receive(node_id from, std::span<const std::byte> bytes, time_point now) {
    auto decoded = codec_.decode(bytes);
    if (!decoded || decoded->sender != from || from == self_ || !ring_.contains(from)) {
      ++stats_.rejected;
      return;
    }
    suspect_.erase(from);  // it is alive
    std::visit([&](auto& m) { handle(from, m, now); }, decoded->message);
  }

  void tick(time_point now) {
    tick_puts(now);
    tick_gets(now);
    tick_forwards(now);
    if (now >= next_handoff_) {
      next_handoff_ = now + config_.handoff_interval;
      handoff(now);
    }
    if (now >= next_ae_) {
      next_ae_ = now + config_.anti_entropy_interval;
      collect_garbage(now);
      start_anti_entropy(now);
    }
  }

  // Anti-entropy exchanges this replica has started (a measure of rounds).
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
    std::uint32_t n = 0, r = 0, replies = 0;
    time_point deadline{};
    bool answered = false;
    std::vector<node_id> candidates, true_replicas;
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

  // ---- helpers ----

  bool valid_timeout(duration t) const noexcept {
    return t > duration::zero() && t <= 10 * config_.request_timeout;
  }

  template <class Msg>
  void send(node_id to, const Msg& m) {
    if (out_.messages.size() >= config_.max_outbox_messages) {
      ++stats_.outbox_dropped;
      return;
    }
    auto bytes = codec_.encode(m, self_);
    if (!bytes) {
      ++stats_.encode_failures;
      return;
    }
    out_.messages.push_back({to, std::move(*bytes)});
  }

  std::vector<node_id> ring_walk(std::string_view key, std::uint32_t n) const {
    return replicas_of(key, n + (config_.strict_quorum ? 0 : config_.max_fallbacks));
  }

  bool is_true_replica(std::string_view key, node_id node, std::uint32_t n) const {
    const auto pl = replicas_of(key, n);
    return std::find(pl.begin(), pl.end(), node) != pl.end();
  }

  // First n healthy candidates (sloppy) or the healthy true replicas (strict).
  std::vector<node_id> initial_targets(const std::vector<node_id>& candidates,
                                       const std::vector<node_id>& true_replicas, std::uint32_t n,
                                       time_point now) const {
    std::vector<node_id> out;
    const auto& pool = config_.strict_quorum ? true_replicas : candidates;
    for (const node_id& c : pool) {
      if (out.size() == n) break;
      if (healthy(c, now)) out.push_back(c);
    }
    return out;
  }

  template <class Op>
  std::optional<node_id> next_candidate(const Op& op, time_point now) const {
    if (config_.strict_quorum) return std::nullopt;
    for (const node_id& c : op.candidates) {
      if (!healthy(c, now)) continue;
      bool used = false;
      for (const auto& t : op.targets) used = used || t.node == c;
      if (!used) return c;
    }
    return std::nullopt;
  }

  void fail_get(request_id id, std::string_view key, std::error_code ec, std::uint32_t replies,
                std::uint32_t r) {
    get_completion c;
    c.id = id;
    c.key = std::string(key);
    c.error = ec;
    c.replies = replies;
    c.required = r;
    ++stats_.gets_failed;
    out_.gets.push_back(std::move(c));
  }

  void complete_put(request_id id, std::string_view key, std::error_code ec, std::uint32_t acks,
                    std::uint32_t w) {
    put_completion c;
    c.id = id;
    c.key = std::string(key);
    c.error = ec;
    c.acks = acks;
    c.required = w;
    ec ? ++stats_.puts_failed : ++stats_.puts_ok;
    out_.puts.push_back(std::move(c));
  }

  // A local change to a key invalidates what was confirmed about it.
  void touched(const std::string& key) {
    tombs_.erase(key);
    markers_.erase(key);
  }

  // ---- puts ----

  request_id start_put(std::string_view key, bytes value, bool tombstone, const version_vector& context,
                       time_point now, const request_options& options, time_point expires_at) {
    const request_id id = next_id_++;
    const std::uint32_t n = options.n.value_or(config_.n), w = options.w.value_or(config_.w);
    const duration timeout = options.timeout.value_or(config_.request_timeout);
    if (key.empty() || key.size() > config_.max_key_size || value.size() > config_.max_value_size || n < 1 ||
        n > config_.max_n || w < 1 || w > n || !valid_timeout(timeout)) {
      complete_put(id, key, errc::invalid_argument, 0, w);
      return id;
    }
    if (pending() >= config_.max_pending) {
      complete_put(id, key, errc::limit_exceeded, 0, w);
      return id;
    }
    const auto owners = replicas_of(key, n);
    if (std::find(owners.begin(), owners.end(), self_) == owners.end()) {
      // Only a true replica numbers a key's writes: pass it on.
      std::optional<node_id> owner;
      for (const node_id& o : owners) {
        if (healthy(o, now)) {
          owner = o;
          break;
        }
      }
      if (!owner) {
        complete_put(id, key, errc::quorum_not_reached, 0, w);
        return id;
      }
      forward_op f;
      f.message.request = id;
      f.message.key = std::string(key);
      f.message.context = context;
      f.message.value = std::move(value);
      f.message.tombstone = tombstone;
      f.message.expires_at = expires_at.time_since_epoch().count();
      f.message.n = n;
      f.message.w = w;
      f.message.timeout = timeout.count();
      // A little longer than the owner's own deadline, so its answer can arrive.
      f.deadline = now + timeout + config_.replica_timeout;
      f.to = *owner;
      f.tried.push_back(*owner);
      f.sent_at = now;
      send(*owner, f.message);
      ++stats_.forwarded;
      forwards_.emplace(id, std::move(f));
      return id;
    }
    coordinate(id, key, std::move(value), tombstone, context, expires_at, n, w, now + timeout, now,
               std::nullopt);
    return id;
  }

  void coordinate(request_id id, std::string_view key, bytes value, bool tombstone,
                  const version_vector& context, time_point expires_at, std::uint32_t n, std::uint32_t w,
                  time_point deadline, time_point now,
                  std::optional<std::pair<node_id, std::uint64_t>> origin) {
    const dot d{self_, store_.next_counter()};
    result<versioned_entry> written = errc::invalid_argument;
    if (tombstone) {
      written = store_.erase(key, context, d);
    } else {
      versioned_value v;
      v.version = d;
      v.value = std::move(value);
      v.expires_at = expires_at;
      written = store_.put(key, context, v);
    }
    if (!written) {
      finish_put(id, key, written.error(), 0, w, origin);
      return;
    }
    touched(std::string(key));
    put_op op;
    op.key = std::string(key);
    op.entry = std::move(*written);
    op.n = n;
    op.w = w;
    op.acks = 1;  // our own durable write
    op.deadline = deadline;
    op.origin = origin;
    op.candidates = ring_walk(key, n);
    op.true_replicas = replicas_of(key, n);
    auto [it, inserted] = puts_.emplace(id, std::move(op));
    put_op& p = it->second;
    // Owners that are not targets, in order, get a stand-in each.
    std::vector<node_id> targets = initial_targets(p.candidates, p.true_replicas, n, now);
    std::vector<node_id> missing;
    for (const node_id& o : p.true_replicas)
      if (std::find(targets.begin(), targets.end(), o) == targets.end()) missing.push_back(o);
    std::size_t next_missing = 0;
    for (const node_id& t : targets) {
      if (t == self_) {
        p.targets.push_back({t, {}, now, true, false});
        continue;
      }
      node_id hinted{};
      if (std::find(p.true_replicas.begin(), p.true_replicas.end(), t) == p.true_replicas.end() &&
          next_missing < missing.size())
        hinted = missing[next_missing++];
      send_replica(id, p, t, hinted, now);
    }
    check_put(id, p);
  }

  void send_replica(request_id id, put_op& p, node_id to, node_id hinted, time_point now) {
    p.targets.push_back({to, hinted, now, false, false});
    if (hinted != node_id{}) ++stats_.fallback_writes;
    send(to, detail::repl::replicate{id, p.key, p.entry, hinted});
  }

  void finish_put(request_id id, std::string_view key, std::error_code ec, std::uint32_t acks,
                  std::uint32_t w, const std::optional<std::pair<node_id, std::uint64_t>>& origin) {
    if (origin) {
      detail::repl::forward_reply reply;
      reply.request = origin->second;
      reply.status = static_cast<std::uint16_t>(ec ? ec.value() : 0);
      reply.acks = acks;
      reply.required = w;
      send(origin->first, reply);
      ec ? ++stats_.puts_failed : ++stats_.puts_ok;
    } else {
      complete_put(id, key, ec, acks, w);
    }
  }

  // Completes the put if it has its W acks; true if it did.
  bool check_put(request_id id, put_op& p) {
    if (p.acks < p.w) return false;
    finish_put(id, p.key, {}, p.acks, p.w, p.origin);
    puts_.erase(id);
    return true;
  }

  void tick_puts(time_point now) {
    for (auto it = puts_.begin(); it != puts_.end();) {
      put_op& p = it->second;
      if (p.deadline <= now) {
        finish_put(it->first, p.key, errc::quorum_not_reached, p.acks, p.w, p.origin);
        it = puts_.erase(it);
        continue;
      }
      const std::size_t count = p.targets.size();
      for (std::size_t i = 0; i < count; ++i) {
        if (p.targets[i].acked || p.targets[i].replaced ||
            p.targets[i].sent_at + config_.replica_timeout > now)
          continue;
        const node_id silent = p.targets[i].node;
        suspect_[silent] = now + config_.suspect_period;
        if (auto next = next_candidate(p, now)) {
          p.targets[i].replaced = true;
          node_id owner = p.targets[i].hinted_for;
          if (owner == node_id{} &&
              std::find(p.true_replicas.begin(), p.true_replicas.end(), silent) != p.true_replicas.end())
            owner = silent;
          if (std::find(p.true_replicas.begin(), p.true_replicas.end(), *next) != p.true_replicas.end())
            owner = node_id{};
          send_replica(it->first, p, *next, owner, now);
        } else {
          p.targets[i].sent_at = now;  // nobody else to ask: ask again (the message may have been lost)
          send(silent, detail::repl::replicate{it->first, p.key, p.entry, p.targets[i].hinted_for});
        }
      }
      ++it;
    }
  }

  // A forward unaccepted after replica_timeout: the replica is suspected (as a
  // silent replica of a put is) and the put goes to the next healthy true
  // replica not yet asked, with what is left of the deadline. See the header
  // comment for the duplicate this can make.
  void tick_forwards(time_point now) {
    for (auto it = forwards_.begin(); it != forwards_.end();) {
      forward_op& f = it->second;
      if (f.deadline <= now) {
        // Accepted: the replica stored it (1 ack) but its outcome never came.
        // Never accepted: as far as we know no true replica answered.
        if (f.accepted)
          complete_put(it->first, f.message.key, errc::timed_out, 1, f.message.w);
        else
          complete_put(it->first, f.message.key, errc::quorum_not_reached, 0, f.message.w);
        it = forwards_.erase(it);
        continue;
      }
      if (!f.accepted && f.sent_at + config_.replica_timeout <= now) {
        suspect_[f.to] = now + config_.suspect_period;
        // The replica's deadline must end before ours, by the time its reply takes.
        const duration left = f.deadline - config_.replica_timeout - now;
        std::optional<node_id> next;
        for (const node_id& o : replicas_of(f.message.key, f.message.n)) {
          if (o == self_ || !healthy(o, now) || std::find(f.tried.begin(), f.tried.end(), o) != f.tried.end())
            continue;
          next = o;
          break;
        }
        f.sent_at = now;
        if (next && left > duration::zero()) {
          f.to = *next;
          f.tried.push_back(*next);
          f.message.timeout = left.count();
          ++stats_.reforwarded;
        }
        // Else nobody new to ask: ask the last one again (the message may have
        // been lost; a replica that already has it ignores the copy).
        send(f.to, f.message);
      }
      ++it;
    }
  }

  // ---- gets ----

  void add_get_target(request_id id, get_op& g, node_id t, time_point now) {
    g.targets.push_back({t, now, false, false});
    if (t == self_) {
      on_read_reply(id, g, self_, store_.get(g.key), now);
    } else {
      send(t, detail::repl::read_request{id, g.key});
    }
  }

  void on_read_reply(request_id id, get_op& g, node_id from, std::optional<versioned_entry> entry,
                     time_point) {
    get_target* t = nullptr;
    for (auto& x : g.targets)
      if (x.node == from && !x.replied) t = &x;
    if (t == nullptr) return;  // duplicate or unasked
    t->replied = true;
    ++g.replies;
    if (entry) {
      versioned_entry merged = g.merged;
      if (!merged.sync(*entry)) g.merged = std::move(merged);
    }
    g.responses.emplace_back(from, std::move(entry));
    (void)id;
  }

  // Answers when R replies are in; repairs and forgets once everyone asked has replied.
  void check_get(request_id id, get_op& g, time_point now) {
    if (!g.answered && g.replies >= g.r) {
      g.answered = true;
      get_completion c;
      c.id = id;
      c.key = g.key;
      c.replies = g.replies;
      c.required = g.r;
      c.context = g.merged.context();
      for (const versioned_value& v : g.merged.siblings())
        if (v.live(now)) c.siblings.push_back(v);
      ++stats_.gets_ok;
      out_.gets.push_back(std::move(c));
    }
    bool outstanding = false;
    for (const auto& t : g.targets) outstanding = outstanding || (!t.replied && !t.replaced);
    if (!outstanding) finish_get(id, g, now);
  }

  void finish_get(request_id id, get_op& g, time_point now) {
    if (!g.answered) fail_get(id, g.key, errc::quorum_not_reached, g.replies, g.r);
    if (config_.read_repair && !g.merged.empty()) {
      for (const auto& [node, entry] : g.responses) {
        if (std::find(g.true_replicas.begin(), g.true_replicas.end(), node) == g.true_replicas.end())
          continue;
        if (entry && !entry->would_change(g.merged)) continue;
        ++stats_.read_repairs;
        if (node == self_) {
          auto changed = store_.merge(g.key, g.merged);
          if (changed && *changed) touched(g.key);
        } else {
          send(node, detail::repl::replicate{0, g.key, g.merged, node_id{}});
        }
      }
    }
    (void)now;
    gets_.erase(id);
  }

  void tick_gets(time_point now) {
    for (auto it = gets_.begin(); it != gets_.end();) {
      get_op& g = it->second;
      const request_id id = it->first;
      ++it;  // finish_get erases
      if (g.deadline <= now) {
        finish_get(id, g, now);
        continue;
      }
      const std::size_t count = g.targets.size();
      for (std::size_t i = 0; i < count; ++i) {
        if (g.targets[i].replied || g.targets[i].replaced ||
            g.targets[i].sent_at + config_.replica_timeout > now)
          continue;
        const node_id silent = g.targets[i].node;
        suspect_[silent] = now + config_.suspect_period;
        if (auto next = next_candidate(g, now)) {
          g.targets[i].replaced = true;
          add_get_target(id, g, *next, now);
        } else {
          g.targets[i].sent_at = now;
          send(silent, detail::repl::read_request{id, g.key});
        }
      }
      check_get(id, g, now);
    }
  }

  // ---- message handlers ----

  bool valid_key(const std::string& key) const { return !key.empty() && key.size() <= config_.max_key_size; }

  bool valid_entry(const versioned_entry& e) const {
    for (const versioned_value& v : e.siblings())
      if (v.value.size() > config_.max_value_size) return false;
    return true;
  }

  void handle(node_id from, const detail::repl::replicate& m, time_point now) {
    if (!valid_key(m.key) || !valid_entry(m.entry)) return reject(from, m.request, errc::invalid_argument);
    if (m.hinted_for != node_id{}) {
      const bool owner = is_true_replica(m.key, self_, config_.n);
      // A stand-in: the named owner must be a true replica of the key and we must not be.
      if (owner || m.hinted_for == self_ || !is_true_replica(m.key, m.hinted_for, config_.max_n))
        return reject(from, m.request, errc::invalid_argument);
      if (auto ec = hints_.add(m.key, m.hinted_for, now)) return reject(from, m.request, ec);
      ++stats_.hints_stored;
    } else if (!is_true_replica(m.key, self_, config_.max_n)) {
      return reject(from, m.request, errc::not_a_member);
    }
    auto changed = store_.merge(m.key, m.entry);
    if (!changed) {
      if (m.hinted_for != node_id{} && !store_.get(m.key)) hints_.remove(m.key, m.hinted_for);
      return reject(from, m.request, changed.error());
    }
    if (*changed) touched(m.key);
    if (m.request != 0) send(from, detail::repl::replicate_ack{m.request, 0});
  }

  void reject(node_id from, std::uint64_t request, std::error_code ec) {
    ++stats_.rejected;
    if (request != 0)
      send(from, detail::repl::replicate_ack{request, static_cast<std::uint16_t>(ec.value())});
  }

  void handle(node_id from, const detail::repl::replicate_ack& m, time_point now) {
    if (m.request & handoff_flag) {
      auto it = handoffs_.find(m.request);
      if (it == handoffs_.end()) return;
      handoff_offer offer = std::move(it->second);
      handoffs_.erase(it);
      if (m.status != 0 || offer.owner != from) return;
      // A hinted write that arrived after the offer was sent is not in what the
      // owner acknowledged: keep the hint (and the copy) for the next offer.
      if (auto local = store_.get(offer.key); local && offer.sent.would_change(*local)) return;
      if (hints_.remove(offer.key, offer.owner)) ++stats_.hints_handed_off;
      drop_if_orphan(offer.key);
      return;
    }
    auto it = puts_.find(m.request);
    if (it == puts_.end()) return;
    put_op& p = it->second;
    for (auto& t : p.targets) {
      if (t.node != from || t.acked) continue;
      if (m.status != 0) {
        t.sent_at = now - config_.replica_timeout;  // refused: replace it at the next tick
        return;
      }
      t.acked = true;
      ++p.acks;
      check_put(it->first, p);
      return;
    }
  }

  void handle(node_id from, const detail::repl::read_request& m, time_point) {
    if (!valid_key(m.key)) return (void)++stats_.rejected;
    detail::repl::read_reply reply;
    reply.request = m.request;
    if (auto e = store_.get(m.key)) {
      reply.found = true;
      reply.entry = std::move(*e);
    }
    send(from, reply);
  }

  void handle(node_id from, const detail::repl::read_reply& m, time_point now) {
    auto it = gets_.find(m.request);
    if (it == gets_.end() || !valid_entry(m.entry)) return;
    if (!m.found && !m.entry.empty()) return (void)++stats_.rejected;
    on_read_reply(it->first, it->second, from,
                  m.found ? std::optional<versioned_entry>(m.entry) : std::nullopt, now);
    check_get(it->first, it->second, now);
  }

  void handle(node_id from, const detail::repl::forward_put& m, time_point now) {
    const duration timeout(m.timeout);
    auto refuse = [&](std::error_code ec) {
      ++stats_.rejected;
      send(from, detail::repl::forward_reply{m.request, static_cast<std::uint16_t>(ec.value()), 0, m.w});
    };
    if (!valid_key(m.key) || m.value.size() > config_.max_value_size || m.n < 1 || m.n > config_.max_n ||
        m.w < 1 || m.w > m.n || !valid_timeout(timeout) || (m.tombstone && !m.value.empty()))
      return refuse(errc::invalid_argument);
    if (!is_true_replica(m.key, self_, m.n)) return refuse(errc::not_a_member);
    if (pending() >= config_.max_pending) return refuse(errc::limit_exceeded);
    // A duplicated forward must not become a second write (a second dot, a false sibling).
    const auto origin = std::make_pair(from, m.request);
    if (seen_forwards_.contains(origin)) {
      // Its accept may have been lost: say again that we have it, if still at work.
      for (const auto& pending_put : puts_)
        if (pending_put.second.origin == origin) send(from, detail::repl::forward_accept{m.request});
      return;
    }
    seen_forwards_.insert(origin);
    seen_order_.push_back(origin);
    if (seen_order_.size() > config_.max_pending) {
      seen_forwards_.erase(seen_order_.front());
      seen_order_.pop_front();
    }
    const request_id id = next_id_++;
    coordinate(id, m.key, m.value, m.tombstone, m.context, time_point(duration(m.expires_at)), m.n, m.w,
               now + timeout, now, std::make_pair(from, m.request));
    // Numbered and stored, outcome pending: the forwarder must not pass it on
    // (that would number the same write twice).
    if (puts_.contains(id)) send(from, detail::repl::forward_accept{m.request});
  }

  void handle(node_id from, const detail::repl::forward_accept& m, time_point) {
    auto it = forwards_.find(m.request);
    if (it == forwards_.end()) return;
    const auto& tried = it->second.tried;
    if (std::find(tried.begin(), tried.end(), from) == tried.end()) return (void)++stats_.rejected;
    it->second.accepted = true;
    it->second.to = from;
  }

  void handle(node_id from, const detail::repl::forward_reply& m, time_point) {
    auto it = forwards_.find(m.request);
    if (it == forwards_.end()) return;
    // Request ids are sequential: another member must not be able to complete it.
    const auto& tried = it->second.tried;
    if (std::find(tried.begin(), tried.end(), from) == tried.end()) return (void)++stats_.rejected;
    std::error_code ec;
    if (m.status != 0) ec = std::error_code(m.status, error_category());
    complete_put(it->first, it->second.message.key, ec, m.acks, it->second.message.w);
    forwards_.erase(it);
  }

  // ---- hinted handoff ----

  void handoff(time_point now) {
    handoffs_.clear();  // an offer unanswered for a whole interval is made again
    std::size_t offered = 0;
    std::vector<std::pair<std::string, node_id>> expired;
    for (const auto& [k, created] : hints_.all()) {
      if (created + config_.hint_max_age <= now) {
        expired.push_back(k);
        continue;
      }
      if (offered >= config_.handoff_batch || !healthy(k.second, now) || down_.contains(k.second)) continue;
      auto entry = store_.get(k.first);
      if (!entry) {
        expired.push_back(k);
        continue;
      }
      const std::uint64_t req = handoff_flag | next_handoff_id_++;
      send(k.second, detail::repl::replicate{req, k.first, *entry, node_id{}});
      handoffs_.emplace(req, handoff_offer{k.first, k.second, std::move(*entry)});
      ++offered;
    }
    for (const auto& k : expired) {
      hints_.remove(k.first, k.second);
      ++stats_.hints_expired;
      drop_if_orphan(k.first);
    }
  }

  // A fallback keeps a hinted key only while it has a hint for it.
  void drop_if_orphan(const std::string& key) {
    if (hints_.has_key(key) || is_true_replica(key, self_, config_.n)) return;
    store_.remove(key);
    touched(key);
  }

  // ---- anti-entropy ----

  std::uint32_t ranges() const noexcept { return 1u << config_.ae_range_bits; }
  std::uint64_t range_begin(std::uint32_t range) const noexcept {
    return config_.ae_range_bits == 0 ? 0 : std::uint64_t{range} << (64 - config_.ae_range_bits);
  }
  std::uint64_t range_end(std::uint32_t range) const noexcept {
    return range + 1 == ranges() ? 0 : range_begin(range + 1);
  }

  // f(key, position, entry) for the keys of `range` that both we and `peer` replicate.
  template <class F>
  void shared_keys(std::uint32_t range, node_id peer, F&& f) const {
    store_.for_each_in_range(range_begin(range), range_end(range),
                             [&](std::string_view key, const versioned_entry& e) {
                               auto pl = ring_.preference_list(key, config_.n);
                               if (!pl) return;
                               bool me = false, them = false;
                               for (const node_id& x : *pl) me = me || x == self_, them = them || x == peer;
                               if (me && them) f(key, ring_.hash(key), e);
                             });
  }

  static std::uint64_t digest(std::string_view key, const versioned_entry& e) {
    std::uint64_t h = xxh64(key);
    auto mix = [&](std::uint64_t v) { h = mix64(h ^ v); };
    for (const auto& c : e.context().entries()) mix(c.node.value), mix(c.counter);
    for (const versioned_value& v : e.siblings()) {
      mix(v.version.node.value);
      mix(v.version.counter);
      mix(v.tombstone ? 1 : 2);
      mix(static_cast<std::uint64_t>(v.expires_at.time_since_epoch().count()));
      mix(xxh64(std::string_view(reinterpret_cast<const char*>(v.value.data()), v.value.size())));
    }
    return h;
  }

  merkle_tree build_tree(std::uint32_t range, node_id peer) const {
    merkle_tree t(config_.merkle, range_begin(range), config_.ae_range_bits);
    shared_keys(range, peer, [&](std::string_view key, std::uint64_t pos, const versioned_entry& e) {
      if (!e.empty()) t.insert(pos, digest(key, e));  // markers are not compared, only shipped
    });
    return t;
  }

  void start_anti_entropy(time_point now) {
    if (session_ && session_->started + config_.ae_session_timeout > now) return;
    session_.reset();
    const auto nodes = ring_.nodes();
    if (nodes.size() < 2) return;
    // Walk (range, peer) pairs; skip peers believed down.
    for (std::size_t tries = 0; tries < nodes.size() * ranges(); ++tries) {
      ++ae_cursor_;
      const node_id peer = nodes[ae_cursor_ % nodes.size()];
      const auto range = static_cast<std::uint32_t>((ae_cursor_ / nodes.size()) % ranges());
      if (peer == self_ || !healthy(peer, now)) continue;
      ae_session s;
      s.id = next_session_++;
      s.peer = peer;
      s.range = range;
      s.level = 0;
      s.sent = {0};
      s.started = now;
      const merkle_tree t = build_tree(range, peer);
      send(peer, detail::repl::ae_hashes{s.id, range, 0, {0}, {t.root()}});
      session_ = std::move(s);
      ++stats_.ae_sessions;
      return;
    }
  }

  bool valid_range(std::uint32_t range) const noexcept { return range < ranges(); }

  void handle(node_id from, const detail::repl::ae_hashes& m, time_point) {
    const merkle_tree probe(config_.merkle, 0, config_.ae_range_bits);
    if (!valid_range(m.range) || m.level > probe.depth() || m.index.size() != m.hash.size() ||
        m.index.size() > config_.ae_max_descend * probe.fanout())
      return (void)++stats_.rejected;
    for (std::uint32_t i : m.index)
      if (i >= probe.width(m.level)) return (void)++stats_.rejected;
    const merkle_tree t = build_tree(m.range, from);
    detail::repl::ae_diff reply{m.session, m.range, m.level, {}};
    for (std::size_t i = 0; i < m.index.size(); ++i)
      if (t.hash(m.level, m.index[i]) != m.hash[i]) reply.differing.push_back(m.index[i]);
    send(from, reply);
  }

  void handle(node_id from, const detail::repl::ae_diff& m, time_point now) {
    if (!session_ || session_->id != m.session || session_->peer != from || session_->range != m.range ||
        session_->level != m.level)
      return;
    ae_session& s = *session_;
    // A strictly increasing subset of what we sent (s.sent is increasing): so
    // at most s.sent.size() entries, and no duplicate to make us repeat work.
    for (std::size_t i = 0; i < m.differing.size(); ++i) {
      if ((i > 0 && m.differing[i] <= m.differing[i - 1]) ||
          !std::binary_search(s.sent.begin(), s.sent.end(), m.differing[i]))
        return (void)++stats_.rejected;
    }
    const merkle_tree t = build_tree(s.range, from);
    confirm_equal(s, m.differing, t, now);
    if (m.differing.empty()) {
      session_.reset();
      return;
    }
    if (m.level == t.depth()) {
      s.buckets.assign(m.differing.begin(),
                       m.differing.begin() +
                           static_cast<std::ptrdiff_t>(std::min(m.differing.size(), config_.ae_max_buckets)));
      detail::repl::ae_push push{s.id, s.range, s.buckets, entries_of(s.range, from, s.buckets, t)};
      stats_.ae_keys_sent += push.entries.size();
      send(from, push);
      return;
    }
    detail::repl::ae_hashes next{s.id, s.range, m.level + 1, {}, {}};
    const std::size_t descend = std::min(m.differing.size(), config_.ae_max_descend);
    for (std::size_t i = 0; i < descend; ++i) {
      for (std::uint32_t c = m.differing[i] * t.fanout(); c < (m.differing[i] + 1) * t.fanout(); ++c) {
        next.index.push_back(c);
        next.hash.push_back(t.hash(m.level + 1, c));
      }
    }
    s.level = m.level + 1;
    s.sent = next.index;
    send(from, next);
  }

  std::vector<detail::repl::key_entry> entries_of(std::uint32_t range, node_id peer,
                                                  const std::vector<std::uint32_t>& buckets,
                                                  const merkle_tree& t) const {
    std::vector<detail::repl::key_entry> out;
    shared_keys(range, peer, [&](std::string_view key, std::uint64_t pos, const versioned_entry& e) {
      if (out.size() >= config_.ae_max_keys) return;
      if (std::find(buckets.begin(), buckets.end(), t.bucket_of(pos)) != buckets.end())
        out.push_back({std::string(key), e});
    });
    return out;
  }

  // Tombstone-only keys under subtrees the peer reported equal are confirmed by it.
  void confirm_equal(const ae_session& s, const std::vector<std::uint32_t>& differing, const merkle_tree& t,
                     time_point now) {
    const auto replicas_needed = config_.n - 1;
    shared_keys(s.range, s.peer, [&](std::string_view key, std::uint64_t pos, const versioned_entry& e) {
      if (e.empty()) return;
      for (const versioned_value& v : e.siblings())
        if (!v.tombstone) return;
      const std::uint32_t a = t.ancestor(s.level, t.bucket_of(pos));
      if (std::find(s.sent.begin(), s.sent.end(), a) == s.sent.end()) return;
      if (std::find(differing.begin(), differing.end(), a) != differing.end()) return;
      tomb_state& ts = tombs_[std::string(key)];
      ts.confirmed.insert(s.peer);
      const auto pl = replicas_of(key, config_.n);
      std::size_t others = 0;
      for (const node_id& x : pl) others += (x != self_ && ts.confirmed.contains(x)) ? 1 : 0;
      if (others >= std::min<std::size_t>(replicas_needed, pl.size() - 1) && !ts.settled_at)
        ts.settled_at = now;
    });
  }

  void merge_entries(node_id from, std::uint32_t range, const std::vector<detail::repl::key_entry>& entries) {
    for (const auto& ke : entries) {
      if (!valid_key(ke.key) || !valid_entry(ke.entry)) {
        ++stats_.rejected;
        continue;
      }
      const std::uint64_t pos = ring_.hash(ke.key);
      const std::uint64_t b = range_begin(range);
      if (config_.ae_range_bits != 0 && ((pos - b) >> (64 - config_.ae_range_bits)) != 0) {
        ++stats_.rejected;
        continue;
      }
      if (!is_true_replica(ke.key, self_, config_.n) || !is_true_replica(ke.key, from, config_.n)) {
        ++stats_.rejected;
        continue;
      }
      auto changed = store_.merge(ke.key, ke.entry);
      if (changed && *changed) {
        ++stats_.ae_keys_repaired;
        touched(ke.key);
      }
    }
  }

  void handle(node_id from, const detail::repl::ae_push& m, time_point) {
    const merkle_tree t(config_.merkle, valid_range(m.range) ? range_begin(m.range) : 0,
                        config_.ae_range_bits);
    if (!valid_range(m.range) || m.buckets.size() > config_.ae_max_buckets ||
        m.entries.size() > config_.ae_max_keys)
      return (void)++stats_.rejected;
    for (std::uint32_t b : m.buckets)
      if (b >= t.buckets()) return (void)++stats_.rejected;
    merge_entries(from, m.range, m.entries);
    detail::repl::ae_pull reply{m.session, m.range, entries_of(m.range, from, m.buckets, t)};
    stats_.ae_keys_sent += reply.entries.size();
    send(from, reply);
  }

  void handle(node_id from, const detail::repl::ae_pull& m, time_point) {
    if (!session_ || session_->id != m.session || session_->peer != from || session_->range != m.range)
      return;
    if (m.entries.size() > config_.ae_max_keys) return (void)++stats_.rejected;
    merge_entries(from, m.range, m.entries);
    session_.reset();
  }

  // ---- tombstone collection ----

  void collect_garbage(time_point now) {
    for (auto it = tombs_.begin(); it != tombs_.end();) {
      if (!it->second.settled_at || *it->second.settled_at + config_.tombstone_grace > now) {
        ++it;
        continue;
      }
      const std::string key = it->first;
      it = tombs_.erase(it);
      auto e = store_.get(key);
      if (!e || e->empty()) continue;
      bool all_tombs = true;
      for (const versioned_value& v : e->siblings()) all_tombs = all_tombs && v.tombstone;
      if (!all_tombs) continue;
      versioned_entry marker = *e;
      marker.clear_siblings();
      if (auto changed = store_.merge(key, marker); changed && *changed) {
        ++stats_.tombstones_collected;
        markers_[key] = now;
      }
    }
    // Markers left by collection (or found after a restart) expire after marker_ttl.
    std::vector<std::string> found;
    for (std::uint32_t r = 0; r < ranges(); ++r) {
      store_.for_each_in_range(range_begin(r), range_end(r),
                               [&](std::string_view key, const versioned_entry& e) {
                                 if (e.empty() && !markers_.contains(std::string(key)))
                                   found.emplace_back(key);
                               });
    }
    for (auto& k : found) markers_.emplace(std::move(k), now);
    for (auto it = markers_.begin(); it != markers_.end();) {
      if (it->second + config_.marker_ttl > now) {
        ++it;
        continue;
      }
      auto e = store_.get(it->first);
      if (e && e->empty()) {
        store_.remove(it->first);
        ++stats_.markers_removed;
      }
      it = markers_.erase(it);
    }
  }

  node_id self_;
  replica_config config_;
  ring<node_id> ring_;
  Storage& store_;
  hint_store& hints_;
  detail::repl::codec codec_;
  replica_outbox out_;
  replica_stats stats_;
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
  std::set<std::pair<node_id, std::uint64_t>> seen_forwards_;  // bounded by max_pending, oldest dropped
  std::deque<std::pair<node_id, std::uint64_t>> seen_order_;
};

}  // namespace dhtkit

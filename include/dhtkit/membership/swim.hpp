// SWIM membership and failure detection with Lifeguard's refinements.
//
// basic_swim<Address> is one member's view of a group: which members exist,
// at which address, and whether each is alive, suspected, dead or has left.
// It is the protocol of Das, Gupta and Motivala (DSN 2002) as memberlist
// implements it: every protocol period a member pings one other member
// (round-robin over a list reshuffled on every pass); if no ack comes within
// the probe timeout it asks k random members to ping the target for it
// (ping-req); if still nothing, it suspects the target, and a suspect that
// does not refute (by raising its own incarnation number) within the
// suspicion timeout is declared dead. Updates ride piggyback on pings and acks
// (and on small gossip messages while any are pending), each retransmitted at
// most lambda x log N times; a periodic push-pull exchanges full state with
// one random member, which is also how a node joins. Lifeguard (Dadgar et al.
// 2017) adds local health (a member that misses acks slows its own probing),
// a suspicion timeout that shrinks with independent confirmations, nacks from
// ping-req helpers and the buddy system; each is a switch in swim_config.
//
// The core does no I/O (DESIGN.md) and has the shape every dhtkit core has
// (driver/protocol_core.hpp): the driver hands it received bytes and the
// time, calls tick() at next_wakeup(), and sends the messages and reports the
// events it finds in the outbox (sim::core_driver and asio_driver do all of
// it). Randomness comes from the seed. Addresses are any regular, hashable,
// cereal-serializable type: sim::endpoint in the simulator, dhtkit::endpoint
// on sockets.
//
//   using swim = dhtkit::membership::basic_swim<dhtkit::endpoint>;
//   const auto self = dhtkit::endpoint::loopback_v4(7946);
//   swim node(dhtkit::node_id::from_name("node-a"), self, dhtkit::membership::swim_config::lan(),
//             /*seed=*/42);
//   dhtkit::time_point now{};
//   const dhtkit::endpoint seeds[] = {dhtkit::endpoint::loopback_v4(7947)};
//   std::error_code ec = node.join(seeds, now);   // sends a push-pull to the seed
//   auto out = node.take_outbox();
//   std::size_t bytes = 0;
//   for (const auto& m : out.messages) bytes += m.bytes.size();  // transport.send(m.to, m.bytes)
//   for (const auto& e : out.events) std::printf("%s\n", to_string(e.kind).data());
//   if (auto wake = node.next_wakeup()) node.tick(now = *wake);  // and node.receive(from, bytes, now)
#pragma once

#include <algorithm>
#include <cassert>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

#include "dhtkit/core/error.hpp"
#include "dhtkit/core/node_id.hpp"
#include "dhtkit/core/random.hpp"
#include "dhtkit/core/time.hpp"
#include "dhtkit/driver/protocol_core.hpp"
#include "dhtkit/membership/config.hpp"
#include "dhtkit/membership/detail/broadcast_queue.hpp"
#include "dhtkit/membership/detail/formulas.hpp"
#include "dhtkit/membership/detail/messages.hpp"
#include "dhtkit/transport/wire.hpp"
#include "dhtkit/transport/wire_tags.hpp"

namespace dhtkit::membership {

enum class member_state : std::uint8_t { alive = 0, suspect = 1, dead = 2, left = 3 };

inline std::string_view to_string(member_state s) noexcept {
  switch (s) {
    case member_state::alive:
      return "alive";
    case member_state::suspect:
      return "suspect";
    case member_state::dead:
      return "dead";
    case member_state::left:
      return "left";
  }
  return "?";
}

// What a member looks like from here.
template <class Address>
struct member {
  node_id id{};
  Address address{};
  std::uint32_t incarnation = 0;
  member_state state = member_state::alive;
  std::string metadata;
  time_point state_changed{};  // when this node last saw the state change
};

enum class event_kind : std::uint8_t {
  joined,   // a new member, or one that was dead or left and came back
  suspect,  // an alive member became suspected
  alive,    // a suspected member refuted and is alive again
  dead,     // declared dead (by this node's suspicion timeout or by gossip)
  left,     // left voluntarily
  updated,  // an alive member changed its metadata
};

inline std::string_view to_string(event_kind k) noexcept {
  switch (k) {
    case event_kind::joined:
      return "joined";
    case event_kind::suspect:
      return "suspect";
    case event_kind::alive:
      return "alive";
    case event_kind::dead:
      return "dead";
    case event_kind::left:
      return "left";
    case event_kind::updated:
      return "updated";
  }
  return "?";
}

template <class Address>
struct member_event {
  event_kind kind = event_kind::joined;
  node_id id{};
  Address address{};
  std::uint32_t incarnation = 0;
  time_point at{};
};

// What the driver drains after every call: datagrams to send (messages, from
// message_outbox), events to report.
template <class Address>
struct swim_outbox : message_outbox<Address> {
  std::vector<member_event<Address>> events;
  bool empty() const noexcept { return this->messages.empty() && events.empty(); }
  void clear() noexcept {
    this->messages.clear();
    events.clear();
  }
};

// Counters over the core's lifetime. From message_stats: messages_sent (every
// message put in the outbox), messages_received, rejected (did not decode, or
// came from our own id / id 0) and outbox_dropped (messages or events beyond
// max_outbox_messages).
struct swim_stats : message_stats {
  std::uint64_t bytes_sent = 0;
  std::uint64_t pings_sent = 0;  // direct probes and helpers' pings
  std::uint64_t acks_sent = 0;
  std::uint64_t ping_reqs_sent = 0;
  std::uint64_t nacks_sent = 0;
  std::uint64_t gossip_sent = 0;     // standalone gossip messages
  std::uint64_t push_pull_sent = 0;  // push-pull datagrams (a state may take several)
  std::uint64_t rejected_updates =
      0;                              // failed validation (state, id, address, incarnation, address conflict)
  std::uint64_t stale_updates = 0;    // older than what we know (normal under gossip)
  std::uint64_t rejected_full = 0;    // a new member while max_members are known
  std::uint64_t unexpected_acks = 0;  // acks and nacks that match no probe or relay
  std::uint64_t probes = 0;
  std::uint64_t probe_failures = 0;      // probes that ended in a suspicion
  std::uint64_t refutations = 0;         // times this node raised its incarnation to refute
  std::uint64_t direct_refutations = 0;  // our alive sent straight back to a sender that accused us
  std::uint64_t relays_refused = 0;      // ping-req beyond max_pending_relays
  std::uint64_t push_pull_refused = 0;   // replies beyond max_push_pull_replies
};

template <class Address>
class basic_swim {
  static_assert(std::regular<Address>, "dhtkit::membership::basic_swim: Address must be a regular type");
  static_assert(
      requires(const Address& a) { std::hash<Address>{}(a); },
      "dhtkit::membership::basic_swim: Address needs a std::hash specialization");

 public:
  using address_type = Address;
  using member_type = member<Address>;
  using event_type = member_event<Address>;
  using outbox_type = swim_outbox<Address>;
  // SWIM's messages use the membership range of wire tags (wire_tags.hpp).
  static constexpr wire::tag_range wire_tags = wire::tags::membership;

  // `self` must be unique in the group and not node_id{0}. Throws
  // std::invalid_argument for an invalid configuration or arguments.
  basic_swim(node_id self, Address address, swim_config config, std::uint64_t seed, std::string metadata = {})
      : config_((config.validate(), config)),
        codec_(wire_limits{config_.max_message_size, config_.max_metadata_bytes, config_.max_members, 16}),
        rng_(seed),
        awareness_(config_.awareness_max_multiplier),
        queue_(config_.max_members) {
    if (self.value == 0) throw std::invalid_argument("dhtkit::membership::basic_swim: node_id 0 is reserved");
    if (address == Address{})
      throw std::invalid_argument("dhtkit::membership::basic_swim: the address must not be a default value");
    if (metadata.size() > config_.max_metadata_bytes)
      throw std::invalid_argument("dhtkit::membership::basic_swim: metadata larger than max_metadata_bytes");
    members_.push_back(record{self, address, 0, member_state::alive, std::move(metadata), time_point{}});
    index_.emplace(self, 0);
    counts_[static_cast<std::size_t>(member_state::alive)] = 1;
    // The smallest update (empty metadata) tells the queue when nothing else fits.
    queue_.set_min_size(detail::encoded_size(update{self, address, 0, 0, self, {}}, scratch_));
  }

  // ---- inputs -------------------------------------------------------------

  // One received message. Bad bytes or bad content are counted and reported
  // as an error value; the state is unchanged by whatever failed validation.
  std::error_code receive(const Address& from, std::span<const std::byte> bytes, time_point now) {
    auto env = wire::decode_envelope(bytes, codec_.limits());
    if (!env) {
      // Counted as the envelope overload counts a message it cannot decode.
      start(now);
      ++stats_.messages_received;
      ++stats_.rejected;
      return env.error();
    }
    return receive(from, *env, now);
  }

  // One received message whose envelope a dispatcher has already checked
  // (wire::decode_envelope with limits no looser than this core's): only the
  // payload is decoded here.
  std::error_code receive(const Address& from, const wire::envelope& env, time_point now) {
    start(now);
    ++stats_.messages_received;
    auto decoded = codec_.decode(env);
    if (!decoded) {
      ++stats_.rejected;
      return decoded.error();
    }
    const node_id sender = decoded->sender;
    if (sender.value == 0 || sender == self_id() || from == Address{}) {
      ++stats_.rejected;
      return errc::not_a_member;
    }
    accused_ = false;
    const std::error_code ec =
        std::visit([&](auto& msg) { return handle(sender, from, msg, now); }, decoded->message);
    if (accused_ && !leaving_ && config_.buddy_system) {
      // The other half of the buddy system (add_buddy): the sender holds a
      // suspicion (or death) of us that our refutation has not reached, so it
      // is answered directly rather than left to gossip (an ack to a ping
      // already carried the answer and cleared the flag). Bounded per period,
      // so a flood of accusations cannot make us send without limit.
      if (now >= refutes_reset_at_) {
        refutes_reset_at_ = now + config_.probe_interval;
        refutes_left_ = config_.max_direct_refutations;
      }
      if (refutes_left_ > 0) {
        --refutes_left_;
        ++stats_.direct_refutations;
        send(from, gossip_msg{{make_update(self(), self_id())}});
      }
    }
    accused_ = false;
    return ec;
  }

  // Runs everything due at or before `now`. Call it at next_wakeup() (calling
  // it more often is correct, but every tick restarts the gossip period when
  // nothing is pending, so extra ticks shift when gossip goes out).
  void tick(time_point now) {
    start(now);
    expire_suspicions(now);
    if (probe_.active) {
      if (!probe_.acked && !probe_.indirect_sent && now >= probe_.direct_deadline) send_ping_reqs(now);
      if (now >= probe_.end) finish_probe(now);
    }
    if (!leaving_ && now >= next_probe_at_) start_probe(now);
    expire_relays(now);
    if (now >= gossip_at_) {
      if (!queue_.empty()) send_gossip(now);
      gossip_at_ = now + config_.gossip_interval;
    }
    if (now >= push_pull_at_) {
      push_pull_at_ = now + detail::push_pull_scale(config_.push_pull_interval, live_count());
      if (!leaving_) {
        if (auto peer = pick_one([](const record& m) { return is_live(m.state); })) {
          send_state(members_[*peer].address, push_pull_msg::want_reply, now);
        }
      }
    }
    if (now >= reconnect_at_) {
      reconnect_at_ = now + config_.reconnect_interval;
      reap(now);
      if (!leaving_) {
        if (auto peer = pick_one([](const record& m) { return m.state == member_state::dead; })) {
          send_state(members_[*peer].address, push_pull_msg::want_reply, now);
        }
      }
    }
    if (joining_) {
      if (live_count() > 1) {
        joining_ = false;
      } else if (now >= join_retry_at_) {
        join_retry_at_ = now + config_.join_retry_interval;
        for (const Address& seed : seeds_)
          send_state(seed, push_pull_msg::want_reply | push_pull_msg::join, now);
      }
    }
  }

  // When tick() next has something to do: never nullopt, since push-pull and
  // reconnect are always scheduled (before the first call into the core it
  // is the epoch: the first tick starts the timers).
  std::optional<time_point> next_wakeup() const noexcept {
    time_point t = push_pull_at_;
    t = std::min(t, reconnect_at_);
    if (!leaving_) t = std::min(t, next_probe_at_);
    if (probe_.active) {
      if (!probe_.acked && !probe_.indirect_sent) t = std::min(t, probe_.direct_deadline);
      t = std::min(t, probe_.end);
    }
    for (const auto& [id, s] : suspicions_) t = std::min(t, s.deadline);
    for (const relay& r : relays_) t = std::min(t, r.nack_sent ? r.expire : r.nack_at);
    if (!queue_.empty()) t = std::min(t, gossip_at_);
    if (joining_) t = std::min(t, join_retry_at_);
    return t;
  }

  // Asks each seed for its full state (and sends ours); repeated every
  // join_retry_interval until some other member is known. At most 64 seeds.
  std::error_code join(std::span<const Address> seeds, time_point now) {
    start(now);
    if (leaving_) return errc::shut_down;
    if (seeds.empty() || seeds.size() > 64) return errc::invalid_argument;
    seeds_.clear();
    for (const Address& s : seeds) {
      if (s == Address{}) return errc::invalid_argument;
      if (s != self().address) seeds_.push_back(s);
    }
    if (seeds_.empty()) return {};  // we are the first member
    joining_ = true;
    join_retry_at_ = now + config_.join_retry_interval;
    for (const Address& seed : seeds_) send_state(seed, push_pull_msg::want_reply | push_pull_msg::join, now);
    return {};
  }

  // Voluntary leave: tells the group (gossip), then stops probing. The driver
  // may close its socket once leave_done() (or after a grace period).
  std::error_code leave(time_point now) {
    start(now);
    if (leaving_) return errc::shut_down;
    leaving_ = true;
    probe_.active = false;
    record& me = self();
    ++me.incarnation;
    set_state(me, member_state::left, now);
    enqueue(make_update(me, me.id));
    send_gossip(now);
    return {};
  }
  // True once our leave has been sent its full number of retransmissions.
  bool leave_done() const { return leaving_ && !queue_.contains(self_id()); }

  // Replaces this node's metadata and announces it (raises our incarnation).
  std::error_code set_metadata(std::string metadata, time_point now) {
    start(now);
    if (leaving_) return errc::shut_down;
    if (metadata.size() > config_.max_metadata_bytes) return errc::limit_exceeded;
    record& me = self();
    me.metadata = std::move(metadata);
    ++me.incarnation;
    enqueue(make_update(me, me.id));
    return {};
  }

  // ---- outputs ------------------------------------------------------------

  outbox_type& outbox() noexcept { return outbox_; }
  // Moves the pending messages and events out.
  outbox_type take_outbox() {
    outbox_type out = std::move(outbox_);
    outbox_.clear();
    return out;
  }

  // ---- observation --------------------------------------------------------

  node_id id() const noexcept { return self_id(); }
  const Address& address() const noexcept { return members_[0].address; }
  std::uint32_t incarnation() const noexcept { return members_[0].incarnation; }
  const swim_config& config() const noexcept { return config_; }
  const swim_stats& stats() const noexcept { return stats_; }
  // Lifeguard's local health score, 0 (healthy) .. awareness_max_multiplier - 1.
  int local_health() const noexcept { return awareness_.score(); }
  bool is_leaving() const noexcept { return leaving_; }

  // Members known in any state, self included.
  std::size_t size() const noexcept { return members_.size(); }
  std::size_t count(member_state s) const noexcept { return counts_[static_cast<std::size_t>(s)]; }
  // Alive and suspected members, self included.
  std::size_t live_count() const noexcept {
    return count(member_state::alive) + count(member_state::suspect);
  }

  std::optional<member_type> find(node_id id) const {
    auto it = index_.find(id);
    if (it == index_.end()) return std::nullopt;
    return to_member(members_[it->second]);
  }
  std::optional<member_state> state_of(node_id id) const {
    auto it = index_.find(id);
    if (it == index_.end()) return std::nullopt;
    return members_[it->second].state;
  }
  std::vector<member_type> members() const {
    std::vector<member_type> out;
    out.reserve(members_.size());
    for (const record& r : members_) out.push_back(to_member(r));
    return out;
  }
  // Checks the internal invariants (index, counts, suspicions); for tests.
  bool check_invariants() const {
    std::size_t counts[4] = {};
    if (members_.empty() || members_[0].id != self_id()) return false;
    for (std::size_t i = 0; i < members_.size(); ++i) {
      auto it = index_.find(members_[i].id);
      if (it == index_.end() || it->second != i) return false;
      ++counts[static_cast<std::size_t>(members_[i].state)];
      if (members_[i].metadata.size() > config_.max_metadata_bytes) return false;
    }
    if (index_.size() != members_.size() || members_.size() > config_.max_members) return false;
    for (std::size_t s = 0; s < 4; ++s)
      if (counts[s] != counts_[s]) return false;
    for (const auto& [id, s] : suspicions_) {
      auto it = index_.find(id);
      if (it == index_.end() || members_[it->second].state != member_state::suspect) return false;
    }
    return counts_[1] == suspicions_.size() + (self().state == member_state::suspect ? 1 : 0) &&
           relays_.size() <= config_.max_pending_relays &&
           outbox_.messages.size() <= config_.max_outbox_messages;
  }

 private:
  using update = detail::member_update<Address>;
  using ping_msg = detail::ping<Address>;
  using ping_req_msg = detail::ping_req<Address>;
  using ack_msg = detail::ack<Address>;
  using nack_msg = detail::nack;
  using gossip_msg = detail::gossip<Address>;
  using push_pull_msg = detail::push_pull<Address>;

  struct record {
    node_id id{};
    Address address{};
    std::uint32_t incarnation = 0;
    member_state state = member_state::alive;
    std::string metadata;
    time_point state_changed{};
  };

  struct suspicion {
    time_point start{};
    duration min{}, max{};
    std::size_t k = 0;                // confirmations that shrink the timeout to min
    std::vector<node_id> confirmers;  // distinct accusers after the first, at most k
    node_id first{};
    time_point deadline{};
  };

  struct probe {
    bool active = false;
    bool acked = false;
    bool indirect_sent = false;
    node_id target{};
    std::uint64_t seq = 0;
    time_point direct_deadline{};
    time_point end{};
    std::vector<node_id> helpers;
    std::vector<bool> nacked;
  };

  struct relay {
    std::uint64_t our_seq = 0;
    std::uint64_t origin_seq = 0;
    Address origin{};
    node_id target{};
    time_point nack_at{};
    time_point expire{};
    bool nack_sent = false;
  };

  static constexpr bool is_live(member_state s) noexcept {
    return s == member_state::alive || s == member_state::suspect;
  }

  node_id self_id() const noexcept { return members_[0].id; }
  record& self() noexcept { return members_[0]; }
  const record& self() const noexcept { return members_[0]; }

  record* find_record(node_id id) {
    auto it = index_.find(id);
    return it == index_.end() ? nullptr : &members_[it->second];
  }

  static member_type to_member(const record& r) {
    return member_type{r.id, r.address, r.incarnation, r.state, r.metadata, r.state_changed};
  }

  void start(time_point now) {
    if (started_) return;
    started_ = true;
    // Random phases, so members started together do not probe in lockstep.
    next_probe_at_ = now + jitter(config_.probe_interval);
    gossip_at_ = now;
    push_pull_at_ = now + config_.push_pull_interval + jitter(config_.push_pull_interval);
    reconnect_at_ = now + config_.reconnect_interval + jitter(config_.reconnect_interval);
    self().state_changed = now;
  }

  duration jitter(duration upto) { return duration(static_cast<duration::rep>(rng_.below(upto.count()))); }

  void set_state(record& m, member_state s, time_point now) {
    --counts_[static_cast<std::size_t>(m.state)];
    ++counts_[static_cast<std::size_t>(s)];
    m.state = s;
    m.state_changed = now;
  }

  void emit(event_kind kind, const record& m, time_point now) {
    if (outbox_.events.size() >= config_.max_outbox_messages) {
      ++stats_.outbox_dropped;
      return;
    }
    outbox_.events.push_back(event_type{kind, m.id, m.address, m.incarnation, now});
  }

  static update make_update(const record& m, node_id from) {
    update u{m.id, m.address, m.incarnation, static_cast<std::uint8_t>(m.state), from, {}};
    if (m.state == member_state::alive) u.metadata = m.metadata;
    return u;
  }

  void enqueue(update u) {
    const node_id subject = u.id;
    const std::size_t size = detail::encoded_size(u, scratch_);
    queue_.push(subject, std::move(u), size);
  }

  std::uint32_t retransmit_limit() const noexcept {
    return std::max<std::uint32_t>(1, detail::retransmit_limit(config_.retransmit_multiplier, live_count()));
  }

  // Bytes left for piggybacked updates in a message whose other fields are `msg`'s.
  template <class Msg>
  std::size_t gossip_budget(const Msg& msg) {
    const std::size_t base = wire::header_size + 1 + detail::encoded_size(msg, scratch_);
    return base >= config_.max_message_size ? 0 : config_.max_message_size - base;
  }

  template <class Msg>
  void send(const Address& to, const Msg& msg) {
    if (outbox_.messages.size() >= config_.max_outbox_messages) {
      ++stats_.outbox_dropped;
      return;
    }
    auto bytes = codec_.encode(msg, self_id());
    if (!bytes) {
      // Only reachable if the packing arithmetic were wrong: count, do not send.
      assert(false && "swim: encoded message over the configured limits");
      ++stats_.outbox_dropped;
      return;
    }
    ++stats_.messages_sent;
    stats_.bytes_sent += bytes->size();
    outbox_.messages.push_back(dhtkit::outgoing_message<Address>{to, std::move(*bytes)});
  }

  // Lifeguard's buddy system: a member we suspect is told so first, so it can
  // refute. memberlist does this on probes only; here every message with room
  // for updates carries it, because the refutation it provokes comes straight
  // back to us -- the one member that needs it (a refutation gossip missed is
  // what turns a suspicion into a false DEAD). Returns the budget left.
  std::size_t add_buddy(node_id to, std::size_t budget, std::vector<update>& out) {
    if (!config_.buddy_system) return budget;
    const record* m = find_record(to);
    if (m == nullptr || m->state != member_state::suspect) return budget;
    update u = make_update(*m, self_id());
    const std::size_t size = detail::encoded_size(u, scratch_);
    if (size > budget) return budget;
    out.push_back(std::move(u));
    return budget - size;
  }

  // ---- probing ------------------------------------------------------------

  std::optional<node_id> next_probe_target() {
    for (std::size_t attempts = 0; attempts <= probe_order_.size() + 1; ++attempts) {
      if (probe_pos_ >= probe_order_.size()) {
        probe_order_.clear();
        for (std::size_t i = 1; i < members_.size(); ++i)
          if (is_live(members_[i].state)) probe_order_.push_back(members_[i].id);
        for (std::size_t i = probe_order_.size(); i > 1; --i)
          std::swap(probe_order_[i - 1], probe_order_[rng_.below(i)]);
        probe_pos_ = 0;
        if (probe_order_.empty()) return std::nullopt;
      }
      const node_id id = probe_order_[probe_pos_++];
      if (const record* m = find_record(id); m != nullptr && m->id != self_id() && is_live(m->state))
        return id;
    }
    return std::nullopt;
  }

  void start_probe(time_point now) {
    if (probe_.active) finish_probe(now);
    const duration interval =
        config_.local_health ? awareness_.scale(config_.probe_interval) : config_.probe_interval;
    next_probe_at_ = now + interval;
    const auto target = next_probe_target();
    if (!target) return;
    const record& m = *find_record(*target);
    ++stats_.probes;
    probe_ = probe{};
    probe_.active = true;
    probe_.target = m.id;
    probe_.seq = rng_.next();
    probe_.direct_deadline =
        now + (config_.local_health ? awareness_.scale(config_.probe_timeout) : config_.probe_timeout);
    probe_.end = now + interval;
    ping_msg ping{probe_.seq, m.id, {}};
    queue_.take(add_buddy(m.id, gossip_budget(ping), ping.gossip), retransmit_limit(), ping.gossip);
    ++stats_.pings_sent;
    send(m.address, ping);
  }

  void send_ping_reqs(time_point now) {
    probe_.indirect_sent = true;
    const record* target = find_record(probe_.target);
    if (target == nullptr) return;
    const node_id target_id = target->id;
    picked_.clear();
    pick_random(config_.indirect_checks, picked_,
                [&](const record& m) { return m.state == member_state::alive && m.id != target_id; });
    for (std::size_t i : picked_) {
      const record& helper = members_[i];
      probe_.helpers.push_back(helper.id);
      probe_.nacked.push_back(false);
      ping_req_msg req{probe_.seq, target->id, target->address, {}};
      queue_.take(gossip_budget(req), retransmit_limit(), req.gossip);
      ++stats_.ping_reqs_sent;
      send(helper.address, req);
    }
    (void)now;
  }

  void finish_probe(time_point now) {
    probe_.active = false;
    if (probe_.acked) return;
    if (!probe_.indirect_sent) send_ping_reqs(now);  // a stretched tick skipped the deadline
    if (config_.local_health) {
      // Lifeguard: missing nacks mean the problem may be ours, not the target's.
      if (config_.nacks && !probe_.helpers.empty()) {
        const auto nacks = static_cast<int>(std::count(probe_.nacked.begin(), probe_.nacked.end(), true));
        awareness_.apply_delta(static_cast<int>(probe_.helpers.size()) - nacks);
      } else {
        awareness_.apply_delta(1);
      }
    }
    record* m = find_record(probe_.target);
    if (m == nullptr || !is_live(m->state)) return;
    ++stats_.probe_failures;
    on_suspect(update{m->id,
                      m->address,
                      m->incarnation,
                      static_cast<std::uint8_t>(member_state::suspect),
                      self_id(),
                      {}},
               now);
  }

  void expire_relays(time_point now) {
    for (std::size_t i = 0; i < relays_.size();) {
      relay& r = relays_[i];
      if (!r.nack_sent && now >= r.nack_at) {
        r.nack_sent = true;
        ++stats_.nacks_sent;
        send(r.origin, nack_msg{r.origin_seq});
      }
      if (now >= r.expire) {
        relays_[i] = std::move(relays_.back());
        relays_.pop_back();
      } else {
        ++i;
      }
    }
  }

  // ---- suspicion ----------------------------------------------------------

  void start_suspicion(const record& m, node_id from, time_point now) {
    suspicion s;
    s.start = now;
    const std::size_t n = live_count();
    s.min = detail::suspicion_min_timeout(config_.suspicion_multiplier, n, config_.probe_interval);
    if (config_.dynamic_suspicion) {
      s.max = s.min * static_cast<duration::rep>(config_.suspicion_max_timeout_multiplier);
      // memberlist: k = multiplier - 2 confirmations expected, none in a tiny group.
      s.k = config_.suspicion_multiplier > 2 ? config_.suspicion_multiplier - 2 : 0;
      if (n < s.k + 2) s.k = 0;
    } else {
      s.max = s.min;
      s.k = 0;
    }
    s.first = from;
    s.deadline = now + detail::suspicion_timeout(s.min, s.max, 0, s.k);
    suspicions_[m.id] = std::move(s);
  }

  // True if `from` is a new independent confirmation.
  bool confirm(suspicion& s, node_id from) {
    if (s.k == 0 || s.confirmers.size() >= s.k || from == s.first) return false;
    if (std::find(s.confirmers.begin(), s.confirmers.end(), from) != s.confirmers.end()) return false;
    s.confirmers.push_back(from);
    s.deadline = s.start + detail::suspicion_timeout(s.min, s.max, s.confirmers.size(), s.k);
    return true;
  }

  void expire_suspicions(time_point now) {
    expired_.clear();
    for (const auto& [id, s] : suspicions_)
      if (now >= s.deadline) expired_.push_back(id);
    std::sort(expired_.begin(), expired_.end());  // unordered_map order must not leak into the run
    for (node_id id : expired_) {
      record* m = find_record(id);
      assert(m != nullptr && m->state == member_state::suspect);
      suspicions_.erase(id);
      set_state(*m, member_state::dead, now);
      emit(event_kind::dead, *m, now);
      enqueue(make_update(*m, self_id()));
    }
  }

  void refute(std::uint32_t accused, time_point now) {
    record& me = self();
    me.incarnation = std::max(me.incarnation, accused) + 1;
    ++stats_.refutations;
    if (config_.local_health) awareness_.apply_delta(1);
    enqueue(make_update(me, me.id));
    (void)now;
  }

  // ---- merging updates ----------------------------------------------------

  bool valid(const update& u) const {
    return u.id.value != 0 && u.state <= detail::max_wire_state && !(u.address == Address{}) &&
           u.incarnation != std::numeric_limits<std::uint32_t>::max() &&
           u.metadata.size() <= config_.max_metadata_bytes;
  }

  // False (and counted) when u jumps the incarnation implausibly far.
  bool plausible(const record& m, const update& u) {
    if (u.incarnation > m.incarnation && u.incarnation - m.incarnation > config_.max_incarnation_jump) {
      ++stats_.rejected_updates;
      return false;
    }
    return true;
  }

  void merge(const update& u, bool from_push_pull, time_point now) {
    if (!valid(u)) {
      ++stats_.rejected_updates;
      return;
    }
    if (from_push_pull && u.state != static_cast<std::uint8_t>(member_state::alive) && u.id != self_id()) {
      // memberlist's mergeState skips members whose state it already agrees
      // with. A full state is a copy of what its sender heard, not a probe the
      // sender made: counted as a confirmation it would shrink Lifeguard's
      // suspicion timeout (and be re-gossiped as one) with no new evidence.
      if (const record* m = find_record(u.id); m != nullptr && m->state != member_state::alive) return;
    }
    switch (static_cast<detail::wire_state>(u.state)) {
      case detail::wire_state::alive:
        on_alive(u, now);
        break;
      case detail::wire_state::suspect:
        on_suspect(u, now);
        break;
      case detail::wire_state::dead:
        if (from_push_pull) {
          // memberlist: another node's full state saying "dead" only makes us
          // suspect, so the member gets its chance to refute -- otherwise two
          // halves of a healed partition would kill each other.
          update s = u;
          s.state = static_cast<std::uint8_t>(member_state::suspect);
          s.from = self_id();
          on_suspect(s, now);
        } else {
          on_dead(u, now);
        }
        break;
      case detail::wire_state::left:
        on_dead(u, now);
        break;
    }
  }

  void on_alive(const update& u, time_point now) {
    if (u.id == self_id()) {
      // Someone says we are alive with a newer incarnation than ours (our
      // previous life, before a restart): outbid it, or our updates look stale.
      if (!leaving_ && u.incarnation > self().incarnation) {
        if (u.incarnation - self().incarnation > config_.max_incarnation_jump) {
          ++stats_.rejected_updates;
          return;
        }
        refute(u.incarnation, now);
      }
      return;
    }
    record* m = find_record(u.id);
    if (m == nullptr) {
      if (members_.size() >= config_.max_members && !evict_one()) {
        ++stats_.rejected_full;
        return;
      }
      members_.push_back(record{u.id, u.address, u.incarnation, member_state::alive, u.metadata, now});
      index_.emplace(u.id, members_.size() - 1);
      ++counts_[static_cast<std::size_t>(member_state::alive)];
      // SWIM: a new member goes to a random place in the rest of this pass.
      if (probe_order_.size() < 2 * config_.max_members) {
        const std::size_t at = probe_pos_ + rng_.below(probe_order_.size() - probe_pos_ + 1);
        probe_order_.insert(probe_order_.begin() + static_cast<std::ptrdiff_t>(at), u.id);
      }
      emit(event_kind::joined, members_.back(), now);
      enqueue(u);
      return;
    }
    if (u.incarnation <= m->incarnation) {
      ++stats_.stale_updates;
      return;
    }
    if (!plausible(*m, u)) return;
    if (is_live(m->state) && u.address != m->address) {
      // A live member cannot move: someone else claims its id (memberlist's
      // address conflict). A dead or left one may come back elsewhere.
      ++stats_.rejected_updates;
      return;
    }
    const member_state before = m->state;
    const bool meta_changed = m->metadata != u.metadata;
    m->incarnation = u.incarnation;
    m->address = u.address;
    m->metadata = u.metadata;
    if (before != member_state::alive) set_state(*m, member_state::alive, now);
    suspicions_.erase(m->id);
    if (before == member_state::suspect) {
      emit(event_kind::alive, *m, now);
    } else if (before == member_state::dead || before == member_state::left) {
      emit(event_kind::joined, *m, now);
    } else if (meta_changed) {
      emit(event_kind::updated, *m, now);
    }
    enqueue(u);
  }

  // An accusation of ourselves older than our incarnation means our
  // refutation has not reached everyone: send it again (without raising).
  void rebroadcast_self() {
    accused_ = true;
    if (!leaving_ && !queue_.contains(self_id())) enqueue(make_update(self(), self_id()));
  }

  void on_suspect(const update& u, time_point now) {
    record* m = find_record(u.id);
    if (m == nullptr) return;  // nothing to suspect: we never saw it alive
    if (u.incarnation < m->incarnation) {
      ++stats_.stale_updates;
      if (m->id == self_id()) rebroadcast_self();
      return;
    }
    if (!plausible(*m, u)) return;
    if (m->id == self_id()) {
      if (!leaving_) refute(u.incarnation, now);
      accused_ = true;
      return;
    }
    if (auto it = suspicions_.find(m->id); it != suspicions_.end()) {
      if (u.incarnation == m->incarnation && confirm(it->second, u.from)) enqueue(u);
      return;
    }
    if (m->state != member_state::alive) return;
    m->incarnation = u.incarnation;
    set_state(*m, member_state::suspect, now);
    start_suspicion(*m, u.from, now);
    emit(event_kind::suspect, *m, now);
    enqueue(update{m->id, m->address, m->incarnation, u.state, u.from, {}});
  }

  void on_dead(const update& u, time_point now) {
    record* m = find_record(u.id);
    if (m == nullptr) return;
    if (u.incarnation < m->incarnation) {
      ++stats_.stale_updates;
      if (m->id == self_id()) rebroadcast_self();
      return;
    }
    if (!plausible(*m, u)) return;
    if (m->state == member_state::dead || m->state == member_state::left) return;
    if (m->id == self_id()) {
      if (!leaving_) refute(u.incarnation, now);
      accused_ = true;
      return;
    }
    // Only the member itself can leave; "left" said by anyone else is "dead".
    const bool left = u.state == static_cast<std::uint8_t>(member_state::left) && u.from == u.id;
    m->incarnation = u.incarnation;
    suspicions_.erase(m->id);
    set_state(*m, left ? member_state::left : member_state::dead, now);
    emit(left ? event_kind::left : event_kind::dead, *m, now);
    enqueue(update{m->id, m->address, m->incarnation, static_cast<std::uint8_t>(m->state), u.from, {}});
  }

  // Makes room for a new member by forgetting the longest-dead one.
  bool evict_one() {
    std::size_t victim = 0;
    for (std::size_t i = 1; i < members_.size(); ++i) {
      if (is_live(members_[i].state)) continue;
      if (victim == 0 || members_[i].state_changed < members_[victim].state_changed) victim = i;
    }
    if (victim == 0) return false;
    remove(victim);
    return true;
  }

  void remove(std::size_t i) {
    assert(i != 0 && !is_live(members_[i].state));
    --counts_[static_cast<std::size_t>(members_[i].state)];
    queue_.erase(members_[i].id);
    index_.erase(members_[i].id);
    if (i != members_.size() - 1) {
      members_[i] = std::move(members_.back());
      index_[members_[i].id] = i;
    }
    members_.pop_back();
  }

  void reap(time_point now) {
    for (std::size_t i = members_.size(); i-- > 1;) {
      if (!is_live(members_[i].state) && now - members_[i].state_changed >= config_.dead_retention) remove(i);
    }
  }

  // ---- random choice ------------------------------------------------------

  // Appends up to k distinct member indices (never self) satisfying `ok`.
  // Rejection sampling keeps a pick O(k) in large groups; small groups (or
  // bad luck) fall back to a scan.
  template <class Pred>
  void pick_random(std::size_t k, std::vector<std::size_t>& out, Pred ok) {
    const std::size_t n = members_.size();
    if (k == 0 || n < 2) return;
    if (n > 4 * k + 16) {
      for (std::size_t attempt = 0; attempt < 8 * k + 16 && out.size() < k; ++attempt) {
        const std::size_t i = 1 + rng_.below(n - 1);
        if (ok(members_[i]) && std::find(out.begin(), out.end(), i) == out.end()) out.push_back(i);
      }
      if (out.size() == k) return;
    }
    candidates_.clear();
    for (std::size_t i = 1; i < n; ++i)
      if (ok(members_[i]) && std::find(out.begin(), out.end(), i) == out.end()) candidates_.push_back(i);
    while (out.size() < k && !candidates_.empty()) {
      const std::size_t j = rng_.below(candidates_.size());
      out.push_back(candidates_[j]);
      candidates_[j] = candidates_.back();
      candidates_.pop_back();
    }
  }

  template <class Pred>
  std::optional<std::size_t> pick_one(Pred ok) {
    picked_.clear();
    pick_random(1, picked_, ok);
    if (picked_.empty()) return std::nullopt;
    return picked_[0];
  }

  // ---- dissemination ------------------------------------------------------

  void send_gossip(time_point now) {
    picked_.clear();
    pick_random(config_.gossip_nodes, picked_, [&](const record& m) {
      return is_live(m.state) ||
             (m.state == member_state::dead && now - m.state_changed < config_.gossip_to_the_dead_time);
    });
    for (std::size_t i : picked_) {
      if (queue_.empty()) break;
      gossip_msg g;
      queue_.take(add_buddy(members_[i].id, gossip_budget(g), g.updates), retransmit_limit(), g.updates);
      if (g.updates.empty()) break;
      ++stats_.gossip_sent;
      send(members_[i].address, g);
    }
  }

  // Our whole member list, in as many datagrams as it takes.
  void send_state(const Address& to, std::uint8_t flags, time_point now) {
    (void)now;
    push_pull_msg msg;
    msg.flags = flags;
    const std::size_t budget = gossip_budget(msg);
    std::size_t used = 0;
    for (const record& m : members_) {
      update u =
          make_update(m, m.state == member_state::alive || m.state == member_state::left ? m.id : self_id());
      if (m.state == member_state::suspect) {
        // Name the member whose probe failed, not us: a receiver that starts
        // suspecting from this and gossips it on must not make us look like
        // an independent accuser.
        if (auto it = suspicions_.find(m.id); it != suspicions_.end()) u.from = it->second.first;
      }
      const std::size_t size = detail::encoded_size(u, scratch_);
      if (used + size > budget && !msg.members.empty()) {
        ++stats_.push_pull_sent;
        send(to, msg);
        msg.members.clear();
        msg.flags = 0;  // only the first datagram asks for a reply
        used = 0;
      }
      used += size;
      msg.members.push_back(std::move(u));
    }
    ++stats_.push_pull_sent;
    send(to, msg);
  }

  // ---- message handlers ---------------------------------------------------

  void merge_all(const std::vector<update>& updates, bool from_push_pull, time_point now) {
    for (const update& u : updates) merge(u, from_push_pull, now);
  }

  std::error_code handle(node_id sender, const Address& from, const ping_msg& msg, time_point now) {
    merge_all(msg.gossip, false, now);
    if (msg.target != self_id()) {
      ++stats_.rejected_updates;
      return errc::unknown_node;
    }
    ack_msg reply{msg.seq, {}};
    if (accused_ && !leaving_ && config_.buddy_system) {
      // Lifeguard's buddy system: the ping told us we are suspected; the
      // refutation goes back first, in the ack.
      reply.gossip.push_back(make_update(self(), self_id()));
      accused_ = false;
    }
    queue_.take(add_buddy(sender, gossip_budget(reply), reply.gossip), retransmit_limit(), reply.gossip);
    ++stats_.acks_sent;
    send(from, reply);
    return {};
  }

  std::error_code handle(node_id, const Address& from, const ping_req_msg& msg, time_point now) {
    merge_all(msg.gossip, false, now);
    if (msg.target.value == 0 || msg.target_address == Address{}) {
      ++stats_.rejected_updates;
      return errc::invalid_argument;
    }
    if (msg.target == self_id()) {  // asked to probe ourselves: we are clearly up
      ++stats_.acks_sent;
      send(from, ack_msg{msg.seq, {}});
      return {};
    }
    if (relays_.size() >= config_.max_pending_relays) {
      ++stats_.relays_refused;
      return errc::queue_full;
    }
    relay r;
    r.our_seq = rng_.next();
    r.origin_seq = msg.seq;
    r.origin = from;
    r.target = msg.target;
    // memberlist: the nack goes out at 80 % of the probe timeout, so it
    // arrives before the prober gives up on the indirect round.
    r.nack_at = now + config_.probe_timeout * 4 / 5;
    r.nack_sent = !config_.nacks;
    r.expire = now + config_.probe_interval;
    relays_.push_back(r);
    ping_msg ping{r.our_seq, msg.target, {}};
    queue_.take(add_buddy(msg.target, gossip_budget(ping), ping.gossip), retransmit_limit(), ping.gossip);
    ++stats_.pings_sent;
    send(msg.target_address, ping);
    return {};
  }

  std::error_code handle(node_id sender, const Address&, const ack_msg& msg, time_point now) {
    merge_all(msg.gossip, false, now);
    if (probe_.active && msg.seq == probe_.seq) {
      if (sender == probe_.target) {
        if (!probe_.acked && now <= probe_.direct_deadline && config_.local_health)
          awareness_.apply_delta(-1);
        probe_.acked = true;
        return {};
      }
      if (std::find(probe_.helpers.begin(), probe_.helpers.end(), sender) != probe_.helpers.end()) {
        probe_.acked = true;
        return {};
      }
    }
    for (std::size_t i = 0; i < relays_.size(); ++i) {
      if (relays_[i].our_seq == msg.seq && relays_[i].target == sender) {
        ack_msg forward{relays_[i].origin_seq, {}};
        queue_.take(gossip_budget(forward), retransmit_limit(), forward.gossip);
        ++stats_.acks_sent;
        send(relays_[i].origin, forward);
        relays_[i] = std::move(relays_.back());
        relays_.pop_back();
        return {};
      }
    }
    ++stats_.unexpected_acks;
    return {};
  }

  std::error_code handle(node_id sender, const Address&, const nack_msg& msg, time_point) {
    if (probe_.active && msg.seq == probe_.seq) {
      for (std::size_t i = 0; i < probe_.helpers.size(); ++i) {
        if (probe_.helpers[i] == sender) {
          probe_.nacked[i] = true;
          return {};
        }
      }
    }
    ++stats_.unexpected_acks;
    return {};
  }

  std::error_code handle(node_id, const Address&, const gossip_msg& msg, time_point now) {
    merge_all(msg.updates, false, now);
    return {};
  }

  std::error_code handle(node_id, const Address& from, const push_pull_msg& msg, time_point now) {
    merge_all(msg.members, true, now);
    if ((msg.flags & push_pull_msg::want_reply) != 0) {
      if (now >= replies_reset_at_) {
        replies_reset_at_ = now + config_.probe_interval;
        replies_left_ = config_.max_push_pull_replies;
      }
      if (replies_left_ == 0) {
        ++stats_.push_pull_refused;
        return errc::queue_full;
      }
      --replies_left_;
      send_state(from, 0, now);
    }
    return {};
  }

  swim_config config_;
  detail::swim_codec<Address> codec_;
  random_engine rng_;
  detail::awareness awareness_;
  detail::broadcast_queue<update> queue_;

  std::vector<record> members_;  // [0] is this node
  std::unordered_map<node_id, std::size_t> index_;
  std::size_t counts_[4] = {};
  std::unordered_map<node_id, suspicion> suspicions_;
  std::vector<node_id> probe_order_;
  std::size_t probe_pos_ = 0;
  probe probe_;
  std::vector<relay> relays_;
  std::vector<Address> seeds_;

  bool started_ = false;
  bool joining_ = false;
  bool leaving_ = false;
  time_point next_probe_at_{};
  time_point gossip_at_{};
  time_point push_pull_at_{};
  time_point reconnect_at_{};
  time_point join_retry_at_{};
  time_point replies_reset_at_{};
  std::size_t replies_left_ = 0;
  time_point refutes_reset_at_{};
  std::size_t refutes_left_ = 0;

  outbox_type outbox_;
  swim_stats stats_;
  std::vector<std::byte> scratch_;
  std::vector<std::size_t> picked_;
  std::vector<std::size_t> candidates_;
  std::vector<node_id> expired_;
  bool accused_ = false;  // the message being handled accused us (see receive())
};

}  // namespace dhtkit::membership

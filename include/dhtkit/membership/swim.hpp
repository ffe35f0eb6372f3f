/// @file
/// SWIM membership and failure detection with Lifeguard's refinements.
///
/// basic_swim<Address> is one member's view of a group: which members exist,
/// at which address, and whether each is alive, suspected, dead or has left.
/// It is the protocol of Das, Gupta and Motivala (DSN 2002) as memberlist
/// implements it: every protocol period a member pings one other member
/// (round-robin over a list reshuffled on every pass); if no ack comes within
/// the probe timeout it asks k random members to ping the target for it
/// (ping-req); if still nothing, it suspects the target, and a suspect that
/// does not refute (by raising its own incarnation number) within the
/// suspicion timeout is declared dead. Updates ride piggyback on pings and acks
/// (and on small gossip messages while any are pending), each retransmitted at
/// most lambda x log N times; a periodic push-pull exchanges full state with
/// one random member, which is also how a node joins. Lifeguard (Dadgar et al.
/// 2017) adds local health (a member that misses acks slows its own probing),
/// a suspicion timeout that shrinks with independent confirmations, nacks from
/// ping-req helpers and the buddy system; each is a switch in swim_config.
///
/// The core does no I/O (docs/design.md) and has the shape every dhtkit core has
/// (driver/protocol_core.hpp): the driver hands it received bytes and the
/// time, calls tick() at next_wakeup(), and sends the messages and reports the
/// events it finds in the outbox (sim::core_driver and asio_driver do all of
/// it). Randomness comes from the seed. Addresses are any regular, hashable,
/// cereal-serializable type: sim::endpoint in the simulator, dhtkit::endpoint
/// on sockets.
///
/// @code
/// using swim = dhtkit::membership::basic_swim<dhtkit::endpoint>;
/// const auto self = dhtkit::endpoint::loopback_v4(7946);
/// swim node(dhtkit::node_id::from_name("node-a"), self, dhtkit::membership::swim_config::lan(),
///           /*seed=*/42);
/// dhtkit::time_point now{};
/// const dhtkit::endpoint seeds[] = {dhtkit::endpoint::loopback_v4(7947)};
/// std::error_code ec = node.join(seeds, now);   // sends a push-pull to the seed
/// auto out = node.take_outbox();
/// std::size_t bytes = 0;
/// for (const auto& m : out.messages) bytes += m.bytes.size();  // transport.send(m.to, m.bytes)
/// for (const auto& e : out.events) std::printf("%s\n", to_string(e.kind).data());
/// if (auto wake = node.next_wakeup()) node.tick(now = *wake);  // and node.receive(from, bytes, now)
/// @endcode
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

/// A member's state as SWIM gossips it.
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

/// What a member looks like from here.
template <class Address>
struct member {
  node_id id{};
  Address address{};
  std::uint32_t incarnation = 0;
  member_state state = member_state::alive;
  std::string metadata;
  time_point state_changed{};  ///< when this node last saw the state change
};

/// What changed about a member.
enum class event_kind : std::uint8_t {
  joined,   ///< a new member, or one that was dead or left and came back
  suspect,  ///< an alive member became suspected
  alive,    ///< a suspected member refuted and is alive again
  dead,     ///< declared dead (by this node's suspicion timeout or by gossip)
  left,     ///< left voluntarily
  updated,  ///< an alive member changed its metadata
  /// Another address claims a live member's id (this node's own included):
  /// two processes share one id. The claim is refused (the member keeps the
  /// address known first; about ourselves, we do not refute, which would
  /// fight the legitimate owner); reported at most once per member per
  /// probe_interval.
  conflict,
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
    case event_kind::conflict:
      return "conflict";
  }
  return "?";
}

/// A change in the membership as this node sees it.
template <class Address>
struct member_event {
  event_kind kind = event_kind::joined;
  node_id id{};
  Address address{};
  std::uint32_t incarnation = 0;
  time_point at{};
  /// For a conflict: the address that claims the id (`address` is the one
  /// this node keeps); a default Address for every other kind.
  Address conflict_address{};
};

/// What the driver drains after every call: datagrams to send (messages, from
/// message_outbox), events to report.
template <class Address>
struct swim_outbox : message_outbox<Address> {
  std::vector<member_event<Address>> events;
  bool empty() const noexcept { return this->messages.empty() && events.empty(); }
  void clear() noexcept {
    this->messages.clear();
    events.clear();
  }
};

/// The SWIM core's counters.
///
/// Counters over the core's lifetime. From message_stats: messages_sent (every
/// message put in the outbox), messages_received, rejected (did not decode, or
/// came from our own id / id 0) and outbox_dropped (messages or events beyond
/// max_outbox_messages).
struct swim_stats : message_stats {
  std::uint64_t bytes_sent = 0;
  std::uint64_t pings_sent = 0;  ///< direct probes and helpers' pings
  std::uint64_t acks_sent = 0;
  std::uint64_t ping_reqs_sent = 0;
  std::uint64_t nacks_sent = 0;
  std::uint64_t gossip_sent = 0;     ///< standalone gossip messages
  std::uint64_t push_pull_sent = 0;  ///< push-pull datagrams (a state may take several)
  /// failed validation (state, id, address, incarnation, address conflict)
  std::uint64_t rejected_updates = 0;
  std::uint64_t stale_updates = 0;    ///< older than what we know (normal under gossip)
  std::uint64_t rejected_full = 0;    ///< a new member while max_members are known
  std::uint64_t unexpected_acks = 0;  ///< acks and nacks that match no probe or relay
  std::uint64_t probes = 0;
  std::uint64_t probe_failures = 0;      ///< probes that ended in a suspicion
  std::uint64_t refutations = 0;         ///< times this node raised its incarnation to refute
  std::uint64_t direct_refutations = 0;  ///< our alive sent straight back to a sender that accused us
  std::uint64_t relays_refused = 0;      ///< ping-req beyond max_pending_relays
  std::uint64_t push_pull_refused = 0;   ///< replies beyond max_push_pull_replies
  /// Alive or suspect updates giving a live member's id (ours included)
  /// another address; every one, though conflict events are rate-limited.
  std::uint64_t conflicts = 0;
};

/// SWIM membership with Lifeguard, a protocol core: who is in the group and
/// who has failed (see swim.hpp for the protocol and an example).
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
  /// SWIM's messages use the membership range of wire tags (wire_tags.hpp).
  static constexpr wire::tag_range wire_tags = wire::tags::membership;

  /// `self` must be unique in the group and not node_id{0}. Throws
  /// std::invalid_argument for an invalid configuration or arguments.
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
    members_.push_back(
        record{self, address, 0, member_state::alive, std::move(metadata), time_point{}, time_point{}});
    index_.emplace(self, 0);
    counts_[static_cast<std::size_t>(member_state::alive)] = 1;
    // The smallest update (empty metadata) tells the queue when nothing else fits.
    queue_.set_min_size(detail::encoded_size(update{self, address, 0, 0, self, {}}, scratch_));
  }

  // ---- inputs (bodies in detail/inputs.hpp) ---------------------------------

  /// One received message. Bad bytes or bad content are counted and reported
  /// as an error value; the state is unchanged by whatever failed validation.
  std::error_code receive(const Address& from, std::span<const std::byte> bytes, time_point now);

  /// One received message whose envelope a dispatcher has already checked
  /// (wire::decode_envelope with limits no looser than this core's): only the
  /// payload is decoded here.
  std::error_code receive(const Address& from, const wire::envelope& env, time_point now);

  /// Runs everything due at or before `now`. Call it at next_wakeup() (calling
  /// it more often is correct, but a tick at or after the gossip time restarts
  /// the gossip period even when nothing is pending, so extra ticks shift when
  /// gossip goes out).
  void tick(time_point now);

  /// When tick() next has something to do: never nullopt, since push-pull and
  /// reconnect are always scheduled (before the first call into the core it
  /// is the epoch: the first tick starts the timers).
  std::optional<time_point> next_wakeup() const noexcept;

  /// Asks each seed for its full state (and sends ours); repeated every
  /// join_retry_interval until some other member is known. At most 64 seeds.
  std::error_code join(std::span<const Address> seeds, time_point now);

  /// Voluntary leave: tells the group (gossip), then stops probing. The driver
  /// may close its socket once leave_done() (or after a grace period).
  std::error_code leave(time_point now);
  /// True once our leave has been sent its full number of retransmissions.
  bool leave_done() const { return leaving_ && !queue_.contains(self_id()); }

  /// Replaces this node's metadata and announces it (raises our incarnation).
  std::error_code set_metadata(std::string metadata, time_point now);

  // ---- outputs (bodies in detail/outputs.hpp) -------------------------------

  outbox_type& outbox() noexcept { return outbox_; }
  /// Moves the pending messages and events out.
  outbox_type take_outbox();

  // ---- observation (bodies in detail/observation.hpp) -----------------------

  node_id id() const noexcept { return self_id(); }
  const Address& address() const noexcept { return members_[0].address; }
  std::uint32_t incarnation() const noexcept { return members_[0].incarnation; }
  const swim_config& config() const noexcept { return config_; }
  const swim_stats& stats() const noexcept { return stats_; }
  /// Lifeguard's local health score, 0 (healthy) .. awareness_max_multiplier - 1.
  int local_health() const noexcept { return awareness_.score(); }
  bool is_leaving() const noexcept { return leaving_; }

  /// Members known in any state, self included.
  std::size_t size() const noexcept { return members_.size(); }
  std::size_t count(member_state s) const noexcept { return counts_[static_cast<std::size_t>(s)]; }
  /// Alive and suspected members, self included.
  std::size_t live_count() const noexcept;

  std::optional<member_type> find(node_id id) const;
  std::optional<member_state> state_of(node_id id) const;
  std::vector<member_type> members() const;
  /// Checks the internal invariants (index, counts, suspicions); for tests.
  bool check_invariants() const;

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
    time_point conflict_quiet_until{};  // no conflict event about this member before then
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
  duration jitter(duration upto) { return duration(static_cast<duration::rep>(rng_.below(upto.count()))); }

  // ---- records and output (bodies in detail/observation.hpp, inputs.hpp,
  // merging.hpp and outputs.hpp) ---------------------------------------------
  record* find_record(node_id id);
  static member_type to_member(const record& r);
  void start(time_point now);
  void set_state(record& m, member_state s, time_point now);
  void emit(event_kind kind, const record& m, time_point now, const Address& conflict_address = Address{});
  static update make_update(const record& m, node_id from);
  void enqueue(update u);
  std::uint32_t retransmit_limit() const noexcept;
  template <class Msg>
  std::size_t gossip_budget(const Msg& msg);
  template <class Msg>
  void send(const Address& to, const Msg& msg);
  std::size_t add_buddy(node_id to, std::size_t budget, std::vector<update>& out);

  // ---- probing (bodies in detail/probing.hpp) -------------------------------

  std::optional<node_id> next_probe_target();
  void start_probe(time_point now);
  void send_ping_reqs(time_point now);
  void finish_probe(time_point now);
  void expire_relays(time_point now);

  // ---- suspicion (bodies in detail/suspicion.hpp) ---------------------------

  void start_suspicion(const record& m, node_id from, time_point now);
  bool confirm(suspicion& s, node_id from);
  void expire_suspicions(time_point now);
  void refute(std::uint32_t accused, time_point now);

  // ---- merging updates (bodies in detail/merging.hpp) -----------------------

  bool valid(const update& u) const;
  bool plausible(const record& m, const update& u);
  void merge(const update& u, bool from_push_pull, time_point now);
  void on_conflict(record& m, const Address& claimed, time_point now);
  void on_alive(const update& u, time_point now);
  void rebroadcast_self();
  void on_suspect(const update& u, time_point now);
  void on_dead(const update& u, time_point now);
  bool evict_one();
  void remove(std::size_t i);
  void reap(time_point now);

  // ---- random choice (bodies in detail/random_choice.hpp) -------------------

  template <class Pred>
  void pick_random(std::size_t k, std::vector<std::size_t>& out, Pred ok);
  template <class Pred>
  std::optional<std::size_t> pick_one(Pred ok);

  // ---- dissemination (bodies in detail/dissemination.hpp) -------------------

  void send_gossip(time_point now);
  void send_state(const Address& to, std::uint8_t flags, time_point now);

  // ---- message handlers (bodies in detail/message_handlers.hpp) -------------

  void merge_all(const std::vector<update>& updates, bool from_push_pull, time_point now);
  std::error_code handle(node_id sender, const Address& from, const ping_msg& msg, time_point now);
  std::error_code handle(node_id, const Address& from, const ping_req_msg& msg, time_point now);
  std::error_code handle(node_id sender, const Address&, const ack_msg& msg, time_point now);
  std::error_code handle(node_id sender, const Address&, const nack_msg& msg, time_point);
  std::error_code handle(node_id, const Address&, const gossip_msg& msg, time_point now);
  std::error_code handle(node_id, const Address& from, const push_pull_msg& msg, time_point now);

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

// The member functions' bodies, one file per section of the class.
#include "dhtkit/membership/detail/dissemination.hpp"
#include "dhtkit/membership/detail/inputs.hpp"
#include "dhtkit/membership/detail/merging.hpp"
#include "dhtkit/membership/detail/message_handlers.hpp"
#include "dhtkit/membership/detail/observation.hpp"
#include "dhtkit/membership/detail/outputs.hpp"
#include "dhtkit/membership/detail/probing.hpp"
#include "dhtkit/membership/detail/random_choice.hpp"
#include "dhtkit/membership/detail/suspicion.hpp"

// The driver contract, checked with an address type this header already has
// (node_id, as the replica addresses its peers).
static_assert(dhtkit::protocol_core<dhtkit::membership::basic_swim<dhtkit::node_id>>,
              "dhtkit::membership::basic_swim must model dhtkit::protocol_core (driver/protocol_core.hpp)");

/// @file
/// The driver contract: the one shape every dhtkit protocol core has.
///
/// A protocol core (Chord's router, SWIM membership, the replica) is a state
/// machine that does no I/O. A driver owns the transport and the clock and
/// moves data in and out of the core, always the same way:
///
///   - a received message goes in with its sender and the time:
///       std::error_code ec = core.receive(from, bytes, now);
///     or, from a dispatcher that already checked the envelope (magic,
///     version, length, checksum) and picked the core by the tag's range
///     (wire_tags.hpp), so nothing is decoded twice:
///       std::error_code ec = core.receive(from, envelope, now);
///     The error says what was wrong with a message the core rejected (it is
///     counted in the core's stats and changes nothing); success means the
///     core took it, which is not to say it acted on it (a stale reply is
///     taken and ignored);
///   - core.tick(now) runs whatever is due at or before `now`;
///   - core.next_wakeup() is the earliest time the core needs a tick, or
///     nullopt when nothing is scheduled, so a driver sleeps until then or the
///     next message and never polls. Calling tick() earlier breaks nothing, but
///     a core may start a period from any tick that finds it due (SWIM's gossip
///     interval), so extra ticks can shift when it sends. Drivers tick when
///     next_wakeup() asks; both drivers here keep one timer and tick at the
///     time they armed it for, even if a later call moved next_wakeup() later;
///   - every call may leave output in the core's outbox: messages to send, all
///     of one type (outgoing_message), and the core's own events (lookups
///     completed, members changed, puts acknowledged). The driver drains it
///     after each call with core.take_outbox(), sends the messages and hands
///     the events on. Its messages are bounded by the core's configuration.
///
/// The cores also share words for the same facts: a failure detector's
/// verdicts reach a core through mark_dead(id) / mark_alive(id)
/// (verdict_sink), a voluntary departure is leave(now) (Chord, SWIM), counters are stats()
/// with the message_stats fields, and every configuration is a plain struct
/// with validate() and presets lan(), wan(), local().
///
/// Drivers: sim_driver.hpp runs any core on the deterministic simulator,
/// asio_driver.hpp on real sockets; both are a few dozen lines because the
/// shape is the same.
///
/// @code
/// template <dhtkit::protocol_core Core>
/// void drain(Core& core, auto& transport, auto&& on_events) {
///   auto out = core.take_outbox();
///   for (auto& m : out.messages) (void)transport.send(m.to, m.bytes);
///   on_events(out);                           // the core's own event lists
/// }
/// @endcode
#pragma once

#include <array>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <system_error>
#include <utility>
#include <vector>

#include "dhtkit/core/node_id.hpp"
#include "dhtkit/core/time.hpp"
#include "dhtkit/transport/wire.hpp"
#include "dhtkit/transport/wire_tags.hpp"

namespace dhtkit {

/// One message a core wants sent: already encoded, addressed in the core's
/// own address type.
template <class Address>
struct outgoing_message {
  Address to{};
  std::vector<std::byte> bytes;
};

/// The part of every core's outbox a driver handles without knowing the core.
/// Each core's outbox derives from it and adds its event lists, clear() and
/// empty().
template <class Address>
struct message_outbox {
  std::vector<outgoing_message<Address>> messages;
};

/// Counters every core keeps under these names.
struct message_stats {
  std::uint64_t messages_sent = 0;      ///< messages put in the outbox
  std::uint64_t messages_received = 0;  ///< messages given to receive()
  std::uint64_t rejected = 0;           ///< received messages refused: undecodable or invalid
  std::uint64_t outbox_dropped = 0;     ///< messages not queued because the outbox was full
};

/// The driver contract every protocol core models (see protocol_core.hpp).
template <class C>
concept protocol_core = requires(C& core, const C& view, const typename C::address_type& from,
                                 std::span<const std::byte> bytes, const wire::envelope& envelope,
                                 time_point now) {
  typename C::address_type;
  typename C::outbox_type;
  requires std::derived_from<typename C::outbox_type, message_outbox<typename C::address_type>>;
  // The range of wire tags the core's messages use (wire_tags.hpp).
  { C::wire_tags } -> std::convertible_to<wire::tag_range>;
  { core.receive(from, bytes, now) } -> std::same_as<std::error_code>;
  { core.receive(from, envelope, now) } -> std::same_as<std::error_code>;
  { core.tick(now) } -> std::same_as<void>;
  { view.next_wakeup() } -> std::same_as<std::optional<time_point>>;
  { core.take_outbox() } -> std::same_as<typename C::outbox_type>;
  { view.stats() } -> std::convertible_to<const message_stats&>;
};

/// A core that takes a failure detector's verdicts about its peers.
template <class C>
concept verdict_sink = requires(C& core, node_id id) {
  core.mark_dead(id);
  core.mark_alive(id);
};

/// True when no two of the cores share a wire tag: what a dispatcher that
/// routes envelopes by tag range needs.
template <protocol_core... Cores>
constexpr bool disjoint_tags() noexcept {
  return wire::disjoint(std::array<wire::tag_range, sizeof...(Cores)>{Cores::wire_tags...});
}

}  // namespace dhtkit

/// @file
/// Routes each received message to the protocol core that owns its tag,
/// checking the envelope once.
///
/// A node runs several cores over one transport (membership and Chord share a
/// datagram socket, for instance). Each core could check every envelope and
/// refuse the tags it does not know, but then each message would be
/// checksummed once per core and a rejection counted by every core but one.
/// The dispatcher checks the envelope once (magic, version, length, CRC32C),
/// picks the core whose wire_tags range holds the tag, and hands it the
/// checked envelope. Two cores that share a tag are refused at compile time.
///
/// @code
/// using router = dhtkit::chord::basic_router<dhtkit::endpoint>;
/// using swim = dhtkit::membership::basic_swim<dhtkit::endpoint>;
/// dhtkit::dispatcher<router, swim> dispatch(chord_core, swim_core);
/// transport.set_receive_handler([&](const dhtkit::endpoint& from, std::span<const std::byte> bytes) {
///   std::error_code ec = dispatch.receive(from, bytes, clock.now());
///   // then drain both cores' outboxes
/// });
/// @endcode
#pragma once

#include <cstdint>
#include <span>
#include <system_error>
#include <tuple>
#include <type_traits>

#include "dhtkit/core/error.hpp"
#include "dhtkit/core/time.hpp"
#include "dhtkit/driver/protocol_core.hpp"
#include "dhtkit/transport/wire.hpp"

namespace dhtkit {

/// Hands each received envelope to the core whose wire tags hold its tag,
/// after checking it once (see dispatcher.hpp).
template <protocol_core... Cores>
class dispatcher {
  static_assert(sizeof...(Cores) > 0, "dhtkit::dispatcher: give it at least one core");
  static_assert(disjoint_tags<Cores...>(),
                "dhtkit::dispatcher: two of these cores share wire tags (see transport/wire_tags.hpp)");

  template <class First, class...>
  struct first_of {
    using type = First;
  };

 public:
  using address_type = typename first_of<Cores...>::type::address_type;
  static_assert((std::is_same_v<typename Cores::address_type, address_type> && ...),
                "dhtkit::dispatcher: every core must address peers by the same type");

  /// `limits.max_message_size` bounds the envelope here; each core's codec
  /// then holds the payload to its own limit.
  explicit dispatcher(Cores&... cores, wire_limits limits = {}) : cores_(cores...), limits_(limits) {}

  /// Checks the envelope and hands it to the core owning its tag. Errors: the
  /// envelope's (bad_magic, truncated, bad_checksum...), unknown_message_type
  /// for a tag no core owns (both counted in rejected()), or the core's own.
  std::error_code receive(const address_type& from, std::span<const std::byte> bytes, time_point now) {
    auto env = wire::decode_envelope(bytes, limits_);
    if (!env) {
      ++rejected_;
      return env.error();
    }
    return route(from, *env, now, std::index_sequence_for<Cores...>{});
  }

  /// Envelopes this dispatcher refused before any core saw them.
  std::uint64_t rejected() const noexcept { return rejected_; }

 private:
  template <std::size_t... I>
  std::error_code route(const address_type& from, const wire::envelope& env, time_point now,
                        std::index_sequence<I...>) {
    std::error_code ec = errc::unknown_message_type;
    const bool routed = ((std::tuple_element_t<I, std::tuple<Cores...>>::wire_tags.contains(env.type)
                              ? (ec = std::get<I>(cores_).receive(from, env, now), true)
                              : false) ||
                         ...);
    if (!routed) ++rejected_;
    return ec;
  }

  std::tuple<Cores&...> cores_;
  wire_limits limits_;
  std::uint64_t rejected_ = 0;
};

}  // namespace dhtkit

/// @file
/// The wire codec: protocol messages to bytes and back, safely.
///
/// Protocol messages are plain structs with a cereal `serialize` and a 16-bit
/// type tag. `wire::encode` writes one inside a small versioned envelope;
/// `wire::decode_envelope` + `wire::decode_payload`, or a `wire::codec` over a
/// set of message types, turn untrusted bytes back into a message. Decoding
/// never trusts the input: the payload length, every container count and
/// string length and the type tag are checked against `wire_limits` (and
/// against the bytes actually present) before anything is allocated, so one
/// decode allocates O(message size); every way the bytes can be wrong is an
/// error code, and no exception ever leaves a decoder (they are all noexcept).
///
/// @code
/// struct ping {
///   static constexpr std::uint16_t wire_type = 1;
///   std::uint64_t seq = 0;
///   template <class Archive> void serialize(Archive& ar) { ar(seq); }
/// };
/// struct pong { static constexpr std::uint16_t wire_type = 2; std::uint64_t seq = 0;
///               template <class Archive> void serialize(Archive& ar) { ar(seq); } };
/// @endcode
///
/// @code
/// dhtkit::wire::codec<ping, pong> codec;                  // default wire_limits
/// auto bytes = codec.encode(ping{7}, dhtkit::node_id{42});  // result<std::vector<std::byte>>
/// auto got = codec.decode(*bytes);                          // result<codec<ping, pong>::decoded>
/// if (got && std::holds_alternative<ping>(got->message)) { /* got->sender == node_id{42} */ }
/// @endcode
///
/// A node that runs several protocols decodes each envelope once
/// (decode_envelope), picks the protocol by the tag's range (wire_tags.hpp)
/// and hands the checked envelope to that protocol's codec.decode(envelope).
///
/// Envelope layout (all integers little-endian, 24-byte fixed header):
///
///   | offset | size | field          | meaning                                            |
///   |-------:|-----:|----------------|----------------------------------------------------|
///   |      0 |    4 | magic          | "DHTK" (0x44 0x48 0x54 0x4B)                       |
///   |      4 |    1 | version        | wire::protocol_version (1)                         |
///   |      5 |    1 | flags          | reserved, must be 0                                |
///   |      6 |    2 | type           | the message's wire_type                            |
///   |      8 |    8 | sender         | node_id of the sender                              |
///   |     16 |    4 | payload_length | bytes of payload following the header              |
///   |     20 |    4 | crc32c         | CRC32C of header bytes 0..19, then of the payload  |
///   |     24 |    n | payload        | the message in cereal portable binary format       |
///
/// The payload is exactly what cereal::PortableBinaryOutputArchive writes with
/// little-endian output (a 0x01 byte, then the fields), so it can be produced
/// or inspected with stock cereal. An envelope must be the whole input (no
/// bytes before or after), and a payload must decode with no bytes left over,
/// so every message has exactly one encoding.
///
/// Errors (dhtkit::errc), in the order they are checked: bad_magic, truncated
/// (shorter than the header), unsupported_version (a version or reserved flag
/// this build does not speak), message_too_large (payload_length over
/// max_message_size), truncated (fewer bytes than payload_length),
/// malformed_payload (more bytes than payload_length), bad_checksum; then for
/// the payload: unknown_message_type, limit_exceeded (a count or length over
/// its wire_limits bound), truncated (a count, length or field runs past the
/// end of the payload), malformed_payload (anything else: a bool that is not
/// 0/1, map keys out of order, bytes left over, whatever cereal rejects).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <new>
#include <span>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include <cereal/cereal.hpp>

#include "dhtkit/core/error.hpp"
#include "dhtkit/core/node_id.hpp"
#include "dhtkit/core/result.hpp"
#include "dhtkit/transport/detail/bounded_archive.hpp"
#include "dhtkit/transport/detail/crc32c.hpp"

namespace dhtkit {

/// Bounds a decoder checks before it allocates, and the largest message.
struct wire_limits {
  /// Largest whole message (header + payload) encoded or accepted. 1 MiB holds
  /// any protocol message and a memcached-sized value, while keeping what a
  /// hostile peer can make a node buffer or allocate per message small.
  /// (The 32-bit length field caps it at 4 GiB + 24 bytes whatever is set.)
  std::size_t max_message_size = 1024 * 1024;
  /// Longest std::string (in characters) or std::vector<std::byte> blob inside
  /// a message. Equal to max_message_size by default: a string can never be
  /// longer than the bytes that carry it, so this only matters when set lower.
  std::size_t max_string_size = 1024 * 1024;
  /// Most elements in any other container (vector, map, set, list...). Carry
  /// blobs as std::string or std::vector<std::byte>, which count as strings.
  /// Decoding never allocates for elements whose bytes have not arrived, so
  /// memory follows the message size; this caps the count in absolute terms
  /// as well. Membership lists and batches stay well below it.
  std::size_t max_container_size = 64 * 1024;
  /// Deepest nesting of structs and containers inside a message. Protocol
  /// messages nest a handful of levels; a recursive message type (a tree, a
  /// linked list) costs a byte or so per level on the wire, and decoding
  /// recurses, so without this a 1 MiB message could overflow the stack.
  std::size_t max_nesting_depth = 64;
};

namespace wire {

inline constexpr std::array<std::byte, 4> magic{std::byte{'D'}, std::byte{'H'}, std::byte{'T'},
                                                std::byte{'K'}};
inline constexpr std::uint8_t protocol_version = 1;
inline constexpr std::size_t header_size = 24;

/// A checked envelope: header fields plus a view of the payload (valid as
/// long as the bytes given to decode_envelope are).
struct envelope {
  std::uint8_t version = protocol_version;
  std::uint16_t type = 0;
  node_id sender{};
  std::span<const std::byte> payload{};
};

namespace detail {

template <class Msg>
concept has_wire_type = requires {
  Msg::wire_type;
  requires std::is_same_v<std::remove_cv_t<decltype(Msg::wire_type)>, std::uint16_t>;
};

template <class Msg>
constexpr void check_message_type() {
  static_assert(has_wire_type<Msg>,
                "dhtkit wire: a message type needs `static constexpr std::uint16_t wire_type = <tag>;` "
                "(a tag unique among the messages of a protocol)");
  static_assert(std::is_default_constructible_v<Msg> && std::is_move_constructible_v<Msg>,
                "dhtkit wire: a message type must be default constructible (the decoder builds it, then "
                "loads its fields) and move constructible");
}

template <class... Msgs>
constexpr bool distinct_wire_types() {
  constexpr std::array<std::uint16_t, sizeof...(Msgs)> tags{Msgs::wire_type...};
  for (std::size_t i = 0; i < tags.size(); ++i)
    for (std::size_t j = i + 1; j < tags.size(); ++j)
      if (tags[i] == tags[j]) return false;
  return true;
}

inline void put_le(std::byte* at, std::uint64_t v, std::size_t n) noexcept {
  for (std::size_t i = 0; i < n; ++i) at[i] = static_cast<std::byte>((v >> (8 * i)) & 0xFFu);
}

inline std::uint64_t get_le(const std::byte* at, std::size_t n) noexcept {
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < n; ++i) v |= static_cast<std::uint64_t>(at[i]) << (8 * i);
  return v;
}

// The payload length field is 32 bits, whatever the configured limit says.
inline std::size_t max_payload(const wire_limits& limits) noexcept {
  if (limits.max_message_size < header_size) return 0;
  const std::size_t by_limit = limits.max_message_size - header_size;
  return by_limit < std::numeric_limits<std::uint32_t>::max() ? by_limit
                                                              : std::numeric_limits<std::uint32_t>::max();
}

inline dhtkit::detail::archive_limits archive_limits_for(const wire_limits& limits) noexcept {
  return {limits.max_string_size, limits.max_container_size, max_payload(limits), limits.max_nesting_depth};
}

}  // namespace detail

/// Encodes `msg` from `sender`. Fails with message_too_large when the whole
/// message would exceed limits.max_message_size (encoding stops as soon as it
/// does), or limit_exceeded when a string or container inside is over its
/// bound (so a peer with the same limits could not decode it). Other
/// exceptions (std::bad_alloc, or whatever Msg's own serialize throws)
/// propagate: the message is local, trusted data.
template <class Msg>
result<std::vector<std::byte>> encode(const Msg& msg, node_id sender, const wire_limits& limits = {}) {
  detail::check_message_type<Msg>();
  std::vector<std::byte> out(header_size);
  try {
    dhtkit::detail::bounded_output_archive ar(out, detail::archive_limits_for(limits));
    ar(msg);
  } catch (const dhtkit::detail::wire_error& e) {
    return e.code();
  }
  const std::size_t payload_size = out.size() - header_size;
  for (std::size_t i = 0; i < magic.size(); ++i) out[i] = magic[i];
  out[4] = std::byte{protocol_version};
  out[5] = std::byte{0};
  detail::put_le(out.data() + 6, Msg::wire_type, 2);
  detail::put_le(out.data() + 8, sender.value, 8);
  detail::put_le(out.data() + 16, payload_size, 4);
  const std::uint32_t crc =
      dhtkit::detail::crc32c_extend(dhtkit::detail::crc32c(std::span<const std::byte>(out.data(), 20)),
                                    std::span<const std::byte>(out.data() + header_size, payload_size));
  detail::put_le(out.data() + 20, crc, 4);
  return out;
}

/// Checks the envelope of one received message: magic, version, length
/// against the limit and the bytes present, checksum. The payload is not
/// looked at beyond its checksum.
inline result<envelope> decode_envelope(std::span<const std::byte> bytes,
                                        const wire_limits& limits = {}) noexcept {
  const std::size_t magic_seen = bytes.size() < magic.size() ? bytes.size() : magic.size();
  for (std::size_t i = 0; i < magic_seen; ++i)
    if (bytes[i] != magic[i]) return errc::bad_magic;
  if (bytes.size() < header_size) return errc::truncated;
  envelope env;
  env.version = static_cast<std::uint8_t>(bytes[4]);
  if (env.version != protocol_version || bytes[5] != std::byte{0}) return errc::unsupported_version;
  env.type = static_cast<std::uint16_t>(detail::get_le(bytes.data() + 6, 2));
  env.sender = node_id{detail::get_le(bytes.data() + 8, 8)};
  const std::uint64_t payload_size = detail::get_le(bytes.data() + 16, 4);
  if (payload_size > detail::max_payload(limits)) return errc::message_too_large;
  const std::size_t available = bytes.size() - header_size;
  if (available < payload_size) return errc::truncated;
  if (available > payload_size) return errc::malformed_payload;
  env.payload = bytes.subspan(header_size);
  const std::uint32_t expected = static_cast<std::uint32_t>(detail::get_le(bytes.data() + 20, 4));
  const std::uint32_t actual =
      dhtkit::detail::crc32c_extend(dhtkit::detail::crc32c(bytes.first(20)), env.payload);
  if (actual != expected) return errc::bad_checksum;
  return env;
}

/// Decodes the payload of a checked envelope as Msg. unknown_message_type if
/// the envelope's tag is not Msg::wire_type.
template <class Msg>
result<Msg> decode_payload(const envelope& env, const wire_limits& limits = {}) noexcept {
  detail::check_message_type<Msg>();
  if (env.type != Msg::wire_type) return errc::unknown_message_type;
  try {
    Msg msg{};
    dhtkit::detail::bounded_input_archive ar(env.payload, detail::archive_limits_for(limits));
    ar(msg);
    if (ar.remaining() != 0) return errc::malformed_payload;
    return result<Msg>(std::move(msg));
  } catch (const dhtkit::detail::wire_error& e) {
    return e.code();
  } catch (...) {
    // cereal::Exception (a variant index out of range, an unknown pointer
    // id...), std::bad_alloc, std::length_error, or whatever a user's load
    // throws: the event loop must never see it.
    return errc::malformed_payload;
  }
}

/// decode_envelope + decode_payload<Msg>, for a peer that expects one type.
template <class Msg>
result<Msg> decode(std::span<const std::byte> bytes, const wire_limits& limits = {}) noexcept {
  auto env = decode_envelope(bytes, limits);
  if (!env) return env.error();
  return decode_payload<Msg>(*env, limits);
}

/// A protocol: a fixed set of message types, decoded by type tag into a
/// std::variant. The limits are validated once, here.
template <class... Msgs>
class codec {
  static_assert(sizeof...(Msgs) > 0, "dhtkit wire: a codec needs at least one message type");
  static_assert(
      (detail::has_wire_type<Msgs> && ...),
      "dhtkit wire: every codec message type needs `static constexpr std::uint16_t wire_type = <tag>;`");
  static_assert(
      detail::distinct_wire_types<Msgs...>(),
      "dhtkit wire: two message types of this codec have the same wire_type; tags must be distinct");

 public:
  using message_type = std::variant<Msgs...>;

  /// A decoded message and its sender.
  struct decoded {
    node_id sender{};
    message_type message{};
  };

  explicit codec(const wire_limits& limits = {}) : limits_(limits) {
    if (limits.max_message_size <= header_size)
      throw std::invalid_argument("dhtkit::wire::codec: wire_limits::max_message_size must exceed the " +
                                  std::to_string(header_size) + "-byte envelope header");
  }

  const wire_limits& limits() const noexcept { return limits_; }

  template <class Msg>
  result<std::vector<std::byte>> encode(const Msg& msg, node_id sender) const {
    static_assert((std::is_same_v<Msg, Msgs> || ...),
                  "dhtkit wire: this message type is not part of the codec");
    return wire::encode(msg, sender, limits_);
  }

  result<decoded> decode(std::span<const std::byte> bytes) const noexcept {
    auto env = decode_envelope(bytes, limits_);
    if (!env) return env.error();
    return decode(*env);
  }

  /// The payload of an envelope a dispatcher already checked with
  /// decode_envelope, so its header and checksum are not looked at twice. The
  /// dispatcher may allow larger messages than this codec does: the payload
  /// is held to this codec's limit here.
  result<decoded> decode(const envelope& env) const noexcept {
    if (env.payload.size() > detail::max_payload(limits_)) return errc::message_too_large;
    return dispatch<Msgs...>(env);
  }

 private:
  template <class First, class... Rest>
  result<decoded> dispatch(const envelope& env) const noexcept {
    if (env.type == First::wire_type) return decode_as<First>(env);
    if constexpr (sizeof...(Rest) > 0) {
      return dispatch<Rest...>(env);
    } else {
      return errc::unknown_message_type;
    }
  }

  template <class Msg>
  result<decoded> decode_as(const envelope& env) const noexcept {
    auto msg = decode_payload<Msg>(env, limits_);
    if (!msg) return msg.error();
    try {
      return decoded{env.sender, message_type(std::in_place_type<Msg>, std::move(*msg))};
    } catch (...) {
      return errc::malformed_payload;  // only a throwing move constructor of Msg gets here
    }
  }

  wire_limits limits_;
};

}  // namespace wire
}  // namespace dhtkit

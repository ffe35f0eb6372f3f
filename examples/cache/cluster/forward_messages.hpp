// The messages cache nodes exchange as the DHT node's application messages:
// a command forwarded to its key's coordinator, the coordinator's reply, and
// flush_all for the whole cluster. The bytes come from other members (the
// node checked who sent them, not what they say), so the decoder checks
// every length against what arrived and every tag against the known ones.
//
//   forward_message m{.kind = forward_kind::request, .id = 7, .noreply = false,
//                     .key = "k", .body = "get k\r\n"};
//   dhtkit::bytes b = encode_forward(m);
//   std::optional<forward_message> back = decode_forward(b, 250);  // nullopt: malformed
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include "cluster/record.hpp"

namespace dhtkit_cache::cluster {

enum class forward_kind : std::uint8_t {
  request = 1,      // run `body` (one memcached request) at this node: its key's coordinator
  reply = 2,        // the reply to request `id`
  flush = 3,        // flush_all: items stamped before `flush_stamp` are gone from `flush_at_ms` on
  flush_ack = 4,    // flush `id` applied, with the stamp it applied (flush_stamp)
  flush_exact = 5,  // flush_all's second round: apply exactly `flush_stamp`
};

struct forward_message {
  forward_kind kind = forward_kind::request;
  std::uint64_t id = 0;
  bool noreply = false;    // request: the client wants no reply
  bool final_hop = false;  // request: run it here whatever this node's view (it was forwarded once already)
  std::string key{};       // request: the key (routing and per-key order)
  std::string body{};      // request: the request bytes; reply: the reply bytes
  std::uint64_t flush_stamp = 0;  // flush, flush_ack
  std::uint64_t flush_at_ms = 0;  // flush: 0 at once
};

inline dhtkit::bytes encode_forward(const forward_message& m) {
  dhtkit::bytes out;
  out.reserve(32 + m.key.size() + m.body.size());
  out.push_back(static_cast<std::byte>(m.kind));
  detail::put_u64(out, m.id);
  const auto append = [&out](const std::string& s) {
    const auto* p = reinterpret_cast<const std::byte*>(s.data());
    out.insert(out.end(), p, p + s.size());
  };
  switch (m.kind) {
    case forward_kind::request:
      out.push_back(std::byte{static_cast<std::uint8_t>((m.noreply ? 1 : 0) | (m.final_hop ? 2 : 0))});
      detail::put_u64(out, m.key.size(), 2);
      append(m.key);
      append(m.body);
      break;
    case forward_kind::reply:
      append(m.body);
      break;
    case forward_kind::flush:
    case forward_kind::flush_exact:
      detail::put_u64(out, m.flush_stamp);
      detail::put_u64(out, m.flush_at_ms);
      break;
    case forward_kind::flush_ack:
      detail::put_u64(out, m.flush_stamp);
      break;
  }
  return out;
}

// nullopt for anything but one well-formed message with a key of 1 to
// max_key bytes (requests).
inline std::optional<forward_message> decode_forward(std::span<const std::byte> b, std::size_t max_key) {
  if (b.size() < 9) return std::nullopt;
  forward_message m;
  const auto kind = std::to_integer<std::uint8_t>(b[0]);
  m.id = detail::get_u64(b.data() + 1);
  const std::byte* p = b.data() + 9;
  std::size_t left = b.size() - 9;
  const auto text = [](const std::byte* at, std::size_t n) {
    return std::string(reinterpret_cast<const char*>(at), n);
  };
  switch (kind) {
    case static_cast<std::uint8_t>(forward_kind::request): {
      if (left < 3) return std::nullopt;
      const auto flags = std::to_integer<std::uint8_t>(p[0]);
      const std::size_t key_size = detail::get_u64(p + 1, 2);
      if (flags > 3 || key_size == 0 || key_size > max_key || key_size > left - 3) return std::nullopt;
      m.kind = forward_kind::request;
      m.noreply = (flags & 1) != 0;
      m.final_hop = (flags & 2) != 0;
      m.key = text(p + 3, key_size);
      m.body = text(p + 3 + key_size, left - 3 - key_size);
      return m;
    }
    case static_cast<std::uint8_t>(forward_kind::reply):
      m.kind = forward_kind::reply;
      m.body = text(p, left);
      return m;
    case static_cast<std::uint8_t>(forward_kind::flush):
    case static_cast<std::uint8_t>(forward_kind::flush_exact):
      if (left != 16) return std::nullopt;
      m.kind = static_cast<forward_kind>(kind);
      m.flush_stamp = detail::get_u64(p);
      m.flush_at_ms = detail::get_u64(p + 8);
      return m;
    case static_cast<std::uint8_t>(forward_kind::flush_ack):
      if (left != 8) return std::nullopt;
      m.kind = forward_kind::flush_ack;
      m.flush_stamp = detail::get_u64(p);
      return m;
    default:
      return std::nullopt;
  }
}

}  // namespace dhtkit_cache::cluster

// The pieces of a meta reply more than one command writes: a line, the O and
// k tokens echoed back, and the TTL an item has left.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "dhtkit/cache/store.hpp"
#include "protocol/meta/flags.hpp"
#include "protocol/request.hpp"

namespace dhtkit_cache {

namespace detail {

inline void line(std::string& out, std::string_view text) {
  out.append(text);
  out.append("\r\n");
}

// The O and k return tokens (with " b" after k when the key came in base64):
// what md, ms and ma echo, in the client's order.
inline void append_echo_tokens(std::string& out, const meta_flags& f, std::string_view raw_key, bool base64) {
  for (std::size_t i = 0; i < f.count; ++i) {
    const char c = f.tokens[i][0];
    if (c == 'O') {
      out.push_back(' ');
      out.append(f.tokens[i]);
    } else if (c == 'k') {
      out.append(" k");
      out.append(raw_key);
      if (base64) out.append(" b");
    }
  }
}

inline std::int64_t ttl_left(cache::rel_time exptime, cache::rel_time now) {
  return exptime == 0 ? -1 : std::int64_t{exptime} - std::int64_t{now};
}

}  // namespace detail

}  // namespace dhtkit_cache

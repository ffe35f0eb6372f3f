// The text commands about the server rather than an item: flush_all (now or
// after a delay) and verbosity.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>

#include "protocol/command_result.hpp"
#include "protocol/request.hpp"

namespace dhtkit_cache {

namespace detail {

inline void flush_all(command_env& env, const token_list& t, std::string& out) {
  if (t.size() > 3) {
    out.append("ERROR\r\n");
    return;
  }
  const bool noreply = t.size() > 1 && t.last_is("noreply");
  const std::size_t args = t.size() - 1 - (noreply ? 1 : 0);
  if (!env.ctx.settings.flush_enabled) return reply(out, noreply, "CLIENT_ERROR flush_all not allowed");
  std::int32_t delay = 0;
  if (args > 0) {
    const auto d = parse_i32_wrapping(t[1]);
    if (!d) return reply(out, noreply, "CLIENT_ERROR invalid exptime argument");
    delay = *d;
  }
  ++env.tally.cmd_flush;
  const expiry e = env.expiry_of(delay);
  if (delay == 0 || e.already_expired) {
    env.ctx.store.flush_at(0);
    env.ctx.store.flush_all();
  } else {
    // memcached: items last touched at or before one second before the
    // deadline are invalid from the deadline on.
    env.ctx.store.flush_at(e.at - 1);
  }
  reply(out, noreply, "OK");
}

inline void verbosity(command_env& env, const token_list& t, std::string& out) {
  if (t.size() != 2 && t.size() != 3) {
    out.append("ERROR\r\n");
    return;
  }
  const bool noreply = t.last_is("noreply");
  const auto level = parse_u64(t[1]);
  if (!level) return reply(out, noreply, bad_format);
  env.ctx.verbosity.store(*level > 2 ? 2 : static_cast<int>(*level), std::memory_order_relaxed);
  reply(out, noreply, "OK");
}

}  // namespace detail

}  // namespace dhtkit_cache

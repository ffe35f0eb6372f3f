// touch: a new expiry for an item, set under the read's lock with the LRU
// bump memcached gives it.
#pragma once

#include <string>
#include <string_view>

#include "dhtkit/cache/store.hpp"
#include "protocol/command_result.hpp"
#include "protocol/mutable_reads.hpp"
#include "protocol/request.hpp"

namespace dhtkit_cache {

namespace detail {

inline void touch(command_env& env, const token_list& t, std::string& out) {
  if (t.size() != 3 && t.size() != 4) {
    out.append("ERROR\r\n");
    return;
  }
  const bool noreply = t.last_is("noreply");
  const std::string_view key = t[1];
  if (key.size() > max_key_length) return reply(out, noreply, bad_format);
  const auto exptime = parse_i32_wrapping(t[2]);
  if (!exptime) return reply(out, noreply, "CLIENT_ERROR invalid exptime argument");
  const expiry e = env.expiry_of(*exptime);
  ++env.tally.cmd_touch;
  const bool hit = read_mutable(env.ctx.store, key, env.now, [&](cache::item_ref& it) -> cache::decision {
    if (e.already_expired) return cache::erase{};
    it.set_exptime(e.at);
    return cache::keep{};
  });
  ++(hit ? env.tally.touch_hits : env.tally.touch_misses);
  reply(out, noreply, hit ? "TOUCHED" : "NOT_FOUND");
}

}  // namespace detail

}  // namespace dhtkit_cache

// delete, with the legacy hold time of "0" memcached still accepts.
#pragma once

#include <string>
#include <string_view>

#include "dhtkit/cache/store.hpp"
#include "protocol/command_result.hpp"
#include "protocol/request.hpp"

namespace dhtkit_cache {

namespace detail {

inline void remove(command_env& env, const token_list& t, std::string& out) {
  if (t.size() < 2 || t.size() > 4) {
    out.append("ERROR\r\n");
    return;
  }
  const bool noreply = t.size() > 2 && t.last_is("noreply");
  // memcached still accepts a legacy hold time of exactly "0"; any other
  // extra argument is an error.
  if (t.size() > 2) {
    const bool hold_is_zero = t[2] == "0";
    const bool valid =
        (t.size() == 3 && (hold_is_zero || noreply)) || (t.size() == 4 && hold_is_zero && noreply);
    if (!valid)
      return reply(out, noreply, "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]");
  }
  const std::string_view key = t[1];
  if (key.size() > max_key_length) return reply(out, noreply, bad_format);
  const auto r = env.ctx.store.modify(key, env.now, [](cache::item_ref*) { return cache::erase{}; });
  ++(r.existed ? env.tally.delete_hits : env.tally.delete_misses);
  reply(out, noreply, r.existed ? "DELETED" : "NOT_FOUND");
}

}  // namespace detail

}  // namespace dhtkit_cache

// me: an item's metadata in memcached's debug format, read without counting
// as a use.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "dhtkit/cache/store.hpp"
#include "protocol/command_result.hpp"
#include "protocol/meta/reply.hpp"
#include "protocol/request.hpp"

namespace dhtkit_cache {

namespace detail {

inline void meta_debug(command_env& env, const token_list& t, std::string& out) {
  if (t.size() < 2 || t[1].size() > max_key_length) return line(out, bad_format);
  const std::string_view key = t[1];
  const bool hit = env.ctx.store.peek(key, env.now, [&](const cache::item_ref& it) {
    out.append("ME ");
    out.append(key);
    out.append(" exp=");
    // As 1.6.18 prints it: -1 for never, else now - exptime (negative while live).
    append_signed(out, it.exptime() == 0 ? -1 : std::int64_t{env.now} - std::int64_t{it.exptime()});
    out.append(" la=");
    append_number(out, env.now >= it.last_access() ? env.now - it.last_access() : 0);
    out.append(" cas=");
    append_number(out, it.cas());
    out.append(it.fetched() ? " fetch=yes" : " fetch=no");
    out.append(" cls=1 size=");
    append_number(out, item_size(key.size(), it.value().size()));
    out.append("\r\n");
  });
  if (!hit) line(out, "EN");
}

}  // namespace detail

}  // namespace dhtkit_cache

// incr and decr: the stored number changed in place, with memcached's
// padding of a shorter result.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "dhtkit/cache/store.hpp"
#include "protocol/command_result.hpp"
#include "protocol/request.hpp"

namespace dhtkit_cache {

namespace detail {

inline void arithmetic(command_env& env, const token_list& t, bool incr, std::string& out) {
  if (t.size() != 3 && t.size() != 4) {
    out.append("ERROR\r\n");
    return;
  }
  const bool noreply = t.last_is("noreply");
  const std::string_view key = t[1];
  if (key.size() > max_key_length) return reply(out, noreply, bad_format);
  const auto delta = parse_u64(t[2]);
  if (!delta) return reply(out, noreply, "CLIENT_ERROR invalid numeric delta argument");
  enum { miss, non_numeric, ok } result = miss;
  std::string text;
  const auto r = env.ctx.store.modify(key, env.now, [&](cache::item_ref* it) -> cache::decision {
    if (it == nullptr) return cache::keep{};
    const auto v = it->value().empty() ? std::nullopt : parse_counter_value(it->value());
    if (!v) {
      result = non_numeric;
      return cache::keep{};
    }
    result = ok;
    const std::uint64_t n = incr ? *v + *delta : (*delta > *v ? 0 : *v - *delta);
    text = counter_text(n, it->value().size());
    cache::new_value nv;
    nv.head = text;
    nv.flags = it->flags();
    nv.exptime = it->exptime();
    return nv;
  });
  if (result == miss) {
    ++(incr ? env.tally.incr_misses : env.tally.decr_misses);
    return reply(out, noreply, "NOT_FOUND");
  }
  if (result == non_numeric)
    return reply(out, noreply, "CLIENT_ERROR cannot increment or decrement non-numeric value");
  if (r.error != cache::store_error::none) return reply(out, noreply, store_error_text(r.error));
  ++(incr ? env.tally.incr_hits : env.tally.decr_hits);
  if (noreply) return;
  const std::size_t end = text.find(' ');
  out.append(text, 0, end);
  out.append("\r\n");
}

}  // namespace detail

}  // namespace dhtkit_cache

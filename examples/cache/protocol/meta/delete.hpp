// md: delete an item, or with I mark it stale, or with x drop its value and
// keep the item.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "dhtkit/cache/store.hpp"
#include "protocol/command_result.hpp"
#include "protocol/meta/base64.hpp"
#include "protocol/meta/flags.hpp"
#include "protocol/meta/reply.hpp"
#include "protocol/request.hpp"

namespace dhtkit_cache {

namespace detail {

inline void meta_delete(command_env& env, const token_list& t, std::string& out) {
  if (t.size() < 2) return line(out, "ERROR");
  const std::string_view raw_key = t[1];
  if (t.size() > max_meta_tokens) return line(out, "CLIENT_ERROR options flags too long");
  if (raw_key.size() > max_key_length) return line(out, bad_format);
  meta_flags f;
  if (parse_meta_flags(t, 2, "bCEIkOqTx", f) != flag_error::none)
    return line(out, "CLIENT_ERROR invalid or duplicate flag");
  std::optional<std::uint64_t> compare, explicit_cas;
  std::optional<std::int32_t> ttl;
  if ((f('C') && !(compare = flag_u64(f, 'C'))) || (f('E') && !(explicit_cas = flag_u64(f, 'E'))) ||
      (f('T') && !(ttl = flag_i32(f, 'T'))))
    return line(out, "CLIENT_ERROR invalid or duplicate flag");
  std::string key(raw_key);
  if (f('b')) {
    auto d = base64_decode(raw_key);
    if (!d || d->size() > max_key_length) return line(out, "CLIENT_ERROR invalid or duplicate flag");
    key = std::move(*d);
  }
  ++env.tally.cmd_meta;
  enum { deleted, exists, not_found } result = deleted;
  const std::optional<expiry> e = ttl ? std::optional<expiry>(env.expiry_of(*ttl)) : std::nullopt;
  env.ctx.store.modify(key, env.now, [&](cache::item_ref* it) -> cache::decision {
    if (it == nullptr) {
      result = not_found;
      return cache::keep{};
    }
    if (compare && it->cas() != *compare) {
      result = exists;
      return cache::keep{};
    }
    if (f('x')) {
      // x: drop the value, keep the item (its flags and expiry).
      cache::new_value v;
      v.flags = it->flags();
      v.exptime = e ? stored_exptime(*e, env.now) : it->exptime();
      v.cas = explicit_cas;
      v.stale = f('I');
      return v;
    }
    if (f('I')) {
      // I: keep the item, marked stale, so readers get the old value with X
      // and one of them the right to refill it (W).
      if (e && e->already_expired) return cache::erase{};
      if (e) it->set_exptime(e->at);
      it->set_stale(true);
      it->set_win_sent(false);
      // A fresh CAS, as memcached gives it: a client holding the old one
      // sees the invalidation. (next_cas() is an atomic counter, not a
      // call that takes a lock.)
      it->set_cas(explicit_cas ? *explicit_cas : env.ctx.store.next_cas());
      return cache::keep{};
    }
    return cache::erase{};
  });
  ++(result == deleted ? env.tally.delete_hits : env.tally.delete_misses);
  if (result == deleted && f('q')) return;
  out.append(result == deleted ? "HD" : result == exists ? "EX" : "NF");
  append_echo_tokens(out, f, raw_key, f('b'));
  out.append("\r\n");
}

}  // namespace detail

}  // namespace dhtkit_cache

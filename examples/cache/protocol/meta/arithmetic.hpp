// ma: incr or decr (M), by D, creating the item with J on a miss when N asks.
#pragma once

#include <cstddef>
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

inline void meta_arithmetic(command_env& env, const token_list& t, std::string& out) {
  if (t.size() < 2) return line(out, "ERROR");
  const std::string_view raw_key = t[1];
  if (t.size() > max_meta_tokens) return line(out, "CLIENT_ERROR options flags too long");
  if (raw_key.size() > max_key_length) return line(out, bad_format);
  meta_flags f;
  // 1.6.18 accepts mg's s f h l u on ma too, and ignores them.
  if (parse_meta_flags(t, 2, "bCENJDTMqOtcvksfhlu", f) != flag_error::none)
    return line(out, "CLIENT_ERROR invalid or duplicate flag");
  std::optional<std::uint64_t> compare, explicit_cas, delta = 1, initial = 0;
  std::optional<std::int32_t> vivify_ttl, touch_ttl;
  if ((f('C') && !(compare = flag_u64(f, 'C'))) || (f('E') && !(explicit_cas = flag_u64(f, 'E'))) ||
      (f('D') && !(delta = flag_u64(f, 'D'))) || (f('J') && !(initial = flag_u64(f, 'J'))) ||
      (f('N') && !(vivify_ttl = flag_i32(f, 'N'))) || (f('T') && !(touch_ttl = flag_i32(f, 'T'))))
    return line(out, "CLIENT_ERROR invalid or duplicate flag");
  bool incr = true;
  if (f('M')) {
    const std::string_view m = f['M'];
    if (m.size() == 1 && (m[0] == 'I' || m[0] == 'i' || m[0] == '+')) {
      incr = true;
    } else if (m.size() == 1 && (m[0] == 'D' || m[0] == 'd' || m[0] == '-')) {
      incr = false;
    } else {
      return line(out, "CLIENT_ERROR invalid mode for ma M token");
    }
  }
  std::string key(raw_key);
  if (f('b')) {
    auto d = base64_decode(raw_key);
    if (!d || d->size() > max_key_length) return line(out, "CLIENT_ERROR invalid or duplicate flag");
    key = std::move(*d);
  }
  ++env.tally.cmd_meta;
  enum { done, created, non_numeric, exists, not_found } result = done;
  std::string text;
  std::uint64_t number = 0;
  cache::rel_time exptime = 0, exptime_before = 0;
  const auto r = env.ctx.store.modify(key, env.now, [&](cache::item_ref* it) -> cache::decision {
    cache::new_value v;
    v.cas = explicit_cas;
    if (it == nullptr) {
      if (!vivify_ttl) {
        result = not_found;
        return cache::keep{};
      }
      const expiry e = env.expiry_of(*vivify_ttl);
      result = created;
      number = *initial;
      append_number(text, number);
      v.head = text;
      exptime_before = exptime = v.exptime = stored_exptime(e, env.now);
      return v;
    }
    if (compare && it->cas() != *compare) {
      result = exists;
      return cache::keep{};
    }
    const auto old = it->value().empty() ? std::nullopt : parse_counter_value(it->value());
    if (!old) {
      result = non_numeric;
      return cache::keep{};
    }
    number = incr ? *old + *delta : (*delta > *old ? 0 : *old - *delta);
    text = counter_text(number, it->value().size());
    v.head = text;
    v.flags = it->flags();
    exptime_before = exptime = v.exptime = it->exptime();
    if (touch_ttl) {
      const expiry e = env.expiry_of(*touch_ttl);
      exptime = v.exptime = stored_exptime(e, env.now);
    }
    return v;
  });
  if (result == not_found) ++(incr ? env.tally.incr_misses : env.tally.decr_misses);
  if (result == done) ++(incr ? env.tally.incr_hits : env.tally.decr_hits);
  if (result == non_numeric) return line(out, "CLIENT_ERROR cannot increment or decrement non-numeric value");
  if (r.error != cache::store_error::none) return line(out, store_error_text(r.error));
  if (result == not_found || result == exists) {
    out.append(result == not_found ? "NF" : "EX");
    append_echo_tokens(out, f, raw_key, f('b'));
    out.append("\r\n");
    return;
  }
  const bool want_value = f('v');
  // q hides an ma's success, value included -- but not an ma that created
  // the item (1.6.18).
  if (result == done && f('q')) return;
  std::string shown;
  append_number(shown, number);
  if (want_value) {
    out.append("VA ");
    append_number(out, shown.size());
  } else {
    out.append("HD");
  }
  bool touched_yet = false;
  for (std::size_t i = 0; i < f.count; ++i) {
    const char c = f.tokens[i][0];
    if (c == 'T') touched_yet = true;
    if (c == 't') {
      out.append(" t");
      append_signed(out, ttl_left(touched_yet ? exptime : exptime_before, env.now));
    } else if (c == 'c') {
      out.append(" c");
      append_number(out, r.cas);
    } else if (c == 'O') {
      out.push_back(' ');
      out.append(f.tokens[i]);
    } else if (c == 'k') {
      out.append(" k");
      out.append(raw_key);
      if (f('b')) out.append(" b");
    }
  }
  out.append("\r\n");
  if (want_value) {
    out.append(shown);
    out.append("\r\n");
  }
}

}  // namespace detail

}  // namespace dhtkit_cache

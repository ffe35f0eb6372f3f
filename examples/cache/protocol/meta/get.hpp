// mg: an item's value and metadata, with touch (T), vivify on miss (N),
// early recache (R) and the win tokens (W X Z) decided under the item's lock.
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
#include "protocol/mutable_reads.hpp"
#include "protocol/request.hpp"

namespace dhtkit_cache {

namespace detail {

struct mg_view {  // what mg reports of an item, read under its lock
  std::uint64_t cas = 0;
  std::uint32_t flags = 0;
  cache::rel_time exptime = 0, last_access = 0;
  bool fetched = false, stale = false, win_sent = false;
  std::string value;
  std::size_t size = 0;
};

inline void meta_get(command_env& env, const token_list& t, std::string& out) {
  if (t.size() < 2) return line(out, "ERROR");
  if (t.size() > max_meta_tokens) return line(out, "CLIENT_ERROR options flags are too long");
  const std::string_view raw_key = t[1];
  if (raw_key.size() > max_key_length) return line(out, bad_format);
  meta_flags f;
  switch (parse_meta_flags(t, 2, "bcfhklOqstuvNRTE", f)) {
    case flag_error::none:
      break;
    case flag_error::invalid:
      return line(out, "CLIENT_ERROR invalid flag");
    case flag_error::duplicate:
      return line(out, "CLIENT_ERROR duplicate flag");
    case flag_error::opaque_too_long:
      return line(out, "CLIENT_ERROR opaque token too long");
  }
  std::optional<std::int32_t> touch_ttl, vivify_ttl, recache_ttl;
  std::optional<std::uint64_t> explicit_cas;
  if (f('T') && !(touch_ttl = flag_i32(f, 'T')))
    return line(out, "CLIENT_ERROR bad token in command line format");
  if (f('N') && !(vivify_ttl = flag_i32(f, 'N')))
    return line(out, "CLIENT_ERROR bad token in command line format");
  if (f('R') && !(recache_ttl = flag_i32(f, 'R')))
    return line(out, "CLIENT_ERROR bad token in command line format");
  if (f('E') && !(explicit_cas = flag_u64(f, 'E')))
    return line(out, "CLIENT_ERROR bad token in command line format");
  std::string decoded;
  std::string_view key = raw_key;
  if (f('b')) {
    auto d = base64_decode(raw_key);
    if (!d || d->size() > max_key_length) return line(out, "CLIENT_ERROR error decoding key");
    decoded = std::move(*d);
    key = decoded;
  }
  ++env.tally.cmd_meta;
  ++env.tally.cmd_get;
  const bool want_value = f('v');
  mg_view view;
  auto capture = [&](const cache::item_ref& it) {
    view.cas = it.cas();
    view.flags = it.flags();
    view.exptime = it.exptime();
    view.last_access = it.last_access();
    view.fetched = it.fetched();
    view.stale = it.stale();
    view.win_sent = it.win_sent();
    view.size = it.value().size();
    if (want_value) view.value.assign(it.value());
  };
  bool hit = false;
  bool won = false;
  const std::optional<expiry> touch_to =
      touch_ttl ? std::optional<expiry>(env.expiry_of(*touch_ttl)) : std::nullopt;
  auto mutate = [&](cache::item_ref& it) -> cache::decision {
    // Under the item's lock: who wins the right to refill a stale or soon
    // expiring item is decided here, once.
    if (touch_to) {
      if (touch_to->already_expired) return cache::erase{};
      it.set_exptime(touch_to->at);
    }
    const bool recache = recache_ttl && it.exptime() != 0 && ttl_left(it.exptime(), env.now) < *recache_ttl;
    if ((it.stale() || recache) && !it.win_sent()) {
      it.set_win_sent(true);
      won = true;
    }
    return cache::keep{};
  };
  auto read_and_mutate = [&](cache::item_ref& it) {
    capture(it);
    return mutate(it);
  };
  hit = f('u') ? read_unbumped(env.ctx.store, key, env.now, read_and_mutate)
               : read_mutable(env.ctx.store, key, env.now, read_and_mutate);
  const cache::rel_time exptime_before = view.exptime;
  if (hit && touch_to) {
    view.exptime = touch_to->at;
    ++env.tally.cmd_touch;
    ++env.tally.touch_hits;
  }
  bool created = false;
  if (!hit && vivify_ttl) {
    // N: the first client to miss creates an empty item and wins the refill
    // (W); others see it with Z until the winner stores the value.
    const expiry e = env.expiry_of(*vivify_ttl);
    const auto r = env.ctx.store.modify(key, env.now, [&](cache::item_ref* it) -> cache::decision {
      if (it != nullptr) {
        capture(*it);
        return cache::keep{};
      }
      cache::new_value v;
      v.exptime = stored_exptime(e, env.now);
      v.cas = explicit_cas;
      v.win_sent = true;
      created = true;
      return v;
    });
    if (created && r.error == cache::store_error::none) {
      view = mg_view{};
      view.cas = r.cas;
      view.exptime = stored_exptime(e, env.now);
      view.last_access = env.now;
      won = true;
      hit = true;
    } else if (!created) {
      hit = true;  // another client created it since our read
    }
  }
  ++(hit ? env.tally.get_hits : env.tally.get_misses);
  if (!hit) {
    if (f('q')) return;
    out.append("EN");
    // A miss echoes the key as the client sent it, then " b" when that was
    // base64, as 1.6.18 does (and as md, ms and ma do).
    append_echo_tokens(out, f, raw_key, f('b'));
    out.append("\r\n");
    return;
  }
  if (want_value) {
    out.append("VA ");
    append_number(out, view.size);
  } else {
    out.append("HD");
  }
  // memcached applies the flags in the client's order: a t before T (or,
  // for an item N just created, before N) reports the TTL the item had then.
  cache::rel_time shown_exptime = created ? 0 : exptime_before;
  for (std::size_t i = 0; i < f.count; ++i) {
    const char c = f.tokens[i][0];
    switch (c) {
      case 'c':
        out.append(" c");
        append_number(out, view.cas);
        break;
      case 'f':
        out.append(" f");
        append_number(out, view.flags);
        break;
      case 'h':
        out.append(view.fetched ? " h1" : " h0");
        break;
      case 'k':
        out.append(" k");
        // 1.6.18 answers the decoded key, without " b", for an item stored
        // by a text command; for one stored by ms with b it answers the
        // base64 key and " b", which needs a mark on the item we do not keep.
        out.append(key);
        break;
      case 'l':
        out.append(" l");
        append_number(out, env.now >= view.last_access ? env.now - view.last_access : 0);
        break;
      case 'O':
        out.push_back(' ');
        out.append(f.tokens[i]);
        break;
      case 's':
        out.append(" s");
        append_number(out, view.size);
        break;
      case 't':
        out.append(" t");
        append_signed(out, ttl_left(shown_exptime, env.now));
        break;
      case 'T':
        if (!created) shown_exptime = view.exptime;
        break;
      case 'N':
        if (created) shown_exptime = view.exptime;
        break;
      default:
        break;
    }
  }
  if (view.win_sent) out.append(" Z");
  if (view.stale) out.append(" X");
  if (won) out.append(" W");
  out.append("\r\n");
  if (want_value) {
    out.append(view.value);
    out.append("\r\n");
  }
}

}  // namespace detail

}  // namespace dhtkit_cache

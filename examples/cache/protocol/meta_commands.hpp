// memcached's meta protocol: mg, ms, md, ma, mn and me, with the flags
// clients use, the return codes HD VA EN NS EX NF MN, stale items and win
// tokens (W X Z), quiet mode (q) and base64 keys (b).
//
//   dhtkit_cache::meta_set_request pending;
//   auto r = dhtkit_cache::run_meta_line(env, dhtkit_cache::tokenize("ms k 5 T60 c"), out, pending);
//   // r.outcome == line_outcome::read_value, r.length == 5; once the value is read:
//   dhtkit_cache::complete_meta_set(env, pending, "hello", out);     // out == "HD c1\r\n"
//
// memcached 1.6.18 decides the details doc/protocol.txt leaves open (see
// tests/cache/conformance_rows.txt): each command's error strings ("invalid
// flag" for mg and ms, "invalid or duplicate flag" for md and ma), what q
// hides (EN for mg; HD for ms, md and ma -- but not the HD of an ma that
// created the item), return tokens in the order the client gave the flags,
// then Z (a win token was handed out already), X (stale), W (you won: fetch
// and refill), and mg's k flag answering the decoded key of a base64 key.
//
// Flags 1.6.18 does not have and dhtkit-cache implements as
// doc/protocol.txt describes them: E (explicit CAS) on mg, ms, md and ma, and
// x (drop the value, keep the item) on md. With those a request gets a
// result where 1.6.18 answers "CLIENT_ERROR invalid flag".
// Also as 1.6.18 (not as the doc): ms's N does not create an item in append
// mode, it is accepted and ignored.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "dhtkit/cache/store.hpp"
#include "protocol/request.hpp"
#include "protocol/text_commands.hpp"

namespace dhtkit_cache {

// An ms waiting for its value block.
struct meta_set_request {
  std::string key;          // decoded
  std::string reply_flags;  // the return tokens other than c (known once stored)
  bool want_cas = false;    // c: return the new CAS, placed at cas_at in reply_flags
  std::size_t cas_at = 0;
  bool quiet = false;
  char mode = 'S';  // S set, E add, A append, P prepend, R replace
  std::uint32_t flags = 0;
  std::int32_t ttl = 0;
  std::optional<std::uint64_t> compare_cas;   // C
  std::optional<std::uint64_t> explicit_cas;  // E
  bool invalidate = false;                    // I
};

namespace detail {

inline constexpr std::size_t max_opaque_length = 32;

// The flags of one meta request, in the order given.
struct meta_flags {
  std::array<std::string_view, max_tokens> tokens{};  // each flag token, in order
  std::size_t count = 0;
  std::array<std::string_view, 128> arg{};  // by flag letter: the token's argument
  std::array<bool, 128> has{};
  bool operator()(char c) const { return has[static_cast<unsigned char>(c) & 127]; }
  std::string_view operator[](char c) const { return arg[static_cast<unsigned char>(c) & 127]; }
};

enum class flag_error { none, invalid, duplicate, opaque_too_long };

// memcached refuses a meta command of 20 tokens or more (its flag buffer).
inline constexpr std::size_t max_meta_tokens = 19;

inline flag_error parse_meta_flags(const token_list& t, std::size_t first, std::string_view allowed,
                                   meta_flags& f) {
  for (std::size_t i = first; i < t.size(); ++i) {
    const std::string_view tok = t[i];
    const char c = tok[0];
    if (static_cast<unsigned char>(c) >= 128 || allowed.find(c) == std::string_view::npos)
      return flag_error::invalid;
    if (f.has[c]) return flag_error::duplicate;
    f.has[c] = true;
    f.arg[c] = tok.substr(1);
    f.tokens[f.count++] = tok;
    if (c == 'O' && tok.size() - 1 > max_opaque_length) return flag_error::opaque_too_long;
  }
  return flag_error::none;
}

// Standard base64 with padding, as memcached's b flag uses.
inline std::optional<std::string> base64_decode(std::string_view in) {
  if (in.empty() || in.size() % 4 != 0) return std::nullopt;
  auto val = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  std::string out;
  for (std::size_t i = 0; i < in.size(); i += 4) {
    int v[4];
    int pad = 0;
    for (int j = 0; j < 4; ++j) {
      const char c = in[i + j];
      if (c == '=' && i + 4 == in.size() && j >= 2) {
        v[j] = 0;
        ++pad;
      } else {
        if (pad > 0) return std::nullopt;
        v[j] = val(c);
        if (v[j] < 0) return std::nullopt;
      }
    }
    const std::uint32_t n = (std::uint32_t(v[0]) << 18) | (std::uint32_t(v[1]) << 12) |
                            (std::uint32_t(v[2]) << 6) | std::uint32_t(v[3]);
    out.push_back(static_cast<char>(n >> 16));
    if (pad < 2) out.push_back(static_cast<char>(n >> 8 & 0xFF));
    if (pad < 1) out.push_back(static_cast<char>(n & 0xFF));
  }
  return out;
}

inline std::optional<std::int32_t> flag_i32(const meta_flags& f, char c) { return parse_i32_wrapping(f[c]); }
inline std::optional<std::uint64_t> flag_u64(const meta_flags& f, char c) { return parse_u64(f[c]); }

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

// mg -----------------------------------------------------------------------

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
      v.exptime = e.already_expired ? 0 : e.at;
      v.cas = explicit_cas;
      v.win_sent = true;
      created = true;
      return v;
    });
    if (created && r.error == cache::store_error::none) {
      view = mg_view{};
      view.cas = r.cas;
      view.exptime = e.already_expired ? 0 : e.at;
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
    for (std::size_t i = 0; i < f.count; ++i) {
      const char c = f.tokens[i][0];
      if (c == 'O') {
        out.push_back(' ');
        out.append(f.tokens[i]);
      } else if (c == 'k') {
        out.append(" k");
        out.append(key);
      }
    }
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
        out.append(key);  // 1.6.18 answers the decoded key, without " b"
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

// ms -----------------------------------------------------------------------

inline line_result meta_set(command_env& env, const token_list& t, std::string& out, meta_set_request& req) {
  if (t.size() < 2) {
    line(out, "ERROR");
    return {};
  }
  if (t.size() > max_meta_tokens) {
    line(out, "CLIENT_ERROR options flags too long");
    return {};
  }
  const std::string_view raw_key = t[1];
  if (raw_key.size() > max_key_length || t.size() < 3) {
    line(out, bad_format);
    return {};
  }
  const auto length = parse_value_length(t[2]);
  if (!length) {
    line(out, bad_format);
    return {};
  }
  auto fail = [&](std::string_view why) {
    line(out, why);
    return line_result{line_outcome::swallow, *length};
  };
  meta_flags f;
  switch (parse_meta_flags(t, 3, "bcCFIkOqstTMNvE", f)) {
    case flag_error::none:
      break;
    case flag_error::invalid:
      return fail("CLIENT_ERROR invalid flag");
    case flag_error::duplicate:
      return fail("CLIENT_ERROR duplicate flag");
    case flag_error::opaque_too_long:
      return fail("CLIENT_ERROR opaque token too long");
  }
  req = meta_set_request{};
  if (f('F')) {
    const auto v = parse_flags(f['F']);
    if (!v) return fail(bad_format);
    req.flags = *v;
  }
  if (f('T')) {
    const auto v = flag_i32(f, 'T');
    if (!v) return fail("CLIENT_ERROR bad token in command line format");
    req.ttl = *v;
  }
  if (f('C') && !(req.compare_cas = flag_u64(f, 'C')))
    return fail("CLIENT_ERROR bad token in command line format");
  if (f('E') && !(req.explicit_cas = flag_u64(f, 'E')))
    return fail("CLIENT_ERROR bad token in command line format");
  if (f('N') && !flag_i32(f, 'N')) return fail("CLIENT_ERROR bad token in command line format");
  if (f('M')) {
    const std::string_view m = f['M'];
    if (m.size() != 1) return fail("CLIENT_ERROR incorrect length for M token");
    if (std::string_view("SEAPR").find(m[0]) == std::string_view::npos)
      return fail("CLIENT_ERROR invalid mode for ms M token");
    req.mode = m[0];
  }
  if (f('b')) {
    auto d = base64_decode(raw_key);
    if (!d || d->size() > max_key_length) return fail("CLIENT_ERROR error decoding key");
    req.key = std::move(*d);
  } else {
    req.key.assign(raw_key);
  }
  if (item_size(req.key.size(), *length) > env.ctx.store.config().max_item_size) {
    if (req.mode == 'S')
      env.ctx.store.modify(req.key, env.now, [](cache::item_ref*) { return cache::erase{}; });
    return fail("SERVER_ERROR object too large for cache");
  }
  req.quiet = f('q');
  req.invalidate = f('I');
  for (std::size_t i = 0; i < f.count; ++i) {
    const char c = f.tokens[i][0];
    if (c == 'c') {
      req.want_cas = true;
      req.cas_at = req.reply_flags.size();
    } else if (c == 'O') {
      req.reply_flags.push_back(' ');
      req.reply_flags.append(f.tokens[i]);
    } else if (c == 'k') {
      req.reply_flags.append(" k");
      req.reply_flags.append(raw_key);
      if (f('b')) req.reply_flags.append(" b");
    }
  }
  return {line_outcome::read_value, *length};
}

}  // namespace detail

inline void complete_meta_set(command_env& env, const meta_set_request& req, std::string_view value,
                              std::string& out) {
  ++env.tally.cmd_set;
  ++env.tally.cmd_meta;
  const expiry e = env.expiry_of(req.ttl);
  enum { stored, not_stored, exists, not_found } result = stored;
  const auto r = env.ctx.store.modify(req.key, env.now, [&](cache::item_ref* it) -> cache::decision {
    cache::new_value v;
    v.head = value;
    v.flags = req.flags;
    v.exptime = e.at;
    v.cas = req.explicit_cas;
    if (req.compare_cas) {
      if (it == nullptr) {
        result = not_found;
        return cache::keep{};
      }
      if (it->cas() != *req.compare_cas) {
        // I: a CAS older than the item's still stores, marking it stale.
        if (!(req.invalidate && *req.compare_cas < it->cas())) {
          result = exists;
          return cache::keep{};
        }
        v.stale = true;
      }
    }
    switch (req.mode) {
      case 'E':
        if (it != nullptr) {
          result = not_stored;
          return cache::keep{};
        }
        break;
      case 'R':
        if (it == nullptr) {
          result = not_stored;
          return cache::keep{};
        }
        break;
      case 'A':
      case 'P':
        if (it == nullptr) {
          result = not_stored;
          return cache::keep{};
        }
        v.head = req.mode == 'A' ? it->value() : value;
        v.tail = req.mode == 'A' ? value : it->value();
        v.flags = it->flags();
        v.exptime = it->exptime();
        return v;
      default:
        break;
    }
    if (e.already_expired) return cache::erase{};
    return v;
  });
  if (r.error != cache::store_error::none && result == stored) {
    if (req.mode == 'A' || req.mode == 'P') {
      result = not_stored;
    } else {
      return detail::line(out, detail::store_error_text(r.error));
    }
  }
  switch (result) {
    case stored:
      if (req.quiet) return;
      out.append("HD");
      break;
    case not_stored:
      out.append("NS");
      break;
    case exists:
      out.append("EX");
      break;
    case not_found:
      out.append("NF");
      break;
  }
  if (req.want_cas && result == stored) {
    std::string c = " c";
    append_number(c, r.cas);
    out.append(req.reply_flags, 0, req.cas_at);
    out.append(c);
    out.append(req.reply_flags, req.cas_at);
  } else {
    out.append(req.reply_flags);
  }
  out.append("\r\n");
}

namespace detail {

// md -----------------------------------------------------------------------

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
      v.exptime = e ? (e->already_expired ? 0 : e->at) : it->exptime();
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

// ma -----------------------------------------------------------------------

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
      exptime_before = exptime = v.exptime = e.already_expired ? 0 : e.at;
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
      exptime = v.exptime = e.already_expired ? 0 : e.at;
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

// me -----------------------------------------------------------------------

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

// Runs one meta command line (t[0] is two bytes starting with 'm').
inline line_result run_meta_line(command_env& env, const token_list& t, std::string& out,
                                 meta_set_request& req) {
  switch (t[0][1]) {
    case 'g':
      detail::meta_get(env, t, out);
      return {};
    case 's':
      return detail::meta_set(env, t, out, req);
    case 'd':
      detail::meta_delete(env, t, out);
      return {};
    case 'a':
      detail::meta_arithmetic(env, t, out);
      return {};
    case 'n':
      out.append("MN\r\n");
      return {};
    case 'e':
      detail::meta_debug(env, t, out);
      return {};
    default:
      out.append("ERROR\r\n");
      return {};
  }
}

inline bool is_meta_command(std::string_view cmd) { return cmd.size() == 2 && cmd[0] == 'm'; }

}  // namespace dhtkit_cache

// memcached's text protocol: runs one command line (and, for the storage
// commands, the value block that follows it) against the store and writes
// the reply memcached 1.6.18 would send, byte for byte.
//
//   dhtkit_cache::text_command_state st;
//   auto r = dhtkit_cache::run_text_line(env, "set k 0 0 5", out, st);
//   // r.outcome == line_outcome::read_value, r.length == 5: the session reads
//   // 5 bytes + "\r\n", then:
//   dhtkit_cache::complete_storage(env, st.storage, "hello", out);   // out == "STORED\r\n"
//
// Where doc/protocol.txt is vague, the running memcached decided (see
// tests/cache/conformance_rows.txt): which argument counts are ERROR rather
// than CLIENT_ERROR, that noreply silences errors too, that a too-large value
// is skipped but a malformed length is not (its data is then read as a
// command), that a set too large deletes the old item, that incr pads a
// shorter result with spaces to the old length.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

#include "dhtkit/cache/store.hpp"
#include "protocol/request.hpp"
#include "protocol/stats_report.hpp"

namespace dhtkit_cache {

namespace cache = dhtkit::cache;

enum class storage_op { set, add, replace, append, prepend, cas };

// A storage command waiting for its value block.
struct storage_request {
  storage_op op = storage_op::set;
  std::string key;
  std::uint32_t flags = 0;
  std::int32_t exptime = 0;
  std::uint64_t cas_unique = 0;
  bool noreply = false;
};

// A get/gets/gat/gats being answered a few keys at a time (so its output is
// bounded by the session's high-water mark plus one item, however many keys
// the line names).
struct multiget_request {
  bool active = false;
  bool with_cas = false;  // gets, gats
  bool touch = false;     // gat, gats
  std::int32_t exptime = 0;
  std::string keys;     // the rest of the line
  std::size_t pos = 0;  // next key starts at or after this
};

struct text_command_state {
  storage_request storage;
  multiget_request multiget;
};

struct line_result {
  line_outcome outcome = line_outcome::done;
  std::size_t length = 0;  // read_value / swallow: the value's length
};

// A read whose callback may set metadata (touch, gat, meta's win tokens) and
// returns a decision: keep, or erase (a touch to a time already past). The
// item counts as used (LRU bump, access record), as memcached's touch and gat
// do; an erase takes a second, short trip under the lock.
template <class F>
bool read_mutable(cache::store& store, std::string_view key, cache::rel_time now, F&& f) {
  bool erase_it = false;
  const bool hit = store.read(
      key, now, [&](cache::item_ref& it) { erase_it = std::holds_alternative<cache::erase>(f(it)); });
  if (erase_it) store.modify(key, now, [](cache::item_ref*) -> cache::decision { return cache::erase{}; });
  return hit;
}

// The same without counting as a use (no LRU bump, no access record), for
// meta's u flag: modify() with keep does neither.
template <class F>
bool read_unbumped(cache::store& store, std::string_view key, cache::rel_time now, F&& f) {
  bool hit = false;
  store.modify(key, now, [&](cache::item_ref* it) -> cache::decision {
    if (it == nullptr) return cache::keep{};
    hit = true;
    return f(*it);
  });
  return hit;
}

namespace detail {

inline void reply(std::string& out, bool noreply, std::string_view line) {
  if (noreply) return;
  out.append(line);
  out.append("\r\n");
}

inline constexpr std::string_view bad_format = "CLIENT_ERROR bad command line format";

inline void append_value_header(std::string& out, const cache::item_ref& it, bool with_cas) {
  out.append("VALUE ");
  out.append(it.key());
  out.push_back(' ');
  append_number(out, it.flags());
  out.push_back(' ');
  append_number(out, it.value().size());
  if (with_cas) {
    out.push_back(' ');
    append_number(out, it.cas());
  }
  out.append("\r\n");
}

inline line_result storage_line(command_env& env, const token_list& t, storage_op op, std::string& out,
                                storage_request& req) {
  const bool is_cas = op == storage_op::cas;
  const std::size_t args = is_cas ? 6 : 5;  // tokens, the command included
  if (t.size() != args && t.size() != args + 1) {
    out.append("ERROR\r\n");
    return {};
  }
  req.op = op;
  // As memcached: a last token "noreply" silences the command, even where
  // it stands in for a required argument (which then fails, silently).
  req.noreply = t.last_is("noreply");
  const std::string_view key = t[1];
  if (key.size() > max_key_length) {
    reply(out, req.noreply, bad_format);
    return {};
  }
  const auto flags = parse_flags(t[2]);
  const auto exptime = parse_i32_wrapping(t[3]);
  const auto length = parse_value_length(t[4]);
  std::optional<std::uint64_t> unique = std::uint64_t{0};
  if (is_cas) unique = parse_u64(t[5]);
  if (!flags || !exptime || !length || !unique) {
    reply(out, req.noreply, bad_format);
    return {};
  }
  if (item_size(key.size(), *length) > env.ctx.store.config().max_item_size) {
    reply(out, req.noreply, "SERVER_ERROR object too large for cache");
    // memcached drops the old value of a set that cannot be stored, so a
    // reader never gets the value the client meant to replace.
    if (op == storage_op::set)
      env.ctx.store.modify(key, env.now, [](cache::item_ref*) { return cache::erase{}; });
    return {line_outcome::swallow, *length};
  }
  req.key.assign(key);
  req.flags = *flags;
  req.exptime = *exptime;
  req.cas_unique = *unique;
  return {line_outcome::read_value, *length};
}

inline std::string_view store_error_text(cache::store_error e) {
  return e == cache::store_error::too_large ? "SERVER_ERROR object too large for cache"
                                            : "SERVER_ERROR out of memory storing object";
}

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

inline line_result multiget_line(std::string_view line, const token_list& t, bool with_cas, bool touch,
                                 std::string& out, multiget_request& mg) {
  if (t.size() < 2) {
    out.append("ERROR\r\n");
    return {};
  }
  // The keys are what follows the command (and the exptime), read from the
  // line itself: a multiget may name more keys than max_tokens.
  std::size_t pos = static_cast<std::size_t>(t[0].data() - line.data()) + t[0].size();
  if (touch) {
    const auto exptime = parse_i32_wrapping(t[1]);
    if (!exptime) {
      out.append("CLIENT_ERROR invalid exptime argument\r\n");
      return {};
    }
    mg.exptime = *exptime;
    pos = static_cast<std::size_t>(t[1].data() - line.data()) + t[1].size();
  }
  std::string_view keys = line.substr(pos);
  // memcached answers a multiget naming one over-long key with the error
  // alone (it throws away the values already built), so check them all first.
  for (std::size_t i = 0; i < keys.size();) {
    while (i < keys.size() && keys[i] == ' ') ++i;
    const std::size_t start = i;
    while (i < keys.size() && keys[i] != ' ') ++i;
    if (i - start > max_key_length) {
      out.append(bad_format);
      out.append("\r\n");
      return {};
    }
  }
  mg.active = true;
  mg.with_cas = with_cas;
  mg.touch = touch;
  mg.keys.assign(keys);
  mg.pos = 0;
  return {line_outcome::multiget, 0};
}

}  // namespace detail

// Writes the replies of the multiget's next keys until out reaches
// high_water (or the keys end, with "END"). Returns true when finished.
inline bool continue_multiget(command_env& env, multiget_request& mg, std::string& out,
                              std::size_t high_water) {
  const std::string_view keys(mg.keys);
  const expiry e = env.expiry_of(mg.exptime);
  while (out.size() < high_water) {
    while (mg.pos < keys.size() && keys[mg.pos] == ' ') ++mg.pos;
    if (mg.pos >= keys.size()) {
      out.append("END\r\n");
      mg.active = false;
      mg.keys.clear();
      return true;
    }
    const std::size_t start = mg.pos;
    while (mg.pos < keys.size() && keys[mg.pos] != ' ') ++mg.pos;
    const std::string_view key = keys.substr(start, mg.pos - start);
    auto emit = [&](const cache::item_ref& it) {
      detail::append_value_header(out, it, mg.with_cas);
      out.append(it.value());
      out.append("\r\n");
    };
    bool hit = false;
    ++env.tally.cmd_get;
    if (mg.touch) {
      ++env.tally.cmd_touch;
      hit = read_mutable(env.ctx.store, key, env.now, [&](cache::item_ref& it) -> cache::decision {
        emit(it);
        if (e.already_expired) return cache::erase{};
        it.set_exptime(e.at);
        return cache::keep{};
      });
      ++(hit ? env.tally.touch_hits : env.tally.touch_misses);
    } else {
      hit = env.ctx.store.read(key, env.now, emit);
    }
    ++(hit ? env.tally.get_hits : env.tally.get_misses);
  }
  return false;
}

// Runs one text command line. Replies that need no value are written to out.
inline line_result run_text_line(command_env& env, std::string_view line, const token_list& t,
                                 std::string& out, text_command_state& st) {
  const std::string_view cmd = t[0];
  using detail::reply;
  if (cmd == "get" || cmd == "bget") return detail::multiget_line(line, t, false, false, out, st.multiget);
  if (cmd == "gets") return detail::multiget_line(line, t, true, false, out, st.multiget);
  if (cmd == "gat") return detail::multiget_line(line, t, false, true, out, st.multiget);
  if (cmd == "gats") return detail::multiget_line(line, t, true, true, out, st.multiget);
  if (cmd == "set") return detail::storage_line(env, t, storage_op::set, out, st.storage);
  if (cmd == "add") return detail::storage_line(env, t, storage_op::add, out, st.storage);
  if (cmd == "replace") return detail::storage_line(env, t, storage_op::replace, out, st.storage);
  if (cmd == "append") return detail::storage_line(env, t, storage_op::append, out, st.storage);
  if (cmd == "prepend") return detail::storage_line(env, t, storage_op::prepend, out, st.storage);
  if (cmd == "cas") return detail::storage_line(env, t, storage_op::cas, out, st.storage);
  if (cmd == "incr" || cmd == "decr") {
    detail::arithmetic(env, t, cmd == "incr", out);
    return {};
  }
  if (cmd == "delete") {
    detail::remove(env, t, out);
    return {};
  }
  if (cmd == "touch") {
    detail::touch(env, t, out);
    return {};
  }
  if (cmd == "flush_all") {
    detail::flush_all(env, t, out);
    return {};
  }
  if (cmd == "version") {
    out.append("VERSION ");
    out.append(env.ctx.settings.version);
    out.append("\r\n");
    return {};
  }
  if (cmd == "verbosity") {
    detail::verbosity(env, t, out);
    return {};
  }
  if (cmd == "quit") return {line_outcome::close, 0};
  if (cmd == "shutdown") {
    if (!env.ctx.settings.allow_shutdown) {
      out.append("ERROR: shutdown not enabled\r\n");
      return {};
    }
    if (t.size() == 1 || (t.size() == 2 && t[1] == "graceful")) {
      if (env.ctx.request_shutdown) env.ctx.request_shutdown();
      return {line_outcome::close, 0};
    }
    out.append("CLIENT_ERROR invalid shutdown mode\r\n");
    return {};
  }
  if (cmd == "stats") {
    write_stats(env, t, out);
    return {};
  }
  out.append("ERROR\r\n");
  return {};
}

// Completes a storage command once its value block arrived.
inline void complete_storage(command_env& env, const storage_request& req, std::string_view value,
                             std::string& out) {
  using detail::reply;
  ++env.tally.cmd_set;
  const expiry e = env.expiry_of(req.exptime);
  enum { stored, not_stored, exists, not_found } result = stored;
  const auto r = env.ctx.store.modify(req.key, env.now, [&](cache::item_ref* it) -> cache::decision {
    cache::new_value v;
    v.head = value;
    v.flags = req.flags;
    v.exptime = e.at;
    switch (req.op) {
      case storage_op::set:
        break;
      case storage_op::add:
        if (it != nullptr) {
          result = not_stored;
          return cache::keep{};
        }
        break;
      case storage_op::replace:
        if (it == nullptr) {
          result = not_stored;
          return cache::keep{};
        }
        break;
      case storage_op::append:
      case storage_op::prepend:
        if (it == nullptr) {
          result = not_stored;
          return cache::keep{};
        }
        // The item keeps its flags and expiry; only the data grows.
        v.head = req.op == storage_op::append ? it->value() : value;
        v.tail = req.op == storage_op::append ? value : it->value();
        v.flags = it->flags();
        v.exptime = it->exptime();
        return v;
      case storage_op::cas:
        if (it == nullptr) {
          result = not_found;
          return cache::keep{};
        }
        if (it->cas() != req.cas_unique) {
          result = exists;
          return cache::keep{};
        }
        break;
    }
    if (e.already_expired) return cache::erase{};
    return v;
  });
  if (req.op == storage_op::cas) {
    if (result == not_found) ++env.tally.cas_misses;
    if (result == exists) ++env.tally.cas_badval;
    if (result == stored && r.error == cache::store_error::none) ++env.tally.cas_hits;
  }
  if (r.error != cache::store_error::none) {
    // An append or prepend whose result would not fit is NOT_STORED in
    // memcached; a plain store that cannot be kept is a SERVER_ERROR.
    if (req.op == storage_op::append || req.op == storage_op::prepend)
      return reply(out, req.noreply, "NOT_STORED");
    return reply(out, req.noreply, detail::store_error_text(r.error));
  }
  switch (result) {
    case stored:
      return reply(out, req.noreply, "STORED");
    case not_stored:
      return reply(out, req.noreply, "NOT_STORED");
    case exists:
      return reply(out, req.noreply, "EXISTS");
    case not_found:
      return reply(out, req.noreply, "NOT_FOUND");
  }
}

}  // namespace dhtkit_cache

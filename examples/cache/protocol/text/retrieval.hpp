// The text retrieval commands (get, bget, gets, gat, gats): a multiget is
// checked whole, then answered a few keys at a time so its output stays
// bounded however many keys the line names.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "dhtkit/cache/store.hpp"
#include "protocol/command_result.hpp"
#include "protocol/mutable_reads.hpp"
#include "protocol/request.hpp"

namespace dhtkit_cache {

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

namespace detail {

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

}  // namespace dhtkit_cache

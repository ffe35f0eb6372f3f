// ms: the command line is checked and the request kept until its value block
// has been read, then stored in the mode M names, with C, E and I applied.
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
  bool drop_old = false;  // too large in a cluster: the old item goes at the coordinator (session.hpp)
};

namespace detail {

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
    if (req.mode == 'S' && env.clustered)
      req.drop_old = true;
    else if (req.mode == 'S')
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

}  // namespace dhtkit_cache

// The text storage commands (set, add, replace, append, prepend, cas): the
// command line is checked and the request kept until its value block has
// been read, then the value is stored with the reply memcached sends.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "dhtkit/cache/store.hpp"
#include "protocol/command_result.hpp"
#include "protocol/request.hpp"

namespace dhtkit_cache {

enum class storage_op { set, add, replace, append, prepend, cas };

// A storage command waiting for its value block.
struct storage_request {
  storage_op op = storage_op::set;
  std::string key;
  std::uint32_t flags = 0;
  std::int32_t exptime = 0;
  std::uint64_t cas_unique = 0;
  bool noreply = false;
  // A set too large to store, in a cluster: the old item must go, at the
  // key's coordinator (the session hands that on; see session.hpp).
  bool drop_old = false;
};

namespace detail {

inline line_result storage_line(command_env& env, const token_list& t, storage_op op, std::string& out,
                                storage_request& req) {
  const bool is_cas = op == storage_op::cas;
  const std::size_t args = is_cas ? 6 : 5;  // tokens, the command included
  if (t.size() != args && t.size() != args + 1) {
    out.append("ERROR\r\n");
    return {};
  }
  req.op = op;
  req.drop_old = false;
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
    if (op == storage_op::set && env.clustered) {
      req.key.assign(key);
      req.drop_old = true;
    } else if (op == storage_op::set) {
      env.ctx.store.modify(key, env.now, [](cache::item_ref*) { return cache::erase{}; });
    }
    return {line_outcome::swallow, *length};
  }
  req.key.assign(key);
  req.flags = *flags;
  req.exptime = *exptime;
  req.cas_unique = *unique;
  return {line_outcome::read_value, *length};
}

}  // namespace detail

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

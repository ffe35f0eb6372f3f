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
//
// This file dispatches a command line; the commands live in protocol/text/.
#pragma once

#include <string>
#include <string_view>

#include "protocol/command_result.hpp"
#include "protocol/request.hpp"
#include "protocol/stats_report.hpp"
#include "protocol/text/admin.hpp"
#include "protocol/text/arithmetic.hpp"
#include "protocol/text/delete.hpp"
#include "protocol/text/retrieval.hpp"
#include "protocol/text/storage.hpp"
#include "protocol/text/touch.hpp"

namespace dhtkit_cache {

struct text_command_state {
  storage_request storage;
  multiget_request multiget;
};

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

}  // namespace dhtkit_cache

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
//
// This file dispatches a meta command line; the commands live in protocol/meta/.
#pragma once

#include <string>
#include <string_view>

#include "protocol/command_result.hpp"
#include "protocol/meta/arithmetic.hpp"
#include "protocol/meta/debug.hpp"
#include "protocol/meta/delete.hpp"
#include "protocol/meta/get.hpp"
#include "protocol/meta/set.hpp"
#include "protocol/request.hpp"

namespace dhtkit_cache {

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

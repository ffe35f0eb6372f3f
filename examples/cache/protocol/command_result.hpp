// What a command line hands back, shared by the text and the meta commands:
// the line_result the session acts on, the reply that noreply silences, and
// the error lines both protocols write in the same words.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "dhtkit/cache/store.hpp"
#include "protocol/request.hpp"

namespace dhtkit_cache {

struct line_result {
  line_outcome outcome = line_outcome::done;
  std::size_t length = 0;  // read_value / swallow: the value's length
};

namespace detail {

inline void reply(std::string& out, bool noreply, std::string_view line) {
  if (noreply) return;
  out.append(line);
  out.append("\r\n");
}

inline constexpr std::string_view bad_format = "CLIENT_ERROR bad command line format";

inline std::string_view store_error_text(cache::store_error e) {
  return e == cache::store_error::too_large ? "SERVER_ERROR object too large for cache"
                                            : "SERVER_ERROR out of memory storing object";
}

}  // namespace detail

}  // namespace dhtkit_cache

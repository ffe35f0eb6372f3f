// The vocabulary of a parsed request: a command line split into tokens, the
// number syntax memcached accepts in them, key checks, exptime conversion,
// and the small helpers every command uses to write its reply.
//
//   dhtkit_cache::token_list t = dhtkit_cache::tokenize("set k 0 0 5");
//   // t.size() == 5, t[0] == "set"
//   auto flags = dhtkit_cache::parse_flags(t[2]);        // std::optional<std::uint32_t>{0}
//
// The number rules are memcached 1.6.18's as observed on the wire (it parses
// with strtoul/strtol): a leading '+' is fine, "-1" is not an unsigned
// number, a 64-bit overflow is an error, flags wrap modulo 2^32 and 32-bit
// times wrap as a C int would (4294967396 is 100). Nothing here allocates.
#pragma once

#include <array>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "dhtkit/cache/store.hpp"
#include "protocol/server_context.hpp"

namespace dhtkit_cache {

// The store's namespace, under the short name the commands spell it with.
namespace cache = dhtkit::cache;

inline constexpr std::size_t max_key_length = 250;
// memcached splits a command line into at most 24 tokens; no command but the
// multi-key gets (which read their keys from the line itself) takes more.
inline constexpr std::size_t max_tokens = 24;
// Relative exptimes up to 30 days; anything larger is a unix time.
inline constexpr std::int64_t max_relative_exptime = 60 * 60 * 24 * 30;

// A command line split at spaces (runs of spaces count as one separator, as
// in memcached). Holds views into the line: valid while the line is.
class token_list {
 public:
  std::size_t size() const { return count_; }
  bool overflow() const { return overflow_; }  // more than max_tokens tokens
  std::string_view operator[](std::size_t i) const { return i < count_ ? tokens_[i] : std::string_view{}; }
  bool last_is(std::string_view word) const { return count_ > 0 && tokens_[count_ - 1] == word; }

  friend token_list tokenize(std::string_view line);

 private:
  std::array<std::string_view, max_tokens> tokens_{};
  std::size_t count_ = 0;
  bool overflow_ = false;
};

inline token_list tokenize(std::string_view line) {
  token_list t;
  std::size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && line[i] == ' ') ++i;
    if (i == line.size()) break;
    const std::size_t start = i;
    while (i < line.size() && line[i] != ' ') ++i;
    if (t.count_ == max_tokens) {
      t.overflow_ = true;
      break;
    }
    t.tokens_[t.count_++] = line.substr(start, i - start);
  }
  return t;
}

// strtoull's syntax: optional sign, decimal digits, all of the token.
// memcached rejects a result that is negative as a signed number when the
// text has a '-', so "-0" is 0 and "-5" is an error.
inline std::optional<std::uint64_t> parse_u64(std::string_view s) {
  bool negative = false;
  if (!s.empty() && (s[0] == '+' || s[0] == '-')) {
    negative = s[0] == '-';
    s.remove_prefix(1);
  }
  if (s.empty() || s[0] == '+' || s[0] == '-') return std::nullopt;
  std::uint64_t v = 0;
  const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc{} || p != s.data() + s.size()) return std::nullopt;
  if (negative && v != 0) return std::nullopt;
  return v;
}

// strtol into a 64-bit long (overflow is an error), then stored into a C int:
// what memcached does with exptimes and value lengths.
inline std::optional<std::int32_t> parse_i32_wrapping(std::string_view s) {
  const bool plus = !s.empty() && s[0] == '+';
  if (plus) s.remove_prefix(1);
  if (s.empty() || s[0] == '+' || (plus && s[0] == '-')) return std::nullopt;
  std::int64_t v = 0;
  const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc{} || p != s.data() + s.size()) return std::nullopt;
  return static_cast<std::int32_t>(static_cast<std::uint32_t>(static_cast<std::uint64_t>(v)));
}

// Client flags: any unsigned 64-bit number, kept modulo 2^32 (memcached 1.6.18
// stores 4294967296 as 0).
inline std::optional<std::uint32_t> parse_flags(std::string_view s) {
  const auto v = parse_u64(s);
  if (!v) return std::nullopt;
  return static_cast<std::uint32_t>(*v);
}

// A value length: a wrapped int, neither negative nor so large that adding
// the trailing "\r\n" would overflow an int.
inline std::optional<std::size_t> parse_value_length(std::string_view s) {
  const auto v = parse_i32_wrapping(s);
  if (!v || *v < 0 || *v > INT32_MAX - 2) return std::nullopt;
  return static_cast<std::size_t>(*v);
}

// A stored number for incr/decr (strtoull on the value): leading whitespace,
// at least one digit, then only whitespace; no '-'; no 64-bit overflow.
inline std::optional<std::uint64_t> parse_counter_value(std::string_view v) {
  auto space = [](char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
  };
  std::size_t i = 0;
  while (i < v.size() && space(v[i])) ++i;
  if (i < v.size() && v[i] == '+') ++i;
  const std::size_t start = i;
  while (i < v.size() && v[i] >= '0' && v[i] <= '9') ++i;
  if (i == start) return std::nullopt;
  for (std::size_t j = i; j < v.size(); ++j)
    if (!space(v[j])) return std::nullopt;
  std::uint64_t out = 0;
  const auto [p, ec] = std::from_chars(v.data() + start, v.data() + i, out);
  if (ec != std::errc{}) return std::nullopt;
  return out;
}

// When an item expires, from the exptime a client sent (memcached's
// realtime()): 0 never; up to 30 days from now; larger is a unix time;
// negative or in the past means the item is dead on arrival, which the
// commands carry out by deleting instead of storing (same replies, and no
// rel_time before the clock's start is needed).
struct expiry {
  dhtkit::cache::rel_time at = 0;  // 0: never
  bool already_expired = false;
};

inline expiry to_expiry(std::int32_t exptime, std::int64_t process_started_unix,
                        dhtkit::cache::rel_time now) {
  if (exptime == 0) return {};
  if (exptime < 0) return {0, true};
  if (exptime > max_relative_exptime) {
    const std::int64_t rel = std::int64_t{exptime} - process_started_unix;
    if (rel <= 0 || rel <= std::int64_t{now}) return {0, true};
    return {static_cast<dhtkit::cache::rel_time>(rel), false};
  }
  return {static_cast<dhtkit::cache::rel_time>(now + static_cast<dhtkit::cache::rel_time>(exptime)), false};
}

// The exptime to store for an item a command keeps or creates despite an
// expiry already past (meta's N, ma's T, md x T): a time just past, so the
// item is dead on arrival as in memcached -- never 0, which means "never".
inline dhtkit::cache::rel_time stored_exptime(const expiry& e, dhtkit::cache::rel_time now) {
  if (!e.already_expired) return e.at;
  return now > 1 ? now - 1 : 1;
}

// memcached's item size for a key and value (header, CAS, key, value and the
// two terminators): the quantity -I bounds. Checked before a value is read,
// so a client's length never decides what is allocated.
inline std::size_t item_size(std::size_t key_size, std::size_t value_size) {
  return dhtkit::cache::detail::memcached_item_size(key_size, value_size);
}

// Per-session tallies of the command counters, added to the shared atomics
// by flush() (see server_counters).
struct command_tally {
  std::uint64_t cmd_get = 0, cmd_set = 0, cmd_flush = 0, cmd_touch = 0, cmd_meta = 0;
  std::uint64_t get_hits = 0, get_misses = 0, delete_misses = 0, delete_hits = 0;
  std::uint64_t incr_misses = 0, incr_hits = 0, decr_misses = 0, decr_hits = 0;
  std::uint64_t cas_misses = 0, cas_hits = 0, cas_badval = 0, touch_hits = 0, touch_misses = 0;

  void flush(server_counters& c) {
    auto add = [](std::atomic<std::uint64_t>& to, std::uint64_t& from) {
      if (from != 0) to.fetch_add(from, std::memory_order_relaxed);
      from = 0;
    };
    add(c.cmd_get, cmd_get), add(c.cmd_set, cmd_set), add(c.cmd_flush, cmd_flush);
    add(c.cmd_touch, cmd_touch), add(c.cmd_meta, cmd_meta), add(c.get_hits, get_hits);
    add(c.get_misses, get_misses), add(c.delete_misses, delete_misses), add(c.delete_hits, delete_hits);
    add(c.incr_misses, incr_misses), add(c.incr_hits, incr_hits), add(c.decr_misses, decr_misses);
    add(c.decr_hits, decr_hits), add(c.cas_misses, cas_misses), add(c.cas_hits, cas_hits);
    add(c.cas_badval, cas_badval), add(c.touch_hits, touch_hits), add(c.touch_misses, touch_misses);
  }
};

// What a command needs besides its own line: the shared context, the time of
// this request and the session's tallies.
struct command_env {
  server_context& ctx;
  dhtkit::cache::rel_time now;
  command_tally& tally;
  // Commands on keys go to the cluster (a client's session on a cluster
  // node); false on a single server and in a coordinator's own session.
  bool clustered = false;
  expiry expiry_of(std::int32_t exptime) const { return to_expiry(exptime, ctx.process_started_unix, now); }
};

// What the session must do after a command line ran.
enum class line_outcome {
  done,        // the reply (if any) is written
  read_value,  // a value block of the announced length follows: read it, then complete the command
  swallow,     // a value block follows that must be skipped (memcached does so after some errors)
  multiget,    // a get/gets/gat/gats whose keys are written a few at a time
  close,       // quit, or an accepted shutdown
};

// Reply helpers: numbers without allocation.
inline void append_number(std::string& out, std::uint64_t v) {
  char buf[24];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}
inline void append_signed(std::string& out, std::int64_t v) {
  char buf[24];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

// The decimal text of an incr/decr result as memcached stores it: when it is
// no longer than the old value, it is padded with spaces to the old length
// (memcached rewrites the item in place); otherwise it is exactly the number.
inline std::string counter_text(std::uint64_t v, std::size_t old_length) {
  std::string s;
  append_number(s, v);
  if (s.size() < old_length) s.append(old_length - s.size(), ' ');
  return s;
}

}  // namespace dhtkit_cache

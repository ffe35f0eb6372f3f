// Per-command counters and latency histograms for the Prometheus endpoint
// (--metrics-port): how many commands of each kind ran, how each ended, and
// how long the server spent on them.
//
//   dhtkit_cache::command_metrics m;                 // one per worker thread
//   dhtkit_cache::session s(ctx, 1 << 20, {}, &m);   // sessions of that worker
//   ... s.process(out) ...
//   m.count(command_kind::set, reply_outcome::stored);   // what process() recorded
//
// Each worker thread owns one command_metrics and is its only writer, so a
// count is a relaxed load and store, not a locked read-modify-write shared
// by every thread; the scrape (another thread) sums the workers' copies with
// relaxed loads. Without --metrics-port no session has one and nothing is
// measured.
//
// The outcome is read from the first word of the command's reply ("STORED",
// "EN", "CLIENT_ERROR", ...): one rule for the text and the meta protocol,
// and it cannot disagree with what the client saw. For get, gets, gat and
// gats, hit means at least one key was found (a text multiget has no other
// per-command answer); per-key hits and misses are the get_hits and
// get_misses counters. A text command with noreply counts as noreply; a meta
// command whose q flag hid its reply counts as the outcome q hides. A line
// too long to parse counts as a client_error of get (a get line) or other.
//
// Duration is the time the server spent on the command: parsing its line,
// the store, writing its reply into the output buffer, summed over every
// process() call it took (a large multiget resumes several times). It leaves
// out the network and the wait for a value's bytes to arrive, which depend on
// the client.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace dhtkit_cache {

enum class command_kind : std::uint8_t {
  get,
  gets,
  gat,
  gats,
  set,
  add,
  replace,
  append,
  prepend,
  cas,
  incr,
  decr,
  delete_,
  touch,
  flush_all,
  stats,
  version,
  verbosity,
  quit,
  shutdown,
  mg,
  ms,
  md,
  ma,
  mn,
  me,
  other,  // an unknown command or an empty line (answered ERROR)
};
inline constexpr std::size_t command_kinds = static_cast<std::size_t>(command_kind::other) + 1;

// Prometheus label values, in command_kind's order.
inline constexpr std::array<std::string_view, command_kinds> command_names = {
    "get",  "gets",     "gat",  "gats",   "set",   "add",       "replace", "append",  "prepend",
    "cas",  "incr",     "decr", "delete", "touch", "flush_all", "stats",   "version", "verbosity",
    "quit", "shutdown", "mg",   "ms",     "md",    "ma",        "mn",      "me",      "other"};

inline command_kind command_of(std::string_view word) {
  if (word == "bget") return command_kind::get;  // memcached's alias
  for (std::size_t i = 0; i + 1 < command_kinds; ++i)
    if (command_names[i] == word) return static_cast<command_kind>(i);
  return command_kind::other;
}

enum class reply_outcome : std::uint8_t {
  ok,            // done, nothing more specific to say (VERSION, OK, incr's number, MN, ...)
  hit,           // VALUE / VA, or mg's HD
  miss,          // END with no VALUE before it, EN
  stored,        // STORED, ms's HD
  not_stored,    // NOT_STORED, NS
  exists,        // EXISTS, EX: the CAS did not match
  not_found,     // NOT_FOUND, NF
  deleted,       // DELETED, md's HD
  touched,       // TOUCHED
  noreply,       // no reply at all (a text command's noreply)
  error,         // ERROR: an unknown command or a disabled one
  client_error,  // CLIENT_ERROR: the request was malformed
  server_error,  // SERVER_ERROR: too large, out of memory, ...
};
inline constexpr std::size_t reply_outcomes = static_cast<std::size_t>(reply_outcome::server_error) + 1;

inline constexpr std::array<std::string_view, reply_outcomes> outcome_names = {
    "ok",      "hit",     "miss",    "stored", "not_stored",   "exists",      "not_found",
    "deleted", "touched", "noreply", "error",  "client_error", "server_error"};

// What a meta command's HD ("done", no other word) means for it.
inline reply_outcome hd_outcome(command_kind command) {
  switch (command) {
    case command_kind::mg:
      return reply_outcome::hit;
    case command_kind::ms:
      return reply_outcome::stored;
    case command_kind::md:
      return reply_outcome::deleted;
    default:
      return reply_outcome::ok;
  }
}

// The outcome of `command` whose reply starts with `reply`. An empty reply is
// a text command's noreply, or a meta command's q flag, which hides only one
// known outcome per command (mg's EN, and the HD of ms, md and ma): that one.
inline reply_outcome classify_reply(command_kind command, std::string_view reply) {
  if (reply.empty()) {
    if (command == command_kind::mg) return reply_outcome::miss;
    if (command == command_kind::ms || command == command_kind::md || command == command_kind::ma)
      return hd_outcome(command);
    return reply_outcome::noreply;
  }
  const std::string_view word = reply.substr(0, reply.find_first_of(" \r"));
  // ma's VA is its number (the v flag), not a hit.
  if (word == "VALUE" || (word == "VA" && command != command_kind::ma)) return reply_outcome::hit;
  if (word == "END" || word == "EN") return reply_outcome::miss;
  if (word == "STORED") return reply_outcome::stored;
  if (word == "NOT_STORED" || word == "NS") return reply_outcome::not_stored;
  if (word == "EXISTS" || word == "EX") return reply_outcome::exists;
  if (word == "NOT_FOUND" || word == "NF") return reply_outcome::not_found;
  if (word == "DELETED") return reply_outcome::deleted;
  if (word == "TOUCHED") return reply_outcome::touched;
  if (word.starts_with("ERROR")) return reply_outcome::error;  // also "ERROR:" (shutdown without -A)
  if (word == "CLIENT_ERROR") return reply_outcome::client_error;
  if (word == "SERVER_ERROR") return reply_outcome::server_error;
  if (word == "HD") return hd_outcome(command);
  return reply_outcome::ok;
}

// Upper bounds of the latency buckets, in nanoseconds (exported in seconds).
// A get served from memory takes a few hundred nanoseconds to a few
// microseconds; the top buckets catch a stats report, a flush or a stall.
inline constexpr std::array<std::uint64_t, 14> latency_bounds_ns = {
    250,    500,     1'000,   2'500,   5'000,     10'000,     25'000,
    50'000, 100'000, 250'000, 500'000, 1'000'000, 10'000'000, 100'000'000};

inline std::uint64_t steady_ns() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                        std::chrono::steady_clock::now().time_since_epoch())
                                        .count());
}

class command_metrics {
 public:
  using clock_fn = std::uint64_t (*)();

  // The clock is injected so tests see exact durations.
  explicit command_metrics(clock_fn clock = &steady_ns) : clock_(clock) {}
  command_metrics(const command_metrics&) = delete;
  command_metrics& operator=(const command_metrics&) = delete;

  std::uint64_t now_ns() const { return clock_(); }

  // Writer side: only the thread that owns this object.
  void record(command_kind command, reply_outcome outcome, std::uint64_t duration_ns) {
    const auto c = static_cast<std::size_t>(command);
    bump(counts_[c][static_cast<std::size_t>(outcome)], 1);
    std::size_t b = 0;
    while (b < latency_bounds_ns.size() && duration_ns > latency_bounds_ns[b]) ++b;
    bump(buckets_[c][b], 1);  // b == size(): above the last bound (+Inf only)
    bump(duration_sum_ns_[c], duration_ns);
  }

  // Reader side: any thread.
  std::uint64_t count(command_kind command, reply_outcome outcome) const {
    return counts_[static_cast<std::size_t>(command)][static_cast<std::size_t>(outcome)].load(
        std::memory_order_relaxed);
  }
  // Observations in bucket b alone (not cumulative); b == latency_bounds_ns.size() is past the last bound.
  std::uint64_t bucket(command_kind command, std::size_t b) const {
    return buckets_[static_cast<std::size_t>(command)][b].load(std::memory_order_relaxed);
  }
  std::uint64_t duration_sum_ns(command_kind command) const {
    return duration_sum_ns_[static_cast<std::size_t>(command)].load(std::memory_order_relaxed);
  }

 private:
  static void bump(std::atomic<std::uint64_t>& a, std::uint64_t n) {
    a.store(a.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }

  clock_fn clock_;
  std::array<std::array<std::atomic<std::uint64_t>, reply_outcomes>, command_kinds> counts_{};
  std::array<std::array<std::atomic<std::uint64_t>, latency_bounds_ns.size() + 1>, command_kinds> buckets_{};
  std::array<std::atomic<std::uint64_t>, command_kinds> duration_sum_ns_{};
};

// The command a session is in the middle of, for command_metrics: its kind,
// its outcome once the reply starts, and the time spent on it so far.
class command_in_flight {
 public:
  bool open() const { return open_; }

  void start(command_kind kind) {
    kind_ = kind;
    open_ = true;
    classified_ = false;
    elapsed_ns_ = 0;
  }

  // One stretch of work on the command: `reply` is what it appended to the
  // output during that stretch (the first non-empty one decides the outcome).
  void add(std::uint64_t elapsed_ns, std::string_view reply) {
    elapsed_ns_ += elapsed_ns;
    if (!classified_ && !reply.empty()) {
      outcome_ = classify_reply(kind_, reply);
      classified_ = true;
    }
  }

  void finish(command_metrics& m) {
    if (!open_) return;
    m.record(kind_, classified_ ? outcome_ : classify_reply(kind_, {}), elapsed_ns_);
    open_ = false;
  }

 private:
  command_kind kind_ = command_kind::other;
  reply_outcome outcome_ = reply_outcome::ok;
  std::uint64_t elapsed_ns_ = 0;
  bool open_ = false;
  bool classified_ = false;
};

}  // namespace dhtkit_cache

// What a key's coordinator does with a command on that key: it runs the
// commands on one key one after another, each against the key's current
// version, and replicates what the command changed before it replies.
//
//   coordinator<dhtkit::node> c(node, storage, ctx, settings, shared);
//   c.run("k", "incr k 1\r\n", /*noreply=*/false, [](std::string reply) { ... });   // on the node's strand
//
// One command, step by step (all on the DHT node's strand):
//  1. load: the key's versions, from this node's own replica when R = 1 and
//     its range is ready here (no message at all), else a quorum read of R;
//     one winner among them (record.hpp); expired or flushed is absent;
//  2. run: the winner goes into the server's store, which is only a scratch
//     pad in a cluster, and a coordinator's session runs the request's bytes
//     on it -- the very code a single server runs, so the reply is the one a
//     single memcached gives, for every text and meta command alike;
//  3. replicate: if the item changed (value, flags, TTL, CAS, meta state), the
//     new record (a fresh stamp from the hybrid clock) is written with W
//     acknowledgements, superseding the versions read; a deletion writes a
//     tombstone. Only then does the client get its reply; a write that misses
//     its quorum answers SERVER_ERROR with the reason instead.
// The next command on the key waits for the previous one's write, so a
// read-modify-write (incr, cas, append, ...) never races another on its key.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "cluster/hybrid_clock.hpp"
#include "cluster/record.hpp"
#include "dhtkit/node/node.hpp"
#include "protocol/server_context.hpp"
#include "protocol/session.hpp"

namespace dhtkit_cache::cluster {

// What the coordinator and the engine share on the strand.
struct coordinator_state {
  hybrid_clock clock;
  // flush_all: versions stamped before applied_flush are gone.
  std::uint64_t applied_flush = 0;
  std::uint64_t conflicts_resolved = 0;  // live versions that lost to a winner
  std::uint64_t malformed_versions = 0;  // versions that were not cache records
  std::uint64_t commands_run = 0;        // commands this node ran as coordinator
  std::uint64_t writes_failed = 0;       // replications that missed their quorum
  std::uint64_t requests_failed = 0;     // commands answered SERVER_ERROR by the cluster
  // Joined through others recently: a miss in this node's own replica is
  // confirmed by a quorum read (the engine clears it after a while).
  bool young = false;
  // The membership changed in this node's view: a member came back (a
  // partition healed, a link came up, a suspect refuted), or one died or left
  // and its keys' next holders coordinate them now. Either way the node that
  // coordinates a key may hold a copy that misses writes others acknowledged
  // (W of N did not include it), and a command run on that copy would stamp
  // a new version over them (last-writer-wins then discards theirs). Until
  // hinted handoff and anti-entropy have caught the copies up, every load is
  // a quorum read (the engine clears it after a while).
  bool membership_changed = false;

  static std::uint64_t wall_ms() {
    return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                          std::chrono::system_clock::now().time_since_epoch())
                                          .count());
  }
  // Absent for a reader: expired (TTLs are absolute) or flushed.
  bool gone(const cache_record& r, std::int64_t now_unix) const {
    return (r.exptime_unix != 0 && r.exptime_unix <= now_unix) || r.stamp < applied_flush;
  }
};

struct coordinator_settings {
  std::uint32_t n = 3;                           // replicas of a key
  std::uint32_t r = 1;                           // replies a load waits for (1: this node's replica)
  std::uint32_t w = 2;                           // acknowledgements a write waits for
  std::size_t max_value = std::size_t{1} << 20;  // largest value (-I)
  std::size_t max_queued_per_key = 1024;         // commands waiting on one key; more answer SERVER_ERROR
};

template <class Node>
class coordinator {
 public:
  using done_type = std::function<void(std::string reply)>;

  coordinator(Node& node, dhtkit::memory_storage& storage, server_context& ctx, coordinator_settings settings,
              coordinator_state& state)
      : node_(node), storage_(storage), ctx_(ctx), settings_(settings), state_(state) {}

  // On the node's strand. done(reply) runs exactly once, on the strand.
  void run(std::string key, std::string request, bool noreply, done_type done) {
    auto [it, fresh] = queues_.try_emplace(key);
    job j{std::move(key), std::move(request), noreply, std::move(done)};
    if (!fresh) {
      if (it->second.size() >= settings_.max_queued_per_key) {
        ++state_.requests_failed;
        return j.done(j.noreply ? std::string() : "SERVER_ERROR too many commands waiting on this key\r\n");
      }
      it->second.push_back(std::move(j));
      return;
    }
    start(std::move(j));
  }

  // Commands in progress or waiting (for stats).
  std::size_t busy_keys() const { return queues_.size(); }

 private:
  struct job {
    std::string key;
    std::string request;
    bool noreply = false;
    done_type done;
  };

  void start(job j) {
    const auto& core = node_.core();
    if (settings_.r == 1 && !state_.membership_changed && core.holds(j.key) && core.ready(j.key)) {
      auto entry = storage_.get(j.key);
      if (entry) return execute(std::move(j), entry->siblings(), entry->context());
      // A node that joined a while ago and misses a key: the key is absent.
      // A young one may be a node restarted empty that kept its place (its
      // ranges count as ready without a handoff): its miss is checked below.
      if (!state_.young) return execute(std::move(j), {}, {});
    }
    // Off the fast path (this node's copy is not the one to trust: its range
    // is still filling after a join, it is not a holder, it is young and
    // missed, or the membership just changed) a read of R = 1 could meet a replica that missed the last
    // write: read enough replicas to overlap every write quorum (R + W > N).
    dhtkit::request_options o;
    o.r = std::max(settings_.r, std::min(settings_.n, settings_.n + 1 - std::min(settings_.w, settings_.n)));
    std::string key = j.key;
    node_.async_get(key, o, [this, j = std::move(j)](std::error_code ec, dhtkit::get_result r) mutable {
      if (ec) return fail(std::move(j), "reading the key: " + r.describe(ec));
      execute(std::move(j), r.siblings, r.context);
    });
  }

  void execute(job j, const std::vector<dhtkit::versioned_value>& siblings, dhtkit::version_vector context) {
    ++state_.commands_run;
    resolved found = resolve(siblings, settings_.max_value);
    state_.conflicts_resolved += found.discarded;
    state_.malformed_versions += found.malformed;
    const std::int64_t now_unix = static_cast<std::int64_t>(coordinator_state::wall_ms() / 1000);
    std::optional<cache_record> before = std::move(found.winner);
    if (before) state_.clock.observe(before->stamp);
    if (before && state_.gone(*before, now_unix)) before.reset();

    auto& store = ctx_.store;
    const dhtkit::cache::rel_time now = ctx_.now();
    store.modify(j.key, now, [](dhtkit::cache::item_ref*) { return dhtkit::cache::erase{}; });
    if (before) load(store, j.key, *before, now);
    // New CAS uniques come from the shared clock: never below one this key had.
    store.raise_cas(state_.clock.now(coordinator_state::wall_ms()));

    std::string reply = run_session(j.request);
    std::optional<cache_record> after = read_back(store, j.key, now);
    store.modify(j.key, now, [](dhtkit::cache::item_ref*) { return dhtkit::cache::erase{}; });

    if ((!before && !after) || (before && after && before->same_item(*after)))
      return finish(std::move(j), reply);
    // A write this node already knows cannot reach W replicas is refused
    // before anything is stored. The node's put would keep it on this node's
    // copy all the same; cut off from the others, that copy misses what they
    // acknowledged meanwhile, and once the partition heals this write's later
    // stamp would win over theirs: last-writer-wins would discard
    // acknowledged writes for one that failed (tests/faults, minority).
    if (const std::size_t live = live_replicas(j.key); live < settings_.w) {
      ++state_.writes_failed;
      return fail(std::move(j), "quorum not reachable: " + std::to_string(live) + " of " +
                                    std::to_string(settings_.w) + " required replicas live");
    }
    const std::string key = j.key;  // j moves into the completion
    auto on_written = [this, j = std::move(j), reply = std::move(reply)](std::error_code ec,
                                                                         dhtkit::put_result r) mutable {
      if (ec) {
        ++state_.writes_failed;
        return fail(std::move(j), "replicating the write: " + r.describe(ec));
      }
      finish(std::move(j), reply);
    };
    dhtkit::request_options o;
    o.w = settings_.w;
    if (after) {
      after->stamp = state_.clock.now(coordinator_state::wall_ms());
      after->writer = node_.id().value;
      node_.async_put(key, encode_record(*after), std::move(context), o, std::move(on_written));
    } else {
      node_.async_erase(key, std::move(context), o, std::move(on_written));
    }
  }

  // The members of the key's preference list (fallbacks included, as the
  // node's sloppy quorum takes them) that are live in this node's view.
  std::size_t live_replicas(const std::string& key) const {
    const auto& core = node_.core();
    const auto list =
        core.placement().preference_list(core.placement().position(key), core.config().placement.list_length);
    const auto live = core.live_members();
    return static_cast<std::size_t>(std::count_if(list.begin(), list.end(), [&live](dhtkit::node_id id) {
      return std::binary_search(live.begin(), live.end(), id);
    }));
  }

  void load(dhtkit::cache::store& store, const std::string& key, const cache_record& r,
            dhtkit::cache::rel_time now) {
    store.modify(key, now, [&](dhtkit::cache::item_ref*) {
      dhtkit::cache::new_value v;
      v.head = r.value;
      v.flags = r.flags;
      v.exptime = r.exptime_unix == 0 ? 0 : to_rel(r.exptime_unix);
      v.cas = r.cas;
      v.stale = (r.bits & cache_record::stale_bit) != 0;
      v.win_sent = (r.bits & cache_record::win_sent_bit) != 0;
      return dhtkit::cache::decision{v};
    });
  }

  std::optional<cache_record> read_back(dhtkit::cache::store& store, const std::string& key,
                                        dhtkit::cache::rel_time now) {
    std::optional<cache_record> r;
    store.peek(key, now, [&](const dhtkit::cache::item_ref& it) {
      cache_record c;
      c.cas = it.cas();
      c.flags = it.flags();
      c.exptime_unix = it.exptime() == 0 ? 0 : ctx_.process_started_unix + it.exptime();
      c.bits = static_cast<std::uint8_t>((it.stale() ? cache_record::stale_bit : 0) |
                                         (it.win_sent() ? cache_record::win_sent_bit : 0));
      c.value.assign(it.value());
      r = std::move(c);
    });
    return r;
  }

  // An absolute unix time as the store's relative seconds (at least 1: 0 means never).
  dhtkit::cache::rel_time to_rel(std::int64_t unix_time) const {
    const std::int64_t rel = unix_time - ctx_.process_started_unix;
    return rel < 1 ? 1 : static_cast<dhtkit::cache::rel_time>(rel);
  }

  // The request through a coordinator's session: the bytes in, as much as
  // the session takes at a time; its replies out.
  std::string run_session(const std::string& request) {
    session s(ctx_, std::size_t{4} << 20, {}, nullptr, session_role::coordinator);
    std::string out;
    std::size_t fed = 0;
    for (;;) {
      const std::size_t n = std::min(s.input_room(), request.size() - fed);
      if (n > 0) s.receive(std::string_view(request).substr(fed, n));
      fed += n;
      session_status st = session_status::output_full;
      while (st == session_status::output_full) st = s.process(out);
      if (st == session_status::close || fed == request.size() || n == 0) break;
    }
    return out;
  }

  void fail(job j, const std::string& why) {
    ++state_.requests_failed;
    finish(std::move(j), "SERVER_ERROR " + why + "\r\n");
  }

  void finish(job j, std::string reply) {
    std::string key = std::move(j.key);
    j.done(j.noreply ? std::string() : std::move(reply));
    auto it = queues_.find(key);
    if (it == queues_.end()) return;
    if (it->second.empty()) {
      queues_.erase(it);
      return;
    }
    job next = std::move(it->second.front());
    it->second.pop_front();
    start(std::move(next));
  }

  Node& node_;
  dhtkit::memory_storage& storage_;
  server_context& ctx_;
  coordinator_settings settings_;
  coordinator_state& state_;
  // Keys with a command in progress, and the commands waiting behind it.
  std::unordered_map<std::string, std::deque<job>> queues_;
};

}  // namespace dhtkit_cache::cluster

// The put path: a put or delete numbered by a true replica (coordinate) or forwarded
// to one (start_put), replicas replaced after a silence (tick_puts), and forwards
// passed on when not accepted in time (tick_forwards). Out of replica.hpp so the
// class reads first; the design is in its opening comment.
//
// Included at the end of dhtkit/replication/replica.hpp; not to be included alone.
#pragma once

#include "dhtkit/replication/replica.hpp"

namespace dhtkit {

template <storage Storage, replica_placement Placement>
request_id basic_replica<Storage, Placement>::start_put(std::string_view key, bytes value, bool tombstone,
                                                        const version_vector& context, time_point now,
                                                        const request_options& options,
                                                        time_point expires_at) {
  const request_id id = next_id_++;
  const std::uint32_t n = options.n.value_or(config_.n), w = options.w.value_or(config_.w);
  const duration timeout = options.timeout.value_or(config_.request_timeout);
  if (key.empty() || key.size() > config_.max_key_size || value.size() > config_.max_value_size || n < 1 ||
      n > config_.max_n || w < 1 || w > n || !valid_timeout(timeout)) {
    complete_put(id, key, errc::invalid_argument, 0, w);
    return id;
  }
  if (pending() >= config_.max_pending) {
    complete_put(id, key, errc::limit_exceeded, 0, w);
    return id;
  }
  const auto owners = replicas_of(key, n);
  if (std::find(owners.begin(), owners.end(), self_) == owners.end()) {
    // Only a true replica numbers a key's writes: pass it on.
    std::optional<node_id> owner;
    for (const node_id& o : owners) {
      if (healthy(o, now)) {
        owner = o;
        break;
      }
    }
    if (!owner) {
      complete_put(id, key, errc::quorum_not_reached, 0, w);
      return id;
    }
    forward_op f;
    f.message.request = id;
    f.message.key = std::string(key);
    f.message.context = context;
    f.message.value = std::move(value);
    f.message.tombstone = tombstone;
    f.message.expires_at = expires_at.time_since_epoch().count();
    f.message.n = n;
    f.message.w = w;
    f.message.timeout = timeout.count();
    // A little longer than the owner's own deadline, so its answer can arrive.
    f.deadline = now + timeout + config_.replica_timeout;
    f.to = *owner;
    f.tried.push_back(*owner);
    f.sent_at = now;
    send(*owner, f.message);
    ++stats_.forwarded;
    forwards_.emplace(id, std::move(f));
    return id;
  }
  coordinate(id, key, std::move(value), tombstone, context, expires_at, n, w, now + timeout, now,
             std::nullopt);
  return id;
}

template <storage Storage, replica_placement Placement>
void basic_replica<Storage, Placement>::coordinate(request_id id, std::string_view key, bytes value,
                                                   bool tombstone, const version_vector& context,
                                                   time_point expires_at, std::uint32_t n, std::uint32_t w,
                                                   time_point deadline, time_point now,
                                                   std::optional<std::pair<node_id, std::uint64_t>> origin) {
  node_id actor = self_;  // the store may number its writes under a name of its own (storage.hpp)
  if constexpr (requires { store_.actor(); }) {
    if (const node_id a = store_.actor(); a.value != 0) actor = a;
  }
  const dot d{actor, store_.next_counter()};
  result<versioned_entry> written = errc::invalid_argument;
  if (tombstone) {
    written = store_.erase(key, context, d);
  } else {
    versioned_value v;
    v.version = d;
    v.value = std::move(value);
    v.expires_at = expires_at;
    written = store_.put(key, context, v);
  }
  if (!written) {
    finish_put(id, key, written.error(), 0, w, origin);
    return;
  }
  touched(std::string(key));
  put_op op;
  op.key = std::string(key);
  op.entry = std::move(*written);
  op.n = n;
  op.w = w;
  op.acks = 1;  // our own durable write
  op.deadline = deadline;
  op.origin = origin;
  const std::uint64_t pos = placement_.position(key);
  op.candidates = ring_walk(pos, n);
  op.true_replicas = placement_.replicas(pos, n);
  auto [it, inserted] = puts_.emplace(id, std::move(op));
  put_op& p = it->second;
  // Owners that are not targets, in order, get a stand-in each.
  std::vector<node_id> targets = initial_targets(p.candidates, p.true_replicas, n, now);
  std::vector<node_id> missing;
  for (const node_id& o : p.true_replicas)
    if (std::find(targets.begin(), targets.end(), o) == targets.end()) missing.push_back(o);
  std::size_t next_missing = 0;
  for (const node_id& t : targets) {
    if (t == self_) {
      p.targets.push_back({t, {}, now, true, false});
      continue;
    }
    node_id hinted{};
    if (std::find(p.true_replicas.begin(), p.true_replicas.end(), t) == p.true_replicas.end() &&
        next_missing < missing.size())
      hinted = missing[next_missing++];
    send_replica(id, p, t, hinted, now);
  }
  check_put(id, p);
}

template <storage Storage, replica_placement Placement>
void basic_replica<Storage, Placement>::send_replica(request_id id, put_op& p, node_id to, node_id hinted,
                                                     time_point now) {
  p.targets.push_back({to, hinted, now, false, false});
  if (hinted != node_id{}) ++stats_.fallback_writes;
  send(to, detail::repl::replicate{id, p.key, p.entry, hinted});
}

template <storage Storage, replica_placement Placement>
void basic_replica<Storage, Placement>::finish_put(
    request_id id, std::string_view key, std::error_code ec, std::uint32_t acks, std::uint32_t w,
    const std::optional<std::pair<node_id, std::uint64_t>>& origin) {
  if (origin) {
    detail::repl::forward_reply reply;
    reply.request = origin->second;
    reply.status = static_cast<std::uint16_t>(ec ? ec.value() : 0);
    reply.acks = acks;
    reply.required = w;
    send(origin->first, reply);
    ec ? ++stats_.puts_failed : ++stats_.puts_ok;
  } else {
    complete_put(id, key, ec, acks, w);
  }
}

// Completes the put if it has its W acks; true if it did.
template <storage Storage, replica_placement Placement>
bool basic_replica<Storage, Placement>::check_put(request_id id, put_op& p) {
  if (p.acks < p.w) return false;
  finish_put(id, p.key, {}, p.acks, p.w, p.origin);
  puts_.erase(id);
  return true;
}

template <storage Storage, replica_placement Placement>
void basic_replica<Storage, Placement>::tick_puts(time_point now) {
  for (auto it = puts_.begin(); it != puts_.end();) {
    put_op& p = it->second;
    if (p.deadline <= now) {
      finish_put(it->first, p.key, errc::quorum_not_reached, p.acks, p.w, p.origin);
      it = puts_.erase(it);
      continue;
    }
    const std::size_t count = p.targets.size();
    for (std::size_t i = 0; i < count; ++i) {
      if (p.targets[i].acked || p.targets[i].replaced || p.targets[i].sent_at + config_.replica_timeout > now)
        continue;
      const node_id silent = p.targets[i].node;
      suspect_[silent] = now + config_.suspect_period;
      if (auto next = next_candidate(p, now)) {
        p.targets[i].replaced = true;
        node_id owner = p.targets[i].hinted_for;
        if (owner == node_id{} &&
            std::find(p.true_replicas.begin(), p.true_replicas.end(), silent) != p.true_replicas.end())
          owner = silent;
        if (std::find(p.true_replicas.begin(), p.true_replicas.end(), *next) != p.true_replicas.end())
          owner = node_id{};
        send_replica(it->first, p, *next, owner, now);
      } else {
        p.targets[i].sent_at = now;  // nobody else to ask: ask again (the message may have been lost)
        send(silent, detail::repl::replicate{it->first, p.key, p.entry, p.targets[i].hinted_for});
      }
    }
    ++it;
  }
}

// A forward unaccepted after replica_timeout: the replica is suspected (as a
// silent replica of a put is) and the put goes to the next healthy true
// replica not yet asked, with what is left of the deadline. See the header
// comment for the duplicate this can make.
template <storage Storage, replica_placement Placement>
void basic_replica<Storage, Placement>::tick_forwards(time_point now) {
  for (auto it = forwards_.begin(); it != forwards_.end();) {
    forward_op& f = it->second;
    if (f.deadline <= now) {
      // Accepted: the replica stored it (1 ack) but its outcome never came.
      // Never accepted: as far as we know no true replica answered.
      if (f.accepted)
        complete_put(it->first, f.message.key, errc::timed_out, 1, f.message.w);
      else
        complete_put(it->first, f.message.key, errc::quorum_not_reached, 0, f.message.w);
      it = forwards_.erase(it);
      continue;
    }
    if (!f.accepted && f.sent_at + config_.replica_timeout <= now) {
      suspect_[f.to] = now + config_.suspect_period;
      // The replica's deadline must end before ours, by the time its reply takes.
      const duration left = f.deadline - config_.replica_timeout - now;
      std::optional<node_id> next;
      for (const node_id& o : replicas_of(f.message.key, f.message.n)) {
        if (o == self_ || !healthy(o, now) || std::find(f.tried.begin(), f.tried.end(), o) != f.tried.end())
          continue;
        next = o;
        break;
      }
      f.sent_at = now;
      if (next && left > duration::zero()) {
        f.to = *next;
        f.tried.push_back(*next);
        f.message.timeout = left.count();
        ++stats_.reforwarded;
      }
      // Else nobody new to ask: ask the last one again (the message may have
      // been lost; a replica that already has it ignores the copy).
      send(f.to, f.message);
    }
    ++it;
  }
}

}  // namespace dhtkit

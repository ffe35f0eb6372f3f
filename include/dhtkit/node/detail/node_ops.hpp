// basic_node_core: client operations -- admission (joined, bounded),
// Chord owner resolution when the placement routes lookups, hand-over to the
// replica, and completions mapped back to the node's request ids with their
// latency recorded.
#pragma once

#include "dhtkit/node/node_core.hpp"

namespace dhtkit {

template <class Endpoint, placement Placement, storage Storage>
request_id basic_node_core<Endpoint, Placement, Storage>::put(std::string_view key, bytes value,
                                                              const version_vector& context, time_point now,
                                                              request_options options) {
  return start_op(op_kind::put, key, std::move(value), context, now, options);
}

template <class Endpoint, placement Placement, storage Storage>
request_id basic_node_core<Endpoint, Placement, Storage>::erase(std::string_view key,
                                                                const version_vector& context, time_point now,
                                                                request_options options) {
  return start_op(op_kind::erase, key, {}, context, now, options);
}

template <class Endpoint, placement Placement, storage Storage>
request_id basic_node_core<Endpoint, Placement, Storage>::get(std::string_view key, time_point now,
                                                              request_options options) {
  return start_op(op_kind::get, key, {}, {}, now, options);
}

template <class Endpoint, placement Placement, storage Storage>
request_id basic_node_core<Endpoint, Placement, Storage>::start_op(op_kind kind, std::string_view key,
                                                                   bytes value, const version_vector& context,
                                                                   time_point now,
                                                                   const request_options& options) {
  const request_id id = next_op_++;
  client_op op;
  op.kind = kind;
  op.started = now;
  op.key = std::string(key);
  op.options = options;
  std::error_code refuse;
  if (state_ == node_state::leaving || state_ == node_state::left)
    refuse = errc::shut_down;
  else if (state_ != node_state::joined)
    refuse = errc::not_joined;
  else if (ops_.size() >= config_.max_pending_ops)
    refuse = errc::limit_exceeded;
  else if (key.empty() || key.size() > config_.replication.max_key_size)
    refuse = errc::invalid_argument;
  if (refuse) {
    ++stats_.ops_rejected;
    fail_op(id, op, refuse);
    return id;
  }
  op.value = std::move(value);
  op.context = context;
  auto [it, inserted] = ops_.emplace(id, std::move(op));
  if constexpr (routed) {
    // Chord: find the key's owner through the finger tables first.
    auto lookup = router_.lookup(placement_.position(key), now);
    ++stats_.lookups;
    if (!lookup) {
      client_op failed = std::move(it->second);
      ops_.erase(it);
      fail_op(id, failed, lookup.error());
      return id;
    }
    it->second.lookup = *lookup;
    by_lookup_[*lookup] = id;
    pump(now);
    return id;
  }
  dispatch_op(id, it->second, now);
  pump(now);
  return id;
}

template <class Endpoint, placement Placement, storage Storage>
void basic_node_core<Endpoint, Placement, Storage>::dispatch_op(request_id id, client_op& op,
                                                                time_point now) {
  request_options o = op.options;
  // A chord lookup used part of the budget: the replica gets what is left.
  const time_point deadline = op_deadline(op);
  o.timeout = deadline > now ? deadline - now : duration{1};
  request_id rid = 0;
  switch (op.kind) {
    case op_kind::put:
      rid = replica_.put(op.key, std::move(op.value), op.context, now, o);
      break;
    case op_kind::erase:
      rid = replica_.erase(op.key, op.context, now, o);
      break;
    case op_kind::get:
      rid = replica_.get(op.key, now, o);
      break;
  }
  op.replica_id = rid;
  by_replica_[rid] = id;
}

template <class Endpoint, placement Placement, storage Storage>
void basic_node_core<Endpoint, Placement, Storage>::on_lookup(const chord::lookup_result<Endpoint>& r,
                                                              time_point now) {
  auto l = by_lookup_.find(r.id);
  if (l == by_lookup_.end()) return;  // cancelled
  const request_id id = l->second;
  by_lookup_.erase(l);
  auto it = ops_.find(id);
  if (it == ops_.end()) return;
  if (r.error) {
    client_op failed = std::move(it->second);
    ops_.erase(it);
    fail_op(id, failed, r.error);
    return;
  }
  // The router's owner and the placement's agree once Chord has stabilized;
  // until then the membership view (SWIM's, complete) decides the replicas.
  const auto first = placement_.preference_list(r.key, 1);
  if (first.empty() || first.front() != r.owner.id) ++stats_.lookup_disagreements;
  dispatch_op(id, it->second, now);
}

template <class Endpoint, placement Placement, storage Storage>
void basic_node_core<Endpoint, Placement, Storage>::on_put_done(put_completion c, time_point now) {
  auto m = by_replica_.find(c.id);
  if (m == by_replica_.end()) return;  // cancelled, or not ours
  const request_id id = m->second;
  by_replica_.erase(m);
  auto it = ops_.find(id);
  if (it == ops_.end()) return;
  stats_.put_latency.record(now - it->second.started);
  if (c.error)
    ++stats_.puts_failed;
  else
    ++stats_.puts_ok;
  ops_.erase(it);
  c.id = id;
  out_.puts.push_back(std::move(c));
}

template <class Endpoint, placement Placement, storage Storage>
void basic_node_core<Endpoint, Placement, Storage>::on_get_done(get_completion c, time_point now) {
  auto m = by_replica_.find(c.id);
  if (m == by_replica_.end()) return;
  const request_id id = m->second;
  by_replica_.erase(m);
  auto it = ops_.find(id);
  if (it == ops_.end()) return;
  stats_.get_latency.record(now - it->second.started);
  if (c.error)
    ++stats_.gets_failed;
  else
    ++stats_.gets_ok;
  ops_.erase(it);
  c.id = id;
  out_.gets.push_back(std::move(c));
}

template <class Endpoint, placement Placement, storage Storage>
void basic_node_core<Endpoint, Placement, Storage>::fail_op(request_id id, const client_op& op,
                                                            std::error_code ec) {
  if (op.kind == op_kind::get) {
    get_completion c;
    c.id = id;
    c.key = op.key;
    c.error = ec;
    c.required = op.options.r.value_or(config_.replication.r);
    out_.gets.push_back(std::move(c));
    ++stats_.gets_failed;
  } else {
    put_completion c;
    c.id = id;
    c.key = op.key;
    c.error = ec;
    c.required = op.options.w.value_or(config_.replication.w);
    out_.puts.push_back(std::move(c));
    ++stats_.puts_failed;
  }
}

template <class Endpoint, placement Placement, storage Storage>
bool basic_node_core<Endpoint, Placement, Storage>::cancel(request_id id) {
  auto it = ops_.find(id);
  if (it == ops_.end()) return false;
  if (it->second.replica_id != 0) by_replica_.erase(it->second.replica_id);
  if (it->second.lookup != 0) by_lookup_.erase(it->second.lookup);
  ops_.erase(it);
  ++stats_.ops_cancelled;
  return true;
}

}  // namespace dhtkit

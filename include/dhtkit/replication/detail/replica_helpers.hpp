// The replica's small helpers shared by every part: the request timeout bound, send() (the
// one place a message enters the outbox, bounded and counted), the placement's walks and
// target choice, and the completions. Out of replica.hpp so the class reads first.
//
// Included at the end of dhtkit/replication/replica.hpp; not to be included alone.
#pragma once

#include "dhtkit/replication/replica.hpp"

namespace dhtkit {

template <storage Storage, replica_placement Placement>
bool basic_replica<Storage, Placement>::valid_timeout(duration t) const noexcept {
  return t > duration::zero() && t <= 10 * config_.request_timeout;
}

template <storage Storage, replica_placement Placement>
template <class Msg>
void basic_replica<Storage, Placement>::send(node_id to, const Msg& m) {
  if (out_.messages.size() >= config_.max_outbox_messages) {
    ++stats_.outbox_dropped;
    return;
  }
  auto bytes = codec_.encode(m, self_);
  if (!bytes) {
    ++stats_.encode_failures;
    return;
  }
  out_.messages.push_back({to, std::move(*bytes)});
  ++stats_.messages_sent;
}

template <storage Storage, replica_placement Placement>
std::vector<node_id> basic_replica<Storage, Placement>::ring_walk(std::uint64_t pos, std::uint32_t n) const {
  return placement_.walk(pos, n + (config_.strict_quorum ? 0 : config_.max_fallbacks));
}

template <storage Storage, replica_placement Placement>
bool basic_replica<Storage, Placement>::is_true_replica(std::string_view key, node_id node,
                                                        std::uint32_t n) const {
  const auto pl = replicas_of(key, n);
  return std::find(pl.begin(), pl.end(), node) != pl.end();
}

// First n healthy candidates (sloppy) or the healthy true replicas (strict).
template <storage Storage, replica_placement Placement>
std::vector<node_id> basic_replica<Storage, Placement>::initial_targets(
    const std::vector<node_id>& candidates, const std::vector<node_id>& true_replicas, std::uint32_t n,
    time_point now) const {
  std::vector<node_id> out;
  const auto& pool = config_.strict_quorum ? true_replicas : candidates;
  for (const node_id& c : pool) {
    if (out.size() == n) break;
    if (healthy(c, now)) out.push_back(c);
  }
  return out;
}

template <storage Storage, replica_placement Placement>
template <class Op>
std::optional<node_id> basic_replica<Storage, Placement>::next_candidate(const Op& op, time_point now) const {
  if (config_.strict_quorum) return std::nullopt;
  for (const node_id& c : op.candidates) {
    if (!healthy(c, now)) continue;
    bool used = false;
    for (const auto& t : op.targets) used = used || t.node == c;
    if (!used) return c;
  }
  return std::nullopt;
}

template <storage Storage, replica_placement Placement>
void basic_replica<Storage, Placement>::fail_get(request_id id, std::string_view key, std::error_code ec,
                                                 std::uint32_t replies, std::uint32_t r) {
  get_completion c;
  c.id = id;
  c.key = std::string(key);
  c.error = ec;
  c.replies = replies;
  c.required = r;
  ++stats_.gets_failed;
  out_.gets.push_back(std::move(c));
}

template <storage Storage, replica_placement Placement>
void basic_replica<Storage, Placement>::complete_put(request_id id, std::string_view key, std::error_code ec,
                                                     std::uint32_t acks, std::uint32_t w) {
  put_completion c;
  c.id = id;
  c.key = std::string(key);
  c.error = ec;
  c.acks = acks;
  c.required = w;
  ec ? ++stats_.puts_failed : ++stats_.puts_ok;
  out_.puts.push_back(std::move(c));
}

// A local change to a key invalidates what was confirmed about it.
template <storage Storage, replica_placement Placement>
void basic_replica<Storage, Placement>::touched(const std::string& key) {
  tombs_.erase(key);
  markers_.erase(key);
}

// A merge changed a key: as any local change, and it may have left a marker.
template <storage Storage, replica_placement Placement>
void basic_replica<Storage, Placement>::changed_by_merge(const std::string& key) {
  touched(key);
  marker_scan_due_ = true;
}

}  // namespace dhtkit

// `stats cluster`: what an operator asks a cluster node. Built on the DHT
// node's strand twice a second and read by client sessions on any thread,
// so a `stats` never waits behind the cluster's work. Also `stats replica
// <key>` (below), one key's copy on this node, for fault tests.
#pragma once

#include <cstdio>
#include <string>

#include "cluster/engine.hpp"

namespace dhtkit_cache::cluster {

template <class Node>
void engine<Node>::refresh_snapshot() {
  const auto& core = node_->core();
  const dhtkit::node_stats st = core.stats();
  snapshot s;
  const auto stat = [&s](const std::string& name, const std::string& value) {
    s.lines.append("STAT ").append(name).append(" ").append(value).append("\r\n");
  };
  const auto num = [&stat](const std::string& name, std::uint64_t v) { stat(name, std::to_string(v)); };
  stat("cluster_name", self_name_);
  stat("cluster_state", std::string(dhtkit::to_string(core.state())));
  stat("cluster_placement", opt_.placement);
  num("cluster_replicas", opt_.replicas);
  num("cluster_read_quorum", opt_.read_quorum);
  num("cluster_write_quorum", opt_.write_quorum);
  num("cluster_members_alive", st.members_alive);
  num("cluster_members_suspect", st.members_suspect);
  num("cluster_members_dead", st.members_dead);
  stat("cluster_member_" + self_name_, core.state() == dhtkit::node_state::joined ? "alive" : "leaving");
  for (const auto& [name, state] : members_)
    if (name != self_name_) stat("cluster_member_" + name, state);
  // The share of the ring this node coordinates: the fraction of 1,024
  // evenly spaced positions whose preference list starts with it.
  constexpr std::uint64_t samples = 1024;
  std::uint64_t first = 0;
  const auto& placement = core.placement();
  for (std::uint64_t i = 0; i < samples; ++i) {
    const auto list = placement.preference_list(i * (~std::uint64_t{0} / samples), 1);
    if (!list.empty() && list.front() == node_->id()) ++first;
  }
  char share[32];
  std::snprintf(share, sizeof share, "%.3f", static_cast<double>(first) / samples);
  stat("cluster_ring_share", share);
  num("cluster_ranges_held", st.ranges_held);
  num("cluster_handoffs_in_progress", st.ranges_pending + st.ranges_outbound);
  num("cluster_handoff_keys_sent", st.handoff_keys_sent);
  num("cluster_handoff_keys_received", st.handoff_keys_received);
  num("cluster_hints_held", st.hints_pending);
  num("cluster_conflicts_resolved", state_.conflicts_resolved);
  num("cluster_requests_forwarded", requests_forwarded_);
  num("cluster_requests_served_for_others", requests_served_for_others_);
  num("cluster_commands_coordinated", state_.commands_run);
  num("cluster_requests_failed", state_.requests_failed);
  num("cluster_writes_failed", state_.writes_failed);
  num("cluster_read_repairs", st.read_repairs);
  num("cluster_anti_entropy_keys_repaired", st.ae_keys_repaired);
  num("cluster_expired_removed", expired_removed_);
  // flush_all: the stamp below which items are gone, and when a delayed one takes effect (ms).
  num("cluster_flush_stamp", state_.applied_flush);
  num("cluster_flush_pending_at_ms", delayed_flush_ ? delayed_flush_->second : 0);
  num("cluster_malformed_messages", malformed_messages_ + state_.malformed_versions);
  // Mutual TLS on the stream lane (--cluster-tls-*): peers refused, by reason.
  const dhtkit::tcp_transport_stats ts = node_->stream_transport_stats();
  stat("cluster_tls", opt_.cluster_tls() ? "on" : "off");
  num("cluster_tls_handshake_failures", ts.handshake_failures);
  num("cluster_tls_outbound_handshake_failures", ts.outbound_handshake_failures);
  num("cluster_tls_peer_name_mismatches", ts.peer_name_mismatches);
  num("cluster_tls_frames_refused", ts.frames_refused_identity);
  // --gossip-keyring: keys installed, the primary's fingerprint, SIGHUP
  // reloads applied and refused, and datagrams no key opened (dropped).
  num("cluster_gossip_keys", gossip_keys_.keys());
  stat("cluster_gossip_primary", gossip_keys_.primary());
  num("cluster_gossip_reloads", gossip_keys_.reloads());
  num("cluster_gossip_reload_errors", gossip_keys_.reload_errors());
  num("cluster_gossip_unauthenticated", node_->packet_transport_stats().unauthenticated_received);
  // What peers (or strangers) sent that was refused, by reason: the node's
  // dispatcher counts envelopes, the transports count datagrams and
  // connections they dropped before a message could be decoded.
  num("cluster_dropped_malformed", st.dropped.malformed);
  num("cluster_dropped_unknown_type", st.dropped.unknown_type);
  num("cluster_dropped_not_a_member", st.dropped.not_a_member);
  num("cluster_dropped_spoofed", st.dropped.spoofed);
  num("cluster_dropped_refused_by_core", st.dropped.refused_by_core);
  const dhtkit::udp_transport_stats packets = node_->packet_transport_stats();
  num("cluster_packet_received", packets.datagrams_received);
  num("cluster_packet_oversize_dropped", packets.oversize_received);
  const dhtkit::tcp_transport_stats streams = node_->stream_transport_stats();
  num("cluster_stream_bad_hellos", streams.bad_hellos);
  num("cluster_stream_oversize_frames", streams.oversize_frames);
  num("cluster_stream_refused_inbound", streams.refused_inbound);

  const dhtkit::storage_stats ss = storage_.stats();
  s.items = ss.siblings - ss.tombstones;
  s.bytes = ss.value_bytes;
  num("cluster_stored_keys", ss.keys);
  std::lock_guard lock(snapshot_mutex_);
  snapshot_ = std::move(s);
}

// `stats replica <key>`: this node's own copy of the key, not what its
// coordinator answers (any node's `get` gives that), so that a fault test can
// tell whether the replicas of a key converged. Read on the strand, from this
// node's storage alone: it sends nothing and changes nothing. The winner's
// value is given as its 64-bit FNV-1a hash, since a STAT line cannot carry
// arbitrary bytes (or a megabyte).
template <class Node>
std::string engine<Node>::replica_report(const std::string& key) const {
  const auto& core = node_->core();
  std::string out;
  const auto num = [&out](const char* name, std::uint64_t v) {
    out.append("STAT ").append(name).append(" ").append(std::to_string(v)).append("\r\n");
  };
  num("replica_holder", core.holds(key) ? 1 : 0);  // among the key's first N in this node's view
  num("replica_ready", core.ready(key) ? 1 : 0);   // its range is not waiting for a handoff
  const auto entry = storage_.get(key);
  num("replica_versions", entry ? entry->siblings().size() : 0);  // tombstones included
  const resolved found = entry ? resolve(entry->siblings(), opt_.max_item_size) : resolved{};
  const std::int64_t now_unix = static_cast<std::int64_t>(coordinator_state::wall_ms() / 1000);
  if (found.winner && !state_.gone(*found.winner, now_unix)) {
    std::uint64_t h = 0xcbf29ce484222325ULL;
    for (const char c : found.winner->value) h = (h ^ static_cast<std::uint8_t>(c)) * 0x100000001b3ULL;
    char hex[17];
    std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(h));
    num("replica_stamp", found.winner->stamp);
    num("replica_value_length", found.winner->value.size());
    out.append("STAT replica_value_fnv1a ").append(hex).append("\r\n");
  } else {
    out.append("STAT replica_value_fnv1a none\r\n");
  }
  return out.append("END\r\n");
}

}  // namespace dhtkit_cache::cluster

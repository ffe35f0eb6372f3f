// basic_node_core: decoding each envelope once and routing it by tag range,
// the sender check for replication and handoff traffic, draining the
// components' outboxes into the node's (addresses translated, lanes chosen),
// and the timers (tick / next_wakeup).
#pragma once

#include <algorithm>

#include "dhtkit/node/detail/node_application.hpp"
#include "dhtkit/node/node_core.hpp"

namespace dhtkit {

template <class Endpoint, placement Placement, storage Storage>
std::error_code basic_node_core<Endpoint, Placement, Storage>::receive(const address_type& from,
                                                                       std::span<const std::byte> bytes,
                                                                       time_point now) {
  ++stats_.messages_received;
  if (silenced_) return errc::shut_down;
  wire_limits limits = config_.replication.limits;
  limits.max_message_size =
      from.via == lane::packet ? config_.packet_max_message : config_.stream_max_message;
  auto env = wire::decode_envelope(bytes, limits);
  if (!env) {
    ++stats_.dropped.malformed;
    ++stats_.rejected;
    return env.error();
  }
  --stats_.messages_received;  // counted once, by the envelope form
  return receive(from, *env, now);
}

template <class Endpoint, placement Placement, storage Storage>
std::error_code basic_node_core<Endpoint, Placement, Storage>::receive(const address_type& from,
                                                                       const wire::envelope& env,
                                                                       time_point now) {
  ++stats_.messages_received;
  if (silenced_) return errc::shut_down;
  std::error_code ec = route(from, env, now);
  if (ec) ++stats_.rejected;
  pump(now);
  return ec;
}

template <class Endpoint, placement Placement, storage Storage>
std::error_code basic_node_core<Endpoint, Placement, Storage>::route(const address_type& from,
                                                                     const wire::envelope& env,
                                                                     time_point now) {
  const std::uint16_t tag = env.type;
  if (wire::tags::membership.contains(tag)) {
    // SWIM addresses members by their packet endpoint; with single_lane the
    // same traffic arrives from the stream endpoint.
    Endpoint addr = from.endpoint;
    if (from.via == lane::stream) {
      auto it = by_stream_.find(from.endpoint);
      if (it == by_stream_.end()) {
        ++stats_.dropped.not_a_member;
        return errc::not_a_member;
      }
      addr = peers_.at(it->second).packet;
    }
    std::error_code ec = swim_.receive(addr, env, now);
    if (ec) ++stats_.dropped.refused_by_core;
    return ec;
  }
  if (wire::tags::chord.contains(tag)) {
    if constexpr (routed) {
      if (auto ec = check_sender(from, env.sender)) return ec;
      std::error_code ec = router_.receive(peers_.at(env.sender).packet, env, now);
      if (ec) ++stats_.dropped.refused_by_core;
      return ec;
    } else {
      ++stats_.dropped.unknown_type;
      return errc::unknown_message_type;
    }
  }
  if (wire::tags::replication.contains(tag)) {
    if (auto ec = check_sender(from, env.sender)) return ec;
    std::error_code ec = replica_.receive(env.sender, env, now);
    if (ec) ++stats_.dropped.refused_by_core;
    return ec;
  }
  if (tag == detail::node::application_message::wire_type) {
    if (auto ec = check_sender(from, env.sender)) return ec;
    auto m = wire::decode_payload<detail::node::application_message>(env, config_.replication.limits);
    if (!m) {
      ++stats_.dropped.malformed;
      return m.error();
    }
    ++stats_.applications_received;
    out_.applications.push_back({env.sender, std::move(m->payload)});
    return {};
  }
  if (wire::tags::node.contains(tag)) {
    if (auto ec = check_sender(from, env.sender)) return ec;
    std::error_code ec = handoff_.receive(env.sender, env, now);
    if (ec == errc::placement_mismatch)
      ++stats_.dropped.not_held;
    else if (ec)
      ++stats_.dropped.refused_by_core;
    return ec;
  }
  ++stats_.dropped.unknown_type;
  return errc::unknown_message_type;
}

// Replication, handoff and Chord traffic is taken only from a live member,
// and only from the address that member lives at on that lane: a node
// claiming another's id from elsewhere is refused (this is not
// authentication -- a peer that can forge source addresses is issue 15's).
template <class Endpoint, placement Placement, storage Storage>
std::error_code basic_node_core<Endpoint, Placement, Storage>::check_sender(const address_type& from,
                                                                            node_id sender) {
  auto it = peers_.find(sender);
  const auto live = [](const peer_entry& p) {
    return p.state == membership::member_state::alive || p.state == membership::member_state::suspect ||
           (p.state == membership::member_state::dead && p.grace_pending);  // may be alive: its place is kept
  };
  if (it == peers_.end() || sender == self_ || !live(it->second)) {
    ++stats_.dropped.not_a_member;
    return errc::not_a_member;
  }
  const Endpoint& expected = from.via == lane::packet ? it->second.packet : it->second.stream;
  if (expected != from.endpoint) {
    ++stats_.dropped.spoofed;
    return errc::not_a_member;
  }
  return {};
}

template <class Endpoint, placement Placement, storage Storage>
std::error_code basic_node_core<Endpoint, Placement, Storage>::send_application(node_id to, bytes payload) {
  if (state_ != node_state::joined && state_ != node_state::leaving) return errc::not_joined;
  if (silenced_) return errc::shut_down;
  auto it = peers_.find(to);
  if (to == self_ || it == peers_.end() || !is_live(to)) return errc::not_a_member;
  wire_limits limits = config_.replication.limits;
  limits.max_message_size = config_.stream_max_message;
  auto bytes = wire::encode(detail::node::application_message{std::move(payload)}, self_, limits);
  if (!bytes) return bytes.error();
  ++stats_.applications_sent;
  send_to_node(to, std::move(*bytes));
  return {};
}

template <class Endpoint, placement Placement, storage Storage>
std::optional<Endpoint> basic_node_core<Endpoint, Placement, Storage>::endpoint_of(node_id id,
                                                                                   lane via) const {
  auto it = peers_.find(id);
  if (it == peers_.end()) return std::nullopt;
  return via == lane::packet ? it->second.packet : it->second.stream;
}

template <class Endpoint, placement Placement, storage Storage>
void basic_node_core<Endpoint, Placement, Storage>::send_to_endpoint(const Endpoint& to,
                                                                     std::vector<std::byte> bytes) {
  // SWIM and Chord name packet endpoints.
  const std::uint16_t tag =
      bytes.size() >= 8 ? static_cast<std::uint16_t>(wire::detail::get_le(bytes.data() + 6, 2)) : 0;
  lane via = detail::node::lane_for(tag, bytes.size(), config_.packet_max_message, config_.single_lane);
  Endpoint dest = to;
  if (via == lane::stream) {
    auto it = by_packet_.find(to);
    if (it == by_packet_.end()) {
      via = lane::packet;  // a seed we know nothing about yet: only its packet endpoint exists
    } else {
      dest = peers_.at(it->second).stream;
    }
  }
  out_.messages.push_back({address_type{dest, via}, std::move(bytes)});
  ++stats_.messages_sent;
}

template <class Endpoint, placement Placement, storage Storage>
void basic_node_core<Endpoint, Placement, Storage>::send_to_node(node_id to, std::vector<std::byte> bytes) {
  if (bytes.size() > config_.stream_max_message) {
    ++stats_.dropped.oversized;
    return;
  }
  const std::uint16_t tag = static_cast<std::uint16_t>(wire::detail::get_le(bytes.data() + 6, 2));
  const lane via = detail::node::lane_for(tag, bytes.size(), config_.packet_max_message, config_.single_lane);
  auto ep = endpoint_of(to, via);
  if (!ep) {
    ++stats_.dropped.unknown_peer;
    return;
  }
  out_.messages.push_back({address_type{*ep, via}, std::move(bytes)});
  ++stats_.messages_sent;
}

// Drains every component's outbox into the node's, until none produced
// anything: an event from one (a SWIM member joining) makes work for another
// (a settle, a handoff offer). Bounded rounds: what is left goes next call.
template <class Endpoint, placement Placement, storage Storage>
void basic_node_core<Endpoint, Placement, Storage>::pump(time_point now) {
  for (int round = 0; round < 8; ++round) {
    bool any = false;
    {
      auto so = swim_.take_outbox();
      any = any || !so.empty();
      for (auto& m : so.messages)
        if (!silenced_) send_to_endpoint(m.to, std::move(m.bytes));
      for (const auto& e : so.events) on_member_event(e, now);
    }
    if constexpr (routed) {
      auto co = router_.take_outbox();
      any = any || !co.empty();
      for (auto& m : co.messages) {
        auto it = by_packet_.find(m.to);
        if (it == by_packet_.end() && !(m.to == packet_)) {
          ++stats_.dropped.unknown_peer;
          continue;
        }
        if (!silenced_) send_to_endpoint(m.to, std::move(m.bytes));
      }
      for (const auto& r : co.lookups) on_lookup(r, now);
    }
    {
      auto ro = replica_.take_outbox();
      any = any || !ro.empty();
      for (auto& m : ro.messages)
        if (!silenced_) send_to_node(m.to, std::move(m.bytes));
      for (auto& c : ro.puts) on_put_done(std::move(c), now);
      for (auto& c : ro.gets) on_get_done(std::move(c), now);
    }
    {
      auto ho = handoff_.take_outbox();
      any = any || !ho.empty();
      for (auto& m : ho.messages)
        if (!silenced_) send_to_node(m.to, std::move(m.bytes));
      for (const auto& e : ho.events) {
        if (e.kind == handoff_event_kind::unit_ready) emit_ranges(node_event_kind::range_ready, {e.range});
        if (e.kind == handoff_event_kind::unit_dropped)
          emit_ranges(node_event_kind::range_dropped, {e.range});
      }
    }
    if (!any) break;
  }
  update_gauges();
}

template <class Endpoint, placement Placement, storage Storage>
void basic_node_core<Endpoint, Placement, Storage>::tick(time_point now) {
  if (silenced_) return;
  swim_.tick(now);
  if constexpr (routed) {
    if (router_.state() != chord::router_state::idle) router_.tick(now);
  }
  replica_.tick(now);
  handoff_.tick(now);
  if (now >= next_reap_) {
    // SWIM forgets long-dead members without an event: so does the directory,
    // which SWIM's max_members therefore bounds too.
    next_reap_ = now + seconds(1);
    for (auto it = peers_.begin(); it != peers_.end();) {
      if (swim_.find(it->first)) {
        ++it;
        continue;
      }
      if (auto b = by_packet_.find(it->second.packet); b != by_packet_.end() && b->second == it->first)
        by_packet_.erase(b);
      if (auto b = by_stream_.find(it->second.stream); b != by_stream_.end() && b->second == it->first)
        by_stream_.erase(b);
      replica_.mark_alive(it->first);  // forgets it in the replica's down set too
      it = peers_.erase(it);
      schedule_settle(now);
    }
  }
  for (auto& [id, p] : peers_) {
    if (p.grace_pending && p.dead_since && now >= *p.dead_since + config_.dead_member_grace) {
      p.grace_pending = false;
      schedule_settle(now - config_.placement_settle);  // due now
    }
  }
  if constexpr (routed) {
    // The router joins through a live member once SWIM has one; a join that
    // failed (its bootstrap's router was not in the ring yet) is retried
    // through another member every stabilize_period.
    if (!founding_ && state_ == node_state::joined && router_.state() == chord::router_state::idle &&
        now >= router_retry_at_) {
      router_retry_at_ = now + config_.chord.stabilize_period;
      std::vector<node_id> live = live_members();
      std::erase(live, self_);
      if (!live.empty()) (void)router_.join(peers_.at(live[router_attempts_++ % live.size()]).packet, now);
    }
    // An operation still resolving its owner fails at its deadline (the
    // replica enforces the deadline once it has the operation).
    for (auto it = ops_.begin(); it != ops_.end();) {
      if (it->second.replica_id == 0 && now >= op_deadline(it->second)) {
        by_lookup_.erase(it->second.lookup);
        fail_op(it->first, it->second, errc::timed_out);
        it = ops_.erase(it);
      } else {
        ++it;
      }
    }
  }
  pump(now);
  if (settle_at_ && now >= *settle_at_) settle(now);
  if (state_ == node_state::joining && join_deadline_ && now >= *join_deadline_)
    fail_join(errc::timed_out, now);
  if (state_ == node_state::leaving) {
    const bool expired = leave_deadline_ && now >= *leave_deadline_;
    if (!swim_leave_at_ && expired && !drain_settled_) settle(now);  // the drain's placement, late or not
    if (!swim_leave_at_ && drain_settled_ && (handoff_.idle() || expired)) {
      if (!handoff_.idle()) out_.status.push_back({node_state::leaving, errc::timed_out});
      (void)swim_.leave(now);
      if constexpr (routed) (void)router_.leave(now);
      leave_deadline_.reset();  // passed or moot: never a wake-up in the past
      swim_leave_at_ = now + 2 * config_.membership.gossip_interval;
    } else if (swim_leave_at_ && (swim_.leave_done() || now >= *swim_leave_at_)) {
      pump(now);  // the last gossip goes out before we fall silent
      finish_leave(handoff_.idle() ? std::error_code{} : std::error_code{errc::timed_out});
    }
  }
  pump(now);
}

template <class Endpoint, placement Placement, storage Storage>
std::optional<time_point> basic_node_core<Endpoint, Placement, Storage>::next_wakeup() const noexcept {
  if (silenced_ || state_ == node_state::idle) return std::nullopt;
  std::optional<time_point> t = swim_.next_wakeup();
  auto take = [&t](std::optional<time_point> c) {
    if (c && (!t || *c < *t)) t = c;
  };
  if constexpr (routed) {
    if (router_.state() != chord::router_state::idle) take(router_.next_wakeup());
  }
  take(replica_.next_wakeup());
  take(handoff_.next_wakeup());
  take(settle_at_);
  take(join_deadline_);
  // While leaving, SWIM's own periodic wakeups (never absent) poll the
  // handoff's progress; these bound the rest.
  take(swim_leave_at_);
  take(leave_deadline_);
  if constexpr (routed) {
    for (const auto& [id, op] : ops_)
      if (op.replica_id == 0) take(op_deadline(op));
  }
  for (const auto& [id, p] : peers_)
    if (p.grace_pending && p.dead_since) take(*p.dead_since + config_.dead_member_grace);
  return t;
}

}  // namespace dhtkit

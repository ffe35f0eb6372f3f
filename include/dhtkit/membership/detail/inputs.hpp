// basic_swim's inputs: what a driver calls -- receive() (bytes and
// already-checked envelopes), tick(), next_wakeup() -- and a client's join,
// leave and set_metadata, plus the lazy start on the first call that
// draws the timers' random phases.
//
// Out-of-line member definitions of dhtkit::membership::basic_swim, kept out
// of the public header so that it stays short enough to read first; included
// at the end of dhtkit/membership/swim.hpp, never on its own.
#pragma once

#include "dhtkit/membership/swim.hpp"

namespace dhtkit::membership {

template <class Address>
std::error_code basic_swim<Address>::receive(const Address& from, std::span<const std::byte> bytes,
                                             time_point now) {
  auto env = wire::decode_envelope(bytes, codec_.limits());
  if (!env) {
    // Counted as the envelope overload counts a message it cannot decode.
    start(now);
    ++stats_.messages_received;
    ++stats_.rejected;
    return env.error();
  }
  return receive(from, *env, now);
}

template <class Address>
std::error_code basic_swim<Address>::receive(const Address& from, const wire::envelope& env, time_point now) {
  start(now);
  ++stats_.messages_received;
  auto decoded = codec_.decode(env);
  if (!decoded) {
    ++stats_.rejected;
    return decoded.error();
  }
  const node_id sender = decoded->sender;
  if (sender.value == 0 || sender == self_id() || from == Address{}) {
    ++stats_.rejected;
    return errc::not_a_member;
  }
  accused_ = false;
  const std::error_code ec =
      std::visit([&](auto& msg) { return handle(sender, from, msg, now); }, decoded->message);
  if (accused_ && !leaving_ && config_.buddy_system) {
    // The other half of the buddy system (add_buddy): the sender holds a
    // suspicion (or death) of us that our refutation has not reached, so it
    // is answered directly rather than left to gossip (an ack to a ping
    // already carried the answer and cleared the flag). Bounded per period,
    // so a flood of accusations cannot make us send without limit.
    if (now >= refutes_reset_at_) {
      refutes_reset_at_ = now + config_.probe_interval;
      refutes_left_ = config_.max_direct_refutations;
    }
    if (refutes_left_ > 0) {
      --refutes_left_;
      ++stats_.direct_refutations;
      send(from, gossip_msg{{make_update(self(), self_id())}});
    }
  }
  accused_ = false;
  return ec;
}

template <class Address>
void basic_swim<Address>::tick(time_point now) {
  start(now);
  expire_suspicions(now);
  if (probe_.active) {
    if (!probe_.acked && !probe_.indirect_sent && now >= probe_.direct_deadline) send_ping_reqs(now);
    if (now >= probe_.end) finish_probe(now);
  }
  if (!leaving_ && now >= next_probe_at_) start_probe(now);
  expire_relays(now);
  if (now >= gossip_at_) {
    if (!queue_.empty()) send_gossip(now);
    gossip_at_ = now + config_.gossip_interval;
  }
  if (now >= push_pull_at_) {
    push_pull_at_ = now + detail::push_pull_scale(config_.push_pull_interval, live_count());
    if (!leaving_) {
      if (auto peer = pick_one([](const record& m) { return is_live(m.state); })) {
        send_state(members_[*peer].address, push_pull_msg::want_reply, now);
      }
    }
  }
  if (now >= reconnect_at_) {
    reconnect_at_ = now + config_.reconnect_interval;
    reap(now);
    if (!leaving_) {
      if (auto peer = pick_one([](const record& m) { return m.state == member_state::dead; })) {
        send_state(members_[*peer].address, push_pull_msg::want_reply, now);
      }
    }
  }
  if (joining_) {
    if (live_count() > 1) {
      joining_ = false;
    } else if (now >= join_retry_at_) {
      join_retry_at_ = now + config_.join_retry_interval;
      for (const Address& seed : seeds_)
        send_state(seed, push_pull_msg::want_reply | push_pull_msg::join, now);
    }
  }
}

template <class Address>
std::optional<time_point> basic_swim<Address>::next_wakeup() const noexcept {
  time_point t = push_pull_at_;
  t = std::min(t, reconnect_at_);
  if (!leaving_) t = std::min(t, next_probe_at_);
  if (probe_.active) {
    if (!probe_.acked && !probe_.indirect_sent) t = std::min(t, probe_.direct_deadline);
    t = std::min(t, probe_.end);
  }
  for (const auto& [id, s] : suspicions_) t = std::min(t, s.deadline);
  for (const relay& r : relays_) t = std::min(t, r.nack_sent ? r.expire : r.nack_at);
  if (!queue_.empty()) t = std::min(t, gossip_at_);
  if (joining_) t = std::min(t, join_retry_at_);
  return t;
}

template <class Address>
std::error_code basic_swim<Address>::join(std::span<const Address> seeds, time_point now) {
  start(now);
  if (leaving_) return errc::shut_down;
  if (seeds.empty() || seeds.size() > 64) return errc::invalid_argument;
  seeds_.clear();
  for (const Address& s : seeds) {
    if (s == Address{}) return errc::invalid_argument;
    if (s != self().address) seeds_.push_back(s);
  }
  if (seeds_.empty()) return {};  // we are the first member
  joining_ = true;
  join_retry_at_ = now + config_.join_retry_interval;
  for (const Address& seed : seeds_) send_state(seed, push_pull_msg::want_reply | push_pull_msg::join, now);
  return {};
}

template <class Address>
std::error_code basic_swim<Address>::leave(time_point now) {
  start(now);
  if (leaving_) return errc::shut_down;
  leaving_ = true;
  probe_.active = false;
  record& me = self();
  ++me.incarnation;
  set_state(me, member_state::left, now);
  enqueue(make_update(me, me.id));
  send_gossip(now);
  return {};
}

template <class Address>
std::error_code basic_swim<Address>::set_metadata(std::string metadata, time_point now) {
  start(now);
  if (leaving_) return errc::shut_down;
  if (metadata.size() > config_.max_metadata_bytes) return errc::limit_exceeded;
  record& me = self();
  me.metadata = std::move(metadata);
  ++me.incarnation;
  enqueue(make_update(me, me.id));
  return {};
}

template <class Address>
void basic_swim<Address>::start(time_point now) {
  if (started_) return;
  started_ = true;
  // Random phases, so members started together do not probe in lockstep.
  next_probe_at_ = now + jitter(config_.probe_interval);
  gossip_at_ = now;
  push_pull_at_ = now + config_.push_pull_interval + jitter(config_.push_pull_interval);
  reconnect_at_ = now + config_.reconnect_interval + jitter(config_.reconnect_interval);
  self().state_changed = now;
}

}  // namespace dhtkit::membership

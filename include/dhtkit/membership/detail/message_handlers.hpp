// basic_swim's message handlers: what the core does with each decoded
// message (ping, ping-req, ack, nack, gossip, push-pull) once receive() has
// checked its sender.
//
// Out-of-line member definitions of dhtkit::membership::basic_swim, kept out
// of the public header so that it stays short enough to read first; included
// at the end of dhtkit/membership/swim.hpp, never on its own.
#pragma once

#include "dhtkit/membership/swim.hpp"

namespace dhtkit::membership {

template <class Address>
void basic_swim<Address>::merge_all(const std::vector<update>& updates, bool from_push_pull, time_point now) {
  for (const update& u : updates) merge(u, from_push_pull, now);
}

template <class Address>
std::error_code basic_swim<Address>::handle(node_id sender, const Address& from, const ping_msg& msg,
                                            time_point now) {
  merge_all(msg.gossip, false, now);
  if (msg.target != self_id()) {
    ++stats_.rejected_updates;
    return errc::unknown_node;
  }
  ack_msg reply{msg.seq, {}};
  if (accused_ && !leaving_ && config_.buddy_system) {
    // Lifeguard's buddy system: the ping told us we are suspected; the
    // refutation goes back first, in the ack.
    reply.gossip.push_back(make_update(self(), self_id()));
    accused_ = false;
  }
  queue_.take(add_buddy(sender, gossip_budget(reply), reply.gossip), retransmit_limit(), reply.gossip);
  ++stats_.acks_sent;
  send(from, reply);
  return {};
}

template <class Address>
std::error_code basic_swim<Address>::handle(node_id, const Address& from, const ping_req_msg& msg,
                                            time_point now) {
  merge_all(msg.gossip, false, now);
  if (msg.target.value == 0 || msg.target_address == Address{}) {
    ++stats_.rejected_updates;
    return errc::invalid_argument;
  }
  if (msg.target == self_id()) {  // asked to probe ourselves: we are clearly up
    ++stats_.acks_sent;
    send(from, ack_msg{msg.seq, {}});
    return {};
  }
  if (relays_.size() >= config_.max_pending_relays) {
    ++stats_.relays_refused;
    return errc::queue_full;
  }
  relay r;
  r.our_seq = rng_.next();
  r.origin_seq = msg.seq;
  r.origin = from;
  r.target = msg.target;
  // memberlist: the nack goes out at 80 % of the probe timeout, so it
  // arrives before the prober gives up on the indirect round.
  r.nack_at = now + config_.probe_timeout * 4 / 5;
  r.nack_sent = !config_.nacks;
  r.expire = now + config_.probe_interval;
  relays_.push_back(r);
  ping_msg ping{r.our_seq, msg.target, {}};
  queue_.take(add_buddy(msg.target, gossip_budget(ping), ping.gossip), retransmit_limit(), ping.gossip);
  ++stats_.pings_sent;
  send(msg.target_address, ping);
  return {};
}

template <class Address>
std::error_code basic_swim<Address>::handle(node_id sender, const Address&, const ack_msg& msg,
                                            time_point now) {
  merge_all(msg.gossip, false, now);
  if (probe_.active && msg.seq == probe_.seq) {
    if (sender == probe_.target) {
      if (!probe_.acked && now <= probe_.direct_deadline && config_.local_health) awareness_.apply_delta(-1);
      probe_.acked = true;
      return {};
    }
    if (std::find(probe_.helpers.begin(), probe_.helpers.end(), sender) != probe_.helpers.end()) {
      probe_.acked = true;
      return {};
    }
  }
  for (std::size_t i = 0; i < relays_.size(); ++i) {
    if (relays_[i].our_seq == msg.seq && relays_[i].target == sender) {
      ack_msg forward{relays_[i].origin_seq, {}};
      queue_.take(gossip_budget(forward), retransmit_limit(), forward.gossip);
      ++stats_.acks_sent;
      send(relays_[i].origin, forward);
      relays_[i] = std::move(relays_.back());
      relays_.pop_back();
      return {};
    }
  }
  ++stats_.unexpected_acks;
  return {};
}

template <class Address>
std::error_code basic_swim<Address>::handle(node_id sender, const Address&, const nack_msg& msg, time_point) {
  if (probe_.active && msg.seq == probe_.seq) {
    for (std::size_t i = 0; i < probe_.helpers.size(); ++i) {
      if (probe_.helpers[i] == sender) {
        probe_.nacked[i] = true;
        return {};
      }
    }
  }
  ++stats_.unexpected_acks;
  return {};
}

template <class Address>
std::error_code basic_swim<Address>::handle(node_id, const Address&, const gossip_msg& msg, time_point now) {
  merge_all(msg.updates, false, now);
  return {};
}

template <class Address>
std::error_code basic_swim<Address>::handle(node_id, const Address& from, const push_pull_msg& msg,
                                            time_point now) {
  merge_all(msg.members, true, now);
  if ((msg.flags & push_pull_msg::want_reply) != 0) {
    if (now >= replies_reset_at_) {
      replies_reset_at_ = now + config_.probe_interval;
      replies_left_ = config_.max_push_pull_replies;
    }
    if (replies_left_ == 0) {
      ++stats_.push_pull_refused;
      return errc::queue_full;
    }
    --replies_left_;
    send_state(from, 0, now);
  }
  return {};
}

}  // namespace dhtkit::membership

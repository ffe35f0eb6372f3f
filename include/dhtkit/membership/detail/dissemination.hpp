// basic_swim's dissemination apart from piggybacking: standalone gossip
// while updates are pending, and full state (push-pull) cut into datagrams.
//
// Out-of-line member definitions of dhtkit::membership::basic_swim, kept out
// of the public header so that it stays short enough to read first; included
// at the end of dhtkit/membership/swim.hpp, never on its own.
#pragma once

#include "dhtkit/membership/swim.hpp"

namespace dhtkit::membership {

template <class Address>
void basic_swim<Address>::send_gossip(time_point now) {
  picked_.clear();
  pick_random(config_.gossip_nodes, picked_, [&](const record& m) {
    return is_live(m.state) ||
           (m.state == member_state::dead && now - m.state_changed < config_.gossip_to_the_dead_time);
  });
  for (std::size_t i : picked_) {
    if (queue_.empty()) break;
    gossip_msg g;
    queue_.take(add_buddy(members_[i].id, gossip_budget(g), g.updates), retransmit_limit(), g.updates);
    if (g.updates.empty()) break;
    ++stats_.gossip_sent;
    send(members_[i].address, g);
  }
}

// Our whole member list, in as many datagrams as it takes.
template <class Address>
void basic_swim<Address>::send_state(const Address& to, std::uint8_t flags, time_point now) {
  (void)now;
  push_pull_msg msg;
  msg.flags = flags;
  const std::size_t budget = gossip_budget(msg);
  std::size_t used = 0;
  for (const record& m : members_) {
    update u =
        make_update(m, m.state == member_state::alive || m.state == member_state::left ? m.id : self_id());
    if (m.state == member_state::suspect) {
      // Name the member whose probe failed, not us: a receiver that starts
      // suspecting from this and gossips it on must not make us look like
      // an independent accuser.
      if (auto it = suspicions_.find(m.id); it != suspicions_.end()) u.from = it->second.first;
    }
    const std::size_t size = detail::encoded_size(u, scratch_);
    if (used + size > budget && !msg.members.empty()) {
      ++stats_.push_pull_sent;
      send(to, msg);
      msg.members.clear();
      msg.flags = 0;  // only the first datagram asks for a reply
      used = 0;
    }
    used += size;
    msg.members.push_back(std::move(u));
  }
  ++stats_.push_pull_sent;
  send(to, msg);
}

}  // namespace dhtkit::membership

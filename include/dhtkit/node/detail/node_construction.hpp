// basic_node_core's constructor and lifecycle calls (join, leave).
#pragma once

#include <stdexcept>

#include "dhtkit/node/node_core.hpp"

namespace dhtkit {

namespace detail::node {
inline node_config checked(node_config c) {
  c.validate();
  return c;
}
inline std::uint64_t sub_seed(std::uint64_t seed, std::uint64_t salt) {
  return mix64(seed ^ (salt * 0x9E3779B97F4A7C15ull));
}
}  // namespace detail::node

template <class Endpoint, placement Placement, storage Storage>
basic_node_core<Endpoint, Placement, Storage>::basic_node_core(const node_config& config, Endpoint packet,
                                                               Endpoint stream, Storage& store,
                                                               hint_store& hints, handoff_journal& journal,
                                                               std::uint64_t seed)
    : config_(detail::node::checked(config)),
      self_(node_id::from_name(config_.name)),
      packet_(packet),
      stream_(stream),
      store_(store),
      hints_(hints),
      swim_(
          self_, packet, config_.membership, detail::node::sub_seed(seed, 1),
          detail::node::encode_meta(detail::node::node_meta<Endpoint>{1, 0, 1, stream, config_.name}, self_)),
      placement_(self_, config_.placement),
      handoff_(self_, config_.handoff, config_.replication.limits, store, journal, placement_,
               handoff_limits{config_.placement.n, config_.replication.max_key_size,
                              config_.replication.max_value_size}),
      tracked_(store, write_note{this}),
      replica_(self_, config_.replication, view_type{this}, tracked_, hints),
      router_(make_router(seed)) {
  actor_salt_ = detail::node::sub_seed(seed, 3);
  if (self_.value == 0) throw std::invalid_argument("dhtkit::node_config: name hashes to id 0; pick another");
  replica_.set_may_drop([this](std::string_view key) { return handoff_.may_drop(placement_.position(key)); });
}

template <class Endpoint, placement Placement, storage Storage>
auto basic_node_core<Endpoint, Placement, Storage>::make_router(std::uint64_t seed) -> router_type {
  if constexpr (routed) {
    return router_type(self_, packet_, config_.chord, detail::node::sub_seed(seed, 2));
  } else {
    (void)seed;
    return {};
  }
}

template <class Endpoint, placement Placement, storage Storage>
std::error_code basic_node_core<Endpoint, Placement, Storage>::join(std::span<const Endpoint> seeds,
                                                                    time_point now) {
  if (state_ != node_state::idle) return errc::invalid_argument;
  std::vector<Endpoint> list(seeds.begin(), seeds.end());
  std::erase(list, packet_);
  founding_ = list.empty();
  if (founding_) list.push_back(packet_);  // SWIM: a seed list of only ourselves founds a group
  if (auto ec = swim_.join(list, now)) return ec;
  if constexpr (requires { store_.set_actor(node_id{}); }) {
    // An empty store may be a lost disk: its writes get a name of their own,
    // so they never repeat a dot the old store issued (storage.hpp, actor()).
    if (store_.stats().keys == 0 && store_.actor().value == 0)
      store_.set_actor(node_id{mix64(
          self_.value ^ mix64(static_cast<std::uint64_t>(now.time_since_epoch().count()) ^ actor_salt_))});
  }
  state_ = node_state::joining;
  if constexpr (routed) {
    if (founding_) router_.create(now);
  }
  if (founding_) {
    schedule_settle(now);
  } else {
    join_deadline_ = now + config_.join_timeout;
  }
  pump(now);
  return {};
}

template <class Endpoint, placement Placement, storage Storage>
std::error_code basic_node_core<Endpoint, Placement, Storage>::leave(time_point now) {
  if (state_ == node_state::leaving || state_ == node_state::left) return errc::shut_down;
  if (state_ != node_state::joined) return errc::not_joined;
  state_ = node_state::leaving;
  leave_deadline_ = now + config_.leave_timeout;
  // Draining: every node (this one too) settles a placement without us; this
  // node then holds nothing, so the handoff streams all it stores to the new
  // holders. SWIM's leave comes once that is done (tick()).
  detail::node::node_meta<Endpoint> meta{1, detail::node::node_meta<Endpoint>::draining_flag, 1, stream_,
                                         config_.name};
  (void)swim_.set_metadata(detail::node::encode_meta(meta, self_), now);
  schedule_settle(now);
  for (auto it = ops_.begin(); it != ops_.end();) {
    if (it->second.replica_id == 0) {  // not started: fail it now; started ones finish
      by_lookup_.erase(it->second.lookup);
      fail_op(it->first, it->second, errc::shut_down);
      it = ops_.erase(it);
    } else {
      ++it;
    }
  }
  pump(now);
  return {};
}

}  // namespace dhtkit

// What the node's replica sees of placement: the node's placement for
// preference lists, the handoff for readiness, and the directory for
// membership. A cheap view (one pointer), so the replica can hold it by value
// while the node changes what it points at.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "dhtkit/core/node_id.hpp"

namespace dhtkit::detail::node {

template <class Core>
struct placement_view {
  const Core* core = nullptr;

  std::uint64_t position(std::string_view key) const { return core->placement_.position(key); }
  std::vector<node_id> replicas(std::uint64_t pos, std::size_t n) const {
    return core->placement_.preference_list(pos, n);
  }
  std::vector<node_id> walk(std::uint64_t pos, std::size_t n) const {
    return core->placement_.preference_list(pos, n);
  }
  // Replication traffic was already checked against the directory (sender at
  // its own address); this keeps the replica's own check meaningful.
  bool is_member(node_id id) const { return id == core->self_ || core->peers_.contains(id); }
  std::vector<node_id> peers() const {
    std::vector<node_id> out;
    out.reserve(core->placement_.members().size());
    for (const auto& m : core->placement_.members()) out.push_back(m.id);
    return out;
  }
  bool ready(std::uint64_t pos) const { return core->handoff_.ready(pos); }
  std::vector<node_id> read_extras(std::uint64_t pos) const {
    std::vector<node_id> out;
    for (node_id id : core->placement_.previous_holders(pos))
      if (core->is_live(id)) out.push_back(id);
    return out;
  }
};

}  // namespace dhtkit::detail::node

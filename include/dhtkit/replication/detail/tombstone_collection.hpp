// Tombstone collection: a tombstone every true replica was seen to hold becomes a
// marker (the bare causal context) after tombstone_grace; a marker is removed after
// marker_ttl. Runs with each anti-entropy round.
//
// Included at the end of dhtkit/replication/replica.hpp; not to be included alone.
#pragma once

#include "dhtkit/replication/replica.hpp"

namespace dhtkit {

template <storage Storage, replica_placement Placement>
void basic_replica<Storage, Placement>::collect_garbage(time_point now) {
  for (auto it = tombs_.begin(); it != tombs_.end();) {
    if (!it->second.settled_at || *it->second.settled_at + config_.tombstone_grace > now) {
      ++it;
      continue;
    }
    const std::string key = it->first;
    it = tombs_.erase(it);
    auto e = store_.get(key);
    if (!e || e->empty()) continue;
    bool all_tombs = true;
    for (const versioned_value& v : e->siblings()) all_tombs = all_tombs && v.tombstone;
    if (!all_tombs) continue;
    versioned_entry marker = *e;
    marker.clear_siblings();
    if (auto changed = store_.merge(key, marker); changed && *changed) {
      ++stats_.tombstones_collected;
      markers_[key] = now;
    }
  }
  // Markers left by collection (or found after a restart) expire after marker_ttl.
  std::vector<std::string> found;
  for (std::uint32_t r = 0; r < ranges(); ++r) {
    store_.for_each_in_range(range_begin(r), range_end(r),
                             [&](std::string_view key, const versioned_entry& e) {
                               if (e.empty() && !markers_.contains(std::string(key))) found.emplace_back(key);
                             });
  }
  for (auto& k : found) markers_.emplace(std::move(k), now);
  for (auto it = markers_.begin(); it != markers_.end();) {
    if (it->second + config_.marker_ttl > now) {
      ++it;
      continue;
    }
    auto e = store_.get(it->first);
    if (e && e->empty()) {
      store_.remove(it->first);
      ++stats_.markers_removed;
    }
    it = markers_.erase(it);
  }
}

}  // namespace dhtkit

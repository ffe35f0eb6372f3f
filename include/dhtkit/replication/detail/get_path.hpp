// The get path: targets asked, replies merged, the answer after R, read repair once
// all asked have replied or the deadline passed, silent targets replaced. Out of
// replica.hpp so the class reads first.
//
// Included at the end of dhtkit/replication/replica.hpp; not to be included alone.
#pragma once

#include "dhtkit/replication/replica.hpp"

namespace dhtkit {

template <storage Storage>
void replica<Storage>::add_get_target(request_id id, get_op& g, node_id t, time_point now) {
  g.targets.push_back({t, now, false, false});
  if (t == self_) {
    on_read_reply(id, g, self_, store_.get(g.key), now);
  } else {
    send(t, detail::repl::read_request{id, g.key});
  }
}

template <storage Storage>
void replica<Storage>::on_read_reply(request_id id, get_op& g, node_id from,
                                     std::optional<versioned_entry> entry, time_point) {
  get_target* t = nullptr;
  for (auto& x : g.targets)
    if (x.node == from && !x.replied) t = &x;
  if (t == nullptr) return;  // duplicate or unasked
  t->replied = true;
  ++g.replies;
  if (entry) {
    versioned_entry merged = g.merged;
    if (!merged.sync(*entry)) g.merged = std::move(merged);
  }
  g.responses.emplace_back(from, std::move(entry));
  (void)id;
}

// Answers when R replies are in; repairs and forgets once everyone asked has replied.
template <storage Storage>
void replica<Storage>::check_get(request_id id, get_op& g, time_point now) {
  if (!g.answered && g.replies >= g.r) {
    g.answered = true;
    get_completion c;
    c.id = id;
    c.key = g.key;
    c.replies = g.replies;
    c.required = g.r;
    c.context = g.merged.context();
    for (const versioned_value& v : g.merged.siblings())
      if (v.live(now)) c.siblings.push_back(v);
    ++stats_.gets_ok;
    out_.gets.push_back(std::move(c));
  }
  bool outstanding = false;
  for (const auto& t : g.targets) outstanding = outstanding || (!t.replied && !t.replaced);
  if (!outstanding) finish_get(id, g, now);
}

template <storage Storage>
void replica<Storage>::finish_get(request_id id, get_op& g, time_point now) {
  if (!g.answered) fail_get(id, g.key, errc::quorum_not_reached, g.replies, g.r);
  if (config_.read_repair && !g.merged.empty()) {
    for (const auto& [node, entry] : g.responses) {
      if (std::find(g.true_replicas.begin(), g.true_replicas.end(), node) == g.true_replicas.end()) continue;
      if (entry && !entry->would_change(g.merged)) continue;
      ++stats_.read_repairs;
      if (node == self_) {
        auto changed = store_.merge(g.key, g.merged);
        if (changed && *changed) changed_by_merge(g.key);
      } else {
        send(node, detail::repl::replicate{0, g.key, g.merged, node_id{}});
      }
    }
  }
  (void)now;
  gets_.erase(id);
}

template <storage Storage>
void replica<Storage>::tick_gets(time_point now) {
  for (auto it = gets_.begin(); it != gets_.end();) {
    get_op& g = it->second;
    const request_id id = it->first;
    ++it;  // finish_get erases
    if (g.deadline <= now) {
      finish_get(id, g, now);
      continue;
    }
    const std::size_t count = g.targets.size();
    for (std::size_t i = 0; i < count; ++i) {
      if (g.targets[i].replied || g.targets[i].replaced ||
          g.targets[i].sent_at + config_.replica_timeout > now)
        continue;
      const node_id silent = g.targets[i].node;
      suspect_[silent] = now + config_.suspect_period;
      if (auto next = next_candidate(g, now)) {
        g.targets[i].replaced = true;
        add_get_target(id, g, *next, now);
      } else {
        g.targets[i].sent_at = now;
        send(silent, detail::repl::read_request{id, g.key});
      }
    }
    check_get(id, g, now);
  }
}

}  // namespace dhtkit

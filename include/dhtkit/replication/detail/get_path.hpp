// The get path: targets asked, replies merged, the answer after R, read repair once
// all asked have replied or the deadline passed, silent targets replaced, targets that
// are not ready (a range still being handed to them) replaced at once, previous
// holders first. Out of replica.hpp so the class reads first.
//
// Included at the end of dhtkit/replication/replica.hpp; not to be included alone.
#pragma once

#include "dhtkit/replication/replica.hpp"

namespace dhtkit {

// Previous holders go after the true replicas and before the fallbacks: a
// target that answers not_ready is replaced by a node that has the data rather
// than by a stand-in that has none.
template <storage Storage, replica_placement Placement>
void basic_replica<Storage, Placement>::add_read_extras(get_op& g) const {
  const auto& extras = placement_.read_extras(g.pos);
  if (extras.empty()) return;
  auto& c = g.candidates;
  auto is_true = [&](node_id x) {
    return std::find(g.true_replicas.begin(), g.true_replicas.end(), x) != g.true_replicas.end();
  };
  auto at = static_cast<std::ptrdiff_t>(
      std::find_if(c.begin(), c.end(), [&](node_id x) { return !is_true(x); }) - c.begin());
  for (const node_id& x : extras) {
    if (is_true(x) || std::find(c.begin(), c.begin() + at, x) != c.begin() + at) continue;
    if (auto it = std::find(c.begin() + at, c.end(), x); it != c.end())
      std::rotate(c.begin() + at, it, it + 1);  // already a fallback: moved up
    else
      c.insert(c.begin() + at, x);
    ++at;
  }
}

// Every first target is entered before any is asked, so a stand-in for one
// that is not ready (this node, answered at once) is never a node still to
// be asked.
template <storage Storage, replica_placement Placement>
void basic_replica<Storage, Placement>::start_get(request_id id, get_op& g, time_point now) {
  const auto first = initial_targets(g.candidates, g.true_replicas, g.n, now);
  for (const node_id& t : first) g.targets.push_back({t, now, false, false});
  for (std::size_t i = 0; i < first.size(); ++i) ask_target(id, g, i, now);
}

template <storage Storage, replica_placement Placement>
void basic_replica<Storage, Placement>::add_get_target(request_id id, get_op& g, node_id t, time_point now) {
  g.targets.push_back({t, now, false, false});
  ask_target(id, g, g.targets.size() - 1, now);
}

// This node's own store answers as any replica would, readiness included.
template <storage Storage, replica_placement Placement>
void basic_replica<Storage, Placement>::ask_target(request_id id, get_op& g, std::size_t target,
                                                   time_point now) {
  const node_id t = g.targets[target].node;
  if (t != self_) {
    send(t, detail::repl::read_request{id, g.key});
  } else if (placement_.ready(g.pos)) {
    on_read_reply(id, g, self_, store_.get(g.key), now);
  } else {
    on_not_ready(id, g, self_, now);
  }
}

// A not-ready target has answered but has nothing to count toward R: it is done
// with, and its stand-in is asked now rather than after replica_timeout.
template <storage Storage, replica_placement Placement>
void basic_replica<Storage, Placement>::on_not_ready(request_id id, get_op& g, node_id from, time_point now) {
  get_target* t = nullptr;
  for (auto& x : g.targets)
    if (x.node == from && !x.replied) t = &x;
  if (t == nullptr) return;  // duplicate or unasked
  ++stats_.not_ready_replies;
  t->replied = true;
  if (t->replaced) return;  // silent before: its stand-in is already asked
  if (auto next = next_read_candidate(g, now)) add_get_target(id, g, *next, now);
}

// The first healthy candidate not yet asked. Unlike a silent target's, this
// stand-in is taken under strict_quorum too, where the candidates are only the
// true replicas and the previous holders.
template <storage Storage, replica_placement Placement>
std::optional<node_id> basic_replica<Storage, Placement>::next_read_candidate(const get_op& g,
                                                                              time_point now) const {
  for (const node_id& c : g.candidates) {
    if (!healthy(c, now)) continue;
    bool used = false;
    for (const auto& t : g.targets) used = used || t.node == c;
    if (!used) return c;
  }
  return std::nullopt;
}

template <storage Storage, replica_placement Placement>
void basic_replica<Storage, Placement>::on_read_reply(request_id id, get_op& g, node_id from,
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
template <storage Storage, replica_placement Placement>
void basic_replica<Storage, Placement>::check_get(request_id id, get_op& g, time_point now) {
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

template <storage Storage, replica_placement Placement>
void basic_replica<Storage, Placement>::finish_get(request_id id, get_op& g, time_point now) {
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

template <storage Storage, replica_placement Placement>
void basic_replica<Storage, Placement>::tick_gets(time_point now) {
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

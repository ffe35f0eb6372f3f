/// @file
/// The handoff's durable state: what a node restarted "with state" needs to
/// continue rebalancing where it stopped instead of starting over, kept beside
/// its storage and hint_store and given to the new handoff_manager.
///
///  - pending units: units this node gained and may not serve reads for yet,
///    with the time they became pending and the sources they wait for;
///  - inbound cursors: per (unit, source), how far that source's stream got
///    (the first position not yet covered) and the sender's generation, so an
///    offer from the same source resumes there;
///  - outbound units: per unit this node streams, a generation and the
///    positions written behind a stream's cursor (dirty), re-sent before the
///    final chunk. A restarted sender resumes only because these are durable.
///
/// Bounds (handoff_journal_config) and what happens at each: a unit that
/// cannot be recorded as pending is ready at once (anti-entropy fills it); a
/// cursor that cannot be recorded means that stream restarts from the unit's
/// start after a crash; a dirty position that cannot be recorded restarts the
/// unit's streams (a new generation), as max_dirty_keys does per unit.
///
/// @code
/// dhtkit::handoff_journal journal;                        // default bounds
/// dhtkit::key_range unit{0, 1ull << 54};
/// journal.set_pending(unit, now, {dhtkit::node_id{2}});  // false when full
/// journal.set_cursor(unit.begin, dhtkit::node_id{2}, {4096, 7});
/// auto c = journal.cursor(unit.begin, dhtkit::node_id{2});  // {4096, 7}
/// @endcode
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>
#include <utility>
#include <vector>

#include "dhtkit/core/node_id.hpp"
#include "dhtkit/core/time.hpp"
#include "dhtkit/node/placement.hpp"

namespace dhtkit {

/// Bounds of a handoff_journal.
struct handoff_journal_config {
  std::size_t max_pending = 65536;   ///< pending units (2^16: one_hop's largest partition count)
  std::size_t max_cursors = 65536;   ///< inbound (unit, source) cursors
  std::size_t max_outbound = 65536;  ///< units tracked as outbound
  std::size_t max_dirty = 1 << 20;   ///< dirty positions over all outbound units
};

/// A pending (not ready) unit as the journal keeps it.
struct handoff_pending {
  key_range range{};
  time_point since{};              ///< when it became pending (not_ready_timeout counts from here)
  std::vector<node_id> sources{};  ///< sources that have not completed a stream of it yet
};

/// How far one source's stream of one unit got.
struct handoff_cursor {
  std::uint64_t covered_until = 0;  ///< first position not yet received
  std::uint64_t generation = 0;     ///< the sender's generation of the unit (see offer)
  friend bool operator==(const handoff_cursor&, const handoff_cursor&) = default;
};

/// A unit this node streams: its generation and dirty positions.
struct handoff_outbound {
  key_range range{};
  std::uint64_t generation = 0;
  std::set<std::uint64_t> dirty{};  ///< positions written behind a stream's cursor
};

/// The handoff's durable state (see handoff_journal.hpp).
class handoff_journal {
 public:
  /// Throws std::invalid_argument for a zero bound.
  explicit handoff_journal(handoff_journal_config config = {}) : config_(config) {
    if (config_.max_pending == 0 || config_.max_cursors == 0 || config_.max_outbound == 0 ||
        config_.max_dirty == 0)
      throw std::invalid_argument("dhtkit::handoff_journal_config: every bound must be at least 1");
  }
  const handoff_journal_config& config() const noexcept { return config_; }

  /// False when full (the caller treats the unit as ready).
  bool set_pending(key_range range, time_point since, std::vector<node_id> sources) {
    auto it = pending_.find(range.begin);
    if (it == pending_.end() && pending_.size() >= config_.max_pending) return false;
    pending_[range.begin] = handoff_pending{range, since, std::move(sources)};
    return true;
  }
  bool clear_pending(std::uint64_t unit_begin) { return pending_.erase(unit_begin) > 0; }
  handoff_pending* find_pending(std::uint64_t unit_begin) {
    auto it = pending_.find(unit_begin);
    return it == pending_.end() ? nullptr : &it->second;
  }
  /// unit begin -> pending unit
  const std::map<std::uint64_t, handoff_pending>& pending() const noexcept { return pending_; }
  std::map<std::uint64_t, handoff_pending>& pending() noexcept { return pending_; }

  /// False when full: the stream then runs without a durable cursor.
  bool set_cursor(std::uint64_t unit_begin, node_id source, handoff_cursor c) {
    const auto k = std::make_pair(unit_begin, source);
    auto it = cursors_.find(k);
    if (it == cursors_.end()) {
      if (cursors_.size() >= config_.max_cursors) return false;
      cursors_.emplace(k, c);
    } else {
      it->second = c;
    }
    return true;
  }
  std::optional<handoff_cursor> cursor(std::uint64_t unit_begin, node_id source) const {
    auto it = cursors_.find({unit_begin, source});
    if (it == cursors_.end()) return std::nullopt;
    return it->second;
  }
  /// Forgets every source's cursor of the unit (it was gained afresh, or is not held any more).
  void clear_cursors(std::uint64_t unit_begin) {
    auto it = cursors_.lower_bound({unit_begin, node_id{0}});
    while (it != cursors_.end() && it->first.first == unit_begin) it = cursors_.erase(it);
  }
  /// (unit begin, source) -> cursor
  const std::map<std::pair<std::uint64_t, node_id>, handoff_cursor>& cursors() const noexcept {
    return cursors_;
  }

  /// The unit's outbound record, created with a fresh generation; nullptr when full.
  handoff_outbound* outbound(key_range range) {
    auto it = outbound_.find(range.begin);
    if (it != outbound_.end() && it->second.range == range) return &it->second;
    if (it != outbound_.end()) {
      drop_outbound(range.begin);  // the unit was cut differently: start its tracking over
    } else if (outbound_.size() >= config_.max_outbound) {
      return nullptr;
    }
    auto& o = outbound_[range.begin];
    o.range = range;
    o.generation = ++generation_;
    return &o;
  }
  handoff_outbound* find_outbound(std::uint64_t unit_begin) {
    auto it = outbound_.find(unit_begin);
    return it == outbound_.end() ? nullptr : &it->second;
  }
  const handoff_outbound* find_outbound(std::uint64_t unit_begin) const {
    auto it = outbound_.find(unit_begin);
    return it == outbound_.end() ? nullptr : &it->second;
  }
  void drop_outbound(std::uint64_t unit_begin) {
    auto it = outbound_.find(unit_begin);
    if (it == outbound_.end()) return;
    dirty_total_ -= it->second.dirty.size();
    outbound_.erase(it);
  }
  /// Records pos as dirty; false when the unit's or the journal's bound is
  /// reached (`per_unit`: the handoff's max_dirty_keys): the caller restarts the unit.
  bool add_dirty(handoff_outbound& o, std::uint64_t pos, std::size_t per_unit) {
    if (o.dirty.count(pos) != 0) return true;
    if (o.dirty.size() >= per_unit || dirty_total_ >= config_.max_dirty) return false;
    o.dirty.insert(pos);
    ++dirty_total_;
    return true;
  }
  void erase_dirty(handoff_outbound& o, std::uint64_t pos) { dirty_total_ -= o.dirty.erase(pos); }
  /// A new generation and no dirty positions: every stream of the unit starts over.
  void restart(handoff_outbound& o) {
    dirty_total_ -= o.dirty.size();
    o.dirty.clear();
    o.generation = ++generation_;
  }
  /// unit begin -> outbound record
  const std::map<std::uint64_t, handoff_outbound>& outbound_units() const noexcept { return outbound_; }
  std::size_t dirty_positions() const noexcept { return dirty_total_; }
  /// A number never returned before by this journal (session ids, generations).
  std::uint64_t next_serial() noexcept { return ++generation_; }

 private:
  handoff_journal_config config_;
  std::map<std::uint64_t, handoff_pending> pending_;
  std::map<std::pair<std::uint64_t, node_id>, handoff_cursor> cursors_;
  std::map<std::uint64_t, handoff_outbound> outbound_;
  std::size_t dirty_total_ = 0;
  std::uint64_t generation_ = 0;  // durable: a restarted sender never reuses a generation
};

}  // namespace dhtkit

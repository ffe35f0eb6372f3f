/// @file
/// The hints a fallback keeps: (key, owner) pairs for keys it stores on
/// behalf of a true replica that was down when the write came, each with the
/// time it was created, so hinted handoff can give the key back and drop old
/// hints. Part of a node's durable state, like its storage: a restarted
/// replica is given the same hint_store and resumes handing off.
///
/// @code
/// dhtkit::hint_store hints;                             // default: at most 100,000 hints
/// (void)hints.add("cart:7", dhtkit::node_id{3}, now);   // limit_exceeded when full
/// bool waiting = hints.has_key("cart:7");               // true
/// hints.remove("cart:7", dhtkit::node_id{3});           // handed off
/// @endcode
#pragma once

#include <cstddef>
#include <map>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

#include "dhtkit/core/error.hpp"
#include "dhtkit/core/node_id.hpp"
#include "dhtkit/core/time.hpp"

namespace dhtkit {

/// Bounds of a hint_store.
struct hint_store_config {
  std::size_t max_hints = 100000;  ///< hints held at once; a write beyond is refused by this fallback
};

/// Hints a fallback keeps for keys it stores on behalf of down owners. Part of
/// a node's durable state, like its storage.
class hint_store {
 public:
  explicit hint_store(hint_store_config config = {}) : config_(config) {
    if (config_.max_hints == 0)
      throw std::invalid_argument("dhtkit::hint_store_config: max_hints must be >= 1");
  }
  /// limit_exceeded when full. A hint already held keeps its original age (never duplicated).
  std::error_code add(std::string_view key, node_id owner, time_point now) {
    auto k = std::make_pair(std::string(key), owner);
    if (auto it = hints_.find(k); it != hints_.end()) return {};
    if (hints_.size() >= config_.max_hints) return errc::limit_exceeded;
    hints_.emplace(std::move(k), now);
    return {};
  }
  bool remove(std::string_view key, node_id owner) { return hints_.erase({std::string(key), owner}) > 0; }
  bool has_key(std::string_view key) const {
    auto it = hints_.lower_bound({std::string(key), node_id{0}});
    return it != hints_.end() && it->first.first == key;
  }
  std::size_t size() const noexcept { return hints_.size(); }
  /// (key, owner) -> time the hint was created
  const std::map<std::pair<std::string, node_id>, time_point>& all() const noexcept { return hints_; }

 private:
  hint_store_config config_;
  std::map<std::pair<std::string, node_id>, time_point> hints_;
};

}  // namespace dhtkit

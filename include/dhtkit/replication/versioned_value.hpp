/// @file
/// A versioned value: one sibling of a replicated key.
///
/// Replication keeps, per key, the set of concurrent versions a client has not
/// yet reconciled (see dotted_version_vector.hpp). Each version is a
/// versioned_value: the value bytes, the dot naming the write that produced it
/// (its causal version; the key's version vector says what else it has seen),
/// a tombstone flag for deletes, and an expiry time.
///
/// @code
/// dhtkit::versioned_value v;
/// v.version = dhtkit::dot{dhtkit::node_id{7}, 42};       // the 42nd write numbered by node 7
/// v.value = dhtkit::to_bytes("hello");
/// v.expires_at = dhtkit::time_point{} + dhtkit::seconds(60);
/// bool live = v.live(dhtkit::time_point{} + dhtkit::seconds(1));   // true: not deleted, not expired
/// @endcode
///
/// Expiry is compared with the `now` the replica's driver passes in; a cluster
/// that uses it must give its nodes comparable clocks (the simulator's virtual
/// time is shared by construction). An expired version is hidden from reads; it
/// is physically dropped when a later write supersedes it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include <cereal/cereal.hpp>
#include <cereal/types/vector.hpp>

#include "dhtkit/clock/dotted_version_vector.hpp"
#include "dhtkit/core/time.hpp"

namespace dhtkit {

/// A stored value: bytes.
using bytes = std::vector<std::byte>;

inline bytes to_bytes(std::string_view s) {
  bytes out(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) out[i] = static_cast<std::byte>(s[i]);
  return out;
}

/// One version of a key's value: the write that made it, the bytes or a
/// tombstone, and an expiry time.
struct versioned_value {
  static constexpr time_point never = time_point::max();

  dot version{};                  ///< the write that produced this version
  bytes value;                    ///< empty for a tombstone
  bool tombstone = false;         ///< a delete: hides the versions it superseded
  time_point expires_at = never;  ///< hidden from reads from this time on

  bool live(time_point now) const noexcept { return !tombstone && now < expires_at; }

  friend bool operator==(const versioned_value&, const versioned_value&) = default;

  template <class Archive>
  void save(Archive& ar) const {
    ar(version, value, tombstone, static_cast<std::int64_t>(expires_at.time_since_epoch().count()));
  }
  template <class Archive>
  void load(Archive& ar) {
    std::int64_t expires = 0;
    ar(version, value, tombstone, expires);
    if (tombstone && !value.empty())
      throw cereal::Exception("dhtkit::versioned_value: tombstone with a value");
    expires_at = time_point(duration(expires));
  }
};

/// The replicated state of one key: its siblings and causal context.
using versioned_entry = dotted_version_vector_set<versioned_value>;

}  // namespace dhtkit

/// @file
/// Merkle trees over a key range, for anti-entropy.
///
/// Two replicas of a key range find the keys on which they differ without
/// shipping the keys: each builds a tree whose leaves are buckets of the range
/// (a bucket's hash sums the digests of its keys, so insertion order does not
/// matter) and whose inner nodes hash their children. They compare roots; only
/// where hashes differ do they descend, so the traffic is proportional to the
/// differences, not to the data (Dynamo, section 4.7).
///
/// @code
/// dhtkit::merkle_config config;                        // fanout 16, depth 2: 256 buckets
/// dhtkit::merkle_tree a(config, /*begin=*/0, /*range_bits=*/0);   // the whole circle
/// dhtkit::merkle_tree b(config, 0, 0);
/// a.insert(/*position=*/0x1234000000000000, /*digest=*/77);
/// b.insert(0x1234000000000000, 78);                    // same key, another version
/// std::vector<std::uint32_t> buckets = dhtkit::merkle_diff(a, b, /*max_buckets=*/8);
/// // buckets == {a.bucket_of(0x1234000000000000)}
/// @endcode
///
/// Positions are 64-bit ring positions (key hashes). A tree covers the range
/// [begin, begin + 2^(64 - range_bits)), i.e. one of 2^range_bits equal slices
/// of the circle; its buckets split that slice evenly. Level 0 is the root,
/// level `depth` the buckets; node i of level l has children
/// [i * fanout, (i + 1) * fanout) on level l + 1. An empty subtree hashes to 0.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "dhtkit/core/hash.hpp"

namespace dhtkit {

/// Shape of a merkle_tree: fanout and depth.
struct merkle_config {
  /// log2 of the children per inner node: 4 gives fanout 16. In [1, 8].
  std::uint32_t fanout_bits = 4;
  /// Levels below the root: 2 gives 16^2 = 256 buckets per range. In [1, 4],
  /// and fanout_bits * depth <= 16 (at most 65536 buckets).
  std::uint32_t depth = 2;
};

/// A Merkle tree over one range of key positions, for anti-entropy (see merkle.hpp).
class merkle_tree {
 public:
  /// Throws std::invalid_argument for a bad configuration or range_bits >= 48.
  merkle_tree(merkle_config config, std::uint64_t begin, std::uint32_t range_bits)
      : config_(config), begin_(begin), range_bits_(range_bits) {
    if (config.fanout_bits < 1 || config.fanout_bits > 8)
      throw std::invalid_argument("dhtkit::merkle_config: fanout_bits must be in [1, 8]");
    if (config.depth < 1 || config.depth > 4)
      throw std::invalid_argument("dhtkit::merkle_config: depth must be in [1, 4]");
    if (config.fanout_bits * config.depth > 16)
      throw std::invalid_argument("dhtkit::merkle_config: fanout_bits * depth must be at most 16");
    if (range_bits >= 48) throw std::invalid_argument("dhtkit::merkle_tree: range_bits must be below 48");
    levels_.resize(config.depth + 1);
    for (std::uint32_t l = 0; l <= config.depth; ++l) levels_[l].assign(width(l), 0);
  }

  const merkle_config& config() const noexcept { return config_; }
  std::uint32_t depth() const noexcept { return config_.depth; }
  std::uint32_t fanout() const noexcept { return 1u << config_.fanout_bits; }
  std::uint32_t width(std::uint32_t level) const noexcept { return 1u << (config_.fanout_bits * level); }
  std::uint32_t buckets() const noexcept { return width(config_.depth); }

  /// The bucket of a position inside the range (positions outside wrap into it).
  std::uint32_t bucket_of(std::uint64_t position) const noexcept {
    const std::uint64_t offset = (position - begin_) << range_bits_;
    return static_cast<std::uint32_t>(offset >> (64 - config_.fanout_bits * config_.depth));
  }
  /// The ancestor on `level` of a bucket.
  std::uint32_t ancestor(std::uint32_t level, std::uint32_t bucket) const noexcept {
    return bucket >> (config_.fanout_bits * (config_.depth - level));
  }

  void insert(std::uint64_t position, std::uint64_t digest) {
    levels_[config_.depth][bucket_of(position)] += digest;
    sealed_ = false;
  }

  /// Hash of node `index` on `level` (0 if out of range).
  std::uint64_t hash(std::uint32_t level, std::uint32_t index) const {
    if (level > config_.depth || index >= width(level)) return 0;
    seal();
    return levels_[level][index];
  }
  std::uint64_t root() const { return hash(0, 0); }

 private:
  void seal() const {
    if (sealed_) return;
    for (std::uint32_t l = config_.depth; l-- > 0;) {
      const std::uint32_t f = fanout();
      for (std::uint32_t i = 0; i < width(l); ++i) {
        const std::uint64_t* kids = levels_[l + 1].data() + std::size_t{i} * f;
        bool any = false;
        for (std::uint32_t c = 0; c < f; ++c) any = any || kids[c] != 0;
        levels_[l][i] =
            any ? xxh64(std::string_view(reinterpret_cast<const char*>(kids), f * sizeof(std::uint64_t)),
                        l + 1)
                : 0;
      }
    }
    sealed_ = true;
  }

  merkle_config config_;
  std::uint64_t begin_;
  std::uint32_t range_bits_;
  mutable std::vector<std::vector<std::uint64_t>> levels_;
  mutable bool sealed_ = true;
};

/// Buckets whose hashes differ, found by descending only into differing
/// subtrees, at most max_buckets of them (in bucket order). Both trees must
/// share a configuration (std::invalid_argument otherwise).
inline std::vector<std::uint32_t> merkle_diff(const merkle_tree& a, const merkle_tree& b,
                                              std::size_t max_buckets) {
  if (a.config().fanout_bits != b.config().fanout_bits || a.depth() != b.depth())
    throw std::invalid_argument("dhtkit::merkle_diff: trees of different shapes");
  std::vector<std::uint32_t> frontier;
  if (a.root() != b.root()) frontier.push_back(0);
  for (std::uint32_t level = 1; level <= a.depth() && !frontier.empty(); ++level) {
    std::vector<std::uint32_t> next;
    for (std::uint32_t parent : frontier) {
      for (std::uint32_t c = parent * a.fanout(); c < (parent + 1) * a.fanout(); ++c) {
        if (a.hash(level, c) != b.hash(level, c)) next.push_back(c);
      }
    }
    frontier = std::move(next);
  }
  if (frontier.size() > max_buckets) frontier.resize(max_buckets);
  return frontier;
}

}  // namespace dhtkit

// The storage the node's replica writes through: the node's Storage, plus a
// note to the handoff of every position a write changed, so a range being
// handed off re-sends keys written behind its cursor (dirty tracking). Reads
// and scans pass straight through.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <utility>

#include "dhtkit/replication/storage.hpp"

namespace dhtkit::detail::node {

template <storage Storage, class OnWrite>
class tracked_storage {
 public:
  tracked_storage(Storage& inner, OnWrite on_write) : inner_(&inner), on_write_(std::move(on_write)) {}

  std::optional<versioned_entry> get(std::string_view key) const { return inner_->get(key); }
  result<versioned_entry> put(std::string_view key, const version_vector& context,
                              const versioned_value& value) {
    auto r = inner_->put(key, context, value);
    if (r) on_write_(key);
    return r;
  }
  result<versioned_entry> erase(std::string_view key, const version_vector& context, dot d) {
    auto r = inner_->erase(key, context, d);
    if (r) on_write_(key);
    return r;
  }
  result<bool> merge(std::string_view key, const versioned_entry& entry) {
    auto r = inner_->merge(key, entry);
    if (r && *r) on_write_(key);
    return r;
  }
  bool remove(std::string_view key) { return inner_->remove(key); }
  template <class F>
  void for_each_in_range(std::uint64_t begin, std::uint64_t end, F&& f) const {
    inner_->for_each_in_range(begin, end, std::forward<F>(f));
  }
  storage_stats stats() const { return inner_->stats(); }
  std::uint64_t next_counter() { return inner_->next_counter(); }
  node_id actor() const {
    if constexpr (requires { inner_->actor(); })
      return inner_->actor();
    else
      return node_id{};
  }
  Storage& inner() noexcept { return *inner_; }

 private:
  Storage* inner_;
  OnWrite on_write_;
};

}  // namespace dhtkit::detail::node

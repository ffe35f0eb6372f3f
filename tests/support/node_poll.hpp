// Test helpers for real dhtkit::node instances on one asio::io_context: join
// three of them and read every node's stats, each step with a bound of wall
// time. Shared by tests/node_asio_test, node_security_test and node_tls_test.
//
//   dhtkit::node a{...}, b{... seeds: a ...}, c{... seeds: a ...};
//   REQUIRE(dhtkit::test::join_three(io, a, b, c));
//   auto stats = dhtkit::test::stats_within(io, {&a, &b, &c}, 2s);
//   bool ok = dhtkit::test::stats_until(io, {&a, &b, &c}, 10s, 1s,
//       [](const auto& s) { return s[0].members_alive == 3; });
#pragma once

#include <algorithm>
#include <asio/io_context.hpp>
#include <chrono>
#include <optional>
#include <system_error>
#include <vector>

#include "dhtkit/node/node.hpp"
#include "support/asio_run.hpp"

namespace dhtkit::test {

// Every node's stats (each read through async_stats, on its own strand), or
// nothing when some node has not answered within `bound`.
inline std::optional<std::vector<dhtkit::node_stats>> stats_within(asio::io_context& io,
                                                                   const std::vector<dhtkit::node*>& nodes,
                                                                   std::chrono::milliseconds bound) {
  std::vector<std::optional<dhtkit::node_stats>> s(nodes.size());
  for (std::size_t i = 0; i < nodes.size(); ++i)
    nodes[i]->async_stats([&s, i](dhtkit::node_stats st) { s[i] = st; });
  if (!run_until(
          io, [&] { return std::all_of(s.begin(), s.end(), [](const auto& x) { return x.has_value(); }); },
          bound))
    return std::nullopt;
  std::vector<dhtkit::node_stats> out;
  out.reserve(s.size());
  for (auto& x : s) out.push_back(*x);
  return out;
}

// Polls every node's stats until `ok(stats)` holds, within `bound`; false if
// it never does, or if a poll is not answered within `per_poll`.
template <class Ok>
bool stats_until(asio::io_context& io, const std::vector<dhtkit::node*>& nodes,
                 std::chrono::milliseconds bound, std::chrono::milliseconds per_poll, Ok ok) {
  const auto deadline = std::chrono::steady_clock::now() + bound;
  while (std::chrono::steady_clock::now() < deadline) {
    const auto s = stats_within(io, nodes, per_poll);
    if (!s) return false;
    if (ok(*s)) return true;
    io.run_for(std::chrono::milliseconds(20));
  }
  return false;
}

// a joins (it forms the cluster), then b and c, which must have a among
// their seeds; true once all three joins have succeeded. Waiting for the
// membership to agree is the caller's: what "agreed" means differs by test.
inline bool join_three(asio::io_context& io, dhtkit::node& a, dhtkit::node& b, dhtkit::node& c) {
  std::vector<std::optional<std::error_code>> done(3);
  a.async_join([&](std::error_code ec) { done[0] = ec; });
  if (!run_until(
          io, [&] { return done[0].has_value(); }, std::chrono::seconds(5)) ||
      *done[0])
    return false;
  b.async_join([&](std::error_code ec) { done[1] = ec; });
  c.async_join([&](std::error_code ec) { done[2] = ec; });
  if (!run_until(
          io, [&] { return done[1].has_value() && done[2].has_value(); }, std::chrono::seconds(10)))
    return false;
  return !*done[1] && !*done[2];
}

}  // namespace dhtkit::test

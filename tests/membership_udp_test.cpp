// SWIM over real UDP sockets on 127.0.0.1 with the local() preset: a group of
// four forms through one seed and finds a closed member dead.
#include <asio/io_context.hpp>
#include <chrono>
#include <memory>
#include <vector>

#include "support/asio_run.hpp"
#include "support/catch.hpp"
#include "support/membership_udp_driver.hpp"

using namespace dhtkit;
using namespace std::chrono_literals;

using test::run_until;

TEST_CASE("membership over udp: a group forms and a closed member is declared dead", "[membership][udp]") {
  asio::io_context io;
  const std::size_t n = 4;
  std::vector<std::unique_ptr<test::membership_udp_driver>> nodes;
  for (std::size_t i = 0; i < n; ++i) {
    auto t = udp_transport::open(io.get_executor(), {});
    REQUIRE(t);
    nodes.push_back(std::make_unique<test::membership_udp_driver>(io, std::move(*t), node_id{100 + i},
                                                                  membership::swim_config::local(), i + 1));
  }
  for (std::size_t i = 1; i < n; ++i) nodes[i]->join(nodes[0]->local_endpoint());
  auto all_see = [&](std::size_t alive) {
    for (std::size_t i = 0; i < alive; ++i)
      if (nodes[i]->core().count(membership::member_state::alive) != alive) return false;
    return true;
  };
  // Generous wall-clock bounds: a loaded machine delays timers, not logic.
  REQUIRE(run_until(
      io, [&] { return all_see(n); }, 10s));

  nodes[n - 1]->close();
  const node_id gone{100 + n - 1};
  const bool dead_everywhere = run_until(
      io,
      [&] {
        for (std::size_t i = 0; i + 1 < n; ++i)
          if (nodes[i]->core().state_of(gone) != membership::member_state::dead) return false;
        return true;
      },
      20s);
  CHECK(dead_everywhere);
  // The dead verdict and a complete view are separate events: on a loaded
  // machine the local() preset's 200 ms timers fire late, so a survivor may
  // still suspect another survivor here, until that one refutes.
  const bool survivors_see_each_other = run_until(
      io,
      [&] {
        for (std::size_t i = 0; i + 1 < n; ++i)
          if (nodes[i]->core().count(membership::member_state::alive) != n - 1) return false;
        return true;
      },
      20s);
  CHECK(survivors_see_each_other);
  for (std::size_t i = 0; i + 1 < n; ++i) {
    CHECK(nodes[i]->core().count(membership::member_state::alive) == n - 1);
    CHECK(nodes[i]->core().check_invariants());
  }
}

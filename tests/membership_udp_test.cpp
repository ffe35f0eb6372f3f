// SWIM over real UDP sockets on 127.0.0.1 with the local() preset: a group of
// four forms through one seed and finds a closed member dead.
#include <asio/io_context.hpp>
#include <chrono>
#include <memory>
#include <vector>

#include "dhtkit/driver/asio_driver.hpp"
#include "dhtkit/membership/swim.hpp"
#include "dhtkit/transport/asio_udp.hpp"
#include "support/asio_run.hpp"
#include "support/catch.hpp"

using namespace dhtkit;
using namespace std::chrono_literals;

using test::run_until;
using swim_node = asio_driver<membership::basic_swim<endpoint>, udp_transport>;

TEST_CASE("membership over udp: a group forms and a closed member is declared dead", "[membership][udp]") {
  asio::io_context io;
  const std::size_t n = 4;
  std::vector<std::unique_ptr<swim_node>> nodes;
  for (std::size_t i = 0; i < n; ++i) {
    auto t = udp_transport::open(io.get_executor(), {});
    REQUIRE(t);
    const endpoint self = t->local_endpoint();
    nodes.push_back(std::make_unique<swim_node>(io.get_executor(), std::move(*t), node_id{100 + i}, self,
                                                membership::swim_config::local(), i + 1));
    nodes.back()->start();
  }
  const endpoint seeds[] = {nodes[0]->local_endpoint()};
  for (std::size_t i = 1; i < n; ++i)
    (void)nodes[i]->call([&](auto& core, time_point now) { return core.join(seeds, now); });
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

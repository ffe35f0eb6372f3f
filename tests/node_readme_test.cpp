// The README's node example, compiled and run: three nodes in one process on
// 127.0.0.1, a write through one read through another. Keep it in step with
// the "The DHT node" section of README.md.
#include <asio/io_context.hpp>
#include <chrono>
#include <cstdio>
#include <optional>
#include <string>

#include "dhtkit/node/node.hpp"
#include "support/catch.hpp"

namespace {

// ---- README snippet begins ----
dhtkit::node_config config(std::string name, std::vector<std::string> seeds = {}) {
  auto cfg = dhtkit::node_config::local();  // 127.0.0.1, free ports, short timeouts
  cfg.name = std::move(name);               // unique in the cluster
  cfg.seeds = std::move(seeds);             // none: found a cluster
  return cfg;
}

std::optional<std::string> readme_example(asio::io_context& io) {
  dhtkit::node a{io.get_executor(), config("a")};
  const std::string seed = a.packet_endpoint().to_string();  // 127.0.0.1:<port>
  dhtkit::node b{io.get_executor(), config("b", {seed})};
  dhtkit::node c{io.get_executor(), config("c", {seed})};
  auto close_all = [&] { a.close(), b.close(), c.close(); };  // then io.run_for returns

  std::optional<std::string> read;
  a.async_join([&](std::error_code) {
    b.async_join([&](std::error_code) {
      c.async_join([&](std::error_code ec) {
        if (ec) return close_all();
        const dhtkit::bytes value{std::byte{'h'}, std::byte{'i'}};
        a.async_put("user:42", value, {}, [&](std::error_code ec, dhtkit::put_result r) {
          if (ec) return std::puts(r.describe(ec).c_str()), close_all();  // "quorum not reached: 1 of 2 ..."
          b.async_get("user:42", [&](std::error_code ec, dhtkit::get_result got) {
            if (!ec && got.siblings.size() == 1)
              read.emplace(reinterpret_cast<const char*>(got.siblings[0].value.data()),
                           got.siblings[0].value.size());
            close_all();
          });
        });
      });
    });
  });
  io.restart();
  io.run_for(std::chrono::seconds(10));
  return read;
}
// ---- README snippet ends ----

}  // namespace

TEST_CASE("README node example: a put through one node is read through another") {
  asio::io_context io;
  // A put right after the third join may still see only part of the
  // membership; the snippet reports that and the test tries again.
  std::optional<std::string> read;
  for (int attempt = 0; attempt < 3 && !read; ++attempt) read = readme_example(io);
  REQUIRE(read.has_value());
  CHECK(*read == "hi");
}

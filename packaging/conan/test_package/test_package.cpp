// Consumer of the Conan package: a ring lookup and a UDP round trip on
// loopback, through the headers and the Asio the package delivered. Exits
// non-zero on any failure, and the round trip is bounded in time.
#include <asio/io_context.hpp>
#include <asio/version.hpp>
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <span>
#include <string>
#include <vector>

#include <dhtkit/ring/ring.hpp>
#include <dhtkit/transport/asio_udp.hpp>

// The package promises the definitions the CMake package puts on
// dhtkit::dhtkit; without them a consumer would compile different Asio code.
#if !defined(ASIO_STANDALONE) || !defined(ASIO_NO_DEPRECATED)
#error "the dhtkit package must define ASIO_STANDALONE and ASIO_NO_DEPRECATED for its consumers"
#endif

namespace {

int fail(const char* what) {
  std::fprintf(stderr, "test_package: FAILED: %s\n", what);
  return 1;
}

// Removing a key's owner must hand the key to the next distinct node clockwise,
// which is what preference_list() names second: consistent hashing's promise.
int ring_lookup() {
  dhtkit::ring<std::string> ring;
  for (const char* n : {"cache-a", "cache-b", "cache-c"}) {
    if (!ring.add(n)) return fail("ring.add");
  }
  const auto owner = ring.owner("user:42");
  const auto replicas = ring.preference_list("user:42", 3);
  if (!owner || !replicas || replicas->size() != 3) return fail("ring lookup");
  if ((*replicas)[0] != *owner) return fail("owner is not first in the preference list");
  if (!ring.remove(*owner)) return fail("ring.remove");
  const auto next = ring.owner("user:42");
  if (!next || *next != (*replicas)[1]) return fail("the key did not pass to the next node clockwise");
  std::printf("ring: user:42 -> %s, then %s once %s left\n", owner->c_str(), next->c_str(), owner->c_str());
  return 0;
}

int udp_round_trip() {
  asio::io_context io;
  auto server = dhtkit::udp_transport::open(io.get_executor());
  auto client = dhtkit::udp_transport::open(io.get_executor());
  if (!server || !client) return fail("udp_transport::open on 127.0.0.1");
  server->set_receive_handler(
      [&](const dhtkit::endpoint& from, std::span<const std::byte> msg) { (void)server->send(from, msg); });
  std::vector<std::byte> reply;
  dhtkit::endpoint replied_from;
  client->set_receive_handler([&](const dhtkit::endpoint& from, std::span<const std::byte> msg) {
    reply.assign(msg.begin(), msg.end());
    replied_from = from;
    io.stop();
  });
  const std::byte ping[] = {std::byte{'p'}, std::byte{'i'}, std::byte{'n'}, std::byte{'g'}};
  if (client->send(server->local_endpoint(), ping)) return fail("udp send");
  // A lost datagram must fail the test, not hang it.
  io.run_for(std::chrono::seconds(5));
  if (reply.empty()) return fail("no UDP echo within 5 s");
  if (reply != std::vector<std::byte>(std::begin(ping), std::end(ping))) return fail("UDP echo differs");
  if (replied_from != server->local_endpoint()) return fail("UDP echo from an unexpected endpoint");
  std::printf("udp: %zu bytes echoed by %s\n", reply.size(), replied_from.to_string().c_str());
  return 0;
}

}  // namespace

int main() {
  std::printf("dhtkit test_package on Asio %d.%d.%d\n", ASIO_VERSION / 100000, ASIO_VERSION / 100 % 1000,
              ASIO_VERSION % 100);
  if (int rc = ring_lookup()) return rc;
  if (int rc = udp_round_trip()) return rc;
  std::printf("test_package: OK\n");
  return 0;
}

// Wire codec cost for a small protocol message (a gossip ping with a few
// membership updates): encode and decode, against stock cereal
// (PortableBinaryOutputArchive / PortableBinaryInputArchive over string
// streams, no envelope, no checksum, no bounds) measured in the same run;
// plus CRC32C throughput.
//
//   bench_wire            # full run (a few seconds)
//   bench_wire --quick    # smoke run
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

#include <cereal/archives/portable_binary.hpp>
#include <cereal/types/vector.hpp>

#include "dhtkit/transport/detail/crc32c.hpp"
#include "dhtkit/transport/wire.hpp"
#include "support/bench.hpp"

namespace {

using dhtkit::bench::do_not_optimize;

struct update {
  dhtkit::node_id node{};
  std::uint64_t incarnation = 0;
  std::uint8_t state = 0;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(node, incarnation, state);
  }
};

struct ping {
  static constexpr std::uint16_t wire_type = 1;
  std::uint64_t seq = 0;
  dhtkit::node_id from{};
  std::vector<update> updates;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(seq, from, updates);
  }
};

// Best of `rounds` timings of `iterations` calls, in ns per call.
template <class F>
double ns_per_op(std::size_t iterations, int rounds, F&& f) {
  double best = 1e300;
  for (int r = 0; r < rounds; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    for (std::size_t i = 0; i < iterations; ++i) f(i);
    const auto t1 = std::chrono::steady_clock::now();
    const double ns =
        std::chrono::duration<double, std::nano>(t1 - t0).count() / static_cast<double>(iterations);
    if (ns < best) best = ns;
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  const auto opt = dhtkit::bench::parse_options(argc, argv);
  if (!opt) return 2;
  const bool quick = opt->quick;
  const dhtkit::bench::reporter out{"wire"};
  const std::size_t iterations = quick ? 20000 : 400000;
  const int rounds = quick ? 1 : 5;

  ping msg{42, dhtkit::node_id{7}, {}};
  for (std::uint64_t i = 0; i < 4; ++i) msg.updates.push_back({dhtkit::node_id{i * 977}, i, 1});
  const dhtkit::wire::codec<ping> codec;
  const auto encoded = *codec.encode(msg, dhtkit::node_id{1});
  const std::string params = "\"updates\":4,\"bytes\":" + std::to_string(encoded.size());

  const double enc = ns_per_op(iterations, rounds, [&](std::size_t i) {
    msg.seq = i;
    auto bytes = codec.encode(msg, dhtkit::node_id{1});
    do_not_optimize(bytes->data());
  });
  const double enc_cereal = ns_per_op(iterations, rounds, [&](std::size_t i) {
    msg.seq = i;
    std::ostringstream os;
    {
      cereal::PortableBinaryOutputArchive ar(os,
                                             cereal::PortableBinaryOutputArchive::Options::LittleEndian());
      ar(msg);
    }
    auto s = os.str();
    do_not_optimize(s.data());
  });
  out.emit("encode/small_ping", params, enc, "ns/op", {"cereal_portable_binary", enc_cereal});

  const std::string cereal_bytes(reinterpret_cast<const char*>(encoded.data() + dhtkit::wire::header_size),
                                 encoded.size() - dhtkit::wire::header_size);
  const double dec = ns_per_op(iterations, rounds, [&](std::size_t) {
    auto got = codec.decode(encoded);
    do_not_optimize(std::get<ping>(got->message).seq);
  });
  const double dec_cereal = ns_per_op(iterations, rounds, [&](std::size_t) {
    std::istringstream is(cereal_bytes);
    cereal::PortableBinaryInputArchive ar(is);
    ping back;
    ar(back);
    do_not_optimize(back.seq);
  });
  out.emit("decode/small_ping", params, dec, "ns/op", {"cereal_portable_binary", dec_cereal});

  std::vector<std::byte> block(64 * 1024);
  for (std::size_t i = 0; i < block.size(); ++i) block[i] = static_cast<std::byte>(i * 31 + 7);
  const std::size_t crc_iterations = quick ? 200 : 4000;
  const double crc_ns = ns_per_op(crc_iterations, rounds, [&](std::size_t i) {
    block[0] = static_cast<std::byte>(i);
    do_not_optimize(dhtkit::detail::crc32c(block));
  });
  out.emit("crc32c/64KiB", "\"bytes\":65536", static_cast<double>(block.size()) / crc_ns, "GB/s");
  return 0;
}

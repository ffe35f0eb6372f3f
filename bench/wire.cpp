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

namespace {

template <class T>
void do_not_optimize(const T& value) {
  asm volatile("" : : "r,m"(value) : "memory");
}

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

void emit(const char* name, const std::string& params, double value, const char* unit, const char* baseline,
          double baseline_value) {
  if (baseline != nullptr) {
    std::printf(
        "{\"bench\":\"wire\",\"name\":\"%s\",\"params\":{%s},\"value\":%.1f,\"unit\":\"%s\",\"baseline\":\"%"
        "s\","
        "\"baseline_value\":%.1f,\"ratio\":%.2f}\n",
        name, params.c_str(), value, unit, baseline, baseline_value, value / baseline_value);
    std::fprintf(stderr, "%-22s %10.1f %-6s  %-22s %10.1f  ratio %.2f\n", name, value, unit, baseline,
                 baseline_value, value / baseline_value);
  } else {
    std::printf("{\"bench\":\"wire\",\"name\":\"%s\",\"params\":{%s},\"value\":%.2f,\"unit\":\"%s\"}\n", name,
                params.c_str(), value, unit);
    std::fprintf(stderr, "%-22s %10.2f %-6s\n", name, value, unit);
  }
}

}  // namespace

int main(int argc, char** argv) {
  const bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
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
  emit("encode/small_ping", params, enc, "ns/op", "cereal_portable_binary", enc_cereal);

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
  emit("decode/small_ping", params, dec, "ns/op", "cereal_portable_binary", dec_cereal);

  std::vector<std::byte> block(64 * 1024);
  for (std::size_t i = 0; i < block.size(); ++i) block[i] = static_cast<std::byte>(i * 31 + 7);
  const std::size_t crc_iterations = quick ? 200 : 4000;
  const double crc_ns = ns_per_op(crc_iterations, rounds, [&](std::size_t i) {
    block[0] = static_cast<std::byte>(i);
    do_not_optimize(dhtkit::detail::crc32c(block));
  });
  emit("crc32c/64KiB", "\"bytes\":65536", static_cast<double>(block.size()) / crc_ns, "GB/s", nullptr, 0);
  return 0;
}

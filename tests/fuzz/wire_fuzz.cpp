// libFuzzer target for the wire decoder.
//
// Every input goes through two codecs (default limits, and tight limits so
// the limit paths are reached with small inputs). The oracles: no crash, no
// sanitizer report, no single allocation over -malloc_limit_mb (see
// CMakeLists.txt), and anything that decodes re-encodes to exactly the input
// bytes (each message has one encoding). Each input is also decoded with
// its length and checksum fields fixed up, so mutations reach the payload.
//
// Built a second time with DHTKIT_WIRE_FUZZ_WRITE_CORPUS, the same file is a
// small program that writes a seed corpus of valid messages into a folder:
//
//   wire_fuzz_corpus corpus/ && wire_fuzz -runs=200000 corpus/
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include <cereal/types/map.hpp>
#include <cereal/types/optional.hpp>
#include <cereal/types/string.hpp>
#include <cereal/types/variant.hpp>
#include <cereal/types/vector.hpp>

#include "dhtkit/transport/detail/crc32c.hpp"
#include "dhtkit/transport/wire.hpp"

namespace {

struct update {
  dhtkit::node_id node{};
  std::uint64_t incarnation = 0;
  std::uint8_t state = 0;
  bool suspect = false;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(node, incarnation, state, suspect);
  }
};

struct ping {
  static constexpr std::uint16_t wire_type = 1;
  std::uint64_t seq = 0;
  std::vector<update> updates;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(seq, updates);
  }
};

struct put {
  static constexpr std::uint16_t wire_type = 2;
  std::string key;
  std::vector<std::byte> value;
  std::optional<std::uint64_t> ttl_ms;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(key, value, ttl_ms);
  }
};

struct digest {
  static constexpr std::uint16_t wire_type = 3;
  std::map<std::string, std::uint64_t> versions;
  std::vector<std::vector<std::string>> groups;
  std::vector<bool> flags;
  double load = 0.0;
  std::variant<std::uint32_t, std::string> hint;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(versions, groups, flags, load, hint);
  }
};

struct ack {
  static constexpr std::uint16_t wire_type = 4;
  template <class Archive>
  void serialize(Archive&) {}
};

using fuzz_codec = dhtkit::wire::codec<ping, put, digest, ack>;

dhtkit::wire_limits tight_limits() {
  dhtkit::wire_limits l;
  l.max_message_size = 512;
  l.max_string_size = 16;
  l.max_container_size = 4;
  return l;
}

void put_le(std::vector<std::byte>& b, std::size_t at, std::uint64_t v, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) b[at + i] = static_cast<std::byte>((v >> (8 * i)) & 0xFF);
}

// Rewrites the length and checksum fields to match the bytes.
[[maybe_unused]] void reseal(std::vector<std::byte>& b) {
  const std::span<const std::byte> all(b);
  const auto payload = all.subspan(dhtkit::wire::header_size);
  put_le(b, 16, payload.size(), 4);
  put_le(b, 20, dhtkit::detail::crc32c_extend(dhtkit::detail::crc32c(all.first(20)), payload), 4);
}

void check(const fuzz_codec& codec, std::span<const std::byte> input) {
  auto got = codec.decode(input);
  if (!got) return;
  auto again = std::visit([&](const auto& m) { return codec.encode(m, got->sender); }, got->message);
  if (!again || again->size() != input.size() || !std::equal(again->begin(), again->end(), input.begin()))
    std::abort();  // a second encoding of one message decoded
}

}  // namespace

#ifndef DHTKIT_WIRE_FUZZ_WRITE_CORPUS

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const fuzz_codec normal;
  static const fuzz_codec tight(tight_limits());
  const std::span<const std::byte> input(reinterpret_cast<const std::byte*>(data), size);
  check(normal, input);
  check(tight, input);
  // Random mutations almost never keep the checksum right, which would leave
  // the payload decoder unexplored: also decode a copy with the length and
  // checksum fields recomputed.
  if (size >= dhtkit::wire::header_size) {
    std::vector<std::byte> sealed(input.begin(), input.end());
    reseal(sealed);
    check(normal, sealed);
    check(tight, sealed);
  }
  return 0;
}

#else

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <corpus folder>\n", argv[0]);
    return 2;
  }
  const std::string dir = argv[1];
  const fuzz_codec codec;
  std::vector<std::vector<std::byte>> seeds;
  seeds.push_back(*codec.encode(ping{1, {}}, dhtkit::node_id{1}));
  seeds.push_back(*codec.encode(ping{2, {{dhtkit::node_id{7}, 3, 1, true}, {}}}, dhtkit::node_id{2}));
  seeds.push_back(
      *codec.encode(put{"k", {std::byte{1}, std::byte{2}}, std::uint64_t{5}}, dhtkit::node_id{3}));
  seeds.push_back(*codec.encode(put{}, dhtkit::node_id{3}));
  digest d;
  d.versions = {{"a", 1}, {"b", 2}};
  d.groups = {{"x", "y"}, {}};
  d.flags = {true, false};
  d.load = 0.5;
  d.hint = std::string("h");
  seeds.push_back(*codec.encode(d, dhtkit::node_id{4}));
  seeds.push_back(*codec.encode(ack{}, dhtkit::node_id{5}));
  const fuzz_codec tight(tight_limits());
  for (std::size_t i = 0; i < seeds.size(); ++i) {
    // Every seed must decode, and re-encode to itself, under both codecs.
    if (!codec.decode(seeds[i]) || !tight.decode(seeds[i])) {
      std::fprintf(stderr, "seed %zu does not decode\n", i);
      return 1;
    }
    check(codec, seeds[i]);
    check(tight, seeds[i]);
    std::ofstream out(dir + "/seed-" + std::to_string(i), std::ios::binary);
    out.write(reinterpret_cast<const char*>(seeds[i].data()), static_cast<std::streamsize>(seeds[i].size()));
    if (!out) {
      std::fprintf(stderr, "cannot write %s/seed-%zu\n", dir.c_str(), i);
      return 1;
    }
  }
  return 0;
}

#endif

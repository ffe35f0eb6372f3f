// The shared driver of the protocol fuzz targets (chord_fuzz, swim_fuzz,
// replication_fuzz, node_fuzz): a fuzz input is a script of steps played
// against one protocol core that each target builds in a fixed,
// deterministic state (no I/O, no clock: time is the script's).
//
// A step is one op byte and its arguments:
//
//   op % 8 | step
//   -------|---------------------------------------------------------------
//   0      | raw: u8 peer, u16 length, bytes: the bytes as received, so the
//          | envelope checks (magic, length, checksum) are fuzzed too
//   1,2,7  | forged: u8 tag, u8 sender, u8 patch, u16 length, payload: the
//          | harness wraps the payload in a valid envelope (right length
//          | and checksum) with one of the protocol's tags, so mutations
//          | reach the payload decoder and the handlers
//   3      | echo: u8 which, u8 peer, u8 edits, edits x (u16 at, u8 xor): one
//          | of the messages the core sent lately, edited, resealed and fed
//          | back as if the peer had sent it
//   4      | tick: u16 milliseconds: time moves on, tick()
//   5      | client: the target's own calls (a lookup, a put, a join...)
//   6      | wake: time moves to next_wakeup(), tick()
//
// `patch` (non-zero) copies the first 8 payload bytes of a message the core
// sent lately into the forged payload: every protocol here puts a request,
// sequence or session id first, so a forged reply names a request the core
// is waiting for, which a fuzzer could not guess.
//
// The oracles, after every step: no crash and no sanitizer report; the
// core's own invariants (the target's check()); every message the core sent
// decodes under the protocol's codec (a core never sends what a peer with
// the same limits would reject); and a forged payload that decodes
// re-encodes to exactly the same bytes (one encoding per message).
//
// A second build of each target (FUZZ_WRITE_CORPUS) writes seed scripts of
// valid messages with script_writer.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <fstream>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "dhtkit/core/node_id.hpp"
#include "dhtkit/core/time.hpp"
#include "dhtkit/transport/detail/crc32c.hpp"
#include "dhtkit/transport/wire.hpp"

namespace dhtkit_fuzz {

// Stops the process with a message libFuzzer shows beside the crash.
[[noreturn]] inline void fail(const char* what) {
  std::fprintf(stderr, "fuzz oracle failed: %s\n", what);
  std::abort();
}

// Reads a script; past its end every read is 0 and empty() is true.
class reader {
 public:
  explicit reader(std::span<const std::uint8_t> data) : data_(data) {}
  bool empty() const noexcept { return pos_ >= data_.size(); }
  std::uint8_t u8() noexcept { return empty() ? 0 : data_[pos_++]; }
  std::uint16_t u16() noexcept { return static_cast<std::uint16_t>(u8() | (u8() << 8)); }
  std::uint64_t u64() noexcept {
    std::uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v |= std::uint64_t{u8()} << (8 * i);
    return v;
  }
  std::span<const std::byte> bytes(std::size_t n) noexcept {
    n = std::min(n, data_.size() - std::min(pos_, data_.size()));
    auto out = std::as_bytes(data_.subspan(pos_, n));
    pos_ += n;
    return out;
  }

 private:
  std::span<const std::uint8_t> data_;
  std::size_t pos_ = 0;
};

// Builds scripts for the seed corpora.
class script_writer {
 public:
  script_writer& u8(std::uint8_t v) {
    out_.push_back(v);
    return *this;
  }
  script_writer& u16(std::uint16_t v) {
    return u8(static_cast<std::uint8_t>(v)).u8(static_cast<std::uint8_t>(v >> 8));
  }
  script_writer& u64(std::uint64_t v) {
    for (int i = 0; i < 8; ++i) u8(static_cast<std::uint8_t>(v >> (8 * i)));
    return *this;
  }
  script_writer& raw(std::span<const std::byte> b) {
    for (std::byte x : b) out_.push_back(std::to_integer<std::uint8_t>(x));
    return *this;
  }
  // A forged step carrying `encoded` (a whole message from wire::encode):
  // its payload, with `tag_index` naming its tag in the target's list.
  script_writer& forged(std::uint8_t tag_index, std::uint8_t sender, std::uint8_t patch,
                        std::span<const std::byte> encoded) {
    const auto payload = encoded.subspan(dhtkit::wire::header_size);
    u8(1).u8(tag_index).u8(sender).u8(patch).u16(static_cast<std::uint16_t>(payload.size()));
    return raw(payload);
  }
  script_writer& tick(std::uint16_t ms) { return u8(4).u16(ms); }
  script_writer& wake() { return u8(6); }
  script_writer& echo(std::uint8_t which, std::uint8_t peer) { return u8(3).u8(which).u8(peer).u8(0); }
  const std::vector<std::uint8_t>& bytes() const noexcept { return out_; }

 private:
  std::vector<std::uint8_t> out_;
};

inline void put_le(std::byte* at, std::uint64_t v, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) at[i] = static_cast<std::byte>((v >> (8 * i)) & 0xFF);
}

// Rewrites an envelope's length and checksum to match its bytes.
inline void reseal(std::vector<std::byte>& b) {
  if (b.size() < dhtkit::wire::header_size) return;
  const std::span<const std::byte> all(b);
  const auto payload = all.subspan(dhtkit::wire::header_size);
  put_le(b.data() + 16, payload.size(), 4);
  put_le(b.data() + 20, dhtkit::detail::crc32c_extend(dhtkit::detail::crc32c(all.first(20)), payload), 4);
}

// A valid envelope around `payload`.
inline std::vector<std::byte> envelope(std::uint16_t tag, dhtkit::node_id sender,
                                       std::span<const std::byte> payload) {
  std::vector<std::byte> b(dhtkit::wire::header_size);
  for (std::size_t i = 0; i < 4; ++i) b[i] = dhtkit::wire::magic[i];
  b[4] = std::byte{dhtkit::wire::protocol_version};
  put_le(b.data() + 6, tag, 2);
  put_le(b.data() + 8, sender.value, 8);
  b.insert(b.end(), payload.begin(), payload.end());
  reseal(b);
  return b;
}

// The round-trip oracle: a message `codec` decodes from `bytes` encodes back
// to exactly `bytes`. Returns whether it decoded.
template <class Codec>
bool check_round_trip(const Codec& codec, std::span<const std::byte> bytes) {
  auto got = codec.decode(bytes);
  if (!got) return false;
  auto again = std::visit([&](const auto& m) { return codec.encode(m, got->sender); }, got->message);
  if (!again) fail("a decoded message does not encode again");
  if (!std::equal(again->begin(), again->end(), bytes.begin(), bytes.end()))
    fail("a decoded message encodes to other bytes (two encodings of one message)");
  return true;
}

// The outgoing oracle: what the core sent decodes under `codec`.
template <class Codec>
void check_sent(const Codec& codec, std::span<const std::byte> bytes) {
  if (!codec.decode(bytes)) fail("the core sent a message its own codec rejects");
}

inline constexpr std::size_t max_steps = 64;   // per input: bounds the time one input takes
inline constexpr std::size_t recent_cap = 32;  // messages kept for echo and patch steps
inline constexpr std::size_t max_tick_ms = 4000;

// Plays the script in `data` against a freshly built Target:
//
//   struct target {
//     using address = ...;
//     struct peer { dhtkit::node_id id; address addr; };
//     std::vector<peer> peers;                       // who a step can claim to be
//     std::vector<std::uint16_t> tags;               // the protocol's message tags
//     dhtkit::wire::tag_range range;                 // its registered tag range
//     dhtkit::time_point now;                        // where the fixed state left the clock
//     std::error_code receive(const address&, std::span<const std::byte>);
//     void tick();                                   // at `now`
//     std::optional<dhtkit::time_point> next_wakeup();
//     void client(reader&);                          // one client step
//     void drain(std::vector<std::vector<std::byte>>& sent);  // take the outbox; check sent messages
//     bool round_trip(std::span<const std::byte>);   // check_round_trip with the protocol's codec
//     void check();                                  // the core's invariants and bounds
//   };
template <class Target>
void run_script(std::span<const std::uint8_t> data) {
  reader in(data);
  Target t;
  std::deque<std::vector<std::byte>> recent;
  std::vector<std::vector<std::byte>> sent;
  const auto collect = [&] {
    sent.clear();
    t.drain(sent);
    for (auto& m : sent) {
      recent.push_back(std::move(m));
      if (recent.size() > recent_cap) recent.pop_front();
    }
    t.check();
  };
  collect();  // what building the fixed state sent
  const auto peer_of = [&](std::uint8_t i) -> const auto& { return t.peers[i % t.peers.size()]; };
  for (std::size_t step = 0; step < max_steps && !in.empty(); ++step) {
    const std::uint8_t op = in.u8();
    switch (op % 8) {
      case 0: {
        const auto& p = peer_of(in.u8());
        const auto bytes = in.bytes(in.u16());
        (void)t.receive(p.addr, bytes);
        break;
      }
      case 1:
      case 2:
      case 7: {
        const std::uint8_t tag_pick = in.u8();
        const std::uint8_t sender = in.u8();
        const std::uint8_t patch = in.u8();
        std::vector<std::byte> payload;
        const auto body = in.bytes(in.u16());
        payload.assign(body.begin(), body.end());
        // 1 in 8 steps names a tag of the range no message has.
        const std::uint16_t tag =
            tag_pick < 0xE0
                ? t.tags[tag_pick % t.tags.size()]
                : static_cast<std::uint16_t>(t.range.first + ((tag_pick - 0xE0) * 7919u) %
                                                                 (t.range.last - t.range.first + 1u));
        if (patch != 0 && !recent.empty() && payload.size() >= 9) {
          const auto& from = recent[(patch - 1u) % recent.size()];
          if (from.size() >= dhtkit::wire::header_size + 9)
            std::copy_n(from.begin() + dhtkit::wire::header_size + 1, 8, payload.begin() + 1);
        }
        // The sender's id; its address is its own, or (high bit) another peer's.
        const auto& who = peer_of(sender & 0x7F);
        const auto& at = (sender & 0x80) != 0 ? peer_of(static_cast<std::uint8_t>(sender >> 3)) : who;
        const auto bytes = envelope(tag, who.id, payload);
        (void)t.round_trip(bytes);
        (void)t.receive(at.addr, bytes);
        break;
      }
      case 3: {
        const std::uint8_t which = in.u8();
        const auto& p = peer_of(in.u8());
        const std::uint8_t edits = in.u8() % 16;
        if (recent.empty()) break;
        std::vector<std::byte> b = recent[which % recent.size()];
        put_le(b.data() + 8, p.id.value, 8);  // from the peer, not from the core itself
        for (std::uint8_t e = 0; e < edits; ++e) {
          const std::size_t at = dhtkit::wire::header_size + in.u16();
          const std::uint8_t x = in.u8();
          if (at < b.size()) b[at] ^= std::byte{x};
        }
        reseal(b);
        (void)t.receive(p.addr, b);
        break;
      }
      case 4:
        t.now += dhtkit::millis(in.u16() % (max_tick_ms + 1));
        t.tick();
        break;
      case 5:
        t.client(in);
        break;
      case 6:
        if (auto w = t.next_wakeup(); w && *w > t.now) t.now = *w;
        t.tick();
        break;
    }
    collect();
  }
}

// The corpus writer's main: writes each script as seed-<i> into argv[1].
inline int write_corpus(int argc, char** argv, const std::vector<std::vector<std::uint8_t>>& seeds) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <corpus folder>\n", argv[0]);
    return 2;
  }
  for (std::size_t i = 0; i < seeds.size(); ++i) {
    const std::string path = std::string(argv[1]) + "/seed-" + std::to_string(i);
    std::ofstream out(path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(seeds[i].data()), static_cast<std::streamsize>(seeds[i].size()));
    if (!out) {
      std::fprintf(stderr, "cannot write %s\n", path.c_str());
      return 1;
    }
  }
  return 0;
}

}  // namespace dhtkit_fuzz

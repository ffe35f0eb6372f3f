// libFuzzer target for dhtkit-cache's cluster codecs: the replicated record
// (examples/cache/cluster/record.hpp: decode_record, peek_record, resolve)
// and the forwarded messages (cluster/forward_messages.hpp: decode_forward).
// Both read bytes that other members wrote (or that a store kept from an
// older or foreign writer), so they must reject anything malformed.
//
// The first input byte picks what is fed, the second the value / key bound;
// the rest is the bytes. The oracles: no crash, no sanitizer report, and
//  - a record that decodes encodes back to exactly the input (one encoding)
//    and decodes again to the same record; peek_record accepts exactly what
//    decode_record accepts, with the same stamp and expiry;
//  - a forward message that decodes encodes back to exactly the input and
//    decodes again to the same message;
//  - resolve over siblings cut from the input picks the greatest record by
//    wins_over, and counts every other live version as discarded or
//    malformed.
//
// Built with FUZZ_WRITE_CORPUS, the same file writes a seed corpus:
//
//   cache_cluster_fuzz_corpus corpus/ && cache_cluster_fuzz -runs=200000 corpus/
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "cluster/forward_messages.hpp"
#include "cluster/record.hpp"
#include "protocol_harness.hpp"

namespace {

namespace cc = dhtkit_cache::cluster;
using dhtkit_fuzz::fail;

bool same(const cc::cache_record& a, const cc::cache_record& b) {
  return a.stamp == b.stamp && a.writer == b.writer && a.same_item(b);
}

bool same(const cc::forward_message& a, const cc::forward_message& b) {
  return a.kind == b.kind && a.id == b.id && a.noreply == b.noreply && a.final_hop == b.final_hop &&
         a.key == b.key && a.body == b.body && a.flush_stamp == b.flush_stamp &&
         a.flush_at_ms == b.flush_at_ms;
}

void check_record(std::span<const std::byte> b, std::size_t max_value) {
  const auto r = cc::decode_record(b, max_value);
  const auto h = cc::peek_record(b, max_value);
  if (r.has_value() != h.has_value()) fail("peek_record and decode_record disagree on what is a record");
  if (!r) return;
  if (h->stamp != r->stamp || h->exptime_unix != r->exptime_unix) fail("peek_record read other fields");
  const dhtkit::bytes again = cc::encode_record(*r);
  if (!std::equal(again.begin(), again.end(), b.begin(), b.end())) fail("a record has a second encoding");
  const auto back = cc::decode_record(again, max_value);
  if (!back || !same(*back, *r)) fail("an encoded record does not decode to itself");
}

void check_forward(std::span<const std::byte> b, std::size_t max_key) {
  const auto m = cc::decode_forward(b, max_key);
  if (!m) return;
  if (m->kind == cc::forward_kind::request && (m->key.empty() || m->key.size() > max_key))
    fail("a request decoded with a key out of bounds");
  const dhtkit::bytes again = cc::encode_forward(*m);
  if (!std::equal(again.begin(), again.end(), b.begin(), b.end()))
    fail("a forward message has a second encoding");
  const auto back = cc::decode_forward(again, max_key);
  if (!back || !same(*back, *m)) fail("an encoded forward message does not decode to itself");
}

// Siblings: u8 flags (bit 0: tombstone), u16 length, bytes; at most 16.
void check_resolve(dhtkit_fuzz::reader& in, std::size_t max_value) {
  std::vector<dhtkit::versioned_value> siblings;
  while (!in.empty() && siblings.size() < 16) {
    dhtkit::versioned_value v;
    v.tombstone = (in.u8() & 1) != 0;
    const auto b = in.bytes(in.u16());
    if (!v.tombstone) v.value.assign(b.begin(), b.end());
    siblings.push_back(std::move(v));
  }
  const cc::resolved out = cc::resolve(siblings, max_value);
  std::size_t live = 0, records = 0;
  for (const auto& s : siblings) {
    if (s.tombstone) continue;
    ++live;
    const auto r = cc::decode_record(s.value, max_value);
    if (!r) continue;
    ++records;
    if (!out.winner) fail("resolve found no winner among records");
    if (r->wins_over(*out.winner)) fail("resolve picked a record another one beats");
  }
  if (out.malformed != live - records) fail("resolve miscounted malformed versions");
  if (out.discarded != (records == 0 ? 0 : records - 1)) fail("resolve miscounted discarded versions");
  if (records == 0 && out.winner) fail("resolve made a winner out of nothing");
}

void run_one(std::span<const std::uint8_t> data) {
  dhtkit_fuzz::reader in(data);
  const std::uint8_t mode = in.u8();
  // Bounds as dhtkit-cache sets them (1 MiB items, 250-byte keys) or small.
  const std::uint8_t bound = in.u8();
  const std::size_t max_value = (bound & 1) != 0 ? std::size_t{1} << 20 : bound;
  const std::size_t max_key = (bound & 2) != 0 ? 250 : bound / 4;
  switch (mode % 3) {
    case 0:
      check_record(in.bytes(data.size()), max_value);
      break;
    case 1:
      check_forward(in.bytes(data.size()), max_key);
      break;
    case 2:
      check_resolve(in, max_value);
      break;
  }
}

}  // namespace

#ifndef FUZZ_WRITE_CORPUS

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  run_one({data, size});
  return 0;
}

#else

int main(int argc, char** argv) {
  const auto with = [](std::uint8_t mode, std::uint8_t bound, const dhtkit::bytes& b) {
    std::vector<std::uint8_t> s{mode, bound};
    for (std::byte x : b) s.push_back(std::to_integer<std::uint8_t>(x));
    return s;
  };
  const cc::cache_record r1{
      .stamp = 100, .writer = 7, .cas = 3, .flags = 5, .exptime_unix = 0, .bits = 0, .value = "hello"};
  const cc::cache_record r2{.stamp = 100,
                            .writer = 9,
                            .cas = 4,
                            .flags = 0,
                            .exptime_unix = 1'700'000'000,
                            .bits = cc::cache_record::stale_bit | cc::cache_record::win_sent_bit,
                            .value = ""};
  std::vector<std::vector<std::uint8_t> > seeds;
  seeds.push_back(with(0, 0xFF, cc::encode_record(r1)));
  seeds.push_back(with(0, 0xFF, cc::encode_record(r2)));
  seeds.push_back(with(0, 4, cc::encode_record(r1)));  // over a 4-byte bound
  // The input that found peek_record taking state bits decode_record refuses.
  auto bad_bits = cc::encode_record(r1);
  bad_bits[37] = std::byte{0x6E};
  seeds.push_back(with(0, 0xFF, bad_bits));
  const auto fwd = [](cc::forward_kind k) {
    cc::forward_message m;
    m.kind = k;
    m.id = 42;
    m.noreply = k == cc::forward_kind::request;
    m.final_hop = k == cc::forward_kind::request;
    if (k == cc::forward_kind::request) m.key = "k";
    if (k == cc::forward_kind::request) m.body = "set k 0 0 1\r\nv\r\n";
    if (k == cc::forward_kind::reply) m.body = "STORED\r\n";
    m.flush_stamp = 77;
    if (k != cc::forward_kind::flush_ack) m.flush_at_ms = 1000;
    return m;
  };
  for (auto k : {cc::forward_kind::request, cc::forward_kind::reply, cc::forward_kind::flush,
                 cc::forward_kind::flush_ack, cc::forward_kind::flush_exact})
    seeds.push_back(with(1, 0xFF, cc::encode_forward(fwd(k))));
  // Siblings: two records, a tombstone, a foreign value.
  {
    dhtkit_fuzz::script_writer w;
    w.u8(2).u8(0xFF);
    for (const auto& b : {cc::encode_record(r1), cc::encode_record(r2)})
      w.u8(0).u16(static_cast<std::uint16_t>(b.size())).raw(b);
    w.u8(1).u16(0);
    w.u8(0).u16(3).raw(std::as_bytes(std::span("abc", 3)));
    seeds.push_back(w.bytes());
  }
  for (const auto& seed : seeds) run_one(seed);
  return dhtkit_fuzz::write_corpus(argc, argv, seeds);
}

#endif

// The clustered cache's own bytes: the record a node stores per key, the
// rule that picks one winner among concurrent versions, and the messages
// nodes forward each other. Decoders get bytes from other processes, so
// every malformed input must come back as "not a record", never a crash or
// an allocation the input did not pay for.
#include <algorithm>
#include <cstddef>
#include <random>
#include <string>
#include <vector>

#include "cluster/forward_messages.hpp"
#include "cluster/hybrid_clock.hpp"
#include "cluster/record.hpp"
#include "support/catch.hpp"

using namespace dhtkit_cache::cluster;

namespace {

cache_record sample(std::uint64_t stamp, std::uint64_t writer, std::string value) {
  cache_record r;
  r.stamp = stamp;
  r.writer = writer;
  r.cas = 77;
  r.flags = 0xFFFFFFFFu;
  r.exptime_unix = 1'900'000'000;
  r.bits = cache_record::stale_bit;
  r.value = std::move(value);
  return r;
}

dhtkit::versioned_value version_of(const cache_record& r, std::uint64_t counter) {
  dhtkit::versioned_value v;
  v.version = dhtkit::dot{dhtkit::node_id{r.writer}, counter};
  v.value = encode_record(r);
  return v;
}

}  // namespace

TEST_CASE("cache record: every field survives encoding") {
  const cache_record r = sample(123456789, 42, std::string("va\0lue\r\n", 8));
  const auto b = encode_record(r);
  const auto back = decode_record(b, 1 << 20);
  REQUIRE(back);
  const auto head = peek_record(b, 1 << 20);
  REQUIRE(head);
  CHECK(head->stamp == r.stamp);
  CHECK(head->exptime_unix == r.exptime_unix);
  CHECK(back->stamp == r.stamp);
  CHECK(back->writer == r.writer);
  CHECK(back->same_item(r));
}

TEST_CASE("cache record: truncated, padded, oversized or foreign bytes are refused") {
  const auto good = encode_record(sample(1, 2, "hello"));
  for (std::size_t n = 0; n < good.size(); ++n) {
    CHECK_FALSE(decode_record(std::span(good.data(), n), 1 << 20));  // every truncation
    CHECK_FALSE(peek_record(std::span(good.data(), n), 1 << 20));
  }
  auto padded = good;
  padded.push_back(std::byte{0});
  CHECK_FALSE(decode_record(padded, 1 << 20));
  CHECK_FALSE(decode_record(good, 4));  // a value over the node's -I
  auto bad_magic = good;
  bad_magic[0] = std::byte{0xC2};
  CHECK_FALSE(decode_record(bad_magic, 1 << 20));
  auto bad_bits = good;
  bad_bits[37] = std::byte{0x80};
  CHECK_FALSE(decode_record(bad_bits, 1 << 20));
  // Found by cache_cluster_fuzz: peek_record (the expiry sweep's reader)
  // took a record with unknown state bits that decode_record refuses.
  CHECK_FALSE(peek_record(bad_bits, 1 << 20));
  CHECK_FALSE(peek_record(padded, 1 << 20));
  CHECK_FALSE(peek_record(bad_magic, 1 << 20));
  REQUIRE(peek_record(good, 1 << 20));
  auto huge = good;  // a length field claiming 4 GiB over 5 bytes
  for (int i = 0; i < 4; ++i) huge[38 + i] = std::byte{0xFF};
  CHECK_FALSE(decode_record(huge, std::size_t{1} << 40));
}

TEST_CASE("cache record: random bytes never decode into more than they carry") {
  std::mt19937_64 rng(20261202);
  INFO("seed 20261202");
  for (int i = 0; i < 20000; ++i) {
    std::vector<std::byte> b(rng() % 96);
    for (auto& x : b) x = static_cast<std::byte>(rng());
    if (!b.empty() && rng() % 2) b[0] = std::byte{0xC1};
    if (auto r = decode_record(b, 1 << 20)) CHECK(r->value.size() + 42 == b.size());
    if (auto m = decode_forward(b, 250)) CHECK(m->key.size() + m->body.size() <= b.size());
  }
}

TEST_CASE("cache record: every node resolves siblings to the same winner and counts the losers") {
  const cache_record older = sample(100, 1, "old");
  const cache_record newer = sample(200, 1, "new");
  const cache_record tie_high_writer = sample(200, 9, "tie");
  std::vector<dhtkit::versioned_value> v{version_of(older, 1), version_of(newer, 2),
                                         version_of(tie_high_writer, 3)};
  dhtkit::versioned_value tomb;
  tomb.tombstone = true;
  tomb.version = dhtkit::dot{dhtkit::node_id{5}, 9};
  v.push_back(tomb);
  dhtkit::versioned_value junk;
  junk.version = dhtkit::dot{dhtkit::node_id{6}, 1};
  junk.value = {std::byte{1}, std::byte{2}};
  v.push_back(junk);
  std::sort(v.begin(), v.end(),
            [](const auto& a, const auto& b) { return a.version.counter < b.version.counter; });
  do {
    const resolved r = resolve(v, 1 << 20);
    REQUIRE(r.winner);
    CHECK(r.winner->value == "tie");  // the highest stamp, then the highest writer
    CHECK(r.discarded == 2);
    CHECK(r.malformed == 1);
  } while (std::next_permutation(v.begin(), v.end(), [](const auto& a, const auto& b) {
    return a.version.counter < b.version.counter;
  }));
  // Only a tombstone: absent.
  CHECK_FALSE(resolve({tomb}, 1 << 20).winner);
}

TEST_CASE("cache forward messages: round trips, and malformed ones refused") {
  forward_message q;
  q.kind = forward_kind::request;
  q.id = 99;
  q.noreply = true;
  q.final_hop = true;
  q.key = "user:1";
  q.body = "set user:1 0 0 1\r\nx\r\n";
  const auto b = encode_forward(q);
  const auto back = decode_forward(b, 250);
  REQUIRE(back);
  CHECK(back->kind == forward_kind::request);
  CHECK(back->id == 99);
  CHECK(back->noreply);
  CHECK(back->final_hop);
  CHECK(back->key == q.key);
  CHECK(back->body == q.body);
  CHECK_FALSE(decode_forward(b, 5));  // key longer than the bound
  for (std::size_t n = 0; n < 9 + 3 + q.key.size(); ++n)
    CHECK_FALSE(decode_forward(std::span(b.data(), n), 250));  // cut before the key ends
  auto zero_key = b;
  zero_key[10] = std::byte{0};
  zero_key[11] = std::byte{0};
  CHECK_FALSE(decode_forward(zero_key, 250));
  auto bad_flags = b;
  bad_flags[9] = std::byte{4};
  CHECK_FALSE(decode_forward(bad_flags, 250));
  auto bad_kind = b;
  bad_kind[0] = std::byte{0};
  CHECK_FALSE(decode_forward(bad_kind, 250));

  forward_message f;
  f.kind = forward_kind::flush_exact;
  f.id = 3;
  f.flush_stamp = 1234;
  f.flush_at_ms = 5678;
  const auto fb = encode_forward(f);
  const auto fback = decode_forward(fb, 250);
  REQUIRE(fback);
  CHECK(fback->kind == forward_kind::flush_exact);
  CHECK(fback->flush_stamp == 1234);
  CHECK(fback->flush_at_ms == 5678);
  auto long_flush = fb;
  long_flush.push_back(std::byte{0});
  CHECK_FALSE(decode_forward(long_flush, 250));

  forward_message a;
  a.kind = forward_kind::flush_ack;
  a.flush_stamp = 42;
  const auto ab = decode_forward(encode_forward(a), 250);
  REQUIRE(ab);
  CHECK(ab->flush_stamp == 42);
}

TEST_CASE("hybrid clock: above every stamp issued or observed, close to the wall clock") {
  hybrid_clock c;
  const std::uint64_t a = c.now(1000);
  CHECK(hybrid_clock::millis_of(a) == 1000);
  const std::uint64_t b = c.now(1000);  // the same millisecond: the counter moves
  CHECK(b > a);
  c.observe(hybrid_clock::logical_bits == 16 ? (std::uint64_t{5000} << 16) : 0);
  const std::uint64_t d = c.now(1001);  // the wall clock is behind what was observed
  CHECK(d > (std::uint64_t{5000} << 16));
  CHECK(c.now(9000) == std::uint64_t{9000} << 16);  // the wall clock moved past it
}

// Conformance with memcached 1.6.18, row by row: tests/cache/conformance_golden.txt
// holds each row's request and the reply memcached sent (recorded by
// tests/cache/record_conformance.py); each request goes into a fresh session
// on an empty store and the replies must match byte for byte, after masking:
//
// - CAS values differ between any two servers (and runs): the 5th token of a
//   "VALUE" line, a "c<digits>" token and a "cas=<digits>" field of a meta
//   reply line become "#";
// - "VERSION 1.6.18 dhtkit-cache/x" is compared on its first token (the
//   version clients parse); dhtkit's own string follows it;
// - rows of mode "stats" compare every non-STAT line exactly and require
//   dhtkit's STAT names to appear, in memcached's order, among memcached's;
// - rows of mode "ext" exercise flags 1.6.18 lacks (the issue asks for them):
//   memcached's answer is kept for reference, dhtkit's is tested in
//   cache_commands_test.cpp.
//
// The same rows are then fed split at every byte (rows up to 600 bytes) and
// in 1-byte and 7-byte chunks (all rows whose lines fit memcached's 2048-byte
// partial-line limit), and must give the same replies.
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "cache/conformance_rows.hpp"
#include "cache/session_fixture.hpp"
#include "support/catch.hpp"

namespace {

using namespace conformance;

cache_test::run_result replay(const row& r, std::size_t chunk = SIZE_MAX) {
  cache_test::fixture f;
  warm_up(f);
  dhtkit_cache::session s(f.ctx);
  cache_test::run_result result;
  for (auto seg : segments(r.request)) {
    const std::size_t p = seg.find("{CAS}");
    if (p != std::string::npos) seg.replace(p, 5, last_cas(result.out));
    cache_test::feed(s, seg, chunk, result);
  }
  return result;
}

}  // namespace

TEST_CASE("cache conformance: every row replies as memcached 1.6.18 did", "[cache][conformance]") {
  const auto rows = load_rows();
  REQUIRE(rows.size() > 200);
  std::size_t compared = 0;
  for (const auto& r : rows) {
    if (r.mode == "ext") continue;
    INFO("row " << r.name << ": " << r.request.substr(0, 200));
    const auto got = replay(r);
    if (r.mode == "stats") {
      std::string why;
      INFO("ours: " << esc(got.out).substr(0, 3000));
      INFO("memcached: " << r.reply.substr(0, 3000));
      CHECK(stats_match(got.out, unescape(r.reply), why));
      INFO(why);
    } else {
      const std::string ours = esc(mask(got.out)), theirs = esc(mask(unescape(r.reply)));
      CHECK(shorten(ours) == shorten(theirs));
      if (ours != theirs && shorten(ours) == shorten(theirs)) FAIL_CHECK("the replies differ in the middle");
    }
    CHECK(got.closed == r.closed);
    ++compared;
  }
  CHECK(compared > 200);
}

TEST_CASE("cache conformance: rows split at every byte reply as the whole rows do", "[cache][conformance]") {
  for (const auto& r : load_rows()) {
    if (r.mode != "exact" || has_long_line(r.request) || r.request.find("{pause}") != std::string::npos)
      continue;
    const auto whole = replay(r);
    INFO("row " << r.name);
    const std::string bytes = segments(r.request)[0];
    for (std::size_t chunk : {std::size_t{1}, std::size_t{7}}) {
      if (bytes.size() > 100000 && chunk == 1) continue;
      const auto split = replay(r, chunk);
      CHECK(shorten(esc(mask(split.out))) == shorten(esc(mask(whole.out))));
      CHECK(split.out.size() == whole.out.size());
      CHECK(split.closed == whole.closed);
    }
    if (bytes.size() > 600) continue;
    for (std::size_t k = 1; k < bytes.size(); ++k) {
      cache_test::fixture f;
      warm_up(f);
      dhtkit_cache::session s(f.ctx);
      cache_test::run_result res;
      cache_test::feed(s, std::string_view(bytes).substr(0, k), SIZE_MAX, res);
      cache_test::feed(s, std::string_view(bytes).substr(k), SIZE_MAX, res);
      INFO("split at " << k);
      CHECK(esc(mask(res.out)) == esc(mask(whole.out)));
    }
  }
}

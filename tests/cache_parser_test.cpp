// dhtkit-cache's request framing and request vocabulary, row by row:
// request_parser (lines, value blocks, swallowed blocks, limits, any split),
// the tokenizer, memcached's number syntax, exptime conversion and base64 keys.
#include <string>
#include <string_view>
#include <vector>

#include "protocol/meta_commands.hpp"
#include "protocol/request.hpp"
#include "protocol/request_parser.hpp"
#include "support/catch.hpp"

using dhtkit_cache::request_parser;
using kind = request_parser::kind;

namespace {

// What a parser yields for a stream, as text: L<line> V<value> B(ad value) T(oo long).
// A line starting with "set " expects a value of the length in its last
// token; "skip N" swallows N bytes.
std::string frame(std::string_view input, std::size_t chunk, dhtkit_cache::parser_limits limits = {}) {
  request_parser p(limits);
  std::string log;
  while (true) {
    if (!input.empty()) {
      const std::size_t n = std::min({chunk, input.size(), p.room()});
      REQUIRE(n > 0);
      p.append(input.substr(0, n));
      input.remove_prefix(n);
    }
    for (;;) {
      const auto e = p.next();
      if (e.what == kind::need_more) break;
      if (e.what == kind::too_long) return log + "T";
      if (e.what == kind::bad_value) log += "B|";
      if (e.what == kind::value) log += "V" + std::string(e.text) + "|";
      if (e.what == kind::line) {
        log += "L" + std::string(e.text) + "|";
        const auto t = dhtkit_cache::tokenize(e.text);
        if (t[0] == "set") p.expect_value(std::stoul(std::string(t[t.size() - 1])));
        if (t[0] == "skip") p.swallow(std::stoul(std::string(t[1])));
      }
    }
    if (input.empty()) return log;
  }
}

}  // namespace

TEST_CASE("cache parser: lines, values and swallowed blocks at every split", "[cache][parser]") {
  struct row {
    std::string input, expected;
  };
  const std::vector<row> rows = {
      {"get a\r\n", "Lget a|"},
      {"get a\n", "Lget a|"},                       // a bare LF ends a line too
      {"get a\r\r\n", "Lget a\r|"},                 // only one CR is dropped
      {"\r\n", "L|"},                               // an empty line is a line (ERROR)
      {"get a\r\nget b\r\nget", "Lget a|Lget b|"},  // pipelined; a partial line waits
      {"set k 0 0 5\r\nhello\r\nget k\r\n", "Lset k 0 0 5|Vhello|Lget k|"},
      {"set k 0 0 4\r\n\r\n\r\n\r\n", "Lset k 0 0 4|V\r\n\r\n|"},  // a value may hold CRLFs
      {"set k 0 0 0\r\n\r\n", "Lset k 0 0 0|V|"},
      {"set k 0 0 3\r\nabcd\r\nx\r\n", "Lset k 0 0 3|B|L|Lx|"},  // 5 bytes taken; "\n" is a line
      {"set k 0 0 1\r\nx\nget\r\n", "Lset k 0 0 1|B|Let|"},
      {"skip 3\r\nabc\r\nget a\r\n", "Lskip 3|Lget a|"},
      {"skip 0\r\n\r\nversion\n", "Lskip 0|Lversion|"},
  };
  for (const auto& r : rows) {
    INFO("input " << r.input);
    for (std::size_t chunk = 1; chunk <= r.input.size(); ++chunk) {
      INFO("chunk " << chunk);
      CHECK(frame(r.input, chunk) == r.expected);
    }
  }
}

TEST_CASE("cache parser: a partial line longer than 2048 bytes ends the connection unless it is a get",
          "[cache][parser]") {
  const std::string long_set = "set " + std::string(3000, 'k') + " 0 0 1\r\n";
  // Arriving whole, the line is taken (as memcached takes a line that came in one read).
  CHECK(frame(long_set, long_set.size()).rfind("Lset ", 0) == 0);
  // Arriving in pieces, the 2049th byte without a newline ends it.
  CHECK(frame(long_set, 1000) == "T");
  CHECK(frame(std::string(2048, 'x'), 1) == "");
  CHECK(frame(std::string(2049, 'x'), 1) == "T");
  // A get may carry many keys: it may grow to the buffer's capacity.
  const std::string long_get = "get " + std::string(5000, 'k') + "\r\n";
  CHECK(frame(long_get, 100) == "L" + long_get.substr(0, long_get.size() - 2) + "|");
  CHECK(frame("  gets " + std::string(5000, 'k') + "\r\n", 100).rfind("L  gets", 0) == 0);
  // ... but not past it.
  dhtkit_cache::parser_limits small{.buffer_capacity = 4096, .max_line = 2048, .retained_capacity = 4096};
  CHECK(frame("get " + std::string(5000, 'k') + "\r\n", 100, small) == "T");
}

TEST_CASE("cache parser: room is bounded and a value's bytes do not count against it", "[cache][parser]") {
  request_parser p({.buffer_capacity = 100, .max_line = 50, .retained_capacity = 100});
  CHECK(p.room() == 100);
  p.append("set k 0 0 1000\r\n");
  CHECK(p.room() == 84);
  auto e = p.next();
  REQUIRE(e.what == kind::line);
  p.expect_value(1000);
  for (int i = 0; i < 10; ++i) {
    p.append(std::string(100, 'v'));
    CHECK(p.next().what == kind::need_more);
    CHECK(p.room() == 100);  // moved into the value block
  }
  p.append("\r\nget k\r\n");
  e = p.next();
  CHECK(e.what == kind::value);
  CHECK(e.text.size() == 1000);
  e = p.next();
  CHECK(e.what == kind::line);
  CHECK(e.text == "get k");
}

TEST_CASE("cache parser: buffers grown by a burst are given back once it is consumed", "[cache][parser]") {
  request_parser p;  // retained_capacity 16 KiB, buffer_capacity 64 KiB
  std::string pipeline;
  while (pipeline.size() < 60000) pipeline += "get key\r\n";
  p.append(pipeline);
  p.append("set k 0 0 50000\r\n");
  CHECK(p.retained_bytes() > 60000);
  std::size_t lines = 0;
  for (auto e = p.next(); e.what == kind::line && e.text == "get key"; e = p.next()) ++lines;
  CHECK(lines == pipeline.size() / 9);
  p.expect_value(50000);
  p.append(std::string(50000, 'v') + "\r\n");
  CHECK(p.next().what == kind::value);
  CHECK(p.next().what == kind::need_more);  // idle now
  CHECK(p.retained_bytes() <= 2 * p.limits().retained_capacity);
}

TEST_CASE("cache parser: mid_request holds from a request's first byte until it is whole",
          "[cache][parser]") {
  // What --request-timeout times: a partial line, a value or a swallow with bytes to come.
  request_parser p;
  CHECK_FALSE(p.mid_request());
  p.append("g");
  CHECK(p.next().what == kind::need_more);
  CHECK(p.mid_request());
  p.append("et k\r\n");
  CHECK(p.next().what == kind::line);
  CHECK_FALSE(p.mid_request());
  p.append("set k 0 0 3\r\n");
  CHECK(p.next().what == kind::line);
  p.expect_value(3);
  CHECK(p.next().what == kind::need_more);
  CHECK(p.mid_request());  // the line is consumed, its value is not
  p.append("abc\r\n");
  CHECK(p.next().what == kind::value);
  CHECK(p.next().what == kind::need_more);
  CHECK_FALSE(p.mid_request());
  p.append("set k 0 0 9999999\r\n");
  CHECK(p.next().what == kind::line);
  p.swallow(9999999);
  CHECK(p.next().what == kind::need_more);
  CHECK(p.mid_request());  // a swallow is a request still arriving too
  // Two whole requests and the start of a third: mid_request once the whole ones are taken.
  request_parser q;
  q.append("get a\r\nget b\r\nge");
  CHECK(q.next().what == kind::line);
  CHECK(q.next().what == kind::line);
  CHECK(q.next().what == kind::need_more);
  CHECK(q.mid_request());
}

TEST_CASE("cache parser: tokens are split at runs of spaces and counted up to 24", "[cache][parser]") {
  auto t = dhtkit_cache::tokenize("  set   a 0  0 1 ");
  REQUIRE(t.size() == 5);
  CHECK(t[0] == "set");
  CHECK(t[4] == "1");
  CHECK(t[5].empty());
  CHECK(dhtkit_cache::tokenize("").size() == 0);
  CHECK(dhtkit_cache::tokenize("a\tb c").size() == 2);  // only spaces separate
  std::string many;
  for (int i = 0; i < 30; ++i) many += "k ";
  t = dhtkit_cache::tokenize(many);
  CHECK(t.size() == 24);
  CHECK(t.overflow());
  CHECK(dhtkit_cache::tokenize("a b noreply").last_is("noreply"));
}

TEST_CASE("cache parser: numbers as memcached 1.6.18 reads them", "[cache][parser]") {
  using dhtkit_cache::parse_u64;
  CHECK(parse_u64("0") == 0u);
  CHECK(parse_u64("+7") == 7u);
  CHECK(parse_u64("007") == 7u);
  CHECK(parse_u64("18446744073709551615") == UINT64_MAX);
  CHECK_FALSE(parse_u64("18446744073709551616"));
  CHECK_FALSE(parse_u64("-1"));
  CHECK(parse_u64("-0") == 0u);
  CHECK_FALSE(parse_u64(""));
  CHECK_FALSE(parse_u64("+"));
  CHECK_FALSE(parse_u64("1x"));
  CHECK_FALSE(parse_u64("++1"));

  using dhtkit_cache::parse_flags;
  CHECK(parse_flags("4294967295") == 4294967295u);
  CHECK(parse_flags("4294967296") == 0u);  // kept modulo 2^32
  CHECK_FALSE(parse_flags("-1"));

  using dhtkit_cache::parse_i32_wrapping;
  CHECK(parse_i32_wrapping("-1") == -1);
  CHECK(parse_i32_wrapping("4294967396") == 100);           // as a C int holds it
  CHECK(parse_i32_wrapping("3000000000") == -1294967296);   // negative: already expired
  CHECK_FALSE(parse_i32_wrapping("99999999999999999999"));  // strtol overflows
  CHECK_FALSE(parse_i32_wrapping("abc"));
  CHECK_FALSE(parse_i32_wrapping("+-1"));
  CHECK_FALSE(parse_i32_wrapping("--1"));
  CHECK(parse_i32_wrapping("+5") == 5);

  using dhtkit_cache::parse_value_length;
  CHECK(parse_value_length("0") == 0u);
  CHECK(parse_value_length("2147483645") == 2147483645u);
  CHECK_FALSE(parse_value_length("2147483646"));  // + "\r\n" would overflow an int
  CHECK_FALSE(parse_value_length("-1"));
  CHECK_FALSE(parse_value_length("1x"));

  using dhtkit_cache::parse_counter_value;
  CHECK(parse_counter_value("12") == 12u);
  CHECK(parse_counter_value(" 12") == 12u);
  CHECK(parse_counter_value("12  ") == 12u);
  CHECK(parse_counter_value("00000000000000000001") == 1u);
  CHECK_FALSE(parse_counter_value(""));
  CHECK_FALSE(parse_counter_value("   "));
  CHECK_FALSE(parse_counter_value("12abc"));
  CHECK_FALSE(parse_counter_value("-5"));
  CHECK_FALSE(parse_counter_value("123456789012345678901"));

  CHECK(dhtkit_cache::counter_text(2, 20) == "2" + std::string(19, ' '));
  CHECK(dhtkit_cache::counter_text(100, 2) == "100");
}

TEST_CASE("cache parser: exptimes become expiry times as memcached's realtime does", "[cache][parser]") {
  using dhtkit_cache::to_expiry;
  const std::int64_t started = 1'700'000'000;
  const dhtkit::cache::rel_time now = 50;
  CHECK(to_expiry(0, started, now).at == 0);
  CHECK_FALSE(to_expiry(0, started, now).already_expired);
  CHECK(to_expiry(10, started, now).at == 60);
  CHECK(to_expiry(2592000, started, now).at == 2592050);  // 30 days: still relative
  CHECK(to_expiry(-1, started, now).already_expired);
  CHECK(to_expiry(2592001, started, now).already_expired);  // a unix time in 1970
  CHECK(to_expiry(static_cast<std::int32_t>(started + 40), started, now).already_expired);
  CHECK(to_expiry(static_cast<std::int32_t>(started + 60), started, now).at == 60);
}

TEST_CASE("cache parser: base64 keys decode as the b flag needs", "[cache][parser]") {
  using dhtkit_cache::detail::base64_decode;
  CHECK(base64_decode("Zm9v") == std::string("foo"));
  CHECK(base64_decode("Zm8=") == std::string("fo"));
  CHECK(base64_decode("Zg==") == std::string("f"));
  CHECK(base64_decode("AP8=") == std::string("\x00\xff", 2));
  CHECK_FALSE(base64_decode("Zm9"));
  CHECK_FALSE(base64_decode("Zm9v="));
  CHECK_FALSE(base64_decode("Z=9v"));
  CHECK_FALSE(base64_decode("!!!!"));
  CHECK_FALSE(base64_decode(""));
}

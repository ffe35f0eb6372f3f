// libFuzzer target for dhtkit-cache's protocol layer (examples/cache/protocol):
// arbitrary bytes, split at arbitrary points, go into a session on a small
// store, as a client's reads would arrive.
//
// The first bytes of an input choose the chunk sizes and how the fake clock
// moves (so expiry and delayed flushes run); the rest is the byte stream. The
// oracles: no crash, no sanitizer report, no single allocation over
// -malloc_limit_mb (see CMakeLists.txt), and bounded memory per session: the
// session never asks for more input than its buffer holds, and one process()
// call never leaves more than its high-water mark plus one item of output.
//
// Built a second time with DHTKIT_CACHE_FUZZ_WRITE_CORPUS, the same file is a
// small program that writes a seed corpus of requests into a folder:
//
//   cache_parser_fuzz_corpus corpus/ && cache_parser_fuzz -runs=200000 corpus/
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include "dhtkit/cache/store.hpp"
#include "protocol/server_context.hpp"
#include "protocol/session.hpp"

namespace {

constexpr std::size_t max_output = 16 * 1024;
constexpr std::size_t max_item = 4096;
constexpr dhtkit_cache::parser_limits limits{
    .buffer_capacity = 8192, .max_line = 2048, .retained_capacity = 4096};

dhtkit::cache::store_config small_store() {
  dhtkit::cache::store_config c;
  c.memory_limit = std::size_t{1} << 20;
  c.max_item_size = max_item;
  c.shards = 4;
  return c;
}

[[maybe_unused]] void run_one(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return;
  const std::uint8_t chunk_seed = data[0];
  const std::uint8_t clock_seed = data[1];
  std::string_view bytes(reinterpret_cast<const char*>(data) + 2, size - 2);

  static dhtkit::cache::store store(small_store());  // shared, as between a server's connections
  dhtkit::cache::rel_time clock = 2;
  dhtkit_cache::server_context ctx{.store = store,
                                   .settings = {.allow_shutdown = (clock_seed & 1) != 0},
                                   .counters = {},
                                   .now = [&clock] { return clock; },
                                   .process_started_unix = 1'700'000'000,
                                   .request_shutdown = [] {},
                                   .verbosity = {0}};
  ctx.settings.max_item_size = max_item;
  dhtkit_cache::session s(ctx, max_output, limits);
  std::string out;
  std::size_t step = 0;
  while (!bytes.empty()) {
    // Chunk sizes cycle through 1..64 bytes as the seed and the step choose.
    const std::size_t want = 1 + ((chunk_seed * 31u + step * 17u) % 64u);
    const std::size_t room = s.input_room();
    if (room == 0) return;  // the server closes such a connection
    if (room > limits.buffer_capacity) std::abort();
    const std::size_t n = std::min({want, bytes.size(), room});
    s.receive(bytes.substr(0, n));
    bytes.remove_prefix(n);
    for (;;) {
      out.clear();
      const auto st = s.process(out);
      if (out.size() > max_output + max_item + 4096) std::abort();
      if (st == dhtkit_cache::session_status::close) return;
      if (st == dhtkit_cache::session_status::need_input) break;
    }
    if ((clock_seed >> (step % 8)) & 1) clock += 1 + (step % 40);
    ++step;
  }
}

}  // namespace

#ifndef DHTKIT_CACHE_FUZZ_WRITE_CORPUS

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  run_one(data, size);
  return 0;
}

#else

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <corpus directory>\n", argv[0]);
    return 2;
  }
  const std::vector<std::string> seeds = {
      "set a 0 0 5\r\nhello\r\nget a b a\r\n",
      "set a 5 100 3 noreply\r\nabc\r\ngets a\r\ncas a 0 0 1 1\r\nx\r\n",
      "add a 0 0 1\r\nx\r\nreplace a 0 0 1\r\ny\r\nappend a 0 0 2\r\nzz\r\nprepend a 0 0 1\r\nw\r\n",
      "set n 0 0 2\r\n10\r\nincr n 5\r\ndecr n 100\r\nincr n 18446744073709551615\r\n",
      "touch a 10\r\ngat 10 a\r\ngats -1 a\r\ndelete a\r\ndelete a 0\r\ndelete a x\r\n",
      "flush_all 5\r\nflush_all\r\nflush_all noreply\r\nverbosity 1\r\nversion\r\n",
      "stats\r\nstats settings\r\nstats items\r\nstats slabs\r\nstats reset\r\nstats x\r\n",
      "set a 0 0 5000\r\n" + std::string(5000, 'v') + "\r\nget a\r\n",
      "set a 0 0 -1\r\nx\r\nset a 0 0 99999999999999999999\r\nx\r\nset a 0 0 3\r\nabcd\r\n",
      "get " + std::string(251, 'k') + "\r\n" + std::string(3000, 'x') + "\r\n",
      "ms a 3 T10 F5 c k O1\r\nabc\r\nmg a v s f t k c h l O2\r\nmg a u v\r\nmn\r\n",
      "ms a 1 MA\r\nx\r\nms a 1 ME q\r\ny\r\nms a 1 C1 I\r\nz\r\nmd a I T30\r\nmg a v c\r\nmg a v\r\n",
      "ma a N0 J10 v t\r\nma a MD D3 v\r\nma a q\r\nmd a q\r\nmd a\r\nmn\r\n",
      "mg Zm9v b k v\r\nms Zm9v 1 b\r\nx\r\nmd Zm9v b\r\nme a\r\nmg a N30 R10 T5 E7 c\r\n",
      "mg a v v\r\nmg a !\r\nms a 1 !\r\nx\r\nma a Dabc\r\nmd a x E5\r\nquit\r\n",
      "get a\r\nshutdown\r\nshutdown graceful\r\n",
  };
  for (std::size_t i = 0; i < seeds.size(); ++i) {
    for (std::uint8_t split : {0, 1, 200}) {
      const std::string path =
          std::string(argv[1]) + "/seed-" + std::to_string(i) + "-" + std::to_string(split);
      std::ofstream f(path, std::ios::binary);
      f.put(static_cast<char>(split));
      f.put(static_cast<char>(0x5a));
      f << seeds[i];
    }
  }
  return 0;
}

#endif

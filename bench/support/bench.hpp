// What every dhtkit benchmark shares: the optimizer barrier, the command line
// and the output format.
//
// Output is JSON Lines on stdout, one object per figure (see README, "Benchmarks"), with
// `baseline`, `baseline_value` and `ratio` when the figure has a baseline
// measured in the same run; a human-readable line per figure goes to stderr.
//
//   auto opt = dhtkit::bench::parse_options(argc, argv);
//   if (!opt) return 2;
//   const dhtkit::bench::reporter out{"ring"};
//   out.emit("owner/partition_table", "\"nodes\":1000", 8.4, "ns/op", {"jump_hash", 54.8});
#pragma once

#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace dhtkit::bench {

// Keeps `value` (and the work that produced it) from being optimized away.
template <class T>
inline void do_not_optimize(const T& value) {
  asm volatile("" : : "r,m"(value) : "memory");
}

struct options {
  bool quick = false;  // --quick: a fast smoke run with fewer iterations
};

// Parses the flags every benchmark takes; prints usage and returns nothing on
// anything else.
inline std::optional<options> parse_options(int argc, char** argv) {
  options opt;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--quick") == 0) {
      opt.quick = true;
    } else {
      std::fprintf(stderr, "usage: %s [--quick]\n", argv[0]);
      return std::nullopt;
    }
  }
  return opt;
}

// A baseline measured in the same run; no name means none.
struct baseline {
  const char* name = nullptr;
  double value = 0;
};

// Writes a benchmark's figures. `params` is the inside of the params object
// ("\"nodes\":10"); `extra` is appended verbatim to the object
// (",\"hash_value\":7.7"). With echo on, each figure is also printed as a
// plain line on stderr; benchmarks that print their own tables turn it off.
class reporter {
 public:
  explicit reporter(std::string bench, bool echo = true) : bench_(std::move(bench)), echo_(echo) {}

  void emit(std::string_view name, std::string_view params, double value, std::string_view unit,
            baseline base = {}, std::string_view extra = {}) const {
    const std::string n(name), p(params), u(unit), e(extra);
    const double ratio = base.name != nullptr && base.value > 0 ? value / base.value : 0.0;
    std::printf("{\"bench\":\"%s\",\"name\":\"%s\",\"params\":{%s},\"value\":%.6g,\"unit\":\"%s\"",
                bench_.c_str(), n.c_str(), p.c_str(), value, u.c_str());
    if (base.name != nullptr)
      std::printf(",\"baseline\":\"%s\",\"baseline_value\":%.6g,\"ratio\":%.4g", base.name, base.value,
                  ratio);
    std::printf("%s}\n", e.c_str());
    std::fflush(stdout);
    if (!echo_) return;
    std::fprintf(stderr, "%-28s %-44s %14.4g %-8s", n.c_str(), p.c_str(), value, u.c_str());
    if (base.name != nullptr) std::fprintf(stderr, "  vs %s %.4g (x%.3g)", base.name, base.value, ratio);
    std::fprintf(stderr, "\n");
  }

 private:
  std::string bench_;
  bool echo_;
};

}  // namespace dhtkit::bench

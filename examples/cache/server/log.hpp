// Logging to stderr by level. Level 0 (always): errors and the listening line;
// 1 (-v): warnings, rejected connections, idle timeouts; 2 (-vv): every
// connection opened and closed. The threshold is the server context's
// verbosity, which the `verbosity` command may change while running. Each line
// is one fprintf, which stdio locks, so lines from worker threads never mix.
#pragma once

#include <atomic>
#include <cstdarg>
#include <cstdio>

namespace dhtkit_cache {

enum class log_level { error = 0, warning = 1, debug = 2 };

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
inline void
log_line(const std::atomic<int>& verbosity, log_level level, const char* format, ...) {
  if (static_cast<int>(level) > verbosity.load(std::memory_order_relaxed)) return;
  char line[512];
  va_list args;
  va_start(args, format);
  std::vsnprintf(line, sizeof line, format, args);
  va_end(args);
  std::fprintf(stderr, "dhtkit-cache: %s\n", line);
}

}  // namespace dhtkit_cache

// What both drivers' call() does: run a client call on the core, drain, and
// hand back whatever the call returned (void included).
#pragma once

#include <type_traits>
#include <utility>

#include "dhtkit/core/time.hpp"

namespace dhtkit::detail {

// Runs f(core, now), then after(), and returns what f returned.
template <class F, class Core, class After>
decltype(auto) invoke_then(F&& f, Core& core, time_point now, After&& after) {
  if constexpr (std::is_void_v<std::invoke_result_t<F, Core&, time_point>>) {
    std::forward<F>(f)(core, now);
    std::forward<After>(after)();
  } else {
    decltype(auto) r = std::forward<F>(f)(core, now);
    std::forward<After>(after)();
    return r;
  }
}

}  // namespace dhtkit::detail

// A stored callback that may be replaced or cleared by the very call it is
// running.
//
// Drivers hold user callbacks (a receive handler, a restart hook, a trace
// sink) and users legitimately change them from inside themselves: a handler
// restarts its own node, a hook installs the rebuilt core's handler. Calling
// a std::function in place and letting the callee assign to it destroys the
// running closure and its captures mid-call. call() moves the closure out for
// the duration of the call and puts it back only if nothing else was
// installed meanwhile; moves of a std::function do not allocate, so this costs
// nothing on a hot path.
#pragma once

#include <cstdint>
#include <functional>
#include <utility>

namespace dhtkit::detail {

template <class Signature>
class callback_slot {
 public:
  using function_type = std::function<Signature>;

  void set(function_type f) {
    fn_ = std::move(f);
    ++generation_;
  }
  void clear() { set(nullptr); }
  explicit operator bool() const noexcept { return static_cast<bool>(fn_); }

  // Calls the callback if there is one. Safe against the callback calling
  // set() or clear() on this slot; an exception leaves the slot as the call
  // left it.
  template <class... Args>
  void call(Args&&... args) {
    if (!fn_) return;
    struct restore {
      callback_slot& slot;
      function_type running;
      std::uint64_t generation;
      ~restore() {
        if (slot.generation_ == generation) slot.fn_ = std::move(running);
      }
    } guard{*this, std::move(fn_), generation_};
    fn_ = nullptr;
    guard.running(std::forward<Args>(args)...);
  }

 private:
  function_type fn_;
  std::uint64_t generation_ = 0;
};

}  // namespace dhtkit::detail

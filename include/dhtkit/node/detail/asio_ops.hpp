// The Asio node's pending operations: a move-only, type-erased completion
// handler and the state an operation keeps between its initiation and its
// completion.
//
// Asio 1.22 (Debian's, the oldest supported) has no any_completion_handler,
// and std::function needs copyable handlers (use_awaitable's are move-only),
// so op_handler erases the handler behind a unique_ptr to a virtual base.
#pragma once

#include <asio/associated_cancellation_slot.hpp>
#include <asio/associated_executor.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/cancellation_type.hpp>
#include <asio/dispatch.hpp>
#include <asio/execution/outstanding_work.hpp>
#include <asio/prefer.hpp>
#include <memory>
#include <type_traits>
#include <utility>

#include "dhtkit/replication/requests.hpp"

namespace dhtkit::detail::node {

template <class Signature>
class op_handler;

// Holds a completion handler and outstanding work on its associated executor
// (so io_context::run does not return while the operation is pending), and
// invokes it through that executor: asio::dispatch, which runs it at once
// when the caller already runs there. The node only completes from its own
// strand handlers, never from inside an initiating call.
template <class... Args>
class op_handler<void(Args...)> {
 public:
  op_handler() = default;
  template <class Handler, class IoExecutor>
  op_handler(Handler&& handler, const IoExecutor& io_executor)
      : impl_(std::make_unique<holder<std::decay_t<Handler>, IoExecutor>>(std::forward<Handler>(handler),
                                                                          io_executor)) {}

  explicit operator bool() const noexcept { return impl_ != nullptr; }

  // Once: the handler is gone afterwards.
  void operator()(Args... args) {
    auto p = std::move(impl_);
    if (p) p->complete(std::move(args)...);
  }

 private:
  struct base {
    virtual ~base() = default;
    virtual void complete(Args... args) = 0;
  };

  template <class Handler, class IoExecutor>
  struct holder final : base {
    using executor_type = std::decay_t<decltype(asio::prefer(
        asio::get_associated_executor(std::declval<const Handler&>(), std::declval<const IoExecutor&>()),
        asio::execution::outstanding_work.tracked))>;

    holder(Handler h, const IoExecutor& io_executor)
        : work(asio::prefer(asio::get_associated_executor(h, io_executor),
                            asio::execution::outstanding_work.tracked)),
          handler(std::move(h)) {}

    void complete(Args... args) override {
      asio::dispatch(work, [h = std::move(handler), ... a = std::move(args)]() mutable {
        std::move(h)(std::move(a)...);
      });
    }

    executor_type work;
    Handler handler;
  };

  std::unique_ptr<base> impl_;
};

enum class op_kind : std::uint8_t { put, erase, get, join, leave };

// One operation between initiation and completion. Touched only on the
// node's strand, except that the initiating thread builds it and connects
// the cancellation slot before the start is posted.
template <class Signature>
struct pending_op {
  pending_op(op_kind k, op_handler<Signature> h) : kind(k), handler(std::move(h)) {}

  op_kind kind;
  op_handler<Signature> handler;
  asio::cancellation_slot slot{};
  request_id id = 0;     // the core's id, once started (puts, erases, gets)
  bool started = false;  // the start ran on the strand
  bool done = false;     // completed (or aborted): later outcomes are ignored

  template <class... Args>
  void complete(Args&&... args) {
    if (done) return;
    done = true;
    if (slot.is_connected()) slot.clear();
    handler(std::forward<Args>(args)...);
  }
};

}  // namespace dhtkit::detail::node

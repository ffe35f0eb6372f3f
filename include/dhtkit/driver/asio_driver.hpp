/// @file
/// Runs any protocol core on real sockets with standalone Asio.
///
/// asio_driver owns one transport (udp_transport, tcp_transport, or anything
/// that models dhtkit::transport on an Asio executor) and one core built in
/// place. Received messages go to receive(), one steady timer calls tick() at
/// next_wakeup(), and after every call into the core the outbox is drained to
/// the transport and handed to on_outbox. The core is never entered from two
/// threads at once: its timer runs on the transport's executor (the strand of
/// udp_transport and tcp_transport) where the receive handler runs, so make
/// calls through call() on that executor too -- from a handler, or posted to
/// transport().get_executor(); with a single-threaded io_context any handler
/// will do.
///
/// @code
/// asio::io_context io;
/// auto socket = dhtkit::udp_transport::open(io.get_executor(), {}).value();
/// const dhtkit::endpoint self = socket.local_endpoint();
/// using swim = dhtkit::membership::basic_swim<dhtkit::endpoint>;
/// dhtkit::asio_driver<swim, dhtkit::udp_transport> node(
///     io.get_executor(), std::move(socket), dhtkit::node_id{1}, self,
///     dhtkit::membership::swim_config::lan(), /*seed=*/42);
/// node.on_outbox = [](swim::outbox_type& out) { /* out.events */ };
/// node.start();
/// node.call([&](swim& core, dhtkit::time_point now) { return core.join(seeds, now); });
/// io.run();
/// @endcode
#pragma once

#include <asio/any_io_executor.hpp>
#include <asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <type_traits>
#include <utility>

#include "dhtkit/core/time.hpp"
#include "dhtkit/driver/detail/invoke_then.hpp"
#include "dhtkit/driver/protocol_core.hpp"
#include "dhtkit/transport/transport.hpp"

namespace dhtkit {

/// Runs one protocol core on a real transport: delivers messages, ticks on an
/// Asio timer and sends what the core produced (see asio_driver.hpp).
template <protocol_core Core, transport Transport>
class asio_driver {
  static_assert(std::is_same_v<typename Core::address_type, typename Transport::endpoint_type>,
                "dhtkit::asio_driver: the core must address peers by the transport's endpoint type");

 public:
  using core_type = Core;
  using outbox_type = typename Core::outbox_type;
  using endpoint_type = typename Transport::endpoint_type;

  /// Builds the core in place from core_args.
  /// `executor` serves the timer when the transport has no executor of its own.
  template <class... CoreArgs>
  asio_driver(const asio::any_io_executor& executor, Transport transport, CoreArgs&&... core_args)
      : transport_(std::move(transport)),
        core_(std::forward<CoreArgs>(core_args)...),
        timer_(timer_executor(transport_, executor)) {}
  asio_driver(const asio_driver&) = delete;
  asio_driver& operator=(const asio_driver&) = delete;
  ~asio_driver() { close(); }

  /// Called after every call into the core with what it produced; its
  /// messages have been handed to the transport by then.
  std::function<void(outbox_type&)> on_outbox;

  /// Installs the receive handler and arms the first tick.
  void start() {
    transport_.set_receive_handler([this](const endpoint_type& from, std::span<const std::byte> bytes) {
      if (closed_) return;
      (void)core_.receive(from, bytes, clock_.now());
      drain();
    });
    drain();
  }

  /// Runs f(core, now) -- join, leave, a lookup, a put -- then drains the
  /// outbox. Returns what f returns.
  template <class F>
  decltype(auto) call(F&& f) {
    return detail::invoke_then(std::forward<F>(f), core_, clock_.now(), [this] { drain(); });
  }

  /// Stops everything: transport closed, timer cancelled. Idempotent.
  void close() {
    if (closed_) return;
    closed_ = true;
    timer_.cancel();
    transport_.close();
  }

  Core& core() noexcept { return core_; }
  const Core& core() const noexcept { return core_; }
  Transport& transport() noexcept { return transport_; }
  endpoint_type local_endpoint() const { return transport_.local_endpoint(); }

 private:
  void drain() {
    auto out = core_.take_outbox();
    if (!closed_)
      for (auto& m : out.messages) (void)transport_.send(m.to, m.bytes);
    if (on_outbox) on_outbox(out);
    arm();
  }

  static asio::any_io_executor timer_executor(Transport& t, const asio::any_io_executor& fallback) {
    if constexpr (requires { t.get_executor(); }) {
      (void)fallback;
      return t.get_executor();
    } else {
      return fallback;
    }
  }

  void arm() {
    if (closed_) return;
    const std::optional<time_point> next = core_.next_wakeup();
    if (!next) return;
    // One pending wait: re-armed only for an earlier wake-up.
    if (armed_ && *armed_ <= *next) return;
    armed_ = *next;
    timer_.expires_at(std::chrono::steady_clock::time_point(
        std::chrono::duration_cast<std::chrono::steady_clock::duration>(next->time_since_epoch())));
    // A wait that already completed is not cancelled by expires_at() or by
    // the timer's destruction: its handler still runs, so it checks that the
    // driver is alive and that it is the wait armed last.
    timer_.async_wait([this, alive = std::weak_ptr<void>(alive_), wait = ++waits_](std::error_code ec) {
      if (ec || alive.expired() || wait != waits_ || closed_) return;
      armed_.reset();
      core_.tick(clock_.now());
      drain();
    });
  }

  Transport transport_;
  Core core_;
  asio::steady_timer timer_;
  steady_clock_source clock_;
  std::optional<time_point> armed_;
  std::uint64_t waits_ = 0;
  bool closed_ = false;
  std::shared_ptr<void> alive_ = std::make_shared<char>(0);  // expires with the driver
};

}  // namespace dhtkit

// A minimal driver that runs one basic_swim<dhtkit::endpoint> over a
// udp_transport on an Asio executor: received datagrams go to receive(), a
// steady timer calls tick() at next_tick(), and the outbox is drained to the
// socket after every call. Everything runs on the io_context's thread (the
// tests use a single-threaded io_context).
#pragma once

#include <asio/steady_timer.hpp>
#include <functional>
#include <memory>
#include <utility>

#include "dhtkit/core/time.hpp"
#include "dhtkit/membership/swim.hpp"
#include "dhtkit/transport/asio_udp.hpp"

namespace dhtkit::test {

class membership_udp_driver {
 public:
  using swim = membership::basic_swim<endpoint>;

  membership_udp_driver(asio::io_context& io, udp_transport transport, node_id id,
                        membership::swim_config config, std::uint64_t seed)
      : transport_(std::move(transport)), core_(id, transport_.local_endpoint(), config, seed), timer_(io) {
    transport_.set_receive_handler([this](const endpoint& from, std::span<const std::byte> m) {
      (void)core_.receive(from, m, clock_.now());
      flush();
    });
  }
  membership_udp_driver(const membership_udp_driver&) = delete;
  membership_udp_driver& operator=(const membership_udp_driver&) = delete;
  ~membership_udp_driver() { close(); }

  void join(const endpoint& seed) {
    const endpoint seeds[] = {seed};
    (void)core_.join(seeds, clock_.now());
    flush();
  }

  // Stops everything: socket closed, timer cancelled (a crash, seen from outside).
  void close() {
    if (closed_) return;
    closed_ = true;
    timer_.cancel();
    transport_.close();
  }

  swim& core() noexcept { return core_; }
  endpoint local_endpoint() const { return transport_.local_endpoint(); }
  // Called with every membership event this node reports.
  std::function<void(const membership::member_event<endpoint>&)> on_event;

 private:
  void flush() {
    if (closed_) return;
    auto& out = core_.outbox();
    for (const auto& m : out.messages) (void)transport_.send(m.to, m.bytes);
    if (on_event)
      for (const auto& e : out.events) on_event(e);
    out.clear();
    arm();
  }

  void arm() {
    const time_point next = core_.next_tick();
    if (armed_ && armed_at_ <= next) return;
    armed_ = true;
    armed_at_ = next;
    timer_.expires_at(std::chrono::steady_clock::time_point(
        std::chrono::duration_cast<std::chrono::steady_clock::duration>(next.time_since_epoch())));
    timer_.async_wait([this](std::error_code ec) {
      if (ec || closed_) return;
      armed_ = false;
      core_.tick(clock_.now());
      flush();
    });
  }

  udp_transport transport_;
  swim core_;
  asio::steady_timer timer_;
  steady_clock_source clock_;
  bool armed_ = false;
  bool closed_ = false;
  time_point armed_at_{};
};

}  // namespace dhtkit::test

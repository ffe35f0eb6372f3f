// The state behind dhtkit::basic_node (node/node.hpp): the core, its two
// lanes, one timer, and the operations waiting for the core's outcomes. It
// lives in a shared_ptr so that handlers which outlive the node's handle
// (a completion in flight, a cancellation posted by another thread) find it
// alive; transport and timer handlers hold only a weak_ptr, so closing and
// dropping the handle frees it.
//
// Everything here runs on `strand_`. The transports make their strands from
// it, so their handlers are serialized with the timer and the posted calls.
#pragma once

#include <asio/any_io_executor.hpp>
#include <asio/dispatch.hpp>
#include <asio/error.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/strand.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <system_error>
#include <unordered_map>
#include <utility>
#include <vector>

#include "dhtkit/core/time.hpp"
#include "dhtkit/node/config.hpp"
#include "dhtkit/node/detail/asio_lanes.hpp"
#include "dhtkit/node/detail/asio_ops.hpp"
#include "dhtkit/node/handoff_journal.hpp"
#include "dhtkit/node/node_outbox.hpp"
#include "dhtkit/node/node_stats.hpp"
#include "dhtkit/node/results.hpp"
#include "dhtkit/replication/hint_store.hpp"
#include "dhtkit/transport/detail/callback_slot.hpp"

namespace dhtkit::detail::node {

using status_signature = void(std::error_code);
using put_signature = void(std::error_code, put_result);
using get_signature = void(std::error_code, get_result);

// Storage, hints and journal, when the node owns them.
template <class Storage>
struct owned_durable {
  Storage store{};
  hint_store hints{};
  handoff_journal journal{};
};

template <class Core, class Storage>
class asio_node_impl : public std::enable_shared_from_this<asio_node_impl<Core, Storage>> {
 public:
  using strand_type = asio::strand<asio::any_io_executor>;
  using address_type = lane_address<endpoint>;

  asio_node_impl(strand_type strand, const node_config& cfg, asio_lanes lanes, std::vector<endpoint> seeds,
                 std::unique_ptr<owned_durable<Storage>> owned, Storage& store, hint_store& hints,
                 handoff_journal& journal, std::uint64_t seed)
      : strand_(std::move(strand)),
        owned_(std::move(owned)),
        packet_(std::move(lanes.packet)),
        stream_(std::move(lanes.stream)),
        packet_endpoint_(lanes.packet_endpoint),
        stream_endpoint_(lanes.stream_endpoint),
        seeds_(std::move(seeds)),
        core_(cfg, packet_endpoint_, stream_endpoint_, store, hints, journal, seed),
        id_(core_.id()),
        timer_(strand_) {}

  // Installs the receive handlers on the strand (the transports require it
  // while their executor may be running).
  void start() {
    asio::dispatch(strand_, [self = this->shared_from_this()] {
      if (self->closed_) return;
      std::weak_ptr<asio_node_impl> w = self;
      // With a secured stream lane: a peer's proven identity must name the
      // member whose stream endpoint it dials or speaks for.
      self->stream_.set_peer_verifier([w](const endpoint& at, const peer_identity& who) {
        auto s = w.lock();
        if (!s) return false;
        const std::string* name = s->core_.stream_member_name(at);
        return name != nullptr && who.has_name(*name);
      });
      self->packet_.set_receive_handler([w](const endpoint& from, std::span<const std::byte> bytes) {
        if (auto s = w.lock()) s->on_receive(address_type{from, lane::packet}, bytes);
      });
      self->stream_.set_receive_handler([w](const endpoint& from, std::span<const std::byte> bytes) {
        if (auto s = w.lock()) s->on_receive(address_type{from, lane::stream}, bytes);
      });
      self->drain();
    });
  }

  const strand_type& strand() const noexcept { return strand_; }
  node_id id() const noexcept { return id_; }
  const endpoint& packet_endpoint() const noexcept { return packet_endpoint_; }
  const endpoint& stream_endpoint() const noexcept { return stream_endpoint_; }
  const Core& core() const noexcept { return core_; }
  udp_transport_stats packet_stats() const { return packet_.stats(); }
  tcp_transport_stats stream_stats() const { return stream_.stats(); }

  // ---- initiations (any thread) -----------------------------------------------

  template <class Handler>
  void initiate_join(Handler&& h) {
    initiate_status(op_kind::join, std::forward<Handler>(h));
  }
  template <class Handler>
  void initiate_leave(Handler&& h) {
    initiate_status(op_kind::leave, std::forward<Handler>(h));
  }

  template <class Handler>
  void initiate_put(op_kind kind, Handler&& h, std::string key, bytes value, version_vector context,
                    request_options options) {
    auto op = make_op<put_signature>(kind, std::forward<Handler>(h));
    asio::post(strand_, [self = this->shared_from_this(), op, key = std::move(key), value = std::move(value),
                         context = std::move(context), options]() mutable {
      if (!self->begin(*op)) return;
      const time_point now = self->clock_.now();
      op->id = op->kind == op_kind::erase ? self->core_.erase(key, context, now, options)
                                          : self->core_.put(key, std::move(value), context, now, options);
      self->puts_[op->id] = op;
      self->drain();
    });
  }

  template <class Handler>
  void initiate_get(Handler&& h, std::string key, request_options options) {
    auto op = make_op<get_signature>(op_kind::get, std::forward<Handler>(h));
    asio::post(strand_, [self = this->shared_from_this(), op, key = std::move(key), options] {
      if (!self->begin(*op)) return;
      op->id = self->core_.get(key, self->clock_.now(), options);
      self->gets_[op->id] = op;
      self->drain();
    });
  }

  template <class Handler>
  void initiate_stats(Handler&& h) {
    auto op = std::make_shared<op_handler<void(node_stats)>>(std::forward<Handler>(h), strand_);
    asio::post(strand_, [self = this->shared_from_this(), op] { (*op)(self->stats()); });
  }

  // The core's counters and the one the packet lane keeps for the node
  // (datagrams refused before the core could see them). On the strand.
  node_stats stats() const {
    node_stats s = core_.stats();
    s.dropped.unauthenticated = packet_.stats().unauthenticated_received;
    return s;
  }

  void set_event_handler(std::function<void(const node_event&)> f) {
    asio::dispatch(strand_, [self = this->shared_from_this(), f = std::move(f)]() mutable {
      if (!self->closed_) self->events_.set(std::move(f));
    });
  }

  void set_application_handler(std::function<void(node_id, bytes)> f) {
    asio::dispatch(strand_, [self = this->shared_from_this(), f = std::move(f)]() mutable {
      if (!self->closed_) self->applications_.set(std::move(f));
    });
  }

  // On the strand: at once. Elsewhere: posted (then errors are only counted).
  std::error_code send_application(node_id to, bytes payload) {
    if (strand_.running_in_this_thread()) {
      if (closed_) return errc::shut_down;
      auto ec = core_.send_application(to, std::move(payload));
      drain();
      return ec;
    }
    asio::post(strand_, [self = this->shared_from_this(), to, p = std::move(payload)]() mutable {
      if (self->closed_) return;
      (void)self->core_.send_application(to, std::move(p));
      self->drain();
    });
    return {};
  }

  // Immediate when called on the strand, else as soon as the strand runs.
  void close() {
    asio::dispatch(strand_, [self = this->shared_from_this()] { self->do_close(); });
  }

 private:
  template <class Signature, class Handler>
  std::shared_ptr<pending_op<Signature>> make_op(op_kind kind, Handler&& h) {
    auto slot = asio::get_associated_cancellation_slot(h);
    auto op = std::make_shared<pending_op<Signature>>(
        kind, op_handler<Signature>(std::forward<Handler>(h), strand_));
    if (slot.is_connected()) {
      // Connected before the start is posted: a cancellation emitted at once
      // is posted after the start, or (emitted between the two) finds the op
      // not started and completes it; begin() then skips it.
      op->slot = slot;
      std::weak_ptr<asio_node_impl> w = this->shared_from_this();
      std::weak_ptr<pending_op<Signature>> wop = op;
      slot.assign([w, wop](asio::cancellation_type type) {
        if ((type & (asio::cancellation_type::terminal | asio::cancellation_type::partial |
                     asio::cancellation_type::total)) == asio::cancellation_type::none)
          return;
        auto s = w.lock();
        if (!s) return;
        asio::post(s->strand_, [s, wop] {
          if (auto o = wop.lock()) s->abort(o);
        });
      });
    }
    return op;
  }

  template <class Handler>
  void initiate_status(op_kind kind, Handler&& h) {
    auto op = make_op<status_signature>(kind, std::forward<Handler>(h));
    asio::post(strand_, [self = this->shared_from_this(), op] {
      if (!self->begin(*op)) return;
      const time_point now = self->clock_.now();
      const std::error_code ec = op->kind == op_kind::join
                                     ? self->core_.join(std::span<const endpoint>(self->seeds_), now)
                                     : self->core_.leave(now);
      if (ec) {
        op->complete(ec);
      } else {
        (op->kind == op_kind::join ? self->joins_ : self->leaves_).push_back(op);
      }
      self->drain();
    });
  }

  // On the strand, first thing in every start: false when the op is already
  // over (aborted before it started, or the node is closed).
  template <class Op>
  bool begin(Op& op) {
    if (op.done) return false;
    op.started = true;
    if (closed_) {
      complete_shut_down(op);
      return false;
    }
    return true;
  }

  template <class Signature>
  static void complete_shut_down(pending_op<Signature>& op) {
    if constexpr (std::is_same_v<Signature, status_signature>) {
      op.complete(std::error_code(errc::shut_down));
    } else if constexpr (std::is_same_v<Signature, put_signature>) {
      op.complete(std::error_code(errc::shut_down), put_result{});
    } else {
      op.complete(std::error_code(errc::shut_down), get_result{});
    }
  }

  // A cancellation: the core forgets the op (its outcome is never reported)
  // and the handler gets operation_aborted. A join or leave goes on in the
  // core; only the wait for it ends.
  template <class Signature>
  void abort(const std::shared_ptr<pending_op<Signature>>& op) {
    if (op->done) return;
    const std::error_code aborted = asio::error::operation_aborted;
    if constexpr (std::is_same_v<Signature, status_signature>) {
      auto& list = op->kind == op_kind::join ? joins_ : leaves_;
      std::erase(list, op);
      op->complete(aborted);
    } else {
      if (op->started && !closed_) {
        if constexpr (std::is_same_v<Signature, put_signature>) {
          puts_.erase(op->id);
        } else {
          gets_.erase(op->id);
        }
        (void)core_.cancel(op->id);
      }
      if constexpr (std::is_same_v<Signature, put_signature>) {
        op->complete(aborted, put_result{});
      } else {
        op->complete(aborted, get_result{});
      }
      if (!closed_) drain();
    }
  }

  void on_receive(const address_type& from, std::span<const std::byte> bytes) {
    if (closed_) return;
    (void)core_.receive(from, bytes, clock_.now());
    drain();
  }

  void send(const address_type& to, std::span<const std::byte> bytes) {
    // A refused send is a lost message, which every protocol copes with; the
    // transports count their own refusals (packet_stats(), stream_stats()).
    if (to.via == lane::packet) {
      (void)packet_.send(to.endpoint, bytes);
    } else {
      (void)stream_.send(to.endpoint, bytes);
    }
  }

  // After every call into the core: send its messages, report its events,
  // complete what it finished, re-arm the timer. Handlers may run inline
  // (their executor is this strand) and call back into the node -- close()
  // included -- so nothing here holds an iterator into the op tables across
  // a completion.
  void drain() {
    auto out = core_.take_outbox();
    if (closed_) return;
    for (auto& m : out.messages) send(m.to, m.bytes);
    for (auto& e : out.events) {
      if (closed_) break;
      events_.call(e);
    }
    for (auto& a : out.applications) {
      if (closed_) break;
      applications_.call(a.from, std::move(a.payload));
    }
    for (auto& s : out.status) on_status(s);
    for (auto& p : out.puts) {
      auto it = puts_.find(p.id);
      if (it == puts_.end()) continue;
      auto op = std::move(it->second);
      puts_.erase(it);
      put_result r;
      r.acks = p.acks;
      r.required = p.required;
      op->complete(p.error, std::move(r));
    }
    for (auto& g : out.gets) {
      auto it = gets_.find(g.id);
      if (it == gets_.end()) continue;
      auto op = std::move(it->second);
      gets_.erase(it);
      get_result r;
      r.siblings = std::move(g.siblings);
      r.context = std::move(g.context);
      r.replies = g.replies;
      r.required = g.required;
      op->complete(g.error, std::move(r));
    }
    arm();
  }

  void on_status(const node_status& s) {
    if (s.state == node_state::joined) {
      auto joins = std::exchange(joins_, {});
      for (auto& op : joins) op->complete(std::error_code{});
    } else if (s.state == node_state::left) {
      // A join that ends in "left" failed (name_in_use, timed_out) or was
      // overtaken by a leave.
      auto joins = std::exchange(joins_, {});
      const std::error_code join_error = s.error ? s.error : std::error_code(errc::shut_down);
      for (auto& op : joins) op->complete(join_error);
      auto leaves = std::exchange(leaves_, {});
      for (auto& op : leaves) op->complete(s.error);
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
    // A wait that already completed is not cancelled by expires_at(): its
    // handler still runs, so it checks that it is the wait armed last.
    std::weak_ptr<asio_node_impl> w = this->shared_from_this();
    timer_.async_wait([w, wait = ++waits_](std::error_code ec) {
      auto s = w.lock();
      if (ec || !s || wait != s->waits_ || s->closed_) return;
      s->armed_.reset();
      s->core_.tick(s->clock_.now());
      s->drain();
    });
  }

  void do_close() {
    if (closed_) return;
    closed_ = true;
    timer_.cancel();
    packet_.close();
    stream_.close();
    events_.clear();
    applications_.clear();
    auto joins = std::exchange(joins_, {});
    auto leaves = std::exchange(leaves_, {});
    auto puts = std::exchange(puts_, {});
    auto gets = std::exchange(gets_, {});
    for (auto& op : joins) complete_shut_down(*op);
    for (auto& op : leaves) complete_shut_down(*op);
    for (auto& [id, op] : puts) complete_shut_down(*op);
    for (auto& [id, op] : gets) complete_shut_down(*op);
  }

  strand_type strand_;
  std::unique_ptr<owned_durable<Storage>> owned_;  // before core_: the core refers to it
  udp_transport packet_;
  tcp_transport stream_;
  endpoint packet_endpoint_;
  endpoint stream_endpoint_;
  std::vector<endpoint> seeds_;
  Core core_;
  node_id id_;
  asio::steady_timer timer_;
  steady_clock_source clock_;
  std::optional<time_point> armed_;
  std::uint64_t waits_ = 0;
  bool closed_ = false;
  dhtkit::detail::callback_slot<void(const node_event&)> events_;
  dhtkit::detail::callback_slot<void(node_id, bytes)> applications_;
  std::vector<std::shared_ptr<pending_op<status_signature>>> joins_, leaves_;
  std::unordered_map<request_id, std::shared_ptr<pending_op<put_signature>>> puts_;
  std::unordered_map<request_id, std::shared_ptr<pending_op<get_signature>>> gets_;
};

}  // namespace dhtkit::detail::node

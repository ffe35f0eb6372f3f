/// @file
/// The DHT node on real sockets: the no-I/O node core (node_core.hpp) behind
/// a UDP packet lane, a TCP stream lane, one timer, and an asynchronous API in
/// Asio's completion-token style, so callbacks, asio::use_future and
/// asio::use_awaitable all work.
///
/// Every operation completes with a std::error_code saying what happened and
/// a result with the counts behind it: errc::quorum_not_reached with `acks` of
/// `required`, errc::timed_out, errc::not_joined, errc::limit_exceeded
/// (max_pending_ops), errc::name_in_use (async_join: another live node has
/// this name), errc::shut_down (the node was closed), and
/// asio::error::operation_aborted (cancelled). Nothing on the network path
/// throws. A per-operation timeout is request_options::timeout (the core
/// enforces it; node_config::replication.request_timeout by default).
/// Cancellation uses the handler's associated cancellation slot
/// (asio::bind_cancellation_slot): terminal, partial and total are all
/// honoured; a cancelled put or erase may still have been applied by some
/// replicas; a cancelled async_join or async_leave stops the wait, not the
/// join or the leave.
///
/// Threading: all of the node's work runs on one strand of the executor
/// given to the constructor (get_executor()), so the io_context may be run
/// by many threads. The async_* functions, close(), set_event_handler(),
/// async_stats() and the accessors id(), packet_endpoint() and
/// stream_endpoint() may be called from any thread. stats() reads the core
/// and may only be called on the strand: from a completion handler without
/// an executor of its own (those run on the strand), from the event handler,
/// or from a handler posted to get_executor(); elsewhere use async_stats().
/// Handlers are invoked through their associated executor, never inside the
/// initiating call.
///
/// Security: node_config::stream_security (e.g. dhtkit::tls_security from
/// security/tls.hpp, target dhtkit::security) runs the stream lane over mutual
/// TLS, and the node binds certificates to members by their name in SWIM
/// metadata. A connection this node dials is used only when the server's
/// certificate names the member whose stream endpoint was dialed. A message
/// arriving on a connection is taken only when the connection's certificate
/// names the member living at the endpoint its hello claims. Refusals are
/// counted in stream_transport_stats(). Opening a node whose own certificate
/// does not carry node_config::name throws std::invalid_argument. TLS does
/// not cover the packet lane: node_config::packet_cipher (dhtkit::keyring,
/// dhtkit/security/keyring.hpp) seals it. Without either, everything is
/// plain and unauthenticated.
///
/// Addresses: UDP and TCP bind node_config::listen's host and port (port 0:
/// each its own free port). Seeds and advertise are numeric addresses
/// ("10.0.0.2:7946", "[fd00::2]:7946"); host names are not resolved.
///
/// @code
/// asio::io_context io;
/// auto cfg = dhtkit::node_config::local();      // 127.0.0.1, free ports, short periods
/// cfg.name = "a";
/// dhtkit::node a{io.get_executor(), cfg};       // throws std::system_error if it cannot bind
/// a.async_join([&](std::error_code ec) {        // no seeds: founds a cluster
///   if (ec) return;
///   a.async_put("user:42", dhtkit::bytes{std::byte{1}}, {}, [](std::error_code ec, dhtkit::put_result r) {
///     std::printf("%s\n", r.describe(ec).c_str());
///   });
/// });
/// io.run_for(std::chrono::seconds(2));
/// @endcode
#pragma once

#include <asio/any_io_executor.hpp>
#include <asio/async_result.hpp>
#include <asio/strand.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

#include "dhtkit/core/endpoint.hpp"
#include "dhtkit/core/result.hpp"
#include "dhtkit/node/chord_placement.hpp"
#include "dhtkit/node/config.hpp"
#include "dhtkit/node/detail/asio_lanes.hpp"
#include "dhtkit/node/detail/asio_node.hpp"
#include "dhtkit/node/handoff_journal.hpp"
#include "dhtkit/node/node_core.hpp"
#include "dhtkit/node/node_outbox.hpp"
#include "dhtkit/node/node_stats.hpp"
#include "dhtkit/node/one_hop.hpp"
#include "dhtkit/node/results.hpp"
#include "dhtkit/replication/hint_store.hpp"
#include "dhtkit/replication/requests.hpp"
#include "dhtkit/replication/storage.hpp"

namespace dhtkit {

/// A DHT node on Asio: the node core on UDP and TCP with completion-token
/// operations (see node.hpp). `Core` is the no-I/O core it drives; only tests
/// replace it.
template <class Placement = one_hop, class Storage = memory_storage,
          class Core = basic_node_core<endpoint, Placement, Storage>>
class basic_node {
  using impl_type = detail::node::asio_node_impl<Core, Storage>;

 public:
  /// The strand every handler of the node runs on.
  using executor_type = asio::strand<asio::any_io_executor>;
  /// The no-I/O core behind the node.
  using core_type = Core;
  /// The storage engine holding this node's replicas.
  using storage_type = Storage;

  /// Opens both lanes with storage, hints and journal of the node's own (its
  /// data dies with it). The error when an address does not parse
  /// (errc::invalid_address: also a wildcard listen without advertise) or a
  /// socket cannot bind (address in use, ...). Throws std::invalid_argument
  /// for an invalid configuration (node_config::validate()).
  static result<basic_node> open(asio::any_io_executor ex, const node_config& cfg) {
    auto owned = std::make_unique<detail::node::owned_durable<Storage>>();
    auto& d = *owned;
    return make(std::move(ex), cfg, std::move(owned), d.store, d.hints, d.journal);
  }

  /// As open(ex, cfg), over durable state the caller owns and keeps across
  /// restarts of the node (a process restarting "with state" passes the same
  /// objects again). They must outlive the node and its pending handlers.
  static result<basic_node> open(asio::any_io_executor ex, const node_config& cfg, Storage& store,
                                 hint_store& hints, handoff_journal& journal) {
    return make(std::move(ex), cfg, nullptr, store, hints, journal);
  }

  /// As open(), but throws std::system_error with the error code where open() returns it.
  basic_node(asio::any_io_executor ex, const node_config& cfg)
      : basic_node(open(std::move(ex), cfg).value()) {}
  /// As open() over caller-owned durable state, throwing std::system_error.
  basic_node(asio::any_io_executor ex, const node_config& cfg, Storage& store, hint_store& hints,
             handoff_journal& journal)
      : basic_node(open(std::move(ex), cfg, store, hints, journal).value()) {}

  basic_node(basic_node&&) noexcept = default;
  basic_node& operator=(basic_node&& other) noexcept {
    if (this != &other) {
      close();
      impl_ = std::move(other.impl_);
    }
    return *this;
  }
  basic_node(const basic_node&) = delete;
  basic_node& operator=(const basic_node&) = delete;
  /// Closes (see close()). The node's state lives on until its last pending
  /// handler has run.
  ~basic_node() { close(); }

  /// Joins the cluster through node_config::seeds, or founds one when there
  /// are none. Completes with {} once a member with a placement; name_in_use
  /// when another live node has this name; timed_out. Signature void(std::error_code).
  template <class Token>
  auto async_join(Token&& token) {
    return asio::async_initiate<Token, detail::node::status_signature>(
        [](auto&& handler, std::shared_ptr<impl_type> impl) {
          impl->initiate_join(std::forward<decltype(handler)>(handler));
        },
        token, impl_);
  }

  /// Leaves gracefully: hands this node's ranges to their new holders, then
  /// leaves the membership. {} or timed_out (node_config::leave_timeout cut
  /// the handoff short; the node left anyway). Signature void(std::error_code).
  template <class Token>
  auto async_leave(Token&& token) {
    return asio::async_initiate<Token, detail::node::status_signature>(
        [](auto&& handler, std::shared_ptr<impl_type> impl) {
          impl->initiate_leave(std::forward<decltype(handler)>(handler));
        },
        token, impl_);
  }

  /// Writes `value` under `key`, superseding the versions `context` (from a
  /// get) has seen. Signature void(std::error_code, put_result).
  template <class Token>
  auto async_put(std::string_view key, bytes value, version_vector context, Token&& token) {
    return async_put(key, std::move(value), std::move(context), request_options{},
                     std::forward<Token>(token));
  }
  /// async_put with per-request N, W and timeout.
  template <class Token>
  auto async_put(std::string_view key, bytes value, version_vector context, request_options options,
                 Token&& token) {
    return initiate_write(detail::node::op_kind::put, key, std::move(value), std::move(context), options,
                          std::forward<Token>(token));
  }

  /// Deletes `key` (a tombstone superseding what `context` has seen).
  /// Signature void(std::error_code, put_result).
  template <class Token>
  auto async_erase(std::string_view key, version_vector context, Token&& token) {
    return async_erase(key, std::move(context), request_options{}, std::forward<Token>(token));
  }
  /// async_erase with per-request N, W and timeout.
  template <class Token>
  auto async_erase(std::string_view key, version_vector context, request_options options, Token&& token) {
    return initiate_write(detail::node::op_kind::erase, key, bytes{}, std::move(context), options,
                          std::forward<Token>(token));
  }

  /// Reads `key`: its live versions and their causal context. Not found is
  /// success with no siblings. Signature void(std::error_code, get_result).
  template <class Token>
  auto async_get(std::string_view key, Token&& token) {
    return async_get(key, request_options{}, std::forward<Token>(token));
  }
  /// async_get with per-request N, R and timeout.
  template <class Token>
  auto async_get(std::string_view key, request_options options, Token&& token) {
    return asio::async_initiate<Token, detail::node::get_signature>(
        [](auto&& handler, std::shared_ptr<impl_type> impl, std::string k, request_options o) {
          impl->initiate_get(std::forward<decltype(handler)>(handler), std::move(k), o);
        },
        token, impl_, std::string(key), options);
  }

  /// A copy of the node's counters, taken on the strand. Signature void(node_stats).
  template <class Token>
  auto async_stats(Token&& token) {
    return asio::async_initiate<Token, void(node_stats)>(
        [](auto&& handler, std::shared_ptr<impl_type> impl) {
          impl->initiate_stats(std::forward<decltype(handler)>(handler));
        },
        token, impl_);
  }

  /// The node's counters. Only on the strand (see Threading in node.hpp).
  node_stats stats() const { return impl_->stats(); }

  /// Called on the strand for every membership and ownership event, from the
  /// next event on; an empty function removes it.
  void set_event_handler(std::function<void(const node_event&)> handler) {
    impl_->set_event_handler(std::move(handler));
  }

  /// Called on the strand with every application message another member
  /// sent this node (send_application); an empty function removes it.
  void set_application_handler(std::function<void(node_id from, bytes payload)> handler) {
    impl_->set_application_handler(std::move(handler));
  }

  /// Sends `payload` to member `to`'s application handler on the stream lane
  /// (TCP: in order, but lost if the connection breaks, so a request/reply
  /// protocol on top needs its own timeouts). On the strand the
  /// error is returned (not_a_member, message_too_large, not_joined,
  /// shut_down); from another thread the send is posted and {} returned.
  std::error_code send_application(node_id to, bytes payload) {
    return impl_->send_application(to, std::move(payload));
  }

  /// The no-I/O core, to read placement and membership (holds(), ready(),
  /// placement(), live_members(), membership()). Only on the strand, like stats().
  const core_type& core() const { return impl_->core(); }

  /// Stops the timer and both transports; pending operations complete with
  /// errc::shut_down, and so do operations started afterwards. Immediate on
  /// the strand, otherwise as soon as the strand runs. Idempotent. It does
  /// not leave the cluster (peers see a crash): async_leave first for that.
  void close() {
    if (impl_) impl_->close();
  }

  /// This node's id (node_id::from_name of its name).
  node_id id() const noexcept { return impl_->id(); }
  /// Where peers send this node datagrams: the address to give others as a seed.
  endpoint packet_endpoint() const { return impl_->packet_endpoint(); }
  /// Where peers connect for the stream lane (advertised in its membership metadata).
  endpoint stream_endpoint() const { return impl_->stream_endpoint(); }
  /// The packet lane's counters (datagrams sent, refused, dropped); any thread.
  udp_transport_stats packet_transport_stats() const { return impl_->packet_stats(); }
  /// The stream lane's counters (frames, connections, queue drops); any thread.
  tcp_transport_stats stream_transport_stats() const { return impl_->stream_stats(); }
  /// The strand the node runs on.
  executor_type get_executor() const noexcept { return impl_->strand(); }

 private:
  explicit basic_node(std::shared_ptr<impl_type> impl) : impl_(std::move(impl)) {}

  static result<basic_node> make(asio::any_io_executor ex, const node_config& cfg,
                                 std::unique_ptr<detail::node::owned_durable<Storage>> owned, Storage& store,
                                 hint_store& hints, handoff_journal& journal) {
    cfg.validate();
    auto seeds = detail::node::parse_seeds(cfg.seeds);
    if (!seeds) return seeds.error();
    auto strand = asio::make_strand(ex);
    auto lanes = detail::node::open_lanes(strand, cfg);
    if (!lanes) return lanes.error();
    std::random_device rd;
    const std::uint64_t seed = (std::uint64_t{rd()} << 32) ^ rd();
    auto impl = std::make_shared<impl_type>(strand, detail::node::core_config(cfg), std::move(*lanes),
                                            std::move(*seeds), std::move(owned), store, hints, journal, seed);
    impl->start();
    return basic_node(std::move(impl));
  }

  template <class Token>
  auto initiate_write(detail::node::op_kind kind, std::string_view key, bytes value, version_vector context,
                      request_options options, Token&& token) {
    return asio::async_initiate<Token, detail::node::put_signature>(
        [kind](auto&& handler, std::shared_ptr<impl_type> impl, std::string k, bytes v, version_vector c,
               request_options o) {
          impl->initiate_put(kind, std::forward<decltype(handler)>(handler), std::move(k), std::move(v),
                             std::move(c), o);
        },
        token, impl_, std::string(key), std::move(value), std::move(context), options);
  }

  std::shared_ptr<impl_type> impl_;
};

/// The default node: one-hop placement (the consistent-hash ring every node
/// builds from membership), memory storage.
using node = basic_node<>;
/// A node whose placement routes through Chord finger tables (for large,
/// churning clusters).
using chord_node = basic_node<chord_placement>;

}  // namespace dhtkit

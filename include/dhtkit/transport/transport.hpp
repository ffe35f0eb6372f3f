/// @file
/// The transport concept: what every protocol driver needs to move bytes.
///
/// A transport moves whole messages (byte strings) between endpoints. It is
/// message-oriented, unreliable by contract -- a message may be lost,
/// duplicated, delayed or reordered, and protocols must cope -- and bounded:
/// a message larger than max_message_size() is refused on send with
/// errc::message_too_large and dropped on receive. send() never blocks; it
/// either accepts the message for (best-effort) delivery or returns why not.
/// Received messages are handed to the receive handler, one call per message,
/// on the transport's own execution context (the simulator's run loop, or the
/// Asio transport's executor).
///
/// It is a concept, not a virtual base, so the simulator and the socket
/// transports are interchangeable at compile time with no indirection:
///
/// @code
/// template <dhtkit::transport T>
/// void echo(T& t) {
///   t.set_receive_handler([&t](const typename T::endpoint_type& from,
///                              std::span<const std::byte> msg) { (void)t.send(from, msg); });
/// }
/// @endcode
#pragma once

#include <concepts>
#include <cstddef>
#include <functional>
#include <span>
#include <system_error>

namespace dhtkit {

/// Called once per received message. The span is valid only during the call.
template <class Endpoint>
using basic_receive_handler = std::function<void(const Endpoint& from, std::span<const std::byte> message)>;

/// What every driver needs to move messages; see transport.hpp for the contract.
template <class T>
concept transport = std::regular<typename T::endpoint_type> &&
    requires(T& t, const T& ct, const typename T::endpoint_type& to, std::span<const std::byte> message,
             basic_receive_handler<typename T::endpoint_type> handler) {
  // Where peers reach this transport.
  { ct.local_endpoint() } -> std::same_as<typename T::endpoint_type>;
  // The largest message send() accepts and receive delivers.
  { ct.max_message_size() } -> std::same_as<std::size_t>;
  // Non-blocking; an error only for what is known at once
  // (too large, queue full, shut down, unroutable).
  { t.send(to, message) } -> std::same_as<std::error_code>;
  t.set_receive_handler(std::move(handler));
  // Stop sending and receiving; later sends return errc::shut_down.
  t.close();
};

}  // namespace dhtkit

/// @file
/// dhtkit: everything in one include.
///
/// Each component header also stands alone and includes only what it uses, so
/// a program that needs only the ring never compiles Asio:
///
/// @code
/// #include <dhtkit/dhtkit.hpp>            // everything
/// #include <dhtkit/ring/ring.hpp>         // just the consistent-hash ring
/// @endcode
#pragma once

#include "dhtkit/cache/store.hpp"
#include "dhtkit/cache/store_config.hpp"
#include "dhtkit/chord/router.hpp"
#include "dhtkit/clock/dotted_version_vector.hpp"
#include "dhtkit/clock/lamport_clock.hpp"
#include "dhtkit/clock/vector_clock.hpp"
#include "dhtkit/core/endpoint.hpp"
#include "dhtkit/core/error.hpp"
#include "dhtkit/core/hash.hpp"
#include "dhtkit/core/node_id.hpp"
#include "dhtkit/core/random.hpp"
#include "dhtkit/core/result.hpp"
#include "dhtkit/core/time.hpp"
#include "dhtkit/driver/asio_driver.hpp"
#include "dhtkit/driver/dispatcher.hpp"
#include "dhtkit/driver/protocol_core.hpp"
#include "dhtkit/driver/sim_driver.hpp"
#include "dhtkit/membership/config.hpp"
#include "dhtkit/membership/phi_accrual.hpp"
#include "dhtkit/membership/swim.hpp"
#include "dhtkit/node/node.hpp"
#include "dhtkit/node/sim_node.hpp"
#include "dhtkit/replication/merkle.hpp"
#include "dhtkit/replication/replica.hpp"
#include "dhtkit/replication/storage.hpp"
#include "dhtkit/replication/versioned_value.hpp"
#include "dhtkit/ring/ring.hpp"
#include "dhtkit/transport/asio_tcp.hpp"
#include "dhtkit/transport/asio_udp.hpp"
#include "dhtkit/transport/datagram_cipher.hpp"
#include "dhtkit/transport/sim.hpp"
#include "dhtkit/transport/transport.hpp"
#include "dhtkit/transport/wire.hpp"
#include "dhtkit/transport/wire_tags.hpp"

/// @namespace dhtkit
/// Everything public: the vocabulary (node_id, endpoint, errc, result, time), clocks, the ring,
/// the transports, the drivers and the replication core.
///
/// @namespace dhtkit::chord
/// The Chord router (chord/router.hpp) and its configuration.
///
/// @namespace dhtkit::membership
/// SWIM membership with Lifeguard (membership/swim.hpp) and the phi accrual detector.
///
/// @namespace dhtkit::sim
/// The deterministic network simulator (transport/sim.hpp) and its core driver.
///
/// @namespace dhtkit::wire
/// The wire codec (transport/wire.hpp) and the registry of type tags.
///
/// @namespace dhtkit::wire::tags
/// Each protocol's range of wire type tags (transport/wire_tags.hpp).
///
/// @namespace dhtkit::cache
/// The bounded cache store behind dhtkit-cache (cache/store.hpp).

// dhtkit: everything in one include.
//
// Each component header also stands alone and includes only what it uses, so
// a program that needs only the ring never compiles Asio:
//
//   #include <dhtkit/dhtkit.hpp>            // everything
//   #include <dhtkit/ring/ring.hpp>         // just the consistent-hash ring
#pragma once

#include "dhtkit/clock/lamport_clock.hpp"
#include "dhtkit/clock/vector_clock.hpp"
#include "dhtkit/core/endpoint.hpp"
#include "dhtkit/core/error.hpp"
#include "dhtkit/core/hash.hpp"
#include "dhtkit/core/node_id.hpp"
#include "dhtkit/core/result.hpp"
#include "dhtkit/core/time.hpp"
#include "dhtkit/ring/ring.hpp"
#include "dhtkit/transport/asio_tcp.hpp"
#include "dhtkit/transport/asio_udp.hpp"
#include "dhtkit/transport/sim.hpp"
#include "dhtkit/transport/transport.hpp"
#include "dhtkit/transport/wire.hpp"

/// @file
/// Configuration of the SWIM membership core (dhtkit/membership/swim.hpp).
///
/// One plain struct with a comment on every default and three presets in the
/// manner of memberlist's DefaultLANConfig / DefaultWANConfig /
/// DefaultLocalConfig. Lifeguard's refinements (local health, dynamic
/// suspicion timeout with nacks, buddy system) are switches, so plain SWIM and
/// SWIM + Lifeguard can be run side by side. basic_swim validates the struct
/// once, at construction (std::invalid_argument with the reason).
///
/// @code
/// dhtkit::membership::swim_config config = dhtkit::membership::swim_config::lan();
/// config.max_members = 256;                    // bound the group
/// dhtkit::membership::swim_config plain = dhtkit::membership::swim_config::lan().plain_swim();
/// config.validate();                           // throws std::invalid_argument if inconsistent
/// @endcode
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "dhtkit/core/time.hpp"

namespace dhtkit::membership {

/// Configuration of basic_swim, after memberlist's: periods, Lifeguard and bounds.
struct swim_config {
  // ---- failure detection (SWIM) -------------------------------------------
  /// One protocol period: how often a member probes one other member, chosen
  /// round-robin over a list reshuffled on every pass. memberlist LAN: 1 s.
  duration probe_interval = seconds(1);
  /// How long a direct ping waits for its ack before asking helpers (ping-req).
  /// memberlist LAN: 500 ms; must be below probe_interval.
  duration probe_timeout = millis(500);
  /// k: members asked to ping a silent target on our behalf. memberlist: 3.
  std::size_t indirect_checks = 3;
  /// Suspicion timeout floor Min = suspicion_multiplier x max(1, log10 N) x
  /// probe_interval, the time a suspect has to refute. memberlist: 4.
  std::size_t suspicion_multiplier = 4;
  /// Lifeguard's ceiling Max = this x Min, the timeout while nobody confirms the
  /// suspicion. memberlist: 6.
  std::size_t suspicion_max_timeout_multiplier = 6;

  // ---- dissemination ------------------------------------------------------
  /// lambda: each update is piggybacked at most lambda x ceil(log10(N + 1))
  /// times. memberlist: 4.
  std::size_t retransmit_multiplier = 4;
  /// Pending updates are also sent on their own, to gossip_nodes random members
  /// every gossip_interval -- only while there is something to send, so a quiet
  /// group pays nothing. memberlist LAN: 200 ms to 3 nodes.
  duration gossip_interval = millis(200);
  std::size_t gossip_nodes = 3;
  /// Dead members still receive gossip this long, so a falsely declared member
  /// learns it and refutes. memberlist: 30 s.
  duration gossip_to_the_dead_time = seconds(30);
  /// Full-state exchange with one random live member, for joins and to repair
  /// anything gossip missed. Scaled up above 32 members like memberlist's
  /// pushPullScale (x (ceil(log2(N / 32)) + 1)). memberlist LAN: 30 s.
  duration push_pull_interval = seconds(30);
  /// How often a push-pull goes to one random *dead* member instead, so the two
  /// sides of a healed partition find each other (serf's reconnect). 30 s.
  duration reconnect_interval = seconds(30);
  /// Dead and left members are forgotten after this (serf's reconnect_timeout
  /// is 24 h); until then they are reconnect candidates.
  duration dead_retention = std::chrono::hours(24);
  /// A node that knows no other member re-sends its join push-pull this often.
  duration join_retry_interval = seconds(1);

  // ---- Lifeguard (Dadgar et al. 2017) -------------------------------------
  /// Local health multiplier: a member that misses acks and nacks (probably
  /// because it is itself slow) stretches its own probe interval and timeout
  /// up to awareness_max_multiplier times. memberlist: on, 8.
  bool local_health = true;
  std::size_t awareness_max_multiplier = 8;
  /// Suspicion timeout starts at Max and shrinks towards Min with every
  /// independent confirmation (log(C+1)/log(K+1)); off = plain SWIM's fixed Min.
  bool dynamic_suspicion = true;
  /// ping-req helpers answer nack when the target stays silent, so the prober
  /// can tell "target down" from "I am not hearing anyone". On in Lifeguard.
  bool nacks = true;
  /// A ping to a suspected member carries the suspicion, so the member learns
  /// of it (and refutes) at once. On in Lifeguard. Here every message to a
  /// suspect carries it, and the suspect answers the accuser directly, so a
  /// refutation that gossip failed to deliver still reaches the members that
  /// would otherwise time out (see basic_swim's add_buddy).
  bool buddy_system = true;

  // ---- bounds -------------------------------------------------------------
  /// Largest message the core emits or accepts. 1400 bytes fits a UDP datagram
  /// under a 1500-byte MTU (memberlist's UDPBufferSize); push-pull state is cut
  /// into datagrams of this size.
  std::size_t max_message_size = 1400;
  /// Most members (of any state) a node keeps. Alive updates beyond it are
  /// ignored and counted; dead and left members are evicted first.
  std::size_t max_members = 4096;
  /// Largest per-member user metadata, in bytes. memberlist MetaMaxSize: 512.
  std::size_t max_metadata_bytes = 512;
  /// An update may raise a member's known incarnation by at most this much, so
  /// a hostile update cannot push a member to the top of the range, where it
  /// could no longer refute anything.
  std::uint32_t max_incarnation_jump = 1U << 16;
  /// ping-req requests this node relays at once; more are ignored and counted.
  std::size_t max_pending_relays = 64;
  /// Push-pull answers per probe interval (each is up to max_members of state):
  /// a bound on what a flood of join requests can make a node send.
  std::size_t max_push_pull_replies = 8;
  /// Refutations answered straight back to a sender that accused us (buddy
  /// system), per probe interval; a group's genuine accusers of one member in
  /// one period are a handful, so more would only serve a flood.
  std::size_t max_direct_refutations = 16;
  /// Messages waiting in the outbox for the driver; beyond it new ones are
  /// dropped and counted (a driver that never drains must not grow memory).
  std::size_t max_outbox_messages = 4096;

  /// memberlist's DefaultLANConfig values.
  static swim_config lan() { return swim_config{}; }

  /// memberlist's DefaultWANConfig: long periods for high-latency links.
  static swim_config wan() {
    swim_config c;
    c.probe_interval = seconds(5);            // memberlist WAN: 5 s
    c.probe_timeout = seconds(3);             // memberlist WAN: 3 s
    c.suspicion_multiplier = 6;               // memberlist WAN: 6
    c.gossip_interval = millis(500);          // memberlist WAN: 500 ms
    c.gossip_nodes = 4;                       // memberlist WAN: 4
    c.gossip_to_the_dead_time = seconds(60);  // memberlist WAN: 60 s
    c.push_pull_interval = seconds(60);       // memberlist WAN: 60 s
    c.reconnect_interval = seconds(60);       // twice as patient as LAN
    c.join_retry_interval = seconds(5);       // one probe interval
    return c;
  }

  /// memberlist's DefaultLocalConfig: loopback or one rack, fast detection.
  static swim_config local() {
    swim_config c;
    c.probe_interval = millis(200);   // memberlist local: 1 s; faster here so tests over sockets stay short
    c.probe_timeout = millis(100);    // memberlist local: 200 ms
    c.suspicion_multiplier = 3;       // memberlist local: 3
    c.retransmit_multiplier = 2;      // memberlist local: 2
    c.gossip_interval = millis(100);  // memberlist local: 100 ms
    c.gossip_to_the_dead_time = seconds(15);  // memberlist local: 15 s
    c.push_pull_interval = seconds(5);        // memberlist local: 15 s
    c.reconnect_interval = seconds(5);        // as push-pull
    c.join_retry_interval = millis(200);      // one probe interval
    c.max_members = 256;                      // a local group is small
    return c;
  }

  /// The same configuration with every Lifeguard refinement switched off: the
  /// SWIM of the paper (with its suspicion mechanism), for comparisons.
  swim_config plain_swim() const {
    swim_config c = *this;
    c.local_health = false;
    c.dynamic_suspicion = false;
    c.nacks = false;
    c.buddy_system = false;
    return c;
  }

  /// Throws std::invalid_argument naming the first inconsistent field.
  void validate() const {
    auto fail = [](const std::string& why) {
      throw std::invalid_argument("dhtkit::membership::swim_config: " + why);
    };
    const duration one_day = std::chrono::hours(24);
    if (probe_interval <= duration::zero() || probe_interval > one_day)
      fail("probe_interval must be in (0, 24 h]");
    if (probe_timeout <= duration::zero() || probe_timeout >= probe_interval)
      fail("probe_timeout must be positive and below probe_interval");
    if (indirect_checks > 16) fail("indirect_checks must be at most 16");
    if (suspicion_multiplier < 1 || suspicion_multiplier > 100)
      fail("suspicion_multiplier must be in [1, 100]");
    if (suspicion_max_timeout_multiplier < 1 || suspicion_max_timeout_multiplier > 100)
      fail("suspicion_max_timeout_multiplier must be in [1, 100]");
    if (retransmit_multiplier < 1 || retransmit_multiplier > 100)
      fail("retransmit_multiplier must be in [1, 100]");
    if (gossip_interval <= duration::zero() || gossip_interval > one_day)
      fail("gossip_interval must be in (0, 24 h]");
    if (gossip_nodes > 64) fail("gossip_nodes must be at most 64");
    if (gossip_to_the_dead_time < duration::zero()) fail("gossip_to_the_dead_time must not be negative");
    if (push_pull_interval <= duration::zero() || push_pull_interval > one_day)
      fail("push_pull_interval must be in (0, 24 h]");
    if (reconnect_interval <= duration::zero() || reconnect_interval > one_day)
      fail("reconnect_interval must be in (0, 24 h]");
    if (dead_retention <= duration::zero() || dead_retention > 30 * one_day)
      fail("dead_retention must be in (0, 30 days]");
    if (join_retry_interval <= duration::zero() || join_retry_interval > one_day)
      fail("join_retry_interval must be in (0, 24 h]");
    if (awareness_max_multiplier < 1 || awareness_max_multiplier > 64)
      fail("awareness_max_multiplier must be in [1, 64]");
    if (max_message_size < 256 || max_message_size > 65507)
      fail("max_message_size must be in [256, 65507] (a UDP datagram)");
    if (max_members < 2 || max_members > 65536) fail("max_members must be in [2, 65536]");
    if (max_metadata_bytes > max_message_size / 2)
      fail("max_metadata_bytes must be at most half of max_message_size, so an update fits a message");
    if (max_incarnation_jump < 1) fail("max_incarnation_jump must be at least 1");
    if (max_pending_relays < 1) fail("max_pending_relays must be at least 1");
    if (max_push_pull_replies < 1) fail("max_push_pull_replies must be at least 1");
    if (max_direct_refutations < 1) fail("max_direct_refutations must be at least 1");
    if (max_outbox_messages < 16) fail("max_outbox_messages must be at least 16");
  }
};

}  // namespace dhtkit::membership

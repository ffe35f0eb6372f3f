// A dhtkit-cache node of a cluster: the DHT node (membership, placement,
// replication, rebalancing) under the cache, and the cluster_hooks the
// client sessions hand their commands to.
//
//   auto engine = make_cluster_engine(opt, server.context());   // opens the node's sockets
//   if (auto error = engine->join()) ...                       // bounded by the join timeout
//   server.context().cluster = engine.get();
//   server.run();                                               // on SIGTERM: engine->leave(...)
//
// Where a command runs: a command on one key goes to the key's coordinator,
// the first live node of its preference list (from this node's own view of
// the placement), as an application message of the DHT node; the
// coordinator (coordinator.hpp) runs it and sends the reply back. With R = 1
// the coordinator reads its own replica, so a client reads its own writes
// whichever node it talks to: every command on a key, reads included, is
// served by the one node that applied that key's last write. flush_all goes
// to every live member. Threads: the DHT node and everything here run on one
// io_context thread of the engine's; client sessions (worker threads) reach
// it through dispatch(), which posts.
#pragma once

#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>

#include "cluster/coordinator.hpp"
#include "cluster/forward_messages.hpp"
#include "cluster/gossip_keyring.hpp"
#include "cluster/node_settings.hpp"
#include "dhtkit/node/node.hpp"
#include "protocol/cluster_hooks.hpp"
#include "protocol/server_context.hpp"
#include "server/log.hpp"
#include "server/options.hpp"

namespace dhtkit_cache::cluster {

// The engine as the program drives it, whatever its placement.
class cluster_engine : public cluster_hooks {
 public:
  // Joins through --join (or founds a cluster); an error message on failure.
  virtual std::optional<std::string> join() = 0;
  // Graceful leave (hands this node's ranges off); done(what happened) runs
  // on the engine's thread.
  virtual void leave(std::function<void(std::string outcome)> done) = 0;
  // Where the node listens for peers (UDP gossip; TCP data).
  virtual std::string describe() const = 0;
};

template <class Node>
class engine final : public cluster_engine {
 public:
  engine(const options& opt, server_context& ctx)
      : opt_(opt),
        ctx_(ctx),
        storage_(storage_config(opt)),
        gossip_keys_(opt, ctx.verbosity),
        node_(open_node(with_cipher(make_node_config(opt), gossip_keys_.cipher()))),
        coordinator_(*node_, storage_, ctx, coordinator_settings_of(opt), state_),
        timer_(node_->get_executor()) {
    self_name_ = opt.cluster_name;
    node_->set_event_handler([this](const dhtkit::node_event& e) { on_event(e); });
    node_->set_application_handler([this](dhtkit::node_id from, dhtkit::bytes b) { on_message(from, b); });
    gossip_keys_.start(io_, node_->get_executor());
    std::promise<void> ran;
    ran_ = ran.get_future();
    thread_ = std::thread([this, ran = std::move(ran)]() mutable {
      io_.run();
      ran.set_value();
    });
  }

  engine(const engine&) = delete;
  engine& operator=(const engine&) = delete;

  ~engine() override {
    asio::post(node_->get_executor(), [this] {
      timer_.cancel();
      gossip_keys_.close();
      node_->close();
      for (auto& [id, p] : forwards_) p.done(p.noreply ? std::string() : "SERVER_ERROR shutting down\r\n");
      forwards_.clear();
      for (auto& [id, p] : flushes_) p.done(p.noreply ? std::string() : "SERVER_ERROR shutting down\r\n");
      flushes_.clear();
    });
    guard_.reset();
    // The node's close cancels its sockets and timers, but an operation it
    // raced with (seen in the fault tests: after a graceful leave under load,
    // the context kept waiting on a socket, and the process never exited) can
    // keep the context running. Shutdown is bounded: what is still pending
    // after shutdown_drain is dropped unrun -- the process is exiting.
    if (ran_.valid() && ran_.wait_for(shutdown_drain) != std::future_status::ready) io_.stop();
    if (thread_.joinable()) thread_.join();
  }

  std::optional<std::string> join() override {
    std::promise<std::error_code> joined;
    auto f = joined.get_future();
    node_->async_join([&joined](std::error_code ec) { joined.set_value(ec); });
    const auto ec = f.get();  // the node's join_timeout bounds it
    if (ec) return "cannot join the cluster: " + ec.message();
    asio::post(node_->get_executor(), [this] {
      // A node that joined others may be one restarted empty within
      // dead_member_grace, holding ranges no handoff refilled: for a while
      // its misses are confirmed by a quorum read (which also repairs it).
      if (!opt_.join.empty()) {
        const auto& cfg = node_->core().config();
        state_.young = true;
        young_until_ = std::chrono::steady_clock::now() +
                       std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                           cfg.dead_member_grace + cfg.handoff.not_ready_timeout) +
                       std::chrono::seconds(30);
      }
      refresh_snapshot();
      tick();
    });
    return std::nullopt;
  }

  void leave(std::function<void(std::string)> done) override {
    asio::post(node_->get_executor(), [this, done = std::move(done)]() mutable {
      auto live = node_->core().live_members();
      std::erase(live, node_->id());
      // The last node has no one to hand its ranges to: waiting out
      // leave_timeout would only delay the exit.
      if (live.empty()) return done("left: the last node of its cluster, its items go with it");
      node_->async_leave([done = std::move(done)](std::error_code ec) {
        done(ec ? "left before every range was handed off (" + ec.message() + ")"
                : "left, ranges handed off");
      });
    });
  }

  std::string describe() const override {
    return self_name_ + " on " + node_->packet_endpoint().to_string() + " (data " +
           node_->stream_endpoint().to_string() + ")";
  }

  // ---- cluster_hooks (any thread) --------------------------------------------

  void dispatch(deferred_request r, std::function<void(std::string)> done) override {
    asio::post(node_->get_executor(), [this, r = std::move(r), done = std::move(done)]() mutable {
      if (r.what == deferred_request::kind::flush_all) return flush_all(r, std::move(done));
      if (r.what == deferred_request::kind::replica) return done(replica_report(r.key));
      route(std::move(r.key), std::move(r.bytes), r.noreply, std::move(done));
    });
  }

  std::string stats_lines() const override {
    std::lock_guard lock(snapshot_mutex_);
    return snapshot_.lines;
  }
  std::uint64_t items() const override {
    std::lock_guard lock(snapshot_mutex_);
    return snapshot_.items;
  }
  std::uint64_t item_bytes() const override {
    std::lock_guard lock(snapshot_mutex_);
    return snapshot_.bytes;
  }

 private:
  struct pending_forward {
    std::function<void(std::string)> done;
    std::chrono::steady_clock::time_point deadline;
    dhtkit::node_id to{};
    bool noreply = false;
  };
  struct pending_flush {
    std::function<void(std::string)> done;
    std::chrono::steady_clock::time_point deadline{};
    std::size_t waiting = 0;  // acknowledgements this round still waits for
    std::size_t members = 0;  // nodes this round went to, this one included
    int round = 1;            // 1: learn the highest clock; 2: apply it everywhere
    std::uint64_t stamp = 0;  // the highest stamp applied so far
    std::uint64_t at_ms = 0;  // a delayed flush's time; 0 at once
    bool noreply = false;
  };
  struct snapshot {
    std::string lines;
    std::uint64_t items = 0, bytes = 0;
  };

  static dhtkit::memory_storage_config storage_config(const options& opt) {
    dhtkit::memory_storage_config c;
    c.max_keys = opt.cluster_max_keys();
    return c;
  }
  static coordinator_settings coordinator_settings_of(const options& opt) {
    coordinator_settings s;
    s.n = opt.replicas;
    s.r = opt.read_quorum;
    s.w = opt.write_quorum;
    s.max_value = opt.max_item_size;
    return s;
  }
  static dhtkit::node_config with_cipher(dhtkit::node_config cfg,
                                         std::shared_ptr<const dhtkit::datagram_cipher> cipher) {
    cfg.packet_cipher = std::move(cipher);
    return cfg;
  }
  std::unique_ptr<Node> open_node(const dhtkit::node_config& cfg) {
    auto n = Node::open(io_.get_executor(), cfg, storage_, hints_, journal_);
    if (!n) {
      std::string seeds;
      for (const auto& s : cfg.seeds) seeds += (seeds.empty() ? "" : ",") + s;
      throw std::runtime_error("cannot start the cluster node (--cluster-port at " + cfg.listen +
                               (seeds.empty() ? "" : ", --join " + seeds) + "): " + n.error().message());
    }
    return std::make_unique<Node>(std::move(*n));
  }

  // ---- on the strand ---------------------------------------------------------

  // The coordinator of `key`: the first live node of its preference list.
  // A node that is leaving coordinates nothing (its DHT node takes no more
  // operations): it names the next live node instead.
  std::optional<dhtkit::node_id> coordinator_of(const std::string& key) const {
    const auto& core = node_->core();
    const bool leaving = core.state() != dhtkit::node_state::joined;
    const auto list =
        core.placement().preference_list(core.placement().position(key), core.config().placement.list_length);
    const auto live = core.live_members();
    for (const auto id : list) {
      if (leaving && id == node_->id()) continue;
      if (std::binary_search(live.begin(), live.end(), id)) return id;
    }
    return std::nullopt;
  }

  // A client's command (final_hop false) goes to the coordinator in this
  // node's view. A command another node forwarded here runs here, unless
  // this node is leaving: then it goes on once more, marked final, so a
  // command crosses at most two hops whatever the views.
  void route(std::string key, std::string bytes, bool noreply, std::function<void(std::string)> done,
             bool forwarded = false) {
    const bool leaving = node_->core().state() != dhtkit::node_state::joined;
    if (forwarded && !leaving)
      return coordinator_.run(std::move(key), std::move(bytes), noreply, std::move(done));
    const auto target = coordinator_of(key);
    if (!target || *target == node_->id()) {
      if (leaving) {
        ++state_.requests_failed;
        return done(noreply ? std::string() : "SERVER_ERROR this node is leaving the cluster\r\n");
      }
      return coordinator_.run(std::move(key), std::move(bytes), noreply, std::move(done));
    }
    forward_message m;
    m.kind = forward_kind::request;
    m.id = next_id_++;
    m.noreply = noreply;
    m.final_hop = forwarded || leaving;
    m.key = std::move(key);
    m.body = std::move(bytes);
    if (forwards_.size() >= max_forwards) {
      ++state_.requests_failed;
      return done(noreply ? std::string() : "SERVER_ERROR too many requests in flight to other nodes\r\n");
    }
    if (auto ec = node_->send_application(*target, encode_forward(m))) {
      // It left the membership an instant ago: run it here rather than fail.
      if (leaving) {
        ++state_.requests_failed;
        return done(noreply ? std::string() : "SERVER_ERROR this node is leaving the cluster\r\n");
      }
      return coordinator_.run(std::move(m.key), std::move(m.body), noreply, std::move(done));
    }
    ++requests_forwarded_;
    forwards_.emplace(
        m.id, pending_forward{std::move(done), std::chrono::steady_clock::now() + forward_timeout(), *target,
                              noreply});
  }

  void on_message(dhtkit::node_id from, const dhtkit::bytes& b) {
    auto m = decode_forward(b, 250);
    if (!m) {
      ++malformed_messages_;
      return;
    }
    switch (m->kind) {
      case forward_kind::request: {
        ++requests_served_for_others_;
        const std::uint64_t id = m->id;
        auto reply_to = [this, from, id](std::string reply) {
          forward_message r;
          r.kind = forward_kind::reply;
          r.id = id;
          r.body = std::move(reply);
          (void)node_->send_application(from, encode_forward(r));  // lost: the sender times out
        };
        if (m->final_hop) {
          coordinator_.run(std::move(m->key), std::move(m->body), m->noreply, std::move(reply_to));
        } else {
          route(std::move(m->key), std::move(m->body), m->noreply, std::move(reply_to), true);
        }
        break;
      }
      case forward_kind::reply: {
        auto it = forwards_.find(m->id);
        if (it == forwards_.end() || it->second.to != from) return;  // late, or not whom we asked
        auto done = std::move(it->second.done);
        forwards_.erase(it);
        done(std::move(m->body));
        break;
      }
      case forward_kind::flush:
      case forward_kind::flush_exact: {
        forward_message ack;
        ack.flush_stamp = apply_flush(m->flush_stamp, m->flush_at_ms, m->kind == forward_kind::flush_exact);
        ack.kind = forward_kind::flush_ack;
        ack.id = m->id;
        (void)node_->send_application(from, encode_forward(ack));
        break;
      }
      case forward_kind::flush_ack: {
        auto it = flushes_.find(m->id);
        if (it == flushes_.end() || it->second.waiting == 0) return;
        it->second.stamp = std::max(it->second.stamp, m->flush_stamp);
        if (--it->second.waiting == 0) {
          auto p = std::move(it->second);
          flushes_.erase(it);
          flush_round_done(m->id, std::move(p));
        }
        break;
      }
    }
  }

  // flush_all across the cluster (cluster/flush.hpp).
  void flush_all(const deferred_request& r, std::function<void(std::string)> done);
  void flush_round(std::uint64_t id, pending_flush p);
  void flush_round_done(std::uint64_t id, pending_flush p);
  std::uint64_t apply_flush(std::uint64_t stamp, std::uint64_t at_ms, bool exact = false);

  void on_event(const dhtkit::node_event& e) {
    using k = dhtkit::node_event_kind;
    const char* state = nullptr;
    switch (e.kind) {
      case k::member_joined:
      case k::member_alive:
        state = "alive";
        break;
      case k::member_suspect:
        state = "suspect";
        break;
      case k::member_dead:
        state = "dead";
        break;
      case k::member_left:
        state = "left";
        break;
      default:
        return;
    }
    if (!e.name.empty()) {
      // A member gone (dead, left) or back from suspect, dead or left: the
      // keys it coordinated move, to or from a node whose copy may be behind
      // (see coordinator_state::membership_changed).
      const auto was = members_.find(e.name);
      const std::string now_state = state;
      const bool back = was != members_.end() && was->second != "alive" && now_state == "alive";
      if (back || now_state == "dead" || now_state == "left") {
        state_.membership_changed = true;
        membership_changed_until_ = std::chrono::steady_clock::now() + membership_changed_period;
      }
      members_[e.name] = state;
    }
    log_line(ctx_.verbosity, log_level::warning, "cluster: %s is %s", e.name.c_str(), state);
  }

  // Timers: deadlines, the stats snapshot, the expiry sweep (cluster/upkeep.hpp).
  void tick();
  void sweep();
  void refresh_snapshot();
  // `stats replica <key>` (stats_snapshot.hpp).
  std::string replica_report(const std::string& key) const;

  std::chrono::steady_clock::duration forward_timeout() const {
    // The coordinator's read and write each have the request timeout.
    return std::chrono::duration_cast<std::chrono::steady_clock::duration>(
        2 * node_->core().config().replication.request_timeout + std::chrono::milliseconds(500));
  }

  static constexpr std::size_t max_forwards = 65536;
  static constexpr std::chrono::seconds shutdown_drain{2};  // see ~engine
  // How long after a member goes or comes back every load is a quorum read.
  // Hinted handoff brings back what the others kept for a returning node
  // within a few of its rounds, anti-entropy (a slice every 5 s here) the
  // rest: in the fault soak, replicas converged within 17 s of an isolation
  // healing (README, "Faults on real processes"); 30 s leaves room.
  static constexpr std::chrono::seconds membership_changed_period{30};

  options opt_;
  server_context& ctx_;
  std::string self_name_;
  asio::io_context io_{1};
  asio::executor_work_guard<asio::io_context::executor_type> guard_ = asio::make_work_guard(io_);
  dhtkit::memory_storage storage_;
  dhtkit::hint_store hints_;
  dhtkit::handoff_journal journal_;
  gossip_keyring gossip_keys_;  // before node_: the node seals with its keyring
  std::unique_ptr<Node> node_;
  coordinator_state state_;
  coordinator<Node> coordinator_;
  asio::steady_timer timer_;
  std::thread thread_;
  std::future<void> ran_;  // ready once thread_'s io_.run() has returned

  std::uint64_t next_id_ = 1;
  std::unordered_map<std::uint64_t, pending_forward> forwards_;
  std::unordered_map<std::uint64_t, pending_flush> flushes_;
  std::optional<std::pair<std::uint64_t, std::uint64_t>> delayed_flush_;  // stamp, when (ms)
  std::map<std::string, std::string> members_;                            // name -> state, from events
  std::uint64_t ticks_ = 0;
  std::chrono::steady_clock::time_point young_until_{};  // coordinator_state::young until then
  std::chrono::steady_clock::time_point
      membership_changed_until_{};  // coordinator_state::membership_changed until then
  std::uint64_t requests_forwarded_ = 0, requests_served_for_others_ = 0;
  std::uint64_t malformed_messages_ = 0, expired_removed_ = 0;

  mutable std::mutex snapshot_mutex_;
  snapshot snapshot_;
};

}  // namespace dhtkit_cache::cluster

#include "cluster/flush.hpp"
#include "cluster/stats_snapshot.hpp"
#include "cluster/upkeep.hpp"

namespace dhtkit_cache::cluster {

// The engine for --placement; throws std::runtime_error when the cluster
// port cannot be bound, std::invalid_argument for a bad configuration.
inline std::unique_ptr<cluster_engine> make_cluster_engine(const options& opt, server_context& ctx) {
  if (opt.placement == "chord") return std::make_unique<engine<dhtkit::chord_node>>(opt, ctx);
  return std::make_unique<engine<dhtkit::node>>(opt, ctx);
}

}  // namespace dhtkit_cache::cluster

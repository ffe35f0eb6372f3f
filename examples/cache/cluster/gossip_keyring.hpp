// --gossip-keyring: the cluster node's UDP gossip sealed with a dhtkit::keyring
// (AES-GCM), and key rotation while it runs. The keys come from a file, one
// base64 key per line, the first one primary (dhtkit/security/keyring_file.hpp);
// SIGHUP reads the file again and the node seals and opens with the new keys
// from its next datagram on. A file that no longer reads keeps the keys in
// use, and says why. Rotation (README, "Securing a cluster"): add the new
// key as a second line and SIGHUP every node; then move it to the first line
// and SIGHUP every node; then delete the old line and SIGHUP every node.
//
//   gossip_keyring keys(opt, verbosity);
//   cfg.packet_cipher = keys.cipher();          // null without --gossip-keyring
//   ... open the node with cfg ...
//   keys.start(io, node.get_executor());        // from now on SIGHUP (on io) reloads the file
//
// Threads: SIGHUP is taken on the engine's io_context, which the node's one
// thread runs; the file is read there and the new keys are applied on the
// node's strand, where `stats cluster` reads them too. The keyring itself
// is safe from any thread (it has a mutex), so a datagram never sees half a
// change.
#pragma once

#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/signal_set.hpp>
#include <atomic>
#include <csignal>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "dhtkit/transport/datagram_cipher.hpp"
#include "server/log.hpp"
#include "server/options.hpp"

#ifdef DHTKIT_CACHE_KEYRING
#include "dhtkit/security/keyring.hpp"
#include "dhtkit/security/keyring_file.hpp"
#endif

namespace dhtkit_cache::cluster {

#ifdef DHTKIT_CACHE_KEYRING

class gossip_keyring {
 public:
  // The keys --gossip-keyring read at start (options.hpp checked the file);
  // nothing at all without it (SIGHUP then keeps its default meaning).
  gossip_keyring(const options& opt, const std::atomic<int>& verbosity)
      : path_(opt.gossip_keyring), verbosity_(verbosity) {
    if (!opt.gossip_keys.empty()) ring_ = std::make_shared<dhtkit::keyring>(opt.gossip_keys);
  }

  // Takes SIGHUP on `io` and applies what it reads on `strand` (the node's).
  template <class Strand>
  void start(asio::io_context& io, Strand strand) {
    if (!ring_) return;
    apply_ = [strand](std::function<void()> f) { asio::post(strand, std::move(f)); };
    log_line(verbosity_, log_level::error, "gossip keyring %s: %s", path_.c_str(),
             describe(ring_->keys()).c_str());
    hup_ = std::make_unique<asio::signal_set>(io, SIGHUP);
    wait();
  }

  std::shared_ptr<const dhtkit::datagram_cipher> cipher() const { return ring_; }

  // Stops listening for SIGHUP (before the io_context stops). On the io_context's thread.
  void close() {
    if (!hup_) return;
    std::error_code ignored;
    hup_->cancel(ignored);
  }

  // For `stats cluster`, on the node's strand.
  std::size_t keys() const { return ring_ ? ring_->size() : 0; }
  std::string primary() const { return ring_ ? dhtkit::keyring::fingerprint(ring_->keys().front()) : "none"; }
  std::uint64_t reloads() const { return reloads_; }
  std::uint64_t reload_errors() const { return reload_errors_; }

 private:
  void wait() {
    hup_->async_wait([this](std::error_code ec, int) {
      if (ec) return;  // cancelled: the engine is closing
      reload();
      wait();
    });
  }

  void reload() {
    auto file = dhtkit::read_keyring_file(path_);
    apply_([this, file = std::move(file)]() mutable {
      const auto before = ring_->keys();
      if (!file.ok()) {
        ++reload_errors_;
        log_line(verbosity_, log_level::error, "gossip keyring: SIGHUP: %s; keeping %s", file.error.c_str(),
                 describe(before).c_str());
        return;
      }
      if (auto ec = ring_->replace(file.keys)) {  // the file was checked: only a bound can refuse it
        ++reload_errors_;
        log_line(verbosity_, log_level::error, "gossip keyring: SIGHUP: %s: %s; keeping %s", path_.c_str(),
                 ec.message().c_str(), describe(before).c_str());
        return;
      }
      ++reloads_;
      log_line(verbosity_, log_level::error, "gossip keyring reload %llu from %s: %s; now %s",
               static_cast<unsigned long long>(reloads_), path_.c_str(), changes(before, file.keys).c_str(),
               describe(file.keys).c_str());
    });
  }

  using keys_type = std::vector<dhtkit::keyring::key_type>;

  static bool holds(const keys_type& keys, const dhtkit::keyring::key_type& k) {
    for (const auto& x : keys)
      if (x == k) return true;
    return false;
  }

  // "2 keys, primary 1a2b3c4d, also 5e6f7a8b": fingerprints, never the keys.
  static std::string describe(const keys_type& keys) {
    std::string s = std::to_string(keys.size()) + (keys.size() == 1 ? " key" : " keys");
    for (std::size_t i = 0; i < keys.size(); ++i)
      s += (i == 0 ? ", primary " : i == 1 ? ", also " : " ") + dhtkit::keyring::fingerprint(keys[i]);
    return s;
  }

  static std::string changes(const keys_type& before, const keys_type& after) {
    std::string s;
    auto add = [&s](const std::string& part) { s += (s.empty() ? "" : ", ") + part; };
    for (const auto& k : after)
      if (!holds(before, k)) add("added " + dhtkit::keyring::fingerprint(k));
    for (const auto& k : before)
      if (!holds(after, k)) add("removed " + dhtkit::keyring::fingerprint(k));
    if (before.empty() || after.front() != before.front())
      add("primary now " + dhtkit::keyring::fingerprint(after.front()));
    return s.empty() ? "unchanged" : s;
  }

  std::string path_;
  const std::atomic<int>& verbosity_;
  std::shared_ptr<dhtkit::keyring> ring_;
  std::function<void(std::function<void()>)> apply_;
  std::unique_ptr<asio::signal_set> hup_;
  std::uint64_t reloads_ = 0, reload_errors_ = 0;  // on the strand
};

#else

// Built without OpenSSL: the command line refuses --gossip-keyring.
class gossip_keyring {
 public:
  gossip_keyring(const options&, const std::atomic<int>&) {}
  template <class Strand>
  void start(asio::io_context&, Strand) {}
  std::shared_ptr<const dhtkit::datagram_cipher> cipher() const { return nullptr; }
  void close() {}
  std::size_t keys() const { return 0; }
  std::string primary() const { return "none"; }
  std::uint64_t reloads() const { return 0; }
  std::uint64_t reload_errors() const { return 0; }
};

#endif

}  // namespace dhtkit_cache::cluster

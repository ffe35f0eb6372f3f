// dhtkit-node: one DHT node (dhtkit::node) in a process, driven by commands
// on stdin and answering in JSON lines on stdout, so that a cluster of
// processes can be started, scripted and checked by hand or by a test.
//
//   dhtkit-node --name a --listen 127.0.0.1:7001
//   dhtkit-node --name b --listen 127.0.0.1:7002 --seed 127.0.0.1:7001
//
// Once joined it prints {"event":"joined",...} and then answers every
// command line with exactly one JSON line:
//
//   put KEY VALUE [w]   write VALUE (one word) under KEY, with W = w if given
//   get KEY [r]         read KEY, with R = r if given
//   members             the members this node sees alive or suspect, self included
//   stats               the node's counters (node_stats)
//   leave               leave gracefully (hand off this node's ranges), then exit
//
// Blank lines are ignored. A put supersedes the versions the last get of the
// same key through this process returned (its causal context); without a get
// in between, two puts of one key are concurrent and both are kept as
// siblings. Commands run one at a time, in order, so replies come in the
// order of the commands.
//
// Exit status: 0 after `leave`, end of input, SIGTERM or SIGINT (the last
// three close the node without leaving: peers see a crash, and the
// remaining replicas restore the copies); 1 when the node cannot bind or
// join, or when `leave` could not hand everything off in time (the node
// left anyway); 2 for a bad command line (flags, addresses, configuration).
// Membership and ownership events go to stderr as JSON lines.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/signal_set.hpp>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "dhtkit/node/node.hpp"

namespace {

constexpr int exit_usage = 2;

// ---- JSON output --------------------------------------------------------------

bool valid_utf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
    if (len == 0 || i + len > s.size()) return false;
    for (std::size_t k = 1; k < len; ++k)
      if ((static_cast<unsigned char>(s[i + k]) >> 6) != 0x2) return false;
    i += len;
  }
  return true;
}

// A JSON string literal. Values are bytes, and a JSON string must be UTF-8:
// valid UTF-8 passes through, otherwise every byte above 0x7F is written as
// \u00XX (read as Latin-1), so nothing is dropped.
std::string quote(std::string_view s) {
  const bool utf8 = valid_utf8(s);
  std::string out = "\"";
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    char buf[8];
    if (c == '"' || c == '\\') {
      out += '\\';
      out += ch;
    } else if (c == '\n') {
      out += "\\n";
    } else if (c < 0x20 || c == 0x7F || (c >= 0x80 && !utf8)) {
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += ch;
    }
  }
  return out + '"';
}

// Builds one JSON object, member by member, in the order added.
class json {
 public:
  json& str(std::string_view name, std::string_view value) { return raw(name, quote(value)); }
  json& num(std::string_view name, std::uint64_t value) { return raw(name, std::to_string(value)); }
  json& boolean(std::string_view name, bool value) { return raw(name, value ? "true" : "false"); }
  json& raw(std::string_view name, std::string_view value) {
    text_ += text_.size() == 1 ? "" : ",";
    text_ += quote(name);
    text_ += ':';
    text_ += value;
    return *this;
  }
  std::string done() const { return text_ + '}'; }

 private:
  std::string text_ = "{";
};

// Uint64 ids, fingerprints and ring positions as 16 hex digits: a JSON
// reader that parses numbers as doubles would round them.
std::string hex(std::uint64_t v) { return dhtkit::node_id{v}.to_string(); }

void emit(std::FILE* to, const std::string& line) {
  std::fwrite(line.data(), 1, line.size(), to);
  std::fputc('\n', to);
  std::fflush(to);
}

// ---- the command line -----------------------------------------------------------

struct options {
  std::string name;
  std::string listen;
  std::string advertise;
  std::vector<std::string> seeds;
  std::string preset = "local";
};

std::optional<options> parse_command_line(int argc, char** argv, int& exit_code) {
  options opt;
  CLI::App app{
      "dhtkit-node: one DHT node. Joins through --seed (or founds a cluster), then reads commands on "
      "stdin (put KEY VALUE [w], get KEY [r], members, stats, leave) and answers each with one JSON "
      "line on stdout.",
      "dhtkit-node"};
  app.add_option("--name", opt.name, "the node's name, unique in the cluster (its id is derived from it)")
      ->required();
  app.add_option("--listen", opt.listen,
                 "HOST:PORT to bind, UDP and TCP (numeric address; port 0 picks free ports)")
      ->required();
  app.add_option("--advertise", opt.advertise,
                 "HOST:PORT peers reach this node at (default: --listen, which then must not be a "
                 "wildcard)");
  app.add_option("--seed", opt.seeds, "HOST:PORT of a member's packet endpoint to join through; repeatable")
      ->take_last();
  app.add_option("--preset", opt.preset,
                 "timeouts and periods: local (one host, short timeouts; the default) or lan (one data "
                 "centre)")
      ->check(CLI::IsMember({"local", "lan"}));
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    std::fputs(app.help().c_str(), stdout);
    exit_code = 0;
    return std::nullopt;
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "dhtkit-node: %s\nRun with --help for the flags.\n", e.what());
    exit_code = exit_usage;
    return std::nullopt;
  }
  return opt;
}

// ---- stdin --------------------------------------------------------------------------

// Lines read by a thread of their own (a blocking read works on a pipe, a
// terminal and a regular file alike) and posted to the io_context. At exit
// the thread is left blocked in read(): `closed` stops it from posting to an
// io_context that is gone.
struct line_feed {
  std::mutex mutex;
  bool closed = false;
  asio::io_context* io = nullptr;
  std::function<void(std::optional<std::string>)> deliver;  // nullopt: end of input

  void post(std::optional<std::string> line) {
    std::lock_guard lock(mutex);
    if (closed) return;
    asio::post(*io, [this, l = std::move(line)]() mutable { deliver(std::move(l)); });
  }
  void close() {
    std::lock_guard lock(mutex);
    closed = true;
  }
};

void read_stdin(std::shared_ptr<line_feed> feed) {
  std::string pending;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(STDIN_FILENO, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    pending.append(buf, static_cast<std::size_t>(n));
    std::size_t start = 0;
    for (std::size_t nl; (nl = pending.find('\n', start)) != std::string::npos; start = nl + 1)
      feed->post(pending.substr(start, nl - start));
    pending.erase(0, start);
  }
  if (!pending.empty()) feed->post(std::move(pending));
  feed->post(std::nullopt);
}

// ---- the program --------------------------------------------------------------------

std::string_view state_name(dhtkit::node_event_kind k) {
  return k == dhtkit::node_event_kind::member_suspect ? "suspect" : "alive";
}

class program {
 public:
  program(asio::io_context& io, dhtkit::node& node, std::string name)
      : io_(io), node_(node), name_(std::move(name)) {}

  void on_event(const dhtkit::node_event& e) {
    using k = dhtkit::node_event_kind;
    json j;
    j.str("event", dhtkit::to_string(e.kind));
    switch (e.kind) {
      case k::member_joined:
      case k::member_alive:
      case k::member_suspect: {
        member& m = members_[e.member];
        if (!e.name.empty()) m.name = e.name;  // a refutation may not carry it
        m.state = state_name(e.kind);
        j.str("member", e.member.to_string()).str("name", e.name);
        break;
      }
      case k::member_dead:
      case k::member_left:
        members_.erase(e.member);
        j.str("member", e.member.to_string()).str("name", e.name);
        break;
      case k::member_conflict:
        j.str("member", e.member.to_string()).str("name", e.name);
        break;
      case k::placement_changed:
        j.num("version", e.placement_version).str("fingerprint", hex(e.fingerprint));
        break;
      default:  // range events
        j.num("version", e.placement_version).str("begin", hex(e.range.begin)).str("end", hex(e.range.end));
        break;
    }
    emit(stderr, j.done());
  }

  void joined() {
    members_[node_.id()] = {name_, "alive"};
    emit(stdout, json{}
                     .str("event", "joined")
                     .str("name", name_)
                     .str("id", node_.id().to_string())
                     .str("packet", node_.packet_endpoint().to_string())
                     .str("stream", node_.stream_endpoint().to_string())
                     .done());
  }

  // A line from stdin (nullopt at end of input), queued behind the command in progress.
  void on_line(std::optional<std::string> line) {
    queue_.push_back(std::move(line));
    if (!busy_) next();
  }

  void finish(int code) {
    if (finished_) return;
    finished_ = true;
    exit_code_ = code;
    node_.close();
    io_.stop();
  }

  int exit_code() const { return exit_code_; }

 private:
  struct member {
    std::string name;
    std::string state;
  };

  void next() {
    while (!queue_.empty() && !finished_) {
      auto line = std::move(queue_.front());
      queue_.pop_front();
      if (!line) return finish(0);
      std::istringstream in(*line);
      std::vector<std::string> words;
      for (std::string w; in >> w;) words.push_back(std::move(w));
      if (words.empty()) continue;
      busy_ = true;
      run(words);
      return;
    }
  }

  void done(const std::string& reply) {
    emit(stdout, reply);
    busy_ = false;
    next();
  }

  // A count given on a command line: 1 to 255, or nothing when absent.
  static bool parse_count(const std::vector<std::string>& w, std::size_t at,
                          std::optional<std::uint32_t>& out) {
    if (w.size() <= at) return true;
    try {
      std::size_t used = 0;
      const unsigned long v = std::stoul(w[at], &used);
      if (used != w[at].size() || v < 1 || v > 255) return false;
      out = static_cast<std::uint32_t>(v);
      return true;
    } catch (const std::exception&) {
      return false;
    }
  }

  static std::string usage(std::string_view op, std::string_view text) {
    return json{}.str("op", op).boolean("ok", false).str("error", "usage: " + std::string(text)).done();
  }

  void run(const std::vector<std::string>& w) {
    const std::string& op = w[0];
    if (op == "put") {
      dhtkit::request_options o;
      if (w.size() < 3 || w.size() > 4 || !parse_count(w, 3, o.w))
        return done(usage(op, "put KEY VALUE [w]"));
      put(w[1], w[2], o);
    } else if (op == "get") {
      dhtkit::request_options o;
      if (w.size() < 2 || w.size() > 3 || !parse_count(w, 2, o.r)) return done(usage(op, "get KEY [r]"));
      get(w[1], o);
    } else if (op == "members" && w.size() == 1) {
      node_.async_stats([this](dhtkit::node_stats s) { done(members_reply(s)); });
    } else if (op == "stats" && w.size() == 1) {
      node_.async_stats([this](dhtkit::node_stats s) { done(stats_reply(s)); });
    } else if (op == "leave" && w.size() == 1) {
      node_.async_leave([this](std::error_code ec) {
        json j;
        j.str("op", "leave").boolean("ok", !ec);
        if (ec) j.str("error", ec.message());
        emit(stdout, j.done());
        finish(ec ? 1 : 0);
      });
    } else if (op == "members" || op == "stats" || op == "leave") {
      done(usage(op, op));
    } else {
      done(json{}.boolean("ok", false).str("error", "unknown command").done());
    }
  }

  void put(const std::string& key, const std::string& value, dhtkit::request_options o) {
    dhtkit::bytes b(value.size());
    for (std::size_t i = 0; i < value.size(); ++i) b[i] = static_cast<std::byte>(value[i]);
    dhtkit::version_vector context;
    if (auto it = contexts_.find(key); it != contexts_.end()) context = it->second;
    node_.async_put(key, std::move(b), std::move(context), o,
                    [this, key](std::error_code ec, dhtkit::put_result r) {
                      json j;
                      j.str("op", "put").str("key", key).boolean("ok", !ec);
                      if (ec) j.str("error", ec.message());
                      done(j.num("acks", r.acks).num("required", r.required).done());
                    });
  }

  void get(const std::string& key, dhtkit::request_options o) {
    node_.async_get(key, o, [this, key](std::error_code ec, dhtkit::get_result r) {
      json j;
      j.str("op", "get").str("key", key).boolean("ok", !ec);
      if (ec) {
        j.str("error", ec.message());
      } else {
        std::string values = "[";
        for (const auto& v : r.siblings) {
          if (values.size() > 1) values += ',';
          values += quote(std::string_view(reinterpret_cast<const char*>(v.value.data()), v.value.size()));
        }
        j.raw("values", values + "]");
        contexts_[key] = r.context;
      }
      done(j.num("replies", r.replies).num("required", r.required).done());
    });
  }

  std::string members_reply(const dhtkit::node_stats& s) const {
    std::string list = "[";
    for (const auto& [id, m] : members_) {
      if (list.size() > 1) list += ',';
      list += json{}.str("name", m.name).str("id", id.to_string()).str("state", m.state).done();
    }
    // count: the list, from the node's events; alive to left: SWIM's own
    // counts (stats), which may run a moment ahead of the events.
    return json{}
        .str("op", "members")
        .boolean("ok", true)
        .num("count", members_.size())
        .raw("members", list + "]")
        .num("alive", s.members_alive)
        .num("suspect", s.members_suspect)
        .num("dead", s.members_dead)
        .num("left", s.members_left)
        .done();
  }

  static std::string stats_reply(const dhtkit::node_stats& s) {
    const auto us = [](const dhtkit::latency_histogram& h, double q) {
      return static_cast<std::uint64_t>(h.quantile(q) / 1000.0);
    };
    const auto& d = s.dropped;
    const std::string dropped = json{}
                                    .num("malformed", d.malformed)
                                    .num("unknown_type", d.unknown_type)
                                    .num("not_a_member", d.not_a_member)
                                    .num("spoofed", d.spoofed)
                                    .num("not_held", d.not_held)
                                    .num("refused_by_core", d.refused_by_core)
                                    .num("unknown_peer", d.unknown_peer)
                                    .num("oversized", d.oversized)
                                    .done();
    return json{}
        .str("op", "stats")
        .boolean("ok", true)
        .num("members_alive", s.members_alive)
        .num("members_suspect", s.members_suspect)
        .num("members_dead", s.members_dead)
        .num("members_left", s.members_left)
        .num("placement_version", s.placement_version)
        .str("placement_fingerprint", hex(s.placement_fingerprint))
        .num("placement_changes", s.placement_changes)
        .num("ranges_held", s.ranges_held)
        .num("puts_ok", s.puts_ok)
        .num("puts_failed", s.puts_failed)
        .num("gets_ok", s.gets_ok)
        .num("gets_failed", s.gets_failed)
        .num("ops_pending", s.ops_pending)
        .num("ops_rejected", s.ops_rejected)
        .num("ops_cancelled", s.ops_cancelled)
        .num("put_p50_us", us(s.put_latency, 0.5))
        .num("put_p99_us", us(s.put_latency, 0.99))
        .num("get_p50_us", us(s.get_latency, 0.5))
        .num("get_p99_us", us(s.get_latency, 0.99))
        .num("ranges_pending", s.ranges_pending)
        .num("ranges_outbound", s.ranges_outbound)
        .num("handoff_bytes_sent", s.handoff_bytes_sent)
        .num("handoff_bytes_received", s.handoff_bytes_received)
        .num("handoff_keys_sent", s.handoff_keys_sent)
        .num("handoff_keys_received", s.handoff_keys_received)
        .num("ranges_dropped", s.ranges_dropped)
        .num("keys_dropped", s.keys_dropped)
        .num("read_repairs", s.read_repairs)
        .num("ae_keys_repaired", s.ae_keys_repaired)
        .num("hints_stored", s.hints_stored)
        .num("hints_handed_off", s.hints_handed_off)
        .num("hints_pending", s.hints_pending)
        .num("messages_sent", s.messages_sent)
        .num("messages_received", s.messages_received)
        .raw("dropped", dropped)
        .done();
  }

  asio::io_context& io_;
  dhtkit::node& node_;
  std::string name_;
  std::map<dhtkit::node_id, member> members_;
  std::map<std::string, dhtkit::version_vector> contexts_;
  std::deque<std::optional<std::string>> queue_;
  bool busy_ = false;
  bool finished_ = false;
  int exit_code_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
  int exit_code = 0;
  const auto opt = parse_command_line(argc, argv, exit_code);
  if (!opt) return exit_code;
  // A reader of stdout that went away must not kill the node mid-operation.
  std::signal(SIGPIPE, SIG_IGN);

  auto cfg = opt->preset == "lan" ? dhtkit::node_config::lan() : dhtkit::node_config::local();
  cfg.name = opt->name;
  cfg.listen = opt->listen;
  cfg.advertise = opt->advertise;
  cfg.seeds = opt->seeds;
  try {
    cfg.validate();
  } catch (const std::invalid_argument& e) {
    std::fprintf(stderr, "dhtkit-node: %s\n", e.what());
    return exit_usage;
  }

  asio::io_context io;
  auto opened = dhtkit::node::open(io.get_executor(), cfg);
  if (!opened) {
    // An address that does not parse is the command line's fault; one that
    // does not bind (in use, not local) is the machine's.
    const bool usage = opened.error() == dhtkit::errc::invalid_address;
    std::fprintf(stderr, "dhtkit-node: cannot open --listen %s: %s%s\n", opt->listen.c_str(),
                 opened.error().message().c_str(),
                 usage ? " (numeric HOST:PORT everywhere; a wildcard --listen needs --advertise)" : "");
    return usage ? exit_usage : 1;
  }
  dhtkit::node& node = *opened;
  program prog(io, node, cfg.name);
  node.set_event_handler([&prog](const dhtkit::node_event& e) { prog.on_event(e); });

  asio::signal_set signals(io, SIGTERM, SIGINT);
  signals.async_wait([&prog](std::error_code ec, int) {
    if (!ec) prog.finish(0);
  });

  auto feed = std::make_shared<line_feed>();
  feed->io = &io;
  feed->deliver = [&prog](std::optional<std::string> line) { prog.on_line(std::move(line)); };
  node.async_join([&](std::error_code ec) {
    if (ec) {
      emit(stdout,
           json{}.str("event", "join_failed").str("name", cfg.name).str("error", ec.message()).done());
      return prog.finish(1);
    }
    prog.joined();
    std::thread(read_stdin, feed).detach();
  });
  io.run();
  feed->close();
  return prog.exit_code();
}

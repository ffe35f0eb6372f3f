// One client connection's protocol state: the bytes a connection received go
// in, memcached replies come out. No I/O: the server reads the socket into
// receive() and writes what process() appended; tests and the fuzzer drive a
// session directly.
//
//   dhtkit_cache::session s(ctx);                  // ctx: server_context
//   s.receive("set k 0 0 5\r\nhello\r\nget k\r\n");
//   std::string out;
//   s.process(out);                                // need_input
//   // out == "STORED\r\nVALUE k 0 5\r\nhello\r\nEND\r\n"
//
// Memory per session is bounded: the input buffer by parser_limits (what
// input_room() reports), a value block by the largest item (checked before
// it is read), and the output by max_output plus one item (a multiget
// answers a few keys per call and resumes when called again).
//
// In a cluster (server_context::cluster set) the session parses and frames
// every request as above but does not run a well framed command on one key
// (nor flush_all): process() stops with session_status::deferred, out
// holding the replies that come before it, and take_deferred() gives the
// request for the cluster (see cluster_hooks.hpp). Its reply takes that place
// in the reply order; the caller calls process() again to go on. A multiget
// becomes one deferred request per key, and the session writes its one END
// after the last key's reply.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "protocol/cluster_hooks.hpp"
#include "protocol/command_metrics.hpp"
#include "protocol/meta/base64.hpp"
#include "protocol/meta/flags.hpp"
#include "protocol/meta_commands.hpp"
#include "protocol/request.hpp"
#include "protocol/request_parser.hpp"
#include "protocol/server_context.hpp"
#include "protocol/text_commands.hpp"

namespace dhtkit_cache {

enum class session_role {
  client,       // a client's connection
  coordinator,  // runs what a client's session on some node deferred, on ctx.store
};

enum class session_status {
  need_input,   // every complete request is answered: read more
  output_full,  // out reached max_output: send it, then call process() again (no input needed)
  close,        // send out, then close (quit, shutdown, or a line too long)
  deferred,     // send out, then take_deferred()'s reply; then call process() again (cluster only)
};

class session {
 public:
  // metrics: the worker's per-command counters and latencies, or nullptr to
  // measure nothing (see command_metrics.hpp).
  // role: a client's session hands commands on keys to ctx.cluster when it
  // is set; a coordinator's session (the cluster's own, running what a
  // client's session handed over) always runs them on ctx.store.
  explicit session(server_context& ctx, std::size_t max_output = 1 << 20, parser_limits limits = {},
                   command_metrics* metrics = nullptr, session_role role = session_role::client)
      : ctx_(ctx),
        clustered_(ctx.cluster != nullptr && role == session_role::client),
        max_output_(max_output),
        parser_(limits),
        metrics_(metrics) {}

  session(const session&) = delete;
  session& operator=(const session&) = delete;
  ~session() { tally_.flush(ctx_.counters); }

  // Bytes receive() may take now.
  std::size_t input_room() const { return closing_ ? 0 : parser_.room(); }

  // Precondition: bytes.size() <= input_room().
  void receive(std::string_view bytes) { parser_.append(bytes); }

  // A request has started arriving and is not whole yet (request_parser::mid_request()).
  bool mid_request() const { return parser_.mid_request(); }

  // Runs the buffered complete requests, appending their replies to out.
  session_status process(std::string& out) {
    const session_status s = run(out);
    tally_.flush(ctx_.counters);
    return s;
  }

  // After process() returned deferred: the request whose reply comes next.
  deferred_request take_deferred() { return std::move(deferred_); }

 private:
  enum class pending { none, text_value, meta_value };

  session_status run(std::string& out) {
    if (closing_) return session_status::close;
    command_env env{ctx_, ctx_.now(), tally_, clustered_};
    if (metrics_ != nullptr) last_ns_ = metrics_->now_ns();
    for (;;) {
      if (out.size() >= max_output_) return session_status::output_full;
      if (cluster_get_.active) {
        if (next_cluster_get(out)) return session_status::deferred;
        continue;
      }
      if (text_.multiget.active) {
        const stretch st = begin_stretch(out);
        continue_multiget(env, text_.multiget, out, max_output_);
        end_stretch(st, out, !text_.multiget.active);
        continue;
      }
      const auto e = parser_.next();
      switch (e.what) {
        case request_parser::kind::need_more:
          return session_status::need_input;
        case request_parser::kind::too_long:
          // memcached closes the connection without a word, except for the
          // multiget it lets grow; ours is bounded, so that one is told why.
          if (parser_.partial_line_is_get()) out.append("CLIENT_ERROR line too long\r\n");
          if (metrics_ != nullptr) {
            // A client error whether or not the client is told; counted
            // before the connection closes.
            in_flight_.start(parser_.partial_line_is_get() ? command_kind::get : command_kind::other);
            in_flight_.add(metrics_->now_ns() - last_ns_, "CLIENT_ERROR");
            in_flight_.finish(*metrics_);
          }
          closing_ = true;
          return session_status::close;
        case request_parser::kind::line:
          if (run_line(env, e.text, out) == line_outcome::close) {
            closing_ = true;
            return session_status::close;
          }
          if (has_deferred_) {
            has_deferred_ = false;
            return session_status::deferred;
          }
          break;
        case request_parser::kind::value: {
          if (clustered_ && pending_ != pending::none) {
            const stretch st = begin_stretch(out);
            defer_storage(e.text);
            end_stretch(st, out, true);
            return session_status::deferred;
          }
          const stretch st = begin_stretch(out);
          if (pending_ == pending::text_value) complete_storage(env, text_.storage, e.text, out);
          if (pending_ == pending::meta_value) complete_meta_set(env, meta_, e.text, out);
          pending_ = pending::none;
          end_stretch(st, out, true);
          break;
        }
        case request_parser::kind::bad_value: {
          const stretch st = begin_stretch(out);
          if (!(pending_ == pending::text_value && text_.storage.noreply))
            out.append("CLIENT_ERROR bad data chunk\r\n");
          pending_ = pending::none;
          end_stretch(st, out, true);
          break;
        }
      }
    }
  }

  line_outcome run_line(command_env& env, std::string_view line, std::string& out) {
    const stretch st = begin_stretch(out);
    const token_list t = tokenize(line);
    if (metrics_ != nullptr) in_flight_.start(t.size() == 0 ? command_kind::other : command_of(t[0]));
    if (t.size() == 0) {
      out.append("ERROR\r\n");
      end_stretch(st, out, true);
      return line_outcome::done;
    }
    if (clustered_ && route_to_cluster(env, line, t)) {
      end_stretch(st, out, true);
      return line_outcome::done;
    }
    const bool meta = is_meta_command(t[0]);
    const line_result r = meta ? run_meta_line(env, t, out, meta_) : run_text_line(env, line, t, out, text_);
    // Done unless it waits for its value or has more of a multiget to write.
    end_stretch(st, out, r.outcome != line_outcome::read_value && !text_.multiget.active);
    switch (r.outcome) {
      case line_outcome::read_value:
        parser_.expect_value(r.length);
        pending_ = meta ? pending::meta_value : pending::text_value;
        if (clustered_) storage_line_.assign(line);
        break;
      case line_outcome::swallow:
        parser_.swallow(r.length);
        if (clustered_) defer_drop_old(meta, t);
        break;
      default:
        break;
    }
    return r.outcome;
  }

  // Cluster mode: hands the line over when it is a command on one key (or
  // flush_all) that the cluster runs. False: run it here, as a single server
  // does (its error reply is the same either way, and it touches no item).
  bool route_to_cluster(command_env& env, std::string_view line, const token_list& t) {
    const std::string_view cmd = t[0];
    if (cmd == "get" || cmd == "bget" || cmd == "gets")
      return start_cluster_get(line, t, cmd == "gets", false);
    if (cmd == "gat" || cmd == "gats") return start_cluster_get(line, t, cmd == "gats", true);
    const bool noreply = t.last_is("noreply");
    // Argument counts the command answers with ERROR (not silenced by
    // noreply) run here; the rest of their checks give the same reply at
    // the coordinator.
    if (cmd == "delete") return t.size() >= 2 && t.size() <= 4 && defer_keyed(t[1], line, noreply);
    if (cmd == "incr" || cmd == "decr" || cmd == "touch")
      return (t.size() == 3 || t.size() == 4) && defer_keyed(t[1], line, noreply);
    if (cmd == "flush_all") return defer_flush_all(env, line, t);
    // `stats replica <key>`: what this node's replica holds (fault tests compare the replicas).
    if (cmd == "stats" && t.size() == 3 && t[1] == "replica" && defer_keyed(t[2], line, false)) {
      deferred_.what = deferred_request::kind::replica;
      return true;
    }
    if (cmd == "mg" || cmd == "md" || cmd == "ma" || cmd == "me") {
      if (t.size() < 2 || t.size() > detail::max_meta_tokens) return false;
      const auto key = meta_key(t, 2);
      return key && defer_keyed(*key, line, false);
    }
    return false;
  }

  // The key a meta command names: t[1], decoded when the flags (from
  // t[first] on) hold b. nullopt: not a key the command accepts.
  static std::optional<std::string> meta_key(const token_list& t, std::size_t first) {
    if (t[1].size() > max_key_length) return std::nullopt;
    for (std::size_t i = first; i < t.size(); ++i) {
      if (t[i][0] != 'b') continue;
      auto decoded = detail::base64_decode(t[1]);
      if (!decoded || decoded->size() > max_key_length) return std::nullopt;
      return decoded;
    }
    return std::string(t[1]);
  }

  bool defer_keyed(std::string_view key, std::string_view line, bool noreply) {
    if (key.size() > max_key_length) return false;
    deferred_ = deferred_request{};
    deferred_.key.assign(key);
    deferred_.bytes.reserve(line.size() + 2);
    deferred_.bytes.append(line).append("\r\n");
    deferred_.noreply = noreply;
    has_deferred_ = true;
    return true;
  }

  // flush_all as text/admin.hpp checks it; only a valid one goes to the cluster.
  bool defer_flush_all(command_env& env, std::string_view line, const token_list& t) {
    if (t.size() > 3 || !ctx_.settings.flush_enabled) return false;
    const bool noreply = t.size() > 1 && t.last_is("noreply");
    std::int32_t delay = 0;
    if (t.size() - 1 - (noreply ? 1 : 0) > 0) {
      const auto d = parse_i32_wrapping(t[1]);
      if (!d) return false;
      delay = *d;
    }
    const expiry e = env.expiry_of(delay);
    deferred_ = deferred_request{};
    deferred_.what = deferred_request::kind::flush_all;
    deferred_.bytes.append(line).append("\r\n");
    deferred_.noreply = noreply;
    deferred_.flush_unix = delay == 0 || e.already_expired ? 0 : ctx_.process_started_unix + e.at;
    has_deferred_ = true;
    return true;
  }

  // get/gets/gat/gats: checked whole as retrieval.hpp does (a bad exptime or
  // an over-long key is answered here, without a single value), then one
  // deferred request per key from next_cluster_get().
  bool start_cluster_get(std::string_view line, const token_list& t, bool with_cas, bool touch) {
    if (t.size() < 2) return false;
    const std::string_view first = touch ? t[1] : t[0];
    if (touch && !parse_i32_wrapping(t[1])) return false;
    const std::string_view keys =
        line.substr(static_cast<std::size_t>(first.data() - line.data()) + first.size());
    std::size_t count = 0;
    for (std::size_t i = 0; i < keys.size();) {
      while (i < keys.size() && keys[i] == ' ') ++i;
      const std::size_t start = i;
      while (i < keys.size() && keys[i] != ' ') ++i;
      if (i - start > max_key_length) return false;
      if (i > start) ++count;
    }
    if (count == 0) return false;
    cluster_get_.active = true;
    cluster_get_.several = count > 1;
    cluster_get_.prefix.assign(touch ? (with_cas ? "gats " : "gat ") : (with_cas ? "gets " : "get "));
    if (touch) cluster_get_.prefix.append(t[1]).push_back(' ');
    cluster_get_.keys.assign(keys);
    cluster_get_.pos = 0;
    return true;
  }

  // The next key of a multiget as a deferred request (true), or its END.
  bool next_cluster_get(std::string& out) {
    multiget_in_cluster& g = cluster_get_;
    const std::string_view keys(g.keys);
    while (g.pos < keys.size() && keys[g.pos] == ' ') ++g.pos;
    if (g.pos >= keys.size()) {
      if (g.several) out.append("END\r\n");
      g = multiget_in_cluster{};
      return false;
    }
    const std::size_t start = g.pos;
    while (g.pos < keys.size() && keys[g.pos] != ' ') ++g.pos;
    const std::string_view key = keys.substr(start, g.pos - start);
    deferred_ = deferred_request{};
    deferred_.key.assign(key);
    deferred_.bytes.reserve(g.prefix.size() + key.size() + 2);
    deferred_.bytes.append(g.prefix).append(key).append("\r\n");
    deferred_.strip_end = g.several;
    return true;
  }

  // A storage command's value arrived well framed: the line and the value go
  // to the key's coordinator, which runs them as this session would have.
  void defer_storage(std::string_view value) {
    const bool meta = pending_ == pending::meta_value;
    pending_ = pending::none;
    deferred_ = deferred_request{};
    deferred_.key = meta ? std::move(meta_.key) : std::move(text_.storage.key);
    deferred_.noreply = !meta && text_.storage.noreply;
    deferred_.bytes.reserve(storage_line_.size() + value.size() + 4);
    deferred_.bytes.append(storage_line_).append("\r\n").append(value).append("\r\n");
    storage_line_.clear();
    if (storage_line_.capacity() > parser_.limits().retained_capacity) std::string().swap(storage_line_);
  }

  // A set (ms in mode S) too large to store: memcached drops the old item so
  // that no reader gets the value the client meant to replace. In a cluster
  // that happens at the coordinator, as a delete whose reply nobody sees.
  void defer_drop_old(bool meta, const token_list& t) {
    bool& drop = meta ? meta_.drop_old : text_.storage.drop_old;
    if (!drop) return;
    drop = false;
    deferred_ = deferred_request{};
    deferred_.noreply = true;
    if (meta) {
      // md's q hides HD but not NF: noreply makes the caller drop the reply.
      deferred_.key = std::move(meta_.key);
      deferred_.bytes.append("md ").append(t[1]);
      for (std::size_t i = 3; i < t.size(); ++i)
        if (t[i][0] == 'b') deferred_.bytes.append(" b");
      deferred_.bytes.append(" q\r\n");
    } else {
      deferred_.key = std::move(text_.storage.key);
      deferred_.bytes.append("delete ").append(deferred_.key).append(" noreply\r\n");
    }
    has_deferred_ = true;
  }

  // A stretch of work on one command, for command_metrics. It starts where
  // the previous one ended (or where process() began), so parsing the
  // command's line is part of it and the clock is read once per stretch, not
  // twice: at 30-odd ns a reading, that halves what metrics cost a command.
  struct stretch {
    std::uint64_t start_ns = 0;
    std::size_t out_mark = 0;
  };
  stretch begin_stretch(const std::string& out) const { return stretch{last_ns_, out.size()}; }
  void end_stretch(const stretch& st, const std::string& out, bool command_done) {
    if (metrics_ == nullptr || !in_flight_.open()) return;
    const std::uint64_t now = metrics_->now_ns();
    in_flight_.add(now - st.start_ns, std::string_view(out).substr(st.out_mark));
    last_ns_ = now;
    if (command_done) in_flight_.finish(*metrics_);
  }

  server_context& ctx_;
  bool clustered_;  // commands on keys are deferred to ctx_.cluster
  std::size_t max_output_;
  request_parser parser_;
  command_tally tally_;
  text_command_state text_;
  meta_set_request meta_;
  pending pending_ = pending::none;
  bool closing_ = false;
  command_metrics* metrics_;
  command_in_flight in_flight_;
  std::uint64_t last_ns_ = 0;  // when the last stretch ended (or process() began)

  // Cluster mode (see the top of this file).
  struct multiget_in_cluster {
    bool active = false;
    bool several = false;  // more than one key: strip each reply's END, write one at the end
    std::string prefix{};  // "get ", "gets ", "gat <exptime> ", "gats <exptime> "
    std::string keys{};    // the rest of the line
    std::size_t pos = 0;   // the next key starts at or after this
  };
  multiget_in_cluster cluster_get_;
  std::string storage_line_;  // a storage command's line while its value is read
  deferred_request deferred_;
  bool has_deferred_ = false;
};

}  // namespace dhtkit_cache

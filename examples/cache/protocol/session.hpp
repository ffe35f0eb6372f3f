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
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "protocol/command_metrics.hpp"
#include "protocol/meta_commands.hpp"
#include "protocol/request.hpp"
#include "protocol/request_parser.hpp"
#include "protocol/server_context.hpp"
#include "protocol/text_commands.hpp"

namespace dhtkit_cache {

enum class session_status {
  need_input,   // every complete request is answered: read more
  output_full,  // out reached max_output: send it, then call process() again (no input needed)
  close,        // send out, then close (quit, shutdown, or a line too long)
};

class session {
 public:
  // metrics: the worker's per-command counters and latencies, or nullptr to
  // measure nothing (see command_metrics.hpp).
  explicit session(server_context& ctx, std::size_t max_output = 1 << 20, parser_limits limits = {},
                   command_metrics* metrics = nullptr)
      : ctx_(ctx), max_output_(max_output), parser_(limits), metrics_(metrics) {}

  session(const session&) = delete;
  session& operator=(const session&) = delete;
  ~session() { tally_.flush(ctx_.counters); }

  // Bytes receive() may take now.
  std::size_t input_room() const { return closing_ ? 0 : parser_.room(); }

  // Precondition: bytes.size() <= input_room().
  void receive(std::string_view bytes) { parser_.append(bytes); }

  // Runs the buffered complete requests, appending their replies to out.
  session_status process(std::string& out) {
    const session_status s = run(out);
    tally_.flush(ctx_.counters);
    return s;
  }

 private:
  enum class pending { none, text_value, meta_value };

  session_status run(std::string& out) {
    if (closing_) return session_status::close;
    command_env env{ctx_, ctx_.now(), tally_};
    if (metrics_ != nullptr) last_ns_ = metrics_->now_ns();
    for (;;) {
      if (out.size() >= max_output_) return session_status::output_full;
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
          break;
        case request_parser::kind::value: {
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
    const bool meta = is_meta_command(t[0]);
    const line_result r = meta ? run_meta_line(env, t, out, meta_) : run_text_line(env, line, t, out, text_);
    // Done unless it waits for its value or has more of a multiget to write.
    end_stretch(st, out, r.outcome != line_outcome::read_value && !text_.multiget.active);
    switch (r.outcome) {
      case line_outcome::read_value:
        parser_.expect_value(r.length);
        pending_ = meta ? pending::meta_value : pending::text_value;
        break;
      case line_outcome::swallow:
        parser_.swallow(r.length);
        break;
      default:
        break;
    }
    return r.outcome;
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
};

}  // namespace dhtkit_cache

// The framing of memcached's text and meta protocols: an incremental state
// machine that turns whatever bytes arrived (pipelined requests, a request
// split at any byte, values holding "\r\n") into command lines and value
// blocks, with bounded memory.
//
//   dhtkit_cache::request_parser p;
//   p.append("set k 0 0 5\r\nhel");
//   auto e = p.next();             // e.kind == line, e.text == "set k 0 0 5"
//   p.expect_value(5);             // the command decides: 5 bytes + "\r\n" follow
//   p.next();                      // need_more (3 of 7 bytes so far)
//   p.append("lo\r\n");
//   e = p.next();                  // e.kind == value, e.text == "hello"
//
// Lines end at "\n" (a "\r" before it is dropped), as memcached reads them.
// A line is taken whole once its "\n" is buffered, whatever its length (as
// memcached does with a line that arrives in one read); a partial line longer
// than max_line is an attack or a broken client and ends the connection, as
// in memcached -- except a get/gets line, which may carry many keys and may
// grow to the buffer's capacity. Values never go through the input buffer's
// capacity: a value's length is checked by the command against the largest
// item before expect_value(), and its bytes are moved into a block of exactly
// that size, so input_room() is restored as the value is read.
#pragma once

#include <algorithm>
#include <cstddef>
#include <string>
#include <string_view>

namespace dhtkit_cache {

struct parser_limits {
  // Input buffered at most (what a session asks for through input_room()):
  // a multiget line may be this long. memcached's read buffer is 16 KiB but
  // it grows it without bound for multigets; this bounds it.
  std::size_t buffer_capacity = 64 * 1024;
  // A partial line (its "\n" not yet read) longer than this, other than a
  // get/gets line, closes the connection (memcached: 2048).
  std::size_t max_line = 2048;
  // Buffers (input, value block) bigger than this are given back once used,
  // so a connection idle after a burst holds at most this much in each.
  std::size_t retained_capacity = 16 * 1024;
};

class request_parser {
 public:
  enum class kind {
    need_more,  // nothing complete is buffered
    line,       // text: a command line, without its "\r\n"
    value,      // text: a complete value block, without its "\r\n"
    bad_value,  // a value block that did not end in "\r\n" (its bytes are consumed)
    too_long,   // a partial line passed max_line, or filled the buffer: close
  };
  struct event {
    kind what = kind::need_more;
    std::string_view text;  // valid until the next append() or next()
  };

  explicit request_parser(parser_limits limits = {}) : limits_(limits) {}

  // Bytes append() may still take.
  std::size_t room() const { return limits_.buffer_capacity - (buf_.size() - pos_); }
  const parser_limits& limits() const { return limits_; }
  // Memory the parser's buffers hold (what an idle connection keeps).
  std::size_t retained_bytes() const { return buf_.capacity() + block_.capacity(); }

  // Precondition: bytes.size() <= room().
  void append(std::string_view bytes) {
    if (pos_ == buf_.size()) {
      buf_.clear();
      pos_ = 0;
      scanned_ = 0;
    } else if (pos_ > 0 && buf_.size() + bytes.size() > limits_.buffer_capacity) {
      buf_.erase(0, pos_);
      scanned_ -= pos_;
      pos_ = 0;
    }
    buf_.append(bytes);
  }

  // After a line: the next n bytes and "\r\n" are a value (n was checked).
  void expect_value(std::size_t n) {
    state_ = state::value;
    remaining_ = n + 2;
    block_.clear();
    block_.reserve(n + 2);
  }
  // After a line: skip the next n bytes and "\r\n".
  void swallow(std::size_t n) {
    state_ = state::swallow;
    remaining_ = n + 2;
  }

  event next() {
    for (;;) {
      const std::size_t avail = buf_.size() - pos_;
      switch (state_) {
        case state::swallow: {
          const std::size_t n = std::min(avail, remaining_);
          pos_ += n;
          remaining_ -= n;
          if (remaining_ > 0) return {};
          state_ = state::line;
          scanned_ = pos_;
          continue;
        }
        case state::value: {
          const std::size_t n = std::min(avail, remaining_);
          block_.append(buf_, pos_, n);
          pos_ += n;
          remaining_ -= n;
          if (remaining_ > 0) return {};
          state_ = state::line;
          scanned_ = pos_;
          std::string_view v(block_);
          if (v.size() < 2 || v.substr(v.size() - 2) != "\r\n") return {kind::bad_value, {}};
          return {kind::value, v.substr(0, v.size() - 2)};
        }
        case state::line: {
          // The last event's view is no longer in use: a connection idle
          // after a large value or a long pipeline does not keep its buffers.
          if (block_.capacity() > limits_.retained_capacity) std::string().swap(block_);
          if (pos_ == buf_.size() && buf_.capacity() > limits_.retained_capacity) {
            std::string().swap(buf_);
            pos_ = scanned_ = 0;
          }
          if (scanned_ < pos_) scanned_ = pos_;
          const std::size_t nl = buf_.find('\n', scanned_);
          if (nl == std::string::npos) {
            scanned_ = buf_.size();
            if (avail > limits_.max_line && !is_get_line()) return {kind::too_long, {}};
            if (avail >= limits_.buffer_capacity) return {kind::too_long, {}};
            return {};
          }
          std::string_view line(buf_.data() + pos_, nl - pos_);
          if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
          pos_ = nl + 1;
          scanned_ = pos_;
          return {kind::line, line};
        }
      }
    }
  }

  // A request has begun and is not complete: part of a line is buffered, or
  // a value (or a value being swallowed) has bytes still to come. The server
  // bounds how long a client may take to finish one (--request-timeout).
  bool mid_request() const { return state_ != state::line || pos_ < buf_.size(); }

  // The start of the partial line, for a too_long line's reply.
  bool partial_line_is_get() const { return is_get_line(); }

 private:
  enum class state { line, value, swallow };

  // memcached lets only a line starting (after at most 100 spaces) with
  // "get " or "gets " grow past max_line.
  bool is_get_line() const {
    std::string_view rest(buf_.data() + pos_, buf_.size() - pos_);
    std::size_t i = 0;
    while (i < rest.size() && i <= 100 && rest[i] == ' ') ++i;
    if (i > 100) return false;
    rest.remove_prefix(i);
    return rest.starts_with("get ") || rest.starts_with("gets ");
  }

  parser_limits limits_;
  std::string buf_;  // input; [pos_, size) not yet consumed
  std::size_t pos_ = 0;
  std::size_t scanned_ = 0;  // no "\n" in [pos_, scanned_): a partial line is not rescanned
  state state_ = state::line;
  std::size_t remaining_ = 0;  // bytes of the value block (or swallow) still to come
  std::string block_;          // the value block being read
};

}  // namespace dhtkit_cache

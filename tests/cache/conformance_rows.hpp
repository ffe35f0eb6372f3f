// The rows of tests/cache/conformance_golden.txt and how their replies are
// compared (the escapes, the CAS masking, the stats rows): shared by the
// tests that replay them (cache_conformance_test.cpp into a single server's
// session, cache_cluster_session_test.cpp through a cluster's).
#pragma once

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include "cache/session_fixture.hpp"

namespace conformance {

struct row {
  std::string name, mode, request, reply;
  bool closed = false;
};

inline std::string golden_path() {
  std::string here = __FILE__;
  return here.substr(0, here.find_last_of('/')) + "/conformance_golden.txt";
}

inline std::vector<std::string> split_tabs(const std::string& line) {
  std::vector<std::string> out;
  std::size_t start = 0;
  for (;;) {
    const std::size_t tab = line.find('\t', start);
    out.push_back(line.substr(start, tab == std::string::npos ? std::string::npos : tab - start));
    if (tab == std::string::npos) return out;
    start = tab + 1;
  }
}

inline std::vector<row> load_rows() {
  std::ifstream in(golden_path());
  std::vector<row> rows;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    const auto f = split_tabs(line);
    if (f.size() != 5) continue;
    rows.push_back({f[0], f[1], f[2], f[3], f[4] == "1"});
  }
  return rows;
}

// The escapes of the row file (see record_conformance.py).
inline std::string unescape(const std::string& s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '{' && s.compare(i, 5, "{rep:") == 0) {
      const std::size_t close = s.find('}', i);
      const char c = s[i + 5];
      const std::size_t n = std::stoul(s.substr(i + 7, close - i - 7));
      out.append(n, c);
      i = close;
    } else if (s[i] == '\\') {
      const char n = s[++i];
      if (n == 'r') out += '\r';
      if (n == 'n') out += '\n';
      if (n == 't') out += '\t';
      if (n == '\\') out += '\\';
      if (n == 'x') {
        out += static_cast<char>(std::stoi(s.substr(i + 1, 2), nullptr, 16));
        i += 2;
      }
    } else {
      out += s[i];
    }
  }
  return out;
}

inline std::vector<std::string> segments(const std::string& request) {
  std::vector<std::string> out;
  std::string all = unescape(request);
  std::size_t start = 0;
  for (;;) {
    const std::size_t p = all.find("{pause}", start);
    if (p == std::string::npos) break;
    out.push_back(all.substr(start, p - start));
    start = p + 7;
  }
  out.push_back(all.substr(start) + "mn\r\n");
  return out;
}

// Printable form of a reply, with the row file's escapes.
inline std::string esc(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (c == '\r') {
      out += "\\r";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\\') {
      out += "\\\\";
    } else if (c >= 0x20 && c < 0x7F) {
      out += static_cast<char>(c);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  return out;
}

// Long replies (values of a megabyte) are shown by their ends.
inline std::string shorten(const std::string& s) {
  return s.size() > 600 ? s.substr(0, 300) + "..." + s.substr(s.size() - 300) : s;
}

inline bool all_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

inline std::vector<std::string> lines_of(const std::string& s) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start < s.size()) {
    std::size_t nl = s.find("\r\n", start);
    if (nl == std::string::npos) nl = s.size();
    out.push_back(s.substr(start, nl - start));
    start = nl + 2;
  }
  return out;
}

inline std::vector<std::string> words_of(const std::string& line) {
  std::vector<std::string> w;
  std::size_t start = 0;
  for (;;) {
    const std::size_t sp = line.find(' ', start);
    w.push_back(line.substr(start, sp == std::string::npos ? std::string::npos : sp - start));
    if (sp == std::string::npos) return w;
    start = sp + 1;
  }
}

inline std::string join(const std::vector<std::string>& w) {
  std::string s;
  for (std::size_t i = 0; i < w.size(); ++i) s += (i ? " " : "") + w[i];
  return s;
}

inline bool is_meta_reply(const std::string& word) {
  return word == "HD" || word == "VA" || word == "EN" || word == "NF" || word == "NS" || word == "EX" ||
         word == "ME";
}

// The last CAS a reply carries (for {CAS} in a later segment).
inline std::string last_cas(const std::string& reply) {
  std::string found = "0";
  for (const auto& l : lines_of(reply)) {
    auto w = words_of(l);
    if (w[0] == "VALUE" && w.size() == 5) found = w[4];
    if (is_meta_reply(w[0]))
      for (const auto& t : w)
        if (t.size() > 1 && t[0] == 'c' && all_digits(t.substr(1))) found = t.substr(1);
  }
  return found;
}

inline std::string mask(const std::string& reply) {
  std::string out;
  std::size_t start = 0;
  while (start < reply.size()) {
    std::size_t nl = reply.find("\r\n", start);
    const bool terminated = nl != std::string::npos;
    if (!terminated) nl = reply.size();
    auto w = words_of(reply.substr(start, nl - start));
    if (w[0] == "VALUE" && w.size() == 5 && all_digits(w[4])) w[4] = "#";
    if (w[0] == "VERSION" && w.size() > 2) w.resize(2);
    if (is_meta_reply(w[0]))
      for (auto& t : w) {
        if (t.size() > 1 && t[0] == 'c' && all_digits(t.substr(1))) t = "c#";
        if (t.rfind("cas=", 0) == 0) t = "cas=#";
      }
    out += join(w) + (terminated ? "\r\n" : "");
    start = nl + 2;
  }
  return out;
}

// stats rows: non-STAT lines equal; our STAT names an in-order subset of theirs.
inline bool stats_match(const std::string& ours, const std::string& theirs, std::string& why) {
  std::vector<std::string> their_names, their_other, our_names, our_other;
  for (const auto& l : lines_of(theirs)) {
    auto w = words_of(l);
    (w[0] == "STAT" ? their_names.push_back(w.size() > 1 ? w[1] : "") : their_other.push_back(l));
  }
  for (const auto& l : lines_of(ours)) {
    auto w = words_of(l);
    (w[0] == "STAT" ? our_names.push_back(w.size() > 1 ? w[1] : "") : our_other.push_back(l));
  }
  if (our_other != their_other) {
    why = "non-STAT lines differ";
    return false;
  }
  std::size_t j = 0;
  for (const auto& n : our_names) {
    while (j < their_names.size() && their_names[j] != n) ++j;
    if (j == their_names.size()) {
      why = "STAT " + n + " is not in memcached's list, or out of its order";
      return false;
    }
    ++j;
  }
  return true;
}

// Rows write "cas k 0 0 1 1" or "C1" to mean a CAS that does not match; a
// fresh store's first CAS is 1, so some are handed out first (memcached's
// counter is far along by then too).
inline void warm_up(cache_test::fixture& f) {
  for (int i = 0; i < 100; ++i)
    f.store.modify("warm-up", f.clock, [](dhtkit::cache::item_ref*) -> dhtkit::cache::decision {
      return dhtkit::cache::new_value{};
    });
  f.store.flush_all();
}

inline bool has_long_line(const std::string& request) {
  std::size_t start = 0;
  const std::string all = unescape(request);
  while (start < all.size()) {
    std::size_t nl = all.find('\n', start);
    if (nl == std::string::npos) nl = all.size();
    if (nl - start > 2000) return true;
    start = nl + 1;
  }
  return false;
}

}  // namespace conformance

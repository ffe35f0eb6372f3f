/// @file
/// A keyring file: the keys of a dhtkit::keyring (keyring.hpp), one base64
/// key per line, the first key primary. Blank lines and lines starting with
/// '#' are skipped; spaces around a key and a CR before the newline are
/// ignored. Every problem is reported with its line number, and nothing
/// from the file is trusted: its size, each line's length and the number of
/// keys are bounded.
///
///     # dhtkit gossip keyring: the first key seals, every key opens
///     q5mI1u4RKNr2r5gXGH8gDE0rWl0fTJm/2K0dJFZ0Fqg=
///     3mQ3p0Gg7sOqxbL7zV6c9yYp0kQm4x8v1eW2tZr5nAs=
///
/// A key is made with `head -c 32 /dev/urandom | base64`.
///
/// @code
/// dhtkit::keyring_file f = dhtkit::read_keyring_file("/etc/dhtkit/gossip.keys");
/// if (!f.ok()) { std::fprintf(stderr, "%s\n", f.error.c_str()); return 1; }   // "...: line 2: not base64"
/// auto ring = std::make_shared<dhtkit::keyring>(f.keys);
/// @endcode
#pragma once

#include <openssl/evp.h>

#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "dhtkit/security/keyring.hpp"

namespace dhtkit {

/// The keys a keyring file holds, or why it holds none.
struct keyring_file {
  std::vector<keyring::key_type> keys;  ///< primary first; empty when error is set
  std::string error;                    ///< what is wrong, naming the line; empty when the file is good
  bool ok() const noexcept { return error.empty(); }
};

/// A keyring file is refused past this size: a few dozen keys fit in 4 KiB.
inline constexpr std::size_t keyring_file_max_bytes = 64 * 1024;

namespace detail::keyring {

inline bool is_base64_char(char c) noexcept {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/';
}

// Standard base64 with padding; nothing else is accepted. Empty on error
// (a key is never empty).
inline std::vector<std::byte> decode_base64(std::string_view s) {
  if (s.empty() || s.size() % 4 != 0 || s.size() > 4 * 1024) return {};
  std::size_t pad = 0;
  while (pad < 2 && s[s.size() - 1 - pad] == '=') ++pad;
  for (std::size_t i = 0; i < s.size() - pad; ++i)
    if (!is_base64_char(s[i])) return {};
  std::vector<std::byte> out(s.size() / 4 * 3);
  // EVP_DecodeBlock decodes whole groups and counts '=' as zero bits: the
  // padding's bytes are dropped here.
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(s.data()), static_cast<int>(s.size()));
  if (n < 0 || static_cast<std::size_t>(n) != out.size()) return {};
  out.resize(out.size() - pad);
  return out;
}

}  // namespace detail::keyring

/// Parses a keyring file's text (see keyring_file.hpp). `source` names the
/// file in error messages.
inline keyring_file parse_keyring_file(std::string_view text, const std::string& source = "keyring") {
  keyring_file f;
  std::vector<std::size_t> lines;  // the line of each key
  auto fail = [&](std::size_t line, const std::string& what) {
    f.keys.clear();
    f.error = source + (line ? ": line " + std::to_string(line) : std::string()) + ": " + what;
    return f;
  };
  if (text.size() > keyring_file_max_bytes)
    return fail(0, "larger than " + std::to_string(keyring_file_max_bytes) + " bytes; not a keyring file");
  std::size_t line = 0;
  while (!text.empty()) {
    ++line;
    const std::size_t end = text.find('\n');
    std::string_view l = text.substr(0, end);
    text = end == std::string_view::npos ? std::string_view{} : text.substr(end + 1);
    while (!l.empty() && (l.back() == '\r' || l.back() == ' ' || l.back() == '\t')) l.remove_suffix(1);
    while (!l.empty() && (l.front() == ' ' || l.front() == '\t')) l.remove_prefix(1);
    if (l.empty() || l.front() == '#') continue;
    auto key = detail::keyring::decode_base64(l);
    if (key.empty())
      return fail(line, "not a base64 key (one key per line, e.g. from head -c 32 /dev/urandom | base64)");
    if (key.size() != 16 && key.size() != 24 && key.size() != 32) {
      const std::size_t size = key.size();
      OPENSSL_cleanse(key.data(), key.size());
      return fail(line, "the key is " + std::to_string(size) + " bytes; a key must be 16, 24 or 32 bytes");
    }
    for (std::size_t i = 0; i < f.keys.size(); ++i)
      if (f.keys[i] == key) return fail(line, "the same key as line " + std::to_string(lines[i]));
    if (f.keys.size() == keyring::max_keys)
      return fail(line, "more than " + std::to_string(keyring::max_keys) + " keys");
    f.keys.push_back(std::move(key));
    lines.push_back(line);
  }
  if (f.keys.empty()) return fail(0, "no key (the first key line is the primary key)");
  return f;
}

/// Reads and parses the keyring file at `path`; its error names the path
/// (and the line).
inline keyring_file read_keyring_file(const std::string& path) {
  struct closer {
    void operator()(std::FILE* f) const noexcept { std::fclose(f); }
  };
  std::unique_ptr<std::FILE, closer> file(std::fopen(path.c_str(), "rb"));
  keyring_file f;
  if (!file) {
    f.error = path + ": cannot read: " + std::strerror(errno);
    return f;
  }
  std::string text(keyring_file_max_bytes + 1, '\0');
  const std::size_t n = std::fread(text.data(), 1, text.size(), file.get());
  if (std::ferror(file.get())) {
    f.error = path + ": cannot read: " + std::strerror(errno);
    return f;
  }
  text.resize(n);
  f = parse_keyring_file(text, path);
  OPENSSL_cleanse(text.data(), text.size());
  return f;
}

}  // namespace dhtkit

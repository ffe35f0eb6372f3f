// The flags of a meta request: parsed once, in the client's order, into a
// table by letter, with the limits memcached puts on them.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include "protocol/request.hpp"

namespace dhtkit_cache {

namespace detail {

inline constexpr std::size_t max_opaque_length = 32;

// The flags of one meta request, in the order given.
struct meta_flags {
  std::array<std::string_view, max_tokens> tokens{};  // each flag token, in order
  std::size_t count = 0;
  std::array<std::string_view, 128> arg{};  // by flag letter: the token's argument
  std::array<bool, 128> has{};
  bool operator()(char c) const { return has[static_cast<unsigned char>(c) & 127]; }
  std::string_view operator[](char c) const { return arg[static_cast<unsigned char>(c) & 127]; }
};

enum class flag_error { none, invalid, duplicate, opaque_too_long };

// memcached refuses a meta command of 20 tokens or more (its flag buffer).
inline constexpr std::size_t max_meta_tokens = 19;

inline flag_error parse_meta_flags(const token_list& t, std::size_t first, std::string_view allowed,
                                   meta_flags& f) {
  for (std::size_t i = first; i < t.size(); ++i) {
    const std::string_view tok = t[i];
    const char c = tok[0];
    if (static_cast<unsigned char>(c) >= 128 || allowed.find(c) == std::string_view::npos)
      return flag_error::invalid;
    if (f.has[c]) return flag_error::duplicate;
    f.has[c] = true;
    f.arg[c] = tok.substr(1);
    f.tokens[f.count++] = tok;
    if (c == 'O' && tok.size() - 1 > max_opaque_length) return flag_error::opaque_too_long;
  }
  return flag_error::none;
}

inline std::optional<std::int32_t> flag_i32(const meta_flags& f, char c) { return parse_i32_wrapping(f[c]); }
inline std::optional<std::uint64_t> flag_u64(const meta_flags& f, char c) { return parse_u64(f[c]); }

}  // namespace detail

}  // namespace dhtkit_cache

// CRC32C (Castagnoli): the checksum of the wire envelope.
//
// CRC32C rather than the zlib CRC32 because it is what iSCSI, SCTP, ext4 and
// most storage and RPC systems use, its published test vectors (RFC 3720
// B.4) pin it down exactly, and CPUs have an instruction for it should it
// ever show up in a profile. This is a portable, constexpr slicing-by-8
// implementation: eight table lookups per eight input bytes, no intrinsics.
//
//   std::uint32_t c = dhtkit::detail::crc32c(bytes);              // whole buffer
//   std::uint32_t d = dhtkit::detail::crc32c_extend(crc32c(a), b); // == crc32c(a ++ b)
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

namespace dhtkit::detail {

namespace crc32c_impl {

// The Castagnoli polynomial 0x1EDC6F41, bit-reflected.
inline constexpr std::uint32_t reflected_polynomial = 0x82F63B78u;

using tables_type = std::array<std::array<std::uint32_t, 256>, 8>;

constexpr tables_type make_tables() noexcept {
  tables_type t{};
  for (std::uint32_t i = 0; i < 256; ++i) {
    std::uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1u) ? (c >> 1) ^ reflected_polynomial : c >> 1;
    t[0][i] = c;
  }
  // t[k][i] is the CRC of byte i followed by k zero bytes, which lets the
  // main loop fold eight input bytes with eight independent lookups.
  for (std::size_t k = 1; k < 8; ++k)
    for (std::size_t i = 0; i < 256; ++i) t[k][i] = (t[k - 1][i] >> 8) ^ t[0][t[k - 1][i] & 0xFFu];
  return t;
}

inline constexpr tables_type tables = make_tables();

constexpr std::uint32_t byte_at(std::span<const std::byte> data, std::size_t i) noexcept {
  return static_cast<std::uint32_t>(data[i]);
}

}  // namespace crc32c_impl

// Continues a CRC32C: crc32c_extend(crc32c(a), b) == crc32c(a followed by b).
constexpr std::uint32_t crc32c_extend(std::uint32_t crc, std::span<const std::byte> data) noexcept {
  using crc32c_impl::byte_at;
  const auto& t = crc32c_impl::tables;
  std::uint32_t c = ~crc;
  std::size_t i = 0;
  const std::size_t n = data.size();
  for (; i + 8 <= n; i += 8) {
    const std::uint32_t lo = c ^ (byte_at(data, i) | byte_at(data, i + 1) << 8 | byte_at(data, i + 2) << 16 |
                                  byte_at(data, i + 3) << 24);
    c = t[7][lo & 0xFFu] ^ t[6][(lo >> 8) & 0xFFu] ^ t[5][(lo >> 16) & 0xFFu] ^ t[4][lo >> 24] ^
        t[3][byte_at(data, i + 4)] ^ t[2][byte_at(data, i + 5)] ^ t[1][byte_at(data, i + 6)] ^
        t[0][byte_at(data, i + 7)];
  }
  for (; i < n; ++i) c = (c >> 8) ^ t[0][(c ^ byte_at(data, i)) & 0xFFu];
  return ~c;
}

constexpr std::uint32_t crc32c(std::span<const std::byte> data) noexcept { return crc32c_extend(0, data); }

}  // namespace dhtkit::detail

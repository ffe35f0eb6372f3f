// cereal archives for the wire codec: bounded, span-based, exception-checked.
//
// Why not cereal's PortableBinaryInputArchive: it reads a container's element
// count from the input and resize()s before reading a single element, so a
// 16-byte hostile message announcing 2^40 elements allocates terabytes (or
// throws std::bad_alloc from deep inside the decoder). bounded_input_archive
// reads the exact byte format PortableBinaryOutputArchive writes with
// little-endian output -- a leading 0x01 endianness byte, then every
// arithmetic value little-endian, sizes as u64 -- from a span with a cursor,
// and checks every count BEFORE cereal allocates for it:
//
//   * a container count must be <= limits.max_container_size and <= the bytes
//     left in the payload (every element of a supported type occupies at
//     least one byte on the wire, so a larger count cannot be honest);
//   * a string (or std::vector<std::byte> blob) length must be
//     <= limits.max_string_size and its bytes must all be present;
//   * std::map and std::set keys must arrive in strictly increasing order,
//     as the encoder writes them (otherwise a duplicate key would silently
//     vanish and one map would have many encodings);
//   * a bool must be 0 or 1 (anything else would be undefined behaviour once
//     loaded into a bool, and a second encoding of the same value);
//   * reading past the end is errc::truncated, never an out-of-bounds read.
//
// Consequence (the allocation bound): containers of structs, strings and
// other non-arithmetic elements are loaded one decoded element at a time
// (never resized to the announced count), strings and arithmetic arrays are
// resized only to a count whose bytes are present, and every element that
// loads consumes its own bytes. So decoding one message allocates O(payload
// size) -- at most about 16 times the payload length per level of nesting
// (an 8-byte integer array, a vector's amortized growth) -- and never more than
// max_container_size elements per container; nesting itself is capped at
// max_depth levels, so a recursive message type cannot overflow the stack.
// tests/wire_test.cpp measures the bound with a counting operator new.
//
// Limitation: a container whose elements serialize to zero bytes (a vector of
// empty structs) cannot be decoded with more elements than bytes left; such
// messages are refused, not mis-decoded.
//
// bounded_output_archive writes the same format into a std::vector<std::byte>
// (byte-identical to PortableBinaryOutputArchive with Options::LittleEndian(),
// which a test checks), enforces the same limits so that what one node encodes
// another node with the same limits can decode, and stops with
// errc::message_too_large as soon as the output outgrows its budget, so
// encoding a huge message never builds the whole thing first.
//
// Both archives report problems by throwing detail::wire_error; only the wire
// codec (wire.hpp) uses them, and it catches everything at its boundary.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <exception>
#include <iterator>
#include <limits>
#include <list>
#include <map>
#include <memory>
#include <set>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include <cereal/cereal.hpp>

#include "dhtkit/core/error.hpp"

namespace dhtkit::detail {

// The internal failure signal of the archives; never escapes wire.hpp.
class wire_error : public std::exception {
 public:
  explicit wire_error(errc code) noexcept : code_(code) {}
  errc code() const noexcept { return code_; }
  const char* what() const noexcept override { return "dhtkit wire archive error"; }

 private:
  errc code_;
};

struct archive_limits {
  std::uint64_t max_string_size;     // longest string / byte blob, in elements
  std::uint64_t max_container_size;  // most elements in any other container
  std::size_t max_output_size;       // output archive only: payload byte budget
  std::size_t max_depth;             // deepest nesting of structs and containers
};

// Counts how deep the archive is inside nested values (see prologue below).
class nesting_counter {
 public:
  explicit nesting_counter(std::size_t max) noexcept : max_(max) {}
  void enter() {
    if (++depth_ > max_) throw wire_error(errc::limit_exceeded);
  }
  void leave() noexcept { --depth_; }

 private:
  std::size_t depth_ = 0;
  std::size_t max_;
};

// The first payload byte PortableBinaryOutputArchive writes: 1 = little-endian.
inline constexpr std::uint8_t little_endian_marker = 1;

class bounded_output_archive
    : public cereal::OutputArchive<bounded_output_archive, cereal::AllowEmptyClassElision>,
      public nesting_counter {
 public:
  bounded_output_archive(std::vector<std::byte>& out, const archive_limits& limits)
      : cereal::OutputArchive<bounded_output_archive, cereal::AllowEmptyClassElision>(this),
        nesting_counter(limits.max_depth),
        out_(out),
        start_(out.size()),
        limits_(limits) {
    (*this)(little_endian_marker);
  }

  // Appends `size` bytes made of size / element_size little-endian elements.
  template <std::size_t element_size>
  void save_binary(const void* data, std::size_t size) {
    if (size > limits_.max_output_size - (out_.size() - start_)) throw wire_error(errc::message_too_large);
    const auto* src = static_cast<const std::byte*>(data);
    const std::size_t at = out_.size();
    out_.resize(at + size);
    if constexpr (std::endian::native == std::endian::little || element_size == 1) {
      if (size != 0) std::memcpy(out_.data() + at, src, size);
    } else {
      for (std::size_t i = 0; i < size; i += element_size)
        for (std::size_t j = 0; j < element_size; ++j) out_[at + i + j] = src[i + element_size - 1 - j];
    }
  }

  void check_container_size(std::uint64_t n) const {
    if (n > limits_.max_container_size) throw wire_error(errc::limit_exceeded);
  }
  void check_string_size(std::uint64_t n) const {
    if (n > limits_.max_string_size) throw wire_error(errc::limit_exceeded);
  }

 private:
  std::vector<std::byte>& out_;
  std::size_t start_;
  archive_limits limits_;
};

class bounded_input_archive
    : public cereal::InputArchive<bounded_input_archive, cereal::AllowEmptyClassElision>,
      public nesting_counter {
 public:
  bounded_input_archive(std::span<const std::byte> in, const archive_limits& limits)
      : cereal::InputArchive<bounded_input_archive, cereal::AllowEmptyClassElision>(this),
        nesting_counter(limits.max_depth),
        in_(in),
        limits_(limits) {
    std::uint8_t marker = 0;
    (*this)(marker);
    // Big-endian payloads are valid cereal but not valid dhtkit: one byte
    // order keeps every message at exactly one encoding.
    if (marker != little_endian_marker) throw wire_error(errc::malformed_payload);
  }

  std::size_t remaining() const noexcept { return in_.size() - pos_; }

  // Reads `size` bytes made of size / element_size little-endian elements.
  // With check_bool, every byte must be 0 or 1 (checked before it is stored).
  template <std::size_t element_size, bool check_bool = false>
  void load_binary(void* data, std::size_t size) {
    if (size > remaining()) throw wire_error(errc::truncated);
    const std::byte* src = in_.data() + pos_;
    if constexpr (check_bool)
      for (std::size_t i = 0; i < size; ++i)
        if (static_cast<unsigned char>(src[i]) > 1) throw wire_error(errc::malformed_payload);
    auto* dst = static_cast<std::byte*>(data);
    if constexpr (std::endian::native == std::endian::little || element_size == 1) {
      if (size != 0) std::memcpy(dst, src, size);
    } else {
      for (std::size_t i = 0; i < size; i += element_size)
        for (std::size_t j = 0; j < element_size; ++j) dst[i + j] = src[i + element_size - 1 - j];
    }
    pos_ += size;
  }

  // A count about to be handed to resize()/reserve(): bounded by the limit
  // and by the bytes that could possibly hold that many elements.
  void check_container_size(std::uint64_t n) const {
    if (n > limits_.max_container_size) throw wire_error(errc::limit_exceeded);
    if (n > remaining()) throw wire_error(errc::truncated);
  }
  void check_string_size(std::uint64_t n, std::size_t char_size) const {
    if (n > limits_.max_string_size) throw wire_error(errc::limit_exceeded);
    if (n > remaining() / char_size) throw wire_error(errc::truncated);
  }

 private:
  std::span<const std::byte> in_;
  std::size_t pos_ = 0;
  archive_limits limits_;
};

template <class A>
inline constexpr bool is_bounded_archive_v =
    std::is_same_v<A, bounded_input_archive> || std::is_same_v<A, bounded_output_archive>;

// ---- arithmetic -----------------------------------------------------------

template <class T>
std::enable_if_t<std::is_arithmetic_v<T>> CEREAL_SAVE_FUNCTION_NAME(bounded_output_archive& ar, const T& t) {
  static_assert(!std::is_floating_point_v<T> || std::numeric_limits<T>::is_iec559,
                "dhtkit wire: floating point values must be IEEE 754");
  ar.template save_binary<sizeof(T)>(std::addressof(t), sizeof(T));
}

template <class T>
std::enable_if_t<std::is_arithmetic_v<T>> CEREAL_LOAD_FUNCTION_NAME(bounded_input_archive& ar, T& t) {
  static_assert(!std::is_floating_point_v<T> || std::numeric_limits<T>::is_iec559,
                "dhtkit wire: floating point values must be IEEE 754");
  ar.template load_binary<sizeof(T), std::is_same_v<T, bool>>(std::addressof(t), sizeof(T));
}

// ---- nesting depth ----------------------------------------------------------
// cereal calls prologue before and epilogue after processing every value; a
// struct or container (anything but an arithmetic value or one of cereal's
// own wrappers, which are not levels of the message) is one level deeper.

template <class T>
inline constexpr bool is_nesting_level_v = std::is_class_v<T>;
template <class T>
inline constexpr bool is_nesting_level_v<cereal::NameValuePair<T>> = false;
template <class T>
inline constexpr bool is_nesting_level_v<cereal::SizeTag<T>> = false;
template <class T>
inline constexpr bool is_nesting_level_v<cereal::BinaryData<T>> = false;
template <class K, class V>
inline constexpr bool is_nesting_level_v<cereal::MapItem<K, V>> = false;

// One overload per archive type: more specialized than cereal's catch-all
// prologue(Archive&, const T&), so these are the ones chosen.
template <class T>
void prologue(bounded_input_archive& ar, const T&) {
  if constexpr (is_nesting_level_v<T>) ar.enter();
}
template <class T>
void epilogue(bounded_input_archive& ar, const T&) {
  if constexpr (is_nesting_level_v<T>) ar.leave();
}
template <class T>
void prologue(bounded_output_archive& ar, const T&) {
  if constexpr (is_nesting_level_v<T>) ar.enter();
}
template <class T>
void epilogue(bounded_output_archive& ar, const T&) {
  if constexpr (is_nesting_level_v<T>) ar.leave();
}

// ---- cereal's wrapper types ------------------------------------------------

template <class Archive, class T>
std::enable_if_t<is_bounded_archive_v<Archive>> CEREAL_SERIALIZE_FUNCTION_NAME(Archive& ar,
                                                                               cereal::NameValuePair<T>& t) {
  ar(t.value);
}

template <class T>
void CEREAL_SAVE_FUNCTION_NAME(bounded_output_archive& ar, const cereal::SizeTag<T>& t) {
  const auto n = static_cast<std::uint64_t>(t.size);
  ar.check_container_size(n);
  ar(n);
}

template <class T>
void CEREAL_LOAD_FUNCTION_NAME(bounded_input_archive& ar, cereal::SizeTag<T>& t) {
  std::uint64_t n = 0;
  ar(n);
  ar.check_container_size(n);  // before the caller resizes anything
  t.size = static_cast<std::remove_reference_t<T>>(n);
}

template <class T>
void CEREAL_SAVE_FUNCTION_NAME(bounded_output_archive& ar, const cereal::BinaryData<T>& bd) {
  using element = std::remove_cv_t<std::remove_pointer_t<T>>;
  ar.template save_binary<sizeof(element)>(bd.data, static_cast<std::size_t>(bd.size));
}

template <class T>
void CEREAL_LOAD_FUNCTION_NAME(bounded_input_archive& ar, cereal::BinaryData<T>& bd) {
  using element = std::remove_cv_t<std::remove_pointer_t<T>>;
  ar.template load_binary<sizeof(element), std::is_same_v<element, bool>>(bd.data,
                                                                          static_cast<std::size_t>(bd.size));
}

// ---- strings and byte blobs ------------------------------------------------
// Same bytes as cereal's own string / vector serializers (u64 length, then
// the characters), but bounded by max_string_size rather than
// max_container_size, and checked before the resize. These overloads are more
// specialized than cereal's, so they win even when cereal/types/string.hpp or
// vector.hpp is included.

template <class C, class Tr, class A>
void CEREAL_SAVE_FUNCTION_NAME(bounded_output_archive& ar, const std::basic_string<C, Tr, A>& s) {
  ar.check_string_size(s.size());
  ar(static_cast<std::uint64_t>(s.size()));
  ar.template save_binary<sizeof(C)>(s.data(), s.size() * sizeof(C));
}

template <class C, class Tr, class A>
void CEREAL_LOAD_FUNCTION_NAME(bounded_input_archive& ar, std::basic_string<C, Tr, A>& s) {
  std::uint64_t n = 0;
  ar(n);
  ar.check_string_size(n, sizeof(C));
  s.resize(static_cast<std::size_t>(n));
  ar.template load_binary<sizeof(C)>(s.data(), s.size() * sizeof(C));
}

template <class A>
void CEREAL_SAVE_FUNCTION_NAME(bounded_output_archive& ar, const std::vector<std::byte, A>& v) {
  ar.check_string_size(v.size());
  ar(static_cast<std::uint64_t>(v.size()));
  ar.template save_binary<1>(v.data(), v.size());
}

template <class A>
void CEREAL_LOAD_FUNCTION_NAME(bounded_input_archive& ar, std::vector<std::byte, A>& v) {
  std::uint64_t n = 0;
  ar(n);
  ar.check_string_size(n, 1);
  v.resize(static_cast<std::size_t>(n));
  ar.template load_binary<1>(v.data(), v.size());
}

// ---- sequences of non-arithmetic elements ----------------------------------
// cereal's own loaders resize() to the announced count before reading an
// element, allocating count * sizeof(element) up front: with 16 KiB elements
// a 64 KiB message could commit 1 GiB. These append one decoded element at a
// time instead, so memory follows the bytes actually decoded (amortized
// growth: at most about twice what the decoded elements need). Same bytes as
// cereal's serializers; arithmetic element types keep cereal's bulk path,
// whose allocation is at most sizeof(element) <= 16 bytes per payload byte.

template <class Sequence>
void load_sequence(bounded_input_archive& ar, Sequence& seq) {
  cereal::size_type n = 0;
  ar(cereal::make_size_tag(n));
  seq.clear();
  for (cereal::size_type i = 0; i < n; ++i) {
    seq.emplace_back();
    ar(seq.back());
  }
}

template <class T>
inline constexpr bool is_element_by_element_v = !std::is_arithmetic_v<T> && !std::is_same_v<T, std::byte>;

template <class T, class A>
requires is_element_by_element_v<T>
void CEREAL_LOAD_FUNCTION_NAME(bounded_input_archive& ar, std::vector<T, A>& v) { load_sequence(ar, v); }

template <class T, class A>
requires is_element_by_element_v<T>
void CEREAL_LOAD_FUNCTION_NAME(bounded_input_archive& ar, std::deque<T, A>& d) { load_sequence(ar, d); }

template <class T, class A>
requires is_element_by_element_v<T>
void CEREAL_LOAD_FUNCTION_NAME(bounded_input_archive& ar, std::list<T, A>& l) { load_sequence(ar, l); }

// ---- ordered associative containers -----------------------------------------
// Same bytes as cereal's map/set serializers; the loads additionally require
// strictly increasing keys, so each map or set has exactly one encoding.
// (Unordered containers are written in hash-table order, which differs
// between standard libraries: prefer std::map / std::set in messages.)

template <class K, class V, class C, class A>
void CEREAL_LOAD_FUNCTION_NAME(bounded_input_archive& ar, std::map<K, V, C, A>& m) {
  cereal::size_type n = 0;
  ar(cereal::make_size_tag(n));
  m.clear();
  for (cereal::size_type i = 0; i < n; ++i) {
    K key{};
    V value{};
    ar(cereal::make_map_item(key, value));
    if (!m.empty() && !m.key_comp()(std::prev(m.end())->first, key))
      throw wire_error(errc::malformed_payload);
    m.emplace_hint(m.end(), std::move(key), std::move(value));
  }
}

template <class K, class C, class A>
void CEREAL_LOAD_FUNCTION_NAME(bounded_input_archive& ar, std::set<K, C, A>& s) {
  cereal::size_type n = 0;
  ar(cereal::make_size_tag(n));
  s.clear();
  for (cereal::size_type i = 0; i < n; ++i) {
    K key{};
    ar(key);
    if (!s.empty() && !s.key_comp()(*std::prev(s.end()), key)) throw wire_error(errc::malformed_payload);
    s.emplace_hint(s.end(), std::move(key));
  }
}

}  // namespace dhtkit::detail

CEREAL_REGISTER_ARCHIVE(dhtkit::detail::bounded_output_archive)
CEREAL_REGISTER_ARCHIVE(dhtkit::detail::bounded_input_archive)
CEREAL_SETUP_ARCHIVE_TRAITS(dhtkit::detail::bounded_input_archive, dhtkit::detail::bounded_output_archive)

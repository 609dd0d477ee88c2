#pragma once
// IP addresses, prefixes and MAC addresses as small value types with pure arithmetic.
// IPv4 and IPv6 share one type; the value is kept as a 128-bit integer so that an IPv6 /64
// can be walked and compared without allocating anything proportional to its size.

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"

namespace smv {

__extension__ typedef unsigned __int128 Uint128;

enum class Family { kV4, kV6 };

class IpAddress {
 public:
  IpAddress() = default;
  IpAddress(Family family, Uint128 value) : family_(family), value_(value) {}

  // Accepts dotted IPv4 or any IPv6 text form; no prefix length.
  static std::optional<IpAddress> Parse(std::string_view text);

  Family family() const { return family_; }
  bool is_v4() const { return family_ == Family::kV4; }
  Uint128 value() const { return value_; }
  int bits() const { return is_v4() ? 32 : 128; }
  std::string ToString() const;

  friend bool operator==(const IpAddress&, const IpAddress&) = default;
  friend auto operator<=>(const IpAddress& a, const IpAddress& b) {
    if (a.family_ != b.family_) return a.family_ <=> b.family_;
    return a.value_ <=> b.value_;
  }

 private:
  Family family_ = Family::kV4;
  Uint128 value_ = 0;
};

// A network prefix such as 192.0.2.0/24. Parse() keeps host bits so callers can report them.
class Prefix {
 public:
  Prefix() = default;
  Prefix(IpAddress address, int length) : address_(address), length_(length) {}

  // "192.0.2.0/24" or "2001:db8::/64".
  static std::optional<Prefix> Parse(std::string_view text);

  const IpAddress& address() const { return address_; }
  int length() const { return length_; }
  Family family() const { return address_.family(); }

  IpAddress Network() const;  // host bits cleared
  IpAddress Last() const;     // host bits set (the IPv4 broadcast address)
  bool HasHostBits() const { return Network() != address_; }
  bool Contains(const IpAddress& ip) const;
  bool Contains(const Prefix& other) const;
  bool Overlaps(const Prefix& other) const;
  std::string ToString() const;  // as given, host bits included

  friend bool operator==(const Prefix&, const Prefix&) = default;

 private:
  IpAddress address_;
  int length_ = 0;
};

class MacAddress {
 public:
  MacAddress() = default;
  explicit MacAddress(std::array<uint8_t, 6> bytes) : bytes_(bytes) {}
  // "02:42:ac:11:00:02" (colons or dashes, any case).
  static std::optional<MacAddress> Parse(std::string_view text);
  const std::array<uint8_t, 6>& bytes() const { return bytes_; }
  std::string ToString() const;  // lowercase, colon separated
  friend bool operator==(const MacAddress&, const MacAddress&) = default;

 private:
  std::array<uint8_t, 6> bytes_{};
};

// "HOST:PORT" as users write a listen address or an etcd member; an IPv6 HOST keeps its brackets
// ("[2001:db8::1]:2379"). The one parser of the form; the error says what is wrong, and the
// caller names its option.
struct HostPort {
  std::string host;
  int port = 0;
};
Result<HostPort> ParseHostPort(std::string_view text);

}  // namespace smv

#include "driver/link_names.h"

#include <fmt/format.h>

#include <cstdint>
#include <optional>
#include <random>

#include "common/ip.h"

namespace smv::driver {

std::string EndpointLinkName(const std::string& endpoint_id) {
  return fmt::format("{}{}", kEndpointLinkPrefix, endpoint_id.substr(0, kLinkIdDigits));
}

std::string HostLinkName(const std::string& network_id) {
  return fmt::format("{}{}", kHostLinkPrefix, network_id.substr(0, kLinkIdDigits));
}

bool HasOurLinkPrefix(std::string_view name) { return name.starts_with(kEndpointLinkPrefix); }

bool HasEndpointLinkShape(std::string_view name) {
  return name.starts_with(kEndpointLinkPrefix) && name.size() == kEndpointLinkPrefix.size() + kLinkIdDigits;
}

bool HasHostLinkShape(std::string_view name) { return name.starts_with(kHostLinkPrefix); }

bool IsContainerLinkKind(std::string_view kind) { return kind == "macvlan" || kind == "ipvlan"; }

std::string MacForAddress(const std::string& address_v4, const std::string& address_v6) {
  uint32_t low = 0;
  if (std::optional<Prefix> v4 = Prefix::Parse(address_v4); v4 && v4->address().is_v4()) {
    low = static_cast<uint32_t>(v4->address().value());
  } else if (std::optional<Prefix> v6 = Prefix::Parse(address_v6); v6 && !v6->address().is_v4()) {
    uint64_t hash = 14695981039346656037ull;  // FNV-1a over the 16 bytes
    for (int shift = 120; shift >= 0; shift -= 8) {
      hash = (hash ^ static_cast<uint8_t>(v6->address().value() >> shift)) * 1099511628211ull;
    }
    low = static_cast<uint32_t>(hash ^ (hash >> 32));
  } else {
    std::random_device rd;
    low = rd();
  }
  return MacAddress({0x02, 0x42, static_cast<uint8_t>(low >> 24), static_cast<uint8_t>(low >> 16),
                     static_cast<uint8_t>(low >> 8), static_cast<uint8_t>(low)})
      .ToString();
}

}  // namespace smv::driver

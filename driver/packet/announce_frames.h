#pragma once
// The Ethernet frames of an announcement, built byte by byte (RFC 5227 section 3 for ARP,
// RFC 4861 section 7.2.6 for the unsolicited neighbour advertisement).

#include <cstdint>
#include <vector>

#include "common/ip.h"

namespace smv::driver {

// ARP request from `mac` for `address` to itself (sender = target address), to broadcast.
std::vector<uint8_t> GratuitousArpFrame(const MacAddress& mac, const IpAddress& address);
// Neighbour advertisement of `address` at `mac` to all nodes (ff02::1), Override set,
// Solicited clear, hop limit 255, with the target link-layer address option.
std::vector<uint8_t> UnsolicitedNaFrame(const MacAddress& mac, const IpAddress& address);
// The ICMPv6 checksum of `icmp` (its checksum field included) sent from `src` to `dst`: 0 when
// the field holds the right value.
uint16_t Icmpv6Checksum(const IpAddress& src, const IpAddress& dst, const std::vector<uint8_t>& icmp);

}  // namespace smv::driver

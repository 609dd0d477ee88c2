#pragma once
// What the links of static-macvlan are called and which MAC they get: pure functions, so start-up,
// doctor and the verbs recognise our links by the same shape.

#include <cstddef>
#include <string>
#include <string_view>

#include "driver/network_options.h"

namespace smv::driver {

inline constexpr std::string_view kEndpointLinkPrefix = "smv";
// Hex digits of the id in a link's name: "smv" + 11 = 14 bytes, within the 15 a name may have.
// Fixed: start-up recognises links of ours (left by a crash) by this shape.
inline constexpr size_t kLinkIdDigits = 11;
static_assert(kEndpointLinkPrefix.size() + kLinkIdDigits <= kMaxInterfaceName);
// The host's link of a network with -o host_ip ('h' is no hex digit: never an endpoint's name).
inline constexpr std::string_view kHostLinkPrefix = "smvh";
static_assert(kHostLinkPrefix.size() + kLinkIdDigits <= kMaxInterfaceName);

// Host-side name of an endpoint's macvlan link: "smv" + 11 hex digits of the endpoint id.
std::string EndpointLinkName(const std::string& endpoint_id);
// The host's own macvlan link of a network with -o host_ip: "smvh" + 11 hex digits of its id.
std::string HostLinkName(const std::string& network_id);
// A name any link of ours has ("smv..."): such a link is never a network's parent.
bool HasOurLinkPrefix(std::string_view name);
// The exact shape of an endpoint's link name (what the orphan sweep deletes).
bool HasEndpointLinkShape(std::string_view name);
// The shape of a network's host link name.
bool HasHostLinkShape(std::string_view name);
// The kinds of link a container gets from us.
bool IsContainerLinkKind(std::string_view kind);

// A MAC derived from the endpoint's address, so a container that comes back with its address
// (sticky by name) also comes back with its MAC, on any host of a fleet, with nothing stored:
// 02:42 and the IPv4 address (as Docker's bridge does), or for an IPv6-only endpoint 02:42 and
// 32 bits of a hash of the whole IPv6 address (its low bits alone would repeat across subnets).
// Random (locally administered) when neither address parses.
std::string MacForAddress(const std::string& address_v4, const std::string& address_v6);

}  // namespace smv::driver

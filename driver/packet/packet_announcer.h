#pragma once
// Announcer on an AF_PACKET socket: the frame leaves the host on the container's parent (or VLAN)
// link with the container's MAC as its source, so nothing enters the container's namespace.
// Needs CAP_NET_RAW (the daemon runs as root). Sibling containers on the same parent do not see
// it (a macvlan parent's own transmissions go to the wire only); neighbours on the LAN do.

#include <optional>
#include <string>

#include "driver/announce/announcer.h"

namespace smv::driver {

class PacketAnnouncer : public Announcer {
 public:
  Status Send(const Announcement& a) override;
};

// The MAC of host link `link` (SIOCGIFHWADDR), or nullopt when there is no such link.
std::optional<MacAddress> LinkMac(const std::string& link);

}  // namespace smv::driver

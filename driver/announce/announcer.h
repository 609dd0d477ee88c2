#pragma once
// Telling the LAN where an address lives now: a gratuitous ARP (IPv4) or an unsolicited
// neighbour advertisement (IPv6) with the container's MAC and address, so that neighbours and
// routers replace a cached MAC at once instead of black-holing traffic until it expires (the
// address is sticky, the MAC may not be, and a name may move to another host). Docker 28+ sends
// NAs of its own for our containers too, and the plugin leaves IPv6 to it (engine_announces.h);
// 20.10-27 send nothing. PacketAnnouncer (driver/packet/) sends them, tests/support/ fakes them.

#include <string>

#include "common/ip.h"
#include "common/status.h"

namespace smv::driver {

struct Announcement {
  std::string link;  // the host interface the container's macvlan sits on (parent or VLAN link)
  MacAddress mac;    // the container's
  IpAddress address;
  friend bool operator==(const Announcement&, const Announcement&) = default;
};

class Announcer {
 public:
  virtual ~Announcer() = default;
  // Sends one announcement on `a.link`.
  virtual Status Send(const Announcement& a) = 0;
};

}  // namespace smv::driver

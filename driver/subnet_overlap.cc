#include "driver/subnet_overlap.h"

namespace smv::driver {

bool ShareWire(const NetworkOptions& a, const NetworkOptions& b) {
  // The link the containers' links hang on is the wire: a link name is one link on a host, so
  // -o parent=eth1 -o vlan=228 and -o parent=eth1.228 are one wire.
  return a.MacvlanParent() == b.MacvlanParent();
}

std::vector<SubnetOverlap> OverlappingSubnets(const std::vector<Prefix>& subnets, const std::vector<Prefix>& others) {
  std::vector<SubnetOverlap> out;
  for (const Prefix& subnet : subnets) {
    for (const Prefix& other : others) {
      if (subnet.Overlaps(other)) out.push_back({subnet, other});
    }
  }
  return out;
}

}  // namespace smv::driver

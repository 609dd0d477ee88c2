#pragma once
// The one overlap rule: networks whose links share a wire need subnets that do not overlap.
// DriverService::CreateNetwork refuses a network that would break it; the doctor
// (daemon/cli/doctor_checks.cc) reports stored networks that do. Pure functions, unit-tested in tests/unit/driver.

#include <vector>

#include "common/ip.h"
#include "driver/network_options.h"

namespace smv::driver {

// Whether two networks' links share one wire: the same parent interface and the same link their
// macvlan or ipvlan links hang on (NetworkOptions::MacvlanParent: the VLAN link, or the parent).
bool ShareWire(const NetworkOptions& a, const NetworkOptions& b);

struct SubnetOverlap {
  Prefix subnet;  // of the first list
  Prefix other;   // of the second list
};

// Each pair of a subnet of `subnets` and one of `others` that overlap, in the order of `subnets`,
// then of `others`. Subnets of two families never overlap.
std::vector<SubnetOverlap> OverlappingSubnets(const std::vector<Prefix>& subnets, const std::vector<Prefix>& others);

}  // namespace smv::driver

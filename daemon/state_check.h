#pragma once
// Consistency check of the stored state (static-macvlan fsck): pure, over store snapshots.

#include <string>
#include <vector>

#include "driver/network_state.h"
#include "ipam/ipam_store.h"

namespace smv::daemon {

// Every problem found, one sentence each; empty when the state is consistent:
//   every lease lies in an active pool and inside its subnet; no address is leased twice in one
//   subnet; every reservation lies inside its pool's subnet and no two names reserve one address;
//   every endpoint belongs to a stored network and its address is leased; in a shared book no
//   name is held on two nodes at once.
std::vector<std::string> CheckState(const ipam::IpamSnapshot& ipam, const driver::DriverSnapshot& driver);

}  // namespace smv::daemon

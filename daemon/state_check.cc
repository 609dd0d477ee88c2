#include "daemon/state_check.h"

#include <map>
#include <set>

#include <fmt/format.h>

#include "common/log.h"

namespace smv::daemon {

namespace {

using Problems = std::vector<std::string>;
using PoolsById = std::map<std::string, const ipam::PoolRecord*>;
using Leased = std::map<std::pair<std::string, std::string>, std::string>;  // (subnet, address) -> pool

// Each lease in an active pool, inside its subnet, and no address leased twice. Returns what is leased.
Leased CheckLeases(const ipam::IpamSnapshot& ipam, const PoolsById& pools, Problems& problems) {
  Leased leased;
  for (const ipam::LeaseRecord& l : ipam.leases) {
    auto p = pools.find(l.pool_id);
    if (p == pools.end() || p->second->users == 0) {
      problems.push_back(
          fmt::format("lease {} belongs to pool \"{}\", which is not active", l.address.ToString(), l.pool_id));
      continue;
    }
    const Prefix& subnet = p->second->config.subnet;
    if (!subnet.Contains(l.address)) {
      problems.push_back(
          fmt::format("lease {} lies outside its pool's subnet {}", l.address.ToString(), subnet.ToString()));
    }
    auto [it, fresh] = leased.emplace(std::make_pair(subnet.ToString(), l.address.ToString()), l.pool_id);
    if (!fresh) {
      problems.push_back(fmt::format("address {} is leased twice (pools \"{}\" and \"{}\")", l.address.ToString(),
                                     it->second, l.pool_id));
    }
  }
  return leased;
}

// A shared book: a name runs on one node at a time.
void CheckNamesOnOneNode(const ipam::IpamSnapshot& ipam, Problems& problems) {
  std::map<std::pair<std::string, std::string>, const ipam::LeaseRecord*> held_by;  // (pool, name) -> lease
  for (const ipam::LeaseRecord& l : ipam.leases) {
    if (l.lease.name.empty() || l.lease.node.empty()) continue;
    auto [it, fresh] = held_by.emplace(std::make_pair(l.pool_id, l.lease.name), &l);
    if (!fresh && it->second->lease.node != l.lease.node) {
      problems.push_back(fmt::format("name {} is held on two nodes in pool \"{}\": {} on {} and {} on {}", l.lease.name,
                                     l.pool_id, it->second->address.ToString(), it->second->lease.node,
                                     l.address.ToString(), l.lease.node));
    }
  }
}

void CheckReservations(const ipam::IpamSnapshot& ipam, const PoolsById& pools, Problems& problems) {
  std::set<std::pair<std::string, std::string>> reserved;  // (pool, address)
  for (const ipam::ReservationRecord& r : ipam.reservations) {
    auto p = pools.find(r.pool_id);
    if (p == pools.end()) {
      problems.push_back(fmt::format("reservation {} -> {} names a pool \"{}\" that is not stored", r.name,
                                     r.address.ToString(), r.pool_id));
      continue;
    }
    if (!p->second->config.subnet.Contains(r.address)) {
      problems.push_back(fmt::format("reservation {} -> {} lies outside subnet {}", r.name, r.address.ToString(),
                                     p->second->config.subnet.ToString()));
    }
    if (!reserved.emplace(r.pool_id, r.address.ToString()).second) {
      problems.push_back(
          fmt::format("address {} is reserved for two names in pool \"{}\"", r.address.ToString(), r.pool_id));
    }
  }
}

// Each endpoint in a stored network, its IPv4 address leased.
void CheckEndpoints(const driver::DriverSnapshot& driver, const Leased& leased, Problems& problems) {
  std::set<std::string> networks;
  for (const driver::NetworkRecord& n : driver.networks) networks.insert(n.id);
  for (const driver::EndpointRecord& e : driver.endpoints) {
    if (!networks.contains(e.network_id)) {
      problems.push_back(fmt::format("endpoint {} belongs to network {}, which is not stored", ShortId(e.endpoint_id),
                                     ShortId(e.network_id)));
    }
    if (std::optional<Prefix> address = Prefix::Parse(e.address_v4)) {
      bool found = false;
      for (const auto& [key, pool] : leased) found = found || key.second == address->address().ToString();
      if (!found) {
        problems.push_back(fmt::format("endpoint {} has address {}, which is not leased", ShortId(e.endpoint_id),
                                       address->address().ToString()));
      }
    }
  }
}

}  // namespace

std::vector<std::string> CheckState(const ipam::IpamSnapshot& ipam, const driver::DriverSnapshot& driver) {
  Problems problems;
  PoolsById pools;
  for (const ipam::PoolRecord& p : ipam.pools) pools[p.config.id] = &p;
  const Leased leased = CheckLeases(ipam, pools, problems);
  CheckNamesOnOneNode(ipam, problems);
  CheckReservations(ipam, pools, problems);
  CheckEndpoints(driver, leased, problems);
  return problems;
}

}  // namespace smv::daemon

#pragma once
// What the network driver persists (CreateNetwork is never sent again after a restart, so the
// options must be kept), and the small store interface it is kept behind.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/ip.h"
#include "common/status.h"

namespace smv::driver {

struct IpData {
  Prefix pool;                       // the subnet
  std::optional<IpAddress> gateway;  // from IPv4Data/IPv6Data "Gateway"
  friend bool operator==(const IpData&, const IpData&) = default;
};

// Both families' pools in one list, IPv4 first: one loop instead of one per family.
inline std::vector<IpData> AllPools(const std::vector<IpData>& ipv4, const std::vector<IpData>& ipv6) {
  std::vector<IpData> out = ipv4;
  out.insert(out.end(), ipv6.begin(), ipv6.end());
  return out;
}
inline std::vector<Prefix> SubnetsOf(const std::vector<IpData>& pools) {
  std::vector<Prefix> out;
  for (const IpData& data : pools) out.push_back(data.pool);
  return out;
}

struct NetworkRecord {
  std::string id;
  std::map<std::string, std::string> options;  // the -o options as given (parsed on load)
  std::vector<IpData> ipv4;
  std::vector<IpData> ipv6;
  bool internal = false;

  // The network's pools and subnets, IPv4 first: the one way to list them.
  std::vector<IpData> Pools() const { return AllPools(ipv4, ipv6); }
  std::vector<Prefix> Subnets() const { return SubnetsOf(Pools()); }
};

// A link the driver manages on the host side: a VLAN link it created or adopted, or a parent
// whose promiscuous mode it switched on. Users are the networks whose options name it.
struct LinkRecord {
  std::string name;
  bool created_by_us = false;  // VLAN link: delete it when its last network goes
  bool promisc_by_us = false;  // parent: switch promisc off when its last network goes
};

struct EndpointRecord {
  std::string network_id;
  std::string endpoint_id;
  std::string link_name;  // host-side name of the macvlan link
  std::string mac;
  std::string address_v4;  // "192.0.2.10/24" or ""
  std::string address_v6;
  std::string sandbox_key;  // set at Join
  std::string container_name;
  int64_t since = 0;

  // The endpoint's addresses (with their prefix length), IPv4 first; none for an empty field.
  std::vector<Prefix> Addresses() const {
    std::vector<Prefix> out;
    for (const std::string& cidr : {address_v4, address_v6}) {
      if (std::optional<Prefix> address = Prefix::Parse(cidr)) out.push_back(*address);
    }
    return out;
  }
};

struct DriverSnapshot {
  std::vector<NetworkRecord> networks;
  std::vector<LinkRecord> links;
  std::vector<EndpointRecord> endpoints;
};

struct DriverBatch {
  std::vector<NetworkRecord> put_networks;
  std::vector<std::string> delete_networks;
  std::vector<LinkRecord> put_links;
  std::vector<std::string> delete_links;
  std::vector<EndpointRecord> put_endpoints;
  std::vector<std::string> delete_endpoints;
};

class NetworkStore {
 public:
  virtual ~NetworkStore() = default;
  virtual Result<DriverSnapshot> Load() = 0;
  // All or nothing, durable when it returns OK. Deleting an absent key is not an error.
  virtual Status Apply(const DriverBatch& batch) = 0;
};

}  // namespace smv::driver

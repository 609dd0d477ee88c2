#include "daemon/pool_metrics.h"

#include <cmath>
#include <map>
#include <string>

#include "common/log.h"

namespace smv::daemon {
namespace {

// The networks on each subnet, by the short id `docker network ls` shows ("a,b" for several).
std::map<std::string, std::string> NetworksBySubnet(driver::DriverService& driver) {
  std::map<std::string, std::string> networks_on;
  for (const driver::NetworkRecord& network : driver.Networks()) {
    for (const Prefix& subnet : network.Subnets()) {
      std::string& ids = networks_on[subnet.ToString()];
      if (!ids.empty()) ids += ',';
      ids += ShortId(network.id);
    }
  }
  return networks_on;
}

}  // namespace

std::vector<metrics::PoolGauges> PoolGaugesNow(driver::DriverService& driver, const ipam::IpamApi& ipam) {
  const std::map<std::string, std::string> networks_on = NetworksBySubnet(driver);
  std::map<std::string, metrics::PoolGauges> pools;
  for (const ipam::PoolUsage& usage : ipam.PoolUsages()) {
    metrics::PoolGauges& p = pools[usage.pool_id];
    p.pool = usage.pool_id;
    if (auto on = networks_on.find(usage.subnet.ToString()); on != networks_on.end()) p.network = on->second;
    const int host_bits = (usage.subnet.family() == Family::kV4 ? 32 : 128) - usage.subnet.length();
    p.addresses = std::ldexp(1.0, host_bits);
    p.in_use = static_cast<double>(usage.leased);
  }
  for (const ipam::ReservationView& view : ipam.ListReservations()) {
    auto it = pools.find(view.record.pool_id);
    if (it == pools.end()) continue;  // a removed network's pool kept for its names: no gauges
    if (view.drifted_to) it->second.drifted += 1;
    if (!view.in_use) it->second.reserved_free += 1;
  }
  std::vector<metrics::PoolGauges> gauges;
  for (auto& [id, p] : pools) gauges.push_back(std::move(p));
  return gauges;
}

}  // namespace smv::daemon

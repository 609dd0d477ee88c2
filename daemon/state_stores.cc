#include "daemon/state_stores.h"

namespace smv::daemon {

Result<StateStores> OpenStateStores(const std::string& dir, size_t map_size_bytes) {
  std::vector<std::string> dbs = ipam::LmdbIpamStore::DatabaseNames();
  for (const std::string& db : driver::LmdbNetworkStore::DatabaseNames()) dbs.push_back(db);
  StateStores stores;
  auto env = lmdb::Env::Open(dir, map_size_bytes, dbs);
  if (!env.ok()) return env.status();
  stores.env = std::move(env).value();
  auto ipam = ipam::LmdbIpamStore::Open(*stores.env);
  if (!ipam.ok()) return ipam.status();
  stores.ipam = std::move(ipam).value();
  auto networks = driver::LmdbNetworkStore::Open(*stores.env);
  if (!networks.ok()) return networks.status();
  stores.networks = std::move(networks).value();
  return stores;
}

}  // namespace smv::daemon

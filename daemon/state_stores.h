#pragma once
// The one place that opens a state directory: the LMDB environment with every database, and the
// IPAM and network stores on it (serve, fsck, the golden store test, the benchmarks).

#include <memory>
#include <string>

#include "common/lmdb/env.h"
#include "common/status.h"
#include "driver/lmdb_network_store.h"
#include "ipam/lmdb_store.h"

namespace smv::daemon {

struct StateStores {
  std::unique_ptr<lmdb::Env> env;
  std::unique_ptr<ipam::LmdbIpamStore> ipam;
  std::unique_ptr<driver::LmdbNetworkStore> networks;
};

// Opens (creating if needed) the state in `dir` with a map of `map_size_bytes`.
Result<StateStores> OpenStateStores(const std::string& dir, size_t map_size_bytes);

}  // namespace smv::daemon

#pragma once
// NetworkStore on LMDB: databases networks, links and endpoints, keys and values as
// driver/records.h defines them.

#include <memory>
#include <string>
#include <vector>

#include "common/lmdb/env.h"
#include "driver/network_state.h"

namespace smv::driver {

class LmdbNetworkStore : public NetworkStore {
 public:
  static const std::vector<std::string>& DatabaseNames();
  static Result<std::unique_ptr<LmdbNetworkStore>> Open(lmdb::Env& env);

  Result<DriverSnapshot> Load() override;
  Status Apply(const DriverBatch& batch) override;

 private:
  LmdbNetworkStore(lmdb::Env& env, lmdb::Dbi networks, lmdb::Dbi links, lmdb::Dbi endpoints)
      : env_(env), networks_(networks), links_(links), endpoints_(endpoints) {}
  lmdb::Env& env_;
  lmdb::Dbi networks_, links_, endpoints_;
};

}  // namespace smv::driver

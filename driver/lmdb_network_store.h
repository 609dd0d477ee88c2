#pragma once
// NetworkStore on LMDB. Schema (JSON values carrying "v", the record version):
//   networks  <network id>  -> {v, options, ipv4:[{pool, gateway}], ipv6:[...], internal}
//   links     <link name>   -> {v, created_by_us, promisc_by_us}
//   endpoints <endpoint id> -> {v, network, link, mac, v4, v6, sandbox, name, since}

#include <memory>
#include <string>
#include <vector>

#include "common/lmdb/env.h"
#include "driver/network_state.h"

namespace smv::driver {

class LmdbNetworkStore : public NetworkStore {
 public:
  static constexpr int kRecordVersion = 1;
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

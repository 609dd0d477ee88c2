#pragma once
// IpamStore on LMDB: one database per record kind, keys and values as ipam/records.h defines
// them (databases ipam_pools, ipam_leases, ipam_reservations).

#include <string>
#include <vector>

#include "common/lmdb/env.h"
#include "ipam/ipam_store.h"

namespace smv::ipam {

class LmdbIpamStore : public IpamStore {
 public:
  static const std::vector<std::string>& DatabaseNames();

  // `env` must have been opened with DatabaseNames() among its databases; it must outlive this.
  static Result<std::unique_ptr<LmdbIpamStore>> Open(lmdb::Env& env);

  Result<IpamSnapshot> Load() override;
  Status LoadInto(IpamLoadSink& sink) override;
  Status ApplyAll(std::span<const IpamBatch> batches) override;

 private:
  LmdbIpamStore(lmdb::Env& env, lmdb::Dbi pools, lmdb::Dbi leases, lmdb::Dbi reservations)
      : env_(env), pools_(pools), leases_(leases), reservations_(reservations) {}
  Status Write(lmdb::Txn& txn, const IpamBatch& batch);
  lmdb::Env& env_;
  lmdb::Dbi pools_, leases_, reservations_;
};

}  // namespace smv::ipam

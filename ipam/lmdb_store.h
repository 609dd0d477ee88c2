#pragma once
// IpamStore on LMDB: one database per record kind, keys and values as ipam/records.h defines
// them (databases ipam_pools, ipam_leases, ipam_reservations). Beside it, on the same file, the
// journal of releases a shared book could not take yet (database ipam_release_journal).

#include <string>
#include <vector>

#include "common/lmdb/env.h"
#include "ipam/ipam_store.h"
#include "ipam/release_journal.h"

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

class LmdbReleaseJournal : public ReleaseJournal {
 public:
  // `env` as for LmdbIpamStore::Open.
  static Result<std::unique_ptr<LmdbReleaseJournal>> Open(lmdb::Env& env);

  Status Append(const JournaledRelease& release) override;
  Result<std::vector<JournaledRelease>> List() override;
  Status Remove(std::span<const JournaledRelease> releases) override;

 private:
  LmdbReleaseJournal(lmdb::Env& env, lmdb::Dbi journal) : env_(env), journal_(journal) {}
  lmdb::Env& env_;
  lmdb::Dbi journal_;
};

}  // namespace smv::ipam

#include "ipam/lmdb_store.h"

#include "ipam/records.h"

namespace smv::ipam {
namespace {

// The databases' names, spelled here only.
constexpr std::string_view kPoolsDb = "ipam_pools";
constexpr std::string_view kLeasesDb = "ipam_leases";
constexpr std::string_view kReservationsDb = "ipam_reservations";
constexpr std::string_view kJournalDb = "ipam_release_journal";

}  // namespace

const std::vector<std::string>& LmdbIpamStore::DatabaseNames() {
  static const std::vector<std::string> names = {std::string(kPoolsDb), std::string(kLeasesDb),
                                                 std::string(kReservationsDb), std::string(kJournalDb)};
  return names;
}

Result<std::unique_ptr<LmdbIpamStore>> LmdbIpamStore::Open(lmdb::Env& env) {
  Result<lmdb::Dbi> pools = env.Database(kPoolsDb);
  Result<lmdb::Dbi> leases = env.Database(kLeasesDb);
  Result<lmdb::Dbi> reservations = env.Database(kReservationsDb);
  if (!pools.ok()) return pools.status();
  if (!leases.ok()) return leases.status();
  if (!reservations.ok()) return reservations.status();
  return std::unique_ptr<LmdbIpamStore>(new LmdbIpamStore(env, *pools, *leases, *reservations));
}

Status LmdbIpamStore::LoadInto(IpamLoadSink& sink) {
  Result<lmdb::Txn> txn = env_.BeginRead();
  if (!txn.ok()) return txn.status();
  SMV_RETURN_IF_ERROR(lmdb::DecodeEach(*txn, pools_, kPoolsDb, records::DecodePool,
                                       [&](PoolRecord&& r) { sink.OnPool(std::move(r)); }));
  SMV_RETURN_IF_ERROR(lmdb::DecodeEach(*txn, leases_, kLeasesDb, records::DecodeLease,
                                       [&](LeaseRecord&& r) { sink.OnLease(std::move(r)); }));
  return lmdb::DecodeEach(*txn, reservations_, kReservationsDb, records::DecodeReservation,
                          [&](ReservationRecord&& r) { sink.OnReservation(std::move(r)); });
}

Result<IpamSnapshot> LmdbIpamStore::Load() { return CollectLoad(); }

Status LmdbIpamStore::ApplyAll(std::span<const IpamBatch> batches) {
  Result<lmdb::Txn> txn = env_.BeginWrite();
  if (!txn.ok()) return txn.status();
  for (const IpamBatch& batch : batches) SMV_RETURN_IF_ERROR(Write(*txn, batch));
  return txn->Commit().Annotate("save address state");
}

Status LmdbIpamStore::Write(lmdb::Txn& txn, const IpamBatch& batch) {
  for (const PoolRecord& pool : batch.put_pools) {
    SMV_RETURN_IF_ERROR(txn.Put(pools_, records::PoolKey(pool.config.id), records::EncodePool(pool)));
  }
  for (const std::string& id : batch.delete_pools) {
    if (Result<bool> r = txn.Delete(pools_, records::PoolKey(id)); !r.ok()) return r.status();
  }
  for (const LeaseRecord& lease : batch.put_leases) {
    SMV_RETURN_IF_ERROR(txn.Put(leases_, records::LeaseKey(lease.pool_id, lease.address), records::EncodeLease(lease)));
  }
  for (const auto& [pool_id, address] : batch.delete_leases) {
    if (Result<bool> r = txn.Delete(leases_, records::LeaseKey(pool_id, address)); !r.ok()) return r.status();
  }
  for (const ReservationRecord& r : batch.put_reservations) {
    SMV_RETURN_IF_ERROR(
        txn.Put(reservations_, records::ReservationKey(r.pool_id, r.name), records::EncodeReservation(r)));
  }
  for (const auto& [pool_id, name] : batch.delete_reservations) {
    if (Result<bool> r = txn.Delete(reservations_, records::ReservationKey(pool_id, name)); !r.ok()) {
      return r.status();
    }
  }
  return OkStatus();
}

Result<std::unique_ptr<LmdbReleaseJournal>> LmdbReleaseJournal::Open(lmdb::Env& env) {
  Result<lmdb::Dbi> journal = env.Database(kJournalDb);
  if (!journal.ok()) return journal.status();
  return std::unique_ptr<LmdbReleaseJournal>(new LmdbReleaseJournal(env, *journal));
}

Status LmdbReleaseJournal::Append(const JournaledRelease& release) {
  Result<lmdb::Txn> txn = env_.BeginWrite();
  if (!txn.ok()) return txn.status();
  SMV_RETURN_IF_ERROR(txn->Put(journal_, records::LeaseKey(release.pool_id, release.address),
                               records::EncodeJournaledRelease(release)));
  return txn->Commit().Annotate("journal a release");
}

Result<std::vector<JournaledRelease>> LmdbReleaseJournal::List() {
  Result<lmdb::Txn> txn = env_.BeginRead();
  if (!txn.ok()) return txn.status();
  std::vector<JournaledRelease> out;
  SMV_RETURN_IF_ERROR(lmdb::DecodeEach(*txn, journal_, kJournalDb, records::DecodeJournaledRelease,
                                       [&](JournaledRelease&& r) { out.push_back(std::move(r)); }));
  return out;
}

Status LmdbReleaseJournal::Remove(std::span<const JournaledRelease> releases) {
  Result<lmdb::Txn> txn = env_.BeginWrite();
  if (!txn.ok()) return txn.status();
  for (const JournaledRelease& r : releases) {
    if (Result<bool> gone = txn->Delete(journal_, records::LeaseKey(r.pool_id, r.address)); !gone.ok()) {
      return gone.status();
    }
  }
  return txn->Commit().Annotate("remove replayed releases from the journal");
}

}  // namespace smv::ipam

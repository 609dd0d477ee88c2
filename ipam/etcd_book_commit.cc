// Committing to the shared book: the writes a batch makes, the keys its decisions read (each
// compared at the revision this node saw), and the read-back of a commit whose answer was lost.
#include "ipam/etcd_store.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "ipam/records.h"

namespace smv::ipam {

using std::chrono::milliseconds;

Status EtcdIpamStore::ApplyAll(std::span<const IpamBatch> batches) {
  if (options_.read_only) return FailedPrecondition("the shared address book was opened read-only (fsck)");
  // Refused before anything is sent: this commit's outcome is known (not applied).
  return Guarded([&] { return ApplyAllLocked(batches); });
}

std::map<std::string, std::optional<std::string>> EtcdIpamStore::PlanWrites(std::span<const IpamBatch> batches,
                                                                            ReservationIndex& index) const {
  std::map<std::string, std::optional<std::string>> writes;
  // Drops the address/ key of the reservation at `reservation_key`, while it still names `name`.
  auto unreserve = [&](const std::string& reservation_key, const std::string& name) {
    auto at = index.reserved_at.find(reservation_key);
    if (at == index.reserved_at.end()) return;
    if (auto holder = index.name_at.find(at->second); holder != index.name_at.end() && holder->second == name) {
      writes[at->second] = std::nullopt;
      index.name_at.erase(holder);
    }
    index.reserved_at.erase(at);
  };
  for (const IpamBatch& b : batches) {
    for (const PoolRecord& p : b.put_pools) writes[keys_.Pool(p.config.id)] = records::EncodePool(p);
    for (const std::string& id : b.delete_pools) writes[keys_.Pool(id)] = std::nullopt;
    for (const LeaseRecord& l : b.put_leases) writes[keys_.Lease(l.pool_id, l.address)] = records::EncodeLease(l);
    for (const auto& [pool_id, address] : b.delete_leases) writes[keys_.Lease(pool_id, address)] = std::nullopt;
    for (const ReservationRecord& r : b.put_reservations) {
      const std::string key = keys_.Reservation(r.pool_id, r.name);
      const std::string address_key = keys_.ReservedAddress(r.pool_id, r.address);
      if (auto at = index.reserved_at.find(key); at == index.reserved_at.end() || at->second != address_key) {
        unreserve(key, r.name);
      }
      writes[key] = records::EncodeReservation(r);
      writes[address_key] = records::EncodeReservedAddress(r.name);
      index.reserved_at[key] = address_key;
      index.name_at[address_key] = r.name;
    }
    for (const auto& [pool_id, name] : b.delete_reservations) {
      const std::string key = keys_.Reservation(pool_id, name);
      unreserve(key, name);
      writes[key] = std::nullopt;
    }
  }
  return writes;
}

std::vector<std::string> EtcdIpamStore::ReadKeys(std::span<const IpamBatch> batches) const {
  std::vector<std::string> keys;
  for (const IpamBatch& b : batches) {
    for (const std::string& id : b.reads.pools) keys.push_back(keys_.Pool(id));
    for (const auto& [pool_id, address] : b.reads.leases) keys.push_back(keys_.Lease(pool_id, address));
    for (const auto& [pool_id, name] : b.reads.reservations) keys.push_back(keys_.Reservation(pool_id, name));
    for (const auto& [pool_id, address] : b.reads.reserved_addresses) {
      keys.push_back(keys_.ReservedAddress(pool_id, address));
    }
  }
  std::sort(keys.begin(), keys.end());
  keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
  return keys;
}

std::vector<std::string> EtcdIpamStore::PutOrReadKeys(const IpamBatch& batch) const {
  std::vector<std::string> keys = ReadKeys({&batch, 1});
  for (const PoolRecord& p : batch.put_pools) keys.push_back(keys_.Pool(p.config.id));
  for (const LeaseRecord& l : batch.put_leases) keys.push_back(keys_.Lease(l.pool_id, l.address));
  for (const ReservationRecord& r : batch.put_reservations) {
    keys.push_back(keys_.Reservation(r.pool_id, r.name));
    keys.push_back(keys_.ReservedAddress(r.pool_id, r.address));
  }
  return keys;
}

// The address/ key is compared as seen, and it still names the name whose record no node can
// read: without this, a host that freed the address in memory (its lease released) would give
// it to another name, and fixing the record would put two reservations on one address.
Status EtcdIpamStore::CheckNotReservedUnreadablyLocked(const IpamBatch& batch) const {
  if (reserved_unreadably_.empty()) return OkStatus();
  auto check = [&](const std::string& pool_id, const IpAddress& address, const std::string& name) -> Status {
    auto held = reserved_unreadably_.find(keys_.ReservedAddress(pool_id, address));
    if (held == reserved_unreadably_.end() || held->second == name) return OkStatus();
    auto bad = undecodable_.find(keys_.Reservation(pool_id, held->second));
    return FailedPrecondition(fmt::format(
        "address {} is reserved for name \"{}\" by a record in the shared address book that does not decode{}; "
        "no node gives it to another name until that record is fixed: `static-macvlan fsck` lists it",
        address.ToString(), PrintableWhy(held->second),
        bad == undecodable_.end() ? "" : fmt::format(" ({})", PrintableKey(bad->first))));
  };
  for (const LeaseRecord& l : batch.put_leases) SMV_RETURN_IF_ERROR(check(l.pool_id, l.address, l.lease.name));
  for (const ReservationRecord& r : batch.put_reservations) SMV_RETURN_IF_ERROR(check(r.pool_id, r.address, r.name));
  return OkStatus();
}

Status EtcdIpamStore::CheckDecodable(const IpamBatch& batch) const {
  std::scoped_lock lock(undecodable_mu_);
  if (undecodable_.empty()) return OkStatus();
  SMV_RETURN_IF_ERROR(CheckNotReservedUnreadablyLocked(batch));
  for (const std::string& key : PutOrReadKeys(batch)) {
    auto bad = undecodable_.find(key);
    if (bad == undecodable_.end()) continue;
    return FailedPrecondition(fmt::format(
        "{} cannot be written: its record {} in the shared address book does not decode ({}), and no node "
        "overwrites a record it could not read; nothing was written. `static-macvlan fsck` lists it. Look at it "
        "with: {}; then restore it, or delete it with: {}",
        RecordAt(keys_, key), PrintableKey(key), PrintableWhy(bad->second.why), EtcdctlGetCommand(bad->second),
        EtcdctlDeleteCommand(bad->second)));
  }
  return OkStatus();
}

Status EtcdIpamStore::ApplyAllLocked(std::span<const IpamBatch> batches) {
  const auto until = Clock::now() + kCallBudget;
  refused_at_ = 0;
  ReservationIndex index = index_;  // becomes index_ once the commit holds
  const std::map<std::string, std::optional<std::string>> writes = PlanWrites(batches, index);
  etcd::Txn txn = WritesAsSeenLocked(writes);
  const std::vector<std::string> reads = ReadKeys(batches);
  // A decision that writes nothing of the book (a host agreeing with its subnet's aux addresses)
  // still holds only while what it read is as seen: its commit compares that and moves only this
  // node's commit key.
  if (txn.success.empty() && reads.empty()) return OkStatus();
  for (const std::string& key : reads) {
    if (!writes.contains(key)) txn.compares.push_back(ExpectAsSeen(key, revisions_));
  }
  const std::string commit_id = NextCommitId();
  txn.compares.push_back(ExpectAsSeen(CommitKey(), revisions_));
  txn.success.push_back(etcd::PutOp{CommitKey(), commit_id});
  if (txn.success.size() > options_.max_txn_ops || txn.compares.size() > options_.max_txn_ops) {
    return FailedPrecondition(fmt::format(
        "one commit of {} writes and {} compares is more than etcd's --max-txn-ops ({}); start etcd with a larger "
        "--max-txn-ops",
        txn.success.size(), txn.compares.size(), options_.max_txn_ops));
  }
  Result<int64_t> revision = CommitLocked(txn, commit_id, until);
  if (!revision.ok()) return revision.status();
  last_commit_revision_ = *revision;
  for (const etcd::Op& op : txn.success) {
    if (const auto* put = std::get_if<etcd::PutOp>(&op)) {
      revisions_[put->key] = *revision;
    } else {
      revisions_.erase(std::get<etcd::DeleteOp>(op).key);
    }
  }
  index_ = std::move(index);
  return OkStatus();
}

etcd::Txn EtcdIpamStore::WritesAsSeenLocked(const std::map<std::string, std::optional<std::string>>& writes) const {
  etcd::Txn txn;
  for (const auto& [key, value] : writes) {
    if (!value && !revisions_.contains(key)) continue;  // never seen: nothing of ours to delete
    txn.compares.push_back(ExpectAsSeen(key, revisions_));
    if (value) {
      txn.success.push_back(etcd::PutOp{key, *value});
    } else {
      txn.success.push_back(etcd::DeleteOp{key});
    }
  }
  return txn;
}

Result<int64_t> EtcdIpamStore::CommitLocked(const etcd::Txn& txn, const std::string& commit_id,
                                            Clock::time_point until) {
  Result<etcd::TxnResult> done = client_.Commit(txn, Left(until));
  if (done.ok()) {
    if (!done->succeeded) {
      refused_at_ = done->revision;  // the reload that follows may come from the mirror
      return Aborted("the shared address book changed under this commit: another node wrote first");
    }
    return done->revision;
  }
  if (done.status().code() == Code::kResourceExhausted) {
    return done.status();  // etcd out of space refused it: not applied, and a fence would be refused too
  }
  // The answer was lost: read back. Not applied means fenced off, so it never will apply.
  Result<std::optional<int64_t>> applied = FenceUnless(commit_id, Left(until));
  fence_needed_ = !applied.ok();
  if (!applied.ok() && applied.status().code() == Code::kUnavailable) {
    // Settled by the reload that follows any failed commit (Load fences first). The service
    // refuses the change with this answer (RefusingToAllocate). Unavailable whatever the commit
    // itself got (a garbled answer is Internal): the outcome is unknown and the store does not
    // answer, so its leases are journaled and callers are refused at once, not reloaded against.
    if (done.status().code() == Code::kUnavailable) return done.status();
    return Unavailable(done.status().message());
  }
  if (!applied.ok()) return applied.status();
  if (!applied->has_value()) {
    ++fenced_commits_;
    return Aborted("a commit whose answer was lost did not apply (fenced off); deciding again");
  }
  return **applied;  // it applied: every key it wrote has this revision
}

}  // namespace smv::ipam

#pragma once
// In-memory IpamStore with failure injection, and an in-memory release journal, for service tests.

#include <algorithm>
#include <map>

#include "ipam/ipam_store.h"
#include "ipam/release_journal.h"
#include "ipam/shared_book.h"

namespace smv::testing {

class MemoryIpamStore : public ipam::IpamStore, public ipam::SharedBook {
 public:
  bool fail_next_apply = false;
  int refuse_next_applies = 0;    // as a shared store refuses a commit another node beat (kAborted)
  bool shared_book = false;       // behave as a book other nodes write to
  std::string node_name;          // node() of a shared book
  bool down = false;              // every call fails as etcd without quorum does (kUnavailable)
  bool out_of_space = false;      // every commit fails as etcd with its NOSPACE alarm does
  bool commit_key_moved = false;  // another host released this node (CommitKeyMoved, once)
  // Non-empty: every commit is refused for this reason, as etcd refuses one whose batch holds a
  // record that does not decode (kFailedPrecondition): a refusal that says nothing of its addresses.
  std::string refuse_commits_with;
  // The next commit applies, but its answer is lost and cannot be read back (kUnavailable).
  bool apply_and_lose_answer = false;
  int applies = 0;
  int loads = 0;
  int any_reserved_reads = 0;

  // Asked once, by the service's Create: set shared_book before.
  ipam::SharedBook* as_shared_book() override { return shared_book ? this : nullptr; }
  Result<bool> CommitKeyMoved() override { return std::exchange(commit_key_moved, false); }
  std::string node() const override { return node_name; }
  // Reads no single name: the service reloads the whole book instead (as after a failed read).
  Result<ipam::NameRecords> ReadName(const std::string&, const std::string&) override {
    return FailedPrecondition("the memory store reads no single name");
  }
  void AdoptRead(const ipam::NameRecords&) override {}
  int64_t LeaseRevision(const std::string&, const IpAddress&) override { return 0; }
  Status FenceNode(const std::string&) override { return OkStatus(); }
  Status CheckDecodable(const ipam::IpamBatch&) const override { return OkStatus(); }
  // Another node's lease, written behind the service's back.
  void PutLease(const ipam::LeaseRecord& lease) { leases_[{lease.pool_id, lease.address.ToString()}] = lease; }
  const ipam::LeaseRecord* FindLease(const std::string& pool_id, const std::string& address) const {
    auto it = leases_.find({pool_id, address});
    return it == leases_.end() ? nullptr : &it->second;
  }
  // Another node's reservation, or its release, written behind the service's back.
  void PutReservation(const ipam::ReservationRecord& r) { reservations_[{r.pool_id, r.name}] = r; }
  void ForgetReservation(const std::string& pool_id, const std::string& name) { reservations_.erase({pool_id, name}); }
  // Another node's release, written behind the service's back.
  void ForgetLease(const std::string& pool_id, const std::string& address) { leases_.erase({pool_id, address}); }

  Result<ipam::IpamSnapshot> Load() override {
    if (down) return Unavailable("injected: shared address store unavailable");
    ++loads;
    ipam::IpamSnapshot s;
    for (const auto& [id, p] : pools_) s.pools.push_back(p);
    for (const auto& [k, l] : leases_) s.leases.push_back(l);
    for (const auto& [k, r] : reservations_) s.reservations.push_back(r);
    return s;
  }
  Status ApplyAll(std::span<const ipam::IpamBatch> batches) override {
    if (down) return Unavailable("injected: shared address store unavailable");
    if (out_of_space) return ResourceExhausted("injected: etcd is out of space (alarm NOSPACE)");
    if (!refuse_commits_with.empty()) return FailedPrecondition(refuse_commits_with);
    if (fail_next_apply) {
      fail_next_apply = false;
      return Internal("injected store failure");
    }
    if (refuse_next_applies > 0) {
      --refuse_next_applies;
      return Aborted("injected: another node wrote first");
    }
    ++applies;
    for (const ipam::IpamBatch& b : batches) Write(b);
    if (apply_and_lose_answer) {
      apply_and_lose_answer = false;
      return Unavailable("injected: shared address store unavailable (the commit's outcome is unknown)");
    }
    return OkStatus();
  }
  Result<bool> AnyReserved(const std::string& pool_id, const std::vector<std::string>& names) override {
    if (down) return Unavailable("injected: shared address store unavailable");
    ++any_reserved_reads;
    return std::any_of(names.begin(), names.end(), [&](const std::string& name) {
      return reservations_.contains({pool_id, name});
    });
  }
  Result<std::optional<ipam::PoolRecord>> ReadPool(const std::string& pool_id) override {
    if (down) return Unavailable("injected: shared address store unavailable");
    auto it = pools_.find(pool_id);
    if (it == pools_.end()) return std::optional<ipam::PoolRecord>();
    return std::optional<ipam::PoolRecord>(it->second);
  }
  // Another host's pool, written behind the service's back.
  void PutPool(const ipam::PoolRecord& pool) { pools_[pool.config.id] = pool; }
  size_t lease_count() const { return leases_.size(); }
  size_t reservation_count() const { return reservations_.size(); }
  size_t pool_count() const { return pools_.size(); }

 private:
  void Write(const ipam::IpamBatch& b) {
    for (const auto& p : b.put_pools) pools_[p.config.id] = p;
    for (const auto& id : b.delete_pools) pools_.erase(id);
    for (const auto& l : b.put_leases) leases_[{l.pool_id, l.address.ToString()}] = l;
    for (const auto& [pool, ip] : b.delete_leases) leases_.erase({pool, ip.ToString()});
    for (const auto& r : b.put_reservations) reservations_[{r.pool_id, r.name}] = r;
    for (const auto& k : b.delete_reservations) reservations_.erase(k);
  }
  std::map<std::string, ipam::PoolRecord> pools_;
  std::map<std::pair<std::string, std::string>, ipam::LeaseRecord> leases_;
  std::map<std::pair<std::string, std::string>, ipam::ReservationRecord> reservations_;
};

class MemoryReleaseJournal : public ipam::ReleaseJournal {
 public:
  Status Append(const ipam::JournaledRelease& release) override {
    if (std::find(entries.begin(), entries.end(), release) == entries.end()) entries.push_back(release);
    return OkStatus();
  }
  Result<std::vector<ipam::JournaledRelease>> List() override { return entries; }
  Status Remove(std::span<const ipam::JournaledRelease> releases) override {
    std::erase_if(entries, [&](const ipam::JournaledRelease& e) {
      return std::find(releases.begin(), releases.end(), e) != releases.end();
    });
    return OkStatus();
  }
  std::vector<ipam::JournaledRelease> entries;
};

}  // namespace smv::testing

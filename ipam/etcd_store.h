#pragma once
// IpamStore on etcd: several hosts share one address book. Keys and versioned values are the
// ones the LMDB store keeps (ipam/records.h), under a prefix:
//   <prefix>pool/<pool key>  <prefix>lease/<lease key>  <prefix>reservation/<reservation key>
//   <prefix>node/<node>/commit  this node's last commit: fences a commit whose answer was lost
//
// etcd decides. Each ApplyAll is one transaction that holds only if every key it writes is as this
// node last saw it (absent, or at the mod revision it read or wrote); otherwise nothing is written
// and it fails with kAborted, the service reloads and decides again on fresh state. So two nodes
// never both create one address or one name. No key hangs on an etcd lease: a node cut off from
// etcd but still on the VLAN keeps what it holds.
//
// A transaction whose answer never came is resolved by reading back this node's commit key; if
// the transaction is not there, the key is moved on (a fence), so the transaction, which compares
// that key, can never apply later. Load fences too, so what it reads is final.

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>

#include "common/etcd/kv_client.h"
#include "ipam/ipam_store.h"

namespace smv::ipam {

struct EtcdStoreOptions {
  std::string prefix = "/static-macvlan/v1/";
  std::string node;  // this host's name in the fleet (the commit key's name)
  // etcd refuses a transaction with more operations than its --max-txn-ops (default 128).
  size_t max_txn_ops = 128;
  // fsck beside running daemons: loads without the fence (which writes) and never commits.
  bool read_only = false;
};

class EtcdIpamStore : public IpamStore {
 public:
  // `client` must outlive the store and is used by this store only (one call at a time).
  static Result<std::unique_ptr<EtcdIpamStore>> Open(etcd::KvClient& client, EtcdStoreOptions options);

  Result<IpamSnapshot> Load() override;
  Status LoadInto(IpamLoadSink& sink) override;
  Status ApplyAll(std::span<const IpamBatch> batches) override;
  Result<NameRecords> ReadName(const std::string& pool_id, const std::string& name) override;
  Result<std::optional<PoolRecord>> ReadPool(const std::string& pool_id) override;
  bool shared() const override { return true; }
  std::string node() const override { return options_.node; }
  // The commit key takes one operation of each transaction.
  size_t max_writes_per_commit() const override { return options_.max_txn_ops - 1; }

  // Transactions whose answer was lost and that were found not applied, then fenced (tests).
  uint64_t fenced_commits() const { return fenced_commits_; }

 private:
  EtcdIpamStore(etcd::KvClient& client, EtcdStoreOptions options);
  std::string CommitKey() const;
  std::string NextCommitId();
  // Reads this node's commit key: when it holds `applied_id` (a commit whose answer was lost),
  // returns its revision. Otherwise moves the key on with a transaction that holds (a fence) and
  // returns nullopt: no transaction sent before, all of which compare that key, can apply after.
  // kUnavailable while etcd does not answer within `budget`.
  Result<std::optional<int64_t>> FenceUnless(std::string_view applied_id, std::chrono::milliseconds budget);

  // Reads of one name may come from request threads while a commit is being written: the client
  // and the revisions below are used by one call at a time.
  std::mutex mu_;
  etcd::KvClient& client_;
  EtcdStoreOptions options_;
  std::string instance_;  // tells this process's commit ids from an earlier run's
  uint64_t commits_ = 0;
  // The mod revision of every key this node has read or written; absent: it believes the key
  // does not exist. The commit key is among them.
  std::unordered_map<std::string, int64_t> revisions_;
  uint64_t fenced_commits_ = 0;
};

}  // namespace smv::ipam

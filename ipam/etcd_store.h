#pragma once
// IpamStore on etcd: several hosts share one address book. Keys and versioned values are the
// ones the LMDB store keeps (ipam/records.h), under a prefix (the keys: book_keys.h):
//   <prefix>pool/<pool key>  <prefix>lease/<lease key>  <prefix>reservation/<reservation key>
//   <prefix>address/<lease key>  who reserves that address: {v, name} (layout 2)
//   <prefix>node/<node>/commit  this node's last commit: fences a commit whose answer was lost
//   <prefix>layout  "2": every reservation also has its address/ key
//
// etcd decides. Each ApplyAll is one transaction that holds only if every key it writes, and every
// key its decisions read (IpamBatch::reads, ipam/fleet_rules.h), is as this node last saw it
// (absent, or at the mod revision it read or wrote); otherwise nothing is written and it fails
// with kAborted, the service reloads and decides again on fresh state. A reservation is findable
// by its address as long as it lives (the address/ key, written and deleted with it), so "this
// address is reserved for another name" is a key a commit compares, not a memory. So two nodes
// never both create one address or one name. No key hangs on an etcd lease: a node cut off from
// etcd but still on the VLAN keeps what it holds.
//
// A book of layout 1 (no address/ keys) is migrated by the first node of the new version that
// loads it: the missing keys are written, each compared with its reservation, then the layout.
// Nodes migrating at once are safe (the compares decide); nodes of the old version still running
// write reservations without address/ keys, so upgrade every node of a fleet before it allocates.
//
// A transaction whose answer never came is resolved by reading back this node's commit key; if
// the transaction is not there, the key is moved on (a fence), so the transaction, which compares
// that key, can never apply later. Load fences too, so what it reads is final.
//
// With StartWatch, a mirror of the book (a list at a revision, then a watch from there, listed
// again when etcd compacted past it) serves the reload after a refused commit: no fence is needed
// then (that commit's answer came), and waiting for the mirror to reach the revision etcd refused
// at replaces reading the whole book again. A mirror that lags is only slower, never wrong: each
// key carries the revision it was read at, and etcd compares it.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <span>
#include <stop_token>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "common/clock.h"
#include "etcd/kv_client.h"
#include "ipam/book_keys.h"
#include "ipam/ipam_store.h"
#include "ipam/shared_book.h"
#include "ipam/unavailable_gate.h"

namespace smv::ipam {

// The layout this version writes and needs (the value of BookKeys::layout).
inline constexpr std::string_view kBookLayout = "2";

// A key under the book's prefix that the last load could not decode, and why: every load skips it.
struct UndecodableKey {
  std::string key;
  // The decoder's words, which may quote the stored bytes: shown through PrintableWhy.
  std::string why;
  // The record as it was read: the printed delete deletes that and not a record written since.
  int64_t mod_revision = 0;
  // etcdctl's flags that reach the cluster it was read from (EtcdctlCluster).
  std::string cluster;
};

// `key` as etcdctl txn reads a quoted key: the NUL between a pool and a name, other control and
// non-ASCII bytes, quotes and backslashes written \xNN, so a terminal and a shell pass it intact.
std::string PrintableKey(std::string_view key);
// `why` for a terminal or a log line: a stored value may hold escape sequences, newlines and any
// length. Control and non-ASCII bytes written \xNN (a key in it is escaped already), at most
// kWhyShown bytes of it.
inline constexpr size_t kWhyShown = 300;
std::string PrintableWhy(std::string_view why);
// etcdctl's flags for the cluster `options` reach: its endpoints, its TLS files, and the user with
// a placeholder for the password (never printed).
std::string EtcdctlCluster(const etcd::ClientOptions& options);
// Shell commands that show, and delete, `bad`. Keys hold a NUL, which no command-line argument
// carries: etcdctl txn reads the key quoted, from its input. The delete compares the record's mod
// revision: a record rewritten since it was read is kept (etcdctl prints FAILURE).
std::string EtcdctlGetCommand(const UndecodableKey& bad);
std::string EtcdctlDeleteCommand(const UndecodableKey& bad);

// Which reservation is on which address, as this node last saw the book (full keys).
struct ReservationIndex {
  std::unordered_map<std::string, std::string> reserved_at;  // reservation key -> address key
  std::unordered_map<std::string, std::string> name_at;      // address key -> the name it holds
};

struct EtcdStoreOptions {
  std::string prefix = std::string(kDefaultBookPrefix);
  std::string node;  // this host's name in the fleet (the commit key's name)
  // etcd refuses a transaction with more operations than its --max-txn-ops (default 128).
  size_t max_txn_ops = 128;
  // fsck beside running daemons: loads without the fence (which writes) and never commits.
  bool read_only = false;
};

class EtcdIpamStore : public IpamStore, public SharedBook {
 public:
  // `client` must outlive the store and is used by this store only (one call at a time).
  static Result<std::unique_ptr<EtcdIpamStore>> Open(etcd::KvClient& client, EtcdStoreOptions options);
  ~EtcdIpamStore() override;

  // Follows the book on a second connection (a client made with `client`'s options) from now on.
  void StartWatch();

  Result<IpamSnapshot> Load() override;
  Status LoadInto(IpamLoadSink& sink) override;
  Status ApplyAll(std::span<const IpamBatch> batches) override;
  Result<NameRecords> ReadName(const std::string& pool_id, const std::string& name) override;
  void AdoptRead(const NameRecords& read) override;
  Result<bool> AnyReserved(const std::string& pool_id, const std::vector<std::string>& names) override;
  // AnyReserved reads the reservations its names' common start holds at once up to this many;
  // past it, name by name.
  static constexpr int64_t kAnyReservedScan = 64;
  Result<std::optional<PoolRecord>> ReadPool(const std::string& pool_id) override;
  int64_t LeaseRevision(const std::string& pool_id, const IpAddress& address) override;
  SharedBook* as_shared_book() override { return this; }
  // Moves `node`'s commit key on, noting who released it: every transaction that node sent or
  // decided before fails, and its next load tells it (`reservations release --node`).
  Status FenceNode(const std::string& node) override;
  Result<bool> CommitKeyMoved() override;
  // Keys under the prefix the last load could not decode, skipped (fsck, doctor).
  std::vector<UndecodableKey> undecodable_keys() const;
  // A commit writing or comparing such a key compares "absent" with a key that exists: etcd would
  // refuse it every time. kFailedPrecondition naming the record, why and the fix instead.
  Status CheckDecodable(const IpamBatch& batch) const override;
  std::string node() const override { return options_.node; }
  // The commit key takes one operation of each transaction.
  size_t max_writes_per_commit() const override { return options_.max_txn_ops - 1; }

  // Transactions whose answer was lost and that were found not applied, then fenced (tests).
  uint64_t fenced_commits() const { return fenced_commits_; }
  // Reloads served by the mirror, and how often it listed the book (tests, logs).
  uint64_t mirror_loads() const { return mirror_loads_; }
  uint64_t mirror_lists() const { return mirror_lists_; }
  // AnyReserved questions the mirror answered (tests, logs).
  uint64_t mirror_lookups() const { return mirror_lookups_; }
  // Tests: while paused the watch is down (its stream ended) and the mirror falls behind.
  void PauseWatch(bool paused);

 private:
  // Caller holds undecodable_mu_.
  Status CheckNotReservedUnreadablyLocked(const IpamBatch& batch) const;
  // Runs `call` holding mu_, through the store's "unavailable" gate. The one place an etcd
  // client's kUnavailable answer becomes the store's (SharedStoreUnavailable): every call of this
  // store that asks etcd answers through here.
  template <class Call>
  auto Guarded(Call call) -> decltype(call()) {
    return unavailable_.Run(mu_, [&]() -> decltype(call()) {
      auto answer = call();
      if (answer.ok()) return answer;
      return SharedStoreUnavailable(StatusOf(answer));
    });
  }
  static const Status& StatusOf(const Status& s) { return s; }
  template <typename T>
  static Status StatusOf(const Result<T>& r) {
    return r.status();
  }
  // What the store's files (etcd_store.cc, etcd_book_load.cc, etcd_book_commit.cc) share.
  using Clock = SteadyClock;
  // One call of this store (a load with its fence, a commit with its read-back) takes about this
  // long at most (plus kMinResolveTime for a read-back): with etcd down or without quorum, an
  // allocation that waits behind at most one such call is refused within 10 s.
  static constexpr std::chrono::milliseconds kCallBudget{7000};
  // Leaves the read-back of a commit whose answer was lost at least this much time.
  static constexpr std::chrono::milliseconds kMinResolveTime{1000};

  // Fence attempts before concluding that another process writes this node's commit key.
  static constexpr int kFenceAttempts = 5;
  // Starts the value `reservations release --node` leaves in the released node's commit key.
  static constexpr std::string_view kReleasedMark = "released by ";
  // Migration transactions: each puts an address/ key and compares it and its reservation.
  static constexpr size_t kMigrationPerTxn = 60;
  // How long a reload after a refused commit waits for the mirror to reach the refusal's revision
  // before it reads etcd instead.
  static constexpr std::chrono::milliseconds kMirrorWait{500};
  // Pauses of the watch thread after a failed list or a broken watch.
  static constexpr std::chrono::milliseconds kRelistPause{500};
  static constexpr std::chrono::milliseconds kRewatchPause{200};
  // Holds while `key` is as it was at mod revision `revision`; 0: while it does not exist.
  static etcd::Compare Unchanged(const std::string& key, int64_t revision);
  // Holds while `key` is as this node last saw it (absent if it never saw it).
  static etcd::Compare ExpectAsSeen(const std::string& key, const std::unordered_map<std::string, int64_t>& revisions);
  // What the record at `key` is to a user: "the reservation of name \"web\" in pool \"...\"".
  static std::string RecordAt(const BookKeys& keys, std::string_view key);
  // Time left until `until`, never under kMinResolveTime (a read-back always gets its chance).
  static std::chrono::milliseconds Left(Clock::time_point until) { return TimeLeft(until, kMinResolveTime); }

  EtcdIpamStore(etcd::KvClient& client, EtcdStoreOptions options);
  std::string CommitKey() const;
  std::string NextCommitId();
  // Reads this node's commit key: when it holds `applied_id` (a commit whose answer was lost),
  // returns its revision. Otherwise moves the key on with a transaction that holds (a fence) and
  // returns nullopt: no transaction sent before, all of which compare that key, can apply after.
  // kUnavailable while etcd does not answer within `budget`.
  Result<std::optional<int64_t>> FenceUnless(std::string_view applied_id, std::chrono::milliseconds budget);

  Status LoadIntoLocked(IpamLoadSink& sink);
  Result<NameRecords> ReadNameLocked(const std::string& pool_id, const std::string& name);
  // Whether the mirror holds any of `wanted`, while a watch follows the book and has seen this
  // node's last commit; nullopt otherwise.
  std::optional<bool> AnyInMirror(const std::set<std::string>& wanted);
  // AnyReserved's one read of the range `wanted` (reservation keys) share; nullopt when that
  // range holds more than kAnyReservedScan keys.
  Result<std::optional<bool>> ScanReservedLocked(const std::set<std::string>& wanted);
  Result<std::optional<PoolRecord>> ReadPoolLocked(const std::string& pool_id);
  Status ApplyAllLocked(std::span<const IpamBatch> batches);
  // A put or delete of each key in `writes`, each compared as this node last saw it.
  etcd::Txn WritesAsSeenLocked(const std::map<std::string, std::optional<std::string>>& writes) const;
  // Sends `txn` and settles a lost answer by reading `commit_id` back (or fencing): the revision
  // it applied at, or why not (kAborted: refused or fenced off; decide again).
  Result<int64_t> CommitLocked(const etcd::Txn& txn, const std::string& commit_id, Clock::time_point until);
  // Every write of the batches, in order, one per key (the last write of a key wins, as applied
  // one after the other; nullopt: delete), with the address/ keys of their reservations.
  // `index` is updated as the writes would change it.
  std::map<std::string, std::optional<std::string>> PlanWrites(std::span<const IpamBatch> batches,
                                                               ReservationIndex& index) const;
  std::vector<std::string> ReadKeys(std::span<const IpamBatch> batches) const;
  // The keys a commit of `batch` puts or compares (a delete of a key never read sends nothing).
  std::vector<std::string> PutOrReadKeys(const IpamBatch& batch) const;
  // Reads the whole book; migrates it to kBookLayout first when it is older (then reads again).
  Result<etcd::RangeResult> ReadBookLocked(Clock::time_point until);
  // Writes the address/ keys a layout-1 book lacks, then the layout. kAborted: another node
  // changed the book meanwhile (read again and retry).
  Status MigrateLocked(const etcd::RangeResult& book, Clock::time_point until);
  void DecodeBookLocked(IpamLoadSink& sink, const std::vector<std::pair<std::string, const std::string*>>& kvs);

  // Reads of one name may come from request threads while a commit is being written: the client
  // and the revisions below are used by one call at a time.
  mutable std::timed_mutex mu_;
  etcd::KvClient& client_;
  EtcdStoreOptions options_;
  std::string instance_;  // tells this process's commit ids from an earlier run's
  uint64_t commits_ = 0;
  // The mod revision of every key this node has read or written; absent: it believes the key
  // does not exist. The commit key is among them.
  std::unordered_map<std::string, int64_t> revisions_;
  const BookKeys keys_;
  ReservationIndex index_;
  // Taken alone, never with mu_ held by a commit in flight: a decision never waits for etcd.
  mutable std::mutex undecodable_mu_;
  std::map<std::string, UndecodableKey> undecodable_;  // by key
  // address/ key -> the name whose reservation record there does not decode: that address goes
  // to no other name (a lease or a reservation), even once memory no longer holds it taken.
  std::map<std::string, std::string> reserved_unreadably_;
  uint64_t fenced_commits_ = 0;
  // Whether a transaction of this node may still apply (its answer was lost and not read back):
  // the next load must fence. True until the first fence.
  bool fence_needed_ = true;
  // The revision etcd refused the last commit at; 0: the next load reads etcd.
  int64_t refused_at_ = 0;
  // A call that waits for mu_ while another call finds etcd unreachable or without quorum gets
  // that answer at once, instead of asking etcd and waiting a budget of its own.
  UnavailableGate unavailable_;

  // Serves LoadInto from the mirror once it reached `at_least`; false: read etcd instead.
  bool LoadFromMirror(IpamLoadSink& sink, int64_t at_least, Status& decoded);
  // Lists the whole book into the mirror (the watch thread); false when etcd did not answer.
  bool ListIntoMirror(etcd::KvClient& client);
  // The watch thread: lists the book, then follows it, until `stop`.
  void FollowBook(std::stop_token stop);
  struct MirrorEntry {
    std::string value;
    int64_t mod_revision = 0;
  };
  std::unique_ptr<etcd::KvClient> watch_client_;
  std::mutex mirror_mu_;
  std::condition_variable mirror_moved_;
  std::map<std::string, MirrorEntry> mirror_;  // key -> value, under options_.prefix
  int64_t mirror_revision_ = 0;                // every change up to it is in mirror_
  bool mirror_live_ = false;                   // listed, and followed since
  bool watching_ = false;                      // a watch is open: the mirror trails etcd by its events
  // The revision this node's last commit applied at: a mirror behind it has not seen this node's
  // own changes, nor followed etcd since (its member cut off while commits go to another).
  std::atomic<int64_t> last_commit_revision_ = 0;
  bool watch_paused_ = false;
  std::atomic<uint64_t> mirror_loads_ = 0, mirror_lists_ = 0, mirror_lookups_ = 0;
  std::jthread watcher_;  // last: stopped and joined before the members it uses go
};

}  // namespace smv::ipam

#pragma once
// IpamDriver semantics on top of the pure allocator and an IpamStore. Thread-safe: one mutex
// guards the in-memory state. Every change is stored durably before the call returns (so before
// dockerd gets its answer); concurrent changes share one store commit (see commit_queue.h).
// Read-only calls see changes that are still being committed.
// A shared store (ipam/etcd_store.h) may refuse a commit because another node changed the book
// first (kAborted): memory is reloaded from the store and the change decided again. After a
// store that did not answer, every change first reloads, and fails with the store's error until
// it answers again; address releases are journaled instead (release_journal.h) and replayed,
// before anything else, once it answers. A service may start while its shared store is down.

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/ip.h"
#include "common/status.h"
#include "ipam/allocator.h"
#include "ipam/commit_queue.h"
#include "ipam/fleet_rules.h"
#include "ipam/ipam_api.h"
#include "ipam/ipam_store.h"
#include "ipam/pool.h"
#include "ipam/release_journal.h"
#include "ipam/unavailable_gate.h"

namespace smv::ipam {

class IpamService : public IpamApi {
 public:
  using Clock = std::function<int64_t()>;  // unix seconds

  // Loads everything from `store` (which must outlive the service). `journal` (shared stores, may
  // be null; must outlive the service) keeps the releases the store could not take.
  static Result<std::unique_ptr<IpamService>> Create(IpamStore& store, Clock clock = nullptr,
                                                     ReleaseJournal* journal = nullptr);

  // Idempotent for identical requests: the same subnet and range give the same pool, counted
  // per call so that dockerd's releases (possibly one per network) balance out.
  Result<PoolResult> RequestPool(const PoolRequest& request) override;
  // Idempotent: an unknown pool is not an error. Leases go with the last user; reservations stay.
  Status ReleasePool(const std::string& pool_id) override;
  // A network is created on `subnet` with these --aux-address values (name -> address). In a
  // shared book every host's network on one subnet must give the same ones: the first network
  // records them, a different set is refused naming both and the node that set them first.
  // Nothing to check in a local book, nor for a subnet that is not our pool.
  Status AgreeAuxAddresses(const Prefix& subnet, const std::map<std::string, std::string>& aux) override;
  // Returns "address/prefixlen". kNotFound for an unknown pool; see PoolAllocator::Choose.
  Result<std::string> RequestAddress(const AddressCall& call) override;
  // Idempotent. Keeps the name's reservation. With a journal, a store that does not answer is
  // not an error: the release is journaled and replayed later.
  Status ReleaseAddress(const std::string& pool_id, const std::string& address) override;
  // After a shared store did not answer: reads it again and replays the journaled releases. Does
  // nothing otherwise. Called on every reconcile pass, so recovery does not wait for a change.
  Status CatchUp() override;

  // Names the holder of a lease after the fact (engines that do not send the name, learned at
  // Join). The first address a name holds becomes its reservation; a name that holds another
  // address keeps its reservation (kDrifted). kFailedPrecondition when `address` is reserved
  // for another name. `mac` is remembered so that a fixed --mac-address identifies the name.
  Result<AttachOutcome> AttachName(const std::string& pool_id, const IpAddress& address, const std::string& name,
                                   const std::string& mac = "") override;

  // Whether `name` has a reservation in `pool_id` (in a shared book: as the store holds it now).
  bool HasReservation(const std::string& pool_id, const std::string& name) override;
  // The name whose reservation in `pool_id` was last seen with `mac`, or "".
  std::string NameForMac(const std::string& pool_id, const std::string& mac) const override;
  // Active pools that hold a lease on `address`.
  std::vector<std::string> PoolsLeasing(const IpAddress& address) const override;
  // Active pools on `subnet`.
  std::vector<std::string> PoolsOnSubnet(const Prefix& subnet) const override;
  Result<bool> SubnetInUse(const Prefix& subnet) override;

  // Pre-assigns `address` to `name` before its first run. kFailedPrecondition when the address
  // is reserved for another name or leased by another container; kInvalidArgument outside.
  Status Reserve(const std::string& pool_id, const std::string& name, const IpAddress& address) override;
  // Drops every reservation whose name or address is `name_or_address`; returns how many.
  Result<int> Release(const std::string& name_or_address) override;
  // In a shared book: frees every address `node` holds (a host that died, or that is gone for
  // good), so that its names may run on other hosts; the names keep their reservations. Returns
  // how many addresses were freed. Refused for this host itself and on a book that is not shared.
  Result<int> ReleaseNode(const std::string& node) override;
  // Reservation lifetime: `present` are the container names the engine lists now. Names not
  // present are marked gone; gone names past their pool's release_after are released.
  // Returns the names released.
  Result<std::vector<std::string>> ApplyPresence(const std::vector<std::string>& present) override;

  std::vector<ReservationView> ListReservations() const override;
  size_t LeaseCount(const std::string& pool_id) const override;
  std::vector<PoolUsage> PoolUsages() const override;
  bool HasActivePool(const std::string& pool_id) const override;
  std::optional<PoolConfig> FindPool(const std::string& pool_id) const override;
  Result<HeldOutcome> KeepHeld(const std::string& pool_id, const IpAddress& address, const std::string& name,
                               const std::string& mac, uint64_t releases_seen) override;
  uint64_t LocalReleases() const override;

 private:
  struct PoolState {
    PoolRecord record;        // record.users == 0: removed by dockerd, kept for its reservations
    PoolAllocator allocator;  // holds the leases and the name reservations
  };
  static std::optional<ReservationRecord> FindReservation(const PoolState& state, std::string_view name);
  // Sorted by name.
  static std::vector<ReservationRecord> AllReservations(const std::string& pool_id, const PoolState& state);
  static void Remember(PoolState& state, const ReservationRecord& r);
  // The pool as this host allocates from it: in a shared book, with this host's --ip-range.
  PoolAllocator NewAllocator(const PoolRecord& record) const;
  // After this host's range changed: the same leases and reservations in a new allocator.
  void RebuildAllocator(PoolState& state) const;
  // In a shared book one subnet has one gateway: refuses `wanted` when another is leased.
  static Status SameGatewayAsTheFleet(const PoolState& state, const IpAddress& wanted);
  // Shared book: refuses `name` while another node holds a lease for it (at any address).
  Status NameRunsNowhereElse(const PoolState& state, std::string_view name) const;
  // Refuses `name` while any node holds a lease for it (releasing its reservation in a shared book).
  static Status NameRunsNowhere(const PoolState& state, std::string_view name);
  // Who has `address` now, for KeepHeld's "given away", on the view read for its refusal: another
  // node's readable lease, or a reservation for a name other than `name`. Empty: not known (unsure).
  std::optional<std::string> HolderOf(const std::string& pool_id, const IpAddress& address,
                                      std::string_view name) const;

  // How often a change is decided again after a shared store refused it (another node first).
  static constexpr int kAttemptsOnConflict = 20;
  // Leases freed per commit by ReleaseNode: below etcd's default --max-txn-ops (128).
  static constexpr size_t kLeasesPerCommit = 100;

  IpamService(IpamStore& store, Clock clock, ReleaseJournal* journal)
      : store_(store),
        rules_(BookRules::For(store.shared())),
        clock_(std::move(clock)),
        journal_(journal),
        commits_(store, [this](const Status& error, std::span<const IpamBatch> sent) {
          ReloadAfterFailedCommit(error, sent);
        }) {}
  // Replaces memory with the store's state; memory is unchanged when the store fails.
  Status LoadLocked();
  // Frees what the journal says this node released, where this node still holds it. Writes to
  // the store directly: only called while no commit is queued or in flight.
  Status ReplayJournalLocked();
  Status JournalRelease(const std::string& pool_id, const IpAddress& address, const Status& store_error);
  // Runs `change` under the mutex (it applies its change to memory and queues the batch), then
  // waits until everything it queued or saw is durable: returns the commit's error otherwise.
  // `seen`: unavailable_.seen() when the call began (default: now). A call during which the
  // shared store was found unavailable (by this call or by one it waited for) is refused with
  // that answer at once instead of asking the store again: each call waits for at most one
  // store timeout, never for a chain of them.
  template <typename Change>
  auto Durably(Change change, std::optional<uint64_t> seen = std::nullopt) -> decltype(change()) {
    std::optional<decltype(change())> changed;
    const Status failed = RunDurably([&] { return StatusOf(changed.emplace(change())); }, seen);
    if (!failed.ok()) return failed;
    return std::move(*changed);
  }
  // Durably without the answer's type: OK when the change's own (last) answer stands, or why not.
  Status RunDurably(const std::function<Status()>& change, std::optional<uint64_t> seen);
  static const Status& StatusOf(const Status& s) { return s; }
  template <typename T>
  static Status StatusOf(const Result<T>& r) {
    return r.status();
  }
  // Answers that depend on what others hold, as opposed to what the request says.
  static bool IsRefusal(const Status& s);
  void ReloadAfterFailedCommit(const Status& error, std::span<const IpamBatch> sent);
  // A commit etcd may still apply (its answer was lost and could not be read back) was refused to
  // its callers: the container addresses it leases are journaled as released, so that the replay
  // after the next load (which fences first: the outcome is final then) frees any that applied.
  // Caller holds mu_.
  void JournalLeasesOfUnknownCommitLocked(std::span<const IpamBatch> sent);
  // Reloads when the last reload failed (a store that did not answer); its error otherwise.
  Status ReloadIfNeededLocked();
  Result<PoolState*> ActivePool(const std::string& pool_id);
  // What the allocator is asked for `call` (its --ip parsed and checked against the subnet).
  static Result<AddressRequest> AllocatorRequest(const PoolConfig& config, const AddressCall& call,
                                                 const std::string& node);
  // Leases `choice` to `call` (and reserves it for its name), in memory and queued for commit.
  Status LeaseChoiceLocked(PoolState& state, const AddressCall& call, const Choice& choice);
  // In a shared book: brings memory's view of `name` (its reservation, the lease on its address)
  // up to what the store holds, for decisions no commit compares, such as which reserved address
  // a guessed name gets. Best effort: on any error, or when a commit ran meanwhile, memory stays.
  void RefreshName(const std::string& pool_id, const std::string& name, uint64_t seen);
  // Shared book: `call` asks for an --aux-address the fleet already holds for the subnet while
  // this host's network on it is being created; the answer, or nullopt. Caller holds mu_.
  std::optional<std::string> AuxOfNetworkBeingCreated(const PoolState& state, const AddressCall& call) const;

  // Completes `batch` with what the fleet's rules compare and write (fleet_rules.h), then queues
  // it for commit. Caller holds mu_; every change goes through here.
  void Enqueue(IpamBatch& batch);
  void CompleteReads(IpamBatch& batch);
  // Enqueue, unless the completed batch writes or compares a record no load could decode
  // (IpamStore::CheckDecodable): etcd would refuse that commit every time, so it is refused at
  // once, naming the record and its fix, and nothing is queued. Before memory changes.
  [[nodiscard]] Status EnqueueDecodable(IpamBatch& batch);
  // Before a command a user runs against the whole book: decide on the book as it is now.
  void ReloadForCommandLocked();

  IpamStore& store_;
  std::unique_ptr<BookRules> rules_;  // chosen once, by whether the book is shared
  Clock clock_;
  ReleaseJournal* journal_;
  mutable std::timed_mutex mu_;  // guards pools_; taken before the commit queue's own mutex
  std::map<std::string, PoolState> pools_;
  // Memory is not the store's state: reload before any change. Set without mu_ too (by a read
  // that failed); read under it.
  std::atomic<bool> reload_pending_ = false;
  // The store's "unavailable" answers: a change refuses at once with one noted since it began.
  UnavailableGate unavailable_;
  // Shared book: pools this host asked for whose network is not created yet (RequestPool to
  // CreateNetwork), when dockerd asks for aux addresses. Guarded by mu_.
  std::set<std::string> creating_;
  std::atomic<uint64_t> local_releases_ = 0;  // ReleaseAddress calls so far (KeepHeld's guard)
  CommitQueue commits_;
};

}  // namespace smv::ipam

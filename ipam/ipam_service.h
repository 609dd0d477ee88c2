#pragma once
// IpamDriver semantics on top of the pure allocator and an IpamStore. Thread-safe: the store
// mirror's mutex guards the in-memory state. Every change is stored durably before the call
// returns (so before dockerd gets its answer); concurrent changes share one store commit. How a
// change becomes durable, reloads, the release journal and the "unavailable" gate are the store
// mirror's (store_mirror.h); names and reservations are the name book's (name_book.h), to which
// the reservation methods forward; the rules a shared book's commits compare are fleet_rules.h's.
// Read-only calls see changes that are still being committed. A service may start while its
// shared store is down.

#include <atomic>
#include <chrono>
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
#include "ipam/ipam_api.h"
#include "ipam/ipam_store.h"
#include "ipam/name_book.h"
#include "ipam/pool.h"
#include "ipam/pool_state.h"
#include "ipam/release_journal.h"
#include "ipam/shared_book.h"
#include "ipam/store_mirror.h"

namespace smv::ipam {

class IpamService : public IpamApi {
 public:
  using Clock = NameBook::Clock;  // unix seconds

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
                                   const std::string& mac = "") override {
    return names_.AttachName(pool_id, address, name, mac);
  }

  // Whether any of `names` has a reservation in `pool_id` (in a shared book: as the store holds
  // it now, read once for all of them).
  bool AnyReserved(const std::string& pool_id, const std::vector<std::string>& names) override {
    return names_.AnyReserved(pool_id, names);
  }
  // The name whose reservation in `pool_id` was last seen with `mac`, or "".
  std::string NameForMac(const std::string& pool_id, const std::string& mac) const override {
    return names_.NameForMac(pool_id, mac);
  }
  // Active pools that hold a lease on `address`.
  std::vector<std::string> PoolsLeasing(const IpAddress& address) const override;
  // Active pools on `subnet`.
  std::vector<std::string> PoolsOnSubnet(const Prefix& subnet) const override;
  Result<bool> SubnetInUse(const Prefix& subnet) override;

  // Pre-assigns `address` to `name` before its first run. kFailedPrecondition when the address
  // is reserved for another name or leased by another container; kInvalidArgument outside.
  Status Reserve(const std::string& pool_id, const std::string& name, const IpAddress& address) override {
    return names_.Reserve(pool_id, name, address);
  }
  // Drops every reservation whose name or address is `name_or_address`; returns how many.
  Result<int> Release(const std::string& name_or_address) override { return names_.Release(name_or_address); }
  // In a shared book: frees every address `node` holds (a host that died, or that is gone for
  // good), so that its names may run on other hosts; the names keep their reservations. Returns
  // how many addresses were freed. Refused for this host itself and on a book that is not shared.
  Result<int> ReleaseNode(const std::string& node) override { return names_.ReleaseNode(node); }
  // Reservation lifetime: `present` are the container names the engine lists now. Names not
  // present are marked gone; gone names past their pool's release_after are released.
  // Returns the names released.
  Result<std::vector<std::string>> ApplyPresence(const std::vector<std::string>& present) override {
    return names_.ApplyPresence(present);
  }

  std::vector<ReservationView> ListReservations() const override { return names_.ListReservations(); }
  size_t LeaseCount(const std::string& pool_id) const override;
  std::vector<PoolUsage> PoolUsages() const override;
  bool HasActivePool(const std::string& pool_id) const override;
  std::optional<PoolConfig> FindPool(const std::string& pool_id) const override;
  Result<HeldOutcome> KeepHeld(const std::string& pool_id, const IpAddress& address, const std::string& name,
                               const std::string& mac, uint64_t releases_seen) override;
  uint64_t LocalReleases() const override;

 private:
  // In a shared book one subnet has one gateway: refuses `wanted` when another is leased.
  static Status SameGatewayAsTheFleet(const PoolState& state, const IpAddress& wanted);
  // Who has `address` now, for KeepHeld's "given away", on the view read for its refusal: another
  // node's readable lease, or a reservation for a name other than `name`. Empty: not known (unsure).
  std::optional<std::string> HolderOf(const std::string& pool_id, const IpAddress& address,
                                      std::string_view name) const;

  IpamService(IpamStore& store, Clock clock, ReleaseJournal* journal)
      : mirror_(store, journal),
        book_(mirror_.book()),
        node_(mirror_.node()),
        mu_(mirror_.mutex()),
        pools_(mirror_.pools()),
        clock_(std::move(clock)),
        names_(mirror_, clock_) {}
  // What the allocator is asked for `call` (its --ip parsed and checked against the subnet).
  static Result<AddressRequest> AllocatorRequest(const PoolConfig& config, const AddressCall& call,
                                                 const std::string& node);
  // Leases `choice` to `call` (and reserves it for its name), in memory and queued for commit.
  // `group`: the start group the choice shared out from (AddressRequest::share_names).
  Status LeaseChoiceLocked(PoolState& state, const AddressCall& call, const Choice& choice,
                           const std::vector<std::string>& group);
  // Shared book: `call` asks for an --aux-address the fleet already holds for the subnet while
  // this host's network on it is being created; the answer, or nullopt. Caller holds mu_.
  std::optional<std::string> AuxOfNetworkBeingCreated(const PoolState& state, const AddressCall& call) const;
  // Shared book: `aux` agrees with the pool's aux addresses without a commit. Only the last user's
  // ReleasePool clears aux addresses once set; so while this host is one of the pool's users (its
  // RequestPool committed, compared with the pool's key) a view that shows them set, and the same
  // as `aux`, stays true, like the gateway a host finds leased. That rests on the pool's user
  // count, as the last user's release of every lease in the pool does. Caller holds mu_.
  bool AgreesAsAUserLocked(const std::string& pool_id, const std::map<std::string, std::string>& aux) const;
  // One of this host's RequestPools of `pool_id` was released (requested_here_).
  void ForgetRequestHere(const std::string& pool_id);
  // How long the count of requested_here_ and its use wait for a busy mutex before doing without.
  static constexpr std::chrono::milliseconds kCountWait{20};

  StoreMirror mirror_;
  SharedBook* const book_;   // mirror_'s: the book other hosts write too, or nullptr
  const std::string& node_;  // this host's name in a shared book; "" otherwise
  std::timed_mutex& mu_;     // mirror_'s mutex, which guards pools_ and creating_
  PoolStates& pools_;        // mirror_'s memory
  Clock clock_;
  NameBook names_;  // names and reservations, on mirror_'s memory
  // Shared book: pools this host asked for whose network is not created yet (RequestPool to
  // CreateNetwork), when dockerd asks for aux addresses. Guarded by mu_.
  std::set<std::string> creating_;
  // Shared book: how many of this host's RequestPools of each pool committed and were not yet
  // released (AgreesAsAUserLocked). Guarded by mu_.
  std::map<std::string, int> requested_here_;
  std::atomic<uint64_t> local_releases_ = 0;  // ReleaseAddress calls so far (KeepHeld's guard)
};

}  // namespace smv::ipam

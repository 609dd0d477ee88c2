#pragma once
// Container names and their reservations: the rules on where a name may run, attaching a name to
// its address after the fact, and the reservation commands a user runs (reserve, release by name
// or address, release --node, presence, list). IpamService owns one beside its store mirror and
// forwards IpamApi's reservation methods to it; the IpamDriver verbs stay IpamService's and ask
// the name rules here (RequestAddress: NameRunsNowhereElse).
//
// It works on the store mirror's memory under the mirror's mutex, and every change it makes goes
// through the mirror (Durably, EnqueueDecodable), as the verbs' do. It gets the mirror and the
// clock at construction and knows nothing of IpamService.
//
// KeepHeld (and its HolderOf) stay IpamService's: "is this running container's address still
// this host's" takes the address again by asking RequestAddress, a verb, and is guarded by the
// verbs' count of releases (LocalReleases). Moving it here would need a way back to the verbs.

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/ip.h"
#include "common/status.h"
#include "ipam/ipam_api.h"
#include "ipam/pool_state.h"
#include "ipam/store_mirror.h"

namespace smv::ipam {

class NameBook {
 public:
  using Clock = std::function<int64_t()>;  // unix seconds

  // `mirror` must outlive the book; the shared book and this host's node name are the mirror's.
  NameBook(StoreMirror& mirror, Clock clock);
  NameBook(const NameBook&) = delete;
  NameBook& operator=(const NameBook&) = delete;

  // Shared book: refuses `name` while another node holds a lease for it (at any address). Always
  // OK in a local book. Caller holds the mirror's mutex.
  Status NameRunsNowhereElse(const PoolState& state, std::string_view name) const;

  // The contracts of these are IpamService's (ipam_service.h).
  Result<AttachOutcome> AttachName(const std::string& pool_id, const IpAddress& address, const std::string& name,
                                   const std::string& mac);
  bool AnyReserved(const std::string& pool_id, const std::vector<std::string>& names);
  std::string NameForMac(const std::string& pool_id, const std::string& mac) const;
  Status Reserve(const std::string& pool_id, const std::string& name, const IpAddress& address);
  Result<int> Release(const std::string& name_or_address);
  Result<int> ReleaseNode(const std::string& node);
  Result<std::vector<std::string>> ApplyPresence(const std::vector<std::string>& present);
  std::vector<ReservationView> ListReservations() const;

  // Start groups (engines < 29; AddressRequest::share_names): `address` was given to one of the
  // tasks of `group` from a reservation of the group, and which task asked is learned at Join,
  // where AttachName swaps the two reservations. Kept in memory while the address's lease has no
  // name: until that Join or the address's release (a restart in between makes that Join
  // refused, as any other name's address would). Caller holds the mirror's mutex.
  void NoteSharedOut(const std::string& pool_id, const IpAddress& address, std::vector<std::string> group);
  // Forgets the share-out of `address` unless its lease is still waiting for its Join (unnamed):
  // a release and a new share-out of the same address may race to this point.
  void ForgetSharedOut(const std::string& pool_id, const IpAddress& address);
  // The group of a start whose share-out is still waiting for its Join and that `name` is in; {}.
  std::vector<std::string> StartGroupOf(const std::string& pool_id, const std::string& name) const;
  // Those of `names` a start group's share-out should read from a shared book first: memory holds
  // no reservation for them (another host may have made one), or another node's lease on their
  // reserved address (it may have been released since). All of them without the pool.
  std::vector<std::string> NamesToRead(const std::string& pool_id, const std::vector<std::string>& names) const;

 private:
  // Refuses `name` while any node holds a lease for it (releasing its reservation in a shared book).
  static Status NameRunsNowhere(const PoolState& state, std::string_view name);
  // ReleaseNode's argument checks: a shared book, a node name, not this host.
  Status CheckReleasableNode(const std::string& node) const;
  // Frees up to kLeasesPerCommit of `node`'s endpoint leases in one commit; how many (0: none left).
  Result<int> ReleaseNodeChunk(const std::string& node);
  // AttachName of `name` on an address shared out to its start group and reserved for `owner`,
  // another task of that group: `name` takes the address's reservation and `owner` takes
  // `name`'s old one (or none), in one commit. Caller is inside the mirror's Durably.
  Result<AttachOutcome> SwapInStartGroup(PoolState& state, const IpAddress& address, const Lease& lease,
                                         const std::string& name, const std::string& owner, const std::string& mac);
  // Whether `address` of the pool was shared out to a group holding both names.
  bool SharedOutTo(const std::string& pool_id, const IpAddress& address, std::string_view a, std::string_view b) const;
  // Whether the pool holds an unnamed lease of `address` (a share-out waiting for its Join).
  bool AwaitsJoin(const std::string& pool_id, const IpAddress& address) const;
  static constexpr size_t kMaxSharedOut = 4096;  // entries; past it those not awaiting a Join go

  StoreMirror& mirror_;
  SharedBook* const book_;   // mirror_'s: the book other hosts write too, or nullptr
  const std::string& node_;  // mirror_'s: this host's name in a shared book; "" otherwise
  std::timed_mutex& mu_;     // mirror_'s mutex, which guards pools_
  PoolStates& pools_;        // mirror_'s memory
  const Clock clock_;
  // (pool id, address) -> the start group it was shared out to; guarded by mu_.
  std::map<std::pair<std::string, IpAddress>, std::vector<std::string>> shared_out_;
};

}  // namespace smv::ipam

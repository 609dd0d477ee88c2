#pragma once
// What the layers above IPAM (identity, the daemon's HTTP edge and reconciler) call: one address
// book (IpamService) or a daemon's shared book beside its host-local one (SplitIpam). The
// methods' contracts are IpamService's (ipam_service.h).

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/ip.h"
#include "common/status.h"
#include "ipam/ipam_store.h"
#include "ipam/pool.h"

namespace smv::ipam {

struct PoolResult {
  std::string pool_id;
  std::string pool;  // canonical CIDR
};

struct AddressCall {
  std::string pool_id;
  std::string address;  // "" or an address without prefix length
  bool gateway = false;
  std::string name;       // com.docker.network.endpoint.name (Docker >= 29), may be ""
  std::string hint_name;  // best-effort identity on older engines: see AddressRequest
  std::string mac;        // com.docker.network.endpoint.macaddress, may be ""
  // Engines < 29, tasks of one swarm service starting together on this host: the reservation
  // names of all of them (the requester is one, which one is not known). See AddressRequest.
  std::vector<std::string> share_names;
  // Refused (kAborted) when this host has released any address since LocalReleases() said this.
  std::optional<uint64_t> unless_released_since;
};

// How a name learned after the fact relates to its reservation.
enum class AttachOutcome {
  kReserved,  // the name had none: this address is its reservation from now on
  kMatches,   // the name holds its reserved address
  kDrifted,   // the name holds another address; its reservation stays where it was
  kSwapped,   // the address was shared out to the name's start group (AddressRequest::share_names):
              // the name's reservation and the one the address had were swapped
};

struct ReservationView {
  ReservationRecord record;
  std::string pool_subnet;
  bool in_use = false;  // the reserved address is leased right now
  bool pool_active = false;
  std::optional<IpAddress> drifted_to;  // the name holds this other address right now
  std::string node;                     // in a shared book: the host whose lease holds the address
};

// Whether this host still holds the address of a running container (KeepHeld).
struct HeldOutcome {
  enum class Kind { kHeld, kRetaken, kGivenAway } kind = Kind::kHeld;
  std::string holder;  // kGivenAway: who has it now (another node, or another name's reservation)
};

// A pool and how many of its addresses are leased now (metrics).
struct PoolUsage {
  std::string pool_id;
  Prefix subnet;
  size_t leased = 0;
};

class IpamApi {
 public:
  virtual ~IpamApi() = default;
  virtual Result<PoolResult> RequestPool(const PoolRequest& request) = 0;
  virtual Status ReleasePool(const std::string& pool_id) = 0;
  virtual Status AgreeAuxAddresses(const Prefix& subnet, const std::map<std::string, std::string>& aux) = 0;
  virtual Result<std::string> RequestAddress(const AddressCall& call) = 0;
  virtual Status ReleaseAddress(const std::string& pool_id, const std::string& address) = 0;
  virtual Status CatchUp() = 0;
  virtual Result<AttachOutcome> AttachName(const std::string& pool_id, const IpAddress& address,
                                           const std::string& name, const std::string& mac = "") = 0;
  virtual bool AnyReserved(const std::string& pool_id, const std::vector<std::string>& names) = 0;
  virtual std::string NameForMac(const std::string& pool_id, const std::string& mac) const = 0;
  virtual std::vector<std::string> PoolsLeasing(const IpAddress& address) const = 0;
  virtual std::vector<std::string> PoolsOnSubnet(const Prefix& subnet) const = 0;
  // Whether a network uses `subnet` from this book, as the book holds it now: a shared book is
  // read (another host may have created one since), an error when it does not answer.
  virtual Result<bool> SubnetInUse(const Prefix& subnet) = 0;
  virtual Status Reserve(const std::string& pool_id, const std::string& name, const IpAddress& address) = 0;
  virtual Result<int> Release(const std::string& name_or_address) = 0;
  virtual Result<int> ReleaseNode(const std::string& node) = 0;
  virtual Result<std::vector<std::string>> ApplyPresence(const std::vector<std::string>& present) = 0;
  virtual std::vector<ReservationView> ListReservations() const = 0;
  virtual size_t LeaseCount(const std::string& pool_id) const = 0;
  virtual std::vector<PoolUsage> PoolUsages() const = 0;
  virtual bool HasActivePool(const std::string& pool_id) const = 0;
  virtual std::optional<PoolConfig> FindPool(const std::string& pool_id) const = 0;
  // A running container of this host uses `address`: in a shared book that freed it behind this
  // host's back (`reservations release --node` while the host was only cut off), it is taken
  // again where still free; kGivenAway when another node or name has it now, as the store says
  // then (the caller may delete the container's interface: never on memory alone). A local book: kHeld.
  // `releases_seen` is LocalReleases() read before the caller listed its running containers: when
  // this host has released an address since (a container that stopped meanwhile), nothing is taken
  // again (kAborted, asked again next time), so a container that left never gets its address back.
  virtual Result<HeldOutcome> KeepHeld(const std::string& pool_id, const IpAddress& address, const std::string& name,
                                       const std::string& mac, uint64_t releases_seen) = 0;
  // How many addresses this host has released so far (KeepHeld's guard).
  virtual uint64_t LocalReleases() const = 0;
};

}  // namespace smv::ipam

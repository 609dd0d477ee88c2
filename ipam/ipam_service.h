#pragma once
// IpamDriver semantics on top of the pure allocator and an IpamStore. Thread-safe: one mutex
// guards the in-memory state and every store write, and every change is stored durably before
// the call returns (so before dockerd gets its answer).

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/ip.h"
#include "common/status.h"
#include "ipam/allocator.h"
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
  std::string name;     // com.docker.network.endpoint.name (Docker >= 29), may be ""
  std::string mac;      // com.docker.network.endpoint.macaddress, may be ""
};

struct ReservationView {
  ReservationRecord record;
  std::string pool_subnet;
  bool in_use = false;  // the address is leased right now
  bool pool_active = false;
};

class IpamService {
 public:
  using Clock = std::function<int64_t()>;  // unix seconds

  // Loads everything from `store` (which must outlive the service).
  static Result<std::unique_ptr<IpamService>> Create(IpamStore& store, Clock clock = nullptr);

  // Idempotent for identical requests: the same subnet and range give the same pool, counted
  // per call so that dockerd's releases (possibly one per network) balance out.
  Result<PoolResult> RequestPool(const PoolRequest& request);
  // Idempotent: an unknown pool is not an error. Leases go with the last user; reservations stay.
  Status ReleasePool(const std::string& pool_id);
  // Returns "address/prefixlen". kNotFound for an unknown pool; see PoolAllocator::Choose.
  Result<std::string> RequestAddress(const AddressCall& call);
  // Idempotent. Keeps the name's reservation.
  Status ReleaseAddress(const std::string& pool_id, const std::string& address);

  // Names the holder of a lease after the fact (engines that do not send the name). The first
  // address a name holds becomes its reservation. kFailedPrecondition when `address` is
  // reserved for another name.
  Status AttachName(const std::string& pool_id, const IpAddress& address, const std::string& name);

  std::vector<ReservationView> ListReservations() const;
  size_t LeaseCount(const std::string& pool_id) const;
  bool HasActivePool(const std::string& pool_id) const;
  std::optional<PoolConfig> FindPool(const std::string& pool_id) const;

 private:
  struct PoolState {
    PoolRecord record;  // record.users == 0: removed by dockerd, kept for its reservations
    PoolAllocator allocator;
    std::map<std::string, ReservationRecord> reservations;  // by name
  };

  IpamService(IpamStore& store, Clock clock) : store_(store), clock_(std::move(clock)) {}
  Status LoadLocked();
  Result<PoolState*> ActivePool(const std::string& pool_id);

  IpamStore& store_;
  Clock clock_;
  mutable std::mutex mu_;  // guards pools_ and every store_ write
  std::map<std::string, PoolState> pools_;
};

}  // namespace smv::ipam

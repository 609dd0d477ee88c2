#pragma once
// One pool as the service's memory holds it: its record and the allocator that holds its leases
// and name reservations. Guarded by the store mirror's mutex (store_mirror.h).

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "ipam/allocator.h"
#include "ipam/ipam_store.h"

namespace smv::ipam {

struct PoolState {
  PoolRecord record;        // record.users == 0: removed by dockerd, kept for its reservations
  PoolAllocator allocator;  // holds the leases and the name reservations
};

using PoolStates = std::map<std::string, PoolState>;  // by pool id

std::optional<ReservationRecord> FindReservation(const PoolState& state, std::string_view name);
// Sorted by name.
std::vector<ReservationRecord> AllReservations(const std::string& pool_id, const PoolState& state);
// Adds or replaces `r` in the pool's allocator.
void Remember(PoolState& state, const ReservationRecord& r);
// The pool `pool_id` while a network uses it (users > 0); kNotFound naming it otherwise. Caller
// holds the mirror's mutex.
Result<PoolState*> ActivePool(PoolStates& pools, const std::string& pool_id);

}  // namespace smv::ipam

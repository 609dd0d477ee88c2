#include "ipam/pool_state.h"

#include <fmt/format.h>

#include <algorithm>

namespace smv::ipam {

std::optional<ReservationRecord> FindReservation(const PoolState& state, std::string_view name) {
  std::optional<ReservedName> r = state.allocator.reservations().Find(name);
  if (!r) return std::nullopt;
  return ReservationRecord{state.record.config.id,
                           std::string(r->name),
                           IpAddress(state.record.config.subnet.family(), r->address),
                           r->mac,
                           r->since,
                           r->gone_since};
}

std::vector<ReservationRecord> AllReservations(const std::string& pool_id, const PoolState& state) {
  std::vector<ReservationRecord> out;
  out.reserve(state.allocator.reservations().size());
  const Family family = state.record.config.subnet.family();
  state.allocator.reservations().ForEach([&](const ReservedName& r) {
    out.push_back(
        ReservationRecord{pool_id, std::string(r.name), IpAddress(family, r.address), r.mac, r.since, r.gone_since});
  });
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  return out;
}

void Remember(PoolState& state, const ReservationRecord& r) {
  state.allocator.AddReservation(r.name, r.address, r.mac, r.since, r.gone_since);
}

Result<PoolState*> ActivePool(PoolStates& pools, const std::string& pool_id) {
  auto it = pools.find(pool_id);
  if (it == pools.end() || it->second.record.users == 0) {
    return NotFound(
        fmt::format("unknown pool \"{}\": the network's address pool is not known to static-macvlan (was the "
                    "network created while the plugin used another --state-dir?)",
                    pool_id));
  }
  return &it->second;
}

}  // namespace smv::ipam

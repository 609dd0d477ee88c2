#include "ipam/split_ipam.h"

#include <fmt/format.h>

namespace smv::ipam {
namespace {

std::string Prefixed(std::string_view id) { return std::string(SplitIpam::kLocalPoolPrefix) + std::string(id); }

std::vector<std::string> LocalIds(std::vector<std::string> ids) {
  for (std::string& id : ids) id = Prefixed(id);
  return ids;
}

}  // namespace

std::pair<IpamApi*, std::string> SplitIpam::Route(const std::string& pool_id) const {
  if (pool_id.starts_with(kLocalPoolPrefix)) return {&local_, pool_id.substr(kLocalPoolPrefix.size())};
  return {&shared_, pool_id};
}

Result<PoolResult> SplitIpam::RequestPool(const PoolRequest& request) {
  Result<PoolScope> scope = ScopeOf(request);
  if (!scope.ok()) return scope.status();
  const bool local = *scope == PoolScope::kLocal;
  PoolRequest forwarded = request;
  forwarded.options.erase(std::string(kOptScope));
  Result<PoolConfig> config = ParsePoolRequest(forwarded);
  if (!config.ok()) return config.status();
  const std::string subnet = config->subnet.ToString();
  if (local) {
    Result<bool> fleet_uses = shared_.SubnetInUse(config->subnet);
    if (!fleet_uses.ok()) {
      return Unavailable(
          fmt::format("--ipam-opt {}=local: cannot check that subnet {} is not a shared pool of "
                      "the fleet: {}",
                      kOptScope, subnet, fleet_uses.status().message()));
    }
    if (*fleet_uses) {
      return FailedPrecondition(fmt::format(
          "--ipam-opt {}=local: subnet {} is already a shared pool (a network on this or another host takes its "
          "addresses from the fleet's book); a host-local pool needs a subnet no other host uses",
          kOptScope, subnet));
    }
  }
  if (!local && !local_.PoolsOnSubnet(config->subnet).empty()) {
    return FailedPrecondition(
        fmt::format("subnet {} is a host-local pool on this host (a network created with --ipam-opt {}=local); "
                    "give this network --ipam-opt {}=local too, or another subnet",
                    subnet, kOptScope, kOptScope));
  }
  if (!local) return shared_.RequestPool(forwarded);
  Result<PoolResult> pool = local_.RequestPool(forwarded);
  if (!pool.ok()) return pool;
  pool->pool_id = Prefixed(pool->pool_id);
  return pool;
}

Status SplitIpam::ReleasePool(const std::string& pool_id) {
  auto [book, id] = Route(pool_id);
  return book->ReleasePool(id);
}

Status SplitIpam::AgreeAuxAddresses(const Prefix& subnet, const std::map<std::string, std::string>& aux) {
  // Only a shared pool has anything to agree on; the local book accepts any.
  return shared_.AgreeAuxAddresses(subnet, aux);
}

Result<std::string> SplitIpam::RequestAddress(const AddressCall& call) {
  auto [book, id] = Route(call.pool_id);
  AddressCall routed = call;
  routed.pool_id = id;
  return book->RequestAddress(routed);
}

Status SplitIpam::ReleaseAddress(const std::string& pool_id, const std::string& address) {
  auto [book, id] = Route(pool_id);
  return book->ReleaseAddress(id, address);
}

Status SplitIpam::CatchUp() { return shared_.CatchUp(); }

Result<AttachOutcome> SplitIpam::AttachName(const std::string& pool_id, const IpAddress& address,
                                            const std::string& name, const std::string& mac) {
  auto [book, id] = Route(pool_id);
  return book->AttachName(id, address, name, mac);
}

bool SplitIpam::AnyReserved(const std::string& pool_id, const std::vector<std::string>& names) {
  auto [book, id] = Route(pool_id);
  return book->AnyReserved(id, names);
}

std::string SplitIpam::NameForMac(const std::string& pool_id, const std::string& mac) const {
  auto [book, id] = Route(pool_id);
  return book->NameForMac(id, mac);
}

std::vector<std::string> SplitIpam::PoolsLeasing(const IpAddress& address) const {
  std::vector<std::string> pools = shared_.PoolsLeasing(address);
  for (std::string& id : LocalIds(local_.PoolsLeasing(address))) pools.push_back(std::move(id));
  return pools;
}

std::vector<std::string> SplitIpam::PoolsOnSubnet(const Prefix& subnet) const {
  std::vector<std::string> pools = shared_.PoolsOnSubnet(subnet);
  for (std::string& id : LocalIds(local_.PoolsOnSubnet(subnet))) pools.push_back(std::move(id));
  return pools;
}

Result<bool> SplitIpam::SubnetInUse(const Prefix& subnet) {
  Result<bool> local = local_.SubnetInUse(subnet);
  if (!local.ok() || *local) return local;
  return shared_.SubnetInUse(subnet);
}

Status SplitIpam::Reserve(const std::string& pool_id, const std::string& name, const IpAddress& address) {
  auto [book, id] = Route(pool_id);
  return book->Reserve(id, name, address);
}

Result<int> SplitIpam::Release(const std::string& name_or_address) {
  Result<int> local = local_.Release(name_or_address);
  if (!local.ok()) return local;
  Result<int> shared = shared_.Release(name_or_address);
  if (!shared.ok()) return shared;
  return *local + *shared;
}

Result<int> SplitIpam::ReleaseNode(const std::string& node) { return shared_.ReleaseNode(node); }

Result<std::vector<std::string>> SplitIpam::ApplyPresence(const std::vector<std::string>& present) {
  return local_.ApplyPresence(present);
}

std::vector<ReservationView> SplitIpam::ListReservations() const {
  std::vector<ReservationView> views = shared_.ListReservations();
  for (ReservationView& view : local_.ListReservations()) {
    view.record.pool_id = Prefixed(view.record.pool_id);
    views.push_back(std::move(view));
  }
  return views;
}

size_t SplitIpam::LeaseCount(const std::string& pool_id) const {
  auto [book, id] = Route(pool_id);
  return book->LeaseCount(id);
}

std::vector<PoolUsage> SplitIpam::PoolUsages() const {
  std::vector<PoolUsage> out = shared_.PoolUsages();
  for (PoolUsage& usage : local_.PoolUsages()) {
    usage.pool_id = Prefixed(usage.pool_id);
    out.push_back(std::move(usage));
  }
  return out;
}

bool SplitIpam::HasActivePool(const std::string& pool_id) const {
  auto [book, id] = Route(pool_id);
  return book->HasActivePool(id);
}

std::optional<PoolConfig> SplitIpam::FindPool(const std::string& pool_id) const {
  auto [book, id] = Route(pool_id);
  std::optional<PoolConfig> config = book->FindPool(id);
  if (config) config->id = pool_id;
  return config;
}

IpamSnapshot MergeLocalBook(IpamSnapshot shared, IpamSnapshot local) {
  for (PoolRecord& pool : local.pools) {
    pool.config.id = Prefixed(pool.config.id);
    shared.pools.push_back(std::move(pool));
  }
  for (LeaseRecord& lease : local.leases) {
    lease.pool_id = Prefixed(lease.pool_id);
    shared.leases.push_back(std::move(lease));
  }
  for (ReservationRecord& reservation : local.reservations) {
    reservation.pool_id = Prefixed(reservation.pool_id);
    shared.reservations.push_back(std::move(reservation));
  }
  return shared;
}

Result<HeldOutcome> SplitIpam::KeepHeld(const std::string& pool_id, const IpAddress& address, const std::string& name,
                                        const std::string& mac, uint64_t releases_seen) {
  auto [book, id] = Route(pool_id);
  // The guard counts both books' releases; the book asked compares its own count.
  const uint64_t other = book == &shared_ ? local_.LocalReleases() : shared_.LocalReleases();
  if (releases_seen < other) return Aborted("an address was released on this host meanwhile: asked again next time");
  return book->KeepHeld(id, address, name, mac, releases_seen - other);
}

uint64_t SplitIpam::LocalReleases() const { return shared_.LocalReleases() + local_.LocalReleases(); }

}  // namespace smv::ipam

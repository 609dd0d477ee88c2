// Making the service: its store mirror loads memory and replays the journal. KeepHeld, which
// asks a verb (RequestAddress) again for a running container's address. And the read-only
// questions on memory (pools leasing an address, usage, a pool's config). The verbs are in
// pools_and_addresses.cc; names and reservations are the name book's (name_book.cc); how a change
// becomes durable is the store mirror's (store_mirror.cc).
#include "ipam/ipam_service.h"

#include <spdlog/spdlog.h>

#include "common/clock.h"

namespace smv::ipam {

Result<std::unique_ptr<IpamService>> IpamService::Create(IpamStore& store, Clock clock, ReleaseJournal* journal) {
  std::unique_ptr<IpamService> service(new IpamService(store, clock ? std::move(clock) : UnixSeconds, journal));
  SMV_RETURN_IF_ERROR(service->mirror_.Start());
  return service;
}

Status IpamService::CatchUp() { return mirror_.CatchUp(); }

uint64_t IpamService::LocalReleases() const { return local_releases_.load(); }

Result<HeldOutcome> IpamService::KeepHeld(const std::string& pool_id, const IpAddress& address, const std::string& name,
                                          const std::string& mac, uint64_t releases_seen) {
  if (book_ == nullptr) return HeldOutcome{};
  {
    std::scoped_lock lock(mu_);
    auto it = pools_.find(pool_id);
    if (it == pools_.end()) return HeldOutcome{};  // not this book's to judge
    const Lease* lease = it->second.allocator.FindLease(address);
    if (lease != nullptr && lease->node == node_) return HeldOutcome{};
    // Nobody known holds it: unsure, asked again next pass (never acted on as given away).
    if (lease != nullptr && lease->node == kUndecodableHolder) {
      return FailedPrecondition(fmt::format("the lease record of {} does not decode", address.ToString()));
    }
  }
  // Taken again even when memory shows another node's lease: "given away" deletes a container's
  // interface, so it must be as fresh as a commit. Memory may hold a lease its node has released
  // since (a lagging watch, no reload since); a refusal decided on such a view is decided again on
  // the store's (RunDurably), and the address is taken when it is free there.
  Result<std::string> again = RequestAddress({.pool_id = pool_id,
                                              .address = address.ToString(),
                                              .name = name,
                                              .mac = mac,
                                              .unless_released_since = releases_seen});
  if (again.ok()) return HeldOutcome{.kind = HeldOutcome::Kind::kRetaken, .holder = ""};
  if (!IsRefusal(again.status())) return again.status();
  // A refusal alone is no proof: the commit may be refused for another record, the name may run
  // elsewhere, the address's record may not decode. Given away only when the view read for the
  // refusal shows who has the address now; anything else is unsure, asked again next pass.
  std::optional<std::string> holder = HolderOf(pool_id, address, name);
  if (!holder) {
    return Status(again.status().code(),
                  fmt::format("address {} was refused but is not known to be another's (asked again next pass): {}",
                              address.ToString(), again.status().message()));
  }
  return HeldOutcome{.kind = HeldOutcome::Kind::kGivenAway, .holder = std::move(*holder)};
}

std::optional<std::string> IpamService::HolderOf(const std::string& pool_id, const IpAddress& address,
                                                 std::string_view name) const {
  std::scoped_lock lock(mu_);
  if (mirror_.reload_pending()) return std::nullopt;  // the reload after the refusal failed: memory is not the store's
  auto it = pools_.find(pool_id);
  if (it == pools_.end()) return std::nullopt;
  const PoolState& state = it->second;
  const Lease* lease = state.allocator.FindLease(address);
  if (lease != nullptr) {
    if (lease->node == node_ || lease->node == kUndecodableHolder) return std::nullopt;
    return fmt::format("node {}{}", lease->node, lease->name.empty() ? "" : " (container \"" + lease->name + "\")");
  }
  // Free, but kept for another name (reservations hold only records that decode). A container
  // without a name cannot tell its own reservation from another's.
  const std::optional<std::string_view> owner = state.allocator.ReservedFor(address);
  if (!owner || name.empty() || *owner == name) return std::nullopt;
  return fmt::format("reserved for container \"{}\"", *owner);
}

std::vector<std::string> IpamService::PoolsLeasing(const IpAddress& address) const {
  std::scoped_lock lock(mu_);
  std::vector<std::string> out;
  for (const auto& [id, state] : pools_) {
    if (state.record.users > 0 && state.allocator.FindLease(address) != nullptr) out.push_back(id);
  }
  return out;
}

std::vector<std::string> IpamService::PoolsOnSubnet(const Prefix& subnet) const {
  std::scoped_lock lock(mu_);
  std::vector<std::string> out;
  for (const auto& [id, state] : pools_) {
    if (state.record.users > 0 && state.record.config.subnet == subnet) out.push_back(id);
  }
  return out;
}

Result<bool> IpamService::SubnetInUse(const Prefix& subnet) {
  if (book_ == nullptr) return !PoolsOnSubnet(subnet).empty();
  // Other hosts create pools this host has not loaded: ask the store.
  Result<std::optional<PoolRecord>> pool = book_->ReadPool(PoolIdFor(subnet, std::nullopt));
  if (!pool.ok()) return pool.status();
  return pool->has_value() && (*pool)->users > 0;
}

size_t IpamService::LeaseCount(const std::string& pool_id) const {
  std::scoped_lock lock(mu_);
  auto it = pools_.find(pool_id);
  return it == pools_.end() ? 0 : it->second.allocator.leases().size();
}

std::vector<PoolUsage> IpamService::PoolUsages() const {
  std::scoped_lock lock(mu_);
  std::vector<PoolUsage> out;
  for (const auto& [id, state] : pools_) {
    out.push_back({id, state.record.config.subnet, state.allocator.leases().size()});
  }
  return out;
}

bool IpamService::HasActivePool(const std::string& pool_id) const {
  std::scoped_lock lock(mu_);
  auto it = pools_.find(pool_id);
  return it != pools_.end() && it->second.record.users > 0;
}

std::optional<PoolConfig> IpamService::FindPool(const std::string& pool_id) const {
  std::scoped_lock lock(mu_);
  auto it = pools_.find(pool_id);
  if (it == pools_.end()) return std::nullopt;
  return it->second.record.config;
}

}  // namespace smv::ipam

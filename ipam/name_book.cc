// Container names and their reservations (name_book.h): the rules on where a name may run,
// attaching a name to its address, and the reservation commands (reserve, release, release
// --node, presence, list).
#include "ipam/name_book.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <set>
#include <string>

#include "common/shell_word.h"

namespace smv::ipam {

NameBook::NameBook(StoreMirror& mirror, Clock clock)
    : mirror_(mirror),
      book_(mirror.book()),
      node_(mirror.node()),
      mu_(mirror.mutex()),
      pools_(mirror.pools()),
      clock_(std::move(clock)) {}

Status NameBook::NameRunsNowhereElse(const PoolState& state, std::string_view name) const {
  if (book_ == nullptr) return OkStatus();
  const Family family = state.record.config.subnet.family();
  for (const auto& [value, lease] : state.allocator.leases()) {
    if (lease.name == name && lease.node != node_) {
      return NameRunningOnAnotherNode(name, lease.node, IpAddress(family, value));
    }
  }
  return OkStatus();
}

Status NameBook::NameRunsNowhere(const PoolState& state, std::string_view name) {
  const Family family = state.record.config.subnet.family();
  for (const auto& [value, lease] : state.allocator.leases()) {
    if (lease.name != name) continue;
    return FailedPrecondition(fmt::format(
        "container \"{}\" is running on node {} with address {}: its reservation keeps the name off other hosts "
        "of the shared book; remove the container (docker rm) before releasing it",
        name, lease.node, IpAddress(family, value).ToString()));
  }
  return OkStatus();
}

Result<AttachOutcome> NameBook::AttachName(const std::string& pool_id, const IpAddress& address,
                                           const std::string& name, const std::string& mac) {
  Result<AttachOutcome> attached = mirror_.Durably([&]() -> Result<AttachOutcome> {
    Result<PoolState*> found = ActivePool(pools_, pool_id);
    if (!found.ok()) return found.status();
    PoolState& state = **found;
    const Lease* lease = state.allocator.FindLease(address);
    if (lease == nullptr) {
      return NotFound(fmt::format("address {} is not leased in pool \"{}\"", address.ToString(), pool_id));
    }
    // Engines that send no name (Docker < 29) reveal it only here, at Join: a name already
    // running on another host is refused now, and the failed Join undoes this container.
    SMV_RETURN_IF_ERROR(NameRunsNowhereElse(state, name));
    const std::optional<std::string_view> owner = state.allocator.ReservedFor(address);
    if (owner && *owner != name && AwaitsJoin(pool_id, address) && SharedOutTo(pool_id, address, *owner, name)) {
      return SwapInStartGroup(state, address, *lease, name, std::string(*owner), mac);
    }
    if (owner && *owner != name) {
      return FailedPrecondition(
          fmt::format("address {} is reserved for container \"{}\", not \"{}\"; release it with: static-macvlan "
                      "reservations release {}",
                      address.ToString(), *owner, name, ShellWord(*owner)));
    }
    const int64_t now = clock_();
    IpamBatch batch;
    Lease named = *lease;
    named.name = name;
    if (!mac.empty()) named.mac = mac;
    if (named.name != lease->name || named.mac != lease->mac) {
      batch.put_leases.push_back(LeaseRecord{pool_id, address, named, now});
    }
    AttachOutcome outcome = AttachOutcome::kMatches;
    const std::optional<ReservationRecord> existing = FindReservation(state, name);
    if (!existing) {
      outcome = AttachOutcome::kReserved;
      batch.put_reservations.push_back(ReservationRecord{pool_id, name, address, named.mac, now, 0});
    } else {
      if (existing->address != address) outcome = AttachOutcome::kDrifted;
      ReservationRecord updated = *existing;
      if (outcome == AttachOutcome::kMatches && !mac.empty()) updated.mac = mac;
      updated.gone_since = 0;
      if (!(updated == *existing)) batch.put_reservations.push_back(updated);
    }
    if (!batch.empty()) SMV_RETURN_IF_ERROR(mirror_.EnqueueDecodable(batch));
    state.allocator.AddLease(address, named);
    for (const ReservationRecord& r : batch.put_reservations) Remember(state, r);
    if (outcome == AttachOutcome::kReserved) {
      spdlog::info("address reserved pool=\"{}\" address={} name={}", pool_id, address.ToString(), name);
    } else if (outcome == AttachOutcome::kDrifted) {
      spdlog::warn("container {} got {} but its reservation is {} (kept)", name, address.ToString(),
                   existing->address.ToString());
    }
    return outcome;
  });
  if (attached.ok()) {  // the start group's share-out of this address ends with its Join
    std::scoped_lock lock(mu_);
    ForgetSharedOut(pool_id, address);
  }
  return attached;
}

bool NameBook::AnyReserved(const std::string& pool_id, const std::vector<std::string>& names) {
  if (names.empty()) return false;
  if (book_ != nullptr) {
    // The book as it holds it now, in one read for every name: a name reserved on another host
    // since the last load counts (else its task is never told apart: the full-size swarm run saw
    // a drained task drift so). Memory answers only when the book does not.
    Result<bool> read = book_->AnyReserved(pool_id, names);
    if (read.ok()) return *read;
    mirror_.NoteUnavailable(read.status());  // the change that follows refuses at once
    spdlog::log(read.status().code() == Code::kUnavailable ? spdlog::level::debug : spdlog::level::warn,
                "reading reservations of pool \"{}\" from the shared store: {}", pool_id, read.status().message());
  }
  std::scoped_lock lock(mu_);
  auto it = pools_.find(pool_id);
  if (it == pools_.end()) return false;
  return std::any_of(names.begin(), names.end(),
                     [&](const std::string& name) { return it->second.allocator.ReservationOf(name).has_value(); });
}

std::string NameBook::NameForMac(const std::string& pool_id, const std::string& mac) const {
  const std::optional<MacAddress> wanted = MacAddress::Parse(mac);
  if (!wanted) return "";
  std::scoped_lock lock(mu_);
  auto it = pools_.find(pool_id);
  if (it == pools_.end()) return "";
  return std::string(it->second.allocator.reservations().FirstNameWithMac(*wanted));
}

Status NameBook::Reserve(const std::string& pool_id, const std::string& name, const IpAddress& address) {
  {
    std::scoped_lock lock(mu_);
    mirror_.ReloadForCommandLocked();
  }
  return mirror_.Durably([&]() -> Status {
    Result<PoolState*> found = ActivePool(pools_, pool_id);
    if (!found.ok()) return found.status();
    PoolState& state = **found;
    const PoolConfig& config = state.record.config;
    if (!config.IsUsable(address)) {
      return InvalidArgument(
          fmt::format("address {} is not a usable address of subnet {}", address.ToString(), config.subnet.ToString()));
    }
    if (const std::optional<std::string_view> owner = state.allocator.ReservedFor(address)) {
      if (*owner == name) return OkStatus();
      return FailedPrecondition(
          fmt::format("address {} is reserved for container \"{}\"; release it with: static-macvlan reservations "
                      "release {}",
                      address.ToString(), *owner, ShellWord(*owner)));
    }
    if (const Lease* lease = state.allocator.FindLease(address);
        lease != nullptr && (lease->kind == LeaseKind::kGateway || lease->name != name)) {
      return FailedPrecondition(fmt::format("address {} is in use{}", address.ToString(),
                                            lease->kind == LeaseKind::kGateway ? " as the network's gateway"
                                            : lease->name.empty()              ? ""
                                                                  : fmt::format(" by container \"{}\"", lease->name)));
    }
    IpamBatch batch;
    batch.put_reservations.push_back(ReservationRecord{pool_id, name, address, "", clock_(), 0});
    SMV_RETURN_IF_ERROR(mirror_.EnqueueDecodable(batch));
    Remember(state, batch.put_reservations.front());
    spdlog::info("address reserved by a user pool=\"{}\" address={} name={}", pool_id, address.ToString(), name);
    return OkStatus();
  });
}

Result<int> NameBook::Release(const std::string& name_or_address) {
  {
    std::scoped_lock lock(mu_);
    mirror_.ReloadForCommandLocked();
  }
  return mirror_.Durably([&]() -> Result<int> {
    const std::optional<IpAddress> ip = IpAddress::Parse(name_or_address);
    IpamBatch batch;
    for (const auto& [id, state] : pools_) {
      for (const ReservationRecord& record : AllReservations(id, state)) {
        if (record.name == name_or_address || (ip && record.address == *ip)) {
          // In a shared book a running name's reservation is what keeps it off other hosts.
          if (book_ != nullptr) SMV_RETURN_IF_ERROR(NameRunsNowhere(state, record.name));
          batch.delete_reservations.emplace_back(id, record.name);
        }
      }
    }
    if (batch.empty()) return 0;
    SMV_RETURN_IF_ERROR(mirror_.EnqueueDecodable(batch));
    for (const auto& [pool_id, name] : batch.delete_reservations) {
      PoolState& state = pools_.at(pool_id);
      state.allocator.RemoveReservation(name);
      spdlog::info("reservation released pool=\"{}\" name={}", pool_id, name);
    }
    return static_cast<int>(batch.delete_reservations.size());
  });
}

Status NameBook::CheckReleasableNode(const std::string& node) const {
  if (book_ == nullptr) {
    return FailedPrecondition(fmt::format(
        "--node {}: this daemon's address book is not shared by hosts (serve --store lmdb); there is no other node",
        node));
  }
  if (node.empty() || node.find('/') != std::string::npos) {
    return InvalidArgument(fmt::format("--node \"{}\": want a node name as `reservations ls` shows it", node));
  }
  if (node == node_) {
    return FailedPrecondition(
        fmt::format("--node {} is this host: its addresses are freed when its containers are removed (docker rm); "
                    "run the command on another host of the fleet",
                    node));
  }
  return OkStatus();
}

Result<int> NameBook::ReleaseNodeChunk(const std::string& node) {
  return mirror_.Durably([&]() -> Result<int> {
    IpamBatch batch;
    for (const auto& [id, state] : pools_) {
      const Family family = state.record.config.subnet.family();
      for (const auto& [value, lease] : state.allocator.leases()) {
        if (batch.delete_leases.size() == kLeasesPerCommit) break;
        // Gateway and aux addresses are the subnet's, which every host's network on it gives.
        if (lease.node == node && lease.kind == LeaseKind::kEndpoint) {
          batch.delete_leases.emplace_back(id, IpAddress(family, value));
        }
      }
    }
    if (batch.empty()) return 0;
    SMV_RETURN_IF_ERROR(mirror_.EnqueueDecodable(batch));
    for (const auto& [pool_id, address] : batch.delete_leases) pools_.at(pool_id).allocator.RemoveLease(address);
    return static_cast<int>(batch.delete_leases.size());
  });
}

Result<int> NameBook::ReleaseNode(const std::string& node) {
  SMV_RETURN_IF_ERROR(CheckReleasableNode(node));
  // First make every commit that node decided on its view fail: it reloads before it decides
  // again, and learns from its commit key that it was released.
  if (Status fenced = book_->FenceNode(node); !fenced.ok()) {
    return Status(fenced.code(), fmt::format("--node {}: {}", node, fenced.message()));
  }
  {
    std::scoped_lock lock(mu_);
    mirror_.ReloadForCommandLocked();  // decide on the book as it is now, not on this host's last view of it
  }
  int freed = 0;
  for (;;) {
    Result<int> chunk = ReleaseNodeChunk(node);
    if (!chunk.ok()) {
      return Status(chunk.status().code(),
                    fmt::format("{} address(es) of node {} freed, then: {}", freed, node, chunk.status().message()));
    }
    if (*chunk == 0) break;
    freed += *chunk;
  }
  spdlog::warn("released every address held by node {} ({}) on a user's request", node, freed);
  return freed;
}

Result<std::vector<std::string>> NameBook::ApplyPresence(const std::vector<std::string>& present) {
  // This host's engine cannot tell a name running on another host from a gone one: nothing ages
  // out of a shared book.
  if (book_ != nullptr) return std::vector<std::string>{};
  return mirror_.Durably([&]() -> Result<std::vector<std::string>> {
    const std::set<std::string> names(present.begin(), present.end());
    const int64_t now = clock_();
    IpamBatch batch;
    std::vector<std::string> released;
    for (const auto& [id, state] : pools_) {
      const std::optional<int64_t> keep_for = state.record.config.release_after_seconds;
      for (const ReservationRecord& record : AllReservations(id, state)) {
        const std::string& name = record.name;
        ReservationRecord updated = record;
        if (names.contains(name)) {
          updated.gone_since = 0;
        } else if (record.gone_since == 0) {
          updated.gone_since = now;
        } else if (keep_for && now - record.gone_since >= *keep_for) {
          batch.delete_reservations.emplace_back(id, name);
          released.push_back(name);
          continue;
        }
        if (!(updated == record)) batch.put_reservations.push_back(updated);
      }
    }
    if (batch.empty()) return released;
    SMV_RETURN_IF_ERROR(mirror_.EnqueueDecodable(batch));
    for (const ReservationRecord& r : batch.put_reservations) Remember(pools_.at(r.pool_id), r);
    for (const auto& [pool_id, name] : batch.delete_reservations) {
      PoolState& state = pools_.at(pool_id);
      state.allocator.RemoveReservation(name);
      spdlog::info("reservation expired pool=\"{}\" name={}", pool_id, name);
    }
    return released;
  });
}

std::vector<ReservationView> NameBook::ListReservations() const {
  std::scoped_lock lock(mu_);
  std::vector<ReservationView> out;
  for (const auto& [id, state] : pools_) {
    std::map<std::string, IpAddress> held;  // name -> the lowest address it holds now
    for (const auto& [value, lease] : state.allocator.leases()) {
      if (lease.name.empty()) continue;
      const IpAddress address(state.record.config.subnet.family(), value);
      auto [at, added] = held.emplace(lease.name, address);
      if (!added && address < at->second) at->second = address;
    }
    for (const ReservationRecord& record : AllReservations(id, state)) {
      const std::string& name = record.name;
      const Lease* at_reserved = state.allocator.FindLease(record.address);
      ReservationView view{record, state.record.config.subnet.ToString(), at_reserved != nullptr,
                           state.record.users > 0, std::nullopt};
      if (at_reserved != nullptr) view.node = at_reserved->node;
      if (auto h = held.find(name);
          h != held.end() && h->second != record.address && (at_reserved == nullptr || at_reserved->name != name)) {
        view.drifted_to = h->second;
      }
      out.push_back(view);
    }
  }
  return out;
}

}  // namespace smv::ipam

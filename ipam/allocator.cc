#include "ipam/allocator.h"

#include <iterator>

#include "common/shell_word.h"

namespace smv::ipam {

std::string_view LeaseKindName(LeaseKind kind) {
  switch (kind) {
    case LeaseKind::kGateway: return "gateway";
    case LeaseKind::kEndpoint: return "endpoint";
    case LeaseKind::kAux: return "aux";
  }
  return "endpoint";
}

std::optional<LeaseKind> LeaseKindFromName(std::string_view name) {
  if (name == "gateway") return LeaseKind::kGateway;
  if (name == "endpoint") return LeaseKind::kEndpoint;
  if (name == "aux") return LeaseKind::kAux;
  return std::nullopt;
}

void IntervalSet::Insert(Uint128 x) {
  if (Contains(x)) return;
  Uint128 start = x;
  Uint128 end = x;
  auto next = intervals_.upper_bound(x);
  if (next != intervals_.begin()) {
    auto prev = std::prev(next);
    if (prev->second + 1 == x) {  // extends the interval on the left
      start = prev->first;
      intervals_.erase(prev);
    }
  }
  if (next != intervals_.end() && next->first == x + 1) {  // joins the interval on the right
    end = next->second;
    intervals_.erase(next);
  }
  intervals_[start] = end;
}

void IntervalSet::Erase(Uint128 x) {
  auto it = intervals_.upper_bound(x);
  if (it == intervals_.begin()) return;
  --it;
  const Uint128 start = it->first;
  const Uint128 end = it->second;
  if (x > end) return;
  intervals_.erase(it);
  if (start < x) intervals_[start] = x - 1;
  if (x < end) intervals_[x + 1] = end;
}

bool IntervalSet::Contains(Uint128 x) const {
  auto it = intervals_.upper_bound(x);
  if (it == intervals_.begin()) return false;
  return x <= std::prev(it)->second;
}

std::optional<Uint128> IntervalSet::NextAbsent(Uint128 from, Uint128 last) const {
  if (from > last) return std::nullopt;
  auto it = intervals_.upper_bound(from);
  if (it != intervals_.begin() && from <= std::prev(it)->second) {
    const Uint128 end = std::prev(it)->second;
    if (end >= last) return std::nullopt;
    return end + 1;  // intervals never touch, so end + 1 is free
  }
  return from;
}

PoolAllocator::PoolAllocator(PoolConfig config) : config_(std::move(config)) { next_ = config_.DynamicFirst().value(); }

bool PoolAllocator::IsBlocked(Uint128 x) const { return leases_.contains(x) || reservations_.NameAt(x).has_value(); }

void PoolAllocator::Refresh(Uint128 x) {
  if (x < config_.DynamicFirst().value() || x > config_.DynamicLast().value()) return;
  if (IsBlocked(x)) {
    blocked_.Insert(x);
  } else {
    blocked_.Erase(x);
  }
}

void PoolAllocator::MoveCursor(uint64_t seed) {
  const Uint128 first = config_.DynamicFirst().value();
  const Uint128 size = config_.DynamicLast().value() - first + 1;
  next_ = first + Uint128{seed} % size;
}

Status NameRunningOnAnotherNode(std::string_view name, std::string_view node, const IpAddress& address) {
  return FailedPrecondition(
      fmt::format("container name \"{}\" is running on node {} with address {}; one name cannot run on two hosts at "
                  "once (remove it there first)",
                  name, node.empty() ? "(unnamed)" : node, address.ToString()));
}

Result<Choice> PoolAllocator::ChooseDynamic() const {
  const Uint128 first = config_.DynamicFirst().value();
  const Uint128 last = config_.DynamicLast().value();
  std::optional<Uint128> found = blocked_.NextAbsent(std::max(next_, first), last);
  if (!found) found = blocked_.NextAbsent(first, last);  // wrap around once
  if (!found) {
    const std::string where = config_.range ? fmt::format("--ip-range {}", config_.range->ToString())
                                            : fmt::format("--subnet {}", config_.subnet.ToString());
    return ResourceExhausted(
        fmt::format("no free address left in {} (every address is in use or reserved for a container name; "
                    "see static-macvlan reservations ls)",
                    where));
  }
  return Choice{.address = IpAddress(config_.subnet.family(), *found), .dynamic = true};
}

Result<Choice> PoolAllocator::ChoosePreferred(const AddressRequest& request, const std::string& who,
                                              const std::optional<IpAddress>& reserved) const {
  const IpAddress& ip = *request.preferred;
  if (!config_.subnet.Contains(ip)) {
    return InvalidArgument(
        fmt::format("address {} is outside the network's subnet {}", ip.ToString(), config_.subnet.ToString()));
  }
  if (!config_.IsUsable(ip)) {
    return InvalidArgument(fmt::format("address {} is the {} address of subnet {} and cannot be given to a container",
                                       ip.ToString(), ip == config_.subnet.Network() ? "network" : "broadcast",
                                       config_.subnet.ToString()));
  }
  if (const Lease* lease = FindLease(ip); lease != nullptr) {
    if (request.gateway && lease->kind == LeaseKind::kGateway)
      return Choice{.address = ip, .already_leased_as_gateway = true};
    if (!request.name.empty() && lease->kind == LeaseKind::kEndpoint && lease->name == request.name) {
      return Choice{.address = ip, .reserve_for_name = reserved != ip};  // see the same-name case in Choose
    }
    if (lease->kind == LeaseKind::kGateway) {
      return AlreadyExists(fmt::format("address {} is the network's gateway", ip.ToString()));
    }
    if (lease->kind == LeaseKind::kAux) {
      return AlreadyExists(fmt::format("address {} is an --aux-address of the network", ip.ToString()));
    }
    return AlreadyExists(
        fmt::format("address {} is already in use{}", ip.ToString(),
                    lease->name.empty() ? std::string() : fmt::format(" by container \"{}\"", lease->name)));
  }
  if (std::optional<std::string_view> owner = ReservedFor(ip); owner && !who.empty() && *owner != who) {
    return FailedPrecondition(fmt::format(
        "address {} is reserved for container \"{}\"; release it with: static-macvlan reservations release {}",
        ip.ToString(), *owner, ShellWord(*owner)));
  }
  const bool reserve = !request.name.empty() && !request.gateway && reserved != ip;
  return Choice{.address = ip, .reserve_for_name = reserve};
}

Result<Choice> PoolAllocator::Choose(const AddressRequest& request) const {
  const std::string& who = request.name.empty() ? request.hint_name : request.name;
  const std::optional<IpAddress> reserved = who.empty() ? std::nullopt : ReservationOf(who);

  if (request.gateway && !request.preferred) {
    // Docker's own IPAM takes the first address of the subnet for the gateway.
    const IpAddress first = config_.FirstUsable();
    const Lease* lease = FindLease(first);
    if (lease == nullptr) return Choice{.address = first};
    if (lease->kind == LeaseKind::kGateway) return Choice{.address = first, .already_leased_as_gateway = true};
    return ChooseDynamic();
  }
  if (request.preferred) return ChoosePreferred(request, who, reserved);
  if (reserved) {
    const Lease* lease = FindLease(*reserved);
    if (lease == nullptr) return Choice{.address = *reserved};
    // A container is on a network once, so a name asking again while it holds its address is a
    // repeat of a request whose answer was lost (a crash before the reply): answer it the same.
    if (!request.name.empty() && lease->name == request.name) {
      if (lease->node != request.node) {
        return NameRunningOnAnotherNode(request.name, lease->node, *reserved);
      }
      return Choice{.address = *reserved};
    }
  }
  if (request.name.empty() && !request.gateway) {
    for (const std::string& sharer : request.share_names) {
      std::optional<IpAddress> theirs = ReservationOf(sharer);
      if (theirs && FindLease(*theirs) == nullptr) return Choice{.address = *theirs, .shared_from = sharer};
    }
  }
  Result<Choice> dynamic = ChooseDynamic();
  // A name without a reservation keeps its first address. A name whose reservation is in use
  // (a second endpoint of the same name) gets a free address and keeps its reservation.
  if (dynamic.ok() && !request.name.empty() && !reserved) dynamic->reserve_for_name = true;
  return dynamic;
}

void PoolAllocator::AddLease(const IpAddress& ip, Lease lease, bool dynamic) {
  leases_[ip.value()] = std::move(lease);
  if (dynamic) next_ = ip.value() + 1;
  Refresh(ip.value());
}

void PoolAllocator::RemoveLease(const IpAddress& ip) {
  leases_.erase(ip.value());
  Refresh(ip.value());
}

void PoolAllocator::AddReservation(std::string_view name, const IpAddress& ip, std::string_view mac, int64_t since,
                                   int64_t gone_since) {
  const std::optional<IpAddress> before = ReservationOf(name);
  reservations_.Put(name, ip.value(), mac, since, gone_since);
  if (before && *before != ip) Refresh(before->value());
  Refresh(ip.value());
}

void PoolAllocator::RemoveReservation(std::string_view name) {
  const std::optional<IpAddress> before = ReservationOf(name);
  if (!before) return;
  reservations_.Erase(name);
  Refresh(before->value());
}

const Lease* PoolAllocator::FindLease(const IpAddress& ip) const {
  if (ip.family() != config_.subnet.family()) return nullptr;
  auto it = leases_.find(ip.value());
  return it == leases_.end() ? nullptr : &it->second;
}

std::optional<std::string_view> PoolAllocator::ReservedFor(const IpAddress& ip) const {
  if (ip.family() != config_.subnet.family()) return std::nullopt;
  return reservations_.NameAt(ip.value());
}

std::optional<IpAddress> PoolAllocator::ReservationOf(std::string_view name) const {
  std::optional<Uint128> address = reservations_.AddressFor(name);
  if (!address) return std::nullopt;
  return IpAddress(config_.subnet.family(), *address);
}

}  // namespace smv::ipam

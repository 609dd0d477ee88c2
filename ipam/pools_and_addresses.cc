// IpamDriver's verbs on pools and addresses (RequestPool .. ReleaseAddress), and what the
// engine and the driver ask of pools. Every change goes through the store mirror's Durably
// (store_mirror.h); the name rules RequestAddress asks are the name book's (name_book.cc).
#include "ipam/ipam_service.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <utility>

namespace smv::ipam {

Status IpamService::SameGatewayAsTheFleet(const PoolState& state, const IpAddress& wanted) {
  const Family family = state.record.config.subnet.family();
  for (const auto& [value, lease] : state.allocator.leases()) {
    const IpAddress address(family, value);
    if (lease.kind != LeaseKind::kGateway || address == wanted) continue;
    return FailedPrecondition(fmt::format(
        "--gateway {}: subnet {} is one pool for every host sharing the address book, and its networks use gateway "
        "{}{}; give every host's network --gateway {}",
        wanted.ToString(), state.record.config.subnet.ToString(), address.ToString(),
        lease.node.empty() ? "" : fmt::format(" (first set on node {})", lease.node), address.ToString()));
  }
  return OkStatus();
}

Result<PoolResult> IpamService::RequestPool(const PoolRequest& request) {
  Result<PoolConfig> config = ParsePoolRequest(request);
  if (!config.ok()) return config.status();
  if (ScopeOf(request).value() == PoolScope::kShared && book_ == nullptr) {
    return FailedPrecondition(
        fmt::format("--ipam-opt {}=shared: this daemon keeps its address book in lmdb, on this host only; start "
                    "it with --store etcd://HOST:PORT[,...] to share pools between hosts, or drop the option",
                    kOptScope));
  }

  // In a shared book a subnet is one pool for every host (one key per address and per name), and
  // a host's --ip-range is only where its dynamic addresses come from.
  std::optional<Prefix> node_range;
  if (book_ != nullptr) {
    node_range = config->range;
    config->range.reset();
    config->id = PoolIdFor(config->subnet, std::nullopt);
  }
  Result<PoolResult> requested = mirror_.Durably([&]() -> Result<PoolResult> {
    auto it = pools_.find(config->id);
    PoolRecord record{.config = *config, .users = 1, .node_ranges = {}, .aux = {}, .aux_set_by = ""};
    if (it != pools_.end()) {
      const PoolRecord& existing = it->second.record;
      if (existing.users > 0 && existing.config.options != config->options) {
        return FailedPrecondition(
            fmt::format("subnet {} is already in use by another network{} with different --ipam-opt values; "
                        "use the same options or another subnet",
                        config->id, book_ != nullptr ? " (on this or another host)" : ""));
      }
      record.users = existing.users + 1;
      record.node_ranges = existing.node_ranges;
      record.aux = existing.aux;
      record.aux_set_by = existing.aux_set_by;
    }
    if (node_range) {
      record.node_ranges[node_] = node_range->ToString();
    } else if (book_ != nullptr) {
      record.node_ranges.erase(node_);
    }
    IpamBatch batch;
    batch.put_pools.push_back(record);
    mirror_.Enqueue(std::move(batch));
    if (book_ != nullptr) creating_.insert(config->id);  // until CreateNetwork: see AuxOfNetworkBeingCreated
    if (it == pools_.end()) {
      pools_.emplace(config->id, PoolState{record, mirror_.NewAllocator(record)});
    } else {
      const bool range_changed = it->second.record.node_ranges != record.node_ranges;
      it->second.record = record;
      if (range_changed) mirror_.RebuildAllocator(it->second);
    }
    spdlog::info("pool requested id=\"{}\" users={}", config->id, record.users);
    return PoolResult{config->id, config->subnet.ToString()};
  });
  // Not counted when the mutex stays busy (a reload that waits for etcd): that only costs a commit.
  if (requested.ok() && book_ != nullptr && mu_.try_lock_for(kCountWait)) {
    std::scoped_lock lock(std::adopt_lock, mu_);
    ++requested_here_[config->id];
  }
  return requested;
}

namespace {

std::string AuxFlags(const std::map<std::string, std::string>& aux) {
  if (aux.empty()) return "no --aux-address";
  std::string out;
  for (const auto& [name, address] : aux)
    out += fmt::format("{}--aux-address {}={}", out.empty() ? "" : " ", name, address);
  return out;
}

// The lease on aux address `text` while it is still the first host's --ip lease (unnamed, of
// this kind): its agreement makes it the subnet's. nullptr otherwise.
const Lease* LeaseToShareAsAux(const PoolState& state, const std::string& text) {
  const std::optional<IpAddress> address = IpAddress::Parse(text);
  const Lease* lease = address ? state.allocator.FindLease(*address) : nullptr;
  if (lease == nullptr || lease->kind != LeaseKind::kEndpoint || !lease->name.empty()) return nullptr;
  return lease;
}

}  // namespace

std::optional<std::string> IpamService::AuxOfNetworkBeingCreated(const PoolState& state,
                                                                 const AddressCall& call) const {
  if (book_ == nullptr || call.gateway || !call.name.empty() || call.address.empty() ||
      !creating_.contains(call.pool_id)) {
    return std::nullopt;
  }
  const std::optional<IpAddress> asked = IpAddress::Parse(call.address);
  const Lease* lease = asked ? state.allocator.FindLease(*asked) : nullptr;
  if (lease == nullptr || lease->kind != LeaseKind::kAux) return std::nullopt;
  // dockerd asks for a network's aux addresses between RequestPool and CreateNetwork, before any
  // container can ask: this host's network is being created with the subnet's aux address.
  return fmt::format("{}/{}", asked->ToString(), state.record.config.subnet.length());
}

bool IpamService::AgreesAsAUserLocked(const std::string& pool_id, const std::map<std::string, std::string>& aux) const {
  auto users = requested_here_.find(pool_id);
  auto it = pools_.find(pool_id);
  if (users == requested_here_.end() || it == pools_.end() || mirror_.reload_pending()) return false;
  const PoolState& state = it->second;
  if (state.record.aux_set_by.empty() || state.record.aux != aux) return false;
  // Unless one is still leased as this host's --ip (the commit below makes it the subnet's).
  return std::ranges::none_of(aux,
                              [&](const auto& entry) { return LeaseToShareAsAux(state, entry.second) != nullptr; });
}

Status IpamService::AgreeAuxAddresses(const Prefix& subnet, const std::map<std::string, std::string>& aux) {
  if (book_ == nullptr) return OkStatus();
  const uint64_t unavailable_before = mirror_.unavailable_seen();
  const std::string pool_id = PoolIdFor(subnet, std::nullopt);
  // A swarm network's first tasks create it on every host at once: a commit here would be one
  // more etcd round on each host's way to its first task. Not when the mutex stays busy (a
  // reload that waits for etcd): Durably then answers as every call begun before its failure.
  if (mu_.try_lock_for(kCountWait)) {
    std::scoped_lock lock(std::adopt_lock, mu_);
    if (AgreesAsAUserLocked(pool_id, aux)) {
      creating_.erase(pool_id);
      return OkStatus();
    }
  }
  return mirror_.Durably(
      [&]() -> Status {
        auto it = pools_.find(pool_id);
        if (it == pools_.end()) return OkStatus();
        PoolState& state = it->second;
        if (!state.record.aux_set_by.empty() && state.record.aux != aux) {
          return FailedPrecondition(fmt::format(
              "--aux-address: subnet {} is one pool for every host sharing the address book, and its networks give {} "
              "(first set on node {}); this network gives {}: give every host's network the same",
              subnet.ToString(), AuxFlags(state.record.aux), state.record.aux_set_by, AuxFlags(aux)));
        }
        // The first network sets them; the others (unless AgreesAsAUserLocked answered) agree by
        // a commit that compares the pool's key without writing it, so a view older than another
        // host's first network is refused and decided again, and hosts creating their networks at
        // once (a swarm network's first tasks) refuse none of each other's RequestPool commits by
        // rewriting the pool unchanged.
        PoolRecord record = state.record;
        IpamBatch batch;
        if (record.aux_set_by.empty()) {
          record.aux = aux;
          record.aux_set_by = node_;
          batch.put_pools.push_back(record);
        } else {
          batch.reads.pools.push_back(pool_id);
        }
        // The first host's aux addresses were leased like a container's --ip: they become the
        // subnet's, so that the other hosts' networks may ask for them too.
        for (const auto& [name, text] : aux) {
          const Lease* lease = LeaseToShareAsAux(state, text);
          if (lease == nullptr) continue;
          Lease shared = *lease;
          shared.kind = LeaseKind::kAux;
          shared.node.clear();
          batch.put_leases.push_back(LeaseRecord{pool_id, *IpAddress::Parse(text), shared, clock_()});
        }
        mirror_.Enqueue(batch);
        state.record = record;
        for (const LeaseRecord& l : batch.put_leases) state.allocator.AddLease(l.address, l.lease);
        creating_.erase(pool_id);
        return OkStatus();
      },
      unavailable_before);
}

Status IpamService::ReleasePool(const std::string& pool_id) {
  {
    // Whether the pool may be forgotten depends on every host's reservations in it.
    std::scoped_lock lock(mu_);
    mirror_.ReloadForCommandLocked();
  }
  Status released = mirror_.Durably([&]() -> Status {
    creating_.erase(pool_id);
    auto it = pools_.find(pool_id);
    if (it == pools_.end() || it->second.record.users == 0) return OkStatus();
    PoolState& state = it->second;
    PoolRecord record = state.record;
    record.users -= 1;
    IpamBatch batch;
    const bool last_user = record.users == 0;
    if (last_user) {  // the next network on this subnet sets them anew
      record.aux.clear();
      record.aux_set_by.clear();
    }
    const bool forget = last_user && state.allocator.reservations().empty();
    std::vector<std::pair<std::string, IpAddress>> freed;
    if (last_user) {
      for (const auto& [value, lease] : state.allocator.leases()) {
        freed.emplace_back(pool_id, IpAddress(state.record.config.subnet.family(), value));
      }
    }
    // The leases in batches a shared store takes in one transaction each, the pool last.
    for (size_t from = 0; from < freed.size(); from += kLeasesPerCommit) {
      IpamBatch leases;
      leases.delete_leases.assign(
          freed.begin() + static_cast<std::ptrdiff_t>(from),
          freed.begin() + static_cast<std::ptrdiff_t>(std::min(freed.size(), from + kLeasesPerCommit)));
      mirror_.Enqueue(std::move(leases));
    }
    batch.delete_leases = std::move(freed);  // for memory below
    if (forget) {
      batch.delete_pools.push_back(pool_id);
    } else {
      batch.put_pools.push_back(record);
    }
    IpamBatch pool_change;
    pool_change.delete_pools = batch.delete_pools;
    pool_change.put_pools = batch.put_pools;
    mirror_.Enqueue(std::move(pool_change));
    if (forget) {
      pools_.erase(it);
    } else {
      state.record = record;
      if (last_user) {
        for (const auto& [pool, address] : batch.delete_leases) state.allocator.RemoveLease(address);
      }
    }
    spdlog::info("pool released id=\"{}\" users={}", pool_id, record.users);
    return OkStatus();
  });
  // Whatever the outcome: dockerd is done with the pool, and a release whose commit may have
  // applied must not leave this host counted as a user (that only costs a commit).
  ForgetRequestHere(pool_id);
  return released;
}

void IpamService::ForgetRequestHere(const std::string& pool_id) {
  std::scoped_lock lock(mu_);
  if (auto it = requested_here_.find(pool_id); it != requested_here_.end() && --it->second == 0) {
    requested_here_.erase(it);
  }
}

Result<std::string> IpamService::RequestAddress(const AddressCall& call) {
  // A guessed name's reservation decides the address, but its commit compares no key of that
  // reservation: read it as the shared store holds it now. (A sent name's reservation is
  // compared by the commit: a stale view is refused and decided again.)
  const uint64_t unavailable_before = mirror_.unavailable_seen();
  if (call.name.empty()) mirror_.RefreshName(call.pool_id, call.hint_name, unavailable_before);
  if (!call.share_names.empty()) {
    // The group's slots may have been reserved on other hosts since this one last read the book,
    // and their addresses released there (a drain brings another host's tasks here): what is
    // shared out is read as the book holds it. A name's keys are read, never the whole book.
    std::vector<std::string> unread;
    if (book_ != nullptr) {
      std::scoped_lock lock(mirror_.mutex());
      unread = names_.NamesToRead(call.pool_id, call.share_names);
    }
    for (const std::string& name : unread) mirror_.RefreshName(call.pool_id, name, unavailable_before);
  }
  // Noted once the lease is committed: a commit refused and decided again may choose another.
  std::optional<std::pair<IpAddress, std::vector<std::string>>> shared_out;
  Result<std::string> leased = mirror_.Durably(
      [&]() -> Result<std::string> {
        Result<PoolState*> found = ActivePool(pools_, call.pool_id);
        if (!found.ok()) return found.status();
        PoolState& state = **found;
        if (call.unless_released_since && *call.unless_released_since != local_releases_) {
          return Aborted("an address was released on this host meanwhile: asked again next time");
        }
        if (std::optional<std::string> aux = AuxOfNetworkBeingCreated(state, call)) return *aux;
        Result<AddressRequest> request = AllocatorRequest(state.record.config, call, node_);
        if (!request.ok()) return request.status();
        // A task of a start group asking after another took its reserved address: the group's
        // addresses are shared out further.
        if (request->share_names.empty() && !call.hint_name.empty()) {
          request->share_names = names_.StartGroupOf(call.pool_id, call.hint_name);
        }
        if (!call.name.empty()) SMV_RETURN_IF_ERROR(names_.NameRunsNowhereElse(state, call.name));
        Result<Choice> choice = state.allocator.Choose(*request);
        if (!choice.ok()) return choice.status();
        if (call.gateway && book_ != nullptr) SMV_RETURN_IF_ERROR(SameGatewayAsTheFleet(state, choice->address));
        const std::string answer =
            fmt::format("{}/{}", choice->address.ToString(), state.record.config.subnet.length());
        if (choice->already_leased_as_gateway) return answer;
        SMV_RETURN_IF_ERROR(LeaseChoiceLocked(state, call, *choice, request->share_names));
        shared_out.reset();
        if (!choice->shared_from.empty()) shared_out.emplace(choice->address, std::move(request->share_names));
        return answer;
      },
      unavailable_before);
  if (leased.ok() && shared_out) {
    std::scoped_lock lock(mirror_.mutex());
    names_.NoteSharedOut(call.pool_id, shared_out->first, std::move(shared_out->second));
  }
  return leased;
}

Result<AddressRequest> IpamService::AllocatorRequest(const PoolConfig& config, const AddressCall& call,
                                                     const std::string& node) {
  AddressRequest request;
  request.gateway = call.gateway;
  request.name = call.name;
  request.hint_name = call.hint_name;
  request.share_names = call.share_names;
  request.node = node;
  if (call.address.empty()) return request;
  std::optional<IpAddress> ip = IpAddress::Parse(call.address);
  if (!ip || ip->family() != config.subnet.family()) {
    return InvalidArgument(fmt::format("invalid address \"{}\": want an {} address inside {}", call.address,
                                       config.subnet.family() == Family::kV4 ? "IPv4" : "IPv6",
                                       config.subnet.ToString()));
  }
  request.preferred = *ip;
  return request;
}

Status IpamService::LeaseChoiceLocked(PoolState& state, const AddressCall& call, const Choice& choice,
                                      const std::vector<std::string>& group) {
  const int64_t now = clock_();
  Lease lease;
  // An --aux-address request looks exactly like a container's --ip on the wire, so both are
  // endpoint leases; either way the address is held until dockerd releases it.
  lease.kind = call.gateway ? LeaseKind::kGateway : LeaseKind::kEndpoint;
  lease.name = call.name;
  lease.mac = call.mac;
  lease.node = node_;
  std::optional<ReservationRecord> reservation;
  if (choice.reserve_for_name) {
    reservation = ReservationRecord{call.pool_id, call.name, choice.address, call.mac, now, 0};
  } else if (!call.name.empty()) {
    // Re-using the reservation: note that the container is back.
    if (std::optional<ReservationRecord> r = FindReservation(state, call.name); r && r->gone_since != 0) {
      r->gone_since = 0;
      reservation = std::move(r);
    }
  }
  IpamBatch batch;
  batch.put_leases.push_back(LeaseRecord{call.pool_id, choice.address, lease, now});
  if (reservation) batch.put_reservations.push_back(*reservation);
  // A record no load could decode is compared as absent: etcd would refuse this commit every time.
  SMV_RETURN_IF_ERROR(mirror_.EnqueueDecodable(std::move(batch)));
  // A share-out noted for an earlier lease of this address ended with it (its release may not
  // have said so: journaled while the store was down).
  if (choice.shared_from.empty()) names_.ForgetSharedOut(call.pool_id, choice.address);
  state.allocator.AddLease(choice.address, lease, choice.dynamic);
  if (reservation) Remember(state, *reservation);
  if (choice.shared_from.empty()) {
    spdlog::info("address leased pool=\"{}\" address={} kind={}{}", call.pool_id, choice.address.ToString(),
                 LeaseKindName(lease.kind), call.name.empty() ? "" : fmt::format(" name={}", call.name));
    return OkStatus();
  }
  spdlog::info(
      "address leased pool=\"{}\" address={} kind={}: {} tasks of one service start together here and "
      "the engine does not say which asks, so it gets one of their reserved addresses ({}'s); Join swaps "
      "the reservations if it is another of them",
      call.pool_id, choice.address.ToString(), LeaseKindName(lease.kind), group.size(), choice.shared_from);
  return OkStatus();
}

Status IpamService::ReleaseAddress(const std::string& pool_id, const std::string& address) {
  std::optional<IpAddress> ip = IpAddress::Parse(address);
  if (!ip) {
    // dockerd sends the address without a prefix length, but accept one.
    std::optional<Prefix> prefix = Prefix::Parse(address);
    if (!prefix) return InvalidArgument(fmt::format("invalid address \"{}\"", address));
    ip = prefix->address();
  }
  // Every release counts, before anything else: also one of an address memory does not hold
  // (freed behind this host's back) and one journaled while the store does not answer. KeepHeld
  // must not take the address back for a container that just stopped.
  local_releases_.fetch_add(1);
  Status released = mirror_.Durably([&]() -> Status {
    auto it = pools_.find(pool_id);
    if (it == pools_.end()) return OkStatus();
    PoolState& state = it->second;
    const Lease* lease = state.allocator.FindLease(*ip);
    if (lease == nullptr) return OkStatus();
    if ((lease->kind == LeaseKind::kGateway || lease->kind == LeaseKind::kAux) && book_ != nullptr) {
      // Every host's network on this subnet has it: it goes with the pool.
      spdlog::info("{} kept pool=\"{}\" address={}: shared by the hosts' networks on this subnet",
                   LeaseKindName(lease->kind), pool_id, ip->ToString());
      return OkStatus();
    }
    if (book_ != nullptr && lease->node != node_) {
      // Freed behind this host's back and another host's now (`reservations release --node`):
      // this host's container stopping must not free it.
      spdlog::warn("address {} pool=\"{}\" is node {}'s now, not this host's: its release here frees nothing",
                   ip->ToString(), pool_id, lease->node);
      return OkStatus();
    }
    IpamBatch batch;
    batch.delete_leases.emplace_back(pool_id, *ip);
    mirror_.Enqueue(std::move(batch));
    state.allocator.RemoveLease(*ip);
    spdlog::info("address released pool=\"{}\" address={}", pool_id, ip->ToString());
    return OkStatus();
  });
  // Journaled while the shared store takes no write: unreachable, or out of space (NOSPACE).
  const bool store_takes_no_write =
      released.code() == Code::kUnavailable || (released.code() == Code::kResourceExhausted && book_ != nullptr);
  Status done = store_takes_no_write && mirror_.journals() ? mirror_.JournalRelease(pool_id, *ip, released) : released;
  {
    std::scoped_lock lock(mirror_.mutex());
    names_.ForgetSharedOut(pool_id, *ip);  // unless the address was leased again, awaiting its Join
  }
  return done;
}

}  // namespace smv::ipam

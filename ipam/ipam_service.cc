#include "ipam/ipam_service.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <random>
#include <set>
#include <thread>

namespace smv::ipam {
namespace {

int64_t SystemNow() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

const Status& StatusOf(const Status& s) { return s; }
template <typename T>
Status StatusOf(const Result<T>& r) {
  return r.status();
}

// Answers that depend on what others hold, as opposed to what the request says.
bool IsRefusal(const Status& s) {
  return s.code() == Code::kFailedPrecondition || s.code() == Code::kAlreadyExists ||
         s.code() == Code::kResourceExhausted;
}

// What a change that could not read or write the store answers.
Status RefusingToAllocate(const Status& failed) {
  constexpr std::string_view kWhy = "; refusing to allocate to avoid duplicate addresses";
  if (failed.ok() || failed.message().find(kWhy) != std::string::npos) return failed;
  return Status(failed.code(), failed.message() + std::string(kWhy));
}

std::chrono::microseconds ConflictBackoff(int attempt) {
  thread_local std::minstd_rand random(std::random_device{}());
  const int64_t ceiling_us = int64_t{500} << std::min(attempt, 6);  // 1 ms .. 32 ms
  return std::chrono::microseconds(std::uniform_int_distribution<int64_t>(0, ceiling_us)(random));
}

}  // namespace

Result<std::unique_ptr<IpamService>> IpamService::Create(IpamStore& store, Clock clock, ReleaseJournal* journal) {
  std::unique_ptr<IpamService> service(new IpamService(store, clock ? clock : SystemNow, journal));
  std::scoped_lock lock(service->mu_);
  Status loaded = service->LoadLocked();
  if (loaded.ok()) loaded = service->ReplayJournalLocked();
  if (loaded.ok()) return service;
  // A host restarted while etcd is down must still come up: its running containers need no
  // address book, and Docker needs the plugin to answer. Changes fail closed until etcd answers.
  if (!store.shared() || loaded.code() != Code::kUnavailable) return loaded;
  spdlog::warn(
      "starting without the shared address store, which does not answer; addresses are refused until it "
      "does: {}",
      loaded.message());
  service->reload_pending_ = true;
  return service;
}

template <typename Change>
auto IpamService::Durably(Change change, std::optional<uint64_t> seen) -> decltype(change()) {
  const uint64_t unavailable_before = seen ? *seen : unavailable_.seen();
  bool reloaded = false;  // this call has decided on a view read from the store for it
  for (int attempt = 1;;) {
    uint64_t ticket = 0;
    uint64_t drain = 0;
    bool stale_refusal = false;
    auto result = [&]() -> decltype(change()) {
      std::unique_lock lock(mu_, std::defer_lock);
      if (Status since = unavailable_.Acquire(lock, unavailable_before); !since.ok()) return RefusingToAllocate(since);
      reloaded = reloaded || reload_pending_;
      // A reload reads the store and may write to it (the journal): not while a commit decided
      // before is still queued or in flight. None queues meanwhile: every change reloads first.
      if (reload_pending_ && (drain = commits_.last_pending_ticket()) != 0)
        return Aborted("a reload waits for earlier commits");  // not returned: drained, then again
      if (Status loaded = ReloadIfNeededLocked(); !loaded.ok()) return loaded;
      auto changed = change();
      ticket = commits_.last_pending_ticket();
      // In a shared book another node may have freed what this view holds as taken: a refusal
      // stands only when decided on a view read for this call.
      if (store_.shared() && !reloaded && IsRefusal(StatusOf(changed))) {
        reload_pending_ = true;
        stale_refusal = true;
      }
      return changed;
    }();
    if (drain != 0) {
      static_cast<void>(commits_.WaitDurable(drain));  // its outcome is its callers'; this call decides anew
      continue;
    }
    if (stale_refusal) continue;
    Status durable = commits_.WaitDurable(ticket);
    if (durable.ok()) return result;
    // A shared store refused a commit decided on a stale view; the view is fresh now.
    if (durable.code() == Code::kUnavailable) return RefusingToAllocate(durable);
    if (durable.code() != Code::kAborted) return durable;
    reloaded = true;  // the failure handler read the store again
    if (attempt == kAttemptsOnConflict) {
      return Aborted(fmt::format("the shared address book kept changing under this node ({} tries): {}", attempt,
                                 durable.message()));
    }
    // Nodes that collided would collide again at once: each waits a random, growing while.
    std::this_thread::sleep_for(ConflictBackoff(attempt));
    ++attempt;
  }
}

Status IpamService::ReloadIfNeededLocked() {
  if (!reload_pending_) return OkStatus();
  Status loaded = LoadLocked();
  if (loaded.ok()) loaded = ReplayJournalLocked();
  reload_pending_ = !loaded.ok();
  unavailable_.Note(loaded);
  return RefusingToAllocate(loaded);
}

void IpamService::ReloadAfterFailedCommit(const Status& error, std::span<const IpamBatch> sent) {
  unavailable_.Note(error);  // before the mutex: callers waiting for it are answered now
  std::scoped_lock lock(mu_);
  commits_.FailQueuedLocked(error);
  if (error.code() == Code::kUnavailable) JournalLeasesOfUnknownCommitLocked(sent);
  if (error.code() == Code::kAborted) {
    spdlog::info("the shared address store refused a commit; reloading and deciding again: {}", error.message());
  } else {
    spdlog::error("saving address state failed; reloading it from the store: {}", error.message());
  }
  reload_pending_ = true;
  // A store that did not answer is asked again by the next change, not now: the callers waiting
  // for this commit get its error without waiting for a second timeout.
  if (error.code() == Code::kUnavailable) return;
  if (Status loaded = ReloadIfNeededLocked(); !loaded.ok()) {
    spdlog::error("reloading address state failed: {}", loaded.message());
  }
}

void IpamService::JournalLeasesOfUnknownCommitLocked(std::span<const IpamBatch> sent) {
  if (journal_ == nullptr || !store_.shared()) return;
  for (const IpamBatch& batch : sent) {
    for (const LeaseRecord& l : batch.put_leases) {
      // Gateway and aux leases are the subnet's, which other hosts' networks may rely on by now.
      if (l.lease.kind != LeaseKind::kEndpoint) continue;
      if (Status journaled = journal_->Append({l.pool_id, l.address, store_.node()}); !journaled.ok()) {
        spdlog::error("address {} of a commit with an unknown outcome could not be journaled: {}", l.address.ToString(),
                      journaled.message());
        continue;
      }
      spdlog::warn(
          "address {} pool=\"{}\" was refused with its outcome unknown: journaled as released, so it is freed "
          "if etcd applied it after all",
          l.address.ToString(), l.pool_id);
    }
  }
}

std::optional<ReservationRecord> IpamService::FindReservation(const PoolState& state, std::string_view name) {
  std::optional<ReservedName> r = state.allocator.reservations().Find(name);
  if (!r) return std::nullopt;
  return ReservationRecord{state.record.config.id,
                           std::string(r->name),
                           IpAddress(state.record.config.subnet.family(), r->address),
                           r->mac,
                           r->since,
                           r->gone_since};
}

std::vector<ReservationRecord> IpamService::AllReservations(const std::string& pool_id, const PoolState& state) {
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

void IpamService::Remember(PoolState& state, const ReservationRecord& r) {
  state.allocator.AddReservation(r.name, r.address, r.mac, r.since, r.gone_since);
}

PoolAllocator IpamService::NewAllocator(const PoolRecord& record) const {
  PoolConfig local = record.config;
  if (auto it = record.node_ranges.find(store_.node()); it != record.node_ranges.end()) {
    local.range = Prefix::Parse(it->second);  // checked when the record was decoded or made
  }
  PoolAllocator allocator(std::move(local));
  if (store_.shared()) {
    thread_local std::mt19937_64 random(std::random_device{}());
    allocator.MoveCursor(random());
  }
  return allocator;
}

void IpamService::RebuildAllocator(PoolState& state) const {
  PoolAllocator rebuilt = NewAllocator(state.record);
  const Family family = state.record.config.subnet.family();
  for (const auto& [value, lease] : state.allocator.leases()) rebuilt.AddLease(IpAddress(family, value), lease);
  state.allocator.reservations().ForEach([&](const ReservedName& r) {
    rebuilt.AddReservation(r.name, IpAddress(family, r.address), r.mac, r.since, r.gone_since);
  });
  state.allocator = std::move(rebuilt);
}

Status IpamService::LoadLocked() {
  // Records go straight into the allocators: a large state is never held twice by the load
  // itself (a reload holds the old memory until the new one is complete).
  struct Sink : IpamLoadSink {
    explicit Sink(const IpamService& owner) : service(owner) {}
    void OnPool(PoolRecord pool) override {
      const std::string id = pool.config.id;
      PoolAllocator allocator = service.NewAllocator(pool);
      loaded.emplace(id, PoolState{std::move(pool), std::move(allocator)});
      ++pools;
    }
    void OnLease(LeaseRecord lease) override {
      auto it = loaded.find(lease.pool_id);
      if (it == loaded.end()) return;  // cannot happen: leases go with their pool in one batch
      it->second.allocator.AddLease(lease.address, lease.lease);
      ++leases;
    }
    void OnReservation(ReservationRecord r) override {
      auto it = loaded.find(r.pool_id);
      // A shared book's pool deleted by a host that had not seen this reservation yet: the pool
      // is kept as removed (as ReleasePool keeps one with reservations), never the name lost.
      if (it == loaded.end() && service.rules_->shared()) it = KeepRemovedPool(r.pool_id);
      if (it == loaded.end()) return;
      Remember(it->second, r);
      ++reservations;
    }
    std::map<std::string, PoolState>::iterator KeepRemovedPool(const std::string& pool_id) {
      const std::optional<Prefix> subnet = Prefix::Parse(pool_id);  // a shared pool's id is its subnet
      if (!subnet || subnet->HasHostBits()) return loaded.end();
      PoolRecord record{.config = {.id = pool_id, .subnet = *subnet}, .users = 0};
      PoolAllocator allocator = service.NewAllocator(record);
      return loaded.emplace(pool_id, PoolState{std::move(record), std::move(allocator)}).first;
    }
    const IpamService& service;
    std::map<std::string, PoolState> loaded;
    size_t pools = 0, leases = 0, reservations = 0;
  } sink(*this);
  SMV_RETURN_IF_ERROR(store_.LoadInto(sink).Annotate("load address state"));
  pools_ = std::move(sink.loaded);
  for (auto& [id, state] : pools_) state.allocator.ShrinkToFit();
  spdlog::info("address state loaded pools={} leases={} reservations={}", sink.pools, sink.leases, sink.reservations);
  return OkStatus();
}

Status IpamService::ReplayJournalLocked() {
  if (journal_ == nullptr) return OkStatus();
  Result<std::vector<JournaledRelease>> journaled = journal_->List();
  if (!journaled.ok()) return journaled.status().Annotate("read the release journal");
  if (journaled->empty()) return OkStatus();
  // In commits etcd takes (--max-txn-ops), each chunk's entries removed once it is written.
  const size_t chunk = std::max<size_t>(1, std::min(kLeasesPerCommit, store_.max_writes_per_commit()));
  size_t freed = 0;
  for (size_t from = 0; from < journaled->size(); from += chunk) {
    const std::span<const JournaledRelease> entries =
        std::span<const JournaledRelease>(*journaled).subspan(from, std::min(chunk, journaled->size() - from));
    IpamBatch batch;
    for (const JournaledRelease& r : entries) {
      auto it = pools_.find(r.pool_id);
      if (it == pools_.end()) continue;
      // Only while the releasing node still holds that very lease: a replay after the address was
      // freed (a replay that ran before, `reservations release --node`) and taken again frees nothing.
      const Lease* lease = it->second.allocator.FindLease(r.address);
      if (lease == nullptr || lease->node != r.node) continue;
      if (r.revision != 0 && store_.LeaseRevision(r.pool_id, r.address) != r.revision) continue;  // a later lease
      batch.delete_leases.emplace_back(r.pool_id, r.address);
    }
    if (!batch.empty()) {
      SMV_RETURN_IF_ERROR(store_.Apply(batch).Annotate("replay journaled releases"));
      for (const auto& [pool_id, address] : batch.delete_leases) pools_.at(pool_id).allocator.RemoveLease(address);
    }
    // A crash before this line replays again after restart: the checks above make that harmless.
    SMV_RETURN_IF_ERROR(journal_->Remove(entries).Annotate("clear the release journal"));
    freed += batch.delete_leases.size();
  }
  spdlog::info("replayed {} journaled release(s): {} address(es) freed", journaled->size(), freed);
  return OkStatus();
}

Status IpamService::JournalRelease(const std::string& pool_id, const IpAddress& address, const Status& store_error) {
  // Journaled even when memory shows no lease: memory may be older than the store (a start
  // without it) or already changed by the failed commit. Replaying what is not held does nothing.
  std::scoped_lock lock(mu_);
  // The lease this node released, by its revision: a replay must free it and no later one.
  const JournaledRelease release{pool_id, address, store_.node(), store_.LeaseRevision(pool_id, address)};
  if (Status journaled = journal_->Append(release); !journaled.ok()) {
    return Status(store_error.code(),
                  fmt::format("{}; journaling the release failed too: {}", store_error.message(), journaled.message()));
  }
  if (auto it = pools_.find(pool_id); it != pools_.end()) it->second.allocator.RemoveLease(address);
  // Memory no longer is the store's state: the next change reloads and replays this first, so
  // this node cannot take the address again before the release reached the store.
  reload_pending_ = true;
  spdlog::warn(
      "address release journaled pool=\"{}\" address={}: it is freed in the shared store once that answers "
      "({})",
      pool_id, address.ToString(), store_error.message());
  return OkStatus();
}

void IpamService::Enqueue(IpamBatch& batch) {
  CompleteReads(batch);
  commits_.Enqueue(batch);
}

void IpamService::CompleteReads(IpamBatch& batch) {
  const BookView view{
      .reservation = [this](const std::string& pool_id, const std::string& name) -> std::optional<ReservationRecord> {
        auto it = pools_.find(pool_id);
        return it == pools_.end() ? std::nullopt : FindReservation(it->second, name);
      },
      .pool = [this](const std::string& pool_id) -> std::optional<PoolRecord> {
        auto it = pools_.find(pool_id);
        return it == pools_.end() ? std::nullopt : std::optional<PoolRecord>(it->second.record);
      }};
  rules_->Complete(batch, view);
}

void IpamService::ReloadForCommandLocked() {
  if (rules_->CommandsReloadFirst()) reload_pending_ = true;
}

Status IpamService::CatchUp() {
  if (rules_->shared()) {
    // Released by another host while this one was cut off (its commit key was moved): reload,
    // so that what it believes it holds is what the book says.
    Result<bool> moved = store_.CommitKeyMoved();
    if (moved.ok() && *moved) {
      std::scoped_lock lock(mu_);
      reload_pending_ = true;
    }
  }
  return Durably([] { return OkStatus(); });
}

Result<HeldOutcome> IpamService::KeepHeld(const std::string& pool_id, const IpAddress& address, const std::string& name,
                                          const std::string& mac) {
  if (!rules_->shared()) return HeldOutcome{};
  {
    std::scoped_lock lock(mu_);
    auto it = pools_.find(pool_id);
    if (it == pools_.end()) return HeldOutcome{};  // not this book's to judge
    const Lease* lease = it->second.allocator.FindLease(address);
    if (lease != nullptr && lease->node == store_.node()) return HeldOutcome{};
    if (lease != nullptr) {
      return HeldOutcome{.kind = HeldOutcome::Kind::kGivenAway,
                         .holder = fmt::format("node {}{}", lease->node,
                                               lease->name.empty() ? "" : " (container \"" + lease->name + "\")")};
    }
  }
  Result<std::string> again = RequestAddress({pool_id, address.ToString(), false, name, "", mac});
  if (again.ok()) return HeldOutcome{.kind = HeldOutcome::Kind::kRetaken, .holder = ""};
  if (IsRefusal(again.status())) {
    return HeldOutcome{.kind = HeldOutcome::Kind::kGivenAway, .holder = again.status().message()};
  }
  return again.status();
}

Status IpamService::NameRunsNowhereElse(const PoolState& state, std::string_view name) const {
  if (!rules_->shared()) return OkStatus();
  const Family family = state.record.config.subnet.family();
  for (const auto& [value, lease] : state.allocator.leases()) {
    if (lease.name == name && lease.node != store_.node()) {
      return NameRunningOnAnotherNode(name, lease.node, IpAddress(family, value));
    }
  }
  return OkStatus();
}

Status IpamService::NameRunsNowhere(const PoolState& state, std::string_view name) {
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
  if (ScopeOf(request).value() == PoolScope::kShared && !store_.shared()) {
    return FailedPrecondition(
        fmt::format("--ipam-opt {}=shared: this daemon keeps its address book in lmdb, on this host only; start "
                    "it with --store etcd://HOST:PORT[,...] to share pools between hosts, or drop the option",
                    kOptScope));
  }  // In a shared book a subnet is one pool for every host (one key per address and per name), and
  // a host's --ip-range is only where its dynamic addresses come from.
  std::optional<Prefix> node_range;
  if (store_.shared()) {
    node_range = config->range;
    config->range.reset();
    config->id = PoolIdFor(config->subnet, std::nullopt);
  }
  return Durably([&]() -> Result<PoolResult> {
    auto it = pools_.find(config->id);
    PoolRecord record{.config = *config, .users = 1, .node_ranges = {}, .aux = {}, .aux_set_by = ""};
    if (it != pools_.end()) {
      const PoolRecord& existing = it->second.record;
      if (existing.users > 0 && existing.config.options != config->options) {
        return FailedPrecondition(
            fmt::format("subnet {} is already in use by another network{} with different --ipam-opt values; "
                        "use the same options or another subnet",
                        config->id, store_.shared() ? " (on this or another host)" : ""));
      }
      record.users = existing.users + 1;
      record.node_ranges = existing.node_ranges;
      record.aux = existing.aux;
      record.aux_set_by = existing.aux_set_by;
    }
    if (node_range) {
      record.node_ranges[store_.node()] = node_range->ToString();
    } else if (store_.shared()) {
      record.node_ranges.erase(store_.node());
    }
    IpamBatch batch;
    batch.put_pools.push_back(record);
    Enqueue(batch);
    if (store_.shared()) creating_.insert(config->id);  // until CreateNetwork: see AuxOfNetworkBeingCreated
    if (it == pools_.end()) {
      pools_.emplace(config->id, PoolState{record, NewAllocator(record)});
    } else {
      const bool range_changed = it->second.record.node_ranges != record.node_ranges;
      it->second.record = record;
      if (range_changed) RebuildAllocator(it->second);
    }
    spdlog::info("pool requested id=\"{}\" users={}", config->id, record.users);
    return PoolResult{config->id, config->subnet.ToString()};
  });
}

namespace {

std::string AuxFlags(const std::map<std::string, std::string>& aux) {
  if (aux.empty()) return "no --aux-address";
  std::string out;
  for (const auto& [name, address] : aux)
    out += fmt::format("{}--aux-address {}={}", out.empty() ? "" : " ", name, address);
  return out;
}

}  // namespace

std::optional<std::string> IpamService::AuxOfNetworkBeingCreated(const PoolState& state,
                                                                 const AddressCall& call) const {
  if (!store_.shared() || call.gateway || !call.name.empty() || call.address.empty() ||
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

Status IpamService::AgreeAuxAddresses(const Prefix& subnet, const std::map<std::string, std::string>& aux) {
  if (!store_.shared()) return OkStatus();
  const std::string pool_id = PoolIdFor(subnet, std::nullopt);
  return Durably([&]() -> Status {
    auto it = pools_.find(pool_id);
    if (it == pools_.end()) return OkStatus();
    PoolState& state = it->second;
    if (!state.record.aux_set_by.empty() && state.record.aux != aux) {
      return FailedPrecondition(fmt::format(
          "--aux-address: subnet {} is one pool for every host sharing the address book, and its networks give {} "
          "(first set on node {}); this network gives {}: give every host's network the same",
          subnet.ToString(), AuxFlags(state.record.aux), state.record.aux_set_by, AuxFlags(aux)));
    }
    // Written even when it agrees: the commit compares the pool's key, so a view older than
    // another host's first network is refused and decided again.
    PoolRecord record = state.record;
    record.aux = aux;
    if (record.aux_set_by.empty()) record.aux_set_by = store_.node();
    IpamBatch batch;
    batch.put_pools.push_back(record);
    // The first host's aux addresses were leased like a container's --ip: they become the
    // subnet's, so that the other hosts' networks may ask for them too.
    for (const auto& [name, text] : aux) {
      const std::optional<IpAddress> address = IpAddress::Parse(text);
      const Lease* lease = address ? state.allocator.FindLease(*address) : nullptr;
      if (lease == nullptr || lease->kind != LeaseKind::kEndpoint || !lease->name.empty()) continue;
      Lease shared = *lease;
      shared.kind = LeaseKind::kAux;
      shared.node.clear();
      batch.put_leases.push_back(LeaseRecord{pool_id, *address, shared, clock_()});
    }
    Enqueue(batch);
    state.record = record;
    for (const LeaseRecord& l : batch.put_leases) state.allocator.AddLease(l.address, l.lease);
    creating_.erase(pool_id);
    return OkStatus();
  });
}

Status IpamService::ReleasePool(const std::string& pool_id) {
  {
    // Whether the pool may be forgotten depends on every host's reservations in it.
    std::scoped_lock lock(mu_);
    ReloadForCommandLocked();
  }
  return Durably([&]() -> Status {
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
      Enqueue(leases);
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
    Enqueue(pool_change);
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
}

Result<IpamService::PoolState*> IpamService::ActivePool(const std::string& pool_id) {
  auto it = pools_.find(pool_id);
  if (it == pools_.end() || it->second.record.users == 0) {
    return NotFound(
        fmt::format("unknown pool \"{}\": the network's address pool is not known to static-macvlan (was the "
                    "network created while the plugin used another --state-dir?)",
                    pool_id));
  }
  return &it->second;
}

Result<std::string> IpamService::RequestAddress(const AddressCall& call) {
  // A guessed name's reservation decides the address, but its commit compares no key of that
  // reservation: read it as the shared store holds it now. (A sent name's reservation is
  // compared by the commit: a stale view is refused and decided again.)
  const uint64_t unavailable_before = unavailable_.seen();
  if (call.name.empty()) RefreshName(call.pool_id, call.hint_name, unavailable_before);
  return Durably(
      [&]() -> Result<std::string> {
        Result<PoolState*> found = ActivePool(call.pool_id);
        if (!found.ok()) return found.status();
        PoolState& state = **found;
        const PoolConfig& config = state.record.config;

        if (std::optional<std::string> aux = AuxOfNetworkBeingCreated(state, call)) return *aux;

        AddressRequest request;
        request.gateway = call.gateway;
        request.name = call.name;
        request.hint_name = call.hint_name;
        request.node = store_.node();
        if (!call.address.empty()) {
          std::optional<IpAddress> ip = IpAddress::Parse(call.address);
          if (!ip || ip->family() != config.subnet.family()) {
            return InvalidArgument(fmt::format("invalid address \"{}\": want an {} address inside {}", call.address,
                                               config.subnet.family() == Family::kV4 ? "IPv4" : "IPv6",
                                               config.subnet.ToString()));
          }
          request.preferred = *ip;
        }
        if (!call.name.empty()) SMV_RETURN_IF_ERROR(NameRunsNowhereElse(state, call.name));
        Result<Choice> choice = state.allocator.Choose(request);
        if (!choice.ok()) return choice.status();
        if (call.gateway && store_.shared()) SMV_RETURN_IF_ERROR(SameGatewayAsTheFleet(state, choice->address));
        const std::string answer = fmt::format("{}/{}", choice->address.ToString(), config.subnet.length());
        if (choice->already_leased_as_gateway) return answer;

        const int64_t now = clock_();
        Lease lease;
        // An --aux-address request looks exactly like a container's --ip on the wire, so both are
        // endpoint leases; either way the address is held until dockerd releases it.
        lease.kind = call.gateway ? LeaseKind::kGateway : LeaseKind::kEndpoint;
        lease.name = call.name;
        lease.mac = call.mac;
        lease.node = store_.node();
        IpamBatch batch;
        batch.put_leases.push_back(LeaseRecord{call.pool_id, choice->address, lease, now});
        if (choice->reserve_for_name) {
          batch.put_reservations.push_back(
              ReservationRecord{call.pool_id, call.name, choice->address, call.mac, now, 0});
        } else if (!call.name.empty()) {
          // Re-using the reservation: note that the container is back.
          if (std::optional<ReservationRecord> r = FindReservation(state, call.name); r && r->gone_since != 0) {
            r->gone_since = 0;
            batch.put_reservations.push_back(*r);
          }
        }
        // A record no load could decode is compared as absent: etcd would refuse this commit every time.
        CompleteReads(batch);
        SMV_RETURN_IF_ERROR(store_.CheckDecodable(batch));
        commits_.Enqueue(batch);
        state.allocator.AddLease(choice->address, lease, choice->dynamic);
        for (const ReservationRecord& r : batch.put_reservations) Remember(state, r);
        spdlog::info("address leased pool=\"{}\" address={} kind={}{}", call.pool_id, choice->address.ToString(),
                     LeaseKindName(lease.kind), call.name.empty() ? "" : fmt::format(" name={}", call.name));
        return answer;
      },
      unavailable_before);
}

Status IpamService::ReleaseAddress(const std::string& pool_id, const std::string& address) {
  std::optional<IpAddress> ip = IpAddress::Parse(address);
  if (!ip) {
    // dockerd sends the address without a prefix length, but accept one.
    std::optional<Prefix> prefix = Prefix::Parse(address);
    if (!prefix) return InvalidArgument(fmt::format("invalid address \"{}\"", address));
    ip = prefix->address();
  }
  Status released = Durably([&]() -> Status {
    auto it = pools_.find(pool_id);
    if (it == pools_.end()) return OkStatus();
    PoolState& state = it->second;
    const Lease* lease = state.allocator.FindLease(*ip);
    if (lease == nullptr) return OkStatus();
    if ((lease->kind == LeaseKind::kGateway || lease->kind == LeaseKind::kAux) && store_.shared()) {
      // Every host's network on this subnet has it: it goes with the pool.
      spdlog::info("{} kept pool=\"{}\" address={}: shared by the hosts' networks on this subnet",
                   LeaseKindName(lease->kind), pool_id, ip->ToString());
      return OkStatus();
    }
    if (rules_->shared() && lease->node != store_.node()) {
      // Freed behind this host's back and another host's now (`reservations release --node`):
      // this host's container stopping must not free it.
      spdlog::warn("address {} pool=\"{}\" is node {}'s now, not this host's: its release here frees nothing",
                   ip->ToString(), pool_id, lease->node);
      return OkStatus();
    }
    IpamBatch batch;
    batch.delete_leases.emplace_back(pool_id, *ip);
    Enqueue(batch);
    state.allocator.RemoveLease(*ip);
    spdlog::info("address released pool=\"{}\" address={}", pool_id, ip->ToString());
    return OkStatus();
  });
  // Journaled while the shared store takes no write: unreachable, or out of space (NOSPACE).
  const bool store_takes_no_write =
      released.code() == Code::kUnavailable || (released.code() == Code::kResourceExhausted && rules_->shared());
  if (!store_takes_no_write || journal_ == nullptr) return released;
  return JournalRelease(pool_id, *ip, released);
}

Result<AttachOutcome> IpamService::AttachName(const std::string& pool_id, const IpAddress& address,
                                              const std::string& name, const std::string& mac) {
  return Durably([&]() -> Result<AttachOutcome> {
    Result<PoolState*> found = ActivePool(pool_id);
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
    if (owner && *owner != name) {
      return FailedPrecondition(
          fmt::format("address {} is reserved for container \"{}\", not \"{}\"; release it with: static-macvlan "
                      "reservations release {}",
                      address.ToString(), *owner, name, *owner));
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
    if (!batch.empty()) Enqueue(batch);
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
}

void IpamService::RefreshName(const std::string& pool_id, const std::string& name, uint64_t seen) {
  if (!store_.shared() || name.empty()) return;
  uint64_t commits_before = 0;
  {
    std::unique_lock lock(mu_, std::defer_lock);
    if (!unavailable_.Acquire(lock, seen).ok() || commits_.last_pending_ticket() != 0) return;
    commits_before = commits_.commits();
  }
  Result<NameRecords> fresh = store_.ReadName(pool_id, name);
  // The store notes what it read as seen, so a read memory does not take in (failed half way,
  // or older than a commit of this node since) leaves memory behind the store's revisions: the
  // next change reloads instead of deciding on it.
  if (!fresh.ok()) {
    spdlog::debug("reading name {} of pool \"{}\" from the shared store: {}", name, pool_id, fresh.status().message());
    unavailable_.Note(fresh.status());  // without the mutex: the change that follows refuses at once
    reload_pending_ = true;
    return;
  }
  std::scoped_lock lock(mu_);
  if (commits_.last_pending_ticket() != 0 || commits_.commits() != commits_before || reload_pending_) {
    reload_pending_ = true;
    return;
  }
  auto it = pools_.find(pool_id);
  if (it == pools_.end()) {
    reload_pending_ = true;
    return;
  }
  PoolState& state = it->second;
  if (!fresh->reservation) {
    state.allocator.RemoveReservation(name);
    return;
  }
  Remember(state, *fresh->reservation);
  if (fresh->lease) {
    state.allocator.AddLease(fresh->lease->address, fresh->lease->lease);
  } else {
    state.allocator.RemoveLease(fresh->reservation->address);
  }
}

bool IpamService::HasReservation(const std::string& pool_id, const std::string& name) {
  RefreshName(pool_id, name, unavailable_.seen());
  std::scoped_lock lock(mu_);
  auto it = pools_.find(pool_id);
  return it != pools_.end() && it->second.allocator.ReservationOf(name).has_value();
}

std::string IpamService::NameForMac(const std::string& pool_id, const std::string& mac) const {
  const std::optional<MacAddress> wanted = MacAddress::Parse(mac);
  if (!wanted) return "";
  std::scoped_lock lock(mu_);
  auto it = pools_.find(pool_id);
  if (it == pools_.end()) return "";
  return std::string(it->second.allocator.reservations().FirstNameWithMac(*wanted));
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
  if (!store_.shared()) return !PoolsOnSubnet(subnet).empty();
  // Other hosts create pools this host has not loaded: ask the store.
  Result<std::optional<PoolRecord>> pool = store_.ReadPool(PoolIdFor(subnet, std::nullopt));
  if (!pool.ok()) return pool.status();
  return pool->has_value() && (*pool)->users > 0;
}

Status IpamService::Reserve(const std::string& pool_id, const std::string& name, const IpAddress& address) {
  {
    std::scoped_lock lock(mu_);
    ReloadForCommandLocked();
  }
  return Durably([&]() -> Status {
    Result<PoolState*> found = ActivePool(pool_id);
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
                      address.ToString(), *owner, *owner));
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
    Enqueue(batch);
    Remember(state, batch.put_reservations.front());
    spdlog::info("address reserved by a user pool=\"{}\" address={} name={}", pool_id, address.ToString(), name);
    return OkStatus();
  });
}

Result<int> IpamService::Release(const std::string& name_or_address) {
  {
    std::scoped_lock lock(mu_);
    ReloadForCommandLocked();
  }
  return Durably([&]() -> Result<int> {
    const std::optional<IpAddress> ip = IpAddress::Parse(name_or_address);
    IpamBatch batch;
    for (const auto& [id, state] : pools_) {
      for (const ReservationRecord& record : AllReservations(id, state)) {
        if (record.name == name_or_address || (ip && record.address == *ip)) {
          // In a shared book a running name's reservation is what keeps it off other hosts.
          if (rules_->shared()) SMV_RETURN_IF_ERROR(NameRunsNowhere(state, record.name));
          batch.delete_reservations.emplace_back(id, record.name);
        }
      }
    }
    if (batch.empty()) return 0;
    Enqueue(batch);
    for (const auto& [pool_id, name] : batch.delete_reservations) {
      PoolState& state = pools_.at(pool_id);
      state.allocator.RemoveReservation(name);
      spdlog::info("reservation released pool=\"{}\" name={}", pool_id, name);
    }
    return static_cast<int>(batch.delete_reservations.size());
  });
}

Result<int> IpamService::ReleaseNode(const std::string& node) {
  if (!store_.shared()) {
    return FailedPrecondition(fmt::format(
        "--node {}: this daemon's address book is not shared by hosts (serve --store lmdb); there is no other node",
        node));
  }
  if (node.empty() || node.find('/') != std::string::npos) {
    return InvalidArgument(fmt::format("--node \"{}\": want a node name as `reservations ls` shows it", node));
  }
  if (node == store_.node()) {
    return FailedPrecondition(
        fmt::format("--node {} is this host: its addresses are freed when its containers are removed (docker rm); "
                    "run the command on another host of the fleet",
                    node));
  }
  // First make every commit that node decided on its view fail: it reloads before it decides
  // again, and learns from its commit key that it was released.
  if (Status fenced = store_.FenceNode(node); !fenced.ok()) {
    return Status(fenced.code(), fmt::format("--node {}: {}", node, fenced.message()));
  }
  {
    std::scoped_lock lock(mu_);
    ReloadForCommandLocked();  // decide on the book as it is now, not on this host's last view of it
  }
  int freed = 0;
  for (;;) {
    Result<int> chunk = Durably([&]() -> Result<int> {
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
      Enqueue(batch);
      for (const auto& [pool_id, address] : batch.delete_leases) pools_.at(pool_id).allocator.RemoveLease(address);
      return static_cast<int>(batch.delete_leases.size());
    });
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

Result<std::vector<std::string>> IpamService::ApplyPresence(const std::vector<std::string>& present) {
  // This host's engine cannot tell a name running on another host from a gone one: nothing ages
  // out of a shared book.
  if (store_.shared()) return std::vector<std::string>{};
  return Durably([&]() -> Result<std::vector<std::string>> {
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
    Enqueue(batch);
    for (const ReservationRecord& r : batch.put_reservations) Remember(pools_.at(r.pool_id), r);
    for (const auto& [pool_id, name] : batch.delete_reservations) {
      PoolState& state = pools_.at(pool_id);
      state.allocator.RemoveReservation(name);
      spdlog::info("reservation expired pool=\"{}\" name={}", pool_id, name);
    }
    return released;
  });
}

std::vector<ReservationView> IpamService::ListReservations() const {
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

// The service's memory of its store and how a change becomes durable: Durably (decide under the
// mutex, queue, wait for the commit, decide again after a refused one), reloads, the release
// journal, and the failure handling of commits (store_mirror.h). The verbs are IpamService's.
#include "ipam/store_mirror.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <random>
#include <thread>

namespace smv::ipam {
namespace {

std::chrono::microseconds ConflictBackoff(int attempt) {
  thread_local std::minstd_rand random(std::random_device{}());
  const int64_t ceiling_us = int64_t{500} << std::min(attempt, 6);  // 1 ms .. 32 ms
  return std::chrono::microseconds(std::uniform_int_distribution<int64_t>(0, ceiling_us)(random));
}

}  // namespace

bool IsRefusal(const Status& s) {
  return s.code() == Code::kFailedPrecondition || s.code() == Code::kAlreadyExists ||
         s.code() == Code::kResourceExhausted;
}

StoreMirror::StoreMirror(IpamStore& store, ReleaseJournal* journal)
    : store_(store),
      book_(store.as_shared_book()),
      node_(book_ != nullptr ? book_->node() : ""),
      rules_(BookRules::For(book_ != nullptr)),
      journal_(journal),
      commits_(
          store, [this](const Status& error, std::span<const IpamBatch> sent) { ReloadAfterFailedCommit(error, sent); },
          book_ != nullptr ? "etcd" : "lmdb") {}

Status StoreMirror::Start() {
  std::scoped_lock lock(mu_);
  Status loaded = LoadLocked();
  if (loaded.ok()) loaded = ReplayJournalLocked();
  if (loaded.ok()) return loaded;
  // A host restarted while etcd is down must still come up: its running containers need no
  // address book, and Docker needs the plugin to answer. Changes fail closed until etcd answers.
  if (book_ == nullptr || loaded.code() != Code::kUnavailable) return loaded;
  spdlog::warn(
      "starting without the shared address store, which does not answer; addresses are refused until it "
      "does: {}",
      loaded.message());
  reload_pending_ = true;
  return OkStatus();
}

Status StoreMirror::RunDurably(const std::function<Status()>& change, std::optional<uint64_t> seen) {
  const uint64_t unavailable_before = seen ? *seen : unavailable_.seen();
  bool reloaded = false;  // this call has decided on a view read from the store for it
  for (int attempt = 1;;) {
    uint64_t ticket = 0;
    uint64_t drain = 0;
    bool stale_refusal = false;
    // Not OK: answered without running `change` (the store did not answer, or a reload waits).
    const Status before_change = [&]() -> Status {
      std::unique_lock lock(mu_, std::defer_lock);
      if (Status since = unavailable_.Acquire(lock, unavailable_before); !since.ok()) return RefusingToAllocate(since);
      reloaded = reloaded || reload_pending_;
      // A reload reads the store and may write to it (the journal): not while a commit decided
      // before is still queued or in flight. None queues meanwhile: every change reloads first.
      if (reload_pending_ && (drain = commits_.last_pending_ticket()) != 0)
        return Aborted("a reload waits for earlier commits");  // not returned: drained, then again
      SMV_RETURN_IF_ERROR(ReloadIfNeededLocked());
      const Status changed = change();
      ticket = commits_.last_pending_ticket();
      // In a shared book another node may have freed what this view holds as taken: a refusal
      // stands only when decided on a view read for this call.
      if (book_ != nullptr && !reloaded && IsRefusal(changed)) {
        reload_pending_ = true;
        stale_refusal = true;
      }
      return OkStatus();
    }();
    if (drain != 0) {
      static_cast<void>(commits_.WaitDurable(drain));  // its outcome is its callers'; this call decides anew
      continue;
    }
    if (!before_change.ok()) return before_change;
    if (stale_refusal) continue;
    Status durable = commits_.WaitDurable(ticket);
    if (durable.ok()) return OkStatus();  // the change's own answer stands
    // Unavailable: refuse now; waiting for a second timeout would only delay the same answer.
    if (durable.code() == Code::kUnavailable) return RefusingToAllocate(durable);
    // A shared store refused a commit decided on a stale view; the view is fresh now.
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

Status StoreMirror::ReloadIfNeededLocked() {
  // Cleared before the load: a request for a reload made while this one runs (RefreshName sets
  // the flag without the mutex) stays, and the next change reloads again.
  if (!reload_pending_.exchange(false)) return OkStatus();
  Status loaded = LoadLocked();
  if (loaded.ok()) loaded = ReplayJournalLocked();
  if (!loaded.ok()) reload_pending_ = true;
  unavailable_.Note(loaded);
  return RefusingToAllocate(loaded);
}

void StoreMirror::ReloadAfterFailedCommit(const Status& error, std::span<const IpamBatch> sent) {
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

void StoreMirror::JournalLeasesOfUnknownCommitLocked(std::span<const IpamBatch> sent) {
  if (journal_ == nullptr || book_ == nullptr) return;
  for (const IpamBatch& batch : sent) {
    for (const LeaseRecord& l : batch.put_leases) {
      // Gateway and aux leases are the subnet's, which other hosts' networks may rely on by now.
      if (l.lease.kind != LeaseKind::kEndpoint) continue;
      if (Status journaled = journal_->Append({l.pool_id, l.address, node_}); !journaled.ok()) {
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

Status StoreMirror::LoadLocked() {
  // Records go straight into the allocators: a large state is never held twice by the load
  // itself (a reload holds the old memory until the new one is complete).
  struct Sink : IpamLoadSink {
    explicit Sink(const StoreMirror& owner) : service(owner) {}
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
      if (it == loaded.end() && service.book_ != nullptr) it = KeepRemovedPool(r.pool_id);
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
    const StoreMirror& service;
    std::map<std::string, PoolState> loaded;
    size_t pools = 0, leases = 0, reservations = 0;
  } sink(*this);
  SMV_RETURN_IF_ERROR(store_.LoadInto(sink).Annotate("load address state"));
  pools_ = std::move(sink.loaded);
  for (auto& [id, state] : pools_) state.allocator.ShrinkToFit();
  spdlog::info("address state loaded pools={} leases={} reservations={}", sink.pools, sink.leases, sink.reservations);
  return OkStatus();
}

Status StoreMirror::ReplayJournalLocked() {
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
      if (r.revision != 0 && LeaseRevision(r.pool_id, r.address) != r.revision) continue;  // a later lease
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

Status StoreMirror::JournalRelease(const std::string& pool_id, const IpAddress& address, const Status& store_error) {
  // Journaled even when memory shows no lease: memory may be older than the store (a start
  // without it) or already changed by the failed commit. Replaying what is not held does nothing.
  std::scoped_lock lock(mu_);
  // The lease this node released, by its revision: a replay must free it and no later one.
  const JournaledRelease release{pool_id, address, node_, LeaseRevision(pool_id, address)};
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

int64_t StoreMirror::LeaseRevision(const std::string& pool_id, const IpAddress& address) const {
  return book_ != nullptr ? book_->LeaseRevision(pool_id, address) : 0;
}

void StoreMirror::Enqueue(IpamBatch batch) {
  CompleteReads(batch);
  commits_.Enqueue(std::move(batch));
}

Status StoreMirror::EnqueueDecodable(IpamBatch batch) {
  CompleteReads(batch);
  if (book_ != nullptr) SMV_RETURN_IF_ERROR(book_->CheckDecodable(batch));
  commits_.Enqueue(std::move(batch));
  return OkStatus();
}

void StoreMirror::CompleteReads(IpamBatch& batch) {
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

void StoreMirror::ReloadForCommandLocked() {
  if (rules_->CommandsReloadFirst()) reload_pending_ = true;
}

Status StoreMirror::CatchUp() {
  if (book_ != nullptr) {
    // Released by another host while this one was cut off (its commit key was moved): reload,
    // so that what it believes it holds is what the book says.
    Result<bool> moved = book_->CommitKeyMoved();
    if (moved.ok() && *moved) {
      std::scoped_lock lock(mu_);
      reload_pending_ = true;
    }
  }
  return Durably([] { return OkStatus(); });
}

void StoreMirror::RefreshName(const std::string& pool_id, const std::string& name, uint64_t seen) {
  if (book_ == nullptr || name.empty()) return;
  uint64_t commits_before = 0;
  {
    std::unique_lock lock(mu_, std::defer_lock);
    if (!unavailable_.Acquire(lock, seen).ok() || commits_.last_pending_ticket() != 0) return;
    commits_before = commits_.commits();
  }
  Result<NameRecords> fresh = book_->ReadName(pool_id, name);
  // What the read saw becomes what commits compare only when memory takes it in (AdoptRead):
  // until then a commit decided before the read still compares the revisions of its own view.
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
  book_->AdoptRead(*fresh);
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

PoolAllocator StoreMirror::NewAllocator(const PoolRecord& record) const {
  PoolConfig local = record.config;
  if (auto it = record.node_ranges.find(node_); it != record.node_ranges.end()) {
    local.range = Prefix::Parse(it->second);  // checked when the record was decoded or made
  }
  PoolAllocator allocator(std::move(local));
  if (book_ != nullptr) {
    thread_local std::mt19937_64 random(std::random_device{}());
    allocator.MoveCursor(random());
  }
  return allocator;
}

void StoreMirror::RebuildAllocator(PoolState& state) const {
  PoolAllocator rebuilt = NewAllocator(state.record);
  const Family family = state.record.config.subnet.family();
  for (const auto& [value, lease] : state.allocator.leases()) rebuilt.AddLease(IpAddress(family, value), lease);
  state.allocator.reservations().ForEach([&](const ReservedName& r) {
    rebuilt.AddReservation(r.name, IpAddress(family, r.address), r.mac, r.since, r.gone_since);
  });
  state.allocator = std::move(rebuilt);
}

}  // namespace smv::ipam

#pragma once
// The service's memory of its store, and how a change becomes durable. A change is decided under
// one mutex on memory, queued for commit (commit_queue.h) and waited for (Durably): no answer is
// given before its change is in the store. A shared store (ipam/etcd_store.h) may refuse a commit
// because another node changed the book first (kAborted): memory is reloaded from the store and
// the change decided again. After a store that did not answer, every change first reloads, and
// fails with the store's error until it answers again; address releases are journaled instead
// (release_journal.h) and replayed, before anything else, once it answers. The store's
// "unavailable" answers pass one gate (unavailable_gate.h). The IpamDriver verbs are IpamService's.

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>

#include "common/status.h"
#include "ipam/commit_queue.h"
#include "ipam/fleet_rules.h"
#include "ipam/ipam_store.h"
#include "ipam/pool_state.h"
#include "ipam/release_journal.h"
#include "ipam/shared_book.h"
#include "ipam/unavailable_gate.h"

namespace smv::ipam {

// Answers that depend on what others hold, as opposed to what the request says.
bool IsRefusal(const Status& s);

// Leases freed per commit (ReleaseNode, ReleasePool, the journal's replay): below etcd's default
// --max-txn-ops (128).
inline constexpr size_t kLeasesPerCommit = 100;

class StoreMirror {
 public:
  // `store` and `journal` (shared stores, may be null) must outlive the mirror. Whether the book
  // is shared is asked of `store` here, once.
  StoreMirror(IpamStore& store, ReleaseJournal* journal);
  StoreMirror(const StoreMirror&) = delete;
  StoreMirror& operator=(const StoreMirror&) = delete;

  // Loads memory and replays the journal. A shared store that does not answer is not an error:
  // changes are refused until it does.
  Status Start();

  // The book as other hosts write it too, or nullptr; this host's name in it ("" otherwise).
  SharedBook* book() const { return book_; }
  const std::string& node() const { return node_; }
  bool journals() const { return journal_ != nullptr; }

  // Memory, and the mutex that guards it (taken before the commit queue's own mutex).
  std::timed_mutex& mutex() const { return mu_; }
  PoolStates& pools() { return pools_; }
  const PoolStates& pools() const { return pools_; }
  // Whether memory is known not to be the store's state (a reload failed or waits).
  bool reload_pending() const { return reload_pending_; }
  // The gate's count of "unavailable" answers: a change begun now refuses with any noted later.
  uint64_t unavailable_seen() const { return unavailable_.seen(); }
  // A read outside Durably found the store unavailable: changes begun before refuse at once.
  void NoteUnavailable(const Status& answer) { unavailable_.Note(answer); }

  // Runs `change` under the mutex (it applies its change to memory and queues the batch), then
  // waits until everything it queued or saw is durable: returns the commit's error otherwise.
  // `seen`: unavailable_seen() when the call began (default: now). A call during which the
  // shared store was found unavailable (by this call or by one it waited for) is refused with
  // that answer at once instead of asking the store again: each call waits for at most one
  // store timeout, never for a chain of them.
  template <typename Change>
  auto Durably(Change change, std::optional<uint64_t> seen = std::nullopt) -> decltype(change()) {
    std::optional<decltype(change())> changed;
    const Status failed = RunDurably([&] { return StatusOf(changed.emplace(change())); }, seen);
    if (!failed.ok()) return failed;
    return std::move(*changed);
  }

  // Completes `batch` with what the fleet's rules compare and write (fleet_rules.h), then queues
  // it for commit. Caller holds the mutex; every change goes through here. Taken by value: a
  // caller that needs the batch no more moves it in (the hot paths), one that does keeps a copy.
  void Enqueue(IpamBatch batch);
  // Enqueue, unless the completed batch writes or compares a record no load could decode
  // (SharedBook::CheckDecodable): etcd would refuse that commit every time, so it is refused at
  // once, naming the record and its fix, and nothing is queued. Before memory changes.
  [[nodiscard]] Status EnqueueDecodable(IpamBatch batch);
  // Before a command a user runs against the whole book: decide on the book as it is now.
  // Caller holds the mutex.
  void ReloadForCommandLocked();

  // A release the store could not take (`store_error`): journaled, and memory frees it; the
  // next change reloads and replays it first. The journal's error, with `store_error`, otherwise.
  Status JournalRelease(const std::string& pool_id, const IpAddress& address, const Status& store_error);
  // In a shared book: brings memory's view of `name` (its reservation, the lease on its address)
  // up to what the store holds, for decisions no commit compares, such as which reserved address
  // a guessed name gets. Best effort: on any error, or when a commit ran meanwhile, memory stays.
  void RefreshName(const std::string& pool_id, const std::string& name, uint64_t seen);
  // After a shared store did not answer, or another host released this one: reads the store again
  // and replays the journaled releases. Does nothing otherwise.
  Status CatchUp();

  // The pool as this host allocates from it: in a shared book, with this host's --ip-range.
  PoolAllocator NewAllocator(const PoolRecord& record) const;
  // After this host's range changed: the same leases and reservations in a new allocator.
  void RebuildAllocator(PoolState& state) const;

 private:
  // How often a change is decided again after a shared store refused it (another node first).
  static constexpr int kAttemptsOnConflict = 20;

  // Durably without the answer's type: OK when the change's own (last) answer stands, or why not.
  Status RunDurably(const std::function<Status()>& change, std::optional<uint64_t> seen);
  static const Status& StatusOf(const Status& s) { return s; }
  template <typename T>
  static Status StatusOf(const Result<T>& r) {
    return r.status();
  }
  // Replaces memory with the store's state; memory is unchanged when the store fails.
  Status LoadLocked();
  // Frees what the journal says this node released, where this node still holds it. Writes to
  // the store directly: only called while no commit is queued or in flight.
  Status ReplayJournalLocked();
  int64_t LeaseRevision(const std::string& pool_id, const IpAddress& address) const;
  void ReloadAfterFailedCommit(const Status& error, std::span<const IpamBatch> sent);
  // A commit etcd may still apply (its answer was lost and could not be read back) was refused to
  // its callers: the container addresses it leases are journaled as released, so that the replay
  // after the next load (which fences first: the outcome is final then) frees any that applied.
  // Caller holds mu_.
  void JournalLeasesOfUnknownCommitLocked(std::span<const IpamBatch> sent);
  // Reloads when the last reload failed (a store that did not answer); its error otherwise.
  Status ReloadIfNeededLocked();
  void CompleteReads(IpamBatch& batch);

  IpamStore& store_;
  SharedBook* const book_;  // chosen once: the store as a book other hosts write to, or nullptr
  const std::string node_;
  const std::unique_ptr<BookRules> rules_;  // chosen once, by whether the book is shared
  ReleaseJournal* const journal_;
  mutable std::timed_mutex mu_;  // guards pools_; taken before the commit queue's own mutex
  PoolStates pools_;
  // Memory is not the store's state: reload before any change. Set without mu_ too (by a read
  // that failed); read under it.
  std::atomic<bool> reload_pending_ = false;
  // The store's "unavailable" answers: a change refuses at once with one noted since it began.
  UnavailableGate unavailable_;
  CommitQueue commits_;
};

}  // namespace smv::ipam

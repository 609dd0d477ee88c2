#pragma once
// Group commit for the IPAM store. A call decides its change under the service mutex, applies
// it to memory and queues the batch here; it then leaves the mutex and waits until the batch
// is durable. The first waiter with no commit in flight becomes the leader: it writes every
// batch queued so far in one store transaction (one fsync) and wakes the others. So concurrent
// callers share a disk flush instead of queueing for one each, and no reply is sent before its
// change is on disk. A store that limits a transaction's size (etcd) gets several in a row.
//
// A failed commit fails its batches and every batch queued after them (they were decided on a
// memory state that now differs from the disk); `on_failure` then runs under the service mutex
// so that the service can reload its memory from the store before anything new is queued.

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "ipam/ipam_store.h"

namespace smv::metrics {
class StoreCommitMetrics;  // common/metrics/metrics.h, which users of this header do not see
}  // namespace smv::metrics

namespace smv::ipam {

class CommitQueue {
 public:
  // Runs with the store's failure and the batches that commit sent (those queued behind them were
  // never sent); must take the service mutex and call FailQueuedLocked.
  using FailureHandler = std::function<void(const Status&, std::span<const IpamBatch> sent)>;

  // `store_kind` labels the commit metrics ("lmdb", "etcd").
  CommitQueue(IpamStore& store, FailureHandler on_failure, std::string_view store_kind = "lmdb");
  ~CommitQueue();

  // Caller holds the service mutex. Returns the batch's ticket (tickets grow by one).
  uint64_t Enqueue(IpamBatch&& batch);
  // The newest ticket still being committed, 0 when every ticket is resolved: what a decision
  // made now depends on. A failed ticket is not among them: the service reloaded since.
  // Caller holds the service mutex.
  uint64_t last_pending_ticket() const;
  // Caller does not hold the service mutex. Returns when every batch up to `ticket` is durable
  // (OK) or was dropped by a failed commit (that commit's error). Ticket 0 returns at once.
  Status WaitDurable(uint64_t ticket);
  // Caller holds the service mutex: drops every queued batch with `error` (see the top).
  void FailQueuedLocked(const Status& error);

  uint64_t commits() const;  // store transactions so far (for tests and benchmarks)

 private:
  struct FailedRange {
    uint64_t first, last;
    Status error;
  };
  Status OutcomeLocked(uint64_t ticket) const;
  // How many queued batches the next commit takes: as many as fit the store's write limit, at least one.
  size_t GroupSizeLocked() const;
  // The batches the next commit writes, out of the queue.
  std::vector<IpamBatch> TakeGroupLocked();

  IpamStore& store_;
  FailureHandler on_failure_;
  const std::unique_ptr<metrics::StoreCommitMetrics> metrics_;
  mutable std::mutex mu_;
  std::condition_variable changed_;
  std::vector<IpamBatch> queue_;  // tickets resolved_ + 1 ... last_ticket_, in order
  uint64_t last_ticket_ = 0;
  uint64_t resolved_ = 0;              // every ticket up to this one is durable or failed
  bool committing_ = false;            // a leader is writing; more batches may queue meanwhile
  bool recovering_ = false;            // a commit failed and the service is reloading
  std::vector<FailedRange> failures_;  // the most recent ones, so late waiters see their error
  uint64_t commits_ = 0;
};

}  // namespace smv::ipam

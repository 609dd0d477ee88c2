#include "ipam/commit_queue.h"

#include <chrono>
#include <cstddef>
#include <exception>
#include <iterator>
#include <memory>
#include <utility>

#include "common/clock.h"
#include "common/metrics/metrics.h"

namespace smv::ipam {
namespace {

// Failed ranges kept for waiters that wake late (a caller may queue, leave the service mutex
// and be descheduled across several failed commits). Consecutive failures share one range.
constexpr size_t kFailuresKept = 4096;

}  // namespace

CommitQueue::CommitQueue(IpamStore& store, FailureHandler on_failure, std::string_view store_kind)
    : store_(store),
      on_failure_(std::move(on_failure)),
      metrics_(std::make_unique<metrics::StoreCommitMetrics>(store_kind)) {}

CommitQueue::~CommitQueue() = default;

uint64_t CommitQueue::Enqueue(IpamBatch&& batch) {
  std::scoped_lock lock(mu_);
  queue_.push_back(std::move(batch));
  return ++last_ticket_;
}

uint64_t CommitQueue::last_pending_ticket() const {
  std::scoped_lock lock(mu_);
  return last_ticket_ > resolved_ ? last_ticket_ : 0;
}

uint64_t CommitQueue::commits() const {
  std::scoped_lock lock(mu_);
  return commits_;
}

Status CommitQueue::OutcomeLocked(uint64_t ticket) const {
  for (const FailedRange& failed : failures_) {
    if (ticket >= failed.first && ticket <= failed.last) return failed.error;
  }
  return OkStatus();
}

size_t CommitQueue::GroupSizeLocked() const {
  const size_t limit = store_.max_writes_per_commit();
  size_t taken = 0, writes = 0;
  for (const IpamBatch& batch : queue_) {
    if (taken > 0 && writes + batch.writes() > limit) break;
    writes += batch.writes();
    ++taken;
  }
  return taken;
}

std::vector<IpamBatch> CommitQueue::TakeGroupLocked() {
  std::vector<IpamBatch> group;
  const size_t take = GroupSizeLocked();
  if (take == queue_.size()) {  // the usual case: everything queued, no batch moved one by one
    group.swap(queue_);
    return group;
  }
  const auto end = queue_.begin() + static_cast<std::ptrdiff_t>(take);
  group.assign(std::make_move_iterator(queue_.begin()), std::make_move_iterator(end));
  queue_.erase(queue_.begin(), end);
  return group;
}

Status CommitQueue::WaitDurable(uint64_t ticket) {
  std::unique_lock lock(mu_);
  for (;;) {
    while (ticket > resolved_ && (committing_ || recovering_)) changed_.wait(lock);
    if (ticket <= resolved_) return OutcomeLocked(ticket);

    // Leader: what is queued so far goes into one transaction, as much as the store takes;
    // the leader goes on until its own batch is written.
    committing_ = true;
    std::vector<IpamBatch> group = TakeGroupLocked();
    const uint64_t group_last = resolved_ + group.size();
    lock.unlock();
    Status written;
    const auto started = SteadyClock::now();
    try {
      written = store_.ApplyAll(group);
    } catch (const std::exception& e) {  // a leader that throws would leave committing_ set forever
      written = Internal(fmt::format("save address state: {}", e.what()));
    }
    metrics_->Observe(CodeName(written.code()), SecondsSince(started));
    lock.lock();
    committing_ = false;
    ++commits_;
    if (written.ok()) {
      resolved_ = group_last;
      changed_.notify_all();
      continue;
    }
    // Put the group back in front so that FailQueuedLocked fails it together with what queued
    // after it, then let the service reload under its own mutex (taken before ours).
    const std::vector<IpamBatch> sent = group;
    group.insert(group.end(), std::make_move_iterator(queue_.begin()), std::make_move_iterator(queue_.end()));
    queue_ = std::move(group);
    recovering_ = true;
    lock.unlock();
    on_failure_(written, sent);
    lock.lock();
    return OutcomeLocked(ticket);
  }
}

void CommitQueue::FailQueuedLocked(const Status& error) {
  std::scoped_lock lock(mu_);
  if (last_ticket_ > resolved_) {
    if (!failures_.empty() && failures_.back().last == resolved_) {
      failures_.back().last = last_ticket_;
    } else {
      if (failures_.size() == kFailuresKept) failures_.erase(failures_.begin());
      failures_.push_back(FailedRange{resolved_ + 1, last_ticket_, error});
    }
  }
  queue_.clear();
  resolved_ = last_ticket_;
  recovering_ = false;
  changed_.notify_all();
}

}  // namespace smv::ipam

// Group commit: batches queued while a commit is in flight share the next one; a failed commit
// fails its batches and those queued after them, and hands the error to the service.

#include "ipam/commit_queue.h"

#include <gtest/gtest.h>

#include <future>
#include <mutex>
#include <thread>
#include <vector>

namespace smv::ipam {
namespace {

// Records each transaction's batches (by the pool id they carry); the first commit can be held
// until the test lets it go, and any commit can be made to fail.
class GateStore : public IpamStore {
 public:
  Result<IpamSnapshot> Load() override { return IpamSnapshot{}; }
  Status ApplyAll(std::span<const IpamBatch> batches) override {
    std::vector<std::string> ids;
    for (const IpamBatch& b : batches) ids.push_back(b.delete_pools.front());
    {
      std::scoped_lock lock(mu);
      commits.push_back(ids);
    }
    if (hold_first) {
      hold_first = false;
      entered.set_value();
      release.get_future().wait();
    }
    if (fail_next) {
      fail_next = false;
      return Unavailable("disk went away");
    }
    return OkStatus();
  }
  std::mutex mu;
  std::vector<std::vector<std::string>> commits;
  size_t max_writes_per_commit() const override { return max_writes; }
  size_t max_writes = SIZE_MAX;
  bool hold_first = false;
  bool fail_next = false;
  std::promise<void> entered, release;
};

IpamBatch Tagged(const std::string& id) {
  IpamBatch b;
  b.delete_pools.push_back(id);
  return b;
}

class CommitQueueTest : public ::testing::Test {
 protected:
  // The service mutex the queue's contract speaks of.
  std::mutex service_mu_;
  GateStore store_;
  int failures_seen_ = 0;
  CommitQueue queue_{store_, [this](const Status&, std::span<const IpamBatch>) {
                       std::scoped_lock lock(service_mu_);
                       ++failures_seen_;
                       queue_.FailQueuedLocked(Unavailable("disk went away"));
                     }};

  uint64_t Enqueue(const std::string& id) {
    std::scoped_lock lock(service_mu_);
    return queue_.Enqueue(Tagged(id));
  }
};

TEST_F(CommitQueueTest, TicketZeroAndAnEmptyQueueNeedNoCommit) {
  EXPECT_TRUE(queue_.WaitDurable(0).ok());
  EXPECT_EQ(queue_.commits(), 0u);
}

TEST_F(CommitQueueTest, BatchesQueuedDuringACommitShareTheNextOne) {
  store_.hold_first = true;
  const uint64_t first = Enqueue("a");
  auto leader = std::async(std::launch::async, [&] { return queue_.WaitDurable(first); });
  store_.entered.get_future().wait();  // "a" is being written
  std::vector<std::future<Status>> waiters;
  for (const char* id : {"b", "c", "d"}) {
    const uint64_t ticket = Enqueue(id);
    waiters.push_back(std::async(std::launch::async, [this, ticket] { return queue_.WaitDurable(ticket); }));
  }
  store_.release.set_value();
  EXPECT_TRUE(leader.get().ok());
  for (auto& w : waiters) EXPECT_TRUE(w.get().ok());
  ASSERT_EQ(store_.commits.size(), 2u);  // four batches, two fsyncs
  EXPECT_EQ(store_.commits[0], (std::vector<std::string>{"a"}));
  EXPECT_EQ(store_.commits[1], (std::vector<std::string>{"b", "c", "d"}));  // in queue order
}

TEST_F(CommitQueueTest, AFailedCommitFailsItsBatchesAndThoseQueuedBehindThem) {
  store_.hold_first = true;
  store_.fail_next = true;
  const uint64_t first = Enqueue("a");
  auto leader = std::async(std::launch::async, [&] { return queue_.WaitDurable(first); });
  store_.entered.get_future().wait();
  const uint64_t behind = Enqueue("b");  // decided on a memory state that will not be on disk
  store_.release.set_value();
  Status a = leader.get();
  EXPECT_EQ(a.code(), Code::kUnavailable);
  EXPECT_EQ(queue_.WaitDurable(behind).code(), Code::kUnavailable);
  EXPECT_EQ(failures_seen_, 1);
  EXPECT_EQ(store_.commits.size(), 1u);  // "b" was never written

  // The queue works again afterwards, and a late waiter of the failed range still sees it.
  const uint64_t next = Enqueue("c");
  EXPECT_TRUE(queue_.WaitDurable(next).ok());
  EXPECT_EQ(queue_.WaitDurable(first).code(), Code::kUnavailable);
  ASSERT_EQ(store_.commits.size(), 2u);
  EXPECT_EQ(store_.commits[1], (std::vector<std::string>{"c"}));
}

// etcd takes at most --max-txn-ops operations per transaction: a burst larger than that is
// written in several transactions, in queue order, and every waiter is answered.
TEST_F(CommitQueueTest, ABurstLargerThanTheStoreTakesIsWrittenInSeveralCommits) {
  store_.max_writes = 2;
  store_.hold_first = true;
  const uint64_t first = Enqueue("a");
  auto leader = std::async(std::launch::async, [&] { return queue_.WaitDurable(first); });
  store_.entered.get_future().wait();
  uint64_t last = 0;
  for (const char* id : {"b", "c", "d", "e", "f"}) last = Enqueue(id);
  store_.release.set_value();
  EXPECT_TRUE(leader.get().ok());
  EXPECT_TRUE(queue_.WaitDurable(last).ok());  // one waiter leads every remaining commit
  ASSERT_EQ(store_.commits.size(), 4u);
  EXPECT_EQ(store_.commits[1], (std::vector<std::string>{"b", "c"}));
  EXPECT_EQ(store_.commits[2], (std::vector<std::string>{"d", "e"}));
  EXPECT_EQ(store_.commits[3], (std::vector<std::string>{"f"}));
}

}  // namespace
}  // namespace smv::ipam

#include "ipam/unavailable_gate.h"

#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <mutex>
#include <thread>

namespace smv::ipam {
namespace {

using std::chrono::milliseconds;

TEST(UnavailableGateTest, OnlyUnavailableAnswersAreNotedAndEachCallerSeesThoseAfterItBegan) {
  UnavailableGate gate;
  const uint64_t before = gate.seen();
  gate.Note(OkStatus());
  gate.Note(Aborted("another node wrote first"));
  EXPECT_TRUE(gate.Since(before).ok());
  gate.Note(Unavailable("etcd: no member reachable"));
  EXPECT_EQ(gate.Since(before).message(), "etcd: no member reachable");
  EXPECT_TRUE(gate.Since(gate.seen()).ok()) << "a caller that begins now has seen nothing yet";
}

// The waiter must not need the lock to learn the answer: whoever holds it (a reload that began
// after the failure) may hold it for a whole store budget more.
TEST(UnavailableGateTest, AWaiterIsAnsweredWhileTheLockIsStillHeld) {
  UnavailableGate gate;
  std::timed_mutex mu;
  std::unique_lock holder(mu);  // held for the whole test
  const uint64_t seen = gate.seen();
  auto waiter = std::async(std::launch::async, [&] {
    std::unique_lock lock(mu, std::defer_lock);
    Status answer = gate.Acquire(lock, seen);
    EXPECT_FALSE(lock.owns_lock());
    return answer;
  });
  EXPECT_EQ(waiter.wait_for(milliseconds(200)), std::future_status::timeout) << "nothing noted yet: it waits";
  gate.Note(Unavailable("etcd: 198.51.100.13:2379: ConnectionTimeout"));
  ASSERT_EQ(waiter.wait_for(std::chrono::seconds(5)), std::future_status::ready) << "still waiting for the lock";
  EXPECT_EQ(waiter.get().code(), Code::kUnavailable);
}

TEST(UnavailableGateTest, AnAnswerNotedBeforeTheCallerGotTheLockStillRefusesIt) {
  UnavailableGate gate;
  std::timed_mutex mu;
  const uint64_t seen = gate.seen();
  gate.Note(Unavailable("etcd: no quorum"));
  std::unique_lock lock(mu, std::defer_lock);
  EXPECT_EQ(gate.Acquire(lock, seen).message(), "etcd: no quorum");
  std::unique_lock fresh(mu, std::defer_lock);
  lock.unlock();
  EXPECT_TRUE(gate.Acquire(fresh, gate.seen()).ok());
  EXPECT_TRUE(fresh.owns_lock());
}

TEST(UnavailableGateTest, RunNotesTheCallsAnswerAndSkipsTheCallWhenAnswerWasNotedMeanwhile) {
  UnavailableGate gate;
  std::timed_mutex mu;
  const uint64_t before = gate.seen();
  Result<int> failed = gate.Run(mu, []() -> Result<int> { return Unavailable("etcd: no quorum"); });
  EXPECT_EQ(failed.status().code(), Code::kUnavailable);
  EXPECT_EQ(gate.Since(before).message(), "etcd: no quorum") << "the call's own answer is noted";
  EXPECT_TRUE(gate.Run(mu, [] { return OkStatus(); }).ok()) << "a caller that began after it is not refused";

  // A caller waiting for the lock while another call fails is answered without running.
  std::unique_lock holder(mu);
  bool ran = false;
  auto waiter = std::async(std::launch::async, [&] {
    return gate.Run(mu, [&] {
      ran = true;
      return OkStatus();
    });
  });
  std::this_thread::sleep_for(milliseconds(300));  // the waiter is at the lock by now
  gate.Note(Unavailable("etcd: cut off"));
  const bool answered = waiter.wait_for(std::chrono::seconds(5)) == std::future_status::ready;
  holder.unlock();  // never leave the waiter blocked, whatever happened
  EXPECT_TRUE(answered) << "still waiting for the lock";
  EXPECT_EQ(waiter.get().message(), "etcd: cut off");
  EXPECT_FALSE(ran);
}

// The etcd client says "etcd: DETAIL"; the store's callers read the store's words, wrapped once
// (a message that names the store already, as the client wrote it before, is kept).
TEST(StoreWordsTest, AnUnavailableEtcdIsWordedAsTheStoreOnce) {
  const Status worded = SharedStoreUnavailable(Unavailable("etcd: 127.0.0.1:1: Connection"));
  EXPECT_EQ(worded.code(), Code::kUnavailable);
  EXPECT_EQ(worded.message(), "shared address store unavailable (etcd: 127.0.0.1:1: Connection)");
  EXPECT_EQ(SharedStoreUnavailable(worded).message(), worded.message());
  EXPECT_EQ(SharedStoreUnavailable(Unavailable("no answer")).message(),
            "shared address store unavailable (etcd: no answer)");
  EXPECT_EQ(SharedStoreUnavailable(Aborted("etcd: refused")).message(), "etcd: refused");  // not unavailable
  const Status refused = RefusingToAllocate(worded);
  EXPECT_EQ(refused.message(), worded.message() + "; refusing to allocate to avoid duplicate addresses");
  EXPECT_EQ(RefusingToAllocate(refused).message(), refused.message());
}

}  // namespace
}  // namespace smv::ipam

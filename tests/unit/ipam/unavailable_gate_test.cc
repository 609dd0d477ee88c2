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

}  // namespace
}  // namespace smv::ipam

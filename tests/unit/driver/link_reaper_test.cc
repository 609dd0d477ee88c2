// LinkReaper on fake link ops: what it deletes, what it leaves, that a failed deletion is tried
// once and does not stop the queue, and that Drain and the destructor wait for the queue.

#include "driver/link_reaper.h"

#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <thread>

#include "tests/support/fake_link_ops.h"

namespace smv::driver {
namespace {

using namespace std::chrono_literals;

constexpr const char* kOwnTag = "static-macvlan:00000000000000a1";
constexpr const char* kOtherTag = "static-macvlan:00000000000000b2";

class LinkReaperTest : public ::testing::Test {
 protected:
  LinkReaperTest() {
    auto fake = std::make_unique<testing::FakeLinkOps>();
    links_ = fake.get();
    links_->owner_tag = kOwnTag;
    links_->AddExisting({.name = "eth1"});
    for (const char* name : {"smv00000000001", "smv00000000002", "smv00000000003"}) {
      links_->AddExisting({.name = name, .kind = "macvlan", .parent_name = "eth1", .alias = kOwnTag});
    }
    fake_ = std::move(fake);
  }

  // The reaper takes the fake: links_ is usable while the reaper lives (a test reads it after
  // Drain, which orders the worker's changes before the read), and dangles after its end.
  std::unique_ptr<LinkReaper> MakeReaper() { return std::make_unique<LinkReaper>(std::move(fake_)); }

  testing::FakeLinkOps* links_ = nullptr;
  std::unique_ptr<testing::FakeLinkOps> fake_;
};

TEST_F(LinkReaperTest, DeletesWhatIsQueuedAndNothingElse) {
  auto reaper = MakeReaper();
  reaper->Delete("smv00000000001");
  reaper->Delete("smv00000000002");
  reaper->Drain();
  EXPECT_FALSE(links_->Exists("smv00000000001"));
  EXPECT_FALSE(links_->Exists("smv00000000002"));
  EXPECT_TRUE(links_->Exists("smv00000000003"));
  EXPECT_TRUE(links_->Exists("eth1"));
  EXPECT_EQ(links_->delete_calls, (std::vector<std::string>{"smv00000000001", "smv00000000002"}));
}

TEST_F(LinkReaperTest, AnAbsentLinkDoesNotStopTheQueue) {
  auto reaper = MakeReaper();
  reaper->Delete("no-such-link");
  reaper->Delete("smv00000000001");
  reaper->Drain();
  EXPECT_FALSE(links_->Exists("smv00000000001"));
}

TEST_F(LinkReaperTest, LeavesAnotherInstancesLinkAndDeletesUntaggedOnes) {
  links_->AddExisting({.name = "smv0000000000b", .kind = "macvlan", .parent_name = "eth1", .alias = kOtherTag});
  links_->AddExisting({.name = "smv0000000000c", .kind = "macvlan", .parent_name = "eth1"});  // an older version's
  auto reaper = MakeReaper();
  reaper->Delete("smv0000000000b");
  reaper->Delete("smv0000000000c");
  reaper->Drain();
  EXPECT_TRUE(links_->Exists("smv0000000000b"));
  EXPECT_FALSE(links_->Exists("smv0000000000c"));
}

// A deletion that fails is logged and left to the next start's sweep: tried once, never again,
// and the links queued behind it are still deleted.
TEST_F(LinkReaperTest, AFailedDeletionIsTriedOnceAndTheQueueGoesOn) {
  links_->fail_delete.insert("smv00000000001");
  auto reaper = MakeReaper();
  reaper->Delete("smv00000000001");
  reaper->Delete("smv00000000002");
  reaper->Drain();
  EXPECT_TRUE(links_->Exists("smv00000000001"));
  EXPECT_FALSE(links_->Exists("smv00000000002"));
  reaper->Delete("smv00000000003");  // the worker still serves after a failure
  reaper->Drain();
  EXPECT_FALSE(links_->Exists("smv00000000003"));
  EXPECT_EQ(std::count(links_->delete_calls.begin(), links_->delete_calls.end(), "smv00000000001"), 1);
}

// Holds the first deletion until released, so a test can see who waits for it.
struct Gate {
  std::promise<void> opened;
  std::shared_future<void> open = opened.get_future().share();
  std::promise<void> entered;
  bool first = true;
  void Hold(const std::string&) {
    if (!std::exchange(first, false)) return;
    entered.set_value();
    open.wait();
  }
};

TEST_F(LinkReaperTest, DrainWaitsForTheDeletionUnderWay) {
  Gate gate;
  std::future<void> entered = gate.entered.get_future();
  links_->on_delete = [&](const std::string& name) { gate.Hold(name); };
  auto reaper = MakeReaper();
  reaper->Delete("smv00000000001");
  entered.wait();  // the deletion is under way: the queue is empty, the worker busy
  std::future<void> drained = std::async(std::launch::async, [&] { reaper->Drain(); });
  EXPECT_EQ(drained.wait_for(100ms), std::future_status::timeout) << "Drain returned before the deletion ended";
  gate.opened.set_value();
  drained.get();
  EXPECT_FALSE(links_->Exists("smv00000000001"));
}

// The destructor stops the worker only after it has deleted everything still queued.
TEST_F(LinkReaperTest, FinishesItsQueueWhenItStops) {
  Gate gate;
  std::future<void> entered = gate.entered.get_future();
  // The fake goes with the reaper: what it deleted is recorded here, where the test can read it
  // after the reaper's end (links_ dangles then; ASan caught a read of it).
  std::vector<std::string> deleted;
  links_->on_delete = [&](const std::string& name) {
    deleted.push_back(name);
    gate.Hold(name);
  };
  auto reaper = MakeReaper();
  reaper->Delete("smv00000000001");
  reaper->Delete("smv00000000002");
  reaper->Delete("smv00000000003");
  entered.wait();  // two still queued behind the held deletion
  std::thread opener([&] {
    std::this_thread::sleep_for(50ms);  // after the destructor has asked the worker to stop
    gate.opened.set_value();
  });
  reaper.reset();
  opener.join();
  EXPECT_EQ(deleted, (std::vector<std::string>{"smv00000000001", "smv00000000002", "smv00000000003"}));
}

}  // namespace
}  // namespace smv::driver

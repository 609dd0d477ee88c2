// The history checker of the fleet's partition tests (tests/support/history_checker.h) on
// fabricated histories: it passes good ones and names the operations of bad ones, so a chaos
// run that reports no violation means something.

#include "tests/support/history_checker.h"

#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace smv::testing {
namespace {

// Times in milliseconds, for short fixtures.
Operation Op(OpKind kind, Outcome outcome, int64_t start_ms, int64_t end_ms, const std::string& node,
             const std::string& name, const std::string& address) {
  return Operation{.kind = kind,
                   .outcome = outcome,
                   .start_us = start_ms * 1000,
                   .end_us = end_ms * 1000,
                   .node = node,
                   .name = name,
                   .address = address};
}
Operation Alloc(int64_t s, int64_t e, const std::string& node, const std::string& name, const std::string& address,
                Outcome outcome = Outcome::kOk) {
  return Op(OpKind::kAllocate, outcome, s, e, node, name, address);
}
Operation Free(int64_t s, int64_t e, const std::string& node, const std::string& name, const std::string& address,
               Outcome outcome = Outcome::kOk) {
  return Op(OpKind::kRelease, outcome, s, e, node, name, address);
}
Operation Unreserve(int64_t s, int64_t e, const std::string& name) {
  return Op(OpKind::kReleaseReservation, Outcome::kOk, s, e, "cli", name, "");
}

std::string Joined(const std::vector<std::string>& lines) {
  std::string out;
  for (const std::string& l : lines) out += l + "\n";
  return out;
}

TEST(HistoryCheckerTest, NamesMovingBetweenHostsOnTheirOwnAddressesPass) {
  const std::vector<Operation> ops = {
      Alloc(0, 10, "n0", "web", "198.51.100.7"),
      Alloc(2, 12, "n1", "db", "198.51.100.8"),
      Free(20, 25, "n0", "web", "198.51.100.7"),
      Alloc(30, 40, "n1", "web", "198.51.100.7"),  // moved: same address
      Alloc(31, 33, "n2", "cache", "", Outcome::kRefused),
      Free(50, 55, "n1", "db", "198.51.100.8"),
  };
  EXPECT_EQ(Joined(CheckHistory(ops)), "");
  EXPECT_EQ(Joined(CheckBookAtEnd(ops, {.leased = {{"198.51.100.7", "web"}},
                                        .reserved = {{"web", "198.51.100.7"}, {"db", "198.51.100.8"}}})),
            "");
}

TEST(HistoryCheckerTest, AnAddressHeldByTwoNamesAtOnceIsAViolation) {
  const std::vector<Operation> ops = {
      Alloc(0, 10, "n0", "web", "198.51.100.7"),
      Alloc(20, 30, "n1", "db", "198.51.100.7"),  // web still holds it
      Free(40, 45, "n0", "web", "198.51.100.7"),
  };
  const std::vector<std::string> problems = CheckHistory(ops);
  ASSERT_FALSE(problems.empty());
  EXPECT_NE(problems[0].find("address 198.51.100.7 held by two names at once"), std::string::npos) << problems[0];
  EXPECT_NE(problems[0].find("allocate web 198.51.100.7 on n0"), std::string::npos) << problems[0];
  EXPECT_NE(problems[0].find("allocate db 198.51.100.7 on n1"), std::string::npos) << problems[0];
}

TEST(HistoryCheckerTest, AnAllocationConcurrentWithTheReleaseMayFollowIt) {
  // Anonymous allocations: no reservation, only holdings. The second answer came while the
  // release was under way: it may have taken effect after it.
  const std::vector<Operation> ops = {
      Alloc(0, 10, "n0", "", "198.51.100.7"),
      Free(20, 40, "n0", "", "198.51.100.7"),
      Alloc(25, 30, "n1", "", "198.51.100.7"),
  };
  EXPECT_EQ(Joined(CheckHistory(ops)), "");
  // Answered before the release was even sent: two holders at once.
  const std::vector<Operation> early = {
      Alloc(0, 10, "n0", "", "198.51.100.7"),
      Alloc(12, 15, "n1", "", "198.51.100.7"),
      Free(20, 40, "n0", "", "198.51.100.7"),
  };
  EXPECT_EQ(CheckHistory(early).size(), 1u) << Joined(CheckHistory(early));
}

TEST(HistoryCheckerTest, AnAllocationWithoutAnAnswerIsPossiblyHeldFromItsStart) {
  // The --ip allocation's answer never came; another container got the address while it may
  // have been held (it was never released).
  const std::vector<Operation> ops = {
      Alloc(0, 9000, "n0", "", "198.51.100.7", Outcome::kUnknown),
      Alloc(100, 120, "n1", "", "198.51.100.7"),
  };
  const std::vector<std::string> problems = CheckHistory(ops);
  ASSERT_EQ(problems.size(), 1u) << Joined(problems);
  EXPECT_NE(problems[0].find("possibly by [allocate (anonymous) 198.51.100.7 on n0"), std::string::npos) << problems[0];
  // Released (answered) before the other allocation: fine.
  const std::vector<Operation> released = {
      Alloc(0, 9000, "n0", "", "198.51.100.7", Outcome::kUnknown),
      Free(9100, 9200, "n0", "", "198.51.100.7"),
      Alloc(9300, 9320, "n1", "", "198.51.100.7"),
  };
  EXPECT_EQ(Joined(CheckHistory(released)), "");
}

TEST(HistoryCheckerTest, AnUnansweredAllocationOfANameHoldsItsReservedAddress) {
  // web was answered .7 before; its next allocation got no answer, and was never released.
  // An anonymous container answered .7 meanwhile shares it with web, possibly.
  const std::vector<Operation> ops = {
      Alloc(0, 10, "n0", "web", "198.51.100.7"),
      Free(20, 30, "n0", "web", "198.51.100.7"),
      Alloc(40, 9000, "n1", "web", "", Outcome::kUnknown),
      Alloc(100, 110, "n2", "", "198.51.100.7"),
  };
  const std::vector<std::string> problems = CheckHistory(ops);
  ASSERT_EQ(problems.size(), 1u) << Joined(problems);
  EXPECT_NE(problems[0].find("possibly by [allocate web ? on n1"), std::string::npos) << problems[0];
}

TEST(HistoryCheckerTest, ANameMovesToAnotherAddressOnlyAfterItsReservationIsReleased) {
  const std::vector<Operation> moved = {
      Alloc(0, 10, "n0", "web", "198.51.100.7"),
      Free(20, 30, "n0", "web", "198.51.100.7"),
      Alloc(40, 50, "n1", "web", "198.51.100.9"),
  };
  const std::vector<std::string> problems = CheckHistory(moved);
  ASSERT_EQ(problems.size(), 1u) << Joined(problems);
  EXPECT_NE(problems[0].find("name web moved to another address without its reservation released"), std::string::npos)
      << problems[0];
  std::vector<Operation> released = moved;
  released.insert(released.begin() + 2, Unreserve(32, 35, "web"));
  EXPECT_EQ(Joined(CheckHistory(released)), "");
}

TEST(HistoryCheckerTest, AReservedAddressGoesToAnotherNameOnlyAfterTheReservationIsReleased) {
  // Issue 27, Why 1: web stopped (its lease freed, its reservation kept) and a stale host gave
  // web's address to db.
  const std::vector<Operation> theft = {
      Alloc(0, 10, "host-a", "web", "198.51.100.7"),
      Free(20, 30, "host-a", "web", "198.51.100.7"),
      Alloc(40, 50, "host-b", "db", "198.51.100.7"),
  };
  const std::vector<std::string> problems = CheckHistory(theft);
  ASSERT_EQ(problems.size(), 1u) << Joined(problems);
  EXPECT_NE(problems[0].find("address 198.51.100.7 reserved for web went to another name"), std::string::npos)
      << problems[0];
  std::vector<Operation> released = theft;
  released.insert(released.begin() + 2, Unreserve(32, 35, "web"));
  EXPECT_EQ(Joined(CheckHistory(released)), "");
}

TEST(HistoryCheckerTest, TheBookAtTheEndLosesNothingAndLeavesNothingStray) {
  const std::vector<Operation> ops = {
      Alloc(0, 10, "n0", "web", "198.51.100.7"),
      Alloc(0, 10, "n1", "db", "198.51.100.8"),
      Free(20, 30, "n1", "db", "198.51.100.8"),
      Alloc(40, 9000, "n1", "cache", "", Outcome::kUnknown),
  };
  const BookAtEnd good{.leased = {{"198.51.100.7", "web"}, {"198.51.100.9", "cache"}},
                       .reserved = {{"web", "198.51.100.7"}, {"db", "198.51.100.8"}, {"cache", "198.51.100.9"}}};
  EXPECT_EQ(Joined(CheckBookAtEnd(ops, good)), "");

  BookAtEnd lost = good;
  lost.leased.erase("198.51.100.7");
  lost.reserved.erase("db");
  const std::vector<std::string> problems = CheckBookAtEnd(ops, lost);
  ASSERT_EQ(problems.size(), 2u) << Joined(problems);
  EXPECT_NE(problems[0].find("lost reservation: db was answered 198.51.100.8"), std::string::npos) << problems[0];
  EXPECT_NE(problems[1].find("lost lease: [allocate web 198.51.100.7 on n0"), std::string::npos) << problems[1];

  BookAtEnd stray = good;
  stray.leased["198.51.100.8"] = "db";  // its release was answered: the address must be free
  const std::vector<std::string> strays = CheckBookAtEnd(ops, stray);
  ASSERT_EQ(strays.size(), 1u) << Joined(strays);
  EXPECT_NE(strays[0].find("stray lease: the book leases 198.51.100.8 to db"), std::string::npos) << strays[0];
}

}  // namespace
}  // namespace smv::testing

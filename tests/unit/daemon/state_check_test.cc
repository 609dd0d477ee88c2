#include "daemon/state_check.h"

#include <gtest/gtest.h>

namespace smv::daemon {
namespace {

ipam::PoolRecord Pool(const char* subnet, int users = 1, const char* range = "") {
  ipam::PoolConfig c = *ipam::ParsePoolRequest({"l", subnet, range, {}, false});
  return {c, users};
}
IpAddress Ip(const char* s) { return *IpAddress::Parse(s); }

TEST(StateCheckTest, ConsistentStateHasNoProblems) {
  ipam::IpamSnapshot ipam{{Pool("192.0.2.0/24")},
                          {{"192.0.2.0/24", Ip("192.0.2.10"), {}, 0}},
                          {{"192.0.2.0/24", "a-0", Ip("192.0.2.10"), "", 0, 0}}};
  driver::DriverSnapshot driver{{{"n1", {}, {}, {}, false}}, {}, {{"n1", "e1", "smve1", "", "192.0.2.10/24"}}};
  EXPECT_TRUE(CheckState(ipam, driver).empty());
}

TEST(StateCheckTest, EveryKindOfDamageIsReported) {
  ipam::IpamSnapshot ipam{{Pool("192.0.2.0/24"), Pool("198.51.100.0/24", 0), Pool("192.0.2.0/24", 1, "192.0.2.0/25")},
                          {{"192.0.2.0/24", Ip("203.0.113.1"), {}, 0},      // outside
                           {"198.51.100.0/24", Ip("198.51.100.5"), {}, 0},  // inactive pool
                           {"192.0.2.0/24", Ip("192.0.2.10"), {}, 0}},
                          {{"192.0.2.0/24", "a", Ip("192.0.2.20"), "", 0, 0},
                           {"192.0.2.0/24", "b", Ip("192.0.2.20"), "", 0, 0},           // twice
                           {"nope", "c", Ip("192.0.2.30"), "", 0, 0}}};                 // no pool
  ipam.leases.push_back({"192.0.2.0/24 range 192.0.2.0/25", Ip("192.0.2.10"), {}, 0});  // leased twice
  driver::DriverSnapshot driver{{}, {}, {{"gone", "e1", "smve1", "", "192.0.2.99/24"}}};
  std::vector<std::string> problems = CheckState(ipam, driver);
  std::string all;
  for (const std::string& p : problems) all += p + "\n";
  for (const char* want :
       {"lies outside its pool's subnet", "which is not active", "leased twice", "reserved for two names",
        "that is not stored", "which is not stored", "192.0.2.99, which is not leased"}) {
    EXPECT_NE(all.find(want), std::string::npos) << want << "\n" << all;
  }
}

TEST(StateCheckTest, ANameHeldOnTwoNodesOfASharedBookIsReported) {
  auto lease = [](const char* address, const char* name, const char* node) {
    ipam::LeaseRecord l{"192.0.2.0/24", Ip(address), {}, 0};
    l.lease.name = name;
    l.lease.node = node;
    return l;
  };
  ipam::IpamSnapshot ipam{{Pool("192.0.2.0/24")},
                          {lease("192.0.2.10", "web", "host-a"), lease("192.0.2.11", "db", "host-a"),
                           lease("192.0.2.12", "db", "host-a"), lease("192.0.2.13", "web", "host-b")},
                          {}};
  const std::vector<std::string> problems = CheckState(ipam, {});
  ASSERT_EQ(problems.size(), 1u);  // db twice on one node is not this problem
  EXPECT_EQ(problems[0],
            "name web is held on two nodes in pool \"192.0.2.0/24\": 192.0.2.10 on host-a and 192.0.2.13 on host-b");
}

}  // namespace
}  // namespace smv::daemon

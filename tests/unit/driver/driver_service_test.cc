#include "driver/driver_service.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "tests/support/fake_link_ops.h"
#include "tests/support/memory_network_store.h"

namespace smv::driver {
namespace {

using smv::testing::FakeLinkOps;
using smv::testing::MemoryNetworkStore;

const std::string kNet1 = "1111111111111111111111111111111111111111111111111111111111111111";
const std::string kNet2 = "2222222222222222222222222222222222222222222222222222222222222222";
const std::string kEp1 = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const std::string kEp2 = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

IpData V4(const char* pool, const char* gw) {
  return IpData{*Prefix::Parse(pool), gw ? IpAddress::Parse(gw) : std::nullopt};
}

class DriverServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    links_.AddExisting({.name = "lo", .mtu = 65536, .up = true});
    links_.AddExisting({.name = "eth1", .kind = "veth", .mtu = 1500, .up = true});
    links_.AddExisting({.name = "eth2", .kind = "veth", .mtu = 9000, .up = false});
    Restart();
  }
  void Restart() {
    auto d = DriverService::Create(links_, store_);
    ASSERT_TRUE(d.ok()) << d.status().message();
    driver_ = std::move(d).value();
  }
  Status Create(const std::string& id, std::map<std::string, std::string> opts,
                std::vector<IpData> v4 = {V4("192.0.2.0/24", "192.0.2.1")}) {
    return driver_->CreateNetwork({id, std::move(opts), std::move(v4), {}, false});
  }

  FakeLinkOps links_;
  MemoryNetworkStore store_;
  std::unique_ptr<DriverService> driver_;
};

TEST_F(DriverServiceTest, CreatesVlanLinkAndDeletesItWithTheLastNetwork) {
  ASSERT_TRUE(Create(kNet1, {{"parent", "eth1"}, {"vlan", "228"}}).ok());
  ASSERT_TRUE(links_.Exists("eth1.228"));
  EXPECT_EQ(links_.Get("eth1.228").vlan_id, 228);
  EXPECT_TRUE(links_.Get("eth1").promisc);
  ASSERT_TRUE(Create(kNet2, {{"parent", "eth1"}, {"vlan", "228"}}, {V4("198.51.100.0/24", nullptr)}).ok());
  ASSERT_TRUE(driver_->DeleteNetwork(kNet1).ok());
  EXPECT_TRUE(links_.Exists("eth1.228"));  // still used by the second network
  EXPECT_TRUE(links_.Get("eth1").promisc);
  ASSERT_TRUE(driver_->DeleteNetwork(kNet2).ok());
  EXPECT_FALSE(links_.Exists("eth1.228"));
  EXPECT_FALSE(links_.Get("eth1").promisc);  // switched back: we switched it on
  EXPECT_EQ(store_.network_count(), 0u);
  EXPECT_EQ(store_.link_count(), 0u);
  EXPECT_TRUE(driver_->DeleteNetwork(kNet2).ok());  // idempotent
}

TEST_F(DriverServiceTest, DeleteNetworkKeepsVlanItDidNotCreateAndPromiscItDidNotSet) {
  links_.AddExisting({.name = "eth1.10", .kind = "vlan", .parent_name = "eth1", .vlan_id = 10, .up = true});
  links_.AddExisting({.name = "eth9", .kind = "veth", .up = true, .promisc = true});
  ASSERT_TRUE(Create(kNet1, {{"parent", "eth1"}, {"vlan", "10"}}).ok());
  ASSERT_TRUE(Create(kNet2, {{"parent", "eth9"}}, {V4("198.51.100.0/24", nullptr)}).ok());
  ASSERT_TRUE(driver_->DeleteNetwork(kNet1).ok());
  ASSERT_TRUE(driver_->DeleteNetwork(kNet2).ok());
  EXPECT_TRUE(links_.Exists("eth1.10"));
  EXPECT_TRUE(links_.Get("eth9").promisc);
}

TEST_F(DriverServiceTest, ExistingLinkOfThatNameThatIsSomethingElseIsRefused) {
  links_.AddExisting({.name = "eth1.228", .kind = "veth"});
  Status s = Create(kNet1, {{"parent", "eth1"}, {"vlan", "228"}});
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("interface \"eth1.228\" exists but is not VLAN 228 on \"eth1\""), std::string::npos);
  links_.AddExisting({.name = "eth1.5", .kind = "vlan", .parent_name = "eth1", .vlan_id = 6});
  s = Create(kNet1, {{"parent", "eth1"}, {"vlan", "5"}});
  EXPECT_NE(s.message().find("with id 6"), std::string::npos) << s.message();
  EXPECT_EQ(store_.network_count(), 0u);
}

TEST_F(DriverServiceTest, MissingParentListsTheInterfacesThere) {
  Status s = Create(kNet1, {{"parent", "eth7"}});
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.message(),
            "parent interface \"eth7\" not found on this host (option -o parent=eth7); interfaces here: eth1, eth2");
}

TEST_F(DriverServiceTest, AllowedParentsRefuseOthersByName) {
  driver_->SetAllowedParents({"eth2"});
  Status s = Create(kNet1, {{"parent", "eth1"}, {"vlan", "5"}});
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), Code::kPermissionDenied);
  EXPECT_NE(
      s.message().find("parent interface \"eth1\" is not allowed on this host (option -o parent=eth1); allowed: eth2"),
      std::string::npos)
      << s.message();
  EXPECT_FALSE(links_.Exists("eth1.5"));
  EXPECT_TRUE(Create(kNet2, {{"parent", "eth2"}}).ok());
}

TEST_F(DriverServiceTest, DownParentIsBroughtUpAndMtuAboveParentIsRefused) {
  ASSERT_TRUE(Create(kNet1, {{"parent", "eth2"}, {"mtu", "9000"}}).ok());
  EXPECT_TRUE(links_.Get("eth2").up);
  Status s = Create(kNet2, {{"parent", "eth1"}, {"mtu", "9000"}}, {V4("198.51.100.0/24", nullptr)});
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("the parent interface \"eth1\" has MTU 1500"), std::string::npos);
}

TEST_F(DriverServiceTest, VlanFailureLeavesNothingBehind) {
  links_.vlan_supported = false;
  const size_t before = links_.Count();
  Status s = Create(kNet1, {{"parent", "eth1"}, {"vlan", "228"}});
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("this kernel has no 802.1Q VLAN support: load the 8021q module"), std::string::npos);
  EXPECT_EQ(links_.Count(), before);
  EXPECT_FALSE(links_.Get("eth1").promisc);
  EXPECT_EQ(store_.network_count(), 0u);
}

TEST_F(DriverServiceTest, StoreFailureUndoesVlanAndPromisc) {
  store_.fail_next_apply = true;
  ASSERT_FALSE(Create(kNet1, {{"parent", "eth1"}, {"vlan", "228"}}).ok());
  EXPECT_FALSE(links_.Exists("eth1.228"));
  EXPECT_FALSE(links_.Get("eth1").promisc);
}

TEST_F(DriverServiceTest, OverlappingSubnetsOnOneVlanAreRefusedButNotAcrossVlans) {
  ASSERT_TRUE(Create(kNet1, {{"parent", "eth1"}}, {V4("192.0.2.0/24", nullptr)}).ok());
  Status s = Create(kNet2, {{"parent", "eth1"}}, {V4("192.0.2.128/25", nullptr)});
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("overlaps subnet 192.0.2.0/24"), std::string::npos);
  EXPECT_TRUE(Create(kNet2, {{"parent", "eth1"}, {"vlan", "3"}}, {V4("192.0.2.128/25", nullptr)}).ok());
}

TEST_F(DriverServiceTest, EndpointLifecycleAndJoinAnswer) {
  ASSERT_TRUE(Create(kNet1, {{"parent", "eth1"},
                             {"mtu", "1400"},
                             {"macvlan_mode", "private"},
                             {"routes", "10.254.0.0/16 via 192.0.2.254; 2001:db8::/32"}})
                  .ok());
  Result<CreateEndpointResult> ep = driver_->CreateEndpoint({kNet1, kEp1, "192.0.2.10/24", "", ""});
  ASSERT_TRUE(ep.ok()) << ep.status().message();
  EXPECT_EQ(ep->mac, "02:42:c0:00:02:0a");  // no MAC in the request: ours, derived from the IP
  const nl::LinkInfo& link = links_.Get("smvaaaaaaaaaaa");
  EXPECT_EQ(link.parent_name, "eth1");
  EXPECT_EQ(link.mtu, 1400u);
  EXPECT_EQ(link.macvlan_mode, "private");
  Result<JoinResult> join = driver_->Join(kNet1, kEp1, "/var/run/docker/netns/abc");
  ASSERT_TRUE(join.ok()) << join.status().message();
  EXPECT_EQ(join->src_name, "smvaaaaaaaaaaa");
  EXPECT_EQ(join->gateway_v4->ToString(), "192.0.2.1");
  ASSERT_EQ(join->routes.size(), 1u);  // the IPv6 route is left out: no IPv6 address
  EXPECT_EQ(driver_->FindEndpoint(kEp1)->sandbox_key, "/var/run/docker/netns/abc");
  EXPECT_TRUE(driver_->Leave(kNet1, kEp1).ok());
  EXPECT_TRUE(driver_->DeleteEndpoint(kNet1, kEp1).ok());
  EXPECT_FALSE(links_.Exists("smvaaaaaaaaaaa"));
  EXPECT_TRUE(driver_->DeleteEndpoint(kNet1, kEp1).ok());  // twice: still fine
  EXPECT_EQ(store_.endpoint_count(), 0u);
}

// The MAC a name gets comes from its (sticky) address: same address, same MAC, on any host.
TEST_F(DriverServiceTest, AnEndpointWithoutAMacGetsOneDerivedFromItsAddressAlsoOnIpv6Only) {
  ASSERT_TRUE(Create(kNet1, {{"parent", "eth1"}}).ok());
  auto mac_of = [&](const std::string& v4, const std::string& v6) {
    Result<CreateEndpointResult> ep = driver_->CreateEndpoint({kNet1, kEp1, v4, v6, ""});
    EXPECT_TRUE(ep.ok()) << ep.status().message();
    EXPECT_TRUE(driver_->DeleteEndpoint(kNet1, kEp1).ok());
    return ep.ok() ? ep->mac : "";
  };
  EXPECT_EQ(mac_of("192.0.2.10/24", "2001:db8::a/64"), "02:42:c0:00:02:0a");
  const std::string v6_only = mac_of("", "2001:db8:228::a/64");
  EXPECT_EQ(v6_only.substr(0, 6), "02:42:");
  EXPECT_EQ(mac_of("", "2001:db8:228::a/64"), v6_only) << "the same address gives the same MAC";
  EXPECT_NE(mac_of("", "2001:db8:229::a/64"), v6_only) << "another subnet's ::a gives another MAC";
  EXPECT_NE(mac_of("", "2001:db8:228::b/64"), v6_only);
}

TEST_F(DriverServiceTest, GivenMacIsUsedAndNotReturned) {
  ASSERT_TRUE(Create(kNet1, {{"parent", "eth1"}}).ok());
  Result<CreateEndpointResult> ep = driver_->CreateEndpoint({kNet1, kEp1, "192.0.2.10/24", "", "02:00:00:00:02:28"});
  ASSERT_TRUE(ep.ok());
  EXPECT_EQ(ep->mac, "");
  EXPECT_EQ(links_.Get("smvaaaaaaaaaaa").mac, "02:00:00:00:02:28");
}

TEST_F(DriverServiceTest, NoDefaultRouteOptionAndInternalNetworksGiveNoGateway) {
  ASSERT_TRUE(Create(kNet1, {{"parent", "eth1"}, {"default_route", "off"}}).ok());
  ASSERT_TRUE(driver_->CreateEndpoint({kNet1, kEp1, "192.0.2.10/24", "", ""}).ok());
  EXPECT_FALSE(driver_->Join(kNet1, kEp1, "k")->gateway_v4.has_value());
  ASSERT_TRUE(driver_
                  ->CreateNetwork(
                      {kNet2, {{"parent", "eth1"}, {"vlan", "9"}}, {V4("198.51.100.0/24", "198.51.100.1")}, {}, true})
                  .ok());
  ASSERT_TRUE(driver_->CreateEndpoint({kNet2, kEp2, "198.51.100.5/24", "", ""}).ok());
  EXPECT_FALSE(driver_->Join(kNet2, kEp2, "k")->gateway_v4.has_value());
}

TEST_F(DriverServiceTest, FailedCreateEndpointLeavesNoLinkAndNoRecord) {
  ASSERT_TRUE(Create(kNet1, {{"parent", "eth1"}}).ok());
  const size_t before = links_.Count();
  store_.fail_next_apply = true;
  ASSERT_FALSE(driver_->CreateEndpoint({kNet1, kEp1, "192.0.2.10/24", "", ""}).ok());
  EXPECT_EQ(links_.Count(), before);
  links_.fail_macvlan = true;
  Result<CreateEndpointResult> r = driver_->CreateEndpoint({kNet1, kEp1, "192.0.2.10/24", "", ""});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("on \"eth1\""), std::string::npos);
  EXPECT_EQ(store_.endpoint_count(), 0u);
  EXPECT_EQ(driver_->CreateEndpoint({kNet2, kEp1, "", "", ""}).status().code(), Code::kNotFound);
}

TEST_F(DriverServiceTest, ReconcileRecreatesVlanDropsStrayEndpointsAndOrphanLinks) {
  ASSERT_TRUE(Create(kNet1, {{"parent", "eth1"}, {"vlan", "228"}}).ok());
  ASSERT_TRUE(driver_->CreateEndpoint({kNet1, kEp1, "192.0.2.10/24", "", ""}).ok());
  // A host reboot: the VLAN link and promiscuous mode are gone; a crash left an orphan link.
  ASSERT_TRUE(links_.Delete("smvaaaaaaaaaaa").ok());
  ASSERT_TRUE(links_.Delete("eth1.228").ok());
  ASSERT_TRUE(links_.SetPromisc("eth1", false).ok());
  links_.AddExisting({.name = "smvccccccccccc", .kind = "macvlan", .parent_name = "eth1"});
  links_.AddExisting({.name = "smvuserlink", .kind = "macvlan", .parent_name = "eth1"});
  Restart();
  ReconcileReport report = driver_->Reconcile();
  EXPECT_EQ(report.vlan_links_recreated, 1);
  EXPECT_EQ(report.orphan_links_deleted, 1);
  EXPECT_TRUE(report.problems.empty());
  EXPECT_TRUE(links_.Exists("eth1.228"));
  EXPECT_TRUE(links_.Get("eth1").promisc);
  EXPECT_FALSE(links_.Exists("smvccccccccccc"));
  EXPECT_TRUE(links_.Exists("smvuserlink"));  // not of our naming: left alone
  ASSERT_TRUE(driver_->DeleteNetwork(kNet1).ok());
  EXPECT_FALSE(links_.Exists("eth1.228"));
}

// -o host_ip: a host-side bridge-mode macvlan with the address, a host route per joined
// container, all rebuilt by Reconcile (reboot) and removed with the network.
TEST_F(DriverServiceTest, HostIpGivesTheHostALinkAndARoutePerContainerRebuiltAtStart) {
  ASSERT_TRUE(Create(kNet1, {{"parent", "eth1"}, {"vlan", "228"}, {"host_ip", "192.0.2.253"}}).ok());
  const std::string host_link = HostLinkName(kNet1);
  EXPECT_EQ(host_link, "smvh11111111111");
  ASSERT_TRUE(links_.Exists(host_link));
  EXPECT_EQ(links_.Get(host_link).parent_name, "eth1.228");
  EXPECT_EQ(links_.Get(host_link).macvlan_mode, "bridge");
  EXPECT_EQ(links_.Get(host_link).mac, "02:42:c0:00:02:fd");  // from host_ip: stable across re-creation
  EXPECT_TRUE(links_.Get(host_link).up);
  EXPECT_TRUE(links_.tuned.contains(host_link));
  EXPECT_EQ(links_.addresses[host_link], std::set<std::string>{"192.0.2.253"});
  ASSERT_TRUE(driver_->CreateEndpoint({kNet1, kEp1, "192.0.2.10/24", "", ""}).ok());
  EXPECT_TRUE(links_.routes.empty()) << "routed at Join, when the container is there";
  ASSERT_TRUE(driver_->Join(kNet1, kEp1, "/var/run/docker/netns/a").ok());
  EXPECT_TRUE(links_.routes.contains({"192.0.2.10", host_link}));
  ASSERT_TRUE(links_.Delete("smvaaaaaaaaaaa").ok());  // dockerd moved it into the container

  ASSERT_TRUE(links_.Delete(host_link).ok());  // a reboot, or someone deleted it
  Restart();
  EXPECT_EQ(driver_->Reconcile().host_links_recreated, 1);
  EXPECT_EQ(links_.addresses[host_link], std::set<std::string>{"192.0.2.253"});
  EXPECT_TRUE(links_.routes.contains({"192.0.2.10", host_link}));

  ASSERT_TRUE(driver_->DeleteEndpoint(kNet1, kEp1).ok());
  EXPECT_TRUE(links_.routes.empty());
  ASSERT_TRUE(driver_->DeleteNetwork(kNet1).ok());
  EXPECT_FALSE(links_.Exists(host_link));
  EXPECT_FALSE(links_.Exists("eth1.228"));
}

TEST_F(DriverServiceTest, AWrongHostIpIsRefusedNamingItAndLeavesNothingBehind) {
  const size_t links_before = links_.Count();
  struct Case {
    std::map<std::string, std::string> opts;
    std::string text;
  } cases[] = {
      {{{"parent", "eth1"}, {"host_ip", "198.51.100.1"}},
       "invalid value \"198.51.100.1\" for option \"host_ip\": want an address inside the network's subnet "
       "(192.0.2.0/24)"},
      {{{"parent", "eth1"}, {"host_ip", "192.0.2.1"}}, "it is the network's gateway"},
      {{{"parent", "eth1"}, {"host_ip", "192.0.2.255"}}, "network or broadcast address of 192.0.2.0/24"},
      {{{"parent", "eth1"}, {"host_ip", "192.0.2.253"}, {"macvlan_mode", "private"}},
       "host access needs macvlan_mode=bridge, this network is private"},
      {{{"parent", "eth1"}, {"host_ip", "host"}}, "invalid value \"host\" for option \"host_ip\""},
  };
  for (const Case& c : cases) {
    Status s = Create(kNet1, c.opts);
    ASSERT_FALSE(s.ok()) << c.text;
    EXPECT_EQ(s.code(), Code::kInvalidArgument);
    EXPECT_NE(s.message().find(c.text), std::string::npos) << s.message();
  }
  EXPECT_EQ(links_.Count(), links_before);
  EXPECT_EQ(store_.network_count(), 0u);
  // The example is an address of the user's own subnet, not the documentation's.
  Status other =
      Create(kNet1, {{"parent", "eth1"}, {"host_ip", "192.0.2.9"}}, {V4("198.51.100.0/24", "198.51.100.254")});
  EXPECT_NE(other.message().find("(example: -o host_ip=198.51.100.253)"), std::string::npos) << other.message();
  Status at_gateway =
      Create(kNet1, {{"parent", "eth1"}, {"host_ip", "203.0.113.253"}}, {V4("203.0.113.0/24", "203.0.113.253")});
  EXPECT_NE(at_gateway.message().find("(example: -o host_ip=203.0.113.252)"), std::string::npos)
      << at_gateway.message();
}

// Two daemons (two state directories) in one network namespace: start-up reconcile deletes only
// orphans of its own or untagged ones (an older version's), never another instance's links.
TEST_F(DriverServiceTest, ReconcileSweepsOnlyItsOwnAndUntaggedOrphans) {
  links_.owner_tag = "static-macvlan:00000000000000a1";
  links_.AddExisting({.name = "smvh99999999999",
                      .kind = "macvlan",
                      .parent_name = "eth1",
                      .alias = "static-macvlan:00000000000000b2"});
  links_.AddExisting(
      {.name = "smvccccccccccc", .kind = "macvlan", .parent_name = "eth1", .alias = "static-macvlan:00000000000000b2"});
  links_.AddExisting(
      {.name = "smvddddddddddd", .kind = "macvlan", .parent_name = "eth1", .alias = "static-macvlan:00000000000000a1"});
  links_.AddExisting({.name = "smveeeeeeeeeee", .kind = "ipvlan", .parent_name = "eth1"});
  Restart();
  ReconcileReport report = driver_->Reconcile();
  EXPECT_EQ(report.orphan_links_deleted, 2);
  EXPECT_TRUE(report.problems.empty()) << "another instance's links are no failure";
  EXPECT_TRUE(links_.Exists("smvh99999999999"));
  EXPECT_TRUE(links_.Exists("smvccccccccccc"));
  EXPECT_FALSE(links_.Exists("smvddddddddddd"));
  EXPECT_FALSE(links_.Exists("smveeeeeeeeeee"));
  // What this instance creates carries its tag.
  ASSERT_TRUE(Create(kNet1, {{"parent", "eth1"}}).ok());
  ASSERT_TRUE(driver_->CreateEndpoint({kNet1, kEp1, "192.0.2.10/24", "", ""}).ok());
  EXPECT_EQ(links_.Get("smvaaaaaaaaaaa").alias, "static-macvlan:00000000000000a1");
}

TEST_F(DriverServiceTest, AHostLinkNoNetworkOwnsIsSweptAtStart) {
  links_.AddExisting({.name = "smvh99999999999", .kind = "macvlan", .parent_name = "eth1"});
  Restart();
  EXPECT_EQ(driver_->Reconcile().orphan_links_deleted, 1);
  EXPECT_FALSE(links_.Exists("smvh99999999999"));
}

// Every lookup that fails at start is a problem in the report, and what it could not see is
// left as it was (no VLAN link made over one that may exist, no endpoint dropped).
TEST_F(DriverServiceTest, ReconcileReportsEveryLookupThatFails) {
  ASSERT_TRUE(Create(kNet1, {{"parent", "eth1"}, {"vlan", "228"}, {"host_ip", "192.0.2.253"}}).ok());
  ASSERT_TRUE(Create(kNet2, {{"parent", "eth2"}}, {V4("198.51.100.0/24", nullptr)}).ok());
  ASSERT_TRUE(driver_->CreateEndpoint({kNet1, kEp1, "192.0.2.10/24", "", ""}).ok());
  ASSERT_TRUE(driver_->Join(kNet1, kEp1, "/var/run/docker/netns/a").ok());
  ASSERT_TRUE(links_.Delete("eth1.228").ok());  // would be recreated, were its lookup not failing
  links_.fail_find = {"eth1.228", HostLinkName(kNet1), "smvaaaaaaaaaaa", "eth2"};
  Restart();
  ReconcileReport report = driver_->Reconcile();
  ASSERT_EQ(report.problems.size(), 4u) << ::testing::PrintToString(report.problems);
  for (const std::string& name : std::vector<std::string>{"eth1.228", HostLinkName(kNet1), "smvaaaaaaaaaaa", "eth2"}) {
    const std::string quoted = fmt::format("\"{}\" could not be looked up: injected lookup failure", name);
    EXPECT_TRUE(std::any_of(report.problems.begin(), report.problems.end(),
                            [&](const std::string& p) { return p.find(quoted) != std::string::npos; }))
        << name << ": " << ::testing::PrintToString(report.problems);
  }
  EXPECT_EQ(report.vlan_links_recreated, 0);
  EXPECT_FALSE(links_.Exists("eth1.228"));
  EXPECT_TRUE(report.torn_down.empty());
  EXPECT_TRUE(driver_->FindEndpoint(kEp1).has_value());
}

TEST_F(DriverServiceTest, ReconcileReportsEveryDeletionThatFails) {
  ASSERT_TRUE(Create(kNet1, {{"parent", "eth1"}}).ok());
  ASSERT_TRUE(driver_->CreateEndpoint({kNet1, kEp1, "192.0.2.10/24", "", ""}).ok());
  // Joined, and its link is still in the host: the container is gone, its teardown was lost.
  ASSERT_TRUE(driver_->Join(kNet1, kEp1, "/var/run/docker/netns/a").ok());
  links_.AddExisting({.name = "smvccccccccccc", .kind = "macvlan", .parent_name = "eth1"});   // an orphan
  links_.AddExisting({.name = "smvh99999999999", .kind = "macvlan", .parent_name = "eth1"});  // an orphan host link
  links_.fail_delete = {"smvaaaaaaaaaaa", "smvccccccccccc", "smvh99999999999"};
  Restart();
  ReconcileReport report = driver_->Reconcile();
  ASSERT_EQ(report.problems.size(), 3u) << ::testing::PrintToString(report.problems);
  EXPECT_NE(
      report.problems[0].find("link smvaaaaaaaaaaa is back in the host but not deleted: injected deletion failure"),
      std::string::npos);
  EXPECT_NE(report.problems[1].find("orphan link smvccccccccccc not deleted: injected deletion failure"),
            std::string::npos);
  EXPECT_NE(report.problems[2].find("orphan link smvh99999999999 not deleted: injected deletion failure"),
            std::string::npos);
  EXPECT_EQ(report.orphan_links_deleted, 0);
  EXPECT_TRUE(report.torn_down.empty());
  EXPECT_TRUE(driver_->FindEndpoint(kEp1).has_value());  // kept: its link is still there

  links_.fail_delete.clear();  // the next start succeeds
  Restart();
  report = driver_->Reconcile();
  EXPECT_TRUE(report.problems.empty()) << ::testing::PrintToString(report.problems);
  EXPECT_EQ(report.orphan_links_deleted, 3);
  EXPECT_EQ(report.torn_down.size(), 1u);
}

// An endpoint whose network record is gone is dropped even when its link cannot be deleted: that
// failure is a problem, and the sweep, which now finds the link an orphan, reports its own.
TEST_F(DriverServiceTest, ReconcileReportsTheLinkOfADroppedEndpointThatIsNotDeleted) {
  ASSERT_TRUE(Create(kNet1, {{"parent", "eth1"}}).ok());
  ASSERT_TRUE(driver_->CreateEndpoint({kNet1, kEp1, "192.0.2.10/24", "", ""}).ok());
  ASSERT_TRUE(store_.Apply({.delete_networks = {kNet1}}).ok());  // the network's record is lost
  links_.fail_delete = {"smvaaaaaaaaaaa"};
  Restart();
  ReconcileReport report = driver_->Reconcile();
  EXPECT_EQ(report.endpoints_dropped, 1);
  EXPECT_FALSE(driver_->FindEndpoint(kEp1).has_value());
  ASSERT_EQ(report.problems.size(), 2u) << ::testing::PrintToString(report.problems);
  EXPECT_NE(
      report.problems[0].find("endpoint aaaaaaaaaaaa: link smvaaaaaaaaaaa not deleted: injected deletion failure"),
      std::string::npos);
  EXPECT_NE(report.problems[1].find("orphan link smvaaaaaaaaaaa not deleted: injected deletion failure"),
            std::string::npos);
  EXPECT_TRUE(links_.Exists("smvaaaaaaaaaaa"));
}

TEST_F(DriverServiceTest, ReconcileReportsALinkListThatFails) {
  links_.AddExisting({.name = "smvccccccccccc", .kind = "macvlan", .parent_name = "eth1"});
  links_.fail_list = true;
  Restart();
  ReconcileReport report = driver_->Reconcile();
  ASSERT_EQ(report.problems.size(), 1u);
  EXPECT_NE(report.problems[0].find("links not listed, no orphan swept: injected list failure"), std::string::npos);
  EXPECT_TRUE(links_.Exists("smvccccccccccc"));
}

// -o ipvlan_mode: ipvlan links carrying the parent's MAC, no promiscuous parent, no MAC of their own.
TEST_F(DriverServiceTest, IpvlanNetworksGiveContainersIpvlanLinksWithTheParentsMac) {
  links_.AddExisting({.name = "eth7", .kind = "veth", .up = true, .mac = "52:54:00:12:34:56"});
  ASSERT_TRUE(Create(kNet1, {{"parent", "eth7"}, {"ipvlan_mode", "l2"}}).ok());
  EXPECT_FALSE(links_.Get("eth7").promisc) << "one MAC on the wire needs no promiscuous parent";
  Result<CreateEndpointResult> ep = driver_->CreateEndpoint({kNet1, kEp1, "192.0.2.10/24", "", ""});
  ASSERT_TRUE(ep.ok()) << ep.status().message();
  EXPECT_EQ(ep->mac, "") << "dockerd keeps the link's own MAC";
  const nl::LinkInfo& link = links_.Get("smvaaaaaaaaaaa");
  EXPECT_EQ(link.kind, "ipvlan");
  EXPECT_EQ(link.macvlan_mode, "l2");
  EXPECT_EQ(link.parent_name, "eth7");
  EXPECT_EQ(driver_->FindEndpoint(kEp1)->mac, "52:54:00:12:34:56");
  Result<CreateEndpointResult> with_mac =
      driver_->CreateEndpoint({kNet1, kEp2, "192.0.2.11/24", "", "02:00:00:00:00:01"});
  ASSERT_FALSE(with_mac.ok());
  EXPECT_NE(with_mac.status().message().find("gives every container its parent's MAC"), std::string::npos);
  EXPECT_FALSE(links_.Exists("smvbbbbbbbbbbb"));
}

TEST(IpvlanOptionsTest, MacvlanOnlyOptionsAndWrongModesAreRefusedByName) {
  Result<NetworkOptions> l3 = ParseNetworkOptions({{"parent", "eth1"}, {"ipvlan_mode", "l3"}});
  ASSERT_TRUE(l3.ok());
  EXPECT_EQ(l3->ipvlan, IpvlanMode::kL3);
  EXPECT_FALSE(l3->promisc);
  Result<NetworkOptions> asked = ParseNetworkOptions({{"parent", "eth1"}, {"ipvlan_mode", "l2"}, {"promisc", "on"}});
  ASSERT_TRUE(asked.ok());
  EXPECT_TRUE(asked->promisc);
  Result<NetworkOptions> bad = ParseNetworkOptions({{"parent", "eth1"}, {"ipvlan_mode", "l4"}});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("invalid value \"l4\" for option \"ipvlan_mode\": want l2 or l3"),
            std::string::npos);
  Result<NetworkOptions> both =
      ParseNetworkOptions({{"parent", "eth1"}, {"ipvlan_mode", "l2"}, {"macvlan_mode", "bridge"}});
  ASSERT_FALSE(both.ok());
  EXPECT_NE(
      both.status().message().find("option \"macvlan_mode\" is for macvlan networks; this one has -o ipvlan_mode=l2"),
      std::string::npos);
  EXPECT_FALSE(ParseNetworkOptions({{"parent", "eth1"}, {"ipvlan_mode", "l2"}, {"host_ip", "192.0.2.9"}}).ok());
}

}  // namespace
}  // namespace smv::driver

// doctor's checks on fakes: the kernel's links (FakeLinkOps), the engine (FakeEngine) and the
// stored networks as values.

#include "daemon/cli/doctor_checks.h"

#include <gtest/gtest.h>

#include "tests/support/fake_engine.h"
#include "tests/support/fake_link_ops.h"

namespace smv::daemon {
namespace {

const std::string kLan = "1111111111111111111111111111111111111111111111111111111111111111";
const std::string kWan = "2222222222222222222222222222222222222222222222222222222222222222";

driver::NetworkRecord Network(const std::string& id, const std::string& subnet,
                              std::map<std::string, std::string> options) {
  return {.id = id, .options = std::move(options), .ipv4 = {{*Prefix::Parse(subnet), std::nullopt}}, .ipv6 = {}};
}

// The checks of one kind, as "what network ok: detail | fix" lines.
std::vector<std::string> Lines(const std::vector<DoctorCheck>& checks, const std::string& what) {
  std::vector<std::string> out;
  for (const DoctorCheck& c : checks) {
    if (c.what == what) out.push_back(c.network + (c.ok ? " ok: " : " FAIL: ") + c.detail + " | " + c.fix);
  }
  return out;
}

TEST(DoctorChecks, ADownParentAndAMissingHostLinkAreFailuresWithTheirFix) {
  testing::FakeLinkOps links;
  links.AddExisting({.name = "eth1", .kind = "", .mtu = 1500, .up = false});
  testing::FakeEngine engine;
  engine.networks[kLan] = {.id = kLan, .name = "lan"};
  const std::vector<DoctorCheck> checks =
      CheckNetworks({.records = {Network(kLan, "192.0.2.0/24", {{"parent", "eth1"}, {"host_ip", "192.0.2.250"}})},
                     .links = &links,
                     .engine = &engine});
  EXPECT_EQ(Lines(checks, "parent"), std::vector<std::string>{"lan FAIL: eth1 is down | ip link set eth1 up"});
  EXPECT_TRUE(Lines(checks, "carrier").empty()) << "no carrier check on a link that is down";
  ASSERT_EQ(Lines(checks, "host_ip").size(), 1u);
  EXPECT_NE(Lines(checks, "host_ip")[0].find("FAIL: host link"), std::string::npos) << Lines(checks, "host_ip")[0];
  EXPECT_NE(Lines(checks, "host_ip")[0].find("is missing"), std::string::npos) << Lines(checks, "host_ip")[0];
}

TEST(DoctorChecks, OverlapsOnOneWireAreFoundAmongOursAndWithDockersMacvlan) {
  testing::FakeLinkOps links;
  links.AddExisting({.name = "eth1", .kind = "", .mtu = 1500, .up = true, .carrier = true});
  const std::vector<DoctorCheck> checks =
      CheckNetworks({.records = {Network(kLan, "192.0.2.0/24", {{"parent", "eth1"}}),
                                 Network(kWan, "192.0.2.128/25", {{"parent", "eth1"}})},
                     .links = &links,
                     .engine = nullptr,  // the engine is down: networks are named by short id
                     .docker_networks = {{"old", "macvlan", "eth1", {"192.0.2.128/28"}},
                                         {"elsewhere", "macvlan", "eth2", {"192.0.2.0/28"}},
                                         {"bridge", "bridge", "", {"192.0.2.0/24"}}}});
  EXPECT_EQ(Lines(checks, "overlap"),
            (std::vector<std::string>{
                "111111111111 FAIL: 192.0.2.0/24 overlaps 192.0.2.128/25 of 222222222222 on eth1 | docker network rm "
                "222222222222",
                "111111111111 FAIL: 192.0.2.0/24 overlaps 192.0.2.128/28 of Docker's macvlan network old on eth1 | "
                "docker network rm old   (or move one network to another subnet)",
                "222222222222 FAIL: 192.0.2.128/25 overlaps 192.0.2.128/28 of Docker's macvlan network old on eth1 | "
                "docker network rm old   (or move one network to another subnet)"}));
  EXPECT_EQ(Lines(checks, "parent").size(), 2u);
  EXPECT_EQ(Lines(checks, "carrier").size(), 2u);
}

TEST(DoctorChecks, ANetworkNamedWhileTheEngineIsDownIsNotSaidToBeNoneOfOurs) {
  testing::FakeLinkOps links;
  const std::vector<DoctorCheck> checks = CheckNetworks(
      {.records = {}, .only = "lan", .links = &links, .engine = nullptr, .docker_host = "unix:///run/d.sock"});
  ASSERT_EQ(checks.size(), 1u);
  EXPECT_EQ(checks[0].what, "networks");
  EXPECT_NE(checks[0].detail.find("dockerd at unix:///run/d.sock does not answer"), std::string::npos)
      << checks[0].detail;
}

TEST(DoctorChecks, EngineAndRegistrationChecksReadTheEnginesAnswers) {
  EXPECT_FALSE(EngineAnswers(Unavailable("timed out"), "unix:///d").ok);
  const DoctorCheck old = EngineAnswers(std::string("20.10.24"), "unix:///d");
  EXPECT_TRUE(old.ok);
  EXPECT_NE(old.detail.find("compose pin"), std::string::npos) << old.detail;
  EXPECT_NE(EngineAnswers(std::string("29.0.1"), "unix:///d").detail.find("names are sent"), std::string::npos);
  const DoctorCheck unknown = DockerdRegistered(Unavailable("engine API /info: timed out"), "/x.sock");
  EXPECT_FALSE(unknown.ok);
  EXPECT_EQ(unknown.fix, "docker info");
}

}  // namespace
}  // namespace smv::daemon

#include "daemon/cli/engine_advice.h"

#include <gtest/gtest.h>

namespace smv::daemon {
namespace {

const std::set<std::string> kOurs{"smv:latest"};

TEST(EngineAdviceTest, VersionsParseAsDebianAndDockerSpellThem) {
  ASSERT_TRUE(ParseEngineVersion("20.10.24+dfsg1"));
  EXPECT_EQ(ParseEngineVersion("20.10.24+dfsg1")->minor, 10);
  EXPECT_EQ(ParseEngineVersion("29.0.2")->patch, 2);
  EXPECT_EQ(ParseEngineVersion("29.0.0-rc.2")->major, 29);
  EXPECT_EQ(ParseEngineVersion("28.5")->patch, 0);
  EXPECT_FALSE(ParseEngineVersion("dev"));
  EXPECT_FALSE(ParseEngineVersion("29"));
  EXPECT_FALSE(ParseEngineVersion(""));
}

TEST(EngineAdviceTest, OnlyDocker29_0_0To29_0_2AreFlaggedAsCrashingWithRemoteDrivers) {
  for (const char* bad : {"29.0.0", "29.0.1", "29.0.2", "29.0.0-rc.1"}) {
    const auto defect = EngineVersionDefect(*ParseEngineVersion(bad));
    ASSERT_TRUE(defect) << bad;
    EXPECT_FALSE(defect->ok);
    EXPECT_NE(defect->detail.find("crashes dockerd with remote network drivers"), std::string::npos);
    EXPECT_EQ(defect->fix, "upgrade Docker to 29.0.3 or later");
  }
  for (const char* fine : {"29.0.3", "29.1.0", "28.5.2", "20.10.24", "30.0.0"}) {
    EXPECT_FALSE(EngineVersionDefect(*ParseEngineVersion(fine))) << fine;
  }
}

TEST(EngineAdviceTest, OnDocker29ANetworkOfOursWithoutAGatewayIsWarnedAbout) {
  const std::vector<EngineNetworkView> nets{
      {"nogw", "smv:latest", "local", "", false, "smv:latest", {""}},
      {"withgw", "smv:latest", "local", "", false, "smv:latest", {"192.0.2.254"}},
      {"theirs", "macvlan", "local", "", false, "default", {""}},
      {"cfg", "null", "local", "", true, "smv:latest", {""}},
  };
  const auto on29 = GatewayAdvice({29, 1, 0}, nets, kOurs);
  ASSERT_EQ(on29.size(), 1u);
  EXPECT_EQ(on29[0].network, "nogw");
  EXPECT_NE(on29[0].detail.find("no default gateway unless --gateway"), std::string::npos);
  EXPECT_TRUE(GatewayAdvice({28, 5, 2}, nets, kOurs).empty());
}

TEST(EngineAdviceTest, ASwarmNetworkWithoutConfigFromIsFlaggedWithTheRecipe) {
  const auto advice = SwarmNetworkAdvice({{"swnet", "smv:latest", "swarm", "", false, "default", {}}}, kOurs);
  ASSERT_EQ(advice.size(), 1u);
  EXPECT_FALSE(advice[0].ok);
  EXPECT_NE(advice[0].detail.find("without --config-from"), std::string::npos);
  EXPECT_NE(advice[0].fix.find("--scope swarm --config-from swnet-config swnet"), std::string::npos);
}

TEST(EngineAdviceTest, TheConfigOnlyNetworkMustBeHereAndUseOurIpam) {
  const EngineNetworkView swarm_net{"swnet", "smv:latest", "swarm", "cfg", false, "", {}};
  const auto missing = SwarmNetworkAdvice({swarm_net}, kOurs);
  ASSERT_EQ(missing.size(), 1u);
  EXPECT_FALSE(missing[0].ok);
  EXPECT_NE(missing[0].detail.find("no config-only network cfg"), std::string::npos);
  EXPECT_NE(missing[0].fix.find("--config-only --ipam-driver smv:latest"), std::string::npos);

  const auto docker_ipam = SwarmNetworkAdvice({swarm_net, {"cfg", "null", "local", "", true, "default", {}}}, kOurs);
  ASSERT_EQ(docker_ipam.size(), 1u);
  EXPECT_FALSE(docker_ipam[0].ok);
  EXPECT_NE(docker_ipam[0].detail.find("two nodes can hand out one address"), std::string::npos);

  const auto good = SwarmNetworkAdvice({swarm_net, {"cfg", "null", "local", "", true, "smv:latest", {}}}, kOurs);
  ASSERT_EQ(good.size(), 1u);
  EXPECT_TRUE(good[0].ok);
}

TEST(EngineAdviceTest, LocalNetworksAndOtherDriversAreNotSwarmAdvice) {
  EXPECT_TRUE(SwarmNetworkAdvice({{"a", "smv:latest", "local", "", false, "smv:latest", {}},
                                  {"b", "overlay", "swarm", "", false, "default", {}}},
                                 kOurs)
                  .empty());
}

TEST(EngineAdviceTest, EveryActiveReadyNodeWithoutThePluginIsNamedManagersToo) {
  const std::vector<SwarmNodeView> nodes{
      {"m1", "manager", "active", "ready", {"bridge", "smv:latest"}},
      {"m2", "manager", "active", "ready", {"bridge", "overlay"}},
      {"w1", "worker", "drain", "ready", {"bridge"}},
      {"w2", "worker", "active", "down", {"bridge"}},
      {"w3", "worker", "active", "ready", {}},
  };
  const auto advice = SwarmNodeAdvice(nodes, kOurs, "docker plugin install ...");
  ASSERT_EQ(advice.size(), 3u);
  EXPECT_TRUE(advice[0].ok);
  EXPECT_FALSE(advice[1].ok);
  EXPECT_NE(advice[1].detail.find("node m2 (manager)"), std::string::npos);
  EXPECT_NE(advice[1].fix.find("on m2: docker plugin install"), std::string::npos);
  EXPECT_FALSE(advice[2].ok);
  EXPECT_NE(advice[2].detail.find("node w3 (worker)"), std::string::npos);
}

}  // namespace
}  // namespace smv::daemon

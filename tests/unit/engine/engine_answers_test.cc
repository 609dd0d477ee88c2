// The Engine API's answers, shaped as dockerd 20.10 sends them (trimmed to the fields read),
// turned into plain values.
#include "engine/engine_answers.h"

#include <gtest/gtest.h>

namespace smv::engine {
namespace {

TEST(EngineAnswers, NetworkInspectListsEndpointsWithBareAddresses) {
  Result<EngineNetwork> n = ParseNetworkInspect(R"({
    "Name": "lan", "Id": "7d86d31b1478", "Driver": "static-macvlan",
    "IPAM": {"Driver": "static-macvlan", "Options": null,
             "Config": [{"Subnet": "192.0.2.0/24", "Gateway": "192.0.2.1"}, {"Subnet": "2001:db8::/64"}]},
    "Containers": {
      "4f1c": {"Name": "web", "EndpointID": "e1", "MacAddress": "02:42:c0:00:02:0a",
               "IPv4Address": "192.0.2.10/24", "IPv6Address": "2001:db8::a/64"},
      "9a2b": {"Name": "db", "EndpointID": "e2", "IPv4Address": "192.0.2.11/24", "IPv6Address": ""}},
    "Options": {"parent": "eth1"},
    "Labels": {"com.docker.compose.network": "lan", "odd": 7}})");
  ASSERT_TRUE(n.ok()) << n.status().message();
  EXPECT_EQ(n->id, "7d86d31b1478");
  EXPECT_EQ(n->name, "lan");
  EXPECT_EQ(n->subnets, (std::vector<std::string>{"192.0.2.0/24", "2001:db8::/64"}));
  EXPECT_EQ(n->labels, (std::map<std::string, std::string>{{"com.docker.compose.network", "lan"}}));  // 7 left out
  ASSERT_EQ(n->endpoints.size(), 2u);
  EXPECT_EQ(n->endpoints[0].endpoint_id, "e1");
  EXPECT_EQ(n->endpoints[0].name, "web");
  EXPECT_EQ(n->endpoints[0].ipv4, "192.0.2.10");
  EXPECT_EQ(n->endpoints[0].ipv6, "2001:db8::a");
  EXPECT_EQ(n->endpoints[0].container_id, "4f1c");  // the key of its entry
  EXPECT_EQ(n->endpoints[1].ipv6, "");
}

TEST(EngineAnswers, ContainerListReadsNamesLabelsAndRequestedAddresses) {
  Result<std::vector<EngineContainer>> list = ParseContainerList(R"([
    {"Id": "4f1c", "Names": ["/proj-web-1"], "State": "running",
     "Labels": {"com.docker.compose.project": "proj", "com.docker.compose.service": "web"},
     "NetworkSettings": {"Networks": {
       "proj_lan": {"IPAMConfig": {"IPv4Address": "192.0.2.10"}, "EndpointID": "e1", "IPAddress": "192.0.2.10"},
       "other": {"IPAMConfig": null, "EndpointID": ""}}}},
    {"Id": "9a2b", "Names": null, "Labels": null, "NetworkSettings": null}])");
  ASSERT_TRUE(list.ok()) << list.status().message();
  ASSERT_EQ(list->size(), 2u);
  const EngineContainer& web = (*list)[0];
  EXPECT_EQ(web.id, "4f1c");
  EXPECT_EQ(web.name, "proj-web-1");
  EXPECT_EQ(web.labels.at("com.docker.compose.service"), "web");
  EXPECT_EQ(web.state, "running");
  ASSERT_EQ(web.networks.size(), 2u);
  EXPECT_EQ(web.networks.at("proj_lan").endpoint_id, "e1");
  EXPECT_EQ(web.networks.at("proj_lan").ipam_v4, "192.0.2.10");
  EXPECT_EQ(web.networks.at("other").ipam_v4, "");
  const EngineContainer& bare = (*list)[1];  // fields of another type read as empty
  EXPECT_EQ(bare.id, "9a2b");
  EXPECT_TRUE(bare.name.empty());
  EXPECT_TRUE(bare.labels.empty());
  EXPECT_TRUE(bare.networks.empty());
  EXPECT_TRUE(bare.state.empty());
}

// `docker run --name zdb ...` then `docker run --name app --link zdb:db ...`: the list names zdb
// also by its alias in app, and dockerd sorts the names ("/app/db" < "/zdb"), so the alias can
// come first. The container's own name is the one without a second slash.
TEST(EngineAnswers, ContainerListGivesTheOwnNameNotALinkAlias) {
  Result<std::vector<EngineContainer>> list = ParseContainerList(R"([
    {"Id": "7e3d", "Names": ["/app/db", "/zdb"], "State": "running", "Labels": {},
     "NetworkSettings": {"Networks": {"lan": {"IPAMConfig": null, "EndpointID": "e7"}}}},
    {"Id": "8c1a", "Names": ["/app"], "State": "running", "Labels": {}, "NetworkSettings": {"Networks": {}}},
    {"Id": "9f00", "Names": ["/app/only-alias", 7, ""], "Labels": {}, "NetworkSettings": null}])");
  ASSERT_TRUE(list.ok()) << list.status().message();
  ASSERT_EQ(list->size(), 3u);
  EXPECT_EQ((*list)[0].name, "zdb");
  EXPECT_EQ((*list)[1].name, "app");
  EXPECT_EQ((*list)[2].name, "");  // no own name listed: unknown, never an alias
}

TEST(EngineAnswers, ContainerInspectGivesStatusAndPid) {
  Result<ContainerProcess> running =
      ParseContainerInspect(R"({"Id": "4f1c", "Name": "/web", "State": {"Status": "running", "Pid": 4242}})");
  ASSERT_TRUE(running.ok());
  EXPECT_EQ(running->name, "web");
  EXPECT_EQ(running->status, "running");
  EXPECT_EQ(running->pid, 4242);
  Result<ContainerProcess> exited =
      ParseContainerInspect(R"({"Id": "4f1c", "Name": "/web", "State": {"Status": "exited", "Pid": 0}})");
  ASSERT_TRUE(exited.ok());
  EXPECT_EQ(exited->pid, 0);
}

TEST(EngineAnswers, NetworkListGivesDriverAndOptions) {
  Result<std::vector<DockerEngine::NetworkSummary>> list = ParseNetworkList(R"([
    {"Name": "bridge", "Id": "b1", "Driver": "bridge", "IPAM": {"Config": [{"Subnet": "172.17.0.0/16"}]}, "Options": {}},
    {"Name": "old", "Id": "m1", "Driver": "macvlan", "IPAM": {"Config": [{"Subnet": "192.0.2.0/28"}]},
     "Options": {"parent": "eth1.228"}}])");
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[1].driver, "macvlan");
  EXPECT_EQ((*list)[1].network.name, "old");
  EXPECT_EQ((*list)[1].network.subnets, std::vector<std::string>{"192.0.2.0/28"});
  EXPECT_EQ((*list)[1].options.at("parent"), "eth1.228");
  EXPECT_TRUE((*list)[0].options.empty());
}

TEST(EngineAnswers, PluginsAndVersion) {
  Result<EnginePlugins> plugins = ParsePlugins(
      R"({"Plugins": {"Volume": ["local"], "Network": ["bridge", "host", "macvlan", "static-macvlan"]}})",
      R"([{"Id": "5b8f", "Name": "static-macvlan:latest", "Enabled": true}, {"Id": "77aa", "Name": "x", "Enabled": false}])");
  ASSERT_TRUE(plugins.ok()) << plugins.status().message();
  EXPECT_EQ(plugins->network_drivers.back(), "static-macvlan");
  ASSERT_EQ(plugins->managed.size(), 2u);
  EXPECT_EQ(plugins->managed[0].id, "5b8f");
  EXPECT_EQ(plugins->managed[0].name, "static-macvlan:latest");
  EXPECT_TRUE(plugins->managed[0].enabled);
  EXPECT_FALSE(plugins->managed[1].enabled);
  EXPECT_EQ(*ParseVersion(R"({"Version": "20.10.24", "ApiVersion": "1.41"})"), "20.10.24");
}

TEST(EngineAnswers, AnswersOfAnotherShapeAreUnavailableByName) {
  EXPECT_EQ(ParseNetworkInspect("<html>").status().message(), "engine API: network inspect is not JSON");
  EXPECT_EQ(ParseNetworkInspect("[]").status().code(), Code::kUnavailable);
  EXPECT_EQ(ParseContainerList("{}").status().message(), "engine API: container list is not JSON");
  EXPECT_EQ(ParsePlugins("{}", "{}").status().message(), "engine API: plugin list is not JSON");
}

TEST(EngineAnswers, NetworkListGivesScopeConfigFromIpamDriverAndGateways) {
  // Shaped as dockerd 20.10 lists a swarm network made with --config-from and its config-only one.
  Result<std::vector<DockerEngine::NetworkSummary>> list = ParseNetworkList(R"([
    {"Name": "swnet", "Driver": "smv:latest", "Scope": "swarm", "ConfigFrom": {"Network": "cfg"},
     "ConfigOnly": false, "IPAM": {"Driver": "default", "Config": []}},
    {"Name": "cfg", "Driver": "null", "Scope": "local", "ConfigFrom": {"Network": ""}, "ConfigOnly": true,
     "IPAM": {"Driver": "smv:latest", "Config": [{"Subnet": "192.0.2.0/24"},
                                                 {"Subnet": "2001:db8::/64", "Gateway": "2001:db8::1"}]}}
  ])");
  ASSERT_TRUE(list.ok()) << list.status().message();
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].scope, "swarm");
  EXPECT_EQ((*list)[0].config_from, "cfg");
  EXPECT_FALSE((*list)[0].config_only);
  EXPECT_TRUE((*list)[1].config_only);
  EXPECT_EQ((*list)[1].ipam_driver, "smv:latest");
  EXPECT_EQ((*list)[1].gateways, (std::vector<std::string>{"", "2001:db8::1"}));
}

TEST(EngineAnswers, SwarmInfoAndNodesGiveStateRoleAndNetworkPlugins) {
  Result<SwarmView> manager = ParseSwarmInfo(R"({"Swarm": {"LocalNodeState": "active", "ControlAvailable": true}})");
  ASSERT_TRUE(manager.ok());
  EXPECT_EQ(manager->local_state, "active");
  EXPECT_TRUE(manager->manager);
  Result<SwarmView> alone = ParseSwarmInfo(R"({"Swarm": {"LocalNodeState": "inactive"}})");
  ASSERT_TRUE(alone.ok());
  EXPECT_FALSE(alone->manager);
  Result<std::vector<SwarmNode>> nodes = ParseNodeList(R"([
    {"Spec": {"Role": "manager", "Availability": "active"}, "Status": {"State": "ready"},
     "Description": {"Hostname": "h1", "Engine": {"Plugins": [{"Type": "Network", "Name": "smv:latest"},
                                                              {"Type": "Volume", "Name": "local"}]}}},
    {"Spec": {"Role": "worker", "Availability": "drain"}, "Status": {"State": "down"}, "Description": {}}
  ])");
  ASSERT_TRUE(nodes.ok());
  ASSERT_EQ(nodes->size(), 2u);
  EXPECT_EQ((*nodes)[0].hostname, "h1");
  EXPECT_EQ((*nodes)[0].network_plugins, (std::vector<std::string>{"smv:latest"}));
  EXPECT_EQ((*nodes)[1].role, "worker");
  EXPECT_EQ((*nodes)[1].availability, "drain");
  EXPECT_EQ((*nodes)[1].state, "down");
  EXPECT_TRUE((*nodes)[1].network_plugins.empty());
  EXPECT_FALSE(ParseNodeList("{}").ok());
}

}  // namespace
}  // namespace smv::engine

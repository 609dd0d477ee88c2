#include "daemon/api/plugin_api.h"
#include "ipam/ipam_service.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "tests/support/fake_engine.h"
#include "tests/support/fake_link_ops.h"
#include "tests/support/memory_stores.h"

namespace smv::api {
namespace {

using nlohmann::json;

class PluginApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    links_.AddExisting({.name = "eth1", .kind = "veth", .up = true});
    driver_ = std::move(driver::DriverService::Create(links_, net_store_).value());
    ipam_ = std::move(ipam::IpamService::Create(ipam_store_).value());
    api_ = std::make_unique<PluginApi>(*driver_, *ipam_);
  }
  json Call(const std::string& path, const std::string& body, int want_status = 200) {
    auto [status, out] = api_->Dispatch(path, body);
    EXPECT_EQ(status, want_status) << path << " " << body << " -> " << out;
    json j = json::parse(out, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << out;
    return j;
  }

  testing::FakeLinkOps links_;
  testing::MemoryNetworkStore net_store_;
  testing::MemoryIpamStore ipam_store_;
  std::unique_ptr<driver::DriverService> driver_;
  std::unique_ptr<ipam::IpamService> ipam_;
  std::unique_ptr<PluginApi> api_;
};

TEST_F(PluginApiTest, ActivationCallsTakeEmptyBodies) {
  EXPECT_EQ(Call("/Plugin.Activate", "")["Implements"], json({"NetworkDriver", "IpamDriver"}));
  EXPECT_EQ(Call("/NetworkDriver.GetCapabilities", "")["Scope"], "local");
  // Off by default: dockerd then invents no MAC, and the driver's derived one is sticky.
  EXPECT_EQ(Call("/IpamDriver.GetCapabilities", "")["RequiresMACAddress"], false);
  api_->SetMacIdentity(true);  // serve --mac-identity
  EXPECT_EQ(Call("/IpamDriver.GetCapabilities", "")["RequiresMACAddress"], true);
  EXPECT_TRUE(Call("/IpamDriver.GetDefaultAddressSpaces", "").contains("LocalDefaultAddressSpace"));
}

TEST_F(PluginApiTest, UnknownPathIs404WithErr) {
  json j = Call("/NetworkDriver.Frobnicate", "{}", 404);
  EXPECT_NE(j["Err"].get<std::string>().find("Frobnicate"), std::string::npos);
}

TEST_F(PluginApiTest, TeardownCallsAnswerJsonEvenWhenNothingIsKnown) {
  const std::string ids = R"({"NetworkID":"n1","EndpointID":"e1234567890123"})";
  for (const char* path : {"/NetworkDriver.Leave", "/NetworkDriver.DeleteEndpoint",
                           "/NetworkDriver.RevokeExternalConnectivity", "/NetworkDriver.ProgramExternalConnectivity"}) {
    EXPECT_TRUE(Call(path, ids + "\n").is_object()) << path;
  }
  EXPECT_TRUE(Call("/NetworkDriver.EndpointOperInfo", ids).contains("Value"));
  EXPECT_TRUE(Call("/IpamDriver.ReleasePool", R"({"PoolID":"x"})").is_object());
  EXPECT_TRUE(Call("/NetworkDriver.DeleteNetwork", R"({"NetworkID":"n1"})").is_object());
}

TEST_F(PluginApiTest, NetworkCreateToContainerStartWireShapes) {
  json pool = Call("/IpamDriver.RequestPool",
                   R"({"AddressSpace":"l","Pool":"192.0.2.0/24","SubPool":"192.0.2.128/25","Options":{},"V6":false})"
                   "\n");
  const std::string pool_id = pool["PoolID"];
  EXPECT_EQ(pool["Pool"], "192.0.2.0/24");
  json gw = Call("/IpamDriver.RequestAddress", json{{"PoolID", pool_id},
                                                    {"Address", "192.0.2.1"},
                                                    {"Options", {{"RequestAddressType", "com.docker.network.gateway"}}}}
                                                   .dump());
  EXPECT_EQ(gw["Address"], "192.0.2.1/24");
  Call("/NetworkDriver.CreateNetwork", R"({"NetworkID":"n1","Options":{"com.docker.network.enable_ipv6":false,
      "com.docker.network.generic":{"parent":"eth1"}},
      "IPv4Data":[{"AddressSpace":"l","Pool":"192.0.2.0/24","Gateway":"192.0.2.1/24"}],"IPv6Data":[]})");
  json addr = Call("/IpamDriver.RequestAddress", json{{"PoolID", pool_id},
                                                      {"Address", ""},
                                                      {"Options",
                                                       {{"com.docker.network.endpoint.macaddress", "02:42:6b:69:a0:c9"},
                                                        {"com.docker.network.endpoint.name", "/web"}}}}
                                                     .dump());
  EXPECT_EQ(addr["Address"], "192.0.2.128/24");
  EXPECT_EQ(ipam_->ListReservations().at(0).record.name, "web");  // leading "/" dropped

  // With a MAC in the request, the answer must carry neither MAC nor address.
  json ep = Call("/NetworkDriver.CreateEndpoint", R"({"NetworkID":"n1","EndpointID":"e1234567890123",
      "Interface":{"Address":"192.0.2.128/24","AddressIPv6":"","MacAddress":"02:42:6b:69:a0:c9"},"Options":{}})");
  EXPECT_EQ(ep, json::object());
  json ep2 = Call("/NetworkDriver.CreateEndpoint", R"({"NetworkID":"n1","EndpointID":"f1234567890123",
      "Interface":{"Address":"192.0.2.129/24","AddressIPv6":"","MacAddress":""}})");
  EXPECT_EQ(ep2["Interface"]["MacAddress"], "02:42:c0:00:02:81");
  EXPECT_FALSE(ep2["Interface"].contains("Address"));

  json join =
      Call("/NetworkDriver.Join", R"({"NetworkID":"n1","EndpointID":"e1234567890123","SandboxKey":"/x","Options":{}})");
  EXPECT_EQ(join["InterfaceName"]["SrcName"], "smve1234567890");
  EXPECT_EQ(join["InterfaceName"]["DstPrefix"], "eth");
  EXPECT_EQ(join["Gateway"], "192.0.2.1");
  EXPECT_EQ(join["DisableGatewayService"], true);
}

TEST_F(PluginApiTest, ErrorsAre500WithErrForBothInterfaces) {
  json e = Call("/IpamDriver.RequestPool", R"({"Pool":"","V6":false})", 500);
  EXPECT_NE(e["Err"].get<std::string>().find("--subnet"), std::string::npos);
  e = Call("/NetworkDriver.CreateNetwork",
           R"({"NetworkID":"n1","Options":{"com.docker.network.generic":{"parent":"eth1","vlan":"0"}}})", 500);
  EXPECT_NE(e["Err"].get<std::string>().find("option \"vlan\""), std::string::npos);
  EXPECT_FALSE(e.contains("Error"));
}

TEST_F(PluginApiTest, MalformedBodiesAreRefusedByName) {
  struct Case {
    const char* path;
    const char* body;
    const char* text;
  };
  const Case cases[] = {
      {"/IpamDriver.RequestPool", "{", "not JSON"},
      {"/IpamDriver.RequestPool", "[1,2]", "not a JSON object"},
      {"/IpamDriver.RequestPool", R"({"Pool":5})", "field \"Pool\": want a string"},
      {"/IpamDriver.RequestPool", R"({"Pool":"192.0.2.0/24","Options":[]})", "field \"Options\": want an object"},
      {"/IpamDriver.RequestPool", R"({"Pool":"192.0.2.0/24","V6":"yes"})", "field \"V6\""},
      {"/IpamDriver.RequestPool", R"({"Pool":"192.0.2.0/24","Options":{"a":{}}})", "--ipam-opt \"a\""},
      {"/IpamDriver.RequestAddress", R"({"Address":""})", "field \"PoolID\" is missing"},
      {"/IpamDriver.RequestAddress", R"({"PoolID":"p","Options":{"RequestAddressType":1}})", "RequestAddressType"},
      {"/IpamDriver.ReleaseAddress", R"({"PoolID":"p"})", "field \"Address\""},
      {"/NetworkDriver.CreateNetwork", R"({})", "field \"NetworkID\""},
      {"/NetworkDriver.CreateNetwork", R"({"NetworkID":"n","Options":{"com.docker.network.generic":"x"}})",
       "com.docker.network.generic"},
      {"/NetworkDriver.CreateNetwork",
       R"({"NetworkID":"n","Options":{"com.docker.network.generic":{"parent":"eth1"}},"IPv4Data":{}})", "IPv4Data"},
      {"/NetworkDriver.CreateNetwork",
       R"({"NetworkID":"n","Options":{"com.docker.network.generic":{"parent":"eth1"}},"IPv4Data":[{"Pool":"x"}]})",
       "invalid CIDR \"x\""},
      {"/NetworkDriver.CreateNetwork",
       R"({"NetworkID":"n","Options":{"com.docker.network.generic":{"parent":"eth1"}},"IPv4Data":[{"Pool":"192.0.2.0/24","Gateway":"198.51.100.1/24"}]})",
       "outside the subnet"},
      {"/NetworkDriver.CreateEndpoint", R"({"NetworkID":"n"})", "EndpointID"},
      {"/NetworkDriver.CreateEndpoint", R"({"NetworkID":"n","EndpointID":"e","Interface":"x"})", "Interface"},
      {"/NetworkDriver.Join", R"({"NetworkID":"n","EndpointID":7})", "EndpointID"},
  };
  for (const Case& c : cases) {
    json e = Call(c.path, c.body, 500);
    ASSERT_TRUE(e.contains("Err")) << c.body;
    EXPECT_NE(e["Err"].get<std::string>().find(c.text), std::string::npos) << c.body << " -> " << e;
  }
  EXPECT_EQ(net_store_.network_count(), 0u);
  EXPECT_EQ(ipam_store_.pool_count(), 0u);
}

// A network named while dockerd does not answer: only dockerd knows names, so the answer says it
// could not ask (where, and why), not that the network is not ours.
TEST_F(PluginApiTest, ANetworkNameWhileTheEngineIsDownSaysTheEngineCouldNotBeAsked) {
  testing::FakeEngine engine;
  engine.networks["n1"] = {.id = "n1", .name = "lan"};
  api_ = std::make_unique<PluginApi>(*driver_, *ipam_, nullptr, &engine);
  api_->SetEngineAddress("unix:///run/engine.sock");
  engine.answering = false;
  for (const char* path : {"/StaticMacvlan.ListReservations", "/StaticMacvlan.Reserve"}) {
    json e = Call(path, R"({"Network":"lan","Name":"web","Address":"192.0.2.9"})", 500);
    EXPECT_EQ(e["Err"],
              "cannot ask dockerd at unix:///run/engine.sock which network \"lan\" is: timed out; give the network's "
              "id instead, or start dockerd")
        << path;
  }
  // A whole id needs no engine: it is ours or it is not.
  const std::string id(64, 'a');
  EXPECT_EQ(Call("/StaticMacvlan.ListReservations", json{{"Network", id}}.dump(), 500)["Err"],
            "network \"" + id + "\" is not a static-macvlan network");
  engine.answering = true;  // dockerd answers: "lan" is a network, not one of ours
  EXPECT_EQ(Call("/StaticMacvlan.ListReservations", R"({"Network":"lan"})", 500)["Err"],
            "network \"lan\" is not a static-macvlan network");
  EXPECT_EQ(Call("/StaticMacvlan.ListReservations", R"({"Network":"wan"})", 500)["Err"],
            "network \"wan\" is not a static-macvlan network");
}

// `curl -X POST` sends no body: every path either needs none (200), or says it is empty and what
// the path wants (400); never a bare 500 or a vague 400.
TEST_F(PluginApiTest, EveryPathPostedWithoutABodyAnswersOkOrSaysTheBodyIsEmpty) {
  for (const auto& [path, handler] : api_->Routes()) {
    auto [status, out] = api_->Dispatch(path, "");
    const json answer = json::parse(out, nullptr, false);
    ASSERT_TRUE(answer.is_object()) << path << " -> " << out;
    if (status == 200) continue;
    EXPECT_EQ(status, 400) << path << " -> " << out;
    EXPECT_TRUE(
        answer.value("Err", "").starts_with("request body is empty: " + path.substr(1) + " wants a JSON object body ("))
        << path << " -> " << out;
  }
}

// Found by fuzzing (tests/fuzz): an id whose first 12 bytes end inside a UTF-8 sequence, quoted
// cut short in an error message, made the JSON encoder throw instead of answering.
TEST_F(PluginApiTest, IdsCutInsideAUtf8SequenceStillGetAJsonAnswer) {
  const std::string id = std::string("901aa1a09;1") + "\xcc\xa7" + "fb4f6548e78af46a28df426f854";
  for (const char* path : {"/NetworkDriver.Join", "/NetworkDriver.CreateEndpoint"}) {
    json j = Call(path, json{{"NetworkID", id}, {"EndpointID", id}, {"SandboxKey", "/x"}}.dump(), 500);
    EXPECT_TRUE(j.contains("Err")) << path;
  }
}

}  // namespace
}  // namespace smv::api

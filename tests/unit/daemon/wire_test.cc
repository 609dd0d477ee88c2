#include "daemon/api/wire.h"

#include <gtest/gtest.h>

#include "daemon/api/plugin_api.h"
#include "daemon/network_creation.h"
#include "tests/support/fixtures.h"

namespace smv::api {
namespace {

using nlohmann::json;

TEST(Wire, CreateNetworkDecodesPoolsAddressSpacesAndAuxAddresses) {
  json call = smv::testing::fixtures::Call("01-network-create-full/011-NetworkDriver.CreateNetwork.json");
  ASSERT_TRUE(call.is_object());
  Result<wire::CreateNetworkRequest> r = wire::DecodeCreateNetwork(call["request"]);
  ASSERT_TRUE(r.ok()) << r.status().message();
  ASSERT_EQ(r->v4.size(), 1u);
  EXPECT_EQ(r->v4[0].address_space, "reclocal");
  EXPECT_EQ(r->v4[0].aux, (std::map<std::string, std::string>{{"dns", "192.0.2.3"}, {"router2", "192.0.2.2"}}));
  EXPECT_EQ(r->call.ipv4.size(), 1u);
  EXPECT_EQ(r->call.ipv6.size(), r->v6.size());
  EXPECT_EQ(r->call.options.at("parent"), "eth1");
}

TEST(Wire, RequestAddressTakesTheNameWithoutItsSlash) {
  Result<ipam::AddressCall> c = wire::DecodeRequestAddress(
      json::parse(R"({"PoolID":"p","Address":"","Options":{"com.docker.network.endpoint.name":"/web-0",
                     "com.docker.network.endpoint.macaddress":"02:00:00:00:00:01"}})"));
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->name, "web-0");
  EXPECT_EQ(c->mac, "02:00:00:00:00:01");
  EXPECT_FALSE(c->gateway);
}

TEST(Wire, FirstBadFieldIsNamedInRequestOrder) {
  Result<wire::EndpointRef> r = wire::DecodeEndpointRef(json::parse(R"({"NetworkID":1,"EndpointID":2})"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "field \"NetworkID\": want a string, got number");
  Result<ipam::PoolRequest> p = wire::DecodeRequestPool(json::parse(R"({"Pool":"192.0.2.0/24","V6":null})"));
  ASSERT_TRUE(p.ok());  // null is "not given"
  EXPECT_FALSE(p->v6);
}

// Docker's default IPAM, as dockerd 20.10 sent it (01-network-create-default-ipam).
wire::CreateNetworkRequest DefaultIpamRequest() {
  json call = smv::testing::fixtures::Call("01-network-create-default-ipam/001-NetworkDriver.CreateNetwork.json");
  return *wire::DecodeCreateNetwork(call["request"]);
}

TEST(Wire, NetworkOnDockersIpamIsRefusedWithTheCorrectedCommand) {
  const wire::CreateNetworkRequest r = DefaultIpamRequest();
  Status s = daemon::AdmitIpam(r, {}, [](const Prefix&) { return true; });  // even if we had such a pool
  EXPECT_EQ(s.code(), Code::kFailedPrecondition);
  EXPECT_NE(s.message().find("address space \"LocalDefault\""), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("docker network create -d static-macvlan --ipam-driver static-macvlan "
                             "--subnet 203.0.113.0/24 --gateway 203.0.113.1 -o parent=eth1 NAME"),
            std::string::npos)
      << s.message();
  EXPECT_NE(s.message().find("-o ipam=docker"), std::string::npos);
}

TEST(Wire, OptionIpamDockerAcceptsDockersIpamKnowingly) {
  EXPECT_TRUE(daemon::AdmitIpam(DefaultIpamRequest(), {.docker_ipam = true}, [](const Prefix&) { return false; }).ok());
}

TEST(Wire, PoolsWeNeverGaveAreRefusedWhateverTheAddressSpace) {
  wire::CreateNetworkRequest r = DefaultIpamRequest();
  r.v4[0].address_space = kLocalAddressSpace;
  r.call.options["routes"] = "10.254.0.0/16 via 203.0.113.1";
  Status s = daemon::AdmitIpam(r, {}, [](const Prefix&) { return false; });
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("-o 'routes=10.254.0.0/16 via 203.0.113.1'"), std::string::npos) << s.message();
  EXPECT_TRUE(daemon::AdmitIpam(r, {}, [](const Prefix&) { return true; }).ok());
}

// moby's daemon: ^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$ (its own test's names among these).
TEST(Wire, ContainerNamesAreTheOnesDockerAllows) {
  for (const char* name : {"word-word", "word_word", "1weoid", "/web", "a.b", "s-0", "A9"}) {
    EXPECT_TRUE(wire::IsContainerName(name)) << name;
  }
  for (const char* name : {"-rm", "&sdfsfd", "safd%sd", "a", "/a", "", "/", "//web", "_web", ".web", "my web", "web\n",
                           "w\xc3\xa9"
                           "b",
                           "web/1"}) {
    EXPECT_FALSE(wire::IsContainerName(name)) << name;
  }
  Result<wire::ReserveCall> call = wire::DecodeReserve({{"Name", "/web"}, {"Address", "192.0.2.9"}, {"Network", "n"}});
  ASSERT_TRUE(call.ok()) << call.status().message();
  EXPECT_EQ(call->name, "web");
  EXPECT_EQ(wire::DecodeReserve({{"Name", "a b"}, {"Address", "192.0.2.9"}, {"Network", "n"}}).status().message(),
            std::string("invalid container name \"a b\" (field \"Name\"): want ") + wire::kContainerNameRule);
}

}  // namespace
}  // namespace smv::api

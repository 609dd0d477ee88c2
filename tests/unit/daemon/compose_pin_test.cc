#include "daemon/cli/compose_pin.h"

#include <gtest/gtest.h>

namespace smv::daemon {
namespace {

using engine::EngineContainer;
using engine::EngineNetwork;

EngineContainer Member(const std::string& name, const std::string& service, const std::string& number,
                       std::vector<std::string> networks, const std::string& project = "shop") {
  EngineContainer c{"id-" + name, name, {}, {}};
  for (const std::string& n : networks) c.networks[n] = {};
  c.labels = {{"com.docker.compose.project", project},
              {"com.docker.compose.service", service},
              {"com.docker.compose.container-number", number}};
  return c;
}

EngineNetwork Network(const std::string& name, const std::string& key, std::vector<std::string> subnets) {
  EngineNetwork n{"id-" + name, name, {}, {}, std::move(subnets)};
  if (!key.empty()) n.labels["com.docker.compose.network"] = key;
  return n;
}

class ComposePinTest : public ::testing::Test {
 protected:
  std::map<std::string, EngineNetwork> networks_ = {
      {"shop_lan", Network("shop_lan", "lan", {"192.0.2.0/24", "2001:db8:1::/64"})},
      {"shop_dmz", Network("shop_dmz", "dmz", {"198.51.100.0/24"})},
      {"ext", Network("ext", "", {"203.0.113.0/24"})}};
};

TEST_F(ComposePinTest, EachServiceGetsItsReservedAddressesUnderTheNetworksComposeKey) {
  std::vector<EngineContainer> containers = {Member("shop-web-1", "web", "1", {"shop_lan", "shop_dmz"}),
                                             Member("shop-db-1", "db", "1", {"shop_lan"}),
                                             Member("other-web-1", "web", "1", {"shop_lan"}, "other")};
  std::vector<PinReservation> reservations = {{"shop-web-1", "192.0.2.5", "192.0.2.0/24 range 192.0.2.0/26"},
                                              {"shop-web-1", "2001:db8:1::5", "2001:db8:1::/64"},
                                              {"shop-web-1", "198.51.100.7", "198.51.100.0/24"},
                                              {"shop-db-1", "192.0.2.9", "192.0.2.0/24 range 192.0.2.0/26"},
                                              {"other-web-1", "192.0.2.30", "192.0.2.0/24 range 192.0.2.0/26"}};
  Result<PinnedProject> pin = PinComposeProject("shop", containers, networks_, reservations);
  ASSERT_TRUE(pin.ok()) << pin.status().message();
  const nlohmann::json want = nlohmann::json::parse(R"({"services": {
      "web": {"networks": {"lan": {"ipv4_address": "192.0.2.5", "ipv6_address": "2001:db8:1::5"},
                           "dmz": {"ipv4_address": "198.51.100.7"}}},
      "db": {"networks": {"lan": {"ipv4_address": "192.0.2.9"}}}}})");
  EXPECT_EQ(pin->override_file, want) << pin->override_file.dump(2);
  EXPECT_EQ(pin->pinned, 4);
  EXPECT_TRUE(pin->notes.empty());
}

TEST_F(ComposePinTest, AnExternalNetworkIsKeyedByItsNameAndReplicasAreNotedNotPinned) {
  std::vector<EngineContainer> containers = {Member("shop-api-1", "api", "1", {"ext"}),
                                             Member("shop-api-2", "api", "2", {"ext"})};
  std::vector<PinReservation> reservations = {{"shop-api-1", "203.0.113.4", "203.0.113.0/24"},
                                              {"shop-api-2", "203.0.113.5", "203.0.113.0/24"}};
  Result<PinnedProject> pin = PinComposeProject("shop", containers, networks_, reservations);
  ASSERT_TRUE(pin.ok());
  EXPECT_EQ(pin->override_file["services"]["api"]["networks"]["ext"]["ipv4_address"], "203.0.113.4");
  EXPECT_EQ(pin->pinned, 1);
  ASSERT_EQ(pin->notes.size(), 1u);
  EXPECT_NE(pin->notes[0].find("shop-api-2: replica 2 of service api is not pinned"), std::string::npos)
      << pin->notes[0];
}

TEST_F(ComposePinTest, AServiceWithoutAReservationIsNotedAndAnUnknownProjectIsNotFound) {
  std::vector<EngineContainer> containers = {Member("shop-cache-1", "cache", "1", {"shop_lan"})};
  Result<PinnedProject> pin = PinComposeProject("shop", containers, networks_, {});
  ASSERT_TRUE(pin.ok());
  EXPECT_EQ(pin->pinned, 0);
  ASSERT_EQ(pin->notes.size(), 1u);
  EXPECT_NE(pin->notes[0].find("service cache has no reservation"), std::string::npos);

  Result<PinnedProject> none = PinComposeProject("nosuch", containers, networks_, {});
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.status().code(), Code::kNotFound);
  EXPECT_NE(none.status().message().find("compose project \"nosuch\" has no containers"), std::string::npos);
}

TEST_F(ComposePinTest, OnAnEngineThatSetsMacsPerEndpointOnlyEachNetworkGetsItsMacAddress) {
  std::vector<EngineContainer> containers = {Member("shop-web-1", "web", "1", {"shop_lan", "shop_dmz"})};
  std::vector<PinReservation> reservations = {
      {"shop-web-1", "192.0.2.5", "192.0.2.0/24 range 192.0.2.0/26", "02:42:c0:00:02:05"},
      {"shop-web-1", "2001:db8:1::5", "2001:db8:1::/64", "02:42:c0:00:02:05"},
      {"shop-web-1", "198.51.100.7", "198.51.100.0/24", ""}};  // no MAC known: none written
  Result<PinnedProject> per_endpoint = PinComposeProject("shop", containers, networks_, reservations, true);
  ASSERT_TRUE(per_endpoint.ok()) << per_endpoint.status().message();
  const nlohmann::json want = nlohmann::json::parse(R"({"services": {
      "web": {"networks": {"lan": {"ipv4_address": "192.0.2.5", "ipv6_address": "2001:db8:1::5",
                                   "mac_address": "02:42:c0:00:02:05"},
                           "dmz": {"ipv4_address": "198.51.100.7"}}}}})");
  EXPECT_EQ(per_endpoint->override_file, want) << per_endpoint->override_file.dump(2);
  // Older engines: the MAC follows the address, nothing is written.
  Result<PinnedProject> older = PinComposeProject("shop", containers, networks_, reservations, false);
  ASSERT_TRUE(older.ok());
  EXPECT_FALSE(older->override_file["services"]["web"]["networks"]["lan"].contains("mac_address"));
}

TEST(ComposePinMacTest, OnlyApi1_52AndLaterSetMacsPerEndpointOnly) {
  EXPECT_TRUE(MacIsPerEndpointOnly("1.52"));
  EXPECT_TRUE(MacIsPerEndpointOnly("1.53"));
  EXPECT_TRUE(MacIsPerEndpointOnly("2.0"));
  EXPECT_FALSE(MacIsPerEndpointOnly("1.51"));  // Docker 28.5
  EXPECT_FALSE(MacIsPerEndpointOnly("1.41"));  // Docker 20.10
  EXPECT_FALSE(MacIsPerEndpointOnly(""));
  EXPECT_FALSE(MacIsPerEndpointOnly("1"));
  EXPECT_FALSE(MacIsPerEndpointOnly("x.52"));
}

}  // namespace
}  // namespace smv::daemon

// The one overlap rule (driver/subnet_overlap.h), used by CreateNetwork and by the doctor.

#include "driver/subnet_overlap.h"

#include <gtest/gtest.h>

#include "driver/network_state.h"

namespace smv::driver {
namespace {

Prefix P(std::string_view text) { return *Prefix::Parse(text); }

NetworkOptions On(std::string parent, std::optional<uint16_t> vlan = std::nullopt, std::string vlan_link = "") {
  NetworkOptions options;
  options.parent = std::move(parent);
  options.vlan_id = vlan;
  options.vlan_link_name = vlan ? (vlan_link.empty() ? options.parent + "." + std::to_string(*vlan) : vlan_link) : "";
  return options;
}

TEST(ShareWireTest, SameParentAndSameVlanLinkShareAWire) {
  EXPECT_TRUE(ShareWire(On("eth1"), On("eth1")));
  EXPECT_TRUE(ShareWire(On("eth1", 228), On("eth1", 228)));
  EXPECT_FALSE(ShareWire(On("eth1"), On("eth2")));
  EXPECT_FALSE(ShareWire(On("eth1"), On("eth1", 228)));  // untagged and VLAN 228: two wires
  EXPECT_FALSE(ShareWire(On("eth1", 228), On("eth1", 229)));
  // A VLAN link given as the parent is the wire a -o vlan network on its parent makes.
  EXPECT_TRUE(ShareWire(On("eth1.228"), On("eth1", 228)));
  // One link name is one link on a host, whichever parent each network names.
  EXPECT_TRUE(ShareWire(On("eth1", 228, "lan"), On("eth2", 228, "lan")));
}

TEST(OverlappingSubnetsTest, ListsEachOverlappingPairInOrder) {
  const std::vector<SubnetOverlap> found =
      OverlappingSubnets({P("192.0.2.0/24"), P("198.51.100.0/24"), P("2001:db8::/64")},
                         {P("203.0.113.0/24"), P("192.0.2.128/25"), P("2001:db8::/48"), P("198.51.100.0/23")});
  ASSERT_EQ(found.size(), 3u);
  EXPECT_EQ(found[0].subnet, P("192.0.2.0/24"));
  EXPECT_EQ(found[0].other, P("192.0.2.128/25"));  // a subnet inside the other
  EXPECT_EQ(found[1].subnet, P("198.51.100.0/24"));
  EXPECT_EQ(found[1].other, P("198.51.100.0/23"));  // the other inside the subnet
  EXPECT_EQ(found[2].subnet, P("2001:db8::/64"));
  EXPECT_EQ(found[2].other, P("2001:db8::/48"));
}

TEST(OverlappingSubnetsTest, AdjacentSubnetsAndOtherFamiliesDoNotOverlap) {
  EXPECT_TRUE(OverlappingSubnets({P("192.0.2.0/25")}, {P("192.0.2.128/25")}).empty());
  EXPECT_TRUE(OverlappingSubnets({P("0.0.0.0/0")}, {P("::/0"), P("2001:db8::/32")}).empty());
  EXPECT_TRUE(OverlappingSubnets({}, {P("192.0.2.0/24")}).empty());
}

TEST(SubnetsAccessorTest, ANetworksSubnetsAndAnEndpointsAddressesComeIpv4First) {
  NetworkRecord record{.id = "n",
                       .ipv4 = {{.pool = P("192.0.2.0/24")}},
                       .ipv6 = {{.pool = P("2001:db8::/64")}, {.pool = P("2001:db8:1::/64")}}};
  EXPECT_EQ(record.Subnets(), (std::vector<Prefix>{P("192.0.2.0/24"), P("2001:db8::/64"), P("2001:db8:1::/64")}));
  EndpointRecord endpoint{.address_v4 = "192.0.2.10/24", .address_v6 = "2001:db8::a/64"};
  EXPECT_EQ(endpoint.Addresses(), (std::vector<Prefix>{P("192.0.2.10/24"), P("2001:db8::a/64")}));
  endpoint.address_v4.clear();
  EXPECT_EQ(endpoint.Addresses(), (std::vector<Prefix>{P("2001:db8::a/64")}));
}

}  // namespace
}  // namespace smv::driver

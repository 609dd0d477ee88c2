#include "driver/link_names.h"

#include <gtest/gtest.h>

#include <set>

namespace smv::driver {
namespace {

const std::string kId = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

TEST(LinkNamesTest, EndpointAndHostLinksTakeElevenDigitsOfTheId) {
  EXPECT_EQ(EndpointLinkName(kId), "smv0123456789a");
  EXPECT_EQ(HostLinkName(kId), "smvh0123456789a");
  EXPECT_EQ(HostLinkName(kId).size(), kMaxInterfaceName);
  EXPECT_EQ(EndpointLinkName("abc"), "smvabc");  // a short id is kept whole
}

TEST(LinkNamesTest, ShapesTellEndpointLinksFromHostLinksAndOthers) {
  EXPECT_TRUE(HasEndpointLinkShape(EndpointLinkName(kId)));
  EXPECT_FALSE(HasEndpointLinkShape("smv0123"));  // too short to be ours
  EXPECT_FALSE(HasEndpointLinkShape("eth1"));
  EXPECT_FALSE(HasEndpointLinkShape(HostLinkName(kId)));  // one byte longer
  EXPECT_TRUE(HasHostLinkShape(HostLinkName(kId)));
  EXPECT_FALSE(HasHostLinkShape(EndpointLinkName(kId)));  // 'h' is no hex digit
  EXPECT_TRUE(HasOurLinkPrefix(HostLinkName(kId)));
  EXPECT_FALSE(HasOurLinkPrefix("eth1.228"));
  EXPECT_TRUE(IsContainerLinkKind("macvlan"));
  EXPECT_TRUE(IsContainerLinkKind("ipvlan"));
  EXPECT_FALSE(IsContainerLinkKind("vlan"));
}

TEST(LinkNamesTest, MacComesFromTheIpv4AddressWhenThereIsOne) {
  EXPECT_EQ(MacForAddress("192.0.2.10/24", "2001:db8::a/64"), "02:42:c0:00:02:0a");
  EXPECT_EQ(MacForAddress("203.0.113.255/24", ""), "02:42:cb:00:71:ff");
}

TEST(LinkNamesTest, Ipv6OnlyMacIsAStableHashOfTheWholeAddress) {
  const std::string a = MacForAddress("", "2001:db8:1::a/64");
  EXPECT_EQ(a, MacForAddress("", "2001:db8:1::a/64"));
  EXPECT_TRUE(a.starts_with("02:42:"));
  // Same low bits in another subnet: another MAC.
  EXPECT_NE(a, MacForAddress("", "2001:db8:2::a/64"));
}

TEST(LinkNamesTest, WithoutAnAddressTheMacIsRandomAndLocallyAdministered) {
  std::set<std::string> macs;
  for (int i = 0; i < 8; ++i) macs.insert(MacForAddress("", ""));
  EXPECT_GT(macs.size(), 1u);
  for (const std::string& mac : macs) EXPECT_TRUE(mac.starts_with("02:42:")) << mac;
}

}  // namespace
}  // namespace smv::driver

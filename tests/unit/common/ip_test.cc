#include "common/ip.h"

#include <gtest/gtest.h>

namespace smv {
namespace {

TEST(IpAddressTest, ParsesAndFormatsBothFamilies) {
  struct Case {
    const char* in;
    bool ok;
    const char* out;
  };
  const Case cases[] = {
      {"192.0.2.10", true, "192.0.2.10"},
      {"0.0.0.0", true, "0.0.0.0"},
      {"255.255.255.255", true, "255.255.255.255"},
      {"10.0.128.1", true, "10.0.128.1"},  // each octet in its place, none sign-extended
      {"2001:db8::1", true, "2001:db8::1"},
      {"2001:0db8:0:0::0001", true, "2001:db8::1"},
      {"192.0.2.256", false, ""},
      {"192.0.2", false, ""},
      {"", false, ""},
      {"192.0.2.1/24", false, ""},
      {"fe80::1%eth0", false, ""},
      {"x", false, ""},
  };
  for (const Case& c : cases) {
    std::optional<IpAddress> ip = IpAddress::Parse(c.in);
    ASSERT_EQ(ip.has_value(), c.ok) << c.in;
    if (c.ok) {
      EXPECT_EQ(ip->ToString(), c.out) << c.in;
    }
  }
}

TEST(PrefixTest, NetworkLastContainsOverlaps) {
  Prefix p = *Prefix::Parse("192.0.2.77/24");
  EXPECT_TRUE(p.HasHostBits());
  EXPECT_EQ(p.Network().ToString(), "192.0.2.0");
  EXPECT_EQ(p.Last().ToString(), "192.0.2.255");
  EXPECT_TRUE(p.Contains(*IpAddress::Parse("192.0.2.255")));
  EXPECT_FALSE(p.Contains(*IpAddress::Parse("192.0.3.0")));
  EXPECT_FALSE(p.Contains(*IpAddress::Parse("2001:db8::1")));
  Prefix sub = *Prefix::Parse("192.0.2.128/25");
  EXPECT_TRUE(Prefix(p.Network(), 24).Contains(sub));
  EXPECT_FALSE(sub.Contains(Prefix(p.Network(), 24)));
  EXPECT_TRUE(sub.Overlaps(p));
  EXPECT_FALSE(Prefix::Parse("198.51.100.0/24")->Overlaps(p));

  Prefix v6 = *Prefix::Parse("2001:db8:228::/64");
  EXPECT_FALSE(v6.HasHostBits());
  EXPECT_EQ(v6.Last().ToString(), "2001:db8:228:0:ffff:ffff:ffff:ffff");
  Prefix all = *Prefix::Parse("::/0");
  EXPECT_TRUE(all.Contains(v6));
}

TEST(PrefixTest, RejectsMalformed) {
  for (const char* bad :
       {"192.0.2.0", "192.0.2.0/33", "192.0.2.0/", "192.0.2.0/-1", "2001:db8::/129", "192.0.2.0/2x", "/24", "abc/24"}) {
    EXPECT_FALSE(Prefix::Parse(bad).has_value()) << bad;
  }
}

TEST(MacAddressTest, ParsesColonAndDashFormsAndPrintsLowercase) {
  EXPECT_EQ(MacAddress::Parse("02:42:AC:11:00:02")->ToString(), "02:42:ac:11:00:02");
  EXPECT_EQ(MacAddress::Parse("02-42-ac-11-00-02")->ToString(), "02:42:ac:11:00:02");
  for (const char* bad : {"02:42:ac:11:00", "02:42:ac:11:00:0g", "0242ac110002xxxxx", ""}) {
    EXPECT_FALSE(MacAddress::Parse(bad).has_value()) << bad;
  }
}

TEST(StatusTest, AnnotateAddsContextAndKeepsCode) {
  Status s = NotFound("interface \"eth9\" not found").Annotate("create network abc");
  EXPECT_EQ(s.code(), Code::kNotFound);
  EXPECT_EQ(s.message(), "create network abc: interface \"eth9\" not found");
  EXPECT_TRUE(OkStatus().Annotate("x").ok());
}

}  // namespace
TEST(HostPortTest, OneParserForListenAddressesAndEtcdMembers) {
  Result<HostPort> v4 = ParseHostPort("127.0.0.1:9414");
  ASSERT_TRUE(v4.ok());
  EXPECT_EQ(v4->host, "127.0.0.1");
  EXPECT_EQ(v4->port, 9414);
  Result<HostPort> v6 = ParseHostPort("[2001:db8::1]:2379");
  ASSERT_TRUE(v6.ok());
  EXPECT_EQ(v6->host, "[2001:db8::1]");  // brackets kept: each caller decides
  EXPECT_EQ(ParseHostPort("etcd1").status().message(), "HOST:PORT needed");
  EXPECT_EQ(ParseHostPort(":2379").status().message(), "HOST:PORT needed");
  EXPECT_EQ(ParseHostPort("h:0").status().message(), "port \"0\" is not 1-65535");
  EXPECT_EQ(ParseHostPort("h:65536").status().message(), "port \"65536\" is not 1-65535");
  EXPECT_EQ(ParseHostPort("h:12x").status().message(), "port \"12x\" is not 1-65535");
}

}  // namespace smv

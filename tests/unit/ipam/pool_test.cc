#include "ipam/pool.h"

#include <gtest/gtest.h>

namespace smv::ipam {
namespace {

PoolRequest V4(std::string pool, std::string sub = "", std::map<std::string, std::string> opts = {}) {
  return PoolRequest{"local", std::move(pool), std::move(sub), std::move(opts), false};
}

TEST(PoolTest, CanonicalPoolWithRange) {
  Result<PoolConfig> c = ParsePoolRequest(V4("192.0.2.0/24", "192.0.2.128/25"));
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->id, "192.0.2.0/24 range 192.0.2.128/25");
  EXPECT_EQ(c->FirstUsable().ToString(), "192.0.2.1");
  EXPECT_EQ(c->LastUsable().ToString(), "192.0.2.254");
  EXPECT_EQ(c->DynamicFirst().ToString(), "192.0.2.128");
  EXPECT_EQ(c->DynamicLast().ToString(), "192.0.2.254");
}

TEST(PoolTest, SameArgumentsGiveSameId) {
  EXPECT_EQ(ParsePoolRequest(V4("192.0.2.0/24"))->id, ParsePoolRequest(V4("192.0.2.0/24"))->id);
  EXPECT_NE(ParsePoolRequest(V4("192.0.2.0/24"))->id, ParsePoolRequest(V4("192.0.2.0/24", "192.0.2.0/25"))->id);
}

TEST(PoolTest, Ipv6Slash64) {
  PoolRequest r{"local", "2001:db8:228::/64", "", {}, true};
  Result<PoolConfig> c = ParsePoolRequest(r);
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->LastUsable().ToString(), "2001:db8:228:0:ffff:ffff:ffff:ffff");
}

TEST(PoolTest, ErrorsNameTheFlagAndValue) {
  struct Case {
    PoolRequest req;
    const char* must_contain;
  };
  const Case cases[] = {
      {V4(""), "--subnet 192.0.2.0/24"},
      {V4("192.0.2.0"), "invalid value \"192.0.2.0\" for --subnet"},
      {V4("192.0.2.5/24"), "the network address is 192.0.2.0 (use --subnet 192.0.2.0/24)"},
      {V4("192.0.2.0/32"), "no room"},
      {V4("192.0.2.0/31"), "no room"},
      {V4("2001:db8::/64"), "an IPv4 network was expected"},
      {PoolRequest{"l", "192.0.2.0/24", "", {}, true}, "an IPv6 network was expected"},
      {V4("192.0.2.0/24", "198.51.100.0/25"), "--ip-range: it must lie inside --subnet 192.0.2.0/24"},
      {V4("192.0.2.0/24", "192.0.2.129/25"), "--ip-range: host bits are set"},
      {V4("192.0.2.0/24", "192.0.2.0/23"), "must lie inside"},
      {V4("192.0.2.0/24", "192.0.2.255/32"), "holds no usable address"},
      {V4("192.0.2.0/24", "", {{"colour", "red"}}), "unknown --ipam-opt \"colour\" (known: release_after, scope)"},
      {V4("192.0.2.0/24", "", {{"release_after", "soon"}}), "want \"keep\" or a duration"},
      {V4("192.0.2.0/24", "", {{"release_after", "-5m"}}), "want \"keep\" or a duration"},
      {V4("192.0.2.0/24", "", {{"scope", "host"}}), "invalid value \"host\" for --ipam-opt scope: want \"local\""},
  };
  for (const Case& c : cases) {
    Result<PoolConfig> r = ParsePoolRequest(c.req);
    ASSERT_FALSE(r.ok()) << c.must_contain;
    EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
    EXPECT_NE(r.status().message().find(c.must_contain), std::string::npos) << r.status().message();
  }
}

TEST(PoolTest, ScopePicksTheBookAndIsNotPartOfThePool) {
  EXPECT_EQ(ScopeOf(V4("192.0.2.0/24")).value(), PoolScope::kDefault);
  EXPECT_EQ(ScopeOf(V4("192.0.2.0/24", "", {{"scope", "local"}})).value(), PoolScope::kLocal);
  EXPECT_EQ(ScopeOf(V4("192.0.2.0/24", "", {{"scope", "shared"}})).value(), PoolScope::kShared);
  // One network with the option and one without are the same pool of the book that holds them.
  EXPECT_EQ(ParsePoolRequest(V4("192.0.2.0/24", "", {{"scope", "local"}})).value(),
            ParsePoolRequest(V4("192.0.2.0/24")).value());
}

TEST(PoolTest, RetentionDurations) {
  EXPECT_EQ(*ParseRetention("90").value(), 90);
  EXPECT_EQ(*ParseRetention("15m").value(), 900);
  EXPECT_EQ(*ParseRetention("24h").value(), 86400);
  EXPECT_EQ(*ParseRetention("7d").value(), 7 * 86400);
  EXPECT_FALSE(ParseRetention("keep").value().has_value());
  EXPECT_EQ(ParsePoolRequest(V4("192.0.2.0/24", "", {{"release_after", "2h"}}))->release_after_seconds, 7200);
}

}  // namespace
}  // namespace smv::ipam

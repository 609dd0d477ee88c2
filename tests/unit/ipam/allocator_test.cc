#include "ipam/allocator.h"

#include <gtest/gtest.h>

#include <random>
#include <set>

namespace smv::ipam {
namespace {

PoolConfig Config(std::string subnet, std::string range = "", bool v6 = false) {
  Result<PoolConfig> c = ParsePoolRequest(PoolRequest{"l", std::move(subnet), std::move(range), {}, v6});
  EXPECT_TRUE(c.ok()) << c.status().message();
  return *c;
}

IpAddress Ip(const char* s) { return *IpAddress::Parse(s); }

AddressRequest Want(const char* ip, std::string name = "") {
  AddressRequest r;
  if (ip != nullptr) r.preferred = Ip(ip);
  r.name = std::move(name);
  return r;
}

// Applies a choice the way the IPAM service does after storing it.
IpAddress Take(PoolAllocator& a, const AddressRequest& r) {
  Result<Choice> c = a.Choose(r);
  EXPECT_TRUE(c.ok()) << c.status().message();
  a.AddLease(c->address, Lease{r.gateway ? LeaseKind::kGateway : LeaseKind::kEndpoint, r.name, ""}, c->dynamic);
  if (c->reserve_for_name) a.AddReservation(r.name, c->address);
  return c->address;
}

TEST(IntervalSetTest, MergesSplitsAndFindsGaps) {
  IntervalSet s;
  for (Uint128 x : {5, 6, 7, 9}) s.Insert(x);
  EXPECT_EQ(s.interval_count(), 2u);
  s.Insert(8);
  EXPECT_EQ(s.interval_count(), 1u);
  EXPECT_EQ(*s.NextAbsent(5, 100), 10u);
  EXPECT_EQ(*s.NextAbsent(1, 100), 1u);
  EXPECT_FALSE(s.NextAbsent(5, 9).has_value());
  s.Erase(7);
  EXPECT_EQ(s.interval_count(), 2u);
  EXPECT_EQ(*s.NextAbsent(5, 9), 7u);
  EXPECT_TRUE(s.Contains(6));
  EXPECT_FALSE(s.Contains(7));
  s.Erase(7);  // idempotent
  s.Insert(6);
  EXPECT_EQ(s.interval_count(), 2u);
}

TEST(IntervalSetTest, MatchesAPlainSetUnderRandomOperations) {
  std::mt19937 rng(42);
  IntervalSet s;
  std::set<Uint128> ref;
  for (int i = 0; i < 20000; ++i) {
    const Uint128 x = rng() % 300;
    if (rng() % 2) {
      s.Insert(x);
      ref.insert(x);
    } else {
      s.Erase(x);
      ref.erase(x);
    }
    const Uint128 from = rng() % 300;
    std::optional<Uint128> want;
    for (Uint128 y = from; y < 300; ++y) {
      if (!ref.contains(y)) {
        want = y;
        break;
      }
    }
    ASSERT_EQ(s.NextAbsent(from, 299), want) << "step " << i;
  }
}

TEST(AllocatorTest, DynamicComesFromRangeAndSkipsGatewayAndTaken) {
  PoolAllocator a(Config("192.0.2.0/24", "192.0.2.128/30"));
  AddressRequest gw;
  gw.gateway = true;
  EXPECT_EQ(Take(a, gw).ToString(), "192.0.2.1");  // first of the subnet
  Take(a, Want("192.0.2.129"));                    // an --ip inside the range
  EXPECT_EQ(Take(a, Want(nullptr)).ToString(), "192.0.2.128");
  EXPECT_EQ(Take(a, Want(nullptr)).ToString(), "192.0.2.130");
  EXPECT_EQ(Take(a, Want(nullptr)).ToString(), "192.0.2.131");
  Result<Choice> full = a.Choose(Want(nullptr));
  ASSERT_FALSE(full.ok());
  EXPECT_EQ(full.status().code(), Code::kResourceExhausted);
  EXPECT_NE(full.status().message().find("--ip-range 192.0.2.128/30"), std::string::npos);
}

TEST(AllocatorTest, ExplicitAddressMayLieOutsideRangeButNotOutsideSubnet) {
  PoolAllocator a(Config("192.0.2.0/24", "192.0.2.128/25"));
  EXPECT_EQ(Take(a, Want("192.0.2.10")).ToString(), "192.0.2.10");
  struct Case {
    const char* ip;
    Code code;
    const char* text;
  };
  const Case cases[] = {
      {"192.0.2.10", Code::kAlreadyExists, "already in use"},
      {"198.51.100.1", Code::kInvalidArgument, "outside the network's subnet 192.0.2.0/24"},
      {"192.0.2.0", Code::kInvalidArgument, "network address"},
      {"192.0.2.255", Code::kInvalidArgument, "broadcast address"},
  };
  for (const Case& c : cases) {
    Result<Choice> r = a.Choose(Want(c.ip));
    ASSERT_FALSE(r.ok()) << c.ip;
    EXPECT_EQ(r.status().code(), c.code) << c.ip;
    EXPECT_NE(r.status().message().find(c.text), std::string::npos) << r.status().message();
  }
}

TEST(AllocatorTest, GatewayIsNeverGivenToAContainer) {
  PoolAllocator a(Config("192.0.2.0/29"));
  AddressRequest gw = Want("192.0.2.1");
  gw.gateway = true;
  Take(a, gw);
  Result<Choice> r = a.Choose(Want("192.0.2.1"));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("gateway"), std::string::npos);
  std::set<std::string> got;
  for (int i = 0; i < 5; ++i) got.insert(Take(a, Want(nullptr)).ToString());
  EXPECT_FALSE(got.contains("192.0.2.1"));
  EXPECT_FALSE(got.contains("192.0.2.7"));  // broadcast
  EXPECT_EQ(got.size(), 5u);
  // A repeated gateway request (dockerd's replay) is answered, not refused.
  Result<Choice> again = a.Choose(gw);
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->already_leased_as_gateway);
}

TEST(AllocatorTest, NameGetsItsReservationBackWithOrWithoutIp) {
  PoolAllocator a(Config("192.0.2.0/24", "192.0.2.128/25"));
  const IpAddress first = Take(a, Want(nullptr, "a-0"));
  EXPECT_EQ(a.ReservationOf("a-0"), first);
  a.RemoveLease(first);             // stop / rm: the reservation stays
  Take(a, Want(nullptr, "other"));  // someone else starts meanwhile
  EXPECT_EQ(Take(a, Want(nullptr, "a-0")), first);
  a.RemoveLease(first);
  EXPECT_EQ(Take(a, Want(first.ToString().c_str(), "a-0")), first);
}

TEST(AllocatorTest, ReservedAddressIsRefusedToAnotherNameAndSkippedByDynamic) {
  PoolAllocator a(Config("192.0.2.0/29"));  // usable .1 - .6
  const IpAddress x = Take(a, Want("192.0.2.3", "a-0"));
  a.RemoveLease(x);
  Result<Choice> r = a.Choose(Want("192.0.2.3", "b"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kFailedPrecondition);
  EXPECT_NE(r.status().message().find("reserved for container \"a-0\""), std::string::npos);
  EXPECT_NE(r.status().message().find("static-macvlan reservations release a-0"), std::string::npos);
  std::set<IpAddress> got;
  for (int i = 0; i < 5; ++i) got.insert(Take(a, Want(nullptr, "n" + std::to_string(i))));
  EXPECT_FALSE(got.contains(x));
  EXPECT_EQ(a.Choose(Want(nullptr, "n9")).status().code(), Code::kResourceExhausted);
}

// A name stored before names were checked as Docker checks them may hold a space or a quote: the
// release command the refusal prints is still one the shell runs as written.
TEST(AllocatorTest, TheReleaseCommandOfARefusalQuotesTheName) {
  PoolAllocator a(Config("192.0.2.0/29"));
  a.AddReservation("it's web", Ip("192.0.2.3"));
  Result<Choice> r = a.Choose(Want("192.0.2.3", "b"));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find(R"(static-macvlan reservations release 'it'\''s web')"), std::string::npos)
      << r.status().message();
}

TEST(AllocatorTest, NameAskingAgainWhileHoldingItsAddressGetsItAgain) {
  // The answer to the first request was lost (the plugin died before replying); dockerd's retry
  // or the next start of the same name must not push the name off its own address.
  PoolAllocator a(Config("192.0.2.0/24"));
  const IpAddress x = Take(a, Want(nullptr, "a-0"));
  Result<Choice> again = a.Choose(Want(nullptr, "a-0"));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->address, x);
  EXPECT_EQ(a.Choose(Want(x.ToString().c_str(), "a-0"))->address, x);
  EXPECT_EQ(a.Choose(Want(x.ToString().c_str(), "b-0")).status().code(), Code::kAlreadyExists);
  AddressRequest hinted;
  hinted.hint_name = "a-0";  // a guess is not enough to share a held address
  EXPECT_NE(a.Choose(hinted)->address, x);
}

TEST(AllocatorTest, ExplicitNewAddressMovesTheNamesReservation) {
  PoolAllocator a(Config("192.0.2.0/24"));
  const IpAddress old = Take(a, Want("192.0.2.20", "web"));
  a.RemoveLease(old);
  Result<Choice> c = a.Choose(Want("192.0.2.30", "web"));
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(c->reserve_for_name);
  a.AddReservation("web", c->address);
  EXPECT_EQ(a.ReservationOf("web")->ToString(), "192.0.2.30");
  EXPECT_FALSE(a.ReservedFor(old).has_value());
}

TEST(AllocatorTest, RequestWithoutNameMayTakeAReservedAddressExplicitly) {
  // Engines before Docker 29 send no name; the owner check then happens at Join.
  PoolAllocator a(Config("192.0.2.0/24"));
  a.RemoveLease(Take(a, Want("192.0.2.40", "a-0")));
  EXPECT_TRUE(a.Choose(Want("192.0.2.40")).ok());
}

TEST(AllocatorTest, NextFitDoesNotReuseAReleasedAddressAtOnce) {
  PoolAllocator a(Config("192.0.2.0/24", "192.0.2.128/25"));
  const IpAddress first = Take(a, Want(nullptr));
  a.RemoveLease(first);
  EXPECT_NE(Take(a, Want(nullptr)), first);
}

// A book shared by hosts: a name holding its address on one node is refused on another, naming
// the node (the same name twice on one VLAN would be one address on two hosts).
TEST(AllocatorTest, ANameRunningOnAnotherNodeIsRefusedNamingIt) {
  PoolAllocator a(Config("192.0.2.0/24"));
  const IpAddress web = Take(a, Want(nullptr, "web"));
  a.RemoveLease(web);
  a.AddLease(web, Lease{.kind = LeaseKind::kEndpoint, .name = "web", .node = "host-a"});
  AddressRequest from_b = Want(nullptr, "web");
  from_b.node = "host-b";
  Result<Choice> refused = a.Choose(from_b);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), Code::kFailedPrecondition);
  EXPECT_NE(refused.status().message().find("running on node host-a with address 192.0.2.1"), std::string::npos)
      << refused.status().message();
  AddressRequest from_a = Want(nullptr, "web");
  from_a.node = "host-a";  // a repeat on its own node (a lost answer) gets the same address
  Result<Choice> again = a.Choose(from_a);
  ASSERT_TRUE(again.ok()) << again.status().message();
  EXPECT_EQ(again->address, web);
}

TEST(AllocatorTest, AMovedCursorStartsItsSearchThereAndWrapsAround) {
  PoolAllocator a(Config("192.0.2.0/24", "192.0.2.64/26"));
  a.MoveCursor(64 + 5);  // modulo the range's 64 addresses: its sixth
  EXPECT_EQ(Take(a, Want(nullptr)).ToString(), "192.0.2.69");
  a.MoveCursor(63);  // the range's last address, then around to its first
  EXPECT_EQ(Take(a, Want(nullptr)).ToString(), "192.0.2.127");
  EXPECT_EQ(Take(a, Want(nullptr)).ToString(), "192.0.2.64");
}

TEST(AllocatorTest, Ipv6Slash64CostsMemoryOnlyForWhatIsTaken) {
  PoolAllocator a(Config("2001:db8:228::/64", "", true));
  for (int i = 0; i < 1000; ++i) Take(a, Want(nullptr));
  // 1000 consecutive leases are one interval, whatever the size of the /64.
  EXPECT_EQ(a.leases().size(), 1000u);
  EXPECT_EQ(Take(a, Want(nullptr)).ToString(), "2001:db8:228::3e9");
}

TEST(AllocatorTest, AlmostFullPoolStillFindsTheLastHoleInOneStep) {
  PoolAllocator a(Config("192.0.2.0/24"));
  for (int i = 0; i < 253; ++i) Take(a, Want(nullptr));
  a.RemoveLease(Ip("192.0.2.7"));
  EXPECT_EQ(Take(a, Want(nullptr)).ToString(), "192.0.2.254");
  EXPECT_EQ(Take(a, Want(nullptr)).ToString(), "192.0.2.7");  // wraps around to the hole
  EXPECT_EQ(a.Choose(Want(nullptr)).status().code(), Code::kResourceExhausted);
}

}  // namespace
}  // namespace smv::ipam

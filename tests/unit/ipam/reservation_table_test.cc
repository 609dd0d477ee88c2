// The compact reservation table against a plain ordered-map model, through random changes that
// exercise index growth, backward-shift deletion, slot moves and name compaction.

#include "ipam/reservation_table.h"

#include <gtest/gtest.h>

#include <map>
#include <random>
#include <string>

namespace smv::ipam {
namespace {

TEST(ReservationTableTest, KeepsDetailsAndNormalizesTheMac) {
  ReservationTable t;
  t.Put("web", 10, "02:42:C0:A8:00:0A", 1000, 0);
  t.Put("db", 11, "not a mac", -5, 1ll << 40);
  std::optional<ReservedName> web = t.Find("web");
  ASSERT_TRUE(web.has_value());
  EXPECT_EQ(web->address, Uint128{10});
  EXPECT_EQ(web->mac, "02:42:c0:a8:00:0a");
  EXPECT_EQ(web->since, 1000);
  std::optional<ReservedName> db = t.Find("db");
  EXPECT_EQ(db->mac, "");                   // kept as none
  EXPECT_EQ(db->since, 0);                  // clamped
  EXPECT_EQ(db->gone_since, 0xffffffffll);  // clamped to what 32 bits hold
  EXPECT_EQ(t.NameAt(11), "db");
  EXPECT_FALSE(t.NameAt(12).has_value());
  t.Put("api", 12, "02:42:c0:a8:00:0a", 1000, 0);  // the MAC moved to another name
  EXPECT_EQ(t.FirstNameWithMac(*MacAddress::Parse("02:42:c0:a8:00:0a")), "api");
  EXPECT_EQ(t.FirstNameWithMac(*MacAddress::Parse("02:42:c0:a8:00:0b")), "");
}

TEST(ReservationTableTest, OneNamePerAddressAndOneAddressPerName) {
  ReservationTable t;
  t.Put("a", 1, "", 0, 0);
  t.Put("b", 2, "", 0, 0);
  t.Put("a", 2, "", 0, 0);  // "a" moves onto "b"'s address: "b" loses it
  EXPECT_EQ(t.size(), 1u);
  EXPECT_EQ(t.NameAt(2), "a");
  EXPECT_FALSE(t.NameAt(1).has_value());
  EXPECT_FALSE(t.Find("b").has_value());
  EXPECT_TRUE(t.Erase("a"));
  EXPECT_FALSE(t.Erase("a"));
  EXPECT_TRUE(t.empty());
}

TEST(ReservationTableTest, MatchesAnOrderedMapModelThroughRandomChanges) {
  std::mt19937 rng(7);
  ReservationTable t;
  std::map<std::string, Uint128> by_name;
  std::map<Uint128, std::string> by_address;
  for (int step = 0; step < 60000; ++step) {
    // Few addresses and names, so that moves, clashes and erasures of present keys are common.
    const std::string name = "container-" + std::to_string(rng() % 3000);
    // Steps 20,000-39,999 also use other /64s: the table then keeps a high part per slot, and
    // the steps before and after check the shared one, before and after that.
    const uint64_t other_64 = step >= 20000 && step < 40000 ? rng() % 3 : 0;
    const Uint128 address = (Uint128{0x20010db8} << 96) + (Uint128{other_64} << 64) + rng() % 4000;
    if (rng() % 3 == 0) {
      EXPECT_EQ(t.Erase(name), by_name.contains(name));
      if (auto it = by_name.find(name); it != by_name.end()) {
        by_address.erase(it->second);
        by_name.erase(it);
      }
    } else {
      t.Put(name, address, "", step, 0);
      if (auto held = by_address.find(address); held != by_address.end()) by_name.erase(held->second);
      if (auto old = by_name.find(name); old != by_name.end()) by_address.erase(old->second);
      by_name[name] = address;
      by_address[address] = name;
    }
    if (step % 5000 == 0 || step == 59999) {
      ASSERT_EQ(t.size(), by_name.size()) << "step " << step;
      for (const auto& [n, a] : by_name) {
        ASSERT_EQ(t.Find(n)->address, a) << n;
        ASSERT_EQ(t.NameAt(a), n);
      }
      size_t seen = 0;
      t.ForEach([&](const ReservedName& r) {
        ++seen;
        EXPECT_EQ(by_name.at(std::string(r.name)), r.address);
      });
      EXPECT_EQ(seen, by_name.size());
    }
  }
}

TEST(ReservationTableTest, AddressesInDifferentSixtyFourBitHalvesKeepTheirHighPart) {
  ReservationTable t;
  const Uint128 net1 = (Uint128{0x20010db8'00000001} << 64);  // 2001:db8:0:1::/64
  const Uint128 net2 = (Uint128{0x20010db8'00000002} << 64);  // 2001:db8:0:2::/64
  t.Put("a", net1 + 5, "", 1, 0);
  t.Put("b", net1 + 6, "", 1, 0);
  t.Put("c", net2 + 5, "", 1, 0);  // same low half as a's
  EXPECT_EQ(t.NameAt(net1 + 5), "a");
  EXPECT_EQ(t.NameAt(net2 + 5), "c");
  EXPECT_EQ(t.AddressFor("b"), net1 + 6);
  ASSERT_TRUE(t.Erase("a"));  // c moves into a's slot, with its high part
  EXPECT_EQ(t.AddressFor("c"), net2 + 5);
  EXPECT_FALSE(t.NameAt(net1 + 5).has_value());
  t.Put("b", net2 + 6, "", 1, 0);  // a name moves to the other /64
  EXPECT_EQ(t.NameAt(net2 + 6), "b");
  EXPECT_FALSE(t.NameAt(net1 + 6).has_value());
  ASSERT_TRUE(t.Erase("b"));
  ASSERT_TRUE(t.Erase("c"));
  t.Put("d", net1 + 7, "", 1, 0);  // an emptied table starts again with one shared high part
  t.Put("e", net1 + 8, "", 1, 0);
  EXPECT_EQ(t.AddressFor("d"), net1 + 7);
  EXPECT_EQ(t.NameAt(net1 + 8), "e");
  EXPECT_FALSE(t.NameAt(net2 + 7).has_value());
}

// The point of the table: 65,536 reservations in a few MiB (the P5 benchmark's load): a 32-byte
// slot, the name's bytes and two 4-byte index entries at a load of a half to three quarters.
TEST(ReservationTableTest, SixtyFiveThousandNamesFitInUnderSixtyBytesEach) {
  ReservationTable t;
  for (uint32_t i = 0; i < 65536; ++i) {
    t.Put("c-" + std::to_string(i), (Uint128{198} << 24) + i, "02:42:00:00:00:01", 1, 0);
  }
  t.ShrinkToFit();
  EXPECT_EQ(t.size(), 65536u);
  EXPECT_LT(t.bytes(), 65536u * 60);
  EXPECT_EQ(t.NameAt((Uint128{198} << 24) + 65535), "c-65535");
}

}  // namespace
}  // namespace smv::ipam

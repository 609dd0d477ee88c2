#include "ipam/records.h"

#include <gtest/gtest.h>

namespace smv::ipam::records {
namespace {

LeaseRecord ALease(std::string node) {
  return {.pool_id = "192.0.2.0/24",
          .address = *IpAddress::Parse("192.0.2.7"),
          .lease = {.kind = LeaseKind::kEndpoint, .name = "web", .mac = "02:00:00:00:00:07", .node = std::move(node)},
          .since = 42};
}

TEST(IpamRecords, ALeaseOnASingleHostIsWrittenWithoutANode) {
  const LeaseRecord lease = ALease("");
  const std::string value = EncodeLease(lease);
  // The format of release a53141f (the golden store) exactly: no "node" field.
  EXPECT_EQ(value, R"({"kind":"endpoint","mac":"02:00:00:00:00:07","name":"web","since":42,"v":1})");
  Result<LeaseRecord> back = DecodeLease("ipam_leases", LeaseKey(lease.pool_id, lease.address), value);
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(back->lease.node, "");
  EXPECT_EQ(back->lease.name, "web");
  EXPECT_EQ(back->since, 42);
}

TEST(IpamRecords, ALeaseInASharedBookKeepsItsNode) {
  const LeaseRecord lease = ALease("host-a");
  Result<LeaseRecord> back = DecodeLease("etcd", LeaseKey(lease.pool_id, lease.address), EncodeLease(lease));
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(back->lease.node, "host-a");
  EXPECT_EQ(back->address.ToString(), "192.0.2.7");
  EXPECT_EQ(back->lease.mac, "02:00:00:00:00:07");
}

TEST(IpamRecords, AMistypedNodeIsAClearErrorNamingKeyAndField) {
  const LeaseRecord lease = ALease("");
  Result<LeaseRecord> back =
      DecodeLease("etcd", LeaseKey(lease.pool_id, lease.address), R"({"v":1,"kind":"endpoint","name":"web","node":7})");
  ASSERT_FALSE(back.ok());
  EXPECT_EQ(back.status().code(), Code::kInternal);
  EXPECT_NE(back.status().message().find("node"), std::string::npos) << back.status().message();
  EXPECT_NE(back.status().message().find("192.0.2.7"), std::string::npos) << back.status().message();
}

TEST(IpamRecords, APoolInASharedBookKeepsEachNodesRangeAndACorruptOneIsNamed) {
  Result<PoolConfig> config = ParsePoolRequest({.pool = "198.18.0.0/22"});
  ASSERT_TRUE(config.ok());
  const PoolRecord pool{.config = *config,
                        .users = 2,
                        .node_ranges = {{"host-a", "198.18.0.0/24"}, {"host-b", "198.18.1.0/24"}},
                        .aux = {{"dns", "198.18.0.3"}},
                        .aux_set_by = "host-a"};
  const std::string value = EncodePool(pool);
  Result<PoolRecord> back = DecodePool("etcd", PoolKey(pool.config.id), value);
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(back->node_ranges, pool.node_ranges);
  EXPECT_EQ(back->users, 2);
  EXPECT_EQ(back->aux, pool.aux);
  EXPECT_EQ(back->aux_set_by, "host-a");
  // A single host's pool is written as before: no node_ranges field (the golden store pins it).
  const std::string local = EncodePool(PoolRecord{.config = *config});
  EXPECT_EQ(local.find("node_ranges"), std::string::npos);
  EXPECT_EQ(local.find("aux"), std::string::npos);

  Result<PoolRecord> corrupt =
      DecodePool("etcd", PoolKey(pool.config.id),
                 R"({"v":1,"subnet":"198.18.0.0/22","users":1,"node_ranges":{"host-a":"10.0.0.0/24"}})");
  ASSERT_FALSE(corrupt.ok());
  EXPECT_EQ(corrupt.status().code(), Code::kInternal);
  EXPECT_NE(corrupt.status().message().find("node_ranges[host-a]"), std::string::npos) << corrupt.status().message();
}

TEST(IpamRecords, AJournaledReleaseIsPinnedAndRoundTrips) {
  const JournaledRelease release{"192.0.2.0/24", *IpAddress::Parse("192.0.2.7"), "host-a"};
  const std::string value = EncodeJournaledRelease(release);
  EXPECT_EQ(value, R"({"node":"host-a","v":1})");  // on disk from now on: see records.h
  Result<JournaledRelease> back =
      DecodeJournaledRelease("ipam_release_journal", LeaseKey(release.pool_id, release.address), value);
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(*back, release);
  Result<JournaledRelease> nameless =
      DecodeJournaledRelease("ipam_release_journal", LeaseKey(release.pool_id, release.address), R"({"v":1})");
  ASSERT_FALSE(nameless.ok());
  EXPECT_NE(nameless.status().message().find("node"), std::string::npos) << nameless.status().message();
}

}  // namespace
}  // namespace smv::ipam::records

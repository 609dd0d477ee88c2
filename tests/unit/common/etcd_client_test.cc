// The etcd client's parts that need no cluster: the --store address, prefix ranges, and the
// error when no member answers (tests/etcd has the rest, against a real cluster).

#include <gtest/gtest.h>

#include "common/etcd/kv_client.h"

namespace smv::etcd {
namespace {

TEST(EtcdEndpointsTest, ParsesEveryMember) {
  auto e = ParseEndpoints("etcd://10.0.0.1:2379,etcd-b:2381,[2001:db8::1]:2379", "--store");
  ASSERT_TRUE(e.ok()) << e.status().message();
  ASSERT_EQ(e->size(), 3u);
  EXPECT_EQ((*e)[0], (Endpoint{.host = "10.0.0.1", .port = 2379}));
  EXPECT_EQ((*e)[1], (Endpoint{.host = "etcd-b", .port = 2381}));
  EXPECT_EQ((*e)[2], (Endpoint{.host = "[2001:db8::1]", .port = 2379}));
}

TEST(EtcdEndpointsTest, BadAddressesAreRefusedNamingTheOptionAndTheValue) {
  for (const char* bad : {"lmdb", "http://h:2379", "etcd://", "etcd://h", "etcd://h:0", "etcd://h:65536",
                          "etcd://h:23x", "etcd://h:2379,", "etcd://:2379"}) {
    auto e = ParseEndpoints(bad, "--store");
    ASSERT_FALSE(e.ok()) << bad;
    EXPECT_EQ(e.status().code(), Code::kInvalidArgument);
    EXPECT_NE(e.status().message().find(std::string("--store \"") + bad + "\""), std::string::npos)
        << e.status().message();
    EXPECT_NE(e.status().message().find("etcd://HOST:PORT"), std::string::npos) << e.status().message();
  }
}

TEST(EtcdEndpointsTest, PrefixEndIsThePrefixWithItsLastByteIncremented) {
  EXPECT_EQ(PrefixEnd("smv/names/"), "smv/names0");
  EXPECT_EQ(PrefixEnd(std::string("a\xff", 2)), "b");
  EXPECT_EQ(PrefixEnd(""), std::string(1, '\0'));
}

TEST(EtcdClientTest, NoMemberAnsweringIsUnavailableAndNamesTheMember) {
  KvClient client({.endpoints = {{.host = "127.0.0.1", .port = 1}}, .deadline = std::chrono::milliseconds(300)});
  auto r = client.Get("x");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kUnavailable);
  EXPECT_NE(r.status().message().find("shared address store unavailable (etcd: 127.0.0.1:1"), std::string::npos)
      << r.status().message();
}

}  // namespace
}  // namespace smv::etcd

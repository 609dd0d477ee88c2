#include "driver/records.h"

#include <gtest/gtest.h>

namespace smv::driver::records {
namespace {

TEST(DriverRecords, RoundTripKeepsEveryField) {
  NetworkRecord n{.id = "n1",
                  .options = {{"parent", "eth1"}, {"vlan", "228"}},
                  .ipv4 = {{*Prefix::Parse("192.0.2.0/24"), IpAddress::Parse("192.0.2.1")}},
                  .ipv6 = {{*Prefix::Parse("2001:db8::/64"), std::nullopt}},
                  .internal = true};
  Result<NetworkRecord> back = DecodeNetwork("networks", "n1", EncodeNetwork(n));
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(back->options, n.options);
  EXPECT_EQ(back->ipv4, n.ipv4);
  EXPECT_EQ(back->ipv6, n.ipv6);
  EXPECT_TRUE(back->internal);
  EndpointRecord e{.network_id = "n1",
                   .endpoint_id = "e1",
                   .link_name = "smve1",
                   .mac = "02:00:00:00:00:01",
                   .address_v4 = "192.0.2.5/24",
                   .sandbox_key = "/sb",
                   .container_name = "web",
                   .since = 7};
  Result<EndpointRecord> eb = DecodeEndpoint("endpoints", "e1", EncodeEndpoint(e));
  ASSERT_TRUE(eb.ok());
  EXPECT_EQ(eb->endpoint_id, "e1");
  EXPECT_EQ(eb->container_name, "web");
  EXPECT_EQ(eb->since, 7);
  Result<LinkRecord> lb = DecodeLink("links", "eth1.228", EncodeLink({"eth1.228", true, false}));
  ASSERT_TRUE(lb.ok());
  EXPECT_TRUE(lb->created_by_us);
  EXPECT_EQ(lb->name, "eth1.228");
}

// Corrupt or mistyped stored values are errors that name the database, the key and the field;
// nothing throws.
TEST(DriverRecords, CorruptValuesAreClearErrorsNeverExceptions) {
  struct Case {
    const char* value;
    Code code;
    const char* text;
  } cases[] = {
      {"not json", Code::kInternal, "corrupt record in endpoints (key \"e\\x00x\"): not a JSON object"},
      {"[1]", Code::kInternal, "not a JSON object"},
      {R"({"network":"n"})", Code::kInternal, "no record version"},
      {R"({"v":"1","network":"n"})", Code::kInternal, "no record version"},
      {R"({"v":9,"network":"n"})", Code::kFailedPrecondition,
       "has version 9, newer than this static-macvlan understands (1)"},
      {R"({"v":1})", Code::kInternal, "field \"network\" is missing"},
      {R"({"v":1,"network":5})", Code::kInternal, "field \"network\": want a string, got 5"},
      {R"({"v":1,"network":"n","since":"yesterday"})", Code::kInternal, "field \"since\": want an integer"},
      {R"({"v":1,"network":"n","since":1.5})", Code::kInternal, "field \"since\": want an integer"},
  };
  for (const Case& c : cases) {
    Result<EndpointRecord> r = DecodeEndpoint("endpoints", std::string_view("e\0x", 3), c.value);
    ASSERT_FALSE(r.ok()) << c.value;
    EXPECT_EQ(r.status().code(), c.code) << c.value;
    EXPECT_NE(r.status().message().find(c.text), std::string::npos) << c.value << " -> " << r.status().message();
  }
  for (const char* value : {R"({"v":1,"ipv4":[{"pool":"x"}]})", R"({"v":1,"ipv4":[{"gateway":"192.0.2.1"}]})",
                            R"({"v":1,"ipv4":{}})", R"({"v":1,"options":{"parent":1}})", R"({"v":1,"internal":"yes"})",
                            R"({"v":1,"ipv4":[{"pool":"192.0.2.0/24","gateway":"banana"}]})"}) {
    Result<NetworkRecord> r = DecodeNetwork("networks", "n1", value);
    ASSERT_FALSE(r.ok()) << value;
    EXPECT_EQ(r.status().code(), Code::kInternal) << value;
    EXPECT_NE(r.status().message().find("in networks (key \"n1\"): field \""), std::string::npos)
        << r.status().message();
  }
}

TEST(DriverRecords, FieldsAddedLaterDefaultWhenAbsent) {
  Result<EndpointRecord> r = DecodeEndpoint("endpoints", "e1", R"({"v":1,"network":"n1"})");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->container_name, "");
  EXPECT_EQ(r->since, 0);
  Result<LinkRecord> l = DecodeLink("links", "eth1", R"({"v":1})");
  ASSERT_TRUE(l.ok());
  EXPECT_FALSE(l->promisc_by_us);
}

}  // namespace
}  // namespace smv::driver::records

// The daemon's cross-service classes on plain values, without JSON: network creation (admission,
// host_ip lease and its rollback), the reservation commands, and the pool gauges of /metrics.

#include <gtest/gtest.h>

#include "common/log.h"
#include "daemon/network_creation.h"
#include "daemon/pool_metrics.h"
#include "daemon/reservation_commands.h"
#include "ipam/ipam_service.h"
#include "tests/support/fake_engine.h"
#include "tests/support/fake_link_ops.h"
#include "tests/support/memory_stores.h"

namespace smv::daemon {
namespace {

const std::string kNetworkId = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

class CrossServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    links_.AddExisting({.name = "eth1", .kind = "veth", .up = true});
    driver_ = std::move(driver::DriverService::Create(links_, net_store_).value());
    ipam_ = std::move(ipam::IpamService::Create(ipam_store_).value());
    pool_id_ = ipam_->RequestPool({.address_space = "static-macvlan-local", .pool = "192.0.2.0/24"}).value().pool_id;
  }
  // A CreateNetwork as dockerd sends it for a network on our pool, with extra driver options.
  api::wire::CreateNetworkRequest Request(std::map<std::string, std::string> options) {
    api::wire::CreateNetworkRequest r;
    options["parent"] = "eth1";
    r.call.network_id = kNetworkId;
    r.call.options = options;
    r.v4.push_back({.data = {*Prefix::Parse("192.0.2.0/24"), IpAddress::Parse("192.0.2.1")},
                    .address_space = "static-macvlan-local",
                    .aux = {}});
    r.call.ipv4.push_back(r.v4.back().data);
    return r;
  }
  // Whether the IPAM would still hand out `address` (it is not leased).
  bool Free(const std::string& address) {
    Result<std::string> got = ipam_->RequestAddress({.pool_id = pool_id_, .address = address});
    if (got.ok()) {
      EXPECT_TRUE(ipam_->ReleaseAddress(pool_id_, address).ok());
    }
    return got.ok();
  }

  testing::FakeLinkOps links_;
  testing::MemoryNetworkStore net_store_;
  testing::MemoryIpamStore ipam_store_;
  std::unique_ptr<driver::DriverService> driver_;
  std::unique_ptr<ipam::IpamService> ipam_;
  std::string pool_id_;
};

TEST_F(CrossServiceTest, HostIpIsLeasedWithTheNetworkAndGivenBackWhenTheCreateFails) {
  NetworkCreation creation(*driver_, *ipam_);
  links_.fail_macvlan = true;  // the host link cannot be made: the driver fails after admission
  EXPECT_FALSE(creation.Create(Request({{"host_ip", "192.0.2.250"}})).ok());
  EXPECT_TRUE(Free("192.0.2.250")) << "the failed create left host_ip leased";
  EXPECT_FALSE(driver_->FindNetwork(kNetworkId));
  links_.fail_macvlan = false;
  ASSERT_TRUE(creation.Create(Request({{"host_ip", "192.0.2.250"}})).ok());
  EXPECT_FALSE(Free("192.0.2.250")) << "no container may get the host's address";
}

TEST_F(CrossServiceTest, HostIpOutsideTheSubnetIsRefusedByName) {
  Status s = NetworkCreation(*driver_, *ipam_).Create(Request({{"host_ip", "198.51.100.7"}}));
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  EXPECT_NE(s.message().find("\"198.51.100.7\" for option \"host_ip\""), std::string::npos) << s.message();
}

TEST_F(CrossServiceTest, PoolsWeNeverGaveAreRefusedBeforeTheDriverCreatesAnything) {
  api::wire::CreateNetworkRequest r = Request({});
  r.v4[0].address_space = "LocalDefault";  // Docker's own IPAM
  EXPECT_EQ(NetworkCreation(*driver_, *ipam_).Create(r).code(), Code::kFailedPrecondition);
  EXPECT_EQ(net_store_.network_count(), 0u);
}

TEST_F(CrossServiceTest, ReservationCommandsNameTheNetworkByIdPrefixOrEngineName) {
  ASSERT_TRUE(NetworkCreation(*driver_, *ipam_).Create(Request({})).ok());
  testing::FakeEngine engine;
  engine.networks[kNetworkId] = {.id = kNetworkId, .name = "lan"};
  ReservationCommands commands(*driver_, *ipam_, &engine);
  Result<std::string> pool = commands.Reserve("web", "192.0.2.9", kNetworkId.substr(0, 6));
  ASSERT_TRUE(pool.ok()) << pool.status().message();
  EXPECT_EQ(*pool, pool_id_);
  Result<std::vector<ipam::ReservationView>> listed = commands.List("lan");
  ASSERT_TRUE(listed.ok()) << listed.status().message();
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ(listed->front().record.name, "web");
  EXPECT_EQ(commands.Reserve("db", "198.51.100.9", "lan").status().message(),
            "address 198.51.100.9 is outside every subnet of network \"lan\"");
  EXPECT_EQ(commands.Reserve("db", "192.0.2.x", "lan").status().code(), Code::kInvalidArgument);
  EXPECT_EQ(commands.List("wan").status().code(), Code::kNotFound);
  EXPECT_EQ(*commands.Release("192.0.2.9"), 1);
  Result<int> again = commands.Release("web");
  EXPECT_EQ(again.status().code(), Code::kNotFound);
  EXPECT_EQ(again.status().message(), "no reservation for \"web\" (see static-macvlan reservations ls)");
}

TEST_F(CrossServiceTest, PoolGaugesCountLeasesAndFreeReservationsByNetwork) {
  ASSERT_TRUE(NetworkCreation(*driver_, *ipam_).Create(Request({})).ok());
  ASSERT_TRUE(ipam_->RequestAddress({.pool_id = pool_id_, .address = "", .name = "web"}).ok());
  ASSERT_TRUE(ipam_->Reserve(pool_id_, "db", *IpAddress::Parse("192.0.2.20")).ok());
  std::vector<metrics::PoolGauges> gauges = PoolGaugesNow(*driver_, *ipam_);
  ASSERT_EQ(gauges.size(), 1u);
  EXPECT_EQ(gauges[0].pool, pool_id_);
  EXPECT_EQ(gauges[0].network, ShortId(kNetworkId));
  EXPECT_EQ(gauges[0].addresses, 256);
  EXPECT_EQ(gauges[0].in_use, 1);         // web's lease
  EXPECT_EQ(gauges[0].reserved_free, 1);  // db: reserved, not leased
  EXPECT_EQ(gauges[0].drifted, 0);
}

}  // namespace
}  // namespace smv::daemon

// Upgrade test: a state directory written by an earlier release (tests/golden/<release>/, made by
// tests/golden/make_golden.sh) must open and read identically with this build, and this build
// must write the same records byte for byte while the record version stays the same.

#include <gtest/gtest.h>

#include <filesystem>
#include <map>

#include "common/lmdb/env.h"
#include "daemon/state_check.h"
#include "daemon/state_stores.h"
#include "driver/driver_service.h"
#include "driver/lmdb_network_store.h"
#include "ipam/ipam_service.h"
#include "ipam/lmdb_store.h"
#include "tests/support/fake_link_ops.h"
#include "tests/support/temp_dir.h"

namespace smv {
namespace {

namespace fs = std::filesystem;

constexpr size_t kMapSize = size_t{64} << 20;
const std::string kNet1(64, '1');
const std::string kNet2(64, '2');
const std::string kEp1(64, 'a');
const std::string kPoolV4 = "192.0.2.0/24 range 192.0.2.128/25";
const std::string kPoolV6 = "2001:db8:228::/64";
constexpr int64_t kWrittenAt = 1796237898;  // when make_golden.sh ran for release a53141f

// One state directory: the env and both stores on it.
struct StateDir : daemon::StateStores {
  static StateDir Open(const std::string& dir) {
    StateDir s;
    static_cast<daemon::StateStores&>(s) = std::move(daemon::OpenStateStores(dir, kMapSize).value());
    return s;
  }
  // Every key and value of every database, raw.
  std::map<std::string, std::map<std::string, std::string>> Raw() {
    std::map<std::string, std::map<std::string, std::string>> out;
    lmdb::Txn txn = std::move(env->BeginRead().value());
    std::vector<std::string> dbs = ipam::LmdbIpamStore::DatabaseNames();
    for (const std::string& db : driver::LmdbNetworkStore::DatabaseNames()) dbs.push_back(db);
    for (const std::string& db : dbs) {
      EXPECT_TRUE(txn.ForEach(*env->Database(db), "",
                              [&](std::string_view k, std::string_view v) {
                                out[db][std::string(k)] = std::string(v);
                                return OkStatus();
                              })
                      .ok());
    }
    return out;
  }
};

class GoldenStoreTest : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override {
    const fs::path golden = fs::path(SMV_GOLDEN_DIR) / GetParam() / "data.mdb";
    ASSERT_TRUE(fs::exists(golden)) << "missing golden store file: " << golden.string();
    fs::create_directories(dir_.Sub("state"));
    fs::copy_file(golden, dir_.Sub("state") + "/data.mdb");  // LMDB opens it read-write
    state_ = StateDir::Open(dir_.Sub("state"));
  }
  testing::TempDir dir_;
  StateDir state_;
};

TEST_P(GoldenStoreTest, IpamRecordsReadAsTheReleaseWroteThem) {
  Result<ipam::IpamSnapshot> s = state_.ipam->Load();
  ASSERT_TRUE(s.ok()) << s.status().message();
  ASSERT_EQ(s->pools.size(), 3u);
  std::map<std::string, ipam::PoolRecord> pools;
  for (const ipam::PoolRecord& p : s->pools) pools[p.config.id] = p;
  const ipam::PoolConfig& v4 = pools.at(kPoolV4).config;
  EXPECT_EQ(v4.subnet.ToString(), "192.0.2.0/24");
  EXPECT_EQ(v4.range->ToString(), "192.0.2.128/25");
  EXPECT_EQ(v4.release_after_seconds, 24 * 3600);
  EXPECT_EQ(pools.at(kPoolV4).users, 1);
  EXPECT_FALSE(pools.at(kPoolV6).config.range.has_value());
  EXPECT_EQ(pools.at(kPoolV6).config.subnet.family(), Family::kV6);
  EXPECT_TRUE(pools.contains("203.0.113.0/24"));

  std::map<std::string, ipam::LeaseRecord> leases;
  for (const ipam::LeaseRecord& l : s->leases) leases[l.address.ToString()] = l;
  ASSERT_EQ(leases.size(), 4u);
  EXPECT_EQ(leases.at("192.0.2.254").lease.kind, ipam::LeaseKind::kGateway);
  EXPECT_EQ(leases.at("192.0.2.128").lease.name, "web-0");
  EXPECT_EQ(leases.at("192.0.2.128").lease.mac, "02:00:00:00:02:28");
  EXPECT_EQ(leases.at("192.0.2.128").pool_id, kPoolV4);
  EXPECT_EQ(leases.at("2001:db8:228::2").lease.kind, ipam::LeaseKind::kEndpoint);
  EXPECT_EQ(leases.at("2001:db8:228::1").since, kWrittenAt);

  std::map<std::pair<std::string, std::string>, ipam::ReservationRecord> reservations;
  for (const ipam::ReservationRecord& r : s->reservations) reservations[{r.pool_id, r.name}] = r;
  ASSERT_EQ(reservations.size(), 4u);
  EXPECT_EQ(reservations.at({kPoolV4, "api-0"}).address.ToString(), "192.0.2.129");
  EXPECT_EQ(reservations.at({kPoolV4, "db-0"}).address.ToString(), "192.0.2.20");
  EXPECT_EQ(reservations.at({kPoolV4, "web-0"}).mac, "02:00:00:00:02:28");
  EXPECT_EQ(reservations.at({kPoolV6, "web-0"}).address.ToString(), "2001:db8:228::2");
  EXPECT_EQ(reservations.at({kPoolV4, "web-0"}).since, kWrittenAt);
  EXPECT_EQ(reservations.at({kPoolV4, "web-0"}).gone_since, 0);
}

TEST_P(GoldenStoreTest, NetworkRecordsReadAsTheReleaseWroteThem) {
  Result<driver::DriverSnapshot> s = state_.networks->Load();
  ASSERT_TRUE(s.ok()) << s.status().message();
  ASSERT_EQ(s->networks.size(), 2u);
  const driver::NetworkRecord& n1 = s->networks[0].id == kNet1 ? s->networks[0] : s->networks[1];
  const driver::NetworkRecord& n2 = s->networks[0].id == kNet1 ? s->networks[1] : s->networks[0];
  EXPECT_EQ(n1.options, (std::map<std::string, std::string>{{"macvlan_mode", "bridge"},
                                                            {"mtu", "1400"},
                                                            {"parent", "eth1"},
                                                            {"routes", "198.51.100.0/25 via 192.0.2.254"}}));
  ASSERT_EQ(n1.ipv4.size(), 1u);
  EXPECT_EQ(n1.ipv4[0].pool.ToString(), "192.0.2.0/24");
  EXPECT_EQ(n1.ipv4[0].gateway->ToString(), "192.0.2.254");
  ASSERT_EQ(n1.ipv6.size(), 1u);
  EXPECT_EQ(n1.ipv6[0].gateway->ToString(), "2001:db8:228::1");
  EXPECT_FALSE(n1.internal);
  EXPECT_EQ(n2.id, kNet2);
  EXPECT_TRUE(n2.internal);
  EXPECT_FALSE(n2.ipv4.at(0).gateway.has_value());
  EXPECT_TRUE(n2.ipv6.empty());
  ASSERT_EQ(s->links.size(), 1u);
  EXPECT_EQ(s->links[0].name, "eth1");
  EXPECT_TRUE(s->links[0].promisc_by_us);
  EXPECT_FALSE(s->links[0].created_by_us);
  ASSERT_EQ(s->endpoints.size(), 1u);
  const driver::EndpointRecord& e = s->endpoints[0];
  EXPECT_EQ(e.endpoint_id, kEp1);
  EXPECT_EQ(e.network_id, kNet1);
  EXPECT_EQ(e.link_name, "smvaaaaaaaaaaa");
  EXPECT_EQ(e.mac, "02:00:00:00:02:28");
  EXPECT_EQ(e.address_v4, "192.0.2.128/24");
  EXPECT_EQ(e.address_v6, "2001:db8:228::2/64");
  EXPECT_EQ(e.sandbox_key, "/var/run/docker/netns/0123456789ab");
  EXPECT_EQ(e.since, kWrittenAt);
  EXPECT_TRUE(daemon::CheckState(*state_.ipam->Load(), *s).empty());
}

TEST_P(GoldenStoreTest, ThisBuildWritesTheSameBytes) {
  // Load everything, write it into a fresh store with this build: every value is identical.
  StateDir fresh = StateDir::Open(dir_.Sub("fresh"));
  Result<ipam::IpamSnapshot> ipam = state_.ipam->Load();
  Result<driver::DriverSnapshot> net = state_.networks->Load();
  ASSERT_TRUE(ipam.ok() && net.ok());
  ipam::IpamBatch ib{.put_pools = ipam->pools, .put_leases = ipam->leases, .put_reservations = ipam->reservations};
  driver::DriverBatch nb{.put_networks = net->networks, .put_links = net->links, .put_endpoints = net->endpoints};
  ASSERT_TRUE(fresh.ipam->Apply(ib).ok());
  ASSERT_TRUE(fresh.networks->Apply(nb).ok());
  EXPECT_EQ(fresh.Raw(), state_.Raw());
}

TEST_P(GoldenStoreTest, ServicesStartOnItAndNamesGetTheirAddressesBack) {
  Result<std::unique_ptr<ipam::IpamService>> ipam = ipam::IpamService::Create(*state_.ipam);
  ASSERT_TRUE(ipam.ok()) << ipam.status().message();
  EXPECT_EQ(*(*ipam)->RequestAddress({.pool_id = kPoolV4, .name = "api-0"}), "192.0.2.129/24");
  EXPECT_EQ(*(*ipam)->RequestAddress({.pool_id = kPoolV4, .name = "db-0"}), "192.0.2.20/24");
  Result<std::string> other = (*ipam)->RequestAddress({.pool_id = kPoolV4, .name = "new-0"});
  ASSERT_TRUE(other.ok());
  for (const char* taken : {"192.0.2.128/24", "192.0.2.129/24", "192.0.2.20/24", "192.0.2.254/24"}) {
    EXPECT_NE(*other, taken);
  }
  testing::FakeLinkOps links;
  links.AddExisting({.name = "eth1", .kind = "veth", .up = true, .promisc = true});
  Result<std::unique_ptr<driver::DriverService>> driver = driver::DriverService::Create(links, *state_.networks);
  ASSERT_TRUE(driver.ok()) << driver.status().message();
  EXPECT_EQ((*driver)->Networks().size(), 2u);
  EXPECT_EQ((*driver)->FindEndpoint(kEp1)->link_name, "smvaaaaaaaaaaa");
}

INSTANTIATE_TEST_SUITE_P(Releases, GoldenStoreTest, ::testing::Values("v1"));

}  // namespace
}  // namespace smv

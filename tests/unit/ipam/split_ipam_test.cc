#include "ipam/split_ipam.h"

#include <gtest/gtest.h>

#include "ipam/ipam_service.h"
#include "tests/support/memory_ipam_store.h"

namespace smv::ipam {
namespace {

using smv::testing::MemoryIpamStore;

// A daemon on a shared book with host-local pools beside it, as serve wires them: the shared
// book is a memory store that behaves as one other nodes write to.
class SplitIpamTest : public ::testing::Test {
 protected:
  void SetUp() override {
    shared_store_.shared_book = true;
    shared_store_.node_name = "host-a";
    shared_ = std::move(IpamService::Create(shared_store_, [this] { return now_; }).value());
    local_ = std::move(IpamService::Create(local_store_, [this] { return now_; }).value());
    split_ = std::make_unique<SplitIpam>(*shared_, *local_);
  }
  static PoolRequest Request(const std::string& subnet, const std::string& scope = "") {
    PoolRequest request{"l", subnet, "", {}, false};
    if (!scope.empty()) request.options["scope"] = scope;
    return request;
  }
  std::string Pool(const PoolRequest& request) {
    Result<PoolResult> pool = split_->RequestPool(request);
    EXPECT_TRUE(pool.ok()) << pool.status().message();
    return pool.ok() ? pool->pool_id : "";
  }

  int64_t now_ = 1000;
  MemoryIpamStore shared_store_;
  MemoryIpamStore local_store_;
  std::unique_ptr<IpamService> shared_;
  std::unique_ptr<IpamService> local_;
  std::unique_ptr<SplitIpam> split_;
};

TEST_F(SplitIpamTest, EachCallReachesTheBookItsPoolIsIn) {
  const std::string fleet = Pool(Request("198.51.100.0/24"));
  const std::string own = Pool(Request("192.0.2.0/24", "local"));
  EXPECT_EQ(fleet, "198.51.100.0/24");
  EXPECT_EQ(own, "local 192.0.2.0/24");
  ASSERT_TRUE(split_->RequestAddress({own, "", false, "web", "", ""}).ok());
  ASSERT_TRUE(split_->RequestAddress({fleet, "", false, "db", "", ""}).ok());
  EXPECT_EQ(local_store_.lease_count(), 1u);
  EXPECT_EQ(shared_store_.lease_count(), 1u);
  EXPECT_EQ(split_->LeaseCount(own), 1u);
  EXPECT_TRUE(split_->HasActivePool(own));
  EXPECT_EQ(split_->FindPool(own)->id, own);
  EXPECT_EQ(split_->PoolsLeasing(*IpAddress::Parse("192.0.2.1")), std::vector<std::string>{own});
  EXPECT_TRUE(split_->AnyReserved(own, {"web"}));
  EXPECT_FALSE(split_->AnyReserved(fleet, {"web"}));

  bool listed_local = false;
  for (const ReservationView& view : split_->ListReservations()) {
    if (view.record.name == "web") listed_local = view.record.pool_id == own && view.pool_subnet == "192.0.2.0/24";
  }
  EXPECT_TRUE(listed_local);
  ASSERT_TRUE(split_->ReleaseAddress(own, "192.0.2.1").ok());
  EXPECT_EQ(local_store_.lease_count(), 0u);
  ASSERT_TRUE(split_->ReleasePool(own).ok());
  EXPECT_FALSE(split_->HasActivePool(own));
  EXPECT_TRUE(split_->HasActivePool(fleet));
}

TEST_F(SplitIpamTest, OneSubnetIsNeverInBothBooks) {
  Pool(Request("198.51.100.0/24"));
  Result<PoolResult> local = split_->RequestPool(Request("198.51.100.0/24", "local"));
  ASSERT_FALSE(local.ok());
  EXPECT_EQ(local.status().code(), Code::kFailedPrecondition);
  EXPECT_NE(local.status().message().find("subnet 198.51.100.0/24 is already a shared pool"), std::string::npos)
      << local.status().message();

  // Another host's pool this host has not loaded yet: the shared book is read, not remembered.
  PoolRecord elsewhere;
  elsewhere.config = ParsePoolRequest(Request("203.0.113.0/24")).value();
  shared_store_.PutPool(elsewhere);
  Result<PoolResult> behind = split_->RequestPool(Request("203.0.113.0/24", "local"));
  EXPECT_EQ(behind.status().code(), Code::kFailedPrecondition) << behind.status().message();
  shared_store_.down = true;
  Result<PoolResult> unknown = split_->RequestPool(Request("203.0.113.0/24", "local"));
  EXPECT_EQ(unknown.status().code(), Code::kUnavailable) << unknown.status().message();
  EXPECT_NE(unknown.status().message().find("cannot check that subnet 203.0.113.0/24 is not a shared pool"),
            std::string::npos)
      << unknown.status().message();
  shared_store_.down = false;

  Pool(Request("192.0.2.0/24", "local"));
  Result<PoolResult> shared = split_->RequestPool(Request("192.0.2.0/24", "shared"));
  ASSERT_FALSE(shared.ok());
  EXPECT_NE(shared.status().message().find("give this network --ipam-opt scope=local too"), std::string::npos)
      << shared.status().message();
  // Nothing was written for the refused requests.
  EXPECT_EQ(local_store_.pool_count(), 1u);
  EXPECT_EQ(shared_store_.pool_count(), 2u);
}

TEST_F(SplitIpamTest, OnlyLocalReservationsAgeOutAndAReleaseReachesBothBooks) {
  PoolRequest own_request = Request("192.0.2.0/24", "local");
  own_request.options["release_after"] = "60s";
  const std::string own = Pool(own_request);
  const std::string fleet = Pool(Request("198.51.100.0/24"));
  ASSERT_TRUE(split_->Reserve(own, "gone", *IpAddress::Parse("192.0.2.9")).ok());
  ASSERT_TRUE(split_->Reserve(fleet, "elsewhere", *IpAddress::Parse("198.51.100.9")).ok());
  ASSERT_TRUE(split_->ApplyPresence({}).ok());
  now_ += 120;
  Result<std::vector<std::string>> expired = split_->ApplyPresence({});
  ASSERT_TRUE(expired.ok());
  EXPECT_EQ(*expired, std::vector<std::string>{"gone"});
  // "elsewhere" may be running on another host: this host's engine cannot tell.
  EXPECT_EQ(shared_store_.reservation_count(), 1u);
  EXPECT_TRUE(shared_->ApplyPresence({}).value().empty()) << "nothing ages out of a shared book, however called";
  EXPECT_EQ(shared_store_.reservation_count(), 1u);

  ASSERT_TRUE(split_->Reserve(own, "web", *IpAddress::Parse("192.0.2.10")).ok());
  ASSERT_TRUE(split_->Reserve(fleet, "web", *IpAddress::Parse("198.51.100.10")).ok());
  EXPECT_EQ(split_->Release("web").value(), 2);
}

TEST(SharedScopeTest, AskingForASharedPoolOfALocalBookIsRefusedNamingTheStoreFlag) {
  MemoryIpamStore store;
  auto service = std::move(IpamService::Create(store).value());
  Result<PoolResult> pool = service->RequestPool({"l", "192.0.2.0/24", "", {{"scope", "shared"}}, false});
  ASSERT_FALSE(pool.ok());
  EXPECT_NE(pool.status().message().find("--ipam-opt scope=shared: this daemon keeps its address book in lmdb"),
            std::string::npos)
      << pool.status().message();
  EXPECT_NE(pool.status().message().find("--store etcd://"), std::string::npos);
  // scope=local is what a local book does anyway.
  EXPECT_TRUE(service->RequestPool({"l", "192.0.2.0/24", "", {{"scope", "local"}}, false}).ok());
  EXPECT_EQ(store.pool_count(), 1u);
}

}  // namespace
}  // namespace smv::ipam

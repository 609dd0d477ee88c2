#pragma once
// The world of the identity and reconciler tests: the services on fakes, as serve wires them.

#include <gtest/gtest.h>

#include "daemon/reconciler.h"
#include "identity/identity_service.h"
#include "ipam/ipam_service.h"
#include "tests/support/fake_engine.h"
#include "tests/support/fake_link_ops.h"
#include "tests/support/memory_stores.h"

namespace smv::identity::testing_world {

using engine::EngineContainerNetwork;

inline const std::string kNet = "1111111111111111111111111111111111111111111111111111111111111111";
inline const std::string kEp1 = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
inline const std::string kEp2 = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

// A driver, an IPAM and identity on fakes, wired as serve does, with one network "lan" on eth1
// (192.0.2.0/24, range 192.0.2.128/25) and an engine that answers.
class IdentityWorld : public ::testing::Test {
 protected:
  void SetUp() override {
    links_.AddExisting({.name = "eth1", .kind = "veth", .up = true});
    ipam_ = std::move(ipam::IpamService::Create(ipam_store_, [this] { return now_; }).value());
    pool_ = ipam_->RequestPool({"l", "192.0.2.0/24", "192.0.2.128/25", {}, false})->pool_id;
    driver_ = std::move(driver::DriverService::Create(links_, net_store_, [this] { return now_; }).value());
    ASSERT_TRUE(driver_
                    ->CreateNetwork({kNet,
                                     {{"parent", "eth1"}},
                                     {{*Prefix::Parse("192.0.2.0/24"), IpAddress::Parse("192.0.2.1")}},
                                     {},
                                     false})
                    .ok());
    engine_.networks[kNet] = EngineNetwork{kNet, "lan", {}};
    identity_ =
        std::make_unique<IdentityService>(engine_, *ipam_, *driver_, IdentityOptions{}, [this] { return now_; });
    reconciler_ = std::make_unique<daemon::Reconciler>(engine_, *ipam_, *driver_, *identity_,
                                                       daemon::ReconcilerOptions{}, [this] { return now_; });
    ASSERT_TRUE(reconciler_->PassOnce().engine_answered);  // the engine is known to answer
  }
  // A name that has been here before: only such names are worth identifying.
  void Known(const std::string& name, const char* address) {
    ASSERT_TRUE(ipam_->Reserve(pool_, name, *IpAddress::Parse(address)).ok());
  }
  // A container as the engine lists it while it starts on "lan".
  void Starting(const std::string& id, const std::string& name, const std::string& ipam_v4 = "") {
    engine_.containers.push_back(EngineContainer{id, name, {{"lan", EngineContainerNetwork{"", ipam_v4}}}});
    engine_.starting.insert(id);
  }
  void Idle(const std::string& id, const std::string& name) {
    engine_.containers.push_back(EngineContainer{id, name, {{"lan", EngineContainerNetwork{"", ""}}}});
  }
  std::string Guess(const std::string& address = "", const std::string& mac = "") {
    return identity_->GuessRequester({pool_, address, false, "", "", mac}).name;
  }
  // RequestAddress + CreateEndpoint + Join of `endpoint` for container `name`, as dockerd 20.10.
  Result<std::string> Start(const std::string& endpoint, const std::string& name, const std::string& ip = "",
                            const std::string& mac = "") {
    ipam::AddressCall call{pool_, ip, false, "", "", mac};
    identity_->IdentifyRequester(call);
    Result<std::string> address = ipam_->RequestAddress(call);
    if (!address.ok()) return address.status();
    EXPECT_TRUE(driver_->CreateEndpoint({kNet, endpoint, *address, "", mac}).ok());
    EXPECT_TRUE(driver_->Join(kNet, endpoint, "/sandbox").ok());
    engine_.networks[kNet].endpoints.push_back({endpoint, name});
    SMV_RETURN_IF_ERROR(identity_->LearnAtJoin(kNet, endpoint));
    return address;
  }
  // An endpoint of container `name` on "lan" that joined (the driver's part of dockerd's Join)
  // and that the engine lists, its name not yet learned: what LearnAtJoin asks about. Its address.
  std::string JoinedUnnamed(const std::string& endpoint, const std::string& name) {
    Result<std::string> address = ipam_->RequestAddress({pool_, "", false, "", "", ""});
    EXPECT_TRUE(address.ok());
    if (!address.ok()) return "";
    EXPECT_TRUE(driver_->CreateEndpoint({kNet, endpoint, *address, "", ""}).ok());
    EXPECT_TRUE(driver_->Join(kNet, endpoint, "/sandbox").ok());
    engine_.networks[kNet].endpoints.push_back({endpoint, name});
    return *address;
  }
  void Stop(const std::string& endpoint, const std::string& address) {
    EXPECT_TRUE(driver_->DeleteEndpoint(kNet, endpoint).ok());
    EXPECT_TRUE(ipam_->ReleaseAddress(pool_, address.substr(0, address.find('/'))).ok());
    auto& eps = engine_.networks[kNet].endpoints;
    std::erase_if(eps, [&](const EngineEndpoint& e) { return e.endpoint_id == endpoint; });
  }

  int64_t now_ = 1000;
  testing::FakeLinkOps links_;
  testing::MemoryNetworkStore net_store_;
  testing::MemoryIpamStore ipam_store_;
  testing::FakeEngine engine_;
  std::unique_ptr<ipam::IpamService> ipam_;
  std::unique_ptr<driver::DriverService> driver_;
  std::unique_ptr<IdentityService> identity_;
  std::unique_ptr<daemon::Reconciler> reconciler_;
  std::string pool_;
};

}  // namespace smv::identity::testing_world

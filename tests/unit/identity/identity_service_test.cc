#include "identity/identity_service.h"

#include <gtest/gtest.h>

#include "tests/support/fake_engine.h"
#include "tests/support/fake_link_ops.h"
#include "tests/support/memory_stores.h"

namespace smv::identity {
namespace {

const std::string kNet = "1111111111111111111111111111111111111111111111111111111111111111";
const std::string kEp1 = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const std::string kEp2 = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

class IdentityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    links_.AddExisting({.name = "eth1", .kind = "veth", .up = true});
    ipam_ = std::move(ipam::IpamService::Create(ipam_store_, [this] { return now_; }).value());
    pool_ = ipam_->RequestPool({"l", "192.0.2.0/24", "192.0.2.128/25", {}, false})->pool_id;
    driver_ = std::move(driver::DriverService::Create(links_, net_store_, [this] { return now_; }).value());
    ASSERT_TRUE(driver_->CreateNetwork({kNet, {{"parent", "eth1"}},
                                        {{*Prefix::Parse("192.0.2.0/24"), IpAddress::Parse("192.0.2.1")}}, {}, false}).ok());
    engine_.networks[kNet] = EngineNetwork{kNet, "lan", {}};
    identity_ = std::make_unique<IdentityService>(engine_, *ipam_, *driver_, IdentityOptions{},
                                                  [this] { return now_; });
    ASSERT_TRUE(identity_->ReconcileOnce().engine_answered);  // the engine is known to answer
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
    return identity_->GuessRequester({pool_, address, false, "", "", mac});
  }
  // RequestAddress + CreateEndpoint + Join of `endpoint` for container `name`, as dockerd 20.10.
  Result<std::string> Start(const std::string& endpoint, const std::string& name, const std::string& ip = "",
                            const std::string& mac = "") {
    ipam::AddressCall call{pool_, ip, false, "", "", mac};
    call.hint_name = identity_->GuessRequester(call);
    Result<std::string> address = ipam_->RequestAddress(call);
    if (!address.ok()) return address.status();
    EXPECT_TRUE(driver_->CreateEndpoint({kNet, endpoint, *address, "", mac}).ok());
    EXPECT_TRUE(driver_->Join(kNet, endpoint, "/sandbox").ok());
    engine_.networks[kNet].endpoints.push_back({endpoint, name});
    SMV_RETURN_IF_ERROR(identity_->LearnAtJoin(kNet, endpoint));
    return address;
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
  std::string pool_;
};

TEST_F(IdentityTest, SingleStartingCandidateIsTheRequester) {
  Known("a-0", "192.0.2.140");
  Starting("c1", "a-0");
  Idle("c2", "created-but-idle");
  EXPECT_EQ(Guess(), "a-0");
}

TEST_F(IdentityTest, CandidatesWithoutReservationsCostNoInspect) {
  Starting("c1", "brand-new");
  Starting("c2", "also-new");
  const int before = engine_.calls;
  EXPECT_EQ(Guess(), "");
  EXPECT_EQ(engine_.calls, before + 2);  // the list and the network, no inspects
}

TEST_F(IdentityTest, TwoStartingCandidatesAreAmbiguous) {
  Known("q-0", "192.0.2.140");
  Starting("c1", "q-0");
  Starting("c2", "q-1");
  EXPECT_EQ(Guess(), "");
}

TEST_F(IdentityTest, CandidatePastCreateEndpointIsDropped) {
  Known("q-1", "192.0.2.141");
  Starting("c1", "q-0");
  Starting("c2", "q-1");
  engine_.networks[kNet].endpoints.push_back({"e-q0", "q-0"});  // q-0 already joined
  EXPECT_EQ(Guess(), "q-1");
}

TEST_F(IdentityTest, CandidateWithARequestedAddressIsNotACandidate) {
  Known("api", "192.0.2.142");
  Starting("c1", "web", "192.0.2.10");
  Starting("c2", "api");
  EXPECT_EQ(Guess(), "api");
}

TEST_F(IdentityTest, RequestedAddressNamesTheOneContainerThatAskedForIt) {
  Starting("c1", "web", "192.0.2.10");
  Starting("c2", "other", "192.0.2.11");
  EXPECT_EQ(Guess("192.0.2.10"), "web");
  EXPECT_EQ(Guess("192.0.2.12"), "");  // an --aux-address or a container not listed yet
}

TEST_F(IdentityTest, KnownFixedMacNeedsNoEngineCall) {
  ASSERT_TRUE(Start(kEp1, "fixed", "", "02:00:00:00:02:28").ok());
  const int before = engine_.calls;
  EXPECT_EQ(Guess("", "02:00:00:00:02:28"), "fixed");
  EXPECT_EQ(engine_.calls, before);
}

TEST_F(IdentityTest, NothingIsAskedWhileTheEngineDoesNotAnswer) {
  engine_.answering = false;
  EXPECT_FALSE(identity_->ReconcileOnce().engine_answered);
  const int before = engine_.calls;
  Starting("c1", "a-0");
  EXPECT_EQ(Guess(), "");
  EXPECT_TRUE(identity_->LearnAtJoin(kNet, kEp1).ok());
  EXPECT_EQ(engine_.calls, before);  // a booting dockerd is never waited on in a handler
}

TEST_F(IdentityTest, NoNetworkForThePoolMeansNetworkCreateAndNoGuess) {
  const std::string other = ipam_->RequestPool({"l", "198.51.100.0/24", "", {}, false})->pool_id;
  const int before = engine_.calls;
  EXPECT_EQ(identity_->GuessRequester({other, "198.51.100.2", false, "", "", ""}), "");
  EXPECT_EQ(engine_.calls, before);
}

TEST_F(IdentityTest, SameNameComesBackToItsAddress) {
  Starting("c1", "a-0");
  Result<std::string> first = Start(kEp1, "a-0");
  ASSERT_TRUE(first.ok());
  Stop(kEp1, *first);
  engine_.containers.clear();
  engine_.starting.clear();
  Idle("c9", "someone");  // another container takes the next address meanwhile
  ASSERT_TRUE(ipam_->RequestAddress({pool_, "", false, "", "", ""}).ok());
  Starting("c2", "a-0");
  EXPECT_EQ(*Start(kEp2, "a-0"), *first);
}

TEST_F(IdentityTest, JoinOfAnotherNameOnAReservedAddressFails) {
  Starting("c1", "a-0");
  Result<std::string> x = Start(kEp1, "a-0");
  Stop(kEp1, *x);
  engine_.containers.clear();
  // An unidentifiable start asks for a-0's address explicitly; Join reveals it is "b-0".
  Result<std::string> stolen = Start(kEp2, "b-0", x->substr(0, x->find('/')));
  ASSERT_FALSE(stolen.ok());
  EXPECT_EQ(stolen.status().code(), Code::kFailedPrecondition);
  EXPECT_NE(stolen.status().message().find("reserved for container \"a-0\", not \"b-0\""), std::string::npos);
}

TEST_F(IdentityTest, IdentifiedRequesterOfAnotherNamesAddressIsRefusedAtRequestAddress) {
  Starting("c1", "a-0");
  Result<std::string> x = Start(kEp1, "a-0");
  Stop(kEp1, *x);
  engine_.containers.clear();
  const std::string bare = x->substr(0, x->find('/'));
  Starting("c2", "b-0", bare);
  Result<std::string> r = Start(kEp2, "b-0", bare);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("reserved for container \"a-0\"; release it with"), std::string::npos);
}

TEST_F(IdentityTest, AmbiguousStartGetsAnUnreservedAddressAndTheReservationDrifts) {
  Starting("c1", "a-0");
  Result<std::string> x = Start(kEp1, "a-0");
  Stop(kEp1, *x);
  Starting("c2", "a-1");  // two starting: no guess
  Result<std::string> y = Start(kEp2, "a-0");
  ASSERT_TRUE(y.ok());
  EXPECT_NE(*y, *x);
  std::vector<ipam::ReservationView> list = ipam_->ListReservations();
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0].record.address.ToString() + "/24", *x);  // kept
  EXPECT_TRUE(list[0].drifted_to.has_value());
}

TEST_F(IdentityTest, BackgroundPassLearnsNamesMissedDuringEngineStartUp) {
  engine_.answering = false;
  identity_->ReconcileOnce();
  Result<std::string> x = Start(kEp1, "boot-0");
  ASSERT_TRUE(x.ok());
  EXPECT_TRUE(ipam_->ListReservations().empty());
  engine_.answering = true;
  engine_.containers.push_back(EngineContainer{"c1", "boot-0", {}});
  IdentityService::PassReport r = identity_->ReconcileOnce();
  EXPECT_EQ(r.names_learned, 1);
  EXPECT_EQ(driver_->FindEndpoint(kEp1)->container_name, "boot-0");
  ASSERT_EQ(ipam_->ListReservations().size(), 1u);
  EXPECT_EQ(ipam_->ListReservations()[0].record.name, "boot-0");
}

TEST_F(IdentityTest, ReservationLifetimeFollowsTheEngineListAndRetention) {
  const std::string short_pool = ipam_->RequestPool({"l", "198.51.100.0/24", "", {{"release_after", "1m"}}, false})->pool_id;
  ASSERT_TRUE(ipam_->RequestAddress({short_pool, "", false, "tmp-0", "", ""}).ok());
  engine_.containers = {EngineContainer{"c1", "tmp-0", {}}};
  identity_->ReconcileOnce();
  // A compose re-create: the old container is renamed first, the new one has the name.
  engine_.containers = {EngineContainer{"c1", "c1c1c1c1c1c1_tmp-0", {}}, EngineContainer{"c2", "tmp-0", {}}};
  now_ += 120;
  EXPECT_EQ(identity_->ReconcileOnce().reservations_released, 0);
  engine_.containers.clear();  // destroyed
  identity_->ReconcileOnce();
  now_ += 59;
  EXPECT_EQ(identity_->ReconcileOnce().reservations_released, 0);
  now_ += 2;
  EXPECT_EQ(identity_->ReconcileOnce().reservations_released, 1);
  engine_.answering = false;  // an engine that does not answer marks nobody gone
  ASSERT_TRUE(ipam_->RequestAddress({short_pool, "", false, "tmp-1", "", ""}).ok());
  now_ += 1000;
  identity_->ReconcileOnce();
  identity_->ReconcileOnce();
  EXPECT_EQ(ipam_->ListReservations().size(), 1u);
}

TEST_F(IdentityTest, LostTeardownIsMadeUpForAfterTheGrace) {
  Starting("c1", "gone-0");
  Result<std::string> x = Start(kEp1, "gone-0");
  ASSERT_TRUE(x.ok());
  // dockerd removed the container while the plugin was down: the engine lists no endpoint.
  engine_.networks[kNet].endpoints.clear();
  engine_.containers.clear();
  EXPECT_EQ(identity_->ReconcileOnce().endpoints_cleaned, 0);  // within the grace: maybe starting
  now_ += 61;
  EXPECT_EQ(identity_->ReconcileOnce().endpoints_cleaned, 1);
  EXPECT_FALSE(driver_->FindEndpoint(kEp1).has_value());
  EXPECT_FALSE(links_.Exists("smvaaaaaaaaaaa"));
  EXPECT_EQ(ipam_->LeaseCount(pool_), 0u);
  ASSERT_EQ(ipam_->ListReservations().size(), 1u);  // the name keeps its address
  // The network itself was removed meanwhile too.
  engine_.networks.clear();
  EXPECT_EQ(identity_->ReconcileOnce().networks_cleaned, 1);
  EXPECT_FALSE(driver_->FindNetwork(kNet).has_value());
  EXPECT_FALSE(ipam_->HasActivePool(pool_));
  EXPECT_FALSE(links_.Get("eth1").promisc);
}

TEST_F(IdentityTest, UnsureEngineCleansNothing) {
  Starting("c1", "kept-0");
  ASSERT_TRUE(Start(kEp1, "kept-0").ok());
  now_ += 1000;
  engine_.answering = false;
  identity_->ReconcileOnce();
  EXPECT_TRUE(driver_->FindEndpoint(kEp1).has_value());
  EXPECT_TRUE(driver_->FindNetwork(kNet).has_value());
}

}  // namespace
}  // namespace smv::identity

#include "ipam/ipam_service.h"

#include <gtest/gtest.h>

#include <cctype>
#include <fstream>
#include <set>
#include <thread>

#include "ipam/lmdb_store.h"
#include "tests/support/memory_ipam_store.h"
#include "tests/support/temp_dir.h"

namespace smv::ipam {
namespace {

using smv::testing::MemoryIpamStore;

std::string Bare(const std::string& cidr) { return cidr.substr(0, cidr.find('/')); }

class IpamServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = IpamService::Create(store_, [this] { return now_; });
    ASSERT_TRUE(s.ok());
    service_ = std::move(s).value();
    Result<PoolResult> pool = service_->RequestPool({"l", "192.0.2.0/24", "192.0.2.128/25", {}, false});
    ASSERT_TRUE(pool.ok()) << pool.status().message();
    pool_ = pool->pool_id;
  }
  std::string Ask(std::string address = "", std::string name = "") {
    Result<std::string> r = service_->RequestAddress({pool_, address, false, name, "", ""});
    EXPECT_TRUE(r.ok()) << r.status().message();
    return r.ok() ? *r : "";
  }

  int64_t now_ = 1000;
  MemoryIpamStore store_;
  std::unique_ptr<IpamService> service_;
  std::string pool_;
};

TEST_F(IpamServiceTest, AddressCarriesThePrefixLength) {
  EXPECT_EQ(Ask("192.0.2.10"), "192.0.2.10/24");
  EXPECT_EQ(Ask(), "192.0.2.128/24");
}

TEST_F(IpamServiceTest, GatewayRequestWithoutAddressTakesTheFirstOne) {
  Result<std::string> gw = service_->RequestAddress({pool_, "", true, "", ""});
  ASSERT_TRUE(gw.ok());
  EXPECT_EQ(*gw, "192.0.2.1/24");
}

TEST_F(IpamServiceTest, SameNameSameAddressAfterReleaseAndOthersNeverGetIt) {
  const std::string x = Ask("", "a-0");
  ASSERT_TRUE(service_->ReleaseAddress(pool_, Bare(x)).ok());
  const std::string other = Ask("", "b");
  EXPECT_NE(other, x);
  Result<std::string> steal = service_->RequestAddress({pool_, Bare(x), false, "b2", "", ""});
  ASSERT_FALSE(steal.ok());
  EXPECT_NE(steal.status().message().find("reserved for container \"a-0\""), std::string::npos);
  EXPECT_EQ(Ask("", "a-0"), x);
}

TEST_F(IpamServiceTest, ReleaseIsIdempotentAndKeepsTheReservation) {
  const std::string x = Ask("", "a-0");
  EXPECT_TRUE(service_->ReleaseAddress(pool_, Bare(x)).ok());
  EXPECT_TRUE(service_->ReleaseAddress(pool_, Bare(x)).ok());
  EXPECT_TRUE(service_->ReleaseAddress("no such pool", "192.0.2.9").ok());
  EXPECT_EQ(store_.lease_count(), 0u);
  EXPECT_EQ(store_.reservation_count(), 1u);
}

TEST_F(IpamServiceTest, UnknownPoolIsAnError) {
  Result<std::string> r = service_->RequestAddress({"198.51.100.0/24", "", false, "", "", ""});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kNotFound);
  EXPECT_NE(r.status().message().find("unknown pool \"198.51.100.0/24\""), std::string::npos);
}

TEST_F(IpamServiceTest, PoolIsCountedPerRequestAndReservationsOutliveIt) {
  // dockerd may request one subnet for two networks and release it twice.
  ASSERT_TRUE(service_->RequestPool({"l", "192.0.2.0/24", "192.0.2.128/25", {}, false}).ok());
  const std::string x = Ask("", "web");
  ASSERT_TRUE(service_->ReleasePool(pool_).ok());
  EXPECT_TRUE(service_->HasActivePool(pool_));
  EXPECT_EQ(service_->LeaseCount(pool_), 1u);
  ASSERT_TRUE(service_->ReleasePool(pool_).ok());
  EXPECT_FALSE(service_->HasActivePool(pool_));
  EXPECT_EQ(store_.lease_count(), 0u);
  ASSERT_TRUE(service_->ReleasePool(pool_).ok());  // a third release is harmless
  // compose down + up: the network comes back and "web" gets its address again.
  ASSERT_TRUE(service_->RequestPool({"l", "192.0.2.0/24", "192.0.2.128/25", {}, false}).ok());
  Ask("", "someone-else");
  EXPECT_EQ(Ask("", "web"), x);
}

TEST_F(IpamServiceTest, PoolWithoutReservationsIsForgottenWhenReleased) {
  Ask("192.0.2.50");
  ASSERT_TRUE(service_->ReleasePool(pool_).ok());
  EXPECT_EQ(store_.pool_count(), 0u);
  EXPECT_EQ(store_.lease_count(), 0u);
}

TEST_F(IpamServiceTest, StoreFailureChangesNothing) {
  store_.fail_next_apply = true;
  Result<std::string> r = service_->RequestAddress({pool_, "192.0.2.10", false, "a", "", ""});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(service_->LeaseCount(pool_), 0u);
  EXPECT_TRUE(service_->ListReservations().empty());
  EXPECT_EQ(Ask("192.0.2.10", "b"), "192.0.2.10/24");  // not held by the failed attempt
}

// A shared store refused the commit (another node first): the call is decided again on a reloaded
// view and succeeds; a later refusal is the request's own, not that old failure.
TEST_F(IpamServiceTest, ARefusedCommitIsDecidedAgainAndLaterErrorsAreTheirOwn) {
  store_.refuse_next_applies = 2;
  const int loads = store_.loads;
  EXPECT_EQ(Ask("192.0.2.10", "a"), "192.0.2.10/24");
  EXPECT_EQ(store_.loads, loads + 2);
  EXPECT_EQ(store_.lease_count(), 1u);
  Result<std::string> taken = service_->RequestAddress({pool_, "192.0.2.10", false, "b", "", ""});
  ASSERT_FALSE(taken.ok());
  EXPECT_EQ(taken.status().code(), Code::kAlreadyExists) << taken.status().message();
}

// In a shared book another node may have freed what this node's view still holds: a refusal is
// only given on a view read from the store for the call.
TEST_F(IpamServiceTest, InASharedBookARefusalIsCheckedAgainstTheStore) {
  store_.shared_book = true;  // the service asks whether its book is shared once, when it is made
  service_ = std::move(IpamService::Create(store_, [this] { return now_; }).value());
  EXPECT_EQ(Ask("192.0.2.10"), "192.0.2.10/24");  // no name: no reservation
  store_.ForgetLease(pool_, "192.0.2.10");        // released on another node
  const int loads = store_.loads;
  EXPECT_EQ(Ask("192.0.2.10", "b"), "192.0.2.10/24");
  EXPECT_EQ(store_.loads, loads + 1);
  Result<std::string> taken = service_->RequestAddress({pool_, "192.0.2.10", false, "c", "", ""});
  ASSERT_FALSE(taken.ok());  // still refused after reading the store again: b holds it
  EXPECT_EQ(taken.status().code(), Code::kAlreadyExists) << taken.status().message();
  EXPECT_EQ(store_.loads, loads + 2);
}

// A node of a shared book whose store does not answer (etcd without quorum).
class SharedBookOutageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_.shared_book = true;
    store_.node_name = "host-a";
    ASSERT_NO_FATAL_FAILURE(Start());
    Result<PoolResult> pool = service_->RequestPool({"l", "192.0.2.0/24", "", {}, false});
    ASSERT_TRUE(pool.ok()) << pool.status().message();
    pool_ = pool->pool_id;
  }
  void Start() {
    auto s = IpamService::Create(store_, nullptr, &journal_);
    ASSERT_TRUE(s.ok()) << s.status().message();
    service_ = std::move(s).value();
  }
  Result<std::string> Ask(const std::string& name) {
    return service_->RequestAddress({pool_, "", false, name, "", ""});
  }

  MemoryIpamStore store_;
  smv::testing::MemoryReleaseJournal journal_;
  std::unique_ptr<IpamService> service_;
  std::string pool_;
};

// An --aux-address of a shared subnet: the first host's network makes it the subnet's; another
// host's network, while being created, gets it too; a container's --ip of it is refused.
TEST_F(SharedBookOutageTest, AnAuxAddressIsTheSubnetsAndOnlyNetworksBeingCreatedGetIt) {
  const Prefix subnet = *Prefix::Parse("192.0.2.0/24");
  Result<std::string> first = service_->RequestAddress({pool_, "192.0.2.250", false, "", "", ""});
  ASSERT_TRUE(first.ok()) << first.status().message();
  ASSERT_TRUE(service_->AgreeAuxAddresses(subnet, {{"router2", "192.0.2.250"}}).ok());
  const ipam::LeaseRecord* aux = store_.FindLease(pool_, "192.0.2.250");
  ASSERT_NE(aux, nullptr);
  EXPECT_EQ(aux->lease.kind, LeaseKind::kAux);
  EXPECT_EQ(aux->lease.node, "");
  // Once the network exists, --ip 192.0.2.250 is a container's: refused.
  Result<std::string> container = service_->RequestAddress({pool_, "192.0.2.250", false, "", "", ""});
  ASSERT_FALSE(container.ok());
  EXPECT_NE(container.status().message().find("--aux-address"), std::string::npos) << container.status().message();
  // A second network on the subnet (on this or another host) asks for it before its CreateNetwork.
  ASSERT_TRUE(service_->RequestPool({"l", "192.0.2.0/24", "", {}, false}).ok());
  Result<std::string> again = service_->RequestAddress({pool_, "192.0.2.250", false, "", "", ""});
  ASSERT_TRUE(again.ok()) << again.status().message();
  EXPECT_EQ(*again, "192.0.2.250/24");
  // Its release (dockerd's rollback, or network rm) keeps it: the subnet's other networks use it.
  ASSERT_TRUE(service_->ReleaseAddress(pool_, "192.0.2.250").ok());
  EXPECT_NE(store_.FindLease(pool_, "192.0.2.250"), nullptr);
}

// A host that is one of the pool's users agrees with aux addresses its view shows set without a
// commit (AgreesAsAUserLocked), but not while one of them is still leased as this host's --ip:
// that lease is made the subnet's by a commit, as on the first network.
TEST_F(SharedBookOutageTest, AnAuxAddressStillLeasedAsThisHostsIpIsMadeTheSubnetsByACommit) {
  const Prefix subnet = *Prefix::Parse("192.0.2.0/24");
  const IpAddress router = *IpAddress::Parse("192.0.2.250");
  ASSERT_TRUE(service_->RequestAddress({pool_, router.ToString(), false, "", "", ""}).ok());
  ASSERT_TRUE(service_->AgreeAuxAddresses(subnet, {{"router2", router.ToString()}}).ok());
  // Behind the service's back the aux address becomes this host's --ip lease; a refused commit
  // (a second network's RequestPool) makes it read the book again.
  store_.PutLease({pool_, router, Lease{.kind = LeaseKind::kEndpoint, .name = "", .mac = "", .node = "host-a"}, 0});
  store_.refuse_next_applies = 1;
  ASSERT_TRUE(service_->RequestPool({"l", "192.0.2.0/24", "", {}, false}).ok());
  ASSERT_EQ(store_.FindLease(pool_, router.ToString())->lease.kind, LeaseKind::kEndpoint);
  const int applies = store_.applies;
  ASSERT_TRUE(service_->AgreeAuxAddresses(subnet, {{"router2", router.ToString()}}).ok());
  EXPECT_GT(store_.applies, applies);
  EXPECT_EQ(store_.FindLease(pool_, router.ToString())->lease.kind, LeaseKind::kAux);
  // Made the subnet's, the next network of this host (a user) agrees without a commit.
  ASSERT_TRUE(service_->RequestPool({"l", "192.0.2.0/24", "", {}, false}).ok());
  const int agreed = store_.applies;
  ASSERT_TRUE(service_->AgreeAuxAddresses(subnet, {{"router2", router.ToString()}}).ok());
  EXPECT_EQ(store_.applies, agreed);
}

// A user's view that waits for a reload (a commit the store did not answer) is not trusted to
// agree: the agreement reloads and commits.
TEST_F(SharedBookOutageTest, AUserWhoseViewWaitsForAReloadAgreesByACommit) {
  const Prefix subnet = *Prefix::Parse("192.0.2.0/24");
  ASSERT_TRUE(service_->AgreeAuxAddresses(subnet, {}).ok());  // the first network: none
  ASSERT_TRUE(service_->RequestPool({"l", "192.0.2.0/24", "", {}, false}).ok());
  store_.down = true;
  ASSERT_EQ(Ask("web").status().code(), Code::kUnavailable);
  store_.down = false;
  const int loads = store_.loads;
  const int applies = store_.applies;
  ASSERT_TRUE(service_->AgreeAuxAddresses(subnet, {}).ok());
  EXPECT_GT(store_.loads, loads);
  EXPECT_GT(store_.applies, applies);
}

TEST_F(SharedBookOutageTest, ReleasesAreJournaledAndReplayedAllocationsFailClosed) {
  Result<std::string> web = Ask("web");
  ASSERT_TRUE(web.ok()) << web.status().message();
  store_.down = true;
  // dockerd's release while etcd is down succeeds; the address stays held in the store.
  ASSERT_TRUE(service_->ReleaseAddress(pool_, Bare(*web)).ok());
  ASSERT_EQ(journal_.entries.size(), 1u);
  EXPECT_EQ(journal_.entries[0].node, "host-a");
  EXPECT_EQ(store_.lease_count(), 1u);
  ASSERT_TRUE(service_->ReleaseAddress(pool_, Bare(*web)).ok());  // dockerd retries: still one entry
  EXPECT_EQ(journal_.entries.size(), 1u);
  Result<std::string> refused = Ask("db");
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), Code::kUnavailable);
  EXPECT_NE(refused.status().message().find("refusing to allocate to avoid duplicate addresses"), std::string::npos)
      << refused.status().message();
  EXPECT_FALSE(service_->CatchUp().ok());

  store_.down = false;
  ASSERT_TRUE(service_->CatchUp().ok());
  EXPECT_EQ(store_.lease_count(), 0u);
  EXPECT_TRUE(journal_.entries.empty());
  Result<std::string> again = Ask("web");  // the name's reservation survived: same address
  ASSERT_TRUE(again.ok()) << again.status().message();
  EXPECT_EQ(*again, *web);
}

// A start group's share-out ends with its address's release, also one journaled while the store
// is down: the address leased again later, for one name, is no group's (another name is refused).
TEST_F(SharedBookOutageTest, AJournaledReleaseEndsAShareOut) {
  ASSERT_TRUE(service_->Reserve(pool_, "web.1", *IpAddress::Parse("192.0.2.10")).ok());
  ASSERT_TRUE(service_->Reserve(pool_, "web.2", *IpAddress::Parse("192.0.2.11")).ok());
  AddressCall group{pool_, "", false, "", "", ""};
  group.share_names = {"web.1", "web.2"};
  ASSERT_EQ(*service_->RequestAddress(group), "192.0.2.10/24");
  store_.down = true;
  ASSERT_TRUE(service_->ReleaseAddress(pool_, "192.0.2.10").ok());  // journaled
  store_.down = false;
  ASSERT_TRUE(service_->CatchUp().ok());
  Result<std::string> hinted = service_->RequestAddress({pool_, "", false, "", "web.1", ""});
  ASSERT_EQ(*hinted, "192.0.2.10/24");
  Result<AttachOutcome> other = service_->AttachName(pool_, *IpAddress::Parse("192.0.2.10"), "web.2");
  EXPECT_EQ(other.status().code(), Code::kFailedPrecondition) << "web.2 took web.1's address without a start group";
}

// A drain brings tasks whose slots another host reserved, which this host's memory has not read:
// the group's names are read first, so their reserved addresses are shared out.
TEST_F(SharedBookOutageTest, AStartGroupReadsSlotsReservedBehindItsBack) {
  store_.PutReservation({pool_, "web.1", *IpAddress::Parse("192.0.2.10"), "", 1000, 0});
  store_.PutReservation({pool_, "web.2", *IpAddress::Parse("192.0.2.11"), "", 1000, 0});
  AddressCall group{pool_, "", false, "", "", ""};
  group.share_names = {"web.1", "web.2"};
  EXPECT_EQ(*service_->RequestAddress(group), "192.0.2.10/24");
  EXPECT_EQ(*service_->RequestAddress(group), "192.0.2.11/24");
}

// The group's reserved addresses were held by another host's tasks when this one last read the
// book, and released there since (a drain): they are read again, not passed over.
TEST_F(SharedBookOutageTest, AStartGroupReadsAddressesAnotherHostReleasedBehindItsBack) {
  store_.PutReservation({pool_, "web.1", *IpAddress::Parse("192.0.2.10"), "", 1000, 0});
  store_.PutLease({pool_, *IpAddress::Parse("192.0.2.10"), Lease{LeaseKind::kEndpoint, "web.1", "", "host-b"}, 1000});
  store_.PutReservation({pool_, "web.2", *IpAddress::Parse("192.0.2.11"), "", 1000, 0});
  store_.PutLease({pool_, *IpAddress::Parse("192.0.2.11"), Lease{LeaseKind::kEndpoint, "web.2", "", "host-a"}, 1000});
  ASSERT_NO_FATAL_FAILURE(Start());         // memory: web.1 runs on host-b, web.2 here
  store_.ForgetLease(pool_, "192.0.2.10");  // host-b's task stopped
  AddressCall group{pool_, "", false, "", "", ""};
  group.share_names = {"web.1", "web.2"};
  EXPECT_EQ(*service_->RequestAddress(group), "192.0.2.10/24");
}

// etcd out of space (its NOSPACE alarm) takes no write, releases included: they are journaled and
// replayed once it takes writes again, never lost; allocations are refused naming the alarm.
TEST_F(SharedBookOutageTest, ReleasesWhileEtcdIsOutOfSpaceAreJournaledNotLost) {
  Result<std::string> web = Ask("web");
  ASSERT_TRUE(web.ok()) << web.status().message();
  store_.out_of_space = true;
  ASSERT_TRUE(service_->ReleaseAddress(pool_, Bare(*web)).ok());
  ASSERT_EQ(journal_.entries.size(), 1u);
  EXPECT_EQ(store_.lease_count(), 1u);
  Result<std::string> refused = Ask("db");
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("NOSPACE"), std::string::npos) << refused.status().message();
  store_.out_of_space = false;
  ASSERT_TRUE(service_->CatchUp().ok());
  EXPECT_EQ(store_.lease_count(), 0u);
  EXPECT_TRUE(journal_.entries.empty());
}

// etcd applied a commit whose answer never came and could not be read back: dockerd was told
// "refused", so nothing may stay leased for it. Its container address is journaled as released
// and freed by the replay that follows the next load; the name keeps its reservation.
TEST_F(SharedBookOutageTest, AnAllocationRefusedWithItsOutcomeUnknownIsFreedWhenItApplied) {
  Result<std::string> db = Ask("db");
  ASSERT_TRUE(db.ok()) << db.status().message();
  store_.apply_and_lose_answer = true;
  Result<std::string> web = Ask("web");
  ASSERT_FALSE(web.ok());
  EXPECT_EQ(web.status().code(), Code::kUnavailable);
  EXPECT_NE(web.status().message().find("refusing to allocate"), std::string::npos) << web.status().message();
  EXPECT_EQ(store_.lease_count(), 2u);  // it applied after all
  ASSERT_EQ(journal_.entries.size(), 1u);
  EXPECT_EQ(journal_.entries[0].node, "host-a");
  const std::string lost = journal_.entries[0].address.ToString();
  EXPECT_NE(store_.FindLease(pool_, lost), nullptr);

  ASSERT_TRUE(service_->CatchUp().ok());
  EXPECT_EQ(store_.lease_count(), 1u);  // db's only
  EXPECT_NE(store_.FindLease(pool_, Bare(*db)), nullptr);
  EXPECT_TRUE(journal_.entries.empty());
  EXPECT_EQ(store_.reservation_count(), 2u);
  Result<std::string> again = Ask("web");
  ASSERT_TRUE(again.ok()) << again.status().message();
  EXPECT_EQ(*again, lost + "/24");  // the name's reservation, written by the lost commit
}

// The address was freed another way meanwhile (`reservations release --node`) and taken by
// another node: the replay must leave that node's lease alone.
TEST_F(SharedBookOutageTest, AReplayNeverFreesWhatThisNodeNoLongerHolds) {
  Result<std::string> web = Ask("web");
  ASSERT_TRUE(web.ok());
  store_.down = true;
  ASSERT_TRUE(service_->ReleaseAddress(pool_, Bare(*web)).ok());
  store_.down = false;
  LeaseRecord theirs = *store_.FindLease(pool_, Bare(*web));
  theirs.lease.node = "host-b";
  theirs.lease.name = "other";
  store_.PutLease(theirs);
  ASSERT_TRUE(service_->CatchUp().ok());
  ASSERT_NE(store_.FindLease(pool_, Bare(*web)), nullptr);
  EXPECT_EQ(store_.FindLease(pool_, Bare(*web))->lease.node, "host-b");
  EXPECT_TRUE(journal_.entries.empty());
}

// A host rebooted while etcd is down comes up, journals releases, and recovers by itself.
// The reconciler lists running containers, then asks KeepHeld for each. A container that stops
// in between has its endpoint deleted and its address released by this host: that address must
// not be taken again for it (a lease nobody would ever release). Any release since the count the
// caller read makes KeepHeld take nothing (kAborted); the next pass, with a fresh count, decides.
TEST_F(SharedBookOutageTest, KeepHeldTakesNothingBackAfterAReleaseHereSinceTheCallerLooked) {
  Result<std::string> web = Ask("web");
  ASSERT_TRUE(web.ok()) << web.status().message();
  const IpAddress address = *IpAddress::Parse(web->substr(0, web->find('/')));
  const uint64_t seen = service_->LocalReleases();
  ASSERT_TRUE(service_->ReleaseAddress(pool_, address.ToString()).ok());  // web stopped meanwhile
  Result<HeldOutcome> kept = service_->KeepHeld(pool_, address, "web", "", seen);
  ASSERT_FALSE(kept.ok());
  EXPECT_EQ(kept.status().code(), Code::kAborted) << kept.status().message();
  EXPECT_EQ(store_.FindLease(pool_, address.ToString()), nullptr) << "the stopped container's address taken again";

  // Freed behind this host's back, with no release here since the caller looked: taken again.
  Result<std::string> db = Ask("db");
  ASSERT_TRUE(db.ok()) << db.status().message();
  const std::string db_address = db->substr(0, db->find('/'));
  store_.ForgetLease(pool_, db_address);  // `reservations release --node host-a` elsewhere
  store_.commit_key_moved = true;
  ASSERT_TRUE(service_->CatchUp().ok());
  Result<HeldOutcome> retaken =
      service_->KeepHeld(pool_, *IpAddress::Parse(db_address), "db", "", service_->LocalReleases());
  ASSERT_TRUE(retaken.ok()) << retaken.status().message();
  EXPECT_EQ(retaken->kind, HeldOutcome::Kind::kRetaken);
  EXPECT_NE(store_.FindLease(pool_, db_address), nullptr);

  // Freed behind this host's back, and the container stops before the re-take: its release
  // frees nothing here (memory holds no lease), but it still counts.
  Result<std::string> cache = Ask("cache");
  ASSERT_TRUE(cache.ok()) << cache.status().message();
  const std::string cache_address = cache->substr(0, cache->find('/'));
  store_.ForgetLease(pool_, cache_address);
  store_.commit_key_moved = true;
  ASSERT_TRUE(service_->CatchUp().ok());
  const uint64_t before_stop = service_->LocalReleases();
  ASSERT_TRUE(service_->ReleaseAddress(pool_, cache_address).ok());  // cache stopped meanwhile
  Result<HeldOutcome> after_stop =
      service_->KeepHeld(pool_, *IpAddress::Parse(cache_address), "cache", "", before_stop);
  ASSERT_FALSE(after_stop.ok());
  EXPECT_EQ(after_stop.status().code(), Code::kAborted) << after_stop.status().message();
  EXPECT_EQ(store_.FindLease(pool_, cache_address), nullptr) << "a stopped container's address taken again";
}

// The same when the container's release is journaled because the store did not answer: it
// never reached the book's code, and still counts.
TEST_F(SharedBookOutageTest, AReleaseJournaledWhileTheStoreIsDownStillStopsKeepHeld) {
  Result<std::string> web = Ask("web");
  ASSERT_TRUE(web.ok()) << web.status().message();
  const std::string address = web->substr(0, web->find('/'));
  const uint64_t seen = service_->LocalReleases();
  store_.down = true;
  EXPECT_FALSE(Ask("db").ok());                                // etcd does not answer: a reload waits
  ASSERT_TRUE(service_->ReleaseAddress(pool_, address).ok());  // web stops: journaled
  store_.down = false;
  Result<HeldOutcome> kept = service_->KeepHeld(pool_, *IpAddress::Parse(address), "web", "", seen);
  ASSERT_FALSE(kept.ok()) << "kind " << static_cast<int>(kept->kind);
  EXPECT_EQ(kept.status().code(), Code::kAborted) << kept.status().message();
  EXPECT_EQ(store_.FindLease(pool_, address), nullptr) << "the stopped container's address taken again";
}

// "Given away" makes the reconciler delete a container's interface: it is never decided on memory
// alone. Memory still shows host-b's lease that host-b has released since (a lagging watch): the
// address is free in the book, so it is taken again. Held by host-b in the book: given away.
TEST_F(SharedBookOutageTest, KeepHeldGivesAwayOnlyWhatTheStoreSaysAnotherNodeHolds) {
  Result<std::string> web = Ask("web");
  ASSERT_TRUE(web.ok()) << web.status().message();
  const std::string address = web->substr(0, web->find('/'));
  LeaseRecord theirs = *store_.FindLease(pool_, address);
  theirs.lease.node = "host-b";
  theirs.lease.name = "other";
  store_.PutLease(theirs);
  store_.commit_key_moved = true;  // reloads: memory now shows host-b's lease
  ASSERT_TRUE(service_->CatchUp().ok());
  store_.ForgetLease(pool_, address);  // host-b released it; memory has not seen that
  Result<HeldOutcome> stale = service_->KeepHeld(pool_, *IpAddress::Parse(address), "web", "", 0);
  ASSERT_TRUE(stale.ok()) << stale.status().message();
  EXPECT_EQ(stale->kind, HeldOutcome::Kind::kRetaken) << "given away on a stale view: " << stale->holder;
  ASSERT_NE(store_.FindLease(pool_, address), nullptr);
  EXPECT_EQ(store_.FindLease(pool_, address)->lease.node, "host-a");

  store_.PutLease(theirs);  // host-b holds it again, in the book and (reloaded) in memory
  store_.commit_key_moved = true;
  ASSERT_TRUE(service_->CatchUp().ok());
  Result<HeldOutcome> taken = service_->KeepHeld(pool_, *IpAddress::Parse(address), "web", "", 0);
  ASSERT_TRUE(taken.ok()) << taken.status().message();
  EXPECT_EQ(taken->kind, HeldOutcome::Kind::kGivenAway);
  EXPECT_EQ(taken->holder, "node host-b (container \"other\")");
  EXPECT_EQ(store_.FindLease(pool_, address)->lease.node, "host-b") << "never taken from the other host";
}

// KeepHeld for web's address, which memory shows as host-b's: set up by HostBHoldsWebInMemory.
class KeepHeldEvidenceTest : public SharedBookOutageTest {
 protected:
  // Web runs here; host-b's lease of its address is in the book and (reloaded) in memory.
  void HostBHoldsWebInMemory() {
    Result<std::string> web = Ask("web");
    ASSERT_TRUE(web.ok()) << web.status().message();
    address_ = web->substr(0, web->find('/'));
    LeaseRecord theirs = *store_.FindLease(pool_, address_);
    theirs.lease.node = "host-b";
    theirs.lease.name = "z";
    store_.PutLease(theirs);
    store_.commit_key_moved = true;
    ASSERT_TRUE(service_->CatchUp().ok());
  }
  Result<HeldOutcome> KeepWeb() { return service_->KeepHeld(pool_, *IpAddress::Parse(address_), "web", "", 0); }
  std::string address_;
};

// The address is free in the book, but the take-again's commit is refused for a reason that says
// nothing about it: unsure (asked again next pass), never "given away".
TEST_F(KeepHeldEvidenceTest, ACommitRefusedForAnotherReasonIsNotGivenAway) {
  ASSERT_NO_FATAL_FAILURE(HostBHoldsWebInMemory());
  store_.ForgetLease(pool_, address_);
  store_.refuse_commits_with = "injected: a record of the batch does not decode; nothing was written";
  Result<HeldOutcome> kept = KeepWeb();
  EXPECT_FALSE(kept.ok()) << "decided on a refusal unrelated to " << address_ << ": " << kept->holder;
  store_.refuse_commits_with.clear();
  kept = KeepWeb();  // next pass: the store takes commits again
  ASSERT_TRUE(kept.ok()) << kept.status().message();
  EXPECT_EQ(kept->kind, HeldOutcome::Kind::kRetaken);
}

// The book's lease record of the address does not decode (found on the reload the refusal made):
// nobody known holds it, so it is not given away.
TEST_F(KeepHeldEvidenceTest, AnUndecodableLeaseFoundOnTheReloadIsNotGivenAway) {
  ASSERT_NO_FATAL_FAILURE(HostBHoldsWebInMemory());
  LeaseRecord unreadable = *store_.FindLease(pool_, address_);
  unreadable.lease = Lease{.node = std::string(kUndecodableHolder)};
  store_.PutLease(unreadable);
  Result<HeldOutcome> kept = KeepWeb();
  EXPECT_FALSE(kept.ok()) << "given away to an unreadable record: " << kept->holder;
}

// The address is free in the book; another node runs a container named "web" with another
// address. The take-again is refused for the name, not the address: not given away.
TEST_F(KeepHeldEvidenceTest, ANameRunningOnAnotherNodeIsNotTheAddressGivenAway) {
  Result<std::string> other = Ask("other");
  ASSERT_TRUE(other.ok()) << other.status().message();
  ASSERT_NO_FATAL_FAILURE(HostBHoldsWebInMemory());
  store_.ForgetLease(pool_, address_);
  LeaseRecord web_elsewhere = *store_.FindLease(pool_, other->substr(0, other->find('/')));
  web_elsewhere.lease.node = "host-b";
  web_elsewhere.lease.name = "web";
  store_.PutLease(web_elsewhere);
  Result<HeldOutcome> kept = KeepWeb();
  EXPECT_FALSE(kept.ok()) << address_ << " is free in the book, given away to: " << kept->holder;
  EXPECT_EQ(store_.FindLease(pool_, address_), nullptr) << "taken although web runs on host-b";
}

// Freed in the book and reserved for another name since (web's reservation released, db's made):
// that reservation is the evidence, read on the reload the refusal made: given away to db.
TEST_F(KeepHeldEvidenceTest, AFreeAddressReservedForAnotherNameIsGivenAway) {
  Result<std::string> web = Ask("web");
  ASSERT_TRUE(web.ok()) << web.status().message();
  address_ = web->substr(0, web->find('/'));
  store_.ForgetLease(pool_, address_);
  store_.ForgetReservation(pool_, "web");
  store_.PutReservation(ReservationRecord{pool_, "db", *IpAddress::Parse(address_), "", 1, 0});
  store_.commit_key_moved = true;
  ASSERT_TRUE(service_->CatchUp().ok());  // memory: free, reserved for db
  Result<HeldOutcome> kept = KeepWeb();
  ASSERT_TRUE(kept.ok()) << kept.status().message();
  EXPECT_EQ(kept->kind, HeldOutcome::Kind::kGivenAway);
  EXPECT_EQ(kept->holder, "reserved for container \"db\"");
  EXPECT_EQ(store_.FindLease(pool_, address_), nullptr) << "taken although reserved for db";
}

TEST_F(SharedBookOutageTest, AServiceStartsWithoutItsStoreAndCatchesUpLater) {
  Result<std::string> web = Ask("web");
  ASSERT_TRUE(web.ok());
  store_.down = true;
  service_.reset();
  ASSERT_NO_FATAL_FAILURE(Start());
  EXPECT_EQ(Ask("db").status().code(), Code::kUnavailable);
  ASSERT_TRUE(service_->ReleaseAddress(pool_, Bare(*web)).ok());  // unknown to memory: journaled
  EXPECT_EQ(journal_.entries.size(), 1u);
  store_.down = false;
  Result<std::string> db = Ask("db");  // the first change reloads and replays first
  ASSERT_TRUE(db.ok()) << db.status().message();
  EXPECT_EQ(store_.FindLease(pool_, Bare(*web)), nullptr);
  EXPECT_TRUE(journal_.entries.empty());
}

// A dead host's leases are freed by an explicit command, in commits etcd accepts (<= 128 ops).
TEST_F(SharedBookOutageTest, ReleaseNodeFreesOnlyThatNodesAddressesInSmallCommits) {
  Result<std::string> mine = service_->RequestAddress({pool_, "192.0.2.254", false, "mine", "", ""});
  ASSERT_TRUE(mine.ok()) << mine.status().message();
  for (int i = 0; i < 250; ++i) {  // .2 .. .251
    const IpAddress address = *IpAddress::Parse(fmt::format("192.0.2.{}", 2 + i));
    store_.PutLease(
        {pool_, address, Lease{.kind = LeaseKind::kEndpoint, .name = fmt::format("c{}", i), .node = "host-b"}, 1});
  }
  const int applies = store_.applies;
  Result<int> freed = service_->ReleaseNode("host-b");  // sees the leases although its view is older
  ASSERT_TRUE(freed.ok()) << freed.status().message();
  EXPECT_EQ(*freed, 250);
  EXPECT_EQ(store_.lease_count(), 1u);
  EXPECT_EQ(store_.applies - applies, 3);  // 100 + 100 + 50
  EXPECT_EQ(service_->ReleaseNode("host-b").value(), 0);

  Result<int> self = service_->ReleaseNode("host-a");
  ASSERT_FALSE(self.ok());
  EXPECT_EQ(self.status().code(), Code::kFailedPrecondition);
  EXPECT_NE(self.status().message().find("is this host"), std::string::npos) << self.status().message();
  EXPECT_EQ(store_.lease_count(), 1u);
}

TEST_F(IpamServiceTest, ReleaseNodeNeedsASharedBook) {
  Result<int> freed = service_->ReleaseNode("host-b");
  ASSERT_FALSE(freed.ok());
  EXPECT_NE(freed.status().message().find("--node host-b"), std::string::npos) << freed.status().message();
}

// Without a shared book there is nothing to wait for: a failed release is the store's error.
TEST_F(IpamServiceTest, ALocalBookNeverJournals) {
  const std::string x = Ask("192.0.2.10", "a");
  store_.fail_next_apply = true;
  EXPECT_FALSE(service_->ReleaseAddress(pool_, Bare(x)).ok());
}

// Engines < 29, tasks of one service starting together (AddressCall::share_names): each takes a
// free reserved address of the group, and Join swaps two reservations when needed.
class StartGroupIpamTest : public IpamServiceTest {
 protected:
  void SetUp() override {
    IpamServiceTest::SetUp();
    ASSERT_TRUE(service_->Reserve(pool_, "web.1", *IpAddress::Parse("192.0.2.10")).ok());
    ASSERT_TRUE(service_->Reserve(pool_, "web.2", *IpAddress::Parse("192.0.2.11")).ok());
  }
  std::string AskAsGroup(const std::string& hint = "") {
    AddressCall call{pool_, "", false, "", hint, ""};
    if (hint.empty()) call.share_names = {"web.1", "web.2"};
    Result<std::string> r = service_->RequestAddress(call);
    EXPECT_TRUE(r.ok()) << r.status().message();
    return r.ok() ? Bare(*r) : "";
  }
  Result<AttachOutcome> Join(const std::string& address, const std::string& name) {
    return service_->AttachName(pool_, *IpAddress::Parse(address), name);
  }
  static std::map<std::string, std::string> ReservedIn(const IpamService& service) {
    std::map<std::string, std::string> out;
    for (const ReservationView& v : service.ListReservations()) out[v.record.name] = v.record.address.ToString();
    return out;
  }
  std::map<std::string, std::string> Reserved() { return ReservedIn(*service_); }
  // What a service started again from the store holds.
  std::map<std::string, std::string> ReservedAfterRestart() {
    auto reopened = IpamService::Create(store_, [this] { return now_; });
    EXPECT_TRUE(reopened.ok());
    return reopened.ok() ? ReservedIn(**reopened) : std::map<std::string, std::string>{};
  }
};

TEST_F(StartGroupIpamTest, TheGroupsReservedAddressesAreSharedOutAndJoinSwapsTheReservations) {
  EXPECT_EQ(AskAsGroup(), "192.0.2.10");
  EXPECT_EQ(AskAsGroup(), "192.0.2.11");
  EXPECT_EQ(*Join("192.0.2.10", "web.2"), AttachOutcome::kSwapped);
  EXPECT_EQ(Reserved(), (std::map<std::string, std::string>{{"web.1", "192.0.2.11"}, {"web.2", "192.0.2.10"}}));
  EXPECT_EQ(*Join("192.0.2.11", "web.1"), AttachOutcome::kMatches);
  // Both stop: each slot comes back on the address it runs on now.
  ASSERT_TRUE(service_->ReleaseAddress(pool_, "192.0.2.10").ok());
  ASSERT_TRUE(service_->ReleaseAddress(pool_, "192.0.2.11").ok());
  EXPECT_EQ(Bare(Ask("", "web.2")), "192.0.2.10");
}

TEST_F(StartGroupIpamTest, AHintWhoseAddressWasSharedOutContinuesTheGroup) {
  EXPECT_EQ(AskAsGroup(), "192.0.2.10");         // web.1's address, to one of the two
  EXPECT_EQ(AskAsGroup("web.1"), "192.0.2.11");  // then web.1 is told apart: the group's other address
  EXPECT_EQ(*Join("192.0.2.11", "web.1"), AttachOutcome::kSwapped);
  EXPECT_EQ(*Join("192.0.2.10", "web.2"), AttachOutcome::kMatches);
  EXPECT_EQ(Reserved(), (std::map<std::string, std::string>{{"web.1", "192.0.2.11"}, {"web.2", "192.0.2.10"}}));
}

TEST_F(StartGroupIpamTest, OnlyANameOfTheGroupIsSwappedAndAReleaseEndsTheShareOut) {
  EXPECT_EQ(AskAsGroup(), "192.0.2.10");
  Result<AttachOutcome> other = Join("192.0.2.10", "db");
  EXPECT_EQ(other.status().code(), Code::kFailedPrecondition) << "a name outside the group took web.1's address";
  ASSERT_TRUE(service_->ReleaseAddress(pool_, "192.0.2.10").ok());
  EXPECT_EQ(Bare(Ask("", "")), "192.0.2.128");  // an unnamed start: nothing reserved
  // Leased now for web.1 (its hint), no group: web.2 is refused it, as before start groups.
  ASSERT_TRUE(service_->ReleaseAddress(pool_, "192.0.2.128").ok());
  EXPECT_EQ(AskAsGroup("web.1"), "192.0.2.10");
  EXPECT_EQ(Join("192.0.2.10", "web.2").status().code(), Code::kFailedPrecondition);
  EXPECT_EQ(Reserved(), (std::map<std::string, std::string>{{"web.1", "192.0.2.10"}, {"web.2", "192.0.2.11"}}));
}

// The swap as stored: a service started again from the store holds what memory held (a record
// left behind would reserve one address for two names after a restart).
TEST_F(StartGroupIpamTest, ASwapIsStoredAsMemoryHoldsIt) {
  EXPECT_EQ(AskAsGroup(), "192.0.2.10");
  ASSERT_EQ(*Join("192.0.2.10", "web.2"), AttachOutcome::kSwapped);
  const std::map<std::string, std::string> stored = ReservedAfterRestart();
  EXPECT_EQ(stored, Reserved());
  EXPECT_EQ(stored, (std::map<std::string, std::string>{{"web.1", "192.0.2.11"}, {"web.2", "192.0.2.10"}}));
  EXPECT_EQ(store_.reservation_count(), 2u);
}

TEST_F(StartGroupIpamTest, ASwapWithANewSlotDeletesTheOwnersRecordInTheStoreToo) {
  ASSERT_TRUE(service_->Release("web.2").ok());  // web.2 never ran: no reservation
  EXPECT_EQ(AskAsGroup(), "192.0.2.10");
  ASSERT_EQ(*Join("192.0.2.10", "web.2"), AttachOutcome::kSwapped);
  const std::map<std::string, std::string> stored = ReservedAfterRestart();
  EXPECT_EQ(stored, (std::map<std::string, std::string>{{"web.2", "192.0.2.10"}}));
  EXPECT_EQ(Reserved(), stored);
  // A reload keeps one name per address whatever the store holds: count the records themselves.
  EXPECT_EQ(store_.reservation_count(), 1u) << "web.1's record still reserves web.2's address in the store";
}

TEST_F(StartGroupIpamTest, AGroupWhoseReservedAddressesAreAllInUseGetsAFreeOne) {
  EXPECT_EQ(Ask("192.0.2.10", "web.1"), "192.0.2.10/24");
  EXPECT_EQ(Ask("192.0.2.11", "web.2"), "192.0.2.11/24");
  EXPECT_EQ(AskAsGroup(), "192.0.2.128");
}

TEST_F(IpamServiceTest, DifferentOptionsForAPoolInUseAreRefused) {
  Result<PoolResult> r =
      service_->RequestPool({"l", "192.0.2.0/24", "192.0.2.128/25", {{"release_after", "1h"}}, false});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kFailedPrecondition);
}

TEST_F(IpamServiceTest, AttachNameAfterTheFactCreatesTheReservation) {
  const std::string x = Ask();
  const IpAddress ip = *IpAddress::Parse(Bare(x));
  EXPECT_EQ(*service_->AttachName(pool_, ip, "late", "02:00:00:00:00:07"), AttachOutcome::kReserved);
  EXPECT_EQ(*service_->AttachName(pool_, ip, "late"), AttachOutcome::kMatches);
  EXPECT_EQ(service_->NameForMac(pool_, "02:00:00:00:00:07"), "late");
  ASSERT_TRUE(service_->ReleaseAddress(pool_, Bare(x)).ok());
  EXPECT_EQ(Ask("", "late"), x);
  ASSERT_TRUE(service_->ReleaseAddress(pool_, Bare(x)).ok());
  // An ambiguous start: the name got another address. Its reservation stays (drift).
  const std::string y = Ask();
  EXPECT_EQ(*service_->AttachName(pool_, *IpAddress::Parse(Bare(y)), "late"), AttachOutcome::kDrifted);
  std::vector<ReservationView> list = service_->ListReservations();
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0].record.address.ToString(), Bare(x));
  ASSERT_TRUE(list[0].drifted_to.has_value());
  EXPECT_EQ(list[0].drifted_to->ToString(), Bare(y));
}

TEST_F(IpamServiceTest, AttachOfAnotherNamesReservedAddressFails) {
  const std::string x = Ask("", "a-0");
  ASSERT_TRUE(service_->ReleaseAddress(pool_, Bare(x)).ok());
  const std::string again = Ask(Bare(x));  // an old engine asked for --ip X without a name
  Result<AttachOutcome> r = service_->AttachName(pool_, *IpAddress::Parse(Bare(again)), "b");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kFailedPrecondition);
  EXPECT_NE(r.status().message().find("reserved for container \"a-0\", not \"b\""), std::string::npos);
}

TEST_F(IpamServiceTest, HintNameFindsTheReservationButNeverCreatesOne) {
  const std::string x = Ask("", "a-0");
  ASSERT_TRUE(service_->ReleaseAddress(pool_, Bare(x)).ok());
  Ask();  // move the cursor
  Result<std::string> hinted = service_->RequestAddress({pool_, "", false, "", "a-0", ""});
  EXPECT_EQ(*hinted, x);
  Result<std::string> fresh = service_->RequestAddress({pool_, "", false, "", "new-name", ""});
  ASSERT_TRUE(fresh.ok());
  EXPECT_EQ(service_->ListReservations().size(), 1u);
  Result<std::string> steal = service_->RequestAddress({pool_, Bare(x), false, "", "other", ""});
  EXPECT_EQ(steal.status().code(), Code::kAlreadyExists);  // leased by the hinted a-0 right now
}

TEST_F(IpamServiceTest, UserReserveAndRelease) {
  ASSERT_TRUE(service_->Reserve(pool_, "c-0", *IpAddress::Parse("192.0.2.77")).ok());
  EXPECT_EQ(service_->Reserve(pool_, "d-0", *IpAddress::Parse("192.0.2.77")).code(), Code::kFailedPrecondition);
  EXPECT_EQ(service_->Reserve(pool_, "d-0", *IpAddress::Parse("192.0.2.255")).code(), Code::kInvalidArgument);
  EXPECT_EQ(Ask("", "c-0"), "192.0.2.77/24");
  EXPECT_EQ(*service_->Release("192.0.2.77"), 1);
  EXPECT_EQ(*service_->Release("c-0"), 0);
  EXPECT_TRUE(service_->ListReservations().empty());
}

TEST_F(IpamServiceTest, ReservationExpiresOnlyAfterRetentionOnceGone) {
  Result<PoolResult> short_pool =
      service_->RequestPool({"l", "198.51.100.0/24", "", {{"release_after", "60s"}}, false});
  ASSERT_TRUE(short_pool.ok());
  ASSERT_TRUE(service_->RequestAddress({short_pool->pool_id, "", false, "tmp", "", ""}).ok());
  Ask("", "kept");  // the default pool keeps reservations
  EXPECT_TRUE(service_->ApplyPresence({"tmp", "kept"})->empty());
  now_ += 10;
  EXPECT_TRUE(service_->ApplyPresence({})->empty());  // both gone from now on
  now_ += 30;
  EXPECT_TRUE(service_->ApplyPresence({"tmp"})->empty());  // back again (compose re-create)
  now_ += 10;
  EXPECT_TRUE(service_->ApplyPresence({})->empty());
  now_ += 61;
  std::vector<std::string> released = *service_->ApplyPresence({});
  ASSERT_EQ(released.size(), 1u);
  EXPECT_EQ(released[0], "tmp");
  EXPECT_EQ(service_->ListReservations().size(), 1u);
}

// An IPAM service on a real LMDB store in a directory (opened again to check what is on disk).
struct LmdbIpam {
  std::unique_ptr<lmdb::Env> env;
  std::unique_ptr<LmdbIpamStore> store;
  std::unique_ptr<IpamService> service;
};
void OpenLmdbIpam(const std::string& dir, size_t map_bytes, LmdbIpam* out) {
  auto env = lmdb::Env::Open(dir, map_bytes, LmdbIpamStore::DatabaseNames());
  ASSERT_TRUE(env.ok()) << env.status().message();
  out->env = std::move(env).value();
  auto store = LmdbIpamStore::Open(*out->env);
  ASSERT_TRUE(store.ok()) << store.status().message();
  out->store = std::move(store).value();
  auto service = IpamService::Create(*out->store);
  ASSERT_TRUE(service.ok()) << service.status().message();
  out->service = std::move(service).value();
}

TEST(IpamServiceLmdbTest, EverythingSurvivesAReopen) {
  smv::testing::TempDir dir;
  std::string pool_id, a0, plain;
  {
    LmdbIpam first;
    ASSERT_NO_FATAL_FAILURE(OpenLmdbIpam(dir.path(), 64 << 20, &first));
    IpamService& service = *first.service;
    pool_id = service.RequestPool({"l", "2001:db8:1::/64", "", {{"release_after", "1d"}}, true})->pool_id;
    a0 = *service.RequestAddress({pool_id, "", false, "a-0", "", "02:42:00:00:00:01"});
    plain = *service.RequestAddress({pool_id, "2001:db8:1::99", false, "", "", ""});
    ASSERT_TRUE(service.ReleaseAddress(pool_id, a0.substr(0, a0.find('/'))).ok());
  }
  LmdbIpam reopened;
  ASSERT_NO_FATAL_FAILURE(OpenLmdbIpam(dir.path(), 64 << 20, &reopened));
  IpamService& service = *reopened.service;
  EXPECT_EQ(service.FindPool(pool_id)->release_after_seconds, 86400);
  EXPECT_EQ(service.LeaseCount(pool_id), 1u);
  Result<std::string> again = service.RequestAddress({pool_id, "2001:db8:1::99", false, "", "", ""});
  EXPECT_EQ(again.status().code(), Code::kAlreadyExists);
  EXPECT_EQ(*service.RequestAddress({pool_id, "", false, "a-0", "", ""}), a0);
  std::vector<ReservationView> list = service.ListReservations();
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0].record.mac, "02:42:00:00:00:01");
}

// Concurrent calls share commits (commit_queue.h); every answer must still be on disk.
TEST(IpamServiceLmdbTest, ConcurrentAnswersAreAllDurable) {
  smv::testing::TempDir dir;
  constexpr int kThreads = 8, kEach = 30;
  std::vector<std::string> answers(kThreads * kEach);
  std::string pool_id;
  {
    LmdbIpam first;
    ASSERT_NO_FATAL_FAILURE(OpenLmdbIpam(dir.path(), 64 << 20, &first));
    IpamService* service = first.service.get();
    pool_id = service->RequestPool({"l", "198.51.100.0/24", "", {}, false})->pool_id;
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < kEach; ++i) {
          const int n = t * kEach + i;
          Result<std::string> a = service->RequestAddress({pool_id, "", false, "c-" + std::to_string(n), "", ""});
          answers[n] = a.ok() ? a.value() : "error: " + a.status().message();
        }
      });
    }
    for (auto& t : threads) t.join();
  }
  std::set<std::string> distinct(answers.begin(), answers.end());
  EXPECT_EQ(distinct.size(), answers.size());
  LmdbIpam reopened;
  ASSERT_NO_FATAL_FAILURE(OpenLmdbIpam(dir.path(), 64 << 20, &reopened));
  IpamService* service = reopened.service.get();
  EXPECT_EQ(service->LeaseCount(pool_id), answers.size());
  for (int n = 0; n < kThreads * kEach; n += 37) {  // each name's answer is its reservation
    ASSERT_TRUE(service->ReleaseAddress(pool_id, Bare(answers[n])).ok());
    EXPECT_EQ(*service->RequestAddress({pool_id, "", false, "c-" + std::to_string(n), "", ""}), answers[n]);
  }
}

// A commit that fails (here: the store is full) fails the call, and the service's memory
// goes back to what is on disk, so nothing is held that a restart would not find.
TEST(IpamServiceLmdbTest, AFailedCommitLeavesMemoryEqualToTheDisk) {
  smv::testing::TempDir dir;
  LmdbIpam full;
  ASSERT_NO_FATAL_FAILURE(OpenLmdbIpam(dir.path(), 256 << 10, &full));
  IpamService* service = full.service.get();
  const std::string pool_id = service->RequestPool({"l", "10.0.0.0/8", "", {}, false})->pool_id;
  Status last;
  size_t granted = 0;
  for (int i = 0; i < 100000 && last.ok(); ++i) {
    Result<std::string> a =
        service->RequestAddress({pool_id, "", false, std::string(200, 'n') + std::to_string(i), "", ""});
    last = a.status();
    if (a.ok()) ++granted;
  }
  ASSERT_EQ(last.code(), Code::kResourceExhausted) << last.message();
  EXPECT_EQ(service->LeaseCount(pool_id), granted);
  auto reopened = IpamService::Create(*full.store);
  ASSERT_TRUE(reopened.ok());
  EXPECT_EQ((*reopened)->LeaseCount(pool_id), granted);
  EXPECT_EQ((*reopened)->ListReservations().size(), service->ListReservations().size());
}

TEST(LmdbReleaseJournalTest, EntriesSurviveAReopenOnceEachUntilRemoved) {
  smv::testing::TempDir dir;
  const JournaledRelease a{"192.0.2.0/24", *IpAddress::Parse("192.0.2.7"), "host-a"};
  const JournaledRelease b{"2001:db8::/64", *IpAddress::Parse("2001:db8::7"), "host-a"};
  {
    auto env = lmdb::Env::Open(dir.path(), 8 << 20, LmdbIpamStore::DatabaseNames());
    ASSERT_TRUE(env.ok()) << env.status().message();
    auto journal = LmdbReleaseJournal::Open(**env);
    ASSERT_TRUE(journal.ok());
    ASSERT_TRUE((*journal)->Append(a).ok());
    ASSERT_TRUE((*journal)->Append(a).ok());
    ASSERT_TRUE((*journal)->Append(b).ok());
  }
  auto env = lmdb::Env::Open(dir.path(), 8 << 20, LmdbIpamStore::DatabaseNames());
  ASSERT_TRUE(env.ok());
  auto journal = LmdbReleaseJournal::Open(**env);
  ASSERT_TRUE(journal.ok());
  Result<std::vector<JournaledRelease>> listed = (*journal)->List();
  ASSERT_TRUE(listed.ok()) << listed.status().message();
  ASSERT_EQ(listed->size(), 2u);
  EXPECT_TRUE(std::find(listed->begin(), listed->end(), a) != listed->end());
  const std::vector<JournaledRelease> remove = {a};
  ASSERT_TRUE((*journal)->Remove(remove).ok());
  ASSERT_TRUE((*journal)->Remove(remove).ok());  // absent: not an error
  listed = (*journal)->List();
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ(listed->front(), b);
}

TEST(LmdbEnvTest, ForEachHonoursThePrefixAndDeleteReportsAbsence) {
  smv::testing::TempDir dir;
  auto env = lmdb::Env::Open(dir.path(), 8 << 20, {"t"});
  ASSERT_TRUE(env.ok());
  lmdb::Dbi dbi = *(*env)->Database("t");
  {
    auto txn = (*env)->BeginWrite();
    for (const char* k : {"a/1", "a/2", "b/1"}) ASSERT_TRUE(txn->Put(dbi, k, "v").ok());
    ASSERT_TRUE(txn->Commit().ok());
  }
  {
    auto txn = (*env)->BeginWrite();
    ASSERT_TRUE(txn->Put(dbi, "c/1", "v").ok());
  }  // not committed: rolled back
  auto txn = (*env)->BeginWrite();
  int n = 0;
  ASSERT_TRUE(txn->ForEach(dbi, "a/",
                           [&](std::string_view, std::string_view) {
                             ++n;
                             return OkStatus();
                           })
                  .ok());
  EXPECT_EQ(n, 2);
  EXPECT_FALSE(txn->Get(dbi, "c/1")->has_value());
  EXPECT_TRUE(*txn->Delete(dbi, "a/1"));
  EXPECT_FALSE(*txn->Delete(dbi, "a/1"));
}

// Resident KiB of this process's mappings of `path` (from /proc/self/smaps).
size_t ResidentKib(const std::string& path) {
  std::ifstream smaps("/proc/self/smaps");
  std::string line;
  bool in_file = false;
  size_t kib = 0;
  while (std::getline(smaps, line)) {
    if (!line.empty() && std::isxdigit(static_cast<unsigned char>(line[0])) && line.find('-') < line.find(' ')) {
      in_file = line.size() >= path.size() && line.compare(line.size() - path.size(), path.size(), path) == 0;
    } else if (in_file && line.rfind("Rss:", 0) == 0) {
      kib += std::stoul(line.substr(4));
    }
  }
  return kib;
}

// Start-up drops the file's pages from the daemon's memory; the data must stay readable and
// writable through the same environment.
TEST(LmdbEnvTest, DroppingMappedPagesKeepsTheData) {
  smv::testing::TempDir dir;
  auto env = lmdb::Env::Open(dir.path(), 8 << 20, {"t"});
  ASSERT_TRUE(env.ok());
  lmdb::Dbi dbi = *(*env)->Database("t");
  {
    auto txn = (*env)->BeginWrite();
    for (int i = 0; i < 2000; ++i)
      ASSERT_TRUE(txn->Put(dbi, std::to_string(i), std::string(500, static_cast<char>('a' + i % 26))).ok());
    ASSERT_TRUE(txn->Commit().ok());
  }
  const std::string file = dir.path() + "/data.mdb";
  {
    auto txn = (*env)->BeginRead();  // reading every record maps the file's pages in
    ASSERT_TRUE(txn->ForEach(dbi, "", [](std::string_view, std::string_view) { return OkStatus(); }).ok());
  }
  EXPECT_GT(ResidentKib(file), 500u);
  (*env)->DropMappedPages();
  EXPECT_EQ(ResidentKib(file), 0u);
  {
    auto txn = (*env)->BeginWrite();
    EXPECT_EQ(**txn->Get(dbi, "1999"), std::string(500, static_cast<char>('a' + 1999 % 26)));
    ASSERT_TRUE(txn->Put(dbi, "new", "value").ok());
    ASSERT_TRUE(txn->Commit().ok());
  }
  (*env)->DropMappedPages();
  auto txn = (*env)->BeginRead();
  EXPECT_EQ(**txn->Get(dbi, "new"), "value");
  EXPECT_EQ(**txn->Get(dbi, "0"), std::string(500, 'a'));
}

TEST(LmdbEnvTest, MapFullIsResourceExhausted) {
  smv::testing::TempDir dir;
  auto env = lmdb::Env::Open(dir.path(), 64 << 10, {"t"});
  ASSERT_TRUE(env.ok());
  lmdb::Dbi dbi = *(*env)->Database("t");
  auto txn = (*env)->BeginWrite();
  Status last;
  for (int i = 0; i < 10000 && last.ok(); ++i) last = txn->Put(dbi, std::to_string(i), std::string(100, 'x'));
  EXPECT_EQ(last.code(), Code::kResourceExhausted);
}

}  // namespace
}  // namespace smv::ipam

// The name book on its own: a store mirror over the memory store, records written to the store
// before start as another host (or an earlier run) left them, and a fake clock. The same rules
// through IpamService are in ipam_service_test.cc.
#include "ipam/name_book.h"

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "tests/support/memory_ipam_store.h"

namespace smv::ipam {
namespace {

using smv::testing::MemoryIpamStore;

IpAddress Ip(const std::string& text) { return *IpAddress::Parse(text); }

bool Has(const Status& status, const std::string& text) { return status.message().find(text) != std::string::npos; }

class NameBookTest : public ::testing::Test {
 protected:
  // The store as written before start: 192.0.2.0/24 (with `options`, `users` networks on it),
  // and what PutLease / PutReservation added. In a shared book this host is host-a.
  void Start(bool shared, const std::map<std::string, std::string>& options = {}, int users = 1) {
    store_.shared_book = shared;
    store_.node_name = shared ? "host-a" : "";
    Result<PoolConfig> config = ParsePoolRequest({"l", "192.0.2.0/24", "", options, false});
    ASSERT_TRUE(config.ok()) << config.status().message();
    ASSERT_EQ(config->id, pool_);
    store_.PutPool(PoolRecord{.config = *config, .users = users, .node_ranges = {}, .aux = {}, .aux_set_by = ""});
    mirror_ = std::make_unique<StoreMirror>(store_, nullptr);
    Status started = mirror_->Start();
    ASSERT_TRUE(started.ok()) << started.message();
    names_ = std::make_unique<NameBook>(*mirror_, [this] { return now_; });
  }
  void PutLease(const std::string& address, const std::string& name, const std::string& node,
                LeaseKind kind = LeaseKind::kEndpoint) {
    store_.PutLease(LeaseRecord{pool_, Ip(address), Lease{kind, name, "", node}, now_});
  }
  void PutReservation(const std::string& name, const std::string& address, const std::string& mac = "") {
    store_.PutReservation(ReservationRecord{pool_, name, Ip(address), mac, now_, 0});
  }
  Status RunsNowhereElse(const std::string& name) {
    std::scoped_lock lock(mirror_->mutex());
    return names_->NameRunsNowhereElse(mirror_->pools().at(pool_), name);
  }
  // The listed reservation of `name` (the test fails without one).
  ReservationView Listed(const std::string& name) {
    for (const ReservationView& view : names_->ListReservations()) {
      if (view.record.name == name) return view;
    }
    ADD_FAILURE() << "no reservation listed for " << name;
    return {};
  }

  int64_t now_ = 1000;
  const std::string pool_ = PoolIdFor(*Prefix::Parse("192.0.2.0/24"), std::nullopt);
  MemoryIpamStore store_;
  std::unique_ptr<StoreMirror> mirror_;
  std::unique_ptr<NameBook> names_;
};

TEST_F(NameBookTest, ReserveRefusesAnotherNamesAddressAndAnAddressInUse) {
  PutLease("192.0.2.1", "", "", LeaseKind::kGateway);
  PutLease("192.0.2.20", "web", "");
  ASSERT_NO_FATAL_FAILURE(Start(false));
  ASSERT_TRUE(names_->Reserve(pool_, "a", Ip("192.0.2.10")).ok());
  EXPECT_TRUE(names_->Reserve(pool_, "a", Ip("192.0.2.10")).ok());  // the same again: nothing to do

  const Status taken = names_->Reserve(pool_, "b", Ip("192.0.2.10"));
  EXPECT_EQ(taken.code(), Code::kFailedPrecondition);
  EXPECT_TRUE(Has(taken, "reserved for container \"a\"")) << taken.message();
  EXPECT_TRUE(Has(taken, "static-macvlan reservations release a")) << taken.message();
  const Status leased = names_->Reserve(pool_, "b", Ip("192.0.2.20"));
  EXPECT_EQ(leased.code(), Code::kFailedPrecondition);
  EXPECT_TRUE(Has(leased, "in use by container \"web\"")) << leased.message();
  const Status gateway = names_->Reserve(pool_, "b", Ip("192.0.2.1"));
  EXPECT_EQ(gateway.code(), Code::kFailedPrecondition);
  EXPECT_TRUE(Has(gateway, "as the network's gateway")) << gateway.message();
  EXPECT_EQ(names_->Reserve(pool_, "b", Ip("192.0.2.255")).code(), Code::kInvalidArgument);
  EXPECT_EQ(names_->Reserve(pool_, "b", Ip("198.51.100.7")).code(), Code::kInvalidArgument);

  EXPECT_TRUE(names_->Reserve(pool_, "web", Ip("192.0.2.20")).ok());  // the address its container holds
  EXPECT_EQ(store_.reservation_count(), 2u);
  EXPECT_TRUE(names_->AnyReserved(pool_, {"web"}));
  EXPECT_FALSE(names_->AnyReserved(pool_, {"b"}));
}

TEST_F(NameBookTest, APoolNoNetworkUsesTakesNoReservation) {
  ASSERT_NO_FATAL_FAILURE(Start(false, {}, /*users=*/0));
  const Status refused = names_->Reserve(pool_, "a", Ip("192.0.2.10"));
  EXPECT_EQ(refused.code(), Code::kNotFound);
  EXPECT_TRUE(Has(refused, "unknown pool \"" + pool_ + "\"")) << refused.message();
  EXPECT_EQ(names_->Reserve("198.51.100.0/24", "a", Ip("198.51.100.10")).code(), Code::kNotFound);
  EXPECT_EQ(store_.reservation_count(), 0u);
}

TEST_F(NameBookTest, ReleaseByNameOrAddressDropsOnlyThoseAndSaysHowMany) {
  ASSERT_NO_FATAL_FAILURE(Start(false));
  ASSERT_TRUE(names_->Reserve(pool_, "a", Ip("192.0.2.10")).ok());
  ASSERT_TRUE(names_->Reserve(pool_, "b", Ip("192.0.2.11")).ok());
  ASSERT_TRUE(names_->Reserve(pool_, "c", Ip("192.0.2.12")).ok());
  EXPECT_EQ(*names_->Release("a"), 1);
  EXPECT_EQ(*names_->Release("192.0.2.11"), 1);
  EXPECT_EQ(*names_->Release("nobody"), 0);
  EXPECT_EQ(*names_->Release("192.0.2.99"), 0);
  ASSERT_EQ(names_->ListReservations().size(), 1u);
  EXPECT_EQ(names_->ListReservations()[0].record.name, "c");
  EXPECT_EQ(store_.reservation_count(), 1u);
}

TEST_F(NameBookTest, PresenceMarksAGoneNameAndReleasesItOnlyPastReleaseAfter) {
  ASSERT_NO_FATAL_FAILURE(Start(false, {{"release_after", "60s"}}));
  ASSERT_TRUE(names_->Reserve(pool_, "a", Ip("192.0.2.10")).ok());
  ASSERT_TRUE(names_->Reserve(pool_, "b", Ip("192.0.2.11")).ok());
  EXPECT_TRUE(names_->ApplyPresence({"a", "b"})->empty());
  EXPECT_EQ(Listed("b").record.gone_since, 0);

  EXPECT_TRUE(names_->ApplyPresence({"a"})->empty());  // b is gone from now on
  EXPECT_EQ(Listed("b").record.gone_since, 1000);
  EXPECT_EQ(Listed("a").record.gone_since, 0);
  now_ = 1059;
  EXPECT_TRUE(names_->ApplyPresence({"a"})->empty());
  EXPECT_EQ(Listed("b").record.gone_since, 1000);  // gone since the first time it was missed
  now_ = 1060;
  EXPECT_EQ(*names_->ApplyPresence({"a"}), std::vector<std::string>{"b"});
  EXPECT_EQ(store_.reservation_count(), 1u);

  EXPECT_TRUE(names_->ApplyPresence({})->empty());
  EXPECT_EQ(Listed("a").record.gone_since, 1060);
  now_ = 1100;
  EXPECT_TRUE(names_->ApplyPresence({"a"})->empty());  // back (compose re-create): the count starts over
  EXPECT_EQ(Listed("a").record.gone_since, 0);
}

TEST_F(NameBookTest, WithoutReleaseAfterAGoneNameKeepsItsReservation) {
  ASSERT_NO_FATAL_FAILURE(Start(false));
  ASSERT_TRUE(names_->Reserve(pool_, "a", Ip("192.0.2.10")).ok());
  EXPECT_TRUE(names_->ApplyPresence({})->empty());
  now_ += 365 * 24 * 3600;
  EXPECT_TRUE(names_->ApplyPresence({})->empty());
  EXPECT_EQ(Listed("a").record.gone_since, 1000);
  EXPECT_EQ(store_.reservation_count(), 1u);
}

TEST_F(NameBookTest, InASharedBookANameRunningOnAnotherNodeIsRefusedAndKeepsItsReservation) {
  PutLease("192.0.2.10", "web", "host-b");
  PutReservation("web", "192.0.2.10");
  PutLease("192.0.2.11", "mine", "host-a");
  PutLease("192.0.2.12", "", "host-a");
  ASSERT_NO_FATAL_FAILURE(Start(true));

  const Status elsewhere = RunsNowhereElse("web");
  EXPECT_FALSE(elsewhere.ok());
  EXPECT_TRUE(Has(elsewhere, "host-b")) << elsewhere.message();
  EXPECT_TRUE(RunsNowhereElse("mine").ok());
  EXPECT_TRUE(RunsNowhereElse("new").ok());
  // Learned at Join (an engine that sends no name): refused, and the lease stays unnamed.
  Result<AttachOutcome> attached = names_->AttachName(pool_, Ip("192.0.2.12"), "web", "");
  EXPECT_FALSE(attached.ok());
  EXPECT_TRUE(store_.FindLease(pool_, "192.0.2.12")->lease.name.empty());
  EXPECT_EQ(names_->AttachName(pool_, Ip("192.0.2.50"), "x", "").status().code(), Code::kNotFound);

  Result<int> released = names_->Release("web");
  ASSERT_FALSE(released.ok());
  EXPECT_EQ(released.status().code(), Code::kFailedPrecondition);
  EXPECT_TRUE(Has(released.status(), "remove the container")) << released.status().message();
  EXPECT_EQ(store_.reservation_count(), 1u);
  EXPECT_EQ(Listed("web").node, "host-b");
  EXPECT_TRUE(Listed("web").in_use);
  // This host's engine cannot see the other host's containers: nothing ages out.
  EXPECT_TRUE(names_->ApplyPresence({})->empty());
  EXPECT_EQ(Listed("web").record.gone_since, 0);
}

TEST_F(NameBookTest, ReleaseNodeFreesAnotherNodesContainerAddressesOnly) {
  PutLease("192.0.2.1", "", "host-b", LeaseKind::kGateway);
  PutLease("192.0.2.10", "web", "host-b");
  PutLease("192.0.2.11", "", "host-b");
  PutLease("192.0.2.12", "app", "host-a");
  PutReservation("web", "192.0.2.10");
  ASSERT_NO_FATAL_FAILURE(Start(true));

  const Result<int> self = names_->ReleaseNode("host-a");
  EXPECT_EQ(self.status().code(), Code::kFailedPrecondition);
  EXPECT_TRUE(Has(self.status(), "is this host")) << self.status().message();
  EXPECT_EQ(names_->ReleaseNode("").status().code(), Code::kInvalidArgument);
  EXPECT_EQ(names_->ReleaseNode("a/b").status().code(), Code::kInvalidArgument);

  EXPECT_EQ(*names_->ReleaseNode("host-b"), 2);
  EXPECT_EQ(store_.FindLease(pool_, "192.0.2.10"), nullptr);
  EXPECT_EQ(store_.FindLease(pool_, "192.0.2.11"), nullptr);
  EXPECT_NE(store_.FindLease(pool_, "192.0.2.1"), nullptr);   // the subnet's gateway
  EXPECT_NE(store_.FindLease(pool_, "192.0.2.12"), nullptr);  // this host's
  EXPECT_EQ(store_.reservation_count(), 1u);                  // web may run on another host now
  EXPECT_TRUE(RunsNowhereElse("web").ok());
  EXPECT_EQ(*names_->ReleaseNode("host-b"), 0);
}

TEST_F(NameBookTest, ANameIsFoundByTheMacItsReservationWasSeenWith) {
  PutReservation("web", "192.0.2.10", "02:00:00:00:00:07");
  ASSERT_NO_FATAL_FAILURE(Start(false));
  EXPECT_EQ(names_->NameForMac(pool_, "02:00:00:00:00:07"), "web");
  EXPECT_EQ(names_->NameForMac(pool_, "02:00:00:00:00:08"), "");
  EXPECT_EQ(names_->NameForMac(pool_, "not a mac"), "");
  EXPECT_EQ(names_->NameForMac("198.51.100.0/24", "02:00:00:00:00:07"), "");
}

TEST_F(NameBookTest, ListShowsWhetherAReservedAddressIsInUseAndWhereANameDrifted) {
  PutReservation("a", "192.0.2.10");
  PutLease("192.0.2.10", "a", "");
  PutReservation("b", "192.0.2.11");
  PutLease("192.0.2.30", "b", "");
  PutReservation("c", "192.0.2.12");
  ASSERT_NO_FATAL_FAILURE(Start(false));
  EXPECT_TRUE(Listed("a").in_use);
  EXPECT_FALSE(Listed("a").drifted_to.has_value());
  EXPECT_FALSE(Listed("b").in_use);
  ASSERT_TRUE(Listed("b").drifted_to.has_value());
  EXPECT_EQ(Listed("b").drifted_to->ToString(), "192.0.2.30");
  EXPECT_FALSE(Listed("c").in_use);
  EXPECT_TRUE(Listed("c").pool_active);
  EXPECT_EQ(Listed("c").pool_subnet, "192.0.2.0/24");
}

// A start group's share-out is kept while its address's lease on this host has no name (its Join
// is to come): a release of the address racing a new share-out of it must not erase the new one.
// A named lease, another node's lease or none ends it.
TEST_F(NameBookTest, AShareOutIsKeptOnlyWhileItsLeaseAwaitsItsJoin) {
  PutLease("192.0.2.10", "", "host-a");
  PutLease("192.0.2.11", "web.2", "host-a");
  PutLease("192.0.2.12", "", "host-b");
  ASSERT_NO_FATAL_FAILURE(Start(true));
  std::scoped_lock lock(mirror_->mutex());
  for (const std::string address : {"192.0.2.10", "192.0.2.11", "192.0.2.12", "192.0.2.13"}) {
    const std::string slot = "web." + address;  // a group of its own for each address
    names_->NoteSharedOut(pool_, Ip(address), {slot, "web.x"});
    names_->ForgetSharedOut(pool_, Ip(address));
    const bool kept = !names_->StartGroupOf(pool_, slot).empty();
    EXPECT_EQ(kept, address == "192.0.2.10") << address;
  }
}

// A name another host reserved after this one loaded the book: "any reserved" is answered from
// the book, in one read for all the names asked about; memory answers only when the book does not.
TEST_F(NameBookTest, AReservationMadeOnAnotherHostIsSeenByAnyReserved) {
  ASSERT_NO_FATAL_FAILURE(Start(true));
  EXPECT_FALSE(names_->AnyReserved(pool_, {"web.1", "web.2", "web.3"}));
  PutReservation("web.3", "192.0.2.33");  // host-b, behind this host's back
  const int reads_before = store_.any_reserved_reads;
  EXPECT_TRUE(names_->AnyReserved(pool_, {"web.1", "web.2", "web.3"}));
  EXPECT_EQ(store_.any_reserved_reads, reads_before + 1) << "one read for three names";
  EXPECT_FALSE(names_->AnyReserved(pool_, {"web.1", "web.2"}));
  EXPECT_FALSE(names_->AnyReserved(pool_, {}));
  // The book does not answer: memory's view (loaded before web.3 was reserved) answers, and the
  // gate notes it (a change begun before refuses at once, not after a store timeout of its own).
  store_.down = true;
  const uint64_t unavailable_before = mirror_->unavailable_seen();
  EXPECT_FALSE(names_->AnyReserved(pool_, {"web.3"}));
  EXPECT_EQ(mirror_->unavailable_seen(), unavailable_before + 1);
}

TEST_F(NameBookTest, AnyReservedInALocalBookAnswersFromMemory) {
  PutReservation("web.3", "192.0.2.33");
  ASSERT_NO_FATAL_FAILURE(Start(false));
  EXPECT_TRUE(names_->AnyReserved(pool_, {"web.1", "web.3"}));
  EXPECT_FALSE(names_->AnyReserved(pool_, {"web.1", "web.2"}));
  EXPECT_EQ(store_.any_reserved_reads, 0) << "a local book is all in memory";
}

}  // namespace
}  // namespace smv::ipam

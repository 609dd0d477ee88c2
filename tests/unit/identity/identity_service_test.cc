#include "identity/identity_service.h"

#include <gtest/gtest.h>

#include "tests/support/identity_world.h"

namespace smv::identity {
namespace {

using testing_world::kEp1;
using testing_world::kEp2;
using testing_world::kNet;
using IdentityTest = testing_world::IdentityWorld;

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

// A network inspected once is known by name (Docker never renames one): when no container that
// may be asking has a reservation, the list alone answers, without the inspect of a busy engine.
TEST_F(IdentityTest, AKnownNetworkWithoutReservedCandidatesCostsOnlyTheList) {
  Starting("c1", "brand-new");
  EXPECT_EQ(Guess(), "");  // first guess: the network is inspected and its name kept
  Starting("c2", "also-new");
  const int before = engine_.calls;
  EXPECT_EQ(Guess(), "");
  EXPECT_EQ(engine_.calls, before + 1);  // the list only
}

// The name alone never hides a candidate: with a reservation among the possible askers the
// network is still inspected, and one past CreateEndpoint is dropped as before.
TEST_F(IdentityTest, AKnownNetworkWithAReservedCandidateIsStillInspected) {
  Known("q-1", "192.0.2.141");
  Starting("c0", "warm-up");
  EXPECT_EQ(Guess(), "");  // the network's name is kept
  engine_.containers.clear();
  Starting("c1", "q-0");
  Starting("c2", "q-1");
  engine_.networks[kNet].endpoints.push_back({"e-q0", "q-0"});  // q-0 already joined
  const int before = engine_.calls;
  EXPECT_EQ(Guess(), "q-1");
  EXPECT_GE(engine_.calls, before + 2);  // the list and the network's inspect (then the candidate's)
}

// The reservation found before the inspect may be a container's that the inspect shows past
// CreateEndpoint: the candidates left are asked about again, and none reserved is no guess.
TEST_F(IdentityTest, AReservationOnlyOfAContainerPastCreateEndpointIsNoGuess) {
  Starting("c0", "warm-up");
  EXPECT_EQ(Guess(), "");  // the network's name is kept
  engine_.containers.clear();
  Known("q-0", "192.0.2.140");
  Starting("c1", "q-0");
  Starting("c2", "q-1");
  engine_.networks[kNet].endpoints.push_back({"e-q0", "q-0"});  // q-0 already joined
  const int before = engine_.calls;
  EXPECT_EQ(Guess(), "");
  EXPECT_EQ(engine_.calls, before + 2);  // the list and the network: no candidate inspected
}

// More possible askers than could be inspected: the network is inspected as before the name was
// known (and the guess gives up on them there), no reservation is looked up for all of them.
TEST_F(IdentityTest, MorePossibleAskersThanInspectsAreLeftToTheInspect) {
  Starting("c0", "warm-up");
  EXPECT_EQ(Guess(), "");  // the network's name is kept
  for (int i = 1; i <= 49; ++i) Starting("c" + std::to_string(i), "many-" + std::to_string(i));
  const int before = engine_.calls;
  EXPECT_EQ(Guess(), "");
  EXPECT_EQ(engine_.calls, before + 2);
}

// A requested address needs only the network's name: once known, the list tells who asked.
TEST_F(IdentityTest, ARequestedAddressOnAKnownNetworkNeedsOnlyTheList) {
  Starting("c1", "web", "192.0.2.10");
  EXPECT_EQ(Guess("192.0.2.12"), "");  // the network's name is kept
  const int before = engine_.calls;
  EXPECT_EQ(Guess("192.0.2.10"), "web");
  EXPECT_EQ(engine_.calls, before + 1);
}

// A Join's inspect teaches the name too: the next task's guess lists only.
TEST_F(IdentityTest, AJoinTeachesTheNetworksName) {
  JoinedUnnamed(kEp1, "first");  // no guess: its address was asked for without one
  ASSERT_TRUE(identity_->LearnAtJoin(kNet, kEp1).ok());
  Starting("c2", "second");
  const int before = engine_.calls;
  EXPECT_EQ(Guess(), "");
  EXPECT_EQ(engine_.calls, before + 1);
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
  IdentityService identity(engine_, *ipam_, *driver_, IdentityOptions{.probe_every = engine::Millis(60000)});
  engine_.answering = false;
  JoinedUnnamed(kEp1, "a-0");
  const int before = engine_.calls;
  Starting("c1", "a-0");
  EXPECT_EQ(identity.GuessRequester({pool_, "", false, "", "", ""}).name, "");
  EXPECT_TRUE(identity.LearnAtJoin(kNet, kEp1).ok());
  EXPECT_EQ(identity.GuessRequester({pool_, "", false, "", "", ""}).name, "");
  // A booting dockerd is waited on by one short ping per probe_every, in one handler only.
  EXPECT_EQ(engine_.calls, before + 1);
  EXPECT_FALSE(identity.engine_healthy());
  EXPECT_TRUE(driver_->FindEndpoint(kEp1)->container_name.empty());
}

// dockerd's API answers before any background pass heard from it: the first Join asks it (one
// ping) and learns its container's name, so that name is refused on another host at once.
TEST_F(IdentityTest, AJoinRightAfterTheEngineComesUpLearnsItsName) {
  engine_.answering = false;
  EXPECT_FALSE(reconciler_->PassOnce().engine_answered);
  engine_.answering = true;
  const std::string address = JoinedUnnamed(kEp1, "web");
  ASSERT_TRUE(identity_->LearnAtJoin(kNet, kEp1).ok());
  EXPECT_TRUE(identity_->engine_healthy());
  std::vector<ipam::ReservationView> list = ipam_->ListReservations();
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0].record.name, "web");
  EXPECT_EQ(list[0].record.address.ToString() + "/24", address);
}

// Two calls of a busy engine fail (its pings answer); then dockerd restarts between passes, again
// and again: those failures meet a ping that is not answered (silent, not busy) and are not
// counted, so once it answers, a handler's probe hears it and the next Join learns its name.
TEST_F(IdentityTest, FailuresOfASilentEngineDoNotStopTheProbes) {
  IdentityService identity(engine_, *ipam_, *driver_, IdentityOptions{.probe_every = engine::Millis(0)});
  Known("a-0", "192.0.2.140");
  Starting("c1", "a-0");
  identity.NoteEngineAnswered(true);
  engine_.lists_time_out = IdentityService::kFailuresOfABusyEngine - 1;
  for (int i = 1; i < IdentityService::kFailuresOfABusyEngine; ++i) {
    EXPECT_EQ(identity.GuessRequester({pool_, "", false, "", "", ""}).name, "");
    EXPECT_TRUE(identity.engine_healthy()) << "busy, after " << i << " failure(s)";
  }
  for (int i = 0; i < IdentityService::kFailuresOfABusyEngine + 1; ++i) {
    identity.NoteEngineAnswered(true);  // a pass heard it before it went down
    engine_.answering = false;
    EXPECT_EQ(identity.GuessRequester({pool_, "", false, "", "", ""}).name, "");
    EXPECT_FALSE(identity.engine_healthy());
  }
  engine_.answering = true;
  JoinedUnnamed(kEp1, "web");
  ASSERT_TRUE(identity.LearnAtJoin(kNet, kEp1).ok());
  EXPECT_TRUE(identity.engine_healthy());
  EXPECT_EQ(driver_->FindEndpoint(kEp1)->container_name, "web");
}

// A busy engine (many tasks starting on the host) answers a list too late for one guess; it still
// answers a ping, so the next request is guessed again. The full-size swarm run lost three slots'
// addresses when one slow list stopped every guess until the next background pass.
TEST_F(IdentityTest, ASlowListOfABusyEngineLosesOneGuessNotTheNext) {
  ASSERT_TRUE(reconciler_->PassOnce().engine_answered);
  Known("a-0", "192.0.2.140");
  Starting("c1", "a-0");
  engine_.lists_time_out = 1;
  EXPECT_EQ(Guess(), "");
  EXPECT_TRUE(identity_->engine_healthy());
  EXPECT_EQ(Guess(), "a-0");
  // Calls that keep failing while the engine answers its pings count as one that does not answer.
  engine_.lists_time_out = IdentityService::kFailuresOfABusyEngine;
  for (int i = 1; i < IdentityService::kFailuresOfABusyEngine; ++i) {
    EXPECT_EQ(Guess(), "");
    EXPECT_TRUE(identity_->engine_healthy()) << "after " << i << " failure(s) in a row";
  }
  EXPECT_EQ(Guess(), "");
  EXPECT_FALSE(identity_->engine_healthy());
  const int before = engine_.calls;
  EXPECT_EQ(Guess(), "");
  EXPECT_EQ(engine_.calls, before) << "no call until a background pass hears from the engine";
  // A pass hears from it; the handlers ask again, and the first failure stops them at once (a
  // pass's slow list proves no answer within their budget): only a success of theirs resets that.
  ASSERT_TRUE(reconciler_->PassOnce().engine_answered);
  engine_.lists_time_out = 1;
  EXPECT_EQ(Guess(), "");
  EXPECT_FALSE(identity_->engine_healthy());
  ASSERT_TRUE(reconciler_->PassOnce().engine_answered);
  EXPECT_EQ(Guess(), "a-0");
  engine_.lists_time_out = 1;
  EXPECT_EQ(Guess(), "");
  EXPECT_TRUE(identity_->engine_healthy()) << "a success of the handlers reset the count";
}

// A background pass whose list runs out of time after the engine answered its ping (a busy
// engine) turns the handlers' guesses on; a pass whose ping is not answered turns them off.
TEST_F(IdentityTest, APassWhoseListRunsOutOfTimeKeepsTheHandlersAsking) {
  Known("a-0", "192.0.2.140");
  Starting("c1", "a-0");
  engine_.answering = false;  // dockerd restarting
  EXPECT_FALSE(reconciler_->PassOnce().engine_answered);
  EXPECT_FALSE(identity_->engine_healthy());
  engine_.answering = true;
  engine_.lists_time_out = 1;  // busy: the ping answers, the list does not in time
  EXPECT_FALSE(reconciler_->PassOnce().engine_answered);
  EXPECT_TRUE(identity_->engine_healthy());
  EXPECT_EQ(Guess(), "a-0");
  engine_.answering = false;
  EXPECT_FALSE(reconciler_->PassOnce().engine_answered);
  EXPECT_FALSE(identity_->engine_healthy());
}

// A list that used the whole budget leaves no time for the network's inspect: the guess ends
// there, without asking the engine for an answer it has no time to give (nor blaming it).
TEST_F(IdentityTest, AGuessWhoseBudgetRanOutAsksNothingMore) {
  IdentityService short_budget(engine_, *ipam_, *driver_, IdentityOptions{.request_budget = engine::Millis(20)});
  short_budget.NoteEngineAnswered(true);
  Known("a-0", "192.0.2.140");
  Starting("c1", "a-0");
  engine_.list_takes = engine::Millis(30);
  const int before = engine_.calls;
  EXPECT_EQ(short_budget.GuessRequester({pool_, "", false, "", "", ""}).name, "");
  EXPECT_EQ(engine_.calls, before + 1) << "the list only: no inspect, no ping";
  EXPECT_TRUE(short_budget.engine_healthy());
}

TEST_F(IdentityTest, AnEngineThatAnswersNothingStopsTheGuessesAtTheFirstFailure) {
  ASSERT_TRUE(reconciler_->PassOnce().engine_answered);
  Known("a-0", "192.0.2.140");
  Starting("c1", "a-0");
  engine_.answering = false;  // dockerd restarting: not even a ping
  EXPECT_EQ(Guess(), "");
  EXPECT_FALSE(identity_->engine_healthy());
}

TEST_F(IdentityTest, NoNetworkForThePoolMeansNetworkCreateAndNoGuess) {
  const std::string other = ipam_->RequestPool({"l", "198.51.100.0/24", "", {}, false})->pool_id;
  const int before = engine_.calls;
  EXPECT_EQ(identity_->GuessRequester({other, "198.51.100.2", false, "", "", ""}).name, "");
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

}  // namespace
}  // namespace smv::identity

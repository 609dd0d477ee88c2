// Swarm tasks keep their address by (service, slot); Docker 29's named RequestAddress needs no
// engine call. On the fake engine, shaped as dockerd lists swarm task containers.
#include <gtest/gtest.h>

#include <set>
#include <thread>

#include "daemon/api/wire.h"
#include "identity/identity_service.h"
#include "identity/swarm_name.h"
#include "tests/support/identity_world.h"

namespace smv::identity {
namespace {

using testing_world::kEp1;
using testing_world::kEp2;
using testing_world::kNet;

std::map<std::string, std::string> TaskLabels(const std::string& service, const std::string& task_id) {
  return {{"com.docker.swarm.service.name", service},
          {"com.docker.swarm.task.name", service + ".x." + task_id},
          {"com.docker.swarm.task.id", task_id}};
}

TEST(SwarmNameTest, TaskIdIsStrippedOnlyWhenTheLabelsSaySo) {
  const std::string task = "xq3k1v0h2m9b8n7c6d5f4g3h2";  // swarm task ids: 25 base-36 characters
  EXPECT_EQ(ReservationName("web.1." + task, TaskLabels("web", task)), "web.1");
  EXPECT_EQ(ReservationName("web.ndu4jz6e8f1k.", TaskLabels("web", task)), "web.ndu4jz6e8f1k.");
  EXPECT_EQ(ReservationName("mon.ndu4jz6e8f1k." + task, TaskLabels("mon", task)), "mon.ndu4jz6e8f1k");  // global
  EXPECT_EQ(ReservationName("web.1." + task, {}), "web.1." + task);                                     // not a task
  EXPECT_EQ(ReservationName("web.1.other", TaskLabels("web", task)), "web.1.other");      // not its task id
  EXPECT_EQ(ReservationName("api.1." + task, TaskLabels("web", task)), "api.1." + task);  // not its service
  EXPECT_EQ(ReservationName("web." + task, TaskLabels("web", task)), "web." + task);      // no slot
  EXPECT_EQ(ReservationName("my.stack_web.2." + task, TaskLabels("my.stack_web", task)), "my.stack_web.2");
  // A dotted task id is no swarm task id: the lookup by the last dotted part and the full list
  // must agree on the name, so neither strips it.
  EXPECT_EQ(ReservationName("svc.1.b.c", TaskLabels("svc", "b.c")), "svc.1.b.c");
}

TEST(SwarmNameTest, OnlyThreePartNamesAreWorthALookup) {
  EXPECT_TRUE(MayBeSwarmTaskName("web.1.xq3k1v0h2m9b8n7c6d5f4g3h2"));
  EXPECT_FALSE(MayBeSwarmTaskName("web-1"));
  EXPECT_FALSE(MayBeSwarmTaskName("web.1"));
  EXPECT_FALSE(MayBeSwarmTaskName("web.1."));
}

class SwarmIdentityTest : public testing_world::IdentityWorld {
 protected:
  // A swarm task's container as dockerd lists it while the task starts.
  void StartingTask(const std::string& id, const std::string& service, const std::string& slot,
                    const std::string& task_id) {
    engine_.containers.push_back(EngineContainer{id,
                                                 service + "." + slot + "." + task_id,
                                                 {{"lan", testing_world::EngineContainerNetwork{"", ""}}},
                                                 TaskLabels(service, task_id)});
    engine_.starting.insert(id);
  }
  // The task is running: the engine lists it with its endpoint and no longer blocks.
  void Settled() {
    engine_.starting.clear();
    for (EngineContainer& c : engine_.containers) c.networks["lan"].endpoint_id = "joined";
  }
  std::vector<std::string> ReservedNames() {
    std::vector<std::string> names;
    for (const ipam::ReservationView& v : ipam_->ListReservations()) names.push_back(v.record.name);
    return names;
  }
};

TEST_F(SwarmIdentityTest, RescheduledTaskComesBackOnItsSlotsAddress) {
  StartingTask("c1", "web", "1", "aaaaaaaaaaaaaaaaaaaaaaaa1");
  Result<std::string> first = Start(kEp1, "web.1.aaaaaaaaaaaaaaaaaaaaaaaa1");
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(ReservedNames(), std::vector<std::string>{"web.1"});
  EXPECT_EQ(driver_->FindEndpoint(kEp1)->container_name, "web.1");
  Stop(kEp1, *first);
  Settled();  // the old task's container stays listed, exited
  Idle("c9", "someone");
  ASSERT_TRUE(ipam_->RequestAddress({pool_, "", false, "", "", ""}).ok());  // the next free address goes
  StartingTask("c2", "web", "1", "bbbbbbbbbbbbbbbbbbbbbbbb2");              // update --force: a new task id
  EXPECT_EQ(Guess(), "web.1");
  EXPECT_EQ(*Start(kEp2, "web.1.bbbbbbbbbbbbbbbbbbbbbbbb2"), *first);
  EXPECT_EQ(ReservedNames(), std::vector<std::string>{"web.1"});  // nothing leaks
}

TEST_F(SwarmIdentityTest, ExitedTasksOfEarlierUpdatesDoNotHideTheStartingOne) {
  Known("web.1", "192.0.2.150");
  // Swarm's task history: 3 slots x 3 earlier tasks, listed without an endpoint. Slot 1's were
  // rejected at their start (dockerd lists a container whose start failed as "created"), the
  // others ran and exited.
  for (int slot = 1; slot <= 3; ++slot) {
    for (int old = 0; old < 3; ++old) {
      const std::string id = "old" + std::to_string(slot) + std::to_string(old);
      StartingTask(id, "web", std::to_string(slot),
                   std::string(24, static_cast<char>('a' + old)) + std::to_string(slot));
      engine_.starting.erase(id);  // its inspect answers
      engine_.containers.back().state = slot == 1 ? "created" : "exited";
    }
  }
  StartingTask("new", "web", "1", "zzzzzzzzzzzzzzzzzzzzzzzz1");
  EXPECT_EQ(Guess(), "web.1");
}

// The guess listed the task's container when it asked for its address: its Join learns the
// slot from that list, with one engine call (the network's endpoints), not two.
TEST_F(SwarmIdentityTest, ATaskTheGuessListedJoinsWithoutASecondLookup) {
  Known("web.1", "192.0.2.150");
  StartingTask("c1", "web", "1", "aaaaaaaaaaaaaaaaaaaaaaaa1");
  ipam::AddressCall call{pool_, "", false, "", "", ""};
  identity_->IdentifyRequester(call);
  Result<std::string> address = ipam_->RequestAddress(call);
  ASSERT_TRUE(address.ok());
  EXPECT_EQ(*address, "192.0.2.150/24");
  ASSERT_TRUE(driver_->CreateEndpoint({kNet, kEp1, *address, "", ""}).ok());
  ASSERT_TRUE(driver_->Join(kNet, kEp1, "/sandbox").ok());
  engine_.networks[kNet].endpoints.push_back({kEp1, "web.1.aaaaaaaaaaaaaaaaaaaaaaaa1", "", "", "c1"});
  const int before = engine_.calls;
  ASSERT_TRUE(identity_->LearnAtJoin(kNet, kEp1).ok());
  EXPECT_EQ(engine_.calls - before, 1);
  EXPECT_EQ(driver_->FindEndpoint(kEp1)->container_name, "web.1");
  EXPECT_EQ(ReservedNames(), std::vector<std::string>{"web.1"});
}

// At its Join dockerd lists the endpoint under "ep-<endpoint id>" (its sandbox is not registered
// yet), not its container id: the listed task is known by its name. Seen on dockerd 20.10: every
// swarm Join had made the second lookup.
class KnownTaskAtJoinTest : public SwarmIdentityTest {
 protected:
  // The task c1 (web.1) asks while listed, `between` runs, and its endpoint joins; the engine's
  // calls the Join makes.
  int JoinCalls(const std::function<void()>& between = [] {}) {
    StartingTask("c1", "web", "1", kTask);
    ipam::AddressCall call{pool_, "", false, "", "", ""};
    identity_->IdentifyRequester(call);
    Result<std::string> address = ipam_->RequestAddress(call);
    EXPECT_TRUE(address.ok());
    between();
    EXPECT_TRUE(driver_->CreateEndpoint({kNet, kEp1, *address, "", ""}).ok());
    EXPECT_TRUE(driver_->Join(kNet, kEp1, "/sandbox").ok());
    engine_.networks[kNet].endpoints.push_back({kEp1, "web.1." + kTask, "", "", join_key_});
    const int before = engine_.calls;
    learned_ = identity_->LearnAtJoin(kNet, kEp1);
    return engine_.calls - before;
  }
  const std::string kTask = "aaaaaaaaaaaaaaaaaaaaaaaa1";
  std::string join_key_ = "ep-" + kEp1;  // how dockerd keys the endpoint at its Join
  Status learned_;
};

TEST_F(KnownTaskAtJoinTest, AJoinListedUnderItsEndpointKeyIsKnownByName) {
  Known("web.1", "192.0.2.150");
  EXPECT_EQ(JoinCalls(), 1);  // the network's endpoints only
  EXPECT_TRUE(learned_.ok());
  EXPECT_EQ(driver_->FindEndpoint(kEp1)->container_name, "web.1");
  EXPECT_EQ(ReservedNames(), std::vector<std::string>{"web.1"});
}

TEST_F(KnownTaskAtJoinTest, AnOldListIsNotTrusted) {
  Known("web.1", "192.0.2.150");
  EXPECT_EQ(JoinCalls([this] { now_ += 31; }), 2);  // the task's labels are looked up
  EXPECT_TRUE(learned_.ok());
  EXPECT_EQ(driver_->FindEndpoint(kEp1)->container_name, "web.1");
}

TEST_F(KnownTaskAtJoinTest, ANameListedUnderTwoContainersIsLookedUp) {
  Known("web.1", "192.0.2.150");
  const int calls = JoinCalls([this] {
    // Listed again before the Join, now as another container (the task removed, one of that
    // name run by hand without labels): the name no longer tells which.
    engine_.containers.front().id = "c9";
    engine_.containers.front().labels.clear();
    ipam::AddressCall again{pool_, "", false, "", "", ""};
    engine_.starting.insert("c9");
    identity_->IdentifyRequester(again);
  });
  EXPECT_EQ(calls, 2);
  // Not the task: refused the slot's address, which stays reserved for the slot.
  EXPECT_EQ(learned_.code(), Code::kFailedPrecondition) << learned_.message();
  EXPECT_EQ(ReservedNames(), std::vector<std::string>{"web.1"});
}

TEST_F(KnownTaskAtJoinTest, ListedAgainItIsStillKnown) {
  Known("web.1", "192.0.2.150");
  EXPECT_EQ(JoinCalls([this] { Guess(); }), 1);  // a task of a start group is listed by every guess
  EXPECT_TRUE(learned_.ok());
}

TEST_F(KnownTaskAtJoinTest, AClockSetBackIsNotTrusted) {
  Known("web.1", "192.0.2.150");
  EXPECT_EQ(JoinCalls([this] { now_ -= 100; }), 2);
  EXPECT_TRUE(learned_.ok());
}

// The task removed and another container of its name run by hand, asking for its own address:
// not a candidate of the guess, but its list shows the name under another id.
TEST_F(KnownTaskAtJoinTest, ANameListedAsAnotherContainerThatIsNoCandidateIsLookedUp) {
  Known("web.1", "192.0.2.150");
  const int calls = JoinCalls([this] {
    engine_.containers.clear();
    engine_.containers.push_back(EngineContainer{"c9", "web.1." + kTask, {{"lan", {"", "192.0.2.140"}}}});
    identity_->GuessRequester({pool_, "192.0.2.140", false, "", "", ""});
  });
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(learned_.code(), Code::kFailedPrecondition) << learned_.message();
}

// A request that listed nothing (here the engine's list timed out; a known MAC or a name sent by
// the engine lists nothing either) may be another container's under the listed name: the names
// listed before it are looked up at their Join.
TEST_F(KnownTaskAtJoinTest, AfterARequestThatListedNothingTheNameIsLookedUp) {
  Known("web.1", "192.0.2.150");
  EXPECT_EQ(JoinCalls([this] {
              engine_.lists_time_out = 1;
              Guess();
            }),
            2);
  EXPECT_TRUE(learned_.ok());
}

TEST_F(KnownTaskAtJoinTest, AfterANamedRequestTheNameIsLookedUp) {
  Known("web.1", "192.0.2.150");
  EXPECT_EQ(JoinCalls([this] {
              ipam::AddressCall named{pool_, "", false, "", "", ""};
              named.name = "db";  // Docker >= 29 names the container
              identity_->IdentifyRequester(named);
            }),
            2);
  EXPECT_TRUE(learned_.ok());
}

// A busy engine's list timed out once; the next request's list shows the task again.
TEST_F(KnownTaskAtJoinTest, ListedAgainAfterARequestThatListedNothingItIsKnownAgain) {
  Known("web.1", "192.0.2.150");
  EXPECT_EQ(JoinCalls([this] {
              engine_.lists_time_out = 1;
              Guess();
              Guess();
            }),
            1);
  EXPECT_TRUE(learned_.ok());
}

TEST_F(KnownTaskAtJoinTest, AnotherEndpointsKeyIsNotTrusted) {
  Known("web.1", "192.0.2.150");
  EXPECT_EQ(JoinCalls([this] { join_key_ = "ep-" + kEp2; }), 2);
}

// A container on a network of Docker's own IPAM (-o ipam=docker) joins without a RequestAddress
// here: a task listed earlier under its name does not name it.
TEST_F(KnownTaskAtJoinTest, AnEndpointWhoseAddressIsNotLeasedHereIsLookedUp) {
  StartingTask("c1", "web", "1", kTask);
  Guess();
  engine_.containers.clear();
  engine_.containers.push_back(EngineContainer{"c9", "web.1." + kTask, {}});  // the task gone, one of its name run
  ASSERT_TRUE(driver_->CreateEndpoint({kNet, kEp1, "192.0.2.77/24", "", ""}).ok());
  ASSERT_TRUE(driver_->Join(kNet, kEp1, "/sandbox").ok());
  engine_.networks[kNet].endpoints.push_back({kEp1, "web.1." + kTask, "", "", "ep-" + kEp1});
  const int before = engine_.calls;
  ASSERT_TRUE(identity_->LearnAtJoin(kNet, kEp1).ok());
  EXPECT_EQ(engine_.calls - before, 2);
  EXPECT_EQ(driver_->FindEndpoint(kEp1)->container_name, "web.1." + kTask);
}

// dockerd lists the newest first: the starting task, then a long history of finished tasks
// (5 per slot by default), more than the names kept. Those never join: they are not kept.
TEST_F(KnownTaskAtJoinTest, ALongTaskHistoryDoesNotPushTheStartingTaskOut) {
  Known("web.1", "192.0.2.150");
  EXPECT_EQ(JoinCalls([this] {
              for (int i = 0; i < 1100; ++i) {
                const std::string task = fmt::format("h{:024d}", i);
                engine_.containers.push_back(
                    EngineContainer{"old" + std::to_string(i), "web.2." + task, {}, TaskLabels("web", task)});
                engine_.containers.back().state = "exited";
              }
              Guess();
            }),
            1);
}

// Another container under the listed task's name (the task removed, a container of that name run
// by hand) is looked up, not taken for the task.
TEST_F(SwarmIdentityTest, AnotherContainerUnderAListedTasksNameIsLookedUp) {
  Known("web.1", "192.0.2.150");
  StartingTask("c1", "web", "1", "aaaaaaaaaaaaaaaaaaaaaaaa1");
  ipam::AddressCall call{pool_, "", false, "", "", ""};
  identity_->IdentifyRequester(call);
  ASSERT_EQ(call.hint_name, "web.1");
  engine_.containers.clear();  // the task is gone; c9 has its name and no labels
  engine_.containers.push_back(EngineContainer{"c9", "web.1.aaaaaaaaaaaaaaaaaaaaaaaa1", {}});
  Result<std::string> address = ipam_->RequestAddress({pool_, "", false, "", "", ""});
  ASSERT_TRUE(address.ok());
  ASSERT_TRUE(driver_->CreateEndpoint({kNet, kEp1, *address, "", ""}).ok());
  ASSERT_TRUE(driver_->Join(kNet, kEp1, "/sandbox").ok());
  engine_.networks[kNet].endpoints.push_back({kEp1, "web.1.aaaaaaaaaaaaaaaaaaaaaaaa1", "", "", "c9"});
  const int before = engine_.calls;
  ASSERT_TRUE(identity_->LearnAtJoin(kNet, kEp1).ok());
  EXPECT_EQ(engine_.calls - before, 2) << "the listed task's slot was taken without a lookup";
  EXPECT_EQ(driver_->FindEndpoint(kEp1)->container_name, "web.1.aaaaaaaaaaaaaaaaaaaaaaaa1");
}

TEST_F(SwarmIdentityTest, AFullTaskHistoryOfManySlotsDoesNotHideTheStartingOne) {
  Known("web.7", "192.0.2.157");
  // 10 slots of a 30-replica service on this node, each with swarm's 5 exited tasks: 50 listed
  // containers without an endpoint, more than the guess inspects.
  for (int slot = 1; slot <= 10; ++slot) {
    for (int old = 0; old < 5; ++old) {
      const std::string id = "old" + std::to_string(slot) + "-" + std::to_string(old);
      StartingTask(id, "web", std::to_string(slot),
                   std::string(23, static_cast<char>('a' + old)) + "x" + std::to_string(slot % 10));
      engine_.starting.erase(id);
      engine_.containers.back().state = "exited";
    }
  }
  StartingTask("new", "web", "7", "zzzzzzzzzzzzzzzzzzzzzzzz7");
  engine_.containers.back().state = "created";
  EXPECT_EQ(Guess(), "web.7");
}

TEST_F(SwarmIdentityTest, GlobalTaskKeysOnItsNode) {
  StartingTask("c1", "mon", "ndu4jz6e8f1kq2w3e4r5t6y7u", "aaaaaaaaaaaaaaaaaaaaaaaa1");
  Result<std::string> first = Start(kEp1, "mon.ndu4jz6e8f1kq2w3e4r5t6y7u.aaaaaaaaaaaaaaaaaaaaaaaa1");
  ASSERT_TRUE(first.ok());
  Stop(kEp1, *first);
  Settled();
  ASSERT_TRUE(ipam_->RequestAddress({pool_, "", false, "", "", ""}).ok());
  StartingTask("c2", "mon", "ndu4jz6e8f1kq2w3e4r5t6y7u", "bbbbbbbbbbbbbbbbbbbbbbbb2");
  EXPECT_EQ(*Start(kEp2, "mon.ndu4jz6e8f1kq2w3e4r5t6y7u.bbbbbbbbbbbbbbbbbbbbbbbb2"), *first);
  EXPECT_EQ(ReservedNames(), std::vector<std::string>{"mon.ndu4jz6e8f1kq2w3e4r5t6y7u"});
}

TEST_F(SwarmIdentityTest, PreassignedSlotIsTakenByItsFirstTask) {
  Known("web.2", "192.0.2.200");  // reservations reserve web.2 192.0.2.200 before the deploy
  StartingTask("c1", "web", "2", "aaaaaaaaaaaaaaaaaaaaaaaa1");
  EXPECT_EQ(*Start(kEp1, "web.2.aaaaaaaaaaaaaaaaaaaaaaaa1"), "192.0.2.200/24");
}

TEST_F(SwarmIdentityTest, DottedNameWithoutTaskLabelsKeepsItsName) {
  Idle("c1", "db.prod.local");
  Result<std::string> a = Start(kEp1, "db.prod.local");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(ReservedNames(), std::vector<std::string>{"db.prod.local"});
}

TEST_F(SwarmIdentityTest, TaskJoinedWhileTheEngineDoesNotAnswerIsLearnedAsItsSlot) {
  StartingTask("c1", "web", "1", "aaaaaaaaaaaaaaaaaaaaaaaa1");
  ipam::AddressCall call{pool_, "", false, "", "", ""};
  Result<std::string> address = ipam_->RequestAddress(call);
  ASSERT_TRUE(driver_->CreateEndpoint({kNet, kEp1, *address, "", ""}).ok());
  ASSERT_TRUE(driver_->Join(kNet, kEp1, "/sandbox").ok());
  engine_.networks[kNet].endpoints.push_back({kEp1, "web.1.aaaaaaaaaaaaaaaaaaaaaaaa1"});
  engine_.answering = false;  // dockerd starting: the name is learned by the background pass
  EXPECT_TRUE(identity_->LearnAtJoin(kNet, kEp1).ok());
  EXPECT_TRUE(ReservedNames().empty());
  engine_.answering = true;
  EXPECT_EQ(identity_->LearnPendingNames(), 1);
  EXPECT_EQ(ReservedNames(), std::vector<std::string>{"web.1"});
}

// Docker >= 29: RequestAddress carries com.docker.network.endpoint.name. The daemon's handler
// guesses only when it is absent; this is its flow on the decoded call.
class Docker29Test : public SwarmIdentityTest {
 protected:
  // The address as "a.b.c.d/len", or "" when refused.
  std::string AddressAs29(const std::string& name) {
    Result<std::string> address = RequestAs29(name);
    return address.ok() ? *address : "";
  }
  Result<std::string> RequestAs29(const std::string& name) {
    Result<ipam::AddressCall> call = api::wire::DecodeRequestAddress(nlohmann::json{
        {"PoolID", pool_},
        {"Address", ""},
        {"Options", {{"com.docker.network.endpoint.name", name}, {"com.docker.network.endpoint.macaddress", ""}}}});
    if (!call.ok()) return call.status();
    identity_->IdentifyRequester(*call);
    return ipam_->RequestAddress(*call);
  }
  static std::string EndpointId(char round, int i) { return std::string(62, 'e') + round + std::to_string(i); }
  // CreateEndpoint + Join of `endpoint` on `address` for container `name`, as dockerd does next.
  void JoinAs(const std::string& endpoint, const std::string& address, const std::string& name) {
    ASSERT_TRUE(driver_->CreateEndpoint({kNet, endpoint, address, "", ""}).ok());
    ASSERT_TRUE(driver_->Join(kNet, endpoint, "/sandbox").ok());
    engine_.networks[kNet].endpoints.push_back({endpoint, name});
    EXPECT_TRUE(identity_->LearnAtJoin(kNet, endpoint).ok());
  }
};

TEST_F(Docker29Test, NamedRequestIsUsedDirectlyWithoutEngineCall) {
  Starting("c1", "web-0");
  const int before = engine_.calls;
  Result<std::string> first = RequestAs29("/web-0");
  ASSERT_TRUE(first.ok());
  ASSERT_TRUE(ipam_->ReleaseAddress(pool_, first->substr(0, first->find('/'))).ok());
  EXPECT_EQ(*RequestAs29("/web-0"), *first);
  EXPECT_EQ(engine_.calls, before);
  EXPECT_EQ(ReservedNames(), std::vector<std::string>{"web-0"});
}

TEST_F(Docker29Test, ParallelNamedStartsEachKeepTheirAddress) {
  constexpr int kStarts = 8;
  auto start_all = [this] {
    std::vector<std::string> got(kStarts);
    std::vector<std::thread> threads;
    for (int i = 0; i < kStarts; ++i) {
      threads.emplace_back([this, i, &got] { got[i] = AddressAs29("app-" + std::to_string(i)); });
    }
    for (std::thread& t : threads) t.join();
    return got;
  };
  const int before = engine_.calls;
  std::vector<std::string> first = start_all();
  EXPECT_EQ(std::set<std::string>(first.begin(), first.end()).size(), size_t{kStarts});  // distinct
  for (const std::string& a : first) ASSERT_TRUE(ipam_->ReleaseAddress(pool_, a.substr(0, a.find('/'))).ok());
  EXPECT_EQ(start_all(), first);  // all at once again: each name on its own address
  EXPECT_EQ(engine_.calls, before);
}

TEST_F(Docker29Test, ParallelSwarmTasksKeepTheirSlots) {
  constexpr int kSlots = 6;
  auto start_all = [this](char round) {
    engine_.containers.clear();
    std::vector<std::string> names;
    for (int slot = 1; slot <= kSlots; ++slot) {
      const std::string task_id = std::string(24, round) + std::to_string(slot);
      StartingTask("c" + std::to_string(slot) + round, "web", std::to_string(slot), task_id);
      names.push_back("web." + std::to_string(slot) + "." + task_id);
    }
    std::vector<std::string> got(kSlots);
    std::vector<std::thread> threads;
    for (int i = 0; i < kSlots; ++i) {
      threads.emplace_back([this, i, &got, &names] { got[i] = AddressAs29(names[i]); });
    }
    for (std::thread& t : threads) t.join();
    for (int i = 0; i < kSlots; ++i) JoinAs(EndpointId(round, i), got[i], names[i]);
    return got;
  };
  std::vector<std::string> first = start_all('a');
  EXPECT_EQ(std::set<std::string>(first.begin(), first.end()).size(), size_t{kSlots});
  for (int i = 0; i < kSlots; ++i) Stop(EndpointId('a', i), first[i]);
  EXPECT_EQ(start_all('b'), first);  // a new task id per slot, the same addresses
  EXPECT_EQ(ReservedNames().size(), size_t{kSlots});
}

// Review of the slot keys: a start-first update (or an old task still stopping) has two live
// tasks of one slot on one host. The second must not be answered as the first asking again.
TEST_F(Docker29Test, TwoLiveTasksOfOneSlotNeverShareAnAddress) {
  StartingTask("c1", "web", "1", "aaaaaaaaaaaaaaaaaaaaaaaa1");
  const std::string old_task = AddressAs29("web.1.aaaaaaaaaaaaaaaaaaaaaaaa1");
  ASSERT_FALSE(old_task.empty());
  JoinAs(kEp1, old_task, "web.1.aaaaaaaaaaaaaaaaaaaaaaaa1");
  StartingTask("c2", "web", "1", "bbbbbbbbbbbbbbbbbbbbbbbb2");
  const std::string new_task = AddressAs29("web.1.bbbbbbbbbbbbbbbbbbbbbbbb2");
  ASSERT_FALSE(new_task.empty());
  EXPECT_NE(new_task, old_task);
  // The new task's release (its start failed) leaves the running task's lease alone.
  ASSERT_TRUE(ipam_->ReleaseAddress(pool_, new_task.substr(0, new_task.find('/'))).ok());
  const std::string third = AddressAs29("web.1.cccccccccccccccccccccccc3");
  EXPECT_NE(third, old_task);
  EXPECT_EQ(ReservedNames(), std::vector<std::string>{"web.1"});
}

// Review of the lookup: a swarm-shaped name asked the engine for every container of the host, at
// the named RequestAddress and again at Join. Now the engine answers with the task's own
// container (label com.docker.swarm.task.id), and its name is checked exactly.
TEST_F(Docker29Test, ATaskIsLookedUpAloneNotInTheWholeListOfABusyHost) {
  for (int i = 0; i < 150; ++i) Idle("busy" + std::to_string(i), "busy-" + std::to_string(i));
  StartingTask("c2", "web", "2", "bbbbbbbbbbbbbbbbbbbbbbbb2");
  StartingTask("c1", "web", "1", "aaaaaaaaaaaaaaaaaaaaaaaa1");
  const int before = engine_.containers_answered;
  const std::string address = AddressAs29("web.1.aaaaaaaaaaaaaaaaaaaaaaaa1");
  ASSERT_FALSE(address.empty());
  JoinAs(kEp1, address, "web.1.aaaaaaaaaaaaaaaaaaaaaaaa1");
  EXPECT_EQ(engine_.containers_answered - before, 2);  // the task's container, once per call
  EXPECT_EQ(ReservedNames(), std::vector<std::string>{"web.1"});
  EXPECT_EQ(driver_->FindEndpoint(kEp1)->container_name, "web.1");
}

TEST_F(Docker29Test, ALabelledContainerOfAnotherNameDoesNotNameTheTask) {
  // Labels copied onto another container (docker run --label ...): same task id, not this name.
  StartingTask("c9", "api", "3", "aaaaaaaaaaaaaaaaaaaaaaaa1");
  EXPECT_EQ(identity_->ReservationNameOf("web.1.aaaaaaaaaaaaaaaaaaaaaaaa1"), "web.1.aaaaaaaaaaaaaaaaaaaaaaaa1");
  StartingTask("c1", "web", "1", "aaaaaaaaaaaaaaaaaaaaaaaa1");
  EXPECT_EQ(identity_->ReservationNameOf("web.1.aaaaaaaaaaaaaaaaaaaaaaaa1"), "web.1");
}

// A task whose labels cannot be read now (engine not answering) gets no reservation under its
// task id: its slot is learned at Join or by the background pass.
TEST_F(Docker29Test, ATaskNamedWhileTheEngineIsDownGetsNoReservationUnderItsTaskId) {
  StartingTask("c1", "web", "1", "aaaaaaaaaaaaaaaaaaaaaaaa1");
  engine_.answering = false;
  const std::string address = AddressAs29("web.1.aaaaaaaaaaaaaaaaaaaaaaaa1");
  ASSERT_FALSE(address.empty());
  EXPECT_TRUE(ReservedNames().empty());
}

// Docker < 29, tasks of one service starting together on one host: the engine does not say which
// asks, so each gets one of the group's reserved addresses, and Join swaps the reservations when
// the container is another task of the group. The service keeps its set of addresses.
class StartGroupTest : public Docker29Test {
 protected:
  void SetUp() override {
    Docker29Test::SetUp();
    for (int slot = 1; slot <= kSlots; ++slot) Known(Slot(slot), Reserved(slot).c_str());
  }
  static constexpr int kSlots = 4;
  static std::string Slot(int slot) { return "web." + std::to_string(slot); }
  static std::string Reserved(int slot) { return "192.0.2." + std::to_string(150 + slot); }
  static std::string TaskName(int slot) { return Slot(slot) + "." + TaskId(slot); }
  static std::string TaskId(int slot) { return std::string(24, 'n') + std::to_string(slot); }
  void StartAll() {
    for (int slot = 1; slot <= kSlots; ++slot)
      StartingTask("c" + std::to_string(slot), "web", std::to_string(slot), TaskId(slot));
  }
  // RequestAddress as dockerd 20.10 sends it: no name.
  std::string RequestWithoutName() {
    ipam::AddressCall call{pool_, "", false, "", "", ""};
    identity_->IdentifyRequester(call);
    Result<std::string> address = ipam_->RequestAddress(call);
    EXPECT_TRUE(address.ok()) << address.status().message();
    return address.ok() ? address->substr(0, address->find('/')) : "";
  }
  std::map<std::string, std::string> Reservations() {
    std::map<std::string, std::string> out;
    for (const ipam::ReservationView& v : ipam_->ListReservations()) out[v.record.name] = v.record.address.ToString();
    return out;
  }
  std::set<std::string> AllReserved() const {
    std::set<std::string> out;
    for (int slot = 1; slot <= kSlots; ++slot) out.insert(Reserved(slot));
    return out;
  }
};

TEST_F(StartGroupTest, TasksAskingTogetherKeepTheServicesAddressesAndJoinSwapsTheirSlots) {
  StartAll();
  ipam::AddressCall probe{pool_, "", false, "", "", ""};
  identity_->IdentifyRequester(probe);
  EXPECT_EQ(probe.hint_name, "");
  EXPECT_EQ(probe.share_names, (std::vector<std::string>{"web.1", "web.2", "web.3", "web.4"}));
  std::vector<std::string> got;
  for (int i = 0; i < kSlots; ++i) got.push_back(RequestWithoutName());  // all ask before any joins
  EXPECT_EQ(std::set<std::string>(got.begin(), got.end()), AllReserved());
  // The engine does not say who asked: the containers are slots 2, 4, 1, 3 in asking order.
  const int asked_by[kSlots] = {2, 4, 1, 3};
  for (int i = 0; i < kSlots; ++i) JoinAs(EndpointId('g', i), got[i] + "/24", TaskName(asked_by[i]));
  std::map<std::string, std::string> after = Reservations();
  ASSERT_EQ(after.size(), size_t{kSlots}) << "a reservation leaked or was lost";
  std::set<std::string> addresses;
  for (int i = 0; i < kSlots; ++i) {
    EXPECT_EQ(after[Slot(asked_by[i])], got[i]) << "the slot's reservation is not where its task runs";
    addresses.insert(after[Slot(asked_by[i])]);
  }
  EXPECT_EQ(addresses, AllReserved()) << "the service's set of addresses changed";
}

TEST_F(StartGroupTest, TasksJoiningOneByOneKeepTheSet) {
  StartAll();
  std::map<int, std::string> runs_on;
  for (int slot : {3, 1, 4, 2}) {  // each asks and joins before the next asks: the group shrinks
    Result<std::string> got = Start(EndpointId('h', slot), TaskName(slot));
    ASSERT_TRUE(got.ok()) << got.status().message();
    runs_on[slot] = got->substr(0, got->find('/'));
  }
  std::map<std::string, std::string> after = Reservations();
  std::set<std::string> addresses;
  for (const auto& [slot, address] : runs_on) {
    EXPECT_EQ(after[Slot(slot)], address);
    addresses.insert(address);
  }
  EXPECT_EQ(addresses, AllReserved());
}

TEST_F(StartGroupTest, ASlotWithoutAReservationTakesOneAndItsOwnerTakesAFreeAddressLater) {
  ASSERT_TRUE(ipam_->Release("web.2").ok());  // slot 2 is new: it never ran
  StartAll();
  const std::string first = RequestWithoutName();  // web.1's address (the group shares in order)
  ASSERT_EQ(first, Reserved(1));
  JoinAs(EndpointId('s', 0), first + "/24", TaskName(2));  // it was slot 2's task
  std::map<std::string, std::string> after = Reservations();
  EXPECT_EQ(after["web.2"], Reserved(1));
  EXPECT_FALSE(after.contains("web.1")) << "web.1 kept a reservation on web.2's address";
  const std::string second = RequestWithoutName();
  JoinAs(EndpointId('s', 1), second + "/24", TaskName(1));
  after = Reservations();
  EXPECT_EQ(after["web.1"], second);
  EXPECT_NE(second, first);
}

// A task of another slot that was refused at its start stays listed as "created" and answers its
// inspect: it is not starting, so the one task that is gets its own slot's address, no group.
TEST_F(StartGroupTest, ALeftoverTaskThatIsNotStartingMakesNoGroup) {
  StartingTask("c1", "web", "1", TaskId(1));
  StartingTask("c2", "web", "2", TaskId(2));
  engine_.starting.erase("c2");
  engine_.containers.back().state = "created";
  ipam::AddressCall call{pool_, "", false, "", "", ""};
  identity_->IdentifyRequester(call);
  EXPECT_EQ(call.hint_name, "web.1");
  EXPECT_TRUE(call.share_names.empty());
}

// More slots of one service than the guess tells apart (8) start together: one group.
TEST_F(StartGroupTest, AGroupIsNotLimitedToTheSlotsTheGuessTellsApart) {
  for (int slot = 1; slot <= 12; ++slot)
    StartingTask("c" + std::to_string(slot), "web", std::to_string(slot), TaskId(slot));
  ipam::AddressCall call{pool_, "", false, "", "", ""};
  identity_->IdentifyRequester(call);
  EXPECT_EQ(call.share_names.size(), 12u);
}

TEST_F(StartGroupTest, TasksOfTwoServicesStartingTogetherAreNoGroup) {
  Known("db.1", "192.0.2.160");
  StartingTask("c1", "web", "1", TaskId(1));
  StartingTask("c2", "db", "1", TaskId(2));
  ipam::AddressCall call{pool_, "", false, "", "", ""};
  identity_->IdentifyRequester(call);
  EXPECT_EQ(call.hint_name, "");
  EXPECT_TRUE(call.share_names.empty()) << "db's address could go to a task of web";
}

TEST_F(StartGroupTest, AContainerOutsideTheGroupIsRefusedTheGroupsAddressAtJoin) {
  StartAll();
  const std::string got = RequestWithoutName();
  ASSERT_TRUE(driver_->CreateEndpoint({kNet, EndpointId('o', 0), got + "/24", "", ""}).ok());
  ASSERT_TRUE(driver_->Join(kNet, EndpointId('o', 0), "/sandbox").ok());
  engine_.networks[kNet].endpoints.push_back({EndpointId('o', 0), "intruder"});
  EXPECT_EQ(identity_->LearnAtJoin(kNet, EndpointId('o', 0)).code(), Code::kFailedPrecondition);
  EXPECT_EQ(Reservations()["web.1"], Reserved(1));
}

}  // namespace
}  // namespace smv::identity

// One live daemon per --node-name (ipam/node_claim.h) against a real 3-member etcd 3.4 cluster:
// a second claim of a node name is refused naming the first host and accepted once the first is
// revoked; a claim is kept alive past its TTL; a dead daemon's claim is taken over at once on its
// own boot and after its TTL elsewhere; and a second `serve` with the same --node-name is refused.

#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "etcd/kv_client.h"
#include "ipam/node_claim.h"
#include "tests/support/etcd_cluster.h"
#include "tests/support/plugin_node.h"

namespace smv::ipam {
namespace {

using smv::testing::EtcdTest;
using std::chrono::seconds;

constexpr const char* kClaimPrefix = "/smv-test/";
constexpr const char* kClaimKey = "/smv-test/instance/node-1";

class NodeClaimTest : public EtcdTest {
 protected:
  static ClaimHolder Host(const std::string& host, int64_t pid, const std::string& boot) {
    return {.host = host,
            .machine_id = "machine-" + host,
            .boot_id = boot,
            .pid = pid,
            .socket = "/run/" + host + ".sock",
            .started = "2026-01-01T00:00:00Z",
            .instance = host + "-" + std::to_string(pid)};
  }
  static NodeClaimOptions Options(ClaimHolder holder, seconds ttl = seconds(2)) {
    return {.prefix = kClaimPrefix, .node = "node-1", .ttl = ttl, .holder = std::move(holder)};
  }
  etcd::ClientOptions Client() const { return {.endpoints = cluster_.endpoints(), .deadline = seconds(5)}; }

  // The claim a daemon that died left behind: written as it was, on a lease nobody keeps alive.
  void WriteDeadClaim(const ClaimHolder& holder, seconds ttl) {
    etcd::KvClient kv(Client());
    auto lease = kv.GrantLease(ttl);
    ASSERT_TRUE(lease.ok()) << lease.status().message();
    const nlohmann::json value = {
        {"host", holder.host},     {"machine_id", holder.machine_id}, {"boot_id", holder.boot_id},  {"pid", holder.pid},
        {"socket", holder.socket}, {"started", holder.started},       {"instance", holder.instance}};
    auto put = kv.Commit({.success = {etcd::PutOp{kClaimKey, value.dump(), *lease}}});
    ASSERT_TRUE(put.ok()) << put.status().message();
  }
  std::string ClaimValue() {
    etcd::KvClient kv(Client());
    auto got = kv.Get(kClaimKey);
    EXPECT_TRUE(got.ok()) << got.status().message();
    return got.ok() && got->kvs.size() == 1 ? got->kvs[0].value : "";
  }
};

// A pid of this boot that no longer runs.
pid_t DeadPid() {
  const pid_t child = fork();
  if (child == 0) _exit(0);
  waitpid(child, nullptr, 0);
  return child;
}

TEST_F(NodeClaimTest, ASecondClaimIsRefusedNamingTheFirstHostAndAcceptedOnceItIsRevoked) {
  auto first = NodeClaim::Take(Client(), Options(Host("host-a", getpid(), "boot-a")));
  ASSERT_TRUE(first.ok()) << first.status().message();
  EXPECT_TRUE((*first)->held());
  std::this_thread::sleep_for(seconds(5));  // 2.5 TTLs: the keeper renews the lease

  auto second = NodeClaim::Take(Client(), Options(Host("host-b", getpid(), "boot-b")));
  ASSERT_FALSE(second.ok()) << "a claim of 2 s not kept alive, or two daemons on one node name";
  EXPECT_EQ(second.status().code(), Code::kFailedPrecondition);
  const std::string refusal = second.status().message();
  std::printf("refused: %s\n", refusal.c_str());
  for (const std::string& part : std::vector<std::string>{
           "--node-name node-1 is in use by a live daemon on host host-a", "pid " + std::to_string(getpid()),
           "socket /run/host-a.sock", "If that host is gone", "wait"}) {
    EXPECT_NE(refusal.find(part), std::string::npos) << part << ": " << refusal;
  }
  EXPECT_NE(ClaimValue().find("host-a"), std::string::npos) << "the refused claim changed nothing";

  first->reset();  // a clean stop revokes the claim
  EXPECT_EQ(ClaimValue(), "");
  auto third = NodeClaim::Take(Client(), Options(Host("host-b", getpid(), "boot-b")));
  ASSERT_TRUE(third.ok()) << third.status().message();
  EXPECT_NE(ClaimValue().find("host-b"), std::string::npos);
}

TEST_F(NodeClaimTest, ADeadDaemonsClaimIsTakenAtOnceOnItsBootAndAfterItsTtlElsewhere) {
  const pid_t dead = DeadPid();
  ASSERT_NO_FATAL_FAILURE(WriteDeadClaim(Host("host-a", dead, "boot-a"), seconds(30)));
  // Another host cannot know that host-a is gone: it is told how long the claim may last.
  auto elsewhere = NodeClaim::Take(Client(), Options(Host("host-b", getpid(), "boot-b")));
  ASSERT_FALSE(elsewhere.ok());
  EXPECT_EQ(elsewhere.status().code(), Code::kFailedPrecondition);
  EXPECT_NE(elsewhere.status().message().find("expires within"), std::string::npos) << elsewhere.status().message();
  // host-a restarted on the same boot: its predecessor's process is gone, the claim is its own.
  auto restarted = NodeClaim::Take(Client(), Options(Host("host-a", getpid(), "boot-a")));
  ASSERT_TRUE(restarted.ok()) << restarted.status().message();
  EXPECT_NE(ClaimValue().find(std::to_string(getpid())), std::string::npos);
  restarted->reset();

  // A claim whose lease ran out is gone: another host takes the node name then.
  ASSERT_NO_FATAL_FAILURE(WriteDeadClaim(Host("host-a", dead, "boot-a"), seconds(2)));
  std::this_thread::sleep_for(seconds(4));
  auto after_ttl = NodeClaim::Take(Client(), Options(Host("host-b", getpid(), "boot-b")));
  ASSERT_TRUE(after_ttl.ok()) << after_ttl.status().message();
}

// Two `serve` daemons of one host with one --node-name (as the .deb service beside the managed
// plugin, or a cloned VM): the second is refused at start, naming the first, which goes on.
TEST_F(NodeClaimTest, ASecondServeWithTheSameNodeNameIsRefusedNamingTheFirst) {
  smv::testing::Node first(dir_.path(), "host-a", cluster_.StoreSpec());
  ASSERT_TRUE(first.Ready()) << first.Log();
  const std::string clone_dir = dir_.path() + "/clone";
  std::filesystem::create_directories(clone_dir);
  smv::testing::Node clone(clone_dir, "host-a", cluster_.StoreSpec());
  EXPECT_GT(clone.ExitCode(seconds(30)), 0) << clone.Log();
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  EXPECT_NE(clone.Log().find(std::string("--node-name host-a is in use by a live daemon on host ") + host),
            std::string::npos)
      << clone.Log();
  EXPECT_TRUE(first.Ready()) << first.Log();
}

}  // namespace
}  // namespace smv::ipam

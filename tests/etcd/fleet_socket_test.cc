// Several `static-macvlan serve --store etcd://...` daemons (the "hosts") on one real 3-member
// etcd cluster, each with its own socket and state directory, driven over their sockets as
// dockerd drives them: one subnet is one pool for all of them, concurrent allocations on every
// node never collide, and without quorum an allocation is refused over the wire naming the
// shared store, then works again once etcd is back.

#include <fmt/format.h>
#include <httplib.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "etcd/kv_client.h"
#include "ipam/records.h"
#include "tests/support/child_process.h"
#include "tests/support/etcd_cluster.h"
#include "tests/support/etcd_security.h"
#include "tests/support/fleet_ledger.h"
#include "tests/support/plugin_node.h"

namespace smv {
namespace {

using nlohmann::json;
using smv::testing::AddressRequest;
using smv::testing::EtcdCluster;
using smv::testing::EtcdTest;
using smv::testing::Node;
using smv::testing::PoolRequest;
using smv::testing::ReleaseRequest;
using smv::testing::RunCommand;

class FleetSocketTest : public EtcdTest {
 protected:
  std::string Store() const {
    std::string spec = "etcd://";
    for (int i = 0; i < kMembers; ++i) {
      spec += (i ? "," : "") + std::string("127.0.0.1:") + std::to_string(EtcdCluster::ClientPort(i));
    }
    return spec;
  }
  // The cluster as etcdctl's --endpoints names it.
  static std::string EtcdctlEndpoints() {
    std::string urls;
    for (int i = 0; i < kMembers; ++i) {
      urls += (i ? "," : "") + std::string("http://127.0.0.1:") + std::to_string(EtcdCluster::ClientPort(i));
    }
    return urls;
  }
  // The fix doctor printed for the record at `printable` (a key as doctor shows it), or "".
  static std::string FixOf(const std::string& doctor_text, const std::string& printable) {
    std::istringstream lines(doctor_text);
    for (std::string line; std::getline(lines, line);) {
      const size_t printf = line.find("fix: printf 'mod(");
      if (printf == std::string::npos || line.find("' '" + printable + "' '") == std::string::npos) continue;
      const size_t from = printf + 5;
      return line.substr(from, line.find("   (") - from);
    }
    return "";
  }
  // Runs a printed command as a user would paste it: no etcdctl settings in the environment.
  std::pair<int, std::string> RunFix(const std::string& command) {
    std::ofstream(dir_.path() + "/fix.sh") << "unset ETCDCTL_ENDPOINTS\nexport ETCDCTL_API=3\n" << command << "\n";
    return RunCommand("sh " + dir_.path() + "/fix.sh 2>&1");
  }
  // Two hosts' daemons ready, each with its network's pool on the same subnet: one pool.
  void OnePool(Node& a, Node& b, json& pool_a, json& pool_b) {
    ASSERT_TRUE(a.Ready()) << a.Log();
    ASSERT_TRUE(b.Ready()) << b.Log();
    httplib::Client on_a = a.Client();
    httplib::Client on_b = b.Client();
    pool_a = a.Post(on_a, "IpamDriver.RequestPool", PoolRequest());
    pool_b = b.Post(on_b, "IpamDriver.RequestPool", PoolRequest());
    ASSERT_TRUE(pool_a.contains("PoolID")) << pool_a << a.Log();
    ASSERT_EQ(pool_a["PoolID"], pool_b["PoolID"]) << pool_a << pool_b;
  }
};

// Named allocations, as dockerd makes them for `docker run --name`: each client runs its names in
// rounds, each round on the next node, and removes them (ReleaseAddress) before the next, so a
// name comes back on another host. Every answer is checked as it comes (a name always gets the
// same address, an address only ever one name) and at the end against etcd read at one revision.
TEST_F(FleetSocketTest, FourNodesAndEightClientsEachNeverHandOutOneAddressTwice) {
  // scripts/chaos.sh runs it at 1,250 per client (40,000 allocations of 16,000 names on the /18).
  constexpr int kNodes = 4, kClients = 8;
  const char* per_client = std::getenv("SMV_FLEET_PER_CLIENT");
  const int kPerClient = per_client != nullptr && std::atoi(per_client) > 0 ? std::atoi(per_client) : 40;
  // 32 x 500 names fill 16,000 of the /18's 16,382 addresses; fewer allocations: two rounds.
  const int kNamesPerClient = std::clamp(kPerClient / 2, 1, 500);
  std::vector<std::unique_ptr<Node>> nodes;
  for (int n = 0; n < kNodes; ++n)
    nodes.push_back(std::make_unique<Node>(dir_.path(), "n" + std::to_string(n), Store()));
  for (auto& node : nodes) ASSERT_TRUE(node->Ready()) << node->Log();

  // dockerd on each host asks for the pool when its network is created: one pool for all.
  std::vector<std::string> pools;
  for (auto& node : nodes) {
    httplib::Client cli = node->Client();
    const json pool = node->Post(cli, "IpamDriver.RequestPool", PoolRequest());
    ASSERT_TRUE(pool.contains("PoolID")) << pool << node->Log();
    pools.push_back(pool["PoolID"]);
  }
  for (const std::string& p : pools) ASSERT_EQ(p, pools[0]);

  const auto start = std::chrono::steady_clock::now();
  testing::FleetLedger ledger;
  std::vector<std::thread> clients;
  for (int n = 0; n < kNodes; ++n) {
    for (int c = 0; c < kClients; ++c) {
      clients.emplace_back([&, n, c] {
        std::vector<std::string> names;
        for (int i = 0; i < kNamesPerClient; ++i) names.push_back(fmt::format("n{}c{}-{}", n, c, i));
        std::vector<std::pair<std::string, std::string>> running;  // name, address: this round's
        for (int done = 0, round = 0; done < kPerClient; ++round) {
          if (round > 0) {  // docker rm on the node of the last round
            Node& last = *nodes[static_cast<size_t>((n + round - 1) % kNodes)];
            httplib::Client cli = last.Client();
            for (const auto& [name, address] : running) {
              const json released = last.Post(cli, "IpamDriver.ReleaseAddress", ReleaseRequest(pools[0], address));
              if (released != json::object()) ledger.Problem("release " + address + ": " + released.dump());
            }
            running.clear();
          }
          Node& node = *nodes[static_cast<size_t>((n + round) % kNodes)];
          httplib::Client cli = node.Client();
          for (size_t i = 0; i < names.size() && done < kPerClient; ++i, ++done) {
            const json answer = node.Post(cli, "IpamDriver.RequestAddress", AddressRequest(pools[0], names[i]));
            if (!answer.contains("Address")) {
              ledger.Problem(names[i] + ": " + answer.dump());
              continue;
            }
            ledger.Answered(names[i], answer["Address"]);
            running.emplace_back(names[i], answer["Address"]);
          }
        }
        for (const auto& [name, address] : running) ledger.Held(name);
      });
    }
  }
  for (std::thread& t : clients) t.join();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const int allocations = ledger.counts().first;
  std::printf("%d named allocations of %zu names in %.2f s (for information; bench/ measures)\n", allocations,
              ledger.reserved().size(), seconds);
  const std::vector<std::string> problems = ledger.problems();
  EXPECT_TRUE(problems.empty()) << problems.size() << " problems, first: " << problems.front();
  EXPECT_EQ(allocations, kNodes * kClients * kPerClient);
  EXPECT_EQ(ledger.reserved().size(), static_cast<size_t>(kNodes * kClients * kNamesPerClient));

  // etcd read at one revision: a lease for each name left running, on its address, nothing
  // else; a reservation for every name, on the address it was always answered.
  const testing::EtcdBook book = testing::ReadEtcdBook(cluster_.endpoints());
  EXPECT_EQ(book.leased, ledger.held()) << "etcd at revision " << book.revision;
  EXPECT_EQ(book.reserved, ledger.reserved()) << "etcd at revision " << book.revision;
}

TEST_F(FleetSocketTest, WithoutQuorumDockerdIsToldWhyAndTheNodeRecovers) {
  Node node(dir_.path(), "n0", Store());
  ASSERT_TRUE(node.Ready()) << node.Log();
  httplib::Client cli = node.Client();
  const json pool = node.Post(cli, "IpamDriver.RequestPool", PoolRequest());
  ASSERT_TRUE(pool.contains("PoolID")) << pool << node.Log();
  const json before = node.Post(cli, "IpamDriver.RequestAddress", AddressRequest(pool["PoolID"]));
  ASSERT_TRUE(before.contains("Address")) << before;

  cluster_.Kill(1);
  cluster_.Kill(2);
  // dockerd's release (docker rm) is answered without an error and journaled on the host.
  const std::string released = before["Address"].get<std::string>();
  const json release = node.Post(cli, "IpamDriver.ReleaseAddress",
                                 {{"PoolID", pool["PoolID"]}, {"Address", released.substr(0, released.find('/'))}});
  EXPECT_EQ(release, json::object()) << node.Log();
  // Eight `docker run`s at once, each refused within 10 s: none waits behind the others' timeouts.
  constexpr int kCallers = 8;
  std::vector<json> during(kCallers);
  std::vector<int64_t> took_ms(kCallers);
  std::vector<std::thread> callers;
  for (int i = 0; i < kCallers; ++i) {
    callers.emplace_back([&, i] {
      httplib::Client own = node.Client();
      const auto start = std::chrono::steady_clock::now();
      during[i] = node.Post(own, "IpamDriver.RequestAddress", AddressRequest(pool["PoolID"], fmt::format("c{}", i)));
      took_ms[i] =
          std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start).count();
    });
  }
  for (std::thread& t : callers) t.join();
  for (int i = 0; i < kCallers; ++i) {
    ASSERT_TRUE(during[i].contains("Err")) << during[i];
    const std::string err = during[i]["Err"].get<std::string>();
    EXPECT_NE(err.find("shared address store unavailable"), std::string::npos) << err;
    EXPECT_NE(err.find("refusing to allocate"), std::string::npos) << err;
    EXPECT_LE(took_ms[i], 10000) << "caller " << i << ": " << err;
  }
  std::printf("without quorum: %d concurrent allocations refused after %lld .. %lld ms\n", kCallers,
              static_cast<long long>(*std::min_element(took_ms.begin(), took_ms.end())),
              static_cast<long long>(*std::max_element(took_ms.begin(), took_ms.end())));

  cluster_.Start(1);
  cluster_.Start(2);
  for (int i = 1; i < 3; ++i) ASSERT_TRUE(cluster_.Healthy(i, std::chrono::seconds(30))) << cluster_.Logs();
  const json after = node.Post(cli, "IpamDriver.RequestAddress", AddressRequest(pool["PoolID"]));
  ASSERT_TRUE(after.contains("Address")) << after << node.Log();
  // The journaled release was replayed before this allocation. Its etcd transaction timed out
  // with the outcome unknown: it may still have applied once quorum came back (then the replay
  // frees 0 addresses, 1 otherwise). Either way the address is free: next-fit may hand it out
  // again, else asking for it must succeed.
  EXPECT_NE(node.Log().find("replayed 1 journaled release(s): "), std::string::npos) << node.Log();
  if (after["Address"] != before["Address"]) {
    json again = AddressRequest(pool["PoolID"]);
    again["Address"] = released.substr(0, released.find('/'));
    const json freed = node.Post(cli, "IpamDriver.RequestAddress", again);
    EXPECT_EQ(freed.value("Address", ""), released) << freed << node.Log();
  }
}

// A host died with `web` running: the other hosts refuse the name, naming the dead node, until a
// user frees the dead node's addresses; then `web` runs elsewhere on its own address.
TEST_F(FleetSocketTest, ADeadNodesNamesMoveOnlyAfterAnExplicitRelease) {
  Node a(dir_.path(), "host-a", Store());
  Node b(dir_.path(), "host-b", Store());
  httplib::Client on_a = a.Client();
  httplib::Client on_b = b.Client();
  json pool_a, pool_b;
  ASSERT_NO_FATAL_FAILURE(OnePool(a, b, pool_a, pool_b));
  const json web = a.Post(on_a, "IpamDriver.RequestAddress", AddressRequest(pool_a["PoolID"], "web"));
  ASSERT_TRUE(web.contains("Address")) << web << a.Log();

  const json twice = b.Post(on_b, "IpamDriver.RequestAddress", AddressRequest(pool_b["PoolID"], "web"));
  ASSERT_TRUE(twice.contains("Err")) << twice;
  EXPECT_NE(twice["Err"].get<std::string>().find("host-a"), std::string::npos) << twice;
  EXPECT_NE(b.Cli("ls").second.find("in use on host-a"), std::string::npos) << b.Cli("ls").second;

  auto [self_code, self_text] = b.Cli("release --node host-b");
  EXPECT_NE(self_code, 0) << self_text;
  EXPECT_NE(self_text.find("is this host"), std::string::npos) << self_text;
  auto [both_code, both_text] = b.Cli("release web --node host-a");
  EXPECT_NE(both_code, 0) << both_text;

  auto [code, text] = b.Cli("release --node host-a");
  EXPECT_EQ(code, 0) << text << b.Log();
  EXPECT_NE(text.find("released 1 address(es) held by node host-a"), std::string::npos) << text;
  const json moved = b.Post(on_b, "IpamDriver.RequestAddress", AddressRequest(pool_b["PoolID"], "web"));
  ASSERT_TRUE(moved.contains("Address")) << moved << b.Log();
  EXPECT_EQ(moved["Address"], web["Address"]);
  EXPECT_NE(b.Cli("ls").second.find("in use on host-b"), std::string::npos) << b.Cli("ls").second;
}

// fsck of a host on a shared book reads etcd at one revision beside the running daemons, writes
// nothing, and names a name held on two nodes.
TEST_F(FleetSocketTest, FsckChecksTheSharedBookWithoutWritingToIt) {
  Node a(dir_.path(), "host-a", Store());
  Node b(dir_.path(), "host-b", Store());
  httplib::Client on_a = a.Client();
  httplib::Client on_b = b.Client();
  json pool, pool_b;
  ASSERT_NO_FATAL_FAILURE(OnePool(a, b, pool, pool_b));
  ASSERT_TRUE(a.Post(on_a, "IpamDriver.RequestAddress", AddressRequest(pool["PoolID"], "web")).contains("Address"));
  ASSERT_TRUE(b.Post(on_b, "IpamDriver.RequestAddress", AddressRequest(pool["PoolID"], "db")).contains("Address"));

  etcd::KvClient etcd_client({.endpoints = cluster_.endpoints()});
  auto revision = [&] { return etcd_client.GetPrefix("/static-macvlan/v1/").value().revision; };
  const std::string fsck = std::string(SMV_BINARY) + " fsck --state-dir " + a.state_dir() + " --store " + Store();
  const int64_t before = revision();
  auto [code, text] = RunCommand(fsck);
  EXPECT_EQ(code, 0) << text;
  EXPECT_NE(text.find("pools=1 leases=2 reservations=2"), std::string::npos) << text;
  EXPECT_EQ(revision(), before) << "fsck wrote to etcd";

  // A lease of web on a third node, written behind everyone's back.
  ipam::LeaseRecord stray{pool["PoolID"], *IpAddress::Parse("198.18.63.200"), {}, 0};
  stray.lease.name = "web";
  stray.lease.node = "host-z";
  const std::string key = "/static-macvlan/v1/lease/" + ipam::records::LeaseKey(stray.pool_id, stray.address);
  ASSERT_TRUE(etcd_client.Commit({.success = {etcd::PutOp{key, ipam::records::EncodeLease(stray)}}}).ok());
  auto [bad_code, bad_text] = RunCommand(fsck);
  EXPECT_EQ(bad_code, 1) << bad_text;
  EXPECT_NE(bad_text.find("name web is held on two nodes"), std::string::npos) << bad_text;
  EXPECT_NE(bad_text.find("and the shared book etcd://"), std::string::npos) << bad_text;
}

// Issue 27: a record of the shared book that does not decode is skipped by every node; doctor
// names each one (its key, printable, and why) with the command that looks at it and deletes it,
// on the cluster doctor read, only as doctor read it.
TEST_F(FleetSocketTest, DoctorNamesEachUndecodableRecordOfTheSharedBookWithItsFix) {
  Node a(dir_.path(), "host-a", Store());
  ASSERT_TRUE(a.Ready()) << a.Log();
  etcd::KvClient etcd_client({.endpoints = cluster_.endpoints()});
  const std::string bad = "/static-macvlan/v1/reservation/198.18.0.0/18" + std::string(1, '\0') + "web";
  ASSERT_TRUE(etcd_client.Commit({.success = {etcd::PutOp{bad, "{not json"}}}).ok());
  const std::string doctor = std::string(SMV_BINARY) + " doctor --socket " + a.socket() + " --state-dir " +
                             a.state_dir() + " --store " + Store() + " --docker-host unix://" + dir_.path() +
                             "/no-engine.sock";
  auto [code, text] = RunCommand(doctor + " 2>&1");
  EXPECT_EQ(code, 1) << text;
  const std::string printable = "/static-macvlan/v1/reservation/198.18.0.0/18\\x00web";
  EXPECT_NE(text.find("FAIL  state    the shared book's record " + printable + " does not decode"), std::string::npos)
      << text;
  EXPECT_NE(text.find("not a JSON object"), std::string::npos) << text;
  EXPECT_NE(text.find("ok    daemon   answers on " + a.socket()), std::string::npos) << text;
  // The fix doctor prints names the cluster doctor read, and deletes the record as doctor read it.
  const std::string command = FixOf(text, printable);
  ASSERT_FALSE(command.empty()) << text;
  EXPECT_NE(command.find(" --endpoints=" + EtcdctlEndpoints() + " txn"), std::string::npos) << command;
  // Restored meanwhile (still undecodable, as a half-done restore is): the printed fix keeps it.
  ASSERT_TRUE(etcd_client.Commit({.success = {etcd::PutOp{bad, "{restored later"}}}).ok());
  auto [stale_code, stale_text] = RunFix(command);
  EXPECT_NE(stale_text.find("FAILURE"), std::string::npos) << command << "\n" << stale_text;
  auto kept = etcd_client.Get(bad);
  ASSERT_TRUE(kept.ok() && kept->kvs.size() == 1) << command << "\n" << stale_text;
  EXPECT_EQ(kept->kvs.front().value, "{restored later") << "the fix deleted a record written after doctor read it";
  // The fix doctor prints now, run as printed, deletes the record: etcdctl txn reads the key
  // quoted, its NUL written \x00 (no command-line argument can carry a NUL).
  auto [again_code, again] = RunCommand(doctor + " 2>&1");
  const std::string fresh = FixOf(again, printable);
  ASSERT_FALSE(fresh.empty()) << again;
  auto [fix_code, fix_text] = RunFix(fresh);
  EXPECT_EQ(fix_code, 0) << fresh << "\n" << fix_text;
  EXPECT_TRUE(etcd_client.Get(bad).value().kvs.empty()) << fresh << "\n" << fix_text;
  auto [after_code, after] = RunCommand(doctor + " 2>&1");
  EXPECT_EQ(after.find("does not decode"), std::string::npos) << after;
}

// A stored value may hold terminal escape sequences, newlines and any length: doctor, fsck and
// the log lines show what does not decode in it escaped and cut short, never as raw bytes.
TEST_F(FleetSocketTest, AHostileUndecodableValueIsShownEscapedAndCutShort) {
  Node a(dir_.path(), "host-a", Store());
  ASSERT_TRUE(a.Ready()) << a.Log();
  etcd::KvClient etcd_client({.endpoints = cluster_.endpoints()});
  const std::string lease = "/static-macvlan/v1/lease/198.18.0.0/18" + std::string(1, '\0') + "198.18.0.9";
  const std::string kind = "\x1b]0;owned\x07\nFAIL  forged line" + std::string(5000, 'A');
  ASSERT_TRUE(etcd_client.Commit({.success = {etcd::PutOp{lease, json{{"v", 1}, {"kind", kind}}.dump()}}}).ok());
  const std::string doctor = std::string(SMV_BINARY) + " doctor --socket " + a.socket() + " --state-dir " +
                             a.state_dir() + " --store " + Store() + " --docker-host unix://" + dir_.path() +
                             "/no-engine.sock";
  const std::string fsck = std::string(SMV_BINARY) + " fsck --state-dir " + a.state_dir() + " --store " + Store();
  for (const std::string& command : {doctor, fsck}) {
    auto [code, text] = RunCommand(command + " 2>&1");
    EXPECT_NE(code, 0) << text;
    EXPECT_NE(text.find("unknown lease kind \"\\x1b]0;owned\\x07\\x0aFAIL  forged lineAAA"), std::string::npos) << text;
    EXPECT_EQ(text.find('\x1b'), std::string::npos) << "a raw escape sequence reached the terminal: " << command;
    EXPECT_EQ(text.find("\nFAIL  forged"), std::string::npos) << "a forged line: " << text;
    EXPECT_EQ(text.find(std::string(1000, 'A')), std::string::npos) << "not cut short: " << command;
    EXPECT_NE(text.find("more bytes)"), std::string::npos) << text;
  }
}

// --ipam-opt scope=local on a daemon of the fleet: the pool lives in this host's own book, so
// two hosts may each have one on a subnet, nothing of it reaches etcd, and it allocates while
// etcd has no quorum. One subnet is never in both books.
TEST_F(FleetSocketTest, AHostLocalPoolStaysOutOfEtcdAndAllocatesWithoutIt) {
  constexpr const char* kLocalSubnet = "198.18.64.0/24";
  Node a(dir_.path(), "host-a", Store());
  Node b(dir_.path(), "host-b", Store());
  ASSERT_TRUE(a.Ready()) << a.Log();
  ASSERT_TRUE(b.Ready()) << b.Log();
  httplib::Client on_a = a.Client();
  httplib::Client on_b = b.Client();
  json local_request = PoolRequest(kLocalSubnet);
  local_request["Options"] = {{"scope", "local"}};
  const json local_a = a.Post(on_a, "IpamDriver.RequestPool", local_request);
  const json local_b = b.Post(on_b, "IpamDriver.RequestPool", local_request);
  ASSERT_EQ(local_a["PoolID"], std::string("local ") + kLocalSubnet) << local_a << a.Log();
  ASSERT_EQ(local_b["PoolID"], local_a["PoolID"]) << local_b;
  const json web_a = a.Post(on_a, "IpamDriver.RequestAddress", AddressRequest(local_a["PoolID"], "web"));
  const json web_b = b.Post(on_b, "IpamDriver.RequestAddress", AddressRequest(local_b["PoolID"], "web"));
  ASSERT_TRUE(web_a.contains("Address")) << web_a << a.Log();
  EXPECT_EQ(web_a["Address"], web_b["Address"]) << "two books: each host starts at the first address";

  etcd::KvClient etcd_client({.endpoints = cluster_.endpoints()});
  auto shared = etcd_client.GetPrefix("/static-macvlan/v1/");
  ASSERT_TRUE(shared.ok()) << shared.status().message();
  for (const auto& kv : shared->kvs) EXPECT_EQ(kv.key.find("198.18.64."), std::string::npos) << kv.key;

  // The subnet in the other book on the same host, either way round: refused, naming it.
  const json mixed = a.Post(on_a, "IpamDriver.RequestPool", PoolRequest(kLocalSubnet));
  ASSERT_TRUE(mixed.contains("Err")) << mixed;
  EXPECT_NE(mixed["Err"].get<std::string>().find("198.18.64.0/24 is a host-local pool on this host"), std::string::npos)
      << mixed;
  ASSERT_TRUE(b.Post(on_b, "IpamDriver.RequestPool", PoolRequest()).contains("PoolID"));
  json local_fleet = PoolRequest();
  local_fleet["Options"] = {{"scope", "local"}};
  const json refused = a.Post(on_a, "IpamDriver.RequestPool", local_fleet);
  ASSERT_TRUE(refused.contains("Err")) << refused;
  EXPECT_NE(refused["Err"].get<std::string>().find("198.18.0.0/18 is already a shared pool"), std::string::npos)
      << refused;
  local_fleet["Options"] = {{"scope", "everywhere"}};
  const json wrong = a.Post(on_a, "IpamDriver.RequestPool", local_fleet);
  EXPECT_NE(wrong.value("Err", "").find("invalid value \"everywhere\" for --ipam-opt scope"), std::string::npos)
      << wrong;

  // Without quorum the shared pool refuses; the host-local one does not need etcd.
  cluster_.Kill(1);
  cluster_.Kill(2);
  const json db = a.Post(on_a, "IpamDriver.RequestAddress", AddressRequest(local_a["PoolID"], "db"));
  EXPECT_TRUE(db.contains("Address")) << db << a.Log();
  cluster_.Start(1);
  cluster_.Start(2);
  for (int i = 1; i < 3; ++i) ASSERT_TRUE(cluster_.Healthy(i, std::chrono::seconds(30))) << cluster_.Logs();

  auto [ls_code, ls] = a.Cli("ls");
  EXPECT_EQ(ls_code, 0) << ls;
  EXPECT_NE(ls.find("198.18.64.0/24"), std::string::npos) << ls;
  EXPECT_NE(ls.find("db"), std::string::npos) << ls;
  auto [fsck_code, fsck] =
      RunCommand(std::string(SMV_BINARY) + " fsck --state-dir " + a.state_dir() + " --store " + Store());
  EXPECT_EQ(fsck_code, 0) << fsck;
  EXPECT_NE(fsck.find("pools=2 leases=2 reservations=2"), std::string::npos) << fsck;
}

// The members want TLS client certificates and a user: a daemon given both allocates over its
// socket; one with a wrong password stops at start-up naming the flag.
class FleetSecurityTest : public EtcdTest {
 protected:
  void ConfigureCluster() override {
    std::signal(SIGPIPE, SIG_IGN);  // as the daemon does: a member may end a TLS handshake
    certs_ = testing::MakeTestCertificates(dir_.path());
    cluster_.UseTls({.ca = certs_.ca, .server_cert = certs_.server_cert, .server_key = certs_.server_key});
  }
  void SetUp() override {
    EtcdTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    ASSERT_NO_FATAL_FAILURE(testing::EnableEtcdAuth(
        cluster_, "smv", "smv-secret", "/static-macvlan/",
        "--cacert=" + certs_.ca + " --cert=" + certs_.server_cert + " --key=" + certs_.server_key));
    std::ofstream(dir_.Sub("password")) << "smv-secret\n";
    std::ofstream(dir_.Sub("wrong-password")) << "guess\n";
  }
  std::vector<std::string> Flags(const std::string& password_file) const {
    return {"--etcd-cacert",   certs_.ca,     "--etcd-cert", certs_.client_cert,     "--etcd-key",
            certs_.client_key, "--etcd-user", "smv",         "--etcd-password-file", password_file};
  }
  testing::TestCertificates certs_;
};

TEST_F(FleetSecurityTest, ADaemonWithCertificatesAndAUserAllocatesAndAWrongPasswordStopsIt) {
  Node node(dir_.path(), "secure", cluster_.StoreSpec(), Flags(dir_.Sub("password")));
  ASSERT_TRUE(node.Ready()) << node.Log();
  httplib::Client cli = node.Client();
  const json pool = node.Post(cli, "IpamDriver.RequestPool", PoolRequest());
  ASSERT_TRUE(pool.contains("PoolID")) << pool << node.Log();
  const json address = node.Post(cli, "IpamDriver.RequestAddress", AddressRequest(pool["PoolID"], "web"));
  ASSERT_TRUE(address.contains("Address")) << address << node.Log();
  EXPECT_NE(node.Log().find("over TLS as etcd user \"smv\""), std::string::npos) << node.Log();

  Node wrong(dir_.path(), "wrong", cluster_.StoreSpec(), Flags(dir_.Sub("wrong-password")));
  EXPECT_EQ(wrong.ExitCode(std::chrono::seconds(30)), 1) << wrong.Log();
  EXPECT_NE(wrong.Log().find("refused the credentials of --etcd-user \"smv\""), std::string::npos) << wrong.Log();

  // etcd's gateway refuses a client certificate with a Common Name once users are on.
  std::vector<std::string> named = Flags(dir_.Sub("password"));
  named[3] = certs_.server_cert;  // CN=127.0.0.1
  named[5] = certs_.server_key;
  Node with_cn(dir_.path(), "with-cn", cluster_.StoreSpec(), named);
  EXPECT_EQ(with_cn.ExitCode(std::chrono::seconds(30)), 1) << with_cn.Log();
  EXPECT_NE(with_cn.Log().find("issue --etcd-cert without CN"), std::string::npos) << with_cn.Log();
}

TEST(FleetFlagsTest, AWrongStoreIsRefusedNamingItAndLeavesNothingBehind) {
  smv::testing::TempDir dir;
  const std::string state = dir.Sub("state");
  for (const std::string store : {"etcd:/10.0.0.1:2379", "etcd://10.0.0.1", "postgres://x"}) {
    const std::string command = std::string(SMV_BINARY) + " serve --socket " + dir.Sub("s.sock") + " --state-dir " +
                                state + " --store '" + store + "' 2>&1";
    FILE* out = popen(command.c_str(), "r");
    ASSERT_NE(out, nullptr);
    std::string text;
    char buffer[512];
    while (fgets(buffer, sizeof buffer, out)) text += buffer;
    const int status = pclose(out);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) != 0) << text;
    EXPECT_NE(text.find("--store \"" + store + "\""), std::string::npos) << text;
    EXPECT_NE(text.find("expected etcd://HOST:PORT"), std::string::npos) << text;
    EXPECT_NE(text.find("or lmdb"), std::string::npos) << text;
    EXPECT_FALSE(std::filesystem::exists(state)) << store << " created " << state;
  }
}

TEST(FleetFlagsTest, WrongEtcdSecurityFlagsAreRefusedNamingThemAndLeaveNothingBehind) {
  smv::testing::TempDir dir;
  const std::string state = dir.Sub("state");
  std::ofstream(dir.Sub("empty-password")).flush();
  const std::string etcd = " --store etcd://127.0.0.1:2379";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {" --etcd-cacert /nonexistent/ca.crt", "--etcd-cacert \"/nonexistent/ca.crt\""},
      {etcd + " --etcd-cacert /nonexistent/ca.crt", "--etcd-cacert \"/nonexistent/ca.crt\": cannot open it"},
      {etcd + " --etcd-cert " + dir.Sub("empty-password"), "give both"},
      {etcd + " --etcd-user smv", "--etcd-user \"smv\" and --etcd-password-file"},
      {etcd + " --etcd-user smv --etcd-password-file " + dir.Sub("empty-password"), "the file is empty"},
  };
  for (const auto& [flags, wanted] : cases) {
    const std::string command =
        std::string(SMV_BINARY) + " serve --socket " + dir.Sub("s.sock") + " --state-dir " + state + flags + " 2>&1";
    FILE* out = popen(command.c_str(), "r");
    ASSERT_NE(out, nullptr);
    std::string text;
    char buffer[512];
    while (fgets(buffer, sizeof buffer, out)) text += buffer;
    const int status = pclose(out);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) != 0) << flags << ": " << text;
    EXPECT_NE(text.find(wanted), std::string::npos) << flags << ": " << text;
    EXPECT_FALSE(std::filesystem::exists(state)) << flags << " created " << state;
  }
}

}  // namespace
}  // namespace smv

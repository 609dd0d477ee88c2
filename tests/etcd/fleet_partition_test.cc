// The fleet partitioned, on one machine (issue 27, "tests like Jepsen"): every etcd member and
// every plugin host in a network namespace of its own on one switch (tests/support/
// partitioned_etcd.h), real `serve --store etcd://` daemons driven over their sockets as dockerd
// drives them, and every answered call written to a history that the checker of
// tests/support/history_checker.h reads at the end, together with the book in etcd.
//
//   - a minority member's side and a host cut off from etcd (but not from the LAN) refuse new
//     allocations within 10 s naming etcd, the majority side goes on, and healing needs no
//     restart;
//   - a hung member (SIGSTOP) that a host talks to, with quorum up: that host's allocations go
//     on with p99 under 2 s;
//   - answers lost after commit (a proxy that drops every Nth transaction's answer) and a host
//     restarted mid-run (its release journal replayed): no duplicate, nothing lost;
//   - PartitionChaos: all of it in turn under load; scripts/chaos.sh runs it at >= 10,000
//     allocations (SMV_PARTITION_ALLOCATIONS).
//
// SMV_PARTITION_SEED picks the names' moves (printed by each case).

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "etcd/kv_client.h"
#include "ipam/records.h"
#include "tests/support/fleet_ledger.h"
#include "tests/support/history_checker.h"
#include "tests/support/partitioned_etcd.h"
#include "tests/support/plugin_node.h"
#include "tests/support/temp_dir.h"

namespace smv {
namespace {

using nlohmann::json;
using smv::testing::History;
using smv::testing::Lan;
using smv::testing::Operation;
using smv::testing::OpKind;
using smv::testing::Outcome;
using smv::testing::PartitionedEtcd;
using smv::testing::PluginHost;
using smv::testing::Station;
using std::chrono::milliseconds;
using std::chrono::seconds;
using Clock = std::chrono::steady_clock;

constexpr const char* kTestAddress = "198.51.100.250";  // the test's own station
constexpr int64_t kRefusalBudgetMs = 10000;             // cut off from quorum: refused this fast
constexpr int64_t kHungP99BudgetMs = 2000;              // a hung member: allocation p99 under this
constexpr int64_t kHungMaxMs = 5000;                    // ... and none waits this long

int SizeFromEnv(const char* name, int fallback) {
  const char* value = std::getenv(name);
  return value != nullptr && std::atoi(value) > 0 ? std::atoi(value) : fallback;
}
int64_t MsSince(Clock::time_point t) { return std::chrono::duration_cast<milliseconds>(Clock::now() - t).count(); }
int64_t Percentile(std::vector<int64_t> values, double p) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  return values[std::min(values.size() - 1, static_cast<size_t>(p * static_cast<double>(values.size())))];
}

// A TCP proxy in front of one etcd member, in the test's namespace: forwards everything, but
// for every `drop_every`th transaction (POST /v3/kv/txn, counted across the proxies that share
// `txns`) it waits for the member's answer, so the transaction was decided, then drops the
// answer and closes the connection: the client's answer is lost after commit.
class LossyProxy {
 public:
  LossyProxy(const std::string& host, int port, const std::string& upstream_host, int upstream_port,
             std::atomic<int>& txns, int drop_every, std::atomic<int>& dropped)
      : upstream_host_(upstream_host),
        upstream_port_(upstream_port),
        txns_(txns),
        dropped_(dropped),
        drop_every_(drop_every) {
    listener_ = socket(AF_INET, SOCK_STREAM, 0);
    const int on = 1;
    setsockopt(listener_, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    sockaddr_in address = Address(host, port);
    if (bind(listener_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 || listen(listener_, 64) != 0) {
      ADD_FAILURE() << "proxy cannot listen on " << host << ":" << port << ": " << std::strerror(errno);
      return;
    }
    acceptor_ = std::thread([this] { Accept(); });
  }
  ~LossyProxy() {
    stopping_ = true;
    shutdown(listener_, SHUT_RDWR);
    if (acceptor_.joinable()) acceptor_.join();
    close(listener_);
    std::vector<std::thread> pumps;
    {
      std::scoped_lock lock(mu_);
      for (int fd : open_) shutdown(fd, SHUT_RDWR);
      pumps.swap(pumps_);
    }
    for (std::thread& t : pumps) t.join();
  }

 private:
  static sockaddr_in Address(const std::string& host, int port) {
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<uint16_t>(port));
    inet_pton(AF_INET, host.c_str(), &address.sin_addr);
    return address;
  }
  void Accept() {
    while (!stopping_) {
      const int client = accept(listener_, nullptr, nullptr);
      if (client < 0) return;
      std::scoped_lock lock(mu_);
      open_.push_back(client);
      pumps_.emplace_back([this, client] { Pump(client); });
    }
  }
  static bool WriteAll(int fd, const char* data, ssize_t size) {
    while (size > 0) {
      const ssize_t n = send(fd, data, static_cast<size_t>(size), MSG_NOSIGNAL);
      if (n <= 0) return false;
      data += n, size -= n;
    }
    return true;
  }
  void Pump(int client) {
    const int upstream = socket(AF_INET, SOCK_STREAM, 0);
    {
      std::scoped_lock lock(mu_);
      open_.push_back(upstream);
    }
    sockaddr_in address = Address(upstream_host_, upstream_port_);
    if (connect(upstream, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) return Close(client, upstream);
    bool awaiting = false, drop = false;  // a request went out and no answer came yet; drop that answer
    char buffer[16384];
    for (;;) {
      pollfd fds[2] = {{client, POLLIN, 0}, {upstream, POLLIN, 0}};
      if (poll(fds, 2, 1000) < 0 || stopping_) break;
      if (fds[0].revents != 0) {
        const ssize_t n = recv(client, buffer, sizeof buffer, 0);
        if (n <= 0) break;
        if (!awaiting) {  // the first bytes of a request
          awaiting = true;
          drop = std::string_view(buffer, static_cast<size_t>(n)).starts_with("POST /v3/kv/txn") &&
                 ++txns_ % drop_every_ == 0;
        }
        if (!WriteAll(upstream, buffer, n)) break;
      }
      if (fds[1].revents != 0) {
        const ssize_t n = recv(upstream, buffer, sizeof buffer, 0);
        if (n <= 0) break;
        if (drop) {  // etcd answered: the transaction is decided; its answer is lost
          ++dropped_;
          break;
        }
        awaiting = false;
        if (!WriteAll(client, buffer, n)) break;
      }
    }
    Close(client, upstream);
  }
  void Close(int client, int upstream) {
    std::scoped_lock lock(mu_);
    std::erase(open_, client);
    std::erase(open_, upstream);
    close(client);
    close(upstream);
  }

  std::string upstream_host_;
  int upstream_port_;
  std::atomic<int>& txns_;
  std::atomic<int>& dropped_;
  const int drop_every_;
  int listener_ = -1;
  std::atomic<bool> stopping_ = false;
  std::thread acceptor_;
  std::mutex mu_;
  std::vector<int> open_;
  std::vector<std::thread> pumps_;
};

// What one call was answered, as the history records it.
struct Call {
  Outcome outcome = Outcome::kOk;
  std::string address;  // bare
  std::string error;
  int64_t ms = 0;
};

class PartitionTest : public ::testing::Test {
 protected:
  static constexpr int kMembers = 3;

  void SetUp() override {
    if (unshare(CLONE_NEWNET) != 0) {
      GTEST_SKIP() << "no private network namespace (" << std::strerror(errno) << "); run as root";
    }
    ASSERT_EQ(system("ip link set dev lo up"), 0);
    ASSERT_TRUE(std::filesystem::exists(PartitionedEtcd::kBinary))
        << PartitionedEtcd::kBinary << " is missing: scripts/install-deps.sh --test installs etcd-server";
    seed_ = static_cast<uint32_t>(SizeFromEnv("SMV_PARTITION_SEED", 1));
    std::printf("partition: seed %u (SMV_PARTITION_SEED)\n", seed_);
    lan_ = std::make_unique<Lan>();
    self_ = lan_->Plug(nullptr, kTestAddress, "test");
    cluster_ = std::make_unique<PartitionedEtcd>(*lan_, dir_.path(), kMembers);
    cluster_->StartAll();
    for (int i = 0; i < kMembers; ++i) ASSERT_TRUE(cluster_->Healthy(i, seconds(30))) << cluster_->Logs();
  }
  void TearDown() override {  // daemons first, then members, then the switch
    proxies_.clear();
    hosts_.clear();
    cluster_.reset();
    lan_.reset();
  }

  // A host whose etcd client tries the members in `order` (all, in index order, by default).
  PluginHost& AddHost(const std::string& name, const std::string& store) {
    const int index = static_cast<int>(hosts_.size());
    hosts_.push_back(std::make_unique<PluginHost>(*lan_, dir_.path(), name, index, store));
    PluginHost& host = *hosts_.back();
    EXPECT_TRUE(host.node().Ready()) << host.node().Log();
    httplib::Client cli = host.node().Client();
    const json pool = host.node().Post(cli, "IpamDriver.RequestPool", testing::PoolRequest());
    EXPECT_TRUE(pool.contains("PoolID")) << pool << host.node().Log();
    if (pool.contains("PoolID")) pool_ = pool["PoolID"];
    return host;
  }

  // Client `client` of `clients`: its share of `names` run on a random host of `hosts`, then
  // removed there (the release sent again until answered, as the next run of the name needs it).
  void RunAndRemove(int client, int clients, int names, const std::vector<PluginHost*>& hosts,
                    const std::atomic<bool>& stop, std::atomic<int>& allocated, std::atomic<int>& refused) {
    std::mt19937 random(seed_ * 100 + static_cast<uint32_t>(client));
    while (!stop) {
      for (int n = client; n < names && !stop; n += clients) {
        const std::string name = "lost-" + std::to_string(n);
        PluginHost& host = *hosts[random() % hosts.size()];
        const Call call = Allocate(host, name);
        if (call.outcome != Outcome::kOk) {
          ++refused;
          continue;
        }
        ++allocated;
        for (int attempt = 0; attempt < 40 && Release(host, name, call.address).outcome != Outcome::kOk; ++attempt) {
          std::this_thread::sleep_for(milliseconds(250));
        }
      }
    }
  }

  // A LossyProxy in front of each member (on the test's station, ports 24790 on) that drops
  // every `drop_every`th transaction's answer; the store spec that goes through them.
  std::string ProxiedStore(int drop_every, std::atomic<int>& txns, std::atomic<int>& dropped) {
    std::string spec = "etcd://";
    for (int i = 0; i < kMembers; ++i) {
      proxies_.push_back(std::make_unique<LossyProxy>(kTestAddress, 24790 + i, PartitionedEtcd::Address(i),
                                                      PartitionedEtcd::kClientPort, txns, drop_every, dropped));
      spec += (i ? "," : "") + std::string(kTestAddress) + ":" + std::to_string(24790 + i);
    }
    return spec;
  }

  // `want`: the address asked for (docker run --ip); empty: any.
  Call Allocate(PluginHost& host, const std::string& name, const std::string& want = "") {
    Operation op{.kind = OpKind::kAllocate,
                 .start_us = history_.Now(),
                 .node = host.node().name(),
                 .name = name,
                 .address = want};
    json request = testing::AddressRequest(pool_, name);
    if (!want.empty()) request["Address"] = want;
    httplib::Client cli = host.node().Client();
    const json answer = host.node().Post(cli, "IpamDriver.RequestAddress", request);
    return Record(std::move(op), answer);
  }
  Call Release(PluginHost& host, const std::string& name, const std::string& address) {
    Operation op{.kind = OpKind::kRelease,
                 .start_us = history_.Now(),
                 .node = host.node().name(),
                 .name = name,
                 .address = address};
    httplib::Client cli = host.node().Client();
    const json answer = host.node().Post(cli, "IpamDriver.ReleaseAddress", testing::ReleaseRequest(pool_, address));
    return Record(std::move(op), answer);
  }
  Call Record(Operation op, const json& answer) {
    op.end_us = history_.Now();
    if (!answer.is_object()) {
      op.outcome = Outcome::kUnknown, op.detail = "no answer";
    } else if (answer.contains("Err")) {
      op.detail = answer["Err"].is_string() ? answer["Err"].get<std::string>() : answer.dump();
      op.outcome = op.detail.find("outcome is unknown") != std::string::npos ? Outcome::kUnknown : Outcome::kRefused;
    } else if (op.kind == OpKind::kAllocate) {
      op.address = testing::BareAddress(answer.value("Address", ""));
    }
    Call call{op.outcome, op.address, op.detail, (op.end_us - op.start_us) / 1000};
    history_.Add(std::move(op));
    return call;
  }

  // Asks `host` for new names until one is refused; each refusal must come within the budget
  // and name etcd. Returns how long after `cut_at` the first refusal came.
  int64_t ExpectRefusals(PluginHost& host, const std::string& tag, Clock::time_point cut_at, int count) {
    int64_t first = -1;
    for (int i = 0; i < count; ++i) {
      const Call call = Allocate(host, tag + "-refused-" + std::to_string(i));
      // Refused: some errors add that the transaction's outcome is unknown (it is then journaled).
      EXPECT_TRUE(call.outcome != Outcome::kOk && !call.error.empty())
          << tag << ": allocated " << call.address << " while cut off";
      EXPECT_NE(call.error.find("etcd"), std::string::npos) << tag << ": " << call.error;
      EXPECT_LE(call.ms, kRefusalBudgetMs) << tag << ": " << call.error;
      if (first < 0) first = MsSince(cut_at);
    }
    return first;
  }
  // Asks `host` for new names until one is allocated; how long that took from `healed_at`.
  int64_t UntilAllocated(PluginHost& host, const std::string& tag, Clock::time_point healed_at, seconds limit) {
    for (int i = 0; Clock::now() < healed_at + limit; ++i) {
      const Call call = Allocate(host, tag + "-healed-" + std::to_string(i));
      if (call.outcome == Outcome::kOk) return MsSince(healed_at);
      std::this_thread::sleep_for(milliseconds(200));
    }
    ADD_FAILURE() << tag << ": nothing allocated within " << limit.count() << " s of the heal\n" << host.node().Log();
    return -1;
  }

  // The history through the checker, and the book in etcd (read at one revision) against it.
  void CheckEverything(const std::string& tag) {
    const std::vector<Operation> ops = history_.operations();
    std::vector<std::string> problems = testing::CheckHistory(ops);
    const testing::EtcdBook book = testing::ReadEtcdBook(cluster_->endpoints());
    const std::vector<std::string> at_end =
        testing::CheckBookAtEnd(ops, {.leased = book.leased, .reserved = book.reserved});
    problems.insert(problems.end(), at_end.begin(), at_end.end());
    int answered = 0, allocated = 0;
    for (const Operation& op : ops) {
      answered += op.outcome != Outcome::kUnknown ? 1 : 0;
      allocated += op.kind == OpKind::kAllocate && op.outcome == Outcome::kOk ? 1 : 0;
    }
    std::printf("%s: %zu operations (%d answered, %d allocations), %zu violations; etcd at revision %lld\n",
                tag.c_str(), ops.size(), answered, allocated, problems.size(), static_cast<long long>(book.revision));
    std::string listed;
    for (size_t i = 0; i < problems.size() && i < 20; ++i) listed += "  " + problems[i] + "\n";
    EXPECT_TRUE(problems.empty()) << problems.size() << " violations (seed " << seed_ << "), first ones:\n" << listed;
  }

  testing::TempDir dir_;
  std::unique_ptr<Lan> lan_;
  Station self_;
  std::unique_ptr<PartitionedEtcd> cluster_;
  std::vector<std::unique_ptr<PluginHost>> hosts_;
  std::vector<std::unique_ptr<LossyProxy>> proxies_;
  History history_;
  std::string pool_;
  uint32_t seed_ = 1;
};

// One side cut off from quorum while the other allocates in a thread of its own; then healed.
struct CutFigures {
  int64_t first_refusal_ms = -1, heal_ms = -1;
  int majority_allocated = 0, majority_refused = 0;
};

class PartitionCases : public PartitionTest {
 protected:
  // `cut` holds names a-0..a-3 before; while `side` is cut from `other`, its new names are
  // refused, a release of a-0 is answered (journaled), and `majority` allocates throughout.
  CutFigures CutAndHeal(PluginHost& cut, PluginHost& majority, const std::vector<Station>& side,
                        const std::vector<Station>& other, const std::string& tag) {
    CutFigures figures;
    std::vector<std::string> held;
    for (int i = 0; i < 4; ++i) {
      const Call call = Allocate(cut, tag + "-a-" + std::to_string(i));
      EXPECT_EQ(call.outcome, Outcome::kOk) << call.error;
      held.push_back(call.address);
    }
    lan_->Partition(side, other);
    const auto cut_at = Clock::now();
    std::atomic<bool> stop = false;
    std::thread load([&] {
      for (int i = 0; !stop; ++i) {
        const Call call = Allocate(majority, tag + "-b-" + std::to_string(i));
        (call.outcome == Outcome::kOk ? figures.majority_allocated : figures.majority_refused) += 1;
        if (call.outcome != Outcome::kOk) std::printf("%s: majority refused: %s\n", tag.c_str(), call.error.c_str());
        std::this_thread::sleep_for(milliseconds(20));
      }
    });
    figures.first_refusal_ms = ExpectRefusals(cut, tag, cut_at, 3);
    const Call release = Release(cut, tag + "-a-0", held[0]);
    EXPECT_EQ(release.outcome, Outcome::kOk) << "a release while cut off is journaled and answered: " << release.error;
    std::this_thread::sleep_until(cut_at + seconds(8));  // the majority goes on for a while
    stop = true;
    load.join();
    EXPECT_GE(figures.majority_allocated, 10) << "the majority side kept allocating";
    EXPECT_EQ(figures.majority_refused, 0) << "the majority side kept allocating";

    lan_->HealAll();
    figures.heal_ms = UntilAllocated(cut, tag, Clock::now(), seconds(30));
    for (int i = 0; i < 3; ++i) Allocate(majority, tag + "-after-" + std::to_string(i));
    std::printf(
        "%s: first refusal %lld ms after the cut; majority side %d allocated, %d refused; allocating again "
        "%lld ms after the heal (no restart)\n",
        tag.c_str(), static_cast<long long>(figures.first_refusal_ms), figures.majority_allocated,
        figures.majority_refused, static_cast<long long>(figures.heal_ms));
    return figures;
  }
};

TEST_F(PartitionCases, AMinorityMembersSideRefusesTheMajoritySideAllocatesAndHealingNeedsNoRestart) {
  const int leader = cluster_->Leader();
  ASSERT_GE(leader, 0) << cluster_->Logs();
  const int minority = (leader + 1) % kMembers, other1 = (leader + 2) % kMembers;
  // host-a talks to the minority member first, host-b to the leader.
  PluginHost& a = AddHost("host-a", cluster_->StoreSpec({minority, leader, other1}));
  PluginHost& b = AddHost("host-b", cluster_->StoreSpec({leader, other1, minority}));
  ASSERT_FALSE(HasFailure());
  CutAndHeal(a, b, {cluster_->station(minority), a.station()},
             {cluster_->station(leader), cluster_->station(other1), b.station()}, "minority");
  CheckEverything("minority");
}

TEST_F(PartitionCases, AHostCutOffFromEtcdButNotFromTheLanRefusesAndHealsWithoutRestart) {
  PluginHost& a = AddHost("host-a", cluster_->StoreSpec());
  PluginHost& b = AddHost("host-b", cluster_->StoreSpec());
  ASSERT_FALSE(HasFailure());
  lan_->Partition({a.station()}, cluster_->stations({0, 1, 2}));
  EXPECT_TRUE(lan_->Reaches(a.station(), b.station().address)) << "host-a still reaches host-b on the LAN";
  EXPECT_FALSE(lan_->Reaches(a.station(), PartitionedEtcd::Address(0))) << "host-a is cut off from etcd";
  lan_->HealAll();
  CutAndHeal(a, b, {a.station()}, cluster_->stations({0, 1, 2}), "cut-off-host");
  CheckEverything("cut-off-host");
}

// The member host-a talks to hangs (SIGSTOP) while the other two keep quorum.
TEST_F(PartitionTest, AHungMemberCostsItsHostNoMoreThanTwoSecondsAtP99) {
  const int leader = cluster_->Leader();
  ASSERT_GE(leader, 0) << cluster_->Logs();
  const int hung = (leader + 1) % kMembers, other = (leader + 2) % kMembers;
  PluginHost& a = AddHost("host-a", cluster_->StoreSpec({hung, leader, other}));
  ASSERT_FALSE(HasFailure());
  for (int i = 0; i < 3; ++i) ASSERT_EQ(Allocate(a, "warm-" + std::to_string(i)).outcome, Outcome::kOk);

  cluster_->Pause(hung);
  const auto hung_at = Clock::now();
  std::vector<int64_t> latencies;
  std::vector<std::string> refusals;
  std::vector<std::pair<std::string, std::string>> running;  // released again as the load goes
  for (int i = 0; Clock::now() < hung_at + seconds(SizeFromEnv("SMV_HUNG_SECONDS", 15)); ++i) {
    const std::string name = "hung-" + std::to_string(i);
    const Call call = Allocate(a, name);
    latencies.push_back(call.ms);
    if (call.outcome != Outcome::kOk) refusals.push_back(name + ": " + call.error);
    if (call.outcome == Outcome::kOk) running.emplace_back(name, call.address);
    if (running.size() > 8) {
      Release(a, running.front().first, running.front().second);
      running.erase(running.begin());
    }
  }
  cluster_->Resume(hung);
  const int64_t p50 = Percentile(latencies, 0.50), p99 = Percentile(latencies, 0.99),
                max = *std::max_element(latencies.begin(), latencies.end());
  std::printf(
      "hung member: m%d SIGSTOPped (host-a's first member), %zu allocations on host-a: p50 %lld ms, p99 %lld "
      "ms, max %lld ms, %zu refused\n",
      hung, latencies.size(), static_cast<long long>(p50), static_cast<long long>(p99), static_cast<long long>(max),
      refusals.size());
  EXPECT_LT(p99, kHungP99BudgetMs) << "allocation p99 on the host of a hung member";
  // The hung member costs one attempt, not the call (issue 27, What to build 3): no allocation
  // waits for it anywhere near the call's 10 s deadline.
  EXPECT_LT(max, kHungMaxMs) << "an allocation waited for the hung member";
  EXPECT_LE(refusals.size() * 100, latencies.size()) << "more than 1 % refused, first: " << refusals.front();
  EXPECT_GE(latencies.size(), 50u) << "allocations went on";
  ASSERT_TRUE(cluster_->Healthy(hung, seconds(30))) << cluster_->Logs();
  CheckEverything("hung member");
}

// host-a reaches etcd only through proxies that lose every 4th transaction's answer after etcd
// decided it; names move between host-a and host-b. Meanwhile host-a is cut off from the proxies
// for a while (its releases are journaled, then replayed once etcd answers again) and later
// SIGKILLed and restarted (its calls in flight get no answer; the journal is replayed at start).
TEST_F(PartitionTest, AnswersLostAfterCommitNeitherDuplicateNorLoseAnAddress) {
  std::atomic<int> txns = 0, dropped = 0;
  const std::string proxied = ProxiedStore(4, txns, dropped);
  PluginHost& a = AddHost("host-a", proxied);
  PluginHost& b = AddHost("host-b", cluster_->StoreSpec());
  ASSERT_FALSE(HasFailure());
  const int names = SizeFromEnv("SMV_LOST_NAMES", 24);
  const seconds phase(SizeFromEnv("SMV_LOST_PHASE_SECONDS", 3));
  constexpr int kClients = 4;
  std::atomic<int> allocated = 0, refused = 0;
  std::atomic<bool> stop = false;
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] { RunAndRemove(c, kClients, names, {&a, &b}, stop, allocated, refused); });
  }
  std::this_thread::sleep_for(phase);
  // A container stopped on host-a while it cannot reach etcd: the release is journaled.
  Call journaled = Allocate(a, "journaled");
  for (int retry = 0; journaled.outcome != Outcome::kOk && retry < 10; ++retry) journaled = Allocate(a, "journaled");
  EXPECT_EQ(journaled.outcome, Outcome::kOk) << journaled.error;  // no ASSERT: the clients run
  lan_->Partition({a.station()}, {self_});                        // host-a's way to the proxies
  EXPECT_EQ(Release(a, "journaled", journaled.address).outcome, Outcome::kOk) << "journaled and answered";
  std::this_thread::sleep_for(phase);
  lan_->HealAll();
  std::this_thread::sleep_for(phase);
  const bool freed_before_restart = Allocate(b, "journaled").outcome == Outcome::kOk;
  a.Restart();  // mid-run: its calls in flight get no answer; the journal is replayed at start
  EXPECT_TRUE(a.node().Ready()) << a.node().Log();
  if (!freed_before_restart) {
    const Call moved = Allocate(b, "journaled");
    EXPECT_EQ(moved.outcome, Outcome::kOk) << "host-a replayed its journal at start: " << moved.error;
    EXPECT_EQ(moved.address, journaled.address) << "the name keeps its address";
  }
  std::printf("lost answers: the release journaled while host-a was cut off was replayed %s\n",
              freed_before_restart ? "after the heal, before the restart" : "at the restart");
  std::this_thread::sleep_for(phase);
  stop = true;
  for (std::thread& t : clients) t.join();
  // Each name once more, left running: the book must hold exactly these.
  for (int n = 0; n < names; ++n) Allocate(n % 2 ? a : b, "lost-" + std::to_string(n));
  std::printf(
      "lost answers: %d transactions through the proxies, %d answers dropped after commit; %d allocations, "
      "%d refused\n",
      txns.load(), dropped.load(), allocated.load(), refused.load());
  EXPECT_GE(dropped.load(), 5) << "the proxies lost answers";
  CheckEverything("lost answers");
}

#ifdef SMV_CLOCK_SHIFT
// host-c's wall clock (tests/support/clock_shift.cc, preloaded) jumps an hour ahead of the
// others, then an hour behind, while names move between it and host-a: every call is answered
// within the budget, the leases host-c writes carry its clock, and the history holds.
TEST_F(PartitionTest, AWallClockJumpOfAnHourOnOneHostChangesNothing) {
  const std::string shift = dir_.Sub("clock-shift");
  std::ofstream(shift) << "0\n";
  PluginHost& a = AddHost("host-a", cluster_->StoreSpec());
  setenv("SMV_CLOCK_SHIFT_FILE", shift.c_str(), 1);
  setenv("LD_PRELOAD", SMV_CLOCK_SHIFT, 1);  // for the daemon about to start only
  PluginHost& c = AddHost("host-c", cluster_->StoreSpec({1, 2, 0}));
  unsetenv("LD_PRELOAD");
  ASSERT_FALSE(HasFailure());
  auto since_of = [&](const std::string& address) -> int64_t {  // the lease's unix time in etcd
    etcd::KvClient reader({.endpoints = cluster_->endpoints()});
    auto leases = reader.GetPrefix("/static-macvlan/v1/lease/");
    if (!leases.ok()) return 0;
    for (const etcd::KeyValue& kv : leases->kvs) {
      auto lease =
          ipam::records::DecodeLease("etcd", kv.key.substr(std::string("/static-macvlan/v1/lease/").size()), kv.value);
      if (lease.ok() && lease->address.ToString() == address) return lease->since;
    }
    return 0;
  };
  std::vector<std::string> slow;
  for (const int jump : {3600, -3600}) {
    std::ofstream(shift, std::ios::trunc) << jump << "\n";
    std::this_thread::sleep_for(milliseconds(300));  // the shim reads the file every 100 ms
    const Call probe = Allocate(c, "clock-probe" + std::to_string(jump));
    ASSERT_EQ(probe.outcome, Outcome::kOk) << probe.error;
    const int64_t wall =
        std::chrono::duration_cast<seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
    EXPECT_NEAR(static_cast<double>(since_of(probe.address)), static_cast<double>(wall + jump), 60.0)
        << "host-c's lease carries its shifted clock";
    for (int round = 0; round < 6; ++round) {
      for (int n = 0; n < 8; ++n) {
        const std::string name = "clock-" + std::to_string(n);
        PluginHost& on = (round + n) % 2 ? c : a;
        const Call call = Allocate(on, name);
        if (call.outcome != Outcome::kOk || call.ms > kHungP99BudgetMs) slow.push_back(name + ": " + call.error);
        if (call.outcome == Outcome::kOk) Release(on, name, call.address);
      }
    }
  }
  std::printf("clock jump: host-c an hour ahead, then an hour behind: %zu slow or refused calls\n", slow.size());
  EXPECT_TRUE(slow.empty()) << slow.front();
  CheckEverything("clock jump");
}
#endif

// Everything in turn while eight clients move names between four hosts (one of which reaches
// etcd only through answer-losing proxies) and a fifth, quiet host asks for other names'
// addresses now and then: a minority member's side cut off, a host cut off
// from etcd, the member a host talks to hung, the leader's port down, a host SIGKILLed and
// restarted. Sizes: SMV_PARTITION_ALLOCATIONS (default 300), SMV_PARTITION_FAULT_SECONDS
// (default 3); scripts/chaos.sh runs 10,000 allocations with 10 s faults.
class PartitionChaos : public PartitionTest {
 protected:
  static constexpr int kHosts = 4, kClients = 8;

  struct Figures {
    std::vector<int64_t> refusal_ms, heal_ms, hung_latency_ms;
    int64_t slowest_cut_ms = 0;  // setting up a partition (routes in every namespace it cuts)
    int cycles = 0;
  };

  // One client: each name in turn leaves its host (release, until answered) and runs on
  // another (allocate); refused: it stays out until its next turn. One in six leaves for good
  // and a new name takes its turns.
  void MoveNames(int client, int names, int target, std::atomic<int>& allocated, const std::atomic<bool>& faults_done) {
    std::mt19937 random(seed_ * 1000 + static_cast<uint32_t>(client));
    std::vector<int> host_of(static_cast<size_t>(names), -1);
    std::vector<std::string> address_of(static_cast<size_t>(names)), name_of;
    for (int n = 0; n < names; ++n) name_of.push_back("c" + std::to_string(client) + "-" + std::to_string(n));
    int renamed = 0;
    while (allocated < target || !faults_done) {
      for (int n = 0; n < names; ++n) {
        std::string& name = name_of[static_cast<size_t>(n)];
        int& at = host_of[static_cast<size_t>(n)];
        if (at >= 0 && Release(*hosts_[static_cast<size_t>(at)], name, address_of[static_cast<size_t>(n)]).outcome !=
                           Outcome::kOk) {
          continue;  // not answered: released again next turn
        }
        // Now and then a container is removed for good (its name keeps its reservation) and a new
        // name comes: a host whose view is stale must not give it a reserved address.
        if (at >= 0 && random() % 6 == 0) {
          name = "c" + std::to_string(client) + "-" + std::to_string(n) + "-" + std::to_string(++renamed);
        }
        const int previous = at;
        at = static_cast<int>(random() % kHosts);
        if (at == previous) at = (at + 1) % kHosts;
        Call call = Allocate(*hosts_[static_cast<size_t>(at)], name);
        for (int retry = 0; call.outcome == Outcome::kUnknown && retry < 20; ++retry) {  // the host restarts
          std::this_thread::sleep_for(milliseconds(250));
          call = Allocate(*hosts_[static_cast<size_t>(at)], name);
        }
        if (call.outcome != Outcome::kOk) {
          at = -1;
          continue;
        }
        address_of[static_cast<size_t>(n)] = call.address;
        ++allocated;
      }
    }
  }

  // Every 0.7 s until `done`, a new name asks `quiet` for the newest stopped name's address.
  void AskForStoppedReservations(PluginHost& quiet, const std::atomic<bool>& done) {
    for (int i = 0; !done; ++i) {
      std::this_thread::sleep_for(milliseconds(700));
      const std::string name = "quiet-" + std::to_string(i);
      const Call call = Allocate(quiet, name, NewestStoppedReservation());
      if (call.outcome == Outcome::kOk) Release(quiet, name, call.address);
    }
  }
  void ReportQuietHost() const {
    int asked = 0, given = 0;
    std::string refusal;
    for (const Operation& op : history_.operations()) {
      if (op.node != "host-quiet" || op.kind != OpKind::kAllocate) continue;
      ++asked;
      given += op.outcome == Outcome::kOk ? 1 : 0;
      if (op.outcome != Outcome::kOk) refusal = op.detail;  // the last one
    }
    std::printf(
        "chaos-partition: the quiet host asked for %d reserved addresses of stopped names, was given %d "
        "(last refusal: %s)\n",
        asked, given, refusal.c_str());
  }

  // The address of the name reserved last among those not running now (their last call was an
  // answered release): what a host that loaded the book before may not know is reserved.
  std::string NewestStoppedReservation() const {
    struct Seen {
      int64_t first_answer = -1;
      std::string address;
      bool running = false;
    };
    std::map<std::string, Seen> names;
    std::vector<Operation> ops = history_.operations();
    std::sort(ops.begin(), ops.end(), [](const Operation& a, const Operation& b) { return a.end_us < b.end_us; });
    for (const Operation& op : ops) {
      if (op.outcome != Outcome::kOk || op.name.starts_with("quiet-")) continue;
      Seen& seen = names[op.name];
      if (op.kind == OpKind::kAllocate && seen.first_answer < 0)
        seen.first_answer = op.end_us, seen.address = op.address;
      seen.running = op.kind == OpKind::kAllocate;
    }
    const Seen* newest = nullptr;
    for (const auto& [name, seen] : names) {
      if (!seen.running && seen.first_answer >= 0 && (!newest || seen.first_answer > newest->first_answer)) {
        newest = &seen;
      }
    }
    return newest ? newest->address : "";
  }

  // Partitions `side` from `other`; answers when the cut is complete, where the refusal budget
  // starts (setting up the routes is the harness's time, reported apart).
  Clock::time_point Cut(const std::vector<Station>& side, const std::vector<Station>& other, Figures& figures) {
    const auto started = Clock::now();
    lan_->Partition(side, other);
    figures.slowest_cut_ms = std::max(figures.slowest_cut_ms, MsSince(started));
    return Clock::now();
  }

  // A new name on `host` right after a cut: refused within the budget, naming etcd.
  void ProbeRefusal(PluginHost& host, Clock::time_point cut_at, Figures& figures, const std::string& tag) {
    const Call call = Allocate(host, tag + "-probe-" + std::to_string(figures.cycles));
    EXPECT_TRUE(call.outcome != Outcome::kOk && !call.error.empty())
        << tag << ": allocated " << call.address << " while cut off";
    EXPECT_NE(call.error.find("etcd"), std::string::npos) << tag << ": " << call.error;
    figures.refusal_ms.push_back(MsSince(cut_at));
    EXPECT_LE(figures.refusal_ms.back(), kRefusalBudgetMs) << tag << ": " << call.error;
  }

  void RunFaults(seconds fault, seconds between, Figures& figures) {
    const int leader = cluster_->Leader();
    EXPECT_GE(leader, 0) << cluster_->Logs();
    const int follower = (std::max(leader, 0) + 1) % kMembers;
    std::this_thread::sleep_for(between);
    // A minority member's side: the follower and host-0 (which asks the follower first).
    std::vector<Station> rest = {hosts_[1]->station(), hosts_[2]->station(), self_};
    for (int m = 0; m < kMembers; ++m) {
      if (m != follower) rest.push_back(cluster_->station(m));
    }
    auto cut_at = Cut({cluster_->station(follower), hosts_[0]->station()}, rest, figures);
    ProbeRefusal(*hosts_[0], cut_at, figures, "minority");
    std::this_thread::sleep_until(cut_at + fault);
    lan_->HealAll();
    figures.heal_ms.push_back(UntilAllocated(*hosts_[0], "minority", Clock::now(), seconds(30)));
    std::this_thread::sleep_for(between);
    // host-1 cut off from every member, still on the LAN.
    cut_at = Cut({hosts_[1]->station()}, cluster_->stations({0, 1, 2}), figures);
    ProbeRefusal(*hosts_[1], cut_at, figures, "cut-off");
    std::this_thread::sleep_until(cut_at + fault);
    lan_->HealAll();
    figures.heal_ms.push_back(UntilAllocated(*hosts_[1], "cut-off", Clock::now(), seconds(30)));
    std::this_thread::sleep_for(between);
    // A follower hangs (host-2 asks it first, unless it leads now: quorum stays up); every
    // allocation meanwhile is measured, on whichever host (clients stay with the member that
    // answered them last, so which hosts it stalls is up to them).
    const int hung = cluster_->Leader() == kHungMember ? (kHungMember + 1) % kMembers : kHungMember;
    const int64_t hung_from = history_.Now();
    cluster_->Pause(hung);
    std::this_thread::sleep_for(fault);
    cluster_->Resume(hung);
    const int64_t hung_to = history_.Now();
    EXPECT_TRUE(cluster_->Healthy(hung, seconds(30))) << cluster_->Logs();
    std::this_thread::sleep_for(between);
    for (const Operation& op : history_.operations()) {  // every allocation under way during the hang
      if (op.kind == OpKind::kAllocate && op.start_us < hung_to && op.end_us > hung_from) {
        figures.hung_latency_ms.push_back((op.end_us - op.start_us) / 1000);
      }
    }
    // The leader's switch port down: it is cut off from everyone, the others elect anew.
    const int now_leading = cluster_->Leader();
    if (now_leading >= 0) {
      lan_->SetPort(cluster_->station(now_leading), false);
      std::this_thread::sleep_for(fault);
      lan_->SetPort(cluster_->station(now_leading), true);
      EXPECT_TRUE(cluster_->Healthy(now_leading, seconds(30))) << cluster_->Logs();
    }
    std::this_thread::sleep_for(between);
    hosts_[3]->Restart();  // its release journal is replayed at start
    EXPECT_TRUE(hosts_[3]->node().Ready()) << hosts_[3]->node().Log();
    ++figures.cycles;
  }

  static constexpr int kHungMember = 2;  // host-2 asks it first
};

TEST_F(PartitionChaos, NamesMovingUnderPartitionsHungMembersAndLostAnswersAreNeverDuplicatedNorLost) {
  const int target = SizeFromEnv("SMV_PARTITION_ALLOCATIONS", 300);
  const seconds fault(SizeFromEnv("SMV_PARTITION_FAULT_SECONDS", 3));
  const seconds between = fault / 2;
  std::atomic<int> txns = 0, dropped = 0;
  const std::string proxied = ProxiedStore(10, txns, dropped);
  AddHost("host-0", cluster_->StoreSpec({0, 1, 2}));
  AddHost("host-1", cluster_->StoreSpec({1, 2, 0}));
  AddHost("host-2", cluster_->StoreSpec({kHungMember, 0, 1}));
  AddHost("host-3", proxied);
  // A quiet host: now and then a new name asks for (--ip) an address another name was answered,
  // while the fleet's book moves on under it (issue 27, Why 1): always refused.
  PluginHost& quiet = AddHost("host-quiet", cluster_->StoreSpec());
  ASSERT_FALSE(HasFailure());

  const auto start = Clock::now();
  std::atomic<int> allocated = 0;
  std::atomic<bool> faults_done = false;
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] { MoveNames(c, 16, target, allocated, faults_done); });
  }
  clients.emplace_back([&] { AskForStoppedReservations(quiet, faults_done); });
  Figures figures;
  do {
    RunFaults(fault, between, figures);
  } while (allocated < target && !HasFailure());
  faults_done = true;
  for (std::thread& t : clients) t.join();
  const double took = std::chrono::duration<double>(Clock::now() - start).count();

  auto max_of = [](const std::vector<int64_t>& v) { return v.empty() ? -1 : *std::max_element(v.begin(), v.end()); };
  const int64_t hung_p99 = Percentile(figures.hung_latency_ms, 0.99);
  std::printf(
      "chaos-partition: %d allocations by %d clients on %d hosts in %.0f s, %d fault cycles "
      "(minority side, host cut off, hung member, leader cut off, host restart; %d s each)\n",
      allocated.load(), kClients, kHosts, took, figures.cycles, static_cast<int>(fault.count()));
  std::printf(
      "chaos-partition: refused %lld ms at most after a cut (budget %lld; a cut took %lld ms at most to set up); "
      "allocating again %lld ms at most "
      "after a heal; hung follower: %zu allocations, p99 %lld ms (budget %lld), max %lld ms; %d "
      "of %d transactions of host-3 lost their answer\n",
      static_cast<long long>(max_of(figures.refusal_ms)), static_cast<long long>(kRefusalBudgetMs),
      static_cast<long long>(figures.slowest_cut_ms), static_cast<long long>(max_of(figures.heal_ms)),
      figures.hung_latency_ms.size(), static_cast<long long>(hung_p99), static_cast<long long>(kHungP99BudgetMs),
      static_cast<long long>(max_of(figures.hung_latency_ms)), dropped.load(), txns.load());
  ReportQuietHost();
  // Under 100 samples (CI's short faults) a p99 is the slowest call: AHungMember... holds the
  // budget with a thousand; here it is held at full size.
  if (figures.hung_latency_ms.size() >= 100) {
    EXPECT_LT(hung_p99, kHungP99BudgetMs) << "allocation p99 while a follower hung";
  }
  CheckEverything("chaos-partition");
}

}  // namespace
}  // namespace smv

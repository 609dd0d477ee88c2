#pragma once
// A fleet on one machine that a test can partition: every etcd member and every plugin host
// (`static-macvlan serve --store etcd://...`) runs in a network namespace of its own, plugged by
// a veth pair into one bridge (the "switch", in a namespace of its own too). The test's own
// namespace is plugged in as well, so the test reaches every member as a client would.
//
//   switch ns: br0 198.51.100.254/24 (the sink, see Lan::Cut), one port per station
//   member i:  eth0 198.51.100.(11+i), etcd on :2379 (clients) and :2380 (peers)
//   host k:    eth0 198.51.100.(21+k), one serve daemon (plugin_node.h's Node)
//   the test:  eth0 198.51.100.250
//
// Faults: Lan::Cut drops every packet between two stations silently (a partition: connects
// and established connections time out, nothing is refused), Lan::SetPort takes a station's
// switch port down (cut off from everyone); PartitionedEtcd::Pause SIGSTOPs a member (hung).
//
// Nothing outlives the test: a namespace is anonymous and kept only by a child process that
// dies with the test process (PR_SET_PDEATHSIG), so links, routes and namespaces vanish even
// when the test crashes, and no name is taken on the host (no /run/netns entry). The test must
// run in a private network namespace of its own (PartitionTest::SetUp unshares one), where the
// veth pairs are made before they move.

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <gtest/gtest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "etcd/kv_client.h"
#include "tests/support/plugin_node.h"

namespace smv::testing {

// An anonymous network namespace with loopback up, alive as long as this object (and never
// longer than the test process).
class Netns {
 public:
  Netns() {
    int ready[2];
    if (pipe(ready) != 0) return;
    holder_ = fork();
    if (holder_ == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      close(ready[0]);
      if (unshare(CLONE_NEWNET) != 0) _exit(1);
      (void)!write(ready[1], "x", 1);
      for (;;) pause();
    }
    close(ready[1]);
    char byte = 0;
    const bool made = holder_ > 0 && read(ready[0], &byte, 1) == 1;
    close(ready[0]);
    if (!made) {
      ADD_FAILURE() << "no network namespace for a station (needs root)";
      return;
    }
    Run("ip link set dev lo up");
  }
  Netns(const Netns&) = delete;
  Netns& operator=(const Netns&) = delete;
  ~Netns() {
    if (holder_ <= 0) return;
    kill(holder_, SIGKILL);
    waitpid(holder_, nullptr, 0);
  }

  pid_t holder() const { return holder_; }
  std::string path() const { return "/proc/" + std::to_string(holder_) + "/ns/net"; }
  // A command run inside (through nsenter): its exit code and output.
  std::pair<int, std::string> Run(const std::string& command) const {
    return RunCommand("nsenter --net=" + path() + " " + command);
  }
  // Starts `argv` inside, as SpawnLogged does in the test's namespace.
  pid_t Spawn(const std::vector<std::string>& argv, const std::string& log_path) const {
    const std::string ns = path();
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    const pid_t pid = fork();
    if (pid == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      const int fd = open(ns.c_str(), O_RDONLY);
      if (fd < 0 || setns(fd, CLONE_NEWNET) != 0) _exit(126);
      const int log = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
      dup2(log, 1);
      dup2(log, 2);
      execv(args[0], args.data());
      _exit(127);
    }
    return pid;
  }
  // Runs `work` with the calling thread inside (children it forks start inside), then returns
  // the thread to the namespace it was in.
  template <class Work>
  void Within(Work&& work) const {
    const int home = open("/proc/thread-self/ns/net", O_RDONLY);
    const int here = open(path().c_str(), O_RDONLY);
    struct Back {
      int home, here;
      ~Back() {
        if (home >= 0 && setns(home, CLONE_NEWNET) != 0) std::abort();  // never run on elsewhere
        close(home);
        close(here);
      }
    } back{home, here};
    ASSERT_TRUE(home >= 0 && here >= 0 && setns(here, CLONE_NEWNET) == 0) << "cannot enter " << path();
    work();
  }

 private:
  pid_t holder_ = -1;
};

// One thing plugged into the switch: its namespace (nullptr: the test's own), its address and
// the name of its port on the switch.
struct Station {
  const Netns* ns = nullptr;
  std::string address;
  std::string port;
};

class Lan {
 public:
  static constexpr const char* kSink = "198.51.100.254";  // the switch's own address: forwards nothing

  Lan() {
    Must(switch_.Run("ip link add br0 type bridge"));
    Must(switch_.Run("ip link set br0 up"));
    Must(switch_.Run(std::string("ip addr add ") + kSink + "/24 dev br0"));
  }

  // Plugs `ns` (nullptr: the test's namespace) in as `address` on eth0; `port` names it on the
  // switch (and in failure messages).
  Station Plug(const Netns* ns, const std::string& address, const std::string& port) {
    const std::string inner = "v-" + port;
    Must(RunCommand("ip link add " + port + " type veth peer name " + inner));
    Must(RunCommand("ip link set " + port + " netns " + std::to_string(switch_.holder())));
    Must(switch_.Run("ip link set " + port + " master br0 up"));
    auto in = [&](const std::string& command) { return ns ? ns->Run(command) : RunCommand(command); };
    if (ns != nullptr) Must(RunCommand("ip link set " + inner + " netns " + std::to_string(ns->holder())));
    Must(in("ip link set " + inner + " name eth0"));
    Must(in("ip addr add " + address + "/24 dev eth0"));
    Must(in("ip link set eth0 up"));
    return Station{ns, address, port};
  }

  // From now on every packet between `a` and `b` goes to the switch's sink, which drops it
  // without an answer: both see a partition (timeouts), not a refusal.
  void Cut(const Station& a, const Station& b) {
    if (!cuts_.insert({a.address, b.address}).second) return;
    Must(In(a, "ip route add " + b.address + "/32 via " + kSink));
    Must(In(b, "ip route add " + a.address + "/32 via " + kSink));
    stations_.push_back(a);
    stations_.push_back(b);
  }
  // Cuts every station of `side` from every station of `other`.
  void Partition(const std::vector<Station>& side, const std::vector<Station>& other) {
    for (const Station& a : side) {
      for (const Station& b : other) Cut(a, b);
    }
  }
  // Undoes every Cut.
  void HealAll() {
    for (const auto& [a, b] : cuts_) {
      Must(In(Find(a), "ip route del " + b + "/32"));
      Must(In(Find(b), "ip route del " + a + "/32"));
    }
    cuts_.clear();
  }
  // The station's port on the switch down (cut off from everyone) or up again.
  void SetPort(const Station& s, bool up) { Must(switch_.Run("ip link set " + s.port + (up ? " up" : " down"))); }
  // Whether `from` reaches `to` (one ping, 1 s).
  bool Reaches(const Station& from, const std::string& to) { return In(from, "ping -c 1 -W 1 " + to).first == 0; }

 private:
  static void Must(const std::pair<int, std::string>& result) {
    EXPECT_EQ(result.first, 0) << "network set-up failed: " << result.second;
  }
  static std::pair<int, std::string> In(const Station& s, const std::string& command) {
    return s.ns ? s.ns->Run(command) : RunCommand(command);
  }
  const Station& Find(const std::string& address) const {
    for (const Station& s : stations_) {
      if (s.address == address) return s;
    }
    return stations_.front();
  }

  Netns switch_;
  std::set<std::pair<std::string, std::string>> cuts_;
  std::vector<Station> stations_;  // every station a Cut named
};

// An etcd 3.4 cluster whose members live in namespaces of their own on a Lan.
class PartitionedEtcd {
 public:
  static constexpr const char* kBinary = "/usr/bin/etcd";
  static constexpr int kClientPort = 2379, kPeerPort = 2380;

  PartitionedEtcd(Lan& lan, std::string dir, int members) : dir_(std::move(dir)), pids_(size_t(members), -1) {
    for (int i = 0; i < members; ++i) {
      namespaces_.push_back(std::make_unique<Netns>());
      stations_.push_back(lan.Plug(namespaces_.back().get(), Address(i), "m" + std::to_string(i)));
    }
  }
  ~PartitionedEtcd() {
    for (int i = 0; i < size(); ++i) Kill(i);
  }

  int size() const { return static_cast<int>(pids_.size()); }
  static std::string Address(int i) { return "198.51.100." + std::to_string(11 + i); }
  const Station& station(int i) const { return stations_.at(size_t(i)); }
  std::vector<Station> stations(const std::vector<int>& members) const {
    std::vector<Station> out;
    for (int m : members) out.push_back(station(m));
    return out;
  }
  // "etcd://..." with the members in `order` (a client tries the first one first); all by default.
  std::string StoreSpec(std::vector<int> order = {}) const {
    if (order.empty()) {
      for (int i = 0; i < size(); ++i) order.push_back(i);
    }
    std::string spec = "etcd://";
    for (size_t k = 0; k < order.size(); ++k) {
      spec += (k ? "," : "") + Address(order[k]) + ":" + std::to_string(kClientPort);
    }
    return spec;
  }
  std::vector<etcd::Endpoint> endpoints() const {
    std::vector<etcd::Endpoint> out;
    for (int i = 0; i < size(); ++i) out.push_back({.host = Address(i), .port = kClientPort});
    return out;
  }

  // Starts member i (on its existing data after a Kill).
  void Start(int i) {
    const std::string name = "m" + std::to_string(i), client = Url(i, kClientPort), peer = Url(i, kPeerPort);
    std::string cluster;
    for (int m = 0; m < size(); ++m) cluster += (m ? "," : "") + ("m" + std::to_string(m)) + "=" + Url(m, kPeerPort);
    const std::vector<std::string> args = {
        kBinary, "--name=" + name, "--data-dir=" + dir_ + "/" + name, "--listen-client-urls=" + client,
        "--advertise-client-urls=" + client, "--listen-peer-urls=" + peer, "--initial-advertise-peer-urls=" + peer,
        "--initial-cluster=" + cluster, "--initial-cluster-state=new", "--initial-cluster-token=smv-partition",
        // Elections in a second, as tests/support/etcd_cluster.h has them.
        "--heartbeat-interval=100", "--election-timeout=1000", "--log-outputs=stderr"};
    pids_[size_t(i)] = namespaces_[size_t(i)]->Spawn(args, dir_ + "/" + name + ".log");
  }
  void StartAll() {
    for (int i = 0; i < size(); ++i) Start(i);
  }
  void Kill(int i) {
    pid_t& pid = pids_[size_t(i)];
    if (pid <= 0) return;
    kill(pid, SIGCONT);
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
    pid = -1;
  }
  void Pause(int i) { kill(pids_[size_t(i)], SIGSTOP); }
  void Resume(int i) { kill(pids_[size_t(i)], SIGCONT); }

  // True once member i says it is healthy (it has a leader) within `limit`, asked from the
  // test's namespace.
  bool Healthy(int i, std::chrono::seconds limit) const {
    for (auto until = std::chrono::steady_clock::now() + limit; std::chrono::steady_clock::now() < until;) {
      httplib::Client http(Address(i), kClientPort);
      http.set_connection_timeout(0, 300000);
      http.set_read_timeout(2, 0);
      if (auto r = http.Get("/health"); r && r->status == 200 && r->body.find("\"true\"") != std::string::npos) {
        return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
  }
  // The index of the member that leads now, or -1.
  int Leader() const {
    std::vector<std::string> ids(static_cast<size_t>(size()));
    std::string leader;
    for (int i = 0; i < size(); ++i) {
      if (pids_[size_t(i)] <= 0) continue;
      httplib::Client http(Address(i), kClientPort);
      http.set_connection_timeout(0, 300000);
      http.set_read_timeout(2, 0);
      auto r = http.Post("/v3/maintenance/status", "{}", "application/json");
      if (!r || r->status != 200) continue;
      const nlohmann::json status = nlohmann::json::parse(r->body, nullptr, false);
      if (!status.is_object()) continue;
      ids[size_t(i)] = status.value("header", nlohmann::json::object()).value("member_id", "");
      leader = status.value("leader", leader);
    }
    for (int i = 0; i < size(); ++i) {
      if (!leader.empty() && ids[size_t(i)] == leader) return i;
    }
    return -1;
  }
  std::string Logs() const {
    std::string out;
    for (int i = 0; i < size(); ++i) {
      std::ifstream in(dir_ + "/m" + std::to_string(i) + ".log");
      const std::string text((std::istreambuf_iterator<char>(in)), {});
      out += "--- m" + std::to_string(i) + " (last 1500 bytes)\n" +
             text.substr(text.size() > 1500 ? text.size() - 1500 : 0);
    }
    return out;
  }

 private:
  static std::string Url(int i, int port) { return "http://" + Address(i) + ":" + std::to_string(port); }

  std::string dir_;
  std::vector<pid_t> pids_;
  std::vector<std::unique_ptr<Netns>> namespaces_;
  std::vector<Station> stations_;
};

// A plugin host: one serve daemon in a namespace of its own on the Lan, on `store`.
class PluginHost {
 public:
  PluginHost(Lan& lan, const std::string& dir, const std::string& name, int index, const std::string& store,
             const std::vector<std::string>& extra = {}) {
    station_ = lan.Plug(&ns_, Address(index), name);
    ns_.Within([&] { node_ = std::make_unique<Node>(dir, name, store, extra); });
  }
  static std::string Address(int index) { return "198.51.100." + std::to_string(21 + index); }
  Node& node() { return *node_; }
  const Station& station() const { return station_; }
  const Netns& ns() const { return ns_; }
  // SIGKILL, then the same daemon again on its state, inside the host's namespace.
  void Restart() {
    node_->Kill();
    ns_.Within([&] { node_->Start(); });
  }

 private:
  Netns ns_;  // declared first: it outlives the daemon
  Station station_;
  std::unique_ptr<Node> node_;
};

}  // namespace smv::testing

#pragma once
// A real etcd 3.4 cluster for tests: N members on 127.0.0.1 of the test's own network namespace
// (EtcdTest enters a fresh one, so ports never clash with the host or another test), each a
// child process with its own data directory and log. Members can be killed, stopped and
// restarted on their data to make faults; the destructor ends every member it started.

#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "etcd/kv_client.h"
#include "tests/support/child_process.h"
#include "tests/support/temp_dir.h"

namespace smv::testing {

// Files for a cluster that speaks TLS to its clients and wants their certificates.
struct EtcdTlsFiles {
  std::string ca, server_cert, server_key;
};

class EtcdCluster {
 public:
  static constexpr const char* kBinary = "/usr/bin/etcd";
  static constexpr int kFirstPort = 23790;  // member i: client port kFirstPort + 2i, peer + 1

  EtcdCluster(std::string dir, int members) : dir_(std::move(dir)), pids_(static_cast<size_t>(members), -1) {}
  // Before the first Start: clients then speak https and must show a certificate signed by `tls.ca`.
  void UseTls(EtcdTlsFiles tls) { tls_ = std::move(tls); }
  // Before a Start: more etcd flags for every member (--quota-backend-bytes=..., --auth-token-ttl=...).
  void AddFlags(std::vector<std::string> flags) { extra_flags_.insert(extra_flags_.end(), flags.begin(), flags.end()); }
  // "etcd://127.0.0.1:P,..." as serve's --store wants it.
  std::string StoreSpec() const {
    std::string spec = "etcd://";
    for (int i = 0; i < size(); ++i) spec += (i ? "," : "") + std::string("127.0.0.1:") + std::to_string(ClientPort(i));
    return spec;
  }
  ~EtcdCluster() {
    for (size_t i = 0; i < pids_.size(); ++i) Kill(static_cast<int>(i));
  }

  int size() const { return static_cast<int>(pids_.size()); }
  static int ClientPort(int i) { return kFirstPort + 2 * i; }
  std::vector<etcd::Endpoint> endpoints() const {
    std::vector<etcd::Endpoint> out;
    for (int i = 0; i < size(); ++i) out.push_back({.host = "127.0.0.1", .port = ClientPort(i)});
    return out;
  }

  // Starts member i (on its existing data after a Kill: then the cluster flags are ignored).
  void Start(int i) {
    const std::string name = "m" + std::to_string(i);
    std::string cluster;
    for (int m = 0; m < size(); ++m) {
      cluster += (m ? "," : "") + std::string("m") + std::to_string(m) + "=" + PeerUrl(m);
    }
    const std::string client = (tls_ ? "https" : "http") + std::string("://127.0.0.1:") + std::to_string(ClientPort(i));
    std::vector<std::string> args = {kBinary, "--name=" + name, "--data-dir=" + dir_ + "/" + name,
                                     "--listen-client-urls=" + client, "--advertise-client-urls=" + client,
                                     "--listen-peer-urls=" + PeerUrl(i), "--initial-advertise-peer-urls=" + PeerUrl(i),
                                     "--initial-cluster=" + cluster, "--initial-cluster-state=new",
                                     "--initial-cluster-token=smv-test",
                                     // Elections in a second, not the default 1 s x 10: tests wait less.
                                     "--heartbeat-interval=100", "--election-timeout=1000", "--log-outputs=stderr"};
    if (tls_) {
      for (std::string flag : {"--cert-file=" + tls_->server_cert, "--key-file=" + tls_->server_key,
                               "--trusted-ca-file=" + tls_->ca, std::string("--client-cert-auth")}) {
        args.push_back(std::move(flag));
      }
    }
    args.insert(args.end(), extra_flags_.begin(), extra_flags_.end());
    pids_[static_cast<size_t>(i)] = SpawnLogged(args, dir_ + "/" + name + ".log");
  }
  void StartAll() {
    for (int i = 0; i < size(); ++i) Start(i);
  }
  // SIGKILL: a crash. The member's data stays for a restart.
  void Kill(int i) {
    pid_t& pid = pids_[static_cast<size_t>(i)];
    if (pid <= 0) return;
    kill(pid, SIGCONT);
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
    pid = -1;
  }
  // SIGSTOP is delivered asynchronously: on a loaded machine the member could still answer a
  // request sent right after kill() returns. Waits until the kernel shows it stopped (up to 5 s).
  void Pause(int i) {
    const pid_t pid = pids_[static_cast<size_t>(i)];
    kill(pid, SIGSTOP);
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (!Stopped(pid) && std::chrono::steady_clock::now() < until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }
  void Resume(int i) { kill(pids_[static_cast<size_t>(i)], SIGCONT); }

  // The state field of /proc/PID/stat (after the parenthesised command name): T when stopped.
  static bool Stopped(pid_t pid) {
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    std::getline(stat, line);
    const size_t close = line.rfind(')');
    return close != std::string::npos && close + 2 < line.size() && (line[close + 2] == 'T' || line[close + 2] == 't');
  }

  // True once member i reports itself healthy (it has a leader and can serve) within `limit`.
  bool Healthy(int i, std::chrono::seconds limit) const {
    const auto until = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < until) {
      httplib::Client http(HealthClient(i));
      http.set_connection_timeout(0, 200000);
      http.set_read_timeout(2, 0);
      if (auto r = http.Get("/health"); r && r->status == 200 && r->body.find("\"true\"") != std::string::npos) {
        return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
  }
  // Compacts etcd's history up to `revision`, as auto-compaction does; true once it did.
  bool Compact(int64_t revision) const {
    for (int i = 0; i < size(); ++i) {
      if (pids_[static_cast<size_t>(i)] <= 0) continue;
      httplib::Client http(HealthClient(i));
      http.set_read_timeout(10, 0);
      const nlohmann::json request = {{"revision", std::to_string(revision)}, {"physical", true}};
      if (auto r = http.Post("/v3/kv/compaction", request.dump(), "application/json"); r && r->status == 200) {
        return true;
      }
    }
    return false;
  }
  // The index of the member that leads now, or -1 (members answer /v3/maintenance/status with
  // their own id and the leader's).
  int Leader() const {
    std::vector<std::string> ids(static_cast<size_t>(size()));
    std::string leader;
    for (int i = 0; i < size(); ++i) {
      if (pids_[static_cast<size_t>(i)] <= 0) continue;
      httplib::Client http("127.0.0.1", ClientPort(i));
      http.set_read_timeout(2, 0);
      auto r = http.Post("/v3/maintenance/status", "{}", "application/json");
      if (!r || r->status != 200) continue;
      const nlohmann::json status = nlohmann::json::parse(r->body, nullptr, false);
      if (!status.is_object()) continue;
      ids[static_cast<size_t>(i)] = status.value("header", nlohmann::json::object()).value("member_id", "");
      leader = status.value("leader", leader);
    }
    for (int i = 0; i < size(); ++i) {
      if (!leader.empty() && ids[static_cast<size_t>(i)] == leader) return i;
    }
    return -1;
  }
  std::string Logs() const {
    std::string out;
    for (int i = 0; i < size(); ++i) {
      std::ifstream in(dir_ + "/m" + std::to_string(i) + ".log");
      std::string text((std::istreambuf_iterator<char>(in)), {});
      out += "--- m" + std::to_string(i) + " (last 1500 bytes)\n" +
             text.substr(text.size() > 1500 ? text.size() - 1500 : 0);
    }
    return out;
  }

 private:
  // Health checks of a TLS cluster use its server certificate as a client certificate (etcd
  // issues it for both uses in these tests).
  httplib::Client HealthClient(int i) const {
    if (!tls_) return httplib::Client("127.0.0.1", ClientPort(i));
    httplib::Client http("https://127.0.0.1:" + std::to_string(ClientPort(i)), tls_->server_cert, tls_->server_key);
    http.set_ca_cert_path(tls_->ca);
    http.enable_server_certificate_verification(true);
    return http;
  }
  static std::string PeerUrl(int i) { return "http://127.0.0.1:" + std::to_string(ClientPort(i) + 1); }

  std::string dir_;
  std::vector<pid_t> pids_;
  std::optional<EtcdTlsFiles> tls_;
  std::vector<std::string> extra_flags_;
};

// Each test case runs in its own process (gtest_discover_tests) and enters a fresh network
// namespace with only loopback up, then starts a 3-member cluster there.
class EtcdTest : public ::testing::Test {
 protected:
  static constexpr int kMembers = 3;

  void SetUp() override {
    if (unshare(CLONE_NEWNET) != 0) {
      GTEST_SKIP() << "no private network namespace (" << std::strerror(errno) << "); run as root";
    }
    ASSERT_EQ(system("ip link set dev lo up"), 0);
    ASSERT_TRUE(std::filesystem::exists(EtcdCluster::kBinary))
        << EtcdCluster::kBinary << " is missing: scripts/install-deps.sh --test installs etcd-server";
    ConfigureCluster();
    cluster_.StartAll();
    for (int i = 0; i < kMembers; ++i) ASSERT_TRUE(cluster_.Healthy(i, std::chrono::seconds(30))) << cluster_.Logs();
  }

  // Runs before the members start (TLS, for instance).
  virtual void ConfigureCluster() {}

  TempDir dir_;
  EtcdCluster cluster_{dir_.path(), kMembers};
};

}  // namespace smv::testing

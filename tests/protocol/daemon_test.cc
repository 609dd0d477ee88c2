// The real daemon over its real socket: replays request sequences captured from dockerd 20.10
// (shared/fixtures/dockerd-20.10), restarts the daemon and checks that everything survived,
// and runs concurrent clients. Runs in a private network namespace with a veth "eth1".

#include <fcntl.h>
#include <httplib.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/support/netns_test.h"
#include "tests/support/temp_dir.h"

namespace smv {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

class DaemonTest : public testing::NetnsTest {
 protected:
  void SetUp() override {
    NetnsTest::SetUp();
    if (IsSkipped()) return;
    socket_ = dir_.Sub("smv.sock");
    StartDaemon();
  }
  void TearDown() override { StopDaemon(); }

  void StartDaemon() {
    pid_ = fork();
    if (pid_ == 0) {
      const int log = open(dir_.Sub("daemon.log").c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
      dup2(log, 2);
      execl(SMV_BINARY, SMV_BINARY, "serve", "--socket", socket_.c_str(), "--state-dir",
            dir_.Sub("state").c_str(), "--log-level", "debug", nullptr);
      _exit(127);
    }
    for (int i = 0; i < 100; ++i) {
      if (Client().Post("/Plugin.Activate", "", "")) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    FAIL() << "daemon did not answer on " << socket_ << "\n" << Log();
  }
  // SIGTERM: a clean stop. SIGKILL: a crash.
  void StopDaemon(int signal = SIGTERM) {
    if (pid_ <= 0) return;
    kill(pid_, signal);
    int status = 0;
    waitpid(pid_, &status, 0);
    if (signal == SIGTERM) {
      EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << Log();
      EXPECT_FALSE(fs::exists(socket_)) << "socket left behind after a clean stop";
    }
    pid_ = -1;
  }
  std::string Log() const {
    std::ifstream in(dir_.Sub("daemon.log"));
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  httplib::Client Client() const {
    httplib::Client cli(socket_);
    cli.set_address_family(AF_UNIX);
    cli.set_read_timeout(10, 0);
    return cli;
  }
  // POSTs like dockerd: no Content-Type, an empty body or JSON + "\n".
  std::pair<int, json> Post(httplib::Client& cli, const std::string& endpoint, const json& body) {
    const std::string text = body.is_null() ? "" : body.dump() + "\n";
    httplib::Result r = cli.Post(("/" + endpoint).c_str(), text, "");
    if (!r) return {0, json(httplib::to_string(r.error()))};
    return {r->status, json::parse(r->body, nullptr, false)};
  }

  // Replays the captured calls of `scenarios` in order. Fixture PoolIDs are the recorder's;
  // ours are substituted as our RequestPool answers come in.
  void Replay(const std::vector<std::string>& scenarios, bool strip_vlan) {
    httplib::Client cli = Client();
    for (const std::string& scenario : scenarios) {
      std::vector<fs::path> files;
      for (const auto& e : fs::directory_iterator(fs::path(SMV_FIXTURES_DIR) / scenario)) {
        if (e.path().extension() == ".json") files.push_back(e.path());
      }
      ASSERT_FALSE(files.empty()) << scenario;
      std::sort(files.begin(), files.end());
      for (const fs::path& file : files) {
        std::ifstream in(file);
        json call = json::parse(in);
        const std::string endpoint = call["endpoint"];
        json request = call["request"];
        if (request.is_object() && request.contains("PoolID")) request["PoolID"] = pools_[request["PoolID"]];
        if (strip_vlan && endpoint == "NetworkDriver.CreateNetwork") {
          // This kernel has no 802.1Q: the VLAN variant runs in the VM tier.
          request["Options"]["com.docker.network.generic"].erase("vlan");
        }
        auto [status, response] = Post(cli, endpoint, request);
        const std::string where = scenario + "/" + file.filename().string();
        ASSERT_EQ(status, 200) << where << ": " << response << "\n" << Log();
        const json& want = call["response"];
        if (endpoint == "IpamDriver.RequestPool") {
          EXPECT_EQ(response["Pool"], want["Pool"]) << where;
          pools_[want["PoolID"]] = response["PoolID"];
        } else if (endpoint == "IpamDriver.RequestAddress") {
          if (!request["Address"].get<std::string>().empty()) {
            EXPECT_EQ(response["Address"], want["Address"]) << where;  // asked for: given
          }
          addresses_.insert(response["Address"].get<std::string>());
        } else if (endpoint == "NetworkDriver.CreateEndpoint") {
          const bool had_mac = !request["Interface"]["MacAddress"].get<std::string>().empty();
          EXPECT_EQ(response.contains("Interface"), !had_mac) << where;
          if (!had_mac) EXPECT_FALSE(response["Interface"].contains("Address")) << where;
        } else if (endpoint == "NetworkDriver.Join") {
          EXPECT_EQ(response.value("Gateway", ""), want.value("Gateway", "")) << where;
          const std::string link = response["InterfaceName"]["SrcName"];
          EXPECT_TRUE(links_->Find(link)->has_value()) << where << ": no link " << link;
        } else if (endpoint == "NetworkDriver.DeleteEndpoint") {
          const std::string link = "smv" + request["EndpointID"].get<std::string>().substr(0, 11);
          EXPECT_FALSE(links_->Find(link)->has_value()) << where << ": link " << link << " left";
        }
      }
    }
  }

  testing::TempDir dir_;
  std::string socket_;
  pid_t pid_ = -1;
  std::map<std::string, std::string> pools_;
  std::set<std::string> addresses_;
};

TEST_F(DaemonTest, SocketIsPrivateAndUnknownPathsAre404) {
  EXPECT_EQ(fs::status(socket_).permissions() & fs::perms::all, fs::perms::owner_read | fs::perms::owner_write);
  httplib::Client cli = Client();
  auto [status, body] = Post(cli, "NetworkDriver.Nope", json::object());
  EXPECT_EQ(status, 404);
  EXPECT_TRUE(body.contains("Err"));
  // A second daemon on the same socket refuses to steal it.
  const int rc = system((std::string(SMV_BINARY) + " serve --socket " + socket_ + " --state-dir " +
                         dir_.Sub("state2") + " 2>/dev/null").c_str());
  EXPECT_NE(rc, 0);
}

TEST_F(DaemonTest, NetworkCreateAndRemoveSequencesAsDockerdSendsThem) {
  // Activation, two subnets in one network, an internal network; each created then removed.
  Replay({"01-network-create-two-subnets", "01-network-create-internal"}, false);
  EXPECT_FALSE((*links_->Find("eth1"))->promisc);  // both networks gone: promisc restored
}

TEST_F(DaemonTest, UnknownIpamOptionFromTheCaptureIsRefusedByName) {
  // 01-network-create-full used --ipam-opt other=1: a typo must not pass silently.
  std::ifstream in(fs::path(SMV_FIXTURES_DIR) / "01-network-create-full/005-IpamDriver.RequestPool.json");
  json call = json::parse(in);
  httplib::Client cli = Client();
  auto [status, body] = Post(cli, "IpamDriver.RequestPool", call["request"]);
  EXPECT_EQ(status, 500);
  EXPECT_NE(body["Err"].get<std::string>().find("unknown --ipam-opt \"other\""), std::string::npos) << body;
}

TEST_F(DaemonTest, ContainerLifecycleReplayThenRestartKeepsEverything) {
  Replay({"02-setup", "02-run-with-ip", "02-run-without-ip", "02-stop", "02-start"}, !KernelHasVlan());
  const std::string pool = pools_["rec:192.0.2.0/24/192.0.2.128/25"];
  httplib::Client cli = Client();
  // A Docker 29 style request: the name becomes a reservation.
  auto [s1, named] = Post(cli, "IpamDriver.RequestAddress",
                          {{"PoolID", pool}, {"Address", ""}, {"Options", {{"com.docker.network.endpoint.name", "web-0"}}}});
  ASSERT_EQ(s1, 200) << named;
  const std::string web = named["Address"];
  ASSERT_EQ(Post(cli, "IpamDriver.ReleaseAddress", {{"PoolID", pool}, {"Address", web.substr(0, web.find('/'))}}).first, 200);

  StopDaemon(SIGTERM);
  StartDaemon();
  httplib::Client again = Client();
  // a-0's --ip 192.0.2.10 is leased again after 02-start: still taken after the restart.
  auto [s2, taken] = Post(again, "IpamDriver.RequestAddress", {{"PoolID", pool}, {"Address", "192.0.2.10"}, {"Options", nullptr}});
  EXPECT_EQ(s2, 500);
  EXPECT_NE(taken["Err"].get<std::string>().find("already in use"), std::string::npos) << taken;
  // The gateway is still held.
  auto [s3, gw] = Post(again, "IpamDriver.RequestAddress", {{"PoolID", pool}, {"Address", "192.0.2.1"}, {"Options", nullptr}});
  EXPECT_EQ(s3, 500) << gw;
  // The reservation survived: the same name gets the same address, another name cannot take it.
  auto [s4, other] = Post(again, "IpamDriver.RequestAddress",
                          {{"PoolID", pool}, {"Address", web.substr(0, web.find('/'))}, {"Options", {{"com.docker.network.endpoint.name", "intruder"}}}});
  EXPECT_EQ(s4, 500);
  EXPECT_NE(other["Err"].get<std::string>().find("reserved for container \"web-0\""), std::string::npos) << other;
  auto [s5, back] = Post(again, "IpamDriver.RequestAddress",
                         {{"PoolID", pool}, {"Address", ""}, {"Options", {{"com.docker.network.endpoint.name", "web-0"}}}});
  EXPECT_EQ(s5, 200);
  EXPECT_EQ(back["Address"], web);
  // The network and its endpoints are still known: a Join of the running a-1 works.
  auto [s6, join] = Post(again, "NetworkDriver.Join",
                         {{"NetworkID", "d57bf16eded499d19591cbcbb27c1eca187ddf94de85ec92ac9dd64dafa6c4f2"},
                          {"EndpointID", "554e97f620b1865ee251b2326a5c4704b8ebc7e1402cef7d49bc63a628c3daec"},
                          {"SandboxKey", "/var/run/docker/netns/x"}, {"Options", json::object()}});
  EXPECT_EQ(s6, 200) << join;
}

TEST_F(DaemonTest, NetworkRemovalReleasesEverythingAndRemovesLinks) {
  Replay({"02-setup", "02-run-with-ip", "02-rm-force"}, !KernelHasVlan());
  httplib::Client cli = Client();
  const std::string net = "d57bf16eded499d19591cbcbb27c1eca187ddf94de85ec92ac9dd64dafa6c4f2";
  // The container of 02-run-with-ip is still attached (02-rm-force removed another endpoint).
  ASSERT_TRUE(links_->Find("smvda420489ddb")->has_value());
  ASSERT_EQ(Post(cli, "NetworkDriver.DeleteNetwork", {{"NetworkID", net}}).first, 200);
  EXPECT_FALSE(links_->Find("smvda420489ddb")->has_value());
  EXPECT_TRUE((*links_->Find("eth1"))->promisc);  // the second network of 02-setup still uses eth1
  ASSERT_EQ(Post(cli, "NetworkDriver.DeleteNetwork",
                 {{"NetworkID", "e3f8eaef83039a91bb9d49cf66fd46eda9c85511785404721de8bd277e9f42e6"}}).first, 200);
  EXPECT_FALSE((*links_->Find("eth1"))->promisc);  // we switched it on, we switched it back
}

TEST_F(DaemonTest, EightConcurrentClientsNeverGetTheSameAddress) {
  httplib::Client cli = Client();
  auto [status, pool] = Post(cli, "IpamDriver.RequestPool",
                             {{"AddressSpace", "l"}, {"Pool", "198.51.100.0/24"}, {"SubPool", ""}, {"Options", json::object()}, {"V6", false}});
  ASSERT_EQ(status, 200);
  const std::string pool_id = pool["PoolID"];
  constexpr int kClients = 8, kEach = 30;
  std::vector<std::vector<std::string>> got(kClients);
  std::vector<std::thread> threads;
  for (int c = 0; c < kClients; ++c) {
    threads.emplace_back([&, c] {
      httplib::Client mine = Client();
      for (int i = 0; i < kEach; ++i) {
        auto [s, r] = Post(mine, "IpamDriver.RequestAddress", {{"PoolID", pool_id}, {"Address", ""}, {"Options", nullptr}});
        if (s == 200) got[c].push_back(r["Address"]);
        else ADD_FAILURE() << "status " << s << " " << r;
        if (i % 3 == 0 && s == 200) {  // interleave releases, as stops do
          const std::string a = r["Address"];
          Post(mine, "IpamDriver.ReleaseAddress", {{"PoolID", pool_id}, {"Address", a.substr(0, a.find('/'))}});
          got[c].pop_back();
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  std::set<std::string> all;
  size_t total = 0;
  for (const auto& list : got) {
    total += list.size();
    all.insert(list.begin(), list.end());
  }
  EXPECT_EQ(total, size_t{kClients} * (kEach - kEach / 3));
  EXPECT_EQ(all.size(), total) << "an address was handed out twice";
}

}  // namespace
}  // namespace smv

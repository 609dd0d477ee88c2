#pragma once
// One `static-macvlan serve` daemon (a "host" of a fleet) run by a test as its own child process,
// with its own socket, state directory and log in the test's directory, driven over its socket as
// dockerd drives it. SMV_BINARY is the daemon under test (set by tests/CMakeLists.txt).

#include <httplib.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/support/child_process.h"

namespace smv::testing {

// Runs a shell command: its exit code and output (stdout and stderr).
inline std::pair<int, std::string> RunCommand(const std::string& command) {
  FILE* out = popen((command + " 2>&1").c_str(), "r");
  if (out == nullptr) return {-1, "popen failed"};
  std::string text;
  char buffer[512];
  while (fgets(buffer, sizeof buffer, out)) text += buffer;
  const int status = pclose(out);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, text};
}

// From 198.18.0.0/15, the benchmarking range: never on a wire.
inline constexpr const char* kFleetSubnet = "198.18.0.0/18";

class Node {
 public:
  Node(std::string dir, std::string name, const std::string& store, const std::vector<std::string>& extra = {})
      : dir_(std::move(dir)), name_(std::move(name)) {
    args_ = {SMV_BINARY, "serve", "--socket",    Path(".sock"), "--state-dir",   Path(".state"),
             "--store",  store,   "--node-name", name_,         "--docker-host", "unix://" + Path(".no-engine")};
    args_.insert(args_.end(), extra.begin(), extra.end());
    Start();
  }
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;
  ~Node() {
    if (pid_ <= 0) return;
    kill(pid_, SIGTERM);
    waitpid(pid_, nullptr, 0);
  }

  // Starts the daemon again on its state (after Kill).
  void Start() { pid_ = SpawnLogged(args_, Path(".log")); }
  // SIGKILL: the host's plugin crashes; its state directory stays.
  void Kill() {
    if (pid_ <= 0) return;
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  // SIGSTOP / SIGCONT: the host's plugin hangs (its etcd watch with it), then goes on.
  void Pause() { kill(pid_, SIGSTOP); }
  void Resume() { kill(pid_, SIGCONT); }
  // Waits for the daemon to end by itself (a start-up error); its exit code, or -1 after `limit`.
  int ExitCode(std::chrono::seconds limit) {
    for (auto until = std::chrono::steady_clock::now() + limit; std::chrono::steady_clock::now() < until;) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return -1;
  }
  bool Ready() {
    for (int i = 0; i < 600; ++i) {
      if (Client().Post("/Plugin.Activate", "", "")) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
  }
  httplib::Client Client() const {
    httplib::Client cli(Path(".sock"));
    cli.set_address_family(AF_UNIX);
    cli.set_read_timeout(30, 0);
    return cli;
  }
  // POSTs like dockerd; the answer's JSON (null when there was none).
  nlohmann::json Post(httplib::Client& cli, const std::string& endpoint, const nlohmann::json& body) const {
    httplib::Result r = cli.Post(("/" + endpoint).c_str(), body.dump() + "\n", "");
    return r ? nlohmann::json::parse(r->body, nullptr, false) : nlohmann::json();
  }
  // Runs the static-macvlan CLI against this node's socket: exit code and output.
  std::pair<int, std::string> Cli(const std::string& args) const {
    return RunCommand(std::string(SMV_BINARY) + " reservations --socket " + Path(".sock") + " " + args);
  }
  std::string Log() const {
    std::ifstream in(Path(".log"));
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  const std::string& name() const { return name_; }
  std::string state_dir() const { return Path(".state"); }
  std::string socket() const { return Path(".sock"); }

 private:
  std::string Path(const std::string& suffix) const { return dir_ + "/" + name_ + suffix; }
  std::string dir_, name_;
  std::vector<std::string> args_;
  pid_t pid_ = -1;
};

inline nlohmann::json PoolRequest(const std::string& subnet = kFleetSubnet) {
  return {{"AddressSpace", "static-macvlan-local"},
          {"Pool", subnet},
          {"SubPool", ""},
          {"Options", nlohmann::json::object()},
          {"V6", false}};
}
// As Docker >= 29 sends it when `name` is given; as older engines do otherwise.
inline nlohmann::json AddressRequest(const std::string& pool_id, const std::string& name = "") {
  nlohmann::json options = nlohmann::json::object();
  if (!name.empty()) options["com.docker.network.endpoint.name"] = name;
  return {{"PoolID", pool_id}, {"Address", ""}, {"Options", options}};
}
inline nlohmann::json ReleaseRequest(const std::string& pool_id, const std::string& address) {
  return {{"PoolID", pool_id}, {"Address", address.substr(0, address.find('/'))}};
}

}  // namespace smv::testing

// static-macvlan doctor: the questions asked when a container has no connectivity (is the daemon
// up, does dockerd answer and send it its calls, is the parent there, up, with carrier, is 802.1Q
// there, is promiscuous mode as configured, does the MTU fit, do two networks overlap, is host
// access in place, is the store consistent), answered one per line, each failure with the command
// that fixes it.

#include <fmt/format.h>
#include <httplib.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/log.h"
#include "common/unix_socket.h"
#include "daemon/cli/doctor_checks.h"
#include "daemon/cli/engine_advice.h"
#include "daemon/commands.h"
#include "daemon/daemon_socket.h"
#include "daemon/plugin_registration.h"
#include "daemon/state_stores.h"
#include "driver/netlink/link_manager.h"
#include "engine/docker_engine.h"
#include "ipam/etcd_store.h"

namespace smv::daemon {
namespace {

using Check = DoctorCheck;
constexpr Millis kDoctorDaemonTimeout{5000};

Check DaemonAnswers(const std::string& socket) {
  httplib::Client cli(socket);
  UseUnixSocket(cli, kDoctorDaemonTimeout);
  httplib::Result r = cli.Post("/Plugin.Activate", "", "");
  if (r && r->status == 200) return {"daemon", "", true, "answers on " + socket, ""};
  // httplib only says it could not connect: ask the kernel why (missing, root's, nobody listening).
  const Status why = r ? OkStatus() : WhyDaemonSocketUnreachable(socket);
  if (why.code() == Code::kPermissionDenied) {
    return {"daemon", "", false, fmt::format("no answer on {} ({})", socket, why.message()),
            "sudo static-macvlan doctor   (the socket is 0600 root by design)"};
  }
  return {
      "daemon", "", false,
      fmt::format("no answer on {} ({})", socket,
                  r ? "HTTP " + std::to_string(r->status) : (why.ok() ? httplib::to_string(r.error()) : why.message())),
      "systemctl start static-macvlan   (or: static-macvlan serve --socket " + socket + " &)"};
}

// fsck's answer on one line, and each record of the shared book that no node can decode on one
// of its own, with the command that deletes it.
void CheckStoreConsistent(const ServeFlags& flags, std::vector<Check>& out) {
  std::string summary;
  std::vector<ipam::UndecodableKey> undecodable;
  Result<std::vector<std::string>> problems = FsckProblems(flags, summary, &undecodable);
  if (!problems.ok()) {
    out.push_back({"state", "", false, problems.status().message(), "static-macvlan fsck"});
    return;
  }
  if (!problems->empty()) {
    out.push_back({"state", "", false,
                   fmt::format("fsck: {} problem(s), first: {}", problems->size(), problems->front()),
                   "static-macvlan fsck   (lists them all; docs/troubleshooting.md)"});
  } else if (undecodable.empty()) {
    out.push_back({"state", "", true, "fsck: " + summary, ""});
  }
  for (const ipam::UndecodableKey& bad : undecodable) {
    out.push_back({"state", "", false,
                   fmt::format("the shared book's record {} does not decode; every node skips it: {}",
                               ipam::PrintableKey(bad.key), ipam::PrintableWhy(bad.why)),
                   fmt::format("{}   (look at it first: {}; or restore it from a backup)",
                               ipam::EtcdctlDeleteCommand(bad), ipam::EtcdctlGetCommand(bad))});
  }
}

void Print(const std::vector<Check>& checks, bool as_json) {
  if (as_json) {
    nlohmann::json out = nlohmann::json::array();
    for (const Check& c : checks) {
      out.push_back({{"check", c.what}, {"network", c.network}, {"ok", c.ok}, {"detail", c.detail}, {"fix", c.fix}});
    }
    std::printf("%s\n", out.dump(2).c_str());
    return;
  }
  for (const Check& c : checks) {
    std::printf("%-4s  %-8s %s%s\n", c.ok ? "ok" : "FAIL", c.what.c_str(),
                c.network.empty() ? "" : ("network " + c.network + ": ").c_str(), c.detail.c_str());
    if (!c.ok) std::printf("      fix: %s\n", c.fix.c_str());
  }
}

Status Report(const std::vector<Check>& checks, bool as_json) {
  Print(checks, as_json);
  size_t failed = 0;
  for (const Check& c : checks) failed += c.ok ? 0 : 1;
  if (failed > 0) return FailedPrecondition(fmt::format("{} check(s) failed", failed));
  return OkStatus();
}

// Docker's own networks, as the overlap check wants them.
std::vector<DockerNetwork> DockerNetworks(engine::DockerEngine& engine) {
  std::vector<DockerNetwork> out;
  Result<std::vector<engine::DockerEngine::NetworkSummary>> all = engine.ListNetworks(kDoctorEngineTimeout);
  if (!all.ok()) return out;  // the engine check already says it does not answer
  for (const engine::DockerEngine::NetworkSummary& n : *all) {
    auto parent = n.options.find("parent");
    out.push_back({n.network.name, n.driver, parent == n.options.end() ? "" : parent->second, n.network.subnets});
  }
  return out;
}

// The network checks on the stored networks and the kernel's links.
void CheckStoredNetworks(const DoctorFlags& flags, engine::DockerEngine* engine, std::vector<Check>& checks) {
  Result<StateStores> stores = OpenStateStores(flags.serve.state_dir, flags.serve.db_size_mib << 20);
  Result<driver::DriverSnapshot> state =
      stores.ok() ? stores->networks->Load() : Result<driver::DriverSnapshot>(stores.status());
  Result<std::unique_ptr<nl::LinkManager>> links = nl::LinkManager::Open();
  if (!state.ok() || !links.ok()) {
    checks.push_back(
        {"networks", "", false, (!state.ok() ? state.status() : links.status()).message(), "static-macvlan fsck"});
    return;
  }
  NetworkCheckInputs in{.records = state->networks,
                        .only = flags.network,
                        .links = links->get(),
                        .engine = engine,
                        .docker_host = flags.serve.docker_host,
                        .docker_networks = engine != nullptr ? DockerNetworks(*engine) : std::vector<DockerNetwork>()};
  for (Check& c : CheckNetworks(in)) checks.push_back(std::move(c));
}

// A doctor line from engine_advice's.
Check CheckOf(Advice a) {
  return {std::move(a.what), std::move(a.network), a.ok, std::move(a.detail), std::move(a.fix)};
}

std::vector<EngineNetworkView> NetworkViews(const std::vector<engine::DockerEngine::NetworkSummary>& networks) {
  std::vector<EngineNetworkView> out;
  for (const engine::DockerEngine::NetworkSummary& n : networks) {
    out.push_back({n.network.name, n.driver, n.scope, n.config_from, n.config_only, n.ipam_driver, n.gateways});
  }
  return out;
}

// What the engine's version and its swarm mean for networks of ours (daemon/cli/engine_advice.h).
void CheckEngineAdvice(engine::DockerEngine& engine, const Result<std::string>& version_text,
                       const std::set<std::string>& ours, std::vector<Check>& checks) {
  std::vector<Advice> advice;
  const std::optional<EngineVersion> version =
      version_text.ok() ? ParseEngineVersion(*version_text) : std::optional<EngineVersion>();
  if (version) {
    if (std::optional<Advice> defect = EngineVersionDefect(*version)) advice.push_back(std::move(*defect));
  }
  Result<std::vector<engine::DockerEngine::NetworkSummary>> listed = engine.ListNetworks(kDoctorEngineTimeout);
  const std::vector<EngineNetworkView> networks =
      listed.ok() ? NetworkViews(*listed) : std::vector<EngineNetworkView>();
  if (version) {
    for (Advice& a : GatewayAdvice(*version, networks, ours)) advice.push_back(std::move(a));
  }
  Result<engine::SwarmView> swarm = engine.Swarm(kDoctorEngineTimeout);
  if (swarm.ok() && swarm->local_state == "active") {
    for (Advice& a : SwarmNetworkAdvice(networks, ours)) advice.push_back(std::move(a));
    std::vector<SwarmNodeView> nodes;
    for (const engine::SwarmNode& n : swarm->nodes) {
      nodes.push_back({n.hostname, n.role, n.availability, n.state, n.network_plugins});
    }
    // A swarm needs the managed plugin: name it as this node has it.
    const auto managed =
        std::find_if(ours.begin(), ours.end(), [](const std::string& n) { return n.find(':') != std::string::npos; });
    const std::string install = "docker plugin install (or enable) the managed plugin as " +
                                (managed != ours.end() ? *managed : std::string("on this node"));
    for (Advice& a : SwarmNodeAdvice(nodes, ours, install)) advice.push_back(std::move(a));
  }
  for (Advice& a : advice) checks.push_back(CheckOf(std::move(a)));
}

}  // namespace

Status Doctor(const DoctorFlags& flags) {
  std::vector<Check> checks;
  checks.push_back(DaemonAnswers(flags.serve.socket));
  Result<std::unique_ptr<engine::DockerEngine>> engine = engine::DockerEngine::Create(flags.serve.docker_host);
  // Asked once: the engine check and the version advice both read it.
  const Result<std::string> version =
      engine.ok() ? (*engine)->Version(kDoctorEngineTimeout) : Result<std::string>(Unavailable("no engine client"));
  checks.push_back(EngineAnswers(version, flags.serve.docker_host));
  const bool engine_up = checks.back().ok;
  if (engine_up) {
    Result<engine::EnginePlugins> plugins = (*engine)->Plugins(kDoctorEngineTimeout);
    checks.push_back(DockerdRegistered(plugins, flags.serve.socket));
    if (plugins.ok()) CheckEngineAdvice(**engine, version, OurDriverNames(*plugins, flags.serve.socket), checks);
  }
  // The network records live in the state directory: never create one where there is none.
  if (!std::filesystem::is_directory(flags.serve.state_dir)) {
    checks.push_back({"state", "", false, "no state directory " + flags.serve.state_dir,
                      "static-macvlan doctor --state-dir DIR   (the daemon's --state-dir)"});
    return Report(checks, flags.json);
  }
  CheckStoreConsistent(flags.serve, checks);
  CheckStoredNetworks(flags, engine_up ? engine->get() : nullptr, checks);
  return Report(checks, flags.json);
}

}  // namespace smv::daemon

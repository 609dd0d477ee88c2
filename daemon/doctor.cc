// static-macvlan doctor: the questions asked when a container has no connectivity (is the daemon
// up, does dockerd answer and send it its calls, is the parent there, up, with carrier, is 802.1Q there, is promiscuous
// mode as configured, does the MTU fit, do two networks overlap, is host access in place, is the
// store consistent), answered one per line, each failure with the command that fixes it.

#include <fmt/format.h>
#include <httplib.h>
#include <sys/stat.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "commands.h"
#include "common/log.h"
#include "daemon/daemon_socket.h"
#include "daemon/plugin_registration.h"
#include "daemon/state_stores.h"
#include "driver/driver_service.h"
#include "driver/netlink/link_manager.h"
#include "driver/network_options.h"
#include "engine/docker_engine.h"
#include "ipam/etcd_store.h"

namespace smv::daemon {
namespace {

using std::chrono::milliseconds;
constexpr milliseconds kDoctorEngineTimeout{3000};
constexpr int kDockerSendsNames = 29;  // the first major version that sends names to the IPAM

struct Check {
  std::string what;     // "daemon", "engine", "state", "parent", ...
  std::string network;  // "" for host-wide checks
  bool ok = true;
  std::string detail;
  std::string fix;  // a command, for failures
};

Check DaemonAnswers(const std::string& socket) {
  httplib::Client cli(socket);
  cli.set_address_family(AF_UNIX);
  cli.set_connection_timeout(2, 0);
  cli.set_read_timeout(5, 0);
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

Check EngineAnswers(engine::DockerEngine* engine, const std::string& host) {
  Result<std::string> version =
      engine != nullptr ? engine->Version(kDoctorEngineTimeout) : Unavailable("no engine client");
  if (!version.ok()) {
    return {"engine", "", false, fmt::format("Docker does not answer at {}: {}", host, version.status().message()),
            "systemctl start docker   (the plugin learns container names from it)"};
  }
  const int major = std::atoi(version->c_str());
  const std::string guarantee =
      major >= kDockerSendsNames
          ? "names are sent with each request: a name always gets its reservation back"
          : "names are guessed for one container starting at a time; --ip / ipv4_address always holds, and "
            "`static-macvlan compose pin` pins a compose project (README, Same name, same address)";
  return {"engine", "", true, fmt::format("Docker {} answers at {}; {}", *version, host, guarantee), ""};
}

// Whether dockerd sends this daemon its calls (registered legacy plugin, enabled managed one).
Check DockerdRegistered(engine::DockerEngine& engine, const std::string& socket) {
  Result<engine::EnginePlugins> plugins = engine.Plugins(kDoctorEngineTimeout);
  if (!plugins.ok()) return {"dockerd", "", false, plugins.status().message(), "docker info"};
  Registration judged = JudgeRegistration(*plugins, socket);
  return {"dockerd", "", judged.ok, std::move(judged.detail), std::move(judged.fix)};
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

// The link checks of one network, on the kernel as it is now.
void CheckNetworkLinks(nl::LinkOps& links, const driver::NetworkRecord& record, const driver::NetworkOptions& options,
                       const std::string& label, std::vector<Check>& out) {
  auto add = [&](std::string what, bool ok, std::string detail, std::string fix = "") {
    out.push_back({std::move(what), label, ok, std::move(detail), ok ? "" : std::move(fix)});
  };
  Result<std::optional<nl::LinkInfo>> parent = links.Find(options.parent);
  if (!parent.ok() || !parent->has_value()) {
    add("parent", false, fmt::format("parent interface {} is missing (\"Link not found\")", options.parent),
        fmt::format("ip -br link   (then recreate the network with -o parent=<an interface listed there>)"));
    return;
  }
  const nl::LinkInfo& p = **parent;
  add("parent", p.up, fmt::format("{} is {}", p.name, p.up ? "up" : "down"), "ip link set " + p.name + " up");
  if (p.up) {
    add("carrier", p.carrier, fmt::format("{} {}", p.name, p.carrier ? "has carrier" : "has no carrier (NO-CARRIER)"),
        "check the cable or switch port of " + p.name + "   (ip link show " + p.name + ")");
  }
  if (options.vlan_id) {
    Result<std::optional<nl::LinkInfo>> vlan = links.Find(options.vlan_link_name);
    const bool present = vlan.ok() && vlan->has_value() && (*vlan)->kind == "vlan";
    const bool has_8021q = std::filesystem::exists("/proc/net/vlan/config");
    add("vlan", present,
        present ? fmt::format("{} is VLAN {} on {}", options.vlan_link_name, *options.vlan_id, options.parent)
                : fmt::format("VLAN link {} is missing{}", options.vlan_link_name,
                              has_8021q ? "" : "; this kernel has no 802.1Q (module 8021q not loaded)"),
        has_8021q ? "systemctl restart static-macvlan   (it recreates the VLAN link)"
                  : "modprobe 8021q && systemctl restart static-macvlan");
  }
  if (options.promisc) {
    add("promisc", p.promisc, fmt::format("{} is {}promiscuous", p.name, p.promisc ? "" : "not "),
        "ip link set " + p.name + " promisc on");
  }
  if (options.mtu) {
    add("mtu", *options.mtu <= p.mtu, fmt::format("network MTU {} vs {} MTU {}", *options.mtu, p.name, p.mtu),
        fmt::format("ip link set {} mtu {}", p.name, *options.mtu));
  }
  if (options.host_ip) {
    const std::string name = driver::HostLinkName(record.id);
    Result<std::optional<nl::LinkInfo>> host = links.Find(name);
    const bool ready = host.ok() && host->has_value() && (*host)->up;
    add("host_ip", ready,
        fmt::format("host link {} for {} is {}", name, options.host_ip->ToString(),
                    ready ? "up" : (host.ok() && host->has_value() ? "down" : "missing")),
        "systemctl restart static-macvlan   (it recreates the host link)");
  }
}

// The pools of `record` (either family) that overlap `other`.
std::vector<Prefix> PoolsOverlapping(const driver::NetworkRecord& record, const Prefix& other) {
  std::vector<Prefix> out;
  for (const auto* family : {&record.ipv4, &record.ipv6}) {
    for (const driver::IpData& data : *family) {
      if (data.pool.family() == other.family() && data.pool.Overlaps(other)) out.push_back(data.pool);
    }
  }
  return out;
}

// Two of our networks on one parent (and VLAN) with overlapping subnets share one wire.
void CheckOverlaps(const std::vector<std::pair<driver::NetworkRecord, driver::NetworkOptions>>& networks,
                   const std::function<std::string(const std::string&)>& label, std::vector<Check>& out) {
  for (size_t i = 0; i < networks.size(); ++i) {
    for (size_t j = i + 1; j < networks.size(); ++j) {
      const auto& [a, ao] = networks[i];
      const auto& [b, bo] = networks[j];
      if (ao.MacvlanParent() != bo.MacvlanParent()) continue;
      for (const auto* db : {&b.ipv4, &b.ipv6}) {
        for (const driver::IpData& y : *db) {
          for (const Prefix& x : PoolsOverlapping(a, y.pool)) {
            out.push_back({"overlap", label(a.id), false,
                           fmt::format("{} overlaps {} of {} on {}", x.ToString(), y.pool.ToString(), label(b.id),
                                       ao.MacvlanParent()),
                           "docker network rm " + label(b.id)});
          }
        }
      }
    }
  }
}

// A network of Docker's own macvlan or ipvlan driver on the same link (its `parent` option names
// it, VLAN included, e.g. eth1.228) with an overlapping subnet shares our wire and addresses.
void CheckOverlapsWithDockerDrivers(engine::DockerEngine& engine,
                                    const std::vector<std::pair<driver::NetworkRecord, driver::NetworkOptions>>& ours,
                                    const std::function<std::string(const std::string&)>& label,
                                    std::vector<Check>& out) {
  Result<std::vector<engine::DockerEngine::NetworkSummary>> all = engine.ListNetworks(kDoctorEngineTimeout);
  if (!all.ok()) return;  // the engine check already says it does not answer
  for (const auto& other : *all) {
    if (other.driver != "macvlan" && other.driver != "ipvlan") continue;
    auto parent = other.options.find("parent");
    if (parent == other.options.end()) continue;  // on a dummy link of its own: no shared wire
    for (const auto& [record, options] : ours) {
      if (options.MacvlanParent() != parent->second) continue;
      for (const std::string& subnet : other.network.subnets) {
        std::optional<Prefix> theirs = Prefix::Parse(subnet);
        if (!theirs) continue;
        for (const Prefix& pool : PoolsOverlapping(record, *theirs)) {
          out.push_back({"overlap", label(record.id), false,
                         fmt::format("{} overlaps {} of Docker's {} network {} on {}", pool.ToString(),
                                     theirs->ToString(), other.driver, other.network.name, parent->second),
                         "docker network rm " + other.network.name + "   (or move one network to another subnet)"});
        }
      }
    }
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

// --network named nothing here: a name only dockerd could tell while it does not answer is not
// said to be no network of ours.
Check NoSuchNetwork(const DoctorFlags& flags, bool engine_up) {
  if (engine_up) {
    return {"networks", flags.network, false, "no static-macvlan network of that name or id",
            "docker network ls --filter driver=static-macvlan"};
  }
  return {"networks", flags.network, false,
          fmt::format("no static-macvlan network with that id, and dockerd at {} does not answer to say which "
                      "network that name is",
                      flags.serve.docker_host),
          "start dockerd, or give the network's id: static-macvlan doctor --network ID"};
}

}  // namespace

Status Doctor(const DoctorFlags& flags) {
  std::vector<Check> checks;
  checks.push_back(DaemonAnswers(flags.serve.socket));
  Result<std::unique_ptr<engine::DockerEngine>> engine = engine::DockerEngine::Create(flags.serve.docker_host);
  checks.push_back(EngineAnswers(engine.ok() ? engine->get() : nullptr, flags.serve.docker_host));
  const bool engine_up = checks.back().ok;
  if (engine_up) checks.push_back(DockerdRegistered(**engine, flags.serve.socket));
  // The network records live in the state directory: never create one where there is none.
  if (!std::filesystem::is_directory(flags.serve.state_dir)) {
    checks.push_back({"state", "", false, "no state directory " + flags.serve.state_dir,
                      "static-macvlan doctor --state-dir DIR   (the daemon's --state-dir)"});
    return Report(checks, flags.json);
  }
  CheckStoreConsistent(flags.serve, checks);
  Result<StateStores> stores = OpenStateStores(flags.serve.state_dir, flags.serve.db_size_mib << 20);
  Result<driver::DriverSnapshot> state =
      stores.ok() ? stores->networks->Load() : Result<driver::DriverSnapshot>(stores.status());
  Result<std::unique_ptr<nl::LinkManager>> links = nl::LinkManager::Open();
  if (!state.ok() || !links.ok()) {
    checks.push_back(
        {"networks", "", false, (!state.ok() ? state.status() : links.status()).message(), "static-macvlan fsck"});
  } else {
    // Docker's name for a network when the engine answers, else its short id; asked once each.
    std::map<std::string, std::string> labels;
    auto label = [&](const std::string& id) -> std::string {
      if (auto known = labels.find(id); known != labels.end()) return known->second;
      std::string name = ShortId(id);
      if (engine_up) {
        if (Result<engine::EngineNetwork> n = (*engine)->InspectNetwork(id, kDoctorEngineTimeout); n.ok())
          name = n->name;
      }
      return labels[id] = name;
    };
    std::vector<std::pair<driver::NetworkRecord, driver::NetworkOptions>> networks;
    for (const driver::NetworkRecord& record : state->networks) {
      if (!flags.network.empty() && !record.id.starts_with(flags.network) && label(record.id) != flags.network) {
        continue;
      }
      Result<driver::NetworkOptions> options = driver::ParseNetworkOptions(record.options);
      if (!options.ok()) {
        checks.push_back({"options", label(record.id), false, options.status().message(), "docker network rm"});
        continue;
      }
      networks.emplace_back(record, *options);
      CheckNetworkLinks(**links, record, *options, label(record.id), checks);
    }
    if (!flags.network.empty() && networks.empty()) checks.push_back(NoSuchNetwork(flags, engine_up));
    CheckOverlaps(networks, label, checks);
    if (engine_up) CheckOverlapsWithDockerDrivers(**engine, networks, label, checks);
  }
  return Report(checks, flags.json);
}

}  // namespace smv::daemon

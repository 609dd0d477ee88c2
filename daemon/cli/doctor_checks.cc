#include "daemon/cli/doctor_checks.h"

#include <fmt/format.h>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <optional>

#include "common/log.h"
#include "daemon/plugin_registration.h"
#include "driver/subnet_overlap.h"

namespace smv::daemon {
namespace {

using Check = DoctorCheck;
using OurNetworks = std::vector<std::pair<driver::NetworkRecord, driver::NetworkOptions>>;
using NetworkLabel = std::function<std::string(const std::string&)>;
constexpr int kDockerSendsNames = 29;  // the first major version that sends names to the IPAM

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

// Two of our networks on one parent (and VLAN) with overlapping subnets share one wire.
void CheckOverlaps(const OurNetworks& networks, const NetworkLabel& label, std::vector<Check>& out) {
  for (size_t i = 0; i < networks.size(); ++i) {
    for (size_t j = i + 1; j < networks.size(); ++j) {
      const auto& [a, ao] = networks[i];
      const auto& [b, bo] = networks[j];
      if (!driver::ShareWire(ao, bo)) continue;
      for (const driver::SubnetOverlap& o : driver::OverlappingSubnets(b.Subnets(), a.Subnets())) {
        out.push_back({"overlap", label(a.id), false,
                       fmt::format("{} overlaps {} of {} on {}", o.other.ToString(), o.subnet.ToString(), label(b.id),
                                   ao.MacvlanParent()),
                       "docker network rm " + label(b.id)});
      }
    }
  }
}

// A network of Docker's own macvlan or ipvlan driver on the same link (its `parent` option names
// it, VLAN included, e.g. eth1.228) with an overlapping subnet shares our wire and addresses.
void CheckOverlapsWithDockerDrivers(const std::vector<DockerNetwork>& theirs_all, const OurNetworks& ours,
                                    const NetworkLabel& label, std::vector<Check>& out) {
  for (const DockerNetwork& other : theirs_all) {
    if (other.driver != "macvlan" && other.driver != "ipvlan") continue;
    if (other.parent.empty()) continue;  // on a dummy link of its own: no shared wire
    for (const auto& [record, options] : ours) {
      if (options.MacvlanParent() != other.parent) continue;
      for (const std::string& subnet : other.subnets) {
        std::optional<Prefix> theirs = Prefix::Parse(subnet);
        if (!theirs) continue;
        for (const driver::SubnetOverlap& o : driver::OverlappingSubnets(record.Subnets(), {*theirs})) {
          out.push_back({"overlap", label(record.id), false,
                         fmt::format("{} overlaps {} of Docker's {} network {} on {}", o.subnet.ToString(),
                                     o.other.ToString(), other.driver, other.name, other.parent),
                         "docker network rm " + other.name + "   (or move one network to another subnet)"});
        }
      }
    }
  }
}

// --network named nothing here: a name only dockerd could tell while it does not answer is not
// said to be no network of ours.
Check NoSuchNetwork(const NetworkCheckInputs& in) {
  if (in.engine != nullptr) {
    return {"networks", in.only, false, "no static-macvlan network of that name or id",
            "docker network ls --filter driver=static-macvlan"};
  }
  return {"networks", in.only, false,
          fmt::format("no static-macvlan network with that id, and dockerd at {} does not answer to say which "
                      "network that name is",
                      in.docker_host),
          "start dockerd, or give the network's id: static-macvlan doctor --network ID"};
}

}  // namespace

Check EngineAnswers(const Result<std::string>& version, const std::string& host) {
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
Check DockerdRegistered(const Result<engine::EnginePlugins>& plugins, const std::string& socket) {
  if (!plugins.ok()) return {"dockerd", "", false, plugins.status().message(), "docker info"};
  Registration judged = JudgeRegistration(*plugins, socket);
  return {"dockerd", "", judged.ok, std::move(judged.detail), std::move(judged.fix)};
}

std::vector<Check> CheckNetworks(const NetworkCheckInputs& in) {
  std::vector<Check> checks;
  // Docker's name for a network when the engine answers, else its short id; asked once each.
  std::map<std::string, std::string> labels;
  NetworkLabel label = [&](const std::string& id) -> std::string {
    if (auto known = labels.find(id); known != labels.end()) return known->second;
    std::string name = ShortId(id);
    if (in.engine != nullptr) {
      if (Result<engine::EngineNetwork> n = in.engine->InspectNetwork(id, kDoctorEngineTimeout); n.ok()) name = n->name;
    }
    return labels[id] = name;
  };
  OurNetworks networks;
  for (const driver::NetworkRecord& record : in.records) {
    if (!in.only.empty() && !record.id.starts_with(in.only) && label(record.id) != in.only) continue;
    Result<driver::NetworkOptions> options = driver::ParseNetworkOptions(record.options);
    if (!options.ok()) {
      checks.push_back({"options", label(record.id), false, options.status().message(), "docker network rm"});
      continue;
    }
    networks.emplace_back(record, *options);
    CheckNetworkLinks(*in.links, record, *options, label(record.id), checks);
  }
  if (!in.only.empty() && networks.empty()) checks.push_back(NoSuchNetwork(in));
  CheckOverlaps(networks, label, checks);
  CheckOverlapsWithDockerDrivers(in.docker_networks, networks, label, checks);
  return checks;
}

}  // namespace smv::daemon

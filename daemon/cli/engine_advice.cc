#include "daemon/cli/engine_advice.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>

namespace smv::daemon {
namespace {

// The leading decimal number of `text`, and what follows it.
std::optional<int> LeadingNumber(std::string_view& text) {
  int value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end == text.data()) return std::nullopt;
  text.remove_prefix(static_cast<size_t>(end - text.data()));
  return value;
}

bool Ours(const std::string& driver, const std::set<std::string>& our_drivers) { return our_drivers.contains(driver); }

const EngineNetworkView* FindNetwork(const std::vector<EngineNetworkView>& networks, const std::string& name) {
  const auto it = std::find_if(networks.begin(), networks.end(), [&](const auto& n) { return n.name == name; });
  return it == networks.end() ? nullptr : &*it;
}

std::string AnyOf(const std::set<std::string>& names) {
  return names.empty() ? std::string("static-macvlan") : *names.begin();
}

Advice ConfigFromAdvice(const EngineNetworkView& swarm_net, const std::vector<EngineNetworkView>& networks,
                        const std::set<std::string>& our_drivers) {
  const std::string& cfg = swarm_net.config_from;
  const EngineNetworkView* config = FindNetwork(networks, cfg);
  const std::string create = fmt::format(
      "docker network create --config-only --ipam-driver {} --subnet SUBNET --ip-range THIS-NODE'S-RANGE "
      "-o parent=PARENT {}   (on this node)",
      AnyOf(our_drivers), cfg);
  if (config == nullptr || !config->config_only) {
    return {"swarm", swarm_net.name, false,
            fmt::format("swarm network {} takes its settings from {}, and this node has no config-only network {}: "
                        "no task of it can start here",
                        swarm_net.name, cfg, cfg),
            create};
  }
  if (!Ours(config->ipam_driver, our_drivers)) {
    return {"swarm", swarm_net.name, false,
            fmt::format("config-only network {} uses IPAM driver \"{}\": each node allocates on its own and two "
                        "nodes can hand out one address; our IPAM with the fleet's shared book cannot",
                        cfg, config->ipam_driver.empty() ? "default" : config->ipam_driver),
            fmt::format("docker network rm {} && {}", cfg, create)};
  }
  return {"swarm", swarm_net.name, true,
          fmt::format("swarm network {} takes its settings from {} (config-only, IPAM {})", swarm_net.name, cfg,
                      config->ipam_driver),
          ""};
}

}  // namespace

std::optional<EngineVersion> ParseEngineVersion(std::string_view text) {
  EngineVersion v;
  const std::optional<int> major = LeadingNumber(text);
  if (!major || text.empty() || text.front() != '.') return std::nullopt;
  text.remove_prefix(1);
  const std::optional<int> minor = LeadingNumber(text);
  if (!minor) return std::nullopt;
  v.major = *major;
  v.minor = *minor;
  if (!text.empty() && text.front() == '.') {
    text.remove_prefix(1);
    v.patch = LeadingNumber(text).value_or(0);
  }
  return v;
}

std::optional<Advice> EngineVersionDefect(const EngineVersion& version) {
  if (version.major != 29 || version.minor != 0 || version.patch > 2) return std::nullopt;
  return Advice{"engine", "", false,
                fmt::format("Docker {}.{}.{} crashes dockerd with remote network drivers such as this one (moby#51557)",
                            version.major, version.minor, version.patch),
                "upgrade Docker to 29.0.3 or later"};
}

std::vector<Advice> GatewayAdvice(const EngineVersion& version, const std::vector<EngineNetworkView>& networks,
                                  const std::set<std::string>& our_drivers) {
  std::vector<Advice> out;
  if (version.major < 29) return out;
  for (const EngineNetworkView& n : networks) {
    if (!Ours(n.driver, our_drivers) || n.config_only) continue;
    const bool any_missing = std::any_of(n.gateways.begin(), n.gateways.end(), [](const auto& g) { return g.empty(); });
    if (!any_missing) continue;
    // A warning, not a failure: a network that needs no way off the VLAN is fine without one.
    out.push_back({"gateway", n.name, true,
                   fmt::format("warning: Docker {} gives a macvlan network no default gateway unless --gateway is "
                               "set, and {} has a subnet without one: its containers get no default route",
                               version.major, n.name),
                   ""});
  }
  return out;
}

std::vector<Advice> SwarmNetworkAdvice(const std::vector<EngineNetworkView>& networks,
                                       const std::set<std::string>& our_drivers) {
  std::vector<Advice> out;
  for (const EngineNetworkView& n : networks) {
    if (n.scope != "swarm" || !Ours(n.driver, our_drivers)) continue;
    if (n.config_from.empty()) {
      out.push_back({"swarm", n.name, false,
                     fmt::format("swarm network {} was created without --config-from: swarm drops -o and "
                                 "--ipam-driver given on it, so its tasks get Docker's default pool, not ours",
                                 n.name),
                     fmt::format("docker network rm {0}; on every node: docker network create --config-only "
                                 "--ipam-driver {1} --subnet SUBNET -o parent=PARENT {0}-config; then on a manager: "
                                 "docker network create -d {1} --scope swarm --config-from {0}-config {0}",
                                 n.name, n.driver)});
      continue;
    }
    out.push_back(ConfigFromAdvice(n, networks, our_drivers));
  }
  return out;
}

std::vector<Advice> SwarmNodeAdvice(const std::vector<SwarmNodeView>& nodes, const std::set<std::string>& our_drivers,
                                    const std::string& plugin_hint) {
  std::vector<Advice> out;
  for (const SwarmNodeView& node : nodes) {
    if (node.state != "ready" || node.availability != "active") continue;
    const bool has = std::any_of(node.network_plugins.begin(), node.network_plugins.end(),
                                 [&](const std::string& p) { return our_drivers.contains(p); });
    if (has) {
      out.push_back({"swarm", "", true, fmt::format("node {} ({}) has the plugin", node.hostname, node.role), ""});
      continue;
    }
    out.push_back({"swarm", "", false,
                   fmt::format("node {} ({}) does not report the plugin: swarm places no task of our networks there",
                               node.hostname, node.role),
                   fmt::format("on {}: {}   (or drain it: docker node update --availability drain {})", node.hostname,
                               plugin_hint, node.hostname)});
  }
  return out;
}

}  // namespace smv::daemon

#pragma once
// What doctor says about the engine beyond "it answers": known defects of its version, what a
// version changed for our networks, and a swarm's setup (config-only networks on each node, the
// plugin on every node that may run a task). Pure: the engine's answers in, advice out.

#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace smv::daemon {

struct EngineVersion {
  int major = 0;
  int minor = 0;
  int patch = 0;
};

// "29.0.1", "20.10.24+dfsg1", "29.0.0-rc.2" -> {29, 0, 1}, ...; nullopt when it does not start with
// MAJOR.MINOR.
std::optional<EngineVersion> ParseEngineVersion(std::string_view text);

// One line of doctor's answer.
struct Advice {
  std::string what;     // "engine", "swarm", "gateway"
  std::string network;  // "" for host-wide advice
  bool ok = true;
  std::string detail;
  std::string fix;  // a command or the step that fixes it, for failures
};

// Docker 29.0.0-29.0.2 crash dockerd with any remote network driver (fixed in 29.0.3, moby#51557).
std::optional<Advice> EngineVersionDefect(const EngineVersion& version);

// A network of ours as the engine lists it (GET /networks).
struct EngineNetworkView {
  std::string name;
  std::string driver;
  std::string scope;        // "local", "swarm"
  std::string config_from;  // the config-only network a swarm network takes its settings from
  bool config_only = false;
  std::string ipam_driver;
  std::vector<std::string> gateways;  // IPAM.Config[].Gateway, "" where none was given
};

// Docker >= 29 gives a macvlan network no default gateway unless --gateway is set: a warning (not a
// failure) for each of our networks with a subnet and no gateway.
std::vector<Advice> GatewayAdvice(const EngineVersion& version, const std::vector<EngineNetworkView>& networks,
                                  const std::set<std::string>& our_drivers);

// Swarm networks of ours this node knows: each needs --config-from (else Docker's default pool
// allocates, moby#34203), and the config-only network it names must exist here and use our IPAM
// (else each node allocates on its own and two nodes hand out one address, moby#49921).
std::vector<Advice> SwarmNetworkAdvice(const std::vector<EngineNetworkView>& networks,
                                       const std::set<std::string>& our_drivers);

// A swarm node as a manager lists it (GET /nodes).
struct SwarmNodeView {
  std::string hostname;
  std::string role;                          // "manager", "worker"
  std::string availability;                  // "active", "pause", "drain"
  std::string state;                         // "ready", "down", ...
  std::vector<std::string> network_plugins;  // Description.Engine.Plugins of Type "Network"
};

// Swarm places a task of a network only on nodes whose engine reports its driver: every active,
// ready node (managers too) without ours is named, with the command that fixes it.
std::vector<Advice> SwarmNodeAdvice(const std::vector<SwarmNodeView>& nodes, const std::set<std::string>& our_drivers,
                                    const std::string& plugin_hint);

}  // namespace smv::daemon

#pragma once
// The checks of `static-macvlan doctor` on given inputs: the engine's answers, the stored
// networks, the kernel's links (LinkOps) and Docker's own networks. doctor.cc gathers the inputs
// from the real engine, state directory and kernel; tests give fakes.

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "driver/driver_service.h"
#include "driver/netlink/link_ops.h"
#include "driver/network_options.h"
#include "engine/engine_api.h"

namespace smv::daemon {

// How long doctor waits for each answer of the engine (it may be starting).
inline constexpr Millis kDoctorEngineTimeout{3000};

struct DoctorCheck {
  std::string what;     // "daemon", "engine", "state", "parent", ...
  std::string network;  // "" for host-wide checks
  bool ok = true;
  std::string detail;
  std::string fix;  // a command, for failures
};

// The engine check from its GET /version answer; `host` is --docker-host.
DoctorCheck EngineAnswers(const Result<std::string>& version, const std::string& host);
// Whether dockerd sends the daemon at `socket` its calls, from what the engine says of its plugins.
DoctorCheck DockerdRegistered(const Result<engine::EnginePlugins>& plugins, const std::string& socket);

// A network of Docker's own drivers (GET /networks), for the overlap check.
struct DockerNetwork {
  std::string name;
  std::string driver;                // "macvlan", "ipvlan", "bridge", ...
  std::string parent;                // its -o parent, "" when it has none
  std::vector<std::string> subnets;  // as Docker lists them
};

struct NetworkCheckInputs {
  std::vector<driver::NetworkRecord> records;  // the stored networks
  std::string only;                            // --network: id, id prefix or name; "" = all
  nl::LinkOps* links = nullptr;                // the kernel's links as they are now
  // The engine when it answers (networks are shown by their Docker names), else null (short ids).
  engine::EngineApi* engine = nullptr;
  std::string docker_host;                     // --docker-host, named when it does not answer
  std::vector<DockerNetwork> docker_networks;  // Docker's own networks (empty when the engine is down)
};

// Per network: its options, its links (parent up, carrier, VLAN, promiscuous mode, MTU, host
// link), then overlaps between our networks and with Docker's macvlan/ipvlan networks on one wire.
std::vector<DoctorCheck> CheckNetworks(const NetworkCheckInputs& in);

}  // namespace smv::daemon

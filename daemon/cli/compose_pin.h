#pragma once
// `static-macvlan compose pin`: engines before Docker 29 do not tell the IPAM which container an
// address is for, and compose v2 starts a project's services in parallel, so their starts are
// ambiguous and such services drift to unreserved addresses. Pinning writes a compose override
// that gives each service its reserved address as ipv4_address / ipv6_address: a requested
// address names its container (the one that asked for it), so from the next `up` on every
// service keeps its address on every engine. The MAC follows the address (it is derived from it).

#include <nlohmann/json.hpp>

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "engine/engine_api.h"

namespace smv::daemon {

struct PinReservation {
  std::string name;     // container name
  std::string address;  // reserved address
  std::string pool;     // pool id: "SUBNET" or "SUBNET range RANGE"
  std::string mac;      // the MAC the name had at its last start, "" when none is known
};

struct PinnedProject {
  nlohmann::json override_file;    // {"services": {SERVICE: {"networks": {KEY: {"ipv4_address": ...}}}}}
  std::vector<std::string> notes;  // what was not pinned, and why
  int pinned = 0;                  // addresses written
};

// Engine API 1.52 (Docker 29) sets a container's MAC only per endpoint (moby#51189): there the
// pin also writes each reservation's MAC as services.<s>.networks.<n>.mac_address.
bool MacIsPerEndpointOnly(std::string_view api_version);

// `networks` by Docker network name: those the project's containers are on. Containers of other
// projects are ignored; kNotFound when the project has none. `mac_per_endpoint`: write
// mac_address beside each network's addresses (MacIsPerEndpointOnly of the engine's API).
Result<PinnedProject> PinComposeProject(const std::string& project,
                                        const std::vector<engine::EngineContainer>& containers,
                                        const std::map<std::string, engine::EngineNetwork>& networks,
                                        const std::vector<PinReservation>& reservations, bool mac_per_endpoint = false);

}  // namespace smv::daemon

#include "daemon/cli/compose_pin.h"

#include <charconv>

#include <fmt/format.h>

#include "common/ip.h"

namespace smv::daemon {
namespace {

constexpr const char* kProjectLabel = "com.docker.compose.project";
constexpr const char* kServiceLabel = "com.docker.compose.service";
constexpr const char* kNumberLabel = "com.docker.compose.container-number";
constexpr const char* kNetworkKeyLabel = "com.docker.compose.network";

std::string Label(const std::map<std::string, std::string>& labels, const char* key) {
  auto it = labels.find(key);
  return it == labels.end() ? "" : it->second;
}

// The subnet of a pool id ("192.0.2.0/24 range 192.0.2.0/26" -> 192.0.2.0/24).
std::optional<Prefix> PoolSubnet(const std::string& pool) { return Prefix::Parse(pool.substr(0, pool.find(' '))); }

bool OnNetwork(const PinReservation& r, const engine::EngineNetwork& network) {
  std::optional<Prefix> pool = PoolSubnet(r.pool);
  if (!pool) return false;
  for (const std::string& subnet : network.subnets) {
    std::optional<Prefix> s = Prefix::Parse(subnet);
    if (s && *s == *pool) return true;
  }
  return false;
}

}  // namespace

bool MacIsPerEndpointOnly(std::string_view api_version) {
  constexpr int kFirstMinor = 52;  // API 1.52, Docker 29
  int major = 0;
  int minor = 0;
  const char* end = api_version.data() + api_version.size();
  const auto [dot, major_error] = std::from_chars(api_version.data(), end, major);
  if (major_error != std::errc() || dot == end || *dot != '.') return false;
  const auto [rest, minor_error] = std::from_chars(dot + 1, end, minor);
  if (minor_error != std::errc()) return false;
  return major > 1 || (major == 1 && minor >= kFirstMinor);
}

Result<PinnedProject> PinComposeProject(const std::string& project,
                                        const std::vector<engine::EngineContainer>& containers,
                                        const std::map<std::string, engine::EngineNetwork>& networks,
                                        const std::vector<PinReservation>& reservations, bool mac_per_endpoint) {
  PinnedProject pin;
  pin.override_file = {{"services", nlohmann::json::object()}};
  bool any = false;
  for (const engine::EngineContainer& c : containers) {
    if (Label(c.labels, kProjectLabel) != project) continue;
    any = true;
    const std::string service = Label(c.labels, kServiceLabel);
    const std::string number = Label(c.labels, kNumberLabel);
    if (service.empty()) continue;
    if (!number.empty() && number != "1") {
      // ipv4_address is per service; replicas 2..n cannot each get their own.
      pin.notes.push_back(
          fmt::format("{}: replica {} of service {} is not pinned (ipv4_address is one per service; "
                      "give each replica its own service to pin it)",
                      c.name, number, service));
      continue;
    }
    for (const auto& [network_name, attachment] : c.networks) {
      auto network = networks.find(network_name);
      if (network == networks.end()) continue;
      std::string key = Label(network->second.labels, kNetworkKeyLabel);
      if (key.empty()) key = network_name;  // an external network: its key is usually its name
      for (const PinReservation& r : reservations) {
        if (r.name != c.name || !OnNetwork(r, network->second)) continue;
        std::optional<IpAddress> ip = IpAddress::Parse(r.address);
        if (!ip) continue;
        const char* field = ip->family() == Family::kV4 ? "ipv4_address" : "ipv6_address";
        nlohmann::json& entry = pin.override_file["services"][service]["networks"][key];
        entry[field] = r.address;
        if (mac_per_endpoint && !r.mac.empty()) entry["mac_address"] = r.mac;
        ++pin.pinned;
      }
    }
    if (!pin.override_file["services"].contains(service)) {
      pin.notes.push_back(
          fmt::format("{}: service {} has no reservation on a static-macvlan network", c.name, service));
    }
  }
  if (!any) {
    return NotFound(
        fmt::format("compose project \"{}\" has no containers (see: docker compose -p {} ps -a; "
                    "pin after the project's first up)",
                    project, project));
  }
  return pin;
}

}  // namespace smv::daemon

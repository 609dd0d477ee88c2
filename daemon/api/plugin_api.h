#pragma once
// The HTTP edge: turns requests into calls on the services and their results into responses.
// Each handler is decode (wire.h) -> service -> encode; work that crosses services lives in
// daemon/ (NetworkCreation, ReservationCommands, PoolGaugesNow, the Reconciler). Knows the
// libnetwork quirks (empty bodies, no Content-Type, errors as non-200 + {"Err": ...}).

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/status.h"
#include "daemon/api/wire.h"
#include "daemon/network_creation.h"
#include "daemon/reservation_commands.h"
#include "driver/driver_service.h"
#include "engine/engine_api.h"
#include "identity/identity_service.h"
#include "ipam/ipam_api.h"

namespace httplib {
class Server;
}

namespace smv::api {

inline constexpr const char* kPluginContentType = "application/vnd.docker.plugins.v1.2+json";
inline constexpr size_t kMaxBodyBytes = 1 << 20;  // dockerd's bodies are a few KiB
// The address spaces we hand dockerd (GetDefaultAddressSpaces); Docker's own IPAM uses
// "LocalDefault"/"GlobalDefault".
inline constexpr const char* kLocalAddressSpace = "static-macvlan-local";
inline constexpr const char* kGlobalAddressSpace = "static-macvlan-global";

using Handler = std::function<Result<nlohmann::json>(const nlohmann::json& request)>;

class PluginApi {
 public:
  // `identity` and `engine` may be null (no engine API: names only from Docker >= 29 requests).
  PluginApi(driver::DriverService& driver, ipam::IpamApi& ipam, identity::IdentityService* identity = nullptr,
            engine::EngineApi* engine = nullptr);

  // IpamDriver capability RequiresMACAddress. Off (the default): dockerd sends no MAC unless the
  // user gave one, and CreateEndpoint answers one derived from the sticky address, so a name keeps
  // its MAC. On: every RequestAddress carries a MAC, which identifies containers with a fixed
  // --mac-address, but dockerd invents a random one for every other container at each start.
  // Set before serving (dockerd reads it once, at activation).
  void SetMacIdentity(bool on) { mac_identity_ = on; }
  // The engine's address (serve --docker-host), named when it cannot be asked for a network's name.
  void SetEngineAddress(std::string docker_host) { reservations_.SetEngineAddress(std::move(docker_host)); }

  // Every path dockerd (and the CLI) may POST, mapped to its handler.
  std::vector<std::pair<std::string, Handler>> Routes();

  // Runs one request through the handler table; used by the server and by tests.
  // Returns the HTTP status and the JSON body. Thread-safe.
  std::pair<int, std::string> Dispatch(const std::string& path, const std::string& body);
  // GET /metrics: every metric of the process, with the pools as the address book holds them now.
  std::string RenderMetrics() const;

 private:
  std::vector<std::pair<std::string, Handler>> ActivationRoutes();
  std::vector<std::pair<std::string, Handler>> DriverRoutes();
  std::vector<std::pair<std::string, Handler>> IpamRoutes();
  std::vector<std::pair<std::string, Handler>> CliRoutes();

  // Decoded here; admitted and created across the services by NetworkCreation.
  Result<nlohmann::json> CreateNetwork(const nlohmann::json& req);
  Result<nlohmann::json> Join(const nlohmann::json& req);
  Result<nlohmann::json> RequestAddress(const nlohmann::json& req);

  driver::DriverService& driver_;
  ipam::IpamApi& ipam_;
  identity::IdentityService* identity_;
  daemon::NetworkCreation creation_;
  // The reservations CLI talks to the daemon through these (same socket, same 0600 mode).
  daemon::ReservationCommands reservations_;
  bool mac_identity_ = false;
  std::map<std::string, Handler> table_;
};

// Registers every route of `api` on `server`, plus a 404 {"Err"} for unknown paths and the
// body size cap.
void InstallRoutes(httplib::Server& server, PluginApi& api);

}  // namespace smv::api

#pragma once
// The HTTP edge: turns requests into calls on the services and their results into responses.
// Each handler is decode (wire.h) -> service -> encode. Knows the libnetwork quirks (empty
// bodies, no Content-Type, errors as non-200 + {"Err": ...}).

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/status.h"
#include "daemon/api/wire.h"
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
  void SetEngineAddress(std::string docker_host) { engine_address_ = std::move(docker_host); }

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

  Result<nlohmann::json> CreateNetwork(const nlohmann::json& req);
  // -o host_ip: leased in its pool so that no container gets it; returns the pool id.
  Result<std::string> ReserveHostAddress(const wire::CreateNetworkRequest& request, const IpAddress& host_ip);
  Result<nlohmann::json> Join(const nlohmann::json& req);
  Result<nlohmann::json> RequestAddress(const nlohmann::json& req);
  // The reservations CLI talks to the daemon through these (same socket, same 0600 mode).
  Result<nlohmann::json> ListReservations(const nlohmann::json& req);
  Result<nlohmann::json> Reserve(const nlohmann::json& req);
  Result<nlohmann::json> Release(const nlohmann::json& req);
  Result<nlohmann::json> ReleaseNode(const nlohmann::json& req);
  // Subnets of a Docker network given by name, id or id prefix. kUnavailable when only the engine
  // could tell what a name is and it does not answer.
  Result<std::vector<Prefix>> NetworkSubnets(const std::string& network);

  driver::DriverService& driver_;
  ipam::IpamApi& ipam_;
  identity::IdentityService* identity_;
  engine::EngineApi* engine_;
  bool mac_identity_ = false;
  std::string engine_address_;
  std::map<std::string, Handler> table_;
};

// A network whose pools did not come from our IPAM is refused with the corrected command, unless
// the user chose Docker's IPAM knowingly (-o ipam=docker). `has_pool(subnet)` tells whether our
// IPAM holds a pool for a subnet.
Status AdmitIpam(const wire::CreateNetworkRequest& request, const driver::NetworkOptions& options,
                 const std::function<bool(const Prefix&)>& has_pool);

// Registers every route of `api` on `server`, plus a 404 {"Err"} for unknown paths and the
// body size cap.
void InstallRoutes(httplib::Server& server, PluginApi& api);

}  // namespace smv::api

#pragma once
// The HTTP edge: the only code that knows HTTP, JSON field names and the libnetwork quirks
// (empty bodies, no Content-Type, errors as non-200 + {"Err": ...}). It turns requests into
// calls on the two services and their results into responses.

#include <functional>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "common/status.h"
#include "driver/driver_service.h"
#include "identity/identity_service.h"
#include "ipam/ipam_service.h"

namespace httplib {
class Server;
}

namespace smv::api {

inline constexpr const char* kPluginContentType = "application/vnd.docker.plugins.v1.2+json";
inline constexpr size_t kMaxBodyBytes = 1 << 20;  // dockerd's bodies are a few KiB

using Handler = std::function<Result<nlohmann::json>(const nlohmann::json& request)>;

class PluginApi {
 public:
  // `identity` may be null (no engine API: names only from Docker >= 29 requests).
  PluginApi(driver::DriverService& driver, ipam::IpamService& ipam,
            identity::IdentityService* identity = nullptr, identity::EngineApi* engine = nullptr);

  // Every path dockerd may POST, mapped to its handler.
  std::vector<std::pair<std::string, Handler>> Routes();

  // Runs one request through the handler table; used by the server and by tests.
  // Returns the HTTP status and the JSON body. Thread-safe.
  std::pair<int, std::string> Dispatch(const std::string& path, const std::string& body);

 private:
  Result<nlohmann::json> CreateNetwork(const nlohmann::json& req);
  Result<nlohmann::json> CreateEndpoint(const nlohmann::json& req);
  Result<nlohmann::json> Join(const nlohmann::json& req);
  Result<nlohmann::json> RequestPool(const nlohmann::json& req);
  Result<nlohmann::json> RequestAddress(const nlohmann::json& req);
  // The reservations CLI talks to the daemon through these (same socket, same 0600 mode).
  Result<nlohmann::json> ListReservations(const nlohmann::json& req);
  Result<nlohmann::json> Reserve(const nlohmann::json& req);
  Result<nlohmann::json> Release(const nlohmann::json& req);
  // Subnets of a Docker network given by name, id or id prefix.
  Result<std::vector<Prefix>> NetworkSubnets(const std::string& network);

  driver::DriverService& driver_;
  ipam::IpamService& ipam_;
  identity::IdentityService* identity_;
  identity::EngineApi* engine_;
  std::map<std::string, Handler> table_;
};

// Registers every route of `api` on `server`, plus a 404 {"Err"} for unknown paths and the
// body size cap.
void InstallRoutes(httplib::Server& server, PluginApi& api);

}  // namespace smv::api

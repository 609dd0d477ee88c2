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
  PluginApi(driver::DriverService& driver, ipam::IpamService& ipam);

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

  driver::DriverService& driver_;
  ipam::IpamService& ipam_;
  std::map<std::string, Handler> table_;
};

// Registers every route of `api` on `server`, plus a 404 {"Err"} for unknown paths and the
// body size cap.
void InstallRoutes(httplib::Server& server, PluginApi& api);

}  // namespace smv::api

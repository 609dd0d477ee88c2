#pragma once
// What the identity logic needs from the Docker Engine API, as plain values, behind an interface
// (DockerEngine implements it over the engine's unix socket; tests use a fake). Every call takes
// a timeout: during dockerd start-up the API accepts connections but answers nothing, and
// inspecting a container that is being started blocks until the start ends.

#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/status.h"

namespace smv::engine {

using Millis = smv::Millis;

struct EngineEndpoint {
  std::string endpoint_id;
  std::string name;  // container name, no leading "/"
  std::string ipv4;  // its addresses on the network, without prefix length; "" when none
  std::string ipv6;
  std::string container_id;  // the network inspect's key of the entry
};

struct EngineNetwork {
  std::string id;
  std::string name;
  std::vector<EngineEndpoint> endpoints;      // listed from Join on
  std::map<std::string, std::string> labels;  // e.g. com.docker.compose.network (its key in a compose file)
  std::vector<std::string> subnets;           // IPAM.Config[].Subnet
};

struct EngineContainerNetwork {
  std::string endpoint_id;  // "" while the container is starting
  std::string ipam_v4;      // the --ip / ipv4_address the user asked for, or ""
};

struct EngineContainer {
  std::string id;
  std::string name;                                        // no leading "/"
  std::map<std::string, EngineContainerNetwork> networks;  // by network name
  std::map<std::string, std::string> labels;               // e.g. com.docker.compose.service
  // "created" (also during a first start), "running", "exited" (also while one that ran starts
  // again), "dead", ...; "" when not said
  std::string state;
};

// What dockerd says about its plugins (for doctor).
struct EnginePlugins {
  std::vector<std::string> network_drivers;  // GET /info Plugins.Network: a legacy plugin is listed once a
                                             // network uses it, an enabled managed one by its name
  struct Managed {
    std::string id;
    std::string name;  // e.g. "static-macvlan:latest"
    bool enabled = false;
  };
  std::vector<Managed> managed;  // GET /plugins
};

class EngineApi {
 public:
  virtual ~EngineApi() = default;
  // OK when the engine answers GET /_ping within `timeout`; else why not.
  virtual Status Ping(Millis timeout) = 0;
  // GET /networks/<id-or-name>; never blocks on starting containers.
  virtual Result<EngineNetwork> InspectNetwork(const std::string& id_or_name, Millis timeout) = 0;
  // GET /containers/json?all=1; never blocks, shows a snapshot from before a start began.
  virtual Result<std::vector<EngineContainer>> ListContainers(Millis timeout) = 0;
  // The same list cut by the engine to the containers whose label `key` is exactly `value`
  // (GET /containers/json?all=1&filters={"label":["key=value"]}): one container's answer, not the
  // host's. Never blocks, like the whole list.
  virtual Result<std::vector<EngineContainer>> ListContainersLabelled(const std::string& key, const std::string& value,
                                                                      Millis timeout) = 0;
  // True when GET /containers/<id>/json answers within `timeout`, i.e. the container is not in
  // the middle of a start.
  virtual bool InspectAnswers(const std::string& container_id, Millis timeout) = 0;
  // The engine's version, e.g. "28.5.2" (GET /version). Not pure: an engine API that cannot tell
  // says so, and callers treat that as an engine that cannot be asked.
  virtual Result<std::string> ServerVersion(Millis /*timeout*/) {
    return Unavailable("engine API /version: not offered by this engine client");
  }
};

}  // namespace smv::engine

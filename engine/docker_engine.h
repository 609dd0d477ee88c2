#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "engine/engine_api.h"

namespace smv::engine {

// What `static-macvlan exec` needs of a container (GET /containers/<id-or-name>/json).
struct ContainerProcess {
  std::string id;
  std::string name;    // no leading "/"
  std::string status;  // "running", "exited", "created", ...
  int pid = 0;         // its init process on this host; 0 unless running
};

// A swarm node as a manager lists it (GET /nodes).
struct SwarmNode {
  std::string hostname;
  std::string role;                          // "manager", "worker"
  std::string availability;                  // "active", "pause", "drain"
  std::string state;                         // "ready", "down", ...
  std::vector<std::string> network_plugins;  // Description.Engine.Plugins of Type "Network"
};

struct SwarmView {
  std::string local_state;       // Swarm.LocalNodeState: "inactive", "active", "pending", ...
  bool manager = false;          // Swarm.ControlAvailable
  std::vector<SwarmNode> nodes;  // only on a manager
};

// EngineApi over the engine's unix socket with cpp-httplib; one short-lived connection per call,
// so calls may run in parallel from any thread.
class DockerEngine : public EngineApi {
 public:
  // `docker_host`: "unix:///var/run/docker.sock" (the only scheme supported).
  static Result<std::unique_ptr<DockerEngine>> Create(const std::string& docker_host);

  Status Ping(Millis timeout) override;
  Result<EngineNetwork> InspectNetwork(const std::string& id_or_name, Millis timeout) override;
  Result<std::vector<EngineContainer>> ListContainers(Millis timeout) override;
  Result<std::vector<EngineContainer>> ListContainersLabelled(const std::string& key, const std::string& value,
                                                              Millis timeout) override;
  bool InspectAnswers(const std::string& container_id, Millis timeout) override;
  // kNotFound for a container the engine does not know.
  Result<ContainerProcess> InspectContainer(const std::string& id_or_name, Millis timeout);
  // Every network the engine has (GET /networks), with its driver, options and subnets; the
  // endpoints are not listed.
  struct NetworkSummary {
    EngineNetwork network;
    std::string driver;
    std::map<std::string, std::string> options;
    std::string scope;        // "local", "swarm", "global"
    std::string config_from;  // ConfigFrom.Network: a swarm network's config-only network
    bool config_only = false;
    std::string ipam_driver;            // IPAM.Driver
    std::vector<std::string> gateways;  // IPAM.Config[].Gateway, "" where none is set
  };
  Result<std::vector<NetworkSummary>> ListNetworks(Millis timeout);
  // The network drivers dockerd has loaded and its managed plugins.
  Result<EnginePlugins> Plugins(Millis timeout);
  // The engine's version, e.g. "20.10.24" (GET /version).
  Result<std::string> Version(Millis timeout);
  Result<std::string> ServerVersion(Millis timeout) override { return Version(timeout); }
  // The engine's API version, e.g. "1.41" (GET /version ApiVersion).
  Result<std::string> ApiVersion(Millis timeout);
  // This engine's swarm: its state and, on a manager, every node (GET /info, GET /nodes).
  Result<SwarmView> Swarm(Millis timeout);

 private:
  explicit DockerEngine(std::string socket_path) : socket_path_(std::move(socket_path)) {}
  Result<std::string> Get(const std::string& path, Millis timeout);
  std::string socket_path_;
};

}  // namespace smv::engine

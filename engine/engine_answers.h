#pragma once
// The Engine API's JSON answers turned into plain values: pure functions on the answer's body,
// no I/O (DockerEngine asks, these read; tests feed captured-shaped answers). A body that is not
// JSON of the expected shape is kUnavailable naming the call; a field that is missing or of
// another type reads as empty, as older engines leave fields out.

#include <string>
#include <vector>

#include "engine/docker_engine.h"

namespace smv::engine {

Result<EngineNetwork> ParseNetworkInspect(const std::string& body);                           // GET /networks/<id>
Result<std::vector<DockerEngine::NetworkSummary>> ParseNetworkList(const std::string& body);  // GET /networks
Result<std::vector<EngineContainer>> ParseContainerList(const std::string& body);             // GET /containers/json
Result<ContainerProcess> ParseContainerInspect(const std::string& body);  // GET /containers/<id>/json
Result<std::string> ParseVersion(const std::string& body);                // GET /version
Result<std::string> ParseApiVersion(const std::string& body);             // GET /version: ApiVersion
// GET /info (its Plugins.Network) and GET /plugins.
Result<EnginePlugins> ParsePlugins(const std::string& info_body, const std::string& plugins_body);
Result<SwarmView> ParseSwarmInfo(const std::string& info_body);         // GET /info: Swarm
Result<std::vector<SwarmNode>> ParseNodeList(const std::string& body);  // GET /nodes

}  // namespace smv::engine

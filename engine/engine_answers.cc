#include "engine/engine_answers.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace smv::engine {
namespace {

using nlohmann::json;

std::string StripSlash(std::string name) {
  if (!name.empty() && name.front() == '/') name.erase(0, 1);
  return name;
}

// The string values of an object field such as "Labels" or "Options": a missing field or one of
// another type is empty, and a value that is not a string is left out (never an error: the
// engine's own fields). daemon/api/wire.cc's StringifiedMap is the strict reader of requests.
std::map<std::string, std::string> StringValuesOf(const json& j, const char* key) {
  std::map<std::string, std::string> out;
  if (!j.is_object() || !j.contains(key) || !j[key].is_object()) return out;
  for (const auto& [name, value] : j[key].items()) {
    if (value.is_string()) out[name] = value.get<std::string>();
  }
  return out;
}

enum class Shape { kObject, kArray };

// The engine's answer as JSON of the expected shape; `what` names it in the error.
Result<json> ParseAnswer(const std::string& body, Shape shape, const char* what) {
  json j = json::parse(body, nullptr, false);
  const bool shaped = shape == Shape::kObject ? j.is_object() : j.is_array();
  if (j.is_discarded() || !shaped) return Unavailable(fmt::format("engine API: {} is not JSON", what));
  return j;
}

std::string Str(const json& j, const char* key) {
  if (!j.is_object() || !j.contains(key) || !j[key].is_string()) return "";
  return j[key].get<std::string>();
}

// A network's id, name, labels and subnets (inspect and list share them).
EngineNetwork NetworkHead(const json& j) {
  EngineNetwork network{Str(j, "Id"), Str(j, "Name"), {}, StringValuesOf(j, "Labels"), {}};
  if (j.contains("IPAM") && j["IPAM"].is_object() && j["IPAM"].contains("Config") && j["IPAM"]["Config"].is_array()) {
    for (const json& config : j["IPAM"]["Config"]) {
      if (std::string subnet = Str(config, "Subnet"); !subnet.empty()) network.subnets.push_back(subnet);
    }
  }
  return network;
}

// j[key], or null when j is no object or has no such field.
json Field(const json& j, const char* key) { return j.is_object() && j.contains(key) ? j[key] : json(); }

// One network of GET /networks: the head, and what doctor's swarm and gateway checks read.
DockerEngine::NetworkSummary NetworkSummaryOf(const json& n) {
  DockerEngine::NetworkSummary out{NetworkHead(n), Str(n, "Driver"), StringValuesOf(n, "Options")};
  out.scope = Str(n, "Scope");
  out.config_from = Str(Field(n, "ConfigFrom"), "Network");
  out.config_only = n.contains("ConfigOnly") && n["ConfigOnly"].is_boolean() && n["ConfigOnly"].get<bool>();
  const json ipam = Field(n, "IPAM");
  out.ipam_driver = Str(ipam, "Driver");
  const json configs = Field(ipam, "Config");
  for (const json& c : configs.is_array() ? configs : json::array()) out.gateways.push_back(Str(c, "Gateway"));
  return out;
}

// A container's own name from the list's "Names": "/name", not a link alias "/other/alias" (the
// engine lists the names it is known by on links too, in no promised order). "" when there is none.
std::string OwnNameOf(const json& names) {
  for (const json& n : names.is_array() ? names : json::array()) {
    if (!n.is_string()) continue;
    const std::string name = StripSlash(n.get<std::string>());
    if (!name.empty() && name.find('/') == std::string::npos) return name;
  }
  return "";
}

// One container of GET /containers/json.
EngineContainer ContainerOf(const json& c) {
  EngineContainer container;
  container.id = Str(c, "Id");
  container.labels = StringValuesOf(c, "Labels");
  container.name = OwnNameOf(Field(c, "Names"));
  container.state = Str(c, "State");
  if (c.contains("NetworkSettings") && c["NetworkSettings"].is_object() && c["NetworkSettings"].contains("Networks") &&
      c["NetworkSettings"]["Networks"].is_object()) {
    for (const auto& [name, n] : c["NetworkSettings"]["Networks"].items()) {
      EngineContainerNetwork net{Str(n, "EndpointID"), ""};
      if (n.contains("IPAMConfig") && n["IPAMConfig"].is_object()) net.ipam_v4 = Str(n["IPAMConfig"], "IPv4Address");
      container.networks[name] = net;
    }
  }
  return container;
}

}  // namespace

Result<std::string> ParseVersion(const std::string& body) {
  Result<json> answer = ParseAnswer(body, Shape::kObject, "version");
  if (!answer.ok()) return answer.status();
  return Str(*answer, "Version");
}

Result<std::string> ParseApiVersion(const std::string& body) {
  Result<json> answer = ParseAnswer(body, Shape::kObject, "version");
  if (!answer.ok()) return answer.status();
  return Str(*answer, "ApiVersion");
}

Result<EnginePlugins> ParsePlugins(const std::string& info_body, const std::string& plugins_body) {
  Result<json> info = ParseAnswer(info_body, Shape::kObject, "info");
  if (!info.ok()) return info.status();
  Result<json> plugins = ParseAnswer(plugins_body, Shape::kArray, "plugin list");
  if (!plugins.ok()) return plugins.status();
  EnginePlugins out;
  const json& listed = (*info).contains("Plugins") ? (*info)["Plugins"] : json();
  if (listed.is_object() && listed.contains("Network") && listed["Network"].is_array()) {
    for (const json& driver : listed["Network"]) {
      if (driver.is_string()) out.network_drivers.push_back(driver.get<std::string>());
    }
  }
  for (const json& p : *plugins) {
    const bool enabled =
        p.is_object() && p.contains("Enabled") && p["Enabled"].is_boolean() && p["Enabled"].get<bool>();
    out.managed.push_back({Str(p, "Id"), Str(p, "Name"), enabled});
  }
  return out;
}

Result<EngineNetwork> ParseNetworkInspect(const std::string& body) {
  Result<json> answer = ParseAnswer(body, Shape::kObject, "network inspect");
  if (!answer.ok()) return answer.status();
  const json& j = *answer;
  EngineNetwork network = NetworkHead(j);
  if (j.contains("Containers") && j["Containers"].is_object()) {
    for (const auto& [key, entry] : j["Containers"].items()) {
      auto bare = [](std::string cidr) { return cidr.substr(0, cidr.find('/')); };
      network.endpoints.push_back(EngineEndpoint{Str(entry, "EndpointID"), StripSlash(Str(entry, "Name")),
                                                 bare(Str(entry, "IPv4Address")), bare(Str(entry, "IPv6Address")),
                                                 key});
    }
  }
  return network;
}

Result<std::vector<DockerEngine::NetworkSummary>> ParseNetworkList(const std::string& body) {
  Result<json> answer = ParseAnswer(body, Shape::kArray, "network list");
  if (!answer.ok()) return answer.status();
  std::vector<DockerEngine::NetworkSummary> out;
  for (const json& n : *answer) out.push_back(NetworkSummaryOf(n));
  return out;
}

Result<SwarmView> ParseSwarmInfo(const std::string& info_body) {
  Result<json> answer = ParseAnswer(info_body, Shape::kObject, "info");
  if (!answer.ok()) return answer.status();
  const json swarm = Field(*answer, "Swarm");
  SwarmView view;
  view.local_state = Str(swarm, "LocalNodeState");
  view.manager = swarm.is_object() && swarm.contains("ControlAvailable") && swarm["ControlAvailable"].is_boolean() &&
                 swarm["ControlAvailable"].get<bool>();
  return view;
}

Result<std::vector<SwarmNode>> ParseNodeList(const std::string& body) {
  Result<json> answer = ParseAnswer(body, Shape::kArray, "node list");
  if (!answer.ok()) return answer.status();
  std::vector<SwarmNode> out;
  for (const json& n : *answer) {
    const json description = Field(n, "Description");
    SwarmNode node{Str(description, "Hostname"),
                   Str(Field(n, "Spec"), "Role"),
                   Str(Field(n, "Spec"), "Availability"),
                   Str(Field(n, "Status"), "State"),
                   {}};
    const json plugins = Field(Field(description, "Engine"), "Plugins");
    for (const json& p : plugins.is_array() ? plugins : json::array()) {
      if (Str(p, "Type") == "Network") node.network_plugins.push_back(Str(p, "Name"));
    }
    out.push_back(std::move(node));
  }
  return out;
}

Result<std::vector<EngineContainer>> ParseContainerList(const std::string& body) {
  Result<json> answer = ParseAnswer(body, Shape::kArray, "container list");
  if (!answer.ok()) return answer.status();
  std::vector<EngineContainer> out;
  for (const json& c : *answer) out.push_back(ContainerOf(c));
  return out;
}

Result<ContainerProcess> ParseContainerInspect(const std::string& body) {
  Result<json> answer = ParseAnswer(body, Shape::kObject, "container inspect");
  if (!answer.ok()) return answer.status();
  const json& j = *answer;
  ContainerProcess out{Str(j, "Id"), StripSlash(Str(j, "Name")), "", 0};
  if (j.contains("State") && j["State"].is_object()) {
    const json& state = j["State"];
    out.status = Str(state, "Status");
    if (state.contains("Pid") && state["Pid"].is_number_integer()) out.pid = state["Pid"].get<int>();
  }
  return out;
}

}  // namespace smv::engine

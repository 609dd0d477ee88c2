#include "engine/docker_engine.h"

#include <fmt/format.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "common/metrics/metrics.h"
#include "common/unix_socket.h"

namespace smv::engine {
namespace {

using nlohmann::json;

std::string StripSlash(std::string name) {
  if (!name.empty() && name.front() == '/') name.erase(0, 1);
  return name;
}

// An object of strings such as "Labels" or "Options"; anything else (null, a wrong type) is empty,
// and a value that is not a string is left out.
std::map<std::string, std::string> StringMap(const json& j, const char* key) {
  std::map<std::string, std::string> out;
  if (!j.is_object() || !j.contains(key) || !j[key].is_object()) return out;
  for (const auto& [name, value] : j[key].items()) {
    if (value.is_string()) out[name] = value.get<std::string>();
  }
  return out;
}

enum class Shape { kObject, kArray };

// The engine's answer as JSON of the expected shape; `what` names it in the error.
Result<json> ParseAnswer(const Result<std::string>& body, Shape shape, const char* what) {
  if (!body.ok()) return body.status();
  json j = json::parse(*body, nullptr, false);
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
  EngineNetwork network{Str(j, "Id"), Str(j, "Name"), {}, StringMap(j, "Labels"), {}};
  if (j.contains("IPAM") && j["IPAM"].is_object() && j["IPAM"].contains("Config") && j["IPAM"]["Config"].is_array()) {
    for (const json& config : j["IPAM"]["Config"]) {
      if (std::string subnet = Str(config, "Subnet"); !subnet.empty()) network.subnets.push_back(subnet);
    }
  }
  return network;
}

}  // namespace

Result<std::unique_ptr<DockerEngine>> DockerEngine::Create(const std::string& docker_host) {
  constexpr std::string_view kUnix = "unix://";
  if (!docker_host.starts_with(kUnix) || docker_host.size() == kUnix.size()) {
    return InvalidArgument(
        fmt::format("invalid value \"{}\" for --docker-host: want unix:///path/to/docker.sock", docker_host));
  }
  return std::unique_ptr<DockerEngine>(new DockerEngine(docker_host.substr(kUnix.size())));
}

Result<std::string> DockerEngine::Get(const std::string& path, Millis timeout) {
  httplib::Client client(socket_path_);
  client.set_address_family(AF_UNIX);
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(timeout).count();
  client.set_connection_timeout(us / 1000000, us % 1000000);
  client.set_read_timeout(us / 1000000, us % 1000000);
  client.set_write_timeout(us / 1000000, us % 1000000);
  // httplib would send the socket path as Host, which Go's server rejects (400 invalid Host).
  httplib::Result r = client.Get(path.c_str(), httplib::Headers{{"Host", "docker"}});
  metrics::CountEngineCall(r && (r->status == 200 || r->status == 404));
  if (!r) {
    // httplib says only "Connection": the kernel tells why (no socket file, root's, nobody listening).
    const std::string why = r.error() == httplib::Error::Connection ? UnixConnectProblem(socket_path_) : "";
    return Unavailable(fmt::format("engine API {}: {}", path, why.empty() ? httplib::to_string(r.error()) : why));
  }
  if (r->status == 404) return NotFound(fmt::format("engine API {}: not found", path));
  if (r->status != 200) return Unavailable(fmt::format("engine API {}: HTTP {}", path, r->status));
  return r->body;
}

Status DockerEngine::Ping(Millis timeout) { return Get("/_ping", timeout).status(); }

Result<std::string> DockerEngine::Version(Millis timeout) {
  Result<json> answer = ParseAnswer(Get("/version", timeout), Shape::kObject, "version");
  if (!answer.ok()) return answer.status();
  const json& j = *answer;
  return Str(j, "Version");
}

Result<EnginePlugins> DockerEngine::Plugins(Millis timeout) {
  Result<json> info = ParseAnswer(Get("/info", timeout), Shape::kObject, "info");
  if (!info.ok()) return info.status();
  Result<json> plugins = ParseAnswer(Get("/plugins", timeout), Shape::kArray, "plugin list");
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

Result<EngineNetwork> DockerEngine::InspectNetwork(const std::string& id_or_name, Millis timeout) {
  Result<json> answer = ParseAnswer(Get("/networks/" + id_or_name, timeout), Shape::kObject, "network inspect");
  if (!answer.ok()) return answer.status();
  const json& j = *answer;
  EngineNetwork network = NetworkHead(j);
  if (j.contains("Containers") && j["Containers"].is_object()) {
    for (const auto& [key, entry] : j["Containers"].items()) {
      auto bare = [](std::string cidr) { return cidr.substr(0, cidr.find('/')); };
      network.endpoints.push_back(EngineEndpoint{Str(entry, "EndpointID"), StripSlash(Str(entry, "Name")),
                                                 bare(Str(entry, "IPv4Address")), bare(Str(entry, "IPv6Address"))});
    }
  }
  return network;
}

Result<std::vector<DockerEngine::NetworkSummary>> DockerEngine::ListNetworks(Millis timeout) {
  Result<json> answer = ParseAnswer(Get("/networks", timeout), Shape::kArray, "network list");
  if (!answer.ok()) return answer.status();
  const json& j = *answer;
  std::vector<NetworkSummary> out;
  for (const json& n : j) {
    out.push_back({NetworkHead(n), Str(n, "Driver"), StringMap(n, "Options")});
  }
  return out;
}

Result<std::vector<EngineContainer>> DockerEngine::ListContainers(Millis timeout) {
  Result<json> answer = ParseAnswer(Get("/containers/json?all=1", timeout), Shape::kArray, "container list");
  if (!answer.ok()) return answer.status();
  const json& j = *answer;
  std::vector<EngineContainer> out;
  for (const json& c : j) {
    EngineContainer container;
    container.id = Str(c, "Id");
    container.labels = StringMap(c, "Labels");
    if (c.contains("Names") && c["Names"].is_array() && !c["Names"].empty() && c["Names"][0].is_string()) {
      container.name = StripSlash(c["Names"][0].get<std::string>());
    }
    const json* nets = nullptr;
    if (c.contains("NetworkSettings") && c["NetworkSettings"].is_object() &&
        c["NetworkSettings"].contains("Networks") && c["NetworkSettings"]["Networks"].is_object()) {
      nets = &c["NetworkSettings"]["Networks"];
    }
    if (nets != nullptr) {
      for (const auto& [name, n] : nets->items()) {
        EngineContainerNetwork net{Str(n, "EndpointID"), ""};
        if (n.contains("IPAMConfig") && n["IPAMConfig"].is_object()) net.ipam_v4 = Str(n["IPAMConfig"], "IPv4Address");
        container.networks[name] = net;
      }
    }
    out.push_back(std::move(container));
  }
  return out;
}

bool DockerEngine::InspectAnswers(const std::string& container_id, Millis timeout) {
  Result<std::string> body = Get("/containers/" + container_id + "/json", timeout);
  return body.ok() || body.status().code() == Code::kNotFound;
}

Result<ContainerProcess> DockerEngine::InspectContainer(const std::string& id_or_name, Millis timeout) {
  Result<json> answer =
      ParseAnswer(Get("/containers/" + id_or_name + "/json", timeout), Shape::kObject, "container inspect");
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

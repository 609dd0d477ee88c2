#include "engine/docker_engine.h"

#include <fmt/format.h>
#include <httplib.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include <chrono>

#include "common/metrics/metrics.h"
#include "common/unix_socket.h"
#include "engine/engine_answers.h"

namespace smv::engine {

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
  UseUnixSocket(client, timeout);
  // httplib would send the socket path as Host, which Go's server rejects (400 invalid Host).
  const auto sent_at = std::chrono::steady_clock::now();
  httplib::Result r = client.Get(path.c_str(), httplib::Headers{{"Host", "docker"}});
  metrics::CountEngineCall(r && (r->status == 200 || r->status == 404));
  // Where a plugin call's time goes: the engine answers slowly while it starts containers.
  spdlog::debug(
      "engine GET {} status={} took_us={}", path, r ? r->status : 0,
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - sent_at).count());
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
  Result<std::string> body = Get("/version", timeout);
  if (!body.ok()) return body.status();
  return ParseVersion(*body);
}

Result<std::string> DockerEngine::ApiVersion(Millis timeout) {
  Result<std::string> body = Get("/version", timeout);
  if (!body.ok()) return body.status();
  return ParseApiVersion(*body);
}

Result<EnginePlugins> DockerEngine::Plugins(Millis timeout) {
  Result<std::string> info = Get("/info", timeout);
  if (!info.ok()) return info.status();
  Result<std::string> plugins = Get("/plugins", timeout);
  if (!plugins.ok()) return plugins.status();
  return ParsePlugins(*info, *plugins);
}

Result<SwarmView> DockerEngine::Swarm(Millis timeout) {
  Result<std::string> info = Get("/info", timeout);
  if (!info.ok()) return info.status();
  Result<SwarmView> view = ParseSwarmInfo(*info);
  if (!view.ok() || !view->manager) return view;
  Result<std::string> nodes = Get("/nodes", timeout);
  if (!nodes.ok()) return nodes.status();
  Result<std::vector<SwarmNode>> listed = ParseNodeList(*nodes);
  if (!listed.ok()) return listed.status();
  view->nodes = std::move(*listed);
  return view;
}

Result<EngineNetwork> DockerEngine::InspectNetwork(const std::string& id_or_name, Millis timeout) {
  Result<std::string> body = Get("/networks/" + id_or_name, timeout);
  if (!body.ok()) return body.status();
  return ParseNetworkInspect(*body);
}

Result<std::vector<DockerEngine::NetworkSummary>> DockerEngine::ListNetworks(Millis timeout) {
  Result<std::string> body = Get("/networks", timeout);
  if (!body.ok()) return body.status();
  return ParseNetworkList(*body);
}

Result<std::vector<EngineContainer>> DockerEngine::ListContainers(Millis timeout) {
  Result<std::string> body = Get("/containers/json?all=1", timeout);
  if (!body.ok()) return body.status();
  return ParseContainerList(*body);
}

Result<std::vector<EngineContainer>> DockerEngine::ListContainersLabelled(const std::string& key,
                                                                          const std::string& value, Millis timeout) {
  // The engine's label filter matches "key=value" exactly (its name filter would be a regex).
  const nlohmann::json label_filter = {{"label", nlohmann::json::array({key + "=" + value})}};
  const std::string filters = label_filter.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  Result<std::string> body =
      Get(httplib::append_query_params("/containers/json", {{"all", "1"}, {"filters", filters}}), timeout);
  if (!body.ok()) return body.status();
  return ParseContainerList(*body);
}

bool DockerEngine::InspectAnswers(const std::string& container_id, Millis timeout) {
  Result<std::string> body = Get("/containers/" + container_id + "/json", timeout);
  return body.ok() || body.status().code() == Code::kNotFound;
}

Result<ContainerProcess> DockerEngine::InspectContainer(const std::string& id_or_name, Millis timeout) {
  Result<std::string> body = Get("/containers/" + id_or_name + "/json", timeout);
  if (!body.ok()) return body.status();
  return ParseContainerInspect(*body);
}

}  // namespace smv::engine

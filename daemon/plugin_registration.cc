#include "daemon/plugin_registration.h"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>

namespace smv::daemon {
namespace {

// "static-macvlan", "static-macvlan:latest", "registry.example/static-macvlan:1.0".
bool NamesUs(const std::string& name) {
  // rfind gives npos without a '/', and npos + 1 wraps to 0: the whole name.
  const std::string base = name.substr(name.rfind('/') + 1);
  return base == "static-macvlan" || base.starts_with("static-macvlan:");
}

bool Listed(const engine::EnginePlugins& plugins, const std::string& name) {
  return std::find(plugins.network_drivers.begin(), plugins.network_drivers.end(), name) !=
         plugins.network_drivers.end();
}

}  // namespace

Registration JudgeRegistration(const engine::EnginePlugins& plugins, const std::string& socket) {
  const std::filesystem::path path(socket);
  // A managed plugin's socket is /run/docker/plugins/<plugin id>/static-macvlan.sock.
  const std::string plugin_id = path.parent_path().filename().string();
  for (const engine::EnginePlugins::Managed& managed : plugins.managed) {
    if (managed.id != plugin_id && !NamesUs(managed.name)) continue;
    if (!managed.enabled) {
      return {false, fmt::format("managed plugin {} is installed but disabled: dockerd sends it nothing", managed.name),
              "docker plugin enable " + managed.name};
    }
    if (Listed(plugins, managed.name)) {
      return {true, fmt::format("dockerd has managed plugin {} enabled among its network drivers", managed.name), ""};
    }
    return {false,
            fmt::format("managed plugin {} is enabled but dockerd lists no network driver of that name", managed.name),
            fmt::format("docker plugin inspect {}   (its config must declare docker.networkdriver/1.0)", managed.name)};
  }
  for (const std::string& driver : plugins.network_drivers) {
    if (NamesUs(driver)) return {true, fmt::format("dockerd lists {} among its network drivers", driver), ""};
  }
  if (path.parent_path() == std::filesystem::path(kPluginSocketDir).parent_path() && path.extension() == ".sock") {
    return {true,
            fmt::format("dockerd finds the driver {} at {} and loads it when a network first uses it",
                        path.stem().string(), socket),
            ""};
  }
  return {false,
          fmt::format("the daemon listens on {}, where dockerd does not look: it finds network plugins by their "
                      "socket in {}",
                      socket, kPluginSocketDir),
          fmt::format("static-macvlan serve --socket {}static-macvlan.sock", kPluginSocketDir)};
}

std::set<std::string> OurDriverNames(const engine::EnginePlugins& plugins, const std::string& socket) {
  const std::filesystem::path path(socket);
  const std::string plugin_id = path.parent_path().filename().string();
  std::set<std::string> names{"static-macvlan"};
  if (path.extension() == ".sock") names.insert(path.stem().string());
  for (const engine::EnginePlugins::Managed& managed : plugins.managed) {
    if (managed.id != plugin_id && !NamesUs(managed.name)) continue;
    names.insert(managed.name);
    if (managed.name.ends_with(":latest")) names.insert(managed.name.substr(0, managed.name.size() - 7));
  }
  return names;
}

}  // namespace smv::daemon

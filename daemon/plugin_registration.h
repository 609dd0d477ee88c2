#pragma once
// Does dockerd send this daemon its calls? A legacy plugin is found by its socket in
// /run/docker/plugins/ (the file name is the driver name) and loaded when a network first uses
// it; a managed plugin must be enabled. doctor asks the engine and judges here.

#include <set>
#include <string>

#include "engine/engine_api.h"

namespace smv::daemon {

inline constexpr const char* kPluginSocketDir = "/run/docker/plugins/";

struct Registration {
  bool ok = false;
  std::string detail;
  std::string fix;  // a command, when not ok
};

// `socket`: where the daemon listens.
Registration JudgeRegistration(const engine::EnginePlugins& plugins, const std::string& socket);

// The driver names networks of this daemon carry (`docker network create -d NAME`): the legacy
// socket's name, and each managed plugin of ours by its name with and without ":latest".
std::set<std::string> OurDriverNames(const engine::EnginePlugins& plugins, const std::string& socket);

}  // namespace smv::daemon

#pragma once
// EngineApi in memory: a scripted Docker engine for identity tests. `answering = false` plays
// dockerd during start-up (nothing answers); `starting` holds the containers whose inspect
// blocks because they are being started.

#include <atomic>
#include <mutex>
#include <set>

#include "engine/engine_api.h"

namespace smv::testing {

class FakeEngine : public engine::EngineApi {
 public:
  bool answering = true;
  std::map<std::string, engine::EngineNetwork> networks;  // by id
  std::vector<engine::EngineContainer> containers;
  std::set<std::string> starting;  // container ids whose inspect blocks
  std::atomic<int> calls{0};

  Status Ping(engine::Millis) override {
    ++calls;
    return answering ? OkStatus() : Unavailable("engine API /_ping: injected: not answering");
  }
  Result<engine::EngineNetwork> InspectNetwork(const std::string& id, engine::Millis) override {
    ++calls;
    if (!answering) return Unavailable("timed out");
    for (const auto& [nid, n] : networks) {
      if (nid == id || n.name == id) return n;
    }
    return NotFound("no such network");
  }
  Result<std::vector<engine::EngineContainer>> ListContainers(engine::Millis) override {
    ++calls;
    if (!answering) return Unavailable("timed out");
    return containers;
  }
  bool InspectAnswers(const std::string& id, engine::Millis) override {
    ++calls;
    return answering && !starting.contains(id);
  }
};

}  // namespace smv::testing

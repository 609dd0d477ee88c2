#pragma once
// EngineApi in memory: a scripted Docker engine for identity tests. `answering = false` plays
// dockerd during start-up (nothing answers); `starting` holds the containers whose inspect
// blocks because they are being started.

#include <atomic>
#include <mutex>
#include <set>
#include <thread>

#include "engine/engine_api.h"

namespace smv::testing {

class FakeEngine : public engine::EngineApi {
 public:
  bool answering = true;
  std::map<std::string, engine::EngineNetwork> networks;  // by id
  std::vector<engine::EngineContainer> containers;
  std::set<std::string> starting;  // container ids whose inspect blocks
  // Busy starting many containers: its container lists run out of time, its ping answers.
  std::atomic<int> lists_time_out{0};  // the next this many lists
  engine::Millis list_takes{0};        // a list answers after this long
  std::atomic<int> calls{0};
  std::atomic<int> containers_answered{0};  // containers in all list answers: what a busy host pays

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
    if (list_takes.count() > 0) std::this_thread::sleep_for(list_takes);
    if (lists_time_out > 0) {
      --lists_time_out;
      return Unavailable("engine API /containers/json?all=1: Read timed out");
    }
    containers_answered += static_cast<int>(containers.size());
    return containers;
  }
  // As dockerd's label filter: the label present with exactly that value.
  Result<std::vector<engine::EngineContainer>> ListContainersLabelled(const std::string& key, const std::string& value,
                                                                      engine::Millis) override {
    ++calls;
    if (!answering) return Unavailable("timed out");
    std::vector<engine::EngineContainer> labelled;
    for (const engine::EngineContainer& c : containers) {
      if (auto it = c.labels.find(key); it != c.labels.end() && it->second == value) labelled.push_back(c);
    }
    containers_answered += static_cast<int>(labelled.size());
    return labelled;
  }
  bool InspectAnswers(const std::string& id, engine::Millis) override {
    ++calls;
    return answering && !starting.contains(id);
  }
};

}  // namespace smv::testing

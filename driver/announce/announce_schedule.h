#pragma once
// Sends each joined endpoint's announcements `count` times, `interval` apart, from one thread:
// the first right after Join (dockerd is then moving the link into the container), the others
// while the container starts. Leave and DeleteEndpoint cancel what is left. A failed send is
// logged and counted, never returned: a container starts whether or not the LAN was told.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include "driver/announce/announcer.h"
#include "driver/announce/engine_announces.h"

namespace smv::driver {

class AnnounceSchedule {
 public:
  explicit AnnounceSchedule(Announcer& announcer) : announcer_(announcer) {}
  ~AnnounceSchedule();  // stops the thread; what is left is not sent
  AnnounceSchedule(const AnnounceSchedule&) = delete;
  AnnounceSchedule& operator=(const AnnounceSchedule&) = delete;

  // Replaces what `key` (an endpoint id) had scheduled.
  void Start(const std::string& key, std::vector<Announcement> what, uint32_t count,
             std::chrono::milliseconds interval);
  void Cancel(const std::string& key);
  // From now on, what `engine` says the engine sends itself is not sent (nullptr: send all).
  // Must outlive the schedule.
  void LeaveToEngine(EngineAnnounces* engine);
  // Tests: returns once nothing is scheduled.
  void WaitIdle();

 private:
  using Clock = std::chrono::steady_clock;
  struct Plan {
    std::vector<Announcement> what;
    uint32_t left = 0;
    std::chrono::milliseconds interval{};
    Clock::time_point next;
  };
  void Run(std::stop_token stop);

  Announcer& announcer_;
  std::mutex mu_;
  std::condition_variable_any changed_;
  std::map<std::string, Plan> plans_;
  uint64_t version_ = 0;  // counts plans started and cancelled: wakes a wait for the next due one
  EngineAnnounces* engine_ = nullptr;
  std::jthread worker_;  // started with the first plan; last, so it stops first
};

}  // namespace smv::driver

#include "driver/announce/announce_schedule.h"

#include <spdlog/spdlog.h>

#include "common/log.h"
#include "common/metrics/metrics.h"

namespace smv::driver {

// worker_ is the last member: its jthread asks Run to stop and joins before the plans go.
AnnounceSchedule::~AnnounceSchedule() = default;

void AnnounceSchedule::Start(const std::string& key, std::vector<Announcement> what, uint32_t count,
                             std::chrono::milliseconds interval) {
  if (count == 0 || what.empty()) return;
  {
    std::scoped_lock lock(mu_);
    plans_[key] = Plan{.what = std::move(what), .left = count, .interval = interval, .next = Clock::now()};
    ++version_;
    if (!worker_.joinable()) worker_ = std::jthread([this](std::stop_token stop) { Run(stop); });
  }
  changed_.notify_all();
}

void AnnounceSchedule::Cancel(const std::string& key) {
  {
    std::scoped_lock lock(mu_);
    plans_.erase(key);
    ++version_;
  }
  changed_.notify_all();
}

void AnnounceSchedule::LeaveToEngine(EngineAnnounces* engine) {
  std::scoped_lock lock(mu_);
  engine_ = engine;
}

void AnnounceSchedule::WaitIdle() {
  std::unique_lock lock(mu_);
  changed_.wait(lock, worker_.get_stop_token(), [this] { return plans_.empty(); });
}

void AnnounceSchedule::Run(std::stop_token stop) {
  std::unique_lock lock(mu_);
  while (!stop.stop_requested()) {
    if (plans_.empty()) {
      changed_.wait(lock, stop, [this] { return !plans_.empty(); });
      continue;
    }
    auto due = plans_.begin();
    for (auto it = plans_.begin(); it != plans_.end(); ++it) {
      if (it->second.next < due->second.next) due = it;
    }
    if (const Clock::time_point next = due->second.next; Clock::now() < next) {
      // A copy: the plan may be cancelled (erased) while this waits. A plan added or cancelled
      // meanwhile (version_) ends the wait: the next due plan is chosen again.
      const uint64_t seen = version_;
      changed_.wait_until(lock, stop, next, [this, seen] { return version_ != seen; });
      continue;
    }
    const std::string key = due->first;
    const std::vector<Announcement> what = due->second.what;
    if (--due->second.left == 0) {
      plans_.erase(due);
    } else {
      due->second.next += due->second.interval;
    }
    EngineAnnounces* const engine = engine_;
    lock.unlock();
    for (const Announcement& a : what) {
      if (engine != nullptr && engine->SendsItself(a)) {
        spdlog::debug("announcing {} of endpoint {} left to the engine (Docker {} sends its own)", a.address.ToString(),
                      ShortId(key), engine->Version().value_or("?"));
        continue;
      }
      const Status sent = announcer_.Send(a);
      metrics::CountAnnouncement(a.address.is_v4() ? "arp" : "na", sent.ok());
      if (!sent.ok()) {
        spdlog::warn("announcing {} of endpoint {} on {} failed: {}", a.address.ToString(), ShortId(key), a.link,
                     sent.message());
      }
    }
    lock.lock();
    changed_.notify_all();  // WaitIdle
  }
}

}  // namespace smv::driver

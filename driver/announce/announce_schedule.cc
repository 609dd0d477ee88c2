#include "driver/announce/announce_schedule.h"

#include <spdlog/spdlog.h>

#include "common/log.h"
#include "common/metrics/metrics.h"

namespace smv::driver {

AnnounceSchedule::~AnnounceSchedule() {
  {
    std::scoped_lock lock(mu_);
    stopping_ = true;
  }
  changed_.notify_all();
  if (worker_.joinable()) worker_.join();
}

void AnnounceSchedule::Start(const std::string& key, std::vector<Announcement> what, uint32_t count,
                             std::chrono::milliseconds interval) {
  if (count == 0 || what.empty()) return;
  {
    std::scoped_lock lock(mu_);
    plans_[key] = Plan{.what = std::move(what), .left = count, .interval = interval, .next = Clock::now()};
    if (!worker_.joinable()) worker_ = std::thread([this] { Run(); });
  }
  changed_.notify_all();
}

void AnnounceSchedule::Cancel(const std::string& key) {
  {
    std::scoped_lock lock(mu_);
    plans_.erase(key);
  }
  changed_.notify_all();
}

void AnnounceSchedule::LeaveToEngine(EngineAnnounces* engine) {
  std::scoped_lock lock(mu_);
  engine_ = engine;
}

void AnnounceSchedule::WaitIdle() {
  std::unique_lock lock(mu_);
  changed_.wait(lock, [this] { return plans_.empty() || stopping_; });
}

void AnnounceSchedule::Run() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    if (plans_.empty()) {
      changed_.wait(lock);
      continue;
    }
    auto due = plans_.begin();
    for (auto it = plans_.begin(); it != plans_.end(); ++it) {
      if (it->second.next < due->second.next) due = it;
    }
    if (const Clock::time_point next = due->second.next; Clock::now() < next) {
      // A copy: the plan may be cancelled (erased) while this waits, and wait_until reads its
      // deadline again after waking.
      changed_.wait_until(lock, next);
      continue;  // a plan may have been added or cancelled meanwhile
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

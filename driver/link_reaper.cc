#include "driver/link_reaper.h"

#include <spdlog/spdlog.h>

namespace smv::driver {

LinkReaper::LinkReaper(std::unique_ptr<nl::LinkOps> links)
    : links_(std::move(links)), worker_([this](const std::stop_token& stop) { Run(stop); }) {}

void LinkReaper::Delete(std::string name) {
  {
    std::scoped_lock lock(mu_);
    queue_.push_back(std::move(name));
  }
  changed_.notify_all();
}

void LinkReaper::Drain() {
  std::unique_lock lock(mu_);
  changed_.wait(lock, [this] { return queue_.empty() && !busy_; });
}

void LinkReaper::Run(const std::stop_token& stop) {
  std::unique_lock lock(mu_);
  for (;;) {
    changed_.wait(lock, stop, [this] { return !queue_.empty(); });
    if (queue_.empty()) return;  // stop requested, and nothing left to delete
    const std::string name = std::move(queue_.front());
    queue_.pop_front();
    busy_ = true;
    lock.unlock();
    DeleteOne(name);
    lock.lock();
    busy_ = false;
    changed_.notify_all();
  }
}

void LinkReaper::DeleteOne(const std::string& name) {
  if (Status s = links_->Delete(name); s.code() == Code::kFailedPrecondition) {
    spdlog::warn("{}", s.message());  // another instance's link (link_ops.h): not ours to delete
  } else if (!s.ok() && s.code() != Code::kNotFound) {
    spdlog::warn("link {} not deleted (the next start sweeps it): {}", name, s.message());
  }
}

}  // namespace smv::driver

#pragma once
// The pause of ipam's worker threads (std::jthread): ends early when the thread is asked to stop.

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <stop_token>

namespace smv::ipam {

// Sleeps `period`; true when the stop was requested meanwhile.
inline bool StopRequestedWithin(std::stop_token stop, std::chrono::milliseconds period) {
  std::mutex mu;
  std::condition_variable_any wake;
  std::unique_lock lock(mu);
  return wake.wait_for(lock, stop, period, [&stop] { return stop.stop_requested(); });
}

}  // namespace smv::ipam

#pragma once
// The one "unavailable" gate of a store's callers. A call to a shared store that does not answer
// takes its whole budget; every caller queued behind it gets that answer at once instead of
// asking again and waiting a budget of its own. A caller notes seen() when it begins; a lock it
// waits for is given up as soon as an unavailable answer is noted after that, even while another
// caller holds the lock. (Waiting for the lock and checking after was not enough: a mutex is not
// fair, and under load a waiter was overtaken by a caller that began after the failure and
// started a reload of its own: the refusal came after two budgets, 14 s, not one.)

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <type_traits>

#include "common/status.h"

namespace smv::ipam {

// The words of a store that does not answer, built here only: "shared address store unavailable
// (etcd: DETAIL); refusing to allocate to avoid duplicate addresses".
inline constexpr std::string_view kStoreUnavailable = "shared address store unavailable";
inline constexpr std::string_view kRefusingToAllocate = "; refusing to allocate to avoid duplicate addresses";

// An etcd client's kUnavailable answer ("etcd: DETAIL") as the shared store's, wrapped once: a
// message that already names the store is kept. Any other answer is returned as it is.
inline Status SharedStoreUnavailable(const Status& answer) {
  if (answer.code() != Code::kUnavailable || answer.message().starts_with(kStoreUnavailable)) return answer;
  const std::string_view detail = answer.message();
  return Status(answer.code(), std::string(kStoreUnavailable) + " (" + (detail.starts_with("etcd: ") ? "" : "etcd: ") +
                                   std::string(detail) + ")");
}

// What a change that could not read or write the store answers (the reason added once).
inline Status RefusingToAllocate(const Status& failed) {
  if (failed.ok() || failed.message().find(kRefusingToAllocate) != std::string::npos) return failed;
  return Status(failed.code(), failed.message() + std::string(kRefusingToAllocate));
}

class UnavailableGate {
 public:
  uint64_t seen() const { return noted_.load(); }

  // Notes `answer` when it is kUnavailable; any other answer is ignored.
  void Note(const Status& answer) {
    if (answer.code() != Code::kUnavailable) return;
    std::scoped_lock lock(mu_);
    last_ = answer;
    noted_.fetch_add(1);
  }

  // The unavailable answer noted after `seen`; OK when there is none.
  Status Since(uint64_t seen) const {
    if (noted_.load() == seen) return OkStatus();
    std::scoped_lock lock(mu_);
    return last_;
  }

  // Runs `call` holding `mu` (a timed mutex), unless an unavailable answer is noted after the
  // caller began and before it got `mu`: then that answer. Notes `call`'s own answer.
  template <class TimedMutex, class Call>
  auto Run(TimedMutex& mu, Call call) -> decltype(call()) {
    const uint64_t before = seen();
    std::unique_lock lock(mu, std::defer_lock);
    if (Status since = Acquire(lock, before); !since.ok()) return since;
    auto answer = call();
    if constexpr (std::is_same_v<decltype(answer), Status>) {
      Note(answer);
    } else {
      Note(answer.status());
    }
    return answer;
  }

  // Locks `lock` (made with std::defer_lock on a timed mutex) unless an unavailable answer is
  // noted after `seen` first: then that answer. OK: `lock` is held. Not OK: `lock` may be held
  // (the answer was noted before the lock was taken) or not; callers hold it in a unique_lock.
  template <class TimedLock>
  Status Acquire(TimedLock& lock, uint64_t seen) const {
    // A free mutex is taken without a timed wait: that reads the clock, on every change.
    if (lock.try_lock()) return Since(seen);
    while (!lock.try_lock_for(kPoll)) {
      if (Status since = Since(seen); !since.ok()) return since;
    }
    return Since(seen);  // noted while the lock was being taken: it holds for this caller too
  }

 private:
  // How often a waiter looks at the gate: short next to a store call's budget (seconds).
  static constexpr std::chrono::milliseconds kPoll{20};

  std::atomic<uint64_t> noted_ = 0;
  mutable std::mutex mu_;  // guards last_
  Status last_;
};

}  // namespace smv::ipam

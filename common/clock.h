#pragma once
// The project's one clock and one deadline helper. Waits and timeouts use the steady clock (a
// wall-clock jump must not end or stretch a wait); stored "since" times are Unix seconds.

#include <algorithm>
#include <chrono>
#include <cstdint>

namespace smv {

using Millis = std::chrono::milliseconds;
using SteadyClock = std::chrono::steady_clock;

// Now as Unix seconds: the "since" field of records and the reconciler's ages.
inline int64_t UnixSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// Time left until `until`, never below `floor`: 0 for "give up", or a caller's minimum for one
// last try (a store that must still be asked once, however late).
inline Millis TimeLeft(SteadyClock::time_point until, Millis floor = Millis(0)) {
  return std::max(floor, std::chrono::duration_cast<Millis>(until - SteadyClock::now()));
}

// Time since `started`, for latency metrics and logs.
inline double SecondsSince(SteadyClock::time_point started) {
  return std::chrono::duration<double>(SteadyClock::now() - started).count();
}

}  // namespace smv

// An LD_PRELOAD library for tests: a process's wall clock (CLOCK_REALTIME through clock_gettime,
// which std::chrono::system_clock uses, and time()) runs shifted by the whole seconds written in
// the file named by $SMV_CLOCK_SHIFT_FILE, read again every 100 ms, so a test can make one
// daemon's clock jump while it runs. Monotonic clocks are left alone, as a real jump leaves them.
// No libfaketime on the test hosts, and serve has no clock option: this is the seam.

#include <fcntl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>

namespace {

std::atomic<long> shift_seconds{0};
std::atomic<long> read_at_ms{-1000000};

int RawClock(clockid_t id, timespec* out) { return static_cast<int>(syscall(SYS_clock_gettime, id, out)); }

long Shift() {
  timespec now{};
  RawClock(CLOCK_MONOTONIC, &now);
  const long ms = now.tv_sec * 1000 + now.tv_nsec / 1000000;
  if (ms - read_at_ms.load() < 100) return shift_seconds;
  read_at_ms = ms;
  const char* path = std::getenv("SMV_CLOCK_SHIFT_FILE");
  const int fd = path != nullptr ? open(path, O_RDONLY | O_CLOEXEC) : -1;
  if (fd < 0) return shift_seconds;
  char text[32] = {};
  if (read(fd, text, sizeof text - 1) > 0) shift_seconds = std::strtol(text, nullptr, 10);
  close(fd);
  return shift_seconds;
}

}  // namespace

extern "C" {

int clock_gettime(clockid_t id, timespec* out) noexcept {
  const int rc = RawClock(id, out);
  if (rc == 0 && (id == CLOCK_REALTIME || id == CLOCK_REALTIME_COARSE)) out->tv_sec += Shift();
  return rc;
}

time_t time(time_t* out) noexcept {
  timespec now{};
  clock_gettime(CLOCK_REALTIME, &now);
  if (out != nullptr) *out = now.tv_sec;
  return now.tv_sec;
}

}  // extern "C"

#pragma once
// One writer per state directory. `serve` holds an exclusive flock on <state-dir>/lock for its
// whole life, taken before it opens or changes anything else, and refuses to start while another
// process serves its socket. A second `serve` on the same directory (on another socket, or the
// .deb service beside the managed plugin, which mounts the same host directory: flock holds across
// mount namespaces on one inode) is refused naming the holder's PID and socket, and changes
// nothing. fsck and doctor only read the state and never take the lock.

#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"

namespace smv::daemon {

// Who holds a state directory, as its lock file says (and /proc/locks, for the PID as this
// process sees it).
struct LockHolder {
  pid_t pid = 0;               // 0: unknown
  std::string socket;          // its --socket, as the host sees it when it could tell
  std::string managed_plugin;  // the Docker managed plugin id (64 hex digits), "" for a plain process
};

class StateLock {
 public:
  // Creates `state_dir` if it is missing (one level, as the store does), locks it and records this
  // process (PID, `socket`) in the lock file for whoever is refused. kFailedPrecondition naming
  // the holder while another process holds it; a clear error for a read-only or unwritable
  // directory.
  static Result<std::unique_ptr<StateLock>> Acquire(const std::string& state_dir, const std::string& socket);
  ~StateLock();  // releases it; the file stays (unlinking a lock file races with the next taker)
  StateLock(const StateLock&) = delete;
  StateLock& operator=(const StateLock&) = delete;

  static std::string LockPath(const std::string& state_dir) { return state_dir + "/lock"; }

 private:
  explicit StateLock(int fd) : fd_(fd) {}
  int fd_;
};

// The instance id of `state_dir`: 16 hex digits, made at the first start and kept in
// <state-dir>/instance-id. Call with the StateLock held.
Result<std::string> LoadOrCreateInstanceId(const std::string& state_dir);

// The owner tag the links of that instance carry (driver/netlink/link_ops.h).
std::string LinkOwnerTag(const std::string& instance_id);

// kFailedPrecondition naming the process when something accepts connections on `socket` (a live
// daemon); OK when nothing does (absent, or a stale socket file a crash left).
Status RefuseIfSocketServed(const std::string& socket);

// The Docker managed plugin id when `socket_dir` is the socket directory Docker mounts into a
// managed plugin (/run/docker/plugins, bound from the host's /run/docker/plugins/<id>), from the
// text of /proc/self/mountinfo; nullopt otherwise.
std::optional<std::string> ManagedPluginId(std::string_view mountinfo, std::string_view socket_dir);

}  // namespace smv::daemon

#include "daemon/state_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include "driver/netlink/link_ops.h"

namespace smv::daemon {
namespace {

// Where Docker mounts a managed plugin's socket directory (the host's /run/docker/plugins/<id>).
constexpr std::string_view kManagedPluginSocketDir = "/run/docker/plugins";
constexpr size_t kPluginIdDigits = 64;
constexpr size_t kInstanceIdDigits = 16;

bool IsHex(std::string_view s) {
  return !s.empty() && s.find_first_not_of("0123456789abcdef") == std::string_view::npos;
}

std::string ReadWhole(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

std::string DirOf(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

std::string BaseOf(const std::string& path) { return path.substr(path.rfind('/') + 1); }

// An error creating or opening something in the state directory, with what to do about it.
Status StateDirError(const std::string& state_dir, const std::string& path, int err) {
  if (err == EROFS) {
    return FailedPrecondition(
        fmt::format("--state-dir \"{}\" is on a read-only filesystem: serve writes its lock file ({}) and its "
                    "database there; mount it read-write or choose another --state-dir",
                    state_dir, path));
  }
  if (err == EACCES || err == EPERM) {
    return PermissionDenied(fmt::format("--state-dir \"{}\": cannot create {}: {} (serve runs as root)", state_dir,
                                        path, std::strerror(err)));
  }
  return FailedPrecondition(
      fmt::format("--state-dir \"{}\": cannot create {}: {}", state_dir, path, std::strerror(err)));
}

// The PID of the process holding a flock on `fd`'s file, as this process's PID namespace sees it
// (the holder may be a managed plugin with PID namespace of its own); 0 when /proc/locks does not say.
pid_t FlockHolderPid(int fd) {
  struct stat st {};
  if (fstat(fd, &st) != 0) return 0;
  const std::string want = fmt::format("{:02x}:{:02x}:{}", major(st.st_dev), minor(st.st_dev), st.st_ino);
  std::istringstream locks(ReadWhole("/proc/locks"));
  for (std::string line; std::getline(locks, line);) {
    // "1: FLOCK  ADVISORY  WRITE 1234 00:2a:5678 0 EOF"; waiters have "->" after the number.
    std::istringstream fields(line);
    std::string number, kind, advisory, mode, pid, inode;
    fields >> number >> kind >> advisory >> mode >> pid >> inode;
    if (kind == "FLOCK" && inode == want) return static_cast<pid_t>(std::atoi(pid.c_str()));
  }
  return 0;
}

// The holder of the lock on `fd`, from the text it wrote there (which it may not have written yet:
// it writes right after taking the lock, so wait a little for it).
LockHolder ReadHolder(int fd, const std::string& lock_path) {
  LockHolder holder;
  std::string text;
  for (int i = 0; i < 50 && text.empty(); ++i) {
    if (i > 0) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    text = ReadWhole(lock_path);
  }
  std::istringstream lines(text);
  for (std::string key, value; lines >> key >> value;) {
    if (key == "pid") holder.pid = static_cast<pid_t>(std::atoi(value.c_str()));
    if (key == "socket") holder.socket = value;
    if (key == "managed-plugin") holder.managed_plugin = value;
  }
  if (const pid_t seen = FlockHolderPid(fd); seen > 0) holder.pid = seen;
  return holder;
}

std::string HeldByAnotherMessage(const std::string& state_dir, const LockHolder& holder, bool self_is_plugin) {
  std::string who = holder.pid > 0 ? fmt::format("PID {}", holder.pid) : "PID unknown";
  who += holder.socket.empty() ? ", socket unknown" : fmt::format(", socket {}", holder.socket);
  if (!holder.managed_plugin.empty()) who += ": the managed plugin " + holder.managed_plugin.substr(0, 12);
  std::string message = fmt::format(
      "--state-dir \"{}\" is held by another static-macvlan serve ({}); one daemon per state directory, so this one "
      "stops here and has changed nothing. ",
      state_dir, who);
  if (!holder.managed_plugin.empty() || self_is_plugin) {
    return message +
           "One of them per host: the .deb service or the managed plugin (systemctl disable --now static-macvlan, "
           "or docker plugin disable static-macvlan)";
  }
  return message + "Stop that daemon first, or give this one its own --state-dir and --socket";
}

// Opens (creating) the lock file of `state_dir`, creating the directory first if it is missing.
Result<int> OpenLockFile(const std::string& state_dir) {
  if (mkdir(state_dir.c_str(), 0700) != 0 && errno != EEXIST) return StateDirError(state_dir, state_dir, errno);
  const std::string path = StateLock::LockPath(state_dir);
  const int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return StateDirError(state_dir, path, errno);
  return fd;
}

}  // namespace

std::optional<std::string> ManagedPluginId(std::string_view mountinfo, std::string_view socket_dir) {
  if (socket_dir != kManagedPluginSocketDir) return std::nullopt;
  std::optional<std::string> id;
  std::istringstream lines{std::string(mountinfo)};
  for (std::string line; std::getline(lines, line);) {
    // "36 35 0:25 /docker/plugins/<id> /run/docker/plugins rw,... - tmpfs tmpfs rw"
    std::istringstream fields(line);
    std::string mount_id, parent, device, root, mount_point;
    fields >> mount_id >> parent >> device >> root >> mount_point;
    if (mount_point != socket_dir) continue;
    // Docker's directory of that plugin is named by its id (<exec-root>/plugins/<id>). The last
    // mount on that point wins, as it hides the earlier ones.
    const std::string last = root.substr(root.rfind('/') + 1);
    id = last.size() == kPluginIdDigits && IsHex(last) ? std::optional(last) : std::nullopt;
  }
  return id;
}

Result<std::unique_ptr<StateLock>> StateLock::Acquire(const std::string& state_dir, const std::string& socket) {
  Result<int> fd = OpenLockFile(state_dir);
  if (!fd.ok()) return fd.status();
  const std::optional<std::string> plugin = ManagedPluginId(ReadWhole("/proc/self/mountinfo"), DirOf(socket));
  if (flock(*fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    if (err != EWOULDBLOCK) {
      close(*fd);
      return Internal(fmt::format("lock {}: {}", LockPath(state_dir), std::strerror(err)));
    }
    const LockHolder holder = ReadHolder(*fd, LockPath(state_dir));
    close(*fd);
    return FailedPrecondition(HeldByAnotherMessage(state_dir, holder, plugin.has_value()));
  }
  std::unique_ptr<StateLock> lock(new StateLock(*fd));
  // Who holds it, for whoever is refused. A managed plugin names its socket as the host sees it.
  std::string text =
      fmt::format("pid {}\nsocket {}\n", getpid(),
                  plugin ? fmt::format("{}/{}/{}", kManagedPluginSocketDir, *plugin, BaseOf(socket)) : socket);
  if (plugin) text += fmt::format("managed-plugin {}\n", *plugin);
  if (ftruncate(*fd, 0) != 0 || pwrite(*fd, text.data(), text.size(), 0) != static_cast<ssize_t>(text.size())) {
    return StateDirError(state_dir, LockPath(state_dir), errno);
  }
  return lock;
}

StateLock::~StateLock() { close(fd_); }

Result<std::string> LoadOrCreateInstanceId(const std::string& state_dir) {
  const std::string path = state_dir + "/instance-id";
  if (std::ifstream in(path); in.is_open()) {
    std::string id;
    std::getline(in, id);
    if (id.size() != kInstanceIdDigits || !IsHex(id)) {
      return FailedPrecondition(
          fmt::format("{} holds \"{}\", want {} hex digits: the links of this state directory are tagged with it "
                      "(static-macvlan:<id>, `ip -d link` shows it as their alias); write that id back",
                      path, id.substr(0, 40), kInstanceIdDigits));
    }
    return id;
  }
  std::random_device random;
  const std::string id = fmt::format("{:08x}{:08x}", random(), random());
  const std::string temp = path + ".new";
  const int fd = open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return StateDirError(state_dir, temp, errno);
  const std::string line = id + "\n";
  const bool written = write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size()) && fsync(fd) == 0;
  const int err = errno;
  close(fd);
  if (!written || rename(temp.c_str(), path.c_str()) != 0) {
    return StateDirError(state_dir, path, written ? errno : err);
  }
  return id;
}

std::string LinkOwnerTag(const std::string& instance_id) { return std::string(nl::kOwnerTagPrefix) + instance_id; }

Status RefuseIfSocketServed(const std::string& socket) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket.size() >= sizeof addr.sun_path) return OkStatus();  // too long: binding it reports that
  std::memcpy(addr.sun_path, socket.data(), socket.size());
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return Internal(fmt::format("probe --socket {}: {}", socket, std::strerror(errno)));
  const bool accepting = connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0 || errno == EAGAIN;
  ucred peer{};
  socklen_t size = sizeof peer;
  if (accepting && getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &peer, &size) != 0) peer.pid = 0;
  close(fd);
  if (!accepting) return OkStatus();  // nothing there, or a stale socket file: Bind replaces it
  std::string comm = peer.pid > 0 ? ReadWhole(fmt::format("/proc/{}/comm", peer.pid)) : "";
  if (!comm.empty() && comm.back() == '\n') comm.pop_back();
  return FailedPrecondition(fmt::format(
      "--socket {} is served by another process (PID {}{}); a second daemon would take over that daemon's links, so "
      "this one stops here and has changed nothing. Stop that daemon first, or give this one its own --socket and "
      "--state-dir",
      socket, peer.pid > 0 ? std::to_string(peer.pid) : "unknown", comm.empty() ? "" : ", " + comm));
}

}  // namespace smv::daemon

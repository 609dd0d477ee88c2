#include "daemon/state_lock.h"

#include <gtest/gtest.h>
#include <sched.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "tests/support/temp_dir.h"

namespace smv::daemon {
namespace {

namespace fs = std::filesystem;

const std::string kPluginId(64, 'a');

TEST(StateLockTest, ASecondLockIsRefusedNamingTheHolderUntilTheFirstIsReleased) {
  testing::TempDir dir;
  const std::string state = dir.Sub("state");  // missing: created, as the store would
  auto first = StateLock::Acquire(state, "/run/test/first.sock");
  ASSERT_TRUE(first.ok()) << first.status().message();
  EXPECT_TRUE(fs::is_directory(state));

  auto second = StateLock::Acquire(state, "/run/test/second.sock");
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), Code::kFailedPrecondition);
  const std::string said = second.status().message();
  EXPECT_NE(said.find(fmt::format("PID {}, socket /run/test/first.sock", getpid())), std::string::npos) << said;
  EXPECT_NE(said.find("--state-dir \"" + state + "\" is held by another static-macvlan serve"), std::string::npos)
      << said;
  EXPECT_EQ(said.find("the managed plugin"), std::string::npos) << said;
  // The refused one did not overwrite what the holder wrote.
  std::ifstream in(StateLock::LockPath(state));
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(in), {}),
            fmt::format("pid {}\nsocket /run/test/first.sock\n", getpid()));

  first->reset();
  EXPECT_TRUE(StateLock::Acquire(state, "/run/test/second.sock").ok());
}

// The managed plugin mounts the host's state directory: a holder that wrote it is the managed
// plugin is named so, with the rule for one host.
TEST(StateLockTest, AManagedPluginHolderIsNamedWithTheOneOfThemRule) {
  testing::TempDir dir;
  const std::string lock_path = StateLock::LockPath(dir.path());
  const int fd = open(lock_path.c_str(), O_RDWR | O_CREAT, 0600);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(flock(fd, LOCK_EX | LOCK_NB), 0);
  const std::string text = fmt::format(
      "pid 4242\nsocket /run/docker/plugins/{}/static-macvlan.sock\nmanaged-plugin {}\n", kPluginId, kPluginId);
  ASSERT_EQ(write(fd, text.data(), text.size()), static_cast<ssize_t>(text.size()));
  auto refused = StateLock::Acquire(dir.path(), "/run/docker/plugins/static-macvlan.sock");
  close(fd);
  ASSERT_FALSE(refused.ok());
  const std::string said = refused.status().message();
  // /proc/locks names this process (it holds the flock), as this PID namespace sees it.
  EXPECT_NE(said.find(fmt::format("PID {}, socket /run/docker/plugins/{}/static-macvlan.sock: the managed plugin "
                                  "aaaaaaaaaaaa",
                                  getpid(), kPluginId)),
            std::string::npos)
      << said;
  EXPECT_NE(said.find("One of them per host: the .deb service or the managed plugin"), std::string::npos) << said;
}

TEST(StateLockTest, ManagedPluginIdComesFromTheMountOfItsSocketDirectory) {
  const std::string plugin_mount =
      "40 30 0:25 /docker/plugins/" + kPluginId + " /run/docker/plugins rw,nosuid - tmpfs tmpfs rw\n";
  const std::string other = "30 1 8:1 / / rw - ext4 /dev/sda1 rw\n";
  EXPECT_EQ(ManagedPluginId(other + plugin_mount, "/run/docker/plugins"), kPluginId);
  EXPECT_EQ(ManagedPluginId(other + plugin_mount, "/run/other"), std::nullopt);
  // The .deb service: /run/docker/plugins is a plain directory of the host's /run.
  EXPECT_EQ(ManagedPluginId(other, "/run/docker/plugins"), std::nullopt);
  EXPECT_EQ(ManagedPluginId("40 30 0:25 /docker/plugins/short /run/docker/plugins rw - tmpfs tmpfs rw\n",
                            "/run/docker/plugins"),
            std::nullopt);
}

TEST(StateLockTest, InstanceIdIsMadeOnceAndKept) {
  testing::TempDir a, b;
  Result<std::string> id = LoadOrCreateInstanceId(a.path());
  ASSERT_TRUE(id.ok()) << id.status().message();
  EXPECT_EQ(id->size(), 16u);
  EXPECT_EQ(id->find_first_not_of("0123456789abcdef"), std::string::npos) << *id;
  EXPECT_EQ(*LoadOrCreateInstanceId(a.path()), *id);
  EXPECT_NE(*LoadOrCreateInstanceId(b.path()), *id);
  EXPECT_EQ(LinkOwnerTag(*id), "static-macvlan:" + *id);
  std::ofstream(a.Sub("instance-id")) << "not-an-id\n";
  Result<std::string> damaged = LoadOrCreateInstanceId(a.path());
  ASSERT_FALSE(damaged.ok());
  EXPECT_NE(damaged.status().message().find("holds \"not-an-id\", want 16 hex digits"), std::string::npos)
      << damaged.status().message();
}

int ListenOn(const std::string& path) {
  const int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || listen(fd, 4) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

TEST(StateLockTest, AServedSocketIsRefusedNamingItsProcessAndAStaleOneIsNot) {
  testing::TempDir dir;
  const std::string path = dir.Sub("smv.sock");
  EXPECT_TRUE(RefuseIfSocketServed(path).ok());  // absent
  const int fd = ListenOn(path);
  ASSERT_GE(fd, 0);
  Status served = RefuseIfSocketServed(path);
  EXPECT_EQ(served.code(), Code::kFailedPrecondition);
  EXPECT_NE(served.message().find(fmt::format("--socket {} is served by another process (PID {}", path, getpid())),
            std::string::npos)
      << served.message();
  close(fd);
  EXPECT_TRUE(fs::exists(path));
  EXPECT_TRUE(RefuseIfSocketServed(path).ok());  // a socket file nobody listens on: a crash's leftover
}

// Writes TEXT to a /proc file of this process; false when it cannot.
bool WriteProcFile(const std::string& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
  out.close();
  return out.good();
}

// A mount namespace of this process's own, where it may mount: as root directly; as another
// user inside a user namespace that maps the user's ids to themselves (files keep their owner),
// so the unit tier needs no root. Must run before any thread starts.
bool EnterPrivateMountNamespace() {
  if (geteuid() != 0) {
    const std::string uid = std::to_string(geteuid()), gid = std::to_string(getegid());
    if (unshare(CLONE_NEWUSER) != 0 || !WriteProcFile("/proc/self/setgroups", "deny") ||
        !WriteProcFile("/proc/self/uid_map", uid + " " + uid + " 1") ||
        !WriteProcFile("/proc/self/gid_map", gid + " " + gid + " 1")) {
      return false;
    }
  }
  return unshare(CLONE_NEWNS) == 0 && mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) == 0;
}

// A state directory on a read-only filesystem: a clear error naming it and the fix. The mount is
// in a private mount namespace and goes with this test's process.
TEST(StateLockTest, AReadOnlyStateDirectoryIsAClearError) {
  testing::TempDir dir;
  const std::string state = dir.Sub("ro");
  ASSERT_EQ(mkdir(state.c_str(), 0700), 0);
  if (!EnterPrivateMountNamespace()) {
    GTEST_SKIP() << "no private mount namespace (" << std::strerror(errno)
                 << "): run as root or where user namespaces are allowed";
  }
  ASSERT_EQ(mount("tmpfs", state.c_str(), "tmpfs", MS_RDONLY, nullptr), 0) << std::strerror(errno);
  auto refused = StateLock::Acquire(state, "/run/test.sock");
  umount(state.c_str());
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("--state-dir \"" + state +
                                            "\" is on a read-only filesystem: serve writes its lock file"),
            std::string::npos)
      << refused.status().message();
}

}  // namespace
}  // namespace smv::daemon

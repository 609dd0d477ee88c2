#include "daemon/daemon_socket.h"

#include <grp.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <fstream>

#include "tests/support/bound_unix_socket.h"
#include "tests/support/temp_dir.h"

namespace smv::daemon {
namespace {

constexpr uid_t kNobody = 65534;

// What WhyDaemonSocketUnreachable says to a process running as `uid` (code, then the message).
std::string AskAs(uid_t uid, const std::string& socket) {
  int out[2];
  EXPECT_EQ(pipe(out), 0);
  const pid_t child = fork();
  if (child == 0) {
    close(out[0]);
    if (setgroups(0, nullptr) != 0 || setresgid(uid, uid, uid) != 0 || setresuid(uid, uid, uid) != 0) _exit(3);
    const Status said = WhyDaemonSocketUnreachable(socket);
    const std::string text = std::to_string(static_cast<int>(said.code())) + " " + said.message();
    (void)!write(out[1], text.data(), text.size());
    _exit(0);
  }
  close(out[1]);
  std::string text;
  char buf[512];
  for (ssize_t n; (n = read(out[0], buf, sizeof buf)) > 0;) text.append(buf, n);
  close(out[0]);
  int status = 0;
  waitpid(child, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  return text;
}

TEST(DaemonSocketTest, AListeningSocketIsReachable) {
  testing::TempDir dir;
  testing::BoundUnixSocket daemon(dir.Sub("d.sock"), true);
  EXPECT_TRUE(WhyDaemonSocketUnreachable(dir.Sub("d.sock")).ok());
}

TEST(DaemonSocketTest, AMissingSocketFileSaysTheDaemonIsNotRunningThereAndHowToStartIt) {
  testing::TempDir dir;
  const Status said = WhyDaemonSocketUnreachable(dir.Sub("none.sock"));
  EXPECT_EQ(said.code(), Code::kUnavailable);
  EXPECT_EQ(said.message(), "no socket at " + dir.Sub("none.sock") +
                                ": the static-macvlan daemon is not running there; start it: systemctl start "
                                "static-macvlan, or give --socket where it serves");
}

TEST(DaemonSocketTest, ASocketFileNobodyListensOnIsConnectionRefused) {
  testing::TempDir dir;
  testing::BoundUnixSocket stale(dir.Sub("stale.sock"), false);
  const Status said = WhyDaemonSocketUnreachable(dir.Sub("stale.sock"));
  EXPECT_EQ(said.code(), Code::kUnavailable);
  EXPECT_EQ(said.message().rfind("connection refused on " + dir.Sub("stale.sock") + ": no daemon listens there", 0), 0u)
      << said.message();
}

TEST(DaemonSocketTest, AFileThatIsNoSocketIsNamedSo) {
  testing::TempDir dir;
  std::ofstream(dir.Sub("plain")) << "x";
  const Status said = WhyDaemonSocketUnreachable(dir.Sub("plain"));
  EXPECT_EQ(said.message(), dir.Sub("plain") + " is not a socket (give --socket the daemon's socket)");
}

TEST(DaemonSocketTest, AUserOtherThanRootIsToldToRunAsRootNotThatTheDaemonIsDown) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root, to open a socket as root and ask as nobody";
  testing::TempDir dir;
  ASSERT_EQ(chmod(dir.path().c_str(), 0755), 0);  // the directory is open: the socket's own 0600 refuses
  const std::string path = dir.Sub("root-only.sock");
  testing::BoundUnixSocket daemon(path, true);  // 0600, as the daemon makes it
  const std::string said = AskAs(kNobody, path);
  EXPECT_EQ(AskAs(0, path), "0 ") << "root reaches it";
  EXPECT_EQ(said, std::to_string(static_cast<int>(Code::kPermissionDenied)) + " permission denied on " + path +
                      ": run as root (the socket is 0600 root)");
}

TEST(DaemonSocketTest, ServeRefusesASocketInAMissingDirectoryNamingBoth) {
  testing::TempDir dir;
  const Status said = CheckSocketDirectory(dir.Sub("missing/smv.sock"));
  EXPECT_EQ(said.code(), Code::kInvalidArgument);
  EXPECT_EQ(said.message().rfind("--socket \"" + dir.Sub("missing/smv.sock") + "\": directory \"" + dir.Sub("missing") +
                                     "\" does not exist",
                                 0),
            0u)
      << said.message();
  std::ofstream(dir.Sub("file")) << "x";
  EXPECT_EQ(CheckSocketDirectory(dir.Sub("file/smv.sock")).message(),
            "--socket \"" + dir.Sub("file/smv.sock") + "\": \"" + dir.Sub("file") + "\" is not a directory");
  EXPECT_TRUE(CheckSocketDirectory(dir.Sub("smv.sock")).ok());
  EXPECT_TRUE(CheckSocketDirectory("relative.sock").ok());
  // dockerd's plugin directory may not exist yet when the daemon starts first.
  EXPECT_TRUE(CheckSocketDirectory("/run/docker/plugins/static-macvlan.sock").ok());
}

}  // namespace
}  // namespace smv::daemon

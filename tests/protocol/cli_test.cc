// The built binary's command line: what it says, and its exit status, when it cannot reach the
// daemon, when a command is mistyped, and when a flag comes both from the command line and SMV_*.

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/support/bound_unix_socket.h"
#include "tests/support/temp_dir.h"

extern char** environ;

namespace smv {
namespace {

constexpr uid_t kNobody = 65534;

struct Ran {
  int exit_code = -1;
  std::string output;  // stdout and stderr
};

// The environment of a child: this process's without any SMV_* variable, plus `more`.
std::vector<std::string> ChildEnvironment(const std::vector<std::string>& more) {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    if (std::strncmp(*e, "SMV_", 4) != 0) env.emplace_back(*e);
  }
  env.insert(env.end(), more.begin(), more.end());
  return env;
}

// In the child, before exec: its own network and mount namespaces with an empty /run and
// /var/lib, so that a command that ignored a flag or variable under test falls back to a default
// socket or state directory no host daemon uses, and changes no host link.
bool IsolateFromTheHost() {
  return unshare(CLONE_NEWNET | CLONE_NEWNS) == 0 && mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) == 0 &&
         mount("tmpfs", "/run", "tmpfs", 0, "mode=755") == 0 && mount("tmpfs", "/var/lib", "tmpfs", 0, "mode=755") == 0;
}

// Runs the binary with `args` as user `uid` (0: root), with `env` added to its environment.
Ran RunCli(const std::vector<std::string>& args, const std::vector<std::string>& env = {}, uid_t uid = 0) {
  std::vector<std::string> argv_text = {SMV_BINARY};
  argv_text.insert(argv_text.end(), args.begin(), args.end());
  const std::vector<std::string> env_text = ChildEnvironment(env);
  std::vector<char*> argv, envp;
  for (const std::string& a : argv_text) argv.push_back(const_cast<char*>(a.c_str()));
  for (const std::string& e : env_text) envp.push_back(const_cast<char*>(e.c_str()));
  argv.push_back(nullptr);
  envp.push_back(nullptr);
  int out[2];
  EXPECT_EQ(pipe2(out, O_CLOEXEC), 0);
  const pid_t child = fork();
  if (child == 0) {
    dup2(out[1], 1);
    dup2(out[1], 2);
    if (!IsolateFromTheHost()) _exit(125);
    if (uid != 0 && (setgroups(0, nullptr) != 0 || setresgid(uid, uid, uid) != 0 || setresuid(uid, uid, uid) != 0))
      _exit(126);
    execve(argv[0], argv.data(), envp.data());
    _exit(127);
  }
  close(out[1]);
  Ran ran;
  char buf[4096];
  pollfd readable{.fd = out[0], .events = POLLIN};
  // A command that should have stopped but serves is killed (exit code 137) after 20 s.
  for (ssize_t n = 1; n > 0;) {
    n = poll(&readable, 1, 20000) == 1 ? read(out[0], buf, sizeof buf) : (kill(child, SIGKILL), 0);
    if (n > 0) ran.output.append(buf, n);
  }
  close(out[0]);
  int status = 0;
  waitpid(child, &status, 0);
  ran.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return ran;
}

// Each case runs the binary as root in namespaces of its own (IsolateFromTheHost).
class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root: each command runs in namespaces of its own";
  }
};

bool Says(const Ran& ran, const std::string& text) { return ran.output.find(text) != std::string::npos; }

using testing::BoundUnixSocket;

TEST_F(CliTest, AUserWithoutRootIsToldPermissionDeniedNotThatTheRunningDaemonIsDown) {
  testing::TempDir dir;
  ASSERT_EQ(chmod(dir.path().c_str(), 0755), 0);  // only the socket's own 0600 refuses
  const std::string socket = dir.Sub("smv.sock");
  BoundUnixSocket daemon(socket, true);
  const Ran ran = RunCli({"reservations", "--socket", socket, "ls"}, {}, kNobody);
  EXPECT_EQ(ran.exit_code, 1) << ran.output;
  EXPECT_EQ(ran.output, "static-macvlan: permission denied on " + socket + ": run as root (the socket is 0600 root)\n");
}

// doctor as a user without root: the daemon check names the permission, and the fix is to run
// doctor as root, not to start a daemon that is running.
TEST_F(CliTest, DoctorWithoutRootSaysPermissionDeniedNotThatTheDaemonIsDown) {
  testing::TempDir dir;
  ASSERT_EQ(chmod(dir.path().c_str(), 0755), 0);
  const std::string socket = dir.Sub("smv.sock");
  BoundUnixSocket daemon(socket, true);
  const Ran ran =
      RunCli({"doctor", "--socket", socket, "--state-dir", dir.Sub("none"), "--docker-host", "unix://" + dir.Sub("no")},
             {}, kNobody);
  EXPECT_EQ(ran.exit_code, 1) << ran.output;
  EXPECT_TRUE(Says(ran, "FAIL  daemon   no answer on " + socket + " (permission denied on " + socket +
                            ": run as root (the socket is 0600 root))"))
      << ran.output;
  EXPECT_TRUE(Says(ran, "fix: sudo static-macvlan doctor")) << ran.output;
  EXPECT_FALSE(Says(ran, "systemctl start static-macvlan")) << ran.output;
}

TEST_F(CliTest, NoSocketFileSaysSoAndHowToStartTheDaemon) {
  testing::TempDir dir;
  const Ran ran = RunCli({"reservations", "--socket", dir.Sub("none.sock"), "ls"});
  EXPECT_EQ(ran.exit_code, 1) << ran.output;
  EXPECT_TRUE(Says(ran, "no socket at " + dir.Sub("none.sock") +
                            ": the static-macvlan daemon is not running there; "
                            "start it: systemctl start static-macvlan"))
      << ran.output;
  EXPECT_FALSE(Says(ran, "(Connection)")) << ran.output;
}

TEST_F(CliTest, ASocketNobodyListensOnSaysConnectionRefused) {
  testing::TempDir dir;
  BoundUnixSocket stale(dir.Sub("stale.sock"), false);
  const Ran ran = RunCli({"reservations", "--socket", dir.Sub("stale.sock"), "export"});
  EXPECT_EQ(ran.exit_code, 1) << ran.output;
  EXPECT_TRUE(Says(ran, "connection refused on " + dir.Sub("stale.sock") + ": no daemon listens there")) << ran.output;
  EXPECT_FALSE(Says(ran, "(Connection)")) << ran.output;
}

// Exit codes: 0 done, 1 the command failed, 2 the command line is wrong (not CLI11's 105-114).
TEST_F(CliTest, AnUnknownCommandIsNamedWithTheCommandsThereAndExits2) {
  const Ran top = RunCli({"bogus"});
  EXPECT_EQ(top.exit_code, 2) << top.output;
  EXPECT_EQ(top.output,
            "static-macvlan: unknown command \"bogus\"; commands: serve, fsck, reservations, doctor, exec, compose\n"
            "Run with --help for more information.\n");
  const Ran nested = RunCli({"reservations", "--socket", "/nowhere.sock", "lss"});
  EXPECT_EQ(nested.exit_code, 2) << nested.output;
  EXPECT_TRUE(Says(nested,
                   "unknown command \"reservations lss\"; reservations commands: ls, reserve, release, "
                   "export, import\n"))
      << nested.output;
  const Ran none = RunCli({});
  EXPECT_EQ(none.exit_code, 2) << none.output;
  EXPECT_TRUE(Says(none, "a command is wanted; commands: serve, fsck,")) << none.output;
}

TEST_F(CliTest, EveryUsageErrorExits2AndHelpAndVersionExit0) {
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {"reservations", "ls", "--bogus"},
           {"reservations", "reserve", "web"},
           {"serve", "--db-size-mib", "0"},
           {"compose", "pin"},
           {"compose"},
       }) {
    const Ran ran = RunCli(args);
    EXPECT_EQ(ran.exit_code, 2) << args.front() << " " << args.back() << ": " << ran.output;
    EXPECT_TRUE(ran.output.starts_with("static-macvlan: ")) << ran.output;
  }
  EXPECT_EQ(RunCli({"--version"}).exit_code, 0);
  EXPECT_EQ(RunCli({"reservations", "ls", "--help"}).exit_code, 0);
}

// --socket is taken after the command as well as before it: each reaches (and names) that socket.
TEST_F(CliTest, SocketIsTakenAfterEachReservationsCommandToo) {
  testing::TempDir dir;
  const std::string socket = dir.Sub("none.sock");
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {"reservations", "ls", "--socket", socket},
           {"reservations", "export", "--socket", socket},
           {"reservations", "reserve", "web", "192.0.2.10", "--network", "n", "--socket", socket},
           {"reservations", "release", "web", "--socket", socket},
           {"reservations", "release", "--node", "host-b", "--socket=" + socket},
           {"reservations", "--socket", socket, "ls"},
       }) {
    const Ran ran = RunCli(args);
    EXPECT_EQ(ran.exit_code, 1) << args[1] << ": " << ran.output;
    EXPECT_TRUE(Says(ran, "no socket at " + socket + ":")) << args[1] << ": " << ran.output;
  }
}

// A flag on the command line wins over its SMV_* variable, both ways round (serve stops at the etcd
// flags, before it opens or creates anything).
TEST_F(CliTest, AServeFlagOnTheCommandLineWinsOverItsEnvironmentVariable) {
  testing::TempDir dir;
  const std::vector<std::string> where = {"--socket",       dir.Sub("s.sock"), "--state-dir",
                                          dir.Sub("state"), "--etcd-cert",     dir.Sub("client.pem")};
  std::vector<std::string> etcd_flag = {"serve", "--store", "etcd://127.0.0.1:9"};
  etcd_flag.insert(etcd_flag.end(), where.begin(), where.end());
  const Ran etcd = RunCli(etcd_flag, {"SMV_STORE=etcd"});
  EXPECT_EQ(etcd.exit_code, 1) << etcd.output;
  EXPECT_TRUE(Says(etcd, "--etcd-cert \"" + dir.Sub("client.pem") + "\" and --etcd-key \"\": give both"))
      << etcd.output;
  EXPECT_FALSE(Says(etcd, "not an etcd:// address")) << "SMV_STORE beat --store: " << etcd.output;

  std::vector<std::string> lmdb_flag = {"serve", "--store", "lmdb"};
  lmdb_flag.insert(lmdb_flag.end(), where.begin(), where.end());
  const Ran lmdb = RunCli(lmdb_flag, {"SMV_STORE=etcd://127.0.0.1:9"});
  EXPECT_EQ(lmdb.exit_code, 1) << lmdb.output;
  EXPECT_TRUE(Says(lmdb, "only with --store etcd://HOST:PORT[,...]; this daemon keeps its address book in lmdb"))
      << "SMV_STORE beat --store: " << lmdb.output;
  EXPECT_FALSE(std::filesystem::exists(dir.Sub("state")));
}

TEST_F(CliTest, AServeVariableIsNotReadByAnotherCommand) {
  const Ran ran = RunCli({"reservations", "ls", "--socket", "/nonexistent/smv.sock"}, {"SMV_DB_SIZE_MIB=0"});
  EXPECT_EQ(ran.exit_code, 1) << ran.output;
  EXPECT_TRUE(Says(ran, "no socket at /nonexistent/smv.sock")) << ran.output;
}

// README: each serve option also reads an SMV_* variable; serve --help shows which.
TEST_F(CliTest, EveryServeAndFsckOptionReadsAnEnvironmentVariable) {
  for (const char* command : {"serve", "fsck"}) {
    const Ran help = RunCli({command, "--help"});
    ASSERT_EQ(help.exit_code, 0) << help.output;
    std::istringstream lines(help.output);
    int options = 0;
    for (std::string line; std::getline(lines, line);) {
      if (!line.starts_with("  --")) continue;
      ++options;
      EXPECT_NE(line.find("(Env:SMV_"), std::string::npos) << command << ": " << line;
    }
    EXPECT_GE(options, 7) << help.output;
  }
}

TEST_F(CliTest, ServeReadsSocketStateDirAndDbSizeFromTheEnvironment) {
  testing::TempDir dir;
  BoundUnixSocket other(dir.Sub("other.sock"), true);
  std::ofstream(dir.Sub("plain")) << "x";  // a --state-dir that stops serve just after its socket check
  const Ran socket = RunCli({"serve", "--state-dir", dir.Sub("plain")}, {"SMV_SOCKET=" + dir.Sub("other.sock")});
  EXPECT_EQ(socket.exit_code, 1) << socket.output;
  EXPECT_TRUE(Says(socket, "--socket " + dir.Sub("other.sock") + " is served by another process")) << socket.output;

  const Ran state = RunCli({"serve", "--socket", dir.Sub("s.sock")}, {"SMV_STATE_DIR=" + dir.Sub("plain")});
  EXPECT_EQ(state.exit_code, 1) << state.output;
  EXPECT_TRUE(Says(state, "--state-dir \"" + dir.Sub("plain") + "\"")) << state.output;

  const Ran size = RunCli({"serve", "--socket", dir.Sub("s.sock")}, {"SMV_DB_SIZE_MIB=0"});
  EXPECT_EQ(size.exit_code, 2) << size.output;
  EXPECT_TRUE(Says(size, "--db-size-mib: Value 0 not in range")) << size.output;
}

TEST_F(CliTest, ServeRefusesASocketInAMissingDirectoryAndCreatesNothing) {
  testing::TempDir dir;
  const std::string socket = dir.Sub("missing/smv.sock");
  const Ran ran = RunCli({"serve", "--socket", socket, "--state-dir", dir.Sub("state")});
  EXPECT_EQ(ran.exit_code, 1) << ran.output;
  EXPECT_TRUE(Says(ran, "--socket \"" + socket + "\": directory \"" + dir.Sub("missing") + "\" does not exist"))
      << ran.output;
  EXPECT_FALSE(std::filesystem::exists(dir.Sub("missing")));
  EXPECT_FALSE(std::filesystem::exists(dir.Sub("state")));
}

// --docker-host too, before or after the command: each run refuses the address it was given.
TEST_F(CliTest, DockerHostAndSocketAreTakenBeforeAndAfterTheCommand) {
  testing::TempDir dir;
  const std::string engine = "tcp://engine.invalid:2375";
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {"reservations", "import", "--network", "n", "--from-docker", "bridge", "--docker-host", engine},
           {"reservations", "--docker-host", engine, "import", "--network", "n", "--from-docker", "bridge"},
           {"compose", "pin", "-p", "web", "--docker-host", engine},
           {"compose", "--docker-host", engine, "--socket", dir.Sub("none.sock"), "pin", "-p", "web"},
       }) {
    const Ran ran = RunCli(args);
    EXPECT_EQ(ran.exit_code, 1) << args[0] << " " << args[1] << ": " << ran.output;
    EXPECT_TRUE(Says(ran, "invalid value \"" + engine + "\" for --docker-host"))
        << args[0] << " " << args[1] << ": " << ran.output;
  }
}

}  // namespace
}  // namespace smv

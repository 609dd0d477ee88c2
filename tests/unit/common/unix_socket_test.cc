// Why a unix socket cannot be connected to, named with its path.
#include "common/unix_socket.h"

#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "tests/support/bound_unix_socket.h"
#include "tests/support/temp_dir.h"

namespace smv {
namespace {

TEST(UnixSocketTest, EachCauseIsNamedWithThePath) {
  testing::TempDir dir;
  EXPECT_EQ(UnixConnectProblem(dir.Sub("none.sock")), "no socket file at " + dir.Sub("none.sock"));
  std::ofstream(dir.Sub("plain")) << "x";
  EXPECT_EQ(UnixConnectProblem(dir.Sub("plain")), dir.Sub("plain") + " is not a socket");
  testing::BoundUnixSocket leftover(dir.Sub("left.sock"), false);
  EXPECT_EQ(UnixConnectProblem(dir.Sub("left.sock")), "nothing listens on " + dir.Sub("left.sock"));
  testing::BoundUnixSocket live(dir.Sub("live.sock"), true);
  EXPECT_EQ(UnixConnectProblem(dir.Sub("live.sock")), "");
}

}  // namespace
}  // namespace smv

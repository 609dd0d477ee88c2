// The engine client names why dockerd cannot be reached instead of httplib's "Connection".
#include "engine/docker_engine.h"

#include <chrono>
#include <string>

#include <gtest/gtest.h>

#include "tests/support/bound_unix_socket.h"
#include "tests/support/temp_dir.h"

namespace smv::engine {
namespace {

TEST(DockerEngineTest, AnUnreachableEngineIsNamedWithTheCause) {
  testing::TempDir dir;
  const std::string socket = dir.Sub("docker.sock");
  auto engine = DockerEngine::Create("unix://" + socket);
  ASSERT_TRUE(engine.ok());
  EXPECT_EQ((*engine)->Ping(std::chrono::milliseconds(500)).message(),
            "engine API /_ping: no socket file at " + socket);
  testing::BoundUnixSocket stopped(socket, false);
  EXPECT_EQ((*engine)->Ping(std::chrono::milliseconds(500)).message(),
            "engine API /_ping: nothing listens on " + socket);
}

}  // namespace
}  // namespace smv::engine

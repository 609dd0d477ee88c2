// The engine client names why dockerd cannot be reached instead of httplib's "Connection", and
// asks what it means to ask (the requests as a stand-in dockerd receives them).
#include "engine/docker_engine.h"

#include <httplib.h>
#include <sys/socket.h>

#include <chrono>
#include <mutex>
#include <string>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

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

// A dockerd that answers GET /containers/json with one task's container and keeps the query.
class ListingEngine {
 public:
  explicit ListingEngine(const std::string& socket) {
    server_.Get("/containers/json", [this](const httplib::Request& req, httplib::Response& res) {
      std::lock_guard lock(mutex_);
      params_ = req.params;
      res.set_content(R"([{"Id": "c1", "Names": ["/web.1.x1"], "Labels": {"com.docker.swarm.task.id": "x1"}}])",
                      "application/json");
    });
    server_.set_address_family(AF_UNIX);
    bound_ = server_.bind_to_port(socket, 80);
    thread_ = std::thread([this] { server_.listen_after_bind(); });
  }
  ~ListingEngine() {
    server_.stop();
    thread_.join();
  }
  bool bound() const { return bound_; }
  std::string Param(const std::string& key) {
    std::lock_guard lock(mutex_);
    auto it = params_.find(key);
    return it == params_.end() ? "(none)" : it->second;
  }

 private:
  httplib::Server server_;
  std::mutex mutex_;
  httplib::Params params_;  // the last query, written by the server's thread
  bool bound_ = false;
  std::thread thread_;
};

TEST(DockerEngineTest, ALabelledListAsksTheEngineToFilterByTheExactLabel) {
  testing::TempDir dir;
  const std::string socket = dir.Sub("docker.sock");
  ListingEngine dockerd(socket);
  ASSERT_TRUE(dockerd.bound());
  auto engine = DockerEngine::Create("unix://" + socket);
  ASSERT_TRUE(engine.ok());
  // Characters a query would misread, were they not encoded: & = + % space, a quote.
  Result<std::vector<EngineContainer>> listed =
      (*engine)->ListContainersLabelled("com.docker.swarm.task.id", "x1&all=0+%20 \"", std::chrono::seconds(5));
  ASSERT_TRUE(listed.ok()) << listed.status().message();
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].name, "web.1.x1");
  EXPECT_EQ(dockerd.Param("all"), "1");
  const nlohmann::json filters = nlohmann::json::parse(dockerd.Param("filters"), nullptr, false);
  EXPECT_EQ(filters, (nlohmann::json{{"label", nlohmann::json::array({"com.docker.swarm.task.id=x1&all=0+%20 \""})}}))
      << dockerd.Param("filters");
}

}  // namespace
}  // namespace smv::engine

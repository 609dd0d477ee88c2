#pragma once
// HTTP/1.1 with keep-alive on a unix socket (cpp-httplib), mode 0600: the plugin API is served
// on no TCP listener (only MetricsServer, below, listens on TCP, for GET /metrics).

#include <memory>
#include <string>
#include <thread>
#include <utility>

#include "common/status.h"
#include "daemon/api/plugin_api.h"

namespace httplib {
class Server;
}

namespace smv::api {

class PluginServer {
 public:
  // Binds `socket_path`: a stale socket file (nobody answering) is replaced; a live one is an
  // error, since another static-macvlan owns it.
  static Result<std::unique_ptr<PluginServer>> Bind(const std::string& socket_path, PluginApi& api);
  ~PluginServer();

  // Serves until Stop(); requests in flight finish before it returns.
  Status Serve();
  // Safe from any thread (serve's ServeUntilSignal calls it from its signal-waiting thread).
  void Stop();

 private:
  PluginServer() = default;
  std::unique_ptr<httplib::Server> server_;
  std::string socket_path_;
};

// GET /metrics over TCP (serve --metrics-listen), for a Prometheus that cannot reach the
// plugin socket; nothing else is served there. Serves on its own thread until destroyed.
class MetricsServer {
 public:
  // `listen` as the user gave --metrics-listen: ADDR:PORT, [V6ADDR]:PORT.
  static Result<std::unique_ptr<MetricsServer>> Listen(const std::string& listen, const PluginApi& api);
  // The host and port of a --metrics-listen value, or an error naming the flag and the value.
  static Result<std::pair<std::string, int>> ParseListen(const std::string& listen);
  ~MetricsServer();

 private:
  MetricsServer() = default;
  std::unique_ptr<httplib::Server> server_;
  std::jthread thread_;  // serves; joined before server_ is destroyed
};

}  // namespace smv::api

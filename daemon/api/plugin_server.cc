#include "daemon/api/plugin_server.h"

#include <httplib.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "common/ip.h"
#include "common/metrics/metrics.h"
#include "daemon/api/http_body.h"
#include "daemon/api/wire.h"

namespace smv::api {
namespace {

// Answers, and closes the connection, before its body is read, a request this server does not
// take (http_body.h): reading first is what let a body of any size fill memory.
httplib::Server::HandlerResponse RefuseBeforeBody(const httplib::Request& req, httplib::Response& res,
                                                  bool post_bodies) {
  const std::optional<Refusal> refusal = AdmitRequest(req, post_bodies);
  if (!refusal) {
    // httplib 0.11 hands its own (non-const) request to this handler as const; the only place
    // to change how the body will be read.
    if (post_bodies) TakeOverChunkedBody(const_cast<httplib::Request&>(req));
    return httplib::Server::HandlerResponse::Unhandled;
  }
  if (post_bodies) {
    const nlohmann::json err = wire::EncodeError(refusal->message);
    AnswerAndClose(res, refusal->status, err.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace),
                   kPluginContentType);
  } else {
    AnswerAndClose(res, refusal->status, refusal->message + "\n", "text/plain; charset=utf-8");
  }
  if (refusal->status == 405) res.set_header("Allow", post_bodies ? "GET, HEAD, POST" : "GET, HEAD");
  return httplib::Server::HandlerResponse::Handled;
}

// True when something accepts connections on `path`.
bool SocketIsLive(const std::string& path) {
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  const bool live = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  close(fd);
  return live;
}

// One thread per connection. A connection holds its thread for as long as it is open (keep-alive,
// or a client that sends half a request and stalls until the read timeout), and dockerd has no
// timeout on plugin calls: with a fixed pool, 64 stalled local clients delayed every dockerd call
// by the read timeout. A thread per connection never makes one client wait for another. Past
// kMaxConnectionThreads (a misbehaving client), connections wait for a thread instead.
constexpr size_t kMaxConnectionThreads = 1024;

class ConnectionThreads : public httplib::TaskQueue {
 public:
  void enqueue(std::function<void()> fn) override {
    std::scoped_lock lock(mu_);
    ReapFinishedLocked();
    if (running_.size() >= kMaxConnectionThreads) {
      waiting_.push_back(std::move(fn));
      return;
    }
    StartLocked(std::move(fn));
  }

  // Waits for every connection to finish (httplib calls this after the listener closed).
  void shutdown() override {
    std::unique_lock lock(mu_);
    idle_.wait(lock, [this] { return running_.size() == finished_.size() && waiting_.empty(); });
    ReapFinishedLocked();
  }

 private:
  void StartLocked(std::function<void()> fn) {
    const uint64_t id = next_id_++;
    running_.emplace(id, std::thread([this, id, fn = std::move(fn)]() mutable {
                       for (;;) {
                         fn();
                         std::scoped_lock lock(mu_);
                         if (waiting_.empty()) {
                           finished_.push_back(id);  // joined by the next enqueue or by shutdown
                           idle_.notify_all();
                           return;
                         }
                         fn = std::move(waiting_.front());
                         waiting_.pop_front();
                       }
                     }));
  }

  void ReapFinishedLocked() {
    for (const uint64_t id : finished_) {
      auto it = running_.find(id);
      it->second.join();  // it has left its loop: the join is immediate
      running_.erase(it);
    }
    finished_.clear();
  }

  std::mutex mu_;  // guards everything below
  std::condition_variable idle_;
  std::map<uint64_t, std::thread> running_;
  std::vector<uint64_t> finished_;
  std::deque<std::function<void()>> waiting_;
  uint64_t next_id_ = 0;
};

}  // namespace

Result<std::unique_ptr<PluginServer>> PluginServer::Bind(const std::string& socket_path, PluginApi& api) {
  if (socket_path.size() >= sizeof(sockaddr_un::sun_path)) {
    return InvalidArgument(fmt::format("invalid value \"{}\" for --socket: longer than {} bytes", socket_path,
                                       sizeof(sockaddr_un::sun_path) - 1));
  }
  std::error_code ec;
  const std::filesystem::path dir = std::filesystem::path(socket_path).parent_path();
  if (!dir.empty()) std::filesystem::create_directories(dir, ec);
  if (ec) return Internal(fmt::format("create directory \"{}\": {}", dir.string(), ec.message()));
  struct stat st {};
  if (lstat(socket_path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      return FailedPrecondition(fmt::format("\"{}\" exists and is not a socket", socket_path));
    }
    if (SocketIsLive(socket_path)) {
      return AlreadyExists(
          fmt::format("another process serves \"{}\" (is static-macvlan already running?)", socket_path));
    }
    unlink(socket_path.c_str());
    spdlog::info("stale socket replaced path={}", socket_path);
  }
  std::unique_ptr<PluginServer> server(new PluginServer());
  server->socket_path_ = socket_path;
  server->server_ = std::make_unique<httplib::Server>();
  httplib::Server& http = *server->server_;
  http.new_task_queue = [] { return new ConnectionThreads(); };
  http.set_address_family(AF_UNIX);
  // dockerd holds connections open; httplib's default closes one after 5 requests, and every
  // reconnect is a chance to hit the listen backlog below.
  http.set_keep_alive_max_count(100000);
  int listen_fd = -1;
  http.set_socket_options([&listen_fd](int fd) { listen_fd = fd; });
  InstallRoutes(http, api);
  http.set_pre_routing_handler(
      [](const httplib::Request& req, httplib::Response& res) { return RefuseBeforeBody(req, res, true); });
  // The socket is born 0600: no window in which another user could connect.
  const mode_t old_mask = umask(0177);
  const bool bound = http.bind_to_port(socket_path.c_str(), 80);
  umask(old_mask);
  if (!bound) {
    return Internal(fmt::format("listen on \"{}\": {}", socket_path, std::strerror(errno)));
  }
  chmod(socket_path.c_str(), 0600);
  // The library listens with a backlog of 5; on a unix socket a full backlog refuses the
  // connection at once (no SYN retry as with TCP), which dockerd reports as an error. Listening
  // again on the bound socket raises the backlog.
  if (listen_fd >= 0) ::listen(listen_fd, SOMAXCONN);
  return server;
}

PluginServer::~PluginServer() {
  if (!socket_path_.empty()) unlink(socket_path_.c_str());
}

Status PluginServer::Serve() {
  spdlog::info("listening socket={}", socket_path_);
  if (!server_->listen_after_bind()) {
    return Internal(fmt::format("serve on \"{}\" stopped with an error", socket_path_));
  }
  return OkStatus();
}

void PluginServer::Stop() { server_->stop(); }

Result<std::pair<std::string, int>> MetricsServer::ParseListen(const std::string& listen) {
  Result<HostPort> parsed = ParseHostPort(listen);
  std::string host = parsed.ok() ? parsed->host : "";
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (!parsed.ok() || host.empty()) {
    return InvalidArgument(fmt::format(
        "invalid value \"{}\" for --metrics-listen: want ADDRESS:PORT with a port of 1-65535 (e.g. 127.0.0.1:9414)",
        listen));
  }
  return std::pair<std::string, int>(host, parsed->port);
}

Result<std::unique_ptr<MetricsServer>> MetricsServer::Listen(const std::string& listen, const PluginApi& api) {
  auto parsed = ParseListen(listen);
  if (!parsed.ok()) return parsed.status();
  const auto& [host, port] = *parsed;
  std::unique_ptr<MetricsServer> out(new MetricsServer());
  out->server_ = std::make_unique<httplib::Server>();
  // Nothing here takes a body: POST and the rest are refused unread (a POST body was buffered
  // whole before its 404).
  out->server_->set_pre_routing_handler(
      [](const httplib::Request& req, httplib::Response& res) { return RefuseBeforeBody(req, res, false); });
  out->server_->Get("/metrics", [&api](const httplib::Request&, httplib::Response& res) {
    res.set_content(api.RenderMetrics(), metrics::kContentType);
  });
  if (!out->server_->bind_to_port(host.c_str(), port)) {
    return FailedPrecondition(fmt::format("--metrics-listen \"{}\": cannot listen there: {}", listen,
                                          errno != 0 ? std::strerror(errno) : "address not available"));
  }
  out->thread_ = std::jthread([server = out->server_.get()] { server->listen_after_bind(); });
  spdlog::info("metrics listening address={}", listen);
  return out;
}

MetricsServer::~MetricsServer() {
  if (server_) server_->stop();  // ends listen_after_bind; thread_, declared last, joins first
}

}  // namespace smv::api

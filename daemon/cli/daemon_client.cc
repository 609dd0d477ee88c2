#include "daemon/cli/daemon_client.h"

#include <fmt/format.h>
#include <httplib.h>

#include <chrono>
#include <filesystem>
#include <vector>

#include "common/clock.h"
#include "common/unix_socket.h"
#include "daemon/api/wire.h"
#include "daemon/commands.h"
#include "daemon/daemon_socket.h"

namespace smv::daemon {
namespace {

constexpr Millis kDaemonTimeout{10000};

}  // namespace

Result<nlohmann::json> AskDaemon(const std::string& socket, const char* path, const nlohmann::json& body) {
  httplib::Client client(socket);
  UseUnixSocket(client, kDaemonTimeout);
  httplib::Result r =
      client.Post(path, body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), "application/json");
  if (!r) {
    // httplib says only "Connection": the kernel's reason (no file, not root, nothing listening) names the fix.
    if (Status cause = WhyDaemonSocketUnreachable(socket); !cause.ok()) return cause;
    if (r.error() == httplib::Error::Read) {
      return Unavailable(fmt::format("the static-macvlan daemon at {} gave no answer within {} s", socket,
                                     std::chrono::duration_cast<std::chrono::seconds>(kDaemonTimeout).count()));
    }
    return Unavailable(fmt::format("the static-macvlan daemon at {}: {}", socket, httplib::to_string(r.error())));
  }
  nlohmann::json out = nlohmann::json::parse(r->body, nullptr, false);
  if (r->status != 200) {
    const std::string err = api::wire::DecodeError(out);
    return Internal(err.empty() ? r->body : err);
  }
  if (!out.is_object()) return Internal(fmt::format("the daemon at {} answered something that is not JSON", socket));
  return out;
}

std::string FindDaemonSocket(const std::string& given) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (given != kDefaultSocket || fs::exists(given, ec)) return given;
  std::vector<std::string> managed;
  for (const auto& entry : fs::directory_iterator(fs::path(given).parent_path(), ec)) {
    const fs::path candidate = entry.path() / kSocketName;
    if (entry.is_directory(ec) && fs::exists(candidate, ec)) managed.push_back(candidate.string());
  }
  return managed.size() == 1 ? managed.front() : given;
}

}  // namespace smv::daemon

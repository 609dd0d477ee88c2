#include "daemon/daemon_socket.h"

#include <fmt/format.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "commands.h"
#include "common/unix_socket.h"

namespace smv::daemon {
namespace {

constexpr const char* kStartFix = "start it: systemctl start static-macvlan, or give --socket where it serves";

}  // namespace

Status WhyDaemonSocketUnreachable(const std::string& socket) {
  const int error = UnixConnectError(socket);
  switch (error) {
    case 0: return OkStatus();
    case EACCES:
    case EPERM:
      return PermissionDenied(fmt::format("permission denied on {}: run as root (the socket is 0600 root)", socket));
    case ENOENT:
    case ENOTDIR:
      return Unavailable(
          fmt::format("no socket at {}: the static-macvlan daemon is not running there; {}", socket, kStartFix));
    case ECONNREFUSED: {
      struct stat st {};
      if (stat(socket.c_str(), &st) == 0 && !S_ISSOCK(st.st_mode)) {
        return FailedPrecondition(fmt::format("{} is not a socket (give --socket the daemon's socket)", socket));
      }
      return Unavailable(
          fmt::format("connection refused on {}: no daemon listens there (the file is left from one that stopped); {}",
                      socket, kStartFix));
    }
    default: return Unavailable(fmt::format("cannot connect to {}: {}", socket, std::strerror(error)));
  }
}

Status CheckSocketDirectory(const std::string& socket) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::path(socket).parent_path();
  if (dir.empty() || dir == fs::path(kDefaultSocket).parent_path()) return OkStatus();
  std::error_code ec;
  const fs::file_status st = fs::status(dir, ec);
  if (fs::is_directory(st)) return OkStatus();
  if (st.type() == fs::file_type::not_found) {
    return InvalidArgument(
        fmt::format("--socket \"{}\": directory \"{}\" does not exist (create it first: serve makes no directory "
                    "but the default's, {})",
                    socket, dir.string(), fs::path(kDefaultSocket).parent_path().string()));
  }
  if (ec)
    return InvalidArgument(fmt::format("--socket \"{}\": directory \"{}\": {}", socket, dir.string(), ec.message()));
  return InvalidArgument(fmt::format("--socket \"{}\": \"{}\" is not a directory", socket, dir.string()));
}

}  // namespace smv::daemon

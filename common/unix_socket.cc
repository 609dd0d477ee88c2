#include "common/unix_socket.h"

#include <fmt/format.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace smv {

int UnixConnectError(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) return ENAMETOOLONG;
  std::memcpy(addr.sun_path, path.data(), path.size());
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return errno;
  const int error = connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0 ? 0 : errno;
  close(fd);
  return error;
}

std::string UnixConnectProblem(const std::string& path) {
  switch (const int error = UnixConnectError(path)) {
    case 0: return "";
    case EACCES:
    case EPERM: return fmt::format("permission denied on {}", path);
    case ENOENT:
    case ENOTDIR: return fmt::format("no socket file at {}", path);
    case ECONNREFUSED: {
      struct stat st {};
      if (stat(path.c_str(), &st) == 0 && !S_ISSOCK(st.st_mode)) return fmt::format("{} is not a socket", path);
      return fmt::format("nothing listens on {}", path);
    }
    default: return fmt::format("{}: {}", path, std::strerror(error));
  }
}

}  // namespace smv

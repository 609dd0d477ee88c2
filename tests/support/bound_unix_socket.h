#pragma once
// A unix socket bound at a path, listening (a live server) or not (a stopped server's leftover);
// mode 0600, as the daemon makes its socket.

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include <gtest/gtest.h>

namespace smv::testing {

class BoundUnixSocket {
 public:
  BoundUnixSocket(const std::string& path, bool listening) : fd_(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    if (listening) {
      EXPECT_EQ(listen(fd_, 8), 0);
    }
    EXPECT_EQ(chmod(path.c_str(), 0600), 0);
  }
  BoundUnixSocket(const BoundUnixSocket&) = delete;
  BoundUnixSocket& operator=(const BoundUnixSocket&) = delete;
  ~BoundUnixSocket() { close(fd_); }

 private:
  int fd_;
};

}  // namespace smv::testing

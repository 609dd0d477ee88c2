#pragma once
// A unix socket bound at a path, listening (a live server) or not (a stopped server's leftover).

#include <sys/socket.h>
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
    if (listening) EXPECT_EQ(listen(fd_, 4), 0);
  }
  BoundUnixSocket(const BoundUnixSocket&) = delete;
  BoundUnixSocket& operator=(const BoundUnixSocket&) = delete;
  ~BoundUnixSocket() { close(fd_); }

 private:
  int fd_;
};

}  // namespace smv::testing

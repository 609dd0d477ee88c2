#pragma once
// HTTP clients on unix sockets: their one setup, and why a socket cannot be connected to, asked
// of the kernel: an HTTP client only reports that it could not connect, and the cause (no socket
// file, root's socket, nobody listening) decides the fix. The plugin's CLI and doctor ask the
// daemon's socket, the engine client dockerd's.

#include <sys/socket.h>

#include <chrono>
#include <string>

namespace smv {

// The one setup of an HTTP client (cpp-httplib's Client, constructed with the socket's path) on a
// unix socket: one timeout for connecting, sending and reading, so a call never waits longer.
// A template so that common/ does not link cpp-httplib; every caller already does.
template <typename HttpClient>
void UseUnixSocket(HttpClient& client, std::chrono::milliseconds timeout) {
  client.set_address_family(AF_UNIX);
  client.set_connection_timeout(timeout);
  client.set_read_timeout(timeout);
  client.set_write_timeout(timeout);
}

// errno of one connect() to the unix socket at `path`; 0 when it connected.
int UnixConnectError(const std::string& path);

// The cause in a few words, naming the path: "no socket file at P", "permission denied on P",
// "nothing listens on P", "P is not a socket", or strerror's text. "" when it connects.
std::string UnixConnectProblem(const std::string& path);

}  // namespace smv

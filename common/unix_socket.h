#pragma once
// Why a unix socket cannot be connected to, asked of the kernel: an HTTP client only reports that
// it could not connect, and the cause (no socket file, root's socket, nobody listening) decides
// the fix. The plugin's CLI asks it of the daemon's socket, the engine client of dockerd's.

#include <string>

namespace smv {

// errno of one connect() to the unix socket at `path`; 0 when it connected.
int UnixConnectError(const std::string& path);

// The cause in a few words, naming the path: "no socket file at P", "permission denied on P",
// "nothing listens on P", "P is not a socket", or strerror's text. "" when it connects.
std::string UnixConnectProblem(const std::string& path);

}  // namespace smv

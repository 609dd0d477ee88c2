#pragma once
// What the CLI says when it cannot reach the daemon's socket, and where serve may put its socket.
// An HTTP client only reports "could not connect"; the reason (no socket file, a socket only root
// may open, nothing listening) decides the fix, so it is asked of the kernel again here.

#include <string>

#include "common/status.h"

namespace smv::daemon {

// Connects to `socket` once and, when that fails, returns an error naming the socket, the cause
// and its fix: no socket file (the daemon is not running), permission denied (run as root: the
// socket is 0600 root), connection refused (no daemon listens on that file). OK when it connects.
Status WhyDaemonSocketUnreachable(const std::string& socket);

// serve --socket: the socket's directory must exist. Only the default's (/run/docker/plugins,
// where dockerd looks) is made when missing: the daemon may start before dockerd. A directory
// made for a mistyped path would leave dockerd looking elsewhere with no error.
Status CheckSocketDirectory(const std::string& socket);

}  // namespace smv::daemon

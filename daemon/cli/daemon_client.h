#pragma once
// The CLI's one way to ask the running daemon: POST a JSON body to one of its paths over the
// daemon's unix socket (the same socket and 0600 mode dockerd uses), JSON back. Request and reply
// fields are spelled by daemon/api/wire.h only.

#include <nlohmann/json.hpp>

#include <string>

#include "common/status.h"

namespace smv::daemon {

// The daemon's answer to POST `path` (e.g. wire::kReservePath); its {"Err"} message as the error
// when it refuses, and a named cause (no socket file, not root, nothing listening, no answer in
// time) when it cannot be asked.
Result<nlohmann::json> AskDaemon(const std::string& socket, const char* path, const nlohmann::json& body);

}  // namespace smv::daemon

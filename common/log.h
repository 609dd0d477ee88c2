#pragma once
#include <string>
#include <string_view>

#include "common/status.h"

namespace smv {

// Sets spdlog's default logger (stderr) to `level`: trace, debug, info, warn, error, off.
Status InitLogging(std::string_view level);

// The first 12 characters of a Docker ID, as Docker prints them.
inline constexpr size_t kShortIdLength = 12;
std::string ShortId(std::string_view id);

}  // namespace smv

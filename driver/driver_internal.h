#pragma once
// Private to the DriverService's .cc files (not a header of the library).

#include <spdlog/spdlog.h>

#include <string_view>

#include "common/status.h"

namespace smv::driver {

// Rollbacks run while another error is being reported; theirs is logged, not returned.
inline void LogIfFailed(const Status& s, std::string_view what) {
  if (!s.ok()) spdlog::warn("{}: {}", what, s.message());
}

}  // namespace smv::driver

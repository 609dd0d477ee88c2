#pragma once
// A bound on how deeply a request body nests, checked before the body is parsed. nlohmann::json
// copies, compares, prints and frees values recursively, so a body of 200,000 nested arrays
// (400 KB) overflowed the stack of whichever thread touched it. dockerd's requests nest 4 deep.

#include <cstddef>
#include <string_view>

#include "common/status.h"

namespace smv::api {

inline constexpr size_t kMaxJsonDepth = 64;

// OK when no array or object in `text` opens more than `max_depth` levels deep (the top-level
// object is level 1); otherwise an error naming the limit. Counts brackets outside strings in one
// pass without recursion; whether `text` is JSON at all is the parser's question, asked after.
Status CheckJsonDepth(std::string_view text, size_t max_depth = kMaxJsonDepth);

}  // namespace smv::api

#include "daemon/api/json_depth.h"

#include <fmt/format.h>

namespace smv::api {

Status CheckJsonDepth(std::string_view text, size_t max_depth) {
  size_t depth = 0;
  bool in_string = false;
  // Strings are delimited as the parser delimits them, so up to the first byte it would refuse,
  // this depth is the parser's depth.
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;  // an escaped byte never ends the string
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > max_depth) {
        return InvalidArgument(
            fmt::format("request body nests arrays and objects more than {} levels deep, the limit (found at byte {}; "
                        "dockerd's requests nest 4 levels)",
                        max_depth, i));
      }
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return OkStatus();
}

}  // namespace smv::api

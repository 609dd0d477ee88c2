#include "common/log.h"

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

namespace smv {

Status InitLogging(std::string_view level) {
  const spdlog::level::level_enum parsed = spdlog::level::from_str(std::string(level));
  // from_str answers "off" for anything it does not know; only accept "off" when asked for.
  if (parsed == spdlog::level::off && level != "off") {
    return InvalidArgument(fmt::format(
        "invalid value \"{}\" for option \"--log-level\": want trace, debug, info, warn, error or off", level));
  }
  auto logger = spdlog::stderr_logger_mt("static-macvlan");
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
  spdlog::set_default_logger(logger);
  spdlog::set_level(parsed);
  spdlog::flush_on(spdlog::level::info);
  return OkStatus();
}

std::string ShortId(std::string_view id) { return std::string(id.substr(0, kShortIdLength)); }

}  // namespace smv

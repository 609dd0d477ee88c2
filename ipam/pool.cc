#include "ipam/pool.h"

#include <charconv>

namespace smv::ipam {
namespace {

std::string FamilyWord(Family f) { return f == Family::kV4 ? "IPv4" : "IPv6"; }

// Parses one CIDR flag value and rejects host bits with the corrected value as a hint.
Result<Prefix> ParseCidrFlag(std::string_view flag, const std::string& value, Family want) {
  std::optional<Prefix> prefix = Prefix::Parse(value);
  if (!prefix) {
    return InvalidArgument(fmt::format("invalid value \"{}\" for {}: want a CIDR such as {}", value, flag,
                                       want == Family::kV4 ? "192.0.2.0/24" : "2001:db8:1::/64"));
  }
  if (prefix->family() != want) {
    return InvalidArgument(
        fmt::format("invalid value \"{}\" for {}: an {} network was expected here", value, flag, FamilyWord(want)));
  }
  if (prefix->HasHostBits()) {
    return InvalidArgument(
        fmt::format("invalid value \"{}\" for {}: host bits are set; for a /{} the network address is {} "
                    "(use {} {}/{})",
                    value, flag, prefix->length(), prefix->Network().ToString(), flag, prefix->Network().ToString(),
                    prefix->length()));
  }
  return *prefix;
}

}  // namespace

IpAddress PoolConfig::FirstUsable() const { return IpAddress(subnet.family(), subnet.Network().value() + 1); }

IpAddress PoolConfig::LastUsable() const {
  const IpAddress last = subnet.Last();
  return subnet.family() == Family::kV4 ? IpAddress(Family::kV4, last.value() - 1) : last;
}

IpAddress PoolConfig::DynamicFirst() const {
  if (!range) return FirstUsable();
  return std::max(range->Network(), FirstUsable());
}

IpAddress PoolConfig::DynamicLast() const {
  if (!range) return LastUsable();
  return std::min(range->Last(), LastUsable());
}

std::string PoolIdFor(const Prefix& subnet, const std::optional<Prefix>& range) {
  if (!range) return subnet.ToString();
  return fmt::format("{} range {}", subnet.ToString(), range->ToString());
}

Result<std::optional<int64_t>> ParseRetention(std::string_view value) {
  if (value == "keep" || value.empty()) return std::optional<int64_t>();
  int64_t number = -1;
  const char* end = value.data() + value.size();
  auto [ptr, ec] = std::from_chars(value.data(), end, number);
  int64_t unit = 0;
  const std::string_view suffix(ptr, static_cast<size_t>(end - ptr));
  if (suffix.empty() || suffix == "s")
    unit = 1;
  else if (suffix == "m")
    unit = 60;
  else if (suffix == "h")
    unit = 3600;
  else if (suffix == "d")
    unit = 86400;
  if (ec != std::errc() || unit == 0 || number < 0 || number > int64_t{3650} * 86400) {
    return InvalidArgument(
        fmt::format("invalid value \"{}\" for --ipam-opt {}: want \"keep\" or a duration such as 90s, 30m, "
                    "24h or 7d (example: --ipam-opt {}=24h)",
                    value, kOptReleaseAfter, kOptReleaseAfter));
  }
  return std::optional<int64_t>(number * unit);
}

Result<PoolScope> ScopeOf(const PoolRequest& request) {
  auto it = request.options.find(std::string(kOptScope));
  if (it == request.options.end()) return PoolScope::kDefault;
  if (it->second == "local") return PoolScope::kLocal;
  if (it->second == "shared") return PoolScope::kShared;
  return InvalidArgument(
      fmt::format("invalid value \"{}\" for --ipam-opt {}: want \"local\" (this host's own address book) or "
                  "\"shared\" (the book of every host on --store etcd://...)",
                  it->second, kOptScope));
}

Result<PoolConfig> ParsePoolRequest(const PoolRequest& request) {
  const Family family = request.v6 ? Family::kV6 : Family::kV4;
  if (request.pool.empty()) {
    return InvalidArgument(fmt::format("static-macvlan needs the {}subnet of the LAN: add {} to docker network create",
                                       request.v6 ? "IPv6 " : "",
                                       request.v6 ? "--subnet 2001:db8:1::/64" : "--subnet 192.0.2.0/24"));
  }
  Result<Prefix> subnet = ParseCidrFlag("--subnet", request.pool, family);
  if (!subnet.ok()) return subnet.status();
  const int max_length = family == Family::kV4 ? 30 : 126;
  if (subnet->length() > max_length) {
    return InvalidArgument(
        fmt::format("invalid value \"{}\" for --subnet: a /{} has no room for a gateway and containers; want "
                    "a prefix length of at most {}",
                    request.pool, subnet->length(), max_length));
  }
  PoolConfig config;
  config.subnet = *subnet;
  if (!request.sub_pool.empty()) {
    Result<Prefix> range = ParseCidrFlag("--ip-range", request.sub_pool, family);
    if (!range.ok()) return range.status();
    if (!subnet->Contains(*range)) {
      return InvalidArgument(fmt::format("invalid value \"{}\" for --ip-range: it must lie inside --subnet {}",
                                         request.sub_pool, request.pool));
    }
    config.range = *range;
    if (config.DynamicFirst() > config.DynamicLast()) {
      return InvalidArgument(
          fmt::format("invalid value \"{}\" for --ip-range: it holds no usable address of --subnet {}",
                      request.sub_pool, request.pool));
    }
  }
  for (const auto& [key, value] : request.options) {
    if (key == kOptReleaseAfter) {
      Result<std::optional<int64_t>> retention = ParseRetention(value);
      if (!retention.ok()) return retention.status();
      config.release_after_seconds = *retention;
    } else if (key == kOptScope) {
      Result<PoolScope> scope = ScopeOf(request);
      if (!scope.ok()) return scope.status();
    } else {
      return InvalidArgument(
          fmt::format("unknown --ipam-opt \"{}\" (known: {}, {})", key, kOptReleaseAfter, kOptScope));
    }
  }
  config.options = request.options;
  config.options.erase(std::string(kOptScope));
  config.id = PoolIdFor(config.subnet, config.range);
  return config;
}

}  // namespace smv::ipam

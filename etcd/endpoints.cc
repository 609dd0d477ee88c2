// The one parser of the etcd address the user writes (etcd://HOST:PORT[,HOST:PORT...]) and the
// prefix range end etcd expects.

#include "common/ip.h"
#include "etcd/kv_client.h"

namespace smv::etcd {
namespace {

constexpr std::string_view kScheme = "etcd://";

// One "HOST:PORT" (an IPv6 HOST keeps its brackets); `refuse` words the error.
template <typename Refuse>
Result<Endpoint> ParseMember(std::string_view item, const Refuse& refuse) {
  const size_t colon = item.rfind(':');
  if (item.empty() || colon == std::string_view::npos || colon == 0) return refuse("each member needs HOST:PORT");
  Result<HostPort> parsed = ParseHostPort(item);
  if (!parsed.ok()) return refuse(parsed.status().message());
  return Endpoint{.host = std::move(parsed->host), .port = parsed->port};
}

}  // namespace

Result<std::vector<Endpoint>> ParseEndpoints(std::string_view spec, std::string_view option) {
  const auto refuse = [&](std::string_view why) -> Status {
    return InvalidArgument(fmt::format("{} \"{}\": {}; expected etcd://HOST:PORT[,HOST:PORT...]", option, spec, why));
  };
  if (!spec.starts_with(kScheme)) return refuse("not an etcd:// address");
  std::string_view rest = spec.substr(kScheme.size());
  std::vector<Endpoint> out;
  while (true) {
    const size_t comma = rest.find(',');
    Result<Endpoint> member = ParseMember(rest.substr(0, comma), refuse);
    if (!member.ok()) return member.status();
    out.push_back(std::move(member).value());
    if (comma == std::string_view::npos) break;
    rest = rest.substr(comma + 1);
  }
  return out;
}

std::string PrefixEnd(std::string_view prefix) {
  std::string end(prefix);
  while (!end.empty()) {
    if (static_cast<unsigned char>(end.back()) < 0xff) {
      end.back() = static_cast<char>(end.back() + 1);
      return end;
    }
    end.pop_back();
  }
  return std::string(1, '\0');  // every key (etcd's convention for "no end")
}

}  // namespace smv::etcd

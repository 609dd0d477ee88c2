#include "daemon/reservation_commands.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <optional>

#include "common/clock.h"

namespace smv::daemon {
namespace {

constexpr Millis kNetworkLookupTimeout{2000};
// An id prefix shorter than this never names a network (docker accepts unique prefixes too).
constexpr size_t kMinIdPrefix = 6;

// A whole Docker id (64 hex digits): one of ours or none, with or without dockerd.
bool IsFullId(const std::string& text) {
  return text.size() == 64 && std::all_of(text.begin(), text.end(),
                                          [](char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; });
}

}  // namespace

Result<std::vector<Prefix>> ReservationCommands::NetworkSubnets(const std::string& network) {
  std::vector<driver::NetworkRecord> matches;
  for (const driver::NetworkRecord& n : driver_.Networks()) {
    if (n.id == network || (network.size() >= kMinIdPrefix && n.id.starts_with(network))) matches.push_back(n);
  }
  if (matches.empty() && engine_ != nullptr) {
    Result<engine::EngineNetwork> named = engine_->InspectNetwork(network, kNetworkLookupTimeout);
    if (named.ok()) {
      if (std::optional<driver::NetworkRecord> n = driver_.FindNetwork(named->id)) matches.push_back(*n);
    } else if (named.status().code() != Code::kNotFound && !IsFullId(network)) {
      // Only dockerd knows network names: without its answer nothing is known about this one.
      return Unavailable(fmt::format(
          "cannot ask dockerd{} which network \"{}\" is: {}; give the network's id instead, or start dockerd",
          engine_address_.empty() ? "" : " at " + engine_address_, network, named.status().message()));
    }
  }
  if (matches.size() != 1) {
    return NotFound(fmt::format("network \"{}\" is not a static-macvlan network{}", network,
                                matches.empty() ? "" : " (the id prefix is ambiguous)"));
  }
  return matches[0].Subnets();
}

Result<std::vector<ipam::ReservationView>> ReservationCommands::List(const std::string& network) {
  std::vector<Prefix> subnets;
  if (!network.empty()) {
    Result<std::vector<Prefix>> found = NetworkSubnets(network);
    if (!found.ok()) return found.status();
    subnets = *found;
  }
  std::vector<ipam::ReservationView> views = ipam_.ListReservations();
  std::erase_if(views, [&](const ipam::ReservationView& v) {
    return !subnets.empty() &&
           std::none_of(subnets.begin(), subnets.end(), [&](const Prefix& p) { return p.ToString() == v.pool_subnet; });
  });
  return views;
}

Result<std::string> ReservationCommands::Reserve(const std::string& name, const std::string& address,
                                                 const std::string& network) {
  std::optional<IpAddress> ip = IpAddress::Parse(address);
  if (!ip) return InvalidArgument(fmt::format("invalid address \"{}\": want an address such as 192.0.2.10", address));
  Result<std::vector<Prefix>> subnets = NetworkSubnets(network);
  if (!subnets.ok()) return subnets.status();
  for (const Prefix& subnet : *subnets) {
    if (!subnet.Contains(*ip)) continue;
    std::vector<std::string> pools = ipam_.PoolsOnSubnet(subnet);
    if (pools.size() != 1) {
      return FailedPrecondition(
          fmt::format("network \"{}\" has no single address pool for {}", network, subnet.ToString()));
    }
    SMV_RETURN_IF_ERROR(ipam_.Reserve(pools.front(), name, *ip));
    return pools.front();
  }
  return InvalidArgument(fmt::format("address {} is outside every subnet of network \"{}\"", address, network));
}

Result<int> ReservationCommands::Release(const std::string& name_or_address) {
  Result<int> released = ipam_.Release(name_or_address);
  if (!released.ok()) return released.status();
  if (*released == 0) {
    return NotFound(fmt::format("no reservation for \"{}\" (see static-macvlan reservations ls)", name_or_address));
  }
  return *released;
}

Result<int> ReservationCommands::ReleaseNode(const std::string& node) { return ipam_.ReleaseNode(node); }

}  // namespace smv::daemon

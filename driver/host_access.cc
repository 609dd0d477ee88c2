// Host access (-o host_ip): the host's own macvlan link and a host route to each joined
// container; and the announcements of a joined container's addresses on the LAN.

#include "driver/driver_service.h"

#include <spdlog/spdlog.h>

#include "common/clock.h"
#include "driver_internal.h"

namespace smv::driver {

Status DriverService::CreateHostLinkLocked(const std::string& network_id, const NetworkOptions& options) {
  const std::string name = HostLinkName(network_id);
  // A link of this name can only be a leftover of this network (a crash before its record).
  if (Status s = links_.Delete(name); s.ok()) spdlog::warn("stale host link replaced name={}", name);
  // Its MAC comes from host_ip, as a container's from its address: recreated after a reboot or a
  // deletion, the link keeps its MAC, and the containers' ARP caches stay right.
  const IpAddress& ip = *options.host_ip;
  const std::string mac =
      ip.is_v4() ? MacForAddress(Prefix(ip, 32).ToString(), "") : MacForAddress("", Prefix(ip, 128).ToString());
  SMV_RETURN_IF_ERROR(links_.CreateMacvlan({name, options.MacvlanParent(), "bridge", options.mtu.value_or(0), mac}));
  Status made = links_.TuneHostLink(name);
  if (made.ok()) made = links_.SetUp(name);
  if (made.ok()) made = links_.AddHostAddress(name, *options.host_ip);
  if (!made.ok()) {
    LogIfFailed(links_.Delete(name), "rollback: delete host link");
    return made.Annotate(fmt::format("host access link {} for host_ip {}", name, options.host_ip->ToString()));
  }
  spdlog::info("host link ready name={} address={} parent={}", name, options.host_ip->ToString(),
               options.MacvlanParent());
  return OkStatus();
}

Status DriverService::RouteHostToLocked(const Network& network, const EndpointRecord& endpoint, bool add) {
  if (!network.options.host_ip) return OkStatus();
  const std::string link = HostLinkName(network.record.id);
  // Only the family the host has an address of: the other would route without a source.
  const std::string& cidr = network.options.host_ip->is_v4() ? endpoint.address_v4 : endpoint.address_v6;
  std::optional<Prefix> address = Prefix::Parse(cidr);
  if (!address) return OkStatus();
  Status routed =
      add ? links_.AddHostRoute(address->address(), link) : links_.DeleteHostRoute(address->address(), link);
  if (routed.code() == Code::kNotFound && !add) return OkStatus();  // gone already
  return routed.Annotate(
      fmt::format("host route {} {} dev {}", add ? "add" : "delete", address->address().ToString(), link));
}

void DriverService::AnnounceLocked(const Network& network, const EndpointRecord& endpoint) {
  if (announce_ == nullptr || network.options.announce_count == 0) return;
  // ipvlan l3 keeps the containers' addresses off the LAN's ARP: nothing to announce.
  if (network.options.ipvlan == IpvlanMode::kL3) return;
  const std::optional<MacAddress> mac = MacAddress::Parse(endpoint.mac);
  if (!mac) return;
  std::vector<Announcement> what;
  for (const Prefix& address : endpoint.Addresses()) {
    what.push_back({.link = network.options.MacvlanParent(), .mac = *mac, .address = address.address()});
  }
  announce_->Start(endpoint.endpoint_id, std::move(what), network.options.announce_count,
                   Millis(network.options.announce_interval_ms));
}

}  // namespace smv::driver

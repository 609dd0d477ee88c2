// LinkManager for host access (-o host_ip): the host link's sysctls, its address, host routes.

#include <linux/if_addr.h>
#include <linux/rtnetlink.h>

#include <fstream>

#include "driver/netlink/link_manager.h"
#include "netlink_plumbing.h"

namespace smv::nl {
namespace {

// `address` as a host prefix (/32, /128) in libnl's form.
Result<AddrPtr> HostPrefix(const IpAddress& address) {
  nl_addr* raw = nullptr;
  const std::string text = fmt::format("{}/{}", address.ToString(), address.bits());
  if (int rc = nl_addr_parse(text.c_str(), AddressFamily(address), &raw); rc < 0) {
    return NlStatus(rc, fmt::format("parse address \"{}\"", text));
  }
  return AddrPtr(raw);
}

Status WriteSysctl(const std::string& path, std::string_view value) {
  std::ofstream out(path);
  out << value;
  out.close();
  if (!out) return Internal(fmt::format("write {} to {}", value, path));
  return OkStatus();
}

Result<RoutePtr> HostRouteVia(const IpAddress& address, int index) {
  Result<AddrPtr> dst = HostPrefix(address);
  if (!dst.ok()) return dst.status();
  RoutePtr route(rtnl_route_alloc());
  rtnl_nexthop* hop = rtnl_route_nh_alloc();
  if (route == nullptr || hop == nullptr) return Internal("allocate route object");
  rtnl_route_set_family(route.get(), static_cast<uint8_t>(AddressFamily(address)));
  rtnl_route_set_table(route.get(), RT_TABLE_MAIN);
  rtnl_route_set_protocol(route.get(), RTPROT_STATIC);
  rtnl_route_set_scope(route.get(), RT_SCOPE_LINK);
  rtnl_route_set_type(route.get(), RTN_UNICAST);
  rtnl_route_set_dst(route.get(), dst->get());
  rtnl_route_nh_set_ifindex(hop, index);
  rtnl_route_add_nexthop(route.get(), hop);  // the route owns it now
  return route;
}

}  // namespace

Status LinkManager::TuneHostLink(const std::string& name) {
  const std::string conf = net_sysctl_dir_ + "/ipv4/conf/" + name + "/";
  // ARP flux: the host link answers ARP only for its own address (arp_ignore=1) and uses it as
  // the source of its own requests (arp_announce=2), never the host's other addresses.
  SMV_RETURN_IF_ERROR(WriteSysctl(conf + "arp_ignore", "1"));
  SMV_RETURN_IF_ERROR(WriteSysctl(conf + "arp_announce", "2"));
  // Loose reverse-path filtering: LAN hosts may reach host_ip through this link while their
  // return route goes through the parent; strict filtering would drop them.
  return WriteSysctl(conf + "rp_filter", "2");
}

Status LinkManager::AddHostAddress(const std::string& link, const IpAddress& address) {
  std::scoped_lock lock(mu_);
  Result<int> index = IndexOfLocked(link);
  if (!index.ok()) return index.status();
  Result<AddrPtr> local = HostPrefix(address);
  if (!local.ok()) return local.status();
  RtAddrPtr addr(rtnl_addr_alloc());
  if (addr == nullptr) return Internal("allocate address object");
  rtnl_addr_set_ifindex(addr.get(), *index);
  rtnl_addr_set_local(addr.get(), local->get());
  if (!address.is_v4()) rtnl_addr_set_flags(addr.get(), IFA_F_NODAD);  // usable at once
  const int rc = rtnl_addr_add(sock_.get(), addr.get(), NLM_F_CREATE | NLM_F_EXCL);
  if (rc < 0 && rc != -NLE_EXIST) return NlStatus(rc, fmt::format("add {} to \"{}\"", address.ToString(), link));
  return OkStatus();
}

Status LinkManager::AddHostRoute(const IpAddress& address, const std::string& link) {
  return ChangeHostRoute(address, link, true);
}

Status LinkManager::DeleteHostRoute(const IpAddress& address, const std::string& link) {
  return ChangeHostRoute(address, link, false);
}

Status LinkManager::ChangeHostRoute(const IpAddress& address, const std::string& link, bool add) {
  std::scoped_lock lock(mu_);
  Result<int> index = IndexOfLocked(link);
  if (!index.ok()) return index.status();
  Result<RoutePtr> route = HostRouteVia(address, *index);
  if (!route.ok()) return route.status();
  // EXCL: never replace a route of the host's own; one through this link already is fine.
  const int rc = add ? rtnl_route_add(sock_.get(), route->get(), NLM_F_CREATE | NLM_F_EXCL)
                     : rtnl_route_delete(sock_.get(), route->get(), 0);
  if (rc < 0 && !(add && rc == -NLE_EXIST)) {
    return NlStatus(rc, fmt::format("{} route {} dev {}", add ? "add" : "delete", address.ToString(), link));
  }
  return OkStatus();
}

}  // namespace smv::nl

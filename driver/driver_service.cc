#include "driver/driver_service.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>

#include "common/log.h"
#include "common/scope_exit.h"

namespace smv::driver {
namespace {

constexpr uint32_t kEthernetMtu = 1500;  // the example an MTU error suggests

// Rollbacks run while another error is being reported; theirs is logged, not returned.
void LogIfFailed(const Status& s, std::string_view what) {
  if (!s.ok()) spdlog::warn("{}: {}", what, s.message());
}

int64_t SystemNow() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// -o host_ip must be a free address inside one of the network's subnets, on a bridge-mode
// network (the host's link is a bridge-mode macvlan: it reaches only bridge-mode siblings).
Status CheckHostIp(const CreateNetworkCall& call, const NetworkOptions& options) {
  if (!options.host_ip) return OkStatus();
  const IpAddress& ip = *options.host_ip;
  auto bad = [&](std::string_view why) {
    return InvalidArgument(fmt::format("invalid value \"{}\" for option \"host_ip\": {} (example: -o host_ip={})",
                                       ip.ToString(), why, ip.is_v4() ? "192.0.2.253" : "2001:db8::fd"));
  };
  if (options.mode != MacvlanMode::kBridge) {
    return bad(fmt::format("host access needs macvlan_mode=bridge, this network is {}", MacvlanModeName(options.mode)));
  }
  std::string subnets;
  for (const auto* data : {&call.ipv4, &call.ipv6}) {
    for (const IpData& d : *data) {
      if (!d.pool.Contains(ip)) {
        subnets += (subnets.empty() ? "" : ", ") + d.pool.ToString();
        continue;
      }
      if (d.gateway && *d.gateway == ip) return bad("it is the network's gateway; want another address of the network");
      if (ip == d.pool.Network() || (ip.is_v4() && ip == d.pool.Last())) {
        return bad(fmt::format("it is the network or broadcast address of {}", d.pool.ToString()));
      }
      return OkStatus();
    }
  }
  return bad(fmt::format("want an address inside the network's subnet ({})", subnets.empty() ? "none" : subnets));
}

std::string JoinNames(const std::vector<nl::LinkInfo>& links) {
  std::string out;
  for (const nl::LinkInfo& link : links) {
    if (link.name == "lo" || link.kind == "macvlan") continue;
    if (!out.empty()) out += ", ";
    out += link.name;
  }
  return out.empty() ? "none" : out;
}

}  // namespace

Result<std::unique_ptr<DriverService>> DriverService::Create(nl::LinkOps& links, NetworkStore& store, Clock clock) {
  std::unique_ptr<DriverService> service(new DriverService(links, store, clock ? clock : SystemNow));
  std::scoped_lock lock(service->mu_);
  SMV_RETURN_IF_ERROR(service->LoadLocked());
  return service;
}

Status DriverService::LoadLocked() {
  Result<DriverSnapshot> snapshot = store_.Load();
  if (!snapshot.ok()) return snapshot.status().Annotate("load network state");
  for (NetworkRecord& record : snapshot->networks) {
    Result<NetworkOptions> options = ParseNetworkOptions(record.options);
    if (!options.ok()) {
      return options.status().Annotate(fmt::format("stored network {}", ShortId(record.id)));
    }
    const std::string id = record.id;
    networks_.emplace(id, Network{std::move(record), *options});
  }
  for (LinkRecord& link : snapshot->links) link_records_[link.name] = link;
  for (EndpointRecord& endpoint : snapshot->endpoints) endpoints_[endpoint.endpoint_id] = endpoint;
  spdlog::info("network state loaded networks={} endpoints={} links={}", networks_.size(), endpoints_.size(),
               link_records_.size());
  return OkStatus();
}

LinkRecord DriverService::LinkRecordLocked(const std::string& name) const {
  auto it = link_records_.find(name);
  return it == link_records_.end() ? LinkRecord{.name = name} : it->second;
}

int DriverService::NetworksOnParentLocked(const std::string& parent, const std::string& except_id) const {
  int n = 0;
  for (const auto& [id, network] : networks_) {
    if (id != except_id && network.options.parent == parent && network.options.promisc) ++n;
  }
  return n;
}

int DriverService::NetworksOnVlanLinkLocked(const std::string& link, const std::string& except_id) const {
  int n = 0;
  for (const auto& [id, network] : networks_) {
    if (id != except_id && network.options.vlan_id && network.options.vlan_link_name == link) ++n;
  }
  return n;
}

Result<nl::LinkInfo> DriverService::CheckParentLocked(const NetworkOptions& options) {
  Result<std::optional<nl::LinkInfo>> parent = links_.Find(options.parent);
  if (!parent.ok()) return parent.status();
  if (!parent->has_value()) {
    Result<std::vector<nl::LinkInfo>> all = links_.List();
    return NotFound(
        fmt::format("parent interface \"{}\" not found on this host (option -o parent={}); interfaces here: {}",
                    options.parent, options.parent, all.ok() ? JoinNames(*all) : "unknown"));
  }
  nl::LinkInfo info = **parent;
  if (IsContainerLinkKind(info.kind) && HasOurLinkPrefix(info.name)) {
    return InvalidArgument(
        fmt::format("invalid value \"{}\" for option \"parent\": it is a container link of static-macvlan, "
                    "want the host interface on the LAN (example: -o parent=eth1)",
                    options.parent));
  }
  if (options.mtu && *options.mtu > info.mtu) {
    return InvalidArgument(
        fmt::format("invalid value \"{}\" for option \"mtu\": the parent interface \"{}\" has MTU {}; want at "
                    "most {} (example: -o mtu={})",
                    *options.mtu, options.parent, info.mtu, info.mtu, std::min<uint32_t>(info.mtu, kEthernetMtu)));
  }
  if (!info.up) {
    // A down parent carries no traffic; bring it up as `ip link set up` would.
    SMV_RETURN_IF_ERROR(links_.SetUp(options.parent)
                            .Annotate(fmt::format("parent interface \"{}\" is down and could not be "
                                                  "brought up",
                                                  options.parent)));
    spdlog::info("parent link brought up name={}", options.parent);
    info.up = true;
  }
  return info;
}

Status DriverService::CheckOverlapLocked(const CreateNetworkCall& call, const NetworkOptions& options) const {
  for (const auto& [id, other] : networks_) {
    if (other.options.MacvlanParent() != options.MacvlanParent() || other.options.parent != options.parent) {
      continue;
    }
    for (const auto* mine : {&call.ipv4, &call.ipv6}) {
      for (const IpData& a : *mine) {
        for (const auto* theirs : {&other.record.ipv4, &other.record.ipv6}) {
          for (const IpData& b : *theirs) {
            if (a.pool.Overlaps(b.pool)) {
              return FailedPrecondition(
                  fmt::format("subnet {} overlaps subnet {} of network {} on the same link \"{}\"; networks "
                              "on one parent and VLAN need subnets that do not overlap",
                              a.pool.ToString(), b.pool.ToString(), ShortId(id), options.MacvlanParent()));
            }
          }
        }
      }
    }
  }
  return OkStatus();
}

Status DriverService::CheckAllowedParent(const NetworkOptions& options) const {
  if (allowed_parents_.empty() ||
      std::find(allowed_parents_.begin(), allowed_parents_.end(), options.parent) != allowed_parents_.end()) {
    return OkStatus();
  }
  std::string allowed;
  for (const std::string& p : allowed_parents_) allowed += (allowed.empty() ? "" : ", ") + p;
  return PermissionDenied(
      fmt::format("parent interface \"{}\" is not allowed on this host (option -o parent={}); allowed: {} "
                  "(static-macvlan serve --allowed-parents)",
                  options.parent, options.parent, allowed));
}

Result<std::optional<nl::LinkInfo>> DriverService::CheckVlanLinkLocked(const NetworkOptions& options,
                                                                       const nl::LinkInfo& parent) {
  const std::string& name = options.vlan_link_name;
  Result<std::optional<nl::LinkInfo>> existing = links_.Find(name);
  if (!existing.ok() || !existing->has_value()) return existing;
  const nl::LinkInfo& link = **existing;
  if (link.kind != "vlan" || link.vlan_id != *options.vlan_id || link.parent_index != parent.index) {
    return FailedPrecondition(fmt::format(
        "interface \"{}\" exists but is not VLAN {} on \"{}\" (it is {}{}); remove it or choose "
        "another name with -o vlan_name=NAME",
        name, *options.vlan_id, options.parent, link.kind.empty() ? "a device" : fmt::format("a {} link", link.kind),
        link.kind == "vlan" ? fmt::format(" with id {}", link.vlan_id) : ""));
  }
  return existing;
}

Status DriverService::EnsureVlanLinkLocked(const NetworkOptions& options, const std::optional<nl::LinkInfo>& existing,
                                           DriverBatch& batch, bool& created_now) {
  const std::string& name = options.vlan_link_name;
  LinkRecord record = LinkRecordLocked(name);
  if (existing) {
    if (!existing->up) SMV_RETURN_IF_ERROR(links_.SetUp(name));
    if (!link_records_.contains(name)) spdlog::info("vlan link adopted name={}", name);
  } else {
    SMV_RETURN_IF_ERROR(links_.CreateVlan(options.parent, *options.vlan_id, name));
    created_now = true;
    record.created_by_us = true;
    spdlog::info("vlan link created name={} parent={} vlan={}", name, options.parent, *options.vlan_id);
  }
  batch.put_links.push_back(record);
  return OkStatus();
}

Status DriverService::CreateNetwork(const CreateNetworkCall& call, const Admission& admit) {
  Result<NetworkOptions> parsed = ParseNetworkOptions(call.options);
  if (!parsed.ok()) return parsed.status();
  const NetworkOptions& options = *parsed;
  SMV_RETURN_IF_ERROR(CheckAllowedParent(options));
  std::scoped_lock lock(mu_);
  if (networks_.contains(call.network_id)) return OkStatus();
  Result<nl::LinkInfo> parent = CheckParentLocked(options);
  if (!parent.ok()) return parent.status();
  SMV_RETURN_IF_ERROR(CheckOverlapLocked(call, options));
  Result<std::optional<nl::LinkInfo>> vlan_link = std::optional<nl::LinkInfo>();
  if (options.vlan_id) vlan_link = CheckVlanLinkLocked(options, *parent);
  if (!vlan_link.ok()) return vlan_link.status();
  SMV_RETURN_IF_ERROR(CheckHostIp(call, options));
  if (admit) SMV_RETURN_IF_ERROR(admit(options));  // the last check before the kernel is touched

  DriverBatch batch;
  bool vlan_created_now = false;
  ScopeExit undo_vlan([&] {
    if (vlan_created_now) LogIfFailed(links_.Delete(options.vlan_link_name), "rollback: delete vlan link");
  });
  if (options.vlan_id) SMV_RETURN_IF_ERROR(EnsureVlanLinkLocked(options, *vlan_link, batch, vlan_created_now));
  bool promisc_now = false;
  ScopeExit undo_promisc([&] {
    if (promisc_now) LogIfFailed(links_.SetPromisc(options.parent, false), "rollback: promisc off");
  });
  if (options.promisc && !parent->promisc) {
    SMV_RETURN_IF_ERROR(links_.SetPromisc(options.parent, true));
    promisc_now = true;
    LinkRecord record = LinkRecordLocked(options.parent);
    record.promisc_by_us = true;
    batch.put_links.push_back(record);
  }
  bool host_link_now = false;
  ScopeExit undo_host_link([&] {
    if (host_link_now) LogIfFailed(links_.Delete(HostLinkName(call.network_id)), "rollback: delete host link");
  });
  if (options.host_ip) {
    SMV_RETURN_IF_ERROR(CreateHostLinkLocked(call.network_id, options));
    host_link_now = true;
  }
  NetworkRecord record{call.network_id, call.options, call.ipv4, call.ipv6, call.internal};
  batch.put_networks.push_back(record);
  SMV_RETURN_IF_ERROR(store_.Apply(batch));
  undo_vlan.Release();
  undo_promisc.Release();
  undo_host_link.Release();
  for (const LinkRecord& link : batch.put_links) link_records_[link.name] = link;
  networks_.emplace(call.network_id, Network{record, options});
  spdlog::info("network created id={} parent={} vlan={} mode={}", ShortId(call.network_id), options.parent,
               options.vlan_id ? std::to_string(*options.vlan_id) : "none", MacvlanModeName(options.mode));
  return OkStatus();
}

void DriverService::DeleteVlanIfLastLocked(const Network& network, DriverBatch& batch) {
  const NetworkOptions& options = network.options;
  if (!options.vlan_id) return;
  const std::string& name = options.vlan_link_name;
  if (NetworksOnVlanLinkLocked(name, network.record.id) > 0) return;
  const LinkRecord record = LinkRecordLocked(name);
  batch.delete_links.push_back(name);
  if (!record.created_by_us) {
    spdlog::info("vlan link kept name={} reason=not-created-by-us", name);
    return;
  }
  Result<std::optional<nl::LinkInfo>> link = links_.Find(name);
  if (!link.ok() || !link->has_value()) return;
  // Never delete a link without a parent: that is a real NIC, not our VLAN link.
  if ((*link)->kind != "vlan" || (*link)->parent_index == 0) {
    spdlog::warn("vlan link kept name={} reason=not-a-vlan-link", name);
    return;
  }
  if (Status s = links_.Delete(name); !s.ok() && s.code() != Code::kNotFound) {
    spdlog::warn("vlan link not deleted name={}: {}", name, s.message());
    return;
  }
  spdlog::info("vlan link deleted name={}", name);
}

void DriverService::RestorePromiscIfLastLocked(const Network& network, DriverBatch& batch) {
  const NetworkOptions& options = network.options;
  if (!options.promisc || NetworksOnParentLocked(options.parent, network.record.id) > 0) return;
  const LinkRecord record = LinkRecordLocked(options.parent);
  if (!record.promisc_by_us) return;
  if (Status s = links_.SetPromisc(options.parent, false); !s.ok()) {
    spdlog::warn("promiscuous mode not restored on {}: {}", options.parent, s.message());
  } else {
    spdlog::info("promiscuous mode restored name={} promisc=off", options.parent);
  }
  batch.delete_links.push_back(options.parent);
}

Status DriverService::DeleteNetwork(const std::string& network_id) {
  // Links of endpoints deleted just before are gone when this returns (docker network rm
  // leaves the host as it was).
  if (reaper_ != nullptr) reaper_->Drain();
  std::scoped_lock lock(mu_);
  auto it = networks_.find(network_id);
  if (it == networks_.end()) return OkStatus();
  DriverBatch batch;
  for (const auto& [id, endpoint] : endpoints_) {
    if (endpoint.network_id != network_id) continue;
    if (Status s = links_.Delete(endpoint.link_name); !s.ok() && s.code() != Code::kNotFound) {
      spdlog::warn("endpoint link not deleted name={}: {}", endpoint.link_name, s.message());
    }
    batch.delete_endpoints.push_back(id);
  }
  if (it->second.options.host_ip) {  // before its VLAN link, which would take it along
    const std::string host_link = HostLinkName(network_id);
    if (Status s = links_.Delete(host_link); !s.ok() && s.code() != Code::kNotFound) {
      spdlog::warn("host link not deleted name={}: {}", host_link, s.message());
    }
  }
  DeleteVlanIfLastLocked(it->second, batch);
  RestorePromiscIfLastLocked(it->second, batch);
  batch.delete_networks.push_back(network_id);
  SMV_RETURN_IF_ERROR(store_.Apply(batch));
  for (const std::string& id : batch.delete_endpoints) endpoints_.erase(id);
  for (const std::string& name : batch.delete_links) link_records_.erase(name);
  networks_.erase(it);
  spdlog::info("network deleted id={}", ShortId(network_id));
  return OkStatus();
}

Result<CreateEndpointResult> DriverService::CreateEndpoint(const CreateEndpointCall& call) {
  std::scoped_lock lock(mu_);
  auto net = networks_.find(call.network_id);
  if (net == networks_.end()) {
    return NotFound(fmt::format("network {} is not known to static-macvlan", ShortId(call.network_id)));
  }
  if (call.endpoint_id.size() < kLinkIdDigits) {
    return InvalidArgument(fmt::format("invalid EndpointID \"{}\"", call.endpoint_id));
  }
  if (endpoints_.contains(call.endpoint_id)) return CreateEndpointResult{};
  if (net->second.options.ipvlan) return CreateIpvlanEndpointLocked(call, net->second.options);
  std::string mac = call.mac;
  if (!mac.empty()) {
    std::optional<MacAddress> parsed = MacAddress::Parse(mac);
    if (!parsed) return InvalidArgument(fmt::format("invalid MAC address \"{}\"", mac));
    mac = parsed->ToString();
  } else {
    mac = MacForAddress(call.address_v4, call.address_v6);
  }
  const NetworkOptions& options = net->second.options;
  const std::string link_name = EndpointLinkName(call.endpoint_id);
  // A link of this name can only be a leftover of an earlier attempt for this very endpoint.
  if (Status s = links_.Delete(link_name); s.ok()) {
    spdlog::warn("stale endpoint link replaced name={}", link_name);
  }
  nl::MacvlanSpec spec{link_name, options.MacvlanParent(), std::string(MacvlanModeName(options.mode)),
                       options.mtu.value_or(0), mac};
  SMV_RETURN_IF_ERROR(links_.CreateMacvlan(spec).Annotate(fmt::format(
      "create macvlan link for endpoint {} on \"{}\"", ShortId(call.endpoint_id), options.MacvlanParent())));
  SMV_RETURN_IF_ERROR(SaveNewEndpointLocked(call, link_name, mac));
  spdlog::info("endpoint created id={} network={} link={} mac={} address={}", ShortId(call.endpoint_id),
               ShortId(call.network_id), link_name, mac, call.address_v4);
  return CreateEndpointResult{call.mac.empty() ? mac : ""};
}

Status DriverService::SaveNewEndpointLocked(const CreateEndpointCall& call, const std::string& link_name,
                                            const std::string& mac) {
  ScopeExit undo_link([&] { LogIfFailed(links_.Delete(link_name), "rollback: delete endpoint link"); });
  EndpointRecord record{call.network_id, call.endpoint_id, link_name, mac, call.address_v4, call.address_v6, "", "",
                        clock_()};
  DriverBatch batch;
  batch.put_endpoints.push_back(record);
  SMV_RETURN_IF_ERROR(store_.Apply(batch));
  undo_link.Release();
  endpoints_[call.endpoint_id] = record;
  return OkStatus();
}

Result<CreateEndpointResult> DriverService::CreateIpvlanEndpointLocked(const CreateEndpointCall& call,
                                                                       const NetworkOptions& options) {
  if (!call.mac.empty()) {
    return InvalidArgument(fmt::format(
        "--mac-address {}: an ipvlan network (-o ipvlan_mode) gives every container its parent's MAC, so a MAC of "
        "its own cannot be set; leave --mac-address out or use a macvlan network",
        call.mac));
  }
  Result<std::optional<nl::LinkInfo>> parent = links_.Find(options.MacvlanParent());
  if (!parent.ok()) return parent.status();
  if (!parent->has_value()) return NotFound(fmt::format("parent interface \"{}\" not found", options.MacvlanParent()));
  const std::string link_name = EndpointLinkName(call.endpoint_id);
  if (Status s = links_.Delete(link_name); s.ok()) spdlog::warn("stale endpoint link replaced name={}", link_name);
  const std::string mode = *options.ipvlan == IpvlanMode::kL2 ? "l2" : "l3";
  SMV_RETURN_IF_ERROR(links_.CreateIpvlan(link_name, options.MacvlanParent(), mode, options.mtu.value_or(0))
                          .Annotate(fmt::format("create ipvlan link for endpoint {} on \"{}\"",
                                                ShortId(call.endpoint_id), options.MacvlanParent())));
  // The MAC on the wire is the parent's: kept for the announcements, not returned to dockerd.
  SMV_RETURN_IF_ERROR(SaveNewEndpointLocked(call, link_name, (*parent)->mac));
  spdlog::info("endpoint created id={} network={} link={} (ipvlan {}) address={}", ShortId(call.endpoint_id),
               ShortId(call.network_id), link_name, mode, call.address_v4);
  return CreateEndpointResult{};
}

Result<JoinResult> DriverService::Join(const std::string& network_id, const std::string& endpoint_id,
                                       const std::string& sandbox_key) {
  std::scoped_lock lock(mu_);
  auto net = networks_.find(network_id);
  if (net == networks_.end()) {
    return NotFound(fmt::format("network {} is not known to static-macvlan", ShortId(network_id)));
  }
  auto ep = endpoints_.find(endpoint_id);
  if (ep == endpoints_.end()) {
    return NotFound(fmt::format("endpoint {} is not known to static-macvlan", ShortId(endpoint_id)));
  }
  Result<std::optional<nl::LinkInfo>> link = links_.Find(ep->second.link_name);
  if (!link.ok()) return link.status();
  if (!link->has_value()) {
    return FailedPrecondition(fmt::format("the macvlan link \"{}\" of endpoint {} has disappeared",
                                          ep->second.link_name, ShortId(endpoint_id)));
  }
  const Network& network = net->second;
  JoinResult result;
  result.src_name = ep->second.link_name;
  // Only Join's Gateway becomes the container's default route; internal networks get none.
  if (network.options.default_route && !network.record.internal) {
    auto gateway_for = [](const std::vector<IpData>& data, const std::string& address) {
      std::optional<Prefix> mine = Prefix::Parse(address);
      for (const IpData& d : data) {
        if (mine && d.gateway && d.pool.Contains(mine->address())) return d.gateway;
      }
      return std::optional<IpAddress>();
    };
    result.gateway_v4 = gateway_for(network.record.ipv4, ep->second.address_v4);
    result.gateway_v6 = gateway_for(network.record.ipv6, ep->second.address_v6);
  }
  for (const Route& route : network.options.routes) {
    // A route of a family the container has no address of would make its start fail.
    const bool v4 = route.destination.family() == Family::kV4;
    if ((v4 && !ep->second.address_v4.empty()) || (!v4 && !ep->second.address_v6.empty())) {
      result.routes.push_back(route);
    }
  }
  if (ep->second.sandbox_key != sandbox_key) {
    EndpointRecord updated = ep->second;
    updated.sandbox_key = sandbox_key;
    SMV_RETURN_IF_ERROR(SaveEndpointLocked(updated));
  }
  spdlog::info("endpoint joined id={} sandbox={}", ShortId(endpoint_id), sandbox_key);
  RouteHostToLocked(network, ep->second, true);
  AnnounceLocked(network, ep->second);
  return result;
}

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

void DriverService::RouteHostToLocked(const Network& network, const EndpointRecord& endpoint, bool add) {
  if (!network.options.host_ip) return;
  const std::string link = HostLinkName(network.record.id);
  // Only the family the host has an address of: the other would route without a source.
  const std::string& cidr = network.options.host_ip->is_v4() ? endpoint.address_v4 : endpoint.address_v6;
  std::optional<Prefix> address = Prefix::Parse(cidr);
  if (!address) return;
  Status routed =
      add ? links_.AddHostRoute(address->address(), link) : links_.DeleteHostRoute(address->address(), link);
  if (!routed.ok() && !(routed.code() == Code::kNotFound && !add)) {
    spdlog::warn("host route {} {} dev {}: {}", add ? "add" : "delete", address->address().ToString(), link,
                 routed.message());
  }
}

void DriverService::AnnounceLocked(const Network& network, const EndpointRecord& endpoint) {
  if (announce_ == nullptr || network.options.announce_count == 0) return;
  // ipvlan l3 keeps the containers' addresses off the LAN's ARP: nothing to announce.
  if (network.options.ipvlan == IpvlanMode::kL3) return;
  const std::optional<MacAddress> mac = MacAddress::Parse(endpoint.mac);
  if (!mac) return;
  std::vector<Announcement> what;
  for (const std::string& cidr : {endpoint.address_v4, endpoint.address_v6}) {
    if (std::optional<Prefix> address = Prefix::Parse(cidr)) {
      what.push_back({.link = network.options.MacvlanParent(), .mac = *mac, .address = address->address()});
    }
  }
  announce_->Start(endpoint.endpoint_id, std::move(what), network.options.announce_count,
                   std::chrono::milliseconds(network.options.announce_interval_ms));
}

Status DriverService::Leave(const std::string& network_id, const std::string& endpoint_id) {
  spdlog::debug("endpoint left id={} network={}", ShortId(endpoint_id), ShortId(network_id));
  if (announce_ != nullptr) announce_->Cancel(endpoint_id);
  return OkStatus();  // dockerd moves the link back to the host; DeleteEndpoint removes it
}

Status DriverService::DeleteEndpoint(const std::string& network_id, const std::string& endpoint_id) {
  if (announce_ != nullptr) announce_->Cancel(endpoint_id);
  std::scoped_lock lock(mu_);
  auto ep = endpoints_.find(endpoint_id);
  const std::string link_name = ep != endpoints_.end() ? ep->second.link_name : EndpointLinkName(endpoint_id);
  if (ep != endpoints_.end()) {
    if (auto net = networks_.find(ep->second.network_id); net != networks_.end()) {
      RouteHostToLocked(net->second, ep->second, false);
    }
  }
  if (reaper_ == nullptr) {
    if (Status s = links_.Delete(link_name); !s.ok() && s.code() != Code::kNotFound) {
      return s.Annotate(fmt::format("delete link of endpoint {}", ShortId(endpoint_id)));
    }
  }
  if (ep != endpoints_.end()) {
    DriverBatch batch;
    batch.delete_endpoints.push_back(endpoint_id);
    SMV_RETURN_IF_ERROR(store_.Apply(batch));
    endpoints_.erase(ep);
    spdlog::info("endpoint deleted id={} network={} link={}", ShortId(endpoint_id), ShortId(network_id), link_name);
  }
  // The record is gone first: should the deletion be lost, the link is an orphan that the
  // next start sweeps, never an endpoint that looks alive.
  if (reaper_ != nullptr) reaper_->Delete(link_name);
  return OkStatus();
}

void DriverService::RepairNetworkLinksLocked(const std::string& id, const NetworkOptions& options,
                                             ReconcileReport& report, DriverBatch& batch) {
  Result<std::optional<nl::LinkInfo>> parent = links_.Find(options.parent);
  if (!parent.ok() || !parent->has_value()) {
    report.problems.push_back(
        fmt::format("network {}: parent interface \"{}\" is missing", ShortId(id), options.parent));
    return;
  }
  auto problem = [&](const Status& s) {
    report.problems.push_back(fmt::format("network {}: {}", ShortId(id), s.message()));
  };
  if (!(*parent)->up) {
    if (Status s = links_.SetUp(options.parent); !s.ok()) problem(s);
  }
  if (options.vlan_id) {
    Result<std::optional<nl::LinkInfo>> vlan = links_.Find(options.vlan_link_name);
    if (vlan.ok() && !vlan->has_value()) {
      if (Status s = links_.CreateVlan(options.parent, *options.vlan_id, options.vlan_link_name); !s.ok()) {
        problem(s);
      } else {
        ++report.vlan_links_recreated;
        LinkRecord record = LinkRecordLocked(options.vlan_link_name);
        record.created_by_us = true;
        link_records_[record.name] = record;
        batch.put_links.push_back(record);
      }
    }
  }
  if (options.host_ip) RepairHostAccessLocked(id, options, report);
  if (options.promisc && !(*parent)->promisc) {
    if (Status s = links_.SetPromisc(options.parent, true); !s.ok()) {
      problem(s);
      return;
    }
    LinkRecord record = LinkRecordLocked(options.parent);
    record.promisc_by_us = true;
    link_records_[record.name] = record;
    batch.put_links.push_back(record);
  }
}

void DriverService::RepairHostAccessLocked(const std::string& id, const NetworkOptions& options,
                                           ReconcileReport& report) {
  const std::string name = HostLinkName(id);
  Result<std::optional<nl::LinkInfo>> link = links_.Find(name);
  if (link.ok() && !link->has_value()) {  // deleted behind our back, or a reboot
    if (Status s = CreateHostLinkLocked(id, options); !s.ok()) {
      report.problems.push_back(fmt::format("network {}: {}", ShortId(id), s.message()));
      return;
    }
    ++report.host_links_recreated;
  }
  const Network* network = nullptr;
  if (auto it = networks_.find(id); it != networks_.end()) network = &it->second;
  if (network == nullptr) return;
  for (const auto& [endpoint_id, endpoint] : endpoints_) {
    if (endpoint.network_id == id && !endpoint.sandbox_key.empty()) RouteHostToLocked(*network, endpoint, true);
  }
}

void DriverService::DropDeadEndpointsLocked(ReconcileReport& report, DriverBatch& batch) {
  for (auto it = endpoints_.begin(); it != endpoints_.end();) {
    const EndpointRecord& e = it->second;
    if (networks_.contains(e.network_id)) {
      // After Join dockerd moves the link into the container; back in the host means the
      // container is gone and DeleteEndpoint never reached us. Before Join (no sandbox yet)
      // dockerd may still retry the call, so such links are left to it.
      Result<std::optional<nl::LinkInfo>> link = links_.Find(e.link_name);
      const bool back_in_host =
          !e.sandbox_key.empty() && link.ok() && link->has_value() && IsContainerLinkKind((*link)->kind);
      if (!back_in_host || !links_.Delete(e.link_name).ok()) {
        ++it;
        continue;
      }
      RouteHostToLocked(networks_.at(e.network_id), e, false);
      spdlog::info("endpoint {} torn down at start link={}", ShortId(it->first), e.link_name);
      report.torn_down.push_back(e);
      ++report.orphan_links_deleted;
    } else {
      if (Status s = links_.Delete(e.link_name); !s.ok() && s.code() != Code::kNotFound) {
        report.problems.push_back(
            fmt::format("endpoint {}: link {} not deleted: {}", ShortId(it->first), e.link_name, s.message()));
      }
      ++report.endpoints_dropped;
    }
    batch.delete_endpoints.push_back(it->first);
    it = endpoints_.erase(it);
  }
}

void DriverService::DeleteOrphanLinksLocked(ReconcileReport& report) {
  Result<std::vector<nl::LinkInfo>> all = links_.List();
  if (!all.ok()) {
    report.problems.push_back(all.status().message());
    return;
  }
  for (const nl::LinkInfo& link : *all) {
    if (link.kind == "macvlan" && HasHostLinkShape(link.name)) {
      bool owned = false;
      for (const auto& [id, network] : networks_)
        owned = owned || (network.options.host_ip && HostLinkName(id) == link.name);
      if (!owned && links_.Delete(link.name).ok()) ++report.orphan_links_deleted;
      continue;
    }
    if (!IsContainerLinkKind(link.kind) || !HasEndpointLinkShape(link.name)) {
      continue;
    }
    bool owned = false;
    for (const auto& [id, endpoint] : endpoints_) owned = owned || endpoint.link_name == link.name;
    if (!owned && links_.Delete(link.name).ok()) ++report.orphan_links_deleted;
  }
}

ReconcileReport DriverService::Reconcile() {
  std::scoped_lock lock(mu_);
  ReconcileReport report;
  DriverBatch batch;
  for (const auto& [id, network] : networks_) RepairNetworkLinksLocked(id, network.options, report, batch);
  DropDeadEndpointsLocked(report, batch);
  DeleteOrphanLinksLocked(report);
  if (Status s = store_.Apply(batch); !s.ok()) report.problems.push_back(s.message());
  spdlog::info("reconciled vlan_links_recreated={} endpoints_dropped={} orphan_links_deleted={} problems={}",
               report.vlan_links_recreated, report.endpoints_dropped, report.orphan_links_deleted,
               report.problems.size());
  for (const std::string& problem : report.problems) spdlog::warn("reconcile: {}", problem);
  return report;
}

Status DriverService::SetEndpointName(const std::string& endpoint_id, const std::string& name) {
  std::scoped_lock lock(mu_);
  auto it = endpoints_.find(endpoint_id);
  if (it == endpoints_.end()) {
    return NotFound(fmt::format("endpoint {} is not known to static-macvlan", ShortId(endpoint_id)));
  }
  if (it->second.container_name == name) return OkStatus();
  EndpointRecord updated = it->second;
  updated.container_name = name;
  return SaveEndpointLocked(updated);
}

Result<nl::NamespaceLinkDown> DriverService::SetAddressDownInContainer(const std::string& endpoint_id,
                                                                       const IpAddress& address) {
  const std::optional<EndpointRecord> endpoint = FindEndpoint(endpoint_id);
  if (!endpoint || endpoint->sandbox_key.empty()) {
    return NotFound(fmt::format("endpoint {} is not joined to a container", ShortId(endpoint_id)));
  }
  bool own = false;
  for (const std::string& cidr : {endpoint->address_v4, endpoint->address_v6}) {
    const std::optional<Prefix> mine = Prefix::Parse(cidr);
    own = own || (mine && mine->address() == address);
  }
  if (!own) {
    return InvalidArgument(
        fmt::format("address {} is not one of endpoint {}'s", address.ToString(), ShortId(endpoint_id)));
  }
  // Outside mu_: the container's namespace is none of the driver's state, and Join need not wait.
  return links_.SetLinkDownInNamespace(endpoint->sandbox_key, address);
}

Status DriverService::SaveEndpointLocked(const EndpointRecord& record) {
  DriverBatch batch;
  batch.put_endpoints.push_back(record);
  SMV_RETURN_IF_ERROR(store_.Apply(batch));
  endpoints_[record.endpoint_id] = record;
  return OkStatus();
}

std::vector<std::string> DriverService::NetworksOnSubnet(const Prefix& subnet) const {
  std::scoped_lock lock(mu_);
  std::vector<std::string> out;
  for (const auto& [id, network] : networks_) {
    for (const auto* data : {&network.record.ipv4, &network.record.ipv6}) {
      for (const IpData& d : *data) {
        if (d.pool == subnet) out.push_back(id);
      }
    }
  }
  return out;
}

std::vector<NetworkRecord> DriverService::Networks() const {
  std::scoped_lock lock(mu_);
  std::vector<NetworkRecord> out;
  for (const auto& [id, network] : networks_) out.push_back(network.record);
  return out;
}

std::optional<NetworkRecord> DriverService::FindNetwork(const std::string& network_id) const {
  std::scoped_lock lock(mu_);
  auto it = networks_.find(network_id);
  if (it == networks_.end()) return std::nullopt;
  return it->second.record;
}

std::optional<EndpointRecord> DriverService::FindEndpoint(const std::string& endpoint_id) const {
  std::scoped_lock lock(mu_);
  auto it = endpoints_.find(endpoint_id);
  if (it == endpoints_.end()) return std::nullopt;
  return it->second;
}

std::vector<EndpointRecord> DriverService::Endpoints() const {
  std::scoped_lock lock(mu_);
  std::vector<EndpointRecord> out;
  for (const auto& [id, endpoint] : endpoints_) out.push_back(endpoint);
  return out;
}

std::optional<LinkRecord> DriverService::FindLink(const std::string& name) const {
  std::scoped_lock lock(mu_);
  auto it = link_records_.find(name);
  if (it == link_records_.end()) return std::nullopt;
  return it->second;
}

}  // namespace smv::driver

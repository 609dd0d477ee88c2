// NetworkDriver.CreateNetwork and DeleteNetwork: the checks of parent, overlap, VLAN link and
// host_ip before any kernel change, the all-or-nothing create, the best-effort delete.

#include "driver/driver_service.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "common/log.h"
#include "common/scope_exit.h"
#include "driver/subnet_overlap.h"
#include "driver_internal.h"

namespace smv::driver {
namespace {

constexpr uint32_t kEthernetMtu = 1500;  // the example an MTU error suggests

// An example host_ip inside the network's own first subnet of `family` (not its gateway): near
// the end of an IPv4 subnet (.253 of a /24), ::fd of an IPv6 one.
std::string ExampleHostIp(const CreateNetworkCall& call, Family family) {
  for (const IpData& d : family == Family::kV4 ? call.ipv4 : call.ipv6) {
    if (d.pool.family() != family) continue;
    const Uint128 base = family == Family::kV4 ? d.pool.Last().value() - 2 : d.pool.Network().value() + 0xfd;
    IpAddress example(family, base);
    if (d.gateway && *d.gateway == example) example = IpAddress(family, family == Family::kV4 ? base - 1 : base + 1);
    if (d.pool.Contains(example)) return example.ToString();
  }
  return family == Family::kV4 ? "192.0.2.253" : "2001:db8::fd";
}

// -o host_ip must be a free address inside one of the network's subnets, on a bridge-mode
// network (the host's link is a bridge-mode macvlan: it reaches only bridge-mode siblings).
Status CheckHostIp(const CreateNetworkCall& call, const NetworkOptions& options) {
  if (!options.host_ip) return OkStatus();
  const IpAddress& ip = *options.host_ip;
  auto bad = [&](std::string_view why) {
    return InvalidArgument(fmt::format("invalid value \"{}\" for option \"host_ip\": {} (example: -o host_ip={})",
                                       ip.ToString(), why, ExampleHostIp(call, ip.family())));
  };
  if (options.mode != MacvlanMode::kBridge) {
    return bad(fmt::format("host access needs macvlan_mode=bridge, this network is {}", MacvlanModeName(options.mode)));
  }
  std::string subnets;
  for (const IpData& d : call.Pools()) {
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
  const std::vector<Prefix> subnets = SubnetsOf(call.Pools());
  for (const auto& [id, other] : networks_) {
    if (!ShareWire(options, other.options)) continue;
    const std::vector<SubnetOverlap> overlaps = OverlappingSubnets(subnets, other.record.Subnets());
    if (overlaps.empty()) continue;
    return FailedPrecondition(fmt::format(
        "subnet {} overlaps subnet {} of network {} on the same link \"{}\"; networks on one parent and VLAN "
        "need subnets that do not overlap",
        overlaps[0].subnet.ToString(), overlaps[0].other.ToString(), ShortId(id), options.MacvlanParent()));
  }
  return OkStatus();
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

}  // namespace smv::driver

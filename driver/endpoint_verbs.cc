// The endpoint verbs: CreateEndpoint, Join, Leave, DeleteEndpoint, and what the daemon learns
// of an endpoint afterwards (its container name, an address given away).

#include "driver/driver_service.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "common/log.h"
#include "common/scope_exit.h"
#include "driver_internal.h"

namespace smv::driver {

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
  if (Status s = RouteHostToLocked(network, ep->second, true); !s.ok()) spdlog::warn("{}", s.message());
  AnnounceLocked(network, ep->second);
  return result;
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
      if (Status s = RouteHostToLocked(net->second, ep->second, false); !s.ok()) spdlog::warn("{}", s.message());
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

Result<nl::ContainerLinkDeletion> DriverService::DeleteContainerLinkCarrying(const std::string& endpoint_id,
                                                                             const IpAddress& address) {
  std::optional<EndpointRecord> endpoint;
  std::string parent;  // the host link the endpoint's link hangs on, wherever dockerd moved it
  {
    std::scoped_lock lock(mu_);
    if (auto it = endpoints_.find(endpoint_id); it != endpoints_.end()) endpoint = it->second;
    if (endpoint) {
      if (auto net = networks_.find(endpoint->network_id); net != networks_.end()) {
        parent = net->second.options.MacvlanParent();
      }
    }
  }
  if (!endpoint || endpoint->sandbox_key.empty() || parent.empty()) {
    return NotFound(fmt::format("endpoint {} is not joined to a container", ShortId(endpoint_id)));
  }
  const std::vector<Prefix> own = endpoint->Addresses();
  if (std::none_of(own.begin(), own.end(), [&](const Prefix& mine) { return mine.address() == address; })) {
    return InvalidArgument(
        fmt::format("address {} is not one of endpoint {}'s", address.ToString(), ShortId(endpoint_id)));
  }
  // Outside mu_: the container's namespace is none of the driver's state, and Join need not wait.
  // The MAC names the endpoint's link wherever dockerd moved it (dockerd sets the MAC this driver
  // answered on the link in the container; an ipvlan link has its parent's, as recorded).
  return links_.DeleteContainerLink(endpoint->mac, address, parent);
}

Status DriverService::SaveEndpointLocked(const EndpointRecord& record) {
  DriverBatch batch;
  batch.put_endpoints.push_back(record);
  SMV_RETURN_IF_ERROR(store_.Apply(batch));
  endpoints_[record.endpoint_id] = record;
  return OkStatus();
}

}  // namespace smv::driver

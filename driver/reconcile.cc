// Reconcile, before the socket opens: repair what the kernel lost of stored networks, drop or
// tear down endpoints that are gone, sweep links of ours that no record owns.

#include "driver/driver_service.h"

#include <spdlog/spdlog.h>

#include "common/log.h"

namespace smv::driver {

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

}  // namespace smv::driver

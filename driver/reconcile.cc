// Reconcile, before the socket opens: repair what the kernel lost of stored networks, drop or
// tear down endpoints that are gone, sweep links of ours that no record owns. Every lookup or
// deletion that fails is a problem in the report (the daemon starts anyway and logs them).

#include "driver/driver_service.h"

#include <spdlog/spdlog.h>

#include "common/log.h"

namespace smv::driver {
namespace {

// A deletion that found nothing to delete did its job.
bool DeleteFailed(const Status& s) { return !s.ok() && s.code() != Code::kNotFound; }

std::string NotLookedUp(std::string_view what, const std::string& name, const Status& s) {
  return fmt::format("{} \"{}\" could not be looked up: {}", what, name, s.message());
}

void AddProblem(ReconcileReport& report, std::string_view kind, const std::string& id, const std::string& what) {
  report.problems.push_back(fmt::format("{} {}: {}", kind, ShortId(id), what));
}

}  // namespace

void DriverService::RepairNetworkLinksLocked(const std::string& id, const NetworkOptions& options,
                                             ReconcileReport& report, DriverBatch& batch) {
  auto problem = [&](const std::string& what) { AddProblem(report, "network", id, what); };
  Result<std::optional<nl::LinkInfo>> parent = links_.Find(options.parent);
  if (!parent.ok()) return problem(NotLookedUp("parent interface", options.parent, parent.status()));
  if (!parent->has_value()) return problem(fmt::format("parent interface \"{}\" is missing", options.parent));
  if (!(*parent)->up) {
    if (Status s = links_.SetUp(options.parent); !s.ok()) problem(s.message());
  }
  if (options.vlan_id) RepairVlanLinkLocked(id, options, report, batch);
  if (options.host_ip) RepairHostAccessLocked(id, options, report);
  if (options.promisc && !(*parent)->promisc) {
    if (Status s = links_.SetPromisc(options.parent, true); !s.ok()) return problem(s.message());
    LinkRecord record = LinkRecordLocked(options.parent);
    record.promisc_by_us = true;
    link_records_[record.name] = record;
    batch.put_links.push_back(record);
  }
}

void DriverService::RepairVlanLinkLocked(const std::string& id, const NetworkOptions& options, ReconcileReport& report,
                                         DriverBatch& batch) {
  auto problem = [&](const std::string& what) { AddProblem(report, "network", id, what); };
  Result<std::optional<nl::LinkInfo>> vlan = links_.Find(options.vlan_link_name);
  if (!vlan.ok()) return problem(NotLookedUp("vlan link", options.vlan_link_name, vlan.status()));
  if (vlan->has_value()) return;
  if (Status s = links_.CreateVlan(options.parent, *options.vlan_id, options.vlan_link_name); !s.ok()) {
    return problem(s.message());
  }
  ++report.vlan_links_recreated;
  LinkRecord record = LinkRecordLocked(options.vlan_link_name);
  record.created_by_us = true;
  link_records_[record.name] = record;
  batch.put_links.push_back(record);
}

void DriverService::RepairHostAccessLocked(const std::string& id, const NetworkOptions& options,
                                           ReconcileReport& report) {
  auto problem = [&](const std::string& what) { AddProblem(report, "network", id, what); };
  const std::string name = HostLinkName(id);
  Result<std::optional<nl::LinkInfo>> link = links_.Find(name);
  if (!link.ok()) {
    problem(NotLookedUp("host link", name, link.status()));
  } else if (!link->has_value()) {  // deleted behind our back, or a reboot
    if (Status s = CreateHostLinkLocked(id, options); !s.ok()) return problem(s.message());
    ++report.host_links_recreated;
  }
  auto network = networks_.find(id);
  if (network == networks_.end()) return;
  for (const auto& [endpoint_id, endpoint] : endpoints_) {
    if (endpoint.network_id != id || endpoint.sandbox_key.empty()) continue;
    if (Status s = RouteHostToLocked(network->second, endpoint, true); !s.ok()) problem(s.message());
  }
}

bool DriverService::TearDownIfBackInHostLocked(const EndpointRecord& e, ReconcileReport& report) {
  // After Join dockerd moves the link into the container; back in the host means the container
  // is gone and DeleteEndpoint never reached us. Before Join (no sandbox yet) dockerd may still
  // retry the call, so such links are left to it.
  if (e.sandbox_key.empty()) return false;
  auto problem = [&](const std::string& what) { AddProblem(report, "endpoint", e.endpoint_id, what); };
  Result<std::optional<nl::LinkInfo>> link = links_.Find(e.link_name);
  if (!link.ok()) {
    problem(NotLookedUp("link", e.link_name, link.status()));
    return false;
  }
  if (!link->has_value() || !IsContainerLinkKind((*link)->kind)) return false;
  if (Status s = links_.Delete(e.link_name); !s.ok()) {
    if (DeleteFailed(s))
      problem(fmt::format("link {} is back in the host but not deleted: {}", e.link_name, s.message()));
    return false;
  }
  if (Status s = RouteHostToLocked(networks_.at(e.network_id), e, false); !s.ok()) problem(s.message());
  spdlog::info("endpoint {} torn down at start link={}", ShortId(e.endpoint_id), e.link_name);
  report.torn_down.push_back(e);
  ++report.orphan_links_deleted;
  return true;
}

void DriverService::DropDeadEndpointsLocked(ReconcileReport& report, DriverBatch& batch) {
  for (auto it = endpoints_.begin(); it != endpoints_.end();) {
    const EndpointRecord& e = it->second;
    if (networks_.contains(e.network_id)) {
      if (!TearDownIfBackInHostLocked(e, report)) {
        ++it;
        continue;
      }
    } else {
      if (Status s = links_.Delete(e.link_name); DeleteFailed(s)) {
        report.problems.push_back(
            fmt::format("endpoint {}: link {} not deleted: {}", ShortId(it->first), e.link_name, s.message()));
      }
      ++report.endpoints_dropped;
    }
    batch.delete_endpoints.push_back(it->first);
    it = endpoints_.erase(it);
  }
}

bool DriverService::OwnedLocked(const std::string& name, bool host_link) const {
  if (host_link) {
    for (const auto& [id, network] : networks_) {
      if (network.options.host_ip && HostLinkName(id) == name) return true;
    }
    return false;
  }
  for (const auto& [id, endpoint] : endpoints_) {
    if (endpoint.link_name == name) return true;
  }
  return false;
}

void DriverService::DeleteOrphanLinksLocked(ReconcileReport& report) {
  Result<std::vector<nl::LinkInfo>> all = links_.List();
  if (!all.ok()) {
    report.problems.push_back(fmt::format("links not listed, no orphan swept: {}", all.status().message()));
    return;
  }
  for (const nl::LinkInfo& link : *all) {
    const bool host_link = link.kind == "macvlan" && HasHostLinkShape(link.name);
    const bool endpoint_link = !host_link && IsContainerLinkKind(link.kind) && HasEndpointLinkShape(link.name);
    if ((!host_link && !endpoint_link) || OwnedLocked(link.name, host_link)) continue;
    Status s = links_.Delete(link.name);
    if (s.ok()) {
      ++report.orphan_links_deleted;
    } else if (DeleteFailed(s) && s.code() != Code::kFailedPrecondition) {  // that one: another instance's
      report.problems.push_back(fmt::format("orphan link {} not deleted: {}", link.name, s.message()));
    }
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

// DriverService: start (load the stored state), the records in memory, and the queries.
// The verbs live beside it: network_verbs.cc, endpoint_verbs.cc, host_access.cc, reconcile.cc.

#include "driver/driver_service.h"

#include <spdlog/spdlog.h>

#include "common/clock.h"
#include "common/log.h"

namespace smv::driver {

Result<std::unique_ptr<DriverService>> DriverService::Create(nl::LinkOps& links, NetworkStore& store, Clock clock) {
  std::unique_ptr<DriverService> service(new DriverService(links, store, clock ? clock : UnixSeconds));
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

std::vector<std::string> DriverService::NetworksOnSubnet(const Prefix& subnet) const {
  std::scoped_lock lock(mu_);
  std::vector<std::string> out;
  for (const auto& [id, network] : networks_) {
    for (const Prefix& mine : network.record.Subnets()) {
      if (mine == subnet) out.push_back(id);
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

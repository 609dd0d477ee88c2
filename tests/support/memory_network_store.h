#pragma once
// In-memory NetworkStore with failure injection, for service tests.

#include <map>

#include "driver/network_state.h"

namespace smv::testing {

class MemoryNetworkStore : public driver::NetworkStore {
 public:
  bool fail_next_apply = false;

  Result<driver::DriverSnapshot> Load() override {
    driver::DriverSnapshot s;
    for (const auto& [k, v] : networks_) s.networks.push_back(v);
    for (const auto& [k, v] : links_) s.links.push_back(v);
    for (const auto& [k, v] : endpoints_) s.endpoints.push_back(v);
    return s;
  }
  Status Apply(const driver::DriverBatch& b) override {
    if (fail_next_apply) {
      fail_next_apply = false;
      return Internal("injected store failure");
    }
    for (const auto& n : b.put_networks) networks_[n.id] = n;
    for (const auto& id : b.delete_networks) networks_.erase(id);
    for (const auto& l : b.put_links) links_[l.name] = l;
    for (const auto& name : b.delete_links) links_.erase(name);
    for (const auto& e : b.put_endpoints) endpoints_[e.endpoint_id] = e;
    for (const auto& id : b.delete_endpoints) endpoints_.erase(id);
    return OkStatus();
  }
  size_t network_count() const { return networks_.size(); }
  size_t endpoint_count() const { return endpoints_.size(); }
  size_t link_count() const { return links_.size(); }

 private:
  std::map<std::string, driver::NetworkRecord> networks_;
  std::map<std::string, driver::LinkRecord> links_;
  std::map<std::string, driver::EndpointRecord> endpoints_;
};

}  // namespace smv::testing

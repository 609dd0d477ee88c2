#pragma once
// LinkOps in memory, for driver logic tests that need no root. Behaves like the kernel where
// the driver depends on it: names are unique, EXCL creates, deletes of absent links fail with
// kNotFound, created links carry `owner_tag` and Delete refuses another instance's (link_ops.h),
// and VLAN creation can be made to fail as on a kernel without 802.1Q.

#include <algorithm>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "driver/netlink/link_ops.h"

namespace smv::testing {

class FakeLinkOps : public nl::LinkOps {
 public:
  bool vlan_supported = true;
  int next_index = 2;
  std::string owner_tag;  // put on created links, checked by Delete ("": neither)

  nl::LinkInfo& AddExisting(nl::LinkInfo info) {
    if (info.index == 0) info.index = next_index++;
    if (info.mtu == 0) info.mtu = 1500;
    if (!info.parent_name.empty()) info.parent_index = links_.at(info.parent_name).index;
    return links_[info.name] = info;
  }
  bool Exists(const std::string& name) const { return links_.contains(name); }
  const nl::LinkInfo& Get(const std::string& name) const { return links_.at(name); }
  size_t Count() const { return links_.size(); }

  Result<std::optional<nl::LinkInfo>> Find(const std::string& name) override {
    if (fail_find.contains(name)) return Internal(fmt::format("injected lookup failure of \"{}\"", name));
    auto it = links_.find(name);
    if (it == links_.end()) return std::optional<nl::LinkInfo>();
    return std::optional<nl::LinkInfo>(it->second);
  }
  Result<std::vector<nl::LinkInfo>> List() override {
    if (fail_list) return Internal("injected list failure");
    std::vector<nl::LinkInfo> out;
    for (const auto& [name, info] : links_) out.push_back(info);
    return out;
  }
  Status CreateVlan(const std::string& parent, uint16_t vlan_id, const std::string& name) override {
    if (!vlan_supported) {
      return FailedPrecondition("this kernel has no 802.1Q VLAN support: load the 8021q module");
    }
    if (links_.contains(name)) return AlreadyExists(fmt::format("\"{}\" exists", name));
    if (!links_.contains(parent)) return NotFound(fmt::format("interface \"{}\" not found", parent));
    nl::LinkInfo info{.name = name,
                      .kind = "vlan",
                      .parent_name = parent,
                      .vlan_id = vlan_id,
                      .reorder_hdr = true,
                      .mtu = links_.at(parent).mtu,
                      .up = true,
                      .alias = owner_tag};
    AddExisting(info);
    return OkStatus();
  }
  Status CreateMacvlan(const nl::MacvlanSpec& spec) override {
    if (fail_macvlan) return Internal("injected macvlan failure");
    if (links_.contains(spec.name)) return AlreadyExists(fmt::format("\"{}\" exists", spec.name));
    if (!links_.contains(spec.parent)) return NotFound(fmt::format("interface \"{}\" not found", spec.parent));
    nl::LinkInfo info{.name = spec.name,
                      .kind = "macvlan",
                      .parent_name = spec.parent,
                      .macvlan_mode = spec.mode,
                      .mtu = spec.mtu ? spec.mtu : links_.at(spec.parent).mtu,
                      .mac = spec.mac,
                      .alias = owner_tag};
    AddExisting(info);
    return OkStatus();
  }
  Status CreateIpvlan(const std::string& name, const std::string& parent, const std::string& mode,
                      uint32_t mtu) override {
    if (links_.contains(name)) return AlreadyExists(fmt::format("\"{}\" exists", name));
    if (!links_.contains(parent)) return NotFound(fmt::format("interface \"{}\" not found", parent));
    AddExisting({.name = name,
                 .kind = "ipvlan",
                 .parent_name = parent,
                 .macvlan_mode = mode,
                 .mtu = mtu ? mtu : links_.at(parent).mtu,
                 .mac = links_.at(parent).mac,
                 .alias = owner_tag});
    return OkStatus();
  }
  Status Delete(const std::string& name) override {
    delete_calls.push_back(name);
    if (on_delete) on_delete(name);
    if (fail_delete.contains(name)) return Internal(fmt::format("injected deletion failure of \"{}\"", name));
    auto it = links_.find(name);
    if (it == links_.end()) return NotFound(fmt::format("interface \"{}\" not found", name));
    if (nl::TaggedByAnother(it->second.alias, owner_tag)) {
      return FailedPrecondition(fmt::format("interface \"{}\" belongs to another instance", name));
    }
    links_.erase(it);
    std::erase_if(routes, [&](const auto& r) { return r.second == name; });  // as the kernel does
    addresses.erase(name);
    tuned.erase(name);
    return OkStatus();
  }
  Status TuneHostLink(const std::string& name) override {
    if (!links_.contains(name)) return NotFound(name);
    tuned.insert(name);
    return OkStatus();
  }
  Status AddHostAddress(const std::string& link, const IpAddress& address) override {
    if (!links_.contains(link)) return NotFound(link);
    addresses[link].insert(address.ToString());
    return OkStatus();
  }
  Status AddHostRoute(const IpAddress& address, const std::string& link) override {
    if (!links_.contains(link)) return NotFound(link);
    routes.insert({address.ToString(), link});
    return OkStatus();
  }
  Status DeleteHostRoute(const IpAddress& address, const std::string& link) override {
    if (routes.erase({address.ToString(), link}) == 0) return NotFound(address.ToString());
    return OkStatus();
  }
  // Records each call and answers `container_outcome`.
  Result<nl::ContainerLinkDeletion> DeleteContainerLink(const std::string& mac, const IpAddress& address,
                                                        const std::string& parent) override {
    container_deletions.push_back({mac, address.ToString()});
    container_deletion_parents.push_back(parent);
    return container_outcome;
  }
  std::vector<std::pair<std::string, std::string>> container_deletions;  // (MAC, address)
  std::vector<std::string> container_deletion_parents;
  nl::ContainerLinkDeletion container_outcome = nl::ContainerLinkDeletion::kDeleted;
  std::map<std::string, std::set<std::string>> addresses;  // link -> host addresses
  std::set<std::pair<std::string, std::string>> routes;    // (address, link)
  std::set<std::string> tuned;
  Status SetPromisc(const std::string& name, bool on) override {
    auto it = links_.find(name);
    if (it == links_.end()) return NotFound(name);
    it->second.promisc = on;
    return OkStatus();
  }
  Status SetUp(const std::string& name) override {
    auto it = links_.find(name);
    if (it == links_.end()) return NotFound(name);
    it->second.up = true;
    return OkStatus();
  }

  bool fail_macvlan = false;
  std::set<std::string> fail_find;        // Find of these names fails (kInternal), as on a netlink error
  std::set<std::string> fail_delete;      // Delete of these names fails (kInternal)
  std::vector<std::string> delete_calls;  // every Delete asked for, in order, whatever its outcome
  // Runs at the start of each Delete (a test holds a deletion there to see who waits for it).
  std::function<void(const std::string&)> on_delete;
  bool fail_list = false;

 private:
  std::map<std::string, nl::LinkInfo> links_;
};

}  // namespace smv::testing
